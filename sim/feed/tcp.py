"""Ethernet/IPv4/TCP frames for one TCP connection: the order-entry side of a capture.

:class:`TcpConnection` turns the two byte streams of one connection (client = the card's
order-entry egress, server = the exchange's replies) into frames, keeping sequence and
acknowledgement numbers for both directions. The first frames it emits are the SYN /
SYN-ACK / ACK handshake; payload is cut into segments of at most ``mss`` bytes, each
acknowledging everything the other side has sent so far. Frames are what a MAC hands over:
destination MAC first, no FCS, padded to 60 bytes; checksums use
:func:`sim.feed.frames.internet_checksum`, and :func:`sim.feed.pcap.write_frames` writes them
(wrap each in :class:`sim.feed.pcap.Frame` with its time).

No retransmission, reordering or window management: the capture shows a clean connection,
which is what an order-entry replay needs. The TCP header layout is declared here because
:mod:`proto.net` has none yet (it belongs there once the gateware parses TCP).
"""

from __future__ import annotations

import ipaddress
import struct

from proto.layout import MessageLayout
from proto.net import ETH, ETHERTYPE_IPV4, IPPROTO_TCP, IPV4, MIN_FRAME

from .frames import internet_checksum

__all__ = ["TCP", "TcpConnection", "FIN", "SYN", "RST", "PSH", "ACK"]

TCP = MessageLayout("tcp", (
    ("src_port", 2), ("dst_port", 2), ("seq", 4), ("ack", 4), ("data_offset", 1),
    ("flags", 1), ("window", 2), ("checksum", 2), ("urgent", 2),
))
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_MSS_OPTION = 2       # TCP option kind: maximum segment size (length 4)
_IPV4_DF = 0x4000
_SEQ_MOD = 1 << 32


def _mac(text: str) -> int:
    try:
        b = bytes.fromhex(text.replace(":", "").replace("-", ""))
    except ValueError:
        b = b""
    if len(b) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return int.from_bytes(b, "big")


class _Side:
    """One endpoint: addresses, its next sequence number, its IPv4 identification."""

    def __init__(self, mac: str, ip: str, port: int, isn: int):
        if not 0 < port <= 0xFFFF:
            raise ValueError(f"TCP port {port} out of range")
        self.mac, self.ip, self.port = _mac(mac), int(ipaddress.IPv4Address(ip)), port
        self.seq = isn % _SEQ_MOD
        self.ident = 0
        self.sent = 0          #: payload bytes sent


class TcpConnection:
    """Frames of one TCP connection, client (active opener) and server.

    :meth:`client_send` / :meth:`server_send` return the frames carrying ``data`` from that
    side (after the handshake frames on first use); :meth:`close` the FIN exchange. The
    initial sequence numbers are parameters so captures are reproducible.
    """

    def __init__(self, *, client_ip: str = "10.0.0.2", client_port: int = 40000,
                 server_ip: str = "10.0.0.100", server_port: int = 15000,
                 client_mac: str = "02:00:00:00:00:02", server_mac: str = "02:00:00:00:00:64",
                 client_isn: int = 0x1000_0000, server_isn: int = 0x5000_0000,
                 mss: int = 1460, window: int = 0xFFFF, ttl: int = 64):
        if not 1 <= mss <= 0xFFFF or not 0 <= window <= 0xFFFF:
            raise ValueError(f"mss {mss} / window {window} out of range")
        self.client = _Side(client_mac, client_ip, client_port, client_isn)
        self.server = _Side(server_mac, server_ip, server_port, server_isn)
        self.mss, self.window, self.ttl = mss, window, ttl
        self.established = False
        self.closed = False

    def handshake(self) -> list[bytes]:
        """SYN, SYN-ACK, ACK (each SYN announcing ``mss``). Called by the first send."""
        if self.established:
            return []
        c, s = self.client, self.server
        mss = struct.pack(">BBH", _MSS_OPTION, 4, self.mss)
        out = [self._segment(c, s, SYN, b"", options=mss, ack=0)]
        c.seq = (c.seq + 1) % _SEQ_MOD
        out.append(self._segment(s, c, SYN | ACK, b"", options=mss))
        s.seq = (s.seq + 1) % _SEQ_MOD
        out.append(self._segment(c, s, ACK, b""))
        self.established = True
        return out

    def client_send(self, data: bytes) -> list[bytes]:
        """Frames carrying ``data`` from the client to the server."""
        return self._send(self.client, self.server, data)

    def server_send(self, data: bytes) -> list[bytes]:
        """Frames carrying ``data`` from the server to the client."""
        return self._send(self.server, self.client, data)

    def ack(self, from_client: bool) -> bytes:
        """A bare ACK from one side (what a receiver sends after data)."""
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        return self._segment(src, dst, ACK, b"")

    def close(self) -> list[bytes]:
        """Client FIN, server FIN (acknowledging the client's), client ACK."""
        if self.closed:
            return []
        out = self.handshake()
        c, s = self.client, self.server
        out.append(self._segment(c, s, FIN | ACK, b""))
        c.seq = (c.seq + 1) % _SEQ_MOD
        out.append(self._segment(s, c, FIN | ACK, b""))
        s.seq = (s.seq + 1) % _SEQ_MOD
        out.append(self._segment(c, s, ACK, b""))
        self.closed = True
        return out

    def _send(self, src: _Side, dst: _Side, data: bytes) -> list[bytes]:
        if self.closed:
            raise ValueError("the connection is closed")
        out = self.handshake()
        for at in range(0, len(data), self.mss):
            chunk = bytes(data[at:at + self.mss])
            last = at + self.mss >= len(data)
            out.append(self._segment(src, dst, ACK | (PSH if last else 0), chunk))
            src.seq = (src.seq + len(chunk)) % _SEQ_MOD
            src.sent += len(chunk)
        return out

    def _segment(self, src: _Side, dst: _Side, flags: int, payload: bytes, *,
                 options: bytes = b"", ack: int | None = None) -> bytes:
        tcp_len = TCP.length + len(options)
        header = TCP.pack(src_port=src.port, dst_port=dst.port, seq=src.seq,
                          ack=dst.seq if ack is None else ack, data_offset=(tcp_len // 4) << 4,
                          flags=flags, window=self.window) + options
        segment = header + payload
        pseudo = struct.pack(">IIBBH", src.ip, dst.ip, 0, IPPROTO_TCP, len(segment))
        csum = internet_checksum(pseudo + segment)
        at = TCP["checksum"].offset
        segment = segment[:at] + struct.pack(">H", csum) + segment[at + 2:]
        ip = IPV4.pack(version_ihl=0x45, total_length=IPV4.length + len(segment),
                       identification=src.ident, flags_fragment=_IPV4_DF, ttl=self.ttl,
                       protocol=IPPROTO_TCP, src=src.ip, dst=dst.ip)
        at = IPV4["checksum"].offset
        ip = ip[:at] + struct.pack(">H", internet_checksum(ip)) + ip[at + 2:]
        src.ident = (src.ident + 1) & 0xFFFF
        frame = ETH.pack(dst=dst.mac, src=src.mac, ethertype=ETHERTYPE_IPV4) + ip + segment
        return frame + bytes(max(0, MIN_FRAME - len(frame)))
