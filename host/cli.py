"""``wirespeed``: the command line over :mod:`host` (it only calls the library).

The only backend today is the simulated card (``--backend sim``): the core's Verilog running in
the Verilator harness. Each invocation starts a fresh simulated card, so register writes made by
one ``wirespeed regs write`` do not survive to the next command; ``replay`` configures
everything it needs itself.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from host.card import Card, CardError
from host.regs import RegisterError
from hw.events import EventKind
from sim.feed.frames import FeedAddress


def _open_card(backend: str, trace: str | None = None):
    if backend != "sim":
        raise click.UsageError(f"unknown backend {backend!r} (available: sim)")
    from host.backends.sim import SimCard
    sim = SimCard(trace=trace)
    try:
        return Card(sim), sim
    except CardError as e:
        raise click.ClickException(str(e)) from None


backend_option = click.option("--backend", default="sim", show_default=True,
                              help="Which card to drive (sim: the simulated card).")


@click.group()
@click.version_option(package_name="wirespeed")
def main() -> None:
    """wirespeed: drive a bump-in-the-wire trading card (or its simulation)."""


@main.command()
@backend_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--expect", type=click.Path(exists=True, path_type=Path), metavar="BITSTREAM",
              help="Compare the identity block with this bitstream's manifest (a directory "
                   "or manifest.json) and exit 1 if the card does not run that design.")
def info(backend: str, as_json: bool, expect: Path | None) -> None:
    """Identity block and sequencer state of the card."""
    card, _ = _open_card(backend)
    out: dict = {"identity": card.identity.as_dict(), "sequencer": card.sequencer(),
                 "feeds": [str(f) for f in card.feeds()]}
    mismatches = None
    if expect is not None:
        from host.bitstream import BitstreamError, card_mismatches, find_manifest, load_manifest
        try:
            manifest = load_manifest(find_manifest(expect))
        except BitstreamError as e:
            raise click.ClickException(str(e)) from None
        mismatches = card_mismatches(manifest, card.regs.read)
        out["expect"] = {"bitstream": manifest.data["name"], "mismatches": mismatches}
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        for k, v in out["identity"].items():
            click.echo(f"{k:16} {v}")
        seq = out["sequencer"]
        click.echo(f"{'sequencer':16} locked={seq['locked']} expected={seq['expected']} "
                   f"session={seq['session']!r}")
        if mismatches is not None:
            verdict = "runs" if not mismatches else "does NOT run"
            click.echo(f"{'expect':16} the card {verdict} {out['expect']['bitstream']}")
            for line in mismatches:
                click.echo(f"{'':16} {line}")
    if mismatches:
        sys.exit(1)


@main.group()
def bitstream() -> None:
    """Check bitstreams against their manifests and this host (host/bitstream.py)."""


@bitstream.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default="bitstreams",
              show_default=True, help="Where to find bitstreams when no PATH is given.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per bitstream.")
def bitstream_check(paths: tuple[Path, ...], root: Path, as_json: bool) -> None:
    """Verify each bitstream (a directory, its manifest.json or the .bit): the file's hash,
    the IDCODE, USERCODE and identity inside it, and that this host drives its register map.
    Exits 1 if any is not intact or not drivable; warnings do not fail."""
    from host.bitstream import check, discover
    targets = list(paths) or discover(root)
    if not targets:
        raise click.ClickException(f"no bitstream (no */manifest.json) under {root}")
    failed = 0
    for path in targets:
        r = check(path)
        failed += not r.ok
        if as_json:
            click.echo(json.dumps(r.as_dict()))
            continue
        m = r.manifest.data if r.manifest else None
        head = (f"{m['name']}: {m['device']}, {m['source']['git_rev']}, regmap "
                f"{m['regmap']['hash']}, Fmax {m['timing']['fmax_mhz']} MHz" if m
                else str(r.path))
        click.echo(f"{'OK  ' if r.ok else 'FAIL'} {head}")
        for kind in ("integrity", "compatibility", "warnings"):
            for line in getattr(r, kind):
                click.echo(f"     {kind}: {line}")
    if failed:
        sys.exit(1)


@main.group()
def regs() -> None:
    """Read and write registers by name (see docs/regmap.md)."""


@regs.command("dump")
@backend_option
def regs_dump(backend: str) -> None:
    """Every register with its address and value."""
    card, _ = _open_card(backend)
    for name, addr, value, access in card.regs.dump():
        shown = "-" if value is None else f"{value:#010x}"
        click.echo(f"{addr:#06x}  {name:28} {access:3}  {shown}")


@regs.command("read")
@backend_option
@click.argument("name")
def regs_read(backend: str, name: str) -> None:
    """Read a register, a 64-bit pair (e.g. time) or a counter (e.g. messages)."""
    card, _ = _open_card(backend)
    try:
        click.echo(f"{card.regs.read(name):#x}")
    except RegisterError as e:
        raise click.ClickException(str(e.args[0])) from None


@regs.command("write")
@backend_option
@click.argument("name")
@click.argument("value")
def regs_write(backend: str, name: str, value: str) -> None:
    """Write VALUE (decimal or 0x...) to a register, then read it back."""
    card, _ = _open_card(backend)
    try:
        card.regs.write(name, int(value, 0))
        click.echo(f"{name} = {card.regs.read(name):#x}")
    except (RegisterError, ValueError) as e:
        raise click.ClickException(str(e.args[0] if e.args else e)) from None


def _parse_feeds(values: tuple[str, ...]) -> list[FeedAddress]:
    try:
        return [FeedAddress.parse(v) for v in values]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--feed") from None


@main.command()
@backend_option
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--feed", "feeds", multiple=True, metavar="GROUP:PORT",
              help="A destination the card accepts (repeatable). A day file is published "
                   "to the first one. Default: 233.54.12.1:26477.")
@click.option("--line-b", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A second capture (or day file) fed to line B, interleaved by capture time.")
@click.option("--session", default="WIRESPEED1", show_default=True,
              help="MoldUDP64 session name used when packetizing a day file.")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object at the end: {"counters", "events", "messages", '
                   '"cycles", ...}.')
@click.option("--events-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every event record (raw 64-byte records, hw/events.py) to a file.")
@click.option("--tap", is_flag=True, help="Also send a MESSAGE event per delivered message.")
@click.option("--symbols", metavar="SYM,SYM,...",
              help="Build the books of these symbols (comma-separated, 1-8 upper-case letters "
                   "or digits), subscribed to slots 0.. in order before replaying; their "
                   "locates come from the day's stock directory.")
@click.option("--bbo-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every BBO change of the --symbols to a CSV file: "
                   "seq,symbol,bid_px,bid_sz,ask_px,ask_sz (ITCH price units).")
@click.option("--trades-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every trade of the --symbols to a CSV file: "
                   "seq,symbol,type,price,shares,volume,notional.")
@click.option("--limits", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Risk limits (YAML, host/config.py) for the --symbols, committed before "
                   "the replay.")
@click.option("--triggers", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Triggers to arm (YAML, host/config.py): the exchange simulator closes "
                   "the loop.")
@click.option("--orders-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every order the risk gate judged to a CSV file: cycle,source,token,"
                   "symbol,kind,side,shares,price,tif,verdict,reason.")
@click.option("--tx-pcap", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the order-entry session (card egress and exchange replies) as a "
                   "pcap of Ethernet/IPv4/TCP frames.")
@click.option("--firm", default="WSPD", show_default=True, help="OUCH firm (1-4 characters).")
@click.option("--exchange-rtt-us", type=click.FloatRange(min=0.01), default=10.0,
              show_default=True,
              help="Exchange round trip: from an order's last byte on TX to the exchange's "
                   "answer on the order-entry port, in microseconds (at 156.25 MHz).")
@click.option("--trace", type=click.Path(dir_okay=False), help="Dump an FST waveform here.")
def replay(backend: str, path: Path, feeds: tuple[str, ...], line_b: Path | None,
           session: str, as_json: bool, events_out: Path | None, tap: bool,
           symbols: str | None, bbo_out: Path | None, trades_out: Path | None,
           limits: Path | None, triggers: Path | None, orders_out: Path | None,
           tx_pcap: Path | None, firm: str, exchange_rtt_us: float,
           trace: str | None) -> None:
    """Replay PATH (pcap/pcapng of Ethernet frames, or a NASDAQ day file) through the card."""
    from host import replay as rp
    feed_list = _parse_feeds(feeds) or [rp.DEFAULT_FEED]
    for opt, given in (("--bbo-out", bbo_out), ("--trades-out", trades_out),
                       ("--limits", limits), ("--triggers", triggers),
                       ("--orders-out", orders_out), ("--tx-pcap", tx_pcap)):
        if given is not None and symbols is None:
            raise click.UsageError(f"{opt} needs --symbols (the symbols whose books to build)")
    trading = any(x is not None for x in (limits, triggers, orders_out, tx_pcap))
    trigger_cfg: dict = {}
    symbol_list: list[str] = []
    if symbols is not None:
        # Format first (no card needed), then the count against the card's slots.
        try:
            symbol_list = rp.parse_symbols(symbols)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--symbols") from None
    card, sim = _open_card(backend, trace)
    if symbol_list:
        try:
            rp.parse_symbols(symbols, card.identity.book.slots)
            # A new day: a card that has run before (a board, or a simulated card reset
            # without clearing its memories) still holds the previous day's orders, whose
            # references the new day reuses; they must go before the first add.
            card.reset_books()
            card.subscribe_all(symbol_list)
        except (ValueError, CardError) as e:
            raise click.BadParameter(str(e), param_hint="--symbols") from None
    if trading:
        from host.config import ConfigError, load_limits, load_triggers
        try:
            card.set_firm(firm)
            if limits is not None:
                card.apply_limits(load_limits(limits, symbol_list))
            trigger_cfg = load_triggers(triggers, symbol_list) if triggers else {}
        except ConfigError as e:
            raise click.ClickException(str(e)) from None
        except CardError as e:
            raise click.ClickException(f"configuring the card: {e}") from None
        if triggers is not None and limits is None:
            click.echo("warning: --triggers without --limits: every symbol is disabled in "
                       "the risk gate, so every order will be rejected (DISABLED)", err=True)
    card.set_feeds(feed_list)
    kinds = [k for k in EventKind if k is not EventKind.MESSAGE or tap]
    card.set_events(kinds)
    try:
        frames_a = rp.load_frames(path, feed_list[0], session=session)
        frames_b = rp.load_frames(line_b, feed_list[0], session=session) if line_b else None
    except (OSError, ValueError) as e:
        raise click.ClickException(f"cannot read input: {e}") from None

    progress = None
    bar = None
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
        bar = Progress(SpinnerColumn(), TextColumn("replaying"), BarColumn(),
                       TextColumn("{task.completed} frames"), transient=True)
        task = bar.add_task("replay", total=None)
        bar.start()

        def progress(n: int) -> None:
            bar.advance(task, n)
    # Every output is written chunk by chunk as the records are drained (a day's worth of
    # records is never held); ExitStack closes the files whatever happens.
    with contextlib.ExitStack() as stack:
        def open_out(p: Path | None, binary: bool = False):
            if p is None:
                return None
            try:
                f = open(p, "wb") if binary else open(p, "w", newline="")
            except OSError as e:
                raise click.ClickException(f"cannot write {p}: {e}") from None
            return stack.enter_context(f)
        raw_out = open_out(events_out, binary=True)
        sink = rp.BookSink(symbol_list, bbo_out=open_out(bbo_out),
                           trades_out=open_out(trades_out))
        loop = None
        rx_index = None
        if trading:
            from host.orders import STOP_KINDS, OrderLoop
            rx_index = rp.RxIndex(feed_list)
            loop = OrderLoop(card, sim, symbol_list, orders_out=open_out(orders_out),
                             tx_pcap=tx_pcap, triggers=trigger_cfg,
                             rtt_ns=round(exchange_rtt_us * 1000))

        def on_records(records) -> None:
            if raw_out is not None:
                raw_out.write(records.tobytes())
            sink(records)
            if loop is not None:
                loop(records)
        try:
            # With the exchange in the loop the replay stops at every order the card sends
            # and every verdict: the loop answers for the exchange and re-arms triggers.
            result = rp.replay(card, sim, frames_a, frames_b, progress=progress,
                               on_records=on_records,
                               on_stop=loop.on_stop if loop else None,
                               stop_kinds=STOP_KINDS if loop else (), rx_index=rx_index)
        except ValueError as e:
            raise click.ClickException(f"bad input: {e}") from None
        finally:
            if bar is not None:
                bar.stop()
    result.books = sink.books(card)
    if loop is not None:
        result.orders = loop.finish(rx_index)
        result.orders["positions"] = {
            sym: card.risk_state(i)["position"] for i, sym in enumerate(symbol_list)}
    for line in sink.warnings(result.books):
        click.echo(f"warning: {line}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    _print_summary(result)


def _console():
    """A rich console; when the output is not a terminal (a log, CI), 120 columns rather than
    rich's 80, so the books table's prices and volumes are not cut to an ellipsis."""
    from rich.console import Console
    return Console() if sys.stdout.isatty() else Console(width=120)


def _print_orders(orders: dict) -> None:
    from rich.table import Table
    table = Table(title="orders", show_header=True)
    table.add_column("verdict")
    table.add_column("orders", justify="right")
    for name, n in orders["verdicts"].items():
        table.add_row(name, f"{n:,}")
    _console().print(table)
    pos = Table(title="positions (card = exchange)", show_header=True)
    for col in ("symbol", "card", "exchange"):
        pos.add_column(col, justify="left" if col == "symbol" else "right")
    for sym, p in orders["positions"].items():
        pos.add_row(sym, f"{p:,}", f"{orders['exchange_positions'].get(sym, 0):,}")
    _console().print(pos)
    lat = orders.get("bbo_event_to_tx_cycles")
    t2t = orders.get("tick_to_trade_cycles")
    print(f"{orders['tx_packets']:,} packets on TX, {orders['exchange_fills']:,} fills at the "
          "exchange" + (f"; trigger BBO event to first TX byte: {lat['min']}-{lat['max']} "
                        f"cycles over {lat['orders']:,} orders" if lat else ""))
    if t2t:
        hist = ", ".join(f"{k}: {v:,}" for k, v in t2t["histogram"].items())
        print(f"tick-to-trade, the ITCH message's last byte on RX (the earlier line) to the "
              f"order's first byte on TX: {t2t['min']}-{t2t['max']} cycles over "
              f"{t2t['orders']:,} orders ({hist})")


def _print_summary(result) -> None:
    from rich.table import Table
    if result.orders:
        _print_orders(result.orders)
    c = result.counters
    table = Table(title="replay", show_header=True)
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name in ("frames", "frames_dropped", "mold_packets", "messages", "duplicates", "gaps",
                 "gap_messages", "heartbeats", "invalidations", "line_a_won", "line_b_won"):
        table.add_row(name, f"{c[name]:,}")
    for name, v in sorted(c.items()):
        if name.startswith("drop_") and v:
            table.add_row(name, f"{v:,}")
    console = _console()
    console.print(table)
    rate = result.messages / result.wall_seconds if result.wall_seconds else 0
    console.print(f"{result.messages:,} messages in {result.cycles:,} cycles; "
                  f"{result.wall_seconds:.2f} s wall, {rate:,.0f} messages/s simulated")
    if result.events:
        console.print("events: " + ", ".join(f"{k}={v}" for k, v in result.events.items()))
    if result.books:
        books = Table(title="books", show_header=True)
        for col in ("symbol", "bid", "ask", "BBO changes", "trades", "volume", "VWAP",
                    "stale"):
            books.add_column(col, justify="left" if col in ("symbol", "stale") else "right")
        for sym, b in result.books.items():
            q = b["bbo"]
            vwap = "-" if b["vwap"] is None else f"{b['vwap']:.4f}"
            books.add_row(sym, f"{q['bid_sz']:,} @ {q['bid_px'] / 10_000:.4f}",
                          f"{q['ask_sz']:,} @ {q['ask_px'] / 10_000:.4f}",
                          f"{b['bbo_events']:,}", f"{b['trades']:,}", f"{b['volume']:,}",
                          vwap, ", ".join(b["stale"]) or "-")
        console.print(books)


@main.command("gen-day")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--messages", default=100_000, show_default=True)
@click.option("--symbols", default="AAPL,MSFT,AMZN,GOOG,META,NVDA,TSLA,INTC", show_default=True)
@click.option("--seed", default=1, show_default=True)
def gen_day(out: Path, messages: int, symbols: str, seed: int) -> None:
    """Write a synthetic ITCH 5.0 day file (.gz to compress)."""
    from sim.feed import dayfile, synth
    msgs = synth.generate_day(messages, symbols=tuple(symbols.split(",")), seed=seed)
    n = dayfile.write_dayfile(out, msgs)
    click.echo(f"{out}: {n} messages")


if __name__ == "__main__":
    main()
