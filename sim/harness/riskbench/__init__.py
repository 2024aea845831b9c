"""The risk gate in Verilator with a C++ cycle loop, for long runs against the model.

Amaranth's Python simulator runs :class:`~hw.risk.gate.RiskGate` at about 1,300 cycles/s,
which makes a million-order comparison against :mod:`sim.model.risk` take hours. Here the
gate runs in a Verilated model driven by a small C++ program, and Python only does what it
must — generate the stream, step the reference model, pack bytes and compare arrays:

* :mod:`.top` — :class:`RiskBench`, the gate behind flat, plainly named ports;
* :mod:`.builder` — Verilator + C++ build of ``driver.cpp`` around it, cached in
  ``build/riskbench/`` (reusing :mod:`sim.harness.build`'s toolchain and runtime cache);
* ``driver.cpp`` — reads per-cycle input records, writes the verdicts and final snapshots;
* :mod:`.stimulus` — the byte formats: Cycle → record, verdict ↔ bytes, snapshots;
* :mod:`.run` — :class:`GateBench`: reference run, driver run, :func:`compare`.

``tests/test_risk_gate_long.py`` is the million-order run.
"""

from sim.harness.riskbench.builder import Driver, PortSpec, build_driver
from sim.harness.riskbench.run import Expected, GateBench, Observed, compare, final_state
from sim.harness.riskbench.top import TOP_NAME, RiskBench, bench_verilog

__all__ = ["TOP_NAME", "Driver", "Expected", "GateBench", "Observed", "PortSpec", "RiskBench",
           "bench_verilog", "build_driver", "compare", "final_state"]
