"""The gateway: frames from the board's acquisition device -> encoder ->
spool -> Storage SCU, unattended.

Two threads share the spool and nothing else: the recorder writes clips
into it and the sender empties it. The spool being the file system, either
may stop at any instant (a power cut, kill -9) and a restart carries on: the
sender finds the queue as it was, the recorder starts a new session.

Clip policy (config clip.*): a fixed frame count, a duration, or start and
stop on command (start_recording / stop_recording, from the console or
SIGUSR1 / SIGUSR2). One recording session is one series of one study; clips
are its instances, numbered from 1.
"""

import random
import time

from firmware.capture import write_frames
from firmware.compat.threads import Event, Thread
from firmware.dicom import tags
from firmware.dicom.encoder import ObjectEncoder
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, generate_uid
from firmware.net import dimse
from firmware.scu import AssociationError, StorageSCU, Timeouts, object_info, tls_context
from firmware.spool import Spool, SpoolFull
from hal.acq import frame_length


LOG_LINES = 200
# PS3.5 A.2: the transfer syntax the recorder encodes clips in. The SCU
# proposes it and Implicit VR LE for each SOP class (acse.propose) and
# converts on the way out if only Implicit is accepted.
STORAGE_TRANSFER_SYNTAX = EXPLICIT_VR_LITTLE_ENDIAN
# Queued objects whose SOP classes a new association proposes contexts for.
LOOK_AHEAD = 16
# What becomes of a spooled object once its C-STORE-RSP is in, by status
# class (PS3.7 C.1.2, dimse.STATUS_RANGES): the Spool method the sender
# calls, and what that means for the object. The Conformance Statement
# prints this table.
DISPOSITION = {
    dimse.SUCCESS: ("stored", "leaves the queue: deleted, or kept in sent/ while spool.retain_sent allows"),
    dimse.WARNING: ("stored", "as for success (the SCP kept the object); the status and its meaning are logged"),
    dimse.FAILURE: ("failed", "stays in the queue with its failure count raised (NNN.fK.dcm) and is sent again; "
                              "after spool.max_failures failures it moves to quarantine/ and an alarm is logged"),
}
PACS_KEYS = ("pacs.host", "pacs.port", "pacs.ae_title", "pacs.max_pdu", "pacs.tls", "pacs.ca", "pacs.cert", "pacs.key",
             "pacs.connect_timeout", "pacs.acse_timeout", "pacs.dimse_timeout", "pacs.network_timeout",
             "station.ae_title")


def patient_attributes(cfg):
    """The patient and study attributes the configuration gives, for the
    stored objects and the real-time metadata alike."""
    return {
        tags.PatientName: cfg["patient.name"],
        tags.PatientID: cfg["patient.id"],
        tags.PatientBirthDate: cfg["patient.birth_date"],
        tags.PatientSex: cfg["patient.sex"],
        tags.AccessionNumber: cfg["study.accession_number"],
        tags.ReferringPhysicianName: cfg["study.referring_physician"],
    }


class Clip:
    """What the recorder put into the spool: enough to check it on arrival."""

    __slots__ = ("name", "sop_instance_uid", "first_sequence", "frames", "instance_number")

    def __init__(self, name, sop_instance_uid, first_sequence, frames, instance_number):
        self.name = name
        self.sop_instance_uid = sop_instance_uid
        self.first_sequence = first_sequence
        self.frames = frames
        self.instance_number = instance_number


