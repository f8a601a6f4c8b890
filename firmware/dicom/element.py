"""Data elements, data sets, sequences and encapsulated Pixel Data as bytes
(PS3.5 7 and A.4), in Explicit or Implicit VR Little Endian.

A data set is a list of elements, each ``(tag, value)`` with the VR taken
from ``tags.VR``, or ``(tag, vr, value)`` where the caller says the VR. A
sequence's value is a list of items and each item is again such a list.
Elements are written in ascending tag order whatever order they come in.
"""

import struct

from firmware.dicom import tags
from firmware.dicom.tags import Item, ItemDelimitationItem, SequenceDelimitationItem, tag_str
from firmware.dicom.vr import LONG_LENGTH, UTF8, encode_value, needs_charset

UNDEFINED_LENGTH = 0xFFFFFFFF  # PS3.5 7.1.1
MAX_DEFINED_LENGTH = 0xFFFFFFFE

# PS3.5 7.5.2: the delimitation items, each with a zero length.
ITEM_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQUENCE_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def element_header(tag, vr, length, explicit=True):
    """Tag, VR (Explicit only) and length of an element (PS3.5 7.1.2, 7.1.3)."""
    group, elem = tag >> 16, tag & 0xFFFF
    if not explicit:
        return struct.pack("<HHI", group, elem, length)
    if vr in LONG_LENGTH:
        return struct.pack("<HH", group, elem) + vr.encode() + struct.pack("<HI", 0, length)
    if length > 0xFFFF:
        raise ValueError("%s %s value of %d bytes exceeds the 16-bit length" % (tag_str(tag), vr, length))
    return struct.pack("<HH", group, elem) + vr.encode() + struct.pack("<H", length)


def item_header(length=UNDEFINED_LENGTH):
    """An Item tag with its length (PS3.5 7.5.1): for sequence items and
    for the fragments of encapsulated Pixel Data (A.4)."""
    return struct.pack("<HHI", Item >> 16, Item & 0xFFFF, length)


def _parts(element):
    if len(element) == 3:
        return element
    tag, value = element
    vr = tags.VR.get(tag)
    if vr is None:
        raise ValueError("no VR known for %s; give it as (tag, vr, value)" % tag_str(tag))
    return tag, vr, value


def encode_element(tag, vr, value, explicit=True, charset=None, undefined_length=True):
    """One element as bytes. An SQ value is a list of items."""
    if vr == "SQ":
        return encode_sequence(tag, value or (), explicit, charset, undefined_length)
    try:
        raw = encode_value(vr, value, charset)
    except ValueError as err:
        raise ValueError("%s: %s" % (tag_str(tag), err))
    return element_header(tag, vr, len(raw), explicit) + raw


def encode_sequence(tag, items, explicit=True, charset=None, undefined_length=True):
    """A sequence of items (PS3.5 7.5), of undefined length with delimiters
    or of defined length."""
    body = []
    for item in items:
        content = encode_dataset(item, explicit, charset, undefined_length)
        if undefined_length:
            body.append(item_header() + content + ITEM_DELIMITER)
        else:
            body.append(item_header(len(content)) + content)
    if undefined_length:
        return element_header(tag, "SQ", UNDEFINED_LENGTH, explicit) + b"".join(body) + SEQUENCE_DELIMITER
    content = b"".join(body)
    return element_header(tag, "SQ", len(content), explicit) + content


def sorted_elements(dataset):
    """The elements as (tag, vr, value), in ascending tag order, refusing a
    tag given twice (PS3.5 7.1: each tag occurs once in a data set)."""
    elements = sorted((_parts(e) for e in dataset), key=lambda e: e[0])
    for i in range(1, len(elements)):
        if elements[i][0] == elements[i - 1][0]:
            raise ValueError("%s given twice" % tag_str(elements[i][0]))
    return elements


def encode_dataset(dataset, explicit=True, charset=None, undefined_length=True):
    """A data set (or a sequence item's content) as bytes."""
    return b"".join(
        encode_element(tag, vr, value, explicit, charset, undefined_length)
        for tag, vr, value in sorted_elements(dataset)
    )


def dataset_charset(dataset):
    """The Specific Character Set a data set needs: None when every value is
    in the default repertoire, else UTF-8 (PS3.3 C.12.1.1.2 'ISO_IR 192')."""
    for tag, vr, value in (_parts(e) for e in dataset):
        if vr == "SQ":
            for item in value or ():
                if dataset_charset(item):
                    return UTF8
        elif needs_charset(vr, value):
            return UTF8
    return None


def basic_offset_table(offsets=()):
    """The first item of encapsulated Pixel Data (PS3.5 A.4): the byte offset
    of each frame's first fragment, or empty."""
    body = b"".join(struct.pack("<I", offset) for offset in offsets)
    return item_header(len(body)) + body


def fragment(data):
    """One fragment of encapsulated Pixel Data: an Item of even length
    (PS3.5 A.4: a frame of odd length gets one trailing NUL)."""
    pad = b"\x00" if len(data) & 1 else b""
    return item_header(len(data) + len(pad)), pad
