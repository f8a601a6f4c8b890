"""The Modality Performed Procedure Step SCU (PS3.4 Annex F): N-CREATE
(PS3.7 10.1.5) when a procedure starts, N-SET (10.1.3) when it is completed
or discontinued, on the association driver.

    elements = in_progress(item, station_ae_title, station_name, modality, pps_id, now)
    status, meaning = create(association, sop_instance_uid, elements)
    status, meaning = update(association, sop_instance_uid, completed(now, series))

item is a worklist match (services/worklist.item_from) or, for a procedure
without a worklist, a dict of the same keywords typed on the console.
series: [(series_instance_uid, series_description, protocol_name,
[(sop_class_uid, sop_instance_uid)])], every instance sent. The attribute
lists follow PS3.4 Table F.7.2-1 (Type 1 and 2 of N-CREATE, the final
N-SET's Type 1 at COMPLETED / DISCONTINUED).
"""

from firmware.association import AssociationError
from firmware.dicom import tags
from firmware.dicom.element import dataset_charset, encode_dataset
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, MODALITY_PERFORMED_PROCEDURE_STEP
from firmware.net import dimse

CONTEXTS = [(MODALITY_PERFORMED_PROCEDURE_STEP, EXPLICIT_VR_LITTLE_ENDIAN)]  # acse.propose adds Implicit
IN_PROGRESS = "IN PROGRESS"
COMPLETED = "COMPLETED"
DISCONTINUED = "DISCONTINUED"


def _da(now):
    return "%04d%02d%02d" % now[:3]


def _tm(now):
    return "%02d%02d%02d" % now[3:6]


def _codes(codes):
    return [[(tags.CodeValue, c.get("CodeValue", "")), (tags.CodingSchemeDesignator, c.get("CodingSchemeDesignator", "")),
             (tags.CodeMeaning, c.get("CodeMeaning", ""))] for c in codes or ()]


def in_progress(item, station_ae_title, station_name, modality, pps_id, now):
    """The N-CREATE attribute list: the Scheduled Step Attributes Sequence
    copied from the worklist item (PS3.4 F.7.2.1, IHE SWF), the patient,
    and the step IN PROGRESS from now. now: (Y, M, D, h, m, s, us)."""
    step = [
        (tags.AccessionNumber, item.get("AccessionNumber", "")),
        (tags.ReferencedStudySequence, []),
        (tags.StudyInstanceUID, item["StudyInstanceUID"]),
        (tags.RequestedProcedureDescription, item.get("RequestedProcedureDescription", "")),
        (tags.ScheduledProcedureStepDescription, item.get("ScheduledProcedureStepDescription", "")),
        (tags.ScheduledProtocolCodeSequence, []),
        (tags.ScheduledProcedureStepID, item.get("ScheduledProcedureStepID", "")),
        (tags.RequestedProcedureID, item.get("RequestedProcedureID", "")),
    ]
    return [
        (tags.Modality, modality),
        (tags.ProcedureCodeSequence, _codes(item.get("RequestedProcedureCodeSequence"))),
        (tags.ReferencedPatientSequence, []),
        (tags.PatientName, item.get("PatientName", "")),
        (tags.PatientID, item.get("PatientID", "")),
        (tags.PatientBirthDate, item.get("PatientBirthDate", "")),
        (tags.PatientSex, item.get("PatientSex", "")),
        (tags.StudyID, item.get("RequestedProcedureID", "")),
        (tags.PerformedStationAETitle, station_ae_title),
        (tags.PerformedStationName, station_name),
        (tags.PerformedLocation, ""),
        (tags.PerformedProcedureStepStartDate, _da(now)),
        (tags.PerformedProcedureStepStartTime, _tm(now)),
        (tags.PerformedProcedureStepEndDate, ""),
        (tags.PerformedProcedureStepEndTime, ""),
        (tags.PerformedProcedureStepStatus, IN_PROGRESS),
        (tags.PerformedProcedureStepID, pps_id),
        (tags.PerformedProcedureStepDescription, item.get("ScheduledProcedureStepDescription", "")),
        (tags.PerformedProcedureTypeDescription, item.get("RequestedProcedureDescription", "")),
        (tags.PerformedProtocolCodeSequence, []),
        (tags.ScheduledStepAttributesSequence, [step]),
        (tags.PerformedSeriesSequence, []),
    ]


def completed(now, series, status=COMPLETED, reason=None):
    """The final N-SET's modification list: the status, the end, and the
    Performed Series Sequence with every instance sent (PS3.4 F.7.2.2).
    reason: a code {CodeValue, CodingSchemeDesignator, CodeMeaning} for
    DISCONTINUED (PS3.16 CID 9300)."""
    items = []
    for series_uid, description, protocol, instances in series:
        items.append([
            (tags.RetrieveAETitle, ""),
            (tags.SeriesDescription, description),
            (tags.PerformingPhysicianName, ""),
            (tags.OperatorsName, ""),
            (tags.ReferencedImageSequence, [[(tags.ReferencedSOPClassUID, c), (tags.ReferencedSOPInstanceUID, i)]
                                            for c, i in instances]),
            (tags.ProtocolName, protocol),
            (tags.SeriesInstanceUID, series_uid),
            (tags.ReferencedNonImageCompositeSOPInstanceSequence, []),
        ])
    elements = [
        (tags.PerformedProcedureStepEndDate, _da(now)),
        (tags.PerformedProcedureStepEndTime, _tm(now)),
        (tags.PerformedProcedureStepStatus, status),
        (tags.PerformedSeriesSequence, items),
    ]
    if status == DISCONTINUED and reason:
        elements.append((tags.PerformedProcedureStepDiscontinuationReasonCodeSequence, _codes([reason])))
    return elements


def _send(association, command_of, response_field, sop_instance_uid, elements):
    context = association.negotiated.choose(MODALITY_PERFORMED_PROCEDURE_STEP, EXPLICIT_VR_LITTLE_ENDIAN)
    if context is None:
        raise AssociationError(association.negotiated.why_not(MODALITY_PERFORMED_PROCEDURE_STEP), permanent=True)
    context_id, ts = context
    charset = dataset_charset(elements)
    if charset:
        elements = [(tags.SpecificCharacterSet, charset)] + list(elements)
    data_set = encode_dataset(elements, ts != IMPLICIT_VR_LITTLE_ENDIAN, charset)
    message_id = association.next_message_id()
    association.send(context_id, command_of(message_id, MODALITY_PERFORMED_PROCEDURE_STEP, sop_instance_uid), data_set)
    _, command, _ = association.response(message_id, response_field)
    status = command[dimse.Status]
    return status, dimse.n_status_class(status)[1]


def create(association, sop_instance_uid, elements):
    """N-CREATE the MPPS instance: (status, meaning)."""
    return _send(association, dimse.n_create_rq, dimse.N_CREATE_RSP, sop_instance_uid, elements)


def update(association, sop_instance_uid, elements):
    """N-SET the MPPS instance: (status, meaning)."""
    return _send(association, dimse.n_set_rq, dimse.N_SET_RSP, sop_instance_uid, elements)
