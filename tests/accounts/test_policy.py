"""The permission matrix: role × action × same/other contract × same/other affiliation."""

from __future__ import annotations

import datetime as dt

import pytest

from outbound_pro.accounts.models import (
    AffiliationPolicy,
    ContractStatus,
    Hours,
    IdStatus,
    Role,
)
from outbound_pro.accounts.policy import (
    CREATE_ACTIONS,
    PROVIDER_ACTIONS,
    READ_ACTIONS,
    SYSTEM,
    Action,
    Effect,
    Interaction,
    Principal,
    Target,
    UserRef,
    call_setup,
    check,
    interaction,
    within_hours,
)

OWN, OTHER = 1, 2  # contract ids
AFF_A, AFF_B = 10, 20  # affiliations of contract OWN

P = {
    "operator": Principal(Role.OPERATOR, 1, "op"),
    "admin": Principal(Role.ADMIN, 100, "admin", OWN, "a.local", None, None, ContractStatus.ACTIVE),
    "subadmin": Principal(
        Role.SUBADMIN, 101, "sub", OWN, "a.local", None, None, ContractStatus.ACTIVE
    ),
    "scoped": Principal(
        Role.SUBADMIN,
        102,
        "scoped",
        OWN,
        "a.local",
        None,
        frozenset({AFF_A}),
        ContractStatus.ACTIVE,
    ),
    "user": Principal(Role.USER, 103, "booth", OWN, "a.local", AFF_A, None, ContractStatus.ACTIVE),
}
CONTRACT_ACTIONS = sorted(set(Action) - PROVIDER_ACTIONS - {Action.SELF_VIEW, Action.SELF_PASSWORD})
ALLOW, FORBID, HIDE = Effect.ALLOW, Effect.FORBIDDEN, Effect.NOT_FOUND


def expected(role: str, action: Action, contract: int, aff: int) -> Effect:
    """The rules of the SPEC, written out independently of policy.check."""
    if role == "operator":
        if action in (Action.CONTRACT_VIEW, Action.AUDIT_VIEW, Action.BILLING_VIEW):
            return ALLOW
        return FORBID
    if contract == OTHER:
        return HIDE
    if role == "admin":
        return ALLOW
    if role == "user":
        return ALLOW if action is Action.AFFILIATION_VIEW and aff == AFF_A else FORBID
    if action is Action.BILLING_VIEW:
        return FORBID  # invoices: the contract's admin only, scoped or not
    if action is Action.SUBADMIN_MANAGE:
        return FORBID
    if role == "subadmin":
        return ALLOW
    # scoped sub-admin (scope = {AFF_A})
    if action in (Action.AFFILIATION_CREATE, Action.AFFILIATION_DELETE, Action.SUBADMIN_VIEW):
        return FORBID
    if action in (Action.CONTRACT_VIEW, Action.AUDIT_VIEW, Action.REGISTRATIONS_VIEW):
        return ALLOW
    if aff == AFF_A:
        return ALLOW
    return FORBID if action in CREATE_ACTIONS else HIDE


@pytest.mark.parametrize("aff", [AFF_A, AFF_B])
@pytest.mark.parametrize("contract", [OWN, OTHER])
@pytest.mark.parametrize("action", CONTRACT_ACTIONS)
@pytest.mark.parametrize("role", sorted(P))
def test_contract_actions_matrix(role: str, action: Action, contract: int, aff: int) -> None:
    decision = check(
        P[role], action, Target(contract_id=contract, affiliation_id=aff, subject_id=999)
    )
    assert decision.effect is expected(role, action, contract, aff), decision.reason


@pytest.mark.parametrize("action", sorted(PROVIDER_ACTIONS))
@pytest.mark.parametrize("role", sorted(P))
def test_provider_actions_are_operator_only(role: str, action: Action) -> None:
    decision = check(P[role], action, Target())
    assert decision.effect is (ALLOW if role == "operator" else FORBID)


