"""MPEG-4 AVC/H.264 with a hardware encoder behind the V4L2 stateful
encoder interface (dev-encoder.rst, on dev-mem2mem.rst): the interface the
encoders of gateway SoCs expose (the i.MX 8M Plus VPU, Rockchip, Allwinner,
Qualcomm Venus). Standard library, plus libyuv through ctypes for the
colour conversion (yuv.py, as the software driver x264.py).

One memory-to-memory device, two queues on one file descriptor: raw frames
go in on the OUTPUT queue, the bitstream comes out on the CAPTURE queue
(hal/v4l2.py's Queue, the same code that captures from V4L2 devices). The
kernel ABI is checked by gcc against videodev2.h in tests/test_v4l2.py.

What the encoder is asked for (ext-ctrls-codec.rst), as for x264.py: High
Profile at the transfer syntax's level, no B-frames (pictures leave in
order, nothing held back), a GOP of `gop` pictures, the bitrate, SPS/PPS
joined to the first picture and repeated before every IDR where the device
can, access unit delimiters for the BD-compatible syntax; colour BT.601
limited range (YBR_PARTIAL_420, PS3.3 C.7.6.3.1.2) on the OUTPUT format.
Memory: `buffers` raw frames and `buffers` bitstream buffers, mapped from
the driver: a function of the frame size only.

AccessUnits turns what the CAPTURE queue gives into modgate's units, one a
picture (PS3.5 8.2.8): a buffer of parameter sets alone (header mode
"separate") is joined to the picture after it, and an IDR picture the
device sent without SPS/PPS gets the last ones seen, so that every IDR
starts an independently decodable stream, as the split at 4 GiB needs.
"""

import ctypes
import errno
import os
import select

from hal.codec import CodecError, frame_address
from hal.codec.yuv import SOURCES, libyuv
from hal.v4l2 import (
    ENCODER_CMD,
    STREAMPARM,
    V4L2_BUF_FLAG_ERROR,
    V4L2_BUF_FLAG_LAST,
    V4L2_BUF_TYPE_VIDEO_CAPTURE,
    V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
    V4L2_BUF_TYPE_VIDEO_OUTPUT,
    V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE,
    V4L2_CAP_STREAMING,
    V4L2_CAP_VIDEO_M2M,
    V4L2_CAP_VIDEO_M2M_MPLANE,
    V4L2_CID_MPEG_VIDEO_AU_DELIMITER,
    V4L2_CID_MPEG_VIDEO_B_FRAMES,
    V4L2_CID_MPEG_VIDEO_BITRATE,
    V4L2_CID_MPEG_VIDEO_BITRATE_MODE,
    V4L2_CID_MPEG_VIDEO_GOP_SIZE,
    V4L2_CID_MPEG_VIDEO_H264_LEVEL,
    V4L2_CID_MPEG_VIDEO_H264_PROFILE,
    V4L2_CID_MPEG_VIDEO_HEADER_MODE,
    V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
    V4L2_COLORSPACE_SMPTE170M,
    V4L2_ENC_CMD_STOP,
    V4L2_MPEG_VIDEO_BITRATE_MODE_CBR,
    V4L2_MPEG_VIDEO_BITRATE_MODE_VBR,
    V4L2_MPEG_VIDEO_H264_LEVEL_4_1,
    V4L2_MPEG_VIDEO_H264_LEVEL_4_2,
    V4L2_MPEG_VIDEO_H264_PROFILE_HIGH,
    V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME,
    V4L2_PIX_FMT_FWHT,
    V4L2_PIX_FMT_H264,
    V4L2_PIX_FMT_NV12,
    V4L2_PIX_FMT_NV12M,
    V4L2_PIX_FMT_YUV420,
    V4L2_PIX_FMT_YUV420M,
    V4L2_QUANTIZATION_LIM_RANGE,
    V4L2_YCBCR_ENC_601,
    CONTROL,
    VIDIOC_ENCODER_CMD,
    VIDIOC_S_CTRL,
    VIDIOC_S_PARM,
    Queue,
    device_caps,
    formats,
    fourcc_name,
    ioctl,
    pack,
)
from hal.v4l2 import set_format as v4l2_set_format

