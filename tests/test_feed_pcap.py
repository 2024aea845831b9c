"""Captures: pcap / pcapng round trips, link-type checks, and day file -> timed frames."""

from __future__ import annotations

import gzip
import random
from decimal import Decimal

import pytest
from scapy.data import DLT_EN10MB, DLT_RAW
from scapy.layers.inet import UDP
from scapy.utils import PcapNgWriter, rdpcap

from proto.moldudp64 import unpack_packet
from sim.feed.frames import FeedAddress, parse_udp_frame
from sim.feed.mold import itch_timestamp
from sim.feed.pcap import (
    WIRE_OVERHEAD,
    Frame,
    dayfile_to_frames,
    merge_frames,
    read_frames,
    wire_time_ns,
    write_frames,
)
from sim.feed.synth import generate_day

FEED = FeedAddress.parse("233.54.12.1:26477")


def random_frames(seed: int, n: int, t0: int) -> list[Frame]:
    rng = random.Random(seed)
    out, t = [], t0
    for _ in range(n):
        t += rng.randrange(0, 10**7)
        out.append(Frame(t, rng.randbytes(rng.randrange(60, 1519))))
    return out


@pytest.mark.parametrize("suffix", [".pcap", ".pcap.gz"])
@pytest.mark.parametrize("nano", [True, False])
def test_pcap_round_trip(tmp_path, suffix, nano):
    frames = random_frames(1, 500, 1_767_225_600 * 10**9 + 123_456_789)   # a Unix time
    path = tmp_path / f"cap{suffix}"
    assert write_frames(path, frames, nano=nano) == len(frames)
    back = list(read_frames(path))
    assert [f.data for f in back] == [f.data for f in frames]
    if nano:
        assert [f.timestamp_ns for f in back] == [f.timestamp_ns for f in frames]
    else:
        assert [f.timestamp_ns for f in back] == [f.timestamp_ns // 1000 * 1000 for f in frames]
    # scapy's own reader agrees on what is in the file.
    assert [bytes(p) for p in rdpcap(str(path))] == [f.data for f in frames]


def test_pcapng_written_by_scapy(tmp_path):
    frames = random_frames(2, 200, 1_767_225_600 * 10**9)
    frames = [Frame(f.timestamp_ns // 1000 * 1000, f.data) for f in frames]   # µs resolution
    path = tmp_path / "cap.pcapng"
    w = PcapNgWriter(str(path))
    w.linktype = DLT_EN10MB
    w.write_header(None)
    for f in frames:
        # Decimal seconds: scapy multiplies by its tsresol, and a float would round down.
        w.write_packet(f.data, sec=Decimal(f.timestamp_ns) / 10**9)
    w.close()
    assert path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert list(read_frames(path)) == frames


def test_rejects_non_ethernet_and_non_captures(tmp_path):
    raw_ip = tmp_path / "raw.pcap"
    write_frames(raw_ip, [Frame(0, bytes(40))], linktype=DLT_RAW)
    with pytest.raises(ValueError, match="not Ethernet"):
        list(read_frames(raw_ip))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all")
    with pytest.raises(ValueError, match="not a pcap or pcapng"):
        list(read_frames(junk))


@pytest.mark.parametrize("suffix", [".pcap", ".pcap.gz"])
def test_cut_off_pcap_is_an_error_not_a_lost_frame(tmp_path, suffix):
    """A capture cut anywhere inside its last record (its 16-byte header included, which
    scapy's reader passes over quietly) is refused after the frames before it."""
    frames = random_frames(3, 20, 10**18)
    path = tmp_path / f"cap{suffix}"
    write_frames(path, frames)
    whole = path.read_bytes()
    raw = gzip.decompress(whole) if suffix.endswith(".gz") else whole
    last = 16 + len(frames[-1].data)
    for cut in (1, len(frames[-1].data) // 2, len(frames[-1].data) + 2, last - 1):
        data = raw[:len(raw) - cut]
        path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
        got = []
        with pytest.raises(ValueError, match="truncated"):
            got.extend(read_frames(path))
        assert got == frames[:-1], cut
    data = raw[:len(raw) - last]    # cut exactly between records: just a shorter capture
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    assert list(read_frames(path)) == frames[:-1]


def test_cut_off_pcapng_is_an_error_not_a_lost_frame(tmp_path):
    path = tmp_path / "cap.pcapng"
    w = PcapNgWriter(str(path))
    w.linktype = DLT_EN10MB
    w.write_header(None)
    for i in range(10):
        w.write_packet(bytes([i]) * 100, sec=Decimal(i))
    w.close()
    raw = path.read_bytes()
    assert len(list(read_frames(path))) == 10
    for cut in (1, 4, 50, 131):
        path.write_bytes(raw[:len(raw) - cut])
        got = []
        with pytest.raises(ValueError, match="truncated: the block at byte offset"):
            got.extend(read_frames(path))
        assert [f.data for f in got] == [bytes([i]) * 100 for i in range(9)], cut


def test_frame_timestamps_are_integer_nanoseconds():
    with pytest.raises(TypeError, match="nanoseconds"):
        Frame(1.5, b"")
    assert Frame(1_500_000_000, b"").timestamp == 1.5


def decode_line(frames: list[Frame]) -> tuple[list[int], list[int], list[list[bytes]]]:
    seqs, counts, msgs = [], [], []
    for f in frames:
        u = parse_udp_frame(f.data)
        assert u is not None and u.ip_checksum_ok and u.udp_checksum_ok
        assert (u.dst_ip, u.dst_port) == (FEED.ip, FEED.port)
        session, seq, count, m = unpack_packet(u.payload)
        assert session == "TEST01"
        seqs.append(seq)
        counts.append(count)
        msgs.append(m)
    return seqs, counts, msgs


def test_dayfile_to_frames(tmp_path):
    day = generate_day(6000, seed=11)
    frames = list(dayfile_to_frames(day, "TEST01", FEED, first_seq=1, max_delay_ns=10_000,
                                    end_of_session=True, vlan=7))
    seqs, counts, msgs = decode_line(frames)
    assert counts[-1] == 0xFFFF and seqs[-1] == len(day) + 1
    assert [x for m in msgs[:-1] for x in m] == day
    assert seqs[:-1] == [1 + sum(counts[:k]) for k in range(len(counts) - 1)]
    assert max(len(f.data) for f in frames) <= 14 + 4 + 1500
    times = [f.timestamp_ns for f in frames]
    for k, (f, m) in enumerate(zip(frames[:-1], msgs[:-1], strict=True)):
        # Stamped with the last message's ITCH time, unless the link was still busy.
        assert f.timestamp_ns >= itch_timestamp(m[-1])
        assert itch_timestamp(m[-1]) - itch_timestamp(m[0]) <= 10_000
        if k:
            assert f.timestamp_ns >= times[k - 1] + wire_time_ns(len(frames[k - 1].data),
                                                                 10**10)
            if f.timestamp_ns > itch_timestamp(m[-1]):
                assert f.timestamp_ns == times[k - 1] + wire_time_ns(len(frames[k - 1].data),
                                                                     10**10)
    # Idents count up like a sender's IP stack.
    assert [parse_udp_frame(f.data).ident for f in frames[:3]] == [0, 1, 2]
    # Through a capture file and back.
    write_frames(tmp_path / "line.pcap", frames)
    assert list(read_frames(tmp_path / "line.pcap")) == frames


def test_heartbeats_fill_silence():
    day = generate_day(300, seed=3, symbols=("AAPL",), fillers=0)     # minutes between msgs
    hb_ns = 60 * 10**9
    frames = list(dayfile_to_frames(day, "TEST01", FEED, heartbeat_ns=hb_ns, link_bps=None))
    seqs, counts, msgs = decode_line(frames)
    assert [x for m in msgs for x in m] == day
    gaps = [b.timestamp_ns - a.timestamp_ns for a, b in zip(frames, frames[1:], strict=False)]
    assert max(gaps) <= hb_ns
    hb = [k for k, c in enumerate(counts) if c == 0]
    assert len(hb) > 100
    for k in hb:        # a heartbeat carries the sequence number of the next data packet
        nxt = next(j for j in range(k, len(counts)) if counts[j])
        assert seqs[k] == seqs[nxt]


def test_merge_two_lines():
    day = generate_day(3000, seed=5)
    a = list(dayfile_to_frames(day, "TEST01", FEED, start_ns=0))
    b = list(dayfile_to_frames(day, "TEST01", FEED, start_ns=2_500, src_ip="10.0.0.2"))
    merged = list(merge_frames(a, b))
    assert len(merged) == len(a) + len(b)
    assert [f.timestamp_ns for f in merged] == sorted(f.timestamp_ns for f in merged)
    assert {parse_udp_frame(f.data).src_ip & 0xFF for f in merged[:2]} == {1, 2}


def test_arguments_checked_before_iteration():
    with pytest.raises(ValueError, match="link_bps"):
        dayfile_to_frames([], "S", FEED, link_bps=0)
    with pytest.raises(ValueError, match="dst_mac"):
        dayfile_to_frames([], "S", FeedAddress.parse("10.1.1.1:5"))


def test_wire_time():
    # A minimum frame at 10 Gb/s: 60 + 24 bytes = 672 bits = 67.2 ns, rounded up.
    assert WIRE_OVERHEAD == 24
    assert wire_time_ns(60, 10**10) == 68
    assert wire_time_ns(1518, 10**9) == (1518 + 24) * 8


def test_scapy_sees_udp_datagrams(tmp_path):
    frames = list(dayfile_to_frames(generate_day(2000, seed=1), "TEST01", FEED))
    write_frames(tmp_path / "d.pcap", frames)
    pkts = rdpcap(str(tmp_path / "d.pcap"))
    assert len(pkts) == len(frames)
    assert all(p.haslayer(UDP) and p[UDP].dport == FEED.port for p in pkts)
