"""Association negotiation (PS3.7 Annex D, PS3.8 7.1): the presentation
contexts modgate proposes, what the acceptor's answer means, and the names
of reject and abort reasons."""

from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, VERIFICATION
from firmware.net import pdu

# PS3.8 9.3.3.2: presentation context results.
ACCEPTANCE = 0
CONTEXT_RESULTS = {
    0: "acceptance",
    1: "user-rejection",
    2: "no-reason (provider rejection)",
    3: "abstract-syntax-not-supported (provider rejection)",
    4: "transfer-syntaxes-not-supported (provider rejection)",
}

# PS3.8 9.3.4: A-ASSOCIATE-RJ result, source and reason.
REJECT_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
REJECT_SOURCES = {
    1: "DICOM UL service-user",
    2: "DICOM UL service-provider (ACSE related function)",
    3: "DICOM UL service-provider (Presentation related function)",
}
REJECT_REASONS = {
    1: {1: "no-reason-given", 2: "application-context-name-not-supported",
        3: "calling-AE-title-not-recognized", 7: "called-AE-title-not-recognized"},
    2: {1: "no-reason-given", 2: "protocol-version-not-supported"},
    3: {1: "temporary-congestion", 2: "local-limit-exceeded"},
}

# PS3.8 9.3.8: A-ABORT source and (provider) reason.
ABORT_SOURCES = {0: "DICOM UL service-user", 1: "reserved", 2: "DICOM UL service-provider"}
ABORT_REASONS = {
    0: "reason-not-specified",
    1: "unrecognized-PDU",
    2: "unexpected-PDU",
    4: "unrecognized-PDU-parameter",
    5: "unexpected-PDU-parameter",
    6: "invalid-PDU-parameter-value",
}


class Rejection:
    """An A-ASSOCIATE-RJ, by name. permanent: retrying the same request will
    fail the same way (PS3.8 9.3.4 result 1); otherwise it may succeed later."""

    def __init__(self, result, source, reason):
        self.result = result
        self.source = source
        self.reason = reason
        self.permanent = result != 2

    def __str__(self):
        reason = REJECT_REASONS.get(self.source, {}).get(self.reason, "reason %d" % self.reason)
        return "association rejected: %s, source %s, reason %s%s" % (
            REJECT_RESULTS.get(self.result, "result %d" % self.result),
            REJECT_SOURCES.get(self.source, str(self.source)),
            reason,
            REJECT_HINTS.get((self.source, self.reason), ""),
        )


# What to check for the rejections a setting causes. The same message goes
# to the command line and to the gateway's log and alarms, and the net core
# does not know which: it names both settings.
REJECT_HINTS = {
    (1, 3): "; check the calling AE title: --aet on the command line, station.ae_title in the gateway",
    (1, 7): "; check the called AE title: --aec on the command line, pacs.ae_title in the gateway",
}


def describe_abort(source, reason):
    text = "association aborted by %s" % ABORT_SOURCES.get(source, "source %d" % source)
    if source == 2:
        text += ": " + ABORT_REASONS.get(reason, "reason %d" % reason)
    return text


# PS3.8 9.3.2.2: presentation context IDs are odd integers from 1 to 255.
MAX_CONTEXTS = 128


def propose(objects):
    """Presentation contexts for (sop_class_uid, transfer_syntax) pairs:
    per SOP class, the file's transfer syntax, Explicit VR LE and Implicit
    VR LE each in a context of its own (so the acceptor can take any one),
    with odd IDs from 1 (PS3.8 9.3.2.2). Returns [(id, abstract, [ts])]."""
    contexts = []
    seen = set()
    for sop_class, ts in objects:
        for syntax in (ts, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN):
            if (sop_class, syntax) in seen:
                continue
            seen.add((sop_class, syntax))
            context_id = 2 * len(contexts) + 1
            if len(contexts) >= MAX_CONTEXTS:
                raise ValueError("more than %d presentation contexts; send in several associations" % MAX_CONTEXTS)
            contexts.append((context_id, sop_class, [syntax]))
    return contexts


class Negotiated:
    """The outcome of negotiation: which proposed contexts were accepted."""

    def __init__(self, proposed, info):
        self.info = info
        self.accepted = {}  # context id -> (abstract syntax, transfer syntax)
        self.refused = {}  # context id -> (abstract syntax, result name)
        for context_id, abstract, syntaxes in proposed:
            result, ts = info.contexts.get(context_id, (2, None))
            if result == ACCEPTANCE and ts in syntaxes:
                self.accepted[context_id] = (abstract, ts)
            elif result == ACCEPTANCE:
                # PS3.8 9.3.3.2: the acceptor picks one of the proposed
                # transfer syntaxes; another cannot be used.
                self.refused[context_id] = (abstract, "accepted with transfer syntax %s, which was not proposed" % ts)
            else:
                self.refused[context_id] = (abstract, CONTEXT_RESULTS.get(result, "result %d" % result))
        # PS3.8 D.1: 0 means no limit on what the acceptor takes.
        self.peer_maximum_length = info.maximum_length

    def choose(self, sop_class, transfer_syntax):
        """(context_id, transfer syntax to send in) for an object, or None.
        Prefers the object's own syntax; an Explicit VR LE object may go as
        Implicit VR LE (converted while it is sent)."""
        fallback = None
        for context_id, (abstract, ts) in sorted(self.accepted.items()):
            if abstract != sop_class:
                continue
            if ts == transfer_syntax:
                return context_id, ts
            if transfer_syntax == EXPLICIT_VR_LITTLE_ENDIAN and ts == IMPLICIT_VR_LITTLE_ENDIAN:
                fallback = (context_id, ts)
        return fallback

    def why_not(self, sop_class):
        reasons = sorted(set(r for a, r in self.refused.values() if a == sop_class))
        if not reasons:
            return "no presentation context accepted for SOP class %s" % sop_class
        return "no presentation context accepted for SOP class %s (%s)" % (sop_class, ", ".join(reasons))


def associate_rq(called_ae_title, calling_ae_title, contexts, maximum_length, implementation_class_uid, version_name):
    return pdu.a_associate_rq(
        called_ae_title,
        calling_ae_title,
        contexts,
        pdu.user_information(maximum_length, implementation_class_uid, version_name),
    )


def associate_ac(info, results, roles, maximum_length, implementation_class_uid, version_name):
    """The A-ASSOCIATE-AC answering the request info (PS3.8 9.3.3): results
    {context_id: (result, transfer syntax)}, roles [(sop_class, scu, scp)]
    answering the request's role selection (PS3.7 D.3.3.4)."""
    return pdu.a_associate_ac(
        info.called_ae_title,
        info.calling_ae_title,
        [(context_id, result, ts) for context_id, (result, ts) in sorted(results.items())],
        pdu.user_information(maximum_length, implementation_class_uid, version_name, roles),
    )


def accepted(info, results):
    """The Negotiated outcome on the acceptor's side: what the request
    info proposed and what we answered (results as for associate_ac)."""
    answer = pdu.AssociateInfo()
    answer.contexts = results
    answer.maximum_length = info.maximum_length
    proposed = [(context_id, abstract, syntaxes) for context_id, (abstract, syntaxes) in sorted(info.contexts.items())]
    return Negotiated(proposed, answer)
