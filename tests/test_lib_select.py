"""one_hot_or and any_of against Python: one bit, no bit, several bits, widths, bad arguments."""

from __future__ import annotations

import os
import random
from functools import reduce
from operator import or_

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.lib.select import any_of, one_hot_or

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"


@pytest.mark.parametrize("n,widths", [(1, [5]), (3, [8, 3, 12]), (8, [16] * 8)])
def test_one_hot_or_against_python(n, widths):
    rng = random.Random(SEED + n)
    sel = Signal(n)
    values = [Signal(w, name=f"v{i}") for i, w in enumerate(widths)]
    out = Signal(max(widths) + 1)
    m = Module()
    m.d.comb += out.eq(one_hot_or(sel, values))

    async def bench(ctx):
        cases = [0, *(1 << i for i in range(n)), (1 << n) - 1]
        cases += [rng.getrandbits(n) for _ in range(200)]
        for s in cases:
            vs = [rng.getrandbits(w) for w in widths]
            ctx.set(sel, s)
            for sig, v in zip(values, vs, strict=True):
                ctx.set(sig, v)
            want = reduce(or_, (v for i, v in enumerate(vs) if s >> i & 1), 0)
            assert ctx.get(out) == want, f"sel {s:0{n}b} values {vs} {WHERE}"

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_any_of_and_empty_selections():
    a, b = Signal(4), Signal(6)
    empty = Signal(9)
    got = Signal(6)
    m = Module()
    m.d.comb += [got.eq(any_of([a, b])), empty.eq(one_hot_or([], [], 9))]
    assert len(one_hot_or([], [], 9)) == 9
    assert len(any_of([], 3)) == 3

    async def bench(ctx):
        ctx.set(a, 0b1010)
        ctx.set(b, 0b110001)
        assert ctx.get(got) == 0b111011
        assert ctx.get(empty) == 0

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 select bits for 2 values"):
        one_hot_or(Signal(3), [Signal(4), Signal(4)])
