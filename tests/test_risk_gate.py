"""The risk gate (hw/risk/gate.py) against its reference model, cycle for cycle.

Amaranth's simulator drives the gate with :func:`tests.risk_streams.cycles` while the model
(:class:`sim.model.risk.RiskModel`) steps on the same inputs: every verdict must come out
in the same cycle with the same reason, and the host-visible state (positions, open shares,
open orders, bucket, tokens, bank, busy, store_error) must agree at the end. Independently
of the model, an auditor checks that no accepted order breaks the size, notional or kill
rules of the limits committed when it was presented.

``WIRESPEED_SEED`` reruns a seed; ``WIRESPEED_RISK_ORDERS`` sets the long run's length.
"""

from __future__ import annotations

import collections
import os
import random

import pytest
from amaranth.sim import Simulator

from hw.risk.gate import RiskGate
from hw.risk.params import Reason, RiskParams, limits_layout, pack
from sim.model.risk import LATENCY, Cycle, RiskModel
from tests.risk_streams import cycles

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
SMALL = RiskParams(slots=4, tick=100, token_bits=24)
LIM = limits_layout()


def _drive(gate: RiskGate, ctx, c: Cycle) -> None:
    """Put cycle ``c``'s inputs on the gate's ports."""
    o = c.order
    ctx.set(gate.orders.valid, o is not None)
    if o is not None:
        for k, v in o.items():
            ctx.set(getattr(gate.orders.payload, k), v)
    r = c.report
    ctx.set(gate.reports.valid, r is not None)
    if r is not None:
        for k, v in r.items():
            ctx.set(getattr(gate.reports.payload, k), v)
    ctx.set(gate.md.valid, c.md is not None)
    if c.md is not None:
        for k, v in c.md.items():
            ctx.set(getattr(gate.md.payload, k), v)
    ctx.set(gate.kill, c.kill)
    ctx.set(gate.kill_slots, c.kill_slots)
    ctx.set(gate.lim_store, c.lim_store is not None)
    if c.lim_store is not None:
        ctx.set(gate.lim_slot, c.lim_store[0])
        ctx.set(gate.lim_row.as_value(), pack(LIM, c.lim_store[1]))
    ctx.set(gate.glob_store, c.glob_store is not None)
    if c.glob_store is not None:
        for k, v in c.glob_store.items():
            ctx.set(getattr(gate.glob_row, k), v)
    ctx.set(gate.commit, c.commit)
    ctx.set(gate.pos_write, c.pos_write is not None)
    if c.pos_write is not None:
        ctx.set(gate.pos_slot, c.pos_write[0])
        ctx.set(gate.pos_value, c.pos_write[1])
    ctx.set(gate.gap, c.gap)
    ctx.set(gate.md_clear, c.md_clear)


class Auditor:
    """No accepted order may break the kill, size or notional rules of the limit set that
    was committed when it was presented. Knows only the host's writes, not the gate."""

    def __init__(self, slots: int):
        self.shadow = [None] * slots
        self.active = [None] * slots
        self.copy_left = 0
        self.history: collections.deque = collections.deque()
        self.breaches: list[str] = []

    def cycle(self, t: int, c: Cycle) -> None:
        if c.order is not None:
            self.history.append((t, c.order, list(self.active)))
        # The limits an order sees are those committed before its presentation cycle.
        busy = self.copy_left > 0
        if busy:
            self.copy_left -= 1
        elif c.lim_store is not None:
            self.shadow[c.lim_store[0]] = dict(c.lim_store[1])
        if c.commit and not busy:
            self.active, self.shadow = list(self.shadow), list(self.shadow)
            self.copy_left = len(self.active) + 1

    def verdict(self, t: int, order: dict, reason: Reason, c: Cycle) -> None:
        t0, o, active = self.history.popleft()
        if o != order or t - t0 != LATENCY:
            self.breaches.append(f"cycle {t}: verdict for {order} out of order (want {o})")
        if reason != Reason.ACCEPTED or o["kind"]:
            return
        lim = active[o["slot"]]
        if c.kill or c.kill_slots >> o["slot"] & 1:
            self.breaches.append(f"cycle {t}: accepted under a kill switch: {o}")
        if lim is None or not lim["enable"] or o["shares"] > lim["max_shares"] \
                or o["shares"] * o["price"] > lim["max_notional"] or not o["shares"]:
            self.breaches.append(f"cycle {t}: accepted past its limits {lim}: {o}")


def run(params: RiskParams, n_orders: int, seed: int):
    gate = RiskGate(params)
    model = RiskModel(params)
    audit = Auditor(params.slots)
    stream = cycles(params, n_orders, seed, model=model)
    mismatches: list[str] = []
    reasons: collections.Counter = collections.Counter()
    final = {}
    async def bench(ctx):
        t = 0
        prev_c = None
        for c in stream:
            _drive(gate, ctx, c)
            want = model.step(c)
            audit.cycle(t, c)
            got = None
            if ctx.get(gate.verdicts.valid):
                v = gate.verdicts.payload
                got = ({k: ctx.get(getattr(v.order, k)) for k in
                        ("kind", "source", "token", "slot", "side", "shares", "price", "tif")},
                       Reason(ctx.get(v.reason)))
            want_n = None if want is None else ({k: int(x) for k, x in want[0].items()},
                                                want[1])
            if got != want_n and len(mismatches) < 10:
                mismatches.append(f"cycle {t}: gate {got}, model {want_n}")
            if got is not None:
                reasons[got[1]] += 1
                # Decided in the previous cycle, against that cycle's kill switches.
                audit.verdict(t, got[0], got[1], prev_c)
            await ctx.tick()
            prev_c = c
            t += 1
        # The global state now, before the view cycles below (the bucket refills in them).
        final["global"] = (ctx.get(gate.open_orders), ctx.get(gate.bucket),
                           ctx.get(gate.last_token_host), ctx.get(gate.last_token_trigger),
                           ctx.get(gate.bank), ctx.get(gate.store_error))
        for s in range(params.slots):
            ctx.set(gate.view_slot, s)
            await ctx.tick()
            final[s] = (ctx.get(gate.view_position), ctx.get(gate.view_open_buy),
                        ctx.get(gate.view_open_sell))

    sim = Simulator(gate)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    st = model.st
    want_final = {s: (st.position[s], st.open_buy[s], st.open_sell[s])
                  for s in range(params.slots)}
    want_final["global"] = (st.open_orders, st.bucket, st.last_token[0], st.last_token[1],
                            model.bank, int(model.store_error))
    return mismatches, reasons, final, want_final, audit.breaches


@pytest.mark.parametrize("n_orders", [20_000])
def test_random_orders_against_model(n_orders: int) -> None:
    print(f"seed {SEED} (rerun with WIRESPEED_SEED={SEED})")
    mismatches, reasons, final, want_final, breaches = run(SMALL, n_orders, SEED)
    assert not mismatches, f"{WHERE}\n" + "\n".join(mismatches)
    assert final == want_final, f"{WHERE}: final state gate {final}, model {want_final}"
    assert not breaches, f"{WHERE}\n" + "\n".join(breaches[:10])
    # The stream must reach every verdict, or the comparison proves little.
    missing = set(Reason) - set(reasons)
    assert not missing, f"{WHERE}: reasons never produced: {sorted(missing)}; {reasons}"
    assert sum(reasons.values()) == n_orders
