"""The order-entry return path (``hw/oe/returnpath.py``: parser + open-order table) against
the reference model and against the exchange's own books.

Sessions drive the exchange simulator with real OUCH orders; the gate's verdicts for them
reach the table while the exchange's replies to earlier orders are still on the bus. The
model is stepped in the gateware's order (the table takes a lookup
:data:`~hw.oe.parser.LATENCY` cycles after the beat that ends its message, and decides it
together with the verdict of that cycle: :meth:`~sim.model.oe.TableModel.cycle`), so
reports and alerts are compared with their cycles. On clean sessions the reports are also
checked against the exchange simulator's order records — what it executed, canceled and
rejected, and what it still holds open — which shares nothing with either the model or the
gateware.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

from amaranth.sim import Simulator

from hw.oe import parser
from hw.oe.returnpath import COUNTERS, LATENCY, ReturnPath
from hw.oe.table import LATENCY as TABLE_LATENCY
from hw.oe.tokens import format_token, parse_token
from hw.risk.params import DEFAULT_RISK, ReportKind, RiskParams, Side, Source
from proto import ouch
from proto import soupbintcp as soup
from sim.model.oe import ParserModel, TableModel
from tests.oe_streams import (
    Cycle,
    Session,
    outbound_message,
    schedule,
    session,
    verdict,
    with_faults,
)

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_oe_return_path: seed {SEED}")

_REPORT = ("kind", "slot", "side", "shares", "done")
_ALERT = ("source", "token", "slot", "side", "shares")


def run_gateware(cycles: list[Cycle], p: RiskParams, depth: int):
    dut = ReturnPath(p, depth=depth)
    reports, alerts = [], []
    counters = {c: 0 for c in COUNTERS}
    final = {}
    rx = dut.rx

    async def bench(ctx):
        for t, c in enumerate(cycles):
            ctx.set(dut.restart, c.restart)
            ctx.set(rx.tvalid, bool(c.beat))
            if c.beat:
                ctx.set(rx.tdata, int.from_bytes(c.beat, "little"))
                ctx.set(rx.tkeep, (1 << len(c.beat)) - 1)
            ctx.set(dut.verdicts.valid, c.verdict is not None)
            if c.verdict is not None:
                ctx.set(dut.verdicts.payload, c.verdict)
            if ctx.get(dut.reports.valid):
                r = ctx.get(dut.reports.payload)
                reports.append((t, {f: getattr(r, f) for f in _REPORT}))
            if ctx.get(dut.alert.valid):
                a = ctx.get(dut.alert.payload)
                alerts.append((t, {f: getattr(a, f) for f in _ALERT}))
            for name in COUNTERS:
                counters[name] += ctx.get(getattr(dut, f"inc_{name}"))
            await ctx.tick()
        tab = dut.table
        for i in range(depth):
            live, entry = tab.entry(ctx.get(tab.static.data[i]), ctx.get(tab.dynamic.data[i]))
            if live:
                final[i] = entry

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return reports, alerts, counters, final


def run_model(cycles: list[Cycle], p: RiskParams, depth: int):
    """Reports and alerts with the cycle each must leave in; the model's two halves."""
    pm, tm = ParserModel(p), TableModel(p, depth)
    at_table: dict[int, list] = {}     # cycle the table sees it -> [lookup, verdict]
    for t, c in enumerate(cycles):
        if c.verdict is not None:
            at_table.setdefault(t, [None, None])[1] = c.verdict
        if c.restart:
            pm.restart()
        if c.beat:
            for lk in pm.feed(c.beat):     # its last byte is in this beat
                slot = at_table.setdefault(t + parser.LATENCY, [None, None])
                assert slot[0] is None, "two lookups in one cycle"
                slot[0] = lk
    reports, alerts = [], []
    for t in sorted(at_table):
        rep, al = tm.cycle(*at_table[t])
        if rep is not None:
            reports.append((t + TABLE_LATENCY, {k: int(v) for k, v in rep.items()}))
        if al is not None:
            alerts.append((t + TABLE_LATENCY, {k: int(v) for k, v in al.items()}))
    return reports, alerts, Counter({**pm.counters, **tm.counters}), tm


def compare(ses: Session, rng: random.Random, *, depth: int, p: RiskParams = DEFAULT_RISK,
            **sched):
    cycles = schedule(rng, ses.steps, **sched)
    t0 = time.monotonic()
    reports, alerts, counters, final = run_gateware(cycles, p, depth)
    print(f"{len(cycles)} cycles, {len(reports)} reports, {len(alerts)} alerts in "
          f"{time.monotonic() - t0:.1f} s")
    want_reports, want_alerts, want_counters, tm = run_model(cycles, p, depth)
    for i, (g, w) in enumerate(zip(reports, want_reports, strict=False)):
        assert g == w, f"report #{i}: gateware {g}, model {w} {WHERE}"
    assert len(reports) == len(want_reports), WHERE
    assert alerts == want_alerts, WHERE
    for c in COUNTERS:
        assert counters[c] == want_counters[c], \
            f"counter {c}: gateware {counters[c]}, model {want_counters[c]} {WHERE}"
    assert final == tm.live(), WHERE
    return reports, alerts, counters, final


