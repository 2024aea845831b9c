"""The book engine (with the ITCH decoder in front) against the reference book model.

Small parameters (a 2-way table of a few dozen orders, a 64-level window, 4 slots) so that
collisions, capacity, window and level limits are hit by streams short enough for Amaranth's
simulator. Every BBO and TRADE event is compared in order, alerts as a set, and every
counter; the slots' final registers too.
"""

from __future__ import annotations

import os
import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hw.book.engine import COUNTERS, BookEngine
from hw.book.params import AlertReason, BookParams
from hw.events import EventKind
from hw.itch.decoder import ItchDecoder
from proto import itch
from sim.model.book import BookModel
from tests.book_streams import directory, hostile_stream

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"

SMALL = BookParams(slots=4, ways=2, orders=32, window=64, tick=100, fifo_depth=8)


class _Bench(wiring.Component):
    def __init__(self, params: BookParams):
        self.dec = ItchDecoder()
        self.eng = BookEngine(params)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dec = self.dec
        m.submodules.eng = self.eng
        wiring.connect(m, self.dec.decoded, self.eng.decoded)
        return m


def _name(s: str) -> int:
    return int.from_bytes(s.encode().ljust(8), "big")


def run_engine(params: BookParams, subs: list[tuple[int, str, int | None, int]],
               messages: list[bytes], *, spacing, gaps: dict[int, str] | None = None,
               resets: dict[int, int] | None = None, tail: int = 200,
               subscribe_at: dict[int, tuple[int, tuple[int, str, int | None, int]]]
               | None = None, cycles: dict[str, dict[int, int]] | None = None):
    """Drive ``messages`` (seq 1..n) with ``spacing(i)`` idle cycles after each; return the
    events (kind -> list of (aux, body dict)), counters and slot views. ``resets`` maps a
    seq to the idle cycle after it in which ``cmd_reset`` is strobed; ``subscribe_at`` a seq
    to (idle cycle, subscription) strobed with ``cmd_subscribe`` there. ``cycles``, if given,
    gets the cycle each message is presented in (``"sent"``, by seq) and the cycle each BBO
    event is seen in (``"bbo"``, by its ITCH seq)."""
    bench = _Bench(params)
    eng, dec = bench.eng, bench.dec
    events: dict[EventKind, list] = {k: [] for k in (EventKind.BBO, EventKind.TRADE,
                                                     EventKind.BOOK_ALERT)}
    counters = {c: 0 for c in COUNTERS}
    views = {}
    gaps = gaps or {}
    resets = resets or {}
    subscribe_at = subscribe_at or {}
    sources = {"ev_bbo": EventKind.BBO, "ev_trade": EventKind.TRADE,
               "ev_alert": EventKind.BOOK_ALERT, "ev_global": EventKind.BOOK_ALERT}
    done = []
    now = [0]
    if cycles is not None:
        cycles.update(sent={}, bbo={})

    def set_sub(ctx, slot, nm, loc, base):
        ctx.set(eng.sub_slot, slot)
        ctx.set(eng.sub_name, _name(nm))
        ctx.set(eng.sub_locate, loc or 0)
        ctx.set(eng.sub_direct, loc is not None)
        ctx.set(eng.sub_base, base)

    async def drive(ctx):
        for sub in subs:
            set_sub(ctx, *sub)
            ctx.set(eng.cmd_subscribe, 1)
            await ctx.tick()
            ctx.set(eng.cmd_subscribe, 0)
            await ctx.tick()
            while ctx.get(eng.busy):
                await ctx.tick()
        mp = dec.messages.payload
        for i, msg in enumerate(messages):
            seq = i + 1
            kind = gaps.get(seq)
            ctx.set(dec.gap, kind == "gap")
            ctx.set(dec.messages.valid, 1)
            ctx.set(mp.invalidate, kind == "invalidate")
            ctx.set(mp.seq, seq)
            ctx.set(mp.length, len(msg))
            ctx.set(mp.data, int.from_bytes(msg.ljust(64, b"\0"), "little"))
            if cycles is not None:
                cycles["sent"][seq] = now[0]
            await ctx.tick()
            if kind == "invalidate":      # the notice, then the message itself
                ctx.set(mp.invalidate, 0)
                ctx.set(dec.gap, 0)
                await ctx.tick()
            ctx.set(dec.gap, 0)
            ctx.set(dec.messages.valid, 0)
            at = subscribe_at.get(seq)
            for j in range(spacing(i)):
                ctx.set(eng.cmd_reset, resets.get(seq) == j)
                strobe = at is not None and at[0] == j
                if strobe:
                    set_sub(ctx, *at[1])
                ctx.set(eng.cmd_subscribe, strobe)
                await ctx.tick()
            ctx.set(eng.cmd_reset, 0)
            ctx.set(eng.cmd_subscribe, 0)
        for _ in range(tail):
            await ctx.tick()
        for slot in range(params.slots):
            ctx.set(eng.sub_slot, slot)
            await ctx.tick()
            await ctx.tick()
            views[slot] = {
                "bbo": (ctx.get(eng.view_bid_px), ctx.get(eng.view_bid_sz),
                        ctx.get(eng.view_ask_px), ctx.get(eng.view_ask_sz)),
                "stale": ctx.get(eng.view_stale), "volume": ctx.get(eng.view_volume),
                "notional": ctx.get(eng.view_notional),
                "last_px": ctx.get(eng.view_last_px), "last_sz": ctx.get(eng.view_last_sz),
            }
        done.append(True)

    async def monitor(ctx):
        sigs = [getattr(eng, n) for n in sources]
        incs = [getattr(eng, f"inc_{c}") for c in COUNTERS]
        async for vals in ctx.tick().sample(*(x for s in sigs for x in (s.valid, s.payload)),
                                            *incs):
            vals = vals[2:]
            now[0] += 1
            for j, kind in enumerate(sources.values()):
                if vals[2 * j]:
                    pl = vals[2 * j + 1]
                    body = getattr(pl.body, kind.name.lower())
                    events[kind].append((pl.aux, {f: getattr(body, f) for f in
                                                  _fields(kind)}))
                    if cycles is not None and kind == EventKind.BBO:
                        cycles["bbo"][body.itch_seq] = now[0]
            for c, v in zip(COUNTERS, vals[2 * len(sigs):], strict=True):
                counters[c] += v

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_process(monitor)
    sim.run_until(1e-8 * (len(messages) * 40 + 10_000 + tail * 10))
    assert done, "bench did not finish " + WHERE
    return events, counters, views


