"""The V4L2 kernel ABI and its streaming I/O, shared by the capture driver
(hal/acq/v4l2.py) and the memory-to-memory encoder (hal/codec/v4l2m2m.py),
with the standard library only: ioctl, mmap, select.

The ABI is include/uapi/linux/videodev2.h and v4l2-controls.h; the V4L2 API
pages cited below are Documentation/userspace-api/media/v4l/*.rst in the
kernel tree. Structs are written out for 64-bit Linux (x86_64 and arm64 lay
them out alike); tests/test_v4l2.py compiles a C program against the
installed headers and checks every size, offset and number here against it.

Queue is one buffer queue of an open device (mmap.rst: memory-mapped
streaming I/O), single- or multi-planar (planar-apis.rst): a capture device
has one, a memory-to-memory device two (dev-mem2mem.rst), both on one file
descriptor.
"""

import errno
import fcntl
import mmap
import select
import struct

# -- ioctl numbers ------------------------------------------------------------
# include/uapi/asm-generic/ioctl.h (used by x86_64 and arm64): bits 0-7 the
# number, 8-15 the type letter, 16-29 the argument size, 30-31 the direction.
IOC_WRITE = 1
IOC_READ = 2


def ioc(direction, letter, nr, size):
    """_IOC(dir, type, nr, size)."""
    return direction << 30 | size << 16 | ord(letter) << 8 | nr


# -- struct layouts -------------------------------------------------------------
# (C struct name, struct format, C member of each item). '=' is native byte
# order with standard sizes and no automatic alignment: every hole the C
# compiler leaves on LP64, and every member not used here, is an explicit 'x'.
# A union's members all start at the union's start, so m.offset is read where
# the 8-byte m union begins whatever the byte order.

# vidioc-querycap.rst
CAPABILITY = (
    "v4l2_capability",
    "=16s32s32sIII12x",
    ("driver", "card", "bus_info", "version", "capabilities", "device_caps"),
)
# vidioc-g-fmt.rst, pixfmt-v4l2.rst: the fmt union holds struct v4l2_window,
# which has pointers, so it is 8-byte aligned: 4 bytes of hole after type,
# then 200 bytes of union, 208 in all. Only the first members of
# v4l2_pix_format are used.
FORMAT = (
    "v4l2_format",
    "=I4x6I176x",
    (
        "type",
        "fmt.pix.width",
        "fmt.pix.height",
        "fmt.pix.pixelformat",
        "fmt.pix.field",
        "fmt.pix.bytesperline",
        "fmt.pix.sizeimage",
    ),
)
# vidioc-reqbufs.rst
REQUESTBUFFERS = ("v4l2_requestbuffers", "=3I8x", ("count", "type", "memory"))
# buffer.rst: index, type, bytesused, flags; field, a hole, struct timeval
# (16 bytes) and struct v4l2_timecode (16 bytes) unused; sequence, memory; the
# m union (8 bytes: it can hold a pointer); length; reserved2, request_fd and
# the tail hole unused. 88 bytes.
BUFFER = (
    "v4l2_buffer",
    "=4I40x3I4xI12x",
    ("index", "type", "bytesused", "flags", "sequence", "memory", "m.offset", "length"),
)
# vidioc-g-parm.rst: the parm union has no pointers, so it follows type at
# offset 4; 204 bytes.
STREAMPARM = (
    "v4l2_streamparm",
    "=II4xII184x",
    (
        "type",
        "parm.capture.capability",
        "parm.capture.timeperframe.numerator",
        "parm.capture.timeperframe.denominator",
    ),
)


def pack(layout, values):
    """The struct's bytes (writable, for ioctl to fill in), from a dict of
    member -> value; integer members not given are zero."""
    data = bytearray(sizeof(layout))
    struct.pack_into(layout[1], data, 0, *[values.get(name, 0) for name in layout[2]])
    return data


def unpack(layout, data):
    """A dict of member -> value from the struct's bytes."""
    return dict(zip(layout[2], struct.unpack(layout[1], data)))


