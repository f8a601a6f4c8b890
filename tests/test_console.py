"""The console, sans-I/O: the line editor and the shell fed bytes and time,
and the whole console through a real pty with pyserial on the host end."""

import errno
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time

import pytest

from firmware import config
from firmware.compat.crypto import make_password_record
from firmware.console import PasswordFile, serve
from firmware.console.editor import MAX_LINE, LineEditor
from firmware.console.shell import LOCKOUT_MS, PROMPT, Console, Settings
from hal.storage import PosixStorage
from hal.uart import PtyPair, TtyUART
from tests.conftest import ROOT, Storescp
from tests.console_vectors import System

PASSWORD = "s3cret-pw"


def test_editor_keys():
    ed = LineEditor()
    out, events = ed.feed(b"sx\x08how x\x7f\r\n")
    assert events == [("line", "show ")]
    assert out == b"sx\b \bhow x\b \b\r\n"
    out, events = ed.feed(b"abc\x15get\x03")
    assert events == [("interrupt",)] and ed.line == ""
    _, events = ed.feed(b"status\n")
    assert events == [("line", "status")]
    # history: up twice, down once
    out, _ = ed.feed(b"\x1b[A\x1b[A\x1b[B")
    assert ed.line == "status"
    ed.feed(b"\x15")
    # unknown escape sequences vanish
    _, events = ed.feed(b"\x1b[2J\x1b[1;5Cxy\r")
    assert events == [("line", "xy")]
    # bounded line
    out, _ = ed.feed(b"a" * (MAX_LINE + 10))
    assert len(ed.line) == MAX_LINE and out.endswith(b"\x07")


def test_editor_password_mode_echoes_nothing():
    ed = LineEditor()
    ed.echo = False
    out, events = ed.feed(b"hunter2\x08\r")
    assert out == b"\r\n" and events == [("line", "hunter")]
    assert ed.history == []


