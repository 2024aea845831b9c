"""Tests of the Verilator replay harness (sim/harness) against tests/harness_standin.v.

The stand-in core reports, for every frame, the line, frame index, first- and last-beat cycle
(from its own cycle counter), byte length, beat count, a checksum of the tkeep-masked beats and
the tuser flag; it counts frames, bytes, tuser frames and malformed beats in AXI-Lite
registers; it reports order-entry RX chunks the same way (line 2), and loops every H2C record
back as a TX packet stamped with the cycle it was accepted (tests/harness_standin.v). So each
test checks the harness end to end: what went in on the RX, OE RX and H2C streams, when, and
what came back on C2H and TX, exactly (a cycle model of the H2C -> TX loop predicts every
handshake under TX backpressure).

The libraries are built into <repo>/build/harness and reused by later runs (content-hashed);
the first run verilates and compiles (~30 s per library on two cores).
"""

from __future__ import annotations

import subprocess
from collections import deque
from pathlib import Path

import numpy as np
import pytest

import sim.harness.build as harness_build
from hw.events import numpy_dtype
from sim.harness import (
    TX_BEAT_DTYPE,
    AxiLiteError,
    AxiLiteTimeout,
    FrameBuffer,
    H2cStats,
    Harness,
    HarnessBuildError,
    LineStats,
    ProtocolError,
    SimulationError,
    reassemble_tx,
)

STANDIN = Path(__file__).with_name("harness_standin.v")
TOP = "wirespeed_core"

KIND = 0xA5
BODY = np.dtype([("index", "<u8"), ("start", "<u8"), ("length", "<u4"), ("beats", "<u4"),
                 ("checksum", "<u8"), ("zero", "V16")])
REG_ID, REG_SCRATCH, REG_AUX = 0x00, 0x04, 0x08
REG_LINE = (0x10, 0x20)  # + 0 frames, + 4 bytes, + 8 tuser frames, + 0xC malformed beats
REG_GENERATED, REG_DROPPED, REG_CYCLE_LO = 0x30, 0x34, 0x38
STANDIN_ID = 0x57535344
MASK64 = (1 << 64) - 1


def checksum(frame: bytes) -> int:
    """The stand-in's checksum: per 8-byte beat, c = rotl64(c, 1) ^ beat (zero-padded)."""
    c = 0
    for word in np.frombuffer(frame + bytes(-len(frame) % 8), dtype="<u8"):
        c = (((c << 1) | (c >> 63)) & MASK64) ^ int(word)
    return c


