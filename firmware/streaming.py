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

Timing (ST 2110-21, firmware/rtv/pacing.py): every frame goes into a slot
of the media clock's frame grid, N x T_FRAME since the SMPTE epoch on the
board's TAI clock (hal clock.tai_ns: its PTP hardware clock, or the system
clock plus the TAI-UTC offset; the SDP's ts-refclk says which). The slot is
the first one, after the last slot used, whose TPR_0 = N x T_FRAME +
TR_OFFSET is still ahead: a frame that comes too late for the next slot
goes in a later one, and the slots in between are counted (slots_missed).
A sender that takes frames on the grid itself (the gateway's frame sync,
firmware/live.py) names the slot: next_slot, then send(..., slot=n).
The frame's RTP timestamp is the media clock at N x T_FRAME; its datagrams
leave on the schedule's plan from TPR_0 (sleeping on the monotonic clock,
mapped to TAI afresh at every frame). A frame is late when a burst left
after the virtual receiver read its first packet (ST 2110-21 6.6.2: packet
j out by TPR_j).
"""

from firmware.rtv import metadata
from firmware.rtv.metadata import MetadataFlow
from firmware.rtv.pacing import EARLY_NS, Schedule, frame_start_ns
from firmware.rtv.rtp import frame_timestamp
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
        self.schedule = Schedule(self.video.datagram_count(), rate, height, burst)
        self.frames = 0
        self.late = 0
        self.slots_missed = 0
        self.video_packets = 0
        self.meta_packets = 0
        self._next = None  # the frame slot after the last one used
        self.prepare_ns = 0  # how long the last frame took to packetize
        self._oversleep = 0  # ns: how late sleeps wake, on average
        self._bucket = self.schedule.bucket()

    def _sleep_until(self, target):
        """Sleep on the monotonic clock until about target, aiming early by
        how late sleeps wake (a running average, at most pacing.EARLY_NS,
        which the plan leaves room for in the receiver's buffer); returns
        the time."""
        clock = self.clock
        now = clock.monotonic_ns()
        aim = target - self._oversleep
        if aim > now:
            clock.sleep_ns(aim - now)
            woke = clock.monotonic_ns()
            early = self._oversleep + (woke - aim - self._oversleep) // 8
            self._oversleep = min(max(early, 0), EARLY_NS)
            now = woke
        return now

    def next_slot(self, margin_ns):
        """For a sender that takes frames on the slot grid (a frame sync,
        firmware/live.py): the next frame slot, not before the one after
        the last used, whose TPR_0 is more than margin_ns away; and a
        function giving when the first datagram of a slot is due, on the
        monotonic clock."""
        clock, sched = self.clock, self.schedule
        now = clock.monotonic_ns()
        offset = clock.tai_ns() - now
        first = sched.offset_ns(0)  # from TPR_0: -lead
        return sched.slot(now + offset + margin_ns, self._next), lambda n: sched.tpr0_ns(n) + first - offset

    def send(self, data, captured_ns=None, slot=None):
        """Send the next frame (the board's bytes) in the next frame slot it
        can still make, or in slot (from next_slot); blocks until its last
        datagram has left. Returns True when every burst left before the
        virtual receiver read it. captured_ns: the frame's capture time on
        the same monotonic clock, for its Frame Origin Timestamp (default:
        its slot's instant)."""
        clock, sched = self.clock, self.schedule
        began = clock.monotonic_ns()
        # The pgroups first (10-bit frames are packed here): the slot is
        # chosen for a frame that is ready to go.
        pixels = self.video.pgroups(data)
        now = clock.monotonic_ns()
        # TAI = monotonic + offset, for this frame (a PTP or NTP clock may
        # be slewed between frames; the monotonic one sleeps).
        offset = clock.tai_ns() - now
        if slot is None:
            n = sched.slot(now + offset, self._next)
        elif self._next is not None and slot < self._next:
            raise ValueError("frame slot %d was used already (next: %d)" % (slot, self._next))
        else:
            n = slot
        if self._next is not None:
            self.slots_missed += n - self._next
        self._next = n + 1
        k = self.frames
        self.frames = k + 1
        tpr0 = sched.tpr0_ns(n) - offset  # on the monotonic clock
        # ST 2110-10: the RTP timestamp is the media clock (90 kHz from the
        # SMPTE epoch, a=mediaclk:direct=0) at the frame's instant.
        timestamp = frame_timestamp(n, self.rate)
        sync = frame_start_ns(n, self.rate)
        origin = sync if captured_ns is None else captured_ns + offset
        meta = self.meta.packets(k, timestamp, origin, sync)
        self.prepare_ns = clock.monotonic_ns() - began
        now = self._sleep_until(tpr0 + sched.offset_ns(0))
        instant = sync - offset  # N x T_FRAME on the monotonic clock
        if now < instant:
            # a sleep aimed early by more than the lead leaves: not before
            # the instant the RTP timestamp names
            clock.sleep_ns(instant - now)
        self.meta_sink.send(meta)
        self.meta_packets += len(meta)
        burst, index, bucket = sched.burst, 0, self._bucket
        sink = self.video_sink
        late = False
        for group, size, count in self.video.bursts(pixels, timestamp, burst, packed=True):
            # On the plan, or early by the sleeps' lateness: early is fine
            # while the bucket has room; C_MAX holds always (pacing.Bucket).
            now = self._sleep_until(tpr0 + sched.offset_ns(index))
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
            # call's end, so the next burst's room is never overestimated,
            # and hold it to the read of its first packet (ST 2110-21 6.6.2:
            # packet j out by TPR_j).
            done = clock.monotonic_ns()
            bucket.add(done, count)
            if done > tpr0 + sched.read_ns(index):
                late = True
            index += count
        self.video_packets += index
        if late:
            self.late += 1
        return not late

    def close(self):
        """Close the two sinks (open_stream opened them for this streamer)."""
        self.video_sink.close()
        self.meta_sink.close()

    def stats(self):
        dropped = getattr(self.video_sink, "dropped", 0) + getattr(self.meta_sink, "dropped", 0)
        return {"frames": self.frames, "late": self.late, "slots_missed": self.slots_missed,
                "video_packets": self.video_packets, "meta_packets": self.meta_packets,
                "dropped_packets": dropped}


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
                                refclk=refclk, troffset_ns=streamer.schedule.troffset)),
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
