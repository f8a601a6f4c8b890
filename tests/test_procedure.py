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
from tests.test_scu_tls import pki  # noqa: F401 (a fixture)
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
    stored = [pydicom.dcmread(p, stop_before_pixels=True) for p in scp.files()]
    performed = seen[1][2].PerformedSeriesSequence
    refs = [r.ReferencedSOPInstanceUID for s in performed for r in s.ReferencedImageSequence]
    assert sorted(refs) == sorted(ds.SOPInstanceUID for ds in stored)
    # One series per procedure, across the reboot too, numbered on; its
    # Protocol Name (Type 1, PS3.4 Table F.7.2-1) the scheduled step's.
    assert len(performed) == 1 and performed[0].ProtocolName == "Colonoscopy"
    assert set(ds.SeriesInstanceUID for ds in stored) == {performed[0].SeriesInstanceUID}
    assert sorted(int(ds.InstanceNumber) for ds in stored) == [1, 2]


@pytest.fixture
def refusing_scp():
    """A pynetdicom MPPS SCP that answers every request Processing Failure
    (0110) while refusing[0] is true, and records what came in order."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    seen = []
    refusing = [True]

    def answer(kind, uid):
        seen.append((kind, uid, refusing[0]))
        return (0x0110 if refusing[0] else 0x0000), None

    ae = AE(ae_title="MPPSSCP")
    ae.add_supported_context(ModalityPerformedProcedureStep)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[
        (evt.EVT_N_CREATE, lambda e: answer("create", e.request.AffectedSOPInstanceUID)),
        (evt.EVT_N_SET, lambda e: answer("set", e.request.RequestedSOPInstanceUID))])
    yield port, seen, refusing
    server.shutdown()


def test_a_refused_step_is_set_aside_with_an_alarm_and_the_rest_goes_on(tmp_path, peers, refusing_scp):
    """An SCP that answers a failure status: the N-CREATE is tried
    spool.max_failures times, then set aside with the later N-SET of its
    step (never sent alone); the objects and the next procedure's MPPS go
    on; the alarm stays until `procedure retry` puts them back, and then
    they go, in order."""
    worklist_port, scp = peers
    port, seen, refusing = refusing_scp
    cfg = box_config(tmp_path, worklist_port, scp, port)
    cfg["spool"]["max_failures"] = 2
    folder = tmp_path / "spool" / MPPS
    gw = RunningGateway(tmp_path, cfg)
    try:
        gw.client("worklist refresh", "worklist select 1")
        first = gw.client("procedure").stdout.split("MPPS       ")[1].split(",")[0]
        record(gw)
        assert wait_for(lambda: "mpps set aside" in gw.client("status").stdout), gw.client("status", "log 30").stdout
        assert len(scp.files()) == 1  # the clip was stored all the same
        assert "its N-CREATE was set aside" in gw.client("procedure").stdout
        assert "MPPS COMPLETED queued" in gw.client("procedure end").stdout
        # The N-SET of a step whose N-CREATE was set aside waits beside it.
        assert sorted(os.listdir(folder)) == ["000000000001.json.failed", "000000000002.json.failed"]
        refusing[0] = False
        gw.client("set patient.name Doe^Jane", "set patient.id MAN-2", "save", "procedure new")
        second = gw.client("procedure").stdout.split("MPPS       ")[1].split(",")[0]
        record(gw)
        assert "MPPS COMPLETED queued" in gw.client("procedure end").stdout
        assert wait_for(lambda: [k for k, u, _ in seen if u == second] == ["create", "set"]), \
            gw.client("status", "log 30").stdout
        # Sent since, and the alarm of the step set aside is still up.
        status = gw.client("status", "procedure").stdout
        assert "mpps set aside" in status and "MPPS queue 0 messages waiting, 2 set aside" in status, status
        assert "2 MPPS messages back in the queue" in gw.client("procedure retry").stdout
        assert wait_for(lambda: [k for k, u, r in seen if u == first and not r] == ["create", "set"]), \
            gw.client("status", "log 30").stdout
        assert wait_for(lambda: os.listdir(folder) == [])
        status = gw.client("status").stdout
    finally:
        assert gw.stop() == 0
    assert "mpps set aside" not in status, status
    assert [(k, r) for k, u, r in seen if u == first] == [("create", True), ("create", True), ("create", False),
                                                         ("set", False)]


def test_without_mpps_the_procedure_works_and_sends_nothing(tmp_path, peers):
    worklist_port, scp = peers
    cfg = box_config(tmp_path, worklist_port, scp, free_port())
    del cfg["mpps"]
    gw = RunningGateway(tmp_path, cfg)
    try:
        gw.client("worklist refresh", "worklist select 1")
        assert "MPPS       none (mpps.host is not set)" in gw.client("procedure").stdout
        record(gw)
        assert wait_for(lambda: len(scp.files()) == 1)
        ended = gw.client("procedure end").stdout
    finally:
        assert gw.stop() == 0
    assert "procedure completed: 1 clips" in ended and "MPPS" not in ended.split("\n")[0], ended
    ds = pydicom.dcmread(scp.files()[0], stop_before_pixels=True)
    assert "ReferencedPerformedProcedureStepSequence" not in ds
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.77.100"
    assert not os.path.exists(tmp_path / "spool" / MPPS) or os.listdir(tmp_path / "spool" / MPPS) == []


# -- the procedure's own rules, on a gateway that is not running ------------------

SERIES = (("", "MODGATE", "video-endoscopic", W, H, "rgb8"), "1.2.826.0.1.3680043.10.77.100.7", 1, 1)
ITEM = {"PatientName": "Doe^Jane", "PatientID": "MAN-1", "StudyInstanceUID": "1.2.826.0.1.3680043.10.77.100"}


def idle_box(tmp_path):
    import board
    from firmware.gateway import Gateway
    from tests.test_gateway import settings

    cfg = settings(tmp_path, free_port(), **{"mpps.host": "127.0.0.1", "clip.count": 0})
    return Gateway(cfg, board.load("host"))


def messages(tmp_path):
    folder = tmp_path / "spool" / MPPS
    return [json.loads((folder / n).read_text()) for n in sorted(os.listdir(folder))]


def test_an_n_create_that_cannot_be_spooled_goes_first_at_the_end(tmp_path):
    """The N-CREATE cannot be written when the first clip starts (the
    spool's storage fails): the clip goes on, the `mpps` alarm says so,
    and procedure end queues it before the N-SET."""
    gw = idle_box(tmp_path)
    uid = gw.procedure.begin(ITEM, "manual")["study.performed_step_uid"]
    clip = dict(gw.cfg, **{"study.performed_step_uid": uid})
    (tmp_path / "spool" / MPPS).write_bytes(b"")  # mpps/ cannot be made
    gw.procedure.clip_starting(clip)
    assert "cannot be kept in the spool" in gw.alarms.text("mpps")
    gw.procedure.clip_stored(clip, SERIES, "1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.3.4")
    (tmp_path / "spool" / MPPS).unlink()
    assert gw.procedure.end("COMPLETED") == "procedure completed: 1 clips; MPPS COMPLETED queued"
    create, final = messages(tmp_path)
    assert (create["kind"], final["kind"], final["status"]) == ("create", "set", "COMPLETED")
    assert create["uid"] == final["uid"] == uid
    assert final["series"] == [[SERIES[1], "", "video-endoscopic", [["1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.3.4"]]]]


def test_completed_with_no_clip_kept_is_discontinued(tmp_path):
    """The first clip started (N-CREATE queued) but none reached the
    spool: a COMPLETED step must list a performed series (PS3.4 Table
    F.7.2-1), so it ends DISCONTINUED (110513)."""
    gw = idle_box(tmp_path)
    uid = gw.procedure.begin(ITEM, "manual")["study.performed_step_uid"]
    gw.procedure.clip_starting(dict(gw.cfg, **{"study.performed_step_uid": uid}))
    line = gw.procedure.end("COMPLETED")
    assert line == "procedure discontinued: 0 clips; no clip was kept; MPPS DISCONTINUED queued", line
    final = messages(tmp_path)[1]
    assert (final["status"], final["reason"], final["series"]) == ("DISCONTINUED", "110513", [])


def test_the_spool_knows_its_mpps_files_and_reports_others(tmp_path):
    """mpps/ messages (waiting, set aside, a write's temporary) and
    procedure.json are the spool's own; anything else in mpps/ is
    reported, never touched."""
    from firmware.spool import Spool, check_root

    gw = idle_box(tmp_path)
    uid = gw.procedure.begin(ITEM, "manual")["study.performed_step_uid"]
    gw.procedure.clip_starting(dict(gw.cfg, **{"study.performed_step_uid": uid}))
    folder = tmp_path / "spool" / MPPS
    (folder / "000000000007.json.failed").write_text("{}")
    (folder / "000000000008.json.new").write_text("{")
    (folder / "notes.txt").write_text("theirs")
    (folder / "000000000009.json").mkdir()
    assert (tmp_path / "spool" / PROCEDURE).exists()
    storage = gw.board.open_storage(str(tmp_path / "spool"))
    assert check_root(storage) is None
    spool = Spool(storage, 1 << 20)
    assert spool.unknown() == [MPPS + "/000000000009.json", MPPS + "/notes.txt"]
    assert (folder / "notes.txt").read_text() == "theirs"


def test_mpps_over_tls_with_the_box_identity(tmp_path, pki):
    """mpps.tls: the messages go over DICOM TLS (PS3.15 B.9) with the
    box's one identity and trusted CAs (pacs.ca/cert/key) to an SCP that
    requires our client certificate; files that do not load are refused
    on save, naming pacs.ca."""
    import ssl
    import threading

    from pynetdicom import AE, evt
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    from firmware.config import ConfigError
    from firmware.gateway import check_applicable

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki["ca.crt"])
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(pki["server.crt"], pki["server.key"])
    seen = []
    ae = AE(ae_title="MPPSSCP")
    ae.add_supported_context(ModalityPerformedProcedureStep)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, ssl_context=context, evt_handlers=[
        (evt.EVT_N_CREATE, lambda e: (seen.append(e.request.AffectedSOPInstanceUID) or (0, None)))])
    gw = idle_box(tmp_path)
    gw.cfg.update({"mpps.port": port, "mpps.ae_title": "MPPSSCP", "mpps.tls": True, "pacs.ca": pki["ca.crt"],
                   "pacs.cert": pki["client.crt"], "pacs.key": pki["client.key"], "pacs.connect_timeout": 5.0})
    check_applicable(gw.cfg, gw.board)
    with pytest.raises(ConfigError) as refused:
        check_applicable(dict(gw.cfg, **{"pacs.ca": str(tmp_path / "missing.crt")}), gw.board)
    assert refused.value.key == "pacs.ca"
    uid = gw.procedure.begin(ITEM, "manual")["study.performed_step_uid"]
    gw.procedure.clip_starting(dict(gw.cfg, **{"study.performed_step_uid": uid}))
    thread = threading.Thread(target=gw.procedure.run)
    thread.start()
    try:
        assert wait_for(lambda: seen == [uid], timeout=20), gw.log.recent[-10:]
    finally:
        gw.stop()
        thread.join(10)
        server.shutdown()
    assert not thread.is_alive()
