"""SoupBinTCP 3.0 layouts, packing and deframing; cross-checked with nasdaq-protocols' codec.

nasdaq-protocols (``nasdaq_protocols.soup.core``) is Nasdaq's own Python implementation: its
``SoupMessage.from_bytes`` must read every packet we write, and our deframer every packet it
writes. The one known difference (it left-justifies the 20-byte sequence numbers, we
right-justify as the specification says) is asserted explicitly.
"""

from __future__ import annotations

import os
import random
import string
import struct

import pytest
from nasdaq_protocols import soup as nq

from proto import soupbintcp as sb

SEED = int(os.environ.get("WIRESPEED_SEED", random.randrange(1 << 30)))
WHERE = f"(seed {SEED}; rerun with WIRESPEED_SEED={SEED})"
print(f"test_proto_soupbintcp: seed {SEED}")

ALNUM = string.ascii_letters + string.digits


def _alpha(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALNUM) for _ in range(rng.randint(0, n)))


def _random_packet(rng: random.Random) -> tuple[str, bytes]:
    """A random well-formed packet of any type, as (type, payload)."""
    t = rng.choice(sorted(sb.PACKETS))
    if t == "L":
        return t, sb.login_request(_alpha(rng, 6), _alpha(rng, 10), _alpha(rng, 10),
                                   rng.randrange(10 ** rng.randint(1, 20)))[3:]
    if t == "A":
        return t, sb.encode("A", session=_alpha(rng, 10),
                            sequence_number=rng.randrange(1 << 63))[3:]
    if t == "J":
        return t, rng.choice("AS").encode()
    if t in sb.VARIABLE:
        return t, rng.randbytes(rng.choice((0, 1, 19, 49, 80, rng.randint(0, 300))))
    return t, b""


# -- layouts -----------------------------------------------------------------------------
def test_layout_offsets_and_lengths():
    login = sb.PACKETS["L"]
    assert [(f.name, f.offset, f.size) for f in login.fields] == [
        ("packet_length", 0, 2), ("packet_type", 2, 1), ("username", 3, 6),
        ("password", 9, 10), ("requested_session", 19, 10),
        ("requested_sequence_number", 29, 20)]
    accepted = sb.PACKETS["A"]
    assert (accepted["session"].offset, accepted["sequence_number"].offset) == (3, 13)
    assert accepted.length == 33 and sb.PACKETS["J"].length == 4
    assert all(sb.PACKETS[t].length == 3 for t in "+SUHZRO")
    assert sb.CLIENT_TYPES | sb.SERVER_TYPES == set(sb.PACKETS)
    assert sb.CLIENT_TYPES & sb.SERVER_TYPES == {"+"}


def test_numeric_fields():
    assert sb.format_numeric(42) == " " * 18 + "42"
    assert sb.format_numeric(0) == " " * 19 + "0"
    assert sb.parse_numeric(" " * 18 + "42") == 42
    assert sb.parse_numeric("42" + " " * 18) == 42       # nasdaq-protocols' justification
    assert sb.parse_numeric(b" " * 20) == 0
    with pytest.raises(sb.SoupBinTcpError, match="not a space-padded decimal"):
        sb.parse_numeric("12a".rjust(20))
    with pytest.raises(sb.SoupBinTcpError):
        sb.parse_numeric("-5".rjust(20))
    with pytest.raises(ValueError, match="does not fit"):
        sb.format_numeric(10 ** 20)
    with pytest.raises(ValueError, match="does not fit"):
        sb.format_numeric(-1)


def test_encode_decode_fixed_packets():
    pkt = sb.login_request("ab", "secret", "S1", 17)
    assert pkt == (b"\x00\x2fLab    secret    S1        " + b" " * 18 + b"17")
    assert sb.decode("L", pkt[3:]) == {
        "packet_length": 47, "packet_type": "L", "username": "ab", "password": "secret",
        "requested_session": "S1", "requested_sequence_number": 17}
    acc = sb.encode("A", session="SESS", sequence_number=123456)
    assert acc == b"\x00\x1fASESS      " + b"123456".rjust(20)
    assert sb.decode("A", acc[3:])["sequence_number"] == 123456
    assert sb.encode("J", reject_reason="S") == b"\x00\x02JS"
    assert sb.pack_packet("H") == b"\x00\x01H"
    assert sb.pack_packet("S", b"xyz") == b"\x00\x04Sxyz"
    assert sb.decode("U", b"abc") == {"payload": b"abc"}


