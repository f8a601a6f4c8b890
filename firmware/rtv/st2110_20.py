"""RFC 4175 / SMPTE ST 2110-20 uncompressed video, General Packing Mode:
one frame of pixel data in, the RTP datagrams that carry it out.

Datagram layout (RFC 4175 4.3, ST 2110-20 6.2):

    RTP fixed header (12)  RFC 3550 5.1; marker set on the frame's last packet
    Extended Seq No  (2)   high 16 bits of the 32-bit sequence number
    SRD header (6) x n     Length 16 | F 1, Line No 15 | C 1, Offset 15
    pixel data             the SRD segments in the same order, back to back

Packing rules (the General Packing Mode allows both; RFC 4175 4.3 lets a
packet carry several lines). A frame is row-major without padding, so the
data of one datagram is always one contiguous slice of the frame:

- equal-size: when a line splits into n equal segments of whole pgroups
  that each fill at least 3/4 of a datagram, every datagram carries one
  segment under one SRD header, so every datagram of the frame has the same
  size. Senders then hand the kernel a whole burst in one call (Linux UDP
  generic segmentation offload cuts it into equal datagrams) and receivers
  see a constant packet size. 1920x1080 YCbCr-4:2:2 8-bit: 3 datagrams of
  1300 bytes a line; RGB 8-bit: 4 of 1460.
- filled: otherwise every datagram is filled up to max_datagram with whole
  pgroups. When a line ends inside a datagram and there is room for another
  SRD header plus one pgroup, the next line continues in the same datagram
  under a second SRD header (C set on the one before).

Size: max_datagram counts the UDP payload (RTP header included). The default
1460 is ST 2110-10's Standard UDP Size Limit; with the 20-byte IPv4 and
8-byte UDP headers that is 1488 bytes on the wire, inside a 1500-byte MTU.
(IPv6's 40-byte header needs max_datagram <= 1452.)

Depths: 8-bit YCbCr-4:2:2 and RGB travel as the boards deliver them. For
10-bit YCbCr-4:2:2 the boards (and DICOM's stored Pixel Data, PS3.5 8.1.1)
use one little-endian 16-bit word per sample, Cb Y0 Cr Y1, value in the low
10 bits; ST 2110-20 packs a pgroup of those four samples into 5 bytes, most
significant bit first (pack_10bit).
"""

import struct

# ST 2110-20 6.2 / RFC 4175 4.3-4.4: (sampling, depth) -> (pgroup bytes,
# pixels per pgroup). 4:2:2 8-bit: Cb Y0 Cr Y1 (= UYVY); RGB 8-bit: R G B.
# 4:2:2 10-bit: Cb Y0 Cr Y1 as four 10-bit fields in 5 bytes.
PGROUPS = {
    ("YCbCr-4:2:2", 8): (4, 2),
    ("YCbCr-4:2:2", 10): (5, 2),
    ("RGB", 8): (3, 1),
}

# Bytes of one pixel pair as the boards deliver 10-bit 4:2:2 (four words).
_WORDS_PER_PGROUP = 8


def pack_10bit(words):
    """Samples as little-endian 16-bit words (Cb Y0 Cr Y1 ...) to ST 2110-20
    10-bit pgroups: each 4 samples become 40 bits, big-endian. Bits above
    the 10th are dropped.

    Where the runtime has bytes.translate and stepped slices (CPython) the
    work is done on whole columns of bytes at once (_pack_10bit_columns,
    about 20 ms for a 1080p frame against 540 ms for the loop); MicroPython
    has neither and runs the loop. Both give the same bytes (tests/test_rtv.py
    compares them; the 10-bit vectors run the loop on MicroPython)."""
    if _COLUMN_TABLES:
        return _pack_10bit_columns(words)
    return _pack_10bit_loop(words)


