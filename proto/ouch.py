"""NASDAQ OUCH 4.2 message layouts (the messages the card sends and the replies it parses).

One OUCH message rides in each SoupBinTCP ``U`` (inbound, to the exchange) or ``S`` (outbound)
packet, so there is no length prefix here. Integers are big-endian; prices are unsigned with
4 implied decimals (1/10000 USD); outbound timestamps are nanoseconds since midnight.

Type ``U`` exists in both directions (replace order in, replaced out), so the layouts live in
two tables, :data:`INBOUND` and :data:`OUTBOUND`. :func:`decode` tells the two ``U`` apart by
length (47 against 80); :func:`encode` needs ``direction`` only for ``U``.

Sources of the field lists and lengths: ``/work/shared/protocols.md`` (lengths of O X U A E C
J S) and two independent OUCH 4.2 dissectors, Wireshark's ``packet-ouch.c`` and the Open
Markets Initiative Lua dissector, which agree with each other on every layout here, including
the 80-byte replaced message that protocols.md does not give. nasdaq-protocols 1.3.0 ships no
OUCH definitions at all (only a generator that builds message classes from an XML spec the
user supplies), so it cannot confirm a length; ``tests/test_proto_ouch.py`` instead defines the
same messages with its type system and checks that both codecs produce and read the same
bytes, which checks the encoding (widths, justification, byte order), not the field lists.
Not modelled: the 4.2 messages the card neither sends nor expects (modify order ``M``, AIQ
canceled ``D``, broken trade ``B``, cancel pending ``P``, cancel reject ``I``, ...).
"""

from __future__ import annotations

import re

from .layout import Kind, MessageLayout

A, C = Kind.ALPHA, Kind.CHAR

INBOUND_DIRECTION = "inbound"    #: client -> exchange (SoupBinTCP ``U``)
OUTBOUND_DIRECTION = "outbound"  #: exchange -> client (SoupBinTCP ``S``)

_TYPE = (("message_type", 1, C),)
_OUT = _TYPE + (("timestamp", 8),)

ENTER_ORDER = MessageLayout("enter_order", _TYPE + (
    ("order_token", 14, A), ("buy_sell_indicator", 1, C), ("shares", 4), ("stock", 8, A),
    ("price", 4), ("time_in_force", 4), ("firm", 4, A), ("display", 1, C),
    ("capacity", 1, C), ("intermarket_sweep", 1, C), ("minimum_quantity", 4),
    ("cross_type", 1, C), ("customer_type", 1, C)), type_code="O")
REPLACE_ORDER = MessageLayout("replace_order", _TYPE + (
    ("existing_order_token", 14, A), ("replacement_order_token", 14, A), ("shares", 4),
    ("price", 4), ("time_in_force", 4), ("display", 1, C), ("intermarket_sweep", 1, C),
    ("minimum_quantity", 4)), type_code="U")
CANCEL_ORDER = MessageLayout("cancel_order", _TYPE + (
    ("order_token", 14, A), ("shares", 4)), type_code="X")

SYSTEM_EVENT = MessageLayout("system_event", _OUT + (("event_code", 1, C),), type_code="S")
ACCEPTED = MessageLayout("accepted", _OUT + (
    ("order_token", 14, A), ("buy_sell_indicator", 1, C), ("shares", 4), ("stock", 8, A),
    ("price", 4), ("time_in_force", 4), ("firm", 4, A), ("display", 1, C),
    ("order_reference_number", 8), ("capacity", 1, C), ("intermarket_sweep", 1, C),
    ("minimum_quantity", 4), ("cross_type", 1, C), ("order_state", 1, C),
    ("bbo_weight_indicator", 1, C)), type_code="A")
REPLACED = MessageLayout("replaced", _OUT + (
    ("replacement_order_token", 14, A), ("buy_sell_indicator", 1, C), ("shares", 4),
    ("stock", 8, A), ("price", 4), ("time_in_force", 4), ("firm", 4, A), ("display", 1, C),
    ("order_reference_number", 8), ("capacity", 1, C), ("intermarket_sweep", 1, C),
    ("minimum_quantity", 4), ("cross_type", 1, C), ("order_state", 1, C),
    ("previous_order_token", 14, A), ("bbo_weight_indicator", 1, C)), type_code="U")
