"""The SDPs (RFC 4566) that describe the PS3.22 flows: the ST 2110-20
video flow and the DICOM metadata flow, as PS3.22 asks every flow to be
described. Text only; publishing it (files in --sdp-dir) is the caller's."""

from firmware.rtv import nmos
from firmware.rtv.metadata import ENCODING_NAME, PAYLOAD_TYPE
from firmware.rtv.pacing import planned_troffset_ns, tro_default_ns
from firmware.rtv.rtp import CLOCK_RATE
from firmware.rtv.st2110_20 import PGROUPS, Packetizer


def _is_multicast_v4(host):
    # RFC 5771: 224.0.0.0/4
    first = host.split(".")[0]
    return first.isdigit() and 224 <= int(first) <= 239


def exact_frame_rate(rate):
    """ST 2110-20 7.2: an integer when it is one ("30"), else num/den
    ("30000/1001")."""
    num, den = rate
    if num % den == 0:
        return "%d" % (num // den)
    return "%d/%d" % (num, den)


# RFC 7273 4.8 / ST 2110-10 8.2: the reference clock when the sender has none
# it can name: a local, free-running clock identified by a MAC address.
UNKNOWN_MAC = "00-00-00-00-00-00"
PTP_TRACEABLE = "ptp=IEEE1588-2008:traceable"


def reference_clock(ptp, mac=None):
    """The ts-refclk value (RFC 7273 4.8, ST 2110-10 8.2): with a PTP clock
    traceable to a grandmaster, IEEE 1588-2008 traceable; otherwise the
    truth: the local clock of the interface with this MAC (aa:bb:... or
    aa-bb-...)."""
    if ptp:
        return PTP_TRACEABLE
    return "localmac=" + (mac or UNKNOWN_MAC).replace(":", "-").upper()


def video_sdp(dest_host, dest_port, width, height, rate, sampling, depth,
              payload_type=96, ttl=None, source_host="127.0.0.1",
              session_name="modgate video", session_id=1, colorimetry="BT601", refclk=None,
              troffset_ns=None):
    """The session description of one ST 2110-20 flow, CRLF line endings
    (RFC 4566 5). For an IPv4 multicast destination the c= line carries the
    TTL (RFC 4566 5.7 requires it; default 1, the local link); for unicast it
    must not and ttl is ignored. troffset_ns: the sender's TR_OFFSET
    (default: modgate's plan for the format, pacing.planned_troffset_ns),
    signalled as TROFF when it is not TRO_DEFAULT."""
    if (sampling, depth) not in PGROUPS:
        raise ValueError("sampling %r at depth %r is not supported" % (sampling, depth))
    if not 0 <= payload_type <= 127:
        raise ValueError("RTP payload type %r is not in 0..127" % (payload_type,))
    if troffset_ns is None:
        npackets = Packetizer(width, height, sampling, depth).datagram_count()
        troffset_ns = planned_troffset_ns(npackets, rate, height)
    params = [
        "sampling=" + sampling,
        "width=%d" % width,
        "height=%d" % height,
        "exactframerate=" + exact_frame_rate(rate),
        "depth=%d" % depth,
        "TCS=SDR",  # ST 2110-20: transfer characteristic (its default)
        "colorimetry=" + colorimetry,  # PS3.22: BT601 only
        # ST 2110-20 7.3: RANGE defaults to NARROW. The board's RGB samples
        # use 0..255 (FULL); its YCbCr is the acquisition's (narrow, BT.601).
        "RANGE=" + ("FULL" if sampling == "RGB" else "NARROW"),
        "PM=2110GPM",  # ST 2110-20: General Packing Mode
        "SSN=ST2110-20:2017",  # ST 2110-20: the standard's version
        "TP=2110TPW",  # ST 2110-21 8.1: a wide sender (Type W, 7.1.4)
    ]
    if troffset_ns != tro_default_ns(height, rate):
        # ST 2110-21 6.2, 8.2: a TR_OFFSET other than TRO_DEFAULT is
        # signalled, in whole microseconds.
        params.append("TROFF=%d" % (troffset_ns // 1000))
    fmtp = "; ".join(params)
    media = (
        "m=video %d RTP/AVP %d" % (dest_port, payload_type),  # RFC 4566 5.14
        "a=rtpmap:%d raw/%d" % (payload_type, CLOCK_RATE),  # RFC 4175 6.1
        "a=fmtp:%d %s" % (payload_type, fmtp),  # ST 2110-20
    )
    return _description(dest_host, ttl, source_host, session_name, session_id, media, refclk)


def metadata_sdp(dest_host, dest_port, payload_type=PAYLOAD_TYPE, ttl=None, source_host="127.0.0.1",
                 session_name="modgate metadata", session_id=2, refclk=None):
    """The session description of the DICOM metadata flow (PS3.22):
    a=rtpmap:104 dicom/90000, the same media clock as the video, and the
    a=extmap lines of the NMOS header extension elements it carries."""
    if not 0 <= payload_type <= 127:
        raise ValueError("RTP payload type %r is not in 0..127" % (payload_type,))
    media = [
        "m=application %d RTP/AVP %d" % (dest_port, payload_type),  # RFC 4566 5.14
        "a=rtpmap:%d %s/%d" % (payload_type, ENCODING_NAME, CLOCK_RATE),
    ]
    # RFC 8285 5: one a=extmap per header extension element.
    media.extend("a=extmap:%d %s" % pair for pair in nmos.URNS)
    return _description(dest_host, ttl, source_host, session_name, session_id, media, refclk)


def _description(dest_host, ttl, source_host, session_name, session_id, media, refclk):
    """The session and timing lines both flows share, around media. refclk:
    reference_clock()'s value; None: a local clock of unknown identity."""
    connection = dest_host
    if _is_multicast_v4(dest_host):
        connection = "%s/%d" % (dest_host, 1 if ttl is None else ttl)
    lines = [
        "v=0",  # RFC 4566 5.1
        "o=- %d %d IN IP4 %s" % (session_id, session_id, source_host),  # 5.2
        "s=" + session_name,  # 5.3
        "c=IN IP4 " + connection,  # 5.7
        "t=0 0",  # 5.9: unbounded session
    ]
    lines.extend(media)
    lines.append("a=mediaclk:direct=0")  # ST 2110-10, RFC 7273 5: RTP clock = media clock
    lines.append("a=ts-refclk:" + (refclk or reference_clock(False)))  # ST 2110-10 8.2, RFC 7273 4.8
    return "\r\n".join(lines) + "\r\n"
