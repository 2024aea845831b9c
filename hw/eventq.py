"""The event collector: many sources in, one C2H AXI4-Stream of 64-byte records out.

Sources raise at most one event per cycle each and never wait. Each has a small FIFO that
takes the event with its timestamp (the cycle it was raised); a round-robin picks one source per
cycle and gives the record the next sequence number, and the next cycle the record is written
into the C2H FIFO (block RAM), which the DMA engine drains.

Why each source declares its kinds: most events use a small part of the 48-byte body (a
frame drop 10 bytes, a verdict 24), and the collector's cost is its source FIFOs (distributed
RAM) and the multiplexer that picks one of them, both as wide as what a source stores. So a
source stores only the body bits of the widest kind it declares (:func:`hw.events.body_bits`);
the record's remaining body bytes are zero, exactly as the narrower kinds define them. The
collector alone, with its sources as ports, shrinks from 7,765 to 4,377 LUT4 (LUT4-only
mapping). In the flattened core Yosys had already found most of those bits constant and
dropped them, so there the gain is small; what the declaration adds is that the width is
stated and checked (``events_undeclared``) instead of left to the optimiser.

Loss is never silent:

* When the C2H FIFO is full (the host is not draining its ring), the record is dropped *after*
  taking its sequence number, so the host sees a hole in the numbers. ``events_lost`` counts it.
* When a source FIFO is full (more than one event per cycle for a while — only the debug
  message tap can do that), the event is dropped and counted in ``events_lost``.
* An event of a kind its source did not declare (a wiring mistake, which would lose body
  bits) is never stored: it is counted in ``events``, ``events_lost`` and
  ``events_undeclared``, whatever the mask.

``events`` counts every event raised, so ``events - events_lost`` is what reached the ring.

Why a source FIFO stores only the low bits of the timestamp: the record's timestamp is the
64-bit ``time`` of the cycle the event was raised, and storing all of it made 64 bits of every
source FIFO and of the read multiplexer (in the core, a fifth of all their bits and over a
third of the narrowest FIFO's). But an entry does not wait long, so its age fits in a few bits
and the read side can rebuild the rest from the current ``time``: a FIFO stores
``stamp = time[:T]`` and the picked entry's timestamp is ``time - ((time[:T] - stamp) mod
2**T)``, which is exact as long as the entry is read less than ``2**T`` cycles after it was
written (:class:`EventCollector` has the bound and how ``T`` follows from it). That costs one
subtractor after the pick (not one per source) and saves, in the core, 57 bits in each of the
12 source FIFOs and in the multiplexer. The collector alone then goes from 4,377 to 3,424 LUT4
and from 932 to 764 TRELLIS_DPR16X4 (``tools/synth_ecp5.py
tools.bench.bench_synth:block_events --nowidelut``); unlike the unused body bits, these bits
are not constant in the flattened core either, so the saving holds there too.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.events import BODY, RECORD, EventKind, body_bits, source_signature
from hw.lib.fifo import BlockFIFO
from hw.lib.select import any_of, one_hot_or


class C2HSignature(wiring.Signature):
    """The C2H AXI4-Stream, from the sender's point of view: one record per beat."""

    def __init__(self, width: int = RECORD.size):
        super().__init__({
            "tdata": Out(width), "tvalid": Out(1), "tready": In(1), "tlast": Out(1),
        })


