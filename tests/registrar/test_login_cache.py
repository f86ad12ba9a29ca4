"""The registrar's ID look-up (`SipLogins`) and its change detection.

Removed IDs are held in memory and reloaded when `ChangeWatch` sees the database change. These
tests make the changes the way the CLI does, from a second connection to the same file, and the
way the admin API does, on the registrar's own connection, and check each counts at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outbound_pro.accounts.digest import DigestAuthenticator, ParseError, parse_auth_params
from outbound_pro.accounts.service import AccountService
from outbound_pro.registrar.core import Registrar, RegistrarLimits
from outbound_pro.store import open_database
from outbound_pro.store.accounts import SipLogins
from outbound_pro.store.db import ChangeWatch
from tests.accounts.helpers import CONSOLE, World, active_contract, make_world, pw, user
from tests.registrar.test_registrar import DOMAIN, T0, Phone, register


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    c, _ = active_contract(world.svc, DOMAIN)
    user(world.svc, c.id, "booth01", numbers=("03-1234-5678",))
    return world


@pytest.fixture
def reg(w: World) -> Registrar:
    return Registrar(
        w.db,
        DigestAuthenticator(b"k" * 32),
        limits=RegistrarLimits(min_expires=60, max_expires=3600),
    )


@pytest.fixture
def cli(tmp_path: Path, w: World) -> Iterator[AccountService]:
    """A second connection to the same file, as `outbound-pro user revoke` would open."""
    db = open_database(tmp_path / "db.sqlite3")
    yield AccountService(db, clock=w.clock)
    db.close()


def status(out) -> int | None:  # type: ignore[no-untyped-def]
    return None if out.response is None else out.response.status


def booth01_id(svc: AccountService) -> int:
    ident = svc.store.identity_by_login(1, "booth01")
    assert ident is not None
    return ident.id


def test_revocation_by_another_process_counts_at_once(
    reg: Registrar, w: World, cli: AccountService
) -> None:
    assert status(register(reg, Phone())) == 200
    cli.revoke_id(CONSOLE, booth01_id(cli))
    # The right password of a revoked ID: refused outright, not challenged again.
    assert status(register(reg, Phone())) == 403
    assert w.db.scalar("SELECT COUNT(*) FROM sip_bindings") == 0


def test_suspension_and_reinstatement_by_another_process(
    reg: Registrar, cli: AccountService
) -> None:
    assert status(register(reg, Phone())) == 200
    cli.suspend_contract(CONSOLE, 1, reason="unpaid")
    assert status(register(reg, Phone())) == 403
    cli.reinstate_contract(CONSOLE, 1, reason="paid")
    assert status(register(reg, Phone())) == 200


def test_revocation_on_the_same_connection_counts_at_once(reg: Registrar, w: World) -> None:
    """The admin API shares the registrar's connection: `total_changes` catches its writes."""
    phone = Phone()
    assert status(register(reg, phone)) == 200
    assert status(register(reg, phone)) == 200  # the removed-ID map is loaded and in use
    w.svc.revoke_id(CONSOLE, booth01_id(w.svc))
    assert status(register(reg, phone)) == 403


def test_a_new_id_reusing_a_revoked_login_registers(
    reg: Registrar, w: World, cli: AccountService
) -> None:
    cli.revoke_id(CONSOLE, booth01_id(cli))
    assert status(register(reg, Phone())) == 403
    cli.create_user(CONSOLE, 1, login="booth01", password=pw("user-pass-2"))
    assert status(register(reg, Phone(password="user-pass-2"))) == 200
    # and the old password, which was the revoked ID's, no longer works at all
    assert status(register(reg, Phone())) == 401


def test_a_cached_login_follows_a_new_sip_password_at_once(
    reg: Registrar, w: World, cli: AccountService
) -> None:
    phone = Phone()
    assert status(register(reg, phone)) == 200
    statements: list[str] = []
    w.db.conn.set_trace_callback(statements.append)
    try:
        assert status(register(reg, phone)) == 200
    finally:
        w.db.conn.set_trace_callback(None)
    assert not any("JOIN ids" in sql for sql in statements)  # the ID came from memory
    cli.set_sip_password(CONSOLE, booth01_id(cli), "Sip-Secret-2024!x")
    assert status(register(reg, phone)) == 401  # the old secret stopped working at once
    phone.password = "Sip-Secret-2024!x"
    assert status(register(reg, phone)) == 200


