"""The committer: storage commitment for what the PACS stored (PS3.4 Annex J,
Push Model), so that the box deletes nothing the archive has not committed
to. It runs on the sender's thread and on its association.

With pacs.commit on, an object the PACS stored waits in the spool's stored/
folder (firmware/spool.py). The committer gathers those objects into a
transaction (a Transaction UID, at most commitment.MAX_REFERENCES objects),
writes the transaction into the spool (COMMITMENT, fsynced) before it asks,
then sends the N-ACTION. The N-EVENT-REPORT says which objects are
committed (they leave the spool, or go to sent/ while spool.retain_sent
allows) and which failed (back to the queue with one more failure: stored
and requested again, quarantined at spool.max_failures). The report comes
on the association the request went on (poll()) or on one the PACS opens
to the box's listener (firmware/listener.py; deliver() from its thread). A
transaction without a report within pacs.commit_timeout is dropped and its
objects are requested again under a new Transaction UID.

A power cut at any instant loses nothing: an object is in stored/ until a
report naming it is applied, and the transactions under way are in the
spool; after a restart they wait pacs.commit_timeout again (a report may
still come) before they are requested anew.
"""

import json

from firmware.association import AssociationError
from firmware.compat.threads import Lock
from firmware.config import write_atomic
from firmware.dicom.uid import STORAGE_COMMITMENT_PUSH_MODEL, generate_uid
from firmware.listener import Listener
from firmware.services import commitment
from firmware.services.storage import object_info, pacs_timeouts
from firmware.spool import COMMITMENT, STORED

NS = 1000000000
# The settings the listener is made with: a change makes it anew.
LISTENER_KEYS = ("pacs.commit_port", "pacs.ae_title", "pacs.host", "station.ae_title", "pacs.tls", "pacs.ca",
                 "pacs.cert", "pacs.key", "pacs.maximum_length", "pacs.acse_timeout", "pacs.dimse_timeout",
                 "pacs.network_timeout")


class Transaction:
    """One request: its UID, when it was asked (monotonic ns, this run) and
    its objects {sop_instance_uid: (spool name, sop_class_uid)}."""

    def __init__(self, uid, objects, requested_ns):
        self.uid = uid
        self.objects = objects
        self.requested_ns = requested_ns

    def record(self):
        return {"uid": self.uid,
                "objects": [[name, sop_class, instance] for instance, (name, sop_class) in self.objects.items()]}


