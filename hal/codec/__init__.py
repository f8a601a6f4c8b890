"""Codecs: compress frames for the stored object (issue 16's codec HAL).

    enc = open_encoder(kind, width, height, pixel, rate=(30, 1), **settings)
    for unit in enc.encode(frame_bytes):   # each: one picture's bytes
        ...
    for unit in enc.flush():               # what the encoder still held
        ...
    enc.close()

kind "h264": an MPEG-4 AVC/H.264 encoder; each unit is one access unit
(Annex B byte stream, PS3.5 8.2.8), SPS/PPS before every IDR picture so that
any IDR starts an independently decodable stream. kind "jpeg": JPEG
Baseline (ISO/IEC 10918-1 process 1), each unit one frame's whole JPEG.
Frames come in the acquisition's pixel formats (hal/acq): rgb8 or
ycbcr422 (UYVY) for H.264, rgb8 or mono8 for JPEG.

Memory is bounded by the frame size, never by the clip: the H.264 encoder
runs without lookahead or B-frames and with a fixed number of reference
frames, threads and pictures in flight (x264.py's SETTINGS_MEMORY says what
each costs).

Drivers: x264.py (libx264 through ctypes, with libyuv, yuv.py, for the
colour conversion), v4l2m2m.py (a hardware encoder behind the V4L2 stateful
encoder interface), turbojpeg.py (libturbojpeg through ctypes). A board
file says which a board has (board data "codec").
"""

KINDS = ("h264", "jpeg")
# kind -> the drivers of it, the first the default.
DRIVERS = {"h264": ("x264", "v4l2-m2m"), "jpeg": ("turbojpeg",)}


def frame_address(frame):
    """(keep, address) of a frame's bytes for a C call, without copying it:
    bytes through c_char_p, a writable buffer (bytearray, mmap) in place;
    anything else is copied once. keep must stay referenced during the call."""
    import ctypes

    if isinstance(frame, bytes):
        keep = ctypes.c_char_p(frame)
        return keep, ctypes.cast(keep, ctypes.c_void_p).value
    try:
        keep = (ctypes.c_char * len(frame)).from_buffer(frame)
    except TypeError:  # read-only (a memoryview of bytes)
        keep = (ctypes.c_char * len(frame)).from_buffer_copy(frame)
    return keep, ctypes.addressof(keep)


class CodecError(Exception):
    """The codec cannot be opened with these settings, or failed."""


def load_library(name, soname, package):
    """A codec library through ctypes: by ctypes.util.find_library(name),
    else its soname; CodecError naming the Debian package if missing."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library(name) or soname)
    except OSError as err:
        raise CodecError("%s is not installed (Debian: %s): %s" % (soname, package, err))


def open_encoder(kind, width, height, pixel, rate=(30, 1), driver=None, **settings):
    if kind in DRIVERS and driver not in (None,) + DRIVERS[kind]:
        raise CodecError("no %s driver %r; one of %s" % (kind, driver, ", ".join(DRIVERS[kind])))
    if kind == "h264" and driver == "v4l2-m2m":
        from hal.codec.v4l2m2m import M2MEncoder

        return M2MEncoder(width, height, pixel, rate, **settings)
    if kind == "h264":
        from hal.codec.x264 import X264Encoder

        return X264Encoder(width, height, pixel, rate, **settings)
    if kind == "jpeg":
        from hal.codec.turbojpeg import JPEGEncoder

        return JPEGEncoder(width, height, pixel, **settings)
    raise CodecError("no codec %r; one of %s" % (kind, ", ".join(KINDS)))
