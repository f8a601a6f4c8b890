"""The MPPS SCU (firmware/services/mpps.py) on the association driver,
against a pynetdicom MPPS SCP that checks what arrives and in which order."""

import copy
import threading

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

import board
from firmware.association import Association, Timeouts
from firmware.dicom.uid import generate_uid
from firmware.net import acse
from firmware.services import mpps
from tests.conftest import free_port

ITEM = {
    "PatientName": "Müller^Jürgen", "PatientID": "P100", "PatientBirthDate": "19700101", "PatientSex": "F",
    "AccessionNumber": "A100", "StudyInstanceUID": "1.2.826.0.1.3680043.10.77.100", "RequestedProcedureID": "RP-P100",
    "RequestedProcedureDescription": "Lower GI endoscopy", "ScheduledProcedureStepID": "SPS1",
    "ScheduledProcedureStepDescription": "Colonoscopy",
    "RequestedProcedureCodeSequence": [{"CodeValue": "45378", "CodingSchemeDesignator": "C4",
                                        "CodeMeaning": "Colonoscopy"}],
}
NOW = (2026, 11, 26, 9, 30, 15, 0)
LATER = (2026, 11, 26, 9, 52, 3, 0)


@pytest.fixture
def mpps_scp():
    """A pynetdicom MPPS SCP keeping each instance and what came, in order."""
    seen = []
    instances = {}
    lock = threading.Lock()

    def on_create(event):
        uid = event.request.AffectedSOPInstanceUID
        with lock:
            seen.append(("create", uid, copy.deepcopy(event.attribute_list)))
            if uid in instances:
                return 0x0111, None
            instances[uid] = event.attribute_list
        return 0x0000, event.attribute_list

    def on_set(event):
        uid = event.request.RequestedSOPInstanceUID
        with lock:
            seen.append(("set", uid, event.modification_list))
            if uid not in instances:
                return 0x0112, None
            instances[uid].update(event.modification_list)
            return 0x0000, event.modification_list

    ae = AE(ae_title="MPPSSCP")
    ae.add_supported_context(ModalityPerformedProcedureStep)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_N_CREATE, on_create), (evt.EVT_N_SET, on_set)])
    yield port, seen, instances
    server.shutdown()


def open_association(port):
    association = Association(board.load("host"), "127.0.0.1", port, "MPPSSCP", "MODGATE",
                              timeouts=Timeouts(connect=5, acse=5, dimse=5, network=5, artim=1))
    association.open(acse.propose(mpps.CONTEXTS))
    return association


def test_in_progress_then_completed_with_every_instance(mpps_scp):
    port, seen, instances = mpps_scp
    uid = generate_uid()
    association = open_association(port)
    try:
        assert mpps.create(association, uid, mpps.in_progress(ITEM, "MODGATE", "ROOM1", "ES", "PPS-1", NOW)) == (
            0x0000, "Success")
        series = [("1.2.826.0.1.3680043.10.77.100.1", "Endoscopy video", "Colonoscopy",
                   [("1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.826.0.1.3680043.10.77.100.1.1"),
                    ("1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.826.0.1.3680043.10.77.100.1.2")])]
        assert mpps.update(association, uid, mpps.completed(LATER, series)) == (0x0000, "Success")
    finally:
        association.release()
    assert [(kind, got) for kind, got, _ in seen] == [("create", uid), ("set", uid)]
    created = seen[0][2]
    assert created.PerformedProcedureStepStatus == "IN PROGRESS" and created.Modality == "ES"
    assert created.PatientName == "Müller^Jürgen" and created.PatientID == "P100"
    assert created.PerformedStationAETitle == "MODGATE" and created.PerformedProcedureStepID == "PPS-1"
    assert created.PerformedProcedureStepStartDate == "20261126" and created.PerformedProcedureStepStartTime == "093015"
    step = created.ScheduledStepAttributesSequence[0]
    assert step.StudyInstanceUID == ITEM["StudyInstanceUID"] and step.AccessionNumber == "A100"
    assert step.RequestedProcedureID == "RP-P100" and step.ScheduledProcedureStepID == "SPS1"
    assert created.ProcedureCodeSequence[0].CodeValue == "45378"
    assert len(created.PerformedSeriesSequence) == 0
    done = instances[uid]
    assert done.PerformedProcedureStepStatus == "COMPLETED"
    assert done.PerformedProcedureStepEndDate == "20261126" and done.PerformedProcedureStepEndTime == "095203"
    performed = done.PerformedSeriesSequence[0]
    assert performed.SeriesInstanceUID == "1.2.826.0.1.3680043.10.77.100.1" and performed.ProtocolName == "Colonoscopy"
    assert [r.ReferencedSOPInstanceUID for r in performed.ReferencedImageSequence] == [
        "1.2.826.0.1.3680043.10.77.100.1.1", "1.2.826.0.1.3680043.10.77.100.1.2"]


def test_discontinued_with_its_reason(mpps_scp):
    port, seen, instances = mpps_scp
    uid = generate_uid()
    association = open_association(port)
    try:
        mpps.create(association, uid, mpps.in_progress(ITEM, "MODGATE", "", "ES", "PPS-2", NOW))
        reason = {"CodeValue": "110514", "CodingSchemeDesignator": "DCM",
                  "CodeMeaning": "Incorrect worklist entry selected"}
        assert mpps.update(association, uid, mpps.completed(LATER, [], mpps.DISCONTINUED, reason))[0] == 0x0000
    finally:
        association.release()
    done = instances[uid]
    assert done.PerformedProcedureStepStatus == "DISCONTINUED"
    assert done.PerformedProcedureStepDiscontinuationReasonCodeSequence[0].CodeValue == "110514"


def test_a_failure_status_is_named(mpps_scp):
    port, _, _ = mpps_scp
    association = open_association(port)
    try:
        status, meaning = mpps.update(association, generate_uid(), mpps.completed(LATER, []))
    finally:
        association.release()
    assert (status, meaning) == (0x0112, "No such SOP Instance")
