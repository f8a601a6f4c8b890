"""The gateway's live stream (PS3.22): every frame the recorder reads,
recording or idle, also goes out as the video and metadata flows while
streaming is wanted (config rtv.enabled, the console's `stream start`).

- LiveFeed: the recorder's side. It opens the stream (streaming.open_stream)
  on the first frame while streaming is wanted, closes it when it no longer
  is or the device closes, and reopens it at a change of patient, so that
  the metadata names the patient in force.
- LiveStream: a Streamer in its own thread, fed by the recorder with the
  frames it reads (``offer``), as a frame sync: the frames wait in a short
  queue and each slot of the flow's grid takes the oldest. The recorder
  never waits for the network; when the streamer falls behind the oldest
  frame is dropped and counted, so memory stays at a few frames.
"""

from firmware.compat.threads import Event, Lock, Thread
from firmware.streaming import StreamError, open_stream
from firmware.study import exam, patient_attributes

# The IODs whose PS3.22 metadata the flow can carry (rtv.metadata.MODALITY);
# a clip.iod outside them is streamed as Video Endoscopic.
STREAMED_IODS = ("video-endoscopic", "video-photographic")


class LiveFeed:
    """gateway: what is in force now (cfg, board, clock, storage for the
    SDP files, alarms, log) and stop."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.wanted = gateway.cfg["rtv.enabled"]  # the recorder opens and closes the stream
        self.stream = None  # the LiveStream while streaming
        self._exam = None

    def frame(self, acq, frame):
        """A frame the recorder read, from acq."""
        g = self.gateway
        want = self.wanted and not g.stopping()
        now = exam(g.cfg)
        if self.stream is not None and (not want or now != self._exam):
            self.close()
        if want and self.stream is None:
            try:
                self._open(acq)
                self._exam = now
                g.alarms.clear("stream")
            except (StreamError, OSError, ValueError) as err:
                self.wanted = False
                g.alarms.set("stream", "stream not started: %s" % err, "check rtv.*")
        if self.stream is not None:
            self.stream.offer(frame.data, frame.timestamp_ns)

    def _open(self, acq):
        g = self.gateway
        cfg = g.cfg
        video = (cfg["rtv.host"], cfg["rtv.port"])
        meta = (cfg["rtv.host"], cfg["rtv.metadata_port"])
        iod = cfg["clip.iod"] if cfg["clip.iod"] in STREAMED_IODS else STREAMED_IODS[0]
        streamer, names = open_stream(g.board, acq, g.clock, video, meta, cfg["rtv.ttl"], g.storage, iod=iod,
                                      attributes=patient_attributes(cfg),
                                      uid_root=cfg["station.uid_root"])
        self.stream = LiveStream(streamer, g.log)
        self.stream.start()
        g.log("stream: %dx%d %s to %s:%d, metadata to %s:%d; SDPs %s" % (
            acq.width, acq.height, acq.pixel, video[0], video[1], meta[0], meta[1],
            ", ".join(g.storage.path(n) for n in names)))

    def close(self):
        """The stream ends (the device closes, or streaming is no longer
        wanted); the next frame while wanted opens it again."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        stream.stop()
        stream.streamer.close()
        s = stream.streamer.stats()
        self.gateway.log("stream stopped: %d frames, %d late, %d skipped, %d frame slots missed, "
                         "%d datagrams dropped" % (s["frames"], s["late"], stream.skipped, s["slots_missed"],
                                                   s["dropped_packets"]))


# The frame sync (LiveStream): frames wait in a queue this deep; the one
# for a slot is taken what the last frame took to packetize, plus
# SYNC_MARGIN_NS, before the slot's first datagram is due. The margin
# must stay under the gap between one frame's last datagram and the next
# one's first ((1 - R_ACTIVE) x T_FRAME: 1.3 ms at 720p30 and 1080p30), or
# the next slot is always too close.
SYNC_DEPTH = 2
SYNC_MARGIN_NS = 200000
STOP_SLICE_NS = 100000000  # a stop is seen within 0.1 s of a long wait


