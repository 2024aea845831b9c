# amaranth: UnusedElaboratable=no
"""EventCollector (hw/eventq.py) against a cycle-accurate Python model of it.

The collector is where events are lost by design (a full source FIFO, a full C2H ring, an
undeclared kind), so the core-level tests, which only see the records that made it to the host,
cannot tell whether the loss was the right loss. Here a model of the source FIFOs
(``SyncFIFO``), the round-robin, the register after the pick and the C2H FIFO (``BlockFIFO``:
``SyncFIFOBuffered``'s timing) predicts every beat, every counter increment and so every lost
event; on top, checks that do not depend on the model: each record is an event that was
raised, once, in order per source, with holes in ``seq`` only for records the ring could not
take, and the counters add up.

``time`` is driven as what the collector requires it to be, a free-running cycle counter (from
a random start, so the source FIFOs' truncated timestamps wrap all the time), and the model
records the exact 64-bit time each event was raised: a timestamp rebuilt wrong is a record
that differs from the model's.
"""

from __future__ import annotations

import os
import random
from collections import deque
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.eventq import EventCollector
from hw.events import BODY_BYTES, EventKind, body_bits, decode, numpy_dtype

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
K = EventKind
ALL = (1 << 32) - 1
Decl = tuple[EventKind, ...]


@dataclass(frozen=True)
class Event:
    src: int
    eid: int        # raise order over all sources
    kind: int
    line: int
    aux: int        # unique per event: identifies the record
    body: int
    time: int


class Model:
    """The collector cycle by cycle, as the DUT is built (see hw/eventq.py)."""

    def __init__(self, kinds: list[Decl], depth: int, source_depth: int):
        self.kinds = [{int(k) for k in ks} for ks in kinds]
        self.width = [body_bits(*ks) for ks in kinds]
        self.n, self.depth, self.source_depth = len(kinds), depth, source_depth
        self.fifos: list[deque[Event]] = [deque() for _ in kinds]
        self.last = 0                   # last source served
        self.stage: tuple | None = None     # the pick's register: written the next cycle
        self.ram: deque[tuple] = deque()    # C2H FIFO: depth - 1 entries of RAM ...
        self.out: tuple | None = None       # ... behind the output register
        self.seq = 0
        self.lost_at_source = 0
        self.ring_lost: list[int] = []      # seq numbers the full ring dropped
        self.picks: list[int] = []          # sources served, in order
        self.max_wait = 0                   # longest an event stayed in its source FIFO

    def record(self, seq: int, ev: Event) -> tuple:
        body = ev.body & ((1 << self.width[ev.src]) - 1)
        return seq, ev.kind, ev.line, ev.aux, ev.time, body.to_bytes(BODY_BYTES, "little")

    def step(self, events: list[Event | None], mask: int, tready: int,
             time: int) -> tuple[int, int, int]:
        """One clock cycle at ``time``; returns (inc_events, inc_events_lost,
        inc_events_undeclared)."""
        raised = lost = undeclared = 0
        writes = []
        for i, ev in enumerate(events):
            # An undeclared kind is a wiring bug: counted whatever the mask says.
            if ev is None or (not mask >> ev.kind & 1 and ev.kind in self.kinds[i]):
                continue
            raised += 1
            if ev.kind not in self.kinds[i]:
                undeclared += 1
                lost += 1
            elif len(self.fifos[i]) == self.source_depth:    # SyncFIFO: w_rdy low when full
                lost += 1
                self.lost_at_source += 1
            else:
                writes.append((i, ev))
        order = [(self.last + 1 + k) % self.n for k in range(self.n)]
        pick = next((i for i in order if self.fifos[i]), None)
        ram_rdy = len(self.ram) < self.depth - 1
        if self.ram and (self.out is None or tready):
            self.out = self.ram.popleft()
        elif tready:
            self.out = None
        if self.stage is not None:          # last cycle's pick reaches the C2H FIFO
            if ram_rdy:
                self.ram.append(self.stage)
            else:
                lost += 1
                self.ring_lost.append(self.stage[0])
            self.stage = None
        if pick is not None:
            ev = self.fifos[pick].popleft()
            self.max_wait = max(self.max_wait, (time - ev.time) % (1 << 64))
            self.stage = self.record(self.seq, ev)
            self.seq += 1
            self.last = pick
            self.picks.append(pick)
        for i, ev in writes:
            self.fifos[i].append(ev)
        return raised, lost, undeclared

    def empty(self) -> bool:
        return (self.out is None and self.stage is None and not self.ram
                and not any(self.fifos))


