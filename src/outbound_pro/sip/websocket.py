"""SIP over WebSocket (RFC 7118): the fourth transport, on the HTTP port at ``/sip``.

Browsers cannot open raw UDP or TCP sockets, so WebRTC SIP clients (JsSIP, SIP.js, the web
phone) speak SIP inside a WebSocket with the ``sip`` subprotocol. Each WebSocket message is
exactly one SIP message (RFC 7118 §5), so there is no stream framing: a message goes straight to
the stack's :class:`~outbound_pro.sip.transport.Sink` like a framed TCP message would.

Each socket becomes a :class:`WebSocketConnection` that quacks like a
:class:`~outbound_pro.sip.transport.StreamConnection` (``kind``, ``peer``, ``reliable``,
``send``, ``close``) and sits in the stack's ``ConnectionTable`` under ``("ws"|"wss", peer)``.
The registrar stores the binding with that transport and the socket's peer address, so a later
request to the booth (an INVITE from the B2BUA) is sent by the ``SipStack`` over the very
socket the browser registered on — the only way to reach it (RFC 7118 §5.2: the ``.invalid``
Via/Contact host of a browser cannot be resolved).

The route runs in the HTTP server's loop, which is the SIP stack's loop too, so the stack is
called directly with no thread hop. The kind is ``wss`` when the HTTP request arrived over TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from aiohttp import WSMsgType, web

from outbound_pro.sip.transport import Address, StreamConnection

if TYPE_CHECKING:
    from outbound_pro.sip.stack import SipStack

log = logging.getLogger("outbound_pro.sip.websocket")

PATH = "/sip"
SUBPROTOCOL = "sip"


class WebSocketConnection:
    """One browser's WebSocket, adapted to the stack's stream-connection interface.

    ``send`` is synchronous for the stack (it is called from transaction actions), while a
    WebSocket write is a coroutine: messages go into a queue drained by one writer task, which
    keeps them in order and never blocks the stack on a slow browser.
    """

    reliable = True

    def __init__(self, ws: web.WebSocketResponse, kind: str, peer: Address, local: Address) -> None:
        self.ws = ws
        self.kind = kind
        self.peer = peer
        self.local = local
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False
        self.sent = 0

    def send(self, data: bytes, addr: Address | None = None) -> None:
        if not self._closed:
            self._out.put_nowait(data)

    def close(self) -> None:
        """Ask the writer to close the socket after what is already queued."""
        if not self._closed:
            self._closed = True
            self._out.put_nowait(None)

    async def write_loop(self) -> None:
        while True:
            data = await self._out.get()
            if data is None:
                await self.ws.close()
                return
            try:
                # Text frames when the message is UTF-8 (what JsSIP and SIP.js send and expect);
                # binary otherwise, which RFC 7118 §4.2 allows for any SIP message.
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            try:
                if text is not None:
                    await self.ws.send_str(text)
                else:
                    await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                return
            self.sent += 1


class SipWebSocketEndpoint:
    """The aiohttp handler for ``GET /sip``; one instance per SIP stack."""

    def __init__(
        self,
        stack: SipStack,
        *,
        heartbeat: float | None = 30.0,
        max_message_size: int | None = None,
    ) -> None:
        self.stack = stack
        self.heartbeat = heartbeat
        self.max_message_size = max_message_size or stack.max_size
        self.open: set[WebSocketConnection] = set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if SUBPROTOCOL not in offered:
            # §4.1: a SIP WebSocket server accepts only clients that offer "sip"; anything else
            # is not a SIP client and gets a plain HTTP refusal.
            return web.Response(status=400, text="WebSocket subprotocol 'sip' required\n")
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            heartbeat=self.heartbeat,
            max_msg_size=self.max_message_size,
        )
        await ws.prepare(request)
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        peer: Address = (str(peername[0]), int(peername[1])) if peername else ("", 0)
        local: Address = (str(sockname[0]), int(sockname[1])) if sockname else ("", 0)
        conn = WebSocketConnection(ws, "wss" if request.secure else "ws", peer, local)
        # The stack's table and sink are typed for StreamConnection; this class provides the
        # same attributes (kind, peer, reliable, send, close), which is all they use.
        stream = cast(StreamConnection, conn)
        self.stack.connections.add(stream)
        self.open.add(conn)
        writer = asyncio.create_task(conn.write_loop())
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    data = msg.data.encode("utf-8")
                elif msg.type is WSMsgType.BINARY:
                    data = msg.data
                else:
                    break
                if data.strip(b"\r\n"):
                    # A bare CRLF is a keep-alive some clients send out of habit (RFC 5626).
                    self.stack.stream_message_received(data, stream)
        finally:
            self.stack.connections.remove(stream)
            self.open.discard(conn)
            conn.close()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await asyncio.wait_for(writer, 5.0)
            if not writer.done():
                writer.cancel()
        return ws

    async def close_all(self) -> None:
        """Close every browser socket (server shutdown: before the HTTP runner cleans up)."""
        for conn in list(self.open):
            conn.close()


def make_sip_websocket_setup(
    stack: SipStack, *, heartbeat: float | None = 30.0
) -> Callable[[web.Application], None]:
    """The hook for ``web.app.create_app(registry, setups)``: adds ``GET /sip``."""
    endpoint = SipWebSocketEndpoint(stack, heartbeat=heartbeat)

    def setup(app: web.Application) -> None:
        app.router.add_get(PATH, endpoint.handle)

    return setup
