"""Exchange simulator: the exchange side of SoupBinTCP 3.0 + OUCH 4.2.

The core is synchronous and deterministic: :meth:`ExchangeSimulator.on_client_bytes` takes the
bytes a client wrote (any TCP segmentation) and the exchange time, and returns the bytes the
exchange writes back. No threads, no wall clock, no randomness: a replay harness calls it
directly with the card's egress stream, and :func:`serve` puts the same core behind an asyncio
TCP server on the loopback interface for tools and end-to-end tests.

Why the session layer is ours and not nasdaq-protocols' ``SoupServerSession``: that class is an
``asyncio.Protocol`` whose reader is a background task polling its buffer every 100 us, which
dispatches messages through queues and tasks and runs heartbeat monitors on wall-clock
timers. It needs a running event loop and a transport, and when it has answered an input is a
matter of task scheduling, so it cannot be the bytes-in/bytes-out deterministic core that a
replay (and the asyncio server) must share; wrapping it in a private loop run "until idle"
would be slow and still timer-driven. Two of its behaviours would also leak into what the card
sees: it writes the login-accepted sequence number left-justified (the specification pads
numerics on the left), and its reader task dies on a login request with an all-space sequence
field. So the session layer here is built on :mod:`proto.soupbintcp`, and nasdaq-protocols is
used where it is independent: its codecs decode what this simulator writes and encode what it
reads, and its client (``soup.connect_async`` + an OUCH ``ClientSession``) drives :func:`serve`
end to end over 127.0.0.1 in ``tests/test_exchange_sim.py``.

Matching model (deliberately small; what the order-entry tests need):

* enter order ``O``: rejected (``J``) for a reused token (reason ``O``: OUCH 4.2 has no code
  for it), a stock not listed (``S``), zero shares (``O``), price 0 (``X``), an unknown side
  (``O``). Otherwise accepted (``A``) with a new order reference number. Time in force 0
  (immediate or cancel) then fills once against the *top of book* the caller's ``bbo`` gives
  at that moment: a buy at price >= best ask gets min(shares, ask size) at the ask, a sell at
  price <= best bid symmetrically (``E``, unique match number, liquidity ``R``); the rest is
  canceled (``C``, reason ``I``). Other times in force rest, never fill, until canceled.
  The book is not consumed: two IOCs at the same moment both see the full best level.
* cancel ``X``: ``shares`` is the intended new size; a live order above it is reduced
  (``C``, reason ``U``, decrement = old - new; dead at 0). Unknown or dead tokens, or a size not
  below the open size, produce nothing (counted in ``ignored``).
* replace ``U``: a live order is replaced by the replacement token (``U`` replaced, new order
  reference number, same stock and side); the replacement is then handled like a new order
  (a TIF 0 replacement fills as an IOC). A reused replacement token is rejected (``J``, ``O``);
  an unknown or dead existing token is ignored.

All outbound OUCH messages are SoupBinTCP ``S`` packets numbered 1, 2, ... within the session;
the stream is kept, so a login with a requested sequence number replays from there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from proto import ouch
from proto import soupbintcp as soup

#: ``bbo(stock) -> (bid_px, bid_sz, ask_px, ask_sz)``; (0, 0) for an empty side.
BboSource = Callable[[str], tuple[int, int, int, int]]

_NS_PER_DAY = 86_400 * 1_000_000_000
#: Enter-order fields the accepted (and replaced) message echoes unchanged.
_ECHOED = ("firm", "display", "capacity", "intermarket_sweep", "minimum_quantity", "cross_type")
#: The subset a replace order may change.
_REPLACEABLE = ("display", "intermarket_sweep", "minimum_quantity")


class ExchangeError(ValueError):
    """A client broke the protocol (framing, order of packets, a malformed OUCH message).
    The connection is closed; ``output`` holds the bytes written before the fault."""

    def __init__(self, message: str, output: bytes = b""):
        super().__init__(message)
        self.output = output


@dataclass
class Order:
    """One accepted order, by token. ``open_shares`` is what can still execute."""

    token: str
    stock: str
    side: str
    price: int
    time_in_force: int
    order_reference_number: int
    entered_shares: int
    open_shares: int
    executed_shares: int = 0
    canceled_shares: int = 0
    live: bool = True
    replaced_by: str | None = None
    #: Echoed fields: firm, display, capacity, intermarket_sweep, minimum_quantity, cross_type.
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Fill:
    token: str
    stock: str
    side: str
    shares: int
    price: int
    match_number: int
    timestamp: int


@dataclass
class ExchangeSimulator:
    """One exchange session (one OUCH account): order state, positions and the sequenced
    stream. :meth:`connect` opens a connection; :meth:`on_client_bytes` drives the default
    one (a new one after :meth:`reconnect`)."""

    bbo: BboSource
    stocks: Iterable[str]
    username: str = "WIRE"
    password: str = "SPEED"
    session: str = "WIRESPEED"
    first_order_reference: int = 1
    first_match_number: int = 1

    orders: dict[str, Order] = field(init=False, default_factory=dict)
    fills: list[Fill] = field(init=False, default_factory=list)
    #: Net position per stock in shares (buys positive; sells, short or not, negative).
    positions: defaultdict[str, int] = field(init=False,
                                             default_factory=lambda: defaultdict(int))
    rejects: list[tuple[str, str]] = field(init=False, default_factory=list)  #: (token, reason)
    ignored: Counter = field(init=False, default_factory=Counter)  #: by OUCH type code
    stream: list[bytes] = field(init=False, default_factory=list)  #: seq n at [n - 1]

    def __post_init__(self) -> None:
        self.stocks = frozenset(s.rstrip(" ") for s in self.stocks)
        for name, value, width in (("username", self.username, 6),
                                   ("password", self.password, 10),
                                   ("session", self.session, 10)):
            if len(value) > width or not value.isascii():
                raise ValueError(f"{name} {value!r} does not fit {width} ASCII characters")
        self._tokens: set[str] = set()
        self._next_ref = self.first_order_reference
        self._next_match = self.first_match_number
        self.connection = self.connect()

    # -- sessions ----------------------------------------------------------------------------
    @property
    def next_sequence(self) -> int:
        return len(self.stream) + 1

    def connect(self) -> Connection:
        """A new client connection (one TCP connection) to this session."""
        return Connection(self)

    def reconnect(self) -> Connection:
        """Replace the default connection, as a client does after a disconnect."""
        self.connection.closed = True
        self.connection = self.connect()
        return self.connection

    def on_client_bytes(self, data: bytes, now_ns: int) -> bytes:
        """Bytes from the client on the default connection -> bytes back to it."""
        return self.connection.on_bytes(data, now_ns)

    def system_event(self, event_code: str, now_ns: int) -> bytes:
        """Append a system event (``S`` start of day, ``E`` end of day) to the stream; returns
        its ``S`` packet for the caller to deliver."""
        return self._publish([ouch.encode("S", timestamp=now_ns, event_code=event_code)])

    # -- OUCH engine -------------------------------------------------------------------------
    def on_ouch(self, message: bytes, now_ns: int) -> bytes:
        """One inbound OUCH message -> the ``S`` packets of the replies (appended to the stream).
        Raises :class:`proto.ouch.OuchError` for a malformed message."""
        m = ouch.decode(message, ouch.INBOUND_DIRECTION)
        code = m["message_type"]
        if code == "O":
            out = self._enter(m, m["order_token"], now_ns)
        elif code == "X":
            out = self._cancel(m, now_ns)
        else:
            out = self._replace(m, now_ns)
        if not out:
            self.ignored[code] += 1
        return self._publish(out)

    def _publish(self, messages: list[bytes]) -> bytes:
        self.stream.extend(messages)
        return b"".join(soup.pack_packet("S", m) for m in messages)

    def _reject(self, token: str, reason: str, now_ns: int) -> list[bytes]:
        self.rejects.append((token, reason))
        return [ouch.encode("J", timestamp=now_ns, order_token=token, reason=reason)]

    def _check(self, token: str, stock: str, side: str, shares: int, price: int) -> str | None:
        if not token or token in self._tokens:
            return ouch.REJECT_OTHER
        if stock not in self.stocks:
            return ouch.REJECT_INVALID_STOCK
        if side not in ouch.SIDES or shares == 0:
            return ouch.REJECT_OTHER
        if price == 0:
            return ouch.REJECT_INVALID_PRICE
        return None

    def _enter(self, m: dict, token: str, now_ns: int) -> list[bytes]:
        stock, side = m["stock"], m["buy_sell_indicator"]
        reason = self._check(token, stock, side, m["shares"], m["price"])
        self._tokens.add(token)
        if reason is not None:
            return self._reject(token, reason, now_ns)
        order = self._new_order(token, stock, side, m["shares"], m["price"], m["time_in_force"],
                                {k: m[k] for k in _ECHOED})
        accepted = ouch.encode(
            "A", timestamp=now_ns, order_token=token, buy_sell_indicator=side,
            shares=m["shares"], stock=stock, price=m["price"], time_in_force=m["time_in_force"],
            order_reference_number=order.order_reference_number,
            order_state=ouch.ORDER_STATE_LIVE, **order.attributes)
        return [accepted] + self._immediate(order, now_ns)

    def _new_order(self, token: str, stock: str, side: str, shares: int, price: int,
                   tif: int, attributes: dict) -> Order:
        order = Order(token=token, stock=stock, side=side, price=price, time_in_force=tif,
                      order_reference_number=self._next_ref, entered_shares=shares,
                      open_shares=shares, attributes=attributes)
        self._next_ref += 1
        self.orders[token] = order
        return order

    def _immediate(self, order: Order, now_ns: int) -> list[bytes]:
        """Fill an IOC order against the top of book, cancel the rest. Resting orders: []."""
        if order.time_in_force != ouch.TIF_IOC:
            return []
        out = []
        bid_px, bid_sz, ask_px, ask_sz = self.bbo(order.stock)
        if order.side == ouch.SIDE_BUY:
            px, sz, crosses = ask_px, ask_sz, order.price >= ask_px
        else:
            px, sz, crosses = bid_px, bid_sz, order.price <= bid_px
        if px > 0 and sz > 0 and crosses:
            n = min(order.open_shares, sz)
            fill = Fill(order.token, order.stock, order.side, n, px, self._next_match, now_ns)
            self._next_match += 1
            self.fills.append(fill)
            order.open_shares -= n
            order.executed_shares += n
            self.positions[order.stock] += n if order.side == ouch.SIDE_BUY else -n
            out.append(ouch.encode(
                "E", timestamp=now_ns, order_token=order.token, executed_shares=n,
                execution_price=px, liquidity_flag=ouch.LIQUIDITY_REMOVED,
                match_number=fill.match_number))
        if order.open_shares:
            out.append(self._cancel_shares(order, order.open_shares,
                                           ouch.CANCEL_IMMEDIATE_OR_CANCEL, now_ns))
        order.live = False
        return out

    def _cancel_shares(self, order: Order, n: int, reason: str, now_ns: int) -> bytes:
        order.open_shares -= n
        order.canceled_shares += n
        order.live = order.open_shares > 0
        return ouch.encode("C", timestamp=now_ns, order_token=order.token, decrement_shares=n,
                           reason=reason)

    def _cancel(self, m: dict, now_ns: int) -> list[bytes]:
        order = self.orders.get(m["order_token"])
        if order is None or not order.live or m["shares"] >= order.open_shares:
            return []
        return [self._cancel_shares(order, order.open_shares - m["shares"],
                                    ouch.CANCEL_USER_REQUESTED, now_ns)]

    def _replace(self, m: dict, now_ns: int) -> list[bytes]:
        old = self.orders.get(m["existing_order_token"])
        if old is None or not old.live:
            return []
        token = m["replacement_order_token"]
        reason = self._check(token, old.stock, old.side, m["shares"], m["price"])
        self._tokens.add(token)
        if reason is not None:
            return self._reject(token, reason, now_ns)
        old.live, old.replaced_by = False, token
        attributes = old.attributes | {k: m[k] for k in _REPLACEABLE}
        new = self._new_order(token, old.stock, old.side, m["shares"], m["price"],
                              m["time_in_force"], attributes)
        replaced = ouch.encode(
            "U", ouch.OUTBOUND_DIRECTION, timestamp=now_ns, replacement_order_token=token,
            buy_sell_indicator=old.side, shares=m["shares"], stock=old.stock, price=m["price"],
            time_in_force=m["time_in_force"], order_reference_number=new.order_reference_number,
            order_state=ouch.ORDER_STATE_LIVE, previous_order_token=old.token, **attributes)
        return [replaced] + self._immediate(new, now_ns)


class Connection:
    """The SoupBinTCP server side of one TCP connection to an :class:`ExchangeSimulator`."""

    def __init__(self, exchange: ExchangeSimulator):
        self.exchange = exchange
        # The longest client packet is a U carrying the longest OUCH message: anything
        # longer can only be a framing fault, caught before waiting for its bytes.
        self._deframer = soup.Deframer(
            types=soup.CLIENT_TYPES, max_packet_length=1 + ouch.MAX_LENGTH)
        self.logged_in = False
        self.closed = False
        self.error: str | None = None
        self.debug: list[bytes] = []   #: client ``+`` packets

    def on_bytes(self, data: bytes, now_ns: int) -> bytes:
        """Client bytes in (any segmentation) -> server bytes out."""
        if self.closed:
            raise ExchangeError(f"data on a closed connection ({self.error or 'logged out'})")
        fault: soup.SoupBinTcpError | None = None
        try:
            packets = self._deframer.feed(data)
        except soup.SoupBinTcpError as e:   # answer what came before the fault, then fail
            packets, fault = e.packets, e
        out: list[bytes] = []
        try:
            for packet_type, payload in packets:
                if self.closed:
                    raise ExchangeError(f"{packet_type!r} packet after the connection closed")
                out.append(self._packet(packet_type, payload, now_ns))
            if fault is not None:
                raise fault
        except (soup.SoupBinTcpError, ouch.OuchError, ExchangeError) as e:
            self.closed = True
            self.error = str(e)
            raise ExchangeError(f"client protocol error: {e}", b"".join(out)) from e
        return b"".join(out)

    def heartbeat(self) -> bytes:
        """A server heartbeat packet (the asyncio server sends one when idle)."""
        return soup.pack_packet("H")

    def end_session(self) -> bytes:
        """``Z`` end of session; the connection is closed."""
        self.closed = True
        return soup.pack_packet("Z")

    def _packet(self, packet_type: str, payload: bytes, now_ns: int) -> bytes:
        if packet_type == "L":
            return self._login(soup.decode("L", payload))
        if packet_type == "+":
            self.debug.append(payload)
            return b""
        if not self.logged_in:
            raise ExchangeError(f"{soup.PACKETS[packet_type].name} {packet_type!r} before login")
        if packet_type == "U":
            return self.exchange.on_ouch(payload, now_ns)
        if packet_type == "O":
            self.closed = True
        return b""          # R: client heartbeat

    def _login(self, req: dict) -> bytes:
        ex = self.exchange
        if self.logged_in:
            raise ExchangeError("second login request on a logged-in connection")
        if (req["username"], req["password"]) != (ex.username, ex.password):
            self.closed = True
            return soup.encode("J", reject_reason=soup.REJECT_NOT_AUTHORIZED)
        if req["requested_session"] not in ("", ex.session):
            self.closed = True
            return soup.encode("J", reject_reason=soup.REJECT_SESSION_NOT_AVAILABLE)
        self.logged_in = True
        seq = req["requested_sequence_number"]
        # 0 asks for the next new message; beyond the stream's end means the same.
        seq = ex.next_sequence if seq == 0 or seq > ex.next_sequence else seq
        replay = b"".join(soup.pack_packet("S", m) for m in ex.stream[seq - 1:])
        return soup.encode("A", session=ex.session, sequence_number=seq) + replay


def midnight_clock() -> int:
    """Nanoseconds since UTC midnight: the default clock of :func:`serve`."""
    return time.time_ns() % _NS_PER_DAY


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, exchange: ExchangeSimulator, clock: Callable[[], int],
                 heartbeat_s: float | None, errors: list[str]):
        self._conn = exchange.connect()
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._errors = errors
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._arm()

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            out = self._conn.on_bytes(data, self._clock())
        except ExchangeError as e:
            self._errors.append(str(e))
            out = e.output
        if out:
            self._transport.write(out)
            self._arm()
        if self._conn.closed:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn.closed = True
        if self._timer is not None:
            self._timer.cancel()

    def _arm(self) -> None:
        """(Re)start the idle timer: a heartbeat goes out after ``heartbeat_s`` of silence."""
        if self._timer is not None:
            self._timer.cancel()
        if self._heartbeat_s is not None:
            self._timer = asyncio.get_running_loop().call_later(self._heartbeat_s, self._beat)

    def _beat(self) -> None:
        if self._transport is None or self._conn.closed or self._transport.is_closing():
            return
        if self._conn.logged_in:
            self._transport.write(self._conn.heartbeat())
        self._arm()


async def serve(exchange: ExchangeSimulator, host: str = "127.0.0.1", port: int = 0, *,
                clock: Callable[[], int] = midnight_clock, heartbeat_s: float | None = 1.0,
                errors: list[str] | None = None) -> asyncio.Server:
    """Serve ``exchange`` over TCP on a loopback address (port 0 picks a free port; read it
    from ``server.sockets[0].getsockname()``). Each connection gets its own
    :class:`Connection`; protocol errors close it and are appended to ``errors``.

    Only loopback addresses are accepted: this is a test fixture, never a network service.
    """
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the exchange simulator only listens on loopback, not {host!r}")
    sink = errors if errors is not None else []
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _ServerProtocol(exchange, clock, heartbeat_s, sink), host, port)
