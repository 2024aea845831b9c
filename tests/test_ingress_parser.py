"""LineParser against the reference model, in Amaranth's simulator.

Random good and malformed frames go in back to back (with random idle cycles between and inside
frames); every entry the parser pushes must equal the model's item (kind, end marker, verdict,
sequence number, bytes), arrive in the cycle the contract says (frame start + beat + 1, with
the consumer always ready), and every frame report must carry the model's reason. Squash bits
must rise exactly one cycle after the beat in which a frame becomes known bad.
"""

from __future__ import annotations

import os
import random

import pytest
from amaranth.sim import Simulator

from hw.ingress.layouts import MAX_MESSAGE
from hw.ingress.parser import LineParser
from hw.ingress.reasons import MAX_FRAME, DropReason
from sim.model.ingress import ItemKind, beat_of, frame_items, parse_frame
from tests.ingress_frames import FEED_IP, FEED_PORT, FILTERS, MUTATIONS, random_frame

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))


def _drive(frames, *, idle_prob: float, rng: random.Random, fifo_depth: int = 16):
    """Run the frames through a LineParser; return (entries with cycles, reports, squash log,
    frame start cycles, cycles at which each frame's tlast beat was presented)."""
    dut = LineParser(fifo_depth=fifo_depth)
    entries, reports, starts, squash_log = [], [], [], []

    async def bench(ctx):
        ctx.set(dut.filters[0].ip, FEED_IP)
        ctx.set(dut.filters[0].port, FEED_PORT)
        ctx.set(dut.filters[0].enable, 1)
        ctx.set(dut.entries.ready, 1)
        cycle = 0

        async def tick():
            nonlocal cycle
            if ctx.get(dut.entries.valid):
                entries.append((cycle, ctx.get(dut.entries.payload)))
            if ctx.get(dut.report.valid):
                r = dut.report
                reports.append((ctx.get(r.reason), ctx.get(r.dropped), ctx.get(r.good_packet),
                                ctx.get(r.nbytes)))
            squash_log.append(ctx.get(dut.squash))
            await ctx.tick()
            cycle += 1

        for data, mac_error in frames:
            nbeats = (len(data) + 7) // 8
            for b in range(nbeats):
                while rng.random() < idle_prob:
                    ctx.set(dut.rx.tvalid, 0)
                    await tick()
                chunk = data[8 * b:8 * b + 8]
                ctx.set(dut.rx.tdata, int.from_bytes(chunk.ljust(8, b"\0"), "little"))
                ctx.set(dut.rx.tkeep, (1 << len(chunk)) - 1)
                ctx.set(dut.rx.tlast, b == nbeats - 1)
                ctx.set(dut.rx.tuser, mac_error and b == nbeats - 1)
                ctx.set(dut.rx.tvalid, 1)
                if b == 0:
                    starts.append([cycle])
                else:
                    starts[-1].append(cycle)
                await tick()
        ctx.set(dut.rx.tvalid, 0)
        for _ in range(4):
            await tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return entries, reports, squash_log, starts


def _check(frames, entries, reports, squash_log, beat_cycles, seed):
    ctx = f"(seed {seed}; rerun with WIRESPEED_SEED={seed})"
    results = [parse_frame(d, e, FILTERS) for d, e in frames]
    assert len(reports) == len(frames), ctx
    for i, (res, rep) in enumerate(zip(results, reports, strict=True)):
        reason, dropped, good, nbytes = rep
        assert DropReason(reason) == res.reason, f"frame {i}: {frames[i][0].hex()} {ctx}"
        assert bool(dropped) == (res.reason is not DropReason.NONE), f"frame {i} {ctx}"
        assert bool(good) == res.good, f"frame {i} {ctx}"
        assert nbytes == min(len(frames[i][0]), MAX_FRAME + 1), f"frame {i} {ctx}"

    expected = []
    for i, res in enumerate(results):
        expected += [(i, item) for item in frame_items(res, i)]
    assert len(entries) == len(expected), f"{len(entries)} entries, model {len(expected)} {ctx}"
    tags = {}
    for (cycle, e), (i, item) in zip(entries, expected, strict=True):
        where = f"frame {i} beat {item.beat} {item.kind} {ctx}"
        assert cycle == beat_cycles[i][item.beat] + 1, f"late/early entry: {where}"
        assert e.item == (item.kind is not ItemKind.END), where
        assert e.header == (item.kind is ItemKind.HEADER), where
        assert e.end == item.end, where
        assert e.bad == item.bad, where
        if item.bad:
            assert DropReason(e.reason) == item.reason, where
        if item.kind is ItemKind.HEADER:
            h = item.payload
            assert (e.seq, e.count) == (h.seq, h.count), where
            assert (e.data & ((1 << 80) - 1)).to_bytes(10, "little") == h.session, where
        elif item.kind is ItemKind.MESSAGE:
            msg = item.payload
            assert e.seq == msg.seq and e.length == len(msg.data), where
            assert e.data.to_bytes(MAX_MESSAGE, "little") == msg.data.ljust(MAX_MESSAGE, b"\0"), \
                where
        tags.setdefault(i, e.tag)

    # Squash: the tag's bit rises in the cycle after the beat of the first late fault.
    for i, res in enumerate(results):
        if res.dropped_whole or res.cutoff is None:
            continue
        tag = tags[i]
        rise = beat_cycles[i][beat_of(res.cutoff)] + 1
        assert (squash_log[rise] >> tag) & 1, f"frame {i}: squash not set at {rise} {ctx}"
        # Before that it must be clear — once the frame owns its tag (from the cycle after its
        # header beat; in the header beat the bit still shows the tag's previous owner, a
        # frame 32 tags ago that cannot be in the FIFO any more).
        if beat_of(res.cutoff) > res.header.beat:
            assert not (squash_log[rise - 1] >> tag) & 1, f"frame {i}: squash early {ctx}"


