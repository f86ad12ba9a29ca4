"""SQL for SIP bindings. Bindings are rows, so they survive a restart and the CLI sees them.

The REGISTER path runs its statements on the plain sqlite3 connection: rows come back as tuples
in `Binding` field order, and each SQL text is a constant, so sqlite3's statement cache keeps
it prepared. sqlite-utils' ``query`` (dict rows, keyword sniffing, key de-duplication) cost more
than the statements themselves at thousands of REGISTERs a second.

An AOR's rows are also kept in memory once read (`bindings_of`), because nearly every REGISTER
is a refresh of rows this process wrote itself: the registrar hands back what it wrote after
each commit (`remember`), and any other write (another process's commit, or one on this
connection: the API, the keep-alive, the expiry purge) empties the whole mirror, detected by
`ChangeWatch` inside the REGISTER's own write transaction, as `SipLogins` does for IDs.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec.structs import astuple

from outbound_pro.registrar.model import Binding
from outbound_pro.store.db import ChangeWatch, Database

# Same order as the fields of `Binding`, so a row is `Binding(*row)`.
_COLUMNS = (
    "contract_id, id_id, aor, contact, q, expires_at, call_id, cseq, transport, source_host,"
    " source_port, user_agent, instance, updated_at"
)
_OF_AOR = f"SELECT {_COLUMNS} FROM sip_bindings WHERE id_id = ? AND aor = ? ORDER BY id"
_DELETE = "DELETE FROM sip_bindings WHERE id_id = ? AND aor = ? AND contact = ?"
_UPSERT = (
    f"INSERT INTO sip_bindings ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(id_id, aor, contact) DO UPDATE SET q = excluded.q,"
    " expires_at = excluded.expires_at, call_id = excluded.call_id,"
    " cseq = excluded.cseq, transport = excluded.transport,"
    " source_host = excluded.source_host, source_port = excluded.source_port,"
    " user_agent = excluded.user_agent, instance = excluded.instance,"
    " updated_at = excluded.updated_at"
)


class RegistrarStore:
    MAX_MIRRORED = 200_000
    """AORs whose rows are kept in memory; the mirror starts over when it is full."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.watch = ChangeWatch(db)
        self._mirror: dict[tuple[int, str], tuple[Binding, ...]] = {}

    def bindings_of(self, id_id: int, aor: str) -> tuple[Binding, ...]:
        """Every stored binding of one AOR in row order, expired ones included (they still
        order CSeqs). Call it inside the write transaction that acts on the answer."""
        mirror = self._mirror
        if self.watch.changed():
            mirror.clear()
        key = (id_id, aor)
        rows = mirror.get(key)
        if rows is None:
            rows = tuple(Binding(*r) for r in self.db.conn.execute(_OF_AOR, key))
            if len(mirror) >= self.MAX_MIRRORED:
                mirror.clear()
            mirror[key] = rows
        return rows

    def remember(self, id_id: int, aor: str, rows: Sequence[Binding]) -> None:
        """After committing a write made by the caller of `bindings_of` in the same transaction:
        *rows* are the AOR's rows now, and no other write happened in between."""
        self._mirror[(id_id, aor)] = tuple(rows)
        self.watch.absorb()

    def apply(self, upserts: Sequence[Binding], removals: Sequence[Binding]) -> None:
        """Write one REGISTER's outcome atomically."""
        with self.db.transaction():
            self.write(upserts, removals)

    def write(self, upserts: Sequence[Binding], removals: Sequence[Binding]) -> None:
        """Removals, then upserts (one statement each), inside the caller's transaction."""
        conn = self.db.conn
        for b in removals:
            conn.execute(_DELETE, (b.id_id, b.aor, b.contact))
        for b in upserts:
            conn.execute(_UPSERT, astuple(b))  # fields in _COLUMNS order

    def live_for_id(self, id_id: int, now: float) -> list[Binding]:
        """Where to reach one user now: best q first, then the most recently refreshed."""
        rows = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM sip_bindings b WHERE id_id = ? AND expires_at > ?"
            " AND EXISTS (SELECT 1 FROM ids i JOIN contracts c ON c.id = i.contract_id"
            "  WHERE i.id = b.id_id AND i.removed_at IS NULL AND i.status != 'revoked'"
            "  AND c.status IN ('active', 'restricted'))"
            " ORDER BY q DESC, updated_at DESC",
            (id_id, now),
        )
        return [Binding(*r) for r in rows]

    def live_for_contract(self, contract_id: int, now: float) -> list[Binding]:
        rows = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM sip_bindings WHERE contract_id = ? AND expires_at > ?"
            " ORDER BY id_id, q DESC",
            (contract_id, now),
        )
        return [Binding(*r) for r in rows]

    def live_bindings(self, now: float) -> list[Binding]:
        """Every unexpired binding (the keep-alive walks them all)."""
        rows = self.db.conn.execute(
            f"SELECT {_COLUMNS} FROM sip_bindings WHERE expires_at > ? ORDER BY id", (now,)
        )
        return [Binding(*r) for r in rows]

    def remove_if_not_refreshed(self, id_id: int, aor: str, contact: str, since: float) -> bool:
        """Delete a binding unless a REGISTER refreshed it after *since* (keep-alive removal
        must not undo a registration that raced with the failed probe)."""
        cur = self.db.execute(
            "DELETE FROM sip_bindings WHERE id_id = ? AND aor = ? AND contact = ?"
            " AND updated_at <= ?",
            (id_id, aor, contact, since),
        )
        return cur.rowcount > 0

    def count_live(self, now: float) -> int:
        return int(self.db.scalar("SELECT COUNT(*) FROM sip_bindings WHERE expires_at > ?", (now,)))

    def purge_expired(self, now: float) -> int:
        return self.db.execute("DELETE FROM sip_bindings WHERE expires_at <= ?", (now,)).rowcount
