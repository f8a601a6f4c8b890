"""The store-and-forward spool: Part 10 files on the storage driver, and the
only record of what is still to be sent.

The file system is the queue; there is no second index that could disagree
with it after a power cut:

    tmp/                  objects being recorded (never sent from here)
    queue/NNNNNNNNNNNN.dcm          ready to send, oldest first
    queue/NNNNNNNNNNNN.fK.dcm       the same after K failures (failure
                                    statuses, associations it broke)
    stored/...            stored, awaiting the PACS's storage commitment
                          (PS3.4 J; only with commitment on): kept until
                          it commits, back to queue/ if it fails to
    quarantine/...        given up on after max_failures failures; kept,
                          visible, deleted only on a person's command
    sent/...              kept after success when retain_sent > 0

An object enters the queue only whole: written under tmp/, fsynced, then
renamed into queue/ and the directory fsynced. It leaves the queue only after
the PACS answered its C-STORE with a success or warning status, and with
storage commitment on it is kept in stored/ until the PACS commits to it
(the transactions are in COMMITMENT, firmware/committer.py). A crash at
any instant therefore leaves each object either in tmp/ (discarded at start,
it was never complete), in queue/ (sent again: at least once, with the same
SOP Instance UID), or gone because it was stored.

The spool touches only its own files. Its folder carries a marker file
(MARKER), written when the spool is made in an empty or new folder; a
folder that holds anything else and no marker is refused (SpoolError), so
that a spool.root of / or /tmp or a user's folder never loses a file. A
spool made before the marker existed (nothing but the four folders, holding
only spool-named files) is adopted. Inside, only names that parse_name()
accepts are ever renamed or deleted, folders are skipped, and a rename
never replaces an existing name: the object gets a fresh sequence number
instead. Whatever else is found is left alone and reported (unknown()).

Bounded: queue, stored, quarantine and tmp together never exceed max_bytes; when an
object does not fit, recording is refused (SpoolFull) and the alarm is
raised. Objects that are not yet sent are never deleted to make room; kept
sent ones are.
"""

import errno

from firmware.compat import all_digits

TMP = "tmp"
QUEUE = "queue"
QUARANTINE = "quarantine"
SENT = "sent"
STORED = "stored"
FOLDERS = (TMP, QUEUE, QUARANTINE, SENT, STORED)
SUFFIX = ".dcm"
MARKER = "modgate-spool"
# The box's other state kept beside the queue: the last good Modality
# Worklist (firmware/schedule.py).
WORKLIST = "worklist.json"
# ... the storage commitment transactions under way (firmware/committer.py),
# the procedure under way and its MPPS messages (firmware/procedure.py).
COMMITMENT = "commitment.json"
PROCEDURE = "procedure.json"
MPPS = "mpps"
# The box's own files at the root, each written by config.write_atomic
# (whose NAME.new a power cut may leave).
OWN_FILES = (WORKLIST, COMMITMENT, PROCEDURE)
MESSAGE_SUFFIX = ".json"
SET_ASIDE = ".failed"
MARKER_TEXT = b"modgate spool: every name in this folder is modgate's; see README, 'The spool'\n"
# A file system made on a dedicated partition has this folder at its root;
# it is never touched, and a spool may be made beside it.
LOST_FOUND = "lost+found"
HEAD_BYTES = 16 * 1024  # describe() reads this much; the encoder's header is < 2 KiB
# What describe() says of an object that failed before this start: the
# reason was only ever kept in memory.
ERROR_UNKNOWN = "unknown (the failure was before modgate last started)"
_MAX_REASON = 200  # characters of a failure reason kept per object
_MAX_REASONS = 1000  # objects whose last failure reason is kept
_LISTED = 10  # unknown names named in one log line


class SpoolFull(Exception):
    """No room for an object: recording must refuse it."""


class SpoolError(ValueError):
    """The folder cannot be the spool (it holds someone else's files)."""


def parse_name(name):
    """(sequence number, failures) of a queue file name, or None for a
    name that is not the spool's: only the exact names make_name writes
    (twelve ASCII digits, .fK with no leading zero), so a user's 1.dcm or
    a name with other digits is never taken for one."""
    if not name.endswith(SUFFIX):
        return None
    parts = name[: -len(SUFFIX)].split(".")
    if len(parts) > 2 or not all_digits(parts[0]):
        return None
    failures = 0
    if len(parts) == 2:
        if not (parts[1][:1] == "f" and all_digits(parts[1][1:])):
            return None
        failures = int(parts[1][1:])
    parsed = int(parts[0]), failures
    if make_name(*parsed) != name:
        return None
    return parsed


