"""Random ITCH message streams that stress a small book: collisions, walks, limits, faults.

Unlike the synthetic day (sim/feed/synth.py), which is realistic and clean, these streams are
hostile on purpose: references that collide in a tiny order table, prices at and past the
window's edges, adds onto live references, executions of unknown or retired orders, over-sized
executions, zero adds, huge sizes that saturate a level, references past 2**40, and messages for
symbols nobody subscribed to. Shared by the engine's unit test and the whole-core test.
"""

from __future__ import annotations

import random

from proto import itch

_DIR_DEFAULTS = dict(market_category=b"Q", financial_status=b"N", round_lot_size=100,
                     round_lots_only=b"N", issue_classification=b"C", issue_subtype=b"Z ",
                     authenticity=b"P", short_sale_threshold=b"N", ipo_flag=b" ",
                     luld_reference_price_tier=b"1", etp_flag=b"N", etp_leverage_factor=0,
                     inverse_indicator=b"N")


def directory(locate: int, name: str, ts: int = 1) -> bytes:
    return itch.encode("R", stock_locate=locate, tracking_number=0, timestamp=ts,
                       stock=name.encode().ljust(8), **_DIR_DEFAULTS)


def hostile_stream(rng: random.Random, n: int, *, symbols: dict[str, int],
                   others: dict[str, int], tick: int = 100, window: int = 64,
                   live_cap: int = 40) -> list[bytes]:
    """``n`` book messages (after a directory of ``symbols`` and ``others``: name -> locate).

    Prices stay mostly within ``window`` ticks of a per-symbol centre; ``live_cap`` bounds the
    live orders the stream keeps track of (so deletes find something)."""
    out = [directory(loc, name) for name, loc in {**symbols, **others}.items()]
    locs = list(symbols.values()) + list(others.values())
    centre = {loc: rng.randrange(50, 5000) * tick for loc in locs}
    live: dict[int, tuple[int, int]] = {}     # ref -> (locate, shares)
    retired: list[int] = []
    next_ref = rng.randrange(1, 1000)
    ts = 1000

    def hdr(loc: int) -> dict:
        return dict(stock_locate=loc, tracking_number=rng.randrange(8), timestamp=ts)

    def price(loc: int) -> int:
        r = rng.random()
        if r < 0.02:
            return centre[loc] + rng.choice((-1, 1)) * (window // 2 + rng.randrange(4)) * tick
        if r < 0.03:
            return centre[loc] + rng.randrange(1, tick)        # off the tick grid
        return centre[loc] + rng.randrange(-window // 4, window // 4) * tick

    # A prelude that reaches the rare corners in every stream, however short.
    loc0 = locs[0]
    c0 = centre[loc0]
    corner = [
        ("A", dict(order_ref=1 << 40, side=b"B", shares=10, price=c0)),          # ref range
        ("A", dict(order_ref=next_ref, side=b"B", shares=0, price=c0)),          # zero add
        ("A", dict(order_ref=next_ref + 1, side=b"S", shares=0xFFFF_FFF0,
                   price=c0 + tick)),
        ("A", dict(order_ref=next_ref + 2, side=b"S", shares=100, price=c0 + tick)),  # sat.
        ("A", dict(order_ref=next_ref + 2, side=b"B", shares=50, price=c0 - tick)),   # live
        ("E", dict(order_ref=next_ref + 2, executed_shares=80, match_number=1)),  # clamped
        ("D", dict(order_ref=next_ref + 2)),                                      # unknown
        ("A", dict(order_ref=next_ref + 3, side=b"B", shares=5,
                   price=c0 + window * tick)),                                    # window
        ("D", dict(order_ref=next_ref + 1)),
        ("D", dict(order_ref=next_ref + 3)),
    ]
    for code, fields in corner:
        if code == "A":
            fields |= {"stock": b"XXXX    "}
        out.append(itch.encode(code, stock_locate=loc0, tracking_number=0, timestamp=ts,
                               **fields))
    next_ref += 4

    for _ in range(n):
        ts += rng.randrange(1, 1000)
        r = rng.random()
        loc = rng.choice(locs)
        if r < 0.40 or not live:
            if rng.random() < 0.05 and live:
                ref = rng.choice(list(live))                   # add onto a live reference
            elif rng.random() < 0.01:
                ref = (1 << 40) + rng.randrange(1 << 20)       # past the reference limit
            else:
                ref = next_ref
                next_ref += rng.choice((1, 1, 1, 2, 37))
            shares = rng.choice((0, 1, 100, 250, rng.randrange(1, 100_000))) \
                if rng.random() < 0.1 else rng.randrange(1, 1000)
            if rng.random() < 0.005:
                shares = 0xFFFF_FFF0                           # saturates a level
            px = 0 if rng.random() < 0.01 else price(loc)
            code = "F" if rng.random() < 0.1 else "A"
            extra = {"attribution": b"GSCO"} if code == "F" else {}
            out.append(itch.encode(code, **hdr(loc), order_ref=ref,
                                   side=rng.choice((b"B", b"S")), shares=shares,
                                   stock=b"XXXX    ", price=px, **extra))
            if shares and px and ref < 1 << 40:
                live[ref] = (loc, shares)
                if len(live) > live_cap:
                    live.pop(next(iter(live)))
            continue
        ref = rng.choice(list(live)) if rng.random() > 0.05 or not retired \
            else rng.choice(retired)
        loc = live.get(ref, (loc, 0))[0]
        if rng.random() < 0.02:
            loc = rng.choice(locs)                              # a message's locate may lie
        left = live.get(ref, (loc, 0))[1]
        if r < 0.55:
            out.append(itch.encode("D", **hdr(loc), order_ref=ref))
            live.pop(ref, None)
            retired.append(ref)
        elif r < 0.65:
            k = rng.randrange(1, max(2, left + 2))
            out.append(itch.encode("E", **hdr(loc), order_ref=ref, executed_shares=k,
                                   match_number=rng.getrandbits(40)))
        elif r < 0.72:
            k = rng.randrange(1, max(2, left + 2))
            out.append(itch.encode("C", **hdr(loc), order_ref=ref, executed_shares=k,
                                   match_number=rng.getrandbits(40),
                                   printable=rng.choice((b"Y", b"N")),
                                   execution_price=price(loc)))
        elif r < 0.80:
            k = rng.randrange(1, max(2, left + 2))
            out.append(itch.encode("X", **hdr(loc), order_ref=ref, cancelled_shares=k))
        elif r < 0.92:
            new = next_ref if rng.random() > 0.03 else rng.choice(list(live))
            next_ref += 1
            shares = rng.randrange(0 if rng.random() < 0.02 else 1, 2000)
            out.append(itch.encode("U", **hdr(loc), original_ref=ref, new_ref=new,
                                   shares=shares, price=price(loc)))
            old = live.pop(ref, None)
            retired.append(ref)
            if old and shares:
                live[new] = (old[0], shares)
        elif r < 0.97:
            out.append(itch.encode("P", **hdr(loc), order_ref=0, side=b"B",
                                   shares=rng.randrange(1, 5000), stock=b"XXXX    ",
                                   price=price(loc), match_number=rng.getrandbits(40)))
        else:
            out.append(itch.encode("Q", **hdr(loc), shares=rng.randrange(1, 1 << 34),
                                   stock=b"XXXX    ", cross_price=price(loc),
                                   match_number=rng.getrandbits(40),
                                   cross_type=b"O"))
        if len(retired) > 200:
            retired = retired[-100:]
    return out
