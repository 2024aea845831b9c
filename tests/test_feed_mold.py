"""MoldUDP64 packetizer: MTU bound, contiguous sequence numbers, whole messages, control
packets. Packets are decoded here with a parser written from the specification, not with
the project's own ``unpack_packet``."""

from __future__ import annotations

import random
import struct

import pytest

from proto.itch import LENGTHS
from proto.moldudp64 import pack_packet
from sim.feed.mold import (
    MAX_COUNT,
    Packetizer,
    end_of_session,
    heartbeat,
    itch_timestamp,
    packetize,
    udp_payload_limit,
)

_HDR = struct.Struct(">10sQH")     # session, sequence number, message count (MoldUDP64 1.00)


def spec_decode(payload: bytes) -> tuple[bytes, int, int, list[bytes]]:
    session, seq, count = _HDR.unpack_from(payload)
    pos, msgs = _HDR.size, []
    if count not in (0, 0xFFFF):
        for _ in range(count):
            (n,) = struct.unpack_from(">H", payload, pos)
            msgs.append(payload[pos + 2:pos + 2 + n])
            pos += 2 + n
    assert pos == len(payload), "bytes left over after the last block"
    return session, seq, count, msgs


def itch_like(rng: random.Random, n: int, ts0: int = 0) -> list[bytes]:
    """Random messages of ITCH lengths whose header timestamps increase."""
    out, ts = [], ts0
    lengths = list(LENGTHS.values())
    for _ in range(n):
        ts += rng.choice((0, 0, 1, 50, 5_000, 2_000_000))
        m = bytearray(rng.randbytes(rng.choice(lengths)))
        m[5:11] = ts.to_bytes(6, "big")
        out.append(bytes(m))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_packets_fit_mtu_and_carry_everything_in_order(seed):
    rng = random.Random(seed)
    msgs = itch_like(rng, 3000)
    mtu = rng.choice((128, 576, 1500, 9000))
    first = rng.randrange(1, 1 << 40)
    max_messages = rng.choice((None, 1, 3, 100))
    limit = mtu - 20 - 8
    packets = list(packetize(msgs, "SESS01", mtu=mtu, first_seq=first,
                             max_messages=max_messages))
    seq = first
    got: list[bytes] = []
    for k, p in enumerate(packets):
        assert len(p.payload) <= limit, f"seed {seed}: packet {k} exceeds the MTU"
        session, pseq, count, pmsgs = spec_decode(p.payload)
        assert session == b"SESS01    "
        assert pseq == p.seq == seq, f"seed {seed}: sequence gap at packet {k}"
        assert count == p.count == len(pmsgs) >= 1
        assert list(p.messages) == pmsgs
        assert p.payload == pack_packet("SESS01", p.seq, pmsgs)
        if max_messages is not None:
            assert count <= max_messages
        # Packets are full: the next message would not have fitted (or the count cap hit).
        if k + 1 < len(packets):
            nxt = packets[k + 1].messages[0]
            assert (len(p.payload) + 2 + len(nxt) > limit or count == max_messages), \
                f"seed {seed}: packet {k} closed early"
        got.extend(pmsgs)
        seq += count
    assert got == msgs, f"seed {seed}: messages lost, split or reordered"
    assert packets[-1].next_seq == first + len(msgs)


def test_control_packets():
    assert udp_payload_limit(1500) == 1472
    assert udp_payload_limit(1500, ip_options_len=8) == 1464
    assert spec_decode(heartbeat("ABC", 42)) == (b"ABC       ", 42, 0, [])
    assert spec_decode(end_of_session("ABC", 43)) == (b"ABC       ", 43, 0xFFFF, [])
    p = Packetizer("S", first_seq=10)
    assert p.heartbeat().seq == 10
    assert p.add(b"x" * 20) is None
    assert p.next_seq == 11
    with pytest.raises(ValueError, match="flush"):
        p.end_of_session()
    pkt = p.flush()
    assert (pkt.seq, pkt.count, pkt.messages) == (10, 1, (b"x" * 20,))
    assert p.flush() is None
    hb, eos = p.heartbeat(), p.end_of_session()
    assert spec_decode(hb.payload)[1:3] == (11, 0)
    assert spec_decode(eos.payload)[1:3] == (11, 0xFFFF)
    assert (hb.next_seq, eos.seq) == (11, 11)


def test_max_delay_bounds_packet_time_span():
    rng = random.Random(7)
    msgs = itch_like(rng, 2000)
    packets = list(packetize(msgs, "S", max_delay_ns=1_000))
    assert [m for p in packets for m in p.messages] == msgs
    for k, p in enumerate(packets):
        span = itch_timestamp(p.messages[-1]) - itch_timestamp(p.messages[0])
        assert span <= 1_000
        if k + 1 < len(packets) and len(p.payload) + 2 + len(packets[k + 1].messages[0]) <= 1472:
            # Closed early only because the next message is too late for this packet.
            assert itch_timestamp(packets[k + 1].messages[0]) - itch_timestamp(p.messages[0]) \
                > 1_000
    # The same stream packed densely needs fewer packets.
    assert len(list(packetize(msgs, "S"))) < len(packets)


def test_bad_arguments():
    with pytest.raises(ValueError, match="cannot fit"):
        Packetizer("S", max_payload=100).add(bytes(79))
    Packetizer("S", max_payload=100).add(bytes(78))          # 20 + 2 + 78 = 100 fits
    with pytest.raises(ValueError, match="at most 10 ASCII"):
        Packetizer("ELEVENCHARS")
    with pytest.raises(ValueError, match="max_messages"):
        Packetizer("S", max_messages=MAX_COUNT + 1)           # 0xFFFF means end of session
    with pytest.raises(ValueError, match="first_seq"):
        Packetizer("S", first_seq=0)
    with pytest.raises(ValueError, match="too small"):
        udp_payload_limit(48)
