"""DIMSE messages on P-DATA-TF PDUs (PS3.7 6.3.1, PS3.8 9.3.5 and Annex E),
sans-I/O.

A message is a command set and, when its Command Data Set Type says so, a
data set. Each travels as a run of PDV fragments on one presentation
context; the message control header marks command fragments and the last
fragment of each (PS3.8 E.2). modgate sends one PDV per P-DATA-TF, so a PDU
is 12 bytes of headers and then data.

Out, message_pdus() yields the PDUs of a message whose data set is bytes or
a reader of a stored file (a hal storage ReadHandle: read_into(views,
offset)), or a stream of unknown length (ConvertingReader below). For a
file it fills one reused buffer of about BATCH bytes, the data read straight
into the slots behind each PDU's headers, so memory does not grow with the
object. In, MessageReader reassembles the PDVs of P-DATA-TF PDUs into
messages, each data set going to a bounded sink.

The caller sends each yielded buffer before asking for the next: the
buffers are views of the one reused batch.

Why the data is read into a buffer and copied again by the send, rather
than sent straight from the file by the transport (os.sendfile after each
PDU's headers, with TCP_CORK or MSG_MORE): on Linux over loopback, sending
the 317 MB object of tools/bench/store.py that way cost 2 to 3 times the
CPU per GB of a preadv and a send per batch, and one sendfile of the whole
file with no headers at all cost more than the two copies too (issue 18).
"""

import struct

from firmware.net import dimse
from firmware.net.convert import ExplicitToImplicit
from firmware.net.pdu import MCH_COMMAND, MCH_LAST, P_DATA_TF, PDU_HEADER_LENGTH, PDV_HEADER_LENGTH

# The bytes in front of a PDV's data in a P-DATA-TF that carries one PDV.
PDU_OVERHEAD = PDU_HEADER_LENGTH + PDV_HEADER_LENGTH
# Bytes of PDUs built per yield while a file streams out. On the bench,
# 64 KiB cost 30% more CPU per GB (system calls), 256 KiB to 1 MiB 15-30%
# more (the copies no longer stay in the CPU's cache).
BATCH = 1 << 17
COALESCE = 1 << 16  # a command set and a first batch up to this go out joined
_HEADER = ">BBIIBB"  # PDU type, reserved, PDU length, PDV length, context, control


class ShortDataSet(Exception):
    """The data set's reader gave fewer bytes than its size said: the file
    shrank while it was sent. The file's fault, not the association's."""


def pdv_limit(maximum_length, peer_maximum_length):
    """Data bytes per PDV. PS3.8 D.1: Maximum Length is the largest
    variable field of a P-DATA-TF the receiver takes, 0 meaning no limit;
    we send at most min(the peer's, ours), and the PDV item's own header
    (PS3.8 9.3.5: length, context ID, control) is inside that field."""
    limit = maximum_length if peer_maximum_length == 0 else min(peer_maximum_length, maximum_length)
    return limit - PDV_HEADER_LENGTH


def pdu_header(context_id, control, length):
    """The 12 bytes before a PDV of length data bytes, alone in its
    P-DATA-TF (PS3.8 9.3.5: the PDV length counts the context ID and the
    message control header)."""
    return struct.pack(_HEADER, P_DATA_TF, 0, length + PDV_HEADER_LENGTH, length + 2, context_id, control)


def fragments(context_id, data, limit, command):
    """The PDUs of a command set or a data set held in memory."""
    kind = MCH_COMMAND if command else 0
    if not data:
        return [pdu_header(context_id, kind | MCH_LAST, 0)]
    out = []
    for start in range(0, len(data), limit):
        piece = data[start : start + limit]
        last = MCH_LAST if start + limit >= len(data) else 0
        out.append(pdu_header(context_id, kind | last, len(piece)) + piece)
    return out


