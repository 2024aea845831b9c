"""Day files (BinaryFILE): round trips, gzip by magic, chunk boundaries, truncation errors."""

from __future__ import annotations

import gzip
import random
import re
import struct

import pytest

from proto.itch import LENGTHS
from sim.feed import dayfile
from sim.feed.dayfile import count_messages, iter_messages, write_dayfile


def random_messages(seed: int, n: int) -> list[bytes]:
    """ITCH-sized random messages, plus the framing's edge cases (empty, 65535 bytes)."""
    rng = random.Random(seed)
    lengths = list(LENGTHS.values())
    msgs = [rng.randbytes(rng.choice(lengths)) for _ in range(n)]
    msgs[n // 3] = b""
    msgs[n // 2] = rng.randbytes(0xFFFF)
    return msgs


def raw_dayfile(msgs: list[bytes]) -> bytes:
    """Independent encoder: the framing straight from the specification."""
    return b"".join(struct.pack(">H", len(m)) + m for m in msgs)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, seed, suffix):
    msgs = random_messages(seed, 3000)
    path = tmp_path / f"12312025.NASDAQ_ITCH50{suffix}"
    assert write_dayfile(path, msgs) == len(msgs)
    data = path.read_bytes()
    assert (data[:2] == b"\x1f\x8b") == (suffix == ".gz")
    assert (gzip.decompress(data) if suffix else data) == raw_dayfile(msgs)
    assert list(iter_messages(path)) == msgs
    assert count_messages(path) == len(msgs)


def test_gzip_detected_by_magic_not_name(tmp_path):
    msgs = random_messages(4, 500)
    renamed = tmp_path / "day.bin"                  # gzip content, no .gz suffix
    renamed.write_bytes(gzip.compress(raw_dayfile(msgs)))
    assert list(iter_messages(renamed)) == msgs
    plain = tmp_path / "day.gz"                     # plain content, .gz suffix
    plain.write_bytes(raw_dayfile(msgs))
    assert list(iter_messages(plain)) == msgs
    assert count_messages(renamed) == count_messages(plain) == len(msgs)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_records_split_across_chunks(tmp_path, monkeypatch, chunk):
    """Tiny read chunks put every record (and length prefix) across chunk boundaries."""
    monkeypatch.setattr(dayfile, "_CHUNK", chunk)
    msgs = [m[:300] for m in random_messages(chunk, 200)]
    for suffix in ("", ".gz"):
        path = tmp_path / f"d{suffix}"
        write_dayfile(path, msgs)
        assert list(iter_messages(path)) == msgs
        assert count_messages(path) == len(msgs)


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    assert write_dayfile(path, []) == 0
    assert list(iter_messages(path)) == []
    assert count_messages(path) == 0


@pytest.mark.parametrize("cut", [1, 2, 5])
@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_last_record(tmp_path, cut, compressed):
    msgs = [bytes([i]) * 36 for i in range(10)]
    raw = raw_dayfile(msgs)
    last_at = len(raw) - 38                         # byte offset of the last record
    path = tmp_path / "cut"
    body = raw[:last_at + cut]
    path.write_bytes(gzip.compress(body) if compressed else body)
    with pytest.raises(ValueError, match=f"byte offset {last_at}") as info:
        list(iter_messages(path))
    assert "truncated" in str(info.value)
    # Everything before the damage is still delivered.
    got = []
    with pytest.raises(ValueError):
        for m in iter_messages(path):
            got.append(m)
    assert got == msgs[:-1]
    with pytest.raises(ValueError, match=f"byte offset {last_at}"):
        count_messages(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.97])
def test_truncated_gzip_stream(tmp_path, keep):
    """A cut-off gzip file: every record that decompressed whole comes out first, then an
    error with the exact uncompressed length (what a cut-off download gives)."""
    msgs = random_messages(5, 20_000)
    raw = raw_dayfile(msgs)
    packed = gzip.compress(raw, compresslevel=1)
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[:int(len(packed) * keep)])
    got = []
    with pytest.raises(ValueError, match=r"gzip stream ends early, after (\d+) uncompressed"
                       ) as err:
        for m in iter_messages(path):
            got.append(m)
    done = int(re.search(r"after (\d+) uncompressed", str(err.value))[1])
    assert 0 < done < len(raw)
    whole = 0               # the records that lie entirely in the first ``done`` bytes
    pos = 0
    for m in msgs:
        pos += 2 + len(m)
        if pos > done:
            break
        whole += 1
    assert got == msgs[:whole]


def test_gzip_members_and_zero_padding(tmp_path):
    """Concatenated gzip members are one stream; zero padding after a member is allowed."""
    a, b = random_messages(6, 300), random_messages(7, 200)
    path = tmp_path / "two.gz"
    path.write_bytes(gzip.compress(raw_dayfile(a)) + b"\0" * 7 + gzip.compress(raw_dayfile(b))
                     + b"\0" * 3)
    assert list(iter_messages(path)) == a + b
    assert count_messages(path) == len(a) + len(b)


def test_corrupt_gzip_data(tmp_path):
    packed = bytearray(gzip.compress(raw_dayfile(random_messages(8, 3000))))
    packed[-6] ^= 0xFF      # the CRC: only the member's end can tell
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match="corrupt gzip data after .* may be corrupt too"):
        list(iter_messages(path))


def test_oversized_message_rejected(tmp_path):
    with pytest.raises(ValueError, match="longer than a record can hold"):
        write_dayfile(tmp_path / "x", [b"", bytes(0x10000)])
