"""The store-and-forward spool: Part 10 files on the storage driver, and the
only record of what is still to be sent.

The file system is the queue; there is no second index that could disagree
with it after a power cut:

    tmp/                  objects being recorded (never sent from here)
    queue/NNNNNNNNNNNN.dcm          ready to send, oldest first
    queue/NNNNNNNNNNNN.fK.dcm       the same after K failure statuses
    quarantine/...        given up on after max_failures failure statuses;
                          kept, visible, never deleted by modgate
    sent/...              kept after success when retain_sent > 0

An object enters the queue only whole: written under tmp/, fsynced, then
renamed into queue/ and the directory fsynced. It leaves the queue only after
the PACS answered its C-STORE with a success or warning status. A crash at
any instant therefore leaves each object either in tmp/ (discarded at start,
it was never complete), in queue/ (sent again: at least once, with the same
SOP Instance UID), or gone because it was stored.

Bounded: queue, quarantine and tmp together never exceed max_bytes; when an
object does not fit, recording is refused (SpoolFull) and the alarm is
raised. Objects that are not yet sent are never deleted to make room; kept
sent ones are.
"""

TMP = "tmp"
QUEUE = "queue"
QUARANTINE = "quarantine"
SENT = "sent"
SUFFIX = ".dcm"


class SpoolFull(Exception):
    """No room for an object: recording must refuse it."""


def parse_name(name):
    """(sequence number, failures) of a queue file name, or None for a
    name that is not the spool's."""
    if not name.endswith(SUFFIX):
        return None
    parts = name[: -len(SUFFIX)].split(".")
    if not parts[0].isdigit() or len(parts) > 2:
        return None
    failures = 0
    if len(parts) == 2:
        if not (parts[1][:1] == "f" and parts[1][1:].isdigit()):
            return None
        failures = int(parts[1][1:])
    return int(parts[0]), failures


def make_name(sequence, failures=0):
    if failures:
        return "%012d.f%d%s" % (sequence, failures, SUFFIX)
    return "%012d%s" % (sequence, SUFFIX)


