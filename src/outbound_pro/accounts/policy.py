"""Every permission decision of Outbound Pro, in one module.

Three questions are answered here and nowhere else:

* `check`: may this principal perform this administrative action on this target? The answer
  distinguishes FORBIDDEN (the caller can see the object but may not act: HTTP 403) from
  NOT_FOUND (the object belongs to another contract, or to affiliations outside a sub-admin's
  scope: HTTP 404, so nothing about it leaks).
* `interaction`: may one user see another's presence, customers or recordings, monitor them,
  or transfer a call to them? Decided by the *target's* affiliation policy.
* `call_setup`: may this call be placed now (contract and ID status, outbound permission,
  destination prefixes, hours in Asia/Tokyo, concurrent calls)? Answered with a reason and the
  SIP status the B2BUA should send.

The functions are pure: callers load the facts (principal, target, policy, time) and act on the
decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from outbound_pro.accounts import numbers
from outbound_pro.accounts.errors import Forbidden, NotFound
from outbound_pro.accounts.models import AffiliationPolicy, ContractStatus, IdStatus, Role

TOKYO = ZoneInfo("Asia/Tokyo")


class Effect(StrEnum):
    ALLOW = "allow"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Decision:
    effect: Effect
    reason: str

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    def enforce(self) -> None:
        """Raise the matching error unless allowed."""
        if self.effect is Effect.NOT_FOUND:
            raise NotFound(self.reason)
        if self.effect is Effect.FORBIDDEN:
            raise Forbidden(self.reason)


ALLOW = Decision(Effect.ALLOW, "allowed")
HIDDEN = Decision(Effect.NOT_FOUND, "not found")


class Action(StrEnum):
    # provider level
    CONTRACT_APPLY = "contract.apply"
    CONTRACT_DECIDE = "contract.decide"  # approve or refuse
    CONTRACT_SUSPEND = "contract.suspend"
    CONTRACT_RESTRICT = "contract.restrict"
    CONTRACT_REINSTATE = "contract.reinstate"
    CONTRACT_TERMINATE = "contract.terminate"
    CONTRACT_REISSUE_ADMIN = "contract.reissue_admin"
    CONTRACT_LIST = "contract.list"
    OPERATOR_MANAGE = "operator.manage"
    TRUNK_MANAGE = "trunk.manage"
    # issue invoices and credit notes, record payments and outages (the provider's books)
    BILLING_MANAGE = "billing.manage"
    # contract level
    CONTRACT_VIEW = "contract.view"
    USER_VIEW = "user.view"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"  # profile, affiliation, status, numbers, password reset
    USER_REVOKE = "user.revoke"
    SUBADMIN_VIEW = "subadmin.view"
    SUBADMIN_MANAGE = "subadmin.manage"
    AFFILIATION_VIEW = "affiliation.view"
    AFFILIATION_CREATE = "affiliation.create"
    AFFILIATION_UPDATE = "affiliation.update"
    AFFILIATION_DELETE = "affiliation.delete"
    DEVICE_VIEW = "device.view"
    DEVICE_CREATE = "device.create"
    DEVICE_UPDATE = "device.update"
    DEVICE_DELETE = "device.delete"
    AUDIT_VIEW = "audit.view"
    REGISTRATIONS_VIEW = "registrations.view"
    # a contract's issued invoices: the provider, and the contract's admin (read-only)
    BILLING_VIEW = "billing.view"
    # any logged-in principal, on itself
    SELF_VIEW = "self.view"
    SELF_PASSWORD = "self.password"


PROVIDER_ACTIONS = frozenset(
    {
        Action.CONTRACT_APPLY,
        Action.CONTRACT_DECIDE,
        Action.CONTRACT_SUSPEND,
        Action.CONTRACT_RESTRICT,
        Action.CONTRACT_REINSTATE,
        Action.CONTRACT_TERMINATE,
        Action.CONTRACT_REISSUE_ADMIN,
        Action.CONTRACT_LIST,
        Action.OPERATOR_MANAGE,
        Action.TRUNK_MANAGE,
        Action.BILLING_MANAGE,
    }
)
READ_ACTIONS = frozenset(
    {
        Action.CONTRACT_VIEW,
        Action.USER_VIEW,
        Action.SUBADMIN_VIEW,
        Action.AFFILIATION_VIEW,
        Action.DEVICE_VIEW,
        Action.AUDIT_VIEW,
        Action.REGISTRATIONS_VIEW,
        Action.SELF_VIEW,
        Action.BILLING_VIEW,
    }
)
CREATE_ACTIONS = frozenset({Action.USER_CREATE, Action.DEVICE_CREATE, Action.AFFILIATION_CREATE})
USER_TARGET_ACTIONS = frozenset(
    {Action.USER_VIEW, Action.USER_CREATE, Action.USER_UPDATE, Action.USER_REVOKE}
)
# Things only the contract's admin (or an unscoped sub-admin) may do: they change the
# contract as a whole rather than one affiliation.
CONTRACT_WIDE = frozenset(
    {Action.AFFILIATION_CREATE, Action.AFFILIATION_DELETE, Action.SUBADMIN_VIEW}
)
# Contract states in which its IDs may still change things.
WRITABLE = frozenset({ContractStatus.ACTIVE, ContractStatus.RESTRICTED})


@dataclass(frozen=True)
class Principal:
    """Who is acting. For contract IDs, the facts policy needs are loaded at login/request."""

    role: Role
    subject_id: int
    login: str
    contract_id: int | None = None
    domain: str | None = None
    affiliation_id: int | None = None
    scope: frozenset[int] | None = None  # sub-admins only; None = whole contract
    contract_status: ContractStatus | None = None

    def describe(self) -> str:
        """The actor string written to the audit log."""
        if self.domain:
            return f"{self.role.value}:{self.login}@{self.domain}"
        return f"{self.role.value}:{self.login}"


SYSTEM = Principal(Role.SYSTEM, 0, "console")


@dataclass(frozen=True)
class Target:
    """What an action is about. ``contract_id=None`` marks provider-level actions."""

    contract_id: int | None = None
    affiliation_id: int | None = None
    subject_id: int | None = None
    role: Role | None = None


def check(principal: Principal, action: Action, target: Target) -> Decision:
    """Decide an administrative action (see the module docstring for the meaning)."""
    role = principal.role
    if role is Role.SYSTEM:
        return ALLOW
    if action in (Action.SELF_VIEW, Action.SELF_PASSWORD):
        if target.subject_id == principal.subject_id and target.role in (None, role):
            return ALLOW
        return HIDDEN
    if role is Role.OPERATOR:
        if action in PROVIDER_ACTIONS or action in (
            Action.CONTRACT_VIEW,
            Action.AUDIT_VIEW,
            Action.BILLING_VIEW,
        ):
            return ALLOW
        return Decision(Effect.FORBIDDEN, "provider operators do not manage IDs inside a contract")
    # admin, sub-admin, user: bound to one contract
    if action in PROVIDER_ACTIONS:
        return Decision(Effect.FORBIDDEN, "only the provider may do this")
    if target.contract_id != principal.contract_id:
        return HIDDEN
    if action in USER_TARGET_ACTIONS and target.role not in (None, Role.USER):
        return HIDDEN
    if role is Role.USER:
        if action is Action.AFFILIATION_VIEW and (
            target.affiliation_id == principal.affiliation_id or target.subject_id is None
        ):
            return ALLOW  # own affiliation, or the list (which the service narrows to it)
        return Decision(Effect.FORBIDDEN, "users may only view and change their own profile")
    if action not in READ_ACTIONS and principal.contract_status not in WRITABLE:
        status = principal.contract_status.value if principal.contract_status else "unknown"
        return Decision(Effect.FORBIDDEN, f"the contract is {status}; changes are not possible")
    if role is Role.ADMIN:
        return ALLOW
    # sub-admin
    if action is Action.BILLING_VIEW:
        # Invoices are the contracting company's business with the provider, not an
        # affiliation's: only the contract's admin sees them.
        return Decision(Effect.FORBIDDEN, "only the contract's admin sees its invoices")
    if action is Action.SUBADMIN_MANAGE:
        return Decision(Effect.FORBIDDEN, "only the contract's admin manages sub-admin IDs")
    if principal.scope is None:
        return ALLOW
    if action in CONTRACT_WIDE:
        return Decision(
            Effect.FORBIDDEN, "a sub-admin scoped to affiliations cannot do contract-wide changes"
        )
    if action in (Action.CONTRACT_VIEW, Action.AUDIT_VIEW, Action.REGISTRATIONS_VIEW):
        return ALLOW  # the service narrows the result to the scope
    if action in (Action.USER_VIEW, Action.DEVICE_VIEW, Action.AFFILIATION_VIEW) and (
        target.affiliation_id is None and target.subject_id is None
    ):
        return ALLOW  # a list: the service filters it to the scope
    if target.affiliation_id in principal.scope:
        return ALLOW
    if action in CREATE_ACTIONS:
        return Decision(Effect.FORBIDDEN, "outside the affiliations this sub-admin manages")
    return HIDDEN


def in_scope(principal: Principal, affiliation_id: int | None) -> bool:
    """Whether an object of *affiliation_id* shows up in this principal's lists."""
    if principal.role is Role.SUBADMIN and principal.scope is not None:
        return affiliation_id in principal.scope
    return True


