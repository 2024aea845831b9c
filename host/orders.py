"""The order side of a replay: verdicts, the exchange simulator in the loop, the TX capture.

A replay with limits and triggers closes the loop the way a day in production would: the
card's triggers fire on the replayed book, the risk gate judges every order, accepted ones
leave on TX as SoupBinTCP/OUCH bytes, the exchange simulator (:mod:`sim.exchange`) accepts
and fills them against the book, and its execution reports go back into the card's
order-entry receive port, where they move positions.

The host plays the TCP engine: it logs in to the exchange before the replay, carries the
card's TX bytes to the exchange and the exchange's bytes back. The replay stops at the cycle
each TX packet's last beat leaves (:func:`host.replay.replay`, ``on_stop``), and the
exchange's answer reaches the card's order-entry port exactly ``rtt_cycles`` after that beat:
a fixed round trip, so where a fill lands does not depend on how the replay is cut into
chunks (the gate counts the order as open until then, which is conservative). The exchange
fills an immediate-or-cancel order against the card's own BBO at the cycle the order's first
byte left — the book the card saw, which is the replayed feed. So that every BBO event up to
that cycle has reached the host, the packet is handed over :attr:`OrderLoop.slack_cycles`
(256, or less inside a shorter round trip) after its first byte, or once the card is quiet;
the reply's cycle does not move. The host re-arms a fired
trigger at the cycle its verdict reaches the host (the replay stops there too,
:data:`STOP_KINDS`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from hw.events import EventKind, body_dtype
from hw.oe.tokens import format_token
from hw.risk.params import OrderKind, Reason, Side, Source
from hw.strategy.trigger import LATENCY as TRIGGER_LATENCY
from proto import soupbintcp as soup
from sim.exchange import ExchangeSimulator
from sim.feed.pcap import Frame, write_frames
from sim.feed.tcp import TcpConnection
from sim.model.risk import LATENCY as GATE_LATENCY

ORDERS_HEADER = ("cycle", "source", "token", "symbol", "kind", "side", "shares", "price",
                 "tif", "verdict", "reason")
USERNAME, PASSWORD = "WIRE", "SPEED"
CLOCK_HZ = 156.25e6
#: Round trip from an order's last byte on TX to the first byte of the exchange's answer on
#: order-entry RX (a co-located gateway answers in tens of microseconds; a replay can say).
EXCHANGE_RTT_NS = 10_000
#: Records the replay stops at for the order loop (besides every TX packet): verdicts, where a
#: fired trigger is re-armed.
STOP_KINDS = (EventKind.VERDICT,)
#: Cycles of BBO events kept to name the message behind a trigger order.
_BBO_KEEP = 100_000
#: Cycles within which an event record reaches the host once raised, with C2H always ready
#: (as in a replay): it waits only behind records raised no later than it, at most one per
#: cycle per source FIFO (hw/eventq.py), so this is a generous bound.
EVENT_SLACK = 256
#: Beats of the longest packet the card sends (an OUCH enter order: 52 bytes, 7 beats), with
#: room to spare.
_PACKET_BEATS = 16

_VERDICT = body_dtype(EventKind.VERDICT)
_BBO = body_dtype(EventKind.BBO)


class OrderLoop:
    """Feed it every batch of event records (``__call__``) and call :meth:`on_stop` at each
    stop of the replay (``replay(on_stop=loop.on_stop, stop_kinds=STOP_KINDS)``)."""

    def __init__(self, card, sim, symbols: Sequence[str], *, orders_out: TextIO | None = None,
                 triggers: dict | None = None,
                 tx_pcap: Path | None = None, keep_tx: bool = False,
                 start_ns: int = (9 * 3600 + 30 * 60) * 10**9,
                 rtt_ns: int = EXCHANGE_RTT_NS):
        self.card, self.sim = card, sim
        #: Cycles from a TX packet's last beat to the exchange's answer on OE RX (at least 1).
        self.rtt_cycles = max(1, round(rtt_ns * CLOCK_HZ / 1e9))
        #: Cycles after a packet's first byte before it is carried (:meth:`on_stop`): the
        #: events the card raised by then have reached the host. Kept inside the round trip,
        #: so that the reply is never late.
        self.slack_cycles = max(0, min(EVENT_SLACK, self.rtt_cycles - 2 * _PACKET_BEATS))
        self._waiting: list = []        # TX packets not carried yet
        self.symbols = list(symbols)
        self._csv = csv.writer(orders_out, lineterminator="\n") if orders_out else None
        if self._csv:
            self._csv.writerow(ORDERS_HEADER)
        self.bbo = {s: (0, 0, 0, 0) for s in self.symbols}
        self._bbo_events: list[tuple[int, int, tuple[int, int, int, int]]] = []
        self.verdicts: dict[str, int] = {}
        self.start_ns = start_ns
        self.exchange = ExchangeSimulator(self._book, self.symbols, username=USERNAME,
                                          password=PASSWORD)
        self.conn = self.exchange.connect()
        self.tcp = TcpConnection() if tx_pcap else None
        self._frames: list[Frame] = []
        self._due: list[tuple[int, bytes]] = []    # answers not captured yet: (due ns, bytes)
        self.tx_pcap = tx_pcap
        self.tx_packets = 0
        #: Triggers to re-arm after they fired (slot -> TriggerConfig with ``rearm``).
        self.rearm = {s: t for s, t in (triggers or {}).items() if t.rearm}
        for slot, trig in (triggers or {}).items():
            card.arm_trigger(slot, trig)
        #: Every TX packet (first cycle, last cycle, bytes) when ``keep_tx`` (tests).
        self.all_tx: list[tuple[int, int, bytes]] | None = [] if keep_tx else None
        #: Every answer of the exchange to a TX packet (cycle it was due, bytes), ``keep_tx``.
        self.all_replies: list[tuple[int, bytes]] | None = [] if keep_tx else None
        self.tx_first_cycles: dict[str, int] = {}     # token -> cycle of its first TX byte
        #: token -> cycle of the BBO event that fired the trigger (accepted trigger orders)
        self.fired_by: dict[str, int] = {}
        #: token -> ITCH sequence number of the message behind that BBO event
        self.fired_seq: dict[str, int] = {}
        self._unresolved: list[tuple[str, int, int]] = []     # (token, fired cycle, slot)
        self._bbo_seq: dict[tuple[int, int], int] = {}        # (cycle, slot) -> ITCH seq
        self._now_ns = start_ns
        # Log in (the host's job), and hand the exchange's answer to the card as well.
        login = soup.login_request(USERNAME, PASSWORD)
        reply = self.conn.on_bytes(login, start_ns)
        if self.tcp:
            self._capture(self.tcp.handshake(), start_ns)
            self._capture(self.tcp.client_send(login), start_ns)
            self._capture(self.tcp.server_send(reply), start_ns)
        card.regs.pulse("oe_cmd", "restart")
        sim.send_oe_rx([reply])

    def _book(self, stock: str) -> tuple[int, int, int, int]:
        return self.bbo.get(stock, (0, 0, 0, 0))

    def _ns(self, cycle: int) -> int:
        return self.start_ns + int(cycle * 1e9 / CLOCK_HZ)

    def _capture(self, frames: list[bytes], ns: int) -> None:
        self._frames += [Frame(ns, f) for f in frames]

    def _capture_replies(self, until_ns: int | None = None) -> None:
        """Capture the exchange's answers due by ``until_ns`` (all: None) at their own time, so
        the card's segments in between acknowledge only what had arrived."""
        while self._due and (until_ns is None or self._due[0][0] <= until_ns):
            ns, reply = self._due.pop(0)
            self._capture(self.tcp.server_send(reply), ns)
            self._now_ns = max(self._now_ns, ns)

    # -- event records -----------------------------------------------------------------
    def __call__(self, records: np.ndarray) -> None:
        kinds = records["kind"]
        v = records[kinds == EventKind.VERDICT]
        if len(v):
            body = np.ascontiguousarray(v["body"]).view(_VERDICT).reshape(-1)
            for rec, b in zip(v, body, strict=True):
                reason = Reason(int(rec["aux"]))
                self.verdicts[reason.name] = self.verdicts.get(reason.name, 0) + 1
                if reason == Reason.ACCEPTED and b["source"] == Source.TRIGGER:
                    # The verdict event is raised when the gate's verdict leaves it: the
                    # BBO event that fired the trigger was raised that many cycles before.
                    token = format_token(Source.TRIGGER, int(b["token"]))
                    fired = int(rec["timestamp"]) - TRIGGER_LATENCY - GATE_LATENCY
                    self.fired_by[token] = fired
                    self._unresolved.append((token, fired, int(b["slot"])))
                if self._csv:
                    self._csv.writerow((
                        int(rec["timestamp"]),
                        "trigger" if b["source"] == Source.TRIGGER else "host",
                        format_token(int(b["source"]), int(b["token"])),
                        self.symbols[b["slot"]] if b["slot"] < len(self.symbols) else b["slot"],
                        "cancel" if b["order_kind"] == OrderKind.CANCEL else "new",
                        "sell" if b["side"] == Side.SELL else "buy",
                        int(b["shares"]), int(b["price"]), int(b["tif"]),
                        "accepted" if reason == Reason.ACCEPTED else "rejected",
                        reason.name))
        b = records[kinds == EventKind.BBO]
        if len(b):
            body = np.ascontiguousarray(b["body"]).view(_BBO).reshape(-1)
            self._bbo_events += [(int(t), int(s), (int(x["bid_px"]), int(x["bid_sz"]),
                                                   int(x["ask_px"]), int(x["ask_sz"])))
                                 for t, s, x in zip(b["timestamp"], b["aux"], body,
                                                    strict=True)
                                 if s < len(self.symbols)]
            self._bbo_seq.update(((int(t), int(s)), int(q)) for t, s, q
                                 in zip(b["timestamp"], b["aux"], body["itch_seq"],
                                        strict=True))
        self._resolve_fired()

    def _resolve_fired(self) -> None:
        """Name the ITCH message behind each accepted trigger order: the sequence number of
        the BBO event that fired it (that event may be drained after the verdict). Only
        recent BBO events are kept: a record reaches the host within far fewer cycles than
        :data:`_BBO_KEEP`."""
        waiting = []
        for token, fired, slot in self._unresolved:
            seq = self._bbo_seq.get((fired, slot))
            if seq is None:
                waiting.append((token, fired, slot))
            else:
                self.fired_seq[token] = seq
        self._unresolved = waiting
        if len(self._bbo_seq) > 2 * _BBO_KEEP:
            newest = max(t for t, _ in self._bbo_seq)
            self._bbo_seq = {k: v for k, v in self._bbo_seq.items()
                             if k[0] > newest - _BBO_KEEP}

    # -- at a stop -----------------------------------------------------------------------
    def on_stop(self, flush: bool = False) -> int | None:
        """At a stop of the replay (``replay(on_stop=loop.on_stop)``): carry to the exchange
        each TX packet that started at least :attr:`slack_cycles` ago, so that every BBO
        event the card raised up to its first byte has reached the host (``flush``: every
        packet, for a card gone quiet, whose events are all in); schedule each reply
        :attr:`rtt_cycles` after its packet's last beat; re-arm fired triggers. Returns the
        cycle at which the next packet waiting here can be carried (None: none waits), which
        the replay stops at too."""
        packets = self.sim.tx_packets()
        if self.all_tx is not None:
            self.all_tx += packets
        self._waiting += packets
        now = self.sim.cycle
        n = len(self._waiting) if flush else sum(
            1 for p in self._waiting if p[0] + self.slack_cycles <= now)
        carry, self._waiting = self._waiting[:n], self._waiting[n:]
        self._carry(carry)
        # BBO events that have all arrived (raised a slack ago) and that no packet still
        # waiting or not seen yet comes before update the exchange's book and are dropped.
        self._apply_bbo(min([p[0] for p in self._waiting[:1]] + [now - self.slack_cycles]))
        if self.rearm:
            armed = self.card.armed()
            for slot, trig in self.rearm.items():
                if not armed >> slot & 1:
                    self.card.arm_trigger(slot, trig)
        return self._waiting[0][0] + self.slack_cycles if self._waiting else None

    def _apply_bbo(self, upto: int) -> None:
        """Apply the BBO events raised up to cycle ``upto`` to the exchange's book."""
        self._bbo_events.sort(key=lambda e: e[0])
        k = 0
        while k < len(self._bbo_events) and self._bbo_events[k][0] <= upto:
            _, slot, bbo = self._bbo_events[k]
            self.bbo[self.symbols[slot]] = bbo
            k += 1
        del self._bbo_events[:k]

    def _carry(self, packets) -> None:
        """Hand ``packets`` (in cycle order) to the exchange, each against the BBO the card had
        raised by its first byte, and queue the replies."""
        replies: list[bytes] = []
        reply_at: list[int] = []
        for first, last, data in packets:
            self._apply_bbo(first)
            ns = self._ns(first)
            self._now_ns = max(self._now_ns, ns)
            token = _token_of(data)
            if token:
                self.tx_first_cycles.setdefault(token, first)
            reply = self.conn.on_bytes(data, ns)
            self.tx_packets += 1
            if self.tcp:
                self._capture_replies(ns)
                self._capture(self.tcp.client_send(data), ns)
            if reply:
                replies.append(reply)
                reply_at.append(max(last + self.rtt_cycles, self.sim.cycle))
                if self.tcp:
                    self._due.append((self._ns(reply_at[-1]), reply))
        if replies:
            self.sim.send_oe_rx(replies, not_before=np.array(reply_at, dtype=np.uint64))
            if self.all_replies is not None:
                self.all_replies += zip(reply_at, replies, strict=True)

    def finish(self, rx_index=None) -> dict:
        """Write the TX pcap; the exchange's view (fills, positions) as a dict. With the
        replay's :class:`host.replay.RxIndex`, also tick-to-trade: from the RX beat holding
        the last byte of the ITCH message that fired each trigger order to the TX beat of
        the order's first byte."""
        if self.tcp and self.tx_pcap:
            self._capture_replies()
            self._capture(self.tcp.close(), self._now_ns)
            write_frames(self.tx_pcap, self._frames)
        fills = self.exchange.fills
        lat = [self.tx_first_cycles[t] - c for t, c in self.fired_by.items()
               if t in self.tx_first_cycles]
        t2t = None
        if rx_index is not None:
            ticks = rx_index.last_byte_cycles(self.sim, self.fired_seq.values())
            t2t = [self.tx_first_cycles[t] - ticks[q] for t, q in self.fired_seq.items()
                   if t in self.tx_first_cycles and q in ticks]
        return {
            "bbo_event_to_tx_cycles": {"min": min(lat), "max": max(lat), "orders": len(lat)}
            if lat else None,
            "tick_to_trade_cycles": {
                "min": min(t2t), "max": max(t2t), "orders": len(t2t),
                "histogram": {int(k): int(v) for k, v in zip(*np.unique(t2t, return_counts=True),
                                                             strict=True)}}
            if t2t else None,
            "verdicts": dict(sorted(self.verdicts.items())),
            "tx_packets": self.tx_packets,
            "exchange_fills": len(fills),
            "exchange_positions": {k: v for k, v in sorted(self.exchange.positions.items())},
        }


def _token_of(packet: bytes) -> str | None:
    """The order token of a SoupBinTCP ``U`` packet carrying an OUCH enter order or cancel."""
    if len(packet) >= 18 and packet[2:3] == b"U" and packet[3:4] in (b"O", b"X"):
        return packet[4:18].decode("ascii", "replace")
    return None
