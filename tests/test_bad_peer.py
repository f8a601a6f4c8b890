"""A scripted bad peer: malformed, truncated and oversized PDUs at each step.
modgate must end the association with an AssociationError (never another
exception), quickly, holding no more than its PDU limit."""

import socket
import struct
import threading
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.net import pdu
import board
from firmware.association import AssociationError, Timeouts
from firmware.services.storage import StorageSCU

HOST = board.load("host")

USER_INFO = pdu.user_information(16384, "1.2.3", "BAD")
SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.1"
TS = "1.2.840.10008.1.2.1"


def good_ac():
    return pdu.a_associate_ac("ANY-SCP", "MODGATE", [(1, 0, "1.2.840.10008.1.2"), (3, 0, TS)], USER_INFO)


class BadPeer:
    """Accepts one connection; answers the A-ASSOCIATE-RQ with `reply`
    (after a good A-ASSOCIATE-AC when after_ac), then closes."""

    def __init__(self, reply, after_ac):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.reply = reply
        self.after_ac = after_ac
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        try:
            conn.recv(65536)
            if self.after_ac:
                conn.sendall(good_ac())
                conn.recv(65536)  # the command or data
            conn.sendall(self.reply)
        except OSError:
            pass
        finally:
            conn.close()
            self.listener.close()


def pdu_bytes():
    header = st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 0, 8, 0xFF]), st.integers(0, 2 ** 32 - 1))
    return st.one_of(
        st.binary(max_size=200),
        header.map(lambda h: struct.pack(">BBI", h[0], 0, h[1])),
        st.tuples(header, st.binary(max_size=100)).map(lambda t: struct.pack(">BBI", t[0][0], 0, t[0][1]) + t[1]),
        st.tuples(st.integers(0, len(good_ac()) - 1), st.integers(0, 255)).map(
            lambda m: good_ac()[: m[0]] + bytes([m[1]]) + good_ac()[m[0] + 1 :]
        ),
        st.integers(1, len(good_ac()) - 1).map(lambda n: good_ac()[:n]),
        st.binary(max_size=64).map(lambda b: pdu.p_data_tf([(1, 3, b)])),
        st.just(pdu.p_data_tf([(9, 3, b"\x00" * 12)])),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=pdu_bytes(), after_ac=st.booleans())
def test_bad_peer_ends_cleanly(reply, after_ac, tmp_path_factory):
    peer = BadPeer(reply, after_ac)
    scu = StorageSCU(HOST, "127.0.0.1", peer.port, maximum_length=16384,
                     timeouts=Timeouts(connect=2, acse=2, dimse=2, network=2, artim=0.5))
    tracemalloc.start()
    try:
        scu.associate([(SOP_CLASS, TS)])
        if after_ac:
            scu.echo()
    except AssociationError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        scu.abort()
    peer.thread.join(5)
    assert scu.association.connection is None or not scu.usable or after_ac
    # Claimed lengths of up to 4 GB allocate nothing: the framer refuses
    # a length over its limit from the 6-byte header.
    assert peak < 1024 * 1024, peak


def test_an_http_answer_is_named():
    """A peer that answers the A-ASSOCIATE-RQ with an HTTP status line: the
    error says the port looks like an HTTP server (firmware/net/pdu.py),
    not only that 0x48 is no PDU type."""
    peer = BadPeer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", False)
    scu = StorageSCU(HOST, "127.0.0.1", peer.port, timeouts=Timeouts(connect=2, acse=2, artim=0.5))
    try:
        scu.associate([(SOP_CLASS, TS)])
    except AssociationError as err:
        message = str(err)
    else:
        raise AssertionError("associated with an HTTP server")
    finally:
        scu.abort()
    peer.thread.join(5)
    assert "unrecognized PDU type 0x48" in message and "looks like an HTTP server, not a DICOM one" in message
