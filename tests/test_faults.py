"""The box keeps working and never hurts (issue 17): the right patient on
every clip, a fault stays with the thing that failed (one object, one clip,
one association), and what failed shows in `status`.

The gateway runs for real: the simulated board, a real spool folder, DCMTK's
storescp (+xi for an implicit-only PACS) or a pynetdicom SCP as the PACS,
and the console over a pty with the scripted client where the technician's
view is the point."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pydicom
import pytest
from hypothesis import given, settings as hsettings, strategies as st

import board
from firmware import config
from firmware.config import ConfigError
from firmware.console.system import ConsoleSystem
from firmware.dicom.encoder import ObjectEncoder
from firmware.gateway import Gateway, check_applicable
from firmware.study import Study, patient_attributes
from hal.storage import PosixStorage
from tests.conftest import ROOT, Storescp, free_port, machine_lacks
from tests.test_console import PASSWORD, RunningGateway
from tests.test_gateway import W, H, ScriptedSCP, by_uid, settings


def wait_for(predicate, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class running:
    """The gateway in a thread for the length of a with block: stopped and
    joined however the block ends, so a failed assertion leaves no gateway
    behind."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.thread = threading.Thread(target=gateway.run)

    def __enter__(self):
        self.thread.start()
        return self.thread

    def __exit__(self, *exc):
        self.gateway.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


# -- patient safety -------------------------------------------------------------

def test_patient_saved_on_the_console_reaches_the_next_clip_in_a_new_study(tmp_path):
    """The bar: set patient.* + save, and the next clip carries them in a new
    study; a second patient gets another study; `exam end` clears the
    patient and starts a new study even for the same values."""
    scp = Storescp(tmp_path / "rx", "+xa")
    cfg = {
        "acquisition": {"width": W, "height": H, "pixel": "rgb8", "paced": True},
        "clip": {"mode": "command"},
        "pacs": {"port": scp.port, "ae_title": "STORESCP", "idle_release": 0.2},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024},
    }
    gw = RunningGateway(tmp_path, cfg)

    def clip(*commands):
        before = len(scp.files())
        result = gw.client(*commands, "record start")
        assert result.returncode == 0, result.stdout + result.stderr
        time.sleep(0.4)
        assert gw.client("record stop").returncode == 0
        assert wait_for(lambda: len(scp.files()) == before + 1), gw.client("status", "log 30").stdout

    try:
        clip("set patient.name Doe^Jane", "set patient.id P-1", "set patient.birth_date 19700101", "save")
        clip("set patient.name 'Roe^Richard'", "set patient.id P-2", "save")
        clip()  # same patient, same study
        result = gw.client("exam end")
        assert result.returncode == 0, result.stdout + result.stderr
        clip()
    finally:
        assert gw.stop() == 0
        scp.stop()
    objects = [pydicom.dcmread(p, stop_before_pixels=True) for p in scp.files()]
    objects.sort(key=lambda ds: (ds.InstanceCreationTime, ds.StudyTime, str(ds.ContentTime)))
    names = [str(ds.PatientName) for ds in objects]
    assert names == ["Doe^Jane", "Roe^Richard", "Roe^Richard", ""]
    assert [ds.PatientID for ds in objects] == ["P-1", "P-2", "P-2", ""]
    assert objects[0].PatientBirthDate == "19700101" and objects[1].PatientBirthDate == "19700101"
    studies = [ds.StudyInstanceUID for ds in objects]
    assert studies[1] == studies[2] and len({studies[0], studies[1], studies[3]}) == 3
    assert [int(ds.InstanceNumber) for ds in objects] == [1, 1, 2, 1]


HOSTILE = [
    ("patient.birth_date", "abcdefgh", "DA"),
    ("station.uid_root", "abc", "UID"),
    ("patient.name", "A=B=C=D=E", "component groups"),
    ("patient.name", "Smith\x7fJohn", "control"),
    ("patient.name", "\"'Smith^John Q'\"", "quotes"),
    ("station.name", "M\u00fcller\\x", "backslash"),
    ("station.ae_title", "M\u00fcller", "repertoire"),
    ("study.accession_number", "A" * 17, "16"),
    ("acquisition.rate", [1, 1000000], "frames per second"),
]


