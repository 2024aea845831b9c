"""OUCH 4.2 layouts: lengths, offsets, codec round trips and malformed input, and a cross-check
against nasdaq-protocols' message machinery.

nasdaq-protocols ships no OUCH 4.2 definitions (its ``ouch`` package generates message classes
from a user-supplied XML spec), so :func:`nasdaq_ouch42` below declares the same messages
with its own type system (``FixedAsciiString``, ``UnsignedIntBE``, ...), transcribed from
Wireshark's ``packet-ouch.c`` field order rather than from ``proto/ouch.py``. Bytes written by
either codec must be read identically by the other.
"""

from __future__ import annotations

import os
import random
import string

import pytest
from nasdaq_protocols import ouch as nq_ouch
from nasdaq_protocols.common import CommonMessage
from nasdaq_protocols.common.message import Field, Record
from nasdaq_protocols.common.message.types import (
    CharAscii,
    FixedAsciiString,
    UnsignedIntBE,
    UnsignedLongBE,
)

from proto import ouch
from proto.layout import Kind

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_proto_ouch: seed {SEED}")

IN, OUT = ouch.INBOUND_DIRECTION, ouch.OUTBOUND_DIRECTION

# -- nasdaq-protocols definitions ---------------------------------------------------------
_T, _ORD, _TS = "timestamp", "order_token", ("timestamp", "u8")
_ACC = [("buy_sell_indicator", "c"), ("shares", "u4"), ("stock", "a8"), ("price", "u4"),
        ("time_in_force", "u4"), ("firm", "a4"), ("display", "c"),
        ("order_reference_number", "u8"), ("capacity", "c"), ("intermarket_sweep", "c"),
        ("minimum_quantity", "u4"), ("cross_type", "c"), ("order_state", "c")]
NASDAQ_FIELDS: dict[tuple[str, str], list[tuple[str, str]]] = {
    (IN, "O"): [(_ORD, "a14"), ("buy_sell_indicator", "c"), ("shares", "u4"), ("stock", "a8"),
                ("price", "u4"), ("time_in_force", "u4"), ("firm", "a4"), ("display", "c"),
                ("capacity", "c"), ("intermarket_sweep", "c"), ("minimum_quantity", "u4"),
                ("cross_type", "c"), ("customer_type", "c")],
    (IN, "U"): [("existing_order_token", "a14"), ("replacement_order_token", "a14"),
                ("shares", "u4"), ("price", "u4"), ("time_in_force", "u4"), ("display", "c"),
                ("intermarket_sweep", "c"), ("minimum_quantity", "u4")],
    (IN, "X"): [(_ORD, "a14"), ("shares", "u4")],
    (OUT, "S"): [_TS, ("event_code", "c")],
    (OUT, "A"): [_TS, (_ORD, "a14")] + _ACC + [("bbo_weight_indicator", "c")],
    (OUT, "U"): [_TS, ("replacement_order_token", "a14")] + _ACC
                + [("previous_order_token", "a14"), ("bbo_weight_indicator", "c")],
    (OUT, "C"): [_TS, (_ORD, "a14"), ("decrement_shares", "u4"), ("reason", "c")],
    (OUT, "E"): [_TS, (_ORD, "a14"), ("executed_shares", "u4"), ("execution_price", "u4"),
                 ("liquidity_flag", "c"), ("match_number", "u8")],
    (OUT, "J"): [_TS, (_ORD, "a14"), ("reason", "c")],
}
_NQ_APP = "wirespeed_ouch42_check"


def _nq_type(code: str):
    if code == "c":
        return CharAscii
    if code[0] == "a":
        return FixedAsciiString(length=int(code[1:]))
    return {"u4": UnsignedIntBE, "u8": UnsignedLongBE}[code]


def nasdaq_ouch42() -> dict[tuple[str, str], type]:
    """nasdaq-protocols message classes for the modelled OUCH 4.2 messages, by (direction,
    type). Outbound ones are "outgoing" in its terms, which is what its ``from_bytes`` and
    its client session decode. Idempotent: the library registers classes globally per app,
    and this module may be imported twice (by pytest and by test_exchange_sim)."""
    names = {(d, c): f"{'In' if d == IN else 'Out'}_{c}" for d, c in NASDAQ_FIELDS}
    registry = CommonMessage.MsgNameToMsgMap.get(_NQ_APP)
    if registry:
        return {k: registry[n] for k, n in names.items()}

    class Message(nq_ouch.Message, app_name=_NQ_APP):
        def __init_subclass__(cls, **kwargs):
            kwargs["app_name"] = _NQ_APP
            super().__init_subclass__(**kwargs)

    out = {}
    for (d, c), fields in NASDAQ_FIELDS.items():
        body = type("BodyRecord", (Record,), {
            "Fields": [Field(n, _nq_type(t)) for n, t in fields]})
        out[(d, c)] = type(names[(d, c)], (Message,), {"BodyRecord": body}, indicator=ord(c),
                           direction="outgoing" if d == OUT else "incoming")
    return out


