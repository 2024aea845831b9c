"""The synthetic ITCH day: determinism, consistency (own checker and the itch-book peer),
injected faults, and a checker that demonstrably catches broken days."""

from __future__ import annotations

import datetime as dt
import random

import itch_book
import pytest

from proto.itch import MESSAGES, decode, encode
from proto.layout import Kind
from sim.feed.dayfile import count_messages, iter_messages, write_dayfile
from sim.feed.synth import (
    FAULT_KINDS,
    T_CLOSE,
    T_END,
    T_LAST,
    T_OPEN,
    T_START,
    T_SYSTEM,
    DayGenerator,
    DayInconsistency,
    check_day,
    generate_day,
    main,
    packer,
)


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_fast_packer_matches_layout_encoder(code):
    rng = random.Random(code)
    for _ in range(50):
        values, args = {}, []
        for f in MESSAGES[code].fields:
            if f.name == "message_type":
                args.append(code.encode())
                continue
            if f.kind is Kind.UINT:
                v = rng.randrange(1 << (8 * f.size))
                values[f.name] = v
                args.extend((v >> 32, v & 0xFFFFFFFF) if f.size == 6 else (v,))
            else:
                v = "".join(rng.choice("ABCXYZ019 ") for _ in range(
                    1 if f.kind is Kind.CHAR else rng.randrange(f.size + 1)))
                values[f.name] = v
                args.append(v.encode().ljust(f.size))
        assert packer(code)(*args) == encode(code, **values)


def test_deterministic_and_exact_count():
    a = generate_day(12_000, seed=42)
    assert len(a) == 12_000
    assert a == generate_day(12_000, seed=42)
    assert a != generate_day(12_000, seed=43)
    gen = DayGenerator(200, seed=1)
    assert len(list(gen)) == 200
    with pytest.raises(RuntimeError, match="once"):
        list(gen)
    with pytest.raises(ValueError, match="at least"):
        DayGenerator(20)
    with pytest.raises(ValueError, match="bad symbol"):
        DayGenerator(1000, symbols=("aapl",))


