"""The procedure on the box (IHE Scheduled Workflow, and its endoscopy
profile EWF): the worklist item the technician selected, or a manual one
typed on the console, and its Modality Performed Procedure Step (PS3.4
Annex F).

    worklist select N / procedure new      begin(): the procedure's keys are
                                           saved (config.EXAM_KEYS), its
                                           MPPS SOP Instance UID made
    the first clip starts                  clip_starting(): N-CREATE IN
                                           PROGRESS queued
    each clip is in the spool              clip_stored(): its instance noted
    procedure end / discontinue            end(): N-SET COMPLETED or
                                           DISCONTINUED queued, with the
                                           Performed Series Sequence of
                                           every instance recorded

MPPS messages are spooled like objects (the spool's mpps/ folder, one file
a message, written atomically before the console answers) and sent oldest
first by run(), the MPPS thread, to mpps.host: a power cut or an SCP outage
delays them, never loses them (the `mpps` alarm while they wait), and an
N-SET never goes before its N-CREATE. An N-CREATE the SCP answers Duplicate
SOP Instance was done before (the box went down before it could note the
answer): it counts as done. A failure status is retried; after
spool.max_failures the message and the later ones of the same step, those
queued afterwards too, are set aside (NAME.failed), with the `mpps set
aside` alarm until `procedure retry` puts them back in the queue: a fault of
one procedure's MPPS never holds the objects nor the next procedure.

The procedure itself (its item, MPPS UID, series and instances) is kept in
the spool folder too (PROCEDURE, written atomically), so that a reboot in
the middle of a procedure ends it right and its next clip joins its series.
Without mpps.host the procedure works the same and sends nothing.
"""

import json

from firmware.alarms import hint_for
from firmware.association import AssociationError
from firmware.compat.threads import Lock
from firmware.config import write_atomic
from firmware.dicom.iod import IODS
from firmware.dicom.uid import generate_uid
from firmware.net import dimse
from firmware.services import mpps
from firmware.services.storage import associate
from firmware.spool import MPPS, PROCEDURE, SET_ASIDE, message_name, parse_message_name

# PS3.16 CID 9300 Procedure Discontinuation Reasons (DCM), the Baseline CID
# of the MPPS's Discontinuation Reason Code Sequence (PS3.3 C.4.14): its
# codes for a modality's step, those of CID 9301 Modality PPS
# Discontinuation Reasons that it includes (its others are for UPS
# workitems and media import). What `procedure discontinue CODE` takes.
DISCONTINUATION_REASONS = {
    "110500": "Doctor canceled procedure",
    "110501": "Equipment failure",
    "110502": "Incorrect procedure ordered",
    "110503": "Patient allergic to media/drug",
    "110504": "Patient died",
    "110505": "Patient refused to continue procedure",
    "110506": "Patient taken for treatment or surgery",
    "110507": "Patient did not arrive",
    "110508": "Patient pregnant",
    "110509": "Change of procedure for correct charging",
    "110510": "Duplicate order",
    "110511": "Nursing unit cancel",
    "110512": "Incorrect side ordered",
    "110513": "Discontinued for unspecified reason",
    "110514": "Incorrect worklist entry selected",
    "110515": "Patient condition prevented continuing",
    "110516": "Equipment change",
}
DEFAULT_REASON = "110513"
# The alarm of MPPS messages set aside (firmware/alarms.py).
SET_ASIDE_ALARM = "mpps set aside"
# The worklist keywords a manual procedure takes from the typed keys.
MANUAL_KEYS = (
    ("PatientName", "patient.name"),
    ("PatientID", "patient.id"),
    ("PatientBirthDate", "patient.birth_date"),
    ("PatientSex", "patient.sex"),
    ("AccessionNumber", "study.accession_number"),
    ("RequestedProcedureDescription", "study.description"),
)


def reason_code(code):
    return {"CodeValue": code, "CodingSchemeDesignator": "DCM", "CodeMeaning": DISCONTINUATION_REASONS[code]}


