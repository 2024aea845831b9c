"""Market-data ingress: Ethernet/IPv4/UDP/MoldUDP64 on two lines, A/B arbitration, sequencing.

The contract is docs/ingress.md; ``sim.model.ingress`` is its reference model.
"""
