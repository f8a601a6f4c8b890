"""net/message.py against a naive reference: every message cut into PDUs is
parsed back (pdu.PDUFramer, pdu.parse_p_data) and must be exactly the PDVs
PS3.8 9.3.5 and Annex E ask for: no PDV over the limit, none of the
P-DATA-TFs over the limit plus the PDV header, the last-fragment bit on the
last command fragment and on the last data fragment only, and the data as
given. For a data set as bytes, as a file of known size read in batches and
as a stream (plain, or Explicit VR converted to Implicit VR); sizes on each
side of the PDV and batch boundaries. Then the faults: a file that comes
back short, a reader that fails, a peer's PDVs that break PS3.7/PS3.8."""

import errno
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.net import dimse, pdu
from firmware.net.convert import ConversionError
from firmware.net.message import (
    BATCH,
    COALESCE,
    PDU_OVERHEAD,
    BoundedSink,
    ConvertingReader,
    MessageReader,
    ShortDataSet,
    _slots,
    message_pdus,
    pdv_limit,
)
from firmware.net.pdu import MCH_COMMAND, MCH_LAST, PDV_HEADER_LENGTH
from tests.vectors import (
    MemoryReader,
    MemoryStream,
    convert,
    part10_file,
    pattern,
    sequence_data_set,
    store_response,
)

CONTEXT = 5
COMMAND = dimse.c_store_rq(3, "1.2.840.10008.5.1.4.1.1.77.1.1.1", "1.2.826.0.1.3680043.10.1000.1.1.1")
LIMITS = (1, 2, 7, 4090, 4091, 16378, 65530)  # pdv_limit of 7, 8, 13, 4096, 4097, 16384, 65536


def reference(context_id, command, data, limit):
    """The PDVs of a message, the obvious way: each part cut every limit
    bytes, the last piece of each marked last; an empty data set is one
    empty last fragment (PS3.8 E.2)."""
    pdvs = []
    for kind, payload in ((MCH_COMMAND, command), (0, data)):
        if payload is None:
            continue
        pieces = [payload[i : i + limit] for i in range(0, len(payload), limit)] or [b""]
        for i, piece in enumerate(pieces):
            pdvs.append((context_id, kind | (MCH_LAST if i == len(pieces) - 1 else 0), bytes(piece)))
    return pdvs


def parsed(pdus, limit):
    """(PDVs, data counts) of what message_pdus yields, each buffer copied
    before the next is asked for (they are views of one reused batch)."""
    framer = pdu.PDUFramer(limit + PDV_HEADER_LENGTH)  # refuses a bigger P-DATA-TF
    pdvs = []
    counts = []
    total = 0
    framed = 0
    for out, data in pdus:
        chunk = bytes(out)
        total += len(chunk)
        counts.append(data)
        for pdu_type, body in framer.feed(chunk):
            assert pdu_type == pdu.P_DATA_TF
            assert len(body) <= limit + PDV_HEADER_LENGTH
            framed += pdu.PDU_HEADER_LENGTH + len(body)
            found = pdu.parse_p_data(body)
            assert len(found) == 1  # one PDV a P-DATA-TF
            for context_id, control, piece in found:
                assert len(piece) <= limit
                pdvs.append((context_id, control, bytes(piece)))
    assert framed == total, "bytes left over after the last whole PDU"
    return pdvs, counts


def check(pdus, data, limit, command=COMMAND):
    pdvs, counts = parsed(pdus, limit)
    assert pdvs == reference(CONTEXT, command, data, limit)
    assert sum(counts) == (0 if data is None else len(data))
    return counts


def sizes(limit, slots):
    edge = slots * limit
    return sorted(set(s for s in (0, 1, limit - 1, limit, limit + 1, 2 * limit + 1, edge - limit, edge - 1, edge,
                                  edge + 1, 2 * edge - 1, 2 * edge, 2 * edge + 1) if s >= 0))


def batches(limit):
    return (1, 2 * (limit + PDU_OVERHEAD) - 1, 3 * (limit + PDU_OVERHEAD), 3 * (limit + PDU_OVERHEAD) + 5, BATCH)


# -- the obvious cases ---------------------------------------------------------


def test_pdv_limit_is_the_smaller_maximum_length_less_the_pdv_header():
    assert pdv_limit(16384, 0) == 16378  # PS3.8 D.1: 0 is no limit
    assert pdv_limit(16384, 4097) == 4091
    assert pdv_limit(4096, 65536) == 4090


