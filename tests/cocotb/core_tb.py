"""Test bench of the whole core (``wirespeed_core``) on its generated Verilog, and the check of
what it did against the reference model (:mod:`sim.model.ingress`).

The bench attaches cocotbext-axi BFMs to the core's AXI ports: an ``AxiStreamSource`` per
network line (the RX buses have no ``tready``, which the source handles: it never waits), an
``AxiStreamMonitor`` per line that records what really went over the wire and when, an
``AxiStreamSink`` on the C2H stream (512-bit, one event record per beat) and an
``AxiLiteMaster`` for the CSRs, which are always addressed by name through
:data:`hw.regmap.REGMAP`.

Cycle numbers. Cycle 0 is the first clock cycle with reset released; a beat "in cycle *k*" is
the one sampled by the *k*-th rising edge after it. The core's free-running ``time`` counter
(the record timestamp) reads *k* in cycle *k*, so model cycles and timestamps share one scale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamMonitor,
    AxiStreamSink,
    AxiStreamSource,
)

from hw.book.engine import COUNTERS as BOOK_COUNTERS
from hw.events import BODY_FIELDS, RECORD_BYTES, EventKind, decode, numpy_dtype
from hw.ingress.reasons import MAX_FRAME, DropReason
from hw.regmap import COUNTER_BITS, REGMAP
from proto import itch
from sim.model.ingress import IngressResult, Line, LineFrame
from tests.cocotb.traffic import Planned, Wire

#: 156.25 MHz, the clock a 10G MAC hands 64-bit beats over at.
CLOCK_PS = 6400
RX_PREFIX = {Line.A: "s_axis_rx_a", Line.B: "s_axis_rx_b"}
C2H_PREFIX = "m_axis_c2h"
AXIL_PREFIX = "s_axil"
#: Every event class on, the per-message tap included: delivered messages become visible.
ALL_EVENTS = sum(1 << k for k in EventKind)
#: Cycles an ``AxiStreamSource`` that is idle needs from ``send()`` (called just after a rising
#: edge) to its first beat being sampled: it wakes, waits for the next edge, then drives.
SOURCE_LEAD = 2
#: An event raised by the sequencer or the message tap in cycle *c* carries timestamp *c* + 1
#: (they are registered outputs).
EVENT_LATENCY = 1
#: A FRAME_DROP carries the cycle of the ``tlast`` beat (the model's ``end_cycle``) + 2: the
#: parser's verdict reads registered check bits, which settle a cycle after the last capture.
DROP_LATENCY = 2
#: Cycles without a C2H record after which the core is taken to have said everything.
QUIET_CYCLES = 64
#: Problems listed in a failure message (the first ones; later ones are usually consequences).
MAX_REPORTED = 8


def assert_agrees(problems: list[str], test: str, seed: int,
                  what: str = "core and model disagree") -> None:
    """Fail ``test`` with the first :data:`MAX_REPORTED` problems and how to replay it."""
    if problems:
        shown = "\n".join(problems[:MAX_REPORTED])
        more = f"\n... and {len(problems) - MAX_REPORTED} more" \
            if len(problems) > MAX_REPORTED else ""
        raise AssertionError(f"{test}: {what} ({len(problems)} problems; seed {seed}, rerun "
                             f"with WIRESPEED_SEED={seed}):\n{shown}{more}")


@dataclass(frozen=True)
class Seen:
    """A frame as the line monitor saw it on the bus: first and last beat cycles."""

    wire: Wire
    first: int
    last: int

    @property
    def contiguous(self) -> bool:
        """No idle cycle inside the frame (what the model's :class:`LineFrame` assumes)."""
        return self.last - self.first == self.wire.beats - 1


class CoreTB:
    """One reset-to-idle run of the core. Create it at the start of a cocotb test."""

    def __init__(self, dut: HierarchyObject):
        self.dut = dut
        self.log = logging.getLogger(f"cocotb.{dut._name}.tb")
        dut.rst.value = 1
        # The BFMs log every frame at INFO; a run has thousands.
        for prefix in (*RX_PREFIX.values(), C2H_PREFIX, AXIL_PREFIX):
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
        Clock(dut.clk, CLOCK_PS, unit="ps").start()
        self.rx = {line: AxiStreamSource(AxiStreamBus.from_prefix(dut, p), dut.clk, dut.rst)
                   for line, p in RX_PREFIX.items()}
        self.rx_monitor = {
            line: AxiStreamMonitor(AxiStreamBus.from_prefix(dut, p), dut.clk, dut.rst)
            for line, p in RX_PREFIX.items()}
        self.c2h = AxiStreamSink(AxiStreamBus.from_prefix(dut, C2H_PREFIX), dut.clk, dut.rst)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, AXIL_PREFIX), dut.clk, dut.rst)
        self._t0 = 0
        self._period = 0

    # -- time ---------------------------------------------------------------------------------
    async def reset(self, cycles: int = 8) -> None:
        """Synchronous reset; afterwards :meth:`now` is 0 in the first cycle out of reset."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)       # the first edge that samples rst low: cycle 0
        self._t0 = get_sim_time()
        await RisingEdge(self.dut.clk)
        self._period = get_sim_time() - self._t0

    def cycle_at(self, sim_time: int) -> int:
        """The cycle whose closing rising edge happened at ``sim_time`` (simulator steps)."""
        cycle, rem = divmod(sim_time - self._t0, self._period)
        assert rem == 0, f"sim time {sim_time} is not on a rising edge"
        return cycle

    def now(self) -> int:
        """The cycle of the rising edge just passed (call right after awaiting one)."""
        return self.cycle_at(get_sim_time())

    # -- registers ----------------------------------------------------------------------------
    async def write(self, name: str, value: int) -> None:
        await self.axil.write_dword(REGMAP[name].offset, value)

    async def read(self, name: str) -> int:
        return await self.axil.read_dword(REGMAP[name].offset)

    async def read_counter(self, name: str) -> int:
        """A 48-bit counter: ``_lo`` first, which latches the bits ``_hi`` returns."""
        lo, hi = REGMAP.counters[name]
        low = await self.axil.read_dword(lo.offset)
        return low | await self.axil.read_dword(hi.offset) << 32

    async def read_counters(self) -> dict[str, int]:
        return {name: await self.read_counter(name) for name in REGMAP.counters}

    async def configure(self, filters: Iterable[tuple[int, int]], event_mask: int) -> None:
        """Destination filter entries ``(IPv4, UDP port)`` (enabled) and the event mask."""
        for i, (ip, port) in enumerate(filters):
            await self.write(f"filter{i}_ip", ip)
            await self.write(f"filter{i}_port", (1 << 31) | port)
        await self.write("event_mask", event_mask)

    # -- traffic ------------------------------------------------------------------------------
    async def send(self, line: Line, wire: Wire) -> None:
        """Queue a frame on a line; ``tuser`` is held for the whole frame (the core samples it
        on the ``tlast`` beat only)."""
        await self.rx[line].send(AxiStreamFrame(wire.data, tuser=int(wire.mac_error)))

    async def play(self, line: Line, plan: Sequence[Planned], origin: int) -> None:
        """Send each frame so that it starts near cycle ``origin + at``; a frame planned before
        the previous one has ended follows it back to back."""
        for p in plan:
            lead = origin + p.at - SOURCE_LEAD - self.now()
            if lead > 0:
                await ClockCycles(self.dut.clk, lead)
            await self.send(line, p.wire)

    async def drain(self) -> None:
        """Wait until the lines are idle and the core has nothing left to report."""
        for source in self.rx.values():
            await source.wait()
        quiet = 0
        while quiet < QUIET_CYCLES:
            await RisingEdge(self.dut.clk)
            quiet = 0 if self.dut.m_axis_c2h_tvalid.value else quiet + 1

    def seen(self, line: Line) -> list[Seen]:
        """The frames the line's monitor recorded, in order."""
        out = []
        monitor = self.rx_monitor[line]
        while not monitor.empty():
            f = monitor.recv_nowait(compact=True)
            tuser = f.tuser if isinstance(f.tuser, int) else f.tuser[-1]
            out.append(Seen(Wire(bytes(f.tdata), bool(tuser)), self.cycle_at(f.sim_time_start),
                            self.cycle_at(f.sim_time_end)))
        return out

    def records(self) -> list[dict]:
        """Every C2H record received so far, decoded (:func:`hw.events.decode`)."""
        raw = []
        while not self.c2h.empty():
            beat = bytes(self.c2h.recv_nowait().tdata)
            assert len(beat) == RECORD_BYTES, f"C2H beat of {len(beat)} bytes"
            raw.append(beat)
        return decode(np.frombuffer(b"".join(raw), dtype=numpy_dtype()))


