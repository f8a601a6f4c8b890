"""V4L2 capture (Linux frame grabbers, UVC cameras, the kernel's vivid) with
the standard library only: ioctl, mmap, select.

The kernel ABI and the buffer queue are hal/v4l2.py's, shared with the
memory-to-memory encoder; the V4L2 API pages cited below are
Documentation/userspace-api/media/v4l/*.rst in the kernel tree.

Streaming I/O with memory mapping (mmap.rst): a ring of driver buffers, each
mapped once; read() takes the next filled buffer, copies the frame out and
hands the buffer straight back, so the driver always has buffers to fill.

Single- and multi-planar devices (planar-apis.rst) alike: a frame grabber
on an SoC (the i.MX 8M Plus ISI, for one) is often multi-planar only. The
formats taken here are packed, so a frame is one plane either way; a
multi-planar buffer's plane may start data_offset bytes in.
"""

import errno
import os
import select
import struct
import time

from hal.acq import BYTES_PER_PIXEL, Frame, frame_length
from hal.v4l2 import (
    STREAMPARM,
    V4L2_BUF_FLAG_ERROR,
    V4L2_BUF_TYPE_VIDEO_CAPTURE,
    V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
    V4L2_CAP_STREAMING,
    V4L2_CAP_TIMEPERFRAME,
    V4L2_CAP_VIDEO_CAPTURE,
    V4L2_CAP_VIDEO_CAPTURE_MPLANE,
    V4L2_PIX_FMT_GREY,
    V4L2_PIX_FMT_RGB24,
    V4L2_PIX_FMT_UYVY,
    V4L2_PIX_FMT_YUYV,
    VIDIOC_G_PARM,
    VIDIOC_S_PARM,
    WHOLE_FRAME_FIELDS,
    Queue,
    device_caps,
    fourcc_name,
    ioctl,
    pack,
    set_format,
    unpack,
)

PIXEL_FORMATS = {"ycbcr422": V4L2_PIX_FMT_UYVY, "rgb8": V4L2_PIX_FMT_RGB24, "mono8": V4L2_PIX_FMT_GREY}


def yuyv_to_uyvy(data):
    """YUYV to UYVY: swap the two bytes of every pair (Y0 Cb -> Cb Y0,
    Y1 Cr -> Cr Y1)."""
    out = bytearray(len(data))
    out[0::2] = data[1::2]
    out[1::2] = data[0::2]
    return bytes(out)


class Ring:
    """Buffer bookkeeping, no device needed: which buffer indexes the driver
    holds (queued) and the driver's frame sequence numbers (buffer.rst:
    sequence counts frames, gaps mean frames the driver dropped)."""

    def __init__(self, count, length):
        self.count = count
        self.length = length  # the bytes of one good frame
        self.queued = set()
        self.expected = None  # the next sequence number, once one is seen

    def queue(self, index):
        if not 0 <= index < self.count or index in self.queued:
            raise ValueError("buffer %d cannot be queued (queued: %s)" % (index, sorted(self.queued)))
        self.queued.add(index)

    def dequeue(self, index, sequence, flags, bytesused):
        """(frames dropped before this one, whether this frame is good)."""
        if index not in self.queued:
            raise OSError("driver returned buffer %d, which was not queued" % index)
        self.queued.remove(index)
        gap = 0
        if self.expected is not None:
            # sequence is a __u32: count forward modulo 2**32; a step back
            # (half the range or more) resynchronises without counting.
            gap = (sequence - self.expected) & 0xFFFFFFFF
            if gap >= 0x80000000:
                gap = 0
        self.expected = (sequence + 1) & 0xFFFFFFFF
        # A short buffer holds no whole frame; a longer one is a driver that
        # rounds sizeimage up (pixfmt-v4l2.rst), the frame is its start.
        good = not flags & V4L2_BUF_FLAG_ERROR and bytesused >= self.length
        return gap, good


