"""A/B arbitration and MoldUDP64 sequencing (docs/ingress.md, section 4).

Both lines carry the same feed. The sequencer delivers each sequence number once, from
whichever line has it first, reports forward jumps as gaps, drops old and duplicate numbers, and
turns a frame found bad after some of its messages left into an invalidation (rolled back when
nothing was delivered after them, so the other line's copy is taken instead).

Per cycle it looks at the head entry of each line's FIFO. A *control* entry (a packet header or
an end marker) is processed alone; otherwise both heads are judged together, so duplicates from
the slower line are consumed at the rate they arrive and the FIFOs stay shallow. At most one
message is delivered per cycle: the unique-message rate of one feed at line rate is about 0.55
per cycle, so this is never the bottleneck for real traffic.

The three comparisons that decide a cycle (``a < e``, ``b < e``, ``a`` vs ``b``) are independent
of each other, so the critical path is one 64-bit compare and a mux.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.events import EventKind, source_signature
from hw.ingress.layouts import SESSION_BITS, Entry, EntryStream, MessageStream
from hw.regmap import COUNTER_BITS
from proto import moldudp64

LINES = 2


class Sequencer(wiring.Component):
    """Consumes both lines' entries; produces delivered messages, events and counts.

    ``inc_*`` outputs are per-cycle increments for the CSR counters; ``ev_gap`` carries GAP and
    INVALIDATE events (never both in a cycle), ``ev_session`` SESSION and ``ev_eos``
    END_OF_SESSION (both can happen for the first packet after a reset).
    """

    def __init__(self):
        super().__init__({
            "entries_a": In(EntryStream),
            "entries_b": In(EntryStream),
            # The head entry's frame is known bad (from the parser, registered).
            "squashed_a": In(1),
            "squashed_b": In(1),
            "frames_a": In(32),
            "frames_b": In(32),
            "seq_reset": In(1),
            "messages": Out(MessageStream),
            "ev_gap": Out(source_signature()),
            "ev_session": Out(source_signature()),
            "ev_eos": Out(source_signature()),
            "locked": Out(1),
            "ended": Out(1),
            "expected": Out(64),
            "session": Out(SESSION_BITS),
            "inc_messages": Out(1),
            "inc_duplicates": Out(2),
            "inc_gaps": Out(1),
            # Counters are 48 bits and count modulo 2**48 (a corrupt number can claim 2**57).
            "inc_gap_messages": Out(COUNTER_BITS),
            "inc_heartbeats": Out(1),
            "inc_end_of_session": Out(1),
            "inc_session_mismatch": Out(1),
            "inc_invalidations": Out(1),
            "inc_invalidated_messages": Out(COUNTER_BITS),
            "inc_line_a_won": Out(1),
            "inc_line_b_won": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        e = self.expected
        heads = [self.entries_a, self.entries_b]
        squashes = [self.squashed_a, self.squashed_b]

        discard = [Signal(name=f"discard_{x}") for x in "ab"]
        any_ = [Signal(name=f"any_{x}") for x in "ab"]
        first = [Signal(64, name=f"first_{x}") for x in "ab"]
        last = [Signal(64, name=f"last_{x}") for x in "ab"]
        line_next = [Signal(64, name=f"next_{x}") for x in "ab"]
        # ``expected`` before the first delivery from the line's frame in progress: where an
        # invalidation rolls back to (not to the frame's first number, which may be corrupt).
        e_before = [Signal(64, name=f"e_before_{x}") for x in "ab"]
        # The lock is provisional until the frame that took it ends good.
        lock_prov = Signal()
        lock_line = Signal()

        # -- classify the heads ---------------------------------------------------------------
        hd = []
        for x in range(LINES):
            p = data.View(Entry, heads[x].payload)
            v = heads[x].valid
            live = Signal(name=f"live{x}")       # the item survives squashing
            m.d.comb += live.eq(v & p.item & ~squashes[x])
            ctl = Signal(name=f"ctl{x}")
            m.d.comb += ctl.eq(v & ((live & p.header) | p.end))
            judged = Signal(name=f"judged{x}")  # a plain message to judge against expected
            m.d.comb += judged.eq(live & ~p.header & ~p.end & ~discard[x])
            lt = Signal(name=f"lt{x}")
            m.d.comb += lt.eq(p.seq < e)
            hd.append((p, v, live, ctl, judged, lt))
        # Everything a cycle may need from a head is computed for both heads in parallel, from
        # their registers; the line chosen this cycle then only selects 1-bit results and
        # already computed values (the 64-bit compares and subtractions stay off the path
        # through the line choice).
        pre = []
        for x, (p, *_rest) in enumerate(hd):
            f = {
                "ne": Signal(name=f"ne{x}"), "gt": Signal(name=f"gt{x}"),
                "miss": Signal(64, name=f"miss{x}"), "plus1": Signal(64, name=f"plus1_{x}"),
                "other_session": Signal(name=f"other_session{x}"),
                "heartbeat": Signal(name=f"heartbeat{x}"), "eos": Signal(name=f"eos{x}"),
            }
            m.d.comb += [
                f["ne"].eq(p.seq != e), f["gt"].eq(p.seq > e), f["miss"].eq(p.seq - e),
                f["plus1"].eq(p.seq + 1),
                f["other_session"].eq(p.data[:SESSION_BITS] != self.session),
                f["heartbeat"].eq(p.count == moldudp64.HEARTBEAT_COUNT),
                f["eos"].eq(p.count == moldudp64.END_OF_SESSION_COUNT),
            ]
            pre.append(f)

        def sel(line, key):
            return Mux(line, pre[1][key], pre[0][key])
        (pa, va, _, ctl_a, ja, lt_a), (pb, vb, _, ctl_b, jb, lt_b) = hd
        eq_ab = Signal()
        a_less = Signal()
        m.d.comb += [eq_ab.eq(pa.seq == pb.seq), a_less.eq(pa.seq < pb.seq)]
        control = Signal()
        m.d.comb += control.eq(ctl_a | ctl_b)
        cx = Signal()  # line whose control entry is processed
        m.d.comb += cx.eq(~ctl_a)

        pop = [Signal(name=f"pop_{x}") for x in "ab"]
        deliver = Signal()
        dline = Signal()
        dups = Signal(2)

        # -- the pair rule --------------------------------------------------------------------
        with m.If(~control):
            # Heads that are squashed or discarded are simply consumed.
            m.d.comb += [pop[0].eq(va & ~ja), pop[1].eq(vb & ~jb)]
            with m.If(ja & ~jb):
                m.d.comb += [pop[0].eq(1), deliver.eq(~lt_a), dline.eq(0), dups.eq(lt_a)]
            with m.Elif(~ja & jb):
                m.d.comb += [pop[1].eq(1), deliver.eq(~lt_b), dline.eq(1), dups.eq(lt_b)]
            with m.Elif(ja & jb):
                with m.If(lt_a & lt_b):
                    m.d.comb += [pop[0].eq(1), pop[1].eq(1), dups.eq(2)]
                with m.Elif(lt_a):
                    m.d.comb += [pop[0].eq(1), pop[1].eq(1), dups.eq(1),
                                 deliver.eq(1), dline.eq(1)]
                with m.Elif(lt_b | eq_ab):
                    m.d.comb += [pop[0].eq(1), pop[1].eq(1), dups.eq(1),
                                 deliver.eq(1), dline.eq(0)]
                with m.Elif(a_less):
                    m.d.comb += [pop[0].eq(1), deliver.eq(1), dline.eq(0)]
                with m.Else():
                    m.d.comb += [pop[1].eq(1), deliver.eq(1), dline.eq(1)]

        # -- a control entry ----------------------------------------------------------------
        cp = data.View(Entry, Mux(cx, pb.as_value(), pa.as_value()))
        c_live = Signal()
        m.d.comb += c_live.eq(Mux(cx, hd[1][2], hd[0][2]))
        c_discard = Signal()
        m.d.comb += c_discard.eq(Mux(cx, discard[1], discard[0]))
        c_lt = Signal()
        m.d.comb += c_lt.eq(Mux(cx, lt_b, lt_a))
        hdr = Signal()
        m.d.comb += hdr.eq(control & c_live & cp.header)
        c_msg = Signal()
        m.d.comb += c_msg.eq(control & c_live & ~cp.header & ~c_discard)
        with m.If(control):
            m.d.comb += [pop[0].eq(~cx), pop[1].eq(cx)]
            with m.If(c_msg):
                m.d.comb += [deliver.eq(~c_lt), dline.eq(cx), dups.eq(c_lt)]

        # -- delivery -------------------------------------------------------------------------
        dp = data.View(Entry, Mux(dline, pb.as_value(), pa.as_value()))
        s = dp.seq
        gap = Signal()
        m.d.comb += gap.eq(deliver & sel(dline, "ne"))   # delivered implies s >= e
        missing = Signal(64)
        m.d.comb += missing.eq(sel(dline, "miss"))

        # Expected after the message part of this cycle, for the end marker that may follow.
        e1 = Signal(64)
        m.d.comb += e1.eq(Mux(deliver, sel(dline, "plus1"), e))
        any1 = [Signal(name=f"any1_{x}") for x in "ab"]
        first1 = [Signal(64, name=f"first1_{x}") for x in "ab"]
        last1 = [Signal(64, name=f"last1_{x}") for x in "ab"]
        e_before1 = [Signal(64, name=f"e_before1_{x}") for x in "ab"]
        for x in range(LINES):
            mine = deliver & (dline == x)
            m.d.comb += [
                any1[x].eq(any_[x] | mine),
                first1[x].eq(Mux(mine & ~any_[x], s, first[x])),
                last1[x].eq(Mux(mine, s, last[x])),
                e_before1[x].eq(Mux(mine & ~any_[x], e, e_before[x])),
            ]

        msg_out = self.messages.payload
        m.d.sync += self.messages.valid.eq(0)
        with m.If(deliver):
            m.d.sync += [
                self.messages.valid.eq(1), msg_out.invalidate.eq(0), msg_out.line.eq(dline),
                msg_out.seq.eq(s), msg_out.last.eq(s), msg_out.length.eq(dp.length),
                msg_out.data.eq(dp.data),
            ]
        with m.If(pop[0] & ja | pop[1] & jb | c_msg):
            # Last sequence number each line handed over (for the GAP event's line state).
            for x, (p, _, _, _, j, _) in enumerate(hd):
                with m.If((pop[x] & j) | (c_msg & (cx == x))):
                    m.d.sync += line_next[x].eq(p.seq + 1)

        # -- events ---------------------------------------------------------------------------
        def raise_event(port, kind, line, aux=0):
            stmts = [port.valid.eq(1), port.payload.kind.eq(kind), port.payload.line.eq(line),
                     port.payload.aux.eq(aux)]
            return stmts

        for port in (self.ev_gap, self.ev_session, self.ev_eos):
            m.d.sync += port.valid.eq(0)

        def gap_event(received, miss, line):
            body = self.ev_gap.payload.body.gap
            m.d.sync += raise_event(self.ev_gap, EventKind.GAP, line)
            m.d.sync += [body.expected.eq(e), body.received.eq(received),
                         body.missing.eq(miss), body.line_a_next.eq(line_next[0]),
                         body.line_b_next.eq(line_next[1]), body.line_a_frames.eq(self.frames_a),
                         body.line_b_frames.eq(self.frames_b)]

        with m.If(gap):
            gap_event(s, missing, dline)

        # -- packet header --------------------------------------------------------------------
        new_e = Signal(64)
        m.d.comb += new_e.eq(e1)
        hdr_gap = Signal()
        is_hb, is_eos = sel(cx, "heartbeat"), sel(cx, "eos")
        special = is_hb | is_eos
        hdr_session = cp.data[:SESSION_BITS]
        with m.If(hdr):
            with m.If(~self.locked):
                m.d.sync += [self.locked.eq(1), self.session.eq(hdr_session),
                             lock_prov.eq(1), lock_line.eq(cx)]
                m.d.comb += new_e.eq(cp.seq)
                m.d.sync += raise_event(self.ev_session, EventKind.SESSION, cx)
                m.d.sync += [self.ev_session.payload.body.session.next_seq.eq(cp.seq),
                             self.ev_session.payload.body.session.session.eq(hdr_session)]
            with m.If(self.locked & sel(cx, "other_session")):
                m.d.comb += self.inc_session_mismatch.eq(1)
                m.d.sync += discard[0].eq(Mux(cx, discard[0], 1))
                m.d.sync += discard[1].eq(Mux(cx, 1, discard[1]))
            with m.Else():
                for x in range(LINES):
                    with m.If(cx == x):
                        m.d.sync += [discard[x].eq(0), any_[x].eq(0)]
                with m.If(is_hb):
                    m.d.comb += self.inc_heartbeats.eq(1)
                with m.If(is_eos):
                    m.d.comb += self.inc_end_of_session.eq(1)
                    m.d.sync += [self.ended.eq(1)]
                    m.d.sync += raise_event(self.ev_eos, EventKind.END_OF_SESSION, cx)
                    m.d.sync += [self.ev_eos.payload.body.end_of_session.next_seq.eq(cp.seq),
                                 self.ev_eos.payload.body.end_of_session.session.eq(
                                     hdr_session)]
                with m.If(self.locked & special & sel(cx, "gt")):
                    m.d.comb += [hdr_gap.eq(1), new_e.eq(cp.seq)]
                    gap_event(cp.seq, sel(cx, "miss"), cx)

        # -- end marker -----------------------------------------------------------------------
        # A bad end marker never comes with a live item: the item of a frame known bad in its
        # own tlast beat is squashed by the time it reaches the head. So nothing is delivered
        # in that cycle, and the invalidation works from registered state only (timing).
        inval = Signal()
        with m.If(control & cp.end):
            for x in range(LINES):
                with m.If(cx == x):
                    m.d.sync += [any_[x].eq(0), discard[x].eq(0)]
            with m.If(cp.bad & Mux(cx, any_[1], any_[0])):
                fst = Mux(cx, first[1], first[0])
                lst = Mux(cx, last[1], last[0])
                rollback = Signal()
                m.d.comb += [inval.eq(1), rollback.eq(e == (lst + 1)[:64])]
                with m.If(rollback):
                    m.d.comb += new_e.eq(Mux(cx, e_before[1], e_before[0]))
                body = self.ev_gap.payload.body.invalidate
                m.d.sync += raise_event(self.ev_gap, EventKind.INVALIDATE, cx, cp.reason)
                m.d.sync += [body.first.eq(fst), body.last.eq(lst), body.next_seq.eq(new_e),
                             body.count.eq(lst - fst + 1), body.rolled_back.eq(rollback)]
                m.d.comb += [self.inc_invalidations.eq(1),
                             self.inc_invalidated_messages.eq(lst - fst + 1)]
                m.d.sync += [self.messages.valid.eq(1), msg_out.invalidate.eq(1),
                             msg_out.line.eq(cx), msg_out.seq.eq(fst), msg_out.last.eq(lst),
                             msg_out.length.eq(0)]

        # A frame that took the lock and then ended bad gives it back: its session field may
        # be what was corrupt. The next good header locks again. The frame may end in the very
        # entry whose header takes the lock (a bare heartbeat): that end marker settles the
        # lock too, so it must not stay provisional into a later frame of the line.
        took_lock = Signal()
        m.d.comb += took_lock.eq(hdr & ~self.locked)
        with m.If(control & cp.end & ((lock_prov & (lock_line == cx)) | took_lock)):
            m.d.sync += lock_prov.eq(0)
            with m.If(cp.bad):
                m.d.sync += self.locked.eq(0)

        # -- state update -----------------------------------------------------------------------
        m.d.sync += e.eq(new_e)
        for x in range(LINES):
            end_here = control & cp.end & (cx == x)
            hdr_here = hdr & (cx == x)
            with m.If(~end_here & ~hdr_here):
                m.d.sync += [any_[x].eq(any1[x])]
            m.d.sync += [first[x].eq(first1[x]), last[x].eq(last1[x]),
                         e_before[x].eq(e_before1[x])]

        m.d.comb += [
            heads[0].ready.eq(pop[0]), heads[1].ready.eq(pop[1]),
            self.inc_messages.eq(deliver), self.inc_duplicates.eq(dups),
            self.inc_gaps.eq(gap | hdr_gap),
            self.inc_gap_messages.eq(Mux(gap, missing, Mux(hdr_gap, sel(cx, "miss"), 0))),
            self.inc_line_a_won.eq(deliver & (dline == 0)),
            self.inc_line_b_won.eq(deliver & (dline == 1)),
        ]
        with m.If(self.seq_reset):
            m.d.sync += [self.locked.eq(0), self.ended.eq(0), lock_prov.eq(0)]
        return m
