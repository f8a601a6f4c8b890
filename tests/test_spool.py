"""The spool on the POSIX storage driver: the file system is the queue."""

import errno
import os

import pytest

from firmware.dicom import tags
from firmware.dicom.encoder import ObjectEncoder
from firmware.spool import (
    ERROR_UNKNOWN,
    MARKER,
    QUARANTINE,
    QUEUE,
    SENT,
    TMP,
    Spool,
    SpoolError,
    check_root,
    SpoolFull,
    make_name,
    parse_name,
)
from hal.storage import PosixStorage


def spool_at(root, **options):
    options.setdefault("max_bytes", 1 << 20)
    return Spool(PosixStorage(str(root)), **options)


def record(spool, data, expected=0):
    rec = spool.begin(expected)
    rec.write(data)
    return rec.commit()


def test_names():
    assert make_name(7) == "000000000007.dcm"
    assert make_name(7, 3) == "000000000007.f3.dcm"
    assert parse_name("000000000007.f3.dcm") == (7, 3)
    assert parse_name("000000000007.dcm") == (7, 0)
    for bad in ("x.dcm", "000000000007.g3.dcm", "7.f.dcm", "7.dcm.part", "1.2.3.dcm"):
        assert parse_name(bad) is None, bad


def test_commit_makes_the_object_visible_only_whole(tmp_path):
    spool = spool_at(tmp_path)
    rec = spool.begin(100)
    rec.write(b"x" * 10)
    assert spool.pending() == []
    assert os.listdir(tmp_path / TMP) == [rec.name]
    name = rec.commit()
    assert spool.pending() == [name]
    assert os.listdir(tmp_path / TMP) == []
    assert (tmp_path / QUEUE / name).read_bytes() == b"x" * 10
    assert spool.used_bytes() == 10


def test_order_and_restart(tmp_path):
    spool = spool_at(tmp_path)
    names = [record(spool, b"%d" % i) for i in range(12)]
    assert spool.pending() == names
    leftover = spool.begin()
    leftover.write(b"half an object")
    # A restart: the queue is what the folder holds; the interrupted
    # recording is discarded; numbering goes on after the highest.
    logged = []
    again = spool_at(tmp_path, log=logged.append)
    assert again.pending() == names
    assert os.listdir(tmp_path / TMP) == []
    assert any("interrupted" in line for line in logged)
    assert record(again, b"new") == make_name(13)  # 13 was never queued
    assert again.used_bytes() == sum(len(b"%d" % i) for i in range(12)) + 3


def test_stored_removes_or_keeps(tmp_path):
    spool = spool_at(tmp_path, retain_sent=2)
    names = [record(spool, b"abc") for _ in range(4)]
    for name in names:
        spool.stored(name)
    assert spool.pending() == []
    assert sorted(os.listdir(tmp_path / SENT)) == names[2:]
    assert spool.used_bytes() == 0


def test_failures_then_quarantine(tmp_path):
    logged = []
    spool = spool_at(tmp_path, max_failures=3, log=logged.append)
    name = record(spool, b"abc")
    name = spool.failed(name, "C000")
    assert name == make_name(1, 1) and spool.pending() == [name]
    # the failure count survives a restart, being in the name
    spool = spool_at(tmp_path, max_failures=3, log=logged.append)
    name = spool.failed(spool.pending()[0], "C000")
    assert name == make_name(1, 2)
    assert spool.failed(name, "C000") is None
    assert spool.pending() == []
    assert spool.quarantined() == [make_name(1, 3)]
    assert any("quarantined" in line for line in logged)
    # quarantined objects still count: they are not sent, so not deleted
    assert spool.used_bytes() == 3


