"""Safety properties of the risk gate, for SymbiYosys (``tools/formal.py``, ``make formal``).

The harness wraps a :class:`~hw.risk.gate.RiskGate` whose every input is free — any order,
report, market update, host write, commit or kill switch in any cycle — and states what
must hold for all of them. It never looks inside the gate: what it asserts is computed from
the gate's inputs and outputs alone, by logic written here, so a property is not the
gate's own logic checked against itself.

Two property sets, two proof modes (and a negative control, ``control``, that must fail):

* ``pipeline`` (unbounded, k-induction): every order presented yields exactly one verdict,
  three cycles later, for that same order; no new order is accepted while the global or its
  symbol's kill switch was on in the cycle it was decided; a cancel is never rejected.
* ``limits`` (bounded model check from reset): no accepted order breaks the limit set that
  was committed when it was presented — enabled symbol, non-zero shares and price, size,
  notional, price collar in ticks or basis points around the reference the harness derives
  from the market data it saw — nor the long and short position limits (position plus open
  orders at their worst case, tracked here from the accepted verdicts, the execution reports
  and the host's position writes), nor the open-order limit. The limit tables live in block
  RAM, whose contents induction cannot relate to the harness's copy without looking inside,
  so this set is proven for every input sequence up to the depth in ``tools/formal.py``,
  with the operands of its multiplications (shares, prices, collar) bounded to
  :data:`VALUE_BITS` bits.
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Cat, Const, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from hw.risk.gate import RiskGate
from hw.risk.params import (
    COUNT_BITS,
    OPEN_BITS,
    POSITION_BITS,
    PRICE_BITS,
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
)
from sim.model.risk import LATENCY

#: Small enough for the solver, large enough for two symbols to interfere.
FORMAL_PARAMS = RiskParams(slots=2, tick=100, token_bits=8)
#: Bound on the operands of multiplications in the ``limits`` set (see there).
VALUE_BITS = 10


def _signed(value):
    return Cat(value, Const(0, 1)).as_signed()


class RiskProps(wiring.Component):
    """The gate with free inputs and the assertions of one property set."""

    def __init__(self, props: str, params: RiskParams = FORMAL_PARAMS):
        if props not in ("pipeline", "limits", "arith", "control"):
            raise ValueError(f"unknown property set {props!r}")
        self.arith = props == "arith"
        self.props = "limits" if self.arith else props
        self.p = p = params
        sb = p.slot_bits
        super().__init__({
            "o_valid": In(1), "o": In(order_layout(p)),
            "r_valid": In(1), "r": In(report_layout(p)),
            "md_valid": In(1), "md": In(md_layout(p)),
            "kill": In(1), "kill_slots": In(p.slots),
            "lim_slot": In(sb), "lim_row": In(limits_layout()), "lim_store": In(1),
            "glob_row": In(global_layout()), "glob_store": In(1),
            "commit": In(1), "clear_error": In(1),
            "pos_slot": In(sb), "pos_value": In(signed(POSITION_BITS)), "pos_write": In(1),
            "gap": In(1), "md_clear": In(1), "view_slot": In(sb),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        m.submodules.gate = gate = RiskGate(p)
        m.d.comb += [
            gate.orders.valid.eq(self.o_valid), gate.orders.payload.eq(self.o),
            gate.reports.valid.eq(self.r_valid), gate.reports.payload.eq(self.r),
            gate.md.valid.eq(self.md_valid), gate.md.payload.eq(self.md),
            gate.kill.eq(self.kill), gate.kill_slots.eq(self.kill_slots),
            gate.lim_slot.eq(self.lim_slot), gate.lim_row.eq(self.lim_row),
            gate.lim_store.eq(self.lim_store), gate.glob_row.eq(self.glob_row),
            gate.glob_store.eq(self.glob_store), gate.commit.eq(self.commit),
            gate.clear_error.eq(self.clear_error), gate.pos_slot.eq(self.pos_slot),
            gate.pos_value.eq(self.pos_value), gate.pos_write.eq(self.pos_write),
            gate.gap.eq(self.gap), gate.md_clear.eq(self.md_clear),
            gate.view_slot.eq(self.view_slot),
        ]
        # Slot numbers beyond the design's slots are not ports of the real core.
        for sig in (self.o.slot, self.r.slot, self.md.slot, self.lim_slot, self.pos_slot,
                    self.view_slot):
            m.d.comb += Assume(sig < p.slots)
        # A reset mid-run clears registers but not block RAM, as on the device; the
        # properties are about a run from power-up.
        m.d.comb += Assume(~ResetSignal())

        v = gate.verdicts
        accepted_new = Signal()
        m.d.comb += accepted_new.eq(v.valid & (v.payload.reason == Reason.ACCEPTED)
                                    & (v.payload.order.kind == OrderKind.NEW))
        if self.props == "pipeline":
            self._pipeline(m, gate, accepted_new)
        elif self.props == "limits":
            self._limits(m, gate, accepted_new)
        else:
            # A negative control: orders *can* be accepted, so this must fail. Were it to
            # pass, the assumptions would exclude every interesting run, and the proofs
            # above would be vacuous.
            m.d.comb += Assert(~accepted_new)
        return m

    # -- exactly one verdict, for the right order, and the kill switches ----------------------
    def _pipeline(self, m: Module, gate: RiskGate, accepted_new) -> None:
        v = gate.verdicts
        valid_d = [Signal(name=f"valid_d{i}") for i in range(LATENCY)]
        order_d = [Signal(order_layout(self.p), name=f"order_d{i}") for i in range(LATENCY)]
        m.d.sync += [valid_d[0].eq(self.o_valid), order_d[0].eq(self.o)]
        for i in range(1, LATENCY):
            m.d.sync += [valid_d[i].eq(valid_d[i - 1]), order_d[i].eq(order_d[i - 1])]
        m.d.comb += Assert(v.valid == valid_d[-1])
        with m.If(v.valid):
            m.d.comb += Assert(v.payload.order.as_value() == order_d[-1].as_value())
            m.d.comb += Assert(v.payload.reason <= max(Reason))
            with m.If(v.payload.order.kind == OrderKind.CANCEL):
                m.d.comb += Assert(v.payload.reason == Reason.ACCEPTED)
        # The verdict leaving in cycle t was decided in cycle t-1: against that cycle's kill.
        kill_d = Signal()
        kill_slots_d = Signal(self.p.slots)
        m.d.sync += [kill_d.eq(self.kill), kill_slots_d.eq(self.kill_slots)]
        with m.If(accepted_new):
            m.d.comb += [Assert(~kill_d),
                         Assert(~kill_slots_d.bit_select(v.payload.order.slot, 1))]

    # -- the committed limits and the position limits ------------------------------------
    def _limits(self, m: Module, gate: RiskGate, accepted_new) -> None:
        p = self.p
        n = p.slots
        LIM = limits_layout()
        GLOB = global_layout()
        v = gate.verdicts
        vo = v.payload.order
        # Multiplier equivalence is what SMT solvers are worst at: a 32 x 32 product checked
        # against another ran for hours. The operands of the products (shares, prices, the
        # collar) are bounded to VALUE_BITS here; limits, positions and open shares keep their
        # full widths. The full-width arithmetic is covered by the 1M-order randomized run.
        for x in (self.o.shares, self.o.price, self.md.bid_px, self.md.ask_px,
                  self.lim_row.ref_px, self.lim_row.collar, self.r.shares):
            m.d.comb += Assume(x < (1 << VALUE_BITS))

        # The committed set as the host's writes define it (docs/risk.md, "Limits").
        shadow = Array(Signal(LIM, name=f"h_shadow{s}") for s in range(n))
        active = Array(Signal(LIM, name=f"h_active{s}") for s in range(n))
        g_shadow = Signal(GLOB)
        g_active = Signal(GLOB)
        busy = Signal(range(n + 2))
        with m.If(busy != 0):
            m.d.sync += busy.eq(busy - 1)
        with m.Elif(self.lim_store):
            m.d.sync += shadow[self.lim_slot].eq(self.lim_row)
        with m.If(self.glob_store):
            m.d.sync += g_shadow.eq(self.glob_row)
        with m.If(self.commit & (busy == 0)):
            m.d.sync += [busy.eq(n + 1),
                         g_active.eq(Mux(self.glob_store, self.glob_row, g_shadow))]
            for s in range(n):
                stored = self.lim_store & (self.lim_slot == s)
                m.d.sync += active[s].eq(Mux(stored, self.lim_row, shadow[s]))

        # Market data as the order saw it at presentation (a same-cycle update counts).
        MKT = data.StructLayout({"valid": 1, "bid_px": PRICE_BITS, "ask_px": PRICE_BITS,
                                 "stale": 1})
        market = Array(Signal(MKT, name=f"h_md{s}") for s in range(n))
        with m.If(self.md_valid):
            m.d.sync += [market[self.md.slot].valid.eq(1),
                         market[self.md.slot].bid_px.eq(self.md.bid_px),
                         market[self.md.slot].ask_px.eq(self.md.ask_px),
                         market[self.md.slot].stale.eq(self.md.stale)]
        seen = Signal(MKT)
        m.d.comb += seen.eq(market[self.o.slot])
        with m.If(self.md_valid & (self.md.slot == self.o.slot)):
            m.d.comb += [seen.valid.eq(1), seen.bid_px.eq(self.md.bid_px),
                         seen.ask_px.eq(self.md.ask_px), seen.stale.eq(self.md.stale)]

        # What each order was presented with, carried to its verdict.
        lim_d = [Signal(LIM, name=f"lim_d{i}") for i in range(LATENCY)]
        glob_d = [Signal(GLOB, name=f"glob_d{i}") for i in range(LATENCY)]
        mkt_d = [Signal(MKT, name=f"mkt_d{i}") for i in range(LATENCY)]
        m.d.sync += [lim_d[0].eq(active[self.o.slot]), glob_d[0].eq(g_active),
                     mkt_d[0].eq(seen)]
        for i in range(1, LATENCY):
            m.d.sync += [lim_d[i].eq(lim_d[i - 1]), glob_d[i].eq(glob_d[i - 1]),
                         mkt_d[i].eq(mkt_d[i - 1])]
        lim, glob, mkt = lim_d[-1], glob_d[-1], mkt_d[-1]

        mid_ok = mkt.valid & (mkt.bid_px != 0) & (mkt.ask_px != 0) & ~mkt.stale
        ref = Signal(PRICE_BITS + 1)
        m.d.comb += ref.eq(Mux(mid_ok, (mkt.bid_px + mkt.ask_px) >> 1, lim.ref_px))
        dist = Signal(signed(PRICE_BITS + 2))
        m.d.comb += dist.eq(_signed(vo.price) - _signed(ref))
        absd = Signal(PRICE_BITS + 1)
        m.d.comb += absd.eq(Mux(dist < 0, -dist, dist))
        with m.If(accepted_new):
            m.d.comb += [
                Assert(lim.enable),
                Assert((vo.shares != 0) & (vo.price != 0)),
                Assert(vo.shares <= lim.max_shares),
                Assert(lim.collar_mode != 3),
            ]
            with m.If(lim.collar_mode != Collar.OFF):
                m.d.comb += Assert(ref != 0)
            if self.arith:
                m.d.comb += Assert(vo.shares * vo.price <= lim.max_notional)
                with m.If(lim.collar_mode == Collar.TICKS):
                    m.d.comb += Assert(absd <= lim.collar * p.tick)
                with m.If(lim.collar_mode == Collar.BPS):
                    m.d.comb += Assert(absd * 10_000 <= lim.collar * ref)

        # Exposure, from what left the gate and what came back. The gate decided the
        # verdict leaving now one cycle ago, against the state before that cycle's report
        # and position write: the harness applies those one cycle late to compare alike.
        pos = Array(Signal(signed(POSITION_BITS + 4), name=f"h_pos{s}") for s in range(n))
        opn = [Array(Signal(OPEN_BITS + 2, name=f"h_open{side}{s}") for s in range(n))
               for side in range(2)]
        open_orders = Signal(COUNT_BITS + 2)
        r_d = Signal(report_layout(p))
        rv_d = Signal()
        pw_d = Signal()
        ps_d = Signal(p.slot_bits)
        pv_d = Signal(signed(POSITION_BITS))
        m.d.sync += [r_d.eq(self.r), rv_d.eq(self.r_valid), pw_d.eq(self.pos_write),
                     ps_d.eq(self.pos_slot), pv_d.eq(self.pos_value)]
        with m.If(accepted_new):
            with m.If(vo.side == Side.BUY):
                m.d.comb += Assert(pos[vo.slot] + opn[0][vo.slot] + vo.shares <= lim.max_long)
            with m.Else():
                m.d.comb += Assert(_signed(opn[1][vo.slot]) + vo.shares - pos[vo.slot]
                                   <= lim.max_short)
            m.d.comb += Assert(open_orders < glob.max_open)
        top = (1 << OPEN_BITS) - 1
        for side in range(2):
            for s in range(n):
                cur = _signed(opn[side][s])
                add = Mux(accepted_new & (vo.side == side) & (vo.slot == s), vo.shares, 0)
                sub = Mux(rv_d & (r_d.side == side) & (r_d.slot == s), r_d.shares, 0)
                nxt = Signal(signed(OPEN_BITS + 4), name=f"h_next{side}{s}")
                m.d.comb += nxt.eq(cur + add - sub)
                m.d.sync += opn[side][s].eq(Mux(nxt < 0, 0, Mux(nxt > top, top, nxt)))
        pmin, pmax = -(1 << (POSITION_BITS - 1)), (1 << (POSITION_BITS - 1)) - 1
        for s in range(n):
            fill = Signal(signed(POSITION_BITS + 4), name=f"h_fill{s}")
            m.d.comb += fill.eq(pos[s] + Mux(r_d.side == Side.BUY, r_d.shares, -r_d.shares))
            with m.If(pw_d & (ps_d == s)):
                m.d.sync += pos[s].eq(pv_d)
            with m.Elif(rv_d & (r_d.kind == ReportKind.FILL) & (r_d.slot == s)):
                m.d.sync += pos[s].eq(Mux(fill < pmin, pmin, Mux(fill > pmax, pmax, fill)))
        cnt = Signal(signed(COUNT_BITS + 4))
        m.d.comb += cnt.eq(_signed(open_orders) + accepted_new - (rv_d & r_d.done))
        cmax = (1 << COUNT_BITS) - 1
        m.d.sync += open_orders.eq(Mux(cnt < 0, 0, Mux(cnt > cmax, cmax, cnt)))
