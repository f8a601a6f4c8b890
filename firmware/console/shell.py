"""The serial console's command shell, sans-I/O: feed() it the bytes a
technician types (and the time), write back what it returns.

Nothing about the configuration is shown or changed before a password is
given. With no password set yet, the first session chooses one. Five wrong
passwords lock the console for LOCKOUT_MS; a session with no input for
console.idle_logout seconds is logged out, and so is one whose line hangs
up (hangup(), from the I/O side): the next person on the line logs in.
Passwords are stored as PBKDF2 records (firmware/compat/crypto.py) and
never echoed, shown or logged. An empty line at a password prompt is no
attempt (a prompt left on a terminal from before a restart is answered
with Enter): it asks again.

The failure count and the lock outlive a restart: `passwords` keeps them
beside the password record. The box may have no real-time clock, so what
is kept is the lock's length, not its end: a restart serves the lock again
in full, from the first moment the console runs; a restart never shortens
a lock.

The shell acts on the box through `system`, an object with:
    status() -> [lines]            echo() -> str
    record(start: bool) -> str     stream(start: bool) -> str
    queue(args: [str]) -> [lines]  log(n) -> [lines]
    apply(values)                  reboot()
    poweroff() -> str              new_study() -> str
on the configuration through `settings` (Settings below), and on the
password through `passwords`:
    get() -> record or None        set(record)
    lockout() -> (failures, ms)    set_lockout(failures, ms)
(the last two may be missing: the lockout then lives in memory only).
Each command answers with lines; an answer that is a refusal starts with
"error: ". Every line a command answers goes through log.printable: text
from the network (a PACS's name in a status or an error) cannot move the
cursor, clear the screen or forge a line.
"""

from firmware import config
from firmware.compat.crypto import check_password, make_password_record
from firmware.console.editor import LineEditor
from firmware.log import printable

PROMPT = b"modgate> "
LOCKOUT_MS = 30000
MAX_FAILURES = 5

HELP = {
    "help": ("help [COMMAND]", "list the commands, or explain one"),
    "show": ("show [SECTION]", "the configuration (of one section: pacs, clip, ...); * marks unsaved changes"),
    "get": ("get KEY", "one key's value and what it means"),
    "set": ("set KEY VALUE", "change a key (checked at once; kept only by save)"),
    "unset": ("unset KEY", "put a key back to its default"),
    "save": ("save", "check the whole configuration, write it atomically and apply it"),
    "revert": ("revert", "forget the changes made since the last save"),
    "status": ("status", "board, link, queue depth, last send, alarms"),
    "echo": ("echo", "C-ECHO the configured PACS"),
    "record": ("record start|stop", "start or stop recording (clip.mode command)"),
    "stream": ("stream start|stop", "start or stop PS3.22 real-time video"),
    "queue": ("queue [list|retry ID|purge-quarantine]", "the spool: what waits, what is quarantined"),
    "log": ("log [N]", "the last N log lines (default 20)"),
    "passwd": ("passwd", "change the console password (asks for the current one)"),
    "logout": ("logout", "end the session"),
    "reboot": ("reboot", "restart the gateway"),
    "poweroff": ("poweroff", "shut the box down cleanly (spool and configuration kept)"),
    "exam": ("exam end", "end the exam (as procedure end when one is under way): clear the patient and study "
                         "keys, saved too; the next clip starts a new study"),
    "worklist": ("worklist [refresh|select N]", "the Modality Worklist: list today's procedures for this station, "
                 "ask the SCP again, or make item N the procedure the next clips belong to"),
    "procedure": ("procedure [new|end|discontinue [CODE]|retry]", "the procedure the clips belong to: show it, "
                  "start one from the saved patient keys without a worklist, complete it, or end it as discontinued "
                  "(CODE from PS3.16 CID 9300, default 110513; procedure discontinue ? lists them); MPPS is sent "
                  "with mpps.host; retry: the MPPS messages set aside back in the queue"),
}


