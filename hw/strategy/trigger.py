"""On-card triggers: the tick-to-trade path's strategy (docs/orderentry.md, "Triggers").

The host arms one trigger per symbol slot: "when the best ask is at or below P, buy Q" or
"when the best bid is at or above P, sell Q", with a time in force. A trigger is one-shot:
it fires on the first BBO change of its slot that meets the condition (an arm does not
fire on the BBO already there; only a change does), disarms itself, and waits for the host
to arm it again. It never fires on a stale book (the BBO event's stale flag), nor on an
empty side. The order it makes is a limit order at P: a buy pays at most P, a sell gets at
least P, whatever the book does before the order arrives.

Timing: a BBO update in cycle t reads the slot's trigger from block RAM (transparent to a
host arm in the same cycle), the condition is checked in t+1 against the slot's armed bit
as it is then, and the order is on ``orders`` in t+2. At most one BBO update arrives per
cycle, so at most one order leaves per cycle and nothing queues here.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.risk.params import (
    DEFAULT_RISK,
    PRICE_BITS,
    SHARES_BITS,
    OrderKind,
    RiskParams,
    Side,
    Source,
    md_layout,
    order_layout,
)

#: Cycles from a BBO update to the trigger's order.
LATENCY = 2

#: One slot's trigger (a row of the trigger table).
TriggerLayout = data.StructLayout({
    "side": 1,               # Side: BUY fires on the ask, SELL on the bid
    "price": PRICE_BITS,     # P: the threshold and the order's limit price
    "shares": SHARES_BITS,   # Q
    "tif": 32,
})


class TriggerEngine(wiring.Component):
    """BBO updates in, trigger orders out (source ``TRIGGER``, tokens 1, 2, 3, ...).

    Host side: ``arm`` / ``disarm`` strobes for slot ``cfg_slot`` with ``cfg`` (a
    :data:`TriggerLayout`); ``armed`` shows every slot's armed bit. ``inc_fired`` counts.
    """

    def __init__(self, params: RiskParams = DEFAULT_RISK):
        self.p = p = params
        super().__init__({
            "bbo": In(stream.Signature(md_layout(p), always_ready=True)),
            "orders": Out(stream.Signature(order_layout(p), always_ready=True)),
            "cfg_slot": In(p.slot_bits), "cfg": In(TriggerLayout),
            "arm": In(1), "disarm": In(1),
            "armed": Out(p.slots),
            "inc_fired": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        m.submodules.table = table = Memory(shape=TriggerLayout, depth=1 << p.slot_bits,
                                            init=[])
        wr = table.write_port()
        rd = table.read_port(transparent_for=(wr,))
        m.d.comb += [wr.addr.eq(self.cfg_slot), wr.data.eq(self.cfg), wr.en.eq(self.arm),
                     rd.addr.eq(self.bbo.payload.slot)]

        armed = Signal(p.slots)
        m.d.comb += self.armed.eq(armed)

        # Stage 1: the BBO update and the trigger row read for its slot.
        b_valid = Signal()
        b = Signal(md_layout(p))
        m.d.sync += [b_valid.eq(self.bbo.valid), b.eq(self.bbo.payload)]
        trig = Signal(TriggerLayout)
        m.d.comb += trig.eq(rd.data)
        hit = Signal()
        with m.If(trig.side == Side.BUY):
            m.d.comb += hit.eq((b.ask_px != 0) & (b.ask_px <= trig.price))
        with m.Else():
            m.d.comb += hit.eq((b.bid_px != 0) & (b.bid_px >= trig.price))
        fire = Signal()
        m.d.comb += fire.eq(b_valid & armed.bit_select(b.slot, 1) & ~b.stale & hit)

        token = Signal(p.token_bits)
        o = self.orders.payload
        m.d.sync += self.orders.valid.eq(fire)
        with m.If(fire):
            m.d.sync += [token.eq(token + 1),
                         o.kind.eq(OrderKind.NEW), o.source.eq(Source.TRIGGER),
                         o.token.eq(token + 1), o.slot.eq(b.slot), o.side.eq(trig.side),
                         o.shares.eq(trig.shares), o.price.eq(trig.price), o.tif.eq(trig.tif)]
        m.d.comb += self.inc_fired.eq(fire)

        # Armed bits: a fire disarms its slot; a host command in the same cycle wins.
        for s in range(p.slots):
            with m.If(fire & (b.slot == s)):
                m.d.sync += armed[s].eq(0)
            with m.If((self.arm | self.disarm) & (self.cfg_slot == s)):
                m.d.sync += armed[s].eq(self.arm)
        return m
