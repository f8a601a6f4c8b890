"""The host side of the box's serial console, on pyserial.

    modgate console DEVICE [--baud 115200] [--password PW] [--run CMD ...] [--timeout S]

DEVICE is a serial device (/dev/ttyUSB0, a pty slave) or any pyserial URL
(socket://127.0.0.1:7000, rfc2217://..., loop://). With --run (repeatable)
the client logs in, runs each command in turn and prints the replies; exit
status 0 if all succeed, 1 at the first reply with an "error: " line (the
line goes to stderr), 2 on timeout, no prompt or a failed login. Without
--run it is a terminal like pyserial's miniterm: keys go to the box as typed
(the box echoes and edits the line), Ctrl-] quits. The password may also
come from the environment variable MODGATE_CONSOLE_PASSWORD, which, unlike
an argument, other users cannot read in ps(1).

What the box does (firmware/console), and what ConsoleSession relies on:
  - it ends lines with CR LF; it takes lines ending in CR;
  - the command prompt is "modgate> " at the start of a line;
  - login prompts are "password: ", or "new password: " then
    "repeat password: " while no password is set; a wrong password gives
    "error: wrong password", five give "error: locked for 30 s";
  - it echoes a command line as it is typed, then CR LF, then the reply
    lines, then the prompt; a failed command has a line "error: ...";
  - "logout" and "reboot" answer one line and no prompt follows.
"""

import argparse
import codecs
import os
import select
import sys
import threading
import time

try:
    import serial
except ImportError:  # pyserial is a dependency (pyproject.toml); say so, not a traceback
    serial = None

PROMPT = "modgate> "
PASSWORD_PROMPTS = ("password: ", "new password: ", "repeat password: ")
ERROR = "error: "
LOCKED = "error: locked"
EXIT_KEY = b"\x1d"  # Ctrl-], as in miniterm and telnet
POLL_S = 0.05  # serial read timeout: how often the loops look at their deadline
SETTLE_S = 0.3  # quiet time after waking the box before trusting its last prompt
# Commands that end the session: the box answers with this line and shows
# no prompt (firmware/console/shell.py: logout sleeps, reboot restarts).
SESSION_ENDS = {"logout": "logged out", "reboot": "rebooting", "poweroff": "powering off"}
MAX_PASSWORD_PROMPTS = 4  # new + repeat, with room for one reprint; then give up
PASSWORD_ENV = "MODGATE_CONSOLE_PASSWORD"


class ConsoleError(Exception):
    """The box replied with an error line; .line is that line, .lines the reply."""

    def __init__(self, line, lines=()):
        Exception.__init__(self, line)
        self.line = line
        self.lines = list(lines)


class LoginError(ConsoleError):
    """The box refused the password, is locked, or wants one we do not have."""


class ConsoleTimeout(Exception):
    """No prompt came in time (or the device went away); .lines is what did."""

    def __init__(self, message, lines=()):
        Exception.__init__(self, message)
        self.lines = list(lines)


