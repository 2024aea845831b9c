"""Random MoldUDP64 frames, good and bad, for the ingress tests.

Frames are built from knobs (tag, IP options, lengths, flags, addresses) so that each fault is
produced on purpose — a fragment with a *correct* checksum is a FRAGMENT, not an IPV4_CHECKSUM —
and then some are damaged byte-wise (truncation, flipped bytes, corrupted message lengths,
garbage) to reach the corners nobody thought of. What the card must do with each frame is the
reference model's business, not this module's.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

from proto import itch, moldudp64, net

FEED_IP = net.ip_to_int("233.54.12.1")
FEED_PORT = 26477
FILTERS = [(FEED_IP, FEED_PORT)]
SESSION = "SESSION001"

_SAMPLE_FIELDS = {
    "S": {"event_code": "Q"},
    "A": {"order_ref": 1, "side": "B", "shares": 100, "stock": "AAPL", "price": 1_000_000},
    "D": {"order_ref": 1},
}


def random_message(rng: random.Random) -> bytes:
    """An ITCH message of a random type with random field values (right length, any content)."""
    code = rng.choice(itch.TYPE_CODES)
    layout = itch.MESSAGES[code]
    body = bytes(rng.getrandbits(8) for _ in range(layout.length - 1))
    return code.encode() + body


@dataclass
class FrameSpec:
    """Knobs of one frame. Defaults describe a good frame."""

    seq: int
    messages: list[bytes]
    session: str = SESSION
    count: int | None = None        # Mold count override
    vlan: int | None = None
    ip_options: bytes = b""
    ethertype: int = net.ETHERTYPE_IPV4
    version: int = 4
    ihl_override: int | None = None
    flags_fragment: int = 0
    protocol: int = net.IPPROTO_UDP
    total_length_delta: int = 0
    udp_length_delta: int = 0
    dst_ip: int = FEED_IP
    dst_port: int = FEED_PORT
    checksum_ok: bool = True
    trailing: bytes = b""           # extra UDP payload bytes after the messages
    pad_to: int = net.MIN_FRAME
    damage: list = field(default_factory=list)  # (kind, args) applied after building

    def build(self) -> bytes:
        payload = moldudp64.pack_packet(self.session, self.seq, self.messages,
                                        count=self.count) + self.trailing
        udp_len = net.UDP.length + len(payload) + self.udp_length_delta
        udp = struct.pack(">HHHH", 40000, self.dst_port, udp_len & 0xFFFF, 0) + payload
        ihl = self.ihl_override if self.ihl_override is not None else \
            5 + len(self.ip_options) // 4
        total = 4 * (5 + len(self.ip_options) // 4) + len(udp) + self.total_length_delta
        ip = bytearray(net.IPV4.pack(
            version_ihl=(self.version << 4) | (ihl & 0xF), total_length=total & 0xFFFF,
            identification=0x1234, flags_fragment=self.flags_fragment, ttl=64,
            protocol=self.protocol, src=net.ip_to_int("10.0.0.1"), dst=self.dst_ip)
            + self.ip_options)
        csum = net.ipv4_checksum(bytes(ip))
        if not self.checksum_ok:
            csum ^= 0x0101
        ip[10:12] = struct.pack(">H", csum)
        eth = bytes.fromhex("01005e360c01") + bytes.fromhex("020000000001")
        if self.vlan is not None:
            eth += struct.pack(">HH", net.ETHERTYPE_VLAN, self.vlan)
        eth += struct.pack(">H", self.ethertype)
        frame = bytearray(eth + bytes(ip) + udp)
        if len(frame) < self.pad_to:
            frame += bytes(self.pad_to - len(frame))
        for kind, arg in self.damage:
            if kind == "truncate":
                frame = frame[:max(1, min(arg, len(frame)))]
            elif kind == "flip":
                pos, mask = arg
                if pos < len(frame):
                    frame[pos] ^= mask
            elif kind == "msglen":
                pos, value = arg
                if pos + 1 < len(frame):
                    frame[pos:pos + 2] = struct.pack(">H", value)
        return bytes(frame)

    def first_length_field(self) -> int:
        """Frame position of the first message length field."""
        l3 = 14 + (4 if self.vlan is not None else 0)
        return l3 + 20 + len(self.ip_options) + 8 + moldudp64.HEADER_LENGTH


MUTATIONS = ("none", "truncate", "mac_error", "flip_header", "ethertype", "version",
             "checksum", "fragment", "protocol", "udp_length", "ip_length_short",
             "ip_length_long", "filtered", "count_more", "count_less", "count_zero",
             "msglen_small", "msglen_big", "msglen_overrun", "trailing", "garbage",
             "heartbeat", "end_of_session", "session")


def mutate(spec: FrameSpec, rng: random.Random, mutation: str, *,
           spare_sequence: bool = False) -> tuple[bool, bytes | None]:
    """Apply ``mutation`` to ``spec`` in place; return (mac_error, replacement bytes or None).

    A replacement (``garbage``) means the frame is not built from the spec at all.
    ``spare_sequence`` keeps random flips off the MoldUDP64 session and sequence number: a
    flipped sequence number in an otherwise valid frame is a legal jump the card must follow
    (it poisons the rest of a run), which long random runs want to avoid."""
    n = len(spec.messages)
    if mutation == "truncate":
        spec.damage.append(("truncate", rng.randint(1, len(spec.build()) - 1)))
    elif mutation == "mac_error":
        return True, None
    elif mutation == "flip_header":
        mold = spec.first_length_field() - moldudp64.HEADER_LENGTH
        spared = range(mold, mold + moldudp64.HEADER["count"].offset) if spare_sequence \
            else range(0)
        pos = rng.choice([p for p in range(spec.first_length_field()) if p not in spared])
        spec.damage.append(("flip", (pos, 1 << rng.randrange(8))))
    elif mutation == "ethertype":
        spec.ethertype = rng.choice([0x86DD, 0x0806, 0x88A8])
    elif mutation == "version":
        if rng.random() < 0.5:
            spec.version = 6
        else:
            spec.ihl_override = rng.randrange(5)
    elif mutation == "checksum":
        spec.checksum_ok = False
    elif mutation == "fragment":
        spec.flags_fragment = rng.choice([net.IPV4_MF, 1, 0x1FFF, net.IPV4_MF | 7])
    elif mutation == "protocol":
        spec.protocol = rng.choice([net.IPPROTO_TCP, 1, 255])
    elif mutation == "udp_length":
        spec.udp_length_delta = rng.choice([-3, -1, 1, 5, -9])
    elif mutation == "ip_length_short":
        spec.total_length_delta = -rng.randint(1, 30)
        spec.udp_length_delta = spec.total_length_delta
    elif mutation == "ip_length_long":
        spec.total_length_delta = rng.randint(1, 30)
        spec.udp_length_delta = spec.total_length_delta
    elif mutation == "filtered":
        if rng.random() < 0.5:
            spec.dst_port = FEED_PORT + 1
        else:
            spec.dst_ip = FEED_IP + 1
    elif mutation == "count_more":
        spec.count = n + rng.randint(1, 3)
    elif mutation == "count_less":
        spec.count = rng.randrange(1, n) if n > 1 else 2
    elif mutation == "count_zero":
        spec.count = rng.choice([0, 0xFFFF])
    elif mutation.startswith("msglen") and n:
        k = rng.randrange(n)
        pos = spec.first_length_field() + sum(2 + len(m) for m in spec.messages[:k])
        value = {"msglen_small": rng.randrange(12), "msglen_big": rng.randint(65, 0xFFFF),
                 "msglen_overrun": len(spec.messages[k]) + rng.randint(1, 12)}[mutation]
        spec.damage.append(("msglen", (pos, value)))
    elif mutation == "trailing":
        spec.trailing = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20)))
    elif mutation == "garbage":
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 120)))
        return rng.random() < 0.1, data
    elif mutation == "heartbeat":
        spec.messages = []
        spec.count = 0
    elif mutation == "end_of_session":
        spec.messages = []
        spec.count = 0xFFFF
    elif mutation == "session":
        spec.session = "OTHERSESS1"
    return False, None


def random_frame(rng: random.Random, seq: int, *, mutation: str | None = None,
                 max_messages: int = 6) -> tuple[bytes, bool, FrameSpec | None, int]:
    """(frame bytes, mac_error, spec or None for garbage, messages it carries if good)."""
    if mutation is None:
        mutation = "none" if rng.random() < 0.5 else rng.choice(MUTATIONS)
    n = rng.randint(1, max_messages)
    spec = FrameSpec(seq=seq, messages=[random_message(rng) for _ in range(n)])
    if rng.random() < 0.2:
        spec.vlan = rng.randrange(4096)
    if rng.random() < 0.2:
        spec.ip_options = bytes([1]) * (4 * rng.randint(1, 10))
    mac_error, replacement = mutate(spec, rng, mutation)
    if replacement is not None:
        return replacement, mac_error, None, 0
    return spec.build(), mac_error, spec, len(spec.messages)
