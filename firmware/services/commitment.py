"""The Storage Commitment Push Model SOP Class (PS3.4 Annex J) as SCU, on
the association driver: the request (N-ACTION, J.3.2) and the report
(N-EVENT-REPORT, J.3.3), which comes back on the same association or on a
new one the SCP opens to us (firmware/listener.py).

    status, meaning = request(association, transaction_uid, [(sop_class, sop_instance), ...])
    report = report_from(command, data_set, explicit)      # a Report, or ValueError
    answer(association, context_id, command, status)        # N-EVENT-REPORT-RSP

Which objects wait for which transaction, and what becomes of them, is the
gateway's (firmware/committer.py); this file only speaks the protocol.
"""

from firmware.association import AssociationError
from firmware.dicom import tags
from firmware.dicom.decode import decode_dataset
from firmware.dicom.element import encode_dataset
from firmware.dicom.uid import (EXPLICIT_VR_LITTLE_ENDIAN, check_uid, IMPLICIT_VR_LITTLE_ENDIAN, STORAGE_COMMITMENT_PUSH_MODEL,
                                STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE)
from firmware.net import dimse

CONTEXTS = [(STORAGE_COMMITMENT_PUSH_MODEL, EXPLICIT_VR_LITTLE_ENDIAN)]  # acse.propose adds Implicit
# PS3.4 J.3.2.1.1: Action Type ID of "Request Storage Commitment".
REQUEST_STORAGE_COMMITMENT = 1
# PS3.4 J.3.3.1.1: Event Type IDs of the report.
SUCCESSFUL = 1
FAILURES_EXIST = 2
EVENT_TYPES = {SUCCESSFUL: "Storage Commitment Request Successful",
               FAILURES_EXIST: "Storage Commitment Request Complete - Failures Exist"}
# PS3.3 C.14.1.1: Failure Reason (0008,1197) in the Failed SOP Sequence.
FAILURE_REASONS = {
    0x0110: "Processing failure",
    0x0112: "No such object instance",
    0x0213: "Resource limitation",
    0x0122: "Referenced SOP Class not supported",
    0x0119: "Class / Instance conflict",
    0x0131: "Duplicate transaction UID",
}
# What a report's Failure Reason is taken for when it has none, and the
# N-EVENT-REPORT-RSP status for a report we cannot read (PS3.7 10.1.1.1.8).
PROCESSING_FAILURE = 0x0110
INVALID_ARGUMENT_VALUE = 0x0115
# A request names at most this many objects: its data set stays small
# (about 130 bytes an object), and an SCP answers it in one piece.
MAX_REFERENCES = 1000
# The largest report we read: every object of a request, committed or
# failed, with room to spare (Association.max_data_set).
MAX_REPORT = 512 * 1024


class Report:
    """What an N-EVENT-REPORT says: the transaction, the (class, instance)
    pairs committed, and the (class, instance, reason) ones that failed."""

    def __init__(self, transaction_uid, committed, failed):
        self.transaction_uid = transaction_uid
        self.committed = committed
        self.failed = failed

    def __str__(self):
        return "transaction %s: %d committed, %d failed" % (self.transaction_uid, len(self.committed),
                                                          len(self.failed))


def failure_text(reason):
    return "%04X %s" % (reason, FAILURE_REASONS.get(reason, "unknown failure reason"))


def action_information(transaction_uid, references):
    """The N-ACTION-RQ's data set elements (PS3.4 Table J.3-1)."""
    return [
        (tags.TransactionUID, transaction_uid),
        (tags.ReferencedSOPSequence, [[(tags.ReferencedSOPClassUID, c), (tags.ReferencedSOPInstanceUID, i)]
                                      for c, i in references]),
    ]


def request(association, transaction_uid, references):
    """N-ACTION "Request Storage Commitment" for references [(sop_class,
    sop_instance)] under transaction_uid: (status, meaning) of the
    N-ACTION-RSP. Raises AssociationError."""
    if not 0 < len(references) <= MAX_REFERENCES:
        raise ValueError("a commitment request names 1 to %d objects, not %d" % (MAX_REFERENCES, len(references)))
    context = association.negotiated.choose(STORAGE_COMMITMENT_PUSH_MODEL, EXPLICIT_VR_LITTLE_ENDIAN)
    if context is None:
        raise AssociationError(association.negotiated.why_not(STORAGE_COMMITMENT_PUSH_MODEL), permanent=True)
    context_id, ts = context
    data_set = encode_dataset(action_information(transaction_uid, references), ts != IMPLICIT_VR_LITTLE_ENDIAN)
    message_id = association.next_message_id()
    association.send(context_id, dimse.n_action_rq(message_id, STORAGE_COMMITMENT_PUSH_MODEL,
                                                   STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
                                                   REQUEST_STORAGE_COMMITMENT), data_set)
    _, command, _ = association.response(message_id, dimse.N_ACTION_RSP)
    status = command[dimse.Status]
    return status, dimse.n_status_class(status)[1]


