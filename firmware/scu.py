"""The Storage SCU's I/O side: a blocking-socket driver for the sans-I/O
association (firmware/net). CPython and MicroPython both have socket and
select; TLS needs CPython's ssl (PS3.15 B.9 / BCP 195: TLS 1.2 or newer).

    scu = StorageSCU("pacs", 104, called_ae_title="PACS")
    scu.associate([(sop_class, transfer_syntax)])
    result = scu.store("clip.dcm")   # StoreResult
    scu.release()

Every object is sent from disk in PDU-sized pieces; nothing grows with the
file. After a timeout or an error in the middle of a message the association
is aborted and never reused.

Faults are kept apart by what caused them. A fault of the file itself (it
cannot be opened or read, its header is not Part 10 or its UIDs are no
UIDs, it is cut short or cannot be converted for an Implicit-only peer, it
shrank while being sent) never raises: store() returns a StoreResult with
object_fault True. If nothing of that C-STORE had left, the association
goes on; if some had, it is aborted (a message half sent cannot be taken
back: A-ABORT, PS3.8 7.3, is the only way to end it) and usable is False.
Sending that file again will fail the same way. A fault of the association
(the peer aborts, a timeout, the connection drops) raises AssociationError.
"""

import os
import select
import socket
import struct
import time

from firmware.dicom.part10 import MAX_FILE_META, read_file_meta
from firmware.dicom.uid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, IMPLICIT_VR_LITTLE_ENDIAN, check_uid
from firmware.net import acse, dimse, pdu
from firmware.net.convert import ConversionError, ExplicitToImplicit
from firmware.net.fsm import Association

DEFAULT_MAX_PDU = 65536  # what modgate receives and the most it sends per PDU
BATCH = 1 << 17  # bytes of PDUs built and sent per call while streaming a file
COALESCE = 1 << 16  # queued PDUs up to this total are joined into one send


class AssociationError(Exception):
    """The association could not be made or was lost. permanent: trying the
    same again will fail the same way (e.g. called AE not recognised)."""

    def __init__(self, message, permanent=False):
        Exception.__init__(self, message)
        self.permanent = permanent


class DIMSETimeout(AssociationError):
    pass


class _FileFault(Exception):
    """Reading the file being sent failed: the file's fault, not the
    association's (an OSError from the socket is the association's)."""


class StoreResult:
    """How one object fared: status is None when it never got a response.
    object_fault: the file itself is at fault (see the module's doc) and
    will fail the same way every time; meaning names the file and why."""

    def __init__(self, path, sop_instance_uid, status=None, category=dimse.FAILURE, meaning="", sent_bytes=0,
                 seconds=0.0, converted=False, object_fault=False):
        self.path = path
        self.sop_instance_uid = sop_instance_uid
        self.status = status
        self.category = category
        self.meaning = meaning
        self.sent_bytes = sent_bytes
        self.seconds = seconds
        self.converted = converted
        self.object_fault = object_fault

    @property
    def stored(self):
        return self.category in (dimse.SUCCESS, dimse.WARNING)

    def __str__(self):
        status = "%04X" % self.status if self.status is not None else "----"
        return "%s %s %s: %s" % (self.sop_instance_uid or self.path, status, self.category, self.meaning)


class Timeouts:
    """Seconds for each wait (all configurable): connect (TCP/TLS set-up),
    acse (A-ASSOCIATE-AC/RJ and A-RELEASE-RP), dimse (a response), network
    (any single send or receive) and artim (waiting for the peer to close
    after an abort, PS3.8 9.1.5)."""

    def __init__(self, connect=10.0, acse=30.0, dimse=60.0, network=60.0, artim=5.0):
        self.connect = connect
        self.acse = acse
        self.dimse = dimse
        self.network = network
        self.artim = artim


def object_info(path):
    """(FileMeta, size) of a Part 10 file, reading only its head. OSError
    if it cannot be read, ValueError if it is no Part 10 file that can be
    sent."""
    with open(path, "rb") as f:
        return _read_info(f)


def _read_info(f):
    meta = read_file_meta(f.read(MAX_FILE_META))
    size = os.fstat(f.fileno()).st_size
    # The UIDs go into the association request and the C-STORE-RQ
    # (PS3.7 9.3.1.1): one that is no UID (PS3.5 9.1) is the file's fault,
    # found here rather than as a rejection of everyone's association.
    for what, uid in (("SOP Class UID", meta.sop_class_uid), ("SOP Instance UID", meta.sop_instance_uid),
                      ("Transfer Syntax UID", meta.transfer_syntax_uid)):
        try:
            check_uid(uid)
        except ValueError as err:
            raise ValueError("File Meta Information: %s: %s" % (what, err))
    if size <= meta.dataset_offset:
        raise ValueError("no data set after the File Meta Information")
    return meta, size


