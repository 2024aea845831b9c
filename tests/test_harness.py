"""Tests of the Verilator replay harness (sim/harness) against tests/harness_standin.v.

The stand-in core reports, for every frame, the line, frame index, first- and last-beat cycle
(from its own cycle counter), byte length, beat count, a checksum of the tkeep-masked beats and
the tuser flag; it counts frames, bytes, tuser frames and malformed beats in AXI-Lite
registers. So each test checks the harness end to end: what went in on the RX lines, when,
and what came back on C2H, exactly.

The libraries are built into <repo>/build/harness and reused by later runs (content-hashed);
the first run verilates and compiles (~30 s per library on two cores).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import sim.harness.build as harness_build
from sim.harness import (
    AxiLiteError,
    AxiLiteTimeout,
    FrameBuffer,
    Harness,
    HarnessBuildError,
    ProtocolError,
    SimulationError,
)

STANDIN = Path(__file__).with_name("harness_standin.v")
TOP = "wirespeed_core"

KIND = 0xA5
BODY = np.dtype([("index", "<u8"), ("start", "<u8"), ("length", "<u4"), ("beats", "<u4"),
                 ("checksum", "<u8"), ("zero", "V16")])
REG_ID, REG_SCRATCH, REG_AUX = 0x00, 0x04, 0x08
REG_LINE = (0x10, 0x20)  # + 0 frames, + 4 bytes, + 8 tuser frames, + 0xC malformed beats
REG_GENERATED, REG_DROPPED, REG_CYCLE_LO = 0x30, 0x34, 0x38
STANDIN_ID = 0x57535344
MASK64 = (1 << 64) - 1


def checksum(frame: bytes) -> int:
    """The stand-in's checksum: per 8-byte beat, c = rotl64(c, 1) ^ beat (zero-padded)."""
    c = 0
    for word in np.frombuffer(frame + bytes(-len(frame) % 8), dtype="<u8"):
        c = (((c << 1) | (c >> 63)) & MASK64) ^ int(word)
    return c


