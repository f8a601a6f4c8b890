"""RTP (RFC 3550) as PS3.22 uses it: the fixed header and the media clock."""

import struct

# ST 2110-10 (media clock) and RFC 4175 6.1 (raw/90000): video flows use a 90 kHz RTP clock.
CLOCK_RATE = 90000

# RFC 3550 5.1: V=2, P=0, X=0, CC=0 in the first octet.
_V2 = 0x80
HEADER_SIZE = 12


# RFC 8285 4.2 (formerly RFC 5285): the one-byte header extension form.
ONE_BYTE_PROFILE = 0xBEDE


def rtp_header(payload_type, sequence, timestamp, ssrc, marker=False, extension=False):
    """The 12-byte fixed header of RFC 3550 5.1: version 2, no padding, no
    CSRC; X set when a header extension follows. sequence, timestamp and
    ssrc are taken modulo 2**16, 2**32, 2**32."""
    if not 0 <= payload_type <= 127:
        raise ValueError("RTP payload type %r is not in 0..127" % (payload_type,))
    return struct.pack(
        ">BBHII",
        _V2 | (0x10 if extension else 0),
        (0x80 if marker else 0) | payload_type,
        sequence & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


def frame_timestamp(k, rate, offset=0):
    """The RTP timestamp of frame k at frame rate (num, den) frames per
    second: ST 2110-10, the media clock counts 90 kHz ticks, so frame k
    is sampled at k * 90000 * den / num (floored for 30000/1001); RFC 3550
    5.1: modulo 2**32. offset is the random start RFC 3550 asks for."""
    num, den = rate
    return (offset + k * CLOCK_RATE * den // num) & 0xFFFFFFFF


def one_byte_extension(elements):
    """An RFC 3550 5.3.1 header extension in the RFC 8285 4.2 one-byte form:
    0xBEDE, the length in 32-bit words, then per element a byte ID (1..14)
    << 4 | (length - 1) and 1..16 bytes of data, zero-padded to a word.
    elements: (id, bytes) pairs."""
    body = bytearray()
    for ident, data in elements:
        if not 1 <= ident <= 14:
            raise ValueError("one-byte extension ID %r is not in 1..14" % (ident,))
        if not 1 <= len(data) <= 16:
            raise ValueError("one-byte extension element of %d bytes (1..16)" % len(data))
        body.append(ident << 4 | (len(data) - 1))
        body += data
    body += bytes(-len(body) % 4)
    return struct.pack(">HH", ONE_BYTE_PROFILE, len(body) // 4) + body


def parse_packet(datagram):
    """The fields of an RTP packet (RFC 3550 5.1, 5.3.1): a dict with
    version, padding, marker, payload_type, sequence, timestamp, ssrc,
    extension ({id: bytes} for the one-byte form, None if X is clear) and
    payload (a memoryview). Raises ValueError on a malformed packet."""
    n = len(datagram)
    if n < HEADER_SIZE:
        raise ValueError("RTP packet of %d bytes is shorter than its header" % n)
    b0, b1, seq, ts, ssrc = struct.unpack_from(">BBHII", datagram, 0)
    if b0 >> 6 != 2:
        raise ValueError("RTP version %d, not 2" % (b0 >> 6))
    pos = HEADER_SIZE + 4 * (b0 & 15)
    extension = None
    if b0 & 0x10:
        if pos + 4 > n:
            raise ValueError("RTP header extension runs past the packet")
        profile, words = struct.unpack_from(">HH", datagram, pos)
        start, pos = pos + 4, pos + 4 + 4 * words
        if pos > n:
            raise ValueError("RTP header extension runs past the packet")
        extension = {}
        if profile == ONE_BYTE_PROFILE:
            i = start
            while i < pos:
                head = datagram[i]
                if head == 0:  # RFC 8285 4.2: padding
                    i += 1
                    continue
                ident, length = head >> 4, (head & 15) + 1
                if ident == 15:  # RFC 8285 4.2: stop parsing
                    break
                extension[ident] = bytes(datagram[i + 1:i + 1 + length])
                i += 1 + length
    end = n
    if b0 & 0x20:  # RFC 3550 5.1: the last octet counts the padding
        end -= datagram[n - 1]
    if end < pos:
        raise ValueError("RTP padding runs into the header")
    return {"version": 2, "padding": bool(b0 & 0x20), "marker": bool(b1 & 0x80),
            "payload_type": b1 & 127, "sequence": seq, "timestamp": ts, "ssrc": ssrc,
            "extension": extension, "payload": memoryview(datagram)[pos:end]}