def sizeof(layout):
    return struct.calcsize(layout[1])


# videodev2.h: the ioctls used here, with the struct each one passes.
VIDIOC_QUERYCAP = ioc(IOC_READ, "V", 0, sizeof(CAPABILITY))
VIDIOC_G_FMT = ioc(IOC_READ | IOC_WRITE, "V", 4, sizeof(FORMAT))
VIDIOC_S_FMT = ioc(IOC_READ | IOC_WRITE, "V", 5, sizeof(FORMAT))
VIDIOC_REQBUFS = ioc(IOC_READ | IOC_WRITE, "V", 8, sizeof(REQUESTBUFFERS))
VIDIOC_QUERYBUF = ioc(IOC_READ | IOC_WRITE, "V", 9, sizeof(BUFFER))
VIDIOC_QBUF = ioc(IOC_READ | IOC_WRITE, "V", 15, sizeof(BUFFER))
VIDIOC_DQBUF = ioc(IOC_READ | IOC_WRITE, "V", 17, sizeof(BUFFER))
VIDIOC_STREAMON = ioc(IOC_WRITE, "V", 18, 4)  # argument: int, the buffer type
VIDIOC_STREAMOFF = ioc(IOC_WRITE, "V", 19, 4)
VIDIOC_G_PARM = ioc(IOC_READ | IOC_WRITE, "V", 21, sizeof(STREAMPARM))
VIDIOC_S_PARM = ioc(IOC_READ | IOC_WRITE, "V", 22, sizeof(STREAMPARM))

# -- constants (videodev2.h) ----------------------------------------------------
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_STREAMING = 0x04000000
V4L2_CAP_DEVICE_CAPS = 0x80000000
V4L2_CAP_TIMEPERFRAME = 0x1000  # v4l2_captureparm.capability
V4L2_BUF_TYPE_VIDEO_CAPTURE = 1
V4L2_MEMORY_MMAP = 1
V4L2_BUF_FLAG_ERROR = 0x00000040
# field-order.rst: the field orders in which one buffer holds a whole frame
# (progressive, or both fields woven line by line).
V4L2_FIELD_NONE = 1
V4L2_FIELD_INTERLACED = 4
V4L2_FIELD_INTERLACED_TB = 8
V4L2_FIELD_INTERLACED_BT = 9
WHOLE_FRAME_FIELDS = (V4L2_FIELD_NONE, V4L2_FIELD_INTERLACED, V4L2_FIELD_INTERLACED_TB, V4L2_FIELD_INTERLACED_BT)


def fourcc(code):
    """v4l2_fourcc(a, b, c, d): the four characters, first in the low byte."""
    return struct.unpack("<I", code.encode("ascii"))[0]


def fourcc_name(value):
    return struct.pack("<I", value).decode("ascii", "replace")


# pixfmt-packed-yuv.rst, pixfmt-rgb.rst, pixfmt-yuv-luma.rst
V4L2_PIX_FMT_UYVY = fourcc("UYVY")  # Cb Y0 Cr Y1: modgate's ycbcr422 order
V4L2_PIX_FMT_YUYV = fourcc("YUYV")  # Y0 Cb Y1 Cr: what most UVC cameras give
V4L2_PIX_FMT_RGB24 = fourcc("RGB3")  # R G B
V4L2_PIX_FMT_GREY = fourcc("GREY")