class Gateway:
    def __init__(self, cfg, board, log=None):
        self.cfg = cfg
        self.board = board
        self._sink = log or (lambda message: None)
        self._recent = []  # the last LOG_LINES log lines, for the console
        self.last_send = None  # (wall time, name, result text)
        self.reboot_requested = False
        self.clock = board.open_clock()
        self.storage = board.open_storage(cfg["spool.root"])
        self.spool = Spool(
            self.storage,
            cfg["spool.max_bytes"],
            max_failures=cfg["spool.max_failures"],
            retain_sent=cfg["spool.retain_sent"],
            min_free_bytes=cfg["spool.min_free_bytes"],
            log=self.log,
        )
        self.clips = []  # Clip, for every clip committed in this run
        self.stored = 0
        self.dropped_frames = 0
        self._last_sequence = None
        self._stop = Event()
        self._recording = Event()
        self._queued = Event()
        self._recorder_done = Event()
        self._tls = None
        if cfg["pacs.tls"]:
            self._tls = tls_context(cfg["pacs.ca"], cfg["pacs.cert"], cfg["pacs.key"])
        if cfg["clip.mode"] != "command":
            self._recording.set()
        self._streaming = Event()  # wanted; the recorder opens and closes it
        self.live = None  # the LiveStream while streaming
        if cfg["rtv.enabled"]:
            self._streaming.set()

    def log(self, message):
        self._recent.append(message)
        del self._recent[:-LOG_LINES]
        self._sink(message)

    # -- control ----------------------------------------------------------
    def start_recording(self):
        self._recording.set()

    def stop_recording(self):
        self._recording.clear()

    def start_streaming(self):
        self._streaming.set()

    def stop_streaming(self):
        self._streaming.clear()

    def stop(self):
        """Stop both threads: the recorder closes and commits the clip it is
        writing (its frames so far), the sender finishes the C-STORE under
        way and releases the association."""
        self._stop.set()
        self._recording.set()  # wake a recorder waiting for a start command
        self._queued.set()

    def run(self, until_sent=False, timeout=None):
        """Run until stop(); until_sent: also return once the recorder has
        finished its clip count and the queue is empty."""
        threads = [Thread(target=self._guard, args=("recorder", self.record), name="recorder"),
                   Thread(target=self._guard, args=("sender", self.send), name="sender")]
        for t in threads:
            t.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._stop.is_set():
                if until_sent and self._recorder_done.is_set() and not self.spool.pending():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    self.log("gateway: gave up waiting after %.0f s" % timeout)
                    break
                self._stop.wait(0.05)
        finally:
            self.stop()
            for t in threads:
                t.join()

    def _guard(self, name, target):
        try:
            target()
        except Exception as err:  # a thread must not die silently
            self.log("ALARM %s stopped: %s: %s" % (name, type(err).__name__, err))
            self._stop.set()
            raise

    # -- recorder -----------------------------------------------------------
    def record(self):
        cfg = self.cfg
        acq = self.board.open_acquisition(
            width=cfg["acquisition.width"], height=cfg["acquisition.height"], pixel=cfg["acquisition.pixel"],
            rate=tuple(cfg["acquisition.rate"]) if cfg["acquisition.rate"] else None,
            clock=self.clock, paced=cfg["acquisition.paced"])
        acq = _Tap(acq, self._stream_frame)
        uid_root = cfg["station.uid_root"]
        session = {
            tags.StudyInstanceUID: generate_uid(uid_root),
            tags.SeriesInstanceUID: generate_uid(uid_root),
            tags.SeriesNumber: 1,
        }
        session.update(patient_attributes(cfg))
        if cfg["study.description"]:
            session[tags.StudyDescription] = cfg["study.description"]
        if cfg["station.name"]:
            session[tags.StationName] = cfg["station.name"]
        count = cfg["clip.count"]
        length = frame_length(acq.pixel, acq.width, acq.height)
        self.log("recorder: %s %dx%d %s at %d/%d fps, %s clips of %s" % (
            self.board.name, acq.width, acq.height, acq.pixel, acq.rate[0], acq.rate[1],
            count or "unlimited", self._policy()))
        acq.start()
        try:
            instance = 0
            while not self._stop.is_set() and (count == 0 or instance < count):
                while not self._recording.is_set() and not self._stop.is_set():
                    # Idle between clips: keep the device drained, so that a
                    # clip starts with the frame of the start command.
                    self._last_sequence = acq.read().sequence
                if self._stop.is_set():
                    break
                expected = self._expected_frames(acq) * length + 64 * 1024
                try:
                    recording = self.spool.begin(expected)
                except SpoolFull:
                    # Refused: keep the device drained, try again shortly.
                    acq.read()
                    self._stop.wait(0.2)
                    continue
                instance += 1
                attributes = dict(session)
                attributes[tags.InstanceNumber] = instance
                encoder = ObjectEncoder(cfg["clip.iod"], acq.height, acq.width, acq.pixel, self.clock.wall_utc(),
                                        attributes, frame_rate=acq.rate, transfer_syntax=STORAGE_TRANSFER_SYNTAX,
                                        uid_root=uid_root, source_ae_title=cfg["station.ae_title"])
                first = []
                try:
                    write_frames(recording, encoder, self._clip_frames(acq, first, length))
                except BaseException:
                    recording.abandon()
                    raise
                if encoder.frame_count == 0:
                    recording.abandon()
                    break
                name = recording.commit()
                self.clips.append(Clip(name, encoder.sop_instance_uid, first[0], encoder.frame_count, instance))
                self.log("recorder: clip %d (%d frames) queued as %s, SOP Instance UID %s" % (
                    instance, encoder.frame_count, name, encoder.sop_instance_uid))
                self._queued.set()
        finally:
            acq.stop()
            self._close_stream()
            self._recorder_done.set()

    # -- PS3.22 streaming, fed by the recorder ------------------------------
    def _stream_frame(self, acq, frame):
        """Every frame the recorder reads, recording or idle, also goes to
        the live stream while streaming is wanted."""
        want = self._streaming.is_set() and not self._stop.is_set()
        if want and self.live is None:
            try:
                self._open_stream(acq)
            except (OSError, ValueError) as err:
                self._streaming.clear()
                self.log("ALARM stream not started: %s" % err)
        elif not want and self.live is not None:
            self._close_stream()
        if self.live is not None:
            self.live.offer(frame.data, frame.timestamp_ns)

    def _open_stream(self, acq):
        from firmware.streaming import LiveStream, Streamer, write_sdps

        cfg = self.cfg
        video = (cfg["rtv.host"], cfg["rtv.port"])
        meta = (cfg["rtv.host"], cfg["rtv.metadata_port"])
        iod = cfg["clip.iod"] if cfg["clip.iod"] in ("video-endoscopic", "video-photographic") else "video-endoscopic"
        sinks = [self.board.open_datagram_sender(video, cfg["rtv.ttl"])]
        try:
            sinks.append(self.board.open_datagram_sender(meta, cfg["rtv.ttl"]))
            streamer = Streamer(acq.width, acq.height, acq.pixel, acq.rate, sinks[0], sinks[1], self.clock,
                                iod=iod, attributes=patient_attributes(cfg), source_ae_title=cfg["station.ae_title"],
                                uid_root=cfg["station.uid_root"])
            names = write_sdps(self.storage, streamer, video, meta, cfg["rtv.ttl"])
        except BaseException:
            for sink in sinks:
                sink.close()
            raise
        self.live = LiveStream(streamer, self.log)
        self._sinks = sinks
        self.live.start()
        self.log("stream: %dx%d %s to %s:%d, metadata to %s:%d; SDPs %s" % (
            acq.width, acq.height, acq.pixel, video[0], video[1], meta[0], meta[1],
            ", ".join(self.storage.path(n) for n in names)))

    def _close_stream(self):
        live, self.live = self.live, None
        if live is None:
            return
        live.stop()
        for sink in self._sinks:
            sink.close()
        s = live.streamer.stats()
        self.log("stream stopped: %d frames, %d late, %d skipped, %d datagrams dropped" % (
            s["frames"], s["late"], live.skipped, s["dropped_packets"]))

    def _policy(self):
        mode = self.cfg["clip.mode"]
        if mode == "frames":
            return "%d frames" % self.cfg["clip.frames"]
        if mode == "seconds":
            return "%s s" % self.cfg["clip.seconds"]
        return "start/stop on command"

    def _expected_frames(self, acq):
        mode = self.cfg["clip.mode"]
        if mode == "frames":
            return self.cfg["clip.frames"]
        if mode == "seconds":
            return int(self.cfg["clip.seconds"] * acq.rate[0] / acq.rate[1]) + 1
        return 1  # open-ended: checked frame by frame

    def _clip_frames(self, acq, first, length):
        """Frame data for one clip, until the policy, a stop command, a full
        spool or stop() ends it. first receives the first frame's sequence."""
        mode = self.cfg["clip.mode"]
        limit = self.cfg["clip.frames"] if mode == "frames" else None
        ends = None
        if mode == "seconds":
            ends = self.clock.monotonic_ns() + int(self.cfg["clip.seconds"] * 1e9)
        n = 0
        while limit is None or n < limit:
            if self._stop.is_set() or (mode == "command" and not self._recording.is_set()):
                return
            if ends is not None and self.clock.monotonic_ns() >= ends and n:
                return
            if mode == "command" and not self.spool.room_for(length):
                self.spool.alarm = "spool full: clip closed early, recording refused"
                self.log("ALARM " + self.spool.alarm)
                self._recording.clear()
                return
            frame = acq.read()
            if not first:
                first.append(frame.sequence)
            if self._last_sequence is not None and frame.sequence > self._last_sequence + 1:
                self.dropped_frames += frame.sequence - self._last_sequence - 1
                self.log("recorder: %d frames dropped before frame %d" % (frame.sequence - self._last_sequence - 1, frame.sequence))
            self._last_sequence = frame.sequence
            n += 1
            yield frame.data

    # -- sender ---------------------------------------------------------------
    def send(self):
        cfg = self.cfg
        scu = None
        scu_settings = None
        attempt = 0
        retry_at = 0.0
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                pending = self.spool.pending()
                now = time.monotonic()
                if not pending:
                    if scu is not None and now - idle_since >= cfg["pacs.idle_release"]:
                        scu.release()
                        scu = None
                    self._queued.wait(0.2)
                    self._queued.clear()
                    continue
                if now < retry_at:
                    self._stop.wait(min(retry_at - now, 0.2))
                    continue
                name = pending[0]
                try:
                    meta, _ = object_info(self.spool.path(name))
                except (OSError, ValueError) as err:
                    self._give_up(name, "unreadable: %s" % err)
                    continue
                try:
                    if scu is not None and self._pacs_settings() != scu_settings:
                        self.log("sender: PACS settings changed; new association")
                        scu.release()
                        scu = None
                    if scu is None or not scu.usable or not scu.negotiated.choose(meta.sop_class_uid, meta.transfer_syntax_uid):
                        if scu is not None:
                            scu.release()
                        scu_settings = self._pacs_settings()
                        scu = self._associate(pending)
                    result = scu.store(self.spool.path(name), meta)
                except AssociationError as err:
                    scu = None
                    attempt += 1
                    delay = min(cfg["spool.backoff_max"], cfg["spool.backoff_initial"] * 2 ** min(attempt - 1, 30))
                    delay *= 0.5 + random.random() / 2  # jitter: boxes that lost one PACS do not retry in step
                    retry_at = time.monotonic() + delay
                    self.log("sender: %s; %d objects waiting, retry %d in %.1f s" % (err, len(pending), attempt, delay))
                    continue
                attempt = 0
                idle_since = time.monotonic()
                self.last_send = (self.clock.wall_utc(), name, str(result))
                if DISPOSITION[result.category][0] == "stored":
                    self.spool.stored(name)
                    self.stored += 1
                    self.log("sender: %s stored (%s)" % (name, result))
                else:
                    self.log("sender: %s not stored: %s" % (name, result))
                    self.spool.failed(name, str(result))
        finally:
            if scu is not None:
                scu.release()

    def _associate(self, pending):
        """A new association proposing what the next objects in the queue
        need (a bounded look-ahead: the first LOOK_AHEAD)."""
        cfg = self.cfg
        wanted = set()
        for name in pending[:LOOK_AHEAD]:
            try:
                meta, _ = object_info(self.spool.path(name))
            except (OSError, ValueError):
                continue
            wanted.add((meta.sop_class_uid, meta.transfer_syntax_uid))
        scu = StorageSCU(
            cfg["pacs.host"], cfg["pacs.port"], called_ae_title=cfg["pacs.ae_title"],
            calling_ae_title=cfg["station.ae_title"], max_pdu=cfg["pacs.max_pdu"],
            timeouts=Timeouts(cfg["pacs.connect_timeout"], cfg["pacs.acse_timeout"], cfg["pacs.dimse_timeout"],
                              cfg["pacs.network_timeout"]),
            tls_context=self._tls, log=self.log)
        scu.associate(sorted(wanted))
        return scu

    def _pacs_settings(self):
        return [self.cfg[k] for k in PACS_KEYS]

    def _give_up(self, name, why):
        """An object that can never be sent goes to quarantine at once."""
        while name is not None:
            name = self.spool.failed(name, why)


