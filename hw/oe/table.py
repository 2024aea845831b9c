"""The open-order table: resolves the exchange's execution reports to (slot, side, shares).

The risk gate counts each accepted order's shares as open on its symbol and side at once;
only execution reports release them (docs/risk.md). The exchange names orders by token, so
every accepted new order is registered here, from the gate's verdict stream, under its
token: source, token number, slot, side and the shares still open. The parser's lookups
(:mod:`hw.oe.parser`) then become the gate's :func:`~hw.risk.params.report_layout` reports:

* ``EXECUTED`` -> ``FILL`` of the executed shares, ``CANCELED`` -> ``OUT`` of the decrement,
  both clamped to what remains (counted ``clamped``: the exchange and the card disagree);
  ``REJECTED`` -> ``OUT`` of everything that remains. ``done`` when nothing remains, which
  frees the entry.
* A lookup whose entry is free or holds another (source, token) produces nothing
  (``unknown_token``). Source and full token are stored, so a lookup never aliases.
* A new order whose entry is held by a live order is **not tracked** (``table_conflict``,
  and an ``alert`` naming it). That is safe: its shares stay open in the gate, which only
  over-states exposure — the gate keeps rejecting what that exposure would not allow — until
  the host clears it. With :func:`~hw.oe.layouts.table_index` it takes an order of the same
  source ``depth/2`` token numbers older that is still open.
* Replaced orders are not tracked yet: the exchange's ``U`` leaves the old entry live (its
  exposure stays counted) and the replacement's reports count as ``unknown_token``.

Structure, and why: a verdict and a lookup may both arrive in every cycle, and each is a
read-modify-write, so one block RAM with one write port would need two writes a cycle. The
state is therefore split by writer:

* ``static`` (written only by the verdict path): used, a generation bit, source, token,
  slot, side, the order's shares;
* ``dynamic`` (written only by the report path): a generation bit and the remaining shares.

The dynamic entry belongs to the static one when their generation bits agree; otherwise no
report has arrived yet and the order's shares are what remains. Registering an order sets
its generation to the opposite of the dynamic entry's, which makes a fresh order without
the verdict path ever writing ``dynamic``. Both RAMs have two read ports (one per path),
each transparent to its RAM's write port.

Timing: each path is three stages — read (the cycle the input arrives), register the RAM
words, decide and write — so both take one item every cycle, never stall, and every
decision starts from flip-flops (the RAMs' outputs are registered before any compare). An
item sees every write decided before its decision cycle: writes up to its read cycle come
through the RAM (transparent read), the one in between through a registered bypass. A
verdict and a lookup deciding in the *same* cycle are both judged on the state before that
cycle, which never needs one's result in the other's logic, and is still the outcome of a
serial order: they can only meet on an entry that is live (the verdict is refused, the
lookup resolves: the verdict went first) or not live (the lookup finds nothing, the verdict
registers: the lookup went first). The model (:meth:`sim.model.oe.TableModel.cycle`)
applies the same rule. Reports and alerts leave :data:`LATENCY` cycles after their input.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.oe.layouts import (
    DEFAULT_DEPTH,
    LookupKind,
    alert_layout,
    index_bits,
    lookup_layout,
    lookup_signature,
    shares_bits,
)
from hw.risk.params import (
    DEFAULT_RISK,
    OrderKind,
    Reason,
    ReportKind,
    RiskParams,
    order_layout,
    report_layout,
    verdict_layout,
)

#: Counters, one ``inc_<name>`` port each (``Out(1)``). The model's
#: :data:`sim.model.oe.TABLE_COUNTERS`.
COUNTERS: tuple[str, ...] = ("tracked", "table_conflict", "unknown_token", "clamped", "reports")
#: Cycles from a verdict or a lookup to its alert or report.
LATENCY = 3


def static_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    o = order_layout(p)
    return data.StructLayout({
        "used": 1, "gen": 1, "source": 1, "token": p.token_bits, "slot": o["slot"].shape,
        "side": 1, "shares": o["shares"].shape,
    })


def dynamic_layout(p: RiskParams = DEFAULT_RISK) -> data.StructLayout:
    return data.StructLayout({"gen": 1, "remaining": shares_bits(p)})


class OpenOrderTable(wiring.Component):
    """See the module docstring. ``depth`` entries (a power of two), half per source."""

    def __init__(self, params: RiskParams = DEFAULT_RISK, *, depth: int = DEFAULT_DEPTH):
        self.p = params
        self.depth = depth
        self.ib = index_bits(depth)
        if self.ib - 1 > params.token_bits:
            raise ValueError(f"a table of {depth} entries indexes by {self.ib - 1} token bits; "
                             f"tokens have {params.token_bits}")
        members = {
            "verdicts": In(stream.Signature(verdict_layout(params), always_ready=True)),
            "lookups": In(lookup_signature(params)),
            "reports": Out(stream.Signature(report_layout(params), always_ready=True)),
            "alert": Out(stream.Signature(alert_layout(params), always_ready=True)),
        }
        members |= {f"inc_{c}": Out(1) for c in COUNTERS}
        super().__init__(members)
        #: The two RAMs, once elaborated (testbenches read ``ctx.get(t.static.data[i])``).
        self.static: Memory | None = None
        self.dynamic: Memory | None = None

    def _index(self, source, token):
        return Cat(token[:self.ib - 1], source)

    def elaborate(self, platform):  # noqa: PLR0915 - two pipelines, in the docstring's order
        m = Module()
        p = self.p
        m.submodules.static = st = self.static = Memory(
            shape=static_layout(p), depth=self.depth, init=[])
        m.submodules.dynamic = dy = self.dynamic = Memory(
            shape=dynamic_layout(p), depth=self.depth, init=[])
        st_w = st.write_port()
        dy_w = dy.write_port()
        st_v = st.read_port(transparent_for=(st_w,))     # verdict path
        dy_v = dy.read_port(transparent_for=(dy_w,))
        st_r = st.read_port(transparent_for=(st_w,))     # report path
        dy_r = dy.read_port(transparent_for=(dy_w,))
        SL, DL = static_layout(p), dynamic_layout(p)

        # Last cycle's writes, for the items deciding now (their reads were a cycle earlier).
        st_prev = Signal(data.StructLayout({"en": 1, "data": SL}))
        dy_prev = Signal(data.StructLayout({"en": 1, "data": DL}))
        m.d.sync += [st_prev.en.eq(st_w.en), st_prev.data.eq(st_w.data),
                     dy_prev.en.eq(dy_w.en), dy_prev.data.eq(dy_w.data)]

        def words(name, idx1, st_port, dy_port):
            """Stage 2's view of the entry stage 1 holds at ``idx1``: the registered RAM words,
            with the writes of the cycle in between patched in. Their addresses are compared
            in stage 1 (both are registers there), so stage 2 starts with a 1-bit select."""
            s_reg = Signal(SL, name=f"{name}_s_ram")
            d_reg = Signal(DL, name=f"{name}_d_ram")
            s_same = Signal(name=f"{name}_s_same")
            d_same = Signal(name=f"{name}_d_same")
            m.d.sync += [s_reg.eq(st_port.data), d_reg.eq(dy_port.data),
                         s_same.eq(st_w.addr == idx1), d_same.eq(dy_w.addr == idx1)]
            s_now = Signal(SL, name=f"{name}_s")
            d_now = Signal(DL, name=f"{name}_d")
            m.d.comb += [
                s_now.eq(Mux(st_prev.en & s_same, st_prev.data, s_reg)),
                d_now.eq(Mux(dy_prev.en & d_same, dy_prev.data, d_reg)),
            ]
            left = Signal(shares_bits(p), name=f"{name}_left")
            live = Signal(name=f"{name}_live")
            m.d.comb += [left.eq(Mux(d_now.gen == s_now.gen, d_now.remaining, s_now.shares)),
                         live.eq(s_now.used & (left != 0))]
            return s_now, d_now, left, live

        # -- report path: read (0), register (1), resolve and write back (2) --------------------
        lk = self.lookups.payload
        l_idx = self._index(lk.source, lk.token)
        m.d.comb += [st_r.addr.eq(l_idx), dy_r.addr.eq(l_idx)]
        r1, r2 = Signal(), Signal()
        r1_lk, r2_lk = Signal(lookup_layout(p)), Signal(lookup_layout(p))
        r1_idx, r2_idx = Signal(self.ib), Signal(self.ib)
        m.d.sync += [r1.eq(self.lookups.valid), r1_lk.eq(lk), r1_idx.eq(l_idx),
                     r2.eq(r1), r2_lk.eq(r1_lk), r2_idx.eq(r1_idx)]
        se, _, r_left, r_live = words("r", r1_idx, st_r, dy_r)
        hit = Signal()
        m.d.comb += hit.eq(r2 & r_live & (se.source == r2_lk.source)
                           & (se.token == r2_lk.token))
        rejected = Signal()
        over = Signal()                 # the exchange names more shares than remain
        m.d.comb += [rejected.eq(r2_lk.kind == LookupKind.REJECTED),
                     over.eq(r2_lk.shares > r_left)]
        take = Signal.like(r_left)
        left = Signal.like(r_left)
        m.d.comb += [take.eq(Mux(rejected | over, r_left, r2_lk.shares)),
                     left.eq(Mux(rejected | over, 0, r_left - r2_lk.shares))]
        m.d.comb += [dy_w.addr.eq(r2_idx), dy_w.en.eq(hit),
                     dy_w.data.gen.eq(se.gen), dy_w.data.remaining.eq(left)]
        rep = self.reports.payload
        m.d.sync += [
            self.reports.valid.eq(hit),
            rep.kind.eq(Mux(r2_lk.kind == LookupKind.EXECUTED, ReportKind.FILL,
                            ReportKind.OUT)),
            rep.slot.eq(se.slot), rep.side.eq(se.side), rep.shares.eq(take),
            rep.done.eq(left == 0),
            self.inc_reports.eq(hit),
            self.inc_unknown_token.eq(r2 & ~hit),
            self.inc_clamped.eq(hit & over & ~rejected),
        ]

        # -- verdict path: read (0), register (1), register or refuse (2) -----------------------
        v = self.verdicts.payload
        vo = v.order
        v_idx = self._index(vo.source, vo.token)
        m.d.comb += [st_v.addr.eq(v_idx), dy_v.addr.eq(v_idx)]
        ORDER = order_layout(p)
        v1, v2 = Signal(), Signal()
        v1_o, v2_o = Signal(ORDER), Signal(ORDER)
        v1_idx, v2_idx = Signal(self.ib), Signal(self.ib)
        m.d.sync += [
            v1.eq(self.verdicts.valid & (v.reason == Reason.ACCEPTED) & (vo.kind == OrderKind.NEW)),
            v1_o.eq(vo), v1_idx.eq(v_idx),
            v2.eq(v1), v2_o.eq(v1_o), v2_idx.eq(v1_idx),
        ]
        _, dv, _, busy = words("v", v1_idx, st_v, dy_v)
        track = Signal()
        conflict = Signal()
        m.d.comb += [track.eq(v2 & ~busy), conflict.eq(v2 & busy)]
        w = st_w.data
        m.d.comb += [
            st_w.addr.eq(v2_idx), st_w.en.eq(track),
            w.used.eq(1), w.gen.eq(~dv.gen), w.source.eq(v2_o.source), w.token.eq(v2_o.token),
            w.slot.eq(v2_o.slot), w.side.eq(v2_o.side), w.shares.eq(v2_o.shares),
        ]
        al = self.alert.payload
        m.d.sync += [
            self.alert.valid.eq(conflict),
            al.source.eq(v2_o.source), al.token.eq(v2_o.token), al.slot.eq(v2_o.slot),
            al.side.eq(v2_o.side), al.shares.eq(v2_o.shares),
            self.inc_tracked.eq(track), self.inc_table_conflict.eq(conflict),
        ]
        return m

    @staticmethod
    def entry(sv: data.Const, dv: data.Const) -> tuple[bool, tuple[int, int, int, int, int]]:
        """Testbench helper: ``(live, (source, token, slot, side, remaining))`` of one index,
        from its static and dynamic RAM words (as ``ctx.get`` returns them)."""
        left = dv.remaining if dv.gen == sv.gen else sv.shares
        return (bool(sv.used) and left != 0,
                (sv.source, sv.token, sv.slot, sv.side, left))
