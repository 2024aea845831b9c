"""The wirespeed CLI, end to end on the simulated card (it only calls the library)."""

from __future__ import annotations

import csv
import json
import os
import random

import click
import numpy as np
import pytest
from click.testing import CliRunner

from host.cli import main
from hw.book.params import AlertReason
from hw.events import EventKind, numpy_dtype
from hw.regmap import REGMAP
from proto.moldudp64 import unpack_packet
from sim.feed import dayfile, synth
from sim.feed.frames import FeedAddress, parse_udp_frame
from sim.feed.pcap import Frame, dayfile_to_frames, write_frames
from sim.model.book import BookModel, bbo_changes

FEED = FeedAddress("233.54.12.1", 26477)
SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"


@pytest.fixture(autouse=True)
def shared_card(sim_card, monkeypatch):
    """Every CLI call here drives the session's simulated card, reset as a fresh one would be.

    A real ``wirespeed`` call converts the core to Verilog (to find its cached harness
    build); with the book that takes a minute or more, once per call, which would make this
    file run for many minutes. Only the card's construction is skipped: every option, the
    configuration and the outputs go through the CLI as they do for a user. The card is
    reset before each call, and its order table emptied after each test."""
    from host import cli
    from host.card import Card, CardError

    real_open = cli._open_card

    def open_card(backend: str, trace: str | None = None):
        if backend != "sim" or trace is not None:
            return real_open(backend, trace)
        sim_card.harness.c2h_ready(1.0)
        sim_card.harness.reset()
        try:
            return Card(sim_card), sim_card
        except CardError as e:
            raise click.ClickException(str(e)) from None

    monkeypatch.setattr(cli, "_open_card", open_card)
    yield
    # The harness's reset clears registers, not memories: leave no order of these days in
    # the order table for the next test on this card (in this file or another).
    Card(sim_card).reset_books()


