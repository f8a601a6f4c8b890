"""PS3.22 real-time streaming: frames in, the video and metadata flows out,
paced per ST 2110-21 (firmware/rtv/pacing.py).

- Streamer: the paced send of one frame after another. It owns the
  packetizers and the schedule; the datagrams leave through two sinks
  (``sink.send(datagrams)``, hal.udp.DatagramSender on a box) and time comes
  from a hal clock (monotonic_ns, sleep_ns, tai_ns).
- open_stream: the one way a stream starts, on the box (the gateway's live
  stream, firmware/live.py) and on the host (`modgate stream`): the two
  flows' datagram senders, the Streamer and its SDP files, with what the
  board says of itself (its equipment identity and its clock) in the
  metadata.

Timing: frame k's slot starts at t0 + (k + 1) * T_FRAME, one frame period
after it was due at the source, so that the frame is read and ready before
its first datagram is due; its datagrams are spread over the slot's active
part. A frame whose last datagram leaves after its slot ended is late; when
a frame arrives after its slot has passed, the clock is re-anchored (the
RTP timestamps stay on the nominal frame grid).
"""

from firmware.rtv import metadata
from firmware.rtv.metadata import MetadataFlow, origin_ns
from firmware.rtv.pacing import Schedule
from firmware.rtv.rtp import CLOCK_RATE, frame_timestamp
from firmware.rtv.st2110_20 import Packetizer
from firmware.study import equipment_attributes

# pixel format -> (ST 2110-20 sampling, depth)
SAMPLINGS = {
    "ycbcr422": ("YCbCr-4:2:2", 8),
    "ycbcr422-10": ("YCbCr-4:2:2", 10),
    "rgb8": ("RGB", 8),
}
VIDEO_PAYLOAD_TYPE = 96  # a dynamic payload type (RFC 3551 6)
SPIN_NS = 100000  # waits shorter than this are spun, not slept


def _random32():
    return int.from_bytes(metadata.uuid_bytes()[:4], "big")  # the UUID's random bytes


class Streamer:
    def __init__(self, width, height, pixel, rate, video_sink, meta_sink, clock,
                 iod="video-endoscopic", attributes=None, burst=None,
                 uid_root=None, acquisition_time_synchronized=False):
        if pixel not in SAMPLINGS:
            raise ValueError("pixel format %r cannot be streamed; one of %s"
                             % (pixel, ", ".join(sorted(SAMPLINGS))))
        sampling, depth = SAMPLINGS[pixel]
        self.width, self.height, self.pixel, self.rate = width, height, pixel, rate
        self.sampling, self.depth = sampling, depth
        self.video_sink, self.meta_sink, self.clock = video_sink, meta_sink, clock
        self.source_id = metadata.uuid_bytes()
        self.video_flow_id = metadata.uuid_bytes()
        self.meta_flow_id = metadata.uuid_bytes()
        # RFC 3550 5.1: random SSRCs and initial sequence numbers.
        self.video = Packetizer(width, height, sampling, depth, VIDEO_PAYLOAD_TYPE,
                                ssrc=_random32(), sequence=_random32())
        self.meta = MetadataFlow(iod, width, height, pixel, rate, self.source_id, self.video_flow_id,
                                 self.meta_flow_id, attributes, ssrc=_random32(), sequence=_random32(),
                                 uid_root=uid_root, acquisition_time_synchronized=acquisition_time_synchronized)
        self.schedule = Schedule(self.video.datagram_count(), rate, burst)
        self.frames = 0
        self.late = 0
        self.video_packets = 0
        self.meta_packets = 0
        self._t0 = None
        self._oversleep = 0  # ns: how late sleeps wake, on average
        self._bucket = self.schedule.bucket()

    def start(self):
        """Anchor the flows: the monotonic time of frame 0 and its TAI time,
        from which RTP timestamps follow (ST 2110-10: RTP time is the PTP
        time on the 90 kHz clock, a=mediaclk:direct=0)."""
        clock = self.clock
        self._t0 = clock.monotonic_ns()
        self._tai0 = clock.tai_ns()
        self._ts0 = self._tai0 * CLOCK_RATE // 1000000000

    def send(self, data, captured_ns=None):
        """Send the next frame (the board's bytes) in its slot; blocks until
        its last datagram has left. Returns True when it was on time.
        captured_ns: the frame's capture time on the same monotonic clock;
        its slot then starts one frame period after it (a source with its
        own timing, such as the recorder's board); without it slots follow
        the streamer's own grid."""
        if self._t0 is None:
            self.start()
        clock, sched = self.clock, self.schedule
        k = self.frames
        self.frames = k + 1
        if captured_ns is None:
            slot = self._t0 + (k + 1) * sched.frame_ns
        else:
            slot = captured_ns + sched.frame_ns
        now = clock.monotonic_ns()
        if captured_ns is None and now > slot + sched.frame_ns:
            # The frame came after its whole slot: re-anchor on it.
            self._t0 += now - slot
            slot = now
        elif now < slot:
            clock.sleep_ns(slot - now)
        timestamp = frame_timestamp(k, self.rate, self._ts0)
        origin = origin_ns(k, self._tai0, self.rate)
        meta = self.meta.packets(k, timestamp, origin)
        self.meta_sink.send(meta)
        self.meta_packets += len(meta)
        burst, index, bucket = sched.burst, 0, self._bucket
        sink = self.video_sink
        for group, size, count in self.video.bursts(data, timestamp, burst):
            # Sleeps wake late by some tens of us: aim that much early (a
            # running average of the lateness). Early is fine while the
            # bucket has room; C_MAX holds always (pacing.Bucket).
            target = slot + sched.offset_ns(index) - self._oversleep
            now = clock.monotonic_ns()
            if target > now:
                clock.sleep_ns(target - now)
                woke = clock.monotonic_ns()
                self._oversleep += (woke - target - self._oversleep) // 8
                now = woke
            wait = bucket.wait_ns(now, count)
            while wait:
                # Catching up, the bucket's bound is tens of us away: a sleep
                # that short wakes far too late, so spin for it.
                if wait > SPIN_NS:
                    clock.sleep_ns(wait - self._oversleep)
                now = clock.monotonic_ns()
                wait = bucket.wait_ns(now, count)
            if size is None:
                sink.send(group)
            else:
                sink.send_joined(group, size, count)
            # The burst left at some instant inside the call: count it at the
            # call's end, so the next burst's room is never overestimated.
            bucket.add(clock.monotonic_ns(), count)
            index += count
        self.video_packets += index
        on_time = clock.monotonic_ns() <= slot + sched.frame_ns
        if not on_time:
            self.late += 1
        return on_time

    def close(self):
        """Close the two sinks (open_stream opened them for this streamer)."""
        self.video_sink.close()
        self.meta_sink.close()

    def stats(self):
        dropped = getattr(self.video_sink, "dropped", 0) + getattr(self.meta_sink, "dropped", 0)
        return {"frames": self.frames, "late": self.late, "video_packets": self.video_packets,
                "meta_packets": self.meta_packets, "dropped_packets": dropped}


