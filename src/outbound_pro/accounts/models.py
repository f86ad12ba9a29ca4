"""Declared records of the accounts domain (contracts, IDs, affiliations, devices, audit).

These are plain data: the store builds them from rows and the API encodes them. They import
nothing from the rest of the package so every layer can use them.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import msgspec

Detail = dict[str, str | int | bool | list[str] | None]
"""Audit-entry details: flat JSON values only, so entries stay searchable."""


class ContractStatus(StrEnum):
    APPLIED = "applied"
    ACTIVE = "active"
    RESTRICTED = "restricted"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    REFUSED = "refused"


class Role(StrEnum):
    """Who a principal is. SYSTEM is the local console (CLI run on the server by root)."""

    SYSTEM = "system"
    OPERATOR = "operator"
    ADMIN = "admin"
    SUBADMIN = "subadmin"
    USER = "user"


class IdStatus(StrEnum):
    ACTIVE = "active"
    RESTRICTED = "restricted"
    REVOKED = "revoked"


class Hours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Allowed calling window in Asia/Tokyo, "HH:MM" each; end before start wraps midnight."""

    start: str
    end: str


class AffiliationPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Restrictions of one affiliation (fee 2-1(4)).

    The ``others_may_*`` flags say what users of *other* affiliations may do to this
    affiliation's users; the default is unrestricted, and admins switch things off.
    """

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


class Contract(msgspec.Struct, frozen=True):
    id: int
    name: str
    email: str
    domain: str
    status: ContractStatus
    applied_at: dt.datetime
    decided_at: dt.datetime | None = None
    refusal_reason: str | None = None
    status_reason: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    admin_url: str | None = None


class Affiliation(msgspec.Struct, frozen=True):
    id: int
    contract_id: int
    name: str
    policy: AffiliationPolicy
    added_at: dt.datetime
    removed_at: dt.datetime | None = None


class Identity(msgspec.Struct, frozen=True):
    """An admin, sub-admin or user ID. Credentials are never part of this record."""

    id: int
    contract_id: int
    login: str
    role: Role
    status: IdStatus
    display_name: str
    affiliation_id: int | None
    numbers: list[str]
    scope: list[int] | None
    added_at: dt.datetime
    removed_at: dt.datetime | None = None


class IdSecrets(msgspec.Struct, frozen=True):
    """What authentication needs; kept apart from `Identity` so it is never encoded by mistake."""

    id: int
    contract_id: int
    login: str
    role: Role
    status: IdStatus
    password_hash: str
    ha1_md5: str | None
    ha1_sha256: str | None


class DeviceAccount(msgspec.Struct, frozen=True):
    e164: str
    added_at: dt.datetime
    removed_at: dt.datetime | None = None


class Device(msgspec.Struct, frozen=True):
    id: int
    contract_id: int
    name: str
    affiliation_id: int | None
    note: str
    accounts: list[DeviceAccount]
    added_at: dt.datetime
    removed_at: dt.datetime | None = None


class Operator(msgspec.Struct, frozen=True):
    id: int
    login: str
    added_at: dt.datetime


class Trunk(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The provider's SIP trunk. The password is kept because the B2BUA must send it."""

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    username: str = ""
    password: str = ""
    trusted_sources: list[str] = []


class AuditEntry(msgspec.Struct, frozen=True):
    id: int
    at: dt.datetime
    actor: str
    source: str
    contract_id: int | None
    affiliation_id: int | None
    action: str
    target: str
    outcome: str
    detail: Detail


class UsageUnit(msgspec.Struct, frozen=True):
    """A billable unit with the dates it existed, for the billing module."""

    kind: str  # booth | subadmin | affiliation | sip_channel | sip_account
    ref: str
    added_at: dt.datetime
    removed_at: dt.datetime | None


class NumberOwner(msgspec.Struct, frozen=True):
    """Who a telephone number rings: the B2BUA's inbound routing answer."""

    e164: str
    contract_id: int
    domain: str
    id_id: int
    login: str


class Session(msgspec.Struct, frozen=True):
    subject_kind: str  # "operator" or "id"
    subject_id: int
    created_at: float
    expires_at: float
    idle_expires_at: float
