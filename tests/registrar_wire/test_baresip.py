"""baresip (Debian 1.0.0) registers to a real server with digest auth, stays registered through
its own timer-driven re-registration, and is refused with a wrong password."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, wait_for
from tests.peers.baresip import BaresipPhone
from tests.registrar_wire.conftest import DOMAIN, MIN_EXPIRES, USERS, bindings

pytestmark = pytest.mark.peer

# The test server's minimum (conftest): baresip refreshes at 90 % of the granted expiry.
REGINT = MIN_EXPIRES


def _account(server: ServerProcess, login: str, password: str) -> str:
    return (
        f"<sip:{login}@{DOMAIN}>;auth_pass={password};"
        f'outbound="sip:127.0.0.1:{server.sip_port}";regint={REGINT}'
    )


@pytest.fixture(scope="module")
def phone(
    registrar_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BaresipPhone, float]]:
    """booth01 registered once at module start; the re-registration test (last) waits for the
    refresh while the other tests run."""
    bare = BaresipPhone.start(tmp_path_factory.mktemp("baresip-good"))
    try:
        answer = bare.command("uanew", _account(registrar_server, "booth01", USERS["booth01"]))
        assert answer["ok"], answer
        event = bare.wait_event("REGISTER_OK", "REGISTER_FAIL")
        assert event["type"] == "REGISTER_OK", event
        yield bare, time.monotonic()
    finally:
        bare.stop()


def test_registers_with_digest_and_binding_is_stored(
    registrar_server: ServerProcess, phone: tuple[BaresipPhone, float]
) -> None:
    bare, _ = phone
    rows = wait_for(lambda: bindings(registrar_server, "booth01"), 5, "booth01 binding")
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    # The registrar keeps where the phone really is (its UDP source) and what it is.
    assert row["source_host"] == "127.0.0.1" and row["source_port"] == bare.sip_port
    assert row["transport"] == "udp"
    assert str(row["user_agent"]).startswith("baresip")
    assert 0 < float(row["expires_at"]) - time.time() <= REGINT


def test_binding_is_visible_in_the_admin_api(
    registrar_server: ServerProcess, phone: tuple[BaresipPhone, float]
) -> None:
    bare, _ = phone
    base = f"http://127.0.0.1:{registrar_server.http_port}/api/v1"
    login = urllib.request.Request(
        f"{base}/login",
        data=json.dumps({"login": f"admin@{DOMAIN}", "password": "admin-password-1"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(login, timeout=10) as r:
        token = json.load(r)["token"]
    request = urllib.request.Request(
        f"{base}/registrations", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        regs = json.load(r)
    mine = [x for x in regs if x["login"] == "booth01"]
    assert len(mine) == 1, regs
    assert mine[0]["aor"] == f"sip:booth01@{DOMAIN}"
    assert mine[0]["source"] == f"127.0.0.1:{bare.sip_port}"
    assert 0 < mine[0]["expires_in"] <= REGINT


def test_wrong_password_is_refused(registrar_server: ServerProcess, tmp_path: Path) -> None:
    # Its own source address, so its failures throttle nobody else in this module.
    bad = BaresipPhone.start(tmp_path / "baresip-bad", host="127.0.0.21")
    try:
        bad.command("uanew", _account(registrar_server, "booth02", "not-the-password"))
        event = bad.wait_event("REGISTER_OK", "REGISTER_FAIL")
        assert event["type"] == "REGISTER_FAIL", event
        # libre retries with each fresh nonce until the guard throttles it: 401 or 503, never 200.
        assert event["param"].startswith(("401", "503")), event
    finally:
        bad.stop()
    assert bindings(registrar_server, "booth02") == []


def test_stays_registered_through_a_reregistration(
    registrar_server: ServerProcess, phone: tuple[BaresipPhone, float]
) -> None:
    bare, registered_at = phone
    before = bindings(registrar_server, "booth01")
    assert len(before) == 1
    # baresip's own refresh timer fires at ~90 % of REGINT; allow slack beyond it.
    remaining = REGINT + 10 - (time.monotonic() - registered_at)
    event = bare.wait_event("REGISTER_OK", "REGISTER_FAIL", timeout=max(remaining, 1))
    assert event["type"] == "REGISTER_OK", event
    after = bindings(registrar_server, "booth01")
    assert len(after) == 1, after  # refreshed, not duplicated
    assert after[0]["contact"] == before[0]["contact"]
    assert after[0]["call_id"] == before[0]["call_id"]
    assert after[0]["cseq"] > before[0]["cseq"]
    assert after[0]["expires_at"] > before[0]["expires_at"]
