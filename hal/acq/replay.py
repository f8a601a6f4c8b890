"""The replay board: raw frames from a file, as if acquired.

The file holds whole frames back to back, frame_length(pixel, width, height)
bytes each, in the layout of hal.acq (what `ffmpeg -f rawvideo` writes for
rgb24, gray, gray12le and uyvy422). Sequence numbers count frames read: 0, 1,
2, ... and go on counting across loops. Paced like the simulated board.
"""

from hal.acq import BYTES_PER_PIXEL, Frame, paced_stamp, frame_length


class ReplayBoard:
    """Plays the frames of ``path`` (hal.acq interface). At the end of the
    file read() raises EOFError, or starts again with loop=True. With a clock
    (``monotonic_ns()``, ``sleep_ns(n)``) and paced=True it delivers frames
    at ``rate``."""

    def __init__(self, path, width, height, pixel, rate=(30, 1), loop=False, clock=None, paced=False):
        if pixel not in BYTES_PER_PIXEL:
            raise ValueError("unknown pixel format %r" % (pixel,))
        self.path = path
        self.width = width
        self.height = height
        self.pixel = pixel
        self.rate = rate
        self.loop = loop
        self._clock = clock
        self._paced = paced and clock is not None
        self._buf = bytearray(frame_length(pixel, width, height))
        self._file = None
        self._k = 0
        self._t0 = 0

    def start(self):
        if self._file is not None:
            raise OSError("%s: already started" % self.path)
        self._file = open(self.path, "rb")
        self._k = 0
        self._t0 = self._clock.monotonic_ns() if self._clock else 0

    def read(self, timeout_s=None):
        if self._file is None:
            raise OSError("acquisition not started")
        k = self._k
        if paced_stamp(k, self._t0, self.rate, self._clock, self._paced, timeout_s) is None:
            return None
        n = self._file.readinto(self._buf)
        if n == 0 and self.loop:
            self._file.seek(0)
            n = self._file.readinto(self._buf)
            if n == 0:
                raise EOFError("%s holds no frame" % self.path)
        if n == 0:
            raise EOFError("%s: end of file after %d frames" % (self.path, self._k))
        if n < len(self._buf):
            raise ValueError(
                "%s: trailing partial frame of %d bytes (a frame is %d bytes)" % (self.path, n, len(self._buf))
            )
        stamp = self._clock.monotonic_ns() if self._clock else k * 1000000000 * self.rate[1] // self.rate[0]
        self._k = k + 1
        # bytes, not the buffer: the caller may keep frames while the next
        # one is read into it.
        return Frame(bytes(self._buf), k, stamp)

    def stop(self):
        if self._file is not None:
            self._file.close()
            self._file = None
