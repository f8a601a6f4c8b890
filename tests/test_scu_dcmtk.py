"""modgate echo / store against DCMTK's storescp in its modes."""

import os
import time

import pydicom
from pydicom.uid import ImplicitVRLittleEndian

from firmware.dicom.uid import IMPLICIT_VR_LITTLE_ENDIAN
from firmware.scu import StorageSCU, Timeouts, store_files
from tests.conftest import modgate


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
    results = list(store_files([clips["big"]], "127.0.0.1", scp.port, log=log.append))
    assert [r.stored for r in results] == [True]
    assert any("peer max PDU 4096" in line for line in log)
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
    scu = StorageSCU("127.0.0.1", scp.port, timeouts=Timeouts(dimse=2.0, artim=1.0))
    scu.associate([("1.2.840.10008.5.1.4.1.1.77.1.1", "1.2.840.10008.1.2.1")])
    started = time.monotonic()
    try:
        scu.store(clips["still"])
    except Exception as err:
        assert "DIMSE timeout" in str(err)
    else:
        raise AssertionError("no timeout")
    assert time.monotonic() - started < 10
    assert not scu.usable and scu.sock is None


def test_nothing_listening():
    scu = StorageSCU("127.0.0.1", 9, timeouts=Timeouts(connect=2.0))
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
