"""SoupBinTCP 3.0 + OUCH 4.2 parser of the exchange -> card order-entry byte stream.

The input is a TCP engine's received bytes as a 64-bit AXI4-Stream (``tkeep`` contiguous
from lane 0, idle cycles allowed, ``tlast`` meaningless). The output is one
:func:`~hw.oe.layouts.lookup_layout` item per ``E`` executed, ``C`` canceled or ``J``
rejected message carrying one of our tokens (:mod:`hw.oe.tokens`), for the open-order table;
every packet is counted by what it is. The rules are those of the reference model,
:mod:`sim.model.oe` (its docstring lists them); tests compare the two on every lookup, its
cycle, and every counter.

Why it is built this way:

* **One beat every cycle, no ``tready``.** Packets are as short as 3 bytes (``H``), so a
  beat may end one packet, hold two more whole ones and start a fourth: at most three
  packet starts per beat, of which at most two begin whole packets. (A zero length, which
  the protocol does not allow, is taken as 1 — counted bad — so that the 3-byte minimum
  holds for any input.)
* **The framing recurrence is one short step.** What carries from beat to beat is where
  the first packet of the next beat starts. Everything else a beat's walk needs is a
  function of the beat alone, so it is computed ahead, *for every lane the first packet
  could start in*: per lane, what a packet starting there would be (stage 1: its length,
  whether it ends inside the beat and where the next one starts); per candidate first
  lane, the chain of starts that follows and the state a packet running past the beat
  would leave (stage 2). The loop (stage 3) then only finds the first lane from its state
  — 4-bit compares — and selects one of eight precomputed outcomes. Only the packet that
  runs past the beat needs 16-bit arithmetic, and that goes into registers.
* **Whole packets inside a beat are counted from the beat's lanes.** They can never be a
  message the table needs: the shortest of those, a ``J``, is 2 + 1 + 24 = 27 bytes.
* **Long packets are captured positionally** (stage 4). Only one packet at a time can run
  past a beat boundary, so one capture buffer holds the bytes a lookup needs (types, token,
  shares: packet offsets from :mod:`proto.soupbintcp` and :mod:`proto.ouch`). The beat is
  rotated by the packet's start lane once, after which buffer byte *j* takes rotated lane
  ``j % 8``, as in ``hw/ingress/parser.py``. In the beat where that packet ends, it is read
  through a live view (the buffer with this beat's bytes patched in), because a packet
  starting later in the same beat writes the buffer at the same edge.
* **At most one lookup per beat, so no queue.** Two 27-byte packets cannot end in one
  8-byte beat; indeed their ends are at least three beats apart. Stage 5 classifies the
  ended packet and decodes its token; the lookup leaves :data:`LATENCY` cycles after the
  beat holding the packet's last byte. Every stage starts from registers; ``rx`` is used
  only by stage 1, a few LUT levels, so it should come from flip-flops (a TCP engine's
  output register).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.lib.select import any_of, one_hot_or
from hw.oe.layouts import (
    DATA_BYTES,
    AxisByteSignature,
    LookupKind,
    lookup_signature,
)
from hw.oe.tokens import NUMBER_BITS, TOKEN_LENGTH, token_fields
from hw.risk.params import DEFAULT_RISK, RiskParams
from proto import ouch
from proto import soupbintcp as soup

#: Counters, one ``inc_<name>`` port each (``Out(2)``: up to three packets end in a beat).
#: The names are the model's (:data:`sim.model.oe.PARSER_COUNTERS`).
COUNTERS: tuple[str, ...] = (
    *(f"soup_{soup.PACKETS[t].name}" for t in sorted(soup.SERVER_TYPES)),
    "soup_unknown", "soup_bad_length",
    *(f"ouch_{m.name}" for _, m in sorted(ouch.OUTBOUND.items())),
    "ouch_unknown", "ouch_bad_length", "bad_token",
)
#: Cycles from the beat holding a packet's last byte to its lookup on ``lookups``.
LATENCY = 5

_TYPE_AT = soup.HEADER["packet_type"].offset                     # 2
_BODY = soup.HEADER_LENGTH                                       # 3: OUCH offset 0
_OUCH_TYPE_AT = _BODY + ouch.EXECUTED["message_type"].offset     # 3
#: (LookupKind, layout, shares field or None) of the messages that become lookups.
_LOOKUPS = (
    (LookupKind.EXECUTED, ouch.EXECUTED, "executed_shares"),
    (LookupKind.CANCELED, ouch.CANCELED, "decrement_shares"),
    (LookupKind.REJECTED, ouch.REJECTED, None),
)
_TOKEN_AT = _BODY + ouch.EXECUTED["order_token"].offset
assert all(_BODY + lay["order_token"].offset == _TOKEN_AT for _, lay, _ in _LOOKUPS)
#: Packet offsets the capture buffer keeps.
_NEEDED = sorted({_TYPE_AT, _OUCH_TYPE_AT, *range(_TOKEN_AT, _TOKEN_AT + TOKEN_LENGTH),
                  *(i for _, lay, f in _LOOKUPS if f is not None
                    for i in range(_BODY + lay[f].offset, _BODY + lay[f].end))})
#: Positions at or past this one capture nothing: ``pos`` saturates there.
_POS_SAT = _NEEDED[-1] + 1
_MIN_PACKET = soup.LENGTH_SIZE + 1                               # 3 bytes on the stream
#: Packet starts a beat can hold; all but the last may be whole packets.
_STARTS = -(-DATA_BYTES // _MIN_PACKET)
_FIXED = {t: n for t, n in soup.PACKET_LENGTH.items() if t in soup.SERVER_TYPES}
# Lookups come only from the carried-over packet (one per beat at most): a message the table
# needs never fits inside one beat.
assert min(lay.length for _, lay, _ in _LOOKUPS) + _BODY > DATA_BYTES


def _classify(m: Module, name: str, valid, length, ptype, otype) -> dict:
    """Counter strobes for one ended packet (the model's rules), plus ``good_<code>`` for
    well-formed OUCH messages of each outbound type.

    ``length`` is the packet length field, ``ptype`` the SoupBinTCP type byte, ``otype`` the
    first payload byte (read only when the length says it is there)."""
    out: dict = {}

    def strobe(key, cond):
        sig = Signal(name=f"{name}_{key}")
        m.d.comb += sig.eq(cond)
        out[key] = sig
        return sig

    framed = Signal(name=f"{name}_framed")
    m.d.comb += framed.eq(valid & (length != 0))
    server = []
    bad_len = [valid & (length == 0)]
    for t in sorted(soup.SERVER_TYPES):
        is_t = framed & (ptype == ord(t))
        server.append(is_t)
        ok = is_t & (length == _FIXED[t]) if t in _FIXED else is_t
        if t in _FIXED:
            bad_len.append(is_t & (length != _FIXED[t]))
        strobe(f"soup_{soup.PACKETS[t].name}", ok)
    strobe("soup_unknown", framed & ~Cat(*server).any())
    strobe("soup_bad_length", Cat(*bad_len).any())

    seq = out["soup_sequenced_data"]
    empty = length == 1
    known = []
    ouch_bad = [seq & empty]
    for code, lay in sorted(ouch.OUTBOUND.items()):
        hit = seq & ~empty & (otype == ord(code))
        known.append(hit)
        right = length == 1 + lay.length
        good = strobe(f"ouch_{lay.name}", hit & right)
        out[f"good_{code}"] = good
        ouch_bad.append(hit & ~right)
    strobe("ouch_unknown", seq & ~empty & ~Cat(*known).any())
    strobe("ouch_bad_length", Cat(*ouch_bad).any())
    return out


class OuchParser(wiring.Component):
    """``rx`` (the TCP stream) in, ``lookups`` out; never stalls.

    ``restart``: the connection restarted; the byte stream starts a packet with this
    cycle's beat (a partial packet is dropped, uncounted). ``inc_<counter>``: counter
    increments (:data:`COUNTERS`)."""

    def __init__(self, params: RiskParams = DEFAULT_RISK):
        if params.token_bits > NUMBER_BITS:
            raise ValueError(f"our tokens carry {NUMBER_BITS}-bit numbers (12 hex digits); "
                             f"token_bits is {params.token_bits}")
        self.p = params
        members = {
            "rx": In(AxisByteSignature()),
            "restart": In(1),
            "lookups": Out(lookup_signature(params)),
        }
        members |= {f"inc_{c}": Out(2) for c in COUNTERS}
        super().__init__(members)

    def elaborate(self, platform):  # noqa: PLR0915 - five stages, in the docstring's order
        m = Module()
        rx = self.rx
        N = DATA_BYTES
        lanes_in = [rx.tdata[8 * i:8 * i + 8] for i in range(N)]

        def onehot_mux(sel, values, width: int, name: str) -> Signal:
            """``values[i]`` where bit ``i`` of ``sel`` is set (at most one; 0 if none)."""
            out = Signal(width, name=name)
            m.d.comb += out.eq(one_hot_or(sel, values))
            return out

        def reg(value, width: int, name: str) -> Signal:
            out = Signal(width, name=name)
            m.d.sync += out.eq(value)
            return out

        # -- stage 1: per-lane facts of the beat, registered --------------------------------
        # Valid bytes: leading ones of tkeep (contiguous by contract; anything after a hole
        # is ignored).
        n_in = Signal(range(N + 1))
        m.d.comb += n_in.eq(sum(rx.tkeep[:i + 1].all() for i in range(N)))
        b1 = reg(rx.tvalid & (n_in != 0), 1, "beat1")
        n1 = reg(n_in, 4, "n1")
        d1 = reg(rx.tdata, 8 * N, "data1")
        rs1 = reg(self.restart, 1, "restart1")
        lo_here, short, nxt, length, span_rem, span_pos = [], [], [], [], [], []
        span_near, span_r4 = [], []
        for i in range(N):
            hi = lanes_in[i]
            lo = lanes_in[i + 1] if i + 1 < N else Const(0, 8)
            lh = n_in > i + 1
            ln = Cat(lo, hi)
            small = (hi == 0) & (lo <= N - soup.LENGTH_SIZE)     # 2 + max(len, 1) <= 8
            after = Signal(4, name=f"after{i}")                    # lane after it, if small
            m.d.comb += after.eq(i + soup.LENGTH_SIZE + Mux(lo == 0, 1, lo[:3]))
            rm = Signal(17, name=f"rem_in{i}")                     # its bytes after this beat
            m.d.comb += rm.eq(i + soup.LENGTH_SIZE + Mux(ln == 0, 1, ln) - n_in)
            sh = lh & small & (after <= n_in)
            lo_here.append(reg(lh, 1, f"lo_here{i}"))
            short.append(reg(sh, 1, f"short{i}"))
            # One-hot of the next start, present only if it is a start inside this beat.
            nxt.append(reg(Cat(*((after == j) & (n_in > j) & sh for j in range(N))), N,
                           f"next{i}"))
            length.append(reg(ln, 16, f"len{i}"))
            span_rem.append(reg(rm, 17, f"span_rem{i}"))
            span_near.append(reg(rm < 16, 1, f"span_near{i}"))
            span_r4.append(reg(rm[:4], 4, f"span_r4_{i}"))
            span_pos.append(reg(Mux(lh, n_in - i, 1), 4, f"span_pos{i}"))
        # The carried packet's length may end in lane 0 (only its high byte came before).
        l0 = lanes_in[0]
        l0_small = reg(l0 < 15, 1, "l0_small")                      # max(L, 1) + 1 < 16
        l0_r4 = reg(Mux(l0 == 0, 1, l0[:4]) + 1, 4, "l0_r4")
        l0_zero = reg(l0 == 0, 1, "l0_zero")
        l0_adj = reg(l0 + 1 - n_in, signed(10), "l0_adj")          # L + 1 - n = hi*256 + this
        two_n = reg(2 - n_in, signed(3), "two_minus_n")
        short_v = Cat(*short)
        lo_v = Cat(*lo_here)

        # -- stage 2: the walk of the beat for every lane its first packet could start in ---
        # Per candidate first lane: the whole packets that follow, the lane of the one that
        # runs past the beat (if any) and whether its length is complete in this beat.
        CAND = data.StructLayout({"shorts": N, "spans": N, "span": 1, "span_lo": 1})
        b2 = reg(b1, 1, "beat2")
        n2 = reg(n1, 4, "n2")
        d2 = reg(d1, 8 * N, "data2")
        rs2 = reg(rs1, 1, "restart2")
        l0_small2 = reg(l0_small, 1, "l0_small2")
        l0_r4_2 = reg(l0_r4, 4, "l0_r4_2")
        l0_zero2 = reg(l0_zero, 1, "l0_zero2")
        l0_adj2 = reg(l0_adj, signed(10), "l0_adj2")
        two_n2 = reg(two_n, signed(3), "two_minus_n2")
        # Per lane, what a packet running past the beat from there leaves for the next one.
        LANE = data.StructLayout({"pos": 4, "rem": 17, "near": 1, "r4": 4, "plen": 16})
        lane_state = []
        for i in range(N):
            ls = Signal(LANE, name=f"lane_state{i}")
            m.d.sync += [ls.pos.eq(span_pos[i]), ls.rem.eq(span_rem[i]),
                         ls.near.eq(span_near[i]), ls.r4.eq(span_r4[i]), ls.plen.eq(length[i])]
            lane_state.append(ls)
        cands = []
        for c in range(N):
            starts = [Const(1 << c, N) & Mux(n1 > c, (1 << N) - 1, 0)]
            for _ in range(1, _STARTS):
                prev = starts[-1]
                starts.append(one_hot_or(prev & short_v, nxt))
            st = Signal(N, name=f"starts_c{c}")
            m.d.comb += st.eq(any_of(starts))
            spans = Signal(N, name=f"spans_c{c}")
            m.d.comb += spans.eq(st & ~short_v)
            cand = Signal(CAND, name=f"cand{c}")
            m.d.sync += [cand.shorts.eq(st & short_v), cand.spans.eq(spans),
                         cand.span.eq(spans.any()), cand.span_lo.eq((spans & lo_v).any())]
            cands.append(cand)

        # -- stage 3: the framing loop ---------------------------------------------------------
        # The state after the last beat: cont (a packet carries over), is1 (only its
        # length's high byte came, in len_hi), else pos (bytes of it seen, saturating at
        # _POS_SAT), rem (bytes still to come), near (rem < 16), r4 (rem's low bits), plen.
        cont_r = Signal()
        is1_r = Signal()
        pos = Signal(range(_POS_SAT + 1))
        rem = Signal(17)
        near_r = Signal()
        r4_r = Signal(4)
        plen = Signal(16)
        len_hi = Signal(8)
        len_hi_zero = Signal()
        cont = Signal()
        is1 = Signal()
        m.d.comb += [cont.eq(cont_r & ~rs2), is1.eq(is1_r & ~rs2)]
        near = Signal()
        r4 = Signal(4)
        m.d.comb += [near.eq(Mux(is1, len_hi_zero & l0_small2, near_r)),
                     r4.eq(Mux(is1, l0_r4_2, r4_r))]
        end_cont = Signal()             # the carried packet ends in this beat
        m.d.comb += end_cont.eq(b2 & cont & near & (r4 <= n2))
        first = Signal(N)               # lane of the beat's first packet start, one-hot
        m.d.comb += first.eq(Mux(b2, Mux(cont, Mux(near & (r4 < n2), Const(1, N) << r4[:3], 0),
                                         1), 0))
        sel = Signal(CAND)
        m.d.comb += sel.eq(one_hot_or(first, [c.as_value() for c in cands]))
        # The lane of the packet running past this beat (one-hot), and the state it leaves.
        span_at = Signal(N)
        m.d.comb += span_at.eq(one_hot_or(first, [c.spans for c in cands]))
        nxt_state = Signal(LANE)
        m.d.comb += nxt_state.eq(one_hot_or(span_at, [ls.as_value() for ls in lane_state]))
        span_hi = Signal(8)             # a span with only its high length byte: the last lane
        m.d.comb += span_hi.eq(d2.word_select((n2 - 1)[:3], 8))
        len_cont = Signal(16)           # the carried packet's length field
        m.d.comb += len_cont.eq(Mux(is1, Cat(d2[:8], len_hi), plen))
        rem_next = Signal(17)           # ... and its bytes after this beat, if it goes on
        m.d.comb += rem_next.eq(Mux(is1, Mux(len_hi_zero & l0_zero2, two_n2,
                                             Cat(Const(0, 8), len_hi) + l0_adj2), rem - n2))
        pos_e = Signal.like(pos)
        m.d.comb += pos_e.eq(Mux(cont, Mux(is1, 1, pos), 0))
        with m.If(rs2):
            m.d.sync += [cont_r.eq(0), is1_r.eq(0)]
        with m.If(b2):
            with m.If(sel.span):
                m.d.sync += [cont_r.eq(1), is1_r.eq(~sel.span_lo), pos.eq(nxt_state.pos),
                             rem.eq(nxt_state.rem), near_r.eq(nxt_state.near),
                             r4_r.eq(nxt_state.r4), plen.eq(nxt_state.plen),
                             len_hi.eq(span_hi), len_hi_zero.eq(span_hi == 0)]
            with m.Elif(~cont | end_cont):
                m.d.sync += [cont_r.eq(0), is1_r.eq(0)]
            with m.Else():
                m.d.sync += [is1_r.eq(0),
                             pos.eq(Mux(pos_e + n2 >= _POS_SAT, _POS_SAT, pos_e + n2)),
                             rem.eq(rem_next), near_r.eq(rem_next < 16), r4_r.eq(rem_next[:4]),
                             plen.eq(len_cont)]
        # What stage 4 needs of this beat.
        b3 = reg(b2, 1, "beat3")
        n3 = reg(n2, 4, "n3")
        d3 = reg(d2, 8 * N, "data3")
        pos3 = reg(pos_e, len(pos), "pos3")
        end3 = reg(end_cont, 1, "end3")
        len3 = reg(len_cont, 16, "len3")
        spans3 = reg(Mux(b2, span_at, 0), N, "spans3")
        shorts3 = reg(Mux(b2, sel.shorts, 0), N, "shorts3")

        # -- stage 4: capture buffer and the counts of whole packets -----------------------
        # Rotated beats: rot_cont for the carried packet (by its position), rot_new for a
        # packet starting in this beat (one-hot over its start lane).
        lane = [d3[8 * i:8 * i + 8] for i in range(N)]
        rot_cont = [Signal(8, name=f"rot_cont{x}") for x in range(N)]
        for x in range(N):
            m.d.comb += rot_cont[x].eq(d3.word_select((x - pos3[:3])[:3], 8))
        rot_new = [onehot_mux(spans3, [lane[(x + i) % N] for i in range(N)], 8, f"rot_new{x}")
                   for x in range(N)]
        cap = {j: Signal(8, name=f"cap{j}") for j in _NEEDED}
        live = {j: Signal(8, name=f"live{j}") for j in _NEEDED}
        for j in _NEEDED:
            en_cont = Signal(name=f"en_cont{j}")
            en_new = Signal(name=f"en_new{j}")
            m.d.comb += [
                en_cont.eq(b3 & (pos3 != 0) & (pos3 <= j) & (j < pos3 + n3)),
                en_new.eq(any_of(spans3[i] & (n3 > j + i) for i in range(N))),
                live[j].eq(Mux(en_cont, rot_cont[j % N], cap[j])),
            ]
            with m.If(en_new):
                m.d.sync += cap[j].eq(rot_new[j % N])
            with m.Elif(en_cont):
                m.d.sync += cap[j].eq(rot_cont[j % N])
        fin = reg(end3, 1, "fin")
        fin_len = Signal(16)
        fin_b = {j: Signal(8, name=f"fin{j}") for j in _NEEDED}
        with m.If(end3):
            m.d.sync += [fin_len.eq(len3), *(fin_b[j].eq(live[j]) for j in _NEEDED)]
        strobes = []
        for i in range(N - _MIN_PACKET + 1):      # lanes a whole packet can start in
            ot = lane[i + _OUCH_TYPE_AT] if i + _OUCH_TYPE_AT < N else Const(0, 8)
            ln = Cat(lane[i + 1], lane[i])
            strobes.append(_classify(m, f"short{i}", shorts3[i], ln, lane[i + _TYPE_AT], ot))

        # -- stage 5: classify the ended packet, decode the token, hand over the lookup ----
        cls = _classify(m, "long", fin, fin_len, fin_b[_TYPE_AT], fin_b[_OUCH_TYPE_AT])
        tok_ok, tok_source, tok_number = token_fields(
            m, [fin_b[_TOKEN_AT + i] for i in range(TOKEN_LENGTH)], self.p.token_bits)
        want = Signal()
        kind = Signal(2)
        shares = Signal(len(self.lookups.payload.shares))
        for lk, lay, field in _LOOKUPS:
            with m.If(cls[f"good_{lay.type_code}"]):
                m.d.comb += [want.eq(1), kind.eq(lk)]
                if field is not None:
                    f = lay[field]
                    m.d.comb += shares.eq(Cat(*(fin_b[_BODY + i]
                                                for i in reversed(range(f.offset, f.end)))))
        bad_token = Signal()
        m.d.comb += bad_token.eq(want & ~tok_ok)
        out = self.lookups.payload
        m.d.sync += [self.lookups.valid.eq(want & tok_ok), out.kind.eq(kind),
                     out.source.eq(tok_source), out.token.eq(tok_number), out.shares.eq(shares)]

        # -- counters: whole packets of stage 4, the long packet of stage 5 -------------------
        strobes += [cls, {"bad_token": bad_token}]
        for c in COUNTERS:
            port = getattr(self, f"inc_{c}")
            terms = [st[c] for st in strobes if c in st]
            m.d.sync += port.eq(sum(terms) if terms else Const(0))
        return m
