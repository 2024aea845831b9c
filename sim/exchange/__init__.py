"""Exchange-side simulation for the order-entry path: SoupBinTCP 3.0 + OUCH 4.2.

* :mod:`sim.exchange.simulator` — :class:`ExchangeSimulator`, a deterministic bytes-in /
  bytes-out exchange session that fills immediate-or-cancel orders against a caller-supplied
  top of book, and :func:`serve`, the same core behind an asyncio server on loopback.
"""

from .simulator import (
    BboSource,
    Connection,
    ExchangeError,
    ExchangeSimulator,
    Fill,
    Order,
    midnight_clock,
    serve,
)

__all__ = [
    "BboSource", "Connection", "ExchangeError", "ExchangeSimulator", "Fill", "Order",
    "midnight_clock", "serve",
]
