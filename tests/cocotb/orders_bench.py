"""cocotb test of the whole core with orders: feed in, triggers fire, orders out on TX,
executions back on the order-entry port, positions updated.

:func:`orders_day_closed_loop` configures the card over AXI-Lite with the host library's own
code (:class:`host.card.Card` runs in a cocotb bridge thread, its register accesses are
AXI-Lite transactions of the cocotbext-axi master: the same sequences as on a board): feed
filter, subscriptions, firm, limits for every slot and the global set, commit, start-of-day
positions, a symbol kill switch. A generated day (:func:`sim.feed.synth.generate_day`) is
played on lines A and B, racing, with idle cycles. During the day the host re-arms fired
triggers (buy and sell, prices chosen from the card's own BBO registers, some of them far
enough from the book to break a collar, some too large), and sends host orders on H2C: a
resting order, later cancelled; orders that must be rejected (over the maximum size or
notional, a killed symbol, no collar reference, a price through the collar, zero shares, a
reused token, the global kill switch on); two immediate-or-cancel orders that fill; cancels
while killed and for a symbol that is killed; a record with a bad magic.

Every TX packet is collected by an ``AxiStreamSink`` with random backpressure (a stall
probability per cycle and bursts of stalls) and handed, as it completes, to the exchange
simulator (:mod:`sim.exchange`), which fills immediate-or-cancel orders against the last BBO
the card reported; its replies go back on ``s_axis_oe_rx`` from an ``AxiStreamSource`` after a
random delay, cut into random chunks, with idle cycles, while the feed is still running.

Checked at the end:

* every TX packet, read by Nasdaq's own code (nasdaq-protocols' ``SoupMessage`` and the OUCH
  4.2 message classes of ``tests/test_proto_ouch.py``, declared in its type system from
  Wireshark's field order), is an unsequenced-data packet holding one enter order or cancel;
  ``tkeep`` is full but on a packet's last beat; TX and C2H keep ``tvalid`` and the beat
  while stalled (a per-cycle bus check);
* the TX orders are the accepted ``VERDICT`` events, in order (token, side, shares, price,
  time in force, symbol, firm), and the orders the exchange accepted are the same;
* every order has exactly one ``VERDICT`` event: each good H2C record one (with its fields),
  the bad one none; each trigger arm at most one, with the armed side, price and size, fired
  by a BBO event that meets its condition, and no earlier BBO after the arm met it; the
  armed bits left at the end are the arms that never fired;
* every verdict's reason is the reference rule book's (:func:`sim.model.risk.check`), given
  the committed limits, the BBO the order saw (BBO events up to its presentation cycle), the
  kill switches, and the positions, open shares and open orders that the accepted verdicts
  and the execution reports (the exchange's messages, each taking effect
  ``hw.oe.returnpath.LATENCY`` cycles after the OE RX beat holding its last byte) made of
  them by the cycle the gate decided; around the two writes of the global kill switch both
  outcomes are allowed (the write's cycle is the AXI-Lite master's business), and
  ``EGRESS_FULL`` (the encoder queue, which the bench does not model, is full) only where
  every other check passes. The designed host orders also carry the reasons they were
  designed for. (The timing is the documented one, but few orders are decided within a
  couple of cycles of a report that changes their verdict: on one seed the replay still
  agreed with every report shifted by up to 2 cycles, and caught a shift of 5. Cycle
  exactness is ``tests/test_risk_gate.py``'s and ``tests/test_oe_return_path.py``'s job.)
* the card's position registers equal the start-of-day positions plus the exchange's fills
  per symbol (and the rule-book replay's); nothing is left open; the counters agree with the
  events (verdicts by reason, triggers, H2C, TX, the return path's parser and table); no
  record was lost (sequence numbers, ``events_lost``), ``tx_overflow`` is 0.

What this adds to ``tests/test_core_orders.py`` (the same loop on the Python/Verilator
harness, which stops at each order to answer it a fixed round trip later and checks tokens,
answer cycles and final positions): the real bus protocols, with backpressure on TX and C2H,
idle cycles on RX, OE RX and H2C, AXI-Lite register sequences interleaved with traffic, and
every verdict against the rule book rather than only the final state.

``WIRESPEED_SEED`` replays a run; the seed is printed either way.
"""

from __future__ import annotations

import inspect
import logging
import os
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource
from nasdaq_protocols import soup as nq
from nasdaq_protocols.common import CommonMessage
from nasdaq_protocols.soup.soup_app import SoupAppMessageId

from host.card import Card
from host.config import GlobalLimits, LimitsConfig, SymbolLimits, TriggerConfig
from host.orders import PASSWORD, USERNAME
from host.replay import DEFAULT_FEED
from hw import h2c
from hw.events import BBO_STALE, RECORD_BYTES, EventKind, body_dtype, decode, numpy_dtype
from hw.oe.returnpath import LATENCY as REPORT_LATENCY
from hw.oe.tokens import format_token
from hw.risk.params import Collar, OrderKind, Reason, Side, Source
from hw.strategy.trigger import LATENCY as TRIGGER_LATENCY
from proto import itch, ouch
from proto import soupbintcp as soup
from sim.exchange import ExchangeError, ExchangeSimulator
from sim.feed.synth import DEFAULT_SYMBOLS, generate_day
from sim.model.ingress import Line
from sim.model.risk import LATENCY as GATE_LATENCY
from sim.model.risk import Market, State, check
from tests.cocotb.book_bench import _racing, mold_frames
from tests.cocotb.core_tb import CLOCK_PS, MAX_REPORTED, CoreTB, assert_agrees
from tests.cocotb.ingress_bench import _coin
from tests.test_proto_ouch import IN as NQ_IN
from tests.test_proto_ouch import NQ

SEED = int(os.environ.get("WIRESPEED_SEED") or random.randrange(1 << 30))
TIMEOUT_MS = 40
SYMBOLS = list(DEFAULT_SYMBOLS)
FIRM = "WSPD"
#: Messages of the generated day (both lines carry all of them).
DAY_MESSAGES = 16_000
TX_PREFIX, OE_RX_PREFIX, H2C_PREFIX = "m_axis_tx", "s_axis_oe_rx", "s_axis_h2c"
#: TX backpressure: stall probability per cycle, and bursts of stalls (probability per
#: cycle of starting one, its length). The encoder's queue (16 orders) must never overflow.
TX_STALL, TX_BURST, TX_BURST_LEN = 0.3, 0.002, (20, 120)
C2H_STALL = 0.4
H2C_IDLE = 0.3
OE_RX_IDLE = 0.3
#: Cycles from a TX packet's last beat to the exchange's reply reaching OE RX (the TCP
#: engine and the network), and the largest chunk the reply bytes are cut into.
RETURN_DELAY = (16, 1500)
OE_CHUNK = 40
#: Cycles between the host's rounds of re-arming fired triggers.
REARM_GAP = (150, 900)
#: The core is quiet (no TX, no C2H, nothing pending) for this many cycles: done.
QUIET_CYCLES = 256
START_NS = (9 * 3600 + 30 * 60) * 10**9
#: The fixed fields of every enter order, as docs/orderentry.md states them ("Egress").
OUCH_FIXED = {"display": "Y", "capacity": "P", "intermarket_sweep": "N",
              "minimum_quantity": 0, "cross_type": "N", "customer_type": " "}

