"""tools.console_client against a fake box on a pseudo-terminal.

The fake speaks the console protocol the client expects (CR LF lines out, CR
in, "modgate> " prompt, echo of the command line, "password: " or "new
password: " / "repeat password: " login, "error: " replies, lock-out after 5
failures). It exists only to test the client's prompt handling; the real
console (firmware/console) has its own tests."""

import os
import select
import subprocess
import sys
import termios
import threading
import time
import tty

import pytest
import serial

from tests.conftest import ROOT
from tools import console_client
from tools.console_client import ConsoleError, ConsoleSession, ConsoleTimeout, LoginError, main


class FakeBox:
    """A console on the master side of a pty, in a thread. password None:
    no password set yet. replies: command -> reply lines; "slow" never
    answers; "say TEXT" replies TEXT; anything else is an error. dribble:
    write one byte at a time. blank_before_prompt: "\\r\\nmodgate> " rather
    than "modgate> " after a reply."""

    def __init__(self, password="pw", failures=0, dribble=False, blank_before_prompt=False, silent=False,
                 empty_is_wrong=False):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.password = password
        self.failures = failures
        self.dribble = dribble
        self.blank_before_prompt = blank_before_prompt
        self.silent = silent
        self.empty_is_wrong = empty_is_wrong
        self.replies = {"get a": ["a = 1"], "set a 2": [], "show": ["one", "", "three"]}
        self.state = "locked" if failures >= 5 else "asleep"
        self.lines = []  # every line received, passwords included
        self.commands = []  # command lines received at the prompt
        self._line = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)

    def write(self, text):
        data = text.encode()
        if self.dribble:
            for i in range(len(data)):
                os.write(self.master, data[i:i + 1])
                time.sleep(0.001)
        else:
            os.write(self.master, data)

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:
                continue
            for byte in data:
                self._byte(byte)

    def _byte(self, byte):
        if self.silent or self.state == "locked":
            return  # the box ignores input while locked
        if byte == 0x0D:
            line = self._line.decode()
            self._line = b""
            self.write("\r\n")  # the line editor ends every line, echo or not
            self.lines.append(line)
            self._on_line(line)
        else:
            self._line += bytes((byte,))
            if self.state == "command":  # no echo of passwords
                self.write(chr(byte))

    def _on_line(self, line):
        if self.state == "asleep":
            if self.password is None:
                self.state = "new"
                self.write("new password: ")
            else:
                self.state = "password"
                self.write("password: ")
        elif self.state == "new":
            self._new = line
            self.state = "repeat"
            self.write("repeat password: ")
        elif self.state == "repeat":
            if line != self._new:
                self.state = "new"
                self.write("error: passwords differ\r\nnew password: ")
            else:
                self.password = line
                self.state = "command"
                self.write("password set\r\nmodgate> ")
        elif self.state == "password":
            if line == "" and not self.empty_is_wrong:
                self.write("password: ")
            elif line == self.password:
                self.state = "command"
                self.write("modgate> ")
            else:
                self.failures += 1
                if self.failures >= 5:
                    self.state = "locked"
                    self.write("error: locked for 30 s\r\n")
                else:
                    self.write("error: wrong password\r\npassword: ")
        else:
            self._command(line)

    def _command(self, line):
        self.commands.append(line)
        if line == "":
            reply = []
        elif line == "slow":
            return
        elif line in ("logout", "reboot"):
            self.state = "asleep"
            self.write("logged out\r\n" if line == "logout" else "rebooting\r\n")
            return
        elif line.startswith("say "):
            reply = [line[4:]]
        elif line in self.replies:
            reply = self.replies[line]
        else:
            reply = ["error: unknown command %r" % line.split()[0]]
        text = "".join(r + "\r\n" for r in reply)
        self.write(text + ("\r\n" if self.blank_before_prompt else "") + "modgate> ")


@pytest.fixture
def box():
    made = []

    def make(**kwargs):
        fake = FakeBox(**kwargs)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


@pytest.fixture
def session():
    opened = []

    def open_(fake, timeout=5.0):
        port = serial.serial_for_url(fake.path, baudrate=115200)
        opened.append(port)
        return ConsoleSession(port, timeout)

    yield open_
    for port in opened:
        port.close()


