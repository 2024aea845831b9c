"""Replay recorded market data through a card ("FPGA-in-the-loop").

Input is a capture of Ethernet frames (pcap or pcapng, optionally gzipped) or a NASDAQ day file
(``length + message`` records, optionally gzipped), which is packetized into MoldUDP64 frames on
the fly. A second capture can feed line B; the two are interleaved by capture time.

Timing: frames are driven back to back at one beat per cycle (100% duty, faster than any real
link) while keeping the capture-time order across the two lines: a frame never starts before the
frame that precedes it in capture time, so A and B copies of the same packet race exactly as
their timestamps say. The capture's absolute gaps are not reproduced — a day would take hours
of simulated idle.
"""

from __future__ import annotations

import gzip
import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from host.card import Card
from hw.events import EventKind
from sim.feed import dayfile
from sim.feed.frames import FeedAddress
from sim.feed.pcap import Frame, dayfile_to_frames, read_frames

DEFAULT_FEED = FeedAddress("233.54.12.1", 26477)
DEFAULT_SESSION = "WIRESPEED1"
CHUNK_FRAMES = 4096

_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a"}


def detect_format(path: Path) -> str:
    """``"pcap"`` for pcap/pcapng captures, ``"dayfile"`` otherwise (gzip looked into)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            head = f.read(4)
    return "pcap" if head in _PCAP_MAGICS else "dayfile"


def load_frames(path: Path, feed: FeedAddress, *, session: str = DEFAULT_SESSION,
                mtu: int = 1500) -> Iterator[Frame]:
    """Frames of a capture, or of a day file published as one MoldUDP64 line to ``feed``."""
    if detect_format(path) == "pcap":
        return read_frames(path)
    return dayfile_to_frames(dayfile.iter_messages(path), session, feed, mtu=mtu,
                             end_of_session=True)


@dataclass
class ReplayResult:
    counters: dict[str, int]
    events: dict[str, int]
    messages: int
    cycles: int
    frames: dict[str, int]
    wall_seconds: float
    records: np.ndarray = field(repr=False, default=None)

    def as_json(self) -> dict:
        return {
            "counters": self.counters,
            "events": self.events,
            "messages": self.messages,
            "cycles": self.cycles,
            "frames": self.frames,
            "wall_seconds": round(self.wall_seconds, 3),
            "messages_per_second": round(self.messages / self.wall_seconds)
            if self.wall_seconds > 0 else None,
        }


def _beats(n: int) -> int:
    return (n + 7) // 8


class Scheduler:
    """Start cycles for frames in capture-time order, on both lines.

    Time between frames is kept (converted to core clock cycles) up to ``max_idle`` cycles;
    longer silences are cut to that, so a day replays in seconds. A frame never starts before
    its line is free, nor before the frame preceding it in capture time: the A and B copies of
    a packet race as their timestamps say, and a packet lost on one line leaves its time slot
    empty rather than pulling the line's next packet forward.
    """

    def __init__(self, clock_hz: float = 156.25e6, max_idle: int = 64):
        self.cycles_per_ns = clock_hz / 1e9
        self.max_idle = max_idle
        self.line_free = [0, 0]
        self.prev_start = 0
        self.prev_beats = 0
        self.prev_ns: int | None = None

    def place(self, line: int, nbytes: int, timestamp_ns: int) -> int:
        """Start cycle of the next frame in capture order."""
        delta = 0
        if self.prev_ns is not None:
            # Time since the previous frame started, with the silence after it cut short.
            delta = int(max(timestamp_ns - self.prev_ns, 0) * self.cycles_per_ns)
            delta = min(delta, self.prev_beats + self.max_idle)
        self.prev_ns = timestamp_ns
        start = max(self.line_free[line], self.prev_start + delta)
        self.prev_start = start
        self.prev_beats = _beats(nbytes)
        self.line_free[line] = start + self.prev_beats
        return start


def replay(card: Card, sim, frames_a: Iterable[Frame], frames_b: Iterable[Frame] | None = None,
           *, chunk: int = CHUNK_FRAMES, keep_records: bool = False,
           progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Drive the frames through ``sim`` (a :class:`host.backends.sim.SimCard`) behind ``card``.

    The card must already be configured (feeds, events). Counters are read at the end; event
    records are tallied by kind (and kept when ``keep_records``)."""
    tagged_a = ((f, 0) for f in frames_a)
    streams = [tagged_a]
    if frames_b is not None:
        streams.append((f, 1) for f in frames_b)
    merged = merge_frames_tagged(*streams)
    sched = Scheduler()
    base = sim.cycle
    start_cycle = sim.cycle
    kinds: Counter[str] = Counter()
    kept = []
    sent = [0, 0]
    t0 = time.perf_counter()
    while True:
        batch = list(itertools.islice(merged, chunk))
        if not batch:
            break
        per_line: list[list[bytes]] = [[], []]
        when: list[list[int]] = [[], []]
        for frame, line in batch:
            per_line[line].append(frame.data)
            when[line].append(base + sched.place(line, len(frame.data), frame.timestamp_ns))
        for line in (0, 1):
            if per_line[line]:
                sim.send(line, per_line[line], not_before=np.array(when[line], dtype=np.uint64))
                sent[line] += len(per_line[line])
        sim.run()
        _tally(card.events(), kinds, kept if keep_records else None)
        # Later chunks start where the schedule stands, relative to the drained harness.
        base = sim.cycle - sched.prev_start
        if progress:
            progress(len(batch))
    _tally(card.events(), kinds, kept if keep_records else None)
    counters = card.counters()
    wall = time.perf_counter() - t0
    return ReplayResult(
        counters=counters, events=dict(sorted(kinds.items())), messages=counters["messages"],
        cycles=sim.cycle - start_cycle, frames={"a": sent[0], "b": sent[1]},
        wall_seconds=wall,
        records=np.concatenate(kept) if kept else None)


def merge_frames_tagged(*streams: Iterable[tuple[Frame, int]]) -> Iterator[tuple[Frame, int]]:
    """Merge ``(frame, line)`` streams by capture time; ties keep line A first."""
    return heapq.merge(*streams, key=lambda fl: fl[0].timestamp_ns)


def _tally(records: np.ndarray, kinds: Counter, kept: list | None) -> None:
    """Count event records by kind (and keep them when asked)."""
    if not len(records):
        return
    for k, n in zip(*np.unique(records["kind"], return_counts=True), strict=True):
        kinds[_kind_name(int(k))] += int(n)
    if kept is not None:
        kept.append(records)


def _kind_name(k: int) -> str:
    try:
        return EventKind(k).name
    except ValueError:
        return f"UNKNOWN_{k}"


__all__ = ["DEFAULT_FEED", "ReplayResult", "Scheduler", "detect_format", "load_frames",
           "replay", "merge_frames_tagged"]
