"""System tests of the emulated box (tools/image, tools/qemu): the image
built from Debian's arm64 packages boots under QEMU (TCG) to the console on
a host pty; the console client configures it; vivid's /dev/video0 is
captured through hal/acq/v4l2.py; clips reach DCMTK storescp on the host
through user-mode networking; power cuts (SIGKILL to QEMU) during a
recording and during a send lose nothing and send nothing partial; garbage
on the serial line does not kill the console.

Selected with -m qemu. Where qemu-system-aarch64 is missing they fail
(.ci/run installs it), unless MODGATE_MAY_SKIP lists qemu (tests/conftest.py)."""

import os
import random
import re
import socket
import threading
import time

import pydicom
import pytest

from tests.conftest import ROOT, Storescp, dciodvfy, free_port, machine_lacks, modgate
from tests.test_mpps import mpps_scp  # noqa: F401 (a fixture)
from tools.qemu import Emulator, qemu_binary

pytestmark = pytest.mark.qemu

PASSWORD = "box-secret-1"
BOOT_BAR_S = 60.0  # the bar for boot to the console prompt under TCG; the target is 30
QUEUED = re.compile(r"clip \d+ \((\d+) frames\) queued as (\S+), SOP Instance UID (\S+)")


_reporter = []


@pytest.fixture(scope="session", autouse=True)
def _terminal(request):
    _reporter.append(request.config)
    yield
    _reporter.clear()


def report(message):
    """A line on the terminal, also without -s: the boot time and what the
    box did belong in CI's log."""
    config = _reporter[0] if _reporter else None
    reporter = config and config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        print(message)
        return
    with config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        reporter.write_line("emulated box: " + message)


@pytest.fixture(scope="session")
def image():
    """The box's image, built once per test run (the builder reuses an
    image made from the same packages and sources, and caches downloads)."""
    if qemu_binary() is None:
        machine_lacks("qemu", "qemu-system-aarch64 is not installed")
    from tools.image.build import BuildError, build

    out = os.path.join(ROOT, ".cache", "image", "test-qemu_virt")
    started = time.monotonic()
    try:
        manifest = build("qemu_virt", out)
    except BuildError as err:
        pytest.fail("image build failed: %s" % err)
    report("image %s: %s in %.1f s, initrd %.1f MB" % (
        out, "reused" if manifest.get("reused") else "built", time.monotonic() - started,
        manifest["initrd_bytes"] / 1e6))
    return out


def fresh_disk(tmp_path, config=None):
    """A data partition as from the factory, or with this modgate.json."""
    from tools.image.build import make_data_disk

    return make_data_disk(str(tmp_path / "data.img"), "qemu_virt", config=config)


def console(box, *commands, timeout=90):
    """modgate console DEVICE --password PW --run CMD ...: the scripted
    client, as a user runs it; returns its output, fails on a bad exit."""
    args = ["console", box.pty, "--password", PASSWORD, "--timeout", "60"]
    for command in commands:
        args += ["--run", command]
    result = modgate(*args, timeout=timeout)
    assert result.returncode == 0, "console %s: exit %d\n%s\n%s\nbox log:\n%s" % (
        commands, result.returncode, result.stdout, result.stderr, box.box_log()[-3000:])
    return result.stdout


class Session:
    """One logged-in console session over pyserial, for commands whose
    timing matters (record start ... record stop)."""

    def __init__(self, box):
        from tools.console_client import ConsoleSession, open_port

        self.port = open_port(box.pty, 115200)
        self.session = ConsoleSession(self.port, timeout=60)
        self.session.login(PASSWORD)

    def run(self, command):
        return self.session.run(command)

    def close(self):
        try:
            self.session.logout()
        finally:
            self.port.close()


def boot(box):
    seconds = box.boot()
    report("boot %d: console prompt %.1f s after starting QEMU" % (box.boots, seconds))
    assert seconds < BOOT_BAR_S
    return seconds


def queued_clips(box, after=0):
    """[(frames, spool name, SOP Instance UID)] from the box's log."""
    return [(int(f), name, uid) for f, name, uid in QUEUED.findall(box.box_log()[after:])]


