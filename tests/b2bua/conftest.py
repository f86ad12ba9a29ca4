"""A provisioned server with a trunk on 127.0.0.2 and two booths, for the B2BUA wire tests.

Everything goes through the operator's doors: ``outbound-pro provision`` writes the contract,
booths and trunk; SIPp plays the carrier (from the trunk's trusted address) and the booths.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.b2bua.peers import TRUNK_IP
from tests.conftest import ServerProcess, free_port, start_server, stop_server

DOMAIN = "b2b.op.local"
BOOTHS = {
    "booth01": ("secret-booth01", "03-1111-2222"),
    "booth02": ("secret-booth02", "03-3333-4444"),
    "booth03": ("secret-booth03", "03-5555-6666"),
}


def _far_hour(minutes: int = 0) -> str:
    """A Tokyo time twelve hours from now: a calling window the tests are never inside."""
    at = dt.datetime.now(ZoneInfo("Asia/Tokyo")) + dt.timedelta(hours=12, minutes=minutes)
    return at.strftime("%H:%M")


def provision_text(trunk_port: int) -> str:
    users = "".join(
        f"""
  [[contract.user]]
  id = "{login}"
  password = "{password}"
  numbers = ["{number}"]
  affiliation = "{"sales" if login != "booth03" else "night"}"
"""
        for login, (password, number) in BOOTHS.items()
    )
    return f"""
[[trunk]]
name = "carrier"
host = "{TRUNK_IP}"
port = {trunk_port}
transport = "udp"
username = "trunkuser"
password = "trunk-secret"
trusted_sources = ["{TRUNK_IP}/32"]

[[contract]]
name = "B2BUA Test Corp"
email = "ops@b2b.example.jp"
domain = "{DOMAIN}"
admin = {{ id = "admin", password = "admin-password-1" }}

  [[contract.affiliation]]
  name = "sales"

  [[contract.affiliation]]
  name = "night"
  hours = {{ start = "{_far_hour()}", end = "{_far_hour(1)}" }}
{users}"""


class B2buaServer:
    def __init__(self, server: ServerProcess, trunk_port: int) -> None:
        self.server = server
        self.trunk_port = trunk_port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.sip_port}"

    def db(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.server.data_dir / "outbound-pro.sqlite3", timeout=5)
        conn.row_factory = sqlite3.Row
        return conn

    def cdrs(self) -> list[dict[str, object]]:
        conn = self.db()
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM call_records ORDER BY id")]
        finally:
            conn.close()

    def recordings(self) -> list[dict[str, object]]:
        conn = self.db()
        try:
            return [dict(r) for r in conn.execute("SELECT * FROM recordings ORDER BY id")]
        finally:
            conn.close()

    def bindings(self, login: str) -> list[dict[str, object]]:
        conn = self.db()
        try:
            return [
                dict(r)
                for r in conn.execute(
                    "SELECT b.* FROM sip_bindings b JOIN ids i ON i.id = b.id_id WHERE i.login = ?",
                    (login,),
                )
            ]
        finally:
            conn.close()


def b2bua_toml(extra: str = "") -> str:
    rtp_min = 30000 + (free_port() % 10000) // 2 * 2
    return (
        f'[rtp]\nhost = "127.0.0.1"\nport_min = {rtp_min}\nport_max = {rtp_min + 400}\n'
        f"[b2bua]\nring_timeout = 2.0\nkeepalive_interval = 0\nmd5_challenge_first = true\n"
        f"{extra}\n"
    )


def provision(server: ServerProcess, text: str) -> dict[str, object]:
    path = server.config_path.parent / "provision.toml"
    path.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "outbound_pro.cli",
            "provision",
            str(path),
            "--json",
            "--config",
            str(server.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def start_b2bua(tmp: Path, extra: str = "") -> B2buaServer:
    trunk_port = free_port()
    srv = start_server(tmp, b2bua_toml(extra))
    provision(srv, provision_text(trunk_port))
    return B2buaServer(srv, trunk_port)


@pytest.fixture(scope="module")
def b2bua(tmp_path_factory: pytest.TempPathFactory) -> Iterator[B2buaServer]:
    """One provisioned server per test module."""
    srv = start_b2bua(tmp_path_factory.mktemp("b2bua"))
    try:
        yield srv
    finally:
        stop_server(srv.server)
