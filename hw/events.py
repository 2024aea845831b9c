"""Event records: the one definition shared by the gateware and the host.

Every event the card sends to the host on the C2H stream is one fixed-size 64-byte record
(one cache line, one beat of the 512-bit C2H stream). The record is a 16-byte header —
sequence number, kind, line, a 16-bit ``aux`` word, hardware timestamp — and a 48-byte
body whose meaning depends on the kind.

The same field list produces:

* :data:`RECORD` — an Amaranth :class:`~amaranth.lib.data.StructLayout` (fields packed LSB
  first, so byte 0 of the C2H beat is the low byte of ``seq``), and
* :func:`numpy_dtype` — a little-endian NumPy structured dtype that views the DMA ring
  directly; :func:`body_dtype` views the body of one kind.

The event sequence number counts every event the card *generated*, including events it had
to drop because the host ring was full, so loss is always visible as a hole.
"""

from __future__ import annotations

import enum

import numpy as np
from amaranth.lib import data

RECORD_BYTES = 64
HEADER_BYTES = 16
BODY_BYTES = RECORD_BYTES - HEADER_BYTES


class EventKind(enum.IntEnum):
    """What an event record reports. The value is the ``kind`` byte of the record."""

    #: A forward jump in MoldUDP64 sequence numbers (messages lost on every line).
    GAP = 1
    #: Messages delivered from a frame that was found bad afterwards; do not trust them.
    #: ``aux`` is the frame's :class:`~hw.ingress.reasons.DropReason`; ``next_seq`` is where
    #: the sequencer stands afterwards (rolled back, or not when more was delivered since).
    INVALIDATE = 2
    #: The card locked onto a MoldUDP64 session (first packet after a sequence reset).
    SESSION = 3
    #: End-of-session packet received.
    END_OF_SESSION = 4
    #: A frame was dropped; ``aux`` is the :class:`~hw.ingress.reasons.DropReason`.
    FRAME_DROP = 5
    #: Tap of a delivered message (off by default; for debugging and tests). ``aux`` is the
    #: message length; the body has its sequence number and first 40 bytes.
    MESSAGE = 6
    #: The best bid or offer of a subscribed slot changed (docs/book.md §4); ``aux`` = slot.
    BBO = 7
    #: A trade on a subscribed slot (E, printable C, P, Q); ``aux`` = slot.
    TRADE = 8
    #: A book limit was hit or the feed lost messages: the slot (or every slot, ``slot`` =
    #: 0xFF) is stale. ``aux`` is the :class:`~hw.book.params.AlertReason`.
    BOOK_ALERT = 9
    #: The risk gate's verdict on an order (docs/risk.md): one per order presented, accepted
    #: or rejected. ``aux`` is the :class:`~hw.risk.params.Reason` (0 accepted).
    VERDICT = 10
    #: An accepted order the order-entry return path could not track (its table entry was
    #: taken): its exposure stays counted in the gate. ``aux`` = slot.
    OE_ALERT = 11


# Field specs: (name, numpy type code) — "u8".."u64", or "S<n>" for n raw bytes.
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("seq", "u4"), ("kind", "u1"), ("line", "u1"), ("aux", "u2"), ("timestamp", "u8"),
)

BODY_FIELDS: dict[EventKind, tuple[tuple[str, str], ...]] = {
    EventKind.GAP: (
        ("expected", "u8"), ("received", "u8"), ("missing", "u8"),
        ("line_a_next", "u8"), ("line_b_next", "u8"), ("line_a_frames", "u4"),
        ("line_b_frames", "u4"),
    ),
    EventKind.INVALIDATE: (
        ("first", "u8"), ("last", "u8"), ("next_seq", "u8"), ("count", "u4"),
        ("rolled_back", "u1"),
    ),
    EventKind.SESSION: (("next_seq", "u8"), ("session", "S10")),
    EventKind.END_OF_SESSION: (("next_seq", "u8"), ("session", "S10")),
    EventKind.FRAME_DROP: (("frame_index", "u8"), ("frame_bytes", "u2")),
    EventKind.MESSAGE: (("msg_seq", "u8"), ("data", "S40")),
    EventKind.BBO: (
        ("itch_seq", "u8"), ("bid_px", "u4"), ("bid_sz", "u4"), ("ask_px", "u4"),
        ("ask_sz", "u4"), ("itch_time", "u8"), ("locate", "u2"), ("flags", "u1"),
        ("symbol", "S8"),
    ),
    EventKind.TRADE: (
        ("itch_seq", "u8"), ("price", "u4"), ("shares", "u4"), ("volume", "u8"),
        ("notional", "u8"), ("match", "u8"), ("locate", "u2"), ("type", "u1"),
    ),
    EventKind.BOOK_ALERT: (
        ("itch_seq", "u8"), ("slot", "u1"), ("locate", "u2"), ("order_ref", "u8"),
        ("price", "u4"),
    ),
    EventKind.VERDICT: (
        ("token", "u8"), ("shares", "u4"), ("price", "u4"), ("tif", "u4"), ("slot", "u1"),
        ("side", "u1"), ("source", "u1"), ("order_kind", "u1"),
    ),
    EventKind.OE_ALERT: (("token", "u8"), ("source", "u1"), ("side", "u1"), ("shares", "u4")),
}

