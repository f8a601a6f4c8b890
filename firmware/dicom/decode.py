"""Reading a small data set (PS3.5 7): a C-FIND identifier, an
N-EVENT-REPORT's references. Sans-I/O: bytes in, {tag: value} out.

    decode_dataset(data, explicit=True) -> {tag: value}

Values: text as str (PS3.5 6.1: decoded per the data set's Specific
Character Set, ASCII, ISO_IR 100 Latin-1 or ISO_IR 192 UTF-8; without one,
non-ASCII bytes are read as UTF-8 when they are valid UTF-8, else Latin-1;
padding stripped; a multi-valued text stays one str with its backslashes), US, UL,
SS, SL as int, a sequence as a list of dicts, anything else as bytes. In
Implicit VR the VR comes from tags.VR; an element modgate does not know
keeps its bytes. Bounded by the input: nothing is allocated beyond it, and
nesting deeper than MAX_DEPTH is refused. ValueError on bytes that are no
data set.
"""

import struct

from firmware.dicom import tags
from firmware.dicom.vr import LONG_LENGTH

MAX_DEPTH = 8
_UNDEFINED = 0xFFFFFFFF
_TEXT = ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT")
_NUMBERS = {"US": "<H", "UL": "<I", "SS": "<h", "SL": "<i"}
# PS3.5 6.1.2.3 / PS3.3 C.12.1.1.2: the character sets modgate reads
# (Defined Terms of Specific Character Set), as Python codec names.
CHARSETS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
# The VRs whose values the Specific Character Set applies to (PS3.5 6.1.2.3).
_EXTENDED = ("LO", "LT", "PN", "SH", "ST", "UC", "UT")


def decode_dataset(data, explicit=True):
    data = memoryview(data)
    out, pos = _items(data, 0, len(data), explicit, "ascii", 0)
    return out


def _items(data, pos, end, explicit, codec, depth):
    """Elements from pos to end (or to an Item Delimitation Item); the dict
    and where it stopped."""
    if depth > MAX_DEPTH:
        raise ValueError("sequences nested deeper than %d" % MAX_DEPTH)
    out = {}
    while pos < end:
        if end - pos < 8:
            raise ValueError("an element header cut short at byte %d" % pos)
        group, elem, length = struct.unpack("<HHI", data[pos : pos + 8])
        tag = group << 16 | elem
        if tag == tags.ItemDelimitationItem:
            return out, pos + 8
        vr = None
        if explicit and group != 0xFFFE:
            vr = bytes(data[pos + 4 : pos + 6]).decode("ascii", "replace")
            if vr in LONG_LENGTH or vr in ("SQ", "UN"):
                if end - pos < 12:
                    raise ValueError("an element header cut short at byte %d" % pos)
                (length,) = struct.unpack("<I", data[pos + 8 : pos + 12])
                pos += 12
            else:
                (length,) = struct.unpack("<H", data[pos + 6 : pos + 8])
                pos += 8
        else:
            vr = tags.VR.get(tag)
            pos += 8
            if vr is None and length == _UNDEFINED:
                vr = "SQ"  # PS3.5 7.5.1: only a sequence has undefined length here
        if vr == "SQ":
            value, pos = _sequence(data, pos, end, length, explicit, codec, depth)
        else:
            if length == _UNDEFINED or length > end - pos:
                raise ValueError("element %s of length %d past the data set's end" % (tags.tag_str(tag), length))
            raw = data[pos : pos + length]
            pos += length
            value = _value(vr, raw, codec)
            if tag == tags.SpecificCharacterSet:
                codec = charset_codec(value)
        out[tag] = value
    return out, pos


def _sequence(data, pos, end, length, explicit, codec, depth):
    stop = end if length == _UNDEFINED else pos + length
    if stop > end:
        raise ValueError("a sequence of length %d past the data set's end" % length)
    items = []
    while pos < stop:
        if stop - pos < 8:
            raise ValueError("an item header cut short at byte %d" % pos)
        group, elem, item_length = struct.unpack("<HHI", data[pos : pos + 8])
        tag = group << 16 | elem
        pos += 8
        if tag == tags.SequenceDelimitationItem:
            return items, pos
        if tag != tags.Item:
            raise ValueError("%s inside a sequence where an item belongs" % tags.tag_str(tag))
        item_end = stop if item_length == _UNDEFINED else pos + item_length
        if item_end > stop:
            raise ValueError("an item of length %d past its sequence" % item_length)
        item, pos = _items(data, pos, item_end, explicit, codec, depth + 1)
        items.append(item)
    if length == _UNDEFINED:
        raise ValueError("a sequence of undefined length without its delimiter")
    return items, pos


def _value(vr, raw, codec):
    if vr in _TEXT:
        text = bytes(raw).rstrip(b"\x00 ")
        if vr not in ("LT", "ST", "UT"):  # PS3.5 6.2: leading spaces are padding here
            text = text.lstrip(b" ")
        if vr not in _EXTENDED:
            return text.decode("ascii", "replace")
        if codec == "ascii":
            try:
                return text.decode("ascii")
            except UnicodeError:
                # Bytes outside the default repertoire with no Specific
                # Character Set saying which (an SCP that leaves it out, as
                # wlmscpfs does by default): UTF-8 if they are valid UTF-8,
                # else Latin-1, the set such data is most often in. Never
                # a replacement character in a patient's name.
                try:
                    return text.decode("utf-8")
                except UnicodeError:
                    codec = "latin-1"
        if codec == "latin-1":
            # Each byte is its code point (ISO 8859-1); written out so that
            # MicroPython, which has only UTF-8 and ASCII codecs, reads it too.
            return "".join(chr(b) for b in text)
        return text.decode(codec, "replace")
    if vr in _NUMBERS:
        size = struct.calcsize(_NUMBERS[vr])
        if len(raw) == size:
            return struct.unpack(_NUMBERS[vr], raw)[0]
    return bytes(raw)


def charset_codec(value):
    """The codec for a Specific Character Set value (its first term; code
    extensions, ISO 2022 escapes, are not read). ValueError for one
    modgate does not read, so that a name is never shown garbled."""
    first = value.split("\\")[0].strip()
    if first not in CHARSETS:
        raise ValueError("Specific Character Set %r is not one modgate reads (%s)" % (
            value, ", ".join(repr(c) for c in sorted(CHARSETS) if c)))
    return CHARSETS[first]
