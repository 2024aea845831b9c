"""Tests of the ingress reference model (sim/model/ingress.py) against docs/ingress.md.

The hand-computed cases use the geometry of an untagged frame without IPv4 options unless a
test says otherwise: l3 = 14, l4 = 34, m0 = 42, H = 62, so the packet header completes at
byte 61 (beat 7) and the first length field is bytes 62–63. A 12-byte message after it ends
at byte 75 (beat 9); a second one's length field is bytes 76–77 and it ends at byte 89
(beat 11).

Randomized tests take their seeds from the parametrization (the test id names the seed);
``WIRESPEED_SEED=<n>`` replays one seed.
"""

from __future__ import annotations

import os
import random
import string
import struct

import pytest

from hw.events import BODY_FIELDS, EventKind
from hw.ingress.reasons import COUNTED, MAX_FRAME, DropReason
from proto import itch, moldudp64
from proto.net import ETH, IPV4, UDP, VLAN_TAG, ip_to_int, ipv4_checksum
from sim.feed.frames import parse_udp_frame, udp_frame
from sim.model.ingress import (
    FRAME_COUNTERS,
    SEQUENCER_COUNTERS,
    Delivered,
    FrameResult,
    IngressModel,
    Invalidation,
    Item,
    ItemKind,
    Line,
    LineFrame,
    Msg,
    PacketHeader,
    Sequencer,
    back_to_back,
    frame_items,
    line_items,
    parse_frame,
)

R = DropReason
A, B = Line.A, Line.B
IP_A, IP_B, PORT = "233.54.12.1", "233.54.12.2", 26477
FILTERS = {(ip_to_int(IP_A), PORT), (ip_to_int(IP_B), PORT)}
S1, S2 = b"SESSION001", b"SESSION002"
H = 62  # untagged, no options
assert H == ETH.length + IPV4.length + UDP.length + moldudp64.HEADER_LENGTH

_env_seed = os.environ.get("WIRESPEED_SEED")
SEEDS = [int(_env_seed)] if _env_seed else list(range(12))


# -- builders -------------------------------------------------------------------------------

def raw(n: int, code: str = "S", fill: int = 0) -> bytes:
    """An n-byte message whose first byte is an ITCH type code."""
    return code.encode() + bytes((fill + i) & 0xFF for i in range(1, n))


def mold(seq: int, msgs: list[bytes], count: int | None = None, session: bytes = S1) -> bytes:
    return moldudp64.pack_packet(session, seq, msgs, count)


def frame(payload: bytes, ip: str = IP_A, **kw) -> bytes:
    return udp_frame(payload, dst_ip=ip, dst_port=PORT, **kw)


def parse(f: bytes, mac: bool = False) -> FrameResult:
    return parse_frame(f, mac, FILTERS)


def put(f: bytes, at: int, size: int, value: int) -> bytes:
    b = bytearray(f)
    b[at:at + size] = value.to_bytes(size, "big")
    return bytes(b)


def put_ip(f: bytes, name: str, value: int, l3: int = ETH.length) -> bytes:
    """Set an IPv4 header field and fix the header checksum (for checks after #3)."""
    fld = IPV4[name]
    f = put(f, l3 + fld.offset, fld.size, value)
    ihl = 4 * (f[l3] & 0xF)
    ck = IPV4["checksum"]
    f = put(f, l3 + ck.offset, ck.size, 0)
    return put(f, l3 + ck.offset, ck.size, ipv4_checksum(f[l3:l3 + ihl]))


def kinds(items: list[Item]) -> list[tuple[str, int, bool, DropReason]]:
    return [(i.kind.value, i.beat, i.end, i.reason) for i in items]


S12 = raw(12)
GOOD1 = frame(mold(1, [S12]))                      # 76 bytes, message ends at 75
GOOD2 = frame(mold(1, [S12, raw(12, "A")]))        # 90 bytes, messages end at 75 and 89
HEARTBEAT = frame(mold(7, [], count=0))            # 62 bytes


# -- section 1: header checks ------------------------------------------------------------

def test_good_frame_items_and_positions():
    r = parse(GOOD2)
    assert r.reason is R.NONE and r.good and not r.dropped_whole and r.cutoff is None
    assert r.header == PacketHeader(S1, 1, 2, pos=H - 1)
    assert [(m.seq, m.index, m.pos, m.beat) for m in r.messages] == [(1, 0, 75, 9), (2, 1, 89, 11)]
    assert r.messages[1].data == raw(12, "A")
    assert r.end_beat == 11
    assert kinds(frame_items(r)) == [
        ("header", 7, False, R.NONE), ("message", 9, False, R.NONE),
        ("message", 11, True, R.NONE)]


def test_heartbeat_header_carries_end_marker():
    r = parse(HEARTBEAT)
    assert r.good and r.header.count == 0 and r.messages == ()
    assert kinds(frame_items(r)) == [("header", 7, True, R.NONE)]


def test_ethernet_padding_is_ignored_and_end_marker_comes_alone():
    r = parse(GOOD1 + bytes(9))         # 85 bytes: tlast beat 10
    assert r.good and len(r.messages) == 1
    assert kinds(frame_items(r)) == [
        ("header", 7, False, R.NONE), ("message", 9, False, R.NONE), ("end", 10, True, R.NONE)]


def test_vlan_and_ip_options_move_every_position():
    for vlan in (None, 5):
        for ihl in range(5, 16):
            opts = bytes(4 * (ihl - 5))
            f = frame(mold(3, [S12, raw(40, "F")]), vlan=vlan, ip_options=opts)
            h = (ETH.length + (VLAN_TAG.length if vlan is not None else 0) + 4 * ihl
                 + UDP.length + moldudp64.HEADER_LENGTH)
            r = parse(f)
            assert r.good, (vlan, ihl, r.reason)
            assert r.header.pos == h - 1
            assert [m.pos for m in r.messages] == [h + 13, h + 14 + 41]
            assert [m.data for m in r.messages] == [S12, raw(40, "F")]


