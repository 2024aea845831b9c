"""The book on the simulated card: latency, line-rate throughput, replay speed vs itch-book.

* Latency: cycles from the beat carrying an ITCH message's last byte on RX to the cycle its
  BBO event is raised (the event's timestamp), over a generated day's BBO changes; min and
  max, and by message type. Twice: with every message in a frame of its own and the line
  idle long enough for the book to be idle when it arrives (the latency of the message
  itself, which depends on its type only: one step or two), and with the day's full frames
  and random idle between them (the same plus the wait behind the messages before it).
* Throughput at line rate: both lines at 100% duty with the worst-case book traffic for
  subscribed symbols — back-to-back full frames of ``D`` (the shortest book message, 21 bytes
  with its length, 2.6 beats) after the adds they delete, each delete taking out a level
  other than the best; and the same with every delete emptying the best level (each one
  walks). The figures: book operations lost (must be 0) and the op FIFO's high-water mark.
* Replay speed: the same 1M-message day through the whole core (subscribed to its 8 symbols)
  and through itch-book on this machine, in messages per second, and their ratio.
"""

from __future__ import annotations

import time

import numpy as np

from hw.events import decode
from proto import itch, moldudp64
from sim.feed.frames import FeedAddress, FrameTemplate
from sim.feed.synth import DEFAULT_SYMBOLS, generate_day
from sim.model.ingress import parse_frame
from tools.bench import BenchResult

FEED = FeedAddress("233.54.12.1", 26477)
CMD = ".venv/bin/python tools/bench/run.py book"
SYMBOLS = list(DEFAULT_SYMBOLS)
SESSION = "BENCH00001"


def _card():
    from host.backends.sim import SimCard
    from host.card import Card
    sim = SimCard()
    return Card(sim), sim


def _configure(card, symbols=SYMBOLS):
    card.backend.harness.reset()
    card.set_feeds([FEED])
    card.reset_books()          # block RAM outlives a core reset; each run is a new day
    card.subscribe_all(symbols)


def _packets(msgs: list[bytes], first_seq: int, mtu: int = 1500) -> list[bytes]:
    """Full frames: as many messages as fit a ``mtu``-byte IP packet."""
    tpl = FrameTemplate(dst_ip=FEED.group, dst_port=FEED.port, udp_checksum=False)
    room = mtu - 20 - 8 - 20
    frames, batch, used, seq = [], [], 0, first_seq
    for m in msgs:
        if used + 2 + len(m) > room:
            frames.append(tpl.build(moldudp64.pack_packet(SESSION, seq, batch)))
            seq += len(batch)
            batch, used = [], 0
        batch.append(m)
        used += 2 + len(m)
    if batch:
        frames.append(tpl.build(moldudp64.pack_packet(SESSION, seq, batch)))
    return frames


def _directory() -> list[bytes]:
    from tests.book_streams import directory
    return [directory(i + 1, s) for i, s in enumerate(SYMBOLS)]


def latency(card, sim, isolated: bool) -> list[BenchResult]:
    """``isolated``: one message a frame, 40 idle cycles after each (the first 30,000 of the
    day); else the 100,000-message day in full frames with random idle between them."""
    _configure(card)
    day = list(generate_day(100_000, symbols=SYMBOLS, seed=21))
    if isolated:
        day = day[:30_000]
        frames = [_packets([m], i + 1)[0] for i, m in enumerate(day)]
        idle = np.full(len(frames), 40)
        how = (f"{len(day):,} messages of a generated day, each in a frame of its own with "
               "40 idle cycles after it (the book idle when each arrives)")
        label = "isolated message"
    else:
        frames = _packets(day, 1)
        idle = np.random.default_rng(3).choice([0, 0, 1, 7, 40], size=len(frames))
        how = ("a 100k-message generated day in full frames on line A, random idle between "
               "frames (waits behind earlier messages included)")
        label = "day's traffic"
    h = sim.harness
    sim.send(0, frames, idle=idle)
    h.run()
    starts = h.frame_start_cycles(0)
    last_beat = {}
    for f, st in zip(frames, starts, strict=True):
        for m in parse_frame(f, False, [(FEED.ip, FEED.port)]).messages:
            last_beat[m.seq] = int(st) + m.beat
    recs = decode(card.events())
    by_type: dict[str, list[int]] = {}
    for e in recs:
        if e["kind_name"] == "BBO":
            s = e["itch_seq"]
            by_type.setdefault(chr(day[s - 1][0]), []).append(e["timestamp"] - last_beat[s])
    allv = [x for v in by_type.values() for x in v]
    hist = dict(sorted(zip(*np.unique(allv, return_counts=True), strict=True)))
    hist_s = ", ".join(f"{int(k)} cycles: {int(v):,}" for k, v in hist.items())
    notes = (f"{len(allv):,} BBO events of {how}; beat holding the message's last byte to "
             f"the cycle the event is raised; histogram {hist_s}")
    out = [BenchResult(f"latency RX last byte -> BBO event, {label}, min", min(allv),
                       "cycles", CMD, notes),
           BenchResult(f"latency RX last byte -> BBO event, {label}, max", max(allv),
                       "cycles", CMD, notes)]
    for code, v in sorted(by_type.items()):
        out.append(BenchResult(f"latency RX -> BBO after '{code}', {label}, max", max(v),
                               "cycles", CMD, f"{len(v):,} events, min {min(v)}, max {max(v)}"))
    return out


