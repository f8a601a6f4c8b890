"""The spool on the POSIX storage driver: the file system is the queue."""

import os

import pytest

from firmware.spool import QUARANTINE, QUEUE, SENT, TMP, Spool, SpoolFull, make_name, parse_name
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