def write_sdps(storage, streamer, video_dest, meta_dest, ttl=1, refclk=None):
    """Publish the two flows' SDPs as video.sdp and metadata.sdp in a hal
    storage folder (PS3.22: receivers obtain the SDP; modgate's way is these
    files, which an operator copies or a receiver reads). Atomic: a reader
    never sees half a file."""
    from firmware.config import write_atomic
    from firmware.rtv.sdp import metadata_sdp, video_sdp

    texts = (
        ("video.sdp", video_sdp(video_dest[0], video_dest[1], streamer.width, streamer.height, streamer.rate,
                                streamer.sampling, streamer.depth, payload_type=VIDEO_PAYLOAD_TYPE, ttl=ttl,
                                refclk=refclk)),
        ("metadata.sdp", metadata_sdp(meta_dest[0], meta_dest[1], payload_type=streamer.meta.payload_type,
                                      ttl=ttl, refclk=refclk)),
    )
    for name, text in texts:
        write_atomic(storage, name, text.encode())
    return [name for name, _ in texts]


class StreamError(Exception):
    """open_stream could not start the flows. part: "video" or "metadata"
    (that flow's datagram sender did not open) or "sdp" (the SDP files were
    not written); cause: the exception that says why."""

    def __init__(self, part, cause):
        Exception.__init__(self, str(cause))
        self.part = part
        self.cause = cause


def open_stream(board, acq, clock, video_dest, meta_dest, ttl, sdp_storage, **options):
    """Start streaming acq's frames: the two flows' datagram senders
    (board.open_datagram_sender), a Streamer on clock and its SDP files in
    the hal storage sdp_storage. options: the Streamer's (iod, attributes,
    burst, uid_root); the metadata's attributes get the board's equipment
    identity (firmware/study.py equipment_attributes) under them, and its
    Synchronization Module the board's clock: synchronized to UTC where
    the board has a PTP hardware clock, as the SDPs' ts-refclk says.
    Returns (streamer, the SDP files' names); streamer.close() closes the
    senders. When it raises (StreamError, or ValueError for a pixel format
    that cannot be streamed) nothing stays open."""
    from firmware.rtv.sdp import reference_clock

    ptp, mac = board.reference_clock()
    attributes = equipment_attributes(board)
    attributes.update(options.pop("attributes", None) or {})
    sinks = []
    try:
        for part, dest in (("video", video_dest), ("metadata", meta_dest)):
            try:
                sinks.append(board.open_datagram_sender(dest, ttl))
            except (OSError, OverflowError) as err:
                raise StreamError(part, err)
        streamer = Streamer(acq.width, acq.height, acq.pixel, acq.rate, sinks[0], sinks[1], clock,
                            attributes=attributes, acquisition_time_synchronized=ptp, **options)
        try:
            names = write_sdps(sdp_storage, streamer, video_dest, meta_dest, ttl, reference_clock(ptp, mac))
        except OSError as err:
            raise StreamError("sdp", err)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return streamer, names
