"""UARTs: the byte stream the serial console runs over.

Every driver has the same small interface (machine.UART's, minus the pins):

    uart.read(n)      up to n bytes; fewer if fewer came; b'' on timeout
    uart.write(data)  writes all of data, returns len(data)
    uart.any()        how many bytes can be read without waiting
    uart.close()

read() waits at most ``timeout_s`` for the first byte (0: do not wait, None:
wait for ever) and raises EOFError when the other end has gone (stdin
closed, tty hung up), so a console loop can tell silence from the end.

A line can hang up and be connected again: ``uart.reconnects`` says so
(TtyUART, PtyPair's master). Such a UART raises EOFError once per hang-up,
drops what was still queued for the one who left, and then waits for the
next connection: reads return b'' (after timeout_s) until one comes, then
its bytes. A console that sees the EOFError ends the session there, so the
next person must log in. What a hang-up is:
  - on a tty: the kernel hangs it up (tty_hangup: the carrier dropped on a
    line with modem control, a USB serial adapter unplugged, vhangup(2));
    read gives end-of-file, poll POLLHUP, and the descriptor stays dead, so
    TtyUART opens the device again for the next connection;
  - on a pty master: the last descriptor of the slave side closed (the
    host's terminal program quit); read fails with EIO, poll gives POLLHUP
    until someone opens the slave again (pty(7)).
A line without modem signals (three-wire RS-232, QEMU's PL011) shows no
hang-up at all; there only logout and console.idle_logout end a session.

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
import time

REDIAL_S = 0.1  # while hung up: how often to look for the next connection

# The states of a line that reconnects.
CONNECTED = 0
HUNG_UP = 1  # the hang-up is not yet told (the next read raises EOFError)
WAITING = 2  # told; waiting for the next connection


class _FdUART:
    """A UART on file descriptors: read from rfd, write to wfd."""

    reconnects = False

    def __init__(self, rfd, wfd, timeout_s=1.0):
        self._rfd = rfd
        self._wfd = wfd
        self.timeout_s = timeout_s
        self._line = CONNECTED
        self._poll = select.poll()
        self._poll.register(rfd, select.POLLIN)

    def read(self, n):
        if self._line == HUNG_UP:
            self._line = WAITING
            raise EOFError("the line hung up")
        if self._line == WAITING and not self._wait_for_connection():
            return b""
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
            if self.reconnects:
                self._hung_up()
                self._line = WAITING
            raise EOFError("the other end of the UART is closed")
        return data

    def write(self, data):
        if self._line != CONNECTED:
            return len(data)  # nobody there: not kept for the next one
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._wfd, view) :]
            except BlockingIOError:
                select.select([], [self._wfd], [])
            except OSError as e:
                if e.errno != errno.EIO or not self.reconnects:
                    raise
                self._hung_up()  # a tty hung up while we wrote
                self._line = HUNG_UP
                break
        return len(data)

    def _wait_for_connection(self):
        """True once the next connection is there, False after timeout_s."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not self._connected_again():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            time.sleep(REDIAL_S if left is None else min(REDIAL_S, left))
        self._line = CONNECTED
        return True

    def _hung_up(self):
        """The line hung up: drop what the one who left did not read."""

    def _connected_again(self):
        return False

    def any(self):
        if self._line != CONNECTED:
            return 0
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
    slave) in raw mode 8N1 at baudrate; its old settings come back on close.
    After a hang-up it opens the device again for the next connection."""

    reconnects = True

    def __init__(self, path, baudrate=115200, timeout_s=1.0):
        _speed(baudrate)  # a bad rate fails before the port is touched
        self.path = path
        self.baudrate = baudrate
        fd, self._old = self._open()
        _FdUART.__init__(self, fd, fd, timeout_s)

    def _open(self):
        # O_NOCTTY: the port must not become the gateway's controlling
        # terminal; O_NONBLOCK: open() must not wait for carrier (DCD).
        fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            return fd, _make_raw(fd, self.baudrate)
        except BaseException:
            os.close(fd)
            raise

    def _hung_up(self):
        # tty_hangup() leaves this descriptor dead for good (read gives
        # end-of-file, write EIO): close it; _connected_again opens anew.
        if self._rfd >= 0:
            self._poll.unregister(self._rfd)
            os.close(self._rfd)
            self._rfd = self._wfd = -1

    def _connected_again(self):
        try:
            fd, _ = self._open()
        except OSError:  # the device is gone (unplugged): not yet
            return False
        # What the line held for the one who left, or that came while
        # nobody listened, is not the next person's.
        termios.tcflush(fd, termios.TCIOFLUSH)
        self._rfd = self._wfd = fd
        self._poll.register(fd, select.POLLIN)
        return True

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


class _PtyMaster(_FdUART):
    """The master side of a pty as a UART: the line is connected while some
    process has the slave side open (the host's terminal program), hung up
    when the last one closes it."""

    reconnects = True

    def __init__(self, fd, path, timeout_s):
        _FdUART.__init__(self, fd, fd, timeout_s)
        self.path = path

    def _hung_up(self):
        # What the master wrote that the slave side never read stays in the
        # slave's input queue and would greet the next one to open it (a
        # reply meant for the one who left): open the slave, flush it.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        finally:
            os.close(fd)

    def _connected_again(self):
        # pty(7): the master polls POLLHUP while no slave descriptor is open.
        return not any(events & select.POLLHUP for _, events in self._poll.poll(0))


class PtyPair:
    """A pseudo-terminal (pty(7)): ``master`` is a UART on the master side
    (the console of `modgate run --console pty`, as QEMU's -serial pty),
    ``path`` the slave device to open with TtyUART or a terminal program;
    what one end writes the other reads. The slave side may be opened and
    closed again and again: each close is a hang-up for the master."""

    def __init__(self, timeout_s=1.0):
        master, slave = os.openpty()
        self.path = os.ttyname(slave)
        _make_raw(slave)  # raw before any byte: no echo back to the master
        # The pty keeps these settings while the master is open; closing
        # our slave descriptor leaves the line hung up until someone opens it.
        os.close(slave)
        self.master = _PtyMaster(master, self.path, timeout_s)

    def close(self):
        self.master.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
