"""The Modality Worklist SCU (PS3.4 Annex K, Modality Worklist Information
Model - FIND): a C-FIND (PS3.7 9.1.2) on the association driver, its
matches read with bounded memory.

    query = Query(station_ae_title="MODGATE", modality="ES", date="20261126")
    items, status = find(association, query, max_matches=100)

Each item is a dict keyed by the standard's keywords (KEYWORDS), the
Scheduled Procedure Step's attributes lifted to the top (one step per item,
as PS3.4 K.6.1.2 returns them). More matches than max_matches: a C-CANCEL
(PS3.7 9.3.2.3) is sent and the rest are not kept.
"""

from firmware.association import AssociationError
from firmware.dicom import tags
from firmware.dicom.decode import decode_dataset
from firmware.dicom.element import (ITEM_DELIMITER, SEQUENCE_DELIMITER, UNDEFINED_LENGTH, element_header, encode_dataset,
                                    item_header)
from firmware.dicom.iod import IODS
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, MODALITY_WORKLIST_FIND
from firmware.dicom.vr import encode_value
from firmware.net import dimse, message
from firmware.services.storage import associate

CONTEXTS = [(MODALITY_WORKLIST_FIND, EXPLICIT_VR_LITTLE_ENDIAN)]  # acse.propose adds Implicit VR LE
MAX_IDENTIFIER = 64 * 1024  # one match's identifier; a bigger one aborts the association

# The return keys, by the standard's keyword (PS3.4 Table K.6-1), in the
# order the host command prints them. The Scheduled Procedure Step's own
# keys are read from inside its sequence.
TOP_KEYS = (
    ("SpecificCharacterSet", tags.SpecificCharacterSet),
    ("AccessionNumber", tags.AccessionNumber),
    ("ReferringPhysicianName", tags.ReferringPhysicianName),
    ("PatientName", tags.PatientName),
    ("PatientID", tags.PatientID),
    ("PatientBirthDate", tags.PatientBirthDate),
    ("PatientSex", tags.PatientSex),
    ("StudyInstanceUID", tags.StudyInstanceUID),
    ("RequestedProcedureDescription", tags.RequestedProcedureDescription),
    ("AdmissionID", tags.AdmissionID),
    ("RequestedProcedureID", tags.RequestedProcedureID),
)
STEP_KEYS = (
    ("Modality", tags.Modality),
    ("ScheduledStationAETitle", tags.ScheduledStationAETitle),
    ("ScheduledProcedureStepStartDate", tags.ScheduledProcedureStepStartDate),
    ("ScheduledProcedureStepStartTime", tags.ScheduledProcedureStepStartTime),
    ("ScheduledPerformingPhysicianName", tags.ScheduledPerformingPhysicianName),
    ("ScheduledProcedureStepDescription", tags.ScheduledProcedureStepDescription),
    ("ScheduledProcedureStepID", tags.ScheduledProcedureStepID),
)
CODE_KEYS = (("CodeValue", tags.CodeValue), ("CodingSchemeDesignator", tags.CodingSchemeDesignator),
             ("CodeMeaning", tags.CodeMeaning))

# PS3.4 K.4.1.1.4 / C.4.1.1.4: C-FIND response statuses.
PENDING = (0xFF00, 0xFF01)
STATUS_MEANINGS = {
    0x0000: "Success: matching is complete",
    0xFF00: "Pending: matches are continuing",
    0xFF01: "Pending: matches are continuing, but an optional key was not supported",
    0xFE00: "Cancel: matching terminated due to a cancel request",
    0xA700: "Refused: out of resources",
    0xA900: "Error: identifier does not match SOP class",
    0x0122: "Refused: SOP class not supported",
}