class Spool:
    def __init__(self, storage, max_bytes, max_failures=5, retain_sent=0, min_free_bytes=0, log=None):
        if max_bytes <= 0:
            raise ValueError("spool max_bytes must be positive")
        self.storage = storage
        self.max_bytes = max_bytes
        self.max_failures = max_failures
        self.retain_sent = retain_sent
        self.min_free_bytes = min_free_bytes
        self.log = log or (lambda message: None)
        self.alarm = None  # the reason recording is refused, or None
        self._used = 0  # bytes in queue, quarantine and tmp
        self._reserved = 0  # promised to recordings in progress
        self._next = 1
        for folder in (TMP, QUEUE, QUARANTINE, SENT):
            storage.makedirs(folder)
        self.recover()

    # -- start-up -------------------------------------------------------
    def recover(self):
        """Discard what was being recorded when the box went down and count
        what is queued. Called by the constructor."""
        for name in self.storage.listdir(TMP):
            path = TMP + "/" + name
            self.log("spool: discarding %s (%d bytes): recording was interrupted" % (path, self.storage.size(path)))
            self.storage.remove(path)
        used = 0
        highest = 0
        for folder in (QUEUE, QUARANTINE, SENT):
            for name in self.storage.listdir(folder):
                parsed = parse_name(name)
                if parsed is None:
                    continue
                highest = max(highest, parsed[0])
                if folder != SENT:
                    used += self.storage.size(folder + "/" + name)
        self._used = used
        self._next = highest + 1

    # -- recording ------------------------------------------------------
    def used_bytes(self):
        return self._used + self._reserved

    def begin(self, expected_bytes=0):
        """A new object to record, expected_bytes long if known. Raises
        SpoolFull (and sets the alarm) if it cannot fit."""
        self._make_room(expected_bytes)
        sequence = self._next
        self._next += 1
        name = make_name(sequence)
        f = self.storage.open_new(TMP + "/" + name)
        self._reserved += expected_bytes
        self.alarm = None
        return Recording(self, name, f, expected_bytes)

    def room_for(self, more_bytes):
        """Whether more_bytes more (beyond what is reserved) would fit."""
        if self.used_bytes() + more_bytes > self.max_bytes:
            return False
        return self.storage.free_bytes() - more_bytes >= self.min_free_bytes

    def _make_room(self, need):
        if self.room_for(need):
            return
        # Kept sent objects may go; unsent ones never do.
        for name in self.storage.listdir(SENT):
            self.storage.remove(SENT + "/" + name)
            if self.room_for(need):
                return
        queued = len(self.storage.listdir(QUEUE))
        self.alarm = "spool full: %d of %d bytes used, %d objects waiting to be sent; recording refused" % (
            self.used_bytes(), self.max_bytes, queued)
        self.log("ALARM " + self.alarm)
        raise SpoolFull(self.alarm)

    # -- sending --------------------------------------------------------
    def pending(self):
        """Queue file names, oldest first."""
        names = [n for n in self.storage.listdir(QUEUE) if parse_name(n) is not None]
        names.sort(key=lambda n: parse_name(n)[0])
        return names

    def path(self, name, folder=QUEUE):
        return self.storage.path(folder + "/" + name)

    def stored(self, name):
        """The PACS took the object (success or warning status)."""
        size = self.storage.size(QUEUE + "/" + name)
        if self.retain_sent > 0:
            self.storage.rename(QUEUE + "/" + name, SENT + "/" + make_name(parse_name(name)[0]))
            kept = self.storage.listdir(SENT)
            for old in kept[: max(0, len(kept) - self.retain_sent)]:
                self.storage.remove(SENT + "/" + old)
        else:
            self.storage.remove(QUEUE + "/" + name)
        self._used -= size

    def failed(self, name, why):
        """The PACS answered with a failure status. Returns the new name, or
        None once the object has moved to quarantine."""
        sequence, failures = parse_name(name)
        failures += 1
        if failures >= self.max_failures:
            self.storage.rename(QUEUE + "/" + name, QUARANTINE + "/" + make_name(sequence, failures))
            self.log("ALARM spool: %s quarantined after %d failures: %s" % (name, failures, why))
            return None
        new = make_name(sequence, failures)
        self.storage.rename(QUEUE + "/" + name, QUEUE + "/" + new)
        return new

    def quarantined(self):
        return self.storage.listdir(QUARANTINE)

    def retry(self, name):
        """Put a quarantined object back in the queue, its failure count
        cleared (a technician fixed the cause). Returns what happened."""
        parsed = parse_name(name)
        if parsed is None or name not in self.quarantined():
            return "error: no quarantined object %s" % name
        self.storage.rename(QUARANTINE + "/" + name, QUEUE + "/" + make_name(parsed[0]))
        return "%s back in the queue as %s" % (name, make_name(parsed[0]))

    def purge_quarantine(self):
        """Delete every quarantined object: only ever on a person's command."""
        names = self.quarantined()
        for name in names:
            self._used -= self.storage.size(QUARANTINE + "/" + name)
            self.storage.remove(QUARANTINE + "/" + name)
        return len(names)


class Recording:
    """An object being written into tmp/. write() and seek()/tell() as on a
    file (the encoder patches its header at close); commit() makes it part
    of the queue, abandon() throws it away."""

    def __init__(self, spool, name, f, reserved):
        self.spool = spool
        self.name = name
        self._f = f
        self._reserved = reserved
        self.closed = False

    def write(self, data):
        return self._f.write(data)

    def seek(self, offset):
        return self._f.seek(offset)

    def tell(self):
        return self._f.tell()

    def commit(self):
        """Durably into the queue: fsync the file, rename, fsync the
        directory (in the storage driver). Returns the queue name."""
        spool = self.spool
        spool.storage.sync(self._f)
        self._f.seek(0, 2)  # the encoder may have left the file at a patch
        size = self._f.tell()
        self._f.close()
        spool.storage.rename(TMP + "/" + self.name, QUEUE + "/" + self.name)
        self._release()
        spool._used += size
        return self.name

    def abandon(self):
        if self.closed:
            return
        self._f.close()
        self.spool.storage.remove(TMP + "/" + self.name)
        self._release()

    def _release(self):
        self.closed = True
        self.spool._reserved -= self._reserved
        self._reserved = 0