def _header_cases() -> list[tuple[str, bytes, int, DropReason]]:
    """(name, frame, needs-bytes-up-to, reason): each frame fails exactly that check."""
    et = ETH["ethertype"]
    tagged = frame(mold(1, [S12]), vlan=9)
    ipx = ETH.length
    l4 = ipx + IPV4.length
    udp_len_at = l4 + UDP["length"].offset
    dport = l4 + UDP["dst_port"].offset
    return [
        ("ethertype", put(GOOD1, et.offset, 2, 0x86DD), 14, R.ETHERTYPE),
        ("ethertype_tagged", put(tagged, ETH.length + VLAN_TAG["ethertype"].offset, 2, 0x86DD),
         18, R.ETHERTYPE),
        ("qinq", put(tagged, ETH.length + VLAN_TAG["ethertype"].offset, 2, 0x8100), 18,
         R.ETHERTYPE),
        ("version", put_ip(GOOD1, "version_ihl", 0x65), ipx + 1, R.IPV4_HEADER),
        ("ihl4", put(GOOD1, ipx, 1, 0x44), ipx + 1, R.IPV4_HEADER),
        ("checksum", put(GOOD1, ipx + IPV4["ttl"].offset, 1, 3), l4, R.IPV4_CHECKSUM),
        ("total_length", put_ip(GOOD1, "total_length", IPV4.length + 7), l4, R.IPV4_LENGTH),
        ("mf", put_ip(GOOD1, "flags_fragment", 0x2000), l4, R.FRAGMENT),
        ("offset", put_ip(GOOD1, "flags_fragment", 0x4001), l4, R.FRAGMENT),
        ("protocol", put_ip(GOOD1, "protocol", 6), l4, R.IP_PROTOCOL),
        ("udp_length", put(GOOD1, udp_len_at, 2, 8 + 20 + 14 - 1), l4 + 8, R.UDP_LENGTH),
        ("port", put(GOOD1, dport, 2, PORT + 1), l4 + 8, R.FILTERED),
        ("ip", put_ip(GOOD1, "dst", ip_to_int("233.54.12.3")), l4 + 8, R.FILTERED),
        ("mold_header", frame(mold(1, [])[:19]), l4 + 8, R.MOLD_HEADER),
        ("heartbeat_with_bytes", frame(mold(1, [S12], count=0)), H, R.MOLD_COUNT),
        ("eos_with_bytes", frame(mold(1, [S12], count=0xFFFF)), H, R.MOLD_COUNT),
        ("count_without_bytes", frame(mold(1, [], count=3)), H, R.MOLD_COUNT),
    ]


@pytest.mark.parametrize("f,need,reason", [c[1:] for c in _header_cases()],
                         ids=[c[0] for c in _header_cases()])
def test_header_check_and_runt_boundary(f, need, reason):
    assert parse(f).reason is reason and parse(f).dropped_whole
    assert parse(f[:need]).reason is reason, "the check has all the bytes it needs"
    assert parse(f[:need - 1]).reason is R.RUNT, "one byte short of what the check needs"
    assert frame_items(parse(f)) == []


def test_runt_needs_of_a_passing_frame():
    # A good frame cut just before each need: RUNT; cut at H: header checks pass.
    tagged = frame(mold(1, [S12]), vlan=9)
    for f, needs in ((GOOD1, (14, 15, 34, 42, 62)), (tagged, (14, 18, 19, 38, 46, 66))):
        for n in needs:
            assert parse(f[:n - 1]).reason is R.RUNT, n
    assert parse(GOOD1[:1]).reason is R.RUNT
    assert parse(put(GOOD1[:16], 12, 2, 0x8100)).reason is R.RUNT  # tag announced, cut


def test_dont_fragment_alone_is_fine_and_checks_run_in_order():
    assert parse(put_ip(GOOD1, "flags_fragment", 0x4000)).good
    # Bad checksum and wrong protocol: the checksum (check 3) is reported.
    both = put(put_ip(GOOD1, "protocol", 6), ETH.length + IPV4["ttl"].offset, 1, 1)
    assert parse(both).reason is R.IPV4_CHECKSUM


def test_filters_are_exact_entries():
    assert parse_frame(GOOD1, False, {(ip_to_int(IP_A), PORT)}).good
    assert parse_frame(GOOD1, False, {(ip_to_int(IP_A), PORT + 1)}).reason is R.FILTERED
    assert parse_frame(GOOD1, False, set()).reason is R.FILTERED


def test_empty_frame_is_rejected():
    with pytest.raises(ValueError):
        parse(b"")


# -- section 2: late faults and the emission rule --------------------------------------------

def test_msg_length_right_after_a_message_in_the_same_beat():
    # count 2; message 1 ends at 75; length field 76-77 says 11 -> d = 77 (beat 9), frame ends
    # at 79 (beat 9): message 1 (p = 75 < 77) is handed over and carries the bad end marker.
    for bad_len in (11, 65, 0, 0xFFFF):
        r = parse(frame(mold(1, [S12], count=2) + struct.pack(">H", bad_len) + b"\0\0"))
        assert (r.reason, r.cutoff, r.length) == (R.MSG_LENGTH, 77, 80)
        assert [m.seq for m in r.messages] == [1]
        assert kinds(frame_items(r)) == [
            ("header", 7, False, R.NONE), ("message", 9, True, R.MSG_LENGTH)]