#: Slots and what each one's limits exercise (slot = index in SYMBOLS).
PLAIN, COLLAR_TICKS, COLLAR_BPS, TIGHT, NOTIONAL, DISABLED, KILLED, HOST = range(8)
#: Slots the triggers trade (the host-order slot has none: its state is the host's alone).
TRIGGER_SLOTS = tuple(s for s in range(len(SYMBOLS)) if s != HOST)
START_POSITIONS = {PLAIN: 400, COLLAR_TICKS: -300, TIGHT: 200, NOTIONAL: -100, HOST: 50}
#: Trigger orders: sizes (700 is over every symbol's maximum) and how many ticks beyond the
#: touch the limit price is (50 breaks the collars).
TRIGGER_SHARES = (100, 200, 300, 700)
TRIGGER_TICKS = (0, 0, 0, 1, 3, 50)

#: ``check`` has an ``egress_room`` argument once the gate rejects EGRESS_FULL; the bench does
#: not model the encoder queue's level, so it judges with room (see :func:`check_verdicts`).
_CHECK_KW = {"egress_room": True} if "egress_room" in inspect.signature(check).parameters \
    else {}
_EGRESS_FULL = getattr(Reason, "EGRESS_FULL", None)


def _rng(test: str) -> random.Random:
    return random.Random(f"{SEED}/{test}")


def _stalls(rng: random.Random, p: float, burst: float,
            length: tuple[int, int]) -> Iterator[bool]:
    """A pause generator: stalls with probability ``p`` per cycle, and now and then a burst."""
    while True:
        if rng.random() < burst:
            for _ in range(rng.randint(*length)):
                yield True
        yield rng.random() < p


# -- the host library over AXI-Lite -------------------------------------------------------------
class AxiLiteBackend:
    """:class:`host.card.Backend` over the bench's AXI-Lite master, for code that runs in a
    cocotb bridge thread (``await bridge(card.method)(...)``): every register access is one
    AXI-Lite transaction, simulated while the thread waits. Records come from the C2H sink."""

    def __init__(self, tb: CoreTB):
        self._read = resume(tb.axil.read_dword)
        self._write = resume(tb.axil.write_dword)

    def read32(self, addr: int) -> int:
        return self._read(addr)

    def write32(self, addr: int, value: int) -> None:
        self._write(addr, value)

    def records(self) -> np.ndarray:
        raise NotImplementedError("the bench's C2H sink collects the records")


# -- what the bench records ---------------------------------------------------------------------
@dataclass(frozen=True)
class TxPacket:
    first: int            #: cycle of the first beat's handshake
    last: int             #: cycle of the tlast beat
    data: bytes
    keep: tuple[int, ...]  #: tkeep of each beat


@dataclass(frozen=True)
class Arm:
    slot: int
    trig: TriggerConfig
    after: int            #: the arm round started after this cycle
    done: int             #: ... and had written every trigger by this one


@dataclass
class KillWindow:
    """The global kill switch went on and off; each write took effect within its pair of
    cycles (the bench saw the write start and complete)."""

    on: tuple[int, int] = (0, 0)
    off: tuple[int, int] = (0, 0)


@dataclass
class Run:
    """Everything observed during the test."""

    tx: list[TxPacket] = field(default_factory=list)
    #: (cycle, bytes) of every OE RX beat, as the core sampled it.
    oe_rx: list[tuple[int, bytes]] = field(default_factory=list)
    #: Bytes the exchange wrote, in order (what OE RX must carry).
    replies: list[bytes] = field(default_factory=list)
    raw_records: list[bytes] = field(default_factory=list)
    bus_problems: list[str] = field(default_factory=list)
    exchange_errors: list[str] = field(default_factory=list)
    h2c_sent: list[dict] = field(default_factory=list)   # the good records, in order
    h2c_bad: int = 0
    #: token number -> the reason the host order was designed to get
    designed: dict[tuple[int, int], Reason] = field(default_factory=dict)
    arms: list[Arm] = field(default_factory=list)
    kills: list[KillWindow] = field(default_factory=list)
    day_end: int = 0          #: cycle the last frame of the day left line A or B


def _first_prices(day: Sequence[bytes]) -> dict[str, int]:
    """The first add price of every stock of the day (what a price level looks like)."""
    stock_of, out = {}, {}
    for m in day:
        code = chr(m[0])
        if code == "R":
            d = itch.decode(m)
            stock_of[d["stock_locate"]] = d["stock"].rstrip()
        elif code in "AF":
            d = itch.decode(m)
            s = stock_of.get(d["stock_locate"])
            if s is not None and s not in out and d["price"]:
                out[s] = d["price"]
    return out


def _limits(prices: dict[str, int]) -> tuple[LimitsConfig, dict[int, SymbolLimits]]:
    base = SymbolLimits(enable=True, max_shares=500, max_notional=10**15, max_long=1500,
                        max_short=1500)
    sym = dict.fromkeys(range(len(SYMBOLS)), base)
    sym[COLLAR_TICKS] = SymbolLimits(**asdict(base) | dict(collar_mode=Collar.TICKS, collar=5))
    sym[COLLAR_BPS] = SymbolLimits(**asdict(base) | dict(
        collar_mode=Collar.BPS, collar=20, ref_px=prices[SYMBOLS[COLLAR_BPS]]))
    sym[TIGHT] = SymbolLimits(**asdict(base) | dict(max_long=300, max_short=300))
    sym[NOTIONAL] = SymbolLimits(**asdict(base) | dict(
        max_notional=250 * prices[SYMBOLS[NOTIONAL]]))
    sym[DISABLED] = SymbolLimits(**asdict(base) | dict(enable=False))
    sym[HOST] = SymbolLimits(**asdict(base) | dict(max_shares=1000, max_long=10**6,
                                                    max_short=10**6))
    return LimitsConfig(GlobalLimits(max_open=4), sym, dict(START_POSITIONS)), sym


