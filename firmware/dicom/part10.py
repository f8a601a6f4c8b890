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


# The few attributes a spool listing shows, read back from a file's head.
SUMMARY_TAGS = (
    tags.SOPInstanceUID,
    tags.ContentDate,
    tags.AcquisitionDateTime,
    tags.ContentTime,
    tags.PatientName,
    tags.PatientID,
)
MAX_HEAD = 64 * 1024  # read_attributes looks no further than this
_UNDEFINED = 0xFFFFFFFF  # PS3.5 7.1.1
# PS3.5 7.1.2: VRs with a 2-byte reserved field and a 4-byte length.
_LONG_VRS = (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
# PS3.5 6.1.2.3: the VRs whose text Specific Character Set applies to.
_CHARSET_VRS = ("LO", "LT", "PN", "SH", "ST", "UC", "UT")
_IMPLICIT = "1.2.840.10008.1.2"
# PS3.5 A.3 (Big Endian, retired) and A.5 (Deflated): not walkable as
# plain little-endian elements.
_UNWALKABLE = ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")


def read_attributes(head, wanted=SUMMARY_TAGS):
    """{tag: text} for the wanted top-level text elements found in head, the
    first bytes of a Part 10 file (at most MAX_HEAD are looked at). Walks
    the data set in Explicit or Implicit VR Little Endian and stops at
    Pixel Data, past the last wanted tag, or where the bytes end or stop
    making sense: never raises on garbage, returns what it found."""
    import struct

    found = {}
    head = memoryview(head)[:MAX_HEAD]
    try:
        meta = read_file_meta(head)
    except ValueError:
        return found
    if meta.transfer_syntax_uid in _UNWALKABLE:
        return found
    explicit = meta.transfer_syntax_uid != _IMPLICIT
    last = max(wanted) if wanted else 0
    utf8 = latin1 = False
    depth = 0  # inside how many undefined-length sequences and items
    pos = meta.dataset_offset
    end = len(head)
    while pos + 8 <= end:
        group, elem, length = struct.unpack("<HHI", head[pos : pos + 8])
        tag = group << 16 | elem
        if group == 0xFFFE:
            # PS3.5 7.5: Item and delimiters carry no VR in either encoding.
            pos += 8
            if elem == 0xE000:
                if length == _UNDEFINED:
                    depth += 1
                elif depth:
                    pos += length
                else:
                    break  # an item outside any sequence: not a data set
            elif elem in (0xE00D, 0xE0DD) and depth:
                depth -= 1
            else:
                break
            continue
        if depth == 0 and (tag >= tags.PixelData or tag > last):
            break  # elements come in ascending tag order (PS3.5 7.1)
        if explicit:
            vr = bytes(head[pos + 4 : pos + 6])
            if not (b"A" <= vr[:1] <= b"Z" and b"A" <= vr[1:] <= b"Z"):
                break
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    break
                (length,) = struct.unpack("<I", head[pos + 8 : pos + 12])
                pos += 12
            else:
                (length,) = struct.unpack("<H", head[pos + 6 : pos + 8])
                pos += 8
            vr = vr.decode()
        else:
            vr = tags.VR.get(tag)
            pos += 8
        if length == _UNDEFINED:
            # PS3.5 7.5.1: only a sequence may be of undefined length here
            # (an undefined-length UN holds Implicit VR we do not walk).
            if vr not in ("SQ", None):
                break
            depth += 1
            continue
        if pos + length > end:
            break
        if depth == 0:
            raw = bytes(head[pos : pos + length])
            if tag == tags.SpecificCharacterSet:
                # PS3.3 C.12.1.1.2: the terms may be multi-valued.
                terms = _ascii(raw).strip().split("\\")
                utf8 = "ISO_IR 192" in terms
                latin1 = "ISO_IR 100" in terms
            elif tag in wanted:
                if vr in _CHARSET_VRS and utf8:
                    found[tag] = _utf8(raw)
                elif vr in _CHARSET_VRS and latin1:
                    found[tag] = "".join(chr(b) for b in raw).rstrip("\x00 ")
                else:
                    found[tag] = _ascii(raw)
        pos += length
    return found


def _ascii(raw):
    """The default repertoire (PS3.5 6.1.2.2), anything else shown as
    U+FFFD; padding (PS3.5 6.2: a space, or a NUL for UI) dropped."""
    return "".join(chr(b) if b < 0x80 else "\ufffd" for b in raw).rstrip("\x00 ")


def _utf8(raw):
    try:
        return raw.decode("utf-8").rstrip("\x00 ")
    except UnicodeError:
        return _ascii(raw)
