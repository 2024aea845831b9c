"""Order entry: the exchange's replies, resolved for the risk gate (docs/risk.md, issue 4).

* :mod:`hw.oe.tokens` — our OUCH order-token format (``W`` + source letter + 12 hex digits),
  in Python and as a gateware decoder.
* :mod:`hw.oe.layouts` — the byte-stream signature, lookup and alert layouts, the table index.
* :mod:`hw.oe.parser` — :class:`~hw.oe.parser.OuchParser`: SoupBinTCP + OUCH 4.2 outbound
  messages from a 64-bit AXI4-Stream, one beat a cycle.
* :mod:`hw.oe.table` — :class:`~hw.oe.table.OpenOrderTable`: token -> (slot, side, remaining).
* :mod:`hw.oe.returnpath` — :class:`~hw.oe.returnpath.ReturnPath`: the two together.

The reference model is :mod:`sim.model.oe`.
"""