def _pack_10bit_loop(words):
    n = len(words) // _WORDS_PER_PGROUP
    out = bytearray(5 * n)
    mv = memoryview(words)
    j = 0
    for i in range(0, n * _WORDS_PER_PGROUP, _WORDS_PER_PGROUP):
        a = mv[i] | (mv[i + 1] & 3) << 8
        b = mv[i + 2] | (mv[i + 3] & 3) << 8
        c = mv[i + 4] | (mv[i + 5] & 3) << 8
        d = mv[i + 6] | (mv[i + 7] & 3) << 8
        out[j] = a >> 2
        out[j + 1] = (a & 3) << 6 | b >> 4
        out[j + 2] = (b & 15) << 4 | c >> 6
        out[j + 3] = (c & 63) << 2 | d >> 8
        out[j + 4] = d & 255
        j += 5
    return bytes(out)


def _byte_table(function):
    return bytes(function(v) & 255 for v in range(256))


# The four samples a, b, c, d of a pgroup, each as a low byte (bits 0-7)
# and a high byte (bits 8-9 in its bits 0-1), give the five bytes
#   a >> 2 | ...: a9..a2;  a1 a0 b9..b4;  b3..b0 c9..c6;  c5..c0 d9 d8;  d7..d0
# Each term is one byte column through a 256-entry table; the terms of an
# output byte have disjoint bits, OR-ed as big integers.
_COLUMN_TABLES = None
_COLUMN_PGROUPS = 16384  # 128 KiB of words a slice
if hasattr(bytes, "translate"):
    _COLUMN_TABLES = (
        # (sample, low or high byte, table) terms of output bytes 0 to 3;
        # byte 4 is d's low byte as it is.
        ((0, 0, _byte_table(lambda v: v >> 2)), (0, 1, _byte_table(lambda v: (v & 3) << 6))),
        ((0, 0, _byte_table(lambda v: (v & 3) << 6)), (1, 0, _byte_table(lambda v: v >> 4)),
         (1, 1, _byte_table(lambda v: (v & 3) << 4))),
        ((1, 0, _byte_table(lambda v: (v & 15) << 4)), (2, 0, _byte_table(lambda v: v >> 6)),
         (2, 1, _byte_table(lambda v: (v & 3) << 2))),
        ((2, 0, _byte_table(lambda v: (v & 63) << 2)), (3, 1, _byte_table(lambda v: v & 3))),
    )


def _pack_10bit_columns(words):
    n = len(words) // _WORDS_PER_PGROUP
    out = bytearray(5 * n)
    # A slice of pgroups at a time: the columns and their integers are
    # copies, and a frame's worth of them would double the frame's memory.
    for first in range(0, n, _COLUMN_PGROUPS):
        last = min(n, first + _COLUMN_PGROUPS)
        count = last - first
        data = bytes(words[first * _WORDS_PER_PGROUP:last * _WORDS_PER_PGROUP])
        # column (sample, byte): that byte of that sample of every pgroup.
        columns = {}
        for sample in range(4):
            for byte in range(2):
                columns[sample, byte] = data[2 * sample + byte::_WORDS_PER_PGROUP]
        for k, terms in enumerate(_COLUMN_TABLES):
            value = 0
            for sample, byte, table in terms:
                value |= int.from_bytes(columns[sample, byte].translate(table), "big")
            out[5 * first + k:5 * last:5] = value.to_bytes(count, "big")
        out[5 * first + 4:5 * last:5] = columns[3, 0]
    return bytes(out)


