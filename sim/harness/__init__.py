"""Verilator C++ replay harness: the "simulated card" engine for replays and benchmarks.

:class:`Harness` builds (and caches, see :mod:`sim.harness.build`) a shared library from the
core's Verilog and a C++ driver loop, and loads it with ``ctypes``. Python hands over work in
batches — thousands of frames per :meth:`Harness.push_frames`, millions of cycles per
:meth:`Harness.run` — and every per-cycle action happens in C++: driving the two RX lines,
the order-entry RX stream and the H2C record stream, generating C2H and TX ``tready``,
capturing event records and TX beats into growable buffers, checking the core's stream
protocols and running AXI4-Lite transactions.

Cycle semantics
---------------
Cycle numbers (:attr:`Harness.cycle`) count clock cycles since the end of the last reset:
cycle 0 is the first cycle in which ``rst`` is low. For cycle *n* the harness

1. applies every input of cycle *n* (RX, OE RX and H2C beats, ``m_axis_c2h_tready``,
   ``m_axis_tx_tready``, AXI-Lite signals) with ``clk`` low and lets the model settle
   combinationally;
2. samples the outputs: a transfer happens in cycle *n* when valid and ready are both high
   *now*, just before the rising edge — the values the design's flip-flops see at that edge,
   so Mealy-style readies (``wready = awvalid & wvalid``) are handled exactly;
3. raises ``clk``: the rising edge that ends cycle *n*; registered outputs change.

A beat "presented on cycle *n*" is on the bus during cycle *n* and registered by the core at
the edge ending it. A core cycle counter that is reset to 0 and counts every cycle reads *n*
during cycle *n*, so hardware timestamps and harness cycle numbers agree. A record "received
on cycle *n*" had ``tvalid && tready`` in cycle *n*. In an FST trace, cycle *n* spans
``[ticks·P, ticks·P + P)`` where ticks counts every cycle since construction (reset cycles
included) and ``P = trace_period_ps``; inputs change at the start, the rising edge is at P/2.

RX lines (A = 0, B = 1) have no ``tready``. Each line sends its queue of frames in order, one
8-byte beat per cycle: frame byte *k* of a beat is ``tdata[8k+7:8k]``; ``tkeep`` is ``0xFF``
except on the last beat, where it is contiguous from bit 0; ``tlast`` marks the last beat and
``tuser`` is set on the last beat of frames pushed with ``error``. Frame *i* starts (first beat)
in the first cycle *c* with ``c >= not_before[i]`` and ``c >= last_beat(i-1) + 1 + idle[i]``;
``idle=0`` is back to back, harsher than a real 10G MAC, which leaves about 2.5 beats of
preamble and inter-frame gap. Between frames ``tvalid`` is low and the other signals keep the
last beat's values.

Order-entry RX (``s_axis_oe_rx_*``, the exchange's TCP payload bytes; no ``tready``, no
``tuser``) works like an RX line, with the chunks of :meth:`Harness.push_oe_rx` as frames:
each chunk is packed into 8-byte beats, byte *k* of a beat in ``tdata[8k+7:8k]``, ``tkeep``
``0xFF`` but on the chunk's last beat, ``tlast`` on that beat; chunk *i* starts in the first
cycle *c* with ``c >= not_before[i]`` and ``c >= last_beat(i-1) + 1 + idle[i]`` (``idle=0``
by default: a continuous byte stream, chunks back to back).

H2C (``s_axis_h2c_*``): the 64-byte records of :meth:`Harness.push_h2c` are presented in
order, one per beat with ``tlast`` (byte *k* of the record in ``tdata[8k+7:8k]``). Record *i*
is presented from the first cycle *c* with ``c >= not_before[i]`` after record *i-1* was
accepted (so at the earliest in the cycle after that handshake) and held, unchanged, until
``s_axis_h2c_tready`` is high: it is accepted in that cycle
(:meth:`Harness.h2c_accept_cycles`). Between records ``tvalid`` is low and ``tdata`` keeps
the last record.

TX (``m_axis_tx_*``, the order-entry egress byte stream): ``tready`` follows
:meth:`Harness.tx_ready` (always high by default); every beat with ``tvalid && tready`` is
captured with its cycle (:meth:`Harness.tx_beats`, :meth:`Harness.tx_packets`).

C2H ``tready`` follows :meth:`Harness.c2h_ready` (always high by default) in every cycle after
reset, during AXI-Lite transactions too; so does TX ``tready``. AXI-Lite writes raise
``awvalid`` and ``wvalid`` together (or ``w_delay`` cycles apart) with ``bready`` high
throughout; reads raise ``arvalid`` with ``rready`` high; each valid falls in the cycle after
its handshake. The clock keeps
running during transactions, so RX, OE RX and H2C queues keep flowing and records and TX
beats keep arriving.

Protocol checks on the core's outputs, per cycle: C2H ``tvalid`` must not fall and
``tdata``/``tlast`` must not change while a beat waits for ``tready``; every C2H beat carries
``tlast`` (one record per beat); the same for TX ``tvalid`` and ``tdata``/``tkeep``/``tlast``,
and every TX beat's ``tkeep`` is contiguous from lane 0 with at least one byte (``2**k - 1``,
``k >= 1``); ``bvalid``/``rvalid`` only for an outstanding transaction,
strictly after its address (and data) handshakes. A violation raises :class:`ProtocolError`
from the call that ran the cycle. ``$stop``, ``$fatal`` and ``$finish`` in the design raise
:class:`SimulationError` (Verilator's default would exit the Python process); the harness
refuses further cycles after a ``$stop``/``$fatal``, whose own message Verilator prints on
stdout (the exception names the source line).

How the model is evaluated does not change any of this: by default the library registers
the design's inputs in a generated wrapper so that each cycle costs one evaluation instead
of two, with the same values in every cycle and the same state between calls (see
:class:`Harness` and docs/harness.md, "Evaluation").

Ports beyond those the harness drives (:data:`~sim.harness.build.REQUIRED_PORTS`) are
tolerated: inputs start at 0 and can be tied with ``Harness(tie={...})`` or :meth:`Harness.poke`;
any port can be read with :meth:`Harness.peek`. To give a new port a per-cycle driver, add it to the
C++ ``Harness::tick()`` behind ``#if WH_HAS_PORT_<name>`` (build.py generates those macros
from the Verilated model), or to ``REQUIRED_PORTS`` once every core has it.

One :class:`Harness` must be used from one thread at a time; calls release the GIL, so
several harnesses can run in parallel threads.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from ctypes import POINTER, c_char_p, c_int, c_int64, c_size_t, c_uint32, c_uint64, c_void_p
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from hw.events import RECORD_BYTES, numpy_dtype
from sim.harness.build import (
    REQUIRED_PORTS,
    HarnessBuildError,
    HarnessError,
    Port,
    build_library,
)

__all__ = [
    "TX_BEAT_DTYPE", "AxiLiteError", "AxiLiteTimeout", "FrameBuffer", "H2cStats", "Harness",
    "HarnessBuildError", "HarnessError", "LineStats", "Port", "ProtocolError",
    "SimulationError", "TxPacket", "TxPackets", "reassemble_tx",
]

RECORD_DTYPE = numpy_dtype()
assert RECORD_DTYPE.itemsize == RECORD_BYTES

#: One captured TX beat (``struct TxBeat`` in harness.cpp, 24 bytes): the cycle of its
#: ``tvalid && tready`` handshake, ``tdata`` (byte 0 of the beat in bits 7:0), ``tkeep``,
#: ``tlast``.
TX_BEAT_DTYPE = np.dtype({"names": ["cycle", "tdata", "tkeep", "tlast"],
                          "formats": ["<i8", "<u8", "u1", "u1"], "offsets": [0, 8, 16, 17],
                          "itemsize": 24})
# Bytes of a beat: the lanes set from lane 0 up to the first clear one (tkeep is contiguous).
_KEEP_BYTES = np.array([next(i for i in range(9) if not k >> i & 1) for k in range(256)],
                       dtype=np.int64)
_OE_RX = 2  # the harness's RX line index of the order-entry RX stream

#: Cycles per C call of run()/step(): Ctrl-C is seen between chunks, every ~0.1-1 s.
_CHUNK = 1 << 20
_DIRECTIONS = ("in", "out", "inout")
# Status codes of the C API (harness.cpp: enum Status).
_OK, _FINISHED, _TIMEOUT, _FATAL, _BAD_ARGUMENT = 0, 1, 2, -1, -2
_READY_ALWAYS, _READY_RANDOM, _READY_PATTERN = 0, 1, 2
_VIOLATIONS = {
    1: "m_axis_c2h_tvalid fell while a beat waited for tready",
    2: "m_axis_c2h_tdata/tlast changed while a beat waited for tready",
    3: "m_axis_c2h beat without tlast (every record is one beat)",
    4: "s_axil_bvalid without a write whose AW and W handshakes had completed",
    5: "s_axil_rvalid without a read whose AR handshake had completed",
    6: "m_axis_tx_tvalid fell while a beat waited for tready",
    7: "m_axis_tx_tdata/tkeep/tlast changed while a beat waited for tready",
    8: "m_axis_tx_tkeep not contiguous from lane 0 (or zero) on a valid beat",
}
_AXI_RESP = {0: "OKAY", 1: "EXOKAY", 2: "SLVERR", 3: "DECERR"}


class SimulationError(HarnessError):
    """The design stopped the simulation ($stop/$fatal/$finish or a Verilator fatal)."""


class ProtocolError(HarnessError):
    """The core broke an AXI4-Stream or AXI4-Lite rule on one of its outputs."""


class AxiLiteError(HarnessError):
    """An AXI4-Lite transaction completed with a response other than OKAY."""

    def __init__(self, message: str, resp: int):
        super().__init__(message)
        self.resp = resp


class AxiLiteTimeout(HarnessError):
    """An AXI4-Lite transaction did not complete within its timeout."""


class FrameBuffer(NamedTuple):
    """Frames packed in one buffer: frame *i* is ``data[offsets[i] : offsets[i] + lengths[i]]``.

    The batch form of :meth:`Harness.push_frames`, e.g. straight from a pcap or day-file
    reader, without one ``bytes`` object per frame.
    """

    data: bytes | bytearray | memoryview | np.ndarray
    offsets: ArrayLike
    lengths: ArrayLike

    @classmethod
    def from_frames(cls, frames: Sequence[bytes]) -> FrameBuffer:
        lengths = np.fromiter((len(f) for f in frames), dtype=np.int64, count=len(frames))
        offsets = np.zeros(len(frames), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        return cls(b"".join(frames), offsets, lengths)


@dataclass(frozen=True)
class LineStats:
    """Counters of one RX line since the last reset."""

    frames_pushed: int
    frames_sent: int     # last beat presented
    beats_sent: int
    bytes_sent: int
    frames_pending: int  # pushed, last beat not yet presented


@dataclass(frozen=True)
class H2cStats:
    """Counters of the H2C record queue since the last reset."""

    pushed: int
    accepted: int  # tvalid && tready seen
    pending: int   # pushed, not accepted yet (waiting, or presented and held)


class TxPacket(NamedTuple):
    """One TX packet: the handshake cycles of the beats that carried its first and its last
    byte, and its bytes."""

    first_cycle: int
    last_cycle: int
    data: bytes


@dataclass(frozen=True, eq=False)
class TxPackets(Sequence[TxPacket]):
    """TX packets reassembled from captured beats (:func:`reassemble_tx`).

    A sequence of :class:`TxPacket` ``(first_cycle, last_cycle, data)``, so
    ``for first, last, data in packets`` works, backed by arrays: packet *i*'s bytes are
    ``data[offsets[i] : offsets[i] + lengths[i]]`` (:meth:`payloads` lists them all),
    ``first_cycles[i]`` is the handshake cycle of the beat that carried its first byte and
    ``last_cycles[i]`` that of the beat that carried its last byte (its ``tlast`` beat). For
    tick-to-trade, the cycle of a packet's first byte on the wire is ``first_cycles[i]``.
    ``buffer`` is the packets as a :class:`FrameBuffer`.
    """

    data: bytes
    offsets: np.ndarray
    lengths: np.ndarray
    first_cycles: np.ndarray
    last_cycles: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        return TxPacket(int(self.first_cycles[i]), int(self.last_cycles[i]), self.payload(i))

    def __iter__(self) -> Iterator[TxPacket]:
        return (self[i] for i in range(len(self)))

    def payload(self, i: int) -> bytes:
        """The bytes of packet ``i``."""
        start = int(self.offsets[i])
        return self.data[start:start + int(self.lengths[i])]

    def payloads(self) -> list[bytes]:
        """The bytes of every packet."""
        return [self.payload(i) for i in range(len(self))]

    @property
    def buffer(self) -> FrameBuffer:
        return FrameBuffer(self.data, self.offsets, self.lengths)


def reassemble_tx(beats: np.ndarray) -> tuple[TxPackets, np.ndarray]:
    """Split captured TX beats (:data:`TX_BEAT_DTYPE`) into packets at ``tlast``.

    Returns the complete packets and the beats after the last ``tlast`` (a packet still being
    sent; prepend them to the next beats). A beat's bytes are its lanes from lane 0 up to the
    first clear ``tkeep`` bit (the harness checks that ``tkeep`` is contiguous). Vectorised:
    no Python per beat.
    """
    beats = np.asarray(beats)
    if beats.dtype != TX_BEAT_DTYPE:
        # np.concatenate() and friends pack the padded dtype: same fields, other offsets.
        if beats.dtype.names != TX_BEAT_DTYPE.names:
            raise ValueError(f"beats must have dtype TX_BEAT_DTYPE, not {beats.dtype}")
        beats = beats.astype(TX_BEAT_DTYPE)
    beats = beats.reshape(-1)
    ends = np.flatnonzero(beats["tlast"])
    done_beats = int(ends[-1]) + 1 if len(ends) else 0
    done, rest = beats[:done_beats], beats[done_beats:]
    counts = _KEEP_BYTES[done["tkeep"]]
    lanes = np.ascontiguousarray(done["tdata"], dtype="<u8").view(np.uint8).reshape(-1, 8)
    data = lanes[np.arange(8) < counts[:, None]].tobytes()
    packet_end = np.cumsum(counts)[ends] if len(ends) else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate(([0], packet_end))[:-1].astype(np.int64)
    lengths = (packet_end - offsets).astype(np.int64)
    first_beat = np.concatenate(([0], ends + 1))[:-1].astype(np.int64)
    # The beats carrying the first and the last byte (beats with tkeep == 0 carry none).
    index = np.arange(done_beats)
    carries = counts > 0
    next_carrier = np.minimum.accumulate(np.where(carries, index, done_beats)[::-1])[::-1]
    prev_carrier = np.maximum.accumulate(np.where(carries, index, -1))
    first = next_carrier[first_beat] if len(ends) else first_beat
    last = prev_carrier[ends] if len(ends) else ends
    first = np.where(first <= ends, first, ends)
    last = np.where(last >= first_beat, last, ends)
    cycles = done["cycle"]
    packets = TxPackets(data, offsets, lengths, cycles[first].astype(np.int64),
                        cycles[last].astype(np.int64))
    return packets, rest.copy()


_SIGNATURES: dict[str, tuple[type | None, list]] = {
    "wh_create": (c_void_p, [c_char_p, c_uint64, c_char_p, c_size_t]),
    "wh_destroy": (None, [c_void_p]),
    "wh_error": (c_char_p, [c_void_p]),
    "wh_registered_inputs": (c_int, []),
    "wh_port_count": (c_int, []),
    "wh_port_name": (c_char_p, [c_int]),
    "wh_port_dir": (c_int, [c_int]),
    "wh_port_width": (c_int, [c_int]),
    "wh_port_bytes": (c_int, [c_int]),
    "wh_poke": (c_int, [c_void_p, c_int, c_char_p]),
    "wh_peek": (c_int, [c_void_p, c_int, c_char_p]),
    "wh_reset": (c_int, [c_void_p, c_uint64]),
    "wh_cycle": (c_int64, [c_void_p]),
    "wh_step": (c_int, [c_void_p, c_uint64]),
    "wh_run": (c_int, [c_void_p, c_uint64, c_uint64, c_int, c_int, POINTER(c_uint64),
                       POINTER(c_int)]),
    "wh_stop_on": (None, [c_void_p, c_int, c_char_p]),
    "wh_push": (c_int, [c_void_p, c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p,
                        c_uint32, c_void_p, c_uint64, c_uint64]),
    "wh_line_stats": (c_int, [c_void_p, c_int, c_void_p]),
    "wh_frame_starts": (c_uint64, [c_void_p, c_int, c_uint64, c_void_p, c_uint64]),
    "wh_records_pending": (c_uint64, [c_void_p]),
    "wh_records_take": (c_uint64, [c_void_p, c_void_p, c_void_p, c_uint64]),
    "wh_c2h_ready": (c_int, [c_void_p, c_int, c_uint64, c_uint64, c_void_p, c_uint64]),
    "wh_tx_ready": (c_int, [c_void_p, c_int, c_uint64, c_uint64, c_void_p, c_uint64]),
    "wh_tx_pending": (c_uint64, [c_void_p]),
    "wh_tx_take": (c_uint64, [c_void_p, c_void_p, c_uint64]),
    "wh_h2c_push": (c_int, [c_void_p, c_void_p, c_void_p, c_uint64]),
    "wh_h2c_stats": (c_int, [c_void_p, c_void_p]),
    "wh_h2c_accepts": (c_uint64, [c_void_p, c_uint64, c_void_p, c_uint64]),
    "wh_axil_write": (c_int, [c_void_p, c_uint32, c_uint32, c_uint32, c_int64, c_uint64,
                              POINTER(c_uint32)]),
    "wh_axil_read": (c_int, [c_void_p, c_uint32, c_uint64, POINTER(c_uint32),
                             POINTER(c_uint32)]),
    "wh_take_violation": (c_int, [c_void_p, POINTER(c_int64), POINTER(c_uint64)]),
}


@functools.cache
def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def _per_frame(values: ArrayLike, n: int, dtype: type, what: str) -> np.ndarray:
    a = np.ascontiguousarray(values, dtype=dtype)
    if a.shape != (n,):
        raise ValueError(f"{what} must have one entry per frame ({n}), got shape {a.shape}")
    return a


def _bytes_view(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def _frame_buffer(frames: Sequence[bytes] | FrameBuffer | tuple) -> FrameBuffer:
    if isinstance(frames, FrameBuffer):
        return frames
    if isinstance(frames, tuple) and len(frames) == 3 and isinstance(frames[1], np.ndarray):
        return FrameBuffer(*frames)
    return FrameBuffer.from_frames(frames)


def _h2c_records(records: bytes | bytearray | memoryview | np.ndarray | Sequence[bytes]
                 ) -> np.ndarray:
    """``records`` as a C-contiguous ``uint8`` array of shape (n, 64)."""
    if isinstance(records, np.ndarray):
        a = np.ascontiguousarray(records)
        if a.dtype != np.uint8 and a.dtype.itemsize != RECORD_BYTES:
            raise ValueError(f"H2C records: a {a.dtype} array is neither bytes nor "
                             f"{RECORD_BYTES}-byte records")
        a = a.reshape(-1).view(np.uint8)
    elif isinstance(records, (bytes, bytearray, memoryview)):
        a = np.frombuffer(records, dtype=np.uint8)
    else:
        records = list(records)
        bad = [i for i, r in enumerate(records) if len(r) != RECORD_BYTES]
        if bad:
            raise ValueError(f"H2C records are {RECORD_BYTES} bytes each; record {bad[0]} is "
                             f"{len(records[bad[0]])}")
        a = np.frombuffer(b"".join(records), dtype=np.uint8)
    if len(a) % RECORD_BYTES:
        raise ValueError(f"H2C records: {len(a)} bytes is not a multiple of {RECORD_BYTES}")
    return np.ascontiguousarray(a).reshape(-1, RECORD_BYTES)


def _per_item(values: ArrayLike | None, n: int, what: str) -> np.ndarray | None:
    """``not_before``: None, one int for every item, or one per item."""
    if values is None:
        return None
    if np.ndim(values) == 0:
        return np.full(n, int(values), dtype=np.int64)  # type: ignore[arg-type]
    return _per_frame(values, n, np.int64, what)


class Harness:
    """A Verilated core clocked in C++; see the module docstring for the cycle semantics.

    ``verilog`` is the core's Verilog file (or several), ``top`` its top module. ``trace``
    names an FST file to dump every cycle into (a separate, slower build). ``tie`` sets
    inputs the harness does not drive (extra ports of later cores) once, before reset;
    they keep their value across resets. The harness is reset for ``reset_cycles`` cycles on
    construction. ``library`` is the path of the shared library in use, ``ports`` the
    design's top-level ports.

    ``registered_inputs`` (the default) builds the design behind a wrapper that registers
    its inputs, so that each cycle costs one evaluation of the model instead of two, with
    the same results (see ``harness.cpp``); :attr:`registered_inputs` tells whether the
    design allowed it (``manifest.json`` next to :attr:`library` says why not). ``False``
    builds the plain model (for cross-checking). Trace builds are always plain.
    """

    def __init__(self, verilog: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 top: str = "wirespeed_core", *, trace: str | os.PathLike[str] | None = None,
                 build_dir: str | os.PathLike[str] | None = None, reset_cycles: int = 8,
                 tie: Mapping[str, int] | None = None, trace_period_ps: int = 6400,
                 registered_inputs: bool = True):
        self._h: int | None = None
        self._tx_partial = np.empty(0, dtype=TX_BEAT_DTYPE)
        #: The last :meth:`run` ended on a stop event (:meth:`stop_on`).
        self.stopped = False
        self.library = build_library(verilog, top, trace=trace is not None,
                                     build_dir=build_dir, registered_inputs=registered_inputs)
        self._lib = _load(self.library)
        lib = self._lib
        self.ports: dict[str, Port] = {}
        self._port_index: dict[str, tuple[int, int]] = {}  # name -> (index, storage bytes)
        for i in range(lib.wh_port_count()):
            name = lib.wh_port_name(i).decode()
            self.ports[name] = Port(name, _DIRECTIONS[lib.wh_port_dir(i)], lib.wh_port_width(i))
            self._port_index[name] = (i, lib.wh_port_bytes(i))
        err = ctypes.create_string_buffer(1024)
        trace_arg = os.fsencode(trace) if trace is not None else None
        handle = lib.wh_create(trace_arg, trace_period_ps, err, len(err))
        if not handle:
            raise HarnessError(f"cannot create the harness: {err.value.decode()}")
        self._h = handle
        for name, value in (tie or {}).items():
            self.poke(name, value)
        self.reset(reset_cycles)

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Run the design's final blocks, close the trace and free the model."""
        if self._h is not None:
            self._lib.wh_destroy(self._h)
            self._h = None

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_h", None) is not None:
            self.close()

    @property
    def registered_inputs(self) -> bool:
        """True if the library evaluates the model once per cycle (registered inputs)."""
        return bool(self._lib.wh_registered_inputs())

    @property
    def _handle(self) -> int:
        if self._h is None:
            raise HarnessError("the harness is closed")
        return self._h

    def _check(self, status: int) -> int:
        """Turn a C status and any protocol violation into the matching exception."""
        lib, h = self._lib, self._handle
        if status == _FATAL:
            raise SimulationError(lib.wh_error(h).decode(errors="replace"))
        cycle, count = c_int64(), c_uint64()
        code = lib.wh_take_violation(h, ctypes.byref(cycle), ctypes.byref(count))
        if status == _FINISHED:
            raise SimulationError(f"the design called $finish (cycle {self.cycle})")
        if status == _BAD_ARGUMENT:
            raise ValueError("the harness rejected an argument")
        if code:
            more = f" ({count.value} violations in this call)" if count.value > 1 else ""
            raise ProtocolError(f"cycle {cycle.value}: {_VIOLATIONS[code]}{more}")
        return status

    # -- clock -------------------------------------------------------------------------------

    @property
    def cycle(self) -> int:
        """Cycles since the end of the last reset (the number of the next cycle to run)."""
        return self._lib.wh_cycle(self._handle)

    def reset(self, cycles: int = 8) -> None:
        """Hold ``rst`` for ``cycles`` cycles; clear the RX, OE RX and H2C queues, the records,
        the TX beats and the counters.

        The C2H and TX ``tready`` generators restart from their seed or pattern start; tied
        inputs keep their values. :attr:`cycle` is 0 afterwards.
        """
        if cycles < 1:
            raise ValueError("reset needs at least one cycle")
        self._tx_partial = self._tx_partial[:0]
        self._check(self._lib.wh_reset(self._handle, cycles))

    def step(self, cycles: int = 1) -> None:
        """Run exactly ``cycles`` cycles."""
        if cycles < 0:
            raise ValueError("cycles must be >= 0")
        while cycles:
            n = min(cycles, _CHUNK)
            self._check(self._lib.wh_step(self._handle, n))
            cycles -= n

    def run(self, max_cycles: int | None = None, drain: int = 64, *,
            stop: bool = False) -> int:
        """Run until every queue is sent and the core has been quiet for ``drain`` cycles.

        A quiet cycle has no RX or OE RX beat, no RX frame or OE RX chunk waiting, no H2C
        record waiting or presented, and ``m_axis_c2h_tvalid`` and ``m_axis_tx_tvalid`` low;
        the count starts with this call, so ``drain > 0`` always runs at least ``drain``
        cycles and ``drain=0`` returns as soon as the last beat is out. An H2C record the core
        never accepts, or a C2H/TX beat never taken (``c2h_ready(0)``, ``tx_ready(0)``),
        keeps it running: pass ``max_cycles``. Returns the number of cycles run.

        With ``stop``, the run also ends after the first cycle with an event chosen by
        :meth:`stop_on` (then :attr:`stopped` is True), so that a caller can react at the
        cycle it happened — an exchange answering an order, a host re-arming a trigger —
        while the queued stimulus stays scheduled where it was. An event seen in cycles run
        by anything else (an AXI-Lite transaction, :meth:`step`) ends the next such run
        before its first cycle.
        """
        if drain < 0 or (max_cycles is not None and max_cycles < 0):
            raise ValueError("drain and max_cycles must be >= 0")
        total, fresh = 0, 1
        ran, done = c_uint64(), c_int()
        self.stopped = False
        while max_cycles is None or total < max_cycles:
            budget = _CHUNK if max_cycles is None else min(_CHUNK, max_cycles - total)
            status = self._lib.wh_run(self._handle, budget, drain, fresh, int(stop),
                                      ctypes.byref(ran), ctypes.byref(done))
            total += ran.value
            fresh = 0
            self._check(status)
            if done.value:
                self.stopped = done.value == 2
                break
        return total

    def stop_on(self, *, tx_packet: bool = False, record_kinds: Iterable[int] = ()) -> None:
        """Choose the events that end :meth:`run` with ``stop=True``: the last beat of a TX
        packet taken (``tx_packet``), a C2H record of one of ``record_kinds`` (the ``kind``
        byte, :class:`hw.events.EventKind`) taken. Forgets an event not yet reported."""
        mask = 0
        for k in record_kinds:
            if not 0 <= int(k) < 256:
                raise ValueError(f"record kind {k} is not a byte")
            mask |= 1 << int(k)
        self._lib.wh_stop_on(self._handle, int(tx_packet), mask.to_bytes(32, "little"))

    # -- RX ----------------------------------------------------------------------------------

    def push_frames(self, line: int, frames: Sequence[bytes] | FrameBuffer | tuple, *,
                    not_before: ArrayLike | None = None, idle: int | ArrayLike = 0,
                    error: ArrayLike | None = None) -> range:
        """Queue frames on RX line ``line`` (0 = A, 1 = B); they go out as the clock runs.

        ``frames`` is a sequence of ``bytes`` or a :class:`FrameBuffer`; a plain tuple
        ``(data, offsets, lengths)`` whose ``offsets`` is a NumPy array is taken as one.
        Per frame (arrays of one entry per frame): ``not_before`` is the earliest cycle of its
        first beat, ``idle`` (or one int for all) the minimum idle cycles after the previous
        frame's last beat, ``error`` asserts ``tuser`` on its last beat. Returns the frames'
        indices on the line since the last reset (indices into :meth:`frame_start_cycles`).
        """
        if line not in (0, 1):
            raise ValueError(f"line must be 0 (A) or 1 (B), not {line!r}")
        return self._push_line(line, _frame_buffer(frames), not_before, idle, error)

    def _push_line(self, line: int, frames: FrameBuffer, not_before: ArrayLike | None,
                   idle: int | ArrayLike, error: ArrayLike | None) -> range:
        data = _bytes_view(frames.data)
        offsets = np.ascontiguousarray(frames.offsets, dtype=np.int64).reshape(-1)
        n = len(offsets)
        lengths = _per_frame(frames.lengths, n, np.int64, "lengths")
        if n and not ((lengths >= 1).all() and (lengths < 1 << 32).all()
                      and (offsets >= 0).all() and (offsets + lengths <= len(data)).all()):
            raise ValueError("every frame needs 1 <= length < 2**32 bytes inside the buffer")
        nb = _per_item(not_before, n, "not_before")
        if np.ndim(idle) == 0:
            if not 0 <= int(idle) < 1 << 32:
                raise ValueError("idle must be in [0, 2**32)")
            gaps, gap = None, int(idle)
        else:
            gaps_signed = _per_frame(idle, n, np.int64, "idle")
            if n and not ((gaps_signed >= 0).all() and (gaps_signed < 1 << 32).all()):
                raise ValueError("idle must be in [0, 2**32)")
            gaps, gap = gaps_signed.astype(np.uint32), 0
        errors = None if error is None else _per_frame(error, n, np.bool_, "error").view(np.uint8)
        first = self._line_stats(line).frames_pushed
        if n:
            lengths32 = lengths.astype(np.uint32)  # bound: must outlive the call
            self._check(self._lib.wh_push(
                self._handle, line, data.ctypes.data, offsets.ctypes.data, lengths32.ctypes.data,
                _ptr(nb), _ptr(gaps), gap, _ptr(errors), n, int(lengths.sum())))
        return range(first, first + n)

    def line_stats(self, line: int) -> LineStats:
        """Frames and beats pushed and sent on RX line ``line`` since the last reset."""
        if line not in (0, 1):
            raise ValueError(f"line must be 0 (A) or 1 (B), not {line!r}")
        return self._line_stats(line)

    def _line_stats(self, line: int) -> LineStats:
        out = (c_uint64 * 5)()
        if self._lib.wh_line_stats(self._handle, line, out) != _OK:
            raise ValueError(f"no RX line {line!r}")
        return LineStats(*(int(v) for v in out))

    def frame_start_cycles(self, line: int, start: int = 0) -> np.ndarray:
        """Cycle of the first beat of each frame pushed on ``line`` since reset (-1: not yet).

        Entry *i* is frame index ``start + i``. Kept for every frame since the last reset
        (8 bytes each); ``start`` fetches only the new ones in a long replay.
        """
        total = self.line_stats(line).frames_pushed
        return self._start_cycles(line, total, start)

    def _start_cycles(self, line: int, total: int, start: int) -> np.ndarray:
        out = np.empty(max(0, total - start), dtype=np.int64)
        if len(out):
            self._lib.wh_frame_starts(self._handle, line, start, out.ctypes.data, len(out))
        return out

    # -- order-entry RX ----------------------------------------------------------------------

    def push_oe_rx(self, chunks: bytes | Sequence[bytes] | FrameBuffer | tuple, *,
                   not_before: int | ArrayLike | None = None,
                   idle: int | ArrayLike = 0) -> range:
        """Queue byte chunks on the order-entry RX stream (``s_axis_oe_rx_*``).

        Each chunk (``bytes``, at least one byte; a single ``bytes`` object is one chunk; a
        :class:`FrameBuffer` holds many) is packed into 8-byte beats, ``tkeep`` partial on its
        last beat, ``tlast`` there, one beat per cycle, no ``tready``. ``not_before`` (one int
        for all, or one per chunk) is the earliest cycle of a chunk's first beat, ``idle`` the
        minimum idle cycles after the previous chunk (default 0: back to back). Returns the
        chunks' indices since the last reset (into :meth:`oe_rx_start_cycles`).
        """
        if isinstance(chunks, (bytes, bytearray, memoryview)):
            chunks = [bytes(chunks)]
        return self._push_line(_OE_RX, _frame_buffer(chunks), not_before, idle, None)

    def oe_rx_stats(self) -> LineStats:
        """Chunks (as ``frames_*``), beats and bytes pushed and sent on OE RX since reset."""
        return self._line_stats(_OE_RX)

    def oe_rx_start_cycles(self, start: int = 0) -> np.ndarray:
        """Cycle of the first beat of each OE RX chunk since reset (-1: not yet); entry *i*
        is chunk ``start + i``."""
        return self._start_cycles(_OE_RX, self.oe_rx_stats().frames_pushed, start)

    # -- H2C ---------------------------------------------------------------------------------

    def push_h2c(self, records: bytes | Sequence[bytes] | np.ndarray, *,
                 not_before: int | ArrayLike | None = None) -> range:
        """Queue 64-byte host records on ``s_axis_h2c_*``, presented in order, one per beat.

        ``records``: ``bytes`` (a multiple of 64), a sequence of 64-byte ``bytes``, a
        ``uint8`` array of shape (n, 64) or an array of any 64-byte dtype. A record is
        presented (``tvalid``, ``tlast``) from its ``not_before`` cycle (one int for all, or
        one per record) once the previous one was accepted, and held until ``tready``.
        Returns the records' indices since the last reset (into :meth:`h2c_accept_cycles`).
        """
        data = _h2c_records(records)
        n = len(data)
        nb = _per_item(not_before, n, "not_before")
        first = self.h2c_stats().pushed
        if n:
            self._check(self._lib.wh_h2c_push(self._handle, data.ctypes.data, _ptr(nb), n))
        return range(first, first + n)

    def h2c_stats(self) -> H2cStats:
        """H2C records pushed, accepted and pending since the last reset."""
        out = (c_uint64 * 3)()
        self._lib.wh_h2c_stats(self._handle, out)
        return H2cStats(*(int(v) for v in out))

    def h2c_accept_cycles(self, start: int = 0) -> np.ndarray:
        """Cycle of the ``tvalid && tready`` handshake of each H2C record since reset (-1:
        not yet accepted); entry *i* is record ``start + i``."""
        total = self.h2c_stats().pushed
        out = np.empty(max(0, total - start), dtype=np.int64)
        if len(out):
            self._lib.wh_h2c_accepts(self._handle, start, out.ctypes.data, len(out))
        return out

    # -- TX ----------------------------------------------------------------------------------

    def tx_ready(self, ready: float | Sequence[bool | int] = 1.0, *, seed: int = 1) -> None:
        """Set ``m_axis_tx_tready``, as :meth:`c2h_ready` does for C2H (its own generator)."""
        self._set_ready(self._lib.wh_tx_ready, ready, seed)

    def tx_beats(self) -> np.ndarray:
        """TX beats captured since the last call (:data:`TX_BEAT_DTYPE`), in order.

        Beats wait in C++ until fetched (24 bytes each). Includes the beats of a packet whose
        start an earlier :meth:`tx_packets` call kept back.
        """
        h = self._handle
        n = self._lib.wh_tx_pending(h)
        beats = np.empty(n, dtype=TX_BEAT_DTYPE)
        if n:
            self._lib.wh_tx_take(h, beats.ctypes.data, n)
        if len(self._tx_partial):
            held, self._tx_partial = self._tx_partial, self._tx_partial[:0]
            beats = np.concatenate((held, beats)).astype(TX_BEAT_DTYPE)
        return beats

    def tx_packets(self) -> TxPackets:
        """TX packets completed (``tlast`` beat captured) since the last call.

        The beats of a packet still being sent are kept for the next call (or returned by
        :meth:`tx_beats`). Use one of the two per stream: a packet whose first beats went to
        :meth:`tx_beats` comes back here without them.
        """
        packets, self._tx_partial = reassemble_tx(self.tx_beats())
        return packets

    # -- C2H ---------------------------------------------------------------------------------

    def records(self) -> np.ndarray:
        """Event records received since the last call, as ``hw.events.numpy_dtype()``."""
        return self.records_with_cycles()[0]

    def records_with_cycles(self) -> tuple[np.ndarray, np.ndarray]:
        """Records received since the last call and the cycle each was transferred in.

        Records wait in C++ until fetched (72 bytes each): fetch between ``run()`` calls in
        long replays.
        """
        h = self._handle
        n = self._lib.wh_records_pending(h)
        records = np.empty(n, dtype=RECORD_DTYPE)
        cycles = np.empty(n, dtype=np.int64)
        if n:
            self._lib.wh_records_take(h, records.ctypes.data, cycles.ctypes.data, n)
        return records, cycles

    def c2h_ready(self, ready: float | Sequence[bool | int] = 1.0, *, seed: int = 1) -> None:
        """Set ``m_axis_c2h_tready``: a probability per cycle, or a pattern repeated forever.

        A probability draws from a xorshift64* generator seeded with ``seed`` (deterministic);
        1.0 is always ready, 0.0 never. A sequence such as ``[1, 1, 0]`` is replayed cyclically.
        Takes effect from the next cycle; :meth:`reset` restarts the sequence.
        """
        self._set_ready(self._lib.wh_c2h_ready, ready, seed)

    def _set_ready(self, fn: ctypes._CFuncPtr, ready: float | Sequence[bool | int],
                   seed: int) -> None:
        if np.ndim(ready) == 0:
            p = float(ready)  # type: ignore[arg-type]
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"ready probability must be in [0, 1], not {p}")
            mode = _READY_ALWAYS if p == 1.0 else _READY_RANDOM
            status = fn(self._handle, mode, round(p * 2**32), seed & (2**64 - 1), None, 0)
        else:
            pattern = np.ascontiguousarray(ready, dtype=np.bool_).reshape(-1).view(np.uint8)
            if not len(pattern):
                raise ValueError("ready pattern is empty")
            status = fn(self._handle, _READY_PATTERN, 0, 0, pattern.ctypes.data, len(pattern))
        self._check(status)

    # -- AXI4-Lite ---------------------------------------------------------------------------

    def axil_write(self, addr: int, value: int, strb: int = 0xF, *, w_delay: int = 0,
                   timeout: int = 1000) -> None:
        """Write a CSR. ``w_delay`` > 0 presents W that many cycles after AW (< 0: before).

        Raises :class:`AxiLiteError` on a non-OKAY response, :class:`AxiLiteTimeout` after
        ``timeout`` cycles.
        """
        if not (0 <= addr < 1 << 16 and 0 <= value < 1 << 32 and 0 <= strb < 16):
            raise ValueError("addr is 16 bits, value 32 bits, strb 4 bits")
        resp = c_uint32()
        status = self._lib.wh_axil_write(self._handle, addr, value, strb, w_delay, timeout,
                                         ctypes.byref(resp))
        self._axil_done(status, f"write 0x{addr:04x}", resp.value, timeout)

    def axil_read(self, addr: int, *, timeout: int = 1000) -> int:
        """Read a CSR; errors as for :meth:`axil_write`."""
        if not 0 <= addr < 1 << 16:
            raise ValueError("addr is 16 bits")
        data, resp = c_uint32(), c_uint32()
        status = self._lib.wh_axil_read(self._handle, addr, timeout, ctypes.byref(data),
                                        ctypes.byref(resp))
        self._axil_done(status, f"read 0x{addr:04x}", resp.value, timeout)
        return data.value

    def _axil_done(self, status: int, what: str, resp: int, timeout: int) -> None:
        if status == _TIMEOUT:
            self._check(_OK)
            raise AxiLiteTimeout(f"AXI-Lite {what}: no response within {timeout} cycles")
        self._check(status)
        if resp != 0:
            raise AxiLiteError(f"AXI-Lite {what}: {_AXI_RESP[resp]}", resp)

    # -- other ports -------------------------------------------------------------------------

    def _port(self, name: str) -> tuple[int, int, int]:
        try:
            index, nbytes = self._port_index[name]
        except KeyError:
            raise KeyError(f"the design has no port {name!r}") from None
        return index, nbytes, self.ports[name].width

    def peek(self, name: str) -> int:
        """Current value of any top-level port (after the last clock edge)."""
        index, nbytes, width = self._port(name)
        buf = ctypes.create_string_buffer(nbytes)
        self._check(self._lib.wh_peek(self._handle, index, buf))
        return int.from_bytes(buf.raw, "little") & ((1 << width) - 1)

    def poke(self, name: str, value: int) -> None:
        """Set an input the harness does not drive; it keeps the value until poked again."""
        index, nbytes, width = self._port(name)
        if self.ports[name].direction != "in" or name in REQUIRED_PORTS:
            raise ValueError(f"{name} is not an input left to the user")
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name} is {width} bits wide; {value:#x} does not fit")
        self._check(self._lib.wh_poke(self._handle, index, value.to_bytes(nbytes, "little")))
