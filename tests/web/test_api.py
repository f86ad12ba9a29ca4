"""Every /api/v1 endpoint through a real aiohttp server: roles, bad input, other contracts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from outbound_pro.accounts.sessions import SessionLimits, SessionManager
from outbound_pro.accounts.throttle import AuthGuard, FailureThrottle
from outbound_pro.metrics import Registry
from outbound_pro.registrar.model import Binding
from outbound_pro.store.registrar import RegistrarStore
from outbound_pro.web.api import ApiServices, make_setup
from outbound_pro.web.app import create_app
from tests.accounts.helpers import CONSOLE, FAST, World, active_contract, make_world, pw, user


class Clock:
    def __init__(self) -> None:
        self.t = 1_750_000_000.0

    def __call__(self) -> float:
        return self.t


class FakeRegistrations:
    """Stands in for the registrar: what the API reads through `RegistrationView`."""

    def __init__(self, store: RegistrarStore) -> None:
        self.store = store

    def registrations(self, contract_id: int, now: float) -> list[Binding]:
        return self.store.live_for_contract(contract_id, now)


@dataclass
class Env:
    client: TestClient
    w: World
    clock: Clock
    ids: dict[str, Any]

    async def login(self, login: str, password: str) -> dict[str, str]:
        r = await self.client.post("/api/v1/login", json={"login": login, "password": password})
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['token']}"}

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        json: Any = None,
        status: int = 200,
    ) -> Any:
        r = await self.client.request(method, "/api/v1" + path, headers=headers or {}, json=json)
        body = await r.json()
        assert r.status == status, body
        return body


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    w = make_world(tmp_path)
    clock = Clock()
    w.svc.create_operator(CONSOLE, "ops", pw("operator-pass"))
    c, _ = active_contract(w.svc, "a.local", "admin-a-pass")
    c2, _ = active_contract(w.svc, "b.local", "admin-b-pass")
    sales = w.svc.create_affiliation(CONSOLE, c.id, name="sales")
    support = w.svc.create_affiliation(CONSOLE, c.id, name="support")
    u1 = user(w.svc, c.id, "booth01", numbers=("0312345678",), affiliation_id=sales.id)
    u2 = user(w.svc, c.id, "booth02", affiliation_id=support.id)
    fb = user(w.svc, c2.id, "booth01", numbers=("0611112222",))
    fdev = w.svc.create_device(CONSOLE, c2.id, name="b-phone", numbers=["0611112222"])
    faff = w.svc.create_affiliation(CONSOLE, c2.id, name="b-aff")
    w.svc.create_subadmin(CONSOLE, c.id, login="lead", password=pw("lead-pass-1"), scope=[sales.id])
    RegistrarStore(w.db).apply(
        [
            Binding(
                c.id,
                u1.id,
                "sip:booth01@a.local",
                "sip:booth01@10.0.0.5",
                1.0,
                clock.t + 600,
                "cid",
                1,
                "udp",
                "203.0.113.5",
                40000,
            ),
            Binding(
                c.id,
                u2.id,
                "sip:booth02@a.local",
                "sip:booth02@10.0.0.6",
                1.0,
                clock.t + 600,
                "cid",
                1,
                "udp",
                "203.0.113.6",
                40000,
            ),
            Binding(
                c2.id,
                fb.id,
                "sip:booth01@b.local",
                "sip:booth01@10.9.9.9",
                1.0,
                clock.t + 600,
                "cid",
                1,
                "udp",
                "198.51.100.9",
                40000,
            ),
        ],
        [],
    )
    services = ApiServices(
        w.svc,
        SessionManager(w.svc.store, SessionLimits(absolute=3600, idle=600)),
        registrations=FakeRegistrations(RegistrarStore(w.db)),
        guard=AuthGuard(per_source=FailureThrottle(throttle_after=4, block_after=6)),
        password_params=FAST,
        clock=clock,
    )
    app = create_app(Registry(), [make_setup(services)])
    ids = {
        "c": c.id,
        "c2": c2.id,
        "sales": sales.id,
        "support": support.id,
        "u1": u1.id,
        "u2": u2.id,
        "fb": fb.id,
        "fdev": fdev.id,
        "faff": faff.id,
    }
    async with TestClient(TestServer(app)) as client:
        yield Env(client, w, clock, ids)


async def test_login_cookie_bearer_logout_and_expiry(env: Env) -> None:
    r = await env.client.post(
        "/api/v1/login", json={"login": "admin", "domain": "a.local", "password": "admin-a-pass"}
    )
    assert r.status == 200
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    me = await env.call("GET", "/me")  # the client's cookie jar carries the session
    assert me["role"] == "admin" and me["domain"] == "a.local"
    await env.call("POST", "/logout")
    await env.call("GET", "/me", status=401)
    h = await env.login("booth01@a.local", "user-pass-1")
    env.client.session.cookie_jar.clear()
    assert (await env.call("GET", "/me", h))["identity"]["login"] == "booth01"
    env.clock.t += 601  # idle timeout
    await env.call("GET", "/me", h, status=401)


async def test_login_failures_are_uniform_audited_and_throttled(env: Env) -> None:
    bad = [
        {"login": "booth01@a.local", "password": "wrong-wrong"},
        {"login": "nobody@a.local", "password": "wrong-wrong"},
        {"login": "booth01@nowhere.local", "password": "wrong-wrong"},
        {"login": "nobody", "password": "wrong-wrong"},
    ]
    bodies = []
    for body in bad:
        r = await env.client.post("/api/v1/login", json=body)
        assert r.status == 401
        bodies.append(await r.json())
    assert all(b == bodies[0] for b in bodies)
    statuses = []
    for _ in range(4):
        r = await env.client.post("/api/v1/login", json=bad[0])
        statuses.append(r.status)
        if r.status == 429:
            assert int(r.headers["Retry-After"]) >= 1
    assert statuses[-1] == 429
    # the right password from the throttled source is refused too, until the wait is over
    r = await env.client.post(
        "/api/v1/login", json={"login": "booth01@a.local", "password": "user-pass-1"}
    )
    assert r.status == 429
    entries = env.w.svc.list_audit(CONSOLE, env.ids["c"], limit=50)
    logins = [e for e in entries if e.action == "login"]
    assert logins and all(e.outcome == "failed" and e.source == "127.0.0.1" for e in logins)


async def test_login_bad_input_names_the_field(env: Env) -> None:
    r = await env.client.post("/api/v1/login", json={"login": "x"})
    body = await r.json()
    assert r.status == 400 and body["field"] == "password"
    r = await env.client.post("/api/v1/login", json={"login": 1, "password": "x"})
    assert (await r.json())["field"] == "login"
    r = await env.client.post("/api/v1/login", json={"login": "a", "password": "b", "x": 1})
    assert r.status == 400 and (await r.json())["field"] == "x"
    r = await env.client.post("/api/v1/login", data=b"{not json")
    assert r.status == 400 and (await r.json())["error"] == "invalid_json"


async def test_operator_contract_lifecycle(env: Env) -> None:
    op = await env.login("ops", "operator-pass")
    listed = await env.call("GET", "/contracts", op)
    assert {c["domain"] for c in listed} == {"a.local", "b.local"}
    assert await env.call("GET", "/contracts?status=applied", op) == []
    await env.call("GET", "/contracts?status=bogus", op, status=400)
    applied = await env.call(
        "POST",
        "/contracts",
        op,
        {"name": "New", "email": "n@n.jp", "domain": "n.local"},
        status=201,
    )
    await env.call(
        "POST",
        "/contracts",
        op,
        {"name": "New", "email": "n@n.jp", "domain": "n.local"},
        status=409,
    )
    bad = await env.call(
        "POST", "/contracts", op, {"name": "X", "email": "bad", "domain": "x.local"}, status=400
    )
    assert bad["field"] == "email"
    cid = applied["id"]
    issued = await env.call("POST", f"/contracts/{cid}/approve", op, {"admin_login": "boss"})
    assert issued["login"] == "boss" and len(issued["password"]) == 16
    admin = await env.login("boss@n.local", issued["password"])
    assert (await env.call("GET", f"/contracts/{cid}", admin))["status"] == "active"
    await env.call("POST", f"/contracts/{cid}/restrict", op, {"reason": "breach"})
    await env.call("POST", f"/contracts/{cid}/suspend", op, {"reason": "attack", "emergency": True})
    await env.call("POST", f"/contracts/{cid}/suspend", op, {"reason": "again"}, status=409)
    await env.call("POST", f"/contracts/{cid}/reinstate", op, {"reason": "ok"})
    new = await env.call("POST", f"/contracts/{cid}/reissue-admin", op, {"password": "new-admin-1"})
    assert new["password"] == "new-admin-1"
    await env.call("GET", "/me", admin, status=401)  # old admin session ended
    t = await env.call(
        "POST", f"/contracts/{cid}/terminate", op, {"end_date": "2030-01-31", "reason": "ended"}
    )
    assert t["status"] == "terminated" and t["end_date"] == "2030-01-31"
    bad = await env.call(
        "POST", f"/contracts/{cid}/terminate", op, {"end_date": "soon", "reason": "x"}, status=400
    )
    assert bad["field"] == "end_date"
    other = await env.call(
        "POST", "/contracts", op, {"name": "R", "email": "r@r.jp", "domain": "r.local"}, status=201
    )
    refused = await env.call("POST", f"/contracts/{other['id']}/refuse", op, {"reason": "no"})
    assert refused["status"] == "refused" and refused["refusal_reason"] == "no"
    await env.call("GET", "/contracts/999", op, status=404)
    await env.call("GET", "/contracts/abc", op, status=404)
    audit = await env.call("GET", f"/audit?contract_id={cid}", op)
    assert {"contract.approve", "contract.suspend"} <= {e["action"] for e in audit}


async def test_provider_endpoints_refuse_contract_ids(env: Env) -> None:
    admin = await env.login("admin@a.local", "admin-a-pass")
    for method, path in [
        ("GET", "/contracts"),
        ("POST", "/contracts/1/approve"),
        ("POST", "/contracts/1/suspend"),
        ("POST", "/contracts/1/reissue-admin"),
    ]:
        await env.call(
            method, path, admin, {"reason": "x"} if "suspend" in path else {}, status=403
        )
    await env.call("GET", f"/contracts/{env.ids['c2']}", admin, status=404)
    op = await env.login("ops", "operator-pass")
    await env.call("GET", "/users", op, status=403)


async def test_users_endpoints(env: Env) -> None:
    h = await env.login("admin@a.local", "admin-a-pass")
    users = await env.call("GET", "/users", h)
    assert [u["login"] for u in users] == ["booth01", "booth02"]
    created = await env.call(
        "POST",
        "/users",
        h,
        {"login": "booth03", "numbers": ["0120-123-456"], "affiliation_id": env.ids["sales"]},
        status=201,
    )
    assert created["identity"]["numbers"] == ["+81120123456"] and created["password"]
    bad = await env.call(
        "POST", "/users", h, {"login": "booth04", "numbers": ["12345"]}, status=400
    )
    assert bad["field"] == "numbers[0]"
    bad = await env.call("POST", "/users", h, {"login": "bad login"}, status=400)
    assert bad["field"] == "login"
    bad = await env.call("POST", "/users", h, {"login": "b5", "password": "short"}, status=400)
    assert bad["field"] == "password"
    await env.call("POST", "/users", h, {"login": "booth03"}, status=409)
    await env.call("POST", "/users", h, {"login": "b6", "numbers": ["0611112222"]}, status=409)
    await env.call(
        "POST", "/users", h, {"login": "b7", "affiliation_id": env.ids["faff"]}, status=400
    )
    uid = created["identity"]["id"]
    assert (await env.call("GET", f"/users/{uid}", h))["login"] == "booth03"
    patched = await env.call(
        "PATCH",
        f"/users/{uid}",
        h,
        {"display_name": "Booth 3", "status": "restricted", "affiliation_id": None},
    )
    assert patched["status"] == "restricted" and patched["affiliation_id"] is None
    await env.call("PATCH", f"/users/{uid}", h, {"status": "revoked"}, status=400)
    await env.call("PATCH", f"/users/{uid}", h, {"status": "nonsense"}, status=400)
    reset = await env.call("POST", f"/users/{uid}/password", h, {})
    assert reset["password"]
    bound = await env.call("POST", f"/users/{uid}/numbers", h, {"number": "090-1234-5678"})
    assert "+819012345678" in bound["numbers"]
    await env.call("POST", f"/users/{uid}/numbers", h, {"number": "x"}, status=400)
    unbound = await env.call("DELETE", f"/users/{uid}/numbers/+819012345678", h)
    assert "+819012345678" not in unbound["numbers"]
    await env.call("DELETE", f"/users/{uid}/numbers/09012345678", h, status=404)
    revoked = await env.call("POST", f"/users/{uid}/revoke", h)
    assert revoked["status"] == "revoked"
    await env.call("GET", f"/users/{uid}", h, status=404)


async def test_other_contract_objects_are_404_and_leak_nothing(env: Env) -> None:
    h = await env.login("admin@a.local", "admin-a-pass")
    fb, fdev, faff = env.ids["fb"], env.ids["fdev"], env.ids["faff"]
    missing = await env.call("GET", "/users/99999", h, status=404)
    for method, path, body in [
        ("GET", f"/users/{fb}", None),
        ("PATCH", f"/users/{fb}", {"display_name": "x"}),
        ("POST", f"/users/{fb}/revoke", None),
        ("POST", f"/users/{fb}/password", {}),
        ("POST", f"/users/{fb}/numbers", {"number": "0312340000"}),
        ("DELETE", f"/users/{fb}/numbers/0611112222", None),
        ("GET", f"/devices/{fdev}", None),
        ("PATCH", f"/devices/{fdev}", {"note": "x"}),
        ("DELETE", f"/devices/{fdev}", None),
        ("POST", f"/devices/{fdev}/accounts", {"number": "0312345678"}),
        ("DELETE", f"/devices/{fdev}/accounts/0611112222", None),
        ("GET", f"/affiliations/{faff}", None),
        ("PATCH", f"/affiliations/{faff}", {"name": "x"}),
        ("DELETE", f"/affiliations/{faff}", None),
        ("POST", f"/subadmins/{fb}/revoke", None),
        ("PUT", f"/subadmins/{fb}/scope", {"scope": None}),
    ]:
        body_out = await env.call(method, path, h, body, status=404)
        assert body_out == missing, path
    regs = await env.call("GET", "/registrations", h)
    assert {r["login"] for r in regs} == {"booth01", "booth02"}
    assert all("10.9.9.9" not in r["contact"] for r in regs)
    audit = await env.call("GET", "/audit", h)
    assert all(e["contract_id"] == env.ids["c"] for e in audit)
    # and the foreign objects are untouched
    assert env.w.svc.get_id(CONSOLE, fb).status.value == "active"


async def test_scoped_subadmin(env: Env) -> None:
    h = await env.login("lead@a.local", "lead-pass-1")
    assert [u["login"] for u in await env.call("GET", "/users", h)] == ["booth01"]
    await env.call("GET", f"/users/{env.ids['u2']}", h, status=404)
    await env.call(
        "POST", "/users", h, {"login": "x1", "affiliation_id": env.ids["support"]}, status=403
    )
    await env.call("POST", "/users", h, {"login": "x2"}, status=403)
    await env.call(
        "POST", "/users", h, {"login": "x3", "affiliation_id": env.ids["sales"]}, status=201
    )
    assert [a["name"] for a in await env.call("GET", "/affiliations", h)] == ["sales"]
    await env.call("POST", "/affiliations", h, {"name": "new"}, status=403)
    await env.call(
        "PATCH", f"/affiliations/{env.ids['sales']}", h, {"policy": {"max_concurrent_calls": 3}}
    )
    await env.call("GET", "/subadmins", h, status=403)
    await env.call("POST", "/subadmins", h, {"login": "y"}, status=403)
    regs = await env.call("GET", "/registrations", h)
    assert [r["login"] for r in regs] == ["booth01"]


async def test_user_sees_only_itself(env: Env) -> None:
    h = await env.login("booth01@a.local", "user-pass-1")
    me = await env.call("GET", "/me", h)
    assert me["identity"]["numbers"] == ["+81312345678"]
    assert (await env.call("GET", f"/users/{env.ids['u1']}", h))["login"] == "booth01"
    for method, path in [
        ("GET", "/users"),
        ("GET", f"/users/{env.ids['u2']}"),
        ("GET", "/devices"),
        ("GET", "/audit"),
        ("GET", "/registrations"),
        ("GET", "/subadmins"),
    ]:
        await env.call(method, path, h, status=403)
    assert [a["name"] for a in await env.call("GET", "/affiliations", h)] == ["sales"]
    bad = await env.call(
        "POST",
        "/me/password",
        h,
        {"current_password": "wrong-wrong", "new_password": "new-pass-123"},
        status=400,
    )
    assert bad["field"] == "current_password"
    await env.call(
        "POST",
        "/me/password",
        h,
        {"current_password": "user-pass-1", "new_password": "x"},
        status=400,
    )
    await env.call(
        "POST",
        "/me/password",
        h,
        {"current_password": "user-pass-1", "new_password": "new-pass-123"},
    )
    await env.call("GET", "/me", h, status=401)  # sessions end with a password change
    await env.login("booth01@a.local", "new-pass-123")


async def test_operator_password_change(env: Env) -> None:
    h = await env.login("ops", "operator-pass")
    await env.call(
        "POST",
        "/me/password",
        h,
        {"current_password": "operator-pass", "new_password": "operator-pass-2"},
    )
    await env.login("ops", "operator-pass-2")


async def test_subadmins_endpoints(env: Env) -> None:
    h = await env.login("admin@a.local", "admin-a-pass")
    created = await env.call(
        "POST", "/subadmins", h, {"login": "sup", "scope": [env.ids["support"]]}, status=201
    )
    sid = created["identity"]["id"]
    assert created["identity"]["scope"] == [env.ids["support"]]
    assert {s["login"] for s in await env.call("GET", "/subadmins", h)} == {"lead", "sup"}
    bad = await env.call(
        "POST", "/subadmins", h, {"login": "z", "scope": [env.ids["faff"]]}, status=400
    )
    assert bad["field"] == "scope[0]"
    assert (await env.call("PUT", f"/subadmins/{sid}/scope", h, {"scope": None}))["scope"] is None
    await env.call("POST", f"/subadmins/{env.ids['u1']}/revoke", h, status=404)  # a user ID
    await env.call("POST", f"/subadmins/{sid}/revoke", h)
    sub = await env.login("lead@a.local", "lead-pass-1")
    await env.call("GET", "/users", sub)


async def test_affiliation_endpoints(env: Env) -> None:
    h = await env.login("admin@a.local", "admin-a-pass")
    created = await env.call(
        "POST",
        "/affiliations",
        h,
        {
            "name": "night",
            "policy": {
                "outbound_allowed": True,
                "allowed_prefixes": ["03"],
                "hours": {"start": "22:00", "end": "06:00"},
                "others_may_monitor": False,
            },
        },
        status=201,
    )
    assert created["policy"]["allowed_prefixes"] == ["+813"]
    bad = await env.call(
        "POST",
        "/affiliations",
        h,
        {"name": "x", "policy": {"hours": {"start": "25:00", "end": "06:00"}}},
        status=400,
    )
    assert bad["field"] == "policy.hours.start"
    bad = await env.call(
        "POST", "/affiliations", h, {"name": "x", "policy": {"bogus": 1}}, status=400
    )
    assert bad["field"] == "policy.bogus"
    await env.call("POST", "/affiliations", h, {"name": "night"}, status=409)
    aid = created["id"]
    assert (await env.call("GET", f"/affiliations/{aid}", h))["name"] == "night"
    renamed = await env.call("PATCH", f"/affiliations/{aid}", h, {"name": "late"})
    assert renamed["name"] == "late" and renamed["policy"]["others_may_monitor"] is False
    await env.call("DELETE", f"/affiliations/{env.ids['sales']}", h, status=409)
    await env.call("DELETE", f"/affiliations/{aid}", h)
    await env.call("GET", f"/affiliations/{aid}", h, status=404)


async def test_device_endpoints(env: Env) -> None:
    h = await env.login("admin@a.local", "admin-a-pass")
    d = await env.call(
        "POST", "/devices", h, {"name": "desk-1", "numbers": ["03-1234-5678"]}, status=201
    )
    assert [a["e164"] for a in d["accounts"]] == ["+81312345678"]
    bad = await env.call(
        "POST", "/devices", h, {"name": "x", "numbers": ["0611112222"]}, status=400
    )
    assert bad["field"] == "numbers[0]"  # another contract's number is not bound here
    await env.call("POST", "/devices", h, {"name": "desk-1"}, status=409)
    did = d["id"]
    assert len(await env.call("GET", "/devices", h)) == 1
    assert (await env.call("GET", f"/devices/{did}", h))["name"] == "desk-1"
    patched = await env.call(
        "PATCH", f"/devices/{did}", h, {"note": "by the window", "affiliation_id": env.ids["sales"]}
    )
    assert patched["note"] == "by the window"
    await env.call("POST", f"/devices/{did}/accounts", h, {"number": "0312345678"}, status=409)
    await env.call("DELETE", f"/devices/{did}/accounts/0312345678", h)
    await env.call("DELETE", f"/devices/{did}/accounts/0312345678", h, status=404)
    await env.call("POST", f"/devices/{did}/accounts", h, {"number": "0312345678"})
    await env.call("DELETE", f"/devices/{did}", h)
    await env.call("GET", f"/devices/{did}", h, status=404)


async def test_audit_and_registrations(env: Env) -> None:
    h = await env.login("admin@a.local", "admin-a-pass")
    page = await env.call("GET", "/audit?limit=2", h)
    assert len(page) == 2 and page[0]["id"] > page[1]["id"]
    older = await env.call("GET", f"/audit?limit=2&before={page[1]['id']}", h)
    assert older and older[0]["id"] < page[1]["id"]
    bad = await env.call("GET", "/audit?limit=x", h, status=400)
    assert bad["field"] == "limit"
    await env.call("GET", "/audit?before=x", h, status=400)
    regs = await env.call("GET", "/registrations", h)
    first = next(r for r in regs if r["login"] == "booth01")
    assert first["source"] == "203.0.113.5:40000" and first["expires_in"] == 600


async def test_unauthenticated_requests_are_401(env: Env) -> None:
    for method, path in [
        ("GET", "/me"),
        ("GET", "/users"),
        ("GET", "/contracts"),
        ("POST", "/logout"),
        ("GET", "/audit"),
    ]:
        await env.call(method, path, status=401)
    await env.call("GET", "/me", {"Authorization": "Bearer forged"}, status=401)


async def test_suspended_contract_users_cannot_log_in(env: Env) -> None:
    h = await env.login("booth01@a.local", "user-pass-1")
    env.w.svc.suspend_contract(CONSOLE, env.ids["c"], reason="attack")
    await env.call("GET", "/me", h, status=401)
    r = await env.client.post(
        "/api/v1/login", json={"login": "booth01@a.local", "password": "user-pass-1"}
    )
    assert r.status == 403 and "suspended" in (await r.json())["message"]
    admin = await env.login("admin@a.local", "admin-a-pass")
    await env.call("GET", "/users", admin)  # read-only access remains
    await env.call("POST", "/users", admin, {"login": "x9"}, status=403)


async def test_openapi_document(env: Env) -> None:
    doc = await env.call("GET", "/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/users/{id}" in doc["paths"]
    post = doc["paths"]["/api/v1/users"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.rsplit("/", 1)[1]
    assert "login" in doc["components"]["schemas"][name]["properties"]
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert len(routes) >= 40
