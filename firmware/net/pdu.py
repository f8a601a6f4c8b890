"""Protocol Data Units (PS3.8 9.3): building them, framing a byte stream into
them, and parsing them with every length checked before anything is taken.

PDU and item headers are big endian (PS3.8 9.3.1); what travels inside
P-DATA-TF is DIMSE, little endian. A malformed PDU raises PDUError, which
the state machine turns into Evt19 (an A-ABORT), never an escape.
"""

import struct

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

PDU_NAMES = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    A_ASSOCIATE_AC: "A-ASSOCIATE-AC",
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    P_DATA_TF: "P-DATA-TF",
    A_RELEASE_RQ: "A-RELEASE-RQ",
    A_RELEASE_RP: "A-RELEASE-RP",
    A_ABORT: "A-ABORT",
}

APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1"  # PS3.7 A.2.1
PROTOCOL_VERSION = 1

# Item types (PS3.8 9.3.2, 9.3.3, Annex D).
ITEM_APPLICATION_CONTEXT = 0x10
ITEM_PRESENTATION_CONTEXT_RQ = 0x20
ITEM_PRESENTATION_CONTEXT_AC = 0x21
ITEM_ABSTRACT_SYNTAX = 0x30
ITEM_TRANSFER_SYNTAX = 0x40
ITEM_USER_INFORMATION = 0x50
ITEM_MAXIMUM_LENGTH = 0x51
ITEM_IMPLEMENTATION_CLASS_UID = 0x52
ITEM_ASYNCHRONOUS_OPERATIONS_WINDOW = 0x53
ITEM_ROLE_SELECTION = 0x54
ITEM_IMPLEMENTATION_VERSION_NAME = 0x55

# PS3.8 9.3.5: a PDV item is a 4-byte length, the context ID and the message
# control header, and the length counts the last two.
PDV_HEADER_LENGTH = 6
PDU_HEADER_LENGTH = 6
# Message control header bits (PS3.8 E.2).
MCH_COMMAND = 0x01
MCH_LAST = 0x02

# An association PDU carries UIDs and AE titles, never bulk data: anything
# larger than this is refused before it is buffered.
MAX_ASSOCIATION_PDU = 64 * 1024


class PDUError(Exception):
    """A PDU that does not follow PS3.8 9.3 (leads to Evt19)."""


def _pad_ae(title):
    raw = title.encode()
    if not 0 < len(raw) <= 16:
        raise ValueError("AE title must be 1 to 16 characters: %r" % (title,))
    return raw + b" " * (16 - len(raw))


def _item(item_type, body):
    return struct.pack(">BBH", item_type, 0, len(body)) + body


def _uid_item(item_type, uid):
    return _item(item_type, uid.encode())


def _pdu(pdu_type, body):
    return struct.pack(">BBI", pdu_type, 0, len(body)) + body


def user_information(maximum_length, implementation_class_uid, implementation_version_name=None, roles=()):
    """The User Information item (PS3.8 9.3.2.3, PS3.7 D.3.3): maximum
    length, implementation identity, and an SCP/SCU Role Selection sub-item
    (PS3.7 D.3.3.4) per (sop_class_uid, scu_role, scp_role) in roles; the
    asynchronous operations window is left out, which means 1/1 (PS3.7
    D.3.3.3)."""
    sub = struct.pack(">BBHI", ITEM_MAXIMUM_LENGTH, 0, 4, maximum_length)
    sub += _uid_item(ITEM_IMPLEMENTATION_CLASS_UID, implementation_class_uid)
    for sop_class, scu, scp in roles:
        uid = sop_class.encode()
        sub += _item(ITEM_ROLE_SELECTION, struct.pack(">H", len(uid)) + uid + struct.pack(">BB", scu, scp))
    if implementation_version_name:
        sub += _item(ITEM_IMPLEMENTATION_VERSION_NAME, implementation_version_name.encode())
    return _item(ITEM_USER_INFORMATION, sub)


def a_associate_rq(called_ae_title, calling_ae_title, contexts, user_info):
    """contexts: (context_id, abstract_syntax, [transfer_syntax, ...])."""
    items = _uid_item(ITEM_APPLICATION_CONTEXT, APPLICATION_CONTEXT_NAME)
    for context_id, abstract_syntax, transfer_syntaxes in contexts:
        sub = _uid_item(ITEM_ABSTRACT_SYNTAX, abstract_syntax)
        for ts in transfer_syntaxes:
            sub += _uid_item(ITEM_TRANSFER_SYNTAX, ts)
        items += _item(ITEM_PRESENTATION_CONTEXT_RQ, struct.pack(">BBBB", context_id, 0, 0, 0) + sub)
    items += user_info
    head = struct.pack(">HH", PROTOCOL_VERSION, 0) + _pad_ae(called_ae_title) + _pad_ae(calling_ae_title) + bytes(32)
    return _pdu(A_ASSOCIATE_RQ, head + items)


