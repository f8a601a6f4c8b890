"""MPEG-4 AVC/H.264 High Profile with libx264 (Debian's libx264-164, about
1 MB on amd64 and arm64) through ctypes; RGB or UYVY to 4:2:0 with libyuv.

Why this and not PyAV: PyAV's wheels bundle FFmpeg (about 40 MB); this
needs two small shared libraries the box image carries anyway, and no
compiler. The parameters are set by name (x264_param_parse, the x264 CLI's
option names), so only three members of x264_param_t and the picture and
NAL structs are laid out here; tests/test_codec.py compiles a C program
against x264.h and checks every size and offset below.

Encoding settings bounded for an embedded box (SETTINGS_MEMORY):
tune zerolatency (no lookahead, no B-frames, no frame threads: one picture
in, one access unit out), 1 thread by default, a fixed number of reference
frames. Peak memory is then a function of the frame size only.

Colour (PS3.5 8.2.8, PS3.3 C.7.6.3.1.2): the YCbCr is BT.601 with the
limited ("partial") range, which the object declares as
YBR_PARTIAL_420; the VUI says so too (--range tv, --colormatrix bt470bg).
"""

import ctypes

from hal.codec import CodecError, frame_address, load_library
from hal.codec.yuv import SOURCES, libyuv

# -- the ABI of x264.h (X264_BUILD 164), LP64 ------------------------------------
X264_BUILD = 164
PARAM_SIZE = 1024  # sizeof(x264_param_t)
PARAM_WIDTH = 28  # offsetof(x264_param_t, i_width)
PARAM_HEIGHT = 32
PARAM_CSP = 36
PICTURE_SIZE = 240  # sizeof(x264_picture_t)
PICTURE_TYPE = 0  # offsetof(x264_picture_t, i_type)
PICTURE_PTS = 16
PICTURE_IMG = 40
IMAGE_STRIDE = 8  # offsetof(x264_image_t, i_stride)
IMAGE_PLANE = 24
NAL_SIZE = 40  # sizeof(x264_nal_t)
NAL_TYPE = 4
NAL_PAYLOAD_LENGTH = 20
NAL_PAYLOAD = 24
CSP_I420 = 0x0002
TYPE_AUTO = 0x0000
# The profiles and levels of the H.264 transfer syntaxes (PS3.5 8.2.8):
# (x264 profile, level_idc text).
PROFILES = {"high": "high"}
# What each bounded setting costs, for the README and the config schema: a
# 4:2:0 picture is 1.5 bytes a pixel; x264 keeps about (reference frames +
# 3) such pictures, plus its per-thread scratch.
SETTINGS_MEMORY = {
    "ref": "one 4:2:0 picture (1.5 bytes/pixel, about 3 MB at 1080p) per reference frame",
    "threads": "one row of macroblocks of scratch a thread (slice threads), small next to the pictures",
    "rc-lookahead": "0: no lookahead (a lookahead of N holds N more pictures)",
    "bframes": "0: no B-frames (each would hold one more picture and delay output)",
}


_libs = {}


def _x264():
    if "x264" not in _libs:
        lib = load_library("x264", "libx264.so.164", "libx264-164")
        lib.x264_param_default_preset.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        lib.x264_param_parse.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        lib.x264_param_apply_profile.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        opener = getattr(lib, "x264_encoder_open_%d" % X264_BUILD)
        opener.argtypes = [ctypes.c_void_p]
        opener.restype = ctypes.c_void_p
        lib.opener = opener
        lib.x264_encoder_encode.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                            ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_void_p]
        lib.x264_encoder_delayed_frames.argtypes = [ctypes.c_void_p]
        lib.x264_encoder_close.argtypes = [ctypes.c_void_p]
        lib.x264_picture_init.argtypes = [ctypes.c_void_p]
        lib.x264_picture_alloc.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.x264_picture_clean.argtypes = [ctypes.c_void_p]
        _libs["x264"] = lib
    return _libs["x264"]


