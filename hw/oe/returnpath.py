"""The order-entry return path: exchange byte stream in, the risk gate's reports out.

:class:`ReturnPath` is the parser (:mod:`hw.oe.parser`) feeding the open-order table
(:mod:`hw.oe.table`), with the table's verdict input exposed for the gate. It is what the
core instantiates between the TCP engine's receive stream and the gate's ``reports`` input:

==============  =====  ==================================================================
port            dir    what
==============  =====  ==================================================================
``rx``          in     :class:`~hw.oe.layouts.AxisByteSignature`: exchange -> card bytes
``restart``     in     strobe: a new TCP connection; the stream starts a packet here
``verdicts``    in     the gate's verdicts (:func:`~hw.risk.params.verdict_layout`)
``reports``     out    :func:`~hw.risk.params.report_layout`, for the gate's ``reports``
``alert``       out    :func:`~hw.oe.layouts.alert_layout`: an accepted order not tracked
``inc_<name>``  out    counter increments, :data:`COUNTERS` (widths: :data:`COUNTER_WIDTHS`)
==============  =====  ==================================================================

Every stream is ``always_ready`` and carries at most one item a cycle. A report leaves
:data:`LATENCY` cycles after the beat that held its message's last byte; reports keep the
order of their messages.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.oe import parser as _parser
from hw.oe import table as _table
from hw.oe.layouts import DEFAULT_DEPTH, AxisByteSignature, alert_layout
from hw.oe.parser import OuchParser
from hw.oe.table import OpenOrderTable
from hw.risk.params import DEFAULT_RISK, RiskParams, report_layout, verdict_layout

COUNTERS: tuple[str, ...] = _parser.COUNTERS + _table.COUNTERS
COUNTER_WIDTHS: dict[str, int] = {**{c: 2 for c in _parser.COUNTERS},
                                  **{c: 1 for c in _table.COUNTERS}}
#: Cycles from the beat holding a message's last byte to its report.
LATENCY = _parser.LATENCY + _table.LATENCY


class ReturnPath(wiring.Component):
    """See the module docstring."""

    def __init__(self, params: RiskParams = DEFAULT_RISK, *, depth: int = DEFAULT_DEPTH):
        self.p = params
        self.parser = OuchParser(params)
        self.table = OpenOrderTable(params, depth=depth)
        members = {
            "rx": In(AxisByteSignature()),
            "restart": In(1),
            "verdicts": In(stream.Signature(verdict_layout(params), always_ready=True)),
            "reports": Out(stream.Signature(report_layout(params), always_ready=True)),
            "alert": Out(stream.Signature(alert_layout(params), always_ready=True)),
        }
        members |= {f"inc_{c}": Out(w) for c, w in COUNTER_WIDTHS.items()}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.parser = par = self.parser
        m.submodules.table = tab = self.table
        wiring.connect(m, wiring.flipped(self.rx), par.rx)
        wiring.connect(m, par.lookups, tab.lookups)
        wiring.connect(m, wiring.flipped(self.verdicts), tab.verdicts)
        wiring.connect(m, tab.reports, wiring.flipped(self.reports))
        wiring.connect(m, tab.alert, wiring.flipped(self.alert))
        m.d.comb += par.restart.eq(self.restart)
        for c in _parser.COUNTERS:
            m.d.comb += getattr(self, f"inc_{c}").eq(getattr(par, f"inc_{c}"))
        for c in _table.COUNTERS:
            m.d.comb += getattr(self, f"inc_{c}").eq(getattr(tab, f"inc_{c}"))
        return m

