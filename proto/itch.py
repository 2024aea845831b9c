"""NASDAQ TotalView-ITCH 5.0 message layouts.

Every message starts with the same 11-byte header. Prices are unsigned with 4 implied
decimals (1/10000 USD), except the MWCB levels which carry 8.
"""

from __future__ import annotations

from .layout import Kind, MessageLayout

A, C = Kind.ALPHA, Kind.CHAR

HEADER = (
    ("message_type", 1, C),
    ("stock_locate", 2),
    ("tracking_number", 2),
    ("timestamp", 6),
)

_BODIES: dict[str, tuple[str, tuple]] = {
    "S": ("system_event", (("event_code", 1, C),)),
    "R": ("stock_directory", (
        ("stock", 8, A), ("market_category", 1, C), ("financial_status", 1, C),
        ("round_lot_size", 4), ("round_lots_only", 1, C), ("issue_classification", 1, C),
        ("issue_subtype", 2, A), ("authenticity", 1, C), ("short_sale_threshold", 1, C),
        ("ipo_flag", 1, C), ("luld_reference_price_tier", 1, C), ("etp_flag", 1, C),
        ("etp_leverage_factor", 4), ("inverse_indicator", 1, C))),
    "H": ("stock_trading_action", (
        ("stock", 8, A), ("trading_state", 1, C), ("reserved", 1, C), ("reason", 4, A))),
    "Y": ("reg_sho_restriction", (("stock", 8, A), ("reg_sho_action", 1, C))),
    "L": ("market_participant_position", (
        ("mpid", 4, A), ("stock", 8, A), ("primary_market_maker", 1, C),
        ("market_maker_mode", 1, C), ("market_participant_state", 1, C))),
    "V": ("mwcb_decline_level", (("level1", 8), ("level2", 8), ("level3", 8))),
    "W": ("mwcb_status", (("breached_level", 1, C),)),
    "K": ("ipo_quoting_period", (
        ("stock", 8, A), ("ipo_release_time", 4), ("ipo_release_qualifier", 1, C),
        ("ipo_price", 4))),
    "J": ("luld_auction_collar", (
        ("stock", 8, A), ("reference_price", 4), ("upper_price", 4), ("lower_price", 4),
        ("extension", 4))),
    "h": ("operational_halt", (
        ("stock", 8, A), ("market_code", 1, C), ("halt_action", 1, C))),
    "A": ("add_order", (
        ("order_ref", 8), ("side", 1, C), ("shares", 4), ("stock", 8, A), ("price", 4))),
    "F": ("add_order_mpid", (
        ("order_ref", 8), ("side", 1, C), ("shares", 4), ("stock", 8, A), ("price", 4),
        ("attribution", 4, A))),
    "E": ("order_executed", (
        ("order_ref", 8), ("executed_shares", 4), ("match_number", 8))),
    "C": ("order_executed_with_price", (
        ("order_ref", 8), ("executed_shares", 4), ("match_number", 8), ("printable", 1, C),
        ("execution_price", 4))),
    "X": ("order_cancel", (("order_ref", 8), ("cancelled_shares", 4))),
    "D": ("order_delete", (("order_ref", 8),)),
    "U": ("order_replace", (
        ("original_ref", 8), ("new_ref", 8), ("shares", 4), ("price", 4))),
    "P": ("trade", (
        ("order_ref", 8), ("side", 1, C), ("shares", 4), ("stock", 8, A), ("price", 4),
        ("match_number", 8))),
    "Q": ("cross_trade", (
        ("shares", 8), ("stock", 8, A), ("cross_price", 4), ("match_number", 8),
        ("cross_type", 1, C))),
    "B": ("broken_trade", (("match_number", 8),)),
    "I": ("noii", (
        ("paired_shares", 8), ("imbalance_shares", 8), ("imbalance_direction", 1, C),
        ("stock", 8, A), ("far_price", 4), ("near_price", 4), ("current_reference_price", 4),
        ("cross_type", 1, C), ("price_variation_indicator", 1, C))),
    "N": ("rpii", (("stock", 8, A), ("interest_flag", 1, C))),
    "O": ("dlcr_price_discovery", (
        ("stock", 8, A), ("open_eligibility_status", 1, C), ("min_allowable_price", 4),
        ("max_allowable_price", 4), ("near_execution_price", 4), ("near_execution_time", 8),
        ("lower_price_range_collar", 4), ("upper_price_range_collar", 4))),
}

#: Every ITCH 5.0 message layout, keyed by its one-character type code.
MESSAGES: dict[str, MessageLayout] = {
    code: MessageLayout(name, HEADER + body, type_code=code)
    for code, (name, body) in _BODIES.items()
}

#: Expected length of each message type (the numbers in the specification).
LENGTHS: dict[str, int] = {code: m.length for code, m in MESSAGES.items()}

_SPEC_LENGTHS = {
    "S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35,
    "h": 21, "I": 50, "O": 48, "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19,
    "U": 35, "P": 44, "Q": 40, "B": 19, "N": 20,
}
assert LENGTHS == _SPEC_LENGTHS, "ITCH layouts disagree with the specification's lengths"

#: Shortest and longest message of the protocol. The ingress path relies on the shortest
#: to bound how many messages can complete in one bus beat.
MIN_LENGTH = min(LENGTHS.values())
MAX_LENGTH = max(LENGTHS.values())

#: Type codes in a fixed order; the index is the per-type counter number in the gateware.
TYPE_CODES: tuple[str, ...] = tuple(sorted(MESSAGES, key=lambda c: (c.lower(), c)))

SYSTEM_EVENT_CODES = {
    "O": "start_of_messages", "S": "start_of_system_hours", "Q": "start_of_market_hours",
    "M": "end_of_market_hours", "E": "end_of_system_hours", "C": "end_of_messages",
}


def encode(type_code: str, **fields) -> bytes:
    """Encode one ITCH message (without the 2-byte length prefix)."""
    return MESSAGES[type_code].pack(message_type=type_code, **fields)


def decode(message: bytes) -> dict:
    """Decode one ITCH message; raises ``KeyError``/``ValueError`` on unknown type or bad length."""
    code = chr(message[0])
    return MESSAGES[code].unpack(message)
