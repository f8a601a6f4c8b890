"""DIMSE messages (PS3.7 9 and Annex E): command sets in Implicit VR Little
Endian, C-ECHO and C-STORE, and what each status means."""

import struct

from firmware.dicom.element import encode_dataset
from firmware.dicom.uid import VERIFICATION

# Command Field values (PS3.7 E.1).
C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
C_FIND_RQ = 0x0020
C_FIND_RSP = 0x8020
C_CANCEL_RQ = 0x0FFF
N_SET_RQ = 0x0120
N_SET_RSP = 0x8120
N_CREATE_RQ = 0x0140
N_CREATE_RSP = 0x8140
N_EVENT_REPORT_RQ = 0x0100
N_EVENT_REPORT_RSP = 0x8100
N_ACTION_RQ = 0x0130
N_ACTION_RSP = 0x8130

# Command Data Set Type (PS3.7 E.1): 0x0101 means no data set follows.
NO_DATA_SET = 0x0101
DATA_SET_PRESENT = 0x0000

PRIORITY_MEDIUM = 0x0000

# Command set attributes (PS3.7 E.1-1), VR as the Implicit VR reader needs.
CommandGroupLength = 0x00000000
AffectedSOPClassUID = 0x00000002
CommandField = 0x00000100
MessageID = 0x00000110
MessageIDBeingRespondedTo = 0x00000120
Priority = 0x00000700
CommandDataSetType = 0x00000800
Status = 0x00000900
OffendingElement = 0x00000901
ErrorComment = 0x00000902
ErrorID = 0x00000903
AffectedSOPInstanceUID = 0x00001000
EventTypeID = 0x00001002
ActionTypeID = 0x00001008
RequestedSOPClassUID = 0x00000003
RequestedSOPInstanceUID = 0x00001001
MoveOriginatorApplicationEntityTitle = 0x00001030
MoveOriginatorMessageID = 0x00001031

COMMAND_VR = {
    CommandGroupLength: "UL",
    AffectedSOPClassUID: "UI",
    RequestedSOPClassUID: "UI",
    CommandField: "US",
    MessageID: "US",
    MessageIDBeingRespondedTo: "US",
    0x00000600: "AE",
    Priority: "US",
    CommandDataSetType: "US",
    Status: "US",
    OffendingElement: "AT",
    ErrorComment: "LO",
    ErrorID: "US",
    AffectedSOPInstanceUID: "UI",
    EventTypeID: "US",
    ActionTypeID: "US",
    RequestedSOPInstanceUID: "UI",
    MoveOriginatorApplicationEntityTitle: "AE",
    MoveOriginatorMessageID: "US",
}

MAX_COMMAND_SET = 16 * 1024  # a command set is a few hundred bytes


class DIMSEError(Exception):
    """A DIMSE message that does not follow PS3.7 (aborts the association)."""


def command_set(elements):
    """Encode a command: the elements plus Command Group Length first
    (PS3.7 E.1: its value counts the bytes after it)."""
    body = encode_dataset([(t, COMMAND_VR[t], v) for t, v in elements], explicit=False)
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def c_echo_rq(message_id):
    return command_set([
        (AffectedSOPClassUID, VERIFICATION),
        (CommandField, C_ECHO_RQ),
        (MessageID, message_id),
        (CommandDataSetType, NO_DATA_SET),
    ])


def c_store_rq(message_id, sop_class_uid, sop_instance_uid, priority=PRIORITY_MEDIUM):
    return command_set([
        (AffectedSOPClassUID, sop_class_uid),
        (CommandField, C_STORE_RQ),
        (MessageID, message_id),
        (Priority, priority),
        (CommandDataSetType, DATA_SET_PRESENT),
        (AffectedSOPInstanceUID, sop_instance_uid),
    ])


def c_find_rq(message_id, sop_class_uid, priority=PRIORITY_MEDIUM):
    """PS3.7 9.3.2.1: the identifier follows as the data set."""
    return command_set([
        (AffectedSOPClassUID, sop_class_uid),
        (CommandField, C_FIND_RQ),
        (MessageID, message_id),
        (Priority, priority),
        (CommandDataSetType, DATA_SET_PRESENT),
    ])