def check_against_exchange(ses: Session, reports, alerts, final) -> None:
    """Per (slot, side): FILL shares = what the exchange executed on the orders we track,
    OUT shares = what it canceled plus what it rejected; and every tracked order it still
    holds open is live in the table with exactly its open shares."""
    ex = ses.exchange
    untracked = {(a["source"], a["token"]) for _, a in alerts}
    rejected = {t for t, _ in ex.rejects}
    fills, outs = Counter(), Counter()
    open_now = {}
    for token, (src, number, slot, side) in ses.sent.items():
        if (src, number) in untracked:
            continue
        key = (slot, side)
        if token in rejected:
            entered = next(s for s in ses.steps if s.verdict and
                           (s.verdict["order"]["source"], s.verdict["order"]["token"])
                           == (src, number))
            outs[key] += entered.verdict["order"]["shares"]
            continue
        o = ex.orders[token]
        fills[key] += o.executed_shares
        outs[key] += o.canceled_shares
        # A replaced order is dead at the exchange, but replaces are not tracked: what was
        # open when it was replaced stays open in the table (and in the gate).
        if o.live or o.replaced_by is not None:
            open_now[(src, number)] = (slot, side, o.open_shares)
    got_fills, got_outs = Counter(), Counter()
    for _, r in reports:
        (got_fills if r["kind"] == ReportKind.FILL else got_outs)[(r["slot"], r["side"])] \
            += r["shares"]
    assert +got_fills == +fills, f"fills differ from the exchange's {WHERE}"
    assert +got_outs == +outs, f"outs differ from the exchange's {WHERE}"
    table = {(s, t): (slot, side, left) for s, t, slot, side, left in final.values()}
    assert table == open_now, f"open orders differ from the exchange's {WHERE}"
    # Each order named in the stream resolves to the side the exchange recorded.
    for token, (_, _, _, side) in ses.sent.items():
        if token in ex.orders:
            want = Side.BUY if ex.orders[token].side == ouch.SIDE_BUY else Side.SELL
            assert side == want, WHERE
    assert all(parse_token(t) for t in ses.sent), WHERE


def test_session_default_depth():
    """The card's table (1024 entries): no conflicts, reports equal the exchange's books."""
    rng = random.Random(SEED)
    ses = session(rng, 220)
    reports, alerts, counters, final = compare(ses, rng, depth=1024, overlap=3, idle=0.2)
    assert not alerts and counters["tracked"] > 100, WHERE
    assert counters["ouch_executed"] and counters["ouch_canceled"], WHERE
    check_against_exchange(ses, reports, alerts, final)


def test_session_small_table_conflicts():
    """16 entries and resting orders: conflicts are counted and alerted, the untracked
    orders' replies count as unknown tokens, the tracked ones still match the exchange."""
    rng = random.Random(SEED + 1)
    ses = session(rng, 220, token_step=2, resting=0.5)
    reports, alerts, counters, final = compare(ses, rng, depth=16, overlap=6, idle=0.1)
    assert alerts and counters["table_conflict"] == len(alerts), WHERE
    assert counters["unknown_token"] > 0, WHERE
    check_against_exchange(ses, reports, alerts, final)
    assert ses.replaced, WHERE


def test_faults_and_restart():
    """Malformed packets between the session's, a length corrupted mid-stream (framing lost
    until a restart): never fatal, counted by reason, the table only changed by lookups the
    model also made."""
    rng = random.Random(SEED + 2)
    ses = with_faults(rng, session(rng, 180, token_step=2), 0.25, desync=True)
    _, _, counters, _ = compare(ses, rng, depth=64, overlap=4, idle=0.2)
    for c in ("bad_token", "unknown_token", "soup_unknown", "soup_bad_length",
              "ouch_unknown", "ouch_bad_length"):
        assert counters[c] > 0, f"{c} never counted {WHERE}"


def test_latency_of_one_fill():
    """A directed case: one order, one partial fill, one cancel of the rest, each report
    :data:`LATENCY` cycles after the beat that ends its message; the order's entry is free
    again afterwards."""
    rng = random.Random(SEED + 3)
    v = verdict(Source.TRIGGER, 0x2A, 5, Side.SELL, 300)
    tok = format_token(Source.TRIGGER, 0x2A)
    e = soup.pack_packet("S", outbound_message(rng, "E", tok, 100))
    c = soup.pack_packet("S", outbound_message(rng, "C", tok, 200))
    stream = e + c
    cycles = [Cycle(verdict=v), Cycle(), Cycle()]
    for i in range(0, len(stream), 8):
        cycles.append(Cycle(beat=stream[i:i + 8], offset=i))
    cycles += [Cycle() for _ in range(8)]
    reports, alerts, counters, final = run_gateware(cycles, DEFAULT_RISK, 1024)
    last_e = 3 + (len(e) - 1) // 8
    last_c = 3 + (len(stream) - 1) // 8
    assert reports == [
        (last_e + LATENCY, {"kind": ReportKind.FILL, "slot": 5, "side": Side.SELL,
                            "shares": 100, "done": 0}),
        (last_c + LATENCY, {"kind": ReportKind.OUT, "slot": 5, "side": Side.SELL,
                            "shares": 200, "done": 1}),
    ]
    assert not alerts and not final and counters["tracked"] == 1