class Committer:
    """gateway: cfg, clock, alarms, log, spool, storage."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.transactions = []
        self.committed = 0
        self.failed = 0
        self.last_report = None  # (wall time, text)
        self._loaded_storage = None
        self._reports = []  # Reports delivered by the listener's thread
        self._lock = Lock()
        self._stored_since = 0  # objects stored since the last request
        self._not_before = 0  # monotonic ns: no request before (the PACS refused one)

    # -- the transactions in the spool -------------------------------------------
    def _load(self):
        """The transactions kept from before this start (once per spool)."""
        g = self.gateway
        storage = g.storage
        if storage is self._loaded_storage:
            return
        self._loaded_storage = storage
        self.transactions = []
        if storage is None or not storage.exists(COMMITMENT):
            return
        now = g.clock.monotonic_ns()
        try:
            with storage.open_read(COMMITMENT) as f:
                kept = json.loads(f.read().decode("utf-8"))
            for t in kept["transactions"]:
                objects = {}
                for name, sop_class, instance in t["objects"]:
                    objects[instance] = (name, sop_class)
                self.transactions.append(Transaction(t["uid"], objects, now))
        except (OSError, ValueError, KeyError, TypeError) as err:
            # Its objects are still in stored/: they are requested again.
            g.log("commitment: the kept transactions in %s cannot be read (%s); their objects are asked for again" % (
                COMMITMENT, err))
            self.transactions = []
            return
        if self.transactions:
            g.log("commitment: %d transactions from before this start await their report" % len(self.transactions))

    def _save(self):
        """Durably, before the request leaves and after a report is applied.
        Raises OSError."""
        write_atomic(self.gateway.storage, COMMITMENT,
                     json.dumps({"transactions": [t.record() for t in self.transactions]}).encode("utf-8"))

    # -- what the sender calls ----------------------------------------------------
    def stored(self):
        """The sender moved one more object into stored/."""
        self._stored_since += 1

    def deliver(self, report):
        """A report from another thread (the listener): applied on the
        sender's thread at its next step."""
        with self._lock:
            self._reports.append(report)

    def outstanding(self):
        return len(self.transactions)

    def unrequested(self):
        """How many objects in stored/ no transaction under way names, when
        a request for them may go now (else 0)."""
        spool = self.gateway.spool
        if spool is None or self.gateway.clock.monotonic_ns() < self._not_before:
            return 0
        self._load()
        asked = self._asked()
        try:
            return len([name for name in spool.awaiting() if name not in asked])
        except OSError:
            return 0

    def _asked(self):
        asked = set()
        for t in self.transactions:
            for name, _ in t.objects.values():
                asked.add(name)
        return asked

    def step(self, association, queue_empty):
        """Apply the reports in, drop transactions past pacs.commit_timeout,
        and when the queue is empty (or a request's worth was stored) ask
        for commitment of what waits in stored/. association: the sender's
        open StorageSCU association, or None. Raises AssociationError from
        the association (the sender's to handle)."""
        g = self.gateway
        if g.spool is None:
            return
        self._load()
        with self._lock:
            reports, self._reports = self._reports, []
        for report in reports:
            self.apply(report)
        if association is not None and association.usable:
            self.poll(association)
        self._expire()
        if association is not None and association.usable and g.clock.monotonic_ns() >= self._not_before and (
                queue_empty or self._stored_since >= commitment.MAX_REFERENCES):
            self._request(association)

    def poll(self, association, timeout=0.0):
        """Reports that came on the association (PS3.4 J.3.3): answered and
        applied; other requests of the peer's are refused."""
        while True:
            incoming = association.poll(timeout)
            if incoming is None:
                return
            timeout = 0.0
            context_id, command, data_set = incoming
            report = self.handle(association, context_id, command, data_set)
            if report is not None:
                self.apply(report)

    def handle(self, association, context_id, command, data_set):
        """One request the PACS sent (services/commitment.take_report): the
        Report, or None."""
        return commitment.take_report(association, context_id, command, data_set, self.gateway.log)

    # -- the listener ----------------------------------------------------------------
    def listen(self):
        """The listener's thread (firmware/listener.py): with pacs.commit and
        pacs.commit_port, the PACS's reports on associations it opens to
        the box; made anew when its settings change."""
        g = self.gateway
        listener = None
        settings = None
        while not g.stopping():
            cfg = g.cfg
            wanted = [cfg[k] for k in LISTENER_KEYS] if cfg["pacs.commit"] and cfg["pacs.commit_port"] else None
            if wanted != settings:
                if listener is not None:
                    listener.close()
                    listener = None
                try:
                    if wanted:
                        listener = self._listener(cfg)
                    g.alarms.clear("listener")
                    settings = wanted
                except (OSError, ValueError) as err:
                    g.alarms.set("listener", "cannot listen on port %d for the PACS's commitment reports: %s" % (
                        cfg["pacs.commit_port"], err), "check pacs.commit_port (in use?) and the TLS files")
                    g.pause(min(cfg["spool.backoff_max"], 5.0))
                    continue
            if listener is None:
                g.pause(0.5)
            else:
                listener.serve_once(0.5)
        if listener is not None:
            listener.close()

    def _listener(self, cfg):
        g = self.gateway
        tls = None
        if cfg["pacs.tls"]:
            tls = g.board.open_server_tls(cfg["pacs.ca"], cfg["pacs.cert"], cfg["pacs.key"])
        return Listener(g.board, cfg["pacs.commit_port"], cfg["station.ae_title"], cfg["pacs.ae_title"],
                        cfg["pacs.host"], [STORAGE_COMMITMENT_PUSH_MODEL], self._take, log=g.log, tls=tls,
                        timeouts=pacs_timeouts(cfg), maximum_length=cfg["pacs.maximum_length"]).open()

    def _take(self, association, context_id, command, data_set):
        report = self.handle(association, context_id, command, data_set)
        if report is not None:
            self.deliver(report)
            self.gateway.sender.notify()

    # -- the transactions ----------------------------------------------------------
    def _request(self, association):
        g = self.gateway
        spool = g.spool
        asked = self._asked()
        waiting = [name for name in spool.awaiting() if name not in asked]
        self._stored_since = 0
        if not waiting:
            return
        objects = {}
        for name in waiting[: commitment.MAX_REFERENCES]:
            try:
                with spool.open(name, STORED) as handle:
                    meta = object_info(handle)[0]
            except (OSError, ValueError) as err:
                g.log("commitment: %s in stored/ cannot be read (%s); not asked for" % (name, err))
                continue
            objects[meta.sop_instance_uid] = (name, meta.sop_class_uid)
        if not objects:
            return
        uid = generate_uid(g.cfg["station.uid_root"])
        t = Transaction(uid, objects, g.clock.monotonic_ns())
        self.transactions.append(t)
        try:
            self._save()
        except OSError as err:
            self.transactions.remove(t)
            g.alarms.set("commitment", "cannot keep the commitment transaction in the spool: %s" % err,
                         "check the spool's storage")
            return
        references = [(sop_class, instance) for instance, (_, sop_class) in objects.items()]
        try:
            status, meaning = commitment.request(association, uid, references)
        except AssociationError as err:
            self._forget(t)
            if not err.permanent:
                raise
            # The PACS took no Storage Commitment context: its objects keep
            # going, the request waits (the objects stay in stored/).
            self._later("storage commitment cannot be asked: %s" % err,
                        "the PACS does not take storage commitment: turn pacs.commit off, or ask its administrator")
            return
        if status != 0x0000:
            self._forget(t)
            self._later("the PACS refused storage commitment: N-ACTION %04X %s" % (status, meaning),
                        "check the PACS's storage commitment settings")
            return
        g.log("commitment: asked for %d objects, transaction %s" % (len(objects), uid))

    def _later(self, text, hint):
        """A request the PACS did not take: an alarm, and no new request
        before spool.backoff_max."""
        g = self.gateway
        g.alarms.set("commitment", text + "; asked again in %.0f s" % g.cfg["spool.backoff_max"], hint)
        self._not_before = g.clock.monotonic_ns() + int(g.cfg["spool.backoff_max"] * NS)

    def _forget(self, t):
        if t in self.transactions:
            self.transactions.remove(t)
            self._save_quietly()

    def _save_quietly(self):
        try:
            self._save()
        except OSError as err:
            self.gateway.log("commitment: cannot update %s: %s" % (COMMITMENT, err))

    def _expire(self):
        g = self.gateway
        limit = int(g.cfg["pacs.commit_timeout"] * NS)
        now = g.clock.monotonic_ns()
        late = [t for t in self.transactions if now - t.requested_ns >= limit]
        for t in late:
            self.transactions.remove(t)
            g.alarms.set("commitment", "no storage commitment report for transaction %s (%d objects) within %.0f s; "
                         "asked again" % (t.uid, len(t.objects), g.cfg["pacs.commit_timeout"]),
                         "the PACS must know this box (AE title, address, pacs.commit_port) to send its report")
        if late:
            self._save_quietly()

    def apply(self, report):
        """A report: committed objects leave the spool, failed ones go back
        to the queue; its transaction is done."""
        g = self.gateway
        t = None
        for candidate in self.transactions:
            if candidate.uid == report.transaction_uid:
                t = candidate
        if t is None:
            g.log("commitment: report for transaction %s, which is not under way (answered already, or asked "
                  "again since): ignored" % report.transaction_uid)
            return
        spool = g.spool
        committed = 0
        for _, instance in report.committed:
            found = t.objects.pop(instance, None)
            if found is not None:
                spool.committed(found[0])
                committed += 1
        failures = []
        for _, instance, reason in report.failed:
            found = t.objects.pop(instance, None)
            if found is not None:
                why = "storage commitment failed: %s" % commitment.failure_text(reason)
                spool.not_committed(found[0], why)
                failures.append("%s %s" % (found[0], commitment.failure_text(reason)))
        # Objects the report does not name stay in stored/: asked again.
        self.transactions.remove(t)
        self._save_quietly()
        self.committed += committed
        self.failed += len(failures)
        text = "transaction %s: %d committed, %d failed%s" % (
            t.uid, committed, len(failures), (": " + "; ".join(failures[:5])) if failures else "")
        self.last_report = (g.clock.wall_utc(), text)
        g.log("commitment: " + text)
        if failures:
            g.alarms.set("commitment", "the PACS did not commit to %d objects: %s" % (len(failures), failures[0]),
                         "they are sent and asked for again")
        else:
            g.alarms.clear("commitment")
        g.check_space()
