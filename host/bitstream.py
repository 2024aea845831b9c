"""Bitstreams and their manifests: what a file is, what built it, and whether this host can
drive it.

A wirespeed bitstream lives in its own directory under ``bitstreams/``: the ECP5 bitstream
(``wirespeed.bit``, packed by ecppack) and ``manifest.json``, written by ``tools/bitstream.py``
from the run that routed it. The manifest says where the design came from (source revision,
register map, book parameters), what the toolchain made of it (Fmax, resources, versions, the
commands) and whether it can be deployed at all.

:func:`check` does not take the manifest's word for anything it can verify: it hashes the
file, and it reads the bitstream itself — the IDCODE that the FPGA compares with its own
before it accepts a single frame, the USERCODE a JTAG cable reads back, and the identity line
``tools/bitstream.py`` writes into the bitstream's comment header. Problems come in two kinds:

* **integrity** — the file is not what the manifest describes (edited, truncated, packed for
  another device, manifest of another build). Never load such a file.
* **compatibility** — the file is intact but this host cannot drive it: its register map is
  not one this host library knows (:data:`host.card.KNOWN_HASHES`), which is exactly what the
  card's identity block would make :class:`host.card.Card` refuse after loading.

Warnings are facts a user must know before deploying: a scan-shell build has no board I/O,
the routed Fmax is below the clock the identity block announces, the source was dirty.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
BITFILE = "wirespeed.bit"
FORMAT = "wirespeed-bitstream/1"

#: JTAG IDCODEs of the ECP5 family (Lattice FPGA-TN-02039, "ECP5 and ECP5-5G sysCONFIG Usage
#: Guide", table B.5); a bitstream's VERIFY_ID command carries the one of the part it was
#: packed for, and the FPGA refuses the bitstream if it is not its own.
ECP5_IDCODES: dict[int, str] = {
    0x21111043: "LFE5U-12F", 0x41111043: "LFE5U-25F", 0x41112043: "LFE5U-45F",
    0x41113043: "LFE5U-85F", 0x01111043: "LFE5UM-25F", 0x01112043: "LFE5UM-45F",
    0x01113043: "LFE5UM-85F", 0x81111043: "LFE5UM5G-25F", 0x81112043: "LFE5UM5G-45F",
    0x81113043: "LFE5UM5G-85F",
}

#: Starts the identity line in the bitstream's comment header (``tools/bitstream.py``).
IDENTITY_PREFIX = "wirespeed "

# ECP5 configuration commands (FPGA-TN-02039; Project Trellis, "Bitstream format"). Each is
# an opcode and 24 bits of operands whose MSB says that a CRC-16 follows the payload.
_PREAMBLE = b"\xbd\xb3"
_LSC_RESET_CRC = 0x3B
_VERIFY_ID = 0xE2
# ISC_PROGRAM_USERCODE (C2, its operands 80 00 00 when a CRC-16 follows the code) comes
# after the frames and their padding and before the block RAM contents (LSC_EBR_ADDRESS, F6)
# or PROGRAM_DONE (5E). It is found by that framing rather than by walking the compressed
# frames; the check compares the value with the manifest's.
_USERCODE = re.compile(rb"\xff{4}\xc2([\x00\x80])\x00\x00")
_AFTER_USERCODE = (b"\xf6", b"\x5e", b"\xff")


class BitstreamError(ValueError):
    """A file is not an ECP5 bitstream, or a manifest is malformed (the message says where)."""


@dataclass(frozen=True)
class Ecp5Bitstream:
    """What can be read from an ECP5 bitstream without walking its configuration frames."""

    #: The strings of the comment header (ecppack writes nextpnr's ``.comment`` lines).
    comments: tuple[str, ...]
    idcode: int
    #: None when no USERCODE command follows the frames.
    usercode: int | None

    @property
    def part(self) -> str | None:
        return ECP5_IDCODES.get(self.idcode)

    def identity(self) -> dict[str, str]:
        """The ``key=value`` pairs of the comment line ``tools/bitstream.py`` wrote ({} if none)."""
        for c in self.comments:
            if c.startswith(IDENTITY_PREFIX):
                return dict(kv.partition("=")[::2] for kv in c[len(IDENTITY_PREFIX):].split())
        return {}


def parse_ecp5(data: bytes) -> Ecp5Bitstream:
    """The comment header, the IDCODE and the USERCODE of an ECP5 bitstream.

    Layout (as ecppack writes it): optional comment header ``FF 00 <strings, NUL-separated>
    00 FF``; padding ``FF``s; the preamble ``BD B3``; commands, each an opcode and three
    bytes of operands (``FF`` is a no-op): LSC_RESET_CRC, then VERIFY_ID with the 32-bit
    IDCODE, then the control register and the frames; after them ISC_PROGRAM_USERCODE (with
    a CRC-16 when bit 7 of its first operand is set), the block RAM contents and
    ISC_PROGRAM_DONE, then padding."""
    i, comments = 0, ()
    if data[:2] == b"\xff\x00":
        end = data.find(b"\x00\xff", 2)
        if end < 0:
            raise BitstreamError("comment header is not terminated (no 00 FF)")
        comments = tuple(s.decode("ascii", "replace") for s in data[2:end].split(b"\x00"))
        i = end + 1
    while i < len(data) and data[i] == 0xFF:
        i += 1
    if data[i:i + 2] != _PREAMBLE or i == 0:
        raise BitstreamError(f"no ECP5 preamble (FF.. BD B3) at byte {i}: not an ECP5 bitstream")
    i += 2
    while i < len(data):
        op = data[i]
        if op == 0xFF:
            i += 1
        elif op == _LSC_RESET_CRC:
            i += 4
        elif op == _VERIFY_ID:
            if i + 8 > len(data):
                raise BitstreamError("truncated in VERIFY_ID")
            idcode = int.from_bytes(data[i + 4:i + 8], "big")
            break
        else:
            raise BitstreamError(f"command {op:#04x} at byte {i} before VERIFY_ID: "
                                 "not an ECP5 bitstream ecppack wrote")
    else:
        raise BitstreamError("no VERIFY_ID command: truncated or not an ECP5 bitstream")
    usercode = None
    for found in _USERCODE.finditer(data, i):
        j = found.end()
        k = j + 4 + (2 if found[1] == b"\x80" else 0)       # past the code and its CRC
        if data[k:k + 1] in _AFTER_USERCODE:
            usercode = int.from_bytes(data[j:j + 4], "big")
            break
    return Ecp5Bitstream(comments, idcode, usercode)


def identity_comment(*, git_rev: int, regmap_hash: int, dirty: bool) -> str:
    """The line ``tools/bitstream.py`` puts in the comment header (read by :meth:`identity`)."""
    return (f"{IDENTITY_PREFIX}git_rev={git_rev:08x} regmap_hash={regmap_hash:#010x} "
            f"dirty={int(dirty)}")


# -- manifest ----------------------------------------------------------------------------------

#: Keys of a manifest and their JSON types; ``tools/bitstream.py`` writes all of them.
_SCHEMA: dict[str, tuple[type, ...]] = {
    "format": (str,), "name": (str,), "file": (str,), "sha256": (str,), "bytes": (int,),
    "device": (str,), "idcode": (str,), "usercode": (str,), "deployable": (bool,),
    "deployable_note": (str,), "source": (dict,), "regmap": (dict,), "design": (dict,),
    "timing": (dict,), "resources": (dict,), "toolchain": (dict,), "commands": (list,),
}
_SUBKEYS: dict[str, dict[str, tuple[type, ...]]] = {
    "source": {"git_rev": (str,), "build_time": (int,), "dirty": (bool,)},
    "regmap": {"version": (str,), "hash": (str,)},
    "design": {"factory": (str,), "args": (dict,), "clock_khz": (int,), "shell": (str,)},
    "timing": {"fmax_mhz": (int, float), "target_mhz": (int, float), "seed": (int,)},
}


@dataclass(frozen=True)
class Manifest:
    """A parsed ``manifest.json`` (:func:`load_manifest`); ``data`` keeps every key."""

    path: Path
    data: dict[str, Any]

    @property
    def bitfile(self) -> Path:
        return self.path.parent / self.data["file"]

    def hexint(self, *keys: str) -> int:
        """A hexadecimal field (``"0x81113043"``, ``"f2f40333"``) as an integer."""
        v: Any = self.data
        for k in keys:
            v = v[k]
        return int(v, 16)


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest; :class:`BitstreamError` names the file and the key."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BitstreamError(f"{path}: no manifest") from None
    except json.JSONDecodeError as e:
        raise BitstreamError(f"{path}: not JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise BitstreamError(f"{path}: a manifest is a JSON object")
    if data.get("format") != FORMAT:
        raise BitstreamError(f"{path}: format {data.get('format')!r}, this host reads {FORMAT!r}")
    for key, types in _SCHEMA.items():
        if key not in data:
            raise BitstreamError(f"{path}: missing key {key!r}")
        if not isinstance(data[key], types) or (types == (int,) and isinstance(data[key], bool)):
            raise BitstreamError(f"{path}: {key!r} must be {types[0].__name__}, "
                                 f"not {type(data[key]).__name__}")
    for key, sub in _SUBKEYS.items():
        for k, types in sub.items():
            v = data[key].get(k)
            if v is None or not isinstance(v, types) or (isinstance(v, bool)
                                                         and bool not in types):
                raise BitstreamError(f"{path}: {key}.{k} missing or not "
                                     f"{types[0].__name__}")
    m = Manifest(path, data)
    for keys in (("idcode",), ("usercode",), ("source", "git_rev"), ("regmap", "hash")):
        try:
            m.hexint(*keys)
        except ValueError:
            raise BitstreamError(f"{path}: {'.'.join(keys)} is not hexadecimal") from None
    if "/" in data["file"] or data["file"] in ("", ".", ".."):
        raise BitstreamError(f"{path}: 'file' must name a file next to the manifest")
    return m


# -- check -------------------------------------------------------------------------------------

@dataclass
class Report:
    """The verdict of :func:`check` on one bitstream."""

    manifest: Manifest | None
    path: Path
    integrity: list[str] = field(default_factory=list)
    compatibility: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Intact and drivable by this host (warnings allowed)."""
        return not self.integrity and not self.compatibility

    def as_dict(self) -> dict[str, Any]:
        m = self.manifest.data if self.manifest else {}
        return {"path": str(self.path), "ok": self.ok, "name": m.get("name"),
                "integrity": self.integrity, "compatibility": self.compatibility,
                "warnings": self.warnings}