def wait_files(scp, count, timeout, box):
    deadline = time.monotonic() + timeout
    while len(scp.files()) < count:
        if time.monotonic() > deadline:
            pytest.fail("%d of %d objects arrived within %.0f s; box log:\n%s"
                        % (len(scp.files()), count, timeout, box.box_log()[-3000:]))
        time.sleep(0.5)
    time.sleep(1)  # storescp writes the file as it receives: let the last one finish
    return scp.files()


def check_object(path, frames, width, height):
    """A whole Video Endoscopic object from vivid: dciodvfy finds no
    error, the frame count is what the box logged, the pixels are there
    and not flat."""
    errors, _ = dciodvfy(path)
    assert errors == [], (path, errors)
    ds = pydicom.dcmread(path)
    assert (ds.Rows, ds.Columns, int(ds.NumberOfFrames)) == (height, width, frames)
    assert ds.SamplesPerPixel == 3 and ds.PhotometricInterpretation == "RGB"
    assert len(ds.PixelData) == width * height * 3 * frames
    # vivid's default pattern is 75% colour bars (0 and 0xBF per channel):
    # several colours across a row; one colour would mean empty buffers.
    row = ds.PixelData[width * 3 * (height // 2): width * 3 * (height // 2 + 1)]
    colours = set(row[i:i + 3] for i in range(0, len(row), 3))
    assert len(colours) >= 4, colours
    return ds


def record_for(box, seconds):
    """record start, a wait, record stop on the box's console."""
    session = Session(box)
    try:
        assert session.run("record start") == ["recording"]
        time.sleep(seconds)
        session.run("record stop")
    finally:
        session.close()


def record_one_clip(box, scp, seconds=2, timeout=120):
    """record_for(); the one clip the box queued, stored and received:
    (frames, spool name, UID, path)."""
    mark = len(box.box_log())
    record_for(box, seconds)
    deadline = time.monotonic() + timeout
    while not queued_clips(box, mark) and time.monotonic() < deadline:
        time.sleep(0.5)
    clips = queued_clips(box, mark)
    assert len(clips) == 1, box.box_log()[mark:]
    [(frames, name, uid)] = clips
    box.wait_for_log("sender: %s stored" % name, timeout=timeout, after=mark)
    [path] = wait_files(scp, 1, 30, box)
    return frames, name, uid, path


@pytest.fixture(scope="module")
def box(image, tmp_path_factory):
    """One box for the first tests: booted with the in-box V4L2 self-test."""
    folder = tmp_path_factory.mktemp("box")
    emulator = Emulator(image, disk=fresh_disk(folder), workdir=str(folder / "qemu"), append="modgate.selftest=v4l2,v4l2m2m")
    try:
        boot(emulator)
        yield emulator
    finally:
        clean = emulator.stop()
        report("box powered off %s" % ("cleanly" if clean else "by SIGKILL (no clean power-off in time)"))


def test_v4l2_on_vivid_inside_the_box(box):
    """The V4L2 driver's tests against a real device (tools/image/selftest.py:
    the host's kernel has no V4L2), run in the box at boot."""
    log = box.box_log()
    assert "selftest v4l2 capture_from_a_real_device: ok" in log, log
    assert "selftest v4l2 refuses_a_size_it_cannot_give: ok" in log, log
    assert "selftest v4l2 done: 2 of 2 checks ok" in log, log


def test_v4l2_m2m_queues_on_a_multiplanar_vivid_inside_the_box(box):
    """The M2M encoder driver's whole sequence on vicodec (built for the
    image: Debian ships no M2M encoder), and its queues, format and
    conversion on vivid's multi-planar output and capture nodes, and the
    capture driver on that multi-planar capture node, the kind of node the
    i.MX 8M Plus ISI is (tools/image/selftest.py v4l2m2m)."""
    log = box.box_log()
    for line in log.splitlines():
        if line.startswith("selftest v4l2m2m"):
            report(line)
    for check in ("encodes_and_drains_on_vicodec", "no_encoder_is_claimed", "output_queue_takes_converted_frames",
                  "capture_queue_gives_planes", "capture_from_a_multiplanar_device"):
        assert "selftest v4l2m2m %s: ok" % check in log, log
    assert "selftest v4l2m2m done: 5 of 5 checks ok" in log, log


def test_configure_over_the_console_record_from_vivid_into_storescp(box, tmp_path):
    scp = Storescp(tmp_path / "rx")
    try:
        # Uncompressed: the test checks vivid's pixels (the H.264 test below
        # checks the compressed path).
        out = console(box, "set pacs.host 10.0.2.2", "set pacs.port %d" % scp.port, "set clip.mode command",
                      "set clip.transfer_syntax explicit", "save", "show pacs")
        assert "saved and applied" in out and "10.0.2.2" in out
        frames, name, uid, path = record_one_clip(box, scp)
        assert name == "000000000001.dcm"
    finally:
        scp.stop()
    ds = check_object(path, frames, 640, 480)  # board/qemu_virt.py: 640x480 rgb8 at 25 fps
    assert ds.SOPInstanceUID == uid and ds.Modality == "ES"
    report("clip of %d frames (%.1f MB) from vivid stored and verified" % (frames, os.path.getsize(path) / 1e6))


def test_a_worklist_procedure_from_the_host_on_the_box(box, tmp_path):
    """The box asks a wlmscpfs on the host (10.0.2.2) for today's
    procedures, the technician selects one on the console, and the clip
    recorded from vivid carries its patient, study and request, and passes
    dciodvfy."""
    from tests.test_worklist import Wlmscpfs, worklist_item

    today = time.strftime("%Y%m%d", time.gmtime())  # the box's clock is the host's, in UTC
    wl = Wlmscpfs(tmp_path / "db", "WLM")
    worklist_item(wl.folder / "a.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100", date=today)
    scp = Storescp(tmp_path / "rx")
    try:
        port = wl.start()
        out = console(box, "set pacs.host 10.0.2.2", "set pacs.port %d" % scp.port, "set clip.mode command",
                      "set clip.transfer_syntax explicit", "set worklist.host 10.0.2.2", "set worklist.port %d" % port, "set worklist.ae_title WLM",
                      "set worklist.refresh 0", "save",
                      "worklist refresh", "worklist select 1")
        assert "1 items" in out and "Müller^Jürgen" in out, out
        assert "procedure: Müller^Jürgen, ID P100, accession A100" in out, out
        frames, name, uid, path = record_one_clip(box, scp)
        console(box, "exam end", "unset worklist.host", "unset worklist.refresh", "save")
    finally:
        scp.stop()
        wl.stop()
    ds = check_object(path, frames, 640, 480)
    assert ds.SOPInstanceUID == uid and str(ds.PatientName) == "Müller^Jürgen" and ds.PatientID == "P100"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.77.100" and ds.AccessionNumber == "A100"
    assert ds.RequestAttributesSequence[0].ScheduledProcedureStepID == "SPS1"
    report("worklist procedure selected on the box; its clip of %d frames carries it" % frames)


def test_an_h264_clip_from_vivid_on_the_box(box, tmp_path):
    """clip.transfer_syntax h264 on the box: the clip from vivid goes through
    libx264 (arm64, through ctypes) into the spool and to a storescp that
    prefers H.264 (+xn); FFmpeg decodes every frame; the object passes
    dciodvfy."""
    from tests.test_codec import bitstream, probe

    scp = Storescp(tmp_path / "rx", "+xn")
    try:
        out = console(box, "set pacs.host 10.0.2.2", "set pacs.port %d" % scp.port, "set clip.mode command",
                      "set clip.transfer_syntax h264", "save")
        assert "saved and applied" in out, out
        frames, name, uid, path = record_one_clip(box, scp)
        console(box, "unset clip.transfer_syntax", "save")
    finally:
        scp.stop()
    errors, _ = dciodvfy(path)
    assert errors == [], errors
    ds, stream = bitstream(path)
    assert ds.SOPInstanceUID == uid and int(ds.NumberOfFrames) == frames
    (tmp_path / "clip.264").write_bytes(stream)
    info = probe(tmp_path / "clip.264")
    assert (info["profile"], info["width"], info["height"], info["nb_read_frames"]) == ("High", "640", "480",
                                                                                       str(frames)), info
    report("H.264 clip of %d frames from vivid on the box: %d bytes (%.0f:1)" % (
        frames, len(stream), frames * 640 * 480 * 3 / len(stream)))


def test_console_survives_garbage_on_the_serial_line(box):

    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(3000))
    garbage += b"\x1b[A\x1b[1;5D\x1b]0;title\x07\x00\xff\xfe" + b"x" * 2000 + b"\r" + b"\x03\x15\x7f\x08" * 50
    session = Session(box)
    try:
        for i in range(0, len(garbage), 256):
            session.port.write(garbage[i:i + 256])
        session.port.flush()
        # Let the box work through it: wait for 3 s without output.
        quiet_since = time.monotonic()
        deadline = quiet_since + 60
        while time.monotonic() - quiet_since < 3 and time.monotonic() < deadline:
            if session.port.read(4096):
                quiet_since = time.monotonic()
    finally:
        session.close()
    out = console(box, "status", "get pacs.host")
    assert "board      qemu_virt" in out and "10.0.2.2" in out
    assert "modgate exited" not in box.box_log()  # the same process answers: it did not crash and restart


def test_stream_start_to_a_receiver_on_the_host(box):
    """The console's stream start: the box streams vivid's frames (PS3.22:
    ST 2110-20 video and the DICOM metadata flow) by unicast through
    user-mode networking to 10.0.2.2, which QEMU hands to the host's
    loopback, where modgate's receiver takes both flows from the SDPs a
    receiver would be given. TCG runs the box far slower than a real one,
    so frames may be skipped at the source (counted by the box); what
    arrives has to be whole, with a metadata payload for each frame."""
    import io

    from firmware.rtv import nmos
    from firmware.rtv.sdp import metadata_sdp, video_sdp
    from tests.test_rtv import _free_rtp_port
    from tools.rtv_receiver import Receiver

    port = _free_rtp_port()
    video = video_sdp("127.0.0.1", port, 640, 480, (25, 1), "RGB", 8)  # board/qemu_virt.py's 640x480 rgb8
    meta = metadata_sdp("127.0.0.1", port + 2)
    frames, payloads = [], []
    receiver = Receiver(video, meta, on_frame=lambda ts, data: frames.append((ts, data)),
                        on_payload=lambda ts, data, ext: payloads.append((ts, data, ext)))
    try:
        out = console(box, "set rtv.host 10.0.2.2", "set rtv.port %d" % port,
                      "set rtv.metadata_port %d" % (port + 2), "save")
        assert "saved and applied" in out, out
        mark = len(box.box_log())
        out = console(box, "stream start")
        assert "streaming to 10.0.2.2:%d" % port in out, out
        got = receiver.run(seconds=60, frames=10, idle=10)
        status = console(box, "status")
        assert "stream     on" in status, status + "\nbox log:\n" + box.box_log()[mark:][-3000:]
        assert "streaming stopped" in console(box, "stream stop")
        box.wait_for_log("stream stopped:", timeout=30, after=mark)
    finally:
        receiver.close()
    log = box.box_log()[mark:]
    stopped = re.search(r"stream stopped: (\d+) frames, (\d+) late, (\d+) skipped, (\d+) frame slots missed, "
                        r"(\d+) datagrams dropped", log)
    report("stream through user-mode networking: %d frames received whole, %d metadata payloads; the box: %s"
           % (got["video"]["frames"], got["metadata"]["frames"], stopped.group(0)))
    assert got["video"]["frames"] >= 10, (got, log[-3000:])
    # Nothing lost on the way and nothing partial: every frame that
    # arrived is whole and carries its metadata, with the same timestamp.
    assert got["video"]["lost"] == 0 and got["video"]["incomplete"] == 0, got
    assert got["metadata"]["lost"] == 0 and got["metadata"]["unmatched_timestamps"] == 0, got
    assert got["metadata"]["missing_extension"] == 0, got
    # The pixels are vivid's colour bars, not empty buffers.
    _, data = frames[-1]
    row = data[640 * 3 * 240: 640 * 3 * 241]
    assert len(set(row[i:i + 3] for i in range(0, len(row), 3))) >= 4
    # The first payload carries the static part: the Video Endoscopic
    # real-time SOP Class and the box's patient attributes.
    ds = pydicom.dcmread(io.BytesIO(payloads[0][1]), force=True)
    assert ds.file_meta[0x00020032].value == "1.2.840.10008.10.1"
    assert "PatientName" in ds and ds.SOPClassUID == "1.2.840.10008.10.1"
    assert payloads[0][2][nmos.FLOW_ID] == ds.file_meta[0x00020036].value
    # The box counted what it sent: at least what arrived.
    assert int(stopped.group(1)) >= got["video"]["frames"]


def test_peak_memory_within_the_board_budget(box):
    """At a clean power-off the box's init logs modgate's VmHWM (peak RSS),
    which has to fit board/qemu_virt.py's memory budget after a 640x480
    clip was recorded and sent."""
    import board

    asked = time.monotonic()
    assert box.stop(), "no clean power-off:\n" + box.box_log()[-3000:]
    report("clean power-off in %.1f s" % (time.monotonic() - asked))
    assert "data partition unmounted" in box.box_log()
    found = re.search(r"modgate VmHWM: (\d+) kB", box.box_log())
    assert found, box.box_log()[-3000:]
    peak_mib = int(found.group(1)) / 1024
    budget = board.load("qemu_virt").memory_budget_mib
    report("modgate's peak RSS in the box: %.1f MiB (budget %d MiB)" % (peak_mib, budget))
    assert peak_mib < budget


def test_modgate_emulate_command_line(image, tmp_path):
    """modgate emulate: prints the console's pty (and links it) and the boot
    time, serves until SIGTERM, then powers the box off cleanly."""
    import signal
    import subprocess
    import sys

    link = str(tmp_path / "console")
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "emulate", "--image", image,
                             "--disk", fresh_disk(tmp_path), "--console-pty", link],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while not any("booted to the console prompt" in l for l in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())
        assert os.path.islink(link) and os.readlink(link).startswith("/dev/pts/"), lines
        assert re.search(r"console on /dev/pts/\d+ \(link %s\)" % re.escape(link), lines[0]), lines
        result = modgate("console", link, "--password", PASSWORD, "--timeout", "60", "--run", "status", timeout=90)
        assert result.returncode == 0 and "board      qemu_virt" in result.stdout, result
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()  # the QEMU child dies with it (PR_SET_PDEATHSIG)
            proc.wait()
    lines.append(out)
    report(lines[1].strip())
    assert proc.returncode == 0 and "modgate emulate: powered off" in out, lines
    assert not os.path.lexists(link)


