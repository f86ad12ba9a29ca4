"""The RTP relay: every call's media flows through here, and its loop sets how many calls fit.

The API the B2BUA calls is deliberately narrow, and every argument and result is a plain value
(``str``, ``int``, ``msgspec.Struct``)::

    engine = RelayEngine(RelayConfig(port_min=20000, port_max=29999))
    session = await engine.open_session(call_id)        # two legs, each an RTP/RTCP port pair
    session.leg_a.local_port, session.leg_b.local_port  # for the rewritten SDP
    session.set_remote("a", host, port)                 # from the peer's SDP (again on re-INVITE)
    session.fork(CallRecorder(path))                    # record both directions
    stats = await session.close()                       # SessionStats for the CDR

Because nothing else crosses that line, the engine can later run in one worker process per
core with the B2BUA holding a stub that sends the same calls as messages (``fork`` would then
send a recording path and the worker would build the recorder, from its own
``RecorderPool``, beside its relay). ``RelayEngine.open_session`` and ``Session.close`` are
already coroutines for that reason.

Media behaviour:

* Ports: per leg an even RTP port and RTP+1 for RTCP, from ``[port_min, port_max]``, taken
  round-robin so a port is not reused while stray packets of the previous call may still come.
  Relays running as the same user (worker processes) must get disjoint ranges: RTP ports are
  bound with ``SO_REUSEPORT`` (see below).
* Symmetric RTP with latching: a leg starts unlatched; the first packet whose source IP is the
  SDP host (any port: NAT rewrites ports) fixes the peer address, and packets towards the peer
  go to that address from then on (before it, to the SDP address). With
  ``Latch.FIRST_SOURCE`` the first source of any address is taken — for phones behind NAT
  whose SDP carries a private address; anyone who sends first wins, which is why it is not the
  default. After latching, datagrams from any other source are dropped and counted;
  ``set_remote`` again (re-INVITE) unlatches. RTCP latches the same way on the RTCP port.
* The relay is transparent: it never rewrites RTP, so SSRC changes, sequence wraps, RFC 4733
  events, G.722 and Opus pass through untouched. Statistics and recording handle those.

Where the work happens. Python (this module) decides; C (``rtp/_fastpath.c``) moves datagrams.
Every socket is in one epoll set owned by ``_fastpath.Core`` (:class:`EpollMux` drives it from
the loop). A leg's unconnected RTP socket and its RTCP socket have Python readers: they latch,
count strangers and relay RTCP — a handful of datagrams per call. Once a leg has latched, a
second socket bound to the same port with ``SO_REUSEPORT`` is ``connect()``-ed to the peer:
the kernel then delivers the peer's datagrams to it (a connected socket wins the lookup) and
everything else to the unconnected socket. The connected socket is attached to the leg's
``_fastpath.Leg``, and from then on a datagram from the peer never reaches Python: one
``recv``, one ``send`` on the other leg's connected socket, the in-order branch of
``StreamAnalyzer.packet`` on state the analyzer lent to C, and, when the call is recorded, a
copy of (arrival, datagram) into a per-leg buffer. Datagrams outside that branch (a new SSRC,
loss, an RFC 4733 event, RTCP-mux, anything malformed) are still relayed by C and then handed
to :meth:`Leg._on_slow`, which runs the analyzer's general path: statistics are exactly the
pure-Python analyzer's. The recording buffers go to the recorder in batches
(``CallRecorder.feed``), each recorded session about every ``_FEED_PERIOD`` seconds, a slice
of them every tick so no tick carries them all.

``poll_interval`` > 0 (1 ms by default): nothing wakes the loop for media; a timer serves the
epoll set every ``poll_interval`` seconds, as many rounds as it takes to empty it (up to a
bound, so signalling still gets its turn). A wake-up per datagram is the single largest cost
at light load on a VM (an interrupt, a VM exit), so this trades up to ``poll_interval`` of
added latency for CPU. ``poll_interval`` 0: the epoll set is a reader of the loop, woken by
datagrams. Either way one datagram per socket per round: with about 50 packets a second per
socket a round nearly always finds one, so draining until EAGAIN only adds a failing ``recv``.
Figures: ``benchmarks/README.md``, "## Media".
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import msgspec

from outbound_pro.media.recorder import RecordingInfo
from outbound_pro.rtp import _fastpath
from outbound_pro.rtp.packet import RtcpStats, StreamAnalyzer, StreamStats

log = logging.getLogger("outbound_pro.rtp.relay")
_monotonic = time.monotonic
_RECV_SIZE = _fastpath.RECV_SIZE
_FEED_PERIOD = 0.1
_FEED_SLOTS = 10


class Latch(enum.StrEnum):
    """How a leg picks its peer address from the first packets it receives."""

    SDP_HOST = "sdp-host"
    FIRST_SOURCE = "first-source"


class RelayConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where relay ports come from and how often the relay serves its sockets.

    ``poll_interval``: see the module docstring (0 = wake per datagram).
    """

    host: str = "0.0.0.0"
    port_min: int = 20000
    port_max: int = 29999
    poll_interval: float = 0.001

    def __post_init__(self) -> None:
        if not 1024 <= self.port_min < self.port_max <= 65535:
            raise ValueError("relay ports need 1024 <= port_min < port_max <= 65535")
        if not 0.0 <= self.poll_interval <= 0.02:
            raise ValueError("poll_interval is 0 (event-driven) or up to 0.02 s")


