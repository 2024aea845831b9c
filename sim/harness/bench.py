"""Measure the harness's simulation speed: ``python -m sim.harness.bench [--verilog PATH]``.

Two figures, both in simulated clock cycles per second, excluding the build:

* *busy*: both RX lines sending random frames back to back (``idle=0``), every record
  collected — the per-cycle work of a replay at full line rate;
* *idle*: nothing to send — the cost of evaluating the model once a cycle (twice with
  ``--plain``).

Each is given per wall-clock second and per CPU-second of the simulating thread; on a shared
machine the second is the steadier one. The default design is the stand-in core of the
harness's tests; pass the real core's Verilog to measure it (random bytes are not valid
packets, but every beat still goes through the ingress pipeline).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from sim.harness import FrameBuffer, Harness

STANDIN = Path(__file__).resolve().parents[2] / "tests" / "harness_standin.v"


def measure(verilog: Path, top: str, frames: int, idle_cycles: int, seed: int,
            registered_inputs: bool = True) -> dict[str, float]:
    """Run the two workloads once and return cycles/s for each (wall and CPU time), plus the
    push rate and whether the library evaluates the model once per cycle."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(64, 1500, frames)
    offsets = np.zeros(frames, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    data = rng.integers(0, 256, int(lengths.sum()), dtype=np.uint8)
    batch = FrameBuffer(data, offsets, lengths)
    with Harness(verilog, top, registered_inputs=registered_inputs) as h:
        t = time.perf_counter()
        h.push_frames(0, batch)
        h.push_frames(1, batch)
        push = time.perf_counter() - t
        t, c = time.perf_counter(), time.thread_time()
        busy_cycles = h.run()
        busy, busy_cpu = time.perf_counter() - t, time.thread_time() - c
        h.records()
        t, c = time.perf_counter(), time.thread_time()
        h.step(idle_cycles)
        idle, idle_cpu = time.perf_counter() - t, time.thread_time() - c
        registered = h.registered_inputs
    return {"busy_cycles": busy_cycles, "busy_cps": busy_cycles / busy,
            "busy_cpu_cps": busy_cycles / busy_cpu, "idle_cps": idle_cycles / idle,
            "idle_cpu_cps": idle_cycles / idle_cpu, "push_frames_per_s": 2 * frames / push,
            "registered_inputs": registered}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verilog", type=Path, default=STANDIN)
    parser.add_argument("--top", default="wirespeed_core")
    parser.add_argument("--frames", type=int, default=20_000, help="frames per line")
    parser.add_argument("--idle-cycles", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plain", action="store_true",
                        help="the plain build (two evaluations per cycle), for comparison")
    args = parser.parse_args()
    r = measure(args.verilog, args.top, args.frames, args.idle_cycles, args.seed,
                registered_inputs=not args.plain)
    print(f"design: {args.verilog} ({args.top})")
    print("evaluation: " + ("registered inputs, once per cycle" if r["registered_inputs"]
                            else "plain, twice per cycle"))
    print(f"busy: {r['busy_cycles']} cycles at {r['busy_cps'] / 1e6:.2f} M cycles/s "
          f"({r['busy_cpu_cps'] / 1e6:.2f} per CPU-second)")
    print(f"idle: {r['idle_cps'] / 1e6:.2f} M cycles/s ({r['idle_cpu_cps'] / 1e6:.2f} per "
          "CPU-second)")
    print(f"push: {r['push_frames_per_s'] / 1e6:.2f} M frames/s")


if __name__ == "__main__":
    main()
