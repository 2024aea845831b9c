"""A FIFO whose head is a register: readers start from flip-flops, with no added latency.

Amaranth's ``SyncFIFO`` reads distributed RAM combinationally, so whatever consumes its head
starts a cycle with a RAM read and a routing hop; ``SyncFIFOBuffered`` registers the output but
makes a write visible two cycles later. :class:`HeadRegisterFIFO` keeps the head in a register
and lets a write into an empty queue go straight there: written at the end of cycle *t*, readable
in cycle *t + 1* — like ``SyncFIFO`` — but from a register.

:class:`BlockFIFO` is ``SyncFIFOBuffered`` cycle for cycle, with its storage where a queue that
is wide, deep, or both belongs on an ECP5: in block RAM, and with nothing around it (below).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
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


class BlockFIFO(wiring.Component):
    """First-word-fall-through FIFO of ``depth`` entries: ``SyncFIFOBuffered``'s ports and
    timing (a write into an empty FIFO is readable two cycles later; ``level`` counts the
    entry on ``r_data`` too), stored in block RAM.

    Why not ``SyncFIFOBuffered`` itself: its storage has a synchronous read port, which
    Amaranth emits with read-old-data on a same-address write. A DP16KD does not define that
    case between its two ports, so Yosys builds it in logic: a register of the write data, a
    register of the address compare and a multiplexer, as wide as the FIFO (in the 8-slot core
    1,093 flip-flops and 495 LUT4 beside the C2H FIFO alone). A FIFO never reads the row it
    writes in the same cycle (the read of an empty FIFO's only row is not enabled), so here the
    read is asynchronous into an explicit output register, and the memory says ``no_rw_check``:
    Yosys folds the register into the RAM and adds nothing. ``ram_style = "block"`` makes that
    RAM a block RAM even when the FIFO is shallow, where Yosys would otherwise pick distributed
    RAM: on this device logic is the scarce resource, block RAM is not. But a block RAM has a
    fixed site, so a FIFO whose reader is a wide multiplexer of many FIFOs is better left in
    distributed RAM next to it (the event collector's source FIFOs: :mod:`hw.eventq`).
    In simulation the asynchronous read plus register reads the old row, as a synchronous
    port would, so the model and the netlist differ only in a case that never occurs.
    """

    def __init__(self, width: int, depth: int):
        if depth < 2:
            raise ValueError("depth must be at least 2 (one row of RAM and the output register)")
        self.width = width
        self.depth = depth
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_rdy": Out(1), "r_en": In(1),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        rows = self.depth - 1          # the output register holds the last entry
        m.submodules.storage = mem = Memory(
            shape=self.width, depth=rows, init=[],
            attrs={"ram_style": "block", "no_rw_check": 1})
        wr = mem.write_port()
        rd = mem.read_port(domain="comb")
        produce = Signal(range(rows))
        consume = Signal(range(rows))
        stored = Signal(range(rows + 1))   # entries in the RAM (not the output register)

        def incr(ptr):
            return Mux(ptr == rows - 1, 0, ptr + 1)

        write = Signal()
        load = Signal()    # the RAM's head moves into the output register at this edge
        m.d.comb += [
            self.w_rdy.eq(stored != rows),
            write.eq(self.w_en & self.w_rdy),
            load.eq((stored != 0) & (~self.r_rdy | self.r_en)),
            wr.addr.eq(produce), wr.data.eq(self.w_data), wr.en.eq(write),
            rd.addr.eq(consume),
            self.level.eq(stored + self.r_rdy),
        ]
        with m.If(write):
            m.d.sync += produce.eq(incr(produce))
        with m.If(load):
            m.d.sync += [consume.eq(incr(consume)), self.r_data.eq(rd.data), self.r_rdy.eq(1)]
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        with m.If(write & ~load):
            m.d.sync += stored.eq(stored + 1)
        with m.Elif(load & ~write):
            m.d.sync += stored.eq(stored - 1)
        return m
