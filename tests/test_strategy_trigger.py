"""The trigger engine (hw/strategy/trigger.py) against its model (sim/model/trigger.py).

Random BBO updates (empty sides, stale books, prices around each trigger's threshold) and
random host arms and disarms, including in the cycle of an update and back-to-back updates
of one slot: every order must come out in the same cycle with the same fields.
"""

from __future__ import annotations

import os
import random

from amaranth.sim import Simulator

from hw.risk.params import RiskParams, Side
from hw.strategy.trigger import TriggerEngine
from sim.model.trigger import Trigger, TriggerModel

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
P = RiskParams(slots=4, tick=100, token_bits=24)
FIELDS = ("kind", "source", "token", "slot", "side", "shares", "price", "tif")


def _stream(rng: random.Random, cycles: int):
    for _ in range(cycles):
        c = {}
        if rng.random() < 0.5:
            s = rng.randrange(P.slots)
            c["bbo"] = dict(slot=s, bid_px=rng.choice([0, 9_900, 10_000, 10_100]),
                            ask_px=rng.choice([0, 9_900, 10_000, 10_100, 10_200]),
                            stale=int(rng.random() < 0.1))
        r = rng.random()
        if r < 0.15:
            c["arm"] = (rng.randrange(P.slots),
                        Trigger(rng.choice(list(Side)), rng.choice([9_900, 10_000, 10_100]),
                                rng.choice([1, 100, 500]), rng.choice([0, 99_998])))
        elif r < 0.2:
            c["disarm"] = rng.randrange(P.slots)
        yield c


def test_random_updates_against_model() -> None:
    print(f"seed {SEED} (rerun with WIRESPEED_SEED={SEED})")
    rng = random.Random(SEED)
    dut = TriggerEngine(P)
    model = TriggerModel(P.slots)
    problems: list[str] = []
    fired = [0]

    async def bench(ctx):
        for t, c in enumerate(_stream(rng, 4000)):
            b = c.get("bbo")
            ctx.set(dut.bbo.valid, b is not None)
            if b:
                for k, v in b.items():
                    ctx.set(getattr(dut.bbo.payload, k), v)
            arm, dis = c.get("arm"), c.get("disarm")
            ctx.set(dut.arm, arm is not None)
            ctx.set(dut.disarm, dis is not None)
            if arm is not None:
                ctx.set(dut.cfg_slot, arm[0])
                for k in ("side", "price", "shares", "tif"):
                    ctx.set(getattr(dut.cfg, k), getattr(arm[1], k))
            elif dis is not None:
                ctx.set(dut.cfg_slot, dis)
            want = model.step(bbo=b, arm=arm, disarm=dis)
            got = None
            if ctx.get(dut.orders.valid):
                got = {k: ctx.get(getattr(dut.orders.payload, k)) for k in FIELDS}
                fired[0] += 1
            want = None if want is None else {k: int(v) for k, v in want.items()}
            if got != want and len(problems) < 10:
                problems.append(f"cycle {t}: engine {got}, model {want}")
            await ctx.tick()
        if ctx.get(dut.armed) != sum(1 << s for s, a in enumerate(model.armed) if a):
            problems.append(f"armed bits {ctx.get(dut.armed):#x}, model {model.armed}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert not problems, f"{WHERE}\n" + "\n".join(problems)
    assert fired[0] > 50, f"{WHERE}: only {fired[0]} triggers fired; the stream tests little"
