"""The simulated card: the core's Verilog, as Amaranth emits it, in the Verilator harness.

It is the same Verilog a board would be built from; only the MAC and the DMA engine are
replaced by the harness, which drives frames into the RX lines and collects C2H records.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hw.top import REPO, TOP_NAME, emit_verilog
from sim.harness import Harness


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
             error: np.ndarray | None = None, idle: int = 0) -> None:
        """Queue frames on line 0 (A) or 1 (B); they go out during :meth:`run`."""
        self.harness.push_frames(line, frames, not_before=not_before, error=error, idle=idle)

    def run(self, max_cycles: int | None = None) -> int:
        """Run until every queued frame is in and the core has gone quiet."""
        return self.harness.run(max_cycles=max_cycles)

    @property
    def cycle(self) -> int:
        return self.harness.cycle

    def frame_start_cycles(self, line: int) -> np.ndarray:
        return self.harness.frame_start_cycles(line)
