# amaranth: UnusedElaboratable=no
"""Build a bitstream of the core and its manifest into ``bitstreams/NAME/``.

``build`` runs the whole flow on the working tree (``tools/synth_ecp5.py`` with
:data:`tools.bench.bench_synth.CORE_FLOW`, ``--bitstream``): the core with
:data:`~tools.bench.bench_synth.FIT_BOOK` (values replaced by ``--arg``), in the scan shell.
``pack`` packs a run that has already been placed and routed (its work directory holds
``top.config``, ``report.json``, ``stat.json`` and ``nextpnr.log``), which is how a seed found
by hand becomes a bitstream without another hour of placement and routing. It takes the
revision the netlist was built from, elaborates the tree's core with that revision's
identity and compares it with the run's ``design.il`` (source locations aside); a run that
kept no ``design.il`` is refused unless the tree's gateware is that revision's.

Either way the core is built with an explicit identity (that revision's, from git), the
bitstream carries it three times — in the identity block the card reports over AXI4-Lite,
as its USERCODE (the revision, for a JTAG cable) and in its comment header — and the
manifest records it with everything else ``host/bitstream.py`` checks::

    python tools/bitstream.py build NAME [--arg slots=2] [--seed 2] [--workdir DIR]
    python tools/bitstream.py pack WORKDIR NAME --rev REV [--arg slots=2] [--seed 2]
                                   [--command CMD ...]

``make bitstream`` is ``build core-scan-4slot --arg slots=4 --seed 2``.

(The first line tells Amaranth that a core built here and not elaborated is intended: the
manifest reads its identity block and book parameters from the object.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from host.bitstream import (  # noqa: E402
    BITFILE,
    ECP5_IDCODES,
    FORMAT,
    MANIFEST,
    identity_comment,
)
from tools.synth_ecp5 import (  # noqa: E402
    DEVICE,
    SHELL_LPF,
    SynthResult,
    pack_bitstream,
    parse_kwargs,
    read_result,
    synth,
)

#: Where the virtual environment's tools are (the YoWASP entry points).
SCRIPTS = sysconfig.get_path("scripts")

#: The part's JTAG IDCODE, from host/bitstream.py's table of the family.
[IDCODE] = [code for code, part in ECP5_IDCODES.items() if DEVICE.startswith(part + "-")]

#: Why a scan-shell build does nothing on a board (the manifest's ``deployable_note``).
SCAN_NOTE = ("scan shell: the core's ports are two scan chains on pins E16 (in), D17 (load) "
             "and D18 (out), its clock on P3 and reset on T1; there is no MAC/PHY or host "
             "link, so on a board it receives nothing and sends nothing. It is the proof that "
             "the core builds, fits and routes on the LFE5UM5G-85F, and at what Fmax.")


def identity_of(rev: str) -> dict[str, Any]:
    """The identity (hw.core.Core's git_rev, build_time, dirty) and full commit of ``rev``."""
    from hw.top import git_identity
    return git_identity(rev, REPO)


def gateware_differs(rev: str) -> list[str]:
    """Files under hw/ and proto/ that differ between ``rev`` and the working tree."""
    out = subprocess.run(["git", "-C", str(REPO), "diff", "--name-only", rev, "--", "hw",
                          "proto"], capture_output=True, text=True, check=True).stdout
    return out.split()


def make_core(ident: dict[str, Any], args: dict[str, Any]):
    """The core with FIT_BOOK (``args`` replacing values) and the identity ``ident``."""
    from hw.book.params import BookParams
    from hw.core import Core
    from tools.bench.bench_synth import FIT_BOOK
    return Core(git_rev=ident["git_rev"], build_time=ident["build_time"], dirty=ident["dirty"],
                book=BookParams(**(FIT_BOOK | args)))


def manifest(name: str, result: SynthResult, core, ident: dict[str, Any],
             args: dict[str, Any], bit: bytes, commands: list[str]) -> dict[str, Any]:
    """The manifest of one bitstream (the keys host/bitstream.py validates, and more)."""
    from hw.regmap import REGMAP, REGMAP_VERSION
    book = core.book
    fmax = min(result.fmax_mhz.values())
    return {
        "format": FORMAT,
        "name": name,
        "file": BITFILE,
        "sha256": hashlib.sha256(bit).hexdigest(),
        "bytes": len(bit),
        "device": DEVICE,
        "idcode": f"{IDCODE:#010x}",
        "usercode": f"{ident['git_rev']:#010x}",
        "deployable": False,
        "deployable_note": SCAN_NOTE,
        "source": {"git_rev": f"{ident['git_rev']:08x}", "commit": ident["commit"],
                   "build_time": ident["build_time"], "dirty": ident["dirty"]},
        "regmap": {"version": f"{REGMAP_VERSION[0]}.{REGMAP_VERSION[1]}",
                   "hash": f"{REGMAP.hash:#010x}"},
        "design": {"factory": "tools.bitstream:make_core", "args": args,
                   "book": {"slots": book.slots, "ways": book.ways, "orders": book.orders,
                            "window": book.window, "tick": book.tick},
                   "clock_khz": core.identity["id_clock_khz"], "shell": "scan",
                   "pins": SHELL_LPF.strip().splitlines()},
        "identity": {k: f"{v:#010x}" for k, v in core.identity.items()},
        "timing": {"fmax_mhz": round(fmax, 2), "target_mhz": result.target_mhz,
                   "met": result.timing_met, "seed": result.seed,
                   "nextpnr": result.fmax_log},
        "resources": {"cells": result.cells,
                      "utilization": {k: {"used": u.used, "available": u.available}
                                      for k, u in result.utilization.items()}},
        "toolchain": result.versions,
        # The tools as the virtual environment names them, not by this machine's paths.
        "commands": [c.replace(f"{SCRIPTS}/", "") for c in commands],
    }


def release(name: str, result: SynthResult, core, ident: dict[str, Any], args: dict[str, Any],
            commands: list[str], out: Path) -> Path:
    """Copy the run's bitstream to ``out/NAME/wirespeed.bit`` and write its manifest."""
    assert result.bitstream is not None
    bit = Path(result.bitstream).read_bytes()
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    (dest / BITFILE).write_bytes(bit)
    data = manifest(name, result, core, ident, args, bit, commands)
    (dest / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")
    return dest


def _comment(core) -> str:
    return identity_comment(git_rev=core.identity["id_git_rev"],
                            regmap_hash=core.identity["id_regmap_hash"],
                            dirty=bool(core.identity["id_flags"] & 1))


def build(name: str, args: dict[str, Any], seed: int, workdir: Path | None, out: Path) -> Path:
    """The whole flow on the working tree, then :func:`release`."""
    from tools.bench.bench_synth import CORE_FLOW
    ident = identity_of("HEAD")
    core = make_core(ident, args)
    result = synth(core, name, seed=seed, workdir=workdir, bitstream=True,
                   usercode=ident["git_rev"], comments=[_comment(core)], **CORE_FLOW)
    invocation = _invocation(["build", name], args, seed)
    return release(name, result, core, ident, args, [invocation, *result.commands], out)


def pack(workdir: Path, name: str, rev: str, args: dict[str, Any], seed: int,
         commands: list[str], out: Path) -> Path:
    """Pack an already routed run of revision ``rev`` (see the module docstring)."""
    from amaranth.back import rtlil

    from tools.synth_ecp5 import TOP, ScanShell
    ident = identity_of(rev)
    core = make_core(ident, args)
    il = workdir / "design.il"
    if il.exists():
        if _logic(rtlil.convert(ScanShell(core), name=TOP)) != _logic(il.read_text()):
            raise SystemExit(f"error: {il} is not what the tree elaborates to with the "
                             f"identity of {rev} and {args}")
        print(f"{il}: the tree with the identity of {rev} and {args} elaborates to it")
    else:
        differs = gateware_differs(rev)
        if differs:
            raise SystemExit(f"error: the gateware of {rev} differs from the tree's "
                             f"({', '.join(differs[:5])}) and {workdir} kept no design.il "
                             "to compare: the manifest's register map and parameters might "
                             "not be that netlist's")
        print(f"warning: {workdir} has no design.il; the netlist is taken to be {rev}'s",
              file=sys.stderr)
    pack_cmd = pack_bitstream(workdir, usercode=ident["git_rev"], comments=[_comment(core)])
    result = read_result(workdir, name, target_mhz=_target(workdir), seed=seed,
                         commands=[*commands, shlex.join(pack_cmd)], wall={}, shell=True,
                         bitstream=True)
    invocation = _invocation(["pack", str(workdir), name, "--rev", rev], args, seed)
    return release(name, result, core, ident, args, [invocation, *result.commands], out)


def _invocation(words: list[str], args: dict[str, Any], seed: int) -> str:
    """This tool's command line, as the manifest records it."""
    return shlex.join(["python", "tools/bitstream.py", *words,
                       *(f"--arg={k}={v}" for k, v in args.items()), f"--seed={seed}"])


def _logic(il: str) -> str:
    """RTLIL without its source locations (file paths and line numbers, which a clone in
    another directory or a comment changes, and which synthesis does not use)."""
    return "\n".join(ln for ln in il.splitlines()
                     if not ln.lstrip().startswith("attribute \\src "))


def _target(workdir: Path) -> float:
    """The target nextpnr was given, from its report (``fmax.<clock>.constraint``)."""
    report = json.loads((workdir / "report.json").read_text())
    return min(float(v["constraint"]) for v in report["fmax"].values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="synthesise, place, route and pack the working tree")
    b.add_argument("name")
    b.add_argument("--workdir", type=Path, help="default: build/synth/NAME")
    p = sub.add_parser("pack", help="pack a run already placed and routed")
    p.add_argument("workdir", type=Path)
    p.add_argument("name")
    p.add_argument("--rev", required=True, help="the revision the run's netlist was built from")
    p.add_argument("--command", action="append", default=[],
                   help="a command that made the run, recorded in the manifest (repeatable)")
    for s in (b, p):
        s.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                       help="replace a FIT_BOOK value (repeatable)")
        s.add_argument("--seed", type=int, default=1, help="nextpnr seed (1)")
        s.add_argument("--out", type=Path, default=REPO / "bitstreams")
    a = parser.parse_args(argv)
    args = parse_kwargs(a.arg)
    if a.cmd == "build":
        dest = build(a.name, args, a.seed, a.workdir, a.out)
    else:
        dest = pack(a.workdir, a.name, a.rev, args, a.seed, a.command, a.out)
    print(f"wrote {dest / BITFILE} and {dest / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
