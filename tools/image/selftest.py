"""Checks run inside the emulated box, where pytest is not: the image's
init runs `python3 -m tools.image.selftest SUITE` for each suite the
kernel command line names (modgate.selftest=v4l2,v4l2m2m), and
tests/test_emulator.py reads the result from the box's log. They are the
drivers' tests against real V4L2 devices, done against vivid with the same
driver code; they live here only, since the host's kernel has no V4L2 (see
the end of tests/test_v4l2.py). On a host with vivid loaded, `python -m
tools.image.selftest v4l2 /dev/videoN` runs them there.

- v4l2: the capture driver, hal/acq/v4l2.py, on /dev/video0.
- v4l2m2m: the memory-to-memory H.264 driver, hal/codec/v4l2m2m.py. No
  kernel here has an M2M H.264 encoder, so the driver's whole stateful
  encoder sequence (formats, controls, buffers, encode, drain to LAST,
  release) runs on vicodec, the kernel's FWHT test codec, which Debian
  does not ship and the image builds (tools/image/kmod.py), multi-planar;
  its FWHT units are checked and thrown away. And on a second vivid
  instance that init loads multi-planar: the encoder search passing over
  capture and output nodes, the raw format and converted frames on an
  OUTPUT_MPLANE queue, the CAPTURE_MPLANE dequeue with plane offsets
  (hal/v4l2.Queue), and the capture driver on that multi-planar capture
  node.

Each check prints "selftest v4l2 NAME: ok ..." or "selftest v4l2 NAME:
FAILED ..."; the last line is "selftest v4l2 done: N of M checks ok".
"""

import os
import sys

from hal.acq import frame_length
from hal.acq.sim import Pattern
from hal.acq.v4l2 import V4L2Board


def capture_from_a_real_device(device):
    """Capture from a real device, on vivid: ten
    frames of 640x480 UYVY (vivid gives YUYV, which the driver reorders),
    whole, in sequence, gaps accounted as drops, stamps monotonic."""
    problems, note, board = _capture_ten(device)
    if board.multiplanar:
        problems.append("%s taken as multi-planar" % device)
    return problems, note


def capture_from_a_multiplanar_device(device):
    """The same on vivid's multi-planar capture node, the kind of node an
    SoC's frame grabber is (the i.MX 8M Plus ISI): the driver sees it has
    only the multi-planar capture API and uses that."""
    node = vivid_node("vid-cap")
    problems, note, board = _capture_ten(node)
    if not board.multiplanar:
        problems.append("%s not taken as multi-planar" % node)
    return problems, "%s, %s" % (node, note)


def _capture_ten(device):
    events = []
    board = V4L2Board(device, 640, 480, "ycbcr422", rate=(25, 1), on_event=events.append)
    board.start()
    try:
        frames = [board.read() for _ in range(10)]
    finally:
        board.stop()
    board.stop()  # twice is harmless
    problems = []
    if not all(len(f.data) == frame_length("ycbcr422", 640, 480) for f in frames):
        problems.append("frame lengths %s" % sorted(set(len(f.data) for f in frames)))
    sequences = [f.sequence for f in frames]
    if sequences != sorted(set(sequences)):
        problems.append("sequences out of order: %s" % sequences)
    if sequences[-1] - sequences[0] != 9 + board.dropped + board.bad:
        problems.append("sequences %s vs %d dropped, %d bad" % (sequences, board.dropped, board.bad))
    if sum(n for kind, n in events if kind == "dropped") != board.dropped:
        problems.append("dropped events %s vs %d" % (events, board.dropped))
    stamps = [f.timestamp_ns for f in frames]
    if stamps != sorted(stamps):
        problems.append("timestamps not monotonic")
    # vivid's test pattern is not flat: a frame of one byte value would mean
    # the buffers were never filled.
    if len(set(frames[-1].data[:4096])) < 2:
        problems.append("the last frame is flat")
    return problems, "sequences %d..%d, %d dropped" % (sequences[0], sequences[-1], board.dropped), board


def refuses_a_size_it_cannot_give(device):
    """A size the driver cannot give (2x2) is refused at start, naming what
    the driver gave instead."""
    board = V4L2Board(device, 2, 2, "ycbcr422")
    try:
        board.start()
    except ValueError as err:
        board.stop()
        if "asked for 2x2 UYVY, driver gave" in str(err):
            return [], str(err)
        return ["unexpected message: %s" % err], ""
    board.stop()
    return ["2x2 was accepted"], ""


def vivid_node(kind):
    """/dev/videoN of the multi-planar vivid instance's node kind
    ("vid-cap", "vid-out"): vivid names them vivid-001-vid-cap etc."""
    for entry in sorted(os.listdir("/sys/class/video4linux")):
        with open("/sys/class/video4linux/%s/name" % entry) as f:
            if f.read().strip() == "vivid-001-" + kind:
                return "/dev/" + entry
    raise OSError("no vivid-001-%s node (is vivid loaded with n_devs=2?)" % kind)


