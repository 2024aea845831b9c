"""The whole core on the simulated card (Verilator harness) against the reference model.

Two redundant lines carry the same packets; each line independently loses, damages or keeps
each copy, with a small skew between the lines. The core's event records — every delivered
message (MESSAGE tap), GAP, INVALIDATE, SESSION, END_OF_SESSION and FRAME_DROP, each with its
hardware timestamp — and every counter must equal what the model predicts for the frames as
they were actually driven (start cycles read back from the harness).

On top of equality with the model, the bad-input run checks the contract directly:
* no message of a bad frame is delivered after the cycle its frame became known bad,
* every delivered message of a bad frame is named by an INVALIDATE event of its line,
* the core never stops accepting: good packets after the damage are all delivered.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import numpy as np
import pytest

from hw.events import BODY_FIELDS, EventKind, decode
from hw.ingress.reasons import MAX_FRAME, DropReason
from hw.regmap import COUNTER_BITS
from sim.feed.frames import FeedAddress
from sim.model.ingress import (
    IngressModel,
    Invalidation,
    ItemKind,
    LineFrame,
    beat_of,
    frame_items,
)
from tests.ingress_frames import (
    FEED_IP,
    FEED_PORT,
    FILTERS,
    MUTATIONS,
    FrameSpec,
    mutate,
    random_message,
)

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
FEED = FeedAddress("233.54.12.1", FEED_PORT)
assert FEED.ip == FEED_IP


def make_feed(rng: random.Random, packets: int, *, p_lost: float, p_bad: float,
              skew: int, first_seq: int = 1):
    """Frames of both lines: (data, mac_error, not_before) lists, one per line.

    The first packet is clean on both lines (the lock it takes is a real one), and damage
    spares the MoldUDP64 sequence number (see ``mutate``), so long runs stay informative."""
    lines: list[list[tuple[bytes, bool, int]]] = [[], []]
    seq, slot = first_seq, 20
    for _ in range(packets):
        msgs = [random_message(rng) for _ in range(rng.randint(1, 8))]
        # The packet's time slot comes from its clean length, whatever each line does to it.
        clean_beats = (len(FrameSpec(seq=seq, messages=msgs).build()) + 7) // 8
        for line in (0, 1):
            fate = rng.random()
            if fate < p_lost:
                continue
            spec = FrameSpec(seq=seq, messages=list(msgs))
            mac_error, data = False, None
            if fate < p_lost + p_bad and seq != first_seq:
                mac_error, data = mutate(spec, rng, rng.choice(MUTATIONS), spare_sequence=True)
            if data is None:
                data = spec.build()
            start = slot + (skew if line == 1 else 0) + rng.choice((0, 0, 0, 1, 5))
            lines[line].append((data, mac_error, max(start, 0)))
        seq += len(msgs)
        slot += clean_beats + rng.choice((0, 0, 1, 3, 20))
    return lines, seq


def drive(card, lines, tail=None):
    """Drive both lines; with ``tail``, then a sequence reset (the host's recovery) and the
    tail's frames. Returns decoded events, the frames as driven, counters, unlock cycles."""
    sim = card.backend
    h = sim.harness
    card.set_feeds([FEED])
    card.set_events(EventKind)
    card.clear_counters()
    card.seq_reset()
    unlocks = []
    for phase, batch in enumerate((lines, tail)):
        if batch is None:
            continue
        if phase:
            card.seq_reset()
            unlocks.append(h.cycle)   # the strobe has acted by now; both lines are idle
        base = h.cycle + 16
        for line in (0, 1):
            if batch[line]:
                sim.send(line, [d for d, _, _ in batch[line]],
                         not_before=np.array([base + s for _, _, s in batch[line]]),
                         error=np.array([e for _, e, _ in batch[line]]))
        h.run()
    records, _ = h.records_with_cycles()
    frames = []
    for line in (0, 1):
        sent = lines[line] + (tail[line] if tail else [])
        starts = h.frame_start_cycles(line)
        frames.append([LineFrame(d, int(st), e)
                       for (d, e, _), st in zip(sent, starts, strict=True)])
    return decode(records), frames, card.counters(), unlocks


def compare(events, frames, counters, where, unlocks=()):
    """Equality with the model: deliveries, sequencer events, drops, counters."""
    res = IngressModel(FILTERS).run(frames[0], frames[1], unlocks=unlocks)
    by_kind: dict[str, list[dict]] = {}
    for e in events:
        by_kind.setdefault(e["kind_name"], []).append(e)

    # Messages: the tap names each delivery, one cycle after the sequencer's decision.
    got = [(t["timestamp"], t["line"], t["msg_seq"], t["aux"], t["data"].ljust(40, b"\0"))
           for t in by_kind.get("MESSAGE", [])]
    want = [(d.cycle + 1, int(d.line), d.seq, len(d.data), d.data[:40].ljust(40, b"\0"))
            for d in res.delivered]
    assert len(got) == len(want), f"{len(got)} delivered, model {len(want)} {where}"
    for g, w in zip(got, want, strict=True):
        assert g == w, f"delivery {g[:4]} != model {w[:4]} {where}"

    # Sequencer events, raised one cycle after the sequencer's decision.
    for kind in (EventKind.GAP, EventKind.INVALIDATE, EventKind.SESSION,
                 EventKind.END_OF_SESSION):
        names = [n for n, _ in BODY_FIELDS[kind]]
        g = [(e["timestamp"], e["line"], *(e[n] for n in names))
             for e in by_kind.get(kind.name, [])]
        w = [(ev.cycle + 1, int(ev.line), *(ev.fields[n] for n in names))
             for ev in res.events if ev.kind is kind]
        assert sorted(g) == sorted(w), f"{kind.name}: {g[:3]} vs model {w[:3]} {where}"

    # Frame drops: reason in aux, raised two cycles after tlast (the verdict reads registered
    # check bits, which settle a cycle after the last capture).
    drops = [(e["timestamp"], e["line"], e["aux"], e["frame_index"], e["frame_bytes"])
             for e in by_kind.get("FRAME_DROP", [])]
    want_drops = [(d.end_cycle + 2, int(d.line), int(d.reason), d.index,
                   min(d.frame_bytes, MAX_FRAME + 1)) for d in res.drops]
    assert sorted(drops) == sorted(want_drops), f"drops differ {where}"

    # Counters, every one the model keeps; no event lost; event numbers without holes.
    # The card's counters are 48 bits: a corrupt sequence number can claim a gap of 2**57.
    for name, value in res.counters.items():
        assert counters[name] == value % (1 << COUNTER_BITS), \
            f"counter {name}: {counters[name]} != {value} {where}"
    assert counters["events"] == len(events) and counters["events_lost"] == 0, where
    seqs = sorted(e["seq"] for e in events)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), where
    return res


