"""The box's one listening port: a small, locked-down acceptor for the
associations a PACS opens to send what the box asked for on an association
of its own, i.e. the storage commitment report (PS3.4 J.3.3: "the SCP
may initiate an Association to send the N-EVENT-REPORT").

The policy (decide()), each refusal logged:
- (before decide(): a request without protocol version 1 gets the
  provider's own A-ASSOCIATE-RJ, service-provider (ACSE),
  protocol-version-not-supported; net/fsm AE-6, PS3.8 9.3.2)
- the application context must be DICOM's (else A-ASSOCIATE-RJ
  rejected-permanent, service-user, application-context-name-not-supported;
  PS3.8 9.3.4);
- the called AE title must be ours (station.ae_title; else
  called-AE-title-not-recognized);
- the calling AE title must be the PACS's (pacs.ae_title; else
  calling-AE-title-not-recognized);
- the peer's address must be one that pacs.host resolves to (else
  no-reason-given: PS3.8 has no reason for an address);
- a presentation context is accepted only for the SOP classes given
  (Storage Commitment Push Model) in Explicit or Implicit VR Little Endian;
  any other abstract syntax is refused as abstract-syntax-not-supported and
  any other transfer syntax as transfer-syntaxes-not-supported (PS3.8
  9.3.3.2). An association whose every context is refused is still
  accepted: PS3.8 keeps the two apart (7.1.2.3, the called AE accepts or
  rejects the association; 7.1.1.14, a result per context) and has no
  A-ASSOCIATE-RJ reason for it, and the requestor then sees each
  context's result, which says more than a bare no-reason-given. No
  message can be sent on it (a PDV on a refused context aborts, PS3.8
  7.6.1). So no Storage context is ever accepted, and no C-STORE ever
  reaches the box;
- the SCP/SCU Role Selection (PS3.7 D.3.3.4) the PACS proposes for the
  class, as it opens the association in the SCP role (PS3.4 J.3.3), is
  answered SCU 0, SCP 1: it may send the report and nothing else. An
  acceptor may not grant a role that was not proposed (PS3.7 D.3.3.4), so
  a PACS that proposes only the SCU role (it would ask us to commit) leaves
  no role to use: that context is refused, user-rejection. A proposal
  without role selection is accepted too (the reverse roles are then
  implied; several PACS do not send the item). Orthanc 1.10 (DCMTK 3.6.7)
  proposes one context, Implicit and Explicit VR LE, with the item
  (SCU 0, SCP 1).
With pacs.tls the listener speaks TLS only, and the PACS must present a
certificate issued by pacs.ca.

One association at a time: a report is small and the PACS retries; a
second peer waits in the backlog. Each message goes to handle(association,
context_id, command, data_set) (firmware/committer.py), which answers it:
a request other than N-EVENT-REPORT on the accepted context gets a
failure response, 0x0211 Unrecognized Operation (PS3.7 Annex C;
services/commitment), not an abort: the message was well formed, and a
report that follows on the same association is still taken. Anything else the handler raises ends that association (aborted,
logged), never the listener.
"""

from firmware.association import DEFAULT_MAXIMUM_LENGTH, Association, AssociationError, Timeouts
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN
from firmware.net import acse, pdu

# PS3.8 9.3.4 (acse.REJECT_REASONS): result, source, reason.
PERMANENT = 1
SERVICE_USER = 1
NO_REASON = 1
APPLICATION_CONTEXT_NOT_SUPPORTED = 2
CALLING_AE_NOT_RECOGNIZED = 3
CALLED_AE_NOT_RECOGNIZED = 7
# PS3.8 9.3.3.2: presentation context results.
USER_REJECTION = 1
ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
TRANSFER_SYNTAXES_NOT_SUPPORTED = 4
TRANSFER_SYNTAXES = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)
# The largest data set the listener reads (a report of a thousand objects
# is about 150 KB).
MAX_DATA_SET = 512 * 1024