@pytest.mark.parametrize("action", list(Action))
def test_system_console_may_do_everything(action: Action) -> None:
    assert check(SYSTEM, action, Target(contract_id=OTHER)).allowed


@pytest.mark.parametrize("role", sorted(P))
@pytest.mark.parametrize("action", [Action.SELF_VIEW, Action.SELF_PASSWORD])
def test_self_actions_only_on_self(role: str, action: Action) -> None:
    p = P[role]
    assert check(p, action, Target(contract_id=p.contract_id, subject_id=p.subject_id)).allowed
    other = check(p, action, Target(contract_id=p.contract_id, subject_id=p.subject_id + 1))
    assert other.effect is HIDE
    # the same numeric id but a different kind of subject (operator 1 vs ID 1) is not self
    wrong_kind = Role.USER if p.role is not Role.USER else Role.ADMIN
    assert not check(p, action, Target(subject_id=p.subject_id, role=wrong_kind)).allowed


@pytest.mark.parametrize("role", ["admin", "subadmin", "user"])
def test_user_actions_do_not_reach_admin_ids(role: str) -> None:
    target = Target(contract_id=OWN, affiliation_id=None, subject_id=5, role=Role.ADMIN)
    assert check(P[role], Action.USER_UPDATE, target).effect is HIDE


@pytest.mark.parametrize("status", [ContractStatus.SUSPENDED, ContractStatus.TERMINATED])
@pytest.mark.parametrize("action", CONTRACT_ACTIONS)
def test_suspended_contract_is_read_only_for_admins(status: ContractStatus, action: Action) -> None:
    admin = Principal(Role.ADMIN, 100, "admin", OWN, "a.local", contract_status=status)
    decision = check(admin, action, Target(contract_id=OWN, affiliation_id=AFF_A))
    assert decision.allowed is (action in READ_ACTIONS)
    if not decision.allowed:
        assert status.value in decision.reason


def test_lists_are_allowed_and_narrowed_by_the_service() -> None:
    lst = Target(contract_id=OWN)
    assert check(P["user"], Action.AFFILIATION_VIEW, lst).allowed
    assert not check(P["user"], Action.USER_VIEW, lst).allowed
    for action in (Action.USER_VIEW, Action.DEVICE_VIEW, Action.AFFILIATION_VIEW):
        assert check(P["scoped"], action, lst).allowed
    assert check(P["scoped"], Action.USER_VIEW, Target(contract_id=OTHER)).effect is HIDE


def test_enforce_raises_matching_errors() -> None:
    from outbound_pro.accounts.errors import Forbidden, NotFound

    with pytest.raises(NotFound):
        check(P["admin"], Action.USER_VIEW, Target(contract_id=OTHER)).enforce()
    with pytest.raises(Forbidden):
        check(P["user"], Action.USER_CREATE, Target(contract_id=OWN)).enforce()


# -- interactions ------------------------------------------------------------------------

CLOSED = AffiliationPolicy(
    others_may_see_presence=False,
    others_may_see_customers=False,
    others_may_see_recordings=False,
    others_may_monitor=False,
    others_may_transfer_to=False,
)


@pytest.mark.parametrize("kind", list(Interaction))
@pytest.mark.parametrize(
    ("actor", "target", "policy", "result"),
    [
        ("user", UserRef(200, OWN, AFF_A), CLOSED, ALLOW),  # same affiliation
        ("user", UserRef(200, OWN, AFF_B), CLOSED, FORBID),  # other affiliation, closed
        ("user", UserRef(200, OWN, AFF_B), AffiliationPolicy(), ALLOW),  # other, open
        ("user", UserRef(200, OWN, None), None, ALLOW),  # target without affiliation
        ("user", UserRef(103, OWN, AFF_B), CLOSED, ALLOW),  # self
        ("user", UserRef(200, OTHER, AFF_A), AffiliationPolicy(), HIDE),  # other contract
        ("admin", UserRef(200, OWN, AFF_B), CLOSED, ALLOW),
        ("admin", UserRef(200, OTHER, AFF_B), AffiliationPolicy(), HIDE),
        ("scoped", UserRef(200, OWN, AFF_A), CLOSED, ALLOW),
        ("scoped", UserRef(200, OWN, AFF_B), AffiliationPolicy(), HIDE),
        ("operator", UserRef(200, OWN, AFF_A), AffiliationPolicy(), HIDE),
    ],
)
def test_interactions(
    kind: Interaction,
    actor: str,
    target: UserRef,
    policy: AffiliationPolicy | None,
    result: Effect,
) -> None:
    assert interaction(P[actor], target, kind, policy).effect is result


