"""Random stimulus for the risk gate: one :class:`~sim.model.risk.Cycle` per clock cycle.

Shared by the gate's unit test (Amaranth's simulator) and its long randomized run. The mix
is built to reach every reject reason often: limits that some orders breach, collars in
both units and the reserved mode, reference prices missing, stale and empty books, tokens
reused, kill switches flipping, commits landing while orders are in flight and while the
post-commit copy runs, reports that over-fill, and an egress queue that fills up.

The egress space is that of a queue the stream models itself (fed by the verdicts that
accept, from :attr:`RiskModel.output`, drained at a rate that changes in spells: unlimited,
fast, as slow as OUCH packets leave, a few entries deep, stalled), and now and then a value
below the true space (any of 0..space), so 0 and small values are frequent in the tight
spells. (The gate's own queue arithmetic is checked by the auditor of the tests and proven
by ``risk_egress``; this queue only makes the space realistic.)
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from hw.risk.params import OrderKind, Reason, ReportKind, RiskParams, Side, Source
from sim.model.risk import Cycle, RiskModel


def random_limits(rng: random.Random, mid: int) -> dict:
    max_shares = rng.choice([100, 500, 1000, 5000, 10_000])
    return dict(
        enable=int(rng.random() < 0.92),
        max_shares=max_shares,
        max_notional=int(max_shares * mid * rng.uniform(0.2, 1.5)),
        collar_mode=rng.choices(list(range(4)), weights=[3, 6, 6, 1])[0],
        collar=rng.choice([0, 1, 5, 20, 50, 200, 500]),
        ref_px=rng.choice([0, mid, mid + 500]),
        max_long=rng.choice([0, 1000, 20_000, 100_000]),
        max_short=rng.choice([0, 1000, 20_000, 100_000]),
    )


def random_global(rng: random.Random) -> dict:
    return dict(max_open=rng.choice([0, 4, 40, 400]),
                rate_period=rng.choice([0, 0, 1, 3, 16]),
                rate_burst=rng.choice([1, 8, 64]),
                max_age=rng.choice([0, 0, 100, 2000]))


#: Egress spells: (weight, queue depth or None for unlimited, chance of a read per cycle).
#: An OUCH enter order takes 9 cycles of the encoder (pop, build, 7 beats).
EGRESS_SPELLS = ((50, None, 1.0), (20, 16, 1.0), (15, 16, 1 / 9), (10, 3, 0.3), (5, 16, 0.0))


def cycles(params: RiskParams, n_orders: int, seed: int, *, model: RiskModel,
           order_rate: float = 0.7) -> Iterator[Cycle]:
    """Cycles until ``n_orders`` orders were presented, then 8 idle ones. ``model`` is the
    reference being stepped alongside (its state steers reports to real exposure)."""
    rng = random.Random(seed)
    n = params.slots
    mids = [rng.randrange(50, 5000) * 100 for _ in range(n)]
    tokens = [0, 0]
    kill, kill_slots = False, 0
    depth, drain, level = None, 1.0, 0
    space_max = (1 << params.count_bits) - 1
    # Start from a configured, committed set so that orders are mostly judged on merit.
    for s in range(n):
        lim = random_limits(rng, mids[s])
        lim["enable"] = 1
        yield Cycle(lim_store=(s, lim))
    yield Cycle(glob_store=dict(max_open=400, rate_period=0, rate_burst=8, max_age=0),
                commit=True)
    for _ in range(n + 2):
        yield Cycle()
    presented = 0
    while presented < n_orders:
        c = Cycle()
        r = rng.random
        if r() < order_rate:
            presented += 1
            s = rng.randrange(n)
            src = rng.choice((Source.HOST, Source.TRIGGER))
            if r() < 0.03:
                tok = max(0, tokens[src] - rng.randrange(3))         # reused
            else:
                tokens[src] += rng.choice((1, 1, 2, 7))
                tok = tokens[src]
            mid = mids[s]
            price = max(0, mid + rng.choice((0, 1, -1, 3, -5, 25, -60)) * params.tick
                        + rng.choice((0, 0, 0, 37)))
            if r() < 0.01:
                price = 0
            shares = rng.choice((1, 100, 100, 200, 500, 1000, 3000, 12_000))
            if r() < 0.01:
                shares = 0
            c.order = dict(kind=OrderKind.CANCEL if r() < 0.05 else OrderKind.NEW,
                           source=src, token=tok, slot=s, side=rng.choice(list(Side)),
                           shares=shares, price=price, tif=rng.choice((0, 99998)))
        if r() < 0.25:
            s = rng.randrange(n)
            side = rng.choice(list(Side))
            book = model.st.open_buy if side == Side.BUY else model.st.open_sell
            have = book[s]
            shares = rng.randrange(1, have + 1) if have and r() < 0.9 \
                else rng.choice((1, 100, 5000))
            c.report = dict(kind=rng.choice(list(ReportKind)), slot=s, side=side,
                            shares=shares, done=int(r() < 0.6))
        if r() < 0.12:
            s = rng.randrange(n)
            mids[s] = max(200, mids[s] + rng.choice((-1, 0, 1)) * params.tick)
            bid = mids[s] - params.tick if r() > 0.05 else 0
            ask = mids[s] + params.tick if r() > 0.05 else 0
            c.md = dict(slot=s, bid_px=bid, ask_px=ask, stale=int(r() < 0.04))
        # Kill switches: on for short spells (about 5% of cycles), so that most orders
        # reach the checks behind them.
        if r() < (0.04 if kill else 0.002):
            kill = not kill
        if r() < 0.004:
            kill_slots |= 1 << rng.randrange(n)
        elif kill_slots and r() < 0.03:
            kill_slots = 0
        c.kill, c.kill_slots = kill, kill_slots
        if r() < 0.02:
            s = rng.randrange(n)
            c.lim_store = (s, random_limits(rng, mids[s]))
        if r() < 0.004:
            c.glob_store = random_global(rng)
        if r() < 0.006:
            c.commit = True
        if r() < 0.002:
            c.pos_write = (rng.randrange(n), rng.randrange(-30_000, 30_000))
        if r() < 0.001:
            c.gap = True
        if r() < 0.01:
            c.md_clear = True
        # Egress: the space at the start of the cycle; the verdict shown in it (if it
        # accepts) enters the queue at its end, and one entry may leave.
        if r() < 0.002:
            _, depth, drain = rng.choices(EGRESS_SPELLS, [w for w, _, _ in EGRESS_SPELLS])[0]
            level = 0 if depth is None else level
        if depth is not None:
            space = min(space_max, max(0, depth - level))
            c.egress_space = space if r() > 0.05 else rng.randrange(space + 1)
            out = model.output
            read = level > 0 and r() < drain       # what entered this cycle stays
            level += int(out is not None and out[1] == Reason.ACCEPTED) - int(read)
        yield c
    for _ in range(8):
        yield Cycle(kill=kill, kill_slots=kill_slots)