def test_an_aors_rows_come_from_memory_until_another_writer_changes_them(
    tmp_path: Path, reg: Registrar, w: World
) -> None:
    phone = Phone()
    register(reg, phone, contacts=["<sip:booth01@10.0.0.5:5062>"])
    statements: list[str] = []
    w.db.conn.set_trace_callback(statements.append)
    try:
        out = register(reg, phone, contacts=["<sip:booth01@10.0.0.6:5062>"])
    finally:
        w.db.conn.set_trace_callback(None)
    assert not any("SELECT" in sql and "sip_bindings" in sql for sql in statements)
    assert out.response is not None and len(out.response.get_all("contact")) == 2
    other = open_database(tmp_path / "db.sqlite3")  # the CLI, or a second server process
    try:
        other.execute("DELETE FROM sip_bindings WHERE contact LIKE '%10.0.0.5%'")
    finally:
        other.close()
    out = register(reg, phone, contacts=["<sip:booth01@10.0.0.7:5062>"])
    assert out.response is not None
    assert [c.split(";")[0] for c in out.response.get_all("contact")] == [
        "<sip:booth01@10.0.0.6:5062>",
        "<sip:booth01@10.0.0.7:5062>",
    ]
    w.db.execute("DELETE FROM sip_bindings")  # the expiry purge or the API, same connection
    out = register(reg, phone, contacts=["<sip:booth01@10.0.0.8:5062>"])
    assert out.response is not None
    assert out.response.get_all("contact") == ["<sip:booth01@10.0.0.8:5062>;expires=3600"]


def test_own_binding_writes_keep_the_cache(reg: Registrar, w: World) -> None:
    register(reg, Phone())
    # A REGISTER's own write was absorbed: nothing changed that the look-up depends on.
    assert not reg.logins.watch.changed()
    user(w.svc, 1, "booth02")
    assert reg.logins.watch.changed()


def test_change_watch_sees_other_connections_and_own_writes(tmp_path: Path, w: World) -> None:
    watch = ChangeWatch(w.db)
    assert watch.changed()  # first look
    assert not watch.changed()
    other = open_database(tmp_path / "db.sqlite3")
    try:
        active_contract(AccountService(other, clock=w.clock), "other.op.local")
    finally:
        other.close()
    assert watch.changed()
    assert not watch.changed()
    w.db.execute("UPDATE contracts SET status_reason = 'x' WHERE id = 1")
    assert watch.changed()
    w.db.execute("UPDATE contracts SET status_reason = 'y' WHERE id = 1")
    watch.absorb()
    assert not watch.changed()


def test_sip_logins_matches_sip_secrets(w: World) -> None:
    """Same answer as the general-purpose look-up, for live, revoked and unknown logins."""
    logins = SipLogins(w.db)
    user(w.svc, 1, "booth02")
    w.svc.revoke_id(CONSOLE, booth01_id(w.svc))
    for login in ("booth01", "booth02", "nobody", "admin"):
        found = logins.find(DOMAIN, login)
        secrets = w.svc.store.sip_secrets(1, login)
        if secrets is None:
            assert found is None
            continue
        assert found is not None
        assert (found.id, found.contract_id, found.status, found.ha1_md5, found.ha1_sha256) == (
            secrets.id,
            secrets.contract_id,
            secrets.status.value,
            secrets.ha1_md5,
            secrets.ha1_sha256,
        )
    assert logins.find("unknown.op.local", "booth02") is None


def test_register_reads_its_bindings_once_and_commits(reg: Registrar, w: World) -> None:
    """The 200 lists the bindings as written, in row order, and they are committed."""
    phone = Phone()
    out = register(
        reg, phone, contacts=["<sip:booth01@10.0.0.5:5062>", "<sip:booth01@10.0.0.6:5062>;q=0.5"]
    )
    assert out.response is not None
    listed = out.response.get_all("contact")
    out = register(reg, phone, contacts=["<sip:booth01@10.0.0.7:5062>"], now=T0 + 1)
    assert out.response is not None
    assert out.response.get_all("contact") == [
        "<sip:booth01@10.0.0.5:5062>;expires=3599",
        "<sip:booth01@10.0.0.6:5062>;expires=3599;q=0.5",
        "<sip:booth01@10.0.0.7:5062>;expires=3600",
    ]
    assert listed[0] == "<sip:booth01@10.0.0.5:5062>;expires=3600"
    assert not w.db.conn.in_transaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('a="x\\"y, z", b=c', {"a": 'x"y, z', "b": "c"}),
        ("a=b c=d", {"a": "b", "c": "d"}),  # commas may be missing
        (" ,a=b,,\tc=, ", {"a": "b", "c": ""}),
        ('a="x"b=c', {"a": "x", "b": "c"}),
        ("A=1", {"a": "1"}),
        ("a=b\r\n", {"a": "b\r\n"}),  # a plain value ends at a comma or blank only
    ],
)
def test_auth_params(text: str, expected: dict[str, str]) -> None:
    assert parse_auth_params(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('a="unterminated', "unterminated quoted string"),
        ('a="x=y', "unterminated quoted string"),
        ("A=1, a=2", "duplicate parameter a"),
        ("x a=b", "expected key=value at 0"),
        ("a=b, =c", "expected key=value at 5"),
    ],
)
def test_auth_params_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_auth_params(text)
