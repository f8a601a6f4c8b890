"""A PS3.22 receiver for tests and operators: reads modgate's video.sdp and
metadata.sdp, receives both flows, reassembles video frames (RFC 4175 /
ST 2110-20) and metadata payloads (modgate's packetization rule, see
firmware.rtv.metadata.PACKETIZATION_RULE), and reports:

- loss: per flow, datagrams missing from the 32-bit extended (video) or
  16-bit (metadata) sequence numbers, and frames incomplete because of it;
  a receiver that joins a running stream mid-frame sees that first frame
  from its middle on: it is counted as "joined", not as incomplete (no
  datagram of it went missing while the receiver listened);
- continuity: RTP timestamps that change inside a frame or step between
  frames by other than the frame period; metadata frames whose timestamp
  matches no video frame (but for those after the last whole video
  frame's, "in flight": a frame's metadata leaves before its video, so
  listening that ends mid-frame has its metadata and not all its video);
- timing, ST 2110-21 (firmware/rtv/pacing.py), over the kernel's arrival
  time of every video datagram (SO_TIMESTAMPNS, the system clock, taken to
  TAI by the TAI-UTC offset as the sender's hal clock does): the network
  compatibility model's C_INST peak against C_MAX (6.6.1) and the virtual
  receiver buffer's VRX peak against VRX_FULL (6.6.2), both for the sender
  type the SDP's TP names; each frame's slot from its RTP timestamp (which
  must be the media clock at a frame instant N x T_FRAME since the SMPTE
  epoch, ST 2110-10), its first packet's arrival against TPR_0 = N x
  T_FRAME + TR_OFFSET (TROFF from the SDP, else TRO_DEFAULT), and the
  latest arrival of any packet against its read. A first packet must come
  after N x T_FRAME, and every packet no later than its read (frames where
  one came later are late_frames) within the tolerance (--tolerance-us,
  default 100: the time from the sender's interface to this socket's
  timestamp). These need the sender's clock: with --unshared-clock they
  are reported, not judged.

    python -m tools.rtv_receiver --sdp-dir DIR [--seconds S | --frames N] [--json]
        [--tolerance-us US] [--unshared-clock]

Exit status 0 when nothing was lost and every check held, 1 otherwise.
"""

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

from firmware.rtv import nmos, pacing
from firmware.rtv.pacing import NetworkCompatibility, VirtualReceiver, frame_of_timestamp, limits, tro_default_ns
from firmware.rtv.rtp import CLOCK_RATE, frame_timestamp, parse_packet
from firmware.rtv.st2110_20 import PGROUPS, unpack_10bit

SO_TIMESTAMPNS = 35  # asm-generic/socket.h (also SCM_TIMESTAMPNS)
SO_RCVBUFFORCE = 33
# linux/udp.h: receive a sender's GSO burst as one buffer, cut at the size
# the control message gives (udp(7), Linux 5.0): one system call a burst.
UDP_GRO = 104
# The system clock's time (UTC) to TAI, as hal.clock.SystemClock.tai_ns
# takes it where the board has no PTP hardware clock.
TAI_FROM_UTC_NS = nmos.TAI_UTC_OFFSET * 1000000000
TOLERANCE_NS = 100000


def parse_sdp(text):
    """What the receiver needs from one of modgate's SDPs: address, port,
    payload type, encoding, fmtp parameters and extmap ids."""
    out = {"fmtp": {}, "extmap": {}}
    for line in text.splitlines():
        if line.startswith("c=IN IP4 ") or line.startswith("c=IN IP6 "):
            out["host"] = line[9:].split("/")[0]
        elif line.startswith("m="):
            media, port, _, pt = line[2:].split()[:4]
            out.update(media=media, port=int(port), payload_type=int(pt))
        elif line.startswith("a=rtpmap:"):
            out["encoding"] = line.split()[1].split("/")[0]
        elif line.startswith("a=fmtp:"):
            for item in line.split(" ", 1)[1].split(";"):
                if "=" in item:
                    key, value = item.strip().split("=", 1)
                    out["fmtp"][key] = value
        elif line.startswith("a=extmap:"):
            ident, urn = line[9:].split()[:2]
            out["extmap"][urn] = int(ident)
    return out


def parse_rate(text):
    num, _, den = text.partition("/")
    return int(num), int(den or 1)


