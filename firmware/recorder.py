"""The recorder: frames from the board's acquisition device -> encoder ->
spool, one clip after another (DESIGN.md: acq -> recorder -> spool). Every
frame it reads, recording or idle, also goes to the live stream.

Clip policy (config clip.*): a fixed frame count, a duration, or start and
stop on command (start_recording / stop_recording, from the console or
SIGUSR1 / SIGUSR2). One recording session is one series of one study; clips
are its instances, numbered from 1 (firmware/study.py).
"""

from firmware.capture import write_frames
from firmware.compat.threads import Event
from firmware.dicom import tags
from firmware.dicom.encoder import ObjectEncoder
from firmware.dicom.iod import TRANSFER_SYNTAXES, transfer_syntax_of
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, MPEG4_AVC_HP41_BD, MPEG4_AVC_HP42_2D
from firmware.spool import SpoolFull
from firmware.study import Study, equipment_attributes, exam, patient_attributes

# Seconds the recorder waits for a frame before it looks at its stop and
# start signals again, whatever the frame rate (hal.acq read(timeout_s)).
READ_SLICE_S = 0.2
# Room reserved in the spool for an object's header besides its frames.
HEADER_ALLOWANCE = 64 * 1024
ACQUISITION_KEYS = ("acquisition.width", "acquisition.height", "acquisition.pixel", "acquisition.rate",
                    "acquisition.paced")
# PS3.5 A.2: the transfer syntax of uncompressed clips (clip.transfer_syntax
# explicit). The SCU proposes it and Implicit VR LE for each SOP class
# (acse.propose) and converts on the way out if only Implicit is accepted.
STORAGE_TRANSFER_SYNTAX = EXPLICIT_VR_LITTLE_ENDIAN


def open_codec(board, cfg, acq):
    """(transfer syntax UID, the board's encoder or None) for a clip with
    cfg from acq (hal/codec; CodecError when the board has none)."""
    uid, kind = TRANSFER_SYNTAXES[transfer_syntax_of(cfg["clip.transfer_syntax"], cfg["clip.iod"])]
    if kind is None:
        return uid, None
    if kind == "jpeg":
        return uid, board.open_codec("jpeg", acq.width, acq.height, acq.pixel, acq.rate,
                                     quality=cfg["clip.jpeg_quality"])
    bitrate = cfg["clip.bitrate"]
    return uid, board.open_codec("h264", acq.width, acq.height, acq.pixel, acq.rate,
                                 bitrate=int(bitrate * 1000) if bitrate else None, gop=cfg["clip.gop"],
                                 level="4.2" if uid == MPEG4_AVC_HP42_2D else "4.1",
                                 bluray=uid == MPEG4_AVC_HP41_BD)


class Clip:
    """What the recorder put into the spool: enough to check it on arrival."""

    __slots__ = ("name", "sop_instance_uid", "first_sequence", "frames", "instance_number")

    def __init__(self, name, sop_instance_uid, first_sequence, frames, instance_number):
        self.name = name
        self.sop_instance_uid = sop_instance_uid
        self.first_sequence = first_sequence
        self.frames = frames
        self.instance_number = instance_number