NQ = nasdaq_ouch42()


def nq_decode_outbound(message: bytes) -> dict:
    """Decode an outbound message with nasdaq-protocols' own dispatch (by type byte)."""
    n, msg = NQ[(OUT, "S")].from_bytes(message)
    assert n == len(message)
    return {"message_type": chr(msg.MsgId.indicator), **msg.record.values}


def nq_encode(direction: str, code: str, values: dict) -> bytes:
    msg = NQ[(direction, code)]()
    for name, _ in NASDAQ_FIELDS[(direction, code)]:
        setattr(msg, name, values[name])
    return msg.to_bytes()[1]


# -- helpers -------------------------------------------------------------------------------
def random_fields(rng: random.Random, layout) -> dict:
    """Random valid values for every field but the type."""
    out = {}
    for f in layout.fields[1:]:
        if f.kind is Kind.UINT:
            out[f.name] = rng.randrange(1 << (8 * f.size))
        elif f.kind is Kind.CHAR:
            out[f.name] = rng.choice(string.ascii_letters + string.digits + " ")
        else:   # no leading spaces: both codecs strip, which would lose them
            text = "".join(rng.choice(string.ascii_uppercase + string.digits)
                           for _ in range(rng.randint(0, f.size)))
            out[f.name] = text
    return out


ALL = [(d, c) for d, table in ouch.DIRECTIONS.items() for c in table]


# -- layouts ---------------------------------------------------------------------------------
def test_lengths_match_the_specification():
    assert ouch.LENGTHS == {IN: {"O": 49, "U": 47, "X": 19},
                            OUT: {"S": 10, "A": 66, "U": 80, "C": 28, "E": 40, "J": 24}}
    assert (ouch.MIN_LENGTH, ouch.MAX_LENGTH) == (10, 80)


def test_offsets():
    """Offsets the gateware slices, counted by hand from the field tables."""
    def at(layout):
        return {f.name: (f.offset, f.size) for f in layout.fields}
    o = at(ouch.ENTER_ORDER)
    assert o["order_token"] == (1, 14) and o["buy_sell_indicator"] == (15, 1)
    assert o["shares"] == (16, 4) and o["stock"] == (20, 8) and o["price"] == (28, 4)
    assert o["time_in_force"] == (32, 4) and o["firm"] == (36, 4)
    assert o["minimum_quantity"] == (43, 4) and o["customer_type"] == (48, 1)
    x = at(ouch.CANCEL_ORDER)
    assert x["order_token"] == (1, 14) and x["shares"] == (15, 4)
    u = at(ouch.REPLACE_ORDER)
    assert u["replacement_order_token"] == (15, 14) and u["minimum_quantity"] == (43, 4)
    a = at(ouch.ACCEPTED)
    assert a["timestamp"] == (1, 8) and a["order_token"] == (9, 14)
    assert a["order_reference_number"] == (49, 8) and a["bbo_weight_indicator"] == (65, 1)
    e = at(ouch.EXECUTED)
    assert e["executed_shares"] == (23, 4) and e["execution_price"] == (27, 4)
    assert e["liquidity_flag"] == (31, 1) and e["match_number"] == (32, 8)
    c = at(ouch.CANCELED)
    assert c["decrement_shares"] == (23, 4) and c["reason"] == (27, 1)
    assert at(ouch.REJECTED)["reason"] == (23, 1)
    assert at(ouch.REPLACED)["previous_order_token"] == (65, 14)


def test_constants():
    assert (ouch.TIF_IOC, ouch.TIF_MARKET_HOURS, ouch.TIF_SYSTEM_HOURS) == (0, 99998, 99999)
    assert set(ouch.SIDES) == {"B", "S", "T", "E"} and ouch.SIDE_BUY not in ouch.SELL_SIDES
    assert ouch.CANCEL_REASONS["U"] == "user_requested"
    assert ouch.CANCEL_REASONS["I"] == "immediate_or_cancel"
    assert ouch.REJECT_REASONS[ouch.REJECT_INVALID_STOCK] == "invalid_stock"
    assert ouch.REJECT_REASONS[ouch.REJECT_INVALID_PRICE] == "invalid_price"