@pytest.mark.parametrize("limit", LIMITS)
def test_command_alone_and_data_set_as_bytes(limit):
    check(message_pdus(CONTEXT, COMMAND, None, limit), None, limit)
    for size in sizes(limit, 2):
        data = pattern(size)
        counts = check(message_pdus(CONTEXT, COMMAND, data, limit), data, limit)
        assert len(counts) == 1  # bytes: one buffer for the whole message


@pytest.mark.parametrize("limit", LIMITS)
def test_file_of_known_size_around_every_boundary(limit):
    for batch in batches(limit):
        slots = _slots(limit, batch, 1 << 40)
        for size in sizes(limit, slots):
            whole = pattern(size + 300, 1)
            data = whole[300:]
            check(message_pdus(CONTEXT, COMMAND, MemoryReader(whole), limit, 300, size, batch), data, limit)


@pytest.mark.parametrize("limit", LIMITS)
def test_stream_around_every_boundary(limit):
    """The stream path holds the last full PDV back until it knows more
    comes: sizes that fill the batch exactly are the ones that need it."""
    for batch in batches(limit):
        slots = max(2, _slots(limit, batch, batch))
        for size in sizes(limit, slots):
            data = pattern(size, 2)
            check(message_pdus(CONTEXT, COMMAND, MemoryStream(data), limit, batch=batch), data, limit)


@pytest.mark.parametrize("limit", (7, 4090, 4091, 16378, 65530))
def test_converted_stream(limit):
    whole, offset = part10_file(sequence_data_set(pattern(140001, 3)))
    implicit = convert(whole[offset:], 4096)
    for batch in (1, 3 * (limit + PDU_OVERHEAD), BATCH):
        for chunk in (limit, 1000):
            reader = ConvertingReader(MemoryReader(whole), offset, chunk)
            check(message_pdus(CONTEXT, COMMAND, reader, limit, batch=batch), implicit, limit)


def test_a_small_message_leaves_in_one_buffer_a_large_one_command_first():
    whole = pattern(5000)
    (only,) = list(message_pdus(CONTEXT, COMMAND, MemoryReader(whole), 4090, 0, 5000))
    assert only[1] == 5000
    whole = pattern(3 * COALESCE)
    pdus = message_pdus(CONTEXT, COMMAND, MemoryReader(whole), 65530, 0, len(whole))
    first, data = next(pdus)
    assert data == 0 and bytes(first) == b"".join(
        bytes(b) for b, _ in message_pdus(CONTEXT, COMMAND, None, 65530))


def test_the_batch_buffer_is_bounded_by_the_batch_not_the_object():
    whole = pattern(2000000)
    biggest = max(len(out) for out, _ in message_pdus(CONTEXT, COMMAND, MemoryReader(whole), 16378, 0, len(whole)))
    assert biggest <= BATCH


# -- hypothesis: any limit, size, batch, offset ------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(1, 600), size=st.integers(0, 4000), batch=st.integers(0, 5000), offset=st.integers(0, 50),
       command=st.binary(min_size=0, max_size=300))
def test_any_file_message_matches_the_reference(limit, size, batch, offset, command):
    whole = pattern(offset + size, 7)
    pdus = message_pdus(CONTEXT, command, MemoryReader(whole), limit, offset, size, batch)
    check(pdus, whole[offset:], limit, command)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(1, 600), size=st.integers(0, 4000), batch=st.integers(0, 5000),
       command=st.binary(min_size=0, max_size=300))
def test_any_stream_message_matches_the_reference(limit, size, batch, command):
    data = pattern(size, 8)
    check(message_pdus(CONTEXT, command, MemoryStream(data), limit, batch=batch), data, limit, command)


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(2, 3000), chunk=st.integers(1, 5000), batch=st.integers(0, 20000),
       pixels=st.integers(0, 9000).map(lambda n: n & ~1))
def test_any_converted_message_matches_the_reference(limit, chunk, batch, pixels):
    whole, offset = part10_file(sequence_data_set(pattern(pixels, 9)))
    implicit = convert(whole[offset:], 4096)
    reader = ConvertingReader(MemoryReader(whole), offset, chunk)
    check(message_pdus(CONTEXT, COMMAND, reader, limit, batch=batch), implicit, limit)


