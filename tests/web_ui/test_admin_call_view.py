"""Issue 6: an admin watches a booth's call live, then finds and plays its recording in the page.

The call is the web phone's (booth01, affiliation "sales") out through the B2BUA to the Python
carrier of ``test_calls``. A sub-admin scoped to another affiliation ("night", booth03 only)
sees neither the booth nor its recording, in the console or through ``/api/v1``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from playwright.async_api import Browser, expect

from tests.b2bua.conftest import DOMAIN
from tests.web_ui.test_calls import (
    CallServer,
    agent_page,
    call_server,  # noqa: F401  (the module-scoped server with the trunk and booth01..03)
    finished_call,
    open_carrier,
    until,
)
from tests.web_ui.test_pages import api_get, base, log_in, new_page

ADMIN = (f"admin@{DOMAIN}", "admin-password-1")
NIGHT_LEAD = (f"lead-night@{DOMAIN}", "secret-lead-night")
FAR_NUMBER = "+81366667777"

# The page's player is playing this recording: it has a duration and its clock moves.
PLAYING_JS = """
(id) => {
  const a = document.getElementById("playback");
  return !a.hidden && a.src.endsWith(`/api/v1/recordings/${id}/audio`) && !a.paused
    && a.duration > 0 && a.currentTime > 0.3;
}
"""


def api_request(
    srv: CallServer, method: str, path: str, who: tuple[str, str], body: Any = None
) -> tuple[int, Any]:
    """*method* /api/v1 PATH as *who* with a bearer token: (HTTP status, decoded JSON)."""
    server = srv.server
    login = urllib.request.Request(
        f"{base(server)}/api/v1/login",
        data=json.dumps({"login": who[0], "password": who[1]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as r:
        token = json.loads(r.read())["token"]
    req = urllib.request.Request(
        f"{base(server)}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def test_admin_watches_the_call_and_plays_its_recording_other_scope_cannot(
    browser: Browser,
    call_server: CallServer,  # noqa: F811
) -> None:
    srv = call_server
    carrier, media = await open_carrier(srv.trunk_port)
    admin = await new_page(browser, srv.server, "/admin")
    agent = await agent_page(browser, srv)
    try:
        await log_in(admin, *ADMIN)
        booth = admin.locator("#board .booth[data-login='booth01']")
        await expect(booth).to_have_attribute("data-status", "registered", timeout=15000)

        # The web phone dials out: ringing (with the far number) until the carrier answers.
        await agent.fill("#number", "03-6666-7777")
        await agent.click("#call")
        invite, addr = await asyncio.wait_for(carrier.invites.get(), 30)
        await expect(booth).to_have_attribute("data-status", "ringing", timeout=10000)
        await expect(booth).to_contain_text(FAR_NUMBER)
        carrier.answer(invite, addr)
        await expect(agent.locator("#call-state")).to_have_attribute(
            "data-status", "in_call", timeout=15000
        )
        await expect(booth).to_have_attribute("data-status", "in_call", timeout=10000)
        await expect(booth).to_contain_text(FAR_NUMBER)
        await expect(booth.locator(".timer")).to_be_visible()
        # A couple of seconds of talk, so the recording has something to play.
        await until(lambda: len(media.heard) > 16000, 15, "two seconds of the browser's audio")

        await agent.click("#hangup")
        await asyncio.wait_for(carrier.bye.wait(), 10)
        await expect(booth).to_have_attribute("data-status", "registered", timeout=10000)
        await expect(booth).not_to_contain_text(FAR_NUMBER)

        cdr = await until(lambda: finished_call(srv, "outbound"), 15, "the CDR and recording")
        assert (cdr["booth"], cdr["callee"]) == ("booth01", FAR_NUMBER)
        rec_id = srv.rows(f"SELECT id FROM recordings WHERE call_ref = '{cdr['call_ref']}'")[0][
            "id"
        ]

        # The admin searches the recordings by booth and number and plays this one in the page.
        await admin.click("[data-tab=recordings]")
        await admin.fill("#r-booth", "booth01")
        await admin.fill("#r-number", "03-6666-7777")
        await admin.click("#rec-form button[type=submit]")
        play = admin.locator(f"#recordings button[data-recording='{rec_id}']")
        await expect(play).to_be_visible(timeout=10000)
        row = admin.locator("#recordings tr", has=admin.locator(f"[data-recording='{rec_id}']"))
        await expect(row).to_contain_text(FAR_NUMBER)
        await play.click()
        await admin.wait_for_function(PLAYING_JS, arg=rec_id, timeout=15000)
        assert admin.errors == []  # type: ignore[attr-defined]

        # A sub-admin of the "night" affiliation (booth03 only), created by the admin.
        status, affiliations = api_request(srv, "GET", "/affiliations", ADMIN)
        assert status == 200, affiliations
        night = next(a["id"] for a in affiliations if a["name"] == "night")
        status, created = api_request(
            srv,
            "POST",
            "/subadmins",
            ADMIN,
            {"login": "lead-night", "password": NIGHT_LEAD[1], "scope": [night]},
        )
        assert status == 201, created

        lead = await new_page(browser, srv.server, "/admin")
        await log_in(lead, *NIGHT_LEAD)
        await expect(lead.locator("#board .booth[data-login='booth03']")).to_be_visible(
            timeout=15000
        )
        assert await lead.locator("#board .booth[data-login='booth01']").count() == 0
        await lead.click("[data-tab=recordings]")
        await expect(lead.locator("#recordings table")).to_be_visible(timeout=10000)
        async with lead.expect_response(lambda r: "/api/v1/recordings?" in r.url) as searched:
            await lead.fill("#r-booth", "booth01")
            await lead.click("#rec-form button[type=submit]")
        assert (await searched.value).status == 200
        await expect(lead.locator("#recordings table")).to_be_visible()
        assert await lead.locator("#recordings tbody tr").count() == 0
        assert await lead.locator("#recordings button[data-recording]").count() == 0
        # The page's own session cannot fetch the audio either.
        audio_status = await lead.evaluate(
            "async (id) => (await fetch(`/api/v1/recordings/${id}/audio`)).status", rec_id
        )
        assert audio_status == 404
        assert lead.errors == []  # type: ignore[attr-defined]

        listed = api_get(srv.server, "/recordings", *NIGHT_LEAD)
        assert rec_id not in {r["id"] for r in listed}  # type: ignore[union-attr]
        listed = api_get(srv.server, "/recordings?booth=booth01", *NIGHT_LEAD)
        assert listed == []
        assert api_request(srv, "GET", f"/recordings/{rec_id}", NIGHT_LEAD)[0] == 404
        assert api_request(srv, "GET", f"/recordings/{rec_id}/audio", NIGHT_LEAD)[0] == 404
        # ...while the admin's token does see it.
        assert api_request(srv, "GET", f"/recordings/{rec_id}", ADMIN)[0] == 200
    finally:
        await agent.context.close()
        await admin.context.close()
        media.stop()
        assert carrier.transport is not None
        carrier.transport.close()
