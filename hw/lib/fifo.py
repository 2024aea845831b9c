"""A FIFO whose head is a register: readers start from flip-flops, with no added latency.

Amaranth's ``SyncFIFO`` reads distributed RAM combinationally, so whatever consumes its head
starts a cycle with a RAM read and a routing hop; ``SyncFIFOBuffered`` registers the output but
makes a write visible two cycles later. :class:`HeadRegisterFIFO` keeps the head in a register
and lets a write into an empty queue go straight there: written at the end of cycle *t*, readable
in cycle *t + 1* — like ``SyncFIFO`` — but from a register.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out


class HeadRegisterFIFO(wiring.Component):
    """First-word-fall-through FIFO of ``depth`` entries (one in the head register).

    Write side: ``w_data``, ``w_en`` (ignored when ``w_rdy`` is low). Read side: ``r_data``,
    ``r_rdy``, ``r_en`` (pops the head). ``level`` counts every entry held.
    """

    def __init__(self, width: int, depth: int):
        if depth < 3:
            raise ValueError("depth must be at least 3 (head, staging and one queued entry)")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
            # What r_data will hold next cycle: lets a user precompute, and register, a
            # function of the head (a lookup that would otherwise sit on its read path).
            "r_data_next": Out(width),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        # Three places hold entries, in order: the head register (read side), the queue
        # (distributed RAM), and a staging register in front of the queue. The write port
        # goes straight to the head when everything ahead is empty (the bypass: readable next
        # cycle); otherwise it lands in staging, which drains into the queue or the head.
        # Registers load whenever they are free; a late ``w_en`` only sets two valid flags
        # — not a RAM write enable, not the enable of a wide register.
        m.submodules.queue = q = SyncFIFO(width=self.width, depth=self.depth - 2)
        head_valid = self.r_rdy
        stage = Signal(self.width)
        stage_valid = Signal()
        pop = Signal()
        m.d.comb += pop.eq(head_valid & self.r_en)
        head_free = Signal()   # the head register can take a new value at this edge
        m.d.comb += head_free.eq(~head_valid | pop)
        write = Signal()
        m.d.comb += [
            write.eq(self.w_en & self.w_rdy),
            self.w_rdy.eq(self.level != self.depth),
            self.level.eq(q.level + head_valid + stage_valid),
            q.w_data.eq(stage),
        ]
        # Head: from the queue if it holds anything, else from staging, else the write port.
        m.d.comb += self.r_data_next.eq(self.r_data)
        with m.If(head_free):
            m.d.comb += self.r_data_next.eq(
                Mux(q.r_rdy, q.r_data, Mux(stage_valid, stage, self.w_data)))
            with m.If(q.r_rdy):
                m.d.comb += q.r_en.eq(1)
                m.d.sync += [self.r_data.eq(q.r_data), head_valid.eq(1)]
            with m.Elif(stage_valid):
                m.d.sync += [self.r_data.eq(stage), head_valid.eq(1)]
            with m.Else():
                m.d.sync += [self.r_data.eq(self.w_data), head_valid.eq(write)]
        took_stage = Signal()  # staging moved on this cycle (into the head or the queue)
        m.d.comb += took_stage.eq(stage_valid & ((head_free & ~q.r_rdy) | q.w_rdy))
        with m.If(stage_valid & ~(head_free & ~q.r_rdy)):
            m.d.comb += q.w_en.eq(1)
        # Staging: takes the write unless the write went to the head.
        bypassed = Signal()
        m.d.comb += bypassed.eq(head_free & ~q.r_rdy & ~stage_valid)
        with m.If(~stage_valid | took_stage):
            m.d.sync += [stage.eq(self.w_data), stage_valid.eq(write & ~bypassed)]
        return m
