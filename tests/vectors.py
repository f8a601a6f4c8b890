"""Test vectors for the core, run on CPython and on MicroPython: each
vector is a name and the bytes the core produces. tests/test_micropython.py
runs this file on a real MicroPython and compares every vector's bytes with
CPython's.

    PYTHONPATH=. python tests/vectors.py     prints 'name length sha256' per vector

(PYTHONPATH=.: run from a checkout, so that its firmware/ is the one
imported, not that of an editable install made elsewhere.)

What they cover: dicom/ (every VR, sequences, Part 10 objects), rtv/
(PS3.22 datagrams, metadata, SDP), net/ (association PDUs and
negotiation, DIMSE command sets, a C-STORE message cut into PDUs for
several Maximum Lengths from bytes, a file and a converted stream, the
reassembly of responses, whole requestor associations through the state
machine, the Explicit -> Implicit VR conversion) and the spool's naming
and state logic on a storage held in memory. Not covered: anything that
needs threads (firmware/compat/threads.py's _thread path: the WebAssembly
port has no _thread), sockets, files or clocks.
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
                         tags.PatientName: "Åström^Björn", tags.StudyDate: "20261123",
                         tags.ManufacturerModelName: "vectors", tags.DeviceSerialNumber: "0001",
                         tags.AcquisitionUID: INSTANCE + ".1"},
                        ssrc=0xCAFE, sequence=0xFFFF, meta_source_id=bytes(range(48, 64)),
                        acquisition_time_synchronized=True)
    origin = 1795000000 * 1000000000 + 123456789
    for k in (0, 1, 30):
        yield "rtv-metadata-%d" % k, b"".join(flow.packets(k, 3003 * k, origin + k * 33366666))
    yield "rtv-sdp", (video_sdp("239.1.1.1", 5004, 1920, 1080, (30000, 1001), "YCbCr-4:2:2", 10, ttl=4)
                      + metadata_sdp("239.1.1.1", 5006, ttl=4)).encode()
    yield "rtv-pacing", pacing_vector()


def pacing_vector():
    """ST 2110-21 on the epoch: the plans, slots, RTP timestamps and the two
    models' levels for a few formats, all integer arithmetic on numbers
    past 2^62 (TAI ns since 1970 times frame rates)."""
    from firmware.rtv import pacing
    from firmware.rtv.rtp import frame_timestamp

    lines = []
    tai = 1800000000 * 1000000000 + 12345678
    for npackets, rate, height in ((3240, (30, 1), 1080), (4320, (30000, 1001), 1080), (108, (30, 1), 240),
                                   (642, (25, 1), 480), (17280, (60, 1), 2160), (1501, (60000, 1001), 720)):
        plan = pacing.Schedule(npackets, rate, height)
        n = plan.slot(tai)
        lines.append("%d %d/%d %d: cmax %d vrx_full %d tro %d troffset %d lead %d troff %r" % (
            npackets, rate[0], rate[1], height, plan.cmax, plan.vrx_full, plan.tro_default, plan.troffset,
            plan.lead, plan.troff_us()))
        ts = frame_timestamp(n, rate)
        lines.append("  slot %d tpr0 %d ts %d back %d offsets %d %d reads %d %d" % (
            n, plan.tpr0_ns(n), ts, pacing.frame_of_timestamp(ts, tai, rate), plan.offset_ns(8),
            plan.offset_ns(npackets - 1), plan.read_ns(1), plan.read_ns(npackets - 1)))
        network = pacing.NetworkCompatibility(npackets, rate)
        buffer = pacing.VirtualReceiver(npackets, rate, plan.troffset, tolerance_ns=1000)
        for k in range(2):
            base = plan.tpr0_ns(n + k)
            arrivals = [base + plan.offset_ns(j - j % plan.burst) for j in range(npackets)]
            arrivals[npackets // 2] = base + plan.read_ns(npackets // 2) + 2000 * k  # late in the second
            for j in range(1, npackets):
                arrivals[j] = max(arrivals[j], arrivals[j - 1])
            for t in arrivals:
                network.arrive(t)
            buffer.frame(n + k, arrivals)
        lines.append("  cinst %d vrx %d late %d frames %d first %d %d" % (
            network.peak, buffer.peak, buffer.late_ns, buffer.late_frames, buffer.first_ns[0], buffer.first_ns[1]))
    return ("\n".join(lines) + "\n").encode()


# -- net/: the upper layer, DIMSE messages, the transfer syntax change ------

CALLED = "PACS"
CALLING = "MODGATE"
PEER_CLASS_UID = "1.2.826.0.1.3680043.10.1000.99"  # fixed: the vectors must not follow releases
VECTOR_CLASS_UID = "1.2.826.0.1.3680043.10.1000.98"
MAXIMUM_LENGTHS = (4096, 4097, 16384, 65536)


class MemoryReader:
    """A stored file held in memory, read as hal's ReadHandle reads one:
    read(n) from the current position, read_into(views, offset) filling the
    views in order (preadv), short only at the end. short: bytes it claims
    to have but never gives (a file that shrank while it was sent)."""

    def __init__(self, data, short=0):
        self._data = memoryview(data)
        self.size = len(data)
        self._end = self.size - short
        self._pos = 0

    def read(self, n=-1):
        end = self._end if n < 0 else min(self._end, self._pos + n)
        out = bytes(self._data[self._pos : end])
        self._pos = end
        return out

    def read_into(self, views, offset):
        total = 0
        for view in views:
            n = max(0, min(len(view), self._end - offset))
            view[:n] = self._data[offset : offset + n]  # memoryview slice assignment
            offset += n
            total += n
            if n < len(view):
                break
        return total

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MemoryStream:
    """A data set of unknown length (message_pdus' stream path): each
    read_into fills the views from where the last one ended, short only at
    the end (message_pdus takes a short read for the end, as ConvertingReader
    gives it); the offset is ignored."""

    def __init__(self, data):
        self._data = memoryview(data)
        self._pos = 0

    def read_into(self, views, offset=None):
        total = 0
        budget = len(self._data) - self._pos
        for view in views:
            n = min(len(view), budget - total)
            view[:n] = self._data[self._pos : self._pos + n]
            self._pos += n
            total += n
            if n < len(view):
                break
        return total


def pattern(n, seed=0):
    """n deterministic bytes that repeat only every 251 (a prime: no PDV
    boundary lines up with the pattern)."""
    unit = bytes(((i + seed) * 31 + 7) & 255 for i in range(251))
    return (unit * (n // 251 + 1))[:n]


def record(out, data):
    """One yielded buffer of message_pdus, framed with its length and data
    count so that the batching shows in the vector as well as the bytes."""
    return struct.pack(">II", len(out), data) + bytes(out)


def drain(pdus):
    return b"".join(record(out, data) for out, data in pdus)


def text(lines):
    return ("\n".join(lines) + "\n").encode("utf-8")


def sequence_data_set(pixels=b"\x01\x02\x03\x04"):
    """An Explicit VR LE data set with every shape of sequence the
    converter meets: defined and undefined length, nested both ways, empty
    sequences and items; long and short VRs; then Pixel Data."""
    from firmware.dicom.uid import VIDEO_ENDOSCOPIC_IMAGE

    code = [(tags.CodeValue, "T-1"), (tags.CodingSchemeDesignator, "SCT"), (tags.CodeMeaning, "Stomach")]
    inner = [(0x00091002, "LO", "inner"), (0x00091003, "SQ", [[(0x00091004, "US", 5)], []])]
    parts = [
        encode_element(tags.SOPClassUID, "UI", VIDEO_ENDOSCOPIC_IMAGE),
        encode_element(tags.SOPInstanceUID, "UI", INSTANCE),
        encode_element(tags.StudyDate, "DA", "20261123"),
        encode_element(tags.AnatomicRegionSequence, "SQ", [code, code], True, None, False),
        encode_element(0x00090010, "LO", "MODGATE"),
        encode_element(0x00091001, "SQ", [inner, []], True, None, False),
        encode_element(0x00091005, "SQ", [inner, [], code], True, None, True),
        encode_element(0x00091006, "SQ", [], True, None, False),
        encode_element(0x00091007, "SQ", [], True, None, True),
        encode_element(0x00091008, "SQ", [[(0x00091009, "SQ", [inner])]], True, None, False),
        encode_element(0x0009100A, "UT", "unlimited text"),
        encode_element(0x0009100B, "UN", b"\xff\xfe\xfd\xfc"),
        encode_element(0x0009100C, "OW", b"\x01\x00\x02\x00"),
        encode_element(0x0009100D, "FD", 2.5),
        encode_element(tags.PixelData, "OB", pixels),
    ]
    return b"".join(parts)


def part10_file(data_set, transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN):
    """A Part 10 file around data_set: (file bytes, data set offset)."""
    from firmware.dicom.uid import VIDEO_ENDOSCOPIC_IMAGE

    head = file_meta(VIDEO_ENDOSCOPIC_IMAGE, INSTANCE, transfer_syntax, "MODGATE")
    return head + data_set, len(head)


def convert(data, chunk):
    from firmware.net.convert import ExplicitToImplicit

    converter = ExplicitToImplicit()
    out = bytearray()
    for start in range(0, len(data), chunk):
        for piece in converter.feed(data[start : start + chunk]):
            out.extend(piece)
    converter.finish()
    return bytes(out)


def convert_vectors():
    """PS3.5 7.1.2 -> 7.1.3 as it streams: the same output whatever the
    chunks the input comes in (1 byte splits every header)."""
    from firmware.dicom.part10 import read_file_meta
    from firmware.net.message import ConvertingReader

    data = sequence_data_set()
    for chunk in (1, 2, 3, 7, 12, 13, 64, len(data)):
        yield "net-convert-sequences-chunk%d" % chunk, convert(data, chunk)
    for spec in OBJECTS:
        if spec[5] != EXPLICIT_VR_LITTLE_ENDIAN:
            continue
        whole = encode_object(*spec)
        offset = read_file_meta(whole[:4096]).dataset_offset
        yield "net-convert-object-%s-%dx%dx%d-%s" % (spec[0], spec[2], spec[3], spec[4], "declared" if spec[6] else "patched"), \
            convert(whole[offset:], 61)
    # ConvertingReader over a file, drained into views of awkward sizes.
    whole, offset = part10_file(sequence_data_set(pattern(3001)))
    for chunk, view_sizes in ((5, (1, 2, 3, 500)), (64, (4091,)), (4096, (1000, 7))):
        reader = ConvertingReader(MemoryReader(whole), offset, chunk)
        out = bytearray()
        k = 0
        while True:
            views = [memoryview(bytearray(size)) for size in view_sizes]
            got = reader.read_into(views, None)
            left = got
            for view in views:
                take = min(left, len(view))
                out.extend(view[:take])
                left -= take
            k += 1
            if got < sum(view_sizes):
                break
        yield "net-converting-reader-chunk%d-views%s" % (chunk, "-".join(str(s) for s in view_sizes)), \
            struct.pack(">I", k) + bytes(out)


def associate_vectors():
    """A-ASSOCIATE-RQ/-AC/-RJ, A-RELEASE, A-ABORT, and what parsing them and
    negotiating says (PS3.8 9.3, PS3.7 Annex D)."""
    from firmware.dicom.uid import VERIFICATION, VIDEO_ENDOSCOPIC_IMAGE, VL_ENDOSCOPIC_IMAGE
    from firmware.net import acse, pdu

    contexts = acse.propose([(VERIFICATION, IMPLICIT_VR_LITTLE_ENDIAN), (VIDEO_ENDOSCOPIC_IMAGE, EXPLICIT_VR_LITTLE_ENDIAN),
                             (VL_ENDOSCOPIC_IMAGE, JPEG_BASELINE_8BIT)])
    for maximum_length in (0,) + MAXIMUM_LENGTHS:
        yield "net-associate-rq-%d" % maximum_length, acse.associate_rq(
            CALLED, CALLING, contexts, maximum_length, VECTOR_CLASS_UID, "MODGATE_VEC")
    rq = acse.associate_rq(CALLED, CALLING, contexts, 16384, VECTOR_CLASS_UID, None)
    yield "net-associate-rq-no-version-name", rq
    results = [(1, 0, IMPLICIT_VR_LITTLE_ENDIAN), (3, 4, None), (5, 0, IMPLICIT_VR_LITTLE_ENDIAN),
               (7, 3, None), (9, 0, JPEG_BASELINE_8BIT)]
    ac = pdu.a_associate_ac(CALLED, CALLING, results, pdu.user_information(4097, PEER_CLASS_UID, "PEER_1"))
    yield "net-associate-ac", ac
    lines = []
    for raw in (rq, ac):
        pdu_type, body = pdu.PDUFramer(65536).feed(raw)[0]
        info = pdu.parse_associate(pdu_type, body)
        lines.append(describe_info(pdu.PDU_NAMES[pdu_type], info))
    negotiated = acse.Negotiated(contexts, pdu.parse_associate(pdu.A_ASSOCIATE_AC, ac[6:]))
    lines.append("accepted %s" % sorted(negotiated.accepted.items()))
    lines.append("refused %s" % sorted(negotiated.refused.items()))
    lines.append("peer maximum length %d" % negotiated.peer_maximum_length)
    for sop_class, ts in ((VIDEO_ENDOSCOPIC_IMAGE, EXPLICIT_VR_LITTLE_ENDIAN), (VERIFICATION, IMPLICIT_VR_LITTLE_ENDIAN),
                          (VL_ENDOSCOPIC_IMAGE, JPEG_BASELINE_8BIT), (VL_ENDOSCOPIC_IMAGE, EXPLICIT_VR_LITTLE_ENDIAN)):
        lines.append("choose %s %s -> %s" % (sop_class, ts, negotiated.choose(sop_class, ts)))
    lines.append(negotiated.why_not(VL_ENDOSCOPIC_IMAGE))
    lines.append(negotiated.why_not("1.2.3"))
    yield "net-associate-negotiated", text(lines)
    yield "net-release-abort-reject", pdu.a_release_rq() + pdu.a_release_rp() + pdu.a_abort(2, 6) + \
        pdu.a_associate_rj(1, 1, 7) + pdu.a_associate_rj(2, 3, 1)
    lines = [str(acse.Rejection(*args)) for args in ((1, 1, 7), (1, 1, 3), (2, 3, 1), (2, 2, 2), (1, 9, 9))]
    lines += [acse.describe_abort(*args) for args in ((0, 0), (2, 1), (2, 6), (2, 3), (5, 0))]
    yield "net-reject-abort-names", text(lines)


def describe_info(name, info):
    return "%s called=%s calling=%s context=%s max=%d class=%s version=%s contexts=%s" % (
        name, info.called_ae_title, info.calling_ae_title, info.application_context, info.maximum_length,
        info.implementation_class_uid, info.implementation_version_name, sorted(info.contexts.items()))


def dimse_vectors():
    from firmware.dicom.uid import VIDEO_ENDOSCOPIC_IMAGE
    from firmware.net import dimse

    rq = dimse.c_store_rq(7, VIDEO_ENDOSCOPIC_IMAGE, INSTANCE)
    yield "net-c-store-rq", rq
    yield "net-c-store-rq-high", dimse.c_store_rq(0xFFFF, VIDEO_ENDOSCOPIC_IMAGE, INSTANCE + "9", 1)
    yield "net-c-echo-rq", dimse.c_echo_rq(1)
    rsp = store_response(7, 0xB000)
    yield "net-c-store-rsp", rsp
    lines = [describe_command(dimse.parse_command(c)) for c in (rq, dimse.c_echo_rq(1), rsp)]
    for status in (0x0000, 0x0001, 0xB000, 0xB006, 0xB123, 0xA700, 0xA7FF, 0xA900, 0xC000, 0xC123, 0xFE00,
                   0x0122, 0x0211, 0x1234, 0xFFFF):
        lines.append("%04X %s %s" % ((status,) + dimse.status_class(status)))
    yield "net-dimse-parsed", text(lines)


def store_response(message_id, status, comment=None, data_set_type=None):
    from firmware.dicom.uid import VIDEO_ENDOSCOPIC_IMAGE
    from firmware.net import dimse

    elements = [
        (dimse.AffectedSOPClassUID, VIDEO_ENDOSCOPIC_IMAGE),
        (dimse.CommandField, dimse.C_STORE_RSP),
        (dimse.MessageIDBeingRespondedTo, message_id),
        (dimse.CommandDataSetType, dimse.NO_DATA_SET if data_set_type is None else data_set_type),
        (dimse.Status, status),
        (dimse.AffectedSOPInstanceUID, INSTANCE),
    ]
    if comment:
        elements.append((dimse.ErrorComment, comment))
    return dimse.command_set(elements)


def describe_command(command):
    return "command " + " ".join("%04X=%s" % (tag, value) for tag, value in sorted(command.items()))


def fragment_vectors():
    """A C-STORE message cut into P-DATA-TF PDUs (PS3.8 9.3.5, Annex E) for
    several Maximum Lengths (even, odd, ours or the peer's the smaller), its
    data set given as bytes, as a file of known size read in batches (one
    PDU a batch, a few, the default), and as a stream whose last full PDV
    is held back: sizes on each side of the PDV and batch boundaries."""
    from firmware.dicom.uid import VIDEO_ENDOSCOPIC_IMAGE
    from firmware.net import dimse
    from firmware.net.message import BATCH, PDU_OVERHEAD, ConvertingReader, _slots, message_pdus, pdv_limit

    command = dimse.c_store_rq(3, VIDEO_ENDOSCOPIC_IMAGE, INSTANCE)
    lines = []
    for ours in MAXIMUM_LENGTHS:
        for peer in (0, 4097, 16384, 1 << 20):
            lines.append("pdv_limit(%d, %d) = %d" % (ours, peer, pdv_limit(ours, peer)))
    yield "net-pdv-limits", text(lines)
    for maximum_length in MAXIMUM_LENGTHS:
        limit = pdv_limit(maximum_length, 0)
        sizes = (0, 1, limit - 1, limit, limit + 1, 2 * limit + 1)
        out = []
        for size in sizes:
            out.append(drain(message_pdus(5, command, pattern(size), limit)))
        yield "net-pdus-bytes-%d" % maximum_length, b"".join(out)
        for batch in (1, 3 * (limit + PDU_OVERHEAD) + 5, BATCH):
            slots = _slots(limit, batch, 1 << 30)
            edge = slots * limit
            file_sizes = sorted(set(sizes + (edge - 1, edge, edge + 1, 2 * edge + 1)))
            whole = pattern(2 * edge + 1 + 300, 1)
            out = []
            for size in file_sizes:
                # The data set starts 300 bytes in (after a file's meta information).
                out.append(drain(message_pdus(5, command, MemoryReader(whole), limit, 300, size, batch)))
            yield "net-pdus-file-%d-batch%d" % (maximum_length, batch), b"".join(out)
            slots = max(2, _slots(limit, batch, batch))
            edge = slots * limit
            stream_sizes = sorted(set(sizes + (edge - limit, edge - 1, edge, edge + 1, 2 * edge - limit, 2 * edge)))
            out = []
            for size in stream_sizes:
                out.append(drain(message_pdus(5, command, MemoryStream(pattern(size, 2)), limit, batch=batch)))
            yield "net-pdus-stream-%d-batch%d" % (maximum_length, batch), b"".join(out)
    # Explicit -> Implicit as it streams, the association's way: the
    # converter reads a chunk of a PDV's length at a time.
    whole, offset = part10_file(sequence_data_set(pattern(140001, 3)))
    for maximum_length in MAXIMUM_LENGTHS:
        limit = pdv_limit(maximum_length, 0)
        for batch in (1, 3 * (limit + PDU_OVERHEAD), BATCH):
            reader = ConvertingReader(MemoryReader(whole), offset, limit)
            yield "net-pdus-converted-%d-batch%d" % (maximum_length, batch), drain(
                message_pdus(5, command, reader, limit, batch=batch))


def reassembly_vectors():
    """Responses split across several PDUs and PDVs, reassembled
    (PS3.8 E.2), and what MessageReader refuses."""
    from firmware.net import dimse, pdu
    from firmware.net.message import MessageReader, message_pdus

    lines = []
    rsp = store_response(7, 0xB007, "Data Set does not match SOP Class")
    for limit in (1, 2, 7, 16, len(rsp) - 1, len(rsp)):
        pdus = b"".join(bytes(out) for out, _ in message_pdus(1, rsp, None, limit))
        lines.append(reassemble(pdus, 5, MessageReader()))
    # Several PDVs in one PDU, a response with a data set, two messages in one feed.
    command = store_response(9, 0x0000, None, dimse.DATA_SET_PRESENT)
    data_set = encode_dataset([(tags.PatientID, "ID-1"), (tags.PatientName, "Doe^Jane")], False)
    joined = pdu.p_data_tf([(3, 1, command[:10]), (3, 3, command[10:]), (3, 0, data_set[:5])]) + \
        pdu.p_data_tf([(3, 0, data_set[5:9]), (3, 2, data_set[9:])]) + \
        pdu.p_data_tf([(1, 3, rsp)])
    lines.append(reassemble(joined, 3, MessageReader(64)))
    reader = MessageReader(8)
    errors = [
        ("data before the command", [(1, 0, b"x")]),
        ("another context", [(1, 1, command[:10]), (3, 1, command[10:])]),
        ("command after the command", [(1, 3, command), (1, 1, b"")]),
        ("oversize data set", [(1, 3, command), (1, 0, b"123456789")]),
        ("oversize command", [(1, 1, bytes(dimse.MAX_COMMAND_SET)), (1, 1, b"x")]),
        ("bad command", [(1, 3, b"\x00\x00\x00\x00\x04\x00\x00\x00")]),
    ]
    for what, pdvs in errors:
        reader = MessageReader(8)
        try:
            for pdv in pdvs:
                reader.add(*pdv)
            lines.append("%s: accepted" % what)
        except dimse.DIMSEError as err:
            lines.append("%s: %s %s" % (what, type(err).__name__, err))
    yield "net-reassembly", text(lines)


def reassemble(data, chunk, reader):
    """Feed data to a framer chunk bytes at a time; the messages, described."""
    from firmware.net import pdu

    framer = pdu.PDUFramer(65536)
    found = []
    for start in range(0, len(data), chunk):
        for pdu_type, body in framer.feed(data[start : start + chunk]):
            for pdv in pdu.parse_p_data(body):
                whole = reader.add(*pdv)
                if whole is not None:
                    context_id, command, data_set = whole
                    found.append("context %d %s data %s" % (
                        context_id, describe_command(command),
                        "none" if data_set is None else hex_digest(data_set)[:16]))
    return " | ".join(found)


def association_vectors():
    """Whole requestor associations through the state machine: request,
    connect, an A-ASSOCIATE-AC fed in pieces, a C-STORE (its data set as
    it is on file, or converted for a peer that took only Implicit VR),
    a C-STORE-RSP in several PDUs, a C-ECHO, release. The bytes modgate
    sends are one vector, what it saw (events, states) another."""
    from firmware.dicom.uid import VERIFICATION, VIDEO_ENDOSCOPIC_IMAGE
    from firmware.net import acse, dimse, pdu
    from firmware.net.fsm import StateMachine
    from firmware.net.message import ConvertingReader, MessageReader, message_pdus, pdv_limit

    whole, offset = part10_file(sequence_data_set(pattern(20011, 4)))
    for peer_ts in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN):
        sent = []
        lines = []
        machine = StateMachine(16384)

        def take():
            for buf in machine.data_to_send():
                sent.append(bytes(buf))  # the views are reused by the next batch

        def events():
            found = []
            while True:
                event = machine.next_event()
                if event is None:
                    return found
                found.append(event)

        contexts = acse.propose([(VERIFICATION, IMPLICIT_VR_LITTLE_ENDIAN), (VIDEO_ENDOSCOPIC_IMAGE, EXPLICIT_VR_LITTLE_ENDIAN)])
        machine.request(acse.associate_rq(CALLED, CALLING, contexts, 16384, VECTOR_CLASS_UID, "MODGATE_VEC"))
        lines.append("request: %s want_connect=%s" % (machine.state, machine.want_connect))
        machine.connected()
        take()
        results = [(c[0], 0 if c[2][0] == peer_ts or c[1] == VERIFICATION else 4,
                    c[2][0] if c[2][0] == peer_ts or c[1] == VERIFICATION else None) for c in contexts]
        ac = pdu.a_associate_ac(CALLED, CALLING, results, pdu.user_information(4097, PEER_CLASS_UID, "PEER_1"))
        for start in range(0, len(ac), 7):
            machine.receive(ac[start : start + 7])
        (event,) = events()
        negotiated = acse.Negotiated(contexts, event[1])
        lines.append("%s: %s %s" % (event[0], machine.state, sorted(negotiated.accepted.items())))
        limit = pdv_limit(16384, negotiated.peer_maximum_length)
        context_id, ts = negotiated.choose(VIDEO_ENDOSCOPIC_IMAGE, EXPLICIT_VR_LITTLE_ENDIAN)
        command = dimse.c_store_rq(1, VIDEO_ENDOSCOPIC_IMAGE, INSTANCE)
        if ts == EXPLICIT_VR_LITTLE_ENDIAN:
            pdus = message_pdus(context_id, command, MemoryReader(whole), limit, offset, len(whole) - offset, 3 * limit)
        else:
            pdus = message_pdus(context_id, command, ConvertingReader(MemoryReader(whole), offset, limit), limit,
                                batch=3 * limit)
        count = 0
        for out, data in pdus:
            machine.send_data(out)
            take()
            count += data
        lines.append("sent context %d as %s: %d data set bytes, limit %d" % (context_id, ts, count, limit))
        reader = MessageReader()
        rsp = store_response(1, 0xB000, "coerced")
        response = pdu.p_data_tf([(context_id, 1, rsp[:20])]) + pdu.p_data_tf([(context_id, 1, rsp[20:50])]) + \
            pdu.p_data_tf([(context_id, 3, rsp[50:])])
        for start in range(0, len(response), 11):
            machine.receive(response[start : start + 11])
            for event in events():
                for pdv in event[1]:
                    whole_message = reader.add(*pdv)
                    if whole_message is not None:
                        lines.append("response on %d: %s" % (whole_message[0], describe_command(whole_message[1])))
        for out, _ in message_pdus(1, dimse.c_echo_rq(2), None, limit):
            machine.send_data(out)
        take()
        echo = dimse.command_set([(dimse.AffectedSOPClassUID, VERIFICATION), (dimse.CommandField, dimse.C_ECHO_RSP),
                                  (dimse.MessageIDBeingRespondedTo, 2), (dimse.CommandDataSetType, dimse.NO_DATA_SET),
                                  (dimse.Status, 0)])
        machine.receive(pdu.p_data_tf([(1, 3, echo)]))
        for event in events():
            lines.append("echo response: %s" % describe_command(reader.add(*event[1][0])[1]))
        machine.release()
        take()
        lines.append("release: %s" % machine.state)
        machine.receive(pdu.a_release_rp())
        lines.append("%s: %s close_transport=%s" % (events()[0][0], machine.state, machine.close_transport))
        lines.append("history " + " ".join("%s/%s/%s" % h for h in machine.history))
        name = "net-association-%s" % ("explicit" if peer_ts == EXPLICIT_VR_LITTLE_ENDIAN else "implicit")
        yield name + "-sent", b"".join(sent)
        yield name + "-transcript", text(lines)
    # A peer that breaks the protocol: an oversized P-DATA-TF, then an
    # unknown PDU type; each ends in our A-ABORT (AA-8) before anything
    # of it is kept.
    lines = []
    sent = []
    for bad in (pdu.p_data_tf([(1, 3, bytes(16384))]), b"\x09\x00\x00\x00\x00\x04abcd",
                b"HTTP/1.1 400 Bad Request\r\n\r\n", pdu.a_associate_ac(CALLED, CALLING, [], b"")):
        machine = StateMachine(16384)
        machine.request(acse.associate_rq(CALLED, CALLING, [(1, VERIFICATION, [IMPLICIT_VR_LITTLE_ENDIAN])], 16384,
                                          VECTOR_CLASS_UID, "MODGATE_VEC"))
        machine.connected()
        machine.receive(pdu.a_associate_ac(CALLED, CALLING, [(1, 0, IMPLICIT_VR_LITTLE_ENDIAN)],
                                           pdu.user_information(0, PEER_CLASS_UID)))
        machine.data_to_send()
        machine.receive(bad)
        sent.extend(bytes(b) for b in machine.data_to_send())
        found = []
        while True:
            event = machine.next_event()
            if event is None:
                break
            found.append(" ".join(str(e) if not hasattr(e, "contexts") else "info" for e in event))
        lines.append("%s artim=%s: %s" % (machine.state, machine.artim_running, "; ".join(found)))
    yield "net-association-provider-abort-sent", b"".join(sent)
    yield "net-association-provider-abort-transcript", text(lines)


# -- the spool's naming and state, on a storage held in memory ------------


class MemoryFile:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def write(self, data):
        end = self.pos + len(data)
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        self.data[self.pos : end] = data
        self.pos = end
        return len(data)

    def seek(self, offset, whence=0):
        self.pos = offset if whence == 0 else len(self.data) + offset
        return self.pos

    def tell(self):
        return self.pos

    def close(self):
        pass


class MemoryStorage:
    """hal/storage.py's interface over dicts: what the spool does with its
    files is pure logic once the file system is data."""

    def __init__(self, free=1 << 30):
        self.root = "mem:"
        self.free = free
        self.dirs = set([""])
        self.blobs = {}  # path -> bytearray

    def _missing(self, name):
        import errno

        return OSError(errno.ENOENT, name)

    def path(self, name):
        return self.root + name

    def makedirs(self, name):
        self.dirs.add(name)

    def open_new(self, name):
        if self.exists(name):
            raise OSError(17, name)
        self.blobs[name] = bytearray()
        return MemoryFile(self.blobs[name])

    def open_read(self, name):
        if name not in self.blobs:
            raise self._missing(name)
        return MemoryReader(bytes(self.blobs[name]))

    def sync(self, f):
        pass

    def rename(self, src, dst):
        if src not in self.blobs:
            raise self._missing(src)
        if dst.rpartition("/")[0] not in self.dirs:
            raise self._missing(dst)
        self.blobs[dst] = self.blobs.pop(src)

    def remove(self, name):
        if name not in self.blobs:
            raise self._missing(name)
        del self.blobs[name]

    def _children(self, name, kinds):
        prefix = name + "/" if name else ""
        found = set()
        for path in kinds:
            if path and path.startswith(prefix) and "/" not in path[len(prefix):]:
                found.add(path[len(prefix):])
        return sorted(found)

    def listdir(self, name):
        return self._children(name, list(self.blobs) + list(self.dirs))

    def files(self, name):
        return self._children(name, self.blobs)

    def write_new(self, name, data):
        f = self.open_new(name)
        f.write(data)

    def size(self, name):
        if name not in self.blobs:
            raise self._missing(name)
        return len(self.blobs[name])

    def exists(self, name):
        return name in self.blobs or name in self.dirs

    def free_bytes(self):
        return self.free - sum(len(b) for b in self.blobs.values())


SPOOL_NAMES = ["000000000001.dcm", "000000000007.f3.dcm", "999999999999.f12.dcm", "1.dcm", "0001.dcm",
               "000000000001.f0.dcm", "000000000001.f02.dcm", "000000000001.f.dcm", "000000000001.g1.dcm",
               "000000000001.dcm.part", "000000000001.f1.x.dcm", "x.dcm", ".dcm", "000000000001",
               "\u00b2.dcm", "00000000000\u00b2.dcm", "000000000001.f\u00b2.dcm", "00000000000\u0661.dcm",
               "1000000000000.dcm", "-00000000001.dcm", "+00000000001.dcm", " 00000000001.dcm"]


def spool_vectors():
    from firmware import spool

    lines = []
    for sequence, failures in ((1, 0), (7, 3), (999999999999, 12), (10 ** 12, 1), (0, 0)):
        lines.append("make_name(%d, %d) = %s" % (sequence, failures, spool.make_name(sequence, failures)))
    for name in SPOOL_NAMES:
        lines.append("parse_name(%s) = %s" % (name, spool.parse_name(name)))
    lines.append("by sequence: %s" % " ".join(spool._by_sequence(
        ["000000000010.dcm", "x.dcm", "000000000002.f4.dcm", "000000000009.dcm", "1.dcm", "000000000003.f1.dcm"])))
    for value in (("20261123093015.25+0100", None, None), ("202611230930", None, None), ("20261123", None, None),
                  ("2026", None, None), (None, "20261123", "093015.5"), (None, "20261123", None),
                  (None, None, "093015"), ("2026112309301x", None, None), (None, None, None)):
        lines.append("recorded %s = %s" % (value, spool._recorded(*value)))
    yield "spool-names", text(lines)
    yield "spool-states", text(spool_transcript())


def spool_transcript():
    """A spool's life on a storage in memory: claiming the folder, record,
    queue order, failures to quarantine and back, full, kept sent objects,
    names that are not its own, a restart."""
    from firmware import spool as spool_module
    from firmware.spool import QUARANTINE, QUEUE, SENT, TMP, Spool, SpoolError, SpoolFull, check_root

    lines = []
    log = lines.append

    def state(what, spool):
        log("%s: pending=%s quarantined=%s sent=%s used=%d alarm=%s" % (
            what, spool.pending(), spool.quarantined(), spool.storage.files(SENT), spool.used_bytes(), spool.alarm))

    foreign = MemoryStorage()
    foreign.write_new("notes.txt", b"mine")
    foreign.makedirs(QUEUE)
    foreign.write_new(QUEUE + "/1.dcm", b"x")
    log("check_root foreign: %s" % check_root(foreign))
    try:
        Spool(foreign, 1000, log=log)
    except SpoolError as err:
        log("refused: %s" % err)
    log("check_root empty: %s" % check_root(MemoryStorage()))

    storage = MemoryStorage(free=1 << 20)
    spool = Spool(storage, 2000, max_failures=2, retain_sent=1, log=log)
    state("new", spool)

    def put(data, expected=0):
        rec = spool.begin(expected)
        rec.write(data)
        rec.seek(0)
        rec.write(data[:1].upper())
        return rec.commit()

    a = put(b"a" * 100)
    b = put(b"b" * 200, 200)
    c = put(b"c" * 300)
    state("three", spool)
    rec = spool.begin(300)
    state("recording", spool)
    try:
        spool.begin(1200)
    except SpoolFull as err:
        log("full: %s" % err)
    try:
        spool.begin(1200)
    except SpoolFull as err:
        log("full again (logged once): %s" % err)
    rec.write(b"d" * 10)
    rec.abandon()
    state("abandoned", spool)
    a1 = spool.failed(a, "failure C000 for %s" % INSTANCE)
    log("failed once: %s" % a1)
    log("failed twice: %s" % spool.failed(a1, "association aborted"))
    log("failed(not ours): %s" % spool.failed("1.dcm", "x"))
    state("quarantine", spool)
    log(spool.retry(spool.quarantined()[0]))
    log(spool.retry("000000000099.dcm"))
    state("retried", spool)
    spool.stored(b)
    spool.stored(c)
    state("stored", spool)
    obj = encode_object("video-endoscopic", "rgb8", 4, 2, 1, EXPLICIT_VR_LITTLE_ENDIAN, False)
    d = put(obj)
    spool.failed(d, "failure A700 Refused: out of resources")
    described = spool.describe(spool.pending()[-1])
    log("describe " + " ".join("%s=%s" % item for item in sorted(described.items())))
    log("describe gone: %s" % spool.describe("000000000077.dcm"))
    try:
        spool.describe("1.dcm")
    except ValueError as err:
        log("describe: %s" % err)
    # Someone else's names, a tmp object cut off by a power loss, a queue
    # name that is taken: a restart.
    storage.write_new(QUEUE + "/1.dcm", b"user")
    storage.write_new(TMP + "/000000000050.dcm", b"half")
    storage.write_new(TMP + "/readme", b"user")
    storage.makedirs(QUEUE + "/000000000060.dcm")
    spool = Spool(storage, 2000, max_failures=2, retain_sent=1, log=log)
    state("restart", spool)
    log("unknown: %s" % spool.unknown())
    e = put(b"e" * 10)
    log("next name: %s" % e)
    spool.failed(e, "x")
    spool.failed(spool.pending()[-1], "y")
    log("purged %d" % spool.purge_quarantine())
    storage.remove(QUEUE + "/" + spool.pending()[0])
    spool.stored(spool_module.make_name(1, 0))
    state("vanished", spool)
    return lines


def net_vectors():
    for group in (associate_vectors, dimse_vectors, fragment_vectors, reassembly_vectors, association_vectors,
                  convert_vectors):
        for vector in group():
            yield vector


def _show(value):
    """A decoded data set as text whatever the port's dict order."""
    if isinstance(value, dict):
        return "{" + ", ".join("%08X: %s" % (tag, _show(value[tag])) for tag in sorted(value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + "".join(c if 32 <= ord(c) < 127 else "\\u%04x" % ord(c) for c in value) + "'"
    return repr(value)


def worklist_vectors():
    """The Modality Worklist query's identifier, and data sets read back
    (firmware/dicom/decode.py): Latin-1, UTF-8 and no Specific Character
    Set, Explicit and Implicit VR, nested sequences."""
    from firmware.dicom.decode import decode_dataset
    from firmware.services.worklist import Query, item_from

    for explicit in (True, False):
        kind = "explicit" if explicit else "implicit"
        raw = Query("MODGATE", "ES", "20261126-20261127", "P1", "A1").identifier(explicit)
        yield "worklist-identifier-" + kind, raw
        yield "worklist-decoded-" + kind, text([_show(decode_dataset(raw, explicit))])
    name_latin1 = bytes([0x4D, 0xFC, 0x6C, 0x6C, 0x65, 0x72, 0x5E, 0x4A, 0xFC, 0x72, 0x67, 0x65, 0x6E, 0x20])
    name_utf8 = "Ørsted^Zoë 李".encode("utf-8")
    if len(name_utf8) & 1:
        name_utf8 += b" "
    for label, charset, name in (("latin1", b"ISO_IR 100", name_latin1), ("utf8", b"ISO_IR 192", name_utf8),
                                 ("none-latin1", None, name_latin1), ("none-utf8", None, name_utf8)):
        head = b""
        if charset is not None:
            head = struct.pack("<HH2sH", 0x0008, 0x0005, b"CS", len(charset)) + charset
        step = struct.pack("<HH2sH", 0x0040, 0x0009, b"SH", 4) + b"SPS1"
        data = (head + struct.pack("<HH2sH", 0x0010, 0x0010, b"PN", len(name)) + name
                + struct.pack("<HH2sHI", 0x0040, 0x0100, b"SQ", 0, 0xFFFFFFFF)
                + struct.pack("<HHI", 0xFFFE, 0xE000, len(step)) + step
                + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
        item = item_from(decode_dataset(data, True))
        yield "worklist-item-" + label, text(["%s = %s" % (k, _show(item[k])) for k in sorted(item)])
        if label == "utf8":
            # The MPPS attribute lists made from that item (services/mpps.py).
            from firmware.dicom.element import encode_dataset
            from firmware.dicom.vr import UTF8
            from firmware.services import mpps

            item["StudyInstanceUID"] = "1.2.826.0.1.3680043.10.77.100"
            now = (2026, 11, 26, 9, 30, 15, 0)
            created = mpps.in_progress(item, "MODGATE", "ROOM1", "ES", "PPS-1", now)
            done = mpps.completed(now, [("1.2.3.4", "Video", "Colonoscopy", [("1.2.840.10008.5.1.4.1.1.77.1.1.1",
                                                                           "1.2.3.4.1")])])
            yield "mpps-n-create-utf8", encode_dataset(created, True, UTF8)
            yield "mpps-n-set-completed", encode_dataset(done, False)


def vectors():
    for vector in element_vectors():
        yield vector
    for vector in object_vectors():
        yield vector
    for vector in rtv_vectors():
        yield vector
    for vector in net_vectors():
        yield vector
    for vector in spool_vectors():
        yield vector
    for vector in worklist_vectors():
        yield vector


def hex_digest(data):
    # MicroPython's sha256 has digest() but no hexdigest().
    return "".join("%02x" % b for b in hashlib.sha256(data).digest())


def main():
    for name, data in vectors():
        print("%s %d %s" % (name, len(data), hex_digest(data)))


if __name__ == "__main__":
    main()
