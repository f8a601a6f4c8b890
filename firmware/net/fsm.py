"""The DICOM Upper Layer state machine (PS3.8 9.2), sans-I/O.

TRANSITIONS is PS3.8 Table 9-10 as data: (event, state) -> action. Each
action (PS3.8 Table 9-6 to 9-9) is a method that does what the standard says
and returns the next state. The machine never touches a socket or a clock:

- the user calls request()/connected()/send_data()/release()/abort(), and
  receive(bytes), transport_closed(), artim_expired() for what the network
  and the timer did;
- the driver then takes data_to_send() (buffers to write, in order),
  next_event() (indications: requested, accepted, rejected,
  provider_rejected, data, released, aborted, provider_abort), and looks
  at want_connect, close_transport and artim_running.
"""

from firmware.net import pdu
from firmware.net.pdu import PDUError

# Transitions kept for diagnosis; state must not grow per PDU (DESIGN.md).
HISTORY = 16

STATES = {
    "Sta1": "Idle",
    "Sta2": "Transport connection open (awaiting A-ASSOCIATE-RQ PDU)",
    "Sta3": "Awaiting local A-ASSOCIATE response primitive",
    "Sta4": "Awaiting transport connection opening to complete",
    "Sta5": "Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU",
    "Sta6": "Association established and ready for data transfer",
    "Sta7": "Awaiting A-RELEASE-RP PDU",
    "Sta8": "Awaiting local A-RELEASE response primitive",
    "Sta9": "Release collision requestor side; awaiting A-RELEASE response",
    "Sta10": "Release collision acceptor side; awaiting A-RELEASE-RP PDU",
    "Sta11": "Release collision requestor side; awaiting A-RELEASE-RP PDU",
    "Sta12": "Release collision acceptor side; awaiting A-RELEASE response primitive",
    "Sta13": "Awaiting Transport Connection Close Indication",
}

EVENTS = {
    "Evt1": "A-ASSOCIATE request (local user)",
    "Evt2": "Transport connect confirmation",
    "Evt3": "A-ASSOCIATE-AC PDU received",
    "Evt4": "A-ASSOCIATE-RJ PDU received",
    "Evt5": "Transport connection indication",
    "Evt6": "A-ASSOCIATE-RQ PDU received",
    "Evt7": "A-ASSOCIATE response primitive (accept)",
    "Evt8": "A-ASSOCIATE response primitive (reject)",
    "Evt9": "P-DATA request primitive",
    "Evt10": "P-DATA-TF PDU received",
    "Evt11": "A-RELEASE request primitive",
    "Evt12": "A-RELEASE-RQ PDU received",
    "Evt13": "A-RELEASE-RP PDU received",
    "Evt14": "A-RELEASE response primitive",
    "Evt15": "A-ABORT request primitive",
    "Evt16": "A-ABORT PDU received",
    "Evt17": "Transport connection closed indication",
    "Evt18": "ARTIM timer expired",
    "Evt19": "Unrecognized or invalid PDU received",
}

_PDU_EVENTS = {
    pdu.A_ASSOCIATE_RQ: "Evt6",
    pdu.A_ASSOCIATE_AC: "Evt3",
    pdu.A_ASSOCIATE_RJ: "Evt4",
    pdu.P_DATA_TF: "Evt10",
    pdu.A_RELEASE_RQ: "Evt12",
    pdu.A_RELEASE_RP: "Evt13",
    pdu.A_ABORT: "Evt16",
}


def _row(pattern):
    """One event's row of Table 9-10 from 'state:action' words; 'Sta5-12'
    stands for the states 5 to 12."""
    row = {}
    for word in pattern.split():
        states, action = word.split(":")
        if "-" in states:
            first, last = states[3:].split("-")
            for n in range(int(first), int(last) + 1):
                row["Sta%d" % n] = action
        else:
            row[states] = action
    return row


