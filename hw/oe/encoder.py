"""Order entry: accepted orders as OUCH 4.2 messages in SoupBinTCP packets on net TX.

Every verdict of the risk gate that accepts an order becomes one SoupBinTCP unsequenced
data packet (``U``) carrying an OUCH 4.2 enter order (``O``, 49 bytes; 52 on the wire) or
cancel order (``X``, 19 bytes; 22 on the wire), written as a 64-bit AXI4-Stream byte stream
(byte 0 in bits 7:0, ``keep`` contiguous from lane 0, ``last`` on each packet's final beat)
for the TCP engine that owns the session (docs/orderentry.md, "The boundary"). Offsets come
from :mod:`proto.ouch` and :mod:`proto.soupbintcp`; nothing here restates them.

Order tokens: the format of :mod:`hw.oe.tokens` (``W``, the source letter, the token number
in 12 upper-case hex digits), written by :func:`token_chars`; unique per session because the
gate accepts only increasing numbers per source.

Timing (the tick-to-trade path): an accepted verdict that finds the encoder idle and its FIFO
empty goes past the FIFO: its packet's first beat (lengths, types and the token's first four
bytes, which need nothing but the order) is on ``tx`` in the verdict's own cycle, while its
symbol name is read from block RAM for beat 2, where the stock field starts. The order is
latched, and the rest of the packet is built combinationally from it, beat by beat. Orders
that arrive while a packet is being sent wait in a FIFO (a packet takes 7 beats, the gate can
accept one order per cycle); the next one's first beat follows the last beat of the one
before without an idle cycle. ``space`` tells the gate how many more it may accept (the
FIFO's free entries; the bypass needs none); an accepted order finding the FIFO full
would be a design error and is counted (``inc_overflow``), never sent half.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.lib.fifo import BlockFIFO
from hw.oe.tokens import NUMBER_BITS, SOURCE_LETTERS
from hw.risk.params import DEFAULT_RISK, OrderKind, Reason, RiskParams, Side, Source, order_layout
from proto import ouch
from proto import soupbintcp as soup

#: Fixed fields of every enter order (docs/orderentry.md).
FIXED = {"display": "Y", "capacity": "P", "intermarket_sweep": "N", "minimum_quantity": 0,
         "cross_type": "N", "customer_type": " "}

#: Cycles from an accepted verdict that finds the encoder idle (FIFO empty, no packet being
#: sent) to its packet's first beat on ``tx``: the first beat is on ``tx`` in the verdict's
#: own cycle.
LATENCY = 0
#: Idle cycles between a packet's last beat and the next queued packet's first beat.
GAP = 0

TxBeat = data.StructLayout({"data": 64, "keep": 8, "last": 1})

_HDR = soup.HEADER_LENGTH          # length (2) + type (1)
ENTER_BYTES = _HDR + ouch.ENTER_ORDER.length
CANCEL_BYTES = _HDR + ouch.CANCEL_ORDER.length
BEATS = -(-max(ENTER_BYTES, CANCEL_BYTES) // 8)


def _be(value: Value, size: int) -> list[Value]:
    """``value`` as ``size`` big-endian bytes."""
    return [value[8 * (size - 1 - i):8 * (size - i)] for i in range(size)]


def _byte(value: Value) -> Value:
    """``value`` zero-extended or cut to exactly 8 bits (slicing alone cannot widen)."""
    return Cat(value, Const(0, 8))[:8]


def _hex(nibble: Value) -> Value:
    return _byte(Mux(nibble < 10, nibble + ord("0"), nibble + (ord("A") - 10)))


def token_chars(source: Value, token: Value) -> list[Value]:
    """The 14 token bytes of (source, number), in wire order (the inverse of
    :func:`hw.oe.tokens.token_fields`)."""
    nd = ouch.TOKEN_DIGITS
    t = Cat(token, Const(0, NUMBER_BITS - len(token))) if len(token) < NUMBER_BITS else token
    digits = [_hex(t[4 * (nd - 1 - i):4 * (nd - i)]) for i in range(nd)]
    src = _byte(Mux(source == Source.TRIGGER, ord(SOURCE_LETTERS[Source.TRIGGER]),
                    ord(SOURCE_LETTERS[Source.HOST])))
    return [Const(ord(c), 8) for c in ouch.TOKEN_PREFIX] + [src, *digits]


def _message(layout, values: dict[str, list[Value]]) -> list[Value]:
    """The bytes of a whole OUCH message from per-field byte lists (fixed fields filled)."""
    out: list[Value] = []
    for f in layout.fields:
        if f.name in values:
            b = values[f.name]
        elif f.name == "message_type":
            b = [Const(ord(layout.type_code), 8)]
        else:
            v = FIXED[f.name]
            raw = v.encode().ljust(f.size) if isinstance(v, str) else v.to_bytes(f.size, "big")
            b = [Const(x, 8) for x in raw]
        assert len(b) == f.size, f.name
        out += b
    return out


class OrderEncoder(wiring.Component):
    """Accepted verdicts in, SoupBinTCP/OUCH packets out on ``tx``."""

    def __init__(self, params: RiskParams = DEFAULT_RISK, *, depth: int = 16):
        self.p = p = params
        self.depth = depth
        super().__init__({
            "verdicts": In(stream.Signature(data.StructLayout({
                "order": order_layout(p), "reason": 4}), always_ready=True)),
            "tx": Out(stream.Signature(TxBeat)),
            "name_slot": In(p.slot_bits), "name_value": In(64), "name_write": In(1),
            "firm": In(32),
            "space": Out(range(depth + 1)),
            "inc_orders": Out(1), "inc_cancels": Out(1), "inc_overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        ORDER = order_layout(p)
        m.submodules.names = names = Memory(shape=64, depth=1 << p.slot_bits, init=[])
        n_wr = names.write_port()
        n_rd = names.read_port()
        m.d.comb += [n_wr.addr.eq(self.name_slot), n_wr.data.eq(self.name_value),
                     n_wr.en.eq(self.name_write)]

        m.submodules.fifo = fifo = BlockFIFO(width=ORDER.size, depth=self.depth)
        v = self.verdicts
        take = Signal()
        bypass = Signal()       # the verdict's order starts its packet now, past the FIFO
        idle = Signal()
        m.d.comb += take.eq(v.valid & (v.payload.reason == Reason.ACCEPTED))
        m.d.comb += [bypass.eq(take & idle & (fifo.level == 0)),
                     fifo.w_data.eq(v.payload.order), fifo.w_en.eq(take & ~bypass),
                     self.inc_overflow.eq(take & ~bypass & ~fifo.w_rdy),
                     self.space.eq(self.depth - fifo.level)]

        # IDLE: start the next packet (the FIFO's head, else a bypassed verdict) and read its
        # symbol name; SEND: its beats, built from ``cur`` and the name read.
        head = Signal(ORDER)
        m.d.comb += head.eq(fifo.r_data)
        nxt = Signal(ORDER)
        m.d.comb += nxt.eq(Mux(fifo.r_rdy, head, v.payload.order))
        cur = Signal(ORDER)
        beat = Signal(range(BEATS))

        def packet(o: Value, name: Value) -> tuple[Value, Value]:
            """The SoupBinTCP packet of order ``o`` (``name``: its symbol), as bytes in beat
            order, and whether it is a cancel."""
            tok = token_chars(o.source, o.token)
            side = _byte(Mux(o.side == Side.SELL, ord("S"), ord("B")))
            enter = _message(ouch.ENTER_ORDER, {
                "order_token": tok, "buy_sell_indicator": [side],
                "shares": _be(o.shares, 4), "stock": _be(name, 8),
                "price": _be(o.price, 4), "time_in_force": _be(o.tif, 4),
                "firm": _be(self.firm, 4)})
            cancel = _message(ouch.CANCEL_ORDER, {
                "order_token": tok, "shares": _be(o.shares, 4)})
            enter_pkt = _be(Const(len(enter) + 1, 16), 2) + [Const(ord("U"), 8)] + enter
            cancel_pkt = _be(Const(len(cancel) + 1, 16), 2) + [Const(ord("U"), 8)] + cancel
            assert len(enter_pkt) == ENTER_BYTES and len(cancel_pkt) == CANCEL_BYTES
            is_cancel = o.kind == OrderKind.CANCEL
            return Mux(is_cancel, Cat(*cancel_pkt), Cat(*enter_pkt)), is_cancel

        # Beat 0 (length, type, OUCH type, the token's first four bytes) needs nothing but the
        # order, so it leaves in the cycle the packet starts; the name read (one cycle) is
        # first needed by beat 2 (the stock field starts at byte 23).
        assert _HDR + ouch.ENTER_ORDER["stock"].offset >= 16
        pkt, is_cancel = packet(cur, n_rd.data)
        pkt0, _ = packet(nxt, Const(0, 64))

        def keep_of(nbytes: int) -> int:
            rem = nbytes % 8 or 8
            return (1 << rem) - 1

        nbeats = Mux(is_cancel, -(-CANCEL_BYTES // 8), -(-ENTER_BYTES // 8))
        last_keep = Mux(is_cancel, keep_of(CANCEL_BYTES), keep_of(ENTER_BYTES))
        starting = Signal()     # a packet starts: its order is latched into ``cur``
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [idle.eq(1), fifo.r_en.eq(1), n_rd.addr.eq(nxt.slot),
                             starting.eq(fifo.r_rdy | bypass)]
                with m.If(starting):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.data.eq(pkt0[:64]),
                                 self.tx.payload.keep.eq(0xFF)]
                    m.d.sync += [cur.eq(nxt), beat.eq(self.tx.ready)]
                    m.next = "SEND"
            with m.State("SEND"):
                final = Signal()
                m.d.comb += [
                    n_rd.addr.eq(cur.slot),     # holds the name read for the whole packet
                    final.eq(beat == nbeats - 1),
                    self.tx.valid.eq(1),
                    self.tx.payload.data.eq(pkt.word_select(beat, 64)),
                    self.tx.payload.keep.eq(Mux(final, last_keep, 0xFF)),
                    self.tx.payload.last.eq(final),
                ]
                with m.If(self.tx.ready):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(final):
                        m.next = "IDLE"
        is_cancel_next = nxt.kind == OrderKind.CANCEL
        m.d.comb += [self.inc_orders.eq(starting & ~is_cancel_next),
                     self.inc_cancels.eq(starting & is_cancel_next)]
        return m