def test_pack_and_decode_errors():
    with pytest.raises(sb.SoupBinTcpError, match="unknown SoupBinTCP packet type 'Q'"):
        sb.pack_packet("Q", b"")
    with pytest.raises(sb.SoupBinTcpError, match="login_rejected 'J' has packet length 2"):
        sb.pack_packet("J", b"")
    with pytest.raises(sb.SoupBinTcpError, match="heartbeat 'H' has packet length 1"):
        sb.pack_packet("H", b"x")
    with pytest.raises(sb.SoupBinTcpError, match="exceeds the 2-byte length"):
        sb.pack_packet("S", bytes(0xFFFF))
    with pytest.raises(sb.SoupBinTcpError, match="payload is 46 bytes, got 45"):
        sb.decode("L", bytes(45))
    with pytest.raises(sb.SoupBinTcpError, match="use pack_packet"):
        sb.encode("U")
    with pytest.raises(ValueError, match="longer than 6"):
        sb.login_request("toolong", "pw")


# -- deframer ----------------------------------------------------------------------------
def test_deframer_random_segmentation():
    rng = random.Random(SEED)
    for _trial in range(50):
        packets = [_random_packet(rng) for _ in range(rng.randint(1, 60))]
        stream = b"".join(sb.pack_packet(t, p) for t, p in packets)
        d = sb.Deframer()
        got: list[tuple[str, bytes]] = []
        at = 0
        while at < len(stream):
            n = rng.choice((1, 2, 3, rng.randint(1, 64), rng.randint(1, 1500)))
            got += d.feed(stream[at:at + n])
            at += n
        d.close()
        assert got == packets, WHERE
        assert d.offset == len(stream) and d.pending == 0, WHERE


def test_deframer_several_per_segment_and_split_header():
    stream = sb.pack_packet("U", b"a") + sb.pack_packet("R") + sb.pack_packet("U", b"bcd")
    d = sb.Deframer()
    assert d.feed(stream[:1]) == []                  # half a length field
    assert d.feed(stream[1:3]) == [] and d.pending == 3
    assert d.feed(stream[3:]) == [("U", b"a"), ("R", b""), ("U", b"bcd")]


@pytest.mark.parametrize("bad, message", [
    (b"\x00\x00", "packet length 0 at stream offset 5"),
    (b"\x00\x05Lxxxx", "login_request 'L' at stream offset 5 has packet length 5, the type "
                       "requires 47"),
    (b"\x00\x02Hx", "server_heartbeat 'H' at stream offset 5 has packet length 2"),
    (b"\x00\x01Q", "unknown packet type 'Q' \\(0x51\\) at stream offset 5"),
    (b"\x00\x01\x00", "unknown packet type"),
    (b"\xff\xffU", "packet length 65535 at stream offset 5 exceeds the limit 100"),
])
def test_deframer_impossible_input(bad, message):
    good = sb.pack_packet("U", b"ok")
    d = sb.Deframer(max_packet_length=100)
    with pytest.raises(sb.SoupBinTcpError, match=message) as e:
        d.feed(good + bad + good)
    assert e.value.packets == [("U", b"ok")]         # completed before the fault
    with pytest.raises(sb.SoupBinTcpError, match="stream already failed"):
        d.feed(good)


def test_deframer_direction_and_truncation():
    d = sb.Deframer(types=sb.CLIENT_TYPES)
    with pytest.raises(sb.SoupBinTcpError, match="unexpected packet type 'S'"):
        d.feed(sb.pack_packet("S", b"x"))
    d = sb.Deframer()
    pkt = sb.login_request("u", "p")
    assert d.feed(pkt[:20]) == [] and d.pending == 20
    with pytest.raises(sb.SoupBinTcpError, match="stream ended inside a packet: 20 bytes"):
        d.close()
    d = sb.Deframer()
    d.feed(b"\x00")
    with pytest.raises(sb.SoupBinTcpError, match="1 bytes buffered"):
        d.close()


def test_deframer_fuzz_never_crashes():
    """Random garbage either deframes or raises SoupBinTcpError; nothing else escapes."""
    rng = random.Random(SEED + 1)
    for _ in range(2000):
        d = sb.Deframer(max_packet_length=rng.choice((sb.MAX_PACKET_LENGTH, 81)))
        data = rng.randbytes(rng.randint(0, 40))
        try:
            for t, _p in d.feed(data):
                assert t in sb.PACKETS
            d.close()
        except sb.SoupBinTcpError as e:
            assert str(e), WHERE


