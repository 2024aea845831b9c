"""Ethernet II / 802.1Q / IPv4 / UDP frames, built and parsed in pure Python.

Frames here are what a MAC hands to the card's AXI4-Stream RX port: destination MAC first,
no preamble, no FCS (the MAC checks and strips it), padded to the 60-byte minimum. Every
header offset comes from the :mod:`proto.net` layouts; this module only fills them in.

Checksums use the fact that the one's-complement sum of 16-bit words is congruent to the
big-endian integer value of the data modulo 0xFFFF (because 2**16 = 1 mod 0xFFFF), so a
whole datagram is summed with one ``int.from_bytes`` and one ``%`` in C instead of a Python
loop over its words: a 1472-byte payload costs about a microsecond.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from proto.layout import MessageLayout
from proto.net import (
    ETH,
    ETHERTYPE_IPV4,
    ETHERTYPE_VLAN,
    IPPROTO_UDP,
    IPV4,
    IPV4_MF,
    IPV4_OFFSET_MASK,
    MIN_FRAME,
    UDP,
    VLAN_TAG,
)

__all__ = [
    "DEFAULT_SRC_MAC", "FeedAddress", "FrameTemplate", "UdpFrame", "internet_checksum",
    "multicast_mac", "parse_udp_frame", "udp_frame",
]

#: A locally administered unicast address (bit 1 of the first octet set, bit 0 clear).
DEFAULT_SRC_MAC = "02:00:00:00:00:01"
DEFAULT_SRC_PORT = 26400
_IPV4_DF = 0x4000
_MAX_IP_OPTIONS = 40         # IHL is 4 bits of 32-bit words: 15 * 4 - 20
_MULTICAST_OUI = 0x01005E    # RFC 1112: 01:00:5e + the low 23 bits of the group


def _struct_of(layout: MessageLayout) -> struct.Struct:
    """The layout's whole-header struct (6-byte fields come out as ``bytes``)."""
    return struct.Struct(">" + "".join(f.struct_code for f in layout.fields))


_ETH_S, _VLAN_S, _IPV4_S, _UDP_S = (_struct_of(x) for x in (ETH, VLAN_TAG, IPV4, UDP))
_U16 = struct.Struct(">H")
assert all(IPV4[f].size == 2 for f in ("total_length", "identification", "checksum"))
assert all(UDP[f].size == 2 for f in ("length", "checksum"))
# Positions of the fields in the unpacked header tuples, by name from the layouts.
_IP_I = {f.name: i for i, f in enumerate(IPV4.fields)}
_UDP_I = {f.name: i for i, f in enumerate(UDP.fields)}
_VER_IHL, _TOTAL, _IDENT, _FLAGS, _TTL, _PROTO, _SRC, _DST = (_IP_I[n] for n in (
    "version_ihl", "total_length", "identification", "flags_fragment", "ttl", "protocol",
    "src", "dst"))
_SPORT, _DPORT, _ULEN, _USUM = (_UDP_I[n] for n in ("src_port", "dst_port", "length",
                                                     "checksum"))


def _fold(n: int) -> int:
    """One's-complement sum (0..0xFFFF) of data whose big-endian value is ``n`` (or of
    several such pieces, each starting on a 16-bit boundary, whose values add up to ``n``).
    Nonzero data never sums to 0: one's-complement addition yields 0xFFFF ("negative zero")."""
    s = n % 0xFFFF
    return 0xFFFF if s == 0 and n else s