class _Tap:
    """An acquisition board whose every frame is also shown to a hook."""

    def __init__(self, acq, hook):
        self._acq = acq
        self._hook = hook
        self.width, self.height, self.pixel, self.rate = acq.width, acq.height, acq.pixel, acq.rate

    def start(self):
        self._acq.start()

    def stop(self):
        self._acq.stop()

    def read(self):
        frame = self._acq.read()
        self._hook(self, frame)
        return frame


class ConsoleSystem:
    """What the serial console can see and do on a running gateway (the
    `system` of firmware/console/shell.py)."""

    def __init__(self, gateway, nic=None):
        self.gateway = gateway
        self.nic = nic

    def status(self):
        g = self.gateway
        lines = ["board      %s" % g.board.name]
        if self.nic is not None:
            speed = self.nic.speed_mbps()
            lines.append("link       %s %s%s, MTU %d" % (self.nic.name, "up" if self.nic.link_up() else "DOWN",
                                                         " %d Mb/s" % speed if speed else "", self.nic.mtu()))
        lines.append("recording  %s, %d clips this run, %d frames dropped" % (
            "on" if g._recording.is_set() else "off", len(g.clips), g.dropped_frames))
        lines.append("queue      %d waiting, %d quarantined, %d bytes used of %d" % (
            len(g.spool.pending()), len(g.spool.quarantined()), g.spool.used_bytes(), g.spool.max_bytes))
        if g.last_send:
            t, name, result = g.last_send
            lines.append("last send  %04d-%02d-%02d %02d:%02d:%02dZ %s %s" % (t[:6] + (name, result)))
        else:
            lines.append("last send  none yet")
        live = g.live
        if live is not None:
            st = live.streamer.stats()
            lines.append("stream     on, %d frames, %d late, %d skipped" % (st["frames"], st["late"], live.skipped))
        else:
            lines.append("stream     off")
        lines.append("alarms     %s" % (g.spool.alarm or "none"))
        return lines

    def echo(self):
        cfg = self.gateway.cfg
        scu = StorageSCU(cfg["pacs.host"], cfg["pacs.port"], called_ae_title=cfg["pacs.ae_title"],
                         calling_ae_title=cfg["station.ae_title"], max_pdu=cfg["pacs.max_pdu"],
                         timeouts=Timeouts(cfg["pacs.connect_timeout"], cfg["pacs.acse_timeout"],
                                           cfg["pacs.dimse_timeout"], cfg["pacs.network_timeout"]),
                         tls_context=self.gateway._tls)
        try:
            scu.associate([])
            status, _, meaning = scu.echo()
            scu.release()
        except AssociationError as err:
            return "error: C-ECHO %s@%s:%d: %s" % (cfg["pacs.ae_title"], cfg["pacs.host"], cfg["pacs.port"], err)
        return "C-ECHO %s@%s:%d: %04X %s" % (cfg["pacs.ae_title"], cfg["pacs.host"], cfg["pacs.port"], status, meaning)

    def record(self, start):
        g = self.gateway
        if g.cfg["clip.mode"] != "command":
            return "error: clip.mode is %s; record start|stop needs clip.mode command" % g.cfg["clip.mode"]
        if start:
            g.start_recording()
            return "recording"
        g.stop_recording()
        return "recording stopped; the clip goes to the spool"

    def stream(self, start):
        g = self.gateway
        cfg = g.cfg
        if not start:
            g.stop_streaming()
            return "streaming stopped" if g.live is not None else "not streaming"
        if g._recorder_done.is_set():
            return "error: the recorder has stopped (clip.count reached): no frames to stream"
        g.start_streaming()
        return "streaming to %s:%d, metadata to %s:%d; SDPs in %s" % (
            cfg["rtv.host"], cfg["rtv.port"], cfg["rtv.host"], cfg["rtv.metadata_port"], g.storage.path(""))

    def queue(self, args):
        spool = self.gateway.spool
        if args == ["list"]:
            lines = ["waiting: %s" % name for name in spool.pending()]
            lines += ["quarantined: %s" % name for name in spool.quarantined()]
            return lines or ["the spool is empty"]
        if len(args) == 2 and args[0] == "retry":
            return [spool.retry(args[1])]
        if args == ["purge-quarantine"]:
            return ["purged %d quarantined objects" % spool.purge_quarantine()]
        return ["error: usage: queue [list|retry ID|purge-quarantine]"]

    def log(self, n):
        return self.gateway._recent[-n:] or ["(no log lines yet)"]

    def apply(self, values):
        """A saved configuration takes effect: PACS settings on the next
        C-STORE (the association is renewed), the rest with the next clip
        or session."""
        self.gateway.cfg = values
        tls = None
        if values["pacs.tls"]:
            tls = tls_context(values["pacs.ca"], values["pacs.cert"], values["pacs.key"])
        self.gateway._tls = tls

    def reboot(self):
        self.gateway.reboot_requested = True
        self.gateway.stop()
