"""The V4L2 driver's kernel ABI, checked against the installed
linux/videodev2.h by a C program generated from the driver's own tables; its
buffer bookkeeping and YUYV reordering without a device. Capture from a
real device is checked in the emulated box (see the end of this file)."""

import errno
import os
import re
import struct
import subprocess

import pytest

from hal import v4l2 as abi
from hal.acq import v4l2
from hal.acq.sim import Pattern
from tests.conftest import tool

LAYOUTS = (abi.CAPABILITY, abi.FORMAT, abi.REQUESTBUFFERS, abi.BUFFER, abi.STREAMPARM, abi.FORMAT_MPLANE,
           abi.BUFFER_MPLANE, abi.PLANE, abi.FMTDESC, abi.ENCODER_CMD, abi.CONTROL)
IDS = ["%s-%d" % (layout[0], k) for k, layout in enumerate(LAYOUTS)]
HEADER = "/usr/include/linux/videodev2.h"

# Python name -> C name of every number the driver takes from the headers.
CONSTANTS = {name: name for name in dir(abi) if name.startswith(("V4L2_", "VIDIOC_"))}
CONSTANTS.update(IOC_READ="_IOC_READ", IOC_WRITE="_IOC_WRITE")


def members(layout):
    """(member, struct code, offset, size) of each named item of a layout,
    by walking its format: '=' means no padding but the explicit 'x's."""
    names = iter(layout[2])
    offset = 0
    out = []
    assert layout[1][0] == "="
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", layout[1][1:]):
        count = int(count or 1)
        if code == "x":
            offset += count
            continue
        repeat, size = (1, count) if code == "s" else (count, struct.calcsize("=" + code))
        for _ in range(repeat):
            out.append((next(names), code, offset, size))
            offset += size
    assert next(names, None) is None, "more member names than items in %s" % layout[1]
    return out


def sample(layout):
    """Distinct test values for every named member: no two bytes alike within
    a member, so a member read at the wrong offset or in the wrong order
    cannot match."""
    values = {}
    for k, (name, code, _, size) in enumerate(members(layout), 1):
        raw = bytes((k * 16 + j) & 0xFF for j in range(size))
        values[name] = raw if code == "s" else struct.unpack("=" + code, raw)[0]
    return values


