"""The sender: the spool's queue -> C-STORE on an association with the
configured PACS (DESIGN.md: spool -> sender -> association), oldest object
first, unattended.

Faults are kept apart by what caused them. A fault setting up the
association (refused, rejected, no answer) is the PACS's: an alarm, retried
with backoff, counted against no object. A fault while an object is under
way, or a failure status, counts against that object, so that an object
that fails every time ends in quarantine instead of stalling the queue
(DISPOSITION). An object whose header is not Part 10 goes to quarantine at
once.
"""

import random

from firmware.alarms import hint_for
from firmware.association import AssociationError
from firmware.compat.threads import Event
from firmware.dicom.uid import ENCAPSULATED, UID_NAMES
from firmware.net import dimse
from firmware.services import commitment
from firmware.services.storage import object_info, storage_scu

# Queued objects whose SOP classes a new association proposes contexts for.
LOOK_AHEAD = 16
# What becomes of a spooled object once its C-STORE-RSP is in, by status
# class (PS3.7 C.1.2, dimse.STATUS_RANGES): the Spool method the sender
# calls, and what that means for the object. The Conformance Statement
# prints this table.
DISPOSITION = {
    dimse.SUCCESS: ("stored", "leaves the queue: deleted, or kept in sent/ while spool.retain_sent allows"),
    dimse.WARNING: ("stored", "as for success (the SCP kept the object); the status and its meaning are logged"),
    dimse.FAILURE: ("failed", "stays in the queue with its failure count raised (NNN.fK.dcm) and is sent again; "
                              "after spool.max_failures failures it moves to quarantine/ and an alarm is logged"),
}
# The settings an association is made with: a change renews it.
PACS_KEYS = ("pacs.host", "pacs.port", "pacs.ae_title", "pacs.maximum_length", "pacs.tls", "pacs.ca", "pacs.cert", "pacs.key",
             "pacs.connect_timeout", "pacs.acse_timeout", "pacs.dimse_timeout", "pacs.network_timeout",
             "pacs.commit", "station.ae_title")


# -- the Storage SCU ---------------------------------------------------------------

def echo(cfg, board, tls):
    """C-ECHO (PS3.7 9.1.5) on an association of its own: (status,
    meaning), or (None, why) when there was no association."""
    scu = storage_scu(cfg, board, tls)
    try:
        scu.associate([])
        status, _, meaning = scu.echo()
        scu.release()
    except AssociationError as err:
        return None, str(err)
    return status, meaning


def read_meta(spool, name):
    """A queued object's Part 10 file meta information. ValueError: not a
    Part 10 header (it never will be); OSError: a read that may work next
    time."""
    with spool.open(name) as handle:
        return object_info(handle)[0]


class _Association:
    """The sender's association: one StorageSCU, made for what the queue's
    next objects need and renewed when the PACS settings change."""

    def __init__(self):
        self.scu = None
        self.settings = None

    def fits(self, settings, meta):
        """It exists, was made with these settings and can carry meta's
        SOP class in its transfer syntax (or one it converts to)."""
        scu = self.scu
        return (scu is not None and settings == self.settings and scu.usable
                and bool(scu.negotiated.choose(meta.sop_class_uid, meta.transfer_syntax_uid)))

    def open(self, cfg, board, tls, log, settings, spool, pending):
        """A new association proposing what the next objects in the queue
        need (a bounded look-ahead: the first LOOK_AHEAD)."""
        wanted = set()
        for name in pending[:LOOK_AHEAD]:
            try:
                meta = read_meta(spool, name)
            except (OSError, ValueError):
                continue
            wanted.add((meta.sop_class_uid, meta.transfer_syntax_uid))
        self.settings = settings
        scu = storage_scu(cfg, board, tls, log, open_object=spool.open)
        pairs = sorted(wanted)
        if cfg["pacs.commit"]:
            # The report may come on this association (PS3.4 J.3.3).
            pairs += commitment.CONTEXTS
            scu.association.max_data_set = commitment.MAX_REPORT
        scu.associate(pairs)
        self.scu = scu

    @property
    def association(self):
        """The open association under the SCU, or None."""
        return self.scu.association if self.scu is not None and self.scu.usable else None

    def store(self, name, meta):
        """C-STORE one spooled object; its result (a StoreResult)."""
        try:
            return self.scu.store(name, meta)
        except AssociationError:
            self.scu = None  # lost: never reused
            raise
        except Exception:
            self.abort()
            raise

    def release(self):
        scu, self.scu = self.scu, None
        if scu is not None:
            scu.release()

    def abort(self):
        scu, self.scu = self.scu, None
        if scu is not None:
            scu.abort()


