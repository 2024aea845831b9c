"""Strategy on the card: triggers that turn market data into orders."""
