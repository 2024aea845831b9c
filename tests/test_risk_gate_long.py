"""A million orders through the risk gate in Verilator, against the reference model.

The requirement: "A randomized run of at least 1M orders (trigger and host mixed) against
the reference risk model: verdicts identical, zero breaches." Amaranth's simulator
(``tests/test_risk_gate.py``, ~1,300 cycles/s) would need some twenty minutes of a core for
the run's 1.43 M cycles, so it uses :mod:`sim.harness.riskbench`: the gate Verilated behind
flat ports, a C++ loop applying one input record per cycle (~4 M cycles/s), and Python only
for the stream (:func:`tests.risk_streams.cycles`), the model and the comparison — every
verdict's cycle, order and reason, bit for bit, and the final positions, open shares, open
orders, bucket, tokens, bank, busy, gap and store_error. The auditor of the unit test checks
every verdict for breaches (kill switches, size, notional, disabled symbols against the
committed limits, egress room); it sees the model's verdicts as they are generated, which
are the gate's once the comparison passes.

The remaining tests show that the comparison can fail: a model verdict altered after the
fact, one input of one cycle altered behind the model's back (the gate must then reject an
order the model accepted, in exactly that cycle), and a gate built with another tick.

``WIRESPEED_SEED`` reruns a seed; ``WIRESPEED_RISK_ORDERS`` sets the long run's length
(default 1,000,000). The driver build is cached in ``build/riskbench/``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hw.risk.params import OrderKind, Reason, RiskParams
from sim.harness.riskbench import Expected, GateBench, compare
from sim.harness.riskbench.stimulus import patch_input
from sim.model.risk import Cycle
from tests.risk_streams import cycles
from tests.test_risk_gate import Auditor

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
SMALL = RiskParams(slots=4, tick=100, token_bits=24)
N_ORDERS = int(os.environ.get("WIRESPEED_RISK_ORDERS", 1_000_000))
#: Length of the short runs of the negative tests: long enough to reach every check.
SHORT = 20_000


def seeded(test: Callable[..., None]) -> Callable[..., None]:
    """Let any error of ``test`` (a driver failure, a value that does not fit its port) name
    the seed, as the assertions do."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs) -> None:
        try:
            test(*args, **kwargs)
        except (AssertionError, pytest.fail.Exception):
            raise
        except Exception as e:
            raise AssertionError(f"{WHERE}: {type(e).__name__}: {e}") from e
    return wrapper


@pytest.fixture(scope="module")
def bench() -> GateBench:
    return GateBench.build(SMALL)


class Audit:
    """Feeds the unit test's :class:`~tests.test_risk_gate.Auditor` as it is fed there:
    every cycle, then each verdict against the previous cycle's kill switches (the cycle
    that decided it)."""

    def __init__(self, slots: int):
        self.auditor = Auditor(slots)
        self.prev: Cycle | None = None

    def __call__(self, t: int, c: Cycle, verdict: tuple[dict, Reason] | None) -> None:
        self.auditor.cycle(t, c)
        if verdict is not None:
            self.auditor.verdict(t, verdict[0], verdict[1], self.prev)
        self.prev = c


def _short_run(bench: GateBench, tmp_path: Path, seed: int) -> tuple[Expected, Path]:
    stim = tmp_path / "stimulus.bin"
    return bench.reference(cycles, SHORT, seed, stim), stim


@pytest.mark.slow
@seeded
def test_million_orders_against_model(bench: GateBench, tmp_path: Path) -> None:
    print(f"seed {SEED} (rerun with WIRESPEED_SEED={SEED}); {N_ORDERS} orders")
    stim = tmp_path / "stimulus.bin"
    audit = Audit(SMALL.slots)
    try:
        want = bench.reference(cycles, N_ORDERS, SEED, stim, observe=audit)
        got = bench.run(stim, tmp_path)
    finally:    # ~140 MB and ~28 MB (loaded by now); the seed regenerates both
        stim.unlink(missing_ok=True)
        (tmp_path / "verdicts.bin").unlink(missing_ok=True)
    t0 = time.perf_counter()
    mismatches = compare(bench, want, got)
    reasons = bench.gate_reasons(got)
    t_cmp = time.perf_counter() - t0
    print(f"{want.cycles} cycles: model + stream + encoding {want.seconds:.1f} s; "
          f"Verilator driver {got.seconds:.2f} s ({got.loop_seconds:.2f} s in its loop, "
          f"{want.cycles / got.loop_seconds / 1e6:.1f} M cycles/s); compare {t_cmp:.2f} s")
    print(f"reasons: {dict(sorted(reasons.items()))}")

    assert not mismatches, f"{WHERE}\n" + "\n".join(mismatches)
    breaches = audit.auditor.breaches
    assert not breaches, f"{WHERE}: {len(breaches)} breaches\n" + "\n".join(breaches[:10])
    assert reasons == want.reasons, f"{WHERE}: reasons gate {reasons}, model {want.reasons}"
    missing = set(Reason) - set(reasons)
    assert not missing, f"{WHERE}: reasons never produced: {sorted(missing)}; {reasons}"
    assert sum(reasons.values()) == N_ORDERS, f"{WHERE}: {sum(reasons.values())} verdicts"


