"""HeadRegisterFIFO against a Python deque: order, level, latency, full and empty."""

from __future__ import annotations

import os
import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from hw.lib.fifo import HeadRegisterFIFO

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))


@pytest.mark.parametrize("depth,p_write,p_read", [(3, 0.7, 0.5), (4, 0.9, 0.3),
                                                  (16, 0.5, 0.9), (16, 1.0, 1.0)])
def test_against_deque(depth, p_write, p_read):
    rng = random.Random(SEED + depth)
    dut = HeadRegisterFIFO(width=16, depth=depth)
    model: deque[int] = deque()
    visible_at: deque[int] = deque()   # cycle from which each entry may be read
    where = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"

    async def bench(ctx):
        n = 0
        for cycle in range(3000):
            w = rng.random() < p_write
            r = rng.random() < p_read
            data = rng.getrandbits(16)
            ctx.set(dut.w_en, w)
            ctx.set(dut.w_data, data)
            ctx.set(dut.r_en, r)
            assert ctx.get(dut.level) == len(model), where
            assert ctx.get(dut.w_rdy) == (len(model) < depth), where
            readable = bool(model) and visible_at[0] <= cycle
            assert ctx.get(dut.r_rdy) == readable, f"cycle {cycle} {where}"
            if readable:
                assert ctx.get(dut.r_data) == model[0], where
                if r:
                    model.popleft()
                    visible_at.popleft()
                    n += 1
            if w and len(model) + (1 if readable and r else 0) <= depth and \
                    ctx.get(dut.w_rdy):
                model.append(data)
                visible_at.append(cycle + 1)    # written now, readable next cycle
            await ctx.tick()
        assert n > 100, where

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
