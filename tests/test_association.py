"""The association driver (firmware/association.py) against a scripted peer:
ARTIM after our A-ABORT runs through the state machine's own timer event,
and the driver does its waiting on the board's clock and hal.tcp."""

import socket
import threading

import board
from firmware.association import Association, Timeouts
from firmware.net import acse, pdu
from firmware.services import verification

USER_INFO = pdu.user_information(16384, "1.2.3", "PEER")


class Peer:
    """Accepts one association, then reads until told to close (or never)."""

    def __init__(self, close_after_abort):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.close_after_abort = close_after_abort
        self.got_abort = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        conn, _ = self.listener.accept()
        try:
            conn.recv(65536)
            conn.sendall(pdu.a_associate_ac("PEER", "MODGATE", [(1, 0, "1.2.840.10008.1.2")], USER_INFO))
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                if data[0] == pdu.A_ABORT:
                    self.got_abort.set()
                    if self.close_after_abort:
                        break
                    self.release.wait(10)  # hold the connection open past ARTIM
                    break
        finally:
            conn.close()
            self.listener.close()


def associate(peer, artim):
    assoc = Association(board.load("host"), "127.0.0.1", peer.port, "PEER", "MODGATE",
                        timeouts=Timeouts(connect=2, acse=2, dimse=2, network=2, artim=artim))
    assoc.open(acse.propose([verification.CONTEXT]))
    assert assoc.usable
    return assoc


def test_artim_expires_when_the_peer_keeps_the_connection_after_an_abort():
    """PS3.8 9.2: after A-ABORT (AA-1, Sta13) the peer should close; one
    that does not is cut off when ARTIM expires (Evt18, AA-2)."""
    peer = Peer(close_after_abort=False)
    assoc = associate(peer, artim=0.3)
    machine = assoc.machine
    clock = assoc.clock
    started = clock.monotonic_ns()
    assoc.abort()
    elapsed = (clock.monotonic_ns() - started) / 1e9
    peer.release.set()
    peer.thread.join(5)
    assert peer.got_abort.is_set()
    assert machine.history[-2][:2] == ("Evt15", "Sta6") and machine.history[-1] == ("Evt18", "Sta13", "AA-2")
    assert machine.state == "Sta1" and not machine.artim_running and assoc.connection is None
    assert 0.3 <= elapsed < 5


def test_a_peer_that_closes_after_the_abort_ends_artim_at_once():
    peer = Peer(close_after_abort=True)
    assoc = associate(peer, artim=30)
    machine = assoc.machine
    clock = assoc.clock
    started = clock.monotonic_ns()
    assoc.abort()
    elapsed = (clock.monotonic_ns() - started) / 1e9
    peer.thread.join(5)
    assert machine.history[-1] == ("Evt17", "Sta13", "AR-5")
    assert machine.state == "Sta1" and assoc.connection is None
    assert elapsed < 10  # not the 30 s of ARTIM


def test_the_connection_leaves_little_unsent_in_its_send_buffer():
    """hal/tcp: TCP_NOTSENT_LOWAT, so that a send waits while a batch is
    still unsent rather than filling the send buffer (the peer's window
    updates would then send our data on the peer's CPU time), beside
    TCP_NODELAY and SO_KEEPALIVE."""
    from hal.tcp import NOTSENT_LOWAT

    peer = Peer(close_after_abort=True)
    assoc = associate(peer, artim=2)
    sock = assoc.connection.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT) == NOTSENT_LOWAT
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    assoc.abort()
    peer.thread.join(5)
