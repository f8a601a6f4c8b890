"""modgate echo / store into Orthanc (Debian's orthanc), started with a
configuration of the test's own on loopback ports; its REST API is asked
what arrived and hands back the stored file."""

import json
import os
import time

import pytest

from firmware.dicom.part10 import read_file_meta
from tests.conftest import Orthanc, http, modgate


@pytest.fixture
def orthanc(tmp_path):
    server = Orthanc(tmp_path)
    try:
        yield server.dicom_port, server.http_port
    finally:
        server.stop()


def dataset_bytes(data):
    return data[read_file_meta(data[:65536]).dataset_offset :]


def test_store_into_orthanc(orthanc, clips):
    dicom_port, http_port = orthanc
    echo = modgate("echo", "--aec", "ORTHANC", "127.0.0.1", str(dicom_port), timeout=60)
    assert echo.returncode == 0, echo.stdout + echo.stderr
    paths = [clips[name] for name in ("video", "word", "still", "big")]
    result = modgate("store", "--aec", "ORTHANC", "127.0.0.1", str(dicom_port), *paths, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" 0000 success") == len(paths)

    listed = json.loads(http(http_port, "/instances"))
    assert len(listed) == len(paths)
    for path in paths:
        with open(path, "rb") as f:
            source = f.read()
        uid = read_file_meta(source[:65536]).sop_instance_uid
        found = json.loads(http(http_port, "/tools/lookup", uid.encode()))
        assert [item["Type"] for item in found] == ["Instance"], uid
        stored = http(http_port, "/instances/%s/file" % found[0]["ID"])
        assert read_file_meta(stored[:65536]).sop_instance_uid == uid
        # Orthanc writes its own File Meta Information; the data set it
        # received must be the source's, byte for byte.
        assert dataset_bytes(stored) == dataset_bytes(source)


def test_orthanc_rejects_a_wrong_called_ae(orthanc, clips):
    dicom_port, _ = orthanc
    result = modgate("store", "--aec", "NOT-ORTHANC", "127.0.0.1", str(dicom_port), clips["still"], timeout=60)
    assert result.returncode != 0
    assert "called-AE-title-not-recognized" in result.stdout + result.stderr
