"""Book design parameters and alert reasons: one definition for gateware, model and host."""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: Order references at or above this are not held (docs/book.md, "Limits").
REF_BITS = 40


class AlertReason(enum.IntEnum):
    """Why a slot went stale: the ``aux`` of a ``BOOK_ALERT`` event and a bit of ``stale``."""

    CAPACITY = 1
    WINDOW = 2
    LEVEL_OVERFLOW = 3
    REF_RANGE = 4
    GAP = 5
    INVALIDATED = 6
    FIFO_OVERFLOW = 7

    @property
    def bit(self) -> int:
        return 1 << (self.value - 1)


#: ``slot`` of alerts that concern every subscribed slot.
ALL_SLOTS = 0xFF


@dataclass(frozen=True)
class BookParams:
    """Sizes of the book (docs/book.md, "Design parameters"); checked on construction."""

    slots: int = 64
    ways: int = 4
    orders: int = 65_536
    window: int = 1024
    tick: int = 100
    fifo_depth: int = 512

    def __post_init__(self):
        def pow2(x: int) -> bool:
            return x > 0 and x & (x - 1) == 0
        if not 1 <= self.slots <= 254:
            raise ValueError("slots must be 1..254 (0xFF names every slot in alerts)")
        if not pow2(self.ways) or self.ways > 16:
            raise ValueError("ways must be a power of two up to 16")
        if self.orders % self.ways or not pow2(self.orders // self.ways):
            raise ValueError("orders must be ways x a power of two")
        if not pow2(self.window) or not 32 <= self.window <= 1 << 16:
            raise ValueError("window must be a power of two in 32..65536")
        if not 1 <= self.tick < 1 << 16:
            raise ValueError("tick must be 1..65535 ITCH price units")
        if self.fifo_depth < 4:
            raise ValueError("fifo_depth must be at least 4")

    @property
    def sets(self) -> int:
        return self.orders // self.ways

    @property
    def set_bits(self) -> int:
        return (self.sets - 1).bit_length()

    @property
    def words(self) -> int:
        """32-bit occupancy words per side of a slot."""
        return self.window // 32

    def set_of(self, ref: int) -> int:
        """The order table set of ``ref`` (< 2**REF_BITS): its low bits folded with the rest.

        Invertible given the tag ``ref >> set_bits``, so two live references never alias."""
        b = self.set_bits
        mask = (1 << b) - 1
        h, rest = ref & mask, ref >> b
        while rest:
            h ^= rest & mask
            rest >>= b
        return h

    def auto_base(self, price: int) -> int:
        """Window base a slot takes from its first held add at ``price``."""
        half = (self.window // 2) * self.tick
        return price - half if price >= half else price % self.tick

    def level_index(self, base: int, price: int) -> int | None:
        """Level of ``price`` in a window at ``base``, or None when outside it."""
        d = price - base
        if d < 0 or d % self.tick:
            return None
        i = d // self.tick
        return i if i < self.window else None


#: The default sizes (a module-level instance, for default arguments).
DEFAULT_PARAMS = BookParams()
