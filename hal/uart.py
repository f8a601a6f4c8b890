"""UARTs: the byte stream the serial console runs over.

Every driver has the same small interface (machine.UART's, minus the pins):

    uart.read(n)      up to n bytes; fewer if fewer came; b'' on timeout
    uart.write(data)  writes all of data, returns len(data)
    uart.any()        how many bytes can be read without waiting
    uart.close()

read() waits at most ``timeout_s`` for the first byte (0: do not wait, None:
wait for ever) and
raises EOFError when the other end has gone (stdin closed, tty hung up), so
a console loop can tell silence from the end.

Drivers: StdioUART (the host board's stdin/stdout), TtyUART (a serial port
such as /dev/ttyAMA0, raw 8N1 through termios) and PtyPair (a pseudo-terminal
for tests: the master end as a UART, the slave end's path for a TtyUART).
POSIX only; pyserial is a host tool and stays out of the HAL.
"""

import errno
import fcntl
import os
import select
import struct
import termios


class _FdUART:
    """A UART on file descriptors: read from rfd, write to wfd."""

    def __init__(self, rfd, wfd, timeout_s=1.0):
        self._rfd = rfd
        self._wfd = wfd
        self.timeout_s = timeout_s
        self._poll = select.poll()
        self._poll.register(rfd, select.POLLIN)

    def read(self, n):
        wait_ms = -1 if self.timeout_s is None else int(self.timeout_s * 1000)
        if not self._poll.poll(wait_ms):
            return b""
        try:
            data = os.read(self._rfd, n)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno != errno.EIO:  # a pty master once the slave is closed
                raise
            data = b""
        if not data:
            raise EOFError("the other end of the UART is closed")
        return data

    def write(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._wfd, view) :]
            except BlockingIOError:
                select.select([], [self._wfd], [])
        return len(data)

    def any(self):
        # tty_ioctl(4): FIONREAD (TIOCINQ) is the input queue's byte count.
        buf = bytearray(4)
        try:
            fcntl.ioctl(self._rfd, termios.FIONREAD, buf)
        except OSError:  # not a tty, pipe or socket (a plain file)
            return 1 if self._poll.poll(0) else 0
        return struct.unpack("@i", buf)[0]

    def fileno(self):
        return self._rfd

    def close(self):
        fds = (self._rfd, self._wfd)
        self._rfd = self._wfd = -1
        for fd in set(fds):
            if fd >= 0:
                os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _make_raw(fd, baudrate=None):
    """Non-canonical, no echo, no signals, no CR/LF mapping (cfmakeraw(3)),
    8 data bits, no parity, 1 stop bit, no flow control, VMIN = VTIME = 0
    (read never blocks; poll() does the waiting). Returns the old settings."""
    old = termios.tcgetattr(fd)
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = old
    cc = list(cc)
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
               | termios.INLCR | termios.IGNCR | termios.ICRNL
               | termios.IXON | termios.IXOFF | termios.IXANY)
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.CSTOPB | termios.CRTSCTS)
    cflag |= termios.CS8 | termios.CREAD | termios.CLOCAL  # CLOCAL: ignore modem lines
    if baudrate is not None:
        ispeed = ospeed = _speed(baudrate)
    cc[termios.VMIN] = 0
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])
    return old


def _speed(baudrate):
    speed = getattr(termios, "B%d" % baudrate, None)
    if speed is None:
        raise ValueError("baud rate %r is not one termios knows" % (baudrate,))
    return speed


class TtyUART(_FdUART):
    """A serial port device (/dev/ttyAMA0, /dev/ttymxc1, /dev/ttyUSB0, a pty
    slave) in raw mode 8N1 at baudrate; its old settings come back on close."""

    def __init__(self, path, baudrate=115200, timeout_s=1.0):
        _speed(baudrate)  # a bad rate fails before the port is touched
        # O_NOCTTY: the port must not become the gateway's controlling
        # terminal; O_NONBLOCK: open() must not wait for carrier (DCD).
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            self._old = _make_raw(fd, baudrate)
        except BaseException:
            os.close(fd)
            raise
        self.path = path
        self.baudrate = baudrate
        _FdUART.__init__(self, fd, fd, timeout_s)

    def close(self):
        if self._rfd >= 0:
            try:
                termios.tcsetattr(self._rfd, termios.TCSANOW, self._old)
            except termios.error:
                pass  # the device went away; nothing to restore
        _FdUART.close(self)


class StdioUART(_FdUART):
    """The host board's console: stdin and stdout. raw=True puts a terminal
    on stdin in raw mode (the console then does its own echo and line
    editing, as on a serial line) and restores it on close. close() leaves
    the descriptors open; they are the process's."""

    def __init__(self, timeout_s=1.0, raw=False, stdin_fd=0, stdout_fd=1):
        self._old = None
        if raw and os.isatty(stdin_fd):
            self._old = _make_raw(stdin_fd)
        _FdUART.__init__(self, stdin_fd, stdout_fd, timeout_s)

    def close(self):
        if self._old is not None and self._rfd >= 0:
            termios.tcsetattr(self._rfd, termios.TCSANOW, self._old)
            self._old = None
        self._rfd = self._wfd = -1


class PtyPair:
    """A pseudo-terminal (pty(7)) for tests: ``master`` is a UART on the
    master side, ``path`` the slave device to open with TtyUART; what one
    end writes the other reads."""

    def __init__(self, timeout_s=1.0):
        master, slave = os.openpty()
        # Keep one slave descriptor open so the master never sees a hang-up
        # between the test's opens and closes of the slave path.
        self._slave = slave
        self.path = os.ttyname(slave)
        _make_raw(slave)  # raw before any byte: no echo back to the master
        self.master = _FdUART(master, master, timeout_s)

    def close(self):
        self.master.close()
        if self._slave >= 0:
            os.close(self._slave)
            self._slave = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
