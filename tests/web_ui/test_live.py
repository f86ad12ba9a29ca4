"""``/api/v1/live``: the pushed board, its scoping, and call states from the B2BUA's calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from outbound_pro.accounts.sessions import SessionManager
from outbound_pro.metrics import Registry
from outbound_pro.registrar.model import Binding
from outbound_pro.store.registrar import RegistrarStore
from outbound_pro.web.api import ApiServices, make_setup
from outbound_pro.web.app import create_app
from outbound_pro.web.pages import WebPages
from tests.accounts.helpers import CONSOLE, FAST, active_contract, make_world, pw, user


@dataclass
class Record:
    contract_id: int
    id_id: int
    direction: str
    caller: str
    callee: str
    answer_at: float | None = None


@dataclass
class LiveCall:
    state: str
    record: Record


@dataclass
class Calls:
    """The shape the hub reads from the B2BUA (``B2bua.calls``)."""

    calls: dict[str, LiveCall] = field(default_factory=dict)


class Registrations:
    def __init__(self, store: RegistrarStore) -> None:
        self.store = store

    def registrations(self, contract_id: int, now: float) -> list[Binding]:
        return self.store.live_for_contract(contract_id, now)


@dataclass
class Env:
    client: TestClient
    pages: WebPages
    calls: Calls
    ids: dict[str, Any]

    async def token(self, login: str, password: str) -> str:
        r = await self.client.post("/api/v1/login", json={"login": login, "password": password})
        assert r.status == 200, await r.text()
        return (await r.json())["token"]

    async def board(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.BINARY, msg
        return json.loads(msg.data)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    w = make_world(tmp_path)
    c, _ = active_contract(w.svc, "a.local", "admin-a-pass")
    sales = w.svc.create_affiliation(CONSOLE, c.id, name="sales")
    support = w.svc.create_affiliation(CONSOLE, c.id, name="support")
    u1 = user(w.svc, c.id, "booth01", affiliation_id=sales.id)
    u2 = user(w.svc, c.id, "booth02", affiliation_id=support.id)
    w.svc.create_subadmin(CONSOLE, c.id, login="lead", password=pw("lead-pass-1"), scope=[sales.id])
    store = RegistrarStore(w.db)
    now = 1_750_000_000.0
    binding = Binding(
        c.id,
        u1.id,
        "sip:booth01@a.local",
        "sip:x@y.invalid",
        1.0,
        2e9,
        "cid",
        1,
        "ws",
        "1.2.3.4",
        5,
    )
    store.apply([binding], [])
    services = ApiServices(
        w.svc, SessionManager(w.svc.store), registrations=Registrations(store), password_params=FAST
    )
    calls = Calls()
    pages = WebPages(services, calls=calls, interval=60.0)  # only poke() pushes in these tests
    app = create_app(Registry(), [make_setup(services), pages.setup])
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Env(client, pages, calls, {"c": c, "u1": u1, "u2": u2, "now": now})
    finally:
        await client.close()
        w.db.close()


async def test_board_pushes_registration_and_call_states(env: Env) -> None:
    token = await env.token("admin@a.local", "admin-a-pass")
    headers = {"Authorization": f"Bearer {token}"}
    async with env.client.ws_connect("/api/v1/live", headers=headers) as ws:
        board = await env.board(ws)
        assert board["calls_available"] is True
        states = {b["login"]: (b["status"], b["transport"]) for b in board["booths"]}
        assert states == {"booth01": ("registered", "ws"), "booth02": ("offline", None)}

        rec = Record(env.ids["c"].id, env.ids["u1"].id, "outbound", "booth01", "+81312345678")
        env.calls.calls["c1"] = LiveCall("early", rec)
        env.pages.hub.poke()
        booth = next(b for b in (await env.board(ws))["booths"] if b["login"] == "booth01")
        assert (booth["status"], booth["peer"]) == ("ringing", "+81312345678")

        rec.answer_at = 1_750_000_100.0
        env.calls.calls["c1"] = LiveCall("answered", rec)
        env.pages.hub.poke()
        booth = next(b for b in (await env.board(ws))["booths"] if b["login"] == "booth01")
        assert (booth["status"], booth["since"]) == ("in_call", 1_750_000_100.0)

        # Nothing changed: nothing is sent.
        env.pages.hub.poke()
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.5)

        await env.client.post("/api/v1/logout", headers=headers)
        env.pages.hub.poke()
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4401


async def test_board_is_scoped_and_refused_to_users(env: Env) -> None:
    lead = await env.token("lead@a.local", "lead-pass-1")
    async with env.client.ws_connect(
        "/api/v1/live", headers={"Authorization": f"Bearer {lead}"}
    ) as ws:
        board = await env.board(ws)
        assert [b["login"] for b in board["booths"]] == ["booth01"]
    booth = await env.token("booth01@a.local", "user-pass-1")
    r = await env.client.get("/api/v1/live", headers={"Authorization": f"Bearer {booth}"})
    assert r.status == 403
    env.client.session.cookie_jar.clear()  # the logins above left a session cookie
    r = await env.client.get("/api/v1/live")
    assert r.status == 401