# -- the bench ----------------------------------------------------------------------------------
class OrdersTB(CoreTB):
    """:class:`CoreTB` plus the order-entry ports: a TX sink, OE RX and H2C sources."""

    def __init__(self, dut: HierarchyObject):
        super().__init__(dut)
        for prefix in (TX_PREFIX, OE_RX_PREFIX, H2C_PREFIX):
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
        self.tx = AxiStreamSink(AxiStreamBus.from_prefix(dut, TX_PREFIX), dut.clk, dut.rst)
        self.oe_rx = AxiStreamSource(AxiStreamBus.from_prefix(dut, OE_RX_PREFIX), dut.clk,
                                     dut.rst)
        self.h2c = AxiStreamSource(AxiStreamBus.from_prefix(dut, H2C_PREFIX), dut.clk,
                                   dut.rst)

    async def send_h2c(self, records: bytes) -> None:
        for i in range(0, len(records), h2c.RECORD_BYTES):
            await self.h2c.send(AxiStreamFrame(records[i:i + h2c.RECORD_BYTES]))


def _keep_ok(keep: int, last: bool) -> bool:
    full = 0xFF
    return keep == full if not last else keep != 0 and keep & (keep + 1) == 0


async def sample_buses(tb: OrdersTB, run: Run) -> None:
    """Every cycle: the OE RX beat (for the report timing), and the AXI-Stream rules of TX and
    C2H (a stalled beat stays valid and unchanged; TX ``tkeep`` contiguous from lane 0)."""
    dut = tb.dut
    held_tx = held_c2h = None
    while True:
        await RisingEdge(dut.clk)
        now = tb.now()
        if dut.s_axis_oe_rx_tvalid.value:
            keep = int(dut.s_axis_oe_rx_tkeep.value)
            data = int(dut.s_axis_oe_rx_tdata.value).to_bytes(8, "little")
            run.oe_rx.append((now, data[:bin(keep).count("1")]))
        tv, tr = bool(dut.m_axis_tx_tvalid.value), bool(dut.m_axis_tx_tready.value)
        beat = None
        if tv:
            beat = (int(dut.m_axis_tx_tdata.value), int(dut.m_axis_tx_tkeep.value),
                    bool(dut.m_axis_tx_tlast.value))
            if not _keep_ok(beat[1], beat[2]):
                run.bus_problems.append(f"cycle {now}: TX tkeep {beat[1]:#04x} "
                                        f"(tlast {int(beat[2])})")
        if held_tx is not None and beat != held_tx:
            run.bus_problems.append(f"cycle {now}: a stalled TX beat changed or was withdrawn: "
                                    f"{held_tx} -> {beat}")
        held_tx = beat if tv and not tr else None
        cv, cr = bool(dut.m_axis_c2h_tvalid.value), bool(dut.m_axis_c2h_tready.value)
        c2h_beat = int(dut.m_axis_c2h_tdata.value) \
            if cv and (not cr or held_c2h is not None) else None
        if held_c2h is not None and c2h_beat != held_c2h:
            run.bus_problems.append(f"cycle {now}: a stalled C2H record changed or was "
                                    "withdrawn")
        held_c2h = c2h_beat if cv and not cr else None


async def collect_records(tb: OrdersTB, run: Run, bbo_now: dict[str, tuple]) -> None:
    """Drain C2H; keep the last BBO of every symbol for the exchange to fill against."""
    dtype, bbo_body = numpy_dtype(), body_dtype(EventKind.BBO)
    while True:
        frame = await tb.c2h.recv()
        beat = bytes(frame.tdata)
        if len(beat) != RECORD_BYTES:
            run.bus_problems.append(f"C2H beat of {len(beat)} bytes")
            continue
        run.raw_records.append(beat)
        rec = np.frombuffer(beat, dtype=dtype)[0]
        if rec["kind"] == EventKind.BBO and rec["aux"] < len(SYMBOLS):
            b = np.frombuffer(rec["body"].tobytes(), dtype=bbo_body)[0]
            bbo_now[SYMBOLS[rec["aux"]]] = (int(b["bid_px"]), int(b["bid_sz"]),
                                            int(b["ask_px"]), int(b["ask_sz"]))


@dataclass
class ExchangeSide:
    """The exchange and the TCP engine: TX packets in, replies back after a delay."""

    tb: OrdersTB
    run: Run
    rng: random.Random
    exchange: ExchangeSimulator
    conn: object
    pending: list[tuple[int, bytes]] = field(default_factory=list)   # (due cycle, bytes)

    def ns(self, cycle: int) -> int:
        return START_NS + cycle * CLOCK_PS // 1000

    async def take_tx(self) -> None:
        while True:
            frame = await self.tb.tx.recv(compact=False)
            keep = list(frame.tkeep)
            data = bytes(b for b, k in zip(frame.tdata, keep, strict=True) if k)
            beats = tuple(sum(k << i for i, k in enumerate(keep[j:j + 8]))
                          for j in range(0, len(keep), 8))
            pkt = TxPacket(self.tb.cycle_at(frame.sim_time_start),
                           self.tb.cycle_at(frame.sim_time_end), data, beats)
            self.run.tx.append(pkt)
            if self.conn.closed:
                continue
            try:
                reply = self.conn.on_bytes(data, self.ns(pkt.first))
            except ExchangeError as e:
                self.run.exchange_errors.append(f"TX packet at cycle {pkt.first}: {e}")
                reply = e.output
            if reply:
                self.pending.append((self.tb.now() + self.rng.randint(*RETURN_DELAY), reply))

    def send_now(self, data: bytes) -> None:
        """Queue bytes on OE RX in random chunks (chunk ends are beats with a partial tkeep;
        the parser must not care)."""
        self.run.replies.append(data)
        at = 0
        while at < len(data):
            n = self.rng.randint(1, OE_CHUNK)
            self.tb.oe_rx.send_nowait(AxiStreamFrame(data[at:at + n]))
            at += n

    async def give_back(self) -> None:
        while True:
            await RisingEdge(self.tb.dut.clk)
            now = self.tb.now()
            due = [p for p in self.pending if p[0] <= now]
            if due:
                self.pending = [p for p in self.pending if p[0] > now]
                self.send_now(b"".join(d for _, d in due))

    @property
    def idle(self) -> bool:
        return not self.pending and self.tb.oe_rx.idle() and self.tb.tx.empty()


