"""hal.nic against the host's real loopback interface: sysfs attributes,
a multicast datagram actually received, DSCP marking read back."""

import os
import socket

import pytest

from hal.nic import DSCP_AF41, DSCP_CS0, LinuxNIC, LoopbackNIC
from tests.conftest import machine_lacks

GROUP = "239.255.77.41"  # RFC 2365 organization-local scope


def nics():
    return [LoopbackNIC(), LinuxNIC("lo")]


@pytest.mark.parametrize("nic", nics(), ids=repr)
def test_loopback_attributes(nic):
    assert nic.name == "lo"
    assert nic.link_up() is True
    assert nic.speed_mbps() is None  # lo has no ethtool link settings
    with open("/sys/class/net/lo/mtu") as f:
        assert nic.mtu() == int(f.read())
    assert nic.index() == socket.if_nametoindex("lo")


def test_linux_nic_reads_every_interface():
    for name in os.listdir("/sys/class/net"):
        nic = LinuxNIC(name)
        assert isinstance(nic.link_up(), bool)
        speed = nic.speed_mbps()
        assert speed is None or speed > 0
        assert nic.mtu() >= 68  # RFC 791: every IPv4 link carries 68 octets


@pytest.mark.parametrize("name", ["nosuch0", "../lo", ""])
def test_unknown_interface_is_a_clear_error(name):
    with pytest.raises(OSError, match=r"no network interface .*\(this host has: .*\blo\b"):
        LinuxNIC(name)


@pytest.mark.parametrize("nic", nics(), ids=repr)
@pytest.mark.parametrize("ttl", [0, 1])
def test_multicast_datagram_is_received(nic, ttl):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind((GROUP, 0))  # the group itself: only its datagrams
        port = rx.getsockname()[1]
        nic.join_multicast(rx, GROUP, ttl=ttl)
        nic.set_multicast(tx, ttl=ttl)
        assert tx.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == ttl
        assert tx.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 1
        tx.sendto(b"frame 0", (GROUP, port))
        rx.settimeout(2.0)
        data, _ = rx.recvfrom(100)
        assert data == b"frame 0"
        nic.leave_multicast(rx, GROUP)
    finally:
        rx.close()
        tx.close()


def test_loop_off_is_set():
    # Not observable on lo itself: lo hands every sent datagram back anyway.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        LoopbackNIC().set_multicast(s, ttl=4, loop=False)
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP) == 0
        assert s.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 4


def test_join_refuses_a_unicast_address():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(ValueError, match="not a multicast group"):
            LoopbackNIC().join_multicast(s, "127.0.0.1")


@pytest.mark.parametrize("nic", nics(), ids=repr)
def test_ipv6_join_and_leave(nic):
    # lo has no IFF_MULTICAST, so IPv6 multicast cannot be sent over it;
    # the membership itself is still accepted.
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        nic.join_multicast(s, "ff15::7a:1")
        assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF) == nic.index()
        nic.leave_multicast(s, "ff15::7a:1")


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_dscp_marking(family):
    nic = LoopbackNIC()
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        nic.set_dscp(s, DSCP_AF41)
        if family == socket.AF_INET:
            assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 34 << 2
        else:
            assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS) == 34 << 2
        nic.set_dscp(s, DSCP_CS0)
        if family == socket.AF_INET:
            assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 0
        with pytest.raises(ValueError):
            nic.set_dscp(s, 64)


def test_bind_puts_the_socket_on_the_interface():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        LoopbackNIC().bind(s)
        assert s.getsockname()[0] == "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            LinuxNIC("lo").bind(s)
        except PermissionError as e:
            machine_lacks("net_raw", "SO_BINDTODEVICE: %s" % e)
        bound = s.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)
        assert bound.rstrip(b"\0") == b"lo"
        assert s.getsockname()[0] == "0.0.0.0"