def require(principal: Principal, action: Action, target: Target) -> None:
    check(principal, action, target).enforce()


# -- user-to-user interactions -----------------------------------------------------------


class Interaction(StrEnum):
    PRESENCE = "presence"
    CUSTOMERS = "customers"
    RECORDINGS = "recordings"
    MONITOR = "monitor"
    TRANSFER = "transfer"


_FLAG = {
    Interaction.PRESENCE: "others_may_see_presence",
    Interaction.CUSTOMERS: "others_may_see_customers",
    Interaction.RECORDINGS: "others_may_see_recordings",
    Interaction.MONITOR: "others_may_monitor",
    Interaction.TRANSFER: "others_may_transfer_to",
}


@dataclass(frozen=True)
class UserRef:
    """A user as the interaction rule sees it."""

    id: int
    contract_id: int
    affiliation_id: int | None


def interaction(
    actor: Principal,
    target: UserRef,
    kind: Interaction,
    target_policy: AffiliationPolicy | None,
    actor_policy: AffiliationPolicy | None = None,
) -> Decision:
    """May *actor* do *kind* to user *target*? The target's affiliation policy decides."""
    if actor.role is Role.SYSTEM:
        return ALLOW
    if actor.role is Role.OPERATOR or actor.contract_id != target.contract_id:
        return HIDDEN
    if actor.role in (Role.ADMIN, Role.SUBADMIN):
        return ALLOW if in_scope(actor, target.affiliation_id) else HIDDEN
    if (
        kind is Interaction.RECORDINGS
        and actor_policy is not None
        and not actor_policy.recordings_allowed
    ):
        return Decision(Effect.FORBIDDEN, "recording access is switched off for your affiliation")
    if actor.subject_id == target.id or actor.affiliation_id == target.affiliation_id:
        return ALLOW
    if target_policy is None or getattr(target_policy, _FLAG[kind]):
        return ALLOW
    return Decision(
        Effect.FORBIDDEN, f"{kind.value} across affiliations is not allowed by the target's policy"
    )