class EventCollector(wiring.Component):
    """``kinds[i]``: the event kinds source ``src<i>`` raises; ``depth``: records the C2H FIFO
    holds; ``source_depth``: events each source FIFO holds.

    ``time`` must be a free-running cycle counter: it goes up by one (modulo 2**64) every cycle
    of the collector's domain. The core's ``time`` is one (``time.eq(time + 1)``, in the same
    domain and so reset with it; nothing else writes it). The collector relies on it because a
    source FIFO keeps only ``stamp_bits`` (``T``) low bits of the timestamp and the read side
    rebuilds the rest from ``time`` (module docstring). The rebuilt timestamp is the one written
    iff the entry is read less than ``2**T`` cycles after it was written, and the wait is
    bounded by construction:

    * an entry is readable the cycle after it is written (``SyncFIFO`` reads combinationally)
      and has at most ``source_depth - 1`` entries ahead of it (a full FIFO takes nothing);
    * the collector never waits: every cycle in which some source FIFO is non-empty it reads
      one of them, whether or not the C2H FIFO has room (a record the ring cannot take is
      dropped after taking its sequence number);
    * the round-robin starts after the source it served last, so a source that stays non-empty
      is served at least once every ``n_sources`` cycles.

    So the entry leaves its FIFO within ``source_depth * n_sources`` cycles of being written
    (each of the at most ``source_depth`` reads it waits for, its own included, comes within
    ``n_sources`` cycles of the previous one), and ``T`` is the fewest bits with
    ``2**T > source_depth * n_sources``: 7 for the core's 12 sources of depth 8 (96 < 128).

    Why the source FIFOs are distributed RAM (``SyncFIFO``) and the C2H FIFO block RAM
    (:class:`~hw.lib.fifo.BlockFIFO`): the source FIFOs are where the pick's multiplexer
    reads, about 2,600 bits wide in the core. In distributed RAM they sit beside it. In block
    RAM (tried on f8de9f8: 650 TRELLIS_DPR16X4 fewer, the 8-slot core placed at 67% instead
    of 71%) every one of those bits comes from a DP16KD site across the die, and router2 was
    still at 22,000–24,000 overused wires after 9 iterations where the distributed-RAM core
    is far below (docs/BENCHMARKS.md).
    Adding a way for the collector to stall (back-pressure from the C2H FIFO, say) breaks the
    bound and has to widen ``T`` with it.

    If ``time`` jumped (it does not in the core: a reset of the domain empties the source FIFOs
    too), only the entries in a source FIFO at the jump would get a wrong timestamp, shifted by
    the jump; entries written after it are exact again.
    """

    def __init__(self, kinds: Sequence[Collection[EventKind]], *, depth: int = 512,
                 source_depth: int = 8):
        if not kinds:
            raise ValueError("need at least one source")
        for i, ks in enumerate(kinds):
            if not ks:
                raise ValueError(f"source {i} declares no event kind")
            for k in ks:
                EventKind(k)
        self.kinds = [tuple(EventKind(k) for k in ks) for ks in kinds]
        self.n_sources = n = len(kinds)
        self.depth = depth
        self.source_depth = source_depth
        #: Longest an entry waits in its source FIFO, in cycles (class docstring).
        self.max_wait = source_depth * n
        #: Timestamp bits a source FIFO stores: the fewest that tell every wait apart.
        self.stamp_bits = self.max_wait.bit_length()
        assert self.max_wait < 1 << self.stamp_bits
        members = {f"src{i}": In(source_signature()) for i in range(n)}
        members |= {
            "time": In(64),
            "mask": In(32),           # bit k: events of kind k are raised
            "c2h": Out(C2HSignature()),
            "inc_events": Out(range(n + 1)),
            "inc_events_lost": Out(range(n + 2)),
            "inc_events_undeclared": Out(range(n + 1)),
        }
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.n_sources
        # What a source FIFO stores besides the body: the low bits of the timestamp only.
        head = data.StructLayout({"stamp": self.stamp_bits, "kind": 8, "line": 8, "aux": 16})

        fifos = []
        stored = []     # per source: (head view, body bits) of its FIFO's read side
        raised = []
        lost_at_source = []
        undeclared = []
        for i in range(n):
            src = getattr(self, f"src{i}")
            bits = body_bits(*self.kinds[i])
            f = SyncFIFO(width=head.size + bits, depth=self.source_depth)
            m.submodules[f"src_fifo{i}"] = f
            fifos.append(f)
            declared = any_of(src.payload.kind == k for k in self.kinds[i])
            # An undeclared kind is counted whatever the mask says (the mask is for kinds
            # the host does not want, not for wiring bugs).
            r = Signal(name=f"raised{i}")
            m.d.comb += r.eq(src.valid & (self.mask.bit_select(src.payload.kind, 1)
                                          | ~declared))
            raised.append(r)
            bad = Signal(name=f"undeclared{i}")
            m.d.comb += bad.eq(r & ~declared)
            undeclared.append(bad)
            w = data.View(head, f.w_data[:head.size])
            m.d.comb += [w.stamp.eq(self.time[:len(w.stamp)]), w.kind.eq(src.payload.kind),
                         w.line.eq(src.payload.line), w.aux.eq(src.payload.aux),
                         f.w_data[head.size:].eq(src.payload.body.as_value()[:bits]),
                         f.w_en.eq(r & declared)]
            lost = Signal(name=f"lost_src{i}")
            m.d.comb += lost.eq(r & (~declared | ~f.w_rdy))
            lost_at_source.append(lost)
            stored.append((data.View(head, f.r_data[:head.size]), f.r_data[head.size:]))

        # Round-robin: start looking after the source served last.
        last_served = Signal(range(n))
        pick = Signal(range(n))
        have = Signal()
        for k in reversed(range(n)):  # priority: last_served+1 first, wrapping
            for i in range(n):
                cand = (i + 1 + k) % n
                with m.If((last_served == i) & fifos[cand].r_rdy):
                    m.d.comb += [pick.eq(cand), have.eq(1)]
        grant = [Signal(name=f"grant{i}") for i in range(n)]
        for i in range(n):
            m.d.comb += [grant[i].eq(have & (pick == i)), fifos[i].r_en.eq(grant[i])]
        with m.If(have):
            m.d.sync += last_served.eq(pick)

        # The pick as an AND-OR over the one-hot grant, each source only as wide as it is
        # (the missing body bits are constant zero, so they cost nothing).
        picked = data.View(head, Signal(head.size))
        body = Signal(BODY.size)
        m.d.comb += [
            picked.eq(one_hot_or(grant, [h.as_value() for h, _ in stored])),
            body.eq(one_hot_or(grant, [b for _, b in stored], BODY.size)),
        ]

        # The picked entry's age: the low bits of time less the stamp, mod 2**T (exact: the
        # entry is younger than 2**T cycles). The pick is registered with its age and its
        # sequence number, and the record is written into the C2H FIFO the next cycle, its
        # full timestamp rebuilt there from the registers (time is one more by then). Written
        # in the pick's own cycle, the round-robin, the read multiplexer, the 64-bit
        # subtraction's carry chain and the wires to the FIFO's block RAM were one path: the
        # critical path of the 4-slot core on ce5a8cc (36.35 ns, three-quarters routing).
        # The cycle it adds is the host's, not the trading path's (events are copies).
        age = Signal(self.stamp_bits)
        m.d.comb += age.eq(self.time[:len(age)] - picked.stamp)
        seq = Signal(32)
        st_valid = Signal()
        st_head = Signal(head)
        st_body = Signal(BODY.size)
        st_age = Signal(self.stamp_bits)
        st_seq = Signal(32)
        m.d.sync += [st_valid.eq(have), st_head.eq(picked), st_body.eq(body), st_age.eq(age),
                     st_seq.eq(seq)]
        with m.If(have):
            m.d.sync += seq.eq(seq + 1)

        m.submodules.c2h_fifo = c2h = BlockFIFO(width=RECORD.size, depth=self.depth)
        rec = data.View(RECORD, c2h.w_data)
        m.d.comb += [
            rec.header.seq.eq(st_seq),
            rec.header.kind.eq(st_head.kind),
            rec.header.line.eq(st_head.line),
            rec.header.aux.eq(st_head.aux),
            rec.header.timestamp.eq(self.time - (st_age + 1)),
            rec.body.eq(st_body),
            c2h.w_en.eq(st_valid),
        ]
        lost_at_ring = Signal()
        m.d.comb += lost_at_ring.eq(st_valid & ~c2h.w_rdy)

        m.d.comb += [
            self.c2h.tdata.eq(c2h.r_data),
            self.c2h.tvalid.eq(c2h.r_rdy),
            self.c2h.tlast.eq(1),
            c2h.r_en.eq(self.c2h.tready),
            self.inc_events.eq(sum(raised)),
            self.inc_events_lost.eq(sum(lost_at_source) + lost_at_ring),
            self.inc_events_undeclared.eq(sum(undeclared)),
        ]
        return m
