"""A contract built through the accounts service on chosen dates, and its usage-file twin.

The scenario is the worked example of docs/billing.md (5 booths from 2026-04-10, one removed
on 07-20, a 49-hour outage in July) plus what only the database has: a sub-admin ID and an
affiliation added in May and a SIP device with one number added in June. The same history is
written by hand as a usage file, so an invoice from the database can be compared with one from
the file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from outbound_pro.billing.ledger import BillingService
from outbound_pro.billing.model import Issuer, Outage
from outbound_pro.billing.months import TOKYO
from tests.accounts.helpers import CONSOLE, World, make_world, pw, user

ISSUER = Issuer(name="Example Telecom K.K.", registration_number="T1234567890123")
CONFIG_BILLING = """
[billing]
issuer_name = "Example Telecom K.K."
registration_number = "T1234567890123"
"""


def jst(y: int, m: int, d: int, hh: int = 10) -> dt.datetime:
    return dt.datetime(y, m, d, hh, 0, tzinfo=TOKYO)


@dataclass
class Scenario:
    w: World
    contract_id: int
    other_id: int
    billing: BillingService


USAGE_FILE = """{"contract": "C-%(id)d", "customer_name": "Corp a.local",
 "service_start": "2026-04-10", "service_end": null,
 "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 5},
             {"date": "2026-05-15", "unit": "affiliation", "delta": 1},
             {"date": "2026-05-15", "unit": "sub_admin_id", "delta": 1},
             {"date": "2026-06-03", "unit": "sip_device", "delta": 1},
             {"date": "2026-06-03", "unit": "sip_number", "delta": 1},
             {"date": "2026-07-20", "unit": "booth", "delta": -1}],
 "outages": [{"recognised": "2026-07-01T09:00:00+09:00",
              "restored": "2026-07-03T10:00:00+09:00"}]}
"""


def build(tmp_path: Path) -> Scenario:
    w = make_world(tmp_path)
    svc, clock = w.svc, w.clock
    # Applied and set up the day before service starts: units created then count from the
    # start date.
    clock.now = jst(2026, 4, 9)
    c = svc.apply_contract(
        CONSOLE, name="Corp a.local", email="billing@a.example.jp", domain="a.local"
    )
    svc.approve_contract(
        CONSOLE,
        c.id,
        admin_login="admin",
        admin_password=pw("admin-a-pass"),
        start_date=dt.date(2026, 4, 10),
    )
    booths = [user(svc, c.id, f"booth{n:02d}") for n in range(1, 5)]
    clock.now = jst(2026, 4, 10)
    booths.append(user(svc, c.id, "booth05", numbers=("0312345678",)))
    clock.now = jst(2026, 5, 15)
    svc.create_affiliation(CONSOLE, c.id, name="sales")
    svc.create_subadmin(CONSOLE, c.id, login="sub01", password=pw("sub-pass-01"))
    clock.now = jst(2026, 6, 3)
    svc.create_device(CONSOLE, c.id, name="phone-1", numbers=["0312345678"])
    clock.now = jst(2026, 7, 20, 18)
    svc.revoke_id(CONSOLE, booths[0].id)
    # A second contract, billed separately, to prove contracts do not leak into each other.
    clock.now = jst(2026, 5, 1)
    o = svc.apply_contract(CONSOLE, name="Corp b.local", email="ops@b.example.jp", domain="b.local")
    svc.approve_contract(
        CONSOLE,
        o.id,
        admin_login="admin",
        admin_password=pw("admin-b-pass"),
        start_date=dt.date(2026, 5, 1),
    )
    user(svc, o.id, "booth01")
    clock.now = jst(2026, 8, 1, 9)
    billing = BillingService(w.db, issuer=ISSUER, clock=clock)
    billing.record_outage(
        CONSOLE,
        c.id,
        Outage(recognised=jst(2026, 7, 1, 9), restored=jst(2026, 7, 3, 10)),
    )
    return Scenario(w, c.id, o.id, billing)


def usage_file(tmp_path: Path, contract_id: int) -> Path:
    path = tmp_path / "usage.json"
    path.write_text(USAGE_FILE % {"id": contract_id}, encoding="utf-8")
    return path


def as_data_dir(s: Scenario, tmp_path: Path) -> Path:
    """Close the scenario's database and move it where the CLI looks for it."""
    s.w.db.close()
    for suffix in ("", "-wal", "-shm"):
        src = tmp_path / f"db.sqlite3{suffix}"
        if src.exists():
            src.rename(tmp_path / f"outbound-pro.sqlite3{suffix}")
    return tmp_path


def write_config(
    tmp_path: Path, data_dir: Path, smtp: str = "", name: str = "outbound-pro.toml"
) -> Path:
    path = tmp_path / name
    path.write_text(f'data_dir = "{data_dir}"\n{CONFIG_BILLING}\n{smtp}', encoding="utf-8")
    return path
