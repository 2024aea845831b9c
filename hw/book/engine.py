"""The book engine: subscriptions, order table, price levels, BBO and trades (docs/book.md).

Structure, and why:

* **Front** (every cycle, never stalls): the decoder's output is matched against the slots'
  locates (a 64-entry compare, one cycle after the decoder's register), stock directory
  messages give waiting slots their locate (their names compared a cycle later still), and
  book messages become :func:`op_layout` entries in the **op FIFO** (block RAM). Gap and
  invalidation notices and host commands travel through the same FIFO, so the engine
  applies them exactly between the messages they came between. When the FIFO is full the
  op is lost and the loss itself is queued as an ``overflow`` marker: every slot goes
  stale, in order.
* **Engine**: one operation in two cycles — LOOKUP (the order table set is on the RAM's
  output: find the reference, write the entry back) then APPLY (the level, its occupancy
  word, the slot state and the trade statistics are on their RAMs' outputs: update them) —
  and the next operation's table read is issued in the APPLY cycle. Every RAM is therefore
  written before it is read again. A message that moves two levels (``U``, an add onto a
  live reference) takes two steps.
* **U**: its steps overlap. The new reference's table read is issued in the first LOOKUP
  and looked up in the removal's APPLY (``S_APLK``); the add's reads go out in that cycle,
  so the level, word and slot-state read ports are transparent to their writes (the only
  place a read meets a write). The U's BBO event is predicted in that cycle from the slot
  state, so a U's event is as early as a D's, and its add's APPLY raises none.
* **Next level**: the slot state holds, per side, the best level *and the one behind it*,
  so a step that empties the best level moves the next one up in the same cycle and the
  BBO event never waits. The level behind the new best is then found by a **refresh** of
  one to four cycles, after the message's event (the next operation waits for it): the
  best's own word, else the slot's summary word (one bit per non-empty 32-level word)
  names another word, the word names the level, the level gives the size.

Two cycles per operation is faster than the ingress path can deliver book messages on
one line: the shortest, ``D``, takes 21 bytes of MoldUDP64 payload, 2.6 bus beats.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.book.layouts import (
    OpKind,
    TradeStats,
    best_layout,
    entry_layout,
    op_layout,
    slot_bits,
    slot_state_layout,
)
from hw.book.params import ALL_SLOTS, DEFAULT_PARAMS, REF_BITS, AlertReason, BookParams
from hw.events import BBO_STALE, EventKind, source_signature
from hw.itch.decoder import DecodedItem
from hw.lib.fifo import BlockFIFO
from hw.lib.select import one_hot_or

_BOOK_TYPES = {"A": OpKind.ADD, "F": OpKind.ADD, "E": OpKind.EXEC, "C": OpKind.EXEC_PX,
               "X": OpKind.CANCEL, "D": OpKind.DELETE, "U": OpKind.REPLACE,
               "P": OpKind.TRADE, "Q": OpKind.TRADE}

COUNTERS = ("directory_matches", "book_ops", "book_unknown_ref", "book_zero_add",
            "book_add_live_ref", "book_clamped", "book_capacity", "book_window",
            "book_level_overflow", "book_ref_range", "book_fifo_overflow", "book_walks",
            "bbo_updates", "trades")


def _divider(p: BookParams):
    """Multiplier and shift that divide any offset below ``window × tick`` by ``tick``."""
    n = (p.window * p.tick - 1).bit_length()
    s = n + (p.tick - 1).bit_length() + 1
    mult = -(-(1 << s) // p.tick)
    return mult, s


def _ahead(side, a, b):
    """Level index ``a`` is nearer the touch than ``b`` on ``side``: higher on the bid (0),
    lower on the ask (1). The one definition of "better" for every best/next compare."""
    return Mux(side, a < b, a > b)


def _first_one(m: Module, value, *, highest: bool, name: str):
    """Index of the highest (or lowest) set bit of ``value`` (0 when none)."""
    idx = Signal(range(max(2, len(value))), name=name)
    order = range(len(value)) if highest else reversed(range(len(value)))
    for i in order:  # the last assignment wins
        with m.If(value[i]):
            m.d.comb += idx.eq(i)
    return idx


class BookEngine(wiring.Component):
    """Everything between the ITCH decoder and the book's events and registers.

    Host side: ``cmd_*`` strobes with the ``sub_*`` values (see the ``book`` block of
    :mod:`hw.regmap`); ``view_*`` show slot ``sub_slot``. ``inc_*``: counter increments.
    Events: ``ev_bbo``, ``ev_trade``, ``ev_alert`` (slot alerts), ``ev_global`` (alerts for
    every slot).
    """

    def __init__(self, params: BookParams = DEFAULT_PARAMS):
        self.p = p = params
        sb = slot_bits(p)
        members = {
            "decoded": In(stream.Signature(DecodedItem, always_ready=True)),
            "cmd_subscribe": In(1), "cmd_unsubscribe": In(1), "cmd_reset": In(1),
            "sub_slot": In(8), "sub_name": In(64), "sub_locate": In(16),
            "sub_direct": In(1), "sub_base": In(32),
            "busy": Out(1), "fifo_level": Out(range(p.fifo_depth + 1)),
            "view_active": Out(1), "view_known": Out(1), "view_stale": Out(8),
            "view_locate": Out(16), "view_base": Out(32),
            "view_bid_px": Out(32), "view_bid_sz": Out(32),
            "view_ask_px": Out(32), "view_ask_sz": Out(32),
            "view_last_px": Out(32), "view_last_sz": Out(32),
            "view_volume": Out(64), "view_notional": Out(64),
            "ev_bbo": Out(source_signature()), "ev_trade": Out(source_signature()),
            "ev_alert": Out(source_signature()), "ev_global": Out(source_signature()),
        }
        members |= {f"inc_{c}": Out(2) for c in COUNTERS}
        self._sb = sb
        super().__init__(members)

    # The elaboration is long because it is one pipeline; its sections follow docs/book.md.
    def elaborate(self, platform):  # noqa: C901, PLR0915
        m = Module()
        p = self.p
        sb = self._sb
        ib = (p.window - 1).bit_length()
        wb = (p.words - 1).bit_length()
        setb = p.set_bits
        OP = op_layout(p)
        ENTRY = entry_layout(p)
        BEST = best_layout(p)
        SLOT = slot_state_layout(p)
        n = p.slots
        inc = {c: getattr(self, f"inc_{c}") for c in COUNTERS}
        inc_sets: dict[str, list] = {c: [] for c in COUNTERS}

        def count(name, cond):
            # A signal assigned here, so that an enclosing ``m.If`` qualifies the increment.
            hit = Signal(name=f"cnt_{name}_{len(inc_sets[name])}")
            m.d.comb += hit.eq(cond)
            inc_sets[name].append(hit)

        # -- slot table (registers: compared every cycle, or read by any slot index) -------
        active = [Signal(name=f"active{s}") for s in range(n)]
        known = [Signal(name=f"known{s}") for s in range(n)]
        locate = [Signal(16, name=f"locate{s}") for s in range(n)]
        name = [Signal(64, name=f"name{s}") for s in range(n)]
        base = [Signal(32, name=f"base{s}") for s in range(n)]
        base_ok = [Signal(name=f"base_ok{s}") for s in range(n)]
        sub_base = [Signal(32, name=f"sub_base{s}") for s in range(n)]
        stale = [Signal(8, name=f"stale{s}") for s in range(n)]
        # Stale bits set this cycle by the markers of every slot.
        stale_glob = [Signal(8, name=f"stale_glob{s}") for s in range(n)]
        stale_clear = [Signal(name=f"stale_clear{s}") for s in range(n)]
        # A slot alert (raised in LOOKUP or APPLY, at the end of their logic) reaches the
        # slot's stale bits a cycle later, from a register: its bits and slot wait in
        # ``al_bits_r``/``al_slot_r``. Every reader of the stale bits (the BBO flag, an
        # alert's "already stale", the host view) adds the waiting alert and this cycle's.
        alert_reason = Signal(8)
        alert_slot = Signal(sb)
        al_bits = Signal(8)        # this cycle's alert, one bit per reason
        al_bits_r = Signal(8)
        al_slot_r = Signal(sb)

        def waiting(slot):
            """The alert bits of ``slot`` still waiting in the register (none for others)."""
            return Mux(al_slot_r == slot, al_bits_r, 0)

        def stale_of(slot):
            """The stale bits of ``slot`` as of this cycle's end, alerts included."""
            return pick(stale, slot, 8) | waiting(slot) | Mux(alert_slot == slot, al_bits, 0)

        def pick(regs, idx, width):
            out = Signal(width)
            with m.Switch(idx):
                for s in range(n):
                    with m.Case(s):
                        m.d.comb += out.eq(regs[s])
            return out

        # -- front: filter, directory, op FIFO ----------------------------------------------
        d = self.decoded.payload
        dv = self.decoded.valid
        msg = d.msg
        hit_slot = Signal(sb)
        hit = Signal()
        # The directory compare runs a cycle after the decoder's register (below); a message
        # for the locate it is giving a slot in this cycle is forwarded to that slot.
        dir_claim = Signal(n)
        dir_locate = Signal(16)
        dir_fwd = Signal()
        m.d.comb += dir_fwd.eq(dir_locate == msg.locate)
        # The matching slots, then the first of them (one-hot: names and locates are unique
        # unless the host errs, and then the lowest slot wins). The one-hot vector selects
        # the slot's window base for the pre-divider directly (``hit_base``), so that path
        # does not go through an encoder and a decoder.
        match = Signal(n)
        first = Signal(n)
        for s in range(n):
            m.d.comb += match[s].eq((active[s] & known[s] & (locate[s] == msg.locate))
                                    | (dir_claim[s] & dir_fwd))
            m.d.comb += first[s].eq(match[s] & ~(match[:s].any() if s else Const(0)))
        m.d.comb += [hit.eq(match.any()),
                     hit_slot.eq(one_hot_or(first, [Const(s, sb) for s in range(n)]))]
        book_type = Signal()
        kind = Signal(4)
        for code, k in _BOOK_TYPES.items():
            with m.If(msg.type == ord(code)):
                m.d.comb += [book_type.eq(1), kind.eq(k)]
        book_msg = Signal()
        m.d.comb += book_msg.eq(dv & d.message & book_type & hit)

        # Directory: the first R naming a waiting slot gives it the locate. The R's name and
        # locate are registered first and compared with the slots' names in the next cycle:
        # the decoder's register then feeds one 64-bit register instead of a compare per
        # slot (the name compare was most of the 8-slot core's routing congestion,
        # docs/BENCHMARKS.md). The cycle of delay changes nothing the feed can tell: a
        # message for that locate in the next cycle is forwarded (above); a host command
        # applied in the R's own cycle now comes before the R instead of after it — the R
        # takes no place in the op FIFO, so either order is one the book messages agree with
        # (tests/test_book_engine.py, ``test_subscribe_around_its_directory_message``).
        dir_valid = Signal()
        dir_name = Signal(64)
        m.d.sync += [dir_valid.eq(dv & d.message & (msg.type == ord("R"))),
                     dir_name.eq(msg.body.stock_directory.stock), dir_locate.eq(msg.locate)]
        for s in range(n):
            # Only the first matching slot takes it (names are unique unless the host errs).
            earlier = dir_claim[:s].any() if s else Const(0)
            m.d.comb += dir_claim[s].eq(dir_valid & active[s] & ~known[s]
                                        & (name[s] == dir_name) & ~earlier)
        count("directory_matches", dir_claim.any())

        op_in = Signal(OP)
        b = msg.body
        m.d.comb += [
            op_in.kind.eq(Mux(book_msg, kind, OpKind.NONE)),
            op_in.gap.eq(d.gap), op_in.invalidate.eq(d.invalidate),
            op_in.seq.eq(msg.seq), op_in.time.eq(msg.timestamp), op_in.slot.eq(hit_slot),
            op_in.type.eq(msg.type),
        ]
        with m.Switch(msg.type):
            with m.Case(ord("A"), ord("F")):
                a = b.add_order
                m.d.comb += [op_in.ref.eq(a.order_ref), op_in.side.eq(a.side == ord("S")),
                             op_in.shares.eq(a.shares), op_in.price.eq(a.price)]
            with m.Case(ord("E")):
                e = b.order_executed
                m.d.comb += [op_in.ref.eq(e.order_ref), op_in.shares.eq(e.executed_shares),
                             op_in.match.eq(e.match_number)]
            with m.Case(ord("C")):
                c = b.order_executed_with_price
                m.d.comb += [op_in.ref.eq(c.order_ref), op_in.shares.eq(c.executed_shares),
                             op_in.match.eq(c.match_number), op_in.price.eq(c.execution_price),
                             op_in.printable.eq(c.printable == ord("Y"))]
            with m.Case(ord("X")):
                x = b.order_cancel
                m.d.comb += [op_in.ref.eq(x.order_ref), op_in.shares.eq(x.cancelled_shares)]
            with m.Case(ord("D")):
                m.d.comb += op_in.ref.eq(b.order_delete.order_ref)
            with m.Case(ord("U")):
                u = b.order_replace
                m.d.comb += [op_in.ref.eq(u.original_ref), op_in.ref2.eq(u.new_ref),
                             op_in.shares.eq(u.shares), op_in.price.eq(u.price)]
            with m.Case(ord("P")):
                t = b.trade
                m.d.comb += [op_in.shares.eq(t.shares), op_in.price.eq(t.price),
                             op_in.match.eq(t.match_number)]
            with m.Case(ord("Q")):
                q = b.cross_trade
                m.d.comb += [op_in.shares.eq(q.shares), op_in.price.eq(q.cross_price),
                             op_in.match.eq(q.match_number)]
        want = Signal()
        m.d.comb += want.eq(book_msg | (dv & (d.gap | d.invalidate)))

        # Host commands wait for a cycle without feed input, then enter the FIFO in order.
        cmd_pend = Signal(3)
        cmd_slot = Signal(sb)
        cmd_name = Signal(64)
        cmd_locate = Signal(16)
        cmd_direct = Signal()
        cmd_base = Signal(32)
        new_cmd = Cat(self.cmd_subscribe, self.cmd_unsubscribe, self.cmd_reset)
        with m.If(new_cmd.any()):
            m.d.sync += [cmd_pend.eq(new_cmd), cmd_slot.eq(self.sub_slot),
                         cmd_name.eq(self.sub_name), cmd_locate.eq(self.sub_locate),
                         cmd_direct.eq(self.sub_direct), cmd_base.eq(self.sub_base)]
        lost = Signal()        # an op was lost: queue an overflow marker next
        lost_seq = Signal(64)

        m.submodules.fifo = fifo = BlockFIFO(width=OP.size, depth=p.fifo_depth)
        push = Signal()
        push_data = Signal(OP)
        push_cmd = Signal()
        m.d.comb += push_data.eq(op_in)
        with m.If(lost):
            # The marker goes first; an op arriving with it is lost as well (counted).
            m.d.comb += [push.eq(1), push_data.kind.eq(OpKind.NONE), push_data.overflow.eq(1),
                         push_data.gap.eq(0), push_data.invalidate.eq(0),
                         push_data.seq.eq(lost_seq)]
        with m.Elif(want):
            m.d.comb += push.eq(1)
        with m.Elif(cmd_pend.any()):
            m.d.comb += [push.eq(1), push_cmd.eq(1), push_data.kind.eq(OpKind.COMMAND),
                         push_data.gap.eq(0), push_data.invalidate.eq(0),
                         push_data.cmd.eq(cmd_pend), push_data.slot.eq(cmd_slot),
                         push_data.price.eq(cmd_base)]

        # The engine takes the head, or the pushed op directly when the FIFO is empty.
        take = Signal()         # the engine issues an op this cycle
        bypass = Signal()
        head = Signal(OP)
        fifo_head = Signal(OP)      # the FIFO's output, typed
        head_valid = Signal()
        m.d.comb += [
            bypass.eq(~fifo.r_rdy & (fifo.level == 0)),
            fifo_head.eq(fifo.r_data),
            head.eq(Mux(fifo.r_rdy, fifo_head, push_data)),
            head_valid.eq(fifo.r_rdy | (bypass & push)),
            fifo.r_en.eq(take & fifo.r_rdy),
            fifo.w_data.eq(push_data),
            fifo.w_en.eq(push & ~(bypass & take)),
            self.fifo_level.eq(fifo.level),
        ]
        dropped = Signal()
        m.d.comb += dropped.eq(push & ~push_cmd & ~fifo.w_rdy & ~(bypass & take))
        with m.If(dropped & ~lost):
            m.d.sync += [lost.eq(1), lost_seq.eq(push_data.seq)]
        with m.If(lost & ~dropped):
            m.d.sync += lost.eq(0)
        count("book_fifo_overflow", (dropped & ~lost & book_msg) | (lost & book_msg))
        # A command leaves the pending register once pushed (or taken directly).
        with m.If(push_cmd & (fifo.w_rdy | (bypass & take)) & ~new_cmd.any()):
            m.d.sync += cmd_pend.eq(0)
        with m.If(push_cmd & (fifo.w_rdy | (bypass & take))):
            # Filtering follows the subscription from this point of the feed on.
            for s in range(n):
                with m.If(cmd_slot == s):
                    with m.If(cmd_pend[0]):
                        m.d.sync += [active[s].eq(1), known[s].eq(cmd_direct),
                                     locate[s].eq(Mux(cmd_direct, cmd_locate, 0)),
                                     name[s].eq(cmd_name)]
                    with m.If(cmd_pend[1]):
                        m.d.sync += [active[s].eq(0), known[s].eq(0)]
        for s in range(n):
            with m.If(dir_claim[s] & ~(push_cmd & (cmd_slot == s))):
                m.d.sync += [known[s].eq(1), locate[s].eq(dir_locate)]

        # -- memories -----------------------------------------------------------------------
        m.submodules.orders = orders = Memory(shape=data.ArrayLayout(ENTRY, p.ways),
                                              depth=p.sets, init=[])
        m.submodules.levels = levels = Memory(shape=32, depth=n * 2 * p.window, init=[])
        m.submodules.words = words = Memory(shape=32, depth=n * 2 * p.words, init=[])
        m.submodules.slotmem = slotmem = Memory(shape=SLOT, depth=n, init=[])
        m.submodules.trades = trades = Memory(shape=TradeStats, depth=n, init=[])
        # An add that ends in LOOKUP (outside the window: no step) writes its set in the same
        # cycle as the next op's table read: that read must see the write.
        o_wr = orders.write_port()
        o_rd = orders.read_port(transparent_for=(o_wr,))
        # A U's add is looked up while its removal is applied (S_APLK), and presents its reads
        # in that cycle: they must see the removal's writes.
        l_wr, w_wr, s_wr = levels.write_port(), words.write_port(), slotmem.write_port()
        l_rd = levels.read_port(transparent_for=(l_wr,))
        w_rd = words.read_port(transparent_for=(w_wr,))
        s_rd = slotmem.read_port(transparent_for=(s_wr,))
        t_rd, t_wr = trades.read_port(), trades.write_port()
        s_view, t_view = slotmem.read_port(), trades.read_port()

        # -- engine state -------------------------------------------------------------------
        op = Signal(OP)
        phase = Signal()          # U: 0 = remove the original, 1 = add the new reference
        u_slot = Signal(sb)
        u_side = Signal()
        # A step: one level change (and/or one trade) on one slot.
        STEP = data.StructLayout({
            "slot": sb, "side": 1, "level": 1, "idx": ib, "add": 1, "amount": 32,
            "price": 32, "ref": 64, "trade": 1, "trade_px": 32, "trade_sz": 64,
        })
        st = Signal(STEP)
        st2 = Signal(STEP)        # the add that follows removing a live reference's order
        st2_valid = Signal()
        then_u = Signal()         # after this step, look the new reference of a U up
        smr = Signal(SLOT)        # slot state being finished by a refresh
        walk_slot = Signal(sb)
        walk_side = Signal()
        walk_w = Signal(max(1, wb))     # combinational: the word the walk reads
        walk_idx = Signal(ib)           # combinational: the level the walk reads
        # A refresh after a step that continues on the same slot and side (a U's add, or the
        # add after removing the live reference's order) waits for that add, which may make
        # it unnecessary (a new best) and otherwise runs after the message's last step.
        walk_pend = Signal()      # a refresh waits for the message's next step
        walk_tail = Signal()      # the running refresh comes after the message's end
        walk_reread = Signal()    # after the running refresh, read for ``st`` and apply it
        walk_own = Signal()       # the refresh has the best's word already (``own_r``)
        own_r = Signal(32)
        clear_i = Signal(range(max(p.sets, n * 2 * p.words, n) + 1))
        clear_all = Signal()
        clear_slot = Signal(sb)

        # The state is a plain register rather than an ``m.FSM``: several sections below
        # (issue, LOOKUP, APPLY, the walk) decide the next state of the same cycle.
        state = Signal(4)
        (S_IDLE, S_LOOKUP, S_APPLY, S_PREADD, S_REREAD, S_WALK1, S_WALK2, S_WALK3, S_WALK4,
         S_CLEAR, S_APLK) = range(11)
        # S_APLK is APPLY for a U's removal and LOOKUP for its add, in the same cycle.
        applying = Signal()
        looking = Signal()
        m.d.comb += [applying.eq((state == S_APPLY) | (state == S_APLK)),
                     looking.eq((state == S_LOOKUP) | (state == S_APLK))]
        # A U in its first LOOKUP (decided by registers only, so it is early): the table read
        # of this cycle is for its new reference, and the add's index is already registered.
        u_first = Signal()
        m.d.comb += u_first.eq((state == S_LOOKUP) & (op.kind == OpKind.REPLACE) & ~phase)
        wp = Signal()           # a refresh waits for the message's next step (this cycle)
        pred_now = Signal()     # this cycle's BBO event is the U's, predicted (S_APLK)
        ev_sent = Signal()      # the message's event went out already (predicted)
        m.d.comb += self.busy.eq((state == S_CLEAR) | cmd_pend.any())

        # -- issue: latch the head, apply its markers, start its table read --------------------
        finishing = Signal()    # the current op completes this cycle
        m.d.comb += take.eq(head_valid & ((state == S_IDLE) | finishing))

        def lookup_ref_of(o, ph):
            return Mux(ph, o.ref2, o.ref)

        def set_of(ref):
            h = ref[:setb]
            for lo in range(setb, REF_BITS, setb):
                h = h ^ ref[lo:min(lo + setb, REF_BITS)]
            return h

        # The order-table read address: the head's (issue) or the U's new reference.
        next_lookup = Signal()   # a U's second lookup starts this cycle
        m.d.comb += next_lookup.eq(u_first)
        m.d.comb += o_rd.addr.eq(Mux(next_lookup, set_of(op.ref2), set_of(head.ref)))

        # Global alerts (every slot): pending bits, drained one a cycle.
        g_pend = Signal(3)       # GAP, INVALIDATED, FIFO_OVERFLOW
        g_seq = [Signal(64, name=f"g_seq{i}") for i in range(3)]
        g_reasons = (AlertReason.GAP, AlertReason.INVALIDATED, AlertReason.FIFO_OVERFLOW)
        g_new = Signal(3)
        with m.If(take):
            m.d.sync += [op.eq(head), phase.eq(0)]
            flags = (head.gap, head.invalidate, head.overflow)
            for i, (flag, reason) in enumerate(zip(flags, g_reasons, strict=True)):
                lacking = Cat(*(active[s] & ~stale[s][reason.value - 1]
                                for s in range(n))).any()
                m.d.comb += g_new[i].eq(flag & lacking)
                for s in range(n):
                    with m.If(flag & active[s]):
                        m.d.comb += stale_glob[s][reason.value - 1].eq(1)
                with m.If(g_new[i]):
                    m.d.sync += g_seq[i].eq(head.seq)
            with m.If(head.kind == OpKind.COMMAND):
                m.d.sync += [state.eq(S_CLEAR), clear_i.eq(0),
                             clear_all.eq(head.cmd[2]), clear_slot.eq(head.slot)]
                # Subscribe clears one slot, reset every slot (subscriptions stay; each
                # slot's window base goes back to the one it was subscribed with).
                for s in range(n):
                    with m.If(head.cmd[2] | (head.cmd[0] & (head.slot == s))):
                        m.d.comb += stale_clear[s].eq(1)
                        m.d.sync += base_ok[s].eq(0)
                    with m.If(head.cmd[0] & (head.slot == s)):
                        m.d.sync += [sub_base[s].eq(head.price), base[s].eq(head.price),
                                     base_ok[s].eq(head.price != 0)]
                    with m.If(head.cmd[2]):
                        m.d.sync += [base[s].eq(sub_base[s]), base_ok[s].eq(sub_base[s] != 0)]
            with m.Elif(head.kind != OpKind.NONE):
                m.d.sync += state.eq(S_LOOKUP)
            with m.Else():
                m.d.sync += state.eq(S_IDLE)
            count("book_ops", (head.kind != OpKind.NONE) & (head.kind != OpKind.COMMAND))
        with m.Elif(finishing):
            m.d.sync += state.eq(S_IDLE)

        # -- LOOKUP -------------------------------------------------------------------------
        ways = o_rd.data
        lk_ref = Signal(64)
        m.d.comb += lk_ref.eq(lookup_ref_of(op, phase))
        tag = lk_ref[setb:REF_BITS]
        in_range = Signal()
        m.d.comb += in_range.eq(lk_ref[REF_BITS:] == 0)
        hit_w = Signal(p.ways)
        free_w = Signal(p.ways)
        for w in range(p.ways):
            m.d.comb += [hit_w[w].eq(ways[w].valid & (ways[w].tag == tag) & in_range),
                         free_w[w].eq(~ways[w].valid)]
        o_hit = Signal()
        hit_way = Signal(range(p.ways))
        free_way = Signal(range(p.ways))
        has_free = Signal()
        for w in reversed(range(p.ways)):
            with m.If(hit_w[w]):
                m.d.comb += [o_hit.eq(1), hit_way.eq(w)]
            with m.If(free_w[w]):
                m.d.comb += [has_free.eq(1), free_way.eq(w)]
        held = Signal(ENTRY)
        m.d.comb += held.eq(ways[hit_way])

        is_add = Signal()
        m.d.comb += is_add.eq((op.kind == OpKind.ADD) | ((op.kind == OpKind.REPLACE) & phase))
        a_slot = Signal(sb)
        a_side = Signal()
        m.d.comb += [a_slot.eq(Mux(phase, u_slot, op.slot)),
                     a_side.eq(Mux(phase, u_side, op.side))]
        # The add's level index (``quot``) and whether it is inside the window (``inwin``),
        # and ``auto``, the base the add sets on a slot that has none. They depend only on
        # the add's price and its slot's base, both known one cycle before LOOKUP: at issue
        # (the head) or, for a U's add, when its second lookup starts (``op``, ``u_slot``;
        # ``then_u`` says which, and is a register, so the choice is early). So they are
        # computed in that cycle and registered, which keeps the dividers off LOOKUP's path.
        # The base is current in that cycle: only a LOOKUP sets one (a command's are set at
        # its issue, and its clear runs before the next issue), on a slot without a base,
        # and then the add is inside the window by construction (its own base), so it goes
        # on to APPLY and nothing is issued in that cycle.
        half = (p.window // 2) * p.tick
        mult, shift = _divider(p)
        nb = (p.window * p.tick - 1).bit_length()

        def scaled(offset):
            """``offset × mult``: its bits from ``shift`` up are ``offset // tick`` for an
            offset below ``window × tick``; the low ones tell whether the division is exact."""
            return offset[:nb] * mult

        def ticks(offset):
            """``offset // tick`` for an offset below ``window × tick`` (a multiply)."""
            return scaled(offset) >> shift

        # The pre-divider works on the U's add (``then_u``), the FIFO's head, or the op that
        # arrives from the decoder this cycle (the FIFO is empty: the bypass). For the last
        # it takes the decoder's price and the matched slot's base straight from the front
        # (``first``), not from ``head``: an add is only ever in ``head`` as ``op_in``, and
        # what ``head`` holds instead when it is a command or a marker does not matter here.
        pre_price = Signal(32)
        pre_slot = Signal(sb)       # the slot of a U's add or of the FIFO's head
        pre_in = Signal()           # the op that arrives this cycle
        m.d.comb += [pre_in.eq(~then_u & ~fifo.r_rdy),
                     pre_price.eq(Mux(then_u, op.price,
                                      Mux(fifo.r_rdy, fifo_head.price, op_in.price))),
                     pre_slot.eq(Mux(then_u, u_slot, fifo_head.slot))]
        hit_base = Signal(32)
        hit_base_ok = Signal()
        m.d.comb += [hit_base.eq(one_hot_or(first, base)),
                     hit_base_ok.eq(one_hot_or(first, base_ok))]
        auto = Signal(32)       # registered: the op in LOOKUP
        quot = Signal(ib + 1)   # registered: the op in LOOKUP
        inwin = Signal()        # registered: the op in LOOKUP
        pre_ok = Signal()
        diff = Signal(33)
        q_base = Signal(ib + 1)
        # ``exact``: the offset is a whole number of ticks. With ``mult`` = ceil(2**shift /
        # tick) the low ``shift`` bits of offset × mult are below ``mult`` exactly then (they
        # are quot × (tick × mult − 2**shift) < mult for a multiple, and at least mult
        # otherwise), so no second multiply (quot × tick) is needed to check it.
        prod = Signal(nb + len(Const(mult)))
        exact = Signal()
        m.d.comb += [pre_ok.eq(Mux(pre_in, hit_base_ok, pick(base_ok, pre_slot, 1))),
                     diff.eq(pre_price - Mux(pre_in, hit_base, pick(base, pre_slot, 32))),
                     prod.eq(scaled(diff)),
                     q_base.eq(prod >> shift),
                     exact.eq(prod[:shift] < mult)]
        # Without a base the add's own base is taken, so its index needs no second divider:
        # price / tick below ``half`` (the base is price mod tick), else the middle of the
        # window; either is inside it.
        q_auto = Signal(ib + 1)
        m.d.comb += q_auto.eq(ticks(pre_price))
        low = Signal()
        m.d.comb += low.eq(pre_price < half)
        # A U's own price and slot were the head's at its issue: in its first LOOKUP the
        # registers keep them for its add (no op is issued in that cycle).
        with m.If(~u_first):
            m.d.sync += [
                auto.eq(Mux(low, pre_price - q_auto * p.tick, pre_price - half)),
                quot.eq(Mux(pre_ok, q_base, Mux(low, q_auto, p.window // 2))),
                inwin.eq(~pre_ok | (~diff[32] & (diff < p.window * p.tick) & exact)),
            ]
        slot_base_ok = pick(base_ok, a_slot, 1)
        new_entry = Signal(ENTRY)
        m.d.comb += [
            new_entry.valid.eq(1), new_entry.tag.eq(tag), new_entry.slot.eq(a_slot),
            new_entry.side.eq(a_side), new_entry.inwin.eq(inwin), new_entry.idx.eq(quot),
            new_entry.price.eq(op.price), new_entry.shares.eq(op.shares),
        ]

        # What LOOKUP decides: the step to apply (if any), and the write-back.
        step = Signal(STEP)
        step_go = Signal()
        upd_ways = Signal.like(ways)
        m.d.comb += [upd_ways.eq(ways), o_wr.addr.eq(set_of(lk_ref)), o_wr.data.eq(upd_ways)]
        end_msg = Signal()      # the message ends in this cycle (no further step)
        a_alert = Signal(8)     # slot alert raised in LOOKUP: reason
        remove_step = Signal(STEP)
        m.d.comb += [
            remove_step.slot.eq(held.slot), remove_step.side.eq(held.side),
            remove_step.level.eq(held.inwin), remove_step.idx.eq(held.idx),
            remove_step.add.eq(0), remove_step.amount.eq(held.shares),
            remove_step.price.eq(held.price), remove_step.ref.eq(lk_ref),
        ]
        add_step = Signal(STEP)
        m.d.comb += [
            add_step.slot.eq(a_slot), add_step.side.eq(a_side), add_step.level.eq(inwin),
            add_step.idx.eq(quot), add_step.add.eq(1), add_step.amount.eq(op.shares),
            add_step.price.eq(op.price), add_step.ref.eq(lk_ref),
        ]
        clamp_n = Signal(32)
        over = Signal()
        m.d.comb += [over.eq(op.shares > held.shares),
                     clamp_n.eq(Mux(over, held.shares, op.shares))]

        # A U whose original order is on the U's own slot (always, unless the feed errs) looks
        # its new reference up while the removal is applied; its add's index is the one
        # computed at the U's issue, from that slot's base.
        u_fast = Signal()
        m.d.comb += u_fast.eq(u_first & (held.slot == op.slot))
        with m.If(looking):
            with m.If(is_add):
                zero = (op.shares[:32] == 0) | (op.price == 0)
                with m.If(zero):
                    count("book_zero_add", 1)
                with m.Elif(~in_range):
                    count("book_ref_range", 1)
                    m.d.comb += a_alert.eq(AlertReason.REF_RANGE)
                with m.Elif(o_hit | has_free):
                    m.d.comb += [o_wr.en.eq(1),
                                 upd_ways[Mux(o_hit, hit_way, free_way)].eq(new_entry)]
                    with m.If(~slot_base_ok):
                        for s in range(n):
                            with m.If(a_slot == s):
                                m.d.sync += [base[s].eq(auto), base_ok[s].eq(1)]
                    with m.If(~inwin):
                        count("book_window", 1)
                        m.d.comb += a_alert.eq(AlertReason.WINDOW)
                    with m.If(o_hit):
                        count("book_add_live_ref", 1)
                        m.d.comb += [step.eq(remove_step), step_go.eq(1)]
                        m.d.sync += [st2.eq(add_step), st2_valid.eq(inwin)]
                    with m.Elif(inwin):
                        m.d.comb += [step.eq(add_step), step_go.eq(1)]
                        m.d.sync += st2_valid.eq(0)
                with m.Else():
                    count("book_capacity", 1)
                    m.d.comb += a_alert.eq(AlertReason.CAPACITY)
                m.d.sync += then_u.eq(0)
            with m.Elif(op.kind == OpKind.TRADE):
                m.d.comb += [step.slot.eq(op.slot), step.trade.eq(1),
                             step.trade_px.eq(op.price), step.trade_sz.eq(op.shares),
                             step_go.eq(1)]
                m.d.sync += [st2_valid.eq(0), then_u.eq(0)]
            with m.Else():  # E C X D, U's first phase
                whole = (op.kind == OpKind.DELETE) | (op.kind == OpKind.REPLACE)
                with m.If(~o_hit):
                    count("book_unknown_ref", 1)
                with m.Else():
                    amount = Mux(whole, held.shares, clamp_n)
                    count("book_clamped", ~whole & over)
                    left = held.shares - amount
                    m.d.comb += [o_wr.en.eq(1), upd_ways[hit_way].shares.eq(left),
                                 upd_ways[hit_way].valid.eq(left != 0),
                                 step.eq(remove_step), step.amount.eq(amount), step_go.eq(1)]
                    trade_px = Mux(op.kind == OpKind.EXEC_PX, op.price, held.price)
                    trades_it = ((op.kind == OpKind.EXEC)
                                 | ((op.kind == OpKind.EXEC_PX) & op.printable)) & (amount != 0)
                    m.d.comb += [step.trade.eq(trades_it), step.trade_px.eq(trade_px),
                                 step.trade_sz.eq(amount)]
                    m.d.sync += [st2_valid.eq(0),
                                 then_u.eq((op.kind == OpKind.REPLACE) & ~u_fast),
                                 u_slot.eq(held.slot), u_side.eq(held.side)]
            with m.If(step_go & wp & o_hit):
                # A U whose new reference is live: its order is removed first, and that may
                # empty a level, so the refresh the U's first step left waiting runs before
                # (then the step's reads are issued again: S_REREAD).
                m.d.sync += [st.eq(step), state.eq(S_WALK1), walk_reread.eq(1),
                             walk_pend.eq(0)]
            with m.Elif(step_go):
                m.d.sync += [st.eq(step), state.eq(Mux(u_fast, S_APLK, S_APPLY))]
                with m.If(u_fast):
                    m.d.sync += phase.eq(1)
                with m.If((state == S_APLK) & ~o_hit):
                    # The U's add goes to APPLY next, but its effect on the best is known now
                    # (the slot state holds the best's size): its event goes out in this
                    # cycle, as a one-step message's does.
                    m.d.comb += [end_msg.eq(1), pred_now.eq(1)]
                    m.d.sync += ev_sent.eq(1)
            with m.Elif(wp):
                # A U whose add ends here (outside the window, at capacity, zero): the refresh
                # its first step left waiting runs now, after the message's event.
                m.d.comb += end_msg.eq(1)
                m.d.sync += [state.eq(S_WALK1), walk_tail.eq(1), walk_pend.eq(0)]
            with m.Elif(u_first):
                # A U with an unknown reference: this cycle's table read was for its new
                # reference, so the next op is issued in the next cycle.
                m.d.comb += end_msg.eq(1)
                m.d.sync += state.eq(S_IDLE)
            with m.Else():
                m.d.comb += [finishing.eq(1), end_msg.eq(1)]

        # -- reads for a step (presented by LOOKUP, PREADD) --------------------------------
        rd_step = Signal(STEP)
        m.d.comb += rd_step.eq(Mux(state == S_PREADD, st2, Mux(state == S_REREAD, st, step)))
        walk_rd = Signal()
        walk_level = Signal()
        m.d.comb += [
            l_rd.addr.eq(Mux(walk_level, Cat(walk_idx, walk_side, walk_slot),
                             Cat(rd_step.idx, rd_step.side, rd_step.slot))),
            w_rd.addr.eq(Mux(walk_rd, Cat(walk_w, walk_side, walk_slot),
                             Cat(rd_step.idx[5:], rd_step.side, rd_step.slot))),
            s_rd.addr.eq(rd_step.slot),
            t_rd.addr.eq(rd_step.slot),
        ]
        with m.If(state == S_PREADD):
            m.d.sync += [st.eq(st2), state.eq(S_APPLY), st2_valid.eq(0)]
        with m.If(state == S_REREAD):
            m.d.sync += state.eq(S_APPLY)

        # -- pending BBO emission (deferred while a message's steps stay on one slot) ------
        TUPLE = data.StructLayout({"bid_px": 32, "bid_sz": 32, "ask_px": 32, "ask_sz": 32})

        def tuple_of(best):
            t = Signal(TUPLE)
            m.d.comb += [t.bid_px.eq(Mux(best[0].valid, best[0].px, 0)),
                         t.bid_sz.eq(Mux(best[0].valid, best[0].sz, 0)),
                         t.ask_px.eq(Mux(best[1].valid, best[1].px, 0)),
                         t.ask_sz.eq(Mux(best[1].valid, best[1].sz, 0))]
            return t

        pend = Signal()
        pend_slot = Signal(sb)
        pend_before = Signal(TUPLE)
        pend_after = Signal(TUPLE)
        hold = Signal()                     # a second BBO event raised in the same cycle
        hold_ev = Signal(self.ev_bbo.payload.shape())

        def bbo_payload(ev, slot, tup, seq, time, also_stale=None):
            body = ev.body.bbo
            nm = pick(name, slot, 64)
            st_ = stale_of(slot) if also_stale is None else Cat(stale_of(slot), also_stale)
            return [
                ev.kind.eq(EventKind.BBO), ev.line.eq(0xFF), ev.aux.eq(slot),
                body.itch_seq.eq(seq), body.bid_px.eq(tup.bid_px), body.bid_sz.eq(tup.bid_sz),
                body.ask_px.eq(tup.ask_px), body.ask_sz.eq(tup.ask_sz),
                body.itch_time.eq(time), body.locate.eq(pick(locate, slot, 16)),
                body.flags.eq(Mux(st_.any(), BBO_STALE, 0)),
                # The record stores bytes LSB first; the name is big-endian (wire order).
                body.symbol.eq(Cat(*(nm[8 * i:8 * i + 8] for i in reversed(range(8))))),
            ]

        flush_ev = Signal(self.ev_bbo.payload.shape())
        flush = Signal()        # emit the pending slot now (a step on another slot starts)
        final_ev = Signal(self.ev_bbo.payload.shape())
        final = Signal()        # emit at the end of the message
        # The pending slot belongs to the message being processed: ``op`` names it.
        m.d.comb += bbo_payload(flush_ev, pend_slot, pend_after, op.seq, op.time)

        # -- APPLY ----------------------------------------------------------------------------
        sm = Signal(SLOT)
        m.d.comb += sm.eq(s_rd.data)
        bit = Signal()
        m.d.comb += bit.eq(w_rd.data.bit_select(st.idx[:5], 1))
        old_lvl = Signal(32)
        m.d.comb += old_lvl.eq(Mux(bit, l_rd.data, 0))
        sum_ = Signal(33)
        m.d.comb += sum_.eq(old_lvl + st.amount)
        new_lvl = Signal(32)
        lvl_over = Signal()
        m.d.comb += [lvl_over.eq(st.add & sum_[32]),
                     new_lvl.eq(Mux(st.add, Mux(sum_[32], 0xFFFF_FFFF, sum_[:32]),
                                    Mux(st.amount >= old_lvl, 0, old_lvl - st.amount)))]
        # ``new_lvl == 0``, from the operands rather than the result, so that it does not wait
        # for the add or subtract's carry chain: a saturating add is 0 only from 0 + 0, a
        # clamped removal exactly when it takes at least what the level holds.
        lvl_zero = Signal()
        m.d.comb += lvl_zero.eq(Mux(st.add, (old_lvl == 0) & (st.amount == 0),
                                    st.amount >= old_lvl))
        sm_new = Signal(SLOT)
        new_word = Signal(32)
        m.d.comb += [sm_new.eq(sm), new_word.eq(w_rd.data)]
        m.d.comb += new_word.bit_select(st.idx[:5], 1).eq(~lvl_zero)
        side_sum = Signal(p.words)
        m.d.comb += side_sum.eq(sm.summary[st.side])
        m.d.comb += sm_new.summary[st.side].bit_select(st.idx[5:] if wb else 0, 1).eq(
            new_word.any())
        # The best and next level of the step's side. An emptied best is replaced by the next
        # level in this cycle; the level behind it is found afterwards (the refresh, below),
        # so the BBO event never waits for a walk. ``nxt_stale`` is only ever set between a
        # step and its refresh, and the only step that can come in between is the add of the
        # same message on the same slot and side (``defer``, below): an add never empties a
        # level, so a stale ``nxt`` is never needed.
        cur = Signal(BEST)
        nx = Signal(BEST)
        nx_stale = Signal()
        m.d.comb += [cur.eq(sm.best[st.side]), nx.eq(sm.nxt[st.side]),
                     nx_stale.eq(sm.nxt_stale[st.side])]
        here = Signal(BEST)     # the step's level as a best or next level
        m.d.comb += [here.valid.eq(1), here.idx.eq(st.idx), here.px.eq(st.price),
                     here.sz.eq(new_lvl)]
        better = _ahead(st.side, st.idx, cur.idx)
        better_nx = _ahead(st.side, st.idx, nx.idx)
        emptied = Signal()      # the step empties the best level (``book_walks``)
        need_walk = Signal()    # the side's next level must be found again
        with m.If(st.level):
            with m.If(cur.valid & (cur.idx == st.idx)):
                m.d.comb += sm_new.best[st.side].sz.eq(new_lvl)
                with m.If(lvl_zero):
                    # The next level (or none: the side is empty) moves up.
                    m.d.comb += [emptied.eq(1), sm_new.best[st.side].eq(nx),
                                 sm_new.nxt[st.side].valid.eq(0),
                                 sm_new.nxt_stale[st.side].eq(nx.valid)]
            with m.Elif(st.add & (~cur.valid | better)):
                # A new best: the old one is the level behind it (none if the side was empty).
                m.d.comb += [sm_new.best[st.side].eq(here), sm_new.nxt[st.side].eq(cur),
                             sm_new.nxt_stale[st.side].eq(0)]
            with m.Elif(~nx_stale & nx.valid & (nx.idx == st.idx)):
                m.d.comb += sm_new.nxt[st.side].sz.eq(new_lvl)
                with m.If(lvl_zero):
                    m.d.comb += [sm_new.nxt[st.side].valid.eq(0),
                                 sm_new.nxt_stale[st.side].eq(1)]
            with m.Elif(st.add & ~nx_stale & (~nx.valid | better_nx)):
                # A new level between the best and the next.
                m.d.comb += sm_new.nxt[st.side].eq(here)
        m.d.comb += need_walk.eq(st.level & sm_new.nxt_stale[st.side])
        # In S_APLK the U's removal may leave a refresh waiting: its LOOKUP decides on it now.
        m.d.comb += wp.eq(walk_pend | ((state == S_APLK) & need_walk))

        # The U's BBO as its add (looked up in S_APLK) will leave it. The add is on the
        # removal's slot and side; the best's size is its level's, and a level better than
        # the best is empty: so the best after the add needs no read of the level. The add's
        # values are taken from ``add_step`` (registers), not from ``step``, which is also a
        # removal's and so depends on the table's output.
        pb = Signal(BEST)
        m.d.comb += pb.eq(sm_new.best[st.side])
        p_same = Signal()
        p_sum = Signal(33)
        m.d.comb += [p_same.eq(pb.valid & (pb.idx == add_step.idx)),
                     p_sum.eq(Mux(p_same, pb.sz, 0) + add_step.amount)]
        p_best = Signal(BEST)
        pred_sm = Signal(SLOT)
        m.d.comb += [p_best.eq(pb), pred_sm.eq(sm_new), pred_sm.best[st.side].eq(p_best)]
        with m.If(p_same | ~pb.valid
                  | _ahead(st.side, add_step.idx, pb.idx)):
            m.d.comb += [p_best.valid.eq(1), p_best.idx.eq(add_step.idx),
                         p_best.px.eq(Mux(p_same, pb.px, add_step.price)),
                         p_best.sz.eq(Mux(p_sum[32], 0xFFFF_FFFF, p_sum[:32]))]
        p_over = Signal()       # the add will overflow the best level (its alert: APPLY)
        m.d.comb += p_over.eq(p_same & p_sum[32])
        # Trade statistics.
        ts = Signal(TradeStats)
        m.d.comb += ts.eq(t_rd.data)
        ts_new = Signal(TradeStats)
        m.d.comb += [
            ts_new.last_px.eq(st.trade_px),
            ts_new.last_sz.eq(Mux(st.trade_sz[32:].any(), 0xFFFF_FFFF, st.trade_sz[:32])),
            ts_new.volume.eq(ts.volume + st.trade_sz),
            ts_new.notional.eq(ts.notional + st.trade_px * st.trade_sz),
            t_wr.addr.eq(st.slot), t_wr.data.eq(ts_new),
        ]

        # The continuation after a step: the second step, the U's lookup, or the end.
        def continue_after(m_):
            with m_.If(st2_valid):
                m.d.sync += state.eq(S_PREADD)
            with m_.Elif(then_u):
                m.d.comb += next_lookup.eq(1)
                m.d.sync += [state.eq(S_LOOKUP), phase.eq(1), then_u.eq(0)]
            with m_.Else():
                m.d.comb += [finishing.eq(1), end_msg.eq(1)]

        after_tuple = Signal(TUPLE)
        before_tuple = Signal(TUPLE)
        sm_tuple = tuple_of(sm.best)
        step_done = Signal()     # a level step completed this cycle (APPLY)
        done_sm = Signal(SLOT)
        defer = Signal()
        m.d.comb += defer.eq(then_u | (st2_valid & (st2.slot == st.slot) & (st2.side == st.side)))
        with m.If(applying):
            m.d.comb += [l_wr.addr.eq(Cat(st.idx, st.side, st.slot)), l_wr.data.eq(new_lvl),
                         l_wr.en.eq(st.level),
                         w_wr.addr.eq(Cat(st.idx[5:], st.side, st.slot)),
                         w_wr.data.eq(new_word), w_wr.en.eq(st.level),
                         t_wr.en.eq(st.trade)]
            count("trades", st.trade)
            count("book_level_overflow", st.level & lvl_over)
            count("book_walks", emptied)
            with m.If(st.level):
                m.d.comb += before_tuple.eq(Mux(pend & (pend_slot == st.slot), pend_before,
                                                sm_tuple))
                m.d.comb += flush.eq(pend & (pend_slot != st.slot))
                m.d.sync += [pend_slot.eq(st.slot), pend_before.eq(before_tuple)]
            m.d.comb += [s_wr.addr.eq(st.slot), s_wr.data.eq(sm_new), s_wr.en.eq(st.level),
                         step_done.eq(st.level), done_sm.eq(sm_new)]
            with m.If(need_walk):
                m.d.sync += [smr.eq(sm_new), walk_slot.eq(st.slot), walk_side.eq(st.side)]
        # What follows a step; in S_APLK the U's LOOKUP (above) decides it.
        with m.If(state == S_APPLY):
            m.d.sync += walk_pend.eq(need_walk & defer)
            with m.If(need_walk & ~defer):
                # The refresh runs now. Without a next step the message ends here, and its
                # event goes out in this cycle as always; the next op waits for the refresh.
                # When the best is in the step's own word, that word is this cycle's
                # ``new_word``: the refresh starts with it and skips a read.
                own = sm_new.best[st.side].idx[5:] == st.idx[5:] if wb else Const(1)
                m.d.sync += [state.eq(Mux(own, S_WALK2, S_WALK1)), walk_tail.eq(~st2_valid),
                             walk_own.eq(own), own_r.eq(new_word)]
                with m.If(~st2_valid):
                    m.d.comb += end_msg.eq(1)
            with m.Else():
                continue_after(m)

        # -- refresh: the first non-empty level behind the best (its word, or the summary →
        # another word; then the level's size) ------------------------------------------------
        rb = Signal(BEST)
        m.d.comb += rb.eq(smr.best[walk_side])
        r_word = rb.idx[5:] if wb else Const(0, 1)
        wsum = Signal(p.words)
        m.d.comb += wsum.eq(smr.summary[walk_side])
        behind_b = Signal(32)       # the best's word: the bits behind the best
        behind_w = Signal(p.words)  # the summary: the words behind the best's word
        own_w = Signal(32)
        m.d.comb += own_w.eq(Mux(walk_own, own_r, w_rd.data))
        for k in range(32):
            m.d.comb += behind_b[k].eq(own_w[k] & _ahead(walk_side, rb.idx[:5], k))
        for k in range(p.words):
            m.d.comb += behind_w[k].eq(wsum[k] & _ahead(walk_side, r_word, k))
        top_w = _first_one(m, behind_w, highest=True, name="top_w")
        low_w = _first_one(m, behind_w, highest=False, name="low_w")
        # One encoder pair serves both word searches: the best's word (masked to the levels
        # behind the best, S_WALK2) and another word, all of it behind the best (S_WALK3).
        seek_b = Signal(32)
        m.d.comb += seek_b.eq(Mux(state == S_WALK3, w_rd.data, behind_b))
        top_b = _first_one(m, seek_b, highest=True, name="top_b")
        low_b = _first_one(m, seek_b, highest=False, name="low_b")
        walk_w_r = Signal(max(1, wb))
        walk_idx_r = Signal(ib)
        slot_b = pick(base, walk_slot, 32)
        found = Signal(SLOT)        # ``smr`` with the side's next level known
        m.d.comb += [found.eq(smr), found.nxt_stale[walk_side].eq(0)]

        def refresh_done():
            m.d.comb += [s_wr.addr.eq(walk_slot), s_wr.data.eq(found), s_wr.en.eq(1)]
            with m.If(walk_tail):
                m.d.comb += finishing.eq(1)
                m.d.sync += walk_tail.eq(0)
            with m.Elif(walk_reread):
                m.d.sync += [state.eq(S_REREAD), walk_reread.eq(0)]
            with m.Else():
                continue_after(m)

        with m.If(state == S_WALK1):
            m.d.comb += [walk_rd.eq(1), walk_w.eq(r_word)]
            m.d.sync += [state.eq(S_WALK2), walk_own.eq(0)]
        with m.If(state == S_WALK2):
            with m.If(behind_b.any()):
                m.d.comb += [walk_idx.eq(Cat(Mux(walk_side, low_b, top_b)[:5], r_word[:wb])),
                             walk_level.eq(1)]
                m.d.sync += [walk_idx_r.eq(walk_idx), state.eq(S_WALK4)]
            with m.Elif(behind_w.any()):
                m.d.comb += [walk_rd.eq(1), walk_w.eq(Mux(walk_side, low_w, top_w))]
                m.d.sync += [walk_w_r.eq(walk_w), state.eq(S_WALK3)]
            with m.Else():          # nothing behind the best
                m.d.comb += found.nxt[walk_side].valid.eq(0)
                refresh_done()
        with m.If(state == S_WALK3):
            m.d.comb += [walk_idx.eq(Cat(Mux(walk_side, low_b, top_b)[:5], walk_w_r[:wb])),
                         walk_level.eq(1)]
            m.d.sync += [walk_idx_r.eq(walk_idx), state.eq(S_WALK4)]
        with m.If(state == S_WALK4):
            m.d.comb += [found.nxt[walk_side].valid.eq(1),
                         found.nxt[walk_side].idx.eq(walk_idx_r),
                         found.nxt[walk_side].px.eq(slot_b + walk_idx_r * p.tick),
                         found.nxt[walk_side].sz.eq(l_rd.data)]
            refresh_done()

        with m.If(step_done):
            m.d.comb += after_tuple.eq(tuple_of(done_sm.best))
            m.d.sync += [pend.eq(1), pend_after.eq(after_tuple)]

        # End of message: the pending slot's event, if its BBO changed over the run of steps.
        # A level step in APPLY computes the run's "before" this cycle (its register loads at
        # this edge). A step without a level (a trade, or the removal of an order held outside
        # the window, as a U whose new reference is such an order ends) leaves the run's
        # "before" in its register.
        fin_before = Signal(TUPLE)
        fin_after = Signal(TUPLE)
        m.d.comb += [
            fin_before.eq(Mux(pred_now, sm_tuple,
                              Mux(applying & st.level, before_tuple, pend_before))),
            fin_after.eq(Mux(pred_now, tuple_of(pred_sm.best),
                             Mux(step_done, after_tuple, pend_after))),
        ]
        m.d.comb += bbo_payload(final_ev, Mux(step_done | pred_now, st.slot, pend_slot),
                                fin_after, op.seq, op.time, pred_now & p_over)
        with m.If(end_msg & (step_done | pend | pred_now)):
            # A U whose event was predicted ends a cycle later, without a second event.
            m.d.comb += final.eq(~ev_sent & (fin_before.as_value() != fin_after.as_value()))
            m.d.sync += pend.eq(0)
        with m.If(end_msg & ev_sent):
            m.d.sync += ev_sent.eq(0)
        flush_fire = Signal()
        m.d.comb += flush_fire.eq(flush & (pend_before.as_value() != pend_after.as_value()))

        # At most two BBO events in one cycle (a flush and a final); the second waits. The
        # payload registers load every cycle, selected by ``hold`` and ``flush_fire`` only:
        # ``final`` (the end of APPLY's before/after compare, the engine's critical path)
        # drives the valid and ``hold`` flip-flops, not the enable of some 300 payload bits.
        # A payload without valid means nothing (every consumer qualifies it by valid), and
        # ``hold_ev`` is only read in the cycle after ``flush_fire & final`` loaded it. The
        # engine never raises an event in the cycle after a double (steps are two cycles
        # apart), so ``hold`` never coincides with another source (if it did, that event
        # would be lost, and tests/test_book_engine.py's event-for-event compare would fail).
        m.d.sync += [
            self.ev_bbo.valid.eq(hold | flush_fire | final),
            self.ev_bbo.payload.eq(Mux(hold, hold_ev, Mux(flush_fire, flush_ev, final_ev))),
            hold.eq(flush_fire & final),
            hold_ev.eq(final_ev),
        ]
        count("bbo_updates", flush_fire)
        count("bbo_updates", final)

        # -- trade events (one per step at most, steps two cycles apart) -------------------
        m.d.sync += self.ev_trade.valid.eq(0)
        with m.If(applying & st.trade):
            tb = self.ev_trade.payload.body.trade
            m.d.sync += [
                self.ev_trade.valid.eq(1),
                self.ev_trade.payload.kind.eq(EventKind.TRADE),
                self.ev_trade.payload.line.eq(0xFF),
                self.ev_trade.payload.aux.eq(st.slot),
                tb.itch_seq.eq(op.seq), tb.price.eq(ts_new.last_px),
                tb.shares.eq(ts_new.last_sz), tb.volume.eq(ts_new.volume),
                tb.notional.eq(ts_new.notional), tb.match.eq(op.match),
                tb.locate.eq(pick(locate, st.slot, 16)), tb.type.eq(op.type),
            ]

        # -- slot alerts (LOOKUP: capacity, window, ref range; APPLY: level overflow) -------
        alert_price = Signal(32)
        m.d.comb += [alert_reason.eq(a_alert), alert_slot.eq(a_slot),
                     alert_price.eq(op.price)]
        with m.If(applying & st.level & lvl_over):
            m.d.comb += [alert_reason.eq(AlertReason.LEVEL_OVERFLOW), alert_slot.eq(st.slot),
                         alert_price.eq(st.price)]
        alert_new = Signal()
        cur_stale = Signal(8)
        m.d.comb += cur_stale.eq(pick(stale, alert_slot, 8) | waiting(alert_slot))
        for r in AlertReason:
            with m.If(alert_reason == r):
                m.d.comb += [alert_new.eq(~cur_stale[r.value - 1]), al_bits[r.value - 1].eq(1)]
        # A subscribe or reset taken in the alert's cycle clears the slot after the alert.
        m.d.sync += [al_bits_r.eq(Mux(Cat(*stale_clear).bit_select(alert_slot, 1), 0, al_bits)),
                     al_slot_r.eq(alert_slot)]
        m.d.sync += self.ev_alert.valid.eq(0)
        with m.If((alert_reason != 0) & alert_new):
            ab = self.ev_alert.payload.body.book_alert
            m.d.sync += [
                self.ev_alert.valid.eq(1),
                self.ev_alert.payload.kind.eq(EventKind.BOOK_ALERT),
                self.ev_alert.payload.line.eq(0xFF),
                self.ev_alert.payload.aux.eq(alert_reason),
                ab.itch_seq.eq(op.seq), ab.slot.eq(alert_slot),
                ab.locate.eq(pick(locate, alert_slot, 16)),
                ab.order_ref.eq(Mux(state == S_APPLY, st.ref, lk_ref)),
                ab.price.eq(alert_price),
            ]

        # -- global alerts ------------------------------------------------------------------
        g_next = Signal(3)
        m.d.comb += g_next.eq(g_pend | g_new)
        m.d.sync += self.ev_global.valid.eq(0)
        with m.If(g_pend.any()):
            gb = self.ev_global.payload.body.book_alert
            m.d.sync += [self.ev_global.valid.eq(1),
                         self.ev_global.payload.kind.eq(EventKind.BOOK_ALERT),
                         self.ev_global.payload.line.eq(0xFF),
                         gb.slot.eq(ALL_SLOTS)]
            gp = _first_one(m, g_pend, highest=False, name="g_drain")
            for i, reason in enumerate(g_reasons):
                with m.If(gp == i):
                    m.d.sync += [self.ev_global.payload.aux.eq(reason),
                                 gb.itch_seq.eq(g_seq[i])]
            m.d.sync += g_pend.eq(g_next & ~Cat(*(gp == i for i in range(3))))
        with m.Else():
            m.d.sync += g_pend.eq(g_new)

        # -- stale registers ------------------------------------------------------------------
        for s in range(n):
            m.d.sync += stale[s].eq(Mux(stale_clear[s], 0,
                                        stale[s] | waiting(s) | stale_glob[s]))

        # -- clear (after subscribe / reset) -----------------------------------------------
        with m.If(state == S_CLEAR):
            m.d.sync += clear_i.eq(clear_i + 1)
            with m.If(clear_all):
                m.d.comb += [o_wr.addr.eq(clear_i), o_wr.data.eq(0),
                             o_wr.en.eq(clear_i < p.sets),
                             w_wr.addr.eq(clear_i), w_wr.data.eq(0),
                             w_wr.en.eq(clear_i < n * 2 * p.words),
                             s_wr.addr.eq(clear_i), s_wr.data.eq(0), s_wr.en.eq(clear_i < n)]
                # Trade statistics are the day's, not the book's: a reset keeps them.
                with m.If(clear_i == max(p.sets, n * 2 * p.words, n) - 1):
                    m.d.sync += state.eq(S_IDLE)
            with m.Else():
                m.d.comb += [w_wr.addr.eq(Cat(clear_i[:wb + 1], clear_slot)),
                             w_wr.data.eq(0), w_wr.en.eq(1),
                             s_wr.addr.eq(clear_slot), s_wr.data.eq(0), s_wr.en.eq(1),
                             t_wr.addr.eq(clear_slot), t_wr.data.eq(0), t_wr.en.eq(1)]
                with m.If(clear_i == 2 * p.words - 1):
                    m.d.sync += state.eq(S_IDLE)
            with m.If(pend):
                m.d.sync += pend.eq(0)

        # -- host view of slot sub_slot (registered reads) -----------------------------------
        vs = self.sub_slot[:sb]
        m.d.comb += [s_view.addr.eq(vs), t_view.addr.eq(vs)]
        vsm = Signal(SLOT)
        vts = Signal(TradeStats)
        m.d.comb += [vsm.eq(s_view.data), vts.eq(t_view.data)]
        vt = tuple_of(vsm.best)
        m.d.sync += [
            self.view_active.eq(pick(active, vs, 1)), self.view_known.eq(pick(known, vs, 1)),
            self.view_stale.eq(pick(stale, vs, 8) | waiting(vs)),
            self.view_locate.eq(pick(locate, vs, 16)),
            self.view_base.eq(pick(base, vs, 32)),
        ]
        m.d.comb += [
            self.view_bid_px.eq(vt.bid_px), self.view_bid_sz.eq(vt.bid_sz),
            self.view_ask_px.eq(vt.ask_px), self.view_ask_sz.eq(vt.ask_sz),
            self.view_last_px.eq(vts.last_px), self.view_last_sz.eq(vts.last_sz),
            self.view_volume.eq(vts.volume), self.view_notional.eq(vts.notional),
        ]

        # The increments leave through registers: in the core they cross to the CSR bank,
        # and ``bbo_updates`` (from the end of APPLY's before/after compare) was the whole
        # core's critical path with that crossing in it. A counter is one cycle later for it.
        for c, conds in inc_sets.items():
            if conds:
                m.d.sync += inc[c].eq(sum(conds))
        return m
