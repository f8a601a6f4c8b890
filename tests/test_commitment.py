"""Storage Commitment Push Model SCU (PS3.4 Annex J): the box keeps every
object until the PACS commits to it. Peers: pynetdicom as a Storage +
Storage Commitment SCP that reports on the same association, reports
partial failure, or never reports; Orthanc, which reports on a new
association to the box's listener (tests/test_listener.py covers the
listener's refusals)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import StorageCommitmentPushModel

import board
from firmware.console.system import ConsoleSystem
from firmware.gateway import Gateway
from firmware.services import commitment
from firmware.spool import COMMITMENT
from tests.conftest import ROOT, Orthanc, free_port, modgate
from tests.test_gateway import settings
from tools.receiver import STORED_SYNTAXES

WELL_KNOWN = "1.2.840.10008.1.20.1.1"


class CommitmentSCP:
    """pynetdicom as Storage SCP and Storage Commitment SCP. mode:
    "report" answers each request with a report on the same association,
    "fail-once" reports the first object of the first request as failed
    (0x0112 No such object instance) and commits the rest, "never" answers
    N-ACTION with success and never reports."""

    def __init__(self, mode="report", delay=0.2):
        self.mode = mode
        self.delay = delay
        self.stored = []  # SOP Instance UIDs, in order
        self.requests = []  # (Transaction UID, [instance UIDs])
        self.reports = []  # (Transaction UID, committed, failed)
        self.report_status = []
        ae = AE(ae_title="COMMITSCP")
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, STORED_SYNTAXES)
        ae.add_supported_context(StorageCommitmentPushModel)
        self.server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self.on_store), (evt.EVT_N_ACTION, self.on_action)])
        self.port = self.server.server_address[1]

    def on_store(self, event):
        self.stored.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    def on_action(self, event):
        info = event.action_information
        assert event.action_type == 1
        assert event.request.RequestedSOPInstanceUID == WELL_KNOWN
        refs = [(i.ReferencedSOPClassUID, i.ReferencedSOPInstanceUID) for i in info.ReferencedSOPSequence]
        self.requests.append((info.TransactionUID, [r[1] for r in refs]))
        if self.mode != "never":
            failed = refs[:1] if self.mode == "fail-once" and len(self.requests) == 1 else []
            committed = refs[len(failed):]
            threading.Thread(target=self._report, args=(event.assoc, info.TransactionUID, committed, failed)).start()
        return 0x0000, None

    def _report(self, assoc, transaction_uid, committed, failed):
        time.sleep(self.delay)  # after the N-ACTION-RSP has gone
        ds = Dataset()
        ds.TransactionUID = transaction_uid
        ds.ReferencedSOPSequence = [_item(c, i) for c, i in committed]
        if failed:
            ds.FailedSOPSequence = [_item(c, i, 0x0112) for c, i in failed]
        status, _ = assoc.send_n_event_report(ds, 2 if failed else 1, StorageCommitmentPushModel, WELL_KNOWN)
        self.report_status.append(status.Status if status else None)
        self.reports.append((transaction_uid, [i for _, i in committed], [i for _, i in failed]))

    def stop(self):
        self.server.shutdown()


def _item(sop_class, sop_instance, reason=None):
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    if reason is not None:
        item.FailureReason = reason
    return item


def _files(tmp_path, folder):
    return sorted(os.listdir(tmp_path / "spool" / folder))


def commit_settings(tmp_path, scp, **changes):
    values = {"pacs.commit": True, "pacs.commit_timeout": 30.0, "clip.count": 3}
    values.update(changes)
    return settings(tmp_path, scp.port, "COMMITSCP", **values)


def _run_until(gateway, done, timeout=60):
    runner = threading.Thread(target=gateway.run)
    runner.start()
    deadline = time.monotonic() + timeout
    try:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gateway.stop()
        runner.join(30)
    return done()


def test_objects_stay_until_committed_on_the_same_association(tmp_path):
    scp = CommitmentSCP("report", delay=0.5)
    try:
        gateway = Gateway(commit_settings(tmp_path, scp), board.load("host"))
        seen_waiting = []

        def done():
            if _files(tmp_path, "stored"):
                seen_waiting.extend(_files(tmp_path, "stored"))
            return len(scp.reports) >= 1 and gateway.waiting() == [] and len(gateway.clips) == 3
        assert _run_until(gateway, done), (scp.stored, scp.requests, gateway.log.recent[-20:])
    finally:
        scp.stop()
    uids = sorted(c.sop_instance_uid for c in gateway.clips)
    assert sorted(scp.stored) == uids
    # Stored, then kept in stored/ until the report said committed.
    assert seen_waiting
    assert sorted(sum((r[1] for r in scp.requests), [])) == uids
    assert scp.report_status and all(s == 0x0000 for s in scp.report_status)
    assert _files(tmp_path, "stored") == [] and _files(tmp_path, "queue") == []
    assert gateway.committer.committed == 3
    assert json.loads((tmp_path / "spool" / COMMITMENT).read_text())["transactions"] == []


def test_a_failed_reference_is_sent_and_requested_again(tmp_path):
    scp = CommitmentSCP("fail-once")
    try:
        gateway = Gateway(commit_settings(tmp_path, scp, **{"clip.count": 2}), board.load("host"))
        assert _run_until(gateway, lambda: len(gateway.clips) == 2 and len(scp.reports) >= 2
                          and gateway.waiting() == []), (scp.requests, scp.reports)
    finally:
        scp.stop()
    failed = scp.reports[0][2]
    assert len(failed) == 1
    # The failed object was stored again and named in a new transaction.
    assert scp.stored.count(failed[0]) == 2
    assert any(failed[0] in r[1] for r in scp.requests[1:])
    assert len(set(t for t, _ in scp.requests)) == len(scp.requests)  # a Transaction UID per request
    assert _files(tmp_path, "stored") == [] and _files(tmp_path, "quarantine") == []
    assert gateway.committer.committed == 2 and gateway.committer.failed == 1


def test_no_report_keeps_every_object_and_asks_again(tmp_path):
    scp = CommitmentSCP("never")
    try:
        gateway = Gateway(commit_settings(tmp_path, scp, **{"clip.count": 2, "pacs.commit_timeout": 1.0}),
                          board.load("host"))
        assert _run_until(gateway, lambda: len(scp.requests) >= 2, timeout=30), scp.requests
        alarm = gateway.alarms.text("commitment")
        system = ConsoleSystem(gateway)
        status = "\n".join(system.status())
        listing = "\n".join(system.queue(["list"]))
    finally:
        scp.stop()
    uids = sorted(c.sop_instance_uid for c in gateway.clips)
    assert sorted(scp.stored) == uids
    # Nothing committed, nothing deleted: both wait in stored/.
    assert len(_files(tmp_path, "stored")) == 2
    assert sorted(scp.requests[1][1]) == uids and scp.requests[0][0] != scp.requests[1][0]
    assert alarm and "no storage commitment report" in alarm
    # The technician sees them waiting, and why.
    assert "commitment 2 stored, awaiting the PACS's commitment" in status, status
    assert "no storage commitment report" in status
    assert listing.count("awaiting commitment: ") == 2 and "patient Test^Gateway" in listing, listing


def test_commitment_off_releases_what_waited(tmp_path):
    scp = CommitmentSCP("never")
    try:
        gateway = Gateway(commit_settings(tmp_path, scp, **{"clip.count": 1}), board.load("host"))
        assert _run_until(gateway, lambda: len(scp.requests) >= 1, timeout=30)
        assert len(_files(tmp_path, "stored")) == 1
        cfg = dict(gateway.cfg)
        cfg["pacs.commit"] = False
        gateway = Gateway(cfg, board.load("host"))
        assert _run_until(gateway, lambda: _files(tmp_path, "stored") == [], timeout=30)
    finally:
        scp.stop()


def test_kill_9_between_store_and_report_loses_nothing(tmp_path):
    """The box is killed after its objects were stored and the request
    sent, before any report; restarted against an SCP that reports, every
    object is committed and only then leaves the spool."""
    silent = CommitmentSCP("never")
    spool = tmp_path / "spool"
    cfg = {
        "board": "host",
        "acquisition": {"width": 64, "height": 48, "pixel": "rgb8", "rate": [30, 1], "paced": False},
        "clip": {"frames": 4, "count": 2},
        "pacs": {"port": silent.port, "ae_title": "COMMITSCP", "commit": True, "commit_timeout": 1.0,
                 "idle_release": 0.2, "connect_timeout": 2, "dimse_timeout": 10},
        "spool": {"root": str(spool), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024,
                  "backoff_initial": 0.05, "backoff_max": 0.3},
    }
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "firmware.main", "--config", str(path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (silent.requests and len(os.listdir(spool / "stored")) == 2):
            time.sleep(0.05)
        assert silent.requests and len(os.listdir(spool / "stored")) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.stop()
    stored = sorted(os.listdir(spool / "stored"))
    assert len(stored) == 2
    kept = json.loads((spool / COMMITMENT).read_text())["transactions"]
    assert kept and sorted(n for t in kept for n, _, _ in t["objects"]) == stored
    reporting = CommitmentSCP("report")
    try:
        cfg["pacs"]["port"] = reporting.port
        cfg["clip"]["mode"] = "command"  # nothing new recorded: only the kept objects
        gateway = Gateway(_loaded(cfg), board.load("host"))
        assert _run_until(gateway, lambda: gateway.waiting() == [] and reporting.reports, timeout=60)
    finally:
        reporting.stop()
    assert os.listdir(spool / "stored") == [] and os.listdir(spool / "queue") == []
    committed = sorted(sum((r[1] for r in reporting.reports), []))
    assert committed == sorted(sum((r[1] for r in silent.requests[:1]), []))


def _loaded(tree):
    from firmware import config
    values = config.defaults()
    for key, value in config.flatten(tree).items():
        values[key] = value
    config.validate(values)
    return values


def test_report_parsing_refuses_what_is_not_a_report():
    from firmware.dicom import tags
    from firmware.dicom.element import encode_dataset
    from firmware.net import dimse
    command = {dimse.CommandField: dimse.N_EVENT_REPORT_RQ, dimse.EventTypeID: 2,
               dimse.AffectedSOPClassUID: commitment.STORAGE_COMMITMENT_PUSH_MODEL}
    data = encode_dataset([(tags.TransactionUID, "1.2.3"),
                           (tags.FailedSOPSequence, [[(tags.ReferencedSOPClassUID, "1.2.840.10008.5.1.4.1.1.7"),
                                                      (tags.ReferencedSOPInstanceUID, "1.2.3.4"),
                                                      (tags.FailureReason, 0x0213)]])], True)
    report = commitment.report_from(command, data, True)
    assert report.transaction_uid == "1.2.3" and report.committed == []
    assert report.failed == [("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4", 0x0213)]
    assert "Resource limitation" in commitment.failure_text(0x0213)
    with pytest.raises(ValueError):
        commitment.report_from({**command, dimse.EventTypeID: 7}, data, True)
    with pytest.raises(ValueError):
        commitment.report_from(command, encode_dataset([(tags.ReferencedSOPSequence, [])], True), True)


def test_store_commit_on_the_same_association(clips):
    scp = CommitmentSCP("report")
    try:
        result = modgate("store", "--aec", "COMMITSCP", "--commit", "--commit-timeout", "20", "127.0.0.1",
                         str(scp.port), clips["video"], clips["still"], clips["word"], timeout=60)
    finally:
        scp.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "storage commitment: 3 of 3 committed" in result.stdout
    assert len(scp.requests) == 1 and sorted(scp.requests[0][1]) == sorted(scp.stored)


def test_store_commit_partial_failure_and_no_report_exit_non_zero(clips):
    scp = CommitmentSCP("fail-once")
    try:
        result = modgate("store", "--aec", "COMMITSCP", "--commit", "127.0.0.1", str(scp.port),
                         clips["video"], clips["still"], timeout=60)
    finally:
        scp.stop()
    assert result.returncode == 1
    assert "storage commitment: 1 of 2 committed" in result.stdout
    assert "not committed: 0112 No such object instance" in result.stdout
    scp = CommitmentSCP("never")
    try:
        started = time.monotonic()
        result = modgate("store", "--aec", "COMMITSCP", "--commit", "--commit-timeout", "2", "127.0.0.1",
                         str(scp.port), clips["video"], timeout=60)
        took = time.monotonic() - started
    finally:
        scp.stop()
    assert result.returncode == 1 and took < 30
    assert "storage commitment: 0 of 1 committed" in result.stdout
    assert "not committed: no report within 2 s" in result.stdout


def _orthanc_for(tmp_path, box_port):
    """Orthanc as Storage Commitment SCP: it reports on a new association
    to the modality declared in its configuration (the box, AE MODGATE,
    listening on box_port)."""
    return Orthanc(tmp_path, DicomModalities={"box": ["MODGATE", "127.0.0.1", box_port]})


def test_store_commit_into_orthanc_reports_on_the_listener(tmp_path, clips):
    listen = free_port()
    server = _orthanc_for(tmp_path, listen)
    try:
        paths = [clips["video"], clips["still"], clips["word"]]
        result = modgate("store", "--aec", "ORTHANC", "--commit", "--commit-port", str(listen),
                         "--commit-timeout", "30", "127.0.0.1", str(server.dicom_port), *paths, timeout=90)
        stored = server.rest("/instances")
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "storage commitment: 3 of 3 committed" in result.stdout
    assert len(stored) == 3


def test_the_gateway_into_orthanc_keeps_nothing_once_committed(tmp_path):
    listen = free_port()
    server = _orthanc_for(tmp_path, listen)
    try:
        cfg = settings(tmp_path, server.dicom_port, "ORTHANC", **{
            "pacs.commit": True, "pacs.commit_port": listen, "pacs.commit_timeout": 30.0, "clip.count": 3})
        gateway = Gateway(cfg, board.load("host"))
        assert _run_until(gateway, lambda: len(gateway.clips) == 3 and gateway.waiting() == []
                          and gateway.committer.committed == 3, timeout=90), gateway.log.recent[-20:]
        uids = sorted(server.rest("/instances/%s" % i)["MainDicomTags"]["SOPInstanceUID"]
                      for i in server.rest("/instances"))
    finally:
        server.stop()
    assert uids == sorted(c.sop_instance_uid for c in gateway.clips)
    assert _files(tmp_path, "stored") == [] and _files(tmp_path, "queue") == []
    assert any("commitment: transaction" in line and "3 committed" in line for line in gateway.log.recent)


def test_retain_sent_applies_after_commitment(tmp_path):
    """spool.retain_sent keeps the last committed objects in sent/, never
    one the PACS has not committed to."""
    scp = CommitmentSCP("report")
    try:
        gateway = Gateway(commit_settings(tmp_path, scp, **{"spool.retain_sent": 2}), board.load("host"))
        assert _run_until(gateway, lambda: len(gateway.clips) == 3 and gateway.waiting() == []
                          and gateway.committer.committed == 3)
    finally:
        scp.stop()
    kept = _files(tmp_path, "sent")
    assert len(kept) == 2 and _files(tmp_path, "stored") == []
    names = sorted(c.name for c in gateway.clips)
    assert kept == names[1:]