CONFIGS = {
    "default": {},
    "one-stock-no-fillers": {"symbols": ("AAPL",), "fillers": 0},
    "many-fillers": {"symbols": ("AAPL", "MSFT", "GNUS"), "fillers": 10},
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_day_is_consistent_and_complete(seed, config):
    day = generate_day(12_000, seed=seed, **CONFIGS[config])
    rep = check_day(day)                    # raises DayInconsistency on any violation
    assert set(rep.type_counts) == set(MESSAGES), \
        f"seed {seed}: missing {set(MESSAGES) - set(rep.type_counts)}"
    assert not rep.faults
    assert rep.max_levels >= 15 and rep.max_orders_at_level >= 8, f"seed {seed}: thin books"
    assert rep.multi_level_sweeps > 0 and rep.levels_emptied_by_execution > 0


def test_day_structure():
    symbols = ("AAPL", "MSFT", "NVDA")
    day = [decode(m) for m in generate_day(20_000, seed=9, symbols=symbols)]
    events = {m["event_code"]: m["timestamp"] for m in day if m["message_type"] == "S"}
    assert events == {"O": T_START, "S": T_SYSTEM, "Q": T_OPEN, "M": T_CLOSE, "E": T_END,
                      "C": T_LAST}
    assert T_START <= min(m["timestamp"] for m in day)
    directory = {m["stock"]: m["stock_locate"] for m in day if m["message_type"] == "R"}
    assert [directory[s] for s in symbols] == [1, 2, 3]
    assert len(directory) > len(symbols) + 1             # fillers and the IPO stock
    adds = [m for m in day if m["message_type"] in "AF"]
    assert max(m["order_ref"] for m in adds) < 2**31     # well under itch-book's cap
    flow_locates = {m["stock_locate"] for m in adds}
    assert flow_locates > {1, 2, 3}                      # unsubscribed stocks trade too
    penny = directory["GNUS"]
    assert any(m["price"] % 100 for m in adds if m["stock_locate"] == penny)
    assert all(m["price"] % 100 == 0 for m in adds if m["stock_locate"] != penny)
    regular = [m for m in adds if T_OPEN <= m["timestamp"] < T_CLOSE]
    assert 0.8 < len(regular) / len(adds) < 0.97         # most flow in regular hours


def _itch_book_stats(path) -> dict:
    feed = itch_book.Feed(str(path), date=dt.date(2026, 1, 2))
    for _ in feed.batches(("bbo",)):
        pass
    return feed.stats


def test_independent_book_builder_agrees(tmp_path):
    """itch-book (C++, from PyPI) replays the day without a single complaint."""
    day = generate_day(30_000, seed=4)
    path = tmp_path / "01022026.NASDAQ_ITCH50"
    write_dayfile(path, day)
    stats = _itch_book_stats(path)
    rep = check_day(day)
    assert stats["messages"] == len(day)
    for key in ("unknown", "malformed", "missing_ref", "dup_ref", "rejected", "clamped",
                "crossed_books"):
        assert stats[key] == 0, (key, stats)
    assert stats["live_orders"] == rep.live_orders_at_end


@pytest.mark.parametrize("seed", [5, 6])
def test_faults_are_injected_and_accounted(tmp_path, seed):
    gen = DayGenerator(20_000, seed=seed, faults=True, fault_rate=0.01)
    day = list(gen)
    assert all(gen.fault_counts[k] > 0 for k in FAULT_KINDS), gen.fault_counts
    with pytest.raises(DayInconsistency):
        check_day(day)
    rep = check_day(day, allow_faults=True)
    assert rep.faults == gen.fault_counts, f"seed {seed}"
    assert rep.live_orders_at_end == len(gen.orders)
    path = tmp_path / "01022026.NASDAQ_ITCH50"
    write_dayfile(path, day)
    stats = _itch_book_stats(path)
    assert (stats["missing_ref"], stats["clamped"], stats["rejected"], stats["dup_ref"]) == (
        gen.fault_counts["unknown_ref"], gen.fault_counts["oversized_execute"],
        gen.fault_counts["zero_shares_add"], gen.fault_counts["add_on_live_ref"])
    assert stats["live_orders"] == len(gen.orders) and stats["crossed_books"] == 0


# -- the checker must be able to fail ----------------------------------------------------------
@pytest.fixture(scope="module")
def day() -> list[bytes]:
    return generate_day(12_000, seed=8)


def _first(day: list[bytes], code: str, start: int = 0, **want) -> int:
    for i in range(start, len(day)):
        if chr(day[i][0]) == code:
            m = decode(day[i])
            if all(m[k] == v for k, v in want.items()):
                return i
    raise LookupError(code)


def test_checker_catches_a_dropped_add(day):
    adds = {decode(m)["order_ref"]: j for j, m in enumerate(day) if chr(m[0]) in "AF"}
    i = next(k for k in range(len(day) // 2, len(day))
             if chr(day[k][0]) == "E" and decode(day[k])["order_ref"] in adds)
    add = adds[decode(day[i])["order_ref"]]
    with pytest.raises(DayInconsistency, match="not live"):
        check_day(day[:add] + day[add + 1:])


def test_checker_catches_overexecution(day):
    i = _first(day, "E", len(day) // 2)
    m = decode(day[i])
    del m["message_type"]
    m["executed_shares"] += 10**6
    with pytest.raises(DayInconsistency, match="remaining"):
        check_day(day[:i] + [encode("E", **m)] + day[i + 1:])


def test_checker_catches_a_crossed_book(day):
    i = _first(day, "A", len(day) // 2, side="B")
    m = decode(day[i])
    del m["message_type"]
    m["price"] *= 10
    with pytest.raises(DayInconsistency, match="crosses"):
        check_day(day[:i] + [encode("A", **m)] + day[i + 1:])


def test_checker_catches_time_going_backwards(day):
    i = next(k for k in range(len(day) // 2, len(day))
             if decode(day[k])["timestamp"] < decode(day[k + 1])["timestamp"])
    with pytest.raises(DayInconsistency, match="timestamp"):
        check_day(day[:i] + [day[i + 1], day[i]] + day[i + 2:])


def test_checker_catches_out_of_priority_execution(day):
    """Executing the newest order of a level instead of the oldest breaks time priority."""
    levels: dict[tuple, list[int]] = {}       # (locate, side, price) -> refs, oldest first
    where: dict[int, list] = {}               # ref -> [level key, shares]
    for i, raw in enumerate(day):
        m = decode(raw)
        t = m["message_type"]
        if t in "ECXDU":
            ref = m["original_ref"] if t == "U" else m["order_ref"]
            key, shares = where[ref]
            if t == "E" and i > len(day) // 2 and len(levels[key]) > 1:
                newest = levels[key][-1]
                bad = dict(m, order_ref=newest, executed_shares=1)
                del bad["message_type"]
                with pytest.raises(DayInconsistency, match="oldest order"):
                    check_day(day[:i] + [encode("E", **bad)] + day[i + 1:])
                return
            left = shares - m.get("executed_shares", m.get("cancelled_shares", 0))
            if t in "DU" or left == 0:
                levels[key].remove(ref)
                del where[ref]
            else:
                where[ref][1] = left
            if t == "U":
                key = (key[0], key[1], m["price"])
                levels.setdefault(key, []).append(m["new_ref"])
                where[m["new_ref"]] = [key, m["shares"]]
        elif t in "AF":
            key = (m["stock_locate"], m["side"], m["price"])
            levels.setdefault(key, []).append(m["order_ref"])
            where[m["order_ref"]] = [key, m["shares"]]
    pytest.fail("no execution on a level with two orders in the second half of the day")


def test_command_line(tmp_path, capsys):
    out = tmp_path / "day.NASDAQ_ITCH50.gz"
    assert main([str(out), "--messages", "12000", "--symbols", "AAPL,MSFT", "--seed", "5",
                 "--check"]) == 0
    assert "check ok" in capsys.readouterr().out
    assert count_messages(out) == 12_000
    assert list(iter_messages(out)) == generate_day(12_000, symbols=("AAPL", "MSFT"), seed=5)
