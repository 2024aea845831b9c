"""The Sequencer alone against the reference sequencer (sim/model/ingress.py), cycle for cycle.

The integration tests (tests/test_core_sim.py) reach the sequencer only through two line
parsers, so what arrives at it is what well-formed frames produce. Here its entry FIFOs are
driven directly with hostile streams of packets on two lines: copies that race or lag, numbers
that jump back and forward by any amount (past 2**48 too), heartbeats and end-of-session
packets that announce gaps, headers of another session, frames found bad after some of their
messages left (squashed or not, end markers alone or riding on a message), and sequence resets.
Every output is compared with the model: each delivered message and invalidation (cycle, line,
numbers, bytes), each GAP, INVALIDATE, SESSION and END_OF_SESSION event with every field, and
every counter the sequencer drives.
"""

from __future__ import annotations

import os
import random

import pytest
from amaranth.sim import Simulator

from hw.events import BODY_FIELDS, EventKind
from hw.ingress.layouts import Entry
from hw.ingress.reasons import DropReason
from hw.ingress.sequencer import Sequencer
from proto import moldudp64
from sim.model.ingress import (
    SEQ_MASK,
    Delivered,
    Invalidation,
    Item,
    ItemKind,
    Msg,
    PacketHeader,
)
from sim.model.ingress import Sequencer as ModelSequencer

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"

SESSION = b"WIRESPEED1"
OTHER = b"OTHERSESS1"
#: The counters the Sequencer drives (``inc_<name>``), as the model names them.
COUNTERS = ("messages", "duplicates", "gaps", "gap_messages", "heartbeats", "end_of_session",
            "session_mismatch", "invalidations", "invalidated_messages", "line_a_won",
            "line_b_won")
BAD = [r for r in DropReason if r is not DropReason.NONE]


def _frames(rng: random.Random, n_packets: int) -> list[tuple]:
    """The publisher's packets as ``(kind, seq, count, messages)``, ``kind`` one of
    ``"data"``, ``"hb"`` (heartbeat) and ``"eos"`` (end of session); each line's copy gets its
    own fate in :func:`_line`. Starts anywhere from 1 to 40 below the top of the 64-bit space,
    so some runs wrap."""
    seq = rng.choice([1, 1, 1000, (1 << 48) - 3, (1 << 64) - 40])
    packets = []
    for _ in range(n_packets):
        r = rng.random()
        if r < 0.08:
            packets.append(("hb", seq, moldudp64.HEARTBEAT_COUNT, []))
        elif r < 0.10:
            packets.append(("eos", seq, moldudp64.END_OF_SESSION_COUNT, []))
        else:
            n = rng.randint(1, 5)
            msgs = [bytes(rng.getrandbits(8) for _ in range(rng.randint(12, 64)))
                    for _ in range(n)]
            packets.append(("data", seq, n, msgs))
            seq = (seq + n) & SEQ_MASK
        if rng.random() < 0.05:     # the publisher skips numbers: a real gap on both lines
            seq = (seq + rng.choice([1, 2, 7, 1 << 20, 1 << 50])) & SEQ_MASK
    return packets


def _line(rng: random.Random, packets, start: int, p_drop: float,
          far: bool) -> list[tuple]:
    """One line's copy of ``packets``: dropped, delayed, corrupted, found bad, mismatched.
    ``far``: a corrupt number may be anywhere (a forward one then makes the rest of the run
    old numbers); otherwise it is a few away from the true one."""
    out: list[tuple] = []
    t = start
    for _kind, seq, count, msgs in packets:
        if rng.random() < p_drop:
            continue
        t += rng.choice([0, 0, 1, 2, 5, 20])
        session = OTHER if rng.random() < 0.03 else SESSION
        if rng.random() < 0.02:     # a corrupt number, backwards or forwards
            seq = (rng.getrandbits(64) if far and rng.random() < 0.3
                   else seq + rng.randint(-40, 40)) & SEQ_MASK
        hdr = Item(ItemKind.HEADER, 0, 0, PacketHeader(session, seq, count, 0))
        items = [hdr] + [Item(ItemKind.MESSAGE, 0, 0, Msg((seq + i) & SEQ_MASK, i, m, 0))
                         for i, m in enumerate(msgs)]
        bad = rng.random() < 0.12
        reason = rng.choice(BAD) if bad else DropReason.NONE
        alone = bad and rng.random() < 0.5 or rng.random() < 0.3
        if alone:
            items.append(Item(ItemKind.END, 0, 0, None, end=True, reason=reason))
        else:
            last = items[-1]
            items[-1] = Item(last.kind, 0, 0, last.payload, end=True, reason=reason)
        # Arrivals: one entry per cycle at most, sometimes back to back.
        times = []
        for _ in items:
            t += rng.choice([1, 1, 1, 2, 3])
            times.append(t)
        if alone:   # bytes after the last message (padding, a count that lies): a later end
            times[-1] += rng.choice([0, 0, 3, 10, 30])
            t = times[-1]
        # A bad frame is known bad from its end beat on (the parser's verdict); an item that
        # carries a bad end marker is squashed by then (the hardware's contract).
        squash = times[-1] if bad else None
        out += [(at, item, squash) for at, item in zip(times, items, strict=True)]
    return out