class Box:
    """A console with its settings persisted in a folder, as the device has."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.store = PosixStorage(self.folder)
        self.system = System()
        self.now = 1000
        values = config.load(os.path.join(self.folder, "modgate.json")) if os.path.exists(
            os.path.join(self.folder, "modgate.json")) else config.defaults()

        def persist(values):
            config.save(self.store, "modgate.json", values)
            self.system.apply(values)

        self.console = Console(Settings(values, persist), self.system, PasswordFile(self.store))

    def type(self, text, advance_ms=10):
        self.now += advance_ms
        return self.console.feed(text.encode(), self.now).decode()

    def command(self, line):
        out = self.type(line + "\r")
        assert out.endswith(PROMPT.decode()), out
        return out[len(line) + 2 : -len(PROMPT)]

    def login(self, password=PASSWORD):
        out = self.type("\r")
        if "new password" in out:
            assert "repeat password" in self.type(password + "\r")
            assert self.type(password + "\r").endswith(PROMPT.decode())
        else:
            assert out.endswith("password: ")
            assert self.type(password + "\r").endswith(PROMPT.decode())


def test_first_login_sets_a_password_and_it_is_stored_hashed(tmp_path):
    box = Box(tmp_path)
    out = box.type("\r")
    assert "no password set" in out and out.endswith("new password: ")
    assert "at least 6" in box.type("short\r")
    box.type(PASSWORD + "\r")
    assert "differ" in box.type("other-password\r")
    box.type(PASSWORD + "\r")
    assert box.type(PASSWORD + "\r").endswith("modgate> ")
    record = (tmp_path / "console.passwd").read_text()
    assert record.startswith("pbkdf2-sha256$") and PASSWORD not in record


def test_nothing_before_login_and_lockout(tmp_path):
    box = Box(tmp_path)
    box.login()
    assert "logged out" in box.type("logout\r")
    out = box.type("\r")
    assert out.endswith("password: ")
    out = box.type("show\r")
    assert "error: wrong password" in out and "pacs" not in out
    for _ in range(3):
        box.type("wrong-one\r")
    out = box.type("wrong-again\r")
    assert "locked for 30 s" in out
    # while locked, even the right password is not looked at
    assert box.type(PASSWORD + "\r") == ""
    box.now += LOCKOUT_MS
    assert box.type("\r").endswith("password: ")
    assert box.type(PASSWORD + "\r").endswith("modgate> ")


def test_set_get_show_save_revert(tmp_path):
    box = Box(tmp_path)
    box.login()
    assert "pacs.port = 11112" in box.command("set pacs.port 11112")
    assert "pacs.host = pacs.example.org" in box.command("set pacs.host pacs.example.org")
    assert "pacs.host = 2001:db8::7" in box.command("set pacs.host 2001:db8::7")
    assert "patient.id = 12345" in box.command("set patient.id 12345")
    assert "patient.name = Doe^Jane Q" in box.command("set patient.name Doe^Jane Q")
    assert "acquisition.rate = [25, 1]" in box.command("set acquisition.rate [25, 1]")
    assert "pacs.tls = true" in box.command("set pacs.tls true")
    assert "network.address = 192.0.2.10" in box.command("set network.address 192.0.2.10")
    box.command("set network.netmask 255.255.255.0")
    shown = box.command("show pacs")
    assert "*pacs.port" in shown and "11112" in shown and "network.address" not in shown
    # save checks the whole configuration: TLS without a CA is refused
    out = box.command("save")
    assert out.startswith("error: ") and "pacs.ca" in out
    assert not (tmp_path / "modgate.json").exists()
    box.command("unset pacs.tls")
    assert "saved and applied" in box.command("save")
    saved = json.loads((tmp_path / "modgate.json").read_text())
    assert saved["pacs"]["port"] == 11112 and saved["patient"]["id"] == "12345"
    assert box.system.applied["pacs.host"] == "2001:db8::7"
    box.command("set pacs.port 4242")
    assert "reverted: pacs.port" in box.command("revert")
    assert "pacs.port = 11112" in box.command("get pacs.port")
    # a new box (a restart) reads what was saved
    again = Box(tmp_path)
    again.login()
    assert "pacs.port = 11112" in again.command("get pacs.port")


@pytest.mark.parametrize("line, words", [
    ("set pacs.port 70000", "1 to 65535"),
    ("set pacs.port http", "whole number"),
    ("set pacs.ae_title ABCDEFGHIJKLMNOPQ", "16 characters"),
    ("set pacs.ae_title A\\B", "backslash"),
    ("set pacs.host bad_host!", "host name"),
    ("set pacs.host 300.1.1.1", "IPv4"),
    ("set network.netmask 255.0.255.0", "contiguous"),
    ("set clip.mode sometimes", "one of"),
    ("set nosuch.key 1", "unknown key"),
    ("set pacs.port", "usage"),
    ("frobnicate", "unknown command"),
    ("record maybe", "usage"),
    ("log 0", "usage"),
])
def test_bad_commands_change_nothing(tmp_path, line, words):
    box = Box(tmp_path)
    box.login()
    before = dict(box.console.settings.working)
    out = box.command(line)
    assert out.startswith("error: ") and words in out, out
    assert box.console.settings.working == before


def test_help_completion_and_commands(tmp_path):
    box = Box(tmp_path)
    box.login()
    assert "set KEY VALUE" in box.command("help")
    assert "C-ECHO" in box.command("help echo")
    assert box.type("sta\t") == "status "
    box.type("\x15")
    assert box.type("get pacs.po\t") == "get pacs.port "
    box.type("\x03")
    assert "pacs.port" in box.type("get pacs.\t")  # several choices: listed
    box.type("\x03")
    assert "recording" in box.command("record start")
    assert box.system.calls == [("record", True)]
    assert "error:" in box.command("stream start")
    assert box.command("log 3").splitlines() == ["line 0", "line 1", "line 2"]
    assert "rebooting" in box.type("reboot\r") and box.console.closed


def test_idle_logout(tmp_path):
    box = Box(tmp_path)
    box.login()
    assert box.console.tick(box.now + 1000, 300000) == b""
    assert b"logged out" in box.console.tick(box.now + 300000, 300000)
    assert box.type("\r").endswith("password: ")


def test_passwd(tmp_path):
    box = Box(tmp_path)
    box.login()
    box.type("passwd\r")
    box.type(PASSWORD + "\r")
    box.type("another-pw\r")
    assert box.type("another-pw\r").endswith("modgate> ")
    assert "logged out" in box.type("logout\r")
    box.type("\r")
    assert "wrong" in box.type(PASSWORD + "\r")
    assert box.type("another-pw\r").endswith("modgate> ")


def test_fuzz_leaves_the_console_alive_and_bounded(tmp_path):
    """10,000 lines of random bytes and escape sequences. (A cheap password
    record: the fuzz often lands in passwd, which checks the old one.)"""
    box = Box(tmp_path)
    box.console.passwords.set(make_password_record(PASSWORD, iterations=10))
    box.login()
    rng = random.Random(5)
    pieces = [b"\x1b[", b"\x1bO", b"\x1b", b"\x03", b"\x15", b"\x08", b"\t", b"\x7f", b"set ", b"show ", b"passwd"]
    for _ in range(10000):
        line = b"".join(rng.choice(pieces) if rng.random() < 0.3 else bytes([rng.randrange(256)])
                        for _ in range(rng.randrange(1, 80)))
        box.console.feed(line + b"\r", box.now)
        if box.console.state not in ("command",):
            # a fuzz line may log out or start passwd: come back in
            box.console.feed(b"\x03", box.now)
            box.now += LOCKOUT_MS
            if box.console.state != "command":
                box.console.feed(b"\r", box.now)
                box.console.feed(PASSWORD.encode() + b"\r", box.now)
        assert len(box.console.editor.line) <= 256 and len(box.console.editor.history) <= 16
    box.console.feed(b"\x03", box.now)
    box.now += LOCKOUT_MS
    if box.console.state != "command":
        box.type("\r")
        box.type(PASSWORD + "\r")
    assert "board host" in box.command("status")



class MonotonicClock:
    def monotonic_ns(self):
        return time.monotonic_ns()


def read_until(port, text, timeout_s=10.0):
    """What the port gives until text has come (or the time is up)."""
    got = b""
    deadline = time.monotonic() + timeout_s
    while text.encode() not in got and time.monotonic() < deadline:
        got += port.read(256)
    return got.decode("utf-8", "replace")


def test_hang_up_on_the_pty_ends_the_session_and_the_next_one_logs_in(tmp_path):
    """The console over a real pty, as `modgate run --console pty` serves
    it: the first client logs in and leaves without logout (its terminal
    program quits). The next client on the line gets a password prompt, not
    the first one's session, and none of the replies meant for the first."""
    box = Box(tmp_path)
    box.console.passwords.set(make_password_record(PASSWORD, iterations=10))
    pair = PtyPair(timeout_s=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(pair.master, box.console, MonotonicClock(), 300, stop.is_set),
                              daemon=True)
    thread.start()
    try:
        first = TtyUART(pair.path, timeout_s=0.05)
        first.write(b"\r")
        assert read_until(first, "password: ").endswith("password: ")
        first.write(PASSWORD.encode() + b"\r")
        assert read_until(first, "modgate> ").endswith("modgate> ")
        first.write(b"status\r")
        assert "board host" in read_until(first, "modgate> ")
        first.write(b"log 200\r")  # and gone before the reply
        first.close()
        time.sleep(0.5)
        second = TtyUART(pair.path, timeout_s=0.05)
        stale = read_until(second, "line 1", timeout_s=0.5)
        assert stale == "", stale
        second.write(b"status\r")
        out = read_until(second, "password: ")
        assert out.endswith("password: ") and "board host" not in out, out
        assert thread.is_alive()
        second.write(PASSWORD.encode() + b"\r")
        assert read_until(second, "modgate> ").endswith("modgate> ")
        second.write(b"status\r")
        assert "board host" in read_until(second, "modgate> ")
        second.close()
    finally:
        stop.set()
        thread.join(5)
        pair.close()
    assert not thread.is_alive()


