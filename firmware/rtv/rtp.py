"""RTP (RFC 3550) as PS3.22 uses it: the fixed header and the media clock."""

import struct

# ST 2110-10 (media clock) and RFC 4175 6.1 (raw/90000): video flows use a 90 kHz RTP clock.
CLOCK_RATE = 90000

# RFC 3550 5.1: V=2, P=0, X=0, CC=0 in the first octet.
_V2 = 0x80
HEADER_SIZE = 12


def rtp_header(payload_type, sequence, timestamp, ssrc, marker=False):
    """The 12-byte fixed header of RFC 3550 5.1: version 2, no padding, no
    extension, no CSRC. sequence, timestamp and ssrc are taken modulo
    2**16, 2**32, 2**32."""
    if not 0 <= payload_type <= 127:
        raise ValueError("RTP payload type %r is not in 0..127" % (payload_type,))
    return struct.pack(
        ">BBHII",
        _V2,
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