def _fields(kind: EventKind) -> list[str]:
    from hw.events import BODY_FIELDS
    return [n for n, _ in BODY_FIELDS[kind]]


def _norm(kind: EventKind, aux: int, fields: dict) -> tuple:
    f = dict(fields)
    if "symbol" in f and isinstance(f["symbol"], bytes):
        f["symbol"] = int.from_bytes(f["symbol"], "little")
    return (aux, tuple(sorted(f.items())))


def run_model(params, subs, messages, gaps=None, resets=None):
    model = BookModel(params)
    for slot, nm, loc, base in subs:
        model.subscribe(slot, nm, locate=loc, base=base)
    for i, msg in enumerate(messages):
        seq = i + 1
        kind = (gaps or {}).get(seq)
        if kind == "gap":
            model.gap(seq)
        elif kind == "invalidate":
            model.invalidate(seq)
        model.message(seq, msg)
        if seq in (resets or {}):
            model.reset()
    return model


def compare(params, subs, messages, *, spacing, gaps=None, resets=None, cycles=None):
    """Run the engine and the model on ``messages`` and assert they agree (events, counters,
    each slot's book and statistics); ``cycles`` is passed to :func:`run_engine`."""
    events, counters, views = run_engine(params, subs, messages, spacing=spacing, gaps=gaps,
                                         resets=resets, cycles=cycles)
    model = run_model(params, subs, messages, gaps, resets)
    want: dict[EventKind, list] = {k: [] for k in events}
    for e in model.events:
        want[e.kind].append(_norm(e.kind, e.aux, e.fields))
    got = {k: [_norm(k, a, f) for a, f in v] for k, v in events.items()}
    for kind in (EventKind.BBO, EventKind.TRADE):
        for i, (g, w) in enumerate(zip(got[kind], want[kind], strict=False)):
            assert g == w, f"{kind.name} #{i}: gateware {g} model {w} {WHERE}"
        assert len(got[kind]) == len(want[kind]), f"{kind.name} count {WHERE}"
    assert sorted(got[EventKind.BOOK_ALERT]) == sorted(want[EventKind.BOOK_ALERT]), WHERE
    for c in COUNTERS:
        if c == "book_fifo_overflow":
            continue
        assert counters[c] == model.counters[c], f"counter {c}: {counters[c]} vs " \
            f"{model.counters[c]} {WHERE}"
    for slot, _, _, _ in subs:
        st = model.stats(slot)
        v = views[slot]
        assert v["bbo"] == model.bbo(slot), f"slot {slot} {WHERE}"
        assert (v["stale"], v["volume"], v["notional"], v["last_px"], v["last_sz"]) == (
            st["stale"], st["volume"], st["notional"], st["last_px"], st["last_sz"]), WHERE
    return events, counters