class ScriptedUART:
    """A UART that gives the chunks of a script; EOFError where the
    script says so."""

    def __init__(self, script, reconnects):
        self.script = list(script)
        self.reconnects = reconnects
        self.written = b""

    def read(self, n):
        if not self.script:
            return b""
        chunk = self.script.pop(0)
        if chunk is EOFError:
            raise EOFError("hung up")
        return chunk

    def write(self, data):
        self.written += data


def test_serve_ends_the_session_at_a_hang_up_and_goes_on_if_the_line_reconnects(tmp_path):
    box = Box(tmp_path)
    box.console.passwords.set(make_password_record(PASSWORD, iterations=10))
    uart = ScriptedUART([b"\r", PASSWORD.encode() + b"\r", EOFError, b"status\r"], reconnects=True)
    serve(uart, box.console, MonotonicClock(), 300, lambda: not uart.script)
    assert uart.written.count(b"password: ") == 2 and b"board host" not in uart.written
    assert box.console.state == "password"
    # stdin closed for good: serve returns, the session ended all the same
    box.console.state = "command"
    uart = ScriptedUART([EOFError, b"status\r"], reconnects=False)
    serve(uart, box.console, MonotonicClock(), 300, lambda: False)
    assert uart.script == [b"status\r"] and box.console.state == "asleep"


