"""A line editor for a serial terminal, sans-I/O: bytes in, (output bytes,
events) out. What a VT100-class terminal or miniterm sends:

    printable ASCII        inserted at the end of the line, echoed
    UTF-8 sequences        one character each (a name such as "Müller"),
                           inserted and echoed in UTF-8
    BS (0x08), DEL (0x7F)  erase the last character (back over its
                           cells, blank them, back again)
    Ctrl-U (0x15)          erase the whole line
    Ctrl-C (0x03)          abandon the line ("^C"), event ("interrupt",)
    CR, LF, CR LF          end of line, event ("line", text)
    Tab                    completion, through the complete callback
    ESC [ A / ESC [ B      history up / down (also ESC O A / ESC O B)
    other ESC sequences    parsed to their end (ECMA-48) and ignored

Every limit is fixed: the line (MAX_LINE characters; more rings the bell),
the history (HISTORY lines), an escape sequence (MAX_ESCAPE bytes), a UTF-8
sequence (4 bytes). Bytes that are not well-formed UTF-8 (RFC 3629 section
4: a stray continuation byte, an overlong form, a surrogate, a code point
above U+10FFFF, a sequence cut short by another byte) are dropped with a
bell and the line is marked: its end gives the event ("garbled", text)
instead of ("line", text), so that the shell refuses it rather than act on
what is left ("Mller" for a Latin-1 "M\\xfcller"). Control characters (C0,
DEL, C1) are never part of a line.

The echo counts terminal cells: most characters take one, East Asian wide
ones two, combining marks none (they join the character before them), a
small table in _width since MicroPython has no unicodedata.
"""

MAX_LINE = 256
HISTORY = 16
MAX_ESCAPE = 16

BEL = b"\x07"


