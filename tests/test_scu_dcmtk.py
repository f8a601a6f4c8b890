"""modgate echo / store against DCMTK's storescp in its modes."""

import os
import struct
import time

import pydicom
from pydicom.uid import ImplicitVRLittleEndian

from firmware.dicom.uid import IMPLICIT_VR_LITTLE_ENDIAN
import board
from firmware.association import AssociationError, Timeouts
from firmware.services.storage import StorageSCU, StoreResult, store_files
from hal.storage import open_file
from tests.conftest import modgate

HOST = board.load("host")


def received(scp, source):
    src = pydicom.dcmread(source)
    for path in scp.files():
        ds = pydicom.dcmread(path)
        if ds.SOPInstanceUID == src.SOPInstanceUID:
            return src, ds
    raise AssertionError("%s did not arrive" % src.SOPInstanceUID)


def test_echo_and_store_accept_all(storescp, clips):
    scp = storescp("+xa")
    echo = modgate("echo", "127.0.0.1", str(scp.port), timeout=60)
    assert echo.returncode == 0 and "success" in echo.stdout
    result = modgate("store", "127.0.0.1", str(scp.port), *clips.values(), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(clips) and all(" 0000 success" in l for l in lines)
    for source in clips.values():
        src, got = received(scp, source)
        assert got.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
        assert got == src  # every element, pixel data included


def test_implicit_only_converts_while_streaming(storescp, clips):
    """storescp +xi takes Implicit VR LE only: the Explicit files go as
    Implicit, converted on the fly; what arrives equals pydicom's own
    conversion of the source."""
    scp = storescp("+xi")
    result = modgate("store", "127.0.0.1", str(scp.port), clips["video"], clips["still"], clips["word"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("sent as Implicit VR Little Endian") == 3
    for name in ("video", "still", "word"):
        src, got = received(scp, clips[name])
        assert got.file_meta.TransferSyntaxUID == IMPLICIT_VR_LITTLE_ENDIAN
        reference = pydicom.dcmread(clips[name])
        reference.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        reference.PixelData  # loaded
        for elem in reference:
            assert got[elem.tag].value == elem.value, elem.tag
        assert set(e.tag for e in got) == set(e.tag for e in reference)
        assert got.PixelData == src.PixelData


def test_small_pdu_fragments(storescp, clips):
    scp = storescp("+xa", "-pdu", "4096")
    log = []
    results = list(store_files(HOST, [clips["big"]], "127.0.0.1", scp.port, open_file, log=log.append))
    assert [r.stored for r in results] == [True]
    assert any("peer maximum length 4096" in line for line in log)
    src, got = received(scp, clips["big"])
    assert got.PixelData == src.PixelData


def test_refused_association_is_reported_by_name(storescp, clips):
    scp = storescp("--refuse")
    result = modgate("store", "127.0.0.1", str(scp.port), clips["still"], timeout=60)
    assert result.returncode == 1
    assert "rejected-permanent" in result.stdout and "no-reason-given" in result.stdout


def test_abort_during_and_after(storescp, clips):
    for mode in ("--abort-during", "--abort-after"):
        scp = storescp(mode)
        result = modgate("store", "127.0.0.1", str(scp.port), clips["video"], clips["still"], timeout=60)
        assert result.returncode == 1, mode
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 2 and all("aborted" in l for l in lines), lines
        assert scp.files() == []


def test_dimse_timeout_aborts(storescp, clips):
    scp = storescp("--sleep-during", "30")
    scu = StorageSCU(HOST, "127.0.0.1", scp.port, open_object=open_file, timeouts=Timeouts(dimse=2.0, artim=1.0))
    scu.associate([("1.2.840.10008.5.1.4.1.1.77.1.1", "1.2.840.10008.1.2.1")])
    started = time.monotonic()
    try:
        scu.store(clips["still"])
    except Exception as err:
        assert "DIMSE timeout" in str(err)
    else:
        raise AssertionError("no timeout")
    assert time.monotonic() - started < 10
    assert not scu.usable and scu.association.connection is None


def test_nothing_listening():
    scu = StorageSCU(HOST, "127.0.0.1", 9, timeouts=Timeouts(connect=2.0))
    try:
        scu.associate([])
    except Exception as err:
        assert "cannot connect" in str(err)
    else:
        raise AssertionError("connected to nothing")


def test_not_dicom_reported_and_others_sent(storescp, clips, tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all" * 20)
    scp = storescp("+xa")
    result = modgate("store", "127.0.0.1", str(scp.port), str(junk), clips["still"], timeout=60)
    assert result.returncode == 1
    assert "not a DICOM Part 10 file" in result.stdout
    assert len(scp.files()) == 1


# -- faults of the file itself: reported with object_fault, never raised ------

def test_a_file_of_many_batches_arrives_byte_identical(storescp, clips):
    """storescp +B writes what it received as it came: the data set
    after its file meta is the source's to the byte, for Maximum Lengths
    that give several PDUs a batch and a short last batch
    (net/message.py writes a full batch's PDU headers once and reads only
    the data behind them from then on)."""
    source = open(clips["big"], "rb").read()
    for maximum_length in ("16384", "5000"):
        scp = storescp("+xa", "+B", "-pdu", maximum_length)
        results = list(store_files(HOST, [clips["big"]], "127.0.0.1", scp.port, open_file))
        assert [r.stored for r in results] == [True], results[0].meaning
        (path,) = scp.files()
        got = open(path, "rb").read()
        assert got[_dataset_offset(got):] == source[_dataset_offset(source):], maximum_length


def _dataset_offset(data):
    from firmware.dicom.part10 import read_file_meta

    return read_file_meta(data[:65536]).dataset_offset


def _truncated(source, folder, keep):
    """A copy of source cut to keep of its bytes: the Pixel Data element
    claims more than is there."""
    data = open(source, "rb").read()
    path = os.path.join(str(folder), "truncated-" + os.path.basename(source))
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * keep)])
    return path


def _undefined_length(source, folder):
    """A copy of source with an element of undefined length first in its
    data set: legal in Explicit VR LE (PS3.5 7.1.2), but no Implicit VR
    peer can take it (PS3.5 A.4), so converting it fails at once."""
    data = open(source, "rb").read()
    at = _dataset_offset(data)
    element = struct.pack("<HH2sHI", 0x0008, 0x0001, b"UN", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    path = os.path.join(str(folder), "undefined-" + os.path.basename(source))
    with open(path, "wb") as f:
        f.write(data[:at] + element + data[at:])
    return path


def _head_only(source, folder):
    path = os.path.join(str(folder), "head-" + os.path.basename(source))
    with open(path, "wb") as f:
        f.write(open(source, "rb").read()[:150])
    return path


def test_store_reports_bad_files_and_sends_the_rest(storescp, clips, tmp_path):
    """An Implicit-only PACS (storescp +xi) and, among good files, one cut
    short inside its pixel data (its conversion fails at the end, with most
    of it sent: that association is aborted and a new one takes the rest),
    one that cannot be converted at all (fails before anything of it left:
    the association goes on) and one whose header is cut: each is reported
    by name and in its place, the good ones all arrive."""
    scp = storescp("+xi")
    truncated = _truncated(clips["big"], tmp_path, 0.5)
    undefined = _undefined_length(clips["still"], tmp_path)
    head = _head_only(clips["word"], tmp_path)
    paths = [clips["video"], truncated, clips["still"], undefined, clips["word"], head]
    result = modgate("store", "127.0.0.1", str(scp.port), *paths, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 6, lines
    for line, path in zip(lines, paths):
        if path in (truncated, undefined, head):
            assert " failure: not sent: %s: " % path in line, line
        else:
            assert " 0000 success" in line and "sent as Implicit VR Little Endian" in line, line
    assert "cannot be sent as Implicit VR Little Endian: data set ends inside an element" in lines[1]
    assert lines[1].endswith("(association aborted)")
    assert "(0008,0001) UN of undefined length" in lines[3] and "aborted" not in lines[3]
    assert "File Meta Information" in lines[5]
    for name in ("video", "still", "word"):
        received(scp, clips[name])
    assert len(scp.files()) == 3


def test_object_faults_keep_the_association_when_nothing_left(storescp, clips, tmp_path):
    """StorageSCU.store itself: a file fault is a StoreResult with
    object_fault, never an exception; the association survives when none
    of the message had left, and is aborted (not raised) when some had."""
    scp = storescp("+xi")
    undefined = _undefined_length(clips["still"], tmp_path)
    truncated = _truncated(clips["big"], tmp_path, 0.5)
    log = []
    scu = StorageSCU(HOST, "127.0.0.1", scp.port, log=log.append, open_object=open_file)
    scu.associate([("1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.1.2.1"),
                   ("1.2.840.10008.5.1.4.1.1.77.1.1", "1.2.840.10008.1.2.1"),
                   ("1.2.840.10008.5.1.4.1.1.7.4", "1.2.840.10008.1.2.1")])
    for path, why in ((undefined, "cannot be sent as Implicit VR Little Endian"),
                      (_head_only(clips["still"], tmp_path), "File Meta Information runs past"),
                      (str(tmp_path / "no-such.dcm"), "cannot open it: No such file or directory"),
                      (str(tmp_path), "cannot open it")):
        result = scu.store(path)
        assert result.object_fault and result.status is None and result.category == "failure", result
        assert result.meaning.startswith("not sent: %s: %s" % (path, why)), result.meaning
        assert scu.usable, path
    good = scu.store(clips["still"])
    assert good.stored and not good.object_fault
    result = scu.store(truncated)
    assert result.object_fault and "(association aborted)" in result.meaning
    assert not scu.usable and scu.association.connection is None
    assert any("aborting the association" in line for line in log)
    try:
        scu.store(clips["video"])
    except AssociationError:
        pass
    else:
        raise AssertionError("store on an aborted association did not raise AssociationError")
    assert StoreResult("x", None).object_fault is False
    assert len(scp.files()) == 1


def test_a_file_that_shrinks_while_sent(storescp, clips, tmp_path):
    """Explicit VR all the way (storescp +xa): the file is cut while its
    data set streams out. The SCU sees the short read, aborts the
    association (the C-STORE-RQ was under way) and reports the file."""
    scp = storescp("+xa")
    path = str(tmp_path / "shrinks.dcm")
    with open(path, "wb") as f:
        f.write(open(clips["big"], "rb").read())
    cut = []

    def progress(sent, total):
        if not cut:
            os.truncate(path, os.path.getsize(path) // 2)
            cut.append(sent)

    scu = StorageSCU(HOST, "127.0.0.1", scp.port, progress=progress, open_object=open_file)
    scu.associate([("1.2.840.10008.5.1.4.1.1.7.4", "1.2.840.10008.1.2.1")])
    result = scu.store(path)
    assert cut
    assert result.object_fault and "shrank while being sent" in result.meaning, result.meaning
    assert "(association aborted)" in result.meaning and not scu.usable
    assert scp.files() == [] or all(pydicom.dcmread(p, force=True).SOPInstanceUID is not None for p in scp.files())


def test_echo_and_store_name_an_http_port(tmp_path, clips):
    """A real HTTP server (python -m http.server) on the port. It answers
    once it has a whole line: an A-ASSOCIATE-RQ with a LF in it (the length
    of a 10-character SOP Class UID's item, 0x000A) gets its error page at
    once, one without waits: either way the message says what to check."""
    import subprocess
    import sys

    from tests.conftest import free_port, wait_for_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        ds = pydicom.dcmread(clips["still"])
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.3.4.56"
        ten = str(tmp_path / "ten.dcm")
        ds.save_as(ten)
        store = modgate("store", "--acse-timeout", "10", "127.0.0.1", str(port), ten, timeout=60)
        assert store.returncode == 1
        assert "looks like an HTTP server, not a DICOM one" in store.stdout, store.stdout + store.stderr
        # C-ECHO's request has no LF today (its lengths are fixed by the
        # implementation's identity): the server waits, the ACSE timeout asks
        echo = modgate("echo", "--acse-timeout", "2", "127.0.0.1", str(port), timeout=60)
        assert echo.returncode == 1
        assert ("is 127.0.0.1:%d a DICOM port?" % port in echo.stdout
                or "looks like an HTTP server" in echo.stdout), echo.stdout + echo.stderr
    finally:
        server.terminate()
        server.wait(10)


def test_rejected_called_ae_title_names_the_setting(tmp_path):
    """DCMTK's dcmqrscp rejects an association for a called AE title not in
    its AE table (PS3.8 9.3.4: service-user, reason 7); the message says to
    check --aec (the command line) and pacs.ae_title (the gateway)."""
    import subprocess

    from tests.conftest import free_port, tool, wait_for_port

    port = free_port()
    db = tmp_path / "db"
    db.mkdir()
    cfg = tmp_path / "dcmqrscp.cfg"
    cfg.write_text("NetworkTCPPort = %d\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
                   "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
                   "AETable BEGIN\nARCHIVE %s RW (10, 64mb) ANY\nAETable END\n" % (port, db))
    scp = subprocess.Popen([tool("dcmqrscp"), "-c", str(cfg), "--single-process", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        wrong = modgate("echo", "--aec", "WRONG", "127.0.0.1", str(port), timeout=60)
        assert wrong.returncode == 1
        assert "called-AE-title-not-recognized" in wrong.stdout
        assert "--aec on the command line, pacs.ae_title in the gateway" in wrong.stdout, wrong.stdout
        right = modgate("echo", "--aec", "ARCHIVE", "127.0.0.1", str(port), timeout=60)
        assert right.returncode == 0, right.stdout + right.stderr
    finally:
        scp.terminate()
        scp.wait(10)


def test_more_sop_classes_than_one_association_can_propose(storescp, clips, tmp_path):
    """45 SOP classes need 136 presentation contexts, more than the 128 of
    one association (PS3.8 9.3.2.2): the batch goes over two, not a
    traceback. storescp -pm accepts the unknown classes."""
    scp = storescp("+xa", "-pm")
    ds = pydicom.dcmread(clips["still"])
    paths = []
    for n in range(45):
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.826.0.1.3680043.10.1.%d" % (n + 1)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.826.0.1.3680043.10.2.%d" % (n + 1)
        path = str(tmp_path / ("c%02d.dcm" % n))
        ds.save_as(path)
        paths.append(path)
    log = []
    results = list(store_files(HOST, paths, "127.0.0.1", scp.port, open_file, log=log.append))
    assert [r.stored for r in results] == [True] * 45, [str(r) for r in results if not r.stored]
    assert sum("associated with" in line for line in log) == 2
    assert len(scp.files()) == 45
