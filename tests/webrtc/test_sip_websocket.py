"""SIP over WebSocket (RFC 7118): REGISTER with digest through ``/sip`` on a running server,
and requests from the stack to a WebSocket peer over the very socket it opened."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from outbound_pro.metrics import Registry
from outbound_pro.sip.message import Request, parse_message
from outbound_pro.sip.router import Router
from outbound_pro.sip.stack import Destination, SipStack
from outbound_pro.sip.websocket import make_sip_websocket_setup
from outbound_pro.web.app import create_app
from tests.conftest import ServerProcess, stop_server
from tests.web_ui.helpers import (
    DOMAIN,
    digest_authorization,
    md5_challenge,
    provision,
    start_web_server,
)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_web_server(tmp_path_factory.mktemp("sip-ws"))
    try:
        provision(srv)
        yield srv
    finally:
        stop_server(srv)


def register(
    user: str, call_id: str, cseq: int, auth: str | None = None, expires: int = 300
) -> str:
    """A REGISTER as JsSIP writes it: WS Via and an unresolvable ``.invalid`` contact host."""
    lines = [
        f"REGISTER sip:{DOMAIN} SIP/2.0",
        f"Via: SIP/2.0/WS abc123.invalid;branch=z9hG4bK{secrets.token_hex(8)}",
        "Max-Forwards: 69",
        f"To: <sip:{user}@{DOMAIN}>",
        f"From: <sip:{user}@{DOMAIN}>;tag={secrets.token_hex(4)}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:x7y8z9@abc123.invalid;transport=ws>;expires={expires}",
        f"Expires: {expires}",
        "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY",
        "Supported: path,gruu,outbound",
        "User-Agent: ws-test",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


def status_of(text: str) -> int:
    return int(text.split(" ", 2)[1])


def live_bindings(server: ServerProcess, login: str) -> list[dict[str, object]]:
    conn = sqlite3.connect(server.data_dir / "outbound-pro.sqlite3", timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT b.* FROM sip_bindings b JOIN ids i ON i.id = b.id_id"
            " WHERE i.login = ? AND b.expires_at > ?",
            (login, time.time()),
        ).fetchall()
    finally:
        conn.close()
    return [dict(r) for r in rows]


async def test_register_with_digest_over_websocket(web_server: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{web_server.http_port}/sip"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=("sip",)) as ws,
    ):
        assert ws.protocol == "sip"
        call_id = secrets.token_hex(8)
        await ws.send_str(register("booth01", call_id, 1))
        challenge = await ws.receive_str(timeout=5)
        assert status_of(challenge) == 401
        auth = digest_authorization(
            md5_challenge(challenge), "booth01", "secret-booth01", "REGISTER", f"sip:{DOMAIN}"
        )
        await ws.send_str(register("booth01", call_id, 2, auth))
        ok = await ws.receive_str(timeout=5)
        assert status_of(ok) == 200, ok
        assert "abc123.invalid;transport=ws" in ok
        rows = live_bindings(web_server, "booth01")
        assert [r["transport"] for r in rows] == ["ws"]
        local_port = ws.get_extra_info("sockname")[1]
        assert rows[0]["source_port"] == local_port

        # A wrong password over the same socket is refused, and the socket stays usable.
        bad = digest_authorization(
            md5_challenge(challenge), "booth01", "wrong-password", "REGISTER", f"sip:{DOMAIN}"
        )
        await ws.send_str(register("booth01", secrets.token_hex(8), 1, bad))
        assert status_of(await ws.receive_str(timeout=5)) in (401, 403)

        # Un-REGISTER: the binding goes away.
        await ws.send_str(register("booth01", call_id, 3, auth, expires=0))
        reply = await ws.receive_str(timeout=5)
        if status_of(reply) == 401:  # nonce-count replay refused: answer the fresh challenge
            auth = digest_authorization(
                md5_challenge(reply), "booth01", "secret-booth01", "REGISTER", f"sip:{DOMAIN}"
            )
            await ws.send_str(register("booth01", call_id, 4, auth, expires=0))
            reply = await ws.receive_str(timeout=5)
        assert status_of(reply) == 200, reply
        assert live_bindings(web_server, "booth01") == []


async def test_options_answered_on_the_socket_and_garbage_does_not_kill_it(
    web_server: ServerProcess,
) -> None:
    url = f"ws://127.0.0.1:{web_server.http_port}/sip"
    options = (
        f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
        f"Via: SIP/2.0/WS abc.invalid;branch=z9hG4bK{secrets.token_hex(8)}\r\n"
        "Max-Forwards: 70\r\nTo: <sip:ping@web.op.local>\r\n"
        f"From: <sip:ping@web.op.local>;tag=1\r\nCall-ID: {secrets.token_hex(6)}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=("sip",)) as ws,
    ):
        await ws.send_str("this is not SIP\r\n\r\n")
        await ws.send_str(options)
        reply = await ws.receive_str(timeout=5)
        assert reply.startswith("SIP/2.0 200"), reply
        assert "CSeq: 1 OPTIONS" in reply


async def test_websocket_without_sip_subprotocol_is_refused(web_server: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{web_server.http_port}/sip"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(url)
        assert info.value.status == 400


@pytest.fixture
async def stack_with_ws(tmp_path: Path) -> AsyncIterator[tuple[SipStack, str]]:
    """An in-process stack whose only transport is the WebSocket route."""
    router = Router()
    stack = SipStack(router, Registry())
    router.attach(stack)
    await stack.listen("127.0.0.1")
    app = create_app(Registry(), [make_sip_websocket_setup(stack)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield stack, f"ws://127.0.0.1:{port}/sip"
    finally:
        await runner.cleanup()
        await stack.close()


async def test_stack_sends_requests_to_the_browser_over_its_socket(
    stack_with_ws: tuple[SipStack, str],
) -> None:
    stack, url = stack_with_ws
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, protocols=("sip",)) as ws,
    ):
        local = ws.get_extra_info("sockname")[:2]
        for _ in range(200):
            if stack.connections.get("ws", local) is not None:
                break
            await asyncio.sleep(0.01)
        assert stack.connections.get("ws", local) is not None
        invite = Request(
            "OPTIONS",
            "sip:x7y8z9@abc123.invalid;transport=ws",
            [
                ("Via", f"SIP/2.0/WS 127.0.0.1;branch=z9hG4bK{secrets.token_hex(8)}"),
                ("Max-Forwards", "70"),
                ("From", "<sip:server@web.op.local>;tag=s1"),
                ("To", "<sip:booth01@web.op.local>"),
                ("Call-ID", secrets.token_hex(6)),
                ("CSeq", "1 OPTIONS"),
            ],
        )
        stack.send_request(invite, Destination("ws", local))
        got = await ws.receive_str(timeout=5)
        received = parse_message(got.encode())
        assert isinstance(received, Request)
        assert received.method == "OPTIONS"
    # The socket closed: the stack forgets the connection.
    for _ in range(200):
        if stack.connections.get("ws", local) is None:
            break
        await asyncio.sleep(0.01)
    assert stack.connections.get("ws", local) is None
