"""The SQLite connection: pragmas, transactions and the migration runner.

Durability: each logical operation runs in exactly one transaction (`Database.transaction`) and
is committed before the call returns. In WAL mode a committed transaction is in the WAL file
before COMMIT returns, so killing the process (SIGKILL) cannot lose it; `synchronous=NORMAL`
only skips the fsync per commit, which matters for power loss, not for process death, and keeps
commits in the tens of microseconds the registrar needs.

Transactions start with ``BEGIN IMMEDIATE`` so a writer takes the write lock up front: the CLI
and the server may write to the same file at once, and a deferred transaction that upgrades
from read to write could fail with SQLITE_BUSY instead of waiting for `busy_timeout`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlite_utils

from outbound_pro.store.migrations import MIGRATIONS, Migration

BUSY_TIMEOUT_MS = 5000


class SchemaError(Exception):
    """The database was written by a newer version of Outbound Pro than this one."""


class Database:
    """One SQLite connection owned by one thread (the event loop, or a CLI process)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self._depth = 0

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """One logical operation: commit on success, roll back on any exception.

        Nested calls join the outer transaction (the outer one commits), so a service method
        can compose store calls without committing half of an operation.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self.conn.execute("COMMIT")

    # -- statements -----------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement; outside `transaction()` it is its own committed transaction."""
        if self._depth:
            return self.conn.execute(sql, params)
        with self.transaction():
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts (through sqlite-utils), fetched eagerly so no cursor outlives a call."""
        return list(self.db.query(sql, params))

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        self.conn.close()

    # -- change detection -----------------------------------------------------------------

    def change_mark(self) -> tuple[int, int]:
        """A value that differs whenever the data may have changed since it was last taken.

        ``PRAGMA data_version`` changes when *another* connection (the CLI, a second process)
        commits; ``total_changes`` counts this connection's own inserts, updates and deletes.
        Together they cover every writer, for about a microsecond, so an in-memory cache can
        check it on every use instead of expiring on a timer (see `ChangeWatch`).
        """
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        return int(version), self.conn.total_changes

    # -- schema ---------------------------------------------------------------------------

    def schema_versions(self) -> dict[str, int]:
        rows = self.query("SELECT component, version FROM schema_version")
        return {row["component"]: int(row["version"]) for row in rows}

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
        """Apply every migration not yet applied, each in its own transaction, in order."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " component TEXT PRIMARY KEY, version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
        )
        known: dict[str, int] = {}
        for m in migrations:
            known[m.component] = max(known.get(m.component, 0), m.version)
        current = self.schema_versions()
        for component, version in current.items():
            if version > known.get(component, 0):
                raise SchemaError(
                    f"database schema {component!r} is at version {version}, newer than this "
                    f"program knows ({known.get(component, 0)}); upgrade Outbound Pro"
                )
        applied: list[Migration] = []
        for m in migrations:
            if m.version <= current.get(m.component, 0):
                continue
            with self.transaction():
                for statement in m.statements:
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_version (component, version, applied_at)"
                    " VALUES (?, ?, datetime('now'))"
                    " ON CONFLICT(component) DO UPDATE SET version = excluded.version,"
                    " applied_at = excluded.applied_at",
                    (m.component, m.version),
                )
            current[m.component] = m.version
            applied.append(m)
        return applied


class ChangeWatch:
    """Tells a cache whether the database may have changed since it last looked.

    The owner calls `changed` before trusting its cache (a revocation committed by the CLI a
    moment ago must count at once) and `absorb` right after its own writes, so that writes it
    knows about (a REGISTER's binding row) do not empty a cache they cannot affect. Both run on
    the connection's one thread; nothing else can write between a `changed` and the owner's
    write that follows it in the same call, which is what makes `absorb` safe.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._seen: tuple[int, int] | None = None

    def changed(self) -> bool:
        mark = self.db.change_mark()
        if mark == self._seen:
            return False
        self._seen = mark
        return True

    def absorb(self) -> None:
        """Count this connection's writes made since `changed` as seen."""
        if self._seen is not None:
            self._seen = (self._seen[0], self.db.conn.total_changes)


def open_database(path: str | Path, migrations: Sequence[Migration] = MIGRATIONS) -> Database:
    """Open (creating the file and its directory) and migrate the database at *path*.

    ``":memory:"`` gives a private in-memory database for tests.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if str(path) != ":memory:":
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise SchemaError(f"cannot switch {path} to WAL journal mode (got {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    database = Database(conn)
    database.migrate(migrations)
    return database
