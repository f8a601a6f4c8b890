"""The PS3.8 state machine: a test per transition the requestor (SCU) side
can take, each driven through the public API from a state reached the way a
real association reaches it."""

import struct

import pytest

from firmware.net import pdu
from firmware.net.fsm import EVENTS, STATES, TRANSITIONS, ProtocolError, StateMachine

USER_INFO = pdu.user_information(16384, "1.2.3", "PEER")
RQ = pdu.a_associate_rq("SCP", "MODGATE", [(1, "1.2.840.10008.1.1", ["1.2.840.10008.1.2"])], USER_INFO)
AC = pdu.a_associate_ac("SCP", "MODGATE", [(1, 0, "1.2.840.10008.1.2")], USER_INFO)
RJ = pdu.a_associate_rj(1, 1, 7)
P_DATA = pdu.p_data_tf([(1, 3, b"\x00" * 8)])
INVALID = struct.pack(">BBI", 0x09, 0, 4) + bytes(4)

# How a requestor gets into each state it can be in.
PATHS = {
    "Sta1": [],
    "Sta4": ["Evt1"],
    "Sta5": ["Evt1", "Evt2"],
    "Sta6": ["Evt1", "Evt2", "Evt3"],
    "Sta7": ["Evt1", "Evt2", "Evt3", "Evt11"],
    "Sta9": ["Evt1", "Evt2", "Evt3", "Evt11", "Evt12"],
    "Sta11": ["Evt1", "Evt2", "Evt3", "Evt11", "Evt12", "Evt14"],
    "Sta13": ["Evt1", "Evt2", "Evt3", "Evt15"],
}


def fire(assoc, event):
    calls = {
        "Evt1": lambda: assoc.request(RQ),
        "Evt2": assoc.connected,
        "Evt3": lambda: assoc.receive(AC),
        "Evt4": lambda: assoc.receive(RJ),
        "Evt5": assoc.transport_indication,
        "Evt6": lambda: assoc.receive(RQ),
        "Evt7": lambda: assoc.accept(AC),
        "Evt8": lambda: assoc.reject(RJ),
        "Evt9": lambda: assoc.send_data(P_DATA),
        "Evt10": lambda: assoc.receive(P_DATA),
        "Evt11": assoc.release,
        "Evt12": lambda: assoc.receive(pdu.a_release_rq()),
        "Evt13": lambda: assoc.receive(pdu.a_release_rp()),
        "Evt14": assoc.release_response,
        "Evt15": assoc.abort,
        "Evt16": lambda: assoc.receive(pdu.a_abort(2, 1)),
        "Evt17": assoc.transport_closed,
        "Evt18": assoc.artim_expired,
        "Evt19": lambda: assoc.receive(INVALID),
    }
    calls[event]()


# PS3.8 Tables 9-6 to 9-9: the next state of each action (AR-8: requestor).
NEXT = {
    "AE-1": "Sta4", "AE-2": "Sta5", "AE-3": "Sta6", "AE-4": "Sta1", "AE-5": "Sta2", "AE-6": "Sta3",
    "AE-7": "Sta6", "AE-8": "Sta13", "DT-1": "Sta6", "DT-2": "Sta6", "AR-1": "Sta7", "AR-2": "Sta8",
    "AR-3": "Sta1", "AR-4": "Sta13", "AR-5": "Sta1", "AR-6": "Sta7", "AR-7": "Sta8", "AR-8": "Sta9",
    "AR-9": "Sta11", "AR-10": "Sta12", "AA-1": "Sta13", "AA-2": "Sta1", "AA-3": "Sta1", "AA-4": "Sta1",
    "AA-5": "Sta1", "AA-6": "Sta13", "AA-7": "Sta13", "AA-8": "Sta13",
}

# What each action must have put out: (PDU type sent or None, indication or None).
OUTPUT = {
    "AE-1": (None, None), "AE-2": (pdu.A_ASSOCIATE_RQ, None), "AE-3": (None, "accepted"),
    "AE-4": (None, "rejected"), "DT-1": (pdu.P_DATA_TF, None), "DT-2": (None, "data"),
    "AR-1": (pdu.A_RELEASE_RQ, None), "AR-2": (None, "release_requested"), "AR-3": (None, "released"), "AR-6": (None, "data"),
    "AR-8": (None, "release_requested"), "AR-9": (pdu.A_RELEASE_RP, None), "AA-1": (pdu.A_ABORT, None),
    "AA-2": (None, None), "AA-3": (None, "aborted"), "AA-4": (None, "provider_abort"), "AA-5": (None, None),
    "AA-6": (None, None), "AA-7": (pdu.A_ABORT, None), "AA-8": (pdu.A_ABORT, "provider_abort"),
}

REQUESTOR_TRANSITIONS = sorted(
    (event, state, action) for (event, state), action in TRANSITIONS.items() if state in PATHS
)


