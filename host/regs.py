"""Typed access to the card's registers, generated from :data:`hw.regmap.REGMAP`.

The host never spells an address: it names registers, fields and counters, and this module
looks them up in the same map the gateware's CSR bank was generated from.
"""

from __future__ import annotations

import difflib
from typing import Protocol

from hw.regmap import COUNTER_BITS, REGMAP, Access, RegisterMap


class Bus(Protocol):
    def read32(self, addr: int) -> int: ...
    def write32(self, addr: int, value: int) -> None: ...


class RegisterError(KeyError):
    pass


class Registers:
    def __init__(self, bus: Bus, regmap: RegisterMap = REGMAP):
        self.bus = bus
        self.map = regmap

    def _reg(self, name: str):
        try:
            return self.map[name]
        except KeyError:
            names = list(self.map.registers) + list(self.map.counters)
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise RegisterError(f"no register named {name!r}{hint}") from None

    def read(self, name: str) -> int:
        """Read a register; a 64-bit pair (``time``) or a counter by its bare name works too."""
        if name in self.map.counters:
            return self.counter(name)
        if name + "_lo" in self.map.registers and name + "_hi" in self.map.registers:
            lo = self.bus.read32(self.map[name + "_lo"].offset)
            return lo | (self.bus.read32(self.map[name + "_hi"].offset) << 32)
        return self.bus.read32(self._reg(name).offset)

    def write(self, name: str, value: int) -> None:
        reg = self._reg(name)
        if reg.access is Access.RO:
            raise RegisterError(f"{name} is read-only")
        if not 0 <= value < (1 << 32):
            raise ValueError(f"{value} does not fit a 32-bit register")
        self.bus.write32(reg.offset, value)

    def field(self, name: str, fieldname: str) -> int:
        reg = self._reg(name)
        for f in reg.fields:
            if f.name == fieldname:
                return (self.read(name) >> f.lsb) & ((1 << f.width) - 1)
        raise RegisterError(f"{name} has no field {fieldname!r}")

    def pulse(self, name: str, fieldname: str) -> None:
        reg = self._reg(name)
        for f in reg.fields:
            if f.name == fieldname:
                self.bus.write32(reg.offset, 1 << f.lsb)
                return
        raise RegisterError(f"{name} has no field {fieldname!r}")

    def counter(self, name: str) -> int:
        """A 48-bit counter: ``_lo`` first (it latches the upper bits), then ``_hi``."""
        lo, hi = self.map.counters[name]
        low = self.bus.read32(lo.offset)
        high = self.bus.read32(hi.offset)
        return (low | (high << 32)) & ((1 << COUNTER_BITS) - 1)

    def counters(self) -> dict[str, int]:
        return {name: self.counter(name) for name in self.map.counters}

    def dump(self) -> list[tuple[str, int, int | None, str]]:
        """(name, address, value or None for write-only strobes, access) of every register."""
        out = []
        for r in self.map.all_registers():
            value = None if r.access is Access.PULSE else self.bus.read32(r.offset)
            out.append((r.name, r.offset, value, r.access.value))
        return out
