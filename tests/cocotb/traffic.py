"""Traffic for the whole-core bench: one faulty line, or one feed on two redundant lines.

The frames come from :mod:`tests.ingress_frames` (the generator the parser and model tests use),
so every fault class of docs/ingress.md reaches the core. What the core must make of them is
the reference model's business; this module only decides what goes on which wire and when.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hw.ingress.reasons import MAX_FRAME
from proto import moldudp64
from sim.model.ingress import BEAT_BYTES, Line
from tests.ingress_frames import MUTATIONS, FrameSpec, random_frame, random_message


@dataclass(frozen=True)
class Wire:
    """A frame as the MAC hands it over: bytes (no FCS) and ``tuser`` on the ``tlast`` beat."""

    data: bytes
    mac_error: bool = False

    @property
    def beats(self) -> int:
        return -(-len(self.data) // BEAT_BYTES)


@dataclass(frozen=True)
class Planned:
    """A frame with the cycle (from the start of traffic) at which its first beat should be on
    the bus. The bench records when it really was; the plan only shapes the race."""

    wire: Wire
    at: int


def oversize_frame(rng: random.Random, seq: int) -> Wire:
    """A well-formed packet with enough messages to run past ``MAX_FRAME`` bytes: the frame
    is ``OVERSIZE``, and nothing after byte 9216 may leave the core."""
    messages: list[bytes] = []
    while sum(2 + len(m) for m in messages) <= MAX_FRAME:
        messages.append(random_message(rng))
    return Wire(FrameSpec(seq=seq, messages=messages).build())


def faulty_line(rng: random.Random, n_frames: int) -> list[Wire]:
    """Random good and malformed frames for one line, sequence numbers following on (a good
    frame's messages continue where the previous one stopped), one jumbo ``OVERSIZE`` frame
    somewhere among them."""
    frames, seq = [], 1
    jumbo_at = rng.randrange(n_frames)
    for i in range(n_frames):
        if i == jumbo_at:
            frames.append(oversize_frame(rng, seq))
            continue
        data, mac_error, _spec, n = random_frame(rng, seq)
        frames.append(Wire(data, mac_error))
        seq += n
    return frames


#: What happens to one line's copy of a packet in :func:`redundant_feed` (relative weights).
FATES = {"good": 70, "lost": 8, "mac_error": 6, "damaged": 16}


def redundant_feed(rng: random.Random, n_packets: int) -> tuple[list[Planned], list[Planned]]:
    """One MoldUDP64 feed sent on lines A and B, the way two exchange networks deliver it.

    Each packet goes out on both lines, B ``skew`` cycles after A (the skew drifts, changes
    sign, and is often zero so that equal heads meet in the sequencer). Each line's copy
    independently arrives intact, is lost, arrives with ``tuser`` set, or is replaced by a
    damaged frame (any :data:`~tests.ingress_frames.MUTATIONS` but ``none``) that carries the
    same sequence number. Heartbeats appear between packets, sometimes the feed skips numbers
    on both lines (a real gap), and an end-of-session packet closes it. The lines may use
    different encapsulations (802.1Q tag, IPv4 options), so the same message completes in
    different beats on A and B. Frames follow each other back to back or with a few idle
    cycles.
    """
    encaps = [{"vlan": rng.choice([None, rng.randrange(4096)]),
               "ip_options": bytes(4 * rng.choice([0, 0, rng.randint(1, 10)]))}
              for _ in Line]
    lines: tuple[list[Planned], list[Planned]] = ([], [])
    seq, slot, skew = 1, 0, rng.randint(-4, 4)
    mutations = [m for m in MUTATIONS if m != "none"]
    for k in range(n_packets + 1):
        last = k == n_packets
        if last:
            messages, count = [], moldudp64.END_OF_SESSION_COUNT
        elif rng.random() < 0.06:
            messages, count = [], moldudp64.HEARTBEAT_COUNT
        else:
            messages, count = [random_message(rng) for _ in range(rng.randint(1, 6))], None
            if rng.random() < 0.03:
                seq += rng.randint(1, 5)          # lost upstream of both lines
        if rng.random() < 0.1:
            skew = rng.choice([0, rng.randint(-8, 8)])
        longest = 0
        for line in Line:
            spec = FrameSpec(seq=seq, messages=messages, count=count, **encaps[line])
            fate = "good" if last else rng.choices(list(FATES), list(FATES.values()))[0]
            if fate == "lost":
                continue
            if fate == "damaged":
                data, mac_error, _spec, _n = random_frame(rng, seq,
                                                          mutation=rng.choice(mutations))
                wire = Wire(data, mac_error)
            else:
                wire = Wire(spec.build(), fate == "mac_error")
            at = slot + max(0, skew if line is Line.B else -skew)
            lines[line].append(Planned(wire, at))
            longest = max(longest, wire.beats)
        slot += longest + abs(skew) + rng.choice([0, 0, 0, 1, 2, 7])
        seq += len(messages)
    return lines