def message_pdus(context_id, command, data_set, limit, offset=0, size=None, batch=BATCH):
    """The PDUs of one message, in order, as (buffer, data set bytes in
    it). data_set: None, bytes, or a reader: read_into(views, offset) ->
    bytes read. With size (bytes from offset) the reader is a file of known
    length and a short read raises ShortDataSet; without, it is a stream
    read until it runs dry, a short read being its end (so a stream reader
    fills every view it is given until then, as ConvertingReader does).
    Errors of the reader (OSError, ConversionError)
    come out of this generator, never out of the caller's sends."""
    head = fragments(context_id, command, limit, True)
    if data_set is None or isinstance(data_set, (bytes, bytearray, memoryview)):
        if data_set is not None:
            head.extend(fragments(context_id, data_set, limit, False))
        yield b"".join(head), len(data_set or b"")
        return
    head = b"".join(head)
    if size is None:
        body = _stream(context_id, data_set, limit, batch)
    elif size == 0:
        body = iter([(pdu_header(context_id, MCH_LAST, 0), 0)])
    else:
        body = _file(context_id, data_set, limit, offset, size, batch)
    # Nothing leaves before the first batch is read: a file that cannot be
    # read fails the message before any of it is on the wire. A command and
    # a small data set then leave in one send (one TCP segment).
    for out, data in body:
        if head is not None:
            if len(head) + len(out) <= COALESCE:
                out = head + bytes(out)
            else:
                yield head, 0
            head = None
        yield out, data


