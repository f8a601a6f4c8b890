"""The NMOS in-stream identity and timing RTP header extensions (AMWA
NMOS, as the "urn:x-nmos:rtp-hdrext:" URNs), which PS3.22 makes mandatory on
the first packet of each frame of the DICOM metadata flow.

Each is one element of a RFC 8285 one-byte header extension; the SDP maps
its URN to the element ID with an a=extmap line. The IDs here are the ones
NMOS senders commonly use, so a receiver that ignores the SDP still finds
them.
"""

import struct

ORIGIN_TIMESTAMP = 1  # when the grain (frame) was captured: PTP time
FLOW_ID = 3  # the flow's UUID
SOURCE_ID = 4  # the source's UUID (the camera/modality)
GRAIN_FLAGS = 5  # start/end of grain
SYNC_TIMESTAMP = 7  # the PTP time the RTP timestamp stands for
GRAIN_DURATION = 9  # the frame period as a rational

URNS = (
    (ORIGIN_TIMESTAMP, "urn:x-nmos:rtp-hdrext:origin-timestamp"),
    (FLOW_ID, "urn:x-nmos:rtp-hdrext:flow-id"),
    (SOURCE_ID, "urn:x-nmos:rtp-hdrext:source-id"),
    (GRAIN_FLAGS, "urn:x-nmos:rtp-hdrext:grain-flags"),
    (SYNC_TIMESTAMP, "urn:x-nmos:rtp-hdrext:sync-timestamp"),
    (GRAIN_DURATION, "urn:x-nmos:rtp-hdrext:grain-duration"),
)

GRAIN_START = 0x80
GRAIN_END = 0x40

# TAI - UTC in seconds since 1 January 2017 (IERS Bulletin C: no leap second
# since). Only for clocks that keep UTC; a PTP hardware clock keeps TAI.
TAI_UTC_OFFSET = 37


def ptp_timestamp(tai_ns):
    """IEEE 1588 Timestamp: 48-bit seconds and 32-bit nanoseconds since the
    PTP epoch (1970-01-01 00:00:00 TAI), big-endian: 10 bytes. Also the
    form of Frame Origin Timestamp (0034,0007), PS3.3 C.7.6.27.1.1."""
    seconds, ns = divmod(tai_ns, 1000000000)
    return struct.pack(">HII", (seconds >> 32) & 0xFFFF, seconds & 0xFFFFFFFF, ns)


def parse_ptp_timestamp(data):
    hi, lo, ns = struct.unpack(">HII", bytes(data))
    return ((hi << 32 | lo) * 1000000000) + ns


def elements(origin_ns, sync_ns, flow_id, source_id, rate, flags=GRAIN_START | GRAIN_END):
    """The (id, bytes) elements for one frame: flow and source ids are 16
    bytes (a UUID), rate is (num, den) frames per second; grain-duration is
    its inverse as two 32-bit integers (den, num)."""
    if len(flow_id) != 16 or len(source_id) != 16:
        raise ValueError("NMOS flow and source ids are 16-byte UUIDs")
    return (
        (SYNC_TIMESTAMP, ptp_timestamp(sync_ns)),
        (ORIGIN_TIMESTAMP, ptp_timestamp(origin_ns)),
        (FLOW_ID, bytes(flow_id)),
        (SOURCE_ID, bytes(source_id)),
        (GRAIN_FLAGS, bytes((flags,))),
        (GRAIN_DURATION, struct.pack(">II", rate[1], rate[0])),
    )