def a_associate_ac(called_ae_title, calling_ae_title, results, user_info):
    """results: (context_id, result, transfer_syntax or None); PS3.8
    9.3.3.2: a rejected context still names a transfer syntax field, which
    the requestor ignores."""
    items = _uid_item(ITEM_APPLICATION_CONTEXT, APPLICATION_CONTEXT_NAME)
    for context_id, result, ts in results:
        sub = _uid_item(ITEM_TRANSFER_SYNTAX, ts) if ts else b""
        items += _item(ITEM_PRESENTATION_CONTEXT_AC, struct.pack(">BBBB", context_id, 0, result, 0) + sub)
    items += user_info
    head = struct.pack(">HH", PROTOCOL_VERSION, 0) + _pad_ae(called_ae_title) + _pad_ae(calling_ae_title) + bytes(32)
    return _pdu(A_ASSOCIATE_AC, head + items)


def a_associate_rj(result, source, reason):
    return _pdu(A_ASSOCIATE_RJ, struct.pack(">BBBB", 0, result, source, reason))


def a_release_rq():
    return _pdu(A_RELEASE_RQ, bytes(4))


def a_release_rp():
    return _pdu(A_RELEASE_RP, bytes(4))


def a_abort(source=0, reason=0):
    return _pdu(A_ABORT, struct.pack(">BBBB", 0, 0, source, reason))


def p_data_tf(pdvs):
    """A P-DATA-TF with several PDVs: (context_id, control, data)."""
    body = b"".join(struct.pack(">IBB", len(d) + 2, c, m) + d for c, m, d in pdvs)
    return _pdu(P_DATA_TF, body)


class PDUFramer:
    """Cuts a received byte stream into whole PDUs.

    feed(data) returns a list of (pdu_type, body). Each PDU's type and length
    are checked as soon as its 6-byte header is in: an unknown type or a
    length over the limit raises PDUError before any of its body is kept.
    maximum_length is our negotiated maximum for P-DATA-TF (PS3.8 D.1).
    """

    def __init__(self, maximum_length):
        self.maximum_length = maximum_length
        self._buf = bytearray()
        self._need = None  # (type, length) of the PDU being collected

    def feed(self, data):
        buf = self._buf
        buf.extend(data)
        out = []
        pos = 0  # bytes of buf taken, dropped once at the end: MicroPython's
        # bytearray has no slice deletion (del buf[:n] is a TypeError there)
        while True:
            if self._need is None:
                if len(buf) - pos < PDU_HEADER_LENGTH:
                    break
                head = bytes(buf[pos : pos + 6])
                pdu_type, _, length = struct.unpack(">BBI", head)
                try:
                    self._check(pdu_type, length, head)
                except PDUError:
                    self._buf = bytearray()  # the stream is dead; keep nothing
                    raise
                pos += 6
                self._need = (pdu_type, length)
            pdu_type, length = self._need
            if len(buf) - pos < length:
                break
            body = bytes(buf[pos : pos + length])
            pos += length
            self._need = None
            out.append((pdu_type, body))
        if pos:
            self._buf = buf[pos:]
        return out

    def _check(self, pdu_type, length, head):
        if pdu_type not in PDU_NAMES:
            raise PDUError("unrecognized PDU type 0x%02X%s" % (pdu_type, _not_dicom(head)))
        if pdu_type == P_DATA_TF:
            if length > self.maximum_length:
                raise PDUError("P-DATA-TF of %d bytes exceeds the negotiated maximum %d" % (length, self.maximum_length))
        elif pdu_type in (A_ASSOCIATE_RQ, A_ASSOCIATE_AC):
            if length > MAX_ASSOCIATION_PDU:
                raise PDUError("%s of %d bytes exceeds %d" % (PDU_NAMES[pdu_type], length, MAX_ASSOCIATION_PDU))
            if length < 68:
                raise PDUError("%s of %d bytes is shorter than its fixed fields" % (PDU_NAMES[pdu_type], length))
        elif length != 4:
            raise PDUError("%s must be 4 bytes long, not %d" % (PDU_NAMES[pdu_type], length))


def _not_dicom(head):
    """What a stream that is no PDU stream looks like, from its first
    bytes: the usual wrong ports. Empty if it looks like nothing known."""
    if head[:5] == b"HTTP/" or head[:1] == b"<":
        # An HTTP server that read the A-ASSOCIATE-RQ as a bad request
        # answers with a status line (RFC 9112 2.1, 'HTTP/1.1 400 ...') or,
        # taking it for HTTP/0.9, with the bare HTML of its error page.
        return ": the peer answered in HTTP (%s); this port looks like an HTTP server, not a DICOM one" % (
            "a status line" if head[:1] == b"H" else "an HTML page")
    return ""


class _Reader:
    """Reads fields from a body, refusing to read past its end."""

    def __init__(self, data, what):
        self.data = data
        self.pos = 0
        self.what = what

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n < 0 or n > self.remaining():
            raise PDUError("%s: field of %d bytes overruns the %d left" % (self.what, n, self.remaining()))
        piece = self.data[self.pos : self.pos + n]
        self.pos += n
        return piece

    def unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))


def _uid(raw):
    # PS3.8 9.3.2.2: UIDs may be NUL-padded by some peers; trailing spaces too.
    return bytes(raw).rstrip(b"\x00 ").decode("ascii", "replace")


