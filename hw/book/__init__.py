"""The order book: order table, price levels, best bid/offer and trades (docs/book.md)."""
