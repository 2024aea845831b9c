"""Limits and triggers from YAML (host/config.py): values, and errors naming file, line, key."""

from __future__ import annotations

import pytest

from host.config import ConfigError, SymbolLimits, load_limits, load_triggers
from hw.risk.params import Collar, Side

SYMS = ["AAPL", "MSFT", "ZVZZT"]


def _write(tmp_path, text: str):
    p = tmp_path / "f.yaml"
    p.write_text(text)
    return p


def test_limits_defaults_overrides_and_units(tmp_path) -> None:
    cfg = load_limits(_write(tmp_path, """
global: {max_open: 7, rate_period: 1000, rate_burst: 3}
defaults:
  max_shares: 1000
  max_notional: 250000.5
  collar_bps: 50
  max_long: 5000
  max_short: 4000
symbols:
  MSFT: {max_shares: 10, collar_ticks: 3, ref_px: 420.0001, position: -200}
  ZVZZT: {enable: false}
"""), SYMS)
    assert cfg.global_limits.max_open == 7 and cfg.global_limits.rate_period == 1000
    a = cfg.symbols[0]
    assert a == SymbolLimits(True, 1000, 2_500_005_000, Collar.BPS, 50, 0, 5000, 4000)
    m = cfg.symbols[1]
    assert (m.max_shares, m.collar_mode, m.collar, m.ref_px) == (10, Collar.TICKS, 3, 4_200_001)
    assert m.max_long == 5000                 # inherited
    assert not cfg.symbols[2].enable
    assert cfg.positions == {1: -200}


@pytest.mark.parametrize(("text", "where", "what"), [
    ("defaults:\n  max_shraes: 5\n", ":2:", "defaults.max_shraes: unknown key"),
    ("defaults:\n  max_shares: -5\n", ":2:", "defaults.max_shares: must be a whole number"),
    ("symbols:\n  GOOG: {max_shares: 5}\n", ":2:", "symbols.GOOG: not among the subscribed"),
    ("defaults:\n  ref_px: 1.00001\n", ":2:", "defaults.ref_px: 1.00001 is not a price"),
    ("defaults: {collar_bps: 5, collar_ticks: 2}\n", ":1:", "not both"),
    ("global:\n  max_open: 70000\n", ":2:", "global.max_open: must be a whole number"),
    ("symbols:\n  AAPL: {enable: 1}\n", ":2:", "symbols.AAPL.enable: must be true or false"),
    ("defaults: [1, 2]\n", ":1:", "defaults: must be a mapping"),
    ("defaults:\n  max_shares: 5\n  max_shares: 6\n", ":3:", "given twice"),
    ("global: {max_open: 1\n", "", "not valid YAML"),
])
def test_limits_errors_name_line_and_key(tmp_path, text: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_limits(_write(tmp_path, text), SYMS)
    msg = str(e.value)
    assert what in msg and f"f.yaml{where}" in msg, msg


def test_triggers(tmp_path) -> None:
    t = load_triggers(_write(tmp_path, """
triggers:
  - {symbol: AAPL, side: buy, price: 150.30, shares: 100}
  - {symbol: ZVZZT, side: sell, price: 10, shares: 5, tif: 99998}
"""), SYMS)
    assert t[0].side == Side.BUY and t[0].price == 1_503_000 and t[0].tif == 0
    assert t[2].side == Side.SELL and t[2].tif == 99998


@pytest.mark.parametrize(("text", "what"), [
    ("triggers:\n  - {symbol: GOOG, side: buy, price: 1, shares: 1}\n", "not subscribed"),
    ("triggers:\n  - {symbol: AAPL, side: long, price: 1, shares: 1}\n", "buy or sell"),
    ("triggers:\n  - {symbol: AAPL, side: buy, shares: 1}\n", "triggers[0].price: missing"),
    ("triggers:\n  - {symbol: AAPL, side: buy, price: 1, shares: 0}\n", "at least 1"),
    ("triggers:\n  - {symbol: AAPL, side: buy, price: 1, shares: 1}\n"
     "  - {symbol: AAPL, side: sell, price: 2, shares: 1}\n", "has a trigger already"),
    ("triggers:\n  - {symbol: AAPL, side: buy, price: 1, shares: 1, qty: 3}\n", "unknown key"),
])
def test_trigger_errors(tmp_path, text: str, what: str) -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml:\d+: ") as e:
        load_triggers(_write(tmp_path, text), SYMS)
    assert what in str(e.value), str(e.value)