def _entry(item: Item) -> dict:
    """The item as the parser writes it into its FIFO (the ``Entry`` layout's fields)."""
    fields = {"item": item.kind is not ItemKind.END, "header": item.kind is ItemKind.HEADER,
              "end": item.end, "bad": item.bad, "reason": int(item.reason)}
    if isinstance(item.payload, PacketHeader):
        fields |= {"seq": item.payload.seq, "count": item.payload.count,
                   "data": int.from_bytes(item.payload.session, "little")}
    elif isinstance(item.payload, Msg):
        fields |= {"seq": item.payload.seq, "length": len(item.payload.data),
                   "data": int.from_bytes(item.payload.data, "little")}
    return fields


def _event(payload) -> tuple:
    """A source payload (as ``ctx.get`` returns it) as ``(kind, line, aux, fields)``, the
    body read through the layout of its kind; ``S`` fields as bytes, as the model has them."""
    kind = EventKind(payload.kind)
    body = getattr(payload.body, kind.name.lower())
    fields = {}
    for name, code in BODY_FIELDS[kind]:
        v = int(getattr(body, name))
        fields[name] = v.to_bytes(int(code[1:]), "little") if code[0] == "S" else v
    return kind, int(payload.line), int(payload.aux), fields


def _random_lines(rng: random.Random, n_packets: int, p_drop: float,
                  far: bool) -> tuple[list[tuple], list[tuple]]:
    """One publisher's packets as two lines' FIFO entries, each line with its own fate."""
    packets = _frames(rng, n_packets)
    return (_line(rng, packets, 0, p_drop, far),
            _line(rng, packets, rng.randint(0, 30), p_drop, far))


def _run(rng: random.Random, n_packets: int, p_drop: float, resets: int,
         far: bool = False) -> ModelSequencer:
    """Random lines and ``resets`` sequence resets at random cycles, through :func:`_compare`."""
    a, b = _random_lines(rng, n_packets, p_drop, far)
    return _compare(a, b, set(rng.sample(range(_end(a, b)), resets)))


def _end(a: list[tuple], b: list[tuple]) -> int:
    """A cycle by which the sequencer has long finished with both lines."""
    return max(x[0] for x in a + b) + 20


