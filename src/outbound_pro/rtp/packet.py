"""RTP and RTCP packets, RFC 3550 receive statistics and RFC 4733 events — sans-I/O.

Everything here is pure code: bytes in, values out, time passed in as a float (seconds on any
monotonic clock). Nothing imports asyncio or reads a clock, so the relay, the recorder and the
tests drive the same code, and the estimators can be checked against hand-worked examples
(architecture principle 1).

Two layers:

* Packet classes (:class:`RtpPacket`, :class:`SenderReport`, :class:`ReceiverReport`,
  :class:`RtcpOther`, :class:`TelephoneEvent`) that parse and serialise whole packets. They
  allocate, so they are for tests, tools and the low-rate RTCP path, not for every RTP packet.
* Estimators (:class:`SequenceTracker` — RFC 3550 A.1/A.3, :class:`StreamAnalyzer` — per
  stream loss and A.8 jitter over many SSRCs). The analyzer takes raw datagrams with their
  arrival times. Its common case (the next packet of the current stream) is a short branch on
  a copy of the current source's state, and that copy can be *lent* (:meth:`StreamAnalyzer.lend`,
  :meth:`StreamAnalyzer.settle`): the relay's C fast path (``rtp/_fastpath.c``) runs the same
  branch on it and hands every other datagram back to :meth:`StreamAnalyzer.packet`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

import msgspec

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

#: Clock rates of the static payload types (RFC 3551 table 4) that a call centre meets.
#: G.722 (9) is 8000 by the RFC's historical error, although it samples at 16 kHz.
STATIC_CLOCK_RATES: dict[int, int] = {pt: 8000 for pt in (0, 3, 4, 8, 9, 13, 18)}
DEFAULT_CLOCK_RATE = 8000

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_RTCP_HEADER = struct.Struct("!BBH")
_SR_BODY = struct.Struct("!IIIIII")
_REPORT_BLOCK = struct.Struct("!IBBHIIII")
_EVENT = struct.Struct("!BBH")


class PacketError(ValueError):
    """A datagram that is not a valid RTP/RTCP packet; the message says what is wrong."""


# --------------------------------------------------------------------------------------- RTP


class RtpPacket(msgspec.Struct, kw_only=True):
    """One RTP packet (RFC 3550 section 5.1).

    ``padding`` is the number of padding octets including the final count octet (0 = none), so
    a parsed packet serialises back to the same bytes. ``extension_profile`` is ``None`` when
    the X bit is clear; ``extension`` holds the header-extension words (a multiple of 4 bytes).
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        if len(data) < RTP_HEADER_SIZE:
            raise PacketError(f"RTP packet too short: {len(data)} bytes")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise PacketError(f"RTP version {b0 >> 6}, expected 2")
        if 200 <= b1 <= 204:
            raise PacketError("RTCP packet (payload type 200-204) on an RTP path")
        cc = b0 & 0x0F
        pos = RTP_HEADER_SIZE + 4 * cc
        if len(data) < pos:
            raise PacketError(f"RTP packet too short for {cc} CSRC entries")
        csrc = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
        profile: int | None = None
        extension = b""
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise PacketError("RTP packet too short for its header extension")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            if len(data) < pos + 4 * words:
                raise PacketError("RTP header extension longer than the packet")
            extension = bytes(data[pos : pos + 4 * words])
            pos += 4 * words
        end = len(data)
        padding = 0
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or padding > end - pos:
                raise PacketError(f"bad RTP padding count {padding}")
            end -= padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension_profile=profile,
            extension=extension,
            padding=padding,
        )

    def serialize(self) -> bytes:
        if len(self.csrc) > 15:
            raise PacketError("at most 15 CSRC entries fit in an RTP header")
        if len(self.extension) % 4:
            raise PacketError("RTP header extension must be a whole number of 32-bit words")
        if not 0 <= self.padding <= 255:
            raise PacketError("RTP padding must be 0..255 octets")
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [
            _HEADER.pack(
                b0, b1, self.sequence_number & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            parts.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """True for an RTCP packet multiplexed on the RTP port (RFC 5761 section 4: PT 200-204)."""
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 200 <= data[1] <= 204


# -------------------------------------------------------------------------------------- RTCP


class ReportBlock(msgspec.Struct, frozen=True):
    """Reception report about one source (RFC 3550 section 6.4.1).

    ``fraction_lost`` is the 8-bit fixed-point fraction (0..255); ``cumulative_lost`` is signed
    (duplicates can make it negative); ``jitter`` is in timestamp units of the reported stream.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def serialize(self) -> bytes:
        lost = self.cumulative_lost
        lost = max(-0x800000, min(0x7FFFFF, lost)) & 0xFFFFFF
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost & 0xFF,
            lost >> 16,
            lost & 0xFFFF,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr & 0xFFFFFFFF,
            self.delay_since_last_sr & 0xFFFFFFFF,
        )


def _parse_blocks(data: bytes, pos: int, count: int, end: int) -> tuple[ReportBlock, ...]:
    if pos + 24 * count > end:
        raise PacketError(f"RTCP packet too short for {count} report blocks")
    blocks = []
    for _ in range(count):
        ssrc, fraction, lost_hi, lost_lo, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
            data, pos
        )
        lost = (lost_hi << 16) | lost_lo
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, fraction, lost, highest, jitter, lsr, dlsr))
        pos += 24
    return tuple(blocks)


def _rtcp_header(packet_type: int, count: int, body_len: int) -> bytes:
    if body_len % 4:
        raise PacketError("RTCP packet body must be a whole number of 32-bit words")
    if not 0 <= count <= 31:
        raise PacketError("RTCP count field is 5 bits")
    return _RTCP_HEADER.pack((RTP_VERSION << 6) | count, packet_type, body_len // 4)


class SenderReport(msgspec.Struct, frozen=True):
    """RTCP SR (RFC 3550 section 6.4.1). ``ntp_timestamp`` is the 64-bit NTP fixed-point value."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def serialize(self) -> bytes:
        body = _SR_BODY.pack(
            self.ssrc,
            (self.ntp_timestamp >> 32) & 0xFFFFFFFF,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        )
        body += b"".join(r.serialize() for r in self.reports) + self.extension
        return _rtcp_header(RTCP_SR, len(self.reports), len(body)) + body


class ReceiverReport(msgspec.Struct, frozen=True):
    """RTCP RR (RFC 3550 section 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc)
        body += b"".join(r.serialize() for r in self.reports) + self.extension
        return _rtcp_header(RTCP_RR, len(self.reports), len(body)) + body


class RtcpOther(msgspec.Struct, frozen=True):
    """Any other RTCP packet (SDES, BYE, APP, feedback...), kept opaque so it round-trips."""

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        return _rtcp_header(self.packet_type, self.count, len(self.body)) + self.body


RtcpPacket = SenderReport | ReceiverReport | RtcpOther


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP datagram (RFC 3550 section 6.1 and the A.2 validity checks).

    Only the last packet of a compound may carry padding; the lengths must add up exactly to
    the datagram. The first-packet-must-be-SR/RR rule is not enforced so that reduced-size
    RTCP (RFC 5506) is accepted.
    """
    packets: list[RtcpPacket] = []
    pos = 0
    total = len(data)
    if total < 4:
        raise PacketError(f"RTCP packet too short: {total} bytes")
    while pos < total:
        if total - pos < 4:
            raise PacketError("trailing bytes after the last RTCP packet")
        b0, packet_type, words = _RTCP_HEADER.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise PacketError(f"RTCP version {b0 >> 6}, expected 2")
        length = 4 * (words + 1)
        end = pos + length
        if end > total:
            raise PacketError("RTCP length field runs past the datagram")
        count = b0 & 0x1F
        body_end = end
        if b0 & 0x20:
            if end != total:
                raise PacketError("RTCP padding is only allowed in the last packet")
            pad = data[end - 1]
            if pad == 0 or pad > length - 4:
                raise PacketError(f"bad RTCP padding count {pad}")
            body_end -= pad
        body = pos + 4
        if packet_type == RTCP_SR:
            if body + 24 > body_end:
                raise PacketError("RTCP SR too short")
            ssrc, ntp_hi, ntp_lo, rtp_ts, pkts, octets = _SR_BODY.unpack_from(data, body)
            blocks = _parse_blocks(data, body + 24, count, body_end)
            packets.append(
                SenderReport(
                    ssrc,
                    (ntp_hi << 32) | ntp_lo,
                    rtp_ts,
                    pkts,
                    octets,
                    blocks,
                    bytes(data[body + 24 + 24 * count : body_end]),
                )
            )
        elif packet_type == RTCP_RR:
            if body + 4 > body_end:
                raise PacketError("RTCP RR too short")
            (ssrc,) = struct.unpack_from("!I", data, body)
            blocks = _parse_blocks(data, body + 4, count, body_end)
            packets.append(
                ReceiverReport(ssrc, blocks, bytes(data[body + 4 + 24 * count : body_end]))
            )
        else:
            packets.append(RtcpOther(packet_type, count, bytes(data[body:body_end])))
        pos = end
    return packets


def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """Build a compound RTCP datagram."""
    return b"".join(p.serialize() for p in packets)


# ---------------------------------------------------------------------------------- RFC 4733


class TelephoneEvent(msgspec.Struct, frozen=True):
    """An RFC 4733 named-event payload (section 2.3): DTMF digits are events 0-15."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise PacketError(f"telephone-event payload too short: {len(payload)} bytes")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        if not 0 <= self.volume <= 63:
            raise PacketError("telephone-event volume is 0..63 (-dBm0)")
        return _EVENT.pack(
            self.event & 0xFF, (0x80 if self.end else 0) | self.volume, self.duration & 0xFFFF
        )


def parse_rtpmap(rtpmap: Mapping[int, str]) -> tuple[dict[int, int], frozenset[int]]:
    """SDP ``a=rtpmap`` values (``{101: "telephone-event/8000"}``) to clock rates and event PTs.

    Static payload types keep their RFC 3551 rates unless the mapping overrides them.
    """
    rates = dict(STATIC_CLOCK_RATES)
    events = set()
    for pt, value in rtpmap.items():
        if not 0 <= pt <= 127:
            raise ValueError(f"payload type {pt} out of range")
        name, _, rest = value.partition("/")
        rate_text = rest.partition("/")[0]
        if rate_text:
            rate = int(rate_text)
            if rate <= 0:
                raise ValueError(f"bad clock rate in rtpmap {value!r}")
            rates[pt] = rate
        if name.strip().lower() == "telephone-event":
            events.add(pt)
    return rates, frozenset(events)


# ----------------------------------------------------------------------------- statistics


class SequenceTracker:
    """RFC 3550 appendix A.1 sequence validation and A.3 loss accounting for one SSRC.

    Follows the RFC's ``init_seq``/``update_seq`` exactly (probation of ``MIN_SEQUENTIAL``
    packets, ``MAX_DROPOUT`` jump tolerance, re-sync on two sequential packets after a big
    jump), with one fix: the in-sequence test during probation compares modulo 2**16, where the
    RFC's C code compares ``seq == max_seq + 1`` in ``int`` and so fails when probation
    straddles 65535 -> 0.
    """

    __slots__ = (
        "bad_seq",
        "base_seq",
        "cycles",
        "expected_prior",
        "max_seq",
        "probation",
        "received",
        "received_prior",
    )

    def __init__(self, seq: int) -> None:
        self._init(seq)
        self.max_seq = (seq - 1) & 0xFFFF
        self.probation = MIN_SEQUENTIAL

    def _init(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = RTP_SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self.probation = 0

    def update(self, seq: int) -> bool:
        """Account one packet; False while on probation or for a packet judged invalid."""
        udelta = (seq - self.max_seq) & 0xFFFF
        if self.probation:
            if seq == (self.max_seq + 1) & 0xFFFF:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init(seq)
                    self.received += 1
                    return True
            else:
                self.probation = MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += RTP_SEQ_MOD
            self.max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq == self.bad_seq:
                self._init(seq)
            else:
                self.bad_seq = (seq + 1) & 0xFFFF
                return False
        self.received += 1
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if self.probation:
            return 0
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3); negative when duplicates outnumber losses."""
        return self.expected - self.received

    def interval_fraction_lost(self) -> int:
        """8-bit fraction lost since the previous call (A.3), as an RR would carry it."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        self.expected_prior = expected
        received_interval = self.received - self.received_prior
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval


class JitterEstimator:
    """RFC 3550 appendix A.8 interarrival jitter, in timestamp units.

    ``D = (Rj - Ri) - (Sj - Si)`` with arrival times converted to timestamp units; the RTP
    difference is taken modulo 2**32 so timestamp wrap is harmless. ``J += (|D| - J) / 16``.
    """

    __slots__ = ("jitter", "last_arrival", "last_ts", "max_jitter", "rate")

    def __init__(self, rate: int = DEFAULT_CLOCK_RATE) -> None:
        self.rate = rate
        self.jitter = 0.0
        self.max_jitter = 0.0
        self.last_arrival: float | None = None
        self.last_ts = 0

    def update(self, arrival: float, timestamp: int) -> float:
        last = self.last_arrival
        self.last_arrival = arrival
        last_ts = self.last_ts
        self.last_ts = timestamp
        if last is not None:
            dts = ((timestamp - last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = (arrival - last) * self.rate - dts
            self.jitter += (abs(d) - self.jitter) / 16.0
            if self.jitter > self.max_jitter:
                self.max_jitter = self.jitter
        return self.jitter


class StreamStats(msgspec.Struct, kw_only=True):
    """Receive statistics of the RTP arriving on one leg, summed over every SSRC it used.

    ``expected``/``lost`` follow RFC 3550 A.3 per SSRC (packets during the A.1 probation of a
    new SSRC are counted in ``packets`` but not in ``expected``). ``jitter_ms`` is the A.8
    estimate of the SSRC heard last; ``max_jitter_ms`` the largest of any.
    """

    packets: int = 0
    bytes: int = 0
    expected: int = 0
    lost: int = 0
    loss_fraction: float = 0.0
    jitter_ms: float = 0.0
    max_jitter_ms: float = 0.0
    ssrcs: int = 0
    ssrc_changes: int = 0
    telephone_event_packets: int = 0
    telephone_events: int = 0
    malformed: int = 0


class RtcpStats(msgspec.Struct, kw_only=True):
    """What the peer of one leg said in RTCP: its reception of what we relay to it, and its SR.

    ``fraction_lost`` (0..1), ``cumulative_lost`` and ``jitter_ms`` come from the last report
    block received; ``max_jitter_ms`` is the largest reported over the call.
    """

    packets: int = 0
    sender_reports: int = 0
    receiver_reports: int = 0
    malformed: int = 0
    fraction_lost: float = 0.0
    cumulative_lost: int = 0
    jitter_ms: float = 0.0
    max_jitter_ms: float = 0.0
    sender_packet_count: int = 0
    sender_octet_count: int = 0


#: :meth:`StreamAnalyzer.lend`'s state: payload type, next sequence number, SSRC, max_seq,
#: cycles, received, jitter, max_jitter, last arrival, last timestamp, clock rate.
FastState = tuple[int, int, int, int, int, int, float, float, float, int, int]


class _Source:
    __slots__ = ("event_ts", "jitter", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = SequenceTracker(seq)
        self.jitter = JitterEstimator()
        self.event_ts = -1


class StreamAnalyzer:
    """Receive-side statistics for one leg: RTP and RTCP, one datagram at a time.

    :meth:`packet` runs in the relay's per-datagram callback, while the datagram is still in
    the CPU cache, so it is written for speed: the common packet — same SSRC and payload type
    as the one before, next sequence number — takes a branch of a dozen operations on the
    analyzer's own slots (the A.1 in-order case and the A.8 update); everything else goes
    through :meth:`_account`, the general path, which also refreshes the fast-path state.

    Sources are kept per SSRC (up to ``max_sources``; an SSRC seen after that is counted but
    not tracked) so a stream that flips between two SSRCs — some gateways send RFC 4733 events
    under their own SSRC — keeps correct sequence state for each. RTCP multiplexed on the RTP
    port (RFC 5761) is recognised and handed to :meth:`feed_rtcp`.
    """

    __slots__ = (
        "_current",
        "_current_ssrc",
        "_cycles",
        "_fast",
        "_jitter",
        "_last_arrival",
        "_last_ts",
        "_max_jitter",
        "_max_seq",
        "_next_seq",
        "_pt",
        "_rate",
        "_received",
        "_sources",
        "_untracked",
        "bytes",
        "event_packets",
        "event_pts",
        "events",
        "malformed",
        "max_sources",
        "packets",
        "rates",
        "rtcp",
        "ssrc_changes",
    )

    def __init__(self, rtpmap: Mapping[int, str] | None = None, max_sources: int = 32) -> None:
        self.rates: dict[int, int] = dict(STATIC_CLOCK_RATES)
        self.event_pts: frozenset[int] = frozenset()
        if rtpmap:
            self.set_rtpmap(rtpmap)
        self.max_sources = max_sources
        self._sources: dict[int, _Source] = {}
        self._current: _Source | None = None
        self._current_ssrc = -1
        self._untracked: set[int] = set()
        self.packets = 0
        self.bytes = 0
        self.ssrc_changes = 0
        self.event_packets = 0
        self.events = 0
        self.malformed = 0
        self.rtcp = RtcpStats()
        # Fast-path copy of the current source's state; ``_fast`` says it is live. ``_pt`` is
        # -1 when the fast path is off, so no packet matches it.
        self._fast = False
        self._pt = -1
        self._next_seq = -1
        self._rate = DEFAULT_CLOCK_RATE
        self._max_seq = self._cycles = self._received = self._last_ts = 0
        self._jitter = self._max_jitter = self._last_arrival = 0.0

    def set_rtpmap(self, rtpmap: Mapping[int, str]) -> None:
        self.rates, self.event_pts = parse_rtpmap(rtpmap)

    def packet(self, data: bytes, arrival: float) -> None:
        """Account one datagram received at ``arrival`` (seconds, any monotonic clock)."""
        self.packets += 1
        self.bytes += len(data)
        if len(data) >= RTP_HEADER_SIZE:
            b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
            if (
                seq == self._next_seq
                and b1 & 0x7F == self._pt
                and ssrc == self._current_ssrc
                and b0 & 0xC0 == 0x80
            ):
                if seq == 0:
                    self._cycles += RTP_SEQ_MOD
                self._max_seq = seq
                self._next_seq = (seq + 1) & 0xFFFF
                self._received += 1
                d = (arrival - self._last_arrival) * self._rate - (
                    ((ts - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                )
                jitter = self._jitter
                jitter += ((d if d >= 0 else -d) - jitter) * 0.0625
                self._jitter = jitter
                if jitter > self._max_jitter:
                    self._max_jitter = jitter
                self._last_arrival = arrival
                self._last_ts = ts
                return
        self._sync()
        self._account(data, arrival)
        self._load()

    def lend(self) -> FastState:
        """Hand the in-order branch of :meth:`packet` to another implementation of it.

        Returns the fast-path state (payload type, next sequence number, SSRC, then the
        sequence and jitter fields of the current source, see :data:`FastState`); payload type
        -1 means the next datagram must come to :meth:`packet`. Until :meth:`settle` the
        borrower owns that state: :meth:`packet` and :meth:`stats` must not run before the
        state comes back (they would work from a stale copy), which is why the relay settles,
        accounts and lends again for every datagram its C path does not take.
        """
        self._sync()
        state = (
            self._pt,
            self._next_seq,
            self._current_ssrc,
            self._max_seq,
            self._cycles,
            self._received,
            self._jitter,
            self._max_jitter,
            self._last_arrival,
            self._last_ts,
            self._rate,
        )
        self._pt = -1
        return state

    def settle(self, packets: int, octets: int, state: FastState) -> None:
        """Take back lent state, with the packets and bytes the borrower accounted on it."""
        self.packets += packets
        self.bytes += octets
        if state[0] < 0:
            return
        (
            self._pt,
            self._next_seq,
            _ssrc,
            self._max_seq,
            self._cycles,
            self._received,
            self._jitter,
            self._max_jitter,
            self._last_arrival,
            self._last_ts,
            self._rate,
        ) = state
        self._fast = True

    def feed(self, packets: Sequence[bytes], arrivals: Sequence[float]) -> None:
        """Account a batch of datagrams in arrival order, with their arrival times."""
        packet = self.packet
        for data, arrival in zip(packets, arrivals, strict=True):
            packet(data, arrival)

    def _sync(self) -> None:
        """Write the fast-path copy back into the current source's tracker and estimator."""
        if self._fast:
            src = self._current
            assert src is not None
            seq, jit = src.seq, src.jitter
            seq.max_seq, seq.cycles, seq.received = self._max_seq, self._cycles, self._received
            jit.jitter, jit.max_jitter = self._jitter, self._max_jitter
            jit.last_arrival, jit.last_ts = self._last_arrival, self._last_ts
            self._fast = False

    def _load(self) -> None:
        """Take a fast-path copy of the current source, if its next packet can use one."""
        src = self._current
        if self._pt < 0 or src is None or src.seq.probation or src.jitter.last_arrival is None:
            self._pt = -1
            return
        seq, jit = src.seq, src.jitter
        self._max_seq, self._cycles, self._received = seq.max_seq, seq.cycles, seq.received
        self._next_seq = (seq.max_seq + 1) & 0xFFFF
        self._jitter, self._max_jitter = jit.jitter, jit.max_jitter
        self._last_arrival, self._last_ts = jit.last_arrival, jit.last_ts
        self._rate = jit.rate
        self._fast = True

    def _account(self, data: bytes, arrival: float) -> None:
        """The general path for one datagram: validation, RTCP-mux, SSRC changes, events.

        Leaves ``_pt`` set to the payload type when the packet was audio of a tracked source
        (the condition for the fast path to take the next one), else -1.
        """
        self._pt = -1
        if len(data) < RTP_HEADER_SIZE:
            self.malformed += 1
            return
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 & 0xC0 != 0x80:
            self.malformed += 1
            return
        if 200 <= b1 <= 204:
            self.feed_rtcp(data)
            return
        current = self._current
        if ssrc != self._current_ssrc:
            if self._current_ssrc != -1:
                self.ssrc_changes += 1
            self._current_ssrc = ssrc
            current = self._sources.get(ssrc)
            if current is None:
                if len(self._sources) < self.max_sources:
                    current = self._sources[ssrc] = _Source(seq)
                elif len(self._untracked) < 1024:
                    self._untracked.add(ssrc)
            self._current = current
        if current is None:
            return
        current.seq.update(seq)
        pt = b1 & 0x7F
        if pt in self.event_pts:
            self.event_packets += 1
            if ts != current.event_ts:
                current.event_ts = ts
                self.events += 1
            return
        jitter = current.jitter
        rate = self.rates.get(pt, DEFAULT_CLOCK_RATE)
        if rate != jitter.rate:
            jitter.rate = rate
            jitter.last_arrival = None
        jitter.update(arrival, ts)
        self._pt = pt

    def feed_rtcp(self, data: bytes) -> None:
        """Account one RTCP datagram from the peer (its SR and reception reports)."""
        stats = self.rtcp
        stats.packets += 1
        try:
            packets = parse_rtcp(data)
        except PacketError:
            stats.malformed += 1
            return
        for packet in packets:
            if isinstance(packet, SenderReport):
                stats.sender_reports += 1
                stats.sender_packet_count = packet.packet_count
                stats.sender_octet_count = packet.octet_count
            elif isinstance(packet, ReceiverReport):
                stats.receiver_reports += 1
            else:
                continue
            if packet.reports:
                block = packet.reports[0]
                stats.fraction_lost = block.fraction_lost / 256.0
                stats.cumulative_lost = block.cumulative_lost
                rate = (
                    self._current.jitter.rate if self._current is not None else DEFAULT_CLOCK_RATE
                )
                stats.jitter_ms = block.jitter * 1000.0 / rate
                stats.max_jitter_ms = max(stats.max_jitter_ms, stats.jitter_ms)

    def stats(self) -> StreamStats:
        self._sync()
        self._load()
        expected = sum(s.seq.expected for s in self._sources.values())
        lost = sum(s.seq.lost for s in self._sources.values())
        current = self._current
        jitter_ms = 0.0
        if current is not None:
            jitter_ms = current.jitter.jitter * 1000.0 / current.jitter.rate
        max_jitter_ms = max(
            (s.jitter.max_jitter * 1000.0 / s.jitter.rate for s in self._sources.values()),
            default=0.0,
        )
        return StreamStats(
            packets=self.packets,
            bytes=self.bytes,
            expected=expected,
            lost=lost,
            loss_fraction=max(0.0, lost / expected) if expected > 0 else 0.0,
            jitter_ms=jitter_ms,
            max_jitter_ms=max_jitter_ms,
            ssrcs=len(self._sources) + len(self._untracked),
            ssrc_changes=self.ssrc_changes,
            telephone_event_packets=self.event_packets,
            telephone_events=self.events,
            malformed=self.malformed,
        )