def run(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_replay_day_file_json(tmp_path):
    day = tmp_path / "day.NASDAQ_ITCH50.gz"
    msgs = synth.generate_day(3000, seed=5)
    dayfile.write_dayfile(day, msgs)
    r = run("replay", str(day), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert set(out) >= {"counters", "events", "messages", "cycles"}
    c = out["counters"]
    assert out["messages"] == len(msgs) == c["messages"]
    assert set(c) == set(REGMAP.counters)      # counter names are the documented ones
    for name in ("frames", "frames_dropped", "mold_packets", "messages", "gaps",
                 "duplicates", "heartbeats"):
        assert name in c
    assert c["frames_dropped"] == 0 and c["gaps"] == 0 and c["end_of_session"] == 1
    assert out["events"] == {"END_OF_SESSION": 1, "SESSION": 1}
    assert sum(v for k, v in c.items() if k.startswith("itch_")) == len(msgs)


def test_replay_two_pcaps_with_loss_and_a_foreign_feed(tmp_path):
    rng = random.Random(3)
    msgs = synth.generate_day(4000, seed=9)
    frames = list(dayfile_to_frames(msgs, "CLI0000001", FEED))
    a = [f for f in frames if rng.random() > 0.1]
    b = [Frame(f.timestamp_ns + 200, f.data) for f in frames if rng.random() > 0.1]
    other = list(dayfile_to_frames(msgs[:500], "OTHER00001", FeedAddress("233.54.12.2", 1)))
    write_frames(tmp_path / "a.pcap", sorted(a + other, key=lambda f: f.timestamp_ns))
    write_frames(tmp_path / "b.pcap", b)
    r = run("replay", str(tmp_path / "a.pcap"), "--line-b", str(tmp_path / "b.pcap"),
            "--feed", str(FEED), "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.output.strip().splitlines()[-1])["counters"]
    both_lost = len(frames) - len({f.data for f in a} | {f.data for f in b})
    assert c["drop_filtered"] == len(other)
    assert c["line_a_won"] > 0 and c["line_b_won"] > 0
    assert (c["gaps"] > 0) == (both_lost > 0)
    assert c["messages"] + c["gap_messages"] == len(msgs)


def test_bad_arguments_are_clear(tmp_path):
    day = tmp_path / "d.itch"
    dayfile.write_dayfile(day, synth.generate_day(2000, seed=1))
    r = CliRunner().invoke(main, ["replay", str(day), "--feed", "233.54.12.1"])
    assert r.exit_code != 0 and "GROUP:PORT" in r.output
    r = CliRunner().invoke(main, ["replay", str(tmp_path / "missing.pcap")])
    assert r.exit_code != 0 and "does not exist" in r.output
    broken = tmp_path / "broken.itch"
    broken.write_bytes(b"\x00\x30\x41")        # a record claiming 48 bytes, 1 present
    r = CliRunner().invoke(main, ["replay", str(broken)])
    assert r.exit_code != 0 and "Error" in r.output and "Traceback" not in r.output


def test_info_and_regs():
    r = run("info", "--json")
    assert r.exit_code == 0
    ident = json.loads(r.output)["identity"]
    assert ident["regmap_hash"] == f"{REGMAP.hash:#010x}" and ident["filters"] == 8
    r = run("regs", "write", "filter3_ip", "0xe9360c05")
    assert r.exit_code == 0 and "0xe9360c05" in r.output
    r = run("regs", "read", "id_magic")
    assert r.output.strip() == "0x57535044"
    r = CliRunner().invoke(main, ["regs", "read", "filter_ip"])
    assert r.exit_code != 0 and "did you mean" in r.output
    r = CliRunner().invoke(main, ["regs", "write", "id_magic", "1"])
    assert r.exit_code != 0 and "read-only" in r.output
    r = run("regs", "dump")
    assert "id_regmap_hash" in r.output and "counters" not in r.output.splitlines()[0]


# -- books: --symbols, --bbo-out, --trades-out ------------------------------------------------

BBO_HEADER = ["seq", "symbol", "bid_px", "bid_sz", "ask_px", "ask_sz"]
TRADES_HEADER = ["seq", "symbol", "type", "price", "shares", "volume", "notional"]


def read_csv(path) -> tuple[list[str], list[tuple]]:
    """Header and rows, numbers as ints (the symbol, and a trade's type, stay text)."""
    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, [tuple(v if not v.isdigit() else int(v) for v in r) for r in rows]


def model_day(messages, symbols, *, lost: frozenset[int] = frozenset()):
    """What the book model says for ``messages`` (seq = index + 1) minus the ``lost`` seqs,
    a gap raised before the first message after each lost run (as the ingress would): BBO
    rows, trade rows and each symbol's final slot state."""
    model = BookModel()
    for i, sym in enumerate(symbols):
        model.subscribe(i, sym)
    bbo, trades = [], []
    for seq, msg in enumerate(messages, 1):
        if seq in lost:
            continue
        if seq - 1 in lost:
            model.gap(seq)
        model.message(seq, msg)
        for e in model.events:
            f = e.fields
            if e.kind is EventKind.BBO:
                bbo.append((seq, symbols[e.aux], f["bid_px"], f["bid_sz"], f["ask_px"],
                            f["ask_sz"]))
            elif e.kind is EventKind.TRADE:
                trades.append((seq, symbols[e.aux], chr(f["type"]), f["price"], f["shares"],
                               f["volume"], f["notional"]))
        model.events.clear()
    final = {sym: model.stats(i) | {"bbo": model.bbo(i)} for i, sym in enumerate(symbols)}
    return bbo, trades, final


def check_books(out: dict, final: dict) -> None:
    """The --json "books" against the model's final slot state."""
    assert list(out) == list(final), WHERE
    for sym, want in final.items():
        got = out[sym]
        assert tuple(got["bbo"].values()) == want["bbo"], (sym, WHERE)
        assert got["stale"] == [r.name for r in AlertReason if want["stale"] & r.bit], WHERE
        for k in ("volume", "notional", "last_px", "last_sz"):
            assert got[k] == want[k], (sym, k, WHERE)
        if want["volume"]:
            assert got["vwap"] == pytest.approx(want["notional"] / want["volume"] / 1e4)
        else:
            assert got["vwap"] is None


def test_replay_bbo_and_trades_match_the_model(tmp_path):
    rng = random.Random(SEED)
    symbols = rng.sample(synth.DEFAULT_SYMBOLS, rng.randint(2, 5))
    msgs = synth.generate_day(20_000, seed=rng.randrange(1 << 20))
    day = tmp_path / "day.NASDAQ_ITCH50.gz"
    dayfile.write_dayfile(day, msgs)
    bbo_csv, trades_csv = tmp_path / "bbo.csv", tmp_path / "trades.csv"
    r = run("replay", str(day), "--symbols", ",".join(symbols), "--bbo-out", str(bbo_csv),
            "--trades-out", str(trades_csv), "--json")
    assert r.exit_code == 0, r.output

    header, rows = read_csv(bbo_csv)
    assert header == BBO_HEADER
    want = [tuple(row) for row in bbo_changes(msgs, symbols)]
    assert want, f"no BBO change at all: a useless test {WHERE}"
    assert rows == want, WHERE
    ref_bbo, ref_trades, final = model_day(msgs, symbols)
    assert ref_bbo == want                      # the two uses of the model agree
    header, trades = read_csv(trades_csv)
    assert header == TRADES_HEADER and trades == ref_trades, WHERE

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["events"]["BBO"] == len(rows) and out["events"].get("TRADE", 0) == len(trades)
    check_books(out["books"], final)
    for sym in symbols:
        b = out["books"][sym]
        assert b["bbo_events"] == sum(1 for row in rows if row[1] == sym)
        assert b["trades"] == sum(1 for t in trades if t[1] == sym)
        # A stale book is named on stderr; a clean one is not.
        assert (f"{sym}: book stale" in r.stderr) == bool(b["stale"]), (r.stderr, WHERE)


def test_replay_books_from_two_pcaps_with_a_gap(tmp_path):
    """pcap input on both lines: losses one line covers leave the books exact; a packet lost
    on both is a gap, which every book reports (a BOOK_ALERT and stale GAP) and which the
    model, told of the same gap, agrees with row for row."""
    rng = random.Random(SEED + 1)
    symbols = ["MSFT", "AAPL"]
    msgs = synth.generate_day(8000, seed=rng.randrange(1 << 20))
    frames = list(dayfile_to_frames(msgs, "CLIBOOK001", FEED))
    data = [(f, unpack_packet(parse_udp_frame(f.data).payload)) for f in frames]
    # One data packet past the opening directory is lost on both lines; others on one.
    movers = [i for i, (_, (_, seq, n, _)) in enumerate(data) if n and seq > 1000]
    both = rng.choice(movers[:-1])
    drop = {i: rng.choice("ab") for i in range(len(frames)) if rng.random() < 0.05}
    drop[both] = "both"
    a = [f for i, f in enumerate(frames) if drop.get(i) not in ("a", "both")]
    b = [Frame(f.timestamp_ns + 300, f.data) for i, f in enumerate(frames)
         if drop.get(i) not in ("b", "both")]
    write_frames(tmp_path / "a.pcap", a)
    write_frames(tmp_path / "b.pcap.gz", b)
    _, (_, first, count, _) = data[both]
    lost = frozenset(range(first, first + count))

    bbo_csv = tmp_path / "bbo.csv"
    r = run("replay", str(tmp_path / "a.pcap"), "--line-b", str(tmp_path / "b.pcap.gz"),
            "--symbols", ",".join(symbols), "--bbo-out", str(bbo_csv), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["counters"]["gap_messages"] == count, WHERE
    ref_bbo, _, final = model_day(msgs, symbols, lost=lost)
    header, rows = read_csv(bbo_csv)
    assert header == BBO_HEADER and rows == ref_bbo, WHERE
    check_books(out["books"], final)
    for sym in symbols:
        assert "GAP" in out["books"][sym]["stale"] and out["books"][sym]["alerts"]["GAP"] == 1
        assert f"{sym}: book stale at the end (" in r.stderr
    assert "warning: BOOK_ALERT GAP on all books" in r.stderr, r.stderr


def test_replay_the_same_day_twice_on_one_card(tmp_path):
    """A card that ran a day before (a board left on; here the session's simulated card, whose
    reset clears no memory) still holds that day's orders, and the next day reuses their
    references: replay must empty the books before subscribing, or the second day's BBOs
    go wrong from the first reused reference on."""
    rng = random.Random(SEED + 2)
    symbols = rng.sample(synth.DEFAULT_SYMBOLS, 3)
    msgs = synth.generate_day(5000, seed=rng.randrange(1 << 20))
    day = tmp_path / "d.itch"
    dayfile.write_dayfile(day, msgs)
    want = [tuple(row) for row in bbo_changes(msgs, symbols)]
    books = []
    for i in range(2):
        r = run("replay", str(day), "--symbols", ",".join(symbols), "--bbo-out",
                str(tmp_path / f"bbo{i}.csv"), "--json")
        assert r.exit_code == 0, r.output
        books.append(json.loads(r.stdout.strip().splitlines()[-1])["books"])
        assert read_csv(tmp_path / f"bbo{i}.csv")[1] == want, (i, WHERE)
    assert books[0] == books[1]


def test_replay_symbol_not_in_the_day(tmp_path):
    day = tmp_path / "d.itch"
    msgs = synth.generate_day(2000, seed=2)
    dayfile.write_dayfile(day, msgs)
    raw = tmp_path / "events.bin"
    r = run("replay", str(day), "--symbols", "ZZZZ9,AAPL", "--bbo-out",
            str(tmp_path / "b.csv"), "--events-out", str(raw))
    assert r.exit_code == 0, r.output
    assert "ZZZZ9: not in the day's stock directory" in r.stderr
    _, rows = read_csv(tmp_path / "b.csv")
    assert rows == [tuple(row) for row in bbo_changes(msgs, ["ZZZZ9", "AAPL"])]
    assert rows and {row[1] for row in rows} == {"AAPL"}
    assert "books" in r.stdout and "AAPL" in r.stdout      # the summary table
    # --events-out, streamed like the CSV: every record, BBO ones among them.
    records = np.frombuffer(raw.read_bytes(), dtype=numpy_dtype())
    assert (records["kind"] == EventKind.BBO).sum() == len(rows)
    assert np.all(np.diff(records["seq"].astype(np.int64)) == 1)


@pytest.mark.parametrize(("args", "says"), [
    (["--bbo-out", "x.csv"], "--bbo-out needs --symbols"),
    (["--trades-out", "x.csv"], "--trades-out needs --symbols"),
    (["--symbols", "aapl"], "bad symbol 'aapl'"),
    (["--symbols", "AAPL,TOOLONGSYM"], "bad symbol 'TOOLONGSYM'"),
    (["--symbols", "BRK.A"], "bad symbol 'BRK.A'"),
    (["--symbols", "AAPL,,MSFT"], "empty symbol"),
    (["--symbols", "AAPL,MSFT,AAPL"], "AAPL is listed twice"),
    (["--symbols", ",".join(f"S{i}" for i in range(65))], "65 symbols but the card has 64"),
])
def test_replay_book_options_are_checked(tmp_path, args, says):
    day = tmp_path / "d.itch"
    dayfile.write_dayfile(day, synth.generate_day(500, seed=1))
    out = tmp_path / "x.csv"
    r = CliRunner().invoke(main, ["replay", str(day), *(str(out) if a == "x.csv" else a
                                                        for a in args)])
    assert r.exit_code == 2, r.output
    assert says in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output and not out.exists()


# -- orders: --limits, --triggers, --orders-out, --tx-pcap -----------------------------------

ORDERS_HEADER = ["cycle", "source", "token", "symbol", "kind", "side", "shares", "price", "tif",
                 "verdict", "reason"]


def test_replay_with_limits_and_triggers(tmp_path):
    from nasdaq_protocols import soup as nq
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    from proto import itch, ouch
    msgs = synth.generate_day(20_000, seed=3)
    day = tmp_path / "d.itch"
    dayfile.write_dayfile(day, msgs)
    first = {}
    for m in msgs:
        if m[:1] == b"A":
            a = itch.MESSAGES["A"].unpack(m)
            first.setdefault(a["stock"], a["price"])
    syms = list(synth.DEFAULT_SYMBOLS)[:3]
    (tmp_path / "limits.yaml").write_text(
        "global: {max_open: 2}\n"
        "defaults: {max_shares: 250, max_notional: 1000000, max_long: 1000, max_short: 1000}\n")
    (tmp_path / "triggers.yaml").write_text("triggers:\n" + "".join(
        f"  - {{symbol: {s}, side: buy, price: {first[s] * 1.01 / 10_000:.2f}, "
        f"shares: {100 * (i + 1)}, rearm: true}}\n" for i, s in enumerate(syms)))
    orders, pcap = tmp_path / "orders.csv", tmp_path / "tx.pcap"
    r = run("replay", str(day), "--symbols", ",".join(syms),
            "--limits", str(tmp_path / "limits.yaml"),
            "--triggers", str(tmp_path / "triggers.yaml"),
            "--orders-out", str(orders), "--tx-pcap", str(pcap), "--exchange-rtt-us", "25",
            "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    c, o = out["counters"], out["orders"]
    rows = list(csv.reader(orders.open()))
    assert rows[0] == ORDERS_HEADER and len(rows) - 1 == c["risk_verdicts"] > 0
    reasons = {row[10] for row in rows[1:]}
    assert "ACCEPTED" in reasons and "MAX_SIZE" in reasons, reasons   # 300 > 250 shares
    assert all(row[1] == "trigger" for row in rows[1:])
    accepted = [row for row in rows[1:] if row[9] == "accepted"]
    assert len(accepted) == c["tx_orders"] == o["tx_packets"]
    assert o["positions"] == {s: o["exchange_positions"].get(s, 0) for s in syms}
    assert o["exchange_fills"] > 0 and any(o["positions"].values())
    # Tick-to-trade: never under the pipeline's fixed 12 cycles (RX to BBO 6, trigger 2, gate
    # 4, the encoder 0), and the histogram counts every trigger order sent.
    t2t = o["tick_to_trade_cycles"]
    assert t2t["min"] >= 12 and t2t["orders"] == len(accepted) == sum(t2t["histogram"].values())

    # The pcap: TCP with valid checksums, whose client stream is SoupBinTCP that Nasdaq's
    # implementation reads: the login, then exactly the accepted orders, in order.
    # In time order, every segment acknowledges exactly what the other side had sent by then,
    # and the exchange answers each order 25 us after it (the round trip asked for).
    pkts = rdpcap(str(pcap))
    client = b""
    sent = {True: 0, False: 0}       # sequence space used so far (bytes, FIN), client / server
    isn: dict[bool, int] = {}
    data_times: dict[bool, list[float]] = {True: [], False: []}
    times = [float(p.time) for p in pkts]
    assert times == sorted(times)
    for p in pkts:
        e = Ether(bytes(p))
        t = e[TCP]
        # Short frames are padded to 60 bytes: the payload is what the IP length says.
        raw = bytes(t.payload)[:e[IP].len - 4 * e[IP].ihl - 4 * t.dataofs]
        chk = t.chksum
        del t.chksum
        assert Ether(bytes(e))[TCP].chksum == chk
        from_client = t.sport == 40000
        if t.flags & 0x02:                                   # SYN
            isn[from_client] = t.seq
        else:
            assert t.seq == (isn[from_client] + 1 + sent[from_client]) % (1 << 32)
            assert t.ack == (isn[not from_client] + 1 + sent[not from_client]) % (1 << 32)
        sent[from_client] += len(raw) + (int(t.flags) & 0x01)   # a FIN takes one number
        if raw:
            data_times[from_client].append(float(p.time))
        if from_client:
            client += raw
    orders_at, answers_at = data_times[True][1:], data_times[False][1:]   # after the login
    assert len(answers_at) == len(orders_at) == len(accepted)
    assert all(25e-6 <= a - q < 26e-6 for q, a in zip(orders_at, answers_at, strict=True))
    at, seen = 0, []
    while at < len(client):
        n = 2 + int.from_bytes(client[at:at + 2], "big")
        _, msg = nq.SoupMessage.from_bytes(client[at:at + n])
        seen.append(msg)
        at += n
    assert isinstance(seen[0], nq.LoginRequest)
    tokens = [ouch.decode(m.data, "inbound")["order_token"] for m in seen[1:]]
    assert tokens == [row[2] for row in accepted]


def test_replay_bad_limits_file_names_the_line(tmp_path):
    day = tmp_path / "d.itch"
    dayfile.write_dayfile(day, synth.generate_day(2000, seed=1))
    bad = tmp_path / "limits.yaml"
    bad.write_text("defaults:\n  max_shares: 10\n  max_notionl: 5\n")
    r = CliRunner().invoke(main, ["replay", str(day), "--symbols", "AAPL", "--limits", str(bad)])
    assert r.exit_code != 0 and "limits.yaml:3: defaults.max_notionl: unknown key" in r.output
    r = CliRunner().invoke(main, ["replay", str(day), "--limits", str(bad)])
    assert r.exit_code != 0 and "--limits needs --symbols" in r.output
