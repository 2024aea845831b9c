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

import csv
import gzip
import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from host.card import Card
from hw.book.params import ALL_SLOTS, AlertReason
from hw.events import EventKind, body_dtype
from sim.feed import dayfile
from sim.feed.frames import FeedAddress
from sim.feed.pcap import Frame, dayfile_to_frames, read_frames
from sim.model.ingress import parse_frame

DEFAULT_FEED = FeedAddress("233.54.12.1", 26477)
DEFAULT_SESSION = "WIRESPEED1"
#: Frames queued in the harness ahead of the simulation (a replay's memory, not its timing).
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
    #: Final state of each subscribed symbol (:meth:`BookSink.books`); empty without any.
    books: dict[str, dict] = field(default_factory=dict)
    #: The order side (:meth:`host.orders.OrderLoop.finish`); empty without limits/triggers.
    orders: dict = field(default_factory=dict)

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
            "books": self.books,
            **({"orders": self.orders} if self.orders else {}),
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


class RxIndex:
    """Where each message's last byte was on RX, for tick-to-trade from a replay.

    For every frame the replay queues, the ingress reference model (:func:`parse_frame`,
    against the card's feeds) gives each message's sequence number and the frame-relative
    beat holding its last byte; the harness gives the cycle each frame started. A message
    both lines carry counts from the earlier of its two last bytes: that is when the card
    could first know it (the sequencer delivers whichever copy completes first).
    """

    def __init__(self, feeds: Sequence[FeedAddress]):
        self._filters = [(f.ip, f.port) for f in feeds]
        self._parts: list[list[np.ndarray]] = [[], []]   # per line: (seq, frame, beat) rows

    def add(self, line: int, frames: Sequence[bytes], indices: range) -> None:
        """Index ``frames``, queued on ``line`` as the harness's frames ``indices``."""
        rows = [(m.seq, i, m.beat) for f, i in zip(frames, indices, strict=True)
                for m in parse_frame(f, False, self._filters).messages]
        if rows:
            self._parts[line].append(np.array(rows, dtype=np.int64))

    def last_byte_cycles(self, sim, seqs: Iterable[int]) -> dict[int, int]:
        """The cycle of the RX beat holding the last byte of each of ``seqs`` (the earlier
        line's); a message no line delivered (lost on both, say) is left out."""
        want = np.unique(np.fromiter(seqs, dtype=np.int64))
        out: dict[int, int] = {}
        for line in (0, 1):
            if not self._parts[line] or not len(want):
                continue
            rows = np.concatenate(self._parts[line])
            rows = rows[np.isin(rows[:, 0], want)]
            starts = np.asarray(sim.frame_start_cycles(line), dtype=np.int64)
            for seq, frame, beat in rows.tolist():
                if starts[frame] >= 0:
                    c = int(starts[frame]) + beat
                    out[seq] = min(out.get(seq, c), c)
        return out


class Stopper:
    """Runs the harness for a host that answers the card: it stops at every stop event
    (``sim.stop_on``) and at every cycle ``on_stop`` asked to be woken at, and there calls
    ``drain()`` (the records) and then ``on_stop(flush)``, which returns the next cycle to be
    woken at, or None. ``flush`` is True when the card went quiet before that cycle: every
    event is in, so whatever waited for events can go now."""

    def __init__(self, sim, drain: Callable[[], None],
                 on_stop: Callable[..., int | None]):
        self.sim, self.drain, self.on_stop = sim, drain, on_stop
        self.wake: int | None = None

    def _answer(self, flush: bool) -> None:
        self.drain()
        self.wake = self.on_stop(flush)

    def run(self, max_cycles: int | None = None) -> None:
        """Run for ``max_cycles`` (None: until everything is sent and the card is quiet, with
        nothing waiting in ``on_stop``), answering on the way."""
        sim = self.sim
        until = None if max_cycles is None else sim.cycle + max_cycles
        while until is None or sim.cycle < until:
            limit = until
            if self.wake is not None:
                limit = self.wake if limit is None else min(limit, self.wake)
            sim.run(None if limit is None else max(0, limit - sim.cycle), stop=True)
            if sim.stopped or (self.wake is not None and sim.cycle >= self.wake):
                self._answer(False)
            elif until is None or sim.cycle < until:
                # Quiet before the wake-up: every event is in.
                if self.wake is None:
                    return
                self._answer(True)