# PS3.8 Table 9-10, one event a line.
_TABLE = {
    "Evt1": "Sta1:AE-1",
    "Evt2": "Sta4:AE-2",
    "Evt3": "Sta2:AA-1 Sta3:AA-8 Sta5:AE-3 Sta6-12:AA-8 Sta13:AA-6",
    "Evt4": "Sta2:AA-1 Sta3:AA-8 Sta5:AE-4 Sta6-12:AA-8 Sta13:AA-6",
    "Evt5": "Sta1:AE-5",
    "Evt6": "Sta2:AE-6 Sta3:AA-8 Sta5-12:AA-8 Sta13:AA-7",
    "Evt7": "Sta3:AE-7",
    "Evt8": "Sta3:AE-8",
    "Evt9": "Sta6:DT-1 Sta8:AR-7",
    "Evt10": "Sta2:AA-1 Sta3:AA-8 Sta5:AA-8 Sta6:DT-2 Sta7:AR-6 Sta8-12:AA-8 Sta13:AA-6",
    "Evt11": "Sta6:AR-1",
    "Evt12": "Sta2:AA-1 Sta3:AA-8 Sta5:AA-8 Sta6:AR-2 Sta7:AR-8 Sta8-12:AA-8 Sta13:AA-6",
    "Evt13": "Sta2:AA-1 Sta3:AA-8 Sta5:AA-8 Sta6:AA-8 Sta7:AR-3 Sta8:AA-8 Sta9:AA-8 Sta10:AR-10 Sta11:AR-3 Sta12:AA-8 Sta13:AA-6",
    "Evt14": "Sta8:AR-4 Sta9:AR-9 Sta12:AR-4",
    "Evt15": "Sta3:AA-1 Sta4:AA-2 Sta5-12:AA-1",
    "Evt16": "Sta2:AA-2 Sta3:AA-3 Sta5-12:AA-3 Sta13:AA-2",
    "Evt17": "Sta2:AA-5 Sta3:AA-4 Sta4:AA-4 Sta5-12:AA-4 Sta13:AR-5",
    "Evt18": "Sta2:AA-2 Sta13:AA-2",
    "Evt19": "Sta2:AA-1 Sta3:AA-8 Sta5-12:AA-8 Sta13:AA-7",
}

TRANSITIONS = {}
for _event, _pattern in _TABLE.items():
    for _state, _action in _row(_pattern).items():
        TRANSITIONS[(_event, _state)] = _action

# A-ABORT sources and the provider's reasons (PS3.8 9.3.8).
ABORT_SOURCE_USER = 0
ABORT_SOURCE_PROVIDER = 2
ABORT_REASON_NOT_SPECIFIED = 0
ABORT_REASON_UNRECOGNIZED_PDU = 1
ABORT_REASON_UNEXPECTED_PDU = 2
ABORT_REASON_INVALID_PARAMETER = 6
# The one A-ASSOCIATE-RJ the provider sends itself (PS3.8 9.3.4, AE-6):
# rejected-permanent, source service-provider (ACSE), protocol-version-not-supported.
REJECT_PERMANENT = 1
REJECT_SOURCE_ACSE = 2
REJECT_REASON_PROTOCOL_VERSION = 2


class ProtocolError(Exception):
    """A local primitive issued in a state that does not allow it."""