@settings(max_examples=60, deadline=None)
@given(chunk=st.integers(1, 700), views=st.lists(st.integers(0, 900), min_size=1, max_size=6))
def test_converting_reader_fills_views_of_any_size(chunk, views):
    whole, offset = part10_file(sequence_data_set(pattern(2001, 10)))
    implicit = convert(whole[offset:], 4096)
    reader = ConvertingReader(MemoryReader(whole), offset, chunk)
    out = bytearray()
    while True:
        bufs = [bytearray(n) for n in views]
        got = reader.read_into([memoryview(b) for b in bufs], None)
        out.extend(b"".join(bytes(b) for b in bufs)[:got])
        if got < sum(views) or not sum(views):
            break
    if sum(views):
        assert bytes(out) == implicit


# -- the data set's faults come out of the generator --------------------------------


class FailingReader(MemoryReader):
    """A file (or, read with offset None, a stream) that cannot be read
    from the read_into call number fail_at on."""

    def __init__(self, data, fail_at):
        MemoryReader.__init__(self, data)
        self.calls = 0
        self.fail_at = fail_at
        self.position = 0

    def read_into(self, views, offset):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise OSError(errno.EIO, "Input/output error")
        got = MemoryReader.read_into(self, views, self.position if offset is None else offset)
        self.position += got
        return got


@pytest.mark.parametrize("stream", [False, True])
def test_a_reader_error_comes_out_before_anything_is_yielded(stream):
    """Nothing of the message, not even its command, leaves before the
    first batch was read: a file that cannot be read fails the message
    while the association can still go on."""
    reader = FailingReader(pattern(100000), 1)
    if stream:
        pdus = message_pdus(CONTEXT, COMMAND, reader, 4090, batch=3 * 4102)
    else:
        pdus = message_pdus(CONTEXT, COMMAND, reader, 4090, 0, 100000, 3 * 4102)
    with pytest.raises(OSError) as err:
        next(pdus)
    assert err.value.errno == errno.EIO


@pytest.mark.parametrize("stream", [False, True])
def test_a_later_reader_error_comes_out_of_the_generator(stream):
    reader = FailingReader(pattern(100000), 3)
    if stream:
        pdus = message_pdus(CONTEXT, COMMAND, reader, 4090, batch=3 * 4102)
    else:
        pdus = message_pdus(CONTEXT, COMMAND, reader, 4090, 0, 100000, 3 * 4102)
    got = []
    with pytest.raises(OSError):
        for out, data in pdus:
            got.append(data)
    assert got and sum(got) < 100000


def test_a_conversion_error_comes_out_before_anything_is_yielded():
    # Pixel Data of undefined length (encapsulated) has no Implicit VR form.
    data_set = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    whole, offset = part10_file(data_set)
    pdus = message_pdus(CONTEXT, COMMAND, ConvertingReader(MemoryReader(whole), offset, 4090), 4090)
    with pytest.raises(ConversionError):
        next(pdus)


@pytest.mark.parametrize("short", [1, 4090, 50000])
def test_a_file_that_comes_back_short_is_a_short_data_set(short):
    size = 100000
    reader = MemoryReader(pattern(size), short=short)
    pdus = message_pdus(CONTEXT, COMMAND, reader, 4090, 0, size, 3 * 4102)
    sent = 0
    with pytest.raises(ShortDataSet) as err:
        for count, (_, data) in enumerate(pdus):
            assert count < 100, "the message never ends"
            sent += data
    assert sent <= size - short
    assert "shrank" in str(err.value)


def test_a_file_short_in_its_first_batch_sends_nothing():
    reader = MemoryReader(pattern(5000), short=10)
    pdus = message_pdus(CONTEXT, COMMAND, reader, 4090, 0, 5000)
    with pytest.raises(ShortDataSet) as err:
        next(pdus)
    assert "10 bytes short" in str(err.value)


# -- reassembly ---------------------------------------------------------------------


def pdvs_of(message):
    """The PDVs of message_pdus' output, as a peer's MessageReader gets them."""
    pdvs, _ = parsed(message, 1 << 20)
    return pdvs


def test_a_response_split_across_pdus_is_reassembled():
    rsp = store_response(7, 0xB000, "coerced")
    for limit in (1, 2, 7, len(rsp) - 1, len(rsp)):
        reader = MessageReader()
        found = [reader.add(*pdv) for pdv in pdvs_of(message_pdus(1, rsp, None, limit))]
        assert found[:-1] == [None] * (len(found) - 1)
        context_id, command, data_set = found[-1]
        assert context_id == 1 and data_set is None
        assert command[dimse.Status] == 0xB000 and command[dimse.ErrorComment] == "coerced"


