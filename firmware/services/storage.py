"""The Storage Service Class (PS3.4 B) as SCU: C-STORE (PS3.7 9.1.1) of
Part 10 files, streamed from storage on the association driver.

    scu = StorageSCU(board, "pacs", 104, "PACS", "MODGATE", open_object=spool.open)
    scu.associate([(sop_class, transfer_syntax)])
    result = scu.store(name)          # a StoreResult
    scu.release()

open_object(name) gives a hal storage ReadHandle (read, read_into,
size). Every object is sent in PDU-sized pieces straight from it; nothing
grows with the file.

Faults are kept apart by what caused them. A fault of the object itself
(it cannot be opened or read, its header is not Part 10 or its UIDs are no
UIDs, it is cut short or cannot be converted for an Implicit-only peer, it
shrank while being sent) never raises: store() returns a StoreResult with
object_fault True (the association goes on if nothing of the C-STORE had
left, else it was aborted and usable is False). Sending that object again
fails the same way. A fault of the association raises AssociationError.
"""

from firmware.association import Association, AssociationError, DataSetFault, Timeouts
from firmware.dicom.part10 import MAX_FILE_META, read_file_meta
from firmware.dicom.uid import check_uid
from firmware.net import acse, dimse, message
from firmware.services import verification


class StoreResult:
    """How one object fared: status is None when it never got a response.
    object_fault: the object itself is at fault (the module's doc) and
    will fail the same way every time; meaning names it and why."""

    def __init__(self, name, sop_instance_uid, status=None, category=dimse.FAILURE, meaning="", sent_bytes=0,
                 seconds=0.0, converted=False, object_fault=False, sop_class_uid=None):
        self.name = name
        self.sop_instance_uid = sop_instance_uid
        self.sop_class_uid = sop_class_uid
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
        return "%s %s %s: %s" % (self.sop_instance_uid or self.name, status, self.category, self.meaning)


def object_info(handle):
    """(FileMeta, size) of a Part 10 file open as a ReadHandle, reading only
    its head. OSError if it cannot be read, ValueError if it is no Part 10
    file that can be sent."""
    meta = read_file_meta(handle.read(MAX_FILE_META))
    # The UIDs go into the association request and the C-STORE-RQ
    # (PS3.7 9.3.1.1): one that is no UID (PS3.5 9.1) is the file's fault,
    # found here rather than as a rejection of everyone's association.
    for what, uid in (("SOP Class UID", meta.sop_class_uid), ("SOP Instance UID", meta.sop_instance_uid),
                      ("Transfer Syntax UID", meta.transfer_syntax_uid)):
        try:
            check_uid(uid)
        except ValueError as err:
            raise ValueError("File Meta Information: %s: %s" % (what, err))
    if handle.size <= meta.dataset_offset:
        raise ValueError("no data set after the File Meta Information")
    return meta, handle.size


def _fault(name, uid, why):
    return StoreResult(name, uid, meaning="not sent: %s: %s" % (name, why), object_fault=True)


def _reason(err):
    # The object is named beside it: strerror alone, where the port has it.
    return getattr(err, "strerror", None) or str(err)


class StorageSCU:
    def __init__(self, board, host, port, called_ae_title="ANY-SCP", calling_ae_title="MODGATE",
                 maximum_length=None, timeouts=None, tls=None, log=None, progress=None, open_object=None):
        options = {} if maximum_length is None else {"maximum_length": maximum_length}
        self.association = Association(board, host, port, called_ae_title, calling_ae_title,
                                       timeouts=timeouts, tls=tls, log=log, **options)
        self.log = self.association.log
        self.progress = progress
        self.open_object = open_object

    def associate(self, pairs):
        """Open an association proposing contexts for (sop_class, ts) pairs
        and Verification. Raises AssociationError."""
        return self.association.open(acse.propose([verification.CONTEXT] + list(pairs)))

    @property
    def negotiated(self):
        return self.association.negotiated

    @property
    def usable(self):
        return self.association.usable

    def release(self):
        self.association.release()

    def abort(self):
        self.association.abort()

    def echo(self):
        return verification.echo(self.association)

    def store(self, name, meta=None):
        """C-STORE one Part 10 object; a StoreResult (object faults never
        raise). Raises AssociationError if the association is lost or was
        not usable. meta: its FileMeta if the caller has just read it."""
        if not self.usable:
            raise AssociationError("no association to send %s on" % name)
        clock = self.association.clock
        started = clock.monotonic_ns()
        try:
            handle = self.open_object(name)
        except OSError as err:
            return _fault(name, None, "cannot open it: %s" % _reason(err))
        try:
            try:
                if meta is None:
                    meta, _ = object_info(handle)
            except OSError as err:
                return _fault(name, None, "cannot read its header: %s" % _reason(err))
            except ValueError as err:
                return _fault(name, None, str(err))
            result = self._store(name, handle, meta)
        finally:
            handle.close()
        result.seconds = (clock.monotonic_ns() - started) / 1e9
        return result

    def _store(self, name, handle, meta):
        choice = self.negotiated.choose(meta.sop_class_uid, meta.transfer_syntax_uid)
        if choice is None:
            return StoreResult(name, meta.sop_instance_uid, meaning="not sent: " + self.negotiated.why_not(meta.sop_class_uid))
        context_id, ts = choice
        size = handle.size - meta.dataset_offset
        if size <= 0:
            return _fault(name, meta.sop_instance_uid, "no data set after the File Meta Information")
        converted = ts != meta.transfer_syntax_uid
        message_id = self.association.next_message_id()
        command = dimse.c_store_rq(message_id, meta.sop_class_uid, meta.sop_instance_uid)
        try:
            if converted:
                # An Explicit VR object for a peer that took only Implicit
                # VR LE (acse.Negotiated.choose): converted as it streams.
                reader = message.ConvertingReader(handle, meta.dataset_offset, self.association.pdv_limit())
                sent = self.association.send(context_id, command, reader)
            else:
                sent = self.association.send(context_id, command, handle, meta.dataset_offset, size, self.progress)
        except DataSetFault as err:
            return _fault(name, meta.sop_instance_uid, str(err))
        _, response, _ = self.association.response(message_id, dimse.C_STORE_RSP)
        status = response[dimse.Status]
        category, meaning = dimse.status_class(status)
        if category == dimse.WARNING:
            self.log("warning %04X for %s: %s (stored)" % (status, meta.sop_instance_uid, meaning))
        elif category == dimse.FAILURE:
            self.log("failure %04X for %s: %s" % (status, meta.sop_instance_uid, meaning))
        return StoreResult(name, meta.sop_instance_uid, status, category, meaning, sent, converted=converted,
                           sop_class_uid=meta.sop_class_uid)


