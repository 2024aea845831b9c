"""Risk gate parameters, reject reasons and payload layouts (docs/risk.md).

One definition serves the gateware (:mod:`hw.risk.gate`), the reference model
(:mod:`sim.model.risk`), the formal harness and the host: the layouts are
:class:`~amaranth.lib.data.StructLayout` s, and :func:`fields` lists their members as plain
``(name, bits)`` pairs for Python code that packs or unpacks them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from amaranth.lib import data


class Reason(enum.IntEnum):
    """Verdict of an order. ``ACCEPTED`` is 0; every other value rejects, and when several
    checks fail the order is rejected for the *first* of them in this order."""

    ACCEPTED = 0
    KILL = 1                #: the global kill switch is on
    KILL_SYMBOL = 2         #: the symbol's kill switch is on
    DISABLED = 3            #: the symbol is not enabled for trading
    BAD_TOKEN = 4           #: token not above the last accepted token of its source
    BAD_ORDER = 5           #: zero shares or zero price
    MAX_SIZE = 6            #: shares above the symbol's maximum order size
    MAX_NOTIONAL = 7        #: shares × price above the symbol's maximum notional
    STALE_DATA = 8          #: feed gap not cleared, book stale, or BBO older than the limit
    NO_REFERENCE = 9        #: no usable BBO mid and no host reference price
    PRICE_COLLAR = 10       #: price too far from the reference
    POSITION_LONG = 11      #: position + open buys + shares above the long limit
    POSITION_SHORT = 12     #: open sells + shares − position above the short limit
    MAX_OPEN = 13           #: as many orders open as the limit allows
    THROTTLE = 14           #: the order-rate token bucket is empty
    #: the egress (OUCH encoder) queue has no room for it; also the one reason a cancel can
    #: get (cancels pass every risk check, but are sent through the same queue)
    EGRESS_FULL = 15


REASON_BITS = 4
assert max(Reason) < 1 << REASON_BITS, "Reason outgrew REASON_BITS (verdicts, events)"


class Collar(enum.IntEnum):
    """How a symbol's price collar is given."""

    OFF = 0
    TICKS = 1     #: |price − reference| ≤ collar × tick
    BPS = 2       #: |price − reference| × 10,000 ≤ collar × reference


@dataclass(frozen=True)
class RiskParams:
    """Sizes of the risk gate; checked on construction.

    The quantity widths are parameters so that the same gate can be built narrow: the formal
    proofs (``tests/formal/risk_props.py``) run on an instance with a few bits of shares and
    price, where every value of every input is free, which a solver can finish; the card
    uses the defaults (OUCH 4.2 carries 32-bit shares and prices). The widths that follow
    from them are derived, not chosen, so that no sum the gate keeps can overflow:

    * ``notional_bits = shares_bits + price_bits``: shares × price never wraps;
    * ``open_bits = shares_bits + count_bits``: a side's open shares of at most
      2^count_bits open orders of less than 2^shares_bits shares each;
    * ``position_bits = open_bits`` (signed): fills only move open shares into positions.

    Open shares and positions saturate rather than wrap if reports ever claim more than was
    sent; ``limit_bits`` is below ``position_bits - 1`` so that a saturated value is always
    beyond every long and short limit (a saturation can only make the gate reject).
    """

    slots: int = 64
    tick: int = 100             #: price step of a collar tick (ITCH units: 100 = one cent)
    token_bits: int = 48        #: order token numbers (the OUCH token carries them in hex)
    shares_bits: int = 32       #: shares of an order, a report and ``max_shares``
    price_bits: int = 32        #: prices (order, BBO, ``ref_px``)
    limit_bits: int = 32        #: ``max_long`` and ``max_short`` (unsigned shares)
    collar_bits: int = 16       #: ``collar`` (ticks or basis points)
    count_bits: int = 16        #: open orders, bucket tokens, ``max_open``, ``rate_burst``

    def __post_init__(self):
        if not 1 <= self.slots <= 254:
            raise ValueError("slots must be 1..254")
        if not 1 <= self.tick < 1 << 16:
            raise ValueError("tick must be 1..65535")
        if not 8 <= self.token_bits <= 56:
            raise ValueError("token_bits must be 8..56 (14 OUCH token characters)")
        for name in ("shares_bits", "price_bits"):
            if not 2 <= getattr(self, name) <= 32:
                raise ValueError(f"{name} must be 2..32 (OUCH 4.2 fields are 32 bits)")
        if not 2 <= self.collar_bits <= 16:
            raise ValueError("collar_bits must be 2..16")
        if not 2 <= self.count_bits <= 16:
            raise ValueError("count_bits must be 2..16")
        if not 1 <= self.limit_bits <= self.position_bits - 2:
            raise ValueError(f"limit_bits must be 1..{self.position_bits - 2} "
                             "(position_bits - 2: saturated exposure exceeds every limit)")

    @property
    def slot_bits(self) -> int:
        return max(1, (self.slots - 1).bit_length())

    @property
    def notional_bits(self) -> int:
        return self.shares_bits + self.price_bits

    @property
    def open_bits(self) -> int:
        return self.shares_bits + self.count_bits

    @property
    def position_bits(self) -> int:
        return self.open_bits


