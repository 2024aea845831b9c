"""The risk gate behind flat, plainly named ports, for Verilator.

:class:`~hw.risk.gate.RiskGate` has stream and struct ports (``orders.payload.token`` …).
Converted as they are, they become many escaped or ``__``-joined Verilog names, and a C++
driver would need to know each one. The wrapper gives every input and output one plain
``Signal``, and packs each struct into one vector with the gate's own layout
(``.as_value()``), so the driver can treat every port the same way — bytes in, bytes out —
and the Python side packs and unpacks fields with the layouts of :mod:`hw.risk.params`,
the single definition the gate and the model already share.

The mapping from :class:`~sim.model.risk.Cycle` fields to these ports is the one of
``tests/test_risk_gate.py`` (``_drive``): ``<x>_valid`` says the cycle carries ``<x>``, the
strobes ``lim_store``/``glob_store``/``pos_write`` qualify their data ports; ``egress_space``
carries :func:`sim.model.risk.egress_space` of every cycle.
"""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.risk.gate import RiskGate
from hw.risk.params import (
    RiskParams,
    global_layout,
    limits_layout,
    md_layout,
    order_layout,
    report_layout,
    verdict_layout,
)

__all__ = ["TOP_NAME", "RiskBench", "bench_verilog"]

TOP_NAME = "riskbench"


class RiskBench(wiring.Component):
    """:class:`RiskGate` with flat ports; see the module docstring.

    Every port is unsigned, ``pos_value`` and ``view_position`` included: they carry the
    two's complement of the gate's signed values (48 bits at the default widths), which is
    what a byte copy wants.
    """

    def __init__(self, params: RiskParams):
        self.params = p = params
        sb = p.slot_bits
        super().__init__({
            "order_valid": In(1), "order": In(order_layout(p).size),
            "report_valid": In(1), "report": In(report_layout(p).size),
            "md_valid": In(1), "md": In(md_layout(p).size),
            "kill": In(1), "kill_slots": In(p.slots),
            "lim_store": In(1), "lim_slot": In(sb), "lim_row": In(limits_layout(p).size),
            "glob_store": In(1), "glob_row": In(global_layout(p).size),
            "commit": In(1), "clear_error": In(1),
            "pos_write": In(1), "pos_slot": In(sb), "pos_value": In(p.position_bits),
            "gap": In(1), "md_clear": In(1), "egress_space": In(p.count_bits),
            "view_slot": In(sb),
            "verdict_valid": Out(1), "verdict": Out(verdict_layout(p).size),
            "busy": Out(1), "store_error": Out(1), "bank": Out(1), "gap_pending": Out(1),
            "view_position": Out(p.position_bits),
            "view_open_buy": Out(p.open_bits), "view_open_sell": Out(p.open_bits),
            "open_orders": Out(p.count_bits), "bucket": Out(p.count_bits),
            "last_token_host": Out(p.token_bits), "last_token_trigger": Out(p.token_bits),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.gate = g = RiskGate(self.params)
        m.d.comb += [
            g.orders.valid.eq(self.order_valid), g.orders.payload.as_value().eq(self.order),
            g.reports.valid.eq(self.report_valid), g.reports.payload.as_value().eq(self.report),
            g.md.valid.eq(self.md_valid), g.md.payload.as_value().eq(self.md),
            g.kill.eq(self.kill), g.kill_slots.eq(self.kill_slots),
            g.lim_store.eq(self.lim_store), g.lim_slot.eq(self.lim_slot),
            g.lim_row.as_value().eq(self.lim_row),
            g.glob_store.eq(self.glob_store), g.glob_row.as_value().eq(self.glob_row),
            g.commit.eq(self.commit), g.clear_error.eq(self.clear_error),
            g.pos_write.eq(self.pos_write), g.pos_slot.eq(self.pos_slot),
            g.pos_value.eq(self.pos_value.as_signed()),
            g.gap.eq(self.gap), g.md_clear.eq(self.md_clear),
            g.egress_space.eq(self.egress_space),
            g.view_slot.eq(self.view_slot),
            self.verdict_valid.eq(g.verdicts.valid),
            self.verdict.eq(g.verdicts.payload.as_value()),
            self.busy.eq(g.busy), self.store_error.eq(g.store_error), self.bank.eq(g.bank),
            self.gap_pending.eq(g.gap_pending),
            self.view_position.eq(g.view_position), self.view_open_buy.eq(g.view_open_buy),
            self.view_open_sell.eq(g.view_open_sell),
            self.open_orders.eq(g.open_orders), self.bucket.eq(g.bucket),
            self.last_token_host.eq(g.last_token_host),
            self.last_token_trigger.eq(g.last_token_trigger),
        ]
        return m


def bench_verilog(params: RiskParams) -> str:
    """Verilog of :class:`RiskBench` (top module :data:`TOP_NAME`; plus ``clk`` and ``rst``).

    Not cached: converting the 4-slot gate takes about a second, and the driver build is
    keyed on this text, so the Verilog itself is the cache key's ground truth.
    """
    return verilog.convert(RiskBench(params), name=TOP_NAME)