def _gap(previous, seq, bits):
    """None when seq follows previous (or comes first); else how many
    datagrams went missing between them, modulo 2**bits: 0 for one that
    arrives late or twice (RFC 3550 A.1's window of half the range)."""
    if previous is None or seq == (previous + 1) & ((1 << bits) - 1):
        return None
    gap = (seq - previous - 1) & ((1 << bits) - 1)
    return gap if gap < 1 << (bits - 1) else 0


class VideoFlow:
    """Reassembles ST 2110-20 frames. on_frame(timestamp, data) gets each
    complete frame (10-bit: unpacked to 16-bit LE words, as boards give).
    Arrival times (feed) are on the system clock; tai_offset_ns takes them
    to TAI. sender_type and troffset_ns: the SDP's TP and TROFF (in ns;
    None: TRO_DEFAULT for the height); tolerance_ns: how long after its
    read a packet may arrive and not count as late (the trip from the
    sender's interface to this socket's timestamp)."""

    def __init__(self, width, height, sampling, depth, rate, on_frame=None,
                 sender_type=pacing.WIDE, troffset_ns=None, tai_offset_ns=TAI_FROM_UTC_NS,
                 tolerance_ns=TOLERANCE_NS):
        self.width, self.height, self.rate = width, height, rate
        self.depth = depth
        self.pgroup, self.xinc = PGROUPS[(sampling, depth)]
        self.row = width * self.pgroup // self.xinc
        self.frame = bytearray(self.row * height)
        self.on_frame = on_frame
        self.packets = 0
        self.lost = 0
        self.frames = 0
        self.incomplete = 0
        self.joined = 0  # 0 or 1: a first frame whose start came before we listened
        self.timestamp_errors = 0
        self.off_epoch = 0  # whole frames whose RTP timestamp is no frame instant's
        self.step = CLOCK_RATE * rate[1] / rate[0]
        self.npackets = None
        self.timestamps = []
        self.sender_type = sender_type
        self.troffset = tro_default_ns(height, rate) if troffset_ns is None else troffset_ns
        self.network = None  # the ST 2110-21 models, from the first whole frame
        self.buffer = None
        self.limits = None
        self.tolerance = tolerance_ns
        self._tai = tai_offset_ns
        self._seq = None
        self._ts = None
        self._last_ts = None
        self._filled = 0
        self._broken = False
        self._from_top = False  # the frame's first datagram we got begins at line 0, offset 0
        self._frame_arrivals = []

    def feed(self, datagram, arrival_ns):
        # RFC 3550 5.1 + RFC 4175 4.3, read in place (no CSRC, no extension
        # on a ST 2110-20 flow; parse_packet checks the general case).
        if len(datagram) < 20 or datagram[0] & 0x3F:
            p = parse_packet(datagram)
            datagram = bytes(datagram[:12]) + bytes(p["payload"])
        b1, low, ts, ext = struct.unpack_from(">xBHIxxxxH", datagram, 0)
        payload = memoryview(datagram)[12:]
        seq = ext << 16 | low  # RFC 4175 4.1: the extended sequence number
        self.packets += 1
        gap = _gap(self._seq, seq, 32)
        if gap is not None:
            self.lost += gap
            self._broken = True
        self._seq = seq
        if self._ts is None:
            self._ts = ts
        elif ts != self._ts:  # a new frame began without the marker we missed
            self._end_frame(False)
            self._ts = ts
        self._frame_arrivals.append(arrival_ns + self._tai)
        pos = 2
        srds = []
        while True:
            length, line, offset = struct.unpack_from(">HHH", payload, pos)
            pos += 6
            srds.append((length, line & 0x7FFF, offset & 0x7FFF))
            if not offset & 0x8000:
                break
        if len(self._frame_arrivals) == 1:
            # RFC 4175 4.3: the frame's first datagram starts at line 0,
            # offset 0 (ST 2110-20 sends lines in order).
            self._from_top = srds[0][1] == 0 and srds[0][2] == 0
        for length, line, offset in srds:
            at = line * self.row + offset * self.pgroup // self.xinc
            if line >= self.height or at + length > len(self.frame) or pos + length > len(payload):
                self._broken = True
            else:
                self.frame[at:at + length] = payload[pos:pos + length]
                self._filled += length
            pos += length
        if b1 & 0x80:  # the marker: the frame's last packet
            self._end_frame(True)

    def _end_frame(self, marker):
        complete = marker and not self._broken and self._filled == len(self.frame)
        # A late join: the first frame, nothing lost inside it while we
        # listened, its start before our first datagram.
        joined = not complete and self._last_ts is None and not self._broken and not self._from_top
        if self._last_ts is not None:
            step = (self._ts - self._last_ts) & 0xFFFFFFFF
            frames = round(step / self.step)
            if frames < 1 or abs(step - frames * self.step) > 1:
                self.timestamp_errors += 1
        self._last_ts = self._ts
        self.timestamps.append(self._ts)
        if not joined:
            self.time_frame(self._ts, self._frame_arrivals, complete)
        if complete:
            self.frames += 1
            if self.on_frame:
                data = bytes(self.frame)
                if self.depth == 10:
                    data = unpack_10bit(data)
                self.on_frame(self._ts, data)
        elif joined:
            self.joined += 1
        else:
            self.incomplete += 1
        self._frame_arrivals = []
        self._filled = 0
        self._broken = False
        self._from_top = False
        self._ts = None

    def time_frame(self, timestamp, arrivals, whole):
        """One frame's datagrams, by arrival time (TAI ns, in order), into
        the ST 2110-21 models; whole: none of its datagrams is missing.
        The first whole frame gives the flow its packets a frame."""
        n = len(arrivals)
        if whole and self.npackets is None:
            self.npackets = n
            self.limits = limits(self.sender_type, n, self.rate)
            self.network = NetworkCompatibility(n, self.rate)
            self.buffer = VirtualReceiver(n, self.rate, self.troffset, self.limits[2], self.tolerance)
        if self.network is None:
            return
        _arrive(self.network, arrivals)
        if whole and n == self.npackets:
            # ST 2110-10: the RTP timestamp is the media clock at the
            # frame's instant N x T_FRAME, which places the frame's TPR_0
            # (ST 2110-21 6.2).
            slot = frame_of_timestamp(timestamp, arrivals[0], self.rate)
            if frame_timestamp(slot, self.rate) != timestamp:
                self.off_epoch += 1
            self.buffer.frame(slot, arrivals)
        else:
            self.buffer.gap()

    def cmax(self):
        return (self.limits or limits(self.sender_type, 1, self.rate))[0]

    def vrx_full(self):
        return (self.limits or limits(self.sender_type, 1, self.rate))[1]

    def timing(self):
        """The ST 2110-21 figures, in the report's words, and the problems
        found with them: (figures, [problem], [problem the sender's clock
        must be known for])."""
        cinst = self.network.peak if self.network else 0
        buf = self.buffer
        tolerance = self.tolerance
        out = {"sender_type": self.sender_type, "cinst_peak": cinst, "cmax": self.cmax(),
               "vrx_peak": buf.peak if buf else 0, "vrx_full": self.vrx_full(),
               "troffset_us": round(self.troffset / 1000.0, 1), "tolerance_us": round(tolerance / 1000.0, 1),
               "off_epoch_timestamps": self.off_epoch, "late_frames": buf.late_frames if buf else 0}
        problems, clocked = [], []
        if cinst > out["cmax"]:
            problems.append("C_INST peaked at %d, over C_MAX %d" % (cinst, out["cmax"]))
        if buf is None or buf.first_ns is None:
            return out, problems, clocked
        first = buf.first_ns
        out["first_packet_us"] = [round(first[0] / 1000.0, 1), round(first[1] / 1000.0, 1)]
        out["read_margin_us"] = round(-buf.late_ns / 1000.0, 1)
        if self.off_epoch:
            clocked.append("%d frames' RTP timestamps are no frame instant N x T_FRAME" % self.off_epoch)
        if buf.peak > out["vrx_full"]:
            clocked.append("VRX peaked at %d, over VRX_FULL %d" % (buf.peak, out["vrx_full"]))
        if first[0] < -self.troffset:
            clocked.append("a first packet came %.1f us before TPR_0, before its frame's instant"
                           % (-first[0] / 1000.0))
        if buf.late_frames:
            clocked.append("%d frames had a packet arrive after its read (the buffer ran dry), at worst %.1f us"
                           % (buf.late_frames, buf.late_ns / 1000.0))
        return out, problems, clocked


