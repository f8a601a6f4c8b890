"""Board support: which drivers a given box uses and with what limits.

A board file is data and wiring, not logic (Zephyr's boards/ and
CircuitPython's board module are the model): each board module holds one
dict, BOARD, and load() wraps it in a Board whose open_* methods build the
drivers it names.

    BOARD = {
        "name": "host",
        "description": "one line",
        "memory_budget_mib": 64,   # what modgate itself may use; the rest
                                   # of the RAM is the OS's
        "acquisition": {"driver": "sim" | "v4l2" | "replay", "width",
                        "height", "pixel", "rate": (num, den), ...
                        v4l2: "device"; replay: "path", "loop"},
        "nic": {"driver": "loopback" | "linux", "name": "eth0"},
        "console": {"driver": "stdio" | "tty", "device", "baudrate"},
        "storage": {"root": "/var/spool/modgate"},
        "clock": {"phc": None | "/dev/ptp0",
                  "realtime_priority": None | 1-99},  # the live stream's
                                   # sending thread (hal.clock realtime_thread)
        "serial_number": {"file": "/sys/..."},  # where the box's serial
                                   # number is, if it has one
    }

Drivers are imported when first opened, so loading a board never needs a
driver (or a device) the caller does not use.
"""

import os

NAMES = ("host", "qemu_virt", "imx8mp_gateway")


