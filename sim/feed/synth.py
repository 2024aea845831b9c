"""A synthetic, internally consistent NASDAQ TotalView-ITCH 5.0 trading day.

The day is deterministic for a seed and realistic enough to exercise every path of a feed
handler and book builder:

* **Session skeleton.** ``S``/``O`` at 03:55, the stock directory (``R``), Reg SHO (``Y``),
  trading state (``H`` = ``T``) and market-maker positions (``L``) for each stock, MWCB
  decline levels (``V``), ``S``/``S`` at 04:00, ``S``/``Q`` and the opening crosses at
  09:30, ``S``/``M`` and the closing crosses at 16:00, ``S``/``E`` at 20:00 and ``S``/``C`` last.
* **Stocks.** The requested symbols take locates 1..N; a few *filler* symbols (locates
  N+1.., with order flow of their own) stand for the thousands of stocks a card is not
  subscribed to, and one IPO stock goes through ``K`` (quoting period), ``H``/``Q``, ``O``
  (DLCR price discovery) and ``H``/``T`` without order flow.
* **Order flow** per stock around a random-walking reference price (1/10000 USD; penny grid,
  sub-penny 1/10000 grid for the one filler priced under $1, as Reg NMS 612 allows): adds
  (``A``, ``F`` with MPID) on many levels and many orders per level, deletes ``D``, partial
  cancels ``X``, replaces ``U`` (new reference, same side and locate), aggressive orders
  that execute resting orders best level first and in time priority (``E``; ``C`` for
  price-to-comply orders executing at their undisplayed limit), sweeping several levels
  now and then, hidden-order trades ``P``, crosses ``Q`` (with ``C`` executions of book
  orders, printable ``N``), NOII ``I`` before the crosses, ``N``, a broken trade ``B``.
* **Episodes.** An operational halt (``h``) and a LULD pause (``H``/``P``, collar ``J``,
  ``H``/``T``) on fillers, during which those stocks do not trade; one MWCB status ``W``
  (exercise only: a real one would halt the whole market).

Invariants of the normal flow (``faults=False``), all verified by :func:`check_day`: no
message names an order that is not live, the book never crosses or locks, executions never
exceed what remains and always hit the best level's oldest order, order references and
match numbers are day-unique and increasing (references stay far below 2**32), timestamps
never decrease, and (in any day of 10,000 messages or more) every ITCH 5.0 type appears.

With ``faults=True`` a low rate of realistic publisher/transport faults is injected. The
generator applies to its own book the rules careful book builders use (ignore what names an
unknown order, clamp over-executions, ignore zero-share adds, let an add on a live
reference replace the stale order), so a builder following them ends in the same state:

* ``unknown_ref`` — an ``E``, ``X`` or ``D`` on an order that was already retired
  (a duplicate or late message); it must change nothing.
* ``oversized_execute`` — an ``E`` for more shares than remain; it must clamp, removing
  the order.
* ``zero_shares_add`` — an ``A`` with zero shares; it must be ignored (its reference is
  never used again).
* ``add_on_live_ref`` — an ``A`` reusing a live reference with a new side, price and size;
  it must replace the stale order.

Time: order flow runs 04:00-20:00 with 7% of it pre-market, 85% in regular hours and 8%
after hours; timestamps (ns since midnight) never decrease, and the executions of one
aggressive order are nanoseconds apart (at most 2 us).

Speed: everything per message is plain integer work on ``__slots__`` objects and one
precompiled :class:`struct.Struct` per type (derived from the :mod:`proto.itch` layouts).
``python -m sim.feed.synth day.bin --messages 1000000`` takes about 4 s on a loaded 2-core
machine (about 7 s writing ``.gz``); :func:`check_day` replays about 130k messages/s.
"""

from __future__ import annotations

import argparse
import math
import random
import struct
import sys
import time
from bisect import bisect_left, insort
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from proto.itch import MESSAGES, decode
from proto.layout import Kind

__all__ = [
    "DEFAULT_SYMBOLS", "FAULT_KINDS", "CheckReport", "DayGenerator", "DayInconsistency",
    "check_day", "generate_day", "packer", "main",
]

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "AMZN", "NVDA", "GOOGL", "META", "TSLA", "INTC")
_FILLER_POOL = ("ADBE", "CSCO", "PEP", "COST", "AMD", "QCOM", "SIRI", "ZNGA", "TXN", "SBUX")
_PENNY_FILLER = "GNUS"      # the filler quoted under $1, on the sub-penny grid
_IPO_SYMBOL = "NEWCO"
_MPIDS = (b"GSCO", b"MSCO", b"UBSS", b"JPMS", b"CDRG", b"NITE", b"VIRT", b"ABNA")
FAULT_KINDS = ("unknown_ref", "oversized_execute", "zero_shares_add", "add_on_live_ref")

_H = 3_600_000_000_000
_M = _H // 60
_S = _M // 60
T_START = 3 * _H + 55 * _M          # S/O and the directory
T_SYSTEM = 4 * _H                   # S/S: order flow starts
T_OPEN = 9 * _H + 30 * _M           # S/Q and opening crosses
T_CLOSE = 16 * _H                   # S/M and closing crosses
T_END = 20 * _H                     # S/E: order flow stops
T_LAST = 20 * _H + 5 * _M           # S/C
#: Share of the order flow in pre-market, regular and post-market hours.
_FLOW_SHAPE = ((T_SYSTEM, 0.0), (T_OPEN, 0.07), (T_CLOSE, 0.92), (T_END, 1.0))
_NOII_WINDOWS = ((T_OPEN - 5 * _M, T_OPEN), (T_CLOSE - 10 * _M, T_CLOSE))
_PRICE = 10_000             # one dollar in ITCH Price(4)
_MAX_BOOK = 400             # live orders per stock above which adds turn into deletes
_MIN_BOOK = 24              # below which removals turn into adds


