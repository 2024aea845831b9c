"""The host's Card API: identity checks, named registers, counters, feeds."""

from __future__ import annotations

import pytest

from host.card import Card, CardError
from host.regs import RegisterError
from hw.regmap import MAGIC, REGMAP
from sim.feed.frames import FeedAddress


class FakeBus:
    """A register file with chosen identity values, to test what the host refuses."""

    def __init__(self, **overrides):
        self.mem = {REGMAP["id_magic"].offset: MAGIC,
                    REGMAP["id_regmap_hash"].offset: REGMAP.hash,
                    REGMAP["id_regmap_version"].offset: 1}
        for name, value in overrides.items():
            self.mem[REGMAP[name].offset] = value

    def read32(self, addr):
        return self.mem.get(addr, 0)

    def write32(self, addr, value):
        self.mem[addr] = value

    def records(self):
        raise NotImplementedError


def test_refuses_unknown_register_map():
    with pytest.raises(CardError, match="unknown register map"):
        Card(FakeBus(id_regmap_hash=REGMAP.hash ^ 1))


def test_refuses_wrong_magic():
    with pytest.raises(CardError, match="not a wirespeed card"):
        Card(FakeBus(id_magic=0xFFFFFFFF))


def test_counter_reads_lo_then_hi():
    bus = FakeBus()
    lo, hi = REGMAP.counters["messages"]
    order = []
    bus.read32 = lambda addr: (order.append(addr), {lo.offset: 5, hi.offset: 2}.get(addr, 0))[1]
    card = Card.__new__(Card)
    from host.regs import Registers
    card.regs = Registers(bus)
    assert card.regs.counter("messages") == (2 << 32) | 5
    assert order == [lo.offset, hi.offset]


def test_simulated_card_identity_and_state(card):
    ident = card.identity
    assert ident.magic == MAGIC and ident.regmap_hash == REGMAP.hash
    assert ident.record_bytes == 64 and ident.max_message == 64
    assert card.sequencer()["locked"] is False
    feeds = [FeedAddress("233.54.12.1", 26477), FeedAddress("233.54.12.9", 100)]
    card.set_feeds(feeds)
    assert card.feeds() == feeds
    with pytest.raises(CardError):
        card.set_feeds([FeedAddress("233.54.12.1", p) for p in range(1, 10)])
    t0 = card.time()
    assert card.time() > t0
    assert all(v == 0 for v in card.counters().values())
    with pytest.raises(RegisterError):
        card.regs.write("id_magic", 1)