@pytest.mark.parametrize("kind", list(Interaction))
def test_each_flag_controls_only_its_interaction(kind: Interaction) -> None:
    flags = {
        Interaction.PRESENCE: "others_may_see_presence",
        Interaction.CUSTOMERS: "others_may_see_customers",
        Interaction.RECORDINGS: "others_may_see_recordings",
        Interaction.MONITOR: "others_may_monitor",
        Interaction.TRANSFER: "others_may_transfer_to",
    }
    policy = AffiliationPolicy(**{flags[kind]: False})
    target = UserRef(200, OWN, AFF_B)
    for other in Interaction:
        allowed = interaction(P["user"], target, other, policy).allowed
        assert allowed is (other is not kind)


def test_recordings_switched_off_for_the_actors_affiliation() -> None:
    d = interaction(
        P["user"],
        UserRef(103, OWN, AFF_A),
        Interaction.RECORDINGS,
        None,
        actor_policy=AffiliationPolicy(recordings_allowed=False),
    )
    assert d.effect is FORBID


# -- call set-up -------------------------------------------------------------------------

JST = dt.timezone(dt.timedelta(hours=9))
NOON = dt.datetime(2025, 4, 1, 12, 0, tzinfo=JST)


def call(**kw):
    args = {
        "contract_status": ContractStatus.ACTIVE,
        "id_status": IdStatus.ACTIVE,
        "policy": AffiliationPolicy(),
        "destination": "03-1234-5678",
        "now": NOON,
        "active_calls": 0,
    }
    args.update(kw)
    return call_setup(**args)


@pytest.mark.parametrize(
    ("kw", "allowed", "status", "reason"),
    [
        ({}, True, 200, "allowed"),
        ({"policy": None}, True, 200, "allowed"),
        ({"contract_status": ContractStatus.SUSPENDED}, False, 403, "suspended"),
        ({"contract_status": ContractStatus.TERMINATED}, False, 403, "terminated"),
        ({"contract_status": ContractStatus.RESTRICTED}, False, 403, "restricted"),
        ({"id_status": IdStatus.REVOKED}, False, 403, "revoked"),
        ({"id_status": IdStatus.RESTRICTED}, False, 403, "restricted"),
        ({"destination": "+12125551234"}, False, 484, "invalid destination"),
        ({"destination": "12"}, False, 484, "invalid destination"),
        ({"policy": AffiliationPolicy(outbound_allowed=False)}, False, 403, "not allowed"),
        ({"policy": AffiliationPolicy(allowed_prefixes=["06"])}, False, 403, "prefixes"),
        ({"policy": AffiliationPolicy(allowed_prefixes=["06", "03"])}, True, 200, "allowed"),
        ({"policy": AffiliationPolicy(allowed_prefixes=["+813"])}, True, 200, "allowed"),
        ({"policy": AffiliationPolicy(hours=Hours("09:00", "12:00"))}, False, 403, "hours"),
        ({"policy": AffiliationPolicy(hours=Hours("12:00", "18:00"))}, True, 200, "allowed"),
        (
            {"policy": AffiliationPolicy(max_concurrent_calls=2), "active_calls": 2},
            False,
            503,
            "limit",
        ),
        (
            {"policy": AffiliationPolicy(max_concurrent_calls=2), "active_calls": 1},
            True,
            200,
            "allowed",
        ),
        ({"policy": AffiliationPolicy(max_concurrent_calls=0)}, False, 503, "limit"),
    ],
)
def test_outbound_call_decisions(kw: dict, allowed: bool, status: int, reason: str) -> None:
    d = call(**kw)
    assert (d.allowed, d.sip_status) == (allowed, status)
    assert reason in d.reason


