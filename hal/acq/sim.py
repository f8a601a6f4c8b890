"""The simulated acquisition board: a deterministic test pattern, so any
receiver can check every pixel bit-exactly.

For frame k (0-based), column x, row y:

- rgb8:     R = (x + k) mod 256, G = (y + k) mod 256, B = (x + y + k) mod 256,
            pixel-interleaved R G B.
- mono8:    (x + y + k) mod 256.
- mono16:   (3x + 5y + 7k) mod 4096 (12 bits stored), little-endian words.
- ycbcr422: 8-bit 4:2:2 in the order Cb Y0 Cr Y1 (UYVY, as SMPTE ST 2110-20
            and V4L2 UYVY); Y = (x + y + k) mod 256 for every pixel, and for
            the pixel pair (2i, 2i+1) of row y, Cb = (i + k) mod 256 and
            Cr = (y + 2k) mod 256. The width must be even.
- ycbcr422-10: 10-bit 4:2:2, one little-endian 16-bit word per sample in
            the same Cb Y0 Cr Y1 order (as V4L2 and DICOM keep samples
            wider than 8 bits), the formulas of ycbcr422 taken mod 1024.

Frames are built from byte slices of precomputed ramps, never a Python loop
per pixel: every row is a slice of a ramp or one of at most 256 distinct
interleaved rows per frame.
"""

from hal.acq import BYTES_PER_PIXEL, Frame, paced_stamp

_INV3 = 2731  # 3 * 2731 = 8193 = 1 (mod 4096)


def _ramp(length):
    """bytes 0, 1, ..., 255, 0, 1, ... of the given length."""
    reps = length // 256 + 1
    return (bytes(range(256)) * reps)[:length]


def _interleave(planes):
    """Interleave equal-length byte planes sample by sample."""
    step = len(planes)
    out = bytearray(step * len(planes[0]))
    try:
        for i, plane in enumerate(planes):
            out[i::step] = plane
    except NotImplementedError:  # MicroPython: no extended slice assignment
        for i, plane in enumerate(planes):
            for j in range(len(plane)):
                out[i + j * step] = plane[j]
    return bytes(out)


class Pattern:
    """Makes frame k of one format and size; keeps only the ramps."""

    def __init__(self, pixel, width, height):
        if pixel not in BYTES_PER_PIXEL:
            raise ValueError("unknown pixel format %r" % (pixel,))
        if pixel in ("ycbcr422", "ycbcr422-10") and width & 1:
            raise ValueError("ycbcr422 needs an even width")
        self.pixel = pixel
        self.width = width
        self.height = height
        self._ramp = _ramp(width + 256)
        if pixel == "mono16":
            words = bytearray(2 * (width + 4096))
            for x in range(width + 4096):
                v = (3 * x) & 4095
                words[2 * x] = v & 255
                words[2 * x + 1] = v >> 8
            self._ramp16 = bytes(words)
        if pixel == "ycbcr422-10":
            words = bytearray(2 * (width + 1024))
            for x in range(width + 1024):
                words[2 * x] = x & 255
                words[2 * x + 1] = (x >> 8) & 3
            self._ramp10 = bytes(words)

    def frame(self, k):
        build = getattr(self, "_" + self.pixel.replace("-", "_"))
        return build(k)

    def _rows(self, row_of, key_period):
        cache = {}
        rows = []
        for y in range(self.height):
            key = y % key_period
            row = cache.get(key)
            if row is None:
                row = cache[key] = row_of(y)
            rows.append(row)
        return b"".join(rows)

    def _rgb8(self, k):
        w, ramp = self.width, self._ramp
        red = ramp[k & 255 : (k & 255) + w]

        def row(y):
            s = (y + k) & 255
            return _interleave((red, bytes((s,)) * w, ramp[s : s + w]))

        return self._rows(row, 256)

    def _mono8(self, k):
        w, ramp = self.width, self._ramp
        return b"".join(ramp[(y + k) & 255 : ((y + k) & 255) + w] for y in range(self.height))

    def _mono16(self, k):
        w2, ramp = 2 * self.width, self._ramp16
        rows = []
        for y in range(self.height):
            m = (((5 * y + 7 * k) & 4095) * _INV3) & 4095
            rows.append(ramp[2 * m : 2 * m + w2])
        return b"".join(rows)

    def _ycbcr422(self, k):
        half, ramp = self.width // 2, self._ramp
        cb = ramp[k & 255 : (k & 255) + half]

        def row(y):
            s = (y + k) & 255
            luma = ramp[s : s + self.width]
            cr = bytes(((y + 2 * k) & 255,)) * half
            return _interleave((cb, luma[0::2], cr, luma[1::2]))

        return self._rows(row, 256)

    def _ycbcr422_10(self, k):
        half, ramp = self.width // 2, self._ramp10
        c = k & 1023
        cb = ramp[2 * c : 2 * (c + half)]

        def row(y):
            s = (y + k) & 1023
            luma = ramp[2 * s : 2 * (s + self.width)]
            cr = (y + 2 * k) & 1023
            return _interleave((cb[0::2], cb[1::2], luma[0::4], luma[1::4],
                                bytes((cr & 255,)) * half, bytes((cr >> 8,)) * half, luma[2::4], luma[3::4]))

        return self._rows(row, 1024)


class SimBoard:
    """The simulated board as an acquisition device (hal.acq interface).

    Unpaced by default: read() returns the next frame at once. With a clock
    (hal clock interface: ``monotonic_ns()`` and ``sleep_ns(n)``) and
    paced=True it delivers frames at ``rate``.
    """

    def __init__(self, width=640, height=480, pixel="rgb8", rate=(30, 1), clock=None, paced=False):
        self.width = width
        self.height = height
        self.pixel = pixel
        self.rate = rate
        self._pattern = Pattern(pixel, width, height)
        self._clock = clock
        self._paced = paced and clock is not None
        self._k = 0
        self._t0 = None
        self._running = False

    def start(self):
        self._running = True
        self._t0 = self._clock.monotonic_ns() if self._clock else 0

    def read(self, timeout_s=None):
        if not self._running:
            raise OSError("acquisition not started")
        k = self._k
        stamp = paced_stamp(k, self._t0, self.rate, self._clock, self._paced, timeout_s)
        if stamp is None:
            return None
        self._k = k + 1
        return Frame(self._pattern.frame(k), k, stamp)

    def stop(self):
        self._running = False
