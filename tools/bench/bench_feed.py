"""Feed tools: how fast the synthetic day generator and the day-file reader run (one core).

Figures only, no pass/fail: performance lives here, not in timed tests.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sim.feed import dayfile
from sim.feed.synth import DayGenerator
from tools.bench import BenchResult

CMD = ".venv/bin/python tools/bench/run.py feed"


def run() -> list[BenchResult]:
    n = 1_000_000
    t0 = time.perf_counter()
    msgs = list(DayGenerator(n, seed=1))
    gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "day.NASDAQ_ITCH50"
        dayfile.write_dayfile(path, msgs)
        t1 = time.perf_counter()
        count = sum(1 for _ in dayfile.iter_messages(path))
        read = time.perf_counter() - t1
    assert count == n
    return [
        BenchResult("synthetic day generation", n / gen / 1e6, "M messages/s", CMD,
                    f"{n:,} messages, 8 symbols, seed 1"),
        BenchResult("day-file read", n / read / 1e6, "M messages/s", CMD,
                    f"{n:,} messages, uncompressed"),
    ]
