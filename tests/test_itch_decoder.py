"""ItchDecoder against proto.itch (docs/book.md, section 1).

Every test drives one item per cycle (a message, an invalidation notice, an idle cycle
with garbage on the bus, each optionally with the sequencer's ``gap`` strobe) and compares
the decoder's output with a small Python reference built on :func:`proto.itch.decode`.
The output is sampled in the cycle *after* each input while the next input is already
applied, so a decoder that answered in the same cycle, or two cycles late, fails; the
``inc_bad_length`` strobe is sampled in the input's own cycle.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from amaranth.lib import data
from amaranth.sim import Simulator

from hw.ingress.reasons import MAX_MESSAGE
from hw.itch.decoder import DecodedItem, ItchDecoder
from hw.itch.layouts import HEADER_BYTES
from proto import itch
from proto.layout import Kind

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_itch_decoder: WIRESPEED_SEED={SEED}")

UNKNOWN_TYPES = [b for b in range(256) if chr(b) not in itch.TYPE_CODES]
ALL_LENGTHS = range(itch.MIN_LENGTH, MAX_MESSAGE + 1)


@dataclass
class Item:
    """What the test puts on the decoder's inputs for one cycle."""

    valid: bool = False
    invalidate: bool = False
    line: int = 0
    seq: int = 0
    last: int = 0
    length: int = 0
    data: bytes = bytes(MAX_MESSAGE)   # the whole bus: message bytes, then padding
    gap: bool = False


# -- stimulus ----------------------------------------------------------------------------