def _fault(path, uid, why):
    return StoreResult(path, uid, meaning="not sent: %s: %s" % (path, why), object_fault=True)


class StorageSCU:
    def __init__(self, host, port, called_ae_title="ANY-SCP", calling_ae_title="MODGATE", max_pdu=DEFAULT_MAX_PDU,
                 timeouts=None, tls_context=None, log=None, progress=None):
        self.host = host
        self.port = port
        self.called_ae_title = called_ae_title
        self.calling_ae_title = calling_ae_title
        self.max_pdu = max_pdu
        self.timeouts = timeouts or Timeouts()
        self.tls_context = tls_context
        self.log = log or (lambda message: None)
        self.progress = progress
        self.sock = None
        self.assoc = None
        self.negotiated = None
        self._message_id = 0
        self._assembler = dimse.Assembler()
        self._flushes = 0  # sends that put bytes on the wire: has a message left?

    # -- association ---------------------------------------------------
    def associate(self, objects):
        """Open an association proposing contexts for (sop_class, ts) pairs
        (Verification is always proposed). Raises AssociationError."""
        contexts = acse.propose([(acse.VERIFICATION, IMPLICIT_VR_LITTLE_ENDIAN)] + list(objects))
        rq = acse.associate_rq(self.called_ae_title, self.calling_ae_title, contexts, self.max_pdu,
                               IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME)
        self.assoc = Association(self.max_pdu)
        self.assoc.request(rq)
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeouts.connect)
            if self.tls_context is not None:
                sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
        except OSError as err:
            self.assoc.abort()
            raise AssociationError("cannot connect to %s:%s: %s" % (self.host, self.port, err))
        self.sock = sock
        self.sock.settimeout(self.timeouts.network)
        try:
            # Command and data PDUs go out at once, not after a delayed ACK.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        self.assoc.connected()
        self._flush()
        try:
            event = self._wait(("accepted", "rejected"), self.timeouts.acse, "ACSE")
        except DIMSETimeout as err:
            # A port that takes the connection and never answers is often
            # not a DICOM one (an HTTP server waiting for a line's end).
            raise DIMSETimeout("%s to the A-ASSOCIATE-RQ: is %s:%s a DICOM port?" % (err, self.host, self.port))
        if event[0] == "rejected":
            rejection = acse.Rejection(*event[1])
            self._close()
            raise AssociationError(str(rejection), permanent=rejection.permanent)
        info = event[1]
        self.negotiated = acse.Negotiated(contexts, info)
        self.log("associated with %s (%s:%s): %d of %d contexts accepted, peer max PDU %d" % (
            info.implementation_version_name or info.implementation_class_uid or "peer",
            self.host, self.port, len(self.negotiated.accepted), len(contexts), info.max_length))
        return self.negotiated

    def release(self):
        if self.assoc is None or not self.assoc.established:
            self._close()
            return
        try:
            self.assoc.release()
            self._flush()
            self._wait(("released",), self.timeouts.acse, "ACSE")
        except AssociationError:
            pass
        finally:
            self._close()

    def abort(self):
        """A-ABORT (PS3.8 7.3), then wait up to ARTIM for the peer to close."""
        if self.assoc is not None and self.assoc.state not in ("Sta1", "Sta13"):
            try:
                self.assoc.abort()
                self._flush()
            except (OSError, AssociationError):
                pass
        if self.sock is not None and self.assoc is not None and self.assoc.state == "Sta13":
            deadline = time.monotonic() + self.timeouts.artim
            try:
                while time.monotonic() < deadline:
                    ready, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
                    if not ready or not self.sock.recv(65536):
                        break
            except OSError:
                pass
        self._close()

    @property
    def usable(self):
        return self.assoc is not None and self.assoc.established

    # -- DIMSE ---------------------------------------------------------
    def echo(self):
        """C-ECHO (PS3.7 9.1.5): (status, category, meaning)."""
        context = self.negotiated.choose(acse.VERIFICATION, IMPLICIT_VR_LITTLE_ENDIAN)
        if context is None:
            raise AssociationError(self.negotiated.why_not(acse.VERIFICATION), permanent=True)
        message_id = self._next_id()
        self._send_message(context[0], dimse.c_echo_rq(message_id))
        status = self._response(message_id, dimse.C_ECHO_RSP)
        return (status,) + dimse.status_class(status)

    def store(self, path, meta=None):
        """C-STORE one Part 10 file; a StoreResult. A fault of the file
        never raises: the result has object_fault True (and the
        association is aborted if the message was under way). Raises
        AssociationError if the association is lost or was not usable (the
        object then is not stored). meta: the file's FileMeta if the caller
        has just read it."""
        if not self.usable:
            raise AssociationError("no association to send %s on" % path)
        started = time.monotonic()
        try:
            f = open(path, "rb")
        except OSError as err:
            return _fault(path, None, "cannot open it: %s" % _reason(err))
        with f:
            try:
                if meta is None:
                    meta, size = _read_info(f)
                else:
                    size = os.fstat(f.fileno()).st_size
            except OSError as err:
                return _fault(path, None, "cannot read its header: %s" % _reason(err))
            except ValueError as err:
                return _fault(path, None, str(err))
            return self._store_open(path, f, meta, size, started)

    def _store_open(self, path, f, meta, size, started):
        choice = self.negotiated.choose(meta.sop_class_uid, meta.transfer_syntax_uid)
        if choice is None:
            return StoreResult(path, meta.sop_instance_uid, meaning="not sent: " + self.negotiated.why_not(meta.sop_class_uid))
        context_id, ts = choice
        converted = ts != meta.transfer_syntax_uid
        if size <= meta.dataset_offset:
            return _fault(path, meta.sop_instance_uid, "no data set after the File Meta Information")
        message_id = self._next_id()
        command = dimse.c_store_rq(message_id, meta.sop_class_uid, meta.sop_instance_uid)
        fault = None
        try:
            try:
                f.seek(meta.dataset_offset)
            except OSError as err:
                return _fault(path, meta.sop_instance_uid, "cannot read it: %s" % _reason(err))
            flushes = self._flushes
            self._send_message(context_id, command, flush=False)
            if converted:
                sent = self._send_converted(context_id, f)
            else:
                sent = self._send_file(context_id, f, size - meta.dataset_offset)
        except ConversionError as err:
            fault = "cannot be sent as Implicit VR Little Endian: %s" % err
        except _FileFault as err:
            fault = str(err)
        except OSError as err:
            self.abort()
            raise AssociationError("sending %s failed: %s" % (path, err))
        if fault is not None:
            if self._flushes == flushes:
                # Nothing of this message has left: drop the PDUs queued for
                # it and the association goes on as if it was never begun.
                self.assoc.data_to_send()
            else:
                # Part of the message is with the peer. PS3.7 9.3.1 has no
                # way to withdraw a C-STORE-RQ whose data set is under way
                # (the last fragment bit, PS3.8 E.2, cannot be taken back),
                # so the association ends with an A-ABORT (PS3.8 7.3.1).
                self.log("%s: %s; aborting the association (the C-STORE was under way)" % (path, fault))
                self.abort()
                fault += " (association aborted)"
            return _fault(path, meta.sop_instance_uid, fault)
        status = self._response(message_id, dimse.C_STORE_RSP)
        category, meaning = dimse.status_class(status)
        result = StoreResult(path, meta.sop_instance_uid, status, category, meaning, sent, time.monotonic() - started, converted)
        if category == dimse.WARNING:
            self.log("warning %04X for %s: %s (stored)" % (status, meta.sop_instance_uid, meaning))
        elif category == dimse.FAILURE:
            self.log("failure %04X for %s: %s" % (status, meta.sop_instance_uid, meaning))
        return result

    def _next_id(self):
        self._message_id = (self._message_id % 0xFFFF) + 1
        return self._message_id

    def _pdv_limit(self):
        """Data bytes per PDV: min(peer's maximum, ours), ours when the peer
        says 0 (no limit), less the PDV item header (PS3.8 9.3.5)."""
        peer = self.negotiated.peer_max_length
        limit = self.max_pdu if peer == 0 else min(peer, self.max_pdu)
        return limit - pdu.PDV_HEADER_LENGTH

    def _send_message(self, context_id, command, flush=True):
        limit = self._pdv_limit()
        for start in range(0, len(command), limit):
            piece = command[start : start + limit]
            last = start + limit >= len(command)
            control = pdu.MCH_COMMAND | (pdu.MCH_LAST if last else 0)
            self.assoc.send_data(pdu.p_data_tf_header(context_id, control, len(piece)), piece)
        if flush:
            self._flush()

    def _send_file(self, context_id, f, remaining):
        """The data set straight from the file: P-DATA-TF PDUs of one PDV
        each, built in one reused buffer of about BATCH bytes, the data read
        into the slots behind each 12-byte header and the whole batch sent
        with one call. Memory: the batch, whatever the file's size."""
        limit = self._pdv_limit()
        slots = max(1, min(BATCH // (limit + 12), (remaining + limit - 1) // limit or 1))
        buf = bytearray(slots * 12 + min(slots * limit, remaining))
        view = memoryview(buf)
        total = remaining
        sent = 0
        offset = f.tell()
        fd = f.fileno() if hasattr(f, "fileno") and hasattr(os, "preadv") else None
        while True:
            parts = []
            end = 0
            want = 0
            for _ in range(slots):
                chunk = min(limit, remaining - want)
                if chunk <= 0 and parts:
                    break
                parts.append(view[end + 12 : end + 12 + chunk])
                end += 12 + chunk
                want += chunk
            try:
                got = os.preadv(fd, parts, offset) if fd is not None else sum(f.readinto(p) for p in parts)
            except OSError as err:
                raise _FileFault("cannot read it: %s" % _reason(err))
            if got != want:
                raise _FileFault("it shrank while being sent (%d bytes short)" % (remaining - got))
            offset += got
            remaining -= got
            pos = 0
            for i, part in enumerate(parts):
                last = remaining == 0 and i == len(parts) - 1
                buf[pos : pos + 12] = pdu.p_data_tf_header(context_id, pdu.MCH_LAST if last else 0, len(part))
                pos += 12 + len(part)
            self.assoc.send_data(view[:end])
            self._flush()
            sent += got
            if self.progress:
                self.progress(sent, total)
            if remaining == 0:
                return sent
            self._check_incoming()

    def _send_converted(self, context_id, f):
        """The data set converted to Implicit VR LE on the way out. PDVs are
        filled to the limit; the last one is held back until the file ends
        so that it can carry the last-fragment bit."""
        limit = self._pdv_limit()
        converter = ExplicitToImplicit()
        pending = bytearray()
        sent = 0
        while True:
            try:
                chunk = f.read(limit)
            except OSError as err:
                raise _FileFault("cannot read it: %s" % _reason(err))
            if chunk:
                for piece in converter.feed(chunk):
                    pending.extend(piece)
            else:
                converter.finish()
            while len(pending) > limit or (not chunk and pending):
                size = min(limit, len(pending))
                last = not chunk and size == len(pending)
                header = pdu.p_data_tf_header(context_id, pdu.MCH_LAST if last else 0, size)
                self.assoc.send_data(header, bytes(pending[:size]))
                del pending[:size]
                self._flush()
                sent += size
                self._check_incoming()
            if not chunk:
                return sent

    def _check_incoming(self):
        """While sending, take in what the peer said (an A-ABORT, say)
        without waiting."""
        ready, _, _ = select.select([self.sock], [], [], 0)
        if ready:
            self._receive_some()
            event = self.assoc.next_event()
            if event is not None:
                self._lost(event)

    def _response(self, message_id, command_field):
        while True:
            event = self._wait(("data",), self.timeouts.dimse, "DIMSE")
            for context_id, control, data in event[1]:
                try:
                    message = self._assembler.add(context_id, control, data)
                except dimse.DIMSEError as err:
                    self.abort()
                    raise AssociationError("malformed DIMSE response: %s" % err)
                if message is None:
                    continue
                _, command, _ = message
                if command.get(dimse.CommandField) != command_field or command.get(dimse.MessageIDBeingRespondedTo) != message_id:
                    self.abort()
                    raise AssociationError("unexpected DIMSE message 0x%04X for message %s" % (
                        command.get(dimse.CommandField, 0), command.get(dimse.MessageIDBeingRespondedTo)))
                status = command.get(dimse.Status)
                if status is None:
                    self.abort()
                    raise AssociationError("DIMSE response without a status")
                return status

    # -- the socket ------------------------------------------------------
    def _flush(self):
        pending = self.assoc.data_to_send()
        if self.sock is None:
            return
        if len(pending) > 1 and sum(len(b) for b in pending) <= COALESCE:
            # A command PDU and a small data set leave in one segment.
            pending = [b"".join(pending)]
        try:
            for buf in pending:
                self.sock.sendall(buf)
                self._flushes += 1
        except OSError as err:
            # The peer went away under us: the association is over.
            err = self._alert(err)
            self.assoc.transport_closed()
            self._close()
            raise AssociationError("connection lost while sending: %s" % err)

    def _alert(self, err):
        """A send over TLS failed: a peer that refused us (TLS 1.3 checks the
        client's certificate after our side of the handshake is done) has
        sent an alert saying why (RFC 8446 6.2, e.g. unknown_ca). Read it if
        it is there; else the send's own error."""
        if self.tls_context is None:
            return err
        try:
            self.sock.settimeout(min(self.timeouts.network, 1.0))
            self.sock.recv(1)
        except OSError as alert:
            if "alert" in str(alert):
                return alert
        return err

    def _receive_some(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError as err:
            self.assoc.transport_closed()
            self._close()
            raise AssociationError("connection lost: %s" % err)
        if not data:
            self.assoc.transport_closed()
            return
        self.assoc.receive(data)
        self._flush()
        if self.assoc.close_transport:
            self._close()

    def _wait(self, kinds, timeout, timer):
        deadline = time.monotonic() + timeout
        while True:
            event = self.assoc.next_event()
            if event is not None:
                if event[0] in kinds:
                    return event
                self._lost(event)
            if self.sock is None:
                raise AssociationError("connection closed while waiting for %s" % " or ".join(kinds))
            left = deadline - time.monotonic()
            if left <= 0:
                self.log("%s timeout after %.1f s; aborting the association" % (timer, timeout))
                self.abort()
                raise DIMSETimeout("%s timeout: no answer within %.1f s" % (timer, timeout))
            self._quick_ack()
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                self._receive_some()

    def _quick_ack(self):
        # Many SCPs (DCMTK among them) leave Nagle's algorithm on and write a
        # response PDU in two parts; the second waits for our ACK of the first,
        # which Linux delays by up to 40 ms. Asking for an immediate ACK while
        # we wait for an answer takes that stall out of every C-STORE.
        # TCP_QUICKACK is Linux-only and not sticky, so it is set each time.
        option = getattr(socket, "TCP_QUICKACK", None)
        if option is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, option, 1)
            except OSError:
                pass

    def _lost(self, event):
        kind = event[0]
        if kind == "aborted":
            message = acse.describe_abort(event[1], event[2])
        elif kind == "provider_abort":
            message = "association aborted: %s" % event[1]
        else:
            message = "unexpected %s" % kind
        self.log(message)
        self.abort()
        raise AssociationError(message)

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        if self.assoc is not None and self.assoc.state != "Sta1":
            try:
                self.assoc.transport_closed()
            except Exception:
                pass


def _reason(err):
    # The file is named beside it: strerror alone, where the port has it.
    return getattr(err, "strerror", None) or str(err)


def _pairs(infos):
    """The (SOP class, transfer syntax) pairs to propose for the objects in
    infos, in order, as many as fit in one association's presentation
    contexts (acse.propose: up to 3 per pair, PS3.8 9.3.2.2's odd IDs 1 to
    255). An association opened for the rest takes the others."""
    pairs = []
    for _, meta in infos:
        if meta is None:
            continue
        pair = (meta.sop_class_uid, meta.transfer_syntax_uid)
        if pair in pairs:
            continue
        if 3 * (len(pairs) + 1) + 1 > acse.MAX_CONTEXTS:
            break
        pairs.append(pair)
    return pairs


def store_files(paths, host, port, log=None, **options):
    """Send every file over as few associations as possible: a lost or
    aborted association is re-opened for the files still to go. Yields a
    StoreResult per file, in order; a file at fault is reported (with
    object_fault) and the rest go on."""
    infos = []
    for path in paths:
        try:
            meta, _ = object_info(path)
            infos.append((path, meta))
        except OSError as err:
            infos.append((path, "cannot read its header: %s" % _reason(err)))
        except ValueError as err:
            infos.append((path, str(err)))
    scu = None
    proposed = ()
    for index, (path, meta) in enumerate(infos):
        if isinstance(meta, str):
            yield _fault(path, None, meta)
            continue
        pair = (meta.sop_class_uid, meta.transfer_syntax_uid)
        if scu is None or not scu.usable or pair not in proposed:
            if scu is not None:
                scu.release()
            proposed = _pairs([i for i in infos[index:] if not isinstance(i[1], str)])
            scu = StorageSCU(host, port, log=log, **options)
            try:
                scu.associate(proposed)
            except AssociationError as err:
                for path, meta in infos[index:]:
                    if isinstance(meta, str):
                        yield _fault(path, None, meta)
                    else:
                        yield StoreResult(path, meta.sop_instance_uid, meaning="not sent: %s" % err)
                return
        try:
            yield scu.store(path, meta)
        except AssociationError as err:
            yield StoreResult(path, meta.sop_instance_uid, meaning="not stored: %s" % err)
    if scu is not None:
        scu.release()


def tls_context(ca_file=None, cert_file=None, key_file=None, verify=True):
    """A client TLS context for DICOM TLS (PS3.15 B.9, BCP 195): TLS 1.2 or
    newer, the server's certificate checked against ca_file (and its name
    against the host) unless verify is False, an optional client
    certificate."""
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