def find_manifest(path: Path) -> Path:
    """``path`` itself, ``path/manifest.json`` for a directory, or the manifest next to a
    bitstream file."""
    if path.is_dir():
        return path / MANIFEST
    if path.name == MANIFEST or path.suffix == ".json":
        return path
    return path.parent / MANIFEST


def check(path: Path, known_hashes: frozenset[int] | None = None) -> Report:
    """Check one bitstream (its directory, its manifest or the file itself; see the module
    docstring). ``known_hashes`` defaults to the register maps this host library drives."""
    if known_hashes is None:
        from host.card import KNOWN_HASHES
        known_hashes = KNOWN_HASHES
    mpath = find_manifest(path)
    try:
        m = load_manifest(mpath)
    except BitstreamError as e:
        return Report(None, mpath, integrity=[str(e)])
    r = Report(m, mpath)
    d = m.data
    bit = m.bitfile
    if not bit.is_file():
        r.integrity.append(f"{bit}: missing (the manifest names {d['file']!r})")
        return r
    if path.is_file() and path.resolve() not in (mpath.resolve(), bit.resolve()):
        r.integrity.append(f"{path}: the manifest next to it describes {d['file']!r}")
    data = bit.read_bytes()
    if len(data) != d["bytes"]:
        r.integrity.append(f"{bit.name}: {len(data)} bytes, the manifest says {d['bytes']}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != d["sha256"]:
        r.integrity.append(f"{bit.name}: sha256 {digest[:16]}…, the manifest says "
                           f"{d['sha256'][:16]}…")
    try:
        bs = parse_ecp5(data)
    except BitstreamError as e:
        r.integrity.append(f"{bit.name}: {e}")
        return r
    if bs.idcode != m.hexint("idcode"):
        r.integrity.append(f"{bit.name}: IDCODE {bs.idcode:#010x} ({bs.part or 'not an ECP5'}),"
                           f" the manifest says {d['idcode']} ({d['device']})")
    elif not d["device"].startswith(bs.part or "?"):
        r.integrity.append(f"{bit.name}: packed for {bs.part}, the manifest says {d['device']}")
    if bs.usercode is None:
        r.integrity.append(f"{bit.name}: no USERCODE command after the frames")
    elif bs.usercode != m.hexint("usercode"):
        r.integrity.append(f"{bit.name}: USERCODE {bs.usercode:#010x}, the manifest says "
                           f"{d['usercode']}")
    ident = bs.identity()
    want = {"git_rev": f"{m.hexint('source', 'git_rev'):08x}",
            "regmap_hash": f"{m.hexint('regmap', 'hash'):#010x}",
            "dirty": str(int(d["source"]["dirty"]))}
    if not ident:
        r.integrity.append(f"{bit.name}: no wirespeed identity in its comment header")
    for k, v in want.items():
        if ident and ident.get(k) != v:
            r.integrity.append(f"{bit.name}: {k} {ident.get(k)} in the bitstream, "
                               f"{v} in the manifest")
    regmap = m.hexint("regmap", "hash")
    if regmap not in known_hashes:
        r.compatibility.append(
            f"register map {regmap:#010x} (version {d['regmap']['version']}) is not one this "
            f"host drives ({', '.join(f'{h:#010x}' for h in sorted(known_hashes))}): rebuild "
            "the bitstream from this revision, or use the host library of "
            f"{d['source']['git_rev']}")
    if not d["deployable"]:
        r.warnings.append(f"not deployable: {d['deployable_note']}")
    fmax, clock = d["timing"]["fmax_mhz"], d["design"]["clock_khz"] / 1000
    if fmax < clock:
        r.warnings.append(f"routed Fmax {fmax:.2f} MHz is below the {clock:g} MHz its identity "
                          f"block announces: clock it at {fmax:.2f} MHz or less")
    if d["source"]["dirty"]:
        r.warnings.append(f"built from a dirty tree at {d['source']['git_rev']}: the revision "
                          "does not say what the gateware was")
    return r


def card_mismatches(m: Manifest, read: Callable[[str], int]) -> list[str]:
    """The identity registers whose value on a running card (``read``: register name to
    value, e.g. ``Card.regs.read``) is not the manifest's: empty when the card runs the
    design this bitstream was built from — the check after loading it."""
    out = []
    for reg, want in m.data.get("identity", {}).items():
        got = read(reg)
        if got != int(want, 16):
            out.append(f"{reg}: the card reports {got:#010x}, the manifest {want}")
    if "identity" not in m.data:
        out.append(f"{m.path}: the manifest records no identity block")
    return out


def discover(root: Path) -> list[Path]:
    """Every bitstream directory (one holding a manifest) under ``root``."""
    return sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))


__all__ = ["BITFILE", "ECP5_IDCODES", "FORMAT", "MANIFEST", "BitstreamError", "Ecp5Bitstream",
           "Manifest", "Report", "card_mismatches", "check", "discover", "find_manifest",
           "identity_comment", "load_manifest", "parse_ecp5"]
