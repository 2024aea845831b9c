"""``make demo``: a synthetic trading day through the simulated card, on lines A and B.

1. Generate a synthetic ITCH 5.0 day (consistent books on 8 symbols, every message type).
2. Publish it as MoldUDP64 over UDP, twice: line A and line B, as pcap captures. Each line
   independently loses 2% of its packets; B runs 400 ns behind A.
3. Replay both captures through the simulated card with the ``wirespeed`` CLI, which prints
   the counters (A/B arbitration fills each line's losses from the other; only packets lost on
   both lines are gaps) and the simulation throughput.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

from sim.feed import dayfile, synth
from sim.feed.frames import FeedAddress
from sim.feed.pcap import Frame, dayfile_to_frames, write_frames

REPO = Path(__file__).resolve().parent.parent
FEED = FeedAddress("233.54.12.1", 26477)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--loss", type=float, default=0.02, help="packet loss on each line")
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
    line_a = [f for f in frames if rng.random() >= args.loss]
    line_b = [Frame(f.timestamp_ns + 400, f.data) for f in frames if rng.random() >= args.loss]
    pa, pb = args.out / "line_a.pcap", args.out / "line_b.pcap"
    write_frames(pa, line_a)
    write_frames(pb, line_b)
    lost_both = len(frames) - len({f.data for f in line_a} | {f.data for f in line_b})
    print(f"[2/3] {len(frames):,} MoldUDP64 packets; line A keeps {len(line_a):,}, line B "
          f"{len(line_b):,}; {lost_both} lost on both lines ({time.perf_counter() - t:.1f} s)")

    print("[3/3] wirespeed replay line_a.pcap --line-b line_b.pcap "
          f"--feed {FEED}  (the core's Verilog in the Verilator harness)")
    wirespeed = Path(sys.executable).with_name("wirespeed")
    return subprocess.call([str(wirespeed), "replay", str(pa), "--line-b", str(pb),
                            "--feed", str(FEED)])


if __name__ == "__main__":
    sys.exit(main())
