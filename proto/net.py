"""Ethernet II / 802.1Q / IPv4 / UDP header layouts and small helpers."""

from __future__ import annotations

from .layout import MessageLayout

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100
IPPROTO_UDP = 17
IPPROTO_TCP = 6

ETH = MessageLayout("ethernet", (("dst", 6), ("src", 6), ("ethertype", 2)))
VLAN_TAG = MessageLayout("dot1q", (("tci", 2), ("ethertype", 2)))
IPV4 = MessageLayout("ipv4", (
    ("version_ihl", 1), ("dscp_ecn", 1), ("total_length", 2), ("identification", 2),
    ("flags_fragment", 2), ("ttl", 1), ("protocol", 1), ("checksum", 2),
    ("src", 4), ("dst", 4),
))
UDP = MessageLayout("udp", (("src_port", 2), ("dst_port", 2), ("length", 2), ("checksum", 2)))

#: Shortest Ethernet frame without FCS; MACs pad up to it.
MIN_FRAME = 60
#: Flags/fragment field: MF bit and the 13-bit offset. DF alone is harmless.
IPV4_MF = 0x2000
IPV4_OFFSET_MASK = 0x1FFF


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ipv4_checksum(header: bytes) -> int:
    """Checksum to store in a header whose checksum field is zero."""
    return (~ones_complement_sum(header)) & 0xFFFF


def ip_to_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def int_to_ip(v: int) -> str:
    return ".".join(str((v >> s) & 0xFF) for s in (24, 16, 8, 0))
