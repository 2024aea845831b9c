"""Reference model of the order-entry return path (``hw/oe/``): the executable spec.

Bytes from the exchange in, execution reports for the risk gate out, in plain Python:

* :class:`ParserModel` is :class:`hw.oe.parser.OuchParser`: SoupBinTCP framing of the
  exchange -> card TCP stream, OUCH 4.2 classification, our token format. Every packet is
  counted once by what it is (``soup_*``; ``S`` packets also by their OUCH content,
  ``ouch_*``); ``E``/``C``/``J`` messages whose token is ours become :class:`Lookup` s.
* :class:`TableModel` is :class:`hw.oe.table.OpenOrderTable`: accepted new orders from the
  gate's verdicts are registered at :func:`hw.oe.layouts.table_index`, lookups resolve to
  (slot, side, shares) reports.
* :class:`ReturnPathModel` chains the two, applying every lookup as soon as its packet ends.

The framing rules (shared with the gateware, which must agree byte for byte):

* a packet is ``length (2) · type · ...``, and occupies ``2 + max(length, 1)`` bytes: a
  length of 0 (illegal: the length counts the type byte) is counted ``soup_bad_length`` and
  still consumes the byte after it, so every packet is at least 3 bytes long;
* the length is always believed — SoupBinTCP has no resynchronisation marker, so a corrupted
  length misframes what follows until the connection restarts (:meth:`ParserModel.restart`);
  what misframed bytes turn into is counted like any other input, never fatal;
* fixed-length server types (``A`` login accepted, ``J`` login rejected, ``H``, ``Z``) with
  another length: ``soup_bad_length``; any type a server does not send: ``soup_unknown``;
* in an ``S`` packet, an empty payload or a known OUCH outbound type whose length is not
  the type's: ``ouch_bad_length``; an unknown OUCH type: ``ouch_unknown``;
* ``E``/``C``/``J`` with a token not in our format (:func:`hw.oe.tokens.parse_token`):
  ``bad_token``, no lookup.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

from hw.oe.layouts import DEFAULT_DEPTH, LookupKind, table_index
from hw.oe.tokens import parse_token
from hw.risk.params import DEFAULT_RISK, OrderKind, Reason, ReportKind, RiskParams
from proto import ouch
from proto import soupbintcp as soup

_FIXED = {t: n for t, n in soup.PACKET_LENGTH.items() if t in soup.SERVER_TYPES}
_LOOKUP_KINDS = {ouch.EXECUTED.type_code: (LookupKind.EXECUTED, "executed_shares"),
                 ouch.CANCELED.type_code: (LookupKind.CANCELED, "decrement_shares"),
                 ouch.REJECTED.type_code: (LookupKind.REJECTED, None)}

PARSER_COUNTERS: tuple[str, ...] = (
    *(f"soup_{soup.PACKETS[t].name}" for t in sorted(soup.SERVER_TYPES)),
    "soup_unknown", "soup_bad_length",
    *(f"ouch_{m.name}" for _, m in sorted(ouch.OUTBOUND.items())),
    "ouch_unknown", "ouch_bad_length", "bad_token",
)
TABLE_COUNTERS: tuple[str, ...] = (
    "tracked", "table_conflict", "unknown_token", "clamped", "reports")


@dataclass(frozen=True)
class Lookup:
    """A parsed ``E``/``C``/``J`` on one of our tokens. ``end`` is the stream offset of the
    packet's last byte (not part of what the gateware outputs: tests use it for timing)."""

    kind: LookupKind
    source: int
    token: int
    shares: int
    end: int = -1

    def key(self) -> tuple[int, int, int, int]:
        return (int(self.kind), self.source, self.token, self.shares)


class ParserModel:
    """SoupBinTCP + OUCH 4.2 outbound parser; see the module docstring for the rules."""

    def __init__(self, params: RiskParams = DEFAULT_RISK):
        self.token_bits = params.token_bits
        self.counters: Counter[str] = Counter({c: 0 for c in PARSER_COUNTERS})
        self.lookups: list[Lookup] = []
        self._buf = bytearray()
        self._offset = 0     # stream offset of _buf[0]

    def restart(self) -> None:
        """The connection restarted: the next byte starts a packet (a partial one is lost)."""
        self._offset += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes) -> list[Lookup]:
        """Bytes in (any split); the lookups of the packets they complete out."""
        self._buf += data
        out: list[Lookup] = []
        at = 0
        buf = self._buf
        while len(buf) - at >= soup.LENGTH_SIZE:
            (length,) = struct.unpack_from(">H", buf, at)
            size = soup.LENGTH_SIZE + max(length, 1)
            if len(buf) - at < size:
                break
            lookup = self._packet(length, bytes(buf[at:at + size]), self._offset + at + size - 1)
            if lookup is not None:
                out.append(lookup)
            at += size
        del buf[:at]
        self._offset += at
        self.lookups += out
        return out

    def _packet(self, length: int, packet: bytes, end: int) -> Lookup | None:
        c = self.counters
        if length == 0:
            c["soup_bad_length"] += 1
            return None
        t = chr(packet[soup.HEADER["packet_type"].offset])
        if t not in soup.SERVER_TYPES:
            c["soup_unknown"] += 1
            return None
        if t in _FIXED and length != _FIXED[t]:
            c["soup_bad_length"] += 1
            return None
        c[f"soup_{soup.PACKETS[t].name}"] += 1
        if t != "S":
            return None
        message = packet[soup.HEADER_LENGTH:]
        if not message:
            c["ouch_bad_length"] += 1
            return None
        layout = ouch.OUTBOUND.get(chr(message[0]))
        if layout is None:
            c["ouch_unknown"] += 1
            return None
        if len(message) != layout.length:
            c["ouch_bad_length"] += 1
            return None
        c[f"ouch_{layout.name}"] += 1
        if layout.type_code not in _LOOKUP_KINDS:
            return None
        kind, shares_field = _LOOKUP_KINDS[layout.type_code]
        f = layout["order_token"]
        parsed = parse_token(message[f.offset:f.end], self.token_bits)
        if parsed is None:
            c["bad_token"] += 1
            return None
        shares = 0
        if shares_field is not None:
            s = layout[shares_field]
            shares = int.from_bytes(message[s.offset:s.end], "big")
        return Lookup(kind, int(parsed[0]), parsed[1], shares, end)