def test_full_refuses_and_never_deletes_unsent(tmp_path):
    spool = spool_at(tmp_path, max_bytes=1 << 20, retain_sent=5)
    kept = record(spool, b"k" * 1000)
    spool.stored(kept)
    waiting = [record(spool, b"w" * 300000) for _ in range(3)]
    # 900000 queued: a 200000 object does not fit, the sent one goes first,
    # then the spool refuses
    with pytest.raises(SpoolFull):
        spool.begin(200000)
    assert "spool full" in spool.alarm
    assert spool.pending() == waiting
    assert os.listdir(tmp_path / SENT) == []
    assert os.listdir(tmp_path / TMP) == []
    # sending one makes room again, and the alarm clears on the next begin
    spool.stored(waiting[0])
    rec = spool.begin(200000)
    assert spool.alarm is None
    rec.abandon()
    assert os.listdir(tmp_path / TMP) == []
    assert spool.used_bytes() == 600000


def test_reservations_count_until_commit(tmp_path):
    spool = spool_at(tmp_path, max_bytes=1 << 20)
    first = spool.begin(700000)
    with pytest.raises(SpoolFull):
        spool.begin(400000)
    first.write(b"x" * 1000)
    first.commit()
    assert spool.used_bytes() == 1000
    spool.begin(400000).abandon()


def test_min_free_bytes(tmp_path):
    free = PosixStorage(str(tmp_path)).free_bytes()
    spool = spool_at(tmp_path, max_bytes=1 << 40, min_free_bytes=free + (1 << 30))
    with pytest.raises(SpoolFull):
        spool.begin(1)


def test_foreign_files_are_left_alone(tmp_path):
    spool = spool_at(tmp_path)
    (tmp_path / QUEUE / "README.txt").write_text("not ours")
    name = record(spool, b"abc")
    assert spool.pending() == [name]
    assert QUARANTINE in os.listdir(tmp_path)


def test_retry_and_purge_quarantine(tmp_path):
    spool = spool_at(tmp_path, max_failures=1)
    first, second = record(spool, b"a" * 10), record(spool, b"b" * 20)
    spool.failed(first, "C000")
    spool.failed(second, "C000")
    assert spool.quarantined() == [make_name(1, 1), make_name(2, 1)]
    assert spool.retry("nonsense.dcm").startswith("error:")
    assert "back in the queue" in spool.retry(make_name(1, 1))
    assert spool.pending() == [make_name(1)] and spool.used_bytes() == 30
    assert spool.purge_quarantine() == 1
    assert spool.quarantined() == [] and spool.used_bytes() == 10


# -- the spool touches only its own files ---------------------------------


def tree(root):
    """Every path under root (folders with a trailing '/'), each file's
    bytes, each link's target: what a test compares before and after."""
    found = {}
    for folder, dirs, files in os.walk(str(root)):
        rel = os.path.relpath(folder, str(root))
        for d in dirs:
            found[os.path.normpath(os.path.join(rel, d)) + "/"] = None
        for f in files:
            path = os.path.join(folder, f)
            key = os.path.normpath(os.path.join(rel, f))
            if os.path.islink(path):
                found[key] = "-> " + os.readlink(path)
                continue
            with open(path, "rb") as fh:
                found[key] = fh.read()
    return found


def test_a_folder_holding_someone_elses_files_is_refused_untouched(tmp_path):
    # spool.root pointed at a user's folder that happens to have a tmp/:
    # start-up used to delete tmp/report.txt and crash on tmp/drafts/.
    (tmp_path / TMP / "drafts").mkdir(parents=True)
    (tmp_path / TMP / "report.txt").write_text("the user's")
    (tmp_path / TMP / "drafts" / "a.txt").write_text("also the user's")
    (tmp_path / "notes.txt").write_text("and this")
    before = tree(tmp_path)
    with pytest.raises(SpoolError) as raised:
        spool_at(tmp_path)
    assert check_root(PosixStorage(str(tmp_path))) == str(raised.value)  # what a config check can ask first
    message = str(raised.value)
    assert str(tmp_path) in message and "not a modgate spool" in message
    assert "tmp/report.txt" in message and MARKER in message
    assert isinstance(raised.value, ValueError)  # start-up shows it like a bad setting
    assert tree(tmp_path) == before  # nothing deleted, nothing created