# ---------------------------------------------------------------------------------------------
# The check: the core's records and counters against the model's result
# ---------------------------------------------------------------------------------------------

#: Records are compared per event source of the core; each source keeps its own order (the
#: collector interleaves sources, so the order *between* them is not the model's business).
_SOURCE_OF_KIND = {EventKind.GAP: "GAP/INVALIDATE", EventKind.INVALIDATE: "GAP/INVALIDATE",
                   EventKind.SESSION: "SESSION", EventKind.END_OF_SESSION: "END_OF_SESSION",
                   EventKind.MESSAGE: "MESSAGE"}


#: Message bytes the MESSAGE tap carries (the rest of the 64-byte buffer does not fit a record).
_TAP_BYTES = int(dict(BODY_FIELDS[EventKind.MESSAGE])["data"][1:])
#: A failing sequencer event is shown with the frames that ended up to this many cycles before
#: it (their items may still have been waiting in the entry FIFOs).
_CONTEXT_CYCLES = 32
#: Frame bytes shown in a failure message (a jumbo frame's 9 KiB are noise).
_HEX_BYTES = 1024


def _source(kind: EventKind, line: int) -> str:
    if kind is EventKind.FRAME_DROP:
        return f"FRAME_DROP/{Line(line).name}"
    return _SOURCE_OF_KIND[kind]


