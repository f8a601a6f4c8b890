"""The serial console: a line editor (editor.py) and a command shell
(shell.py), both sans-I/O, and here the small I/O side that joins them to a
UART from hal.uart (or MicroPython's machine.UART: read, write)."""

PASSWORD_FILE = "console.passwd"


class PasswordFile:
    """The console password's PBKDF2 record, one line in a file on the
    storage driver, replaced atomically (new file, fsync, rename)."""

    def __init__(self, storage, name=PASSWORD_FILE):
        self.storage = storage
        self.name = name

    def get(self):
        if not self.storage.exists(self.name):
            return None
        with self.storage.open_read(self.name) as f:
            return f.read().decode().strip() or None

    def set(self, record):
        temp = self.name + ".new"
        if self.storage.exists(temp):
            self.storage.remove(temp)
        f = self.storage.open_new(temp)
        try:
            f.write(record.encode() + b"\n")
            self.storage.sync(f)
        finally:
            f.close()
        self.storage.rename(temp, self.name)


def serve(uart, console, clock, idle_logout_s, stopped):
    """Run the console on a UART until stopped() or the console closes.
    uart.read(n) returns what arrived within its timeout: b"" or, on
    MicroPython's machine.UART, None if nothing did."""
    idle_ms = int(idle_logout_s * 1000)
    while not stopped() and not console.closed:
        try:
            data = uart.read(64) or b""
        except EOFError:
            break  # the other end hung up
        now = clock.monotonic_ns() // 1000000
        out = console.feed(data, now) if data else b""
        out += console.tick(now, idle_ms)
        if out:
            uart.write(out)