class RunningGateway:
    """`modgate run --console pty`, started as the box's init starts it
    (python -m firmware.main): the console on a new pty whose path the
    gateway logs, as QEMU's -serial pty does."""

    def __init__(self, folder, cfg):
        self.config = os.path.join(str(folder), "modgate.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.log = open(os.path.join(str(folder), "run.log"), "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.main", "--console", "pty",
                                      "--config", self.config], cwd=ROOT, stdout=self.log, stderr=self.log)
        self.pty = None
        deadline = time.monotonic() + 30
        while self.pty is None and time.monotonic() < deadline:
            time.sleep(0.05)
            self.log.seek(0)
            for line in self.log.read().splitlines():
                if "console on " in line:
                    self.pty = line.split("console on ")[1].strip()
        assert self.pty, "no console pty logged"

    def client(self, *commands, password=PASSWORD):
        args = ["console", self.pty, "--password", password, "--timeout", "20"]
        for command in commands:
            args += ["--run", command]
        return subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()
        return self.proc.returncode


def test_console_on_a_pty_configures_records_and_the_clip_arrives(tmp_path):
    """The bar: the scripted client points the gateway at a storescp the test
    started, saves, records a clip on command, and the clip arrives; the
    saved configuration survives a restart of modgate run."""
    scp = Storescp(tmp_path / "rx", "+xa")
    cfg = {
        "acquisition": {"width": 64, "height": 48, "pixel": "rgb8", "paced": True},
        "clip": {"mode": "command"},
        "pacs": {"port": 9, "idle_release": 0.5, "connect_timeout": 2},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024},
    }
    gw = RunningGateway(tmp_path, cfg)
    try:
        result = gw.client("set pacs.port %d" % scp.port, "set pacs.ae_title STORESCP", "save", "echo",
                           "record start")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "saved and applied: pacs.ae_title, pacs.port" in result.stdout
        assert "C-ECHO STORESCP@127.0.0.1:%d: 0000" % scp.port in result.stdout
        time.sleep(1.0)
        result = gw.client("record stop", "status")
        assert result.returncode == 0, result.stdout + result.stderr
        deadline = time.monotonic() + 30
        while not scp.files() and time.monotonic() < deadline:
            time.sleep(0.1)
        result = gw.client("set pacs.port 70000")
        assert result.returncode == 1 and "1 to 65535" in result.stderr
        assert gw.client("log 50").stdout.count("stored") >= 1
    finally:
        status = gw.stop()
        scp.stop()
    assert status == 0
    assert len(scp.files()) == 1
    import pydicom

    ds = pydicom.dcmread(scp.files()[0])
    assert int(ds.NumberOfFrames) >= 10 and ds.Rows == 48
    saved = json.loads(open(gw.config).read())
    assert saved["pacs"]["port"] == scp.port and saved["pacs"]["ae_title"] == "STORESCP"
    assert PASSWORD not in open(gw.config).read() + open(os.path.join(str(tmp_path), "run.log")).read()
    # a restart reads the saved configuration
    gw = RunningGateway(tmp_path, saved)
    try:
        result = gw.client("get pacs.port")
        assert "pacs.port = %d" % scp.port in result.stdout
    finally:
        gw.stop()


