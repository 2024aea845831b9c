"""AXI4-Lite CSR slave and the register bank generated from :data:`hw.regmap.REGMAP`.

The bank owns every register's storage and every counter, so the blocks of the core only see
plain signals: ``ro_<name>`` inputs for read-only registers, ``<name>`` outputs for read-write
storage and pulse strobes, and ``inc_<counter>`` inputs that add 0..3 to a counter each cycle
(two lines can bump the same counter in one cycle). No block decodes an address.

Counters live in block RAM. The core's 122 counters of 48 bits in flip-flops, each with its own
adder and a word of the read multiplexer, were a fifth of the placed core on the ECP5-85F, and
the multiplexer gathered bits from all over the die. Now:

* each counter has a small **pre-counter** in flip-flops that takes its increments;
* a **scanner** visits one counter per cycle, reads its 48-bit total from the RAM, and writes
  back total + pre-counter (read address i while writing i - 1: the two ports of the RAM),
  restarting the pre-counter from the cycle's increment. A round is ``n`` cycles, so a
  pre-counter holds at most 3n: :attr:`CSRBank.pre_bits` is sized from that;
* a second copy of the RAM takes the same writes and serves the host: a read returns RAM +
  pre-counter + the scanner's in-flight amount for that counter, which is the exact count at
  the cycle the read was taken. No increment is lost or counted twice (``tests/test_csr.py``
  checks every read against a cycle-exact model, at 3 per cycle on every counter).

Counters with wide increments (``Counter.wide``: a gap's size, events per cycle) would need a
wide pre-counter, so the few of them stay in flip-flops.

A clear (or reset) zeroes the pre-counters at once and the RAM in one round: for the next ``n``
cycles the scanner writes the pre-counter alone, ignoring the old total. Reads wait for that
round to end (``n`` cycles: 122, about 2 µs at 60 MHz), so a read never sees a half-cleared
bank.

Reads take three cycles inside the slave (address decode and RAM read, then the add or the
registered mux, then the response); AXI4-Lite lets a slave take as long as it likes.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.lib.select import any_of, one_hot_or
from hw.regmap import ADDR_WIDTH, COUNTER_BITS, REGMAP, Access, RegisterMap

INC_WIDTH = 2
#: Counters (and registers) per group of the registered selections and read multiplexer.
GROUP = 16


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

    A read returns a counter's value as of two cycles before the cycle it samples it: the
    increment is registered, then counted.
    """

    def __init__(self, regmap: RegisterMap = REGMAP):
        self._rm = regmap
        counter_words = {w.name for pair in regmap.counters.values() for w in pair}
        self._counter_words = counter_words
        # Read-only pairs <x>_lo/<x>_hi (not counters) are one 64-bit value, read lo first.
        names = set(regmap.registers)
        self._wide = {n[:-3] for n in names if n.endswith("_lo") and n not in counter_words
                      and n[:-3] + "_hi" in names and regmap[n].access is Access.RO}
        # Counters are consecutive lo/hi pairs (RegisterMap places them so): entry k of the
        # RAM is the k-th counter, and its index is a slice of the address.
        los = [lo.offset for lo, _hi in regmap.counters.values()]
        self.counter_base = min(los) if los else 0
        for k, (lo, hi) in enumerate(regmap.counters.values()):
            if lo.offset != self.counter_base + 8 * k or hi.offset != lo.offset + 4:
                raise ValueError(f"counter {lo.name} is not at {self.counter_base + 8 * k:#x}:"
                                 " counters must be consecutive lo/hi pairs")
        #: Entries of the counter RAM (one per counter; a wide counter's entry stays zero).
        self.entries = max(len(los), 2)
        #: Pre-counter width: a round of ``entries`` cycles at 3 a cycle must fit.
        self.pre_bits = (((1 << INC_WIDTH) - 1) * self.entries).bit_length()
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
        n = self.entries
        names = list(rm.counters)
        wide = {name for name in names if rm.counter_defs[name].wide}

        # -- wide counters: flip-flops ------------------------------------------------------
        # Increments are registered first: counters lag their events by a cycle, and the
        # 48-bit adders start from flip-flops instead of the end of someone's logic cone.
        ff_counters = {}
        for name in (name for name in names if name in wide):
            c = Signal(COUNTER_BITS, name=f"cnt_{name}")
            inc_in = getattr(self, f"inc_{name}")
            inc = Signal(len(inc_in), name=f"inc_r_{name}")
            m.d.sync += inc.eq(inc_in)
            ff_counters[name] = c
            with m.If(self.clear):
                m.d.sync += [c.eq(0), inc.eq(0)]
            with m.Else():
                m.d.sync += c.eq(c + inc)

        # -- narrow counters: pre-counters, scanner, two RAM copies ------------------------
        m.submodules.cnt_fold = fold = Memory(shape=COUNTER_BITS, depth=n, init=[])
        m.submodules.cnt_host = host = Memory(shape=COUNTER_BITS, depth=n, init=[])
        fold_rd, fold_wr = fold.read_port(), fold.write_port()
        host_rd, host_wr = host.read_port(), host.write_port()

        scan = Signal(range(n))                       # entry read this cycle
        ring = Signal(n, init=1)                      # one-hot copy of scan: no decoders
        m.d.sync += [scan.eq(Mux(scan == n - 1, 0, scan + 1)), ring.eq(ring.rotate_left(1))]
        f_addr = Signal(range(n))                     # entry written this cycle
        # The entry's pre-counter, taken last cycle: the OR of the scanner's group registers.
        f_val = Signal(self.pre_bits)
        sweep = Signal(range(n + 1), init=n)          # cycles left of a clear's round
        sweeping = Signal()
        m.d.comb += sweeping.eq(sweep != 0)

        pres = []
        for k, name in enumerate(names):
            if name in wide:
                pres.append(None)
                continue
            pre = Signal(self.pre_bits, name=f"pre_{name}")
            inc = Signal(INC_WIDTH, name=f"inc_r_{name}")
            m.d.sync += inc.eq(getattr(self, f"inc_{name}"))
            with m.If(self.clear):
                m.d.sync += [pre.eq(0), inc.eq(0)]
            with m.Elif(ring[k]):
                m.d.sync += pre.eq(inc)
            with m.Else():
                m.d.sync += pre.eq(pre + inc)
            pres.append(pre)

        # Both selections of one pre-counter (the scanner's and the host read's) are an
        # AND-OR over every counter. Each is split into groups of GROUP consecutive
        # counters (a block's counters are consecutive), registered per group where the
        # group's pre-counters are, and only the groups' registers are ORed where the value
        # is used: the same cycle as one register, without 117 x 9 bits converging on one
        # spot (the router's worst congestion in the whole core, before).
        counted = [(k, pre) for k, pre in enumerate(pres) if pre is not None]
        groups = [[(k, pre) for k, pre in counted if i <= k < i + GROUP]
                  for i in range(0, n, GROUP)]
        groups = [g for g in groups if g]

        def select(onehot, width, name, *, enable=None):
            """Registered per-group AND-OR of the pre-counters by a one-hot selector: the
            groups' registers (their OR is the selected pre-counter, the cycle after)."""
            regs = []
            for gi, g in enumerate(groups):
                out = one_hot_or([onehot[k] for k, _ in g], [pre for _, pre in g])
                reg = Signal(width, name=f"{name}_g{gi}")
                if enable is None:
                    m.d.sync += reg.eq(out)
                else:
                    with m.If(enable):
                        m.d.sync += reg.eq(out)
                regs.append(reg)
            return regs

        f_regs = select(ring, self.pre_bits, "f_val")
        m.d.comb += f_val.eq(any_of(f_regs, self.pre_bits))
        total = Signal(COUNTER_BITS)
        m.d.comb += [
            fold_rd.addr.eq(scan),
            total.eq(Mux(sweeping, f_val, fold_rd.data + f_val)),
            fold_wr.addr.eq(f_addr), fold_wr.data.eq(total), fold_wr.en.eq(1),
            host_wr.addr.eq(f_addr), host_wr.data.eq(total), host_wr.en.eq(1),
        ]
        m.d.sync += f_addr.eq(scan)
        with m.If(self.clear):
            m.d.sync += [reg.eq(0) for reg in f_regs]
            m.d.sync += sweep.eq(n)
        with m.Elif(sweeping):
            m.d.sync += sweep.eq(sweep - 1)

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

        # -- read channel: sample (decode, RAM read), then add or mux, then respond ---------
        ar_addr = Signal(ADDR_WIDTH)
        ar_stage = Signal()   # address captured; sample this cycle unless a clear's round runs
        r_stage = Signal()    # sampled; form the data this cycle
        hi_latch = Signal(32)
        m.d.comb += bus.arready.eq(~ar_stage & ~r_stage & ~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [ar_addr.eq(bus.araddr), ar_stage.eq(1)]

        span = 8 * len(names)
        offset = Signal(ADDR_WIDTH)
        in_block = Signal()
        index = Signal(range(n))
        m.d.comb += [offset.eq(ar_addr - self.counter_base),
                     in_block.eq((ar_addr >= self.counter_base) & (offset < span)),
                     index.eq(offset[3:])]
        narrow_mask = Const(sum(1 << k for k, name in enumerate(names) if name not in wide), n)
        from_ram = Signal()
        m.d.comb += [from_ram.eq(in_block & ~offset[2] & narrow_mask.bit_select(index, 1)),
                     host_rd.addr.eq(index)]
        hit = Signal(n)
        m.d.comb += hit.eq(Const(1, n) << index)

        # The read multiplexer, like the pre-counter selections: each group of GROUP registers
        # (in address order, so mostly one block's) has its own registered word, zero unless
        # the address is one of its registers; the response ORs the groups' words. A read of
        # no register gets the default word (a counter's _hi: the latch; else 0xDEADC0DE).
        cases: list[tuple[int, object]] = []   # (offset, value; None reads as zero)
        for r in rm.all_registers():
            if r.name in self._counter_words:
                cname, half = r.name[:-3], r.name[-2:]
                if half == "lo" and cname in wide:
                    cases.append((r.offset, ff_counters[cname][:32]))
            elif r.name[:-3] in self._wide:
                value = getattr(self, f"ro_{r.name[:-3]}")
                cases.append((r.offset, value[:32] if r.name.endswith("_lo") else hi_latch))
            elif r.access is Access.RO:
                cases.append((r.offset, getattr(self, f"ro_{r.name}")))
            elif r.access is Access.RW:
                cases.append((r.offset, getattr(self, r.name)))
            else:
                cases.append((r.offset, None))   # PULSE registers read as zero
        sample = Signal()
        m.d.comb += sample.eq(ar_stage & ~sweeping)
        rd_regs = []
        matched = Signal(max(1, -(-len(cases) // GROUP)))
        for gi, first in enumerate(range(0, len(cases), GROUP)):
            word = Signal(32, name=f"rd_word_g{gi}")
            with m.If(sample):
                m.d.sync += [word.eq(0), matched[gi].eq(0)]
                with m.Switch(ar_addr):
                    for off, value in cases[first:first + GROUP]:
                        with m.Case(off):
                            m.d.sync += matched[gi].eq(1)
                            if value is not None:
                                m.d.sync += word.eq(value)
            rd_regs.append(word)
        default_r = Signal(32)
        with m.If(sample):
            m.d.sync += default_r.eq(Mux(in_block & offset[2], hi_latch, 0xDEADC0DE))

        ram_r = Signal()
        h_regs = select(hit, self.pre_bits, "h_pre", enable=sample)
        inflight = Signal(self.pre_bits)    # the scanner's in-flight amount, at the sample
        extra = Signal(self.pre_bits + 1)   # pre-counter + in-flight amount, at the sample
        m.d.comb += extra.eq(any_of(h_regs, self.pre_bits) + inflight)
        value_r = Signal(32)
        m.d.comb += value_r.eq(Mux(matched.any(), any_of(rd_regs, 32), default_r))
        with m.If(sample):
            m.d.sync += [ram_r.eq(from_ram), ar_stage.eq(0), r_stage.eq(1),
                         inflight.eq(Mux(f_addr == index, f_val, 0))]
            # Latch the upper bits on any FF-held _lo read, for the _hi read that follows.
            with m.Switch(ar_addr):
                for cname in sorted(wide):
                    with m.Case(rm.counters[cname][0].offset):
                        m.d.sync += hi_latch.eq(ff_counters[cname][32:])
                for w in sorted(self._wide):
                    with m.Case(rm[w + "_lo"].offset):
                        m.d.sync += hi_latch.eq(getattr(self, f"ro_{w}")[32:])
        m.d.comb += host_rd.en.eq(sample)

        count = Signal(COUNTER_BITS)
        m.d.comb += count.eq(host_rd.data + extra)
        with m.If(r_stage):
            m.d.sync += [bus.rdata.eq(Mux(ram_r, count[:32], value_r)), bus.rvalid.eq(1),
                         r_stage.eq(0)]
            with m.If(ram_r):
                m.d.sync += hi_latch.eq(count[32:])
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
