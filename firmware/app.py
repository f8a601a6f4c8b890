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

from firmware.alarms import Alarms, hint_for
from firmware.capture import write_frames
from firmware.compat.threads import Event, Thread
from firmware.config import EXAM_KEYS, ConfigError
from firmware.dicom import tags
from firmware.dicom.encoder import ObjectEncoder
from firmware.dicom.iod import IODS
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, generate_uid
from firmware.log import Log
from firmware.net import dimse
from firmware.scu import AssociationError, StorageSCU, Timeouts, object_info, tls_context
from firmware.spool import Spool, SpoolFull, check_root
from hal.acq import frame_length


# Seconds the recorder waits for a frame before it looks at its stop and
# start signals again, whatever the frame rate (hal.acq read(timeout_s)).
READ_SLICE_S = 0.2
# The share of spool.max_bytes past which the spool is nearly full (an alarm).
NEARLY_FULL = 0.9
# Room reserved in the spool for an object's header besides its frames.
HEADER_ALLOWANCE = 64 * 1024
ACQUISITION_KEYS = ("acquisition.width", "acquisition.height", "acquisition.pixel", "acquisition.rate",
                    "acquisition.paced")
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


class Study:
    """The study and series the next clip goes into. A change of patient or
    exam (config.EXAM_KEYS) or the console's `exam end` starts a new study; a
    change of what the series is made with (station, IOD, frame format) a
    new series of the same study. Instances are numbered from 1 in each
    series."""

    __slots__ = ("exam", "series_key", "study_uid", "series_uid", "series_number", "instances")

    def __init__(self, exam, series_key, uid_root):
        self.exam = exam
        self.study_uid = generate_uid(uid_root)
        self.series_number = 0
        self.new_series(series_key, uid_root)

    def new_series(self, series_key, uid_root):
        self.series_key = series_key
        self.series_uid = generate_uid(uid_root)
        self.series_number += 1
        self.instances = 0


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
        self.last_send = None  # (wall time, name, result text)
        self.reboot_requested = False
        self.poweroff_requested = False
        self.clock = board.open_clock()
        self.alarms = Alarms(self.clock, self.log)
        self.clips = []  # Clip, for every clip committed in this run
        self.stored = 0
        self.dropped_frames = 0
        self.study = None
        self._new_study = False
        self._exam_epoch = 0
        self._acquired = False  # the device opened at least once in this run  # raised by every change of patient or exam: the clip under way ends
        self._last_sequence = None
        self._stop = Event()
        self._recording = Event()
        self._queued = Event()
        self._recorder_done = Event()
        self._tls = None
        self.spool = None
        self.storage = None
        if open_spool:
            self._open_spool(cfg)
        if cfg["pacs.tls"]:
            try:
                self._tls = tls_context(cfg["pacs.ca"], cfg["pacs.cert"], cfg["pacs.key"])
            except (OSError, ValueError) as err:
                self.alarms.set("config", "TLS settings do not load: %s" % err, "check pacs.ca, pacs.cert, pacs.key")
        if cfg["clip.mode"] != "command":
            self._recording.set()
        self._streaming = Event()  # wanted; the recorder opens and closes it
        self.live = None  # the LiveStream while streaming
        self._stream_exam = None
        if cfg["rtv.enabled"]:
            self._streaming.set()

    def _open_spool(self, cfg):
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
            self._cannot_work("spool", "the spool cannot be used: %s" % err, "check spool.root")
            return
        self.alarms.clear("spool")
        if self.spool.quarantined():
            self.alarms.set("quarantine", "%d objects in quarantine" % len(self.spool.quarantined()),
                            "queue list; queue retry ID once the cause is fixed")

    def _cannot_work(self, key, text, hint):
        self.alarms.set(key, text, hint)
        if not self.keep_going and self.fatal is None:
            self.fatal = "%s (%s)" % (text, hint)
            self.stop()

    # -- control ----------------------------------------------------------
    def start_recording(self):
        self._recording.set()

    def stop_recording(self):
        self._recording.clear()

    @property
    def recording(self):
        return self._recording.is_set() and self.configured and self.spool is not None

    def start_streaming(self):
        self._streaming.set()

    def stop_streaming(self):
        self._streaming.clear()

    def new_study(self):
        """The exam ended: the clip under way ends and the next one starts a
        new study."""
        self._new_study = True
        self._exam_epoch += 1
        self.log("recorder: exam ended; the next clip starts a new study")

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
                if until_sent and self._recorder_done.is_set() and self.spool is not None and not self._pending():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    self.log("gateway: gave up waiting after %.0f s" % timeout)
                    break
                self._stop.wait(0.05)
        finally:
            self.stop()
            for t in threads:
                t.join()

    def _pending(self):
        try:
            return self.spool.pending()
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

    # -- recorder -----------------------------------------------------------
    def record(self):
        acq = None
        opened_with = None
        failures = 0
        self._recorder_done.clear()  # a restart after a fault (_guard) goes on
        try:
            while not self._stop.is_set():
                cfg = self.cfg  # what is in force now: a saved change applies from the next clip
                settings = _acquisition_settings(cfg)
                if acq is not None and settings != opened_with:
                    self.log("recorder: acquisition settings changed; reopening the device")
                    acq.stop()
                    self._close_stream()
                    acq = None
                if acq is None:
                    try:
                        acq = self._open_acquisition(cfg)
                    except (OSError, ValueError) as err:
                        failures += 1
                        text = "cannot open the acquisition device: %s" % err
                        hint = "check the board's capture device and acquisition.*"
                        if self._acquired:  # it worked in this run: unplugged, perhaps; keep trying
                            self.alarms.set("acquisition", text, hint)
                        else:
                            self._cannot_work("acquisition", text, hint)
                        self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
                        continue
                    opened_with = settings
                    failures = 0
                    self._acquired = True
                    self.alarms.clear("acquisition")
                count = cfg["clip.count"]
                if count and len(self.clips) >= count:
                    self._recorder_done.set()
                    break
                try:
                    if self.recording:
                        self._record_clip(acq, cfg)
                    else:
                        # Idle between clips: keep the device drained, so
                        # that a clip starts with the frame of the start command.
                        self._idle_read(acq)
                except AcquisitionLost as err:
                    self.alarms.set("acquisition", "the acquisition device failed: %s" % err.reason,
                                    "check the cable and the modality's video output")
                    acq.stop()
                    acq = None
                    self._stop.wait(0.5)
        finally:
            if acq is not None:
                acq.stop()
            self._close_stream()

    def _open_acquisition(self, cfg):
        acq = self.board.open_acquisition(
            width=cfg["acquisition.width"], height=cfg["acquisition.height"], pixel=cfg["acquisition.pixel"],
            rate=tuple(cfg["acquisition.rate"]) if cfg["acquisition.rate"] else None,
            clock=self.clock, paced=cfg["acquisition.paced"])
        acq = _Tap(acq, self._stream_frame)
        self.log("recorder: %s %dx%d %s at %d/%d fps, %s clips of %s" % (
            self.board.name, acq.width, acq.height, acq.pixel, acq.rate[0], acq.rate[1],
            cfg["clip.count"] or "unlimited", self._policy(cfg)))
        acq.start()
        return acq

    def _idle_read(self, acq):
        """One frame read and dropped (the stream still gets it), at most at
        the frame rate: a device that hands frames out at once (the
        simulated board unpaced) must not spin a core while idle."""
        started = time.monotonic()
        try:
            frame = acq.read(READ_SLICE_S)
        except Exception as err:
            raise AcquisitionLost("%s: %s" % (type(err).__name__, err))
        if frame is not None:
            self._last_sequence = frame.sequence
        left = min(acq.rate[1] / acq.rate[0], READ_SLICE_S) - (time.monotonic() - started)
        if left > 0.001:
            self._stop.wait(left)

    def _place(self, cfg, acq):
        """Study, series and instance number for a clip starting now."""
        uid_root = cfg["station.uid_root"]
        exam = tuple(cfg[key] for key in EXAM_KEYS)
        series_key = (cfg["station.name"], cfg["station.ae_title"], cfg["clip.iod"], acq.width, acq.height, acq.pixel)
        study = self.study
        if study is None or study.exam != exam or self._new_study:
            if study is not None:
                self.log("recorder: %s; new study" % ("exam ended" if self._new_study else "patient or exam changed"))
            study = self.study = Study(exam, series_key, uid_root)
            self._new_study = False
        elif study.series_key != series_key:
            self.log("recorder: station or frame format changed; new series")
            study.new_series(series_key, uid_root)
        study.instances += 1
        attributes = patient_attributes(cfg)
        attributes[tags.StudyInstanceUID] = study.study_uid
        attributes[tags.SeriesInstanceUID] = study.series_uid
        attributes[tags.SeriesNumber] = study.series_number
        attributes[tags.InstanceNumber] = study.instances
        if cfg["study.description"]:
            attributes[tags.StudyDescription] = cfg["study.description"]
        if cfg["station.name"]:
            attributes[tags.StationName] = cfg["station.name"]
        return attributes

    def _record_clip(self, acq, cfg):
        """One clip with the values in force at its start."""
        spool = self.spool
        length = frame_length(acq.pixel, acq.width, acq.height)
        expected = self._expected_frames(cfg, acq) * length + HEADER_ALLOWANCE
        try:
            recording = spool.begin(expected)
        except SpoolFull as err:
            self.alarms.set("spool", str(err), "the PACS must take objects before more can be recorded")
            self._idle_read(acq)
            self._stop.wait(0.2)
            return False
        except OSError as err:
            self.alarms.set("spool", "cannot start a clip in the spool: %s" % err, "check the spool's storage")
            self._idle_read(acq)
            self._stop.wait(1.0)
            return False
        if self.alarms.text("spool") is not None and spool.alarm is None:
            self.alarms.clear("spool")
        attributes = self._place(cfg, acq)
        failure = []
        try:
            encoder = ObjectEncoder(cfg["clip.iod"], acq.height, acq.width, acq.pixel, self.clock.wall_utc(),
                                    attributes, frame_rate=acq.rate, transfer_syntax=STORAGE_TRANSFER_SYNTAX,
                                    uid_root=cfg["station.uid_root"], source_ae_title=cfg["station.ae_title"])
            first = []
            write_frames(recording, encoder, self._clip_frames(cfg, acq, encoder, first, length, failure))
            if encoder.frame_count == 0:
                recording.abandon()
                return False
            name = recording.commit()
        except OSError as err:
            # The spool's file system failed under the clip (full, I/O
            # error): this clip is lost, the queue and the box are not.
            _abandon(recording)
            self.alarms.set("recorder", "clip abandoned: writing it failed: %s" % err,
                            "check the spool's free space (status) and storage")
            if cfg["clip.mode"] == "command":
                self._recording.clear()
            self._stop.wait(1.0)
            return False
        except BaseException:
            _abandon(recording)
            raise
        self.alarms.clear("recorder")
        clip = Clip(name, encoder.sop_instance_uid, first[0], encoder.frame_count, attributes[tags.InstanceNumber])
        self.clips.append(clip)
        self.log("recorder: clip %d (%d frames) queued as %s, SOP Instance UID %s (patient ID %s)" % (
            clip.instance_number, clip.frames, name, clip.sop_instance_uid, cfg["patient.id"] or "(none)"))
        self._queued.set()
        self._check_space()
        if failure:
            raise AcquisitionLost(failure[0])
        return True

    def _check_space(self):
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

    # -- PS3.22 streaming, fed by the recorder ------------------------------
    def _stream_frame(self, acq, frame):
        """Every frame the recorder reads, recording or idle, also goes to
        the live stream while streaming is wanted; a change of patient
        reopens it, so the metadata names the patient in force."""
        want = self._streaming.is_set() and not self._stop.is_set()
        exam = tuple(self.cfg[key] for key in EXAM_KEYS)
        if self.live is not None and (not want or exam != self._stream_exam):
            self._close_stream()
        if want and self.live is None:
            try:
                self._open_stream(acq)
                self._stream_exam = exam
                self.alarms.clear("stream")
            except (OSError, ValueError) as err:
                self._streaming.clear()
                self.alarms.set("stream", "stream not started: %s" % err, "check rtv.*")
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

    def _policy(self, cfg):
        mode = cfg["clip.mode"]
        if mode == "frames":
            return "%d frames" % cfg["clip.frames"]
        if mode == "seconds":
            return "%s s" % cfg["clip.seconds"]
        return "start/stop on command"

    def _expected_frames(self, cfg, acq):
        mode = cfg["clip.mode"]
        if mode == "frames":
            return cfg["clip.frames"]
        if mode == "seconds":
            return int(cfg["clip.seconds"] * acq.rate[0] / acq.rate[1]) + 1
        return 1  # open-ended: checked frame by frame

    def _clip_frames(self, cfg, acq, encoder, first, length, failure):
        """Frame data for one clip, until the policy, a stop command, a full
        spool, the object's size limit or stop() ends it. first receives the
        first frame's sequence; failure the reason if the device failed
        (the clip then ends with the frames it has)."""
        mode = cfg["clip.mode"]
        epoch = self._exam_epoch
        limit = encoder.max_frames
        if mode == "frames":
            limit = min(limit, cfg["clip.frames"])
        ends = None
        if mode == "seconds":
            ends = self.clock.monotonic_ns() + int(cfg["clip.seconds"] * 1e9)
        n = 0
        while n < limit:
            if self._stop.is_set() or (mode == "command" and not self._recording.is_set()):
                return
            if self._exam_epoch != epoch:
                # Never the next patient's frames in this patient's clip.
                self.log("recorder: patient or exam changed; clip closed with %d frames" % n)
                return
            if ends is not None and self.clock.monotonic_ns() >= ends and n:
                return
            if mode == "command" and not self.spool.room_for(length):
                self.alarms.set("spool", "spool full: clip closed early, recording refused (%d of %d bytes used)" % (
                    self.spool.used_bytes(), self.spool.max_bytes), "the PACS must take objects first")
                self._recording.clear()
                return
            try:
                frame = acq.read(READ_SLICE_S)
            except Exception as err:  # OSError, a replay's EOFError or ValueError: the frames so far stay
                failure.append("%s: %s" % (type(err).__name__, err))
                return
            if frame is None:
                continue
            if not first:
                first.append(frame.sequence)
            if self._last_sequence is not None and frame.sequence > self._last_sequence + 1:
                self.dropped_frames += frame.sequence - self._last_sequence - 1
                self.log("recorder: %d frames dropped before frame %d" % (frame.sequence - self._last_sequence - 1, frame.sequence))
            self._last_sequence = frame.sequence
            n += 1
            yield frame.data
        if n == encoder.max_frames and mode != "frames":
            self.log("recorder: clip reached the largest object the encoder writes (%d frames); "
                     "the next clip goes on" % n)

    # -- sender ---------------------------------------------------------------
    def send(self):
        scu = None
        scu_settings = None
        attempt = 0
        retry_at = 0.0
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                cfg = self.cfg
                spool = self.spool
                now = time.monotonic()
                if now < retry_at:
                    self._stop.wait(min(retry_at - now, 0.2))
                    continue
                if spool is None:
                    if self.configured:
                        # It failed at start (EIO, a folder being mounted):
                        # tried again with backoff, still an alarm meanwhile.
                        attempt += 1
                        retry_at = time.monotonic() + self._backoff(cfg, attempt)
                        self._open_spool(cfg)
                    else:
                        self._stop.wait(0.2)
                    continue
                try:
                    pending = spool.pending()
                except OSError as err:
                    attempt += 1
                    retry_at = time.monotonic() + self._backoff(cfg, attempt)
                    self.alarms.set("queue", "cannot read the queue: %s" % err, "check the spool's storage")
                    continue
                self.alarms.clear("queue")
                if not pending:
                    if scu is not None and now - idle_since >= cfg["pacs.idle_release"]:
                        scu.release()
                        scu = None
                    self._queued.wait(0.2)
                    self._queued.clear()
                    continue
                name = pending[0]
                path = spool.path(name)
                try:
                    meta, _ = object_info(path)
                except ValueError as err:  # not a Part 10 header: it never will be
                    self._give_up(name, "unreadable: %s" % err)
                    continue
                except OSError as err:  # a read that may work next time (EMFILE, EIO)
                    self._failed(name, "cannot read it: %s" % err)
                    attempt += 1
                    retry_at = time.monotonic() + self._backoff(cfg, attempt)
                    continue
                # The association is the PACS's: a fault setting it up is
                # retried with backoff and counts against no object.
                try:
                    if scu is not None and self._pacs_settings() != scu_settings:
                        self.log("sender: PACS settings changed; new association")
                        scu.release()
                        scu = None
                    if scu is None or not scu.usable or not scu.negotiated.choose(meta.sop_class_uid, meta.transfer_syntax_uid):
                        if scu is not None:
                            scu.release()
                        scu_settings = self._pacs_settings()
                        scu = None
                        scu = self._associate(pending)
                except AssociationError as err:
                    scu = None
                    attempt += 1
                    delay = self._backoff(cfg, attempt)
                    retry_at = time.monotonic() + delay
                    self.alarms.set("pacs", str(err), hint_for(str(err)))
                    self.log("sender: %s; %d objects waiting, retry %d in %.1f s" % (err, len(pending), attempt, delay))
                    continue
                # Sending is the object's: an association that breaks while
                # this object is under way counts against it, like a failure
                # status, so an object that breaks every association ends in
                # quarantine instead of stalling the queue.
                try:
                    result = scu.store(path, meta)
                except AssociationError as err:
                    scu = None
                    attempt += 1
                    delay = self._backoff(cfg, attempt)
                    retry_at = time.monotonic() + delay
                    self.alarms.set("pacs", "association lost while sending %s: %s" % (name, err), hint_for(str(err)))
                    self._failed(name, "association lost while it was sent: %s" % err)
                    continue
                except Exception as err:
                    if scu is not None:
                        scu.abort()
                    scu = None
                    self._failed(name, "sending it failed: %s: %s" % (type(err).__name__, err))
                    continue
                attempt = 0
                idle_since = time.monotonic()
                self.alarms.clear("pacs")
                self.last_send = (self.clock.wall_utc(), name, str(result))
                if getattr(result, "object_fault", False):
                    self._give_up(name, result.meaning)
                elif DISPOSITION[result.category][0] == "stored":
                    spool.stored(name)
                    self.stored += 1
                    self._check_space()
                    self.log("sender: %s stored (%s)" % (name, result))
                else:
                    self.log("sender: %s not stored: %s" % (name, result))
                    self._failed(name, str(result))
        finally:
            if scu is not None:
                scu.release()

    def _backoff(self, cfg, attempt):
        delay = min(cfg["spool.backoff_max"], cfg["spool.backoff_initial"] * 2 ** min(attempt - 1, 30))
        return delay * (0.5 + random.random() / 2)  # jitter: boxes that lost one PACS do not retry in step

    def _associate(self, pending):
        """A new association proposing what the next objects in the queue
        need (a bounded look-ahead: the first LOOK_AHEAD)."""
        wanted = set()
        for name in pending[:LOOK_AHEAD]:
            try:
                meta, _ = object_info(self.spool.path(name))
            except (OSError, ValueError):
                continue
            wanted.add((meta.sop_class_uid, meta.transfer_syntax_uid))
        scu = storage_scu(self.cfg, self._tls, self.log)
        scu.associate(sorted(wanted))
        return scu

    def _pacs_settings(self):
        return [self.cfg[k] for k in PACS_KEYS]

    def _failed(self, name, why):
        """One more failure for a queued object; quarantined at the limit."""
        if self.spool.failed(name, why) is None:
            self._quarantined(name, why)

    def _give_up(self, name, why):
        """An object that can never be sent goes to quarantine at once."""
        while name is not None:
            last, name = name, self.spool.failed(name, why)
        self._quarantined(last, why)

    def _quarantined(self, name, why):
        self.alarms.set("quarantine", "%d objects in quarantine, the last %s: %s" % (
            len(self.spool.quarantined()), name, why), "queue list; queue retry ID once the cause is fixed")


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

    def read(self, timeout_s=None):
        frame = self._acq.read(timeout_s)
        if frame is not None:
            self._hook(self, frame)
        return frame