# -- multi-planar and memory-to-memory (planar-apis.rst, dev-mem2mem.rst) -------
# pixfmt-v4l2-mplane.rst: struct v4l2_pix_format_mplane in the fmt union:
# width, height, pixelformat, field, colorspace, then 8 struct
# v4l2_plane_pix_format (sizeimage, bytesperline, 12 reserved bytes: 20
# each), num_planes, flags, ycbcr_enc, quantization, xfer_func, 7 reserved
# bytes; 192 bytes of the union's 200.
MAX_PLANES = 8  # VIDEO_MAX_PLANES
FORMAT_MPLANE = (
    "v4l2_format",
    "=I4x5I" + "II12x" * MAX_PLANES + "5B7x8x",
    ("type", "fmt.pix_mp.width", "fmt.pix_mp.height", "fmt.pix_mp.pixelformat", "fmt.pix_mp.field",
     "fmt.pix_mp.colorspace")
    + tuple(name % k for k in range(MAX_PLANES)
            for name in ("fmt.pix_mp.plane_fmt[%d].sizeimage", "fmt.pix_mp.plane_fmt[%d].bytesperline"))
    + ("fmt.pix_mp.num_planes", "fmt.pix_mp.flags", "fmt.pix_mp.ycbcr_enc", "fmt.pix_mp.quantization",
       "fmt.pix_mp.xfer_func"),
)
# buffer.rst: the same v4l2_buffer, its m union holding a pointer to an
# array of struct v4l2_plane and length the number of planes; timestamp
# (struct timeval: tv_sec, tv_usec) is set on OUTPUT buffers and copied to
# the CAPTURE buffer encoded from them (dev-encoder.rst).
BUFFER_MPLANE = (
    "v4l2_buffer",
    "=4II4xqq16x2IQI12x",
    ("index", "type", "bytesused", "flags", "field", "timestamp.tv_sec", "timestamp.tv_usec", "sequence",
     "memory", "m.planes", "length"),
)
# buffer.rst: struct v4l2_plane, 64 bytes; m.mem_offset for MMAP.
PLANE = ("v4l2_plane", "=III4xI44x", ("bytesused", "length", "m.mem_offset", "data_offset"))
# vidioc-enum-fmt.rst
FMTDESC = ("v4l2_fmtdesc", "=3I32sII12x", ("index", "type", "flags", "description", "pixelformat", "mbus_code"))
# vidioc-encoder-cmd.rst: cmd, flags, a 32-byte union (raw.data[8]).
ENCODER_CMD = ("v4l2_encoder_cmd", "=II32x", ("cmd", "flags"))
# vidioc-g-ctrl.rst: every control of the control framework, codec
# controls included, can be set one at a time this way.
CONTROL = ("v4l2_control", "=Ii", ("id", "value"))

VIDIOC_ENUM_FMT = ioc(IOC_READ | IOC_WRITE, "V", 2, sizeof(FMTDESC))
VIDIOC_S_CTRL = ioc(IOC_READ | IOC_WRITE, "V", 28, sizeof(CONTROL))
VIDIOC_ENCODER_CMD = ioc(IOC_READ | IOC_WRITE, "V", 77, sizeof(ENCODER_CMD))

