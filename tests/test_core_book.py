"""The whole core (ingress, decoder, book) on the Verilator harness against two references.

* A clean generated day of 1,000,000 messages and 8 symbols, on lines A and B: the card's BBO
  events, as ``--bbo-out`` rows, equal itch-book's BBO changes (an independent C++ book
  builder) and the reference model's; TRADE events and every book counter equal the model's.
* A day with publisher faults (unknown references, over-sized executions, zero adds, adds
  onto live references) and some loss on each line: BBO and TRADE events, counters and the
  slots' final state equal the model's.
"""

from __future__ import annotations

import os
import random

import pytest

from hw.book.engine import COUNTERS
from hw.events import EventKind, decode
from sim.feed.synth import DEFAULT_SYMBOLS, generate_day
from sim.model import itchbook
from sim.model.book import BookModel

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
SYMBOLS = list(DEFAULT_SYMBOLS)


def _replay(card, sim, day, *, loss=0.0, rng=None):
    """Day -> MoldUDP64 frames on both lines; each frame is lost on A or on B (never on both,
    which would be a gap: the books go stale by design) with probability ``loss`` each."""
    from host import replay as rp
    from sim.feed.pcap import dayfile_to_frames
    card.set_feeds([rp.DEFAULT_FEED])
    card.subscribe_all(SYMBOLS)
    # A new day: the order table still holds the previous test's orders (a core reset
    # clears registers, not block RAM), and this day reuses their references.
    card.reset_books()
    frames = list(dayfile_to_frames(iter(day), rp.DEFAULT_SESSION, rp.DEFAULT_FEED,
                                    end_of_session=True))
    drop = [rng.random() if rng else 1.0 for _ in frames]
    a = [f for f, r in zip(frames, drop, strict=True) if not r < loss]
    b = [f for f, r in zip(frames, drop, strict=True) if not loss <= r < 2 * loss]
    res = rp.replay(card, sim, a, b, keep_records=True)
    recs = decode(res.records)
    return res, recs


def _rows(recs):
    return [(e["itch_seq"], e["symbol"].decode().rstrip(), e["bid_px"], e["bid_sz"],
             e["ask_px"], e["ask_sz"]) for e in recs if e["kind_name"] == "BBO"]


def _model(day):
    model = BookModel()
    for i, s in enumerate(SYMBOLS):
        model.subscribe(i, s)
    for seq, msg in enumerate(day, 1):
        model.message(seq, msg)
    return model


def _check_against_model(card, recs, res, model):
    names = {i: s for i, s in enumerate(SYMBOLS)}
    want_bbo = [(e.fields["itch_seq"], names[e.aux], e.fields["bid_px"], e.fields["bid_sz"],
                 e.fields["ask_px"], e.fields["ask_sz"]) for e in model.events
                if e.kind is EventKind.BBO]
    got_bbo = _rows(recs)
    for i, (g, w) in enumerate(zip(got_bbo, want_bbo, strict=False)):
        assert g == w, f"BBO row {i}: card {g}, model {w} {WHERE}"
    assert len(got_bbo) == len(want_bbo), WHERE
    trade_keys = ("itch_seq", "price", "shares", "volume", "notional", "match", "type")
    got_tr = [tuple(e[k] for k in trade_keys) for e in recs if e["kind_name"] == "TRADE"]
    want_tr = [tuple(e.fields[k] for k in trade_keys) for e in model.events
               if e.kind is EventKind.TRADE]
    assert got_tr == want_tr, WHERE
    for c in COUNTERS:
        if c != "book_fifo_overflow":
            assert res.counters[c] == model.counters[c], \
                f"{c}: card {res.counters[c]}, model {model.counters[c]} {WHERE}"
    assert res.counters["book_fifo_overflow"] == 0, WHERE
    for i in range(len(SYMBOLS)):
        view, st = card.slot(i), model.stats(i)
        assert view["bbo"] == model.bbo(i), WHERE
        assert (view["volume"], view["notional"], view["stale"]) == (
            st["volume"], st["notional"], st["stale"]), WHERE
    return got_bbo


def test_million_message_day_equals_itch_book(card, sim_card):
    day = list(generate_day(1_000_000, symbols=SYMBOLS, seed=SEED))
    res, recs = _replay(card, sim_card, day)
    assert res.messages == len(day), WHERE
    assert res.events.get("BOOK_ALERT", 0) == 0, WHERE
    model = _model(day)
    got = _check_against_model(card, recs, res, model)
    want, _ = itchbook.bbo_changes(day, SYMBOLS)
    assert len(want) > 100_000, WHERE
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"row {i}: card {g}, itch-book {w} {WHERE}"
    assert len(got) == len(want), WHERE


@pytest.mark.parametrize("loss", [0.0, 0.02])
def test_fault_day_on_lossy_lines_equals_model(card, sim_card, loss):
    rng = random.Random(SEED)
    day = list(generate_day(100_000, symbols=SYMBOLS, seed=SEED, faults=True,
                            fault_rate=0.01))
    res, recs = _replay(card, sim_card, day, loss=loss, rng=rng)
    assert res.counters["gaps"] == 0, WHERE
    model = _model(day)
    _check_against_model(card, recs, res, model)
    assert res.counters["book_unknown_ref"] > 0 and res.counters["book_clamped"] > 0, WHERE
    if loss:
        assert res.counters["line_b_won"] > 0, WHERE
