"""Acquisition boards: where frames come from.

Every driver has the same small interface:

    board.start()          begin acquiring
    frame = board.read()   the next Frame (blocks until one is there)
    board.read(timeout_s)  the same, or None if no frame came within
                           timeout_s seconds: callers that must stay
                           responsive (a stop signal, whatever the frame
                           rate) wait in short slices
    board.stop()           stop; read() may not be called after

and the attributes ``width``, ``height``, ``pixel`` (a pixel format name:
'rgb8', 'mono8', 'mono16', 'ycbcr422', 'ycbcr422-10') and ``rate`` (frames per second as
(numerator, denominator)).
"""


class Frame:
    """One acquired frame: its bytes, the driver's sequence number (gaps
    mean dropped frames) and the capture time in ns from the HAL clock."""

    __slots__ = ("data", "sequence", "timestamp_ns")

    def __init__(self, data, sequence, timestamp_ns):
        self.data = data
        self.sequence = sequence
        self.timestamp_ns = timestamp_ns


# Bytes per pixel of each format, as the boards deliver them.
BYTES_PER_PIXEL = {"rgb8": 3, "mono8": 1, "mono16": 2, "ycbcr422": 2, "ycbcr422-10": 4}


def frame_length(pixel, width, height):
    return BYTES_PER_PIXEL[pixel] * width * height


def paced_stamp(k, t0, rate, clock, paced, timeout_s=None):
    """The capture time of frame k of a source that starts at t0 (ns) and
    runs at rate; with paced, first wait until then on the clock. Without a
    clock the nominal time is the stamp. With timeout_s, a frame due later
    than that is not waited for: the wait is timeout_s and the answer None."""
    due = t0 + k * 1000000000 * rate[1] // rate[0]
    if paced:
        wait = due - clock.monotonic_ns()
        if timeout_s is not None and wait > timeout_s * 1e9:
            clock.sleep_ns(int(timeout_s * 1e9))
            return None
        if wait > 0:
            clock.sleep_ns(wait)
    return clock.monotonic_ns() if clock else due
