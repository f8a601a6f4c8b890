"""The procedure on the box and its MPPS (firmware/procedure.py), driven
through the console of a running gateway as a technician does: a worklist
from DCMTK's wlmscpfs, clips into storescp, MPPS to a pynetdicom MPPS SCP
that records what comes and in which order."""

import json
import os
import time

import pydicom
import pytest

from firmware.spool import MPPS, PROCEDURE
from tests.conftest import Storescp, dciodvfy, free_port
from tests.test_console import RunningGateway
from tests.test_faults import wait_for
from tests.test_gateway import H, W
from tests.test_mpps import mpps_scp  # noqa: F401 (a fixture)
from tests.test_worklist import Wlmscpfs, worklist_item

MPPS_CLASS = "1.2.840.10008.3.1.2.3.3"


@pytest.fixture
def peers(tmp_path):
    """A worklist of today with one item for this station, and a storescp."""
    today = time.strftime("%Y%m%d", time.gmtime())
    wl = Wlmscpfs(tmp_path / "db", "TODAY")
    worklist_item(wl.folder / "a.wl", "Müller^Jürgen", "P100", "A100", charset="ISO_IR 100", date=today)
    scp = Storescp(tmp_path / "rx", "+xa")
    try:
        yield wl.start(), scp
    finally:
        scp.stop()
        wl.stop()


def box_config(tmp_path, worklist_port, scp, mpps_port):
    return {
        "acquisition": {"width": W, "height": H, "pixel": "rgb8", "paced": True},
        "clip": {"mode": "command"},
        "pacs": {"port": scp.port, "ae_title": "STORESCP", "idle_release": 0.2},
        "worklist": {"host": "127.0.0.1", "port": worklist_port, "ae_title": "TODAY", "refresh": 0},
        "mpps": {"host": "127.0.0.1", "port": mpps_port, "ae_title": "MPPSSCP"},
        "spool": {"root": str(tmp_path / "spool"), "min_free_bytes": 0, "max_bytes": 64 * 1024 * 1024,
                  "backoff_initial": 0.05, "backoff_max": 0.5},
    }


def record(gw, seconds=0.3):
    out = gw.client("record start")
    assert out.returncode == 0, out.stdout + out.stderr
    time.sleep(seconds)
    assert gw.client("record stop").returncode == 0


def test_a_worklist_procedure_sends_in_progress_then_completed_with_every_clip(tmp_path, peers, mpps_scp):
    worklist_port, scp = peers
    mpps_port, seen, instances = mpps_scp
    gw = RunningGateway(tmp_path, box_config(tmp_path, worklist_port, scp, mpps_port))
    try:
        chosen = gw.client("worklist refresh", "worklist select 1")
        assert "procedure: Müller^Jürgen, ID P100, accession A100" in chosen.stdout, chosen.stdout + chosen.stderr
        shown = gw.client("procedure").stdout
        assert "not created yet (at the first clip)" in shown and "clips      0" in shown, shown
        assert seen == []  # selecting is not performing: nothing yet
        record(gw)
        assert wait_for(lambda: len(seen) == 1), gw.client("status", "log 30").stdout
        record(gw)
        assert wait_for(lambda: len(scp.files()) == 2), gw.client("status", "log 30").stdout
        # Mid-procedure, another item is not taken: never the next
        # patient's clip in this one's step.
        refused = gw.client("worklist select 1")
        assert "procedure of Müller^Jürgen under way with 2 clips" in refused.stderr + refused.stdout
        shown = gw.client("procedure").stdout
        assert "IN PROGRESS" in shown and "clips      2" in shown, shown
        ended = gw.client("procedure end")
        assert "procedure completed: 2 clips; MPPS COMPLETED queued" in ended.stdout, ended.stdout + ended.stderr
        assert wait_for(lambda: len(seen) == 2), gw.client("status", "log 30").stdout
        after = gw.client("procedure", "show patient").stdout
    finally:
        assert gw.stop() == 0
    assert [kind for kind, _, _ in seen] == ["create", "set"]
    (_, uid, created), (_, set_uid, final) = seen
    assert set_uid == uid
    assert created.PerformedProcedureStepStatus == "IN PROGRESS"
    assert str(created.PatientName) == "Müller^Jürgen" and created.PatientID == "P100"
    step = created.ScheduledStepAttributesSequence[0]
    assert step.StudyInstanceUID == "1.2.826.0.1.3680043.10.77.100" and step.AccessionNumber == "A100"
    assert step.ScheduledProcedureStepID == "SPS1" and step.RequestedProcedureID == "RP-P100"
    assert created.PerformedStationAETitle == "MODGATE" and created.Modality == "ES"
    assert final.PerformedProcedureStepStatus == "COMPLETED"
    assert final.PerformedProcedureStepEndDate and final.PerformedProcedureStepEndTime
    stored = [pydicom.dcmread(p, stop_before_pixels=True) for p in scp.files()]
    listed = [(s.SeriesInstanceUID, r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID)
              for s in final.PerformedSeriesSequence for r in s.ReferencedImageSequence]
    assert sorted(listed) == sorted((ds.SeriesInstanceUID, ds.SOPClassUID, ds.SOPInstanceUID) for ds in stored)
    assert len(set(ds.SeriesInstanceUID for ds in stored)) == 1  # one series per procedure
    for ds, path in zip(stored, scp.files()):
        ref = ds.ReferencedPerformedProcedureStepSequence[0]
        assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (MPPS_CLASS, uid)
        assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.77.100" and ds.AccessionNumber == "A100"
        errors, _ = dciodvfy(path)
        assert errors == [], errors
    # The procedure ended with its exam: the keys are clear.
    assert "no procedure under way" in after and "Müller" not in after


