"""The V4L2 memory-to-memory H.264 driver (hal/codec/v4l2m2m.py) without a
device: its access-unit assembly on a real libx264 bitstream cut the way
hardware encoders deliver it, and how it refuses what is not an encoder.
Its kernel ABI is checked by gcc in tests/test_v4l2.py; its buffer queues
(hal/v4l2.Queue) run against vivid's multi-planar nodes in the emulated
box (tools/image/selftest.py "v4l2m2m", tests/test_emulator.py). No kernel
here or in the box's Debian arm64 kernel has an M2M H.264 encoder (nor
vicodec, nor vim2m), so the encode and drain sequence itself runs only on
hardware."""


import pytest

from board import load
from hal.acq.sim import Pattern
from hal.codec import CodecError, open_encoder
from hal.codec.v4l2m2m import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, AccessUnits, M2MEncoder, find_encoder, nal_units


def x264_units(bluray=False, frames=12, gop=4):
    enc = open_encoder("h264", 320, 240, "rgb8", (30, 1), gop=gop, bluray=bluray)
    pattern = Pattern("rgb8", 320, 240)
    units = []
    for k in range(frames):
        units += enc.encode(pattern.frame(k))
    units += enc.flush()
    enc.close()
    return units


def split(unit):
    """[(nal_unit_type, bytes)] of a unit."""
    nals = nal_units(unit)
    ends = [start for start, _ in nals[1:]] + [len(unit)]
    return [(kind, unit[start:end]) for (start, kind), end in zip(nals, ends)]


def as_hardware_sends_it(units):
    """The buffers a device in header mode "separate" without repeated
    headers gives: SPS + PPS once in a buffer of their own, then each
    picture without parameter sets."""
    buffers = []
    for k, unit in enumerate(units):
        parts = split(unit)
        if k == 0:
            buffers.append(b"".join(data for kind, data in parts if kind in (NAL_SPS, NAL_PPS)))
        buffers.append(b"".join(data for kind, data in parts if kind not in (NAL_SPS, NAL_PPS)))
    return buffers


@pytest.mark.parametrize("bluray", [False, True], ids=["plain", "with-access-unit-delimiters"])
def test_access_units_are_rebuilt_as_libx264_made_them(bluray):
    units = x264_units(bluray=bluray)
    idrs = [u for u in units if NAL_IDR in [kind for kind, _ in split(u)]]
    assert len(idrs) == 3  # frames 0, 4, 8: each with its own SPS/PPS
    lead = [NAL_AUD, NAL_SPS, NAL_PPS] if bluray else [NAL_SPS, NAL_PPS]
    assert all([kind for kind, _ in split(u)][: len(lead)] == lead for u in idrs)
    buffers = as_hardware_sends_it(units)
    assert len(buffers) == len(units) + 1
    assembler = AccessUnits()
    rebuilt = []
    for data in buffers:
        rebuilt += assembler.add(data)
    # One unit a picture, and byte for byte what libx264 wrote: every IDR
    # has its SPS/PPS back, after the delimiter where there is one.
    assert rebuilt == units


def test_nal_units_with_three_and_four_byte_start_codes():
    data = b"\0\0\0\1\x67abc" + b"\0\0\1\x68de" + b"\0\0\1\x65\x88\x80"
    assert nal_units(data) == [(0, 7), (8, 8), (14, 5)]


def test_an_idr_with_no_parameter_sets_ever_seen_is_refused():
    with pytest.raises(CodecError, match="no SPS/PPS"):
        AccessUnits().add(b"\0\0\0\1\x65\x88\x80")
    with pytest.raises(CodecError, match="no H.264 start code"):
        AccessUnits().add(b"\x65\x88\x80")


def test_a_file_that_is_not_a_v4l2_device_is_refused_and_closed(monkeypatch):
    from hal.codec import v4l2m2m
    from tests.conftest import watch_descriptors

    opened, closed = watch_descriptors(monkeypatch, v4l2m2m)
    with pytest.raises(CodecError, match="/dev/null is not a V4L2 device"):
        M2MEncoder(64, 48, "rgb8", device="/dev/null")
    assert len(opened) == 1 and closed == opened


def test_settings_are_checked_before_any_device_is_opened():
    with pytest.raises(CodecError, match="rgb8 or ycbcr422 frames, not mono8"):
        M2MEncoder(64, 48, "mono8", device="/dev/null")
    with pytest.raises(CodecError, match="even width and height"):
        M2MEncoder(63, 48, "rgb8", device="/dev/null")
    with pytest.raises(CodecError, match="level 5.1"):
        M2MEncoder(64, 48, "rgb8", level="5.1", device="/dev/null")


def test_find_encoder_says_what_it_looked_at(tmp_path):
    with pytest.raises(CodecError, match="no /dev/video"):
        find_encoder(str(tmp_path))
    # A node that answers no V4L2 ioctl (a regular file here) is named.
    (tmp_path / "video0").write_bytes(b"")
    (tmp_path / "video10").write_bytes(b"")
    with pytest.raises(CodecError) as failed:
        find_encoder(str(tmp_path))
    message = str(failed.value)
    assert "no V4L2 memory-to-memory H.264 encoder" in message
    assert message.index("video0") < message.index("video10")


