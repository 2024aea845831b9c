"""Stream signatures and payload layouts of the ingress path (one definition each)."""

from __future__ import annotations

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import Out

from hw.ingress.reasons import MAX_MESSAGE, DropReason

DATA_BYTES = 8
TAG_BITS = 5          # frame tags; more than the frames an entry FIFO can hold
REASON_BITS = 5
assert max(DropReason) < (1 << REASON_BITS)
LEN_BITS = 7          # message lengths 12..64
SESSION_BITS = 80


class AxisRxSignature(wiring.Signature):
    """Network RX from a MAC: 64-bit AXI4-Stream without tready (a MAC cannot be stalled)."""

    def __init__(self):
        super().__init__({
            "tdata": Out(DATA_BYTES * 8), "tkeep": Out(DATA_BYTES), "tvalid": Out(1),
            "tlast": Out(1), "tuser": Out(1),
        })


#: One entry of a line's FIFO: what the parser completed in one beat (docs/ingress.md §4).
Entry = data.StructLayout({
    "item": 1,           # a packet header or a message is present
    "header": 1,         # ... and it is the packet header
    "end": 1,            # the frame's end marker rides on this entry
    "bad": 1,            # with end: the frame is bad
    "reason": REASON_BITS,
    "tag": TAG_BITS,     # frame tag, for squashing items of a frame found bad meanwhile
    "seq": 64,           # message sequence number, or the packet's (header)
    "count": 16,         # header: message count
    "length": LEN_BITS,  # message length
    "data": MAX_MESSAGE * 8,  # message bytes (byte 0 in bits 7:0); header: session
})

#: What the ingress path hands the ITCH decoder: a whole message, or an invalidation notice.
Message = data.StructLayout({
    "invalidate": 1,   # seq..last were delivered from a frame found bad: forget them
    "line": 1,
    "seq": 64,         # message sequence number (invalidate: first)
    "last": 64,        # invalidate: last sequence number named
    "length": LEN_BITS,
    "data": MAX_MESSAGE * 8,
})

MessageStream = stream.Signature(Message, always_ready=True)
EntryStream = stream.Signature(Entry)

FilterEntry = data.StructLayout({"ip": 32, "port": 16, "enable": 1})

#: A line's end-of-frame report, two cycles after tlast, for counters and FRAME_DROP events.
FrameReport = data.StructLayout({
    "valid": 1, "dropped": 1, "reason": REASON_BITS, "good_packet": 1,
    "index": 32, "nbytes": 14,
})