def packer(code: str) -> Callable[..., bytes]:
    """A fast positional packer for ITCH type ``code``, derived from its layout.

    Arguments follow the layout's field order, except that the 6-byte timestamp is passed
    as two integers (high 16 bits, low 32 bits) and character/alpha fields as bytes. The
    generic :meth:`proto.layout.MessageLayout.pack` validates every field by name, which is
    right for tools but costs ~20x more per message than a day of millions can afford.
    """
    fmt = ">"
    for f in MESSAGES[code].fields:
        fmt += "HI" if f.kind is Kind.UINT and f.size == 6 else f.struct_code
    return struct.Struct(fmt).pack


_P = {code: packer(code) for code in MESSAGES}
_TYPE = {code: code.encode() for code in MESSAGES}
_LO = 0xFFFFFFFF
_SIDE = (b"B", b"S")
_BID, _ASK = 0, 1


def _alpha(text: str, size: int) -> bytes:
    return text.encode("ascii").ljust(size, b" ")


class _Book:
    """One stock: its two sides (price -> FIFO of order refs, plus sorted prices)."""

    __slots__ = ("locate", "name", "stock", "tracking", "tick", "ref", "levels", "prices",
                 "live", "halted", "active", "subscribed")

    def __init__(self, locate: int, name: str, price: int, tick: int, subscribed: bool,
                 active: bool):
        self.locate = locate
        self.name = name
        self.stock = _alpha(name, 8)
        self.tracking = 1 + locate % 7      # "matching engine" of the stock: any small int
        self.tick = tick
        self.ref = price                    # reference price the flow walks around
        self.levels: tuple[dict[int, list[int]], dict[int, list[int]]] = ({}, {})
        self.prices: tuple[list[int], list[int]] = ([], [])
        self.live: list[int] = []           # live refs, for O(1) random choice
        self.halted = 0                     # halts in force (operational, LULD)
        self.active = active
        self.subscribed = subscribed


