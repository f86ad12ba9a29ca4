"""The accounts service: every change to contracts, IDs, affiliations and devices.

Each public method is one logical operation: it asks `policy` whether the actor may do it,
validates, writes through `store.accounts` in one transaction together with its audit entry,
and returns the new record. The API and the CLI are thin adapters over these methods, so a
rule enforced here holds for both.

Methods are synchronous and fast (SQLite in WAL). Password hashing is the slow part and is done
by the caller beforehand (`passwords.prepare_password`, in an executor when on the event loop);
methods receive a `PreparedPassword`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from outbound_pro.accounts import numbers as jp
from outbound_pro.accounts.errors import Conflict, Forbidden, InvalidInput, NotFound
from outbound_pro.accounts.models import (
    Affiliation,
    AffiliationPolicy,
    AuditEntry,
    Contract,
    ContractStatus,
    Device,
    Identity,
    IdSecrets,
    IdStatus,
    NumberOwner,
    Operator,
    Role,
    Trunk,
    UsageUnit,
)
from outbound_pro.accounts.passwords import (
    PreparedPassword,
    check_password_strength,
    ha1,
)
from outbound_pro.accounts.policy import (
    WRITABLE,
    Action,
    Principal,
    Target,
    in_scope,
    require,
)
from outbound_pro.store.accounts import AccountsStore
from outbound_pro.store.db import Database

LOGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Actor:
    """Who acts and from where, for permission checks and the audit log."""

    principal: Principal
    source: str


class IssuedCredentials(msgspec.Struct, frozen=True):
    """Shown exactly once: the generated (or given) admin password is not stored in clear."""

    contract_id: int
    domain: str
    login: str
    password: str
    admin_url: str


@dataclass(frozen=True)
class AccountEvent:
    """Told to subscribers after a commit, so live parts (B2BUA, registrar) can react."""

    kind: str  # id_revoked | id_restricted | credentials_changed | contract_status
    contract_id: int
    id_id: int | None = None
    status: str | None = None


class _Unset:
    pass


UNSET: Any = _Unset()


def validate_login(login: str, field: str = "login") -> str:
    if not LOGIN_RE.match(login):
        raise InvalidInput(
            field, "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return login


def validate_domain(domain: str, field: str = "domain") -> str:
    value = domain.strip().lower().rstrip(".")
    if not DOMAIN_RE.match(value):
        raise InvalidInput(field, "a DNS name such as example.op.local")
    return value


def validate_email(email: str, field: str = "email") -> str:
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidInput(field, "an e-mail address such as ops@example.jp")
    return email


def validate_password(prepared: PreparedPassword, field: str = "password") -> None:
    problem = check_password_strength(prepared.plain)
    if problem:
        raise InvalidInput(field, problem)


def validate_policy(policy: AffiliationPolicy, field: str = "policy") -> AffiliationPolicy:
    prefixes = []
    for i, prefix in enumerate(policy.allowed_prefixes):
        try:
            prefixes.append(jp.normalize_prefix(prefix))
        except jp.InvalidNumber as exc:
            raise InvalidInput(f"{field}.allowed_prefixes[{i}]", str(exc)) from exc
    if policy.hours is not None:
        for name in ("start", "end"):
            if not HHMM_RE.match(getattr(policy.hours, name)):
                raise InvalidInput(f"{field}.hours.{name}", "a time as HH:MM (00:00-23:59)")
    if policy.max_concurrent_calls is not None and policy.max_concurrent_calls < 0:
        raise InvalidInput(f"{field}.max_concurrent_calls", "must be 0 or more")
    return msgspec.structs.replace(policy, allowed_prefixes=prefixes)


def normalize_number(number: str, field: str = "number") -> str:
    try:
        return jp.normalize(number)
    except jp.InvalidNumber as exc:
        raise InvalidInput(field, str(exc)) from exc


def _text(value: str, field: str, max_len: int = 200, *, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > max_len:
        raise InvalidInput(field, f"at most {max_len} characters")
    return value


class AccountService:
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        admin_url: str = "/",
    ) -> None:
        self.db = db
        self.store = AccountsStore(db)
        self.clock = clock
        self.admin_url = admin_url
        self._listeners: list[Callable[[AccountEvent], None]] = []

    # -- plumbing -------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[AccountEvent], None]) -> None:
        self._listeners.append(listener)

    def _emit(self, events: Iterable[AccountEvent]) -> None:
        for event in events:
            for listener in self._listeners:
                listener(event)

    def audit(
        self,
        actor: Actor,
        action: str,
        target: str,
        *,
        contract_id: int | None = None,
        affiliation_id: int | None = None,
        outcome: str = "ok",
        **detail: Any,
    ) -> None:
        """Append to the audit log. Never pass secrets in *detail*."""
        self.store.insert_audit(
            at=self.clock(),
            actor=actor.principal.describe(),
            source=actor.source,
            contract_id=contract_id,
            affiliation_id=affiliation_id,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
        )

    def _contract(self, contract_id: int) -> Contract:
        contract = self.store.get_contract(contract_id)
        if contract is None:
            raise NotFound(f"contract {contract_id} not found")
        return contract

    def _contract_for(self, actor: Actor, action: Action, contract_id: int) -> Contract:
        require(actor.principal, action, Target(contract_id=contract_id))
        return self._contract(contract_id)

    def _identity(self, id_id: int) -> Identity:
        identity = self.store.get_identity(id_id)
        if identity is None or identity.removed_at is not None:
            raise NotFound(f"ID {id_id} not found")
        return identity

    def _id_for(self, actor: Actor, action: Action, id_id: int) -> Identity:
        identity = self.store.get_identity(id_id)
        if identity is None or identity.removed_at is not None:
            raise NotFound("not found")
        require(
            actor.principal,
            action,
            Target(
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                subject_id=identity.id,
                role=identity.role,
            ),
        )
        return identity

    def _affiliation_ref(self, contract_id: int, affiliation_id: int | None, field: str) -> None:
        if affiliation_id is None:
            return
        aff = self.store.get_affiliation(affiliation_id)
        if aff is None or aff.contract_id != contract_id or aff.removed_at is not None:
            raise InvalidInput(field, f"no affiliation {affiliation_id} in this contract")

    def _ha1s(self, login: str, realm: str, plain: str) -> tuple[str, str]:
        return ha1(login, realm, plain, "MD5"), ha1(login, realm, plain, "SHA-256")

    # -- contracts ------------------------------------------------------------------------

    def apply_contract(
        self,
        actor: Actor,
        *,
        name: str,
        email: str,
        domain: str,
        start_date: dt.date | None = None,
    ) -> Contract:
        require(actor.principal, Action.CONTRACT_APPLY, Target())
        name = _text(name, "name")
        email = validate_email(email)
        domain = validate_domain(domain)
        with self.db.transaction():
            if self.store.contract_by_domain(domain) is not None:
                raise Conflict(f"the SIP domain {domain} is already used by another contract")
            contract_id = self.store.insert_contract(name, email, domain, self.clock(), start_date)
            self.audit(
                actor,
                "contract.apply",
                f"contract:{contract_id}",
                contract_id=contract_id,
                name=name,
                domain=domain,
            )
        return self._contract(contract_id)

    def approve_contract(
        self,
        actor: Actor,
        contract_id: int,
        *,
        admin_login: str,
        admin_password: PreparedPassword,
        start_date: dt.date | None = None,
    ) -> IssuedCredentials:
        """Approve in order received (Art. 7) and issue the one admin ID (Art. 9)."""
        contract = self._contract_for(actor, Action.CONTRACT_DECIDE, contract_id)
        validate_login(admin_login, "admin_login")
        validate_password(admin_password, "admin_password")
        with self.db.transaction():
            if contract.status is not ContractStatus.APPLIED:
                raise Conflict(f"contract {contract_id} is {contract.status.value}, not applied")
            older = self.store.oldest_pending_before(contract_id)
            if older is not None:
                raise Conflict(
                    f"application {older} was received earlier and is undecided; "
                    "approve or refuse it first (applications are decided in order received)"
                )
            start = start_date or contract.start_date or self.clock().date()
            url = f"{self.admin_url.rstrip('/')}/{contract.domain}/"
            self.store.update_contract(
                contract_id,
                status=ContractStatus.ACTIVE,
                decided_at=self.clock(),
                start_date=start,
                admin_url=url,
            )
            self.store.insert_id(
                contract_id=contract_id,
                login=admin_login,
                role=Role.ADMIN,
                display_name="admin",
                affiliation_id=None,
                password_hash=admin_password.password_hash,
                ha1_md5=None,
                ha1_sha256=None,
                at=self.clock(),
            )
            self.audit(
                actor,
                "contract.approve",
                f"contract:{contract_id}",
                contract_id=contract_id,
                admin_login=admin_login,
            )
            self.store.insert_notice(
                contract_id,
                contract.email,
                "Your Outbound Pro contract is approved",
                f"Contract {contract.name} ({contract.domain}) is active from {start}. "
                f"Admin URL: {url} admin ID: {admin_login}. The password is handed over "
                "separately.",
                self.clock(),
            )
        return IssuedCredentials(
            contract_id, contract.domain, admin_login, admin_password.plain, url
        )

    def refuse_contract(self, actor: Actor, contract_id: int, *, reason: str) -> Contract:
        contract = self._contract_for(actor, Action.CONTRACT_DECIDE, contract_id)
        reason = _text(reason, "reason", 1000)
        with self.db.transaction():
            if contract.status is not ContractStatus.APPLIED:
                raise Conflict(f"contract {contract_id} is {contract.status.value}, not applied")
            older = self.store.oldest_pending_before(contract_id)
            if older is not None:
                raise Conflict(
                    f"application {older} was received earlier and is undecided; decide it first"
                )
            self.store.update_contract(
                contract_id,
                status=ContractStatus.REFUSED,
                decided_at=self.clock(),
                refusal_reason=reason,
            )
            self.audit(
                actor,
                "contract.refuse",
                f"contract:{contract_id}",
                contract_id=contract_id,
                reason=reason,
            )
            self.store.insert_notice(
                contract_id,
                contract.email,
                "Your Outbound Pro application was refused",
                f"Reason: {reason}",
                self.clock(),
            )
        return self._contract(contract_id)

    def _transition(
        self,
        actor: Actor,
        contract_id: int,
        action: Action,
        allowed_from: Sequence[ContractStatus],
        to: ContractStatus,
        reason: str,
        *,
        emergency: bool = False,
        end_date: dt.date | None = None,
    ) -> Contract:
        contract = self._contract_for(actor, action, contract_id)
        reason = _text(reason, "reason", 1000)
        events: list[AccountEvent] = []
        with self.db.transaction():
            if contract.status not in allowed_from:
                allowed = ", ".join(s.value for s in allowed_from)
                raise Conflict(
                    f"contract {contract_id} is {contract.status.value}; "
                    f"{action.value.split('.')[1]} needs one of: {allowed}"
                )
            fields: dict[str, Any] = {"status": to, "status_reason": reason}
            if end_date is not None:
                fields["end_date"] = end_date
            self.store.update_contract(contract_id, **fields)
            removed = 0
            if to not in WRITABLE:
                # Suspension and termination end registrations and logins at once.
                removed = self.store.delete_bindings_of_contract(contract_id)
                self.store.delete_sessions_of_contract(contract_id)
            self.audit(
                actor,
                action.value,
                f"contract:{contract_id}",
                contract_id=contract_id,
                reason=reason,
                emergency=emergency,
                bindings_removed=removed,
                status=to.value,
            )
            # Art. 21-2: notice beforehand, except in emergencies (then notice afterwards).
            self.store.insert_notice(
                contract_id,
                contract.email,
                f"Outbound Pro contract {to.value}",
                f"Contract {contract.name} is {to.value}. Reason: {reason}"
                + (f" End date: {end_date}." if end_date else "")
                + (" (emergency measure, notified afterwards)" if emergency else ""),
                self.clock(),
            )
            events.append(AccountEvent("contract_status", contract_id, status=to.value))
        self._emit(events)
        return self._contract(contract_id)

    def suspend_contract(
        self, actor: Actor, contract_id: int, *, reason: str, emergency: bool = False
    ) -> Contract:
        return self._transition(
            actor,
            contract_id,
            Action.CONTRACT_SUSPEND,
            (ContractStatus.ACTIVE, ContractStatus.RESTRICTED),
            ContractStatus.SUSPENDED,
            reason,
            emergency=emergency,
        )

    def restrict_contract(
        self, actor: Actor, contract_id: int, *, reason: str, emergency: bool = False
    ) -> Contract:
        return self._transition(
            actor,
            contract_id,
            Action.CONTRACT_RESTRICT,
            (ContractStatus.ACTIVE, ContractStatus.SUSPENDED),
            ContractStatus.RESTRICTED,
            reason,
            emergency=emergency,
        )

    def reinstate_contract(self, actor: Actor, contract_id: int, *, reason: str) -> Contract:
        return self._transition(
            actor,
            contract_id,
            Action.CONTRACT_REINSTATE,
            (ContractStatus.SUSPENDED, ContractStatus.RESTRICTED),
            ContractStatus.ACTIVE,
            reason,
        )

    def terminate_contract(
        self, actor: Actor, contract_id: int, *, end_date: dt.date, reason: str
    ) -> Contract:
        """Terminate; the admin keeps read access until *end_date* to export and delete data."""
        return self._transition(
            actor,
            contract_id,
            Action.CONTRACT_TERMINATE,
            (ContractStatus.ACTIVE, ContractStatus.RESTRICTED, ContractStatus.SUSPENDED),
            ContractStatus.TERMINATED,
            reason,
            end_date=end_date,
        )

    def update_contract_details(
        self,
        actor: Actor,
        contract_id: int,
        *,
        name: str | None = None,
        email: str | None = None,
    ) -> Contract:
        contract = self._contract_for(actor, Action.CONTRACT_DECIDE, contract_id)
        fields: dict[str, Any] = {}
        if name is not None and _text(name, "name") != contract.name:
            fields["name"] = _text(name, "name")
        if email is not None and validate_email(email) != contract.email:
            fields["email"] = email
        if fields:
            with self.db.transaction():
                self.store.update_contract(contract_id, **fields)
                self.audit(
                    actor,
                    "contract.update",
                    f"contract:{contract_id}",
                    contract_id=contract_id,
                    fields=sorted(fields),
                )
        return self._contract(contract_id)

    def reissue_admin(
        self, actor: Actor, contract_id: int, password: PreparedPassword
    ) -> IssuedCredentials:
        """Art. 9-5: a lost admin password is replaced; existing admin sessions end."""
        contract = self._contract_for(actor, Action.CONTRACT_REISSUE_ADMIN, contract_id)
        validate_password(password)
        admins = self.store.list_identities(contract_id, Role.ADMIN)
        if not admins:
            raise Conflict(f"contract {contract_id} has no admin ID yet; approve it first")
        admin = admins[0]
        with self.db.transaction():
            self.store.set_credentials(admin.id, password.password_hash, None, None)
            self.store.delete_sessions_of("id", admin.id)
            self.audit(
                actor,
                "contract.reissue_admin",
                f"id:{admin.id}",
                contract_id=contract_id,
                login=admin.login,
            )
        return IssuedCredentials(
            contract_id, contract.domain, admin.login, password.plain, contract.admin_url or ""
        )

    def list_contracts(self, actor: Actor, status: ContractStatus | None = None) -> list[Contract]:
        require(actor.principal, Action.CONTRACT_LIST, Target())
        return self.store.list_contracts(status)

    def get_contract(self, actor: Actor, contract_id: int) -> Contract:
        require(actor.principal, Action.CONTRACT_VIEW, Target(contract_id=contract_id))
        return self._contract(contract_id)

    def find_contract(self, actor: Actor, ref: str) -> Contract:
        """A contract by numeric id or SIP domain (for the CLI and provisioning)."""
        contract = (
            self.store.get_contract(int(ref))
            if ref.isdigit()
            else self.store.contract_by_domain(ref)
        )
        if contract is None:
            raise NotFound(f"no contract {ref!r}; list them with `outbound-pro contract list`")
        require(actor.principal, Action.CONTRACT_VIEW, Target(contract_id=contract.id))
        return contract

    def notices(self, actor: Actor, contract_id: int) -> list[dict[str, Any]]:
        self._contract_for(actor, Action.CONTRACT_VIEW, contract_id)
        return self.store.list_notices(contract_id)

    # -- IDs ------------------------------------------------------------------------------

    def _check_login_free(self, contract_id: int, login: str) -> None:
        if self.store.identity_by_login(contract_id, login) is not None:
            raise Conflict(f"the ID {login!r} already exists in this contract")

    def _bind(self, contract_id: int, id_id: int, e164: str) -> None:
        owner = self.store.number_owner(e164)
        if owner is not None:
            if owner.id_id == id_id:
                return
            # Do not reveal another contract's ownership beyond "in use".
            raise Conflict(f"the number {e164} is already in use")
        self.store.add_number(contract_id, id_id, e164, self.clock())

    def create_user(
        self,
        actor: Actor,
        contract_id: int,
        *,
        login: str,
        password: PreparedPassword,
        display_name: str = "",
        affiliation_id: int | None = None,
        numbers: Sequence[str] = (),
        sip_password: str | None = None,
    ) -> Identity:
        """A user ID (one booth). The SIP secret is *sip_password* or, by default, the password."""
        require(
            actor.principal,
            Action.USER_CREATE,
            Target(contract_id=contract_id, affiliation_id=affiliation_id, role=Role.USER),
        )
        contract = self._contract(contract_id)
        validate_login(login)
        validate_password(password)
        if sip_password is not None and check_password_strength(sip_password):
            raise InvalidInput("sip_password", check_password_strength(sip_password) or "")
        display_name = _text(display_name, "display_name", required=False)
        e164s = [normalize_number(n, f"numbers[{i}]") for i, n in enumerate(numbers)]
        md5, sha = self._ha1s(login, contract.domain, sip_password or password.plain)
        with self.db.transaction():
            self._affiliation_ref(contract_id, affiliation_id, "affiliation_id")
            self._check_login_free(contract_id, login)
            id_id = self.store.insert_id(
                contract_id=contract_id,
                login=login,
                role=Role.USER,
                display_name=display_name,
                affiliation_id=affiliation_id,
                password_hash=password.password_hash,
                ha1_md5=md5,
                ha1_sha256=sha,
                at=self.clock(),
            )
            for e164 in e164s:
                self._bind(contract_id, id_id, e164)
            self.audit(
                actor,
                "user.create",
                f"id:{id_id}",
                contract_id=contract_id,
                affiliation_id=affiliation_id,
                login=login,
                numbers=e164s,
            )
        return self._identity(id_id)

    def create_subadmin(
        self,
        actor: Actor,
        contract_id: int,
        *,
        login: str,
        password: PreparedPassword,
        display_name: str = "",
        scope: Sequence[int] | None = None,
    ) -> Identity:
        require(actor.principal, Action.SUBADMIN_MANAGE, Target(contract_id=contract_id))
        self._contract(contract_id)
        validate_login(login)
        validate_password(password)
        display_name = _text(display_name, "display_name", required=False)
        with self.db.transaction():
            for i, aff in enumerate(scope or ()):
                self._affiliation_ref(contract_id, aff, f"scope[{i}]")
            self._check_login_free(contract_id, login)
            id_id = self.store.insert_id(
                contract_id=contract_id,
                login=login,
                role=Role.SUBADMIN,
                display_name=display_name,
                affiliation_id=None,
                password_hash=password.password_hash,
                ha1_md5=None,
                ha1_sha256=None,
                at=self.clock(),
            )
            if scope:
                self.store.set_scope(id_id, list(scope))
            self.audit(
                actor,
                "subadmin.create",
                f"id:{id_id}",
                contract_id=contract_id,
                login=login,
                scope=[str(s) for s in scope or ()],
            )
        return self._identity(id_id)

    def set_subadmin_scope(self, actor: Actor, id_id: int, scope: Sequence[int] | None) -> Identity:
        identity = self._identity(id_id)
        require(actor.principal, Action.SUBADMIN_MANAGE, Target(contract_id=identity.contract_id))
        if identity.role is not Role.SUBADMIN:
            raise NotFound("not found")
        with self.db.transaction():
            for i, aff in enumerate(scope or ()):
                self._affiliation_ref(identity.contract_id, aff, f"scope[{i}]")
            self.store.set_scope(id_id, list(scope or ()))
            self.store.delete_sessions_of("id", id_id)
            self.audit(
                actor,
                "subadmin.scope",
                f"id:{id_id}",
                contract_id=identity.contract_id,
                scope=[str(s) for s in scope or ()],
            )
        return self._identity(id_id)

    def list_ids(self, actor: Actor, contract_id: int, role: Role = Role.USER) -> list[Identity]:
        action = Action.USER_VIEW if role is Role.USER else Action.SUBADMIN_VIEW
        require(actor.principal, action, Target(contract_id=contract_id))
        return [
            i
            for i in self.store.list_identities(contract_id, role)
            if role is not Role.USER or in_scope(actor.principal, i.affiliation_id)
        ]

    def get_id(self, actor: Actor, id_id: int) -> Identity:
        identity = self.store.get_identity(id_id)
        if identity is None or identity.removed_at is not None:
            raise NotFound("not found")
        action = Action.USER_VIEW if identity.role is Role.USER else Action.SUBADMIN_VIEW
        if actor.principal.subject_id == id_id and actor.principal.role is identity.role:
            action = Action.SELF_VIEW
        require(
            actor.principal,
            action,
            Target(
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                subject_id=identity.id,
                role=identity.role if action is Action.SELF_VIEW else None,
            ),
        )
        return identity

    def find_id(self, actor: Actor, contract_id: int, login: str) -> Identity:
        identity = self.store.identity_by_login(contract_id, login)
        if identity is None:
            raise NotFound(f"no ID {login!r} in this contract")
        return self.get_id(actor, identity.id)

    def update_user(
        self,
        actor: Actor,
        id_id: int,
        *,
        display_name: str | None = None,
        affiliation_id: int | None = UNSET,
        status: IdStatus | None = None,
    ) -> Identity:
        identity = self._id_for(actor, Action.USER_UPDATE, id_id)
        fields: dict[str, Any] = {}
        if display_name is not None:
            fields["display_name"] = _text(display_name, "display_name", required=False)
        if affiliation_id is not UNSET and affiliation_id != identity.affiliation_id:
            # Moving a user in is like creating one there: allowed only where one may create.
            require(
                actor.principal,
                Action.USER_CREATE,
                Target(
                    contract_id=identity.contract_id,
                    affiliation_id=affiliation_id,
                    role=Role.USER,
                    subject_id=identity.id,
                ),
            )
            self._affiliation_ref(identity.contract_id, affiliation_id, "affiliation_id")
            fields["affiliation_id"] = affiliation_id
        events: list[AccountEvent] = []
        if status is not None and status is not identity.status:
            if status is IdStatus.REVOKED:
                raise InvalidInput("status", "use revoke to revoke an ID")
            fields["status"] = status
            if status is IdStatus.RESTRICTED:
                events.append(
                    AccountEvent("id_restricted", identity.contract_id, id_id, status.value)
                )
        if not fields:
            return identity
        with self.db.transaction():
            self.store.update_identity(id_id, **fields)
            self.audit(
                actor,
                "user.update",
                f"id:{id_id}",
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                fields=sorted(fields),
                status=status.value if status else None,
            )
        self._emit(events)
        return self._identity(id_id)

    def revoke_id(self, actor: Actor, id_id: int) -> Identity:
        """Art. 9-5: revoke at once. Registrations and sessions end in the same transaction."""
        identity = self.store.get_identity(id_id)
        if identity is None or identity.removed_at is not None:
            raise NotFound("not found")
        if identity.role is Role.ADMIN:
            raise Forbidden("the admin ID cannot be revoked; ask the provider to reissue it")
        action = Action.USER_REVOKE if identity.role is Role.USER else Action.SUBADMIN_MANAGE
        require(
            actor.principal,
            action,
            Target(
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                subject_id=identity.id,
            ),
        )
        now = self.clock()
        with self.db.transaction():
            self.store.update_identity(id_id, status=IdStatus.REVOKED, removed_at=now)
            released = self.store.remove_numbers_of(id_id, now)
            for e164 in released:
                self.store.remove_device_accounts_for_number(identity.contract_id, e164, now)
            removed = self.store.delete_bindings_of_id(id_id)
            self.store.delete_sessions_of("id", id_id)
            self.audit(
                actor,
                f"{identity.role.value}.revoke",
                f"id:{id_id}",
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                login=identity.login,
                numbers_released=released,
                bindings_removed=removed,
            )
        self._emit([AccountEvent("id_revoked", identity.contract_id, id_id, "revoked")])
        return self.store.get_identity(id_id) or identity

    def reset_password(
        self,
        actor: Actor,
        id_id: int,
        password: PreparedPassword,
        *,
        sip_password: str | None = None,
    ) -> Identity:
        """An admin sets a new password for an ID; the ID's sessions end."""
        identity = self.store.get_identity(id_id)
        if identity is None or identity.removed_at is not None:
            raise NotFound("not found")
        action = Action.USER_UPDATE if identity.role is Role.USER else Action.SUBADMIN_MANAGE
        if identity.role is Role.ADMIN:
            action = Action.CONTRACT_REISSUE_ADMIN
        require(
            actor.principal,
            action,
            Target(
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                subject_id=identity.id,
            ),
        )
        return self._set_password(actor, identity, password, sip_password, "password.reset")

    def change_own_password(
        self, actor: Actor, password: PreparedPassword, *, sip_password: str | None = None
    ) -> Identity:
        """The caller has already verified the current password (in an executor)."""
        principal = actor.principal
        identity = self._identity(principal.subject_id)
        require(
            principal,
            Action.SELF_PASSWORD,
            Target(contract_id=identity.contract_id, subject_id=identity.id, role=identity.role),
        )
        return self._set_password(actor, identity, password, sip_password, "password.change")

    def _set_password(
        self,
        actor: Actor,
        identity: Identity,
        password: PreparedPassword,
        sip_password: str | None,
        action: str,
    ) -> Identity:
        validate_password(password)
        if sip_password is not None and check_password_strength(sip_password):
            raise InvalidInput("sip_password", check_password_strength(sip_password) or "")
        md5 = sha = None
        if identity.role is Role.USER:
            contract = self._contract(identity.contract_id)
            md5, sha = self._ha1s(identity.login, contract.domain, sip_password or password.plain)
        with self.db.transaction():
            self.store.set_credentials(identity.id, password.password_hash, md5, sha)
            self.store.delete_sessions_of("id", identity.id)
            self.audit(
                actor,
                action,
                f"id:{identity.id}",
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                login=identity.login,
            )
        self._emit([AccountEvent("credentials_changed", identity.contract_id, identity.id)])
        return identity

    def set_sip_password(self, actor: Actor, id_id: int, sip_password: str) -> Identity:
        """Give a user a SIP secret separate from the web password (only HA1s are kept)."""
        identity = self._id_for(actor, Action.USER_UPDATE, id_id)
        problem = check_password_strength(sip_password)
        if problem:
            raise InvalidInput("sip_password", problem)
        contract = self._contract(identity.contract_id)
        md5, sha = self._ha1s(identity.login, contract.domain, sip_password)
        with self.db.transaction():
            self.store.set_sip_secrets(id_id, md5, sha)
            self.audit(
                actor,
                "sip_password.set",
                f"id:{id_id}",
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
            )
        self._emit([AccountEvent("credentials_changed", identity.contract_id, id_id)])
        return identity

    def bind_number(self, actor: Actor, id_id: int, number: str) -> Identity:
        identity = self._id_for(actor, Action.USER_UPDATE, id_id)
        e164 = normalize_number(number)
        with self.db.transaction():
            self._bind(identity.contract_id, id_id, e164)
            self.audit(
                actor,
                "number.bind",
                f"id:{id_id}",
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                number=e164,
            )
        return self._identity(id_id)

    def unbind_number(self, actor: Actor, id_id: int, number: str) -> Identity:
        identity = self._id_for(actor, Action.USER_UPDATE, id_id)
        e164 = normalize_number(number)
        now = self.clock()
        with self.db.transaction():
            if not self.store.remove_number(id_id, e164, now):
                raise NotFound(f"{e164} is not bound to this ID")
            self.store.remove_device_accounts_for_number(identity.contract_id, e164, now)
            self.audit(
                actor,
                "number.unbind",
                f"id:{id_id}",
                contract_id=identity.contract_id,
                affiliation_id=identity.affiliation_id,
                number=e164,
            )
        return self._identity(id_id)

    # -- authentication support -----------------------------------------------------------

    def login_candidate(self, domain: str, login: str) -> tuple[Contract, IdSecrets] | None:
        """The stored secrets for a login attempt (no permission check: nobody is logged in)."""
        contract = self.store.contract_by_domain(domain.lower())
        if contract is None:
            return None
        secrets = self.store.secrets_by_login(contract.id, login)
        if secrets is None:
            return None
        return contract, secrets

    def login_allowed(self, contract: Contract, secrets: IdSecrets) -> str | None:
        """Why this ID may not log in now, or None. Only told after a correct password."""
        if secrets.status is IdStatus.REVOKED:
            return "this ID is revoked"
        if contract.status in WRITABLE:
            return None
        if secrets.role is Role.USER:
            return f"the contract is {contract.status.value}"
        if contract.status is ContractStatus.SUSPENDED:
            return None  # admins may still read (notices, audit) while suspended
        if (
            contract.status is ContractStatus.TERMINATED
            and contract.end_date is not None
            and self.clock().date() <= contract.end_date
        ):
            return None  # Art. 26-3: the contractor deletes its data by the end date
        return f"the contract is {contract.status.value}"

    def principal_for_id(self, id_id: int) -> Principal | None:
        """Fresh facts for each request, so revocation and scope changes apply at once."""
        identity = self.store.get_identity(id_id)
        if identity is None or identity.removed_at is not None:
            return None
        if identity.status is IdStatus.REVOKED:
            return None
        contract = self.store.get_contract(identity.contract_id)
        if contract is None:
            return None
        secrets = self.store.secrets_by_id(id_id)
        if secrets is None or self.login_allowed(contract, secrets) is not None:
            return None
        return Principal(
            role=identity.role,
            subject_id=identity.id,
            login=identity.login,
            contract_id=identity.contract_id,
            domain=contract.domain,
            affiliation_id=identity.affiliation_id,
            scope=frozenset(identity.scope) if identity.scope is not None else None,
            contract_status=contract.status,
        )

    def principal_for_operator(self, operator_id: int) -> Principal | None:
        operator = self.store.get_operator(operator_id)
        if operator is None:
            return None
        return Principal(Role.OPERATOR, operator.id, operator.login)

    def record_login(
        self,
        source: str,
        login: str,
        *,
        ok: bool,
        contract_id: int | None = None,
        reason: str = "",
    ) -> None:
        """Every login attempt, success or failure, goes to the audit log."""
        self.store.insert_audit(
            at=self.clock(),
            actor=f"login:{login}",
            source=source,
            contract_id=contract_id,
            affiliation_id=None,
            action="login",
            target=login,
            outcome="ok" if ok else "failed",
            detail={"reason": reason} if reason else {},
        )

    # -- operators ------------------------------------------------------------------------

    def create_operator(self, actor: Actor, login: str, password: PreparedPassword) -> Operator:
        require(actor.principal, Action.OPERATOR_MANAGE, Target())
        validate_login(login)
        validate_password(password)
        with self.db.transaction():
            existing = self.store.operator_secret(login)
            if existing is not None:
                self.store.set_operator_password(existing[0], password.password_hash)
                operator_id = existing[0]
                self.audit(actor, "operator.password", f"operator:{login}")
            else:
                operator_id = self.store.insert_operator(
                    login, password.password_hash, self.clock()
                )
                self.audit(actor, "operator.create", f"operator:{login}")
            self.store.delete_sessions_of("operator", operator_id)
        operator = self.store.get_operator(operator_id)
        assert operator is not None
        return operator

    def operator_secret(self, login: str) -> tuple[int, str] | None:
        return self.store.operator_secret(login)

    def list_operators(self, actor: Actor) -> list[Operator]:
        require(actor.principal, Action.OPERATOR_MANAGE, Target())
        return self.store.list_operators()

    # -- affiliations ---------------------------------------------------------------------

    def create_affiliation(
        self,
        actor: Actor,
        contract_id: int,
        *,
        name: str,
        policy: AffiliationPolicy | None = None,
    ) -> Affiliation:
        require(actor.principal, Action.AFFILIATION_CREATE, Target(contract_id=contract_id))
        self._contract(contract_id)
        name = _text(name, "name", 100)
        policy = validate_policy(policy or AffiliationPolicy())
        with self.db.transaction():
            if self.store.affiliation_by_name(contract_id, name) is not None:
                raise Conflict(f"the affiliation {name!r} already exists")
            aff_id = self.store.insert_affiliation(contract_id, name, policy, self.clock())
            self.audit(
                actor,
                "affiliation.create",
                f"affiliation:{aff_id}",
                contract_id=contract_id,
                affiliation_id=aff_id,
                name=name,
            )
        aff = self.store.get_affiliation(aff_id)
        assert aff is not None
        return aff

    def _affiliation_for(self, actor: Actor, action: Action, aff_id: int) -> Affiliation:
        aff = self.store.get_affiliation(aff_id)
        if aff is None or aff.removed_at is not None:
            raise NotFound("not found")
        require(
            actor.principal,
            action,
            Target(contract_id=aff.contract_id, affiliation_id=aff.id, subject_id=aff.id),
        )
        return aff

    def get_affiliation(self, actor: Actor, aff_id: int) -> Affiliation:
        return self._affiliation_for(actor, Action.AFFILIATION_VIEW, aff_id)

    def find_affiliation(self, actor: Actor, contract_id: int, name: str) -> Affiliation:
        aff = self.store.affiliation_by_name(contract_id, name)
        if aff is None:
            raise NotFound(f"no affiliation {name!r} in this contract")
        return self.get_affiliation(actor, aff.id)

    def list_affiliations(self, actor: Actor, contract_id: int) -> list[Affiliation]:
        require(actor.principal, Action.AFFILIATION_VIEW, Target(contract_id=contract_id))
        principal = actor.principal
        return [
            a
            for a in self.store.list_affiliations(contract_id)
            if in_scope(principal, a.id)
            and (principal.role is not Role.USER or a.id == principal.affiliation_id)
        ]

    def update_affiliation(
        self,
        actor: Actor,
        aff_id: int,
        *,
        name: str | None = None,
        policy: AffiliationPolicy | None = None,
    ) -> Affiliation:
        aff = self._affiliation_for(actor, Action.AFFILIATION_UPDATE, aff_id)
        new_name = _text(name, "name", 100) if name is not None else aff.name
        new_policy = validate_policy(policy) if policy is not None else aff.policy
        if new_name == aff.name and new_policy == aff.policy:
            return aff
        with self.db.transaction():
            if new_name != aff.name and self.store.affiliation_by_name(aff.contract_id, new_name):
                raise Conflict(f"the affiliation {new_name!r} already exists")
            self.store.update_affiliation(aff_id, new_name, new_policy)
            self.audit(
                actor,
                "affiliation.update",
                f"affiliation:{aff_id}",
                contract_id=aff.contract_id,
                affiliation_id=aff_id,
                name=new_name,
                policy=msgspec.json.encode(new_policy).decode(),
            )
        updated = self.store.get_affiliation(aff_id)
        assert updated is not None
        return updated

    def delete_affiliation(self, actor: Actor, aff_id: int) -> None:
        aff = self._affiliation_for(actor, Action.AFFILIATION_DELETE, aff_id)
        with self.db.transaction():
            users = self.store.count_users_in_affiliation(aff_id)
            if users:
                raise Conflict(f"{users} ID(s) still belong to {aff.name!r}; move them first")
            self.store.remove_affiliation(aff_id, self.clock())
            self.audit(
                actor,
                "affiliation.delete",
                f"affiliation:{aff_id}",
                contract_id=aff.contract_id,
                affiliation_id=aff_id,
                name=aff.name,
            )

    def policy_for(self, affiliation_id: int | None) -> AffiliationPolicy | None:
        """The policy the B2BUA applies to a user of *affiliation_id* (None: unrestricted)."""
        if affiliation_id is None:
            return None
        aff = self.store.get_affiliation(affiliation_id)
        return None if aff is None else aff.policy

    # -- devices --------------------------------------------------------------------------

    def _device_number(self, contract_id: int, number: str, field: str) -> str:
        e164 = normalize_number(number, field)
        owner = self.store.number_owner(e164)
        if owner is None or owner.contract_id != contract_id:
            raise InvalidInput(field, f"{e164} is not bound to a user ID of this contract")
        return e164

    def create_device(
        self,
        actor: Actor,
        contract_id: int,
        *,
        name: str,
        affiliation_id: int | None = None,
        note: str = "",
        numbers: Sequence[str] = (),
    ) -> Device:
        require(
            actor.principal,
            Action.DEVICE_CREATE,
            Target(contract_id=contract_id, affiliation_id=affiliation_id),
        )
        self._contract(contract_id)
        name = _text(name, "name", 100)
        note = _text(note, "note", 1000, required=False)
        with self.db.transaction():
            self._affiliation_ref(contract_id, affiliation_id, "affiliation_id")
            e164s = [
                self._device_number(contract_id, n, f"numbers[{i}]") for i, n in enumerate(numbers)
            ]
            if self.store.device_by_name(contract_id, name) is not None:
                raise Conflict(f"the device {name!r} already exists")
            device_id = self.store.insert_device(
                contract_id, name, affiliation_id, note, self.clock()
            )
            for e164 in dict.fromkeys(e164s):
                self.store.add_device_account(device_id, e164, self.clock())
            self.audit(
                actor,
                "device.create",
                f"device:{device_id}",
                contract_id=contract_id,
                affiliation_id=affiliation_id,
                name=name,
                numbers=e164s,
            )
        device = self.store.get_device(device_id)
        assert device is not None
        return device

    def _device_for(self, actor: Actor, action: Action, device_id: int) -> Device:
        device = self.store.get_device(device_id)
        if device is None or device.removed_at is not None:
            raise NotFound("not found")
        require(
            actor.principal,
            action,
            Target(
                contract_id=device.contract_id,
                affiliation_id=device.affiliation_id,
                subject_id=device.id,
            ),
        )
        return device

    def get_device(self, actor: Actor, device_id: int) -> Device:
        return self._device_for(actor, Action.DEVICE_VIEW, device_id)

    def find_device(self, actor: Actor, contract_id: int, name: str) -> Device:
        device = self.store.device_by_name(contract_id, name)
        if device is None:
            raise NotFound(f"no device {name!r} in this contract")
        return self.get_device(actor, device.id)

    def list_devices(self, actor: Actor, contract_id: int) -> list[Device]:
        require(actor.principal, Action.DEVICE_VIEW, Target(contract_id=contract_id))
        return [
            d
            for d in self.store.list_devices(contract_id)
            if in_scope(actor.principal, d.affiliation_id)
        ]

    def update_device(
        self,
        actor: Actor,
        device_id: int,
        *,
        name: str | None = None,
        affiliation_id: int | None = UNSET,
        note: str | None = None,
    ) -> Device:
        device = self._device_for(actor, Action.DEVICE_UPDATE, device_id)
        new_name = _text(name, "name", 100) if name is not None else device.name
        new_note = _text(note, "note", 1000, required=False) if note is not None else device.note
        new_aff = device.affiliation_id if affiliation_id is UNSET else affiliation_id
        if new_aff != device.affiliation_id:
            require(
                actor.principal,
                Action.DEVICE_CREATE,
                Target(contract_id=device.contract_id, affiliation_id=new_aff),
            )
        with self.db.transaction():
            self._affiliation_ref(device.contract_id, new_aff, "affiliation_id")
            if new_name != device.name and self.store.device_by_name(device.contract_id, new_name):
                raise Conflict(f"the device {new_name!r} already exists")
            self.store.update_device(device_id, new_name, new_aff, new_note)
            self.audit(
                actor,
                "device.update",
                f"device:{device_id}",
                contract_id=device.contract_id,
                affiliation_id=new_aff,
                name=new_name,
            )
        return self._device_for(actor, Action.DEVICE_VIEW, device_id)

    def delete_device(self, actor: Actor, device_id: int) -> None:
        device = self._device_for(actor, Action.DEVICE_DELETE, device_id)
        with self.db.transaction():
            self.store.remove_device(device_id, self.clock())
            self.audit(
                actor,
                "device.delete",
                f"device:{device_id}",
                contract_id=device.contract_id,
                affiliation_id=device.affiliation_id,
                name=device.name,
            )

    def add_device_account(self, actor: Actor, device_id: int, number: str) -> Device:
        device = self._device_for(actor, Action.DEVICE_UPDATE, device_id)
        with self.db.transaction():
            e164 = self._device_number(device.contract_id, number, "number")
            if any(a.e164 == e164 for a in device.accounts):
                raise Conflict(f"{e164} is already set on this device")
            self.store.add_device_account(device_id, e164, self.clock())
            self.audit(
                actor,
                "device.account_add",
                f"device:{device_id}",
                contract_id=device.contract_id,
                affiliation_id=device.affiliation_id,
                number=e164,
            )
        return self._device_for(actor, Action.DEVICE_VIEW, device_id)

    def remove_device_account(self, actor: Actor, device_id: int, number: str) -> Device:
        device = self._device_for(actor, Action.DEVICE_UPDATE, device_id)
        e164 = normalize_number(number)
        with self.db.transaction():
            if not self.store.remove_device_account(device_id, e164, self.clock()):
                raise NotFound(f"{e164} is not set on this device")
            self.audit(
                actor,
                "device.account_remove",
                f"device:{device_id}",
                contract_id=device.contract_id,
                affiliation_id=device.affiliation_id,
                number=e164,
            )
        return self._device_for(actor, Action.DEVICE_VIEW, device_id)

    # -- audit, usage, trunks, routing ----------------------------------------------------

    def list_audit(
        self,
        actor: Actor,
        contract_id: int | None,
        *,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        principal = actor.principal
        if contract_id is None:
            require(principal, Action.CONTRACT_LIST, Target())
        else:
            require(principal, Action.AUDIT_VIEW, Target(contract_id=contract_id))
        scope = (
            sorted(principal.scope)
            if principal.role is Role.SUBADMIN and principal.scope is not None
            else None
        )
        limit = max(1, min(limit, 1000))
        return self.store.list_audit(
            contract_id, affiliations=scope, before_id=before_id, limit=limit
        )

    def usage_units(self, actor: Actor, contract_id: int) -> list[UsageUnit]:
        require(actor.principal, Action.CONTRACT_VIEW, Target(contract_id=contract_id))
        return self.store.usage_units(contract_id)

    def upsert_trunk(self, actor: Actor, trunk: Trunk) -> bool:
        require(actor.principal, Action.TRUNK_MANAGE, Target())
        _text(trunk.name, "trunk.name", 100)
        _text(trunk.host, "trunk.host", 253)
        if not 0 < trunk.port < 65536:
            raise InvalidInput("trunk.port", "1-65535")
        if trunk.transport not in ("udp", "tcp", "tls"):
            raise InvalidInput("trunk.transport", "udp, tcp or tls")
        with self.db.transaction():
            changed = self.store.upsert_trunk(trunk, self.clock())
            if changed:
                self.audit(
                    actor,
                    "trunk.upsert",
                    f"trunk:{trunk.name}",
                    host=trunk.host,
                    port=trunk.port,
                    transport=trunk.transport,
                )
        return changed

    def list_trunks(self, actor: Actor) -> list[Trunk]:
        require(actor.principal, Action.TRUNK_MANAGE, Target())
        return self.store.list_trunks()

    def number_owner(self, number: str) -> NumberOwner | None:
        """Inbound routing: the live user ID a number rings (no actor: the B2BUA asks)."""
        try:
            e164 = jp.normalize(number)
        except jp.InvalidNumber:
            return None
        return self.store.number_owner(e164)
