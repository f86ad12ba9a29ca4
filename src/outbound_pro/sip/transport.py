"""asyncio adapters that only move bytes between sockets and the sans-I/O SIP core.

Nothing here parses beyond stream framing or makes a protocol decision: a listener hands each
datagram or framed stream message to its :class:`Sink` and sends what it is told to. That keeps
the protocol core testable without sockets and these adapters small enough to trust.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Protocol, cast

from outbound_pro.sip.message import SipParseError, StreamFramer

log = logging.getLogger("outbound_pro.sip")

Address = tuple[str, int]


class Sink(Protocol):
    """Where the transports deliver what they receive (the SIP stack)."""

    def datagram_received(self, data: bytes, source: Address, listener: UdpListener) -> None: ...

    def stream_message_received(self, data: bytes, conn: StreamConnection) -> None: ...

    def stream_framing_error(self, error: SipParseError, conn: StreamConnection) -> None: ...


class UdpListener(asyncio.DatagramProtocol):
    kind = "udp"
    reliable = False

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("0.0.0.0", 0)
        self.send_errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.sink.datagram_received(data, addr[:2], self)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (port unreachable) are normal on UDP; transactions time out instead."""

    def send(self, data: bytes, addr: Address) -> None:
        if self.transport is None:
            return
        try:
            self.transport.sendto(data, addr)
        except (OSError, ValueError):
            # An unusable destination (bad port, wrong family) must cost one message, never the
            # listener: an exception here would unwind into the event loop's receive path.
            self.send_errors += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ConnectionTable:
    """Open stream connections by peer, so responses and later requests reuse them (§18)."""

    def __init__(self) -> None:
        self._by_peer: dict[tuple[str, Address], StreamConnection] = {}

    def add(self, conn: StreamConnection) -> None:
        self._by_peer[(conn.kind, conn.peer)] = conn

    def remove(self, conn: StreamConnection) -> None:
        if self._by_peer.get((conn.kind, conn.peer)) is conn:
            del self._by_peer[(conn.kind, conn.peer)]

    def get(self, kind: str, peer: Address) -> StreamConnection | None:
        return self._by_peer.get((kind, peer))

    def __len__(self) -> int:
        return len(self._by_peer)

    def close_all(self) -> None:
        for conn in list(self._by_peer.values()):
            conn.close()


class StreamConnection(asyncio.Protocol):
    """One TCP or TLS connection with its own framer and an idle timeout."""

    reliable = True

    def __init__(
        self,
        sink: Sink,
        table: ConnectionTable,
        kind: str,
        *,
        max_size: int,
        idle_timeout: float,
    ) -> None:
        self.sink = sink
        self.table = table
        self.kind = kind
        self.framer = StreamFramer(max_size=max_size)
        self.idle_timeout = idle_timeout
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.local: Address = ("", 0)
        self._idle: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = transport.get_extra_info("peername")[:2]
        self.local = transport.get_extra_info("sockname")[:2]
        self.table.add(self)
        self._arm_idle()

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self._loop.call_later(self.idle_timeout, self.close)

    def data_received(self, data: bytes) -> None:
        self._arm_idle()
        try:
            messages = self.framer.feed(data)
        except SipParseError as exc:
            self.sink.stream_framing_error(exc, self)
            self.close()
            return
        for message in messages:
            self.sink.stream_message_received(message, self)
        if self.framer.error is not None:
            self.sink.stream_framing_error(self.framer.error, self)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self.table.remove(self)
        self.transport = None

    def send(self, data: bytes, addr: Address | None = None) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_udp(sink: Sink, host: str, port: int, receive_buffer: int = 0) -> UdpListener:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: UdpListener(sink), local_addr=(host, port)
    )
    if receive_buffer > 0:
        _set_receive_buffer(transport.get_extra_info("socket"), receive_buffer)
    return protocol


def _set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for *size* bytes of receive queue; say how to allow it when the kernel caps it.

    Linux silently caps SO_RCVBUF at ``net.core.rmem_max`` for an unprivileged process (and
    reports double the granted size, its bookkeeping overhead included).
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
    if granted < size:
        log.warning(
            "SIP UDP receive buffer capped by the kernel",
            extra={
                "requested": size,
                "granted": granted,
                "fix": f"sysctl -w net.core.rmem_max={size} (or lower [sip] udp_receive_buffer)",
            },
        )


async def open_stream(
    sink: Sink,
    table: ConnectionTable,
    host: str,
    port: int,
    *,
    kind: str,
    tls: ssl.SSLContext | None,
    max_size: int,
    idle_timeout: float,
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: StreamConnection(
            sink,
            table,
            kind,
            max_size=max_size,
            idle_timeout=idle_timeout,
        ),
        host,
        port,
        ssl=tls,
        reuse_address=True,
    )