@pytest.mark.parametrize("key, value, words", HOSTILE)
def test_values_a_clip_cannot_carry_are_refused_where_typed(key, value, words):
    with pytest.raises(ConfigError) as caught:
        config.check(key, value)
    assert words in str(caught.value)
    with pytest.raises(ConfigError):
        config.load(text=json.dumps(config.nest({key: value})))


def test_non_ascii_names_are_kept_not_stripped(tmp_path):
    cfg = settings(tmp_path, free_port(), **{"patient.name": "M\u00fcller^J\u00fcrgen", "clip.count": 1})
    config.check("patient.name", cfg["patient.name"])
    gateway = Gateway(cfg, board.load("host"))
    gateway.run(until_sent=False, timeout=2.0)
    queued = os.path.join(str(tmp_path / "spool"), "queue", gateway.clips[0].name)
    ds = pydicom.dcmread(queued, stop_before_pixels=True)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "M\u00fcller^J\u00fcrgen"


def test_pixel_format_the_iod_cannot_hold_is_refused_at_save_and_start():
    values = config.defaults()
    values["acquisition.pixel"] = "mono8"
    with pytest.raises(ConfigError) as caught:
        config.validate(values)
    assert caught.value.key == "acquisition.pixel" and "rgb8" in str(caught.value)
    # the board's own default counts too: qemu_virt delivers rgb8
    values = config.defaults()
    values["clip.iod"] = "mf-grayscale-byte-sc"
    with pytest.raises(ConfigError) as caught:
        check_applicable(values, board.load("host"), storage=None)
    assert caught.value.key == "acquisition.pixel"


def test_a_ycbcr422_board_records_h264_and_refuses_uncompressed_where_it_is_typed():
    # imx8mp_gateway's HDMI bridge gives ycbcr422: the video IODs take it as
    # H.264 (their default syntax); a syntax that would need RGB is refused
    # at save (a typed pixel) and at start (the board's own).
    imx = board.load("imx8mp_gateway")
    values = config.defaults()
    assert imx.data["acquisition"]["pixel"] == "ycbcr422" and values["acquisition.pixel"] is None
    check_applicable(values, imx, storage=None)
    values["clip.transfer_syntax"] = "explicit"
    with pytest.raises(ConfigError) as caught:
        check_applicable(values, imx, storage=None)
    assert caught.value.key == "clip.transfer_syntax" and "stored as H.264 only" in str(caught.value)
    values["acquisition.pixel"] = "ycbcr422"
    with pytest.raises(ConfigError) as caught:
        config.validate(values)
    assert caught.value.key == "clip.transfer_syntax" and "stored as H.264 only" in str(caught.value)
    values["clip.transfer_syntax"] = "h264-bd"
    config.validate(values)


def test_a_frame_larger_than_the_board_can_hold_is_refused():
    values = config.defaults()
    values.update({"acquisition.width": 8192, "acquisition.height": 8192})
    with pytest.raises(ConfigError) as caught:
        check_applicable(values, board.load("qemu_virt"), storage=None)
    assert "memory budget" in str(caught.value)


TEXT_KEYS = [k for k in config.SCHEMA if k.startswith(("patient.", "study.", "station."))]


@hsettings(max_examples=300, deadline=None)
@given(key=st.sampled_from(TEXT_KEYS), value=st.text(max_size=80))
def test_what_the_config_accepts_the_encoder_writes(key, value):
    """One source of truth: every value config.check lets through encodes
    into a clip (and the schema's refusal is the encoder's own reason)."""
    try:
        config.check(key, value)
    except ConfigError:
        return
    cfg = config.defaults()
    cfg[key] = value
    attributes = patient_attributes(cfg, Study(None, None, cfg["station.uid_root"]))
    encoder = ObjectEncoder("video-endoscopic", 4, 4, "rgb8", (2026, 11, 26, 0, 0, 0, 0), attributes,
                            uid_root=cfg["station.uid_root"], source_ae_title=cfg["station.ae_title"])
    assert encoder.header()


# -- faults stay with the thing that failed ------------------------------------

def poison(tmp_path, good_clip):
    """A copy of a good clip with its data set cut short: the Pixel Data
    element promises more bytes than the file holds."""
    data = open(good_clip, "rb").read()
    path = str(tmp_path / "poison.dcm")
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return path