def test_bad_first_length_field_hands_over_the_header_then_squashes_it():
    # The first length field's 2nd byte (63) is in H - 1's beat (7) but after H - 1 (61): by
    # the emission rule the header item is handed over; the frame is known bad in that beat,
    # so the sequencer squashes it: the session is not locked by a broken packet.
    r = parse(frame(mold(1, [], count=1) + b"\x00\x05" + bytes(10)))
    assert (r.reason, r.dropped_whole, r.cutoff) == (R.MSG_LENGTH, False, 63)
    assert r.header is not None and r.messages == ()
    r = parse(frame(mold(1, [], count=1) + b"\x00\x0c" + bytes(5)))
    assert (r.reason, r.dropped_whole) == (R.MOLD_OVERRUN, False)
    r = parse(frame(mold(1, [], count=1) + b"\x00"))          # U = 21: one stray byte at H
    assert (r.reason, r.dropped_whole, r.cutoff) == (R.MOLD_OVERRUN, False, H)
    bad = frame(mold(1, [], count=1) + b"\x00\x05" + bytes(10))
    res = IngressModel(FILTERS).run(back_to_back([bad]))
    assert res.events == [] and res.stream == []
    assert res.counters["drop_msg_length"] == 1 and res.counters["mold_packets"] == 0


def test_mold_overrun_length_past_udp_end():
    # message 2 claims 20 bytes, 12 follow: d = 77; the frame ends in beat 11 (90 bytes).
    r = parse(frame(mold(1, [S12], count=2) + struct.pack(">H", 20) + bytes(12)))
    assert (r.reason, r.cutoff, [m.seq for m in r.messages]) == (R.MOLD_OVERRUN, 77, [1])
    assert kinds(frame_items(r))[-2:] == [
        ("message", 9, False, R.NONE), ("end", 11, True, R.MOLD_OVERRUN)]


def test_msg_length_wins_over_overrun_at_the_same_field():
    r = parse(frame(mold(1, [S12], count=2) + struct.pack(">H", 70) + bytes(12)))
    assert r.reason is R.MSG_LENGTH


def test_mold_overrun_stray_byte():
    # count 2, one message and one stray byte at 76 = udp_end - 1: d = 76, message 1 kept.
    r = parse(frame(mold(1, [S12], count=2) + b"\x07"))
    assert (r.reason, r.cutoff, [m.seq for m in r.messages]) == (R.MOLD_OVERRUN, 76, [1])
    assert kinds(frame_items(r))[-1] == ("message", 9, True, R.MOLD_OVERRUN)


def test_mold_count_too_many_messages_blocks_the_counted_last():
    # count 1, two messages: count reached at 75 with bytes left -> d = 75 = p of message 1.
    r = parse(frame(mold(1, [S12, S12], count=1)))
    assert (r.reason, r.cutoff, r.messages, r.dropped_whole) == (R.MOLD_COUNT, 75, (), False)
    assert kinds(frame_items(r)) == [("header", 7, False, R.NONE), ("end", 11, True, R.MOLD_COUNT)]


def test_mold_count_too_few_messages_blocks_the_last():
    # count 3, two messages: payload used up at 89 with one missing -> message 2 blocked.
    r = parse(frame(mold(1, [S12, S12], count=3)))
    assert (r.reason, r.cutoff, [m.seq for m in r.messages]) == (R.MOLD_COUNT, 89, [1])
    assert kinds(frame_items(r))[-1] == ("end", 11, True, R.MOLD_COUNT)


def test_truncated():
    r = parse(GOOD2[:88])                # tlast beat 10: d = 80, message 1 (75) kept
    assert (r.reason, r.cutoff, [m.seq for m in r.messages]) == (R.TRUNCATED, 80, [1])
    assert kinds(frame_items(r))[-1] == ("end", 10, True, R.TRUNCATED)
    r = parse(GOOD2[:80])                # tlast beat 9: d = 72 blocks message 1
    assert (r.reason, r.messages, r.dropped_whole) == (R.TRUNCATED, (), False)
    assert kinds(frame_items(r)) == [("header", 7, False, R.NONE), ("end", 9, True, R.TRUNCATED)]
    for n in (62, 63, 64):               # tlast beat is H - 1's beat: dropped whole
        r = parse(GOOD2[:n])
        assert (r.reason, r.dropped_whole) == (R.TRUNCATED, True), n
    assert parse(GOOD2[:61]).reason is R.RUNT


def test_mac_error():
    r = parse(GOOD1, mac=True)           # header handed over; message 1 (beat 9) blocked
    assert (r.reason, r.cutoff, r.messages, r.dropped_whole) == (R.MAC_ERROR, 72, (), False)
    assert kinds(frame_items(r)) == [("header", 7, False, R.NONE), ("end", 9, True, R.MAC_ERROR)]
    r = parse(HEARTBEAT, mac=True)       # tlast beat = header beat: dropped whole
    assert (r.reason, r.dropped_whole) == (R.MAC_ERROR, True)
    r = parse(GOOD1[:20], mac=True)      # overrides header faults, RUNT included
    assert (r.reason, r.dropped_whole) == (R.MAC_ERROR, True)
    # overrides an earlier framing fault, whose position still cuts off emission
    late = frame(mold(1, [S12], count=2) + struct.pack(">H", 11) + bytes(40))
    r = parse(late, mac=True)
    assert (r.reason, r.cutoff, [m.seq for m in r.messages]) == (R.MAC_ERROR, 77, [1])


def _big_packet(n_msgs: int) -> bytes:
    """n 64-byte messages: message k (1-based) ends at 61 + 66 k."""
    return frame(mold(1, [raw(64, "A", k) for k in range(n_msgs)]))


