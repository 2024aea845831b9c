"""Measure the harness's simulation speed: ``python -m sim.harness.bench [--verilog PATH]``.

Two figures, both in simulated clock cycles per wall-clock second, excluding the build:

* *busy*: both RX lines sending random frames back to back (``idle=0``), every record
  collected — the per-cycle work of a replay at full line rate;
* *idle*: nothing to send — the floor set by evaluating the model twice a cycle.

The default design is the stand-in core of the harness's tests; pass the real core's Verilog
to measure it (random bytes are not valid packets, but every beat still goes through the
ingress pipeline).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sim.harness import FrameBuffer, Harness

STANDIN = Path(__file__).resolve().parents[2] / "tests" / "harness_standin.v"


def measure(verilog: Path, top: str, frames: int, idle_cycles: int, seed: int) -> dict[str, float]:
    """Run the two workloads once and return cycles/s for each, plus the push rate."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(64, 1500, frames)
    offsets = np.zeros(frames, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    data = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    batch = FrameBuffer(data, offsets, lengths)
    with Harness(verilog, top) as h:
        t = time.perf_counter()
        h.push_frames(0, batch)
        h.push_frames(1, batch)
        push = time.perf_counter() - t
        t = time.perf_counter()
        busy_cycles = h.run()
        busy = time.perf_counter() - t
        h.records()
        t = time.perf_counter()
        h.step(idle_cycles)
        idle = time.perf_counter() - t
    return {"busy_cycles": busy_cycles, "busy_cps": busy_cycles / busy,
            "idle_cps": idle_cycles / idle, "push_frames_per_s": 2 * frames / push}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verilog", type=Path, default=STANDIN)
    parser.add_argument("--top", default="wirespeed_core")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per line")
    parser.add_argument("--idle-cycles", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    r = measure(args.verilog, args.top, args.frames, args.idle_cycles, args.seed)
    print(f"design: {args.verilog} ({args.top})")
    print(f"busy: {r['busy_cycles']} cycles at {r['busy_cps'] / 1e6:.2f} M cycles/s")
    print(f"idle: {r['idle_cps'] / 1e6:.2f} M cycles/s")
    print(f"push: {r['push_frames_per_s'] / 1e6:.2f} M frames/s")


if __name__ == "__main__":
    main()
