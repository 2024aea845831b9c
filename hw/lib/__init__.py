"""Small generic blocks used across the core."""