SUBS = [(0, "AAA", None, 0), (1, "BBB", None, 0), (3, "DDD", 77, 0)]
SYMS = {"AAA": 11, "BBB": 12, "DDD": 77}
OTHERS = {"ZZZ": 99}


@pytest.mark.parametrize("spacing_name", ["sparse", "line_rate"])
def test_hostile_stream_against_model(spacing_name):
    rng = random.Random(SEED)
    msgs = hostile_stream(rng, 600, symbols=SYMS, others=OTHERS, window=SMALL.window)
    if spacing_name == "sparse":
        def spacing(i):
            return 12
    else:
        def spacing(i):
            return rng.choice((2, 3, 4))   # a 21-byte D is 2.6 beats on the wire
    events, counters = compare(SMALL, SUBS, msgs, spacing=spacing)
    # The stream must have reached every corner it is meant to.
    for c in ("book_unknown_ref", "book_add_live_ref", "book_clamped", "book_capacity",
              "book_window", "book_walks", "book_zero_add", "book_ref_range", "trades"):
        assert counters[c] > 0, f"{c} never happened {WHERE}"


def test_gaps_and_invalidations_mark_every_slot_stale():
    rng = random.Random(SEED + 1)
    msgs = hostile_stream(rng, 300, symbols=SYMS, others=OTHERS, window=SMALL.window)
    gaps = {100: "gap", 150: "invalidate", 200: "gap"}
    events, _ = compare(SMALL, SUBS, msgs, spacing=lambda i: 6, gaps=gaps)
    reasons = [a for a, _ in events[EventKind.BOOK_ALERT]]
    assert AlertReason.GAP in reasons and AlertReason.INVALIDATED in reasons, WHERE


def test_overflow_is_counted_and_marks_books_stale():
    """Back-to-back messages (one a cycle, faster than any line) overflow the op FIFO: each
    lost op is counted, and the loss reaches the host as a FIFO_OVERFLOW alert."""
    rng = random.Random(SEED + 2)
    msgs = hostile_stream(rng, 400, symbols=SYMS, others=OTHERS, window=SMALL.window)
    events, counters, views = run_engine(SMALL, SUBS, msgs, spacing=lambda i: 0)
    assert counters["book_fifo_overflow"] > 0, WHERE
    alerts = [(a, f["slot"]) for a, f in events[EventKind.BOOK_ALERT]]
    assert (AlertReason.FIFO_OVERFLOW, 0xFF) in alerts, WHERE
    for slot, _, _, _ in SUBS:
        assert views[slot]["stale"] & AlertReason.FIFO_OVERFLOW.bit, WHERE


def _add(ref: int, side: bytes, shares: int, price: int, loc: int = 11) -> bytes:
    return itch.encode("A", stock_locate=loc, tracking_number=0, timestamp=1, order_ref=ref,
                       side=side, shares=shares, stock=b"AAA     ", price=price)


def _replace(orig: int, new: int, shares: int, price: int, loc: int = 11) -> bytes:
    return itch.encode("U", stock_locate=loc, tracking_number=0, timestamp=1,
                       original_ref=orig, new_ref=new, shares=shares, price=price)


#: Slot 0 on AAA with a host base: the window is 10000..16300, so 20000 is outside it.
BASED = [(0, "AAA", 11, 10_000)]
OUTSIDE = 20_000