# -- host actions (bridge threads: the Card API, blocking, over AXI-Lite) -------------------
def _rearm(card: Card, rng: random.Random, tick: int) -> list[tuple[int, TriggerConfig]]:
    """Arm every trigger slot that is not armed, at a price from the card's BBO registers."""
    armed, out = card.armed(), []
    for slot in TRIGGER_SLOTS:
        if armed >> slot & 1:
            continue
        bid, _, ask, _ = card.slot(slot)["bbo"]
        side = rng.choice(list(Side))
        k = rng.choice(TRIGGER_TICKS)
        if side == Side.BUY:
            px = ask + k * tick if ask else 0
        else:
            px = bid - k * tick if bid else 0
        if px <= 0:
            continue
        trig = TriggerConfig(side, px, rng.choice(TRIGGER_SHARES), ouch.TIF_IOC)
        card.arm_trigger(slot, trig)
        out.append((slot, trig))
    return out


def _order(kind: OrderKind, side: Side, slot: int, token: int, shares: int, price: int,
           tif: int = ouch.TIF_IOC) -> dict:
    return dict(kind=kind, side=side, slot=slot, token=token, shares=shares, price=price,
                tif=tif)


@dataclass
class Host:
    """The host during the day: re-arms triggers, sends H2C orders at points of the day,
    flips the global kill switch. The only user of AXI-Lite while traffic runs."""

    tb: OrdersTB
    card: Card
    run: Run
    rng: random.Random
    progress: Callable[[], float]
    day_over: Callable[[], bool]
    tick: int

    async def h2c(self, orders: list[dict], designed: Sequence[Reason | None] = ()) -> None:
        for o, why in zip(orders, list(designed) + [None] * len(orders), strict=False):
            self.run.h2c_sent.append(o)
            if why is not None:
                self.run.designed[(len(self.run.h2c_sent) - 1, o["token"])] = why
        await self.tb.send_h2c(h2c.pack(orders))

    async def bbo(self, slot: int) -> tuple[int, int, int, int]:
        return (await bridge(self.card.slot)(slot))["bbo"]

    async def rearm(self) -> None:
        after = self.tb.now()
        armed = await bridge(_rearm)(self.card, self.rng, self.tick)
        done = self.tb.now()
        self.run.arms += [Arm(slot, trig, after, done) for slot, trig in armed]

    async def kill(self, on: bool, window: KillWindow) -> None:
        before = self.tb.now()
        await bridge(self.card.kill)(on)
        span = (before, self.tb.now())
        if on:
            window.on = span
        else:
            window.off = span

    # The day's script: (fraction of line A's frames sent, step).
    async def step_tokens(self) -> None:
        """A reused token (rejected: not above the last accepted one), a bad record, and an
        immediate-or-cancel buy through the ask (fills, unless a limit says otherwise)."""
        bad = bytearray(h2c.pack([_order(OrderKind.NEW, Side.BUY, HOST, 90, 1, 1)]))
        bad[0] ^= 0xFF
        self.run.h2c_bad += 1
        await self.tb.send_h2c(bytes(bad))
        _, _, ask, _ = await self.bbo(HOST)
        await self.h2c([_order(OrderKind.NEW, Side.BUY, HOST, 1, 10, 100),
                        _order(OrderKind.NEW, Side.BUY, HOST, 7, 100,
                               (ask or 1_000_000) + 5 * self.tick)],
                       [Reason.BAD_TOKEN])

    async def step_kill(self) -> None:
        """The global kill switch for a while: a host order is refused, a cancel passes, and
        triggers that fire meanwhile are refused."""
        w = KillWindow()
        self.run.kills.append(w)
        await self.kill(True, w)
        await self.h2c([_order(OrderKind.NEW, Side.SELL, HOST, 8, 10, 1_000_000),
                        _order(OrderKind.CANCEL, Side.BUY, HOST, 63, 0, 0)],
                       [Reason.KILL, Reason.ACCEPTED])
        for _ in range(self.rng.randint(3, 6)):     # triggers keep firing meanwhile
            await ClockCycles(self.tb.dut.clk, self.rng.randint(*REARM_GAP))
            await self.rearm()
        await self.kill(False, w)

    async def step_cancel(self) -> None:
        """Cancel the resting order (the exchange takes its shares out); cancel on a killed
        symbol (cancels are never refused)."""
        await self.h2c([_order(OrderKind.CANCEL, Side.BUY, HOST, 1, 0, 0),
                        _order(OrderKind.CANCEL, Side.BUY, KILLED, 3, 0, 0)],
                       [Reason.ACCEPTED, Reason.ACCEPTED])

    async def step_sell(self) -> None:
        bid, _, _, _ = await self.bbo(HOST)
        await self.h2c([_order(OrderKind.NEW, Side.SELL, HOST, 9, 200,
                               max(bid - 5 * self.tick, self.tick) if bid else self.tick)])

    async def step_collar(self) -> None:
        """A host buy 50 ticks through the ask of a symbol with a 5-tick collar: whether the
        triggers break a collar is up to the seed, this order always does."""
        bid, _, ask, _ = await self.bbo(COLLAR_TICKS)
        both = bool(bid and ask)
        await self.h2c([_order(OrderKind.NEW, Side.BUY, COLLAR_TICKS, 11, 10,
                               (ask or 1_000_000) + 50 * self.tick)],
                       [Reason.PRICE_COLLAR if both else None])

    async def __call__(self) -> None:
        script = [(0.2, self.step_tokens), (0.4, self.step_kill), (0.6, self.step_cancel),
                  (0.8, self.step_sell), (0.9, self.step_collar)]
        while script or not self.day_over():
            await ClockCycles(self.tb.dut.clk, self.rng.randint(*REARM_GAP))
            while script and (self.progress() >= script[0][0] or self.day_over()):
                await script.pop(0)[1]()
            if not self.day_over():
                await self.rearm()


async def prelude(host: Host) -> None:
    """Before the day (no BBO yet, nothing open): a resting buy far below the market
    (accepted), and orders each check must refuse."""
    await host.h2c([
        _order(OrderKind.NEW, Side.BUY, HOST, 1, 100, host.tick, ouch.TIF_MARKET_HOURS),
        _order(OrderKind.NEW, Side.SELL, HOST, 2, 5000, 1_000_000),        # > max_shares
        _order(OrderKind.NEW, Side.BUY, KILLED, 3, 10, 1_000_000),
        _order(OrderKind.NEW, Side.BUY, COLLAR_TICKS, 4, 10, 1_000_000),   # no mid, no ref
        _order(OrderKind.NEW, Side.BUY, HOST, 5, 0, 1_000_000),            # zero shares
        _order(OrderKind.NEW, Side.SELL, NOTIONAL, 6, 400, 1_000_000_000),  # $100,000 each
    ], [Reason.ACCEPTED, Reason.MAX_SIZE, Reason.KILL_SYMBOL, Reason.NO_REFERENCE,
        Reason.BAD_ORDER, Reason.MAX_NOTIONAL])