def _padded(kind: EventKind, fields: dict) -> dict:
    """Raw-byte fields padded to their declared size (NumPy's ``S`` strips trailing NULs)."""
    out = dict(fields)
    for name, code in BODY_FIELDS[kind]:
        if code[0] == "S":
            out[name] = bytes(out[name]).ljust(int(code[1:]), b"\0")
    return out


def _invalidated_frame(result: IngressResult, frames: Sequence[LineFrame], line: Line,
                       first: int, cycle: int) -> int | None:
    """Which frame of ``line`` an INVALIDATE processed in ``cycle`` names: the latest frame whose
    end marker had arrived by then, that ended bad and handed over message ``first``."""
    for i in reversed(range(len(frames))):
        r = result.frames[line][i]
        if frames[i].end_cycle + 1 > cycle or r.dropped_whole or r.good:
            continue
        if any(m.seq == first for m in r.messages):
            return i
    return None


@dataclass(frozen=True)
class Run:
    """One run: the frames as the line monitors saw them on the bus, the frames as the model
    ran them (the same ones, re-timed back to back when idle cycles made the bus timing
    meaningless to the model), and the model's result. ``timed``: the model ran on the bus
    cycles, so timestamps are compared too."""

    seen: tuple[Sequence[Seen], Sequence[Seen]]
    frames: tuple[Sequence[LineFrame], Sequence[LineFrame]]
    result: IngressResult
    timed: bool

    def describe(self, line: Line, i: int) -> str:
        s, r = self.seen[line][i], self.result.frames[line][i]
        data = s.wire.data
        more = "..." if len(data) > _HEX_BYTES else ""
        return (f"line {line.name} frame {i} (bus cycles {s.first}..{s.last}, {len(data)} "
                f"bytes, tuser={int(s.wire.mac_error)}, model verdict {r.reason.name}): "
                f"{data[:_HEX_BYTES].hex()}{more}")