def seed_queue(tmp_path, clips, name="000000000001.dcm"):
    """A spool whose queue starts with a poison object."""
    from firmware.spool import Spool

    spool = Spool(PosixStorage(str(tmp_path / "spool")), 64 * 1024 * 1024)
    shutil.copy(poison(tmp_path, clips["video"]), os.path.join(str(tmp_path / "spool"), "queue", name))
    del spool
    return name


@pytest.mark.parametrize("mode", ["+xa", "+xi"])
def test_a_poison_object_ends_in_quarantine_and_the_queue_moves_on(tmp_path, clips, mode):
    """The bar, with an explicit and with an implicit-only PACS: the object
    at the head of the queue cannot be stored; it ends in quarantine after
    spool.max_failures tries (at once where it cannot even be converted),
    every clip behind it is delivered, and status shows the alarm."""
    seed_queue(tmp_path, clips)
    scp = Storescp(tmp_path / "rx", mode)
    try:
        cfg = settings(tmp_path, scp.port, **{"clip.count": 3, "spool.max_failures": 3})
        gateway = Gateway(cfg, board.load("host"))
        with running(gateway) as runner:
            assert wait_for(lambda: gateway.stored == 3 and gateway.spool.quarantined(), 60)
            status = ConsoleSystem(gateway).status()
            listing = ConsoleSystem(gateway).queue(["list"])
        arrived = by_uid(scp.files())
    finally:
        scp.stop()
    assert set(arrived) == set(c.sop_instance_uid for c in gateway.clips)
    assert gateway.spool.pending() == []
    quarantined = gateway.spool.quarantined()
    assert len(quarantined) == 1 and quarantined[0].startswith("000000000001.")
    alarm = [line for line in status if line.startswith("ALARM") and "quarantine" in line]
    assert alarm, status
    # queue list: the patient, when, the size, the tries and the last error
    (line,) = listing
    assert line.startswith("quarantined: 000000000001."), listing
    for words in ("patient ", "ID P-video", "recorded 2026-11-23", "bytes ", "tries ", "last error "):
        assert words in line, (words, line)
    assert any("hint:" in line for line in status)


def test_an_unreadable_header_is_quarantined_and_the_sender_goes_on(tmp_path):
    os.makedirs(str(tmp_path / "spool"))
    from firmware.spool import Spool

    Spool(PosixStorage(str(tmp_path / "spool")), 64 * 1024 * 1024)
    with open(os.path.join(str(tmp_path / "spool"), "queue", "000000000001.dcm"), "wb") as f:
        f.write(b"\x00" * 128 + b"DICM" + b"\xff" * 64)
    scp = Storescp(tmp_path / "rx", "+xa")
    try:
        gateway = Gateway(settings(tmp_path, scp.port, **{"clip.count": 2}), board.load("host"))
        gateway.run(until_sent=True, timeout=60)
    finally:
        scp.stop()
    assert gateway.stored == 2 and gateway.spool.pending() == []
    assert len(gateway.spool.quarantined()) == 1
    assert gateway.alarms.text("quarantine")


def test_rejected_association_is_an_alarm_with_a_hint_and_nothing_is_lost(tmp_path):
    """A PACS that checks the called AE title (pynetdicom's
    require_called_aet) rejects ours: an alarm naming pacs.ae_title, the
    clips wait in the queue, nothing is quarantined."""
    from pynetdicom import AE, AllStoragePresentationContexts

    ae = AE(ae_title="REALPACS")
    ae.require_called_aet = True
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax)
    server = ae.start_server(("127.0.0.1", 0), block=False)
    try:
        gateway = Gateway(settings(tmp_path, server.server_address[1], "WRONG", **{"clip.count": 2}),
                          board.load("host"))
        with running(gateway) as runner:
            assert wait_for(lambda: gateway.alarms.text("pacs") is not None and len(gateway.spool.pending()) == 2, 30)
            status = ConsoleSystem(gateway).status()
    finally:
        server.shutdown()
    text = "\n".join(status)
    assert "ALARM" in text and "pacs: " in text and "pacs.ae_title" in text, text
    assert gateway.spool.quarantined() == [] and len(gateway.spool.pending()) == 2