@dataclass
class Entry:
    """One tracked order: where its reports go and what is still open."""

    source: int
    token: int
    slot: int
    side: int
    remaining: int

    @property
    def live(self) -> bool:
        return self.remaining > 0


class TableModel:
    """The open-order table. An entry is live while shares remain; a new order whose index
    holds a live entry is not tracked (``table_conflict``: the gate keeps its exposure, which
    no report will release — conservative) and yields an alert."""

    def __init__(self, params: RiskParams = DEFAULT_RISK, depth: int = DEFAULT_DEPTH):
        self.depth = depth
        self.entries: list[Entry | None] = [None] * depth
        self.counters: Counter[str] = Counter({c: 0 for c in TABLE_COUNTERS})
        self.reports: list[dict] = []
        self.alerts: list[dict] = []

    def cycle(self, lookup: Lookup | None, verdict: dict | None) -> tuple[dict | None,
                                                                         dict | None]:
        """A lookup and a verdict that the gateware decides in the same cycle: both are
        judged on the state before it (``(report, alert)``). They can only meet on one entry
        if it is live — the verdict is refused, the lookup resolves — or not — the lookup
        finds nothing, the verdict registers — so applying the lookup first and giving the
        verdict the earlier liveness is exactly that."""
        busy = None
        if verdict is not None:
            o = verdict["order"]
            e = self.entries[table_index(o["source"], o["token"], self.depth)]
            busy = e is not None and e.live
        report = self.lookup(lookup) if lookup is not None else None
        alert = self.verdict(verdict, busy=busy) if verdict is not None else None
        return report, alert

    def verdict(self, v: dict, *, busy: bool | None = None) -> dict | None:
        """One verdict of the gate (``{"order": {...}, "reason": r}``); an alert or None.
        ``busy``: whether its entry counts as live (default: as it is now)."""
        o = v["order"]
        if v["reason"] != Reason.ACCEPTED or o["kind"] != OrderKind.NEW:
            return None
        i = table_index(o["source"], o["token"], self.depth)
        e = self.entries[i]
        if busy is None:
            busy = e is not None and e.live
        if busy:
            self.counters["table_conflict"] += 1
            alert = {k: o[k] for k in ("source", "token", "slot", "side", "shares")}
            self.alerts.append(alert)
            return alert
        self.entries[i] = Entry(o["source"], o["token"], o["slot"], o["side"], o["shares"])
        self.counters["tracked"] += 1
        return None

    def lookup(self, lk: Lookup) -> dict | None:
        """One parsed execution report; the gate's report (``report_layout`` fields) or None."""
        e = self.entries[table_index(lk.source, lk.token, self.depth)]
        if e is None or not e.live or (e.source, e.token) != (lk.source, lk.token):
            self.counters["unknown_token"] += 1
            return None
        if lk.kind == LookupKind.REJECTED:
            n = e.remaining
        else:
            n = min(lk.shares, e.remaining)
            if lk.shares > e.remaining:
                self.counters["clamped"] += 1
        e.remaining -= n
        self.counters["reports"] += 1
        rep = {"kind": ReportKind.FILL if lk.kind == LookupKind.EXECUTED else ReportKind.OUT,
               "slot": e.slot, "side": e.side, "shares": n, "done": int(e.remaining == 0)}
        self.reports.append(rep)
        return rep

    def live(self) -> dict[int, tuple[int, int, int, int, int]]:
        """Index -> (source, token, slot, side, remaining) of every live entry."""
        return {i: (e.source, e.token, e.slot, e.side, e.remaining)
                for i, e in enumerate(self.entries) if e is not None and e.live}


class ReturnPathModel:
    """Parser and table chained: every lookup is resolved as its packet ends, every verdict
    as it comes (the order a slow stream sees; tests of the gateware's timing step a
    :class:`TableModel` themselves, with :meth:`TableModel.cycle`)."""

    def __init__(self, params: RiskParams = DEFAULT_RISK, depth: int = DEFAULT_DEPTH):
        self.parser = ParserModel(params)
        self.table = TableModel(params, depth)

    def verdict(self, v: dict) -> dict | None:
        return self.table.verdict(v)

    def feed(self, data: bytes) -> list[dict]:
        out = []
        for lk in self.parser.feed(data):
            rep = self.table.lookup(lk)
            if rep is not None:
                out.append(rep)
        return out

    def restart(self) -> None:
        self.parser.restart()

    @property
    def counters(self) -> Counter[str]:
        return Counter({**self.parser.counters, **self.table.counters})

    @property
    def reports(self) -> list[dict]:
        return self.table.reports
