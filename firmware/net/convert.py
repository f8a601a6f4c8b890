"""Explicit VR Little Endian to Implicit VR Little Endian, streaming
(PS3.5 7.1.2 -> 7.1.3): element headers are rewritten as the bytes go by,
values pass through untouched, and nothing but a 12-byte header and the
sequence nesting is ever held.

Sequences and items of defined length become undefined length with their
delimiters (PS3.5 7.5.1 allows both in any transfer syntax): a long-VR
header shrinks by 4 bytes in Implicit VR, so a defined length would be wrong
and knowing the new one would need a second pass.
"""

import struct

from firmware.dicom.element import ITEM_DELIMITER, SEQUENCE_DELIMITER, UNDEFINED_LENGTH
from firmware.dicom.tags import Item, ItemDelimitationItem, SequenceDelimitationItem, tag_str
from firmware.dicom.vr import LONG_LENGTH

_LONG = set(v.encode() for v in LONG_LENGTH)
MAX_DEPTH = 32  # sequence nesting modgate will follow


class ConversionError(ValueError):
    pass


class ExplicitToImplicit:
    """feed(chunk) -> list of output buffers; finish() checks the end."""

    def __init__(self):
        self._head = bytearray()
        self._value_left = 0
        self._pos = 0  # bytes of input consumed
        self._stack = []  # [kind, end]: kind "seq" or "item"; end None if undefined

    def feed(self, chunk):
        out = []
        view = memoryview(chunk)
        i = 0
        n = len(view)
        while i < n:
            if self._value_left:
                take = min(self._value_left, n - i)
                out.append(view[i : i + take])
                i += take
                self._value_left -= take
                self._advance(take, out)
                continue
            need = self._header_size()
            if need > len(self._head):
                take = min(need - len(self._head), n - i)
                self._head.extend(view[i : i + take])
                i += take
                if len(self._head) < need:
                    continue
                need = self._header_size()
                if need > len(self._head):
                    continue
            head = bytes(self._head)
            self._head = bytearray()
            self._header(head, out)
            self._advance(len(head), out)
        return out

    def finish(self):
        if self._head or self._value_left:
            raise ConversionError("data set ends inside an element")
        if self._stack:
            raise ConversionError("data set ends inside a sequence")

    def _in_sequence(self):
        return self._stack and self._stack[-1][0] == "seq"

    def _header_size(self):
        if self._in_sequence() or len(self._head) < 6:
            return 8
        group, elem = struct.unpack("<HH", self._head[:4])
        if group == 0xFFFE:
            return 8
        return 12 if bytes(self._head[4:6]) in _LONG else 8

    def _header(self, head, out):
        group, elem = struct.unpack("<HH", head[:4])
        tag = (group << 16) | elem
        if self._in_sequence():
            (length,) = struct.unpack("<I", head[4:8])
            if tag == Item:
                if len(self._stack) >= MAX_DEPTH:
                    raise ConversionError("sequences nested deeper than %d" % MAX_DEPTH)
                out.append(struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED_LENGTH))
                if length == 0:
                    out.append(ITEM_DELIMITER)
                else:
                    self._stack.append(["item", None if length == UNDEFINED_LENGTH else self._pos + 8 + length])
            elif tag == SequenceDelimitationItem and self._stack[-1][1] is None:
                out.append(SEQUENCE_DELIMITER)
                self._stack.pop()
            else:
                raise ConversionError("%s where a sequence item was expected" % tag_str(tag))
            return
        if tag == ItemDelimitationItem:
            if not self._stack or self._stack[-1][1] is not None:
                raise ConversionError("item delimiter outside an item of undefined length")
            out.append(ITEM_DELIMITER)
            self._stack.pop()
            return
        vr = head[4:6]
        if vr in _LONG:
            (length,) = struct.unpack("<I", head[8:12])
        else:
            (length,) = struct.unpack("<H", head[6:8])
        if group == 0x0002:
            raise ConversionError("File Meta Information element %s inside the data set" % tag_str(tag))
        if vr == b"SQ":
            if len(self._stack) >= MAX_DEPTH:
                raise ConversionError("sequences nested deeper than %d" % MAX_DEPTH)
            out.append(struct.pack("<HHI", group, elem, UNDEFINED_LENGTH))
            if length == 0:
                out.append(SEQUENCE_DELIMITER)
            else:
                self._stack.append(["seq", None if length == UNDEFINED_LENGTH else self._pos + 12 + length])
            return
        if length == UNDEFINED_LENGTH:
            # Encapsulated Pixel Data or UN of undefined length: only in
            # Explicit VR transfer syntaxes (PS3.5 A.4); never converted.
            raise ConversionError("%s %s of undefined length cannot be sent in Implicit VR" % (tag_str(tag), vr.decode()))
        out.append(struct.pack("<HHI", group, elem, length))
        self._value_left = length

    def _advance(self, count, out):
        self._pos += count
        while self._stack and self._stack[-1][1] is not None and self._value_left == 0 and not self._head:
            kind, end = self._stack[-1]
            if self._pos < end:
                break
            if self._pos > end:
                raise ConversionError("an element runs past the end of its %s" % ("item" if kind == "item" else "sequence"))
            self._stack.pop()
            out.append(ITEM_DELIMITER if kind == "item" else SEQUENCE_DELIMITER)