def test_login_with_existing_password_and_run(box, session):
    fake = box()
    s = session(fake)
    s.login("pw")
    assert fake.lines == ["", "pw"] and fake.state == "command"
    assert s.run("get a") == ["a = 1"]
    assert s.run("set a 2") == []
    assert s.run("show") == ["one", "", "three"]
    assert fake.commands == ["get a", "set a 2", "show"]


def test_first_login_sets_the_password(box, session):
    fake = box(password=None)
    s = session(fake)
    s.login("new-secret")
    assert fake.password == "new-secret"
    assert fake.lines == ["", "new-secret", "new-secret"]
    assert s.run("get a") == ["a = 1"]


def test_login_when_already_at_the_prompt(box, session):
    fake = box()
    fake.state = "command"
    s = session(fake)
    s.login(None)
    assert s.run("get a") == ["a = 1"]
    assert fake.lines == ["", "get a"]


def test_wake_answers_a_waiting_password_prompt(box, session):
    """The box already shows "password: " (printed before we opened the
    port), so the waking CR is an empty password and earns an error: the
    client acts on the last prompt and does not take that error as its own."""
    fake = box(empty_is_wrong=True)
    fake.state = "password"
    s = session(fake)
    fake.write("password: ")
    s.login("pw")
    assert fake.lines == ["", "pw"] and fake.failures == 1
    assert s.run("get a") == ["a = 1"]


def test_wrong_password(box, session):
    fake = box()
    s = session(fake)
    with pytest.raises(LoginError) as err:
        s.login("nope")
    assert err.value.line == "error: wrong password"
    assert fake.failures == 1 and fake.state == "password"


def test_fifth_failure_locks_and_says_so(box, session):
    fake = box(failures=4)
    s = session(fake, timeout=30)
    start = time.monotonic()
    with pytest.raises(LoginError) as err:
        s.login("nope")
    assert err.value.line == "error: locked for 30 s"
    assert time.monotonic() - start < 5  # reported, not waited out


def test_locked_box_times_out(box, session):
    fake = box(failures=5)
    s = session(fake, timeout=0.5)
    with pytest.raises(ConsoleTimeout):
        s.login("pw")


def test_password_asked_but_none_given(box, session):
    s = session(box())
    with pytest.raises(LoginError, match="no password was given"):
        s.login(None)


def test_password_must_be_printable_ascii(box, session):
    fake = box()
    with pytest.raises(LoginError, match="printable ASCII"):
        session(fake).login("sécret")
    assert fake.lines == []  # refused before anything was sent


def test_error_reply_raises(box, session):
    s = session(box())
    s.login("pw")
    with pytest.raises(ConsoleError) as err:
        s.run("frobnicate now")
    assert err.value.line == "error: unknown command 'frobnicate'"
    assert s.run("get a") == ["a = 1"]  # the session goes on


def test_echo_is_not_a_reply(box, session):
    """The echo of a command that looks like an error line is not one, and
    no echo shows up among the reply lines."""
    s = session(box())
    s.login("pw")
    assert s.run("say hello") == ["hello"]
    assert s.run("say modgate>") == ["modgate>"]
    with pytest.raises(ConsoleError):
        s.run("say error: boom")


@pytest.mark.parametrize("dribble", [False, True], ids=["whole", "byte-by-byte"])
@pytest.mark.parametrize("blank", [False, True], ids=["prompt", "blank-then-prompt"])
def test_prompt_forms_and_chunking(box, session, dribble, blank):
    fake = box(password=None, dribble=dribble, blank_before_prompt=blank)
    s = session(fake)
    s.login("pw")
    assert s.run("get a") == ["a = 1"]
    assert s.run("show") == ["one", "", "three"]
    assert s.run("set a 2") == []


def test_a_name_arriving_byte_by_byte_is_read_whole(box, session):
    # ü is two bytes in UTF-8: over a serial line the two may come in two
    # reads (seen on the emulated box's console: "Müller^J\ufffd\ufffdrgen").
    s = session(box(password=None, dribble=True))
    s.login("pw")
    assert s.run("say procedure: Müller^Jürgen, ID P100") == ["procedure: Müller^Jürgen, ID P100"]


def test_timeout(box, session):
    s = session(box(), timeout=0.5)
    s.login("pw")
    start = time.monotonic()
    with pytest.raises(ConsoleTimeout):
        s.run("slow")
    assert time.monotonic() - start < 3