def test_table_is_complete():
    # PS3.8 Table 9-10 has 123 defined (event, state) cells.
    assert len(TRANSITIONS) == 123
    assert set(e for e, _ in TRANSITIONS) == set(EVENTS)
    assert set(s for _, s in TRANSITIONS) <= set(STATES)
    assert len(REQUESTOR_TRANSITIONS) == 68  # cells in the states a requestor can reach


@pytest.mark.parametrize("event,state,action", REQUESTOR_TRANSITIONS, ids=["%s-%s-%s" % t for t in REQUESTOR_TRANSITIONS])
def test_requestor_transition(event, state, action):
    assoc = StateMachine(16384, requestor=True)
    for step in PATHS[state]:
        fire(assoc, step)
    assert assoc.state == state
    assoc.data_to_send()
    while assoc.next_event():
        pass
    fire(assoc, event)
    assert assoc.history[-1] == (event, state, action)
    assert assoc.state == NEXT[action]
    sent = assoc.data_to_send()
    indication = assoc.next_event()
    pdu_type, kind = OUTPUT.get(action, (None, None))
    if pdu_type is None:
        assert sent == []
    else:
        assert len(sent) == 1 and bytes(sent[0][:1])[0] == pdu_type
        if action == "AA-8" or action == "AA-7":
            assert bytes(sent[0])[8] == 2  # source: service-provider
    assert (indication[0] if indication else None) == kind
    if action in ("AA-1", "AA-8", "AE-8", "AR-4"):
        assert assoc.artim_running
    if action in ("AA-2", "AA-5", "AR-5"):
        assert not assoc.artim_running


def test_primitive_in_wrong_state_is_refused():
    assoc = StateMachine(16384)
    with pytest.raises(ProtocolError, match="P-DATA request primitive is not allowed in Sta1"):
        assoc.send_data(P_DATA)
    assoc.request(RQ)
    with pytest.raises(ProtocolError):
        assoc.release()


def test_oversized_p_data_aborts_before_buffering():
    assoc = StateMachine(4096)
    for step in PATHS["Sta6"]:
        fire(assoc, step)
    assoc.data_to_send()
    assoc.next_event()
    # Only the 6-byte header of a 1 GB PDU arrives: refused at once.
    assoc.receive(struct.pack(">BBI", pdu.P_DATA_TF, 0, 1 << 30))
    assert assoc.state == "Sta13"
    assert "exceeds the negotiated maximum" in assoc.next_event()[1]
    assert len(assoc.framer._buf) == 0


def test_release_collision_requestor_side():
    assoc = StateMachine(16384, requestor=True)
    for step in PATHS["Sta11"]:
        fire(assoc, step)
    fire(assoc, "Evt13")
    assert assoc.state == "Sta1"
    assert [h[2] for h in assoc.history[-4:]] == ["AR-1", "AR-8", "AR-9", "AR-3"]


def test_state_does_not_grow_with_the_pdus_of_an_association():
    """DESIGN.md: memory is bounded by configuration, never by the work. An
    association that carries thousands of P-DATA-TF PDUs keeps at most
    HISTORY transitions and no queued bytes once they are taken."""
    from firmware.net.fsm import HISTORY

    assoc = StateMachine(16384, requestor=True)
    for step in PATHS["Sta6"]:
        fire(assoc, step)
    for _ in range(5000):
        fire(assoc, "Evt9")
        fire(assoc, "Evt10")
        assoc.data_to_send()
        while assoc.next_event():
            pass
    assert assoc.state == "Sta6"
    assert len(assoc.history) == HISTORY
    assert assoc.history[-1] == ("Evt10", "Sta6", "DT-2")


def test_acceptor_rejects_a_protocol_version_it_does_not_speak():
    """PS3.8 Table 9-6 AE-6 'otherwise': the provider answers A-ASSOCIATE-RJ
    itself (rejected-permanent, service-provider ACSE,
    protocol-version-not-supported) and starts ARTIM; the user never sees
    the request."""
    assoc = StateMachine(16384, requestor=False)
    assoc.transport_indication()
    rq = bytearray(RQ)
    rq[6:8] = b"\x00\x02"  # version 2 only: bit 0 clear (PS3.8 9.3.2)
    assoc.receive(bytes(rq))
    assert assoc.state == "Sta13" and assoc.artim_running
    [sent] = assoc.data_to_send()
    assert bytes(sent) == pdu.a_associate_rj(1, 2, 2)
    assert assoc.next_event() == ("provider_rejected", "protocol version 0x0002 not supported")
    # Version bits beyond bit 0 are ignored: the request goes to the user.
    assoc = StateMachine(16384, requestor=False)
    assoc.transport_indication()
    rq[6:8] = b"\x00\x03"
    assoc.receive(bytes(rq))
    assert assoc.state == "Sta3" and assoc.next_event()[0] == "requested"
