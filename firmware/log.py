"""The gateway's log: a ring of the last lines for the console's `log`,
and a sink (stderr on the host, the box's log device).

Text from the network or from files (a PACS's Implementation Version Name,
an error message quoting a peer, a file name) is escaped before it reaches
a log line or the console, so that it can neither move the cursor, clear a
terminal nor forge a line of its own (an ESC[2J or a CR LF "ALARM ..." in
a peer's answer).
"""

LOG_LINES = 200


def printable(text):
    """text with every control character (C0, DEL, C1) shown as \\xNN.
    Idempotent: a line escaped once (the log ring) passes again unchanged
    (the console escapes everything it prints)."""
    out = None
    for i, ch in enumerate(text):
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            if out is None:
                out = [text[:i]]
            out.append("\\x%02x" % code)
        elif out is not None:
            out.append(ch)
    return text if out is None else "".join(out)


class Log:
    """log(message): one escaped line into the ring and the sink."""

    def __init__(self, sink=None, lines=LOG_LINES):
        self._sink = sink or (lambda message: None)
        self._lines = lines
        self.recent = []

    def __call__(self, message):
        message = printable(message)
        self.recent.append(message)
        del self.recent[: -self._lines]
        self._sink(message)
