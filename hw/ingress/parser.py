"""One network line: Ethernet/802.1Q/IPv4/UDP/MoldUDP64 parsing into sequencer entries.

The contract is docs/ingress.md (sections 1–3). The parser accepts one 64-bit beat every cycle,
forever — a MAC cannot be stalled — and hands the sequencer, through a small FIFO, one entry per
beat at most: a packet header, a whole message (cut-through: in the beat of its last byte), and
the frame's end marker.

How the datapath stays cheap at 8 bytes a cycle:

* Header fields sit at offsets that depend on the 802.1Q tag and on the IPv4 header length, but
  every field has a fixed offset from ``l3`` or ``l4``. Fields before ``l3`` are captured at
  fixed lanes; the others through :meth:`_capture_at`, a comparator on the beat index and a lane
  mux per byte.
* Messages land at any byte alignment. Instead of a 64:1 mux per buffer byte, the beat is
  rotated once by the message's start lane; buffer byte *j* then always takes rotated lane
  ``j % 8`` and only its write enable depends on the position (a beat-difference decode).
* At most one message completes per beat because the shortest accepted message is 12 bytes, so
  the FIFO needs one write port.

Faults found after the header (``MAC_ERROR``, ``TRUNCATED``, framing faults, ...) stop the frame
at once: nothing more of it is handed over, entries of it still waiting in the FIFO are squashed
(``squash[tag]``), and the end marker tells the sequencer to invalidate what already left.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.ingress.layouts import (
    DATA_BYTES,
    REASON_BITS,
    TAG_BITS,
    AxisRxSignature,
    Entry,
    EntryStream,
    FilterEntry,
    FrameReport,
)
from hw.ingress.reasons import MAX_FRAME, MAX_MESSAGE, MIN_MESSAGE, DropReason
from hw.lib.fifo import HeadRegisterFIFO
from proto import moldudp64, net

R = DropReason
MAX_BEATS = MAX_FRAME // DATA_BYTES  # beat index at which a frame becomes OVERSIZE
POS_BITS = 17                        # positions up to l3 + 65535 (IPv4 total length)


class LineParser(wiring.Component):
    """Parses one line's frames into :data:`~hw.ingress.layouts.Entry` items.

    Ports: ``rx`` (the MAC's stream), ``filters`` (destination table from CSRs), ``entries``
    (the FIFO's read side, for the sequencer), ``squash`` (a bit per frame tag: items of that
    frame still in the FIFO must be dropped), ``report`` (end-of-frame summary two cycles after
    ``tlast``, for counters and drop events), ``frames_seen`` (frames whose ``tlast`` beat is
    over), ``level`` (FIFO occupancy, for the high-water mark).
    """

    def __init__(self, *, n_filters: int = 8, fifo_depth: int = 16):
        if not 4 <= fifo_depth <= (1 << TAG_BITS) // 2:
            raise ValueError(f"fifo_depth must be 4..{(1 << TAG_BITS) // 2}: every frame in the "
                             f"FIFO needs its own tag")
        if n_filters < 1:
            raise ValueError("need at least one filter entry")
        self.n_filters = n_filters
        self.fifo_depth = fifo_depth
        super().__init__({
            "rx": In(AxisRxSignature()),
            "filters": In(data.ArrayLayout(FilterEntry, n_filters)),
            "entries": Out(EntryStream),
            "squash": Out(1 << TAG_BITS),
            "head_squashed": Out(1),
            "report": Out(FrameReport),
            "frames_seen": Out(32),
            "level": Out(range(fifo_depth + 1)),
        })

    # -- helpers --------------------------------------------------------------------------
    def _lane(self, lane):
        """Byte ``lane`` (constant or signal) of the current beat."""
        if isinstance(lane, int):
            return self.rx.tdata[8 * lane:8 * lane + 8]
        return self.rx.tdata.word_select(lane, 8)

    def _capture_fixed(self, m, beat, pos: int) -> Signal:
        reg = Signal(8, name=f"cap{pos}")
        with m.If(self.rx.tvalid & (beat == pos // DATA_BYTES)):
            m.d.sync += reg.eq(self._lane(pos % DATA_BYTES))
        return reg

    def _capture_at(self, m, beat, base, offset: int, name: str):
        """Capture the byte at ``base + offset`` (``base`` a position signal).

        Returns ``(registered, live)``: ``live`` already shows the byte in the beat that
        carries it, for decisions made in that very beat. The position is registered: ``base``
        (a registered position itself) settles early enough that ``base + offset`` is ready
        by the beat that carries the byte (shown by the tests with and without a VLAN tag)."""
        pos = Signal(POS_BITS, name=f"{name}_pos")
        m.d.sync += pos.eq(base + offset)
        here = Signal(name=f"{name}_here")
        m.d.comb += here.eq(self.rx.tvalid & (beat == pos[3:]))
        reg = Signal(8, name=name)
        live = Signal(8, name=f"{name}_live")
        byte = self._lane(pos[:3])
        with m.If(here):
            m.d.sync += reg.eq(byte)
        m.d.comb += live.eq(Mux(here, byte, reg))
        return reg, live

    @staticmethod
    def _be(byte_sigs) -> object:
        """Big-endian value of a list of byte signals (first = most significant)."""
        return Cat(*reversed(byte_sigs))

    # -- elaboration ----------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        rx = self.rx
        valid = rx.tvalid

        # The sequencer reads the head from a register (timing), with no added latency.
        m.submodules.fifo = fifo = HeadRegisterFIFO(width=Entry.size, depth=self.fifo_depth)
        m.d.comb += [
            self.entries.valid.eq(fifo.r_rdy),
            self.entries.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.entries.ready),
            self.level.eq(fifo.level),
        ]
        push = data.View(Entry, Signal(Entry.size))
        push_en = Signal()
        m.d.comb += [fifo.w_data.eq(push.as_value()), fifo.w_en.eq(push_en)]
        room_item = Signal()  # room for an item and, later, its frame's end marker
        m.d.comb += room_item.eq(fifo.level <= self.fifo_depth - 2)

        # -- beat position ------------------------------------------------------------------
        beat = Signal(range(MAX_BEATS + 1))   # index of the current beat within its frame
        with m.If(valid):
            with m.If(rx.tlast):
                m.d.sync += beat.eq(0)
            with m.Elif(beat != MAX_BEATS):
                m.d.sync += beat.eq(beat + 1)
        pos0 = Signal(POS_BITS)
        m.d.comb += pos0.eq(beat << 3)
        nkeep = Signal(4)
        m.d.comb += nkeep.eq(sum(rx.tkeep[i] for i in range(DATA_BYTES)))
        frame_len = Signal(POS_BITS)  # valid on the tlast beat
        m.d.comb += frame_len.eq(pos0 + nkeep)
        last = Signal()
        m.d.comb += last.eq(valid & rx.tlast)

        # -- layer 2 and 3 header captures (fixed lanes per tag case) ---------------------------
        caps = {}

        def cap(pos):
            if pos not in caps:
                caps[pos] = self._capture_fixed(m, beat, pos)
            return caps[pos]

        eth = net.ETH["ethertype"].offset
        vlan = Signal()
        m.d.comb += vlan.eq(self._be([cap(eth), cap(eth + 1)]) == net.ETHERTYPE_VLAN)
        inner = eth + net.VLAN_TAG.length
        ethertype = Signal(16)
        m.d.comb += ethertype.eq(Mux(vlan, self._be([cap(inner), cap(inner + 1)]),
                                     self._be([cap(eth), cap(eth + 1)])))
        l3_plain = net.ETH.length
        l3_tag = l3_plain + net.VLAN_TAG.length

        def ip_field(name):
            f = net.IPV4[name]
            plain = self._be([cap(l3_plain + f.offset + i) for i in range(f.size)])
            tagged = self._be([cap(l3_tag + f.offset + i) for i in range(f.size)])
            sig = Signal(8 * f.size, name=f"ip_{name}")
            m.d.comb += sig.eq(Mux(vlan, tagged, plain))
            return sig

        ver_ihl = ip_field("version_ihl")
        total_len = ip_field("total_length")
        flags_frag = ip_field("flags_fragment")
        protocol = ip_field("protocol")
        dst_ip = ip_field("dst")
        ihl = Signal(4)
        m.d.comb += ihl.eq(ver_ihl[:4])
        # Positions derived from captured fields are registered: they settle a cycle after
        # the field is captured, long before they are used (UDP fields start at beat 4, the
        # IPv4 options' checksum words at byte 34), and the parser's logic then starts from
        # flip-flops instead of from a chain of muxes and adders on the captures.
        # Reset values are those of an untagged frame without IPv4 options, so that nothing
        # registered after reset points into the first beats of the first frame.
        l3 = Signal(5, init=l3_plain)
        m.d.sync += l3.eq(Mux(vlan, l3_tag, l3_plain))
        hdr_bytes = Signal(7)   # IPv4 header length in bytes, at least 20 for positions
        m.d.comb += hdr_bytes.eq(Mux(ihl < 5, 20, ihl << 2))
        l4_min = l3_plain + net.IPV4.length
        l4 = Signal(7, init=l4_min)
        m.d.sync += l4.eq(Mux(vlan, l3_tag, l3_plain) + hdr_bytes)
        ip_end = Signal(POS_BITS)
        m.d.sync += ip_end.eq(Mux(vlan, l3_tag, l3_plain) + total_len)

        # -- IPv4 header checksum: ones' complement sum of the header words ------------------
        # l3 is even, so header words sit on even lanes. The tag decision for beat 1 is taken
        # from the beat itself (bytes 12-13 are in it), later beats use the capture.
        vlan_now = Signal()
        m.d.comb += vlan_now.eq(Mux(beat == eth // DATA_BYTES,
                                    self._be([self._lane(eth % 8), self._lane(eth % 8 + 1)])
                                    == net.ETHERTYPE_VLAN, vlan))
        l3_now = Signal(5)
        m.d.comb += l3_now.eq(Mux(vlan_now, l3_tag, l3_plain))
        csum = Signal(21)
        words = []
        for j in range(DATA_BYTES // 2):
            wpos = Signal(POS_BITS, name=f"csum_pos{j}")
            m.d.comb += wpos.eq(pos0 + 2 * j)
            inc = Signal(name=f"csum_in{j}")
            # The first 20 header bytes always count; option words only once ihl is known
            # (ihl is captured by beat 2, options start at byte 34 at the earliest: beat 4).
            m.d.comb += inc.eq((wpos >= l3_now) & ((wpos < l3_now + 20) | (wpos < l4)))
            words.append(Mux(inc, self._be([self._lane(2 * j), self._lane(2 * j + 1)]), 0))
        with m.If(valid):
            with m.If(beat == 0):
                m.d.sync += csum.eq(0)
            with m.Else():
                m.d.sync += csum.eq(csum + sum(words))
        fold1 = Signal(17)
        m.d.comb += fold1.eq(csum[:16] + csum[16:])
        fold2 = Signal(16)
        m.d.comb += fold2.eq(fold1[:16] + fold1[16])

        # -- UDP and MoldUDP64 captures, relative to l4 ---------------------------------------
        def l4_field(layout_field, base_off, name, *, raw=False):
            """Big-endian value (or, ``raw``, the bytes with byte 0 in bits 7:0)."""
            regs, lives = [], []
            for i in range(layout_field.size):
                r_, l_ = self._capture_at(m, beat, l4, base_off + layout_field.offset + i,
                                          f"{name}{i}")
                regs.append(r_)
                lives.append(l_)
            if raw:
                return Cat(*regs), Cat(*lives)
            return self._be(regs), self._be(lives)

        dst_port, _ = l4_field(net.UDP["dst_port"], 0, "udp_dport")
        udp_len, _ = l4_field(net.UDP["length"], 0, "udp_len")
        mold = moldudp64.HEADER
        _, session_live = l4_field(mold["session"], net.UDP.length, "m_sess", raw=True)
        _, seq_live = l4_field(mold["sequence"], net.UDP.length, "m_seq")
        count_reg, count_live = l4_field(mold["count"], net.UDP.length, "m_count")
        mold_len = net.UDP.length + moldudp64.HEADER_LENGTH
        h_end = Signal(POS_BITS, init=l4_min + mold_len)  # H: first byte after Mold header
        # Beat of H - 1: at least 7 for any frame, so a stale value never matches beat 0..6.
        h_beat = Signal(POS_BITS - 3, init=(l4_min + mold_len - 1) >> 3)
        udp_end = Signal(POS_BITS)
        udp_last = Signal(POS_BITS)
        fit_h = Signal(POS_BITS)    # longest first message that fits: udp_end - 2 - H
        h_keep = Signal(4, init=(l4_min + mold_len) - 8 * ((l4_min + mold_len - 1) >> 3))
        m.d.sync += [
            h_end.eq(l4 + mold_len), h_beat.eq((l4 + mold_len - 1) >> 3),
            # Bytes of the header in its last beat (1..8): a runt test in that beat is then a
            # 4-bit compare with tkeep's count instead of an adder and a 17-bit compare.
            h_keep.eq(l4 + mold_len - ((l4 + mold_len - 1) >> 3 << 3)),
            udp_end.eq(l4 + udp_len), udp_last.eq(l4 + udp_len - 1),
            fit_h.eq(udp_len - mold_len - 2),
        ]

        # -- header checks (docs/ingress.md section 1), from captured fields -----------------
        match = Signal()
        m.d.comb += match.eq(Cat(
            f.enable & (f.ip == dst_ip) & (f.port == dst_port) for f in self.filters).any())

        def count_fail_of(cnt, bare=None):
            special = (cnt == moldudp64.HEARTBEAT_COUNT) | (cnt == moldudp64.END_OF_SESSION_COUNT)
            if bare is None:
                bare = udp_len == net.UDP.length + moldudp64.HEADER_LENGTH
            return Mux(special, ~bare, bare)

        checks = [  # (reason, frame length needed, fails)
            (R.ETHERTYPE, Mux(vlan, l3_tag, l3_plain), ethertype != net.ETHERTYPE_IPV4),
            (R.IPV4_HEADER, l3 + 1, (ver_ihl[4:] != 4) | (ihl < 5)),
            (R.IPV4_CHECKSUM, l4, fold2 != 0xFFFF),
            (R.IPV4_LENGTH, l4, total_len < (ihl << 2) + net.UDP.length),
            (R.FRAGMENT, l4, (flags_frag & (net.IPV4_MF | net.IPV4_OFFSET_MASK)) != 0),
            (R.IP_PROTOCOL, l4, protocol != net.IPPROTO_UDP),
            (R.UDP_LENGTH, l4 + 8, udp_len != total_len - (ihl << 2)),
            (R.FILTERED, l4 + 8, ~match),
            (R.MOLD_HEADER, l4 + 8, udp_len < net.UDP.length + moldudp64.HEADER_LENGTH),
        ]
        # Each check's result and the frame length it needs, registered (one cycle behind
        # the captures: settled by H - 1, and by the report two cycles after tlast).
        checks_r = []
        need_init = {R.ETHERTYPE: l3_plain, R.IPV4_HEADER: l3_plain + 1}
        for reason, need, fails in checks:
            need_r = Signal(POS_BITS, name=f"need_{reason.name.lower()}",
                            init=need_init.get(reason, l4_min + 8))
            fail_r = Signal(name=f"fail_{reason.name.lower()}")
            m.d.sync += [need_r.eq(need), fail_r.eq(fails)]
            checks_r.append((reason, need_r, fail_r))
        # All checks but the count one read fields that settle at least two beats before H - 1,
        # so their verdict can be registered once more: the header beat then only adds the
        # count check on the live bytes.
        header_fail = Signal()
        m.d.sync += header_fail.eq(Cat(f for _, _, f in checks_r).any())
        count_fail_r = Signal()
        m.d.sync += count_fail_r.eq(count_fail_of(count_reg))
        bare_r = Signal()   # no room for messages after the MoldUDP64 header
        m.d.sync += bare_r.eq(udp_len == net.UDP.length + moldudp64.HEADER_LENGTH)

        # -- frame state ----------------------------------------------------------------------
        accepted = Signal()          # header item handed over; the frame is open
        bad = Signal()               # an accepted frame found bad (sticky until tlast)
        fault = Signal(REASON_BITS)  # first late fault of an accepted frame
        tag = Signal(TAG_BITS)

        # framing walk registers (positions kept precomputed: +1, +2, room left)
        blk = Signal(POS_BITS)       # position of the next length field
        blk_p1 = Signal(POS_BITS)
        blk_p2 = Signal(POS_BITS)
        fit = Signal(POS_BITS)       # longest message that still fits: udp_end - 2 - blk
        remaining = Signal(16)       # length fields still to read (count minus read)
        next_seq = Signal(64)
        len_hi = Signal(8)
        in_msg = Signal()
        msg_start = Signal(POS_BITS)
        msg_end = Signal(POS_BITS)
        msg_len = Signal(7)
        msg_seq = Signal(64)
        msg_xor = Signal()           # completing this message is a MOLD_COUNT fault
        keep = Signal(MAX_MESSAGE)   # byte j of the message exists
        buf = Signal(MAX_MESSAGE * 8)

        # -- the header beat ------------------------------------------------------------------
        at_h = Signal()
        m.d.comb += at_h.eq(valid & ~accepted & (beat == h_beat))
        end_short = Signal()  # the frame ends in this beat before H (runt case)
        m.d.comb += end_short.eq(last & (nkeep < h_keep))   # in the H - 1 beat only
        # "The frame would be truncated if it ended in this beat", precomputed for the next
        # beat from registered positions (ip_end settles by beat 4; it matters from H on).
        ipe_beat = Signal(POS_BITS - 3)
        ipe_keep = Signal(4)
        m.d.sync += [ipe_beat.eq((ip_end - 1) >> 3),
                     ipe_keep.eq(ip_end - ((ip_end - 1) >> 3 << 3))]
        next_beat = Signal(range(MAX_BEATS + 1))
        m.d.comb += next_beat.eq(Mux(valid, Mux(rx.tlast, 0, Mux(beat == MAX_BEATS, beat,
                                                                   beat + 1)), beat))
        ipe_lt = Signal()
        ipe_eq = Signal()
        m.d.sync += [ipe_lt.eq(next_beat < ipe_beat), ipe_eq.eq(next_beat == ipe_beat)]
        trunc_now = Signal()
        m.d.comb += trunc_now.eq(last & (ipe_lt | (ipe_eq & (nkeep < ipe_keep))))
        mac_now = Signal()
        m.d.comb += mac_now.eq(last & rx.tuser)
        oversize_now = Signal()
        m.d.comb += oversize_now.eq(valid & (beat == MAX_BEATS))

        hdr_ok = Signal()  # header good, not blocked by a fault in this beat
        m.d.comb += hdr_ok.eq(at_h & ~end_short & ~header_fail
                              & ~count_fail_of(count_live, bare_r) & ~mac_now & ~trunc_now)
        # (count_fail_of reads the captured UDP length, settled beats ago; the count itself is
        # in this very beat.)
        hdr_push = Signal()
        m.d.comb += hdr_push.eq(hdr_ok & room_item)

        # -- framing walk (docs/ingress.md section 2) -------------------------------------------
        # Until the header is accepted, the walk registers hold the positions after H (they
        # settle by beat 6; H - 1 is in beat 7 or later). In the header beat the walk runs on
        # speculation — the header may still fail — and whatever it set is reloaded from H in
        # the next cycle if it did: nothing of a frame acts before ``accepted``.
        walking = Signal()
        m.d.comb += walking.eq(valid & ((accepted & ~bad) | at_h))
        blk_cur, blk_p1_cur, blk_p2_cur, fit_cur = blk, blk_p1, blk_p2, fit
        with m.If(~accepted):
            m.d.sync += [blk.eq(h_end), blk_p1.eq(h_end + 1), blk_p2.eq(h_end + 2),
                         fit.eq(fit_h)]
        rem_cur = Signal(16)
        m.d.comb += rem_cur.eq(Mux(accepted, remaining, count_live))
        want_len = Signal()
        m.d.comb += want_len.eq(walking & (rem_cur != 0) & (blk_cur < udp_end))
        has_b0 = Signal()
        has_b1 = Signal()
        m.d.comb += [has_b0.eq(blk_cur[3:] == beat), has_b1.eq(blk_p1_cur[3:] == beat)]
        stray = Signal()      # a length field starting on the payload's last byte
        m.d.comb += stray.eq(want_len & has_b0 & (blk_cur == udp_last))
        hi = Signal(8)
        m.d.comb += hi.eq(Mux(has_b0, self._lane(blk_cur[:3]), len_hi))
        with m.If(want_len & has_b0 & ~has_b1):
            m.d.sync += len_hi.eq(self._lane(blk_cur[:3]))
        length = Signal(16)
        m.d.comb += length.eq(Cat(self._lane(blk_p1_cur[:3]), hi))
        len_read = Signal()
        m.d.comb += len_read.eq(want_len & has_b1 & ~stray)
        len_bad = Signal()
        m.d.comb += len_bad.eq(len_read & ((length < MIN_MESSAGE) | (length > MAX_MESSAGE)))
        overrun = Signal()
        m.d.comb += overrun.eq(len_read & ~len_bad & (length > fit_cur))

        # -- message byte buffer ---------------------------------------------------------------
        def rotated(start):
            r = Signal(3, name="rot_amount")
            m.d.comb += r.eq(start[:3])
            out = []
            for i in range(DATA_BYTES):
                lane = Signal(3, name=f"rot_lane{i}")
                m.d.comb += lane.eq(r + i)
                out.append(self._lane(lane))
            return out

        def write_enables(start, name):
            """en[j]: message byte j (of a message starting at ``start``) is in this beat."""
            d = Signal(range(-MAX_BEATS - 1, MAX_BEATS + 1), name=f"{name}_d")
            m.d.comb += d.eq(beat - start[3:])
            r = start[:3]
            en = []
            for j in range(MAX_MESSAGE):
                w, i = divmod(j, DATA_BYTES)
                carry = r + i >= DATA_BYTES
                e = Signal(name=f"{name}_en{j}")
                m.d.comb += e.eq(Mux(carry, d == w + 1, d == w))
                en.append(e)
            return en

        # Writes switch to the next message as soon as its length field is in the beat —
        # whether or not that length turns out valid (if not, the frame is bad and the buffer
        # no longer matters). That keeps the length checks off the write-enable path.
        start_w = Signal(POS_BITS)
        m.d.comb += start_w.eq(Mux(has_b1, blk_p2_cur, msg_start))
        rot_w = rotated(start_w)
        en_w = write_enables(start_w, "wr")
        with m.If(valid):   # bytes outside the message are written too; they are never read
            for j in range(MAX_MESSAGE):
                with m.If(en_w[j]):
                    m.d.sync += buf[8 * j:8 * j + 8].eq(rot_w[j % DATA_BYTES])

        rot_o = rotated(msg_start)
        en_o = write_enables(msg_start, "out")
        msg_bytes = Signal(MAX_MESSAGE * 8)
        m.d.comb += msg_bytes.eq(Cat(
            Mux(keep[j], Mux(en_o[j], rot_o[j % DATA_BYTES], buf[8 * j:8 * j + 8]), 0)
            for j in range(MAX_MESSAGE)))

        completes = Signal()  # the message in progress has its last byte in this beat
        m.d.comb += completes.eq(valid & accepted & in_msg & ~bad & (msg_end[3:] == beat))
        xor_fault = Signal()
        m.d.comb += xor_fault.eq(completes & msg_xor)
        msg_ok = Signal()     # would be handed over, if nothing else blocks it
        m.d.comb += msg_ok.eq(completes & ~msg_xor & ~mac_now & ~trunc_now & ~oversize_now)
        msg_push = Signal()
        m.d.comb += msg_push.eq(msg_ok & room_item)

        # Loaded on every length read: when the length is bad the frame is bad, and nothing
        # loaded here is used again. The checks only reach the fault logic.
        with m.If(len_read):
            end_pos = blk_p1_cur + length
            m.d.sync += [
                in_msg.eq(1),
                msg_start.eq(blk_p2_cur),
                msg_end.eq(end_pos),
                msg_len.eq(length),
                msg_seq.eq(Mux(accepted, next_seq, seq_live)),
                next_seq.eq(Mux(accepted, next_seq, seq_live) + 1),
                # MOLD_COUNT: exactly one of "last by count" and "ends the payload" holds.
                msg_xor.eq((rem_cur == 1) ^ (length == fit_cur)),
                keep.eq(Cat(Const(j, 7) < length for j in range(MAX_MESSAGE))),
                blk.eq(end_pos + 1), blk_p1.eq(end_pos + 2), blk_p2.eq(end_pos + 3),
                fit.eq(fit_cur - length - 2),
                remaining.eq(rem_cur - 1),
            ]
        with m.Elif(completes):
            m.d.sync += in_msg.eq(0)

        # -- late faults of an accepted frame, first by position ------------------------------
        open_frame = Signal()  # accepted (or accepted in this beat) and not yet bad
        m.d.comb += open_frame.eq((accepted & ~bad) | hdr_push)
        new_fault = Signal()
        new_reason = Signal(REASON_BITS)
        with m.If(open_frame & valid):
            with m.If(mac_now):
                m.d.comb += [new_fault.eq(1), new_reason.eq(R.MAC_ERROR)]
            with m.Elif(trunc_now):
                m.d.comb += [new_fault.eq(1), new_reason.eq(R.TRUNCATED)]
            with m.Elif(oversize_now):
                m.d.comb += [new_fault.eq(1), new_reason.eq(R.OVERSIZE)]
            with m.Elif(xor_fault):
                m.d.comb += [new_fault.eq(1), new_reason.eq(R.MOLD_COUNT)]
            with m.Elif(msg_ok & ~room_item):
                m.d.comb += [new_fault.eq(1), new_reason.eq(R.OVERFLOW)]
            with m.Elif(len_bad):
                m.d.comb += [new_fault.eq(1), new_reason.eq(R.MSG_LENGTH)]
            with m.Elif(overrun | stray):
                m.d.comb += [new_fault.eq(1), new_reason.eq(R.MOLD_OVERRUN)]

        next_tag = Signal(TAG_BITS)   # wraps: tags are reused after 2**TAG_BITS frames
        m.d.comb += next_tag.eq(tag + 1)
        cur_tag = Signal(TAG_BITS)
        m.d.comb += cur_tag.eq(Mux(accepted, tag, next_tag))
        with m.If(hdr_push):
            m.d.sync += [
                accepted.eq(1), bad.eq(0), tag.eq(next_tag),
            ]
            with m.If(~len_read):
                m.d.sync += [remaining.eq(count_live), next_seq.eq(seq_live)]
        with m.If(new_fault):
            m.d.sync += [bad.eq(1), fault.eq(new_reason)]
        # The squash bits as they will be next cycle: a new frame's tag starts clear, a frame
        # found bad sets its own. ``head_squashed`` is the bit of next cycle's FIFO head,
        # registered — the sequencer reads one flip-flop instead of a 32:1 lookup.
        squash_next = Signal(1 << TAG_BITS)
        m.d.comb += squash_next.eq(self.squash)
        with m.If(hdr_push):
            m.d.comb += squash_next.bit_select(next_tag, 1).eq(0)
        with m.If(new_fault):
            m.d.comb += squash_next.bit_select(cur_tag, 1).eq(1)
        m.d.sync += self.squash.eq(squash_next)
        head_next = data.View(Entry, fifo.r_data_next)
        m.d.sync += self.head_squashed.eq(squash_next.bit_select(head_next.tag, 1))

        # -- entry to the FIFO ----------------------------------------------------------------
        end_here = Signal()   # an accepted frame's end marker goes out in this beat
        m.d.comb += end_here.eq(last & (accepted | hdr_push))
        frame_bad_final = Signal()
        m.d.comb += frame_bad_final.eq(bad | new_fault | mac_now)
        reason_final = Signal(REASON_BITS)
        m.d.comb += reason_final.eq(Mux(mac_now, R.MAC_ERROR, Mux(bad, fault, new_reason)))
        m.d.comb += [
            push.item.eq(hdr_push | msg_push),
            push.header.eq(hdr_push),
            push.end.eq(end_here),
            push.bad.eq(end_here & frame_bad_final),
            push.reason.eq(Mux(end_here & frame_bad_final, reason_final, 0)),
            push.tag.eq(cur_tag),
            push.seq.eq(Mux(hdr_push, seq_live, msg_seq)),
            push.count.eq(count_live),
            push.length.eq(msg_len),
            push.data.eq(Mux(hdr_push, session_live, msg_bytes)),
            push_en.eq(hdr_push | msg_push | end_here),
        ]

        # -- end of frame: close, and report two cycles later ----------------------------------
        # The verdict of a frame that never opened walks the checks in order (section 1), on
        # the registered check bits: those of the tlast beat's captures settle a cycle after
        # it. The next frame cannot disturb them in time: its beat 0 captures nothing.
        # Two stages, because the next frame may be a single beat whose tlast comes before
        # this frame's report.
        ended = Signal()
        ended2 = Signal()
        stage1 = [Signal(POS_BITS), Signal(), Signal(), Signal(), Signal(REASON_BITS)]
        end_len, end_tuser, end_accepted, end_bad, end_reason = stage2 = \
            [Signal.like(x, name=f"end_{n}") for x, n in
             zip(stage1, ("len", "tuser", "accepted", "bad", "reason"), strict=True)]
        m.d.sync += [ended.eq(last), ended2.eq(ended)]
        with m.If(last):
            m.d.sync += [
                stage1[0].eq(frame_len), stage1[1].eq(rx.tuser),
                stage1[2].eq(accepted | hdr_push), stage1[3].eq(frame_bad_final),
                stage1[4].eq(reason_final),
                accepted.eq(0), bad.eq(0), in_msg.eq(0),
            ]
        with m.If(ended):
            m.d.sync += [b.eq(a) for a, b in zip(stage1, stage2, strict=True)]

        # A header item blocked in the H-1 beat falls through to TRUNCATED or OVERFLOW.
        verdict = Signal(REASON_BITS)
        with m.If(end_tuser):
            m.d.comb += verdict.eq(R.MAC_ERROR)
        with m.Else():
            for i, (reason, need, fails) in enumerate(checks_r):
                with (m.If if i == 0 else m.Elif)(end_len < need):
                    m.d.comb += verdict.eq(R.RUNT)
                with m.Elif(fails):
                    m.d.comb += verdict.eq(reason)
            with m.Elif(end_len < h_end):
                m.d.comb += verdict.eq(R.RUNT)
            with m.Elif(count_fail_r):
                m.d.comb += verdict.eq(R.MOLD_COUNT)
            with m.Elif(end_len < ip_end):
                m.d.comb += verdict.eq(R.TRUNCATED)
            with m.Else():
                m.d.comb += verdict.eq(R.OVERFLOW)

        index = Signal(32)
        with m.If(ended2):
            m.d.sync += index.eq(index + 1)
        seen = Signal(32)       # frames whose tlast beat has passed (for GAP events)
        with m.If(last):
            m.d.sync += seen.eq(seen + 1)
        m.d.comb += [
            self.frames_seen.eq(seen),
            self.report.valid.eq(ended2),
            self.report.dropped.eq(~end_accepted | end_bad),
            self.report.reason.eq(Mux(end_accepted, Mux(end_bad, end_reason, R.NONE), verdict)),
            self.report.good_packet.eq(end_accepted & ~end_bad),
            self.report.index.eq(index),
            # Lengths past MAX_FRAME are not counted exactly: MAX_FRAME + 1 means "longer".
            self.report.nbytes.eq(Mux(end_len > MAX_FRAME, MAX_FRAME + 1, end_len)),
        ]
        return m