class Script:
    """Stimulus, cycle by cycle: events per source, mask and tready. The ``time`` input counts
    cycles from ``start`` (random if not given), modulo 2**64, as the core's does."""

    def __init__(self, kinds: list[Decl], rng: random.Random, start: int | None = None):
        self.kinds, self.rng = kinds, rng
        self.start = rng.getrandbits(64) if start is None else start
        self.cycles: list[tuple[list[Event | None], int, int, int]] = []
        self.events: dict[int, Event] = {}      # aux -> event
        self.salt = rng.getrandbits(16)

    def time(self, cycle: int) -> int:
        return (self.start + cycle) % (1 << 64)

    def cycle(self, raises: dict[int, tuple[EventKind, int]], mask: int = ALL,
              tready: int = 1) -> list[Event | None]:
        time = self.time(len(self.cycles))
        evs: list[Event | None] = [None] * len(self.kinds)
        for src, (kind, body) in raises.items():
            eid = len(self.events)
            assert eid < 1 << 16
            ev = Event(src, eid, int(kind), self.rng.getrandbits(8), eid ^ self.salt, body, time)
            self.events[ev.aux] = evs[src] = ev
        self.cycles.append((evs, mask, tready, time))
        return evs

    def masked_in(self) -> list[Event]:
        return [ev for evs, mask, _, _ in self.cycles for ev in evs
                if ev is not None and (mask >> ev.kind & 1
                                       or K(ev.kind) not in self.kinds[ev.src])]


def fields(tdata: int) -> tuple:
    """A C2H beat as the host reads it: header fields and the whole 48-byte body."""
    r = np.frombuffer(tdata.to_bytes(64, "little"), dtype=numpy_dtype())
    d = decode(r)[0]
    return (d["seq"], d["kind"], d["line"], d["aux"], d["timestamp"], r[0]["body"].tobytes())


def run(script: Script, *, depth: int = 16, source_depth: int = 4):
    """Simulate ``script`` (then drain), checking the DUT against the model every cycle."""
    kinds = script.kinds
    dut = EventCollector(kinds, depth=depth, source_depth=source_depth)
    model = Model(kinds, depth, source_depth)
    got: list[tuple] = []
    totals = [0, 0, 0]
    drain = [([None] * len(kinds), ALL, 1, script.time(len(script.cycles) + j))
             for j in range(2 * (depth + len(kinds) * source_depth) + 8)]

    async def bench(ctx):
        for cycle, (evs, mask, tready, time) in enumerate(script.cycles + drain):
            at = f"cycle {cycle} {WHERE}"
            for i, ev in enumerate(evs):
                port = getattr(dut, f"src{i}")
                ctx.set(port.valid, ev is not None)
                if ev is not None:
                    ctx.set(port.payload.as_value(),
                            ev.kind | ev.line << 8 | ev.aux << 16 | ev.body << 32)
            ctx.set(dut.mask, mask)
            ctx.set(dut.c2h.tready, tready)
            ctx.set(dut.time, time)
            assert ctx.get(dut.c2h.tvalid) == (model.out is not None), at
            if model.out is not None:
                assert ctx.get(dut.c2h.tlast) == 1, at
                rec = fields(ctx.get(dut.c2h.tdata))
                assert rec == model.out, f"record {rec} expected {model.out} {at}"
                if tready:
                    got.append(rec)
            incs = (ctx.get(dut.inc_events), ctx.get(dut.inc_events_lost),
                    ctx.get(dut.inc_events_undeclared))
            expect = model.step(evs, mask, tready, time)
            assert incs == expect, f"increments {incs} expected {expect} {at}"
            for j in range(3):
                totals[j] += incs[j]
            await ctx.tick()
        assert model.empty(), WHERE

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    check_stream(script, model, got, totals)
    return got, model, totals


