"""A real server, provisioned through the CLI, for the web and WebRTC tests."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
import sys
from pathlib import Path

from tests.conftest import ServerProcess, free_port, start_server

DOMAIN = "web.op.local"
OTHER_DOMAIN = "other.op.local"
ADMIN_PASSWORD = "admin-password-1"
OPERATOR_PASSWORD = "operator-password-1"

PROVISION = f"""
[[operator]]
login = "ops1"
password = "{OPERATOR_PASSWORD}"

[[contract]]
name = "Web Test Corp"
email = "ops@web.example.jp"
domain = "{DOMAIN}"
admin = {{ id = "admin", password = "{ADMIN_PASSWORD}" }}

  [[contract.affiliation]]
  name = "sales"

  [[contract.affiliation]]
  name = "support"

  [[contract.user]]
  id = "booth01"
  password = "secret-booth01"
  affiliation = "sales"
  numbers = ["0312345601"]

  [[contract.user]]
  id = "booth02"
  password = "secret-booth02"
  affiliation = "sales"

  [[contract.user]]
  id = "booth03"
  password = "secret-booth03"
  affiliation = "support"

  [[contract.subadmin]]
  id = "lead-support"
  password = "secret-lead-support"
  affiliations = ["support"]

  [[contract.subadmin]]
  id = "lead-sales"
  password = "secret-lead-sales"
  affiliations = ["sales"]
"""


def start_web_server(tmp: Path) -> ServerProcess:
    """`outbound-pro serve` with its RTP relay on a free port range of its own."""
    low = free_port() // 2 * 2
    return start_server(
        tmp, extra_config=f'[rtp]\nhost = "127.0.0.1"\nport_min = {low}\nport_max = {low + 200}\n'
    )


def cli(server: ServerProcess, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "outbound_pro.cli", *args, "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"outbound-pro {args} failed: {proc.stdout}{proc.stderr}"
    return proc.stdout


def provision(server: ServerProcess, text: str = PROVISION) -> dict[str, object]:
    path = server.config_path.parent / "provision.toml"
    path.write_text(text)
    return json.loads(cli(server, "provision", str(path), "--json"))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_authorization(challenge: str, user: str, password: str, method: str, uri: str) -> str:
    """An MD5 ``Authorization`` value with qop=auth for one ``WWW-Authenticate`` value."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.partition(" ")[2]))
    realm, nonce = params["realm"], params["nonce"]
    cnonce, nc = secrets.token_hex(8), "00000001"
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    value = (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
    )
    if "opaque" in params:
        value += f', opaque="{params["opaque"]}"'
    return value


def md5_challenge(response_text: str) -> str:
    """The MD5 ``WWW-Authenticate`` value of a 401 (the registrar offers SHA-256 first)."""
    for line in response_text.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "www-authenticate" and "MD5" in value.upper():
            return value.strip()
        if name.strip().lower() == "www-authenticate" and "algorithm" not in value.lower():
            return value.strip()
    raise AssertionError(f"no MD5 challenge in:\n{response_text}")
