"""Card backends: how register accesses and event records reach a card."""