def is_report(command):
    return (command.get(dimse.CommandField) == dimse.N_EVENT_REPORT_RQ
            and command.get(dimse.AffectedSOPClassUID) == STORAGE_COMMITMENT_PUSH_MODEL)


def _pairs(items, what):
    out = []
    for item in items or ():
        sop_class = item.get(tags.ReferencedSOPClassUID)
        sop_instance = item.get(tags.ReferencedSOPInstanceUID)
        if not sop_class or not sop_instance:
            raise ValueError("an item of the %s without its Referenced SOP Class/Instance UID" % what)
        out.append((sop_class, sop_instance, item.get(tags.FailureReason)))
    return out


def report_from(command, data_set, explicit):
    """The Report an N-EVENT-REPORT-RQ carries (PS3.4 J.3.3.1, Table
    J.3-2). ValueError when it is not one: another event type, no
    Transaction UID, items without their UIDs."""
    event = command.get(dimse.EventTypeID)
    if event not in EVENT_TYPES:
        raise ValueError("Event Type ID %s is not a storage commitment report" % (event,))
    if data_set is None:
        raise ValueError("a storage commitment report without its event information")
    found = decode_dataset(data_set, explicit)
    transaction_uid = found.get(tags.TransactionUID)
    if not transaction_uid:
        raise ValueError("a storage commitment report without a Transaction UID")
    committed = [(c, i) for c, i, _ in _pairs(found.get(tags.ReferencedSOPSequence), "Referenced SOP Sequence")]
    failed = []
    for c, i, reason in _pairs(found.get(tags.FailedSOPSequence), "Failed SOP Sequence"):
        # Failure Reason is Type 1 (Table J.3-2); one missing is a failure
        # all the same, of a reason we cannot name.
        failed.append((c, i, reason if isinstance(reason, int) else PROCESSING_FAILURE))
    return Report(transaction_uid, committed, failed)


def take_report(association, context_id, command, data_set, log):
    """Answer one request the peer sent us: a storage commitment report is
    answered with success and returned (the caller applies it); a report
    that cannot be read is answered Invalid Argument Value, anything else
    refused; both return None. Raises AssociationError only."""
    if not is_report(command):
        log("commitment: refused DIMSE command 0x%04X from the peer (only the N-EVENT-REPORT of storage "
            "commitment is taken)" % command.get(dimse.CommandField, 0))
        refuse(association, context_id, command)
        return None
    try:
        report = report_from(command, data_set, explicit(association, context_id))
    except ValueError as err:
        log("commitment: a report that cannot be read: %s" % err)
        answer(association, context_id, command, INVALID_ARGUMENT_VALUE)
        return None
    # Answered at once: were the box to go down before the report is
    # applied, its transaction is asked for again, never lost.
    answer(association, context_id, command)
    return report


def explicit(association, context_id):
    """Whether the data sets on context_id are in Explicit VR."""
    return association.negotiated.accepted[context_id][1] != IMPLICIT_VR_LITTLE_ENDIAN


def refuse(association, context_id, command):
    """Answer a request we do not perform (PS3.7 C.4.2: Unrecognized
    Operation)."""
    association.send(context_id, dimse.refusal(command, dimse.UNRECOGNIZED_OPERATION))


def _uid_or(value, default):
    """value if it is a UID (PS3.5 9.1), else default: a peer's mangled UID
    is not echoed back into our response."""
    try:
        check_uid(value)
    except (ValueError, TypeError):
        return default
    return value


def answer(association, context_id, command, status=0x0000):
    """N-EVENT-REPORT-RSP to the request command (PS3.7 10.1.1.1)."""
    association.send(context_id, dimse.n_event_report_rsp(
        command.get(dimse.MessageID) or 0,
        _uid_or(command.get(dimse.AffectedSOPClassUID), STORAGE_COMMITMENT_PUSH_MODEL),
        _uid_or(command.get(dimse.AffectedSOPInstanceUID), STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE),
        command.get(dimse.EventTypeID) if isinstance(command.get(dimse.EventTypeID), int) else SUCCESSFUL, status))
