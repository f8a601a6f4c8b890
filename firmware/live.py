"""The gateway's live stream (PS3.22): every frame the recorder reads,
recording or idle, also goes out as the video and metadata flows while
streaming is wanted (config rtv.enabled, the console's `stream start`).

- LiveFeed: the recorder's side. It opens the stream (streaming.open_stream)
  on the first frame while streaming is wanted, closes it when it no longer
  is or the device closes, and reopens it at a change of patient, so that
  the metadata names the patient in force.
- LiveStream: a Streamer in its own thread, fed by the recorder with the
  frames it reads (``offer``). The hand-over is a one-frame mailbox: the
  recorder never waits for the network, and when the streamer falls behind
  the older frame is dropped and counted, so memory stays at two frames.
"""

from firmware.compat.threads import Event, Thread
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
        # The board's real-time priority for this thread, where it has one
        # (hal clock.realtime_thread): the flow's timing is its sleeps'.
        realtime = getattr(self.streamer.clock, "realtime_thread", None)
        refused = realtime() if realtime else "the clock has no real-time priority"
        self._log("stream: %s" % ("sending at real-time priority" if refused is None else
                                  "sending at normal priority (%s)" % refused))
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
