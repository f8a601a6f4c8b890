"""Test vectors for the DICOM core, run on CPython and on MicroPython: each
vector is a name and the bytes the core produces. tests/test_micropython.py
runs this file on a real MicroPython and compares every vector's bytes with
CPython's.

    python tests/vectors.py        prints 'name length sha256' per vector
"""

import hashlib
import io
import struct
import sys

from firmware.dicom import tags
from firmware.dicom.element import (
    basic_offset_table,
    encode_dataset,
    encode_element,
    fragment,
)
from firmware.dicom.encoder import ObjectEncoder
from firmware.dicom.part10 import file_meta
from firmware.dicom.uid import EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, JPEG_BASELINE_8BIT
from firmware.dicom.vr import UTF8, person_name

try:
    from tests.reference import frame as reference_frame
except ImportError:  # MicroPython: tests/ is copied to /lib as its own folder
    from reference import frame as reference_frame

NOW = (2026, 11, 23, 9, 30, 15, 250000)
STUDY = "1.2.826.0.1.3680043.10.1000.1"
SERIES = "1.2.826.0.1.3680043.10.1000.1.1"
INSTANCE = "1.2.826.0.1.3680043.10.1000.1.1.1"

# One element per VR, each value exercising padding or multiplicity.
ELEMENTS = [
    (0x00090010, "AE", "MODGATE"),
    (0x00090011, "AS", "042Y"),
    (0x00090012, "AT", [tags.FrameTime, tags.PixelData]),
    (0x00090013, "CS", ["ORIGINAL", "PRIMARY", "X"]),
    (0x00090014, "DA", "20261123"),
    (0x00090015, "DS", ["33.333", 1, -2.5]),
    (0x00090016, "DT", "20261123093015.25+0100"),
    (0x00090017, "FL", [1.5, -0.25]),
    (0x00090018, "FD", 3.0e100),
    (0x00090019, "IS", [1, -17, "42"]),
    (0x0009001A, "LO", "a long string"),
    (0x0009001B, "LT", "line one\r\nline two\\with backslash"),
    (0x0009001C, "OB", b"\x01\x02\x03"),
    (0x0009001D, "OD", struct.pack("<2d", 1.0, 2.0)),
    (0x0009001E, "OF", struct.pack("<f", 1.0)),
    (0x0009001F, "OL", struct.pack("<I", 7)),
    (0x00090020, "OV", struct.pack("<Q", 9)),
    (0x00090021, "OW", b"\x01\x00\x02\x00"),
    (0x00090022, "PN", person_name("Doe", "Jane", "Q", "Dr", "PhD")),
    (0x00090023, "SH", "short"),
    (0x00090024, "SL", [-1, 2 ** 31 - 1]),
    (0x00090025, "SS", [-32768, 32767]),
    (0x00090026, "ST", "short text"),
    (0x00090027, "SV", -(2 ** 63)),
    (0x00090028, "TM", "093015.25"),
    (0x00090029, "UC", ["unlimited", "characters"]),
    (0x0009002A, "UI", "1.2.840.10008.1.2.1"),
    (0x0009002B, "UL", [0, 2 ** 32 - 1]),
    (0x0009002C, "UN", b"\xff\xfe\xfd"),
    (0x0009002D, "UR", "http://example.invalid/a%20b"),
    (0x0009002E, "US", [0, 65535]),
    (0x0009002F, "UT", "unlimited text"),
    (0x00090030, "UV", 2 ** 64 - 1),
    (0x00090031, "LO", ""),
    (0x00090032, "SQ", [[(tags.CodeValue, "1"), (tags.CodeMeaning, "x")], []]),
]


def element_vectors():
    for explicit in (True, False):
        for tag, vr, value in ELEMENTS:
            name = "element-%s-%s-%04X" % ("ex" if explicit else "im", vr, tag & 0xFFFF)
            yield name, encode_element(tag, vr, value, explicit)
    item = [(tags.CodeValue, "T-1"), (tags.CodingSchemeDesignator, "SCT"), (tags.CodeMeaning, "Stomach")]
    for undefined in (True, False):
        yield "sequence-undefined-%s" % undefined, encode_element(
            tags.AnatomicRegionSequence, "SQ", [item, item], True, None, undefined
        )
    yield "utf8-pn", encode_dataset([(tags.PatientName, "Müller^Jürgen=山田^太郎")], True, UTF8)
    head, pad = fragment(b"\xff\xd8abc")
    yield "encapsulated-items", basic_offset_table((0, 16)) + head + pad
    yield "file-meta", file_meta("1.2.840.10008.5.1.4.1.1.7.4", INSTANCE, EXPLICIT_VR_LITTLE_ENDIAN, "MODGATE")


def encode_object(iod, pixel, width, height, count, transfer_syntax, declare, attributes=None):
    values = {
        tags.StudyInstanceUID: STUDY,
        tags.SeriesInstanceUID: SERIES,
        tags.SOPInstanceUID: INSTANCE,
        tags.PatientName: person_name("Doe", "John"),
        tags.PatientID: "ID-1",
    }
    if attributes:
        values.update(attributes)
    encoder = ObjectEncoder(
        iod, height, width, pixel, NOW, values,
        frames=count if declare else None, transfer_syntax=transfer_syntax,
    )
    out = io.BytesIO()
    out.write(encoder.header())
    for k in range(count):
        data = reference_frame(pixel, width, height, k)
        if transfer_syntax == JPEG_BASELINE_8BIT:
            data = b"\xff\xd8" + data[: 5 + k] + b"\xff\xd9"  # stand-in fragments
        for buf in encoder.frame(data):
            out.write(buf)
    trailer, patches = encoder.close()
    out.write(trailer)
    for offset, data in patches:
        out.seek(offset)
        out.write(data)
    return out.getvalue()


