"""Reference models: pure-Python, cycle-aware executable specifications of the gateware blocks.

* :mod:`sim.model.ingress` — Ethernet/IPv4/UDP/MoldUDP64 ingress on lines A and B, A/B
  arbitration and sequencing (contract: docs/ingress.md).
"""