V4L2_CAP_VIDEO_OUTPUT = 0x00000002
V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
V4L2_CAP_VIDEO_OUTPUT_MPLANE = 0x00002000
V4L2_CAP_VIDEO_M2M_MPLANE = 0x00004000
V4L2_CAP_VIDEO_M2M = 0x00008000
V4L2_BUF_TYPE_VIDEO_OUTPUT = 2
V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE = 9
V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE = 10
MPLANE_TYPES = (V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
# buffer.rst: the last buffer of a drain (dev-encoder.rst "Drain").
V4L2_BUF_FLAG_LAST = 0x00100000
V4L2_BUF_FLAG_KEYFRAME = 0x00000008
V4L2_ENC_CMD_START = 0
V4L2_ENC_CMD_STOP = 1
# colorspaces.rst: BT.601 limited range, what YBR_PARTIAL_420 is.
V4L2_COLORSPACE_SMPTE170M = 1
V4L2_YCBCR_ENC_601 = 1
V4L2_QUANTIZATION_LIM_RANGE = 2
# pixfmt-yuv-planar.rst: 4:2:0, planes back to back (YU12, NV12) or each
# in its own buffer plane (YM12, NM12); pixfmt-compressed.rst: H.264 as an
# Annex B byte stream.
V4L2_PIX_FMT_YUV420 = fourcc("YU12")
V4L2_PIX_FMT_YUV420M = fourcc("YM12")
V4L2_PIX_FMT_NV12 = fourcc("NV12")
V4L2_PIX_FMT_NV12M = fourcc("NM12")
V4L2_PIX_FMT_H264 = fourcc("H264")
# pixfmt-compressed.rst: the kernel's own FWHT codec (vicodec's).
V4L2_PIX_FMT_FWHT = fourcc("FWHT")

# ext-ctrls-codec.rst: the stateful encoder's controls.
V4L2_CID_MPEG_VIDEO_B_FRAMES = 0x00990900 + 202
V4L2_CID_MPEG_VIDEO_GOP_SIZE = 0x00990900 + 203
V4L2_CID_MPEG_VIDEO_BITRATE_MODE = 0x00990900 + 206
V4L2_CID_MPEG_VIDEO_BITRATE = 0x00990900 + 207
V4L2_CID_MPEG_VIDEO_HEADER_MODE = 0x00990900 + 216
V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER = 0x00990900 + 226
V4L2_CID_MPEG_VIDEO_AU_DELIMITER = 0x00990900 + 231
V4L2_CID_MPEG_VIDEO_H264_LEVEL = 0x00990900 + 359
V4L2_CID_MPEG_VIDEO_H264_PROFILE = 0x00990900 + 363
V4L2_MPEG_VIDEO_BITRATE_MODE_VBR = 0
V4L2_MPEG_VIDEO_BITRATE_MODE_CBR = 1
V4L2_MPEG_VIDEO_HEADER_MODE_JOINED_WITH_1ST_FRAME = 1
V4L2_MPEG_VIDEO_H264_LEVEL_4_1 = 12
V4L2_MPEG_VIDEO_H264_LEVEL_4_2 = 13
V4L2_MPEG_VIDEO_H264_PROFILE_HIGH = 4


def text(field):
    """A NUL-padded __u8 array as text."""
    return field.split(b"\0", 1)[0].decode("ascii", "replace")


def device_caps(fd):
    """(driver, card, capabilities of this node) from VIDIOC_QUERYCAP
    (vidioc-querycap.rst: device_caps describes the node, capabilities the
    whole physical device)."""
    cap = unpack(CAPABILITY, ioctl(fd, VIDIOC_QUERYCAP, bytearray(sizeof(CAPABILITY))))
    caps = cap["capabilities"]
    if caps & V4L2_CAP_DEVICE_CAPS:
        caps = cap["device_caps"]
    return text(cap["driver"]), text(cap["card"]), caps


def formats(fd, buf_type):
    """The pixel formats a queue offers (vidioc-enum-fmt.rst: index from 0
    until EINVAL)."""
    found = []
    while True:
        request = pack(FMTDESC, {"index": len(found), "type": buf_type, "description": b""})
        try:
            ioctl(fd, VIDIOC_ENUM_FMT, request)
        except OSError as err:
            if err.errno == errno.EINVAL:
                return found
            raise
        found.append(unpack(FMTDESC, request)["pixelformat"])


def set_format(fd, buf_type, width, height, pixelformat, field=V4L2_FIELD_NONE, colour=None):
    """VIDIOC_S_FMT on one queue of fd, single- or multi-planar by its
    buffer type (vidioc-g-fmt.rst: the driver adjusts what it cannot do and
    returns what it chose in the same struct). colour, on a multi-planar
    queue, is (colorspace, ycbcr_enc, quantization) to ask for. Returns
    what the driver chose: a dict of width, height, pixelformat, field and
    planes, [(bytesperline, sizeimage)] of each plane; the caller decides
    whether that will do."""
    mplane = buf_type in MPLANE_TYPES
    layout = FORMAT_MPLANE if mplane else FORMAT
    key = "fmt.pix_mp." if mplane else "fmt.pix."
    values = {"type": buf_type, key + "width": width, key + "height": height, key + "pixelformat": pixelformat,
              key + "field": field}
    if mplane and colour:
        values.update(zip(("fmt.pix_mp.colorspace", "fmt.pix_mp.ycbcr_enc", "fmt.pix_mp.quantization"), colour))
    got = unpack(layout, ioctl(fd, VIDIOC_S_FMT, pack(layout, values)))
    if mplane:
        planes = [(got["fmt.pix_mp.plane_fmt[%d].bytesperline" % k], got["fmt.pix_mp.plane_fmt[%d].sizeimage" % k])
                  for k in range(min(got["fmt.pix_mp.num_planes"], MAX_PLANES))]
    else:
        planes = [(got["fmt.pix.bytesperline"], got["fmt.pix.sizeimage"])]
    return {"width": got[key + "width"], "height": got[key + "height"], "pixelformat": got[key + "pixelformat"],
            "field": got[key + "field"], "planes": planes}


def ioctl(fd, request, arg):
    """The ioctl, filling in arg where it is a bytearray; returns arg."""
    fcntl.ioctl(fd, request, arg)
    return arg


class Queue:
    """One buffer queue of an open V4L2 device with memory-mapped buffers
    (mmap.rst), single-planar or multi-planar by its buffer type.

        q = Queue(fd, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
        count = q.request(4)        # REQBUFS, QUERYBUF, mmap every plane
        q.queue(index, [used, ...]) # QBUF (bytes used per plane: OUTPUT)
        q.stream(True)              # STREAMON
        got = q.dequeue()           # DQBUF: None while the driver has none
        q.release()                 # STREAMOFF, munmap, REQBUFS 0

    planes[index] is the list of mmaps of buffer index, one a plane; free
    is the set of indexes the driver does not hold."""

    def __init__(self, fd, buf_type):
        self.fd = fd
        self.type = buf_type
        self.mplane = buf_type in MPLANE_TYPES
        self.planes = []
        self.free = set()
        self.streaming = False
        self._plane_count = 1
        # The v4l2_plane array the kernel reads and fills on QBUF, DQBUF
        # and QUERYBUF; its address goes in m.planes, so it must not move.
        self._plane_array = bytearray(sizeof(PLANE) * MAX_PLANES)
        self._plane_pin = _pin(self._plane_array)  # holds it in place
        self._plane_pointer = _address_of(self._plane_pin)

    def request(self, count, plane_count=1):
        """Ask for count buffers (vidioc-reqbufs.rst: the driver may give
        fewer, even none) and map them all; the count given."""
        self._plane_count = plane_count if self.mplane else 1
        request = {"count": count, "type": self.type, "memory": V4L2_MEMORY_MMAP}
        given = unpack(REQUESTBUFFERS, ioctl(self.fd, VIDIOC_REQBUFS, pack(REQUESTBUFFERS, request)))["count"]
        for index in range(given):
            buf = self._buffer(index)
            ioctl(self.fd, VIDIOC_QUERYBUF, buf)
            maps = []
            for length, offset in self._lengths_offsets(buf):
                # func-mmap.rst: PROT_READ | PROT_WRITE, MAP_SHARED, at the
                # offset QUERYBUF gave (m.offset, or each plane's
                # m.mem_offset).
                maps.append(mmap.mmap(self.fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                                      offset=offset))
            self.planes.append(maps)
            self.free.add(index)
        return given

    def queue(self, index, bytesused=None, timestamp_us=0):
        """Hand buffer index to the driver (vidioc-qbuf.rst); on an OUTPUT
        queue bytesused is the bytes of each plane."""
        if index not in self.free:
            raise ValueError("buffer %d is held by the driver" % index)
        buf = self._buffer(index, bytesused, timestamp_us)
        ioctl(self.fd, VIDIOC_QBUF, buf)
        self.free.discard(index)

    def dequeue(self):
        """The next buffer the driver is done with, as a dict (index,
        flags, sequence, timestamp_us, bytesused: [per plane], data_offset:
        [per plane]), or None if it has none yet (EAGAIN: the device is
        open O_NONBLOCK). EPIPE (the last buffer of a drain was taken
        already) is raised as OSError."""
        buf = self._buffer(0)
        try:
            ioctl(self.fd, VIDIOC_DQBUF, buf)
        except BlockingIOError:
            return None
        if self.mplane:
            got = unpack(BUFFER_MPLANE, buf)
            planes = [unpack(PLANE, self._plane_array[k * sizeof(PLANE):(k + 1) * sizeof(PLANE)])
                      for k in range(got["length"])]
            used = [p["bytesused"] for p in planes]
            offsets = [p["data_offset"] for p in planes]
            stamp = got["timestamp.tv_sec"] * 1000000 + got["timestamp.tv_usec"]
        else:
            got = unpack(BUFFER, buf)
            used, offsets, stamp = [got["bytesused"]], [0], 0
        self.free.add(got["index"])
        return {"index": got["index"], "flags": got["flags"], "sequence": got["sequence"], "timestamp_us": stamp,
                "bytesused": used, "data_offset": offsets}

    def stream(self, on):
        """STREAMON / STREAMOFF (vidioc-streamon.rst: STREAMOFF takes back
        every buffer the driver held)."""
        ioctl(self.fd, VIDIOC_STREAMON if on else VIDIOC_STREAMOFF, struct.pack("=I", self.type))
        self.streaming = on
        if not on:
            self.free = set(range(len(self.planes)))

    def release(self):
        """Stop the queue, unmap its buffers and free them in the driver."""
        try:
            if self.streaming:
                self.stream(False)
        finally:
            for maps in self.planes:
                for mapping in maps:
                    mapping.close()
            had = bool(self.planes)
            self.planes = []
            self.free = set()
            if had:
                # vidioc-reqbufs.rst: a count of 0 frees the buffers.
                request = {"count": 0, "type": self.type, "memory": V4L2_MEMORY_MMAP}
                try:
                    ioctl(self.fd, VIDIOC_REQBUFS, pack(REQUESTBUFFERS, request))
                except OSError:
                    pass

    def wait(self, timeout_s):
        """Whether the queue has a buffer to dequeue within timeout_s
        (func-poll.rst: POLLIN for a CAPTURE queue, POLLOUT for OUTPUT)."""
        output = self.type in (V4L2_BUF_TYPE_VIDEO_OUTPUT, V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT if output else select.POLLIN)
        return bool(poller.poll(max(0, int(timeout_s * 1000))))

    def _buffer(self, index, bytesused=None, timestamp_us=0):
        if not self.mplane:
            values = {"index": index, "type": self.type, "memory": V4L2_MEMORY_MMAP}
            if bytesused:
                values["bytesused"] = bytesused[0]
            return pack(BUFFER, values)
        struct.pack_into("=%dx" % len(self._plane_array), self._plane_array, 0)
        for k in range(self._plane_count):
            if bytesused:
                struct.pack_into("=I", self._plane_array, k * sizeof(PLANE), bytesused[k])
        values = {"index": index, "type": self.type, "memory": V4L2_MEMORY_MMAP, "m.planes": self._plane_pointer,
                  "length": self._plane_count, "timestamp.tv_sec": timestamp_us // 1000000,
                  "timestamp.tv_usec": timestamp_us % 1000000}
        return pack(BUFFER_MPLANE, values)

    def _lengths_offsets(self, buf):
        if not self.mplane:
            got = unpack(BUFFER, buf)
            return [(got["length"], got["m.offset"])]
        got = unpack(BUFFER_MPLANE, buf)
        out = []
        for k in range(got["length"]):
            plane = unpack(PLANE, self._plane_array[k * sizeof(PLANE):(k + 1) * sizeof(PLANE)])
            out.append((plane["length"], plane["m.mem_offset"]))
        return out


def _pin(buffer):
    """A ctypes view of a writable buffer: while it lives, the buffer can
    be neither resized nor freed, so its address stays good."""
    import ctypes

    return (ctypes.c_char * len(buffer)).from_buffer(buffer)


def _address_of(view):
    import ctypes

    return ctypes.addressof(view)
