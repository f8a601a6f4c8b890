"""The simulated board's fast pattern equals the per-pixel formulas."""

import pytest

from hal.acq import frame_length
from hal.acq.sim import Pattern, SimBoard
from tests.reference import frame as reference_frame


@pytest.mark.parametrize("pixel", ["rgb8", "mono8", "mono16", "ycbcr422"])
@pytest.mark.parametrize("size", [(2, 1), (64, 48), (300, 7), (258, 260)])
def test_pattern_matches_formulas(pixel, size):
    width, height = size
    pattern = Pattern(pixel, width, height)
    for k in (0, 1, 255, 256, 4097):
        data = pattern.frame(k)
        assert len(data) == frame_length(pixel, width, height)
        assert data == reference_frame(pixel, width, height, k), (pixel, size, k)


def test_board_reads_frames_in_sequence():
    board = SimBoard(16, 8, "mono8", rate=(25, 1))
    board.start()
    frames = [board.read() for _ in range(3)]
    board.stop()
    assert [f.sequence for f in frames] == [0, 1, 2]
    assert [f.timestamp_ns for f in frames] == [0, 40000000, 80000000]
    assert frames[2].data == reference_frame("mono8", 16, 8, 2)
    with pytest.raises(OSError):
        board.read()


def test_paced_board_follows_its_clock():
    class Clock:
        now = 1000

        def monotonic_ns(self):
            return self.now

        def sleep_ns(self, n):
            self.now += n

    clock = Clock()
    board = SimBoard(4, 2, "rgb8", rate=(30000, 1001), clock=clock, paced=True)
    board.start()
    stamps = [board.read().timestamp_ns for _ in range(4)]
    assert stamps == [1000 + k * 1000000000 * 1001 // 30000 for k in range(4)]


def test_odd_width_refused_for_422():
    with pytest.raises(ValueError, match="even width"):
        Pattern("ycbcr422", 3, 2)