class AssociateInfo:
    """What an A-ASSOCIATE-RQ or -AC says. For -AC, contexts maps context ID
    to (result, transfer syntax or None); for -RQ, to (abstract syntax,
    [transfer syntaxes])."""

    def __init__(self):
        self.called_ae_title = ""
        self.calling_ae_title = ""
        self.application_context = None
        self.contexts = {}
        self.maximum_length = 0
        self.implementation_class_uid = None
        self.implementation_version_name = None
        self.roles = {}  # SOP class UID -> (SCU role, SCP role), PS3.7 D.3.3.4


def protocol_version(body):
    """The Protocol-version field of an A-ASSOCIATE-RQ or -AC body (PS3.8
    9.3.2: a bit per version; version 1 is bit 0)."""
    return struct.unpack(">H", bytes(body[:2]))[0]


def parse_associate(pdu_type, body):
    """Parse an A-ASSOCIATE-RQ or -AC body (PS3.8 9.3.2, 9.3.3)."""
    name = PDU_NAMES[pdu_type]
    r = _Reader(body, name)
    version, _ = r.unpack(">HH", 4)
    if not version & PROTOCOL_VERSION:
        raise PDUError("%s: protocol version 0x%04X not supported" % (name, version))
    info = AssociateInfo()
    info.called_ae_title = bytes(r.take(16)).decode("ascii", "replace").strip()
    info.calling_ae_title = bytes(r.take(16)).decode("ascii", "replace").strip()
    r.take(32)
    while r.remaining():
        item_type, _, length = r.unpack(">BBH", 4)
        item = _Reader(r.take(length), "%s item 0x%02X" % (name, item_type))
        if item_type == ITEM_APPLICATION_CONTEXT:
            info.application_context = _uid(item.take(length))
        elif item_type == ITEM_PRESENTATION_CONTEXT_AC and pdu_type == A_ASSOCIATE_AC:
            context_id, _, result, _ = item.unpack(">BBBB", 4)
            ts = None
            while item.remaining():
                sub_type, _, sub_length = item.unpack(">BBH", 4)
                value = item.take(sub_length)
                if sub_type == ITEM_TRANSFER_SYNTAX:
                    ts = _uid(value)
            info.contexts[context_id] = (result, ts)
        elif item_type == ITEM_PRESENTATION_CONTEXT_RQ and pdu_type == A_ASSOCIATE_RQ:
            context_id, _, _, _ = item.unpack(">BBBB", 4)
            abstract, syntaxes = None, []
            while item.remaining():
                sub_type, _, sub_length = item.unpack(">BBH", 4)
                value = item.take(sub_length)
                if sub_type == ITEM_ABSTRACT_SYNTAX:
                    abstract = _uid(value)
                elif sub_type == ITEM_TRANSFER_SYNTAX:
                    syntaxes.append(_uid(value))
            info.contexts[context_id] = (abstract, syntaxes)
        elif item_type == ITEM_USER_INFORMATION:
            while item.remaining():
                sub_type, _, sub_length = item.unpack(">BBH", 4)
                value = item.take(sub_length)
                if sub_type == ITEM_MAXIMUM_LENGTH:
                    if sub_length != 4:
                        raise PDUError("%s: maximum length sub-item of %d bytes" % (name, sub_length))
                    info.maximum_length = struct.unpack(">I", value)[0]
                elif sub_type == ITEM_IMPLEMENTATION_CLASS_UID:
                    info.implementation_class_uid = _uid(value)
                elif sub_type == ITEM_ROLE_SELECTION:
                    sub = _Reader(value, "%s role selection" % name)
                    (uid_length,) = sub.unpack(">H", 2)
                    uid = _uid(sub.take(uid_length))
                    scu, scp = sub.unpack(">BB", 2)
                    info.roles[uid] = (scu, scp)
                elif sub_type == ITEM_IMPLEMENTATION_VERSION_NAME:
                    info.implementation_version_name = bytes(value).decode("ascii", "replace").strip()
        else:
            raise PDUError("%s: unexpected item type 0x%02X" % (name, item_type))
    if info.application_context is None:
        raise PDUError("%s without an application context item" % name)
    return info


def parse_fixed4(pdu_type, body):
    """The last two bytes of an A-ASSOCIATE-RJ / A-ABORT body, and for
    A-ASSOCIATE-RJ the result byte: (result, source, reason)."""
    return body[1], body[2], body[3]


def parse_p_data(body):
    """The PDVs of a P-DATA-TF: (context_id, control, data)."""
    r = _Reader(body, "P-DATA-TF")
    pdvs = []
    while r.remaining():
        (length,) = r.unpack(">I", 4)
        if length < 2:
            raise PDUError("P-DATA-TF: PDV item of length %d" % length)
        context_id, control = r.unpack(">BB", 2)
        if control & ~0x03:
            raise PDUError("P-DATA-TF: message control header 0x%02X has reserved bits set" % control)
        pdvs.append((context_id, control, r.take(length - 2)))
    if not pdvs:
        raise PDUError("P-DATA-TF without a PDV")
    return pdvs