class ConsoleSystem:
    """What the serial console can see and do on a running gateway (the
    `system` of firmware/console/shell.py)."""

    def __init__(self, gateway, nic=None, load_board=None):
        self.gateway = gateway
        self.nic = nic
        self._load_board = load_board  # name -> Board, to check a change of board

    def status(self):
        g = self.gateway
        lines = ["board      %s" % g.board.name]
        if self.nic is not None:
            try:
                speed = self.nic.speed_mbps()
                lines.append("link       %s %s%s, MTU %d" % (self.nic.name, "up" if self.nic.link_up() else "DOWN",
                                                             " %d Mb/s" % speed if speed else "", self.nic.mtu()))
            except OSError as err:
                lines.append("link       %s unknown: %s" % (self.nic.name, err))
        if not g.configured:
            state = "off: no configuration saved yet (set, then save)"
        elif g._recorder_done.is_set():
            state = "done (clip.count reached)"
        elif g.recording:
            state = "on"
        else:
            state = "idle"
        cfg = g.cfg
        lines.append("recording  %s, %d clips this run, %d frames dropped" % (state, len(g.clips), g.dropped_frames))
        study = g.study
        if study is None or g._new_study or study.exam != tuple(cfg[key] for key in EXAM_KEYS):
            where = "the next clip starts a new study"
        else:
            where = "study %s" % study.study_uid
        lines.append("patient    %s, ID %s, %s" % (cfg["patient.name"] or "(none)", cfg["patient.id"] or "(none)", where))
        spool = g.spool
        if spool is None:
            lines.append("queue      no spool")
        else:
            try:
                waiting = len(spool.pending())
            except OSError as err:
                waiting = "unreadable (%s)" % err
            lines.append("queue      %s waiting, %d quarantined, %d of %d bytes used, %d free on the disk" % (
                waiting, len(spool.quarantined()), spool.used_bytes(), spool.max_bytes, spool.storage.free_bytes()))
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
        alarms = g.alarms.active()
        if spool is not None and spool.alarm and g.alarms.text("spool") is None:
            alarms.append(("spool", g.clock.wall_utc(), spool.alarm, ""))
        if not alarms:
            lines.append("alarms     none")
        for key, since, text, hint in alarms:
            lines.append("ALARM      %04d-%02d-%02d %02d:%02d:%02dZ %s: %s" % (since[:6] + (key, text)))
            if hint:
                lines.append("             hint: %s" % hint)
        return lines

    def echo(self):
        cfg = self.gateway.cfg
        scu = storage_scu(cfg, self.gateway._tls)
        try:
            scu.associate([])
            status, _, meaning = scu.echo()
            scu.release()
        except AssociationError as err:
            hint = hint_for(str(err))
            return "error: C-ECHO %s@%s:%d: %s%s" % (cfg["pacs.ae_title"], cfg["pacs.host"], cfg["pacs.port"], err,
                                                     " (%s)" % hint if hint else "")
        return "C-ECHO %s@%s:%d: %04X %s" % (cfg["pacs.ae_title"], cfg["pacs.host"], cfg["pacs.port"], status, meaning)

    def record(self, start):
        g = self.gateway
        if g.cfg["clip.mode"] != "command":
            return "error: clip.mode is %s; record start|stop needs clip.mode command" % g.cfg["clip.mode"]
        if start:
            if not g.configured:
                return "error: no configuration saved yet: set the PACS and the patient, then save"
            if g.spool is None:
                return "error: no spool to record into: %s" % (g.alarms.text("spool") or "see status")
            if g._recording.is_set():
                return "already recording"
            g.start_recording()
            return "recording"
        if not g._recording.is_set():
            return "not recording: the recorder is idle"
        g.stop_recording()
        return "recording stopped; the clip goes to the spool"

    def stream(self, start):
        g = self.gateway
        cfg = g.cfg
        if not start:
            g.stop_streaming()
            return "streaming stopped" if g.live is not None else "not streaming"
        if g.storage is None:
            return "error: no spool folder to write the SDP files into: %s" % (g.alarms.text("spool") or "see status")
        if g._recorder_done.is_set():
            return "error: the recorder has stopped (clip.count reached): no frames to stream"
        g.start_streaming()
        return "streaming to %s:%d, metadata to %s:%d; SDPs in %s" % (
            cfg["rtv.host"], cfg["rtv.port"], cfg["rtv.host"], cfg["rtv.metadata_port"], g.storage.path(""))

    def queue(self, args):
        g = self.gateway
        spool = g.spool
        if spool is None:
            return ["error: no spool: %s" % (g.alarms.text("spool") or "see status")]
        if args == ["list"]:
            lines = []
            for folder, names in (("waiting", spool.pending()), ("quarantined", spool.quarantined())):
                for name in names:
                    lines.append("%s: %s" % (folder, self._describe(spool, name, folder)))
            for path in spool.unknown():
                lines.append("not the spool's (left alone): %s" % path)
            return lines or ["the spool is empty"]
        if len(args) == 2 and args[0] == "retry":
            answer = spool.retry(args[1])
            if not spool.quarantined():
                g.alarms.clear("quarantine")
            g._queued.set()
            return [answer]
        if args == ["purge-quarantine"]:
            answer = "purged %d quarantined objects" % spool.purge_quarantine()
            g.alarms.clear("quarantine")
            return [answer]
        return ["error: usage: queue [list|retry ID|purge-quarantine]"]

    def _describe(self, spool, name, folder):
        d = spool.describe(name, "queue" if folder == "waiting" else "quarantine")
        if not d:
            return name
        parts = [name, "patient %s" % (d.get("patient_name") or "(none)")]
        for key, label in (("patient_id", "ID"), ("recorded", "recorded"),
                           ("size", "bytes"), ("tries", "tries"), ("last_error", "last error")):
            value = d.get(key)
            if value not in (None, ""):
                parts.append("%s %s" % (label, value))
        return ", ".join(parts)

    def log(self, n):
        return self.gateway.log.recent[-n:] or ["(no log lines yet)"]

    def check(self, values):
        """Raise ConfigError unless values can apply on this box: what the
        schema cannot know (the board's frame format and memory, TLS files
        that exist and parse, a spool folder that is the spool's)."""
        g = self.gateway
        target = g.board
        if values["board"] != g.board.name and self._load_board is not None:
            target = self._load_board(values["board"])  # applies at the next start: checked against it
        check_applicable(values, target, g.storage if target is g.board else None)
        if g.storage is None:
            problem = check_root(g.board.open_storage(values["spool.root"]))
            if problem:
                raise ConfigError("spool.root", problem)

    def apply(self, values):
        """A saved configuration takes effect: PACS settings on the next
        C-STORE (the association is renewed), the clip and acquisition
        settings from the next clip, a new patient at once (the clip under
        way is closed); the board, the spool folder and the console's
        settings at the next start."""
        g = self.gateway
        tls = None
        if values["pacs.tls"]:
            tls = tls_context(values["pacs.ca"], values["pacs.cert"], values["pacs.key"])
        g._tls = tls
        changed = any(values[key] != g.cfg[key] for key in EXAM_KEYS)
        g.cfg = values
        if changed:
            g._exam_epoch += 1  # the clip under way ends: a clip is one patient's
        g.configured = True
        g.alarms.clear("config")
        if g.spool is None:
            g._open_spool(values)
        if values["clip.mode"] != "command":
            g.start_recording()

    def new_study(self):
        self.gateway.new_study()
        return "the next clip starts a new study"

    def reboot(self):
        self.gateway.reboot_requested = True
        self.gateway.stop()

    def poweroff(self):
        self.gateway.poweroff_requested = True
        self.gateway.stop()
        return "powering off"