def test_wrong_password_from_the_client(tmp_path):
    cfg = {"clip": {"mode": "command"}, "acquisition": {"width": 64, "height": 48},
           "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0}}
    gw = RunningGateway(tmp_path, cfg)
    try:
        assert gw.client("status").returncode == 0  # sets the password
        result = gw.client("status", password="not-the-one")
        assert result.returncode == 2 and "wrong password" in result.stderr
    finally:
        gw.stop()



def test_modgate_run_console_hang_up_exam_end_and_poweroff(tmp_path):
    """`modgate run --console pty` end to end, with a terminal on the pty:
    a client that leaves without logout leaves no session behind; exam end
    clears the saved patient; poweroff ends modgate run with status 4
    (firmware/main.py POWEROFF_STATUS), which the box's init turns into a
    clean power-off."""
    cfg = {"clip": {"mode": "command"}, "acquisition": {"width": 64, "height": 48},
           "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0}}
    gw = RunningGateway(tmp_path, cfg)
    try:
        first = TtyUART(gw.pty, timeout_s=0.1)
        first.write(b"\r")
        assert read_until(first, "new password: ").endswith("new password: ")
        first.write(PASSWORD.encode() + b"\r")
        read_until(first, "repeat password: ")
        first.write(PASSWORD.encode() + b"\r")
        assert read_until(first, "modgate> ").endswith("modgate> ")
        first.write("set patient.name Müller^Anna\r".encode())
        assert "patient.name = Müller^Anna" in read_until(first, "modgate> ")
        first.write(b"save\r")
        assert "saved and applied" in read_until(first, "modgate> ")
        first.close()  # the terminal program quits, no logout
        time.sleep(0.5)
        second = TtyUART(gw.pty, timeout_s=0.1)
        second.write(b"show patient\r")
        out = read_until(second, "password: ")
        assert out.endswith("password: ") and "Anna" not in out, out
        second.write(PASSWORD.encode() + b"\r")
        read_until(second, "modgate> ")
        second.write(b"exam end\r")
        out = read_until(second, "modgate> ")
        assert "cleared (saved): patient.name" in out and "new study" in out, out
        assert "Anna" not in open(gw.config, encoding="utf-8").read()
        second.write(b"poweroff\r")
        assert "powering off" in read_until(second, "powering off")
        assert gw.proc.wait(30) == 4
        second.close()
    finally:
        if gw.proc.poll() is None:
            gw.stop()
        else:
            gw.log.close()


# -- UTF-8 input ----------------------------------------------------------------

def test_editor_takes_utf8_and_backspace_erases_one_character():
    ed = LineEditor()
    out, events = ed.feed("set patient.name Müller\r".encode())
    assert events == [("line", "set patient.name Müller")]
    assert out == "set patient.name Müller\r\n".encode()  # echoed in UTF-8
    # One backspace takes the whole two-byte ü and one cell off the screen;
    # a wide character is two cells; a combining mark none (its base is drawn again).
    out, _ = ed.feed("Mü\x7f".encode())
    assert ed.line == "M" and out == "Mü".encode() + b"\b \b"
    out, _ = ed.feed("漢\x08".encode())
    assert ed.line == "M" and out == "漢".encode() + b"\b\b  \b\b"
    out, _ = ed.feed("e\u0301\x7f".encode())
    assert ed.line == "Me" and out == "e\u0301".encode() + b"\b \be"
    # a sequence split across reads, and a four-byte one
    ed.feed(b"\x15")
    for piece in (b"\xc3", b"\xbc", b"\xf0\x9f", b"\x98\x80", b"\r"):
        out, events = ed.feed(piece)
    assert events == [("line", "ü\U0001F600")]


def test_editor_drops_bad_utf8_with_a_bell_and_refuses_the_line():
    """A Latin-1 terminal's M\\xfcller must not become "Mller": the line is
    reported garbled. Overlong forms, surrogates, code points above
    U+10FFFF, stray continuation bytes, C1 controls: a bell, nothing kept."""
    ed = LineEditor()
    out, events = ed.feed(b"M\xfcller\r")
    assert events == [("garbled", "Mller")] and b"\x07" in out
    for bad in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5\x80",
                b"\xbf", b"\xc3(", b"\xc2\x9b", b"\xff"):
        out, events = ed.feed(b"a" + bad + b"\r")
        assert events[0][1] == "a" + ("(" if bad == b"\xc3(" else ""), bad
        assert b"\x07" in out, bad
    # Ctrl-U takes the bad bytes with the line: what is typed next is fine
    ed.feed(b"x\xff\x15")
    assert ed.feed(b"ok\r")[1] == [("line", "ok")]
    # bounded: endless lead bytes never grow the state beyond one sequence
    ed.feed(b"\xf0\x9f\x98" * 10000)
    assert ed._utf8 is not None and len(ed._utf8) <= 4 and ed.line == ""
    ed.feed(b"\x15")
    ed.feed("é".encode() * (MAX_LINE + 5))
    assert ed.line == "é" * MAX_LINE


def test_console_stores_non_ascii_or_refuses_it_never_strips_it(tmp_path):
    box = Box(tmp_path)
    box.login()
    out = box.command("set study.description Gastroskopie Müller")
    assert "Mller" not in out
    assert "study.description = Gastroskopie Müller" in out or out.startswith("error: "), out
    if not out.startswith("error: "):
        assert box.console.settings.working["study.description"] == "Gastroskopie Müller"
    before = dict(box.console.settings.working)
    box.type("set patient.name M")
    out = box.console.feed(b"\xfcller\r", box.now).decode()  # Latin-1, not UTF-8
    assert "error: " in out and "UTF-8" in out and "Mller" not in out
    assert box.console.settings.working == before
    assert "set patient.name Mller" not in box.console.editor.history


# -- control characters from the system ----------------------------------------

def test_lines_from_the_system_reach_the_terminal_escaped(tmp_path):
    """A PACS's Implementation Version Name "ESC[2J...ALARM: FAKE" must not
    clear the technician's screen or forge a line."""
    box = Box(tmp_path)
    box.login()
    hostile = "OFFIS\x1b[2J\x1b[H\r\nALARM: FAKE\x07\x9b31m"
    box.system.status = lambda: ["peer " + hostile]
    box.system.echo = lambda: "error: C-ECHO: " + hostile
    box.system.log = lambda n: ["association from " + hostile]
    box.system.queue = lambda args: ["waiting: " + hostile]

    def fails():
        raise OSError("bad file " + hostile)

    box.system.record = lambda start: fails()
    for command in ("status", "echo", "log 5", "queue list", "record start"):
        out = box.command(command)
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, (command, out)
        assert "\r\nALARM" not in out and "\\x1b[2J" in out and "\\x0d\\x0aALARM: FAKE" in out, (command, out)
    box.console.banner = "modgate \x1b]0;pwned\x07"
    box.type("logout\r")
    assert "\x1b" not in box.type("\r")


# -- login: hang-ups, stale prompts, the lockout across restarts ----------------

def test_enter_on_a_stale_prompt_is_no_wrong_password(tmp_path):
    """After a restart the terminal still shows "password: " from before;
    the Enter that answers it is no attempt, however often it comes."""
    box = Box(tmp_path)
    box.login()
    box.type("logout\r")
    assert box.type("\r").endswith("password: ")
    for _ in range(10):
        out = box.type("\r")
        assert out == "\r\npassword: ", out
    assert box.console.failures == 0 and box.console.state == "password"
    assert "locked" not in box.type("wrong-one\r")
    assert box.type(PASSWORD + "\r").endswith(PROMPT.decode())


def test_hang_up_ends_the_session_but_not_a_lock(tmp_path):
    box = Box(tmp_path)
    box.login()
    box.type("set pacs.port 4242")  # half a line, left behind
    box.console.hangup()
    out = box.type("show\r")
    assert out.endswith("password: ") and "pacs" not in out and "4242" not in out
    assert box.console.editor.history == []  # the next person cannot browse the last one's commands
    for _ in range(5):
        box.type("wrong-one\r")
    assert box.console.state == "locked"
    box.console.hangup()
    assert box.type(PASSWORD + "\r") == ""  # still locked


class BrokenStorage(PosixStorage):
    """Storage that refuses to write: read-only, or full."""

    def __init__(self, root, errno_):
        PosixStorage.__init__(self, root)
        self.errno = errno_
        self.broken = False

    def open_new(self, name):
        if self.broken:
            raise OSError(self.errno, os.strerror(self.errno), name)
        return PosixStorage.open_new(self, name)


def test_lockout_survives_a_restart(tmp_path):
    box = Box(tmp_path)
    box.login()
    box.type("logout\r")
    box.type("\r")
    for _ in range(3):
        box.type("wrong-one\r")
    # a restart keeps the three failures: two more lock
    box = Box(tmp_path)
    assert box.console.failures == 3
    box.type("\r")
    box.type("wrong-one\r")
    assert "locked for 30 s" in box.type("wrong-one\r")
    assert not (tmp_path / "console.lockout.new").exists()
    # a restart (a reboot: the monotonic clock starts again) keeps the lock,
    # in full from the console's first moment
    box = Box(tmp_path)
    box.now = 5  # the new boot's clock
    assert box.console.state == "locked"
    assert box.console.tick(box.now, 300000) == b""
    box.now += LOCKOUT_MS - 1000
    assert box.type(PASSWORD + "\r") == ""
    box.now += 1000
    assert box.type("\r").endswith("password: ")
    assert box.type(PASSWORD + "\r").endswith(PROMPT.decode())
    # served and logged in: a restart starts clean
    box = Box(tmp_path)
    assert box.console.state == "asleep" and box.console.failures == 0


def test_a_damaged_lockout_record_locks_once(tmp_path):
    box = Box(tmp_path)
    box.login()
    (tmp_path / "console.lockout").write_text("garbage")
    box = Box(tmp_path)
    assert box.console.state == "locked"
    box.console.tick(box.now, 300000)
    box.now += LOCKOUT_MS
    box.login()


def test_passwd_asks_for_the_current_password(tmp_path):
    box = Box(tmp_path)
    box.login()
    assert box.type("passwd\r").endswith("current password: ")
    out = box.type("not-the-password\r")
    assert "error: wrong password" in out and out.endswith(PROMPT.decode())
    assert box.type("passwd\r").endswith("current password: ")
    assert box.type("\r").endswith("current password: ")  # an empty line asks again
    assert box.type("\x03").endswith(PROMPT.decode())  # Ctrl-C: passwd cancelled, still logged in
    assert "board host" in box.command("status")
    # unchanged
    box.type("logout\r")
    box.login()


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC])
def test_passwd_that_cannot_be_stored_is_an_error_and_the_old_one_stays(tmp_path, err):
    box = Box(tmp_path)
    box.login()
    store = BrokenStorage(str(tmp_path), err)
    box.console.passwords = PasswordFile(store)
    store.broken = True
    box.type("passwd\r")
    box.type(PASSWORD + "\r")
    box.type("another-pw\r")
    out = box.type("another-pw\r")
    assert "error: the password could not be stored" in out and os.strerror(err) in out
    assert "unchanged" in out and out.endswith(PROMPT.decode())
    box.type("logout\r")
    box.type("\r")
    assert "wrong" in box.type("another-pw\r")
    assert box.type(PASSWORD + "\r").endswith(PROMPT.decode())


