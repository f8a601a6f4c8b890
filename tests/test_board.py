"""board: every board loads; the host board's drivers open and work; the
hardware boards' data names real-looking devices (not opened here)."""

import socket

import pytest

import board
from board import imx8mp_gateway
from hal.acq import BYTES_PER_PIXEL, frame_length
from tests.reference import frame as reference_frame

SECTIONS = ("name", "description", "memory_budget_mib", "acquisition", "nic", "console", "storage", "clock")


@pytest.mark.parametrize("name", board.NAMES)
def test_every_board_loads(name):
    b = board.load(name)
    assert b.name == name == b.data["name"]
    for key in SECTIONS:
        assert key in b.data, (name, key)
    assert b.memory_budget_mib == b.data["memory_budget_mib"] > 0
    acq = b.data["acquisition"]
    assert acq["driver"] in ("sim", "v4l2")
    assert acq["pixel"] in BYTES_PER_PIXEL
    assert acq["width"] > 0 and acq["height"] > 0
    num, den = acq["rate"]
    assert num > 0 and den > 0
    # a few frames must fit the budget, or the board cannot record at all
    assert 4 * frame_length(acq["pixel"], acq["width"], acq["height"]) < b.memory_budget_mib << 20
    assert b.data["nic"]["driver"] in ("loopback", "linux")
    assert b.data["console"]["driver"] in ("stdio", "tty")
    assert b.data["storage"]["root"]


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        board.load("raspberrypi")
    for name in board.NAMES:
        assert name in str(info.value)
    assert "raspberrypi" in str(info.value)


def test_host_reads_a_frame_with_overrides():
    b = board.load("host")
    acq = b.open_acquisition(width=32, height=8, pixel="mono8", rate=(25, 1), paced=False)
    assert (acq.width, acq.height, acq.pixel, acq.rate) == (32, 8, "mono8", (25, 1))
    acq.start()
    frame = acq.read()
    acq.stop()
    assert frame.sequence == 0
    assert frame.data == reference_frame("mono8", 32, 8, 0)


def test_host_default_acquisition_is_paced_720p30():
    acq = board.load("host").open_acquisition()
    assert (acq.width, acq.height, acq.pixel, acq.rate) == (1280, 720, "rgb8", (30, 1))
    acq.start()
    first, second = acq.read(), acq.read()
    acq.stop()
    assert len(second.data) == 1280 * 720 * 3
    # paced by the system clock: a 30 fps frame period apart, give or take
    assert second.timestamp_ns - first.timestamp_ns >= 30000000


def test_host_nic_console_clock_storage(tmp_path):
    b = board.load("host")
    nic = b.open_nic()
    assert nic.name == "lo" and nic.link_up()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        nic.bind(s)
        assert s.getsockname()[0] == "127.0.0.1"
    console = b.open_console(timeout_s=0)
    assert hasattr(console, "read") and hasattr(console, "write") and hasattr(console, "any")
    console.close()
    clock = b.open_clock()
    assert clock.phc_ns() is None
    t0 = clock.monotonic_ns()
    assert clock.monotonic_ns() >= t0
    storage = b.open_storage(root=str(tmp_path / "spool"))
    assert storage.listdir("") == []


def test_hardware_boards_name_their_devices():
    qemu = board.load("qemu_virt").data
    assert qemu["acquisition"]["driver"] == "v4l2"
    assert qemu["acquisition"]["device"] == "/dev/video0"
    assert qemu["nic"] == {"driver": "linux", "name": "eth0"}
    assert qemu["console"]["device"] == "/dev/ttyAMA0"
    assert qemu["storage"]["root"] == "/var/spool/modgate"
    assert qemu["memory_budget_mib"] == 48

    imx = board.load("imx8mp_gateway")
    assert "not tested on hardware" in imx.data["description"]
    assert "NOT TESTED ON HARDWARE" in imx8mp_gateway.__doc__
    acq = imx.data["acquisition"]
    assert (acq["width"], acq["height"], acq["pixel"]) == (1920, 1080, "ycbcr422")
    assert acq["device"].startswith("/dev/video")
    assert imx.data["console"]["device"] == "/dev/ttymxc1"
    assert imx.data["clock"]["phc"] == "/dev/ptp0"
    assert imx.data["storage"]["root"].startswith("/data/")
    assert imx.memory_budget_mib == 256



def test_the_board_names_the_equipment(tmp_path, monkeypatch):
    """Manufacturer's Model Name and Device Serial Number (PS3.3 C.7.5.2,
    Type 1 in the real-time IODs) come from the board: its name, and its
    serial number file (a SoC's), else the MAC address of its NIC, else of
    another interface (the host's NIC is the loopback, all zeros), else
    "unknown"; a value a LO cannot carry (PS3.5 6.2) is not used."""
    net = tmp_path / "net"
    for name, mac in (("lo", "00:00:00:00:00:00"), ("eth1", "52:54:00:ab:cd:ef"), ("eth0", "52:54:00:12:34:56")):
        (net / name).mkdir(parents=True)
        (net / name / "address").write_text(mac + "\n")
    monkeypatch.setattr(board, "_SYS_NET", str(net) + "/")
    soc = tmp_path / "serial_number"
    soc.write_text("AB12CD34EF56\n")

    def serial(source, nic="lo"):
        data = dict(board.load("host").data, serial_number=source, nic={"driver": "linux", "name": nic})
        return board.Board("host", data).device_serial_number()

    assert board.load("host").model_name == "host"
    assert serial({"file": str(soc)}) == "AB12CD34EF56"
    assert serial({"file": str(tmp_path / "absent")}, "eth1") == "52:54:00:ab:cd:ef"
    assert serial({}) == "52:54:00:12:34:56"  # lo's zeros: the first other interface, by name
    soc.write_text("a\\b\n")  # a backslash cannot be in a LO value
    assert serial({"file": str(soc)}) == "52:54:00:12:34:56"
    monkeypatch.setattr(board, "_SYS_NET", str(tmp_path / "none") + "/")
    assert serial({}) == "unknown"
    host = board.load("host")
    assert host.device_serial_number() is host.device_serial_number()  # read once


@pytest.mark.parametrize("name", ["qemu_virt", "imx8mp_gateway"])
def test_v4l2_boards_wire_their_defaults(name):
    # V4L2Board opens its device in start(), so building one is safe here.
    b = board.load(name)
    acq = b.open_acquisition()
    want = b.data["acquisition"]
    assert type(acq).__name__ == "V4L2Board"
    assert (acq.device, acq.width, acq.height, acq.pixel, acq.rate) == (
        want["device"], want["width"], want["height"], want["pixel"], want["rate"])
    assert acq.buffers == want.get("buffers", acq.buffers)
    assert b.open_acquisition(width=320, height=180, rate=(15, 1)).width == 320
