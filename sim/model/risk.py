"""Reference model of the pre-trade risk gate (docs/risk.md): the executable spec.

Two layers, kept apart on purpose:

* :func:`check` is the rule book: one order, the limits it is checked against, the market
  data and the trading state it sees, and out comes its :class:`~hw.risk.params.Reason`. It
  is pure and short enough to read against RTS 6 Art. 15 and SEC 15c3-5.
* :class:`RiskModel` is the timing of the gateware, cycle by cycle: which limits, market
  data and state an order presented in cycle *t* sees (docs/risk.md, "Timing"), and how
  accepted orders, execution reports and host writes change the state. It returns each
  verdict in the cycle the gate's output shows it, so tests compare the two cycle for cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hw.risk.params import (
    DEFAULT_RISK,
    Collar,
    OrderKind,
    Reason,
    ReportKind,
    RiskParams,
    Side,
)

#: Cycles from an order's presentation to its verdict on the gate's output.
LATENCY = 4


def default_limits() -> dict:
    """A symbol's limits after power-up: disabled, everything zero."""
    return dict(enable=0, max_shares=0, max_notional=0, collar_mode=0, collar=0, ref_px=0,
                max_long=0, max_short=0)


def default_global() -> dict:
    return dict(max_open=0, rate_period=0, rate_burst=0, max_age=0)


@dataclass
class Market:
    """What the gate knows of a symbol's market: the last BBO update, when it came."""

    valid: bool = False
    bid_px: int = 0
    ask_px: int = 0
    stale: bool = False
    time: int = 0


@dataclass
class State:
    """Trading state that orders and reports change (per symbol, and global)."""

    slots: int
    position: list[int] = field(default_factory=list)
    open_buy: list[int] = field(default_factory=list)
    open_sell: list[int] = field(default_factory=list)
    open_orders: int = 0
    bucket: int = 0
    last_token: list[int] = field(default_factory=lambda: [0, 0])
    gap: bool = False

    def __post_init__(self):
        self.position = self.position or [0] * self.slots
        self.open_buy = self.open_buy or [0] * self.slots
        self.open_sell = self.open_sell or [0] * self.slots


def reference(lim: dict, md: Market) -> int:
    """The collar's reference price: the BBO mid when both sides are there and the book is
    not stale, else the host's reference (0: none)."""
    if md.valid and md.bid_px and md.ask_px and not md.stale:
        return (md.bid_px + md.ask_px) >> 1
    return lim["ref_px"]


def check(order: dict, lim: dict, glob: dict, md: Market, age: int, st: State, *,
          kill: bool, kill_symbol: bool, tick: int, egress_room: bool) -> Reason:
    """The verdict on ``order``: the first failing check, in :class:`Reason` order.
    ``egress_room``: the egress queue can take one more order (see :class:`RiskModel`)."""
    if order["kind"] == OrderKind.CANCEL:
        # Cancels only reduce risk (the exchange validates them), but they are sent through
        # the same egress queue as new orders.
        return Reason.ACCEPTED if egress_room else Reason.EGRESS_FULL
    s, shares, price = order["slot"], order["shares"], order["price"]
    if kill:
        return Reason.KILL
    if kill_symbol:
        return Reason.KILL_SYMBOL
    if not lim["enable"]:
        return Reason.DISABLED
    if order["token"] <= st.last_token[order["source"]]:
        return Reason.BAD_TOKEN
    if shares == 0 or price == 0:
        return Reason.BAD_ORDER
    if shares > lim["max_shares"]:
        return Reason.MAX_SIZE
    if shares * price > lim["max_notional"]:
        return Reason.MAX_NOTIONAL
    max_age = glob["max_age"]
    if st.gap or (md.valid and md.stale) or (max_age and (not md.valid or age > max_age)):
        return Reason.STALE_DATA
    mode = lim["collar_mode"]
    if mode != Collar.OFF:
        ref = reference(lim, md)
        if ref == 0:
            return Reason.NO_REFERENCE
        diff = abs(price - ref)
        if mode == Collar.TICKS:
            ok = diff <= lim["collar"] * tick
        elif mode == Collar.BPS:
            ok = diff * 10_000 <= lim["collar"] * ref
        else:
            ok = False                  # mode 3 is reserved: nothing passes
        if not ok:
            return Reason.PRICE_COLLAR
    if order["side"] == Side.BUY:
        if st.position[s] + st.open_buy[s] + shares > lim["max_long"]:
            return Reason.POSITION_LONG
    elif st.open_sell[s] + shares - st.position[s] > lim["max_short"]:
        return Reason.POSITION_SHORT
    if st.open_orders >= glob["max_open"]:
        return Reason.MAX_OPEN
    if glob["rate_period"] and st.bucket == 0:
        return Reason.THROTTLE
    if not egress_room:
        return Reason.EGRESS_FULL
    return Reason.ACCEPTED


