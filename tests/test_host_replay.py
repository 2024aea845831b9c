"""host.replay's RxIndex: where each message's last byte was on RX, over two lines.

The index is checked against an independent count of bytes: a MoldUDP64 packet's message *k*
ends at the Ethernet/IPv4/UDP headers, the 20-byte Mold header and the 2-byte length
prefixes and bodies of messages 0..k; the beat is that byte's position // 8. Line B's copy
counts only when it ends earlier than A's; a frame not started yet (-1) or a message no line
carried is left out.
"""

from __future__ import annotations

import os
import random

import numpy as np

from host.replay import DEFAULT_FEED, RxIndex
from sim.feed.pcap import dayfile_to_frames
from sim.feed.synth import generate_day

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
FEED_HEADERS = 14 + 20 + 8      # Ethernet, IPv4 without options, UDP
MOLD_HEADER = 20


class FakeSim:
    """Frame start cycles per line, as the harness reports them."""

    def __init__(self, starts: list[np.ndarray]):
        self.starts = starts

    def frame_start_cycles(self, line: int) -> np.ndarray:
        return self.starts[line]


def _ends(frame: bytes) -> list[tuple[int, int]]:
    """(seq, frame position of the last byte) of each message in a MoldUDP64 frame."""
    mold = frame[FEED_HEADERS:]
    seq = int.from_bytes(mold[10:18], "big")
    count = int.from_bytes(mold[18:20], "big")
    out, at = [], FEED_HEADERS + MOLD_HEADER
    for k in range(0 if count == 0xFFFF else count):
        n = int.from_bytes(frame[at:at + 2], "big")
        at += 2 + n
        out.append((seq + k, at - 1))
    return out


def test_rx_index_earliest_line_and_gaps() -> None:
    rng = random.Random(SEED)
    day = list(generate_day(3_000, seed=rng.randrange(1 << 30)))
    frames = [f.data for f in dayfile_to_frames(iter(day), "RXINDEX001", DEFAULT_FEED)]
    # Line A has every frame; line B misses some, and starts each of the others at a random
    # offset from A's (earlier or later). Frame indices go on from an earlier replay's 5.
    b_keep = [i for i in range(len(frames)) if rng.random() > 0.2]
    a_start = np.cumsum([0] + [len(f) // 8 + 4 for f in frames[:-1]]) + 1_000
    b_start = np.array([a_start[i] + rng.randrange(-30, 30) for i in b_keep])
    a_start[-1] = -1                                   # A's last frame has not started yet
    idx = RxIndex([DEFAULT_FEED])
    idx.add(0, frames, range(5, 5 + len(frames)))
    idx.add(1, [frames[i] for i in b_keep], range(len(b_keep)))
    sim = FakeSim([np.concatenate([np.full(5, 77), a_start]), b_start])

    want: dict[int, int] = {}
    for line, starts, which in ((0, a_start, range(len(frames))), (1, b_start, b_keep)):
        for j, i in enumerate(which):
            st = int(starts[i] if line == 0 else starts[j])
            if st < 0:
                continue
            for seq, pos in _ends(frames[i]):
                want[seq] = min(want.get(seq, st + pos // 8), st + pos // 8)
    seqs = list(range(1, len(day) + 1)) + [len(day) + 10]     # and one no frame carries
    got = idx.last_byte_cycles(sim, seqs)
    assert got == want, WHERE
    assert len(day) + 10 not in got
    assert any(s in got for s, _ in _ends(frames[-1])) == (len(frames) - 1 in b_keep), WHERE
