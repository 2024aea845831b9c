"""Benchmarks whose figures are published in docs/BENCHMARKS.md.

A benchmark is a module ``tools/bench/bench_<name>.py`` with a function
``run() -> list[BenchResult]``. The driver, ``tools/bench/run.py`` (``make bench``), runs
them and rewrites the ``<name>`` section of docs/BENCHMARKS.md with the figures, the
machine, the date and, for every figure, the command that reproduces it on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BenchResult"]


@dataclass(frozen=True)
class BenchResult:
    """One measured figure."""

    #: What was measured, e.g. "replay throughput, synthetic day".
    name: str
    value: float
    #: Unit of ``value``, e.g. "Mcycles/s", "MHz", "LUT4".
    unit: str
    #: The exact shell command, run from the repository root, that reproduces the figure.
    command: str
    #: Conditions a reader needs to interpret the figure (sizes, seeds, caveats).
    notes: str = ""