def test_first_password_that_cannot_be_stored_is_an_error_and_opens_nothing(tmp_path):
    box = Box(tmp_path)
    store = BrokenStorage(str(tmp_path), errno.EROFS)
    store.broken = True
    box.console.passwords = PasswordFile(store)
    assert box.type("\r").endswith("new password: ")
    box.type(PASSWORD + "\r")
    out = box.type(PASSWORD + "\r")
    assert "error: the password could not be stored" in out and "Read-only" in out
    assert PROMPT.decode() not in out and box.console.state == "asleep"
    assert box.type("status\r").endswith("new password: ")  # still none: choose one again
    assert not (tmp_path / "console.passwd").exists()


# -- poweroff and exam end -------------------------------------------------------

def test_poweroff_asks_the_system_and_closes_the_console(tmp_path):
    box = Box(tmp_path)
    box.login()
    assert "poweroff" in box.command("help")
    out = box.type("poweroff\r")
    assert out == "poweroff\r\npowering off\r\n"
    assert box.system.calls == [("poweroff",)] and box.console.closed
    # a system that cannot power off says so, and the session goes on
    box = Box(tmp_path)
    box.login()
    box.system.poweroff = lambda: "error: no power control on this board"
    assert "error: no power control" in box.command("poweroff")
    assert not box.console.closed


