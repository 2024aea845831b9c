"""The event collector: many sources in, one C2H AXI4-Stream of 64-byte records out.

Sources raise at most one event per cycle each and never wait. Each has a small FIFO that
takes the event with its timestamp (the cycle it was raised); a round-robin picks one source per
cycle, gives the record the next sequence number and writes it into the C2H FIFO (block RAM),
which the DMA engine drains.

Loss is never silent:

* When the C2H FIFO is full (the host is not draining its ring), the record is dropped *after*
  taking its sequence number, so the host sees a hole in the numbers. ``events_lost`` counts it.
* When a source FIFO is full (more than one event per cycle for a while — only the debug
  message tap can do that), the event is dropped and counted in ``events_lost``.

``events`` counts every event raised, so ``events - events_lost`` is what reached the ring.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hw.events import RECORD, SOURCE, source_signature


class C2HSignature(wiring.Signature):
    """The C2H AXI4-Stream, from the sender's point of view: one record per beat."""

    def __init__(self, width: int = RECORD.size):
        super().__init__({
            "tdata": Out(width), "tvalid": Out(1), "tready": In(1), "tlast": Out(1),
        })


class EventCollector(wiring.Component):
    """``sources``: how many event sources; ``depth``: records the C2H FIFO holds."""

    def __init__(self, n_sources: int, *, depth: int = 512, source_depth: int = 8):
        if n_sources < 1:
            raise ValueError("need at least one source")
        self.n_sources = n_sources
        self.depth = depth
        self.source_depth = source_depth
        members = {f"src{i}": In(source_signature()) for i in range(n_sources)}
        members |= {
            "time": In(64),
            "mask": In(32),           # bit k: events of kind k are raised
            "c2h": Out(C2HSignature()),
            "inc_events": Out(range(n_sources + 1)),
            "inc_events_lost": Out(range(n_sources + 2)),
        }
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.n_sources
        stamped = data.StructLayout({"timestamp": 64, "event": SOURCE})

        fifos = []
        raised = []
        lost_at_source = []
        for i in range(n):
            src = getattr(self, f"src{i}")
            f = SyncFIFO(width=stamped.size, depth=self.source_depth)
            m.submodules[f"src_fifo{i}"] = f
            fifos.append(f)
            r = Signal(name=f"raised{i}")
            m.d.comb += r.eq(src.valid & self.mask.bit_select(src.payload.kind, 1))
            raised.append(r)
            w = data.View(stamped, f.w_data)
            m.d.comb += [w.timestamp.eq(self.time), w.event.eq(src.payload), f.w_en.eq(r)]
            lost = Signal(name=f"lost_src{i}")
            m.d.comb += lost.eq(r & ~f.w_rdy)
            lost_at_source.append(lost)

        # Round-robin: start looking after the source served last.
        last_served = Signal(range(n))
        pick = Signal(range(n))
        have = Signal()
        for k in reversed(range(n)):  # priority: last_served+1 first, wrapping
            for i in range(n):
                cand = (i + 1 + k) % n
                with m.If((last_served == i) & fifos[cand].r_rdy):
                    m.d.comb += [pick.eq(cand), have.eq(1)]
        for i in range(n):
            m.d.comb += fifos[i].r_en.eq(have & (pick == i))
        with m.If(have):
            m.d.sync += last_served.eq(pick)

        picked = data.View(stamped, Signal(stamped.size))
        with m.Switch(pick):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += picked.eq(fifos[i].r_data)

        m.submodules.c2h_fifo = c2h = SyncFIFOBuffered(width=RECORD.size, depth=self.depth)
        seq = Signal(32)
        rec = data.View(RECORD, c2h.w_data)
        m.d.comb += [
            rec.header.seq.eq(seq),
            rec.header.kind.eq(picked.event.kind),
            rec.header.line.eq(picked.event.line),
            rec.header.aux.eq(picked.event.aux),
            rec.header.timestamp.eq(picked.timestamp),
            rec.body.eq(picked.event.body),
            c2h.w_en.eq(have),
        ]
        with m.If(have):
            m.d.sync += seq.eq(seq + 1)
        lost_at_ring = Signal()
        m.d.comb += lost_at_ring.eq(have & ~c2h.w_rdy)

        m.d.comb += [
            self.c2h.tdata.eq(c2h.r_data),
            self.c2h.tvalid.eq(c2h.r_rdy),
            self.c2h.tlast.eq(1),
            c2h.r_en.eq(self.c2h.tready),
            self.inc_events.eq(sum(raised)),
            self.inc_events_lost.eq(sum(lost_at_source) + lost_at_ring),
        ]
        return m
