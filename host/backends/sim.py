"""The simulated card: the core's Verilog, as Amaranth emits it, in the Verilator harness.

It is the same Verilog a board would be built from; only the MAC, the TCP engine and the DMA
engine are replaced by the harness, which drives frames into the RX lines, the exchange's
replies into order-entry RX and host orders into H2C, and collects C2H records and the
order-entry TX byte stream (docs/harness.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from hw.top import REPO, TOP_NAME, emit_verilog
from sim.harness import Harness, TxPackets


class SimCard:
    """Backend for :class:`host.card.Card` plus the stimulus side of the simulation."""

    def __init__(self, *, verilog: Path | None = None, trace: str | None = None,
                 build_dir: Path | None = None):
        if verilog is None:
            verilog = emit_verilog(REPO / "build" / f"{TOP_NAME}.v")
        kwargs = {"top": TOP_NAME, "trace": trace}
        if build_dir is not None:
            kwargs["build_dir"] = build_dir
        self.harness = Harness(verilog, **kwargs)
        self.harness.reset()

    # -- Backend protocol -------------------------------------------------------------------
    def read32(self, addr: int) -> int:
        return self.harness.axil_read(addr)

    def write32(self, addr: int, value: int) -> None:
        self.harness.axil_write(addr, value)

    def records(self) -> np.ndarray:
        return self.harness.records()

    # -- stimulus ---------------------------------------------------------------------------
    def send(self, line: int, frames: Sequence[bytes], *, not_before: np.ndarray | None = None,
             error: np.ndarray | None = None, idle: int = 0) -> range:
        """Queue frames on line 0 (A) or 1 (B); they go out during :meth:`run`. Returns their
        indices since reset, into :meth:`frame_start_cycles`."""
        return self.harness.push_frames(line, frames, not_before=not_before, error=error,
                                        idle=idle)

    def send_h2c(self, records: bytes | Sequence[bytes] | np.ndarray,
                 not_before: int | ArrayLike | None = None) -> range:
        """Queue host order records (64 bytes each) on H2C; they go out during :meth:`run`.

        ``records`` is ``bytes`` (a multiple of 64), a sequence of 64-byte ``bytes`` or an
        array of 64-byte records. Each is presented from its ``not_before`` cycle (one int
        for all, or one per record) once the previous one was taken, and held until the core's
        ``s_axis_h2c_tready``. Returns the records' indices since reset, into
        :meth:`h2c_accept_cycles`.
        """
        return self.harness.push_h2c(records, not_before=not_before)

    def send_oe_rx(self, chunks: bytes | Sequence[bytes],
                   not_before: int | ArrayLike | None = None, idle: int | ArrayLike = 0) -> range:
        """Queue the exchange's replies (SoupBinTCP/OUCH bytes) on order-entry RX.

        Each chunk (a single ``bytes`` is one chunk) goes out as 8-byte beats, one per cycle,
        ``tlast`` on its last beat, from its ``not_before`` cycle on and back to back with the
        previous chunk unless ``idle`` says otherwise. Returns the chunks' indices since reset,
        into :meth:`oe_rx_start_cycles`.
        """
        return self.harness.push_oe_rx(chunks, not_before=not_before, idle=idle)

    def tx_ready(self, ready: float | Sequence[bool | int] = 1.0, *, seed: int = 1) -> None:
        """Order-entry TX backpressure: ``m_axis_tx_tready`` as a probability per cycle or a
        repeated pattern (always ready by default)."""
        self.harness.tx_ready(ready, seed=seed)

    def tx_beats(self) -> np.ndarray:
        """Order-entry TX beats captured since the last call (``sim.harness.TX_BEAT_DTYPE``:
        cycle, tdata, tkeep, tlast)."""
        return self.harness.tx_beats()

    def tx_packets(self) -> TxPackets:
        """Order-entry TX packets (SoupBinTCP packets, split at ``tlast``) completed since the
        last call: a sequence of ``(first_cycle, last_cycle, data)`` — the cycles of the beats
        carrying the packet's first and last byte — with the same as arrays
        (``first_cycles``, ...). A packet still being sent is kept for the next call. Use this
        or :meth:`tx_beats`, not both."""
        return self.harness.tx_packets()

    def run(self, max_cycles: int | None = None, *, stop: bool = False) -> int:
        """Run until every queued frame, chunk and H2C record is in and the core has gone
        quiet (no C2H record or TX beat waiting). An H2C record the core never takes keeps it
        running: pass ``max_cycles`` when that can happen. With ``stop``, also end after the
        cycle of an event chosen by :meth:`stop_on` (:attr:`stopped` says so)."""
        return self.harness.run(max_cycles=max_cycles, stop=stop)

    def stop_on(self, *, tx_packet: bool = False, record_kinds=()) -> None:
        """The events that end ``run(stop=True)``: a TX packet's last beat, a C2H record of one
        of ``record_kinds`` (:meth:`sim.harness.Harness.stop_on`)."""
        self.harness.stop_on(tx_packet=tx_packet, record_kinds=record_kinds)

    @property
    def stopped(self) -> bool:
        """The last :meth:`run` ended on a stop event."""
        return self.harness.stopped

    @property
    def cycle(self) -> int:
        return self.harness.cycle

    def frame_start_cycles(self, line: int) -> np.ndarray:
        return self.harness.frame_start_cycles(line)

    def oe_rx_start_cycles(self) -> np.ndarray:
        """Cycle of the first beat of each order-entry RX chunk since reset (-1: not yet)."""
        return self.harness.oe_rx_start_cycles()

    def h2c_accept_cycles(self) -> np.ndarray:
        """Cycle in which the core took each H2C record since reset (-1: not yet)."""
        return self.harness.h2c_accept_cycles()
