"""hal.uart on a real pseudo-terminal: TtyUART opens the slave side in raw
mode and talks to the master side, both ways, byte-exact."""

import fcntl
import os
import termios
import time

import pytest

from hal.uart import PtyPair, StdioUART, TtyUART
from tests.conftest import machine_lacks

# Every byte value, including the ones a cooked tty would act on: CR (ICRNL),
# ^C (ISIG), ^S/^Q (IXON), ^D (VEOF), DEL (VERASE).
ALL_BYTES = bytes(range(256))


@pytest.fixture
def pty():
    pair = PtyPair(timeout_s=2.0)
    port = TtyUART(pair.path, baudrate=115200, timeout_s=2.0)
    yield pair.master, port
    port.close()
    pair.close()


def read_exactly(uart, n):
    out = b""
    while len(out) < n:
        chunk = uart.read(n - len(out))
        assert chunk, "timed out after %d of %d bytes" % (len(out), n)
        out += chunk
    return out


def wait_any(uart, n, timeout_s=2.0):
    deadline = time.monotonic() + timeout_s
    while uart.any() < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return uart.any()


def test_tty_is_raw_8n1(pty):
    _, port = pty
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(port.fileno())
    assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)
    assert not iflag & (termios.ICRNL | termios.IXON | termios.IXOFF)
    assert not oflag & termios.OPOST
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & (termios.PARENB | termios.CSTOPB | termios.CRTSCTS)
    assert ispeed == ospeed == termios.B115200


def test_both_directions_byte_exact(pty):
    master, port = pty
    assert master.write(ALL_BYTES) == 256
    assert read_exactly(port, 256) == ALL_BYTES
    assert port.write(b"modgate> " + ALL_BYTES) == 265
    assert read_exactly(master, 265) == b"modgate> " + ALL_BYTES


def test_any_counts_waiting_bytes(pty):
    master, port = pty
    assert port.any() == 0
    master.write(b"status\r")
    assert wait_any(port, 7) == 7
    assert port.read(3) == b"sta"  # fewer than waiting: the rest stays
    assert port.any() == 4
    assert port.read(100) == b"tus\r"
    assert port.any() == 0


def test_read_timeout_returns_empty(pty):
    _, port = pty
    port.timeout_s = 0.2
    t0 = time.monotonic()
    assert port.read(10) == b""
    assert 0.15 < time.monotonic() - t0 < 1.5
    port.timeout_s = 0
    assert port.read(10) == b""


def test_hang_up_is_eof():
    pair = PtyPair(timeout_s=1.0)
    port = TtyUART(pair.path, timeout_s=1.0)
    pair.close()  # the master goes: the slave side is hung up
    with pytest.raises(EOFError):
        port.read(1)
    port.close()


def test_settings_restored_on_close():
    with PtyPair() as pair:
        fd = os.open(pair.path, os.O_RDWR | os.O_NOCTTY)
        attrs = termios.tcgetattr(fd)
        attrs[3] |= termios.ECHO | termios.ICANON  # cooked, as a getty leaves it
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        port = TtyUART(pair.path, baudrate=9600)
        assert not termios.tcgetattr(fd)[3] & (termios.ECHO | termios.ICANON)
        assert termios.tcgetattr(fd)[4] == termios.B9600
        port.close()
        assert termios.tcgetattr(fd)[3] & termios.ECHO
        assert termios.tcgetattr(fd)[3] & termios.ICANON
        os.close(fd)


def test_bad_baud_rate_and_missing_device():
    with pytest.raises(ValueError, match="baud rate"):
        TtyUART("/dev/null", baudrate=12345)
    with pytest.raises(FileNotFoundError):
        TtyUART("/dev/ttyNOSUCH")


def test_stdio_uart_on_a_pipe():
    rfd, wfd = os.pipe()
    out_r, out_w = os.pipe()
    uart = StdioUART(timeout_s=0.1, stdin_fd=rfd, stdout_fd=out_w)
    assert uart.read(4) == b""
    os.write(wfd, b"help\n")
    assert wait_any(uart, 5) == 5
    assert uart.read(100) == b"help\n"
    assert uart.write(b"ok\r\n") == 4
    assert os.read(out_r, 10) == b"ok\r\n"
    os.close(wfd)
    with pytest.raises(EOFError):
        uart.read(1)
    uart.close()  # leaves the descriptors to their owner
    for fd in (rfd, out_r, out_w):
        os.close(fd)


def test_pty_master_reports_each_hang_up_once_and_serves_the_next_connection():
    """The master side (the console of `modgate run --console pty`): the
    terminal program on the slave quits, the master raises EOFError once,
    then waits; what it wrote that nobody read is not the next one's."""
    with PtyPair(timeout_s=0.2) as pair:
        master = pair.master
        assert master.reconnects
        first = TtyUART(pair.path, timeout_s=0.2)
        first.write(b"hello")
        assert read_exactly(master, 5) == b"hello"
        master.write(b"a reply for the first one")  # never read
        first.close()
        with pytest.raises(EOFError):
            master.read(10)
        t0 = time.monotonic()
        assert master.read(10) == b""  # nobody there: silence, not another EOF
        assert master.read(10) == b""
        assert 0.3 < time.monotonic() - t0 < 3
        master.write(b"and one more")  # dropped: nobody there
        second = TtyUART(pair.path, timeout_s=0.3)
        assert second.read(100) == b""
        second.write(b"again")
        assert read_exactly(master, 5) == b"again"
        master.write(b"ok")
        assert read_exactly(second, 2) == b"ok"
        second.close()
        with pytest.raises(EOFError):
            master.read(10)


TIOCVHANGUP = 0x5437  # linux/asm-generic/ioctls.h: vhangup(2) on one tty


def test_tty_hang_up_is_eof_once_then_the_device_is_opened_again():
    """tty_hangup() (carrier lost, adapter unplugged, vhangup) leaves the
    descriptor dead: TtyUART raises EOFError once, opens the device again
    and drops what arrived while nobody was there."""
    with PtyPair(timeout_s=2.0) as pair:
        port = TtyUART(pair.path, timeout_s=0.2)
        assert port.reconnects
        other = os.open(pair.path, os.O_RDWR | os.O_NOCTTY)
        try:
            fcntl.ioctl(other, TIOCVHANGUP)
        except PermissionError as err:
            machine_lacks("vhangup", "TIOCVHANGUP: %s" % err)
        finally:
            os.close(other)
        with pytest.raises(EOFError):
            port.read(10)
        pair.master.write(b"typed to the one who left")
        time.sleep(0.1)
        assert port.read(100) == b""  # opened again, the old bytes dropped
        assert not termios.tcgetattr(port.fileno())[3] & termios.ICANON  # raw again
        pair.master.write(b"next")
        assert read_exactly(port, 4) == b"next"
        port.write(b"ok")
        assert read_exactly(pair.master, 2) == b"ok"
        port.close()


def test_tty_whose_device_is_gone_waits_for_it():
    pair = PtyPair(timeout_s=1.0)
    port = TtyUART(pair.path, timeout_s=0.1)
    pair.close()  # the device disappears (as an unplugged USB adapter)
    with pytest.raises(EOFError):
        port.read(1)
    assert port.read(1) == b"" and port.read(1) == b""
    assert port.any() == 0 and port.write(b"x") == 1
    port.close()