def test_hours_are_tokyo_time_whatever_the_input_zone() -> None:
    utc_3am = dt.datetime(2025, 4, 1, 3, 0, tzinfo=dt.UTC)  # 12:00 in Tokyo
    assert call(now=utc_3am, policy=AffiliationPolicy(hours=Hours("11:00", "13:00"))).allowed
    with pytest.raises(ValueError):
        call(now=dt.datetime(2025, 4, 1, 12, 0))


@pytest.mark.parametrize(
    ("start", "end", "hhmm", "inside"),
    [
        ("09:00", "18:00", "09:00", True),
        ("09:00", "18:00", "17:59", True),
        ("09:00", "18:00", "18:00", False),
        ("09:00", "18:00", "08:59", False),
        ("22:00", "06:00", "23:30", True),
        ("22:00", "06:00", "05:59", True),
        ("22:00", "06:00", "12:00", False),
        ("00:00", "00:00", "12:00", True),
    ],
)
def test_within_hours(start: str, end: str, hhmm: str, inside: bool) -> None:
    h, m = map(int, hhmm.split(":"))
    assert within_hours(start, end, dt.datetime(2025, 4, 1, h, m, tzinfo=JST)) is inside


def test_inbound_calls_ignore_outbound_restrictions_but_not_concurrency() -> None:
    closed = AffiliationPolicy(outbound_allowed=False, max_concurrent_calls=1)
    assert call(policy=closed, outbound=False).allowed
    assert call(contract_status=ContractStatus.RESTRICTED, outbound=False).allowed
    busy = call(policy=closed, outbound=False, active_calls=1)
    assert (busy.allowed, busy.sip_status) == (False, 486)
    assert not call(contract_status=ContractStatus.SUSPENDED, outbound=False).allowed


# -- billing -------------------------------------------------------------------------------


def test_billing_actions_are_where_the_matrix_expects_them() -> None:
    """BILLING_MANAGE is the provider's (so the provider test above covers it for every role)
    and BILLING_VIEW is a read action (so a suspended admin can still read invoices)."""
    assert Action.BILLING_MANAGE in PROVIDER_ACTIONS
    assert Action.BILLING_VIEW in READ_ACTIONS
    assert Action.BILLING_VIEW in CONTRACT_ACTIONS


@pytest.mark.parametrize("role", sorted(P))
def test_billing_view_of_own_and_other_contract(role: str) -> None:
    own = check(P[role], Action.BILLING_VIEW, Target(contract_id=OWN)).effect
    other = check(P[role], Action.BILLING_VIEW, Target(contract_id=OTHER)).effect
    assert own is {"operator": ALLOW, "admin": ALLOW}.get(role, FORBID)
    assert other is (ALLOW if role == "operator" else HIDE)


@pytest.mark.parametrize("role", ["admin", "subadmin", "scoped", "user"])
def test_billing_manage_on_a_contract_is_refused_to_contract_ids(role: str) -> None:
    decision = check(P[role], Action.BILLING_MANAGE, Target(contract_id=OWN))
    assert decision.effect is FORBID
    assert check(P["operator"], Action.BILLING_MANAGE, Target(contract_id=OWN)).allowed


def test_terminated_contract_admin_still_reads_invoices() -> None:
    admin = Principal(
        Role.ADMIN, 100, "admin", OWN, "a.local", contract_status=ContractStatus.TERMINATED
    )
    assert check(admin, Action.BILLING_VIEW, Target(contract_id=OWN)).allowed
