"""Tick-to-trade and the risk gate on the simulated card.

* Tick-to-trade: cycles from the beat carrying the last byte of the ITCH message that moved
  the BBO on RX to the beat carrying the first byte of the OUCH order it triggered on TX,
  over a generated day on line A, sent without a pause, with every symbol's trigger armed
  (and re-armed by the host when the order's verdict reaches it) so that it fires on the
  next change of its ask. Each trigger order is traced back:
  its VERDICT event names its token; the BBO event that fired it was raised
  ``trigger LATENCY + gate LATENCY`` cycles earlier on its slot; that event names the ITCH
  sequence number, whose last byte's beat the frame schedule gives. Stated as min and max,
  and in nanoseconds at the core's measured ECP5 Fmax (docs/BENCHMARKS.md, synth) and at
  322 MHz (a 25G MAC's clock).
* Risk gate: its latency is the constant 4 cycles that ``risk_pipeline`` proves
  (tools/formal.py); throughput one order per cycle, measured by the gate's Verilator driver
  (sim/harness/riskbench) on a million orders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from host.bitstream import MANIFEST, load_manifest
from hw.events import decode
from hw.oe.tokens import format_token
from hw.risk.params import Reason, Side, Source
from hw.strategy.trigger import LATENCY as TRIGGER_LATENCY
from sim.model.ingress import parse_frame
from sim.model.risk import LATENCY as GATE_LATENCY
from tools.bench import BenchResult

CMD = ".venv/bin/python tools/bench/run.py trade"
#: The bitstream whose routed Fmax converts cycles to nanoseconds: the whole core with a
#: 4-slot book in the scan shell (bitstreams/README.md; the 8-slot core does not route yet).
#: Its manifest is the one place the figure lives; the latency in cycles does not depend on
#: the slot count.
FMAX_BITSTREAM = Path(__file__).resolve().parents[2] / "bitstreams" / "core-scan-4slot"


def ecp5_fmax() -> tuple[float, str]:
    """The routed Fmax in MHz of :data:`FMAX_BITSTREAM`, and the note saying where it is from."""
    m = load_manifest(FMAX_BITSTREAM / MANIFEST).data
    fmax = m["timing"]["fmax_mhz"]
    note = (f"cycles / the routed ECP5 Fmax of the whole core with a {m['design']['book']['slots']}"
            f"-slot book (bitstreams/{m['name']}, {m['source']['git_rev'][:7]}, seed "
            f"{m['timing']['seed']}; the 8-slot core does not route yet)")
    return fmax, note


def tick_to_trade() -> list[BenchResult]:
    from host.backends.sim import SimCard
    from host.card import Card
    from host.config import GlobalLimits, LimitsConfig, SymbolLimits, TriggerConfig
    from host.orders import STOP_KINDS, OrderLoop
    from host.replay import RxIndex, Stopper
    from sim.feed.synth import DEFAULT_SYMBOLS
    from tools.bench.bench_book import FEED, _packets, generate_day

    sim = SimCard()
    card = Card(sim)
    symbols = list(DEFAULT_SYMBOLS)
    h = sim.harness
    h.reset()
    card.set_feeds([FEED])
    card.reset_books()
    card.subscribe_all(symbols)
    lim = SymbolLimits(enable=True, max_shares=10**6, max_notional=(1 << 64) - 1,
                       max_long=(1 << 32) - 1, max_short=(1 << 32) - 1)
    card.apply_limits(LimitsConfig(GlobalLimits(max_open=60_000),
                                   {i: lim for i in range(len(symbols))}))
    # Every symbol armed to buy at any ask: the next ask change fires it; the host re-arms it
    # when the order's verdict reaches it.
    arm = TriggerConfig(Side.BUY, (1 << 32) - 1, 1, rearm=True)
    loop = OrderLoop(card, sim, symbols, keep_tx=True,
                     triggers={slot: arm for slot in range(len(symbols))})
    day = list(generate_day(60_000, symbols=symbols, seed=5))
    frames = _packets(day, 1)
    last_beat: dict[int, int] = {}
    t2t: list[int] = []
    alone: list[int] = []
    records: list[np.ndarray] = []
    # The whole day queued at once, 3 idle cycles between frames: the line never pauses. The
    # run stops at every TX packet and verdict, where the exchange answers and the host
    # re-arms (host.orders), and goes on with the feed where it was scheduled.
    rx = RxIndex([FEED])
    rx.add(0, frames, sim.send(0, frames, idle=np.full(len(frames), 3)))
    sim.stop_on(tx_packet=True, record_kinds=STOP_KINDS)

    def drain() -> None:
        rec = card.events()
        records.append(rec)
        loop(rec)
    Stopper(sim, drain, loop.on_stop).run()
    drain()
    starts = h.frame_start_cycles(0)[-len(frames):]
    for f, st in zip(frames, starts, strict=True):
        for m in parse_frame(f, False, [(FEED.ip, FEED.port)]).messages:
            last_beat[m.seq] = int(st) + m.beat
    recs = decode(np.concatenate(records))
    # When each TX packet's last beat left: an order whose verdict came while another packet
    # was still on TX waited for it (the wire carries one packet at a time).
    assert loop.all_tx is not None
    busy_until = sorted((first, last) for first, last, _ in loop.all_tx)
    bbo_at = {(e["timestamp"], e["aux"]): e["itch_seq"] for e in recs if e["kind_name"] == "BBO"}
    for e in recs:
        if e["kind_name"] != "VERDICT" or e["aux"] != Reason.ACCEPTED:
            continue
        if e["source"] != Source.TRIGGER:
            continue
        tok = format_token(Source.TRIGGER, e["token"])
        fired = e["timestamp"] - TRIGGER_LATENCY - GATE_LATENCY
        seq = bbo_at.get((fired, e["slot"]))
        if seq is None or tok not in loop.tx_first_cycles or seq not in last_beat:
            raise AssertionError(f"cannot trace trigger order {tok} back to its tick")
        first = loop.tx_first_cycles[tok]
        t2t.append(first - last_beat[seq])
        verdict = e["timestamp"]
        if not any(f < first and last >= verdict for f, last in busy_until):
            alone.append(t2t[-1])
    hist = dict(sorted(zip(*np.unique(t2t, return_counts=True), strict=True)))
    # The replay's own figure (host.replay.RxIndex, OrderLoop.finish: what the CLI and make
    # demo print) must be this one, reached here independently.
    theirs = loop.finish(rx)["tick_to_trade_cycles"]
    if theirs["histogram"] != {int(k): int(v) for k, v in hist.items()}:
        raise AssertionError(f"OrderLoop's tick-to-trade {theirs} differs from {hist}")
    notes = (f"{len(t2t):,} trigger orders on a 60k-message generated day (line A, 3 idle "
             "cycles between frames, no pause; each trigger re-armed at its verdict); RX "
             "beat of the ITCH message's last byte to the TX beat of the OUCH order's first "
             "byte; histogram "
             + ", ".join(f"{int(k)}: {int(v):,}" for k, v in hist.items()))
    lo, hi = min(t2t), max(t2t)
    fmax, fmax_note = ecp5_fmax()
    alone_hist = dict(sorted(zip(*np.unique(alone, return_counts=True), strict=True)))
    alone_notes = (f"the {len(alone):,} of those orders whose verdict found TX idle (the "
                   "others waited behind another order's packet: a packet is 7 beats); "
                   "histogram " + ", ".join(f"{int(k)}: {int(v):,}"
                                            for k, v in alone_hist.items()))
    return [
        BenchResult("tick-to-trade, TX idle, min", min(alone), "cycles", CMD, alone_notes),
        BenchResult("tick-to-trade, TX idle, max", max(alone), "cycles", CMD, alone_notes),
        BenchResult("tick-to-trade, min", lo, "cycles", CMD, notes),
        BenchResult("tick-to-trade, max", hi, "cycles", CMD, notes),
        BenchResult(f"tick-to-trade, min at {fmax} MHz", lo * 1e3 / fmax, "ns", CMD, fmax_note),
        BenchResult(f"tick-to-trade, max at {fmax} MHz", hi * 1e3 / fmax, "ns", CMD, fmax_note),
        BenchResult("tick-to-trade, min at 322 MHz", lo * 1e3 / 322, "ns", CMD,
                    "cycles / 322 MHz (a 25G MAC clock)"),
        BenchResult("tick-to-trade, max at 322 MHz", hi * 1e3 / 322, "ns", CMD,
                    "cycles / 322 MHz (a 25G MAC clock)"),
    ]


def gate_figures() -> list[BenchResult]:
    """The gate's latency and throughput, from its proof (run here, so the figure is
    re-established every time the bench runs)."""
    from tools import formal
    r = formal.run(formal.PROOFS["risk_pipeline"])
    if not r.passed:
        raise AssertionError(f"risk_pipeline did not pass: {r.status}\n{r.log_tail}")
    cmd = ".venv/bin/python tools/formal.py risk_pipeline"
    note = (f"proven by k-induction in {r.seconds:.0f} s: every order presented, in any "
            f"cycle including every cycle, yields exactly one verdict {GATE_LATENCY} cycles "
            "later")
    return [BenchResult("risk gate latency", GATE_LATENCY, "cycles", cmd, note),
            BenchResult("risk gate throughput", 1, "orders/cycle", cmd,
                        note + "; the gate has no ready signal, so it never stalls")]


def run() -> list[BenchResult]:
    return tick_to_trade() + gate_figures()