class LiveStream:
    """A Streamer in a thread, fed with frames from the recorder, as a
    frame sync. The recorder's frames come at the board's own phase; the
    flow's slots are on the TAI grid (firmware/streaming.py). Handing each
    frame over as it came put it in the first slot whose TPR_0 was still
    ahead, so one that came just before that started behind its plan and
    could be late (ST 2110-21 6.6.2), and one just after missed the slot
    and was then replaced by the next.

    Here each slot's frame is taken at one moment: the margin before the
    slot's first datagram is due, or when the sender is done with the
    previous frame if that is later. The oldest frame that had come by
    then goes in the slot; a frame that comes after it waits for the next
    slot, so a frame never starts behind its plan because of when it came.
    Frames wait at most SYNC_DEPTH deep (beyond that the oldest is dropped
    and counted as skipped), so memory stays at a few frames and latency
    under SYNC_DEPTH frame periods; a slot that no frame had come for is
    missed (counted). A frame that takes longer to packetize than the gap
    between frames (10-bit at 1080p) makes the next slot too close and
    goes in the one after: slots missed, not late bursts."""

    def __init__(self, streamer, log=None):
        self.streamer = streamer
        self._log = log or (lambda message: None)
        self._frames = []  # (data, captured_ns, came_ns), oldest first
        self._lock = Lock()
        self._have = Event()
        self._stop = Event()
        self._free_since = None  # when the sender was last done with a frame
        self.skipped = 0
        self._thread = Thread(target=self._run, name="stream", daemon=True)

    def start(self):
        self._thread.start()

    def offer(self, data, captured_ns=None):
        """From the recorder: a frame and its capture time. Never blocks;
        with SYNC_DEPTH frames waiting already the oldest is dropped (and
        counted)."""
        came = self.streamer.clock.monotonic_ns()
        with self._lock:
            self._frames.append((data, captured_ns, came))
            if len(self._frames) > SYNC_DEPTH:
                self._frames.pop(0)
                self.skipped += 1
        self._have.set()

    def stop(self, timeout=5):
        self._stop.set()
        self._have.set()
        self._thread.join(timeout)

    def waiting(self):
        """How many frames wait for a slot."""
        return len(self._frames)

    def _take(self):
        with self._lock:
            return self._frames.pop(0)

    def _run(self):
        # The board's real-time priority for this thread, where it has one
        # (hal clock.realtime_thread): the flow's timing is its sleeps'.
        realtime = getattr(self.streamer.clock, "realtime_thread", None)
        refused = realtime() if realtime else "the clock has no real-time priority"
        self._log("stream: %s" % ("sending at real-time priority" if refused is None else
                                  "sending at normal priority (%s)" % refused))
        try:
            while not self._stop.is_set():
                self.step()
        except Exception as err:  # a thread must not die silently
            self._log("ALARM stream stopped: %s: %s" % (type(err).__name__, err))

    def step(self):
        """One turn of the frame sync: with no frame waiting, wait for one
        (half a second at most); else send the oldest in the first slot
        whose moment of taking came after it did."""
        if not self.waiting():
            # Nothing waiting: the board has stalled or not begun.
            self._have.wait(0.5)
            self._have.clear()
            return
        streamer = self.streamer
        margin = SYNC_MARGIN_NS + streamer.prepare_ns
        n, due_ns = streamer.next_slot(margin)
        came = self._frames[0][2]
        free = self._free_since
        # The moment slot n's frame is taken: the margin before its first
        # datagram, or when the sender was done with the last frame.
        while came > (due_ns(n) - margin if free is None else max(due_ns(n) - margin, free)):
            n += 1
        self._sleep_until(due_ns(n) - margin)
        if self._stop.is_set():
            return
        data, captured_ns, _ = self._take()
        streamer.send(data, captured_ns, slot=n)
        self._free_since = streamer.clock.monotonic_ns()

    def _sleep_until(self, target):
        """On the stream's clock, in slices, so that stop() is seen within
        STOP_SLICE_NS even when slots are minutes apart."""
        clock = self.streamer.clock
        while not self._stop.is_set():
            left = target - clock.monotonic_ns()
            if left <= 0:
                return
            clock.sleep_ns(min(left, STOP_SLICE_NS))
