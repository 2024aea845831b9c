"""Out-of-context ECP5 synthesis of the core and of the line parser alone.

The core is the whole ingress path as built today (two line parsers, sequencer, event collector,
CSR bank with its counters). Figures are nextpnr's, after placement and routing, for the
LFE5UM5G-85F at speed grade 8 (see tools/synth_ecp5.py for what "out of context" leaves out).
"""

from __future__ import annotations

from tools.bench import BenchResult
from tools.synth_ecp5 import synth


def _results(label: str, factory, name: str, cmd: str) -> list[BenchResult]:
    r = synth(factory, name)
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


def _core():
    from hw.top import build_core
    return build_core()


def run() -> list[BenchResult]:
    out = _results("line parser (one line)", _parser, "bench_parser",
                   ".venv/bin/python tools/bench/run.py synth")
    out += _results("core (ingress path, both lines, CSRs, events)", _core, "bench_core",
                    "make synth   # or: .venv/bin/python tools/bench/run.py synth")
    return out
