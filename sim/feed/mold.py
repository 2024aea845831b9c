"""MoldUDP64 packetizer: a message stream cut into downstream packets.

A MoldUDP64 packet carries the sequence number of its first message and a count; the
receiver numbers the rest implicitly. The packetizer therefore only has to keep messages in
order, never split one across packets, and keep every payload within what one unfragmented
UDP datagram may carry on the link (``mtu - 20 - 8`` bytes for IPv4 without options): a
fragmented datagram is something the card's ingress deliberately drops.

Packets close lazily: a packet is emitted when the *next* message would not fit (bytes,
message count, or batching delay), or on :meth:`Packetizer.flush`. That is the behaviour of a
publisher that batches what its matching engine produced in one go, and it means
:meth:`Packetizer.add` closes at most one packet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from proto.itch import MESSAGES as ITCH_MESSAGES
from proto.moldudp64 import (
    BLOCK_LENGTH_SIZE,
    END_OF_SESSION_COUNT,
    HEADER,
    HEADER_LENGTH,
    HEARTBEAT_COUNT,
    pack_packet,
)
from proto.net import IPV4, UDP

__all__ = [
    "MoldPacket", "Packetizer", "end_of_session", "heartbeat", "itch_timestamp",
    "packetize", "udp_payload_limit",
]

_TS = ITCH_MESSAGES["S"]["timestamp"]   # the 6-byte timestamp of the common ITCH header
_TS_START, _TS_END = _TS.offset, _TS.end
#: Largest count a data packet may carry: 0xFFFF is reserved for end of session.
MAX_COUNT = END_OF_SESSION_COUNT - 1
# The packetizer's hot path packs the header with a struct derived from the layout (the
# generic MessageLayout.pack validates every field by name and costs several microseconds);
# tests check the result against pack_packet byte for byte.
_HEADER_S = struct.Struct(">" + "".join(f.struct_code for f in HEADER.fields))
_BLOCK_LEN = struct.Struct(">H")
assert _BLOCK_LEN.size == BLOCK_LENGTH_SIZE and _HEADER_S.size == HEADER_LENGTH


def itch_timestamp(message: bytes) -> int:
    """Nanoseconds since midnight from an ITCH 5.0 message's common header."""
    return int.from_bytes(message[_TS_START:_TS_END], "big")


def udp_payload_limit(mtu: int = 1500, ip_options_len: int = 0) -> int:
    """Largest UDP payload that fits an IPv4 packet of ``mtu`` bytes without fragmenting."""
    limit = mtu - IPV4.length - ip_options_len - UDP.length
    if limit < HEADER_LENGTH + BLOCK_LENGTH_SIZE:
        raise ValueError(f"MTU {mtu} leaves {limit} bytes of UDP payload: too small for "
                         f"MoldUDP64")
    return limit


def _check_session(session: str) -> str:
    if len(session) > HEADER["session"].size or not session.isascii():
        raise ValueError(f"MoldUDP64 session {session!r} must be at most "
                         f"{HEADER['session'].size} ASCII characters")
    return session


def heartbeat(session: str, next_seq: int) -> bytes:
    """Heartbeat payload: count 0, sequence = the next sequence number the publisher will use."""
    return pack_packet(_check_session(session), next_seq, count=HEARTBEAT_COUNT)


def end_of_session(session: str, next_seq: int) -> bytes:
    """End-of-session payload: count 0xFFFF, sequence = one past the last message sent."""
    return pack_packet(_check_session(session), next_seq, count=END_OF_SESSION_COUNT)


@dataclass(frozen=True, slots=True)
class MoldPacket:
    """One downstream packet: ``payload`` is the UDP payload (header + message blocks)."""

    seq: int                    #: sequence number of the first message
    count: int                  #: the header's message count (0 heartbeat, 0xFFFF end)
    payload: bytes
    messages: tuple[bytes, ...]

    @property
    def next_seq(self) -> int:
        """Sequence number the publisher uses after this packet."""
        return self.seq + len(self.messages)