def _compare(a: list[tuple], b: list[tuple], reset_at: set[int] = frozenset()
             ) -> ModelSequencer:
    """Lines ``a`` and ``b`` (and sequence resets in the cycles ``reset_at``) through the
    model and the gateware; every output compared. Returns the model, stepped to the end."""
    end = _end(a, b)
    model = ModelSequencer(a, b)
    for cycle in range(end):
        model.step(cycle)
        if cycle in reset_at:
            model.unlock()

    dut = Sequencer()
    got_stream, got_events, got_counts = [], [], dict.fromkeys(COUNTERS, 0)
    popped_at: dict[tuple[int, int], Item] = {}   # (line, cycle): the entry popped

    # Each entry packed by its layout once, not once per cycle it waits at the head.
    payloads = [[Entry.const(_entry(item)).as_value().value for _, item, _ in arr]
                for arr in (a, b)]

    async def bench(ctx):
        lines = [(dut.entries_a, dut.squashed_a, a), (dut.entries_b, dut.squashed_b, b)]
        popped = [0, 0]
        for cycle in range(end + 2):
            for x, (port, squashed, arr) in enumerate(lines):
                i = popped[x]
                here = i < len(arr) and arr[i][0] <= cycle
                ctx.set(port.valid, here)
                ctx.set(port.payload.as_value(), payloads[x][i] if here else 0)
                ctx.set(squashed, here and arr[i][2] is not None and arr[i][2] <= cycle)
            ctx.set(dut.seq_reset, cycle in reset_at)
            # Registered outputs show the previous cycle's work.
            if ctx.get(dut.messages.valid):
                p = ctx.get(dut.messages.payload)
                got_stream.append((cycle - 1, bool(p.invalidate), int(p.line), int(p.seq),
                                   int(p.last), bytes(int(p.data).to_bytes(64, "little")
                                                      [:int(p.length)])))
            for port in (dut.ev_gap, dut.ev_session, dut.ev_eos):
                if ctx.get(port.valid):
                    got_events.append((cycle - 1, *_event(ctx.get(port.payload))))
            for name in COUNTERS:
                got_counts[name] += ctx.get(getattr(dut, f"inc_{name}"))
            for x, (port, _, arr) in enumerate(lines):
                if ctx.get(port.valid) and ctx.get(port.ready):
                    popped_at[x, cycle] = arr[popped[x]][1]
                    popped[x] += 1
            await ctx.tick()
        assert popped == [len(a), len(b)], WHERE

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    want_stream = []
    for s in model.stream:
        if isinstance(s, Delivered):
            want_stream.append((s.cycle, False, int(s.line), s.seq, s.seq, s.data))
        else:
            assert isinstance(s, Invalidation)
            want_stream.append((s.cycle, True, int(s.line), s.first, s.last, b""))
    for i, (g, w) in enumerate(zip(got_stream, want_stream, strict=False)):
        assert g == w, f"stream entry {i}: gateware {g}, model {w} {WHERE}"
    assert len(got_stream) == len(want_stream), WHERE
    want_events = []
    for e in model.events:
        want_events.append((e.cycle, e.kind, int(e.line), e.fields))
    # Events of one cycle leave on separate ports (the collector orders them): compare them
    # in kind order within a cycle.
    want_events.sort(key=lambda e: (e[0], e[1]))
    got_events.sort(key=lambda e: (e[0], e[1]))
    got_plain = [(c, k, ln, f) for c, k, ln, _aux, f in got_events]
    for i, (g, w) in enumerate(zip(got_plain, want_events, strict=False)):
        assert g == w, f"event {i}: gateware {g}, model {w} {WHERE}"
    assert len(got_plain) == len(want_events), WHERE
    for c, k, ln, aux, _f in got_events:
        # An INVALIDATE's aux is the reason of the end marker that raised it (popped then).
        want = int(popped_at[ln, c].reason) if k is EventKind.INVALIDATE else 0
        assert aux == want, f"{k.name} at cycle {c}: aux {aux}, expected {want} {WHERE}"
    want_counts = {name: model.counters[name] & ((1 << 48) - 1) for name in COUNTERS}
    got_counts = {k: v & ((1 << 48) - 1) for k, v in got_counts.items()}
    assert got_counts == want_counts, WHERE
    return model


@pytest.mark.parametrize("case", range(6))
def test_hostile_lines_against_model(case):
    rng = random.Random(SEED * 7 + case)
    p_drop = [0.0, 0.1, 0.3, 0.05, 0.2, 0.5][case]
    model = _run(rng, n_packets=120, p_drop=p_drop, resets=case % 3, far=case == 5)
    c = model.counters
    assert c["messages"] > 0, (c, WHERE)


def test_every_rule_is_reached():
    """Over a few runs the hostile streams produce every event kind and counter."""
    rng = random.Random(SEED + 99)
    totals = dict.fromkeys(COUNTERS, 0)
    kinds = set()
    rolled = set()
    for i in range(8):
        model = _run(rng, n_packets=150, p_drop=0.15, resets=1, far=i == 7)
        for k in COUNTERS:
            totals[k] += model.counters[k]
        kinds |= {e.kind for e in model.events}
        rolled |= {e.fields["rolled_back"] for e in model.events
                   if e.kind is EventKind.INVALIDATE}
    assert all(totals.values()), (totals, WHERE)
    assert kinds == {EventKind.GAP, EventKind.INVALIDATE, EventKind.SESSION,
                     EventKind.END_OF_SESSION}, (kinds, WHERE)
    assert rolled == {0, 1}, (rolled, WHERE)


def test_rollback_at_the_top_of_the_sequence_space():
    """A bad frame whose last message is 2**64 − 1: ``expected`` wrapped to 0 after it, which
    is still "nothing delivered after it", so the invalidation rolls back (the gateware once
    compared ``expected`` with a 65-bit ``last + 1`` and did not)."""
    top = (1 << 64) - 1
    hdr = Item(ItemKind.HEADER, 0, 0, PacketHeader(SESSION, top - 1, 2, 0))
    m0 = Item(ItemKind.MESSAGE, 0, 0, Msg(top - 1, 0, bytes(range(12)), 0))
    m1 = Item(ItemKind.MESSAGE, 0, 0, Msg(top, 1, bytes(range(1, 13)), 0))
    end = Item(ItemKind.END, 0, 0, None, end=True, reason=DropReason.MAC_ERROR)
    a = [(1, hdr, 4), (2, m0, 4), (3, m1, 4), (4, end, 4)]
    model = _compare(a, [])
    inval = [e for e in model.events if e.kind is EventKind.INVALIDATE]
    assert [e.fields["rolled_back"] for e in inval] == [1] and model.expected == top - 1
