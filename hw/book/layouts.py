"""Payload layouts of the book (one definition each; sizes follow :class:`BookParams`)."""

import enum

from amaranth.lib import data

from hw.book.params import REF_BITS, BookParams


class OpKind(enum.IntEnum):
    """What one queued book operation does (docs/book.md, section 3)."""

    NONE = 0      # only the marker flags (gap, invalidate, overflow) matter
    ADD = 1       # A, F
    EXEC = 2      # E
    EXEC_PX = 3   # C
    CANCEL = 4    # X
    DELETE = 5    # D
    REPLACE = 6   # U
    TRADE = 7     # P, Q
    COMMAND = 8   # a host command (subscribe, unsubscribe, reset), in order with the feed


OP_KIND_BITS = 4


def slot_bits(p: BookParams) -> int:
    return max(1, (p.slots - 1).bit_length())


def op_layout(p: BookParams) -> data.StructLayout:
    """One entry of the op FIFO: a book message reduced to what the engine needs."""
    return data.StructLayout({
        "kind": OP_KIND_BITS,
        "gap": 1, "invalidate": 1, "overflow": 1,   # markers, applied before the op
        "cmd": 3,            # COMMAND: bit 0 subscribe, 1 unsubscribe, 2 reset
        "seq": 64,
        "time": 48,
        "slot": slot_bits(p),
        "ref": 64,           # order reference (U: the original)
        "ref2": 64,          # U: the new reference
        "side": 1,           # 1 = sell (ask)
        "shares": 64,        # Q carries 8 bytes; the others 4
        "price": 32,
        "match": 64,
        "printable": 1,
        "type": 8,           # the ITCH type code, for TRADE events
    })


def entry_layout(p: BookParams) -> data.StructLayout:
    """One order table entry. The tag and the set together are the reference."""
    return data.StructLayout({
        "valid": 1,
        "tag": REF_BITS - p.set_bits,
        "slot": slot_bits(p),
        "side": 1,
        "inwin": 1,          # held in the levels (price inside the slot's window)
        "idx": (p.window - 1).bit_length(),
        "price": 32,
        "shares": 32,
    })


#: One side of a slot's best: what the BBO event reports, plus the level it sits on.
def best_layout(p: BookParams) -> data.StructLayout:
    return data.StructLayout({
        "valid": 1, "idx": (p.window - 1).bit_length(), "px": 32, "sz": 32,
    })


def slot_state_layout(p: BookParams) -> data.StructLayout:
    """Per-slot state kept in block RAM: occupancy summaries, and the best and next level of
    each side.

    ``nxt`` is the first non-empty level behind ``best`` (``valid`` 0: there is none). It is
    kept so that the step that empties the best level can publish the next one at once; the
    engine finds the level behind *that* one afterwards, off the event's path, while
    ``nxt_stale`` says it is not known yet (docs/book.md, section 5). All zero is a
    consistent empty side, which is what a clear writes.
    """
    return data.StructLayout({
        "summary": data.ArrayLayout(p.words, 2),
        "best": data.ArrayLayout(best_layout(p), 2),
        "nxt": data.ArrayLayout(best_layout(p), 2),
        "nxt_stale": data.ArrayLayout(1, 2),
    })


#: Per-slot trade statistics (block RAM).
TradeStats = data.StructLayout({"last_px": 32, "last_sz": 32, "volume": 64, "notional": 64})