# -- the checks -----------------------------------------------------------------------------------
def _nq_tx(data: bytes) -> tuple[str, dict] | str:
    """A TX packet read by nasdaq-protocols: (OUCH type, fields) or what is wrong with it."""
    try:
        n, msg = nq.SoupMessage.from_bytes(data)
    except Exception as e:   # noqa: BLE001 - whatever the library raises is the finding
        return f"nasdaq-protocols cannot read it as SoupBinTCP: {e!r}"
    if n != len(data) or not isinstance(msg, nq.UnSequencedData):
        return f"not one unsequenced-data packet: {type(msg).__name__}, {n} of {len(data)} bytes"
    body = bytes(msg.data)
    code = chr(body[0]) if body else "?"
    if code not in ("O", "X"):
        return f"OUCH type {code!r}, not an enter order or a cancel"
    cls = CommonMessage.MsgIdToClsMap[NQ[(NQ_IN, code)].AppName][
        SoupAppMessageId(body[0], "incoming")]
    try:
        used, rec = cls.BodyRecord.from_bytes(body[1:])
    except Exception as e:   # noqa: BLE001
        return f"nasdaq-protocols cannot read the OUCH {code!r}: {e!r}"
    if used + 1 != len(body):
        return f"OUCH {code!r} of {len(body)} bytes, nasdaq-protocols read {used + 1}"
    return code, rec.values


def _want_tx(v: dict) -> tuple[str, dict]:
    token = format_token(Source(v["source"]), v["token"])
    if v["order_kind"] == OrderKind.CANCEL:
        return "X", {"order_token": token, "shares": v["shares"]}
    return "O", {"order_token": token,
                 "buy_sell_indicator": ouch.SIDE_SELL if v["side"] == Side.SELL
                 else ouch.SIDE_BUY,
                 "shares": v["shares"], "stock": SYMBOLS[v["slot"]], "price": v["price"],
                 "time_in_force": v["tif"], "firm": FIRM, **OUCH_FIXED}


def _same(want: dict, got: dict) -> dict:
    """Fields that differ (text compared without padding: both codecs strip it)."""
    out = {}
    for k, w in want.items():
        g = got.get(k)
        if isinstance(w, str) and isinstance(g, str) and w.strip() == g.strip():
            continue
        if w != g:
            out[k] = (w, g)
    return out


@dataclass
class Report:
    cycle: int            #: cycle the gate takes it
    token: str
    kind: str             #: E, C or J
    shares: int


def _reports(run: Run) -> tuple[list[Report], Counter, list[str]]:
    """The exchange's messages as the core's return path saw them, each with the cycle its
    report reaches the gate; counts of SoupBinTCP/OUCH types; problems."""
    stream = b"".join(b for _, b in run.oe_rx)
    problems = []
    if stream != b"".join(run.replies):
        problems.append(f"OE RX carried {len(stream)} bytes, the exchange wrote "
                        f"{len(b''.join(run.replies))} (or different ones)")
    cycles = [c for c, b in run.oe_rx for _ in b]
    out, kinds, at = [], Counter(), 0
    while at + 3 <= len(stream):
        n = int.from_bytes(stream[at:at + 2], "big")
        end = at + 2 + n
        if end > len(stream):
            problems.append(f"OE RX ends inside a packet at byte {at}")
            break
        kind = chr(stream[at + 2])
        kinds[f"soup {kind}"] += 1
        if kind == "S":
            msg = ouch.decode(stream[at + 3:end], ouch.OUTBOUND_DIRECTION)
            code = msg["message_type"]
            kinds[f"ouch {code}"] += 1
            shares = {"E": "executed_shares", "C": "decrement_shares"}.get(code)
            if code in "ECJ":
                out.append(Report(cycles[end - 1] + REPORT_LATENCY, msg["order_token"], code,
                                  msg[shares] if shares else 0))
        at = end
    return out, kinds, problems


@dataclass
class Replay:
    """The gate's state, rebuilt from the accepted verdicts and the reports (docs/risk.md:
    an order presented in cycle p sees market data of cycles <= p and the state after every
    update of cycles before p + 2; its verdict leaves in p + 3)."""

    tick: int
    lim: dict[int, dict]
    glob: dict
    kills: list[KillWindow]
    st: State = field(init=False)
    md: dict[int, Market] = field(default_factory=dict)
    live: dict[str, list] = field(default_factory=dict)   # token -> [slot, side, remaining]
    fills: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self.st = State(max(64, len(self.lim)))

    def report(self, r: Report) -> None:
        slot, side, left = self.live[r.token]
        n = left if r.kind == "J" else min(r.shares, left)
        book = self.st.open_buy if side == Side.BUY else self.st.open_sell
        book[slot] = max(0, book[slot] - n)
        if r.kind == "E":
            self.st.position[slot] += n if side == Side.BUY else -n
            self.fills[slot] += n if side == Side.BUY else -n
        self.live[r.token][2] = left - n
        if left - n == 0:
            self.st.open_orders = max(0, self.st.open_orders - 1)
            del self.live[r.token]

    def kill_at(self, cycle: int) -> set[bool]:
        """The global kill switch's possible values in ``cycle``."""
        for w in self.kills:
            if w.on[0] <= cycle <= w.on[1] + 1 or w.off[0] <= cycle <= w.off[1] + 1:
                return {False, True}
            if w.on[1] < cycle < w.off[0]:
                return {True}
        return {False}

    def judge(self, v: dict, decide: int) -> set[Reason]:
        """The reasons the rule book allows for verdict ``v`` decided in cycle ``decide``."""
        order = {"kind": v["order_kind"], "source": v["source"], "token": v["token"],
                 "slot": v["slot"], "side": v["side"], "shares": v["shares"],
                 "price": v["price"]}
        md = self.md.get(v["slot"], Market())
        return {check(order, self.lim[v["slot"]], self.glob, md, 0, self.st, kill=k,
                      kill_symbol=v["slot"] == KILLED, tick=self.tick, **_CHECK_KW)
                for k in self.kill_at(decide)}

    def accept(self, v: dict) -> None:
        if v["order_kind"] != OrderKind.NEW:
            return
        s = v["slot"]
        book = self.st.open_buy if v["side"] == Side.BUY else self.st.open_sell
        book[s] += v["shares"]
        self.st.open_orders += 1
        self.st.last_token[v["source"]] = v["token"]
        self.live[format_token(Source(v["source"]), v["token"])] = [s, v["side"], v["shares"]]


