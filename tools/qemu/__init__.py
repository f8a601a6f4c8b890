"""The QEMU runner: the emulated box (board/qemu_virt.py) from an image that
tools/image built.

    modgate emulate [--image DIR] [--disk FILE] [--console-pty LINK] [--timeout S]

boots the box, prints the host pty of its serial console and the boot
time, and runs until Ctrl-C or SIGTERM, then powers the box off cleanly.
Tests use the Emulator class, a context manager:

    with Emulator(image_dir, disk=path) as box:    # booted to the console
        subprocess.run(["modgate", "console", box.pty, "--password", ...])
        box.kill()                                  # a power cut
        box.boot()                                  # the same disk again

The machine (qemu-system-aarch64, TCG; no KVM on an x86 host):
  -M virt -cpu max,pauth-impdef=on -m 512   the box's memory budget
        (board/qemu_virt.py). pauth-impdef: Debian's arm64 kernel signs
        return addresses with pointer authentication, and emulating the
        architected QARMA cipher under TCG made boot 3x slower (20 s vs
        7 s to the console here); the IMPLEMENTATION DEFINED algorithm is
        QEMU's cheap one (docs/system/arm/cpu-features.rst).
  -serial pty          the PL011 UART, ttyAMA0 in the box: the console.
        QEMU prints "char device redirected to /dev/pts/N"; 7.2 makes no
        symlink, so --console-pty makes one.
  virtio-blk           the data partition (data.img, ext4): configuration,
        password, spool. A file on the host: it survives kill -9 of QEMU,
        which for the box is a power cut (what the box had not written
        out is lost, as its page cache would be).
  virtio-net, user-mode networking: the box is 10.0.2.15 and reaches the
        host's loopback services at 10.0.2.2.
  virtio-serial: hvc0, the box's kernel and init log, into a host file;
        and the port org.modgate.ctl, where "poweroff" asks /init to stop
        modgate, unmount the data partition and power off.
  virtio-rng           entropy for the box's first getrandom().
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_IMAGE = os.path.join(ROOT, "build", "image")
QEMU = "qemu-system-aarch64"
LOGIN_PROMPTS = (b"password: ", b"new password: ", b"modgate> ")
PTY_LINE = "char device redirected to "
# The console wakes on any byte and drops that byte; Ctrl-C also makes an
# awake console show its prompt again (firmware/console/shell.py
# _interrupt), without submitting a line. A CR instead would be an empty
# password, a wrong one, whose answer (after a PBKDF2 that takes seconds
# under TCG) could reach the console client after it has logged in.
WAKE = b"\x03"
WAKE_EVERY_S = 2.0


class EmulatorError(Exception):
    pass


def _die_with_parent():
    """In the QEMU child before exec: Linux's PR_SET_PDEATHSIG, so that QEMU
    gets SIGKILL if the process that started it dies without stopping it
    (a test run killed by a timeout must not leave a box running)."""
    import ctypes

    PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def qemu_binary():
    """The path of qemu-system-aarch64, or None."""
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        path = os.path.join(folder, QEMU)
        if os.access(path, os.X_OK):
            return path
    return None


class Emulator:
    """One box: an image folder (Image, initrd.gz) and a data disk, which
    persists across boots. boot() starts QEMU and waits for the console;
    stop() powers off cleanly; kill() is a power cut. Leaving the with
    block stops the box, and kills QEMU if anything went wrong."""

    def __init__(self, image=DEFAULT_IMAGE, disk=None, workdir=None, memory_mib=512, cpus=2,
                 append="", boot_timeout=120.0, console_link=None, quiet=True, forwards=()):
        self.image = image
        # (host port, box port): TCP connections to 127.0.0.1:host port reach
        # the box's port (user-mode networking's hostfwd; inside the box they
        # come from 10.0.2.2, the host's address there).
        self.forwards = list(forwards)
        self.disk = disk or os.path.join(image, "data.img")
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.append = append
        self.boot_timeout = boot_timeout
        self.console_link = console_link
        self.quiet = quiet
        self.workdir = workdir or tempfile.mkdtemp(prefix="modgate-qemu-")
        os.makedirs(self.workdir, exist_ok=True)
        self.ctl_path = os.path.join(self.workdir, "ctl.sock")
        if len(self.ctl_path) > 100:
            # sockaddr_un holds 108 bytes: a short private folder instead.
            self.ctl_path = os.path.join(tempfile.mkdtemp(prefix="modgate-ctl-"), "ctl.sock")
        self.log_path = os.path.join(self.workdir, "box.log")  # hvc0, appended across boots
        self.qemu_log = os.path.join(self.workdir, "qemu.log")
        self.proc = None
        self.pty = None
        self.boot_s = None
        self.boots = 0

    # -- the QEMU process ---------------------------------------------------
    def command(self):
        def path(p):
            return p.replace(",", ",,")  # QEMU's option syntax: a comma in a value is doubled

        ctl = path(self.ctl_path)
        append = "console=hvc0 quiet " + self.append
        return [
            qemu_binary() or QEMU, "-M", "virt", "-cpu", "max,pauth-impdef=on", "-smp", str(self.cpus),
            "-m", str(self.memory_mib), "-nographic", "-no-user-config",
            "-kernel", os.path.join(self.image, "Image"), "-initrd", os.path.join(self.image, "initrd.gz"),
            "-append", append.strip(),
            "-serial", "pty", "-monitor", "none",
            "-drive", "file=%s,if=none,format=raw,id=data,cache=writeback" % path(self.disk),
            "-device", "virtio-blk-device,drive=data",
            "-netdev", "user,id=net0" + "".join(",hostfwd=tcp:127.0.0.1:%d-:%d" % f for f in self.forwards),
            "-device", "virtio-net-device,netdev=net0",
            "-device", "virtio-serial-device",
            "-chardev", "file,id=log,path=%s,append=on" % path(self.log_path), "-device", "virtconsole,chardev=log",
            "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % ctl,
            "-device", "virtserialport,chardev=ctl,name=org.modgate.ctl",
            "-device", "virtio-rng-device",
        ]

    def start(self):
        """Start QEMU and learn the console pty; does not wait for the box."""
        if self.proc is not None:
            raise EmulatorError("the box is already running")
        if qemu_binary() is None:
            raise EmulatorError("%s is not installed (Debian: apt-get install qemu-system-arm)" % QEMU)
        for name in ("Image", "initrd.gz"):
            if not os.path.exists(os.path.join(self.image, name)):
                raise EmulatorError("no %s in %s: build it with modgate image build --out %s"
                                    % (name, self.image, self.image))
        if not os.path.exists(self.disk):
            raise EmulatorError("no data disk %s" % self.disk)
        self.started = time.monotonic()
        with open(self.qemu_log, "wb") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        self.boots += 1
        deadline = time.monotonic() + 30
        while self.pty is None:
            with open(self.qemu_log, "r", errors="replace") as f:
                for line in f:
                    if PTY_LINE in line:
                        self.pty = line.split(PTY_LINE, 1)[1].split()[0]
            if self.pty:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise EmulatorError("QEMU gave no console pty: %s" % self.qemu_output())
            time.sleep(0.05)
        if self.console_link:
            tmp = self.console_link + ".new"
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.symlink(self.pty, tmp)
            os.replace(tmp, self.console_link)
        return self.pty

    def wait_for_console(self, timeout=None, since=None):
        """Wake the console with WAKE (at most every WAKE_EVERY_S) until it
        shows a login or command prompt; returns the seconds from since
        (default: QEMU's start, i.e. the boot time) to the prompt. The pty
        is closed again, free for the console client."""
        since = self.started if since is None else since
        deadline = since + (timeout or self.boot_timeout)
        fd = os.open(self.pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            attrs = termios.tcgetattr(fd)
            # Raw, as pyserial sets it: no echo of the box's output back to it.
            attrs[0] = attrs[1] = attrs[3] = 0
            attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            seen = b""
            last_wake = 0.0
            while True:
                now = time.monotonic()
                if self.proc.poll() is not None:
                    raise EmulatorError("QEMU exited (%s) during boot: %s\n%s" % (
                        self.proc.returncode, self.qemu_output(), self.box_log()[-3000:]))
                if now > deadline:
                    raise EmulatorError("no console prompt within %.0f s; box log:\n%s"
                                        % (now - since, self.box_log()[-3000:]))
                if now - last_wake >= WAKE_EVERY_S:
                    # Again only after WAKE_EVERY_S without any answer: the
                    # box was not listening yet.
                    os.write(fd, WAKE)
                    last_wake = now
                try:
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    chunk = b""
                except OSError:  # EIO: QEMU's end not ready yet
                    chunk = b""
                if chunk:
                    last_wake = now
                    seen = (seen + chunk)[-4096:]
                    if seen.endswith(LOGIN_PROMPTS):
                        break
                else:
                    time.sleep(0.05)
        finally:
            os.close(fd)
        seconds = time.monotonic() - since
        if since == self.started:
            self.boot_s = seconds
        return seconds

    def boot(self):
        """Start QEMU and wait for the console; QEMU is killed if that fails."""
        try:
            self.start()
            self.wait_for_console()
        except BaseException:
            self.kill()
            raise
        if not self.quiet:
            print("modgate emulate: console on %s; booted to the console prompt in %.1f s" % (self.pty, self.boot_s))
        return self.boot_s

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """A power cut: SIGKILL to QEMU, nothing written out."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._reap()

    def stop(self, timeout=30.0):
        """Power off cleanly: the box's init stops modgate (SIGTERM: the clip
        under way is committed, the C-STORE under way completes), unmounts
        the data partition and powers off, which ends QEMU. If it does not
        within timeout, QEMU is killed. True if the box powered off."""
        if self.proc is None:
            return True
        clean = False
        if self.proc.poll() is None:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(self.ctl_path)
                    s.sendall(b"poweroff\n")
                    try:
                        self.proc.wait(timeout)
                        clean = True
                    except subprocess.TimeoutExpired:
                        pass
            except OSError:
                pass
        else:
            clean = True
        self.kill()
        return clean

    def _reap(self):
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        self.pty = None
        if self.console_link and os.path.islink(self.console_link):
            os.remove(self.console_link)

    # -- what the box said ----------------------------------------------------
    def box_log(self):
        """The box's hvc0 log (kernel, init, modgate's log lines), all boots."""
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def qemu_output(self):
        try:
            with open(self.qemu_log, "r", errors="replace") as f:
                return f.read().strip()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text, timeout=60.0, after=0):
        """Wait until text appears in the box log past offset after; returns
        the offset just past it."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.box_log()
            at = log.find(text, after)
            if at >= 0:
                return at + len(text)
            if time.monotonic() > deadline:
                raise EmulatorError("%r not in the box log within %.0f s; its end:\n%s" % (text, timeout, log[-3000:]))
            if not self.running():
                raise EmulatorError("QEMU is not running; %r not in the box log:\n%s" % (text, log[-3000:]))
            time.sleep(0.2)

    def __enter__(self):
        self.boot()
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.stop()
        else:
            self.kill()
        return False


def add_arguments(sub):
    """The `emulate` subcommand of modgate's command line (tools/cli.py)."""
    p = sub.add_parser("emulate", help="boot the emulated ARM box (QEMU) from an image; its console on a host pty")
    p.add_argument("--image", default=DEFAULT_IMAGE, metavar="DIR",
                   help="folder that modgate image build wrote (default build/image)")
    p.add_argument("--disk", metavar="FILE", help="data partition (default DIR/data.img); it persists across runs")
    p.add_argument("--console-pty", metavar="LINK", help="make LINK a symlink to the console's pty")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="boot time limit (default 120 s)")
    p.add_argument("--append", default="", metavar="ARGS", help="more kernel command line (e.g. modgate.selftest=v4l2)")
    p.set_defaults(func=main)
    return p


def main(args):
    box = Emulator(args.image, disk=args.disk, append=args.append, boot_timeout=args.timeout,
                   console_link=args.console_pty)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        box.start()
        print("modgate emulate: QEMU pid %d; console on %s%s; box log %s" % (
            box.proc.pid, box.pty, " (link %s)" % args.console_pty if args.console_pty else "", box.log_path),
            flush=True)
        box.wait_for_console()
        print("modgate emulate: booted to the console prompt in %.1f s; Ctrl-C powers the box off" % box.boot_s,
              flush=True)
        while box.running() and not stopping:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    except EmulatorError as err:
        box.kill()
        sys.stderr.write("modgate emulate: error: %s\n" % err)
        return 1
    except BaseException:
        box.kill()
        raise
    if not box.running():
        print("modgate emulate: the box powered off")
        box.kill()
        return 0
    clean = box.stop()
    print("modgate emulate: %s" % ("powered off" if clean else "did not power off in time: QEMU killed"))
    return 0 if clean else 1