def replay(card: Card, sim, frames_a: Iterable[Frame], frames_b: Iterable[Frame] | None = None,
           *, chunk: int = CHUNK_FRAMES, keep_records: bool = False,
           progress: Callable[[int], None] | None = None,
           on_records: Callable[[np.ndarray], None] | None = None,
           on_stop: Callable[..., int | None] | None = None,
           stop_kinds: Iterable[int] = (), rx_index: RxIndex | None = None) -> ReplayResult:
    """Drive the frames through ``sim`` (a :class:`host.backends.sim.SimCard`) behind ``card``.

    The card must already be configured (feeds, events, subscriptions). Counters are read at
    the end; event records are tallied by kind (and kept when ``keep_records``).

    Every frame's start cycle comes from one :class:`Scheduler` counted from the replay's first
    cycle, and frames are queued a chunk ahead of the simulation, so the line never runs dry
    between chunks: ``chunk`` only bounds how many frames wait in the harness, and what the
    card sees, cycle for cycle, does not depend on it (``tests/test_core_orders.py`` replays
    with two chunk sizes). It must be large enough that a chunk's frames span more cycles than
    ``on_stop`` spends on the card's registers (the default spans tens of thousands).

    ``on_records`` sees every batch of event records as it is drained (at each stop and after
    each chunk, in card order): outputs such as the BBO CSV are written as the replay goes, so
    a day's records (a few hundred thousand BBO events for 1M messages) are never all held
    just to be written out. Prefer it to ``keep_records`` for anything day-sized.

    ``on_stop`` makes the replay event-driven (:class:`Stopper`): the harness stops after the
    cycle of every TX packet's last beat and of every record of ``stop_kinds``, and at every
    cycle ``on_stop`` asks for; the records are drained and ``on_stop(flush)`` runs there, at
    that cycle, with the rest of the feed still queued where it was scheduled
    (:meth:`host.orders.OrderLoop.on_stop` hands packets to the exchange and schedules the
    replies; the host re-arms a trigger whose verdict came). After the feed, the replay runs
    until nothing is queued, the card has gone quiet and nothing waits in ``on_stop``.

    ``rx_index`` records where every message's last byte is on RX (:class:`RxIndex`)."""
    tagged_a = ((f, 0) for f in frames_a)
    streams = [tagged_a]
    if frames_b is not None:
        streams.append((f, 1) for f in frames_b)
    merged = merge_frames_tagged(*streams)
    sched = Scheduler()
    base = sim.cycle
    start_cycle = sim.cycle
    kinds: Counter[str] = Counter()
    kept: list[np.ndarray] | None = [] if keep_records else None
    sent = [0, 0]
    stop = on_stop is not None
    if stop:
        sim.stop_on(tx_packet=True, record_kinds=stop_kinds)

    def drain() -> None:
        records = card.events()
        if len(records):
            _tally(records, kinds, kept)
            if on_records is not None:
                on_records(records)

    stopper = Stopper(sim, drain, on_stop) if stop else None

    def run(max_cycles: int | None = None) -> None:
        if stopper is not None:
            stopper.run(max_cycles)
        else:
            sim.run(max_cycles)

    def queue(batch: list[tuple[Frame, int]]) -> int:
        """Queue a chunk's frames at their scheduled cycles; the last one's start cycle."""
        per_line: list[list[bytes]] = [[], []]
        when: list[list[int]] = [[], []]
        for frame, line in batch:
            per_line[line].append(frame.data)
            when[line].append(base + sched.place(line, len(frame.data), frame.timestamp_ns))
        for line in (0, 1):
            if per_line[line]:
                idx = sim.send(line, per_line[line],
                               not_before=np.array(when[line], dtype=np.uint64))
                sent[line] += len(per_line[line])
                if rx_index is not None:
                    rx_index.add(line, per_line[line], idx)
        return max(max(w) for w in when if w)

    t0 = time.perf_counter()
    batch = list(itertools.islice(merged, chunk))
    last = queue(batch) if batch else 0
    while batch:
        following = list(itertools.islice(merged, chunk))
        horizon = last
        if following:
            last = queue(following)
        # Up to the last start of this chunk: the next one is queued behind it.
        run(horizon - sim.cycle)
        drain()
        if progress:
            progress(len(batch))
        batch = following
    run()
    drain()
    counters = card.counters()
    wall = time.perf_counter() - t0
    return ReplayResult(
        counters=counters, events=dict(sorted(kinds.items())), messages=counters["messages"],
        cycles=sim.cycle - start_cycle, frames={"a": sent[0], "b": sent[1]},
        wall_seconds=wall,
        records=np.concatenate(kept) if kept else None)


def parse_symbols(text: str, slots: int | None = None) -> list[str]:
    """``"AAPL,MSFT"`` as the list a replay subscribes to slots 0.. in order.

    Symbols are 1-8 upper-case letters or digits (ITCH pads them with spaces to 8 bytes), each
    listed once (two slots on one locate would be a host error, docs/book.md §2), and at most
    ``slots`` of them when the card's slot count is known. Raises ValueError saying which."""
    names = [t.strip() for t in text.split(",")]
    for name in names:
        if not name:
            raise ValueError(f"empty symbol in {text!r} (comma-separated, e.g. AAPL,MSFT)")
        if not (1 <= len(name) <= 8 and name.isascii() and name.isalnum()
                and name == name.upper()):
            raise ValueError(f"bad symbol {name!r}: 1 to 8 upper-case letters or digits")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"symbol {name} is listed twice")
        seen.add(name)
    if slots is not None and len(names) > slots:
        raise ValueError(f"{len(names)} symbols but the card has {slots} book slots")
    return names


BBO_HEADER = ("seq", "symbol", "bid_px", "bid_sz", "ask_px", "ask_sz")
TRADES_HEADER = ("seq", "symbol", "type", "price", "shares", "volume", "notional")

_BBO_BODY = body_dtype(EventKind.BBO)
_TRADE_BODY = body_dtype(EventKind.TRADE)
_ALERT_BODY = body_dtype(EventKind.BOOK_ALERT)


def _bodies(records: np.ndarray, kind: EventKind, dtype: np.dtype,
            n_slots: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(aux, bodies) of the records of ``kind`` (``aux`` < ``n_slots`` when given), stably
    sorted by ``itch_seq``: one source raises them in feed order already, the sort only makes
    the outputs independent of that."""
    sel = records[records["kind"] == kind]
    if n_slots is not None:
        sel = sel[sel["aux"] < n_slots]
    body = np.ascontiguousarray(sel["body"]).view(dtype)
    order = np.argsort(body["itch_seq"], kind="stable")
    return sel["aux"][order], body[order]


def reason_name(reason: int) -> str:
    try:
        return AlertReason(reason).name
    except ValueError:
        return f"UNKNOWN_{reason}"


class BookSink:
    """The book outputs of a replay, fed chunk by chunk (``replay(on_records=sink)``).

    BBO events of the subscribed slots become CSV rows ``seq,symbol,bid_px,bid_sz,ask_px,
    ask_sz`` (ITCH price units; an empty side is 0,0 as the card reports it) and trades rows
    ``seq,symbol,type,price,shares,volume,notional``, written as each chunk arrives. Alerts are
    summarised per (slot, reason) — the card raises one only when a stale bit becomes newly
    set, so there are few — and :meth:`books` reads each slot's final state off the card."""

    def __init__(self, symbols: Sequence[str], *, bbo_out: TextIO | None = None,
                 trades_out: TextIO | None = None):
        self.symbols = list(symbols)
        self._bbo = csv.writer(bbo_out, lineterminator="\n") if bbo_out else None
        self._trades = csv.writer(trades_out, lineterminator="\n") if trades_out else None
        if self._bbo:
            self._bbo.writerow(BBO_HEADER)
        if self._trades:
            self._trades.writerow(TRADES_HEADER)
        self.bbo_events = np.zeros(len(self.symbols), dtype=np.int64)
        self.trade_events = np.zeros(len(self.symbols), dtype=np.int64)
        #: (slot, reason) -> {"count", "first_seq", "locate", "order_ref", "price"}
        self.alerts: dict[tuple[int, int], dict] = {}
        self._names: dict[bytes, str] = {}

    def _name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = self._names[raw] = raw.rstrip(b" \0").decode("ascii", "replace")
        return name

    def __call__(self, records: np.ndarray) -> None:
        n = len(self.symbols)
        slots, b = _bodies(records, EventKind.BBO, _BBO_BODY, n)
        if len(b):
            np.add.at(self.bbo_events, slots, 1)
            if self._bbo:
                self._bbo.writerows(zip(
                    b["itch_seq"].tolist(), map(self._name, b["symbol"].tolist()),
                    b["bid_px"].tolist(), b["bid_sz"].tolist(), b["ask_px"].tolist(),
                    b["ask_sz"].tolist(), strict=True))
        slots, t = _bodies(records, EventKind.TRADE, _TRADE_BODY, n)
        if len(t):
            np.add.at(self.trade_events, slots, 1)
            if self._trades:
                self._trades.writerows(zip(
                    t["itch_seq"].tolist(), [self.symbols[i] for i in slots.tolist()],
                    [chr(c) for c in t["type"].tolist()], t["price"].tolist(),
                    t["shares"].tolist(), t["volume"].tolist(), t["notional"].tolist(),
                    strict=True))
        reasons, a = _bodies(records, EventKind.BOOK_ALERT, _ALERT_BODY)
        for reason, al in zip(reasons.tolist(), a, strict=True):
            key = (int(al["slot"]), reason)
            seen = self.alerts.get(key)
            if seen is None:
                self.alerts[key] = {"count": 1, "first_seq": int(al["itch_seq"]),
                                    "locate": int(al["locate"]),
                                    "order_ref": int(al["order_ref"]), "price": int(al["price"])}
            else:
                seen["count"] += 1

    def slot_name(self, slot: int) -> str:
        if slot == ALL_SLOTS:
            return "all books"
        return self.symbols[slot] if slot < len(self.symbols) else f"slot {slot}"

    def books(self, card: Card) -> dict[str, dict]:
        """Each subscribed symbol's final state as the card holds it (``Card.slot``), with
        the stale reasons by name and VWAP = notional / volume / 10,000 (ITCH prices carry
        four decimals), None before any trade."""
        out = {}
        for i, sym in enumerate(self.symbols):
            s = card.slot(i)
            bid_px, bid_sz, ask_px, ask_sz = s["bbo"]
            out[sym] = {
                "slot": i,
                "locate": s["locate"] if s["locate_known"] else None,
                "bbo": {"bid_px": bid_px, "bid_sz": bid_sz, "ask_px": ask_px,
                        "ask_sz": ask_sz},
                "stale": [r.name for r in AlertReason if s["stale"] & r.bit],
                "alerts": {reason_name(r): v["count"] for (sl, r), v in self.alerts.items()
                           if sl in (i, ALL_SLOTS)},
                "bbo_events": int(self.bbo_events[i]), "trades": int(self.trade_events[i]),
                "last_px": s["last_px"], "last_sz": s["last_sz"],
                "volume": s["volume"], "notional": s["notional"],
                "vwap": s["notional"] / s["volume"] / 10_000 if s["volume"] else None,
            }
        return out

    def warnings(self, books: dict[str, dict]) -> list[str]:
        """One line per alert (per slot and reason) and per symbol whose book is stale or
        never found in the day's directory: what a user must know before trusting the CSV."""
        lines = []
        for (slot, reason), v in self.alerts.items():
            what = f"BOOK_ALERT {reason_name(reason)} on {self.slot_name(slot)}"
            where = f" first at seq {v['first_seq']}"
            if reason in (AlertReason.CAPACITY, AlertReason.WINDOW, AlertReason.REF_RANGE,
                          AlertReason.LEVEL_OVERFLOW):
                where += f" (order {v['order_ref']}, price {v['price']})"
            times = f", {v['count']} times" if v["count"] > 1 else ""
            lines.append(what + where + times)
        for sym, b in books.items():
            if b["stale"]:
                lines.append(f"{sym}: book stale at the end ({', '.join(b['stale'])}): "
                             "its BBO and trades may not be exact")
            if b["locate"] is None:
                lines.append(f"{sym}: not in the day's stock directory (no R message): "
                             "no book")
        return lines


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


__all__ = ["BBO_HEADER", "DEFAULT_FEED", "TRADES_HEADER", "BookSink", "ReplayResult",
           "Scheduler", "detect_format", "load_frames", "merge_frames_tagged", "parse_symbols",
           "replay"]
