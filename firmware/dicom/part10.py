"""The DICOM File Format header (PS3.10 7.1): preamble, 'DICM' prefix and
File Meta Information."""

from firmware.dicom import tags
from firmware.dicom.element import encode_dataset, encode_element
from firmware.dicom.uid import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

PREAMBLE_LENGTH = 128
PREFIX = b"DICM"


def file_meta(sop_class_uid, sop_instance_uid, transfer_syntax_uid, source_ae_title=None, extra=()):
    """Preamble, prefix and group 0002, always Explicit VR Little Endian
    (PS3.10 7.1), with modgate's implementation identity. extra holds more
    group 0002 elements (the real-time meta information of PS3.10 7.3 adds
    some)."""
    meta = [
        (tags.FileMetaInformationVersion, b"\x00\x01"),
        (tags.MediaStorageSOPClassUID, sop_class_uid),
        (tags.MediaStorageSOPInstanceUID, sop_instance_uid),
        (tags.TransferSyntaxUID, transfer_syntax_uid),
        (tags.ImplementationClassUID, IMPLEMENTATION_CLASS_UID),
        (tags.ImplementationVersionName, IMPLEMENTATION_VERSION_NAME),
    ]
    if source_ae_title:
        meta.append((tags.SourceApplicationEntityTitle, source_ae_title))
    meta.extend(extra)
    return meta_information(meta)


def meta_information(elements):
    """Preamble, 'DICM' and a group 0002 made of elements, its group length
    first: the header both of a Part 10 file (PS3.10 7.1) and of a
    real-time payload's RTV Meta Information (PS3.10 7.3, PS3.22)."""
    body = encode_dataset(elements, explicit=True)
    # PS3.10 7.1: the group length counts the bytes after its own element.
    length = encode_element(tags.FileMetaInformationGroupLength, "UL", len(body))
    return bytes(PREAMBLE_LENGTH) + PREFIX + length + body


MAX_FILE_META = 64 * 1024  # far more than any group 0002 needs


class FileMeta:
    """What the File Meta Information of a Part 10 file says, and where its
    data set starts."""

    def __init__(self):
        self.sop_class_uid = None
        self.sop_instance_uid = None
        self.transfer_syntax_uid = None
        self.dataset_offset = 0


def read_file_meta(head):
    """Parse the File Meta Information from the first bytes of a Part 10
    file (PS3.10 7.1). head must hold the whole group 0002; 132 + 12 bytes
    tell its length, MAX_FILE_META bounds it. Raises ValueError if this is
    not a Part 10 file."""
    import struct

    if len(head) < PREAMBLE_LENGTH + 16 or bytes(head[128:132]) != PREFIX:
        raise ValueError("not a DICOM Part 10 file (no 'DICM' after the preamble)")
    group, elem, vr = struct.unpack("<HH2s", head[132:138])
    if (group, elem, vr) != (2, 0, b"UL"):
        raise ValueError("File Meta Information does not start with its group length")
    (length,) = struct.unpack("<I", head[140:144])
    end = 144 + length
    if end > MAX_FILE_META:
        raise ValueError("File Meta Information of %d bytes" % length)
    if end > len(head):
        raise ValueError("File Meta Information runs past the %d bytes given" % len(head))
    meta = FileMeta()
    meta.dataset_offset = end
    pos = 144
    while pos < end:
        if end - pos < 8:
            raise ValueError("truncated File Meta Information element")
        group, elem, vr = struct.unpack("<HH2s", head[pos : pos + 6])
        if group != 2:
            raise ValueError("element (%04X,%04X) inside the File Meta Information" % (group, elem))
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
            (vlen,) = struct.unpack("<I", head[pos + 8 : pos + 12])
            pos += 12
        else:
            (vlen,) = struct.unpack("<H", head[pos + 6 : pos + 8])
            pos += 8
        if pos + vlen > end:
            raise ValueError("File Meta Information element (0002,%04X) overruns the group" % elem)
        value = bytes(head[pos : pos + vlen]).rstrip(b"\x00 ").decode("ascii", "replace")
        pos += vlen
        if elem == 0x0002:
            meta.sop_class_uid = value
        elif elem == 0x0003:
            meta.sop_instance_uid = value
        elif elem == 0x0010:
            meta.transfer_syntax_uid = value
    if not (meta.sop_class_uid and meta.sop_instance_uid and meta.transfer_syntax_uid):
        raise ValueError("File Meta Information lacks the SOP class, instance or transfer syntax")
    return meta