class ConsoleSession:
    """Prompt-driven dialogue with the console over an open pyserial port
    (anything with read(n), write(data), in_waiting). timeout bounds each
    wait for a prompt, in seconds."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self._text = ""  # received, not yet consumed; complete lines end "\r\n"
        # A character of several UTF-8 bytes may arrive split over two
        # reads (the box's "Müller" over a serial line): decoded as a stream.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.ended = False  # after logout or reboot
        port.timeout = POLL_S

    def _send(self, line):
        self.port.write(line.encode("utf-8") + b"\r")
        self.port.flush()

    def _read(self, wait_s):
        """Appends what arrives within about wait_s; False if nothing did."""
        end = time.monotonic() + wait_s
        while True:
            try:
                data = self.port.read(self.port.in_waiting or 1)
            except (serial.SerialException, OSError) as err:
                raise ConsoleTimeout("no prompt: the device went away (%s)" % err, self._lines())
            if data:
                self._text += self._decoder.decode(data)
                return True
            if time.monotonic() >= end:
                return False

    def _lines(self):
        return self._text.split("\r\n")[:-1]

    def _partial(self):
        """The text after the last complete line: where a prompt appears."""
        return self._text.rsplit("\r\n", 1)[-1]

    def _wait_prompt(self, prompts, settle_s=0.0, fail_on=None):
        """Reads until the unfinished line is one of prompts (and, with
        settle_s, nothing more comes for that long); returns (complete
        lines before it, the prompt) and consumes both. A complete line
        starting with fail_on raises LoginError at once."""
        deadline = time.monotonic() + self.timeout
        while True:
            if fail_on:
                for line in self._lines():
                    if line.startswith(fail_on):
                        raise LoginError(line, self._lines())
            if self._partial() in prompts and not (settle_s and self._read(settle_s)):
                lines, prompt = self._lines(), self._partial()
                self._text = ""
                return lines, prompt
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsoleTimeout("no prompt within %g s" % self.timeout, self._lines())
            self._read(min(remaining, POLL_S))

    def _wait_line(self, wanted, timeout):
        """Reads until a complete line equals wanted; returns the lines up
        to it and consumes them."""
        deadline = time.monotonic() + timeout
        while wanted not in self._lines():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsoleTimeout("no %r within %g s" % (wanted, timeout), self._lines())
            self._read(min(remaining, POLL_S))
        lines = self._lines()
        lines = lines[:lines.index(wanted) + 1]
        self._text = ""
        return lines

    def login(self, password=None):
        """Wakes the console with CR and answers its password prompts until
        the command prompt. LoginError if the password is wrong, the box is
        locked, or it asks for a password and none was given."""
        if password is not None:
            bad = [ch for ch in password if not " " <= ch <= "~"]
            if bad:
                # The box's line editor drops anything else without a word.
                raise LoginError("the password must be printable ASCII; it has %r" % bad[0])
        self._send("")
        prompts = (PROMPT,) + PASSWORD_PROMPTS
        # The box may have printed a prompt before we opened the port, and our
        # CR may answer it (an empty password): act on the last prompt only.
        # A locked box ignores input until the lock ends: say so, do not wait.
        lines, prompt = self._wait_prompt(prompts, SETTLE_S, LOCKED)
        sent = 0
        while prompt != PROMPT:
            if sent:
                errors = [line for line in lines if line.startswith(ERROR)]
                if errors:
                    raise LoginError(errors[-1], lines)
            if password is None:
                raise LoginError("the box asks %r and no password was given" % prompt.strip(), lines)
            if sent >= MAX_PASSWORD_PROMPTS:
                raise LoginError("the box keeps asking %r" % prompt.strip(), lines)
            self._send(password)
            sent += 1
            lines, prompt = self._wait_prompt(prompts, 0.0, LOCKED)

    def run(self, command):
        """Sends one command line and returns its reply lines, without the
        echo and the prompt. ConsoleError if the reply has an "error: " line,
        ConsoleTimeout if no prompt follows within the timeout. logout and
        reboot end the session: their one line is the reply."""
        if "\r" in command or "\n" in command:
            raise ValueError("one command line at a time: %r" % command)
        if self.ended:
            raise ConsoleTimeout("the session has ended: log in again")
        self._send(command)
        last = SESSION_ENDS.get(command.strip())
        if last is not None:
            lines = self._wait_line(last, self.timeout)[1:]
            self.ended = True
            return lines
        lines, _ = self._wait_prompt((PROMPT,))
        # The first line is the line editor's echo of what we typed.
        lines = lines[1:]
        # The box may end a reply with a blank line before the prompt.
        while lines and not lines[-1]:
            lines.pop()
        for line in lines:
            if line.startswith(ERROR):
                raise ConsoleError(line, lines)
        return lines


    def logout(self):
        """Ends the session, so the console asks for the password again
        (a serial line has no hang-up to tell the box we left). Quietly
        done if the box does not answer within 5 s."""
        if self.ended:
            return
        self._send("logout")
        try:
            self._wait_line(SESSION_ENDS["logout"], min(self.timeout, 5.0))
        except ConsoleTimeout:
            self._text = ""
        self.ended = True


def open_port(device, baud):
    """A pyserial port on a device path or URL, in raw 8N1."""
    return serial.serial_for_url(device, baudrate=baud, timeout=POLL_S)


def scripted(port, password, commands, timeout, out=None, err=None):
    """--run: log in, run commands in order, print replies. Exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    session = ConsoleSession(port, timeout)
    try:
        session.login(password)
    except ConsoleError as e:
        err.write("login failed: %s\n" % e)
        return 2
    except ConsoleTimeout as e:
        err.write("login failed: %s\n" % e)
        return 2
    try:
        return _run_all(session, commands, out, err)
    finally:
        session.logout()


def _run_all(session, commands, out, err):
    for command in commands:
        try:
            lines = session.run(command)
        except ConsoleError as e:
            for line in e.lines:
                if line != e.line:
                    out.write(line + "\n")
            out.flush()
            err.write("%s: %s\n" % (command, e.line))
            return 1
        except ConsoleTimeout as e:
            for line in e.lines[1:]:
                out.write(line + "\n")
            out.flush()
            err.write("%s: %s\n" % (command, e))
            return 2
        for line in lines:
            out.write(line + "\n")
        out.flush()
    return 0


