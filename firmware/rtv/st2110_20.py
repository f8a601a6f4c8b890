"""RFC 4175 / SMPTE ST 2110-20 uncompressed video, General Packing Mode:
one frame of pixel data in, the RTP datagrams that carry it out.

Datagram layout (RFC 4175 4.3, ST 2110-20 6.2):

    RTP fixed header (12)  RFC 3550 5.1; marker set on the frame's last packet
    Extended Seq No  (2)   high 16 bits of the 32-bit sequence number
    SRD header (6) x n     Length 16 | F 1, Line No 15 | C 1, Offset 15
    pixel data             the SRD segments in the same order, back to back

Packing rule chosen (ST 2110-20 6.3: the GPM allows it; RFC 4175 4.3 lets a
packet carry several lines): every datagram is filled up to max_datagram
with whole pgroups. When a line ends inside a datagram and there is room for
another SRD header plus one pgroup, the next line continues in the same
datagram under a second SRD header (C set on the one before). A frame is
row-major without padding, so the data of one datagram is always one
contiguous slice of the frame, whatever the number of SRDs.

Size: max_datagram counts the UDP payload (RTP header included). The default
1460 is ST 2110-10's Standard UDP Size Limit; with the 20-byte IPv4 and
8-byte UDP headers that is 1488 bytes on the wire, inside a 1500-byte MTU.
(IPv6's 40-byte header needs max_datagram <= 1452.)

Only 8-bit YCbCr-4:2:2 and 8-bit RGB for now; 10-bit pgroups (5 bytes per
2 pixels, bit-packed) would need the acquisition side to pack them too.
"""

import struct

# ST 2110-20 6.2 / RFC 4175 4.3-4.4: (sampling, depth) -> (pgroup bytes,
# pixels per pgroup). 4:2:2 8-bit: Cb Y0 Cr Y1 (= UYVY); RGB 8-bit: R G B.
PGROUPS = {
    ("YCbCr-4:2:2", 8): (4, 2),
    ("RGB", 8): (3, 1),
}

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
                "sampling %r at depth %r is not supported (only YCbCr-4:2:2 and RGB at depth 8; "
                "10-bit pgroups are not implemented)" % (sampling, depth))
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

    def packets(self, frame, timestamp):
        """Yields the datagrams (bytes) of one frame sampled at RTP time
        timestamp, the last one with the marker bit (RFC 4175 4.1)."""
        if len(frame) != self.frame_size:
            raise ValueError("frame is %d bytes, %dx%d %s needs %d"
                             % (len(frame), self.width, self.height, self.sampling, self.frame_size))
        data = memoryview(frame)
        pack = struct.pack
        row, pg, xinc = self.row_size, self.pgroup_size, self.pgroup_pixels
        room0 = self.max_datagram - _HEAD
        end = self.frame_size
        pt, ssrc = self.payload_type, self.ssrc
        timestamp &= 0xFFFFFFFF
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
            seq = self.sequence
            self.sequence = (seq + 1) & 0xFFFFFFFF
            head = pack(_HEAD_FORMAT, 0x80, pt | (0x80 if pos == end else 0), seq & 0xFFFF,
                        timestamp, ssrc, seq >> 16)
            yield head + srd + data[start:pos]
