"""A FIFO whose head is a register: readers start from flip-flops, with no added latency.

Amaranth's ``SyncFIFO`` reads distributed RAM combinationally, so whatever consumes its head
starts a cycle with a RAM read and a routing hop; ``SyncFIFOBuffered`` registers the output but
makes a write visible two cycles later. :class:`HeadRegisterFIFO` keeps the head in a register
and lets a write into an empty queue go straight there: written at the end of cycle *t*, readable
in cycle *t + 1* — like ``SyncFIFO`` — but from a register.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out


class HeadRegisterFIFO(wiring.Component):
    """First-word-fall-through FIFO of ``depth`` entries (one in the head register).

    Write side: ``w_data``, ``w_en`` (ignored when ``w_rdy`` is low). Read side: ``r_data``,
    ``r_rdy``, ``r_en`` (pops the head). ``level`` counts every entry held.
    """

    def __init__(self, width: int, depth: int):
        if depth < 2:
            raise ValueError("depth must be at least 2 (the head and one queued entry)")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = q = SyncFIFO(width=self.width, depth=self.depth - 1)
        head_valid = self.r_rdy
        pop = Signal()
        m.d.comb += pop.eq(head_valid & self.r_en)
        head_free = Signal()   # the head register can take a new value at this edge
        m.d.comb += head_free.eq(~head_valid | pop)
        write = Signal()
        m.d.comb += [
            write.eq(self.w_en & self.w_rdy),
            self.w_rdy.eq(self.level != self.depth),
            self.level.eq(q.level + head_valid),
        ]
        with m.If(head_free):
            with m.If(q.r_rdy):
                # Older entries wait in the queue: the head comes from there, the write joins it.
                m.d.comb += [q.r_en.eq(1), q.w_en.eq(write), q.w_data.eq(self.w_data)]
                m.d.sync += [self.r_data.eq(q.r_data), head_valid.eq(1)]
            with m.Elif(write):
                m.d.sync += [self.r_data.eq(self.w_data), head_valid.eq(1)]   # bypass
            with m.Else():
                m.d.sync += head_valid.eq(0)
        with m.Else():
            m.d.comb += [q.w_en.eq(write), q.w_data.eq(self.w_data)]
        return m
