"""Why a frame was dropped. One enum for the gateware, the reference model and the host."""

from __future__ import annotations

import enum

from proto import itch


class DropReason(enum.IntEnum):
    """Reasons, in the order of docs/ingress.md. Value 0 means "not dropped"."""

    NONE = 0
    RUNT = 1
    ETHERTYPE = 2
    IPV4_HEADER = 3
    IPV4_CHECKSUM = 4
    IPV4_LENGTH = 5
    FRAGMENT = 6
    IP_PROTOCOL = 7
    UDP_LENGTH = 8
    FILTERED = 9
    MOLD_HEADER = 10
    MOLD_COUNT = 11
    MAC_ERROR = 12
    TRUNCATED = 13
    OVERSIZE = 14
    MSG_LENGTH = 15
    MOLD_OVERRUN = 16
    OVERFLOW = 17

    @property
    def counter(self) -> str:
        """Name of the CSR counter that counts this reason."""
        return "drop_" + self.name.lower()


#: Reasons that are counted (everything but NONE), in register-map order.
COUNTED = tuple(r for r in DropReason if r is not DropReason.NONE)

#: Design bounds of the framing walk (docs/ingress.md, section 2).
MIN_MESSAGE = itch.MIN_LENGTH  # 12; guarantees at most one message completes per bus beat
MAX_MESSAGE = 64   # message buffer; ITCH 5.0's longest is 50
MAX_FRAME = 9216   # jumbo frames; beyond this a frame is OVERSIZE
