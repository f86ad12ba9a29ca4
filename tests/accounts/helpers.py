"""Builders shared by the accounts, registrar and web tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from outbound_pro.accounts.models import Contract, Identity
from outbound_pro.accounts.passwords import ScryptParams, prepare_password
from outbound_pro.accounts.policy import SYSTEM
from outbound_pro.accounts.service import AccountService, Actor
from outbound_pro.store import Database, open_database

# Cheap scrypt for tests: the encoded hash carries its parameters, so verification works the
# same; test_passwords checks the production defaults separately.
FAST = ScryptParams(n=2**8, r=8, p=1)
CONSOLE = Actor(SYSTEM, "test")


def pw(plain: str | None = None):
    return prepare_password(plain, FAST)


class Clock:
    """A settable UTC clock for the service."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2025, 4, 1, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class World:
    db: Database
    svc: AccountService
    clock: Clock


def make_world(tmp_path: Path) -> World:
    db = open_database(tmp_path / "db.sqlite3")
    clock = Clock()
    return World(db, AccountService(db, clock=clock), clock)


def active_contract(
    svc: AccountService, domain: str = "example.op.local", admin_password: str = "admin-pass-1"
) -> tuple[Contract, str]:
    c = svc.apply_contract(CONSOLE, name=f"Corp {domain}", email="ops@example.jp", domain=domain)
    issued = svc.approve_contract(
        CONSOLE, c.id, admin_login="admin", admin_password=pw(admin_password)
    )
    contract = svc.get_contract(CONSOLE, c.id)
    return contract, issued.password


def user(
    svc: AccountService,
    contract_id: int,
    login: str,
    *,
    password: str = "user-pass-1",
    numbers: tuple[str, ...] = (),
    affiliation_id: int | None = None,
) -> Identity:
    return svc.create_user(
        CONSOLE,
        contract_id,
        login=login,
        password=pw(password),
        numbers=numbers,
        affiliation_id=affiliation_id,
    )
