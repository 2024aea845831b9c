"""The gate in Verilator against the reference model: generate, run, compare.

:class:`GateBench` ties the pieces together for one :class:`~hw.risk.params.RiskParams`:

1. :meth:`GateBench.reference` steps :class:`~sim.model.risk.RiskModel` through
   ``tests.risk_streams.cycles`` (or any stream factory with its signature) — the generator
   reads the model's state as it goes, so each cycle is stepped as soon as it is generated —
   and writes each cycle's record to the stimulus file, keeping the model's verdicts
   (cycle, encoded verdict) and its final state: :class:`Expected`.
2. :meth:`GateBench.run` runs the driver on that file: :class:`Observed`, the gate's
   verdicts and final state, read back with NumPy.
3. :func:`compare` checks both, verdict for verdict (cycle, order, reason, as the exact bits
   of the gate's verdict port) and the final state, and describes the first differences.

The gate's verdicts are compared as bytes, in one NumPy comparison; only differences are
decoded. Because a passing comparison means the gate's verdicts *are* the model's, anything
checked on the model's verdicts while generating (``observe``: the test's auditor) holds for
the gate's.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hw.risk.params import Reason, RiskParams
from sim.harness.build import HarnessError
from sim.harness.riskbench.builder import Driver, build_driver
from sim.harness.riskbench.stimulus import (
    BenchLayout,
    CycleEncoder,
    StimulusWriter,
    VerdictCodec,
)
from sim.harness.riskbench.top import TOP_NAME, bench_verilog
from sim.model.risk import Cycle, RiskModel

__all__ = ["Expected", "Observed", "GateBench", "compare", "final_state"]

#: ``stream(params, n_orders, seed, model=model)``: tests.risk_streams.cycles' signature.
StreamFactory = Callable[..., Iterator[Cycle]]
#: ``observe(t, cycle, verdict)``, called after the model stepped on cycle ``t``.
Observer = Callable[[int, Cycle, tuple[dict, Reason] | None], None]

#: The final state, in the same shape for gate and model.
FINAL_GLOBALS = ("open_orders", "bucket", "last_token_host", "last_token_trigger", "bank",
                 "store_error", "busy", "gap_pending")


class DriverError(HarnessError):
    """The driver exited with an error (its message is included)."""


@dataclass
class Expected:
    """The model's side of a run."""

    cycles: int
    verdict_cycles: np.ndarray          #: uint64, one per verdict
    verdict_payload: np.ndarray         #: uint8 (verdicts × verdict port bytes)
    final: dict
    reasons: collections.Counter
    seconds: float                      #: generation + model + encoding, wall clock


@dataclass
class Observed:
    """The gate's side of a run."""

    cycles: int
    verdict_cycles: np.ndarray
    verdict_payload: np.ndarray
    final: dict
    seconds: float                      #: the driver process, wall clock
    loop_seconds: float                 #: its cycle loop alone (reported by the driver)