class Query:
    """The matching keys (PS3.4 K.6.1.1): our Scheduled Station AE Title,
    the Modality, the Scheduled Procedure Step Start Date (YYYYMMDD, or a
    range YYYYMMDD-YYYYMMDD, PS3.4 C.2.2.2.5), optionally a Patient ID and
    an Accession Number (single value matching). None or "": any."""

    def __init__(self, station_ae_title=None, modality=None, date=None, patient_id=None, accession_number=None):
        self.station_ae_title = station_ae_title or ""
        self.modality = modality or ""
        self.date = date or ""
        self.patient_id = patient_id or ""
        self.accession_number = accession_number or ""
        for side in self.date.split("-") if self.date else ():
            if side:
                encode_value("DA", side)  # ValueError names what is wrong
        encode_value("AE", self.station_ae_title)
        encode_value("CS", self.modality)
        encode_value("LO", self.patient_id)
        encode_value("SH", self.accession_number)

    def identifier(self, explicit):
        """The C-FIND-RQ's identifier: the matching keys with values, every
        return key empty (universal matching, PS3.4 C.2.2.2.3)."""
        # Specific Character Set is asked for too: an SCP answers with it
        # only when asked (wlmscpfs does), and without it an item in Latin-1
        # could not be read (PS3.4 C.4.1.1.3.1 lets the SCP choose its set).
        top = [(tag, value) for tag, value in (
            (tags.SpecificCharacterSet, ""), (tags.AccessionNumber, self.accession_number), (tags.ReferringPhysicianName, ""),
            (tags.PatientName, ""), (tags.PatientID, self.patient_id), (tags.PatientBirthDate, ""),
            (tags.PatientSex, ""), (tags.StudyInstanceUID, ""), (tags.RequestedProcedureDescription, ""),
            (tags.RequestedProcedureCodeSequence, [[(t, "") for _, t in CODE_KEYS]]),
            (tags.AdmissionID, ""))]
        # The step's date may be a range, which no DA value is: it is
        # written as it is after each side was checked as a DA.
        date = self.date.encode()
        if len(date) & 1:
            date += b" "
        step = (encode_dataset([(tags.Modality, self.modality), (tags.ScheduledStationAETitle, self.station_ae_title)],
                               explicit)
                + element_header(tags.ScheduledProcedureStepStartDate, "DA", len(date), explicit) + date
                + encode_dataset([(tags.ScheduledProcedureStepStartTime, ""), (tags.ScheduledPerformingPhysicianName, ""),
                                  (tags.ScheduledProcedureStepDescription, ""), (tags.ScheduledProcedureStepID, "")],
                                 explicit))
        sequence = (element_header(tags.ScheduledProcedureStepSequence, "SQ", UNDEFINED_LENGTH, explicit)
                    + item_header() + step + ITEM_DELIMITER + SEQUENCE_DELIMITER)
        return (encode_dataset(top, explicit) + sequence
                + encode_dataset([(tags.RequestedProcedureID, "")], explicit))


def item_from(identifier):
    """One match as {keyword: value} (text values as str, decoded per its
    Specific Character Set); RequestedProcedureCodeSequence as a list of
    {CodeValue, CodingSchemeDesignator, CodeMeaning}."""
    item = {}
    for keyword, tag in TOP_KEYS:
        value = identifier.get(tag)
        if isinstance(value, str):
            item[keyword] = value
    steps = identifier.get(tags.ScheduledProcedureStepSequence) or [{}]
    for keyword, tag in STEP_KEYS:
        value = steps[0].get(tag)
        if isinstance(value, str):
            item[keyword] = value
    codes = []
    for code in identifier.get(tags.RequestedProcedureCodeSequence) or ():
        codes.append(dict((k, code[t]) for k, t in CODE_KEYS if isinstance(code.get(t), str)))
    item["RequestedProcedureCodeSequence"] = codes
    return item


def status_meaning(status):
    if status in STATUS_MEANINGS:
        return STATUS_MEANINGS[status]
    if status & 0xF000 == 0xC000:
        return "Failed: unable to process"
    return "Unknown status"


