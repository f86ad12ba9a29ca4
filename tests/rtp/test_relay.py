"""The relay over real UDP sockets on loopback, served by a timer and woken by datagrams."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import msgspec
import pytest
import uvloop

from outbound_pro.rtp.packet import ReceiverReport, ReportBlock, RtpPacket, TelephoneEvent
from outbound_pro.rtp.relay import Latch, RelayConfig, RelayEngine, RelayError, SessionStats
from tests.rtp.util import Peer, free_port_range, relay_config, wait_until

POLL_INTERVALS = [0.001, 0.0]  # the default timer, and a wake-up per datagram


def rtp(
    seq: int,
    ssrc: int = 0x1234,
    pt: int = 0,
    payload: bytes = b"\xff" * 160,
    ts: int | None = None,
    **kw,
) -> bytes:
    return RtpPacket(
        payload_type=pt,
        sequence_number=seq & 0xFFFF,
        timestamp=(160 * seq if ts is None else ts) & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=payload,
        **kw,
    ).serialize()


@pytest.fixture(params=POLL_INTERVALS)
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[RelayEngine]:
    eng = RelayEngine(relay_config(poll_interval=request.param))
    yield eng
    await eng.close()


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    opened: list[Peer] = []

    async def make(host: str = "127.0.0.1") -> Peer:
        p = await Peer.open(host)
        opened.append(p)
        return p

    yield make  # type: ignore[misc]
    for p in opened:
        p.close()


async def test_relays_both_ways_and_latches_to_the_nat_port(engine: RelayEngine, peers) -> None:
    a, b = await peers(), await peers()
    s = await engine.open_session("call-1")
    # The booth's SDP says port 9 but its NAT sends from another port: latch onto the source.
    s.set_remote("a", "127.0.0.1", 9)
    s.set_remote("b", "127.0.0.1", b.port)
    for i in range(5):
        a.send(rtp(i), s.leg_a.local_port)
    await wait_until(lambda: len(b.received) == 5, what="A->B packets")
    for i in range(5):
        b.send(rtp(i, ssrc=99), s.leg_b.local_port)
    await wait_until(lambda: len(a.received) == 5, what="B->A packets at the latched port")
    assert b.payloads() == [rtp(i) for i in range(5)]
    assert a.payloads() == [rtp(i, ssrc=99) for i in range(5)]
    # Symmetric RTP: each peer hears the relay from the port it sends to.
    assert {addr for _, addr in b.received} == {("127.0.0.1", s.leg_b.local_port)}
    assert {addr for _, addr in a.received} == {("127.0.0.1", s.leg_a.local_port)}
    stats = await s.close()
    assert stats.leg_a.latched and stats.leg_a.remote == f"127.0.0.1:{a.port}"
    assert stats.leg_b.remote == f"127.0.0.1:{b.port}"
    assert stats.leg_a.rtp.packets == 5 and stats.leg_b.rtp.packets == 5
    assert stats.leg_a.rtp.bytes == 5 * 172
    assert stats.leg_a.dropped_unexpected_source == 0


async def test_before_latching_media_goes_to_the_sdp_address(engine: RelayEngine, peers) -> None:
    a, b = await peers(), await peers()
    s = await engine.open_session("call-sdp")
    s.set_remote("a", "127.0.0.1", a.port)
    s.set_remote("b", "127.0.0.1", b.port)
    b.send(rtp(1), s.leg_b.local_port)  # A has sent nothing yet
    await wait_until(lambda: a.received, what="packet at A's SDP address")
    stats = await s.close()
    assert not stats.leg_a.latched and stats.leg_b.latched


async def test_unexpected_sources_are_dropped_and_counted(engine: RelayEngine, peers) -> None:
    a, b = await peers(), await peers()
    stranger_host, stranger_port = await peers("127.0.0.2"), await peers()
    s = await engine.open_session("call-2")
    s.set_remote("a", "127.0.0.1", a.port)
    s.set_remote("b", "127.0.0.1", b.port)
    stranger_host.send(rtp(1, ssrc=666), s.leg_a.local_port)  # wrong IP, before latching
    await wait_until(lambda: s.leg_a.dropped_unexpected_source == 1, what="first drop")
    a.send(rtp(1), s.leg_a.local_port)
    await wait_until(lambda: len(b.received) == 1, what="A's packet")
    for i in range(3):  # right IP, wrong port, after latching
        stranger_port.send(rtp(i, ssrc=667), s.leg_a.local_port)
    a.send(rtp(2), s.leg_a.local_port)
    await wait_until(lambda: len(b.received) == 2, what="A's second packet")
    await wait_until(lambda: s.leg_a.dropped_unexpected_source == 4, what="later drops")
    stats = await s.close()
    assert b.payloads() == [rtp(1), rtp(2)]
    assert stats.leg_a.dropped_unexpected_source == 4
    assert stats.leg_a.last_unexpected_source == f"127.0.0.1:{stranger_port.port}"
    assert stats.leg_a.rtp.packets == 2


async def test_first_source_latching_for_a_private_sdp_address(engine: RelayEngine, peers) -> None:
    a, b = await peers(), await peers()
    s = await engine.open_session("call-3")
    # A phone behind NAT advertises an address we can never see as a source.
    s.set_remote("a", "127.0.0.99", 40000, latch=Latch.FIRST_SOURCE)
    s.set_remote("b", "127.0.0.1", b.port)
    a.send(rtp(1), s.leg_a.local_port)
    await wait_until(lambda: b.received, what="A latched and relayed")
    b.send(rtp(1, ssrc=2), s.leg_b.local_port)
    await wait_until(lambda: a.received, what="B->A via the latched address")
    stats = await s.close()
    assert stats.leg_a.remote == f"127.0.0.1:{a.port}"


async def test_relay_is_transparent(engine: RelayEngine, peers) -> None:
    a, b = await peers(), await peers()
    s = await engine.open_session("call-4")
    s.set_remote("a", "127.0.0.1", a.port, rtpmap={0: "PCMU/8000", 101: "telephone-event/8000"})
    s.set_remote("b", "127.0.0.1", b.port)
    digit = TelephoneEvent(event=5, end=False, volume=10, duration=160)
    sent = [
        rtp(65534),
        rtp(65535, padding=4, payload=b"\xff" * 156),
        rtp(0, csrc=(1, 2), extension_profile=0xBEDE, extension=b"\x10\xaa\x00\x00"),
        rtp(1, pt=101, ts=160, payload=digit.serialize(), marker=True),  # one event, same ts
        rtp(2, pt=101, ts=160, payload=msgspec.structs.replace(digit, end=True).serialize()),
        rtp(500, ssrc=0xABCD, pt=9, payload=b"\x01" * 160),  # new SSRC, G.722 passes through
        rtp(501, ssrc=0xABCD, pt=9, payload=b"\x02" * 160),
        b"\x00\x01\x00\x08stun-ish",
    ]
    for n, data in enumerate(sent, 1):
        a.send(data, s.leg_a.local_port)
        await wait_until(lambda n=n: len(b.received) == n, what="relay")
    stats = await s.close()
    assert b.payloads() == sent
    r = stats.leg_a.rtp
    assert r.telephone_event_packets == 2 and r.telephone_events == 1
    assert r.ssrcs == 2 and r.ssrc_changes == 1
    assert r.malformed == 1
    assert r.lost == 0


async def test_loss_jitter_and_rtcp_statistics(engine: RelayEngine, peers) -> None:
    a, b, a_rtcp, b_rtcp = await peers(), await peers(), await peers(), await peers()
    s = await engine.open_session("call-5")
    s.set_remote("a", "127.0.0.1", a.port, rtcp_port=a_rtcp.port)
    s.set_remote("b", "127.0.0.1", b.port, rtcp_port=b_rtcp.port)
    sent = [i for i in range(30) if not 10 <= i < 15]  # five lost on the way to us
    for i in sent:
        a.send(rtp(i), s.leg_a.local_port)
        await asyncio.sleep(0.02)
    await wait_until(lambda: len(b.received) == len(sent), what="media")
    rr = ReceiverReport(0x1234, (ReportBlock(99, 64, 7, 1000, 160),)).serialize()
    a_rtcp.send(rr, s.leg_a.local_rtcp_port)
    await wait_until(lambda: b_rtcp.received, what="RTCP relayed to B's RTCP port")
    stats = await s.close()
    assert b_rtcp.payloads() == [rr]
    assert b_rtcp.received[0][1] == ("127.0.0.1", s.leg_b.local_rtcp_port)
    r = stats.leg_a.rtp
    assert r.packets == 25
    assert r.expected == 29 - 1 + 1 and r.lost == 5  # seq 0 is the A.1 probation packet
    assert r.loss_fraction == pytest.approx(5 / 29)
    assert 0.0 < r.jitter_ms < 10.0  # paced at 20 ms: only scheduling noise, never the 20 ms
    c = stats.leg_a.rtcp
    assert (c.receiver_reports, c.fraction_lost, c.cumulative_lost) == (1, 0.25, 7)
    assert c.jitter_ms == pytest.approx(20.0)  # 160 units at 8 kHz
    assert stats.leg_b.rtcp.packets == 0


async def test_hold_then_reinvite_to_another_device(engine: RelayEngine, peers) -> None:
    a, b, c = await peers(), await peers(), await peers()
    s = await engine.open_session("call-6")
    s.set_remote("a", "127.0.0.1", a.port)
    s.set_remote("b", "127.0.0.1", b.port)
    a.send(rtp(1), s.leg_a.local_port)
    b.send(rtp(1, ssrc=2), s.leg_b.local_port)
    await wait_until(lambda: b.received and a.received, what="both directions")
    s.set_remote("b", "0.0.0.0", b.port)  # RFC 2543 hold: send nothing to B
    a.send(rtp(2), s.leg_a.local_port)
    await wait_until(lambda: s.leg_a.dropped_no_destination == 1, what="no-destination drop")
    s.set_remote("b", "127.0.0.1", c.port)  # re-INVITE: B moves to another device
    a.send(rtp(3), s.leg_a.local_port)
    await wait_until(lambda: c.received, what="media at the new device")
    c.send(rtp(1, ssrc=3), s.leg_b.local_port)
    await wait_until(lambda: len(a.received) == 2, what="new device latched")
    b.send(rtp(2, ssrc=2), s.leg_b.local_port)  # the old device is now a stranger
    await wait_until(lambda: s.leg_b.dropped_unexpected_source == 1, what="old device dropped")
    stats = await s.close()
    assert len(b.received) == 1 and c.payloads() == [rtp(3)]
    assert stats.leg_b.remote == f"127.0.0.1:{c.port}"
    assert stats.leg_a.dropped_no_destination == 1


async def test_port_pairs_come_from_the_range_and_are_reused() -> None:
    low, high = free_port_range(10)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", low + 2))  # someone else holds the second pair's RTP port
    try:
        engine = RelayEngine(RelayConfig(host="127.0.0.1", port_min=low, port_max=high))
        s1 = await engine.open_session("one")
        s2 = await engine.open_session("two")
        ports = [leg.local_port for s in (s1, s2) for leg in (s.leg_a, s.leg_b)]
        assert all(p % 2 == 0 and low <= p < high for p in ports)
        assert len(set(ports)) == 4 and low + 2 not in ports
        assert all(leg.local_rtcp_port == leg.local_port + 1 for leg in (s1.leg_a, s2.leg_b))
        with pytest.raises(RelayError):
            await engine.open_session("three")  # 5 pairs in range, one blocked, four taken
        with pytest.raises(RelayError):
            await engine.open_session("one")
        assert engine.sessions == 2
        stats = await s1.close()
        assert await s1.close() is stats  # idempotent
        s3 = await engine.open_session("three")
        assert {s3.leg_a.local_port, s3.leg_b.local_port} == {ports[0], ports[1]}
        with pytest.raises(RelayError):
            s1.set_remote("a", "127.0.0.1", 5)
        await engine.close()
        assert engine.sessions == 0
    finally:
        blocker.close()


def test_config_refuses_a_bad_range() -> None:
    with pytest.raises(ValueError):
        RelayConfig(port_min=30000, port_max=20000)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"io": "threads"}, RelayConfig)
    with pytest.raises(ValueError):
        RelayConfig(poll_interval=0.5)


def test_relay_on_uvloop() -> None:
    async def scenario() -> SessionStats:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        engine = RelayEngine(relay_config())
        a, b = await Peer.open(), await Peer.open()
        s = await engine.open_session("uv")
        s.set_remote("a", "127.0.0.1", a.port)
        s.set_remote("b", "127.0.0.1", b.port)
        for i in range(20):
            a.send(rtp(i), s.leg_a.local_port)
            b.send(rtp(i, ssrc=7), s.leg_b.local_port)
        await wait_until(lambda: len(a.received) == 20 and len(b.received) == 20, what="uvloop")
        stats = await s.close()
        a.close()
        b.close()
        return stats

    stats = uvloop.run(scenario())
    assert stats.leg_a.rtp.packets == 20 and stats.leg_b.rtp.packets == 20