def expected_records(run: Run) -> dict[str, list[dict]]:
    """The records the core must send, per event source, in the model's order. Timestamps are
    included when the run is timed; ``_cycle`` (the model's cycle) is for failure messages."""
    result, out = run.result, {}

    def add(kind: EventKind, line: int, aux: int, cycle: int, latency: int,
            fields: dict) -> None:
        rec = {"kind_name": kind.name, "line": int(line), "aux": aux} | _padded(kind, fields)
        if run.timed:
            rec["timestamp"] = cycle + latency
        out.setdefault(_source(kind, line), []).append(rec | {"_cycle": cycle})

    for d in result.delivered:
        add(EventKind.MESSAGE, d.line, len(d.data), d.cycle, EVENT_LATENCY,
            {"msg_seq": d.seq, "data": d.data[:_TAP_BYTES]})
    for ev in result.events:
        aux = 0
        if ev.kind is EventKind.INVALIDATE:
            # The end marker's verdict rides along in aux.
            i = _invalidated_frame(result, run.frames[ev.line], ev.line, ev.fields["first"],
                                   ev.cycle)
            aux = -1 if i is None else int(result.frames[ev.line][i].reason)
        add(ev.kind, ev.line, aux, ev.cycle, EVENT_LATENCY, ev.fields)
    for drop in result.drops:
        add(EventKind.FRAME_DROP, drop.line, int(drop.reason), drop.end_cycle, DROP_LATENCY,
            {"frame_index": drop.index, "frame_bytes": min(drop.frame_bytes, MAX_FRAME + 1)})
    return out


def _observed_records(records: Sequence[dict], *, timed: bool) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in records:
        kind = EventKind(r["kind"])
        rec = {"kind_name": kind.name, "line": r["line"], "aux": r["aux"]} | _padded(
            kind, {name: r[name] for name, _ in BODY_FIELDS[kind]})
        if timed:
            rec["timestamp"] = r["timestamp"]
        out.setdefault(_source(kind, r["line"]), []).append(rec)
    return out


