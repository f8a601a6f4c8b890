"""The serial console: a line editor (editor.py) and a command shell
(shell.py), both sans-I/O, the shell's view of the running gateway
(system.py), and here the small I/O side that joins them to a UART from
hal.uart (or MicroPython's machine.UART: read, write)."""

from firmware.config import write_atomic

PASSWORD_FILE = "console.passwd"
LOCKOUT_FILE = "console.lockout"  # login failures and the lock, beside the record


class PasswordFile:
    """The console password's PBKDF2 record, one line in a file on the
    storage driver, and beside it the login failures and the lock (so that
    a restart does not reset them), both replaced atomically."""

    def __init__(self, storage, name=PASSWORD_FILE, lockout_name=LOCKOUT_FILE):
        self.storage = storage
        self.name = name
        self.lockout_name = lockout_name

    def get(self):
        if not self.storage.exists(self.name):
            return None
        with self.storage.open_read(self.name) as f:
            return f.read().decode().strip() or None

    def set(self, record):
        write_atomic(self.storage, self.name, record.encode() + b"\n")

    def lockout(self):
        """(failures, lock length in ms); (0, 0) when none is kept. A
        damaged record raises ValueError (the shell then locks once)."""
        if not self.storage.exists(self.lockout_name):
            return 0, 0
        with self.storage.open_read(self.lockout_name) as f:
            words = f.read().decode().split()
        if len(words) != 2 or not words[0].isdigit() or not words[1].isdigit():
            raise ValueError("%s is damaged" % self.lockout_name)
        return int(words[0]), int(words[1])

    def set_lockout(self, failures, locked_ms):
        write_atomic(self.storage, self.lockout_name, ("%d %d\n" % (failures, locked_ms)).encode())


def serve(uart, console, clock, idle_logout_s, stopped):
    """Run the console on a UART until stopped() or the console closes.
    uart.read(n) returns what arrived within its timeout: b"" or, on
    MicroPython's machine.UART, None if nothing did; it raises EOFError
    when the line hangs up. The session ends there (console.hangup()); a
    UART whose `reconnects` is true (a tty, a pty) then waits for the next
    connection, which must log in again; any other (stdin closed) is done."""
    idle_ms = int(idle_logout_s * 1000)
    while not stopped() and not console.closed:
        try:
            data = uart.read(64) or b""
        except EOFError:
            console.hangup()
            if not getattr(uart, "reconnects", False):
                break
            continue
        now = clock.monotonic_ns() // 1000000
        out = console.feed(data, now) if data else b""
        out += console.tick(now, idle_ms)
        if out:
            uart.write(out)
