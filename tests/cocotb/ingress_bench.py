"""cocotb tests of the whole ingress path, on the core's generated Verilog, against the model.

Run by ``tests/test_cocotb_core.py`` (cocotb's runner, Verilator); see docs/testing.md. Each test
resets the core, so they are independent and run in any order or alone.

* :func:`single_line_with_idle_cycles` — every fault class on line A, idle cycles inside and
  between frames, backpressure on C2H. Idle cycles change *when* things happen but not *what*
  (one line cannot race itself, and the parser gates on ``tvalid``), so everything but the
  cycle numbers is compared with the model run on the same frames back to back.
* :func:`two_lines_cycle_exact` — one feed on lines A and B with skew, losses and damage; no
  idle cycles inside frames, so the model runs on the cycles the monitors recorded and
  everything is compared exactly: which line won each message, every event field, and every
  record's timestamp.
* :func:`sequence_reset_relocks` — a sequence reset through the CSR between two sessions, the
  sequencer state registers, and ``ctrl.clear_counters``.
* :func:`identity_block` — what the host reads first, and the event mask's reset value.

Randomized tests draw from ``WIRESPEED_SEED`` (set by the pytest entry; random when unset) and
print it; a failure message names the seed and the frames involved.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Iterator

import cocotb
from cocotb.handle import HierarchyObject
from cocotb.triggers import RisingEdge, gather

from hw.events import RECORD_BYTES, EventKind
from hw.ingress.reasons import MAX_MESSAGE
from hw.regmap import EVENT_MASK_RESET, MAGIC, N_FILTERS, REGMAP, REGMAP_VERSION
from sim.model.ingress import IngressModel, Line, back_to_back
from tests.cocotb.core_tb import (
    ALL_EVENTS,
    SOURCE_LEAD,
    CoreTB,
    Run,
    assert_agrees,
    check,
    line_frames,
    summary,
)
from tests.cocotb.traffic import Wire, faulty_line, redundant_feed
from tests.ingress_frames import FILTERS, SESSION, FrameSpec, random_message

# cocotbext-axi 0.1.28 still uses cocotb 1.x spellings (setimmediatevalue, Task.kill, ...);
# the warnings are about the library, not about this bench.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.axi")

SEED = int(os.environ.get("WIRESPEED_SEED") or random.randrange(1 << 30))
N_SINGLE_FRAMES = 250
N_PACKETS = 220
#: Probability of an idle cycle on line A (inside frames too) and of a C2H stall.
RX_IDLE = 0.2
C2H_STALL = 0.4
TIMEOUT_MS = 5


def _rng(test: str) -> random.Random:
    return random.Random(f"{SEED}/{test}")


def _coin(rng: random.Random, p: float) -> Iterator[bool]:
    """A pause generator for cocotbext-axi: True (pause) with probability ``p`` each cycle."""
    while True:
        yield rng.random() < p


def _field(register: str, name: str) -> int:
    """The mask of a register's bit field, by name."""
    f = next(f for f in REGMAP[register].fields if f.name == name)
    return ((1 << f.width) - 1) << f.lsb


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def single_line_with_idle_cycles(dut: HierarchyObject) -> None:
    """Every fault class on line A with idle cycles inside frames: all but cycles agree."""
    rng = _rng("single_line_with_idle_cycles")
    tb = CoreTB(dut)
    tb.log.info("seed %d (rerun with WIRESPEED_SEED=%d)", SEED, SEED)
    await tb.reset()
    await tb.configure(FILTERS, ALL_EVENTS)
    wires = faulty_line(rng, N_SINGLE_FRAMES)
    tb.rx[Line.A].set_pause_generator(_coin(rng, RX_IDLE))
    tb.c2h.set_pause_generator(_coin(rng, C2H_STALL))
    for wire in wires:
        await tb.send(Line.A, wire)
    await tb.drain()
    seen = tb.seen(Line.A)
    assert [s.wire for s in seen] == wires, "line A's monitor saw other frames than were sent"
    assert not tb.seen(Line.B), "traffic on line B"
    stretched = sum(not s.contiguous for s in seen)
    assert stretched, "no frame had an idle cycle inside: the test does not test that"

    frames = back_to_back((w.data for w in wires),
                          mac_errors={i for i, w in enumerate(wires) if w.mac_error})
    run = Run((seen, []), (frames, []), IngressModel(FILTERS).run(frames), timed=False)
    counters = await tb.read_counters()
    tb.log.info("%d of %d frames had idle cycles inside; %s", stretched, len(seen),
                summary(run.result))
    assert_agrees(check(run, tb.records(), counters), "single_line_with_idle_cycles", SEED)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def two_lines_cycle_exact(dut: HierarchyObject) -> None:
    """One feed on both lines, contiguous frames: everything agrees, cycles included."""
    rng = _rng("two_lines_cycle_exact")
    tb = CoreTB(dut)
    tb.log.info("seed %d (rerun with WIRESPEED_SEED=%d)", SEED, SEED)
    await tb.reset()
    await tb.configure(FILTERS, ALL_EVENTS)
    plans = redundant_feed(rng, N_PACKETS)
    await RisingEdge(dut.clk)
    origin = tb.now() + SOURCE_LEAD + 1
    await gather(*(tb.play(line, plans[line], origin) for line in Line))
    await tb.drain()

    seen = {line: tb.seen(line) for line in Line}
    for line in Line:
        assert [s.wire for s in seen[line]] == [p.wire for p in plans[line]], \
            f"line {line.name}'s monitor saw other frames than were sent"
        broken = [s for s in seen[line] if not s.contiguous]
        assert not broken, f"line {line.name}: idle cycles inside a frame (the bench's " \
            f"fault: the model needs contiguous frames), first at cycle {broken[0].first}"
    frames = (line_frames(seen[Line.A]), line_frames(seen[Line.B]))
    run = Run((seen[Line.A], seen[Line.B]), frames, IngressModel(FILTERS).run(*frames),
              timed=True)
    counters = await tb.read_counters()
    tb.log.info("%s", summary(run.result))
    problems = check(run, tb.records(), counters)
    # The entry FIFOs' high-water marks: the model counts entries waiting at a cycle's start.
    peaks = (await tb.read("fifo_a_max"), await tb.read("fifo_b_max"))
    if peaks != run.result.fifo_peak:
        problems.append(f"entry FIFO high-water marks (A, B): model {run.result.fifo_peak}, "
                        f"core {peaks}")
    assert_agrees(problems, "two_lines_cycle_exact", SEED)


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def sequence_reset_relocks(dut: HierarchyObject) -> None:
    """Two sessions on line A with a sequence reset (``ctrl.seq_reset``) while the line is idle
    between them: the second session's first packet locks again (a second SESSION event), and
    the sequencer registers show the new session and the next expected number. Then
    ``ctrl.clear_counters`` zeroes every counter."""
    rng = _rng("sequence_reset_relocks")
    tb = CoreTB(dut)
    await tb.reset()
    await tb.configure(FILTERS, ALL_EVENTS)
    other = "SESSION002"
    first = [FrameSpec(seq=1 + 3 * i, messages=[random_message(rng) for _ in range(3)])
             for i in range(4)]
    second = [FrameSpec(seq=5000 + 2 * i, session=other,
                        messages=[random_message(rng) for _ in range(2)]) for i in range(4)]
    for spec in first:
        await tb.send(Line.A, Wire(spec.build()))
    await tb.drain()
    await tb.write("ctrl", _field("ctrl", "seq_reset"))
    unlock = tb.now() + 2   # the write is done; its strobe has reached the sequencer by then
    assert not await tb.read("seq_status") & _field("seq_status", "locked"), "still locked"
    for spec in second:
        await tb.send(Line.A, Wire(spec.build()))
    await tb.drain()

    seen = tb.seen(Line.A)
    frames = line_frames(seen)
    run = Run((seen, []), (frames, []), IngressModel(FILTERS).run(frames, unlocks=[unlock]),
              timed=True)
    counters = await tb.read_counters()
    assert_agrees(check(run, tb.records(), counters), "sequence_reset_relocks", SEED)
    sessions = [e.fields["session"] for e in run.result.events if e.kind is EventKind.SESSION]
    assert sessions == [SESSION.encode(), other.encode()], sessions

    assert await tb.read("seq_status") & _field("seq_status", "locked"), "not locked"
    expected = await tb.read("seq_expected_lo")
    expected |= await tb.read("seq_expected_hi") << 32
    assert expected == second[-1].seq + len(second[-1].messages), expected
    session = other.encode()
    assert await tb.read("seq_session_0") == int.from_bytes(session[0:4], "big")
    assert await tb.read("seq_session_1") == int.from_bytes(session[4:8], "big")
    assert await tb.read("seq_session_2") == int.from_bytes(session[8:10], "big") << 16

    await tb.write("ctrl", _field("ctrl", "clear_counters"))
    left = {name: v for name, v in (await tb.read_counters()).items() if v}
    assert not left, f"counters not cleared: {left}"


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def identity_block(dut: HierarchyObject) -> None:
    """The registers a host reads before it drives the card, and the default event mask (the
    per-message tap off)."""
    tb = CoreTB(dut)
    await tb.reset()
    assert await tb.read("id_magic") == MAGIC
    assert await tb.read("id_regmap_version") == (REGMAP_VERSION[0] << 16) | REGMAP_VERSION[1]
    assert await tb.read("id_regmap_hash") == REGMAP.hash
    params = await tb.read("id_params")
    fields = {f.name: (params >> f.lsb) & ((1 << f.width) - 1) for f in REGMAP["id_params"].fields}
    assert fields["filters"] == N_FILTERS, fields
    assert fields["max_message"] == MAX_MESSAGE, fields
    assert fields["record_bytes"] == RECORD_BYTES, fields
    assert await tb.read("event_mask") == EVENT_MASK_RESET
    assert not EVENT_MASK_RESET & (1 << EventKind.MESSAGE), "the message tap is on by default"
    t1 = await tb.read("time_lo")
    t2 = await tb.read("time_lo")
    assert t2 > t1, "time does not advance"
