"""The gateway: frames from the board's acquisition device -> encoder ->
spool -> Storage SCU, unattended, with the live stream alongside.

Gateway wires the parts to the configuration, the board, the alarms and the
log: the recorder (firmware/recorder.py), the sender (firmware/sender.py)
and the live stream (firmware/live.py); the console sees it through
firmware/console/system.py.

Two threads share the spool and nothing else: the recorder writes clips
into it and the sender empties it. The spool being the file system, either
may stop at any instant (a power cut, kill -9) and a restart carries on: the
sender finds the queue as it was, the recorder starts a new session.
"""

from firmware.alarms import Alarms
from firmware.committer import Committer
from firmware.compat.threads import Event, Thread
from firmware.config import ConfigError
from firmware.dicom.encoder import check_video
from firmware.dicom.iod import IODS, TRANSFER_SYNTAXES, check_transfer_syntax, transfer_syntax_of
from firmware.live import LiveFeed
from firmware.log import Log
from firmware.procedure import Procedure
from firmware.recorder import Recorder
from firmware.schedule import Schedule
from firmware.sender import Sender
from firmware.services.storage import pacs_tls
from firmware.spool import Spool, check_root
from firmware.study import exam

# The share of spool.max_bytes past which the spool is nearly full (an alarm).
NEARLY_FULL = 0.9
# How long stop() waits for a thread before it says which one is slow.
STOP_GRACE_S = 3.0