LEVELS = {"4.1": V4L2_MPEG_VIDEO_H264_LEVEL_4_1, "4.2": V4L2_MPEG_VIDEO_H264_LEVEL_4_2}
# The coded formats: H.264 for objects; FWHT (vicodec's, the kernel's test
# codec) only to run the driver's mechanics in the self-test, never stored.
CODED = {"h264": V4L2_PIX_FMT_H264, "fwht": V4L2_PIX_FMT_FWHT}
CODED_NAMES = {"h264": "H.264", "fwht": "FWHT"}
# The raw formats written here, best first: (fourcc, planes in the buffer,
# chroma interleaved). pixfmt-yuv-planar.rst.
RAW_FORMATS = (
    (V4L2_PIX_FMT_NV12M, 2, True),
    (V4L2_PIX_FMT_NV12, 1, True),
    (V4L2_PIX_FMT_YUV420M, 3, False),
    (V4L2_PIX_FMT_YUV420, 1, False),
)
# What a driver without a bitrate asked for gets: 0.1 bit a pixel, capped
# at 40 Mbit/s as x264.py caps its VBV (Level 4.1 High allows 62.5).
DEFAULT_BITS_PER_PIXEL = 0.1
MAX_DEFAULT_KBIT = 40000


# -- H.264 access units (ITU-T H.264 7.3.1, Annex B) ---------------------------
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9


def nal_units(data):
    """(start, nal_unit_type) of each NAL unit of an Annex B byte stream,
    start being where its start code (00 00 01, or 00 00 00 01) begins."""
    found = []
    at = data.find(b"\0\0\1")
    while at >= 0 and at + 3 < len(data):
        start = at - 1 if at > 0 and data[at - 1] == 0 else at
        found.append((start, data[at + 3] & 0x1F))
        at = data.find(b"\0\0\1", at + 3)
    return found


class AccessUnits:
    """The CAPTURE buffers' bitstream as units of one picture each, every
    IDR picture preceded by the SPS and PPS (see the module's text)."""

    def __init__(self):
        self.pending = b""  # parameter sets waiting for their picture
        self.parameter_sets = b""  # the last SPS + PPS seen

    def add(self, data):
        """The units completed by one CAPTURE buffer's bytes (0 or 1)."""
        nals = nal_units(data)
        if not nals:
            raise CodecError("the encoder gave %d bytes with no H.264 start code" % len(data))
        self._remember(data, nals)
        if not any(1 <= kind <= 5 for _, kind in nals):
            self.pending += data
            return []
        kinds = [kind for _, kind in nals]
        # H.264 7.4.1.2.3: an access unit delimiter, if any, comes first;
        # parameter sets go after it.
        cut = nals[1][0] if kinds[0] == NAL_AUD and len(nals) > 1 else nals[0][0]
        if NAL_IDR in kinds and NAL_SPS not in kinds + [kind for _, kind in nal_units(self.pending)]:
            if not self.parameter_sets:
                raise CodecError("the encoder sent an IDR picture with no SPS/PPS before it")
            self.pending = self.parameter_sets + self.pending
        unit, self.pending = data[:cut] + self.pending + data[cut:], b""
        return [unit]

    def _remember(self, data, nals):
        ends = [start for start, _ in nals[1:]] + [len(data)]
        sets = [data[start:end] for (start, kind), end in zip(nals, ends) if kind in (NAL_SPS, NAL_PPS)]
        if sets:
            self.parameter_sets = b"".join(sets)