class Relay:
    """A TCP relay on the host between the box and storescp, counting what
    the box sends and optionally slowing it down: a send under way is then
    long enough to pull the plug in the middle of it. Nothing is answered
    by the relay itself; storescp does all the DICOM."""

    def __init__(self, upstream_port, rate_bps=None):
        self.upstream_port = upstream_port
        self.rate_bps = rate_bps
        self.forwarded = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src, dst, from_box):
        try:
            while True:
                data = src.recv(16384 if from_box and self.rate_bps else 65536)
                if not data:
                    break
                dst.sendall(data)
                if from_box:
                    self.forwarded += len(data)
                    if self.rate_bps:
                        time.sleep(len(data) / self.rate_bps)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopped = True
        try:
            # Wakes the accept() under way; close() alone would leave the
            # socket listening until a connection came.
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            s.close()


def test_power_cuts_during_a_recording_and_during_a_send_lose_nothing(image, tmp_path):
    """Clip A is recorded while the PACS is down; the plug is pulled while
    clip B is being recorded. After the reboot, B's partial file is
    discarded and A waits; clip C is recorded; the plug is pulled again in
    the middle of A's C-STORE. After the second reboot A and C arrive,
    whole, and nothing else does."""
    width, height = 320, 180  # smaller frames than the board's: a quicker test
    down = free_port()  # nothing listens there: the PACS is down
    # The configuration comes on the data partition, as a box's installer
    # would put it there (acquisition settings apply from the next session).
    box = Emulator(image, workdir=str(tmp_path / "qemu"), disk=fresh_disk(tmp_path, {
        "board": "qemu_virt", "clip": {"mode": "command", "transfer_syntax": "explicit"},
        "acquisition": {"width": width, "height": height, "rate": [10, 1]},
        "pacs": {"host": "10.0.2.2", "port": down},
        # Retry a lost PACS within 2 s, not the default backoff's minutes.
        "spool": {"backoff_initial": 0.5, "backoff_max": 2.0}}))
    scp = Storescp(tmp_path / "rx")
    relay = Relay(scp.port, rate_bps=1000000)
    try:
        boot(box)
        session = Session(box)
        session.run("record start")
        time.sleep(1.5)
        session.run("record stop")
        box.wait_for_log("queued as", timeout=60)
        session.run("record start")
        # Long enough for ext4's 5 s journal commit to put B's partial file
        # on the disk, so that the next boot has one to discard.
        time.sleep(7)
        assert "recording  on" in "\n".join(session.run("status"))
        box.kill()  # power cut while recording clip B
        session.port.close()
        [clip_a] = queued_clips(box)

        mark = len(box.box_log())
        boot(box)
        assert "recovery complete" in box.box_log()[mark:]  # ext4 replayed its journal
        box.wait_for_log("recording was interrupted", timeout=30, after=mark)
        out = console(box, "queue list")
        # A waits, with its details; B's partial file is gone
        lines = out.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("waiting: %s, " % clip_a[1]), out
        assert "bytes %d" % 0 not in lines[0] and "tries 0" in lines[0], out
        session = Session(box)
        session.run("record start")
        time.sleep(1.5)
        session.run("record stop")
        session.close()
        box.wait_for_log("queued as", timeout=60, after=mark)
        [clip_c] = queued_clips(box, mark)
        console(box, "set pacs.port %d" % relay.port, "save")
        deadline = time.monotonic() + 60
        while relay.forwarded < 300000:  # the association is up and A is under way
            assert time.monotonic() < deadline, "no C-STORE began; box log:\n" + box.box_log()[-3000:]
            time.sleep(0.05)
        box.kill()  # power cut in the middle of sending A
        sent_before_cut = relay.forwarded
        assert " stored" not in box.box_log()[mark:], "A was sent whole before the cut: the test proves nothing"
        relay.close()

        mark = len(box.box_log())
        boot(box)
        assert "recovery complete" in box.box_log()[mark:]
        console(box, "set pacs.port %d" % scp.port, "save")
        box.wait_for_log("%s stored" % clip_c[1], timeout=120, after=mark)
        box.wait_for_log("%s stored" % clip_a[1], timeout=120, after=mark)
        assert console(box, "queue list").strip() == "the spool is empty"
        files = wait_files(scp, 2, 30, box)
        # The console's reboot: modgate exits, /init unmounts the data
        # partition and reboots; the same QEMU boots the box again.
        mark = len(box.box_log())
        asked = time.monotonic()
        assert console(box, "reboot").split() == ["rebooting"]
        box.wait_for_log("modgate asked for a reboot", timeout=60, after=mark)
        rebooted_s = box.wait_for_console(timeout=90, since=asked)
        assert box.box_log().count("starting modgate", mark) == 1
        # init unmounted the data partition before rebooting: nothing to recover.
        assert "mounted filesystem" in box.box_log()[mark:] and "recovery" not in box.box_log()[mark:]
        assert console(box, "queue list").strip() == "the spool is empty"
        clean = box.stop()
    finally:
        box.kill()
        relay.close()
        scp.stop()
    report("power cuts: clip A (%d frames) cut after %d bytes of its C-STORE, then resent; clip C (%d frames); "
           "console reboot to the prompt in %.1f s; powered off %s" % (
               clip_a[0], sent_before_cut, clip_c[0], rebooted_s, "cleanly" if clean else "by SIGKILL"))
    arrived = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        arrived.setdefault(ds.SOPInstanceUID, []).append(path)
    # Every completed clip arrived, and nothing else did (no partial B).
    assert sorted(arrived) == sorted([clip_a[2], clip_c[2]])
    for frames, _, uid in (clip_a, clip_c):
        for path in arrived[uid]:
            check_object(path, frames, width, height)
    assert clean


