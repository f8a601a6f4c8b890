"""One DICOM association, driven over a hal TCP connection: the PS3.8 state
machine (net/fsm.py) and the DIMSE message layer (net/message.py), for any
DIMSE service (firmware/services/). The services say what to send and what
to expect; this file owns the connection, the clocks and every wait.

    assoc = Association(board, "pacs", 104, "PACS", "MODGATE")
    negotiated = assoc.open(acse.propose(pairs))
    assoc.send(context_id, command, data_set)          # bytes or a reader
    context_id, command, data_set = assoc.response(message_id, command_field)
    assoc.release()

Waits, each a setting (Timeouts): connect (TCP and TLS set-up), acse
(A-ASSOCIATE-AC/RJ, A-RELEASE-RP), dimse (a response), network (one send
or receive) and ARTIM (PS3.8 9.1.5: after our A-ABORT, how long the peer
has to close; the state machine's Evt18 when it runs out).

A fault of the association (the peer aborts, a timeout, the connection
drops, a malformed message) raises AssociationError and leaves the
association closed: it is never reused. A fault of a data set being sent
(its reader fails or runs short) raises DataSetFault: if nothing of the
message had left the association goes on, else it is aborted (a message
half sent cannot be withdrawn: PS3.7 9.3.1 has no such thing and the last
fragment bit, PS3.8 E.2, cannot be taken back).
"""

from firmware.dicom.uid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from firmware.net import acse, dimse, message, pdu
from firmware.net.convert import ConversionError
from firmware.net.fsm import StateMachine

# The Maximum Length we receive (PS3.8 D.1), and the most we send per PDU.
DEFAULT_MAXIMUM_LENGTH = 65536
NS = 1000000000
# While a data set goes out, what the peer sent (an A-ABORT, say) is looked
# at after the first send and then once every this many data set bytes,
# not after every batch: a look is a select() and some Python, about 1 us,
# some 4% of the sender's CPU per GB at a batch of 128 KiB (too little to
# tell apart on the shared bench machine, where runs differ by more). A
# peer that aborts and closes fails our next send at once anyway.
INCOMING_CHECK = 1 << 20
# The peer's requests kept while we wait for a response (poll() takes
# them); one more than this is a peer not waiting its turn: aborted.
MAX_HELD_REQUESTS = 16


class AssociationError(Exception):
    """The association could not be made or was lost. permanent: trying the
    same again will fail the same way (e.g. called AE not recognised)."""

    def __init__(self, message, permanent=False):
        Exception.__init__(self, message)
        self.permanent = permanent


class DIMSETimeout(AssociationError):
    """No answer within the ACSE or DIMSE timeout."""


class DataSetFault(Exception):
    """The data set being sent could not be read (see the module's doc);
    aborted: part of the message had left, so the association was
    aborted."""

    def __init__(self, message, aborted):
        Exception.__init__(self, message)
        self.aborted = aborted


class Timeouts:
    """Seconds for each wait (module doc); all are configuration keys but
    artim."""

    def __init__(self, connect=10.0, acse=30.0, dimse=60.0, network=60.0, artim=5.0):
        self.connect = connect
        self.acse = acse
        self.dimse = dimse
        self.network = network
        self.artim = artim


