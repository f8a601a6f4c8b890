"""A line editor for a serial terminal, sans-I/O: bytes in, (output bytes,
events) out. What a VT100-class terminal or miniterm sends:

    printable ASCII        inserted at the end of the line, echoed
    BS (0x08), DEL (0x7F)  erase the last character ("\\b \\b")
    Ctrl-U (0x15)          erase the whole line
    Ctrl-C (0x03)          abandon the line ("^C"), event ("interrupt",)
    CR, LF, CR LF          end of line, event ("line", text)
    Tab                    completion, through the complete callback
    ESC [ A / ESC [ B      history up / down (also ESC O A / ESC O B)
    other ESC sequences    parsed to their end (ECMA-48) and ignored

Every limit is fixed: the line (MAX_LINE characters; more rings the bell),
the history (HISTORY lines), an escape sequence (MAX_ESCAPE bytes). Bytes
above 0x7E are ignored: commands and keys are ASCII.
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
        self._last_cr = False
        self.complete = complete  # text -> (completed text, choices)

    def feed(self, data):
        """Returns (bytes to write back, [events])."""
        out = []
        events = []
        for byte in data:
            if self._escape is not None:
                self._escape_byte(byte, out)
                continue
            if byte == 0x0A and self._last_cr:
                self._last_cr = False
                continue
            self._last_cr = byte == 0x0D
            if byte in (0x0D, 0x0A):
                out.append(b"\r\n")
                events.append(("line", self.line))
                if self.echo and self.line.strip() and (not self.history or self.history[-1] != self.line):
                    self.history.append(self.line)
                    del self.history[:-HISTORY]
                self.line = ""
                self._browse = None
            elif byte in (0x08, 0x7F):
                if self.line:
                    self.line = self.line[:-1]
                    if self.echo:
                        out.append(b"\b \b")
            elif byte == 0x15:
                self._replace("", out)
            elif byte == 0x03:
                self.line = ""
                self._browse = None
                out.append(b"^C\r\n")
                events.append(("interrupt",))
            elif byte == 0x09:
                self._tab(out, events)
            elif byte == 0x1B:
                self._escape = bytearray()
            elif 0x20 <= byte <= 0x7E:
                if len(self.line) >= MAX_LINE:
                    out.append(BEL)
                else:
                    self.line += chr(byte)
                    if self.echo:
                        out.append(bytes((byte,)))
        return b"".join(out), events

    def _replace(self, text, out):
        if self.echo and self.line and text.startswith(self.line):
            out.append(text[len(self.line):].encode())  # only what is new
            self.line = text
            return
        if self.echo and self.line:
            n = len(self.line)
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
        self._replace(self.history[index] if index < len(self.history) else "", out)

    def _tab(self, out, events):
        if not self.echo or self.complete is None:
            return
        completed, choices = self.complete(self.line)
        if completed != self.line:
            self._replace(completed, out)
        elif len(choices) > 1:
            events.append(("choices", choices))