def check_verdicts(run: Run, verdicts: list[dict], bbos: list[dict], reports: list[Report],
                   replay: Replay) -> tuple[list[str], Counter]:
    """Every verdict against the rule book, in the order the gate decided them."""
    problems, ambiguous = [], Counter()
    bi = ri = 0
    bbos = sorted(bbos, key=lambda b: b["timestamp"])
    reports = sorted(reports, key=lambda r: r.cycle)
    for k, v in enumerate(verdicts):
        shown = v["timestamp"]                 # the verdict on the gate's output
        presented, decided = shown - GATE_LATENCY, shown - 1
        while bi < len(bbos) and bbos[bi]["timestamp"] <= presented:
            b = bbos[bi]
            replay.md[b["aux"]] = Market(True, b["bid_px"], b["ask_px"],
                                         bool(b["flags"] & BBO_STALE), b["timestamp"])
            bi += 1
        while ri < len(reports) and reports[ri].cycle < decided:
            r = reports[ri]
            if r.token not in replay.live:
                problems.append(f"report {r} for an order that is not open")
            else:
                replay.report(r)
            ri += 1
        allowed = replay.judge(v, decided)
        got = Reason(v["aux"])
        if got == _EGRESS_FULL and Reason.ACCEPTED in allowed:
            ambiguous["EGRESS_FULL (every other check passed)"] += 1
        elif got not in allowed:
            st = replay.st
            s = v["slot"]
            problems.append(
                f"verdict #{k} (decided in cycle {decided}) {got.name}, the rule book says "
                f"{sorted(a.name for a in allowed)}: {_show(v)}; state: position "
                f"{st.position[s]}, open buy {st.open_buy[s]}, open sell {st.open_sell[s]}, "
                f"open orders {st.open_orders}, last tokens {st.last_token}, market "
                f"{replay.md.get(s)}")
        elif len(allowed) > 1:
            ambiguous[f"kill switch write: {got.name}"] += 1
        if got == Reason.ACCEPTED:
            replay.accept(v)
    for r in reports[ri:]:
        if r.token in replay.live:
            replay.report(r)
        else:
            problems.append(f"report {r} for an order that is not open")
    return problems, ambiguous


def _show(v: dict) -> str:
    return (f"{'trigger' if v['source'] == Source.TRIGGER else 'host'} "
            f"{'cancel' if v['order_kind'] == OrderKind.CANCEL else 'new'} token {v['token']} "
            f"slot {v['slot']} {Side(v['side']).name} {v['shares']} @ {v['price']} tif "
            f"{v['tif']}")


def check_sources(run: Run, verdicts: list[dict], bbos: list[dict]) -> list[str]:
    """One verdict per order: host records in order with their fields; trigger verdicts
    matched to the arms of their slot, each fired by a BBO event that met its condition."""
    problems = []
    host = [v for v in verdicts if v["source"] == Source.HOST]
    fields = ("order_kind", "side", "slot", "token", "shares", "price", "tif")
    want = [{"order_kind": int(o["kind"]), **{f: int(o[f]) for f in fields[1:]}}
            for o in run.h2c_sent]
    got = [{f: v[f] for f in fields} for v in host]
    if want != got:
        first = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
                     min(len(want), len(got)))
        problems.append(f"host verdicts are not the H2C records: {len(want)} sent, {len(got)} "
                        f"verdicts; first difference at #{first}: sent "
                        f"{want[first] if first < len(want) else '-'}, verdict "
                        f"{got[first] if first < len(got) else '-'}")
    for (i, token), why in run.designed.items():
        if i < len(host) and Reason(host[i]["aux"]) != why:
            problems.append(f"host order #{i} (token {token}) was designed to get {why.name}, "
                            f"got {Reason(host[i]['aux']).name}: {_show(host[i])}")

    trig = [v for v in verdicts if v["source"] == Source.TRIGGER]
    if [v["token"] for v in trig] != list(range(1, len(trig) + 1)):
        problems.append(f"trigger tokens are not 1..{len(trig)} in firing order: "
                        f"{[v['token'] for v in trig][:20]}")
    by_slot: dict[int, list[dict]] = defaultdict(list)
    for v in trig:
        by_slot[v["slot"]].append(v)
    bbo_of: dict[int, list[dict]] = defaultdict(list)
    for b in bbos:
        bbo_of[b["aux"]].append(b)
    end = max([b["timestamp"] for b in bbos] + [0]) + 1

    def meets(t: TriggerConfig, b: dict) -> bool:
        if b["flags"] & BBO_STALE:
            return False
        if t.side == Side.BUY:
            return 0 < b["ask_px"] <= t.price
        return b["bid_px"] > 0 and b["bid_px"] >= t.price

    for slot in range(len(SYMBOLS)):
        arms = [a for a in run.arms if a.slot == slot]
        fired = by_slot.get(slot, [])
        if len(fired) > len(arms):
            problems.append(f"slot {slot}: {len(fired)} trigger orders from {len(arms)} arms")
        for a, v in zip(arms, fired, strict=False):
            t = a.trig
            if (v["order_kind"], v["side"], v["price"], v["shares"], v["tif"]) != \
                    (OrderKind.NEW, t.side, t.price, t.shares, t.tif):
                problems.append(f"slot {slot}: trigger order {_show(v)} is not the armed {t}")
            fire = v["timestamp"] - GATE_LATENCY - TRIGGER_LATENCY
            cause = [b for b in bbo_of[slot] if b["timestamp"] == fire]
            if fire < a.after or not cause or not meets(t, cause[0]):
                problems.append(f"slot {slot}: trigger order {_show(v)} (armed {t} in cycles "
                                f"{a.after}..{a.done}) has no BBO event meeting it in cycle "
                                f"{fire}: {cause}")
            early = [b for b in bbo_of[slot] if a.done < b["timestamp"] < fire and meets(t, b)]
            if early:
                problems.append(f"slot {slot}: trigger {t} fired in cycle {fire}, but the BBO "
                                f"event of cycle {early[0]['timestamp']} already met it")
        for a in arms[len(fired):len(fired) + 1]:
            missed = [b for b in bbo_of[slot] if a.done < b["timestamp"] < end
                      and meets(a.trig, b)]
            if missed:
                problems.append(f"slot {slot}: trigger {a.trig} never fired, but the BBO event "
                                f"of cycle {missed[0]['timestamp']} met it")
    return problems