# -- the sender ------------------------------------------------------------------

class Sender:
    """gateway: what is in force now (cfg, clock, alarms, log, spool,
    configured, board) and stop. tls: the TLS context in force (pacs_tls; the
    gateway sets it at start and when a saved configuration applies)."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.tls = None
        self.stored = 0
        self.last_send = None  # (wall time, name, result text)
        self._queued = Event()
        self._refused = {}  # name -> (PACS settings, monotonic ns): its transfer syntax was not accepted

    def notify(self):
        """An object was queued (or retried, or the gateway stops): look at
        the queue now rather than at the next poll."""
        self._queued.set()

    def echo(self):
        return echo(self.gateway.cfg, self.gateway.board, self.tls)

    def run(self):
        """The sender's thread, until the gateway stops; the C-STORE under
        way is finished and the association released."""
        g = self.gateway
        clock = g.clock
        association = _Association()
        attempt = 0
        retry_at = 0
        idle_since = clock.monotonic_ns()
        try:
            while not g.stopping():
                cfg = g.cfg
                spool = g.spool
                now = clock.monotonic_ns()
                if now < retry_at:
                    g.pause(min((retry_at - now) / 1e9, 0.2))
                    continue
                if spool is None:
                    if g.configured:
                        # It failed at start (EIO, a folder being mounted):
                        # tried again with backoff, still an alarm meanwhile.
                        attempt += 1
                        retry_at = clock.monotonic_ns() + _ns(_backoff(cfg, attempt))
                        g.open_spool(cfg)
                    else:
                        g.pause(0.2)
                    continue
                try:
                    pending = self._sendable(spool.pending(), [cfg[k] for k in PACS_KEYS], now, cfg)
                except OSError as err:
                    attempt += 1
                    retry_at = clock.monotonic_ns() + _ns(_backoff(cfg, attempt))
                    g.alarms.set("queue", "cannot read the queue: %s" % err, "check the spool's storage")
                    continue
                g.alarms.clear("queue")
                settings = [cfg[k] for k in PACS_KEYS]
                if cfg["pacs.commit"] != spool.commitment:
                    self._commitment_changed(cfg["pacs.commit"])
                if spool.commitment:
                    # Storage commitment (firmware/committer.py): reports
                    # in, requests out, on this association.
                    try:
                        if not pending and association.scu is None and g.committer.unrequested():
                            association.open(cfg, g.board, self.tls, g.log, settings, spool, pending)
                        g.committer.step(association.association, not pending)
                    except AssociationError as err:
                        association.abort()
                        attempt += 1
                        delay = _backoff(cfg, attempt)
                        retry_at = clock.monotonic_ns() + _ns(delay)
                        g.alarms.set("pacs", str(err), hint_for(str(err)))
                        g.log("sender: storage commitment: %s; retry %d in %.1f s" % (err, attempt, delay))
                        continue
                if not pending:
                    # The association stays while a report is due on it
                    # (no listener for one on a new association).
                    awaiting_report = spool.commitment and g.committer.outstanding() and not cfg["pacs.commit_port"]
                    if (association.scu is not None and not awaiting_report
                            and now - idle_since >= _ns(cfg["pacs.idle_release"])):
                        association.release()
                    self._queued.wait(0.2)
                    self._queued.clear()
                    continue
                name = pending[0]
                try:
                    meta = read_meta(spool, name)
                except ValueError as err:  # not a Part 10 header: it never will be
                    self._give_up(name, "unreadable: %s" % err)
                    continue
                except OSError as err:  # a read that may work next time (EMFILE, EIO)
                    self._failed(name, "cannot read it: %s" % err)
                    attempt += 1
                    retry_at = clock.monotonic_ns() + _ns(_backoff(cfg, attempt))
                    continue
                # The association is the PACS's: a fault setting it up is
                # retried with backoff and counts against no object.
                try:
                    if not association.fits(settings, meta):
                        if association.scu is not None and settings != association.settings:
                            g.log("sender: PACS settings changed; new association")
                        association.release()
                        association.open(cfg, g.board, self.tls, g.log, settings, spool, pending)
                except AssociationError as err:
                    attempt += 1
                    delay = _backoff(cfg, attempt)
                    retry_at = clock.monotonic_ns() + _ns(delay)
                    g.alarms.set("pacs", str(err), hint_for(str(err)))
                    g.log("sender: %s; %d objects waiting, retry %d in %.1f s" % (err, len(pending), attempt, delay))
                    continue
                if association.scu is not None and not association.fits(settings, meta) and \
                        meta.transfer_syntax_uid in ENCAPSULATED:
                    # The PACS took the association but not this object's
                    # compressed transfer syntax: no transcoding on the box
                    # (issue 16). It waits, counted against nothing, and
                    # the queue goes on without it.
                    self._set_aside(name, meta, settings)
                    continue
                # Sending is the object's: an association that breaks while
                # this object is under way counts against it, like a failure
                # status, so an object that breaks every association ends in
                # quarantine instead of stalling the queue.
                try:
                    result = association.store(name, meta)
                except AssociationError as err:
                    attempt += 1
                    retry_at = clock.monotonic_ns() + _ns(_backoff(cfg, attempt))
                    g.alarms.set("pacs", "association lost while sending %s: %s" % (name, err), hint_for(str(err)))
                    self._failed(name, "association lost while it was sent: %s" % err)
                    continue
                except Exception as err:
                    self._failed(name, "sending it failed: %s: %s" % (type(err).__name__, err))
                    continue
                attempt = 0
                idle_since = clock.monotonic_ns()
                g.alarms.clear("pacs")
                self.last_send = (clock.wall_utc(), name, str(result))
                if getattr(result, "object_fault", False):
                    self._give_up(name, result.meaning)
                elif DISPOSITION[result.category][0] == "stored":
                    if spool.stored(name) is not None:
                        g.committer.stored()
                    self.stored += 1
                    g.check_space()
                    g.log("sender: %s stored (%s)" % (name, result))
                else:
                    g.log("sender: %s not stored: %s" % (name, result))
                    self._failed(name, str(result))
        finally:
            association.release()

    def _set_aside(self, name, meta, settings):
        g = self.gateway
        refused = name not in self._refused
        self._refused[name] = (settings, g.clock.monotonic_ns())
        why = "the PACS did not accept %s (%s) for %s" % (name_of(meta.transfer_syntax_uid), meta.transfer_syntax_uid,
                                                          name_of(meta.sop_class_uid))
        g.alarms.set("transfer syntax", "%d objects wait: %s, the last %s" % (len(self._refused), why, name),
                     "let the PACS accept it (DCMTK storescp: +xn for H.264), or record new clips with "
                     "clip.transfer_syntax explicit; the box does not transcode")
        if refused:
            g.log("sender: %s waits: %s" % (name, why))

    def _sendable(self, pending, settings, now, cfg):
        """pending without the objects set aside for their transfer syntax,
        until the PACS settings change or spool.backoff_max has passed."""
        if not self._refused:
            return pending
        waiting = set(pending)
        for name in list(self._refused):
            kept_settings, since = self._refused[name]
            if name not in waiting or kept_settings != settings or now - since >= _ns(cfg["spool.backoff_max"]):
                del self._refused[name]
        if not self._refused:
            self.gateway.alarms.clear("transfer syntax")
        return [name for name in pending if name not in self._refused]

    def _commitment_changed(self, on):
        """pacs.commit was turned on or off. Off: what waited in stored/ for
        a commitment that will not be asked for is done with, as any stored
        object without commitment (the PACS's C-STORE-RSP said stored)."""
        g = self.gateway
        g.spool.commitment = on
        if on:
            return
        waiting = g.spool.awaiting()
        for name in waiting:
            g.spool.committed(name)
        if waiting:
            g.log("sender: pacs.commit is off; %d stored objects no longer wait for commitment" % len(waiting))

    def _failed(self, name, why):
        """One more failure for a queued object; quarantined at the limit."""
        if self.gateway.spool.failed(name, why) is None:
            self._quarantined(name, why)

    def _give_up(self, name, why):
        """An object that can never be sent goes to quarantine at once."""
        while name is not None:
            last, name = name, self.gateway.spool.failed(name, why)
        self._quarantined(last, why)

    def _quarantined(self, name, why):
        g = self.gateway
        g.alarms.set("quarantine", "%d objects in quarantine, the last %s: %s" % (
            len(g.spool.quarantined()), name, why), "queue list; queue retry ID once the cause is fixed")


def name_of(uid):
    return UID_NAMES.get(uid, uid)


def _backoff(cfg, attempt):
    """Seconds before retry number attempt: doubling from
    spool.backoff_initial up to spool.backoff_max, with jitter so that
    boxes that lost one PACS do not retry in step."""
    delay = min(cfg["spool.backoff_max"], cfg["spool.backoff_initial"] * 2 ** min(attempt - 1, 30))
    return delay * (0.5 + random.random() / 2)


def _ns(seconds):
    return int(seconds * 1000000000)