def video_flow(sdp_text, on_frame=None, tolerance_ns=TOLERANCE_NS):
    """A VideoFlow for the flow an SDP describes: its format, and from the
    fmtp its sender type (TP, ST 2110-21 8.1) and TR_OFFSET (TROFF, whole
    microseconds, 8.2; absent: TRO_DEFAULT)."""
    f = parse_sdp(sdp_text)["fmtp"]
    troff = int(f["TROFF"]) * 1000 if "TROFF" in f else None
    return VideoFlow(int(f["width"]), int(f["height"]), f["sampling"], int(f["depth"]),
                     parse_rate(f["exactframerate"]), on_frame, sender_type=f.get("TP", pacing.WIDE),
                     troffset_ns=troff, tolerance_ns=tolerance_ns)


def _arrive(network, arrivals):
    """The arrivals into the network compatibility bucket, a burst (equal
    times) at once."""
    i, n = 0, len(arrivals)
    while i < n:
        t = arrivals[i]
        j = i + 1
        while j < n and arrivals[j] == t:
            j += 1
        network.arrive(t, j - i)
        i = j


class MetadataFlowReceiver:
    """Reassembles metadata payloads by the NMOS grain flags and the RTP
    timestamp (every packet has the extension, PS3.22; S starts a grain, E
    or the marker ends it). on_payload(timestamp, payload, ext) gets each
    complete one with the NMOS elements of its first packet, keyed by the
    nmos constants. extmap: {URN: ID} from the SDP's a=extmap lines (the
    NMOS specification says the IDs must not be assumed); None: nmos.URNS."""

    def __init__(self, on_payload=None, extmap=None):
        self.on_payload = on_payload
        # The sender's ID of each element -> our name for it.
        urns = dict((urn, name) for name, urn in nmos.URNS)
        self._names = dict((ident, urns[urn]) for urn, ident in (extmap or dict(
            (urn, name) for name, urn in nmos.URNS)).items() if urn in urns)
        self.packets = 0
        self.lost = 0
        self.frames = 0
        self.incomplete = 0
        self.missing_extension = 0
        self.timestamps = []
        self._seq = None
        self._parts = None
        self._ext = None
        self._ts = None

    def feed(self, datagram, arrival_ns=None):
        p = parse_packet(datagram)
        self.packets += 1
        seq = p["sequence"]
        gap = _gap(self._seq, seq, 16)
        if gap is not None:
            self.lost += gap
            if self._parts is not None:
                self.incomplete += 1
            self._parts = None
        self._seq = seq
        ext = dict((self._names[i], v) for i, v in (p["extension"] or {}).items() if i in self._names)
        flags = ext.get(nmos.GRAIN_FLAGS, b"\x00")[0] if nmos.GRAIN_FLAGS in ext else None
        # A grain starts where the flags say S; a sender without grain
        # flags starts one at each packet with the extension.
        starts = (flags & nmos.GRAIN_START) if flags is not None else p["extension"] is not None
        if starts:
            if self._parts is not None:
                self.incomplete += 1
            self._parts, self._ext, self._ts = [], ext, p["timestamp"]
        if self._parts is None:
            return  # a payload whose start was lost: wait for the next
        if p["timestamp"] != self._ts:
            self.incomplete += 1
            self._parts = None
            return
        self._parts.append(bytes(p["payload"]))
        if p["marker"] or (flags is not None and flags & nmos.GRAIN_END):
            payload = b"".join(self._parts)
            self._parts = None
            if nmos.ORIGIN_TIMESTAMP not in self._ext or nmos.FLOW_ID not in self._ext:
                self.missing_extension += 1
            self.frames += 1
            self.timestamps.append(self._ts)
            if self.on_payload:
                self.on_payload(self._ts, payload, self._ext)


