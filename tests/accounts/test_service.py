from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from outbound_pro.accounts.errors import Conflict, Forbidden, InvalidInput, NotFound
from outbound_pro.accounts.models import (
    AffiliationPolicy,
    ContractStatus,
    Hours,
    IdStatus,
    Role,
)
from outbound_pro.accounts.passwords import verify_password
from outbound_pro.accounts.policy import Principal
from outbound_pro.accounts.service import Actor
from outbound_pro.registrar.model import Binding
from outbound_pro.store.registrar import RegistrarStore
from tests.accounts.helpers import CONSOLE, World, active_contract, make_world, pw, user


@pytest.fixture
def w(tmp_path: Path) -> World:
    return make_world(tmp_path)


def actor_for(w: World, id_id: int) -> Actor:
    p = w.svc.principal_for_id(id_id)
    assert p is not None
    return Actor(p, "192.0.2.1")


def test_applications_are_decided_in_order_received(w: World) -> None:
    a = w.svc.apply_contract(CONSOLE, name="A", email="a@a.jp", domain="A.example.jp")
    b = w.svc.apply_contract(CONSOLE, name="B", email="b@b.jp", domain="b.example.jp")
    assert a.domain == "a.example.jp" and a.status is ContractStatus.APPLIED
    with pytest.raises(Conflict, match=f"application {a.id}"):
        w.svc.approve_contract(CONSOLE, b.id, admin_login="admin", admin_password=pw("pass-word-1"))
    with pytest.raises(Conflict):
        w.svc.refuse_contract(CONSOLE, b.id, reason="no")
    refused = w.svc.refuse_contract(CONSOLE, a.id, reason="credit check failed")
    assert refused.status is ContractStatus.REFUSED
    assert refused.refusal_reason == "credit check failed"
    issued = w.svc.approve_contract(
        CONSOLE, b.id, admin_login="boss", admin_password=pw("pass-word-1")
    )
    assert issued.login == "boss" and issued.password == "pass-word-1"
    contract = w.svc.get_contract(CONSOLE, b.id)
    assert contract.status is ContractStatus.ACTIVE and contract.start_date == dt.date(2025, 4, 1)
    admins = w.svc.store.list_identities(b.id, Role.ADMIN)
    assert len(admins) == 1
    with pytest.raises(Conflict):  # approving twice does not issue a second admin
        w.svc.approve_contract(CONSOLE, b.id, admin_login="x", admin_password=pw("pass-word-2"))
    notices = w.svc.notices(CONSOLE, b.id)
    assert "approved" in notices[0]["subject"]
    assert "pass-word-1" not in notices[0]["body"]


def test_domain_is_unique_and_validated(w: World) -> None:
    active_contract(w.svc, "x.local")
    with pytest.raises(Conflict):
        w.svc.apply_contract(CONSOLE, name="X", email="x@x.jp", domain="X.LOCAL")
    with pytest.raises(InvalidInput) as e:
        w.svc.apply_contract(CONSOLE, name="X", email="x@x.jp", domain="bad domain")
    assert e.value.field == "domain"
    with pytest.raises(InvalidInput) as e:
        w.svc.apply_contract(CONSOLE, name="X", email="nope", domain="y.local")
    assert e.value.field == "email"


def test_lifecycle_transitions(w: World) -> None:
    c, _ = active_contract(w.svc)
    s = w.svc
    assert s.restrict_contract(CONSOLE, c.id, reason="breach").status is ContractStatus.RESTRICTED
    assert s.suspend_contract(CONSOLE, c.id, reason="attack", emergency=True).status is (
        ContractStatus.SUSPENDED
    )
    with pytest.raises(Conflict, match="suspend needs"):
        s.suspend_contract(CONSOLE, c.id, reason="again")
    assert s.reinstate_contract(CONSOLE, c.id, reason="fixed").status is ContractStatus.ACTIVE
    t = s.terminate_contract(CONSOLE, c.id, end_date=dt.date(2025, 9, 30), reason="ended")
    assert t.status is ContractStatus.TERMINATED and t.end_date == dt.date(2025, 9, 30)
    with pytest.raises(Conflict):
        s.reinstate_contract(CONSOLE, c.id, reason="no way back")
    subjects = [n["body"] for n in s.notices(CONSOLE, c.id)]
    assert any("emergency" in b for b in subjects)