class Settings:
    """The configuration as the console edits it: the saved values and a
    working copy; persist(values) writes and applies a whole configuration
    or raises ConfigError."""

    def __init__(self, values, persist):
        self.saved = dict(values)
        self.working = dict(values)
        self._persist = persist

    def set(self, key, text):
        value = config.parse_value(key, text)
        config.check(key, value)
        self.working[key] = value
        return value

    def unset(self, key):
        if key not in config.SCHEMA:
            raise config.ConfigError(key, "unknown key")
        self.working[key] = config.SCHEMA[key][0]

    def dirty(self):
        return sorted(k for k in self.working if self.working[k] != self.saved.get(k))

    def save(self):
        config.validate(self.working)
        self._persist(dict(self.working))
        self.saved = dict(self.working)

    def revert(self):
        self.working = dict(self.saved)

    def reset(self, keys):
        """Puts keys back to their defaults in the saved configuration
        (persisted and applied) and in the working copy; other unsaved
        edits stay unsaved. Returns the keys that had another value in
        either. On an error (ConfigError, OSError) nothing changes."""
        return self.put(dict((key, config.SCHEMA[key][0]) for key in keys))

    def put(self, values):
        """Sets keys to values in the saved configuration (persisted and
        applied) and in the working copy, like reset; each value is checked
        first (ConfigError names the key). The keys whose value changed."""
        for key, value in values.items():
            config.check(key, value)
        saved = dict(self.saved)
        saved.update(values)
        changed = sorted(k for k in values if self.saved.get(k) != saved[k] or self.working.get(k) != saved[k])
        if saved != self.saved:
            # No config.validate here: the rest was valid when saved, and
            # an exam must start or end even if, say, a CA file has gone
            # since (persist still says so if it cannot apply).
            self._persist(dict(saved))
            self.saved = saved
        for key in values:
            self.working[key] = saved[key]
        return changed


