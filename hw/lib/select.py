"""One-hot selection as an AND-OR: the multiplexer every block of the core builds.

A binary-coded multiplexer of *n* inputs is a tree of 2:1 muxes whose select lines fan out to
every level; when the select is already one-hot (a match vector, a round-robin grant, a lane
that starts a packet) each input needs only its own bit, and the result is one AND per input
and a wide OR, which LUT4s pack well and which is zero when nothing is selected. The book, the
order-entry parser, the event queue and the CSR bank all select this way, through these two
functions, so that "at most one bit set" means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from amaranth.hdl import Const, Mux, Value, ValueLike


def any_of(values: Iterable[ValueLike], width: int = 0) -> Value:
    """Bitwise OR of ``values``; ``Const(0, width)`` when there are none."""
    out: Value = Const(0, width)
    for v in values:
        out = out | v
    return out


def one_hot_or(sel: Value | Sequence[ValueLike], values: Sequence[ValueLike],
               width: int = 0) -> Value:
    """``values[i]`` for the one set bit ``i`` of ``sel``; 0 when none is set.

    With more than one bit set the result is the OR of the selected values: callers whose
    selector can have several bits set must make it one-hot first (for example by keeping its
    lowest set bit). ``width`` is the result's width when ``values`` is empty.
    """
    if len(sel) != len(values):
        raise ValueError(f"{len(sel)} select bits for {len(values)} values")
    return any_of((Mux(sel[i], v, 0) for i, v in enumerate(values)), width)