# -- nasdaq-protocols -------------------------------------------------------------------
def _nq_fields(msg) -> tuple:
    """Comparable content of a nasdaq-protocols SoupMessage."""
    if isinstance(msg, nq.LoginRequest):
        return (msg.user, msg.password, msg.session, int(msg.sequence))
    if isinstance(msg, nq.LoginAccepted):
        return (msg.session_id, msg.sequence)
    if isinstance(msg, nq.LoginRejected):
        return (msg.reason.value,)
    if isinstance(msg, nq.SequencedData | nq.UnSequencedData):
        return (msg.data,)
    if isinstance(msg, nq.Debug):
        return (msg.msg.encode("ascii"),)
    return ()


def _our_fields(t: str, payload: bytes) -> tuple:
    if t == "L":
        d = sb.decode(t, payload)
        return (d["username"], d["password"], d["requested_session"],
                d["requested_sequence_number"])
    if t == "A":
        d = sb.decode(t, payload)
        return (d["session"], d["sequence_number"])
    if t == "J":
        return (sb.decode(t, payload)["reject_reason"],)
    return (payload,) if t in sb.VARIABLE else ()


def test_nasdaq_decodes_our_packets():
    rng = random.Random(SEED + 2)
    for _ in range(500):
        t, payload = _random_packet(rng)
        if t == "+":
            payload = _alpha(rng, 40).encode()       # its Debug decodes text as ASCII
        pkt = sb.pack_packet(t, payload)
        n, msg = nq.SoupMessage.from_bytes(pkt)
        assert n == len(pkt) and msg.Indicator == t, WHERE
        assert _nq_fields(msg) == _our_fields(t, payload), WHERE


def test_we_decode_nasdaq_packets():
    rng = random.Random(SEED + 3)
    for _ in range(300):
        seq = rng.randrange(10 ** rng.randint(1, 19))
        user, pw, sess = _alpha(rng, 6), _alpha(rng, 10), _alpha(rng, 10)
        data = rng.randbytes(rng.randint(0, 80))
        msgs = [nq.LoginRequest(user, pw, sess, str(seq)), nq.LoginAccepted(sess, seq),
                nq.LoginRejected(rng.choice("AS")), nq.SequencedData(data),
                nq.UnSequencedData(data), nq.Debug(_alpha(rng, 30)), nq.ClientHeartbeat(),
                nq.ServerHeartbeat(), nq.EndOfSession(), nq.LogoutRequest()]
        stream = b"".join(m.to_bytes()[1] for m in msgs)
        d = sb.Deframer()
        got = []
        for at in range(0, len(stream), 7):
            got += d.feed(stream[at:at + 7])
        d.close()
        assert [t for t, _ in got] == [m.Indicator for m in msgs], WHERE
        for (t, payload), m in zip(got, msgs, strict=True):
            assert _our_fields(t, payload) == _nq_fields(m), WHERE


def test_byte_identical_except_numeric_justification():
    """Same bytes as nasdaq-protocols everywhere but the sequence fields, which it pads on
    the right and we (per the specification) on the left."""
    ours = sb.login_request("usr", "pw", "S1", 5)
    theirs = nq.LoginRequest("usr", "pw", "S1", "5").to_bytes()[1]
    assert ours[:29] == theirs[:29]
    assert (ours[29:], theirs[29:]) == (b"5".rjust(20), b"5".ljust(20))
    ours = sb.encode("A", session="S1", sequence_number=77)
    theirs = nq.LoginAccepted("S1", 77).to_bytes()[1]
    assert ours[:13] == theirs[:13]
    assert (ours[13:], theirs[13:]) == (b"77".rjust(20), b"77".ljust(20))
    for t, m in (("J", nq.LoginRejected("A")), ("R", nq.ClientHeartbeat()),
                 ("H", nq.ServerHeartbeat()), ("Z", nq.EndOfSession()),
                 ("O", nq.LogoutRequest())):
        payload = b"A" if t == "J" else b""
        assert sb.pack_packet(t, payload) == m.to_bytes()[1]
    assert sb.pack_packet("U", b"\x00\xff") == nq.UnSequencedData(b"\x00\xff").to_bytes()[1]
    assert sb.pack_packet("S", b"\x00\xff") == nq.SequencedData(b"\x00\xff").to_bytes()[1]
    assert struct.unpack(">H", ours[:2])[0] == nq.LoginAccepted.Len


def test_decode_rejects_non_printable_fields():
    payload = bytearray(sb.login_request("usr", "pw")[3:])
    payload[3] = 0
    with pytest.raises(sb.SoupBinTcpError, match=r"login_request.username holds "
                                                  r"non-printable bytes b'usr\\x00"):
        sb.decode("L", bytes(payload))