class Procedure:
    """gateway: cfg, board, clock, alarms, log, storage, stopping(),
    pause(). state: None, or the procedure under way as a dict (item,
    source, mpps_uid, pps_id, started, instances, series: the last clip's
    [series key, Series Instance UID, Series Number, Instance Number])."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.state = None
        self.sent = 0
        self.last_mpps = None  # (wall time, text)
        self._loaded = None
        self._lock = Lock()
        self._failures = {}  # message name -> failure statuses this run

    # -- kept in the spool folder ------------------------------------------------
    def load(self):
        """The procedure kept from before this start (once per spool)."""
        g = self.gateway
        if g.storage is self._loaded:
            return
        self._loaded = g.storage
        self.state = None
        if g.storage is None or not g.storage.exists(PROCEDURE):
            return
        try:
            with g.storage.open_read(PROCEDURE) as f:
                self.state = json.loads(f.read().decode("utf-8"))["procedure"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            g.log("procedure: the kept procedure in %s cannot be read (%s)" % (PROCEDURE, err))

    def _save(self):
        """Raises OSError."""
        write_atomic(self.gateway.storage, PROCEDURE, json.dumps({"procedure": self.state}).encode("utf-8"))

    # -- what the console does -------------------------------------------------
    def begin(self, item, source):
        """Make item (worklist keywords) the procedure. Returns the values of
        the configuration keys it sets (the caller saves them), or raises
        ValueError when a procedure with clips is under way (never a clip
        of the next patient in this one's step)."""
        with self._lock:
            self.load()
            if self.gateway.storage is None:
                raise ValueError("no spool to keep the procedure in: %s" % (
                    self.gateway.alarms.text("spool") or "see status"))
            if self.state is not None and self.state["instances"]:
                raise ValueError("procedure of %s under way with %d clips: procedure end or procedure discontinue "
                                 "first" % (self.state["item"].get("PatientName") or "(no name)",
                                            len(self.state["instances"])))
            cfg = self.gateway.cfg
            uid = generate_uid(cfg["station.uid_root"]) if cfg["mpps.host"] else ""
            self.state = {"item": item, "source": source, "mpps_uid": uid, "pps_id": uid[-16:],
                          "started": None, "instances": [], "series": None}
            self._save()
        return {"study.performed_step_uid": uid}

    def abandon(self):
        """Forget a procedure just begun (its keys could not be saved)."""
        with self._lock:
            if self.state is not None and not self.state["instances"]:
                self.state = None
                try:
                    self.gateway.storage.remove(PROCEDURE)
                except OSError:
                    pass

    def manual_item(self, cfg):
        """A procedure without a worklist from the typed patient keys: the
        box makes its Study Instance UID (IHE SWF's unscheduled case)."""
        item = dict((keyword, cfg[key] or "") for keyword, key in MANUAL_KEYS)
        item["StudyInstanceUID"] = cfg["study.instance_uid"] or generate_uid(cfg["station.uid_root"])
        return item

    def end(self, status, reason=None):
        """End the procedure: the final N-SET queued (if its N-CREATE was).
        Returns a line saying what happened; ValueError if there is none."""
        with self._lock:
            self.load()
            state = self.state
            if state is None:
                raise ValueError("no procedure under way")
            g = self.gateway
            queued = ""
            said = status.lower()
            if state["mpps_uid"] and not state["started"] and state["instances"]:
                # Clips were recorded but their N-CREATE could not be
                # queued then (clip_starting): it goes first, now.
                self._queue(self._create_message(g.cfg, state, g.clock.wall_utc()))
                state["started"] = list(g.clock.wall_utc())
                self._save_quietly()
            if state["mpps_uid"] and state["started"]:
                if status == mpps.COMPLETED and not state["instances"]:
                    # PS3.4 Table F.7.2-1: a COMPLETED step has at least one
                    # Performed Series Sequence item; nothing was kept.
                    status, reason, said = mpps.DISCONTINUED, DEFAULT_REASON, "discontinued"
                    queued = "; no clip was kept"
                series = {}
                for series_uid, sop_class, instance in state["instances"]:
                    series.setdefault(series_uid, []).append((sop_class, instance))
                protocol = _protocol_name(state)
                self._queue({"kind": "set", "uid": state["mpps_uid"], "now": list(g.clock.wall_utc()),
                             "status": status, "reason": reason,
                             "series": [[uid, "", protocol, refs] for uid, refs in sorted(series.items())]})
                queued += "; MPPS %s queued" % status
            self.state = None
            try:
                g.storage.remove(PROCEDURE)
            except OSError:
                pass
            return "procedure %s: %d clips%s" % (said, len(state["instances"]), queued)

    def lines(self):
        """What `procedure` shows."""
        self.load()
        state = self.state
        out = []
        if state is None:
            out.append("no procedure under way: worklist select N, or procedure new")
        else:
            item = state["item"]
            out.append("procedure  %s, ID %s, accession %s (%s)" % (
                item.get("PatientName") or "(no name)", item.get("PatientID") or "(none)",
                item.get("AccessionNumber") or "(none)", state["source"]))
            out.append("study      %s; step %s %s" % (item.get("StudyInstanceUID") or "(new)",
                                                     item.get("ScheduledProcedureStepID") or "-",
                                                     item.get("ScheduledProcedureStepDescription") or ""))
            if state["mpps_uid"]:
                out.append("MPPS       %s, %s" % (state["mpps_uid"], self._step_state(state)))
            else:
                out.append("MPPS       none (mpps.host is not set)")
            out.append("clips      %d" % len(state["instances"]))
        waiting, aside = self.queued()
        if waiting or aside:
            out.append("MPPS queue %d messages waiting, %d set aside%s" % (
                len(waiting), len(aside), " (procedure retry)" if aside else ""))
        if self.last_mpps:
            t, text = self.last_mpps
            out.append("last MPPS  %04d-%02d-%02d %02d:%02d:%02dZ %s" % (t[:6] + (text,)))
        return out

    def _step_state(self, state):
        """The MPPS of the procedure under way, as `procedure` shows it."""
        if not state["started"]:
            return "not created yet (at the first clip)"
        mine = [(aside, message) for _, aside, message in self._messages() if message.get("uid") == state["mpps_uid"]]
        if any(aside for aside, _ in mine):
            return "IN PROGRESS here; its N-CREATE was set aside (status, procedure retry)"
        if mine:
            return "IN PROGRESS; N-CREATE waiting in the spool to be sent"
        return "IN PROGRESS (N-CREATE sent)"

    def retry(self):
        """`procedure retry`: the MPPS messages set aside back in the queue
        (under their own numbers: they go before those queued since).
        Returns a line."""
        storage = self.gateway.storage
        aside = self.queued()[1]
        for name in aside:
            storage.rename(MPPS + "/" + name, MPPS + "/" + name[: -len(SET_ASIDE)])
        self.gateway.alarms.clear(SET_ASIDE_ALARM)
        return "%d MPPS messages back in the queue" % len(aside)

    # -- what the recorder calls ---------------------------------------------------
    def _ours(self, cfg):
        """The procedure under way, if a clip made with cfg belongs to it
        (it carries the procedure's MPPS UID, or neither has one and the
        study is the procedure's)."""
        state = self.state
        if state is None:
            return None
        if state["mpps_uid"]:
            return state if cfg["study.performed_step_uid"] == state["mpps_uid"] else None
        return state if cfg["study.instance_uid"] == state["item"].get("StudyInstanceUID") else None

    def clip_starting(self, cfg):
        """A clip starts with cfg: the procedure's first one creates its
        MPPS (N-CREATE IN PROGRESS, queued)."""
        g = self.gateway
        with self._lock:
            self.load()
            state = self._ours(cfg)
            if state is None or state["started"] or not state["mpps_uid"] or g.storage is None:
                return
            now = g.clock.wall_utc()
            try:
                self._queue(self._create_message(cfg, state, now))
            except OSError as err:
                # The clip goes on (nothing acquired is lost); the next
                # clip, or procedure end, queues the N-CREATE again.
                g.alarms.set("mpps", "the N-CREATE of %s cannot be kept in the spool: %s" % (state["mpps_uid"], err),
                             "check the spool's storage")
                return
            state["started"] = list(now)
            self._save_quietly()

    def _create_message(self, cfg, state, now):
        return {"kind": "create", "uid": state["mpps_uid"], "now": list(now), "item": state["item"],
                "station": cfg["station.ae_title"], "station_name": cfg["station.name"],
                "modality": IODS[cfg["clip.iod"]].modality, "pps_id": state["pps_id"]}

    def clip_stored(self, cfg, series, sop_class_uid, sop_instance_uid):
        """A clip made with cfg is in the spool: one more instance of the
        procedure's, for the Performed Series Sequence. series: (series
        key, Series Instance UID, Series Number, Instance Number)."""
        with self._lock:
            state = self._ours(cfg)
            if state is None:
                return
            state["instances"].append([series[1], sop_class_uid, sop_instance_uid])
            state["series"] = [list(series[0])] + list(series[1:])
            self._save_quietly()

    def series_of(self, cfg, series_key):
        """(Series Instance UID, Series Number, Instance Number) of the
        procedure's last clip, when the next clip, made with cfg and
        series_key, goes on with that series (the recorder's study began
        anew, after a reboot); else None."""
        with self._lock:
            self.load()
            state = self._ours(cfg)
            series = state and state.get("series")
            if not series or series[0] != list(series_key):
                return None
            return series[1], series[2], series[3]

    def _save_quietly(self):
        try:
            self._save()
        except OSError as err:
            self.gateway.log("procedure: cannot update %s: %s" % (PROCEDURE, err))

    # -- the MPPS queue ----------------------------------------------------------
    def _messages(self):
        """[(name, set aside, message)] of the queue, oldest first; a file
        that cannot be read as {} (its sending sets it aside)."""
        waiting, aside = self.queued()
        out = []
        for names, is_aside in ((waiting, False), (aside, True)):
            for name in names:
                try:
                    with self.gateway.storage.open_read(MPPS + "/" + name) as f:
                        message = json.loads(f.read().decode("utf-8"))
                except (OSError, ValueError):
                    message = {}
                out.append((name, is_aside, message if isinstance(message, dict) else {}))
        return out

    def queued(self):
        """(waiting, set aside) message names, oldest first."""
        storage = self.gateway.storage
        if storage is None or not storage.exists(MPPS):
            return [], []
        keyed = []
        for name in storage.files(MPPS):
            parsed = parse_message_name(name)
            if parsed is not None:
                keyed.append((parsed[0], parsed[1], name))
        keyed.sort()
        return [n for _, aside, n in keyed if not aside], [n for _, aside, n in keyed if aside]

    def _queue(self, message):
        """Durably into mpps/ before the caller answers. Raises OSError."""
        storage = self.gateway.storage
        storage.makedirs(MPPS)
        messages = self._messages()
        last = max([parse_message_name(name)[0] for name, _, _ in messages] or [0])
        name = message_name(last + 1)
        # A step whose earlier message was set aside cannot take this one
        # either (an N-SET of an instance the SCP does not have): aside too.
        if [1 for _, aside, earlier in messages if aside and earlier.get("uid") == message["uid"]]:
            name += SET_ASIDE
        write_atomic(storage, MPPS + "/" + name, json.dumps(message).encode("utf-8"))
        self.gateway.log("procedure: MPPS %s of %s queued%s" % (
            "N-CREATE" if message["kind"] == "create" else "N-SET " + message["status"], message["uid"],
            " and set aside: its step's earlier message was" if name.endswith(SET_ASIDE) else ""))

    def run(self):
        """The MPPS thread: the queue to mpps.host, oldest first, with
        backoff while the SCP cannot be reached."""
        from firmware.sender import _backoff  # the one backoff rule

        g = self.gateway
        attempt = 0
        while not g.stopping():
            cfg = g.cfg
            waiting, aside = self.queued()
            if aside and g.alarms.text(SET_ASIDE_ALARM) is None:
                # Set aside before this start: still to be seen.
                g.alarms.set(SET_ASIDE_ALARM, "%d MPPS messages set aside, the last %s" % (len(aside), aside[-1]),
                             "see log; procedure retry once the MPPS SCP is fixed")
            if not waiting or not cfg["mpps.host"]:
                g.pause(0.5)
                continue
            try:
                self._send_all(cfg, waiting)
                attempt = 0
                g.alarms.clear("mpps")
            except AssociationError as err:
                attempt += 1
                delay = _backoff(cfg, attempt)
                g.alarms.set("mpps", "MPPS cannot be sent: %s; %d messages wait" % (err, len(waiting)),
                             hint_for(str(err), "mpps", "the MPPS SCP"))
                g.log("procedure: MPPS: %s; retry %d in %.1f s" % (err, attempt, delay))
                g.pause(delay)

    def _send_all(self, cfg, waiting):
        g = self.gateway
        association = associate(cfg, g.board, "mpps", mpps.CONTEXTS, g.log)
        try:
            for name in waiting:
                if g.stopping():
                    break
                self._send_one(association, name)
        except AssociationError:
            association.abort()
            raise
        association.release()

    def _send_one(self, association, name):
        g = self.gateway
        storage = g.storage
        path = MPPS + "/" + name
        try:
            with storage.open_read(path) as f:
                message = json.loads(f.read().decode("utf-8"))
            now = tuple(message["now"])
            if message["kind"] == "create":
                elements = mpps.in_progress(message["item"], message["station"], message["station_name"],
                                            message["modality"], message["pps_id"], now)
                status, meaning = mpps.create(association, message["uid"], elements)
                done = dimse.n_status_class(status)[0] != dimse.FAILURE or status == 0x0111
            else:
                reason = reason_code(message["reason"]) if message.get("reason") else None
                series = [(s[0], s[1], s[2], [tuple(r) for r in s[3]]) for s in message["series"]]
                status, meaning = mpps.update(association, message["uid"],
                                              mpps.completed(now, series, message["status"], reason))
                done = dimse.n_status_class(status)[0] != dimse.FAILURE
        except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
            self._set_aside(name, "cannot be read: %s" % err)
            return
        what = "N-CREATE" if message["kind"] == "create" else "N-SET %s" % message["status"]
        text = "%s of %s: %04X %s" % (what, message["uid"], status, meaning)
        self.last_mpps = (g.clock.wall_utc(), text)
        g.log("procedure: MPPS " + text)
        if done:
            storage.remove(path)
            self._failures.pop(name, None)
            self.sent += 1
            return
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        if failures >= g.cfg["spool.max_failures"]:
            self._set_aside(name, text)
            # What follows for the same step cannot be done without it.
            for later, aside, queued in self._messages():
                if not aside and queued.get("uid") == message["uid"]:
                    self._set_aside(later, "its step's %s was set aside" % what)
        else:
            raise AssociationError("the MPPS SCP answered %s" % text)

    def _set_aside(self, name, why):
        g = self.gateway
        g.storage.rename(MPPS + "/" + name, MPPS + "/" + name + SET_ASIDE)
        self._failures.pop(name, None)
        g.log("procedure: MPPS message %s set aside: %s" % (name, why))
        g.alarms.set(SET_ASIDE_ALARM, "MPPS message %s set aside: %s" % (name, why),
                     "the step stays as the SCP has it; see log and the MPPS SCP's settings, then procedure retry")


def _protocol_name(state):
    """The Protocol Name of the procedure's series (PS3.4 Table F.7.2-1,
    Type 1 in each Performed Series Sequence item): the step's
    description, else the requested procedure's, else the IOD's name."""
    item = state["item"]
    name = item.get("ScheduledProcedureStepDescription") or item.get("RequestedProcedureDescription")
    if name:
        return name
    classes = [row[1] for row in state["instances"]]
    for iod in IODS.values():
        if iod.sop_class_uid in classes:
            return iod.name
    return "modgate"
