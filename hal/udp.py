"""Sending RTP datagrams fast from Python on Linux: the I/O side of the
PS3.22 flows (firmware/rtv builds the datagrams and the schedule).

    sender = DatagramSender(nic, ("239.1.1.1", 5004), ttl=1)
    sender.send(datagrams)      one burst; returns how many were queued
    sender.send_joined(data, size, count)
                                a burst already laid out back to back, every
                                datagram size bytes
    sender.close()

What Linux offers and this uses:
- UDP generic segmentation offload (UDP_SEGMENT, udp(7), Linux 4.18): a
  burst of equal-size datagrams (the last may be shorter) goes to the kernel
  as one buffer in one sendmsg, which cuts it into datagrams. One system
  call per burst instead of one per packet.
- SO_SNDBUF sized for several frames' bursts, so a burst never blocks.
- DSCP AF41 on the socket (hal.nic.DSCP_AF41), the marking for live video.
- A 1 us timer slack (prctl PR_SET_TIMERSLACK): the pacer sleeps ~100 us
  at a time; the default 50 us slack would blur its schedule.

Without UDP_SEGMENT (an old kernel, another OS) it falls back to one send
per datagram, and says so in .gso.
"""

import errno
import socket
import struct

from hal.nic import DSCP_AF41

# linux/udp.h; Python's socket module does not export it.
UDP_SEGMENT = 103
# udp(7): at most 64 segments per call, and one IP datagram's 64 KiB.
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65535 - 8 - 40
PR_SET_TIMERSLACK = 29  # linux/prctl.h
DEFAULT_SNDBUF = 4 * 1024 * 1024


def set_timer_slack(ns):
    """Linux: how late the kernel may wake this thread's sleeps."""
    try:
        import ctypes  # not in every small Python build: then no slack change

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) == 0
    except (ImportError, OSError, AttributeError):
        return False


def _is_multicast(host):
    try:
        if ":" in host:
            return socket.inet_pton(socket.AF_INET6, host)[0] == 0xFF
        return 224 <= socket.inet_aton(host)[0] <= 239
    except OSError:
        return False


class DatagramSender:
    """A connected UDP socket towards dest (host, port), out of nic."""

    def __init__(self, nic, dest, ttl=1, dscp=DSCP_AF41, sndbuf=DEFAULT_SNDBUF, gso=True):
        host, port = dest
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            if dscp is not None:
                nic.set_dscp(self.sock, dscp)
            if _is_multicast(host):
                nic.set_multicast(self.sock, ttl=ttl, loop=True)
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.dest = (host, port)
        self.gso = gso and hasattr(self.sock, "sendmsg")
        self.sent = 0
        self.dropped = 0
        self.calls = 0
        set_timer_slack(1000)

    def send(self, datagrams):
        """Queue one burst. Equal-size runs go out with UDP_SEGMENT; a full
        socket buffer (ENOBUFS, EAGAIN) drops the rest of the burst and
        counts it, as a real-time flow must not wait."""
        n = len(datagrams)
        i = 0
        while i < n:
            size = len(datagrams[i])
            j = i + 1
            if self.gso:
                limit = min(n, i + GSO_MAX_SEGMENTS, i + GSO_MAX_BYTES // size)
                while j < limit and len(datagrams[j]) == size:
                    j += 1
                # a shorter datagram may end the run (udp(7))
                if j < limit and len(datagrams[j]) < size:
                    j += 1
            try:
                if j - i > 1:
                    self.sock.sendmsg([b"".join(datagrams[i:j])],
                                      [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))])
                else:
                    self.sock.send(datagrams[i])
            except OSError as err:
                if err.errno in (errno.ENOBUFS, errno.EAGAIN):
                    self.dropped += n - i
                    return i
                if err.errno in (errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP) and j - i > 1:
                    self.gso = False  # no UDP GSO here: one datagram per call
                    continue
                if err.errno == errno.ECONNREFUSED:
                    # A unicast receiver that is not (yet) listening: the
                    # ICMP error surfaces on a later send. Keep streaming.
                    continue
                raise
            self.calls += 1
            self.sent += j - i
            i = j
        return n

    def send_joined(self, data, size, count):
        if count > 1 and self.gso and count <= GSO_MAX_SEGMENTS and len(data) <= GSO_MAX_BYTES:
            for attempt in (0, 1):
                try:
                    self.sock.sendmsg([data], [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))])
                    self.calls += 1
                    self.sent += count
                    return count
                except OSError as err:
                    if err.errno in (errno.ENOBUFS, errno.EAGAIN):
                        self.dropped += count
                        return 0
                    if err.errno == errno.ECONNREFUSED:
                        continue  # an earlier datagram's ICMP error; this one was not sent
                    if err.errno in (errno.EINVAL, errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                        self.gso = False  # no UDP GSO here: one datagram per call
                        break
                    raise
        view = memoryview(data)
        return self.send([view[i:i + size] for i in range(0, len(data), size)])

    def close(self):
        self.sock.close()
