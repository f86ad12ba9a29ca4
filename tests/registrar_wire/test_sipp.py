"""SIPp registers several users with digest auth from an injection file; SIPp's own counters
say which succeeded, and the database shows the bindings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.peers.sipp import run_sipp
from tests.registrar_wire.conftest import DOMAIN, USERS, bindings

pytestmark = pytest.mark.peer


def _injection(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["SEQUENTIAL"] + [
        f"{user};{DOMAIN};[authentication username={user} password={password}]"
        for user, password in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sipp_registers_users_with_digest(registrar_server: ServerProcess, tmp_path: Path) -> None:
    users = ["booth03", "booth04", "booth05"]
    inf = _injection(tmp_path / "good" / "users.csv", [(u, USERS[u]) for u in users])
    result = run_sipp(
        tmp_path / "good",
        "register_auth.xml",
        f"127.0.0.1:{registrar_server.sip_port}",
        calls=len(users),
        rate=50,
        timeout=20,
        extra=("-inf", str(inf)),
    )
    assert result.successful == 3, result.screen
    assert result.failed == 0, result.screen
    for user in users:
        rows = bindings(registrar_server, user)
        assert len(rows) == 1 and rows[0]["user_agent"] == "SIPp", rows


def test_sipp_wrong_password_and_unknown_user_fail(
    registrar_server: ServerProcess, tmp_path: Path
) -> None:
    rows = [
        ("booth02", "not-the-password"),
        ("nosuch9", "whatever-pass"),
        ("booth02", USERS["booth02"]),
    ]
    inf = _injection(tmp_path / "bad" / "users.csv", rows)
    result = run_sipp(
        tmp_path / "bad",
        "register_auth.xml",
        f"127.0.0.1:{registrar_server.sip_port}",
        calls=len(rows),
        rate=50,
        timeout=20,
        extra=("-inf", str(inf)),
    )
    # A refused digest is answered with a fresh 401 where SIPp expects 200: a failed call.
    assert result.failed == 2, result.screen
    assert result.successful == 1, result.screen
    assert "401 Unauthorized" in result.messages
