"""Safety properties of the risk gate, for SymbiYosys (``tools/formal.py``, ``make formal``).

The harness wraps a :class:`~hw.risk.gate.RiskGate` whose every input is free — any order,
report, market update, host write, commit or kill switch in any cycle, any value of every
field — and states what must hold for all of them. Every property is computed from the
gate's inputs and outputs alone, by logic written here, so a property is not the gate's own
logic checked against itself.

The property sets (``tools/formal.py`` runs each as a proof; docs/risk.md, "Verification"):

* ``pipeline`` (k-induction, unbounded; default widths): every order presented yields
  exactly one verdict, :data:`~sim.model.risk.LATENCY` (4) cycles later, for that same
  order; no new order is accepted while the global or its symbol's kill switch was on in the
  cycle it was decided; a cancel is rejected for nothing but ``EGRESS_FULL``.
* ``accounting`` (k-induction, unbounded): what the gate shows the host of its trading state
  — the open-order count, and the position and open buys and sells of the symbol selected by
  ``view_slot`` — is what the harness derives from the accepted verdicts, the execution
  reports and the host's position writes. It also proves the *invariants* below.
* ``limits``, ``notional``, ``collar``, ``position`` (k-induction, unbounded): no
  accepted order breaks the limit set that was committed when it was presented — enabled
  symbol, non-zero shares and price, size, no reserved collar mode, a reference price when
  collared, the open-order limit (``limits``); shares × price within the notional limit
  (``notional``); the price collar in ticks or basis points around the reference the harness
  derives from the market data the order saw (``collar``); the long and short position
  limits, position plus open orders at their worst case as the harness tracks them
  (``position``).
* ``control``: a negative control that claims no order is ever accepted, and must fail —
  under every assumption the limit sets make.
* ``egress`` (k-induction, unbounded; default widths): an accepted order never finds the
  egress queue full. The harness models the OUCH encoder's FIFO as a queue of
  ``egress_depth`` entries (16, the encoder's) fed by every verdict that accepts an order
  (new or cancel: both are encoded), drained by a free input in any cycle it holds an
  entry, and drives the gate's ``egress_space`` with its free entries, as ``space`` does in
  the core: the queue never holds more than its depth and is never written when full.
  ``egress_control`` (bounded, a 4-entry queue) claims the queue is never full and must
  fail: the gate does fill it, so the proof is not vacuous.

Every set but ``pipeline`` and the egress sets runs on :data:`NARROW_PARAMS`, an instance
with a few bits of shares, prices and limits (the gate's widths are parameters,
:class:`RiskParams`): there every value of every input is free, and z3 finishes every set.
``accounting``, ``limits``, ``notional``, ``collar``, ``position`` and ``control`` also run at
the default widths (``full``). The notional and collar sets take their products of two
variables on the gate's operand registers, which they prove hold the order's values (see
the comment at ``RiskGate.operands``): two 32-bit multipliers to prove equal are what z3
does not finish.

**Invariants.** A property about the verdict relates it to state the harness keeps: the
committed limit set, the market data, positions and open shares. For an induction, that
state must be tied to the gate's, or the solver starts from a gate whose tables disagree
with the harness's and finds a "counterexample" no run reaches. So the harness also states
how its own bookkeeping relates to the gate: the verdict leaving is for the order presented
``LATENCY`` cycles before; the gate's ``bank``, ``busy`` and ``open_orders`` outputs are the
harness's; the live bank's row of each symbol and the active globals are the committed set,
the shadow bank's rows and globals what the host stored since (but during the copy), the
market table the last update of each symbol; each symbol's position and open buys and sells
are the harness's a cycle late. That names the gate's internals in two places,
``RiskGate.exposure`` (registers) and ``RiskGate.banks`` (the global registers, and the
block RAMs' rows through read ports the gate adds only for ``observe=True``).
``accounting`` *asserts* them and proves them by k-induction for every reachable state of
its instance; the limit sets *assume* them, which excludes no reachable run (the gate and
the bookkeeping are the same logic in every set, and the invariants constrain only state,
never an input), and prove their properties by k-induction too. The properties themselves
still see only ports and the harness's own state.
"""