DEFAULT_RISK = RiskParams()

#: Widths of the quantities the gate checks, at the defaults (:class:`RiskParams` has them
#: for any instance).
SHARES_BITS = DEFAULT_RISK.shares_bits            # 32
PRICE_BITS = DEFAULT_RISK.price_bits              # 32
NOTIONAL_BITS = DEFAULT_RISK.notional_bits        # 64
LIMIT_BITS = DEFAULT_RISK.limit_bits              # 32: long and short limits (shares)
COLLAR_BITS = DEFAULT_RISK.collar_bits            # 16
#: Positions (signed) and open shares per side: wide enough that no day can overflow them
#: (open shares are below max_open × 2^32 ≤ 2^48; fills are bounded by open shares).
POSITION_BITS = DEFAULT_RISK.position_bits        # 48
OPEN_BITS = DEFAULT_RISK.open_bits                # 48
COUNT_BITS = DEFAULT_RISK.count_bits              # 16: open orders, bucket tokens
AGE_BITS = 32             #: cycles
TIME_BITS = 48            #: the gate's cycle counter


class Side(enum.IntEnum):
    BUY = 0
    SELL = 1


class OrderKind(enum.IntEnum):
    NEW = 0
    CANCEL = 1


class Source(enum.IntEnum):
    HOST = 0
    TRIGGER = 1


def order_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    """An order presented to the gate."""
    return data.StructLayout({
        "kind": 1,            # OrderKind
        "source": 1,          # Source
        "token": p.token_bits,
        "slot": p.slot_bits,
        "side": 1,            # Side
        "shares": p.shares_bits,
        "price": p.price_bits,
        "tif": 32,            # passed through to the order entry
    })


def verdict_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    """What the gate says about one order: the order itself and its reason."""
    return data.StructLayout({"order": order_layout(p), "reason": REASON_BITS})


class ReportKind(enum.IntEnum):
    """What an execution report did to an open order (resolved to its symbol and side)."""

    FILL = 0      #: shares executed: they leave the open quantity and enter the position
    OUT = 1       #: shares cancelled or rejected by the exchange: they leave the open quantity


def report_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    return data.StructLayout({
        "kind": 1, "slot": p.slot_bits, "side": 1, "shares": p.shares_bits,
        "done": 1,            # the order is no longer open (its last shares left)
    })


def md_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    """A market-data update of one symbol (from the book's BBO events)."""
    return data.StructLayout({
        "slot": p.slot_bits, "bid_px": p.price_bits, "ask_px": p.price_bits, "stale": 1,
    })


def limits_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    """One symbol's limits (a row of the limit tables)."""
    return data.StructLayout({
        "enable": 1,
        "max_shares": p.shares_bits,
        "max_notional": p.notional_bits,
        "collar_mode": 2,                 # Collar
        "collar": p.collar_bits,
        "ref_px": p.price_bits,           # host reference price (0: none)
        "max_long": p.limit_bits,
        "max_short": p.limit_bits,
    })


def global_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    """Limits that apply to every order."""
    return data.StructLayout({
        "max_open": p.count_bits,         # open orders at most
        "rate_period": 32,                # cycles per bucket token; 0 = no throttle
        "rate_burst": p.count_bits,       # bucket capacity
        "max_age": AGE_BITS,              # BBO age limit in cycles; 0 = none
    })


def fields(layout: data.StructLayout) -> list[tuple[str, int]]:
    """``(name, bits)`` of a flat layout, in bit order (LSB first)."""
    return [(name, f.width) for name, f in layout]


def pack(layout: data.StructLayout, values: dict) -> int:
    """The integer a flat layout holds for ``values`` (missing members are 0)."""
    out = 0
    for name, f in layout:
        v = int(values.get(name, 0))
        if not 0 <= v < 1 << f.width:
            raise ValueError(f"{name}={v} does not fit {f.width} bits")
        out |= v << f.offset
    return out