def _slots(limit, batch, size):
    return max(1, min(batch // (limit + PDU_OVERHEAD), (size + limit - 1) // limit or 1))


def _file(context_id, reader, limit, offset, size, batch):
    slots = _slots(limit, batch, size)
    buf = bytearray(slots * PDU_OVERHEAD + min(slots * limit, size))
    view = memoryview(buf)
    full = slots * limit  # data bytes of a batch of whole PDVs
    # Every batch but the last fills the same slots behind the same
    # headers (PS3.8 9.3.5: P-DATA-TF and PDV item headers; E.2: a message
    # control header without the last-fragment bit): their views are made
    # once and the headers written once, for the reads touch only the
    # data. The Python work per 128 KiB batch: 4.5 us before, 0.5 us now.
    views = None
    sealed = False
    remaining = size
    while remaining:
        if remaining > full:
            if views is None:
                views = [view[i * (PDU_OVERHEAD + limit) + PDU_OVERHEAD : (i + 1) * (PDU_OVERHEAD + limit)]
                         for i in range(slots)]
            got = reader.read_into(views, offset)
            if got != full:
                raise ShortDataSet("it shrank while being sent (%d bytes short)" % (remaining - got))
            if not sealed:
                _seal(buf, context_id, limit, slots, full, False)
                sealed = True
            offset += got
            remaining -= got
            yield view, got
            continue
        # The last batch (remaining <= full): as many slots as it needs.
        parts = []
        end = 0
        want = 0
        while want < remaining:
            chunk = min(limit, remaining - want)
            parts.append(view[end + PDU_OVERHEAD : end + PDU_OVERHEAD + chunk])
            end += PDU_OVERHEAD + chunk
            want += chunk
        got = reader.read_into(parts, offset)
        if got != remaining:
            raise ShortDataSet("it shrank while being sent (%d bytes short)" % (remaining - got))
        remaining = 0
        yield view[: _seal(buf, context_id, limit, len(parts), got, True)], got


def _stream(context_id, reader, limit, batch):
    """A data set of unknown length: each batch's PDVs are filled to the
    limit, and the last full one is held back until more comes, so that
    the last-fragment bit (PS3.8 E.2) lands on the true last PDV without an
    empty one after it."""
    slots = max(2, _slots(limit, batch, batch))  # one held back, one to fill
    buf = bytearray(slots * (PDU_OVERHEAD + limit))
    view = memoryview(buf)
    held = 0  # data bytes of the held-back PDV, at the buffer's start
    while True:
        parts = [view[PDU_OVERHEAD + held : PDU_OVERHEAD + limit]]
        for i in range(1, slots):
            start = i * (PDU_OVERHEAD + limit) + PDU_OVERHEAD
            parts.append(view[start : start + limit])
        got = reader.read_into(parts, None)
        data = held + got
        if data == slots * limit and got:
            # Every slot full: there may be more. Send all but the last PDV.
            end = _seal(buf, context_id, limit, slots - 1, data - limit, False)
            if end:
                yield view[:end], data - limit
            last = (slots - 1) * (PDU_OVERHEAD + limit)
            buf[PDU_OVERHEAD : PDU_OVERHEAD + limit] = buf[last + PDU_OVERHEAD : last + PDU_OVERHEAD + limit]
            held = limit
            continue
        if data:
            yield view[: _seal(buf, context_id, limit, (data + limit - 1) // limit, data, True)], data
        else:
            # Nothing at all to send: the data set is still one (empty) last
            # fragment, so the message ends (PS3.8 E.2).
            yield pdu_header(context_id, MCH_LAST, 0), 0
        return


def _seal(buf, context_id, limit, count, data, last):
    """Write the headers of count PDVs laid out limit apart holding data
    bytes in all; the length of the PDUs."""
    pos = 0
    for i in range(count):
        length = min(limit, data - i * limit)
        control = MCH_LAST if last and i == count - 1 else 0
        struct.pack_into(_HEADER, buf, pos, P_DATA_TF, 0, length + PDV_HEADER_LENGTH, length + 2, context_id, control)
        pos += PDU_OVERHEAD + length
    return pos


class ConvertingReader:
    """An Explicit VR Little Endian data set read as Implicit VR Little
    Endian (net/convert.py), for a peer that accepted only the latter: a
    stream reader for message_pdus. reader: read_into(views, offset) from
    offset on. Holds at most one chunk's output beyond what it was asked."""

    def __init__(self, reader, offset, chunk):
        self.reader = reader
        self.offset = offset
        self.chunk = chunk
        self.converter = ExplicitToImplicit()
        self.pending = bytearray()
        self.taken = 0  # bytes of pending already given out
        self.done = False

    def read_into(self, views, offset=None):
        total = 0
        for view in views:
            n = len(view)
            while len(self.pending) - self.taken < n and not self.done:
                self._more()
            take = min(n, len(self.pending) - self.taken)
            view[:take] = self.pending[self.taken : self.taken + take]
            self.taken += take
            total += take
            if take < n:
                break
        return total

    def _more(self):
        if self.taken:
            # Drop what was given out (a copy, not del pending[:taken]:
            # MicroPython's bytearray has no slice deletion).
            self.pending = self.pending[self.taken :]
            self.taken = 0
        buf = bytearray(self.chunk)
        got = self.reader.read_into([memoryview(buf)], self.offset)
        self.offset += got
        if got:
            for piece in self.converter.feed(bytes(buf[:got]) if got < len(buf) else bytes(buf)):
                self.pending.extend(piece)
        else:
            self.converter.finish()
            self.done = True


class BoundedSink:
    """The default data set sink: keeps it in memory up to limit bytes (a
    C-FIND identifier or an N-EVENT-REPORT's references are small; a bigger
    one aborts the association rather than the box's memory)."""

    def __init__(self, limit):
        self.limit = limit
        self.data = bytearray()

    def write(self, data):
        if len(self.data) + len(data) > self.limit:
            raise dimse.DIMSEError("data set over %d bytes" % self.limit)
        self.data.extend(data)

    def close(self):
        return bytes(self.data)


class MessageReader:
    """Reassembles DIMSE messages from the PDVs of received P-DATA-TF PDUs
    (PS3.8 E.2): the command set, then the data set if the command says one
    follows, all on one presentation context. add() returns a message,
    (context_id, command, data_set), when one is whole; data_set is what
    the sink's close() returns, or None. new_sink(command) gives the sink
    for a message's data set (a BoundedSink of max_data_set by default).
    Raises DIMSEError on anything PS3.7/PS3.8 do not allow; the caller
    aborts the association."""

    def __init__(self, max_data_set=dimse.MAX_COMMAND_SET, new_sink=None):
        self.max_data_set = max_data_set
        self.new_sink = new_sink or (lambda command: BoundedSink(self.max_data_set))
        self._reset()

    def _reset(self):
        self.context_id = None
        self._command = bytearray()
        self._parsed = None
        self._sink = None

    def add(self, context_id, control, data):
        if self.context_id is None:
            self.context_id = context_id
        elif context_id != self.context_id:
            raise dimse.DIMSEError("PDV for context %d inside a message on context %d" % (context_id, self.context_id))
        if control & MCH_COMMAND:
            if self._parsed is not None:
                raise dimse.DIMSEError("command fragment after the command set was complete")
            if len(self._command) + len(data) > dimse.MAX_COMMAND_SET:
                raise dimse.DIMSEError("command set over %d bytes" % dimse.MAX_COMMAND_SET)
            self._command.extend(data)
            if control & MCH_LAST:
                self._parsed = dimse.parse_command(bytes(self._command))
                if self._parsed.get(dimse.CommandDataSetType, dimse.NO_DATA_SET) == dimse.NO_DATA_SET:
                    return self._finish(None)
                self._sink = self.new_sink(self._parsed)
            return None
        if self._parsed is None:
            raise dimse.DIMSEError("data set fragment before the command set")
        self._sink.write(data)
        if control & MCH_LAST:
            return self._finish(self._sink.close())
        return None

    def _finish(self, data_set):
        message = (self.context_id, self._parsed, data_set)
        self._reset()
        return message