class AcquisitionLost(Exception):
    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class Recorder:
    """gateway: what is in force now (cfg, board, clock, alarms, log, spool;
    a saved change applies from the next clip) and stop; live: the live
    stream (firmware/live.py) that sees every frame read."""

    def __init__(self, gateway, live):
        self.gateway = gateway
        self.live = live
        self.clips = []  # Clip, for every clip committed in this run
        self.dropped_frames = 0
        self.study = None
        self._new_study = False
        # Raised by every change of patient or exam: the clip under way ends.
        self._exam_epoch = 0
        self._acquired = False  # the device opened at least once in this run
        self._last_sequence = None
        self._requested = Event()
        self._done = Event()
        if gateway.cfg["clip.mode"] != "command":
            self._requested.set()

    # -- what the gateway and the console see and do ---------------------------
    def start_recording(self):
        self._requested.set()

    def stop_recording(self):
        self._requested.clear()

    @property
    def requested(self):
        """Recording is asked for: by the clip policy or a start command."""
        return self._requested.is_set()

    @property
    def done(self):
        """The recorder has recorded clip.count clips and stopped."""
        return self._done.is_set()

    def end_clip(self):
        """The patient or exam changed: the clip under way ends (a clip is
        one patient's)."""
        self._exam_epoch += 1

    def end_study(self):
        """The exam ended: the clip under way ends and the next one starts
        a new study."""
        self._new_study = True
        self.end_clip()

    def study_in_force(self, cfg):
        """The study the next clip with cfg goes into, or None if it starts
        a new one."""
        study = self.study
        if study is None or self._new_study or study.exam != exam(cfg):
            return None
        return study

    # -- the recorder's thread -------------------------------------------------
    def run(self):
        g = self.gateway
        acq = None
        opened_with = None
        failures = 0
        self._done.clear()  # a restart after a fault (Gateway._guard) goes on
        try:
            while not g.stopping():
                cfg = g.cfg  # what is in force now: a saved change applies from the next clip
                settings = tuple(cfg[key] for key in ACQUISITION_KEYS)
                if acq is not None and settings != opened_with:
                    g.log("recorder: acquisition settings changed; reopening the device")
                    acq.stop()
                    self.live.close()
                    acq = None
                if acq is None:
                    try:
                        acq = self._open_acquisition(cfg)
                    except (OSError, ValueError) as err:
                        failures += 1
                        text = "cannot open the acquisition device: %s" % err
                        hint = "check the board's capture device and acquisition.*"
                        if self._acquired:  # it worked in this run: unplugged, perhaps; keep trying
                            g.alarms.set("acquisition", text, hint)
                        else:
                            g.cannot_work("acquisition", text, hint)
                        g.pause(min(30.0, 0.5 * 2 ** min(failures, 6)))
                        continue
                    opened_with = settings
                    failures = 0
                    self._acquired = True
                    g.alarms.clear("acquisition")
                count = cfg["clip.count"]
                if count and len(self.clips) >= count:
                    self._done.set()
                    break
                try:
                    if g.recording:
                        self._record_clip(acq, cfg)
                    else:
                        # Idle between clips: keep the device drained, so
                        # that a clip starts with the frame of the start command.
                        self._idle_read(acq)
                except AcquisitionLost as err:
                    g.alarms.set("acquisition", "the acquisition device failed: %s" % err.reason,
                                 "check the cable and the modality's video output")
                    acq.stop()
                    acq = None
                    g.pause(0.5)
        finally:
            if acq is not None:
                acq.stop()
            self.live.close()

    def _open_acquisition(self, cfg):
        g = self.gateway
        acq = g.board.open_acquisition(
            width=cfg["acquisition.width"], height=cfg["acquisition.height"], pixel=cfg["acquisition.pixel"],
            rate=tuple(cfg["acquisition.rate"]) if cfg["acquisition.rate"] else None,
            clock=g.clock, paced=cfg["acquisition.paced"])
        acq = _Tap(acq, self.live.frame)
        g.log("recorder: %s %dx%d %s at %d/%d fps, %s clips of %s" % (
            g.board.name, acq.width, acq.height, acq.pixel, acq.rate[0], acq.rate[1],
            cfg["clip.count"] or "unlimited", _policy(cfg)))
        acq.start()
        return acq

    def _idle_read(self, acq):
        """One frame read and dropped (the stream still gets it), at most at
        the frame rate: a device that hands frames out at once (the
        simulated board unpaced) must not spin a core while idle."""
        clock = self.gateway.clock
        started = clock.monotonic_ns()
        try:
            frame = acq.read(READ_SLICE_S)
        except Exception as err:
            raise AcquisitionLost("%s: %s" % (type(err).__name__, err))
        if frame is not None:
            self._last_sequence = frame.sequence
        left = min(acq.rate[1] / acq.rate[0], READ_SLICE_S) - (clock.monotonic_ns() - started) / 1e9
        if left > 0.001:
            self.gateway.pause(left)

    def _place(self, cfg, acq):
        """Study, series and instance number for a clip starting now: its
        patient, study and equipment attributes."""
        uid_root = cfg["station.uid_root"]
        series_key = (cfg["station.name"], cfg["station.ae_title"], cfg["clip.iod"], acq.width, acq.height, acq.pixel)
        study = self.study_in_force(cfg)
        if study is None:
            if self.study is not None:
                self.gateway.log("recorder: %s; new study" % (
                    "exam ended" if self._new_study else "patient or exam changed"))
            study = self.study = Study(exam(cfg), series_key, uid_root, cfg["study.instance_uid"])
            self._new_study = False
            # A procedure under way since before (a reboot): its series.
            series = self.gateway.procedure.series_of(cfg, series_key)
            if series is not None:
                study.resume_series(*series)
        elif study.series_key != series_key:
            self.gateway.log("recorder: station or frame format changed; new series")
            study.new_series(series_key, uid_root)
        study.instances += 1
        attributes = equipment_attributes(self.gateway.board)
        attributes.update(patient_attributes(cfg, study))
        return attributes

    def _record_clip(self, acq, cfg):
        """One clip with the values in force at its start."""
        g = self.gateway
        spool = g.spool
        length = g.board.frame_length(acq.pixel, acq.width, acq.height)
        expected = _expected_frames(cfg, acq) * length + HEADER_ALLOWANCE
        try:
            recording = spool.begin(expected)
        except SpoolFull as err:
            g.alarms.set("spool", str(err), "the PACS must take objects before more can be recorded")
            self._idle_read(acq)
            g.pause(0.2)
            return False
        except OSError as err:
            g.alarms.set("spool", "cannot start a clip in the spool: %s" % err, "check the spool's storage")
            self._idle_read(acq)
            g.pause(1.0)
            return False
        if g.alarms.text("spool") is not None and spool.alarm is None:
            g.alarms.clear("spool")
        try:
            transfer_syntax, codec = open_codec(g.board, cfg, acq)
        except Exception as err:  # CodecError, or the settings do not suit the encoder
            recording.abandon()
            g.alarms.set("codec", "cannot record as %s: %s" % (
                transfer_syntax_of(cfg["clip.transfer_syntax"], cfg["clip.iod"]), err),
                         "check clip.transfer_syntax and the board's codecs")
            self._idle_read(acq)
            g.pause(1.0)
            return False
        g.alarms.clear("codec")
        attributes = self._place(cfg, acq)
        series = (self.study.series_key, attributes[tags.SeriesInstanceUID], attributes[tags.SeriesNumber],
                  attributes[tags.InstanceNumber])
        g.procedure.clip_starting(cfg)
        failure = []
        try:
            encoder = ObjectEncoder(cfg["clip.iod"], acq.height, acq.width, acq.pixel, g.clock.wall_utc(),
                                    attributes, frame_rate=acq.rate, transfer_syntax=transfer_syntax,
                                    uid_root=cfg["station.uid_root"], source_ae_title=cfg["station.ae_title"])
            first = []
            write_frames(recording, encoder, self._clip_frames(cfg, acq, encoder, first, length, failure), codec)
            if encoder.frame_count == 0:
                recording.abandon()
                return False
            name = recording.commit()
        except OSError as err:
            # The spool's file system failed under the clip (full, I/O
            # error): this clip is lost, the queue and the box are not.
            _abandon(recording)
            g.alarms.set("recorder", "clip abandoned: writing it failed: %s" % err,
                         "check the spool's free space (status) and storage")
            if cfg["clip.mode"] == "command":
                self._requested.clear()
            g.pause(1.0)
            return False
        except BaseException:
            _abandon(recording)
            raise
        finally:
            if codec is not None:
                codec.close()
        g.alarms.clear("recorder")
        g.procedure.clip_stored(cfg, series, encoder.iod.sop_class_uid, encoder.sop_instance_uid)
        clip = Clip(name, encoder.sop_instance_uid, first[0], encoder.frame_count, attributes[tags.InstanceNumber])
        self.clips.append(clip)
        g.log("recorder: clip %d (%d frames) queued as %s, SOP Instance UID %s (patient ID %s)" % (
            clip.instance_number, clip.frames, name, clip.sop_instance_uid, cfg["patient.id"] or "(none)"))
        g.sender.notify()
        g.check_space()
        if failure:
            raise AcquisitionLost(failure[0])
        return True

    def _clip_frames(self, cfg, acq, encoder, first, length, failure):
        """Frame data for one clip, until the policy, a stop command, a full
        spool, the object's size limit or stop() ends it. first receives the
        first frame's sequence; failure the reason if the device failed
        (the clip then ends with the frames it has)."""
        g = self.gateway
        mode = cfg["clip.mode"]
        epoch = self._exam_epoch
        limit = encoder.max_frames
        if mode == "frames":
            limit = min(limit, cfg["clip.frames"])
        ends = None
        if mode == "seconds":
            ends = g.clock.monotonic_ns() + int(cfg["clip.seconds"] * 1e9)
        n = 0
        while n < limit:
            if g.stopping() or (mode == "command" and not self._requested.is_set()):
                return
            if self._exam_epoch != epoch:
                # Never the next patient's frames in this patient's clip.
                g.log("recorder: patient or exam changed; clip closed with %d frames" % n)
                return
            if ends is not None and g.clock.monotonic_ns() >= ends and n:
                return
            if mode == "command" and not g.spool.room_for(length):
                g.alarms.set("spool", "spool full: clip closed early, recording refused (%d of %d bytes used)" % (
                    g.spool.used_bytes(), g.spool.max_bytes), "the PACS must take objects first")
                self._requested.clear()
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
                g.log("recorder: %d frames dropped before frame %d" % (
                    frame.sequence - self._last_sequence - 1, frame.sequence))
            self._last_sequence = frame.sequence
            n += 1
            yield frame.data
        if n == encoder.max_frames and mode != "frames":
            g.log("recorder: clip reached the largest object the encoder writes (%d frames); "
                  "the next clip goes on" % n)


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


def _policy(cfg):
    mode = cfg["clip.mode"]
    if mode == "frames":
        return "%d frames" % cfg["clip.frames"]
    if mode == "seconds":
        return "%s s" % cfg["clip.seconds"]
    return "start/stop on command"


def _expected_frames(cfg, acq):
    mode = cfg["clip.mode"]
    if mode == "frames":
        return cfg["clip.frames"]
    if mode == "seconds":
        return int(cfg["clip.seconds"] * acq.rate[0] / acq.rate[1]) + 1
    return 1  # open-ended: checked frame by frame


def _abandon(recording):
    try:
        recording.abandon()
    except OSError:
        pass  # the file stays in tmp/ and goes at the next start
