"""TCP frames of one connection, checked with scapy: parsed as Ethernet/IPv4/TCP, checksums
equal to the ones scapy computes itself, sequence/ack numbers consistent, and the payloads
reassembling into the two byte streams. Also the pcap round trip."""

from __future__ import annotations

import os
import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from proto import ouch
from proto import soupbintcp as sb
from sim.feed.pcap import Frame, read_frames, write_frames
from sim.feed.tcp import ACK, FIN, PSH, SYN, TcpConnection

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_feed_tcp: seed {SEED}")

CLIENT, SERVER = ("10.0.0.2", 40000), ("10.0.0.100", 15000)


def _check_checksums(frame: bytes) -> Ether:
    """Parse with scapy; rebuild with both checksums deleted (scapy recomputes them) and
    require the very same bytes."""
    pkt = Ether(frame)
    assert IP in pkt and TCP in pkt, pkt.summary()
    again = pkt.copy()
    del again[IP].chksum
    del again[TCP].chksum
    assert bytes(Ether(bytes(again))) == frame, f"checksum mismatch: {pkt.summary()}"
    return pkt


def _reassemble(frames: list[bytes]) -> dict[tuple, bytes]:
    """Per-direction stream rebuilt from the segments' sequence numbers (scapy's fields)."""
    segs: dict[tuple, dict[int, bytes]] = {}
    isn: dict[tuple, int] = {}
    for f in frames:
        pkt = _check_checksums(f)
        key = ((pkt[IP].src, pkt[TCP].sport), (pkt[IP].dst, pkt[TCP].dport))
        if pkt[TCP].flags & SYN:
            isn[key] = pkt[TCP].seq + 1
        data = bytes(pkt[TCP].payload)[:pkt[IP].len - 4 * pkt[IP].ihl - 4 * pkt[TCP].dataofs]
        if data:
            segs.setdefault(key, {})[(pkt[TCP].seq - isn[key]) % (1 << 32)] = data
    out = {}
    for key, parts in segs.items():
        stream, at = b"", 0
        for off in sorted(parts):
            assert off == at, f"gap or overlap at {off} (expected {at})"
            stream += parts[off]
            at += len(parts[off])
        out[key] = stream
    return out


def test_handshake_first_and_fields():
    conn = TcpConnection(mss=536)
    frames = conn.client_send(b"hello")
    pkts = [_check_checksums(f) for f in frames]
    syn, synack, ack, data = pkts
    assert syn[TCP].flags == SYN and synack[TCP].flags == SYN | ACK and ack[TCP].flags == ACK
    assert ("MSS", 536) in syn[TCP].options and ("MSS", 536) in synack[TCP].options
    assert synack[TCP].ack == syn[TCP].seq + 1 and ack[TCP].ack == synack[TCP].seq + 1
    assert data[TCP].flags == ACK | PSH and data[TCP].seq == ack[TCP].seq
    assert (syn[IP].src, syn[TCP].sport, syn[IP].dst, syn[TCP].dport) == (*CLIENT[:1],
                                                                          CLIENT[1], *SERVER)
    assert syn.src == "02:00:00:00:00:02" and syn.dst == "02:00:00:00:00:64"
    assert syn[IP].flags == "DF" and syn[IP].ttl == 64 and syn[IP].proto == 6
    assert all(len(f) >= 60 for f in frames)
    assert conn.client_send(b"") == []          # handshake only once
    server = _check_checksums(conn.server_send(b"x")[0])
    assert server[TCP].ack == data[TCP].seq + 5  # acknowledges everything received
    bare = _check_checksums(conn.ack(from_client=True))
    assert bare[TCP].flags == ACK and bare[TCP].ack == server[TCP].seq + 1
    assert bare[IP].id == data[IP].id + 1        # per-sender IPv4 identification


def test_random_streams_reassemble():
    rng = random.Random(SEED)
    for _trial in range(10):
        mss = rng.choice((1, 7, 49, 536, 1460))
        conn = TcpConnection(mss=mss, client_isn=rng.randrange(1 << 32),
                             server_isn=(1 << 32) - rng.randint(1, 100))   # wraps soon
        sent = {"c": b"", "s": b""}
        frames: list[bytes] = []
        for _ in range(rng.randint(1, 20)):
            side = rng.choice("cs")
            # At most ~40 segments per send: scapy dissects every frame, and is slow at it.
            data = rng.randbytes(min(mss * 40, rng.choice((1, 19, 50, 3000,
                                                           rng.randint(0, 5000)))))
            frames += conn.client_send(data) if side == "c" else conn.server_send(data)
            sent[side] += data
        frames += conn.close()
        for f in frames:
            pkt = Ether(f)
            payload_len = pkt[IP].len - 20 - 4 * pkt[TCP].dataofs
            assert payload_len <= mss, WHERE
        got = _reassemble(frames)
        assert got.get((CLIENT, SERVER), b"") == sent["c"], WHERE
        assert got.get((SERVER, CLIENT), b"") == sent["s"], WHERE
        fin = [Ether(f) for f in frames[-3:]]
        assert [p[TCP].flags for p in fin] == [FIN | ACK, FIN | ACK, ACK], WHERE
        assert fin[2][TCP].ack == fin[1][TCP].seq + 1, WHERE


def test_soupbintcp_conversation_to_pcap(tmp_path):
    """An order-entry conversation as a capture: written, read back, reassembled, deframed."""
    from sim.exchange import ExchangeSimulator
    ex = ExchangeSimulator(lambda s: (1_000_000, 100, 1_000_100, 100), ["AAPL"])
    conn = TcpConnection(mss=64)
    client = [sb.login_request("WIRE", "SPEED")] + [
        sb.pack_packet("U", ouch.encode("O", order_token=f"T{i}", buy_sell_indicator="B",
                                        shares=10, stock="AAPL", price=1_000_100))
        for i in range(5)]
    frames, t, expect_server = [], 1_000, b""
    for pkt in client:
        frames += [Frame(t, f) for f in conn.client_send(pkt)]
        reply = ex.on_client_bytes(pkt, t)
        expect_server += reply
        frames += [Frame(t + 500, f) for f in conn.server_send(reply)]
        t += 1_000
    path = tmp_path / "order_entry.pcap"
    assert write_frames(path, frames) == len(frames)
    back = list(read_frames(path))
    assert back == frames
    got = _reassemble([f.data for f in back])
    assert got[(CLIENT, SERVER)] == b"".join(client)
    assert got[(SERVER, CLIENT)] == expect_server
    packets = sb.Deframer(types=sb.SERVER_TYPES).feed(got[(SERVER, CLIENT)])
    assert "".join(t for t, _ in packets) == "A" + "S" * 10     # A and E for each order


def test_argument_errors():
    with pytest.raises(ValueError, match="mss"):
        TcpConnection(mss=0)
    with pytest.raises(ValueError, match="port"):
        TcpConnection(client_port=0)
    with pytest.raises(ValueError, match="not a MAC"):
        TcpConnection(server_mac="02:00")
    with pytest.raises(ValueError):
        TcpConnection(server_ip="10.0.0.300")
    conn = TcpConnection()
    conn.close()
    with pytest.raises(ValueError, match="closed"):
        conn.client_send(b"x")
    assert conn.close() == []
