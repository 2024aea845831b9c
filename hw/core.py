"""The wirespeed core: the vendor-neutral top level that a board shell wraps.

Its boundary is AXI only, with AXI port names (``s_axis_rx_a_tdata``, ``m_axis_c2h_tvalid``,
``s_axil_awaddr`` ...), so it drops into a vendor shell (a 10/25G MAC, a PCIe DMA IP) and
cocotbext-axi BFMs attach to it directly:

* ``s_axis_rx_a`` / ``s_axis_rx_b``: the two redundant market-data lines, 64-bit, no tready;
* ``m_axis_c2h``: event records (64 bytes, one per beat) to the DMA engine;
* ``s_axil``: the CSRs of :data:`hw.regmap.REGMAP`;
* ``m_axis_tx``: SoupBinTCP/OUCH order bytes to the TCP engine, 64-bit, with tready;
* ``s_axis_oe_rx``: the exchange's bytes back from the TCP engine, 64-bit, no tready;
* ``s_axis_h2c``: host orders (64-byte records, :mod:`hw.h2c`) from the DMA engine.

Inside: two line parsers and the sequencer (docs/ingress.md), the ITCH decoder and the book
engine (docs/book.md), triggers, the risk gate, the order encoder and the return path
(docs/orderentry.md, docs/risk.md), the CSR bank and the event collector.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.book.engine import COUNTERS as BOOK_COUNTERS
from hw.book.engine import BookEngine
from hw.book.params import DEFAULT_PARAMS, BookParams
from hw.csr import AXI4LiteSignature, CSRBank, identity_values
from hw.eventq import EventCollector
from hw.events import RECORD, EventKind, source_signature
from hw.h2c import MAGIC as H2C_MAGIC
from hw.h2c import RECORD_BYTES as H2C_BYTES
from hw.h2c import field as h2c_field
from hw.ingress.layouts import SESSION_BITS
from hw.ingress.parser import LineParser
from hw.ingress.reasons import COUNTED, MAX_MESSAGE
from hw.ingress.sequencer import Sequencer
from hw.itch.decoder import ItchDecoder
from hw.oe.encoder import OrderEncoder
from hw.oe.returnpath import COUNTERS as OE_COUNTERS
from hw.oe.returnpath import ReturnPath
from hw.regmap import N_FILTERS, REGMAP
from hw.risk.gate import RiskGate
from hw.risk.params import OrderKind, Reason, RiskParams, Source
from hw.strategy.trigger import TriggerEngine
from proto import itch


def _flat_members() -> dict:
    members = {}
    for line in "ab":
        p = f"s_axis_rx_{line}_"
        members |= {p + "tdata": In(64), p + "tkeep": In(8), p + "tvalid": In(1),
                    p + "tlast": In(1), p + "tuser": In(1)}
    members |= {"m_axis_c2h_tdata": Out(RECORD.size), "m_axis_c2h_tvalid": Out(1),
                "m_axis_c2h_tready": In(1), "m_axis_c2h_tlast": Out(1)}
    # Order entry: SoupBinTCP/OUCH bytes to the TCP engine, its received bytes back, and
    # host orders from the DMA engine (docs/orderentry.md).
    members |= {"m_axis_tx_tdata": Out(64), "m_axis_tx_tkeep": Out(8), "m_axis_tx_tlast": Out(1),
                "m_axis_tx_tvalid": Out(1), "m_axis_tx_tready": In(1)}
    members |= {"s_axis_oe_rx_tdata": In(64), "s_axis_oe_rx_tkeep": In(8),
                "s_axis_oe_rx_tlast": In(1), "s_axis_oe_rx_tvalid": In(1)}
    members |= {"s_axis_h2c_tdata": In(8 * H2C_BYTES), "s_axis_h2c_tvalid": In(1),
                "s_axis_h2c_tlast": In(1), "s_axis_h2c_tready": Out(1)}
    # AXI4-Lite slave: the bank's signature already has slave directions.
    for name, member in AXI4LiteSignature().members.items():
        members["s_axil_" + name] = member
    return members


_K = EventKind
#: The event sources, by name, with the kinds each raises, in the order the core hands them
#: to the event collector (which stores only the body bits of these kinds; the order is the
#: sources' index, src0 first). The core builds its sources under the same names and checks
#: them against this table, so a source cannot be added, dropped or moved in one place only.
EVENT_SOURCES: dict[str, tuple[EventKind, ...]] = {
    "seq_gap": (_K.GAP, _K.INVALIDATE),       # the sequencer: gaps and invalidations
    "seq_session": (_K.SESSION,),
    "seq_end": (_K.END_OF_SESSION,),
    "drop_a": (_K.FRAME_DROP,),               # the two lines' frame drops
    "drop_b": (_K.FRAME_DROP,),
    "tap": (_K.MESSAGE,),                     # the message tap
    "bbo": (_K.BBO,),                         # the book
    "trade": (_K.TRADE,),
    "book_alert": (_K.BOOK_ALERT,),           # per slot
    "book_global": (_K.BOOK_ALERT,),          # every slot (gap, invalidation, FIFO overflow)
    "verdict": (_K.VERDICT,),                 # the risk gate
    "oe_alert": (_K.OE_ALERT,),               # the order-entry return path
}
#: The kinds of each source, as :class:`~hw.eventq.EventCollector` takes them.
EVENT_KINDS: tuple[tuple[EventKind, ...], ...] = tuple(EVENT_SOURCES.values())


class Core(wiring.Component):
    """The core. Parameters become identity registers, so the host knows what it drives.

    ``git_rev``/``build_time``/``dirty`` describe the source the design was built from;
    :func:`hw.top.source_identity` reads them from git.
    """

    def __init__(self, *, fifo_depth: int = 16, c2h_depth: int = 512, git_rev: int = 0,
                 build_time: int = 0, dirty: bool = False, clock_khz: int = 156_250,
                 book: BookParams = DEFAULT_PARAMS):
        self.fifo_depth = fifo_depth
        self.c2h_depth = c2h_depth
        self.book = book
        self.identity = identity_values(
            git_rev=git_rev, build_time=build_time, dirty=dirty, clock_khz=clock_khz,
            params=N_FILTERS | (fifo_depth << 8) | (MAX_MESSAGE << 16)
            | ((RECORD.size // 8) << 24))
        self.identity["id_book_params"] = (
            book.slots | (book.ways << 8) | (book.set_bits << 16)
            | ((book.window.bit_length() - 1) << 24))
        self.identity["id_book_tick"] = book.tick
        super().__init__(_flat_members())

    def elaborate(self, platform):
        m = Module()

        m.submodules.csr = csr = CSRBank(REGMAP)

        def count(name: str, amount) -> None:
            """Add ``amount`` to counter ``name`` this cycle; refuse a silent truncation."""
            port = getattr(csr, f"inc_{name}")
            amount = Value.cast(amount)
            if len(amount) > len(port):
                raise ValueError(f"counter {name}: increment of {len(amount)} bits does not "
                                 f"fit its {len(port)}-bit port (make the counter wide)")
            m.d.comb += port.eq(amount)
        for name in AXI4LiteSignature().members:
            port = getattr(self, "s_axil_" + name)
            inner = getattr(csr.axil, name)
            if AXI4LiteSignature().members[name].flow is In:
                m.d.comb += inner.eq(port)
            else:
                m.d.comb += port.eq(inner)
        for name, value in self.identity.items():
            m.d.comb += getattr(csr, f"ro_{name}").eq(value)

        time = Signal(64)
        m.d.sync += time.eq(time + 1)
        m.d.comb += [csr.ro_time.eq(time), csr.clear.eq(csr.ctrl[0])]

        # -- the two lines ------------------------------------------------------------------
        parsers = []
        for line in "ab":
            p = LineParser(n_filters=N_FILTERS, fifo_depth=self.fifo_depth)
            m.submodules[f"line_{line}"] = p
            parsers.append(p)
            pre = f"s_axis_rx_{line}_"
            m.d.comb += [getattr(p.rx, f).eq(getattr(self, pre + f))
                         for f in ("tdata", "tkeep", "tvalid", "tlast", "tuser")]
            for i in range(N_FILTERS):
                port_reg = getattr(csr, f"filter{i}_port")
                m.d.comb += [p.filters[i].ip.eq(getattr(csr, f"filter{i}_ip")),
                             p.filters[i].port.eq(port_reg[:16]),
                             p.filters[i].enable.eq(port_reg[31])]
            hwm = Signal(range(self.fifo_depth + 1), name=f"fifo_{line}_max")
            with m.If(p.level > hwm):
                m.d.sync += hwm.eq(p.level)
            with m.If(csr.ctrl[0]):
                m.d.sync += hwm.eq(0)
            m.d.comb += getattr(csr, f"ro_fifo_{line}_max").eq(hwm)

        pa, pb = parsers
        ra, rb = pa.report, pb.report

        count("frames", ra.valid + rb.valid)
        count("frames_dropped", (ra.valid & ra.dropped) + (rb.valid & rb.dropped))
        count("line_a_frames", ra.valid)
        count("line_b_frames", rb.valid)
        count("line_a_dropped", ra.valid & ra.dropped)
        count("line_b_dropped", rb.valid & rb.dropped)
        count("mold_packets", (ra.valid & ra.good_packet) + (rb.valid & rb.good_packet))
        for reason in COUNTED:
            count(reason.counter, (ra.valid & ra.dropped & (ra.reason == reason))
                  + (rb.valid & rb.dropped & (rb.reason == reason)))

        # -- sequencer ------------------------------------------------------------------------
        m.submodules.seq = seq = Sequencer()
        wiring.connect(m, pa.entries, seq.entries_a)
        wiring.connect(m, pb.entries, seq.entries_b)
        m.d.comb += [
            seq.squashed_a.eq(pa.head_squashed), seq.squashed_b.eq(pb.head_squashed),
            seq.frames_a.eq(pa.frames_seen), seq.frames_b.eq(pb.frames_seen),
            seq.seq_reset.eq(csr.ctrl[1]),
            csr.ro_seq_status.eq(Cat(seq.locked, seq.ended)),
            csr.ro_seq_expected.eq(seq.expected),
        ]
        # Session bytes, byte 0 (first on the wire) in the top byte of seq_session_0.
        sess = [seq.session[8 * i:8 * i + 8] for i in range(SESSION_BITS // 8)]
        m.d.comb += [
            csr.ro_seq_session_0.eq(Cat(sess[3], sess[2], sess[1], sess[0])),
            csr.ro_seq_session_1.eq(Cat(sess[7], sess[6], sess[5], sess[4])),
            csr.ro_seq_session_2.eq(Cat(Const(0, 16), sess[9], sess[8])),
        ]
        for name in ("messages", "duplicates", "gaps", "gap_messages", "heartbeats",
                     "end_of_session", "session_mismatch", "invalidations",
                     "invalidated_messages", "line_a_won", "line_b_won"):
            count(name, getattr(seq, f"inc_{name}"))

        # -- per-type counts of delivered messages ---------------------------------------------
        msg = seq.messages
        delivered = Signal()
        m.d.comb += delivered.eq(msg.valid & ~msg.payload.invalidate)
        mtype = msg.payload.data[:8]
        known = []
        for code in itch.TYPE_CODES:
            hit = Signal(name=f"type_{itch.MESSAGES[code].name}")
            m.d.comb += hit.eq(delivered & (mtype == ord(code)))
            count(f"itch_{itch.MESSAGES[code].name}", hit)
            known.append(hit)
        count("itch_unknown", delivered & ~Cat(*known).any())

        # -- ITCH decoder and the book ----------------------------------------------------------
        m.submodules.itch = dec = ItchDecoder()
        m.d.comb += [dec.messages.valid.eq(msg.valid), dec.messages.payload.eq(msg.payload),
                     dec.gap.eq(seq.ev_gap.valid & (seq.ev_gap.payload.kind == EventKind.GAP))]
        count("itch_bad_length", dec.inc_bad_length)
        m.submodules.book = book = BookEngine(self.book)
        wiring.connect(m, dec.decoded, book.decoded)
        m.d.comb += [
            book.cmd_subscribe.eq(csr.book_cmd[0]), book.cmd_unsubscribe.eq(csr.book_cmd[1]),
            book.cmd_reset.eq(csr.book_cmd[2]),
            book.sub_slot.eq(csr.sub_slot), book.sub_name.eq(Cat(csr.sub_name_lo,
                                                                 csr.sub_name_hi)),
            book.sub_locate.eq(csr.sub_locate[:16]), book.sub_direct.eq(csr.sub_locate[16]),
            book.sub_base.eq(csr.sub_base),
            csr.ro_book_status.eq(book.busy),
            csr.ro_slot_status.eq(Cat(book.view_active, book.view_known, Const(0, 6),
                                      book.view_stale)),
            csr.ro_slot_locate.eq(book.view_locate), csr.ro_slot_base.eq(book.view_base),
            csr.ro_slot_bid_px.eq(book.view_bid_px), csr.ro_slot_bid_sz.eq(book.view_bid_sz),
            csr.ro_slot_ask_px.eq(book.view_ask_px), csr.ro_slot_ask_sz.eq(book.view_ask_sz),
            csr.ro_slot_last_px.eq(book.view_last_px), csr.ro_slot_last_sz.eq(book.view_last_sz),
            csr.ro_slot_volume.eq(book.view_volume), csr.ro_slot_notional.eq(book.view_notional),
        ]
        book_hwm = Signal.like(book.fifo_level)
        with m.If(book.fifo_level > book_hwm):
            m.d.sync += book_hwm.eq(book.fifo_level)
        with m.If(csr.ctrl[0]):
            m.d.sync += book_hwm.eq(0)
        m.d.comb += csr.ro_book_fifo_max.eq(book_hwm)
        for name in BOOK_COUNTERS:
            count(name, getattr(book, f"inc_{name}"))

        # -- triggers, host orders, the risk gate, order entry (docs/orderentry.md) ---------
        rp = RiskParams(slots=self.book.slots, tick=self.book.tick)
        m.submodules.trig = trig = TriggerEngine(rp)
        m.submodules.risk = gate = RiskGate(rp)
        m.submodules.enc = enc = OrderEncoder(rp)
        m.submodules.oe_rx = ret = ReturnPath(rp)
        bbo = book.ev_bbo
        for dst in (trig.bbo, gate.md):
            m.d.comb += [dst.valid.eq(bbo.valid), dst.payload.slot.eq(bbo.payload.aux),
                         dst.payload.bid_px.eq(bbo.payload.body.bbo.bid_px),
                         dst.payload.ask_px.eq(bbo.payload.body.bbo.ask_px),
                         dst.payload.stale.eq(bbo.payload.body.bbo.flags[0])]
        m.d.comb += [
            trig.cfg_slot.eq(csr.trig_slot), trig.cfg.side.eq(csr.trig_side[0]),
            trig.cfg.price.eq(csr.trig_price), trig.cfg.shares.eq(csr.trig_shares),
            trig.cfg.tif.eq(csr.trig_tif),
            trig.arm.eq(csr.trig_cmd[0]), trig.disarm.eq(csr.trig_cmd[1]),
            csr.ro_trig_armed.eq(trig.armed),
        ]
        count("trig_fired", trig.inc_fired)

        # Host orders: one 64-byte record a beat; a trigger's order goes first (tready low).
        h2c = self.s_axis_h2c_tdata
        h_take = Signal()
        h_ok = Signal()
        m.d.comb += [
            self.s_axis_h2c_tready.eq(~trig.orders.valid),
            h_take.eq(self.s_axis_h2c_tvalid & ~trig.orders.valid),
            h_ok.eq((h2c_field(h2c, "magic") == H2C_MAGIC) & (h2c_field(h2c, "slot") < rp.slots)
                    & (h2c_field(h2c, "kind") <= OrderKind.CANCEL)
                    & (h2c_field(h2c, "side") <= 1)),
        ]
        count("h2c_orders", h_take & h_ok)
        count("h2c_bad", h_take & ~h_ok)
        go = gate.orders.payload
        with m.If(trig.orders.valid):
            m.d.comb += [gate.orders.valid.eq(1), go.eq(trig.orders.payload)]
        with m.Else():
            m.d.comb += [
                gate.orders.valid.eq(h_take & h_ok),
                go.kind.eq(h2c_field(h2c, "kind")), go.source.eq(Source.HOST),
                go.token.eq(h2c_field(h2c, "token")), go.slot.eq(h2c_field(h2c, "slot")),
                go.side.eq(h2c_field(h2c, "side")), go.shares.eq(h2c_field(h2c, "shares")),
                go.price.eq(h2c_field(h2c, "price")), go.tif.eq(h2c_field(h2c, "tif")),
            ]

        lim = gate.lim_row
        m.d.comb += [
            gate.kill.eq(csr.kill[0]),
            gate.kill_slots.eq(Cat(csr.kill_slots_lo, csr.kill_slots_hi)[:rp.slots]),
            gate.lim_slot.eq(csr.lim_slot), gate.view_slot.eq(csr.lim_slot),
            gate.pos_slot.eq(csr.lim_slot),
            lim.enable.eq(csr.lim_ctrl[0]), lim.collar_mode.eq(csr.lim_ctrl[1:3]),
            lim.collar.eq(csr.lim_ctrl[16:32]), lim.max_shares.eq(csr.lim_max_shares),
            lim.max_notional.eq(Cat(csr.lim_max_notional_lo, csr.lim_max_notional_hi)),
            lim.ref_px.eq(csr.lim_ref_px), lim.max_long.eq(csr.lim_max_long),
            lim.max_short.eq(csr.lim_max_short),
            gate.glob_row.max_open.eq(csr.glob_max_open),
            gate.glob_row.rate_period.eq(csr.glob_rate_period),
            gate.glob_row.rate_burst.eq(csr.glob_rate_burst),
            gate.glob_row.max_age.eq(csr.glob_max_age),
            gate.lim_store.eq(csr.risk_cmd[0]), gate.glob_store.eq(csr.risk_cmd[1]),
            gate.commit.eq(csr.risk_cmd[2]), gate.clear_error.eq(csr.risk_cmd[3]),
            gate.pos_write.eq(csr.risk_cmd[4]), gate.md_clear.eq(csr.risk_cmd[5]),
            gate.pos_value.eq(Cat(csr.pos_value_lo, csr.pos_value_hi)),
            gate.gap.eq(seq.ev_gap.valid & (seq.ev_gap.payload.kind == EventKind.GAP)),
            csr.ro_risk_status.eq(Cat(gate.busy, gate.store_error, gate.bank,
                                      gate.gap_pending)),
            csr.ro_risk_open_orders.eq(gate.open_orders), csr.ro_risk_bucket.eq(gate.bucket),
            csr.ro_view_position.eq(gate.view_position),
            csr.ro_view_open_buy.eq(gate.view_open_buy),
            csr.ro_view_open_sell.eq(gate.view_open_sell),
        ]
        v = gate.verdicts
        count("risk_verdicts", v.valid)
        for r in Reason:
            count(f"risk_{r.name.lower()}", v.valid & (v.payload.reason == r))

        wiring.connect(m, gate.verdicts, enc.verdicts)
        m.d.comb += [
            # The gate accepts only what the encoder's FIFO can still take (EGRESS_FULL).
            gate.egress_space.eq(enc.space),
            ret.verdicts.valid.eq(v.valid), ret.verdicts.payload.eq(v.payload),
            enc.name_slot.eq(csr.sub_slot), enc.name_value.eq(Cat(csr.sub_name_lo,
                                                                  csr.sub_name_hi)),
            enc.name_write.eq(csr.book_cmd[0]), enc.firm.eq(csr.oe_firm),
            csr.ro_oe_status.eq(enc.space),
            self.m_axis_tx_tdata.eq(enc.tx.payload.data),
            self.m_axis_tx_tkeep.eq(enc.tx.payload.keep),
            self.m_axis_tx_tlast.eq(enc.tx.payload.last),
            self.m_axis_tx_tvalid.eq(enc.tx.valid), enc.tx.ready.eq(self.m_axis_tx_tready),
        ]
        count("tx_orders", enc.inc_orders)
        count("tx_cancels", enc.inc_cancels)
        count("tx_overflow", enc.inc_overflow)      # never: the gate checks egress_space

        m.d.comb += [
            ret.rx.tdata.eq(self.s_axis_oe_rx_tdata), ret.rx.tkeep.eq(self.s_axis_oe_rx_tkeep),
            ret.rx.tvalid.eq(self.s_axis_oe_rx_tvalid), ret.rx.tlast.eq(self.s_axis_oe_rx_tlast),
            ret.restart.eq(csr.oe_cmd[0]),
        ]
        wiring.connect(m, ret.reports, gate.reports)
        for name in OE_COUNTERS:
            count(f"oe_{name}", getattr(ret, f"inc_{name}"))

        verdict_ev = source_signature().create(path=("verdict",))
        vb = verdict_ev.payload.body.verdict
        vo = v.payload.order
        m.d.comb += [
            verdict_ev.valid.eq(v.valid), verdict_ev.payload.kind.eq(EventKind.VERDICT),
            verdict_ev.payload.line.eq(0xFF), verdict_ev.payload.aux.eq(v.payload.reason),
            vb.token.eq(vo.token), vb.shares.eq(vo.shares), vb.price.eq(vo.price),
            vb.tif.eq(vo.tif), vb.slot.eq(vo.slot), vb.side.eq(vo.side),
            vb.source.eq(vo.source), vb.order_kind.eq(vo.kind),
        ]
        oe_alert = source_signature().create(path=("oe_alert",))
        al = ret.alert.payload
        m.d.comb += [
            oe_alert.valid.eq(ret.alert.valid), oe_alert.payload.kind.eq(EventKind.OE_ALERT),
            oe_alert.payload.line.eq(0xFF), oe_alert.payload.aux.eq(al.slot),
            oe_alert.payload.body.oe_alert.token.eq(al.token),
            oe_alert.payload.body.oe_alert.source.eq(al.source),
            oe_alert.payload.body.oe_alert.side.eq(al.side),
            oe_alert.payload.body.oe_alert.shares.eq(al.shares),
        ]

        # -- events ---------------------------------------------------------------------------
        drop_srcs = []
        for x, r in enumerate((ra, rb)):
            s = source_signature().create(path=(f"drop_{'ab'[x]}",))
            m.d.comb += [
                s.valid.eq(r.valid & r.dropped),
                s.payload.kind.eq(EventKind.FRAME_DROP), s.payload.line.eq(x),
                s.payload.aux.eq(r.reason),
                s.payload.body.frame_drop.frame_index.eq(r.index),
                s.payload.body.frame_drop.frame_bytes.eq(r.nbytes),
            ]
            drop_srcs.append(s)
        tap = source_signature().create(path=("tap",))
        m.d.comb += [
            tap.valid.eq(delivered),
            tap.payload.kind.eq(EventKind.MESSAGE), tap.payload.line.eq(msg.payload.line),
            tap.payload.aux.eq(msg.payload.length),
            tap.payload.body.message.msg_seq.eq(msg.payload.seq),
            tap.payload.body.message.data.eq(msg.payload.data),
        ]
        sources = {"seq_gap": seq.ev_gap, "seq_session": seq.ev_session,
                   "seq_end": seq.ev_eos, "drop_a": drop_srcs[0], "drop_b": drop_srcs[1],
                   "tap": tap, "bbo": book.ev_bbo, "trade": book.ev_trade,
                   "book_alert": book.ev_alert, "book_global": book.ev_global,
                   "verdict": verdict_ev, "oe_alert": oe_alert}
        if list(sources) != list(EVENT_SOURCES):
            raise AssertionError(f"event sources {list(sources)} differ from EVENT_SOURCES "
                                 f"{list(EVENT_SOURCES)}")
        m.submodules.events = ev = EventCollector(EVENT_KINDS, depth=self.c2h_depth)
        for i, s in enumerate(sources.values()):
            m.d.comb += [getattr(ev, f"src{i}").valid.eq(s.valid),
                         getattr(ev, f"src{i}").payload.eq(s.payload)]
        m.d.comb += [
            ev.time.eq(time), ev.mask.eq(csr.event_mask),
            self.m_axis_c2h_tdata.eq(ev.c2h.tdata), self.m_axis_c2h_tvalid.eq(ev.c2h.tvalid),
            self.m_axis_c2h_tlast.eq(ev.c2h.tlast), ev.c2h.tready.eq(self.m_axis_c2h_tready),
        ]
        count("events", ev.inc_events)
        count("events_lost", ev.inc_events_lost)
        count("events_undeclared", ev.inc_events_undeclared)
        return m