class LineEditor:
    def __init__(self, complete=None):
        self.line = ""
        self.echo = True
        self.history = []
        self._browse = None  # index into history while browsing
        self._escape = None  # bytes of an escape sequence being read
        self._utf8 = None  # bytes of a UTF-8 sequence being read (at most 4)
        self._utf8_need = 0  # how many bytes that sequence has in all
        self.garbled = False  # the line lost bytes that were not UTF-8
        self._last_cr = False
        self.complete = complete  # text -> (completed text, choices)

    def clear(self):
        """Forget the line, anything half-read and the history (a new
        session on the line must not browse the last one's commands)."""
        self.line = ""
        self.history = []
        self._browse = None
        self._escape = None
        self._utf8 = None
        self.garbled = False
        self._last_cr = False

    def feed(self, data):
        """Returns (bytes to write back, [events])."""
        out = []
        events = []
        for byte in data:
            if self._escape is not None:
                self._escape_byte(byte, out)
                continue
            if self._utf8 is not None:
                if 0x80 <= byte <= 0xBF and self._utf8_continues(byte):
                    self._utf8.append(byte)
                    if len(self._utf8) == self._utf8_need:
                        seq, self._utf8 = bytes(self._utf8), None
                        self._insert(seq.decode(), out)
                    continue
                self._bad_byte(out)  # cut short: drop it, then read this byte afresh
            if byte == 0x0A and self._last_cr:
                self._last_cr = False
                continue
            self._last_cr = byte == 0x0D
            if byte in (0x0D, 0x0A):
                out.append(b"\r\n")
                events.append(("garbled" if self.garbled else "line", self.line))
                if self.echo and self.line.strip() and not self.garbled and (
                        not self.history or self.history[-1] != self.line):
                    self.history.append(self.line)
                    del self.history[:-HISTORY]
                self.line = ""
                self.garbled = False
                self._browse = None
            elif byte in (0x08, 0x7F):
                self._erase_one(out)
            elif byte == 0x15:
                self._replace("", out)
                self.garbled = False  # the bad bytes went with the line
            elif byte == 0x03:
                self.line = ""
                self.garbled = False
                self._browse = None
                out.append(b"^C\r\n")
                events.append(("interrupt",))
            elif byte == 0x09:
                self._tab(out, events)
            elif byte == 0x1B:
                self._escape = bytearray()
            elif 0x20 <= byte <= 0x7E:
                self._insert(chr(byte), out)
            elif 0xC2 <= byte <= 0xF4:
                # RFC 3629 section 4: C2..DF start two bytes, E0..EF three,
                # F0..F4 four (C0, C1 and F5..FF never appear).
                self._utf8 = bytearray((byte,))
                self._utf8_need = 2 if byte <= 0xDF else 3 if byte <= 0xEF else 4
            elif byte >= 0x80:
                self._bad_byte(out)  # a stray continuation byte, C0, C1, F5..FF
            # other C0 controls: ignored
        return b"".join(out), events

    def _utf8_continues(self, byte):
        """RFC 3629 section 4's second-byte ranges: no overlong forms
        (E0 A0.., F0 90..), no surrogates (ED ..9F), nothing above
        U+10FFFF (F4 ..8F)."""
        if len(self._utf8) != 1:
            return True
        lead = self._utf8[0]
        if lead == 0xE0:
            return byte >= 0xA0
        if lead == 0xED:
            return byte <= 0x9F
        if lead == 0xF0:
            return byte >= 0x90
        if lead == 0xF4:
            return byte <= 0x8F
        return True

    def _bad_byte(self, out):
        self._utf8 = None
        self.garbled = True
        out.append(BEL)

    def _insert(self, ch, out):
        if 0x80 <= ord(ch) <= 0x9F:  # a C1 control, UTF-8 encoded
            out.append(BEL)
        elif len(self.line) >= MAX_LINE:
            out.append(BEL)
        else:
            self.line += ch
            if self.echo:
                out.append(ch.encode())

    def _erase_one(self, out):
        if not self.line:
            return
        gone = self.line[-1]
        self.line = self.line[:-1]
        if not self.echo:
            return
        if _width(gone):
            n = _width(gone)
            out.append(b"\b" * n + b" " * n + b"\b" * n)
            return
        # A combining mark shares the cell of the character before it:
        # blank that character's cells and draw it again without the mark.
        i = len(self.line)
        while i > 0 and not _width(self.line[i - 1]):
            i -= 1
        cell = self.line[i - 1:] if i else self.line
        n = _width_of(cell)
        out.append(b"\b" * n + b" " * n + b"\b" * n + cell.encode())

    def _replace(self, text, out):
        if self.echo and self.line and text.startswith(self.line):
            out.append(text[len(self.line):].encode())  # only what is new
            self.line = text
            return
        if self.echo and self.line:
            n = _width_of(self.line)
            out.append(b"\b" * n + b" " * n + b"\b" * n)
        self.line = text
        if self.echo and text:
            out.append(text.encode())

    def _escape_byte(self, byte, out):
        seq = self._escape
        seq.append(byte)
        if len(seq) == 1:
            if byte in (0x5B, 0x4F):  # CSI "[" or SS3 "O": a sequence follows
                return
            self._escape = None  # a two-byte escape: done
            return
        # CSI/SS3 end with a final byte 0x40-0x7E (ECMA-48 5.4)
        if 0x40 <= byte <= 0x7E:
            self._escape = None
            if byte == 0x41:
                self._history(-1, out)
            elif byte == 0x42:
                self._history(1, out)
        elif len(seq) >= MAX_ESCAPE or not 0x20 <= byte <= 0x3F:
            self._escape = None  # malformed or too long: drop it

    def _history(self, step, out):
        if not self.echo or not self.history:
            return
        index = len(self.history) if self._browse is None else self._browse
        index = max(0, min(len(self.history), index + step))
        self._browse = index
        self.garbled = False  # a line from the history replaces the whole line
        self._replace(self.history[index] if index < len(self.history) else "", out)

    def _tab(self, out, events):
        if not self.echo or self.complete is None:
            return
        completed, choices = self.complete(self.line)
        if completed != self.line:
            self._replace(completed, out)
        elif len(choices) > 1:
            events.append(("choices", choices))


# Code points, as ranges, that a terminal draws in no cell (combining marks)
# or in two (East Asian wide and fullwidth: Unicode UAX #11, W and F).
_ZERO_WIDTH = ((0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05BD), (0x0610, 0x061A),
               (0x064B, 0x065F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x200B, 0x200F),
               (0x20D0, 0x20FF), (0xFE00, 0xFE0F), (0xFE20, 0xFE2F))
_DOUBLE_WIDTH = ((0x1100, 0x115F), (0x2E80, 0x303E), (0x3041, 0x33FF), (0x3400, 0x4DBF),
                 (0x4E00, 0x9FFF), (0xA000, 0xA4CF), (0xAC00, 0xD7A3), (0xF900, 0xFAFF),
                 (0xFE30, 0xFE4F), (0xFF00, 0xFF60), (0xFFE0, 0xFFE6), (0x1F300, 0x1F64F),
                 (0x1F900, 0x1F9FF), (0x20000, 0x3FFFD))


def _width(ch):
    code = ord(ch)
    if code < 0x0300:
        return 1
    for low, high in _ZERO_WIDTH:
        if low <= code <= high:
            return 0
    for low, high in _DOUBLE_WIDTH:
        if low <= code <= high:
            return 2
    return 1


def _width_of(text):
    n = 0
    for ch in text:
        n += _width(ch)
    return n
