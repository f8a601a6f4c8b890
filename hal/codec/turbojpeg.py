"""JPEG Baseline (ISO/IEC 10918-1 process 1: 8-bit, Huffman) with
libjpeg-turbo's TurboJPEG API (Debian's libturbojpeg0, about 0.8 MB)
through ctypes. One buffer of tjBufSize() bytes is made at open and reused
for every frame (TJFLAG_NOREALLOC): memory is that of one worst-case JPEG.

Colour: rgb8 frames become YCbCr 4:2:0 in the JPEG (JFIF), which the object
declares as YBR_FULL_422's sibling for JPEG Baseline, YBR_FULL_422 when the
chroma is subsampled horizontally only, else as PS3.5 8.2.1 says for
4:2:0 (the encoder in firmware/dicom writes YBR_FULL_422 with 4:2:2, so
this driver subsamples 4:2:2); mono8 frames stay MONOCHROME2.
"""

import ctypes

from hal.codec import CodecError, frame_address, load_library

TJPF_RGB = 0
TJPF_GRAY = 6
TJSAMP_422 = 1
TJSAMP_GRAY = 3
TJFLAG_NOREALLOC = 1024

_lib = []


def _turbojpeg():
    if not _lib:
        lib = load_library("turbojpeg", "libturbojpeg.so.0", "libturbojpeg0")
        lib.tjInitCompress.restype = ctypes.c_void_p
        lib.tjBufSize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.tjBufSize.restype = ctypes.c_ulong
        lib.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                    ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
                                    ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.tjDestroy.argtypes = [ctypes.c_void_p]
        lib.tjGetErrorStr2.argtypes = [ctypes.c_void_p]
        lib.tjGetErrorStr2.restype = ctypes.c_char_p
        _lib.append(lib)
    return _lib[0]


class JPEGEncoder:
    """quality: 1..100 (libjpeg's scale). encode(frame) gives one JPEG."""

    def __init__(self, width, height, pixel, quality=90):
        if pixel not in ("rgb8", "mono8"):
            raise CodecError("JPEG Baseline takes rgb8 or mono8 frames, not %s" % pixel)
        if not 1 <= quality <= 100:
            raise CodecError("JPEG quality is 1 to 100, not %s" % quality)
        self._tj = _turbojpeg()
        self.width, self.height, self.pixel, self.quality = width, height, pixel, quality
        self._format, self._sampling, self._bytes = (TJPF_RGB, TJSAMP_422, 3) if pixel == "rgb8" else (
            TJPF_GRAY, TJSAMP_GRAY, 1)
        self._handle = self._tj.tjInitCompress()
        if not self._handle:
            raise CodecError("tjInitCompress failed")
        self._size = self._tj.tjBufSize(width, height, self._sampling)
        self._buffer = ctypes.create_string_buffer(self._size)
        self.subsampling = "422" if pixel == "rgb8" else None

    def encode(self, frame):
        if len(frame) != self.width * self.height * self._bytes:
            raise CodecError("frame of %d bytes; %dx%d %s is %d" % (len(frame), self.width, self.height, self.pixel,
                                                                   self.width * self.height * self._bytes))
        source, address = frame_address(frame)
        out = ctypes.c_void_p(ctypes.addressof(self._buffer))
        size = ctypes.c_ulong(self._size)
        if self._tj.tjCompress2(self._handle, address, self.width, 0, self.height, self._format, ctypes.byref(out),
                                ctypes.byref(size), self._sampling, self.quality, TJFLAG_NOREALLOC) != 0:
            raise CodecError("tjCompress2: %s" % self._tj.tjGetErrorStr2(self._handle).decode("ascii", "replace"))
        return [ctypes.string_at(out.value, size.value)]

    def flush(self):
        return []

    def close(self):
        if getattr(self, "_handle", None):
            self._tj.tjDestroy(self._handle)
            self._handle = None

    def __del__(self):
        self.close()
