"""The register map: defined once, here, next to the gateware.

Everything that knows an address is generated from :data:`REGMAP`:

* the CSR bank in gateware (:mod:`hw.csr`),
* the host accessors (:mod:`host.regs`),
* ``docs/regmap.md``, ``build/regmap/wirespeed_regs.h`` and ``.json``
  (``python -m hw.regmap``).

Addresses are assigned by position, block by block, so no address is ever written by hand. The
map's identity is a hash of its canonical JSON; the card reports it in ``ID_REGMAP_HASH`` and the
host refuses to drive a card whose hash it does not know (a stale bitstream, or a host library
from another revision, would otherwise poke the wrong registers).

Counters are 48 bits wide — a day of the busiest feed at full line rate stays far below 2^48 —
and count modulo 2^48 (``gap_messages`` can be asked to add a corrupt sequence number's jump
of 2^63); each occupies two words: reading ``_LO`` snapshots the upper 16 bits into a latch that the
following ``_HI`` read returns, so a 32-bit host reads a consistent 48-bit value.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from hw.events import EventKind
from hw.ingress.reasons import COUNTED
from hw.oe.returnpath import COUNTER_WIDTHS as OE_COUNTER_WIDTHS
from hw.oe.returnpath import COUNTERS as OE_COUNTERS
from hw.risk.params import Reason
from proto import itch

#: Bump the major version on any incompatible change; the hash catches the rest.
REGMAP_VERSION = (0, 2)
MAGIC = 0x57535044  # "WSPD"
COUNTER_BITS = 48
ADDR_WIDTH = 16


class Access(enum.Enum):
    RO = "ro"     #: read-only, driven by the gateware
    RW = "rw"     #: read-write storage
    PULSE = "w1p"  #: write-1-to-pulse: each 1 bit written is a one-cycle strobe


@dataclass(frozen=True)
class BitField:
    name: str
    lsb: int
    width: int
    doc: str


@dataclass(frozen=True)
class Register:
    name: str
    access: Access
    doc: str
    width: int = 32
    reset: int = 0
    fields: tuple[BitField, ...] = ()
    offset: int = -1  # assigned by RegisterMap

    @property
    def address(self) -> int:
        return self.offset


@dataclass(frozen=True)
class Counter:
    name: str
    doc: str
    #: Incremented by arbitrary amounts (a gap's size), not by 0..3 a cycle.
    wide: bool = False


@dataclass
class Block:
    name: str
    base: int
    doc: str
    registers: list[Register] = field(default_factory=list)
    counters: list[Counter] = field(default_factory=list)


class RegisterMap:
    """Blocks of registers with addresses assigned in declaration order."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.registers: dict[str, Register] = {}
        self.counters: dict[str, tuple[Register, Register]] = {}
        self.counter_defs: dict[str, Counter] = {}
        taken: dict[int, str] = {}
        for b in blocks:
            addr = b.base
            regs = list(b.registers)
            for c in b.counters:
                regs.append(Register(c.name + "_lo", Access.RO, c.doc + " (bits 31:0; "
                                     "reading it latches bits 47:32 for the _hi read)"))
                regs.append(Register(c.name + "_hi", Access.RO, c.doc + " (bits 47:32, "
                                     "as latched by the _lo read)", width=16))
            placed = []
            for r in regs:
                r = Register(r.name, r.access, r.doc, r.width, r.reset, r.fields, addr)
                if r.name in self.registers:
                    raise ValueError(f"duplicate register name {r.name}")
                if addr in taken:
                    raise ValueError(f"{r.name} overlaps {taken[addr]} at {addr:#x}")
                taken[addr] = r.name
                self.registers[r.name] = r
                placed.append(r)
                addr += 4
            b.registers = [r for r in placed if not r.name.endswith(("_lo", "_hi"))
                           or r.name[:-3] not in {c.name for c in b.counters}]
            for c in b.counters:
                self.counter_defs[c.name] = c
                self.counters[c.name] = (self.registers[c.name + "_lo"],
                                         self.registers[c.name + "_hi"])
            if addr - b.base > 0x1000:
                raise ValueError(f"block {b.name} overflows its 4 KiB window")
        if max(taken) >= 1 << ADDR_WIDTH:
            raise ValueError("register map exceeds the AXI-Lite address space")

    def __getitem__(self, name: str) -> Register:
        return self.registers[name]

    def all_registers(self) -> Iterator[Register]:
        return iter(sorted(self.registers.values(), key=lambda r: r.offset))

    # -- identity ---------------------------------------------------------------------
    def canonical(self) -> dict:
        return {
            "version": list(REGMAP_VERSION),
            "counter_bits": COUNTER_BITS,
            "registers": [
                {"name": r.name, "address": r.offset, "access": r.access.value,
                 "width": r.width, "reset": r.reset,
                 "fields": [[f.name, f.lsb, f.width] for f in r.fields]}
                for r in self.all_registers()
            ],
            "counters": sorted(self.counters),
        }

    @property
    def hash(self) -> int:
        """32-bit identity of the map (first 4 bytes of SHA-256 of the canonical JSON)."""
        blob = json.dumps(self.canonical(), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big")


def _event_mask_fields() -> tuple[BitField, ...]:
    return tuple(BitField(k.name.lower(), k.value, 1, f"send {k.name} events")
                 for k in EventKind)


#: Events on by default: everything but the per-message tap.
EVENT_MASK_RESET = sum(1 << k.value for k in EventKind if k is not EventKind.MESSAGE)

N_FILTERS = 8


def _build() -> RegisterMap:
    ident = Block("identity", 0x0000, "Read first: what this card is and how it was built.", [
        Register("id_magic", Access.RO, "Constant 0x57535044 ('WSPD')."),
        Register("id_regmap_version", Access.RO, "Register map version: major<<16 + minor."),
        Register("id_regmap_hash", Access.RO, "Hash of this register map (see hw/regmap.py)."),
        Register("id_git_rev", Access.RO, "First 8 hex digits of the source git revision."),
        Register("id_build_time", Access.RO,
                 "Commit time of the source revision (Unix seconds); deterministic builds."),
        Register("id_flags", Access.RO, "Build flags.", fields=(
            BitField("dirty", 0, 1, "built from a tree with uncommitted changes"),)),
        Register("id_clock_khz", Access.RO, "Core clock the design was built for (kHz)."),
        Register("id_params", Access.RO, "Design parameters.", fields=(
            BitField("filters", 0, 8, "destination filter entries"),
            BitField("fifo_depth", 8, 8, "entries per line FIFO"),
            BitField("max_message", 16, 8, "longest accepted message (bytes)"),
            BitField("record_bytes", 24, 8, "event record size (bytes)"))),
        Register("id_book_params", Access.RO, "Book design parameters (docs/book.md).", fields=(
            BitField("slots", 0, 8, "symbols subscribed at once"),
            BitField("ways", 8, 8, "order table associativity"),
            BitField("sets_log2", 16, 8, "log2 of the order table sets"),
            BitField("window_log2", 24, 8, "log2 of the price levels per side"))),
        Register("id_book_tick", Access.RO, "Price step of a level (ITCH units)."),
    ])
    ctrl = Block("control", 0x0100, "Global control, time and sequencer state.", [
        Register("ctrl", Access.PULSE, "Strobes.", fields=(
            BitField("clear_counters", 0, 1, "zero every counter"),
            BitField("seq_reset", 1, 1,
                     "forget session and expected sequence number; the next packet locks"),
        )),
        Register("event_mask", Access.RW, "Event classes sent to the host (bit = EventKind).",
                 reset=EVENT_MASK_RESET, fields=_event_mask_fields()),
        Register("time_lo", Access.RO, "Cycle counter bits 31:0 (latches 63:32)."),
        Register("time_hi", Access.RO, "Cycle counter bits 63:32, as latched by time_lo."),
        Register("seq_status", Access.RO, "Sequencer state.", fields=(
            BitField("locked", 0, 1, "a session is locked"),
            BitField("ended", 1, 1, "end-of-session seen"))),
        Register("seq_expected_lo", Access.RO,
                 "Next expected sequence number bits 31:0 (latches 63:32)."),
        Register("seq_expected_hi", Access.RO, "Next expected sequence number bits 63:32."),
        Register("seq_session_0", Access.RO, "Locked session bytes 0-3 (byte 0 in bits 31:24)."),
        Register("seq_session_1", Access.RO, "Locked session bytes 4-7."),
        Register("seq_session_2", Access.RO, "Locked session bytes 8-9 in bits 31:16."),
        Register("fifo_a_max", Access.RO, "High-water mark of line A's entry FIFO."),
        Register("fifo_b_max", Access.RO, "High-water mark of line B's entry FIFO."),
    ])
    filt_regs = []
    for i in range(N_FILTERS):
        filt_regs.append(Register(f"filter{i}_ip", Access.RW,
                                  f"Filter entry {i}: destination IPv4 address."))
        filt_regs.append(Register(f"filter{i}_port", Access.RW,
                                  f"Filter entry {i}: destination UDP port and enable.", fields=(
                                      BitField("port", 0, 16, "UDP destination port"),
                                      BitField("enable", 31, 1, "entry is live"))))
    filt = Block("filter", 0x0200, "Destination filter: the feeds (group:port) this card "
                 "accepts. A frame matching no enabled entry is dropped as FILTERED.",
                 filt_regs)

    book = Block("book", 0x0400, "Subscriptions and the books (docs/book.md). Write the sub_* "
                 "registers, then book_cmd.subscribe; the slot_* registers show slot sub_slot.", [
        Register("book_cmd", Access.PULSE, "Book commands.", fields=(
            BitField("subscribe", 0, 1, "(re)subscribe slot sub_slot: name, locate, base"),
            BitField("unsubscribe", 1, 1, "free slot sub_slot"),
            BitField("reset", 2, 1, "empty the order table and every slot's book"))),
        Register("sub_slot", Access.RW, "Slot that book_cmd and the slot_* registers name."),
        Register("sub_name_hi", Access.RW, "Symbol bytes 0-3 (byte 0 in bits 31:24), "
                 "space padded."),
        Register("sub_name_lo", Access.RW, "Symbol bytes 4-7 (byte 4 in bits 31:24)."),
        Register("sub_locate", Access.RW, "Stock locate for a direct subscription.", fields=(
            BitField("locate", 0, 16, "the locate"),
            BitField("direct", 16, 1, "use it; else wait for the directory (R)"))),
        Register("sub_base", Access.RW, "Window base price (ITCH units); 0: from the first "
                 "held add."),
        Register("book_status", Access.RO, "Book engine state.", fields=(
            BitField("busy", 0, 1, "clearing after subscribe or reset"),)),
        Register("book_fifo_max", Access.RO, "High-water mark of the book operation FIFO."),
        Register("slot_status", Access.RO, "State of slot sub_slot.", fields=(
            BitField("active", 0, 1, "subscribed"),
            BitField("locate_known", 1, 1, "locate known (directory or direct)"),
            BitField("stale", 8, 8, "stale reasons: bit r-1 for AlertReason r"))),
        Register("slot_locate", Access.RO, "Locate of slot sub_slot."),
        Register("slot_base", Access.RO, "Window base price of slot sub_slot."),
        Register("slot_bid_px", Access.RO, "Best bid price of slot sub_slot (0: empty)."),
        Register("slot_bid_sz", Access.RO, "Best bid size of slot sub_slot."),
        Register("slot_ask_px", Access.RO, "Best ask price of slot sub_slot (0: empty)."),
        Register("slot_ask_sz", Access.RO, "Best ask size of slot sub_slot."),
        Register("slot_last_px", Access.RO, "Last trade price of slot sub_slot."),
        Register("slot_last_sz", Access.RO, "Last trade size of slot sub_slot."),
        Register("slot_volume_lo", Access.RO, "Traded volume of slot sub_slot, bits 31:0 "
                 "(latches 63:32)."),
        Register("slot_volume_hi", Access.RO, "Traded volume bits 63:32."),
        Register("slot_notional_lo", Access.RO, "Traded notional (price units x shares) of "
                 "slot sub_slot, bits 31:0 (latches 63:32)."),
        Register("slot_notional_hi", Access.RO, "Traded notional bits 63:32."),
    ])

    risk = Block("risk", 0x0500, "Pre-trade risk gate (docs/risk.md). Write the lim_* "
                 "registers for symbol lim_slot, then risk_cmd.store; glob_* then "
                 "risk_cmd.glob_store; risk_cmd.commit makes both live at once. The view_* "
                 "registers show symbol lim_slot.", [
        Register("risk_cmd", Access.PULSE, "Risk gate commands.", fields=(
            BitField("store", 0, 1, "lim_* into the shadow table at lim_slot"),
            BitField("glob_store", 1, 1, "glob_* into the shadow global set"),
            BitField("commit", 2, 1, "swap the shadow and the live limits (atomic)"),
            BitField("clear_error", 3, 1, "clear risk_status.store_error"),
            BitField("pos_write", 4, 1, "set the position of lim_slot to pos_value"),
            BitField("md_clear", 5, 1, "the host has dealt with a feed gap: clear it"))),
        Register("kill", Access.RW, "Kill switches (take effect on the next cycle).", fields=(
            BitField("all", 0, 1, "reject every new order"),)),
        Register("kill_slots_lo", Access.RW, "Per-symbol kill switches, slots 0-31."),
        Register("kill_slots_hi", Access.RW, "Per-symbol kill switches, slots 32-63."),
        Register("lim_slot", Access.RW, "Symbol slot of lim_*, pos_write and view_*."),
        Register("lim_ctrl", Access.RW, "Symbol limits: enable and collar.", fields=(
            BitField("enable", 0, 1, "the symbol may trade"),
            BitField("collar_mode", 1, 2, "0 off, 1 ticks, 2 basis points"),
            BitField("collar", 16, 16, "collar width (ticks or basis points)"))),
        Register("lim_max_shares", Access.RW, "Maximum shares per order."),
        Register("lim_max_notional_lo", Access.RW, "Maximum shares x price, bits 31:0."),
        Register("lim_max_notional_hi", Access.RW, "Maximum shares x price, bits 63:32."),
        Register("lim_ref_px", Access.RW, "Reference price when the book has no mid (0: none)."),
        Register("lim_max_long", Access.RW, "Long limit: position + open buys (shares)."),
        Register("lim_max_short", Access.RW, "Short limit: open sells - position (shares)."),
        Register("glob_max_open", Access.RW, "Open orders at most."),
        Register("glob_rate_period", Access.RW, "Cycles per throttle token (0: no throttle)."),
        Register("glob_rate_burst", Access.RW, "Throttle bucket capacity."),
        Register("glob_max_age", Access.RW, "BBO age limit in cycles (0: none)."),
        Register("pos_value_lo", Access.RW, "Start-of-day position (signed 48 bits), 31:0."),
        Register("pos_value_hi", Access.RW, "Start-of-day position, bits 47:32 (sign)."),
        Register("risk_status", Access.RO, "Risk gate state.", fields=(
            BitField("busy", 0, 1, "copying after a commit: stores and commits refused"),
            BitField("store_error", 1, 1, "a store or commit was refused (sticky)"),
            BitField("bank", 2, 1, "the live bank"),
            BitField("gap_pending", 3, 1, "a feed gap rejects orders until md_clear"))),
        Register("risk_open_orders", Access.RO, "Orders open (accepted, not yet done)."),
        Register("risk_bucket", Access.RO, "Throttle tokens available."),
        Register("view_position_lo", Access.RO, "Position of lim_slot (signed), 31:0."),
        Register("view_position_hi", Access.RO, "Position of lim_slot, bits 63:32."),
        Register("view_open_buy_lo", Access.RO, "Open buy shares of lim_slot, 31:0."),
        Register("view_open_buy_hi", Access.RO, "Open buy shares of lim_slot, 63:32."),
        Register("view_open_sell_lo", Access.RO, "Open sell shares of lim_slot, 31:0."),
        Register("view_open_sell_hi", Access.RO, "Open sell shares of lim_slot, 63:32."),
    ])
    trig = Block("triggers", 0x0600, "On-card triggers (docs/orderentry.md): set trig_*, "
                 "then trig_cmd.arm.", [
        Register("trig_cmd", Access.PULSE, "Trigger commands for trig_slot.", fields=(
            BitField("arm", 0, 1, "arm with trig_side/price/shares/tif"),
            BitField("disarm", 1, 1, "disarm"))),
        Register("trig_slot", Access.RW, "Symbol slot of the trigger."),
        Register("trig_side", Access.RW, "0: buy when ask <= price; 1: sell when bid >= price."),
        Register("trig_price", Access.RW, "Threshold and limit price (ITCH units)."),
        Register("trig_shares", Access.RW, "Order size."),
        Register("trig_tif", Access.RW, "Time in force (seconds; 0 immediate or cancel)."),
        Register("trig_armed_lo", Access.RO, "Armed bits, slots 0-31."),
        Register("trig_armed_hi", Access.RO, "Armed bits, slots 32-63."),
    ])
    oe = Block("order_entry", 0x0700, "Order entry (docs/orderentry.md).", [
        Register("oe_firm", Access.RW, "OUCH firm identifier, 4 characters (first in 31:24); "
                 "spaces after reset, so no order ever carries a non-printable firm.",
                 reset=0x2020_2020),
        Register("oe_cmd", Access.PULSE, "Order-entry commands.", fields=(
            BitField("restart", 0, 1, "a new TCP connection: the return stream restarts"),)),
        Register("oe_status", Access.RO, "Order-entry state.", fields=(
            BitField("space", 0, 8, "orders the TX queue can still take"),)),
    ])

    counters = [
        Counter("frames", "Frames received on both lines"),
        Counter("frames_dropped", "Frames dropped or found bad, for any reason"),
        Counter("line_a_frames", "Frames received on line A"),
        Counter("line_b_frames", "Frames received on line B"),
        Counter("line_a_dropped", "Frames dropped or found bad on line A"),
        Counter("line_b_dropped", "Frames dropped or found bad on line B"),
        Counter("mold_packets", "Good MoldUDP64 packets (both lines)"),
    ]
    counters += [Counter(r.counter, f"Frames dropped: {r.name}") for r in COUNTED]
    counters += [
        Counter("messages", "Messages delivered downstream (each sequence number once)"),
        Counter("duplicates", "Messages dropped as duplicate or old"),
        Counter("gaps", "Forward jumps in sequence numbers"),
        Counter("gap_messages", "Sequence numbers skipped by gaps", wide=True),
        Counter("heartbeats", "MoldUDP64 heartbeats"),
        Counter("end_of_session", "MoldUDP64 end-of-session packets"),
        Counter("session_mismatch", "Packets of a session other than the locked one"),
        Counter("invalidations", "Frames found bad after some of their messages left"),
        Counter("invalidated_messages", "Messages named in invalidation events", wide=True),
        Counter("line_a_won", "Messages delivered from line A"),
        Counter("line_b_won", "Messages delivered from line B"),
    ]
    counters += [Counter(f"itch_{m.name}", f"Delivered ITCH '{code}' ({m.name}) messages")
                 for code, m in ((c, itch.MESSAGES[c]) for c in itch.TYPE_CODES)]
    counters += [
        Counter("itch_unknown", "Delivered messages whose type byte is no ITCH 5.0 type"),
        Counter("itch_bad_length", "Delivered messages whose length is not their type's"),
        Counter("directory_matches", "Stock directory messages that gave a slot its locate"),
        Counter("book_ops", "Messages the book engine applied (A F E C X D U P Q)"),
        Counter("book_unknown_ref", "E C X D U naming an order the table does not hold"),
        Counter("book_zero_add", "Adds with zero shares or zero price (ignored)"),
        Counter("book_add_live_ref", "Adds onto a held reference (the old order replaced)"),
        Counter("book_clamped", "Executes or cancels for more shares than remained"),
        Counter("book_capacity", "Adds refused: every way of their set live"),
        Counter("book_window", "Adds outside their slot's price window"),
        Counter("book_level_overflow", "Adds that saturated a level at 2^32-1"),
        Counter("book_ref_range", "Adds with an order reference of 2^40 or more"),
        Counter("book_fifo_overflow", "Book operations lost: the op FIFO was full"),
        Counter("book_walks", "Best levels emptied (the next level moves up at once)"),
        Counter("bbo_updates", "BBO changes (BBO events raised)"),
        Counter("trades", "Trades on subscribed slots (TRADE events raised)"),
        Counter("risk_verdicts", "Orders presented to the risk gate (one verdict each)"),
        *[Counter(f"risk_{r.name.lower()}", f"Risk verdicts {r.name}")
          for r in Reason],
        Counter("trig_fired", "Triggers fired (orders made on the card)"),
        Counter("h2c_orders", "Host orders taken from the H2C stream"),
        Counter("h2c_bad", "H2C records refused (bad magic, slot or kind)"),
        Counter("tx_orders", "OUCH enter orders sent on TX"),
        Counter("tx_cancels", "OUCH cancels sent on TX"),
        Counter("tx_overflow", "Accepted orders the TX queue could not take (should never "
                "happen: the risk gate rejects EGRESS_FULL instead)"),
        *[Counter(f"oe_{c}", f"Order-entry return path: {c.replace('_', ' ')}",
                  wide=OE_COUNTER_WIDTHS[c] > 2) for c in OE_COUNTERS],
        # Up to one event per source per cycle: more than the default 2-bit increment.
        Counter("events", "Event records generated (sent or lost)", wide=True),
        Counter("events_lost", "Event records lost: host ring full, a source FIFO full, or "
                "an undeclared kind", wide=True),
        Counter("events_undeclared", "Events of a kind their source does not declare (a "
                "wiring bug; also counted in events_lost)", wide=True),
    ]
    cnt = Block("counters", 0x1000, "48-bit counters, cleared by ctrl.clear_counters.",
                counters=counters)
    return RegisterMap([ident, ctrl, filt, book, risk, trig, oe, cnt])


REGMAP = _build()


# -- generated artifacts -------------------------------------------------------------------

def to_markdown(rm: RegisterMap = REGMAP) -> str:
    out = [
        "# Register map",
        "",
        "Generated by `python -m hw.regmap` from `hw/regmap.py` — do not edit by hand.",
        "",
        f"Version {REGMAP_VERSION[0]}.{REGMAP_VERSION[1]}, hash `{rm.hash:#010x}`. "
        "AXI4-Lite, 32-bit data, byte addresses. Access: `ro` read-only, `rw` read-write, "
        "`w1p` write 1 to pulse. Counters are 48 bits: read `_lo` first (it latches the upper "
        "bits), then `_hi`. `wirespeed replay --json` reports counters by the names below "
        "(without `_lo`/`_hi`).",
        "",
    ]
    for b in rm.blocks:
        out += [f"## {b.name} (base {b.base:#06x})", "", b.doc, ""]
        if b.registers:
            out += ["| address | name | access | reset | description |",
                    "|---|---|---|---|---|"]
            for r in b.registers:
                desc = r.doc
                if r.fields:
                    desc += " " + "; ".join(
                        f"`{f.name}` [{f.lsb + f.width - 1}:{f.lsb}] {f.doc}"
                        if f.width > 1 else f"`{f.name}` [{f.lsb}] {f.doc}" for f in r.fields)
                desc = desc.replace("|", "\\|")
                out.append(f"| `{r.offset:#06x}` | `{r.name}` | {r.access.value} | "
                           f"`{r.reset:#x}` | {desc} |")
            out.append("")
        if b.counters:
            out += ["| address (lo, hi) | counter | description |", "|---|---|---|"]
            for c in b.counters:
                lo, hi = rm.counters[c.name]
                out.append(f"| `{lo.offset:#06x}`, `{hi.offset:#06x}` | `{c.name}` | {c.doc} |")
            out.append("")
    return "\n".join(out)


def to_c_header(rm: RegisterMap = REGMAP) -> str:
    out = [
        "/* wirespeed register map — generated by `python -m hw.regmap`; do not edit. */",
        "#ifndef WIRESPEED_REGS_H", "#define WIRESPEED_REGS_H", "",
        f"#define WS_MAGIC 0x{MAGIC:08X}u",
        f"#define WS_REGMAP_VERSION 0x{REGMAP_VERSION[0]:04X}{REGMAP_VERSION[1]:04X}u",
        f"#define WS_REGMAP_HASH 0x{rm.hash:08X}u", "",
    ]
    for r in rm.all_registers():
        n = r.name.upper()
        out.append(f"#define WS_REG_{n} 0x{r.offset:04X}u /* {r.access.value} */")
        for f in r.fields:
            out.append(f"#define WS_REG_{n}_{f.name.upper()}_SHIFT {f.lsb}u")
            out.append(f"#define WS_REG_{n}_{f.name.upper()}_MASK 0x{(1 << f.width) - 1:X}u")
    out += ["", "#endif /* WIRESPEED_REGS_H */", ""]
    return "\n".join(out)


def to_json(rm: RegisterMap = REGMAP) -> str:
    d = rm.canonical()
    d["hash"] = rm.hash
    d["magic"] = MAGIC
    for r, reg in zip(d["registers"], rm.all_registers(), strict=True):
        r["doc"] = reg.doc
    return json.dumps(d, indent=2) + "\n"


def write_artifacts(root) -> list:
    """Write docs/regmap.md and build/regmap/wirespeed_regs.{h,json} below ``root``."""
    from pathlib import Path
    root = Path(root)
    (root / "build" / "regmap").mkdir(parents=True, exist_ok=True)
    paths = [(root / "docs" / "regmap.md", to_markdown()),
             (root / "build" / "regmap" / "wirespeed_regs.h", to_c_header()),
             (root / "build" / "regmap" / "wirespeed_regs.json", to_json())]
    for p, text in paths:
        p.write_text(text)
    return [p for p, _ in paths]


if __name__ == "__main__":
    from pathlib import Path
    for p in write_artifacts(Path(__file__).resolve().parent.parent):
        print(p)