def beats(length: int) -> int:
    return -(-length // 8)


def schedule(lengths, not_before, idle, t0: int) -> tuple[list[int], list[int]]:
    """First- and last-beat cycles of frames pushed at cycle ``t0`` on an idle line."""
    starts, ends, end = [], [], None
    for length, nb, gap in zip(lengths, not_before, idle, strict=True):
        start = max(int(nb), t0 if end is None else end + 1 + int(gap))
        end = start + beats(length) - 1
        starts.append(start)
        ends.append(end)
    return starts, ends


def bodies(records: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(records["body"]).view(BODY)


@pytest.fixture
def harness():
    with Harness(STANDIN, TOP) as h:
        yield h


def random_frames(rng: np.random.Generator, n: int) -> list[bytes]:
    small = rng.random(n) < 0.4
    lengths = np.where(small, rng.integers(1, 17, n), rng.integers(17, 400, n))
    return [rng.integers(0, 256, int(k), dtype=np.uint8).tobytes() for k in lengths]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_traffic_both_lines(harness: Harness, seed: int) -> None:
    rng = np.random.default_rng(seed)
    h = harness
    pattern = None
    if seed % 2:
        h.c2h_ready(float(rng.uniform(0.3, 0.9)), seed=seed)
    else:
        pattern = rng.integers(0, 2, int(rng.integers(2, 7)))
        pattern[0] = 1
        h.c2h_ready(pattern)
    ready_from = h.cycle

    n = 250
    t0 = h.cycle
    sent = []
    for line in (0, 1):
        frames = random_frames(rng, n)
        idle = rng.integers(0, 4, n)
        # Half the frames are gated by not_before, some of it already in the past.
        span = 3 * sum(beats(len(f)) for f in frames)
        not_before = np.where(rng.random(n) < 0.5, 0, np.sort(rng.integers(0, span, n)))
        error = rng.random(n) < 0.1
        batch = frames if line == 0 else FrameBuffer.from_frames(frames)
        assert h.push_frames(line, batch, not_before=not_before, idle=idle,
                             error=error) == range(n)
        sent.append((frames, error, *schedule([len(f) for f in frames], not_before, idle, t0)))

    # AXI-Lite while the lines run: the cycle register is latched in the AR handshake cycle,
    # which is the first cycle of the call; R completes one cycle later.
    for _ in range(5):
        h.step(int(rng.integers(0, 300)))
        c = h.cycle
        assert h.axil_read(REG_CYCLE_LO) == c
        assert h.cycle == c + 2
    h.run()

    records, arrival = h.records_with_cycles()
    body = bodies(records)
    assert (records["kind"] == KIND).all()
    assert (np.diff(records["seq"].astype(np.int64)) > 0).all(), "records out of order"
    assert (np.diff(arrival) > 0).all()
    assert (arrival >= records["timestamp"].astype(np.int64) + 2).all()
    if pattern is not None:
        assert pattern[(arrival - ready_from) % len(pattern)].all(), "accepted while not ready"
    dropped = h.axil_read(REG_DROPPED)
    assert h.axil_read(REG_GENERATED) == 2 * n
    assert len(records) + dropped == 2 * n
    keys = set(zip(records["line"].tolist(), body["index"].tolist(), strict=True))
    assert len(keys) == len(records)

    for r, b in zip(records, body, strict=True):
        line, index = int(r["line"]), int(b["index"])
        frames, error, starts, ends = sent[line]
        frame = frames[index]
        assert (b["length"], b["beats"], b["checksum"]) == (len(frame), beats(len(frame)),
                                                           checksum(frame)), (line, index)
        assert (b["start"], r["timestamp"]) == (starts[index], ends[index]), (line, index)
        assert r["aux"] == error[index], (line, index)

    for line, (frames, error, starts, _) in enumerate(sent):
        np.testing.assert_array_equal(h.frame_start_cycles(line), starts)
        np.testing.assert_array_equal(h.frame_start_cycles(line, start=n - 3), starts[-3:])
        stats = h.line_stats(line)
        total = sum(len(f) for f in frames)
        assert (stats.frames_pushed, stats.frames_sent, stats.frames_pending) == (n, n, 0)
        assert (stats.beats_sent, stats.bytes_sent) == (sum(beats(len(f)) for f in frames),
                                                        total)
        base = REG_LINE[line]
        assert [h.axil_read(base + k) for k in (0, 4, 8, 12)] == [n, total, int(error.sum()), 0]
    assert len(h.records()) == 0


def test_exact_beat_timing(harness: Harness) -> None:
    h = harness
    assert h.cycle == 0
    frames = [b"\x11", bytes(range(8)), bytes(range(9)), bytes(range(16)), bytes(range(17))]
    h.push_frames(0, frames, not_before=[0, 0, 10, 0, 30], idle=[5, 0, 0, 2, 0],
                  error=[0, 0, 1, 0, 0])
    # f0 at 0 (idle before the first frame does not apply); f1 back to back at 1; f2 waits
    # for cycle 10, 2 beats; f3 idles 2 cycles after f2's last beat (11); f4 waits for 30.
    assert h.run(drain=0) == 33  # returns right after the last beat, cycle 32
    np.testing.assert_array_equal(h.frame_start_cycles(0), [0, 1, 10, 14, 30])
    assert h.run(drain=10) >= 10
    records = h.records()
    body = bodies(records)
    assert records["timestamp"].tolist() == [0, 1, 11, 15, 32]
    assert body["beats"].tolist() == [1, 1, 2, 2, 3]
    assert body["length"].tolist() == [len(f) for f in frames]
    assert body["checksum"].tolist() == [checksum(f) for f in frames]
    assert records["aux"].tolist() == [0, 0, 1, 0, 0]
    assert records["line"].tolist() == [0] * 5
    assert h.axil_read(REG_LINE[0] + 12) == 0  # no malformed beat: tkeep/tuser framing right


def test_run_limits_and_drain(harness: Harness) -> None:
    h = harness
    h.push_frames(1, [bytes(100)] * 10, not_before=np.arange(10) * 1000)
    assert h.run(max_cycles=500) == 500
    assert h.line_stats(1).frames_sent == 1
    h.run(drain=0)
    assert h.line_stats(1).frames_pending == 0
    h.run()  # the last record is still in the core's pipeline
    start = h.cycle
    assert h.run(drain=25) == 25  # nothing left: exactly `drain` quiet cycles
    assert h.cycle == start + 25
    assert len(h.records()) == 10


def test_backpressure_stall_holds_records(harness: Harness) -> None:
    h = harness
    h.c2h_ready(0.0)
    h.push_frames(0, [bytes([i]) * 20 for i in range(5)])
    assert h.run(max_cycles=200) == 200  # C2H never drains, so run() stops at the limit
    assert len(h.records()) == 0
    h.c2h_ready(1.0)
    h.run()
    assert bodies(h.records())["index"].tolist() == [0, 1, 2, 3, 4]


def test_axil_scratch_strobes_and_errors(harness: Harness) -> None:
    h = harness
    rng = np.random.default_rng(7)
    assert h.axil_read(REG_ID) == STANDIN_ID
    expected = 0
    for w_delay in (-4, -1, 0, 0, 1, 3):
        value, strb = int(rng.integers(0, 1 << 32)), int(rng.integers(1, 16))
        h.axil_write(REG_SCRATCH, value, strb, w_delay=w_delay)
        mask = sum(0xFF << (8 * i) for i in range(4) if strb >> i & 1)
        expected = (expected & ~mask) | (value & mask)
        assert h.axil_read(REG_SCRATCH) == expected, (w_delay, strb)
    with pytest.raises(AxiLiteError) as info:
        h.axil_read(0x0100)
    assert info.value.resp == 2
    with pytest.raises(AxiLiteError):
        h.axil_write(REG_ID, 1)  # read-only
    assert h.axil_read(REG_SCRATCH) == expected


def test_reset_clears_everything(harness: Harness) -> None:
    h = harness
    h.push_frames(0, [bytes(64)] * 3)
    h.push_frames(1, [bytes(64)] * 50)
    h.step(20)
    h.reset(4)
    assert h.cycle == 0
    assert h.line_stats(1).frames_pushed == 0
    assert len(h.frame_start_cycles(1)) == 0
    assert len(h.records()) == 0
    assert h.axil_read(REG_LINE[1]) == 0
    h.push_frames(1, [bytes(9)])
    h.run()
    assert bodies(h.records())["index"].tolist() == [0]


def test_extra_ports_tie_peek_poke() -> None:
    value = (0x2A << 64) | 0xDEADBEEF_01234567
    with Harness(STANDIN, TOP, tie={"standin_aux_in": value}) as h:
        assert h.ports["standin_aux_in"].width == 70
        assert h.axil_read(REG_AUX) == 0x01234567
        assert h.peek("standin_aux_out") == ~value & ((1 << 70) - 1)
        h.poke("standin_aux_in", 5)
        h.reset()
        h.step()
        assert h.peek("standin_aux_out") == ~5 & ((1 << 70) - 1)
        with pytest.raises(ValueError):
            h.poke("s_axis_rx_a_tvalid", 1)  # the harness drives it
        with pytest.raises(ValueError):
            h.poke("standin_aux_in", 1 << 70)
        with pytest.raises(KeyError):
            h.peek("no_such_port")


def test_push_validation(harness: Harness) -> None:
    h = harness
    with pytest.raises(ValueError):
        h.push_frames(2, [b"x"])
    with pytest.raises(ValueError):
        h.push_frames(0, [b"x", b""])
    with pytest.raises(ValueError):
        h.push_frames(0, FrameBuffer(bytes(10), [0, 5], [5, 6]))
    with pytest.raises(ValueError):
        h.push_frames(0, [b"x", b"y"], not_before=[1])
    with pytest.raises(ValueError):
        h.push_frames(0, [b"x"], idle=-1)
    assert h.line_stats(0).frames_pushed == 0


def test_two_harnesses_are_independent() -> None:
    with Harness(STANDIN, TOP) as h1, Harness(STANDIN, TOP) as h2:
        h1.push_frames(0, [bytes(10)] * 4)
        h2.push_frames(1, (bytes(range(60)), np.array([0, 30]), np.array([30, 30])))
        for _ in range(5):
            h1.step(7)
            h2.step(3)
        h1.run()
        h2.run()
        b1, b2 = bodies(h1.records()), bodies(h2.records())
        assert b1["length"].tolist() == [10] * 4
        assert b2["length"].tolist() == [30] * 2


def test_rebuild_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lib = harness_build.build_library(STANDIN, TOP)
    mtime = lib.stat().st_mtime_ns

    def no_build(*args: object) -> None:
        raise AssertionError("the harness was rebuilt")

    monkeypatch.setattr(harness_build, "_build", no_build)
    with Harness(STANDIN, TOP) as h:
        assert h.library == lib
    assert lib.stat().st_mtime_ns == mtime
    # The key follows the Verilog's content, not its path.
    copy = tmp_path / "copy.v"
    copy.write_bytes(STANDIN.read_bytes())
    key = harness_build.library_key([STANDIN], TOP, False, True)
    assert harness_build.library_key([copy], TOP, False, True) == key
    copy.write_bytes(STANDIN.read_bytes() + b"// changed\n")
    assert harness_build.library_key([copy], TOP, False, True) != key
    assert harness_build.library_key([STANDIN], TOP, True, False) != key
    assert harness_build.library_key([STANDIN], TOP, False, False) != key


def test_trace_written(tmp_path: Path) -> None:
    path = tmp_path / "wave.fst"
    with Harness(STANDIN, TOP, trace=path) as h:
        assert not h.registered_inputs  # a trace shows the inputs where the design sees them
        h.push_frames(0, [bytes(range(40))])
        h.run()
        assert len(h.records()) == 1
    data = path.read_bytes()
    assert len(data) > 200 and data[0] == 0  # an FST file opens with its header block (0)


def scripted_session(h: Harness, seed: int) -> list:
    """Everything observable from a session that mixes every call that runs cycles."""
    rng = np.random.default_rng(seed)
    seen: list = []
    h.c2h_ready(0.6, seed=seed)
    for _ in range(6):
        for line in (0, 1):
            n = int(rng.integers(1, 30))
            h.push_frames(line, random_frames(rng, n),
                          not_before=h.cycle + rng.integers(0, 60, n),
                          idle=rng.integers(0, 3, n), error=rng.random(n) < 0.2)
        h.poke("standin_aux_in", int(rng.integers(0, 1 << 62)))
        h.step(int(rng.integers(0, 40)))
        seen.append((h.cycle, h.peek("standin_aux_out"), h.peek("m_axis_c2h_tvalid"),
                     h.peek("m_axis_c2h_tdata")))
        h.axil_write(REG_SCRATCH, int(rng.integers(0, 1 << 32)), w_delay=int(rng.integers(-2, 3)))
        seen.append((h.axil_read(REG_AUX), h.axil_read(REG_CYCLE_LO), h.axil_read(REG_SCRATCH)))
        seen.append(h.run(max_cycles=int(rng.integers(50, 400))))
    seen.append(h.run())
    records, cycles = h.records_with_cycles()
    seen += [records.tobytes(), cycles.tolist()]
    for line in (0, 1):
        seen += [h.frame_start_cycles(line).tolist(), h.line_stats(line)]
    seen.append([h.axil_read(a) for a in (REG_GENERATED, REG_DROPPED, *REG_LINE)])
    return seen


def test_registered_inputs_match_plain_build() -> None:
    """One evaluation per cycle (the default) changes nothing observable, between calls too."""
    with (Harness(STANDIN, TOP) as registered,
          Harness(STANDIN, TOP, registered_inputs=False) as plain):
        assert registered.registered_inputs and not plain.registered_inputs
        assert registered.library != plain.library
        for seed in (1, 2):
            assert scripted_session(registered, seed) == scripted_session(plain, seed), seed


# Outputs that are functions of the same cycle's inputs (Mealy): AXI-Lite readies from the
# valids, and a C2H record combinational from line A's last beat, stamped with a cycle count.
MEALY = """
module wirespeed_core (
    input clk, input rst,
    input [63:0] s_axis_rx_a_tdata, input [7:0] s_axis_rx_a_tkeep,
    input s_axis_rx_a_tvalid, input s_axis_rx_a_tlast, input s_axis_rx_a_tuser,
    input [63:0] s_axis_rx_b_tdata, input [7:0] s_axis_rx_b_tkeep,
    input s_axis_rx_b_tvalid, input s_axis_rx_b_tlast, input s_axis_rx_b_tuser,
    output [511:0] m_axis_c2h_tdata, output m_axis_c2h_tvalid, input m_axis_c2h_tready,
    output m_axis_c2h_tlast,
    input [15:0] s_axil_awaddr, input s_axil_awvalid, output s_axil_awready,
    input [31:0] s_axil_wdata, input [3:0] s_axil_wstrb, input s_axil_wvalid,
    output s_axil_wready, output [1:0] s_axil_bresp, output s_axil_bvalid, input s_axil_bready,
    input [15:0] s_axil_araddr, input s_axil_arvalid, output s_axil_arready,
    output [31:0] s_axil_rdata, output [1:0] s_axil_rresp, output s_axil_rvalid,
    input s_axil_rready
);
    reg [31:0] count, scratch, rdata;
    reg bvalid, rvalid;
    assign s_axil_awready = s_axil_awvalid & s_axil_wvalid & ~bvalid;
    assign s_axil_wready = s_axil_awready;
    assign s_axil_arready = ~rvalid;
    always @(posedge clk) begin
        count <= rst ? 32'd0 : count + 32'd1;
        if (rst) begin
            bvalid <= 1'b0;
            rvalid <= 1'b0;
        end else begin
            if (s_axil_awready) begin
                scratch <= s_axil_wdata ^ {16'd0, s_axil_awaddr};
                bvalid <= 1'b1;
            end else if (s_axil_bready) bvalid <= 1'b0;
            if (s_axil_arvalid & s_axil_arready) begin
                rdata <= scratch ^ count ^ {16'd0, s_axil_araddr};
                rvalid <= 1'b1;
            end else if (s_axil_rready) rvalid <= 1'b0;
        end
    end
    assign s_axil_bvalid = bvalid;
    assign s_axil_rvalid = rvalid;
    assign s_axil_rdata = rdata;
    assign s_axil_bresp = 2'd0;
    assign s_axil_rresp = 2'd0;
    assign m_axis_c2h_tvalid = s_axis_rx_a_tvalid & s_axis_rx_a_tlast;
    assign m_axis_c2h_tdata = {s_axis_rx_b_tdata, s_axis_rx_b_tkeep, s_axis_rx_b_tvalid,
                               s_axis_rx_a_tuser, s_axis_rx_a_tkeep, s_axis_rx_a_tdata, count};
    assign m_axis_c2h_tlast = 1'b1;
endmodule
"""


def test_registered_inputs_mealy_outputs(tmp_path: Path) -> None:
    """Outputs combinational from inputs are sampled in the cycle of those inputs."""
    source = tmp_path / "mealy.v"
    source.write_text(MEALY)
    seen = []
    for registered in (True, False):
        rng = np.random.default_rng(5)
        with Harness(source, TOP, registered_inputs=registered) as h:
            assert h.registered_inputs == registered
            for line in (0, 1):
                n = 40
                h.push_frames(line, random_frames(rng, n), idle=rng.integers(0, 3, n),
                              error=rng.random(n) < 0.3)
            reads = []
            for w_delay in (-2, 0, 3):
                h.step(int(rng.integers(1, 30)))
                h.axil_write(0x40, int(rng.integers(0, 1 << 32)), w_delay=w_delay)
                reads.append((h.cycle, h.axil_read(0x44)))
            h.run()
            records, cycles = h.records_with_cycles()
            assert len(records) == 40  # one per line-A frame, in its last beat
            count = np.frombuffer(records.tobytes(), dtype="<u4").reshape(-1, 16)[:, 0]
            assert len(set((count - cycles).tolist())) == 1  # stamped in the cycle it left
            seen.append((reads, records.tobytes(), cycles.tolist(), h.frame_start_cycles(1)
                         .tolist()))
    assert seen[0] == seen[1]


# Designs a registered-inputs wrapper would change: the inputs would reach these events or
# this use of clk as data half a cycle early (the outputs are sampled with clk high).
@pytest.mark.parametrize("body, reason", [
    ("always @(negedge clk) q <= a;", "events other than posedge clk"),
    ("always @(posedge clk or posedge rst) q <= rst ? 1'b0 : a;",
     "events other than posedge clk"),
    ("always @(posedge clk) q <= a; assign y = a & clk;", "uses clk as data"),
    ("always @(posedge clk) begin q <= a; if (a) $finish; end", "can stop itself"),
    ("always @(posedge clk) q <= a; assign y = a;", None),
])
def test_registered_inputs_blocker(tmp_path: Path, body: str, reason: str | None) -> None:
    source = tmp_path / "t.v"
    source.write_text("module t(input clk, input rst, input a, output reg q, output y);\n"
                      f"{body}\nendmodule\n")
    tc = harness_build.toolchain()
    subprocess.run([str(tc.verilator), *harness_build.VERILATOR_FLAGS, "--top-module", "t",
                    "--Mdir", str(tmp_path / "obj"), str(source)],
                   env=tc.env, check=True, capture_output=True)
    ports = harness_build.parse_ports((tmp_path / "obj" / "Vdut.h").read_text())
    blocker = harness_build.registered_inputs_blocker(tmp_path / "obj", ports)
    if reason is None:
        assert blocker is None
    else:
        assert blocker is not None and reason in blocker


def test_missing_ports_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.v"
    bad.write_text("module wirespeed_core(input clk, input rst, input [7:0] s_axil_wdata);\n"
                   "endmodule\n")
    with pytest.raises(HarnessBuildError) as info:
        Harness(bad, TOP, build_dir=tmp_path / "build")
    message = str(info.value)
    assert "s_axis_rx_a_tdata: missing" in message
    assert "s_axil_wdata: is in [7:0], expected in [31:0]" in message


# A core that breaks the rules on demand (input `mode`), to prove the checks fire.
MISBEHAVING = """
module wirespeed_core (
    input clk, input rst,
    input [63:0] s_axis_rx_a_tdata, input [7:0] s_axis_rx_a_tkeep,
    input s_axis_rx_a_tvalid, input s_axis_rx_a_tlast, input s_axis_rx_a_tuser,
    input [63:0] s_axis_rx_b_tdata, input [7:0] s_axis_rx_b_tkeep,
    input s_axis_rx_b_tvalid, input s_axis_rx_b_tlast, input s_axis_rx_b_tuser,
    output [511:0] m_axis_c2h_tdata, output m_axis_c2h_tvalid, input m_axis_c2h_tready,
    output m_axis_c2h_tlast,
    input [15:0] s_axil_awaddr, input s_axil_awvalid, output s_axil_awready,
    input [31:0] s_axil_wdata, input [3:0] s_axil_wstrb, input s_axil_wvalid,
    output s_axil_wready, output [1:0] s_axil_bresp, output s_axil_bvalid, input s_axil_bready,
    input [15:0] s_axil_araddr, input s_axil_arvalid, output s_axil_arready,
    output [31:0] s_axil_rdata, output [1:0] s_axil_rresp, output s_axil_rvalid,
    input s_axil_rready,
    input [2:0] mode
);
    reg [31:0] count;
    always @(posedge clk) begin
        count <= rst ? 32'd0 : count + 32'd1;
        if (!rst && mode == 3'd5) $finish;
        if (!rst && mode == 3'd6) $fatal(1, "misbehaving core gave up");
    end
    assign m_axis_c2h_tvalid = mode == 3'd1 ? count[0] : (mode == 3'd2 || mode == 3'd3);
    assign m_axis_c2h_tdata = {480'd0, count};
    assign m_axis_c2h_tlast = mode != 3'd3;
    assign s_axil_awready = 1'b1;
    assign s_axil_wready = 1'b1;
    assign s_axil_arready = 1'b1;
    assign s_axil_bvalid = mode == 3'd4;
    assign s_axil_bresp = 2'd0;
    assign s_axil_rvalid = 1'b0;
    assign s_axil_rdata = 32'd0;
    assign s_axil_rresp = 2'd0;
endmodule
"""


@pytest.fixture(scope="module")
def misbehaving(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("misbehaving") / "misbehaving.v"
    path.write_text(MISBEHAVING)
    return path


@pytest.mark.parametrize("mode, message", [
    (1, "tvalid fell"), (2, "changed while a beat waited"), (3, "without tlast"),
    (4, "s_axil_bvalid without a write"),
])
def test_protocol_violations_detected(misbehaving: Path, mode: int, message: str) -> None:
    with Harness(misbehaving, TOP, tie={"mode": mode}) as h:
        h.c2h_ready(0.0 if mode in (1, 2) else 1.0)
        with pytest.raises(ProtocolError, match=message):
            h.step(4)


def test_axil_timeout(misbehaving: Path) -> None:
    with Harness(misbehaving, TOP) as h:
        start = h.cycle
        with pytest.raises(AxiLiteTimeout):
            h.axil_read(0, timeout=50)
        assert h.cycle == start + 50
        h.step(3)  # the abandoned transaction is deasserted, nothing else is reported


def test_finish_and_fatal_raise(misbehaving: Path) -> None:
    with Harness(misbehaving, TOP) as h:
        assert not h.registered_inputs  # it could stop one cycle late: built plain
        h.poke("mode", 5)
        with pytest.raises(SimulationError, match=r"\$finish"):
            h.step(10)
    with Harness(misbehaving, TOP) as h:
        h.poke("mode", 6)
        # Verilator reports $fatal as a $stop at its source line (its text goes to stdout).
        with pytest.raises(SimulationError, match=r"misbehaving\.v:\d+: Verilog \$stop"):
            h.run(max_cycles=10)
        with pytest.raises(SimulationError):  # the model is dead after a fatal
            h.step()

