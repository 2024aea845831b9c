"""Typed ITCH 5.0 payloads, generated from :mod:`proto.itch` (the one definition of the wire).

Each message type gets a :class:`~amaranth.lib.data.StructLayout` of its body (the fields
after the 11-byte header) in wire order; every field is the big-endian integer the wire
carries, alpha and character fields included (``stock`` "AAPL    " is 0x4141504c20202020),
so a host register holding a name compares with the field directly. :func:`field_bits`
extracts a field from the ingress path's message bytes (byte 0 in bits 7:0).
"""

from amaranth.hdl import Cat, Value
from amaranth.lib import data

from proto import itch
from proto.layout import MessageLayout

HEADER_BYTES = 11


def body_layout(msg: MessageLayout) -> data.StructLayout:
    """The fields of ``msg`` after the common header, each ``8 × size`` bits wide."""
    return data.StructLayout({f.name: f.size * 8 for f in msg.fields
                              if f.offset >= HEADER_BYTES})


#: One struct per message type, keyed by its name (``add_order``, ``order_executed`` ...).
BODIES: dict[str, data.StructLayout] = {m.name: body_layout(m) for m in itch.MESSAGES.values()}

#: What the decoder hands on: the header and the body as a union of every type's struct.
Decoded = data.StructLayout({
    "seq": 64,
    "line": 1,
    "type": 8,            # the ASCII type code
    "locate": 16,
    "tracking": 16,
    "timestamp": 48,
    "body": data.UnionLayout(BODIES),
})


def field_bits(message_data: Value, offset: int, size: int) -> Value:
    """The big-endian field at byte ``offset`` of ``size`` bytes as an integer value."""
    return Cat(*(message_data[8 * (offset + i):8 * (offset + i + 1)]
                 for i in reversed(range(size))))