def test_oversize():
    f = _big_packet(140)                 # ip_end 9302: messages 1..138 end before 9216
    r = parse(f)
    assert (r.reason, r.cutoff, len(r.messages)) == (R.OVERSIZE, MAX_FRAME, 138)
    assert r.messages[-1].pos == 61 + 66 * 138
    assert kinds(frame_items(r))[-1] == ("end", 9301 // 8, True, R.OVERSIZE)
    # TRUNCATED and OVERSIZE at the same d (a tlast beat starting at 9216): TRUNCATED.
    assert parse(f[:9220]).reason is R.TRUNCATED
    assert parse(f[:9300]).reason is R.OVERSIZE
    # a packet that fits, padded past MAX_FRAME: every message kept, frame still bad
    r = parse(GOOD1 + bytes(MAX_FRAME + 1 - len(GOOD1)))
    assert (r.reason, len(r.messages)) == (R.OVERSIZE, 1)


def test_max_frame_exactly_is_fine():
    # 138 blocks of 66 plus one of 46 fill U = 9174, so ip_end = MAX_FRAME.
    msgs = [raw(64, "A", k) for k in range(138)] + [raw(44, "F")]
    f = frame(mold(1, msgs))
    assert len(f) == MAX_FRAME
    assert parse(f).good and len(parse(f).messages) == 139
    r = parse(f + b"\0")
    assert (r.reason, len(r.messages)) == (R.OVERSIZE, 139)


def test_line_items_numbers_frames():
    rs = [parse(GOOD1), parse(GOOD1[:30]), parse(HEARTBEAT)]
    items = line_items(rs)
    assert [(i.frame, i.kind) for i in items] == [
        (0, ItemKind.HEADER), (0, ItemKind.MESSAGE), (2, ItemKind.HEADER)]


# -- section 4: the sequencer, fed items directly ---------------------------------------------

def hdr(seq: int, count: int = 1, session: bytes = S1, end: bool = False,
        reason: DropReason = R.NONE) -> Item:
    return Item(ItemKind.HEADER, 0, 0, PacketHeader(session, seq, count, 0), end, reason)


def m(seq: int, end: bool = False, reason: DropReason = R.NONE, code: str = "A") -> Item:
    return Item(ItemKind.MESSAGE, 0, 0, Msg(seq, 0, raw(12, code, seq), 0), end, reason)


def eom(reason: DropReason = R.NONE) -> Item:
    return Item(ItemKind.END, 0, 0, None, True, reason)


def seqs(s: Sequencer) -> list[tuple]:
    return [(d.seq, d.line.name, d.cycle) if isinstance(d, Delivered)
            else ("inv", d.line.name, d.first, d.last, d.rolled_back, d.cycle) for d in s.stream]


def run(a, b=(), **kw) -> Sequencer:
    s = Sequencer(a, b, **kw)
    s.run()
    return s


def test_control_items_one_per_cycle_a_first():
    s = run([(1, hdr(5, 2)), (2, m(5)), (3, m(6, end=True))],
            [(1, hdr(5, 2)), (2, m(5)), (3, m(6, end=True))])
    # 1: A header (lock). 2: B header (control beats A's plain message). 3: pair 5/5 -> A.
    # 4: A's 6+end (control). 5: B's 6+end: duplicate.
    assert seqs(s) == [(5, "A", 3), (6, "A", 4)]
    assert [(e.kind, e.line, e.cycle) for e in s.events] == [(EventKind.SESSION, A, 1)]
    assert s.events[0].fields == {"next_seq": 5, "session": S1}
    c = s.counters
    assert (c["messages"], c["duplicates"], c["line_a_won"], c["line_b_won"]) == (2, 2, 2, 0)
    assert c["itch_add_order"] == 2


def test_b_control_item_goes_before_a_plain_message():
    s = run([(1, hdr(1, 3)), (2, m(1)), (3, m(2)), (4, m(3, end=True))],
            [(1, hdr(1, 1)), (3, m(1, end=True))])
    # 1: A's header. 2: B's header (control) while A's 1 waits. 3: B's 1+end is control, so
    # B delivers 1 while A's 1 still waits. 4: A's 1 is a duplicate. 5, 6: A's 2 and 3.
    assert seqs(s) == [(1, "B", 3), (2, "A", 5), (3, "A", 6)]
    assert s.counters["duplicates"] == 1


def test_pair_rule_smaller_first_then_the_other_waits():
    s = run([(2, hdr(5, 2)), (3, m(5)), (4, m(6, end=True))],
            [(1, hdr(3, 2)), (3, m(3)), (4, m(4, end=True))])
    # 1: B locks at 3. 2: A header. 3: heads 5 / 3 -> B's 3 only. 4: B's 4+end is control.
    # 5: A's 5 alone. 6: A's 6+end.
    assert seqs(s) == [(3, "B", 3), (4, "B", 4), (5, "A", 5), (6, "A", 6)]
    assert s.counters["gaps"] == 0 and s.counters["duplicates"] == 0
    assert (s.counters["line_a_won"], s.counters["line_b_won"]) == (2, 2)


def test_pair_rule_one_old_one_new():
    # After A's 1, 2 (expected 3) the heads are A=2 (old) and B=3 (new) in cycle 5: both are
    # popped in that cycle, A's as a duplicate, B's delivered.
    s = run([(1, hdr(1, 3)), (2, m(1)), (3, m(2)), (5, m(2)), (6, eom())],
            [(1, hdr(1, 3)), (5, m(3)), (7, eom())])
    assert seqs(s) == [(1, "A", 3), (2, "A", 4), (3, "B", 5)]
    assert s.counters["duplicates"] == 1


def test_pair_rule_both_old():
    s = run([(1, hdr(1, 2)), (2, m(1)), (3, m(2)), (4, m(1)), (5, eom())],
            [(4, m(2)), (6, eom())])
    assert seqs(s) == [(1, "A", 2), (2, "A", 3)]
    assert s.counters["duplicates"] == 2


def test_gap_event_fields():
    s = run([(1, hdr(1, 1)), (2, m(1, end=True)), (10, hdr(4, 1)), (12, m(4, end=True))],
            [(1, hdr(1, 1)), (3, m(1, end=True))],
            frame_ends=([1, 11], [2, 11, 12]))
    (gap,) = [e for e in s.events if e.kind is EventKind.GAP]
    assert (gap.line, gap.cycle) == (A, 12)
    assert gap.fields == {"expected": 2, "received": 4, "missing": 2, "line_a_next": 2,
                          "line_b_next": 2, "line_a_frames": 2, "line_b_frames": 2}
    assert tuple(gap.fields) == tuple(n for n, _ in BODY_FIELDS[EventKind.GAP])
    assert (s.counters["gaps"], s.counters["gap_messages"]) == (1, 2)
    assert s.expected == 5


def test_heartbeats_and_end_of_session():
    s = run([(1, hdr(10, 0, end=True)), (2, hdr(10, 0, end=True)), (3, hdr(14, 0, end=True)),
             (4, hdr(12, 0, end=True)), (5, hdr(20, 0xFFFF, end=True))])
    assert s.counters["heartbeats"] == 4 and s.counters["end_of_session"] == 1
    ev = [(e.kind.name, e.cycle, e.fields.get("expected"), e.fields.get("missing"))
          for e in s.events]
    assert ev == [("SESSION", 1, None, None), ("GAP", 3, 10, 4), ("END_OF_SESSION", 5, None, None),
                  ("GAP", 5, 14, 6)]
    assert s.events[2].fields == {"next_seq": 20, "session": S1}
    assert s.expected == 20 and s.counters["gap_messages"] == 10 and s.counters["messages"] == 0


def test_session_mismatch_discards_until_the_end_marker():
    s = run([(1, hdr(1, 2)), (2, m(1)), (3, m(2, end=True)),
             (4, hdr(3, 2, session=S2)), (5, m(3)), (6, m(4, end=True)),
             (7, hdr(3, 1)), (8, m(3, end=True))],
            [(5, hdr(3, 1, session=S2)), (6, m(3, end=True))])
    assert seqs(s) == [(1, "A", 2), (2, "A", 3), (3, "A", 10)]
    assert s.counters["session_mismatch"] == 2
    assert s.counters["duplicates"] == 0 and s.counters["gaps"] == 0
    assert s.discard == [False, False]


def test_discarded_head_does_not_use_up_the_cycle():
    s = run([(1, hdr(1, 1)), (3, m(1)), (4, eom())],
            [(2, hdr(1, 1, session=S2)), (3, m(1)), (4, eom())])
    # cycle 3: B's head is discarded and dropped; A's 1 is delivered in the same cycle.
    assert seqs(s) == [(1, "A", 3)]
    assert s.counters["duplicates"] == 0


def test_unlock_relocks():
    s = Sequencer([(1, hdr(1, 1)), (2, m(1, end=True)), (5, hdr(100, 1, session=S2)),
                   (6, m(100, end=True))])
    s.run(until=4)
    assert s.locked and s.expected == 2
    s.unlock()
    s.run()
    assert seqs(s) == [(1, "A", 2), (100, "A", 6)]
    assert [e.fields for e in s.events] == [{"next_seq": 1, "session": S1},
                                            {"next_seq": 100, "session": S2}]
    assert s.counters["gaps"] == 0 and s.session == S2


def test_invalidate_with_rollback_lets_the_other_line_deliver():
    s = run([(1, hdr(1, 3)), (2, m(1)), (3, m(2)), (5, eom(R.MSG_LENGTH))],
            [(6, hdr(1, 3)), (7, m(1)), (8, m(2)), (9, m(3, end=True))])
    assert seqs(s) == [(1, "A", 2), (2, "A", 3), ("inv", "A", 1, 2, True, 5),
                       (1, "B", 7), (2, "B", 8), (3, "B", 9)]
    (inv,) = [e for e in s.events if e.kind is EventKind.INVALIDATE]
    assert inv.fields == {"first": 1, "last": 2, "next_seq": 1, "count": 2, "rolled_back": 1}
    assert (s.counters["invalidations"], s.counters["invalidated_messages"]) == (1, 2)
    assert s.counters["messages"] == 5 and s.counters["gaps"] == 0


def test_invalidate_without_rollback():
    # B delivers 3 before A's bad end marker: expected is no longer last_A + 1.
    s = run([(1, hdr(1, 2)), (2, m(1)), (3, m(2)), (6, eom(R.TRUNCATED))],
            [(4, hdr(3, 1)), (5, m(3, end=True))])
    assert seqs(s)[-1] == ("inv", "A", 1, 2, False, 6)
    assert s.expected == 4
    assert s.events[-1].fields["rolled_back"] == 0


def test_bad_end_marker_without_deliveries_is_silent():
    s = run([(1, hdr(1, 1)), (2, eom(R.MAC_ERROR)), (3, hdr(1, 1)), (4, m(1)), (5, eom())])
    assert seqs(s) == [(1, "A", 4)]
    assert s.counters["invalidations"] == 0


def test_message_with_bad_end_marker_is_delivered_then_invalidated():
    s = run([(1, hdr(1, 2)), (2, m(1, end=True, reason=R.MOLD_OVERRUN))])
    assert seqs(s) == [(1, "A", 2), ("inv", "A", 1, 1, True, 2)]
    assert s.expected == 1


def test_per_type_counters_use_layout_names():
    s = run([(1, hdr(1, 4)), (2, m(1, code="h")), (3, m(2, code="H")), (4, m(3, code="z")),
             (5, m(4, end=True, code="S"))])
    c = s.counters
    assert (c["itch_operational_halt"], c["itch_stock_trading_action"], c["itch_unknown"],
            c["itch_system_event"]) == (1, 1, 1, 1)
    assert sum(v for k, v in c.items() if k.startswith("itch_")) == c["messages"] == 4
    assert len(SEQUENCER_COUNTERS) == len(set(SEQUENCER_COUNTERS))
    assert {f"itch_{itch.MESSAGES[t].name}" for t in itch.TYPE_CODES} < set(SEQUENCER_COUNTERS)


def test_sequencer_rejects_out_of_order_arrivals_and_steps():
    with pytest.raises(ValueError):
        Sequencer([(3, hdr(1)), (2, eom())])
    s = Sequencer([(1, hdr(1, 0, end=True))])
    s.step(1)
    with pytest.raises(ValueError):
        s.step(1)


# -- whole model: real frames on two lines -----------------------------------------------------

def packets(n: int, first: int = 1, per: int = 2, ip: str = IP_A) -> list[bytes]:
    out, seq = [], first
    for _ in range(n):
        out.append(frame(mold(seq, [raw(12 + 4 * (k % 3), "A", seq + k) for k in range(per)]),
                         ip=ip))
        seq += per
    return out


def test_same_cycle_tie_a_wins():
    fa = packets(3)
    fb = packets(3, ip=IP_B)
    res = IngressModel(FILTERS).run(back_to_back(fa), back_to_back(fb))
    assert [d.seq for d in res.delivered] == list(range(1, 7))
    c = res.counters
    assert (c["line_a_won"], c["line_b_won"], c["duplicates"]) == (6, 0, 6)
    assert (c["frames"], c["line_a_frames"], c["line_b_frames"], c["mold_packets"]) == (6, 3, 3, 6)


def test_earlier_line_wins():
    fa = packets(3)
    res = IngressModel(FILTERS).run(back_to_back(fa, start=3), back_to_back(fa))
    assert [d.line for d in res.delivered] == [B] * 6


def test_loss_on_one_line_is_filled_by_the_other():
    fa, fb = packets(4), packets(4, ip=IP_B)
    la = back_to_back(fa)
    lb = back_to_back(fb)
    del la[1]                                  # A loses packet 2 (seq 3, 4)
    lb[2] = LineFrame(fb[2][:50], lb[2].start)  # B's packet 3 is a RUNT
    res = IngressModel(FILTERS).run(la, lb)
    assert [d.seq for d in res.delivered] == list(range(1, 9))
    assert [d.line for d in res.delivered if d.seq in (3, 4)] == [B, B]
    c = res.counters
    assert (c["gaps"], c["frames"], c["frames_dropped"], c["drop_runt"]) == (0, 7, 1, 1)
    assert [(d.line, d.index, d.reason) for d in res.drops] == [(B, 2, R.RUNT)]


def test_gap_when_both_lose_reports_lines():
    # 1-message packets; packet 2 lost on both lines; identical timing on both lines.
    f1, f3 = frame(mold(1, [S12])), frame(mold(3, [S12]))
    res = IngressModel(FILTERS).run(back_to_back([f1, f3]), back_to_back([f1, f3]))
    assert [d.seq for d in res.delivered] == [1, 3]
    (gap,) = [e for e in res.events if e.kind is EventKind.GAP]
    # f3 starts in cycle 10; its message (beat 9) arrives in cycle 20; tlast cycles 9 and 19.
    assert (gap.line, gap.cycle) == (A, 20)
    assert gap.fields == {"expected": 2, "received": 3, "missing": 1, "line_a_next": 2,
                          "line_b_next": 2, "line_a_frames": 2, "line_b_frames": 2}


def test_lagging_line_cannot_fill_a_loss_once_the_leader_moved_on():
    # The sequencer has no hold-off window: A (leading by 100 cycles) loses packet 2 and
    # delivers packet 3 with a GAP before B's copy of 2 arrives; B's copies are then old.
    f1, f2, f3 = (frame(mold(s, [S12])) for s in (1, 2, 3))
    la = [LineFrame(f1, 0), LineFrame(f3, 20)]
    lb = [LineFrame(f, 100 + 10 * i) for i, f in enumerate((f1, f2, f3))]
    res = IngressModel(FILTERS).run(la, lb)
    assert [(d.seq, d.line) for d in res.delivered] == [(1, A), (3, A)]
    c = res.counters
    assert (c["gaps"], c["gap_messages"], c["duplicates"]) == (1, 1, 3)


def test_mac_error_header_lock_is_given_back():
    # The header of a MAC_ERROR frame left before the verdict and locked the session; the
    # bad end marker gives the lock back, and the next good header locks again (no GAP).
    res = IngressModel(FILTERS).run_single([GOOD1, frame(mold(2, [S12]))], mac_errors={0})
    assert [e.kind for e in res.events] == [EventKind.SESSION, EventKind.SESSION]
    assert [d.seq for d in res.delivered] == [2]
    c = res.counters
    assert (c["frames_dropped"], c["drop_mac_error"], c["mold_packets"]) == (1, 1, 1)


def test_oversize_padding_invalidates_with_rollback_on_the_wire():
    big = GOOD1 + bytes(MAX_FRAME + 8 - len(GOOD1))
    res = IngressModel(FILTERS).run_single([big])
    assert [type(x).__name__ for x in res.stream] == ["Delivered", "Invalidation"]
    inv = res.stream[1]
    assert (inv.first, inv.last, inv.rolled_back) == (1, 1, True)
    assert inv.cycle == (len(big) - 1) // 8 + 1
    assert res.counters["drop_oversize"] == 1


def test_frames_on_a_line_must_not_overlap():
    with pytest.raises(ValueError):
        IngressModel(FILTERS).run([LineFrame(GOOD1, 0), LineFrame(GOOD1, 9)])
    IngressModel(FILTERS).run([LineFrame(GOOD1, 0), LineFrame(GOOD1, 10)])


def test_unlock_on_the_wire():
    fa = [frame(mold(1, [S12])), frame(mold(500, [S12], session=S2))]
    model = IngressModel(FILTERS)
    assert model.run_single(fa).counters["session_mismatch"] == 1
    res = model.run(back_to_back(fa), unlocks=[12])
    assert [d.seq for d in res.delivered] == [1, 500]
    assert res.counters["session_mismatch"] == 0 and res.counters["gaps"] == 0


# -- randomized ---------------------------------------------------------------------------------

def _random_messages(rng: random.Random, n: int) -> list[bytes]:
    codes = list(itch.LENGTHS)
    out = []
    for _ in range(n):
        code = rng.choice(codes)
        out.append(code.encode() + rng.randbytes(itch.LENGTHS[code] - 1))
    return out


def _packetize(rng: random.Random, msgs: list[bytes]) -> list[tuple[int, list[bytes]]]:
    out, i = [], 0
    while i < len(msgs):
        k = rng.randint(1, 8)
        out.append((i + 1, msgs[i:i + k]))
        i += k
    return out


_MUTATIONS = ("good", "good", "good", "pad", "lost", "mac", "trunc", "csum", "len", "filtered")


def _mutate(rng: random.Random, f: bytes, l3: int, h: int, kind: str) -> tuple[bytes, bool]:
    """Apply a fault whose verdict the test can predict; returns (bytes, tuser)."""
    if kind == "pad":
        return f + bytes(rng.randint(1, 20)), False
    if kind == "mac":
        b = bytearray(f)
        b[rng.randrange(len(b))] ^= 0xFF
        return bytes(b), True
    if kind == "trunc":
        return f[:rng.randint(1, len(f) - 1)], False
    if kind == "csum":     # any header byte but version/IHL breaks the checksum
        at = l3 + rng.randint(1, IPV4.length - 1)
        return put(f, at, 1, f[at] ^ (1 << rng.randrange(8))), False
    if kind == "len":      # an out-of-range length field: MSG_LENGTH, nothing else
        pos, fields = h, []
        while pos < len(f) - 1:
            n = int.from_bytes(f[pos:pos + 2], "big")
            fields.append(pos)
            pos += 2 + n
        at = rng.choice(fields)
        bad = rng.choice([rng.randint(0, 11), rng.randint(65, 0xFFFF)])
        return put(f, at, 2, bad), False
    if kind == "filtered":
        return f, False
    assert kind == "good"
    return f, False


_EXPECTED = {"good": {R.NONE}, "pad": {R.NONE}, "mac": {R.MAC_ERROR},
             "trunc": {R.RUNT, R.TRUNCATED}, "csum": {R.IPV4_CHECKSUM}, "len": {R.MSG_LENGTH},
             "filtered": {R.FILTERED}}


def _check_totals(res, where: str) -> None:
    c = res.counters
    assert set(c) == set(FRAME_COUNTERS) | set(SEQUENCER_COUNTERS), where
    assert c["frames"] == c["mold_packets"] + c["frames_dropped"], where
    assert c["frames"] == c["line_a_frames"] + c["line_b_frames"], where
    assert c["frames_dropped"] == c["line_a_dropped"] + c["line_b_dropped"], where
    assert sum(c[r.counter] for r in COUNTED) == c["frames_dropped"] == len(res.drops), where
    delivered = res.delivered
    assert c["messages"] == len(delivered) == c["line_a_won"] + c["line_b_won"], where
    assert sum(v for k, v in c.items() if k.startswith("itch_")) == c["messages"], where
    gaps = [e for e in res.events if e.kind is EventKind.GAP]
    invs = [e for e in res.events if e.kind is EventKind.INVALIDATE]
    assert c["gaps"] == len(gaps) and c["gap_messages"] == sum(e.fields["missing"] for e in gaps)
    assert c["invalidations"] == len(invs) == sum(isinstance(x, Invalidation) for x in res.stream)
    assert c["invalidated_messages"] == sum(e.fields["count"] for e in invs), where
    for e in res.events:
        assert tuple(e.fields) == tuple(n for n, _ in BODY_FIELDS[e.kind]), where


def _check_stream(res, where: str) -> None:
    """Replay ``expected`` from the stream: every delivery is at ``expected`` or announced by
    a GAP event of the same cycle; a rollback returns to where ``expected`` stood before the
    invalidated frame's first delivery (the notice's ``next_seq``)."""
    gaps = [e for e in res.events if e.kind is EventKind.GAP]
    sessions = [e for e in res.events if e.kind is EventKind.SESSION]
    if not sessions:
        assert not res.stream, where
        return
    expected = None
    for x in res.stream:
        # A lock (first, or again after a provisional lock was given back) sets expected;
        # it happens in a header's cycle, never in a cycle that delivers.
        while sessions and sessions[0].cycle < x.cycle:
            expected = sessions.pop(0).fields["next_seq"]
        assert expected is not None, where
        if isinstance(x, Invalidation):
            if x.rolled_back:
                assert expected == x.last + 1, where
                assert x.next_seq <= x.first, where
                expected = x.next_seq
            continue
        assert x.seq >= expected, where
        if x.seq > expected:
            g = gaps.pop(0)
            assert (g.cycle, g.line, g.fields["expected"], g.fields["received"]) == \
                (x.cycle, x.line, expected, x.seq), where
        expected = x.seq + 1
    assert not gaps, where


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed={s}")
def test_random_faults_two_lines(seed):
    rng = random.Random(seed)
    where = f"seed={seed}"
    msgs = _random_messages(rng, rng.randint(40, 160))
    pkts = _packetize(rng, msgs)
    lines = []
    expected_reasons: list[list[set[DropReason]]] = []
    for ip in (IP_A, IP_B):
        vlan = rng.choice([None, rng.randrange(4096)])
        opts = bytes(4 * rng.randint(0, 10))
        l3 = ETH.length + (VLAN_TAG.length if vlan is not None else 0)
        h = l3 + IPV4.length + len(opts) + UDP.length + moldudp64.HEADER_LENGTH
        frames, reasons, start = [], [], rng.randint(0, 5)
        for seq, group in pkts:
            kind = rng.choice(_MUTATIONS)
            if kind == "lost":
                continue
            f = frame(mold(seq, group), ip=ip if kind != "filtered" else "233.54.12.9",
                      vlan=vlan, ip_options=opts)
            f, tuser = _mutate(rng, f, l3, h, kind)
            frames.append(LineFrame(f, start, tuser))
            reasons.append(_EXPECTED[kind])
            start = frames[-1].end_cycle + 1 + rng.choice([0, 0, 0, 1, 3])
        lines.append(frames)
        expected_reasons.append(reasons)
    res = IngressModel(FILTERS).run(*lines)
    for line, results, want in zip(Line, res.frames, expected_reasons, strict=True):
        for i, (r, ok) in enumerate(zip(results, want, strict=True)):
            assert r.reason in ok, f"{where} line {line.name} frame {i}: {r.reason} not in {ok}"
    _check_totals(res, where)
    _check_stream(res, where)
    # Messages whose bytes (or sequence numbers: a MAC_ERROR frame's header leaves before
    # the verdict) are wrong came from a bad frame and are invalidated later.
    invs = [x for x in res.stream if isinstance(x, Invalidation)]
    for d in res.delivered:
        if not 1 <= d.seq <= len(msgs) or d.data != msgs[d.seq - 1]:
            assert any(v.line == d.line and v.first <= d.seq <= v.last and v.cycle >= d.cycle
                       for v in invs), f"{where}: corrupt seq {d.seq} never invalidated"


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed={s}")
def test_random_arbitration_fills_single_line_losses(seed):
    """Every packet reaches the sequencer whole on at least one line (the other may lose it
    or drop it whole), lines a few cycles apart: the stream is the feed, exactly once."""
    rng = random.Random(seed)
    where = f"seed={seed}"
    msgs = _random_messages(rng, rng.randint(40, 200))
    pkts = _packetize(rng, msgs)
    skew = rng.randint(-4, 4)
    la: list[LineFrame] = []
    lb: list[LineFrame] = []
    slot = 10
    both = 0
    for seq, group in pkts:
        fa, fb = frame(mold(seq, group)), frame(mold(seq, group), ip=IP_B)
        fate = rng.choice(["both", "both", "a_only", "b_only"])
        broken = rng.choice(["lost", "runt", "csum"])  # how the losing line loses it
        for line, f, keep in ((la, fa, fate != "b_only"), (lb, fb, fate != "a_only")):
            start = slot + (skew if line is lb else 0)
            if keep:
                line.append(LineFrame(f, start))
            elif broken == "runt":
                line.append(LineFrame(f[:rng.randint(1, H - 1)], start))
            elif broken == "csum":
                ttl = ETH.length + IPV4["ttl"].offset
                line.append(LineFrame(put(f, ttl, 1, f[ttl] ^ 1), start))
        both += len(group) if fate == "both" else 0
        slot += (max(len(fa), len(fb)) + 7) // 8 + rng.choice([0, 0, 2])
    res = IngressModel(FILTERS).run(la, lb)
    assert [(d.seq, d.data) for d in res.delivered] == list(enumerate(msgs, 1)), where
    c = res.counters
    assert (c["gaps"], c["invalidations"], c["duplicates"]) == (0, 0, both), where
    _check_totals(res, where)


@pytest.mark.parametrize("seed", SEEDS[:4], ids=lambda s: f"seed={s}")
def test_random_good_frames_agree_with_the_feed_parser(seed):
    """parse_frame against an independent decoder (sim.feed.frames + proto.moldudp64)."""
    rng = random.Random(seed)
    for _ in range(200):
        msgs = _random_messages(rng, rng.randint(0, 12))
        seq = rng.randrange(1 << 56)
        count = len(msgs) if msgs else rng.choice([0, 0xFFFF])
        session = "".join(rng.choices(string.ascii_uppercase + string.digits, k=10))
        f = frame(mold(seq, msgs, count=count, session=session.encode()),
                  vlan=rng.choice([None, 7]), ip_options=bytes(4 * rng.randint(0, 10)))
        f += bytes(rng.choice([0, 0, rng.randint(1, 30)]))
        r = parse(f)
        u = parse_udp_frame(f)
        u_session, q, n, want = moldudp64.unpack_packet(u.payload)
        assert r.good, f"seed={seed}: {r.reason}"
        assert (r.header.seq, r.header.count) == (q, n), f"seed={seed}"
        assert r.header.session == session.encode() and u_session == session, f"seed={seed}"
        assert [m.data for m in r.messages] == want, f"seed={seed}"
        assert [m.seq for m in r.messages] == [q + i for i in range(len(want))]


def test_fifo_peak_counts_waiting_entries():
    # Control items from both lines every cycle: A's go first, B's wait and pile up.
    a = [(c, hdr(1, 0, end=True)) for c in range(1, 5)]
    b = [(c, hdr(1, 0, end=True)) for c in range(1, 5)]
    s = run(a, b)
    assert s.fifo_peak == [1, 4] and s.counters["heartbeats"] == 8


def test_fifo_peak_at_line_rate_with_aligned_lines():
    # Back-to-back 12-byte messages, identical and aligned on both lines: equal heads are
    # popped together in the cycle they arrive, the end markers (A's, then B's) are 8 beats
    # away from the next header, so no entry ever waits behind another.
    pkts = [mold(1 + 100 * i, [raw(12, "S", k) for k in range(100)]) for i in range(5)]
    res = IngressModel(FILTERS).run(back_to_back(frame(p) for p in pkts),
                                    back_to_back(frame(p, ip=IP_B) for p in pkts))
    assert res.counters["messages"] == 500 and res.counters["duplicates"] == 500
    assert res.fifo_peak == (1, 1)


def test_mac_error_frame_with_a_corrupted_sequence_number():
    """tuser flags a frame whose header bytes were hit: the header and the messages before
    the tlast beat leave before the verdict, and the jump is a GAP. The rollback returns to
    where the stream stood before the frame (3), not to the corrupted first number, so the
    next good packet is delivered, not counted as duplicates."""
    bad_seq = 3 + (1 << 40)
    f1 = frame(mold(1, [S12, S12]))          # 90 bytes: cycles 0..11
    f2 = frame(mold(bad_seq, [S12, S12]))    # cycles 12..23; message 1 leaves (beat 9)
    f3 = frame(mold(3, [S12]))
    res = IngressModel(FILTERS).run_single([f1, f2, f3], mac_errors={1})
    assert [d.seq for d in res.delivered] == [1, 2, bad_seq, 3]
    inval = [x for x in res.stream if isinstance(x, Invalidation)]
    assert inval == [Invalidation(A, bad_seq, bad_seq, True, 24, 3)]
    c = res.counters
    assert (c["gaps"], c["gap_messages"], c["duplicates"]) == (1, 1 << 40, 0)
