"""Cycles in, bytes out: the stimulus file, the verdict records and the final snapshots.

The driver (``driver.cpp``) knows ports only as byte ranges, so all meaning lives here, in
terms of the gate's own layouts (:mod:`hw.risk.params`) and the driver's port list
(:class:`~sim.harness.riskbench.builder.Driver`, in ``Vdut.h`` order):

* a **stimulus record** holds every input but ``clk``/``rst``, each in its Verilator storage
  (little-endian, 1/2/4/8 bytes or 4 per 32-bit word), in port order;
* a **verdict record** is ``u64 cycle`` followed by the ``verdict`` port's storage;
* a **snapshot** holds every output the same way.

Encoding runs once per cycle (~1.4 M cycles for a million orders) and is, after the stream
generator and the model, the largest Python cost of a run, so a record is built as one
integer — each field shifted to its bit position in the record — and converted to bytes
once, rather than packed port by port.
Values are checked, not masked: a field that does not fit would otherwise reach the gate
truncated while the model judged the full value.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from amaranth.lib import data

from hw.risk.params import (
    Reason,
    RiskParams,
    global_layout,
    limits_layout,
    md_layout,
    order_layout,
    report_layout,
    verdict_layout,
)
from sim.harness.riskbench.builder import PortSpec
from sim.model.risk import Cycle, egress_space

__all__ = ["MAGIC", "BenchLayout", "CycleEncoder", "StimulusError", "StimulusWriter",
           "VerdictCodec", "extract_field", "patch_input"]

MAGIC = b"RBSTIM01"
#: Magic, record bytes (u32), input count (u32).
HEADER_BYTES = 16
#: Ports the driver holds itself (clock low/high, reset low); not in the records.
UNDRIVEN = frozenset({"clk", "rst"})

_Fields = tuple[tuple[str, int, int], ...]   # (member, bit position, width)
_REASON_CODES = frozenset(int(r) for r in Reason)


class StimulusError(ValueError):
    """A cycle's value does not fit its port or field."""


@dataclass(frozen=True)
class Placed:
    """A port at its byte offset in a record (inputs) or a snapshot (outputs)."""

    port: PortSpec
    offset: int


class BenchLayout:
    """Where every port lives in a stimulus record and in a snapshot."""

    def __init__(self, ports: Iterable[PortSpec]):
        self.inputs: dict[str, Placed] = {}
        self.outputs: dict[str, Placed] = {}
        rec = snap = 0
        for p in ports:
            if p.direction == "in" and p.name not in UNDRIVEN:
                self.inputs[p.name] = Placed(p, rec)
                rec += p.nbytes
            elif p.direction == "out":
                self.outputs[p.name] = Placed(p, snap)
                snap += p.nbytes
        self.record_bytes = rec
        self.snapshot_bytes = snap

    def bit(self, name: str) -> int:
        """Bit position of input ``name`` in a record (as one little-endian integer)."""
        return self.inputs[name].offset * 8

    def decode_snapshot(self, raw: bytes) -> dict[str, int]:
        """Every output's value in one snapshot."""
        return {name: int.from_bytes(raw[pl.offset:pl.offset + pl.port.nbytes], "little")
                for name, pl in self.outputs.items()}


def _fields(layout: data.StructLayout, base: int) -> _Fields:
    return tuple((name, base + f.offset, f.width) for name, f in layout)


def _put(v: int, values: dict, fields: _Fields, what: str) -> int:
    """``v`` with ``values`` (missing members 0, as :func:`hw.risk.params.pack`) or-ed in."""
    for name, shift, width in fields:
        x = values.get(name, 0)
        if x >> width:                      # also true for negative values
            raise StimulusError(f"{what}.{name}={x} does not fit {width} bits")
        v |= x << shift
    return v