class Gateway:
    """configured: False while the box has no saved configuration (it then
    records nothing, whatever the clip policy, until the console saves one).
    keep_going: with a console to fix things from, a fault that stops the
    box working (no spool, no acquisition device) is an alarm and a retry;
    without one, run() ends and `fatal` says why. open_spool: False while
    the configuration cannot apply (the console's save opens it)."""

    def __init__(self, cfg, board, log=None, configured=True, keep_going=False, open_spool=True):
        self.cfg = cfg
        self.board = board
        self.log = Log(log)
        self.configured = configured
        self.keep_going = keep_going
        self.fatal = None  # why the gateway could not work at all
        self.reboot_requested = False
        self.poweroff_requested = False
        self.clock = board.open_clock()
        self.alarms = Alarms(self.clock, self.log)
        self._stop = Event()
        self.spool = None
        self.storage = None
        self.sender = Sender(self)
        self.committer = Committer(self)
        self.procedure = Procedure(self)
        self.live = LiveFeed(self)
        self.recorder = Recorder(self, self.live)
        self.schedule = Schedule(self)
        if open_spool:
            self.open_spool(cfg)
        try:
            self.sender.tls = pacs_tls(cfg, board)
        except (OSError, ValueError) as err:
            self.alarms.set("config", "TLS settings do not load: %s" % err, "check pacs.ca, pacs.cert, pacs.key")

    # -- what the parts share -------------------------------------------------------
    def open_spool(self, cfg):
        """The spool in cfg's folder; an alarm (or, without keep_going, the
        end) when it cannot be used."""
        try:
            self.storage = self.board.open_storage(cfg["spool.root"])
            self.spool = Spool(
                self.storage,
                cfg["spool.max_bytes"],
                max_failures=cfg["spool.max_failures"],
                retain_sent=cfg["spool.retain_sent"],
                min_free_bytes=cfg["spool.min_free_bytes"],
                log=self.log,
            )
        except (OSError, ValueError) as err:
            self.spool = None
            self.cannot_work("spool", "the spool cannot be used: %s" % err, "check spool.root")
            return
        self.alarms.clear("spool")
        if self.spool.quarantined():
            self.alarms.set("quarantine", "%d objects in quarantine" % len(self.spool.quarantined()),
                            "queue list; queue retry ID once the cause is fixed")

    def cannot_work(self, key, text, hint):
        """A fault that stops the box working: an alarm, and with no
        console to fix it from (keep_going), the end of run()."""
        self.alarms.set(key, text, hint)
        if not self.keep_going and self.fatal is None:
            self.fatal = "%s (%s)" % (text, hint)
            self.stop()

    def check_space(self):
        """The alarm before the refusal: the spool past NEARLY_FULL of
        spool.max_bytes, or the disk's free space under twice
        spool.min_free_bytes, so that someone looks at the PACS before
        recording stops."""
        spool = self.spool
        try:
            free = spool.storage.free_bytes()
        except OSError:
            return
        used = spool.used_bytes()
        if used >= NEARLY_FULL * spool.max_bytes or free < 2 * spool.min_free_bytes:
            self.alarms.set("spool space", "spool nearly full: %d of %d bytes used (spool.max_bytes), %d bytes free "
                            "on the disk (spool.min_free_bytes %d)" % (used, spool.max_bytes, free, spool.min_free_bytes),
                            "check that the PACS takes objects (status: last send)")
        elif used < (NEARLY_FULL - 0.05) * spool.max_bytes and free >= 2 * spool.min_free_bytes:
            self.alarms.clear("spool space")

    def stopping(self):
        return self._stop.is_set()

    def pause(self, seconds):
        """Wait seconds, or less if stop() comes meanwhile."""
        self._stop.wait(seconds)

    # -- control --------------------------------------------------------------------
    def start_recording(self):
        self.recorder.start_recording()

    def stop_recording(self):
        self.recorder.stop_recording()

    @property
    def recording(self):
        return self.recorder.requested and self.configured and self.spool is not None

    def start_streaming(self):
        self.live.wanted = True

    def stop_streaming(self):
        self.live.wanted = False

    def new_study(self):
        """The exam ended: the clip under way ends and the next one starts a
        new study."""
        self.recorder.end_study()
        self.log("recorder: exam ended; the next clip starts a new study")

    def apply(self, values):
        """A saved configuration takes effect: PACS settings on the next
        C-STORE (the association is renewed), the clip and acquisition
        settings from the next clip, a new patient at once (the clip under
        way is closed); the board, the spool folder and the console's
        settings at the next start."""
        self.sender.tls = pacs_tls(values, self.board)
        changed = exam(values) != exam(self.cfg)
        self.cfg = values
        if changed:
            self.recorder.end_clip()  # a clip is one patient's
        self.configured = True
        self.alarms.clear("config")
        if self.spool is None:
            self.open_spool(values)
        if values["clip.mode"] != "command":
            self.start_recording()

    def stop(self):
        """Stop both threads: the recorder closes and commits the clip it is
        writing (its frames so far), the sender finishes the C-STORE under
        way and releases the association."""
        self._stop.set()
        self.sender.notify()

    # -- what happened in this run ------------------------------------------------
    @property
    def clips(self):
        return self.recorder.clips

    @property
    def dropped_frames(self):
        return self.recorder.dropped_frames

    @property
    def stored(self):
        return self.sender.stored

    # -- the threads ------------------------------------------------------------------
    def run(self, until_sent=False, timeout=None):
        """Run until stop(); until_sent: also return once the recorder has
        finished its clip count and the queue is empty."""
        threads = [Thread(target=self._guard, args=("recorder", self.recorder.run), name="recorder"),
                   Thread(target=self._guard, args=("sender", self.sender.run), name="sender"),
                   Thread(target=self._guard, args=("worklist", self.schedule.run), name="worklist"),
                   Thread(target=self._guard, args=("listener", self.committer.listen), name="listener"),
                   Thread(target=self._guard, args=("mpps", self.procedure.run), name="mpps")]
        for t in threads:
            t.start()
        deadline = None if timeout is None else self.clock.monotonic_ns() + int(timeout * 1000000000)
        try:
            while not self._stop.is_set():
                if until_sent and self.recorder.done and self.spool is not None and not self.waiting():
                    break
                if deadline is not None and self.clock.monotonic_ns() > deadline:
                    self.log("gateway: gave up waiting after %.0f s" % timeout)
                    break
                self._stop.wait(0.05)
        finally:
            self.stop()
            for t in threads:
                t.join(STOP_GRACE_S)
                if t.is_alive():
                    # Said, so that a slow stop names its thread (the box's
                    # init gives modgate 10 s before it gives up on it).
                    self.log("gateway: the %s thread is still busy %.0f s after the stop" % (t.name, STOP_GRACE_S))
                    t.join()

    def waiting(self):
        """The queue's objects still to send, and with storage commitment
        those still to be committed (["?"] when the queue cannot be read:
        not known to be empty)."""
        try:
            waiting = self.spool.pending()
            if self.cfg["pacs.commit"]:
                waiting += self.spool.awaiting()
            return waiting
        except OSError:
            return ["?"]  # unreadable: not known to be empty

    def _guard(self, name, target):
        """A thread's body, restarted after an unexpected fault (with a
        growing pause) so that a bug met by one clip or one object never
        stops the box; the fault is an alarm until the thread works again."""
        pause = 1.0
        while not self._stop.is_set():
            try:
                target()
                return
            except Exception as err:
                self.alarms.set(name, "%s stopped: %s: %s; restarting in %.0f s" % (
                    name, type(err).__name__, err, pause), "log shows what it was doing")
                self._stop.wait(pause)
                pause = min(pause * 2, 60.0)


