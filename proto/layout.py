"""A byte-layout description shared by Python codecs and gateware field extractors.

A :class:`MessageLayout` is an ordered list of :class:`Field` s at fixed byte offsets. From
it come:

* a :mod:`struct` format for encoding and decoding in Python (``pack`` / ``unpack``),
* byte ranges that the gateware uses to pull big-endian fields out of a wide byte vector
  (see ``hw.util.bytes``), and
* the tables in the documentation.

Keeping the description declarative (rather than writing ``struct`` formats and HDL slices
by hand) is what lets one definition drive all three.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Kind(Enum):
    """How the bytes of a field are interpreted."""

    UINT = "uint"    #: unsigned big-endian integer
    ALPHA = "alpha"  #: ASCII, left-justified, space padded
    CHAR = "char"    #: a single ASCII character (kept as a one-character ``str``)


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    kind: Kind = Kind.UINT

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def struct_code(self) -> str:
        if self.kind is Kind.UINT:
            try:
                return {1: "B", 2: "H", 4: "I", 8: "Q"}[self.size]
            except KeyError:
                return f"{self.size}s"  # 6-byte timestamps and other odd widths
        if self.kind is Kind.CHAR:
            return "c"
        return f"{self.size}s"


class MessageLayout:
    """An ordered, gap-free sequence of fields making up a fixed-length message."""

    def __init__(self, name: str, fields: Iterable[tuple], *, type_code: str | None = None):
        self.name = name
        self.type_code = type_code
        offset = 0
        out: list[Field] = []
        for spec in fields:
            fname, size, *rest = spec
            kind = rest[0] if rest else Kind.UINT
            out.append(Field(fname, offset, size, kind))
            offset += size
        self.fields: tuple[Field, ...] = tuple(out)
        self.length = offset
        self._by_name = {f.name: f for f in out}
        if len(self._by_name) != len(out):
            raise ValueError(f"{name}: duplicate field names")
        self._struct = struct.Struct(">" + "".join(f.struct_code for f in out))

    def __getitem__(self, name: str) -> Field:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"MessageLayout({self.name!r}, length={self.length})"

    # -- Python codec -------------------------------------------------------------------
    def pack(self, **values: Any) -> bytes:
        """Encode a message. Missing fields encode as zero / spaces."""
        unknown = set(values) - set(self._by_name)
        if unknown:
            raise KeyError(f"{self.name}: unknown fields {sorted(unknown)}")
        args = []
        for f in self.fields:
            v = values.get(f.name)
            if f.kind is Kind.UINT:
                v = 0 if v is None else int(v)
                if not 0 <= v < (1 << (8 * f.size)):
                    raise ValueError(f"{self.name}.{f.name}={v} does not fit {f.size} bytes")
                args.append(v if f.size in (1, 2, 4, 8) else v.to_bytes(f.size, "big"))
            elif f.kind is Kind.CHAR:
                v = " " if v is None else v
                args.append(v.encode("ascii") if isinstance(v, str) else bytes(v))
            else:
                v = "" if v is None else v
                b = v.encode("ascii") if isinstance(v, str) else bytes(v)
                if len(b) > f.size:
                    raise ValueError(f"{self.name}.{f.name}={v!r} longer than {f.size}")
                args.append(b.ljust(f.size, b" "))
        return self._struct.pack(*args)

    def unpack(self, data: bytes) -> dict[str, Any]:
        """Decode a message of exactly :attr:`length` bytes into a dict."""
        if len(data) != self.length:
            raise ValueError(f"{self.name}: expected {self.length} bytes, got {len(data)}")
        out: dict[str, Any] = {}
        for f, v in zip(self.fields, self._struct.unpack(data), strict=True):
            if f.kind is Kind.UINT:
                out[f.name] = v if isinstance(v, int) else int.from_bytes(v, "big")
            elif f.kind is Kind.CHAR:
                out[f.name] = v.decode("ascii", "replace")
            else:
                out[f.name] = v.decode("ascii", "replace").rstrip(" ")
        return out