def test_a_folder_like_root_or_tmp_is_refused(tmp_path):
    # What spool.root / or /tmp would be: other people's folders and files,
    # none of the spool's.
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0")
    (tmp_path / "socket-ish").write_text("")
    before = tree(tmp_path)
    with pytest.raises(SpoolError):
        spool_at(tmp_path)
    assert tree(tmp_path) == before


def test_an_empty_or_new_folder_becomes_the_spool_and_stays_it(tmp_path):
    for root in (tmp_path / "new" / "spool", tmp_path / "empty"):
        if root.name == "empty":
            root.mkdir()
            assert check_root(PosixStorage(str(root))) is None and os.listdir(str(root)) == []
        spool = spool_at(root)
        assert (root / MARKER).is_file()
        name = record(spool, b"abc")
        (root / "operator-notes.txt").write_text("added later, beside the marker")
        again = spool_at(root)  # marked: it is the spool's, whatever else is there
        assert again.pending() == [name]
        assert (root / "operator-notes.txt").read_text().startswith("added later")
    # a file system's own lost+found does not stop a spool on its partition
    part = tmp_path / "partition"
    (part / "lost+found").mkdir(parents=True)
    spool_at(part)
    assert (part / MARKER).is_file() and (part / "lost+found").is_dir()


def test_a_spool_from_before_the_marker_is_adopted(tmp_path):
    for folder in (TMP, QUEUE, QUARANTINE, SENT):
        (tmp_path / folder).mkdir()
    (tmp_path / QUEUE / make_name(3)).write_bytes(b"q" * 5)
    (tmp_path / QUEUE / make_name(4, 2)).write_bytes(b"r" * 7)
    (tmp_path / QUARANTINE / make_name(2, 5)).write_bytes(b"x" * 11)
    (tmp_path / SENT / make_name(1)).write_bytes(b"s")
    (tmp_path / TMP / make_name(5)).write_bytes(b"half")
    logged = []
    spool = spool_at(tmp_path, log=logged.append)
    assert (tmp_path / MARKER).is_file()
    assert any("adopted" in line for line in logged)
    assert spool.pending() == [make_name(3), make_name(4, 2)]
    assert spool.quarantined() == [make_name(2, 5)]
    assert os.listdir(tmp_path / TMP) == []  # the spool's own interrupted recording
    assert spool.used_bytes() == 5 + 7 + 11
    assert spool.unknown() == []


def test_an_old_style_folder_with_a_foreign_file_is_not_adopted(tmp_path):
    for folder in (TMP, QUEUE, QUARANTINE, SENT):
        (tmp_path / folder).mkdir()
    (tmp_path / QUEUE / make_name(3)).write_bytes(b"q")
    (tmp_path / QUEUE / "scan.pdf").write_bytes(b"%PDF")
    (tmp_path / SENT / make_name(1)).mkdir()  # a folder with a spool name
    before = tree(tmp_path)
    with pytest.raises(SpoolError) as raised:
        spool_at(tmp_path)
    assert "queue/scan.pdf" in str(raised.value) and "sent/%s" % make_name(1) in str(raised.value)
    assert tree(tmp_path) == before


def plant(root):
    """Files, folders and links the spool did not make, in every folder of
    a (marked) spool; some wear spool names. Returns their paths."""
    planted = {
        "extra.txt": b"root",
        TMP + "/report.txt": b"tmp file",
        QUEUE + "/README.txt": b"queue file",
        QUARANTINE + "/notes.txt": b"quarantine file",
        SENT + "/keep.txt": b"sent file",
    }
    for path, data in planted.items():
        (root / path).write_bytes(data)
    folders = ["extra", TMP + "/drafts", TMP + "/" + make_name(50), QUEUE + "/" + make_name(51),
               QUARANTINE + "/" + make_name(52, 5), SENT + "/" + make_name(53)]
    for folder in folders:
        (root / folder).mkdir()
        (root / folder / "inside.txt").write_bytes(b"in " + folder.encode())
    links = [QUEUE + "/" + make_name(54), QUARANTINE + "/" + make_name(55, 5)]
    os.symlink(str(root / "extra.txt"), str(root / links[0]))
    os.symlink(str(root / "nowhere"), str(root / links[1]))  # dangling
    return sorted(list(planted) + folders + links)