CANCELED = MessageLayout("canceled", _OUT + (
    ("order_token", 14, A), ("decrement_shares", 4), ("reason", 1, C)), type_code="C")
EXECUTED = MessageLayout("executed", _OUT + (
    ("order_token", 14, A), ("executed_shares", 4), ("execution_price", 4),
    ("liquidity_flag", 1, C), ("match_number", 8)), type_code="E")
REJECTED = MessageLayout("rejected", _OUT + (
    ("order_token", 14, A), ("reason", 1, C)), type_code="J")

INBOUND: dict[str, MessageLayout] = {m.type_code: m for m in (
    ENTER_ORDER, REPLACE_ORDER, CANCEL_ORDER)}
OUTBOUND: dict[str, MessageLayout] = {m.type_code: m for m in (
    SYSTEM_EVENT, ACCEPTED, REPLACED, CANCELED, EXECUTED, REJECTED)}
DIRECTIONS = {INBOUND_DIRECTION: INBOUND, OUTBOUND_DIRECTION: OUTBOUND}

_SPEC_LENGTHS = {
    INBOUND_DIRECTION: {"O": 49, "U": 47, "X": 19},
    OUTBOUND_DIRECTION: {"S": 10, "A": 66, "U": 80, "C": 28, "E": 40, "J": 24},
}
LENGTHS = {d: {c: m.length for c, m in t.items()} for d, t in DIRECTIONS.items()}
assert LENGTHS == _SPEC_LENGTHS, "OUCH layouts disagree with the specification's lengths"

#: (type, length) -> layout; unique across both directions, which is what decode relies on.
_BY_SHAPE = {(m.type_code, m.length): m for t in DIRECTIONS.values() for m in t.values()}
assert len(_BY_SHAPE) == len(INBOUND) + len(OUTBOUND)

#: The text (alpha and char) fields of each layout, for the printable-ASCII check.
_TEXT_FIELDS = {m: [f for f in m.fields if f.kind is not Kind.UINT] for m in _BY_SHAPE.values()}
_PRINTABLE = re.compile(rb"[ -~]*")

MIN_LENGTH = min(m.length for m in _BY_SHAPE.values())
MAX_LENGTH = max(m.length for m in _BY_SHAPE.values())

# -- Field values ----------------------------------------------------------------------------
PRICE_SCALE = 10_000          #: price units per dollar

#: Time in force (seconds); the values below are the special ones.
TIF_IOC = 0                   #: immediate or cancel
TIF_MARKET_HOURS = 99_998     #: until the end of market hours
TIF_SYSTEM_HOURS = 99_999     #: until the end of system hours

SIDE_BUY = "B"
SIDE_SELL = "S"
SIDE_SELL_SHORT = "T"
SIDE_SELL_SHORT_EXEMPT = "E"
SIDES = {SIDE_BUY: "buy", SIDE_SELL: "sell", SIDE_SELL_SHORT: "sell_short",
         SIDE_SELL_SHORT_EXEMPT: "sell_short_exempt"}
SELL_SIDES = frozenset((SIDE_SELL, SIDE_SELL_SHORT, SIDE_SELL_SHORT_EXEMPT))

ORDER_STATE_LIVE = "L"
ORDER_STATE_DEAD = "D"

LIQUIDITY_ADDED = "A"
LIQUIDITY_REMOVED = "R"

EVENT_START_OF_DAY = "S"
EVENT_END_OF_DAY = "E"

#: Order tokens of this project (OUCH leaves the 14 characters to the firm): ``W``, the
#: order's source letter, then the 48-bit token number as 12 upper-case hex digits, e.g.
#: ``WH00000000002A`` (host order 42). Codec: :mod:`hw.oe.tokens`; the return-path parser
#: checks the same format in gateware (``hw/oe/parser.py``).
TOKEN_PREFIX = "W"
TOKEN_SOURCE_HOST = "H"       #: orders from the host (the H2C order stream)
TOKEN_SOURCE_TRIGGER = "T"    #: orders from the on-card trigger engine
TOKEN_DIGITS = 12             #: hex digits of the token number
TOKEN_HEX = "0123456789ABCDEF"

