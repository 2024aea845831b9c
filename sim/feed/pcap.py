"""Captures: pcap / pcapng in and out (through scapy), and day file -> timed Ethernet frames.

Reading stays at the raw-bytes level (scapy's ``RawPcapReader`` family, which also detects
pcap vs pcapng and gzip by magic); dissecting every packet into scapy layers would be two
orders of magnitude slower and the card only ever sees bytes anyway.

Timestamps are integer nanoseconds. A float of seconds cannot hold a nanosecond-resolution
Unix time (2**53 ns is only about 104 days), and the frame times derived from ITCH timestamps
are exact nanoseconds that two captures are interleaved by.
"""

from __future__ import annotations

import heapq
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from scapy.data import DLT_EN10MB
from scapy.error import Scapy_Exception
from scapy.utils import RawPcapNgReader, RawPcapReader, RawPcapWriter

from proto.net import MIN_FRAME

from .frames import DEFAULT_SRC_MAC, DEFAULT_SRC_PORT, FeedAddress, FrameTemplate
from .mold import MoldPacket, Packetizer, heartbeat, itch_timestamp, udp_payload_limit

__all__ = [
    "Frame", "dayfile_to_frames", "merge_frames", "read_frames", "wire_time_ns",
    "write_frames",
]

_NS = 1_000_000_000
#: Sizes of a classic pcap file's global header and of each record's header.
_PCAP_HEADER = 24
_RECORD_HEADER = 16
#: Bytes a frame occupies on the wire beyond what a capture shows: preamble + SFD (8),
#: FCS (4), minimum inter-frame gap (12).
WIRE_OVERHEAD = 8 + 4 + 12


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured Ethernet frame (no FCS) and its capture time in integer nanoseconds."""

    timestamp_ns: int
    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.timestamp_ns, int):
            raise TypeError(f"timestamp_ns must be an int of nanoseconds, "
                            f"got {self.timestamp_ns!r}")

    @property
    def timestamp(self) -> float:
        """Capture time in seconds (a float: loses sub-microsecond precision for Unix times)."""
        return self.timestamp_ns / _NS


def read_frames(path: str | os.PathLike[str]) -> Iterator[Frame]:
    """Frames of a pcap or pcapng capture (optionally gzip-compressed), in file order.

    Only Ethernet (DLT_EN10MB) captures are accepted: the card's input is Ethernet frames,
    and guessing the framing of, say, a Linux "cooked" capture would feed it garbage.
    """
    name = os.fspath(path)
    try:
        reader = RawPcapReader(name)    # falls back to RawPcapNgReader by magic
    except Scapy_Exception as e:
        raise ValueError(f"{name}: not a pcap or pcapng capture ({e})") from None
    try:
        if isinstance(reader, RawPcapNgReader):
            for data, meta in reader:
                if meta.linktype != DLT_EN10MB:
                    raise ValueError(f"{name}: pcapng interface link type {meta.linktype} "
                                     f"is not Ethernet ({DLT_EN10MB})")
                ticks = 0 if meta.tshigh is None else (meta.tshigh << 32) | meta.tslow
                yield Frame(ticks * _NS // meta.tsresol, data)
            cut = _pcapng_cut(reader.f)
            if cut is not None:
                raise ValueError(f"{name}: truncated: the block at byte offset {cut[0]} is "
                                 f"cut short ({cut[2]} of its {cut[1]} bytes present)")
        else:
            if reader.linktype != DLT_EN10MB:
                raise ValueError(f"{name}: pcap link type {reader.linktype} is not "
                                 f"Ethernet ({DLT_EN10MB})")
            scale = 1 if reader.nano else 1000
            end = _PCAP_HEADER     # where the records read so far end
            k = -1
            for k, (data, meta) in enumerate(reader):  # noqa: B007 - k is read after the loop
                if len(data) < meta.caplen:
                    raise ValueError(f"{name}: truncated in frame {k} ({len(data)} of "
                                     f"{meta.caplen} captured bytes present)")
                end += _RECORD_HEADER + meta.caplen
                yield Frame(meta.sec * _NS + meta.usec * scale, data)
            # scapy ends quietly on a record header cut short: the frame would be lost unseen.
            left = reader.f.tell() - end
            if left > 0:
                where = f"frame {k}" if k >= 0 else "the file header"
                raise ValueError(f"{name}: truncated after {where}: {left} of the "
                                 f"{_RECORD_HEADER} bytes of a record header present")
    finally:
        reader.close()


def _pcapng_cut(f) -> tuple[int, int, int] | None:
    """``(offset, declared length, bytes present)`` of a pcapng block the file ends inside.

    scapy's pcapng reader stops quietly at a block cut short, so a cut-off capture would lose
    its last frame unseen. This walks the block lengths again, reading 12 bytes and the last
    byte of each block (a seek, also in a gzip file), so it costs little beside the frames.
    """
    f.seek(0)
    offset, order = 0, "<"
    while head := f.read(12):
        if len(head) < 12:
            return offset, 12, len(head)
        if head[:4] == b"\x0a\x0d\x0d\x0a":     # a section header: its byte order
            order = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        (length,) = struct.unpack(order + "I", head[4:8])
        if length < 12:
            return offset, length, 12
        f.seek(offset + length - 1)
        if not f.read(1):
            f.seek(0, os.SEEK_END)
            return offset, length, f.tell() - offset
        offset += length
    return None


def write_frames(path: str | os.PathLike[str], frames: Iterable[Frame], *,
                 linktype: int = DLT_EN10MB, nano: bool = True) -> int:
    """Write a classic pcap (nanosecond timestamps unless ``nano=False``); return the count.

    A ``.gz`` suffix compresses the output. Microsecond files round times down.
    """
    name = os.fspath(path)
    n = 0
    with RawPcapWriter(name, linktype=linktype, nano=nano, gz=name.endswith(".gz"),
                       bufsz=1 << 20) as w:
        w.write_header(None)
        for f in frames:
            sec, frac = divmod(f.timestamp_ns, _NS)
            w.write_packet(f.data, sec=sec, usec=frac if nano else frac // 1000)
            n += 1
    return n


def merge_frames(*captures: Iterable[Frame]) -> Iterator[Frame]:
    """Interleave captures by time (stable: equal times keep the argument order), e.g. the
    A and B lines of one feed into one capture."""
    return heapq.merge(*captures, key=lambda f: f.timestamp_ns)


def wire_time_ns(frame_len: int, link_bps: int) -> int:
    """Nanoseconds a frame of ``frame_len`` captured bytes (no FCS) occupies a link: padding
    to the minimum, FCS, preamble and inter-frame gap included, rounded up."""
    return -(-(max(frame_len, MIN_FRAME) + WIRE_OVERHEAD) * 8 * _NS // link_bps)


def dayfile_to_frames(
    messages: Iterable[bytes], session: str, feed: FeedAddress, *, mtu: int = 1500,
    first_seq: int = 1, start_ns: int = 0, link_bps: int | None = 10_000_000_000,
    max_messages: int | None = None, max_delay_ns: int | None = None,
    heartbeat_ns: int | None = None, end_of_session: bool = False,
    src_ip: str = "10.0.0.1", src_port: int = DEFAULT_SRC_PORT,
    src_mac: str | bytes = DEFAULT_SRC_MAC, dst_mac: str | bytes | None = None,
    vlan: int | None = None, ip_options: bytes = b"", udp_checksum: bool = True,
    first_ident: int = 0,
) -> Iterator[Frame]:
    """Publish a message stream as one MoldUDP64 feed line: timed Ethernet frames.

    Each packet is stamped ``start_ns`` + the ITCH timestamp of its *last* message: a
    publisher cannot send a packet before the newest message in it exists, so capture time
    never precedes the event time of anything the frame carries (with ``max_delay_ns`` the
    difference to the first message is bounded). ``start_ns`` is the capture time of
    midnight of the trading day (0 keeps times as nanoseconds since midnight); two lines
    built from the same day with different ``start_ns`` skews interleave realistically
    with :func:`merge_frames`. With ``link_bps``, a frame never starts before the previous
    one has left the wire, so a burst of packets is spaced at line rate as on a real link.

    ``heartbeat_ns`` emits a heartbeat after that much silence (and every ``heartbeat_ns``
    while it lasts), as publishers do; ``end_of_session`` appends the end-of-session packet.
    The IPv4 identification counts up from ``first_ident`` like a sender's IP stack.
    Arguments are validated here, before the first frame is asked for.
    """
    if link_bps is not None and link_bps <= 0:
        raise ValueError(f"link_bps must be positive, got {link_bps}")
    if heartbeat_ns is not None and heartbeat_ns <= 0:
        raise ValueError(f"heartbeat_ns must be positive, got {heartbeat_ns}")
    template = FrameTemplate(
        dst_ip=feed.group, dst_port=feed.port, src_ip=src_ip, src_port=src_port,
        dst_mac=dst_mac, src_mac=src_mac, vlan=vlan, ip_options=ip_options,
        udp_checksum=udp_checksum)
    packetizer = Packetizer(session, first_seq, udp_payload_limit(mtu, len(ip_options)),
                            max_messages=max_messages, max_delay_ns=max_delay_ns)
    return _line(messages, packetizer, template, start_ns=start_ns, link_bps=link_bps,
                 heartbeat_ns=heartbeat_ns, end_of_session=end_of_session, ident=first_ident)


def _line(messages: Iterable[bytes], packetizer: Packetizer, template: FrameTemplate, *,
          start_ns: int, link_bps: int | None, heartbeat_ns: int | None,
          end_of_session: bool, ident: int) -> Iterator[Frame]:
    free_at = None      # when the link is free for the next frame (None before the first)
    last_sent = None    # time of the last frame sent, for heartbeats

    def emit(payload: bytes, at: int) -> Frame:
        nonlocal ident, free_at, last_sent
        if free_at is not None and at < free_at:
            at = free_at
        data = template.build(payload, ident)
        ident = (ident + 1) & 0xFFFF
        free_at = at if link_bps is None else at + wire_time_ns(len(data), link_bps)
        last_sent = at
        return Frame(at, data)

    def publish(packet: MoldPacket) -> Iterator[Frame]:
        at = start_ns + itch_timestamp(packet.messages[-1])
        if heartbeat_ns is not None and last_sent is not None:
            while at - last_sent > heartbeat_ns:
                # A heartbeat announces the next sequence number: this packet's first.
                yield emit(heartbeat(packetizer.session, packet.seq), last_sent + heartbeat_ns)
        yield emit(packet.payload, at)

    for m in messages:
        packet = packetizer.add(m)
        if packet is not None:
            yield from publish(packet)
    packet = packetizer.flush()
    if packet is not None:
        yield from publish(packet)
    if end_of_session:
        yield emit(packetizer.end_of_session().payload,
                   start_ns if free_at is None else free_at)