class CycleEncoder:
    """Turns a :class:`~sim.model.risk.Cycle` into one stimulus record.

    The mapping is ``_drive`` of ``tests/test_risk_gate.py``, with one difference that
    cannot change a verdict: a port whose qualifier is low carries 0 here, where the
    Amaranth test leaves it at its last value (the gate reads those ports only when
    qualified; see the wrapper in :mod:`~sim.harness.riskbench.top`). ``clear_error`` is not
    part of a Cycle and stays 0; ``view_slot`` is 0 while cycles are encoded;
    ``egress_space`` is :func:`sim.model.risk.egress_space` (a Cycle's None: the port's
    maximum, as the model takes it). In the view cycles after the last record the driver
    sets every input to 0, ``egress_space`` too: no order is presented there.
    """

    def __init__(self, params: RiskParams, layout: BenchLayout):
        self.layout = L = layout
        self.nbytes = L.record_bytes
        self.order_valid = 1 << L.bit("order_valid")
        self.report_valid = 1 << L.bit("report_valid")
        self.md_valid = 1 << L.bit("md_valid")
        self.kill = 1 << L.bit("kill")
        self.lim_store = 1 << L.bit("lim_store")
        self.glob_store = 1 << L.bit("glob_store")
        self.commit = 1 << L.bit("commit")
        self.pos_write = 1 << L.bit("pos_write")
        self.gap = 1 << L.bit("gap")
        self.md_clear = 1 << L.bit("md_clear")
        self.order = _fields(order_layout(params), L.bit("order"))
        self.report = _fields(report_layout(params), L.bit("report"))
        self.md = _fields(md_layout(params), L.bit("md"))
        self.lim_row = _fields(limits_layout(params), L.bit("lim_row"))
        self.glob_row = _fields(global_layout(params), L.bit("glob_row"))
        self.kill_slots = (L.bit("kill_slots"), params.slots)
        self.lim_slot = (L.bit("lim_slot"), params.slot_bits)
        self.pos_slot = (L.bit("pos_slot"), params.slot_bits)
        self.pos_value = L.bit("pos_value")
        self.position_bits = params.position_bits
        self.params = params
        self.egress_space = L.bit("egress_space")
        for name, layout in (("order", order_layout(params)), ("report", report_layout(params)),
                             ("md", md_layout(params)), ("lim_row", limits_layout(params)),
                             ("glob_row", global_layout(params))):
            if L.inputs[name].port.width != layout.size:
                raise StimulusError(f"port {name} is {L.inputs[name].port.width} bits, its "
                                    f"layout {layout.size}: driver built for other params?")

    def encode(self, c: Cycle) -> int:
        """The record of cycle ``c`` as one integer (bytes: ``to_bytes(nbytes, 'little')``)."""
        v = 0
        if c.order is not None:
            v = _put(v | self.order_valid, c.order, self.order, "order")
        if c.report is not None:
            v = _put(v | self.report_valid, c.report, self.report, "report")
        if c.md is not None:
            v = _put(v | self.md_valid, c.md, self.md, "md")
        if c.kill:
            v |= self.kill
        if c.kill_slots:
            shift, width = self.kill_slots
            if c.kill_slots >> width:
                raise StimulusError(f"kill_slots={c.kill_slots:#x} does not fit {width} bits")
            v |= c.kill_slots << shift
        if c.lim_store is not None:
            s, lim = c.lim_store
            shift, width = self.lim_slot
            if s >> width:
                raise StimulusError(f"lim_store slot {s} does not fit {width} bits")
            v = _put(v | self.lim_store | s << shift, lim, self.lim_row, "lim_row")
        if c.glob_store is not None:
            v = _put(v | self.glob_store, c.glob_store, self.glob_row, "glob_row")
        if c.commit:
            v |= self.commit
        if c.pos_write is not None:
            s, value = c.pos_write
            shift, width = self.pos_slot
            pb = self.position_bits
            lo, hi = -(1 << (pb - 1)), 1 << (pb - 1)
            if s >> width or not lo <= value < hi:
                raise StimulusError(f"pos_write {c.pos_write} does not fit")
            v |= self.pos_write | s << shift \
                | (value & ((1 << pb) - 1)) << self.pos_value
        if c.gap:
            v |= self.gap
        if c.md_clear:
            v |= self.md_clear
        try:
            v |= egress_space(self.params, c) << self.egress_space
        except ValueError as e:
            raise StimulusError(str(e)) from None
        return v