def check_tx(run: Run, accepted: list[dict], exchange: ExchangeSimulator) -> list[str]:
    """The TX packets read by nasdaq-protocols, against the accepted verdicts; the exchange's
    orders against the same."""
    problems = []
    for i, p in enumerate(run.tx):
        if not all(k == 0xFF for k in p.keep[:-1]) or not _keep_ok(p.keep[-1], True):
            problems.append(f"TX packet #{i} (cycle {p.first}): tkeep {p.keep}")
    if len(run.tx) != len(accepted):
        problems.append(f"{len(run.tx)} TX packets, {len(accepted)} accepted verdicts")
    for i, (p, v) in enumerate(zip(run.tx, accepted, strict=False)):
        got = _nq_tx(p.data)
        if isinstance(got, str):
            problems.append(f"TX packet #{i} (cycle {p.first}, {p.data.hex()}): {got}")
            continue
        code, want = _want_tx(v)
        diff = _same(want, got[1]) if got[0] == code else {"type": (code, got[0])}
        if diff:
            problems.append(f"TX packet #{i} (cycle {p.first}) differs from verdict {_show(v)} "
                            f"in {diff} (verdict, TX)")
    new = [v for v in accepted if v["order_kind"] == OrderKind.NEW]
    seen = {t: (o.stock, o.side, o.entered_shares, o.price, o.time_in_force)
            for t, o in exchange.orders.items()}
    want = {format_token(Source(v["source"]), v["token"]):
            (SYMBOLS[v["slot"]], ouch.SIDE_SELL if v["side"] == Side.SELL else ouch.SIDE_BUY,
             v["shares"], v["price"], v["tif"]) for v in new}
    if seen != want:
        diff = {t: (want.get(t), seen.get(t)) for t in want.keys() | seen.keys()
                if want.get(t) != seen.get(t)}
        problems.append(f"the exchange's orders are not the accepted verdicts: "
                        f"{dict(list(diff.items())[:5])} (verdict, exchange)")
    if exchange.rejects:
        problems.append(f"the exchange rejected {exchange.rejects[:5]}")
    return problems


def check_counters(c: dict[str, int], records: list[dict], verdicts: list[dict], run: Run,
                   kinds: Counter, n_messages: int) -> list[str]:
    accepted = [v for v in verdicts if v["aux"] == Reason.ACCEPTED]
    by_reason = Counter(Reason(v["aux"]) for v in verdicts)
    reports = kinds["ouch E"] + kinds["ouch C"] + kinds["ouch J"]
    want = {
        "events": len(records), "events_lost": 0, "events_undeclared": 0, "tx_overflow": 0,
        "gaps": 0,
        "messages": n_messages, "risk_verdicts": len(verdicts),
        "trig_fired": sum(v["source"] == Source.TRIGGER for v in verdicts),
        "h2c_orders": len(run.h2c_sent), "h2c_bad": run.h2c_bad,
        "tx_orders": sum(v["order_kind"] == OrderKind.NEW for v in accepted),
        "tx_cancels": sum(v["order_kind"] == OrderKind.CANCEL for v in accepted),
        "oe_soup_login_accepted": kinds["soup A"], "oe_soup_sequenced_data": kinds["soup S"],
        "oe_ouch_accepted": kinds["ouch A"], "oe_ouch_executed": kinds["ouch E"],
        "oe_ouch_canceled": kinds["ouch C"], "oe_ouch_rejected": kinds["ouch J"],
        "oe_tracked": len([v for v in accepted if v["order_kind"] == OrderKind.NEW]),
        "oe_reports": reports,
        **dict.fromkeys(("oe_bad_token", "oe_unknown_token", "oe_table_conflict", "oe_clamped",
                         "oe_soup_bad_length", "oe_soup_unknown", "oe_ouch_bad_length",
                         "oe_ouch_unknown"), 0),
        **{f"risk_{r.name.lower()}": by_reason[r] for r in Reason},
    }
    return [f"counter {n}: expected {w}, core {c.get(n, 'missing')}" for n, w in want.items()
            if c.get(n) != w]


