"""The console's view of the running system: what the serial console can
see and do on the gateway (the `system` of firmware/console/shell.py). It
reads and drives the gateway and its parts through their public methods and
attributes only."""

from firmware.alarms import hint_for
from firmware.compat import all_digits
from firmware.services import worklist
from firmware.config import ConfigError
from firmware.gateway import check_applicable
from firmware.procedure import DEFAULT_REASON, DISCONTINUATION_REASONS
from firmware.spool import QUARANTINE, QUEUE, STORED, check_root


class ConsoleSystem:
    """nic: the board's NIC, for the link in status; load_board: name ->
    Board, to check a saved change of board against the board it names."""

    def __init__(self, gateway, nic=None, load_board=None):
        self.gateway = gateway
        self.nic = nic
        self._load_board = load_board

    # -- the Modality Worklist (firmware/schedule.py) ---------------------------
    def worklist_refresh(self):
        schedule = self.gateway.schedule
        problem = schedule.refresh()
        if problem is not None:
            return ["error: %s%s" % (problem, "; the last list is kept" if schedule.fetched else "")]
        return schedule.lines()

    def worklist_lines(self):
        return self.gateway.schedule.lines()

    def worklist_item(self, number):
        """Item number of the list, or an error line."""
        schedule = self.gateway.schedule
        if schedule.fetched is None:
            return "error: no worklist yet: worklist refresh"
        item = schedule.item(int(number)) if all_digits(number) else None
        if item is None:
            return "error: no item %s: the list has %d (worklist)" % (number, len(schedule.items))
        return item

    # -- the procedure (firmware/procedure.py) --------------------------------------
    def procedure_begin(self, number, saved):
        """The configuration values that make worklist item number (None:
        a manual procedure from the saved keys) the procedure, or an error
        line."""
        procedure = self.gateway.procedure
        if number is None:
            if not (saved["patient.name"] or saved["patient.id"]):
                return "error: no patient: set patient.name and patient.id, save, then procedure new"
            item, values = procedure.manual_item(saved), {}
            values["study.instance_uid"] = item["StudyInstanceUID"]
            source = "manual"
        else:
            item = self.worklist_item(number)
            if isinstance(item, str):
                return item
            values = worklist.selected_values(item)
            source = "worklist item %s" % number
        try:
            values.update(procedure.begin(item, source))
        except (ValueError, OSError) as err:
            return "error: %s" % err
        return values

    def procedure_abandon(self):
        """The keys of a procedure just begun could not be saved."""
        self.gateway.procedure.abandon()

    def procedure_lines(self):
        return self.gateway.procedure.lines()

    def procedure_end(self, status, reason, quiet=False):
        """End the procedure under way with status: a line, an error line,
        or with quiet None when there is none."""
        if reason is not None and reason not in DISCONTINUATION_REASONS:
            return "error: %s is not a code of CID 9300: procedure discontinue ? lists them" % reason
        if status == "DISCONTINUED" and reason is None:
            reason = DEFAULT_REASON
        try:
            return self.gateway.procedure.end(status, reason)
        except ValueError as err:
            return None if quiet else "error: %s" % err
        except OSError as err:
            return "error: the MPPS message cannot be kept in the spool: %s" % err

    def procedure_retry(self):
        """The MPPS messages set aside back in the queue: a line."""
        try:
            return self.gateway.procedure.retry()
        except OSError as err:
            return "error: the MPPS messages cannot be put back: %s" % err

    def discontinuation_reasons(self):
        return ["%s  %s%s" % (code, meaning, " (default)" if code == DEFAULT_REASON else "")
                for code, meaning in sorted(DISCONTINUATION_REASONS.items())]

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
        elif g.recorder.done:
            state = "done (clip.count reached)"
        elif g.recording:
            state = "on"
        else:
            state = "idle"
        cfg = g.cfg
        lines.append("recording  %s, %d clips this run, %d frames dropped" % (state, len(g.clips), g.dropped_frames))
        study = g.recorder.study_in_force(cfg)
        where = "the next clip starts a new study" if study is None else "study %s" % study.study_uid
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
            if cfg["pacs.commit"] or spool.awaiting():
                committer = g.committer
                lines.append("commitment %d stored, awaiting the PACS's commitment (%d transactions under way); "
                             "%d committed, %d failed this run" % (len(spool.awaiting()), committer.outstanding(),
                                                                   committer.committed, committer.failed))
                if committer.last_report:
                    t, text = committer.last_report
                    lines.append("last report %04d-%02d-%02d %02d:%02d:%02dZ %s" % (t[:6] + (text,)))
        if g.sender.last_send:
            t, name, result = g.sender.last_send
            lines.append("last send  %04d-%02d-%02d %02d:%02d:%02dZ %s %s" % (t[:6] + (name, result)))
        else:
            lines.append("last send  none yet")
        live = g.live.stream
        if live is not None:
            st = live.streamer.stats()
            # stream stop takes effect at the recorder's next frame.
            lines.append("stream     %s, %d frames, %d late, %d skipped, %d slots missed" % (
                "on" if g.live.wanted else "stopping", st["frames"], st["late"], live.skipped, st["slots_missed"]))
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
        status, meaning = self.gateway.sender.echo()
        if status is None:
            hint = hint_for(meaning)
            return "error: C-ECHO %s@%s:%d: %s%s" % (cfg["pacs.ae_title"], cfg["pacs.host"], cfg["pacs.port"], meaning,
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
            if g.recorder.requested:
                return "already recording"
            g.start_recording()
            return "recording"
        if not g.recorder.requested:
            return "not recording: the recorder is idle"
        g.stop_recording()
        return "recording stopped; the clip goes to the spool"

    def stream(self, start):
        g = self.gateway
        cfg = g.cfg
        if not start:
            g.stop_streaming()
            return "streaming stopped" if g.live.stream is not None else "not streaming"
        if g.storage is None:
            return "error: no spool folder to write the SDP files into: %s" % (g.alarms.text("spool") or "see status")
        if g.recorder.done:
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
            for folder, names in (("waiting", spool.pending()), ("awaiting commitment", spool.awaiting()),
                                  ("quarantined", spool.quarantined())):
                for name in names:
                    lines.append("%s: %s" % (folder, _describe(spool, name, folder)))
            for path in spool.unknown():
                lines.append("not the spool's (left alone): %s" % path)
            return lines or ["the spool is empty"]
        if len(args) == 2 and args[0] == "retry":
            answer = spool.retry(args[1])
            if not spool.quarantined():
                g.alarms.clear("quarantine")
            g.sender.notify()
            return [answer]
        if args == ["purge-quarantine"]:
            answer = "purged %d quarantined objects" % spool.purge_quarantine()
            g.alarms.clear("quarantine")
            return [answer]
        return ["error: usage: queue [list|retry ID|purge-quarantine]"]

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
        self.gateway.apply(values)

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


def _describe(spool, name, folder):
    """One line for a queued or quarantined object (spool.describe)."""
    d = spool.describe(name, {"waiting": QUEUE, "awaiting commitment": STORED}.get(folder, QUARANTINE))
    if not d:
        return name
    parts = [name, "patient %s" % (d.get("patient_name") or "(none)")]
    for key, label in (("patient_id", "ID"), ("recorded", "recorded"),
                       ("size", "bytes"), ("tries", "tries"), ("last_error", "last error")):
        value = d.get(key)
        if value not in (None, ""):
            parts.append("%s %s" % (label, value))
    return ", ".join(parts)