def check_applicable(cfg, board, storage=None):
    """Raise ConfigError unless cfg can run on board: the checks the schema
    cannot make alone. storage: the spool folder in use, when the box runs
    (at start-up the spool itself checks its folder)."""
    acq = board.data["acquisition"]
    pixel = cfg["acquisition.pixel"] or acq["pixel"]
    width = cfg["acquisition.width"] or acq["width"]
    height = cfg["acquisition.height"] or acq["height"]
    formats = IODS[cfg["clip.iod"]].pixel_formats
    if pixel not in formats:
        raise ConfigError("acquisition.pixel", "clip.iod %s takes %s pixels; the board delivers %s: set acquisition.pixel" % (
            cfg["clip.iod"], " or ".join(formats), pixel))
    length = board.frame_length(pixel, width, height)
    if length > board.max_frame_bytes:
        raise ConfigError("acquisition.width", "a %dx%d %s frame is %d bytes; board %s takes at most %d (a quarter of "
                          "its %d MiB memory budget)" % (width, height, pixel, length, board.name,
                                                        board.max_frame_bytes, board.memory_budget_mib))
    name = transfer_syntax_of(cfg["clip.transfer_syntax"], cfg["clip.iod"])
    uid, kind = TRANSFER_SYNTAXES[name]
    try:
        # with the board's own pixel format where the configuration has none
        check_transfer_syntax(name, cfg["clip.iod"], pixel)
    except ValueError as err:
        raise ConfigError("clip.transfer_syntax", str(err))
    if kind is not None and kind not in board.data.get("codec", {}):
        raise ConfigError("clip.transfer_syntax", "board %s has no %s encoder for %s" % (board.name, kind, name))
    if kind == "h264":
        rate = cfg["acquisition.rate"] or acq["rate"]
        try:
            check_video(uid, width, height, rate)
        except ValueError as err:
            raise ConfigError("clip.transfer_syntax", "%s at %dx%d %d/%d fps: %s" % (
                name, width, height, rate[0], rate[1], err))
    try:
        for key in ("pacs.tls", "worklist.tls", "mpps.tls"):
            pacs_tls(cfg, board, key)
    except (OSError, ValueError) as err:
        raise ConfigError("pacs.ca", "the TLS files do not load: %s" % err)
    root = cfg["spool.root"]
    if storage is not None:
        # A new spool folder (the one in use is not checked again): it
        # must be empty or modgate's own, never a folder with others' files.
        wanted = root if root is not None else board.data["storage"]["root"]
        if wanted != storage.root:
            problem = check_root(board.open_storage(wanted))
            if problem:
                raise ConfigError("spool.root", problem)
