"""Our OUCH token format (``hw/oe/tokens.py``): the Python codec, and the gateware decoder
against it on random well-formed and damaged tokens."""

from __future__ import annotations

import os
import random

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hw.oe.tokens import TOKEN_LENGTH, format_token, parse_token, token_fields
from hw.risk.params import Source
from proto import ouch
from tests.oe_streams import bad_tokens

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_oe_tokens: seed {SEED}")


class _Decoder(wiring.Component):
    def __init__(self, token_bits: int):
        self.token_bits = token_bits
        super().__init__({"raw": In(8 * TOKEN_LENGTH), "ok": Out(1), "source": Out(1),
                          "number": Out(48)})

    def elaborate(self, platform):
        m = Module()
        ok, source, number = token_fields(
            m, [self.raw[8 * i:8 * i + 8] for i in range(TOKEN_LENGTH)], self.token_bits)
        m.d.comb += [self.ok.eq(ok), self.source.eq(source), self.number.eq(number)]
        return m


def test_format_and_parse():
    assert format_token(Source.HOST, 42) == "WH00000000002A"
    assert format_token(Source.TRIGGER, (1 << 48) - 1) == "WTFFFFFFFFFFFF"
    assert len(format_token(Source.HOST, 0)) == ouch.ENTER_ORDER["order_token"].size
    rng = random.Random(SEED)
    for _ in range(500):
        src, n = rng.choice(list(Source)), rng.randrange(1 << 48)
        assert parse_token(format_token(src, n)) == (src, n)
        assert parse_token(format_token(src, n).encode()) == (src, n)
    for bad in bad_tokens(rng):
        assert parse_token(bad) is None, bad
    assert parse_token(format_token(Source.HOST, 1 << 40), 40) is None
    assert parse_token(format_token(Source.HOST, (1 << 40) - 1), 40) == (Source.HOST,
                                                                        (1 << 40) - 1)


def _damaged(rng: random.Random) -> bytes:
    tok = bytearray(format_token(rng.choice(list(Source)), rng.randrange(1 << 48)).encode())
    for _ in range(rng.choice((0, 0, 1, 2))):
        i = rng.randrange(TOKEN_LENGTH)
        tok[i] = rng.choice((rng.randrange(256), ord(rng.choice("0123456789ABCDEFGHWTabcf@:/ ")),
                             tok[i] ^ 0x20))
    return bytes(tok)


def test_gateware_decoder_matches_parse_token():
    rng = random.Random(SEED + 1)
    seen: list[bool] = []
    for token_bits in (48, 40):
        dut = _Decoder(token_bits)
        cases = [_damaged(rng) for _ in range(1500)] + bad_tokens(rng)

        async def bench(ctx, dut=dut, cases=cases, token_bits=token_bits):
            for raw in cases:
                ctx.set(dut.raw, int.from_bytes(raw, "little"))
                want = parse_token(raw, token_bits)
                got = (ctx.get(dut.source), ctx.get(dut.number)) if ctx.get(dut.ok) else None
                assert got == want, f"{raw!r}: gateware {got}, parse_token {want} {WHERE}"
                seen.append(want is not None)

        sim = Simulator(dut)
        sim.add_testbench(bench)
        sim.run()
    assert len(seen) > 3000 and 0.2 < sum(seen) / len(seen) < 0.8, WHERE