def beats(length: int) -> int:
    return -(-length // 8)


def schedule(lengths, not_before, idle, t0: int) -> tuple[list[int], list[int]]:
    """First- and last-beat cycles of frames pushed at cycle ``t0`` on an idle line."""
    starts, ends, end = [], [], None
    for length, nb, gap in zip(lengths, not_before, idle, strict=True):
        start = max(int(nb), t0 if end is None else end + 1 + int(gap))
        end = start + beats(length) - 1
        starts.append(start)
        ends.append(end)
    return starts, ends


def bodies(records: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(records["body"]).view(BODY)


@pytest.fixture
def harness():
    with Harness(STANDIN, TOP) as h:
        yield h


def random_frames(rng: np.random.Generator, n: int) -> list[bytes]:
    small = rng.random(n) < 0.4
    lengths = np.where(small, rng.integers(1, 17, n), rng.integers(17, 400, n))
    return [rng.integers(0, 256, int(k), dtype=np.uint8).tobytes() for k in lengths]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_traffic_both_lines(harness: Harness, seed: int) -> None:
    rng = np.random.default_rng(seed)
    h = harness
    pattern = None
    if seed % 2:
        h.c2h_ready(float(rng.uniform(0.3, 0.9)), seed=seed)
    else:
        pattern = rng.integers(0, 2, int(rng.integers(2, 7)))
        pattern[0] = 1
        h.c2h_ready(pattern)
    ready_from = h.cycle

    n = 250
    t0 = h.cycle
    sent = []
    for line in (0, 1):
        frames = random_frames(rng, n)
        idle = rng.integers(0, 4, n)
        # Half the frames are gated by not_before, some of it already in the past.
        span = 3 * sum(beats(len(f)) for f in frames)
        not_before = np.where(rng.random(n) < 0.5, 0, np.sort(rng.integers(0, span, n)))
        error = rng.random(n) < 0.1
        batch = frames if line == 0 else FrameBuffer.from_frames(frames)
        assert h.push_frames(line, batch, not_before=not_before, idle=idle,
                             error=error) == range(n)
        sent.append((frames, error, *schedule([len(f) for f in frames], not_before, idle, t0)))

    # AXI-Lite while the lines run: the cycle register is latched in the AR handshake cycle,
    # which is the first cycle of the call; R completes one cycle later.
    for _ in range(5):
        h.step(int(rng.integers(0, 300)))
        c = h.cycle
        assert h.axil_read(REG_CYCLE_LO) == c
        assert h.cycle == c + 2
    h.run()

    records, arrival = h.records_with_cycles()
    body = bodies(records)
    assert (records["kind"] == KIND).all()
    assert (np.diff(records["seq"].astype(np.int64)) > 0).all(), "records out of order"
    assert (np.diff(arrival) > 0).all()
    assert (arrival >= records["timestamp"].astype(np.int64) + 2).all()
    if pattern is not None:
        assert pattern[(arrival - ready_from) % len(pattern)].all(), "accepted while not ready"
    dropped = h.axil_read(REG_DROPPED)
    assert h.axil_read(REG_GENERATED) == 2 * n
    assert len(records) + dropped == 2 * n
    keys = set(zip(records["line"].tolist(), body["index"].tolist(), strict=True))
    assert len(keys) == len(records)

    for r, b in zip(records, body, strict=True):
        line, index = int(r["line"]), int(b["index"])
        frames, error, starts, ends = sent[line]
        frame = frames[index]
        assert (b["length"], b["beats"], b["checksum"]) == (len(frame), beats(len(frame)),
                                                           checksum(frame)), (line, index)
        assert (b["start"], r["timestamp"]) == (starts[index], ends[index]), (line, index)
        assert r["aux"] == error[index], (line, index)

    for line, (frames, error, starts, _) in enumerate(sent):
        np.testing.assert_array_equal(h.frame_start_cycles(line), starts)
        np.testing.assert_array_equal(h.frame_start_cycles(line, start=n - 3), starts[-3:])
        stats = h.line_stats(line)
        total = sum(len(f) for f in frames)
        assert (stats.frames_pushed, stats.frames_sent, stats.frames_pending) == (n, n, 0)
        assert (stats.beats_sent, stats.bytes_sent) == (sum(beats(len(f)) for f in frames),
                                                        total)
        base = REG_LINE[line]
        assert [h.axil_read(base + k) for k in (0, 4, 8, 12)] == [n, total, int(error.sum()), 0]
    assert len(h.records()) == 0


def test_exact_beat_timing(harness: Harness) -> None:
    h = harness
    assert h.cycle == 0
    frames = [b"\x11", bytes(range(8)), bytes(range(9)), bytes(range(16)), bytes(range(17))]
    h.push_frames(0, frames, not_before=[0, 0, 10, 0, 30], idle=[5, 0, 0, 2, 0],
                  error=[0, 0, 1, 0, 0])
    # f0 at 0 (idle before the first frame does not apply); f1 back to back at 1; f2 waits
    # for cycle 10, 2 beats; f3 idles 2 cycles after f2's last beat (11); f4 waits for 30.
    assert h.run(drain=0) == 33  # returns right after the last beat, cycle 32
    np.testing.assert_array_equal(h.frame_start_cycles(0), [0, 1, 10, 14, 30])
    assert h.run(drain=10) >= 10
    records = h.records()
    body = bodies(records)
    assert records["timestamp"].tolist() == [0, 1, 11, 15, 32]
    assert body["beats"].tolist() == [1, 1, 2, 2, 3]
    assert body["length"].tolist() == [len(f) for f in frames]
    assert body["checksum"].tolist() == [checksum(f) for f in frames]
    assert records["aux"].tolist() == [0, 0, 1, 0, 0]
    assert records["line"].tolist() == [0] * 5
    assert h.axil_read(REG_LINE[0] + 12) == 0  # no malformed beat: tkeep/tuser framing right


def test_run_limits_and_drain(harness: Harness) -> None:
    h = harness
    h.push_frames(1, [bytes(100)] * 10, not_before=np.arange(10) * 1000)
    assert h.run(max_cycles=500) == 500
    assert h.line_stats(1).frames_sent == 1
    h.run(drain=0)
    assert h.line_stats(1).frames_pending == 0
    h.run()  # the last record is still in the core's pipeline
    start = h.cycle
    assert h.run(drain=25) == 25  # nothing left: exactly `drain` quiet cycles
    assert h.cycle == start + 25
    assert len(h.records()) == 10


def test_backpressure_stall_holds_records(harness: Harness) -> None:
    h = harness
    h.c2h_ready(0.0)
    h.push_frames(0, [bytes([i]) * 20 for i in range(5)])
    assert h.run(max_cycles=200) == 200  # C2H never drains, so run() stops at the limit
    assert len(h.records()) == 0
    h.c2h_ready(1.0)
    h.run()
    assert bodies(h.records())["index"].tolist() == [0, 1, 2, 3, 4]


# ---- order entry: H2C -> TX loopback, TX capture, OE RX ------------------------------------

REG_LINE_OE = 0x40  # + 0 chunks, + 4 bytes, + 8 tuser (always 0), + 0xC malformed beats
REG_CONTROL, REG_H2C_RECORDS, REG_H2C_NOLAST = 0x60, 0x64, 0x68
REG_TX_BEATS, REG_TX_PACKETS, REG_H2C_LAST_CYCLE, REG_TX_LAST_CYCLE = 0x6C, 0x70, 0x74, 0x78
H2C_DEPTH = 4  # the stand-in's H2C FIFO


def h2c_record(rng: np.random.Generator, length: int | None = None) -> bytes:
    """A random record; byte 0 & 63 is the payload length of its TX packet."""
    rec = bytearray(rng.integers(0, 256, 64, dtype=np.uint8).tobytes())
    if length is not None:
        rec[0] = (rec[0] & 0xC0) | length
    return bytes(rec)


def loop_packet(record: bytes, accepted: int) -> bytes:
    """The stand-in's TX packet for an H2C record accepted in cycle ``accepted``."""
    return accepted.to_bytes(8, "little") + record[:record[0] & 63]


def loop_model(records: list[bytes], not_before, t0: int, ready) -> tuple[list, list]:
    """Cycle model of the harness's H2C driver and the stand-in's H2C -> TX loop, idle at
    ``t0``: ``ready(n)`` is TX tready in cycle n. Returns the H2C accept cycles and the TX
    beats (cycle, tdata, tkeep, tlast) until everything is out."""
    fifo: deque[bytes] = deque()
    accepts: list[int] = []
    beats: list[tuple[int, int, int, int]] = []
    busy, entry, pos, lastpos, length = False, b"", 0, 0, 0
    n = t0
    while len(accepts) < len(records) or fifo or busy:
        head = len(accepts)
        h2c_valid = head < len(records) and n >= not_before[head]
        h2c_ready = len(fifo) != H2C_DEPTH
        tx_ready = bool(ready(n))
        last = busy and pos == lastpos
        fire = busy and tx_ready
        if fire:
            keep = (1 << (length - 8 * pos)) - 1 if last else 0xFF
            word = int.from_bytes(entry[8 * pos:8 * pos + 8], "little")
            beats.append((n, word, keep, int(last)))
        if (not busy or (fire and last)) and fifo:
            entry = fifo.popleft()
            length = 8 + (entry[8] & 63)
            busy, pos, lastpos = True, 0, (length - 1) // 8
        elif fire:
            if last:
                busy = False
            else:
                pos += 1
        if h2c_valid and h2c_ready:
            fifo.append(n.to_bytes(8, "little") + records[head])  # the whole 72-byte entry
            accepts.append(n)
        n += 1
        assert n < t0 + 100_000, "model did not finish"
    return accepts, beats


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_tx_capture_exact_under_backpressure(harness: Harness, seed: int) -> None:
    """Every H2C handshake and TX beat in the cycle a model of the loop predicts."""
    h = harness
    rng = np.random.default_rng(seed)
    h.step(int(rng.integers(0, 50)))
    pattern = rng.random(int(rng.integers(3, 17))) < 0.6
    pattern[0] = True
    h.tx_ready(pattern)
    t0 = h.cycle
    n = 120
    records = [h2c_record(rng, int(rng.integers(0, 64))) for _ in range(n)]
    not_before = np.where(rng.random(n) < 0.3, t0 + np.sort(rng.integers(0, 3000, n)), 0)
    assert h.push_h2c(records, not_before=not_before) == range(n)
    h.run()
    accepts, model_beats = loop_model(records, not_before, t0,
                                      lambda c: pattern[(c - t0) % len(pattern)])

    assert h.h2c_stats() == H2cStats(n, n, 0)
    assert h.h2c_accept_cycles().tolist() == accepts
    beats = h.tx_beats()
    assert beats.dtype == TX_BEAT_DTYPE
    got = list(zip(*(beats[f].tolist() for f in ("cycle", "tdata", "tkeep", "tlast")),
                   strict=True))
    assert got == model_beats
    assert pattern[(beats["cycle"] - t0) % len(pattern)].all(), "accepted while not ready"

    packets, rest = reassemble_tx(beats)
    assert len(rest) == 0
    assert packets.payloads() == [loop_packet(r, a) for r, a in zip(records, accepts, strict=True)]
    assert (packets.first_cycles > np.array(accepts) + 1).all()
    ends = np.flatnonzero(beats["tlast"])
    np.testing.assert_array_equal(packets.last_cycles, beats["cycle"][ends])
    np.testing.assert_array_equal(packets.first_cycles,
                                  beats["cycle"][np.concatenate(([0], ends[:-1] + 1))])
    # The core's own counters: the harness saw every handshake it did, in the same cycles.
    assert h.axil_read(REG_H2C_RECORDS) == n
    assert h.axil_read(REG_H2C_NOLAST) == 0  # tlast on every H2C beat
    assert h.axil_read(REG_H2C_LAST_CYCLE) == accepts[-1]
    assert h.axil_read(REG_TX_BEATS) == len(beats)
    assert h.axil_read(REG_TX_PACKETS) == n
    assert h.axil_read(REG_TX_LAST_CYCLE) == int(beats["cycle"][-1])
    assert len(h.tx_beats()) == 0


def test_tx_packets_across_calls(harness: Harness) -> None:
    """tx_packets() keeps a packet's first beats until its tlast beat is captured."""
    h = harness
    rng = np.random.default_rng(21)
    h.tx_ready(0.4, seed=9)
    records = [h2c_record(rng, int(rng.integers(0, 64))) for _ in range(60)]
    h.push_h2c(records)
    got: list[bytes] = []
    first: list[int] = []
    last: list[int] = []
    partial_seen = False
    for _ in range(10_000):
        if len(got) == len(records):
            break
        h.step(int(rng.integers(1, 40)))
        packets = h.tx_packets()
        partial_seen |= len(h._tx_partial) > 0  # a packet was split between two calls
        got += packets.payloads()
        first += packets.first_cycles.tolist()
        last += packets.last_cycles.tolist()
    assert partial_seen
    accepts = h.h2c_accept_cycles()
    assert got == [loop_packet(r, int(a)) for r, a in zip(records, accepts, strict=True)]
    assert (np.array(first) <= np.array(last)).all() and (np.diff(first) > 0).all()
    assert h.axil_read(REG_TX_PACKETS) == len(records)
    assert len(h.tx_packets()) == 0

    # tx_beats() hands back the beats tx_packets() held: nothing is lost when mixing them.
    h.tx_ready(1.0)
    extra = h2c_record(rng, 40)  # a 48-byte packet: 6 beats
    start = h.cycle
    h.push_h2c([extra])
    h.step(4)  # accepted in `start`, beats from start + 2: two of them so far
    assert len(h.tx_packets()) == 0
    h.run()
    beats_ = h.tx_beats()
    assert beats_["cycle"].tolist() == list(range(start + 2, start + 8))
    assert reassemble_tx(beats_)[0].payloads() == [loop_packet(extra, start)]


def test_run_stops_on_events(harness: Harness) -> None:
    """run(stop=True) ends right after each chosen event's cycle and nowhere else: each TX
    packet's last beat, each record of a chosen kind; other kinds and stop=False run on."""
    h = harness
    rng = np.random.default_rng(5)
    records = [h2c_record(rng, int(rng.integers(1, 64))) for _ in range(12)]
    h.stop_on(tx_packet=True)
    h.push_h2c(records, not_before=np.arange(12) * 50)
    stops: list[int] = []
    while True:
        h.run(stop=True)
        if not h.stopped:
            break
        stops.append(h.cycle - 1)            # the cycle that ran last
        assert len(h.tx_packets()) == 1       # exactly one packet completed, in that cycle
    assert len(h.tx_beats()) == 0             # nothing left over
    assert len(stops) == len(records) == h.axil_read(REG_TX_PACKETS)
    assert stops[-1] == h.axil_read(REG_TX_LAST_CYCLE)
    h.reset()
    # The same traffic, replayed: the stops are the last beats' cycles, exactly.
    h.stop_on(tx_packet=True)
    h.push_h2c(records, not_before=np.arange(12) * 50)
    h.run()
    packets = h.tx_packets()
    assert stops == packets.last_cycles.tolist()

    # Records: the stand-in sends one record of KIND per RX frame.
    h.reset()
    h.stop_on(record_kinds=[KIND])
    h.push_frames(0, [bytes(40)] * 5, not_before=np.arange(5) * 100)
    seen: list[int] = []
    while True:
        h.run(stop=True)
        if not h.stopped:
            break
        recs, cycles = h.records_with_cycles()
        assert len(recs) == 1 and int(cycles[0]) == h.cycle - 1
        seen.append(int(cycles[0]))
    assert len(seen) == 5
    h.stop_on(record_kinds=[KIND ^ 1])      # another kind: no stop
    h.push_frames(0, [bytes(40)] * 3)
    h.run(stop=True)
    assert not h.stopped and len(h.records()) == 3
    h.stop_on(record_kinds=[KIND])
    h.push_frames(0, [bytes(40)] * 3)
    h.run()                                  # stop=False: the events are not reported...
    assert not h.stopped and len(h.records()) == 3
    h.run(stop=True)                         # ...but one seen then ends the next stop run
    assert h.stopped
    h.stop_on(record_kinds=[KIND])          # stop_on forgets it
    assert h.run(stop=True, drain=5) == 5 and not h.stopped
    with pytest.raises(ValueError, match="kind"):
        h.stop_on(record_kinds=[256])


def test_h2c_held_until_ready(harness: Harness) -> None:
    """A record waits, unchanged, while tready is low; order is kept and nothing is lost."""
    h = harness
    rng = np.random.default_rng(31)
    records = [h2c_record(rng, 63) for _ in range(10)]
    h.axil_write(REG_CONTROL, 1)  # block: s_axis_h2c_tready low
    t0 = h.cycle
    h.push_h2c(records)
    h.step(50)
    assert h.h2c_stats() == H2cStats(10, 0, 10)
    assert h.peek("s_axis_h2c_tvalid") == 1 and h.peek("s_axis_h2c_tlast") == 1
    assert h.peek("s_axis_h2c_tdata") == int.from_bytes(records[0], "little")  # byte 0 = [7:0]
    assert h.peek("s_axis_h2c_tready") == 0
    assert (h.h2c_accept_cycles() == -1).all()
    # The write is registered at the end of its second cycle: tready is high from the third,
    # the cycle of its B handshake.
    c = h.cycle
    h.axil_write(REG_CONTROL, 0)
    assert h.cycle == c + 3
    accepts = h.h2c_accept_cycles()
    assert accepts[0] == c + 2 and (accepts[1:] == -1).all()

    # TX never ready: the FIFO fills and tready falls again, with a record presented.
    h.tx_ready(0.0)
    h.step(100)
    # One record in the serializer, H2C_DEPTH in the FIFO, the next one held on the bus.
    accepts = h.h2c_accept_cycles()
    assert (accepts[:1 + H2C_DEPTH] >= 0).all() and (accepts[1 + H2C_DEPTH:] == -1).all()
    assert accepts[:1 + H2C_DEPTH].tolist() == list(range(c + 2, c + 3 + H2C_DEPTH))
    assert h.peek("s_axis_h2c_tready") == 0 and h.peek("s_axis_h2c_tvalid") == 1
    assert h.peek("s_axis_h2c_tdata") == int.from_bytes(records[1 + H2C_DEPTH], "little")
    assert h.peek("m_axis_tx_tvalid") == 1
    assert len(h.tx_beats()) == 0
    assert h.run(max_cycles=300) == 300  # run() does not end while TX is held
    h.tx_ready(1.0)
    h.run()
    assert h.h2c_stats() == H2cStats(10, 10, 0)
    accepts = h.h2c_accept_cycles()
    assert (np.diff(accepts) > 0).all() and accepts[0] > t0
    assert h.tx_packets().payloads() == [loop_packet(r, int(a))
                                      for r, a in zip(records, accepts, strict=True)]


def test_h2c_not_before_exact(harness: Harness) -> None:
    h = harness
    rng = np.random.default_rng(41)
    h.step(7)
    t0 = h.cycle
    # Empty payloads: one-beat packets, so the FIFO never fills and tready stays high.
    records = [h2c_record(rng, 0) for _ in range(8)]
    not_before = [0, 0, t0 + 10, t0 + 10, t0 + 5, t0 + 30, t0 + 31, t0 + 40]
    h.push_h2c(records, not_before=not_before)
    h.run()
    # Back to back from t0; then not before t0 + 10; right after; t0 + 5 is already past.
    expected = [t0, t0 + 1, t0 + 10, t0 + 11, t0 + 12, t0 + 30, t0 + 31, t0 + 40]
    assert h.h2c_accept_cycles().tolist() == expected
    packets = h.tx_packets()
    assert packets.lengths.tolist() == [8] * 8
    assert packets.first_cycles.tolist() == [a + 2 for a in expected]
    assert packets.last_cycles.tolist() == [a + 2 for a in expected]
    assert [int.from_bytes(p, "little") for p in packets.payloads()] == expected
    # One int for all, pushed late: presented at once.
    h.step(5)
    t1 = h.cycle
    h.push_h2c(b"".join(records[:2]), not_before=t1 + 3)
    h.run()
    assert h.h2c_accept_cycles(start=8).tolist() == [t1 + 3, t1 + 4]


@pytest.mark.parametrize("seed", [51, 52])
def test_oe_rx_packing_and_timing(harness: Harness, seed: int) -> None:
    """OE RX chunks: 8-byte beats, tkeep on the last, tlast per chunk, exact cycles."""
    h = harness
    rng = np.random.default_rng(seed)
    h.step(int(rng.integers(0, 20)))
    t0 = h.cycle
    n = 200
    chunks = random_frames(rng, n)
    chunks[:4] = [b"\x01", bytes(range(8)), bytes(range(9)), bytes(range(16))]
    idle = np.where(rng.random(n) < 0.3, rng.integers(1, 4, n), 0)
    span = 2 * sum(beats(len(c)) for c in chunks)
    not_before = np.where(rng.random(n) < 0.3, t0 + rng.integers(0, span, n), 0)
    batch = chunks if seed % 2 else FrameBuffer.from_frames(chunks)
    assert h.push_oe_rx(batch, not_before=not_before, idle=idle) == range(n)
    starts, ends = schedule([len(c) for c in chunks], not_before, idle, t0)
    h.run()
    records = h.records()
    body = bodies(records)
    assert h.axil_read(REG_DROPPED) == 0
    assert (records["line"] == 2).all() and (records["kind"] == KIND).all()
    assert body["index"].tolist() == list(range(n))
    assert body["length"].tolist() == [len(c) for c in chunks]
    assert body["beats"].tolist() == [beats(len(c)) for c in chunks]
    assert body["checksum"].tolist() == [checksum(c) for c in chunks]
    assert body["start"].tolist() == starts
    assert records["timestamp"].tolist() == ends
    assert (records["aux"] == 0).all()
    np.testing.assert_array_equal(h.oe_rx_start_cycles(), starts)
    np.testing.assert_array_equal(h.oe_rx_start_cycles(start=n - 2), starts[-2:])
    total = sum(len(c) for c in chunks)
    assert h.oe_rx_stats() == LineStats(n, n, sum(beats(len(c)) for c in chunks), total, 0)
    assert [h.axil_read(REG_LINE_OE + k) for k in (0, 4, 8, 12)] == [n, total, 0, 0]
    # One bytes object is one chunk.
    t1 = h.cycle
    assert h.push_oe_rx(b"\xAB" * 11, not_before=t1 + 4) == range(n, n + 1)
    h.run()
    r = h.records()
    assert (int(bodies(r)["start"][0]), int(r["timestamp"][0])) == (t1 + 4, t1 + 5)
    assert bodies(r)["checksum"].tolist() == [checksum(b"\xAB" * 11)]


def test_all_streams_together(harness: Harness) -> None:
    """RX A/B, OE RX and H2C -> TX at once, with C2H and TX backpressure."""
    h = harness
    rng = np.random.default_rng(61)
    h.c2h_ready(0.7, seed=3)
    h.tx_ready(0.5, seed=4)
    n = 100
    frames = [random_frames(rng, n) for _ in range(3)]
    h.push_frames(0, frames[0])
    h.push_frames(1, frames[1], idle=2)
    h.push_oe_rx(frames[2], idle=1)
    records = [h2c_record(rng) for _ in range(n)]
    h.push_h2c(records)
    h.run()
    got = h.records()
    assert h.axil_read(REG_GENERATED) == 3 * n
    assert len(got) + h.axil_read(REG_DROPPED) == 3 * n
    for r, b in zip(got, bodies(got), strict=True):
        frame = frames[int(r["line"])][int(b["index"])]
        assert (b["length"], b["checksum"]) == (len(frame), checksum(frame))
    accepts = h.h2c_accept_cycles()
    assert h.tx_packets().payloads() == [loop_packet(r, int(a))
                                      for r, a in zip(records, accepts, strict=True)]
    assert [h.line_stats(0).frames_pending, h.line_stats(1).frames_pending,
            h.oe_rx_stats().frames_pending, h.h2c_stats().pending] == [0, 0, 0, 0]


def test_reassemble_tx() -> None:
    def beat_array(rows):
        a = np.zeros(len(rows), dtype=TX_BEAT_DTYPE)
        for i, (cycle, data, keep, last) in enumerate(rows):
            a[i] = (cycle, int.from_bytes(data.ljust(8, b"\xEE"), "little"), keep, last)
        return a

    beats_ = beat_array([
        (3, b"ABCDEFGH", 0xFF, 0), (5, b"IJ", 0x03, 1),   # "ABCDEFGHIJ"
        (6, b"", 0x00, 0), (7, b"K", 0x01, 0), (9, b"", 0x00, 1),   # empty beats around "K"
        (10, b"LMNOPQRS", 0xFF, 1),                          # one full beat
        (12, b"xyz", 0x07, 0),                               # unfinished
    ])
    packets, rest = reassemble_tx(beats_)
    assert packets.payloads() == [b"ABCDEFGHIJ", b"K", b"LMNOPQRS"]
    assert packets.first_cycles.tolist() == [3, 7, 10]
    assert packets.last_cycles.tolist() == [5, 7, 10]
    assert packets.lengths.tolist() == [10, 1, 8] and packets.offsets.tolist() == [0, 10, 11]
    assert bytes(packets.buffer.data) == b"ABCDEFGHIJKLMNOPQRS" and packets[1] == (7, 7, b"K")
    assert rest["cycle"].tolist() == [12]
    more = np.concatenate((rest, beat_array([(13, b"!", 0x01, 1)])))
    assert reassemble_tx(more)[0].payloads() == [b"xyz!"]
    empty, rest = reassemble_tx(np.zeros(0, dtype=TX_BEAT_DTYPE))
    assert len(empty) == 0 and len(rest) == 0
    with pytest.raises(ValueError):
        reassemble_tx(np.zeros(3, dtype=np.int64))


def test_oe_h2c_tx_validation(harness: Harness) -> None:
    h = harness
    with pytest.raises(ValueError):
        h.push_h2c([bytes(64), bytes(63)])
    with pytest.raises(ValueError):
        h.push_h2c(bytes(65))
    with pytest.raises(ValueError):
        h.push_h2c(np.zeros((2, 16), dtype=np.uint32))  # 4-byte items
    with pytest.raises(ValueError):
        h.push_h2c([bytes(64)] * 2, not_before=[1, 2, 3])
    assert h.push_h2c(np.zeros((3, 64), dtype=np.uint8)) == range(3)
    assert h.push_h2c(np.zeros(2, dtype=numpy_dtype())) == range(3, 5)
    assert h.push_h2c([]) == range(5, 5)
    with pytest.raises(ValueError):
        h.push_oe_rx([b"ok", b""])
    with pytest.raises(ValueError):
        h.push_oe_rx([b"x"], idle=-1)
    with pytest.raises(ValueError):
        h.tx_ready(1.5)
    with pytest.raises(ValueError):
        h.tx_ready([])
    with pytest.raises(ValueError):
        h.poke("m_axis_tx_tready", 1)  # the harness drives it
    with pytest.raises(ValueError):
        h.push_frames(2, [b"x"])  # the OE RX stream is not a network line
    assert h.oe_rx_stats().frames_pushed == 0


def test_sim_card_order_entry() -> None:
    """SimCard's order-entry calls, on the stand-in."""
    from host.backends.sim import SimCard
    card = SimCard(verilog=STANDIN)
    try:
        rng = np.random.default_rng(71)
        records = [h2c_record(rng) for _ in range(5)]
        t0 = card.cycle
        assert card.send_h2c(records, t0 + 10) == range(5)
        assert card.send_oe_rx(b"\x00\x05Shello") == range(1)
        card.tx_ready([1, 0])
        card.run()
        accepts = card.h2c_accept_cycles()
        assert accepts.tolist() == list(range(t0 + 10, t0 + 15))
        packets = card.tx_packets()
        assert packets.payloads() == [loop_packet(r, int(a))
                                    for r, a in zip(records, accepts, strict=True)]
        assert (packets.first_cycles >= accepts + 2).all()
        # Iterated, a packet is (first-byte cycle, last-byte cycle, bytes).
        assert [(first, last) for first, last, _ in packets] == list(
            zip(packets.first_cycles.tolist(), packets.last_cycles.tolist(), strict=True))
        assert [p.data for p in packets] == packets.payloads() and bool(packets)
        assert len(card.tx_beats()) == 0 and not card.tx_packets()
        assert card.oe_rx_start_cycles().tolist() == [t0]
        (record,) = card.records()
        assert (record["line"], bodies(record[None])["length"][0]) == (2, 8)
    finally:
        card.harness.close()

def test_axil_scratch_strobes_and_errors(harness: Harness) -> None:
    h = harness
    rng = np.random.default_rng(7)
    assert h.axil_read(REG_ID) == STANDIN_ID
    expected = 0
    for w_delay in (-4, -1, 0, 0, 1, 3):
        value, strb = int(rng.integers(0, 1 << 32)), int(rng.integers(1, 16))
        h.axil_write(REG_SCRATCH, value, strb, w_delay=w_delay)
        mask = sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1)
        expected = (expected & ~mask) | (value & mask)
        assert h.axil_read(REG_SCRATCH) == expected, (w_delay, strb)
    with pytest.raises(AxiLiteError) as info:
        h.axil_read(0x0100)
    assert info.value.resp == 2
    with pytest.raises(AxiLiteError):
        h.axil_write(REG_ID, 1)  # read-only
    assert h.axil_read(REG_SCRATCH) == expected


def test_reset_clears_everything(harness: Harness) -> None:
    h = harness
    h.push_frames(0, [bytes(64)] * 3)
    h.push_frames(1, [bytes(64)] * 50)
    h.push_oe_rx([bytes(64)] * 50)
    h.push_h2c([bytes([63]) + bytes(63)] * 20)
    h.tx_ready([1, 0, 0])
    h.step(20)
    h.tx_packets()  # leaves a partial packet behind
    assert h.peek("s_axis_h2c_tvalid") == 1 and h.peek("m_axis_tx_tvalid") == 1
    h.reset(4)
    assert h.cycle == 0
    assert h.line_stats(1).frames_pushed == 0
    assert len(h.frame_start_cycles(1)) == 0
    assert h.oe_rx_stats().frames_pushed == 0 and len(h.oe_rx_start_cycles()) == 0
    assert h.h2c_stats() == H2cStats(0, 0, 0) and len(h.h2c_accept_cycles()) == 0
    assert h.peek("s_axis_h2c_tvalid") == 0 and h.peek("s_axis_oe_rx_tvalid") == 0
    assert len(h.records()) == 0
    assert len(h.tx_beats()) == 0
    assert h.axil_read(REG_LINE[1]) == 0
    assert h.axil_read(REG_LINE_OE) == 0 and h.axil_read(REG_TX_BEATS) == 0
    h.push_frames(1, [bytes(9)])
    t = h.cycle
    h.push_h2c([bytes(64)])
    h.run()
    assert bodies(h.records())["index"].tolist() == [0]
    assert h.h2c_accept_cycles().tolist() == [t]
    # The TX ready pattern restarted with the reset: [1, 0, 0] from cycle 0. The packet's one
    # beat is presented in t + 2 and accepted in the next cycle that is a multiple of 3.
    assert h.tx_beats()["cycle"].tolist() == [-(-(t + 2) // 3) * 3]


def test_extra_ports_tie_peek_poke() -> None:
    value = (0x2A << 64) | 0xDEADBEEF_01234567
    with Harness(STANDIN, TOP, tie={"standin_aux_in": value}) as h:
        assert h.ports["standin_aux_in"].width == 70
        assert h.axil_read(REG_AUX) == 0x01234567
        assert h.peek("standin_aux_out") == ~value & ((1 << 70) - 1)
        h.poke("standin_aux_in", 5)
        h.reset()
        h.step()
        assert h.peek("standin_aux_out") == ~5 & ((1 << 70) - 1)
        with pytest.raises(ValueError):
            h.poke("s_axis_rx_a_tvalid", 1)  # the harness drives it
        with pytest.raises(ValueError):
            h.poke("standin_aux_in", 1 << 70)
        with pytest.raises(KeyError):
            h.peek("no_such_port")


def test_push_validation(harness: Harness) -> None:
    h = harness
    with pytest.raises(ValueError):
        h.push_frames(2, [b"x"])
    with pytest.raises(ValueError):
        h.push_frames(0, [b"x", b""])
    with pytest.raises(ValueError):
        h.push_frames(0, FrameBuffer(bytes(10), [0, 5], [5, 6]))
    with pytest.raises(ValueError):
        h.push_frames(0, [b"x", b"y"], not_before=[1])
    with pytest.raises(ValueError):
        h.push_frames(0, [b"x"], idle=-1)
    assert h.line_stats(0).frames_pushed == 0


def test_two_harnesses_are_independent() -> None:
    with Harness(STANDIN, TOP) as h1, Harness(STANDIN, TOP) as h2:
        h1.push_frames(0, [bytes(10)] * 4)
        h2.push_frames(1, (bytes(range(60)), np.array([0, 30]), np.array([30, 30])))
        for _ in range(5):
            h1.step(7)
            h2.step(3)
        h1.run()
        h2.run()
        b1, b2 = bodies(h1.records()), bodies(h2.records())
        assert b1["length"].tolist() == [10] * 4
        assert b2["length"].tolist() == [30] * 2


def test_rebuild_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lib = harness_build.build_library(STANDIN, TOP)
    mtime = lib.stat().st_mtime_ns

    def no_build(*args: object) -> None:
        raise AssertionError("the harness was rebuilt")

    monkeypatch.setattr(harness_build, "_build", no_build)
    with Harness(STANDIN, TOP) as h:
        assert h.library == lib
    assert lib.stat().st_mtime_ns == mtime
    # The key follows the Verilog's content, not its path.
    copy = tmp_path / "copy.v"
    copy.write_bytes(STANDIN.read_bytes())
    key = harness_build.library_key([STANDIN], TOP, False, True)
    assert harness_build.library_key([copy], TOP, False, True) == key
    copy.write_bytes(STANDIN.read_bytes() + b"// changed\n")
    assert harness_build.library_key([copy], TOP, False, True) != key
    assert harness_build.library_key([STANDIN], TOP, True, False) != key
    assert harness_build.library_key([STANDIN], TOP, False, False) != key


def test_trace_written(tmp_path: Path) -> None:
    path = tmp_path / "wave.fst"
    with Harness(STANDIN, TOP, trace=path) as h:
        assert not h.registered_inputs  # a trace shows the inputs where the design sees them
        h.push_frames(0, [bytes(range(40))])
        h.run()
        assert len(h.records()) == 1
    data = path.read_bytes()
    assert len(data) > 200 and data[0] == 0  # an FST file opens with its header block (0)


def scripted_session(h: Harness, seed: int) -> list:
    """Everything observable from a session that mixes every call that runs cycles."""
    rng = np.random.default_rng(seed)
    seen: list = []
    h.c2h_ready(0.6, seed=seed)
    h.tx_ready(0.5, seed=seed + 1)
    for _ in range(6):
        for line in (0, 1):
            n = int(rng.integers(1, 30))
            h.push_frames(line, random_frames(rng, n),
                          not_before=h.cycle + rng.integers(0, 60, n),
                          idle=rng.integers(0, 3, n), error=rng.random(n) < 0.2)
        n = int(rng.integers(1, 20))
        h.push_oe_rx(random_frames(rng, n), not_before=h.cycle + rng.integers(0, 60, n),
                     idle=rng.integers(0, 2, n))
        n = int(rng.integers(1, 12))
        h.push_h2c([h2c_record(rng) for _ in range(n)],
                   not_before=h.cycle + rng.integers(0, 80, n))
        h.poke("standin_aux_in", int(rng.integers(0, 1 << 62)))
        h.step(int(rng.integers(0, 40)))
        seen.append((h.cycle, h.peek("standin_aux_out"), h.peek("m_axis_c2h_tvalid"),
                     h.peek("m_axis_c2h_tdata"), h.peek("m_axis_tx_tvalid"),
                     h.peek("m_axis_tx_tdata"), h.peek("s_axis_h2c_tready")))
        seen.append(list(h.tx_packets()))
        h.axil_write(REG_SCRATCH, int(rng.integers(0, 1 << 32)), w_delay=int(rng.integers(-2, 3)))
        seen.append((h.axil_read(REG_AUX), h.axil_read(REG_CYCLE_LO), h.axil_read(REG_SCRATCH)))
        seen.append(h.run(max_cycles=int(rng.integers(50, 400))))
    seen.append(h.run())
    records, cycles = h.records_with_cycles()
    seen += [records.tobytes(), cycles.tolist(), h.tx_beats().tobytes()]
    for line in (0, 1):
        seen += [h.frame_start_cycles(line).tolist(), h.line_stats(line)]
    seen += [h.oe_rx_start_cycles().tolist(), h.oe_rx_stats(), h.h2c_accept_cycles().tolist(),
             h.h2c_stats()]
    seen.append([h.axil_read(a) for a in (REG_GENERATED, REG_DROPPED, *REG_LINE)])
    return seen


def test_registered_inputs_match_plain_build() -> None:
    """One evaluation per cycle (the default) changes nothing observable, between calls too."""
    with (Harness(STANDIN, TOP) as registered,
          Harness(STANDIN, TOP, registered_inputs=False) as plain):
        assert registered.registered_inputs and not plain.registered_inputs
        assert registered.library != plain.library
        for seed in (1, 2):
            assert scripted_session(registered, seed) == scripted_session(plain, seed), seed


# Outputs that are functions of the same cycle's inputs (Mealy): AXI-Lite readies from the
# valids, a C2H record combinational from line A's last beat, stamped with a cycle count, TX
# a wire from OE RX (so every OE RX beat is captured on TX in the cycle it was presented) and
# H2C tready high with tvalid in odd cycles.
MEALY = """
module wirespeed_core (
    input clk, input rst,
    input [63:0] s_axis_rx_a_tdata, input [7:0] s_axis_rx_a_tkeep,
    input s_axis_rx_a_tvalid, input s_axis_rx_a_tlast, input s_axis_rx_a_tuser,
    input [63:0] s_axis_rx_b_tdata, input [7:0] s_axis_rx_b_tkeep,
    input s_axis_rx_b_tvalid, input s_axis_rx_b_tlast, input s_axis_rx_b_tuser,
    output [511:0] m_axis_c2h_tdata, output m_axis_c2h_tvalid, input m_axis_c2h_tready,
    output m_axis_c2h_tlast,
    input [15:0] s_axil_awaddr, input s_axil_awvalid, output s_axil_awready,
    input [31:0] s_axil_wdata, input [3:0] s_axil_wstrb, input s_axil_wvalid,
    output s_axil_wready, output [1:0] s_axil_bresp, output s_axil_bvalid, input s_axil_bready,
    input [15:0] s_axil_araddr, input s_axil_arvalid, output s_axil_arready,
    output [31:0] s_axil_rdata, output [1:0] s_axil_rresp, output s_axil_rvalid,
    input s_axil_rready,
    output [63:0] m_axis_tx_tdata, output [7:0] m_axis_tx_tkeep, output m_axis_tx_tlast,
    output m_axis_tx_tvalid, input m_axis_tx_tready,
    input [511:0] s_axis_h2c_tdata, input s_axis_h2c_tvalid, input s_axis_h2c_tlast,
    output s_axis_h2c_tready,
    input [63:0] s_axis_oe_rx_tdata, input [7:0] s_axis_oe_rx_tkeep, input s_axis_oe_rx_tlast,
    input s_axis_oe_rx_tvalid
);
    reg [31:0] count, scratch, rdata;
    reg bvalid, rvalid;
    assign s_axil_awready = s_axil_awvalid & s_axil_wvalid & ~bvalid;
    assign s_axil_wready = s_axil_awready;
    assign s_axil_arready = ~rvalid;
    always @(posedge clk) begin
        count <= rst ? 32'd0 : count + 32'd1;
        if (rst) begin
            bvalid <= 1'b0;
            rvalid <= 1'b0;
        end else begin
            if (s_axil_awready) begin
                scratch <= s_axil_wdata ^ {16'd0, s_axil_awaddr};
                bvalid <= 1'b1;
            end else if (s_axil_bready) bvalid <= 1'b0;
            if (s_axil_arvalid & s_axil_arready) begin
                rdata <= scratch ^ count ^ {16'd0, s_axil_araddr};
                rvalid <= 1'b1;
            end else if (s_axil_rready) rvalid <= 1'b0;
        end
    end
    assign s_axil_bvalid = bvalid;
    assign s_axil_rvalid = rvalid;
    assign s_axil_rdata = rdata;
    assign s_axil_bresp = 2'd0;
    assign s_axil_rresp = 2'd0;
    assign m_axis_c2h_tvalid = s_axis_rx_a_tvalid & s_axis_rx_a_tlast;
    assign m_axis_c2h_tdata = {s_axis_rx_b_tdata, s_axis_rx_b_tkeep, s_axis_rx_b_tvalid,
                               s_axis_rx_a_tuser, s_axis_rx_a_tkeep, s_axis_rx_a_tdata, count};
    assign m_axis_c2h_tlast = 1'b1;
    assign m_axis_tx_tdata = s_axis_oe_rx_tdata;
    assign m_axis_tx_tkeep = s_axis_oe_rx_tkeep;
    assign m_axis_tx_tlast = s_axis_oe_rx_tlast;
    assign m_axis_tx_tvalid = s_axis_oe_rx_tvalid;
    assign s_axis_h2c_tready = s_axis_h2c_tvalid & count[0];
endmodule
"""


def test_registered_inputs_mealy_outputs(tmp_path: Path) -> None:
    """Outputs combinational from inputs are sampled in the cycle of those inputs."""
    source = tmp_path / "mealy.v"
    source.write_text(MEALY)
    seen = []
    for registered in (True, False):
        rng = np.random.default_rng(5)
        with Harness(source, TOP, registered_inputs=registered) as h:
            assert h.registered_inputs == registered
            for line in (0, 1):
                n = 40
                h.push_frames(line, random_frames(rng, n), idle=rng.integers(0, 3, n),
                              error=rng.random(n) < 0.3)
            reads = []
            for w_delay in (-2, 0, 3):
                h.step(int(rng.integers(1, 30)))
                h.axil_write(0x40, int(rng.integers(0, 1 << 32)), w_delay=w_delay)
                reads.append((h.cycle, h.axil_read(0x44)))
            chunks = random_frames(rng, 30)
            idle = rng.integers(0, 3, 30)
            t0 = h.cycle
            h.push_oe_rx(chunks, idle=idle)
            h.push_h2c([bytes([i]) * 64 for i in range(10)])
            h.run()
            records, cycles = h.records_with_cycles()
            assert len(records) == 40  # one per line-A frame, in its last beat
            count = np.frombuffer(records.tobytes(), dtype="<u4").reshape(-1, 16)[:, 0]
            assert len(set((count - cycles).tolist())) == 1  # stamped in the cycle it left
            # TX is OE RX on a wire: captured in the cycles the harness presented the beats.
            beats = h.tx_beats()
            starts, ends = schedule([len(c) for c in chunks], [0] * 30, idle, t0)
            assert beats["cycle"].tolist() == [c for s_, e in zip(starts, ends, strict=True)
                                               for c in range(s_, e + 1)]
            packets, rest = reassemble_tx(beats)
            assert packets.payloads() == chunks and len(rest) == 0
            assert packets.first_cycles.tolist() == starts
            assert packets.last_cycles.tolist() == ends
            np.testing.assert_array_equal(h.oe_rx_start_cycles(), starts)
            # tready with tvalid in odd cycles (the count is the cycle number): every other.
            accepts = h.h2c_accept_cycles()
            first_odd = t0 | 1
            assert accepts.tolist() == list(range(first_odd, first_odd + 20, 2))
            seen.append((reads, records.tobytes(), cycles.tolist(), h.frame_start_cycles(1)
                         .tolist(), beats.tobytes(), accepts.tolist()))
    assert seen[0] == seen[1]


# Designs a registered-inputs wrapper would change: the inputs would reach these events or
# this use of clk as data half a cycle early (the outputs are sampled with clk high).
@pytest.mark.parametrize("body, reason", [
    ("always @(negedge clk) q <= a;", "events other than posedge clk"),
    ("always @(posedge clk or posedge rst) q <= rst ? 1'b0 : a;",
     "events other than posedge clk"),
    ("always @(posedge clk) q <= a; assign y = a & clk;", "uses clk as data"),
    ("always @(posedge clk) begin q <= a; if (a) $finish; end", "can stop itself"),
    ("always @(posedge clk) q <= a; assign y = a;", None),
])
def test_registered_inputs_blocker(tmp_path: Path, body: str, reason: str | None) -> None:
    source = tmp_path / "t.v"
    source.write_text("module t(input clk, input rst, input a, output reg q, output y);\n"
                      f"{body}\nendmodule\n")
    tc = harness_build.toolchain()
    subprocess.run([str(tc.verilator), *harness_build.VERILATOR_FLAGS, "--top-module", "t",
                    "--Mdir", str(tmp_path / "obj"), str(source)],
                   env=tc.env, check=True, capture_output=True)
    ports = harness_build.parse_ports((tmp_path / "obj" / "Vdut.h").read_text())
    blocker = harness_build.registered_inputs_blocker(tmp_path / "obj", ports)
    if reason is None:
        assert blocker is None
    else:
        assert blocker is not None and reason in blocker


def test_missing_ports_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.v"
    bad.write_text("module wirespeed_core(input clk, input rst, input [7:0] s_axil_wdata);\n"
                   "endmodule\n")
    with pytest.raises(HarnessBuildError) as info:
        Harness(bad, TOP, build_dir=tmp_path / "build")
    message = str(info.value)
    assert "s_axis_rx_a_tdata: missing" in message
    assert "s_axil_wdata: is in [7:0], expected in [31:0]" in message


# A core that breaks the rules on demand (input `mode`), to prove the checks fire.
MISBEHAVING = """
module wirespeed_core (
    input clk, input rst,
    input [63:0] s_axis_rx_a_tdata, input [7:0] s_axis_rx_a_tkeep,
    input s_axis_rx_a_tvalid, input s_axis_rx_a_tlast, input s_axis_rx_a_tuser,
    input [63:0] s_axis_rx_b_tdata, input [7:0] s_axis_rx_b_tkeep,
    input s_axis_rx_b_tvalid, input s_axis_rx_b_tlast, input s_axis_rx_b_tuser,
    output [511:0] m_axis_c2h_tdata, output m_axis_c2h_tvalid, input m_axis_c2h_tready,
    output m_axis_c2h_tlast,
    input [15:0] s_axil_awaddr, input s_axil_awvalid, output s_axil_awready,
    input [31:0] s_axil_wdata, input [3:0] s_axil_wstrb, input s_axil_wvalid,
    output s_axil_wready, output [1:0] s_axil_bresp, output s_axil_bvalid, input s_axil_bready,
    input [15:0] s_axil_araddr, input s_axil_arvalid, output s_axil_arready,
    output [31:0] s_axil_rdata, output [1:0] s_axil_rresp, output s_axil_rvalid,
    input s_axil_rready,
    output [63:0] m_axis_tx_tdata, output [7:0] m_axis_tx_tkeep, output m_axis_tx_tlast,
    output m_axis_tx_tvalid, input m_axis_tx_tready,
    input [511:0] s_axis_h2c_tdata, input s_axis_h2c_tvalid, input s_axis_h2c_tlast,
    output s_axis_h2c_tready,
    input [63:0] s_axis_oe_rx_tdata, input [7:0] s_axis_oe_rx_tkeep, input s_axis_oe_rx_tlast,
    input s_axis_oe_rx_tvalid,
    input [3:0] mode
);
    reg [31:0] count;
    always @(posedge clk) begin
        count <= rst ? 32'd0 : count + 32'd1;
        if (!rst && mode == 4'd5) $finish;
        if (!rst && mode == 4'd6) $fatal(1, "misbehaving core gave up");
    end
    assign m_axis_c2h_tvalid = mode == 4'd1 ? count[0] : (mode == 4'd2 || mode == 4'd3);
    assign m_axis_c2h_tdata = {480'd0, count};
    assign m_axis_c2h_tlast = mode != 4'd3;
    assign m_axis_tx_tvalid = mode == 4'd7 ? count[0] : (mode == 4'd8 || mode == 4'd9);
    assign m_axis_tx_tdata = {32'd0, count};
    assign m_axis_tx_tkeep = mode == 4'd9 ? 8'h05 : 8'hFF;
    assign m_axis_tx_tlast = 1'b1;
    assign s_axis_h2c_tready = 1'b0;
    assign s_axil_awready = 1'b1;
    assign s_axil_wready = 1'b1;
    assign s_axil_arready = 1'b1;
    assign s_axil_bvalid = mode == 4'd4;
    assign s_axil_bresp = 2'd0;
    assign s_axil_rvalid = 1'b0;
    assign s_axil_rdata = 32'd0;
    assign s_axil_rresp = 2'd0;
endmodule
"""


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("misbehaving") / "misbehaving.v"
    path.write_text(MISBEHAVING)
    return path


@pytest.mark.parametrize("mode, message", [
    (1, "c2h_tvalid fell"), (2, "c2h_tdata/tlast changed while a beat waited"),
    (3, "without tlast"), (4, "s_axil_bvalid without a write"),
    (7, "tx_tvalid fell"), (8, "tx_tdata/tkeep/tlast changed while a beat waited"),
    (9, "tx_tkeep not contiguous"),
])
def test_protocol_violations_detected(misbehaving: Path, mode: int, message: str) -> None:
    with Harness(misbehaving, TOP, tie={"mode": mode}) as h:
        h.c2h_ready(0.0 if mode in (1, 2) else 1.0)
        h.tx_ready(0.0 if mode in (7, 8) else 1.0)
        with pytest.raises(ProtocolError, match=message):
            h.step(4)


def test_axil_timeout(misbehaving: Path) -> None:
    with Harness(misbehaving, TOP) as h:
        start = h.cycle
        with pytest.raises(AxiLiteTimeout):
            h.axil_read(0, timeout=50)
        assert h.cycle == start + 50
        h.step(3)  # the abandoned transaction is deasserted, nothing else is reported


def test_finish_and_fatal_raise(misbehaving: Path) -> None:
    with Harness(misbehaving, TOP) as h:
        assert not h.registered_inputs  # it could stop one cycle late: built plain
        h.poke("mode", 5)
        with pytest.raises(SimulationError, match=r"\$finish"):
            h.step(10)
    with Harness(misbehaving, TOP) as h:
        h.poke("mode", 6)
        # Verilator reports $fatal as a $stop at its source line (its text goes to stdout).
        with pytest.raises(SimulationError, match=r"misbehaving\.v:\d+: Verilog \$stop"):
            h.run(max_cycles=10)
        with pytest.raises(SimulationError):  # the model is dead after a fatal
            h.step()