def test_user_lifecycle_numbers_and_revocation(w: World) -> None:
    c, _ = active_contract(w.svc)
    u = user(w.svc, c.id, "booth01", numbers=("03-1234-5678", "090-1234-5678"))
    assert u.numbers == ["+81312345678", "+819012345678"]
    secrets = w.svc.store.secrets_by_id(u.id)
    assert secrets is not None and secrets.ha1_md5 and secrets.ha1_sha256
    assert "user-pass-1" not in repr(secrets.__struct_fields__)
    with pytest.raises(Conflict):
        user(w.svc, c.id, "booth01")
    with pytest.raises(Conflict, match="in use"):
        user(w.svc, c.id, "booth02", numbers=("0312345678",))
    # a second contract cannot take the number either, and learns nothing but "in use"
    c2, _ = active_contract(w.svc, "other.local")
    with pytest.raises(Conflict) as e:
        user(w.svc, c2.id, "booth01", numbers=("+81312345678",))
    assert "example" not in str(e.value)
    assert w.svc.number_owner("03-1234-5678").login == "booth01"  # type: ignore[union-attr]
    w.svc.unbind_number(CONSOLE, u.id, "090-1234-5678")
    with pytest.raises(NotFound):
        w.svc.unbind_number(CONSOLE, u.id, "090-1234-5678")
    # bindings and sessions end with revocation
    RegistrarStore(w.db).apply(
        [
            Binding(
                c.id,
                u.id,
                "sip:booth01@example.op.local",
                "sip:booth01@10.0.0.1",
                1.0,
                9e9,
                "cid",
                1,
                "udp",
                "203.0.113.1",
                5060,
            )
        ],
        [],
    )
    w.svc.store.insert_session("h", "id", u.id, 0, 9e9, 9e9, "x")
    revoked = w.svc.revoke_id(CONSOLE, u.id)
    assert revoked.status is IdStatus.REVOKED and revoked.removed_at is not None
    assert w.db.scalar("SELECT COUNT(*) FROM sip_bindings") == 0
    assert w.svc.store.get_session("h") is None
    assert w.svc.number_owner("0312345678") is None
    # the login can be reused by a new booth after revocation
    again = user(w.svc, c.id, "booth01", numbers=("0312345678",))
    assert again.id != u.id


def test_suspension_removes_bindings_of_the_contract_only(w: World) -> None:
    c, _ = active_contract(w.svc)
    c2, _ = active_contract(w.svc, "other.local")
    u1, u2 = user(w.svc, c.id, "a"), user(w.svc, c2.id, "b")
    store = RegistrarStore(w.db)
    for cid, uid in ((c.id, u1.id), (c2.id, u2.id)):
        store.apply(
            [
                Binding(
                    cid,
                    uid,
                    "sip:x@y",
                    "sip:x@10.0.0.1",
                    1.0,
                    9e9,
                    "c",
                    1,
                    "udp",
                    "203.0.113.1",
                    5060,
                )
            ],
            [],
        )
    w.svc.suspend_contract(CONSOLE, c.id, reason="unpaid")
    assert [b.id_id for b in store.live_for_contract(c2.id, 0)] == [u2.id]
    assert store.live_for_contract(c.id, 0) == []


