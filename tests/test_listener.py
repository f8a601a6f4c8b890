"""The box's listener (firmware/listener.py): the associations a PACS opens
to the box to send its storage commitment report (PS3.4 J.3.3). pynetdicom
plays the PACS; what the listener must refuse is refused with the right
A-ASSOCIATE-RJ or context result, and the listener goes on serving."""

import random
import socket
import threading
import time

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role
from pydicom.uid import JPEGBaseline8Bit
from pynetdicom.sop_class import CTImageStorage, StorageCommitmentPushModel, Verification

import board
from firmware.association import Association, AssociationError, Timeouts
from firmware.listener import Listener
from firmware.net import dimse, pdu
from firmware.services import commitment
from tests.test_scu_tls import pki  # noqa: F401 (a fixture)

WELL_KNOWN = "1.2.840.10008.1.20.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


class Box:
    """A listener serving in a thread, as the gateway runs it; reports
    taken are in .reports, log lines in .lines."""

    def __init__(self, peer_host="127.0.0.1", tls=None, peer_ae_title="PACS", handle=None, network=5.0):
        self.reports = []
        self.lines = []
        self.stop = threading.Event()
        self.listener = Listener(board.load("host"), 0, "MODGATE", peer_ae_title, peer_host,
                                 [commitment.STORAGE_COMMITMENT_PUSH_MODEL], handle or self.handle,
                                 log=self.lines.append, tls=tls,
                                 timeouts=Timeouts(acse=2.0, dimse=5.0, network=network)).open()
        self.port = self.listener.port
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop.is_set,))
        self.thread.start()

    def handle(self, association, context_id, command, data_set):
        report = commitment.take_report(association, context_id, command, data_set, self.lines.append)
        if report is not None:
            self.reports.append(report)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def box():
    b = Box()
    try:
        yield b
    finally:
        b.close()


def report_dataset(transaction="1.2.3.4", committed=(("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5"),)):
    ds = Dataset()
    ds.TransactionUID = transaction
    items = []
    for c, i in committed:
        item = Dataset()
        item.ReferencedSOPClassUID = c
        item.ReferencedSOPInstanceUID = i
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


def pacs(ae_title="PACS", contexts=(StorageCommitmentPushModel,)):
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    for context in contexts:
        ae.add_requested_context(context)
    return ae


def test_a_report_on_a_new_association_with_role_selection(box):
    ae = pacs()
    role = build_role(StorageCommitmentPushModel, scp_role=True, scu_role=False)
    assoc = ae.associate("127.0.0.1", box.port, ae_title="MODGATE", ext_neg=[role])
    assert assoc.is_established
    # The role selection is answered: the PACS may act as SCP.
    context = [c for c in assoc.accepted_contexts if c.abstract_syntax == StorageCommitmentPushModel][0]
    assert context.as_scp
    status, _ = assoc.send_n_event_report(report_dataset(), 1, StorageCommitmentPushModel, WELL_KNOWN)
    assoc.release()
    assert status.Status == 0x0000
    assert assoc.is_released  # our A-RELEASE-RP came
    deadline = time.monotonic() + 5
    while not box.reports and time.monotonic() < deadline:
        time.sleep(0.02)
    [report] = box.reports
    assert report.transaction_uid == "1.2.3.4" and report.committed == [("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5")]


def test_a_report_without_role_selection_is_taken_too(box):
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert assoc.is_established
    status, _ = assoc.send_n_event_report(report_dataset("9.8.7"), 1, StorageCommitmentPushModel, WELL_KNOWN)
    assoc.release()
    assert status.Status == 0x0000
    time.sleep(0.2)
    assert [r.transaction_uid for r in box.reports] == ["9.8.7"]


def _rejection(assoc):
    rj = assoc.acceptor.primitive
    return (rj.result, rj.result_source, rj.diagnostic)


def test_unknown_calling_and_called_ae_titles_are_rejected(box):
    assoc = pacs("STRANGER").associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert assoc.is_rejected and _rejection(assoc) == (1, 1, 3)
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="NOT-US")
    assert assoc.is_rejected and _rejection(assoc) == (1, 1, 7)
    assert any("calling AE title 'STRANGER'" in line for line in box.lines)
    assert any("called AE title 'NOT-US'" in line for line in box.lines)
    # It goes on serving.
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert assoc.is_established
    assoc.release()


def test_a_peer_at_another_address_is_rejected():
    # The PACS is at 127.0.0.2; the peer comes from 127.0.0.1.
    b = Box(peer_host="127.0.0.2")
    try:
        assoc = pacs().associate("127.0.0.1", b.port, ae_title="MODGATE")
        assert assoc.is_rejected and _rejection(assoc) == (1, 1, 1)
        assert any("address 127.0.0.1 is not the PACS's" in line for line in b.lines)
    finally:
        b.close()