def c_cancel_rq(message_id_being_responded_to):
    """PS3.7 9.3.2.3: cancel the C-FIND with that Message ID."""
    return command_set([
        (CommandField, C_CANCEL_RQ),
        (MessageIDBeingRespondedTo, message_id_being_responded_to),
        (CommandDataSetType, NO_DATA_SET),
    ])


def n_create_rq(message_id, sop_class_uid, sop_instance_uid):
    """PS3.7 10.3.5.1: the attribute list follows as the data set; we give
    the instance's UID ourselves (the SCP may do it, we keep it spooled)."""
    return command_set([
        (AffectedSOPClassUID, sop_class_uid),
        (CommandField, N_CREATE_RQ),
        (MessageID, message_id),
        (CommandDataSetType, DATA_SET_PRESENT),
        (AffectedSOPInstanceUID, sop_instance_uid),
    ])


def n_set_rq(message_id, sop_class_uid, sop_instance_uid):
    """PS3.7 10.3.3.1: the modification list follows as the data set."""
    return command_set([
        (RequestedSOPClassUID, sop_class_uid),
        (CommandField, N_SET_RQ),
        (MessageID, message_id),
        (CommandDataSetType, DATA_SET_PRESENT),
        (RequestedSOPInstanceUID, sop_instance_uid),
    ])


def n_action_rq(message_id, sop_class_uid, sop_instance_uid, action_type_id):
    """PS3.7 10.3.4.1: the action information follows as the data set."""
    return command_set([
        (RequestedSOPClassUID, sop_class_uid),
        (CommandField, N_ACTION_RQ),
        (MessageID, message_id),
        (CommandDataSetType, DATA_SET_PRESENT),
        (RequestedSOPInstanceUID, sop_instance_uid),
        (ActionTypeID, action_type_id),
    ])


def n_event_report_rsp(message_id_being_responded_to, sop_class_uid, sop_instance_uid, event_type_id, status):
    """PS3.7 10.3.1.2: the answer to an N-EVENT-REPORT-RQ, without an event
    reply (none is defined for the SOP classes modgate receives)."""
    return command_set([
        (AffectedSOPClassUID, sop_class_uid),
        (CommandField, N_EVENT_REPORT_RSP),
        (MessageIDBeingRespondedTo, message_id_being_responded_to),
        (CommandDataSetType, NO_DATA_SET),
        (Status, status),
        (AffectedSOPInstanceUID, sop_instance_uid),
        (EventTypeID, event_type_id),
    ])


def refusal(command, status):
    """The response to a request command that we do not perform: its
    Command Field with the response bit (PS3.7 E.1), a failure status."""
    elements = [(CommandField, command.get(CommandField, 0) | 0x8000),
                (MessageIDBeingRespondedTo, command.get(MessageID, 0)),
                (CommandDataSetType, NO_DATA_SET),
                (Status, status)]
    for tag in (AffectedSOPClassUID, AffectedSOPInstanceUID):
        if command.get(tag):
            elements.append((tag, command[tag]))
    return command_set(elements)


def parse_command(data):
    """{tag: value} of an Implicit VR LE command set; US/UL as int, AT as
    int, text as str. Unknown group 0000 elements are kept as bytes."""
    if len(data) > MAX_COMMAND_SET:
        raise DIMSEError("command set of %d bytes" % len(data))
    values = {}
    pos = 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise DIMSEError("truncated command element at byte %d" % pos)
        group, elem, length = struct.unpack("<HHI", data[pos : pos + 8])
        pos += 8
        if group != 0 or length > len(data) - pos:
            raise DIMSEError("bad command element (%04X,%04X) of length %d" % (group, elem, length))
        raw = bytes(data[pos : pos + length])
        pos += length
        tag = elem
        vr = COMMAND_VR.get(tag)
        if vr == "US":
            value = struct.unpack("<H", raw)[0] if length == 2 else None
        elif vr == "UL":
            value = struct.unpack("<I", raw)[0] if length == 4 else None
        elif vr == "AT":
            value = [(g << 16) | e for g, e in (struct.unpack("<HH", raw[i : i + 4]) for i in range(0, length - 3, 4))]
        elif vr in ("UI", "AE", "LO"):
            value = raw.rstrip(b"\x00 ").decode("ascii", "replace")
        else:
            value = raw
        values[tag] = value
    if CommandField not in values:
        raise DIMSEError("command set without a Command Field")
    return values


