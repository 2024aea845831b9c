"""Exchange simulator: SoupBinTCP session, OUCH order handling, determinism, malformed input,
and independent checks through nasdaq-protocols (its codecs on the bytes, its client over
loopback against :func:`sim.exchange.serve`)."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from nasdaq_protocols import ouch as nq_ouch
from nasdaq_protocols import soup as nq

from proto import ouch
from proto import soupbintcp as sb
from sim.exchange import ExchangeError, ExchangeSimulator, serve
from tests.test_proto_ouch import NQ, OUT, nq_decode_outbound, nq_encode

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_exchange_sim: seed {SEED}")

USER, PASSWORD, SESSION = "WIRE", "SPEED", "WIRESPEED"
STOCKS = ("AAPL", "MSFT", "ZVZZT")
T0 = 34_200_000_000_000          # 09:30:00 in ns since midnight


def make_exchange(book: dict[str, tuple[int, int, int, int]] | None = None, **kw):
    book = {"AAPL": (1_899_900, 300, 1_900_100, 200), "MSFT": (0, 0, 4_000_000, 50),
            "ZVZZT": (100_000, 1000, 0, 0)} if book is None else book
    return ExchangeSimulator(lambda s: book.get(s, (0, 0, 0, 0)), STOCKS, **kw), book


def login(user=USER, password=PASSWORD, session="", seq=0) -> bytes:
    return sb.login_request(user, password, session, seq)


def enter(token, side, shares, stock, price, tif=ouch.TIF_IOC, **kw) -> bytes:
    return sb.pack_packet("U", ouch.encode(
        "O", order_token=token, buy_sell_indicator=side, shares=shares, stock=stock,
        price=price, time_in_force=tif, **kw))


def cancel(token, shares=0) -> bytes:
    return sb.pack_packet("U", ouch.encode("X", order_token=token, shares=shares))


def replace(old, new, shares, price, tif=ouch.TIF_MARKET_HOURS) -> bytes:
    return sb.pack_packet("U", ouch.encode(
        "U", ouch.INBOUND_DIRECTION, existing_order_token=old, replacement_order_token=new,
        shares=shares, price=price, time_in_force=tif))


def replies(data: bytes) -> list:
    """Server bytes -> [soup fields, or decoded OUCH for S packets]."""
    d = sb.Deframer(types=sb.SERVER_TYPES)
    out = []
    for t, payload in d.feed(data):
        out.append(ouch.decode(payload, ouch.OUTBOUND_DIRECTION) if t == "S"
                   else sb.decode(t, payload))
    d.close()
    return out


def codes(msgs) -> str:
    return "".join(m.get("message_type") or m["packet_type"] for m in msgs)


@pytest.fixture
def ex():
    """A logged-in exchange."""
    ex, _ = make_exchange()
    assert codes(replies(ex.on_client_bytes(login(), T0))) == "A"
    return ex


# -- session -----------------------------------------------------------------------------
@pytest.mark.parametrize("args, expect", [
    (dict(), ("A", SESSION, 1)),
    (dict(session=SESSION), ("A", SESSION, 1)),
    (dict(password="wrong"), ("J", "A")),
    (dict(user="WIRF"), ("J", "A")),
    (dict(session="OTHER"), ("J", "S")),
])
def test_login(args, expect):
    ex, _ = make_exchange()
    (r,) = replies(ex.on_client_bytes(login(**args), T0))
    if expect[0] == "A":
        assert (r["packet_type"], r["session"], r["sequence_number"]) == expect
        assert ex.connection.logged_in
    else:
        assert (r["packet_type"], r["reject_reason"]) == expect
        assert ex.connection.closed and not ex.connection.logged_in


def test_sequence_numbers_and_replay_on_reconnect(ex):
    out = ex.on_client_bytes(enter("T1", "B", 10, "AAPL", 1_900_100) + sb.pack_packet("R")
                             + enter("T2", "B", 10, "MSFT", 1, tif=99999), T0 + 1)
    assert codes(replies(out)) == "AEA"
    assert ex.next_sequence == 4 and len(ex.stream) == 3
    ex.on_client_bytes(sb.pack_packet("O"), T0 + 2)
    assert ex.connection.closed
    ex.reconnect()
    r = replies(ex.on_client_bytes(login(seq=2), T0 + 3))
    assert r[0]["sequence_number"] == 2 and codes(r) == "AEA"[0] + "EA"
    assert [m["order_token"] for m in r[1:]] == ["T1", "T2"]
    ex.reconnect()
    r = replies(ex.on_client_bytes(login(seq=0), T0 + 4))       # 0: only new messages
    assert len(r) == 1 and r[0]["sequence_number"] == 4
    ex.reconnect()
    r = replies(ex.on_client_bytes(login(seq=99), T0 + 4))      # past the end: the same
    assert len(r) == 1 and r[0]["sequence_number"] == 4


def test_heartbeats_debug_and_end_of_session(ex):
    assert ex.on_client_bytes(sb.pack_packet("R") + sb.pack_packet("+", b"hello"), T0) == b""
    assert ex.connection.debug == [b"hello"]
    assert ex.connection.heartbeat() == b"\x00\x01H"
    assert ex.connection.end_session() == b"\x00\x01Z" and ex.connection.closed
    assert replies(ex.system_event(ouch.EVENT_START_OF_DAY, T0))[0]["event_code"] == "S"


# -- orders ------------------------------------------------------------------------------
@pytest.mark.parametrize("side, shares, stock, price, fill, cancel_", [
    ("B", 100, "AAPL", 1_900_100, (100, 1_900_100), None),        # at the ask, full
    ("B", 250, "AAPL", 1_950_000, (200, 1_900_100), 50),          # through, partial
    ("B", 100, "AAPL", 1_900_099, None, 100),                     # below the ask
    ("S", 300, "AAPL", 1_899_900, (300, 1_899_900), None),        # at the bid
    ("T", 400, "AAPL", 1, (300, 1_899_900), 100),                 # short, through
    ("E", 10, "AAPL", 1_899_901, None, 10),                       # above the bid
    ("S", 10, "MSFT", 1, None, 10),                               # empty bid side
    ("B", 10, "ZVZZT", 999_999_999, None, 10),                    # empty ask side
])
def test_immediate_or_cancel(ex, side, shares, stock, price, fill, cancel_):
    r = replies(ex.on_client_bytes(enter("IOC1", side, shares, stock, price, firm="WSPD",
                                         display="Y", capacity="A"), T0 + 5))
    acc = r[0]
    assert acc["message_type"] == "A" and acc["order_state"] == "L"
    assert (acc["order_token"], acc["buy_sell_indicator"], acc["shares"], acc["stock"],
            acc["price"], acc["time_in_force"], acc["firm"], acc["display"],
            acc["capacity"]) == ("IOC1", side, shares, stock, price, 0, "WSPD", "Y", "A")
    assert acc["timestamp"] == T0 + 5 and acc["order_reference_number"] == 1
    rest = r[1:]
    if fill:
        e = rest.pop(0)
        assert (e["message_type"], e["executed_shares"], e["execution_price"],
                e["liquidity_flag"], e["match_number"]) == ("E", *fill, "R", 1)
        assert ex.positions[stock] == (fill[0] if side == "B" else -fill[0])
    if cancel_:
        c = rest.pop(0)
        assert (c["message_type"], c["decrement_shares"], c["reason"]) == ("C", cancel_, "I")
    assert rest == []
    order = ex.orders["IOC1"]
    assert not order.live and order.open_shares == 0
    assert order.executed_shares + order.canceled_shares == shares


def test_resting_orders_and_cancels(ex):
    r = replies(ex.on_client_bytes(enter("R1", "B", 500, "AAPL", 2_000_000, tif=99998), T0))
    assert codes(r) == "A"                     # marketable but resting: no fill by design
    assert ex.orders["R1"].live and ex.positions["AAPL"] == 0
    (c,) = replies(ex.on_client_bytes(cancel("R1", 200), T0 + 1))
    assert (c["message_type"], c["decrement_shares"], c["reason"]) == ("C", 300, "U")
    assert ex.orders["R1"].open_shares == 200 and ex.orders["R1"].live
    assert ex.on_client_bytes(cancel("R1", 200), T0 + 2) == b""    # not below: nothing
    assert ex.on_client_bytes(cancel("R1", 900), T0 + 2) == b""
    (c,) = replies(ex.on_client_bytes(cancel("R1"), T0 + 3))
    assert c["decrement_shares"] == 200 and not ex.orders["R1"].live
    assert ex.on_client_bytes(cancel("R1"), T0 + 4) == b""         # dead
    assert ex.on_client_bytes(cancel("NOPE"), T0 + 4) == b""       # unknown
    assert ex.ignored["X"] == 4


@pytest.mark.parametrize("order, reason", [
    (("R1", "B", 100, "AAPL", 1), "O"),          # token already used by the fixture order
    (("N1", "B", 100, "GOOG", 1), "S"),          # not listed
    (("N2", "B", 0, "AAPL", 1), "O"),            # zero shares
    (("N3", "S", 100, "AAPL", 0), "X"),          # price 0
    (("N4", "Q", 100, "AAPL", 1), "O"),          # no such side
    (("", "B", 100, "AAPL", 1), "O"),            # blank token
])
def test_rejects(ex, order, reason):
    ex.on_client_bytes(enter("R1", "B", 1, "AAPL", 1, tif=99999), T0)
    (j,) = replies(ex.on_client_bytes(enter(*order), T0 + 7))
    assert (j["message_type"], j["order_token"], j["reason"], j["timestamp"]) == (
        "J", order[0], reason, T0 + 7)
    assert ex.rejects[-1] == (order[0], reason)
    assert ex.orders["R1"].entered_shares == 1       # the original is untouched
    (j,) = replies(ex.on_client_bytes(enter(order[0], "B", 1, "AAPL", 1), T0 + 8))
    assert j["message_type"] == "J"                  # a rejected token stays used


def test_replace(ex):
    ex.on_client_bytes(enter("OLD", "S", 100, "AAPL", 1_950_000, tif=99998, firm="WSPD"), T0)
    (u,) = replies(ex.on_client_bytes(replace("OLD", "NEW", 80, 1_960_000), T0 + 1))
    assert (u["message_type"], u["replacement_order_token"], u["previous_order_token"],
            u["shares"], u["price"], u["stock"], u["buy_sell_indicator"], u["firm"],
            u["order_reference_number"]) == ("U", "NEW", "OLD", 80, 1_960_000, "AAPL", "S",
                                             "WSPD", 2)
    assert not ex.orders["OLD"].live and ex.orders["OLD"].replaced_by == "NEW"
    assert ex.on_client_bytes(replace("OLD", "NEW2", 1, 1), T0 + 2) == b""   # dead: ignored
    (j,) = replies(ex.on_client_bytes(replace("NEW", "OLD", 1, 1), T0 + 3))
    assert (j["message_type"], j["order_token"], j["reason"]) == ("J", "OLD", "O")
    r = replies(ex.on_client_bytes(replace("NEW", "IOC", 500, 1, tif=0), T0 + 4))
    assert codes(r) == "UEC" and r[1]["executed_shares"] == 300        # sells into the bid
    assert ex.positions["AAPL"] == -300


# -- randomized: invariants and segmentation independence -----------------------------------
def _random_flow(rng: random.Random, n: int) -> list[bytes]:
    packets, tokens = [login()], []
    for i in range(n):
        kind = rng.random()
        if kind < 0.6 or not tokens:
            token = f"T{i}" if rng.random() > 0.05 or not tokens else rng.choice(tokens)
            tokens.append(token)
            packets.append(enter(token, rng.choice("BSTE"), rng.choice((0, 1, 100, 250, 999)),
                                 rng.choice(STOCKS + ("NOPE",)),
                                 rng.choice((0, 1, 1_899_900, 1_900_100, 9_999_999)),
                                 tif=rng.choice((0, 0, 0, 30, 99998, 99999))))
        elif kind < 0.85:
            packets.append(cancel(rng.choice(tokens), rng.choice((0, 0, 50, 500))))
        elif kind < 0.95:
            packets.append(replace(rng.choice(tokens), f"R{i}", rng.choice((1, 70)),
                                   rng.choice((1, 1_900_100)), tif=rng.choice((0, 99999))))
        else:
            packets.append(sb.pack_packet("R"))
    return packets


def _run(stream: bytes, rng: random.Random | None) -> tuple[bytes, ExchangeSimulator]:
    ex, _ = make_exchange()
    out, at = [], 0
    while at < len(stream):
        n = len(stream) if rng is None else rng.choice((1, 3, 50, 200, 1460))
        out.append(ex.on_client_bytes(stream[at:at + n], T0 + at))
        at += n
    return b"".join(out), ex


def test_random_flow_invariants():
    rng = random.Random(SEED)
    for _trial in range(5):
        stream = b"".join(_random_flow(rng, 400))
        whole, ex = _run(stream, None)
        out = replies(whole)
        assert out[0]["packet_type"] == "A"
        ouch_msgs = out[1:]
        assert len(ouch_msgs) == len(ex.stream), WHERE
        assert [ouch.decode(m) for m in ex.stream] == ouch_msgs, WHERE
        refs = [m["order_reference_number"] for m in ouch_msgs if m["message_type"] in "AU"]
        matches = [m["match_number"] for m in ouch_msgs if m["message_type"] == "E"]
        assert len(set(refs)) == len(refs) and len(set(matches)) == len(matches), WHERE
        for o in ex.orders.values():
            assert o.open_shares + o.executed_shares + o.canceled_shares == o.entered_shares
            if o.time_in_force == ouch.TIF_IOC:
                assert not o.live and o.open_shares == 0, WHERE
        net: dict[str, int] = {}
        for f in ex.fills:
            net[f.stock] = net.get(f.stock, 0) + (f.shares if f.side == "B" else -f.shares)
        assert {k: v for k, v in ex.positions.items() if v} == {
            k: v for k, v in net.items() if v}, WHERE
        # Same bytes whatever the segmentation (timestamps aside: they follow the chunks).
        split, ex2 = _run(stream, rng)
        strip = [{k: v for k, v in m.items() if k != "timestamp"} for m in replies(split)]
        assert strip == [{k: v for k, v in m.items() if k != "timestamp"} for m in out], WHERE
        assert ex2.positions == ex.positions, WHERE


# -- malformed client input ----------------------------------------------------------------
@pytest.mark.parametrize("data, message", [
    (enter("A1", "B", 1, "AAPL", 1), "unsequenced_data 'U' before login"),
    (sb.pack_packet("R"), "client_heartbeat 'R' before login"),
    (login() + login(), "second login request"),
    (login() + b"\x00\x00", "packet length 0 at stream offset 49"),
    (login() + b"\x01\x00U", "packet length 256 .* exceeds the limit 81"),
    (login() + sb.pack_packet("S", b"x"), "unexpected packet type 'S'"),
    (login() + sb.pack_packet("U", b""), "empty OUCH message"),
    (login() + sb.pack_packet("U", b"Q" + bytes(18)), "no inbound OUCH message of type 'Q'"),
    (login() + sb.pack_packet("U", ouch.encode("A")), "no inbound OUCH message of type 'A'"),
    (login() + sb.pack_packet("U", ouch.encode("X")[:-1]), "cancel_order is 19 bytes, got 18"),
    (login() + sb.pack_packet("O") + sb.pack_packet("R"), "'R' packet after the connection"),
    (login(password="x") + enter("A1", "B", 1, "AAPL", 1), "'U' packet after the connection"),
])
def test_protocol_errors(data, message):
    ex, _ = make_exchange()
    with pytest.raises(ExchangeError, match=message) as e:
        ex.on_client_bytes(data, T0)
    if data.startswith(login()):
        assert codes(replies(e.value.output)) == "A"     # the login was still answered
    assert ex.connection.closed and ex.connection.error
    with pytest.raises(ExchangeError, match="data on a closed connection"):
        ex.on_client_bytes(sb.pack_packet("R"), T0)


def test_fuzz_never_crashes():
    rng = random.Random(SEED + 11)
    good = login() + enter("F1", "B", 10, "AAPL", 1_900_100)
    for _ in range(1000):
        ex, _ = make_exchange()
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            ex.on_client_bytes(bytes(data), T0)
        except ExchangeError as e:
            assert str(e), WHERE


# -- nasdaq-protocols ------------------------------------------------------------------------
def _split_frames(data: bytes) -> list[bytes]:
    """Cut a SoupBinTCP stream by its length fields (no use of our deframer)."""
    out, at = [], 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 2], "big")
        out.append(data[at:at + 2 + n])
        at += 2 + n
    return out


def test_nasdaq_codecs_on_the_session():
    """Client bytes written by nasdaq-protocols in, server bytes read by nasdaq-protocols out."""
    ex, _ = make_exchange()
    order = dict(order_token="NQ1", buy_sell_indicator="B", shares=250, stock="AAPL",
                 price=1_950_000, time_in_force=0, firm="WSPD", display="Y", capacity="A",
                 intermarket_sweep="N", minimum_quantity=0, cross_type="N", customer_type=" ")
    client = b"".join(m.to_bytes()[1] for m in (
        nq.LoginRequest(USER, PASSWORD, "", "1"),
        nq.UnSequencedData(nq_encode(ouch.INBOUND_DIRECTION, "O", order)),
        nq.ClientHeartbeat(),
        nq.UnSequencedData(nq_encode(ouch.INBOUND_DIRECTION, "X", dict(
            order_token="NQ1", shares=0)))))
    frames = _split_frames(ex.on_client_bytes(client, T0))
    msgs = [nq.SoupMessage.from_bytes(f)[1] for f in frames]
    assert isinstance(msgs[0], nq.LoginAccepted)
    assert (msgs[0].session_id, msgs[0].sequence) == (SESSION, 1)
    assert all(isinstance(m, nq.SequencedData) for m in msgs[1:])
    decoded = [nq_decode_outbound(m.data) for m in msgs[1:]]
    assert [d["message_type"] for d in decoded] == ["A", "E", "C"]
    assert decoded[1]["executed_shares"] == 200 and decoded[2]["decrement_shares"] == 50
    assert decoded == [ouch.decode(m) for m in ex.stream]


class _NqOuchClient(nq_ouch.ClientSession):
    """nasdaq-protocols' OUCH client session, decoding with the 4.2 definitions."""

    def decode(self, bytes_: bytes):
        return NQ[(OUT, "S")].from_bytes(bytes_)


