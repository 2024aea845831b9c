"""The risk gate (hw/risk/gate.py) against its reference model, cycle for cycle.

Amaranth's simulator drives the gate with :func:`tests.risk_streams.cycles` while the model
(:class:`sim.model.risk.RiskModel`) steps on the same inputs: every verdict must come out
in the same cycle with the same reason, and the host-visible state (positions, open shares,
open orders, bucket, tokens, bank, busy, store_error) must agree at the end. Independently
of the model, an auditor checks that no accepted order breaks the size, notional or kill
rules of the limits committed when it was presented, or the egress rule (room behind the
accepted verdict ahead). Directed cases follow: the throttle across commits, the egress
check, and the gate in front of the real OUCH encoder.

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
from sim.model.risk import LATENCY, Cycle, RiskModel, egress_space
from tests.risk_streams import cycles

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
SMALL = RiskParams(slots=4, tick=100, token_bits=24)
LIM = limits_layout()


def _drive(gate: RiskGate, ctx, c: Cycle, *, egress: bool = True) -> None:
    """Put cycle ``c``'s inputs on the gate's ports (``egress``: ``egress_space`` too)."""
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
    if egress:
        ctx.set(gate.egress_space, egress_space(gate.p, c))


class Auditor:
    """No accepted order may break the kill, size or notional rules of the limit set that
    was committed when it was presented, nor be accepted without room in the egress queue
    behind the accepted verdict ahead of it (hw/risk/gate.py). Knows only the host's writes
    and the egress space, not the gate."""

    def __init__(self, slots: int):
        self.shadow = [None] * slots
        self.active = [None] * slots
        self.copy_left = 0
        self.history: collections.deque = collections.deque()
        self.breaches: list[str] = []
        self.last_accepted = -1         # cycle of the last verdict that accepted an order

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
        if reason != Reason.ACCEPTED:
            return
        ahead = int(self.last_accepted == t - 1)
        self.last_accepted = t
        space = c.egress_space
        if space is not None and space <= ahead:
            self.breaches.append(f"cycle {t}: accepted with egress space {space} behind "
                                 f"{ahead} accepted order(s): {o}")
        if o["kind"]:
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


# -- directed cases ---------------------------------------------------------------------------

def lockstep(params: RiskParams, stream: list[Cycle], *, watch=()):
    """Drive the gate and the model with ``stream`` (then idle cycles until the pipeline is
    empty): ``(gate, model, seen)`` — the verdicts of each, as ``(cycle, order, reason)``,
    and for every cycle the values of the gate outputs named in ``watch``."""
    gate = RiskGate(params)
    model = RiskModel(params)
    got: list = []
    want: list = []
    seen: list[dict] = []
    keys = ("kind", "source", "token", "slot", "side", "shares", "price", "tif")

    async def bench(ctx):
        for t, c in enumerate([*stream, *[Cycle() for _ in range(LATENCY + 1)]]):
            _drive(gate, ctx, c)
            w = model.step(c)
            if w is not None:
                want.append((t, {k: int(w[0][k]) for k in keys}, w[1]))
            if ctx.get(gate.verdicts.valid):
                v = gate.verdicts.payload
                got.append((t, {k: ctx.get(getattr(v.order, k)) for k in keys},
                            Reason(ctx.get(v.reason))))
            seen.append({name: ctx.get(getattr(gate, name)) for name in watch})
            await ctx.tick()

    sim = Simulator(gate)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, want, seen


OPEN_LIMITS = dict(enable=1, max_shares=10_000, max_notional=10**12, collar_mode=0,
                   collar=0, ref_px=0, max_long=10**6, max_short=10**6)


def _orders(first_token: int, n: int, **kw) -> list[Cycle]:
    """``n`` new orders on slot 0, one a cycle, that pass every check but the rate's."""
    return [Cycle(order=dict(kind=0, source=0, token=first_token + i, slot=0, side=0,
                             shares=100, price=10_000, tif=0), **kw) for i in range(n)]


def _glob(period: int, burst: int) -> dict:
    return dict(max_open=1000, rate_period=period, rate_burst=burst, max_age=0)


def test_throttle_starts_full_on_commit() -> None:
    """One commit turns the throttle on (period and burst from 0/0): the bucket is full —
    the new burst — from the first cycle after the commit, so ``burst`` back-to-back orders
    presented from that cycle on are all accepted and the next one is THROTTLE."""
    burst = 5
    stream = [Cycle(lim_store=(0, OPEN_LIMITS)),
              Cycle(glob_store=_glob(10_000, burst), commit=True),
              *_orders(1, burst + 1)]
    got, want, seen = lockstep(SMALL, stream, watch=("bucket",))
    assert got == want
    assert seen[2]["bucket"] == burst, [s["bucket"] for s in seen]
    assert [r for _, _, r in got] == [Reason.ACCEPTED] * burst + [Reason.THROTTLE]


