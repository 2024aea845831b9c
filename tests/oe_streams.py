"""Stimulus for the order-entry return path: real exchange sessions, faults, bus schedules.

A session drives :class:`sim.exchange.ExchangeSimulator` with OUCH enter, cancel and
replace orders encoded by :mod:`proto.ouch` (tokens in our format, :mod:`hw.oe.tokens`) and
records, in causal order, the gate's verdict for each order and the bytes the exchange wrote
back. :func:`faults` adds malformed packets between them; :func:`schedule` lays the result
onto bus cycles (random beat packing, idle cycles, verdicts overlapping the byte stream).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hw.oe.tokens import format_token
from hw.risk.params import OrderKind, Reason, Side, Source
from proto import ouch
from proto import soupbintcp as soup
from sim.exchange import ExchangeSimulator

STOCKS = ("AAA", "BBB", "CCC", "DDD")      # slot = index; DDD is not listed: rejected
LISTED = STOCKS[:3]
T0 = 34_200_000_000_000


@dataclass
class Step:
    """One thing that happens, in causal order: a verdict, bytes from the exchange, or a
    connection restart."""

    verdict: dict | None = None
    data: bytes = b""
    restart: bool = False


@dataclass
class Session:
    steps: list[Step] = field(default_factory=list)
    exchange: ExchangeSimulator | None = None
    #: token string -> (source, number, slot, side) of every order sent to the exchange
    sent: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    replaced: set[str] = field(default_factory=set)   #: tokens replaced (not tracked)

    @property
    def stream(self) -> bytes:
        return b"".join(s.data for s in self.steps)


def verdict(source, token, slot, side, shares, price=1, tif=0, *, kind=OrderKind.NEW,
            reason=Reason.ACCEPTED) -> dict:
    return {"order": dict(kind=int(kind), source=int(source), token=token, slot=slot,
                          side=int(side), shares=shares, price=price, tif=tif),
            "reason": int(reason)}


def session(rng: random.Random, n_orders: int, *, token_step: int = 3,
            resting: float = 0.35) -> Session:
    """A logged-in session of ``n_orders`` entered orders with cancels, replaces,
    heartbeats, system events and gate rejections (verdicts that never reach the exchange).

    ``token_step``: token numbers of a source grow by 1..token_step (the gate only needs
    them to increase), so small tables see conflicts; ``resting``: share of orders that rest
    (time in force not 0) instead of being immediate-or-cancel."""
    book = {s: (0, 0, 0, 0) for s in STOCKS}
    ex = ExchangeSimulator(lambda s: book[s], LISTED)
    ses = Session(exchange=ex)
    now = T0
    ses.steps.append(Step(data=ex.on_client_bytes(soup.login_request("WIRE", "SPEED"), now)))
    nxt = {Source.HOST: rng.randrange(1, 1 << 20), Source.TRIGGER: rng.randrange(1, 1 << 40)}

    def send(packet: bytes) -> None:
        out = ex.on_client_bytes(packet, now)
        if out:
            ses.steps.append(Step(data=out))

    entered = 0
    n = 0
    while entered < n_orders:
        now += rng.randrange(1, 50_000)
        for s in LISTED:     # the book moves
            mid = rng.randrange(990, 1010) * 100
            book[s] = (mid - 100, rng.choice((0, 100, 300)), mid + 100, rng.choice((0, 50, 400)))
        r = rng.random()
        live = [t for t, o in ex.orders.items() if o.live]
        if r < 0.62 or not live:
            src = rng.choice((Source.HOST, Source.TRIGGER))
            number = nxt[src]
            nxt[src] += rng.randint(1, token_step)
            slot = rng.randrange(len(STOCKS))
            side = rng.choice((Side.BUY, Side.SELL))
            shares = rng.choice((1, 100, 200, 500, rng.randrange(1, 3000)))
            mid = (book[STOCKS[slot]][0] + book[STOCKS[slot]][2]) // 2 or 100_000
            price = mid + rng.choice((-300, -100, 0, 100, 300))
            tif = ouch.TIF_MARKET_HOURS if rng.random() < resting else ouch.TIF_IOC
            if rng.random() < 0.08:      # the gate says no: nothing goes out
                reason = rng.choice([r for r in Reason if r != Reason.ACCEPTED])
                ses.steps.append(Step(verdict=verdict(src, number, slot, side, shares, price,
                                                      tif, reason=reason)))
                continue
            token = format_token(src, number)
            ses.steps.append(Step(verdict=verdict(src, number, slot, side, shares, price, tif)))
            ses.sent[token] = (int(src), number, slot, int(side))
            letter = ouch.SIDE_BUY if side == Side.BUY else rng.choice(sorted(ouch.SELL_SIDES))
            send(soup.pack_packet("U", ouch.encode(
                "O", order_token=token, buy_sell_indicator=letter, shares=shares,
                stock=STOCKS[slot], price=price, time_in_force=tif, firm="WIRE",
                display="Y", capacity="A", intermarket_sweep="N", cross_type="N",
                customer_type="R")))
            entered += 1
        elif r < 0.80:
            token = rng.choice(live)
            o = ex.orders[token]
            # A cancel is a verdict too (kind CANCEL, always accepted): never registered.
            if token in ses.sent:       # (not for a replacement: the gate never saw it)
                src, number, slot, side = ses.sent[token]
                ses.steps.append(Step(verdict=verdict(src, number, slot, side, 0,
                                                      kind=OrderKind.CANCEL)))
            send(soup.pack_packet("U", ouch.encode(
                "X", order_token=token, shares=rng.choice((0, 0, o.open_shares // 2)))))
        elif r < 0.84:
            token = rng.choice(live)
            src = rng.choice((Source.HOST, Source.TRIGGER))
            new = format_token(src, nxt[src])
            nxt[src] += 1
            ses.replaced.add(token)
            send(soup.pack_packet("U", ouch.encode(
                "U", ouch.INBOUND_DIRECTION, existing_order_token=token,
                replacement_order_token=new, shares=rng.randrange(1, 500),
                price=100_000, time_in_force=rng.choice((0, ouch.TIF_MARKET_HOURS)))))
        elif r < 0.92:
            ses.steps.append(Step(data=ex.connection.heartbeat()))
        elif r < 0.96:
            ses.steps.append(Step(data=ex.system_event(rng.choice("SE"), now)))
        else:
            text = bytes(rng.randrange(0x20, 0x7F) for _ in range(rng.choice((0, 5, 40, 300))))
            ses.steps.append(Step(data=soup.pack_packet("+", text)))
        n += 1
    ses.steps.append(Step(data=ex.connection.end_session()))
    return ses


# -- faults -------------------------------------------------------------------------------------
def _s(message: bytes) -> bytes:
    """An ``S`` packet around any bytes (pack_packet refuses nothing for ``S``)."""
    return soup.pack_packet("S", message)


def _raw(length: int, rest: bytes) -> bytes:
    return length.to_bytes(2, "big") + rest


def outbound_message(rng: random.Random, code: str, token: str | bytes, shares: int = 0) -> bytes:
    tok = token if isinstance(token, bytes) else token.encode()
    fields = {"timestamp": rng.randrange(1 << 40), "order_token": tok}
    if code == "E":
        fields |= {"executed_shares": shares, "execution_price": 100_000,
                   "liquidity_flag": "R", "match_number": rng.randrange(1 << 30)}
    elif code == "C":
        fields |= {"decrement_shares": shares, "reason": "U"}
    else:
        fields |= {"reason": "O"}
    return ouch.encode(code, ouch.OUTBOUND_DIRECTION, **fields)


def bad_tokens(rng: random.Random) -> list[bytes]:
    """Tokens that are not ours: prefix, source letter, digits, case, padding."""
    good = format_token(Source.HOST, rng.randrange(1 << 48)).encode()
    out = [b"X" + good[1:], b"WQ" + good[2:], b"WH" + good[2:].lower().replace(b"0", b"a"),
           good[:5] + b"G" + good[6:], good[:13] + b" ", good[:7] + b"\0" + good[8:],
           b"w" + good[1:], b"WH" + b"@" * 12, b"WT:" + good[3:], b"R1".ljust(14)]
    return [t for t in out if len(t) == 14]


def fault(rng: random.Random, sent: list[str], token_bits: int = 48) -> bytes:
    """One malformed (but well-framed) packet, a message on a token that is not live, or a
    well-formed packet the session would not send here."""
    k = rng.randrange(15)
    if k == 0:      # a type a server never sends, or no type at all
        t = rng.choice(b"LUROQx\x00\xff")
        return _raw(1 + (n := rng.randrange(0, 12)), bytes([t]) + bytes(n))
    if k == 1:      # fixed-length types with the wrong length
        t, want = rng.choice(sorted((t, n) for t, n in soup.PACKET_LENGTH.items()
                                    if t in soup.SERVER_TYPES))
        n = rng.choice([x for x in (1, 2, 3, want - 1, want + 1, 40) if x not in (0, want)])
        return _raw(n, t.encode() + bytes(n - 1))
    if k == 2:      # a zero length: the byte after it is consumed as a type
        return _raw(0, rng.choice((b"S", b"H", b"\x00")))
    if k == 3:
        return _raw(1, b"S")                       # an empty S packet
    if k == 4:      # an unknown OUCH type
        return _s(rng.choice(b"XOBQZa").to_bytes(1, "big") + bytes(rng.randrange(0, 45)))
    if k == 5:      # a known OUCH type with another length
        code = rng.choice("SAUCEJ")
        ln = ouch.LENGTHS[ouch.OUTBOUND_DIRECTION][code]
        return _s(code.encode() + bytes(ln - 1 + rng.choice((-1, 1, -3, 5))))
    if k in (6, 7):     # E/C/J on a token not in our format
        return _s(outbound_message(rng, rng.choice("ECJ"), rng.choice(bad_tokens(rng)),
                            rng.randrange(1000)))
    if k == 8:      # our format, but never sent (or too wide for token_bits)
        number = rng.choice((rng.randrange(1 << token_bits), (1 << 48) - 1))
        return _s(outbound_message(rng, rng.choice("ECJ"),
                            format_token(rng.choice(list(Source)), number), 7))
    if k in (9, 10) and sent:   # a real token again: over-fills, over-cancels, duplicates
        return _s(outbound_message(rng, rng.choice("ECJ"), rng.choice(sent),
                            rng.choice((0, 1, 100, 5000, (1 << 32) - 1))))
    if k == 11:     # a long debug packet: positions and lengths past every capture
        return soup.pack_packet("+", bytes(rng.randrange(256) for _ in range(rng.randrange(
            30, 600))))
    if k == 12:     # heartbeats, many in a row
        return soup.pack_packet("H") * rng.randrange(1, 6)
    if k == 13:     # well-formed, but out of place: a login rejected
        return soup.encode("J", reject_reason=rng.choice("AS"))
    return _s(outbound_message(rng, "E", format_token(Source.TRIGGER, 5), 1)[:-1])   # E one short


def with_faults(rng: random.Random, ses: Session, rate: float, *,
                desync: bool = False) -> Session:
    """``ses`` with a malformed packet after each step with probability ``rate``.

    ``desync``: once, corrupt the length of a packet somewhere in the middle (framing is
    lost from there) and restart the connection a few steps later, as a TCP engine does
    after a reconnect — the restart comes with a fresh login reply."""
    out = Session(exchange=ses.exchange, sent=ses.sent, replaced=ses.replaced)
    sent = list(ses.sent)
    n = len(ses.steps)
    cut = rng.choice([i for i in range(n // 3, 2 * n // 3) if ses.steps[i].data]) \
        if desync else -1
    for i, st in enumerate(ses.steps):
        if i == cut:
            d = bytearray(st.data)
            d[0] ^= rng.choice((0x01, 0x10, 0x80))
            out.steps.append(Step(verdict=st.verdict, data=bytes(d)))
        elif i == cut + 4 and desync:
            out.steps.append(Step(restart=True))
            out.steps.append(Step(data=soup.encode("A", session="WIRESPEED", sequence_number=1)))
            out.steps.append(st)
        else:
            out.steps.append(st)
        if rng.random() < rate:
            out.steps.append(Step(data=fault(rng, sent)))
    return out


# -- bus schedule ---------------------------------------------------------------------------------
@dataclass
class Cycle:
    beat: bytes = b""          #: the bytes of this cycle's beat (empty: no beat)
    verdict: dict | None = None
    restart: bool = False
    offset: int = 0            #: stream offset of the beat's first byte


def schedule(rng: random.Random, steps: list[Step], *, idle: float = 0.2, full: float = 0.7,
             overlap: int = 3, tail: int = 12) -> list[Cycle]:
    """Lay ``steps`` onto cycles: bytes into beats of 1..8 bytes (``full``: share of 8-byte
    beats) with idle cycles (``idle``), a beat holding bytes of several steps; verdicts one a
    cycle, up to ``overlap`` cycles before the beats still carrying earlier bytes (never
    before a byte that comes after them in ``steps``)."""
    cycles: list[Cycle] = []
    beat_t = 0
    verdict_t = 0
    pending = bytearray()
    offset = 0

    def at(t: int) -> Cycle:
        while len(cycles) <= t:
            cycles.append(Cycle())
        return cycles[t]

    def emit(flush: bool) -> None:
        nonlocal beat_t, offset
        while len(pending) >= 8 or (flush and pending):
            while rng.random() < idle:
                beat_t += 1
            n = 8 if rng.random() < full else rng.randint(1, 8)
            n = min(n, len(pending))
            c = at(beat_t)
            c.beat, c.offset = bytes(pending[:n]), offset
            del pending[:n]
            offset += n
            beat_t += 1

    for st in steps:
        if st.restart:
            emit(True)
            at(beat_t).restart = True
            verdict_t = max(verdict_t, beat_t)
        if st.verdict is not None:
            t = max(verdict_t, beat_t - rng.randint(0, overlap))
            at(t).verdict = st.verdict
            verdict_t = t + 1
            if pending and rng.random() < 0.5:
                emit(True)      # bytes before the verdict leave now (else with later ones)
            beat_t = max(beat_t, t)
        if st.data:
            pending += st.data
            emit(False)
    emit(True)
    at(max(beat_t, verdict_t) + tail)
    return cycles