def test_names_the_spool_did_not_make_survive_everything_and_are_reported(tmp_path):
    options = dict(retain_sent=1, max_failures=1, max_bytes=1000)
    spool = spool_at(tmp_path, **options)
    first = record(spool, b"a" * 400)
    theirs = plant(tmp_path)
    before = {k: v for k, v in tree(tmp_path).items() if any(k.rstrip("/") == p or k.startswith(p + "/") for p in theirs)}
    logged = []
    spool = spool_at(tmp_path, log=logged.append, **options)  # a restart
    assert spool.unknown() == theirs
    lines = [line for line in logged if "not the spool's" in line]
    assert len(lines) == 1 and "%d names" % len(theirs) in lines[0]
    assert "queue/README.txt" in lines[0] and "and %d more" % (len(theirs) - 10) in lines[0]  # a bounded line
    # folders and links are never taken for objects, whatever their names,
    # and numbering goes on past them
    assert spool.pending() == [first] and spool.quarantined() == []
    assert spool.used_bytes() == 400
    assert parse_name(record(spool, b"")) == (56, 0)
    spool.stored(spool.pending()[-1])
    # every way the spool removes or moves things: stored (kept in sent/,
    # the older trimmed), making room (kept sent ones go), failures,
    # quarantine, purge
    spool.stored(first)
    spool.stored(record(spool, b"b" * 400))
    assert spool.describe(first, SENT) is None and len(os.listdir(str(tmp_path / SENT))) == 3  # theirs + 1
    third = record(spool, b"c" * 400)
    with pytest.raises(SpoolFull):
        spool.begin(700)
    assert spool.failed(third, "C000") is None
    assert spool.purge_quarantine() == 1
    assert spool.pending() == [] and spool.quarantined() == [] and spool.used_bytes() == 0
    now = tree(tmp_path)
    for path, data in before.items():
        assert now.get(path, "missing") == data, path
    assert spool.unknown() == theirs
    assert [n for n in os.listdir(str(tmp_path / SENT)) if parse_name(n)] == [make_name(53)]  # the folder


def test_quarantine_never_overwrites(tmp_path):
    # Two files with the same sequence number: one waiting (4 failures),
    # one already quarantined (5). The fifth failure used to replace the
    # quarantined one.
    spool = spool_at(tmp_path, max_failures=5)
    (tmp_path / QUEUE / make_name(7, 4)).write_bytes(b"waiting")
    (tmp_path / QUARANTINE / make_name(7, 5)).write_bytes(b"quarantined earlier")
    logged = []
    spool = spool_at(tmp_path, max_failures=5, log=logged.append)
    assert spool.used_bytes() == 7 + 19
    assert spool.failed(make_name(7, 4), "C000") is None
    names = spool.quarantined()
    assert len(names) == 2 and make_name(7, 5) in names
    contents = sorted((tmp_path / QUARANTINE / n).read_bytes() for n in names)
    assert contents == [b"quarantined earlier", b"waiting"]
    assert spool.used_bytes() == 7 + 19 and spool.pending() == []
    assert any("quarantined" in line for line in logged)
    # the brief's own pair: NNN.f2 waiting, NNN.f5 quarantined; both live on
    (tmp_path / QUEUE / make_name(9, 2)).write_bytes(b"two")
    (tmp_path / QUARANTINE / make_name(9, 5)).write_bytes(b"five")
    spool = spool_at(tmp_path, max_failures=3)
    assert spool.failed(make_name(9, 2), "C000") is None
    assert sorted((tmp_path / QUARANTINE / n).read_bytes() for n in spool.quarantined()) == [
        b"five", b"quarantined earlier", b"two", b"waiting"]