#: ``flags`` bits of a BBO event.
BBO_STALE = 1

LINE_NONE = 0xFF  # ``line`` of events that belong to no network line


def _bits(code: str) -> int:
    return (int(code[1:]) * 8)


def _amaranth_layout(fields) -> data.StructLayout:
    return data.StructLayout({name: _bits(code) for name, code in fields})


def _check_body(kind: EventKind, fields) -> None:
    size = sum(_bits(c) for _, c in fields) // 8
    if size > BODY_BYTES:
        raise ValueError(f"event body {kind.name} is {size} bytes, more than {BODY_BYTES}")


for _k, _f in BODY_FIELDS.items():
    _check_body(_k, _f)

HEADER = _amaranth_layout(HEADER_FIELDS)
assert HEADER.size == HEADER_BYTES * 8

#: The body as a union of the per-kind layouts (each padded to the full body).
BODY = data.UnionLayout({
    kind.name.lower(): _amaranth_layout(fields) for kind, fields in BODY_FIELDS.items()
} | {"raw": BODY_BYTES * 8})

RECORD = data.StructLayout({"header": HEADER, "body": BODY})
assert RECORD.size == RECORD_BYTES * 8


def numpy_dtype() -> np.dtype:
    """The record as NumPy sees it in host memory: header fields, then 48 body bytes."""
    return np.dtype([(n, "<" + c if c[0] == "u" else c) for n, c in HEADER_FIELDS]
                    + [("body", f"V{BODY_BYTES}")])


def body_dtype(kind: EventKind) -> np.dtype:
    """Dtype of the body of ``kind``, padded to :data:`BODY_BYTES` (``view`` it on ``body``)."""
    fields = BODY_FIELDS[kind]
    names = [n for n, _ in fields]
    formats = ["<" + c if c[0] == "u" else c for _, c in fields]
    offsets, off = [], 0
    for _, c in fields:
        offsets.append(off)
        off += _bits(c) // 8
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": BODY_BYTES})


def decode(records: np.ndarray) -> list[dict]:
    """Decode records (``numpy_dtype()``) into dicts; for tools, tests and the CLI."""
    out = []
    for r in records:
        d = {n: int(r[n]) for n, _ in HEADER_FIELDS}
        try:
            kind = EventKind(d["kind"])
        except ValueError:
            d["kind_name"] = f"unknown({d['kind']})"
            out.append(d)
            continue
        d["kind_name"] = kind.name
        body = np.frombuffer(r["body"].tobytes(), dtype=body_dtype(kind))[0]
        for n, c in BODY_FIELDS[kind]:
            v = body[n]
            d[n] = bytes(v) if c[0] == "S" else int(v)
        out.append(d)
    return out


#: What a block hands the event collector: a record without ``seq`` and ``timestamp``, which the
#: collector adds (the timestamp when the event is raised, the sequence number when it is sent).
SOURCE = data.StructLayout({"kind": 8, "line": 8, "aux": 16, "body": BODY})


def body_bits(*kinds: EventKind) -> int:
    """Bits of the body that events of ``kinds`` use: the widest one's fields (LSB first)."""
    return max(sum(_bits(c) for _, c in BODY_FIELDS[k]) for k in kinds)


def source_signature():
    """One event per cycle at most, no backpressure: sources never wait for the host."""
    from amaranth.lib import stream
    return stream.Signature(SOURCE, always_ready=True)
