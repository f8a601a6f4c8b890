"""The serial console's command shell, sans-I/O: feed() it the bytes a
technician types (and the time), write back what it returns.

Nothing about the configuration is shown or changed before a password is
given. With no password set yet, the first session chooses one. Five wrong
passwords lock the console for LOCKOUT_MS; a session with no input for
console.idle_logout seconds is logged out. Passwords are stored as PBKDF2
records (firmware/compat/crypto.py) and never echoed, shown or logged.

The shell acts on the box through `system`, an object with:
    status() -> [lines]            echo() -> str
    record(start: bool) -> str     stream(start: bool) -> str
    queue(args: [str]) -> [lines]  log(n) -> [lines]
    apply(values)                  reboot()
and on the configuration through `settings` (Settings below). Each command
answers with lines; an answer that is a refusal starts with "error: ".
"""

from firmware import config
from firmware.compat.crypto import check_password, make_password_record
from firmware.console.editor import LineEditor

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
    "passwd": ("passwd", "change the console password"),
    "logout": ("logout", "end the session"),
    "reboot": ("reboot", "restart the gateway"),
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
        self.passwords = passwords  # .get() -> record or None, .set(record)
        self.banner = banner
        self.editor = LineEditor(self._complete)
        self.state = "asleep"
        self.failures = 0
        self.locked_until = 0
        self.last_input = 0
        self._new_password = None
        self.closed = False  # set by reboot

    # -- I/O side -----------------------------------------------------------
    def feed(self, data, now_ms):
        out = []
        if self.state == "locked":
            if now_ms < self.locked_until:
                return b""
            self.state = "asleep"
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
            elif event[0] == "interrupt":
                out.append(self._interrupt())
            elif event[0] == "choices":
                out.append(b"\r\n" + "  ".join(event[1]).encode() + b"\r\n" + PROMPT + self.editor.line.encode())
            if self.state in ("locked", "asleep"):
                break
        return b"".join(out)

    def tick(self, now_ms, idle_logout_ms):
        """Time passing: an idle session is logged out."""
        if self.state == "command" and now_ms - self.last_input >= idle_logout_ms:
            self.state = "asleep"
            self.editor.line = ""
            return b"\r\nidle for too long: logged out\r\n"
        return b""

    # -- states ---------------------------------------------------------------
    def _wake(self):
        greeting = self.banner.encode() + b"\r\n"
        self.editor.line = ""
        if self.passwords.get() is None:
            self.state = "new"
            self.editor.echo = False
            return greeting + b"no password set yet: choose one\r\nnew password: "
        self.state = "password"
        self.editor.echo = False
        return greeting + b"password: "

    def _interrupt(self):
        if self.state == "command":
            return PROMPT
        return self._wake()

    def _line(self, text, now_ms):
        state = self.state
        if state == "password":
            if check_password(self.passwords.get(), text):
                self.failures = 0
                return self._enter_commands()
            self.failures += 1
            if self.failures >= MAX_FAILURES:
                self.failures = 0
                self.state = "locked"
                self.locked_until = now_ms + LOCKOUT_MS
                return ("error: wrong password\r\nerror: locked for %d s\r\n" % (LOCKOUT_MS // 1000)).encode()
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
            self.passwords.set(make_password_record(text))
            self._new_password = None
            reply = b"password set\r\n"
            return reply + self._enter_commands()
        if state == "old-passwd":
            if not check_password(self.passwords.get(), text):
                self.editor.echo = True
                self.state = "command"
                return b"error: wrong password\r\n" + PROMPT
            self.state = "new-passwd"
            return b"new password: "
        return self._command(text) + (PROMPT if self.state == "command" else b"")

    def _enter_commands(self):
        self.state = "command"
        self.editor.echo = True
        return b"type help for the commands\r\n" + PROMPT

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
        return b"".join(line.encode() + b"\r\n" for line in lines)

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
        return [self.system.stream(args[0] == "start")]

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
        return []

    def _cmd_logout(self, args, text):
        self.state = "asleep"
        return ["logged out"]

    def _cmd_reboot(self, args, text):
        self.system.reboot()
        self.closed = True
        self.state = "asleep"
        return ["rebooting"]

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