# -- finding the device ------------------------------------------------------------
def find_encoder(root="/dev", coded="h264"):
    """The first /dev/videoN that is a memory-to-memory device encoding
    coded (CODED); CodecError naming what was looked at otherwise."""
    looked = []
    names = sorted((n for n in os.listdir(root) if n.startswith("video") and n[5:].isdigit()),
                   key=lambda n: int(n[5:])) if os.path.isdir(root) else []
    for name in names:
        path = os.path.join(root, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as err:
            looked.append("%s (%s)" % (path, err.strerror))
            continue
        try:
            driver, card, caps = device_caps(fd)
            if caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE):
                cap_type = (V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE if caps & V4L2_CAP_VIDEO_M2M_MPLANE
                            else V4L2_BUF_TYPE_VIDEO_CAPTURE)
                if CODED[coded] in formats(fd, cap_type):
                    return path
                looked.append("%s (%s, %s: no %s out)" % (path, driver, card, CODED_NAMES[coded]))
            else:
                looked.append("%s (%s, %s: not memory-to-memory)" % (path, driver, card))
        except OSError as err:
            looked.append("%s (%s)" % (path, err.strerror))
        finally:
            os.close(fd)
    raise CodecError("no V4L2 memory-to-memory %s encoder; looked at: %s" % (
        CODED_NAMES[coded], ", ".join(looked) or "no /dev/video* at all"))