class V4L2Board:
    """A V4L2 video capture device as an acquisition board (hal.acq).

    start() opens the device and negotiates; a size, pixel format or rate the
    driver will not give is a ValueError naming what was asked and given.
    'ycbcr422' is UYVY; a driver that offers YUYV instead is accepted and its
    frames are reordered to UYVY. A device with only the multi-planar
    capture API is driven through it (multiplanar is then True after
    start()). on_event, if given, is called with
    ("dropped", n), ("bad_frame", sequence) and ("signal_lost", device).
    """

    def __init__(
        self,
        device="/dev/video0",
        width=640,
        height=480,
        pixel="ycbcr422",
        rate=(30, 1),
        buffers=4,
        clock=None,
        timeout_s=2.0,
        on_event=None,
    ):
        if pixel not in PIXEL_FORMATS:
            raise ValueError("V4L2 capture gives %s, not %r" % (", ".join(sorted(PIXEL_FORMATS)), pixel))
        self.device = device
        self.width = width
        self.height = height
        self.pixel = pixel
        self.rate = rate
        self.buffers = buffers
        self.timeout_s = timeout_s
        self._slice_waited = 0.0  # read(timeout_s) slices waited since the last frame
        self.on_event = on_event
        self.dropped = 0
        self.bad = 0
        self._clock = clock
        self._length = frame_length(pixel, width, height)
        self._fd = None
        self._buffers = None  # the capture queue (hal.v4l2.Queue)
        self._ring = None
        self._streaming = False
        self._swap = False
        self.multiplanar = False
        self._type = V4L2_BUF_TYPE_VIDEO_CAPTURE

    def start(self):
        if self._fd is not None:
            raise OSError("%s: already started" % self.device)
        if struct.calcsize("P") != 8:
            raise OSError("the V4L2 struct layouts here are those of 64-bit Linux")
        # func-open.rst: O_NONBLOCK makes DQBUF return EAGAIN instead of
        # blocking; read() waits in select() with a timeout instead.
        self._fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK)
        try:
            self._check_capabilities()
            self._set_format()
            self._set_rate()
            self._map_buffers()
            for index in range(self._ring.count):
                self._queue(index)
            # vidioc-streamon.rst
            self._buffers.stream(True)
            self._streaming = True
        except BaseException:
            self.stop()
            raise

    def read(self, timeout_s=None):
        if not self._streaming:
            raise OSError("acquisition not started")
        now = time.monotonic()
        deadline = now + self.timeout_s
        give_up = None if timeout_s is None or timeout_s >= self.timeout_s else now + timeout_s
        while True:
            # func-select.rst: the descriptor is readable once a filled
            # buffer is in the outgoing queue.
            wait = (give_up or deadline) - time.monotonic()
            ready = wait > 0 and select.select((self._fd,), (), (), wait)[0]
            if not ready and give_up is not None:
                # The caller's slice is over: no frame yet, no fault yet.
                self._slice_waited += timeout_s
                if self._slice_waited < self.timeout_s:
                    return None
            if not ready:
                self._slice_waited = 0.0
                self._event(("signal_lost", self.device))
                raise OSError("no frame from %s within %s s" % (self.device, self.timeout_s))
            got = self._buffers.dequeue()
            if got is None:  # vidioc-qbuf.rst: EAGAIN, nothing filled yet
                continue
            self._slice_waited = 0.0
            stamp = self._clock.monotonic_ns() if self._clock else time.monotonic_ns()
            index, sequence = got["index"], got["sequence"]
            # buffer.rst, struct v4l2_plane: bytesused counts from the
            # plane's start, data_offset bytes of it before the frame.
            at = got["data_offset"][0]
            gap, good = self._ring.dequeue(index, sequence, got["flags"], got["bytesused"][0] - at)
            data = self._buffers.planes[index][0][at:at + self._length] if good else None
            self._queue(index)
            if gap:
                self.dropped += gap
                self._event(("dropped", gap))
            if data is None:
                # buffer.rst, V4L2_BUF_FLAG_ERROR: the data may be corrupt but
                # streaming goes on.
                self.bad += 1
                self._event(("bad_frame", sequence))
                continue
            if self._swap:
                data = yuyv_to_uyvy(data)
            return Frame(data, sequence, stamp)

    def stop(self):
        if self._fd is None:
            return
        try:
            if self._buffers is not None:
                # vidioc-streamon.rst: STREAMOFF takes back every buffer, so
                # none is in use by the driver when it is unmapped.
                self._buffers.release()
        finally:
            self._streaming = False
            self._buffers = None
            self._ring = None
            os.close(self._fd)
            self._fd = None

    # -- start-up steps -------------------------------------------------------
    def _check_capabilities(self):
        # vidioc-querycap.rst: device_caps describes this device node;
        # capabilities the whole physical device.
        driver, card, caps = device_caps(self._fd)
        if not caps & V4L2_CAP_STREAMING or not caps & (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE):
            raise ValueError(
                "%s (%s, %s) is not a video capture device with streaming I/O"
                % (self.device, driver, card)
            )
        # planar-apis.rst: a driver offers the single-planar API, the
        # multi-planar one, or both; the single-planar one where it can.
        self.multiplanar = not caps & V4L2_CAP_VIDEO_CAPTURE
        self._type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE if self.multiplanar else V4L2_BUF_TYPE_VIDEO_CAPTURE

    def _set_format(self):
        # vidioc-g-fmt.rst: S_FMT adjusts what it cannot do and returns the
        # format the driver chose in the same struct.
        asked = PIXEL_FORMATS[self.pixel]
        got = set_format(self._fd, self._type, self.width, self.height, asked)
        width, height, given = got["width"], got["height"], got["pixelformat"]
        accepted = (asked, V4L2_PIX_FMT_YUYV) if asked == V4L2_PIX_FMT_UYVY else (asked,)
        if (width, height) != (self.width, self.height) or given not in accepted:
            raise ValueError(
                "%s: asked for %dx%d %s, driver gave %dx%d %s"
                % (self.device, self.width, self.height, fourcc_name(asked), width, height, fourcc_name(given))
            )
        field = got["field"]
        if field not in WHOLE_FRAME_FIELDS:
            raise ValueError("%s: field order %d does not give one woven frame per buffer" % (self.device, field))
        # pixfmt-v4l2.rst: bytesperline larger than a row means padded rows.
        row = BYTES_PER_PIXEL[self.pixel] * self.width
        if len(got["planes"]) != 1:
            raise ValueError("%s: %s in %d planes, not one" % (self.device, fourcc_name(given), len(got["planes"])))
        stride = got["planes"][0][0]
        if stride not in (0, row):
            raise ValueError("%s: rows padded to %d bytes, %d expected" % (self.device, stride, row))
        self._swap = given == V4L2_PIX_FMT_YUYV

    def _set_rate(self):
        # vidioc-g-parm.rst: timeperframe (seconds per frame) can be set only
        # if capability has V4L2_CAP_TIMEPERFRAME; 0/0 means not reported.
        request = {"type": self._type}
        try:
            parm = unpack(STREAMPARM, self._ioctl(VIDIOC_G_PARM, pack(STREAMPARM, request)))
        except OSError as e:
            if e.errno != errno.ENOTTY:  # the driver has no frame rate control
                raise
            return
        num, den = self.rate
        if parm["parm.capture.capability"] & V4L2_CAP_TIMEPERFRAME:
            request["parm.capture.timeperframe.numerator"] = den
            request["parm.capture.timeperframe.denominator"] = num
            parm = unpack(STREAMPARM, self._ioctl(VIDIOC_S_PARM, pack(STREAMPARM, request)))
        seconds, frames = parm["parm.capture.timeperframe.numerator"], parm["parm.capture.timeperframe.denominator"]
        if seconds and frames and seconds * num != frames * den:
            raise ValueError(
                "%s: asked for %d/%d frames/s, driver gave %d/%d" % (self.device, num, den, frames, seconds)
            )

    def _map_buffers(self):
        # mmap.rst, vidioc-reqbufs.rst: the driver may allocate fewer buffers
        # than asked, even none.
        self._buffers = Queue(self._fd, self._type)
        count = self._buffers.request(self.buffers)
        if not count:
            raise OSError("%s: the driver gave no buffers" % self.device)
        self._ring = Ring(count, self._length)

    def _queue(self, index):
        self._buffers.queue(index)
        self._ring.queue(index)

    def _ioctl(self, request, arg):
        return ioctl(self._fd, request, arg)

    def _event(self, event):
        if self.on_event is not None:
            self.on_event(event)

