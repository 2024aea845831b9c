"""The whole core's order side on the harness: triggers, host orders, the risk gate, OUCH on
TX, the exchange simulator's reports back on the order-entry port, positions.

* A generated day with triggers armed on every symbol and limits that some orders break:
  one VERDICT event per order, the counters agree with the events, every accepted order left
  on TX exactly once and nothing else did, the TX byte stream is read by Nasdaq's own
  SoupBinTCP decoder (nasdaq-protocols) as unsequenced data carrying our OUCH enter orders,
  and the card's positions equal the exchange simulator's after the fills came back.
* Host orders on H2C: verdicts for kill switches, reused tokens, limits; cancels pass.
"""

from __future__ import annotations

import os
import random

import numpy as np
from nasdaq_protocols import soup as nq

from host.card import Card
from host.config import GlobalLimits, LimitsConfig, SymbolLimits, TriggerConfig
from host.orders import STOP_KINDS, OrderLoop
from host.replay import DEFAULT_FEED, replay
from hw import h2c
from hw.events import EventKind, body_dtype
from hw.oe.tokens import format_token, parse_token
from hw.risk.params import Collar, Reason, Side, Source
from proto import ouch
from proto import soupbintcp as sb
from sim.feed.pcap import dayfile_to_frames
from sim.feed.synth import DEFAULT_SYMBOLS, generate_day

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
FEED_SESSION = "ORDERS0001"
SYMBOLS = list(DEFAULT_SYMBOLS)
_VERDICT = body_dtype(EventKind.VERDICT)


def _configure(card, limits: LimitsConfig) -> None:
    card.set_feeds([DEFAULT_FEED])
    card.reset_books()
    card.subscribe_all(SYMBOLS)
    card.set_firm("WSPD")
    card.apply_limits(limits)


