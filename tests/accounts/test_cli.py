"""The accounts commands as an operator runs them: real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from outbound_pro.accounts.passwords import ha1, verify_password
from outbound_pro.store import open_database
from outbound_pro.store.accounts import AccountsStore

PROVISION = """
[[operator]]
login = "ops"
password = "operator-secret"

[[trunk]]
name = "carrier"
host = "192.0.2.10"
port = 5060
transport = "udp"
username = "trunkuser"
password = "trunk-secret"
trusted_sources = ["192.0.2.10"]

[[contract]]
name = "Example Corp"
email = "ops@example.jp"
domain = "example.op.local"
admin = { id = "admin", password = "admin-secret-1" }
  [[contract.affiliation]]
  name = "sales"
  allowed_prefixes = ["03", "0120"]
  hours = { start = "09:00", end = "18:00" }
  [[contract.user]]
  id = "booth01"
  password = "booth01-secret"
  numbers = ["0312345678"]
  affiliation = "sales"
  [[contract.subadmin]]
  id = "lead"
  password = "lead-secret-1"
  affiliations = ["sales"]
  [[contract.device]]
  name = "phone-1"
  numbers = ["03-1234-5678"]
"""


def run(tmp: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outbound_pro.accounts.cli", *args, "--data-dir", str(tmp / "d")],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        cwd=tmp,
    )


def test_provision_is_idempotent_and_updates(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(PROVISION)
    first = run(tmp_path, "provision", str(f), "--json")
    assert first.returncode == 0, first.stderr
    actions = {(c["kind"], c["ref"]): c["action"] for c in json.loads(first.stdout)}
    assert set(actions.values()) == {"created"}
    assert ("admin", "admin@example.op.local") in actions
    again = run(tmp_path, "provision", str(f), "--json")
    assert {c["action"] for c in json.loads(again.stdout)} == {"unchanged"}, again.stdout
    f.write_text(
        PROVISION.replace('password = "booth01-secret"', 'password = "booth01-new-1"').replace(
            'numbers = ["0312345678"]\n  affiliation',
            'numbers = ["0312345678", "09012345678"]\n  affiliation',
        )
    )
    third = run(tmp_path, "provision", str(f), "--json")
    changed = {(c["kind"], c["ref"]): c["action"] for c in json.loads(third.stdout)}
    assert changed[("user", "booth01")] == "updated"
    assert changed[("contract", "example.op.local")] == "unchanged"
    db = open_database(tmp_path / "d" / "outbound-pro.sqlite3")
    store = AccountsStore(db)
    contract = store.contract_by_domain("example.op.local")
    assert contract is not None and contract.status.value == "active"
    secrets = store.secrets_by_login(contract.id, "booth01")
    assert secrets is not None and verify_password("booth01-new-1", secrets.password_hash)
    assert secrets.ha1_md5 == ha1("booth01", "example.op.local", "booth01-new-1", "MD5")
    identity = store.identity_by_login(contract.id, "booth01")
    assert identity is not None and identity.numbers == ["+81312345678", "+819012345678"]
    trunk = store.get_trunk("carrier")
    assert trunk is not None and trunk.trusted_sources == ["192.0.2.10"]
    # no secret in clear anywhere in the database but the trunk password the B2BUA must send
    raw = (tmp_path / "d" / "outbound-pro.sqlite3").read_bytes()
    raw += (tmp_path / "d" / "outbound-pro.sqlite3-wal").read_bytes()
    for secret in (b"booth01-new-1", b"admin-secret-1", b"operator-secret", b"lead-secret-1"):
        assert secret not in raw


def test_provision_errors_name_the_field(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(PROVISION.replace("  hours = {", "  hour = {"))
    out = run(tmp_path, "provision", str(f))
    assert out.returncode == 2 and "hour" in out.stderr
    f.write_text(PROVISION.replace('numbers = ["0312345678"]', 'numbers = ["12345"]'))
    out = run(tmp_path, "provision", str(f))
    assert out.returncode == 2 and "numbers[0]" in out.stderr
    out = run(tmp_path, "provision", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_contract_and_user_commands(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        "contract",
        "apply",
        "--name",
        "A",
        "--email",
        "a@a.jp",
        "--domain",
        "a.local",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "applied"
    run(tmp_path, "contract", "apply", "--name", "B", "--email", "b@b.jp", "--domain", "b.local")
    out = run(tmp_path, "contract", "approve", "b.local")
    assert out.returncode == 4 and "received earlier" in out.stderr
    out = run(tmp_path, "contract", "approve", "a.local", "--json")
    issued = json.loads(out.stdout)
    assert issued["login"] == "admin" and len(issued["password"]) == 16
    out = run(tmp_path, "contract", "refuse", "b.local", "--reason", "duplicate")
    assert out.returncode == 0 and "refused" in out.stdout
    out = run(
        tmp_path,
        "user",
        "add",
        "--contract",
        "a.local",
        "booth01",
        "--password-stdin",
        "--number",
        "0312345678",
        "--json",
        stdin="stdin-pass-1\n",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["password"] is None
    out = run(tmp_path, "user", "add", "--contract", "a.local", "booth02", "--number", "99")
    assert out.returncode == 2 and "numbers[0]" in out.stderr
    out = run(tmp_path, "user", "list", "--contract", "a.local", "--json")
    assert [u["login"] for u in json.loads(out.stdout)] == ["booth01"]
    out = run(tmp_path, "user", "revoke", "--contract", "a.local", "booth01")
    assert out.returncode == 0 and "revoked" in out.stdout
    out = run(tmp_path, "user", "show", "--contract", "a.local", "booth01")
    assert out.returncode == 3 and "no ID" in out.stderr
    out = run(tmp_path, "contract", "show", "nowhere.local")
    assert out.returncode == 3 and "contract list" in out.stderr
    out = run(
        tmp_path, "contract", "suspend", "a.local", "--reason", "attack", "--emergency", "--json"
    )
    assert json.loads(out.stdout)["status"] == "suspended"
    out = run(tmp_path, "audit", "--contract", "a.local", "--json")
    actions = [e["action"] for e in json.loads(out.stdout)]
    assert actions[0] == "contract.suspend" and "user.revoke" in actions


def test_config_option_selects_the_data_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "fromcfg"}"\n')
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "outbound_pro.accounts.cli",
            "operator",
            "create",
            "root-op",
            "--config",
            str(cfg),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["password"]) == 16
    assert (tmp_path / "fromcfg" / "outbound-pro.sqlite3").exists()