@pytest.mark.parametrize("idle_prob", [0.0, 0.3])
def test_random_frames_against_model(idle_prob):
    rng = random.Random(SEED + int(idle_prob * 10))
    frames = []
    seq = 1
    for _ in range(220):
        data, mac_error, _spec, n = random_frame(rng, seq)
        frames.append((data, mac_error))
        seq += n
    entries, reports, squash_log, starts = _drive(frames, idle_prob=idle_prob, rng=rng)
    _check(frames, entries, reports, squash_log, starts, SEED)


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_each_mutation(mutation):
    """Every fault class on its own, so a regression names the class that broke."""
    rng = random.Random(SEED ^ hash(mutation) & 0xFFFF)
    frames = []
    for k in range(12):
        data, mac_error, _spec, _n = random_frame(rng, 100 + 10 * k, mutation=mutation)
        frames.append((data, mac_error))
    entries, reports, squash_log, starts = _drive(frames, idle_prob=0.0, rng=rng)
    _check(frames, entries, reports, squash_log, starts, SEED)


def test_oversize_frame():
    """An accepted frame that runs past MAX_FRAME is OVERSIZE: messages completing before
    byte 9216 left (and are invalidated downstream), nothing after it leaves, and the line
    goes on with the next frame."""
    from proto import itch
    from tests.ingress_frames import FrameSpec
    add = itch.encode("A", order_ref=1, side="B", shares=1, stock="AAPL", price=1)
    spec = FrameSpec(seq=1, messages=[add] * 100)      # 3,862 bytes of packet ...
    big = spec.build()
    big += bytes(MAX_FRAME + 200 - len(big))           # ... padded past the jumbo limit
    after = FrameSpec(seq=101, messages=[add] * 3).build()
    frames = [(big, False), (after, False)]
    entries, reports, squash_log, starts = _drive(frames, idle_prob=0.0,
                                                  rng=random.Random(SEED))
    _check(frames, entries, reports, squash_log, starts, SEED)
    assert [DropReason(r[0]) for r in reports] == [DropReason.OVERSIZE, DropReason.NONE]


def test_fifo_overflow_is_a_late_fault():
    """With the consumer stalled, the parser never overwrites: the frame that finds the FIFO
    full ends bad with OVERFLOW, and its end marker still fits."""
    from tests.ingress_frames import FrameSpec, random_message
    rng = random.Random(SEED)
    dut = LineParser(fifo_depth=4)
    frame = FrameSpec(seq=1, messages=[random_message(rng) for _ in range(8)]).build()
    got = []

    async def bench(ctx):
        ctx.set(dut.filters[0].ip, FEED_IP)
        ctx.set(dut.filters[0].port, FEED_PORT)
        ctx.set(dut.filters[0].enable, 1)
        ctx.set(dut.entries.ready, 0)
        nbeats = (len(frame) + 7) // 8
        for b in range(nbeats):
            chunk = frame[8 * b:8 * b + 8]
            ctx.set(dut.rx.tdata, int.from_bytes(chunk.ljust(8, b"\0"), "little"))
            ctx.set(dut.rx.tkeep, (1 << len(chunk)) - 1)
            ctx.set(dut.rx.tlast, b == nbeats - 1)
            ctx.set(dut.rx.tvalid, 1)
            await ctx.tick()
            if ctx.get(dut.report.valid):
                got.append(ctx.get(dut.report.reason))
        ctx.set(dut.rx.tvalid, 0)
        await ctx.tick()
        if ctx.get(dut.report.valid):
            got.append(ctx.get(dut.report.reason))
        ctx.set(dut.entries.ready, 1)
        entries = []
        for _ in range(8):
            if ctx.get(dut.entries.valid):
                entries.append(ctx.get(dut.entries.payload))
            await ctx.tick()
        assert got == [DropReason.OVERFLOW]
        assert len(entries) == 4                      # header, two messages, end marker
        assert entries[0].header and not entries[1].header
        assert entries[-1].end and entries[-1].bad
        assert DropReason(entries[-1].reason) == DropReason.OVERFLOW

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