def encodes_and_drains_on_vicodec(device):
    """The M2M driver's whole sequence on vicodec (coded FWHT): 30 frames
    in (two of the pattern, then black: drawing the pattern is slow under
    TCG), after the drain 30 units out, each an FWHT frame
    (struct fwht_cframe_hdr: magic1 'OOOO', magic2 0xffffffff), the last
    taken at the buffer flagged LAST; closed, the device opens again (its
    buffers were released)."""
    from hal.codec.v4l2m2m import M2MEncoder, find_encoder

    node = find_encoder(coded="fwht")
    problems = []
    sizes = []
    for attempt in range(2):
        enc = M2MEncoder(640, 480, "rgb8", rate=(25, 1), device=node, coded="fwht", gop=10)
        try:
            units = []
            for k in range(30):
                units += enc.encode(Pattern("rgb8", 640, 480).frame(k) if k < 2 else bytes(640 * 480 * 3))
            during = len(units)
            units += enc.flush()
            raw = enc.raw_format
        finally:
            enc.close()
        if len(units) != 30 or enc.units_out != 30 or enc.frames_in != 30:
            problems.append("%d frames in, %d units out" % (enc.frames_in, len(units)))
        bad = [k for k, u in enumerate(units) if u[:8] != b"OOOO\xff\xff\xff\xff"]
        if bad:
            problems.append("units %s are no FWHT frames" % bad[:5])
        sizes = [len(u) for u in units]
        if attempt == 0 and problems:
            break
    note = "%s, raw %s: 30 frames, %d units before the drain, %d after; sizes %d..%d bytes (raw %d)" % (
        node, raw, during, len(units) - during, min(sizes or [0]), max(sizes or [0]), 640 * 480 * 3 // 2)
    return problems, note


def no_encoder_is_claimed(device):
    """vivid's nodes are no encoder: the search names each one, and opening
    one as an encoder is refused by its capabilities."""
    from hal.codec import CodecError
    from hal.codec.v4l2m2m import M2MEncoder, find_encoder

    problems = []
    note = ""
    try:
        found = find_encoder()
        problems.append("found an encoder at %s" % found)
    except CodecError as err:
        # vicodec's nodes are memory-to-memory but give no H.264 out.
        looked = str(err).count("not memory-to-memory")
        if looked < 3 or "no H.264 out" not in str(err):
            problems.append("looked at %d vivid nodes: %s" % (looked, err))
        note = str(err)
    out = vivid_node("vid-out")
    try:
        M2MEncoder(640, 480, "rgb8", device=out).close()
        problems.append("%s opened as an encoder" % out)
    except CodecError as err:
        if "is not a memory-to-memory device" not in str(err):
            problems.append("unexpected message: %s" % err)
    return problems, note


def _raw_queue(fd, buf_type, node, buffers):
    """The first of the M2M driver's raw formats the queue offers, set at
    640x480, and the queue with buffers requested: (fourcc, interleaved,
    layout, queue, buffers given)."""
    from hal.codec.v4l2m2m import RAW_FORMATS, set_format
    from hal.v4l2 import Queue, formats, fourcc_name

    offered = formats(fd, buf_type)
    for fourcc, _, interleaved in RAW_FORMATS:
        if fourcc in offered:
            layout = set_format(fd, buf_type, fourcc, 640, 480, node)
            queue = Queue(fd, buf_type)
            return fourcc, interleaved, layout, queue, queue.request(buffers, len(layout))
    raise OSError("vivid offers none of %s: %s" % ([fourcc_name(f[0]) for f in RAW_FORMATS],
                                                   [fourcc_name(f) for f in offered]))


def output_queue_takes_converted_frames(device):
    """The encoder's OUTPUT side on vivid's multi-planar output node: the
    raw format set, rgb8 frames converted into the mapped planes (a flat
    red checked at BT.601 limited range: Y 81-82, Cb 90, Cr 240), queued
    with their bytes used, streamed, and taken back in order (eight of
    nine: the last shown stays with the driver until streaming stops)."""
    from hal.codec.v4l2m2m import Converter, address
    from hal.v4l2 import V4L2_BUF_FLAG_ERROR, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE as OUT, fourcc_name

    node = vivid_node("vid-out")
    fd = os.open(node, os.O_RDWR | os.O_NONBLOCK)
    problems = []
    try:
        fourcc, interleaved, layout, queue, count = _raw_queue(fd, OUT, node, 3)
        converter = Converter(640, 480, layout, interleaved)
        red = bytes((255, 0, 0)) * (640 * 480)
        moving = Pattern("rgb8", 640, 480)
        sent = taken = 0
        sequences = []
        try:
            for index in range(count):
                converter.into(red if index == 0 else moving.frame(index), [address(m) for m in queue.planes[index]])
                if index == 0:
                    luma = queue.planes[0][0]
                    chroma = queue.planes[0][1] if len(layout) > 1 else None
                    y = luma[0]
                    if chroma is None:
                        chroma_at = layout[0][0] * 480
                        cb, cr = (luma[chroma_at], luma[chroma_at + 1]) if interleaved else (
                            luma[chroma_at], luma[chroma_at + (layout[0][0] // 2) * 240])
                    else:
                        cb, cr = (chroma[0], chroma[1]) if interleaved else (chroma[0], queue.planes[0][2][0])
                    if y not in (81, 82) or abs(cb - 90) > 2 or abs(cr - 240) > 2:
                        problems.append("red became Y %d Cb %d Cr %d" % (y, cb, cr))
                queue.queue(index, [size for _, size in layout])
                sent += 1
            queue.stream(True)
            while taken < 8:
                if not queue.wait(2.0):
                    problems.append("vivid kept the buffers 2 s (%d taken)" % taken)
                    break
                got = queue.dequeue()
                if got is None:
                    continue
                taken += 1
                sequences.append(got["sequence"])
                if got["flags"] & V4L2_BUF_FLAG_ERROR:
                    problems.append("buffer %d flagged ERROR" % got["index"])
                # An output driver keeps the buffer it shows until the next
                # one comes (vivid does): one more is sent than taken back.
                if sent < 9:
                    converter.into(moving.frame(sent), [address(m) for m in queue.planes[got["index"]]])
                    queue.queue(got["index"], [size for _, size in layout])
                    sent += 1
        finally:
            queue.release()
        if sequences != sorted(sequences) or len(sequences) != 8:
            problems.append("sequences %s" % sequences)
        note = "%s, %d planes %s, %d buffers, sequences %s" % (node, len(layout), fourcc_name(fourcc), count,
                                                              sequences)
    finally:
        os.close(fd)
    return problems, note


def capture_queue_gives_planes(device):
    """The encoder's CAPTURE side on vivid's multi-planar capture node:
    buffers dequeued with each plane's bytes used and data offset, filled,
    handed back, five times over."""
    from hal.v4l2 import V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE as CAP, fourcc_name

    node = vivid_node("vid-cap")
    fd = os.open(node, os.O_RDWR | os.O_NONBLOCK)
    problems = []
    try:
        fourcc, _, layout, queue, count = _raw_queue(fd, CAP, node, 4)
        got_planes = []
        try:
            for index in range(count):
                queue.queue(index)
            queue.stream(True)
            while len(got_planes) < 5:
                if not queue.wait(2.0):
                    problems.append("no buffer within 2 s")
                    break
                got = queue.dequeue()
                if got is None:
                    continue
                used, offsets = got["bytesused"], got["data_offset"]
                got_planes.append(used)
                for k, (n, at) in enumerate(zip(used, offsets)):
                    plane = queue.planes[got["index"]][k]
                    if n <= at or n > len(plane):
                        problems.append("plane %d: %d bytes used at offset %d of %d" % (k, n, at, len(plane)))
                    elif k == 0 and len(set(plane[at:at + 4096])) < 2:
                        problems.append("plane 0 is flat")
                queue.queue(got["index"])
        finally:
            queue.release()
        if any(len(used) != len(layout) for used in got_planes):
            problems.append("planes per buffer %s, format has %d" % (got_planes, len(layout)))
        note = "%s, %s, bytes used per plane %s" % (node, fourcc_name(fourcc), got_planes[:1])
    finally:
        os.close(fd)
    return problems, note


CHECKS = {
    "v4l2": (capture_from_a_real_device, refuses_a_size_it_cannot_give),
    "v4l2m2m": (encodes_and_drains_on_vicodec, no_encoder_is_claimed, output_queue_takes_converted_frames,
                capture_queue_gives_planes, capture_from_a_multiplanar_device),
}


def main(argv):
    suite = argv[0] if argv else "v4l2"
    device = argv[1] if len(argv) > 1 else "/dev/video0"
    passed = failed = 0
    for check in CHECKS[suite]:
        try:
            problems, note = check(device)
        except Exception as err:  # a check that crashes has failed, and says how
            problems, note = ["%s: %s" % (type(err).__name__, err)], ""
        if problems:
            failed += 1
            print("selftest %s %s: FAILED %s" % (suite, check.__name__, "; ".join(problems)))
        else:
            passed += 1
            print("selftest %s %s: ok %s" % (suite, check.__name__, note))
    print("selftest %s done: %d of %d checks ok" % (suite, passed, passed + failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