def run_main(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_main_runs_commands(box, capsys):
    fake = box()
    status, out, err = run_main(capsys, fake.path, "--password", "pw", "--run", "get a", "--run", "show",
                                "--run", "set a 2")
    assert status == 0, err
    assert out == "a = 1\none\n\nthree\n"
    assert "get a" not in out and "modgate>" not in out and "pw" not in out
    assert fake.commands == ["get a", "show", "set a 2", "logout"]
    assert fake.state == "asleep"  # logged out: the next user must log in


def test_main_reboot_ends_the_session(box, capsys):
    """reboot answers one line and no prompt: that is success, and the
    client neither waits for a prompt nor sends logout to a rebooting box;
    a command after it is not run."""
    fake = box()
    status, out, err = run_main(capsys, fake.path, "--password", "pw", "--run", "get a", "--run", "reboot")
    assert (status, out) == (0, "a = 1\nrebooting\n"), err
    assert fake.commands == ["get a", "reboot"]
    fake = box()
    status, out, err = run_main(capsys, fake.path, "--password", "pw", "--run", "logout", "--run", "get a")
    assert status == 2 and out == "logged out\n" and "the session has ended" in err
    assert fake.commands == ["logout"]


def test_main_first_login(box, capsys):
    fake = box(password=None)
    status, out, err = run_main(capsys, fake.path, "--password", "s3t", "--run", "get a")
    assert (status, out) == (0, "a = 1\n"), err
    assert fake.password == "s3t"


def test_main_password_from_environment(box, capsys, monkeypatch):
    fake = box()
    monkeypatch.setenv("MODGATE_CONSOLE_PASSWORD", "pw")
    status, out, err = run_main(capsys, fake.path, "--run", "get a")
    assert (status, out) == (0, "a = 1\n"), err


def test_main_error_reply_exits_1(box, capsys):
    fake = box()
    status, out, err = run_main(capsys, fake.path, "--password", "pw", "--run", "get a", "--run", "bad",
                                "--run", "get a")
    assert status == 1
    assert out == "a = 1\n"
    assert "error: unknown command 'bad'" in err
    assert fake.commands == ["get a", "bad", "logout"]  # stopped at the first error


def test_main_timeout_exits_2(box, capsys):
    fake = box()
    start = time.monotonic()
    status, out, err = run_main(capsys, fake.path, "--password", "pw", "--timeout", "0.5", "--run", "slow",
                                "--run", "get a")
    assert status == 2
    assert "no prompt" in err
    assert time.monotonic() - start < 5
    assert fake.commands[:1] == ["slow"] and "get a" not in fake.commands


def test_main_login_failures_exit_2(box, capsys):
    status, out, err = run_main(capsys, box().path, "--password", "wrong", "--run", "get a")
    assert status == 2 and "error: wrong password" in err and out == ""
    status, out, err = run_main(capsys, box().path, "--run", "get a")
    assert status == 2 and "no password" in err
    status, out, err = run_main(capsys, box(silent=True).path, "--password", "pw", "--timeout", "0.5",
                                "--run", "get a")
    assert status == 2 and "no prompt" in err


def test_main_bad_device_exits_2(tmp_path, capsys):
    status, out, err = run_main(capsys, str(tmp_path / "no-such-tty"), "--run", "get a")
    assert status == 2 and "cannot open" in err


def test_main_over_a_socket_url(capsys):
    """Any pyserial URL: here socket://, with a fake box behind a TCP socket."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    fake = FakeBox()
    port = listener.getsockname()[1]

    def bridge():
        conn, _ = listener.accept()
        conn.settimeout(0.02)
        try:
            while True:
                try:
                    data = conn.recv(1024)
                    if not data:
                        return
                    os.write(fake.slave, data)
                except socket.timeout:
                    pass
                while select.select([fake.slave], [], [], 0)[0]:
                    conn.sendall(os.read(fake.slave, 1024))
        finally:
            conn.close()

    thread = threading.Thread(target=bridge, daemon=True)
    thread.start()
    try:
        status, out, err = run_main(capsys, "socket://127.0.0.1:%d" % port, "--password", "pw", "--run", "get a")
        assert (status, out) == (0, "a = 1\n"), err
    finally:
        thread.join(5)
        listener.close()
        fake.close()


def test_through_the_modgate_command(box):
    """`modgate console` reaches main() (tools/cli.py wires it)."""
    fake = box()
    result = subprocess.run([sys.executable, "-m", "tools.cli", "console", fake.path, "--password", "pw",
                             "--run", "get a"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (result.returncode, result.stdout) == (0, "a = 1\n"), result.stderr


def test_interactive_passes_bytes_and_quits_on_ctrl_bracket(box):
    """Keys from a terminal (a pty here, so raw mode is really set) go to the
    box, the box's bytes come out, Ctrl-] quits, and the terminal's settings
    come back."""
    fake = box()
    fake.state = "command"
    term_master, term_slave = os.openpty()
    out_r, out_w = os.pipe()
    before = termios.tcgetattr(term_slave)
    port = serial.serial_for_url(fake.path, baudrate=115200, timeout=0.05)
    result = {}
    modes = {}

    def run():
        result["status"] = console_client.interactive(port, stdin_fd=term_slave, stdout_fd=out_w)

    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and termios.tcgetattr(term_slave)[3] & termios.ICANON:
            time.sleep(0.01)
        modes["during"] = termios.tcgetattr(term_slave)
        os.write(term_master, b"get a\r")  # CR stays CR: ICRNL is off
        got = b""
        deadline = time.monotonic() + 5
        while b"modgate> " not in got and time.monotonic() < deadline:
            if select.select([out_r], [], [], 0.1)[0]:
                got += os.read(out_r, 1024)
        os.write(term_master, b"\x03\x1d")  # Ctrl-C goes to the box; Ctrl-] quits
        thread.join(5)
        assert not thread.is_alive()
    finally:
        port.close()
    assert result["status"] == 0
    assert got == b"get a\r\na = 1\r\nmodgate> "
    assert fake.commands == ["get a"]
    assert not modes["during"][3] & (termios.ICANON | termios.ECHO | termios.ISIG)
    assert not modes["during"][0] & termios.ICRNL
    assert termios.tcgetattr(term_slave) == before
    for fd in (term_master, term_slave, out_r, out_w):
        os.close(fd)


def _modgate_console(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "tools.cli", "console", *argv], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, **kwargs)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_modgate_console_help(flag):
    """--help prints the console's own usage (its options, DEVICE) and exits 0."""
    result = _modgate_console(flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: modgate console")
    for option in ("DEVICE", "--baud", "--password", "--run", "--timeout"):
        assert option in result.stdout


def test_modgate_console_options_where_the_usage_puts_them(box):
    """Options before DEVICE, as the usage line shows them, or after it, as
    the README writes them: both work."""
    fake = box()
    before = _modgate_console("--password", "pw", "--timeout", "5", "--run", "get a", fake.path)
    assert (before.returncode, before.stdout) == (0, "a = 1\n"), before.stderr
    fake = box()
    mixed = _modgate_console("--timeout", "5", fake.path, "--password", "pw", "--run", "get a")
    assert (mixed.returncode, mixed.stdout) == (0, "a = 1\n"), mixed.stderr


@pytest.mark.parametrize("argv,argument", [
    ([], "DEVICE"),
    (["/dev/null", "--timeout", "0"], "--timeout"),
    (["/dev/null", "--timeout", "nan"], "--timeout"),
    (["/dev/null", "--baud", "fast"], "--baud"),
    (["/dev/null", "--bogus"], "--bogus"),
])
def test_modgate_console_bad_argument_one_line_exit_2(argv, argument):
    result = _modgate_console(*argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and argument in lines[0], lines


def test_pyserial_is_a_runtime_dependency():
    """The README's install (pip install -e .) brings what `modgate console`
    imports: pyserial is in the project's dependencies, not a test extra."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: what pip install -e . recorded (no skip)
        from importlib.metadata import requires

        declared = requires("modgate") or []
        dependencies = [d.split(";")[0] for d in declared if "extra ==" not in d]
        test_extra = [d.split(";")[0] for d in declared if "extra ==" in d and "test" in d.split(";")[1]]
    else:
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
            project = tomllib.load(f)["project"]
        dependencies = project["dependencies"]
        test_extra = project.get("optional-dependencies", {}).get("test", [])
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in dependencies]
    assert "pyserial" in names
    assert not any(d.lower().startswith("pyserial") for d in test_extra)


def test_without_pyserial_one_line_exit_2():
    """Were pyserial missing all the same, the command says what to install."""
    code = ("import sys; sys.modules['serial'] = None\n"
            "from tools.cli import main\n"
            "sys.exit(main(['console', '/dev/null', '--run', 'show']))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pyserial" in lines[0], lines