def final_state(model: RiskModel) -> dict:
    """The model's host-visible state, shaped like the gate's (see :meth:`GateBench.run`)."""
    st = model.st
    return {
        "slots": [(st.position[s], st.open_buy[s], st.open_sell[s])
                  for s in range(model.p.slots)],
        "open_orders": st.open_orders, "bucket": st.bucket,
        "last_token_host": st.last_token[0], "last_token_trigger": st.last_token[1],
        "bank": model.bank, "store_error": int(model.store_error), "busy": int(model.busy),
        "gap_pending": int(st.gap),
    }


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass
class GateBench:
    """A built driver and the codecs that go with it; ``params`` are the model's (and the
    stream's). Make one with :meth:`build`."""

    params: RiskParams
    driver: Driver
    layout: BenchLayout = field(init=False)
    encoder: CycleEncoder = field(init=False)
    codec: VerdictCodec = field(init=False)

    def __post_init__(self):
        self.layout = BenchLayout(self.driver.ports)
        self.encoder = CycleEncoder(self.params, self.layout)
        self.codec = VerdictCodec(self.params, self.layout.outputs["verdict"].port)

    @classmethod
    def build(cls, params: RiskParams, *, gate_params: RiskParams | None = None,
              build_dir: str | os.PathLike[str] | None = None) -> GateBench:
        """Convert the wrapper, build (or find in the cache) its driver.

        ``gate_params`` builds the gate with other parameters than the model — only a
        different ``tick``, which keeps every port width — so that a test can show that a
        wrong gate is caught."""
        gate = gate_params or params
        if replace(gate, tick=params.tick) != params:
            raise ValueError("gate_params may differ from params only in tick (same ports)")
        verilog = bench_verilog(gate)
        return cls(params, build_driver(verilog, TOP_NAME, build_dir=build_dir))

    # -- the model's side -----------------------------------------------------------------

    def reference(self, stream: StreamFactory, n_orders: int, seed: int,
                  stimulus: str | os.PathLike[str], *,
                  observe: Observer | None = None) -> Expected:
        """Generate and step the model, writing the stimulus file; see the module docstring."""
        t0 = time.perf_counter()
        model = RiskModel(self.params)
        encode, codec = self.encoder.encode, self.codec
        v_cycles: list[int] = []
        v_payload: list[bytes] = []
        reasons: collections.Counter = collections.Counter()
        with StimulusWriter(stimulus, self.encoder) as w:
            write = w.write_record
            for t, c in enumerate(stream(self.params, n_orders, seed, model=model)):
                want = model.step(c)
                write(encode(c))
                if want is not None:
                    v_cycles.append(t)
                    v_payload.append(codec.encode(*want))
                    reasons[want[1]] += 1
                if observe is not None:
                    observe(t, c, want)
            n = w.records
        payload = np.frombuffer(b"".join(v_payload), dtype=np.uint8).reshape(-1, codec.nbytes)
        return Expected(n, np.array(v_cycles, dtype=np.uint64), payload, final_state(model),
                        reasons, time.perf_counter() - t0)

    # -- the gate's side ------------------------------------------------------------------

    def run(self, stimulus: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> Observed:
        """Run the driver on ``stimulus``; results land in ``workdir`` (verdicts.bin,
        final.bin). The final state comes from the snapshots: the first (right after the
        last cycle) for the global outputs, one per slot through ``view_slot`` for the
        per-slot ones — globals are not read after the view cycles, where the throttle
        bucket could still refill."""
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        verdicts, final = work / "verdicts.bin", work / "final.bin"
        slots = self.params.slots
        cmd = [str(self.driver.exe), "run", str(stimulus), str(verdicts), str(final),
               "verdict_valid", "verdict", "view_slot", str(slots)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise DriverError(f"{' '.join(cmd)}: exit {done.returncode}\n"
                              f"{done.stderr.strip()}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        got = np.fromfile(verdicts, dtype=self.codec.dtype)
        if len(got) != summary["verdicts"]:
            raise DriverError(f"{verdicts}: {len(got)} verdicts, driver said "
                              f"{summary['verdicts']}")
        raw = final.read_bytes()
        size = self.layout.snapshot_bytes
        if len(raw) != size * (slots + 1):
            raise DriverError(f"{final}: {len(raw)} bytes, want {size * (slots + 1)}")
        snaps = [self.layout.decode_snapshot(raw[i * size:(i + 1) * size])
                 for i in range(slots + 1)]
        pb = self.params.position_bits
        state = {"slots": [(_signed(s["view_position"], pb), s["view_open_buy"],
                            s["view_open_sell"]) for s in snaps[1:]]}
        state.update({k: snaps[0][k] for k in FINAL_GLOBALS})
        return Observed(summary["cycles"], got["cycle"], got["payload"], state, seconds,
                        summary["seconds"])

    def gate_reasons(self, observed: Observed) -> collections.Counter:
        """How often the gate gave each reason (unknown codes as ints)."""
        counts = np.bincount(self.codec.reasons(observed.verdict_payload).astype(np.int64))
        known = {int(r) for r in Reason}
        return collections.Counter({(Reason(r) if r in known else r): int(k)
                                    for r, k in enumerate(counts) if k})


def compare(bench: GateBench, want: Expected, got: Observed, limit: int = 10) -> list[str]:
    """Differences between model and gate, first verdict differences first (at most
    ``limit`` of them, the first one naming the first differing cycle), then the final
    state. Empty when they agree."""
    out: list[str] = []
    if got.cycles != want.cycles:
        out.append(f"the driver ran {got.cycles} cycles, the stimulus has {want.cycles}")
    wc, gc = want.verdict_cycles, got.verdict_cycles
    n = min(len(wc), len(gc))
    bad = (wc[:n] != gc[:n]) | (want.verdict_payload[:n] != got.verdict_payload[:n]).any(axis=1)
    idx = np.flatnonzero(bad)
    first: int | None = None
    if len(idx):
        first = min(int(wc[idx[0]]), int(gc[idx[0]]))
    elif len(wc) != len(gc):        # one side has verdicts the other lacks, at the end
        first = int(wc[n]) if len(wc) > n else int(gc[n])
    if first is not None:
        out.append(f"{len(idx)} of {n} verdicts differ, {len(gc)} from the gate, {len(wc)} "
                   f"from the model; first differing cycle {first}")
    for i in idx[:limit]:
        g_order, g_reason = bench.codec.decode(got.verdict_payload[i])
        w_order, w_reason = bench.codec.decode(want.verdict_payload[i])
        out.append(f"verdict #{i}: gate cycle {int(gc[i])} {_reason_name(g_reason)} "
                   f"{g_order}; model cycle {int(wc[i])} {_reason_name(w_reason)} {w_order}")
    for key in ("slots", *FINAL_GLOBALS):
        if got.final[key] != want.final[key]:
            out.append(f"final {key}: gate {got.final[key]}, model {want.final[key]}")
    return out


def _reason_name(r: Reason | int) -> str:
    return r.name if isinstance(r, Reason) else f"reason {r}"
