"""The SoupBinTCP + OUCH parser (``hw/oe/parser.py``) against the reference model.

Byte streams come from the exchange simulator driven by real OUCH orders, with malformed
packets mixed in, laid onto the bus with random beat sizes and idle cycles (garbage on the
bus while it is idle and beyond ``tkeep``). Every lookup is compared with the model's,
including its cycle (:data:`~hw.oe.parser.LATENCY` after the beat holding the packet's last
byte), and every counter.
"""

from __future__ import annotations

import bisect
import os
import random
import time
from collections import Counter

import pytest
from amaranth.sim import Simulator

from hw.oe.layouts import LookupKind
from hw.oe.parser import COUNTERS, LATENCY, OuchParser
from hw.oe.tokens import format_token
from hw.risk.params import DEFAULT_RISK, RiskParams, Source
from proto import soupbintcp as soup
from sim.model.oe import PARSER_COUNTERS, ParserModel
from tests.oe_streams import Cycle, Step, fault, outbound_message, schedule, session, with_faults

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_oe_parser: seed {SEED}")


def run_parser(cycles: list[Cycle], rng: random.Random, params: RiskParams = DEFAULT_RISK):
    """Drive ``cycles``; return the lookups as (cycle, kind, source, token, shares) and the
    counter totals."""
    dut = OuchParser(params)
    got: list[tuple] = []
    counters = {c: 0 for c in COUNTERS}
    incs = [(c, getattr(dut, f"inc_{c}")) for c in COUNTERS]
    rx = dut.rx

    async def bench(ctx):
        for t, c in enumerate(cycles):
            ctx.set(dut.restart, c.restart)
            if c.beat:
                n = len(c.beat)
                junk = bytes(rng.randrange(256) for _ in range(8 - n))
                ctx.set(rx.tvalid, 1)
                ctx.set(rx.tdata, int.from_bytes(c.beat + junk, "little"))
                ctx.set(rx.tkeep, (1 << n) - 1)
            else:   # idle: tvalid low with garbage, or a valid beat without bytes
                empty = rng.random() < 0.1
                ctx.set(rx.tvalid, empty)
                ctx.set(rx.tdata, rng.randrange(1 << 64))
                ctx.set(rx.tkeep, 0 if empty else rng.randrange(256))
            ctx.set(rx.tlast, rng.random() < 0.3)
            if ctx.get(dut.lookups.valid):
                p = ctx.get(dut.lookups.payload)
                got.append((t, LookupKind(p.kind), p.source, p.token, p.shares))
            for name, port in incs:
                counters[name] += ctx.get(port)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, counters


def run_model(cycles: list[Cycle], params: RiskParams = DEFAULT_RISK):
    """The model fed beat by beat; lookups carry the cycle the gateware must show them in."""
    model = ParserModel(params)
    starts = [(c.offset, t) for t, c in enumerate(cycles) if c.beat]
    offsets = [o for o, _ in starts]
    want = []
    for c in cycles:
        if c.restart:
            model.restart()
        if c.beat:
            for lk in model.feed(c.beat):
                t = starts[bisect.bisect_right(offsets, lk.end) - 1][1]
                want.append((t + LATENCY, lk.kind, lk.source, lk.token, lk.shares))
    return want, model.counters


def compare(cycles, rng, params=DEFAULT_RISK):
    t0 = time.monotonic()
    got, counters = run_parser(cycles, rng, params)
    elapsed = time.monotonic() - t0
    want, model_counters = run_model(cycles, params)
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"lookup #{i}: gateware {g}, model {w} {WHERE}"
    assert len(got) == len(want), f"{len(got)} lookups, model {len(want)} {WHERE}"
    for c in COUNTERS:
        assert counters[c] == model_counters[c], \
            f"counter {c}: gateware {counters[c]}, model {model_counters[c]} {WHERE}"
    print(f"{len(cycles)} cycles, {len(got)} lookups in {elapsed:.1f} s")
    return got, counters


def test_counter_names_match_the_model():
    assert COUNTERS == PARSER_COUNTERS


def test_exchange_session_with_faults():
    """A real session (fills, IOC remainders, cancels, rejects, replaces, heartbeats, system
    events, debug text) with malformed packets between its packets: every counter moves."""
    rng = random.Random(SEED)
    ses = with_faults(rng, session(rng, 250), 0.3)
    cycles = schedule(rng, ses.steps, idle=0.25)
    got, counters = compare(cycles, rng)
    for c in COUNTERS:
        assert counters[c] > 0, f"{c} never counted {WHERE}"
    kinds = {k for _, k, *_ in got}
    assert kinds == set(LookupKind), WHERE


def test_line_rate_short_packets():
    """Full beats, no idle cycle, packets of 3 bytes and up packed back to back: three
    packets end in many beats, lookups end in every lane."""
    rng = random.Random(SEED + 1)
    steps = []
    for _ in range(700):
        r = rng.random()
        if r < 0.45:
            data = soup.pack_packet("H") * rng.randint(1, 4)
        elif r < 0.55:
            data = (0).to_bytes(2, "big") + b"H"              # zero length: 3 bytes
        elif r < 0.65:
            data = soup.pack_packet("+", bytes(rng.randrange(0, 6)))
        elif r < 0.90:
            code = rng.choice("ECJ")
            number = rng.randrange(1 << 48)
            data = soup.pack_packet("S", outbound_message(rng, code, format_token(
                rng.choice(list(Source)), number), rng.randrange(1 << 32)))
        else:
            data = fault(rng, [])
        steps.append(Step(data=data))
    cycles = schedule(rng, steps, idle=0.0, full=1.0)
    got, counters = compare(cycles, rng)
    assert counters["soup_server_heartbeat"] > 0 and len(got) > 100, WHERE
    # Coverage: the busiest beats end three packets (the most a beat can).
    stream = b"".join(c.beat for c in cycles)
    ends, at = Counter(), 0
    while at + 2 <= len(stream):
        at += 2 + max(int.from_bytes(stream[at:at + 2], "big"), 1)
        ends[(at - 1) // 8] += 1
    assert max(ends.values()) == 3, WHERE


def test_restart_after_lost_framing():
    """A corrupted length loses framing; a restart (a new connection) recovers it."""
    rng = random.Random(SEED + 2)
    ses = with_faults(rng, session(rng, 60), 0.1, desync=True)
    cycles = schedule(rng, ses.steps, idle=0.3)
    assert any(c.restart for c in cycles)
    got, counters = compare(cycles, rng)
    assert counters["soup_login_accepted"] == 2, WHERE    # the fresh login was parsed


@pytest.mark.parametrize("token_bits", [40])
def test_narrow_token_numbers(token_bits):
    """With fewer token bits than the 48 the format carries, wider numbers are bad tokens."""
    rng = random.Random(SEED + 3)
    p = RiskParams(token_bits=token_bits)
    steps = []
    for _ in range(60):
        number = rng.choice((rng.randrange(1 << token_bits), rng.randrange(1 << 48)))
        steps.append(Step(data=soup.pack_packet("S", outbound_message(
            rng, rng.choice("ECJ"), format_token(Source.HOST, number), 5))))
    cycles = schedule(rng, steps)
    got, counters = compare(cycles, rng, p)
    assert counters["bad_token"] > 0 and got, WHERE
    assert all(tok < 1 << token_bits for _, _, _, tok, _ in got)
    assert counters["ouch_executed"] + counters["ouch_canceled"] + counters["ouch_rejected"] \
        == 60