def test_throttle_commit_while_on_clamps_never_refills() -> None:
    """A commit that changes ``rate_burst`` while the throttle stays on clamps the bucket
    to the new burst and never adds tokens (those come at the rate): lowering the burst from
    8 to 2 leaves 2 tokens; raising it back to 8 still leaves 2; turning the throttle off
    and on again (two commits) is what fills it."""
    glob = [Cycle(lim_store=(0, OPEN_LIMITS)),
            Cycle(glob_store=_glob(10_000, 8), commit=True)]
    idle = [Cycle() for _ in range(SMALL.slots + 2)]       # the post-commit copy
    lower = [Cycle(glob_store=_glob(10_000, 2), commit=True), *idle]
    raise_ = [Cycle(glob_store=_glob(10_000, 8), commit=True), *idle]
    got, want, seen = lockstep(SMALL, [*glob, *idle, *lower, *_orders(1, 3), *raise_,
                                       *_orders(4, 1)], watch=("bucket",))
    assert got == want
    assert [r for _, _, r in got] == [Reason.ACCEPTED] * 2 + [Reason.THROTTLE] * 2
    again = [Cycle(glob_store=_glob(0, 0), commit=True), *idle,
             Cycle(glob_store=_glob(10_000, 3), commit=True)]
    got, want, _ = lockstep(SMALL, [*glob, *idle, *_orders(1, 8), *idle, *again,
                                    *_orders(9, 4)])
    assert got == want
    assert [r for _, _, r in got] == [Reason.ACCEPTED] * 11 + [Reason.THROTTLE]


NO_THROTTLE = [Cycle(lim_store=(0, OPEN_LIMITS)), Cycle(glob_store=_glob(0, 0), commit=True),
               *[Cycle() for _ in range(SMALL.slots + 2)]]


def _cancel(token: int, **kw) -> Cycle:
    return Cycle(order=dict(kind=1, source=0, token=token, slot=0, side=0, shares=0,
                            price=0, tif=0), **kw)


def test_egress_space_counts_the_verdict_ahead() -> None:
    """Back-to-back orders that pass every risk check. With room for one more order, an
    order is accepted only if the verdict on the output (written into the queue at the end
    of the deciding cycle) does not accept one: accept, EGRESS_FULL, accept, ... With room
    for two, all are accepted; with none, all are rejected, a cancel too (it is sent
    through the same queue). The model agrees cycle for cycle."""
    def reasons(space: int, n: int, *, cancel_at: int = -1) -> list[Reason]:
        orders = _orders(1, n, egress_space=space)
        if cancel_at >= 0:
            orders[cancel_at] = _cancel(1000, egress_space=space)
        got, want, _ = lockstep(SMALL, [*NO_THROTTLE, *orders,
                                        *[Cycle(egress_space=space)] * 3])
        assert got == want
        return [r for _, _, r in got]

    A, E = Reason.ACCEPTED, Reason.EGRESS_FULL
    assert reasons(1, 6) == [A, E, A, E, A, E]
    assert reasons(1, 4, cancel_at=1) == [A, E, A, E]      # the cancel behind an accept
    assert reasons(1, 4, cancel_at=2) == [A, E, A, E]      # the cancel with room: accepted
    assert reasons(2, 5, cancel_at=3) == [A] * 5
    assert reasons(0, 3, cancel_at=1) == [E] * 3


def test_egress_into_the_encoder_never_overflows() -> None:
    """The gate in front of the real OUCH encoder (hw/oe/encoder.py), ``egress_space`` wired
    from its ``space`` as in hw/core.py: orders back to back and a TX that stalls for long
    spells. The encoder's FIFO never overflows, orders are refused EGRESS_FULL while it is
    full, and every accepted order (new or cancel) leaves on TX as exactly one packet."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    from hw.oe.encoder import OrderEncoder

    rng = random.Random(SEED)
    m = Module()
    m.submodules.gate = gate = RiskGate(SMALL)
    m.submodules.enc = enc = OrderEncoder(SMALL, depth=16)
    wiring.connect(m, gate.verdicts, enc.verdicts)
    m.d.comb += gate.egress_space.eq(enc.space)
    stream = [*NO_THROTTLE, *_orders(1, 400)]
    for i in rng.sample(range(len(NO_THROTTLE), len(stream)), 40):
        stream[i] = _cancel(stream[i].order["token"])
    reasons: list[Reason] = []
    overflows: list[int] = []
    packets = [0]

    async def bench(ctx):
        ready = True
        for t, c in enumerate([*stream, *[Cycle() for _ in range(400 * 10)]]):
            _drive(gate, ctx, c, egress=False)
            if rng.random() < 0.02:
                ready = not ready
            ctx.set(enc.tx.ready, ready)
            if ctx.get(gate.verdicts.valid):
                reasons.append(Reason(ctx.get(gate.verdicts.payload.reason)))
            if ctx.get(enc.inc_overflow):
                overflows.append(t)
            if ready and ctx.get(enc.tx.valid) and ctx.get(enc.tx.payload.last):
                packets[0] += 1
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    where = f"{WHERE}: {collections.Counter(reasons)}"
    assert not overflows, f"{where}: the encoder overflowed in cycles {overflows[:10]}"
    assert reasons.count(Reason.EGRESS_FULL) > 50, where
    assert set(reasons) == {Reason.ACCEPTED, Reason.EGRESS_FULL}, where
    assert packets[0] == reasons.count(Reason.ACCEPTED), where
