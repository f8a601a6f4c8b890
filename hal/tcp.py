"""TCP stream connections, optionally in TLS: the I/O side of DICOM
associations (firmware/association.py runs the PS3.8 state machine over one).

    tls = tls_context(ca_file, cert_file, key_file)      # once, reusable
    conn = connect(host, port, timeout_s, network_timeout_s, tls)
    conn.send(buffers)          every byte of each, in order
    conn.readable(timeout_s)    True when recv() will not block
    conn.recv()                 up to RECV_SIZE bytes; b"" once the peer closed
    conn.close()
    listener = listen("", port, server_tls_context(...))   the box's side
    conn, address = listener.accept(timeout_s, network_timeout_s)

Errors are OSError (socket.timeout, ssl.SSLError are OSErrors). What the
SCU asks of the socket, and why:
- TCP_NODELAY: a command PDU and a small data set leave at once, not after
  the peer's delayed ACK of the previous segment;
- TCP_QUICKACK before each wait for an answer (quick_ack());
- SO_KEEPALIVE: an idle association to a PACS that vanished (a cable
  pulled) ends instead of waiting forever;
- TCP_NOTSENT_LOWAT (NOTSENT_LOWAT): a send waits until less than that
  is still unsent, instead of filling the whole send buffer. With a full
  send buffer the peer's window updates set off our transmissions from
  the peer's side (on loopback perf shows storescp's recvmsg running our
  socket's tcp_write_xmit on its own CPU time); kept short, our data
  leaves from our own send() and the receiver keeps its CPU for
  receiving. tools/bench/store.py, 317 MB to DCMTK's storescp on
  two cores: storescp's CPU per GB about 0.9 s without, 0.65-0.75 s with
  128 KiB, the throughput up by a quarter (1100 -> 1400 MB/s); the kernel
  keeps no more than that unsent for us, where it would grow the send
  buffer to tcp_wmem's maximum (4 MiB) per association.
TLS (PS3.15 B.9 with BCP 195): TLS 1.2 or newer, the server's certificate
checked against the CA file and its name or address against the host
unless verify is False.
"""

import select
import socket

RECV_SIZE = 65536
# Unsent bytes a send may leave queued (the module's doc): one batch of
# PDUs (firmware/net/message.BATCH). On the bench 16 and 32 KiB cost the
# sender 25-30% more CPU per GB, 256 KiB did no better than 128 KiB.
NOTSENT_LOWAT = 128 * 1024


def tls_context(ca_file=None, cert_file=None, key_file=None, verify=True):
    """A client TLS context for DICOM TLS; ValueError or OSError when the
    files do not load (the configuration's check calls this too)."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        if not ca_file:
            raise ValueError("TLS with verification needs a CA file")
        context.load_verify_locations(ca_file)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def connect(host, port, timeout_s, network_timeout_s, tls=None):
    """A Connection to host:port; OSError if it cannot be made within
    timeout_s (the TLS handshake included)."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
        sock.settimeout(network_timeout_s)
        _tune(sock)
    except BaseException:
        sock.close()
        raise
    return Connection(sock, tls is not None, network_timeout_s)


def _tune(sock):
    """TCP_NODELAY, SO_KEEPALIVE and TCP_NOTSENT_LOWAT (the module's doc),
    where the port has them."""
    for level, option, value in ((socket.IPPROTO_TCP, "TCP_NODELAY", 1), (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
                                 (socket.IPPROTO_TCP, "TCP_NOTSENT_LOWAT", NOTSENT_LOWAT)):
        try:
            sock.setsockopt(level, getattr(socket, option), value)
        except (OSError, AttributeError):
            pass


def server_tls_context(ca_file, cert_file, key_file, verify=True):
    """A server TLS context for the box's listener (PS3.15 B.9, BCP 195):
    our certificate, and with verify the peer's required and checked
    against the CA file. ValueError or OSError when the files do not load."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if verify:
        if not ca_file:
            raise ValueError("a TLS listener that checks its peers needs a CA file")
        context.load_verify_locations(ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def resolve(host):
    """The addresses host stands for (a literal is itself); OSError when it
    does not resolve."""
    return sorted(set(info[4][0] for info in socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM)))


def listen(host, port, tls=None, backlog=4):
    """A Listener on host:port ("" for every address; port 0: any free
    one); OSError if the port cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return Listener(sock, tls)


class Listener:
    """A listening socket; accept() gives one Connection at a time."""

    def __init__(self, sock, tls):
        self.sock = sock
        self.tls = tls
        self.port = sock.getsockname()[1]

    def accept(self, timeout_s, network_timeout_s):
        """(Connection, peer address) of the next connection within
        timeout_s, else None. The TLS handshake is done here, within
        network_timeout_s (a peer that says nothing cannot hold the
        listener); OSError when it fails (the connection is closed)."""
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout_s))
        if not ready:
            return None
        sock, address = self.sock.accept()
        try:
            sock.settimeout(network_timeout_s)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            _tune(sock)
        except BaseException:
            sock.close()
            raise
        return Connection(sock, self.tls is not None, network_timeout_s), address[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Connection:
    def __init__(self, sock, tls, network_timeout_s):
        self.sock = sock
        self.tls = tls
        self.network_timeout_s = network_timeout_s

    def send(self, buffers):
        for buf in buffers:
            self.sock.sendall(buf)

    def readable(self, timeout_s):
        # TLS may hold decrypted bytes that select() cannot see.
        if self.tls and self.sock.pending():
            return True
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout_s))
        return bool(ready)

    def recv(self):
        return self.sock.recv(RECV_SIZE)

    def quick_ack(self):
        # Many SCPs (DCMTK among them) leave Nagle's algorithm on and write a
        # response PDU in two parts; the second waits for our ACK of the
        # first, which Linux delays by up to 40 ms. Asking for an immediate
        # ACK while we wait for an answer takes that stall out of every
        # C-STORE. TCP_QUICKACK is Linux-only and not sticky: set each time.
        option = getattr(socket, "TCP_QUICKACK", None)
        if option is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, option, 1)
            except OSError:
                pass

    def send_failed(self, err):
        """Why a send failed: over TLS, a peer that refused us (TLS 1.3
        checks the client's certificate after our side of the handshake is
        done) has sent an alert saying why (RFC 8446 6.2, e.g. unknown_ca).
        That alert if it is there, else err."""
        if not self.tls:
            return err
        try:
            self.sock.settimeout(min(self.network_timeout_s, 1.0))
            self.sock.recv(1)
        except OSError as alert:
            if "alert" in str(alert):
                return alert
        return err

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