def test_mpps_waits_in_the_spool_while_the_scp_is_down_and_goes_in_order(tmp_path, peers):
    """No MPPS SCP at first: the N-CREATE and N-SET wait in the spool
    (status says so) across a restart of the gateway, then go in order
    to an SCP that comes up."""
    worklist_port, scp = peers
    port = free_port()
    cfg = box_config(tmp_path, worklist_port, scp, port)
    cfg["pacs"]["connect_timeout"] = 1
    gw = RunningGateway(tmp_path, cfg)
    try:
        gw.client("worklist refresh", "worklist select 1")
        record(gw)
        assert wait_for(lambda: len(scp.files()) == 1)
        assert "MPPS COMPLETED queued" in gw.client("procedure end").stdout
        status = gw.client("status", "procedure").stdout
    finally:
        assert gw.stop() == 0
    queued = sorted(os.listdir(tmp_path / "spool" / MPPS))
    assert queued == ["000000000001.json", "000000000002.json"], queued
    assert "ALARM" in status and "mpps" in status and "MPPS queue 2 messages waiting" in status, status
    # The SCP comes up on that port; a new start of the gateway sends both.
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    seen = []
    ae = AE(ae_title="MPPSSCP")
    ae.add_supported_context(ModalityPerformedProcedureStep)
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[
        (evt.EVT_N_CREATE, lambda e: (seen.append(("create", e.request.AffectedSOPInstanceUID)) or (0, None))),
        (evt.EVT_N_SET, lambda e: (seen.append(("set", e.request.RequestedSOPInstanceUID)) or (0, None)))])
    gw = RunningGateway(tmp_path, cfg)
    try:
        assert wait_for(lambda: len(seen) == 2, timeout=30), gw.client("status", "log 30").stdout
        assert wait_for(lambda: os.listdir(tmp_path / "spool" / MPPS) == [])
    finally:
        assert gw.stop() == 0
        server.shutdown()
    assert [k for k, _ in seen] == ["create", "set"] and seen[0][1] == seen[1][1]


def test_discontinue_with_a_reason_and_a_manual_procedure(tmp_path, peers, mpps_scp):
    worklist_port, scp = peers
    mpps_port, seen, _ = mpps_scp
    gw = RunningGateway(tmp_path, box_config(tmp_path, worklist_port, scp, mpps_port))
    try:
        assert "110514  Incorrect worklist entry selected" in gw.client("procedure discontinue ?").stdout
        gw.client("worklist refresh", "worklist select 1")
        record(gw)
        bad = gw.client("procedure discontinue 999")
        assert "999 is not a code of CID 9300" in bad.stderr + bad.stdout
        ended = gw.client("procedure discontinue 110514")
        assert "procedure discontinued: 1 clips; MPPS DISCONTINUED queued" in ended.stdout, ended.stdout
        assert wait_for(lambda: len(seen) == 2), gw.client("status", "log 30").stdout
        # Without a worklist: the typed patient, a study the box makes.
        refused = gw.client("procedure new")
        assert "no patient" in refused.stderr + refused.stdout
        made = gw.client("set patient.name Doe^Jane", "set patient.id MAN-1", "save", "procedure new")
        assert "procedure: Doe^Jane, ID MAN-1" in made.stdout, made.stdout + made.stderr
        record(gw)
        assert wait_for(lambda: len(seen) == 3 and len(scp.files()) == 2), gw.client("status", "log 30").stdout
        assert "procedure completed: 1 clips" in gw.client("exam end").stdout  # exam end ends it too
        assert wait_for(lambda: len(seen) == 4)
    finally:
        assert gw.stop() == 0
    final = seen[1][2]
    assert final.PerformedProcedureStepStatus == "DISCONTINUED"
    code = final.PerformedProcedureStepDiscontinuationReasonCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
        "110514", "DCM", "Incorrect worklist entry selected")
    manual = seen[2][2]
    assert str(manual.PatientName) == "Doe^Jane" and manual.PatientID == "MAN-1"
    manual_study = manual.ScheduledStepAttributesSequence[0].StudyInstanceUID
    stored = [pydicom.dcmread(p, stop_before_pixels=True) for p in scp.files()]
    assert manual_study in [ds.StudyInstanceUID for ds in stored]
    assert seen[3][2].PerformedProcedureStepStatus == "COMPLETED"


def test_a_reboot_mid_procedure_keeps_it(tmp_path, peers, mpps_scp):
    worklist_port, scp = peers
    mpps_port, seen, _ = mpps_scp
    cfg = box_config(tmp_path, worklist_port, scp, mpps_port)
    gw = RunningGateway(tmp_path, cfg)
    try:
        gw.client("worklist refresh", "worklist select 1")
        record(gw)
        assert wait_for(lambda: len(scp.files()) == 1 and len(seen) == 1)
    finally:
        assert gw.stop() == 0
    kept = json.loads((tmp_path / "spool" / PROCEDURE).read_text())["procedure"]
    assert len(kept["instances"]) == 1
    # The box starts again on what it saved (the procedure's keys with it).
    gw = RunningGateway(tmp_path, json.loads((tmp_path / "modgate.json").read_text()))
    try:
        shown = gw.client("procedure").stdout
        assert "Müller^Jürgen" in shown and "clips      1" in shown, shown
        record(gw)
        assert wait_for(lambda: len(scp.files()) == 2)
        gw.client("procedure end")
        assert wait_for(lambda: len(seen) == 2)
    finally:
        assert gw.stop() == 0
    refs = [r.ReferencedSOPInstanceUID for s in seen[1][2].PerformedSeriesSequence for r in s.ReferencedImageSequence]
    assert sorted(refs) == sorted(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in scp.files())
