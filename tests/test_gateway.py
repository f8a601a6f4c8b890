"""The gateway end to end: simulated board -> encoder -> spool -> Storage
SCU -> a real SCP (DCMTK storescp, or a pynetdicom SCP where the test must
script the SCP's answers), and the faults: SCP down at start, SCP aborting,
failure statuses, a full spool, SIGTERM and kill -9."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pydicom
import pytest
from pynetdicom import AE, AllStoragePresentationContexts, evt

import board
from firmware import __version__, config
from firmware.gateway import Gateway
from hal.acq.sim import Pattern
from tests.conftest import ROOT, Storescp, dciodvfy, free_port
from tools.bench.crash import crash_loop
from tools.receiver import Receiver, check_clip

W, H = 64, 48


def settings(tmp_path, port, ae_title="ANY-SCP", **changes):
    cfg = config.defaults()
    cfg.update({
        "board": "host",
        "acquisition.width": W, "acquisition.height": H, "acquisition.pixel": "rgb8",
        "acquisition.rate": [30, 1], "acquisition.paced": False,
        "clip.frames": 4, "clip.count": 3,
        # Uncompressed: these tests check every pixel of what arrives
        # (tests/test_codec.py covers the compressed clips).
        "clip.transfer_syntax": "explicit",
        "patient.name": "Test^Gateway", "patient.id": "GW-1",
        "pacs.port": port, "pacs.ae_title": ae_title, "pacs.idle_release": 0.2,
        "pacs.connect_timeout": 2.0, "pacs.dimse_timeout": 10.0,
        "spool.root": str(tmp_path / "spool"), "spool.max_bytes": 64 * 1024 * 1024, "spool.min_free_bytes": 0,
        "spool.backoff_initial": 0.05, "spool.backoff_max": 0.3,
    })
    cfg.update(changes)
    config.validate(cfg)
    return cfg


def by_uid(paths):
    found = {}
    for path in paths:
        found[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID] = path
    return found


def test_every_clip_arrives_at_storescp_bit_exact(tmp_path):
    scp = Storescp(tmp_path / "rx", "+xa")
    try:
        gateway = Gateway(settings(tmp_path, scp.port), board.load("host"))
        gateway.run(until_sent=True, timeout=60)
        arrived = by_uid(scp.files())
    finally:
        scp.stop()
    assert len(gateway.clips) == 3 and gateway.stored == 3
    assert gateway.spool.pending() == [] and os.listdir(tmp_path / "spool" / "tmp") == []
    pattern = Pattern("rgb8", W, H)
    studies, series = set(), set()
    for clip in gateway.clips:
        path = arrived[clip.sop_instance_uid]
        assert check_clip(path, clip, pattern) == []
        errors, _ = dciodvfy(path)
        assert errors == [], errors
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        studies.add(ds.StudyInstanceUID)
        series.add(ds.SeriesInstanceUID)
        assert ds.PatientName == "Test^Gateway"
        # the box that made it (PS3.3 C.7.5.1), the same as its live stream says
        assert (ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions) == ("modgate", "host", __version__)
        assert ds.DeviceSerialNumber == board.load("host").device_serial_number()
    # one session: one study, one series, instances 1..3, frames contiguous
    assert len(studies) == len(series) == 1
    assert [c.instance_number for c in gateway.clips] == [1, 2, 3]
    assert [c.first_sequence for c in gateway.clips] == [0, 4, 8]


def test_scp_down_at_start_then_up(tmp_path):
    port = free_port()
    gateway = Gateway(settings(tmp_path, port), board.load("host"))
    runner = threading.Thread(target=gateway.run, kwargs={"until_sent": True, "timeout": 60})
    runner.start()
    time.sleep(1.0)
    assert gateway.stored == 0 and len(gateway.spool.pending()) == 3  # recorded, waiting
    scp = Storescp(tmp_path / "rx", "+xa", port=port)
    try:
        runner.join(60)
        arrived = by_uid(scp.files())
    finally:
        scp.stop()
    assert not runner.is_alive()
    assert set(arrived) == set(c.sop_instance_uid for c in gateway.clips)
    assert gateway.spool.pending() == []


class ScriptedSCP:
    """A pynetdicom Storage SCP whose answer to each C-STORE is scripted:
    a status, or "abort" to abort the association mid-operation."""

    def __init__(self, script, default=0x0000):
        self.script = list(script)
        self.default = default
        self.seen = []
        ae = AE(ae_title="SCRIPTED")
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax)
        self.server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self.on_store)])
        self.port = self.server.server_address[1]

    def on_store(self, event):
        answer = self.script.pop(0) if self.script else self.default
        self.seen.append((event.request.AffectedSOPInstanceUID, answer))
        if answer == "abort":
            event.assoc.abort()
            return 0xC000
        return answer

    def stop(self):
        self.server.shutdown()


def test_scp_aborts_during_a_transfer(tmp_path):
    scp = ScriptedSCP(["abort", 0x0000, "abort"])
    try:
        gateway = Gateway(settings(tmp_path, scp.port, "SCRIPTED"), board.load("host"))
        gateway.run(until_sent=True, timeout=60)
    finally:
        scp.stop()
    uids = [c.sop_instance_uid for c in gateway.clips]
    stored = [uid for uid, answer in scp.seen if answer == 0x0000]
    # each clip stored exactly once; the aborted ones were sent again
    assert sorted(stored) == sorted(uids)
    assert gateway.spool.pending() == [] and gateway.spool.quarantined() == []


def test_failure_statuses_quarantine_and_warnings_count_as_stored(tmp_path):
    scp = ScriptedSCP([], default=0xC000)
    try:
        cfg = settings(tmp_path, scp.port, "SCRIPTED", **{"clip.count": 1, "spool.max_failures": 3})
        gateway = Gateway(cfg, board.load("host"))
        gateway.run(until_sent=True, timeout=60)
    finally:
        scp.stop()
    assert len(scp.seen) == 3
    assert gateway.spool.pending() == []
    assert gateway.spool.quarantined() == ["000000000001.f3.dcm"]

    scp = ScriptedSCP([], default=0xB000)
    try:
        cfg = settings(tmp_path, scp.port, "SCRIPTED", **{"clip.count": 2})
        gateway = Gateway(cfg, board.load("host"))
        gateway.run(until_sent=True, timeout=60)
    finally:
        scp.stop()
    assert gateway.stored == 2 and gateway.spool.pending() == []
    assert len(gateway.spool.quarantined()) == 1  # still there, still visible


def test_full_spool_refuses_recording_and_keeps_every_object(tmp_path):
    port = free_port()  # nothing listens: nothing can leave the spool
    logged = []
    clip_bytes = 4 * W * H * 3
    # A clip reserves its frames and 64 KiB for its header while recorded,
    # then counts for its real size: room for a handful, not ten.
    cfg = settings(tmp_path, port, **{"clip.count": 10, "spool.max_bytes": 3 * (clip_bytes + 64 * 1024)})
    gateway = Gateway(cfg, board.load("host"), log=logged.append)
    gateway.run(timeout=2.0)
    recorded = len(gateway.clips)
    assert 3 <= recorded < 10
    assert len(gateway.spool.pending()) == recorded
    assert gateway.spool.used_bytes() <= cfg["spool.max_bytes"]
    assert any("ALARM spool full" in line for line in logged)
    assert os.listdir(tmp_path / "spool" / "tmp") == []
    # the SCP comes up: everything recorded goes out, nothing was dropped
    rx = Receiver(str(tmp_path / "rx"), port=port).start()
    try:
        cfg["clip.count"] = 0
        cfg["clip.mode"] = "command"  # record nothing more
        _drain(Gateway(cfg, board.load("host")))
    finally:
        rx.stop()
    assert set(rx.files()) == set(c.sop_instance_uid for c in gateway.clips)


def _drain(gateway, timeout=30):
    runner = threading.Thread(target=gateway.run)
    runner.start()
    deadline = time.monotonic() + timeout
    while gateway.spool.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    gateway.stop()
    runner.join(30)


def test_sigterm_leaves_the_spool_consistent(tmp_path):
    port = free_port()
    cfg_path = tmp_path / "gw.json"
    cfg_path.write_text(json.dumps({
        "acquisition": {"width": W, "height": H, "pixel": "rgb8", "rate": [30, 1], "paced": True},
        "clip": {"frames": 1000, "transfer_syntax": "explicit"},
        "pacs": {"port": port},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024},
    }))
    proc = subprocess.Popen([sys.executable, "-m", "firmware.main", "--config", str(cfg_path)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped: 1 clips recorded" in err
    # the clip under way was finished with its frames so far, not lost
    queue = os.listdir(tmp_path / "spool" / "queue")
    assert len(queue) == 1 and os.listdir(tmp_path / "spool" / "tmp") == []
    ds = pydicom.dcmread(str(tmp_path / "spool" / "queue" / queue[0]))
    assert 1 <= int(ds.NumberOfFrames) < 1000
    assert len(ds.PixelData) == int(ds.NumberOfFrames) * W * H * 3


def test_kill_9_loop_loses_nothing(tmp_path):
    result = crash_loop(str(tmp_path), iterations=50, seed=1123)
    assert result["queued"] > 50
    assert result["lost"] == [] and result["corrupt"] == {}
    assert result["leftover"] == {"tmp": [], "queue": [], "quarantine": []}


def test_clip_by_duration_and_on_command(tmp_path):
    port = free_port()
    cfg = settings(tmp_path, port, **{"acquisition.paced": True, "clip.mode": "seconds", "clip.seconds": 0.3,
                                      "clip.count": 2})
    gateway = Gateway(cfg, board.load("host"))
    gateway.run(timeout=3.0)
    frames = [c.frames for c in gateway.clips]
    assert len(frames) == 2 and all(7 <= n <= 11 for n in frames), frames  # 0.3 s at 30 fps

    cfg = settings(tmp_path, port, **{"acquisition.paced": True, "clip.mode": "command", "clip.count": 0})
    gateway = Gateway(cfg, board.load("host"))
    runner = threading.Thread(target=gateway.run)
    runner.start()
    time.sleep(0.3)
    assert gateway.clips == []  # waits for a start command
    gateway.start_recording()
    time.sleep(0.5)
    gateway.stop_recording()
    time.sleep(0.3)
    gateway.stop()
    runner.join(10)
    assert len(gateway.clips) == 1 and 10 <= gateway.clips[0].frames <= 20
    assert gateway.dropped_frames == 0


def test_a_slow_thread_at_stop_is_named_in_the_log(tmp_path):
    """The stop waits for every thread, and says which one keeps it waiting
    (the box's init gives modgate 10 s: the log then shows why)."""
    import firmware.gateway as gw

    gateway = Gateway(settings(tmp_path, free_port(), **{"clip.mode": "command"}), board.load("host"))
    released = threading.Event()

    def stubborn():
        released.wait(gw.STOP_GRACE_S + 1.0)  # a thread that does not look at the stop

    gateway.schedule.run = stubborn
    runner = threading.Thread(target=gateway.run)
    runner.start()
    time.sleep(0.3)
    gateway.stop()
    runner.join(30)
    assert not runner.is_alive()
    assert "gateway: the worklist thread is still busy 3 s after the stop" in gateway.log.recent
