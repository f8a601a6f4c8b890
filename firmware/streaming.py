"""PS3.22 real-time streaming: frames in, the video and metadata flows out,
paced per ST 2110-21 (firmware/rtv/pacing.py).

- Streamer: the paced send of one frame after another. It owns the
  packetizers and the schedule; the datagrams leave through two sinks
  (``sink.send(datagrams)``, hal.udp.DatagramSender on a box) and time comes
  from a hal clock (monotonic_ns, sleep_ns, tai_ns).
- LiveStream: a Streamer in its own thread, fed by the recorder with the
  frames it records (``offer``). The hand-over is a one-frame mailbox: the
  recorder never waits for the network, and when the streamer falls behind
  the older frame is dropped and counted, so memory stays at two frames.

Timing: frame k's slot starts at t0 + (k + 1) * T_FRAME, one frame period
after it was due at the source, so that the frame is read and ready before
its first datagram is due; its datagrams are spread over the slot's active
part. A frame whose last datagram leaves after its slot ended is late; when
a frame arrives after its slot has passed, the clock is re-anchored (the
RTP timestamps stay on the nominal frame grid).
"""

from firmware.compat.threads import Event, Thread
from firmware.rtv import metadata
from firmware.rtv.metadata import MetadataFlow, origin_ns
from firmware.rtv.pacing import Schedule
from firmware.rtv.rtp import CLOCK_RATE, frame_timestamp
from firmware.rtv.st2110_20 import Packetizer

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
                 iod="video-endoscopic", attributes=None, burst=None, source_ae_title=None,
                 uid_root=None):
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
                                 source_ae_title=source_ae_title, uid_root=uid_root)
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

    def stats(self):
        dropped = getattr(self.video_sink, "dropped", 0) + getattr(self.meta_sink, "dropped", 0)
        return {"frames": self.frames, "late": self.late, "video_packets": self.video_packets,
                "meta_packets": self.meta_packets, "dropped_packets": dropped}


class LiveStream:
    """A Streamer in a thread, fed with frames from the recorder."""

    def __init__(self, streamer, log=None):
        self.streamer = streamer
        self._log = log or (lambda message: None)
        self._frame = None
        self._have = Event()
        self._stop = Event()
        self.skipped = 0
        self._thread = Thread(target=self._run, name="stream", daemon=True)

    def start(self):
        self._thread.start()

    def offer(self, data, captured_ns=None):
        """From the recorder: the newest frame and its capture time; an
        unsent older one is replaced (and counted). Never blocks."""
        if self._frame is not None:
            self.skipped += 1
        self._frame = (data, captured_ns)
        self._have.set()

    def stop(self, timeout=5, drain=False):
        """Stop the thread; with drain, after it has sent the frame it has."""
        if drain:
            self._draining = True
        else:
            self._stop.set()
        self._have.set()
        self._thread.join(timeout)
        self._stop.set()

    _draining = False

    def _run(self):
        try:
            while not self._stop.is_set():
                self._have.wait(0.5)
                self._have.clear()
                item, self._frame = self._frame, None
                if item is not None and not self._stop.is_set():
                    self.streamer.send(item[0], item[1])
                elif self._draining:
                    return
        except Exception as err:  # a thread must not die silently
            self._log("ALARM stream stopped: %s: %s" % (type(err).__name__, err))


def write_sdps(storage, streamer, video_dest, meta_dest, ttl=1):
    """Publish the two flows' SDPs as video.sdp and metadata.sdp in a hal
    storage folder (PS3.22: receivers obtain the SDP; modgate's way is these
    files, which an operator copies or a receiver reads). Atomic: a reader
    never sees half a file."""
    from firmware.config import write_atomic
    from firmware.rtv.sdp import metadata_sdp, video_sdp

    texts = (
        ("video.sdp", video_sdp(video_dest[0], video_dest[1], streamer.width, streamer.height, streamer.rate,
                                streamer.sampling, streamer.depth, payload_type=VIDEO_PAYLOAD_TYPE, ttl=ttl)),
        ("metadata.sdp", metadata_sdp(meta_dest[0], meta_dest[1], payload_type=streamer.meta.payload_type,
                                      ttl=ttl)),
    )
    for name, text in texts:
        write_atomic(storage, name, text.encode())
    return [name for name, _ in texts]
