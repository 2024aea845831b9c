"""The open-order table (``hw/oe/table.py``) against the reference model, cycle for cycle.

A tiny table (16 entries, 8 per source) so that conflicts are frequent, verdicts and lookups
in the same cycles, and both deliberately aimed at the same entry in the same or adjacent
cycles: the read-during-write, bypass and same-cycle paths. Every report and alert is
compared with its cycle (:data:`~hw.oe.table.LATENCY` after its input), every counter, and
the live entries read back from the RAMs at the end.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

from amaranth.sim import Simulator

from hw.oe.layouts import LookupKind, table_index
from hw.oe.table import COUNTERS, LATENCY, OpenOrderTable
from hw.risk.params import DEFAULT_RISK, OrderKind, Reason, RiskParams, Side, Source
from sim.model.oe import TABLE_COUNTERS, Lookup, TableModel
from tests.oe_streams import verdict

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_oe_table: seed {SEED}")

DEPTH = 16


@dataclass
class Tick:
    verdict: dict | None = None
    lookup: Lookup | None = None


def stimulus(rng: random.Random, n: int, p: RiskParams, depth: int):
    """``n`` cycles of verdicts and lookups, and the model's reports and alerts with the cycle
    each must appear in. Both inputs of a cycle decide together, two cycles later: one
    :meth:`~sim.model.oe.TableModel.cycle` of the model."""
    model = TableModel(p, depth)
    half = depth // 2
    nxt = {s: rng.randrange(1, 1 << 30) for s in Source}
    sent: list[tuple[int, int]] = []
    ticks: list[Tick] = []
    reports, alerts = [], []
    for t in range(n):
        tk = Tick()
        if rng.random() < 0.45:
            live = list(model.live().values())
            r = rng.random()
            if live and r < 0.7:
                src, tok, _, _, left = rng.choice(live)
            elif sent and r < 0.9:
                src, tok = rng.choice(sent)
                left = 100
            else:
                src, tok, left = rng.choice(list(Source)), rng.randrange(1 << p.token_bits), 9
            kind = rng.choices(list(LookupKind), weights=(5, 3, 1))[0]
            shares = rng.choice((0, 1, left // 3, left, left + 1, rng.randrange(1 << 32)))
            tk.lookup = Lookup(kind, int(src), tok, min(shares, (1 << 32) - 1))
        if rng.random() < 0.6:
            src = rng.choice(list(Source))
            if tk.lookup is not None and rng.random() < 0.3:
                # Aim at the entry this cycle's lookup resolves (the bypass path).
                src = Source(tk.lookup.source)
                want = table_index(src, tk.lookup.token, depth) & (half - 1)
                nxt[src] += (want - nxt[src]) % half
            elif rng.random() < 0.15:
                nxt[src] += half * rng.randint(1, 2)   # onto a probably busy entry
            tok = nxt[src]
            nxt[src] += rng.randint(1, 2)
            r = rng.random()
            kind, reason = OrderKind.NEW, Reason.ACCEPTED
            if r < 0.1:
                reason = rng.choice([x for x in Reason if x != Reason.ACCEPTED])
            elif r < 0.18:
                kind = OrderKind.CANCEL
            shares = rng.choice((0, 1, 100, 300, rng.randrange(1 << 32)))
            tk.verdict = verdict(src, tok, rng.randrange(p.slots), rng.choice(list(Side)),
                                 shares, kind=kind, reason=reason)
            if kind == OrderKind.NEW and reason == Reason.ACCEPTED:
                sent.append((int(src), tok))
        rep, al = model.cycle(tk.lookup, tk.verdict)
        if rep is not None:
            reports.append((t + LATENCY, rep))
        if al is not None:
            alerts.append((t + LATENCY, al))
        ticks.append(tk)
    ticks += [Tick() for _ in range(4)]
    return ticks, model, reports, alerts


def run_table(ticks: list[Tick], p: RiskParams, depth: int):
    dut = OpenOrderTable(p, depth=depth)
    reports, alerts = [], []
    counters = {c: 0 for c in COUNTERS}
    final = {}

    async def bench(ctx):
        for t, tk in enumerate(ticks):
            ctx.set(dut.verdicts.valid, tk.verdict is not None)
            if tk.verdict is not None:
                ctx.set(dut.verdicts.payload, tk.verdict)
            ctx.set(dut.lookups.valid, tk.lookup is not None)
            if tk.lookup is not None:
                lk = tk.lookup
                ctx.set(dut.lookups.payload, {"kind": lk.kind, "source": lk.source,
                                              "token": lk.token, "shares": lk.shares})
            if ctx.get(dut.reports.valid):
                r = ctx.get(dut.reports.payload)
                reports.append((t, {f: getattr(r, f) for f in
                                    ("kind", "slot", "side", "shares", "done")}))
            if ctx.get(dut.alert.valid):
                a = ctx.get(dut.alert.payload)
                alerts.append((t, {f: getattr(a, f) for f in
                                   ("source", "token", "slot", "side", "shares")}))
            for c in COUNTERS:
                counters[c] += ctx.get(getattr(dut, f"inc_{c}"))
            await ctx.tick()
        for i in range(depth):
            live, entry = dut.entry(ctx.get(dut.static.data[i]), ctx.get(dut.dynamic.data[i]))
            if live:
                final[i] = entry

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return reports, alerts, counters, final


def compare(n: int, p: RiskParams = DEFAULT_RISK, depth: int = DEPTH, seed: int = SEED):
    rng = random.Random(seed)
    ticks, model, want_reports, want_alerts = stimulus(rng, n, p, depth)
    t0 = time.monotonic()
    reports, alerts, counters, final = run_table(ticks, p, depth)
    print(f"{len(ticks)} cycles, {len(reports)} reports, {len(alerts)} alerts in "
          f"{time.monotonic() - t0:.1f} s")
    norm = [(t, {k: int(v) for k, v in r.items()}) for t, r in want_reports]
    for i, (g, w) in enumerate(zip(reports, norm, strict=False)):
        assert g == w, f"report #{i}: gateware {g}, model {w} {WHERE}"
    assert len(reports) == len(norm), WHERE
    assert alerts == [(t, {k: int(v) for k, v in a.items()}) for t, a in want_alerts], WHERE
    for c in COUNTERS:
        assert counters[c] == model.counters[c], \
            f"counter {c}: gateware {counters[c]}, model {model.counters[c]} {WHERE}"
    assert final == model.live(), WHERE
    return counters


def test_counter_names_match_the_model():
    assert COUNTERS == TABLE_COUNTERS


def test_random_verdicts_and_lookups():
    counters = compare(15000)
    for c in COUNTERS:
        assert counters[c] > 0, f"{c} never counted {WHERE}"


def test_default_depth_narrow_widths():
    """The card's depth (1024) with a narrow instance: 40-bit tokens, 8 slots."""
    compare(1500, RiskParams(slots=8, token_bits=40), depth=1024, seed=SEED + 1)