def _show_value(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


class Console:
    def __init__(self, settings, system, passwords, banner="modgate console"):
        self.settings = settings
        self.system = system
        self.passwords = passwords  # see the module's docstring
        self.banner = banner
        self.editor = LineEditor(self._complete)
        self.state = "asleep"
        self.failures = 0
        self.locked_until = 0  # None: locked, from the next feed() or tick() on
        self._locked_ms = 0  # the lock's length when it began
        self.last_input = 0
        self._new_password = None
        self.closed = False  # set by reboot and poweroff
        self._restore_lockout()

    # -- I/O side -----------------------------------------------------------
    def feed(self, data, now_ms):
        out = []
        if self.state == "locked":
            if not self._lock_over(now_ms):
                return b""
        if self.state == "asleep":
            self.last_input = now_ms
            out.append(self._wake())
            return b"".join(out)
        self.last_input = now_ms
        echo, events = self.editor.feed(data)
        out.append(echo)
        for event in events:
            if event[0] == "line":
                out.append(self._line(event[1], now_ms))
            elif event[0] == "garbled":
                out.append(self._garbled())
            elif event[0] == "interrupt":
                out.append(self._interrupt())
            elif event[0] == "choices":
                out.append(b"\r\n" + "  ".join(event[1]).encode() + b"\r\n" + PROMPT + self.editor.line.encode())
            if self.state in ("locked", "asleep"):
                break
        return b"".join(out)

    def tick(self, now_ms, idle_logout_ms):
        """Time passing: an idle session is logged out, a lock runs out."""
        if self.state == "locked":
            self._lock_over(now_ms)
        if self.state == "command" and now_ms - self.last_input >= idle_logout_ms:
            self._sleep()
            return b"\r\nidle for too long: logged out\r\n"
        return b""

    def hangup(self):
        """The line hung up, or a new connection came on it: whoever is
        there next logs in again. Nothing is written (nobody is there to
        read it). A lock stays."""
        if self.state != "locked":
            self._sleep()

    # -- states ---------------------------------------------------------------
    def _sleep(self):
        self.state = "asleep"
        self.editor.clear()
        self.editor.echo = True
        self._new_password = None

    def _wake(self):
        greeting = printable(self.banner).encode() + b"\r\n"
        self.editor.clear()
        self.editor.echo = False
        try:
            record = self.passwords.get()
        except Exception as err:  # unreadable storage: nobody gets in
            self.state = "asleep"
            self.editor.echo = True
            return greeting + ("error: the password record cannot be read: %s\r\n" % printable(str(err))).encode()
        if record is None:
            self.state = "new"
            return greeting + b"no password set yet: choose one\r\nnew password: "
        self.state = "password"
        return greeting + b"password: "

    def _interrupt(self):
        if self.state in ("command", "old-passwd", "new-passwd", "repeat-passwd"):
            return self._back_to_commands()  # Ctrl-C cancels passwd
        return self._wake()

    def _garbled(self):
        reply = b"error: the line had bytes that are not UTF-8 (is the terminal set to UTF-8?); nothing done\r\n"
        if self.state == "command":
            return reply + PROMPT
        return reply + _PROMPTS[self.state]

    def _line(self, text, now_ms):
        state = self.state
        if state != "command" and not text:
            # No attempt: Enter on a prompt left from before (a restart, a
            # reconnection) must not count as a wrong password.
            return _PROMPTS[state]
        if state == "password":
            if self._check(text):
                if self.failures:
                    self._store_lockout(0, 0)
                self.failures = 0
                return self._enter_commands()
            self.failures += 1
            if self.failures >= MAX_FAILURES:
                self._lock(now_ms, LOCKOUT_MS)
                return ("error: wrong password\r\nerror: locked for %d s\r\n" % (LOCKOUT_MS // 1000)).encode()
            self._store_lockout(self.failures, 0)
            return b"error: wrong password\r\npassword: "
        if state in ("new", "new-passwd"):
            if len(text) < 6:
                return b"error: a password has at least 6 characters\r\nnew password: "
            self._new_password = text
            self.state = "repeat" if state == "new" else "repeat-passwd"
            return b"repeat password: "
        if state in ("repeat", "repeat-passwd"):
            if text != self._new_password:
                self._new_password = None
                self.state = "new" if state == "repeat" else "new-passwd"
                return b"error: the passwords differ\r\nnew password: "
            self._new_password = None
            try:
                self.passwords.set(make_password_record(text))
            except Exception as err:  # read-only or full storage: the old record stays
                reply = ("error: the password could not be stored: %s\r\n" % printable(str(err))).encode()
                if state == "repeat":
                    self._sleep()  # no password, no session
                    return reply + b"error: no password set; press Enter to try again\r\n"
                return reply + b"the password is unchanged\r\n" + self._back_to_commands()
            reply = b"password set\r\n" if state == "repeat" else b"password changed\r\n"
            return reply + self._enter_commands()
        if state == "old-passwd":
            if not self._check(text):
                return b"error: wrong password\r\n" + self._back_to_commands()
            self.state = "new-passwd"
            return b"new password: "
        return self._command(text) + _PROMPTS.get(self.state, PROMPT if self.state == "command" else b"")

    def _check(self, text):
        try:
            record = self.passwords.get()
        except Exception:  # unreadable storage: no password matches
            return False
        return record is not None and check_password(record, text)

    def _enter_commands(self):
        self.state = "command"
        self.editor.echo = True
        return b"type help for the commands\r\n" + PROMPT

    def _back_to_commands(self):
        self.state = "command"
        self.editor.echo = True
        self._new_password = None
        return PROMPT

    # -- the lockout, kept beside the password -------------------------------
    def _lock(self, now_ms, length_ms):
        self.failures = 0
        self.state = "locked"
        self._locked_ms = length_ms
        self.locked_until = None if now_ms is None else now_ms + length_ms
        self._store_lockout(0, length_ms)

    def _lock_over(self, now_ms):
        if self.locked_until is None:  # restored at start: the lock begins now
            self.locked_until = now_ms + self._locked_ms
        if now_ms < self.locked_until:
            return False
        self._store_lockout(0, 0)
        self._sleep()
        return True

    def _restore_lockout(self):
        read = getattr(self.passwords, "lockout", None)
        if read is None:
            return
        try:
            failures, locked_ms = read()
        except Exception:  # unreadable or damaged: fail closed, for one lock
            failures, locked_ms = MAX_FAILURES, LOCKOUT_MS
        self.failures = max(0, min(failures, MAX_FAILURES))
        if locked_ms > 0:
            self.failures = 0
            self.state = "locked"
            self._locked_ms = min(locked_ms, LOCKOUT_MS)
            self.locked_until = None

    def _store_lockout(self, failures, locked_ms):
        write = getattr(self.passwords, "set_lockout", None)
        if write is None:
            return
        try:
            write(failures, locked_ms)
        except Exception:
            pass  # storage refuses: the lock still holds in memory until a restart

    # -- commands -------------------------------------------------------------
    def _command(self, text):
        words = text.split()
        if not words:
            return b""
        name, args = words[0], words[1:]
        handler = getattr(self, "_cmd_" + name.replace("-", "_"), None)
        if name not in HELP or handler is None:
            return ("error: unknown command %s (type help)\r\n" % name).encode()
        try:
            lines = handler(args, text)
        except config.ConfigError as err:
            lines = ["error: %s" % err]
        except Exception as err:  # a command must never take the console down
            lines = ["error: %s failed: %s" % (name, err)]
        # Escaped whatever the line's source: the system's lines carry text
        # from the network and from files.
        return b"".join(printable(line).encode() + b"\r\n" for line in lines)

    def _cmd_help(self, args, text):
        if args:
            if args[0] not in HELP:
                return ["error: no command %s" % args[0]]
            usage, meaning = HELP[args[0]]
            return [usage, "  " + meaning]
        return ["%-40s %s" % HELP[name] for name in sorted(HELP)]

    def _cmd_show(self, args, text):
        section = args[0] if args else None
        keys = [k for k in sorted(config.SCHEMA) if section is None or k.split(".")[0] == section]
        if not keys:
            return ["error: no section %s; sections: %s" % (section, ", ".join(_sections()))]
        dirty = self.settings.dirty()
        return ["%s%-28s %s" % ("*" if k in dirty else " ", k, _show_value(self.settings.working[k])) for k in keys]

    def _cmd_get(self, args, text):
        if len(args) != 1:
            return ["error: usage: get KEY"]
        key = args[0]
        if key not in config.SCHEMA:
            return ["error: unknown key %s" % key]
        default, _, meaning = config.SCHEMA[key]
        return ["%s = %s" % (key, _show_value(self.settings.working[key])),
                "  %s (default %s)" % (meaning, _show_value(default))]

    def _cmd_set(self, args, text):
        if len(args) < 2:
            return ["error: usage: set KEY VALUE"]
        key = args[0]
        value = text.split(None, 2)[2]
        value = self.settings.set(key, value)
        return ["%s = %s (unsaved: save to keep it)" % (key, _show_value(value))]

    def _cmd_unset(self, args, text):
        if len(args) != 1:
            return ["error: usage: unset KEY"]
        self.settings.unset(args[0])
        return ["%s = %s (the default; unsaved)" % (args[0], _show_value(self.settings.working[args[0]]))]

    def _cmd_save(self, args, text):
        changed = self.settings.dirty()
        self.settings.save()
        return ["saved and applied: %s" % (", ".join(changed) or "no changes")]

    def _cmd_revert(self, args, text):
        changed = self.settings.dirty()
        self.settings.revert()
        return ["reverted: %s" % (", ".join(changed) or "no changes")]

    def _cmd_status(self, args, text):
        return self.system.status()

    def _cmd_echo(self, args, text):
        return [self.system.echo()]

    def _cmd_record(self, args, text):
        if args not in (["start"], ["stop"]):
            return ["error: usage: record start|stop"]
        return [self.system.record(args[0] == "start")]

    def _cmd_stream(self, args, text):
        if args not in (["start"], ["stop"]):
            return ["error: usage: stream start|stop"]
        lines = [self.system.stream(args[0] == "start")]
        # The stream runs on the saved configuration (save applies it): an
        # rtv.* edit not saved yet is not in it, and the technician is told.
        pending = [k for k in self.settings.dirty() if k.startswith(("rtv.", "acquisition."))]
        if args[0] == "start" and pending and not lines[0].startswith("error"):
            lines.append("note: %s not saved: the stream uses the saved value%s (save, then stream stop and "
                         "start)" % (", ".join(pending), "s" if len(pending) > 1 else ""))
        return lines

    def _cmd_queue(self, args, text):
        return self.system.queue(args or ["list"])

    def _cmd_log(self, args, text):
        n = 20
        if args:
            if not args[0].isdigit() or not 1 <= int(args[0]) <= 1000:
                return ["error: usage: log [N], N from 1 to 1000"]
            n = int(args[0])
        return self.system.log(n)

    def _cmd_passwd(self, args, text):
        self.state = "old-passwd"
        self.editor.echo = False
        return []  # _line adds the prompt for the state: "current password: "

    def _cmd_logout(self, args, text):
        self._sleep()
        return ["logged out"]

    def _cmd_reboot(self, args, text):
        self.system.reboot()
        self.closed = True
        self._sleep()
        return ["rebooting"]

    def _cmd_poweroff(self, args, text):
        line = self.system.poweroff()
        if not line.startswith("error: "):
            self.closed = True
            self._sleep()
        return [line]

    def _cmd_exam(self, args, text):
        if args != ["end"]:
            return ["error: usage: exam end"]
        return self._end_exam(self.system.procedure_end("COMPLETED", None, quiet=True))

    def _end_exam(self, ended_procedure):
        # The study ends first, whatever happens to the keys: the clip under
        # way closes and no later clip joins this patient's study.
        ended = self.system.new_study()
        lines = [ended_procedure] if ended_procedure else []
        try:
            cleared = self.settings.reset(config.EXAM_KEYS)
        except (config.ConfigError, OSError) as err:
            return lines + ["error: the patient and study keys could not be cleared: %s; %s" % (err, ended)]
        return lines + ["exam ended; cleared (saved): %s" % (", ".join(cleared) or
                                                             "nothing, no patient or study was set"), ended]

    def _cmd_procedure(self, args, text):
        if not args:
            return self.system.procedure_lines()
        if args == ["end"] or args[0] == "discontinue":
            if args == ["discontinue", "?"]:
                return self.system.discontinuation_reasons()
            if len(args) > 2:
                return ["error: usage: procedure discontinue [CODE]"]
            status, reason = ("COMPLETED", None) if args == ["end"] else ("DISCONTINUED", (args + [None])[1])
            line = self.system.procedure_end(status, reason)
            if line.startswith("error: "):
                return [line]
            return self._end_exam(line)
        if args == ["new"]:
            return self._begin(None)
        if args == ["retry"]:
            return [self.system.procedure_retry()]
        return ["error: usage: procedure [new|end|discontinue [CODE]|retry]"]

    def _begin(self, number):
        """worklist select NUMBER, or procedure new (number None): the
        procedure's keys saved, checked by the same rules as typed ones (a
        value the objects could not carry is refused, naming its key)."""
        values = self.system.procedure_begin(number, self.settings.saved)
        if isinstance(values, str):
            return [values]
        try:
            self.settings.put(values)
        except (config.ConfigError, OSError) as err:
            self.system.procedure_abandon()
            return ["error: %s not made the procedure: %s" % ("item %s" % number if number else "it", err)]
        return ["procedure: %s, ID %s, accession %s, study %s" % (
            values.get("patient.name") or self.settings.saved["patient.name"] or "(no name)",
            values.get("patient.id") or self.settings.saved["patient.id"] or "(none)",
            values.get("study.accession_number") or self.settings.saved["study.accession_number"] or "(none)",
            values["study.instance_uid"] or "(new)"),
            "the next clip starts this procedure's study; procedure end completes it"]

    def _cmd_worklist(self, args, text):
        if not args:
            return self.system.worklist_lines()
        if args == ["refresh"]:
            return self.system.worklist_refresh()
        if len(args) != 2 or args[0] != "select":
            return ["error: usage: worklist [refresh|select N]"]
        return self._begin(args[1])

    # -- completion ---------------------------------------------------------
    def _complete(self, line):
        words = line.split(" ")
        if len(words) == 1:
            choices = sorted(n for n in HELP if n.startswith(words[0]))
        elif len(words) == 2 and words[0] in ("get", "set", "unset"):
            choices = sorted(k for k in config.SCHEMA if k.startswith(words[1]))
        elif len(words) == 2 and words[0] in ("show", "help"):
            pool = _sections() if words[0] == "show" else list(HELP)
            choices = sorted(k for k in pool if k.startswith(words[1]))
        else:
            return line, []
        if len(choices) == 1:
            words[-1] = choices[0]
            return " ".join(words) + " ", choices
        prefix = _common_prefix(choices)
        if prefix and len(prefix) > len(words[-1]):
            words[-1] = prefix
            return " ".join(words), choices
        return line, choices


# What each login state asks, again after an empty or garbled line.
_PROMPTS = {
    "password": b"password: ",
    "new": b"new password: ",
    "new-passwd": b"new password: ",
    "repeat": b"repeat password: ",
    "repeat-passwd": b"repeat password: ",
    "old-passwd": b"current password: ",
}


def _sections():
    seen = []
    for key in sorted(config.SCHEMA):
        section = key.split(".")[0]
        if section not in seen and "." in key:
            seen.append(section)
    return seen


def _common_prefix(words):
    if not words:
        return ""
    first, last = min(words), max(words)
    n = 0
    while n < len(first) and n < len(last) and first[n] == last[n]:
        n += 1
    return first[:n]
