"""``make demo``: a synthetic trading day through the simulated card, on lines A and B.

1. Generate a synthetic ITCH 5.0 day (consistent books on 8 symbols, every message type).
2. Publish it as MoldUDP64 over UDP, twice: line A and line B, as pcap captures. Each line
   loses 2% of its packets, never the same packet as the other (the arbitration hides all of
   them), except one packet nine tenths into the day that both lines lose: a real gap, after
   which every book is stale (and says so) and the triggers stop; B runs 400 ns behind A.
3. Replay both captures through the simulated card with the ``wirespeed`` CLI, subscribed
   to the 8 symbols: it prints the counters (A/B arbitration fills each line's losses from the
   other; only packets lost on both lines are gaps), the books (BBO, volume, VWAP; a gap makes
   them stale, and says so) and the simulation throughput, and writes every BBO change to
   ``bbo.csv``; with ``limits.yaml`` and ``triggers.yaml`` (written here) the triggers fire on
   the replayed book, the risk gate judges every order (``orders.csv``), the exchange
   simulator fills them and its reports move the card's positions, and the tick-to-trade of
   every trigger order is printed; the order-entry session is written as ``tx.pcap``
   (Ethernet/IPv4/TCP, SoupBinTCP/OUCH inside).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

from proto import itch
from sim.feed import dayfile, synth
from sim.feed.frames import FeedAddress
from sim.feed.pcap import Frame, dayfile_to_frames, write_frames

REPO = Path(__file__).resolve().parent.parent
FEED = FeedAddress("233.54.12.1", 26477)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--loss", type=float, default=0.02, help="packet loss on each line")
    ap.add_argument("--gap-at", type=float, default=0.9,
                    help="where in the day (0..1) both lines lose one packet; 0: nowhere")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "demo")
    args = ap.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    day = args.out / "synthetic.NASDAQ_ITCH50.gz"
    messages = synth.generate_day(args.messages, seed=args.seed)
    dayfile.write_dayfile(day, messages)
    print(f"[1/3] {day}: {len(messages):,} ITCH messages "
          f"({time.perf_counter() - t:.1f} s)")

    t = time.perf_counter()
    rng = random.Random(args.seed)
    frames = list(dayfile_to_frames(dayfile.iter_messages(day), "DEMO000001", FEED,
                                    end_of_session=True))
    # Each line loses its own packets (disjoint draws); one packet, at --gap-at, both lose.
    draw = [rng.random() for _ in frames]
    both = int(args.gap_at * len(frames)) if 0 < args.gap_at < 1 else -1
    line_a = [f for i, (f, r) in enumerate(zip(frames, draw, strict=True))
              if r >= args.loss and i != both]
    line_b = [Frame(f.timestamp_ns + 400, f.data)
              for i, (f, r) in enumerate(zip(frames, draw, strict=True))
              if not args.loss <= r < 2 * args.loss and i != both]
    pa, pb = args.out / "line_a.pcap", args.out / "line_b.pcap"
    write_frames(pa, line_a)
    write_frames(pb, line_b)
    lost_both = len(frames) - len({f.data for f in line_a} | {f.data for f in line_b})
    print(f"[2/3] {len(frames):,} MoldUDP64 packets; line A keeps {len(line_a):,}, line B "
          f"{len(line_b):,}; {lost_both} lost on both lines ({time.perf_counter() - t:.1f} s)")

    symbols = ",".join(synth.DEFAULT_SYMBOLS)
    limits, triggers = _strategy(args.out, messages)
    bbo = args.out / "bbo.csv"
    orders = args.out / "orders.csv"
    tx = args.out / "tx.pcap"
    print("[3/3] wirespeed replay line_a.pcap --line-b line_b.pcap "
          f"--feed {FEED} --symbols {symbols} --bbo-out {bbo.name} --limits {limits.name} "
          f"--triggers {triggers.name} --orders-out {orders.name} --tx-pcap {tx.name}\n"
          "      (the core's Verilog in the Verilator harness; the exchange simulator on the "
          "order-entry port)")
    wirespeed = Path(sys.executable).with_name("wirespeed")
    return subprocess.call([str(wirespeed), "replay", str(pa), "--line-b", str(pb),
                            "--feed", str(FEED), "--symbols", symbols, "--bbo-out", str(bbo),
                            "--limits", str(limits), "--triggers", str(triggers),
                            "--orders-out", str(orders), "--tx-pcap", str(tx)])


def _strategy(out: Path, messages: list[bytes]) -> tuple[Path, Path]:
    """limits.yaml and triggers.yaml for the demo: on every other symbol a buy trigger a little
    above its first price (it fires whenever the ask dips under), on the others a sell trigger
    a little below (whenever the bid rises over), each re-armed by the host when its verdict
    comes; and limits tight enough that some orders are rejected (size, long and short
    position, open orders, throttle, collar)."""
    first: dict[str, int] = {}
    for m in messages:
        if m[:1] == b"A":
            a = itch.MESSAGES["A"].unpack(m)
            first.setdefault(a["stock"], a["price"])
    lim = ["global: {max_open: 4, rate_period: 2000, rate_burst: 4}",
           "defaults: {max_shares: 500, max_notional: 100000, collar_bps: 100, "
           "max_long: 3000, max_short: 3000}", "symbols:"]
    trig = ["triggers:"]
    for i, sym in enumerate(synth.DEFAULT_SYMBOLS):
        px = first.get(sym, 1_000_000)
        shares = (100, 200, 300, 600)[i % 4]            # 600 > max_shares: rejected
        lim.append(f"  {sym}: {{ref_px: {px / 10_000:.4f}}}")
        side, at = ("buy", 1.002) if i % 2 == 0 else ("sell", 0.998)
        trig.append(f"  - {{symbol: {sym}, side: {side}, price: {px * at / 10_000:.2f}, "
                    f"shares: {shares}, rearm: true}}")
    (out / "limits.yaml").write_text("\n".join(lim) + "\n")
    (out / "triggers.yaml").write_text("\n".join(trig) + "\n")
    return out / "limits.yaml", out / "triggers.yaml"


if __name__ == "__main__":
    sys.exit(main())