@dataclass
class Cycle:
    """What the gate's inputs carry in one cycle (None / False: nothing)."""

    order: dict | None = None
    report: dict | None = None
    md: dict | None = None              # slot, bid_px, ask_px, stale
    kill: bool = False
    kill_slots: int = 0                 # bit s: symbol s killed
    lim_store: tuple[int, dict] | None = None     # (slot, limits) into the shadow table
    glob_store: dict | None = None                # global limits into the shadow set
    commit: bool = False
    pos_write: tuple[int, int] | None = None      # (slot, start-of-day position)
    gap: bool = False
    md_clear: bool = False
    #: How many more orders the egress queue (the OUCH encoder's FIFO) can take this cycle;
    #: None: as many as the gate's port can say (2^count_bits - 1, always room).
    egress_space: int | None = None


def egress_space(params: RiskParams, c: Cycle) -> int:
    """The value of the gate's ``egress_space`` port in cycle ``c`` (its None: the most the
    port can say, ``count_bits`` ones); every driver of the gate uses this."""
    top = (1 << params.count_bits) - 1
    if c.egress_space is None:
        return top
    if not 0 <= c.egress_space <= top:
        raise ValueError(f"egress_space {c.egress_space} does not fit {params.count_bits} bits")
    return c.egress_space


class RiskModel:
    """The gate, cycle by cycle. :meth:`step` takes one :class:`Cycle` and returns the
    verdict the gate's output shows in that cycle, ``(order, reason)`` or None.

    Egress: the verdict decided in cycle *t* enters the egress queue at the end of *t* + 1,
    after the one the output shows in *t* (if that accepts an order, new or cancel). So an
    order has room if ``egress_space`` in *t* exceeds the number of such orders ahead of it,
    0 or 1 (the arithmetic is in :mod:`hw.risk.gate`'s docstring).
    """

    def __init__(self, params: RiskParams = DEFAULT_RISK):
        self.p = params
        n = params.slots
        # Where open shares, positions and counts saturate (the gate's widths).
        self._open_max = (1 << params.open_bits) - 1
        self._pos_min = -(1 << (params.position_bits - 1))
        self._pos_max = (1 << (params.position_bits - 1)) - 1
        self._count_max = (1 << params.count_bits) - 1
        self.cycle = 0
        self.bank = 0
        self.tables = [[default_limits() for _ in range(n)] for _ in range(2)]
        self.glob_active = default_global()
        self.glob_shadow = default_global()
        self.copy_left = 0              # rows the post-commit copy still has to write
        self.copy_row = 0
        self.store_error = False
        self.md = [Market() for _ in range(n)]
        self.st = State(n)
        self.rate_ctr = 0
        self._s1: dict | None = None    # the order in stage 1 with what it captured
        self._s2: dict | None = None
        self._s3: dict | None = None
        self._out: tuple[dict, Reason] | None = None

    @property
    def busy(self) -> bool:
        return self.copy_left > 0

    @property
    def output(self) -> tuple[dict, Reason] | None:
        """The verdict the gate's output shows in the next cycle :meth:`step` is given (what
        that step returns): a stimulus that models the egress queue feeds it from here."""
        return self._out

    def step(self, c: Cycle) -> tuple[dict, Reason] | None:
        p, st = self.p, self.st
        t = self.cycle
        out = self._out

        # -- market data: written this cycle, seen by an order presented this cycle --------
        if c.md is not None:
            self.md[c.md["slot"]] = Market(True, c.md["bid_px"], c.md["ask_px"],
                                          bool(c.md["stale"]), t)

        # -- stage 3 (the order presented three cycles ago): the verdict -----------------
        verdict = None
        if self._s3 is not None:
            s3 = self._s3
            o = s3["order"]
            ahead = int(out is not None and out[1] == Reason.ACCEPTED)
            space = egress_space(p, c)
            reason = check(o, s3["lim"], s3["glob"], s3["md"], s3["age"], st,
                           kill=c.kill, kill_symbol=bool(c.kill_slots >> o["slot"] & 1),
                           tick=p.tick, egress_room=space > ahead)
            verdict = (o, reason)
        # -- stage 2: nothing here (the gate's collar and notional arithmetic); it moves on
        # -- stage 1: capture the age (the rest was captured at presentation) --------------
        s1 = self._s1
        if s1 is not None:
            s1["age"] = t - s1["md"].time if s1["md"].valid else 0
        # -- presentation: limits of the active bank, globals, market data ----------------
        s0 = None
        if c.order is not None:
            o = dict(c.order)
            s0 = {"order": o, "lim": dict(self.tables[self.bank][o["slot"]]),
                  "glob": dict(self.glob_active), "md": Market(**vars(self.md[o["slot"]]))}

        # -- state updates at the end of this cycle ------------------------------------------
        accepted = verdict is not None and verdict[1] == Reason.ACCEPTED \
            and verdict[0]["kind"] == OrderKind.NEW
        delta: dict[tuple[int, int], int] = {}      # (slot, side) -> open shares change
        if accepted:
            o = verdict[0]
            delta[(o["slot"], o["side"])] = o["shares"]
            st.last_token[o["source"]] = o["token"]
        rep = c.report
        done = 0
        if rep is not None:
            key = (rep["slot"], rep["side"])
            delta[key] = delta.get(key, 0) - rep["shares"]
            done = rep["done"]
        for (s, side), d in delta.items():
            book = st.open_buy if side == Side.BUY else st.open_sell
            book[s] = min(self._open_max, max(0, book[s] + d))
        if c.pos_write is not None:
            st.position[c.pos_write[0]] = c.pos_write[1]
        if rep is not None and rep["kind"] == ReportKind.FILL and not (
                c.pos_write is not None and c.pos_write[0] == rep["slot"]):
            fill = rep["shares"] if rep["side"] == Side.BUY else -rep["shares"]
            s = rep["slot"]
            st.position[s] = min(self._pos_max, max(self._pos_min, st.position[s] + fill))
        st.open_orders = min(self._count_max, max(0, st.open_orders + int(accepted) - done))
        # Throttle bucket: one token every rate_period cycles, up to rate_burst. Full while
        # the throttle is off, and from the first cycle a commit turns it on; a commit that
        # keeps it on only clamps it to the new burst (never adds tokens).
        g = self.glob_active
        committing = c.commit and self.copy_left == 0
        g_next = g if not committing else \
            self.glob_shadow if c.glob_store is None else c.glob_store
        if not g["rate_period"] or not g_next["rate_period"]:
            self.rate_ctr = 0
            st.bucket = g_next["rate_burst"]
        else:
            refill = 0
            if self.rate_ctr + 1 >= g["rate_period"]:
                self.rate_ctr, refill = 0, 1
            else:
                self.rate_ctr += 1
            st.bucket = max(0, min(g_next["rate_burst"], st.bucket + refill - int(accepted)))
        if c.gap:
            st.gap = True
        elif c.md_clear:
            st.gap = False

        # -- limit tables: host stores and the post-commit copy write the shadow bank ------
        shadow = self.tables[1 - self.bank]
        busy = self.copy_left > 0           # as the cycle began
        if busy:
            # The copy reads a row in one cycle and writes it in the next: slots + 1 cycles.
            r = self.copy_row
            if r >= 0:
                shadow[r] = dict(self.tables[self.bank][r])
            self.copy_row += 1
            self.copy_left -= 1
            if c.lim_store is not None:
                self.store_error = True
        elif c.lim_store is not None:
            shadow[c.lim_store[0]] = dict(c.lim_store[1])
        if c.glob_store is not None:
            self.glob_shadow = dict(c.glob_store)
        if c.commit and not busy:
            self.bank = 1 - self.bank
            self.glob_active = dict(self.glob_shadow)
            self.copy_left, self.copy_row = p.slots + 1, -1
        elif c.commit:
            self.store_error = True     # a commit while the copy runs is refused

        self._out = verdict
        self._s3 = self._s2
        self._s2 = s1
        self._s1 = s0
        self.cycle += 1
        return out
