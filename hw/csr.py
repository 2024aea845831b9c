"""AXI4-Lite CSR slave and the register bank generated from :data:`hw.regmap.REGMAP`.

The bank owns every register's storage and every counter, so the blocks of the core only see
plain signals: ``ro_<name>`` inputs for read-only registers, ``<name>`` outputs for read-write
storage and pulse strobes, and ``inc_<counter>`` inputs that add 0..3 to a counter each cycle
(two lines can bump the same counter in one cycle). No block decodes an address.

Reads take two cycles inside the slave (address decode, then the registered data mux); AXI4-Lite
lets a slave take as long as it likes, and the extra register keeps the wide read mux off the
critical path at 156.25 MHz.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.regmap import ADDR_WIDTH, COUNTER_BITS, REGMAP, Access, RegisterMap

INC_WIDTH = 2


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, from the slave's point of view (``In`` = driven by the master)."""

    def __init__(self, addr_width: int = ADDR_WIDTH, data_width: int = 32):
        super().__init__({
            "awaddr": In(addr_width), "awvalid": In(1), "awready": Out(1),
            "wdata": In(data_width), "wstrb": In(data_width // 8), "wvalid": In(1),
            "wready": Out(1),
            "bresp": Out(2), "bvalid": Out(1), "bready": In(1),
            "araddr": In(addr_width), "arvalid": In(1), "arready": Out(1),
            "rdata": Out(data_width), "rresp": Out(2), "rvalid": Out(1), "rready": In(1),
        })


class CSRBank(wiring.Component):
    """Register storage, counters and the AXI4-Lite slave for a :class:`RegisterMap`.

    Ports (besides ``axil``):

    * ``ro_<reg>`` (In): value of each read-only register (except counter words); a read-only
  pair ``<x>_lo``/``<x>_hi`` is one 64-bit input ``ro_<x>`` whose upper half is latched by
  the ``_lo`` read, like a counter's,
    * ``<reg>`` (Out): storage of each ``rw`` register, strobe of each ``w1p`` register,
    * ``inc_<counter>`` (In(2), or 48 bits for ``wide`` counters): amount added this cycle,
    * ``clear`` (In(1)): zero every counter (the core wires ``ctrl.clear_counters`` here).
    """

    def __init__(self, regmap: RegisterMap = REGMAP):
        self._rm = regmap
        counter_words = {w.name for pair in regmap.counters.values() for w in pair}
        self._counter_words = counter_words
        # Read-only pairs <x>_lo/<x>_hi (not counters) are one 64-bit value, read lo first.
        names = set(regmap.registers)
        self._wide = {n[:-3] for n in names if n.endswith("_lo") and n not in counter_words
                      and n[:-3] + "_hi" in names and regmap[n].access is Access.RO}
        members: dict = {"axil": In(AXI4LiteSignature()), "clear": In(1)}
        for w in sorted(self._wide):
            members[f"ro_{w}"] = In(64)
        for r in regmap.all_registers():
            if r.name in counter_words or r.name[:-3] in self._wide:
                continue
            if r.access is Access.RO:
                members[f"ro_{r.name}"] = In(r.width)
            else:
                members[r.name] = Out(r.width, init=r.reset)
        for name, c in regmap.counter_defs.items():
            # A narrow increment port would silently wrap a larger amount: size it honestly.
            members[f"inc_{name}"] = In(COUNTER_BITS if c.wide else INC_WIDTH)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        rm = self._rm
        bus = self.axil

        # -- counters -----------------------------------------------------------------
        # Increments are registered first: counters lag their events by a cycle, and the
        # 48-bit adders start from flip-flops instead of the end of someone's logic cone.
        counters = {}
        for name in rm.counters:
            c = Signal(COUNTER_BITS, name=f"cnt_{name}")
            inc_in = getattr(self, f"inc_{name}")
            inc = Signal(len(inc_in), name=f"inc_r_{name}")
            m.d.sync += inc.eq(inc_in)
            counters[name] = c
            with m.If(self.clear):
                m.d.sync += [c.eq(0), inc.eq(0)]
            with m.Else():
                m.d.sync += c.eq(c + inc)

        # -- write channel: AW and W may arrive in either order --------------------------
        aw_addr = Signal(ADDR_WIDTH)
        aw_full = Signal()
        w_data = Signal(32)
        w_full = Signal()
        m.d.comb += [bus.awready.eq(~aw_full), bus.wready.eq(~w_full)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_addr.eq(bus.awaddr), aw_full.eq(1)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_data.eq(bus.wdata), w_full.eq(1)]
        do_write = Signal()
        m.d.comb += do_write.eq(aw_full & w_full & ~bus.bvalid)
        with m.If(do_write):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bus.bvalid.eq(1)]
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        m.d.comb += bus.bresp.eq(0)

        for r in rm.all_registers():
            if r.access is Access.RW:
                with m.If(do_write & (aw_addr == r.offset)):
                    m.d.sync += getattr(self, r.name).eq(w_data[:r.width])
            elif r.access is Access.PULSE:
                strobe = getattr(self, r.name)
                m.d.sync += strobe.eq(0)
                with m.If(do_write & (aw_addr == r.offset)):
                    m.d.sync += strobe.eq(w_data[:r.width])

        # -- read channel: decode, then registered mux -------------------------------------
        ar_addr = Signal(ADDR_WIDTH)
        ar_stage = Signal()   # address captured, data mux this cycle
        hi_latch = Signal(32)
        m.d.comb += bus.arready.eq(~ar_stage & ~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [ar_addr.eq(bus.araddr), ar_stage.eq(1)]

        read_value = Signal(32)
        with m.Switch(ar_addr):
            for r in rm.all_registers():
                with m.Case(r.offset):
                    if r.name in self._counter_words:
                        cname, half = r.name[:-3], r.name[-2:]
                        if half == "lo":
                            m.d.comb += read_value.eq(counters[cname][:32])
                        else:
                            m.d.comb += read_value.eq(hi_latch)
                    elif r.name[:-3] in self._wide:
                        value = getattr(self, f"ro_{r.name[:-3]}")
                        if r.name.endswith("_lo"):
                            m.d.comb += read_value.eq(value[:32])
                        else:
                            m.d.comb += read_value.eq(hi_latch)
                    elif r.access is Access.RO:
                        m.d.comb += read_value.eq(getattr(self, f"ro_{r.name}"))
                    elif r.access is Access.RW:
                        m.d.comb += read_value.eq(getattr(self, r.name))
                    # PULSE registers read as zero
            with m.Default():
                m.d.comb += read_value.eq(Const(0xDEADC0DE, 32))

        with m.If(ar_stage):
            m.d.sync += [bus.rdata.eq(read_value), bus.rvalid.eq(1), ar_stage.eq(0)]
            # Latch the upper counter bits on any _lo read, for the _hi read that follows.
            with m.Switch(ar_addr):
                for cname, (lo, _hi) in rm.counters.items():
                    with m.Case(lo.offset):
                        m.d.sync += hi_latch.eq(counters[cname][32:])
                for w in sorted(self._wide):
                    with m.Case(rm[w + "_lo"].offset):
                        m.d.sync += hi_latch.eq(getattr(self, f"ro_{w}")[32:])
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        m.d.comb += bus.rresp.eq(0)
        return m


def identity_values(*, git_rev: int, build_time: int, dirty: bool, clock_khz: int,
                    params: int) -> dict[str, int]:
    """Values of the identity block's read-only registers."""
    from hw.regmap import MAGIC, REGMAP_VERSION
    return {
        "id_magic": MAGIC,
        "id_regmap_version": (REGMAP_VERSION[0] << 16) | REGMAP_VERSION[1],
        "id_regmap_hash": REGMAP.hash,
        "id_git_rev": git_rev,
        "id_build_time": build_time,
        "id_flags": int(dirty),
        "id_clock_khz": clock_khz,
        "id_params": params,
    }


__all__ = ["AXI4LiteSignature", "CSRBank", "identity_values"]
