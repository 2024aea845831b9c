"""The pre-trade risk gate: one order per cycle, a verdict four cycles later (docs/risk.md).

Every order — from an on-card trigger or from the host — passes here before it can be
encoded for the exchange, and each one presented yields exactly one verdict: accepted, or
rejected with the :class:`~hw.risk.params.Reason` of the first check that failed. The
reference model is :mod:`sim.model.risk`; the safety properties are proven in
``tests/formal/`` (``make formal``).

Why it is shaped this way:

* **Four stages, no stall.** P (presentation): the symbol's limit row and market data are
  read from block RAM, the global limits are captured. S1: the checks that depend only on
  the order, its limits and the market and are cheap (enable, size, staleness, a reference
  at all), the collar's reference price and the order's distance from it, and the notional
  product. S2: the rest of those checks, the arithmetic ones — the collar's multiplies and
  compares, the notional against its limit. S3: the checks against trading state (kill
  switches, tokens, positions, open orders, throttle), the verdict, and the state update —
  all in one cycle, so the next order's S3 sees this one's effect and there is no hazard to
  forward around. S3 needs its verdict as late as it can: ``accept`` is formed from the
  failed checks, not decoded from the reason, and every sum the state update writes is
  formed without it (``accept`` only picks). (S1 and S2 were one stage, whose RAM read,
  reference adder, distance and multiplies in a row limited the clock; splitting them cost
  a cycle of latency and changed no verdict: all they use was captured at P, or, the age,
  at S1 as before.)
* **Atomic limits.** The limits live in two banks (a per-symbol table in block RAM, the
  global set in registers). The host writes the shadow bank; ``commit`` swaps the banks in
  one clock edge. An order captures everything it is checked against at P, from one bank,
  so no order can see half of one set and half of another. After a swap, a copy brings the
  new shadow bank up to date (``slots + 1`` cycles, ``busy``); stores and commits in that
  time are refused and flagged (``store_error``), never half applied.
* **Kill switches are not banked**: they are levels read at S3, so a kill written in one
  cycle rejects every verdict from the next cycle on.
* **No accepted order can find the egress queue full.** Accepted orders *and* cancels go
  into the OUCH encoder's FIFO (:class:`hw.oe.encoder.OrderEncoder`; a cancel becomes an
  OUCH ``X`` message through the same FIFO), whose ``space`` (depth − level) arrives here as
  ``egress_space``. For the order whose verdict S3 decides in cycle *t*:

  - it is written into the FIFO at the end of *t* + 1 (the verdict register shows it in
    *t* + 1, the encoder writes what it shows), so it fits if level(*t* + 1) < depth;
  - only one write can land before it: the verdict on the output in *t* (decided in
    *t* − 1, written at the end of *t*, not yet in level(*t*)). Let ``ahead`` be 1 if that
    verdict accepts an order, new or cancel, else 0. Reads only lower the level, so
    level(*t* + 1) ≤ level(*t*) + ``ahead``;
  - the orders in P, S1 and S2 are behind it: they are written after it, and each is
    judged in its own S3 cycle against the space and the verdict ahead of it then — so the
    pipeline's stages never need counting together, however many there are.

  Hence accept only if level(*t*) + ``ahead`` < depth, i.e. ``egress_space > ahead``; else
  the order is rejected ``EGRESS_FULL``. It is the last check of a new order (every risk
  check comes first, so the reason says "would have been sent") and the only check of a
  cancel. A read in cycle *t* is not credited (the port does not show it), so a slot may be
  refused a cycle early, never one too many. Proven for any sequence of reads by
  ``risk_egress`` (``tests/formal/risk_props.py``).
* **Positions count open orders at their worst case**: an accepted buy adds its shares to
  the symbol's open buys at once; execution reports (resolved to symbol and side) move
  shares from open to position (fills) or out of open (cancels, rejects). The checks use
  the state before this cycle's report, which is never less conservative: a fill moves
  shares between two terms of the same sum, a cancel only removes exposure.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.risk.params import (
    DEFAULT_RISK,
    TIME_BITS,
    Collar,
    OrderKind,
    Reason,
    ReportKind,
    RiskParams,
    Side,
    global_layout,
    limits_layout,
    md_layout,
    order_layout,
    report_layout,
    verdict_layout,
)


def signed_wider(value: Value) -> Value:
    """``value`` (unsigned) as a signed value one bit wider: differences then go negative
    instead of wrapping around."""
    return Cat(value, Const(0, 1)).as_signed()


def _market_layout(p: RiskParams) -> data.StructLayout:
    return data.StructLayout({"valid": 1, "bid_px": p.price_bits, "ask_px": p.price_bits,
                              "stale": 1, "time": TIME_BITS})


class RiskGate(wiring.Component):
    """See the module docstring; ports are described in docs/risk.md ("Ports")."""

    def __init__(self, params: RiskParams = DEFAULT_RISK, *, observe: bool = False):
        self.p = p = params
        self.observe = observe
        sb = p.slot_bits
        super().__init__({
            "orders": In(stream.Signature(order_layout(p), always_ready=True)),
            "verdicts": Out(stream.Signature(verdict_layout(p), always_ready=True)),
            "reports": In(stream.Signature(report_layout(p), always_ready=True)),
            "md": In(stream.Signature(md_layout(p), always_ready=True)),
            "kill": In(1), "kill_slots": In(p.slots),
            "lim_slot": In(sb), "lim_row": In(limits_layout(p)), "lim_store": In(1),
            "glob_row": In(global_layout(p)), "glob_store": In(1),
            "commit": In(1), "clear_error": In(1),
            "busy": Out(1), "store_error": Out(1), "bank": Out(1),
            "pos_slot": In(sb), "pos_value": In(signed(p.position_bits)), "pos_write": In(1),
            "gap": In(1), "md_clear": In(1), "gap_pending": Out(1),
            # How many more orders the egress queue can take (OrderEncoder.space; saturate a
            # deeper queue's count). Undriven it is 0: nothing is accepted (fails closed).
            "egress_space": In(p.count_bits),
            "view_slot": In(sb),
            "view_position": Out(signed(p.position_bits)),
            "view_open_buy": Out(p.open_bits), "view_open_sell": Out(p.open_bits),
            "open_orders": Out(p.count_bits), "bucket": Out(p.count_bits),
            "last_token_host": Out(p.token_bits), "last_token_trigger": Out(p.token_bits),
        })
        # The exposure registers (not ports: the host sees them through view_slot). Made here
        # rather than in elaborate() only so that the formal harness can name them in helper
        # invariants, which it proves like any assertion (tests/formal/risk_props.py).
        n, pb, ob = p.slots, p.position_bits, p.open_bits
        self.exposure = SimpleNamespace(
            position=Array(Signal(signed(pb), name=f"position{s}") for s in range(n)),
            open_buy=Array(Signal(ob, name=f"open_buy{s}") for s in range(n)),
            open_sell=Array(Signal(ob, name=f"open_sell{s}") for s in range(n)))
        # The limit banks and the market table, for the same harness: the global sets are the
        # registers themselves; ``limit_rows`` (row ``slot + bank * 2**slot_bits``) and
        # ``market_rows`` are the block RAMs' contents, driven by asynchronous read ports
        # only when ``observe`` is set (the formal harness; never the core, whose RAMs keep
        # only their synchronous ports, as block RAM needs). With them an induction can
        # relate the harness's copy of the committed set to the gate's.
        GLOB, LIM, MKT = global_layout(p), limits_layout(p), _market_layout(p)
        self.banks = SimpleNamespace(
            glob_active=Signal(GLOB, name="glob_active"),
            glob_shadow=Signal(GLOB, name="glob_shadow"),
            limit_rows=[Signal(LIM, name=f"limit_row{r}") for r in range(2 << p.slot_bits)],
            market_rows=[Signal(MKT, name=f"market_row{s}") for s in range(1 << p.slot_bits)])
        # The operands of the gate's two products of variables, for the same harness: S1's
        # order (shares × price) and S2's collar and reference (collar × reference in basis
        # points), with S2's distance. The harness multiplies these very registers, after
        # proving them equal to the order's own values, so that a solver meets one
        # multiplier per product rather than two 32-bit ones it must prove equal, which z3
        # does not finish (docs/risk.md, "Verification"). They are ordinary pipeline
        # registers, made here only so that they can be named.
        self.operands = SimpleNamespace(
            order=Signal(order_layout(p), name="s1"),
            diff=Signal(p.price_bits, name="s2_diff"), ref=Signal(p.price_bits, name="s2_ref"),
            collar=Signal(p.collar_bits, name="s2_collar"))

    def elaborate(self, platform):  # noqa: PLR0915 - one pipeline, sections follow the doc
        m = Module()
        p = self.p
        n = p.slots
        sb = p.slot_bits
        LIM = limits_layout(p)
        GLOB = global_layout(p)
        MKT = _market_layout(p)
        ORDER = order_layout(p)

        now = Signal(TIME_BITS)
        m.d.sync += now.eq(now + 1)

        # -- limit banks ---------------------------------------------------------------------
        bank = Signal()
        glob_active = self.banks.glob_active
        glob_shadow = self.banks.glob_shadow
        m.submodules.limits = limits = Memory(shape=LIM, depth=2 << sb, init=[])
        lim_rd = limits.read_port()
        copy_rd = limits.read_port()
        lim_wr = limits.write_port()
        if self.observe:
            self._tap(m, limits, self.banks.limit_rows)
        copy_cnt = Signal(range(n + 2))
        copy_row = Signal(sb + 1)
        busy = Signal()
        m.d.comb += [busy.eq(copy_cnt != 0), self.busy.eq(busy), self.bank.eq(bank)]

        # The global set of the next cycle: what a commit makes live, else the active one.
        committing = Signal()
        glob_next = Signal(GLOB)
        m.d.comb += [committing.eq(self.commit & ~busy),
                     glob_next.eq(Mux(committing,
                                      Mux(self.glob_store, self.glob_row, glob_shadow),
                                      glob_active))]
        with m.If(self.glob_store):
            m.d.sync += glob_shadow.eq(self.glob_row)
        with m.If(busy):
            # Row copy_row - 1 (read last cycle) is written; row copy_row is read.
            m.d.comb += [copy_rd.addr.eq(Cat(copy_row[:sb], bank)),
                         lim_wr.addr.eq(Cat((copy_row - 1)[:sb], ~bank)),
                         lim_wr.data.eq(copy_rd.data), lim_wr.en.eq(copy_row != 0)]
            m.d.sync += [copy_cnt.eq(copy_cnt - 1), copy_row.eq(copy_row + 1)]
            with m.If(self.lim_store | self.commit):
                m.d.sync += self.store_error.eq(1)
        with m.Else():
            m.d.comb += [lim_wr.addr.eq(Cat(self.lim_slot, ~bank)), lim_wr.data.eq(self.lim_row),
                         lim_wr.en.eq(self.lim_store)]
            with m.If(self.commit):
                m.d.sync += [bank.eq(~bank), copy_cnt.eq(n + 1), copy_row.eq(0),
                             glob_active.eq(glob_next)]
        with m.If(self.clear_error):
            m.d.sync += self.store_error.eq(0)

        # -- market data (the book's BBO of each symbol) -------------------------------------
        m.submodules.market = market = Memory(shape=MKT, depth=1 << sb, init=[])
        md_wr = market.write_port()
        md_rd = market.read_port(transparent_for=(md_wr,))
        if self.observe:
            self._tap(m, market, self.banks.market_rows)
        m.d.comb += [md_wr.addr.eq(self.md.payload.slot), md_wr.en.eq(self.md.valid),
                     md_wr.data.valid.eq(1), md_wr.data.bid_px.eq(self.md.payload.bid_px),
                     md_wr.data.ask_px.eq(self.md.payload.ask_px),
                     md_wr.data.stale.eq(self.md.payload.stale), md_wr.data.time.eq(now)]

        # -- P: presentation -----------------------------------------------------------------
        o_in = self.orders.payload
        m.d.comb += [lim_rd.addr.eq(Cat(o_in.slot, bank)), md_rd.addr.eq(o_in.slot)]
        s1_valid = Signal()
        s1 = self.operands.order
        s1_glob = Signal(GLOB)
        m.d.sync += [s1_valid.eq(self.orders.valid), s1.eq(o_in), s1_glob.eq(glob_active)]

        # -- S1: the cheap checks, the reference and the distance from it, the notional -----
        lim = Signal(LIM)
        mkt = Signal(MKT)
        m.d.comb += [lim.eq(lim_rd.data), mkt.eq(md_rd.data)]
        age = Signal(TIME_BITS)
        m.d.comb += age.eq(now - mkt.time)
        mid_ok = Signal()
        ref = Signal(p.price_bits)
        m.d.comb += [
            mid_ok.eq(mkt.valid & (mkt.bid_px != 0) & (mkt.ask_px != 0) & ~mkt.stale),
            ref.eq(Mux(mid_ok, (mkt.bid_px + mkt.ask_px) >> 1, lim.ref_px)),
        ]
        diff = Signal(p.price_bits)
        m.d.comb += diff.eq(Mux(s1.price >= ref, s1.price - ref, ref - s1.price))

        # The flags of the failed checks, in the order the verdict takes them. S1 sets all
        # but max_notional and collar, which S2 adds.
        FLAGS = data.StructLayout({
            "disabled": 1, "bad_order": 1, "max_size": 1, "max_notional": 1, "stale": 1,
            "no_ref": 1, "collar": 1})
        max_age = s1_glob.max_age
        s2_valid = Signal()
        s2 = Signal(ORDER)
        s2_flags = Signal(FLAGS)
        s2_notional = Signal(p.notional_bits)
        s2_max_notional = Signal.like(lim.max_notional)
        s2_collar_mode = Signal.like(lim.collar_mode)
        s2_collar = self.operands.collar
        s2_ref = self.operands.ref
        s2_diff = self.operands.diff
        s2_max_long = Signal.like(lim.max_long)
        s2_max_short = Signal.like(lim.max_short)
        s2_max_open = Signal(p.count_bits)
        s2_throttle = Signal()
        m.d.sync += [
            s2_valid.eq(s1_valid), s2.eq(s1),
            s2_flags.disabled.eq(~lim.enable),
            s2_flags.bad_order.eq((s1.shares == 0) | (s1.price == 0)),
            s2_flags.max_size.eq(s1.shares > lim.max_shares),
            s2_flags.stale.eq((mkt.valid & mkt.stale)
                              | ((max_age != 0) & (~mkt.valid | (age > max_age)))),
            s2_flags.no_ref.eq((lim.collar_mode != Collar.OFF) & (ref == 0)),
            s2_notional.eq(s1.shares * s1.price), s2_max_notional.eq(lim.max_notional),
            s2_collar_mode.eq(lim.collar_mode), s2_collar.eq(lim.collar),
            s2_ref.eq(ref), s2_diff.eq(diff),
            s2_max_long.eq(lim.max_long), s2_max_short.eq(lim.max_short),
            s2_max_open.eq(s1_glob.max_open), s2_throttle.eq(s1_glob.rate_period != 0),
        ]

        # -- S2: the collar's multiplies and compares, the notional limit --------------------
        ticks_ok = Signal()
        bps_ok = Signal()
        m.d.comb += [ticks_ok.eq(s2_diff <= s2_collar * Const(p.tick, 16)),
                     bps_ok.eq(s2_diff * Const(10_000, 14) <= s2_collar * s2_ref)]
        collar_on = Signal()
        m.d.comb += collar_on.eq(s2_collar_mode != Collar.OFF)

        s3_valid = Signal()
        s3 = Signal(ORDER)
        s3_flags = Signal(FLAGS)
        s3_max_long = Signal.like(s2_max_long)
        s3_max_short = Signal.like(s2_max_short)
        s3_max_open = Signal.like(s2_max_open)
        s3_throttle = Signal()
        m.d.sync += [
            s3_valid.eq(s2_valid), s3.eq(s2),
            s3_flags.disabled.eq(s2_flags.disabled), s3_flags.bad_order.eq(s2_flags.bad_order),
            s3_flags.max_size.eq(s2_flags.max_size),
            s3_flags.max_notional.eq(s2_notional > s2_max_notional),
            s3_flags.stale.eq(s2_flags.stale), s3_flags.no_ref.eq(s2_flags.no_ref),
            s3_flags.collar.eq(collar_on & ~Mux(s2_collar_mode == Collar.TICKS, ticks_ok,
                                                (s2_collar_mode == Collar.BPS) & bps_ok)),
            s3_max_long.eq(s2_max_long), s3_max_short.eq(s2_max_short),
            s3_max_open.eq(s2_max_open), s3_throttle.eq(s2_throttle),
        ]

        # -- S3: checks against trading state, verdict, state update -------------------------
        PB, OB, CB = p.position_bits, p.open_bits, p.count_bits
        position = self.exposure.position
        open_buy = self.exposure.open_buy
        open_sell = self.exposure.open_sell
        last_token = Array(Signal(p.token_bits, name=f"last_token{i}") for i in range(2))
        open_orders = Signal(CB)
        bucket = Signal(CB)
        gap_pending = Signal()

        slot = s3.slot
        pos = Signal(signed(PB))
        ob = Signal(OB)
        os_ = Signal(OB)
        m.d.comb += [pos.eq(position[slot]), ob.eq(open_buy[slot]), os_.eq(open_sell[slot])]
        # Widths: position PB signed, open OB = PB, shares below OB: the sums fit PB + 3
        # signed bits (at the defaults 48, 48, 32 and 51).
        long_sum = Signal(signed(PB + 3))
        short_sum = Signal(signed(PB + 3))
        m.d.comb += [long_sum.eq(pos + ob + s3.shares),
                     short_sum.eq(signed_wider(os_) + s3.shares - pos)]
        killed_slot = Signal()
        m.d.comb += killed_slot.eq(self.kill_slots.bit_select(slot, 1))

        # Egress: room for this order behind the one verdict ahead of it (module docstring).
        ahead = Signal()
        egress_room = Signal()
        m.d.comb += [ahead.eq(self.verdicts.valid
                              & (self.verdicts.payload.reason == Reason.ACCEPTED)),
                     egress_room.eq(self.egress_space > ahead)]

        # Each check of a new order, in Reason order: the verdict is the first that fails;
        # the order is accepted if none does (accept does not wait for the reason).
        f = s3_flags
        checks = [
            (Reason.KILL, self.kill),
            (Reason.KILL_SYMBOL, killed_slot),
            (Reason.DISABLED, f.disabled),
            (Reason.BAD_TOKEN, s3.token <= last_token[s3.source]),
            (Reason.BAD_ORDER, f.bad_order),
            (Reason.MAX_SIZE, f.max_size),
            (Reason.MAX_NOTIONAL, f.max_notional),
            (Reason.STALE_DATA, f.stale | gap_pending),
            (Reason.NO_REFERENCE, f.no_ref),
            (Reason.PRICE_COLLAR, f.collar),
            (Reason.POSITION_LONG, (s3.side == Side.BUY) & (long_sum > s3_max_long)),
            (Reason.POSITION_SHORT, (s3.side == Side.SELL) & (short_sum > s3_max_short)),
            (Reason.MAX_OPEN, open_orders >= s3_max_open),
            (Reason.THROTTLE, s3_throttle & (bucket == 0)),
            (Reason.EGRESS_FULL, ~egress_room),
        ]
        fails = Signal(len(checks))
        m.d.comb += fails.eq(Cat(cond for _, cond in checks))
        reason = Signal(Reason)
        with m.If(s3.kind == OrderKind.CANCEL):
            m.d.comb += reason.eq(Mux(egress_room, Reason.ACCEPTED, Reason.EGRESS_FULL))
        for i, (r, _) in enumerate(checks):
            with m.Elif(fails[i]):
                m.d.comb += reason.eq(r)
        with m.Else():
            m.d.comb += reason.eq(Reason.ACCEPTED)

        m.d.sync += [self.verdicts.valid.eq(s3_valid), self.verdicts.payload.order.eq(s3),
                     self.verdicts.payload.reason.eq(reason)]
        accept = Signal()       # the verdict accepts a new order: reason ACCEPTED, not a cancel
        m.d.comb += accept.eq(s3_valid & (s3.kind == OrderKind.NEW) & (fails == 0))
        with m.If(accept):
            m.d.sync += last_token[s3.source].eq(s3.token)

        # Open shares: the accepted order adds on its (slot, side), the report subtracts on
        # its own; when both name the same pair, one clamped sum takes both. The sums do not
        # depend on the verdict: ``accept`` only chooses which are written (the order's write
        # comes last, so on the same pair it replaces the report's).
        rep = self.reports.payload
        rv = self.reports.valid

        def clamp_open(value):
            top = (1 << OB) - 1
            return Mux(value < 0, 0, Mux(value > top, top, value))

        for side, table in ((Side.BUY, open_buy), (Side.SELL, open_sell)):
            a_here = Signal(name=f"a_{side.name.lower()}")
            r_here = Signal(name=f"r_{side.name.lower()}")
            m.d.comb += [a_here.eq(accept & (s3.side == side)),
                         r_here.eq(rv & (rep.side == side))]
            same = Signal(name=f"same_{side.name.lower()}")     # the report on the order's slot
            m.d.comb += same.eq(r_here & (rep.slot == slot))
            v_new = Signal(signed(OB + 2), name=f"v_{side.name.lower()}")
            r_new = Signal(signed(OB + 2), name=f"rn_{side.name.lower()}")
            m.d.comb += [v_new.eq(signed_wider(table[slot]) + s3.shares
                                  - Mux(same, rep.shares, 0)),
                         r_new.eq(signed_wider(table[rep.slot]) - rep.shares)]
            with m.If(r_here):
                m.d.sync += table[rep.slot].eq(clamp_open(r_new))
            with m.If(a_here):
                m.d.sync += table[slot].eq(clamp_open(v_new))

        # Positions: fills move them; a host write (start of day) wins over a fill.
        fill = Signal(signed(PB + 2))
        m.d.comb += fill.eq(position[rep.slot] + Mux(rep.side == Side.BUY, rep.shares,
                                                     -rep.shares))
        pmin, pmax = -(1 << (PB - 1)), (1 << (PB - 1)) - 1
        with m.If(rv & (rep.kind == ReportKind.FILL)
                  & ~(self.pos_write & (self.pos_slot == rep.slot))):
            m.d.sync += position[rep.slot].eq(Mux(fill < pmin, pmin,
                                                  Mux(fill > pmax, pmax, fill)))
        with m.If(self.pos_write):
            m.d.sync += position[self.pos_slot].eq(self.pos_value)

        # Open orders: + 1 for an accepted order, - 1 for a report that ends one, saturating;
        # both sums are formed, accept picks one.
        cmax = (1 << CB) - 1
        cnt_keep = Signal(signed(CB + 2))
        cnt_acc = Signal(signed(CB + 2))
        m.d.comb += [cnt_keep.eq(signed_wider(open_orders) - (rv & rep.done)),
                     cnt_acc.eq(signed_wider(open_orders) + 1 - (rv & rep.done))]
        m.d.sync += open_orders.eq(Mux(accept, Mux(cnt_acc > cmax, cmax, cnt_acc),
                                       Mux(cnt_keep < 0, 0, cnt_keep)))

        # Throttle: one token every rate_period cycles up to rate_burst. The bucket is full
        # (rate_burst) while the throttle is off and from the first cycle a commit turns it
        # on; a commit while it stays on only clamps it to the new burst (a commit never
        # adds tokens: they come at the rate). Hence the set of the next cycle, glob_next.
        rate_ctr = Signal(32)
        g = glob_active
        with m.If((g.rate_period == 0) | (glob_next.rate_period == 0)):
            m.d.sync += [rate_ctr.eq(0), bucket.eq(glob_next.rate_burst)]
        with m.Else():
            refill = Signal()
            with m.If(rate_ctr + 1 >= g.rate_period):
                m.d.comb += refill.eq(1)
                m.d.sync += rate_ctr.eq(0)
            with m.Else():
                m.d.sync += rate_ctr.eq(rate_ctr + 1)

            def clamp_bucket(b):
                return Mux(b < 0, 0, Mux(b > glob_next.rate_burst, glob_next.rate_burst, b))
            b_keep = Signal(signed(CB + 2))
            b_acc = Signal(signed(CB + 2))
            m.d.comb += [b_keep.eq(signed_wider(bucket) + refill),
                         b_acc.eq(signed_wider(bucket) + refill - 1)]
            m.d.sync += bucket.eq(Mux(accept, clamp_bucket(b_acc), clamp_bucket(b_keep)))

        with m.If(self.gap):
            m.d.sync += gap_pending.eq(1)
        with m.Elif(self.md_clear):
            m.d.sync += gap_pending.eq(0)

        # -- host view --------------------------------------------------------------------
        m.d.sync += [self.view_position.eq(position[self.view_slot]),
                     self.view_open_buy.eq(open_buy[self.view_slot]),
                     self.view_open_sell.eq(open_sell[self.view_slot])]
        m.d.comb += [self.open_orders.eq(open_orders), self.bucket.eq(bucket),
                     self.gap_pending.eq(gap_pending),
                     self.last_token_host.eq(last_token[0]),
                     self.last_token_trigger.eq(last_token[1])]
        return m

    @staticmethod
    def _tap(m: Module, mem: Memory, rows: list[Signal]) -> None:
        """Drive ``rows`` with ``mem``'s contents, one asynchronous read port per row."""
        for r, row in enumerate(rows):
            port = mem.read_port(domain="comb")
            m.d.comb += [port.addr.eq(r), row.eq(port.data)]
