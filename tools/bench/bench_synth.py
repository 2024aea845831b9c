"""ECP5 synthesis of the whole core (in a scan shell) and of the line parser alone (out of context).

The core is everything built today (two line parsers, sequencer, ITCH decoder, book engine,
triggers, risk gate, order entry and its return path, event collector, CSR bank with its
counters), with the book sized by :data:`FIT_BOOK` so that it fits the device: the default
book (65,536 orders, 1,024-level windows) needs about twice the block RAM the LFE5UM5G-85F
has. Figures are nextpnr's, after placement and routing, for the LFE5UM5G-85F at speed grade
8 (see tools/synth_ecp5.py for what "out of context" and "in a scan shell" mean).
``python -m tools.bench.bench_synth [--json OUT] [--arg slots=2]`` (``make synth``) builds
the core alone, as the bench does.
"""

from __future__ import annotations

import os
import sys

from tools.bench import BenchResult
from tools.synth_ecp5 import synth


def _results(label: str, factory, name: str, cmd: str, **flow) -> list[BenchResult]:
    r = synth(factory, name, **flow)
    fmax = min(r.fmax_mhz.values())
    met = "met" if r.timing_met else "MISSED"
    util = ", ".join(f"{k} {v.used}/{v.available}" for k, v in sorted(r.utilization.items())
                     if v.used and k in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "TRELLIS_RAMW"))
    notes = f"target {r.target_mhz} MHz ({met}); {util}; {r.wall_s.get('total', 0):.0f} s"
    return [
        BenchResult(f"{label}: Fmax", fmax, "MHz", cmd, notes),
        BenchResult(f"{label}: LUT4", r.luts, "LUT4", cmd, notes),
        BenchResult(f"{label}: flip-flops", r.ffs, "FF", cmd, notes),
        BenchResult(f"{label}: block RAM", r.bram, "DP16KD", cmd, notes),
        BenchResult(f"{label}: distributed RAM", r.lutram, "DPR16X4", cmd, notes),
    ]


def _parser():
    from hw.ingress.parser import LineParser
    return LineParser()


#: Book sizes for the LFE5UM5G-85F next to the rest of the core. Block RAM limits the table
#: and the windows (the default 65,536 orders and 1,024-level windows need about twice the
#: 208 DP16KD), logic limits the slots: the book engine and the risk gate keep per-slot state
#: in registers and multiplex it by slot. Before the risk gate and order entry were in the
#: core, 64 slots needed 104% of the TRELLIS_COMB and 16 slots 62%; the whole core with 8
#: slots places at 70% in the scan shell (79% before the CSR counters moved to block RAM)
#: and does not route yet (docs/BENCHMARKS.md, "ECP5: the core with the book").
FIT_BOOK = dict(slots=8, ways=4, orders=4096, window=256)

#: How the core is built: LUT4-only mapping (the 8-slot core places at 78% of the logic
#: instead of 83%), router2 (router1 stalled on it), nextpnr's electrostatic placer (router2's
#: overuse on its placement fell to 7,765 by iteration 10, against HeAP's 21,725 at iteration
#: 8), at the clock the core can aim for today, and in a scan shell, so that its clock is on
#: the global network as on a board (out of context it was routed over fabric). router2
#: does not converge at 8 slots (its overuse stalls at about 900 wires); at 2 slots it routes
#: with ``--seed 2`` on f2f4033 (25.29 MHz), ``--seed 3`` on 7e3de42 (25.99 MHz) and
#: ``--seed 4`` on b4c8d0e (28.80 MHz), at 4 slots with ``--seed 1`` on ce5a8cc (27.51 MHz)
#: and ``--seed 2`` on e443e76 (30.87 MHz; seed 1 28.15), and stalled with seeds 1 and 2 on
#: other netlists (docs/BENCHMARKS.md, "Where router2 runs out of wires"; ``--heatmap`` and
#: ``tools/congestion.py`` say whose). The target does not matter to the static placer or to
#: router2 here: at ``--freq 25`` the 2-slot run was the same, wire for wire.
CORE_FLOW = dict(widelut=False, router="router2", placer="static", freq_mhz=60.0, shell=True)


def core_flow_argv() -> list[str]:
    """``tools/synth_ecp5.py`` arguments that build :func:`core_fit` with :data:`CORE_FLOW`."""
    argv = ["tools.bench.bench_synth:core_fit", "--freq", f"{CORE_FLOW['freq_mhz']:g}",
            "--router", str(CORE_FLOW["router"]), "--placer", str(CORE_FLOW["placer"])]
    if not CORE_FLOW["widelut"]:
        argv.append("--nowidelut")
    if CORE_FLOW["shell"]:
        argv.append("--shell")
    return argv


def core_fit(**book):
    """The core with :data:`FIT_BOOK`, or with some of its values replaced (``tools/synth_ecp5.py``
    factory: ``--arg slots=2``)."""
    from hw.book.params import BookParams
    from hw.top import build_core
    return build_core(book=BookParams(**(FIT_BOOK | book)))


# The core's largest blocks alone, sized as in core_fit, to find what limits it (factories
# for tools/synth_ecp5.py; docs/BENCHMARKS.md, "ECP5", has their figures).

def block_book():
    from hw.book.engine import BookEngine
    from hw.book.params import BookParams
    return BookEngine(BookParams(**FIT_BOOK))


def block_risk():
    from hw.book.params import BookParams
    from hw.risk.gate import RiskGate
    from hw.risk.params import RiskParams
    book = BookParams(**FIT_BOOK)
    return RiskGate(RiskParams(slots=book.slots, tick=book.tick))


def block_events():
    from hw.core import EVENT_KINDS
    from hw.eventq import EventCollector
    return EventCollector(EVENT_KINDS, depth=512)


#: Set to 1 to have the bench place and route the whole core too. It is off by default
#: because router2 does not converge on the core today (docs/BENCHMARKS.md, "In a scan
#: shell"), so ``make bench`` would not finish; ``make synth`` runs it on its own.
CORE_ENV = "WIRESPEED_SYNTH_CORE"


def run() -> list[BenchResult]:
    out = _results("line parser (one line)", _parser, "bench_parser",
                   ".venv/bin/python tools/bench/run.py synth")
    if os.environ.get(CORE_ENV) != "1":
        print(f"synth: the whole core is not placed and routed (set {CORE_ENV}=1; router2 does "
              "not converge on it today, docs/BENCHMARKS.md)", file=sys.stderr)
        return out
    book = ", ".join(f"{k} {v:,}" for k, v in FIT_BOOK.items())
    out += _results(f"core with the book ({book})", core_fit, "bench_core_fit",
                    "make synth   # or: .venv/bin/python tools/bench/run.py synth", **CORE_FLOW)
    return out


if __name__ == "__main__":
    # `make synth`: the core as the bench builds it; further arguments go to synth_ecp5
    # (``--json OUT``, ``--arg slots=2``, ``--seed 2``, ...).
    from tools.synth_ecp5 import main
    sys.exit(main(core_flow_argv() + sys.argv[1:]))