class Association:
    def __init__(self, board, host, port, called_ae_title, calling_ae_title,
                 maximum_length=DEFAULT_MAXIMUM_LENGTH, timeouts=None, tls=None, log=None):
        self.board = board
        self.clock = board.open_clock()
        self.host = host
        self.port = port
        self.called_ae_title = called_ae_title
        self.calling_ae_title = calling_ae_title
        self.maximum_length = maximum_length
        self.timeouts = timeouts or Timeouts()
        self.tls = tls
        self.log = log or (lambda text: None)
        self.acceptor = False  # the peer opened it (accept())
        self.connection = None
        self.machine = None
        self.negotiated = None
        self._message_id = 0
        self._held = []  # P-DATA that came in while we were sending, for the next wait
        self._incoming = None  # the MessageReader of poll(): a message may span polls
        self._requests = []  # the peer's requests that came while we awaited a response
        # The largest data set of a message we did not ask for (a request of
        # the peer's; a service that expects big ones raises it).
        self.max_data_set = dimse.MAX_COMMAND_SET

    # -- establishment and release (PS3.8 7.1, 7.2) --------------------------
    @classmethod
    def accept(cls, board, connection, peer, decide, maximum_length=DEFAULT_MAXIMUM_LENGTH, timeouts=None, log=None):
        """The acceptor's side of an association that a peer opened on
        connection (PS3.8 9.2: Sta2 -> Sta3 -> Sta6): the A-ASSOCIATE-RQ is
        awaited for the ACSE timeout (ARTIM), and decide(info) answers it,
        with an acse.Rejection or with (results, roles) for
        acse.associate_ac. Returns the Association, on which receive() and
        send() then work (receive() gives None once the peer released it).
        Raises AssociationError (rejected, timed out, malformed, closed);
        the connection is closed then."""
        assoc = cls(board, peer, None, "", "", maximum_length, timeouts, None, log)
        assoc.acceptor = True
        assoc.connection = connection
        machine = assoc.machine = StateMachine(maximum_length, requestor=False)
        machine.transport_indication()
        deadline = assoc._now() + int(assoc.timeouts.acse * NS)
        while True:
            event = machine.next_event()
            if event is not None and event[0] == "requested" and machine.state == "Sta3":
                break
            if event is not None or machine.state == "Sta13":
                # A malformed request (the machine sent A-ABORT, AA-1), one
                # the provider itself rejects (AE-6: protocol version), the
                # peer's own abort, or a request with more behind it in the
                # same read that Sta3 does not allow (AA-3, AA-8: the
                # request is void and answering it now would be out of
                # turn).
                if event is not None and event[0] == "requested":
                    event = machine.next_event()
                why = machine.error or (event and event[-1]) or "aborted"
                assoc._await_close()
                assoc._close()
                raise AssociationError("from %s: no valid A-ASSOCIATE-RQ: %s" % (peer, why))
            if assoc.connection is None:
                raise AssociationError("from %s: closed before its A-ASSOCIATE-RQ" % peer)
            left = deadline - assoc._now()
            if left <= 0:
                machine.artim_expired()  # Evt18 in Sta2: AA-2, close (PS3.8 9.1.5)
                assoc._close()
                raise DIMSETimeout("from %s: no A-ASSOCIATE-RQ within %.1f s" % (peer, assoc.timeouts.acse))
            if connection.readable(left / NS):
                assoc._receive_some()
        info = event[1]
        assoc.called_ae_title, assoc.calling_ae_title = info.called_ae_title, info.calling_ae_title
        verdict = decide(info)
        if isinstance(verdict, acse.Rejection):
            machine.reject(pdu.a_associate_rj(verdict.result, verdict.source, verdict.reason))  # AE-8
            try:
                assoc._flush()
            except AssociationError:
                pass
            assoc._await_close()
            assoc._close()
            raise AssociationError("from %s (%s): %s" % (peer, info.calling_ae_title, verdict), permanent=True)
        results, roles = verdict
        machine.accept(acse.associate_ac(info, results, roles, maximum_length, IMPLEMENTATION_CLASS_UID,
                                         IMPLEMENTATION_VERSION_NAME))  # AE-7
        assoc._flush()
        assoc.negotiated = acse.accepted(info, results)
        return assoc

    def open(self, contexts):
        """A-ASSOCIATE with the proposed presentation contexts
        (acse.propose); the Negotiated outcome. Raises AssociationError."""
        rq = acse.associate_rq(self.called_ae_title, self.calling_ae_title, contexts, self.maximum_length,
                               IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME)
        self.machine = StateMachine(self.maximum_length)
        self.machine.request(rq)
        try:
            self.connection = self.board.open_connection(self.host, self.port, self.timeouts.connect,
                                                         self.timeouts.network, self.tls)
        except OSError as err:
            self.machine.abort()
            raise AssociationError("cannot connect to %s:%s: %s" % (self.host, self.port, err))
        self.machine.connected()
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
        self.log("associated with %s (%s:%s): %d of %d contexts accepted, peer maximum length %d" % (
            info.implementation_version_name or info.implementation_class_uid or "peer",
            self.host, self.port, len(self.negotiated.accepted), len(contexts), info.maximum_length))
        return self.negotiated

    def release(self):
        """A-RELEASE (PS3.8 7.2); never raises."""
        if self.machine is None or not self.machine.established:
            self._close()
            return
        try:
            self.machine.release()
            self._flush()
            self._wait(("released",), self.timeouts.acse, "ACSE")
        except AssociationError:
            pass
        finally:
            self._close()

    def abort(self):
        """A-ABORT (PS3.8 7.3.1), then ARTIM for the peer to close; never
        raises."""
        machine = self.machine
        if machine is not None and machine.state not in ("Sta1", "Sta13"):
            try:
                machine.abort()
                self._flush()
            except (OSError, AssociationError):
                pass
        if machine is not None and machine.artim_running and self.connection is not None:
            self._await_close()
        self._close()

    @property
    def usable(self):
        return self.machine is not None and self.machine.established

    # -- DIMSE messages --------------------------------------------------------
    def next_message_id(self):
        self._message_id = (self._message_id % 0xFFFF) + 1
        return self._message_id

    def pdv_limit(self):
        return message.pdv_limit(self.maximum_length, self.negotiated.peer_maximum_length)

    def send(self, context_id, command, data_set=None, offset=0, size=None, progress=None):
        """Send one message (net/message.py: data_set None, bytes or a
        reader). Returns the data set bytes sent. Raises DataSetFault or
        AssociationError (module doc)."""
        pdus = message.message_pdus(context_id, command, data_set, self.pdv_limit(), offset, size)
        sent = 0
        looked = -INCOMING_CHECK  # data set bytes sent when we last looked at what came in
        left = False
        while True:
            try:
                out, data = next(pdus)
            except StopIteration:
                return sent
            except (OSError, ConversionError, message.ShortDataSet) as err:
                self._data_set_fault(err, left)
            self.machine.send_data(out)
            self._flush()
            left = True
            sent += data
            if progress is not None and size:
                progress(min(sent, size), size)
            if sent - looked >= INCOMING_CHECK:
                looked = sent
                self._check_incoming()

    def _data_set_fault(self, err, left):
        if isinstance(err, ConversionError):
            why = "cannot be sent as Implicit VR Little Endian: %s" % err
        elif isinstance(err, OSError):
            why = "cannot read it: %s" % (getattr(err, "strerror", None) or err)
        else:
            why = str(err)
        if left:
            self.log("%s; aborting the association (the message was under way)" % why)
            self.abort()
            raise DataSetFault(why + " (association aborted)", True)
        raise DataSetFault(why, False)

    def _released_by_peer(self):
        """The peer's A-RELEASE-RQ (AR-2): answered (AR-4), then the peer
        closes (ARTIM). An acceptor's receive() returns None; a requestor
        did not expect it: AssociationError."""
        self.machine.release_response()
        try:
            self._flush()
        except AssociationError:
            pass
        self._await_close()
        self._close()
        if not self.acceptor:
            raise AssociationError("the peer released the association while we awaited a message")
        return None

    def response(self, message_id, command_field, timeout=None, reader=None):
        """The next message, which must answer message_id with
        command_field: (context_id, command, data_set). Anything else aborts
        the association (AssociationError). reader: as for receive()."""
        while True:
            context_id, command, data_set = self.receive(timeout, reader)
            field = command.get(dimse.CommandField, 0)
            if field & 0x8000 or len(self._requests) >= MAX_HELD_REQUESTS:
                break
            # A request of the peer's in between (a storage commitment
            # report while we store, PS3.4 J.3.3): kept for poll().
            self._requests.append((context_id, command, data_set))
        if (command.get(dimse.CommandField) != command_field
                or command.get(dimse.MessageIDBeingRespondedTo) != message_id):
            self.abort()
            raise AssociationError("unexpected DIMSE message 0x%04X for message %s" % (
                command.get(dimse.CommandField, 0), command.get(dimse.MessageIDBeingRespondedTo)))
        if command.get(dimse.Status) is None:
            self.abort()
            raise AssociationError("DIMSE response without a status")
        return context_id, command, data_set

    def receive(self, timeout=None, reader=None):
        """The next whole message: (context_id, command, data_set), waiting
        up to timeout (the DIMSE timeout). reader: a message.MessageReader
        with the sinks the service wants for data sets."""
        reader = reader or message.MessageReader(self.max_data_set)
        while True:
            event = self._wait(("data", "release_requested"), self.timeouts.dimse if timeout is None else timeout,
                               "DIMSE")
            if event[0] == "release_requested":
                return self._released_by_peer()
            whole = self._take(reader, event[1])
            if whole is not None:
                return whole

    def poll(self, timeout=0.0):
        """A request the peer sent us unasked (PS3.4 J.3.3: a storage
        commitment report on the association we opened): the whole message
        (context_id, command, data_set) if one came within timeout, else
        None; the association goes on either way (a message half in stays
        for the next poll). Raises AssociationError as receive() does."""
        if self._requests:
            return self._requests.pop(0)
        if self._incoming is None:
            self._incoming = message.MessageReader(self.max_data_set)
        while True:
            event = self._wait(("data",), timeout, "DIMSE", quiet=True)
            if event is None:
                return None
            whole = self._take(self._incoming, event[1])
            if whole is not None:
                self._incoming = None
                return whole
            timeout = 0.0

    def _take(self, reader, pdvs):
        """The PDVs of one P-DATA-TF into reader: the message they complete,
        or None. A PDV's presentation context ID "identifies one of the
        presentation contexts agreed to at association time" (PS3.8
        7.6.1); one on any other (a C-STORE on a context refused as
        abstract-syntax-not-supported, say) must never reach a service, so
        it aborts the association, as a malformed message does."""
        for context_id, control, data in pdvs:
            if context_id not in self.negotiated.accepted:
                self.abort()
                raise AssociationError("a PDV on presentation context %d, which was not accepted" % context_id)
            try:
                whole = reader.add(context_id, control, data)
            except dimse.DIMSEError as err:
                self.abort()
                raise AssociationError("malformed DIMSE message: %s" % err)
            if whole is not None:
                return whole
        return None

    # -- the connection --------------------------------------------------------
    def _now(self):
        return self.clock.monotonic_ns()

    def _flush(self):
        pending = self.machine.data_to_send()
        if self.connection is None or not pending:
            return
        try:
            self.connection.send(pending)
        except OSError as err:
            # The peer went away under us: the association is over.
            err = self.connection.send_failed(err)
            self.machine.transport_closed()
            self._close()
            raise AssociationError("connection lost while sending: %s" % err)

    def _receive_some(self):
        try:
            data = self.connection.recv()
        except OSError as err:
            self.machine.transport_closed()
            self._close()
            raise AssociationError("connection lost: %s" % err)
        if not data:
            self.machine.transport_closed()
            self._close()
            return
        self.machine.receive(data)
        self._flush()
        if self.machine.close_transport:
            self._close()

    def _check_incoming(self):
        """While sending, take in what the peer said (an A-ABORT, say)
        without waiting."""
        if self.connection is not None and self.connection.readable(0):
            self._receive_some()
        event = self.machine.next_event()
        while event is not None and event[0] in ("data", "release_requested"):
            # The peer may speak while we send (C-FIND responses still
            # coming after our C-CANCEL; a peer that releases as soon as it
            # has our last response): kept, in order, for the next wait.
            self._held.append(event)
            event = self.machine.next_event()
        if event is not None:
            self._lost(event)
        if self.connection is None:
            raise AssociationError("connection closed while sending")

    def _wait(self, kinds, timeout, timer, quiet=False):
        """The next event of kinds within timeout; anything else ends the
        association. Out of time: None if quiet, else the association is
        aborted and DIMSETimeout raised."""
        deadline = self._now() + int(timeout * NS)
        looked = False  # a quiet wait reads what is there at least once
        while True:
            event = self._held.pop(0) if self._held else self.machine.next_event()
            if event is not None:
                if event[0] in kinds:
                    return event
                self._lost(event)
            if self.connection is None:
                raise AssociationError("connection closed while waiting for %s" % " or ".join(kinds))
            left = deadline - self._now()
            if left <= 0 and quiet:
                if looked or not self.connection.readable(0):
                    return None
                looked = True
                self._receive_some()
                continue
            if left <= 0:
                self.log("%s timeout after %.1f s; aborting the association" % (timer, timeout))
                self.abort()
                raise DIMSETimeout("%s timeout: no answer within %.1f s" % (timer, timeout))
            self.connection.quick_ack()
            if self.connection.readable(left / NS):
                self._receive_some()

    def _await_close(self):
        """Sta13: the peer has ARTIM to close the connection (Evt17), else
        the timer expires (Evt18) and we close it (PS3.8 9.2, AA-2)."""
        deadline = self._now() + int(self.timeouts.artim * NS)
        try:
            while self.machine.artim_running and self.connection is not None:
                left = deadline - self._now()
                if left <= 0:
                    self.machine.artim_expired()
                    break
                if self.connection.readable(left / NS):
                    data = self.connection.recv()
                    if not data:
                        self.machine.transport_closed()
                        break
                    self.machine.receive(data)  # Sta13 ignores it (AA-6) or aborts again (AA-7)
                    self.connection.send(self.machine.data_to_send())
        except OSError:
            pass

    def _lost(self, event):
        kind = event[0]
        if kind == "aborted":
            text = acse.describe_abort(event[1], event[2])
        elif kind == "provider_abort":
            text = "association aborted: %s" % event[1]
        else:
            text = "unexpected %s" % kind
        self.log(text)
        self.abort()
        raise AssociationError(text)

    def _close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.machine is not None and self.machine.state != "Sta1":
            try:
                self.machine.transport_closed()
            except Exception:
                pass
