"""Stream signatures, payload layouts and the table index of the order-entry return path.

One definition for the gateware (:mod:`hw.oe.parser`, :mod:`hw.oe.table`), the reference
model (:mod:`sim.model.oe`) and the tests. Widths come from the risk gate's layouts
(:mod:`hw.risk.params`), so the return path follows whatever a :class:`RiskParams` instance
says about token, slot and share widths.
"""

from __future__ import annotations

import enum

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out

from hw.risk.params import DEFAULT_RISK, RiskParams, order_layout
from proto import ouch

DATA_BYTES = 8
#: Width of the share fields OUCH carries (executed, decrement shares).
OUCH_SHARES_BITS = 8 * ouch.EXECUTED["executed_shares"].size
DEFAULT_DEPTH = 1024


class AxisByteSignature(wiring.Signature):
    """A TCP engine's received byte stream: 64-bit AXI4-Stream, byte 0 in bits 7:0, ``tkeep``
    contiguous from lane 0. No ``tready``: the parser takes one beat every cycle. ``tlast``
    is carried for the sake of standard AXI plumbing and ignored (a TCP stream has no
    boundaries the application could rely on)."""

    def __init__(self):
        super().__init__({
            "tdata": Out(DATA_BYTES * 8), "tkeep": Out(DATA_BYTES), "tvalid": Out(1),
            "tlast": Out(1),
        })


class LookupKind(enum.IntEnum):
    """The OUCH messages that change an open order, as the parser hands them to the table."""

    EXECUTED = 0   #: ``E``: shares executed -> a FILL report
    CANCELED = 1   #: ``C``: shares canceled -> an OUT report
    REJECTED = 2   #: ``J``: the whole order rejected -> an OUT report of what remains


def shares_bits(p: RiskParams = DEFAULT_RISK) -> int:
    return order_layout(p)["shares"].width


def lookup_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    """One parsed execution report, keyed by our token: what the table resolves."""
    return data.StructLayout({
        "kind": 2,                       # LookupKind
        "source": 1,                     # Source (the token's letter)
        "token": p.token_bits,           # the token number
        "shares": OUCH_SHARES_BITS,      # executed / decrement shares (0 for J)
    })


def alert_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    """An accepted order the table could not track (its index held a live order): enough for
    the host to find it and to know which exposure stays counted in the gate."""
    o = order_layout(p)
    return data.StructLayout({
        "source": 1, "token": p.token_bits, "slot": o["slot"].shape, "side": 1,
        "shares": o["shares"].shape,
    })


def lookup_signature(p: RiskParams = DEFAULT_RISK) -> stream.Signature:
    return stream.Signature(lookup_layout(p), always_ready=True)


def index_bits(depth: int) -> int:
    if depth < 4 or depth & (depth - 1):
        raise ValueError("the table depth must be a power of two, at least 4")
    return depth.bit_length() - 1


def table_index(source: int, token: int, depth: int) -> int:
    """Where ``(source, token)`` lives in a table of ``depth`` entries: the source is the top
    index bit, the token's low bits the rest (gateware: ``Cat(token[:b-1], source)``).

    Why not a hash: tokens of one source increase, so low bits give consecutive tokens
    consecutive entries and a guarantee a hash cannot — an order of one source is refused
    (``table_conflict``) only if the order ``depth/2``, ``depth``, ... token numbers before it
    is still open — and the two sources never compete for an entry."""
    b = index_bits(depth)
    return (int(source) << (b - 1)) | (int(token) & ((1 << (b - 1)) - 1))
