"""SQL for contracts, IDs, numbers, affiliations, devices, operators, sessions, audit, trunks.

Methods here do no permission checks and no validation beyond what the schema enforces; the
accounts service does both and wraps each logical operation in `Database.transaction`.
Removed things keep their rows with ``removed_at`` set, because billing counts units by the
dates they existed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import msgspec

from outbound_pro.accounts.models import (
    Affiliation,
    AffiliationPolicy,
    AuditEntry,
    Contract,
    ContractStatus,
    Detail,
    Device,
    DeviceAccount,
    Identity,
    IdSecrets,
    IdStatus,
    NumberOwner,
    Operator,
    Role,
    Session,
    Trunk,
    UsageUnit,
)
from outbound_pro.store.db import ChangeWatch, Database

_json = msgspec.json.Encoder()
_policy_decoder = msgspec.json.Decoder(AffiliationPolicy)
_list_decoder = msgspec.json.Decoder(list[str])
_detail_decoder = msgspec.json.Decoder(Detail)


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _ts(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def _date(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


_CONTRACT_COLUMNS = {
    "name",
    "email",
    "status",
    "decided_at",
    "refusal_reason",
    "status_reason",
    "start_date",
    "end_date",
    "admin_url",
}
_ID_COLUMNS = {"status", "display_name", "affiliation_id", "removed_at"}


class SipLogin(NamedTuple):
    """A user ID as digest authentication of a REGISTER needs it: one row, statuses as text.

    A tuple rather than `IdSecrets`: it is built for every authenticated REGISTER, straight
    from the row sqlite3 returns, and carries the contract's status so no second query is made.
    """

    id: int
    contract_id: int
    contract_status: str
    status: str
    removed: int  # 1 for a removed (revoked) ID, else 0
    ha1_md5: str | None
    ha1_sha256: str | None


# Live user IDs: `contracts.domain` is UNIQUE and `ids_login` covers (contract_id, login) where
# removed_at IS NULL, so this is two index probes.
_LIVE_LOGIN = (
    "SELECT i.id, i.contract_id, c.status, i.status, 0, i.ha1_md5, i.ha1_sha256"
    " FROM contracts c JOIN ids i ON i.contract_id = c.id"
    " WHERE c.domain = ? AND i.login = ? AND i.role = 'user' AND i.removed_at IS NULL"
)
# Removed (revoked) user IDs, oldest first so the newest one of a login wins in the map.
_REMOVED_LOGINS = (
    "SELECT c.domain, i.login, i.id, i.contract_id, c.status, i.status, 1, i.ha1_md5,"
    " i.ha1_sha256 FROM ids i JOIN contracts c ON c.id = i.contract_id"
    " WHERE i.role = 'user' AND i.removed_at IS NOT NULL ORDER BY i.id"
)


class SipLogins:
    """Finds the user ID a REGISTER's digest names: the live one, else its newest removed one.

    Same answer as `AccountsStore.sip_secrets`, without its cost: that query cannot use the
    login index (the index covers live IDs only), so it walks every user of the contract on
    every REGISTER. Here a live ID comes from one indexed query the first time its login is
    asked for and from memory after that, until `ChangeWatch` says the database changed under
    the cache (another process's commit, or a write on this connection that the owner did not
    `absorb`): then every cached answer is dropped, so a suspension, revocation or new
    password counts on the very next REGISTER. The owner calls `find` inside its write
    transaction, so no commit can land between the check and the write that relies on it.
    Removed IDs, which no index reaches by login, are held in memory as well: a phone still
    using a revoked ID's password must get 403 rather than a challenge it can never pass, and
    an unknown login must cost the same as a known one (a per-login scan would let `svwar`
    tell them apart by timing). Unknown logins are remembered too, up to `MAX_CACHED` entries
    in all, after which the cache starts over.
    """

    MAX_CACHED = 100_000

    def __init__(self, db: Database) -> None:
        self.db = db
        self.watch = ChangeWatch(db)
        self._removed: dict[tuple[str, str], SipLogin] = {}
        self._found: dict[tuple[str, str], SipLogin | None] = {}

    def find(self, domain: str, login: str) -> SipLogin | None:
        """*domain* lower-cased, as contracts store it."""
        conn = self.db.conn
        found = self._found
        if self.watch.changed():
            self._removed = {
                (row[0], row[1]): SipLogin._make(row[2:]) for row in conn.execute(_REMOVED_LOGINS)
            }
            found.clear()
        key = (domain, login)
        if key in found:
            return found[key]
        row = conn.execute(_LIVE_LOGIN, key).fetchone()
        answer = SipLogin._make(row) if row is not None else self._removed.get(key)
        if len(found) >= self.MAX_CACHED:
            found.clear()
        found[key] = answer
        return answer

    def owns_number(self, id_id: int, e164: str) -> bool:
        """Whether *e164* is bound to the ID now (an AOR may be one of its numbers)."""
        row = self.db.conn.execute(
            "SELECT 1 FROM numbers WHERE e164 = ? AND id_id = ? AND removed_at IS NULL",
            (e164, id_id),
        ).fetchone()
        return row is not None


class AccountsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- contracts ------------------------------------------------------------------------

    def _contract(self, row: dict[str, Any]) -> Contract:
        return Contract(
            id=row["id"],
            name=row["name"],
            email=row["email"],
            domain=row["domain"],
            status=ContractStatus(row["status"]),
            applied_at=_ts(row["applied_at"]) or dt.datetime.min,
            decided_at=_ts(row["decided_at"]),
            refusal_reason=row["refusal_reason"],
            status_reason=row["status_reason"],
            start_date=_date(row["start_date"]),
            end_date=_date(row["end_date"]),
            admin_url=row["admin_url"],
        )

    def insert_contract(
        self,
        name: str,
        email: str,
        domain: str,
        applied_at: dt.datetime,
        start_date: dt.date | None,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO contracts (name, email, domain, status, applied_at, start_date)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                name,
                email,
                domain,
                ContractStatus.APPLIED.value,
                iso(applied_at),
                start_date.isoformat() if start_date else None,
            ),
        )
        return int(cur.lastrowid or 0)

    def get_contract(self, contract_id: int) -> Contract | None:
        row = self.db.one("SELECT * FROM contracts WHERE id = ?", (contract_id,))
        return None if row is None else self._contract(row)

    def contract_by_domain(self, domain: str) -> Contract | None:
        row = self.db.one("SELECT * FROM contracts WHERE domain = ?", (domain.lower(),))
        return None if row is None else self._contract(row)

    def list_contracts(self, status: ContractStatus | None = None) -> list[Contract]:
        if status is None:
            rows = self.db.query("SELECT * FROM contracts ORDER BY id")
        else:
            rows = self.db.query(
                "SELECT * FROM contracts WHERE status = ? ORDER BY id", (status.value,)
            )
        return [self._contract(r) for r in rows]

    def oldest_pending_before(self, contract_id: int) -> int | None:
        """An application received before *contract_id* and still undecided (Art. 7 order)."""
        return self.db.scalar(
            "SELECT id FROM contracts WHERE status = ? AND id < ? ORDER BY id LIMIT 1",
            (ContractStatus.APPLIED.value, contract_id),
        )

    def update_contract(self, contract_id: int, **fields: Any) -> None:
        unknown = set(fields) - _CONTRACT_COLUMNS
        if unknown:
            raise KeyError(f"not contract columns: {sorted(unknown)}")
        values = []
        for value in fields.values():
            if isinstance(value, dt.datetime):
                value = iso(value)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, ContractStatus):
                value = value.value
            values.append(value)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(f"UPDATE contracts SET {assignments} WHERE id = ?", (*values, contract_id))

    # -- IDs ------------------------------------------------------------------------------

    def insert_id(
        self,
        *,
        contract_id: int,
        login: str,
        role: Role,
        display_name: str,
        affiliation_id: int | None,
        password_hash: str,
        ha1_md5: str | None,
        ha1_sha256: str | None,
        at: dt.datetime,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO ids (contract_id, login, role, status, display_name, affiliation_id,"
            " password_hash, ha1_md5, ha1_sha256, added_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                contract_id,
                login,
                role.value,
                IdStatus.ACTIVE.value,
                display_name,
                affiliation_id,
                password_hash,
                ha1_md5,
                ha1_sha256,
                iso(at),
            ),
        )
        return int(cur.lastrowid or 0)

    def _identity(self, row: dict[str, Any]) -> Identity:
        role = Role(row["role"])
        numbers = [
            r["e164"]
            for r in self.db.query(
                "SELECT e164 FROM numbers WHERE id_id = ? AND removed_at IS NULL ORDER BY id",
                (row["id"],),
            )
        ]
        scope: list[int] | None = None
        if role is Role.SUBADMIN:
            ids = [
                r["affiliation_id"]
                for r in self.db.query(
                    "SELECT affiliation_id FROM subadmin_scopes WHERE id_id = ?"
                    " ORDER BY affiliation_id",
                    (row["id"],),
                )
            ]
            scope = ids or None
        return Identity(
            id=row["id"],
            contract_id=row["contract_id"],
            login=row["login"],
            role=role,
            status=IdStatus(row["status"]),
            display_name=row["display_name"],
            affiliation_id=row["affiliation_id"],
            numbers=numbers,
            scope=scope,
            added_at=_ts(row["added_at"]) or dt.datetime.min,
            removed_at=_ts(row["removed_at"]),
        )

    def get_identity(self, id_id: int) -> Identity | None:
        row = self.db.one("SELECT * FROM ids WHERE id = ?", (id_id,))
        return None if row is None else self._identity(row)

    def identity_by_login(self, contract_id: int, login: str) -> Identity | None:
        row = self.db.one(
            "SELECT * FROM ids WHERE contract_id = ? AND login = ? AND removed_at IS NULL",
            (contract_id, login),
        )
        return None if row is None else self._identity(row)

    def list_identities(
        self, contract_id: int, role: Role | None = None, include_removed: bool = False
    ) -> list[Identity]:
        sql = "SELECT * FROM ids WHERE contract_id = ?"
        params: list[Any] = [contract_id]
        if role is not None:
            sql += " AND role = ?"
            params.append(role.value)
        if not include_removed:
            sql += " AND removed_at IS NULL"
        return [self._identity(r) for r in self.db.query(sql + " ORDER BY id", params)]

    def _secrets(self, row: dict[str, Any]) -> IdSecrets:
        return IdSecrets(
            id=row["id"],
            contract_id=row["contract_id"],
            login=row["login"],
            role=Role(row["role"]),
            status=IdStatus(row["status"]),
            password_hash=row["password_hash"],
            ha1_md5=row["ha1_md5"],
            ha1_sha256=row["ha1_sha256"],
        )

    def secrets_by_login(self, contract_id: int, login: str) -> IdSecrets | None:
        row = self.db.one(
            "SELECT * FROM ids WHERE contract_id = ? AND login = ? AND removed_at IS NULL",
            (contract_id, login),
        )
        return None if row is None else self._secrets(row)

    def sip_secrets(self, contract_id: int, login: str) -> IdSecrets | None:
        """The live user ID *login*, or else its most recently revoked one.

        The registrar needs the revoked one too: a phone that still has a revoked ID's
        password must get 403, not a challenge it can never pass.
        """
        row = self.db.one(
            "SELECT * FROM ids WHERE contract_id = ? AND login = ? AND role = 'user'"
            " ORDER BY removed_at IS NULL DESC, id DESC LIMIT 1",
            (contract_id, login),
        )
        return None if row is None else self._secrets(row)

    def secrets_by_id(self, id_id: int) -> IdSecrets | None:
        row = self.db.one("SELECT * FROM ids WHERE id = ?", (id_id,))
        return None if row is None else self._secrets(row)

    def update_identity(self, id_id: int, **fields: Any) -> None:
        unknown = set(fields) - _ID_COLUMNS
        if unknown:
            raise KeyError(f"not ID columns: {sorted(unknown)}")
        values = [
            iso(v) if isinstance(v, dt.datetime) else v.value if isinstance(v, IdStatus) else v
            for v in fields.values()
        ]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(f"UPDATE ids SET {assignments} WHERE id = ?", (*values, id_id))

    def set_credentials(
        self, id_id: int, password_hash: str, ha1_md5: str | None, ha1_sha256: str | None
    ) -> None:
        self.db.execute(
            "UPDATE ids SET password_hash = ?, ha1_md5 = ?, ha1_sha256 = ? WHERE id = ?",
            (password_hash, ha1_md5, ha1_sha256, id_id),
        )

    def set_sip_secrets(self, id_id: int, ha1_md5: str, ha1_sha256: str) -> None:
        self.db.execute(
            "UPDATE ids SET ha1_md5 = ?, ha1_sha256 = ? WHERE id = ?",
            (ha1_md5, ha1_sha256, id_id),
        )

    def set_scope(self, id_id: int, affiliation_ids: list[int]) -> None:
        with self.db.transaction():
            self.db.execute("DELETE FROM subadmin_scopes WHERE id_id = ?", (id_id,))
            for aff in sorted(set(affiliation_ids)):
                self.db.execute(
                    "INSERT INTO subadmin_scopes (id_id, affiliation_id) VALUES (?, ?)",
                    (id_id, aff),
                )

    def count_users_in_affiliation(self, affiliation_id: int) -> int:
        return int(
            self.db.scalar(
                "SELECT COUNT(*) FROM ids WHERE affiliation_id = ? AND removed_at IS NULL",
                (affiliation_id,),
            )
        )

    # -- numbers --------------------------------------------------------------------------

    def add_number(self, contract_id: int, id_id: int, e164: str, at: dt.datetime) -> None:
        self.db.execute(
            "INSERT INTO numbers (contract_id, id_id, e164, added_at) VALUES (?, ?, ?, ?)",
            (contract_id, id_id, e164, iso(at)),
        )

    def remove_number(self, id_id: int, e164: str, at: dt.datetime) -> bool:
        cur = self.db.execute(
            "UPDATE numbers SET removed_at = ? WHERE id_id = ? AND e164 = ? AND removed_at IS NULL",
            (iso(at), id_id, e164),
        )
        return cur.rowcount > 0

    def remove_numbers_of(self, id_id: int, at: dt.datetime) -> list[str]:
        rows = self.db.query(
            "SELECT e164 FROM numbers WHERE id_id = ? AND removed_at IS NULL", (id_id,)
        )
        self.db.execute(
            "UPDATE numbers SET removed_at = ? WHERE id_id = ? AND removed_at IS NULL",
            (iso(at), id_id),
        )
        return [r["e164"] for r in rows]

    def number_owner(self, e164: str) -> NumberOwner | None:
        row = self.db.one(
            "SELECT n.e164, n.contract_id, c.domain, n.id_id, i.login FROM numbers n"
            " JOIN ids i ON i.id = n.id_id JOIN contracts c ON c.id = n.contract_id"
            " WHERE n.e164 = ? AND n.removed_at IS NULL",
            (e164,),
        )
        return None if row is None else NumberOwner(**row)

    # -- affiliations ---------------------------------------------------------------------

    def _affiliation(self, row: dict[str, Any]) -> Affiliation:
        return Affiliation(
            id=row["id"],
            contract_id=row["contract_id"],
            name=row["name"],
            policy=_policy_decoder.decode(row["policy"]),
            added_at=_ts(row["added_at"]) or dt.datetime.min,
            removed_at=_ts(row["removed_at"]),
        )

    def insert_affiliation(
        self, contract_id: int, name: str, policy: AffiliationPolicy, at: dt.datetime
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO affiliations (contract_id, name, policy, added_at) VALUES (?, ?, ?, ?)",
            (contract_id, name, _json.encode(policy).decode(), iso(at)),
        )
        return int(cur.lastrowid or 0)

    def get_affiliation(self, affiliation_id: int) -> Affiliation | None:
        row = self.db.one("SELECT * FROM affiliations WHERE id = ?", (affiliation_id,))
        return None if row is None else self._affiliation(row)

    def affiliation_by_name(self, contract_id: int, name: str) -> Affiliation | None:
        row = self.db.one(
            "SELECT * FROM affiliations WHERE contract_id = ? AND name = ? AND removed_at IS NULL",
            (contract_id, name),
        )
        return None if row is None else self._affiliation(row)

    def list_affiliations(self, contract_id: int) -> list[Affiliation]:
        rows = self.db.query(
            "SELECT * FROM affiliations WHERE contract_id = ? AND removed_at IS NULL ORDER BY id",
            (contract_id,),
        )
        return [self._affiliation(r) for r in rows]

    def update_affiliation(self, affiliation_id: int, name: str, policy: AffiliationPolicy) -> None:
        self.db.execute(
            "UPDATE affiliations SET name = ?, policy = ? WHERE id = ?",
            (name, _json.encode(policy).decode(), affiliation_id),
        )

    def remove_affiliation(self, affiliation_id: int, at: dt.datetime) -> None:
        self.db.execute(
            "UPDATE affiliations SET removed_at = ? WHERE id = ?", (iso(at), affiliation_id)
        )
        self.db.execute("DELETE FROM subadmin_scopes WHERE affiliation_id = ?", (affiliation_id,))

    # -- devices --------------------------------------------------------------------------

    def _device(self, row: dict[str, Any]) -> Device:
        accounts = [
            DeviceAccount(
                e164=r["e164"],
                added_at=_ts(r["added_at"]) or dt.datetime.min,
                removed_at=_ts(r["removed_at"]),
            )
            for r in self.db.query(
                "SELECT * FROM device_accounts WHERE device_id = ? AND removed_at IS NULL"
                " ORDER BY id",
                (row["id"],),
            )
        ]
        return Device(
            id=row["id"],
            contract_id=row["contract_id"],
            name=row["name"],
            affiliation_id=row["affiliation_id"],
            note=row["note"],
            accounts=accounts,
            added_at=_ts(row["added_at"]) or dt.datetime.min,
            removed_at=_ts(row["removed_at"]),
        )

    def insert_device(
        self,
        contract_id: int,
        name: str,
        affiliation_id: int | None,
        note: str,
        at: dt.datetime,
    ) -> int:
        cur = self.db.execute(
            "INSERT INTO devices (contract_id, name, affiliation_id, note, added_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (contract_id, name, affiliation_id, note, iso(at)),
        )
        return int(cur.lastrowid or 0)

    def get_device(self, device_id: int) -> Device | None:
        row = self.db.one("SELECT * FROM devices WHERE id = ?", (device_id,))
        return None if row is None else self._device(row)

    def device_by_name(self, contract_id: int, name: str) -> Device | None:
        row = self.db.one(
            "SELECT * FROM devices WHERE contract_id = ? AND name = ? AND removed_at IS NULL",
            (contract_id, name),
        )
        return None if row is None else self._device(row)

    def list_devices(self, contract_id: int) -> list[Device]:
        rows = self.db.query(
            "SELECT * FROM devices WHERE contract_id = ? AND removed_at IS NULL ORDER BY id",
            (contract_id,),
        )
        return [self._device(r) for r in rows]

    def update_device(
        self, device_id: int, name: str, affiliation_id: int | None, note: str
    ) -> None:
        self.db.execute(
            "UPDATE devices SET name = ?, affiliation_id = ?, note = ? WHERE id = ?",
            (name, affiliation_id, note, device_id),
        )

    def remove_device(self, device_id: int, at: dt.datetime) -> None:
        self.db.execute(
            "UPDATE device_accounts SET removed_at = ? WHERE device_id = ? AND removed_at IS NULL",
            (iso(at), device_id),
        )
        self.db.execute("UPDATE devices SET removed_at = ? WHERE id = ?", (iso(at), device_id))

    def add_device_account(self, device_id: int, e164: str, at: dt.datetime) -> None:
        self.db.execute(
            "INSERT INTO device_accounts (device_id, e164, added_at) VALUES (?, ?, ?)",
            (device_id, e164, iso(at)),
        )

    def remove_device_account(self, device_id: int, e164: str, at: dt.datetime) -> bool:
        cur = self.db.execute(
            "UPDATE device_accounts SET removed_at = ? WHERE device_id = ? AND e164 = ?"
            " AND removed_at IS NULL",
            (iso(at), device_id, e164),
        )
        return cur.rowcount > 0

    def remove_device_accounts_for_number(
        self, contract_id: int, e164: str, at: dt.datetime
    ) -> None:
        self.db.execute(
            "UPDATE device_accounts SET removed_at = ? WHERE e164 = ? AND removed_at IS NULL"
            " AND device_id IN (SELECT id FROM devices WHERE contract_id = ?)",
            (iso(at), e164, contract_id),
        )

    # -- billing units --------------------------------------------------------------------

    def usage_units(self, contract_id: int) -> list[UsageUnit]:
        """Every billable unit of a contract with its add/remove dates (removed ones too)."""
        units: list[UsageUnit] = []
        for row in self.db.query(
            "SELECT login, role, added_at, removed_at FROM ids"
            " WHERE contract_id = ? AND role IN ('user', 'subadmin') ORDER BY id",
            (contract_id,),
        ):
            kind = "booth" if row["role"] == "user" else "subadmin"
            units.append(
                UsageUnit(
                    kind,
                    row["login"],
                    _ts(row["added_at"]) or dt.datetime.min,
                    _ts(row["removed_at"]),
                )
            )
        for row in self.db.query(
            "SELECT name, added_at, removed_at FROM affiliations WHERE contract_id = ? ORDER BY id",
            (contract_id,),
        ):
            units.append(
                UsageUnit(
                    "affiliation",
                    row["name"],
                    _ts(row["added_at"]) or dt.datetime.min,
                    _ts(row["removed_at"]),
                )
            )
        for row in self.db.query(
            "SELECT id, name, added_at, removed_at FROM devices WHERE contract_id = ? ORDER BY id",
            (contract_id,),
        ):
            units.append(
                UsageUnit(
                    "sip_channel",
                    row["name"],
                    _ts(row["added_at"]) or dt.datetime.min,
                    _ts(row["removed_at"]),
                )
            )
        for row in self.db.query(
            "SELECT d.name, a.e164, a.added_at, a.removed_at FROM device_accounts a"
            " JOIN devices d ON d.id = a.device_id WHERE d.contract_id = ? ORDER BY a.id",
            (contract_id,),
        ):
            units.append(
                UsageUnit(
                    "sip_account",
                    f"{row['name']}/{row['e164']}",
                    _ts(row["added_at"]) or dt.datetime.min,
                    _ts(row["removed_at"]),
                )
            )
        return units

    # -- operators ------------------------------------------------------------------------

    def insert_operator(self, login: str, password_hash: str, at: dt.datetime) -> int:
        cur = self.db.execute(
            "INSERT INTO operators (login, password_hash, added_at) VALUES (?, ?, ?)",
            (login, password_hash, iso(at)),
        )
        return int(cur.lastrowid or 0)

    def set_operator_password(self, operator_id: int, password_hash: str) -> None:
        self.db.execute(
            "UPDATE operators SET password_hash = ? WHERE id = ?", (password_hash, operator_id)
        )

    def operator_secret(self, login: str) -> tuple[int, str] | None:
        row = self.db.one(
            "SELECT id, password_hash FROM operators WHERE login = ? AND removed_at IS NULL",
            (login,),
        )
        return None if row is None else (row["id"], row["password_hash"])

    def get_operator(self, operator_id: int) -> Operator | None:
        row = self.db.one(
            "SELECT id, login, added_at FROM operators WHERE id = ? AND removed_at IS NULL",
            (operator_id,),
        )
        if row is None:
            return None
        return Operator(row["id"], row["login"], _ts(row["added_at"]) or dt.datetime.min)

    def list_operators(self) -> list[Operator]:
        return [
            Operator(r["id"], r["login"], _ts(r["added_at"]) or dt.datetime.min)
            for r in self.db.query(
                "SELECT id, login, added_at FROM operators WHERE removed_at IS NULL ORDER BY id"
            )
        ]

    # -- sessions -------------------------------------------------------------------------

    def insert_session(
        self,
        token_hash: str,
        kind: str,
        subject_id: int,
        created: float,
        expires: float,
        idle_expires: float,
        source: str,
    ) -> None:
        self.db.execute(
            "INSERT INTO sessions (token_hash, subject_kind, subject_id, created_at, expires_at,"
            " idle_expires_at, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (token_hash, kind, subject_id, created, expires, idle_expires, source),
        )

    def get_session(self, token_hash: str) -> Session | None:
        row = self.db.one(
            "SELECT subject_kind, subject_id, created_at, expires_at, idle_expires_at"
            " FROM sessions WHERE token_hash = ?",
            (token_hash,),
        )
        return None if row is None else Session(**row)

    def touch_session(self, token_hash: str, idle_expires: float) -> None:
        self.db.execute(
            "UPDATE sessions SET idle_expires_at = ? WHERE token_hash = ?",
            (idle_expires, token_hash),
        )

    def delete_session(self, token_hash: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def delete_sessions_of(self, kind: str, subject_id: int) -> None:
        self.db.execute(
            "DELETE FROM sessions WHERE subject_kind = ? AND subject_id = ?", (kind, subject_id)
        )

    def delete_sessions_of_contract(self, contract_id: int) -> None:
        self.db.execute(
            "DELETE FROM sessions WHERE subject_kind = 'id' AND subject_id IN"
            " (SELECT id FROM ids WHERE contract_id = ?)",
            (contract_id,),
        )

    def purge_sessions(self, now: float) -> int:
        cur = self.db.execute(
            "DELETE FROM sessions WHERE expires_at <= ? OR idle_expires_at <= ?", (now, now)
        )
        return cur.rowcount

    # -- SIP bindings (removed together with the ID or contract they belong to) -----------

    def delete_bindings_of_id(self, id_id: int) -> int:
        return self.db.execute("DELETE FROM sip_bindings WHERE id_id = ?", (id_id,)).rowcount

    def delete_bindings_of_contract(self, contract_id: int) -> int:
        return self.db.execute(
            "DELETE FROM sip_bindings WHERE contract_id = ?", (contract_id,)
        ).rowcount

    # -- audit ----------------------------------------------------------------------------

    def insert_audit(
        self,
        *,
        at: dt.datetime,
        actor: str,
        source: str,
        contract_id: int | None,
        affiliation_id: int | None,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any],
    ) -> None:
        self.db.execute(
            "INSERT INTO audit_log (at, actor, source, contract_id, affiliation_id, action,"
            " target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                iso(at),
                actor,
                source,
                contract_id,
                affiliation_id,
                action,
                target,
                outcome,
                _json.encode(detail).decode(),
            ),
        )

    def list_audit(
        self,
        contract_id: int | None,
        *,
        affiliations: list[int] | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first. ``contract_id=None`` means provider-level entries and everything."""
        sql = "SELECT * FROM audit_log WHERE 1 = 1"
        params: list[Any] = []
        if contract_id is not None:
            sql += " AND contract_id = ?"
            params.append(contract_id)
        if affiliations is not None:
            marks = ", ".join("?" for _ in affiliations) or "NULL"
            sql += f" AND affiliation_id IN ({marks})"
            params.extend(affiliations)
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [
            AuditEntry(
                id=r["id"],
                at=_ts(r["at"]) or dt.datetime.min,
                actor=r["actor"],
                source=r["source"],
                contract_id=r["contract_id"],
                affiliation_id=r["affiliation_id"],
                action=r["action"],
                target=r["target"],
                outcome=r["outcome"],
                detail=_detail_decoder.decode(r["detail"]),
            )
            for r in self.db.query(sql, params)
        ]

    # -- notices --------------------------------------------------------------------------

    def insert_notice(
        self, contract_id: int, email: str, subject: str, body: str, at: dt.datetime
    ) -> None:
        self.db.execute(
            "INSERT INTO notices (contract_id, email, subject, body, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (contract_id, email, subject, body, iso(at)),
        )

    def list_notices(self, contract_id: int) -> list[dict[str, Any]]:
        return self.db.query(
            "SELECT id, email, subject, body, created_at, sent_at FROM notices"
            " WHERE contract_id = ? ORDER BY id",
            (contract_id,),
        )

    # -- trunks ---------------------------------------------------------------------------

    def upsert_trunk(self, trunk: Trunk, at: dt.datetime) -> bool:
        """Insert or update by name; True when something changed."""
        existing = self.get_trunk(trunk.name)
        if existing == trunk:
            return False
        self.db.execute(
            "INSERT INTO trunks (name, host, port, transport, username, password,"
            " trusted_sources, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET host = excluded.host, port = excluded.port,"
            " transport = excluded.transport, username = excluded.username,"
            " password = excluded.password, trusted_sources = excluded.trusted_sources,"
            " updated_at = excluded.updated_at",
            (
                trunk.name,
                trunk.host,
                trunk.port,
                trunk.transport,
                trunk.username,
                trunk.password,
                _json.encode(trunk.trusted_sources).decode(),
                iso(at),
            ),
        )
        return True

    def get_trunk(self, name: str) -> Trunk | None:
        row = self.db.one("SELECT * FROM trunks WHERE name = ?", (name,))
        return None if row is None else self._trunk(row)

    def list_trunks(self) -> list[Trunk]:
        return [self._trunk(r) for r in self.db.query("SELECT * FROM trunks ORDER BY name")]

    @staticmethod
    def _trunk(row: dict[str, Any]) -> Trunk:
        return Trunk(
            name=row["name"],
            host=row["host"],
            port=row["port"],
            transport=row["transport"],
            username=row["username"],
            password=row["password"],
            trusted_sources=_list_decoder.decode(row["trusted_sources"]),
        )
