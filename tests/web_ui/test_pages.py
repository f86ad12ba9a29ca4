"""The agent, admin and operator pages in a real browser against a real server."""

from __future__ import annotations

import json
import urllib.request

from playwright.async_api import Browser, Page, expect

from tests.conftest import ServerProcess
from tests.registrar_wire.rawclient import RawRegisterClient
from tests.web_ui.helpers import ADMIN_PASSWORD, DOMAIN, OPERATOR_PASSWORD


def base(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.http_port}"


async def new_page(browser: Browser, server: ServerProcess, path: str) -> Page:
    context = await browser.new_context(base_url=base(server), locale="ja-JP")
    # Keep a handle on every WebSocket the page opens, so a test can cut one like a network
    # drop would, without any test hook in the page itself.
    await context.add_init_script(
        "window.__sockets = []; const NativeWS = window.WebSocket;"
        "window.WebSocket = class extends NativeWS {"
        " constructor(...args) { super(...args); window.__sockets.push(this); } };"
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors other than HTTP statuses the test provokes on purpose (a 400 for bad input)
    # are script failures too.
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(path)
    return page


def api_get(server: ServerProcess, path: str, login: str, password: str) -> object:
    """GET /api/v1 PATH as *login*, with a bearer token (a second client beside the page)."""
    req = urllib.request.Request(
        f"{base(server)}/api/v1/login",
        data=json.dumps({"login": login, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        token = json.loads(r.read())["token"]
    req = urllib.request.Request(
        f"{base(server)}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


async def log_in(page: Page, login: str, password: str) -> None:
    await page.fill("#login-id", login)
    await page.fill("#login-password", password)
    await page.press("#login-password", "Enter")


async def test_pages_are_served_with_csp_and_japanese_default(
    browser: Browser, web_server: ServerProcess
) -> None:
    for path in ("/agent", "/admin", "/operator"):
        with urllib.request.urlopen(base(web_server) + path, timeout=10) as r:
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["Content-Type"].startswith("text/html")
    page = await new_page(browser, web_server, "/admin")
    await expect(page.locator("h1")).to_have_text("管理コンソール")
    await page.click("#lang")
    await expect(page.locator("h1")).to_have_text("Admin console")
    await page.reload()
    await expect(page.locator("h1")).to_have_text("Admin console")  # the choice is remembered
    await page.click("#lang")
    await expect(page.locator("h1")).to_have_text("管理コンソール")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_login_error_shown_next_to_the_field(
    browser: Browser, web_server: ServerProcess
) -> None:
    page = await new_page(browser, web_server, "/admin")
    await log_in(page, f"admin@{DOMAIN}", "not-the-password")
    await expect(page.locator("#login-form [role=alert]")).to_contain_text(
        "wrong login or password"
    )
    # A user ID is sent to the web phone instead of the admin console.
    await log_in(page, f"booth02@{DOMAIN}", "secret-booth02")
    await expect(page.locator("#login-id + .field-error")).to_contain_text("/agent")
    await expect(page.locator("#login-id")).to_have_attribute("aria-invalid", "true")


async def test_operator_approves_and_new_admin_logs_in(
    browser: Browser, web_server: ServerProcess
) -> None:
    page = await new_page(browser, web_server, "/operator")
    await log_in(page, "ops1", OPERATOR_PASSWORD)
    await expect(page.locator("#console")).to_be_visible()
    # An application with a bad e-mail: the server's message lands next to the field.
    await page.fill("#c-name", "Approve Test K.K.")
    await page.fill("#c-email", "not-an-email")
    await page.fill("#c-domain", "approve.op.local")
    await page.click("#apply-form button[type=submit]")
    await expect(page.locator("#c-email + .field-error")).not_to_be_empty()
    await page.fill("#c-email", "ops@approve.example.jp")
    await page.click("#apply-form button[type=submit]")
    status = page.locator("[data-domain='approve.op.local']")
    await expect(status).to_have_text("applied")
    value = await page.locator("#x-contract option", has_text="approve.op.local").get_attribute(
        "value"
    )
    assert value is not None
    await page.select_option("#x-contract", value)
    await page.select_option("#x-action", "approve")
    await page.fill("#x-admin", "chief")
    await page.click("#action-form button[type=submit]")
    await expect(page.locator("#issued-login")).to_have_text("chief@approve.op.local")
    password = (await page.locator("#issued-password").text_content() or "").strip()
    assert len(password) >= 8
    await expect(status).to_have_text("active")

    admin = await new_page(browser, web_server, "/admin")
    await log_in(admin, "chief@approve.op.local", password)
    await expect(admin.locator("#console")).to_be_visible()
    await expect(admin.locator("#who")).to_have_text("chief@approve.op.local")
    assert page.errors == [] and admin.errors == []  # type: ignore[attr-defined]


async def test_admin_board_goes_live_when_a_phone_registers_and_scope_hides_it(
    browser: Browser, web_server: ServerProcess
) -> None:
    admin = await new_page(browser, web_server, "/admin")
    await log_in(admin, f"admin@{DOMAIN}", ADMIN_PASSWORD)
    booth = admin.locator("#board .booth[data-login='booth03']")
    await expect(booth).to_have_attribute("data-status", "offline")

    support = await new_page(browser, web_server, "/admin")
    await log_in(support, f"lead-support@{DOMAIN}", "secret-lead-support")
    await expect(support.locator("#board .booth[data-login='booth03']")).to_have_attribute(
        "data-status", "offline"
    )
    sales = await new_page(browser, web_server, "/admin")
    await log_in(sales, f"lead-sales@{DOMAIN}", "secret-lead-sales")
    await expect(sales.locator("#board .booth[data-login='booth01']")).to_be_visible()

    with RawRegisterClient("127.0.0.1", ("127.0.0.1", web_server.sip_port), DOMAIN) as phone:
        reply = phone.register("booth03", "secret-booth03", expires=120)
        assert reply.status == 200, reply.text
        await expect(booth).to_have_attribute("data-status", "registered")
        await expect(support.locator("#board .booth[data-login='booth03']")).to_have_attribute(
            "data-status", "registered"
        )
        # The sales sub-admin never learns booth03 exists, live or in the lists.
        assert await sales.locator("#board .booth[data-login='booth03']").count() == 0
        users = api_get(web_server, "/users", f"lead-sales@{DOMAIN}", "secret-lead-sales")
        assert "booth03" not in {u["login"] for u in users}  # type: ignore[union-attr]
        reply = phone.register("booth03", "secret-booth03", expires=0)
        assert reply.status == 200, reply.text
        await expect(booth).to_have_attribute("data-status", "offline")


async def test_agent_registers_over_websocket_and_validates_numbers(
    browser: Browser, web_server: ServerProcess
) -> None:
    page = await new_page(browser, web_server, "/agent")
    await log_in(page, f"booth02@{DOMAIN}", "secret-booth02")
    await expect(page.locator("#reg-state")).to_have_attribute("data-key", "reg_registered")
    regs = api_get(web_server, "/registrations", f"admin@{DOMAIN}", ADMIN_PASSWORD)
    mine = [r for r in regs if r["login"] == "booth02"]  # type: ignore[union-attr, index]
    assert [r["transport"] for r in mine] == ["ws"]
    assert "JsSIP" in mine[0]["user_agent"]

    await page.fill("#number", "110")
    await page.click("#call")
    await expect(page.locator("#number + .field-error")).to_contain_text("110")
    await page.fill("#number", "03-1234-567")
    await page.click("#call")
    await expect(page.locator("#number + .field-error")).to_contain_text("桁数")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_agent_sees_restriction_and_reconnects_after_drop(
    browser: Browser, web_server: ServerProcess
) -> None:
    admin = await new_page(browser, web_server, "/admin")
    await log_in(admin, f"admin@{DOMAIN}", ADMIN_PASSWORD)
    await admin.click("[data-tab=users]")
    row = admin.locator("#users tr", has_text="booth01")
    await row.get_by_role("button", name="発信制限").click()
    await expect(row).to_contain_text("restricted")

    page = await new_page(browser, web_server, "/agent")
    await log_in(page, f"booth01@{DOMAIN}", "secret-booth01")
    await expect(page.locator("#banner [data-key=restricted]")).to_be_visible()
    await expect(page.locator("#reg-state")).to_have_attribute("data-key", "reg_registered")
    # Drop the WebSocket from the page side: the phone says so and registers again by itself.
    await page.evaluate(
        "() => window.__sockets.filter(s => s.protocol === 'sip' && s.readyState === 1)"
        ".forEach(s => s.close())"
    )
    await expect(page.locator("#banner [data-key=reg_lost]")).to_be_visible()
    await expect(page.locator("#reg-state")).to_have_attribute(
        "data-key", "reg_registered", timeout=20000
    )
    await row.get_by_role("button", name="制限解除").click()
    await expect(row).to_contain_text("active")