@settings(max_examples=100, deadline=None)
@given(limit=st.integers(1, 200), size=st.integers(0, 2000))
def test_any_message_with_a_data_set_is_reassembled(limit, size):
    command = store_response(9, 0, None, dimse.DATA_SET_PRESENT)
    data = pattern(size, 11)
    reader = MessageReader(max_data_set=size)
    found = [reader.add(*pdv) for pdv in pdvs_of(message_pdus(3, command, data, limit))]
    assert found[-1] == (3, dimse.parse_command(command), data)
    assert found[:-1] == [None] * (len(found) - 1)
    # The reader is ready for the next message.
    found = [reader.add(*pdv) for pdv in pdvs_of(message_pdus(3, store_response(10, 0), None, limit))]
    assert found[-1][1][dimse.MessageIDBeingRespondedTo] == 10


def test_data_before_the_command_is_refused():
    with pytest.raises(dimse.DIMSEError, match="before the command set"):
        MessageReader().add(1, MCH_LAST, b"x")


def test_a_message_that_changes_context_is_refused():
    command = store_response(9, 0, None, dimse.DATA_SET_PRESENT)
    reader = MessageReader()
    reader.add(1, MCH_COMMAND, command[:10])
    with pytest.raises(dimse.DIMSEError, match="context 3 inside a message on context 1"):
        reader.add(3, MCH_COMMAND | MCH_LAST, command[10:])
    reader = MessageReader()
    reader.add(1, MCH_COMMAND | MCH_LAST, command)
    with pytest.raises(dimse.DIMSEError, match="context 3"):
        reader.add(3, MCH_LAST, b"data")


def test_a_command_fragment_after_the_command_set_is_refused():
    reader = MessageReader()
    reader.add(1, MCH_COMMAND | MCH_LAST, store_response(9, 0, None, dimse.DATA_SET_PRESENT))
    with pytest.raises(dimse.DIMSEError, match="after the command set was complete"):
        reader.add(1, MCH_COMMAND, b"")


def test_an_oversize_data_set_is_refused_by_the_bounded_sink():
    reader = MessageReader(max_data_set=10)
    reader.add(1, MCH_COMMAND | MCH_LAST, store_response(9, 0, None, dimse.DATA_SET_PRESENT))
    reader.add(1, 0, b"12345")
    with pytest.raises(dimse.DIMSEError, match="over 10 bytes"):
        reader.add(1, MCH_LAST, b"678901")
    sink = BoundedSink(4)
    sink.write(b"1234")
    with pytest.raises(dimse.DIMSEError):
        sink.write(b"5")
    assert sink.close() == b"1234"


def test_an_oversize_command_set_is_refused():
    reader = MessageReader()
    reader.add(1, MCH_COMMAND, bytes(dimse.MAX_COMMAND_SET))
    with pytest.raises(dimse.DIMSEError, match="command set over"):
        reader.add(1, MCH_COMMAND, b"x")


def test_a_sink_of_the_services_choosing_gets_the_data_set():
    written = []

    class Sink:
        def write(self, data):
            written.append(bytes(data))

        def close(self):
            return len(written)

    reader = MessageReader(new_sink=lambda command: Sink())
    command = store_response(9, 0, None, dimse.DATA_SET_PRESENT)
    found = [reader.add(*pdv) for pdv in pdvs_of(message_pdus(1, command, pattern(1000), 300))]
    assert found[-1][2] == 4 and b"".join(written) == pattern(1000)



# -- the conversion, checked by another writer ------------------------------------------


def pydicom_implicit(explicit):
    """pydicom's Implicit VR LE encoding of an Explicit VR LE data set, every
    sequence and item of undefined length (as net/convert.py writes them)."""
    from io import BytesIO

    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    from pydicom.filewriter import write_dataset

    def undefined(ds):
        for elem in ds:
            if elem.VR == "SQ":
                elem.is_undefined_length = True
                for item in elem.value:
                    item.is_undefined_length_sequence_item = True
                    undefined(item)

    ds = read_dataset(BytesIO(explicit), False, True)
    undefined(ds)
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = True
    write_dataset(fp, ds)
    return fp.getvalue()


@pytest.mark.parametrize("pixels", [0, 2, 1001, 70000])
def test_the_conversion_equals_pydicoms_implicit_encoding(pixels):
    """The vectors' data set (sequences defined and undefined, nested, empty
    sequences and items, private elements) converted as it streams is byte
    for byte what pydicom writes, whatever the chunks it came in."""
    explicit = sequence_data_set(pattern(pixels, 12))
    expected = pydicom_implicit(explicit)
    for chunk in (1, 5, 12, 13, 4096):
        assert convert(explicit, chunk) == expected
