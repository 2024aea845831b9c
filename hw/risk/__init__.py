"""Pre-trade risk gate (docs/risk.md)."""
