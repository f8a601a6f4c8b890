"""part10.read_attributes: the patient and time of a spooled object, read
back from the first bytes of its file, bounded and never raising."""

import io
import random
import struct

import pydicom
import pytest

from firmware.dicom import tags
from firmware.dicom.element import encode_dataset, encode_element, item_header
from firmware.dicom.encoder import ObjectEncoder
from firmware.dicom.part10 import MAX_HEAD, SUMMARY_TAGS, file_meta, read_attributes
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN

SC = "1.2.840.10008.5.1.4.1.1.7"
UID = "1.2.3.4"
NOW = (2026, 3, 4, 5, 6, 7, 890)


def header(transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, iod="video-endoscopic", **attributes):
    values = {tags.PatientName: "Doe^Jane", tags.PatientID: "P-1"}
    values.update(attributes.pop("values", {}))
    enc = ObjectEncoder(iod, 4, 4, "rgb8", NOW, values, transfer_syntax=transfer_syntax, **attributes)
    return enc


@pytest.mark.parametrize("transfer_syntax", [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN])
@pytest.mark.parametrize("iod", ["video-endoscopic", "mf-true-color-sc", "vl-endoscopic"])
def test_reads_what_the_encoder_wrote_as_pydicom_does(transfer_syntax, iod):
    enc = header(transfer_syntax, iod, values={tags.PatientName: "Müller^Jürgen=ミュラー^ユルゲン"}, frames=1)
    data = enc.header() + bytes(4 * 4 * 3)
    found = read_attributes(data)
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    assert found == {
        tags.SOPInstanceUID: ds.SOPInstanceUID,
        tags.ContentDate: ds.ContentDate,
        tags.ContentTime: ds.ContentTime,
        tags.AcquisitionDateTime: ds.AcquisitionDateTime,
        tags.PatientName: str(ds.PatientName),
        tags.PatientID: ds.PatientID,
    }
    assert found[tags.PatientName] == "Müller^Jürgen=ミュラー^ユルゲン"
    assert found[tags.AcquisitionDateTime] == "20260304050607.000890"


def dataset_file(elements, transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, undefined_length=True):
    explicit = transfer_syntax != IMPLICIT_VR_LITTLE_ENDIAN
    return file_meta(SC, UID, transfer_syntax) + encode_dataset(elements, explicit, undefined_length=undefined_length)


def test_text_without_a_character_set_is_the_default_repertoire():
    # PS3.5 6.1.2.2: no Specific Character Set means ISO_IR 6; bytes outside
    # it are shown as U+FFFD, never decoded as UTF-8 by guess.
    data = dataset_file([(tags.PatientID, "P-1"), (tags.PatientName, "X")]).replace(b"X ", b"\xc3\xbc")
    assert read_attributes(data)[tags.PatientName] == "\ufffd\ufffd"
    # with ISO_IR 192 the same bytes are UTF-8
    data = dataset_file([(tags.SpecificCharacterSet, "ISO_IR 192"), (tags.PatientName, "X")]).replace(b"X ", b"\xc3\xbc")
    assert read_attributes(data)[tags.PatientName] == "ü"
    # ISO_IR 100 (Latin-1), as other writers use it
    data = dataset_file([(tags.SpecificCharacterSet, "ISO_IR 100"), (tags.PatientName, "X")]).replace(b"X ", b"\xfc ")
    assert read_attributes(data)[tags.PatientName] == "ü"
    # bad UTF-8 under ISO_IR 192 does not raise
    data = dataset_file([(tags.SpecificCharacterSet, "ISO_IR 192"), (tags.PatientName, "X")]).replace(b"X ", b"\xff\xfe")
    assert read_attributes(data)[tags.PatientName] == "\ufffd\ufffd"
    # the character set applies to PN/LO/SH..., not to a UI or a DA
    data = dataset_file([(tags.SpecificCharacterSet, "ISO_IR 192"), (tags.PatientID, "P-1"),
                         (tags.ContentDate, "20260304")])
    assert read_attributes(data) == {tags.PatientID: "P-1", tags.ContentDate: "20260304"}


@pytest.mark.parametrize("transfer_syntax", [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN])
@pytest.mark.parametrize("undefined_length", [True, False])
def test_sequences_are_skipped_whatever_their_length(transfer_syntax, undefined_length):
    # An Anatomic Region Sequence (0008,2218) lies between the dates and the
    # patient; a nested item must not be taken for the top level.
    inner = [(tags.CodeValue, "1"), (tags.CodingSchemeDesignator, "SCT"), (tags.CodeMeaning, "x")]
    elements = [
        (tags.ContentDate, "20260304"),
        (tags.AnatomicRegionSequence, [inner, [(tags.AnatomicRegionSequence, [inner])]]),
        (tags.PatientName, "Doe^Jane"),
    ]
    found = read_attributes(dataset_file(elements, transfer_syntax, undefined_length))
    assert found == {tags.ContentDate: "20260304", tags.PatientName: "Doe^Jane"}


def test_stops_at_pixel_data_and_after_the_last_wanted_tag():
    data = dataset_file([(tags.PatientName, "Doe^Jane")])
    # an element "after" Pixel Data would be pixels: never read
    pixels = encode_element(tags.PixelData, "OB", b"\x00" * 4)
    late = struct.pack("<HH2sH", 0x7FE1, 0x0010, b"LO", 4) + b"LATE"
    assert read_attributes(data + pixels + late, wanted=SUMMARY_TAGS + (0x7FE10010,)) == {tags.PatientName: "Doe^Jane"}
    # past the last wanted tag it stops: garbage there changes nothing
    assert read_attributes(data + b"\xff" * 100, wanted=(tags.PatientName,)) == {tags.PatientName: "Doe^Jane"}


def test_looks_no_further_than_max_head():
    def patient_after(filler):
        # a defined-length OB element of filler bytes, then the patient
        data = file_meta(SC, UID, EXPLICIT_VR_LITTLE_ENDIAN)
        data += struct.pack("<HH2sHI", 0x0009, 0x0010, b"OB", 0, filler) + bytes(filler)
        return data + encode_element(tags.PatientName, "PN", "Doe^Jane")

    assert read_attributes(patient_after(MAX_HEAD - 1024)) == {tags.PatientName: "Doe^Jane"}
    assert read_attributes(patient_after(MAX_HEAD)) == {}


def test_garbage_and_truncation_never_raise():
    enc = header(frames=1)
    good = enc.header() + bytes(4 * 4 * 3)
    found = read_attributes(good)
    assert found[tags.PatientName] == "Doe^Jane"
    for cut in range(len(enc.header()) + 1):
        partial = read_attributes(good[:cut])
        # what it returns is always right, just possibly less
        assert all(found[tag] == value for tag, value in partial.items()), cut
    rng = random.Random(17)
    for _ in range(3000):
        mutated = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(128, len(enc.header()))] = rng.randrange(256)
        read_attributes(bytes(mutated))
        read_attributes(bytes(128) + b"DICM" + bytes(rng.randrange(256) for _ in range(rng.randrange(400))))
    for junk in (b"", b"DICM", bytes(200), b"\xff" * 5000):
        assert read_attributes(junk) == {}
    # an item tag at the top level, a delimiter without a sequence
    data = dataset_file([(tags.ContentDate, "20260304")])
    assert read_attributes(data + item_header(8) + bytes(8)) == {tags.ContentDate: "20260304"}


def test_big_endian_and_deflated_are_not_walked():
    for ts in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"):
        data = file_meta(SC, UID, ts) + encode_element(tags.PatientName, "PN", "Doe^Jane")
        assert read_attributes(data) == {}