# -- call set-up ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CallDecision:
    allowed: bool
    reason: str
    sip_status: int
    destination: str | None = None  # E.164, when the destination was valid


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def within_hours(start: str, end: str, now: dt.datetime) -> bool:
    """Is *now* (aware) inside [start, end) in Asia/Tokyo? end <= start wraps past midnight."""
    local = now.astimezone(TOKYO)
    t = local.hour * 60 + local.minute
    s, e = _minutes(start), _minutes(end)
    if s == e:
        return True
    if s < e:
        return s <= t < e
    return t >= s or t < e


def call_setup(
    *,
    contract_status: ContractStatus,
    id_status: IdStatus,
    policy: AffiliationPolicy | None,
    destination: str,
    now: dt.datetime,
    active_calls: int,
    outbound: bool = True,
) -> CallDecision:
    """Decide one call. *active_calls* counts the affiliation's calls in progress now.

    *destination* is what was dialled (outbound) or the booth's number (inbound); it is
    normalised here so prefix rules compare like with like.
    """
    if now.tzinfo is None:
        raise ValueError("call_setup needs a timezone-aware time")
    if contract_status not in WRITABLE:
        return CallDecision(False, f"contract is {contract_status.value}", 403)
    if id_status is IdStatus.REVOKED:
        return CallDecision(False, "ID is revoked", 403)
    try:
        e164 = numbers.normalize(destination)
    except numbers.InvalidNumber as exc:
        return CallDecision(False, f"invalid destination: {exc}", 484)
    limit = policy.max_concurrent_calls if policy else None
    if not outbound:
        if limit is not None and active_calls >= limit:
            return CallDecision(False, f"affiliation has {limit} calls already", 486, e164)
        return CallDecision(True, "inbound allowed", 200, e164)
    if contract_status is ContractStatus.RESTRICTED:
        return CallDecision(False, "contract is restricted: outbound calls are stopped", 403, e164)
    if id_status is IdStatus.RESTRICTED:
        return CallDecision(False, "ID is restricted: outbound calls are stopped", 403, e164)
    if policy is not None:
        if not policy.outbound_allowed:
            return CallDecision(False, "outbound calls are not allowed for the affiliation", 403)
        if policy.allowed_prefixes:
            prefixes = [numbers.normalize_prefix(p) for p in policy.allowed_prefixes]
            if not any(e164.startswith(p) for p in prefixes):
                return CallDecision(
                    False, "destination is not in the affiliation's allowed prefixes", 403, e164
                )
        if policy.hours is not None and not within_hours(policy.hours.start, policy.hours.end, now):
            return CallDecision(
                False,
                f"outside allowed hours {policy.hours.start}-{policy.hours.end} (Asia/Tokyo)",
                403,
                e164,
            )
        if limit is not None and active_calls >= limit:
            return CallDecision(
                False, f"affiliation reached its limit of {limit} concurrent calls", 503, e164
            )
    return CallDecision(True, "outbound allowed", 200, e164)