# -- the test -------------------------------------------------------------------------------------
@cocotb.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
async def orders_day_closed_loop(dut: HierarchyObject) -> None:
    """Triggers and host orders through the risk gate to TX, the exchange simulator's replies
    back mid-day: TX read by nasdaq-protocols equals the accepted verdicts, every verdict is
    the rule book's, positions equal the exchange's fills, nothing lost."""
    test = "orders_day_closed_loop"
    rng = _rng(test)
    tb = OrdersTB(dut)
    tb.log.info("seed %d (rerun with WIRESPEED_SEED=%d)", SEED, SEED)
    await tb.reset()
    run = Run()

    day = generate_day(DAY_MESSAGES, symbols=SYMBOLS, seed=rng.randrange(1 << 30))
    frames = mold_frames(day)
    config, sym_limits = _limits(_first_prices(day))

    # -- configuration: the host library's own sequences, over AXI-Lite ---------------------
    card = await bridge(Card)(AxiLiteBackend(tb))
    tick = card.identity.book.tick

    def configure() -> None:
        card.set_feeds([DEFAULT_FEED])
        card.reset_books()
        card.subscribe_all(SYMBOLS)
        card.set_firm(FIRM)
        card.apply_limits(config)          # every slot's limits, the global set, commit,
        card.kill_symbol(KILLED)           # then the start-of-day positions
        card.regs.pulse("oe_cmd", "restart")

    await bridge(configure)()
    sod = {s: (await bridge(card.risk_state)(s)) for s in range(len(SYMBOLS))}
    problems = [f"slot {s}: start-of-day state {st}, wrote position "
                f"{START_POSITIONS.get(s, 0)}" for s, st in sod.items()
                if (st["position"], st["open_buy"], st["open_sell"])
                != (START_POSITIONS.get(s, 0), 0, 0)]

    # -- the exchange, logged in by the host (the TCP engine's job) --------------------------
    bbo_now: dict[str, tuple] = {}
    exchange = ExchangeSimulator(lambda s: bbo_now.get(s, (0, 0, 0, 0)), SYMBOLS,
                                 username=USERNAME, password=PASSWORD)
    side = ExchangeSide(tb, run, rng, exchange, exchange.connect())
    side.send_now(side.conn.on_bytes(soup.login_request(USERNAME, PASSWORD), START_NS))

    # -- the buses -----------------------------------------------------------------------------
    tb.tx.set_pause_generator(_stalls(rng, TX_STALL, TX_BURST, TX_BURST_LEN))
    tb.c2h.set_pause_generator(_coin(rng, C2H_STALL))
    tb.h2c.set_pause_generator(_coin(rng, H2C_IDLE))
    tb.oe_rx.set_pause_generator(_coin(rng, OE_RX_IDLE))
    tb.rx[Line.A].set_pause_generator(_racing(rng, slow_first=True))
    tb.rx[Line.B].set_pause_generator(_racing(rng, slow_first=False))
    tasks = [cocotb.start_soon(c) for c in (
        sample_buses(tb, run), collect_records(tb, run, bbo_now), side.take_tx(),
        side.give_back())]

    def day_over() -> bool:
        return tb.rx[Line.A].idle() and tb.rx[Line.B].idle()

    host = Host(tb, card, run, rng, lambda: tb.rx_monitor[Line.A].count() / len(frames),
                day_over, tick)
    await prelude(host)
    await host.rearm()                      # nothing has a BBO yet: arms nothing
    delay = rng.randint(1, 24)
    for w in frames:
        await tb.send(Line.A, w)
    await ClockCycles(dut.clk, delay)
    for w in frames:
        await tb.send(Line.B, w)
    await host()
    quiet = 0
    while quiet < QUIET_CYCLES:
        await RisingEdge(dut.clk)
        busy = (dut.m_axis_tx_tvalid.value or dut.m_axis_c2h_tvalid.value or not side.idle
                or not tb.h2c.idle())
        quiet = 0 if busy else quiet + 1
    for t in tasks:
        t.cancel()
    run.day_end = max(s.last for line in Line for s in tb.seen(line))

    # -- what the card says -----------------------------------------------------------------------
    counters = await bridge(card.counters)()
    final = {s: (await bridge(card.risk_state)(s)) for s in range(len(SYMBOLS))}
    armed = await bridge(card.armed)()
    records = decode(np.frombuffer(b"".join(run.raw_records), dtype=numpy_dtype()))

    # -- the checks -----------------------------------------------------------------------------
    problems += run.bus_problems[:MAX_REPORTED] + run.exchange_errors
    if [r["seq"] for r in records] != list(range(len(records))):
        problems.append("record sequence numbers have holes (records lost)")
    odd = Counter(r["kind_name"] for r in records
                  if r["kind_name"] in ("OE_ALERT", "GAP", "INVALIDATE")
                  or r["kind_name"].startswith("unknown"))
    if odd:
        problems.append(f"unexpected records: {dict(odd)}")
    verdicts = [r for r in records if r["kind_name"] == "VERDICT"]
    bbos = [r for r in records if r["kind_name"] == "BBO" and r["aux"] < len(SYMBOLS)]
    accepted = [v for v in verdicts if v["aux"] == Reason.ACCEPTED]
    reports, kinds, rx_problems = _reports(run)
    problems += rx_problems
    problems += check_tx(run, accepted, exchange)
    problems += check_sources(run, verdicts, bbos)
    lim = {s: {k: int(x) for k, x in asdict(sym_limits.get(s, SymbolLimits(enable=False)))
               .items()} for s in range(64)}
    glob = {k: int(x) for k, x in asdict(config.global_limits).items()}
    replay = Replay(tick, lim, glob, run.kills)
    for s, p in START_POSITIONS.items():
        replay.st.position[s] = p
    rule_problems, ambiguous = check_verdicts(run, verdicts, bbos, reports, replay)
    problems += rule_problems
    problems += check_counters(counters, records, verdicts, run, kinds, len(day))

    # Positions: the card's registers, the exchange's fills, the replay's.
    for s, name in enumerate(SYMBOLS):
        st = final[s]
        want = START_POSITIONS.get(s, 0) + exchange.positions.get(name, 0)
        if (st["position"], st["open_buy"], st["open_sell"]) != (want, 0, 0):
            problems.append(f"{name} (slot {s}): card position {st['position']}, open buy "
                            f"{st['open_buy']}, open sell {st['open_sell']}; start of day "
                            f"{START_POSITIONS.get(s, 0)} + exchange fills "
                            f"{exchange.positions.get(name, 0)} = {want}, nothing open")
        if replay.st.position[s] != want:
            problems.append(f"{name}: the rule-book replay ends at position "
                            f"{replay.st.position[s]}, the exchange at {want}")
    if final[0]["open_orders"] or replay.st.open_orders:
        problems.append(f"open orders at the end: card {final[0]['open_orders']}, replay "
                        f"{replay.st.open_orders}")
    arms_left = sum(1 << s for s in TRIGGER_SLOTS
                    if len([a for a in run.arms if a.slot == s])
                    > len([v for v in verdicts if v["source"] == Source.TRIGGER
                           and v["slot"] == s]))
    if armed != arms_left:
        problems.append(f"trig_armed {armed:#x} at the end, the bench left {arms_left:#x} "
                        "armed (arms not yet fired)")

    by_reason = Counter(Reason(v["aux"]).name for v in verdicts)
    mid_day = sum(1 for r in reports if r.kind == "E" and r.cycle < run.day_end)
    tb.log.info(
        "%d messages in %d frames per line, B %d cycles behind; %d verdicts %s; %d arms, "
        "%d trigger orders; %d TX packets (%d cancels); exchange: %d fills (%d reported "
        "mid-day), positions %s; return path %s; outcomes allowed either way: %s; "
        "kill windows %s", len(day), len(frames), delay, len(verdicts), dict(by_reason),
        len(run.arms), counters["trig_fired"], len(run.tx), counters["tx_cancels"],
        len(exchange.fills), mid_day, dict(exchange.positions), dict(kinds), dict(ambiguous),
        run.kills)
    if not problems:
        # The run must have exercised what it claims to check.
        need = ("ACCEPTED", "MAX_SIZE", "PRICE_COLLAR", "DISABLED", "KILL_SYMBOL", "KILL",
                "NO_REFERENCE", "BAD_ORDER", "BAD_TOKEN", "MAX_NOTIONAL")
        missing = [n for n in need if not by_reason[n]]
        assert not missing, f"no verdict {missing}: {dict(by_reason)} (seed {SEED})"
        assert counters["trig_fired"] >= 30, f"only {counters['trig_fired']} triggers fired"
        assert len(exchange.fills) >= 10 and mid_day >= 5, \
            f"{len(exchange.fills)} fills, {mid_day} reported mid-day (seed {SEED})"
    assert_agrees(problems, test, SEED, what="core and expectations disagree")