def test_a_procedure_stored_in_orthanc_committed_across_a_power_cut(image, tmp_path, mpps_scp):
    """The clinical workflow on the box: the worklist from a wlmscpfs on the
    host, `worklist select` on the console, a clip from vivid stored in
    Orthanc with storage commitment and MPPS. The first Orthanc cannot
    reach the box's listener, so the clip waits in stored/; the plug is
    pulled before any report. After the reboot, Orthanc (now knowing the
    box's forwarded port) reports on a new association to the box's
    listener when the box asks again: the spool ends empty, and `procedure
    end` completes the MPPS."""
    from tests.conftest import Orthanc
    from tests.test_worklist import Wlmscpfs, worklist_item

    mpps_port, seen, _ = mpps_scp
    today = time.strftime("%Y%m%d", time.gmtime())
    wl = Wlmscpfs(tmp_path / "db", "WLM")
    worklist_item(wl.folder / "a.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100", date=today)
    forwarded = free_port()  # 127.0.0.1:forwarded on the host is the box's port 11112
    pacs_folder = tmp_path / "orthanc"
    pacs_folder.mkdir()
    orthanc = Orthanc(pacs_folder, DicomModalities={"box": ["MODGATE", "127.0.0.1", free_port()]})
    box = None
    try:
        wl_port = wl.start()
        box = Emulator(image, workdir=str(tmp_path / "qemu"), forwards=[(forwarded, 11112)], disk=fresh_disk(tmp_path, {
            "board": "qemu_virt", "clip": {"mode": "command", "transfer_syntax": "explicit"},
            "acquisition": {"width": 320, "height": 180, "rate": [10, 1]},
            "pacs": {"host": "10.0.2.2", "port": orthanc.dicom_port, "ae_title": "ORTHANC", "commit": True,
                     "commit_port": 11112, "commit_timeout": 15},
            "worklist": {"host": "10.0.2.2", "port": wl_port, "ae_title": "WLM", "refresh": 0},
            "mpps": {"host": "10.0.2.2", "port": mpps_port, "ae_title": "MPPSSCP"},
            "spool": {"backoff_initial": 0.5, "backoff_max": 2.0}}))
        boot(box)
        out = console(box, "worklist refresh", "worklist select 1")
        assert "procedure: Müller^Jürgen, ID P100, accession A100" in out, out
        record_for(box, 1.5)
        box.wait_for_log("commitment: asked for 1 objects", timeout=120)
        [(frames, name, uid)] = queued_clips(box)
        out = console(box, "status", "queue list")
        assert "commitment 1 stored, awaiting the PACS's commitment" in out, out
        assert "awaiting commitment: %s" % name in out, out
        box.kill()  # the power cut: stored, asked, never reported
        orthanc.stop()
        orthanc = Orthanc(pacs_folder, dicom_port=orthanc.dicom_port,
                          DicomModalities={"box": ["MODGATE", "127.0.0.1", forwarded]})
        mark = len(box.box_log())
        boot(box)
        box.wait_for_log("1 transactions from before this start", timeout=60, after=mark)
        box.wait_for_log("1 committed, 0 failed", timeout=120, after=mark)
        assert "listener: association from 10.0.2.2 (ORTHANC) accepted" in box.box_log()[mark:]
        assert console(box, "queue list").strip() == "the spool is empty"
        out = console(box, "procedure end")
        assert "procedure completed: 1 clips; MPPS COMPLETED queued" in out, out
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        [orthanc_id] = orthanc.rest("/instances")
        path = tmp_path / "stored.dcm"
        from tests.conftest import http
        path.write_bytes(http(orthanc.http_port, "/instances/%s/file" % orthanc_id))
    finally:
        if box is not None:
            box.kill()
        orthanc.stop()
        wl.stop()
    assert [kind for kind, _, _ in seen] == ["create", "set"], seen
    assert seen[1][2].PerformedProcedureStepStatus == "COMPLETED"
    assert [r.ReferencedSOPInstanceUID for s in seen[1][2].PerformedSeriesSequence
            for r in s.ReferencedImageSequence] == [uid]
    ds = check_object(str(path), frames, 320, 180)
    assert ds.SOPInstanceUID == uid and ds.AccessionNumber == "A100"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.77.100"
    assert ds.ReferencedPerformedProcedureStepSequence[0].ReferencedSOPInstanceUID == seen[0][1]
    report("procedure on the box: clip of %d frames stored in Orthanc, committed after a power cut, MPPS completed"
           % frames)