def test_disk_full_while_recording_abandons_that_clip_and_keeps_sending(tmp_path):
    """A small file system (tmpfs of 3 MiB) fills under a clip: that clip
    is abandoned with an alarm, the clips already queued are still sent,
    and the gateway keeps running."""
    root = tmp_path / "small"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(root)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        machine_lacks("mount", "mount -t tmpfs: %s" % mounted.stderr.strip())
    scp = None
    try:
        port = free_port()
        # clips of 100 frames of 64x48 rgb8: 0.9 MiB each; the third cannot fit
        cfg = settings(tmp_path, port, **{"spool.root": str(root / "spool"), "clip.frames": 100,
                                          "clip.count": 4, "spool.max_bytes": 1 << 30})
        gateway = Gateway(cfg, board.load("host"))
        with running(gateway) as runner:
            assert wait_for(lambda: gateway.alarms.text("recorder") is not None
                            or gateway.alarms.text("spool") is not None, 30)
            status = "\n".join(ConsoleSystem(gateway).status())
            assert runner.is_alive()
            queued = len(gateway.spool.pending())
            assert queued >= 1
            scp = Storescp(tmp_path / "rx", "+xa", port=port)
            # sending frees the disk and recording goes on: all four clips
            # (an abandoned clip gave its room back)
            assert wait_for(lambda: len(gateway.clips) == 4 and not gateway.spool.pending(), 60), \
                ConsoleSystem(gateway).status()
            assert os.listdir(str(root / "spool" / "tmp")) == []
    finally:
        if scp is not None:
            scp.stop()
        subprocess.run(["umount", "-l", str(root)])
    assert "ALARM" in status and ("recorder" in status or "spool" in status), status
    assert set(c.sop_instance_uid for c in gateway.clips) <= set(by_uid(scp.files()))


class FlakyStorage(PosixStorage):
    """The spool's storage driver with a queue/ that cannot be listed until
    healed: an I/O error on the folder, injected where the HAL reads it."""

    broken = True

    def listdir(self, name):
        self._check(name)
        return PosixStorage.listdir(self, name)

    def files(self, name):
        self._check(name)
        return PosixStorage.files(self, name)

    def _check(self, name):
        if self.broken and name.rstrip("/") == "queue":
            raise OSError(5, "Input/output error", self.path(name))


def test_an_unreadable_queue_is_an_alarm_and_a_retry(tmp_path):
    port = free_port()
    storage = FlakyStorage(str(tmp_path / "spool"))
    FlakyStorage.broken = False
    box = board.load("host")
    box.open_storage = lambda root=None: storage
    rx = Storescp(tmp_path / "rx", "+xa", port=port)
    try:
        gateway = Gateway(settings(tmp_path, port, **{"clip.count": 2}), box)
        FlakyStorage.broken = True
        with running(gateway) as runner:
            assert wait_for(lambda: gateway.alarms.text("queue") is not None, 20)
            assert "cannot read the queue" in "\n".join(ConsoleSystem(gateway).status())
            FlakyStorage.broken = False
            assert wait_for(lambda: gateway.stored == 2, 30)
    finally:
        FlakyStorage.broken = False
        rx.stop()
    assert gateway.alarms.text("queue") is None


def test_an_association_broken_by_every_try_of_one_object_quarantines_it(tmp_path):
    """An SCP that aborts whenever one particular object is sent: that
    object is counted and quarantined; the others all arrive."""
    scp = ScriptedSCP([])
    victim = []

    def on_store(event):
        uid = event.request.AffectedSOPInstanceUID
        if not victim:
            victim.append(uid)
        if uid == victim[0]:
            scp.seen.append((uid, "abort"))
            event.assoc.abort()
            return 0xC000
        scp.seen.append((uid, 0))
        return 0x0000

    scp.on_store = on_store
    scp.server.shutdown()
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    ae = AE(ae_title="SCRIPTED")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax)
    scp.server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        cfg = settings(tmp_path, scp.server.server_address[1], "SCRIPTED", **{"clip.count": 3, "spool.max_failures": 3})
        gateway = Gateway(cfg, board.load("host"))
        with running(gateway) as runner:
            assert wait_for(lambda: gateway.stored == 2 and gateway.spool.quarantined(), 60)
    finally:
        scp.server.shutdown()
    tries = [uid for uid, answer in scp.seen if uid == victim[0]]
    assert len(tries) == 3
    assert gateway.spool.pending() == []


# -- the running box ------------------------------------------------------------

