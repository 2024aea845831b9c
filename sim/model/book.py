"""Reference model of the book: the executable form of docs/book.md.

The gateware (``hw/itch/``, ``hw/book/``) is compared with this model event for event and
counter for counter, and the model is compared with an independent book builder (itch-book,
PyPI) on generated days (``tests/test_model_book.py``). It therefore models the *hardware*,
limits included, not an ideal book:

* the order table is ``ways`` x ``sets`` entries; a reference lives in set
  :meth:`BookParams.set_of` and takes the lowest free way (``CAPACITY`` when none is free);
* each slot's levels are a window of ``window`` prices ``base + i*tick`` per side
  (:meth:`BookParams.auto_base`, :meth:`BookParams.level_index`; ``WINDOW`` outside);
* level sizes are 32-bit and saturate (``LEVEL_OVERFLOW``), decrements stop at 0;
* references of 2**40 and more are never held (``REF_RANGE``).

Read it next to the document. Where the document leaves a choice, the model states the reading
it takes where it takes it (search for "Reading:"). The rules, in one place:

**Which messages.** Every message with a known ITCH type and the wrong length counts
``itch_bad_length`` and is skipped. ``R`` feeds the directory (:meth:`BookModel.message`). A
message is *for the book* when its header locate is the locate of an active slot whose locate
is known (the lowest such slot when several share a locate: a host error) and its type is one
of ``A F E C X D U P Q``; it counts ``book_ops``. Everything else is ignored without counting.

**Steps.** A book message runs one or more *steps*, each on one slot:

* ``A``/``F``: zero shares or price: ``book_zero_add``, no step at all (a live order of the same
  reference stays). Reference >= 2**40: one step, ``REF_RANGE``. Reference held: a removal step
  on the held order's own slot, side and level (``book_add_live_ref``), then the add step reuses
  its table entry. Else the add takes the lowest free way of its set, or ``CAPACITY``. The add
  step sets the slot's window base when it has none, then grows the level (or ``WINDOW``).
* ``E``/``C``/``X``: reference not held: ``book_unknown_ref``, no step. Else one step on the
  stored order's slot: ``n = min(shares, remaining)`` (``book_clamped`` when more), the order and
  its level shrink by ``n``, the order is freed at 0. Trade on ``E`` (the order's price) and on
  ``C`` with printable ``Y`` (the execution price), only when ``n > 0``.
* ``D``: one removal step; unknown: ``book_unknown_ref``.
* ``U``: original not held: ``book_unknown_ref``, nothing else. Else a removal step (as ``D``)
  then the add of ``new_ref`` on the original's slot and side under the ``A`` rules above
  (so a zero add only counts ``book_zero_add``, a held ``new_ref`` is removed first, ...).
* ``P``/``Q``: one step on the message's slot, a trade (``Q``: ``cross_price`` and its 8-byte
  shares); the book is unchanged.

**Events.** Within one step the order is ``BOOK_ALERT``, ``TRADE``, then ``BBO``. A ``BBO``
event is raised for the slot a run of consecutive steps of one message touched when its
(bid_px, bid_sz, ask_px, ask_sz) differs from its value before the run; a run ends when the
next step touches another slot or the message ends. So a message normally yields at most one
``BBO`` event per slot (``U``, an add on a live reference of the same slot), as docs/book.md §4
says. Reading: a step that only sets a stale bit (``REF_RANGE``, ``CAPACITY``) still touches its
slot; and a ``U`` whose new reference is live on *another* slot splits the original slot's run
(steps on slots s, t, s), which can raise two BBO events for s — the one case where this rule
and the document's "once per message" differ. Host commands raise no events: the next message
compares with the BBO the command left (empty after a subscribe or reset).

``BOOK_ALERT`` is raised only when the reason's stale bit becomes newly set in the slot
(the counters count every occurrence). Gap, invalidation and FIFO overflow are *global*: one
alert with slot ``0xFF`` and locate 0 if at least one active slot did not have the bit yet,
then the bit is set in every active slot.

**Trades.** ``last_px`` = price, ``last_sz`` = min(shares, 2**32-1), ``volume += shares`` and
``notional += price*shares``, both modulo 2**64. The ``TRADE`` event carries the saturated
shares and the statistics after the trade.

**book_walks** counts every step that empties the best level of a side, whether or not another
level remains (the engine moves its next level up either way). ``bbo_updates`` and ``trades`` count
the events raised.

The model favours the document's structure over speed; it replays about 0.15-0.2 M messages/s
(a 1M-message day in 5-8 s), enough for the differential tests.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from hw.book.params import ALL_SLOTS, REF_BITS, AlertReason, BookParams
from hw.events import BBO_STALE, BODY_FIELDS, EventKind
from proto.itch import LENGTHS, MESSAGES

__all__ = [
    "BOOK_COUNTERS", "BOOK_TYPES", "DEFAULT_PARAMS", "BookEvent", "BookModel", "bbo_changes",
    "pad_symbol",
]

#: Every counter the model keeps; the names are those of hw/regmap.py.
BOOK_COUNTERS: tuple[str, ...] = (
    "itch_bad_length", "directory_matches", "book_ops", "book_unknown_ref", "book_zero_add",
    "book_add_live_ref", "book_clamped", "book_capacity", "book_window", "book_level_overflow",
    "book_ref_range", "book_fifo_overflow", "book_walks", "bbo_updates", "trades",
)

#: The default design parameters (docs/book.md).
DEFAULT_PARAMS = BookParams()

#: Message types the book applies (docs/book.md §2).
BOOK_TYPES = "AFECXDUPQ"

_REF_LIMIT = 1 << REF_BITS
_MAX32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_BID, _ASK = 0, 1

# Body fields (after the 11-byte header) of the types the model decodes, in layout order. The
# names are checked against proto/itch.py below, so a layout change cannot silently shift them.
_HEADER_FIELDS = ("message_type", "stock_locate", "tracking_number", "timestamp")
_HEADER_LENGTH = 11
_BODY_NAMES: dict[str, tuple[str, ...]] = {
    "R": ("stock",),    # only the first body field is read
    "A": ("order_ref", "side", "shares", "stock", "price"),
    "F": ("order_ref", "side", "shares", "stock", "price", "attribution"),
    "E": ("order_ref", "executed_shares", "match_number"),
    "C": ("order_ref", "executed_shares", "match_number", "printable", "execution_price"),
    "X": ("order_ref", "cancelled_shares"),
    "D": ("order_ref",),
    "U": ("original_ref", "new_ref", "shares", "price"),
    "P": ("order_ref", "side", "shares", "stock", "price", "match_number"),
    "Q": ("shares", "stock", "cross_price", "match_number", "cross_type"),
}


def _body_struct(code: str) -> struct.Struct:
    fields = MESSAGES[code].fields
    assert tuple(f.name for f in fields[:4]) == _HEADER_FIELDS
    assert fields[4].offset == _HEADER_LENGTH
    names = _BODY_NAMES[code]
    body = fields[4:4 + len(names)]
    assert tuple(f.name for f in body) == names, f"proto/itch.py layout of {code!r} changed"
    return struct.Struct(">" + "".join(f.struct_code for f in body))


_BODY = {code: _body_struct(code) for code in _BODY_NAMES}
#: Expected length by type byte (an int index is faster than a str key on the hot path).
_LENGTH_OF = {ord(code): n for code, n in LENGTHS.items()}


def pad_symbol(name: str | bytes) -> bytes:
    """The 8 raw bytes of a symbol as on the wire: ASCII, left-justified, space padded."""
    b = name.encode("ascii") if isinstance(name, str) else bytes(name)
    if not 1 <= len(b) <= 8:
        raise ValueError(f"symbol {name!r} must be 1..8 bytes")
    return b.ljust(8, b" ")


@dataclass(frozen=True)
class BookEvent:
    """One event the book raises (the body of a C2H record, without header and timestamps).

    ``aux`` is the slot for ``BBO`` and ``TRADE`` and the :class:`AlertReason` value for
    ``BOOK_ALERT``. ``fields`` has exactly the names of ``hw.events.BODY_FIELDS[kind]``;
    ``symbol`` is the slot's 8 raw name bytes.
    """

    kind: EventKind
    aux: int
    fields: dict


class _Order:
    """One order table entry (hw/book/layouts.py ``entry_layout``): the reference stands for
    valid + tag (the set is the rest of it, see :meth:`BookParams.set_of`)."""

    __slots__ = ("ref", "slot", "side", "price", "shares", "inwin", "idx")

    def __init__(self, ref: int, slot: int, side: int, price: int, shares: int,
                 inwin: bool, idx: int):
        self.ref = ref
        self.slot = slot
        self.side = side
        self.price = price
        self.shares = shares
        self.inwin = inwin
        self.idx = idx

    def __repr__(self) -> str:
        return (f"_Order(ref={self.ref}, slot={self.slot}, side={'BS'[self.side]}, "
                f"price={self.price}, shares={self.shares}, inwin={self.inwin}, idx={self.idx})")


class _Slot:
    """A slot: subscription, window, levels of both sides, stale flags, trade statistics."""

    __slots__ = ("name", "active", "locate", "locate_known", "sub_base", "base", "base_known",
                 "levels", "best", "stale", "last_px", "last_sz", "volume", "notional")

    def __init__(self) -> None:
        self.name = b" " * 8
        self.active = False
        self.locate = 0
        self.locate_known = False
        self.sub_base = 0
        self.clear_book()
        self.clear_trades()

    def clear_book(self) -> None:
        """Levels, BBO, window base (back to ``sub_base``) and stale flags."""
        self.base = self.sub_base
        self.base_known = self.sub_base != 0
        # Per side: level index -> size, only non-empty levels (the occupancy bitmap's view).
        self.levels: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self.best: list[int | None] = [None, None]      # level index of the best, per side
        self.stale = 0

    def clear_trades(self) -> None:
        self.last_px = 0
        self.last_sz = 0
        self.volume = 0
        self.notional = 0


class BookModel:
    """The book behind the decoder: subscriptions, directory, order table, levels, events.

    Feed it delivered messages in order with :meth:`message`, and the ingress's gap and
    invalidation notices with :meth:`gap` and :meth:`invalidate`. Host commands are
    :meth:`subscribe`, :meth:`unsubscribe` and :meth:`reset`; they take effect between two
    messages, in order with them (as the gateware queues commands in its op FIFO), and raise
    no events. Events accumulate in :attr:`events`, counters in :attr:`counters`.
    """

    def __init__(self, params: BookParams = DEFAULT_PARAMS):
        self.params = params
        self.events: list[BookEvent] = []
        self.counters: collections.Counter[str] = collections.Counter(
            {name: 0 for name in BOOK_COUNTERS})
        self._slots = [_Slot() for _ in range(params.slots)]
        self._table: list[_Order | None] = [None] * params.orders
        self._by_locate: dict[int, int] = {}
        self._ways = params.ways
        self._set_bits = params.set_bits
        self._set_mask = (1 << params.set_bits) - 1
        # The run of steps of the current message on one slot (see the module docstring).
        self._run_slot: int | None = None
        self._run_before: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._seq = 0
        self._time = 0
        self._dispatch = {
            ord("A"): self._op_add, ord("F"): self._op_add, ord("E"): self._op_exec,
            ord("C"): self._op_exec, ord("X"): self._op_exec, ord("D"): self._op_delete,
            ord("U"): self._op_replace, ord("P"): self._op_trade, ord("Q"): self._op_trade,
        }

    # -- host commands ------------------------------------------------------------------------
    def _slot(self, slot: int) -> _Slot:
        if not 0 <= slot < self.params.slots:
            raise ValueError(f"slot {slot} outside 0..{self.params.slots - 1}")
        return self._slots[slot]

    def _remap(self) -> None:
        """Locate -> slot for the book filter; the lowest slot wins a shared locate."""
        self._by_locate = {}
        for i in range(self.params.slots - 1, -1, -1):
            s = self._slots[i]
            if s.active and s.locate_known:
                self._by_locate[s.locate] = i

    def subscribe(self, slot: int, name: str | bytes, *, locate: int | None = None,
                  base: int = 0) -> None:
        """``book_cmd.subscribe``: ``locate`` given = ``sub_locate.direct``; ``base`` =
        ``sub_base`` (0: the slot's first held add sets it).

        Clears the slot's levels, BBO, base, trade statistics and stale flags, not the order
        table: orders a previous symbol of this slot left there keep naming the slot (the
        leak docs/book.md §2 describes), and if such an order is ever touched again (its
        symbol subscribed again, on any slot) the stored slot wins, literally."""
        s = self._slot(slot)
        if locate is not None and not 0 <= locate < 1 << 16:
            raise ValueError(f"locate {locate} is not 16 bits")
        if not 0 <= base <= _MAX32:
            raise ValueError(f"base {base} is not 32 bits")
        s.name = pad_symbol(name)
        s.active = True
        s.locate_known = locate is not None
        s.locate = locate or 0
        s.sub_base = base
        s.clear_book()
        s.clear_trades()
        self._remap()

    def unsubscribe(self, slot: int) -> None:
        """``book_cmd.unsubscribe``: the slot no longer takes messages (its state stays as it
        is until it is subscribed again; its orders stay in the table)."""
        self._slot(slot).active = False
        self._remap()

    def reset(self) -> None:
        """``book_cmd.reset``: empty the order table and every slot's book.

        Reading: "the book" is what :meth:`_Slot.clear_book` clears — levels, BBO, window base
        (back to ``sub_base``) and stale flags. Subscriptions (name, locate, whether it is
        known) and trade statistics stay: the trades that happened are still facts."""
        self._table = [None] * self.params.orders
        for s in self._slots:
            s.clear_book()

    # -- feed -----------------------------------------------------------------------------
    def message(self, seq: int, msg: bytes) -> None:
        """One delivered ITCH message with sequence number ``seq``.

        Unknown types are the ingress's business (``itch_unknown``) and are ignored here; a
        known type with the wrong length counts ``itch_bad_length`` and is skipped."""
        if not msg:
            return
        t = msg[0]
        length = _LENGTH_OF.get(t)
        if length is None:
            return
        if len(msg) != length:
            self.counters["itch_bad_length"] += 1
            return
        if t == 0x52:   # R
            self._directory((msg[1] << 8) | msg[2], msg[11:19])
            return
        op = self._dispatch.get(t)
        if op is None:
            return
        slot = self._by_locate.get((msg[1] << 8) | msg[2])
        if slot is None:
            return
        self.counters["book_ops"] += 1
        self._seq = seq
        self._time = int.from_bytes(msg[5:11], "big")
        op(slot, msg)
        self._end_run()

    def gap(self, seq: int) -> None:
        """A sequence gap: every subscribed slot goes stale (``GAP``)."""
        self._stale_all(AlertReason.GAP, seq)

    def invalidate(self, seq: int) -> None:
        """An invalidation notice: every subscribed slot goes stale (``INVALIDATED``)."""
        self._stale_all(AlertReason.INVALIDATED, seq)

    def fifo_overflow(self, seq: int) -> None:
        """An op lost to a full op FIFO (the model has no FIFO; for benches that force one):
        ``book_fifo_overflow`` and every subscribed slot stale (``FIFO_OVERFLOW``)."""
        self.counters["book_fifo_overflow"] += 1
        self._stale_all(AlertReason.FIFO_OVERFLOW, seq)

    # -- queries --------------------------------------------------------------------------
    def bbo(self, slot: int) -> tuple[int, int, int, int]:
        """(bid_px, bid_sz, ask_px, ask_sz) of ``slot``; an empty side reads 0, 0."""
        return self._bbo(self._slot(slot))

    def stats(self, slot: int) -> dict:
        """The slot_* registers: trade statistics, stale bits, locate, base, state."""
        s = self._slot(slot)
        return {"last_px": s.last_px, "last_sz": s.last_sz, "volume": s.volume,
                "notional": s.notional, "stale": s.stale, "locate": s.locate, "base": s.base,
                "active": s.active, "locate_known": s.locate_known}

    def depth(self, slot: int) -> tuple[int, int]:
        """Number of non-empty levels (bid side, ask side) of ``slot``."""
        s = self._slot(slot)
        return len(s.levels[_BID]), len(s.levels[_ASK])

    def levels(self, slot: int, side: str) -> list[tuple[int, int]]:
        """The non-empty levels of one side (``"B"`` or ``"S"``), best first, as (price, size)."""
        s = self._slot(slot)
        k = _ASK if side == "S" else _BID
        tick = self.params.tick
        return [(s.base + i * tick, s.levels[k][i])
                for i in sorted(s.levels[k], reverse=k == _BID)]

    def lookup(self, ref: int) -> tuple[int, int] | None:
        """(set, way) of a held reference, or None."""
        i = self._find(ref)
        return None if i < 0 else divmod(i, self.params.ways)

    def entry(self, set_index: int, way: int) -> dict | None:
        """The order table entry at (set, way) as a dict, or None when the way is free."""
        o = self._table[set_index * self.params.ways + way]
        if o is None:
            return None
        return {"ref": o.ref, "slot": o.slot, "side": "BS"[o.side], "price": o.price,
                "shares": o.shares, "inwin": o.inwin, "idx": o.idx}

    def held(self) -> int:
        """Number of live order table entries."""
        return sum(o is not None for o in self._table)

    # -- directory ------------------------------------------------------------------------
    def _directory(self, locate: int, stock: bytes) -> None:
        """An ``R``: the first active slot waiting for this name takes the locate.

        Reading: a host that subscribed one name on two slots made an error; only the lowest
        of them is resolved."""
        for s in self._slots:
            if s.active and not s.locate_known and s.name == stock:
                s.locate = locate
                s.locate_known = True
                self.counters["directory_matches"] += 1
                self._remap()
                return

    # -- events ---------------------------------------------------------------------------
    def _bbo(self, s: _Slot) -> tuple[int, int, int, int]:
        base, tick = s.base, self.params.tick
        b, a = s.best
        bid = (0, 0) if b is None else (base + b * tick, s.levels[_BID][b])
        ask = (0, 0) if a is None else (base + a * tick, s.levels[_ASK][a])
        return bid + ask

    def _touch(self, slot: int) -> None:
        """A step is about to run on ``slot``: end the run of another slot, start a new run."""
        if slot != self._run_slot:
            self._end_run()
            self._run_slot = slot
            self._run_before = self._bbo(self._slots[slot])

    def _end_run(self) -> None:
        """Raise the BBO event of the current run when the slot's BBO changed during it."""
        slot = self._run_slot
        if slot is None:
            return
        self._run_slot = None
        s = self._slots[slot]
        now = self._bbo(s)
        if now != self._run_before:
            self.counters["bbo_updates"] += 1
            self.events.append(BookEvent(EventKind.BBO, slot, {
                "itch_seq": self._seq, "bid_px": now[0], "bid_sz": now[1], "ask_px": now[2],
                "ask_sz": now[3], "itch_time": self._time, "locate": s.locate,
                "flags": BBO_STALE if s.stale else 0, "symbol": s.name}))

    def _alert(self, reason: AlertReason, slot: int, locate: int, ref: int, price: int) -> None:
        self.events.append(BookEvent(EventKind.BOOK_ALERT, int(reason), {
            "itch_seq": self._seq, "slot": slot, "locate": locate, "order_ref": ref,
            "price": price}))

    def _stale(self, slot: int, reason: AlertReason, ref: int = 0, price: int = 0) -> None:
        """Set a stale bit of one slot; alert only when it is newly set."""
        s = self._slots[slot]
        if not s.stale & reason.bit:
            s.stale |= reason.bit
            self._alert(reason, slot, s.locate, ref, price)

    def _stale_all(self, reason: AlertReason, seq: int) -> None:
        """A global reason: one alert (slot 0xFF) if any active slot lacked the bit, then
        every active slot has it. Reading: "subscribed" = active, locate known or not."""
        self._end_run()
        self._seq = seq
        active = [s for s in self._slots if s.active]
        if any(not s.stale & reason.bit for s in active):
            self._alert(reason, ALL_SLOTS, 0, 0, 0)
        for s in active:
            s.stale |= reason.bit

    def _trade(self, slot: int, price: int, shares: int, match: int, type_byte: int) -> None:
        s = self._slots[slot]
        s.last_px = price
        s.last_sz = min(shares, _MAX32)
        s.volume = (s.volume + shares) & _MASK64
        s.notional = (s.notional + price * shares) & _MASK64
        self.counters["trades"] += 1
        self.events.append(BookEvent(EventKind.TRADE, slot, {
            "itch_seq": self._seq, "price": price, "shares": s.last_sz, "volume": s.volume,
            "notional": s.notional, "match": match, "locate": s.locate, "type": type_byte}))

    # -- order table and levels -----------------------------------------------------------
    def _find(self, ref: int) -> int:
        """Table index of held ``ref``, or -1. References >= 2**40 are never held (Reading:
        the lookup must not truncate them to 40 bits and match another order)."""
        if ref >= _REF_LIMIT:
            return -1
        ways, table = self._ways, self._table
        first = self._set_of(ref) * ways
        for i in range(first, first + ways):
            o = table[i]
            if o is not None and o.ref == ref:
                return i
        return -1

    def _set_of(self, ref: int) -> int:
        """:meth:`BookParams.set_of` with its constants hoisted (the hot path of the model;
        the tests check the two agree)."""
        b, mask = self._set_bits, self._set_mask
        h, rest = ref & mask, ref >> b
        while rest:
            h ^= rest & mask
            rest >>= b
        return h

    def _free_way(self, ref: int) -> int:
        """Table index of the lowest free way of ``ref``'s set, or -1 (capacity)."""
        ways, table = self._ways, self._table
        first = self._set_of(ref) * ways
        for i in range(first, first + ways):
            if table[i] is None:
                return i
        return -1

    def _level_add(self, slot: int, side: int, idx: int, shares: int) -> bool:
        """Grow a level; True when it saturated at 2**32-1."""
        s = self._slots[slot]
        lv = s.levels[side]
        old = lv.get(idx, 0)
        new = old + shares
        over = new > _MAX32
        if over:
            new = _MAX32
        lv[idx] = new
        if old == 0:
            best = s.best[side]
            if best is None or (idx > best if side == _BID else idx < best):
                s.best[side] = idx
        return over

    def _level_sub(self, slot: int, side: int, idx: int, n: int) -> None:
        """Shrink a level by ``n``, never below 0; an emptied best level walks to the next.

        Reading: a level is non-empty while its size is non-zero (a saturated level can reach 0
        while orders remain on it; they then shrink nothing)."""
        s = self._slots[slot]
        lv = s.levels[side]
        old = lv.get(idx, 0)
        if old == 0 or n == 0:
            return
        if old > n:
            lv[idx] = old - n
            return
        del lv[idx]
        if idx == s.best[side]:
            self.counters["book_walks"] += 1
            s.best[side] = (max(lv) if side == _BID else min(lv)) if lv else None

    def _shrink(self, i: int, n: int) -> None:
        """Take ``n`` (<= remaining) shares off the order at table index ``i``; free it at 0."""
        o = self._table[i]
        assert o is not None
        if o.inwin:
            self._level_sub(o.slot, o.side, o.idx, n)
        o.shares -= n
        if o.shares == 0:
            self._table[i] = None

    def _add(self, slot: int, ref: int, side: int, shares: int, price: int) -> None:
        """The add of ``A``/``F`` and of ``U``'s new reference (docs/book.md §3)."""
        if shares == 0 or price == 0:
            self.counters["book_zero_add"] += 1
            return
        if ref >= _REF_LIMIT:
            self._touch(slot)
            self.counters["book_ref_range"] += 1
            self._stale(slot, AlertReason.REF_RANGE, ref, price)
            return
        i = self._find(ref)
        if i >= 0:
            # A removal step on the held order's own slot, then its entry is overwritten.
            self.counters["book_add_live_ref"] += 1
            old = self._table[i]
            assert old is not None
            self._touch(old.slot)
            self._shrink(i, old.shares)
        else:
            i = self._free_way(ref)
            if i < 0:
                self._touch(slot)
                self.counters["book_capacity"] += 1
                self._stale(slot, AlertReason.CAPACITY, ref, price)
                return
        self._touch(slot)
        p = self.params
        s = self._slots[slot]
        if not s.base_known:
            s.base = p.auto_base(price)
            s.base_known = True
        idx = p.level_index(s.base, price)
        if idx is None:
            self._table[i] = _Order(ref, slot, side, price, shares, False, 0)
            self.counters["book_window"] += 1
            self._stale(slot, AlertReason.WINDOW, ref, price)
            return
        self._table[i] = _Order(ref, slot, side, price, shares, True, idx)
        if self._level_add(slot, side, idx, shares):
            self.counters["book_level_overflow"] += 1
            self._stale(slot, AlertReason.LEVEL_OVERFLOW, ref, price)

    # -- operations (one per message type) ------------------------------------------------
    def _op_add(self, slot: int, msg: bytes) -> None:
        """``A``/``F``. Reading: the side is the ask when the side byte is ``S``, else the bid
        (the gateware keeps one bit)."""
        ref, side, shares, _stock, price = _BODY["A"].unpack_from(msg, _HEADER_LENGTH)
        self._add(slot, ref, _ASK if side == b"S" else _BID, shares, price)

    def _held(self, ref: int) -> tuple[int, _Order] | None:
        """The table index and order of ``ref`` for ``E C X D U``, with its own slot touched;
        ``None`` (counted ``book_unknown_ref``) when the table does not hold it."""
        i = self._find(ref)
        if i < 0:
            self.counters["book_unknown_ref"] += 1
            return None
        o = self._table[i]
        assert o is not None
        self._touch(o.slot)
        return i, o

    def _op_exec(self, slot: int, msg: bytes) -> None:
        """``E``, ``C`` and ``X``: the stored order's slot wins over the message's."""
        t = msg[0]
        match, printable, exec_price = 0, b"N", 0
        if t == 0x58:   # X
            ref, n = _BODY["X"].unpack_from(msg, _HEADER_LENGTH)
        elif t == 0x43:  # C
            ref, n, match, printable, exec_price = _BODY["C"].unpack_from(msg, _HEADER_LENGTH)
        else:
            ref, n, match = _BODY["E"].unpack_from(msg, _HEADER_LENGTH)
        held = self._held(ref)
        if held is None:
            return
        i, o = held
        own, price = o.slot, o.price
        if n > o.shares:
            self.counters["book_clamped"] += 1
            n = o.shares
        self._shrink(i, n)
        if n and t != 0x58:
            if t == 0x45:   # E: at the resting order's price
                self._trade(own, price, n, match, t)
            elif printable == b"Y":
                self._trade(own, exec_price, n, match, t)

    def _op_delete(self, slot: int, msg: bytes) -> None:
        """``D``: the whole remaining size goes."""
        (ref,) = _BODY["D"].unpack_from(msg, _HEADER_LENGTH)
        held = self._held(ref)
        if held is not None:
            self._shrink(held[0], held[1].shares)

    def _op_replace(self, slot: int, msg: bytes) -> None:
        """``U``: remove the original (as ``D``), then add ``new_ref`` on its slot and side."""
        orig, new, shares, price = _BODY["U"].unpack_from(msg, _HEADER_LENGTH)
        held = self._held(orig)
        if held is None:
            return
        i, o = held
        own, side = o.slot, o.side
        self._shrink(i, o.shares)
        self._add(own, new, side, shares, price)

    def _op_trade(self, slot: int, msg: bytes) -> None:
        """``P`` (price, 4-byte shares) and ``Q`` (cross price, 8-byte shares) on the message's
        slot. Reading: these trades are raised whatever their size (0 included)."""
        t = msg[0]
        self._touch(slot)
        if t == 0x50:   # P
            _ref, _side, shares, _stock, price, match = _BODY["P"].unpack_from(
                msg, _HEADER_LENGTH)
        else:
            shares, _stock, price, match, _cross = _BODY["Q"].unpack_from(msg, _HEADER_LENGTH)
        self._trade(slot, price, shares, match, t)


def _check_event_fields() -> None:
    """The event dicts above must carry exactly the fields of hw/events.py."""
    names = {k: tuple(n for n, _ in BODY_FIELDS[k])
             for k in (EventKind.BBO, EventKind.TRADE, EventKind.BOOK_ALERT)}
    assert names[EventKind.BBO] == ("itch_seq", "bid_px", "bid_sz", "ask_px", "ask_sz",
                                    "itch_time", "locate", "flags", "symbol")
    assert names[EventKind.TRADE] == ("itch_seq", "price", "shares", "volume", "notional",
                                      "match", "locate", "type")
    assert names[EventKind.BOOK_ALERT] == ("itch_seq", "slot", "locate", "order_ref", "price")


_check_event_fields()


def bbo_changes(day_messages: Iterable[bytes], symbols: list[str],
                params: BookParams = DEFAULT_PARAMS) -> list[tuple[int, str, int, int, int, int]]:
    """The BBO changes of ``symbols`` over a day, as ``wirespeed replay --bbo-out`` writes
    them: rows (seq, symbol, bid_px, bid_sz, ask_px, ask_sz), where seq is the 1-based index of
    the message in the day. The symbols are subscribed to slots 0.. in order and resolved from
    the day's directory (``R``), as the card does at the start of a day.

    (itch-book's ``seq`` counts only the messages it decoded, skipping unknown types and bad
    lengths; the two agree on days without those, such as :func:`sim.feed.synth.generate_day`'s.)
    """
    if len(symbols) > params.slots:
        raise ValueError(f"{len(symbols)} symbols but only {params.slots} slots")
    model = BookModel(params)
    for i, name in enumerate(symbols):
        model.subscribe(i, name)
    names = [pad_symbol(s).decode("ascii").rstrip(" ") for s in symbols]
    rows: list[tuple[int, str, int, int, int, int]] = []
    events = model.events
    bbo_kind = EventKind.BBO
    for seq, msg in enumerate(day_messages, 1):
        model.message(seq, msg)
        if events:
            for e in events:
                if e.kind is bbo_kind:
                    f = e.fields
                    rows.append((seq, names[e.aux], f["bid_px"], f["bid_sz"], f["ask_px"],
                                 f["ask_sz"]))
            events.clear()
    return rows