def test_other_sop_classes_are_refused_and_no_c_store_gets_in(box):
    assoc = pacs(contexts=(CTImageStorage, Verification, StorageCommitmentPushModel)).associate(
        "127.0.0.1", box.port, ae_title="MODGATE")
    assert assoc.is_established
    results = dict((c.abstract_syntax, c.result) for c in assoc.rejected_contexts)
    assert results == {CT: 3, Verification: 3}
    assert [c.abstract_syntax for c in assoc.accepted_contexts] == [StorageCommitmentPushModel]
    assoc.release()
    only_storage = pacs(contexts=(CTImageStorage,)).associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert only_storage.accepted_contexts == []
    only_storage.release()
    assert box.reports == []


def test_garbage_and_silence_do_not_stop_it(box):
    # Bytes that are no PDU.
    with socket.create_connection(("127.0.0.1", box.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n" + bytes(range(256)))
        raw.settimeout(5)
        try:
            answer = raw.recv(64)
        except OSError:
            answer = b""
    assert answer == b"" or answer[0] == pdu.A_ABORT
    # An A-ASSOCIATE-RQ whose lengths lie.
    with socket.create_connection(("127.0.0.1", box.port), timeout=5) as raw:
        raw.sendall(bytes([1, 0, 0, 0, 0, 200]) + b"\x00\x01" + b"x" * 20)
        raw.settimeout(5)
        try:
            raw.recv(64)
        except OSError:
            pass
    # A peer that connects and says nothing: ended at the ACSE timeout.
    silent = socket.create_connection(("127.0.0.1", box.port), timeout=5)
    try:
        started = time.monotonic()
        silent.settimeout(10)
        assert silent.recv(64) == b""
        assert time.monotonic() - started < 8
    finally:
        silent.close()
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert assoc.is_established
    status, _ = assoc.send_n_event_report(report_dataset("5.5"), 1, StorageCommitmentPushModel, WELL_KNOWN)
    assoc.release()
    assert status.Status == 0x0000
    assert any("no A-ASSOCIATE-RQ within" in line for line in box.lines), box.lines


def test_another_request_on_the_context_is_refused(box):
    """An N-ACTION from the PACS (it would have us commit): refused with
    Unrecognized Operation, the association goes on."""
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE")
    status, _ = assoc.send_n_action(report_dataset(), 1, StorageCommitmentPushModel, WELL_KNOWN)
    assert status.Status == 0x0211
    status, _ = assoc.send_n_event_report(report_dataset("6.6"), 1, StorageCommitmentPushModel, WELL_KNOWN)
    assoc.release()
    assert status.Status == 0x0000


def test_tls_listener_takes_only_certified_peers(pki):
    from hal.tcp import server_tls_context

    b = Box(tls=server_tls_context(pki["ca.crt"], pki["server.crt"], pki["server.key"]))
    try:
        import ssl
        ae = pacs()
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki["ca.crt"])
        client.load_cert_chain(pki["client.crt"], pki["client.key"])
        assoc = ae.associate("127.0.0.1", b.port, ae_title="MODGATE", tls_args=(client, "localhost"))
        assert assoc.is_established
        status, _ = assoc.send_n_event_report(report_dataset("7.7"), 1, StorageCommitmentPushModel, WELL_KNOWN)
        assoc.release()
        assert status.Status == 0x0000
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki["ca.crt"])
        assoc = pacs().associate("127.0.0.1", b.port, ae_title="MODGATE", tls_args=(anonymous, "localhost"))
        assert not assoc.is_established
        plain = pacs().associate("127.0.0.1", b.port, ae_title="MODGATE")
        assert not plain.is_established
        assert [r.transaction_uid for r in b.reports] == ["7.7"]
    finally:
        b.close()


def test_role_selection_items_round_trip():
    item = pdu.user_information(16384, "1.2.3", "X", roles=[(StorageCommitmentPushModel, 0, 1)])
    rq = pdu.a_associate_rq("MODGATE", "PACS", [(1, StorageCommitmentPushModel, ["1.2.840.10008.1.2"])], item)
    info = pdu.parse_associate(rq[0], rq[6:])
    assert info.roles == {StorageCommitmentPushModel: (0, 1)}
    assert info.maximum_length == 16384 and info.implementation_version_name == "X"


def test_a_report_only_in_a_transfer_syntax_we_do_not_know_is_refused(box):
    ae = AE(ae_title="PACS")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    ae.add_requested_context(StorageCommitmentPushModel, [JPEGBaseline8Bit])
    assoc = ae.associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert [(c.abstract_syntax, c.result) for c in assoc.rejected_contexts] == [(StorageCommitmentPushModel, 4)]
    assert assoc.accepted_contexts == []
    assoc.release()


