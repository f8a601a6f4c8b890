"""Network interfaces: the link the gateway streams and stores over.

Every driver has the same small interface:

    nic.name                     the interface name ('eth0', 'lo')
    nic.link_up()                True when packets can flow
    nic.speed_mbps()             link speed in Mbit/s, or None if unknown
    nic.mtu()                    bytes
    nic.bind(sock, port=0)       bind a socket to this interface
    nic.set_multicast(sock, ttl=1, loop=True)
                                 send multicast out of this interface
    nic.join_multicast(sock, group, ttl=1, loop=True)
                                 set_multicast, and receive the group here
    nic.leave_multicast(sock, group)
    nic.set_dscp(sock, dscp)     mark what the socket sends

Sockets are plain ``socket`` objects, IPv4 or IPv6 by their family; groups
are address strings. A multicast receiver binds to the group address itself
(not with nic.bind) and then joins it, so that it sees only that group.

The drivers are LinuxNIC (any interface in /sys/class/net) and LoopbackNIC
(the host board and tests).
"""

import errno
import os
import socket
import struct

# RFC 2474: the DS field is the upper six bits of the IPv4 TOS octet and of
# the IPv6 Traffic Class; the lower two are ECN (RFC 3168), left at 0.
DSCP_CS0 = 0  # RFC 2474 4.2.2.1: default forwarding, best effort
# RFC 4594 4.3: AF41 for multimedia conferencing (interactive video); it is
# the common marking for live video flows such as the PS3.22 streams.
DSCP_AF41 = 34

# linux/in.h; Python's socket module does not export it. ip(7): with the
# default of 1 a socket bound to the group address still gets datagrams of
# every group any socket on the host has joined.
_IP_MULTICAST_ALL = 49

_SYS_NET = "/sys/class/net/"


def _read_sys(name, attr):
    with open(_SYS_NET + name + "/" + attr) as f:
        return f.read().strip()


def _is_v6(group):
    return ":" in group


def _check_group(group):
    if _is_v6(group):
        ok = socket.inet_pton(socket.AF_INET6, group)[0] == 0xFF  # RFC 4291 2.7
    else:
        ok = 224 <= socket.inet_aton(group)[0] <= 239  # RFC 5771: 224.0.0.0/4
    if not ok:
        raise ValueError("%r is not a multicast group address" % (group,))


class _NIC:
    """What both drivers share: the socket options, given the interface's
    index (index()) and, for IPv4, how to name it (_mreq, _v4_if)."""

    name = None

    def index(self):
        return socket.if_nametoindex(self.name)

    def set_multicast(self, sock, ttl=1, loop=True):
        # ttl 1: the datagrams stay on the local link (RFC 1112 6.1); a routed
        # video VLAN needs a larger one from the configuration.
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.index())
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, int(loop))
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, self._v4_if())
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, int(loop))

    def join_multicast(self, sock, group, ttl=1, loop=True):
        _check_group(group)
        self.set_multicast(sock, ttl, loop)
        if sock.family == socket.AF_INET6:
            # RFC 3493 5.2: struct ipv6_mreq { in6_addr; unsigned int ifindex; }
            mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", self.index())
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self._mreq(group))
            try:
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            except OSError:
                pass  # not Linux: membership is per socket already

    def leave_multicast(self, sock, group):
        _check_group(group)
        if sock.family == socket.AF_INET6:
            mreq = socket.inet_pton(socket.AF_INET6, group) + struct.pack("@I", self.index())
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, mreq)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, self._mreq(group))

    def set_dscp(self, sock, dscp):
        if not 0 <= dscp < 64:
            raise ValueError("DSCP %r is not in 0..63" % (dscp,))
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, dscp << 2)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)


class LinuxNIC(_NIC):
    """An interface as Linux shows it in /sys/class/net/<name>/ (the
    attributes are in the kernel's Documentation/ABI/testing/sysfs-class-net)."""

    def __init__(self, name):
        if "/" in name or name in ("", ".", "..") or not os.path.isdir(_SYS_NET + name):
            try:
                known = ", ".join(sorted(os.listdir(_SYS_NET)))
            except OSError:
                known = "none"
            raise OSError(errno.ENODEV, "no network interface %r (this host has: %s)" % (name, known))
        self.name = name

    def link_up(self):
        # Documentation/networking/operstates.rst: "unknown" is what drivers
        # that do not track the state report (lo, many virtual links); then
        # the carrier says. Reading carrier of a down interface is EINVAL.
        state = _read_sys(self.name, "operstate")
        if state == "up":
            return True
        if state != "unknown":
            return False
        try:
            return _read_sys(self.name, "carrier") == "1"
        except OSError:
            return False

    def speed_mbps(self):
        # Only links with ethtool link settings have a speed; others fail
        # the read (EINVAL) or say -1 (SPEED_UNKNOWN).
        try:
            speed = int(_read_sys(self.name, "speed"))
        except (OSError, ValueError):
            return None
        return speed if speed > 0 else None

    def mtu(self):
        return int(_read_sys(self.name, "mtu"))

    def bind(self, sock, port=0):
        """SO_BINDTODEVICE (socket(7)), then the wildcard address and port:
        the socket sends and receives on this interface only. Without
        CAP_NET_RAW some kernels refuse the option (EPERM)."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.name.encode())
        except PermissionError:
            raise OSError(errno.EPERM, "binding a socket to %s needs CAP_NET_RAW on this kernel" % self.name)
        sock.bind(("::" if sock.family == socket.AF_INET6 else "0.0.0.0", port))

    def _mreq(self, group):
        # ip(7): struct ip_mreqn { multiaddr; address; int ifindex; }, so the
        # interface is named by index even when it has no IPv4 address.
        return struct.pack("@4s4si", socket.inet_aton(group), b"\0\0\0\0", self.index())

    def _v4_if(self):
        return struct.pack("@4s4si", b"\0\0\0\0", b"\0\0\0\0", self.index())

    def __repr__(self):
        return "LinuxNIC(%r)" % self.name


class LoopbackNIC(_NIC):
    """The loopback interface: always up, no speed, 127.0.0.1 and ::1.
    Uses only the portable ip_mreq, so it also works off Linux."""

    name = "lo"

    def link_up(self):
        return True

    def speed_mbps(self):
        return None

    def mtu(self):
        try:
            return int(_read_sys("lo", "mtu"))
        except (OSError, ValueError):
            return 65536  # Linux's default loopback MTU

    def bind(self, sock, port=0):
        sock.bind(("::1" if sock.family == socket.AF_INET6 else "127.0.0.1", port))

    def index(self):
        try:
            return socket.if_nametoindex(self.name)
        except (OSError, AttributeError):
            return 0  # let the kernel choose

    def _mreq(self, group):
        # ip(7): struct ip_mreq { multiaddr; interface address; }
        return socket.inet_aton(group) + socket.inet_aton("127.0.0.1")

    def _v4_if(self):
        return socket.inet_aton("127.0.0.1")

    def __repr__(self):
        return "LoopbackNIC()"
