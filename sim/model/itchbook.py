"""itch-book (PyPI), an independent C++ ITCH 5.0 book builder, as a reference for BBO changes.

Nobody on this project wrote it, which is the point: the reference model, the gateware and the
CLI's ``--bbo-out`` are all compared with what it reports for the same day.

Its ``seq`` counts only the messages it decoded (it skips unknown types and bad lengths), so it
equals the 1-based index of the message in the day only on days without those — true of
:func:`sim.feed.synth.generate_day`. It also reports changes of the order count alone; the rows
here keep only changes of (bid_px, bid_sz, ask_px, ask_sz), as ``--bbo-out`` does.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable

import numpy as np
from itch_book._core import Session

BBORow = tuple[int, str, int, int, int, int]


def bbo_changes(day: Iterable[bytes], symbols: list[str], *,
                chunk: int = 100_000) -> tuple[list[BBORow], float]:
    """(rows, seconds spent inside itch-book) for ``symbols`` over ``day``."""
    session = Session(tables=["bbo"], depth=0, symbols=symbols)
    names: dict[int, str] = {}
    parts = []
    seconds = 0.0
    buf: list[bytes] = []

    def flush() -> None:
        nonlocal seconds
        wire = b"".join(buf)
        buf.clear()
        t0 = time.perf_counter()
        session.feed(wire)
        parts.append(session.take_bbo())
        seconds += time.perf_counter() - t0

    pack = struct.Struct(">H").pack
    for msg in day:
        if msg[:1] == b"R":
            names[int.from_bytes(msg[1:3], "big")] = msg[11:19].decode("ascii").rstrip()
        buf.append(pack(len(msg)) + msg)
        if len(buf) >= chunk:
            flush()
    flush()
    cols = ("seq", "locate", "bid_px", "bid_sz", "ask_px", "ask_sz")
    data = [np.concatenate([p[c] for p in parts]).tolist() for c in cols]
    rows: list[BBORow] = []
    last: dict[int, tuple] = {}
    for seq, loc, *q in zip(*data, strict=True):
        q = tuple(q)
        if last.get(loc, (0, 0, 0, 0)) != q:
            last[loc] = q
            rows.append((seq, names[loc], *q))
    return rows, seconds
