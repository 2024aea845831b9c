"""SoupBinTCP 3.0 packet layouts, packing and an incremental stream deframer.

Every packet is ``packet_length (2) · packet_type (1) · payload``, where the length counts the
type byte and the payload (so it is never 0). Each layout in :data:`PACKETS` covers a whole
packet, header included, so offsets are offsets from the first byte of the packet on the TCP
stream: that is what the gateware slices, and the header fields are then part of the same
declarative description as the body. ``U``, ``S`` and ``+`` carry a variable payload after the
3-byte header; the other types have a fixed length (:data:`PACKET_LENGTH`).

Alpha fields are left-justified and space padded. The two numeric fields (requested sequence
number of ``L``, sequence number of ``A``) are ASCII decimal, *right*-justified and padded on the
left with spaces, as SoupBinTCP 3.0 specifies for numeric fields. The layouts hold them as
20-byte alpha fields; :func:`format_numeric` / :func:`parse_numeric` convert.

Checked against nasdaq-protocols 1.3.0 (``nasdaq_protocols.soup.core``), byte for byte in
``tests/test_proto_soupbintcp.py``:

* matched: the 2-byte big-endian length counting the type byte, every type code, the field
  widths of ``L`` (6/10/10/20, packet length 47) and ``A`` (10/20, packet length 31), ``J``
  (packet length 2, reasons ``A``/``S``), the 1-byte packets ``R H O Z``, and ``U``/``S``/``+``
  as header + raw payload. Their decoders read every packet :func:`pack_packet` writes.
* differs: nasdaq-protocols writes the 20-byte sequence numbers *left*-justified
  (``str(n).ljust(20)``), we write them right-justified per the specification. Both sides
  strip spaces when reading, so each reads the other's bytes; :func:`parse_numeric` accepts
  either justification for that reason.
* nasdaq-protocols cannot decode a login request whose sequence field is all spaces
  (``int('')`` raises); :func:`parse_numeric` reads blank as 0 ("next new message").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NoReturn

from .layout import Kind, MessageLayout

A, C = Kind.ALPHA, Kind.CHAR

_H = (("packet_length", 2), ("packet_type", 1, C))
HEADER = MessageLayout("soupbintcp_header", _H)
HEADER_LENGTH = HEADER.length  # 3
#: The length field itself is not counted by ``packet_length``.
LENGTH_SIZE = HEADER["packet_length"].size
#: Largest ``packet_length`` the 2-byte field can carry.
MAX_PACKET_LENGTH = 0xFFFF
NUMERIC_WIDTH = 20

#: One layout per packet type, header included. Variable-payload types are header only.
PACKETS: dict[str, MessageLayout] = {
    # Either direction
    "+": MessageLayout("debug", _H, type_code="+"),
    # Server -> client
    "A": MessageLayout("login_accepted", _H + (
        ("session", 10, A), ("sequence_number", NUMERIC_WIDTH, A)), type_code="A"),
    "J": MessageLayout("login_rejected", _H + (("reject_reason", 1, C),), type_code="J"),
    "S": MessageLayout("sequenced_data", _H, type_code="S"),
    "H": MessageLayout("server_heartbeat", _H, type_code="H"),
    "Z": MessageLayout("end_of_session", _H, type_code="Z"),
    # Client -> server
    "L": MessageLayout("login_request", _H + (
        ("username", 6, A), ("password", 10, A), ("requested_session", 10, A),
        ("requested_sequence_number", NUMERIC_WIDTH, A)), type_code="L"),
    "U": MessageLayout("unsequenced_data", _H, type_code="U"),
    "R": MessageLayout("client_heartbeat", _H, type_code="R"),
    "O": MessageLayout("logout_request", _H, type_code="O"),
}

#: Types whose payload is arbitrary bytes (one OUCH message for ``U``/``S``, text for ``+``).
VARIABLE = frozenset("+SU")
#: ``packet_length`` of every fixed-length type (type byte + body).
PACKET_LENGTH: dict[str, int] = {
    t: m.length - LENGTH_SIZE for t, m in PACKETS.items() if t not in VARIABLE}
assert PACKET_LENGTH == {"A": 31, "J": 2, "H": 1, "Z": 1, "L": 47, "R": 1, "O": 1}

SERVER_TYPES = frozenset("+AJSHZ")
CLIENT_TYPES = frozenset("+LURO")

#: Login rejected reasons.
REJECT_NOT_AUTHORIZED = "A"
REJECT_SESSION_NOT_AVAILABLE = "S"
REJECT_REASONS = {REJECT_NOT_AUTHORIZED: "not_authorized",
                  REJECT_SESSION_NOT_AVAILABLE: "session_not_available"}


class SoupBinTcpError(ValueError):
    """A malformed SoupBinTCP packet or stream. ``packets`` holds what a :class:`Deframer`
    completed in the same ``feed`` call before the fault (so nothing is silently lost)."""

    def __init__(self, message: str, packets: list[tuple[str, bytes]] | None = None):
        super().__init__(message)
        self.packets = packets or []


def format_numeric(value: int, width: int = NUMERIC_WIDTH) -> str:
    """A SoupBinTCP numeric field: decimal ASCII, right-justified, space padded."""
    text = str(int(value))
    if int(value) < 0 or len(text) > width:
        raise ValueError(f"{value} does not fit a {width}-character numeric field")
    return text.rjust(width)


def parse_numeric(field: str | bytes) -> int:
    """Read a numeric field. Spaces on either side are accepted (nasdaq-protocols pads on the
    right) and an all-space field reads as 0."""
    text = field.decode("ascii", "replace") if isinstance(field, bytes | bytearray) else field
    digits = text.strip(" ")
    if not digits:
        return 0
    if not digits.isdigit() or not digits.isascii():
        raise SoupBinTcpError(f"numeric field {text!r} is not a space-padded decimal number")
    return int(digits)


def pack_packet(packet_type: str, payload: bytes = b"") -> bytes:
    """Frame one packet: length (type + payload), type, payload.

    Fixed-length types must get a payload of exactly their body length; use
    :func:`encode` to build those from field values."""
    if packet_type not in PACKETS:
        raise SoupBinTcpError(f"unknown SoupBinTCP packet type {packet_type!r}")
    n = 1 + len(payload)
    want = PACKET_LENGTH.get(packet_type)
    if want is not None and n != want:
        raise SoupBinTcpError(f"{PACKETS[packet_type].name} {packet_type!r} has packet length "
                              f"{want}, payload of {len(payload)} bytes gives {n}")
    if n > MAX_PACKET_LENGTH:
        raise SoupBinTcpError(f"payload of {len(payload)} bytes exceeds the 2-byte length")
    return struct.pack(">Hc", n, packet_type.encode("ascii")) + bytes(payload)


def encode(packet_type: str, **fields) -> bytes:
    """Build a fixed-length packet from its fields, e.g.
    ``encode("A", session="S1", sequence_number=5)``. Numeric fields take ints."""
    layout = PACKETS[packet_type]
    if packet_type in VARIABLE:
        raise SoupBinTcpError(f"{layout.name} carries a payload: use pack_packet")
    for name in ("sequence_number", "requested_sequence_number"):
        if name in fields and not isinstance(fields[name], str):
            fields[name] = format_numeric(fields[name])
    return layout.pack(packet_length=PACKET_LENGTH[packet_type], packet_type=packet_type,
                       **fields)


def decode(packet_type: str, payload: bytes) -> dict:
    """Fields of a fixed-length packet given its type and payload (as a :class:`Deframer`
    yields them); numeric fields come back as ints. Variable types give ``{"payload": ...}``."""
    if packet_type not in PACKETS:
        raise SoupBinTcpError(f"unknown SoupBinTCP packet type {packet_type!r}")
    if packet_type in VARIABLE:
        return {"payload": bytes(payload)}
    layout = PACKETS[packet_type]
    body = layout.length - HEADER_LENGTH
    if len(payload) != body:
        raise SoupBinTcpError(f"{layout.name} {packet_type!r} payload is {body} bytes, "
                              f"got {len(payload)}")
    for f in layout.fields[2:]:
        text = payload[f.offset - HEADER_LENGTH:f.end - HEADER_LENGTH]
        if any(not 0x20 <= c < 0x7F for c in text):
            raise SoupBinTcpError(f"{layout.name}.{f.name} holds non-printable bytes "
                                  f"{bytes(text)!r}")
    out = layout.unpack(pack_packet(packet_type, payload))
    for name in ("sequence_number", "requested_sequence_number"):
        if name in out:
            out[name] = parse_numeric(out[name])
    return out


def login_request(username: str, password: str, session: str = "", sequence: int = 0) -> bytes:
    """Client login; blank session = the current one, sequence 0 = next new message."""
    return encode("L", username=username, password=password, requested_session=session,
                  requested_sequence_number=sequence)


@dataclass
class Deframer:
    """Incremental SoupBinTCP deframer for one direction of a TCP stream.

    :meth:`feed` takes whatever a TCP read returned and gives back the packets it completed,
    as ``(type, payload)``; partial packets wait for the next call. A length that cannot be
    right (0, the wrong length for a fixed-length type, more than ``max_packet_length``) or a
    type outside ``types`` means the stream has lost framing: :class:`SoupBinTcpError` is
    raised with the stream offset, and every later call raises it again, because nothing
    after a bad length can be trusted.
    """

    types: frozenset[str] | None = None          #: allowed types; None = every known type
    max_packet_length: int = MAX_PACKET_LENGTH   #: largest acceptable ``packet_length``

    def __post_init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.offset = 0            #: stream offset of the next unconsumed byte
        self.error: SoupBinTcpError | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet waiting for more data."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        if self.error is not None:
            raise SoupBinTcpError(f"stream already failed: {self.error}")
        self._buf += data
        out: list[tuple[str, bytes]] = []
        buf = self._buf
        while len(buf) - self._pos >= LENGTH_SIZE:
            at = self._pos
            (n,) = struct.unpack_from(">H", buf, at)
            if n == 0:
                self._fail(f"packet length 0 at stream offset {self.offset}: a packet has at "
                           f"least its type byte", out)
            if n > self.max_packet_length:
                self._fail(f"packet length {n} at stream offset {self.offset} exceeds the "
                           f"limit {self.max_packet_length}", out)
            if len(buf) - at < LENGTH_SIZE + 1:
                break
            t = chr(buf[at + LENGTH_SIZE])
            if t not in PACKETS or (self.types is not None and t not in self.types):
                what = "unknown" if t not in PACKETS else "unexpected"
                self._fail(f"{what} packet type {t!r} (0x{ord(t):02x}) at stream offset "
                           f"{self.offset}", out)
            want = PACKET_LENGTH.get(t)
            if want is not None and n != want:
                self._fail(f"{PACKETS[t].name} {t!r} at stream offset {self.offset} has packet "
                           f"length {n}, the type requires {want}", out)
            if len(buf) - at < LENGTH_SIZE + n:
                break
            out.append((t, bytes(buf[at + HEADER_LENGTH:at + LENGTH_SIZE + n])))
            self._pos = at + LENGTH_SIZE + n
            self.offset += LENGTH_SIZE + n
        if self._pos > 4096 and self._pos * 2 > len(buf):
            del buf[:self._pos]
            self._pos = 0
        return out

    def close(self) -> None:
        """End of stream: raise if it stopped inside a packet."""
        if self.error is None and self.pending:
            self._fail(f"stream ended inside a packet: {self.pending} bytes buffered at stream "
                       f"offset {self.offset}", [])

    def _fail(self, message: str, packets: list[tuple[str, bytes]]) -> NoReturn:
        self.error = SoupBinTcpError(message)
        raise SoupBinTcpError(message, packets)