OBJECTS = [
    # iod, pixel, width, height, frames, transfer syntax, declared up front
    ("mf-true-color-sc", "rgb8", 8, 6, 3, EXPLICIT_VR_LITTLE_ENDIAN, False),
    ("mf-true-color-sc", "rgb8", 8, 6, 3, EXPLICIT_VR_LITTLE_ENDIAN, True),
    ("mf-grayscale-byte-sc", "mono8", 7, 5, 3, EXPLICIT_VR_LITTLE_ENDIAN, False),
    ("mf-grayscale-byte-sc", "mono8", 7, 5, 3, IMPLICIT_VR_LITTLE_ENDIAN, True),
    ("mf-grayscale-word-sc", "mono16", 8, 6, 2, EXPLICIT_VR_LITTLE_ENDIAN, False),
    ("mf-grayscale-word-sc", "mono16", 8, 6, 2, IMPLICIT_VR_LITTLE_ENDIAN, False),
    ("video-endoscopic", "rgb8", 8, 6, 4, EXPLICIT_VR_LITTLE_ENDIAN, False),
    ("video-endoscopic", "rgb8", 8, 6, 3, JPEG_BASELINE_8BIT, False),
    ("video-photographic", "rgb8", 5, 3, 2, IMPLICIT_VR_LITTLE_ENDIAN, False),
    ("vl-endoscopic", "rgb8", 8, 6, 1, EXPLICIT_VR_LITTLE_ENDIAN, False),
]


def object_vectors():
    for spec in OBJECTS:
        iod, pixel, width, height, count, ts, declare = spec
        name = "object-%s-%dx%dx%d-%s-%s" % (iod, width, height, count, ts, "declared" if declare else "patched")
        yield name, encode_object(*spec)
    yield "object-utf8", encode_object(
        "video-endoscopic", "rgb8", 4, 2, 1, EXPLICIT_VR_LITTLE_ENDIAN, False,
        {tags.PatientName: "Åström^Björn", tags.InstitutionName: "Klinikum Süd"},
    )


def rtv_vectors():
    """PS3.22: the video datagrams (both packing rules, 8- and 10-bit), a
    metadata flow's packets with fixed identities, and the two SDPs."""
    from firmware.rtv.metadata import MetadataFlow
    from firmware.rtv.sdp import metadata_sdp, video_sdp
    from firmware.rtv.st2110_20 import Packetizer

    for sampling, depth, width, height, word in (("YCbCr-4:2:2", 8, 640, 3, False), ("RGB", 8, 34, 6, False),
                                                 ("YCbCr-4:2:2", 10, 64, 3, True), ("RGB", 8, 1920, 2, False)):
        pk = Packetizer(width, height, sampling, depth, payload_type=97, ssrc=0x1234567, sequence=0xFFFE)
        n = pk.input_size
        if word:
            frame = bytes(((i * 7 + 3) & 255) if i % 2 == 0 else (i // 2) & 3 for i in range(n))
        else:
            frame = bytes((i * 7 + 3) & 255 for i in range(n))
        data = b"".join(bytes(d) for d in pk.packets(frame, 0x89ABCDEF))
        yield "rtv-video-%s-%d-%dx%d" % (sampling, depth, width, height), data
        pk.sequence = 0xFFFE
        yield "rtv-bursts-%s-%d-%dx%d" % (sampling, depth, width, height), b"".join(
            bytes(g) if size else b"".join(bytes(d) for d in g) for g, size, _ in pk.bursts(frame, 0x89ABCDEF, 5))
    flow = MetadataFlow("video-endoscopic", 1920, 1080, "ycbcr422", (30000, 1001), bytes(range(16)),
                        bytes(range(16, 32)), bytes(range(32, 48)),
                        {tags.SOPInstanceUID: INSTANCE, tags.StudyInstanceUID: STUDY, tags.SeriesInstanceUID: SERIES,
                         tags.PatientName: "Åström^Björn", tags.StudyDate: "20261123"},
                        ssrc=0xCAFE, sequence=0xFFFF, source_ae_title="MODGATE")
    origin = 1795000000 * 1000000000 + 123456789
    for k in (0, 1, 30):
        yield "rtv-metadata-%d" % k, b"".join(flow.packets(k, 3003 * k, origin + k * 33366666))
    yield "rtv-sdp", (video_sdp("239.1.1.1", 5004, 1920, 1080, (30000, 1001), "YCbCr-4:2:2", 10, ttl=4)
                      + metadata_sdp("239.1.1.1", 5006, ttl=4)).encode()


def vectors():
    for vector in element_vectors():
        yield vector
    for vector in object_vectors():
        yield vector
    for vector in rtv_vectors():
        yield vector


def main():
    for name, data in vectors():
        digest = hashlib.sha256(data).digest()
        print("%s %d %s" % (name, len(data), "".join("%02x" % b for b in digest)))


if __name__ == "__main__":
    main()