def _verdicts(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = records[records["kind"] == EventKind.VERDICT]
    return v, np.ascontiguousarray(v["body"]).view(_VERDICT).reshape(-1)


def test_triggered_day_closes_the_loop(card) -> None:
    print(f"seed {SEED} (rerun with WIRESPEED_SEED={SEED})")
    rng = random.Random(SEED)
    sim = card.backend
    lim = SymbolLimits(enable=True, max_shares=400, max_notional=10**14, collar_mode=Collar.BPS,
                       collar=500, max_long=2_000, max_short=2_000)
    _configure(card, LimitsConfig(GlobalLimits(max_open=50), {i: lim for i in range(8)}))
    day = list(generate_day(30_000, symbols=SYMBOLS, seed=rng.randrange(1 << 30)))
    frames = list(dayfile_to_frames(iter(day), FEED_SESSION, DEFAULT_FEED,
                                    end_of_session=True))
    loop = OrderLoop(card, sim, SYMBOLS, keep_tx=True)

    # Arm every symbol at a price the day will cross, and again at every stop of the replay
    # (each TX packet, each verdict).
    def arm_all() -> None:
        for slot in range(len(SYMBOLS)):
            state = card.slot(slot)
            bid, _, ask, _ = state["bbo"]
            side = rng.choice(list(Side))
            px = ask if side == Side.BUY else bid
            if px:
                card.arm_trigger(slot, TriggerConfig(side, px, rng.choice([100, 300, 600])))

    def on_stop(flush: bool) -> int | None:
        wake = loop.on_stop(flush)
        arm_all()
        return wake

    kept: list[np.ndarray] = []

    def on_records(r: np.ndarray) -> None:
        kept.append(r)
        loop(r)

    # The first frames build the books; then every symbol is armed, and re-armed at each stop.
    warm = len(frames) // 10
    replay(card, sim, frames[:warm], frames[:warm], on_records=on_records)
    arm_all()
    res = replay(card, sim, frames[warm:], frames[warm:], chunk=64, on_records=on_records,
                 on_stop=on_stop, stop_kinds=STOP_KINDS)
    records = np.concatenate(kept)
    c = res.counters
    v, body = _verdicts(records)
    assert len(v) == c["risk_verdicts"] == c["trig_fired"] + c["h2c_orders"], WHERE
    assert c["trig_fired"] > 20, f"{WHERE}: only {c['trig_fired']} triggers fired"
    accepted = body[v["aux"] == Reason.ACCEPTED]
    assert len(accepted) == c["risk_accepted"] == c["tx_orders"] + c["tx_cancels"], WHERE
    assert 0 < len(accepted) < len(v), f"{WHERE}: verdicts {np.unique(v['aux'])}"
    assert c["tx_overflow"] == 0 and c["oe_bad_token"] == 0, WHERE
    assert (accepted["shares"] <= lim.max_shares).all(), WHERE

    # The egress, decoded by Nasdaq's SoupBinTCP implementation (packet by packet: its
    # from_bytes takes a whole buffer as one packet) and by our stream deframer.
    tokens = []
    for _, _, pkt in loop.all_tx:
        n, msg = nq.SoupMessage.from_bytes(pkt)
        assert n == len(pkt) and isinstance(msg, nq.UnSequencedData), f"{WHERE}: {msg!r}"
        o = ouch.decode(msg.data, "inbound")
        assert o["message_type"] == "O" and o["firm"] == "WSPD", WHERE
        tokens.append(o["order_token"])
    stream = b"".join(p[2] for p in loop.all_tx)
    assert [p for _, p in sb.Deframer().feed(stream)] == [p[2][3:] for p in loop.all_tx], WHERE
    want = [format_token(Source(int(b["source"])), int(b["token"])) for b in accepted]
    assert tokens == want, f"{WHERE}: TX tokens differ from the accepted verdicts"
    assert all(parse_token(t) is not None for t in tokens), WHERE

    # The fills came back: the card's positions equal the exchange's.
    assert loop.exchange.fills, f"{WHERE}: no fills"
    for slot, sym in enumerate(SYMBOLS):
        st = card.risk_state(slot)
        assert st["position"] == loop.exchange.positions.get(sym, 0), (
            f"{WHERE}: {sym}: card position {st['position']}, exchange "
            f"{loop.exchange.positions.get(sym, 0)}")
        assert st["open_buy"] == st["open_sell"] == 0, f"{WHERE}: {sym} still open: {st}"
    assert card.risk_state(0)["open_orders"] == 0, WHERE


def _trading_replay(card, frames, chunk: int) -> dict:
    """Replay ``frames`` on both lines with triggers the host re-arms (``rearm``), the
    exchange in the loop; what the card did, cycle by cycle."""
    sim = card.backend
    lim = SymbolLimits(enable=True, max_shares=1_000, max_notional=10**14, max_long=900,
                       max_short=900)
    _configure(card, LimitsConfig(GlobalLimits(max_open=20), {i: lim for i in range(8)}))
    triggers = {i: TriggerConfig(Side.BUY if i % 2 else Side.SELL,
                                 (1 << 32) - 1 if i % 2 else 1, 100 + 100 * (i % 3),
                                 rearm=True) for i in range(len(SYMBOLS))}
    loop = OrderLoop(card, sim, SYMBOLS, keep_tx=True, triggers=triggers)
    kept: list[np.ndarray] = []

    def on_records(r: np.ndarray) -> None:
        kept.append(r)
        loop(r)

    replay(card, sim, frames, frames, chunk=chunk, on_records=on_records,
           on_stop=loop.on_stop, stop_kinds=STOP_KINDS)
    v, _ = _verdicts(np.concatenate(kept))
    return {"verdicts": v.tobytes(), "tx": list(loop.all_tx or []),
            "replies": list(loop.all_replies or []),
            "oe_rx": sim.oe_rx_start_cycles().tolist(), "rtt": loop.rtt_cycles,
            "fills": list(loop.exchange.fills),
            "positions": [card.risk_state(i)["position"] for i in range(len(SYMBOLS))]}


def test_exchange_round_trip_is_exact_and_chunk_free(card) -> None:
    """The exchange's answer to every order reaches the card exactly ``rtt_cycles`` after the
    order's last TX beat, and the replay's chunk size changes nothing the card does: the same
    verdicts (cycles included), TX packets, answers and positions with 150-frame chunks as
    with 4096 (the old replay drained the harness between chunks and re-based the schedule,
    and the exchange answered only between chunks)."""
    rng = random.Random(SEED)
    day = list(generate_day(12_000, symbols=SYMBOLS, seed=rng.randrange(1 << 30)))
    frames = list(dayfile_to_frames(iter(day), FEED_SESSION, DEFAULT_FEED,
                                    end_of_session=True))
    big = _trading_replay(card, frames, 4096)
    assert len(big["tx"]) > 10 and big["fills"], f"{WHERE}: {len(big['tx'])} orders sent"
    # oe_rx[0] is the login answer; then one answer per order, due RTT after the order's
    # last beat, and on the port then — or right behind the answer before it (one stream).
    due = [last + big["rtt"] for _, last, _ in big["tx"]]
    assert [d for d, _ in big["replies"]] == due, WHERE
    want, free = [], 0
    for d, data in big["replies"]:
        want.append(max(d, free))
        free = want[-1] + -(-len(data) // 8)
    assert big["oe_rx"][1:] == want, WHERE
    assert sum(w == d for w, d in zip(want, due, strict=True)) > len(due) // 2, WHERE
    card.backend.harness.reset()
    small = _trading_replay(Card(card.backend), frames, 150)   # as the fixture: reset, Card
    for key in big:
        assert small[key] == big[key], f"{WHERE}: {key} differs between chunk sizes"


def test_host_orders_on_h2c(card) -> None:
    sim = card.backend
    lim = SymbolLimits(enable=True, max_shares=1000, max_notional=10**14, max_long=10**6,
                       max_short=10**6)
    _configure(card, LimitsConfig(GlobalLimits(max_open=100), {0: lim, 1: lim}))
    orders = [
        dict(kind=0, side=Side.BUY, slot=0, token=5, shares=100, price=1_000_000),   # ok
        dict(kind=0, side=Side.BUY, slot=0, token=5, shares=100, price=1_000_000),   # reused
        dict(kind=0, side=Side.SELL, slot=1, token=6, shares=5000, price=1_000_000),  # size
        dict(kind=0, side=Side.SELL, slot=2, token=7, shares=10, price=1_000_000),   # disabled
        dict(kind=1, side=Side.BUY, slot=0, token=5, shares=0, price=0),             # cancel
    ]
    sim.send_h2c(h2c.pack(orders))
    sim.run()
    card.kill(True)
    sim.send_h2c(h2c.pack([dict(kind=0, side=Side.BUY, slot=0, token=9, shares=1,
                                price=1_000_000)]))
    sim.run()
    card.kill(False)
    bad = bytearray(h2c.pack([dict(kind=0, slot=0, token=10, shares=1, price=1)]))
    bad[0] ^= 0xFF                                          # not a host order record
    sim.send_h2c(bytes(bad))
    sim.run()
    v, body = _verdicts(card.events())
    got = [(int(b["token"]), Reason(int(r))) for b, r in zip(body, v["aux"], strict=True)]
    assert got == [(5, Reason.ACCEPTED), (5, Reason.BAD_TOKEN), (6, Reason.MAX_SIZE),
                   (7, Reason.DISABLED), (5, Reason.ACCEPTED), (9, Reason.KILL)], got
    c = card.counters()
    assert c["h2c_orders"] == 6 and c["h2c_bad"] == 1 and c["tx_orders"] == 1
    assert c["tx_cancels"] == 1
    packets = sim.tx_packets()
    kinds = [ouch.decode(p[2][3:], "inbound")["message_type"] for p in packets]
    assert kinds == ["O", "X"], kinds