def test_exam_end_clears_patient_and_study_saved_and_working_and_starts_a_new_study(tmp_path):
    box = Box(tmp_path)
    box.login()
    box.command("set patient.name Doe^Jane")
    box.command("set patient.id 12345")
    box.command("set study.description Colonoscopy")
    box.command("set pacs.port 11112")
    box.command("save")
    box.command("set pacs.port 4242")  # unsaved edits stay unsaved
    box.command("set patient.sex F")
    out = box.command("exam end")
    assert "patient.id, patient.name, patient.sex, study.description" in out, out
    assert "new study" in out and box.system.calls[-1] == ("new_study",)
    saved = json.loads((tmp_path / "modgate.json").read_text())
    for key in config.EXAM_KEYS:
        section, name = key.split(".")
        assert saved.get(section, {}).get(name, config.SCHEMA[key][0]) == config.SCHEMA[key][0], key
        assert box.console.settings.working[key] == config.SCHEMA[key][0], key
    assert saved["pacs"]["port"] == 11112
    assert box.system.applied["patient.name"] == config.SCHEMA["patient.name"][0]
    assert box.console.settings.working["pacs.port"] == 4242 and box.console.settings.dirty() == ["pacs.port"]
    assert "exam end" in box.command("help")
    assert "usage" in box.command("exam")


def test_exam_end_that_cannot_be_saved_still_ends_the_study(tmp_path):
    """The keys stay as they were (nothing half-written), but the study
    ends: the clip under way closes and no later clip joins it."""
    box = Box(tmp_path)
    box.login()
    box.command("set patient.name Doe^Jane")
    box.command("save")

    def refuse(values):
        raise OSError(errno.ENOSPC, "No space left on device")

    box.console.settings._persist = refuse
    before = dict(box.console.settings.working)
    out = box.command("exam end")
    assert out.startswith("error: ") and "No space" in out
    assert box.console.settings.working == before and box.console.settings.saved["patient.name"] == "Doe^Jane"
    assert ("new_study",) in box.system.calls and "new study" in out


# -- the emulated box's init: poweroff, and the forgotten password ------------

def run_init_part(tmp_path, part, statuses=(), cmdline=""):
    """One part of the box's /init under a POSIX sh, the box's commands
    replaced by ones that write what they were asked into a transcript:
    python3 is modgate, exiting with each of statuses in turn; reboot,
    poweroff and release_data only say so."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "statuses").write_text("".join("%d\n" % s for s in statuses))
    modgate = bin_dir / "python3"
    modgate.write_text('#!/bin/sh\nhere=$(dirname "$0")/..\necho "modgate $*" >>"$here/transcript"\n'
                       's=$(head -n1 "$here/statuses"); sed -i 1d "$here/statuses"; exit "${s:-99}"\n')
    modgate.chmod(0o755)
    (tmp_path / "data").mkdir(exist_ok=True)
    transcript = tmp_path / "transcript"
    if transcript.exists():
        transcript.unlink()
    stubs = r"""
