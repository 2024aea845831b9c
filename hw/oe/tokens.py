"""The OUCH order-token format of this project, in Python and in gateware.

OUCH 4.2 gives the firm 14 alpha characters per order token and never interprets them. Ours
are ``W`` + a source letter (``H`` host, ``T`` trigger: :class:`~hw.risk.params.Source`) +
the order's token number as 12 upper-case hex digits, most significant first::

    W H 0 0 0 0 0 0 0 0 0 0 2 A      host order, token number 42

Why this shape: the risk gate works on (source, number) pairs — numbers increase per source,
which is how it refuses duplicates with one compare — so the token must carry both, and must
be decodable from the exchange's reports by the return path without a table of strings. Hex
rather than decimal because a hex digit is a 4-bit slice of the number: the encoder writes
nibbles and the parser reads them with a 16-entry decode per character and no arithmetic.
The fixed ``W`` prefix and the source letter reject most stray or foreign tokens before any
table lookup. The constants live in :mod:`proto.ouch` (``TOKEN_*``); everything that writes or
reads tokens goes through :func:`format_token` / :func:`parse_token` or :func:`hex_digit`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from hw.risk.params import Source
from proto import ouch

#: The source letters, indexed by :class:`~hw.risk.params.Source`.
SOURCE_LETTERS = {Source.HOST: ouch.TOKEN_SOURCE_HOST, Source.TRIGGER: ouch.TOKEN_SOURCE_TRIGGER}
TOKEN_LENGTH = ouch.EXECUTED["order_token"].size
NUMBER_BITS = 4 * ouch.TOKEN_DIGITS     #: 48: the widest token number the format carries
assert len(ouch.TOKEN_PREFIX) + 1 + ouch.TOKEN_DIGITS == TOKEN_LENGTH
assert all(m["order_token"].size == TOKEN_LENGTH
           for m in (ouch.ENTER_ORDER, ouch.CANCEL_ORDER, ouch.ACCEPTED, ouch.EXECUTED,
                     ouch.CANCELED, ouch.REJECTED))


def format_token(source: int, number: int) -> str:
    """The 14-character OUCH token of ``(source, number)``."""
    if not 0 <= number < 1 << NUMBER_BITS:
        raise ValueError(f"token number {number} does not fit {NUMBER_BITS} bits")
    return f"{ouch.TOKEN_PREFIX}{SOURCE_LETTERS[Source(source)]}{number:0{ouch.TOKEN_DIGITS}X}"


def parse_token(token: bytes | str, token_bits: int = NUMBER_BITS) -> tuple[Source, int] | None:
    """``(source, number)`` of one of our tokens, or None when ``token`` is not in our format
    (wrong length, prefix or source letter, a character that is not an upper-case hex digit,
    or a number of more than ``token_bits`` bits). Bytes are taken as they came off the wire:
    no stripping, no case folding — the gateware does neither."""
    raw = token.encode("latin-1") if isinstance(token, str) else bytes(token)
    if len(raw) != TOKEN_LENGTH or raw[:len(ouch.TOKEN_PREFIX)] != ouch.TOKEN_PREFIX.encode():
        return None
    letter = chr(raw[len(ouch.TOKEN_PREFIX)])
    sources = {v: k for k, v in SOURCE_LETTERS.items()}
    if letter not in sources:
        return None
    digits = raw[len(ouch.TOKEN_PREFIX) + 1:]
    if any(chr(c) not in ouch.TOKEN_HEX for c in digits):
        return None
    number = int(digits, 16)
    if number >> token_bits:
        return None
    return sources[letter], number


def hex_digit(byte: Value) -> tuple[Value, Value]:
    """Gateware: ``(ok, nibble)`` of one ASCII byte; ``ok`` only for ``0-9`` and ``A-F``.

    ``'0'..'9'`` are 0x30..0x39 (the nibble is the low four bits) and ``'A'..'F'`` are
    0x41..0x46 (low four bits 1..6, plus 9): a compare on the high nibble, a range check on
    the low one and a 4-bit add — no subtractor on the whole byte."""
    hi, lo = byte[4:8], byte[:4]
    digit = (hi == 0x3) & (lo <= 9)
    letter = (hi == 0x4) & (lo >= 1) & (lo <= 6)
    return digit | letter, Mux(digit, lo, (lo + 9)[:4])


def token_fields(m, raw: list[Value], token_bits: int, name: str = "tok"):
    """Gateware: decode the 14 token bytes ``raw`` (wire order) combinationally.

    Returns ``(ok, source, number)`` as signals: ``ok`` when the prefix, the source letter
    and every digit are valid and the number fits ``token_bits``."""
    if len(raw) != TOKEN_LENGTH:
        raise ValueError(f"a token is {TOKEN_LENGTH} bytes")
    if not 1 <= token_bits <= NUMBER_BITS:
        raise ValueError(f"token_bits must be 1..{NUMBER_BITS} (12 hex digits)")
    np = len(ouch.TOKEN_PREFIX)
    prefix_ok = Cat(*(raw[i] == ord(c) for i, c in enumerate(ouch.TOKEN_PREFIX))).all()
    letter = raw[np]
    is_host = letter == ord(ouch.TOKEN_SOURCE_HOST)
    is_trigger = letter == ord(ouch.TOKEN_SOURCE_TRIGGER)
    oks, nibbles = [], []
    for b in raw[np + 1:]:
        ok, nib = hex_digit(b)
        oks.append(ok)
        nibbles.append(nib)
    full = Signal(NUMBER_BITS, name=f"{name}_number48")
    m.d.comb += full.eq(Cat(*reversed(nibbles)))   # first digit is the most significant
    fits = Const(1) if token_bits == NUMBER_BITS else full[token_bits:] == 0
    ok = Signal(name=f"{name}_ok")
    source = Signal(name=f"{name}_source")
    number = Signal(token_bits, name=f"{name}_number")
    m.d.comb += [
        ok.eq(prefix_ok & (is_host | is_trigger) & Cat(*oks).all() & fits),
        source.eq(Mux(is_trigger, Source.TRIGGER, Source.HOST)),
        number.eq(full[:token_bits]),
    ]
    return ok, source, number