def test_commit_never_overwrites(tmp_path):
    # a dangling link in queue/ wearing the name the next object would get
    spool = spool_at(tmp_path)
    rec = spool.begin()
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / QUEUE / rec.name))
    rec.write(b"clip")
    name = rec.commit()
    assert name != make_name(1) and spool.pending() == [name]
    assert os.path.islink(str(tmp_path / QUEUE / make_name(1)))
    assert (tmp_path / QUEUE / name).read_bytes() == b"clip" and spool.used_bytes() == 4


def test_retry_and_failure_count_never_overwrite(tmp_path):
    spool = spool_at(tmp_path)
    (tmp_path / QUARANTINE / make_name(7, 5)).write_bytes(b"quarantined")
    (tmp_path / QUEUE / make_name(7)).write_bytes(b"waiting")
    (tmp_path / QUEUE / make_name(8)).write_bytes(b"eight")
    (tmp_path / QUEUE / make_name(8, 1)).write_bytes(b"eight, failed once")
    spool = spool_at(tmp_path)
    # retry: queue/7 exists, so the quarantined 7 comes back under a new number
    answer = spool.retry(make_name(7, 5))
    assert "back in the queue" in answer
    # a failure of 8 would be 8.f1, which exists
    renamed = spool.failed(make_name(8), "C000")
    assert renamed not in (None, make_name(8, 1)) and parse_name(renamed)[1] == 1
    contents = sorted((tmp_path / QUEUE / n).read_bytes() for n in spool.pending())
    assert contents == [b"eight", b"eight, failed once", b"quarantined", b"waiting"]
    assert spool.quarantined() == []
    assert spool.used_bytes() == sum(len(c) for c in contents)
    assert spool.describe(renamed)["last_error"] == "C000"  # the reason follows the rename


# -- what queue list shows --------------------------------------------------


def clip_bytes(patient_name, patient_id, now=(2026, 3, 4, 5, 6, 7)):
    enc = ObjectEncoder("video-endoscopic", 4, 4, "rgb8", now,
                        {tags.PatientName: patient_name, tags.PatientID: patient_id}, frames=1)
    data = enc.header() + b"".join(enc.frame(bytes(4 * 4 * 3)))
    trailer, _ = enc.close()
    return data + trailer, enc.sop_instance_uid


def test_describe_gives_patient_time_size_tries_and_last_error(tmp_path):
    spool = spool_at(tmp_path, max_failures=3)
    data, uid = clip_bytes("Müller^Jürgen", "ID-7")
    name = record(spool, data)
    about = spool.describe(name)
    assert about == {
        "name": name, "folder": QUEUE, "size": len(data), "tries": 0, "last_error": None,
        "patient_name": "Müller^Jürgen", "patient_id": "ID-7", "sop_instance_uid": uid,
        "recorded": "2026-03-04 05:06:07",
    }
    name = spool.failed(name, "association aborted by the PACS during C-STORE")
    about = spool.describe(name)
    assert about["tries"] == 1 and about["last_error"] == "association aborted by the PACS during C-STORE"
    name = spool.failed(name, "0xC000 failure")
    assert spool.describe(name)["last_error"] == "0xC000 failure"
    # reasons live in memory: after a restart the count is known (the
    # name), the reason is not, and describe says so
    spool = spool_at(tmp_path, max_failures=3)
    about = spool.describe(name)
    assert about["tries"] == 2 and about["last_error"] == ERROR_UNKNOWN
    assert spool.failed(name, "0xA700 out of resources") is None
    (quarantined,) = spool.quarantined()
    about = spool.describe(quarantined, QUARANTINE)
    assert about["tries"] == 3 and about["last_error"] == "0xA700 out of resources"
    assert about["patient_id"] == "ID-7"


