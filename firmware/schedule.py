"""The box's copy of the Modality Worklist: the last good list, refreshed on
command (the console's `worklist refresh`) and every worklist.refresh
seconds, kept in the spool folder (WORKLIST_FILE, written atomically) so
that a restart or a worklist SCP outage does not blank it: a failed query
keeps the list and raises the `worklist` alarm.

The query itself is services/worklist.py's; this file holds only what the
gateway keeps of it.
"""

import json

from firmware.alarms import hint_for
from firmware.association import AssociationError
from firmware.compat.threads import Lock
from firmware.config import write_atomic
from firmware.services import worklist
from firmware.spool import WORKLIST as WORKLIST_FILE


class Schedule:
    """gateway: cfg, board, clock, alarms, log, storage (the spool folder),
    stopping() and pause()."""

    def __init__(self, gateway):
        self.gateway = gateway
        self.fetched = None  # wall time (Y, M, D, h, m, s, us) of the list, or None
        self.items = []
        self.complete = True
        # One query at a time: the console's `worklist refresh` waits for
        # the periodic one under way (two would race on the kept file, and
        # some SCPs serve one association at a time).
        self._querying = Lock()

    def load(self):
        """The list kept from before the last start, if any."""
        storage = self.gateway.storage
        if storage is None or not storage.exists(WORKLIST_FILE):
            return
        try:
            with storage.open_read(WORKLIST_FILE) as f:
                kept = json.loads(f.read().decode("utf-8"))
            self.fetched, self.items, self.complete = tuple(kept["fetched"]), kept["items"], kept["complete"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.gateway.log("worklist: the kept list %s cannot be read (%s); none until the next query" % (
                WORKLIST_FILE, err))

    def refresh(self):
        """Ask the SCP now: None on success, else why not (the list stays)."""
        with self._querying:
            return self._refresh()

    def _refresh(self):
        g = self.gateway
        cfg = g.cfg
        if not cfg["worklist.host"]:
            return "no worklist configured: set worklist.host (and worklist.port, worklist.ae_title), save"
        now = g.clock.wall_utc()
        try:
            items, status, meaning, complete = worklist.query_configured(cfg, g.board, "%04d%02d%02d" % now[:3],
                                                                           g.log)
        except AssociationError as err:
            g.alarms.set("worklist", "the worklist cannot be asked: %s" % err,
                         hint_for(str(err), "worklist", "the worklist SCP"))
            return "the worklist cannot be asked: %s" % err
        if status not in (0x0000, 0xFE00):
            g.alarms.set("worklist", "C-FIND %04X %s" % (status, meaning), "check worklist.ae_title and the SCP")
            return "the worklist SCP answered %04X %s" % (status, meaning)
        g.alarms.clear("worklist")
        self.fetched, self.items, self.complete = now, items, complete
        g.log("worklist: %d items for %s" % (len(items), cfg["station.ae_title"]))
        if g.storage is not None:
            try:
                write_atomic(g.storage, WORKLIST_FILE, json.dumps(
                    {"fetched": list(now), "items": items, "complete": complete}).encode("utf-8"))
            except OSError as err:
                g.log("worklist: cannot keep the list in %s: %s" % (WORKLIST_FILE, err))
        return None

    def run(self):
        """The worklist thread: a query every worklist.refresh seconds
        while a worklist is configured (0: on command only)."""
        g = self.gateway
        self.load()
        last = None
        while not g.stopping():
            every = g.cfg["worklist.refresh"]
            now = g.clock.monotonic_ns()
            if g.cfg["worklist.host"] and every and (last is None or now - last >= every * 1000000000):
                last = now
                self.refresh()
            g.pause(1.0)

    def lines(self):
        """The list as the console shows it."""
        if self.fetched is None:
            return ["no worklist yet: worklist refresh"]
        lines = ["worklist of %04d-%02d-%02d %02d:%02d:%02dZ, %d items" % (tuple(self.fetched[:6]) + (len(self.items),))]
        lines.extend(worklist.line(n + 1, item) for n, item in enumerate(self.items))
        if not self.complete:
            lines.append("(more than worklist.max_matches = %d items; the rest were not kept)" %
                         self.gateway.cfg["worklist.max_matches"])
        return lines

    def item(self, number):
        """Item number (1-based) of the list, or None."""
        if 1 <= number <= len(self.items):
            return self.items[number - 1]
        return None
