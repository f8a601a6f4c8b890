"""The SDP (RFC 4566) that describes a ST 2110-20 video flow, as PS3.22
asks every flow to be described. Text only; publishing it is the caller's."""

from firmware.rtv.st2110_20 import PGROUPS


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


def video_sdp(dest_host, dest_port, width, height, rate, sampling, depth,
              payload_type=96, ttl=None, source_host="127.0.0.1",
              session_name="modgate video", session_id=1, colorimetry="BT601"):
    """The session description of one ST 2110-20 flow, CRLF line endings
    (RFC 4566 5). For an IPv4 multicast destination the c= line carries the
    TTL (RFC 4566 5.7 requires it; default 1, the local link); for unicast it
    must not and ttl is ignored."""
    if (sampling, depth) not in PGROUPS:
        raise ValueError("sampling %r at depth %r is not supported" % (sampling, depth))
    if not 0 <= payload_type <= 127:
        raise ValueError("RTP payload type %r is not in 0..127" % (payload_type,))
    connection = dest_host
    if _is_multicast_v4(dest_host):
        connection = "%s/%d" % (dest_host, 1 if ttl is None else ttl)
    fmtp = "; ".join((
        "sampling=" + sampling,
        "width=%d" % width,
        "height=%d" % height,
        "exactframerate=" + exact_frame_rate(rate),
        "depth=%d" % depth,
        "TCS=SDR",  # ST 2110-20 7.3: transfer characteristic (its default)
        "colorimetry=" + colorimetry,  # ST 2110-20 7.2
        "PM=2110GPM",  # ST 2110-20 6.3: General Packing Mode
        "SSN=ST2110-20:2017",  # ST 2110-20 7.2: the standard's version
        "TP=2110TPW",  # ST 2110-21 8: wide sender timing
    ))
    lines = (
        "v=0",  # RFC 4566 5.1
        "o=- %d %d IN IP4 %s" % (session_id, session_id, source_host),  # 5.2
        "s=" + session_name,  # 5.3
        "c=IN IP4 " + connection,  # 5.7
        "t=0 0",  # 5.9: unbounded session
        "m=video %d RTP/AVP %d" % (dest_port, payload_type),  # 5.14
        "a=rtpmap:%d raw/90000" % payload_type,  # RFC 4175 6.1
        "a=fmtp:%d %s" % (payload_type, fmtp),  # ST 2110-20 7
        "a=mediaclk:direct=0",  # ST 2110-10 8, RFC 7273 5: RTP clock = media clock
        "a=ts-refclk:ptp=traceable",  # ST 2110-10 8, RFC 7273 4: PTP reference
    )
    return "\r\n".join(lines) + "\r\n"