def _flood(walks: bool, levels: int = 60, rounds: int = 40) -> list[bytes]:
    """Adds then deletes for the 8 symbols, deletes back to back. ``walks``: delete the best
    level each time (bids from the top down); otherwise delete from the far end up."""
    msgs = _directory()
    ref = 1
    for r in range(rounds):
        adds, dels = [], []
        for loc in range(1, len(SYMBOLS) + 1):
            refs = []
            for lv in range(levels):
                adds.append(itch.encode("A", stock_locate=loc, tracking_number=0,
                                        timestamp=1000 + r, order_ref=ref, side=b"B",
                                        shares=100, stock=b"XXXX    ",
                                        price=1_000_000 + lv * 100))
                refs.append(ref)
                ref += 1
            order = list(reversed(refs)) if walks else refs   # top first = best first
            dels += [itch.encode("D", stock_locate=loc, tracking_number=0,
                                 timestamp=1000 + r, order_ref=x) for x in order]
        # Interleave symbols so that consecutive deletes hit different books.
        n = len(SYMBOLS)
        dels = [dels[i * levels + j] for j in range(levels) for i in range(n)]
        msgs += adds + dels
    return msgs


def line_rate(card, sim, walks: bool) -> list[BenchResult]:
    _configure(card)
    msgs = _flood(walks)
    frames = _packets(msgs, 1)
    h = sim.harness
    start = h.cycle
    sim.send(0, frames)
    sim.send(1, frames, not_before=np.full(len(frames), start + 3))
    h.run()
    c = card.counters()
    fifo_max = card.regs.read("book_fifo_max")
    n_del = sum(1 for m in msgs if m[:1] == b"D")
    label = "deletes that each empty the best level" if walks else "deletes below the best"
    if c["messages"] != len(msgs) or c["frames_dropped"]:
        raise AssertionError(f"ingress lost data: {c}")
    notes = (f"{len(frames):,} full 1500-byte frames on A and B at 100% duty (B 3 cycles "
             f"behind), {len(msgs):,} messages of which {n_del:,} D back to back; walks "
             f"{c['book_walks']:,}; op FIFO depth {card.identity.book.fifo_depth}")
    return [
        BenchResult(f"line rate, {label}: book ops lost", c["book_fifo_overflow"], "ops",
                    CMD, notes),
        BenchResult(f"line rate, {label}: op FIFO high-water mark", fifo_max, "entries",
                    CMD, notes),
    ]


def replay_speed(card, sim, n: int = 1_000_000) -> list[BenchResult]:
    from host import replay as rp
    from sim.feed.pcap import dayfile_to_frames
    from sim.model import itchbook
    _configure(card)
    day = list(generate_day(n, symbols=SYMBOLS, seed=11))
    frames = list(dayfile_to_frames(iter(day), SESSION, FEED, end_of_session=True))
    t0 = time.perf_counter()
    res = rp.replay(card, sim, frames, frames)
    t_card = time.perf_counter() - t0
    rows, t_ib = itchbook.bbo_changes(day, SYMBOLS)
    if res.events.get("BBO", 0) != len(rows):
        raise AssertionError(f"card raised {res.events.get('BBO')} BBO events, itch-book "
                             f"{len(rows)} changes")
    notes = (f"generated day, {n:,} messages, 8 symbols subscribed, both lines; "
             f"{res.events.get('BBO', 0):,} BBO events = itch-book's changes")
    return [
        BenchResult("replay speed, whole core in the harness", n / t_card / 1e6,
                    "M messages/s", CMD, notes + f"; {res.cycles:,} cycles in {t_card:.1f} s"),
        BenchResult("replay speed, itch-book (BBO table only)", n / t_ib / 1e6,
                    "M messages/s", CMD, notes + f"; {t_ib:.2f} s inside itch-book"),
        BenchResult("replay speed ratio, core / itch-book", (n / t_card) / (n / t_ib), "x",
                    CMD, "same day, same machine"),
    ]


def run() -> list[BenchResult]:
    card, sim = _card()
    out = latency(card, sim, isolated=True)
    out += latency(card, sim, isolated=False)
    out += line_rate(card, sim, walks=False)
    out += line_rate(card, sim, walks=True)
    out += replay_speed(card, sim)
    return out