def make_name(sequence, failures=0):
    if failures:
        return "%012d.f%d%s" % (sequence, failures, SUFFIX)
    return "%012d%s" % (sequence, SUFFIX)


def message_name(sequence):
    """An MPPS message's file name in MPPS/, by its sequence number."""
    return "%012d%s" % (sequence, MESSAGE_SUFFIX)


def parse_message_name(name):
    """(sequence, set aside) of an MPPS message's file name, or None for a
    name that is not one (only what message_name writes, or that with
    SET_ASIDE)."""
    aside = name.endswith(SET_ASIDE)
    stem = name[: -len(SET_ASIDE)] if aside else name
    if not stem.endswith(MESSAGE_SUFFIX) or not all_digits(stem[: -len(MESSAGE_SUFFIX)]):
        return None
    sequence = int(stem[: -len(MESSAGE_SUFFIX)])
    if message_name(sequence) != stem:
        return None
    return sequence, aside


def _own_message(name):
    """An MPPS message, or write_atomic's temporary of one."""
    return parse_message_name(name[:-4] if name.endswith(".new") else name) is not None


def _gone(err):
    """err says the file is not there (MicroPython has no
    FileNotFoundError, only OSError with its errno)."""
    return getattr(err, "errno", None) == errno.ENOENT


def _by_sequence(names):
    """The spool's names among names, oldest (lowest sequence) first."""
    keyed = []
    for name in names:
        parsed = parse_name(name)
        if parsed is not None:
            keyed.append((parsed[0], name))
    keyed.sort()
    return [name for _, name in keyed]


def _root(storage):
    return getattr(storage, "root", None) or storage.path("")


def _some(names):
    shown = ", ".join(names[:_LISTED])
    if len(names) > _LISTED:
        shown += " and %d more" % (len(names) - _LISTED)
    return shown


def check_root(storage):
    """None if the storage root is modgate's spool or may become it (empty,
    or a spool from before the marker); else why not, naming the folder and
    what is in it. Changes nothing: a configuration check may call it."""
    names = storage.listdir("")
    if MARKER in names:
        return None
    foreign = [n for n in names if n not in FOLDERS and n != LOST_FOUND]
    files = storage.files("")
    for folder in FOLDERS:
        if folder not in names:
            continue
        if folder in files:
            foreign.append(folder)
            continue
        ours = storage.files(folder)
        foreign += [folder + "/" + n for n in storage.listdir(folder) if n not in ours or parse_name(n) is None]
    if not foreign:
        return None
    return ("spool.root %s is not a modgate spool: it holds %s and no %s marker; "
            "modgate only uses an empty folder or its own spool" % (_root(storage), _some(foreign), MARKER))


