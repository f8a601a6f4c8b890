"""The console, sans-I/O: the line editor and the shell fed bytes and time,
and the whole console through a real pty with pyserial on the host end."""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest

from firmware import config
from firmware.compat.crypto import make_password_record
from firmware.console import PasswordFile
from firmware.console.editor import MAX_LINE, LineEditor
from firmware.console.shell import LOCKOUT_MS, PROMPT, Console, Settings
from hal.storage import PosixStorage
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


class RunningGateway:
    """`modgate run --console pty`: the console on a new pty whose path
    the gateway logs, as QEMU's -serial pty does."""

    def __init__(self, folder, cfg):
        self.config = os.path.join(str(folder), "modgate.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.log = open(os.path.join(str(folder), "run.log"), "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--console", "pty",
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
        return subprocess.run([sys.executable, "-m", "firmware.cli", *args], cwd=ROOT,
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