def unpack_10bit(data):
    """The inverse of pack_10bit: 10-bit pgroups to 16-bit LE words."""
    out = bytearray(len(data) // 5 * _WORDS_PER_PGROUP)
    j = 0
    for i in range(0, len(data) - len(data) % 5, 5):
        v = int.from_bytes(data[i:i + 5], "big")
        for shift in (30, 20, 10, 0):
            w = (v >> shift) & 1023
            out[j] = w & 255
            out[j + 1] = w >> 8
            j += 2
    return bytes(out)


def equal_segment(row_size, room, pgroup_size):
    """The equal-size packing rule: the pixel bytes of each datagram when a
    line of row_size bytes splits into equal segments of whole pgroups,
    none larger than room and each at least 3/4 of it; else None."""
    n = (row_size + room - 1) // room
    while True:
        seg = row_size // n
        if seg * 4 < room * 3:
            return None
        if seg * n == row_size and seg % pgroup_size == 0:
            return seg
        n += 1

# ST 2110-10: the Standard UDP Size Limit (UDP payload, RTP header included).
MAX_DATAGRAM = 1460

# RTP header (RFC 3550 5.1) + Extended Sequence Number (RFC 4175 4.3).
_HEAD = 14
_SRD = 6
_HEAD_FORMAT = ">BBHIIH"


class Packetizer:
    """Turns frames of width x height pixels into datagrams. sequence is the
    32-bit extended sequence number of the next datagram; it carries on
    from frame to frame (RFC 4175 4.3: low 16 bits in the RTP header, high
    16 bits in the payload header)."""

    def __init__(self, width, height, sampling, depth=8, payload_type=96, ssrc=0,
                 max_datagram=MAX_DATAGRAM, sequence=0):
        pgroup = PGROUPS.get((sampling, depth))
        if pgroup is None:
            raise ValueError(
                "sampling %r at depth %r is not supported (YCbCr-4:2:2 at 8 or 10, RGB at 8)"
                % (sampling, depth))
        self.pgroup_size, self.pgroup_pixels = pgroup
        if width <= 0 or height <= 0 or width % self.pgroup_pixels:
            raise ValueError("%dx%d: width must be a positive multiple of %d for %s"
                             % (width, height, self.pgroup_pixels, sampling))
        # RFC 4175 4.3: Line No and Offset are 15-bit fields.
        if width > 0x8000 or height > 0x8000:
            raise ValueError("%dx%d exceeds the 15-bit line and offset fields" % (width, height))
        if not 0 <= payload_type <= 127:
            raise ValueError("RTP payload type %r is not in 0..127" % (payload_type,))
        if max_datagram - _HEAD - _SRD < self.pgroup_size:
            raise ValueError("max_datagram %d leaves no room for one pgroup" % max_datagram)
        self.width = width
        self.height = height
        self.sampling = sampling
        self.depth = depth
        self.payload_type = payload_type
        self.ssrc = ssrc & 0xFFFFFFFF
        self.max_datagram = max_datagram
        self.sequence = sequence & 0xFFFFFFFF
        self.row_size = width * self.pgroup_size // self.pgroup_pixels
        self.frame_size = self.row_size * height
        # What the board delivers: 10-bit samples come as 16-bit words.
        self.input_size = self.frame_size
        if depth == 10:
            self.input_size = width * height * 2 * 2
        self.segment = equal_segment(self.row_size, max_datagram - _HEAD - _SRD, self.pgroup_size)

    def datagram_count(self):
        """How many datagrams one frame takes (N_PACKETS of ST 2110-21)."""
        if self.segment:
            return self.frame_size // self.segment
        return sum(1 for _ in self._filled_bounds())

    def pgroups(self, frame):
        """The frame as the board delivers it (input_size bytes), checked,
        as ST 2110-20 pgroups (frame_size bytes). 10-bit frames are packed
        here, which takes a while: a sender does it before the frame's
        slot, and hands the result to packets() or bursts() with packed."""
        if len(frame) != self.input_size:
            raise ValueError("frame is %d bytes, %dx%d %s %d-bit needs %d"
                             % (len(frame), self.width, self.height, self.sampling, self.depth,
                                self.input_size))
        if self.depth == 10:
            frame = pack_10bit(frame)
        return memoryview(frame)

    def _data(self, frame, packed):
        if not packed:
            return self.pgroups(frame)
        if len(frame) != self.frame_size:
            raise ValueError("packed frame is %d bytes, not %d" % (len(frame), self.frame_size))
        return memoryview(frame)

    def packets(self, frame, timestamp, packed=False):
        """Yields the datagrams (bytes) of one frame sampled at RTP time
        timestamp, the last one with the marker bit (RFC 4175 4.1). frame
        is as the board delivers it (input_size bytes), or with packed
        what pgroups() made of it."""
        data = self._data(frame, packed)
        pack = struct.pack
        pt, ssrc = self.payload_type, self.ssrc
        timestamp &= 0xFFFFFFFF
        end = self.frame_size
        if self.segment:
            seg, row, xinc, pg = self.segment, self.row_size, self.pgroup_pixels, self.pgroup_size
            pos = 0
            for line in range(self.height):
                for at in range(0, row, seg):
                    seq = self.sequence
                    self.sequence = (seq + 1) & 0xFFFFFFFF
                    last = pos + seg == end
                    # RFC 4175 4.3: F = 0 (progressive), C = 0 (one SRD).
                    head = pack(">BBHIIHHHH", 0x80, pt | (0x80 if last else 0), seq & 0xFFFF,
                                timestamp, ssrc, seq >> 16, seg, line, at // pg * xinc)
                    yield head + data[pos:pos + seg]
                    pos += seg
            return
        for start, stop, srd in self._filled_bounds():
            seq = self.sequence
            self.sequence = (seq + 1) & 0xFFFFFFFF
            head = pack(_HEAD_FORMAT, 0x80, pt | (0x80 if stop == end else 0), seq & 0xFFFF,
                        timestamp, ssrc, seq >> 16)
            yield head + srd + data[start:stop]

    def bursts(self, frame, timestamp, burst, packed=False):
        """The frame's datagrams in groups of up to burst, for a sender
        that hands a group to the kernel at once. Yields (data, size,
        count): with equal-size packing data is the group's datagrams back
        to back, each size bytes (built in one buffer: one copy of the
        pixels, no per-datagram objects); otherwise data is a list of
        count datagrams and size is None."""
        if not self.segment:
            group = []
            for d in self.packets(frame, timestamp, packed):
                group.append(d)
                if len(group) == burst:
                    yield group, None, burst
                    group = []
            if group:
                yield group, None, len(group)
            return
        data = self._data(frame, packed)
        pack_into = struct.pack_into
        seg, row, xinc, pg = self.segment, self.row_size, self.pgroup_pixels, self.pgroup_size
        size = _HEAD + _SRD + seg
        pt, ssrc = self.payload_type, self.ssrc
        timestamp &= 0xFFFFFFFF
        per_row = row // seg
        total = self.frame_size // seg
        i = 0
        while i < total:
            n = min(burst, total - i)
            buf = bytearray(n * size)
            at = 0
            for j in range(i, i + n):
                seq = self.sequence
                self.sequence = (seq + 1) & 0xFFFFFFFF
                line, part = divmod(j, per_row)
                pack_into(">BBHIIHHHH", buf, at, 0x80, pt | (0x80 if j == total - 1 else 0), seq & 0xFFFF,
                          timestamp, ssrc, seq >> 16, seg, line, part * seg // pg * xinc)
                pos = j * seg
                buf[at + 20:at + size] = data[pos:pos + seg]
                at += size
            yield buf, size, n
            i += n

    def _filled_bounds(self):
        """The filled packing rule: (start, stop, SRD headers) per datagram."""
        pack = struct.pack
        row, pg, xinc = self.row_size, self.pgroup_size, self.pgroup_pixels
        room0 = self.max_datagram - _HEAD
        end = self.frame_size
        pos = 0
        while pos < end:
            start = pos
            room = room0 - _SRD
            srd = bytearray()
            while True:
                line = pos // row
                at = pos - line * row
                n = row - at
                fit = room - room % pg
                if n > fit:
                    n = fit
                # RFC 4175 4.3: F = 0 (progressive), Offset counts pixels, C
                # set for now (cleared below on the last SRD of the datagram).
                srd += pack(">HHH", n, line, 0x8000 | at // pg * xinc)
                pos += n
                room -= n + _SRD
                if pos == end or pos - line * row < row or room < pg:
                    break
            srd[-2] &= 0x7F
            yield start, pos, bytes(srd)
