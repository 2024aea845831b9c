"""NASDAQ TotalView-ITCH 5.0 decoding (docs/book.md, section 1)."""