def check_stream(script: Script, model: Model, got: list[tuple], totals: list[int]) -> None:
    """What holds of the stream whatever the timing (the model is used for ring losses only)."""
    raised = script.masked_in()
    undeclared = [ev for ev in raised if K(ev.kind) not in script.kinds[ev.src]]
    assert totals[0] == len(raised), WHERE
    assert totals[2] == len(undeclared), WHERE
    assert totals[0] == len(got) + totals[1], WHERE
    masked_in = {ev.aux for ev in raised} - {ev.aux for ev in undeclared}
    last_eid: dict[int, int] = {}
    for _seq, kind, line, aux, time, body in got:
        assert aux in masked_in, f"record aux {aux} was not raised (or masked out) {WHERE}"
        masked_in.discard(aux)      # so a second copy fails
        ev = script.events[aux]
        width = body_bits(*script.kinds[ev.src])
        assert (kind, line, time) == (ev.kind, ev.line, ev.time), WHERE
        assert body == (ev.body & ((1 << width) - 1)).to_bytes(BODY_BYTES, "little"), WHERE
        assert ev.eid > last_eid.get(ev.src, -1), f"source {ev.src} out of order {WHERE}"
        last_eid[ev.src] = ev.eid
    seqs = [r[0] for r in got]
    assert seqs == sorted(set(seqs)), f"seq not strictly increasing {WHERE}"
    assert sorted(seqs + model.ring_lost) == list(range(model.seq)), WHERE


POOL: list[Decl] = [(K.GAP, K.INVALIDATE), (K.FRAME_DROP,), (K.MESSAGE,), (K.VERDICT,),
                    (K.BBO, K.TRADE, K.BOOK_ALERT), (K.SESSION, K.END_OF_SESSION),
                    (K.OE_ALERT,)]


def test_random():
    rng = random.Random(SEED)
    kinds = rng.sample(POOL, rng.randint(4, 6))
    script = Script(kinds, rng)
    while len(script.cycles) < 3000:
        p_raise = [rng.choice([0, 0.05, 0.3, 0.8]) for _ in kinds]
        p_ready = rng.choice([0, 0.2, 0.7, 1.0])
        mask = ALL if rng.random() < 0.6 else rng.getrandbits(32)
        for _ in range(rng.randint(10, 100)):
            raises = {}
            for i, ks in enumerate(kinds):
                if rng.random() < p_raise[i]:
                    kind = rng.choice(ks) if rng.random() > 0.03 else rng.choice(list(K))
                    raises[i] = (kind, rng.getrandbits(body_bits(kind)))
            script.cycle(raises, mask, int(rng.random() < p_ready))
    got, model, totals = run(script)
    assert len(got) > 500 and model.lost_at_source > 0 and model.ring_lost, \
        f"{len(got)} records, {model.lost_at_source} lost at source, " \
        f"{len(model.ring_lost)} at the ring: not every case exercised {WHERE}"
    assert totals[2] > 0, WHERE


def test_round_robin_fair():
    rng = random.Random(SEED + 1)
    kinds = rng.sample(POOL, 5)
    script = Script(kinds, rng)
    for _ in range(200):
        script.cycle({i: (ks[0], rng.getrandbits(body_bits(ks[0]))) for i, ks in enumerate(kinds)})
    got, model, _ = run(script)
    assert not model.ring_lost, WHERE
    served = [script.events[aux].src for _, _, _, aux, _, _ in got][:199]  # while all raise
    n = len(kinds)
    for src in range(n):
        at = [-1] + [j for j, s in enumerate(served) if s == src]
        waits = [b - a for a, b in pairwise(at)]
        assert max(waits) <= n, f"source {src} waited {max(waits)} picks of {n} {WHERE}"