class StateMachine:
    """One association's upper layer, as PS3.8 9.2 describes it."""

    def __init__(self, maximum_length, requestor=True):
        self.state = "Sta1"
        self.requestor = requestor
        self.framer = pdu.PDUFramer(maximum_length)
        self.maximum_length = maximum_length
        self.want_connect = False
        self.close_transport = False
        self.artim_running = False
        self.error = None  # why the last provider abort or rejection happened
        self.history = []  # the last HISTORY (event, state, action), for logs and tests
        self._out = []
        self._events = []
        self._rq = None
        self._pdu = None
        self._response = None

    # -- what the user and the driver call -----------------------------
    def request(self, associate_rq):
        """A-ASSOCIATE request with the A-ASSOCIATE-RQ PDU to send."""
        self._rq = associate_rq
        self._handle("Evt1")

    def connected(self):
        self._handle("Evt2")

    def transport_indication(self):
        self._handle("Evt5")

    def accept(self, associate_ac):
        self._response = associate_ac
        self._handle("Evt7")

    def reject(self, associate_rj):
        self._response = associate_rj
        self._handle("Evt8")

    def send_data(self, *buffers):
        """P-DATA request: buffers that together make whole P-DATA-TF PDUs."""
        self._response = buffers
        self._handle("Evt9")

    def release(self):
        self._handle("Evt11")

    def release_response(self):
        self._handle("Evt14")

    def abort(self):
        self._handle("Evt15")

    def transport_closed(self):
        self._handle("Evt17")

    def artim_expired(self):
        self._handle("Evt18")

    def receive(self, data):
        """Bytes from the transport; each whole PDU becomes an event."""
        if self.state in ("Sta1", "Sta4"):
            return
        try:
            pdus = self.framer.feed(data)
        except PDUError as err:
            self._invalid(err)
            return
        for pdu_type, body in pdus:
            if self.state == "Sta1":
                break
            self._pdu = (pdu_type, body)
            try:
                self._handle(_PDU_EVENTS[pdu_type])
            except PDUError as err:
                self._invalid(err)

    def data_to_send(self):
        out, self._out = self._out, []
        return out

    def next_event(self):
        if self._events:
            return self._events.pop(0)
        return None

    @property
    def established(self):
        return self.state == "Sta6"

    # -- the table ------------------------------------------------------
    def _invalid(self, err):
        self.error = str(err)
        self._handle("Evt19")

    def _handle(self, event):
        action = TRANSITIONS.get((event, self.state))
        if action is None:
            raise ProtocolError("%s is not allowed in %s (%s)" % (EVENTS[event], self.state, STATES[self.state]))
        self.history.append((event, self.state, action))
        if len(self.history) > HISTORY:
            del self.history[0]  # bounded: an association may carry millions of PDUs
        self.state = getattr(self, "_" + action.replace("-", "_"))()

    def _emit(self, *event):
        self._events.append(event)

    # -- PS3.8 Table 9-6: association establishment ----------------------
    def _AE_1(self):
        self.want_connect = True
        return "Sta4"

    def _AE_2(self):
        self.want_connect = False
        self._out.append(self._rq)
        return "Sta5"

    def _AE_3(self):
        info = pdu.parse_associate(*self._pdu)
        self._emit("accepted", info)
        return "Sta6"

    def _AE_4(self):
        self._emit("rejected", pdu.parse_fixed4(*self._pdu))
        self.close_transport = True
        return "Sta1"

    def _AE_5(self):
        self.artim_running = True
        return "Sta2"

    def _AE_6(self):
        self.artim_running = False
        version = pdu.protocol_version(self._pdu[1])
        if not version & pdu.PROTOCOL_VERSION:
            # AE-6's "otherwise": a request the service-provider cannot
            # take is rejected by it, without an indication to the user
            # (PS3.8 9.3.2: the receiver tests bit 0 only).
            self.error = "protocol version 0x%04X not supported" % version
            self._out.append(pdu.a_associate_rj(REJECT_PERMANENT, REJECT_SOURCE_ACSE, REJECT_REASON_PROTOCOL_VERSION))
            self._emit("provider_rejected", self.error)
            self.artim_running = True
            return "Sta13"
        self._emit("requested", pdu.parse_associate(*self._pdu))
        return "Sta3"

    def _AE_7(self):
        self._out.append(self._response)
        return "Sta6"

    def _AE_8(self):
        self._out.append(self._response)
        self.artim_running = True
        return "Sta13"

    # -- PS3.8 Table 9-7: data transfer ----------------------------------
    def _DT_1(self):
        self._out.extend(self._response)
        return "Sta6"

    def _DT_2(self):
        self._emit("data", pdu.parse_p_data(self._pdu[1]))
        return "Sta6"

    # -- PS3.8 Table 9-8: release ----------------------------------------
    def _AR_1(self):
        self._out.append(pdu.a_release_rq())
        return "Sta7"

    def _AR_2(self):
        self._emit("release_requested")
        return "Sta8"

    def _AR_3(self):
        self._emit("released")
        self.close_transport = True
        return "Sta1"

    def _AR_4(self):
        self._out.append(pdu.a_release_rp())
        self.artim_running = True
        return "Sta13"

    def _AR_5(self):
        self.artim_running = False
        return "Sta1"

    def _AR_6(self):
        self._emit("data", pdu.parse_p_data(self._pdu[1]))
        return "Sta7"

    def _AR_7(self):
        self._out.extend(self._response)
        return "Sta8"

    def _AR_8(self):
        self._emit("release_requested")
        return "Sta9" if self.requestor else "Sta10"

    def _AR_9(self):
        self._out.append(pdu.a_release_rp())
        return "Sta11"

    def _AR_10(self):
        self._emit("released")
        return "Sta12"

    # -- PS3.8 Table 9-9: abort ------------------------------------------
    def _AA_1(self):
        self._out.append(pdu.a_abort(ABORT_SOURCE_USER, ABORT_REASON_NOT_SPECIFIED))
        self.artim_running = True
        return "Sta13"

    def _AA_2(self):
        self.artim_running = False
        self.want_connect = False
        self.close_transport = True
        return "Sta1"

    def _AA_3(self):
        _, source, reason = pdu.parse_fixed4(*self._pdu)
        self._emit("aborted", source, reason)
        self.close_transport = True
        return "Sta1"

    def _AA_4(self):
        self._emit("provider_abort", "transport connection closed")
        return "Sta1"

    def _AA_5(self):
        self.artim_running = False
        return "Sta1"

    def _AA_6(self):
        return "Sta13"

    def _AA_7(self):
        self._out.append(pdu.a_abort(ABORT_SOURCE_PROVIDER, ABORT_REASON_UNEXPECTED_PDU))
        return "Sta13"

    def _AA_8(self):
        reason = ABORT_REASON_UNRECOGNIZED_PDU if self.error else ABORT_REASON_UNEXPECTED_PDU
        self._out.append(pdu.a_abort(ABORT_SOURCE_PROVIDER, reason))
        self._emit("provider_abort", self.error or "unexpected PDU in %s" % self.state)
        self.artim_running = True
        return "Sta13"
