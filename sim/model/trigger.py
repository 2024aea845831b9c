"""Reference model of the trigger engine (hw/strategy/trigger.py), cycle by cycle.

The rule: an armed trigger of a slot fires on a BBO update of that slot whose book is not
stale and whose side the trigger watches is there and at or through the threshold — the ask
at or below P for a buy, the bid at or above P for a sell — and disarms. It does not fire on
the BBO present when it was armed; only a later update can fire it. The order is a limit
order at P for Q shares, source TRIGGER, token numbers 1, 2, 3, ... in firing order.

Timing (as the gateware): an update in cycle t is judged with the trigger row as armed or
re-armed up to and including cycle t and the armed bit as it stands in cycle t+1 (a disarm in
t, or a fire of the same slot in t, prevents it); the order shows in cycle t+2.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.risk.params import OrderKind, Side, Source


@dataclass
class Trigger:
    side: int
    price: int
    shares: int
    tif: int


class TriggerModel:
    def __init__(self, slots: int):
        self.rows = [Trigger(0, 0, 0, 0) for _ in range(slots)]
        self.armed = [False] * slots
        self.token = 0
        self._pending = None     # (update, row) read in the previous cycle
        self._out = None

    def step(self, *, bbo: dict | None = None, arm: tuple[int, Trigger] | None = None,
             disarm: int | None = None) -> dict | None:
        """One cycle: a BBO update (slot, bid_px, ask_px, stale), a host arm or disarm.
        Returns the order on the output this cycle."""
        out = self._out
        self._out = None
        # Stage 1: judge last cycle's update against the armed bits as they are now.
        if self._pending is not None:
            b, row = self._pending
            s = b["slot"]
            if row.side == Side.BUY:
                hit = b["ask_px"] != 0 and b["ask_px"] <= row.price
            else:
                hit = b["bid_px"] != 0 and b["bid_px"] >= row.price
            if self.armed[s] and not b["stale"] and hit:
                self.token += 1
                self._out = dict(kind=OrderKind.NEW, source=Source.TRIGGER, token=self.token,
                                 slot=s, side=row.side, shares=row.shares, price=row.price,
                                 tif=row.tif)
                self.armed[s] = False
        self._pending = None
        # Host command (its row write is seen by an update read in the same cycle).
        if arm is not None:
            self.rows[arm[0]] = arm[1]
        if bbo is not None:
            self._pending = (dict(bbo), self.rows[bbo["slot"]])
        if arm is not None:
            self.armed[arm[0]] = True
        elif disarm is not None:
            self.armed[disarm] = False
        return out