class DayGenerator:
    """Iterate to get the day's messages (exactly ``n_messages`` of them).

    After iteration, :attr:`fault_counts` holds how many faults of each kind were injected
    (all zero without ``faults``), which a checker can compare with what it detected.
    """

    def __init__(self, n_messages: int, *, symbols: Iterable[str] = DEFAULT_SYMBOLS,
                 seed: int = 1, fillers: int = 4, filler_share: float = 0.2,
                 faults: bool = False, fault_rate: float = 0.002):
        self.symbols = tuple(symbols)
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be a non-empty list without duplicates")
        for s in self.symbols:
            if not (s.isascii() and s.isalnum() and s == s.upper() and 1 <= len(s) <= 8):
                raise ValueError(f"bad symbol {s!r}: 1-8 upper-case ASCII letters/digits")
        if not 0 <= fillers <= len(_FILLER_POOL):
            raise ValueError(f"fillers must be in 0..{len(_FILLER_POOL)}")
        if not 0 <= filler_share < 1 or not 0 <= fault_rate < 0.5:
            raise ValueError("filler_share must be in [0, 1), fault_rate in [0, 0.5)")
        if not isinstance(n_messages, int) or n_messages < 0:
            raise ValueError(f"n_messages must be a non-negative int, got {n_messages!r}")
        self.n_messages = n_messages
        self.seed = seed
        self.faults = faults
        self.fault_rate = fault_rate if faults else 0.0
        self.fault_counts: Counter[str] = Counter({k: 0 for k in FAULT_KINDS})
        rng = self._rng = random.Random(seed)

        self.books: list[_Book] = []
        for name in self.symbols:
            self._new_book(name, subscribed=True, active=True)
        names = [f for f in _FILLER_POOL if f not in self.symbols]
        if _PENNY_FILLER not in self.symbols and fillers:
            names = [_PENNY_FILLER, *names]
        for name in names[:fillers]:
            self._new_book(name, subscribed=False, active=True)
        ipo_name = _IPO_SYMBOL
        while ipo_name in self.symbols:
            ipo_name = ipo_name[:-1] + chr(ord(ipo_name[-1]) + 1)
        self.ipo = self._new_book(ipo_name, subscribed=False, active=False)
        self.active = [b for b in self.books if b.active]
        fillers_active = [b for b in self.active if not b.subscribed]
        # Which stock each flow step picks: a cumulative table over the active stocks.
        weights = []
        for b in self.active:
            if b.subscribed:
                share = 1 - filler_share if fillers_active else 1.0
                weights.append(share / len(self.symbols) * rng.uniform(0.5, 1.5))
            else:
                weights.append(filler_share / len(fillers_active) * rng.uniform(0.5, 1.5))
        total = sum(weights)
        acc, self._cum = 0.0, []
        for w in weights:
            acc += w / total
            self._cum.append(acc)
        self._cum[-1] = 1.0

        self.orders: dict[int, list] = {}   # ref -> [book, side, price, shares, live index]
        self._next_ref = rng.randrange(1_000, 10_000)
        self._match = rng.randrange(10_000, 100_000)
        self._matches: deque[int] = deque(maxlen=64)
        self._retired: deque[int] = deque(maxlen=256)
        self._out: list[bytes] = []
        self._ts = 0
        self._started = False

        self._schedule = self._plan()
        fixed = self._preamble_count() + sum(n for _, n, _ in self._schedule)
        self._flow_total = n_messages - fixed
        if self._flow_total < 0:
            raise ValueError(f"a day with these symbols needs at least {fixed} messages")
        self._flow_left = self._flow_total

    # -- stocks -----------------------------------------------------------------------------
    def _new_book(self, name: str, *, subscribed: bool, active: bool) -> _Book:
        rng = self._rng
        if name == _PENNY_FILLER:
            price, tick = rng.randrange(2_000, 8_000), 1        # $0.20-$0.80, sub-penny
        else:
            dollars = math.exp(rng.uniform(math.log(8), math.log(600)))
            price, tick = int(dollars * 100) * 100, 100
        b = _Book(len(self.books) + 1, name, price, tick, subscribed, active)
        self.books.append(b)
        return b

    # -- emission helpers -------------------------------------------------------------------
    def _stamp(self, t: int) -> int:
        """Advance the clock to ``t`` (never backwards) and return it."""
        if t > self._ts:
            self._ts = t
        return self._ts

    def _sys(self, code: str, t: int) -> None:
        ts = self._stamp(t)
        self._out.append(_P["S"](b"S", 0, 0, ts >> 32, ts & _LO, code.encode()))

    def _match_no(self) -> int:
        self._match += 1
        self._matches.append(self._match)
        return self._match

    # -- fixed parts of the day -------------------------------------------------------------
    def _preamble_count(self) -> int:
        subscribed = sum(b.subscribed for b in self.books)
        return 1 + 3 * len(self.books) + 2 * subscribed + 1 + 1

    def _preamble(self) -> None:
        rng, out = self._rng, self._out
        self._sys("O", T_START)
        t = T_START + 1_000_000
        for b in self.books:
            ts = self._stamp(t)
            t += rng.randrange(5_000, 50_000)
            large = b.subscribed
            out.append(_P["R"](
                b"R", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock,
                b"Q" if large else b"G", b"N", 100, b"N", b"C", b"Z ", b"P", b"N",
                b"Y" if b is self.ipo else b"N", b"1" if large else b"2", b"N", 0, b"N"))
        for b in self.books:
            ts = self._stamp(t)
            t += rng.randrange(5_000, 50_000)
            out.append(_P["Y"](b"Y", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock, b"0"))
            halted = b is self.ipo
            out.append(_P["H"](b"H", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock,
                               b"H" if halted else b"T", b" ", b"IPO1" if halted else b"    "))
            if b.subscribed:
                for mpid in rng.sample(_MPIDS, 2):
                    out.append(_P["L"](b"L", b.locate, b.tracking, ts >> 32, ts & _LO, mpid,
                                       b.stock, b"Y" if mpid == _MPIDS[0] else b"N", b"N",
                                       b"A"))
        ts = self._stamp(t)
        spx = rng.randrange(4_000, 6_000) * 10**8       # S&P 500 close, Price(8)
        out.append(_P["V"](b"V", 0, 0, ts >> 32, ts & _LO, spx * 93 // 100, spx * 87 // 100,
                           spx * 80 // 100))
        self._sys("S", T_SYSTEM)

    def _plan(self) -> list[tuple[int, int, Callable[[int], None]]]:
        """Scheduled events: (time, message count, action). Counts are exact so that the
        day has exactly ``n_messages``; crosses may add ``C`` executions from the flow budget.
        """
        rng = self._rng
        ev: list[tuple[int, int, Callable[[int], None]]] = []
        n_active = len(self.active)
        subscribed = [b for b in self.books if b.subscribed]
        fillers = [b for b in self.active if not b.subscribed]
        halt_book = fillers[0] if fillers else subscribed[-1]
        pause_book = fillers[-1] if len(fillers) > 1 else subscribed[0]
        ipo = self.ipo

        ev.append((7 * _H, 1, lambda t: self._ipo_quoting(ipo, t)))
        for _lo, hi in _NOII_WINDOWS:
            ev.append((hi - 2 * _M, len(subscribed), lambda t: self._noii_all(subscribed, t)))
        ev.append((T_OPEN, 1 + n_active, lambda t: self._market_cross("Q", b"O", t)))
        ev.append((11 * _H, 1, lambda t: self._trading_action(ipo, b"Q", b"IPOQ", t)))
        ev.append((11 * _H + 5 * _M, 1, lambda t: self._dlcr(ipo, t)))
        ev.append((11 * _H + 30 * _M, 1, lambda t: self._trading_action(ipo, b"T", b"    ", t)))
        t_halt = rng.randrange(T_OPEN + _H, T_CLOSE - 2 * _H)
        ev.append((t_halt, 1, lambda t: self._op_halt(halt_book, b"H", t)))
        ev.append((t_halt + rng.randrange(5, 20) * _M, 1,
                   lambda t: self._op_halt(halt_book, b"T", t)))
        t_pause = rng.randrange(T_OPEN + _H, T_CLOSE - 2 * _H)
        ev.append((t_pause, 2, lambda t: self._luld_pause(pause_book, t)))
        ev.append((t_pause + 5 * _M + rng.randrange(0, 5 * _M), 1,
                   lambda t: self._luld_resume(pause_book, t)))
        ev.append((rng.randrange(T_OPEN, T_CLOSE), 1, self._mwcb_status))
        ev.append((T_CLOSE, 1 + n_active, lambda t: self._market_cross("M", b"C", t)))
        ev.append((T_CLOSE + 30 * _M, 1, self._broken_trade))
        ev.append((T_END, 1, lambda t: self._sys("E", t)))
        ev.append((T_LAST, 1, lambda t: self._sys("C", t)))
        ev.sort(key=lambda e: e[0])     # stable: equal times keep the order above
        return ev

    def _trading_action(self, b: _Book, state: bytes, reason: bytes, t: int) -> None:
        ts = self._stamp(t)
        self._out.append(_P["H"](b"H", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock,
                                 state, b" ", reason))

    def _ipo_quoting(self, b: _Book, t: int) -> None:
        ts = self._stamp(t)
        self._out.append(_P["K"](b"K", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock,
                                 11 * 3600, b"A", b.ref))

    def _dlcr(self, b: _Book, t: int) -> None:
        ts, p = self._stamp(t), b.ref
        self._out.append(_P["O"](b"O", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock, b"Y",
                                 p // 2, p * 3 // 2, p, ts - _S, p * 9 // 10, p * 11 // 10))

    def _op_halt(self, b: _Book, action: bytes, t: int) -> None:
        ts = self._stamp(t)
        b.halted += 1 if action == b"H" else -1
        self._out.append(_P["h"](b"h", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock, b"Q",
                                 action))

    def _luld_pause(self, b: _Book, t: int) -> None:
        self._trading_action(b, b"P", b"LUDP", t)
        b.halted += 1
        ts, p = self._stamp(t + 500_000), b.ref
        self._out.append(_P["J"](b"J", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock, p,
                                 p * 105 // 100 // b.tick * b.tick,
                                 p * 95 // 100 // b.tick * b.tick, 0))

    def _luld_resume(self, b: _Book, t: int) -> None:
        self._trading_action(b, b"T", b"    ", t)
        b.halted -= 1

    def _mwcb_status(self, t: int) -> None:
        ts = self._stamp(t)
        self._out.append(_P["W"](b"W", 0, 0, ts >> 32, ts & _LO, b"1"))

    def _broken_trade(self, t: int) -> None:
        ts = self._stamp(t)
        match = self._rng.choice(self._matches)     # crosses guarantee there is one
        self._out.append(_P["B"](b"B", 0, 0, ts >> 32, ts & _LO, match))

    def _noii(self, b: _Book, t: int) -> None:
        rng = self._rng
        ts = self._stamp(t + rng.randrange(0, 1_000_000))
        p = b.ref
        paired = rng.randrange(10, 500) * 100
        imbalance = rng.randrange(0, 100) * 100
        direction = rng.choice((b"B", b"S")) if imbalance else b"N"
        cross = b"O" if t <= T_OPEN else b"C"
        self._out.append(_P["I"](b"I", b.locate, b.tracking, ts >> 32, ts & _LO, paired,
                                 imbalance, direction, b.stock, p + b.tick, p, p, cross, b"L"))

    def _noii_all(self, books: list[_Book], t: int) -> None:
        for b in books:
            self._noii(b, t)

    def _market_cross(self, event: str, cross_type: bytes, t: int) -> None:
        """S/Q or S/M, then one cross per active stock: book orders at the best level of one
        side execute (``C`` at the cross price, not printable: the ``Q`` prints the cross)
        against cross-only interest."""
        rng, out, orders = self._rng, self._out, self.orders
        self._sys(event, t)
        for b in self.active:
            ts = self._stamp(self._ts + rng.randrange(1_000, 20_000))
            side = rng.randrange(2)
            px = b.prices[side]
            shares = rng.randrange(10, 2_000) * 100     # cross-only interest
            price = b.ref
            if px and not b.halted:
                price = px[-1] if side == _BID else px[0]
                queue = b.levels[side][price]
                for ref in queue[:rng.randrange(1, 4)]:
                    if self._flow_left <= 0:
                        break
                    o = orders[ref]
                    fill = o[3]
                    out.append(_P["C"](b"C", b.locate, b.tracking, ts >> 32, ts & _LO, ref,
                                       fill, self._match_no(), b"N", price))
                    self._flow_left -= 1
                    shares += fill
                    self._remove(ref)
            out.append(_P["Q"](b"Q", b.locate, b.tracking, ts >> 32, ts & _LO, shares,
                               b.stock, price, self._match_no(), cross_type))

    # -- the book ---------------------------------------------------------------------------
    def _insert(self, b: _Book, ref: int, side: int, price: int, shares: int) -> None:
        lv = b.levels[side]
        q = lv.get(price)
        if q is None:
            lv[price] = [ref]
            insort(b.prices[side], price)
        else:
            q.append(ref)
        self.orders[ref] = [b, side, price, shares, len(b.live)]
        b.live.append(ref)

    def _remove(self, ref: int) -> None:
        orders = self.orders
        b, side, price, _, i = orders.pop(ref)
        lv = b.levels[side]
        q = lv[price]
        if len(q) == 1:
            del lv[price]
            px = b.prices[side]
            del px[bisect_left(px, price)]
        else:
            q.remove(ref)
        live = b.live
        last = live.pop()
        if last != ref:
            live[i] = last
            orders[last][4] = i
        self._retired.append(ref)

    def _limit_price(self, b: _Book, side: int) -> int:
        """A resting price: a few ticks behind the reference, never crossing or locking."""
        r = self._rng.random()
        k = int(-math.log(1.0 - r) * 5.0)                    # exponential, mean 5 levels
        tick = b.tick
        if side == _BID:
            p = max(b.ref - k * tick, tick)
            asks = b.prices[_ASK]
            if asks and p >= asks[0]:
                p = asks[0] - tick
            return p
        p = b.ref + (k + 1) * tick
        bids = b.prices[_BID]
        if bids and p <= bids[-1]:
            p = bids[-1] + tick
        return p

    def _shares(self) -> int:
        r = self._rng.random()
        if r < 0.1:
            return 1 + int(r * 990)                          # odd lot 1..99
        return 100 * (1 + int(-math.log(1.0 - r) * 3.0))    # round lots, long tail

    # -- order flow -------------------------------------------------------------------------
    def _time_at(self, done: float) -> int:
        """Clock for the flow after ``done`` of its messages (piecewise-linear day shape)."""
        total = self._flow_total
        frac = done / total if total else 1.0
        (t0, f0) = _FLOW_SHAPE[0]
        for t1, f1 in _FLOW_SHAPE[1:]:
            if frac <= f1:
                return t0 + int((frac - f0) / (f1 - f0) * (t1 - t0)) if f1 > f0 else t0
            t0, f0 = t1, f1
        return T_END

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a DayGenerator produces its day once; make a new one")
        self._started = True
        self._preamble()
        schedule = self._schedule
        rng = self._rng
        rand = rng.random
        cum = self._cum
        active = self.active
        n_active = len(active)
        fault_rate = self.fault_rate
        total = self._flow_total
        step_ns = max(1, min((T_CLOSE - T_OPEN) // max(total, 1) // 8, 2_000))
        produced = 0
        while self._flow_left > 0:
            # A random instant within this message's slot of the day's shape.
            t = self._time_at(total - self._flow_left + rand())
            while schedule and schedule[0][0] <= t:
                at, _, action = schedule.pop(0)
                action(at)
            if self._flow_left <= 0:        # a cross used the last of the budget
                break
            ts = self._stamp(t)
            i = bisect_left(cum, rand())
            b = active[i if i < n_active else n_active - 1]
            if fault_rate and rand() < fault_rate:
                self._fault(b, ts)
            else:
                self._step(b, ts, step_ns)
            if len(self._out) >= 4096:
                out, self._out = self._out, []
                produced += len(out)
                yield from out
        for at, _, action in schedule:
            action(at)
        out, self._out = self._out, []
        produced += len(out)
        yield from out
        if produced != self.n_messages:     # the budget bookkeeping is wrong: a bug here
            raise RuntimeError(f"generated {produced} messages, not {self.n_messages}")

    def _step(self, b: _Book, ts: int, step_ns: int) -> None:
        """One decision of the market for stock ``b``: always emits at least one message."""
        rng = self._rng
        w = rng.random()
        if w < 0.06:                                         # the reference price walks
            b.ref = max(b.ref + (b.tick if w < 0.03 else -b.tick), 2 * b.tick)
        # Action mix close to a real day's (adds ~45%, deletes ~35%, executions ~10%);
        # adds outnumber removals until the book reaches _MAX_BOOK orders.
        r = rng.random()
        n_live = len(b.live)
        if r < 0.50:
            action = "D" if n_live > _MAX_BOOK else ("F" if r < 0.04 else "A")
        elif n_live < _MIN_BOOK:
            action = "A"
        elif r < 0.79:
            action = "D"
        elif r < 0.81:
            action = "X"
        elif r < 0.89:
            action = "U"
        elif r < 0.94:
            action = "A" if b.halted else "E"
        elif r < 0.96:
            action = "A" if b.halted else "P"
        else:
            action = "I/N"
        out = self._out
        loc, trk = b.locate, b.tracking
        if action == "A":
            self._add_one(b, ts)
        elif action == "F":
            self._add_one(b, ts, rng.choice(_MPIDS))
        elif action == "D":
            ref = b.live[int(rng.random() * n_live)]
            out.append(_P["D"](b"D", loc, trk, ts >> 32, ts & _LO, ref))
            self._remove(ref)
            self._flow_left -= 1
        elif action == "X":
            ref = b.live[int(rng.random() * n_live)]
            o = self.orders[ref]
            if o[3] < 2:
                out.append(_P["D"](b"D", loc, trk, ts >> 32, ts & _LO, ref))
                self._remove(ref)
            else:
                cut = 1 + int(rng.random() * (o[3] - 1))
                out.append(_P["X"](b"X", loc, trk, ts >> 32, ts & _LO, ref, cut))
                o[3] -= cut
            self._flow_left -= 1
        elif action == "U":
            self._replace(b, ts)
        elif action == "E":
            self._sweep(b, ts, step_ns)
        elif action == "P":
            bids, asks = b.prices
            lo = bids[-1] if bids else b.ref
            hi = asks[0] if asks else lo
            price = lo + int(rng.random() * ((hi - lo) // b.tick + 1)) * b.tick
            out.append(_P["P"](b"P", loc, trk, ts >> 32, ts & _LO, 0, b"B", self._shares(),
                               b.stock, price, self._match_no()))
            self._flow_left -= 1
        else:
            self._sprinkle(b, ts)

    def _replace(self, b: _Book, ts: int) -> None:
        rng = self._rng
        old = b.live[int(rng.random() * len(b.live))]
        _, side, price, _, _ = self.orders[old]
        tick = b.tick
        price = max(price + (int(rng.random() * 5) - 2) * tick, tick)
        bids, asks = b.prices
        if side == _BID and asks and price >= asks[0]:
            price = asks[0] - tick
        elif side == _ASK and bids and price <= bids[-1]:
            price = bids[-1] + tick
        shares = self._shares()
        new = self._next_ref
        self._next_ref += 1
        self._out.append(_P["U"](b"U", b.locate, b.tracking, ts >> 32, ts & _LO, old, new,
                                 shares, price))
        self._remove(old)
        self._insert(b, new, side, price, shares)
        self._flow_left -= 1

    def _sweep(self, b: _Book, ts: int, step_ns: int) -> None:
        """An aggressive order against the side the reference has moved toward: executes
        resting orders in price-time priority, sometimes through several levels, never
        emptying the side."""
        rng, orders, out = self._rng, self.orders, self._out
        bids, asks = b.prices
        touch = (bids[-1] + asks[0] if bids and asks else 2 * b.ref)
        p_buy = 0.5 if 2 * b.ref == touch else (0.8 if 2 * b.ref > touch else 0.2)
        side = _ASK if rng.random() < p_buy else _BID      # the resting side that trades
        px = b.prices[side]
        levels = b.levels[side]
        if len(px) < 2:
            self._add_one(b, ts)
            return
        if rng.random() < 0.05:
            # Through several levels: everything at the next 1-2 levels, part of one more.
            depth = min(1 + int(rng.random() * 2), len(px) - 1)
            prices = px[-depth:] if side == _BID else px[:depth]
            want = sum(orders[r][3] for p in prices for r in levels[p]) + self._shares() // 2
        else:
            want = self._shares()
        loc, trk = b.locate, b.tracking
        while want > 0 and self._flow_left > 0 and len(px) > 1:
            price = px[-1] if side == _BID else px[0]
            ref = levels[price][0]
            o = orders[ref]
            fill = want if want < o[3] else o[3]
            r = rng.random()
            if r < 0.03:
                # Price-to-comply order: displayed one tick off, executes at its limit.
                other = b.prices[1 - side]
                better = price + b.tick if side == _BID else price - b.tick
                if other and (better >= other[0] if side == _BID else better <= other[-1]):
                    better = price
                out.append(_P["C"](b"C", loc, trk, ts >> 32, ts & _LO, ref, fill,
                                   self._match_no(), b"N" if r < 0.003 else b"Y", better))
            else:
                out.append(_P["E"](b"E", loc, trk, ts >> 32, ts & _LO, ref, fill,
                                   self._match_no()))
            self._flow_left -= 1
            want -= fill
            if fill == o[3]:
                self._remove(ref)
            else:
                o[3] -= fill
            ts = self._stamp(ts + step_ns)

    def _add_one(self, b: _Book, ts: int, mpid: bytes | None = None) -> None:
        """A new resting order (``F`` with an attribution when ``mpid`` is given)."""
        side = 0 if self._rng.random() < 0.5 else 1
        price = self._limit_price(b, side)
        shares = self._shares()
        ref = self._next_ref
        self._next_ref += 1
        hi, lo = ts >> 32, ts & _LO
        if mpid is None:
            self._out.append(_P["A"](b"A", b.locate, b.tracking, hi, lo, ref, _SIDE[side],
                                     shares, b.stock, price))
        else:
            self._out.append(_P["F"](b"F", b.locate, b.tracking, hi, lo, ref, _SIDE[side],
                                     shares, b.stock, price, mpid))
        self._insert(b, ref, side, price, shares)
        self._flow_left -= 1

    def _sprinkle(self, b: _Book, ts: int) -> None:
        """Low-rate informational messages: NOII inside the cross windows, RPII, a broken
        trade now and then; anything else becomes an add."""
        rng = self._rng
        r = rng.random()
        in_window = any(lo <= ts < hi for lo, hi in _NOII_WINDOWS)
        if in_window and b.subscribed:
            self._noii(b, ts)
        elif r < 0.1:
            if not T_OPEN <= ts < T_CLOSE:
                self._add_one(b, ts)
                return
            self._out.append(_P["N"](b"N", b.locate, b.tracking, ts >> 32, ts & _LO, b.stock,
                                     rng.choice((b"B", b"S", b"A", b"N"))))
        elif r < 0.102 and self._matches:       # rare: a few per million messages
            self._out.append(_P["B"](b"B", 0, 0, ts >> 32, ts & _LO,
                                     rng.choice(self._matches)))
        else:
            self._add_one(b, ts)
            return
        self._flow_left -= 1

    def _fault(self, b: _Book, ts: int) -> None:
        rng, out = self._rng, self._out
        kind = FAULT_KINDS[int(rng.random() * len(FAULT_KINDS))]
        loc, trk = b.locate, b.tracking
        if kind == "unknown_ref":
            dead = [r for r in self._retired if r not in self.orders]
            if not dead:
                self._add_one(b, ts)
                return
            ref = rng.choice(dead)
            code = rng.choice("EXD")
            if code == "E":
                out.append(_P["E"](b"E", loc, trk, ts >> 32, ts & _LO, ref, 100,
                                   self._match_no()))
            elif code == "X":
                out.append(_P["X"](b"X", loc, trk, ts >> 32, ts & _LO, ref, 100))
            else:
                out.append(_P["D"](b"D", loc, trk, ts >> 32, ts & _LO, ref))
        elif kind == "oversized_execute":
            if not b.live:
                self._add_one(b, ts)
                return
            ref = rng.choice(b.live)
            o = self.orders[ref]
            out.append(_P["E"](b"E", loc, trk, ts >> 32, ts & _LO, ref,
                               o[3] + rng.randrange(1, 500), self._match_no()))
            self._remove(ref)
        elif kind == "zero_shares_add":
            side = rng.randrange(2)
            ref = self._next_ref
            self._next_ref += 1
            out.append(_P["A"](b"A", loc, trk, ts >> 32, ts & _LO, ref, _SIDE[side], 0,
                               b.stock, self._limit_price(b, side)))
        else:   # add_on_live_ref
            if not b.live:
                self._add_one(b, ts)
                return
            ref = rng.choice(b.live)
            self._remove(ref)
            side = rng.randrange(2)
            price, shares = self._limit_price(b, side), self._shares()
            out.append(_P["A"](b"A", loc, trk, ts >> 32, ts & _LO, ref, _SIDE[side], shares,
                               b.stock, price))
            self._insert(b, ref, side, price, shares)
        self.fault_counts[kind] += 1
        self._flow_left -= 1


def generate_day(n_messages: int, *, symbols: Iterable[str] = DEFAULT_SYMBOLS, seed: int = 1,
                 fillers: int = 4, filler_share: float = 0.2, faults: bool = False,
                 fault_rate: float = 0.002) -> list[bytes]:
    """The messages of a synthetic day (exactly ``n_messages``); see :class:`DayGenerator`."""
    return list(DayGenerator(n_messages, symbols=symbols, seed=seed, fillers=fillers,
                             filler_share=filler_share, faults=faults, fault_rate=fault_rate))


# -- the checker -----------------------------------------------------------------------------
class DayInconsistency(ValueError):
    """A day violates an invariant; ``index`` is the 0-based message index (seq - 1)."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"seq {index + 1}: {reason}")
        self.index = index
        self.reason = reason


@dataclass
class CheckReport:
    """What :func:`check_day` saw. ``faults`` counts the same kinds as :data:`FAULT_KINDS`."""

    messages: int = 0
    type_counts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    max_live_orders: int = 0
    max_levels: int = 0                 #: most price levels seen on one side of one book
    max_orders_at_level: int = 0
    levels_emptied_by_execution: int = 0
    multi_level_sweeps: int = 0         #: executions that continued onto the next level
    live_orders_at_end: int = 0


_BOOK_TYPES = frozenset("AFECXDU")
_STOCK_TYPES = frozenset("RHYLKJhINOAFPQ")


def check_day(messages: Iterable[bytes], *, allow_faults: bool = False) -> CheckReport:
    """Replay a day through an independent book and verify the invariants listed in the
    module docstring; raise :class:`DayInconsistency` at the first violation. Which types
    appeared (and how deep the books got) is in the returned report.

    Written separately from the generator on purpose (decoding with :func:`proto.itch.decode`,
    its own data structures), so that a generator bug cannot hide in shared code. With
    ``allow_faults`` the book-builder fault rules (see the module docstring) are applied and
    counted in :attr:`CheckReport.faults` instead of raising.
    """
    rep = CheckReport()
    stocks: dict[int, str] = {}
    # locate -> side ('B'/'S') -> price -> list of refs in time priority
    books: dict[int, dict[str, dict[int, list[int]]]] = {}
    orders: dict[int, list] = {}        # ref -> [locate, side, price, shares]
    max_ref = 0
    last_match = 0
    matches: set[int] = set()
    last_ts = -1
    events: list[str] = []
    last_exec: tuple[int, str, int, bool] | None = None   # locate, side, price, emptied level

    def fail(i: int, why: str) -> None:
        raise DayInconsistency(i, why)

    def best(loc: int, side: str) -> int | None:
        lv = books[loc][side]
        if not lv:
            return None
        return max(lv) if side == "B" else min(lv)

    def add(i: int, ref: int, loc: int, side: str, price: int, shares: int) -> None:
        other = best(loc, "S" if side == "B" else "B")
        if other is not None and (price >= other if side == "B" else price <= other):
            fail(i, f"order {ref} {side} @{price} crosses or locks the book (other side "
                    f"best {other})")
        lv = books[loc][side]
        lv.setdefault(price, []).append(ref)
        orders[ref] = [loc, side, price, shares]
        rep.max_levels = max(rep.max_levels, len(lv))
        rep.max_orders_at_level = max(rep.max_orders_at_level, len(lv[price]))

    def remove(ref: int) -> None:
        loc, side, price, _ = orders.pop(ref)
        q = books[loc][side][price]
        q.remove(ref)
        if not q:
            del books[loc][side][price]

    def new_match(i: int, m: int) -> None:
        nonlocal last_match
        if m <= last_match and not allow_faults:
            fail(i, f"match number {m} not above the previous {last_match}")
        last_match = max(last_match, m)
        matches.add(m)

    i = -1
    for i, raw in enumerate(messages):
        try:
            msg = decode(raw)
        except (KeyError, ValueError, IndexError) as e:
            fail(i, f"undecodable: {e}")
        t = msg["message_type"]
        rep.type_counts[t] += 1
        if msg["timestamp"] < last_ts:
            fail(i, f"timestamp {msg['timestamp']} before the previous {last_ts}")
        last_ts = msg["timestamp"]
        loc = msg["stock_locate"]
        if i == 0 and (t != "S" or msg["event_code"] != "O"):
            fail(i, "the day must start with system event O")
        if t == "S":
            events.append(msg["event_code"])
            if "".join(events) != "OSQMEC"[:len(events)]:
                fail(i, f"system events out of order: {''.join(events)}")
            continue
        if t == "R":
            if loc in stocks or msg["stock"] in stocks.values() or loc == 0:
                fail(i, f"duplicate or zero locate {loc} / stock {msg['stock']}")
            stocks[loc] = msg["stock"]
            books[loc] = {"B": {}, "S": {}}
            continue
        if t in _STOCK_TYPES or t in _BOOK_TYPES:
            if loc not in stocks:
                fail(i, f"locate {loc} not in the stock directory")
            if "stock" in msg and msg["stock"] != stocks[loc]:
                fail(i, f"stock {msg['stock']!r} does not match locate {loc} "
                        f"({stocks[loc]!r})")
        if t in ("A", "F"):
            ref, side, shares, price = (msg["order_ref"], msg["side"], msg["shares"],
                                        msg["price"])
            if side not in ("B", "S"):
                fail(i, f"bad side {side!r}")
            if shares == 0 or price == 0:
                if not allow_faults:
                    fail(i, f"add {ref} with zero shares or price")
                rep.faults["zero_shares_add"] += 1
                max_ref = max(max_ref, ref)
                continue
            if ref in orders:
                if not allow_faults:
                    fail(i, f"add on live reference {ref}")
                rep.faults["add_on_live_ref"] += 1
                remove(ref)
            elif ref <= max_ref and not allow_faults:
                fail(i, f"order reference {ref} not above the previous {max_ref}")
            max_ref = max(max_ref, ref)
            add(i, ref, loc, side, price, shares)
            rep.max_live_orders = max(rep.max_live_orders, len(orders))
        elif t in ("E", "C", "X", "D", "U"):
            ref = msg["original_ref"] if t == "U" else msg["order_ref"]
            if t in ("E", "C"):
                new_match(i, msg["match_number"])
            o = orders.get(ref)
            if o is None:
                if not allow_faults:
                    fail(i, f"{t} on order {ref} that is not live")
                rep.faults["unknown_ref"] += 1
                continue
            oloc, side, price, shares = o
            if oloc != loc and not allow_faults:
                fail(i, f"{t} on order {ref} with locate {loc}, the order has {oloc}")
            if t == "D":
                remove(ref)
            elif t == "U":
                new = msg["new_ref"]
                if new in orders or (new <= max_ref and not allow_faults):
                    fail(i, f"replace to reference {new} that is live or not above {max_ref}")
                max_ref = max(max_ref, new)
                remove(ref)
                add(i, new, oloc, side, msg["price"], msg["shares"])
            else:
                n = msg["cancelled_shares"] if t == "X" else msg["executed_shares"]
                if n > shares:
                    if not allow_faults:
                        fail(i, f"{t} of {n} shares on order {ref} with {shares} remaining")
                    if t != "X":
                        rep.faults["oversized_execute"] += 1
                    n = shares
                if t in ("E", "C"):
                    level = books[oloc][side][price]
                    if not allow_faults and (price != best(oloc, side) or level[0] != ref):
                        fail(i, f"execution of {ref} @{price} is not the oldest order at "
                                f"the best {side} level {best(oloc, side)}")
                    emptied = n == shares and len(level) == 1
                    if (last_exec is not None and last_exec[:2] == (oloc, side)
                            and last_exec[3] and last_exec[2] != price):
                        rep.multi_level_sweeps += 1
                    last_exec = (oloc, side, price, emptied)
                    rep.levels_emptied_by_execution += emptied
                if n == shares:
                    remove(ref)
                else:
                    o[3] -= n
            continue
        elif t in ("P", "Q"):
            new_match(i, msg["match_number"])
        elif t == "B":
            if msg["match_number"] not in matches:
                fail(i, f"broken trade of unknown match {msg['match_number']}")
        last_exec = None if t not in ("E", "C") else last_exec
    rep.messages = i + 1
    if i < 0 or "".join(events) != "OSQMEC" or t != "S":
        fail(max(i, 0), f"the day must end with system event C, all events in order "
                        f"(saw {''.join(events)!r})")
    rep.live_orders_at_end = len(orders)
    return rep


# -- command line ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from .dayfile import write_dayfile

    ap = argparse.ArgumentParser(
        prog="python -m sim.feed.synth",
        description="Write a synthetic NASDAQ ITCH 5.0 day file (gzip if OUT ends in .gz).")
    ap.add_argument("out", metavar="OUT")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS),
                    help="comma-separated subscribed symbols (locates 1..N)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fillers", type=int, default=4, help="unsubscribed stocks with flow")
    ap.add_argument("--faults", action="store_true", help="inject faults (see module doc)")
    ap.add_argument("--check", action="store_true", help="replay through check_day too")
    args = ap.parse_args(argv)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    t0 = time.perf_counter()
    try:
        gen = DayGenerator(args.messages, symbols=symbols, seed=args.seed,
                           fillers=args.fillers, faults=args.faults)
    except ValueError as e:
        ap.error(str(e))
    n = write_dayfile(args.out, gen)
    dt = time.perf_counter() - t0
    print(f"{args.out}: {n} messages in {dt:.2f} s ({n / dt / 1e6:.2f} M msg/s)")
    if gen.faults:
        print("faults injected:", dict(gen.fault_counts))
    if args.check:
        from .dayfile import iter_messages
        rep = check_day(iter_messages(args.out), allow_faults=args.faults)
        print("check ok:", dict(sorted(rep.type_counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