@pytest.mark.parametrize("case", ["best_empties", "best_unchanged"])
def test_replace_onto_a_live_reference_held_outside_the_window(case):
    """A U whose new reference is live but held outside the window ends with a removal step
    that touches no level. The BBO event must still compare the state before the U's first
    step with the state after its last: found by the cocotb fault stream (seed 23797692),
    where the engine compared against zeros, so it raised an event for an unchanged BBO, and
    missed one when the U emptied the best level."""
    msgs = [directory(11, "AAA"),
            _add(1, b"S", 70, OUTSIDE)]             # held, outside the window (WINDOW)
    if case == "best_empties":                      # the book empties: all zeros after
        msgs += [_add(2, b"S", 25, 12_000),         # the best ask
                 _replace(2, 1, 41, OUTSIDE)]       # best ask empties; new ref 1 is held
    else:                                           # a bid, so the BBO is not all zero
        msgs += [_add(3, b"B", 40, 11_000),
                 _add(4, b"S", 10, 12_000),         # the best ask
                 _add(2, b"S", 25, 13_000),         # below the best ask: no BBO change
                 _replace(2, 1, 41, OUTSIDE)]       # the BBO does not change
    for spacing in (lambda i: 12, lambda i: 0 if i < len(msgs) - 1 else 12):
        events, counters = compare(SMALL, BASED, msgs, spacing=spacing)
        assert counters["book_add_live_ref"] == 1 and counters["book_window"] == 2, WHERE
        bbo = [f for _, f in events[EventKind.BBO]]
        if case == "best_empties":
            assert (bbo[-1]["ask_px"], bbo[-1]["ask_sz"]) == (0, 0), WHERE
        else:
            assert (bbo[-1]["ask_px"], bbo[-1]["ask_sz"]) == (12_000, 10), WHERE


def _delete(ref: int, loc: int = 11) -> bytes:
    return itch.encode("D", stock_locate=loc, tracking_number=0, timestamp=1, order_ref=ref)


@pytest.mark.parametrize("live", ["next_best", "other_side", "none", "outside"])
def test_replace_that_empties_the_best_level(live):
    """The step that empties the best level publishes the next level at once and finds the
    level behind it afterwards (the refresh). A U waits with that refresh for its add, which
    never empties a level. When the U's new reference is live, though, its order is removed
    before the add, and that removal may empty the level that has just become the best
    (``next_best``): the waiting refresh must run first, or the best would move up to a
    next level nobody has found. ``other_side`` empties the other side's best in between.
    ``outside``: the U's add is outside the window, so the U ends in its second lookup, and
    the waiting refresh runs there. Deleting the levels one by one afterwards checks every
    next level the refreshes found."""
    new_ref = {"next_best": 2, "other_side": 4, "none": 9, "outside": 9}[live]
    msgs = [directory(11, "AAA"),
            _add(1, b"B", 10, 12_000),              # the best bid
            _add(2, b"B", 20, 11_900),              # the next bid
            _add(3, b"B", 30, 11_800),
            _add(4, b"S", 9, 13_000),               # the best ask
            _add(5, b"B", 7, 11_000),
            _add(6, b"S", 8, 13_500),
            _replace(1, new_ref, 41, OUTSIDE if live == "outside" else 11_700)]
    msgs += [_delete(r) for r in dict.fromkeys((2, 3, new_ref, 5, 4, 6))]
    for spacing in (lambda i: 12, lambda i: 0):
        events, counters = compare(SMALL, BASED, msgs, spacing=spacing)
        assert counters["book_add_live_ref"] == (new_ref != 9), WHERE
        bbo = [(f["bid_px"], f["bid_sz"], f["ask_px"]) for _, f in events[EventKind.BBO]]
        after_u = {"next_best": (11_800, 30, 13_000), "other_side": (11_900, 20, 13_500),
                   "none": (11_900, 20, 13_000), "outside": (11_900, 20, 13_000)}[live]
        assert after_u in bbo and bbo[-1] == (0, 0, 0), (bbo, WHERE)


@pytest.mark.parametrize("level", ["best", "below"])
def test_replace_that_overflows_a_level(level):
    """A U's event is predicted from the slot state while its add is still to be applied; when
    that add saturates the best level, the event must carry the LEVEL_OVERFLOW alert's stale
    flag, which the add's APPLY raises only a cycle later. ``below``: the add saturates a
    level behind the best, so the BBO does not change and no event is raised."""
    px = 12_000 if level == "best" else 11_500
    msgs = [directory(11, "AAA"),
            _add(1, b"B", 0xFFFF_FF00, px),
            _add(2, b"B", 10, 11_000),
            _add(4, b"S", 5, 13_000),
            _add(5, b"B", 3, 12_100 if level == "below" else 10_000),
            _replace(2, 3, 0x1000, px)]
    for spacing in (lambda i: 12, lambda i: 0):
        events, counters = compare(SMALL, BASED, msgs, spacing=spacing)
        assert counters["book_level_overflow"] == 1, WHERE
        last = events[EventKind.BBO][-1][1]
        if level == "best":
            assert (last["itch_seq"], last["bid_sz"], last["flags"] & 1) == (
                len(msgs), 0xFFFF_FFFF, 1), (last, WHERE)
        else:
            assert last["itch_seq"] < len(msgs), (last, WHERE)