class RelayError(Exception):
    """The relay cannot do what was asked (no free port pair, unknown leg, closed session)."""


class MediaFork(Protocol):
    """Where ``Session.fork`` sends both directions; ``media.recorder.CallRecorder`` is one.

    ``feed`` gets raw datagrams of one side (0: leg A, 1: leg B) in arrival order, in batches.
    """

    def feed(self, side: int, packets: Sequence[bytes], arrivals: Sequence[float]) -> None: ...

    async def close(self) -> RecordingInfo: ...


class EpollMux:
    """The loop's side of ``_fastpath.Core``: when its epoll set is served.

    ``poll_interval`` > 0: a timer runs ``Core.poll`` every interval while anything is
    registered, and again at once while the set stays busy; 0: the epoll fd is a loop reader.
    """

    _MAX_ROUNDS = 64

    def __init__(self, loop: asyncio.AbstractEventLoop, poll_interval: float = 0.0) -> None:
        self._loop = loop
        self.core = _fastpath.Core()
        self._interval = poll_interval
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        if poll_interval <= 0:
            loop.add_reader(self.core.fileno(), self.core.poll, 1)

    def add_reader(self, fd: int, callback: Callable[[], object]) -> None:
        self.core.add_reader(fd, callback)
        self._start()

    def attach(self, leg: _fastpath.Leg, fd: int) -> None:
        leg.attach(fd)
        self._start()

    def remove_reader(self, fd: int) -> bool:
        removed = self.core.remove_reader(fd)
        self.stop_if_idle()
        return removed

    def _start(self) -> None:
        if self._interval > 0 and self._timer is None:
            self._timer = self._loop.call_later(self._interval, self._on_tick)

    def stop_if_idle(self) -> None:
        """Cancel the timer when nothing is registered (legs detach themselves)."""
        if self._timer is not None and self.core.registered == 0:
            self._timer.cancel()
            self._timer = None

    def _on_tick(self) -> None:
        if self.core.poll(self._MAX_ROUNDS):
            self._timer = self._loop.call_soon(self._on_tick)  # still busy: no sleep
        else:
            self._timer = self._loop.call_later(self._interval, self._on_tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._interval <= 0:
            self._loop.remove_reader(self.core.fileno())
        self.core.close()


class LegStats(msgspec.Struct, kw_only=True):
    """One leg of a call as the CDR keeps it. ``rtp`` is what this leg's peer sent us.

    ``send_errors`` counts datagrams from this leg's peer that could not be sent on;
    ``receive_errors`` errors reported on this leg's connected socket (an ICMP
    port-unreachable from its peer).
    """

    local_port: int
    local_rtcp_port: int
    remote: str | None
    latched: bool
    rtp: StreamStats
    rtcp: RtcpStats
    dropped_unexpected_source: int
    dropped_no_destination: int
    send_errors: int
    last_unexpected_source: str | None
    receive_errors: int = 0


class SessionStats(msgspec.Struct, kw_only=True):
    call_id: str
    duration: float
    leg_a: LegStats
    leg_b: LegStats
    recording: RecordingInfo | None = None


def _address_text(addr: tuple[Any, ...] | None) -> str | None:
    if addr is None:
        return None
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Leg:
    """One side of a call: an RTP/RTCP socket pair, its peer, and its C half (``fast``).

    ``fast`` receives from the connected socket once latched, and sends what this leg's peer
    sent to the *other* leg's peer: leg B installs where that is (:meth:`_publish_destination`)
    whenever its destination changes. Its counters are the leg's ``dropped_no_destination``
    and ``send_errors``.
    """

    __slots__ = (
        "analyzer",
        "conn_sock",
        "dropped_unexpected_source",
        "expected_host",
        "expected_port",
        "expected_rtcp_port",
        "fast",
        "host",
        "last_unexpected_source",
        "latch",
        "local_port",
        "local_rtcp_port",
        "mux",
        "name",
        "other",
        "peer",
        "rtcp_peer",
        "rtcp_sock",
        "rtp_sock",
    )

    def __init__(
        self,
        name: str,
        mux: EpollMux,
        host: str,
        rtp_sock: socket.socket,
        rtcp_sock: socket.socket,
        port: int,
    ) -> None:
        self.name = name
        self.mux = mux
        self.host = host
        self.rtp_sock = rtp_sock
        self.rtcp_sock = rtcp_sock
        self.local_port = port
        self.local_rtcp_port = port + 1
        self.conn_sock: socket.socket | None = None
        self.other: Leg = self
        self.peer: tuple[Any, ...] | None = None
        self.rtcp_peer: tuple[Any, ...] | None = None
        self.expected_host: str | None = None
        self.expected_port = 0
        self.expected_rtcp_port = 0
        self.latch = Latch.SDP_HOST
        self.analyzer = StreamAnalyzer()
        self.fast = _fastpath.Leg(mux.core, self._on_slow)
        self.fast.put_state(self.analyzer.lend())
        self.dropped_unexpected_source = 0
        self.last_unexpected_source: tuple[Any, ...] | None = None

    @property
    def dropped_no_destination(self) -> int:
        return self.fast.dropped_no_destination

    @property
    def send_errors(self) -> int:
        return self.fast.send_errors

    # -- the Python end of the datagram path ----------------------------------------------

    def _on_slow(self, data: bytes, arrival: float) -> None:
        """A datagram (already relayed) outside the analyzer's in-order branch."""
        analyzer = self.analyzer
        analyzer.settle(*self.fast.take_state())
        analyzer.packet(data, arrival)
        self.fast.put_state(analyzer.lend())

    def _may_latch(self, addr: tuple[Any, ...]) -> bool:
        return self.latch is Latch.FIRST_SOURCE or addr[0] == self.expected_host

    def _stranger(self, addr: tuple[Any, ...]) -> None:
        self.dropped_unexpected_source += 1
        self.last_unexpected_source = addr

    def on_rtp_readable(self) -> None:
        """The unconnected RTP socket: latching, strangers, and the peer before ``connect``."""
        try:
            data, addr = self.rtp_sock.recvfrom(_RECV_SIZE)
        except OSError:
            return
        if addr != self.peer:
            if self.peer is not None or not self._may_latch(addr):
                self._stranger(addr)
                return
            self._latch(addr)
        self.fast.forward(data, _monotonic())

    def on_rtcp_readable(self) -> None:
        """RTCP is a few packets a second: latch, relay to the other leg's peer, parse."""
        try:
            data, addr = self.rtcp_sock.recvfrom(_RECV_SIZE)
        except OSError:
            return
        if addr != self.rtcp_peer:
            if self.rtcp_peer is not None or not self._may_latch(addr):
                self._stranger(addr)
                return
            self.rtcp_peer = addr
        other = self.other
        dest = other.rtcp_destination()
        if dest is not None:
            try:
                other.rtcp_sock.sendto(data, dest)
            except OSError:
                self.fast.send_errors += 1
        self.analyzer.feed_rtcp(data)

    # -- latching and destinations --------------------------------------------------------

    def _latch(self, addr: tuple[Any, ...]) -> None:
        self.peer = addr
        # A second socket on our port, connected to the peer: the kernel delivers the peer's
        # packets to it (a connected socket wins the SO_REUSEPORT lookup), and everything
        # else keeps arriving on the unconnected one, where it is counted.
        self._drop_connected()
        conn = socket.socket(self.rtp_sock.family, socket.SOCK_DGRAM)
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            conn.setblocking(False)
            conn.bind((self.host, self.local_port))
            conn.connect(addr)
        except OSError:
            # Cannot happen short of fd exhaustion; the unconnected socket still relays
            # (its reader compares the source), just less cheaply.
            conn.close()
        else:
            self.conn_sock = conn
            self.mux.attach(self.fast, conn.fileno())
        self._publish_destination()

    def _drop_connected(self) -> None:
        conn = self.conn_sock
        if conn is not None:
            self.conn_sock = None
            self.fast.detach()
            self._publish_destination()  # the other leg stops sending on it before it closes
            conn.close()

    def destination(self) -> tuple[Any, ...] | None:
        """Where media for this leg's peer goes: the latched source, else the SDP address."""
        if self.peer is not None:
            return self.peer
        if self.expected_host is None or self.expected_port == 0:
            return None
        return (self.expected_host, self.expected_port)

    def rtcp_destination(self) -> tuple[Any, ...] | None:
        if self.rtcp_peer is not None:
            return self.rtcp_peer
        if self.expected_host is None or self.expected_rtcp_port == 0:
            return None
        return (self.expected_host, self.expected_rtcp_port)

    def _publish_destination(self) -> None:
        """Tell the other leg's C half where datagrams for our peer go, and on which socket."""
        out = self.other.fast
        dest = self.destination()
        if dest is None:
            out.set_out(-1)
        elif self.conn_sock is not None:
            out.set_out(self.conn_sock.fileno())
        else:  # an IPv6 source may carry a %scope, which the kernel knows from the socket
            out.set_out(self.rtp_sock.fileno(), dest[0].partition("%")[0], dest[1])

    # -- control --------------------------------------------------------------------------

    def set_remote(
        self,
        host: str,
        port: int,
        rtcp_port: int | None,
        latch: Latch,
        rtpmap: Mapping[int, str] | None,
    ) -> None:
        if not 0 <= port <= 65535 or not (rtcp_port is None or 0 <= rtcp_port <= 65535):
            raise ValueError(f"bad RTP/RTCP port {port}/{rtcp_port}")
        ip = ipaddress.ip_address(host)
        # c=0.0.0.0 (RFC 2543 hold) or port 0 (stream rejected) means: send nothing.
        self.expected_host = None if ip.is_unspecified else str(ip)
        self.expected_port = port
        self.expected_rtcp_port = (port + 1 if port else 0) if rtcp_port is None else rtcp_port
        self.latch = latch
        self.peer = None
        self.rtcp_peer = None
        self._drop_connected()
        if rtpmap is not None:
            self.analyzer.set_rtpmap(rtpmap)
        self._publish_destination()

    def close(self) -> None:
        """Stop both C halves using our sockets, then close them."""
        self.fast.close()
        self.other.fast.set_out(-1)
        mux = self.mux
        for sock in (self.rtp_sock, self.rtcp_sock):
            mux.remove_reader(sock.fileno())
            sock.close()
        if self.conn_sock is not None:
            self.conn_sock.close()
            self.conn_sock = None
        mux.stop_if_idle()

    def stats(self) -> LegStats:
        """Statistics now: the analyzer takes its state back from C for the read."""
        analyzer = self.analyzer
        analyzer.settle(*self.fast.take_state())
        rtp = analyzer.stats()
        self.fast.put_state(analyzer.lend())
        return LegStats(
            local_port=self.local_port,
            local_rtcp_port=self.local_rtcp_port,
            remote=_address_text(self.destination()),
            latched=self.peer is not None,
            rtp=rtp,
            rtcp=msgspec.structs.replace(analyzer.rtcp),
            dropped_unexpected_source=self.dropped_unexpected_source,
            dropped_no_destination=self.fast.dropped_no_destination,
            send_errors=self.fast.send_errors,
            last_unexpected_source=_address_text(self.last_unexpected_source),
            receive_errors=self.fast.receive_errors,
        )


class Session:
    """One relayed call: two legs and, when recorded, a fork. Owned by one B2BUA call."""

    def __init__(self, engine: RelayEngine, call_id: str, leg_a: Leg, leg_b: Leg) -> None:
        self.engine = engine
        self.call_id = call_id
        self.leg_a = leg_a
        self.leg_b = leg_b
        leg_a.other = leg_b
        leg_b.other = leg_a
        self.started = _monotonic()
        self._fork: MediaFork | None = None
        self._closed = False
        self._stats: SessionStats | None = None

    def leg(self, name: Literal["a", "b"]) -> Leg:
        if name == "a":
            return self.leg_a
        if name == "b":
            return self.leg_b
        raise RelayError(f"no leg {name!r}: legs are 'a' and 'b'")

    def set_remote(
        self,
        leg: Literal["a", "b"],
        host: str,
        port: int,
        *,
        rtcp_port: int | None = None,
        latch: Latch = Latch.SDP_HOST,
        rtpmap: Mapping[int, str] | None = None,
    ) -> None:
        """The peer of ``leg`` from its SDP (c= IP literal, m= port, a=rtcp, a=rtpmap).

        Host ``0.0.0.0`` or port 0 stops sending to that peer (hold, rejected stream). Calling
        it again — a re-INVITE — unlatches, so the next packets from the new peer latch anew.
        """
        if self._closed:
            raise RelayError("session is closed")
        self.leg(leg).set_remote(host, port, rtcp_port, latch, rtpmap)

    def fork(self, recorder: MediaFork) -> None:
        """Send both directions to ``recorder``: leg A as side 0 (left), leg B as side 1."""
        if self._closed:
            raise RelayError("session is closed")
        if self._fork is not None:
            self.feed_fork()  # what the previous recorder is owed
        self._fork = recorder
        self.leg_a.fast.recording = self.leg_b.fast.recording = 1
        self.engine._feeder.add(self)

    def feed_fork(self) -> None:
        """Move the datagrams recorded since the last call from C to the recorder."""
        fork = self._fork
        if fork is None:
            return
        for side, leg in enumerate((self.leg_a, self.leg_b)):
            packets, arrivals = leg.fast.drain()
            if packets:
                fork.feed(side, packets, arrivals)

    async def close(self) -> SessionStats:
        """Stop relaying, free the ports, finish the recording; the CDR's media statistics."""
        if self._stats is not None:
            return self._stats
        self._closed = True
        self.engine._release(self)
        recording = None
        if self._fork is not None:
            try:
                self.feed_fork()
                recording = await self._fork.close()
            except Exception:
                # The CDR's media statistics matter more than a broken recorder.
                log.exception("recorder failed to close", extra={"call_id": self.call_id})
        self._stats = SessionStats(
            call_id=self.call_id,
            duration=_monotonic() - self.started,
            leg_a=self.leg_a.stats(),
            leg_b=self.leg_b.stats(),
            recording=recording,
        )
        return self._stats


class _Feeder:
    """Feeds recorded sessions' recorders from C: each every ``_FEED_PERIOD`` s, in slices.

    Sessions are spread over ``_FEED_SLOTS`` slots and one slot is fed per tick, so the cost
    (a ``bytes`` and a ``float`` per datagram, then the recorder's placement) is spread over
    the period instead of stalling the relay once per period.
    """

    def __init__(self) -> None:
        self._slots: list[set[Session]] = [set() for _ in range(_FEED_SLOTS)]
        self._slot_of: dict[Session, int] = {}
        self._next_slot = 0
        self._tick = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, session: Session) -> None:
        if session in self._slot_of:
            return
        slot = self._next_slot
        self._next_slot = (slot + 1) % _FEED_SLOTS
        self._slots[slot].add(session)
        self._slot_of[session] = slot
        if self._timer is None:
            self._schedule()

    def discard(self, session: Session) -> None:
        slot = self._slot_of.pop(session, None)
        if slot is not None:
            self._slots[slot].discard(session)
        if not self._slot_of and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(_FEED_PERIOD / _FEED_SLOTS, self._on_tick)

    def _on_tick(self) -> None:
        self._schedule()
        self._tick = (self._tick + 1) % _FEED_SLOTS
        for session in list(self._slots[self._tick]):
            try:
                session.feed_fork()
            except Exception:
                # A broken recorder stops recording, never the relay.
                log.exception(
                    "recorder failed, recording stopped", extra={"call_id": session.call_id}
                )
                session.leg_a.fast.recording = session.leg_b.fast.recording = 0
                self.discard(session)

    def close(self) -> None:
        for session in list(self._slot_of):
            self.discard(session)