def test_admin_scope_and_other_contract_isolation(w: World) -> None:
    c, _ = active_contract(w.svc)
    c2, _ = active_contract(w.svc, "other.local")
    sales = w.svc.create_affiliation(CONSOLE, c.id, name="sales")
    support = w.svc.create_affiliation(CONSOLE, c.id, name="support")
    u_sales = user(w.svc, c.id, "s1", affiliation_id=sales.id)
    u_support = user(w.svc, c.id, "p1", affiliation_id=support.id)
    foreign = user(w.svc, c2.id, "f1")
    admin = actor_for(w, w.svc.store.list_identities(c.id, Role.ADMIN)[0].id)
    with pytest.raises(NotFound):
        w.svc.get_id(admin, foreign.id)
    with pytest.raises(NotFound):
        w.svc.revoke_id(admin, foreign.id)
    with pytest.raises(NotFound):
        w.svc.list_ids(admin, c2.id)
    sub = w.svc.create_subadmin(
        admin, c.id, login="lead", password=pw("lead-pass-1"), scope=[sales.id]
    )
    assert sub.scope == [sales.id]
    lead = actor_for(w, sub.id)
    assert [i.login for i in w.svc.list_ids(lead, c.id)] == ["s1"]
    assert [a.name for a in w.svc.list_affiliations(lead, c.id)] == ["sales"]
    with pytest.raises(NotFound):
        w.svc.get_id(lead, u_support.id)
    with pytest.raises(Forbidden):
        user_actor = lead
        w.svc.create_user(
            user_actor, c.id, login="x1", password=pw("pass-word-1"), affiliation_id=support.id
        )
    with pytest.raises(Forbidden):
        w.svc.update_user(lead, u_sales.id, affiliation_id=support.id)
    with pytest.raises(Forbidden):
        w.svc.create_subadmin(lead, c.id, login="x2", password=pw("pass-word-1"))
    created = w.svc.create_user(
        lead, c.id, login="s2", password=pw("pass-word-1"), affiliation_id=sales.id
    )
    assert created.affiliation_id == sales.id
    # the scoped sub-admin's audit view holds only its affiliations' entries
    entries = w.svc.list_audit(lead, c.id)
    assert entries and all(e.affiliation_id == sales.id for e in entries)
    # a user sees only itself
    me = actor_for(w, u_sales.id)
    assert w.svc.get_id(me, u_sales.id).login == "s1"
    with pytest.raises(Forbidden):
        w.svc.get_id(me, u_support.id)


def test_affiliations_policy_validation_and_delete(w: World) -> None:
    c, _ = active_contract(w.svc)
    a = w.svc.create_affiliation(
        CONSOLE,
        c.id,
        name="sales",
        policy=AffiliationPolicy(allowed_prefixes=["03", "0120"], hours=Hours("09:00", "18:00")),
    )
    assert a.policy.allowed_prefixes == ["+813", "+81120"]
    with pytest.raises(InvalidInput) as e:
        w.svc.update_affiliation(CONSOLE, a.id, policy=AffiliationPolicy(allowed_prefixes=["x"]))
    assert e.value.field == "policy.allowed_prefixes[0]"
    with pytest.raises(InvalidInput) as e:
        w.svc.update_affiliation(CONSOLE, a.id, policy=AffiliationPolicy(hours=Hours("9", "x")))
    assert e.value.field == "policy.hours.start"
    u = user(w.svc, c.id, "booth01", affiliation_id=a.id)
    with pytest.raises(Conflict, match="move them"):
        w.svc.delete_affiliation(CONSOLE, a.id)
    w.svc.update_user(CONSOLE, u.id, affiliation_id=None)
    w.svc.delete_affiliation(CONSOLE, a.id)
    with pytest.raises(NotFound):
        w.svc.get_affiliation(CONSOLE, a.id)
    assert w.svc.create_affiliation(CONSOLE, c.id, name="sales").id != a.id