def c_program():
    lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <string.h>",
        "#include <linux/videodev2.h>",
        "static void dump(const char *name, const void *p, size_t n) {",
        "    const unsigned char *b = p;",
        '    printf("bytes %s ", name);',
        '    for (size_t i = 0; i < n; i++) printf("%02x", b[i]);',
        '    printf("\\n");',
        "}",
        "int main(void) {",
    ]
    for name, c_name in sorted(CONSTANTS.items()):
        lines.append('    printf("const %s %%llu\\n", (unsigned long long)(%s));' % (name, c_name))
    for label, layout in zip(IDS, LAYOUTS):
        st = "struct " + layout[0]
        lines.append('    printf("size %s %%zu\\n", sizeof(%s));' % (layout[0], st))
        for name, _, _, _ in members(layout):
            lines.append(
                '    printf("member %s %s %%zu %%zu\\n", offsetof(%s, %s), sizeof(((%s *)0)->%s));'
                % (label, name, st, name, st, name)
            )
        lines.append("    { %s s; memset(&s, 0, sizeof s);" % st)
        for name, value in sample(layout).items():
            if isinstance(value, bytes):
                literal = "".join("\\x%02x" % b for b in value)
                lines.append('      memcpy(s.%s, "%s", %d);' % (name, literal, len(value)))
            else:
                suffix = "ULL" if value >= 1 << 63 else "LL"
                lines.append("      s.%s = (__typeof__(s.%s))%d%s;" % (name, name, value, suffix))
        lines.append('      dump("%s", &s, sizeof s); }' % label)
    lines += ["    return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """What the C compiler says: {"const": {name: n}, "size": {struct: n},
    "member": {(struct, member): (offset, size)}, "bytes": {struct: bytes}}."""
    gcc = tool("gcc")  # set-up, not the machine: .ci/run installs gcc and linux-libc-dev
    if not os.path.exists(HEADER):
        pytest.fail("%s is missing (Debian: apt-get install linux-libc-dev; .ci/run does)" % HEADER)
    work = tmp_path_factory.mktemp("v4l2abi")
    source, binary = work / "abi.c", work / "abi"
    source.write_text(c_program())
    built = subprocess.run([gcc, "-Wall", "-Werror", "-o", str(binary), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    output = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    found = {"const": {}, "size": {}, "member": {}, "bytes": {}}
    for line in output.splitlines():
        kind, rest = line.split(" ", 1)
        if kind == "const":
            name, value = rest.split()
            found["const"][name] = int(value)
        elif kind == "size":
            name, value = rest.split()
            found["size"][name] = int(value)
        elif kind == "member":
            st, name, offset, size = rest.split()
            found["member"][(st, name)] = (int(offset), int(size))
        else:
            st, data = rest.split()
            found["bytes"][st] = bytes.fromhex(data)
    return found


def test_constants_and_ioctl_numbers_match_the_header(kernel):
    assert "VIDIOC_DQBUF" in CONSTANTS and "V4L2_BUF_FLAG_ERROR" in CONSTANTS
    for name in CONSTANTS:
        assert getattr(abi, name) == kernel["const"][name], name


def test_documented_sizes_on_64_bit(kernel):
    # The LP64 sizes (x86_64, arm64), ours and what gcc says here.
    expected = {
        "v4l2_capability": 104,
        "v4l2_format": 208,
        "v4l2_requestbuffers": 20,
        "v4l2_buffer": 88,
        "v4l2_streamparm": 204,
        "v4l2_plane": 64,
        "v4l2_fmtdesc": 64,
        "v4l2_encoder_cmd": 40,
        "v4l2_control": 8,
    }
    assert {layout[0]: abi.sizeof(layout) for layout in LAYOUTS} == expected
    assert kernel["size"] == expected


@pytest.mark.parametrize("label,layout", zip(IDS, LAYOUTS), ids=IDS)
def test_member_offsets_and_sizes_match_the_header(kernel, label, layout):
    for name, _, offset, size in members(layout):
        assert (offset, size) == kernel["member"][(label, name)], (label, name)


@pytest.mark.parametrize("label,layout", zip(IDS, LAYOUTS), ids=IDS)
def test_pack_and_unpack_agree_with_c(kernel, label, layout):
    # The C program set each member by name to the sample value in a zeroed
    # struct; our bytes must be the same, and read back the same.
    values = sample(layout)
    c_bytes = kernel["bytes"][label]
    assert bytes(abi.pack(layout, values)) == c_bytes
    assert abi.unpack(layout, c_bytes) == values


def test_ioctl_numbers_by_the_formula():
    # asm-generic/ioctl.h by hand for two of them: _IOWR('V', 17, 88 bytes)
    # and _IOR('V', 0, 104 bytes).
    assert abi.VIDIOC_DQBUF == (3 << 30) | (88 << 16) | (ord("V") << 8) | 17 == 0xC0585611
    assert abi.VIDIOC_QUERYCAP == 0x80685600
    assert abi.VIDIOC_STREAMON == 0x40045612


def test_fourcc():
    assert abi.fourcc("UYVY") == ord("U") | ord("Y") << 8 | ord("V") << 16 | ord("Y") << 24
    assert abi.fourcc_name(abi.V4L2_PIX_FMT_RGB24) == "RGB3"


# -- buffer bookkeeping ---------------------------------------------------------


def full_ring(count=4, length=100):
    ring = v4l2.Ring(count, length)
    for index in range(count):
        ring.queue(index)
    return ring


def test_ring_tracks_queued_buffers():
    ring = full_ring()
    assert ring.queued == {0, 1, 2, 3}
    ring.dequeue(2, 0, 0, 100)
    assert ring.queued == {0, 1, 3}
    with pytest.raises(ValueError):
        ring.queue(1)  # the driver has it already
    with pytest.raises(ValueError):
        ring.queue(4)  # no such buffer
    with pytest.raises(OSError, match="buffer 2, which was not queued"):
        ring.dequeue(2, 1, 0, 100)
    ring.queue(2)
    assert ring.queued == {0, 1, 2, 3}


def test_sequence_gaps_are_dropped_frames():
    ring = full_ring()
    # (index, sequence) as the driver hands them back, each requeued at once
    records = [(0, 7), (1, 8), (2, 9), (3, 12), (0, 13), (1, 20)]
    gaps = []
    for index, sequence in records:
        gap, good = ring.dequeue(index, sequence, 0, 100)
        assert good
        gaps.append(gap)
        ring.queue(index)
    assert gaps == [0, 0, 0, 2, 0, 6]


def test_sequence_wraps_at_32_bits():
    ring = full_ring()
    assert ring.dequeue(0, 0xFFFFFFFE, 0, 100) == (0, True)
    assert ring.dequeue(1, 0xFFFFFFFF, 0, 100) == (0, True)
    assert ring.dequeue(2, 1, 0, 100) == (1, True)  # 0 was dropped


def test_sequence_going_back_resynchronises():
    ring = full_ring()
    ring.dequeue(0, 500, 0, 100)
    assert ring.dequeue(1, 3, 0, 100) == (0, True)
    assert ring.dequeue(2, 5, 0, 100) == (1, True)


def test_error_flag_and_short_buffers_are_bad_frames():
    ring = full_ring()
    assert ring.dequeue(0, 0, v4l2.V4L2_BUF_FLAG_ERROR, 100) == (0, False)
    assert ring.dequeue(1, 1, 0, 99) == (0, False)
    # a bad frame still counts in the sequence: the next one is no gap
    assert ring.dequeue(2, 2, 0, 100) == (0, True)
    # other flags (e.g. V4L2_BUF_FLAG_DONE 0x4, TIMESTAMP_MONOTONIC 0x2000) are fine
    assert ring.dequeue(3, 3, 0x2004, 100) == (0, True)
    ring.queue(0)
    assert ring.dequeue(0, 4, 0, 4096) == (0, True)  # sizeimage rounded up by the driver


# -- YUYV to UYVY ------------------------------------------------------------------


def test_yuyv_swapped_to_uyvy():
    # Y0 Cb Y1 Cr, Y2 Cb' Y3 Cr'  ->  Cb Y0 Cr Y1, Cb' Y2 Cr' Y3
    assert v4l2.yuyv_to_uyvy(bytes([10, 20, 11, 30, 12, 21, 13, 31])) == bytes([20, 10, 30, 11, 21, 12, 31, 13])


def test_yuyv_of_a_whole_frame():
    uyvy = Pattern("ycbcr422", 34, 6).frame(5)
    yuyv = bytearray()
    for i in range(0, len(uyvy), 4):  # per pixel pair, by the book
        cb, y0, cr, y1 = uyvy[i : i + 4]
        yuyv += bytes((y0, cb, y1, cr))
    out = v4l2.yuyv_to_uyvy(bytes(yuyv))
    assert isinstance(out, bytes) and out == uyvy


# -- the board, without a device ------------------------------------------------------


def test_board_refuses_formats_v4l2_does_not_give():
    with pytest.raises(ValueError, match="mono16"):
        v4l2.V4L2Board(pixel="mono16")


def test_board_read_before_start_and_stop_twice():
    board = v4l2.V4L2Board("/dev/null-no-such-device")
    with pytest.raises(OSError, match="not started"):
        board.read()
    board.stop()
    board.stop()


def test_a_device_that_is_not_v4l2_fails_cleanly(monkeypatch):
    # /dev/null takes no V4L2 ioctl (ENOTTY); start() must close it again.
    from tests.conftest import watch_descriptors

    opened, closed = watch_descriptors(monkeypatch, v4l2)
    board = v4l2.V4L2Board("/dev/null")
    for _ in range(2):  # a second start is not "already started"
        with pytest.raises(OSError) as failed:
            board.start()
        assert failed.value.errno == errno.ENOTTY
    board.stop()
    assert len(opened) == 2 and closed == opened


# -- a real device ------------------------------------------------------------------


# The two tests against a real device (ten frames captured whole and in
# sequence; a size the driver cannot give refused) are not here: the kernel
# of the development and CI machines has no V4L2 and loads no modules (no
# vivid), so on the host they could only skip. They are
# tools/image/selftest.py, run in the emulated box against vivid;
# tests/test_emulator.py's test_v4l2_on_vivid_inside_the_box fails unless
# both pass. On a host with vivid loaded, `python -m tools.image.selftest
# v4l2 /dev/videoN` runs them there.