class Listener:
    """sop_classes: the abstract syntaxes accepted. peer_ae_title,
    peer_host: the PACS. tls: a server context (board.open_server_tls) or
    None. timeouts: acse for the A-ASSOCIATE-RQ, dimse for the idle time
    between messages, network for each read and the TLS handshake."""

    def __init__(self, board, port, ae_title, peer_ae_title, peer_host, sop_classes, handle, log=None, tls=None,
                 timeouts=None, maximum_length=DEFAULT_MAXIMUM_LENGTH):
        self.board = board
        self.port = port
        self.ae_title = ae_title
        self.peer_ae_title = peer_ae_title
        self.peer_host = peer_host
        self.sop_classes = tuple(sop_classes)
        self.handle = handle
        self.log = log or (lambda text: None)
        self.tls = tls
        self.timeouts = timeouts or Timeouts()
        self.maximum_length = maximum_length
        self.socket = None
        self.served = 0
        self.refused = 0

    def open(self):
        """Start listening; OSError if the port cannot be had."""
        if self.socket is None:
            self.socket = self.board.open_listener(self.port, self.tls)
            self.port = self.socket.port
            self.log("listener: on port %d for %s's reports (%s)" % (
                self.port, self.peer_ae_title, "TLS" if self.tls is not None else "no TLS"))
        return self

    def close(self):
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def run(self, stopping):
        """Serve until stopping() is true; one bad peer never ends it."""
        self.open()
        try:
            while not stopping():
                self.serve_once(0.5)
        finally:
            self.close()

    def serve_once(self, timeout_s):
        """Serve at most one association that comes within timeout_s, to its
        end. True if one came."""
        try:
            accepted = self.socket.accept(timeout_s, self.timeouts.network)
        except OSError as err:  # the TLS handshake failed, or the peer went away
            self.refused += 1
            self.log("listener: a connection failed before its association: %s" % err)
            return True
        if accepted is None:
            return False
        connection, address = accepted
        try:
            association = Association.accept(self.board, connection, address, lambda info: self.decide(info, address),
                                             self.maximum_length, self.timeouts, self.log)
        except AssociationError as err:
            self.refused += 1
            self.log("listener: refused: %s" % err)
            return True
        except Exception as err:  # a fault of ours that a peer provoked: its connection goes, the listener stays
            connection.close()
            self.refused += 1
            self.log("listener: refused after an internal error: %s: %s" % (type(err).__name__, err))
            return True
        association.max_data_set = MAX_DATA_SET
        self.served += 1
        self.log("listener: association from %s (%s) accepted" % (address, association.calling_ae_title))
        try:
            while True:
                incoming = association.receive()
                if incoming is None:
                    break  # released
                self.handle(association, *incoming)
        except AssociationError as err:
            self.log("listener: association from %s ended: %s" % (address, err))
        except Exception as err:  # a handler's fault: this association ends, the listener goes on
            self.log("listener: association from %s aborted: the handler failed: %s: %s" % (
                address, type(err).__name__, err))
        finally:
            association.abort()  # a no-op once released
        return True

    def decide(self, info, address):
        """acse.Rejection, or (results, roles) for the A-ASSOCIATE-AC (the
        module's doc)."""
        def refuse(reason, why):
            self.log("listener: A-ASSOCIATE-RJ to %s (%r): %s" % (address, info.calling_ae_title, why))
            return acse.Rejection(PERMANENT, SERVICE_USER, reason)

        if info.application_context != pdu.APPLICATION_CONTEXT_NAME:
            return refuse(APPLICATION_CONTEXT_NOT_SUPPORTED, "application context %s" % info.application_context)
        if info.called_ae_title != self.ae_title:
            return refuse(CALLED_AE_NOT_RECOGNIZED, "called AE title %r is not ours (%r)" % (
                info.called_ae_title, self.ae_title))
        if info.calling_ae_title != self.peer_ae_title:
            return refuse(CALLING_AE_NOT_RECOGNIZED, "calling AE title %r is not the PACS's (%r)" % (
                info.calling_ae_title, self.peer_ae_title))
        try:
            addresses = self.board.resolve(self.peer_host)
        except OSError as err:
            return refuse(NO_REASON, "the PACS's host %s does not resolve: %s" % (self.peer_host, err))
        if _plain(address) not in [_plain(a) for a in addresses]:
            return refuse(NO_REASON, "address %s is not the PACS's (%s: %s)" % (
                address, self.peer_host, ", ".join(addresses)))
        results = {}
        roles = []
        for context_id, (abstract, syntaxes) in sorted(info.contexts.items()):
            first = syntaxes[0] if syntaxes else IMPLICIT_VR_LITTLE_ENDIAN
            if abstract not in self.sop_classes:
                results[context_id] = (ABSTRACT_SYNTAX_NOT_SUPPORTED, first)
                self.log("listener: context %d refused: %s is not taken here" % (context_id, abstract))
                continue
            chosen = [ts for ts in TRANSFER_SYNTAXES if ts in syntaxes]
            if not chosen:
                results[context_id] = (TRANSFER_SYNTAXES_NOT_SUPPORTED, first)
                continue
            if abstract in info.roles and not info.roles[abstract][1]:
                results[context_id] = (USER_REJECTION, first)
                self.log("listener: context %d refused: the PACS proposes only the SCU role for %s" % (
                    context_id, abstract))
                continue
            results[context_id] = (acse.ACCEPTANCE, chosen[0])
            if abstract in info.roles and abstract not in [r[0] for r in roles]:
                roles.append((abstract, 0, 1))
        return results, roles


def _plain(address):
    """An IPv4 address seen through an IPv6 socket (::ffff:a.b.c.d) as
    itself."""
    return address[7:] if address.startswith("::ffff:") else address