@pytest.mark.parametrize("then", ["D", "E", "U"])
def test_order_added_outside_the_window_is_found_by_the_next_op(then):
    """An add outside the window takes no step: it writes its table set in LOOKUP, in the
    very cycle the next op (queued behind it) reads that set. The read must see the write,
    or the next op on the same reference finds it unknown: found by the cocotb fault stream
    (seed 184717252, ``book_unknown_ref`` one too many)."""
    nxt = {"D": itch.encode("D", stock_locate=11, tracking_number=0, timestamp=1, order_ref=1),
           "E": itch.encode("E", stock_locate=11, tracking_number=0, timestamp=1, order_ref=1,
                            executed_shares=5, match_number=7),
           "U": _replace(1, 2, 9, 12_000)}[then]
    msgs = [directory(11, "AAA"), _add(1, b"S", 70, OUTSIDE), nxt]
    # Back to back: the second op waits in the FIFO while the add is looked up.
    events, counters = compare(SMALL, BASED, msgs, spacing=lambda i: 0 if i < 2 else 12)
    assert counters["book_unknown_ref"] == 0 and counters["book_window"] == 1, WHERE


@pytest.mark.parametrize("delay", [0, 1, 2, 3])
def test_reset_right_after_an_alert_clears_it(delay):
    """A slot alert reaches the slot's stale bits a cycle after it is raised, from a
    register. A reset queued right behind the alerting add (a capacity alert: the add ends
    in LOOKUP) is taken in the alert's own cycle for one of these delays; it comes after the
    message, so the slot must end the day's reset not stale, as in the model."""
    same = [r for r in range(1, 4096) if SMALL.set_of(r) == SMALL.set_of(1)][:SMALL.ways + 1]
    msgs = [_add(r, b"B", 10, 10_000 + 100 * k) for k, r in enumerate(same)]
    msgs.append(_add(4000, b"S", 5, 12_000))
    events, counters = compare(SMALL, BASED, msgs, spacing=lambda i: 40,
                               resets={len(same): delay})
    assert counters["book_capacity"] == 1, WHERE


def test_book_message_right_behind_its_directory_message():
    """The directory's name compare runs a cycle after the decoder's register, so the slot
    learns its locate a cycle later than the message after the R may arrive: back to back
    (one message a cycle, faster than any line), that message must still reach the slot."""
    subs = [(0, "AAA", None, 0), (2, "CCC", None, 0)]
    msgs = [directory(11, "AAA"), _add(1, b"S", 70, 12_000),
            directory(13, "CCC"), _add(2, b"B", 5, 9_000, loc=13), _add(3, b"S", 6, 9_100, loc=13),
            _add(4, b"B", 9, 11_000)]
    for spacing in (lambda i: 0, lambda i: 12):
        events, counters = compare(SMALL, subs, msgs, spacing=spacing)
        assert counters["directory_matches"] == 2 and len(events[EventKind.BBO]) == 4, WHERE


def test_subscribe_around_its_directory_message():
    """A subscription strobed in each cycle around its R: applied up to the R's cycle at
    the front (the name compare is a cycle later), the R gives it the locate; applied
    after, it waits for another R. The book must always be one of the model's two —
    subscribed before the R or after it, never a mixture — switching once, from before to
    after, as the strobe moves later."""
    msgs = [directory(99, "ZZZ"), directory(11, "AAA"), _add(1, b"S", 70, 12_000),
            _add(2, b"B", 9, 11_000)]
    sub = (0, "AAA", None, 0)

    def subscribed_before(first: int) -> BookModel:
        """The model with ``sub`` taken just before message ``first``."""
        model = BookModel(SMALL)
        for seq, msg in enumerate(msgs, start=1):
            if seq == first:
                model.subscribe(sub[0], sub[1], locate=sub[2], base=sub[3])
            model.message(seq, msg)
        return model

    before, after = subscribed_before(2), subscribed_before(3)     # the R is message 2
    assert before.bbo(0) != after.bbo(0)
    gap = {0: 4, 1: 6}
    outcomes = []
    for at in [(1, j) for j in range(gap[0])] + [(2, j) for j in range(gap[1])]:
        events, counters, views = run_engine(
            SMALL, [], msgs, spacing=lambda i: gap.get(i, 2),
            subscribe_at={at[0]: (at[1], sub)})
        got = views[0]["bbo"]
        assert got in (before.bbo(0), after.bbo(0)), f"strobe {at}: {got} {WHERE}"
        outcomes.append("before" if got == before.bbo(0) else "after")
        assert counters["directory_matches"] == (got == before.bbo(0)), f"strobe {at}"
    flips = sum(x != y for x, y in zip(outcomes, outcomes[1:], strict=False))
    assert outcomes[0] == "before" and outcomes[-1] == "after" and flips == 1, outcomes


