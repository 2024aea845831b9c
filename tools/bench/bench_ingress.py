"""Ingress path on the simulated card: line rate, latency, replay speed.

* Line rate: worst-case traffic on both lines at 100% duty (a beat every cycle, no idle
  between frames) for more than a million cycles: back-to-back minimum frames (one 12-byte
  message each) and full 1500-byte frames of 12-byte messages. Both lines carry the same feed,
  B a few cycles behind A. The figures are what must hold: zero frames dropped, every message
  delivered exactly once, and the entry FIFOs' high-water marks (their bound).
* Latency: cycles from the beat carrying a message's last byte on RX to the cycle the message
  is on the ingress output (the MESSAGE tap's timestamp), over random traffic; min and max.
* Replay speed: a synthetic day file through ``host.replay`` (day file -> MoldUDP64 -> frames
  on both lines -> core -> counters), in simulated cycles and ITCH messages per second of wall
  time on one core.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np

from hw.events import EventKind, decode
from proto import itch, moldudp64
from sim.feed.frames import FeedAddress, FrameTemplate
from sim.model.ingress import parse_frame
from tools.bench import BenchResult

FEED = FeedAddress("233.54.12.1", 26477)
CMD = ".venv/bin/python tools/bench/run.py ingress"
SKEW = 3          # cycles line B trails line A in the line-rate runs
MIN_CYCLES = 1_000_000


def _card():
    from host.backends.sim import SimCard
    from host.card import Card
    sim = SimCard()
    card = Card(sim)
    return card, sim


def _configure(card, events=()):
    card.backend.harness.reset()
    card.set_feeds([FEED])
    card.set_events(events)


def _shortest(seq: int) -> bytes:
    return itch.encode("S", stock_locate=0, tracking_number=seq & 0xFFFF, timestamp=seq,
                       event_code="Q")


def _frames(per_frame: int, total_cycles: int) -> tuple[list[bytes], int]:
    tpl = FrameTemplate(dst_ip=FEED.group, dst_port=FEED.port, udp_checksum=False)
    frames, seq, cycles = [], 1, 0
    while cycles < total_cycles:
        msgs = [_shortest(seq + i) for i in range(per_frame)]
        f = tpl.build(moldudp64.pack_packet("BENCH00001", seq, msgs), seq & 0xFFFF)
        frames.append(f)
        seq += per_frame
        cycles += (len(f) + 7) // 8
    return frames, seq - 1


def line_rate(card, sim, per_frame: int, label: str) -> list[BenchResult]:
    _configure(card)
    frames, n_msgs = _frames(per_frame, MIN_CYCLES)
    h = sim.harness
    start = h.cycle
    sim.send(0, frames)
    sim.send(1, frames, not_before=np.full(len(frames), start + SKEW))
    h.run()
    c = card.counters()
    sent = [h.line_stats(line) for line in (0, 1)]
    busy = sum((len(f) + 7) // 8 for f in frames)
    starts = [h.frame_start_cycles(line) for line in (0, 1)]
    # 100% duty: every frame starts the cycle after the previous one's last beat.
    duty = [busy / (int(s[-1]) + (len(frames[-1]) + 7) // 8 - int(s[0])) for s in starts]
    ok = (c["frames_dropped"] == 0 and c["messages"] == n_msgs and c["gaps"] == 0
          and c["duplicates"] == n_msgs and c["events_lost"] == 0)
    if not ok:
        raise AssertionError(f"{label}: line rate violated: {c}")
    cmd = CMD
    notes = (f"{len(frames):,} frames x 2 lines, {busy:,} beats per line, B {SKEW} cycles "
             f"behind A; frames_dropped 0, {n_msgs:,} messages each delivered once")
    return [
        BenchResult(f"line rate, {label}: beats accepted per cycle (A, B)",
                    min(duty), "beats/cycle", cmd,
                    notes + f"; A {duty[0]:.6f}, B {duty[1]:.6f}; "
                    f"frames sent A {sent[0].frames_sent:,}, B {sent[1].frames_sent:,}"),
        BenchResult(f"line rate, {label}: entry FIFO high-water mark (A, B)",
                    max(card.regs.read("fifo_a_max"), card.regs.read("fifo_b_max")),
                    "entries", cmd,
                    f"A {card.regs.read('fifo_a_max')}, B {card.regs.read('fifo_b_max')} of "
                    f"{card.identity.fifo_depth}; the bound the line-rate run shows"),
    ]


def latency(card, sim) -> list[BenchResult]:
    """Last byte of each message on RX to the message on the ingress output."""
    _configure(card, events=[EventKind.MESSAGE])
    rng = random.Random(7)
    tpl = FrameTemplate(dst_ip=FEED.group, dst_port=FEED.port, udp_checksum=False)
    frames, seq = [], 1
    for _ in range(2000):
        msgs = []
        for _ in range(rng.randint(1, 20)):
            code = rng.choice(itch.TYPE_CODES)
            msgs.append(code.encode() + bytes(itch.LENGTHS[code] - 1))
        frames.append(tpl.build(moldudp64.pack_packet("BENCH00001", seq, msgs)))
        seq += len(msgs)
    h = sim.harness
    idle = rng.choices([0, 0, 1, 5, 30], k=len(frames))
    sim.send(0, frames, idle=np.array(idle))
    h.run()
    taps = {e["msg_seq"]: e["timestamp"] for e in decode(card.events())
            if e["kind_name"] == "MESSAGE"}
    starts = h.frame_start_cycles(0)
    lat = []
    for f, st in zip(frames, starts, strict=True):
        for msg in parse_frame(f, False, [(FEED.ip, FEED.port)]).messages:
            lat.append(taps[msg.seq] - (int(st) + msg.beat))
    cmd = CMD
    notes = (f"{len(lat):,} messages of every ITCH type, 1-20 per frame, random idle; "
             "cycle of the beat holding the last byte to the cycle the message is on the "
             "ingress output stream")
    return [BenchResult("latency RX last byte -> message out, min", min(lat), "cycles", cmd,
                        notes),
            BenchResult("latency RX last byte -> message out, max", max(lat), "cycles", cmd,
                        notes)]


def replay_speed(card, sim, n_messages: int = 1_000_000) -> list[BenchResult]:
    from host import replay as rp
    from sim.feed import dayfile, synth
    _configure(card)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "day.NASDAQ_ITCH50"
        dayfile.write_dayfile(path, synth.generate_day(n_messages, seed=11))
        t0 = time.perf_counter()
        frames = list(rp.load_frames(path, FEED))
        t_frames = time.perf_counter() - t0
        cycles0 = sim.cycle
        t1 = time.perf_counter()
        res = rp.replay(card, sim, frames, frames)
        t_sim = time.perf_counter() - t1
    cycles = sim.cycle - cycles0
    if res.messages != n_messages:
        raise AssertionError(f"replay delivered {res.messages} of {n_messages}")
    cmd = CMD
    notes = (f"synthetic day, {n_messages:,} messages, {len(frames):,} frames on both lines "
             f"(A and B identical), {cycles:,} cycles")
    return [
        BenchResult("harness speed, day replay on both lines", cycles / t_sim / 1e6,
                    "Mcycles/s", cmd, notes),
        BenchResult("replay speed, ITCH messages through the core", n_messages / t_sim / 1e6,
                    "M messages/s", cmd, notes + "; core simulation only"),
        BenchResult("replay speed including packetizing the day file",
                    n_messages / (t_sim + t_frames) / 1e6, "M messages/s", cmd,
                    notes + f"; day file to frames took {t_frames:.2f} s"),
    ]


def run() -> list[BenchResult]:
    card, sim = _card()
    out = []
    out += line_rate(card, sim, 1, "back-to-back minimum frames (1 x 12-byte message)")
    out += line_rate(card, sim, 103, "full 1500-byte frames of 12-byte messages")
    out += latency(card, sim)
    out += replay_speed(card, sim)
    return out
