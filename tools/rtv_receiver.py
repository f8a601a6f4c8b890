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
  matches no video frame;
- pacing: the ST 2110-21 network compatibility model run over the kernel's
  arrival time of every video datagram (SO_TIMESTAMPNS), its peak against
  the wide sender's C_MAX.

    python -m tools.rtv_receiver --sdp-dir DIR [--seconds S | --frames N] [--json]

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

from firmware.rtv import nmos
from firmware.rtv.pacing import bucket_peak, cmax_wide, trs_ns
from firmware.rtv.rtp import CLOCK_RATE, parse_packet
from firmware.rtv.st2110_20 import PGROUPS, unpack_10bit

SO_TIMESTAMPNS = 35  # asm-generic/socket.h (also SCM_TIMESTAMPNS)
SO_RCVBUFFORCE = 33
# linux/udp.h: receive a sender's GSO burst as one buffer, cut at the size
# the control message gives (udp(7), Linux 5.0): one system call a burst.
UDP_GRO = 104


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
    complete frame (10-bit: unpacked to 16-bit LE words, as boards give)."""

    def __init__(self, width, height, sampling, depth, rate, on_frame=None, keep_arrivals=True):
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
        self.step = CLOCK_RATE * rate[1] / rate[0]
        self.peak = 0.0
        self.npackets = None
        self.timestamps = []
        self._seq = None
        self._ts = None
        self._last_ts = None
        self._filled = 0
        self._broken = False
        self._from_top = False  # the frame's first datagram we got begins at line 0, offset 0
        self._arrivals = [] if keep_arrivals else None
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
        self._frame_arrivals.append(arrival_ns)
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
        n = len(self._frame_arrivals)
        if complete:
            self.frames += 1
            if self.npackets is None:
                self.npackets = n
            self.peak = max(self.peak, bucket_peak(self._frame_arrivals, trs_ns(n, self.rate)))
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

    def cmax(self):
        return cmax_wide(self.npackets or 1, self.rate)


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
    one super-packet; it counts as its datagrams, all at that instant."""

    ETH_P_ALL = 0x0003

    def __init__(self, iface, port, datagram_size):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(self.ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((iface, 0))
        self.port = port
        self.size = datagram_size
        self.arrivals = []

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

    def peak(self, npackets, rate):
        """The bucket's peak over the capture, T_RS from npackets a frame."""
        return bucket_peak(self.arrivals, trs_ns(npackets, rate))

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
    """Both flows of one sender, from its two SDPs."""

    def __init__(self, video_sdp, meta_sdp=None, on_frame=None, on_payload=None, bind_host=None):
        v = parse_sdp(video_sdp)
        f = v["fmtp"]
        self.video_sdp = v
        self.rate = parse_rate(f["exactframerate"])
        self.video = VideoFlow(int(f["width"]), int(f["height"]), f["sampling"], int(f["depth"]),
                               self.rate, on_frame)
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
        out = {
            "video": {"packets": v.packets, "lost": v.lost, "frames": v.frames, "incomplete": v.incomplete,
                      "joined": v.joined, "timestamp_errors": v.timestamp_errors, "packets_per_frame": v.npackets,
                      "cinst_peak": round(v.peak, 2), "cmax": v.cmax()},
        }
        ok = v.lost == 0 and v.incomplete == 0 and v.timestamp_errors == 0 and v.peak <= v.cmax()
        if m is not None:
            video_ts = set(v.timestamps)
            unmatched = sum(1 for ts in m.timestamps if ts not in video_ts)
            out["metadata"] = {"packets": m.packets, "lost": m.lost, "frames": m.frames,
                               "incomplete": m.incomplete, "missing_extension": m.missing_extension,
                               "unmatched_timestamps": unmatched}
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
    args = parser.parse_args(argv)
    with open(os.path.join(args.sdp_dir, "video.sdp")) as f:
        video = f.read()
    meta = None
    path = os.path.join(args.sdp_dir, "metadata.sdp")
    if os.path.exists(path):
        with open(path) as f:
            meta = f.read()
    receiver = Receiver(video, meta, bind_host=args.bind)
    try:
        report = receiver.run(args.seconds, args.frames, idle=10.0 if args.seconds is None else 2.0)
    finally:
        receiver.close()
    if args.json:
        print(json.dumps(report))
    else:
        for flow in ("video", "metadata"):
            if flow in report:
                print("%s: %s" % (flow, ", ".join("%s %s" % kv for kv in report[flow].items())))
        print("ok" if report["ok"] else "FAILED")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