def test_end_to_end_with_nasdaq_client():
    """nasdaq-protocols' SoupBinTCP + OUCH client against serve() on 127.0.0.1."""
    async def scenario():
        ex, book = make_exchange()
        errors: list[str] = []
        server = await serve(ex, "127.0.0.1", 0, errors=errors, heartbeat_s=0.2)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(nq.connect_async(
                    ("127.0.0.1", port), USER, "bad", connect_timeout=2), 5)
            client = await asyncio.wait_for(nq_ouch.connect_async(
                ("127.0.0.1", port), USER, PASSWORD, "", 1, connect_timeout=2,
                session_factory=lambda s: _NqOuchClient(s)), 5)
            got = []

            async def receive(n):
                for _ in range(n):
                    msg = await asyncio.wait_for(client.receive_message(), 5)
                    got.append({"message_type": chr(msg.MsgId.indicator),
                                **msg.record.values})

            enter_o = NQ[(ouch.INBOUND_DIRECTION, "O")]()
            for name, value in dict(order_token="E2E1", buy_sell_indicator="S", shares=500,
                                    stock="AAPL", price=1_800_000, time_in_force=0,
                                    firm="WSPD").items():
                setattr(enter_o, name, value)
            client.send_message(enter_o)
            await receive(3)
            book["AAPL"] = (1_899_800, 1000, 1_900_100, 200)    # the book moves
            cancel_x = NQ[(ouch.INBOUND_DIRECTION, "X")]()
            cancel_x.order_token = "NONE"
            client.send_message(cancel_x)                        # unknown: no reply
            enter_o.order_token = "E2E2"
            client.send_message(enter_o)
            await receive(2)                                     # fills in full: no C
            await asyncio.wait_for(client.close(), 5)
        finally:
            server.close()
            await server.wait_closed()
        return ex, got, errors

    ex, got, errors = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert errors == []
    assert [m["message_type"] for m in got] == list("AECAE")
    assert [(m["executed_shares"], m["execution_price"]) for m in got
            if m["message_type"] == "E"] == [(300, 1_899_900), (500, 1_899_800)]
    assert got[2]["decrement_shares"] == 200 and got[2]["reason"] == "I"
    assert got == [ouch.decode(m) for m in ex.stream]
    assert ex.positions["AAPL"] == -800 and ex.ignored["X"] == 1


def test_server_heartbeat_and_loopback_only():
    async def scenario():
        ex, _ = make_exchange()
        server = await serve(ex, heartbeat_s=0.05)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            writer.write(login())
            accepted = await asyncio.wait_for(reader.readexactly(33), 5)
            beat = await asyncio.wait_for(reader.readexactly(3), 5)
            writer.write(b"\x00\x00")                   # framing fault: the server hangs up
            rest = await asyncio.wait_for(reader.read(), 5)
            writer.close()
        finally:
            server.close()
            await server.wait_closed()
        return accepted, beat, rest

    accepted, beat, rest = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert accepted[2:3] == b"A" and beat == b"\x00\x01H"
    assert set(_split_frames(rest)) <= {b"\x00\x01H"}   # only heartbeats before the close

    async def refuse(host):
        ex, _ = make_exchange()
        await serve(ex, host)
    for host in ("0.0.0.0", "10.0.0.100", "example.com", "::"):
        with pytest.raises(ValueError, match="only listens on loopback"):
            asyncio.run(refuse(host))
