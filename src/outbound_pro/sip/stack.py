"""The asyncio side of SIP: listeners, the one transaction timer, and dispatch to the TU.

Everything protocol-shaped happens in the sans-I/O core (:mod:`~outbound_pro.sip.message`,
:mod:`~outbound_pro.sip.validate`, :mod:`~outbound_pro.sip.transaction`); this module only
carries out the actions it returns: bytes to sockets, events to the transaction user, and one
``call_at`` for the earliest transaction deadline.

Malformed input never escapes as an exception: a parse or validation failure becomes the RFC's
response when one can be addressed, otherwise it is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from outbound_pro.metrics import Registry
from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.message import Request, Response, parse_message, stamp_received
from outbound_pro.sip.timers import TimerConfig
from outbound_pro.sip.transaction import (
    Action,
    ClientTransaction,
    Discarded,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TimedOut,
    TransactionLayer,
    Transmit,
    TransportFailed,
)
from outbound_pro.sip.transport import (
    Address,
    ConnectionTable,
    StreamConnection,
    UdpListener,
    open_stream,
    open_udp,
)
from outbound_pro.sip.validate import validate_request

log = logging.getLogger("outbound_pro.sip")


class Source(NamedTuple):
    """Where a request came from: the socket it arrived on and the peer address.

    It is the server transaction's target, so responses leave by the same listener (or the same
    connection) they arrived on, as §18.2.2 wants.  *reply_to* is where responses go over UDP
    (see :func:`reply_address`), worked out once when the request arrives, so neither the
    responses nor their retransmissions are read again to route them.  A named tuple: one is
    made per request, and a frozen dataclass cost twice as much to build.
    """

    via: UdpListener | StreamConnection
    address: Address
    reply_to: Address | None = None

    @property
    def kind(self) -> str:
        return self.via.kind

    @property
    def reliable(self) -> bool:
        return self.via.reliable


@dataclass(frozen=True, slots=True)
class Destination:
    """A next hop for a request we originate: transport name and address."""

    kind: str
    address: Address


class TransactionUser(Protocol):
    """What sits above the transaction layer: the router to registrar, B2BUA and friends."""

    def request_received(self, event: RequestReceived, source: Source) -> None: ...

    def response_received(self, event: ResponseReceived) -> None: ...

    def server_timed_out(self, transaction: ServerTransaction) -> None: ...


def reply_address(message: Request | Response, address: Address) -> Address:
    """Where a UDP response to a request from *address* goes (§18.2.2, RFC 3581 §4).

    The host is always the packet's source: the server transport adds ``received`` whenever
    sent-by differs from it, and ``received`` wins (a sent-by name is never resolved here, as
    a DNS lookup per datagram would be an amplifier).  The port is the source port when the
    client asked for ``rport``, else the sent-by port (5060 by default).  ``maddr`` is
    ignored: this server never answers to multicast groups.  A Via that cannot be read (an
    error answered from a partial request) sends the answer back to where the packet came from.
    """
    try:
        via = message.top_via
        return address if via.has_rport else (address[0], via.port or 5060)
    except SipParseError:
        return address


class SipStack:
    """Owns the listeners and the transaction layer of one SIP endpoint."""

    def __init__(
        self,
        user: TransactionUser,
        metrics: Registry,
        *,
        timers: TimerConfig | None = None,
        max_size: int = 65535,
        max_headers: int = 256,
        tcp_idle_timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.user = user
        self.layer = TransactionLayer(timers or TimerConfig())
        self.connections = ConnectionTable()
        self.max_size = max_size
        self.max_headers = max_headers
        self.tcp_idle_timeout = tcp_idle_timeout
        self.clock = clock
        self.udp: UdpListener | None = None
        self._servers: list[asyncio.Server] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._received = metrics.counter(
            "outbound_pro_sip_messages_received_total", "SIP messages received", ("transport",)
        )
        self._sent = metrics.counter("outbound_pro_sip_messages_sent_total", "SIP messages sent")
        self._rejected = metrics.counter(
            "outbound_pro_sip_rejected_total",
            "Malformed or invalid SIP input, by outcome",
            ("outcome",),
        )
        metrics.gauge("outbound_pro_sip_transactions", "Live SIP transactions")
        metrics.gauge("outbound_pro_sip_connections", "Open SIP TCP/TLS connections")
        metrics.on_collect(self._collect)
        self._metrics = metrics

    def _collect(self) -> None:
        self._metrics.gauge("outbound_pro_sip_transactions", "").set(len(self.layer))
        self._metrics.gauge("outbound_pro_sip_connections", "").set(len(self.connections))

    # -- lifecycle

    async def listen(
        self,
        host: str,
        *,
        udp_port: int | None = None,
        tcp_port: int | None = None,
        tls_port: int | None = None,
        tls: ssl.SSLContext | None = None,
        udp_receive_buffer: int = 0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        if udp_port is not None:
            self.udp = await open_udp(self, host, udp_port, udp_receive_buffer)
        streams = [("tcp", tcp_port, None), ("tls", tls_port, tls)]
        for kind, port, ctx in streams:
            if port is None or (kind == "tls" and ctx is None):
                continue
            self._servers.append(
                await open_stream(
                    self,
                    self.connections,
                    host,
                    port,
                    kind=kind,
                    tls=ctx,
                    max_size=self.max_size,
                    idle_timeout=self.tcp_idle_timeout,
                )
            )

    def bound_ports(self) -> dict[str, int]:
        ports: dict[str, int] = {}
        if self.udp is not None:
            ports["udp"] = self.udp.local[1]
        for server, kind in zip(self._servers, ("tcp", "tls"), strict=False):
            ports[kind] = server.sockets[0].getsockname()[1]
        return ports

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for server in self._servers:
            server.close()
        self.connections.close_all()
        for server in self._servers:
            await server.wait_closed()
        if self.udp is not None:
            self.udp.close()

    # -- Sink: bytes in

    def datagram_received(self, data: bytes, source: Address, listener: UdpListener) -> None:
        self._received.inc(1, "udp")
        self._incoming(data, listener, source)

    def stream_message_received(self, data: bytes, conn: StreamConnection) -> None:
        self._received.inc(1, conn.kind)
        self._incoming(data, conn, conn.peer)

    def stream_framing_error(self, error: SipParseError, conn: StreamConnection) -> None:
        """The stream lost sync (RFC 4475 ncl/mcl01): answer if addressable, then close."""
        self._rejected.inc(1, "framing")
        response = error.response()
        if response is not None:
            conn.send(response.to_bytes())

    def _incoming(self, data: bytes, via: UdpListener | StreamConnection, address: Address) -> None:
        try:
            message = parse_message(data, max_size=self.max_size, max_headers=self.max_headers)
        except SipParseError as err:
            self._reject(err, via, address)
            return
        if type(message) is Response:  # not isinstance: Message is an ABC, which is slower
            self._run(self.layer.receive(message, None, self.clock()))
            return
        reliable = via.reliable
        source = Source(via, address, None if reliable else reply_address(message, address))
        stamp_received(message, address[0], address[1])
        try:
            problem = validate_request(message)
        except SipParseError as err:
            self._rejected.inc(1, "dropped")
            log.debug("dropped request", extra={"reason": err.reason})
            return
        if problem is not None:
            self._rejected.inc(1, str(problem.status))
            self._reply(source, problem.to_bytes())
            return
        self._run(self.layer.receive(message, source, self.clock(), reliable=reliable), source)

    def _reject(
        self, err: SipParseError, via: UdpListener | StreamConnection, address: Address
    ) -> None:
        response = err.response()
        if response is None:
            self._rejected.inc(1, "dropped")
            return
        self._rejected.inc(1, str(err.status))
        self._reply(Source(via, address, reply_address(response, address)), response.to_bytes())

    # -- actions out

    def _run(self, actions: list[Action], arrived_from: Source | None = None) -> None:
        """Carry out *actions*; *arrived_from* is the source of the message that caused them,
        the only place an ACK for a 2xx (which has no transaction) can be traced back to."""
        user = self.user
        for action in actions:
            if isinstance(action, Transmit):
                self._transmit(action)
            elif isinstance(action, RequestReceived):
                target = action.transaction.target if action.transaction else arrived_from
                if isinstance(target, Source):
                    user.request_received(action, target)
            elif isinstance(action, ResponseReceived):
                user.response_received(action)
            elif isinstance(action, TimedOut):
                user.server_timed_out(action.transaction)
            elif isinstance(action, TransportFailed):
                log.info("transport failed for a server transaction")
            elif isinstance(action, Discarded):
                self._rejected.inc(1, "discarded")
        self._rearm()

    def _transmit(self, action: Transmit) -> None:
        """A server transaction's target is the request's :class:`Source` (so this is a
        response), a client transaction's a :class:`Destination`."""
        self._sent.inc()
        target = action.target
        if isinstance(target, Source):
            self._reply(target, action.data)
        elif isinstance(target, Destination):
            self._send_to(target, action.data)

    def _reply(self, source: Source, data: bytes) -> None:
        """§18.2.2: reliable transports answer on the connection; UDP to ``reply_to``."""
        if source.reliable:
            source.via.send(data)
        else:
            source.via.send(data, source.reply_to or source.address)

    def _send_to(self, destination: Destination, data: bytes) -> None:
        if destination.kind == "udp":
            if self.udp is not None:
                self.udp.send(data, destination.address)
            return
        conn = self.connections.get(destination.kind, destination.address)
        if conn is not None:
            conn.send(data)

    def _rearm(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is None or self._loop is None:
            return
        delay = max(0.0, deadline - self.clock())
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._run(self.layer.timeout(self.clock()))

    # -- TU API

    def respond(self, transaction: ServerTransaction, response: Response) -> None:
        self._run(self.layer.send_response(transaction, response, self.clock()))

    def send_stateless(self, request: Request, destination: Destination) -> None:
        """Send a request that has no transaction: the ACK for a 2xx (§17.1.1.3, §13.2.2.4)."""
        self._sent.inc()
        self._send_to(destination, request.to_bytes())

    def respond_stateless(self, response: Response, source: Source) -> None:
        """Answer a request that has no server transaction (the 2xx-ACK has none to answer)."""
        self._reply(source, response.to_bytes())

    def send_request(self, request: Request, destination: Destination) -> ClientTransaction:
        reliable = destination.kind != "udp"
        txn, actions = self.layer.send_request(
            request, destination, self.clock(), reliable=reliable
        )
        self._run(actions)
        return txn
