"""Risk limits and triggers from YAML, validated with errors that name the key and the line.

The files are read as YAML *nodes* (``yaml.compose``), not plain data, so every error can say
where it is: ``limits.yaml:7: symbols.AAPL.max_shares: must be a whole number >= 0, not
-5``. Unknown keys are errors too (a misspelt limit silently left at its default is the
worst kind of risk bug). Prices are written in dollars (``150.25``) and converted exactly to
ITCH units (1/10,000 USD); more than four decimals is an error.

limits.yaml::

    global:                 # every key optional; shown with its default
      max_open: 100         # open orders at most
      rate_period: 0        # cycles per throttle token (0: no throttle)
      rate_burst: 1         # throttle bucket capacity
      max_age: 0            # BBO age limit, cycles (0: none)
    defaults:               # limits of every listed symbol, unless it says otherwise
      max_shares: 1000
      max_notional: 250000  # dollars (shares x price)
      collar_bps: 50        # or collar_ticks: 10 (one of them, or none)
      max_long: 5000        # position + open buys, shares
      max_short: 5000       # open sells - position, shares
    symbols:
      AAPL: {max_shares: 500, ref_px: 150.25, position: 200}
      MSFT: {enable: false}

triggers.yaml::

    triggers:
      - {symbol: AAPL, side: buy, price: 150.30, shares: 100}             # ask <= 150.30
      - {symbol: MSFT, side: sell, price: 420.00, shares: 50, tif: 99998}  # bid >= 420.00
      - {symbol: ZVZZT, side: buy, price: 10.01, shares: 10, rearm: true}  # host re-arms
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from hw.risk.params import Collar, Side

PRICE_SCALE = 10_000
U32 = (1 << 32) - 1
U16 = (1 << 16) - 1


class ConfigError(ValueError):
    """A bad configuration file; the message names the file, line and key."""


@dataclass(frozen=True)
class SymbolLimits:
    enable: bool = True
    max_shares: int = 0
    max_notional: int = 0          # ITCH price units x shares
    collar_mode: Collar = Collar.OFF
    collar: int = 0
    ref_px: int = 0                # ITCH units
    max_long: int = 0
    max_short: int = 0


@dataclass(frozen=True)
class GlobalLimits:
    max_open: int = 100
    rate_period: int = 0
    rate_burst: int = 1
    max_age: int = 0


@dataclass
class LimitsConfig:
    global_limits: GlobalLimits = field(default_factory=GlobalLimits)
    symbols: dict[int, SymbolLimits] = field(default_factory=dict)     # by slot
    positions: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerConfig:
    side: Side
    price: int        # ITCH units
    shares: int
    tif: int = 0
    #: The host re-arms it when the verdict of the order it fired reaches the host (a replay
    #: stops there: host/orders.py); the card's trigger itself
    #: is always one-shot.
    rearm: bool = False


class _Reader:
    """Typed access to YAML nodes, with the file and line in every error."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.root = yaml.compose(path.read_text())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: not valid YAML: "
                              f"{getattr(e, 'problem', e)}") from None
        except OSError as e:
            raise ConfigError(f"{path}: {e.strerror}") from None

    def fail(self, node: yaml.Node | None, key: str, msg: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConfigError(f"{self.path}{line}: {key}: {msg}")

    def mapping(self, node: yaml.Node | None, key: str,
                allowed: set[str] | None = None) -> dict[str, yaml.Node]:
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, "must be a mapping (key: value)")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else None
            if not isinstance(name, str):
                raise self.fail(k, key, "keys must be names")
            if name in out:
                raise self.fail(k, f"{key}.{name}", "given twice")
            if allowed is not None and name not in allowed:
                raise self.fail(k, f"{key}.{name}",
                                f"unknown key; expected one of {', '.join(sorted(allowed))}")
            out[name] = v
        return out

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, "must be a single value")
        return yaml.safe_load(yaml.serialize(node))

    def uint(self, node: yaml.Node, key: str, top: int = U32) -> int:
        v = self.scalar(node, key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
            raise self.fail(node, key, f"must be a whole number from 0 to {top:,}, not {v!r}")
        return v

    def sint(self, node: yaml.Node, key: str) -> int:
        v = self.scalar(node, key)
        if isinstance(v, bool) or not isinstance(v, int) or not -(1 << 47) <= v < 1 << 47:
            raise self.fail(node, key, f"must be a whole number of shares, not {v!r}")
        return v

    def boolean(self, node: yaml.Node, key: str) -> bool:
        v = self.scalar(node, key)
        if not isinstance(v, bool):
            raise self.fail(node, key, f"must be true or false, not {v!r}")
        return v

    def dollars(self, node: yaml.Node, key: str, top: int = U32) -> int:
        """A price or amount in dollars as ITCH units, exactly."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, "must be a number of dollars")
        try:
            d = Decimal(node.value)
        except InvalidOperation:
            raise self.fail(node, key, f"must be a number of dollars, not {node.value!r}") \
                from None
        units = d * PRICE_SCALE
        if units != units.to_integral_value() or not 0 <= units <= top:
            raise self.fail(node, key, f"{node.value} is not a price in 1/10,000 dollars "
                            f"from 0 to {top / PRICE_SCALE:,.4f}")
        return int(units)


_LIMIT_KEYS = {"enable", "max_shares", "max_notional", "collar_bps", "collar_ticks", "ref_px",
               "max_long", "max_short"}


def _limits(rd: _Reader, nodes: dict[str, yaml.Node], key: str,
            base: SymbolLimits) -> SymbolLimits:
    vals = {f.name: getattr(base, f.name) for f in fields(SymbolLimits)}
    for name, node in nodes.items():
        k = f"{key}.{name}"
        if name == "enable":
            vals["enable"] = rd.boolean(node, k)
        elif name in ("max_shares", "max_long", "max_short"):
            vals[name] = rd.uint(node, k)
        elif name == "max_notional":
            vals[name] = rd.dollars(node, k, top=(1 << 64) - 1)
        elif name == "ref_px":
            vals[name] = rd.dollars(node, k)
        elif name in ("collar_bps", "collar_ticks"):
            other = "collar_ticks" if name == "collar_bps" else "collar_bps"
            if other in nodes:
                raise rd.fail(node, k, "give collar_bps or collar_ticks, not both")
            vals["collar"] = rd.uint(node, k, top=U16)
            vals["collar_mode"] = Collar.BPS if name == "collar_bps" else Collar.TICKS
    return SymbolLimits(**vals)


def load_limits(path: str | Path, symbols: list[str]) -> LimitsConfig:
    """Limits for the subscribed ``symbols`` (slot = index). Every subscribed symbol gets
    ``defaults``; a symbol named under ``symbols`` must be subscribed."""
    rd = _Reader(Path(path))
    top = rd.mapping(rd.root, "limits", {"global", "defaults", "symbols"})
    g = rd.mapping(top.get("global"), "global", {f.name for f in fields(GlobalLimits)})
    glob = GlobalLimits(**{k: rd.uint(v, f"global.{k}", top=U16 if k in ("max_open",
                                                                          "rate_burst")
                                      else U32) for k, v in g.items()})
    defaults = _limits(rd, rd.mapping(top.get("defaults"), "defaults", _LIMIT_KEYS),
                       "defaults", SymbolLimits())
    cfg = LimitsConfig(global_limits=glob,
                       symbols={i: defaults for i in range(len(symbols))})
    slots = {s: i for i, s in enumerate(symbols)}
    for name, node in rd.mapping(top.get("symbols"), "symbols").items():
        key = f"symbols.{name}"
        if name not in slots:
            raise rd.fail(node, key, f"not among the subscribed symbols "
                          f"({', '.join(symbols) or 'none'})")
        entries = rd.mapping(node, key, _LIMIT_KEYS | {"position"})
        if "position" in entries:
            cfg.positions[slots[name]] = rd.sint(entries.pop("position"), f"{key}.position")
        cfg.symbols[slots[name]] = _limits(rd, entries, key, defaults)
    return cfg


def load_triggers(path: str | Path, symbols: list[str]) -> dict[int, TriggerConfig]:
    """Triggers by slot (at most one per symbol: a slot has one trigger)."""
    rd = _Reader(Path(path))
    top = rd.mapping(rd.root, "triggers", {"triggers"})
    seq = top.get("triggers")
    if seq is None:
        return {}
    if not isinstance(seq, yaml.SequenceNode):
        raise rd.fail(seq, "triggers", "must be a list")
    slots = {s: i for i, s in enumerate(symbols)}
    out: dict[int, TriggerConfig] = {}
    for i, node in enumerate(seq.value):
        key = f"triggers[{i}]"
        t = rd.mapping(node, key, {"symbol", "side", "price", "shares", "tif", "rearm"})
        for need in ("symbol", "side", "price", "shares"):
            if need not in t:
                raise rd.fail(node, f"{key}.{need}", "missing")
        sym = rd.scalar(t["symbol"], f"{key}.symbol")
        if sym not in slots:
            raise rd.fail(t["symbol"], f"{key}.symbol", f"{sym!r} is not subscribed "
                          f"({', '.join(symbols) or 'none'})")
        if slots[sym] in out:
            raise rd.fail(t["symbol"], f"{key}.symbol", f"{sym} has a trigger already "
                          "(one per symbol)")
        side = rd.scalar(t["side"], f"{key}.side")
        if side not in ("buy", "sell"):
            raise rd.fail(t["side"], f"{key}.side", f"must be buy or sell, not {side!r}")
        shares = rd.uint(t["shares"], f"{key}.shares")
        if shares == 0:
            raise rd.fail(t["shares"], f"{key}.shares", "must be at least 1")
        out[slots[sym]] = TriggerConfig(
            side=Side.BUY if side == "buy" else Side.SELL,
            price=rd.dollars(t["price"], f"{key}.price"), shares=shares,
            tif=rd.uint(t["tif"], f"{key}.tif") if "tif" in t else 0,
            rearm=rd.boolean(t["rearm"], f"{key}.rearm") if "rearm" in t else False)
    return out
