"""Invoices from the accounts database: equal to the usage file's, stored immutably, corrected
only by credit notes; payments, late interest, the liability cap and outages."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import pytest

from outbound_pro.accounts.errors import Conflict, InvalidInput, NotFound
from outbound_pro.billing.cli import main
from outbound_pro.billing.invoice import compute_invoice
from outbound_pro.billing.ledger import due_date_for
from outbound_pro.billing.model import Outage
from outbound_pro.billing.months import BillingMonth
from outbound_pro.billing.render import to_json
from outbound_pro.billing.tariff import packaged_tariff
from outbound_pro.billing.usage import decode_usage
from outbound_pro.store.billing import InvoiceExists
from tests.accounts.helpers import CONSOLE
from tests.billing_db.helpers import ISSUER, build, jst, usage_file

JULY = BillingMonth(2026, 7)
ISSUE = dt.date(2026, 8, 1)


@pytest.fixture
def s(tmp_path):
    return build(tmp_path)


def test_usage_from_the_database_matches_the_accounts_history(s):
    usage = s.billing.usage(CONSOLE, s.contract_id)
    assert usage.contract == f"C-{s.contract_id}"
    assert usage.service_start == dt.date(2026, 4, 10)
    net: dict[tuple[str, str], int] = {}
    for change in usage.changes:
        net[(str(change.date), change.unit)] = net.get((str(change.date), change.unit), 0) + (
            change.delta
        )
    # booths created on 04-09 (before service start) count from the start date
    assert net == {
        ("2026-04-10", "booth"): 5,
        ("2026-05-15", "affiliation"): 1,
        ("2026-05-15", "sub_admin_id"): 1,
        ("2026-06-03", "sip_device"): 1,
        ("2026-06-03", "sip_number"): 1,
        ("2026-07-20", "booth"): -1,
    }
    assert all(change.id for change in usage.changes)
    assert len(usage.outages) == 1


@pytest.mark.parametrize("month", ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08"])
def test_invoice_from_database_equals_invoice_from_usage_file(s, tmp_path, month):
    tariff = packaged_tariff()
    m = BillingMonth.parse(month)
    from_db = s.billing.preview(CONSOLE, s.contract_id, m, issue_date=None)
    file_usage = decode_usage(usage_file(tmp_path, s.contract_id).read_bytes(), tariff)
    from_file = compute_invoice(file_usage, m, tariff=tariff, issuer=ISSUER)
    assert to_json(from_db) == to_json(from_file)


def test_july_by_hand(s):
    """5 booths x 8,000 (the one removed 07-20 pays July in full) + server 3,000 + sub-admin
    5,000 + affiliation 15,000 + SIP base 500 + SIP channel 800 + SIP account 200 + SIP
    terminal recording 500 (per device) = 65,000 of monthly fees; minimum period of the
    removed booth: Aug-Oct = 3 x 8,000 = 24,000; outage 49 h = 2 days: 65,000 x 2 / 30 =
    4,333.33 -> 4,333. Subtotal 84,667, tax 8,466.7 -> 8,466, total 93,133."""
    invoice = s.billing.preview(CONSOLE, s.contract_id, JULY, issue_date=ISSUE)
    amounts = {line.code: line.amount for line in invoice.lines}
    assert amounts["booth"] == 40_000
    assert amounts["booth_minimum_period"] == 24_000
    assert amounts["sip_recording"] == 500
    assert amounts["outage_credit"] == -4_333
    assert (invoice.subtotal, invoice.tax, invoice.total) == (84_667, 8_466, 93_133)


def test_cli_invoice_from_database_prints_what_the_usage_file_prints(s, tmp_path, capsys):
    data_dir = tmp_path  # make_world put db.sqlite3 here; the CLI wants outbound-pro.sqlite3
    s.w.db.close()
    (tmp_path / "db.sqlite3").rename(tmp_path / "outbound-pro.sqlite3")
    for suffix in ("-wal", "-shm"):
        if (tmp_path / f"db.sqlite3{suffix}").exists():
            (tmp_path / f"db.sqlite3{suffix}").rename(tmp_path / f"outbound-pro.sqlite3{suffix}")
    common = ["billing", "invoice", "--month", "2026-07", "--json"]
    issuer = ["--issuer-name", ISSUER.name, "--registration-number", ISSUER.registration_number]
    assert (
        main([*common, "--contract", str(s.contract_id), "--data-dir", str(data_dir), *issuer]) == 0
    )
    from_db = capsys.readouterr()
    assert "draft" in from_db.err
    path = usage_file(tmp_path, s.contract_id)
    assert main([*common, "--usage", str(path), *issuer]) == 0
    assert json.loads(from_db.out) == json.loads(capsys.readouterr().out)


def test_issue_is_idempotent_and_stored_invoice_is_what_was_computed(s):
    first = s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=ISSUE)
    again = s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=dt.date(2026, 8, 5))
    assert first.created and not again.created
    assert again.stored.invoice == first.stored.invoice
    assert first.stored.number == f"C-{s.contract_id}-202607"
    assert first.stored.due_date == dt.date(2026, 8, 31)
    assert len(s.billing.invoices(CONSOLE, s.contract_id)) == 1
    expected = s.billing.preview(CONSOLE, s.contract_id, JULY, issue_date=ISSUE)
    assert s.billing.invoice(CONSOLE, first.stored.number).invoice == expected


def test_issuing_before_the_month_is_over_is_refused(s):
    with pytest.raises(InvalidInput) as exc:
        s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=dt.date(2026, 7, 31))
    assert exc.value.field == "issue_date"


def test_issued_invoice_cannot_be_changed_only_cancelled_and_reissued(s):
    number = s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=ISSUE).stored.number
    # The store refuses a second document in the same slot or with the same number...
    stored = s.billing.invoice(CONSOLE, number)
    with pytest.raises(InvoiceExists, match=r"UNIQUE"):
        s.billing.store.insert_invoice(
            s.contract_id, stored.invoice, revision=0, due_date=stored.due_date, at=jst(2026, 8, 2)
        )
    # ...and a late outage does not change it: the operator is told to correct it.
    result = s.billing.record_outage(
        CONSOLE, s.contract_id, Outage(recognised=jst(2026, 7, 10, 0), restored=jst(2026, 7, 14, 1))
    )
    assert number in result.warning
    assert s.billing.invoice(CONSOLE, number).invoice == stored.invoice
    # Correction: a credit note cancelling it in full, then the month is issued again.
    note = s.billing.cancel(CONSOLE, number, reason="late outage", issue_date=dt.date(2026, 8, 10))
    assert note.number == f"{number}-CN"
    assert note.invoice.total == -stored.invoice.total
    assert note.invoice.refers_to == number
    with pytest.raises(Conflict):
        s.billing.cancel(CONSOLE, number, reason="again", issue_date=dt.date(2026, 8, 10))
    replacement = s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=dt.date(2026, 8, 10))
    assert replacement.created
    assert replacement.stored.number == f"{number}-R1"
    # 2 + 4 days (the second outage: 97 h) x 65,000 / 30 = 13,000 credit instead of 4,333
    credit = {ln.code: ln.amount for ln in replacement.stored.invoice.lines}["outage_credit"]
    assert credit == -13_000
    assert s.billing.invoice(CONSOLE, number).invoice == stored.invoice  # original untouched
    numbers = [x.number for x in s.billing.invoices(CONSOLE, s.contract_id, JULY)]
    assert sorted(numbers) == sorted([number, f"{number}-CN", f"{number}-R1"])
    assert s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=ISSUE).created is False


def test_invoice_rows_have_no_update_path(s):
    """Nothing in store/billing.py updates or deletes an issued document."""
    import inspect

    from outbound_pro.store import billing as store_billing

    source = inspect.getsource(store_billing)
    assert "UPDATE billing_invoices" not in source
    assert "DELETE FROM billing_invoices" not in source


def test_payments_interest_and_liability_cap(s):
    stored = s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=ISSUE).stored
    total = stored.invoice.total
    assert total == 93_133 and stored.due_date == dt.date(2026, 8, 31)
    # Paid within 10 days after the due date: no interest.
    on_time = s.billing.status(CONSOLE, stored.number, as_of=dt.date(2026, 9, 10))
    assert on_time.late_interest.interest == 0 and on_time.balance == total
    # 50,000 on 09-30 (29 days: 09-01..09-29), the rest on 10-11 (40 days: 09-01..10-10):
    # (50,000 x 29 + 43,133 x 40) x 0.145 / 365 = 3,175,320 x 0.145 / 365 = 1,261.43 -> 1,261
    s.billing.record_payment(CONSOLE, stored.number, paid_on=dt.date(2026, 9, 30), amount=50_000)
    s.billing.record_payment(
        CONSOLE, stored.number, paid_on=dt.date(2026, 10, 11), amount=total - 50_000
    )
    status = s.billing.status(CONSOLE, stored.number, as_of=dt.date(2026, 12, 1))
    assert status.balance == 0 and status.paid == total
    assert status.late_interest.yen_days == 3_175_320
    assert status.late_interest.interest == 1_261
    # Art. 29-6: paid in the 3 months before the cause (a payment on the cause day is out).
    assert s.billing.liability_cap(CONSOLE, s.contract_id, dt.date(2026, 12, 1)) == total
    assert s.billing.liability_cap(CONSOLE, s.contract_id, dt.date(2026, 10, 11)) == 50_000
    assert s.billing.liability_cap(CONSOLE, s.contract_id, dt.date(2027, 1, 11)) == 43_133
    with pytest.raises(InvalidInput) as exc:
        s.billing.record_payment(CONSOLE, stored.number, paid_on=dt.date(2026, 9, 1), amount=0)
    assert exc.value.field == "amount"
    with pytest.raises(NotFound):
        s.billing.record_payment(CONSOLE, "C-99-202607", paid_on=dt.date(2026, 9, 1), amount=1)


def test_outage_outside_service_or_backwards_is_refused(s):
    with pytest.raises(InvalidInput) as exc:
        s.billing.record_outage(
            CONSOLE, s.contract_id, Outage(recognised=jst(2026, 7, 3), restored=jst(2026, 7, 1))
        )
    assert exc.value.field == "restored"
    with pytest.raises(InvalidInput):
        s.billing.record_outage(
            CONSOLE, s.contract_id, Outage(recognised=jst(2026, 3, 1), restored=jst(2026, 3, 3))
        )


def test_due_date_rule():
    assert due_date_for(dt.date(2026, 8, 1)) == dt.date(2026, 8, 31)
    assert due_date_for(dt.date(2026, 8, 17)) == dt.date(2026, 8, 31)  # exactly 14 days left
    assert due_date_for(dt.date(2026, 8, 18)) == dt.date(2026, 9, 30)


def test_terminated_contract_gets_its_minimum_period_in_the_end_month(s):
    s.w.clock.now = jst(2026, 8, 20)
    s.w.svc.terminate_contract(
        CONSOLE, s.contract_id, end_date=dt.date(2026, 8, 31), reason="customer left"
    )
    months = [c.id for c in s.billing.in_service(CONSOLE, BillingMonth(2026, 8))]
    assert s.contract_id in months
    assert s.contract_id not in [c.id for c in s.billing.in_service(CONSOLE, BillingMonth(2026, 9))]
    invoice = s.billing.preview(CONSOLE, s.contract_id, BillingMonth(2026, 8), issue_date=None)
    minimum = {ln.code: ln for ln in invoice.lines}["booth_minimum_period"]
    # 4 booths from April: period May-Oct, end month August leaves Sep, Oct: 4 x 2 months
    assert minimum.quantity == 8


def test_sqlite_rejects_a_second_credit_note_row(s):
    number = s.billing.issue(CONSOLE, s.contract_id, JULY, issue_date=ISSUE).stored.number
    s.billing.cancel(CONSOLE, number, reason="wrong", issue_date=ISSUE)
    with pytest.raises(sqlite3.IntegrityError):
        s.w.db.execute(
            "INSERT INTO billing_invoices (number, contract_id, month, kind, revision, refers_to,"
            " issue_date, due_date, total, body, issued_at) VALUES"
            " ('X', ?, '2026-07', 'credit_note', 5, ?, '2026-08-01', '2026-08-01', 0, '{}', '')",
            (s.contract_id, number),
        )
