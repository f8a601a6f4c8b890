"""The replay board plays back byte-exactly what was written, loops, ends
cleanly, refuses a partial frame and paces itself by its clock."""

import pytest

from hal.acq import frame_length
from hal.acq.replay import ReplayBoard
from hal.acq.sim import Pattern


def write_frames(path, pixel, width, height, count, extra=b""):
    pattern = Pattern(pixel, width, height)
    frames = [pattern.frame(k) for k in range(count)]
    with open(path, "wb") as f:
        f.write(b"".join(frames) + extra)
    return frames


class FakeClock:
    """A HAL clock that only moves when slept on, and keeps every sleep."""

    def __init__(self, now):
        self.now = now
        self.sleeps = []

    def monotonic_ns(self):
        return self.now

    def sleep_ns(self, n):
        self.sleeps.append(n)
        self.now += n


@pytest.mark.parametrize("pixel", ["rgb8", "mono8", "mono16", "ycbcr422"])
def test_replays_frames_byte_exactly(tmp_path, pixel):
    path = str(tmp_path / "clip.raw")
    frames = write_frames(path, pixel, 34, 6, 5)
    board = ReplayBoard(path, 34, 6, pixel, rate=(25, 1))
    board.start()
    got = [board.read() for _ in range(5)]
    with pytest.raises(EOFError, match="after 5 frames"):
        board.read()
    board.stop()
    assert [f.data for f in got] == frames
    assert all(type(f.data) is bytes for f in got)  # kept frames are not overwritten
    assert [f.sequence for f in got] == [0, 1, 2, 3, 4]
    assert [f.timestamp_ns for f in got] == [0, 40000000, 80000000, 120000000, 160000000]
    with pytest.raises(OSError, match="not started"):
        board.read()


def test_loops_with_sequence_counting_on(tmp_path):
    path = str(tmp_path / "clip.raw")
    frames = write_frames(path, "mono8", 8, 4, 3)
    board = ReplayBoard(path, 8, 4, "mono8", loop=True)
    board.start()
    got = [board.read() for _ in range(7)]
    board.stop()
    assert [f.data for f in got] == frames * 2 + frames[:1]
    assert [f.sequence for f in got] == list(range(7))


def test_empty_file(tmp_path):
    path = str(tmp_path / "empty.raw")
    open(path, "wb").close()
    for loop in (False, True):
        board = ReplayBoard(path, 8, 4, "mono8", loop=loop)
        board.start()
        with pytest.raises(EOFError):
            board.read()
        board.stop()


@pytest.mark.parametrize("loop", [False, True])
def test_trailing_partial_frame_is_an_error(tmp_path, loop):
    path = str(tmp_path / "clip.raw")
    frames = write_frames(path, "rgb8", 8, 4, 2, extra=b"\x01" * 17)
    board = ReplayBoard(path, 8, 4, "rgb8", loop=loop)
    board.start()
    assert [board.read().data for _ in range(2)] == frames
    message = "trailing partial frame of 17 bytes \\(a frame is %d bytes\\)" % frame_length("rgb8", 8, 4)
    with pytest.raises(ValueError, match=message):
        board.read()
    board.stop()
    board.stop()


def test_paced_by_its_clock(tmp_path):
    path = str(tmp_path / "clip.raw")
    write_frames(path, "mono8", 8, 4, 4)
    clock = FakeClock(1000)
    board = ReplayBoard(path, 8, 4, "mono8", rate=(30000, 1001), clock=clock, paced=True)
    board.start()
    stamps = [board.read().timestamp_ns for _ in range(4)]
    period = [k * 1000000000 * 1001 // 30000 for k in range(4)]
    assert stamps == [1000 + p for p in period]
    # frame 0 is due at once; each later one sleeps exactly to its due time
    assert clock.sleeps == [period[k] - period[k - 1] for k in (1, 2, 3)]


def test_paced_board_late_does_not_sleep(tmp_path):
    path = str(tmp_path / "clip.raw")
    write_frames(path, "mono8", 8, 4, 2)
    clock = FakeClock(0)
    board = ReplayBoard(path, 8, 4, "mono8", rate=(10, 1), clock=clock, paced=True)
    board.start()
    board.read()
    clock.now += 250000000  # the caller took 250 ms: frame 1 (due at 100 ms) is late
    assert board.read().timestamp_ns == 250000000
    assert clock.sleeps == []


def test_unpaced_with_a_clock_stamps_by_the_clock(tmp_path):
    path = str(tmp_path / "clip.raw")
    write_frames(path, "mono8", 8, 4, 2)
    clock = FakeClock(77)
    board = ReplayBoard(path, 8, 4, "mono8", clock=clock)
    board.start()
    assert [board.read().timestamp_ns for _ in range(2)] == [77, 77]
    assert clock.sleeps == []


def test_unknown_pixel_format(tmp_path):
    with pytest.raises(ValueError, match="unknown pixel format"):
        ReplayBoard(str(tmp_path / "x"), 8, 4, "rgb16")
