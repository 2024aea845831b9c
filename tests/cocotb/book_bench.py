"""cocotb tests of the market-data back end on the whole core: ingress, ITCH decoder and book,
on the core's generated Verilog, against the book's reference model (:mod:`sim.model.book`).

Run by ``tests/test_cocotb_core.py`` (cocotb's runner, Verilator) next to
``tests/cocotb/ingress_bench.py``, on the same build of the core. Each test resets the core.

* :func:`book_day_against_model` — a generated day (:func:`sim.feed.synth.generate_day`) as
  MoldUDP64 frames on line A and, a few cycles later, the same frames on line B, with idle
  cycles on both lines and backpressure on C2H; 8 symbols subscribed by name through the CSRs.
  The BBO and TRADE records equal the model's event for event and field for field, the BBO
  rows equal itch-book's (an independent C++ book builder), and the slot registers read at the
  end equal the model's books. The decoder's per-type counters are checked too.
* :func:`book_fault_stream` — the hostile stream of :mod:`tests.book_streams` (adds onto live
  references, unknown and retired references, over-sized executions, zero adds, saturated
  levels, references past 2**40, off-grid and out-of-window prices, lying locates) with
  symbols subscribed through the directory, directly by locate and with a host window base,
  and one packet lost on both lines (a real gap: every book goes stale). BBO, TRADE and
  BOOK_ALERT records, every book counter and the slots' registers equal the model's.

What this bench adds to ``tests/test_core_book.py`` (the same comparison on the Python
harness) is the real bus protocols: AXI-Lite subscriptions and register reads, RX idle cycles
that split messages over stalled beats, two lines racing, and a host that stalls C2H.

Records are compared per event kind (the collector interleaves its sources, so only each
kind's own order is the model's business). Timestamps are not compared: the model has no
cycles. ``WIRESPEED_SEED`` replays a run; the seed is printed either way.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator, Sequence

import cocotb
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, RisingEdge, gather

from host.replay import DEFAULT_FEED, DEFAULT_SESSION
from hw.book.params import BookParams
from hw.events import BODY_FIELDS, EventKind
from hw.regmap import EVENT_MASK_RESET
from proto import itch, moldudp64
from sim.feed.frames import parse_udp_frame
from sim.feed.pcap import dayfile_to_frames
from sim.feed.synth import DEFAULT_SYMBOLS, generate_day
from sim.model import itchbook
from sim.model.book import BOOK_COUNTERS, BookModel
from sim.model.ingress import Line
from tests.book_streams import hostile_stream
from tests.cocotb.core_tb import CoreTB, _padded, assert_agrees
from tests.cocotb.ingress_bench import _coin, _field
from tests.cocotb.traffic import Wire

SEED = int(os.environ.get("WIRESPEED_SEED") or random.randrange(1 << 30))
#: The core's book is built with the default parameters (hw/top.py).
PARAMS = BookParams()
#: Messages of the generated day: a few hundred frames, ~50 k cycles on the bus.
DAY_MESSAGES = 8000
#: Book messages of the hostile stream (after its directory and corner prelude).
FAULT_MESSAGES = 3000
#: Probability of an idle cycle on an RX line while it is the slower (or faster) one of the
#: two, cycles between swaps, and probability of a C2H stall.
RX_IDLE_SLOW = 0.35
RX_IDLE_FAST = 0.05
RACE_PHASE = 3000
C2H_STALL = 0.4
#: Line B starts this many cycles after line A (drawn per run).
B_DELAY = (1, 24)
#: Event kinds the book raises; each is compared in its own order.
BOOK_KINDS = (EventKind.BBO, EventKind.TRADE, EventKind.BOOK_ALERT)
#: A book command (subscribe: 2·window/32 cycles of clearing) ends well within this many polls.
BUSY_POLLS = 1000
TIMEOUT_MS = 20


def _rng(test: str) -> random.Random:
    return random.Random(f"{SEED}/{test}")


# -- host side: subscriptions and slot registers (the write sequence of host/card.py) ---------
async def book_command(tb: CoreTB, what: str) -> None:
    """Pulse ``book_cmd.<what>`` and wait until ``book_status.busy`` drops."""
    await tb.write("book_cmd", _field("book_cmd", what))
    for _ in range(BUSY_POLLS):
        if not await tb.read("book_status") & _field("book_status", "busy"):
            return
    raise AssertionError(f"book_cmd.{what} still busy after {BUSY_POLLS} polls")


async def subscribe(tb: CoreTB, slot: int, name: str, *, locate: int | None = None,
                    base: int = 0) -> None:
    """``Card.subscribe`` over AXI-Lite: ``locate`` given = ``sub_locate.direct``."""
    raw = int.from_bytes(name.encode("ascii").ljust(8, b" "), "big")
    await tb.write("sub_slot", slot)
    await tb.write("sub_name_hi", raw >> 32)
    await tb.write("sub_name_lo", raw & 0xFFFF_FFFF)
    await tb.write("sub_locate", 0 if locate is None
                   else _field("sub_locate", "direct") | (locate & 0xFFFF))
    await tb.write("sub_base", base)
    await book_command(tb, "subscribe")


async def read_slot(tb: CoreTB, slot: int) -> dict:
    """The slot_* registers of ``slot``, in the shape of :meth:`BookModel.stats` plus ``bbo``.
    The 64-bit pairs are read ``_lo`` first (it latches ``_hi``)."""
    await tb.write("sub_slot", slot)
    status = await tb.read("slot_status")
    out = {"active": bool(status & _field("slot_status", "active")),
           "locate_known": bool(status & _field("slot_status", "locate_known")),
           "stale": (status & _field("slot_status", "stale")) >> 8,
           "locate": await tb.read("slot_locate"), "base": await tb.read("slot_base"),
           "last_px": await tb.read("slot_last_px"), "last_sz": await tb.read("slot_last_sz")}
    out["bbo"] = tuple([await tb.read(f"slot_{n}") for n in
                        ("bid_px", "bid_sz", "ask_px", "ask_sz")])
    for wide in ("volume", "notional"):
        low = await tb.read(f"slot_{wide}_lo")
        out[wide] = low | await tb.read(f"slot_{wide}_hi") << 32
    return out


# -- traffic ------------------------------------------------------------------------------------
def mold_frames(messages: Sequence[bytes], **kwargs) -> list[Wire]:
    """The messages as one MoldUDP64 feed line (sequence numbers from 1, an end-of-session
    packet last), addressed to the feed the core's filter 0 accepts. Frame times are dropped:
    the bench sends frames back to back (with idle cycles)."""
    return [Wire(f.data) for f in dayfile_to_frames(iter(messages), DEFAULT_SESSION,
                                                    DEFAULT_FEED, end_of_session=True,
                                                    **kwargs)]


def _racing(rng: random.Random, *, slow_first: bool) -> Iterator[bool]:
    """Idle cycles for one of two lines that race: the lines swap roles (slower, faster)
    every ``RACE_PHASE`` cycles (the first phase is half as long, so the lead swings from one
    line to the other rather than from level to one line), so each takes the lead in turn, by
    a few frames, and the sequencer sees both lines win, heads meet and copies arrive late.
    Within a phase the idle cycles are random, as :func:`~tests.cocotb.ingress_bench._coin`
    draws them."""
    slow, phase = slow_first, RACE_PHASE // 2
    while True:
        coin = _coin(rng, RX_IDLE_SLOW if slow else RX_IDLE_FAST)
        for _ in range(phase):
            yield next(coin)
        slow, phase = not slow, RACE_PHASE


async def run_lines(tb: CoreTB, rng: random.Random, a: Sequence[Wire],
                    b: Sequence[Wire]) -> int:
    """Line A's frames, then (``B_DELAY`` cycles later) line B's, the two racing
    (:func:`_racing`), and a stalling C2H sink; returns, with B's delay, when the core is
    quiet."""
    tb.rx[Line.A].set_pause_generator(_racing(rng, slow_first=True))
    tb.rx[Line.B].set_pause_generator(_racing(rng, slow_first=False))
    tb.c2h.set_pause_generator(_coin(rng, C2H_STALL))
    delay = rng.randint(*B_DELAY)

    async def line(which: Line, frames: Sequence[Wire], after: int) -> None:
        if after:
            await ClockCycles(tb.dut.clk, after)
        for w in frames:
            await tb.send(which, w)

    await RisingEdge(tb.dut.clk)
    await gather(line(Line.A, a, 0), line(Line.B, b, delay))
    await tb.drain()
    return delay


# -- the check ----------------------------------------------------------------------------------
def _model_events(model: BookModel, kind: EventKind) -> list[dict]:
    return [{"aux": e.aux} | _padded(kind, e.fields) for e in model.events if e.kind is kind]


def _core_events(records: Sequence[dict], kind: EventKind) -> list[dict]:
    return [{"aux": r["aux"]} | _padded(kind, {n: r[n] for n, _ in BODY_FIELDS[kind]})
            for r in records if r["kind_name"] == kind.name]


def _compare(what: str, want: Sequence, got: Sequence) -> list[str]:
    """The first difference of two sequences (with two neighbours) and a length mismatch."""
    problems = []
    for k, (a, b) in enumerate(zip(want, got, strict=False)):
        if a != b:
            lines = [f"{what} #{k} differs"]
            if isinstance(a, dict) and isinstance(b, dict):
                diff = {n: (a.get(n), b.get(n)) for n in a.keys() | b.keys()
                        if a.get(n) != b.get(n)}
                lines[0] += f" in {diff} (reference, core)"
            for j in range(k, min(k + 3, max(len(want), len(got)))):
                lines.append(f"  reference #{j}: {want[j] if j < len(want) else '-'}")
                lines.append(f"  core      #{j}: {got[j] if j < len(got) else '-'}")
            problems.append("\n".join(lines))
            break
    if len(want) != len(got):
        extra = want[len(got)] if len(want) > len(got) else got[len(want)]
        problems.append(f"{what}: reference has {len(want)}, core {len(got)}; first unmatched: "
                        f"{extra}")
    return problems


def check_book(model: BookModel, records: Sequence[dict], counters: dict[str, int],
               slots: dict[int, dict]) -> list[str]:
    """Every difference between the core and the book model: no record lost, each book event
    kind record for record, every book counter, and the registers of the subscribed slots."""
    problems: list[str] = []
    if [r["seq"] for r in records] != list(range(len(records))):
        problems.append("record sequence numbers have holes (records lost)")
    if counters["events_lost"]:
        problems.append(f"events_lost = {counters['events_lost']}")
    for kind in BOOK_KINDS:
        problems += _compare(f"{kind.name} record", _model_events(model, kind),
                             _core_events(records, kind))
    for name in BOOK_COUNTERS:
        if counters[name] != model.counters[name]:
            problems.append(f"counter {name}: model {model.counters[name]}, core "
                            f"{counters[name]}")
    for slot, got in slots.items():
        want = model.stats(slot) | {"bbo": model.bbo(slot)}
        diff = {n: (want[n], got.get(n)) for n in want if want[n] != got.get(n)}
        if diff:
            problems.append(f"slot {slot} registers differ in {diff} (model, core)")
    return problems


def _book_summary(model: BookModel) -> str:
    kinds = Counter(e.kind.name for e in model.events)
    nonzero = {n: v for n, v in model.counters.items() if v}
    return f"events {dict(kinds)}, counters {nonzero}"


# -- tests --------------------------------------------------------------------------------------
@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def book_day_against_model(dut: HierarchyObject) -> None:
    """A generated day on two racing lines: BBO and TRADE records equal the model's and
    itch-book's, counters and slot registers equal the model's."""
    rng = _rng("book_day_against_model")
    tb = CoreTB(dut)
    tb.log.info("seed %d (rerun with WIRESPEED_SEED=%d)", SEED, SEED)
    await tb.reset()
    await tb.configure([(DEFAULT_FEED.ip, DEFAULT_FEED.port)], EVENT_MASK_RESET)
    symbols = list(DEFAULT_SYMBOLS)
    for slot, name in enumerate(symbols):
        await subscribe(tb, slot, name)
    day = generate_day(DAY_MESSAGES, symbols=symbols, seed=rng.randrange(1 << 30))
    frames = mold_frames(day)
    delay = await run_lines(tb, rng, frames, frames)

    model = BookModel(PARAMS)
    for slot, name in enumerate(symbols):
        model.subscribe(slot, name)
    for seq, msg in enumerate(day, 1):
        model.message(seq, msg)
    records = tb.records()
    counters = await tb.read_counters()
    slots = {slot: await read_slot(tb, slot) for slot in range(len(symbols))}
    tb.log.info("%d messages in %d frames per line, B %d cycles behind; A won %d, B won %d; "
                "op FIFO peak %d; %s", len(day), len(frames), delay, counters["line_a_won"],
                counters["line_b_won"], await tb.read("book_fifo_max"), _book_summary(model))

    problems = check_book(model, records, counters, slots)
    ingress = {"messages": len(day), "gaps": 0, "frames_dropped": 0, "invalidations": 0}
    problems += [f"counter {n}: expected {v}, core {counters[n]}" for n, v in ingress.items()
                 if counters[n] != v]
    # The decoder's view of the day: every delivered message counted under its type.
    types = Counter(chr(m[0]) for m in day)
    problems += [f"counter itch_{itch.MESSAGES[c].name}: day has {types[c]}, core "
                 f"{counters[f'itch_{itch.MESSAGES[c].name}']}" for c in itch.TYPE_CODES
                 if counters[f"itch_{itch.MESSAGES[c].name}"] != types[c]]
    # itch-book knows nothing of this project: its BBO changes must be the core's BBO rows.
    want_rows, _ = itchbook.bbo_changes(day, symbols)
    got_rows = [(r["itch_seq"], r["symbol"].decode().rstrip(), r["bid_px"], r["bid_sz"],
                 r["ask_px"], r["ask_sz"]) for r in records if r["kind_name"] == "BBO"]
    problems += _compare("BBO row (reference: itch-book)", want_rows, got_rows)
    if not problems:
        assert model.counters["bbo_updates"] > 500 and model.counters["trades"] > 100, \
            f"the day exercised too little: {_book_summary(model)}"
        assert counters["line_a_won"] and counters["line_b_won"], \
            "one line won every message: the race was not tested"
    assert_agrees(problems, "book_day_against_model", SEED)


#: The hostile stream's symbols (name -> locate) and how each is subscribed: (slot, name,
#: direct locate or None for the directory, whether the host sets a window base). Slot 9 waits
#: for a name the directory never announces; OTHER symbols are in the feed but not subscribed.
FAULT_SYMBOLS = {"AAA": 11, "BBB": 12, "CCC": 300, "DDD": 77, "EEE": 4000, "FFF": 5}
FAULT_OTHERS = {"ZZZ": 99, "YYY": 7}
FAULT_SUBS = ((0, "AAA", None, False), (1, "BBB", None, True), (2, "CCC", None, False),
              (5, "DDD", 77, False), (17, "EEE", 4000, True), (63, "FFF", 5, False),
              (9, "NOSUCH", None, False))


def _tight_base(messages: Sequence[bytes], locate: int, tick: int, window: int) -> int:
    """A host window base that puts the locate's first add near the *top* of the window, so
    that prices above it fall out (``WINDOW``) where the automatic base would centre it."""
    for m in messages:
        if m[:1] in (b"A", b"F") and int.from_bytes(m[1:3], "big") == locate:
            price = int.from_bytes(m[32:36], "big")
            if price:
                k = min(price // tick, window - 8)
                return max(price - k * tick, tick)
    return tick


@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def book_fault_stream(dut: HierarchyObject) -> None:
    """The hostile stream, subscribed by directory, by locate and with a host base, one packet
    lost on both lines: book records, counters and slot registers equal the model's."""
    rng = _rng("book_fault_stream")
    tb = CoreTB(dut)
    tb.log.info("seed %d (rerun with WIRESPEED_SEED=%d)", SEED, SEED)
    await tb.reset()
    await tb.configure([(DEFAULT_FEED.ip, DEFAULT_FEED.port)], EVENT_MASK_RESET)
    # Prices stay within a 64-tick band around each symbol's centre (so none goes negative);
    # the core's window is 1024 levels, so WINDOW comes from off-grid prices, the prelude's
    # far price and the host bases.
    messages = hostile_stream(rng, FAULT_MESSAGES, symbols=FAULT_SYMBOLS, others=FAULT_OTHERS,
                              tick=PARAMS.tick, window=64)
    subs = [(slot, name, locate,
             _tight_base(messages, FAULT_SYMBOLS[name], PARAMS.tick, PARAMS.window)
             if based else 0) for slot, name, locate, based in FAULT_SUBS]
    for slot, name, locate, base in subs:
        await subscribe(tb, slot, name, locate=locate, base=base)
    # Small packets (many frames), and one of them lost on both lines three quarters in.
    frames = mold_frames(messages, max_messages=rng.randint(2, 12))
    lost = rng.randrange(3 * len(frames) // 4, len(frames) - 2)
    wires = frames[:lost] + frames[lost + 1:]
    delay = await run_lines(tb, rng, wires, wires)

    # The lost packet's messages: the ones between its neighbours' sequence numbers.
    first_seq = [_first_seq(w) for w in frames]
    gap_at = first_seq[lost + 1]
    model = BookModel(PARAMS)
    for slot, name, locate, base in subs:
        model.subscribe(slot, name, locate=locate, base=base)
    for seq, msg in enumerate(messages, 1):
        if seq == gap_at:
            model.gap(seq)
        if not first_seq[lost] <= seq < gap_at:
            model.message(seq, msg)
    records = tb.records()
    counters = await tb.read_counters()
    slots = {slot: await read_slot(tb, slot) for slot, *_ in subs}
    tb.log.info("%d messages in %d frames per line (frame %d lost: seq %d..%d), B %d cycles "
                "behind; op FIFO peak %d; %s", len(messages), len(wires), lost,
                first_seq[lost], gap_at - 1, delay, await tb.read("book_fifo_max"),
                _book_summary(model))

    problems = check_book(model, records, counters, slots)
    if counters["gaps"] != 1:
        problems.append(f"counter gaps: expected 1, core {counters['gaps']}")
    if not problems:
        missed = [c for c in ("book_unknown_ref", "book_add_live_ref", "book_clamped",
                              "book_window", "book_walks", "book_zero_add", "book_ref_range",
                              "book_level_overflow", "directory_matches", "trades")
                  if not model.counters[c]]
        assert not missed, f"the stream never reached {missed}: {_book_summary(model)}"
    assert_agrees(problems, "book_fault_stream", SEED)


def _first_seq(w: Wire) -> int:
    """The sequence number in a frame's MoldUDP64 header."""
    udp = parse_udp_frame(w.data)
    assert udp is not None, "not a UDP frame"
    return moldudp64.unpack_packet(udp.payload)[1]
