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
  Relays running as the same user (worker processes) must get disjoint ranges: the
  ``"epoll"``/``"connected"`` styles bind with ``SO_REUSEPORT`` (see below).
* Symmetric RTP with latching: a leg starts unlatched; the first packet whose source IP is the
  SDP host (any port: NAT rewrites ports) fixes the peer address, and packets towards the peer
  go to that address from then on (before it, to the SDP address). With
  ``Latch.FIRST_SOURCE`` the first source of any address is taken — for phones behind NAT
  whose SDP carries a private address; anyone who sends first wins, which is why it is not the
  default. After latching, datagrams from any other source are dropped and counted;
  ``set_remote`` again (re-INVITE) unlatches. RTCP latches the same way on the RTCP port.
* The relay is transparent: it never rewrites RTP, so SSRC changes, sequence wraps, RFC 4733
  events, G.722 and Opus pass through untouched. Statistics and recording handle those.

The hot path (``Leg.on_connected_readable``). Once a leg has latched, a second socket bound to
the same port with ``SO_REUSEPORT`` is ``connect()``-ed to the peer: the kernel then delivers
the peer's datagrams to it (a connected socket wins the lookup) and everything else to the
unconnected socket, whose slow path counts and drops strangers. So a datagram from the peer
costs one ``recv`` (no source address tuple to build or compare), one ``send`` through a bound
method that leg A holds to leg B's connected socket (no address to parse, the route is cached:
no dict, no attribute chain), one ``time.monotonic()`` and two calls into sans-I/O code while
the datagram is still in cache: ``StreamAnalyzer.packet`` (RFC 3550 loss and jitter) and, when
recording, the recorder's tap (``media.recorder``), each a short fast path. No logging, no
allocation of our own (the recording tap copies the payload into its buffer).

I/O styles, chosen by ``RelayConfig.io`` and all measured by ``benchmarks/media.py`` (figures
in ``benchmarks/README.md``):

* ``"epoll"`` (the default): every relay socket in one epoll set (:class:`EpollMux`) served
  by a 1 ms timer (``poll_interval``), so one loop callback serves every ready socket and no
  datagram wakes the loop; ``poll_interval=0`` makes the set a loop reader instead, woken by
  datagrams;
* ``"connected"``: the same sockets, each with its own ``loop.add_reader``;
* ``"reader"``: unconnected sockets, ``recvfrom``/``sendto`` and a source-address compare;
* ``"protocol"``: asyncio's ``DatagramProtocol`` (uvloop/libuv then reads until EAGAIN).

All read exactly one datagram per readiness: with about 50 packets a second per socket a
wake-up nearly always finds one, so draining until EAGAIN only adds a failing ``recvmsg``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import ipaddress
import logging
import select
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

import msgspec

from outbound_pro.media.recorder import RecordingInfo
from outbound_pro.rtp.packet import RtcpStats, StreamAnalyzer, StreamStats

log = logging.getLogger("outbound_pro.rtp.relay")
_monotonic = time.monotonic
_RECV_SIZE = 2048


class Latch(enum.StrEnum):
    """How a leg picks its peer address from the first packets it receives."""

    SDP_HOST = "sdp-host"
    FIRST_SOURCE = "first-source"


class RelayConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where relay ports come from and how the relay reads them.

    ``io`` and ``poll_interval`` (``io="epoll"`` only; 0 = wake per datagram) are measured
    choices, see the module docstring and ``benchmarks/README.md``; Linux only for "epoll".
    """

    host: str = "0.0.0.0"
    port_min: int = 20000
    port_max: int = 29999
    io: Literal["epoll", "connected", "reader", "protocol"] = "epoll"
    poll_interval: float = 0.001

    def __post_init__(self) -> None:
        if not 1024 <= self.port_min < self.port_max <= 65535:
            raise ValueError("relay ports need 1024 <= port_min < port_max <= 65535")
        if not 0.0 <= self.poll_interval <= 0.02:
            raise ValueError("poll_interval is 0 (event-driven) or up to 0.02 s")


class RelayError(Exception):
    """The relay cannot do what was asked (no free port pair, unknown leg, closed session)."""


class MediaFork(Protocol):
    """Where ``Session.fork`` sends both directions; ``media.recorder.CallRecorder`` is one."""

    def tap(self, side: int) -> Callable[[bytes, float], None]: ...

    async def close(self) -> RecordingInfo: ...


class Reactor(Protocol):
    """What a leg registers its sockets with: the event loop itself, or :class:`EpollMux`."""

    def add_reader(self, fd: int, callback: Callable[[], object]) -> None: ...

    def remove_reader(self, fd: int) -> object: ...


class EpollMux:
    """Every relay socket in one epoll set, served by the loop as a whole.

    With ``loop.add_reader`` per socket, each datagram costs the loop one dispatch (a libuv
    poll handle, a Handle object, a context switch into Python) and, at low load, one
    ``epoll_wait``. Here one loop callback runs ``epoll_wait(0)`` and calls the handler of
    every ready socket from a list indexed by file descriptor (no dict). Still one datagram
    per socket per readiness: the set is level-triggered, so a socket with more waiting is
    simply ready again in the next round.

    ``poll_interval`` 0: the epoll set is itself a reader of the loop, so every datagram that
    finds the loop asleep wakes it. ``poll_interval`` > 0: nothing wakes the loop for media;
    a timer serves the set every ``poll_interval`` seconds, as many rounds as it takes to
    empty it (up to a bound, so signalling still gets its turn). A wake-up per datagram is
    the single largest cost at light load on a VM (an interrupt, a VM exit), so this trades
    up to ``poll_interval`` of added latency for CPU.
    """

    _MAX_ROUNDS = 64

    def __init__(self, loop: asyncio.AbstractEventLoop, poll_interval: float = 0.0) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._poll = self._epoll.poll
        self._handlers: list[Callable[[], object] | None] = []
        self._interval = poll_interval
        self._registered = 0
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        if poll_interval <= 0:
            loop.add_reader(self._epoll.fileno(), self._dispatch)

    def add_reader(self, fd: int, callback: Callable[[], object]) -> None:
        handlers = self._handlers
        if fd >= len(handlers):
            handlers.extend([None] * (fd + 1 - len(handlers)))
        handlers[fd] = callback
        self._epoll.register(fd, select.EPOLLIN)
        self._registered += 1
        if self._interval > 0 and self._timer is None:  # the timer runs only while needed
            self._timer = self._loop.call_later(self._interval, self._on_tick)

    def remove_reader(self, fd: int) -> bool:
        if fd < len(self._handlers):
            self._handlers[fd] = None
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            return False
        self._registered -= 1
        if self._registered == 0 and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return True

    def _dispatch(self) -> bool:
        """One round: one datagram from every ready socket. False when none was ready."""
        handlers = self._handlers
        events = self._poll(0)
        for fd, _ in events:
            handler = handlers[fd]
            if handler is not None:
                handler()
        return bool(events)

    def _on_tick(self) -> None:
        dispatch = self._dispatch
        for _ in range(self._MAX_ROUNDS):
            if not dispatch():
                self._timer = self._loop.call_later(self._interval, self._on_tick)
                return
        self._timer = self._loop.call_soon(self._on_tick)  # still busy: no sleep

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._interval <= 0:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._epoll.fileno())
        self._epoll.close()


class LegStats(msgspec.Struct, kw_only=True):
    """One leg of a call as the CDR keeps it. ``rtp`` is what this leg's peer sent us."""

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
    """One side of a call: an RTP/RTCP socket pair, its peer, and the hot-path callbacks.

    ``out_*`` attributes belong to the *sending* side of the hot path: leg A's ``out_send``
    (or ``out_sendto`` and ``out_addr``) is how a packet received on leg A reaches leg B's
    peer — leg B's socket method and leg B's peer address, installed by leg B whenever its
    destination changes (:meth:`_publish_destination`).
    """

    __slots__ = (
        "_rtcp_sendto",
        "_rtp_recvfrom",
        "analyzer",
        "conn_recv",
        "conn_sock",
        "connected",
        "dropped_no_destination",
        "dropped_unexpected_source",
        "expected_host",
        "expected_port",
        "expected_rtcp_port",
        "host",
        "io",
        "last_unexpected_source",
        "latch",
        "local_port",
        "local_rtcp_port",
        "loop",
        "name",
        "observe",
        "other",
        "out_addr",
        "out_send",
        "out_sendto",
        "peer",
        "reactor",
        "rtcp_peer",
        "rtcp_sock",
        "rtcp_transport",
        "rtp_sock",
        "rtp_transport",
        "send_errors",
        "tap",
    )

    def __init__(
        self,
        name: str,
        loop: asyncio.AbstractEventLoop,
        reactor: Reactor,
        io: str,
        host: str,
        rtp_sock: socket.socket,
        rtcp_sock: socket.socket,
        port: int,
    ) -> None:
        self.name = name
        self.loop = loop
        self.reactor = reactor
        self.io = io
        self.connected = io in ("connected", "epoll")
        self.host = host
        self.rtp_sock = rtp_sock
        self.rtcp_sock = rtcp_sock
        self.local_port = port
        self.local_rtcp_port = port + 1
        self.conn_sock: socket.socket | None = None
        self.conn_recv: Callable[[int], bytes] = rtp_sock.recv
        self.rtp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self._rtp_recvfrom = rtp_sock.recvfrom
        self._rtcp_sendto: Callable[[bytes, Any], Any] = rtcp_sock.sendto
        self.other: Leg = self
        self.peer: tuple[Any, ...] | None = None
        self.rtcp_peer: tuple[Any, ...] | None = None
        self.expected_host: str | None = None
        self.expected_port = 0
        self.expected_rtcp_port = 0
        self.latch = Latch.SDP_HOST
        self.out_send: Callable[[bytes], Any] = self._no_destination
        self.out_sendto: Callable[[bytes, Any], Any] = self._no_destination_to
        self.out_addr: tuple[Any, ...] | None = None
        self.analyzer = StreamAnalyzer()
        self.observe = self.analyzer.packet
        self.tap: Callable[[bytes, float], None] | None = None
        self.dropped_unexpected_source = 0
        self.dropped_no_destination = 0
        self.send_errors = 0
        self.last_unexpected_source: tuple[Any, ...] | None = None

    # -- hot paths: one per io style ------------------------------------------------------

    def on_connected_readable(self) -> None:
        """io="connected": the kernel already matched the peer; one ``recv``, one ``send``."""
        try:
            data = self.conn_recv(_RECV_SIZE)
        except OSError:  # ECONNREFUSED from an ICMP error, or a spurious wake-up
            return
        try:
            self.out_send(data)
        except OSError:
            self.send_errors += 1
        now = _monotonic()
        self.observe(data, now)
        if self.tap is not None:
            self.tap(data, now)

    def on_rtp_readable(self) -> None:
        """io="reader" (and io="connected" before latching): exactly one datagram per wake-up."""
        try:
            data, addr = self._rtp_recvfrom(_RECV_SIZE)
        except OSError:
            return
        if addr == self.peer:
            try:
                self.out_sendto(data, self.out_addr)
            except OSError:
                self.send_errors += 1
            now = _monotonic()
            self.observe(data, now)
            if self.tap is not None:
                self.tap(data, now)
        else:
            self._from_unlatched(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """io="protocol": the DatagramProtocol callback, same work as ``on_rtp_readable``."""
        if addr == self.peer:
            self.out_sendto(data, self.out_addr)
            now = _monotonic()
            self.observe(data, now)
            if self.tap is not None:
                self.tap(data, now)
        else:
            self._from_unlatched(data, addr)

    # -- slow path ------------------------------------------------------------------------

    def _no_destination(self, data: bytes) -> None:
        self.dropped_no_destination += 1

    def _no_destination_to(self, data: bytes, addr: object) -> None:
        self.dropped_no_destination += 1

    def _relay(self, data: bytes) -> None:
        try:
            if self.connected:
                self.out_send(data)
            else:
                self.out_sendto(data, self.out_addr)
        except OSError:
            self.send_errors += 1
        now = _monotonic()
        self.observe(data, now)
        if self.tap is not None:
            self.tap(data, now)

    def _from_unlatched(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if addr == self.peer:  # connected io: queued on the catch-all socket before latching
            self._relay(data)
            return
        if self.peer is None and (
            self.latch is Latch.FIRST_SOURCE or addr[0] == self.expected_host
        ):
            self._latch(addr)
            self._relay(data)
            return
        self.dropped_unexpected_source += 1
        self.last_unexpected_source = addr

    def _latch(self, addr: tuple[Any, ...]) -> None:
        self.peer = addr
        if self.connected:
            # A second socket on our port, connected to the peer: the kernel delivers the
            # peer's packets to it (a connected socket wins the SO_REUSEPORT lookup), and
            # everything else keeps arriving on the unconnected one, where it is counted.
            self._drop_connected()
            conn = socket.socket(self.rtp_sock.family, socket.SOCK_DGRAM)
            try:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                conn.setblocking(False)
                conn.bind((self.host, self.local_port))
                conn.connect(addr)
            except OSError:
                # Cannot happen short of fd exhaustion; the unconnected socket still relays
                # (its callback compares the source), just less cheaply.
                conn.close()
            else:
                self.conn_sock = conn
                self.conn_recv = conn.recv
                self.reactor.add_reader(conn.fileno(), self.on_connected_readable)
        self._publish_destination()

    def _drop_connected(self) -> None:
        conn = self.conn_sock
        if conn is not None:
            self.conn_sock = None
            with contextlib.suppress(ValueError, OSError):
                self.reactor.remove_reader(conn.fileno())
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
        """Give the other leg direct references to our socket's send method and peer address."""
        other = self.other
        dest = self.destination()
        if dest is None:
            other.out_send = other._no_destination
            other.out_sendto = other._no_destination_to
            other.out_addr = None
            return
        if self.rtp_transport is not None:
            sendto: Callable[[bytes, Any], Any] = self.rtp_transport.sendto
        else:
            sendto = self.rtp_sock.sendto
        other.out_sendto = sendto
        other.out_addr = dest
        if self.conn_sock is not None:
            other.out_send = self.conn_sock.send
        else:
            other.out_send = functools.partial(_send_to, sendto, dest)

    def on_rtcp_readable(self) -> None:
        try:
            data, addr = self.rtcp_sock.recvfrom(_RECV_SIZE)
        except OSError:
            return
        self.rtcp_received(data, addr)

    def rtcp_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """RTCP is a few packets a second: latch, relay to the other leg's peer, parse."""
        if addr != self.rtcp_peer:
            if self.rtcp_peer is not None or not (
                self.latch is Latch.FIRST_SOURCE or addr[0] == self.expected_host
            ):
                self.dropped_unexpected_source += 1
                self.last_unexpected_source = addr
                return
            self.rtcp_peer = addr
        other = self.other
        dest = other.rtcp_destination()
        if dest is not None:
            try:
                other._rtcp_sendto(data, dest)
            except OSError:
                self.send_errors += 1
        self.analyzer.feed_rtcp(data)

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
        self._drop_connected()
        for sock, transport in (
            (self.rtp_sock, self.rtp_transport),
            (self.rtcp_sock, self.rtcp_transport),
        ):
            if transport is not None:
                transport.close()
            else:
                with contextlib.suppress(ValueError, OSError):
                    self.reactor.remove_reader(sock.fileno())
                sock.close()

    def stats(self) -> LegStats:
        return LegStats(
            local_port=self.local_port,
            local_rtcp_port=self.local_rtcp_port,
            remote=_address_text(self.destination()),
            latched=self.peer is not None,
            rtp=self.analyzer.stats(),
            rtcp=msgspec.structs.replace(self.analyzer.rtcp),
            dropped_unexpected_source=self.dropped_unexpected_source,
            dropped_no_destination=self.dropped_no_destination,
            send_errors=self.send_errors,
            last_unexpected_source=_address_text(self.last_unexpected_source),
        )


def _send_to(sendto: Callable[[bytes, Any], Any], addr: tuple[Any, ...], data: bytes) -> Any:
    return sendto(data, addr)


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, leg: Leg) -> None:
        self.rtcp_received = leg.rtcp_received

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.rtcp_received(data, addr)


class _RtpProtocol(asyncio.DatagramProtocol):
    """Protocol front for a leg; ``datagram_received`` *is* the leg's bound method."""

    def __init__(self, leg: Leg) -> None:
        self.leg = leg
        self.datagram_received = leg.datagram_received  # type: ignore[method-assign]

    def error_received(self, exc: Exception) -> None:
        self.leg.send_errors += 1


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
        self._fork = recorder
        self.leg_a.tap = recorder.tap(0)
        self.leg_b.tap = recorder.tap(1)

    async def close(self) -> SessionStats:
        """Stop relaying, free the ports, finish the recording; the CDR's media statistics."""
        if self._stats is not None:
            return self._stats
        self._closed = True
        self.engine._release(self)
        self.leg_a.tap = self.leg_b.tap = None
        recording = None
        if self._fork is not None:
            try:
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
                    if p == port and self.config.io in ("connected", "epoll"):
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
        loop = asyncio.get_running_loop()
        reactor: Reactor = loop
        if self.config.io == "epoll":
            if self._mux is None:
                self._mux = EpollMux(loop, self.config.poll_interval)
            reactor = self._mux
        legs: list[Leg] = []
        try:
            for name in ("a", "b"):
                rtp, rtcp, port = self._bind_pair()
                legs.append(
                    Leg(name, loop, reactor, self.config.io, self.config.host, rtp, rtcp, port)
                )
            session = Session(self, call_id, legs[0], legs[1])
            for leg in legs:
                if self.config.io != "protocol":
                    reactor.add_reader(leg.rtp_sock.fileno(), leg.on_rtp_readable)
                    reactor.add_reader(leg.rtcp_sock.fileno(), leg.on_rtcp_readable)
                else:
                    leg.rtp_transport, _ = await loop.create_datagram_endpoint(
                        lambda leg=leg: _RtpProtocol(leg), sock=leg.rtp_sock
                    )
                    leg.rtcp_transport, _ = await loop.create_datagram_endpoint(
                        lambda leg=leg: _RtcpProtocol(leg), sock=leg.rtcp_sock
                    )
                    leg._rtcp_sendto = leg.rtcp_transport.sendto
        except BaseException:
            for leg in legs:
                self._close_leg(leg)
            raise
        self._sessions[call_id] = session
        return session

    def _close_leg(self, leg: Leg) -> None:
        leg.close()
        self._ports_in_use.discard(leg.local_port)

    def _release(self, session: Session) -> None:
        self._sessions.pop(session.call_id, None)
        for leg in (session.leg_a, session.leg_b):
            self._close_leg(leg)

    async def close(self) -> list[SessionStats]:
        """Close every open session (shutdown); their statistics, for CDRs still to write."""
        stats = [await s.close() for s in list(self._sessions.values())]
        if self._mux is not None:
            self._mux.close()
            self._mux = None
        return stats
