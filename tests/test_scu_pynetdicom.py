"""modgate's SCU seen by a pynetdicom Storage SCP in the test process: the
contexts proposed, the maximum length, the identity, and how each status
class is handled."""

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from firmware.dicom.uid import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    IMPLICIT_VR_LITTLE_ENDIAN,
    MULTIFRAME_GRAYSCALE_WORD_SC,
    VIDEO_ENDOSCOPIC_IMAGE,
    VL_ENDOSCOPIC_IMAGE,
)
from tests.conftest import free_port, modgate


@pytest.fixture
def scp():
    seen = {"requests": [], "stored": []}
    statuses = []

    def on_requested(event):
        r = event.assoc.requestor
        seen["requests"].append({
            "contexts": sorted((c.context_id, c.abstract_syntax, tuple(c.transfer_syntax)) for c in r.requested_contexts),
            "max_length": r.maximum_length,
            "implementation_class_uid": r.implementation_class_uid,
            "implementation_version_name": r.implementation_version_name,
            "ae_title": r.primitive.calling_ae_title.strip(),
        })

    def on_store(event):
        ds = event.dataset
        seen["stored"].append((ds.SOPInstanceUID, event.context.transfer_syntax, event.request.MessageID))
        return statuses.pop(0) if statuses else 0x0000

    ae = AE(ae_title="PYNETDICOM")
    for sop_class in (VIDEO_ENDOSCOPIC_IMAGE, VL_ENDOSCOPIC_IMAGE, MULTIFRAME_GRAYSCALE_WORD_SC, "1.2.840.10008.5.1.4.1.1.7.4"):
        ae.add_supported_context(sop_class, [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN])
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_REQUESTED, on_requested), (evt.EVT_C_STORE, on_store)])
    seen["port"] = port
    seen["statuses"] = statuses
    yield seen
    server.shutdown()


def test_proposed_contexts_and_identity(scp, clips):
    result = modgate("store", "--aet", "GATEWAY1", "--aec", "PYNETDICOM", "--max-pdu", "32768",
                     "127.0.0.1", str(scp["port"]), clips["video"], clips["word"], clips["still"], timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    (request,) = scp["requests"]
    assert request["max_length"] == 32768
    assert request["implementation_class_uid"] == IMPLEMENTATION_CLASS_UID
    assert request["implementation_version_name"] == IMPLEMENTATION_VERSION_NAME
    assert request["ae_title"] == "GATEWAY1"
    # Per SOP class: the file's syntax (here Explicit VR LE) and Implicit VR
    # LE, each in a context of its own; Verification too.
    proposed = [(a, ts) for _, a, ts in request["contexts"]]
    for sop_class in (VIDEO_ENDOSCOPIC_IMAGE, MULTIFRAME_GRAYSCALE_WORD_SC, VL_ENDOSCOPIC_IMAGE):
        assert (sop_class, (EXPLICIT_VR_LITTLE_ENDIAN,)) in proposed
        assert (sop_class, (IMPLICIT_VR_LITTLE_ENDIAN,)) in proposed
    assert ("1.2.840.10008.1.1", (IMPLICIT_VR_LITTLE_ENDIAN,)) in proposed
    assert ("1.2.840.10008.1.1", (EXPLICIT_VR_LITTLE_ENDIAN,)) in proposed
    assert len(proposed) == 8
    assert all(cid % 2 == 1 for cid, _, _ in request["contexts"])
    assert [s[1] for s in scp["stored"]] == [EXPLICIT_VR_LITTLE_ENDIAN] * 3
    assert [s[2] for s in scp["stored"]] == [1, 2, 3]


def test_status_classes(scp, clips):
    scp["statuses"].extend([0xB000, 0xA700, 0xC000])
    result = modgate("store", "-v", "127.0.0.1", str(scp["port"]), clips["video"], clips["word"], clips["still"], timeout=60)
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1  # two objects were not stored
    assert " B000 warning: Coercion of data elements" in lines[0]
    assert " A700 failure: Refused: out of resources" in lines[1]
    assert " C000 failure: Error: cannot understand" in lines[2]
    assert "warning B000" in result.stderr and "failure A700" in result.stderr


def test_warning_only_is_success(scp, clips):
    scp["statuses"].extend([0xB007])
    result = modgate("store", "127.0.0.1", str(scp["port"]), clips["still"], timeout=60)
    assert result.returncode == 0 and "B007 warning" in result.stdout


def test_echo(scp):
    result = modgate("echo", "--aec", "PYNETDICOM", "127.0.0.1", str(scp["port"]), timeout=60)
    assert result.returncode == 0 and "success" in result.stdout