# PS3.7 C.1.2 and PS3.4 B.2.3: status classes and meanings for C-STORE/C-ECHO.
SUCCESS = "success"
WARNING = "warning"
FAILURE = "failure"

STATUS_MEANINGS = {
    0x0000: "Success",
    0xB000: "Coercion of data elements",
    0xB006: "Elements discarded",
    0xB007: "Data set does not match SOP class",
    0x0107: "Attribute list error",
    0x0116: "Attribute value out of range",
    0x0117: "Invalid object instance",
    0x0122: "Refused: SOP class not supported",
    0x0124: "Refused: not authorized",
    0x0210: "Duplicate invocation",
    0x0211: "Unrecognized operation",
    0x0212: "Mistyped argument",
    0x0213: "Resource limitation",
    0xA700: "Refused: out of resources",
    0xA900: "Error: data set does not match SOP class",
    0xC000: "Error: cannot understand",
    0xFE00: "Cancel",
}


# PS3.7 C.1.2: the class of a status code by its range, first match wins:
# (mask, value, class, meaning for a code without one of its own above).
# Warnings (0001, Bxxx) mean the object was stored; everything else that is
# not 0000 is a failure, 0xFExx and unknown codes included. The sender and
# the Conformance Statement both read this table.
STATUS_RANGES = (
    (0xFFFF, 0x0000, SUCCESS, "Success"),
    (0xFFFF, 0x0001, WARNING, "Warning"),
    (0xF000, 0xB000, WARNING, "Warning"),
    (0xFF00, 0xA700, FAILURE, "Refused: out of resources"),
    (0xFF00, 0xA900, FAILURE, "Error: data set does not match SOP class"),
    (0xF000, 0xC000, FAILURE, "Error: cannot understand"),
    (0xFF00, 0xFE00, FAILURE, "Cancel"),
    (0x0000, 0x0000, FAILURE, "Unknown status"),
)


# PS3.7 C.1 / C.4 and 10.1: the statuses of DIMSE-N services, for the
# services that use them (MPPS, storage commitment). Warnings 0107 and 0116
# mean the operation was done.
N_STATUS_MEANINGS = {
    0x0000: "Success",
    0x0105: "No such attribute",
    0x0106: "Invalid attribute value",
    0x0107: "Warning: attribute list error",
    0x0110: "Processing failure",
    0x0111: "Duplicate SOP Instance",
    0x0112: "No such SOP Instance",
    0x0116: "Warning: attribute value out of range",
    0x0117: "Invalid object instance",
    0x0118: "No such SOP Class",
    0x0119: "Class-instance conflict",
    0x0120: "Missing attribute",
    0x0121: "Missing attribute value",
    0x0124: "Refused: not authorized",
    0x0210: "Duplicate invocation",
    0x0211: "Unrecognized operation",
    0x0212: "Mistyped argument",
    0x0213: "Resource limitation",
}


UNRECOGNIZED_OPERATION = 0x0211


def n_status_class(status):
    """(class, meaning) of a DIMSE-N response status."""
    meaning = N_STATUS_MEANINGS.get(status, "Unknown status")
    if status == 0x0000:
        return SUCCESS, meaning
    if status in (0x0107, 0x0116) or status & 0xF000 == 0xB000:
        return WARNING, meaning
    return FAILURE, meaning


def status_class(status):
    """(class, meaning) of a C-STORE/C-ECHO status (STATUS_RANGES)."""
    for mask, value, category, meaning in STATUS_RANGES:
        if status & mask == value:
            return category, STATUS_MEANINGS.get(status) or meaning
