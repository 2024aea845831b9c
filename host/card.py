"""The host's one API to a wirespeed card, over interchangeable backends.

A backend moves register reads/writes and event records (the simulated card today, a board
later). :class:`Card` is what applications use: it checks the identity block first and refuses a
card whose register map it does not know, then offers named registers, feed configuration,
events as NumPy records and counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from host.config import GlobalLimits, LimitsConfig, SymbolLimits, TriggerConfig
from host.regs import Registers
from hw.book.params import DEFAULT_PARAMS, BookParams
from hw.events import EventKind, numpy_dtype
from hw.regmap import MAGIC, N_FILTERS, REGMAP, REGMAP_VERSION
from sim.feed.frames import FeedAddress


class Backend(Protocol):
    def read32(self, addr: int) -> int: ...
    def write32(self, addr: int, value: int) -> None: ...
    def records(self) -> np.ndarray: ...


class CardError(RuntimeError):
    """The card cannot be driven (wrong magic, unknown register map, bad configuration)."""


@dataclass(frozen=True)
class Identity:
    magic: int
    regmap_version: tuple[int, int]
    regmap_hash: int
    git_rev: int
    build_time: int
    dirty: bool
    clock_khz: int
    filters: int
    fifo_depth: int
    max_message: int
    record_bytes: int
    #: None when the card reports sizes this host cannot represent (refused by the check).
    book: BookParams | None = DEFAULT_PARAMS

    def as_dict(self) -> dict:
        return {
            "magic": f"{self.magic:#010x}",
            "regmap_version": f"{self.regmap_version[0]}.{self.regmap_version[1]}",
            "regmap_hash": f"{self.regmap_hash:#010x}",
            "git_rev": f"{self.git_rev:08x}" + ("-dirty" if self.dirty else ""),
            "build_time": self.build_time,
            "clock_mhz": self.clock_khz / 1000,
            "filters": self.filters,
            "fifo_depth": self.fifo_depth,
            "max_message": self.max_message,
            "record_bytes": self.record_bytes,
            "book": None if self.book is None else {
                "slots": self.book.slots, "ways": self.book.ways, "orders": self.book.orders,
                "window": self.book.window, "tick": self.book.tick},
        }


#: Register-map hashes this host library can drive (the map it was built with).
KNOWN_HASHES = frozenset({REGMAP.hash})


class Card:
    """A card behind ``backend``. Construction reads and checks the identity block."""

    def __init__(self, backend: Backend, *, check: bool = True):
        self.backend = backend
        self.regs = Registers(backend)
        self.identity = self.read_identity()
        if check:
            self._check(self.identity)
        self._dtype = numpy_dtype()

    # -- identity -------------------------------------------------------------------------
    def read_identity(self) -> Identity:
        r = self.regs
        version = r.read("id_regmap_version")
        params = r.read("id_params")
        bp = r.read("id_book_params")
        ways, sets = (bp >> 8) & 0xFF, 1 << ((bp >> 16) & 0xFF)
        try:
            book: BookParams | None = BookParams(
                slots=bp & 0xFF, ways=ways, orders=ways * sets,
                window=1 << ((bp >> 24) & 0xFF), tick=r.read("id_book_tick"))
        except ValueError:
            book = None
        return Identity(
            magic=r.read("id_magic"),
            regmap_version=(version >> 16, version & 0xFFFF),
            regmap_hash=r.read("id_regmap_hash"),
            git_rev=r.read("id_git_rev"),
            build_time=r.read("id_build_time"),
            dirty=bool(r.read("id_flags") & 1),
            clock_khz=r.read("id_clock_khz"),
            filters=params & 0xFF, fifo_depth=(params >> 8) & 0xFF,
            max_message=(params >> 16) & 0xFF, record_bytes=(params >> 24) & 0xFF,
            book=book,
        )

    @staticmethod
    def _check(ident: Identity) -> None:
        if ident.magic != MAGIC:
            raise CardError(f"not a wirespeed card: magic {ident.magic:#010x}, "
                            f"expected {MAGIC:#010x}")
        if ident.regmap_hash not in KNOWN_HASHES:
            raise CardError(
                f"unknown register map {ident.regmap_hash:#010x} (version "
                f"{ident.regmap_version[0]}.{ident.regmap_version[1]}); this host library "
                f"drives {REGMAP.hash:#010x} (version {REGMAP_VERSION[0]}.{REGMAP_VERSION[1]}). "
                "Load a bitstream built from the same revision as the host software.")
        if ident.book is None:
            raise CardError("the card reports book parameters this host cannot use "
                            "(id_book_params, id_book_tick)")

    # -- configuration --------------------------------------------------------------------
    def set_feeds(self, feeds: Sequence[FeedAddress]) -> None:
        """Accept exactly these destinations (group:port); all other frames are FILTERED."""
        if len(feeds) > N_FILTERS:
            raise CardError(f"{len(feeds)} feeds given, the card has {N_FILTERS} filter entries")
        for i in range(N_FILTERS):
            if i < len(feeds):
                self.regs.write(f"filter{i}_ip", feeds[i].ip)
                self.regs.write(f"filter{i}_port", (1 << 31) | feeds[i].port)
            else:
                self.regs.write(f"filter{i}_port", 0)

    def feeds(self) -> list[FeedAddress]:
        from proto.net import int_to_ip
        out = []
        for i in range(N_FILTERS):
            port = self.regs.read(f"filter{i}_port")
            if port >> 31:
                out.append(FeedAddress(int_to_ip(self.regs.read(f"filter{i}_ip")), port & 0xFFFF))
        return out

    def set_events(self, kinds: Iterable[EventKind]) -> None:
        self.regs.write("event_mask", sum(1 << k.value for k in set(kinds)))

    def clear_counters(self) -> None:
        self.regs.pulse("ctrl", "clear_counters")

    def seq_reset(self) -> None:
        """Forget the locked session and expected sequence number (a new day, a new feed)."""
        self.regs.pulse("ctrl", "seq_reset")

    # -- subscriptions and books (docs/book.md) ---------------------------------------------
    def subscribe(self, slot: int, symbol: str, *, locate: int | None = None,
                  base: int = 0) -> None:
        """Put ``symbol`` in ``slot``: its locate comes from the day's directory, or is
        ``locate`` (a session joined mid-day). ``base``: window base price, 0 = automatic."""
        if not 0 <= slot < self.identity.book.slots:
            raise CardError(f"slot {slot} out of range: the card has "
                            f"{self.identity.book.slots} slots")
        name = symbol.encode("ascii") if isinstance(symbol, str) else bytes(symbol)
        if not 1 <= len(name) <= 8 or not name.strip():
            raise CardError(f"symbol {symbol!r}: 1 to 8 ASCII characters")
        raw = int.from_bytes(name.ljust(8, b" "), "big")
        r = self.regs
        r.write("sub_slot", slot)
        r.write("sub_name_hi", raw >> 32)
        r.write("sub_name_lo", raw & 0xFFFF_FFFF)
        r.write("sub_locate", 0 if locate is None else (1 << 16) | (locate & 0xFFFF))
        r.write("sub_base", base)
        self._book_cmd("subscribe")

    def subscribe_all(self, symbols: Sequence[str]) -> None:
        """Subscribe ``symbols`` to slots 0.. in order (other slots are left as they are)."""
        if len(symbols) > self.identity.book.slots:
            raise CardError(f"{len(symbols)} symbols, the card has "
                            f"{self.identity.book.slots} slots")
        if len(set(symbols)) != len(symbols):
            raise CardError("a symbol is listed twice")
        for i, sym in enumerate(symbols):
            self.subscribe(i, sym)

    def unsubscribe(self, slot: int) -> None:
        self.regs.write("sub_slot", slot)
        self._book_cmd("unsubscribe")

    def reset_books(self) -> None:
        """Empty the order table and every slot's book (subscriptions stay)."""
        self._book_cmd("reset")

    def _book_cmd(self, what: str, *, timeout: int = 1_000_000) -> None:
        self.regs.pulse("book_cmd", what)
        for _ in range(timeout):
            if not self.regs.field("book_status", "busy"):
                return
        raise CardError(f"book_cmd.{what} did not complete")

    def slot(self, slot: int) -> dict:
        """What the card holds for ``slot``: state, BBO and trade statistics."""
        r = self.regs
        r.write("sub_slot", slot)
        status = r.read("slot_status")
        return {
            "active": bool(status & 1), "locate_known": bool(status >> 1 & 1),
            "stale": (status >> 8) & 0xFF, "locate": r.read("slot_locate"),
            "base": r.read("slot_base"),
            "bbo": (r.read("slot_bid_px"), r.read("slot_bid_sz"), r.read("slot_ask_px"),
                    r.read("slot_ask_sz")),
            "last_px": r.read("slot_last_px"), "last_sz": r.read("slot_last_sz"),
            "volume": r.read("slot_volume"), "notional": r.read("slot_notional"),
        }

    # -- risk gate (docs/risk.md) ----------------------------------------------------------
    def _slot_arg(self, slot: int) -> int:
        if not 0 <= slot < self.identity.book.slots:
            raise CardError(f"slot {slot} out of range: the card has "
                            f"{self.identity.book.slots} slots")
        return slot

    def _risk_wait(self, *, timeout: int = 100_000) -> None:
        for _ in range(timeout):
            if not self.regs.field("risk_status", "busy"):
                return
        raise CardError("the risk gate stayed busy (post-commit copy)")

    def store_limits(self, slot: int, limits: SymbolLimits) -> None:
        """Write ``limits`` for ``slot`` into the shadow set (live after :meth:`commit`)."""
        r = self.regs
        self._risk_wait()
        r.write("lim_slot", self._slot_arg(slot))
        r.write("lim_ctrl", int(limits.enable) | (int(limits.collar_mode) << 1)
                | (limits.collar << 16))
        r.write("lim_max_shares", limits.max_shares)
        r.write("lim_max_notional_lo", limits.max_notional & 0xFFFF_FFFF)
        r.write("lim_max_notional_hi", limits.max_notional >> 32)
        r.write("lim_ref_px", limits.ref_px)
        r.write("lim_max_long", limits.max_long)
        r.write("lim_max_short", limits.max_short)
        r.pulse("risk_cmd", "store")

    def store_global(self, g: GlobalLimits) -> None:
        r = self.regs
        r.write("glob_max_open", g.max_open)
        r.write("glob_rate_period", g.rate_period)
        r.write("glob_rate_burst", g.rate_burst)
        r.write("glob_max_age", g.max_age)
        r.pulse("risk_cmd", "glob_store")

    def commit(self) -> None:
        """Make the shadow limits live, all at once; refuse if the card refused a store."""
        self._risk_wait()
        self.regs.pulse("risk_cmd", "commit")
        self._risk_wait()
        if self.regs.field("risk_status", "store_error"):
            self.regs.pulse("risk_cmd", "clear_error")
            raise CardError("the risk gate refused a store or commit (it was busy)")

    def apply_limits(self, config: LimitsConfig) -> None:
        """Store every slot's limits and the global set of ``config``, then commit. Slots
        ``config`` does not name are disabled: the limit tables are block RAM, which a core
        reset does not clear, so a slot left alone would keep whatever a previous run set."""
        for slot in range(self.identity.book.slots):
            self.store_limits(slot, config.symbols.get(slot, SymbolLimits(enable=False)))
        self.store_global(config.global_limits)
        self.commit()
        for slot, pos in config.positions.items():
            self.set_position(slot, pos)

    def kill(self, on: bool = True) -> None:
        self.regs.write("kill", int(on))

    def kill_symbol(self, slot: int, on: bool = True) -> None:
        self._slot_arg(slot)
        name = "kill_slots_lo" if slot < 32 else "kill_slots_hi"
        bit = 1 << (slot % 32)
        cur = self.regs.read(name)
        self.regs.write(name, (cur | bit) if on else (cur & ~bit))

    def set_position(self, slot: int, shares: int) -> None:
        """The start-of-day position of ``slot`` (signed shares)."""
        if not -(1 << 47) <= shares < 1 << 47:
            raise CardError(f"position {shares} does not fit 48 bits")
        r = self.regs
        r.write("lim_slot", self._slot_arg(slot))
        v = shares & ((1 << 64) - 1)
        r.write("pos_value_lo", v & 0xFFFF_FFFF)
        r.write("pos_value_hi", v >> 32)
        r.pulse("risk_cmd", "pos_write")

    def clear_gap(self) -> None:
        """The host has dealt with a feed gap; new orders may pass the STALE_DATA check."""
        self.regs.pulse("risk_cmd", "md_clear")

    def risk_state(self, slot: int) -> dict:
        r = self.regs
        r.write("lim_slot", self._slot_arg(slot))
        pos = r.read("view_position")
        return {"position": pos - (1 << 64) if pos >> 63 else pos,
                "open_buy": r.read("view_open_buy"), "open_sell": r.read("view_open_sell"),
                "open_orders": r.read("risk_open_orders"), "bucket": r.read("risk_bucket"),
                "gap_pending": bool(r.field("risk_status", "gap_pending"))}

    # -- triggers and order entry (docs/orderentry.md) -----------------------------------
    def arm_trigger(self, slot: int, trig: TriggerConfig) -> None:
        r = self.regs
        r.write("trig_slot", self._slot_arg(slot))
        r.write("trig_side", int(trig.side))
        r.write("trig_price", trig.price)
        r.write("trig_shares", trig.shares)
        r.write("trig_tif", trig.tif)
        r.pulse("trig_cmd", "arm")

    def disarm_trigger(self, slot: int) -> None:
        self.regs.write("trig_slot", self._slot_arg(slot))
        self.regs.pulse("trig_cmd", "disarm")

    def armed(self) -> int:
        return self.regs.read("trig_armed")

    def set_firm(self, firm: str) -> None:
        raw = firm.encode("ascii")
        if not 1 <= len(raw) <= 4:
            raise CardError(f"firm {firm!r}: 1 to 4 ASCII characters")
        self.regs.write("oe_firm", int.from_bytes(raw.ljust(4, b" "), "big"))

    # -- state ----------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        return self.regs.counters()

    def sequencer(self) -> dict:
        sess = b"".join(self.regs.read(f"seq_session_{i}").to_bytes(4, "big") for i in range(3))
        return {
            "locked": bool(self.regs.field("seq_status", "locked")),
            "ended": bool(self.regs.field("seq_status", "ended")),
            "expected": self.regs.read("seq_expected"),
            "session": sess[:10].decode("ascii", "replace"),
        }

    def time(self) -> int:
        """The card's cycle counter (event timestamps are in the same unit)."""
        return self.regs.read("time")

    # -- events ---------------------------------------------------------------------------
    def events(self) -> np.ndarray:
        """Event records received since the last call (``hw.events.numpy_dtype()``)."""
        return self.backend.records()

    def iter_events(self) -> Iterator[np.void]:
        yield from self.events()