class Spool:
    def __init__(self, storage, max_bytes, max_failures=5, retain_sent=0, min_free_bytes=0, log=None):
        """Raises SpoolError if the storage root is not (and cannot become)
        the spool's, OSError if it cannot be read."""
        if max_bytes <= 0:
            raise ValueError("spool max_bytes must be positive")
        self.storage = storage
        self.max_bytes = max_bytes
        self.max_failures = max_failures
        self.retain_sent = retain_sent
        self.min_free_bytes = min_free_bytes
        # Storage commitment on: a stored object waits in stored/ for it
        # (None until the sender says, firmware/sender.py).
        self.commitment = None
        self.log = log or (lambda message: None)
        self.alarm = None  # the reason recording is refused, or None
        self._used = 0  # bytes in queue, stored, quarantine and tmp
        self._reserved = 0  # promised to recordings in progress
        self._next = 1
        self._reasons = {}  # "folder/name": the last failure reason, this run
        self._claim()
        for folder in FOLDERS:
            storage.makedirs(folder)
        self.recover()

    # -- start-up -------------------------------------------------------
    def _claim(self):
        """Make sure the root is the spool's: marked, or empty (then marked),
        or a spool from before the marker (adopted: marked)."""
        problem = check_root(self.storage)
        if problem:
            raise SpoolError(problem)
        names = self.storage.listdir("")
        if MARKER in names:
            return
        if any(n in FOLDERS for n in names):
            self.log("spool: %s adopted (a spool made before the %s marker)" % (_root(self.storage), MARKER))
        self.storage.write_new(MARKER, MARKER_TEXT)

    def recover(self):
        """Discard what was being recorded when the box went down, count
        what is queued, report what is not the spool's. Called by the
        constructor."""
        for name in self.storage.files(TMP):
            if parse_name(name) is None:
                continue  # not ours: reported below, never deleted
            path = TMP + "/" + name
            self.log("spool: discarding %s (%d bytes): recording was interrupted" % (path, self.storage.size(path)))
            self.storage.remove(path)
        # Numbering goes on after the highest spool-like name, whatever it
        # is (a folder or a link too), so a new object never meets one.
        highest = 0
        for folder in (QUEUE, QUARANTINE, SENT, STORED):
            for name in _by_sequence(self.storage.listdir(folder)):
                highest = max(highest, parse_name(name)[0])
        self._next = highest + 1
        self._recount()
        unknown = self.unknown()
        if unknown:
            self.log("spool: %d names in %s are not the spool's, left alone: %s" % (
                len(unknown), _root(self.storage), _some(unknown)))

    def _recount(self):
        """_used from what queue/, stored/ and quarantine/ hold (at start,
        and when a file went away behind the spool's back)."""
        used = 0
        for folder in (QUEUE, STORED, QUARANTINE):
            for name in _by_sequence(self.storage.files(folder)):
                try:
                    used += self.storage.size(folder + "/" + name)
                except OSError as err:
                    if not _gone(err):
                        raise  # gone meanwhile is fine; EIO is a fault
        self._used = used

    def unknown(self):
        """Paths (relative to the root) of what the spool finds but did not
        make (files, folders, links, even with spool-like names), sorted;
        it leaves them alone."""
        found = []
        files = self.storage.files("")
        for name in self.storage.listdir(""):
            # NAME.new: config.write_atomic's temporary, left by a power cut
            # in the middle of a write.
            own = name in OWN_FILES or (name.endswith(".new") and name[:-4] in OWN_FILES)
            if own or name in (MARKER, LOST_FOUND) or (name in FOLDERS + (MPPS,) and name not in files):
                continue
            found.append(name)
        if MPPS in self.storage.listdir("") and MPPS not in files:
            messages = self.storage.files(MPPS)
            for name in self.storage.listdir(MPPS):
                if name not in messages or not _own_message(name):
                    found.append(MPPS + "/" + name)
        for folder in FOLDERS:
            files = self.storage.files(folder)
            for name in self.storage.listdir(folder):
                if name not in files or parse_name(name) is None:
                    found.append(folder + "/" + name)
        found.sort()
        return found

    # -- recording ------------------------------------------------------
    def used_bytes(self):
        return self._used + self._reserved

    def begin(self, expected_bytes=0):
        """A new object to record, expected_bytes long if known. Raises
        SpoolFull (and sets the alarm) if it cannot fit."""
        self._make_room(expected_bytes)
        name = make_name(self._sequence())
        while self.storage.exists(TMP + "/" + name):
            name = make_name(self._sequence())  # a folder of that name, not ours
        f = self.storage.open_new(TMP + "/" + name)
        self._reserved += expected_bytes
        self.alarm = None
        return Recording(self, name, f, expected_bytes)

    def _sequence(self):
        sequence = self._next
        self._next += 1
        return sequence

    def room_for(self, more_bytes):
        """Whether more_bytes more (beyond what is reserved) would fit."""
        if self.used_bytes() + more_bytes > self.max_bytes:
            return False
        return self.storage.free_bytes() - more_bytes >= self.min_free_bytes

    def _make_room(self, need):
        if self.room_for(need):
            return
        # Kept sent objects may go, oldest first; unsent ones never do.
        for name in _by_sequence(self.storage.files(SENT)):
            self.storage.remove(SENT + "/" + name)
            if self.room_for(need):
                return
        queued = len(self.pending())
        alarm = "spool full: %d of %d bytes used, %d objects waiting to be sent; recording refused" % (
            self.used_bytes(), self.max_bytes, queued)
        if alarm != self.alarm:  # once, not at every refused try
            self.log("ALARM " + alarm)
        self.alarm = alarm
        raise SpoolFull(self.alarm)

    # -- moving objects -------------------------------------------------
    def _move(self, src_folder, name, dst_folder, failures):
        """Rename an object, keeping its sequence number unless the new name
        is taken: then a fresh one, so no file is ever replaced (rename(2)
        would). The spool is the only writer in its folder (the marker says
        so), so nothing takes the name between the check and the rename.
        Returns the new name; the object's failure reason follows it."""
        new = make_name(parse_name(name)[0], failures)
        while self.storage.exists(dst_folder + "/" + new):
            taken = new
            new = make_name(self._sequence(), failures)
            self.log("spool: %s/%s exists; %s/%s becomes %s/%s" % (dst_folder, taken, src_folder, name, dst_folder, new))
        self.storage.rename(src_folder + "/" + name, dst_folder + "/" + new)
        reason = self._reasons.pop(src_folder + "/" + name, None)
        if reason is not None:
            self._reasons[dst_folder + "/" + new] = reason
        return new

    def _vanished(self, err, folder, name, doing):
        """True (and logged, the byte count redone) if err is the object
        having gone behind the spool's back; False for any other fault,
        which the caller raises (a missing destination folder, EIO...)."""
        if not _gone(err) or self.storage.exists(folder + "/" + name):
            return False
        self._reasons.pop(folder + "/" + name, None)
        self.log("spool: %s/%s vanished before it was %s" % (folder, name, doing))
        self._recount()
        return True

    # -- sending --------------------------------------------------------
    def pending(self):
        """Queue file names, oldest first. A missing queue/ is empty; one
        that cannot be read raises OSError (EACCES, EIO): the sender shows
        that as an alarm and tries again, it never takes it for 'nothing to
        send'."""
        return _by_sequence(self.storage.files(QUEUE))

    def open(self, name, folder=QUEUE):
        """An object to read (a hal storage ReadHandle: the sender streams
        it out with read_into); OSError if it is gone or unreadable."""
        return self.storage.open_read(folder + "/" + name)

    def stored(self, name):
        """The PACS took the object (success or warning status). With
        commitment on it waits in stored/ for the PACS to commit to it;
        returns its name there (None when it is done with)."""
        self._reasons.pop(QUEUE + "/" + name, None)
        if self.commitment:
            try:
                # Its failure count goes with it: an object the PACS
                # stores and then never commits ends in quarantine too.
                return self._move(QUEUE, name, STORED, parse_name(name)[1])
            except OSError as err:
                if not self._vanished(err, QUEUE, name, "marked stored"):
                    raise
                return None
        self._done(QUEUE, name, "marked stored")
        return None

    def awaiting(self):
        """Objects stored and awaiting commitment, oldest first."""
        return _by_sequence(self.storage.files(STORED))

    def committed(self, name):
        """The PACS committed to the stored object (PS3.4 J.3.3): it is done
        with, as after a C-STORE without commitment."""
        self._done(STORED, name, "marked committed")

    def not_committed(self, name, why):
        """The PACS reported it could not commit to the stored object: back
        to the queue with one more failure (quarantine at the limit), to be
        stored and committed again. Returns the new name or None."""
        return self.failed(name, why, STORED)

    def _done(self, folder, name, doing):
        """Delete the object, or keep it in sent/ while retain_sent allows."""
        try:
            size = self.storage.size(folder + "/" + name)
            if self.retain_sent > 0:
                self._move(folder, name, SENT, 0)
            else:
                self.storage.remove(folder + "/" + name)
        except OSError as err:
            if not self._vanished(err, folder, name, doing):
                raise
            return
        self._used -= size
        if self.retain_sent > 0:
            kept = _by_sequence(self.storage.files(SENT))
            for old in kept[: max(0, len(kept) - self.retain_sent)]:
                self._reasons.pop(SENT + "/" + old, None)
                self.storage.remove(SENT + "/" + old)

    def failed(self, name, why, folder=QUEUE):
        """The object was not stored: the PACS answered with a failure
        status, or the object keeps breaking associations (the sender calls
        this for both), or (folder STORED) the PACS did not commit to it.
        Returns the new name in the queue, or None once the object has
        moved to quarantine (or has vanished meanwhile)."""
        parsed = parse_name(name)
        if parsed is None:
            self.log("spool: failed(%r): not a spool object, left alone" % (name,))
            return None
        self._reasons[folder + "/" + name] = str(why)[:_MAX_REASON]
        self._bound_reasons()
        failures = parsed[1] + 1
        try:
            if failures >= self.max_failures:
                new = self._move(folder, name, QUARANTINE, failures)
                self.log("ALARM spool: %s quarantined as %s after %d failures: %s" % (name, new, failures, why))
                return None
            return self._move(folder, name, QUEUE, failures)
        except OSError as err:
            if not self._vanished(err, folder, name, "counted as failed (%s)" % (why,)):
                raise
            return None

    def _bound_reasons(self):
        # Memory is bounded whatever the queue holds: past the limit a reason
        # is forgotten (describe() then says it is unknown).
        while len(self._reasons) > _MAX_REASONS:
            del self._reasons[next(iter(self._reasons))]

    def quarantined(self):
        """Quarantined object names, oldest first (spool names only)."""
        return _by_sequence(self.storage.files(QUARANTINE))

    def retry(self, name):
        """Put a quarantined object back in the queue, its failure count
        cleared (a technician fixed the cause). Returns what happened."""
        if parse_name(name) is None or name not in self.quarantined():
            return "error: no quarantined object %s" % name
        try:
            new = self._move(QUARANTINE, name, QUEUE, 0)
        except OSError as err:
            if not self._vanished(err, QUARANTINE, name, "retried"):
                raise
            return "error: no quarantined object %s" % name
        return "%s back in the queue as %s" % (name, new)

    def purge_quarantine(self):
        """Delete every quarantined object: only ever on a person's command.
        Names that are not the spool's stay."""
        purged = 0
        for name in self.quarantined():
            path = QUARANTINE + "/" + name
            self._reasons.pop(path, None)
            try:
                size = self.storage.size(path)
                self.storage.remove(path)
            except OSError as err:
                if not self._vanished(err, QUARANTINE, name, "purged"):
                    raise
                continue
            self._used -= size
            purged += 1
        return purged

    # -- the console's view ---------------------------------------------
    def describe(self, name, folder=QUEUE):
        """What `queue list` shows of one object, as a dict:

            name, folder        as given
            size                bytes
            tries               failed attempts so far (from the name:
                                failure statuses and associations it broke)
            last_error          the reason given to the last failed(); None
                                if it never failed; ERROR_UNKNOWN if it
                                failed before this start (kept in memory only)
            patient_name, patient_id, sop_instance_uid
            recorded            'YYYY-MM-DD HH:MM:SS' (Acquisition DateTime,
                                else Content Date and Time)
                                each None when the file's header lacks it

        None if the file is not (or no longer) there; ValueError for a name
        that is not the spool's."""
        from firmware.dicom import tags
        from firmware.dicom.part10 import read_attributes

        parsed = parse_name(name)
        if parsed is None or folder not in FOLDERS:
            raise ValueError("%s/%s is not a spool object" % (folder, name))
        path = folder + "/" + name
        try:
            size = self.storage.size(path)
            with self.storage.open_read(path) as f:
                head = f.read(HEAD_BYTES)
        except OSError as err:
            if _gone(err):
                return None  # sent or purged meanwhile
            raise
        found = read_attributes(head)
        last_error = self._reasons.get(path)
        if last_error is None and parsed[1]:
            last_error = ERROR_UNKNOWN
        return {
            "name": name,
            "folder": folder,
            "size": size,
            "tries": parsed[1],
            "last_error": last_error,
            "patient_name": found.get(tags.PatientName),
            "patient_id": found.get(tags.PatientID),
            "sop_instance_uid": found.get(tags.SOPInstanceUID),
            "recorded": _recorded(found.get(tags.AcquisitionDateTime),
                                  found.get(tags.ContentDate), found.get(tags.ContentTime)),
        }


