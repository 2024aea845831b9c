"""Where router2 ran out of wires: a run's congestion heatmap, summed by block and by signal.

``tools/synth_ecp5.py --router router2 --heatmap`` has nextpnr write, after every router2
iteration, how many overused wires each net holds (``heatmap_congestion_by_net_<i>.csv``,
in the run's work directory). On a design that does not converge the total says how far it
is, and the names say whose logic it is: a net is named after the signal whose flip-flop or
LUT it comes from (``design.book.stale5_TRELLIS_FF_Q_DI_LUT4_D_Z[1]`` is logic of the book
engine's ``stale5`` register), so summing by the block (``book``) and by the signal with
its suffixes and index removed (``design.book.stale#``) points at the structure to change.
That is how the core's two hot spots were found (docs/BENCHMARKS.md).

Usage: ``python tools/congestion.py WORKDIR [--iteration N] [--top 25]`` (the last
iteration by default).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

#: The file router2 writes per iteration, for ``--router2-heatmap heatmap``.
BY_NET = "heatmap_congestion_by_net_{}.csv"

# What Yosys's techmap and nextpnr's packer append to a signal's name.
_SUFFIX = re.compile(r"_(?:LUT4|TRELLIS|CCU2C|DP16KD|PFUMX|L6MUX|MULT18|DO[AB]\d|DI[AB]\d)")


def iterations(workdir: Path) -> list[int]:
    """The router2 iterations with a by-net heatmap in ``workdir``, in order."""
    found = (re.fullmatch(BY_NET.format(r"(\d+)"), p.name) for p in workdir.iterdir())
    return sorted(int(m[1]) for m in found if m)


def load(path: Path) -> dict[str, int]:
    """``net -> overused wires`` from one by-net heatmap (rows ``name,count``)."""
    with path.open(newline="") as f:
        return {row[0]: int(row[1]) for row in csv.reader(f) if len(row) >= 2 and row[1]}


def block_of(net: str) -> str:
    """The core's top-level block a net belongs to (``design.<block>.…``), else ``(top)``
    (the scan shell's, and nets Yosys left without a block's name)."""
    parts = net.split(".")
    if parts[0] == "design" and len(parts) > 2:
        return re.sub(r"\$\d+(\[\d+\])?$", "", parts[1])
    return "(top)"


def signal_of(net: str) -> str:
    """The signal a net was named after: suffixes, bit index and a trailing index dropped
    (``design.book.stale5_TRELLIS_FF_Q_DI[2]`` -> ``design.book.stale#``)."""
    name = _SUFFIX.split(net, maxsplit=1)[0]
    name = re.sub(r"\[\d+\]$", "", name)
    return re.sub(r"(?<=[A-Za-z_])\d+$", "#", name)


def summarize(by_net: dict[str, int]) -> tuple[Counter, Counter]:
    """Overuse summed by block and by signal."""
    blocks: Counter = Counter()
    signals: Counter = Counter()
    for net, count in by_net.items():
        blocks[block_of(net)] += count
        signals[signal_of(net)] += count
    return blocks, signals


def report(workdir: Path, iteration: int | None = None, top: int = 25) -> str:
    """The text :func:`main` prints."""
    its = iterations(workdir)
    if not its:
        raise FileNotFoundError(f"{workdir}: no {BY_NET.format('N')} (run synth_ecp5.py "
                                "with --router router2 --heatmap)")
    it = its[-1] if iteration is None else iteration
    if it not in its:
        raise FileNotFoundError(f"{workdir}: no heatmap for iteration {it} (have {its[0]}.."
                                f"{its[-1]})")
    by_net = load(workdir / BY_NET.format(it))
    blocks, signals = summarize(by_net)
    total = sum(by_net.values())
    lines = [f"router2 iteration {it}: overuse {total} summed over {len(by_net)} nets (a wire "
             "that n nets share counts n times)"]
    lines += ["", "by block:"]
    lines += [f"  {n:7d}  {100 * n / max(total, 1):5.1f}%  {b}" for b, n in
              blocks.most_common(top)]
    lines += ["", "by signal:"]
    lines += [f"  {n:7d}  {s}" for s, n in signals.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path, help="the synth_ecp5.py run's work directory")
    parser.add_argument("--iteration", type=int, help="router2 iteration (default: the last)")
    parser.add_argument("--top", type=int, default=25, help="rows per table (25)")
    args = parser.parse_args(argv)
    try:
        print(report(args.workdir, args.iteration, args.top))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
