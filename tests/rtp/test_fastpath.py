"""The C fast path (``rtp/_fastpath.c``) through the relay, over real UDP sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbound_pro.media.recorder import RecordingInfo
from outbound_pro.rtp import _fastpath
from outbound_pro.rtp.packet import ReceiverReport, StreamAnalyzer, TelephoneEvent
from outbound_pro.rtp.relay import Leg, RelayEngine, Session
from tests.rtp.test_relay import rtp
from tests.rtp.util import Peer, relay_config, wait_until


class Collector:
    """A MediaFork that keeps what the relay feeds it."""

    def __init__(self) -> None:
        self.packets: tuple[list[bytes], list[bytes]] = ([], [])
        self.arrivals: tuple[list[float], list[float]] = ([], [])
        self.batches = 0
        self.closed = False

    def feed(self, side: int, packets: Sequence[bytes], arrivals: Sequence[float]) -> None:
        assert not self.closed
        self.batches += 1
        self.packets[side].extend(packets)
        self.arrivals[side].extend(arrivals)

    async def close(self) -> RecordingInfo:
        self.closed = True
        n = len(self.packets[0]) + len(self.packets[1])
        return RecordingInfo(
            path="-", duration=0.0, size=0, sha256="", frames=0, packets=n,
            non_g711_packets=0, late_packets=0, reanchors=0, drift_corrections=0,
        )  # fmt: skip


@pytest.fixture
async def engine() -> AsyncIterator[RelayEngine]:
    eng = RelayEngine(relay_config())
    yield eng
    await eng.close()


@pytest.fixture
async def call(engine: RelayEngine) -> AsyncIterator[tuple[Session, Peer, Peer]]:
    a, b = await Peer.open(), await Peer.open()
    s = await engine.open_session("fast")
    s.set_remote("a", "127.0.0.1", a.port, rtpmap={0: "PCMU/8000", 101: "telephone-event/8000"})
    s.set_remote("b", "127.0.0.1", b.port)
    yield s, a, b
    await s.close()
    a.close()
    b.close()


def fast_packets(leg: Leg) -> int:
    """Datagrams the C side accounted on its own since the last look (then settled back)."""
    packets, octets, state = leg.fast.take_state()
    leg.analyzer.settle(packets, octets, state)
    leg.fast.put_state(leg.analyzer.lend())
    return packets


async def send_paced(peer: Peer, packets: Sequence[bytes], port: int, sink: Peer) -> None:
    """Send one at a time, each once the previous has come out, so arrival order is fixed."""
    for n, data in enumerate(packets, len(sink.received) + 1):
        peer.send(data, port)
        await wait_until(lambda n=n: len(sink.received) >= n, what=f"datagram {n} relayed")


async def test_latching_hands_the_leg_to_c(call) -> None:
    s, a, b = call
    assert not s.leg_a.fast.attached
    await send_paced(a, [rtp(i) for i in range(3)], s.leg_a.local_port, b)
    assert s.leg_a.fast.attached and s.leg_a.conn_sock is not None
    fast_packets(s.leg_a)
    for i in range(3, 53):
        a.send(rtp(i), s.leg_a.local_port)
    await wait_until(lambda: len(b.received) == 53, what="50 more datagrams")
    # In order, same SSRC and payload type: none of the 50 reached Python.
    assert fast_packets(s.leg_a) == 50
    for i in range(20):
        b.send(rtp(i, ssrc=7), s.leg_b.local_port)
    await wait_until(lambda: len(a.received) == 20, what="B->A")
    assert a.payloads() == [rtp(i, ssrc=7) for i in range(20)]
    assert b.payloads() == [rtp(i) for i in range(53)]
    stats = await s.close()
    assert stats.leg_a.rtp.packets == 53 and stats.leg_a.rtp.bytes == 53 * 172
    assert stats.leg_a.rtp.lost == 0 and stats.leg_a.rtp.expected == 52
    assert stats.leg_b.rtp.packets == 20
    assert not s.leg_a.fast.attached


async def test_statistics_equal_the_python_analyzers(call) -> None:
    """Sequence wrap, SSRC changes, loss, misorder, duplicates, RFC 4733 events and garbage:
    the C path plus the analyzer's general path give exactly what the analyzer alone gives
    for the same datagrams at the same arrival times."""
    s, a, b = call
    fork = Collector()
    s.fork(fork)
    event = TelephoneEvent(event=1, end=False, volume=10, duration=160).serialize()

    def one(q: int, **kw) -> bytes:  # SSRC 1 starts at sequence 65500, timestamp 0
        return rtp(q, ts=160 * ((q - 65500) & 0xFFFF), **kw)

    seqs = [*range(65500, 65536), *range(0, 40), 42, 41, 43, 43, *range(44, 60)]  # 40 lost
    sent = [one(q) for q in seqs]
    event_ts = 160 * ((60 - 65500) & 0xFFFF)  # one event: three datagrams, one timestamp
    sent += [rtp(60 + k, pt=101, ts=event_ts, payload=event) for k in range(3)]
    sent += [one(q) for q in range(63, 80)]
    sent += [rtp(q, ssrc=0xBEEF, ts=q * 160) for q in range(900, 960)]  # a new SSRC
    sent += [b"\x80\x00", rtp(960, ssrc=0xBEEF)[:11], b"\x00" * 40]  # 960 lost in garbage
    sent += [one(q) for q in range(80, 100)]  # back to the first SSRC
    sent += [rtp(q, ssrc=0xBEEF, ts=q * 160) for q in range(961, 1001)]
    await send_paced(a, sent, s.leg_a.local_port, b)
    assert b.payloads() == sent
    stats = await s.close()
    assert fork.packets[0] == sent and fork.packets[1] == []
    reference = StreamAnalyzer({0: "PCMU/8000", 101: "telephone-event/8000"})
    reference.feed(fork.packets[0], fork.arrivals[0])
    assert stats.leg_a.rtp == reference.stats()
    r = stats.leg_a.rtp
    assert (r.ssrcs, r.ssrc_changes, r.malformed) == (2, 3, 3)
    assert (r.telephone_event_packets, r.telephone_events) == (3, 1)
    # Each SSRC's first datagram is its A.1 probation: 135 + 100 expected, 40 and 960 lost
    # (the duplicate 43 makes up for 40 in RFC 3550's count).
    assert (r.expected, r.lost) == (135 + 100, 1)
    assert 0.0 < r.max_jitter_ms < 1000.0


async def test_recorder_gets_both_sides_in_order_with_arrival_times(call) -> None:
    s, a, b = call
    fork = Collector()
    s.fork(fork)
    before = time.monotonic()
    for i in range(40):
        a.send(rtp(i), s.leg_a.local_port)
        b.send(rtp(i, ssrc=9, payload=bytes([i]) * 160), s.leg_b.local_port)
        await asyncio.sleep(0.005)
    await wait_until(lambda: len(a.received) == 40 and len(b.received) == 40, what="media")
    # Fed in batches while the call runs, not only at close.
    await wait_until(lambda: len(fork.packets[1]) == 40, what="recorder fed", timeout=2.0)
    after = time.monotonic()
    await s.close()
    assert fork.closed
    assert fork.packets[0] == [rtp(i) for i in range(40)]
    assert fork.packets[1] == [rtp(i, ssrc=9, payload=bytes([i]) * 160) for i in range(40)]
    for arrivals in fork.arrivals:
        assert arrivals == sorted(arrivals) and before <= arrivals[0] and arrivals[-1] <= after
        assert arrivals[-1] - arrivals[0] >= 39 * 0.005 * 0.9


async def test_close_flushes_the_rest_to_the_recorder(call) -> None:
    s, a, b = call
    fork = Collector()
    s.fork(fork)
    for i in range(5):
        a.send(rtp(i), s.leg_a.local_port)
    await wait_until(lambda: len(b.received) == 5, what="media")
    stats = await s.close()
    assert fork.packets[0] == [rtp(i) for i in range(5)]
    assert stats.recording is not None and stats.recording.packets == 5


async def test_short_and_wrong_version_datagrams_on_the_fast_path(call) -> None:
    s, a, b = call
    await send_paced(a, [rtp(i) for i in range(4)], s.leg_a.local_port, b)
    assert s.leg_a.fast.attached
    junk = [b"\x80", b"\x80\x00\x00\x05\x00\x00\x03\x20\x00\x00\x12", b"\x40" + rtp(5)[1:]]
    await send_paced(a, [*junk, rtp(4), rtp(5), rtp(6)], s.leg_a.local_port, b)
    assert b.payloads()[4:] == [*junk, rtp(4), rtp(5), rtp(6)]  # relayed untouched
    stats = await s.close()
    r = stats.leg_a.rtp
    assert r.malformed == 3 and r.packets == 10 and r.lost == 0 and r.expected == 6


async def test_statistics_on_demand_while_the_call_runs(call) -> None:
    s, a, b = call
    await send_paced(a, [rtp(i) for i in range(10)], s.leg_a.local_port, b)
    assert s.leg_a.stats().rtp.packets == 10
    for i in range(10, 30):
        a.send(rtp(i), s.leg_a.local_port)
    await wait_until(lambda: len(b.received) == 30, what="more media")
    assert fast_packets(s.leg_a) == 20  # the read lent the state back to C
    stats = await s.close()
    assert stats.leg_a.rtp.packets == 30 and stats.leg_a.rtp.expected == 29


async def test_closing_while_packets_are_in_flight(engine: RelayEngine) -> None:
    a, b = await Peer.open(), await Peer.open()
    s = await engine.open_session("busy")
    s.set_remote("a", "127.0.0.1", a.port)
    s.set_remote("b", "127.0.0.1", b.port)
    fork = Collector()
    s.fork(fork)
    stop = asyncio.Event()

    async def blast(peer: Peer, port: int, ssrc: int) -> int:
        n = 0
        while not stop.is_set():
            for _ in range(20):
                peer.send(rtp(n, ssrc=ssrc), port)
                n += 1
            await asyncio.sleep(0)
        return n

    senders = [
        asyncio.create_task(blast(a, s.leg_a.local_port, 1)),
        asyncio.create_task(blast(b, s.leg_b.local_port, 2)),
    ]
    await wait_until(lambda: len(a.received) > 200 and len(b.received) > 200, what="traffic")
    stats = await s.close()
    stop.set()
    sent_a, sent_b = await asyncio.gather(*senders)
    assert 0 < stats.leg_a.rtp.packets <= sent_a and 0 < stats.leg_b.rtp.packets <= sent_b
    assert len(fork.packets[0]) == stats.leg_a.rtp.packets
    assert len(fork.packets[1]) == stats.leg_b.rtp.packets
    a.send(rtp(0), s.leg_a.local_port)  # the port is closed now: nobody relays
    c, d = await Peer.open(), await Peer.open()
    s2 = await engine.open_session("after")  # and the engine carries on
    s2.set_remote("a", "127.0.0.1", c.port)
    s2.set_remote("b", "127.0.0.1", d.port)
    c.send(rtp(1, ssrc=3), s2.leg_a.local_port)
    await wait_until(lambda: d.payloads() == [rtp(1, ssrc=3)], what="second session")
    # Whatever B heard was relayed, and accounted, before the close.
    assert len(b.received) <= stats.leg_a.rtp.packets
    assert len(a.received) <= stats.leg_b.rtp.packets
    c.close()
    d.close()
    await s2.close()
    a.close()
    b.close()


async def test_errors_from_a_vanished_peer_are_counted_not_raised(call) -> None:
    s, a, b = call
    b.send(rtp(0, ssrc=5), s.leg_b.local_port)
    await send_paced(a, [rtp(i) for i in range(3)], s.leg_a.local_port, b)
    await wait_until(lambda: s.leg_b.fast.attached, what="B latched")
    b.close()  # B's phone is gone: ICMP port unreachable for what we send to it
    for i in range(3, 30):
        a.send(rtp(i), s.leg_a.local_port)
        await asyncio.sleep(0.002)
    # The ICMP error lands on B's connected socket: the next send there fails, or (usually)
    # epoll reports the socket and its recv returns ECONNREFUSED first.
    await wait_until(
        lambda: s.leg_a.send_errors + s.leg_b.fast.receive_errors > 0, what="errors counted"
    )
    stats = await s.close()
    assert stats.leg_a.rtp.packets == 30
    assert stats.leg_a.send_errors + stats.leg_b.receive_errors > 0


def test_core_serves_python_readers_and_survives_their_errors(monkeypatch) -> None:
    unraisable: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    core = _fastpath.Core()
    r, w = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    calls: list[bytes] = []

    def reader() -> None:
        calls.append(r.recv(100))
        if len(calls) == 1:
            raise RuntimeError("a broken callback")

    try:
        core.add_reader(r.fileno(), reader)
        with pytest.raises(FileExistsError):
            core.add_reader(r.fileno(), reader)
        assert core.registered == 1 and core.poll(8) is False
        w.send(b"one")
        w.send(b"two")
        assert core.poll(1) is True  # one datagram per socket per round
        assert calls == [b"one"] and isinstance(unraisable[0], RuntimeError)
        assert core.poll(8) is False and calls == [b"one", b"two"]
        assert core.remove_reader(r.fileno()) and not core.remove_reader(r.fileno())
        w.send(b"three")
        assert core.poll(8) is False and calls == [b"one", b"two"]
    finally:
        core.close()
        r.close()
        w.close()


RTPMAP = {0: "PCMU/8000", 8: "PCMA/8000", 101: "telephone-event/8000"}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["next"] * 6
                + ["skip", "back", "dup", "jump", "ssrc", "old-ssrc", "dtmf", "pcma"]
                + ["short", "version", "rtcp"]
            ),
            st.floats(0.0, 0.03),
        ),
        max_size=150,
    )
)
def test_c_accounting_is_the_analyzers_datagram_for_datagram(steps) -> None:
    """``Leg.forward`` runs the C path on a given arrival time: with the relay's lending
    protocol its statistics equal, bit for bit, those of an analyzer fed the same datagrams."""
    core = _fastpath.Core()
    analyzer = StreamAnalyzer(RTPMAP)
    reference = StreamAnalyzer(RTPMAP)

    def on_slow(data: bytes, arrival: float) -> None:  # what relay.Leg._on_slow does
        analyzer.settle(*leg.take_state())
        analyzer.packet(data, arrival)
        leg.put_state(analyzer.lend())

    leg = _fastpath.Leg(core, on_slow)
    leg.put_state(analyzer.lend())
    rr = ReceiverReport(9).serialize()
    ssrc, seq, t = 1, 65500, 1000.0
    for op, delay in steps:
        seq = {"skip": seq + 3, "back": seq - 2, "dup": seq, "jump": seq + 5000}.get(op, seq + 1)
        seq &= 0xFFFF
        ssrc = {"ssrc": ssrc + 1, "old-ssrc": max(1, ssrc - 1)}.get(op, ssrc)
        t += 0.02
        pt = {"dtmf": 101, "pcma": 8}.get(op, 0)
        data = {
            "short": b"\x80\x00\x01",
            "version": b"\x40" + rtp(seq, ssrc=ssrc)[1:],
            "rtcp": rr,
        }.get(op) or rtp(seq, ssrc=ssrc, pt=pt)
        leg.forward(data, t + delay)
        reference.packet(data, t + delay)
    analyzer.settle(*leg.take_state())
    assert analyzer.stats() == reference.stats()
    assert analyzer.rtcp == reference.rtcp
    assert leg.dropped_no_destination == len(steps)  # no set_out: nowhere to send
    core.close()