def test_the_imx8mp_board_asks_for_its_vpu_and_says_it_is_not_here():
    # Board data "codec": {"h264": "v4l2-m2m"}: the driver is opened, and on
    # a machine without the VPU it says so instead of "not written".
    board = load("imx8mp_gateway")
    with pytest.raises(CodecError, match="no V4L2 memory-to-memory H.264 encoder"):
        board.open_codec("h264", 64, 48, "rgb8", (30, 1))


def test_an_unknown_driver_is_refused_by_name():
    with pytest.raises(CodecError, match="no h264 driver 'openh264'; one of x264, v4l2-m2m"):
        open_encoder("h264", 64, 48, "rgb8", driver="openh264")


# -- the raw side: rgb8 into each 4:2:0 layout a driver may choose -------------


def convert(fourcc_planes, interleaved, padding=0, width=64, height=48):
    """A buffer laid out as a driver with rows padded by padding bytes
    would give, converted from the pattern: the bytes of each plane."""
    from hal.codec.v4l2m2m import Converter, address

    stride = width + padding
    if fourcc_planes == 1:
        chroma = stride * (height // 2) if interleaved else 2 * (stride // 2) * (height // 2)
        layout = [(stride, stride * height + chroma)]
    elif interleaved:
        layout = [(stride, stride * height), (stride, stride * height // 2)]
    else:
        layout = [(stride, stride * height)] + [(stride // 2, (stride // 2) * (height // 2))] * 2
    planes = [bytearray(b"\xee" * size) for _, size in layout]
    Converter(width, height, layout, interleaved).into(Pattern("rgb8", width, height).frame(3),
                                                       [address(p) for p in planes])
    return layout, planes


def i420(layout, planes, interleaved, width=64, height=48):
    """(Y, Cb, Cr) rows without their padding, whatever the layout."""
    flat = b"".join(bytes(p) for p in planes)
    stride = layout[0][0]
    y = b"".join(flat[r * stride:r * stride + width] for r in range(height))
    rest = flat[stride * height:]
    if interleaved:
        uv = b"".join(rest[r * stride:r * stride + width] for r in range(height // 2))
        return y, uv[0::2], uv[1::2]
    c = stride // 2
    cb = b"".join(rest[r * c:r * c + width // 2] for r in range(height // 2))
    rest = rest[c * (height // 2):]
    cr = b"".join(rest[r * c:r * c + width // 2] for r in range(height // 2))
    return y, cb, cr


@pytest.mark.parametrize("padding", [0, 32], ids=["packed", "rows-padded"])
def test_every_raw_layout_holds_the_same_picture(padding):
    # NV12, NM12, YU12, YM12 with and without padded rows: the same Y, Cb
    # and Cr, the padding untouched, and the picture what libyuv's plain
    # I420 conversion (the software driver's) gives.
    results = {}
    for planes, interleaved in ((1, True), (2, True), (1, False), (3, False)):
        layout, data = convert(planes, interleaved, padding)
        results[(planes, interleaved)] = i420(layout, data, interleaved)
        if padding:
            assert set(bytes(data[0][64:64 + padding])) == {0xEE}
    assert len(set(results.values())) == 1
    y, cb, cr = results[(1, False)]
    assert len(y) == 64 * 48 and len(cb) == len(cr) == 32 * 24
    reference = convert(1, False, 0)[1][0]
    assert bytes(reference) == y + cb + cr


def test_flat_red_is_bt601_limited_range():
    from hal.codec.v4l2m2m import Converter, address

    layout = [(64, 64 * 48 * 3 // 2)]
    plane = bytearray(layout[0][1])
    Converter(64, 48, layout, False).into(bytes((255, 0, 0)) * (64 * 48), [address(plane)])
    # Y = 16 + 219 (0.299 R + ...), Cb = 128 + 224 (-0.1687 R ...), Cr =
    # 128 + 224 (0.5 R ...) (ITU-R BT.601, limited range).
    assert set(plane[: 64 * 48]) <= {81, 82}
    assert {abs(b - 90) <= 1 for b in plane[64 * 48: 64 * 48 + 32 * 24]} == {True}
    assert {abs(b - 240) <= 1 for b in plane[64 * 48 + 32 * 24:]} == {True}


def test_ycbcr422_goes_into_every_layout_with_its_luma_untouched():
    # UYVY (an HDMI bridge's ycbcr422) into NV12 directly and into YU12 by
    # libyuv's 4:2:2 to 4:2:0: the same Y, byte for byte the source's, and
    # the same chroma in both.
    from hal.codec.v4l2m2m import Converter, address

    frame = Pattern("ycbcr422", 64, 48).frame(5)
    results = []
    for interleaved in (True, False):
        layout = [(64, 64 * 48 * 3 // 2)]
        plane = bytearray(layout[0][1])
        Converter(64, 48, layout, interleaved, "ycbcr422").into(frame, [address(plane)])
        results.append(i420(layout, [plane], interleaved))
    assert results[0] == results[1]
    y, cb, cr = results[0]
    assert y == frame[1::2]
