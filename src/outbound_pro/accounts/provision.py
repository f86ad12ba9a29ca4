"""``outbound-pro provision FILE.toml``: create or update everything from one file, idempotently.

Running the same file twice changes nothing the second time. Things in the database but not in
the file are left alone (a provisioning file is not a deletion list): revoke IDs explicitly. The
format is documented in docs/provisioning.md; the structs below are its schema, so a typo is an
error naming the field.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import msgspec

from outbound_pro.accounts.errors import InvalidInput
from outbound_pro.accounts.models import AffiliationPolicy, ContractStatus, Hours, Role, Trunk
from outbound_pro.accounts.passwords import (
    DEFAULT_PARAMS,
    ScryptParams,
    ha1,
    prepare_password,
    verify_password,
)
from outbound_pro.accounts.service import AccountService, Actor, normalize_number


class AdminSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str = "admin"
    password: str | None = None


class AffiliationSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    outbound_allowed: bool = True
    allowed_prefixes: list[str] = []
    hours: Hours | None = None
    max_concurrent_calls: int | None = None
    recordings_allowed: bool = True
    others_may_see_presence: bool = True
    others_may_see_customers: bool = True
    others_may_see_recordings: bool = True
    others_may_monitor: bool = True
    others_may_transfer_to: bool = True

    def policy(self) -> AffiliationPolicy:
        fields = msgspec.structs.asdict(self)
        fields.pop("name")
        return AffiliationPolicy(**fields)


class UserSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    password: str
    display_name: str = ""
    numbers: list[str] = []
    affiliation: str | None = None
    sip_password: str | None = None


class SubadminSpec(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    password: str
    display_name: str = ""
    affiliations: list[str] | None = None


class DeviceSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    affiliation: str | None = None
    note: str = ""
    numbers: list[str] = []


class ContractSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    email: str
    domain: str
    admin: AdminSpec = AdminSpec()
    start_date: dt.date | None = None
    affiliation: list[AffiliationSpec] = []
    subadmin: list[SubadminSpec] = []
    user: list[UserSpec] = []
    device: list[DeviceSpec] = []


class OperatorSpec(msgspec.Struct, forbid_unknown_fields=True):
    login: str
    password: str


class ProvisionFile(msgspec.Struct, forbid_unknown_fields=True):
    operator: list[OperatorSpec] = []
    trunk: list[Trunk] = []
    contract: list[ContractSpec] = []


class Change(msgspec.Struct):
    kind: str
    ref: str
    action: str  # created | updated | unchanged
    password: str | None = None  # only for generated admin passwords, shown once


class ProvisionError(Exception):
    """The file cannot be used; the message names the place."""


def load(path: str | Path) -> ProvisionFile:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionError(f"cannot read {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return msgspec.convert(data, ProvisionFile)
    except msgspec.ValidationError as exc:
        raise ProvisionError(f"{path}: {exc}") from exc


def apply(
    service: AccountService,
    actor: Actor,
    spec: ProvisionFile,
    params: ScryptParams = DEFAULT_PARAMS,
) -> list[Change]:
    """Bring the database in line with *spec*; returns one `Change` per item."""
    changes: list[Change] = []
    for op in spec.operator:
        secret = service.operator_secret(op.login)
        if secret is not None and verify_password(op.password, secret[1]):
            changes.append(Change("operator", op.login, "unchanged"))
            continue
        service.create_operator(actor, op.login, prepare_password(op.password, params))
        changes.append(Change("operator", op.login, "updated" if secret else "created"))
    for trunk in spec.trunk:
        existed = service.store.get_trunk(trunk.name) is not None
        changed = service.upsert_trunk(actor, trunk)
        action = ("updated" if existed else "created") if changed else "unchanged"
        changes.append(Change("trunk", trunk.name, action))
    for i, contract in enumerate(spec.contract):
        try:
            changes += _contract(service, actor, contract, params)
        except InvalidInput as exc:
            raise InvalidInput(f"contract[{i}].{exc.field}", exc.message) from exc
    return changes


def _contract(
    service: AccountService, actor: Actor, spec: ContractSpec, params: ScryptParams
) -> list[Change]:
    changes: list[Change] = []
    store = service.store
    contract = store.contract_by_domain(spec.domain.lower())
    if contract is None:
        contract = service.apply_contract(
            actor,
            name=spec.name,
            email=spec.email,
            domain=spec.domain,
            start_date=spec.start_date,
        )
        changes.append(Change("contract", contract.domain, "created"))
    else:
        before = contract
        contract = service.update_contract_details(
            actor, contract.id, name=spec.name, email=spec.email
        )
        changes.append(
            Change("contract", contract.domain, "updated" if before != contract else "unchanged")
        )
    if contract.status is ContractStatus.APPLIED:
        prepared = prepare_password(spec.admin.password, params)
        issued = service.approve_contract(
            actor,
            contract.id,
            admin_login=spec.admin.id,
            admin_password=prepared,
            start_date=spec.start_date,
        )
        changes.append(
            Change(
                "admin",
                f"{issued.login}@{contract.domain}",
                "created",
                issued.password if prepared.generated else None,
            )
        )
    elif spec.admin.password is not None:
        admins = store.list_identities(contract.id, Role.ADMIN)
        secrets = store.secrets_by_id(admins[0].id) if admins else None
        if secrets is not None and not verify_password(spec.admin.password, secrets.password_hash):
            service.reissue_admin(actor, contract.id, prepare_password(spec.admin.password, params))
            changes.append(Change("admin", f"{secrets.login}@{contract.domain}", "updated"))
    cid = contract.id

    aff_ids: dict[str, int] = {}
    for a in spec.affiliation:
        existing = store.affiliation_by_name(cid, a.name)
        if existing is None:
            created = service.create_affiliation(actor, cid, name=a.name, policy=a.policy())
            aff_ids[a.name] = created.id
            changes.append(Change("affiliation", a.name, "created"))
        else:
            updated = service.update_affiliation(actor, existing.id, policy=a.policy())
            aff_ids[a.name] = existing.id
            changes.append(
                Change("affiliation", a.name, "unchanged" if updated == existing else "updated")
            )

    def aff(name: str | None, field: str) -> int | None:
        if name is None:
            return None
        if name in aff_ids:
            return aff_ids[name]
        found = store.affiliation_by_name(cid, name)
        if found is None:
            raise InvalidInput(
                field, f"no affiliation {name!r}; add it under [[contract.affiliation]]"
            )
        return found.id

    for i, u in enumerate(spec.user):
        changes.append(
            _user(
                service,
                actor,
                cid,
                contract.domain,
                u,
                aff(u.affiliation, f"user[{i}].affiliation"),
                params,
            )
        )
    for i, s in enumerate(spec.subadmin):
        scope = None
        if s.affiliations is not None:
            scope = [aff(n, f"subadmin[{i}].affiliations") or 0 for n in s.affiliations]
        existing_id = store.identity_by_login(cid, s.id)
        if existing_id is None:
            service.create_subadmin(
                actor,
                cid,
                login=s.id,
                password=prepare_password(s.password, params),
                display_name=s.display_name,
                scope=scope,
            )
            changes.append(Change("subadmin", s.id, "created"))
            continue
        action = "unchanged"
        if existing_id.scope != (sorted(scope) if scope else None):
            service.set_subadmin_scope(actor, existing_id.id, scope)
            action = "updated"
        secrets = store.secrets_by_id(existing_id.id)
        if secrets and not verify_password(s.password, secrets.password_hash):
            service.reset_password(actor, existing_id.id, prepare_password(s.password, params))
            action = "updated"
        changes.append(Change("subadmin", s.id, action))
    for i, d in enumerate(spec.device):
        changes.append(
            _device(service, actor, cid, d, aff(d.affiliation, f"device[{i}].affiliation"))
        )
    return changes


def _user(
    service: AccountService,
    actor: Actor,
    cid: int,
    domain: str,
    u: UserSpec,
    affiliation_id: int | None,
    params: ScryptParams,
) -> Change:
    store = service.store
    existing = store.identity_by_login(cid, u.id)
    if existing is None:
        service.create_user(
            actor,
            cid,
            login=u.id,
            password=prepare_password(u.password, params),
            display_name=u.display_name,
            affiliation_id=affiliation_id,
            numbers=u.numbers,
            sip_password=u.sip_password,
        )
        return Change("user", u.id, "created")
    if existing.role is not Role.USER:
        raise InvalidInput("user.id", f"{u.id!r} is already a {existing.role.value} ID")
    action = "unchanged"
    if existing.display_name != u.display_name or existing.affiliation_id != affiliation_id:
        service.update_user(
            actor, existing.id, display_name=u.display_name, affiliation_id=affiliation_id
        )
        action = "updated"
    secrets = store.secrets_by_id(existing.id)
    assert secrets is not None
    sip_secret = u.sip_password or u.password
    if not verify_password(u.password, secrets.password_hash):
        service.reset_password(
            actor, existing.id, prepare_password(u.password, params), sip_password=u.sip_password
        )
        action = "updated"
    elif secrets.ha1_sha256 != ha1(u.id, domain, sip_secret, "SHA-256"):
        service.set_sip_password(actor, existing.id, sip_secret)
        action = "updated"
    wanted = [service_normalize(n) for n in u.numbers]
    for e164 in wanted:
        if e164 not in existing.numbers:
            service.bind_number(actor, existing.id, e164)
            action = "updated"
    for e164 in existing.numbers:
        if e164 not in wanted:
            service.unbind_number(actor, existing.id, e164)
            action = "updated"
    return Change("user", u.id, action)


def service_normalize(number: str) -> str:
    return normalize_number(number, "numbers")


def _device(
    service: AccountService, actor: Actor, cid: int, d: DeviceSpec, affiliation_id: int | None
) -> Change:
    existing = service.store.device_by_name(cid, d.name)
    if existing is None:
        service.create_device(
            actor, cid, name=d.name, affiliation_id=affiliation_id, note=d.note, numbers=d.numbers
        )
        return Change("device", d.name, "created")
    action = "unchanged"
    if existing.affiliation_id != affiliation_id or existing.note != d.note:
        service.update_device(actor, existing.id, affiliation_id=affiliation_id, note=d.note)
        action = "updated"
    have = {a.e164 for a in existing.accounts}
    wanted = [service_normalize(n) for n in d.numbers]
    for e164 in wanted:
        if e164 not in have:
            service.add_device_account(actor, existing.id, e164)
            action = "updated"
    for e164 in have - set(wanted):
        service.remove_device_account(actor, existing.id, e164)
        action = "updated"
    return Change("device", d.name, action)