def _raw_keyboard(fd):
    """Keys straight through, as miniterm does it: no line buffering, no
    local echo, no signals (Ctrl-C goes to the box), CR not mapped to LF
    and no XON/XOFF. Output processing stays. Returns the old settings."""
    import termios

    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.IXOFF)
    new[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, new)
    return old


def interactive(port, stdin_fd=None, stdout_fd=None, banner=None):
    """Bytes from stdin to the device and from the device to stdout until
    Ctrl-], end of input or the device going away. Exit status: 0, or 2 if
    the device went away."""
    stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    stdout_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    old = None
    if os.isatty(stdin_fd):
        import termios

        old = _raw_keyboard(stdin_fd)
    if banner:
        sys.stderr.write(banner + ("\r\n" if old else "\n"))
        sys.stderr.flush()
    state = {"alive": True, "lost": None}

    def reader():
        try:
            while state["alive"]:
                data = port.read(port.in_waiting or 1)
                if data:
                    _write_all(stdout_fd, data)
        except (serial.SerialException, OSError) as err:
            state["lost"] = err
            state["alive"] = False

    thread = threading.Thread(target=reader, name="console-reader", daemon=True)
    thread.start()
    try:
        while state["alive"]:
            ready, _, _ = select.select([stdin_fd], [], [], POLL_S)
            if not ready:
                continue
            data = os.read(stdin_fd, 1024)
            if not data:
                break
            quit_at = data.find(EXIT_KEY)
            if quit_at >= 0:
                data = data[:quit_at]
            if data:
                port.write(data)
                port.flush()
            if quit_at >= 0:
                break
    finally:
        state["alive"] = False
        thread.join(1.0)
        if old is not None:
            termios.tcsetattr(stdin_fd, termios.TCSAFLUSH, old)
    if state["lost"] is not None:
        sys.stderr.write("\n--- the device went away: %s ---\n" % state["lost"])
        return 2
    return 0


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def add_arguments(parser):
    """The console's arguments, on its own parser or on modgate's
    "console" subcommand (tools/cli.py): options before or after DEVICE,
    -h/--help as anywhere else."""
    parser.add_argument("device", metavar="DEVICE", help="serial device or pyserial URL (socket://HOST:PORT, ...)")
    parser.add_argument("--baud", type=_baud, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--password", metavar="PW",
                        help="console password (default: $%s); sets it if the box has none yet" % PASSWORD_ENV)
    parser.add_argument("--run", action="append", metavar="CMD",
                        help="run this command and print its reply; repeatable, run in order")
    parser.add_argument("--timeout", type=_seconds, default=10.0, metavar="S",
                        help="seconds to wait for each prompt (default 10)")


def _baud(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError("a baud rate is a positive whole number, got %r" % text)
    return value


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    # A NaN compares false with everything: "not 0 < value" refuses it too.
    if not 0 < value <= 24 * 3600:
        raise argparse.ArgumentTypeError("seconds from 0 (excluded) to 86400, got %r" % text)
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="modgate console",
        description="The box's serial console from this host: interactive (Ctrl-] quits) or scripted with --run.")
    add_arguments(parser)
    return parser


def main(argv=None):
    return run(build_parser().parse_args(argv))


def run(args):
    """The console client for parsed arguments (add_arguments'). Exit status."""
    if serial is None:
        sys.stderr.write("modgate console: pyserial is not installed (pip install pyserial, "
                         "or pip install -e . which brings it)\n")
        return 2
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    try:
        port = open_port(args.device, args.baud)
    except (serial.SerialException, ValueError, OSError) as err:
        sys.stderr.write("modgate console: cannot open %s: %s\n" % (args.device, err))
        return 2
    try:
        if args.run:
            return scripted(port, password, args.run, args.timeout)
        if password is not None:
            # Log in first, then hand the keyboard over at the prompt.
            try:
                ConsoleSession(port, args.timeout).login(password)
            except (ConsoleError, ConsoleTimeout) as err:
                sys.stderr.write("login failed: %s\n" % err)
                return 2
            port.write(b"\r")  # a fresh prompt for the user to see
        banner = "--- modgate console on %s at %d baud; quit: Ctrl-] ---" % (args.device, args.baud)
        return interactive(port, banner=banner)
    finally:
        port.close()


if __name__ == "__main__":
    sys.exit(main())