from __future__ import annotations

from itertools import pairwise

from amaranth.hdl import (
    Array,
    Assert,
    Assume,
    Cat,
    Const,
    Module,
    Mux,
    ResetSignal,
    Signal,
    signed,
)
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from hw.risk.gate import RiskGate, signed_wider
from hw.risk.params import (
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

#: The ``pipeline`` proof: default quantity widths, few slots and token bits (small enough
#: for the solver, large enough for two symbols to interfere).
FORMAL_PARAMS = RiskParams(slots=2, tick=100, token_bits=8)
#: Every other proof: a narrow instance. Shares below 32, prices below 128 (a 5 × 7 bit
#: notional), collars to 63 ticks of 3 or 63 basis points, long and short limits below 128,
#: up to 15 open orders; open shares and positions then have 9 bits (RiskParams derives
#: them so that nothing overflows), so saturation is reachable in a run.
NARROW_PARAMS = RiskParams(slots=2, tick=3, token_bits=8, shares_bits=5, price_bits=7,
                           limit_bits=7, collar_bits=6, count_bits=4)

SETS = ("pipeline", "accounting", "limits", "notional", "collar", "position", "control",
        "egress", "egress_control")
#: Entries of the egress queue the ``egress`` sets model: OrderEncoder's default depth.
EGRESS_DEPTH = 16


def _delayed(m: Module, value, shape, n: int, name: str) -> list[Signal]:
    """``n`` registers of ``shape``: the first holds ``value`` a cycle late, each next one the
    one before it a cycle later (so ``[-1]`` is ``value`` from ``n`` cycles ago)."""
    regs = [Signal(shape, name=f"{name}{i}") for i in range(n)]
    m.d.sync += regs[0].eq(value)
    for prev, reg in pairwise(regs):
        m.d.sync += reg.eq(prev)
    return regs


class RiskProps(wiring.Component):
    """The gate with free inputs and the assertions of one property set."""

    def __init__(self, props: str, params: RiskParams | None = None, *,
                 egress_depth: int = EGRESS_DEPTH):
        if props not in SETS:
            raise ValueError(f"unknown property set {props!r}; known: {', '.join(SETS)}")
        self.props = props
        if params is None:
            params = FORMAL_PARAMS if props in ("pipeline", "egress", "egress_control") \
                else NARROW_PARAMS
        self.p = p = params
        if props.startswith("egress") and not 1 <= egress_depth < 1 << p.count_bits:
            raise ValueError(f"egress_depth must be 1..{(1 << p.count_bits) - 1} "
                             f"(egress_space has count_bits = {p.count_bits} bits)")
        self.egress_depth = egress_depth
        sb = p.slot_bits
        super().__init__({
            "o_valid": In(1), "o": In(order_layout(p)),
            "r_valid": In(1), "r": In(report_layout(p)),
            "md_valid": In(1), "md": In(md_layout(p)),
            "kill": In(1), "kill_slots": In(p.slots),
            "lim_slot": In(sb), "lim_row": In(limits_layout(p)), "lim_store": In(1),
            "glob_row": In(global_layout(p)), "glob_store": In(1),
            "commit": In(1), "clear_error": In(1),
            "pos_slot": In(sb), "pos_value": In(signed(p.position_bits)), "pos_write": In(1),
            "gap": In(1), "md_clear": In(1), "view_slot": In(sb),
            "egress_space": In(p.count_bits),     # free, but in the egress sets
            "egress_read": In(1),                 # the egress sets: an entry leaves
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        m.submodules.gate = gate = RiskGate(p, observe=True)
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
        if not self.props.startswith("egress"):
            m.d.comb += gate.egress_space.eq(self.egress_space)
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
        elif self.props.startswith("egress"):
            self._egress(m, gate)
        else:
            self._limits(m, gate, accepted_new)
        if self.props == "control":
            # A negative control: orders *can* be accepted, also under the invariants the
            # bounded sets assume, so this must fail. Were it to pass, the assumptions
            # would exclude every interesting run, and the proofs would be vacuous.
            m.d.comb += Assert(~accepted_new)
        return m

    # -- exactly one verdict, for the right order, and the kill switches ----------------------
    def _pipeline(self, m: Module, gate: RiskGate, accepted_new) -> None:
        v = gate.verdicts
        valid_d = _delayed(m, self.o_valid, 1, LATENCY, "valid_d")
        order_d = _delayed(m, self.o, order_layout(self.p), LATENCY, "order_d")
        m.d.comb += Assert(v.valid == valid_d[-1])
        with m.If(v.valid):
            m.d.comb += Assert(v.payload.order.as_value() == order_d[-1].as_value())
            m.d.comb += Assert(v.payload.reason <= max(Reason))
            with m.If(v.payload.order.kind == OrderKind.CANCEL):
                m.d.comb += Assert((v.payload.reason == Reason.ACCEPTED)
                                   | (v.payload.reason == Reason.EGRESS_FULL))
        # The verdict leaving in cycle t was decided in cycle t-1: against that cycle's kill.
        kill_d = Signal()
        kill_slots_d = Signal(self.p.slots)
        m.d.sync += [kill_d.eq(self.kill), kill_slots_d.eq(self.kill_slots)]
        with m.If(accepted_new):
            m.d.comb += [Assert(~kill_d),
                         Assert(~kill_slots_d.bit_select(v.payload.order.slot, 1))]

    # -- the egress queue: never written when full ---------------------------------------------
    def _egress(self, m: Module, gate: RiskGate) -> None:
        """The encoder's FIFO as a queue of ``egress_depth`` entries: every verdict that
        accepts an order (new or cancel) writes one at the end of its cycle, a free
        ``egress_read`` takes one out whenever there is one (any pattern of TX backpressure
        and packet lengths), and ``egress_space`` is its free entries — ``OrderEncoder.space``
        (depth - level) as hw/core.py wires it. As in the encoder's ``BlockFIFO``, a write to a
        full queue is lost even when an entry leaves in the same cycle."""
        d = self.egress_depth
        v = gate.verdicts
        level = Signal(range(d + 1), name="h_egress_level")
        write = Signal(name="h_egress_write")
        read = Signal(name="h_egress_read")
        m.d.comb += [write.eq(v.valid & (v.payload.reason == Reason.ACCEPTED)),
                     read.eq(self.egress_read & (level != 0)),
                     gate.egress_space.eq(d - level)]
        m.d.sync += level.eq(level + write - read)
        if self.props == "egress":
            m.d.comb += Assert(level <= d)
            with m.If(write):
                m.d.comb += Assert(level < d)
        else:
            # The control: the queue never fills up. Must fail.
            m.d.comb += Assert(level != d)

    # -- the committed limits, the position limits and the accounting -------------------------
    def _limits(self, m: Module, gate: RiskGate, accepted_new) -> None:  # noqa: PLR0915
        p = self.p
        n = p.slots
        props = self.props
        LIM = limits_layout(p)
        GLOB = global_layout(p)
        PX = p.price_bits
        v = gate.verdicts
        vo = v.payload.order

        # Invariants: asserted (proven) by ``accounting``, assumed by the others.
        inv = Assert if props == "accounting" else Assume

        # What was presented, carried to its verdict; the verdict is for that order.
        order_d = _delayed(m, self.o, order_layout(p), LATENCY, "h_order_d")
        valid_d = _delayed(m, self.o_valid, 1, LATENCY, "h_valid_d")
        m.d.comb += inv(v.valid == valid_d[-1])
        with m.If(v.valid):
            m.d.comb += inv(vo.as_value() == order_d[-1].as_value())

        # The committed set as the host's writes define it (docs/risk.md, "Limits").
        shadow = Array(Signal(LIM, name=f"h_shadow{s}") for s in range(n))
        active = Array(Signal(LIM, name=f"h_active{s}") for s in range(n))
        g_shadow = Signal(GLOB)
        g_active = Signal(GLOB)
        busy = Signal(range(n + 2))
        bank = Signal()
        with m.If(busy != 0):
            m.d.sync += busy.eq(busy - 1)
        with m.Elif(self.lim_store):
            m.d.sync += shadow[self.lim_slot].eq(self.lim_row)
        with m.If(self.glob_store):
            m.d.sync += g_shadow.eq(self.glob_row)
        with m.If(self.commit & (busy == 0)):
            m.d.sync += [busy.eq(n + 1), bank.eq(~bank),
                         g_active.eq(Mux(self.glob_store, self.glob_row, g_shadow))]
            for s in range(n):
                stored = self.lim_store & (self.lim_slot == s)
                m.d.sync += active[s].eq(Mux(stored, self.lim_row, shadow[s]))
        # Invariant: the gate's bank and busy outputs follow the host's commits.
        m.d.comb += [inv(gate.bank == bank), inv(gate.busy == (busy != 0))]
        # Invariant: the gate's banks hold that set. The live bank's row of each symbol and
        # the active globals are the committed set; the shadow bank's rows and globals are
        # what the host stored since — but while the copy runs, when the shadow rows are
        # being overwritten (and equal the active ones in the harness: stores are refused).
        banks = gate.banks
        rows = Array(banks.limit_rows)
        m.d.comb += [inv(banks.glob_active.as_value() == g_active.as_value()),
                     inv(banks.glob_shadow.as_value() == g_shadow.as_value())]
        for s in range(n):
            m.d.comb += inv(rows[Cat(Const(s, p.slot_bits), bank)].as_value()
                            == active[s].as_value())
            with m.If(busy == 0):
                m.d.comb += inv(rows[Cat(Const(s, p.slot_bits), ~bank)].as_value()
                                == shadow[s].as_value())

        # Market data as the order saw it at presentation (a same-cycle update counts).
        MKT = data.StructLayout({"valid": 1, "bid_px": PX, "ask_px": PX, "stale": 1})
        market = Array(Signal(MKT, name=f"h_md{s}") for s in range(n))
        with m.If(self.md_valid):
            m.d.sync += [market[self.md.slot].valid.eq(1),
                         market[self.md.slot].bid_px.eq(self.md.bid_px),
                         market[self.md.slot].ask_px.eq(self.md.ask_px),
                         market[self.md.slot].stale.eq(self.md.stale)]
        # Invariant: the gate's market table holds the same, but for the time of each write.
        for s in range(n):
            row = banks.market_rows[s]
            m.d.comb += inv(Cat(row.valid, row.bid_px, row.ask_px, row.stale)
                            == Cat(market[s].valid, market[s].bid_px, market[s].ask_px,
                                   market[s].stale))
        seen = Signal(MKT)
        m.d.comb += seen.eq(market[self.o.slot])
        with m.If(self.md_valid & (self.md.slot == self.o.slot)):
            m.d.comb += [seen.valid.eq(1), seen.bid_px.eq(self.md.bid_px),
                         seen.ask_px.eq(self.md.ask_px), seen.stale.eq(self.md.stale)]

        # Each order's limits, globals and market, captured at presentation (a commit in the
        # same cycle takes effect after it), carried to its verdict.
        lim_d = _delayed(m, active[self.o.slot], LIM, LATENCY, "h_lim_d")
        glob_d = _delayed(m, g_active, GLOB, LATENCY, "h_glob_d")
        mkt_d = _delayed(m, seen, MKT, LATENCY, "h_mkt_d")
        lim, glob, mkt = lim_d[-1], glob_d[-1], mkt_d[-1]

        if props == "limits":
            with m.If(accepted_new):
                m.d.comb += [
                    Assert(lim.enable),
                    Assert((vo.shares != 0) & (vo.price != 0)),
                    Assert(vo.shares <= lim.max_shares),
                    Assert(lim.collar_mode != 3),
                ]
                with m.If(lim.collar_mode != Collar.OFF):
                    m.d.comb += Assert(self._reference(m, lim, mkt) != 0)

        # The two products of variables, shares x price and collar x reference, are taken on
        # the gate's own operand registers (RiskGate.operands), which the set first proves
        # equal to the order's values as the harness derives them. A product of the
        # harness's own copies would be a second 32 x 32-bit multiplier, and proving two
        # multipliers equal is what z3 does not finish at the default widths; on the same
        # registers, the product is one term whatever the widths. What the property says is
        # unchanged: equal operands, equal products.
        ops = gate.operands
        if props == "notional":
            # Invariant: S1 holds the order presented a cycle before.
            m.d.comb += Assert(ops.order.as_value() == order_d[0].as_value())
            prod_d = _delayed(m, ops.order.shares * ops.order.price,
                              p.shares_bits + p.price_bits, LATENCY - 1, "h_notional_d")
            with m.If(accepted_new):
                m.d.comb += Assert(prod_d[-1] <= lim.max_notional)

        if props == "collar":
            # At S2, two cycles after presentation: the order, its limits and its market.
            o2, lim2 = order_d[1], lim_d[1]
            ref = self._reference(m, lim2, mkt_d[1])
            dist = Signal(signed(PX + 2))
            m.d.comb += dist.eq(signed_wider(o2.price) - signed_wider(ref))
            absd = Signal(PX + 1)
            m.d.comb += absd.eq(Mux(dist < 0, -dist, dist))
            # Invariant: S2's operands are that order's distance, reference and collar (once
            # S2 holds an order: before the first, S1 saw the RAMs' undefined first read).
            with m.If(valid_d[1]):
                m.d.comb += [Assert(ops.diff == absd), Assert(ops.ref == ref),
                             Assert(ops.collar == lim2.collar)]
            ok = Signal(name="h_collar_ok")
            with m.Switch(lim2.collar_mode):
                with m.Case(Collar.TICKS):
                    m.d.comb += ok.eq(ops.diff <= ops.collar * Const(p.tick, 16))
                with m.Case(Collar.BPS):
                    m.d.comb += ok.eq(ops.diff * Const(10_000, 14) <= ops.collar * ops.ref)
                with m.Default():
                    m.d.comb += ok.eq(1)
            ok_d = _delayed(m, ok, 1, LATENCY - 2, "h_collar_ok_d")
            with m.If(accepted_new):
                m.d.comb += Assert(ok_d[-1])

        # Exposure, from what left the gate and what came back. The gate decided the
        # verdict leaving now one cycle ago, against the state before that cycle's report
        # and position write: the harness applies those one cycle late to compare alike.
        PB, OB, CB = p.position_bits, p.open_bits, p.count_bits
        pos = Array(Signal(signed(PB + 4), name=f"h_pos{s}") for s in range(n))
        opn = [Array(Signal(OB + 2, name=f"h_open{side}{s}") for s in range(n))
               for side in range(2)]
        open_orders = Signal(CB + 2)
        r_d = Signal(report_layout(p))
        rv_d = Signal()
        pw_d = Signal()
        ps_d = Signal(p.slot_bits)
        pv_d = Signal(signed(PB))
        m.d.sync += [r_d.eq(self.r), rv_d.eq(self.r_valid), pw_d.eq(self.pos_write),
                     ps_d.eq(self.pos_slot), pv_d.eq(self.pos_value)]
        top = (1 << OB) - 1
        for side in range(2):
            for s in range(n):
                cur = signed_wider(opn[side][s])
                add = Mux(accepted_new & (vo.side == side) & (vo.slot == s), vo.shares, 0)
                sub = Mux(rv_d & (r_d.side == side) & (r_d.slot == s), r_d.shares, 0)
                nxt = Signal(signed(OB + 4), name=f"h_next{side}{s}")
                m.d.comb += nxt.eq(cur + add - sub)
                m.d.sync += opn[side][s].eq(Mux(nxt < 0, 0, Mux(nxt > top, top, nxt)))
        pmin, pmax = -(1 << (PB - 1)), (1 << (PB - 1)) - 1
        for s in range(n):
            fill = Signal(signed(PB + 4), name=f"h_fill{s}")
            m.d.comb += fill.eq(pos[s] + Mux(r_d.side == Side.BUY, r_d.shares, -r_d.shares))
            with m.If(pw_d & (ps_d == s)):
                m.d.sync += pos[s].eq(pv_d)
            with m.Elif(rv_d & (r_d.kind == ReportKind.FILL) & (r_d.slot == s)):
                m.d.sync += pos[s].eq(Mux(fill < pmin, pmin, Mux(fill > pmax, pmax, fill)))
        cnt = Signal(signed(CB + 4))
        m.d.comb += cnt.eq(signed_wider(open_orders) + accepted_new - (rv_d & r_d.done))
        cmax = (1 << CB) - 1
        m.d.sync += open_orders.eq(Mux(cnt < 0, 0, Mux(cnt > cmax, cmax, cnt)))

        # The gate's state as of the cycle before the harness's (the lag above). Invariant:
        # its open-order count. The property of ``accounting``: the exposure it shows of the
        # symbol selected by view_slot (a register: the one selected a cycle before).
        oo_d = Signal(CB)
        m.d.sync += oo_d.eq(gate.open_orders)
        m.d.comb += inv(open_orders == oo_d)
        if props == "accounting":
            vs_d = Signal(p.slot_bits)
            m.d.sync += vs_d.eq(self.view_slot)
            m.d.comb += [Assert(gate.view_position == pos[vs_d]),
                         Assert(gate.view_open_buy == opn[0][vs_d]),
                         Assert(gate.view_open_sell == opn[1][vs_d])]
        if props in ("accounting", "position", "control"):
            # Invariant: the gate's exposure registers, a cycle late, are the harness's.
            ex = gate.exposure
            for s in range(n):
                g_pos = Signal(signed(PB), name=f"h_gate_pos{s}")
                g_buy = Signal(OB, name=f"h_gate_buy{s}")
                g_sell = Signal(OB, name=f"h_gate_sell{s}")
                m.d.sync += [g_pos.eq(ex.position[s]), g_buy.eq(ex.open_buy[s]),
                             g_sell.eq(ex.open_sell[s])]
                m.d.comb += [inv(pos[s] == g_pos), inv(opn[0][s] == g_buy),
                             inv(opn[1][s] == g_sell)]

        if props == "limits":
            with m.If(accepted_new):
                m.d.comb += Assert(open_orders < glob.max_open)
        if props == "position":
            with m.If(accepted_new):
                with m.If(vo.side == Side.BUY):
                    m.d.comb += Assert(pos[vo.slot] + opn[0][vo.slot] + vo.shares
                                       <= lim.max_long)
                with m.Else():
                    m.d.comb += Assert(signed_wider(opn[1][vo.slot]) + vo.shares - pos[vo.slot]
                                       <= lim.max_short)

    def _reference(self, m: Module, lim, mkt):
        """The collar's reference as the harness derives it: the BBO mid when both sides are
        there and the book is not stale, else the host's ``ref_px`` (0: none)."""
        mid_ok = mkt.valid & (mkt.bid_px != 0) & (mkt.ask_px != 0) & ~mkt.stale
        ref = Signal(self.p.price_bits + 1, name="h_ref")
        m.d.comb += ref.eq(Mux(mid_ok, (mkt.bid_px + mkt.ask_px) >> 1, lim.ref_px))
        return ref