class Packetizer:
    """Incremental packetizer; see the module docstring for when packets close.

    ``max_delay_ns`` bounds, by ITCH header timestamps, how far apart the first and last
    message of one packet may be: a real publisher does not hold a message for seconds
    waiting for more. ``None`` packs as densely as the payload limit allows (stress tests).
    """

    def __init__(self, session: str, first_seq: int = 1, max_payload: int = 1472, *,
                 max_messages: int | None = None, max_delay_ns: int | None = None):
        if first_seq < 1:
            raise ValueError(f"first_seq must be >= 1, got {first_seq}")
        if max_payload < HEADER_LENGTH + BLOCK_LENGTH_SIZE:
            raise ValueError(f"max_payload {max_payload} cannot hold a single message block")
        if max_messages is not None and not 1 <= max_messages <= MAX_COUNT:
            raise ValueError(f"max_messages must be in 1..{MAX_COUNT}, got {max_messages}")
        if max_delay_ns is not None and max_delay_ns < 0:
            raise ValueError(f"max_delay_ns must be >= 0, got {max_delay_ns}")
        self.session = _check_session(session)
        self._session = session.encode("ascii").ljust(HEADER["session"].size)
        self.max_payload = max_payload
        self.max_messages = MAX_COUNT if max_messages is None else max_messages
        self.max_delay_ns = max_delay_ns
        self._seq = first_seq           # sequence number of the first pending message
        self._pending: list[bytes] = []
        self._blocks: list[bytes] = []   # length prefix, message, length prefix, ...
        self._size = HEADER_LENGTH      # payload size if the pending messages were sent
        self._first_ts = 0

    @property
    def next_seq(self) -> int:
        """Sequence number the next added message will get."""
        return self._seq + len(self._pending)

    def add(self, message: bytes) -> MoldPacket | None:
        """Queue one message; return the packet this message closed, if any."""
        block = BLOCK_LENGTH_SIZE + len(message)
        if HEADER_LENGTH + block > self.max_payload:
            raise ValueError(f"message {self.next_seq} ({len(message)} bytes) cannot fit a "
                             f"{self.max_payload}-byte payload")
        closed = None
        delay = self.max_delay_ns
        ts = 0 if delay is None else itch_timestamp(message)
        if self._pending and (
                self._size + block > self.max_payload
                or len(self._pending) >= self.max_messages
                or (delay is not None and ts - self._first_ts > delay)):
            closed = self.flush()
        if not self._pending:
            self._first_ts = ts
        self._pending.append(message)
        self._blocks += (_BLOCK_LEN.pack(len(message)), message)
        self._size += block
        return closed

    def flush(self) -> MoldPacket | None:
        """Close the open packet, if it holds any message."""
        if not self._pending:
            return None
        msgs = tuple(self._pending)
        payload = _HEADER_S.pack(self._session, self._seq, len(msgs)) + b"".join(self._blocks)
        packet = MoldPacket(self._seq, len(msgs), payload, msgs)
        self._seq += len(msgs)
        self._pending.clear()
        self._blocks.clear()
        self._size = HEADER_LENGTH
        return packet

    def heartbeat(self) -> MoldPacket:
        """A heartbeat announcing the first sequence number not yet sent."""
        return MoldPacket(self._seq, HEARTBEAT_COUNT, heartbeat(self.session, self._seq), ())

    def end_of_session(self) -> MoldPacket:
        """The end-of-session packet; everything queued must have been flushed first."""
        if self._pending:
            raise ValueError("flush the open packet before ending the session")
        return MoldPacket(self._seq, END_OF_SESSION_COUNT,
                          end_of_session(self.session, self._seq), ())


def packetize(messages: Iterable[bytes], session: str, mtu: int = 1500, first_seq: int = 1,
              max_messages: int | None = None, *, max_delay_ns: int | None = None,
              ip_options_len: int = 0) -> Iterator[MoldPacket]:
    """Cut a message stream into MoldUDP64 packets that fit an IPv4 ``mtu`` unfragmented."""
    p = Packetizer(session, first_seq, udp_payload_limit(mtu, ip_options_len),
                   max_messages=max_messages, max_delay_ns=max_delay_ns)
    add = p.add
    for m in messages:
        packet = add(m)
        if packet is not None:
            yield packet
    last = p.flush()
    if last is not None:
        yield last