class Capture:
    """Departure times of one UDP flow, taken where packet capture taps the
    interface (AF_PACKET, as tcpdump and tshark do; needs CAP_NET_RAW): on
    the sending host that is the moment the kernel transmits, before any
    receiver's scheduling can bunch packets up. A UDP GSO burst shows as
    one super-packet; it counts as its datagrams, all at that instant.
    flow: a VideoFlow whose ST 2110-21 models (VideoFlow.timing) time_flow
    feeds with the frames captured here: each datagram's RTP timestamp and
    marker are kept (not its payload, so that the capture keeps up)."""

    ETH_P_ALL = 0x0003

    def __init__(self, iface, port, datagram_size, flow=None):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(self.ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((iface, 0))
        self.port = port
        self.size = datagram_size
        self.flow = flow
        self.arrivals = []
        self.headers = []  # with a flow: (departure, RTP timestamp, marker) a datagram

    def drain(self):
        while True:
            try:
                data, anc, _, addr = self.sock.recvmsg(262144, 64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # lo shows each packet twice: keep the incoming copy
            t = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, ns = struct.unpack("@qq", value[:16])
                    t = sec * 1000000000 + ns
            ip = 14 if len(data) > 14 and data[12:14] == b"\x08\x00" else None
            if ip is None or data[ip + 9] != 17:  # IPv4, UDP
                continue
            udp = ip + (data[ip] & 15) * 4
            if struct.unpack_from(">H", data, udp + 2)[0] != self.port:
                continue
            payload = len(data) - udp - 8
            self.arrivals.extend([t] * max(1, -(-payload // self.size)))
            if self.flow is not None:
                for at in range(udp + 8, len(data), self.size):
                    b1, stamp = struct.unpack_from(">xBxxI", data, at)
                    self.headers.append((t, stamp, b1 & 0x80))

    def time_flow(self, npackets):
        """The captured frames into the flow's models: a frame is the
        datagrams of one RTP timestamp, whole when there are npackets of
        them and the last has the marker."""
        frame, stamp, marker = [], None, 0
        for t, ts, m in self.headers:
            if frame and ts != stamp:
                self.flow.time_frame(stamp, frame, len(frame) == npackets and bool(marker))
                frame = []
            frame.append(t + TAI_FROM_UTC_NS)
            stamp, marker = ts, m
        if frame:
            self.flow.time_frame(stamp, frame, len(frame) == npackets and bool(marker))

    def peak(self, npackets, rate):
        """C_INST's peak over the capture (ST 2110-21 6.6.1), T_DRAIN from
        npackets a frame."""
        network = NetworkCompatibility(npackets, rate)
        _arrive(network, [t + TAI_FROM_UTC_NS for t in self.arrivals])
        return network.peak

    def close(self):
        self.sock.close()


def _socket(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 * 1024 * 1024)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024 * 1024)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    try:
        sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
    except OSError:
        pass  # an older kernel: one datagram per call
    multicast = False
    try:
        if family == socket.AF_INET:
            multicast = 224 <= socket.inet_aton(host)[0] <= 239
    except OSError:
        pass
    if multicast:
        from hal.nic import LoopbackNIC

        sock.bind((host, port))
        LoopbackNIC().join_multicast(sock, host)
    else:
        sock.bind((host, port))
    return sock


class Receiver:
    """Both flows of one sender, from its two SDPs. tolerance_ns: how late
    after TPR_0 (or a read) a packet may arrive, for the trip from the
    sender's interface to this socket; shared_clock: the sender's clock is
    this host's (or both follow one PTP grandmaster), so the timing figures
    that depend on it are judged."""

    def __init__(self, video_sdp, meta_sdp=None, on_frame=None, on_payload=None, bind_host=None,
                 tolerance_ns=TOLERANCE_NS, shared_clock=True):
        v = parse_sdp(video_sdp)
        self.video_sdp = v
        self.rate = parse_rate(v["fmtp"]["exactframerate"])
        self.shared_clock = shared_clock
        self.video = video_flow(video_sdp, on_frame, tolerance_ns)
        self.sockets = {_socket(bind_host or v["host"], v["port"]): self.video}
        self.meta = None
        if meta_sdp:
            m = parse_sdp(meta_sdp)
            self.meta = MetadataFlowReceiver(on_payload, m["extmap"])
            self.sockets[_socket(bind_host or m["host"], m["port"])] = self.meta

    def run(self, seconds=None, frames=None, idle=2.0):
        """Receive until seconds pass, frames video frames arrive, or
        nothing came for idle seconds after the first datagram."""
        deadline = None if seconds is None else time.monotonic() + seconds
        started = False
        last = time.monotonic()
        socks = list(self.sockets)
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if frames is not None and self.video.frames + self.video.incomplete >= frames:
                break
            if started and now - last > idle:
                break
            ready, _, _ = select.select(socks, [], [], 0.2)
            for sock in ready:
                flow = self.sockets[sock]
                for _ in range(256):
                    try:
                        data, anc, _, _ = sock.recvmsg(65536, 128, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    arrival = time.time_ns()
                    segment = len(data)
                    for level, kind, value in anc:
                        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                            s, ns = struct.unpack("@qq", value[:16])
                            arrival = s * 1000000000 + ns
                        elif level == socket.SOL_UDP and kind == UDP_GRO:
                            segment = struct.unpack("@i", value[:4])[0] or segment
                    if segment >= len(data):
                        flow.feed(data, arrival)
                    else:
                        view = memoryview(data)
                        for at in range(0, len(data), segment):
                            flow.feed(view[at:at + segment], arrival)
                    started = True
                    last = time.monotonic()
        return self.report()

    def report(self):
        v, m = self.video, self.meta
        timing, problems, clocked = v.timing()
        out = {
            "video": {"packets": v.packets, "lost": v.lost, "frames": v.frames, "incomplete": v.incomplete,
                      "joined": v.joined, "timestamp_errors": v.timestamp_errors, "packets_per_frame": v.npackets},
        }
        out["video"].update(timing)
        out["video"]["clock"] = "shared" if self.shared_clock else "unshared"
        if self.shared_clock:
            problems = problems + clocked
        out["video"]["problems"] = problems
        ok = v.lost == 0 and v.incomplete == 0 and v.timestamp_errors == 0 and not problems
        if m is not None:
            video_ts = set(v.timestamps)
            # A frame's metadata leaves before its video: when listening
            # ends mid-frame, the metadata after the last whole video
            # frame's is in flight, not unmatched.
            judged = m.timestamps
            if v.timestamps and v.timestamps[-1] in judged:
                judged = judged[:len(judged) - judged[::-1].index(v.timestamps[-1])]
            unmatched = sum(1 for ts in judged if ts not in video_ts)
            out["metadata"] = {"packets": m.packets, "lost": m.lost, "frames": m.frames,
                               "incomplete": m.incomplete, "missing_extension": m.missing_extension,
                               "unmatched_timestamps": unmatched, "in_flight": len(m.timestamps) - len(judged)}
            ok = ok and m.lost == 0 and m.incomplete == 0 and m.missing_extension == 0 and unmatched == 0
        out["ok"] = ok
        return out

    def close(self):
        for sock in self.sockets:
            sock.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="rtv_receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdp-dir", required=True, help="folder with video.sdp (and metadata.sdp)")
    parser.add_argument("--seconds", type=float, help="receive this long")
    parser.add_argument("--frames", type=int, help="stop after this many video frames")
    parser.add_argument("--bind", help="local address to bind (default: the SDP's)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--tolerance-us", type=float, default=TOLERANCE_NS / 1000.0,
                        help="how late after TPR_0 or its read a packet may arrive (default %(default)s)")
    parser.add_argument("--unshared-clock", action="store_true",
                        help="the sender's clock is not this host's: report the timing figures that "
                             "need it (RTP timestamps on the epoch, VRX, first packet, read margin) "
                             "without judging them")
    args = parser.parse_args(argv)
    with open(os.path.join(args.sdp_dir, "video.sdp")) as f:
        video = f.read()
    meta = None
    path = os.path.join(args.sdp_dir, "metadata.sdp")
    if os.path.exists(path):
        with open(path) as f:
            meta = f.read()
    receiver = Receiver(video, meta, bind_host=args.bind, tolerance_ns=int(args.tolerance_us * 1000),
                        shared_clock=not args.unshared_clock)
    try:
        report = receiver.run(args.seconds, args.frames, idle=10.0 if args.seconds is None else 2.0)
    finally:
        receiver.close()
    if args.json:
        print(json.dumps(report))
    else:
        problems = report["video"].pop("problems")
        for flow in ("video", "metadata"):
            if flow in report:
                print("%s: %s" % (flow, ", ".join("%s %s" % kv for kv in report[flow].items())))
        for problem in problems:
            print("video: " + problem)
        print("ok" if report["ok"] else "FAILED")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