class StimulusWriter:
    """Writes the stimulus file: header, then one record per :meth:`write`, in chunks."""

    CHUNK = 1 << 16

    def __init__(self, path: str | os.PathLike[str], encoder: CycleEncoder):
        self.encoder = encoder
        self.records = 0
        self._f: io.BufferedWriter = open(path, "wb")     # closed by close()
        header = (MAGIC + encoder.nbytes.to_bytes(4, "little")
                  + len(encoder.layout.inputs).to_bytes(4, "little"))
        assert len(header) == HEADER_BYTES
        self._f.write(header)
        self._chunk: list[bytes] = []

    def write(self, c: Cycle) -> None:
        self.write_record(self.encoder.encode(c))

    def write_record(self, record: int) -> None:
        """Append an already encoded record (see :meth:`CycleEncoder.encode`)."""
        self._chunk.append(record.to_bytes(self.encoder.nbytes, "little"))
        self.records += 1
        if len(self._chunk) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        self._f.write(b"".join(self._chunk))
        self._chunk.clear()

    def close(self) -> None:
        if not self._f.closed:
            self._flush()
            self._f.close()

    def __enter__(self) -> StimulusWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VerdictCodec:
    """The ``verdict`` port's value: :func:`~hw.risk.params.verdict_layout` (order, reason)."""

    def __init__(self, params: RiskParams, port: PortSpec):
        layout = verdict_layout(params)
        if port.width != layout.size:
            raise StimulusError(f"verdict port is {port.width} bits, its layout {layout.size}")
        self.nbytes = port.nbytes
        order_at = layout["order"].offset
        self.order = _fields(order_layout(params), order_at)
        self.reason_at = layout["reason"].offset
        self.reason_width = layout["reason"].width
        self.dtype = np.dtype([("cycle", "<u8"), ("payload", "u1", (self.nbytes,))])

    def encode(self, order: dict, reason: Reason) -> bytes:
        """What the gate's ``verdict`` port shows for this verdict, in storage bytes."""
        v = _put(int(reason) << self.reason_at, order, self.order, "verdict.order")
        return v.to_bytes(self.nbytes, "little")

    def decode(self, raw: bytes | np.ndarray) -> tuple[dict, Reason | int]:
        """``(order, reason)`` of one verdict's storage bytes (an unknown reason as int)."""
        v = int.from_bytes(bytes(raw), "little")
        order = {name: v >> shift & ((1 << width) - 1) for name, shift, width in self.order}
        r = v >> self.reason_at & ((1 << self.reason_width) - 1)
        return order, Reason(r) if r in _REASON_CODES else r

    def reasons(self, payload: np.ndarray) -> np.ndarray:
        """The reason field of every row of ``payload`` (n × nbytes uint8), vectorised."""
        return extract_field(payload, self.reason_at, self.reason_width)


def extract_field(rows: np.ndarray, bit: int, width: int) -> np.ndarray:
    """Bits ``[bit, bit + width)`` of each row of little-endian bytes (``width`` <= 57),
    as uint64: the 8 bytes that hold the field are read as one word and shifted."""
    if not 1 <= width <= 57:
        raise ValueError("extract_field handles fields of 1..57 bits")
    first = bit // 8
    window = rows[:, first:first + 8]
    if window.shape[1] < 8:
        window = np.pad(window, ((0, 0), (0, 8 - window.shape[1])))
    words = np.ascontiguousarray(window).view("<u8").reshape(-1)
    return (words >> np.uint64(bit % 8)) & np.uint64((1 << width) - 1)


def patch_input(path: str | os.PathLike[str], layout: BenchLayout, cycle: int, name: str,
                value: int) -> None:
    """Overwrite input ``name`` in the record of ``cycle`` of a stimulus file.

    Records have a fixed size, so one input of one cycle can be changed in place — how the
    tests feed the gate a cycle the model never saw, to show that the comparison notices.
    """
    pl = layout.inputs[name]
    if not 0 <= value < 1 << pl.port.width:
        raise StimulusError(f"{name}={value} does not fit {pl.port.width} bits")
    with open(path, "r+b") as f:
        f.seek(HEADER_BYTES + cycle * layout.record_bytes + pl.offset)
        f.write(value.to_bytes(pl.port.nbytes, "little"))
