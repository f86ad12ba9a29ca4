"""A real `outbound-pro serve` provisioned with `outbound-pro provision`, for the registrar wire
tests. Everything goes through the same doors an operator uses: the CLI writes the contract and
users into the server's SQLite file (WAL lets it do so while the server runs) and the phones
register over loopback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ServerProcess, start_server, stop_server

DOMAIN = "wire.op.local"
# A short minimum expiry so a phone's own re-registration happens within seconds.
MIN_EXPIRES = 10
REGISTRAR_CONFIG = f"[registrar]\nmin_expires = {MIN_EXPIRES}\nkeepalive_interval = 0\n"
USERS = {f"booth{i:02d}": f"secret-booth{i:02d}" for i in range(1, 6)}

PROVISION = f"""
[[contract]]
name = "Wire Test Corp"
email = "ops@wire.example.jp"
domain = "{DOMAIN}"
admin = {{ id = "admin", password = "admin-password-1" }}

  [[contract.affiliation]]
  name = "sales"
""" + "".join(
    f"""
  [[contract.user]]
  id = "{login}"
  password = "{password}"
  affiliation = "sales"
"""
    for login, password in USERS.items()
)


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `outbound-pro ARGS --config <the server's config>`; fail loudly on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", "outbound_pro.cli", *args, "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"outbound-pro {args} failed: {proc.stdout}{proc.stderr}"
    return proc


def provision(server: ServerProcess, text: str = PROVISION) -> dict[str, object]:
    path = server.config_path.parent / "provision.toml"
    path.write_text(text)
    return json.loads(cli(server, "provision", str(path), "--json").stdout)


def bindings(server: ServerProcess, login: str) -> list[dict[str, object]]:
    """Live bindings of *login* straight from the server's database (a second reader)."""
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


@pytest.fixture(scope="module")
def registrar_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One provisioned server per test module (start-up and provisioning cost ~1 s)."""
    srv = start_server(tmp_path_factory.mktemp("registrar-wire"), extra_config=REGISTRAR_CONFIG)
    try:
        provision(srv)
        yield srv
    finally:
        stop_server(srv)
