from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from outbound_pro.store import open_database
from outbound_pro.store.db import SchemaError
from outbound_pro.store.migrations import MIGRATIONS, Migration


def test_open_creates_file_schema_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "db.sqlite3"
    db = open_database(path)
    assert path.exists()
    assert db.scalar("PRAGMA journal_mode") == "wal"
    assert db.scalar("PRAGMA foreign_keys") == 1
    assert db.scalar("PRAGMA synchronous") == 1  # NORMAL
    versions = db.schema_versions()
    assert versions == {"accounts": 1, "registrar": 1, "billing": 1, "calls": 1}
    tables = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"contracts", "ids", "numbers", "sip_bindings", "audit_log"} <= tables


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    db = open_database(tmp_path / "db.sqlite3")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO affiliations (contract_id, name, policy, added_at) VALUES (99, 'x', '{}',"
            " 'now')"
        )


def test_migrations_run_once_in_order_and_new_ones_apply(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    open_database(path).close()
    extra = (
        *MIGRATIONS,
        Migration("cdrs", 1, "cdr table", ("CREATE TABLE cdrs (id INTEGER PRIMARY KEY)",)),
        Migration("cdrs", 2, "cdr column", ("ALTER TABLE cdrs ADD COLUMN x TEXT",)),
    )
    db = open_database(path, extra)
    assert db.schema_versions()["cdrs"] == 2
    assert db.migrate(extra) == []  # nothing pending
    db.close()
    # an older program (one that knows no "cdrs" migrations) refuses the newer file
    with pytest.raises(SchemaError, match="newer"):
        open_database(path)


def test_failing_migration_leaves_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    bad = (*MIGRATIONS, Migration("x", 1, "broken", ("CREATE TABLE t (a)", "NOT SQL")))
    with pytest.raises(sqlite3.OperationalError):
        open_database(path, bad)
    db = open_database(path)
    assert "x" not in db.schema_versions()
    assert db.scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 't'") == 0


def test_transaction_rolls_back_on_error_and_nests(tmp_path: Path) -> None:
    db = open_database(tmp_path / "db.sqlite3")
    sql = (
        "INSERT INTO contracts (name, email, domain, status, applied_at)"
        " VALUES (?, 'e@x.jp', ?, 'applied', 'now')"
    )
    with pytest.raises(RuntimeError), db.transaction():
        db.execute(sql, ("a", "a.local"))
        with db.transaction():
            db.execute(sql, ("b", "b.local"))
        raise RuntimeError
    assert db.scalar("SELECT COUNT(*) FROM contracts") == 0
    with db.transaction():
        db.execute(sql, ("a", "a.local"))
    assert db.scalar("SELECT COUNT(*) FROM contracts") == 1


CHILD = """
import os, signal, sys
from outbound_pro.store import open_database
db = open_database(sys.argv[1])
for i in range(200):
    db.execute("INSERT INTO contracts (name, email, domain, status, applied_at)"
               " VALUES (?, 'e@x.jp', ?, 'applied', 'now')", (str(i), f"d{i}.local"))
print("committed", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_committed_records_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9
    assert "committed" in proc.stdout
    db = open_database(path)
    assert db.scalar("SELECT COUNT(*) FROM contracts") == 200
