"""The order encoder (hw/oe/encoder.py): accepted verdicts to SoupBinTCP/OUCH bytes on TX.

Random verdicts (accepted and rejected, new orders and cancels, both sources, back to back
and sparse) with random TX backpressure: the byte stream on ``tx`` must be exactly the
packets proto/soupbintcp.py and proto/ouch.py build for the accepted orders, in order, with
``last`` on each packet's final beat and ``keep`` contiguous; the decoded messages carry the
right token, side, symbol, price and firm.
"""

from __future__ import annotations

import os
import random

from amaranth.sim import Simulator

from hw.oe.encoder import FIXED, OrderEncoder
from hw.oe.tokens import format_token
from hw.risk.params import OrderKind, Reason, RiskParams, Side, Source
from proto import ouch
from proto import soupbintcp as soup

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
P = RiskParams(slots=4, tick=100, token_bits=48)
SYMBOLS = ["AAPL", "MSFT", "ZVZZT", "QQQ"]
FIRM = "WSPD"


def expected_packet(o: dict) -> bytes:
    token = format_token(o["source"], o["token"])
    if o["kind"] == OrderKind.CANCEL:
        msg = ouch.encode("X", order_token=token, shares=o["shares"])
    else:
        msg = ouch.encode("O", order_token=token,
                          buy_sell_indicator="S" if o["side"] == Side.SELL else "B",
                          shares=o["shares"], stock=SYMBOLS[o["slot"]], price=o["price"],
                          time_in_force=o["tif"], firm=FIRM, **FIXED)
    return soup.pack_packet("U", msg)


def test_random_verdicts_against_protocol_layouts() -> None:
    print(f"seed {SEED} (rerun with WIRESPEED_SEED={SEED})")
    rng = random.Random(SEED)
    dut = OrderEncoder(P, depth=16)
    sent: list[dict] = []
    beats: list[tuple[int, int, int]] = []
    problems: list[str] = []

    async def producer(ctx):
        ctx.set(dut.firm, int.from_bytes(FIRM.encode(), "big"))
        for s, name in enumerate(SYMBOLS):
            ctx.set(dut.name_slot, s)
            ctx.set(dut.name_value, int.from_bytes(name.encode().ljust(8), "big"))
            ctx.set(dut.name_write, 1)
            await ctx.tick()
        ctx.set(dut.name_write, 0)
        tokens = [0, 0]
        for _ in range(300):
            # Bursts as fast as the FIFO's space allows, then gaps.
            if rng.random() < 0.3:
                await ctx.tick().repeat(rng.randrange(1, 30))
            if ctx.get(dut.space) < 2:
                ctx.set(dut.verdicts.valid, 0)
                await ctx.tick()
                continue
            src = rng.choice(list(Source))
            tokens[src] += rng.randrange(1, 1 << 20)
            o = dict(kind=OrderKind.CANCEL if rng.random() < 0.2 else OrderKind.NEW,
                     source=src, token=tokens[src] % (1 << 48), slot=rng.randrange(P.slots),
                     side=rng.choice(list(Side)), shares=rng.randrange(0, 1 << 32),
                     price=rng.randrange(1, 1 << 32), tif=rng.choice([0, 99_998, 99_999]))
            reason = Reason.ACCEPTED if rng.random() < 0.7 else rng.choice(list(Reason)[1:])
            ctx.set(dut.verdicts.valid, 1)
            for k, v in o.items():
                ctx.set(getattr(dut.verdicts.payload.order, k), v)
            ctx.set(dut.verdicts.payload.reason, reason)
            if reason == Reason.ACCEPTED:
                sent.append(o)
            await ctx.tick()
            ctx.set(dut.verdicts.valid, 0)
        # Drain: until the queue is empty and the last packet has left.
        idle = 0
        while idle < 16:
            busy = ctx.get(dut.space) < 16 or ctx.get(dut.tx.valid)
            idle = 0 if busy else idle + 1
            await ctx.tick()

    async def consumer(ctx):
        cycle = 0
        while True:
            ready = rng.random() < 0.7
            ctx.set(dut.tx.ready, ready)
            await ctx.delay(1e-9)
            if ready and ctx.get(dut.tx.valid):
                beats.append((ctx.get(dut.tx.payload.data), ctx.get(dut.tx.payload.keep),
                              ctx.get(dut.tx.payload.last)))
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.inc_overflow):
                problems.append(f"cycle {cycle}: FIFO overflow")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.run()

    packets, cur = [], b""
    for data_, keep, last in beats:
        n = bin(keep).count("1")
        if keep != (1 << n) - 1:
            problems.append(f"keep {keep:#x} not contiguous")
        cur += data_.to_bytes(8, "little")[:n]
        if last:
            packets.append(cur)
            cur = b""
    assert not problems, f"{WHERE}\n" + "\n".join(problems[:10])
    assert not cur, f"{WHERE}: a packet without last: {cur.hex()}"
    assert len(packets) == len(sent), f"{WHERE}: {len(packets)} packets for {len(sent)} orders"
    for i, (pkt, o) in enumerate(zip(packets, sent, strict=True)):
        want = expected_packet(o)
        assert pkt == want, f"{WHERE}: packet {i} for {o}\n got  {pkt.hex()}\n want {want.hex()}"
        # Decoded by the SoupBinTCP deframer and the OUCH decoder, as the exchange would.
        (ptype, payload), = soup.Deframer().feed(pkt)
        msg = ouch.decode(payload, "inbound")
        assert ptype == "U" and msg["order_token"] == format_token(o["source"], o["token"])
    assert len(sent) > 100, f"{WHERE}: only {len(sent)} orders sent"


def test_first_beat_latency_and_gap_between_packets() -> None:
    """The tick-to-trade part of the encoder: an accepted verdict into an idle encoder has its
    first beat on TX ``LATENCY`` cycles later (the FIFO is bypassed); one accepted while a
    packet is being sent waits in the FIFO and starts ``GAP`` cycles after that packet's last
    beat. TX is always ready, so the cycle counts are exact."""
    from hw.oe.encoder import GAP, LATENCY
    dut = OrderEncoder(P, depth=16)
    order = dict(kind=OrderKind.NEW, source=Source.TRIGGER, token=7, slot=1, side=Side.BUY,
                 shares=100, price=12_300, tif=0)
    starts: list[int] = []
    lasts: list[int] = []
    present: list[int] = []

    async def bench(ctx):
        ctx.set(dut.tx.ready, 1)
        ctx.set(dut.firm, int.from_bytes(FIRM.encode(), "big"))
        await ctx.tick().repeat(4)
        cycle, first = 4, True
        for k, v in order.items():
            ctx.set(getattr(dut.verdicts.payload.order, k), v)
        ctx.set(dut.verdicts.payload.reason, Reason.ACCEPTED)
        for _ in range(40):
            # Two verdicts: one into the idle encoder, one two cycles later (mid-packet).
            valid = cycle in (10, 12)
            ctx.set(dut.verdicts.valid, valid)
            if valid:
                present.append(cycle)
                ctx.set(dut.verdicts.payload.order.token, 7 + cycle)
            await ctx.delay(1e-9)
            if ctx.get(dut.tx.valid):
                if first:
                    starts.append(cycle)
                first = bool(ctx.get(dut.tx.payload.last))
                if first:
                    lasts.append(cycle)
            await ctx.tick()
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(starts) == 2 and len(lasts) == 2, (starts, lasts)
    assert starts[0] == present[0] + LATENCY, (present, starts)
    assert starts[1] == lasts[0] + 1 + GAP, (starts, lasts)