def _valid_day(rng: random.Random, n: int) -> list[bytes]:
    """``n`` book messages on AAA that break no rule and fit SMALL's table and BASED's
    window: adds, executions (with and without price), cancels, deletes and replaces, each
    on a live order; a set never holds more live orders than it has ways."""
    live: dict[int, tuple[bytes, int]] = {}       # ref -> (side, shares)
    fresh = iter(range(1, 1 << 20))
    per_set: dict[int, int] = {}

    def new_ref() -> int:
        while True:
            r = next(fresh)
            if per_set.get(SMALL.set_of(r), 0) < SMALL.ways:
                per_set[SMALL.set_of(r)] = per_set.get(SMALL.set_of(r), 0) + 1
                return r

    def drop(r: int) -> None:
        del live[r]
        per_set[SMALL.set_of(r)] -= 1

    def price(side: bytes) -> int:    # bids below asks, the window is 10000..16300
        return (10_000 if side == b"B" else 13_200) + 100 * rng.randrange(31)

    msgs = [directory(11, "AAA")]
    for _ in range(n):
        kind = "A" if len(live) < 4 else rng.choice("AAEECXDUUU" if len(live) < 12 else "EXDU")
        if kind == "A":
            side = rng.choice((b"B", b"S"))
            r = new_ref()
            live[r] = (side, rng.randrange(1, 500))
            msgs.append(_add(r, side, live[r][1], price(side)))
            continue
        r = rng.choice(sorted(live))
        side, shares = live[r]
        if kind == "U":
            r2 = new_ref()
            drop(r)
            live[r2] = (side, rng.randrange(1, 500))
            msgs.append(_replace(r, r2, live[r2][1], price(side)))
        elif kind == "D":
            drop(r)
            msgs.append(_delete(r))
        else:
            k = rng.randrange(1, shares + 1)
            live[r] = (side, shares - k)
            if shares == k:
                drop(r)
            fields = dict(stock_locate=11, tracking_number=0, timestamp=1, order_ref=r)
            if kind == "X":
                msgs.append(itch.encode("X", **fields, cancelled_shares=k))
            elif kind == "E":
                msgs.append(itch.encode("E", **fields, executed_shares=k, match_number=1))
            else:
                msgs.append(itch.encode("C", **fields, executed_shares=k, match_number=1,
                                        printable=b"Y", execution_price=12_000))
    return msgs


def test_bbo_latency_is_one_constant():
    """Every message that breaks no rule raises its BBO event the same number of cycles after
    the decoder presents it, whatever its type and whatever it does to the book: a U (two
    steps: its add is looked up while its removal is applied, and its event predicted from
    the slot state) as fast as a D, an emptied best level as fast as an add. Messages 40
    cycles apart, so each finds the book idle; the book checked against the model as well."""
    rng = random.Random(SEED + 3)
    msgs = _valid_day(rng, 400)
    cycles: dict[str, dict[int, int]] = {}
    _, counters = compare(SMALL, BASED, msgs, spacing=lambda i: 40, cycles=cycles)
    for c in ("book_unknown_ref", "book_add_live_ref", "book_capacity", "book_window",
              "book_clamped", "book_level_overflow"):
        assert counters[c] == 0, f"{c}: the stream broke a rule {WHERE}"
    assert counters["book_walks"] > 0, WHERE
    by_type: dict[str, set[int]] = {}
    for seq, at in cycles["bbo"].items():
        by_type.setdefault(chr(msgs[seq - 1][0]), set()).add(at - cycles["sent"][seq])
    assert set(by_type) >= set("AECXDU"), (by_type, WHERE)
    assert len(set().union(*by_type.values())) == 1, (by_type, WHERE)