t=%s
DATA=%s
LOG=$t
cmdline="%s"
opt() { for w in $cmdline; do case "$w" in "$1="*) echo "${w#*=}"; return;; esac; done; }
say() { echo "say: $*" >>$t; }
release_data() { echo "release_data" >>$t; }
reboot() { echo "reboot $*" >>$t; exit 0; }
poweroff() { echo "poweroff $*" >>$t; exit 0; }
sleep() { [ -s %s ] || exit 7; }
""" % (transcript, tmp_path / "data", cmdline, tmp_path / "statuses")
    result = subprocess.run(["sh", "-c", stubs + part], capture_output=True, text=True, timeout=30,
                            env=dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"])))
    return result, transcript.read_text() if transcript.exists() else ""


def test_box_init_powers_off_when_modgate_exits_with_status_4(tmp_path):
    """The console's poweroff: modgate run exits 4 (POWEROFF_STATUS); the box
    releases the data partition and powers off, as the control port's
    power-off does, instead of starting modgate again."""
    from tools.image import init

    assert init.SUPERVISE in init.INIT
    result, transcript = run_init_part(tmp_path, init.SUPERVISE, statuses=(1, 4))
    assert result.returncode == 0, result.stderr + transcript
    lines = transcript.splitlines()
    assert lines[0] == "modgate -m firmware.main --config %s/data/modgate.json --console /dev/ttyAMA0" % tmp_path
    assert "say: modgate exited with status 1; starting it again in 1 s" in lines
    assert lines[-3:] == ["say: modgate asked for a power-off", "release_data", "poweroff -f"], lines
    assert sum(line.startswith("modgate ") for line in lines) == 2
    # and the console's reboot, status 3, still reboots
    result, transcript = run_init_part(tmp_path, init.SUPERVISE, statuses=(3,))
    assert transcript.splitlines()[-3:] == ["say: modgate asked for a reboot", "release_data", "reboot -f"]


def test_box_init_reset_password_flag_deletes_the_password_and_keeps_the_rest(tmp_path):
    """The documented recovery of a forgotten password: boot once with
    modgate.reset_password=1; the next console session chooses a new one,
    the configuration and the spool untouched."""
    from tools.image import init

    assert init.RESET_PASSWORD in init.INIT
    data = tmp_path / "data"
    box = Box(data)
    box.login()
    box.command("set pacs.port 11112")
    box.command("save")
    box.type("logout\r")
    box.type("\r")
    box.type("wrong-pw\r")
    (data / "spool" / "queue").mkdir(parents=True)
    (data / "spool" / "queue" / "000001.dcm").write_bytes(b"DICM")
    kept = dict((p, p.read_bytes()) for p in data.rglob("*") if p.is_file() and not p.name.startswith("console."))
    assert (data / "console.passwd").exists() and (data / "console.lockout").exists()
    # without the flag nothing happens
    result, transcript = run_init_part(tmp_path, init.RESET_PASSWORD, cmdline="console=hvc0 quiet")
    assert result.returncode == 0 and (data / "console.passwd").exists() and transcript == ""
    result, transcript = run_init_part(tmp_path, init.RESET_PASSWORD,
                                       cmdline="console=hvc0 quiet modgate.reset_password=1")
    assert result.returncode == 0, result.stderr
    assert "console password reset" in transcript
    assert not (data / "console.passwd").exists() and not (data / "console.lockout").exists()
    assert kept == dict((p, p.read_bytes()) for p in kept)
    box = Box(data)
    assert "no password set" in box.type("\r")
    box.login("new-password")
    assert "pacs.port = 11112" in box.command("get pacs.port")


def test_stream_start_says_when_an_rtv_edit_is_not_saved(tmp_path):
    # save applies the configuration; a stream started before it runs on
    # the saved values, and the technician who just typed rtv.host is told.
    box = Box(tmp_path)
    box.system.stream = lambda start: "streaming to 239.1.1.1:5004" if start else "streaming stopped"
    box.login()
    assert "note:" not in box.command("stream start")
    box.command("set rtv.host 10.0.0.9")
    out = box.command("stream start")
    assert "streaming to 239.1.1.1:5004" in out
    assert "note: rtv.host not saved: the stream uses the saved value (save, then stream stop and start)" in out
    assert "note:" not in box.command("stream stop")
    box.command("save")
    assert "note:" not in box.command("stream start")
