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
    body = encode_dataset(meta, explicit=True)
    # PS3.10 7.1: the group length counts the bytes after its own element.
    length = encode_element(tags.FileMetaInformationGroupLength, "UL", len(body))
    return bytes(PREAMBLE_LENGTH) + PREFIX + length + body