def _pairs(infos):
    """The (SOP class, transfer syntax) pairs to propose for the objects in
    infos, in order, as many as fit in one association's presentation
    contexts (acse.propose: up to 3 per pair, PS3.8 9.3.2.2's odd IDs 1 to
    255). An association opened for the rest takes the others."""
    pairs = []
    for _, meta in infos:
        pair = (meta.sop_class_uid, meta.transfer_syntax_uid)
        if pair in pairs:
            continue
        if 3 * (len(pairs) + 1) + 1 > acse.MAX_CONTEXTS:
            break
        pairs.append(pair)
    return pairs


def store_files(board, names, host, port, open_object, log=None, **options):
    """Send every object over as few associations as possible: a lost or
    aborted association is re-opened for the objects still to go. Yields a
    StoreResult per object, in order; an object at fault is reported (with
    object_fault) and the rest go on."""
    infos = []
    for name in names:
        try:
            with open_object(name) as handle:
                infos.append((name, object_info(handle)[0]))
        except OSError as err:
            infos.append((name, "cannot read its header: %s" % _reason(err)))
        except ValueError as err:
            infos.append((name, str(err)))
    scu = None
    proposed = ()
    for index, (name, meta) in enumerate(infos):
        if isinstance(meta, str):
            yield _fault(name, None, meta)
            continue
        pair = (meta.sop_class_uid, meta.transfer_syntax_uid)
        if scu is None or not scu.usable or pair not in proposed:
            if scu is not None:
                scu.release()
            proposed = _pairs([i for i in infos[index:] if not isinstance(i[1], str)])
            scu = StorageSCU(board, host, port, log=log, open_object=open_object, **options)
            try:
                scu.associate(proposed)
            except AssociationError as err:
                for name, meta in infos[index:]:
                    if isinstance(meta, str):
                        yield _fault(name, None, meta)
                    else:
                        yield StoreResult(name, meta.sop_instance_uid, meaning="not sent: %s" % err)
                return
        try:
            yield scu.store(name, meta)
        except AssociationError as err:
            yield StoreResult(name, meta.sop_instance_uid, meaning="not stored: %s" % err)
    if scu is not None:
        scu.release()


def pacs_timeouts(cfg):
    """The waits of every association the box opens (pacs.*_timeout)."""
    return Timeouts(cfg["pacs.connect_timeout"], cfg["pacs.acse_timeout"], cfg["pacs.dimse_timeout"],
                    cfg["pacs.network_timeout"])


def pacs_tls(cfg, board, key="pacs.tls"):
    """The TLS context for the configured PACS (PS3.15 B.9), or None
    without pacs.tls; key: another peer's switch (worklist.tls, mpps.tls),
    for the box has one TLS identity and one set of trusted CAs, pacs.ca,
    pacs.cert and pacs.key. Raises OSError or ValueError for files that do
    not load (the configuration's check calls this too)."""
    if not cfg[key]:
        return None
    return board.open_tls(cfg["pacs.ca"], cfg["pacs.cert"], cfg["pacs.key"])


def associate(cfg, board, peer, contexts, log=None):
    """An open association to the configured peer other than the PACS
    ("worklist", "mpps"): its PEER.host, .port, .ae_title and .tls keys,
    with the box's waits (pacs_timeouts) and TLS identity (pacs_tls).
    Raises AssociationError."""
    try:
        tls = pacs_tls(cfg, board, peer + ".tls")
    except (OSError, ValueError) as err:
        raise AssociationError("the TLS settings do not load: %s" % err, permanent=True)
    association = Association(board, cfg[peer + ".host"], cfg[peer + ".port"], cfg[peer + ".ae_title"],
                              cfg["station.ae_title"], timeouts=pacs_timeouts(cfg), tls=tls, log=log)
    association.open(acse.propose(contexts))
    return association


def storage_scu(cfg, board, tls=None, log=None, open_object=None):
    """The Storage SCU for the configured PACS (the sender's and the
    console's echo): the one place the pacs.* keys become an SCU. tls: the
    context from board.open_tls for pacs.ca/cert/key when pacs.tls."""
    return StorageSCU(
        board, cfg["pacs.host"], cfg["pacs.port"], called_ae_title=cfg["pacs.ae_title"],
        calling_ae_title=cfg["station.ae_title"], maximum_length=cfg["pacs.maximum_length"],
        timeouts=pacs_timeouts(cfg),
        tls=tls, log=log, open_object=open_object)