def _recorded(datetime, date, time):
    """'YYYY-MM-DD HH:MM:SS' from a DT (PS3.5 6.2: YYYYMMDDHHMMSS.FFFFFF&ZZXX,
    any tail optional) or a DA plus a TM, or None."""
    text = datetime or ((date or "") + (time or "") if date else "")
    digits = ""
    for ch in text[:14]:
        if not "0" <= ch <= "9":
            break  # the fraction or the UTC offset
        digits += ch
    if len(digits) < 8:
        return None
    out = "%s-%s-%s" % (digits[0:4], digits[4:6], digits[6:8])
    if len(digits) >= 12:
        out += " %s:%s" % (digits[8:10], digits[10:12])
        if len(digits) == 14:
            out += ":" + digits[12:14]
    return out


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
        # Under its own name unless queue/ has that name (something not the
        # spool's): then a fresh one, never replacing it.
        self.name = spool._move(TMP, self.name, QUEUE, 0)
        self._release()
        spool._used += size
        return self.name

    def abandon(self):
        """Throw the recording away: the file is removed and its room given
        back even when closing it fails again (a full disk reports ENOSPC
        at close too, for the data still buffered)."""
        if self.closed:
            return
        try:
            self._f.close()
        except OSError:
            pass
        try:
            self.spool.storage.remove(TMP + "/" + self.name)
        finally:
            self._release()

    def _release(self):
        self.closed = True
        self.spool._reserved -= self._reserved
        self._reserved = 0