def test_undeclared_and_masked():
    rng = random.Random(SEED + 2)
    script = Script([(K.FRAME_DROP,), (K.VERDICT,)], rng)
    fd, vd = (K.FRAME_DROP, 0x1234), (K.VERDICT, rng.getrandbits(body_bits(K.VERDICT)))
    script.cycle({0: (K.VERDICT, vd[1]), 1: vd})               # src0: undeclared
    script.cycle({0: fd})
    script.cycle({0: fd, 1: vd}, mask=ALL & ~(1 << K.FRAME_DROP))   # src0 masked out
    script.cycle({1: (K.BBO, 7)}, mask=ALL & ~(1 << K.BBO))    # undeclared: counted anyway
    script.cycle({0: (K.OE_ALERT, 1), 1: vd})                  # undeclared
    got, _, totals = run(script)
    assert totals == [7, 3, 3], f"events, lost, undeclared {totals} {WHERE}"
    want = [(1, K.VERDICT), (0, K.FRAME_DROP), (1, K.VERDICT), (1, K.VERDICT)]
    srcs = [(script.events[r[3]].src, r[1]) for r in got]
    assert srcs == want, f"delivered {srcs} {WHERE}"
    assert [r[0] for r in got] == [0, 1, 2, 3], f"seq {WHERE}"


def test_body_beyond_declared_width_not_stored():
    rng = random.Random(SEED + 3)
    script = Script([(K.FRAME_DROP,), (K.MESSAGE,)], rng)
    garbage = [rng.getrandbits(BODY_BYTES * 8) | 1 << (BODY_BYTES * 8 - 1) for _ in range(6)]
    for g in garbage:
        script.cycle({0: (K.FRAME_DROP, g), 1: (K.MESSAGE, g)})
    got, _, _ = run(script)
    stored = body_bits(K.FRAME_DROP) // 8
    for *_, aux, _, body in got:
        ev = script.events[aux]
        g = ev.body.to_bytes(BODY_BYTES, "little")
        if ev.src == 0:
            assert body == g[:stored] + bytes(BODY_BYTES - stored), WHERE
        else:
            assert body == g, WHERE
    assert len(got) == 2 * len(garbage), WHERE


@pytest.mark.parametrize("start", [
    pytest.param(0, id="reset"),                    # from reset, as in the core
    pytest.param((1 << 7) - 40, id="first-wrap"),   # the first wrap of the stored bits
    pytest.param(None, id="far"),   # just below a random multiple of 2**7, far above it
    pytest.param((1 << 64) - 150, id="wrap64"),     # the 64-bit counter wraps too
])
def test_timestamp_across_wraps(start: int | None):
    """The core's sources and depths (7 stored timestamp bits), every source raising every
    cycle so that every source FIFO is full and each event waits as long as it ever can, with
    and then without a full ring (the collector does not wait for it), while ``time`` crosses
    multiples of 2**7 (and of 2**64): every timestamp must still be the exact cycle."""
    from hw.core import EVENT_KINDS

    rng = random.Random(SEED + 4)
    if start is None:
        start = (rng.getrandbits(56) << 7) - 40
    kinds = list(EVENT_KINDS)
    source_depth = 8
    bits = EventCollector(kinds, source_depth=source_depth).stamp_bits
    assert bits == 7, "the core's collector changed: check the bound in hw/eventq.py"
    script = Script(kinds, rng, start)
    for c in range(400):
        script.cycle({i: (ks[0], rng.getrandbits(body_bits(ks[0]))) for i, ks in enumerate(kinds)},
                     tready=int(c >= 200 or rng.random() < 0.3))
    got, model, _ = run(script, source_depth=source_depth)
    assert model.ring_lost and model.lost_at_source, WHERE
    # The longest wait there can be: the bound less one (a source served in the cycle of the
    # write has one entry fewer ahead of the new one; one not served is served sooner), and
    # more than 2**6: with one timestamp bit fewer the records would be wrong (checked).
    bound = source_depth * len(kinds)
    assert model.max_wait == bound - 1 > 1 << (bits - 1), f"waited {model.max_wait} {WHERE}"
    assert len(got) > 300, WHERE


def test_constructor_errors():
    with pytest.raises(ValueError):
        EventCollector([])
    with pytest.raises(ValueError):
        EventCollector([()])