def test_run_stops_promptly_whatever_the_frame_rate(tmp_path):
    cfg_path = tmp_path / "gw.json"
    cfg_path.write_text(json.dumps({
        "acquisition": {"width": W, "height": H, "rate": [1, 3600], "paced": True},
        "pacs": {"port": free_port()},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024},
    }))
    proc = subprocess.Popen([sys.executable, "-m", "firmware.main", "--config", str(cfg_path)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=30)
    # Seconds, not the hour to the next frame; loose enough that a loaded
    # machine's exit is not taken for that wait.
    assert time.monotonic() - sent < 10.0, err
    assert proc.returncode == 0, err


def test_run_without_configuration_records_nothing(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "firmware.main"], cwd=str(tmp_path),
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "recording off until one is saved" in err
    queue = tmp_path / "modgate-spool" / "queue"
    assert not queue.exists() or os.listdir(str(queue)) == []
    assert "clips recorded" in err and "stopped: 0 clips recorded" in err


def test_run_with_a_clip_count_ends_once_everything_is_sent(tmp_path):
    scp = Storescp(tmp_path / "rx", "+xa")
    cfg_path = tmp_path / "gw.json"
    cfg_path.write_text(json.dumps({
        "acquisition": {"width": W, "height": H, "paced": False},
        "clip": {"frames": 3, "count": 2},
        "pacs": {"port": scp.port, "idle_release": 0.2},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024},
    }))
    try:
        result = subprocess.run([sys.executable, "-m", "firmware.main", "--config", str(cfg_path)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        scp.stop()
    assert result.returncode == 0, result.stderr
    assert len(scp.files()) == 2


def test_run_exits_non_zero_when_it_cannot_work(tmp_path):
    """No acquisition device and no console to fix it from: exit 1 with the
    reason, not 0 after an alarm."""
    cfg_path = tmp_path / "gw.json"
    cfg_path.write_text(json.dumps({
        "board": "qemu_virt", "acquisition": {"width": W, "height": H},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0},
    }))
    result = subprocess.run([sys.executable, "-m", "firmware.main", "--config", str(cfg_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "cannot work" in result.stderr and "acquisition" in result.stderr
    assert "Traceback" not in result.stderr


def test_save_writes_nothing_that_cannot_apply_and_a_bad_start_still_opens_the_console(tmp_path):
    """set pacs.ca /nonexistent + save: refused, the file unchanged; a file
    that cannot apply at start-up still opens the console, with the reason
    as an alarm, and the technician fixes it from there."""
    cfg = {
        "acquisition": {"width": W, "height": H},
        "clip": {"mode": "command"},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024},
    }
    gw = RunningGateway(tmp_path, cfg)
    try:
        before = open(gw.config).read()
        result = gw.client("set pacs.tls true", "set pacs.ca /nonexistent/ca.pem", "save")
        assert result.returncode == 1 and "pacs.ca" in result.stderr
        assert open(gw.config).read() == before
    finally:
        assert gw.stop() == 0
    bad = dict(cfg, pacs={"tls": True, "ca": "/nonexistent/ca.pem"})
    gw = RunningGateway(tmp_path, bad)
    try:
        result = gw.client("status")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ALARM" in result.stdout and "config" in result.stdout and "pacs.ca" in result.stdout
        result = gw.client("set pacs.tls false", "unset pacs.ca", "save", "status")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "alarms     none" in result.stdout
    finally:
        assert gw.stop() == 0
    assert json.loads(open(gw.config).read()).get("pacs", {}).get("tls") is None


# -- one gateway through a list of faults ------------------------------------------

def uids_in(folder):
    found = set()
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            try:
                found.add(pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True).SOPInstanceUID)
            except Exception:
                pass
    return found


def test_fault_injection_keeps_every_committed_object(tmp_path, clips):
    """One gateway, recording all along (a clip every few tenths of a
    second), is put through faults one after another: the PACS down, the
    PACS killed and restarted, a poison object in the queue, the queue
    unreadable, the called AE title refused. After each: the gateway is
    alive, status names the fault, and every clip it committed is in
    queue/, in quarantine/ or delivered: none lost."""
    port = free_port()
    spool_dir = str(tmp_path / "spool")
    storage = FlakyStorage(spool_dir)
    FlakyStorage.broken = False
    box = board.load("host")
    box.open_storage = lambda root=None: storage
    cfg = settings(tmp_path, port, "ANY-SCP", **{"clip.count": 0, "clip.frames": 3, "acquisition.paced": True,
                                                  "spool.max_failures": 2})
    gateway = Gateway(cfg, box)
    system = ConsoleSystem(gateway)
    delivered = set()
    scp = None

    def check(fault, alarm, words=""):
        assert wait_for(lambda: any(line.startswith("ALARM") and (" %s:" % alarm) in line and words in line
                                    for line in system.status()), 30), (fault, system.status())
        assert runner.is_alive(), fault
        committed = set(c.sop_instance_uid for c in gateway.clips)
        here = uids_in(os.path.join(spool_dir, "queue")) | uids_in(os.path.join(spool_dir, "quarantine"))
        got = delivered | (uids_in(scp.out_dir) if scp else set())
        # an object being stored right now may be in both; none may be in neither
        assert committed <= here | got, (fault, committed - here - got)

    def start_scp():
        return Storescp(tmp_path / ("rx%d" % len(delivered)), "+xa", port=port)

    try:
        with running(gateway) as runner:
            check("PACS down", "pacs")
            scp = start_scp()
            assert wait_for(lambda: len(scp.files()) >= 2, 30)
            scp.stop()  # killed in the middle of whatever it was doing
            delivered |= uids_in(scp.out_dir)
            scp = None
            check("PACS killed", "pacs")
            scp = start_scp()
            shutil.copy(poison(tmp_path, clips["video"]), os.path.join(spool_dir, "queue", "000000009999.dcm"))
            check("poison object", "quarantine")
            FlakyStorage.broken = True
            check("queue unreadable", "queue")
            FlakyStorage.broken = False
            gateway.cfg = dict(gateway.cfg, **{"pacs.ae_title": "WRONG"})
            scp.stop()
            delivered |= uids_in(scp.out_dir)
            from pynetdicom import AE, AllStoragePresentationContexts

            ae = AE(ae_title="REALPACS")
            ae.require_called_aet = True
            for context in AllStoragePresentationContexts:
                ae.add_supported_context(context.abstract_syntax)
            server = ae.start_server(("127.0.0.1", port), block=False)
            try:
                scp = None
                check("called AE title refused", "pacs", "called-AE-title-not-recognized")
            finally:
                server.shutdown()
            gateway.cfg = dict(gateway.cfg, **{"pacs.ae_title": "ANY-SCP"})
            scp = start_scp()
            gateway.stop_recording()
            assert wait_for(lambda: not gateway.spool.pending(), 60), system.status()
        delivered |= uids_in(scp.out_dir)
    finally:
        FlakyStorage.broken = False
        if scp is not None:
            scp.stop()
    committed = set(c.sop_instance_uid for c in gateway.clips)
    assert len(committed) >= 5
    assert committed <= delivered, committed - delivered
    assert len(gateway.spool.quarantined()) == 1


def test_a_new_patient_closes_the_clip_under_way(tmp_path):
    """A clip is one patient's: a save of another patient (or exam end)
    during a clip of a minute closes it with the first patient's frames, and the
    next clip, in a new study, carries the new patient."""
    port = free_port()
    cfg = settings(tmp_path, port, **{"clip.mode": "seconds", "clip.seconds": 60, "clip.count": 2,
                                      "acquisition.paced": True})
    gateway = Gateway(cfg, board.load("host"))
    system = ConsoleSystem(gateway)
    with running(gateway):
        time.sleep(0.5)
        assert gateway.clips == []  # the first clip is still under way
        system.apply(dict(gateway.cfg, **{"patient.name": "Roe^Richard", "patient.id": "P-2"}))
        assert wait_for(lambda: len(gateway.clips) == 1, 10)
        time.sleep(0.3)
        system.new_study()
        assert wait_for(lambda: len(gateway.clips) == 2, 10)
    first, second = [pydicom.dcmread(os.path.join(str(tmp_path / "spool"), "queue", c.name), stop_before_pixels=True)
                     for c in gateway.clips]
    assert (str(first.PatientName), first.PatientID) == ("Test^Gateway", "GW-1")
    assert (str(second.PatientName), second.PatientID) == ("Roe^Richard", "P-2")
    assert first.StudyInstanceUID != second.StudyInstanceUID
    assert 5 <= int(first.NumberOfFrames) <= 30 and int(second.NumberOfFrames) >= 3
