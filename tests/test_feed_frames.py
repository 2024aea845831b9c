"""Ethernet / 802.1Q / IPv4 / UDP frames, checked byte for byte against scapy's own builder
(which computes the IPv4 and UDP checksums itself), and the parser against corruption."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, UDP, IPOption_NOP, IPOption_Router_Alert
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from proto.net import ipv4_checksum, ones_complement_sum
from sim.feed.frames import (
    FeedAddress,
    FrameTemplate,
    internet_checksum,
    multicast_mac,
    parse_udp_frame,
    udp_frame,
)

_OPTIONS = {
    "none": [],
    "ra": [IPOption_Router_Alert()],
    "ra+nop4": [IPOption_Router_Alert(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP(),
                IPOption_NOP()],
}


def scapy_frame(payload: bytes, *, vlan, pcp, options, ident, ttl, dscp, udp_checksum):
    l2 = Ether(dst="01:00:5e:36:0c:01", src="02:00:00:00:00:01")
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan, prio=pcp)
    udp = UDP(sport=26400, dport=26477) if udp_checksum else UDP(sport=26400, dport=26477,
                                                                 chksum=0)
    ip = IP(src="10.0.0.1", dst="233.54.12.1", id=ident, ttl=ttl, flags="DF", tos=dscp << 2,
            options=options)
    return bytes(l2 / ip / udp / Raw(payload))


@pytest.mark.parametrize("seed", range(8))
def test_matches_scapy_byte_for_byte(seed):
    rng = random.Random(seed)
    for _ in range(25):
        payload = rng.randbytes(rng.choice((0, 1, 7, 20, 21, 100, 1471, 1472)))
        vlan = rng.choice((None, 0, 1, 100, 4095))
        pcp = rng.randrange(8)
        opt = rng.choice(list(_OPTIONS))
        ident, ttl, dscp = rng.randrange(1 << 16), rng.randrange(1, 256), rng.randrange(64)
        csum = rng.random() < 0.8
        ours = udp_frame(payload, dst_ip="233.54.12.1", dst_port=26477, src_port=26400,
                         vlan=vlan, vlan_pcp=pcp,
                         ip_options=b"".join(bytes(o) for o in _OPTIONS[opt]),
                         ident=ident, ttl=ttl, dscp=dscp, udp_checksum=csum, pad=False)
        ref = scapy_frame(payload, vlan=vlan, pcp=pcp if vlan is not None else 0,
                          options=_OPTIONS[opt], ident=ident, ttl=ttl, dscp=dscp,
                          udp_checksum=csum)
        assert ours == ref, f"seed {seed}: payload {len(payload)} vlan {vlan} opt {opt}"


def test_scapy_dissection_validates_checksums():
    """Dissect our frame with scapy, blank the checksums and let scapy recompute them."""
    frame = udp_frame(b"hello moldudp64", dst_ip="233.54.12.1", dst_port=26477, vlan=42,
                      ip_options=bytes(IPOption_Router_Alert()), ident=7)
    pkt = Ether(frame)
    assert pkt[Dot1Q].vlan == 42 and pkt[IP].ihl == 6 and pkt[IP].options
    assert bytes(pkt[UDP].payload)[:15] == b"hello moldudp64"
    ip_sum, udp_sum = pkt[IP].chksum, pkt[UDP].chksum
    del pkt[IP].chksum, pkt[UDP].chksum
    again = Ether(bytes(pkt))
    assert (again[IP].chksum, again[UDP].chksum) == (ip_sum, udp_sum)


def test_udp_checksum_zero_is_sent_as_ffff():
    """A computed checksum of 0 must go out as 0xFFFF (0 means "no checksum")."""
    def build(payload: bytes) -> bytes:
        return udp_frame(payload, dst_ip="233.54.12.1", dst_port=26477, src_port=26400,
                         pad=False)

    base = bytes(range(30))
    fix = build(base + b"\0\0")[40:42]    # appending the checksum makes the sum 0xFFFF
    frame = build(base + fix)
    assert frame[40:42] == b"\xff\xff"
    assert frame == scapy_frame(base + fix, vlan=None, pcp=0, options=[], ident=0, ttl=64,
                                dscp=0, udp_checksum=True)
    parsed = parse_udp_frame(frame)
    assert parsed is not None and parsed.udp_checksum_ok


def test_padding_and_multicast_mac():
    frame = udp_frame(b"x", dst_ip="239.255.255.255", dst_port=9)
    assert len(frame) == 60 and frame[43:] == bytes(17)
    assert frame[:6] == bytes.fromhex("01005e7fffff")        # top bit of the group dropped
    assert multicast_mac("233.54.12.1") == bytes.fromhex("01005e360c01")
    assert len(udp_frame(b"x" * 100, dst_ip="233.54.12.1", dst_port=9)) == 14 + 20 + 8 + 100
    with pytest.raises(ValueError, match="dst_mac is required"):
        udp_frame(b"", dst_ip="10.1.2.3", dst_port=9)
    unicast = udp_frame(b"", dst_ip="10.1.2.3", dst_port=9, dst_mac="aa:bb:cc:dd:ee:ff")
    assert unicast[:6] == bytes.fromhex("aabbccddeeff")
    with pytest.raises(ValueError, match="not a multicast group"):
        multicast_mac("10.0.0.1")


@pytest.mark.parametrize("seed", range(4))
def test_parse_round_trip_and_corruption(seed):
    rng = random.Random(seed)
    payload = rng.randbytes(rng.randrange(0, 1473))
    vlan = rng.choice((None, 5))
    opts = rng.choice((b"", bytes(IPOption_Router_Alert())))
    tpl = FrameTemplate(dst_ip="233.54.12.1", dst_port=26477, src_ip="192.168.7.9",
                        src_port=40000, vlan=vlan, vlan_pcp=3, ip_options=opts, ttl=9)
    frame = tpl.build(payload, ident=0x1234)
    p = parse_udp_frame(frame + b"\xee" * 4)            # trailing bytes (e.g. a kept FCS)
    assert p is not None
    assert (p.payload, p.vlan, p.ip_options, p.ident, p.ttl) == (payload, vlan, opts, 0x1234, 9)
    assert (p.src_port, p.dst_port) == (40000, 26477)
    assert (p.src_ip, p.dst_ip) == (0xC0A80709, 0xE9360C01)
    assert p.ip_checksum_ok and p.udp_checksum_ok
    assert p.vlan_pcp == (3 if vlan is not None else None)
    assert tpl.overhead == 14 + (4 if vlan is not None else 0) + 20 + len(opts) + 8

    ip_at = 14 + (4 if vlan is not None else 0)
    bad_ip = bytearray(frame)
    bad_ip[ip_at + 8] ^= 0x01                           # TTL: covered by the IP checksum only
    q = parse_udp_frame(bytes(bad_ip))
    assert q is not None and not q.ip_checksum_ok and q.udp_checksum_ok
    if payload:
        bad_udp = bytearray(frame)
        bad_udp[tpl.overhead + rng.randrange(len(payload))] ^= 0x80
        q = parse_udp_frame(bytes(bad_udp))
        assert q is not None and q.ip_checksum_ok and q.udp_checksum_ok is False
    no_sum = udp_frame(payload, dst_ip="233.54.12.1", dst_port=1, udp_checksum=False)
    assert parse_udp_frame(no_sum).udp_checksum_ok is None


def test_parse_rejects_what_is_not_one_udp_datagram():
    good = udp_frame(bytes(100), dst_ip="233.54.12.1", dst_port=1)
    assert parse_udp_frame(good) is not None
    assert parse_udp_frame(good[:60]) is None                       # truncated datagram
    assert parse_udp_frame(good[:10]) is None                       # not even Ethernet
    assert parse_udp_frame(bytes(Ether() / ARP())) is None          # other ethertype
    tcp = bytearray(good)
    tcp[23] = 6                                                     # protocol TCP
    assert parse_udp_frame(bytes(tcp)) is None
    frag = bytearray(good)
    frag[20] |= 0x20                                                # more fragments
    assert parse_udp_frame(bytes(frag)) is None
    v6 = bytearray(good)
    v6[14] = 0x65                                                   # version 6
    assert parse_udp_frame(bytes(v6)) is None


@pytest.mark.parametrize("seed", range(4))
def test_internet_checksum_matches_reference_loop(seed):
    rng = random.Random(seed)
    for n in (0, 1, 2, 3, 20, 21, 1500):
        for data in (rng.randbytes(n), bytes(n), b"\xff" * n):
            assert internet_checksum(data) == (~ones_complement_sum(data)) & 0xFFFF, \
                f"seed {seed} n {n}"
    hdr = bytes(IP(src="1.2.3.4", dst="5.6.7.8", chksum=0))[:20]
    assert internet_checksum(hdr) == ipv4_checksum(hdr)


def test_feed_address():
    a = FeedAddress.parse("233.54.12.1:26477")
    assert (a.group, a.port, str(a), a.is_multicast) == ("233.54.12.1", 26477,
                                                        "233.54.12.1:26477", True)
    assert a.ip == 0xE9360C01
    assert not FeedAddress.parse(" 10.0.0.1:1 ").is_multicast
    for bad in ("233.54.12.1", "233.54.12.1:", ":26477", "233.54.12:26477",
                "233.54.12.300:1", "233.54.12.1:0", "233.54.12.1:65536", "233.54.12.1:x",
                "host:26477", "233.54.12.1:-5"):
        with pytest.raises(ValueError, match="bad feed address"):
            FeedAddress.parse(bad)
    with pytest.raises(ValueError, match="UDP port"):
        FeedAddress("233.54.12.1", 0)