@pytest.mark.parametrize("direction, code", ALL)
def test_round_trip(direction, code):
    rng = random.Random(f"{SEED}-{direction}-{code}")
    layout = ouch.DIRECTIONS[direction][code]
    for _ in range(200):
        values = random_fields(rng, layout)
        msg = ouch.encode(code, direction if code == "U" else None, **values)
        assert len(msg) == layout.length and msg[:1] == code.encode()
        assert ouch.decode(msg) == {"message_type": code, **values}, WHERE
        assert ouch.decode(msg, direction) == {"message_type": code, **values}, WHERE


def test_malformed():
    with pytest.raises(ouch.OuchError, match="empty OUCH message"):
        ouch.decode(b"")
    with pytest.raises(ouch.OuchError, match=r"unknown OUCH message type 'Q' \(0x51\)"):
        ouch.decode(b"Q" + bytes(18))
    with pytest.raises(ouch.OuchError, match="'X' cancel_order is 19 bytes, got 18"):
        ouch.decode(b"X" + bytes(17))
    with pytest.raises(ouch.OuchError, match="'X' cancel_order is 19 bytes, got 20"):
        ouch.decode(b"X" + bytes(19))
    with pytest.raises(ouch.OuchError, match="expected 47 \\(replace_order\\) or 80"):
        ouch.decode(b"U" + bytes(48))
    with pytest.raises(ouch.OuchError, match="no inbound OUCH message of type 'A'"):
        ouch.decode(ouch.encode("A"), IN)
    with pytest.raises(ouch.OuchError, match="'U' replaced is 80 bytes, got 47"):
        ouch.decode(ouch.encode("U", IN), OUT)
    with pytest.raises(ouch.OuchError, match="exists in both directions"):
        ouch.encode("U")
    with pytest.raises(ouch.OuchError, match="unknown OUCH message type 'Z'"):
        ouch.encode("Z")
    with pytest.raises(ValueError, match="longer than 14"):
        ouch.encode("X", order_token="x" * 15)
    with pytest.raises(ValueError, match="does not fit 4 bytes"):
        ouch.encode("X", shares=1 << 32)
    with pytest.raises(KeyError, match="unknown fields"):
        ouch.encode("X", sharez=1)


def test_fuzz_decode_never_crashes():
    rng = random.Random(SEED + 7)
    for _ in range(5000):
        data = rng.choice("OUXSACEJQ").encode() + rng.randbytes(rng.choice(
            (0, 9, 18, 23, 27, 39, 46, 48, 65, 79, 81, rng.randint(0, 100))))
        try:
            ouch.decode(data)
        except ouch.OuchError as e:
            assert str(e), WHERE


# -- nasdaq-protocols cross-check ---------------------------------------------------------------
@pytest.mark.parametrize("direction, code", ALL)
def test_nasdaq_codec_agrees(direction, code):
    rng = random.Random(f"{SEED}-nq-{direction}-{code}")
    layout = ouch.DIRECTIONS[direction][code]
    assert [f.name for f in layout.fields[1:]] == [n for n, _ in NASDAQ_FIELDS[(direction,
                                                                                 code)]]
    for _ in range(200):
        values = random_fields(rng, layout)
        ours = ouch.encode(code, direction, **values)
        theirs = nq_encode(direction, code, values)
        assert ours == theirs, WHERE
        if direction == OUT:
            assert nq_decode_outbound(ours) == {"message_type": code, **values}, WHERE
        else:   # its from_bytes dispatches outgoing messages only; read the record directly
            n, rec = NQ[(direction, code)].BodyRecord.from_bytes(ours[1:])
            assert n == len(ours) - 1 and rec.values == values, WHERE
        assert ouch.decode(theirs, direction) == {"message_type": code, **values}, WHERE


def test_non_printable_text_is_an_error():
    msg = bytearray(ouch.encode("X", order_token="TOK", shares=1))
    msg[4] = 0                                     # NUL padding instead of spaces
    with pytest.raises(ouch.OuchError, match=r"cancel_order.order_token at offset 1 holds "
                                             r"non-printable bytes b'TOK\\x00"):
        ouch.decode(bytes(msg))
    msg = bytearray(ouch.encode("A"))
    msg[15 + 8] = 0xE9                             # buy_sell_indicator, not ASCII
    with pytest.raises(ouch.OuchError, match="accepted.buy_sell_indicator at offset 23"):
        ouch.decode(bytes(msg))
