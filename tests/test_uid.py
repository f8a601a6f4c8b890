"""UID generation (PS3.5 9, B.2)."""

import uuid

import pytest

from firmware.dicom.uid import IMPLEMENTATION_CLASS_UID, check_uid, generate_uid, uuid4_int


def test_default_root_is_uuid_derived():
    seen = set()
    for _ in range(500):
        value = generate_uid()
        assert value.startswith("2.25.")
        check_uid(value)
        as_uuid = uuid.UUID(int=int(value[5:]))
        assert as_uuid.version == 4 and as_uuid.variant == uuid.RFC_4122
        seen.add(value)
    assert len(seen) == 500


def test_organisation_root():
    root = "1.2.826.0.1.3680043.10.999"
    for _ in range(200):
        value = generate_uid(root)
        check_uid(value)
        assert value.startswith(root + ".") and len(value) <= 64
        assert len(value) - len(root) - 1 >= 16


def test_bad_roots_refused():
    with pytest.raises(ValueError, match="leading zero"):
        generate_uid("1.2.03")
    with pytest.raises(ValueError, match="at least 16"):
        generate_uid("1." + "2" * 50)


def test_implementation_class_uid_is_valid():
    check_uid(IMPLEMENTATION_CLASS_UID)
    assert uuid4_int() < 2 ** 128