class RelayEngine:
    """Owns the port range and every open session; one per event loop (or worker process)."""

    def __init__(self, config: RelayConfig | None = None) -> None:
        self.config = config or RelayConfig()
        self._family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        first = self.config.port_min + (self.config.port_min & 1)
        self._first = first
        self._slots = (self.config.port_max - first + 1) // 2  # even ports whose +1 is in range
        self._cursor = 0
        self._ports_in_use: set[int] = set()
        self._sessions: dict[str, Session] = {}
        self._mux: EpollMux | None = None
        self._feeder = _Feeder()

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def _bind_pair(self) -> tuple[socket.socket, socket.socket, int]:
        for _ in range(self._slots):
            port = self._first + 2 * self._cursor
            self._cursor = (self._cursor + 1) % self._slots
            if port in self._ports_in_use:
                continue
            socks: list[socket.socket] = []
            try:
                for p in (port, port + 1):
                    s = socket.socket(self._family, socket.SOCK_DGRAM)
                    socks.append(s)
                    s.setblocking(False)
                    if p == port:  # the connected socket of a latched leg shares it
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    s.bind((self.config.host, p))
            except OSError:
                for s in socks:
                    s.close()
                continue
            self._ports_in_use.add(port)
            return socks[0], socks[1], port
        raise RelayError(
            f"no free RTP/RTCP port pair in {self.config.port_min}-{self.config.port_max}"
        )

    async def open_session(self, call_id: str) -> Session:
        """Allocate two port pairs and start relaying between them (nothing flows until the
        peers are known: ``set_remote`` or, with ``Latch.FIRST_SOURCE``, their first packet)."""
        if call_id in self._sessions:
            raise RelayError(f"session {call_id!r} already open")
        if self._mux is None:
            self._mux = EpollMux(asyncio.get_running_loop(), self.config.poll_interval)
        mux = self._mux
        legs: list[Leg] = []
        try:
            for name in ("a", "b"):
                rtp, rtcp, port = self._bind_pair()
                leg = Leg(name, mux, self.config.host, rtp, rtcp, port)
                legs.append(leg)
                mux.add_reader(rtp.fileno(), leg.on_rtp_readable)
                mux.add_reader(rtcp.fileno(), leg.on_rtcp_readable)
        except BaseException:
            for leg in legs:
                self._close_leg(leg)
            raise
        session = Session(self, call_id, legs[0], legs[1])
        self._sessions[call_id] = session
        return session

    def _close_leg(self, leg: Leg) -> None:
        leg.close()
        self._ports_in_use.discard(leg.local_port)

    def _release(self, session: Session) -> None:
        self._sessions.pop(session.call_id, None)
        self._feeder.discard(session)
        for leg in (session.leg_a, session.leg_b):
            self._close_leg(leg)

    async def close(self) -> list[SessionStats]:
        """Close every open session (shutdown); their statistics, for CDRs still to write."""
        stats = [await s.close() for s in list(self._sessions.values())]
        self._feeder.close()
        if self._mux is not None:
            self._mux.close()
            self._mux = None
        return stats