def _value(data: bytes) -> int:
    """Big-endian value of ``data`` padded to whole 16-bit words."""
    return int.from_bytes(data + b"\0" if len(data) & 1 else data, "big")


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data``: store it in a zeroed field; a valid whole sums to 0."""
    return ~_fold(_value(data)) & 0xFFFF


def _ip(value: str | int) -> int:
    try:
        return int(ipaddress.IPv4Address(value))
    except ValueError as e:
        raise ValueError(f"not an IPv4 address: {value!r}") from e


def _mac(value: str | bytes) -> bytes:
    if isinstance(value, bytes | bytearray):
        if len(value) != 6:
            raise ValueError(f"a MAC address is 6 bytes, got {len(value)}")
        return bytes(value)
    parts = value.replace("-", ":").split(":")
    try:
        out = bytes(int(p, 16) for p in parts)
    except ValueError as e:
        raise ValueError(f"not a MAC address: {value!r}") from e
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        raise ValueError(f"not a MAC address: {value!r}")
    return out


def multicast_mac(group: str | int) -> bytes:
    """Ethernet destination of an IPv4 multicast group (RFC 1112 mapping)."""
    g = _ip(group)
    if g >> 28 != 0xE:
        raise ValueError(f"{ipaddress.IPv4Address(g)} is not a multicast group")
    return ((_MULTICAST_OUI << 24) | (g & 0x7FFFFF)).to_bytes(6, "big")


@dataclass(frozen=True, slots=True)
class FeedAddress:
    """Where a feed line is published: IPv4 group (or unicast address) and UDP port."""

    group: str
    port: int

    def __post_init__(self) -> None:
        _ip(self.group)
        if not isinstance(self.port, int) or not 1 <= self.port <= 0xFFFF:
            raise ValueError(f"UDP port must be an integer in 1..65535, got {self.port!r}")

    @classmethod
    def parse(cls, text: str) -> FeedAddress:
        """Parse ``"233.54.12.1:26477"``."""
        group, sep, port = text.strip().rpartition(":")
        if not sep or not group or not port.isdigit():
            raise ValueError(f"bad feed address {text!r}: expected GROUP:PORT, "
                             f"e.g. 233.54.12.1:26477")
        try:
            return cls(group, int(port))
        except ValueError as e:
            raise ValueError(f"bad feed address {text!r}: {e}") from None

    def __str__(self) -> str:
        return f"{self.group}:{self.port}"

    @property
    def ip(self) -> int:
        return _ip(self.group)

    @property
    def is_multicast(self) -> bool:
        return self.ip >> 28 == 0xE


class FrameTemplate:
    """Fixed addressing for a stream of UDP frames; :meth:`build` fills in one datagram.

    The Ethernet, VLAN and constant IPv4/UDP fields are packed once; each frame only patches
    lengths, identification and checksums, which keeps building a day's worth of frames
    cheap. ``dst_mac=None`` derives the multicast MAC of a multicast ``dst_ip`` (a unicast
    destination then needs an explicit MAC).
    """

    def __init__(self, *, dst_ip: str | int, dst_port: int, src_ip: str | int = "10.0.0.1",
                 src_port: int = DEFAULT_SRC_PORT, dst_mac: str | bytes | None = None,
                 src_mac: str | bytes = DEFAULT_SRC_MAC, vlan: int | None = None,
                 vlan_pcp: int = 0, ip_options: bytes = b"", ttl: int = 64, dscp: int = 0,
                 dont_fragment: bool = True, udp_checksum: bool = True, pad: bool = True):
        dst, src = _ip(dst_ip), _ip(src_ip)
        for name, port in (("dst_port", dst_port), ("src_port", src_port)):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"{name} {port} out of range")
        if len(ip_options) % 4 or len(ip_options) > _MAX_IP_OPTIONS:
            raise ValueError(f"IPv4 options must be a multiple of 4 bytes, at most "
                             f"{_MAX_IP_OPTIONS}; got {len(ip_options)}")
        if not 0 <= ttl <= 0xFF or not 0 <= dscp < 64:
            raise ValueError(f"ttl {ttl} / dscp {dscp} out of range")
        if dst_mac is None:
            if dst >> 28 != 0xE:
                raise ValueError("dst_mac is required for a unicast dst_ip")
            dmac = multicast_mac(dst)
        else:
            dmac = _mac(dst_mac)
        if vlan is None:
            l2 = _ETH_S.pack(dmac, _mac(src_mac), ETHERTYPE_IPV4)
        else:
            if not 0 <= vlan < 4096 or not 0 <= vlan_pcp < 8:
                raise ValueError(f"VLAN id {vlan} / PCP {vlan_pcp} out of range")
            l2 = (_ETH_S.pack(dmac, _mac(src_mac), ETHERTYPE_VLAN)
                  + _VLAN_S.pack((vlan_pcp << 13) | vlan, ETHERTYPE_IPV4))
        ihl = IPV4.length + len(ip_options)
        ip = IPV4.pack(version_ihl=0x40 | ihl // 4, dscp_ecn=dscp << 2,
                       flags_fragment=_IPV4_DF if dont_fragment else 0, ttl=ttl,
                       protocol=IPPROTO_UDP, src=src, dst=dst) + ip_options
        udp = UDP.pack(src_port=src_port, dst_port=dst_port)
        self._header = l2 + ip + udp
        self._ip_len = ihl
        self._udp_checksum = udp_checksum
        self._pad = pad
        # Checksums are sums, so the constant fields are summed once: the IPv4 header with
        # zero length/identification/checksum, and the pseudo-header (addresses, protocol)
        # plus the UDP header with zero length/checksum. Per frame only the variable fields
        # and the payload are added.
        self._ip_sum = _value(ip)
        self._udp_sum = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) \
            + IPPROTO_UDP + _value(udp)
        ip_at, udp_at = len(l2), len(l2) + ihl
        self._total_length_at = ip_at + IPV4["total_length"].offset
        self._ident_at = ip_at + IPV4["identification"].offset
        self._ip_checksum_at = ip_at + IPV4["checksum"].offset
        self._udp_length_at = udp_at + UDP["length"].offset
        self._udp_checksum_at = udp_at + UDP["checksum"].offset

    @property
    def overhead(self) -> int:
        """Header bytes in front of the UDP payload."""
        return len(self._header)

    def build(self, payload: bytes, ident: int = 0) -> bytes:
        """One frame carrying ``payload``; ``ident`` is the IPv4 identification field."""
        udp_len = UDP.length + len(payload)
        total = self._ip_len + udp_len
        if total > 0xFFFF:
            raise ValueError(f"UDP payload of {len(payload)} bytes does not fit an IPv4 packet")
        ident &= 0xFFFF
        hdr = bytearray(self._header)
        pack = _U16.pack_into
        pack(hdr, self._total_length_at, total)
        pack(hdr, self._ident_at, ident)
        pack(hdr, self._ip_checksum_at, ~_fold(self._ip_sum + total + ident) & 0xFFFF)
        pack(hdr, self._udp_length_at, udp_len)
        if self._udp_checksum:
            # The UDP length counts twice: in the pseudo-header and in the UDP header.
            csum = ~_fold(self._udp_sum + 2 * udp_len + _value(payload)) & 0xFFFF
            pack(hdr, self._udp_checksum_at, csum or 0xFFFF)   # 0 would mean "no checksum"
        frame = bytes(hdr) + payload
        if self._pad and len(frame) < MIN_FRAME:
            frame += bytes(MIN_FRAME - len(frame))
        return frame


def udp_frame(payload: bytes, *, dst_ip: str | int, dst_port: int, src_ip: str | int = "10.0.0.1",
              src_port: int = DEFAULT_SRC_PORT, dst_mac: str | bytes | None = None,
              src_mac: str | bytes = DEFAULT_SRC_MAC, vlan: int | None = None, vlan_pcp: int = 0,
              ip_options: bytes = b"", ttl: int = 64, ident: int = 0, dscp: int = 0,
              dont_fragment: bool = True, udp_checksum: bool = True, pad: bool = True) -> bytes:
    """One Ethernet frame (no FCS) carrying ``payload`` in IPv4/UDP; see :class:`FrameTemplate`.

    For many frames to the same destination build a :class:`FrameTemplate` once instead.
    """
    return FrameTemplate(
        dst_ip=dst_ip, dst_port=dst_port, src_ip=src_ip, src_port=src_port, dst_mac=dst_mac,
        src_mac=src_mac, vlan=vlan, vlan_pcp=vlan_pcp, ip_options=ip_options, ttl=ttl,
        dscp=dscp, dont_fragment=dont_fragment, udp_checksum=udp_checksum, pad=pad,
    ).build(payload, ident)


@dataclass(frozen=True, slots=True)
class UdpFrame:
    """A parsed frame. ``udp_checksum_ok`` is ``None`` when the sender sent no checksum."""

    dst_mac: bytes
    src_mac: bytes
    vlan: int | None            #: VLAN id (802.1Q), or None for an untagged frame
    vlan_pcp: int | None
    src_ip: int
    dst_ip: int
    ttl: int
    ident: int
    ip_options: bytes
    src_port: int
    dst_port: int
    payload: bytes
    ip_checksum_ok: bool
    udp_checksum_ok: bool | None


def parse_udp_frame(frame: bytes) -> UdpFrame | None:
    """Parse an Ethernet frame; ``None`` unless it holds one whole, unfragmented IPv4/UDP datagram.

    Malformed lengths, other ethertypes or protocols and IP fragments all give ``None``:
    callers (capture tools, tests) skip what is not a feed datagram. Checksums are verified
    and reported, not enforced, so a test can tell a bad checksum from a missing frame.
    """
    if len(frame) < _ETH_S.size:
        return None
    dst_mac, src_mac, ethertype = _ETH_S.unpack_from(frame)
    at = _ETH_S.size
    vlan = pcp = None
    if ethertype == ETHERTYPE_VLAN:
        if len(frame) < at + _VLAN_S.size:
            return None
        tci, ethertype = _VLAN_S.unpack_from(frame, at)
        vlan, pcp = tci & 0xFFF, tci >> 13
        at += _VLAN_S.size
    if ethertype != ETHERTYPE_IPV4 or len(frame) < at + IPV4.length:
        return None
    ip = _IPV4_S.unpack_from(frame, at)
    ihl = (ip[_VER_IHL] & 0xF) * 4
    total = ip[_TOTAL]
    if (ip[_VER_IHL] >> 4 != 4 or ihl < IPV4.length or total < ihl + UDP.length
            or at + total > len(frame) or ip[_PROTO] != IPPROTO_UDP
            or ip[_FLAGS] & (IPV4_MF | IPV4_OFFSET_MASK)):
        return None
    udp_at = at + ihl
    udp = _UDP_S.unpack_from(frame, udp_at)
    udp_len = udp[_ULEN]
    if not UDP.length <= udp_len <= total - ihl:
        return None
    header = frame[at:udp_at]
    segment = frame[udp_at:udp_at + udp_len]
    src, dst = ip[_SRC], ip[_DST]
    udp_ok = None
    if udp[_USUM]:
        pseudo = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + IPPROTO_UDP
        udp_ok = _fold(pseudo + udp_len + _value(segment)) == 0xFFFF
    return UdpFrame(
        dst_mac=dst_mac, src_mac=src_mac, vlan=vlan, vlan_pcp=pcp, src_ip=src, dst_ip=dst,
        ttl=ip[_TTL], ident=ip[_IDENT], ip_options=bytes(header[IPV4.length:]),
        src_port=udp[_SPORT], dst_port=udp[_DPORT], payload=bytes(segment[UDP.length:]),
        ip_checksum_ok=_fold(_value(bytes(header))) == 0xFFFF, udp_checksum_ok=udp_ok,
    )