@seeded
def test_detects_altered_model_verdict(bench: GateBench, tmp_path: Path) -> None:
    """The same run passes, then fails at the cycle of one altered verdict, and again when a
    verdict is moved by one cycle."""
    want, stim = _short_run(bench, tmp_path, SEED)
    got = bench.run(stim, tmp_path)
    assert not compare(bench, want, got), WHERE
    rng = random.Random(SEED)
    i = rng.randrange(len(want.verdict_cycles))
    cycle = int(want.verdict_cycles[i])
    order, reason = bench.codec.decode(want.verdict_payload[i])
    other = rng.choice([r for r in Reason if r != reason])

    altered = dataclasses.replace(want, verdict_payload=want.verdict_payload.copy())
    altered.verdict_payload[i] = np.frombuffer(bench.codec.encode(order, other), np.uint8)
    found = compare(bench, altered, got)
    assert found and found[0].startswith("1 of ") \
        and found[0].endswith(f"first differing cycle {cycle}"), \
        f"{WHERE}: verdict #{i} -> {other!r}: {found}"

    moved = dataclasses.replace(want, verdict_cycles=want.verdict_cycles.copy())
    moved.verdict_cycles[i] += 1
    found = compare(bench, moved, got)
    assert found and found[0].endswith(f"first differing cycle {cycle}"), f"{WHERE}: {found}"


@seeded
def test_detects_altered_stimulus(bench: GateBench, tmp_path: Path) -> None:
    """The kill switch raised in one cycle the model did not see: the gate must reject the
    order the model accepted in the next cycle's verdict, and that must be the first
    difference — the driver applies every record, in its cycle."""
    want, stim = _short_run(bench, tmp_path, SEED)
    rng = random.Random(SEED)
    start = rng.randrange(len(want.verdict_cycles) // 2)
    for i in range(start, len(want.verdict_cycles)):
        order, reason = bench.codec.decode(want.verdict_payload[i])
        if reason == Reason.ACCEPTED and order["kind"] == OrderKind.NEW:
            break
    else:
        pytest.fail(f"{WHERE}: no accepted new order after verdict #{start}")
    cycle = int(want.verdict_cycles[i])
    patch_input(stim, bench.layout, cycle - 1, "kill", 1)   # S3 of that order: cycle - 1
    got = bench.run(stim, tmp_path)
    found = compare(bench, want, got)
    assert found and found[0].endswith(f"first differing cycle {cycle}"), f"{WHERE}: {found}"
    assert bench.codec.decode(got.verdict_payload[i]) == (order, Reason.KILL), WHERE


@seeded
def test_detects_mutated_gate(tmp_path: Path) -> None:
    """A gate built with 1.5 times the model's collar tick accepts prices the model rejects
    for PRICE_COLLAR: the first difference must be such a verdict (later ones may differ for
    any reason, as the state diverges)."""
    wrong = GateBench.build(SMALL, gate_params=dataclasses.replace(SMALL, tick=150))
    want, stim = _short_run(wrong, tmp_path, SEED)
    got = wrong.run(stim, tmp_path)
    found = compare(wrong, want, got)
    assert found, f"{WHERE}: a gate with tick 150 agreed with the tick-100 model"
    i = np.flatnonzero((want.verdict_payload != got.verdict_payload).any(axis=1))[0]
    assert wrong.codec.decode(want.verdict_payload[i])[1] == Reason.PRICE_COLLAR, \
        f"{WHERE}: first difference is not a collar rejection: {found[:2]}"
