"""The streaming encoder, checked by the real readers: every IOD through the
CLI into pydicom, dcmdump and dciodvfy, pixels against the formulas, and the
memory bound."""

import io
import os
import struct
import tracemalloc
import warnings

import pydicom
import pytest
from pydicom.encaps import generate_frames

from firmware.capture import write_frames
from firmware.dicom import tags
from firmware.dicom.encoder import ObjectEncoder, frame_time_ms
from firmware.dicom.iod import IODS
from firmware.dicom.uid import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    IMPLICIT_VR_LITTLE_ENDIAN,
    JPEG_BASELINE_8BIT,
)
from hal.acq.sim import Pattern
from tests.conftest import dciodvfy, dcmdump, modgate
from tests.reference import frame as reference_frame
from tests.vectors import NOW, encode_object

# The one warning dciodvfy gives by design: SC images have no anatomic
# region, so Laterality (Type 2C) is sent empty (absent would be an error).
EXPECTED_WARNING = "attribute <Laterality>"

CASES = [(iod, ts) for iod in sorted(IODS) for ts in ("explicit", "implicit")]


def read_strict(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return pydicom.dcmread(path)


@pytest.mark.parametrize("iod,ts", CASES)
def test_cli_capture_every_iod(tmp_path, iod, ts):
    # 63x47: odd sizes, so mono8 pixel data needs its pad byte.
    width, height, frames = (64, 48, 3) if ts == "explicit" else (63, 47, 3)
    result = modgate(
        "capture", "--frames", str(frames), "--size", "%dx%d" % (width, height), "--iod", iod,
        "--transfer-syntax", ts, "--patient-name", "Doe^John", "--patient-id", "P-1", "--accession", "A-1",
        "--out", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    multiframe = IODS[iod].multiframe
    assert len(paths) == (1 if multiframe else frames)
    pixel = IODS[iod].pixel_formats[0]
    for index, path in enumerate(paths):
        assert os.path.dirname(path) == str(tmp_path) and os.path.exists(path)
        errors, warns = dciodvfy(path)
        assert errors == [], errors
        assert all(EXPECTED_WARNING in w for w in warns), warns
        dump = dcmdump(path)
        assert "PixelData" in dump
        ds = read_strict(path)
        assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert ds.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
        assert ds.file_meta.TransferSyntaxUID == (
            EXPLICIT_VR_LITTLE_ENDIAN if ts == "explicit" else IMPLICIT_VR_LITTLE_ENDIAN
        )
        assert ds.SOPClassUID == IODS[iod].sop_class_uid
        assert ds.SOPInstanceUID == os.path.basename(path)[:-4]
        assert (ds.PatientName, ds.PatientID, ds.AccessionNumber) == ("Doe^John", "P-1", "A-1")
        assert (ds.Rows, ds.Columns) == (height, width)
        # Bit-exact: the stored bytes are the formula's frames, in order.
        ks = range(frames) if multiframe else [index]
        expected = b"".join(reference_frame(pixel, width, height, k) for k in ks)
        assert ds.PixelData[: len(expected)] == expected
        assert len(ds.PixelData) == len(expected) + (len(expected) & 1)
        assert ds.pixel_array.shape[0] == (frames if multiframe else height)
        check_module_attributes(ds, iod, frames if multiframe else 1)
    if not multiframe:
        series = {read_strict(p).SeriesInstanceUID for p in paths}
        assert len(series) == 1
        assert [read_strict(p).InstanceNumber for p in paths] == [1, 2, 3]


def check_module_attributes(ds, iod, frames):
    """The Type 1 and 2 attributes the issue lists, with sensible values."""
    spec = IODS[iod]
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert ds.Modality == spec.modality
    assert ds.Manufacturer == "modgate"
    assert ds.BurnedInAnnotation == "NO"
    assert ds.LossyImageCompression == "00"
    assert "PatientOrientation" in ds
    for keyword in ("StudyDate", "StudyTime", "ContentDate", "ContentTime", "SeriesDate", "SeriesTime"):
        assert len(str(ds.data_element(keyword).value)) >= 6, keyword
    assert ds.StudyID == "" and ds.SeriesNumber == 1 and ds.InstanceNumber >= 1
    if spec.family == "sc":
        assert ds.ConversionType == "DV"
        assert "Laterality" in ds
    else:
        assert ds.AcquisitionContextSequence == []
        assert ds.AnatomicRegionSequence[0].CodingSchemeDesignator == "SCT"
        assert str(ds.AcquisitionDateTime).startswith(ds.ContentDate)
    if spec.multiframe:
        assert int(ds.NumberOfFrames) == frames
        assert ds.FrameIncrementPointer == tags.FrameTime
        assert float(ds.FrameTime) == pytest.approx(1000 / 30, abs=0.001)
    else:
        assert "NumberOfFrames" not in ds


def test_declared_count_needs_no_seek(tmp_path):
    """With the frame count known up front the encoder writes straight
    through, e.g. into a pipe."""
    read_fd, write_fd = os.pipe()
    pattern = Pattern("rgb8", 32, 16)
    encoder = ObjectEncoder("video-photographic", 16, 32, "rgb8", NOW, frames=4)
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        with os.fdopen(write_fd, "wb") as pipe:
            write_frames(pipe, encoder, (pattern.frame(k) for k in range(4)))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    path = tmp_path / "piped.dcm"
    path.write_bytes(data)
    assert dciodvfy(str(path))[0] == []
    ds = read_strict(path)
    assert int(ds.NumberOfFrames) == 4
    assert ds.PixelData == b"".join(reference_frame("rgb8", 32, 16, k) for k in range(4))


def test_declared_and_patched_objects_agree():
    declared = pydicom.dcmread(io.BytesIO(encode_object("mf-true-color-sc", "rgb8", 8, 6, 3, EXPLICIT_VR_LITTLE_ENDIAN, True)))
    patched = pydicom.dcmread(io.BytesIO(encode_object("mf-true-color-sc", "rgb8", 8, 6, 3, EXPLICIT_VR_LITTLE_ENDIAN, False)))
    assert declared == patched


def test_utf8_names_set_specific_character_set(tmp_path):
    result = modgate("capture", "--frames", "1", "--size", "8x8", "--patient-name", "Åström^Björn", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip()
    assert dciodvfy(path)[0] == []
    ds = read_strict(path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Åström^Björn"
    # ASCII-only objects carry no Specific Character Set at all.
    plain = read_strict(modgate("capture", "--frames", "1", "--size", "8x8", "--out", str(tmp_path / "a")).stdout.strip())
    assert "SpecificCharacterSet" not in plain


def test_encapsulated_fragments_read_back():
    """Encapsulated Pixel Data (PS3.5 A.4): empty Basic Offset Table, one
    fragment per frame (odd ones padded), sequence delimiter."""
    frames = [b"\xff\xd8" + bytes([k]) * (5 + k) + b"\xff\xd9" for k in range(3)]
    encoder = ObjectEncoder("video-endoscopic", 6, 8, "rgb8", NOW, transfer_syntax=JPEG_BASELINE_8BIT)
    out = io.BytesIO()
    write_frames(out, encoder, frames)
    ds = pydicom.dcmread(io.BytesIO(out.getvalue()))
    assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE_8BIT
    assert int(ds.NumberOfFrames) == 3
    got = list(generate_frames(ds.PixelData, number_of_frames=3))
    assert [g.rstrip(b"\x00") for g in got] == frames
    assert out.getvalue().endswith(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))


def test_wrong_frames_refused():
    encoder = ObjectEncoder("mf-grayscale-byte-sc", 4, 4, "mono8", NOW, frames=2)
    with pytest.raises(ValueError, match="needs 16"):
        encoder.frame(b"\x00" * 15)
    encoder.frame(bytes(16))
    with pytest.raises(ValueError, match="declared 2 frames, got 1"):
        encoder.close()
    encoder.frame(bytes(16))
    with pytest.raises(ValueError, match="already holds"):
        encoder.frame(bytes(16))
    encoder.close()
    with pytest.raises(ValueError, match="closed"):
        encoder.close()
    with pytest.raises(ValueError, match="at least one frame"):
        ObjectEncoder("mf-grayscale-byte-sc", 4, 4, "mono8", NOW).close()
    with pytest.raises(ValueError, match="single-frame"):
        ObjectEncoder("vl-endoscopic", 4, 4, "rgb8", NOW, frames=2)
    with pytest.raises(ValueError, match="pixel format"):
        ObjectEncoder("video-endoscopic", 4, 4, "mono16", NOW)
    with pytest.raises(ValueError, match="unknown IOD"):
        ObjectEncoder("ct", 4, 4, "mono16", NOW)


def test_frame_time_is_exact_decimal():
    assert frame_time_ms((30, 1)) == "33.333"
    assert frame_time_ms((30000, 1001)) == "33.367"
    assert frame_time_ms((25, 1)) == "40"
    assert frame_time_ms((60000, 1001)) == "16.683"


class Sink:
    """A seekable output that keeps nothing but its length."""

    def __init__(self):
        self.pos = self.size = 0

    def write(self, data):
        self.pos += len(data)
        self.size = max(self.size, self.pos)
        return len(data)

    def tell(self):
        return self.pos

    def seek(self, pos):
        self.pos = pos


def peak_while_encoding(frames):
    pattern = Pattern("rgb8", 320, 240)
    data = [pattern.frame(k) for k in range(2)]
    tracemalloc.start()
    try:
        # Fixed UIDs: generated ones vary in length, and so would the header.
        uids = {tags.StudyInstanceUID: "1.2.3", tags.SeriesInstanceUID: "1.2.3.4", tags.SOPInstanceUID: "1.2.3.4.5"}
        encoder = ObjectEncoder("video-endoscopic", 240, 320, "rgb8", NOW, uids)
        sink = Sink()
        write_frames(sink, encoder, (data[k & 1] for k in range(frames)))
        return tracemalloc.get_traced_memory()[1], sink.size
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_frames():
    small_peak, small_size = peak_while_encoding(5)
    large_peak, large_size = peak_while_encoding(500)
    assert large_size - small_size == 495 * 320 * 240 * 3
    # The encoder holds no frame: the peaks differ by far less than one frame.
    assert abs(large_peak - small_peak) < 64 * 1024, (small_peak, large_peak)
