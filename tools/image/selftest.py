"""Checks run inside the emulated box, where pytest is not: the image's
init runs `python3 -m tools.image.selftest v4l2` when the kernel command
line has modgate.selftest=v4l2, and tests/test_emulator.py reads the result
from the box's log. They are the driver's tests against a real V4L2 device,
done against vivid with the same driver code, hal/acq/v4l2.py; they live
here only, since the host's kernel has no V4L2 (see the end of
tests/test_v4l2.py). On a host with vivid loaded, `python -m
tools.image.selftest v4l2 /dev/videoN` runs them there.

Each check prints "selftest v4l2 NAME: ok ..." or "selftest v4l2 NAME:
FAILED ..."; the last line is "selftest v4l2 done: N of M checks ok".
"""

import sys

from hal.acq import frame_length
from hal.acq.v4l2 import V4L2Board


def capture_from_a_real_device(device):
    """Capture from a real device, on vivid: ten
    frames of 640x480 UYVY (vivid gives YUYV, which the driver reorders),
    whole, in sequence, gaps accounted as drops, stamps monotonic."""
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
    return problems, "sequences %d..%d, %d dropped" % (sequences[0], sequences[-1], board.dropped)


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


CHECKS = {"v4l2": (capture_from_a_real_device, refuses_a_size_it_cannot_give)}


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