def garbage(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def random_fields(rng: random.Random, code: str) -> dict:
    """Random values for every field of ``code`` (alpha and char fields as raw bytes,
    high bit included, sometimes a short ASCII name that ``encode`` pads with spaces)."""
    fields: dict = {}
    for f in itch.MESSAGES[code].fields[1:]:
        if f.kind is Kind.UINT:
            # Mix extremes in: all-zero and all-one fields catch swapped or short slices.
            fields[f.name] = rng.choice([0, (1 << 8 * f.size) - 1,
                                         *[rng.getrandbits(8 * f.size)] * 4])
        elif f.kind is Kind.ALPHA and rng.random() < 0.3:
            fields[f.name] = "".join(rng.choice("ABCXYZ.") for _ in
                                     range(rng.randrange(f.size + 1)))
        else:
            fields[f.name] = garbage(rng, f.size)
    return fields


def bus(rng: random.Random, message: bytes) -> bytes:
    """The ingress path's message buffer: the message, then whatever was there before."""
    return message + garbage(rng, MAX_MESSAGE - len(message))


def message_item(rng: random.Random, code: str, *, gap: bool = False) -> Item:
    msg = itch.encode(code, **random_fields(rng, code))
    return Item(valid=True, line=rng.getrandbits(1), seq=rng.getrandbits(64),
                last=rng.getrandbits(64), length=len(msg), data=bus(rng, msg), gap=gap)


def raw_item(rng: random.Random, type_byte: int, length: int, *, gap: bool = False) -> Item:
    """A message of arbitrary bytes with the given type byte and length."""
    msg = bytes([type_byte]) + garbage(rng, length - 1)
    return Item(valid=True, line=rng.getrandbits(1), seq=rng.getrandbits(64),
                last=rng.getrandbits(64), length=length, data=bus(rng, msg), gap=gap)


def any_item(rng: random.Random, *, gap: bool = False) -> Item:
    """A well-formed message, a known type at a wrong length, or an unknown type."""
    r = rng.random()
    if r < 0.5:
        return message_item(rng, rng.choice(itch.TYPE_CODES), gap=gap)
    code = rng.choice(itch.TYPE_CODES)
    wrong = rng.choice([n for n in ALL_LENGTHS if n != itch.LENGTHS[code]])
    if r < 0.8:
        return raw_item(rng, ord(code), wrong, gap=gap)
    return raw_item(rng, rng.choice(UNKNOWN_TYPES), wrong, gap=gap)


def invalidate_item(rng: random.Random, *, gap: bool = False) -> Item:
    """A notice; its length and data are whatever the bus held (here: a message, well
    formed or not, so a decoder that forgot to look at ``invalidate`` would decode it or
    count it as a bad length)."""
    item = any_item(rng, gap=gap)
    item.invalidate = True
    return item


def idle_item(rng: random.Random, *, gap: bool = False) -> Item:
    """valid = 0 with a message (well formed or not) or a notice left on the payload."""
    item = invalidate_item(rng) if rng.random() < 0.3 else any_item(rng)
    item.valid = False
    item.gap = gap
    return item


# -- reference ---------------------------------------------------------------------------

@dataclass
class Expected:
    """The decoder's output for one item (``None`` fields are not checked)."""

    message: bool
    gap: bool
    invalidate: bool
    seq: int | None = None
    header: dict | None = None       # line, type, locate, tracking, timestamp
    body: dict | None = None         # the type's union member, field by field
    body_name: str | None = None


def expected_body(msg: bytes) -> tuple[str, dict]:
    """Body fields as the decoder presents them: ``decode``'s integers, and alpha/char
    fields as the big-endian integer of their raw bytes."""
    layout = itch.MESSAGES[chr(msg[0])]
    decoded = itch.decode(msg)
    body = {}
    for f in layout.fields:
        if f.offset < HEADER_BYTES:
            continue
        body[f.name] = decoded[f.name] if f.kind is Kind.UINT else \
            int.from_bytes(msg[f.offset:f.end], "big")
    return layout.name, body


def reference(item: Item) -> tuple[Expected | None, bool]:
    """(output one cycle later or None, inc_bad_length now) for one input item."""
    notice = item.valid and item.invalidate
    delivered = item.valid and not item.invalidate
    code = chr(item.data[0])
    known = code in itch.MESSAGES
    good = delivered and known and item.length == itch.LENGTHS[code]
    bad_length = delivered and known and not good
    if not (good or notice or item.gap):
        return None, bad_length
    exp = Expected(message=good, gap=item.gap, invalidate=notice)
    if notice:
        exp.seq = item.seq
    if good:
        msg = item.data[:item.length]
        decoded = itch.decode(msg)
        exp.seq = item.seq
        exp.header = {"line": item.line, "type": msg[0], "locate": decoded["stock_locate"],
                      "tracking": decoded["tracking_number"],
                      "timestamp": decoded["timestamp"]}
        exp.body_name, exp.body = expected_body(msg)
    return exp, bad_length


# -- reading the output ----------------------------------------------------------------

def _flatten(layout: data.Layout, base: int = 0, prefix: str = "") -> dict[str, tuple[int, int]]:
    """Every leaf field of ``layout`` as ``"a.b.c" -> (bit offset, width)``."""
    out: dict[str, tuple[int, int]] = {}
    for name, field in layout:
        shape = field.shape
        if isinstance(shape, data.Layout):
            out.update(_flatten(shape, base + field.offset, f"{prefix}{name}."))
        else:
            out[prefix + name] = (base + field.offset, field.width)
    return out


#: Field positions in the output payload, computed once: reading them through
#: ``data.Const`` recomputes layout sizes on every access and dominates the test's time.
OUT_FIELDS = _flatten(DecodedItem)


def out_field(bits: int, path: str) -> int:
    offset, width = OUT_FIELDS[path]
    return (bits >> offset) & ((1 << width) - 1)


# -- simulation --------------------------------------------------------------------------

def simulate(items: list[Item]) -> tuple[list[int], list[tuple[int, int]]]:
    """Drive one item per cycle, then two idle cycles.

    Returns ``inc_bad_length`` in each cycle and (``decoded.valid``, payload bits) in each
    cycle; cycle ``i`` has item ``i`` (or idle) on the inputs.
    """
    dut = ItchDecoder()
    bad: list[int] = []
    outs: list[tuple[int, int]] = []
    idle = Item()

    async def bench(ctx):
        p = dut.messages.payload
        for item in [*items, idle, idle]:
            ctx.set(dut.messages.valid, item.valid)
            ctx.set(p.invalidate, item.invalidate)
            ctx.set(p.line, item.line)
            ctx.set(p.seq, item.seq)
            ctx.set(p.last, item.last)
            ctx.set(p.length, item.length)
            ctx.set(p.data, int.from_bytes(item.data, "little"))
            ctx.set(dut.gap, item.gap)
            bad.append(ctx.get(dut.inc_bad_length))
            outs.append((ctx.get(dut.decoded.valid), ctx.get(dut.decoded.payload.as_value())))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return bad, outs


def check(items: list[Item]) -> dict[str, int]:
    """Simulate ``items`` and compare every cycle with :func:`reference`; returns tallies."""
    bad, outs = simulate(items)
    assert outs[0][0] == 0, f"output in the first cycle, before any input {WHERE}"
    tally = {"message": 0, "bad_length": 0, "invalidate": 0, "gap": 0, "none": 0}
    for i, item in enumerate(items):
        exp, exp_bad = reference(item)
        where = f"item {i} {item} {WHERE}"
        assert bad[i] == exp_bad, f"inc_bad_length {bad[i]}, expected {exp_bad}: {where}"
        valid, bits = outs[i + 1]                         # one cycle later
        tally["bad_length"] += exp_bad
        if exp is None:
            tally["none"] += 1
            assert not valid, f"unexpected output: {where}"
            continue
        assert valid, f"no output: {where}"
        assert tuple(out_field(bits, k) for k in ("message", "gap", "invalidate")) == \
            (exp.message, exp.gap, exp.invalidate), f"flags: {where}"
        tally["message"] += exp.message
        tally["invalidate"] += exp.invalidate
        tally["gap"] += exp.gap
        if exp.seq is not None:
            assert out_field(bits, "msg.seq") == exp.seq, f"seq: {where}"
        if exp.header is not None:
            for name, value in exp.header.items():
                assert out_field(bits, f"msg.{name}") == value, f"{name}: {where}"
            for name, value in exp.body.items():
                got = out_field(bits, f"msg.body.{exp.body_name}.{name}")
                assert got == value, \
                    f"{exp.body_name}.{name} = {got:#x}, expected {value:#x}: {where}"
    # Nothing after the last item's output, and no stray strobe on the idle tail.
    assert outs[len(items) + 1][0] == 0 and bad[len(items):] == [0, 0], WHERE
    return tally


# -- tests -------------------------------------------------------------------------------

def test_every_type_decodes():
    """Every type, random field values, back to back; every header and body field."""
    rng = random.Random(SEED)
    items = [message_item(rng, code) for code in itch.TYPE_CODES for _ in range(30)]
    rng.shuffle(items)
    tally = check(items)
    assert tally["message"] == len(items) and tally["bad_length"] == 0, WHERE


def test_decoded_fields_match_proto_decode():
    """The reference's expectations are decode()'s (guards the test's own plumbing)."""
    rng = random.Random(SEED + 1)
    for code in itch.TYPE_CODES:
        fields = random_fields(rng, code)
        msg = itch.encode(code, **fields)
        name, body = expected_body(msg)
        assert name == itch.MESSAGES[code].name
        for f in itch.MESSAGES[code].fields:
            if f.offset < HEADER_BYTES:
                continue
            v = fields[f.name]
            want = v if f.kind is Kind.UINT else int.from_bytes(
                (v.encode() if isinstance(v, str) else v).ljust(f.size, b" "), "big")
            assert body[f.name] == want, f"{code} {f.name} {WHERE}"


def test_wrong_lengths():
    """Every type at every other length 12..64: counted once in its own cycle, dropped.

    Some cycles are idle in between, so a strobe that lingered would be seen; some carry
    a gap, which must come out alone (``message`` = 0).
    """
    rng = random.Random(SEED + 2)
    items: list[Item] = []
    for code in itch.TYPE_CODES:
        for length in ALL_LENGTHS:
            if length != itch.LENGTHS[code]:
                items.append(raw_item(rng, ord(code), length, gap=rng.random() < 0.1))
                if rng.random() < 0.2:
                    items.append(idle_item(rng))
    tally = check(items)
    n_wrong = len(itch.TYPE_CODES) * (len(ALL_LENGTHS) - 1)
    assert tally["bad_length"] == n_wrong and tally["message"] == 0, WHERE


def test_unknown_types():
    """Type bytes outside TYPE_CODES: no output and no bad-length count, at the lengths
    of known types (the ones a careless length check would accept) and at random ones."""
    rng = random.Random(SEED + 3)
    known_lengths = sorted(set(itch.LENGTHS.values()))
    items = [raw_item(rng, t, rng.choice([*known_lengths, rng.choice(ALL_LENGTHS)]))
             for t in UNKNOWN_TYPES for _ in range(2)]
    rng.shuffle(items)
    tally = check(items)
    assert tally["none"] == len(items) and tally["bad_length"] == 0, WHERE


def test_notices_gaps_and_idle():
    """Invalidation notices, gap strobes alone and with each kind of item, idle cycles."""
    rng = random.Random(SEED + 4)
    items = [
        idle_item(rng),
        invalidate_item(rng),
        idle_item(rng, gap=True),                                  # gap alone
        message_item(rng, "A", gap=True),                          # gap with a message
        message_item(rng, "D"),
        invalidate_item(rng, gap=True),                            # gap with a notice
        raw_item(rng, ord("E"), itch.LENGTHS["E"] + 1, gap=True),  # gap with a bad length
        raw_item(rng, UNKNOWN_TYPES[0], 20, gap=True),             # gap with an unknown type
        invalidate_item(rng),
        invalidate_item(rng),                                      # notices back to back
        idle_item(rng),
        idle_item(rng),
    ]
    for _ in range(100):                                           # and a random run
        items.append(rng.choice([invalidate_item, idle_item])(rng, gap=rng.random() < 0.5))
        if rng.random() < 0.4:
            items.append(message_item(rng, rng.choice(itch.TYPE_CODES),
                                      gap=rng.random() < 0.5))
    tally = check(items)
    assert tally["invalidate"] >= 4 and tally["gap"] >= 5, WHERE


def test_random_mixed_stream():
    """A few thousand items of every kind, one per cycle, against the reference."""
    rng = random.Random(SEED + 5)
    kinds = [
        (50, lambda g: message_item(rng, rng.choice(itch.TYPE_CODES), gap=g)),
        (10, lambda g: raw_item(rng, ord(rng.choice(itch.TYPE_CODES)),
                                rng.choice(ALL_LENGTHS), gap=g)),
        (8, lambda g: raw_item(rng, rng.choice(UNKNOWN_TYPES), rng.choice(ALL_LENGTHS),
                               gap=g)),
        (5, lambda g: invalidate_item(rng, gap=g)),
        (20, lambda g: idle_item(rng, gap=g)),
    ]
    makers = [make for weight, make in kinds for _ in range(weight)]
    items = [rng.choice(makers)(rng.random() < 0.05) for _ in range(3000)]
    tally = check(items)
    assert all(tally[k] > 10 for k in tally), f"{tally} {WHERE}"


def test_out_field_agrees_with_data_const():
    """The fast field reader used above agrees with Amaranth's own view of the layout."""
    rng = random.Random(SEED + 6)
    bits = rng.getrandbits(data.Layout.cast(DecodedItem).size)
    const = data.Const(DecodedItem, bits)
    for path in rng.sample(sorted(OUT_FIELDS), 40) + ["msg.seq", "msg.timestamp"]:
        value = const
        for part in path.split("."):
            value = getattr(value, part)
        assert out_field(bits, path) == value, f"{path} {WHERE}"
