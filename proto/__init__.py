"""Protocol layouts, defined once.

The gateware generators (``hw``), the reference models and the feed tools (``sim``) all read
the byte layouts of the wire protocols from this package, so a field offset is written in
exactly one place. Every multi-byte integer on these wires is big-endian.
"""
