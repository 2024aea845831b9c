"""The ITCH 5.0 decoder: checks each delivered message's length against its type and
hands the book a typed record one cycle later (docs/book.md, section 1).

Decoding is wiring: every type's fields sit at fixed byte offsets, so each union member of
:data:`~hw.itch.layouts.Decoded` is the message bytes re-ordered, and the only logic is the
type match and the length check. The output is registered so the book's first lookup starts
from flip-flops.

Besides decoded messages, the output carries the ingress path's two notices, in order with
the messages, because they change what the book may trust:

* ``gap``: the sequencer skipped sequence numbers just before this item (its GAP event was
  raised with the message that follows the jump, or alone on a heartbeat);
* ``invalidate``: messages delivered earlier came from a frame found bad.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.ingress.layouts import MessageStream
from hw.itch.layouts import HEADER_BYTES, Decoded, field_bits
from proto import itch

#: The decoder's output item.
DecodedItem = data.StructLayout({
    "message": 1,      # a well-formed message of a known type is in ``msg``
    "gap": 1,          # sequence numbers were skipped before this item
    "invalidate": 1,   # an invalidation notice (``msg.seq`` = first invalidated)
    "msg": Decoded,
})


class ItchDecoder(wiring.Component):
    """``messages`` from the ingress path in, ``decoded`` out one cycle later; never stalls.

    ``gap`` is a strobe from the sequencer (a GAP event this cycle). ``inc_bad_length``
    counts known types whose length is wrong; unknown types are counted at the ingress
    output (``itch_unknown``) and dropped here.
    """

    messages: In(MessageStream)
    gap: In(1)
    decoded: Out(stream.Signature(DecodedItem, always_ready=True))
    inc_bad_length: Out(1)

    def elaborate(self, platform):
        m = Module()
        msg = self.messages.payload
        raw = msg.data
        mtype = raw[:8]

        known = Signal()
        length_ok = Signal()
        for code in itch.TYPE_CODES:
            with m.If(mtype == ord(code)):
                m.d.comb += [known.eq(1), length_ok.eq(msg.length == itch.LENGTHS[code])]
        delivered = self.messages.valid & ~msg.invalidate
        good = Signal()
        m.d.comb += [
            good.eq(delivered & known & length_ok),
            self.inc_bad_length.eq(delivered & known & ~length_ok),
        ]

        out = self.decoded.payload
        m.d.sync += [
            self.decoded.valid.eq(good | self.gap | (self.messages.valid & msg.invalidate)),
            out.message.eq(good),
            out.gap.eq(self.gap),
            out.invalidate.eq(self.messages.valid & msg.invalidate),
            out.msg.seq.eq(msg.seq),
            out.msg.line.eq(msg.line),
            out.msg.type.eq(mtype),
            out.msg.locate.eq(field_bits(raw, 1, 2)),
            out.msg.tracking.eq(field_bits(raw, 3, 2)),
            out.msg.timestamp.eq(field_bits(raw, 5, 6)),
        ]
        # Union members overlap, and field boundaries differ between types, so the type
        # code picks which member's byte order fills the body.
        with m.Switch(mtype):
            for code in itch.TYPE_CODES:
                layout = itch.MESSAGES[code]
                view = getattr(out.msg.body, layout.name)
                with m.Case(ord(code)):
                    m.d.sync += [getattr(view, f.name).eq(field_bits(raw, f.offset, f.size))
                                 for f in layout.fields if f.offset >= HEADER_BYTES]
        return m