class M2MEncoder:
    """settings as x264.py's X264Encoder: bitrate (kbit/s; None: 0.1 bit a
    pixel, at most 40 Mbit/s), gop, level ("4.1", "4.2"), bluray; plus
    device (None: the first H.264 encoder found), buffers, timeout_s (how
    long the device may keep a frame or the drain waiting), coded ("h264";
    "fwht" runs the same sequence on vicodec, one unit a buffer, with none
    of the H.264 controls: for the self-test only)."""

    def __init__(self, width, height, pixel, rate=(30, 1), bitrate=None, gop=None, level="4.1", bluray=False,
                 device=None, buffers=4, timeout_s=2.0, cbr=False, coded="h264"):
        if pixel not in SOURCES:
            raise CodecError("the H.264 encoder takes %s frames, not %s" % (" or ".join(SOURCES), pixel))
        self.pixel = pixel
        if width % 2 or height % 2:
            raise CodecError("H.264 4:2:0 needs an even width and height, not %dx%d" % (width, height))
        if level not in LEVELS:
            raise CodecError("level %s; one of %s" % (level, ", ".join(sorted(LEVELS))))
        self.width, self.height, self.rate = width, height, rate
        self.timeout_s = timeout_s
        if coded not in CODED:
            raise CodecError("coded format %r; one of %s" % (coded, ", ".join(sorted(CODED))))
        self.coded = coded
        self.device = device or find_encoder(coded=coded)
        self.frames_in = 0
        self.units_out = 0
        self._units = AccessUnits() if coded == "h264" else None
        self._out = self._cap = None
        self._drained = False
        self._fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK)
        try:
            self._open(bitrate, gop, level, bluray, buffers, cbr)
        except BaseException:
            self.close()
            raise

    # -- dev-encoder.rst "Initialization" ---------------------------------------
    def _open(self, bitrate, gop, level, bluray, buffers, cbr):
        try:
            driver, card, caps = device_caps(self._fd)
        except OSError as err:
            raise CodecError("%s is not a V4L2 device (%s)" % (self.device, err.strerror))
        self.name = "%s (%s, %s)" % (self.device, driver, card)
        if not caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE) or not caps & V4L2_CAP_STREAMING:
            raise CodecError("%s is not a memory-to-memory device with streaming I/O" % self.name)
        self._mplane = bool(caps & V4L2_CAP_VIDEO_M2M_MPLANE)
        out_type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE if self._mplane else V4L2_BUF_TYPE_VIDEO_OUTPUT
        cap_type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE if self._mplane else V4L2_BUF_TYPE_VIDEO_CAPTURE
        coded = CODED[self.coded]
        offered = formats(self._fd, cap_type)
        if coded not in offered:
            raise CodecError("%s does not encode %s (it gives %s)" % (self.name, CODED_NAMES[self.coded], ", ".join(
                fourcc_name(f) for f in offered) or "nothing"))
        # 1. The coded format first, on CAPTURE: it decides which raw
        # formats OUTPUT then offers.
        self._set_coded_format(cap_type, coded)
        # 2. The raw format, on OUTPUT: the best one written here.
        offered = formats(self._fd, out_type)
        for fourcc, planes, interleaved in RAW_FORMATS:
            if fourcc in offered and (self._mplane or planes == 1):
                break
        else:
            raise CodecError("%s takes none of the 4:2:0 formats written here (%s); it offers %s" % (
                self.name, ", ".join(fourcc_name(f[0]) for f in RAW_FORMATS),
                ", ".join(fourcc_name(f) for f in offered) or "nothing"))
        self.raw_format = fourcc_name(fourcc)
        self._interleaved = interleaved
        layout = self._set_format(out_type, fourcc)
        # 3. The frame rate, on OUTPUT (vidioc-g-parm.rst: timeperframe is
        # seconds a frame); a driver without it is told nothing.
        num, den = self.rate
        try:
            ioctl(self._fd, VIDIOC_S_PARM, pack(STREAMPARM, {
                "type": out_type, "parm.capture.timeperframe.numerator": den,
                "parm.capture.timeperframe.denominator": num}))
        except OSError as err:
            if err.errno not in (errno.ENOTTY, errno.EINVAL):
                raise
        # 4. The controls.
        kbit = bitrate or min(MAX_DEFAULT_KBIT, int(self.width * self.height * num / den * DEFAULT_BITS_PER_PIXEL
                                                    / 1000))
        h264 = self.coded == "h264"
        if h264:
            self._control(V4L2_CID_MPEG_VIDEO_H264_PROFILE, V4L2_MPEG_VIDEO_H264_PROFILE_HIGH, "High Profile")
            self._control(V4L2_CID_MPEG_VIDEO_H264_LEVEL, LEVELS[level], "level %s" % level)
            self._control(V4L2_CID_MPEG_VIDEO_BITRATE_MODE,
                          V4L2_MPEG_VIDEO_BITRATE_MODE_CBR if cbr else V4L2_MPEG_VIDEO_BITRATE_MODE_VBR, None)
            self._control(V4L2_CID_MPEG_VIDEO_BITRATE, kbit * 1000, "%d kbit/s" % kbit)
        gop = gop or max(1, 2 * num // den)
        self._control(V4L2_CID_MPEG_VIDEO_GOP_SIZE, gop, "a GOP of %d" % gop)
        if h264:
            # No B-frames; a device that has none has no such control.
            self._control(V4L2_CID_MPEG_VIDEO_B_FRAMES, 0, None)
            self._control(V4L2_CID_MPEG_VIDEO_HEADER_MODE, V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME, None)
            self._control(V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 1, None)  # AccessUnits does it otherwise
        if bluray:
            # PS3.5 8.2.8: BD-compatible streams carry access unit delimiters.
            self._control(V4L2_CID_MPEG_VIDEO_AU_DELIMITER, 1, "access unit delimiters (BD-compatible)")
        # 5. The buffers: raw frames in, bitstream out.
        self._out = Queue(self._fd, out_type)
        if not self._out.request(buffers, len(layout)):
            raise CodecError("%s gave no OUTPUT buffers" % self.name)
        self._layout = layout
        self._addresses = [[address(m) for m in maps] for maps in self._out.planes]
        self._cap = Queue(self._fd, cap_type)
        if not self._cap.request(buffers, 1):
            raise CodecError("%s gave no CAPTURE buffers" % self.name)
        for index in sorted(self._cap.free):
            self._cap.queue(index)
        self._out.stream(True)
        self._cap.stream(True)
        self._converter = Converter(self.width, self.height, layout, interleaved, self.pixel)

    def _set_format(self, buf_type, fourcc):
        return set_format(self._fd, buf_type, fourcc, self.width, self.height, self.name)

    def _set_coded_format(self, buf_type, fourcc):
        """S_FMT on CAPTURE (dev-encoder.rst step 1): the coded format and
        the coded size; the driver sets sizeimage."""
        set_format(self._fd, buf_type, fourcc, self.width, self.height, self.name, raw=False)

    def _control(self, cid, value, what):
        """Set one control (vidioc-g-ctrl.rst); what names a setting the
        stored object depends on, refused if the device will not take it.
        Others (what None) are best effort."""
        try:
            ioctl(self._fd, VIDIOC_S_CTRL, pack(CONTROL, {"id": cid, "value": value}))
        except OSError as err:
            if what and err.errno in (errno.EINVAL, errno.ERANGE, errno.EACCES, errno.ENOTTY):
                raise CodecError("%s will not encode %s (%s)" % (self.name, what, err.strerror))
            if what:
                raise

    # -- dev-encoder.rst "Encoding" -----------------------------------------------
    def encode(self, frame):
        """The access units ready after one frame: the device works behind,
        so often none, and more later."""
        size = self.width * self.height * SOURCES[self.pixel][0]
        if len(frame) != size:
            raise CodecError("frame of %d bytes; %dx%d %s is %d" % (len(frame), self.width, self.height, self.pixel,
                                                                   size))
        units = []
        while not self._out.free:
            # Every OUTPUT buffer is the device's: take back one it is done
            # with, keeping the bitstream flowing meanwhile.
            units += self._collect()
            if self._out.dequeue() is None and not self._wait():
                raise CodecError("%s kept every frame for %s s" % (self.name, self.timeout_s))
        index = min(self._out.free)
        self._convert(frame, index)
        self._out.queue(index, [size for _, size in self._layout], timestamp_us=self.frames_in)
        self.frames_in += 1
        return units + self._collect()

    def flush(self):
        """Drain (dev-encoder.rst "Drain"): V4L2_ENC_CMD_STOP, then every
        unit up to the buffer flagged LAST."""
        try:
            ioctl(self._fd, VIDIOC_ENCODER_CMD, pack(ENCODER_CMD, {"cmd": V4L2_ENC_CMD_STOP}))
        except OSError as err:
            raise CodecError("%s cannot be drained (VIDIOC_ENCODER_CMD: %s)" % (self.name, err.strerror))
        units = []
        while not self._drained:
            units += self._collect()
            self._out.dequeue()
            if not self._drained and not self._wait():
                raise CodecError("%s gave no last buffer within %s s of the drain" % (self.name, self.timeout_s))
        return units

    def close(self):
        for q in (getattr(self, "_out", None), getattr(self, "_cap", None)):
            if q is not None:
                try:
                    q.release()
                except OSError:
                    pass
        self._out = self._cap = None
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()

    # -- the queues' work -----------------------------------------------------------
    def _collect(self):
        """The units of every CAPTURE buffer filled, each buffer handed
        straight back (until the LAST one)."""
        units = []
        while not self._drained:
            try:
                got = self._cap.dequeue()
            except OSError as err:
                if err.errno != errno.EPIPE:  # vidioc-qbuf.rst: EPIPE after LAST
                    raise
                self._drained = True
                break
            if got is None:
                break
            index, used, offset = got["index"], got["bytesused"][0], got["data_offset"][0]
            if got["flags"] & V4L2_BUF_FLAG_ERROR:
                raise CodecError("%s flagged an encoded buffer as corrupt" % self.name)
            # buffer.rst: a plane's bytesused counts its data_offset too.
            data = bytes(self._cap.planes[index][0][offset:used]) if used > offset else b""
            if got["flags"] & V4L2_BUF_FLAG_LAST:
                self._drained = True
            else:
                self._cap.queue(index)
            if data:
                made = self._units.add(data) if self._units else [data]
                self.units_out += len(made)
                units += made
        return units

    def _wait(self):
        """Whether either queue has a buffer back within timeout_s."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLOUT)
        return bool(poller.poll(int(self.timeout_s * 1000)))

    def _convert(self, frame, index):
        self._converter.into(frame, self._addresses[index])

def set_format(fd, buf_type, fourcc, width, height, name, raw=True):
    """S_FMT on a queue of fd (hal.v4l2.set_format), raw frames tagged
    BT.601 limited range; [(bytesperline, sizeimage)] of each plane the
    driver chose. A size or format other than asked is refused."""
    colour = (V4L2_COLORSPACE_SMPTE170M, V4L2_YCBCR_ENC_601, V4L2_QUANTIZATION_LIM_RANGE) if raw else None
    got = v4l2_set_format(fd, buf_type, width, height, fourcc, colour=colour)
    if (got["pixelformat"], got["width"], got["height"]) != (fourcc, width, height):
        raise CodecError("%s: asked for %dx%d %s, it gave %dx%d %s" % (
            name, width, height, fourcc_name(fourcc), got["width"], got["height"], fourcc_name(got["pixelformat"])))
    return got["planes"]


class Converter:
    """Frames (rgb8 or ycbcr422, hal.acq) into the planes of a 4:2:0 raw
    buffer laid out as set_format() said (pixfmt-yuv-planar.rst), BT.601
    limited range, with libyuv (its RAW is R, G, B in memory; UYVY is
    modgate's ycbcr422). into(frame, addresses) takes the address of each
    of the buffer's planes."""

    def __init__(self, width, height, layout, interleaved, pixel="rgb8"):
        self.width, self.height = width, height
        self.layout = layout
        self.interleaved = interleaved
        self.bpp, to_i420 = SOURCES[pixel]
        self._yuv = libyuv()
        self._to_i420 = getattr(self._yuv, to_i420)
        # NV12 from RGB: libyuv writes Cb and Cr apart, then merges them;
        # from UYVY it has a direct conversion.
        self._to_nv12 = self._yuv.UYVYToNV12 if pixel == "ycbcr422" else None
        quarter = (width // 2) * (height // 2)
        self._scratch = ctypes.create_string_buffer(2 * quarter) if interleaved and not self._to_nv12 else None

    def into(self, frame, addresses):
        keep, source = frame_address(frame)
        w, h = self.width, self.height
        stride = w * self.bpp
        y_stride = self.layout[0][0] or w
        y = addresses[0]
        second = addresses[1] if len(addresses) > 1 else y + y_stride * h
        if self.interleaved:
            uv_stride = self.layout[1][0] if len(self.layout) > 1 else y_stride
            if self._to_nv12:
                ok = self._to_nv12(source, stride, y, y_stride, second, uv_stride, w, h)
            else:
                half = w // 2
                quarter = half * (h // 2)
                scratch = ctypes.addressof(self._scratch)
                ok = self._to_i420(source, stride, y, y_stride, scratch, half, scratch + quarter, half, w, h)
                self._yuv.MergeUVPlane(scratch, half, scratch + quarter, half, second, uv_stride, half, h // 2)
        else:
            c_stride = self.layout[1][0] if len(self.layout) > 1 else y_stride // 2
            third = addresses[2] if len(addresses) > 2 else second + c_stride * (h // 2)
            ok = self._to_i420(source, stride, y, y_stride, second, c_stride, third, c_stride, w, h)
        del keep
        if ok != 0:
            raise CodecError("libyuv could not convert the frame")

def address(mapping):
    """The address of a writable mapping (a buffer plane's mmap)."""
    return ctypes.addressof((ctypes.c_char * len(mapping)).from_buffer(mapping))
