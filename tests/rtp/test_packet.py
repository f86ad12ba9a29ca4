"""RTP/RTCP parsing and serialising, RFC 3550 A.1/A.3/A.8 estimators, RFC 4733 events."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbound_pro.rtp.packet import (
    JitterEstimator,
    PacketError,
    ReceiverReport,
    ReportBlock,
    RtcpOther,
    RtpPacket,
    SenderReport,
    SequenceTracker,
    StreamAnalyzer,
    TelephoneEvent,
    is_rtcp,
    parse_rtcp,
    parse_rtpmap,
    serialize_rtcp,
)

# --------------------------------------------------------------------------------------- RTP


def test_parse_known_header_bytes() -> None:
    data = bytes.fromhex("80 00 00 01 00 00 00 a0 de ad be ef") + b"\xff" * 160
    p = RtpPacket.parse(data)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (0, 1, 160, 0xDEADBEEF)
    assert not p.marker and p.csrc == () and p.extension_profile is None and p.padding == 0
    assert p.payload == b"\xff" * 160
    assert p.serialize() == data


def test_marker_and_payload_type_share_the_second_byte() -> None:
    data = RtpPacket(payload_type=101, sequence_number=7, timestamp=1, ssrc=2, marker=True)
    raw = data.serialize()
    assert raw[1] == 0x80 | 101
    assert RtpPacket.parse(raw).marker is True


def test_csrc_extension_and_padding_round_trip() -> None:
    p = RtpPacket(
        payload_type=8,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=1,
        payload=b"abc",
        csrc=(10, 20, 30),
        extension_profile=0xBEDE,
        extension=b"\x10\xff\x00\x00",
        padding=5,
    )
    raw = p.serialize()
    assert raw[0] == 0x80 | 0x20 | 0x10 | 3
    assert len(raw) == 12 + 12 + 4 + 4 + 3 + 5
    assert raw[-1] == 5
    assert RtpPacket.parse(raw) == p


@given(
    pt=st.integers(0, 127).filter(lambda v: not 72 <= v <= 76),
    seq=st.integers(0, 65535),
    ts=st.integers(0, 2**32 - 1),
    ssrc=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    ext=st.one_of(st.none(), st.tuples(st.integers(0, 65535), st.binary(max_size=12))),
    padding=st.integers(0, 255),
)
def test_round_trip_property(pt, seq, ts, ssrc, payload, marker, csrc, ext, padding) -> None:
    profile, ext_data = (None, b"") if ext is None else (ext[0], ext[1] + bytes(-len(ext[1]) % 4))
    p = RtpPacket(
        payload_type=pt,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=payload,
        marker=marker,
        csrc=csrc,
        extension_profile=profile,
        extension=ext_data,
        padding=padding,
    )
    assert RtpPacket.parse(p.serialize()) == p


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "too short"),
        (bytes.fromhex("80 00 00 01 00 00 00 a0 de ad be"), "too short"),
        (bytes.fromhex("40 00 00 01 00 00 00 a0 de ad be ef"), "version 1"),
        (bytes.fromhex("00 00 00 01 00 00 00 a0 de ad be ef"), "version 0"),
        (bytes.fromhex("82 00 00 01 00 00 00 a0 de ad be ef 00 00 00 01"), "CSRC"),
        (bytes.fromhex("90 00 00 01 00 00 00 a0 de ad be ef be de"), "extension"),
        (bytes.fromhex("90 00 00 01 00 00 00 a0 de ad be ef be de 00 02 00 00 00 00"), "longer"),
        (bytes.fromhex("a0 00 00 01 00 00 00 a0 de ad be ef 01 02 00"), "padding count 0"),
        (bytes.fromhex("a0 00 00 01 00 00 00 a0 de ad be ef 01 02 09"), "padding count 9"),
        (bytes.fromhex("80 c8 00 06 00 00 00 a0 de ad be ef"), "RTCP"),
    ],
)
def test_malformed_rtp_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(PacketError):
        RtpPacket.parse(data)


def test_padding_may_cover_the_whole_payload() -> None:
    raw = bytes.fromhex("a0 00 00 01 00 00 00 a0 de ad be ef 00 00 00 04")
    p = RtpPacket.parse(raw)
    assert p.payload == b"" and p.padding == 4


def test_serialize_refuses_what_cannot_be_encoded() -> None:
    with pytest.raises(PacketError):
        RtpPacket(
            payload_type=0, sequence_number=0, timestamp=0, ssrc=0, csrc=(0,) * 16
        ).serialize()
    with pytest.raises(PacketError):
        RtpPacket(
            payload_type=0,
            sequence_number=0,
            timestamp=0,
            ssrc=0,
            extension_profile=1,
            extension=b"x",
        ).serialize()


def test_is_rtcp_distinguishes_muxed_rtcp() -> None:
    assert is_rtcp(ReceiverReport(1).serialize())
    assert not is_rtcp(
        RtpPacket(payload_type=0, sequence_number=1, timestamp=2, ssrc=3).serialize()
    )
    assert not is_rtcp(b"\x80")


# -------------------------------------------------------------------------------------- RTCP


def test_sender_report_round_trip_and_layout() -> None:
    blocks = (
        ReportBlock(0x11111111, 64, 1000, 70000, 80, 0x12345678, 65536),
        ReportBlock(0x22222222, 0, -5, 3, 0),
    )
    sr = SenderReport(0xCAFE, (0x83AA7E80 << 32) | 0x80000000, 160000, 1000, 172000, blocks)
    raw = sr.serialize()
    assert raw[:4] == bytes([0x82, 200]) + (len(raw) // 4 - 1).to_bytes(2, "big")
    assert len(raw) == 4 + 24 + 2 * 24
    assert parse_rtcp(raw) == [sr]


def test_negative_cumulative_lost_is_sign_extended() -> None:
    rr = ReceiverReport(1, (ReportBlock(2, 0, -1, 0, 0),))
    raw = rr.serialize()
    assert raw[12:16] == b"\x00\xff\xff\xff"
    assert parse_rtcp(raw)[0].reports[0].cumulative_lost == -1  # type: ignore[union-attr]


def test_compound_with_sdes_and_bye_round_trips() -> None:
    sdes = RtcpOther(202, 1, b"\x00\x00\x00\x01\x01\x04host\x00\x00")
    bye = RtcpOther(203, 1, b"\x00\x00\x00\x01")
    packets = [ReceiverReport(1, (ReportBlock(9, 1, 2, 3, 4, 5, 6),)), sdes, bye]
    raw = serialize_rtcp(packets)
    assert parse_rtcp(raw) == packets


def test_rtcp_padding_in_the_last_packet() -> None:
    body = ReceiverReport(7).serialize()
    padded = (
        bytes([body[0] | 0x20, body[1]]) + (2).to_bytes(2, "big") + body[4:] + b"\x00\x00\x00\x04"
    )
    assert parse_rtcp(padded) == [ReceiverReport(7)]


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\xc9",  # too short
        bytes.fromhex("40 c9 00 01 00 00 00 01"),  # version 1
        bytes.fromhex("80 c9 00 05 00 00 00 01"),  # length past the end
        bytes.fromhex("81 c9 00 01 00 00 00 01"),  # one report block announced, none present
        bytes.fromhex("80 c9 00 01 00 00 00 01 00 00"),  # trailing bytes
        bytes.fromhex("a0 c9 00 01 00 00 00 01 80 c9 00 01 00 00 00 01"),  # padding not last
        bytes.fromhex("a0 c9 00 01 00 00 00 00"),  # padding count 0
        bytes.fromhex("80 c8 00 01 00 00 00 01"),  # SR without sender info
    ],
)
def test_malformed_rtcp_is_refused(data: bytes) -> None:
    with pytest.raises(PacketError):
        parse_rtcp(data)


# ---------------------------------------------------------------------------------- RFC 4733


def test_telephone_event_known_bytes() -> None:
    ev = TelephoneEvent.parse(bytes.fromhex("01 8a 03 20"))
    assert ev == TelephoneEvent(event=1, end=True, volume=10, duration=800)
    assert ev.serialize() == bytes.fromhex("01 8a 03 20")
    assert TelephoneEvent(11, False, 0, 160).serialize() == bytes.fromhex("0b 00 00 a0")
    with pytest.raises(PacketError):
        TelephoneEvent.parse(b"\x01\x8a\x03")
    with pytest.raises(PacketError):
        TelephoneEvent(1, False, 64, 0).serialize()


def test_rtpmap_rates_and_event_types() -> None:
    rates, events = parse_rtpmap({101: "telephone-event/8000", 111: "opus/48000/2", 9: "G722/8000"})
    assert events == {101}
    assert rates[111] == 48000 and rates[101] == 8000 and rates[0] == 8000
    with pytest.raises(ValueError):
        parse_rtpmap({128: "x/8000"})


# --------------------------------------------------------------------------- A.1 / A.3


def test_probation_then_counting() -> None:
    s = SequenceTracker(100)
    assert s.update(100) is False  # first of MIN_SEQUENTIAL
    assert s.expected == 0
    assert s.update(101) is True  # source valid: init_seq(101), received = 1
    assert (s.base_seq, s.received, s.expected, s.lost) == (101, 1, 1, 0)


def test_probation_restarts_on_a_gap() -> None:
    s = SequenceTracker(10)
    assert not s.update(10)
    assert not s.update(12)  # out of sequence: probation back to MIN_SEQUENTIAL - 1
    assert s.update(13)
    assert s.base_seq == 13


def test_probation_across_the_wrap() -> None:
    s = SequenceTracker(65535)
    assert not s.update(65535)
    assert s.update(0)  # the RFC's C compares max_seq + 1 == seq in int and would refuse this
    assert s.base_seq == 0


def _valid(first: int, seqs: list[int]) -> SequenceTracker:
    s = SequenceTracker(first)
    s.update(first)
    for q in seqs:
        s.update(q)
    return s


def test_loss_hand_worked() -> None:
    # 10 is the probation packet; 11..19 expected (9), 14 and 15 missing: 7 received, 2 lost.
    s = _valid(10, [11, 12, 13, 16, 17, 18, 19])
    assert (s.extended_max, s.expected, s.received, s.lost) == (19, 9, 7, 2)


def test_sequence_wrap_counts_a_cycle() -> None:
    s = _valid(65533, [65534, 65535, 0, 1, 2])
    assert s.cycles == 65536
    assert s.extended_max == 65536 + 2
    assert s.expected == 5 and s.lost == 0


def test_reordered_and_duplicate_packets() -> None:
    s = _valid(1, [2, 4, 3, 5, 5])
    assert s.extended_max == 5  # the late 3 did not move max_seq back
    assert s.cycles == 0
    assert s.expected == 4 and s.received == 5 and s.lost == -1  # a duplicate is a negative loss


def test_big_jump_resyncs_after_two_sequential_packets() -> None:
    s = _valid(1, [2, 3])
    assert s.update(20000) is False  # one packet far away: suspect
    assert s.update(20001) is True  # the next one confirms: re-init at 20001
    assert (s.base_seq, s.received, s.lost) == (20001, 1, 0)


def test_fraction_lost_per_interval() -> None:
    s = _valid(0, [1, 2, 3])  # base 1, expected 3, received 3
    assert s.interval_fraction_lost() == 0
    for q in (4, 6, 8, 9):  # expected 6 more (4..9), received 4: 2 lost -> 2*256/6 = 85
        s.update(q)
    assert s.interval_fraction_lost() == 85
    assert s.interval_fraction_lost() == 0  # nothing new since


# --------------------------------------------------------------------------------- A.8


def test_jitter_hand_worked() -> None:
    j = JitterEstimator(8000)
    j.update(0.000, 0)
    j.update(0.020, 160)
    assert j.jitter == 0.0
    j.update(0.050, 320)  # 10 ms late: D = 80 timestamp units -> J = 80/16 = 5
    assert j.jitter == pytest.approx(5.0)
    j.update(0.060, 480)  # back on time: D = -80 -> J = 5 + (80 - 5)/16
    assert j.jitter == pytest.approx(9.6875)
    j.update(0.080, 640)  # D = 0 -> J decays by 15/16
    assert j.jitter == pytest.approx(9.6875 * 15 / 16)
    assert j.max_jitter == pytest.approx(9.6875)


def test_jitter_survives_timestamp_wrap() -> None:
    j = JitterEstimator(8000)
    j.update(1.0, 2**32 - 160)
    j.update(1.02, 0)
    j.update(1.04, 160)
    assert j.jitter == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------- analyzer


def _rtp(seq: int, ts: int, ssrc: int = 1, pt: int = 0, payload: bytes = b"\xff" * 160) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=ssrc, payload=payload
    ).serialize()


def test_analyzer_counts_loss_ssrc_changes_events_and_malformed() -> None:
    a = StreamAnalyzer({101: "telephone-event/8000"})
    packets, arrivals = [], []
    for i in range(20):
        if i in (5, 6):
            continue
        packets.append(_rtp(i, 160 * i))
        arrivals.append(0.02 * i)
    event = TelephoneEvent(5, False, 10, 160).serialize()
    for k in range(3):  # one DTMF event: three packets with the same timestamp
        packets.append(_rtp(20 + k, 3200, pt=101, payload=event))
        arrivals.append(0.4 + 0.02 * k)
    for i in range(10):  # a new SSRC (say, a transfer), with its own sequence space
        packets.append(_rtp(5000 + i, 90000 + 160 * i, ssrc=2))
        arrivals.append(0.5 + 0.02 * i)
    packets.append(b"\x00\x01garbage")
    arrivals.append(0.8)
    a.feed(packets[:10], arrivals[:10])  # batches split anywhere give the same result
    a.feed(packets[10:], arrivals[10:])
    s = a.stats()
    assert s.packets == len(packets)
    assert s.bytes == sum(map(len, packets))
    assert s.ssrcs == 2 and s.ssrc_changes == 1
    assert s.telephone_event_packets == 3 and s.telephone_events == 1
    assert s.malformed == 1
    # SSRC 1: base 1 (0 was probation), max 22 -> 22 expected, 19 received; SSRC 2: 9 and 9.
    assert s.lost == 2 and s.expected == 22 + 9
    assert s.jitter_ms == pytest.approx(0.0, abs=1e-6)


def test_analyzer_reads_rtcp_muxed_and_direct() -> None:
    a = StreamAnalyzer()
    rr = ReceiverReport(9, (ReportBlock(1, 64, 12, 500, 80),)).serialize()
    a.feed([rr], [0.0])  # RTCP on the RTP port (RFC 5761)
    sr = SenderReport(9, 0, 0, 250, 43000).serialize()
    a.feed_rtcp(sr)
    a.feed_rtcp(b"\x80\xc9\x00\x09")
    r = a.rtcp
    assert (r.packets, r.receiver_reports, r.sender_reports, r.malformed) == (3, 1, 1, 1)
    assert r.fraction_lost == 0.25 and r.cumulative_lost == 12
    assert r.jitter_ms == pytest.approx(10.0)  # 80 units at 8 kHz
    assert (r.sender_packet_count, r.sender_octet_count) == (250, 43000)
    assert a.stats().packets == 1  # the muxed RTCP datagram still counts as received traffic


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["next", "next", "next", "skip", "back", "dup", "jump", "ssrc", "dtmf"]
            ),
            st.floats(0.0, 0.03),
        ),
        max_size=120,
    )
)
def test_analyzer_fast_path_matches_the_reference_estimators(steps) -> None:
    """The inlined fast path must give what SequenceTracker and JitterEstimator give."""
    a = StreamAnalyzer({101: "telephone-event/8000"})
    trackers: dict[int, SequenceTracker] = {}
    jitters: dict[int, JitterEstimator] = {}
    ssrc, seq, t = 1, 65530, 0.0
    lost = expected = 0
    for op, delay in steps:
        seq = {
            "next": seq + 1,
            "skip": seq + 3,
            "back": seq - 2,
            "dup": seq,
            "jump": seq + 5000,
        }.get(op, seq + 1) & 0xFFFF
        if op == "ssrc":
            ssrc += 1
        t += 0.02
        pt = 101 if op == "dtmf" else 0
        a.packet(_rtp(seq, 160 * seq, ssrc=ssrc, pt=pt), t + delay)
        if ssrc not in trackers:
            trackers[ssrc] = SequenceTracker(seq)
            jitters[ssrc] = JitterEstimator(8000)
        trackers[ssrc].update(seq)
        if pt == 0:
            jitters[ssrc].update(t + delay, 160 * seq)
    s = a.stats()
    expected = sum(tr.expected for tr in trackers.values())
    lost = sum(tr.lost for tr in trackers.values())
    assert (s.expected, s.lost, s.ssrcs) == (expected, lost, len(trackers))
    if trackers:
        assert s.jitter_ms == pytest.approx(jitters[ssrc].jitter / 8.0, abs=1e-9)
        assert s.max_jitter_ms == pytest.approx(
            max(j.max_jitter for j in jitters.values()) / 8.0, abs=1e-9
        )
