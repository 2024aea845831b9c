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

from host.regs import Registers
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
