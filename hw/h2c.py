"""Host orders on the H2C stream: one 64-byte record per beat, defined once.

The host's DMA engine writes these records to the card; each is one order for the risk
gate (docs/orderentry.md, "Host orders"). Like the event records (:mod:`hw.events`), the
record is little-endian with fields at fixed byte offsets, so the same list of fields gives
the gateware's field extraction from ``s_axis_h2c_tdata`` (byte 0 in bits 7:0) and the
host's numpy dtype.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Value

RECORD_BYTES = 64

#: (name, numpy type, byte offset). ``magic`` guards against a stray or misaligned record.
FIELDS: tuple[tuple[str, str, int], ...] = (
    ("magic", "<u2", 0),
    ("kind", "u1", 2),        # OrderKind: 0 new, 1 cancel
    ("side", "u1", 3),        # Side: 0 buy, 1 sell
    ("slot", "u1", 4),
    ("token", "<u8", 8),      # token number (48 bits used), increasing per session
    ("shares", "<u4", 16),
    ("price", "<u4", 20),
    ("tif", "<u4", 24),
)
MAGIC = 0x4F48            # "HO" little-endian: a host order


def numpy_dtype() -> np.dtype:
    return np.dtype({"names": [f[0] for f in FIELDS], "formats": [f[1] for f in FIELDS],
                     "offsets": [f[2] for f in FIELDS], "itemsize": RECORD_BYTES})


def pack(orders: list[dict]) -> bytes:
    """Records for ``orders`` (dicts of the field names; ``magic`` is filled in)."""
    arr = np.zeros(len(orders), dtype=numpy_dtype())
    for i, o in enumerate(orders):
        arr[i]["magic"] = MAGIC
        for name, _, _ in FIELDS[1:]:
            arr[i][name] = int(o.get(name, 0))
    return arr.tobytes()


def field(tdata: Value, name: str) -> Value:
    """Gateware: field ``name`` of the record on ``tdata``."""
    for n, t, off in FIELDS:
        if n == name:
            size = np.dtype(t).itemsize
            return tdata[8 * off:8 * (off + size)]
    raise KeyError(name)