def storage_scu(cfg, tls, log=None):
    """A Storage SCU for the configured PACS (the sender's and echo's)."""
    return StorageSCU(
        cfg["pacs.host"], cfg["pacs.port"], called_ae_title=cfg["pacs.ae_title"],
        calling_ae_title=cfg["station.ae_title"], max_pdu=cfg["pacs.max_pdu"],
        timeouts=Timeouts(cfg["pacs.connect_timeout"], cfg["pacs.acse_timeout"], cfg["pacs.dimse_timeout"],
                          cfg["pacs.network_timeout"]),
        tls_context=tls, log=log)


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
    length = frame_length(pixel, width, height)
    if length > board.max_frame_bytes:
        raise ConfigError("acquisition.width", "a %dx%d %s frame is %d bytes; board %s takes at most %d (a quarter of "
                          "its %d MiB memory budget)" % (width, height, pixel, length, board.name,
                                                        board.max_frame_bytes, board.memory_budget_mib))
    if cfg["pacs.tls"]:
        try:
            tls_context(cfg["pacs.ca"], cfg["pacs.cert"], cfg["pacs.key"])
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


def _acquisition_settings(cfg):
    return tuple(cfg[key] for key in ACQUISITION_KEYS)


def _abandon(recording):
    try:
        recording.abandon()
    except OSError:
        pass  # the file stays in tmp/ and goes at the next start


class AcquisitionLost(Exception):
    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason
