"""Reference model of the market-data ingress path: the executable form of docs/ingress.md.

The gateware (``hw/ingress/``) is compared against this model message for message, event
for event and counter for counter, so the model follows the document's structure and wording
rather than aiming for speed. Read it top to bottom next to the document:

1. :func:`parse_frame` — one frame on one line: the header checks of section 1 (with the
   ``RUNT`` rule), the late faults and framing walk of section 2, and the emission rule that
   decides which items (packet header, messages) the parser hands over.
2. :func:`frame_items` / :func:`line_items` — what the parser pushes into its line's entry
   FIFO, one :class:`Item` per beat at most, with the frame's end marker riding on the item
   of the ``tlast`` beat (or alone).
3. :class:`Sequencer` — section 4, cycle by cycle: control items, the pair rule, sessions,
   heartbeats, gaps, duplicates and invalidations.
4. :class:`IngressModel` — both lines and the sequencer together, with the per-frame
   counters of section 3.

Timing convention (shared with the cycle-exact benches): beat *b* of a frame that starts on
cycle *t* is on the bus in cycle *t + b*. An item completed in beat *b* is pushed at the end
of that cycle and can be popped by the sequencer from cycle *t + b + 1* on.

Where docs/ingress.md leaves a choice, the model documents the reading it takes at the place
it takes it (search for "Reading:").
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from hw.events import BODY_FIELDS, EventKind
from hw.ingress.reasons import COUNTED, MAX_FRAME, MAX_MESSAGE, MIN_MESSAGE, DropReason
from proto import itch, moldudp64
from proto.layout import MessageLayout
from proto.net import (
    ETH,
    ETHERTYPE_IPV4,
    ETHERTYPE_VLAN,
    IPPROTO_UDP,
    IPV4,
    IPV4_MF,
    IPV4_OFFSET_MASK,
    UDP,
    VLAN_TAG,
    ones_complement_sum,
)

__all__ = [
    "BEAT_BYTES", "FRAME_COUNTERS", "SEQUENCER_COUNTERS", "SEQ_MASK", "Arrival", "Delivered",
    "Event", "FrameDrop", "FrameResult", "IngressModel", "IngressResult", "Invalidation", "Item",
    "ItemKind", "Line", "LineFrame", "Msg", "PacketHeader", "Sequencer", "back_to_back",
    "beat_of", "frame_items", "line_items", "parse_frame",
]

#: Bytes per bus beat (64-bit ``tdata``).
BEAT_BYTES = 8
#: Sequence numbers are 64-bit registers in the gateware; arithmetic on them wraps.
SEQ_MASK = (1 << 64) - 1

_IP_VERSION = 4
#: Ones' complement sum of a valid IPv4 header (its checksum field included).
_CHECKSUM_OK = 0xFFFF
_SESSION = moldudp64.HEADER["session"]
_NO_MESSAGE_COUNTS = (moldudp64.HEARTBEAT_COUNT, moldudp64.END_OF_SESSION_COUNT)


class Line(enum.IntEnum):
    """A network line; the value is the ``line`` byte of event records (Reading: A = 0)."""

    A = 0
    B = 1

    @property
    def prefix(self) -> str:
        """Counter-name prefix: ``line_a`` / ``line_b``."""
        return f"line_{self.name.lower()}"


def beat_of(position: int) -> int:
    """The bus beat that carries frame byte ``position``."""
    return position // BEAT_BYTES


# ---------------------------------------------------------------------------------------------
# 1 + 2. One frame: header checks, late faults, framing walk, emission rule
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PacketHeader:
    """Item 0 of an accepted packet: its MoldUDP64 header, completed at ``pos`` = H − 1."""

    session: bytes  #: 10 raw bytes
    seq: int        #: sequence number of the first message (heartbeat: the next expected)
    count: int
    pos: int        #: frame position of the header's last byte

    @property
    def beat(self) -> int:
        return beat_of(self.pos)


@dataclass(frozen=True)
class Msg:
    """One framed message; ``pos`` is the frame position of its last byte."""

    seq: int    #: packet sequence number + ``index`` (modulo 2**64)
    index: int  #: 0-based position in the packet
    data: bytes
    pos: int

    @property
    def beat(self) -> int:
        return beat_of(self.pos)


@dataclass(frozen=True)
class FrameResult:
    """The parser's verdict on one frame and what it handed to the sequencer.

    ``header`` is present iff the packet header item was handed over; ``messages`` holds
    only the messages handed over under the emission rule. ``cutoff`` is the smallest
    detection position *d* of any late fault (``MAC_ERROR`` included): items whose last byte
    is at ``cutoff`` or later are blocked.
    """

    length: int
    mac_error: bool
    reason: DropReason
    dropped_whole: bool
    header: PacketHeader | None
    messages: tuple[Msg, ...]
    cutoff: int | None

    @property
    def good(self) -> bool:
        """An accepted packet without any fault (counts in ``mold_packets``)."""
        return self.reason is DropReason.NONE

    @property
    def end_beat(self) -> int:
        """The ``tlast`` beat."""
        return beat_of(self.length - 1)


@dataclass(frozen=True)
class _Accepted:
    """What the header checks learned about a frame that passed all of them."""

    h: int        #: position H: end of the MoldUDP64 header
    ip_end: int   #: l3 + total_length; equals udp_end once UDP_LENGTH passed
    session: bytes
    seq: int
    count: int


def _uint(frame: bytes, base: int, layout: MessageLayout, name: str) -> int:
    f = layout[name]
    return int.from_bytes(frame[base + f.offset:base + f.end], "big")


def _check_header(frame: bytes, filters: Collection[tuple[int, int]]) -> DropReason | _Accepted:
    """Section 1: the ten header checks in order, each preceded by its "needs bytes up to".

    Returns the reason of the first check that fails (``RUNT`` when the frame ends before
    the position a check needs), or what an accepted packet needs for the framing walk.
    """
    R = DropReason
    n = len(frame)
    # 1. ETHERTYPE (needs 14, or 18 with one 802.1Q tag; a second tag is just not IPv4).
    if n < ETH.length:
        return R.RUNT
    l3 = ETH.length
    ethertype = _uint(frame, 0, ETH, "ethertype")
    if ethertype == ETHERTYPE_VLAN:
        l3 += VLAN_TAG.length
        if n < l3:
            return R.RUNT
        ethertype = _uint(frame, ETH.length, VLAN_TAG, "ethertype")
    if ethertype != ETHERTYPE_IPV4:
        return R.ETHERTYPE
    # 2. IPV4_HEADER (needs l3 + 1).
    if n < l3 + IPV4["version_ihl"].end:
        return R.RUNT
    version_ihl = _uint(frame, l3, IPV4, "version_ihl")
    ihl_bytes = 4 * (version_ihl & 0xF)
    if version_ihl >> 4 != _IP_VERSION or ihl_bytes < IPV4.length:
        return R.IPV4_HEADER
    # 3-6 need the whole IPv4 header, options included (l4).
    l4 = l3 + ihl_bytes
    if n < l4:
        return R.RUNT
    if ones_complement_sum(frame[l3:l4]) != _CHECKSUM_OK:
        return R.IPV4_CHECKSUM
    total_length = _uint(frame, l3, IPV4, "total_length")
    if total_length < ihl_bytes + UDP.length:
        return R.IPV4_LENGTH
    if _uint(frame, l3, IPV4, "flags_fragment") & (IPV4_MF | IPV4_OFFSET_MASK):
        return R.FRAGMENT
    if _uint(frame, l3, IPV4, "protocol") != IPPROTO_UDP:
        return R.IP_PROTOCOL
    # 7-9 need the UDP header (l4 + 8 = m0).
    m0 = l4 + UDP.length
    if n < m0:
        return R.RUNT
    udp_length = _uint(frame, l4, UDP, "length")
    if udp_length != total_length - ihl_bytes:
        return R.UDP_LENGTH
    if (_uint(frame, l3, IPV4, "dst"), _uint(frame, l4, UDP, "dst_port")) not in filters:
        return R.FILTERED
    payload = udp_length - UDP.length  # U
    if payload < moldudp64.HEADER_LENGTH:
        return R.MOLD_HEADER
    # 10 needs the MoldUDP64 header (H).
    h = m0 + moldudp64.HEADER_LENGTH
    if n < h:
        return R.RUNT
    count = _uint(frame, m0, moldudp64.HEADER, "count")
    if (count in _NO_MESSAGE_COUNTS) != (payload == moldudp64.HEADER_LENGTH):
        return R.MOLD_COUNT
    return _Accepted(
        h=h, ip_end=l3 + total_length,
        session=bytes(frame[m0 + _SESSION.offset:m0 + _SESSION.end]),
        seq=_uint(frame, m0, moldudp64.HEADER, "sequence"), count=count,
    )


#: Tie-break between late faults detected at the same position (section 2): TRUNCATED, then
#: OVERSIZE, then the (single) framing fault.
_TIE_RANK = {DropReason.TRUNCATED: 0, DropReason.OVERSIZE: 1}
_FRAMING_RANK = 2


def _walk(frame: bytes, acc: _Accepted) -> tuple[list[Msg], tuple[int, DropReason] | None]:
    """Section 2's framing walk over ``length(2) + message`` blocks from H to udp_end.

    Returns every message completed inside the frame (before emission is applied) and the
    framing fault with its detection position, if one is detected. The walk stops where the
    frame ends: a fault it cannot see would lie beyond the frame, where ``TRUNCATED``
    (detected at the first byte of the ``tlast`` beat) precedes it anyway.
    """
    R = DropReason
    n, udp_end, prefix = len(frame), acc.ip_end, moldudp64.BLOCK_LENGTH_SIZE
    messages: list[Msg] = []
    pos = acc.h
    while pos < udp_end and pos < n:
        if pos == udp_end - 1:                # one stray byte: no room for a length field
            return messages, (pos, R.MOLD_OVERRUN)
        if pos + prefix > n:
            break
        length = int.from_bytes(frame[pos:pos + prefix], "big")
        d = pos + prefix - 1                  # the length field's 2nd byte
        # Reading: a length that is out of bounds *and* overruns counts as MSG_LENGTH (the
        # first row of the table); the document says only that there is one framing fault.
        if not MIN_MESSAGE <= length <= MAX_MESSAGE:
            return messages, (d, R.MSG_LENGTH)
        last = pos + prefix + length - 1
        if last >= udp_end:
            return messages, (d, R.MOLD_OVERRUN)
        if last >= n:
            break
        index = len(messages)
        messages.append(Msg(seq=(acc.seq + index) & SEQ_MASK, index=index,
                            data=bytes(frame[pos + prefix:last + 1]), pos=last))
        count_reached = index + 1 == acc.count
        payload_used = last == udp_end - 1
        if count_reached != payload_used:
            return messages, (last, R.MOLD_COUNT)
        if count_reached:
            break
        pos = last + 1
    return messages, None


def parse_frame(frame: bytes, mac_error: bool,
                filters: Collection[tuple[int, int]]) -> FrameResult:
    """Parse one frame as a line parser does (sections 1 and 2).

    ``mac_error`` is ``tuser`` on the ``tlast`` beat; ``filters`` holds the enabled filter
    entries as ``(destination IPv4 as int, destination UDP port)`` pairs (exact match).
    """
    if not frame:
        raise ValueError("a frame has at least one byte (tkeep is never empty)")
    n = len(frame)
    tlast_first = beat_of(n - 1) * BEAT_BYTES   # d of MAC_ERROR and TRUNCATED
    verdict = _check_header(frame, filters)
    if isinstance(verdict, DropReason):
        # Reading: late faults belong to accepted packets only, so a header fault beats a
        # TRUNCATED detected in H − 1's beat (as RUNT beats it for frames shorter than H).
        # MAC_ERROR overrides every other reason, header faults included.
        return FrameResult(length=n, mac_error=mac_error,
                           reason=DropReason.MAC_ERROR if mac_error else verdict,
                           dropped_whole=True, header=None, messages=(), cutoff=None)
    acc = verdict
    late: list[tuple[int, int, DropReason]] = []   # (d, tie rank, reason)
    if n < acc.ip_end:
        late.append((tlast_first, _TIE_RANK[DropReason.TRUNCATED], DropReason.TRUNCATED))
    if n > MAX_FRAME:
        late.append((MAX_FRAME, _TIE_RANK[DropReason.OVERSIZE], DropReason.OVERSIZE))
    walked, framing = _walk(frame, acc)
    if framing is not None:
        late.append((framing[0], _FRAMING_RANK, framing[1]))
    detections = [d for d, _, _ in late] + ([tlast_first] if mac_error else [])
    cutoff = min(detections, default=None)
    if mac_error:
        reason = DropReason.MAC_ERROR
    else:
        reason = min(late)[2] if late else DropReason.NONE
    header_pos = acc.h - 1
    # The header item obeys the emission rule like any item (section 1): MAC_ERROR and
    # TRUNCATED in its beat block it (their d is that beat's first byte); a framing fault later
    # in the same beat does not — the header is handed over and then squashed (section 4).
    dropped_whole = cutoff is not None and cutoff <= header_pos
    if dropped_whole:
        return FrameResult(length=n, mac_error=mac_error, reason=reason, dropped_whole=True,
                           header=None, messages=(), cutoff=cutoff)
    header = PacketHeader(session=acc.session, seq=acc.seq, count=acc.count, pos=header_pos)
    emitted = tuple(m for m in walked if cutoff is None or m.pos < cutoff)
    return FrameResult(length=n, mac_error=mac_error, reason=reason, dropped_whole=False,
                       header=header, messages=emitted, cutoff=cutoff)


# ---------------------------------------------------------------------------------------------
# Items: what a line parser pushes into its entry FIFO
# ---------------------------------------------------------------------------------------------

class ItemKind(enum.Enum):
    HEADER = "header"
    MESSAGE = "message"
    END = "end"          #: an end marker alone (no item completed in the tlast beat)


@dataclass(frozen=True)
class Item:
    """One FIFO entry: at most one item completes per beat (messages are ≥ 12 bytes long and
    the first one ends ≥ 14 bytes after the header), plus the end marker when it rides along.
    """

    kind: ItemKind
    frame: int     #: index of the frame on its line
    beat: int      #: frame-relative beat whose end pushes the entry
    payload: PacketHeader | Msg | None
    end: bool = False
    reason: DropReason = DropReason.NONE   #: with ``end``: the frame's verdict

    @property
    def bad(self) -> bool:
        """The end marker says the frame is bad."""
        return self.end and self.reason is not DropReason.NONE

    @property
    def control(self) -> bool:
        """A packet header or an entry carrying an end marker (section 4)."""
        return self.kind is not ItemKind.MESSAGE or self.end


def frame_items(result: FrameResult, frame: int = 0) -> list[Item]:
    """The FIFO entries of one frame. A frame dropped whole pushes nothing, not even an end
    marker; otherwise the end marker rides on the item completed in the ``tlast`` beat, or
    comes alone in that beat (always alone for ``MAC_ERROR`` and ``TRUNCATED``, which block
    every item of the ``tlast`` beat)."""
    if result.dropped_whole:
        return []
    assert result.header is not None
    items = [Item(ItemKind.HEADER, frame, result.header.beat, result.header)]
    items += [Item(ItemKind.MESSAGE, frame, m.beat, m) for m in result.messages]
    last = items[-1]
    if last.beat == result.end_beat:
        items[-1] = Item(last.kind, frame, last.beat, last.payload, end=True,
                         reason=result.reason)
    else:
        items.append(Item(ItemKind.END, frame, result.end_beat, None, end=True,
                          reason=result.reason))
    return items


def line_items(results: Sequence[FrameResult]) -> list[Item]:
    """The FIFO entries of a line's frames, in order (``Item.frame`` indexes ``results``)."""
    return [item for i, r in enumerate(results) for item in frame_items(r, i)]


# ---------------------------------------------------------------------------------------------
# 3. The sequencer
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivered:
    """A message on the output stream, delivered in sequencer ``cycle``."""

    seq: int
    line: Line
    data: bytes
    cycle: int
    frame: int = -1   #: index, on its line, of the frame the message came from


@dataclass(frozen=True)
class Invalidation:
    """An invalidation notice on the output stream: forget ``first..last`` from ``line``."""

    line: Line
    first: int
    last: int
    rolled_back: bool
    cycle: int
    next_seq: int = 0   #: ``expected`` after the invalidation (rolled back or not)


@dataclass(frozen=True)
class Event:
    """An event record as the sequencer generates it: ``fields`` are named and ordered as in
    ``hw.events.BODY_FIELDS[kind]``; ``cycle`` is the sequencer cycle that produced it."""

    kind: EventKind
    line: Line
    fields: dict[str, int | bytes]
    cycle: int


def _itch_counter(first_byte: int) -> str:
    layout = itch.MESSAGES.get(chr(first_byte))
    return f"itch_{layout.name}" if layout is not None else "itch_unknown"


#: Sequencer counters (section 4). Per-type counters are named by layout name, not by type
#: code, because 'h' (operational halt) and 'H' (stock trading action) differ only in case.
SEQUENCER_COUNTERS: tuple[str, ...] = (
    "messages", "duplicates", "gaps", "gap_messages", "heartbeats", "end_of_session",
    "session_mismatch", "invalidations", "invalidated_messages", "line_a_won", "line_b_won",
    *(f"itch_{itch.MESSAGES[code].name}" for code in itch.TYPE_CODES), "itch_unknown",
)

Arrival = tuple[int, Item]


class Sequencer:
    """Section 4, one cycle per :meth:`step`.

    ``line_a`` / ``line_b`` are the entries each parser pushes, as ``(arrival cycle, item)``
    in push order: an entry can be popped from its arrival cycle on. ``frame_ends`` holds,
    per line, the ``tlast`` cycle of every frame that line received (dropped ones included);
    the GAP event reports how many of them lie before the event's cycle, the value of the
    line's ``frames`` counter that cycle (counters update at the end of the ``tlast`` beat,
    the same convention as FIFO entries).

    The architectural state of section 4 is kept in public attributes (``locked``,
    ``session``, ``expected`` and the per-line lists ``discard``, ``any``, ``first``,
    ``last``) so tests and benches can inspect it between steps.
    """

    def __init__(self, line_a: Sequence[Arrival], line_b: Sequence[Arrival] = (), *,
                 frame_ends: tuple[Sequence[int], Sequence[int]] = ((), ())):
        self._fifo = (list(line_a), list(line_b))
        self._arrivals = tuple([a[0] for a in f] for f in self._fifo)
        # Optional third element of an arrival: the cycle from which the item is squashed
        # (its frame is known bad); None for frames that never go bad.
        self._squash_at = tuple([a[2] if len(a) > 2 else None for a in f] for f in self._fifo)
        for line, arrivals in zip(Line, self._arrivals, strict=True):
            if any(b < a for a, b in zip(arrivals, arrivals[1:], strict=False)):
                raise ValueError(f"line {line.name}: entries must arrive in push order")
        self._frame_ends = tuple(sorted(e) for e in frame_ends)
        self._popped = [0, 0]
        self.cycle = -1                      #: the last cycle stepped
        self.locked = False
        self.session = bytes(_SESSION.size)
        self.expected = 0
        self.discard = [False, False]
        self.any = [False, False]
        self.first = [0, 0]
        self.last = [0, 0]
        #: ``expected`` before the first delivery from each line's frame in progress.
        self.before = [0, 0]
        #: The lock is provisional until the frame that took it ends (``lock_line``).
        self.lock_prov = False
        self.lock_line = Line.A
        # Per line: the last sequence number popped and not discarded (for GAP events).
        self._seen: list[int | None] = [None, None]
        self._next_at_cycle_start = (0, 0)
        self.stream: list[Delivered | Invalidation] = []
        self.events: list[Event] = []
        self.counters: dict[str, int] = dict.fromkeys(SEQUENCER_COUNTERS, 0)
        #: Most entries waiting in each FIFO at the start of a cycle (arrived, not popped).
        self.fifo_peak = [0, 0]
        self._head_frame = [-1, -1]

    # -- driving ------------------------------------------------------------------------------
    def unlock(self) -> None:
        """Sequence reset (CSR): clears ``locked``; the next packet header locks again.
        Takes effect from the next cycle stepped."""
        self.locked = False
        self.lock_prov = False

    @property
    def pending(self) -> bool:
        """Entries remain to be popped."""
        return any(p < len(f) for p, f in zip(self._popped, self._fifo, strict=True))

    def run(self, until: int | None = None) -> None:
        """Step every cycle in which a FIFO is non-empty, up to and including ``until``.
        Cycles in which both FIFOs are empty change nothing and are skipped."""
        while self.pending:
            waiting = [a[p] for p, a in zip(self._popped, self._arrivals, strict=True)
                       if p < len(a)]
            cycle = max(self.cycle + 1, min(waiting))
            if until is not None and cycle > until:
                return
            self.step(cycle)

    def step(self, cycle: int) -> None:
        """Process one cycle: one control item, or the pair rule on two plain messages."""
        if cycle <= self.cycle:
            raise ValueError(f"cycle {cycle} is not after cycle {self.cycle}")
        self.cycle = cycle
        heads = [self._head(line) for line in Line]
        self._head_frame = [-1 if h is None else h.frame for h in heads]
        for line in Line:
            waiting = bisect.bisect_right(self._arrivals[line], cycle) - self._popped[line]
            self.fifo_peak[line] = max(self.fifo_peak[line], waiting)
        self._next_at_cycle_start = tuple(
            0 if s is None else (s + 1) & SEQ_MASK for s in self._seen)
        live = [head is not None and head.kind is not ItemKind.END
                and not self._squashed(line) for line, head in zip(Line, heads, strict=True)]
        for line, head in zip(Line, heads, strict=True):
            if head is None:
                continue
            if (live[line] and head.kind is ItemKind.HEADER) or head.end:
                self._pop(line)                        # A's control item first
                self._control(line, head, live[line])
                return
        self._pair(heads, live)

    def _squashed(self, line: Line) -> bool:
        """The head's frame is known bad by now: its item counts as absent (section 4)."""
        at = self._squash_at[line][self._popped[line]]
        return at is not None and at <= self.cycle

    def _head(self, line: Line) -> Item | None:
        i = self._popped[line]
        if i < len(self._fifo[line]) and self._arrivals[line][i] <= self.cycle:
            return self._fifo[line][i][1]
        return None

    def _pop(self, line: Line) -> None:
        self._popped[line] += 1

    # -- control items ------------------------------------------------------------------------
    def _control(self, line: Line, item: Item, live: bool) -> None:
        """A packet header, or an entry carrying an end marker: the item first (unless it is
        squashed), then the end marker."""
        if not live:
            pass
        elif item.kind is ItemKind.HEADER:
            assert isinstance(item.payload, PacketHeader)
            self._header(line, item.payload)
        elif item.kind is ItemKind.MESSAGE:
            assert isinstance(item.payload, Msg)
            self._message(line, item.payload)
        if item.end:
            self._end(line, item.bad)

    def _header(self, line: Line, h: PacketHeader) -> None:
        if not self.locked:
            self.session, self.expected, self.locked = h.session, h.seq, True
            self.lock_prov, self.lock_line = True, line
            self._event(EventKind.SESSION, line, next_seq=h.seq, session=h.session)
        if h.session != self.session:
            self.discard[line] = True
            self.counters["session_mismatch"] += 1
            return
        self.discard[line] = False
        self.any[line] = False
        if h.count == moldudp64.HEARTBEAT_COUNT:
            self.counters["heartbeats"] += 1
        elif h.count == moldudp64.END_OF_SESSION_COUNT:
            self.counters["end_of_session"] += 1
            # Reading: next_seq is the packet's sequence number (the next message number the
            # publisher announces), reported before the gap check below.
            self._event(EventKind.END_OF_SESSION, line, next_seq=h.seq, session=h.session)
        if h.count in _NO_MESSAGE_COUNTS and h.seq > self.expected:
            self._gap(line, h.seq)
            self.expected = h.seq

    def _end(self, line: Line, bad: bool) -> None:
        if bad and self.any[line]:
            first, last = self.first[line], self.last[line]
            count = ((last - first) & SEQ_MASK) + 1
            rolled_back = self.expected == (last + 1) & SEQ_MASK
            if rolled_back:
                self.expected = self.before[line]
            self._event(EventKind.INVALIDATE, line, first=first, last=last,
                        next_seq=self.expected, count=count, rolled_back=int(rolled_back))
            self.counters["invalidations"] += 1
            self.counters["invalidated_messages"] += count
            self.stream.append(Invalidation(line, first, last, rolled_back, self.cycle,
                                            self.expected))
        self.any[line] = False
        self.discard[line] = False
        if self.lock_prov and line == self.lock_line:
            # The frame that took the lock has ended; a bad one gives the lock back.
            self.lock_prov = False
            if bad:
                self.locked = False

    # -- messages -----------------------------------------------------------------------------
    def _message(self, line: Line, m: Msg) -> None:
        """A message processed on its own: silently dropped, duplicate, or delivered."""
        if self.discard[line]:
            return
        if m.seq < self.expected:
            self._duplicate(line, m)
        else:
            self._deliver(line, m)

    def _pair(self, heads: list[Item | None], alive: list[bool]) -> None:
        """The pair rule on two plain-message heads (or one, when the other FIFO is empty).

        Reading: heads of discarding lines are popped and dropped in the same cycle in which
        the other head is processed; a discarded head does not use up the cycle.
        """
        live: list[tuple[Line, Msg]] = []
        for line, head in zip(Line, heads, strict=True):
            if head is None:
                continue
            if self.discard[line] or not alive[line]:
                self._pop(line)        # dropped silently (discarded or squashed)
            else:
                assert isinstance(head.payload, Msg)
                live.append((line, head.payload))
        if len(live) == 1:
            line, m = live[0]
            self._pop(line)
            self._message(line, m)
            return
        if not live:
            return
        (_, a), (_, b) = live
        e = self.expected
        if a.seq >= e and b.seq >= e and a.seq != b.seq:
            # Both new and different: only the smaller is popped; the other waits.
            line, m = (Line.A, a) if a.seq < b.seq else (Line.B, b)
            self._pop(line)
            self._deliver(line, m)
            return
        self._pop(Line.A)
        self._pop(Line.B)
        if a.seq < e and b.seq < e:
            self._duplicate(Line.A, a)
            self._duplicate(Line.B, b)
        elif a.seq < e:
            self._duplicate(Line.A, a)
            self._deliver(Line.B, b)
        elif b.seq < e:
            self._duplicate(Line.B, b)
            self._deliver(Line.A, a)
        else:                          # equal: A's copy wins
            self._deliver(Line.A, a)
            self._duplicate(Line.B, b)

    def _see(self, line: Line, seq: int) -> None:
        self._seen[line] = seq

    def _duplicate(self, line: Line, m: Msg) -> None:
        self._see(line, m.seq)
        self.counters["duplicates"] += 1

    def _deliver(self, line: Line, m: Msg) -> None:
        self._see(line, m.seq)
        if m.seq > self.expected:
            self._gap(line, m.seq)
        if not self.any[line]:
            self.before[line] = self.expected
        self.expected = (m.seq + 1) & SEQ_MASK
        self.counters["messages"] += 1
        self.counters[f"{line.prefix}_won"] += 1
        self.counters[_itch_counter(m.data[0])] += 1
        if not self.any[line]:
            self.first[line] = m.seq
        self.last[line] = m.seq
        self.any[line] = True
        self.stream.append(Delivered(m.seq, line, m.data, self.cycle, self._head_frame[line]))

    def _gap(self, line: Line, received: int) -> None:
        """A forward jump to ``received`` (a message, or a heartbeat / end-of-session header).

        Reading: ``line_X_next`` is the last sequence number popped from line X and not
        discarded, plus one (0 if none), as it stood at the start of this cycle: entries
        popped in this cycle are not included. Packet headers do not change it.
        ``line_X_frames`` counts the frames (dropped ones included) whose ``tlast`` cycle is
        before this one, the value of the ``line_X_frames`` counter this cycle.
        """
        missing = received - self.expected
        a_next, b_next = self._next_at_cycle_start
        a_frames, b_frames = (bisect.bisect_left(e, self.cycle) for e in self._frame_ends)
        self._event(EventKind.GAP, line, expected=self.expected, received=received,
                    missing=missing, line_a_next=a_next, line_b_next=b_next,
                    line_a_frames=a_frames, line_b_frames=b_frames)
        self.counters["gaps"] += 1
        self.counters["gap_messages"] += missing

    def _event(self, kind: EventKind, line: Line, **fields: int | bytes) -> None:
        names = tuple(name for name, _ in BODY_FIELDS[kind])
        if tuple(fields) != names:
            raise AssertionError(f"{kind.name} fields {tuple(fields)} differ from {names}")
        self.events.append(Event(kind, line, fields, self.cycle))


# ---------------------------------------------------------------------------------------------
# 4. Both lines together, with the per-frame counters of section 3
# ---------------------------------------------------------------------------------------------

#: Per-frame counters kept by the parsers (section 3), in a fixed order.
FRAME_COUNTERS: tuple[str, ...] = (
    "frames", "frames_dropped", "line_a_frames", "line_b_frames", "line_a_dropped",
    "line_b_dropped", "mold_packets", *(r.counter for r in COUNTED),
)


@dataclass(frozen=True)
class LineFrame:
    """A frame on a line's bus: beat *b* is on the bus in cycle ``start + b``."""

    data: bytes
    start: int
    mac_error: bool = False

    @property
    def end_cycle(self) -> int:
        """The cycle of the ``tlast`` beat."""
        return self.start + beat_of(len(self.data) - 1)


@dataclass(frozen=True)
class FrameDrop:
    """A dropped frame (whole or bad): the content of a FRAME_DROP report."""

    line: Line
    index: int         #: 0-based index of the frame on its line
    reason: DropReason
    frame_bytes: int
    end_cycle: int     #: cycle of its ``tlast`` beat


@dataclass
class IngressResult:
    stream: list[Delivered | Invalidation]   #: the message stream, in order
    events: list[Event]                      #: sequencer events, in order
    counters: dict[str, int]                 #: FRAME_COUNTERS then SEQUENCER_COUNTERS
    frames: tuple[list[FrameResult], list[FrameResult]]   #: per line, per frame
    drops: list[FrameDrop]                   #: per line in frame order, line A first
    fifo_peak: tuple[int, int]               #: see Sequencer.fifo_peak

    @property
    def delivered(self) -> list[Delivered]:
        return [d for d in self.stream if isinstance(d, Delivered)]


def back_to_back(frames: Iterable[bytes], *, start: int = 0,
                 mac_errors: Collection[int] = ()) -> list[LineFrame]:
    """Frames one after the other with no idle cycle between them (the worst case a MAC
    can produce); ``mac_errors`` are indices of frames with ``tuser`` set."""
    out: list[LineFrame] = []
    for i, data in enumerate(frames):
        f = LineFrame(bytes(data), start, i in mac_errors)
        out.append(f)
        start = f.end_cycle + 1
    return out


class IngressModel:
    """Lines A and B, their parsers and the sequencer, from reset.

    ``filters`` are the enabled filter entries, ``(destination IPv4 as int, UDP port)``.
    """

    def __init__(self, filters: Collection[tuple[int, int]]):
        self.filters = frozenset((int(ip), int(port)) for ip, port in filters)

    def run(self, frames_a: Sequence[LineFrame], frames_b: Sequence[LineFrame] = (), *,
            unlocks: Iterable[int] = ()) -> IngressResult:
        """Run both lines to completion. ``unlocks`` are cycles at whose start a sequence
        reset (CSR) clears ``locked``."""
        counters = dict.fromkeys(FRAME_COUNTERS, 0)
        results: tuple[list[FrameResult], list[FrameResult]] = ([], [])
        entries: tuple[list[Arrival], list[Arrival]] = ([], [])
        ends: tuple[list[int], list[int]] = ([], [])
        drops: list[FrameDrop] = []
        for line, frames in zip(Line, (frames_a, frames_b), strict=True):
            busy_until = -1
            for i, f in enumerate(frames):
                if f.start <= busy_until:
                    raise ValueError(f"line {line.name} frame {i} starts in cycle {f.start}, "
                                     f"while the bus is busy until cycle {busy_until}")
                busy_until = f.end_cycle
                r = parse_frame(f.data, f.mac_error, self.filters)
                results[line].append(r)
                squash_at = None if r.dropped_whole or r.cutoff is None else \
                    f.start + beat_of(r.cutoff) + 1
                entries[line].extend((f.start + item.beat + 1, item, squash_at)
                                     for item in frame_items(r, i))
                ends[line].append(f.end_cycle)
                counters["frames"] += 1
                counters[f"{line.prefix}_frames"] += 1
                if r.good:
                    counters["mold_packets"] += 1
                else:
                    counters["frames_dropped"] += 1
                    counters[f"{line.prefix}_dropped"] += 1
                    counters[r.reason.counter] += 1
                    drops.append(FrameDrop(line, i, r.reason, r.length, f.end_cycle))
        seq = Sequencer(entries[Line.A], entries[Line.B], frame_ends=ends)
        for cycle in sorted(unlocks):
            seq.run(until=cycle - 1)
            seq.unlock()
        seq.run()
        return IngressResult(stream=seq.stream, events=seq.events,
                             counters=counters | seq.counters, frames=results, drops=drops,
                             fifo_peak=(seq.fifo_peak[Line.A], seq.fifo_peak[Line.B]))

    def run_single(self, frames: Iterable[bytes], *,
                   mac_errors: Collection[int] = ()) -> IngressResult:
        """Frames back to back on line A only, from cycle 0."""
        return self.run(back_to_back(frames, mac_errors=mac_errors))