def _visible(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def _context(run: Run, rec: dict) -> Iterator[str]:
    """The frames a model record is about, for the failure message."""
    kind, line = EventKind[rec["kind_name"]], Line(rec["line"])
    if kind is EventKind.FRAME_DROP:
        yield run.describe(line, rec["frame_index"])
    elif kind is EventKind.MESSAGE:
        for i, r in enumerate(run.result.frames[line]):
            if any(m.seq == rec["msg_seq"] for m in r.messages):
                yield run.describe(line, i)
    else:
        for ln in Line:
            for i, f in enumerate(run.frames[ln]):
                if f.start <= rec["_cycle"] <= f.end_cycle + _CONTEXT_CYCLES:
                    yield run.describe(ln, i)


def _compare_source(run: Run, source: str, want: list[dict], got: list[dict]) -> list[str]:
    """The first difference in one source's records, with the neighbours and the frames."""
    problems = []
    for k, (a, b) in enumerate(zip(want, got, strict=False)):
        if _visible(a) != b:
            diff = {n: (a.get(n), b.get(n)) for n in _visible(a).keys() | b.keys()
                    if a.get(n) != b.get(n)}
            lines = [f"{source} record #{k} differs in {diff} (model, core)"]
            for j in range(k, min(k + 3, max(len(want), len(got)))):
                lines.append(f"  model #{j}: {_visible(want[j]) if j < len(want) else '-'}")
                lines.append(f"  core  #{j}: {got[j] if j < len(got) else '-'}")
            lines += ["  " + c for c in _context(run, a)]
            problems.append("\n".join(lines))
            break
    if len(want) != len(got):
        extra = _visible(want[len(got)]) if len(want) > len(got) else got[len(want)]
        problems.append(f"{source}: model has {len(want)} records, core sent {len(got)}; "
                        f"first unmatched: {extra}")
    return problems


def check(run: Run, records: Sequence[dict], counters: dict[str, int]) -> list[str]:
    """Every difference between the core and the model, as readable text (empty: none).

    Compared: the record sequence numbers (no hole: nothing lost), each event source's records
    field by field (timestamps too when the run is timed), and every counter of the register
    map (the model's frame and sequencer counters; ``events`` = records received).
    """
    problems: list[str] = []
    if [r["seq"] for r in records] != list(range(len(records))):
        problems.append(f"record sequence numbers are not 0..{len(records) - 1}: "
                        f"{[r['seq'] for r in records][:20]}...")
    unknown = [r for r in records if "unknown" in r["kind_name"]]
    if unknown:
        problems.append(f"{len(unknown)} records of unknown kind, first {unknown[0]}")
        records = [r for r in records if "unknown" not in r["kind_name"]]

    want = expected_records(run)
    got = _observed_records(records, timed=run.timed)
    for source in sorted(set(want) | set(got)):
        problems += _compare_source(run, source, want.get(source, []), got.get(source, []))

    model = run.result.counters | {"events": len(records), "events_lost": 0,
                                   "events_undeclared": 0}
    # Behind the ingress path: nothing is subscribed in these benches, so the book counts
    # nothing; the decoder counts known types at a wrong length.
    model |= dict.fromkeys(BOOK_COUNTERS, 0)
    # No orders in these benches: the risk gate, triggers, H2C, TX and the order-entry
    # return path count nothing.
    model |= {c: 0 for c in REGMAP.counters
              if c.startswith(("risk_", "trig_", "h2c_", "tx_", "oe_"))}
    model["itch_bad_length"] = sum(
        1 for d in run.result.delivered
        if chr(d.data[0]) in itch.LENGTHS and len(d.data) != itch.LENGTHS[chr(d.data[0])])
    if set(model) != set(REGMAP.counters):
        problems.append(f"counters the bench cannot predict: {set(REGMAP.counters) - set(model)};"
                        f" model counters not in the map: {set(model) - set(REGMAP.counters)}")
    for name in REGMAP.counters:
        # Counters are COUNTER_BITS wide and wrap: a gap to a corrupt sequence number can add
        # more than 2**48 to gap_messages.
        if name in model and counters[name] != model[name] % (1 << COUNTER_BITS):
            problems.append(f"counter {name}: model {model[name]} (mod 2**{COUNTER_BITS}: "
                            f"{model[name] % (1 << COUNTER_BITS)}), core {counters[name]}")
    return problems


def summary(result: IngressResult) -> str:
    """What a run exercised, for the log (a passing run should show it tested something)."""
    c = result.counters
    reasons = {r.name: c[r.counter] for r in DropReason if r is not DropReason.NONE
               and c[r.counter]}
    return (f"frames A/B {c['line_a_frames']}/{c['line_b_frames']}, messages {c['messages']} "
            f"(A {c['line_a_won']}, B {c['line_b_won']}), duplicates {c['duplicates']}, "
            f"gaps {c['gaps']}, invalidations {c['invalidations']}, heartbeats "
            f"{c['heartbeats']}, session mismatches {c['session_mismatch']}, drops {reasons}")


def line_frames(seen: Sequence[Seen]) -> list[LineFrame]:
    """The monitor's frames at the cycles they were on the bus (they must be contiguous)."""
    return [LineFrame(s.wire.data, s.first, s.wire.mac_error) for s in seen]