def test_a_pacs_that_proposes_only_the_scu_role_gets_no_context(box):
    """PS3.7 D.3.3.4: the acceptor cannot grant the SCP role that was not
    proposed, and the box never acts as the commitment SCP."""
    role = build_role(StorageCommitmentPushModel, scu_role=True, scp_role=False)
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE", ext_neg=[role])
    assert [(c.abstract_syntax, c.result) for c in assoc.rejected_contexts] == [(StorageCommitmentPushModel, 1)]
    assoc.release()
    assert any("proposes only the SCU role" in line for line in box.lines)


def _raw_associate(port, rq):
    """Send the A-ASSOCIATE-RQ bytes rq; the PDU that answers it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(rq)
        answer = b""
        while len(answer) < 10:
            piece = raw.recv(64)
            if not piece:
                break
            answer += piece
        return answer


def _rq():
    return pdu.a_associate_rq("MODGATE", "PACS", [(1, StorageCommitmentPushModel, ["1.2.840.10008.1.2"])],
                              pdu.user_information(16384, "1.2.3", "RAW"))


def test_another_application_context_and_protocol_version_are_rejected(box):
    # PS3.8 9.3.4: application-context-name-not-supported is the service-user's.
    other = _rq().replace(pdu.APPLICATION_CONTEXT_NAME.encode(), b"1.2.840.10008.3.1.1.9")
    answer = _raw_associate(box.port, other)
    assert answer[:1] == bytes([pdu.A_ASSOCIATE_RJ]) and tuple(answer[7:10]) == (1, 1, 2)
    # Protocol version 2 only (bit 0 clear): the service-provider's
    # protocol-version-not-supported (PS3.8 9.3.2, Table 9-6 AE-6).
    rq = bytearray(_rq())
    rq[6:8] = b"\x00\x02"
    answer = _raw_associate(box.port, bytes(rq))
    assert answer[:1] == bytes([pdu.A_ASSOCIATE_RJ]) and tuple(answer[7:10]) == (1, 2, 2)
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert assoc.is_established
    assoc.release()
    # Logged by now: the listener serves one connection at a time.
    assert any("application context 1.2.840.10008.3.1.1.9" in line for line in box.lines), box.lines
    assert any("protocol version 0x0002 not supported" in line for line in box.lines), box.lines


@pytest.mark.parametrize("command", ["C-STORE-RQ", "N-EVENT-REPORT-RQ"])
def test_a_message_on_a_refused_context_aborts_and_reaches_no_handler(box, command):
    """The box's own requestor plays a PACS that breaks PS3.8: its CT
    context is refused, and it sends on it anyway."""
    scu = Association(board.load("host"), "127.0.0.1", box.port, "MODGATE", "PACS",
                      timeouts=Timeouts(acse=5, dimse=5, network=5))
    negotiated = scu.open([(1, CT, ["1.2.840.10008.1.2"]), (3, StorageCommitmentPushModel, ["1.2.840.10008.1.2"])])
    assert list(negotiated.accepted) == [3] and list(negotiated.refused) == [1]
    if command == "C-STORE-RQ":
        message = dimse.c_store_rq(1, CT, "1.2.3.4")
    else:
        message = dimse.command_set([
            (dimse.CommandField, dimse.N_EVENT_REPORT_RQ), (dimse.MessageID, 1),
            (dimse.AffectedSOPClassUID, StorageCommitmentPushModel), (dimse.AffectedSOPInstanceUID, WELL_KNOWN),
            (dimse.EventTypeID, 1), (dimse.CommandDataSetType, dimse.DATA_SET_PRESENT)])
    with pytest.raises(AssociationError, match="aborted"):
        # The abort may come while the data set is still going out.
        scu.send(1, message, b"\x08\x00\x18\x00\x08\x00\x00\x001.2.3.4\x00")
        scu.receive(5)
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE")
    status, _ = assoc.send_n_event_report(report_dataset("8.8"), 1, StorageCommitmentPushModel, WELL_KNOWN)
    assoc.release()
    assert status.Status == 0x0000 and [r.transaction_uid for r in box.reports] == ["8.8"]
    assert any("presentation context 1, which was not accepted" in line for line in box.lines), box.lines
    assert not any(line.startswith("commitment: refused") for line in box.lines)


def test_a_handler_that_fails_ends_its_association_only():
    calls = []

    def handle(association, context_id, command, data_set):
        calls.append(command.get(dimse.CommandField))
        if len(calls) == 1:
            raise KeyError("a bug in the handler")
        commitment.take_report(association, context_id, command, data_set, lambda text: None)

    b = Box(handle=handle)
    try:
        assoc = pacs().associate("127.0.0.1", b.port, ae_title="MODGATE")
        status, _ = assoc.send_n_event_report(report_dataset(), 1, StorageCommitmentPushModel, WELL_KNOWN)
        assert not status  # no response: the box aborted
        assoc.join(5)
        assert not assoc.is_established
        assert any("the handler failed: KeyError" in line for line in b.lines), b.lines
        assoc = pacs().associate("127.0.0.1", b.port, ae_title="MODGATE")
        status, _ = assoc.send_n_event_report(report_dataset(), 1, StorageCommitmentPushModel, WELL_KNOWN)
        assoc.release()
        assert status.Status == 0x0000
    finally:
        b.close()


def test_a_silent_peer_cannot_hold_a_tls_listener(pki):
    """The TLS handshake is bounded by the network timeout."""
    from hal.tcp import server_tls_context

    b = Box(tls=server_tls_context(pki["ca.crt"], pki["server.crt"], pki["server.key"]), network=1.0)
    try:
        import ssl
        silent = socket.create_connection(("127.0.0.1", b.port), timeout=5)
        try:
            started = time.monotonic()
            silent.settimeout(5)
            try:
                assert silent.recv(64) == b""
            except ConnectionResetError:
                pass
            assert time.monotonic() - started < 4
        finally:
            silent.close()
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=pki["ca.crt"])
        client.load_cert_chain(pki["client.crt"], pki["client.key"])
        assoc = pacs().associate("127.0.0.1", b.port, ae_title="MODGATE", tls_args=(client, "localhost"))
        assert assoc.is_established
        assoc.release()
        assert any("failed before its association" in line for line in b.lines), b.lines
    finally:
        b.close()


def test_a_request_with_data_behind_it_in_one_read_is_not_answered(box):
    """A peer that does not wait its turn: the A-ASSOCIATE-RQ and a
    P-DATA-TF arrive together. The P-DATA-TF is not allowed in Sta3 (AA-8:
    A-ABORT) and the request, void by then, must not be answered (it used
    to raise ProtocolError out of the listener's thread)."""
    answer = _raw_associate(box.port, _rq() + pdu.p_data_tf([(1, 3, dimse.c_echo_rq(1))]))
    assert answer[:1] == bytes([pdu.A_ABORT])
    assoc = pacs().associate("127.0.0.1", box.port, ae_title="MODGATE")
    assert assoc.is_established
    assoc.release()
    assert any("no valid A-ASSOCIATE-RQ: unexpected PDU in Sta3" in line for line in box.lines), box.lines
    assert not any("internal error" in line for line in box.lines), box.lines


def test_mangled_requests_never_stop_the_listener():
    """A seeded fuzz: requests with bytes changed, cut or added; every one is
    answered or dropped, and no fault of ours comes out of it."""
    rng = random.Random(20240611)
    b = Box(network=0.5)
    b.listener.timeouts.acse = b.listener.timeouts.dimse = b.listener.timeouts.artim = 0.1
    rq = bytearray(_rq() + pdu.p_data_tf([(1, 3, dimse.c_echo_rq(1))]))
    try:
        for _ in range(40):
            mangled = bytearray(rq)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(mangled))
                if rng.random() < 0.7:
                    mangled[at] = rng.randrange(256)
                else:
                    mangled[at:at + rng.randint(1, 8)] = b""
            with socket.create_connection(("127.0.0.1", b.port), timeout=5) as raw:
                raw.sendall(bytes(mangled))
                raw.settimeout(3)
                try:
                    while raw.recv(4096):
                        pass
                except OSError:
                    pass
            assert b.thread.is_alive()
        assert not [line for line in b.lines if "internal error" in line or "handler failed" in line]
        assoc = pacs().associate("127.0.0.1", b.port, ae_title="MODGATE")
        assert assoc.is_established
        assoc.release()
    finally:
        b.close()


def test_a_report_with_a_mangled_uid_is_answered_without_it():
    """The report's Affected SOP Instance UID is no UID: the response does
    not echo it (encoding it would fail), the listener goes on."""
    from firmware.net import dimse
    from firmware.services.commitment import STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE

    sent = []

    class Recorder:
        def send(self, context_id, command):
            sent.append(command)

    command = {dimse.CommandField: dimse.N_EVENT_REPORT_RQ, dimse.MessageID: 7, dimse.EventTypeID: 1,
               dimse.AffectedSOPClassUID: commitment.STORAGE_COMMITMENT_PUSH_MODEL,
               dimse.AffectedSOPInstanceUID: "1.2.\x00bad uid"}
    commitment.answer(Recorder(), 1, command)
    [response] = sent
    assert STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE.encode() in response and b"bad uid" not in response