def test_devices_and_usage_units_keep_dates(w: World) -> None:
    c, _ = active_contract(w.svc)
    u = user(w.svc, c.id, "booth01", numbers=("0312345678", "0312345679"))
    with pytest.raises(InvalidInput, match="not bound"):
        w.svc.create_device(CONSOLE, c.id, name="p1", numbers=["0611112222"])
    d = w.svc.create_device(CONSOLE, c.id, name="p1", numbers=["03-1234-5678"])
    d = w.svc.add_device_account(CONSOLE, d.id, "0312345679")
    assert [a.e164 for a in d.accounts] == ["+81312345678", "+81312345679"]
    with pytest.raises(Conflict):
        w.svc.add_device_account(CONSOLE, d.id, "0312345679")
    w.clock.now += dt.timedelta(days=40)
    w.svc.remove_device_account(CONSOLE, d.id, "0312345679")
    w.svc.revoke_id(CONSOLE, u.id)  # also ends the remaining SIP account on the device
    w.svc.delete_device(CONSOLE, d.id)
    units = {(x.kind, x.ref): x for x in w.svc.usage_units(CONSOLE, c.id)}
    booth = units[("booth", "booth01")]
    assert booth.added_at.date() == dt.date(2025, 4, 1)
    assert booth.removed_at is not None and booth.removed_at.date() == dt.date(2025, 5, 11)
    assert units[("sip_channel", "p1")].removed_at is not None
    assert units[("sip_account", "p1/+81312345679")].removed_at is not None


def test_passwords_and_login_rules(w: World) -> None:
    c, admin_pw = active_contract(w.svc)
    u = user(w.svc, c.id, "booth01")
    contract, secrets = w.svc.login_candidate("EXAMPLE.op.local", "booth01")  # type: ignore[misc]
    assert verify_password("user-pass-1", secrets.password_hash)
    assert w.svc.login_allowed(contract, secrets) is None
    w.svc.reset_password(CONSOLE, u.id, pw("new-pass-99"), sip_password="sip-secret-1")
    _, secrets2 = w.svc.login_candidate("example.op.local", "booth01")  # type: ignore[misc]
    assert verify_password("new-pass-99", secrets2.password_hash)
    assert secrets2.ha1_md5 != secrets.ha1_md5
    with pytest.raises(InvalidInput):
        w.svc.reset_password(CONSOLE, u.id, pw("short"))
    w.svc.suspend_contract(CONSOLE, c.id, reason="x")
    contract = w.svc.get_contract(CONSOLE, c.id)
    assert w.svc.login_allowed(contract, secrets2) == "the contract is suspended"
    admin = w.svc.store.secrets_by_login(c.id, "admin")
    assert admin is not None and w.svc.login_allowed(contract, admin) is None
    assert w.svc.principal_for_id(u.id) is None
    reissued = w.svc.reissue_admin(CONSOLE, c.id, pw(None))
    assert reissued.password != admin_pw


def test_operator_principal_cannot_manage_ids(w: World) -> None:
    c, _ = active_contract(w.svc)
    op = w.svc.create_operator(CONSOLE, "ops", pw("operator-pass"))
    principal = w.svc.principal_for_operator(op.id)
    assert principal == Principal(Role.OPERATOR, op.id, "ops")
    actor = Actor(principal, "192.0.2.9")
    with pytest.raises(Forbidden):
        w.svc.list_ids(actor, c.id)
    assert w.svc.list_contracts(actor)[0].id == c.id


def test_every_change_is_audited_with_actor_and_source(w: World) -> None:
    c, _ = active_contract(w.svc)
    admin = actor_for(w, w.svc.store.list_identities(c.id, Role.ADMIN)[0].id)
    u = w.svc.create_user(admin, c.id, login="b1", password=pw("pass-word-1"))
    w.svc.update_user(admin, u.id, status=IdStatus.RESTRICTED)
    w.svc.record_login(
        "198.51.100.7", "example.op.local/b1", ok=False, contract_id=c.id, reason="bad credentials"
    )
    entries = w.svc.list_audit(admin, c.id)
    assert [e.action for e in entries[:3]] == ["login", "user.update", "user.create"]
    assert entries[0].outcome == "failed" and entries[0].source == "198.51.100.7"
    assert entries[1].actor == "admin:admin@example.op.local"
    assert entries[1].source == "192.0.2.1"
    assert all("pass-word-1" not in str(e.detail) for e in entries)
