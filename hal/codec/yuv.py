"""libyuv (Debian's libyuv0) through ctypes: the colour conversions both
H.264 drivers feed their encoder with (x264.py into x264's I420 picture,
v4l2m2m.py into the device's mapped 4:2:0 planes).

BT.601 limited range, what YBR_PARTIAL_420 is (PS3.3 C.7.6.3.1.2).
SOURCES: the acquisition formats taken (hal.acq), with the bytes of a pixel
and libyuv's conversion of each to I420. libyuv's "RAW" is R, G, B in
memory (its "RGB24" is B, G, R): modgate's rgb8. UYVY is modgate's
ycbcr422, 4:2:2 already: only its chroma rows are halved (libyuv averages
each pair of rows), the luma goes through untouched.
"""

import ctypes

from hal.codec import load_library

SOURCES = {"rgb8": (3, "RAWToI420"), "ycbcr422": (2, "UYVYToI420")}

_lib = []


def libyuv():
    """The library, its functions' argument types set (loaded once)."""
    if not _lib:
        lib = load_library("yuv", "libyuv.so.0", "libyuv0")
        plane = [ctypes.c_void_p, ctypes.c_int]
        size = [ctypes.c_int, ctypes.c_int]
        # int RAWToI420(const uint8_t* src_raw, int src_stride_raw, uint8_t* dst_y, int dst_stride_y,
        #               uint8_t* dst_u, int dst_stride_u, uint8_t* dst_v, int dst_stride_v, int width, int height)
        lib.RAWToI420.argtypes = plane * 4 + size
        # int UYVYToI420(const uint8_t* src_uyvy, int src_stride_uyvy, ...the same)
        lib.UYVYToI420.argtypes = plane * 4 + size
        # int UYVYToNV12(const uint8_t* src_uyvy, int src_stride_uyvy, uint8_t* dst_y, int dst_stride_y,
        #                uint8_t* dst_uv, int dst_stride_uv, int width, int height)
        lib.UYVYToNV12.argtypes = plane * 3 + size
        # void MergeUVPlane(const uint8_t* src_u, int src_stride_u, const uint8_t* src_v, int src_stride_v,
        #                   uint8_t* dst_uv, int dst_stride_uv, int width, int height)
        lib.MergeUVPlane.argtypes = plane * 3 + size
        lib.MergeUVPlane.restype = None
        _lib.append(lib)
    return _lib[0]
