"""Shared fixtures: one simulated card per test process (the harness build is cached)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sim_card():
    """The core's Verilog in the Verilator harness. Tests reset it before use."""
    from host.backends.sim import SimCard
    return SimCard()


@pytest.fixture
def card(sim_card):
    """A freshly reset simulated card behind the host API."""
    from host.card import Card
    sim_card.harness.c2h_ready(1.0)
    sim_card.harness.reset()
    return Card(sim_card)