#: Canceled reasons: the set both dissectors list (the Open Markets one adds later codes).
CANCEL_USER_REQUESTED = "U"
CANCEL_IMMEDIATE_OR_CANCEL = "I"
CANCEL_REASONS = {
    "U": "user_requested", "I": "immediate_or_cancel", "T": "timeout", "S": "supervisory",
    "D": "regulatory_restriction", "Q": "self_match_prevention", "Z": "system_cancel",
}

#: Rejected reasons, from Wireshark's table (the Open Markets dissector does not list them).
#: There is no code for a reused order token; the exchange simulator uses "O" (other).
REJECT_INVALID_STOCK = "S"
REJECT_INVALID_PRICE = "X"
REJECT_OTHER = "O"
REJECT_REASONS = {
    "T": "test_mode", "H": "halted", "Z": "shares_exceed_safety_threshold",
    "S": "invalid_stock", "D": "invalid_display", "C": "exchange_closed",
    "L": "firm_not_authorized_for_clearing", "M": "outside_clearing_times",
    "R": "not_allowed_in_cross", "X": "invalid_price", "N": "invalid_minimum_quantity",
    "O": "other", "a": "reject_all_enabled", "b": "easy_to_borrow", "c": "restricted_symbol",
    "d": "iso_restriction", "e": "odd_lot_restriction", "f": "midpoint_restriction",
    "g": "pre_market_restriction", "h": "post_market_restriction",
    "i": "short_sale_restriction", "j": "on_open_restriction", "k": "on_close_restriction",
    "l": "two_sided_quote", "m": "exceeded_shares_limit", "n": "exceeded_dollar_value_limit",
}


class OuchError(ValueError):
    """A message that is not a well-formed OUCH 4.2 message of a modelled type."""


def layout_for(type_code: str, direction: str | None = None) -> MessageLayout:
    """The layout of ``type_code``; ``direction`` is required only for ``U``."""
    if direction is not None:
        try:
            return DIRECTIONS[direction][type_code]
        except KeyError:
            raise OuchError(f"no {direction} OUCH message of type {type_code!r}") from None
    found = [t[type_code] for t in DIRECTIONS.values() if type_code in t]
    if not found:
        raise OuchError(f"unknown OUCH message type {type_code!r}")
    if len(found) > 1:
        raise OuchError(f"OUCH type {type_code!r} exists in both directions: pass direction="
                        f"{INBOUND_DIRECTION!r} or {OUTBOUND_DIRECTION!r}")
    return found[0]


def encode(type_code: str, direction: str | None = None, **fields) -> bytes:
    """Encode one OUCH message. Missing fields encode as zero / spaces."""
    return layout_for(type_code, direction).pack(message_type=type_code, **fields)


def decode(message: bytes, direction: str | None = None) -> dict:
    """Decode one OUCH message (the payload of a SoupBinTCP ``U`` or ``S`` packet).

    Raises :class:`OuchError` naming the problem: empty, unknown type, a length that is not
    the type's (within ``direction`` when given), or a text field that is not printable ASCII
    (a NUL-padded token is a classic client bug, and would not survive a round trip)."""
    if not message:
        raise OuchError("empty OUCH message")
    code = chr(message[0])
    if direction is not None:
        layout = layout_for(code, direction)
    else:
        layout = _BY_SHAPE.get((code, len(message)))
        if layout is None:
            choices = [m for (c, _), m in _BY_SHAPE.items() if c == code]
            if not choices:
                raise OuchError(f"unknown OUCH message type {code!r} (0x{message[0]:02x})")
            layout = choices[0]
            if len(choices) > 1:
                want = " or ".join(f"{m.length} ({m.name})" for m in choices)
                raise OuchError(f"OUCH {code!r} message of {len(message)} bytes; expected "
                                f"{want}")
    if len(message) != layout.length:
        raise OuchError(f"OUCH {code!r} {layout.name} is {layout.length} bytes, got "
                        f"{len(message)}")
    for f in _TEXT_FIELDS[layout]:
        if not _PRINTABLE.fullmatch(message, f.offset, f.end):
            raise OuchError(f"OUCH {code!r} {layout.name}.{f.name} at offset {f.offset} holds "
                            f"non-printable bytes {bytes(message[f.offset:f.end])!r} (alpha "
                            f"and char fields are printable ASCII, space padded)")
    return layout.unpack(bytes(message))