@pytest.mark.parametrize("skew", [0, 3, -6])
def test_two_lines_with_loss_against_model(card, skew):
    rng = random.Random(SEED + skew)
    where = f"(seed {SEED}, skew {skew}; rerun with WIRESPEED_SEED={SEED})"
    lines, _ = make_feed(rng, 300, p_lost=0.1, p_bad=0.0, skew=skew)
    events, frames, counters, _ = drive(card, lines)
    compare(events, frames, counters, where)
    assert counters["line_b_won"] > 0 and counters["messages"] > 0, where


def test_ten_thousand_mutated_frames(card):
    """>= 10,000 frames, most of them damaged in one of the ways tests/ingress_frames.py
    knows, on both lines: equal to the model, and the contract holds on the output."""
    rng = random.Random(SEED)
    where = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
    lines, next_seq = make_feed(rng, 5400, p_lost=0.05, p_bad=0.6, skew=rng.randint(-4, 4))
    assert len(lines[0]) + len(lines[1]) >= 10_000
    # Then the host's recovery (sequence reset) and a clean tail, which must arrive in full:
    # damage never wedges the core. (A flipped sequence number in an otherwise valid frame
    # is a legal forward jump the card must follow, so the reset is part of the story.)
    tail, tail_end = make_feed(rng, 40, p_lost=0.0, p_bad=0.0, skew=0, first_seq=next_seq)
    events, frames, counters, unlocks = drive(card, lines, tail)
    res = compare(events, frames, counters, where, unlocks)

    # The contract on the output (equal to the model's, so checked on the model's records,
    # which also know the frame each delivery came from).
    invs = [v for v in res.stream if isinstance(v, Invalidation)]
    bad = 0
    for line in (0, 1):
        for i, (f, r) in enumerate(zip(frames[line], res.frames[line], strict=True)):
            if r.dropped_whole or r.cutoff is None:
                continue
            bad += 1
            known_bad = f.start + beat_of(r.cutoff) + 1
            for d in res.delivered:
                if int(d.line) != line or d.frame != i:
                    continue
                assert d.cycle < known_bad, f"{d.seq} left after its frame went bad {where}"
                assert any(int(v.line) == line and v.first <= d.seq <= v.last
                           and v.cycle > d.cycle for v in invs), \
                    f"{d.seq} of bad frame {line}/{i} never invalidated {where}"
    assert bad > 1000, where
    # After the damage, the clean tail is delivered in full.
    assert set(range(next_seq, tail_end)) <= {d.seq for d in res.delivered}, where
    kinds = Counter(e["kind_name"] for e in events)
    assert kinds["FRAME_DROP"] > 1000 and kinds["INVALIDATE"] > 10, (kinds, where)