def find(association, query, max_matches):
    """Run the query on an open association: ([items], status, meaning,
    complete). status is the final C-FIND-RSP's (0000 success, FE00 after
    our cancel, else a failure); complete is False when there were more
    than max_matches matches and the rest were cancelled (an SCP that had
    sent them all already still ends with 0000, PS3.7 9.3.2.3). Raises AssociationError, or ValueError
    for a match that is no data set modgate reads (the association is
    aborted: its other responses cannot be skipped)."""
    context = association.negotiated.choose(MODALITY_WORKLIST_FIND, EXPLICIT_VR_LITTLE_ENDIAN)
    if context is None:
        raise AssociationError(association.negotiated.why_not(MODALITY_WORKLIST_FIND), permanent=True)
    context_id, ts = context
    explicit = ts != IMPLICIT_VR_LITTLE_ENDIAN
    message_id = association.next_message_id()
    association.send(context_id, dimse.c_find_rq(message_id, MODALITY_WORKLIST_FIND), query.identifier(explicit))
    reader = message.MessageReader(MAX_IDENTIFIER)
    items = []
    cancelled = False
    while True:
        _, command, identifier = association.response(message_id, dimse.C_FIND_RSP, reader=reader)
        status = command[dimse.Status]
        if status not in PENDING:
            return items, status, status_meaning(status), not cancelled
        if identifier is None or cancelled:
            continue
        if len(items) == max_matches:
            # PS3.7 9.3.2.3: the SCP ends with a Cancel (or Success) status.
            association.send(context_id, dimse.c_cancel_rq(message_id))
            cancelled = True
            continue
        try:
            items.append(item_from(decode_dataset(identifier, explicit)))
        except ValueError:
            association.abort()
            raise


def query_configured(cfg, board, today, log=None):
    """The gateway's worklist query, from its worklist.* keys: this
    station's steps (station.ae_title) for today's date, of the modality
    worklist.modality or else the IOD's. (items, status, meaning, complete);
    AssociationError when the SCP cannot be asked. today: "YYYYMMDD"."""
    query = Query(cfg["station.ae_title"], cfg["worklist.modality"] or IODS[cfg["clip.iod"]].modality, today)
    association = associate(cfg, board, "worklist", CONTEXTS, log)
    try:
        result = find(association, query, cfg["worklist.max_matches"])
    except ValueError as err:
        raise AssociationError("a worklist item modgate cannot read: %s" % err)
    association.release()
    return result


# What selecting an item sets: configuration key <- worklist keyword (the
# patient and study keys the clips are made with, config.EXAM_KEYS).
SELECT_KEYS = (
    ("patient.name", "PatientName"),
    ("patient.id", "PatientID"),
    ("patient.birth_date", "PatientBirthDate"),
    ("patient.sex", "PatientSex"),
    ("study.accession_number", "AccessionNumber"),
    ("study.description", "RequestedProcedureDescription"),
    ("study.referring_physician", "ReferringPhysicianName"),
    ("study.instance_uid", "StudyInstanceUID"),
    ("study.requested_procedure_id", "RequestedProcedureID"),
    ("study.scheduled_step_id", "ScheduledProcedureStepID"),
    ("study.scheduled_step_description", "ScheduledProcedureStepDescription"),
)


def selected_values(item):
    """{configuration key: value} for the item selected as the procedure."""
    return dict((key, item.get(keyword) or "") for key, keyword in SELECT_KEYS)


def line(number, item):
    """One item as the console lists it."""
    return "%2d  %s %s  %s  %s  %s  %s" % (
        number, item.get("ScheduledProcedureStepStartDate", ""), item.get("ScheduledProcedureStepStartTime", "")[:4],
        item.get("PatientName", "") or "-", item.get("PatientID", "") or "-", item.get("AccessionNumber", "") or "-",
        item.get("ScheduledProcedureStepDescription", "") or item.get("RequestedProcedureDescription", "") or "-")