class X264Encoder:
    """settings: bitrate (kbit/s, average; None: quality crf 23), gop
    (frames between IDR pictures; None: 2 s worth), level ("4.1", "4.2"),
    bluray (True for the BD-compatible transfer syntax), threads, ref,
    preset. Each encode() gives the access units ready, one a picture."""

    def __init__(self, width, height, pixel, rate=(30, 1), bitrate=None, gop=None, level="4.1", bluray=False,
                 threads=1, ref=2, preset="veryfast"):
        if pixel not in SOURCES:
            raise CodecError("the H.264 encoder takes %s frames, not %s" % (" or ".join(SOURCES), pixel))
        if width % 2 or height % 2:
            raise CodecError("H.264 4:2:0 needs an even width and height, not %dx%d" % (width, height))
        self.width, self.height, self.rate = width, height, rate
        self._bpp, convert = SOURCES[pixel]
        self._x = _x264()
        self._convert = getattr(libyuv(), convert)
        self._param = ctypes.create_string_buffer(PARAM_SIZE)
        if self._x.x264_param_default_preset(self._param, preset.encode(), b"zerolatency") < 0:
            raise CodecError("x264 does not know preset %r" % preset)
        for offset, value in ((PARAM_WIDTH, width), (PARAM_HEIGHT, height), (PARAM_CSP, CSP_I420)):
            ctypes.c_int.from_buffer(self._param, offset).value = value
        options = [
            ("fps", "%d/%d" % rate), ("threads", str(threads)), ("sliced-threads", "1" if threads > 1 else "0"),
            ("rc-lookahead", "0"), ("sync-lookahead", "0"), ("bframes", "0"), ("ref", str(ref)),
            ("keyint", str(gop or max(1, 2 * rate[0] // rate[1]))), ("repeat-headers", "1"), ("annexb", "1"),
            ("level", level), ("fullrange", "off"), ("colorprim", "bt470bg"), ("transfer", "bt470bg"),
            ("colormatrix", "bt470bg"), ("log", "-1"), ("aud", "1" if bluray else "0"),
        ]
        if bluray:
            options.append(("bluray-compat", "1"))
        if bitrate:
            options += [("bitrate", str(int(bitrate))), ("vbv-maxrate", str(int(bitrate))),
                        ("vbv-bufsize", str(int(bitrate)))]
        else:
            # Capped to what Level 4.1 High allows (62.5 Mbit/s), with room.
            options += [("crf", "23"), ("vbv-maxrate", "40000"), ("vbv-bufsize", "40000")]
        for name, value in options:
            if self._x.x264_param_parse(self._param, name.encode(), value.encode()) != 0:
                raise CodecError("x264 refused %s=%s" % (name, value))
        if self._x.x264_param_apply_profile(self._param, b"high") != 0:
            raise CodecError("x264 cannot make High Profile with these settings")
        self._handle = self._x.opener(self._param)
        if not self._handle:
            raise CodecError("x264 could not open an encoder for %dx%d at %d/%d fps" % (width, height, rate[0],
                                                                                       rate[1]))
        self._picture = ctypes.create_string_buffer(PICTURE_SIZE)
        self._out = ctypes.create_string_buffer(PICTURE_SIZE)
        self._x.x264_picture_init(self._picture)
        if self._x.x264_picture_alloc(self._picture, CSP_I420, width, height) != 0:
            self._x.x264_encoder_close(self._handle)
            raise CodecError("x264 could not allocate a %dx%d picture" % (width, height))
        img = PICTURE_IMG
        self._planes = [ctypes.c_void_p.from_buffer(self._picture, img + IMAGE_PLANE + 8 * i).value for i in range(3)]
        self._strides = [ctypes.c_int.from_buffer(self._picture, img + IMAGE_STRIDE + 4 * i).value for i in range(3)]
        self._pts = 0
        self.frames_in = 0
        self.units_out = 0

    def encode(self, frame):
        """The access units (bytes) ready after one frame."""
        if len(frame) != self.width * self.height * self._bpp:
            raise CodecError("frame of %d bytes; %dx%d is %d" % (len(frame), self.width, self.height,
                                                                self.width * self.height * self._bpp))
        source, address = frame_address(frame)
        y, u, v = self._planes
        sy, su, sv = self._strides
        if self._convert(address, self.width * self._bpp, y, sy, u, su, v, sv, self.width, self.height) != 0:
            raise CodecError("libyuv could not convert the frame")
        ctypes.c_int.from_buffer(self._picture, PICTURE_TYPE).value = TYPE_AUTO
        ctypes.c_int64.from_buffer(self._picture, PICTURE_PTS).value = self._pts
        self._pts += 1
        self.frames_in += 1
        return self._encode(self._picture)

    def flush(self):
        """The access units of the pictures the encoder still holds."""
        units = []
        while self._x.x264_encoder_delayed_frames(self._handle) > 0:
            got = self._encode(None)
            if not got:
                break
            units.extend(got)
        return units

    def _encode(self, picture):
        nals = ctypes.c_void_p()
        count = ctypes.c_int()
        size = self._x.x264_encoder_encode(self._handle, ctypes.byref(nals), ctypes.byref(count), picture,
                                           self._out)
        if size < 0:
            raise CodecError("x264_encoder_encode failed (%d)" % size)
        if size == 0:
            return []
        # x264 lays the NALs of one access unit out back to back: the first
        # NAL's payload pointer and the total size are the whole unit.
        first = ctypes.c_void_p.from_address(nals.value + NAL_PAYLOAD).value
        self.units_out += 1
        return [ctypes.string_at(first, size)]

    def close(self):
        if getattr(self, "_handle", None):
            self._x.x264_picture_clean(self._picture)
            self._x.x264_encoder_close(self._handle)
            self._handle = None

    def __del__(self):
        self.close()
