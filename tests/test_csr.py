# amaranth: UnusedElaboratable=no
"""CSRBank over AXI4-Lite against a cycle-exact model of its registers and counters.

The counters live in block RAM behind pre-counters (hw/csr.py), so the properties that matter
are exactness and the pre-counter bound: every read must return exactly the increments of the
cycles up to two before the cycle the bank sampled it, since the last clear, with increments of
3 on every counter at once, with clears in the middle of a round, and with reads queued behind
the round that a clear starts.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator

from hw.csr import INC_WIDTH, CSRBank
from hw.regmap import COUNTER_BITS, REGMAP, Access, Block, Counter, Register, RegisterMap

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
MASK48 = (1 << COUNTER_BITS) - 1
MAX_INC = (1 << INC_WIDTH) - 1


def small_map() -> RegisterMap:
    """Every kind of register, and narrow and wide counters interleaved."""
    regs = Block("regs", 0x0000, "test registers", [
        Register("rw_a", Access.RW, "rw", reset=0x1234_5678),
        Register("rw_b", Access.RW, "narrow rw", width=12, reset=0x5A5),
        Register("status", Access.RO, "ro"),
        Register("strobe", Access.PULSE, "pulse", width=4),
        Register("pair_lo", Access.RO, "64-bit pair, low"),
        Register("pair_hi", Access.RO, "64-bit pair, high"),
    ])
    cnt = Block("cnt", 0x0100, "counters", counters=[
        Counter("c0", "narrow"), Counter("w0", "wide", wide=True), Counter("c1", "narrow"),
        Counter("c2", "narrow"), Counter("c3", "narrow"), Counter("w1", "wide", wide=True),
        Counter("c4", "narrow"), Counter("c5", "narrow"),
    ])
    return RegisterMap([regs, cnt])


@dataclass
class Model:
    """The bank as the host should see it: increments per cycle, clears, the sweep after each."""
    n: int
    incs: list[dict[str, int]] = field(default_factory=list)   # per cycle
    clears: list[int] = field(default_factory=list)            # cycles with clear high

    def sweeping(self, t: int) -> bool:
        """A clear at c (or the reset, like a clear at -1) blocks samples in c+1 .. c+n."""
        return any(c + 1 <= t <= c + self.n for c in [-1, *self.clears])

    def sample_cycle(self, handshake: int) -> int:
        t = handshake + 1
        while self.sweeping(t):
            t += 1
        return t

    def count(self, name: str, sample: int) -> int:
        last = max([c for c in self.clears if c < sample], default=-1)
        return sum(self.incs[t].get(name, 0) for t in range(last + 1, sample - 1)) & MASK48


async def axil_read(ctx, bus, addr: int) -> int:
    """One AXI4-Lite read, alone on the bus: AR handshake, then wait for R."""
    ctx.set(bus.rready, 1)
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    while not ctx.get(bus.arready):
        await ctx.tick()
    await ctx.tick()
    ctx.set(bus.arvalid, 0)
    while not ctx.get(bus.rvalid):
        await ctx.tick()
    value = ctx.get(bus.rdata)
    await ctx.tick()
    return value


def assert_pre_counter_bound(bank: CSRBank, rm: RegisterMap) -> None:
    """The bound the design rests on: a round of n cycles at 3 fits, and tightly (one bit less
    would not, and the full-rate runs below fail with it)."""
    assert bank.entries == len(rm.counters)
    assert (1 << bank.pre_bits) > MAX_INC * bank.entries
    assert (1 << (bank.pre_bits - 1)) <= MAX_INC * bank.entries


def run_bank(rm: RegisterMap, cycles: int, rng: random.Random, *, p_inc: float,
             p_read: float, clear_every: int, bursts: bool) -> int:
    """Drive random increments, clears and AXI-Lite traffic; check every read. Returns the
    number of counter reads checked."""
    dut = CSRBank(rm)
    assert_pre_counter_bound(dut, rm)
    names = list(rm.counters)
    wide = {c for c in names if rm.counter_defs[c].wide}
    model = Model(dut.entries)
    ro_values = {"status": rng.getrandbits(32), "pair": rng.getrandbits(64)}
    rw_state = {r.name: r.reset for r in rm.all_registers() if r.access is Access.RW}
    checked = 0

    async def bench(ctx):
        nonlocal checked
        ctx.set(dut.ro_status, ro_values["status"])
        ctx.set(dut.ro_pair, ro_values["pair"])
        pending_read = None   # (address, handshake cycle)
        pending_write = None
        burst_until = -1
        for t in range(cycles):
            # -- increments --------------------------------------------------------------
            if bursts and t % 97 == 0:
                burst_until = t + 2 * model.n + 5
            incs = {}
            for c in names:
                if c in wide:
                    v = rng.choice([0, 0, 1, rng.getrandbits(20), rng.getrandbits(47)])
                elif t <= burst_until:
                    v = MAX_INC
                else:
                    v = rng.randrange(MAX_INC + 1) if rng.random() < p_inc else 0
                ctx.set(getattr(dut, f"inc_{c}"), v)
                if v:
                    incs[c] = v
            model.incs.append(incs)
            clear = clear_every and rng.randrange(clear_every) == 0
            ctx.set(dut.clear, clear)
            if clear:
                model.clears.append(t)

            # -- AXI-Lite read -------------------------------------------------------------
            bus = dut.axil
            # One transaction at a time, so the model needs no history of the registers.
            if pending_read is None and pending_write is None and rng.random() < p_read:
                kind = rng.random()
                if kind < 0.6:
                    c = rng.choice(names)
                    addr = rm.counters[c][0 if rng.random() < 0.75 else 1].offset
                else:
                    addr = rng.choice([r.offset for r in rm.all_registers()] + [0x0ffc])
                pending_read = [addr, None]
            if pending_read is not None:
                ctx.set(bus.arvalid, pending_read[1] is None)
                ctx.set(bus.araddr, pending_read[0])
                ctx.set(bus.rready, 1)
                if pending_read[1] is None and ctx.get(bus.arready):
                    pending_read[1] = t
                if pending_read[1] is not None and pending_read[1] < t and ctx.get(bus.rvalid):
                    addr, h = pending_read
                    got = ctx.get(bus.rdata)
                    expect, hi_next = expected(addr, h)
                    assert got == expect, (f"read {addr:#06x} (handshake {h}, returned at {t})"
                                           f": {got:#x} != {expect:#x} {WHERE}")
                    if hi_next is not None:
                        hi_latch[0] = hi_next
                    pending_read = None
                    checked += 1
            else:
                ctx.set(bus.arvalid, 0)
                ctx.set(bus.rready, 0)

            # -- AXI-Lite write ------------------------------------------------------------
            if pending_write is None and pending_read is None and rng.random() < 0.05:
                r = rng.choice([r for r in rm.all_registers() if r.access is not Access.RO])
                pending_write = [r, rng.getrandbits(32), False, False]
            if pending_write is not None:
                r, v, aw_done, w_done = pending_write
                ctx.set(bus.awvalid, not aw_done)
                ctx.set(bus.awaddr, r.offset)
                ctx.set(bus.wvalid, not w_done)
                ctx.set(bus.wdata, v)
                ctx.set(bus.bready, 1)
                if not aw_done and ctx.get(bus.awready):
                    pending_write[2] = True
                if not w_done and ctx.get(bus.wready):
                    pending_write[3] = True
                if aw_done and w_done and ctx.get(bus.bvalid):
                    if r.access is Access.RW:
                        rw_state[r.name] = v & ((1 << r.width) - 1)
                    pending_write = None
            else:
                ctx.set(bus.awvalid, 0)
                ctx.set(bus.wvalid, 0)
                ctx.set(bus.bready, 0)
            if pending_write is None:
                for name, v in rw_state.items():
                    assert ctx.get(getattr(dut, name)) == v, f"{name} {WHERE}"
            await ctx.tick()

    hi_latch = [0]   # what a _hi read must return: latched by the last _lo read

    def expected(addr: int, handshake: int) -> tuple[int, int | None]:
        """(data, new _hi latch or None) of a read whose AR handshake was at `handshake`."""
        sample = model.sample_cycle(handshake)
        for c, (lo, hi) in rm.counters.items():
            if addr == lo.offset:
                v = model.count(c, sample)
                return v & 0xFFFF_FFFF, v >> 32
            if addr == hi.offset:
                return hi_latch[0], None
        for r in rm.all_registers():
            if r.offset != addr:
                continue
            if r.name == "pair_lo":
                return ro_values["pair"] & 0xFFFF_FFFF, ro_values["pair"] >> 32
            if r.name == "pair_hi":
                return hi_latch[0], None
            if r.access is Access.RO:
                return ro_values[r.name], None
            if r.access is Access.RW:
                return rw_state[r.name], None
            return 0, None
        return 0xDEADC0DE, None

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return checked


@pytest.mark.parametrize("p_inc,p_read,clear_every,bursts", [
    (0.3, 0.5, 0, False),       # no clears: long sums, wide counters wrap 2^48
    (0.9, 0.7, 150, True),      # 3 a cycle on every counter for two rounds, clears
    (0.5, 0.9, 23, False),      # clears faster than a round: reads queue behind sweeps
])
def test_small_map_against_model(p_inc, p_read, clear_every, bursts):
    rng = random.Random(SEED + int(p_inc * 100) + clear_every)
    checked = run_bank(small_map(), 4000, rng, p_inc=p_inc, p_read=p_read,
                       clear_every=clear_every, bursts=bursts)
    assert checked > 300, WHERE


def test_full_register_map_at_full_rate():
    """The real map (122 counters, so a round of 122 cycles): every narrow counter at 3 a
    cycle for three rounds, then every counter read back exactly."""
    rm = REGMAP
    dut = CSRBank(rm)
    assert_pre_counter_bound(dut, rm)
    names = list(rm.counters)
    wide = {c for c in names if rm.counter_defs[c].wide}
    hot = 3 * dut.entries + 7
    results = {}

    async def bench(ctx):
        for c in names:
            ctx.set(getattr(dut, f"inc_{c}"), 5 if c in wide else MAX_INC)
        for _ in range(hot):
            await ctx.tick()
        for c in names:
            ctx.set(getattr(dut, f"inc_{c}"), 0)
        for c in names:
            results[c] = await axil_read(ctx, dut.axil, rm.counters[c][0].offset)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # Increments were set before the first tick (cycle 0) and zeroed after cycle hot-1; the
    # sweep after reset does not lose any of them (it writes the pre-counter alone).
    for c in names:
        per = 5 if c in wide else MAX_INC
        assert results[c] == per * hot, f"{c}: {results[c]} != {per * hot}"


@pytest.mark.parametrize("start", [(1 << 32) - 7, (1 << COUNTER_BITS) - 7],
                         ids=["carry-into-hi", "wrap-2^48"])
def test_block_ram_counter_carries_past_32_bits(start):
    """A block-RAM counter's total crosses bit 32 (the _lo/_hi split and the latch) and wraps
    at 2^48. No run reaches 2^32 increments, so the total is written into both RAM copies
    directly — after the reset's sweep, while the scanner is half a round away from the
    entry and before the counter has counted anything — and then counted past the edge."""
    rm = small_map()
    dut = CSRBank(rm)
    names = list(rm.counters)
    n, k = dut.entries, names.index("c1")
    top = dut.elaborate(None)   # its memories are this module's (hence line 1: dut itself
    #                             is never elaborated by the simulator)
    fold, host = top.submodules.cnt_fold, top.submodules.cnt_host
    incs = 3 * n * MAX_INC
    got = {}

    async def bench(ctx):
        t = 0
        # The scanner reads entry t mod n in cycle t (from reset); the sweep ends at n.
        while t < 2 * n or t % n != (k + n // 2) % n:
            await ctx.tick()
            t += 1
        ctx.set(fold.data[k], start)
        ctx.set(host.data[k], start)
        ctx.set(dut.inc_c1, MAX_INC)
        for _ in range(3 * n):
            await ctx.tick()
        ctx.set(dut.inc_c1, 0)
        for _ in range(2 * n):
            await ctx.tick()
        lo, hi = rm.counters["c1"]
        got["lo"] = await axil_read(ctx, dut.axil, lo.offset)
        got["hi"] = await axil_read(ctx, dut.axil, hi.offset)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    total = (start + incs) & MASK48
    assert (got["hi"] << 32 | got["lo"]) == total, (got, f"{total:#x}")
    assert got["hi"] == total >> 32 and got["hi"] != start >> 32