class Board:
    def __init__(self, name, data):
        self.name = name
        self.data = data
        self.memory_budget_mib = data["memory_budget_mib"]
        # One frame may take at most a quarter of the budget: the recorder
        # holds one, the live stream's mailbox one and the packetizer's
        # buffers about one more.
        self.max_frame_bytes = self.memory_budget_mib * 1024 * 1024 // 4
        self._serial = None  # device_serial_number(), read once

    def frame_length(self, pixel, width, height):
        """Bytes of one frame the acquisition drivers deliver (hal.acq)."""
        from hal.acq import frame_length

        return frame_length(pixel, width, height)

    def open_acquisition(self, width=None, height=None, pixel=None, rate=None, clock=None, paced=True):
        """The acquisition board, with the board's defaults overridden by
        any argument given (from the configuration). paced only applies to
        the simulated board; real hardware keeps its own time."""
        acq = self.data["acquisition"]
        width = acq["width"] if width is None else width
        height = acq["height"] if height is None else height
        pixel = acq["pixel"] if pixel is None else pixel
        rate = acq["rate"] if rate is None else rate
        driver = acq["driver"]
        if driver == "sim":
            from hal.acq.sim import SimBoard

            if clock is None and paced:
                clock = self.open_clock()
            return SimBoard(width, height, pixel, rate, clock=clock, paced=paced)
        if driver == "v4l2":
            from hal.acq.v4l2 import V4L2Board

            extra = {}
            for key in ("buffers", "timeout_s"):
                if key in acq:
                    extra[key] = acq[key]
            return V4L2Board(acq["device"], width, height, pixel, rate,
                             clock=clock or self.open_clock(), **extra)
        if driver == "replay":
            from hal.acq.replay import ReplayBoard

            if clock is None and paced:
                clock = self.open_clock()
            return ReplayBoard(acq["path"], width, height, pixel, rate, loop=acq.get("loop", False),
                               clock=clock, paced=paced)
        raise ValueError("board %s: unknown acquisition driver %r" % (self.name, driver))

    def open_nic(self):
        nic = self.data["nic"]
        if nic["driver"] == "loopback":
            from hal.nic import LoopbackNIC

            return LoopbackNIC()
        if nic["driver"] == "linux":
            from hal.nic import LinuxNIC

            return LinuxNIC(nic["name"])
        raise ValueError("board %s: unknown nic driver %r" % (self.name, nic["driver"]))

    def open_datagram_sender(self, dest, ttl=1):
        """A UDP sender towards dest (host, port) out of the board's NIC,
        for the PS3.22 flows (hal.udp: GSO bursts, DSCP AF41)."""
        from hal.udp import DatagramSender

        return DatagramSender(self.open_nic(), dest, ttl=ttl)

    def open_connection(self, host, port, timeout_s, network_timeout_s, tls=None):
        """A TCP connection (hal.tcp) for a DICOM association; tls: a
        context from open_tls, or None."""
        from hal.tcp import connect

        return connect(host, port, timeout_s, network_timeout_s, tls)

    def open_tls(self, ca_file=None, cert_file=None, key_file=None, verify=True):
        """A DICOM TLS client context (hal.tcp, PS3.15 B.9); ValueError or
        OSError when the files do not load."""
        from hal.tcp import tls_context

        return tls_context(ca_file, cert_file, key_file, verify)

    def open_listener(self, port, tls=None, host=""):
        """A listening TCP socket (hal.tcp.Listener) for associations peers
        open to the box; tls: a context from open_server_tls, or None."""
        from hal.tcp import listen

        return listen(host, port, tls)

    def open_server_tls(self, ca_file, cert_file, key_file, verify=True):
        """A DICOM TLS server context for the listener (hal.tcp)."""
        from hal.tcp import server_tls_context

        return server_tls_context(ca_file, cert_file, key_file, verify)

    def resolve(self, host):
        """The addresses of host (hal.tcp.resolve); OSError if none."""
        from hal.tcp import resolve

        return resolve(host)

    def open_codec(self, kind, width, height, pixel, rate, **settings):
        """An encoder of kind ("h264", "jpeg") with the driver this board has
        (data "codec"; hal.codec). CodecError when it cannot be had."""
        from hal.codec import CodecError, open_encoder

        driver = self.data.get("codec", {}).get(kind)
        if not driver:
            raise CodecError("board %s has no %s encoder" % (self.name, kind))
        return open_encoder(kind, width, height, pixel, rate, driver=driver, **settings)

    def reference_clock(self):
        """What the media clock is referenced to, for the SDPs
        (firmware/rtv/sdp.py reference_clock): (True, None) where the board
        has a PTP hardware clock (board data clock.phc), else (False, the
        MAC address of its NIC, or None)."""
        if self.data["clock"].get("phc"):
            return True, None
        return False, self._mac()

    def _mac(self):
        """The MAC address of the board's NIC as Linux shows it, or None."""
        try:
            return _read_line(_SYS_NET + self.data["nic"]["name"] + "/address")
        except (OSError, KeyError):
            return None

    @property
    def model_name(self):
        """What this box is a model of, for Manufacturer's Model Name
        (0008,1090): the board's name."""
        return self.name

    def device_serial_number(self):
        """The box's serial number, for Device Serial Number (0018,1000),
        Type 1 in the Enhanced General Equipment Module (PS3.3 C.7.5.2): the
        board data's serial_number file (a SoC's unique ID) when it reads
        as a LO value, else the MAC address of the board's NIC, else (the
        loopback's zeros: the development host) the first other interface's
        MAC, else "unknown". Not the OS's machine id: machine-id(5) asks
        not to show it, and deriving an ID from it (HMAC) would load
        OpenSSL's libcrypto, some 3.5 MiB, into a stream's process."""
        if self._serial is None:
            self._serial = self._read_serial_number()
        return self._serial

    def _read_serial_number(self):
        path = self.data.get("serial_number", {}).get("file")
        if path:
            try:
                value = _read_line(path)
                if _is_serial(value):
                    return value
            except OSError:
                pass
        candidates = [self._mac()]
        try:
            names = sorted(os.listdir(_SYS_NET))
        except OSError:
            names = []
        for name in names:
            try:
                candidates.append(_read_line(_SYS_NET + name + "/address"))
            except OSError:
                pass
        for mac in candidates:
            if mac and mac.strip("0:") and _is_serial(mac):
                return mac
        return "unknown"

    def open_console(self, timeout_s=1.0):
        console = self.data["console"]
        if console["driver"] == "stdio":
            from hal.uart import StdioUART

            return StdioUART(timeout_s)
        if console["driver"] == "tty":
            from hal.uart import TtyUART

            return TtyUART(console["device"], console.get("baudrate", 115200), timeout_s)
        raise ValueError("board %s: unknown console driver %r" % (self.name, console["driver"]))

    def open_storage(self, root=None):
        from hal.storage import PosixStorage

        return PosixStorage(self.data["storage"]["root"] if root is None else root)

    def open_clock(self):
        from hal.clock import SystemClock

        return SystemClock(self.data["clock"]["phc"], self.data["clock"].get("realtime_priority"))

    def __repr__(self):
        return "<Board %s>" % self.name


_SYS_NET = "/sys/class/net/"


def _read_line(path):
    with open(path) as f:
        return f.read().strip()


def _is_serial(value):
    """A value a LO element (PS3.5 6.2: 64 characters, no backslash or
    control characters) can carry as it is."""
    return 0 < len(value) <= 64 and all(" " <= c <= "~" and c != "\\" for c in value)


def load(name):
    if name not in NAMES:
        raise ValueError("unknown board %r; the boards are: %s" % (name, ", ".join(NAMES)))
    module = __import__("board." + name, None, None, ("BOARD",))
    return Board(name, module.BOARD)