def test_describe_a_file_that_is_not_dicom_or_gone(tmp_path):
    spool = spool_at(tmp_path)
    name = record(spool, b"\x00garbage" * 50)
    about = spool.describe(name)
    assert about["size"] == 400 and about["patient_name"] is None and about["recorded"] is None
    spool.stored(name)
    assert spool.describe(name) is None  # sent meanwhile
    with pytest.raises(ValueError):
        spool.describe("../../etc/passwd")
    with pytest.raises(ValueError):
        spool.describe(make_name(1), "elsewhere")


# -- faults the gateway must see -------------------------------------------


class FaultyStorage(PosixStorage):
    """A storage whose listing of some folders fails as a dying card or a
    folder without permission would (tests run as root: chmod stops
    nothing)."""

    def __init__(self, root, broken=()):
        super().__init__(root)
        self.broken = set(broken)

    def _check(self, name):
        if name in self.broken:
            raise OSError(errno.EIO, "Input/output error", self.path(name))

    def listdir(self, name):
        self._check(name)
        return super().listdir(name)

    def files(self, name):
        self._check(name)
        return super().files(name)


def test_an_unreadable_queue_raises_a_missing_one_is_empty(tmp_path):
    storage = FaultyStorage(str(tmp_path))
    spool = Spool(storage, 1 << 20)
    name = record(spool, b"abc")
    storage.broken.add(QUEUE)
    with pytest.raises(OSError) as raised:
        spool.pending()
    assert raised.value.errno == errno.EIO
    with pytest.raises(OSError):  # and at start-up: an alarm, never an empty queue
        Spool(storage, 1 << 20)
    storage.broken.clear()
    assert spool.pending() == [name]  # readable again: nothing lost
    os.remove(str(tmp_path / QUEUE / name))
    os.rmdir(str(tmp_path / QUEUE))
    assert spool.pending() == []


def test_failed_and_stored_survive_a_file_that_vanished(tmp_path):
    logged = []
    spool = spool_at(tmp_path, max_failures=2, log=logged.append)
    gone, kept = record(spool, b"a" * 10), record(spool, b"b" * 20)
    os.remove(str(tmp_path / QUEUE / gone))
    assert spool.failed(gone, "association aborted") is None
    assert any("vanished" in line and gone in line for line in logged)
    assert spool.used_bytes() == 20  # recounted from what is there
    os.remove(str(tmp_path / QUEUE / kept))
    spool.stored(kept)
    assert spool.used_bytes() == 0
    # a name the spool never made is not touched
    (tmp_path / QUEUE / "user.dcm").write_bytes(b"x")
    assert spool.failed("user.dcm", "C000") is None
    assert (tmp_path / QUEUE / "user.dcm").read_bytes() == b"x"


def test_failed_raises_when_the_fault_is_not_a_vanished_file(tmp_path):
    # quarantine/ removed from under the spool: the object is still there,
    # so this is a fault to show, not "vanished"
    spool = spool_at(tmp_path, max_failures=1)
    name = record(spool, b"abc")
    os.rmdir(str(tmp_path / QUARANTINE))
    with pytest.raises(OSError):
        spool.failed(name, "C000")
    assert spool.pending() == [name]


@pytest.mark.parametrize("name", ["1.dcm", "0001.dcm", "000000000001.f0.dcm", "000000000001.f02.dcm",
                                  "\u00b2.dcm", "00000000000\u00b2.dcm", "000000000001.f\u00b2.dcm"])
def test_only_the_names_the_spool_writes_are_its_own(name):
    """A user's 1.dcm, or a name with digits int() cannot read, is not the
    spool's: it is never deleted, moved or parsed into a crash."""
    from firmware.spool import parse_name

    assert parse_name(name) is None
