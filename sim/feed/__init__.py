"""Market-data feed tools: the bytes that go into the card, built from ``proto`` layouts.

* :mod:`sim.feed.dayfile` — NASDAQ BinaryFILE day files (``length(2) + message`` records).
* :mod:`sim.feed.mold` — MoldUDP64 packetizer, heartbeats and end-of-session packets.
* :mod:`sim.feed.frames` — Ethernet II / 802.1Q / IPv4 / UDP frame builder and parser.
* :mod:`sim.feed.pcap` — pcap / pcapng reading and writing (through scapy) and the
  day-file-to-capture glue.
* :mod:`sim.feed.synth` — a deterministic, internally consistent synthetic ITCH 5.0 day,
  and the book checker that proves it consistent.

Submodules are imported explicitly (``from sim.feed.pcap import read_frames``) so that a
tool that only reads day files does not pay for importing scapy.
"""