@pytest.mark.parametrize("count", [0, 0xFFFF], ids=["heartbeat", "end_of_session"])
def test_lock_taken_by_a_header_with_its_end_marker_is_final(card, count):
    """The lock a bare heartbeat (or end-of-session) packet takes is settled by its own end
    marker, which rides on the header entry (docs/ingress.md, section 4: the header, then the
    end marker): a later bad frame on the line must not give the lock back. Found by the
    cocotb bench (WIRESPEED_SEED=287090064): line A frame 1, a 94-byte heartbeat with
    sequence 3, locked; frame 2 (sequence 3, count 3, first length field 11: MSG_LENGTH)
    ended bad and the core unlocked, so frame 3 (sequence 6) locked again instead of being a
    gap. Frames back to back, no idle cycle: the bench's idle cycles had nothing to do with it."""
    rng = random.Random(287090064)
    lock = FrameSpec(seq=3, messages=[], count=count, ip_options=bytes([1]) * 32)
    bad = FrameSpec(seq=3, messages=[random_message(rng) for _ in range(3)], vlan=0x175)
    bad.damage.append(("msglen", (bad.first_length_field(), 11)))
    good = FrameSpec(seq=6, messages=[random_message(rng)], vlan=0x811,
                     ip_options=bytes([1]) * 40)
    lines = [[(spec.build(), False, 0) for spec in (lock, bad, good)], []]
    events, frames, counters, _ = drive(card, lines)
    res = compare(events, frames, counters, f"(lock frame count {count:#x})")
    # What the contract says, spelled out (compare() checked the core against the model):
    items = frame_items(res.frames[0][0])
    assert [(i.kind, i.end) for i in items] == [(ItemKind.HEADER, True)], items
    assert res.frames[0][1].reason is DropReason.MSG_LENGTH
    sessions = [e for e in events if e["kind_name"] == "SESSION"]
    assert [s["next_seq"] for s in sessions] == [3], sessions
    gaps = [(e["expected"], e["received"], e["missing"]) for e in events
            if e["kind_name"] == "GAP"]
    assert gaps == [(3, 6, 3)], gaps
    assert [d.seq for d in res.delivered] == [6]


@pytest.mark.parametrize("per_frame", [1, 103])
@pytest.mark.parametrize("skew", [0, 7, -40])
def test_line_rate_fifo_bound(card, per_frame, skew):
    """100% duty on both lines (a beat every cycle, frames back to back), worst-case traffic:
    minimum frames (a control item every few beats) or full frames of the shortest message.
    Every beat is accepted, nothing is dropped, every message is delivered once, and the
    entry FIFOs stay within a small bound — the proof that their depth suffices."""
    from tools.bench.bench_ingress import _frames
    frames, n_msgs = _frames(per_frame, 60_000)
    sim = card.backend
    h = sim.harness
    card.set_feeds([FEED])
    base = h.cycle + 50
    sim.send(0, frames, not_before=np.full(len(frames), base + max(0, -skew)))
    sim.send(1, frames, not_before=np.full(len(frames), base + max(0, skew)))
    h.run()
    for line in (0, 1):
        starts = h.frame_start_cycles(line)
        beats = np.array([(len(f) + 7) // 8 for f in frames])
        assert (np.diff(starts) == beats[:-1]).all()       # back to back: 1 beat per cycle
    c = card.counters()
    assert c["frames_dropped"] == 0 and c["gaps"] == 0 and c["events_lost"] == 0
    assert c["messages"] == n_msgs and c["duplicates"] == n_msgs
    peak = max(card.regs.read("fifo_a_max"), card.regs.read("fifo_b_max"))
    assert peak <= 4 < card.identity.fifo_depth, peak
