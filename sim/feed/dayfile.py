"""NASDAQ BinaryFILE day files: ``length (2, big-endian) + message`` records, nothing else.

The n-th record of the file is the message with MoldUDP64 sequence number n (1-based), so a
day file is the whole session's message stream in order. The files NASDAQ publishes are
usually gzip-compressed (``MMDDYYYY.NASDAQ_ITCH50.gz``, a few GB uncompressed, hundreds of
millions of messages). Readers here therefore stream: the file is read in large chunks and
records are sliced out of each chunk, never loading the whole file. Compression is detected
from the gzip magic bytes, not the file name, because downloaded copies are routinely
renamed or decompressed in place.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from proto.moldudp64 import BLOCK_LENGTH_SIZE

__all__ = ["count_messages", "iter_messages", "write_dayfile"]

_GZIP_MAGIC = b"\x1f\x8b"
#: zlib's window-bits value for a gzip header and trailer (16 + the 32 KiB window's 15).
_GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Compressed bytes decompressed at a time: ITCH inflates about 3-4 times, and even a
#: pathological member (at most about 1,000 times) stays within tens of MB per step.
_GZIP_READ = 1 << 16
#: Read size. Large enough that the per-chunk Python overhead vanishes against the
#: per-record slicing, small enough to stay in the CPU caches of a busy machine.
_CHUNK = 1 << 20
_LEN = struct.Struct(">H")
assert _LEN.size == BLOCK_LENGTH_SIZE
_MAX_MESSAGE = (1 << (8 * BLOCK_LENGTH_SIZE)) - 1

PathLike = str | os.PathLike[str]


def _chunks(path: PathLike) -> Iterator[bytes]:
    raw = open(path, "rb")
    with raw:
        if raw.peek(2)[:2] == _GZIP_MAGIC:
            yield from _gunzip(raw, os.fspath(path))
        else:
            yield from iter(lambda: raw.read(_CHUNK), b"")


def _gunzip(raw: BinaryIO, name: str) -> Iterator[bytes]:
    """The uncompressed stream of a gzip file (members concatenated), as it decompresses.

    ``zlib`` rather than ``gzip.GzipFile``: a ``GzipFile.read`` that reaches a cut-off end
    raises without returning what it decompressed, so the records before the cut would be
    lost and the error could not say where the stream stopped. Here every byte that
    decompresses is handed on first; the error then names the exact uncompressed length.
    """
    d = zlib.decompressobj(wbits=_GZIP_WBITS)
    done = 0
    member = False      # some bytes of the current member have been fed
    comp = b""
    while True:
        if not comp:
            comp = raw.read(_GZIP_READ)
            if not comp:
                break
        if not member:
            comp = comp.lstrip(b"\0")    # zero padding between or after members is allowed
            if not comp:
                continue
            member = True
        try:
            out = d.decompress(comp)
        except zlib.error as e:
            raise ValueError(f"{name}: corrupt gzip data after {done} uncompressed bytes "
                             f"({e}); gzip checks a member's CRC only at its end, so the "
                             "records before this point may be corrupt too") from e
        if out:
            done += len(out)
            yield out
        if d.eof:           # the member ended; what follows it may be another member
            comp = d.unused_data
            d = zlib.decompressobj(wbits=_GZIP_WBITS)
            member = False
        else:
            comp = b""
    if member:
        raise ValueError(f"{name}: gzip stream ends early, after {done} uncompressed bytes "
                         "(the file is cut off before the member's end-of-stream marker)")


def iter_messages(path: PathLike) -> Iterator[bytes]:
    """Yield every message of a day file in order (message i is sequence number i + 1).

    Memory use is bounded by the chunk size whatever the file size. Raises
    :class:`ValueError` naming the byte offset (in the uncompressed stream) of a record that
    the file ends in the middle of.
    """
    rest = b""      # bytes of an incomplete record carried over from the previous chunk
    base = 0        # stream offset of rest[0]
    for chunk in _chunks(path):
        buf = rest + chunk if rest else chunk
        end = len(buf)
        pos = 0
        # The hot loop: one length read and one slice per record. Slicing the bytes chunk
        # makes each message in one copy; going through a memoryview measured 60% slower
        # (a view object per record, then the same copy to hand out immutable bytes).
        while pos + 2 <= end:
            stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
            if stop > end:
                break
            yield buf[pos + 2:stop]
            pos = stop
        base += pos
        rest = buf[pos:]
    if rest:
        _truncated(path, rest, base)


def _truncated(path: PathLike, rest: bytes, offset: int) -> None:
    if len(rest) < BLOCK_LENGTH_SIZE:
        raise ValueError(
            f"{os.fspath(path)}: truncated at byte offset {offset}: {len(rest)} byte(s) of a "
            f"{BLOCK_LENGTH_SIZE}-byte length prefix")
    (length,) = _LEN.unpack_from(rest)
    raise ValueError(
        f"{os.fspath(path)}: truncated at byte offset {offset}: record declares {length} bytes, "
        f"only {len(rest) - BLOCK_LENGTH_SIZE} remain")


def count_messages(path: PathLike) -> int:
    """Number of records in a day file, without materialising the messages.

    Same framing checks as :func:`iter_messages` (a truncated last record raises). The loop
    is :func:`iter_messages`'s on purpose, minus the slice: sharing one generator would cost
    a tuple or a slice per record in the hot path of both."""
    n = 0
    rest = b""
    base = 0
    for chunk in _chunks(path):
        buf = rest + chunk if rest else chunk
        end = len(buf)
        pos = 0
        while pos + 2 <= end:
            stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
            if stop > end:
                break
            n += 1
            pos = stop
        base += pos
        rest = buf[pos:]
    if rest:
        _truncated(path, rest, base)
    return n


def write_dayfile(path: PathLike, messages: Iterable[bytes], *, compresslevel: int = 6) -> int:
    """Write messages as a day file (gzip if ``path`` ends in ``.gz``); return the count.

    ``compresslevel`` 6 (gzip's own default) rather than Python's 9: level 9 is several
    times slower for a percent or two on ITCH, which matters for multi-million-message days.
    """
    pack = _LEN.pack
    n = 0
    parts: list[bytes] = []
    size = 0
    if os.fspath(path).endswith(".gz"):
        out: BinaryIO = gzip.open(path, "wb", compresslevel=compresslevel)
    else:
        out = open(path, "wb")
    with out:
        for m in messages:
            if len(m) > _MAX_MESSAGE:
                raise ValueError(f"message {n + 1} is {len(m)} bytes, longer than a record "
                                 f"can hold ({_MAX_MESSAGE})")
            parts.append(pack(len(m)))
            parts.append(m)
            size += len(m) + 2
            n += 1
            if size >= _CHUNK:
                out.write(b"".join(parts))
                parts.clear()
                size = 0
        out.write(b"".join(parts))
    return n

