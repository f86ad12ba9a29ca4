"""/api/v1/billing through a real aiohttp server: operator books, admin read-only, other
contracts 404, bad input 400 naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from outbound_pro.accounts.sessions import SessionManager
from outbound_pro.metrics import Registry
from outbound_pro.web.api import ApiServices
from outbound_pro.web.api import make_setup as make_api_setup
from outbound_pro.web.api_billing import make_setup
from outbound_pro.web.app import create_app
from tests.accounts.helpers import CONSOLE, FAST, pw
from tests.billing_db.helpers import Scenario, build


class Env:
    def __init__(self, client: TestClient, s: Scenario) -> None:
        self.client = client
        self.s = s

    async def login(self, login: str, password: str) -> dict[str, str]:
        r = await self.client.post("/api/v1/login", json={"login": login, "password": password})
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['token']}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str], json: Any = None, status: int = 200
    ) -> Any:
        r = await self.client.request(method, "/api/v1" + path, headers=headers, json=json)
        body = await r.json()
        assert r.status == status, body
        return body


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[Env]:
    s = build(tmp_path)
    s.w.svc.create_operator(CONSOLE, "ops", pw("operator-pass"))
    s.w.svc.create_subadmin(CONSOLE, s.contract_id, login="sub02", password=pw("sub-pass-02"))
    services = ApiServices(s.w.svc, SessionManager(s.w.svc.store), password_params=FAST)
    app = create_app(Registry(), [make_api_setup(services), make_setup(services, s.billing)])
    async with TestClient(TestServer(app)) as client:
        yield Env(client, s)


async def test_operator_issues_downloads_and_records(env):
    ops = await env.login("ops", "operator-pass")
    cid, other = env.s.contract_id, env.s.other_id
    issued = await env.call(
        "POST", "/billing/issue", ops, {"month": "2026-07", "issue_date": "2026-08-01"}
    )
    assert {(i["contract_id"], i["created"]) for i in issued} == {(cid, True), (other, True)}
    again = await env.call(
        "POST", "/billing/issue", ops, {"month": "2026-07", "issue_date": "2026-08-02"}
    )
    assert [i["created"] for i in again] == [False, False]
    listed = await env.call("GET", "/billing/invoices?month=2026-07", ops)
    assert len(listed) == 2
    number = f"C-{cid}-202607"
    invoice = await env.call("GET", f"/billing/invoices/{number}", ops)
    assert invoice["total"] == 93_133 and invoice["issuer"]["registration_number"]
    r = await env.client.get(f"/api/v1/billing/invoices/{number}?format=html", headers=ops)
    assert r.status == 200 and r.content_type == "text/html" and "93,133" in await r.text()
    r = await env.client.get(f"/api/v1/billing/invoices/{number}?format=csv", headers=ops)
    assert r.status == 200 and (await r.read()).startswith(b"\xef\xbb\xbf")
    status = await env.call(
        "POST",
        f"/billing/invoices/{number}/payments",
        ops,
        {"date": "2026-08-20", "amount": 93_133},
    )
    assert status["balance"] == 0 and status["late_interest"]["interest"] == 0
    recorded = await env.call(
        "POST",
        "/billing/outages",
        ops,
        {
            "contract_id": cid,
            "recognised": "2026-08-03T09:00:00+09:00",
            "restored": "2026-08-04T10:00:00+09:00",
        },
    )
    assert recorded["month"] == "2026-08" and recorded["warning"] == ""
    note = await env.call(
        "POST",
        f"/billing/invoices/{number}/credit-note",
        ops,
        {"reason": "wrong address", "issue_date": "2026-08-21"},
    )
    assert note["kind"] == "credit_note" and note["total"] == -93_133
    await env.call(
        "POST",
        f"/billing/invoices/{number}/credit-note",
        ops,
        {"reason": "again", "issue_date": "2026-08-21"},
        status=409,
    )


async def test_admin_reads_own_invoices_only(env):
    ops = await env.login("ops", "operator-pass")
    await env.call("POST", "/billing/issue", ops, {"month": "2026-07", "issue_date": "2026-08-01"})
    cid, other = env.s.contract_id, env.s.other_id
    admin = await env.login("admin@a.local", "admin-a-pass")
    own = await env.call("GET", "/billing/invoices", admin)
    assert [i["number"] for i in own] == [f"C-{cid}-202607"]
    await env.call("GET", f"/billing/invoices/C-{cid}-202607", admin)
    r = await env.client.get(f"/api/v1/billing/invoices/C-{cid}-202607?format=csv", headers=admin)
    assert r.status == 200
    # another contract's invoice, by number or by list filter: 404 like a missing one
    await env.call("GET", f"/billing/invoices/C-{other}-202607", admin, status=404)
    await env.call("GET", f"/billing/invoices/C-{other}-202607/status", admin, status=404)
    await env.call("GET", f"/billing/invoices?contract_id={other}", admin, status=404)
    await env.call("GET", "/billing/invoices/C-999-202607", admin, status=404)
    # read-only: no issuing, payments, credit notes or outages
    await env.call(
        "POST", "/billing/issue", admin, {"month": "2026-07", "issue_date": "2026-08-01"}, 403
    )
    await env.call(
        "POST",
        f"/billing/invoices/C-{cid}-202607/payments",
        admin,
        {"date": "2026-08-20", "amount": 1},
        403,
    )
    # sub-admins and users do not see invoices; anonymous callers are not let in
    sub = await env.login("sub02@a.local", "sub-pass-02")
    await env.call("GET", f"/billing/invoices/C-{cid}-202607", sub, status=403)
    env.client.session.cookie_jar.clear()  # the login above left its session cookie
    await env.call("GET", "/billing/invoices", {}, status=401)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/billing/issue", {"month": "2026-13", "issue_date": "2026-08-01"}, "month"),
        ("/billing/issue", {"month": "2026-07", "issue_date": "soon"}, "issue_date"),
        ("/billing/issue", {"month": "2026-07", "issue_date": "2026-07-31"}, "issue_date"),
        ("/billing/issue", {"month": "2026-07"}, "issue_date"),
        (
            "/billing/outages",
            {"contract_id": 1, "recognised": "2026-07-01T09:00:00", "restored": "x"},
            "recognised",
        ),
        (
            "/billing/outages",
            {
                "contract_id": 1,
                "recognised": "2026-07-03T09:00:00+09:00",
                "restored": "2026-07-01T09:00:00+09:00",
            },
            "restored",
        ),
    ],
)
async def test_bad_input_is_400_naming_the_field(env, path, body, field):
    ops = await env.login("ops", "operator-pass")
    answer = await env.call("POST", path, ops, body, status=400)
    assert answer["field"] == field, answer


async def test_bad_payment_and_format_name_the_field(env):
    ops = await env.login("ops", "operator-pass")
    await env.call("POST", "/billing/issue", ops, {"month": "2026-07", "issue_date": "2026-08-01"})
    number = f"C-{env.s.contract_id}-202607"
    for body, field in (
        ({"date": "2026-08-20", "amount": -5}, "amount"),
        ({"date": "20-08-2026", "amount": 5}, "date"),
        ({"date": "2026-08-20", "amount": 5, "extra": 1}, "extra"),
    ):
        answer = await env.call("POST", f"/billing/invoices/{number}/payments", ops, body, 400)
        assert answer["field"] == field, answer
    answer = await env.call("GET", f"/billing/invoices/{number}?format=pdf", ops, status=400)
    assert answer["field"] == "format"
    doc = await env.call("GET", "/billing/openapi.json", {})
    assert "/api/v1/billing/issue" in doc["paths"]
