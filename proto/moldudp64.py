"""MoldUDP64 1.00 downstream packets and BinaryFILE (day file) framing."""

from __future__ import annotations

import struct

from .layout import Kind, MessageLayout

HEADER = MessageLayout("moldudp64_header", (
    ("session", 10, Kind.ALPHA),
    ("sequence", 8),
    ("count", 2),
))
HEADER_LENGTH = HEADER.length  # 20

#: Message count of a heartbeat (sequence = next expected) and of an end-of-session packet.
HEARTBEAT_COUNT = 0
END_OF_SESSION_COUNT = 0xFFFF

#: Each message block inside a packet (and each record of a day file) is length(2) + message.
BLOCK_LENGTH_SIZE = 2

REQUEST = MessageLayout("moldudp64_request", (
    ("session", 10, Kind.ALPHA),
    ("sequence", 8),
    ("count", 2),
))


def pack_packet(session: str | bytes, sequence: int, messages: list[bytes] | None = None,
                count: int | None = None) -> bytes:
    """Build a downstream packet. ``count`` overrides the message count (for heartbeats,
    end-of-session, or deliberately malformed packets)."""
    messages = messages or []
    n = len(messages) if count is None else count
    body = b"".join(struct.pack(">H", len(m)) + m for m in messages)
    return HEADER.pack(session=session, sequence=sequence, count=n) + body


def unpack_packet(payload: bytes) -> tuple[str, int, int, list[bytes]]:
    """Parse a well-formed downstream packet: (session, sequence, count, messages).

    Raises ``ValueError`` on any framing fault (the reference model has the fault-tolerant
    parser; this one is for tools and tests)."""
    if len(payload) < HEADER_LENGTH:
        raise ValueError("shorter than the MoldUDP64 header")
    h = HEADER.unpack(payload[:HEADER_LENGTH])
    pos, msgs = HEADER_LENGTH, []
    n = h["count"]
    if n not in (HEARTBEAT_COUNT, END_OF_SESSION_COUNT):
        for _ in range(n):
            if pos + 2 > len(payload):
                raise ValueError("message count exceeds the payload")
            (ln,) = struct.unpack_from(">H", payload, pos)
            if pos + 2 + ln > len(payload):
                raise ValueError("message length runs past the packet")
            msgs.append(payload[pos + 2:pos + 2 + ln])
            pos += 2 + ln
    if pos != len(payload):
        raise ValueError("bytes left after the last message")
    return h["session"], h["sequence"], n, msgs
