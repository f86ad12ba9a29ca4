"""Worked examples for issue 5 rules 4-11: tax, suspension, outage credit, late interest,
evasion surcharge, liability cap and credit notes. Arithmetic in the comments."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from outbound_pro.billing import (
    BillingError,
    InvoiceLine,
    Issuer,
    Payment,
    Suspension,
    correct_invoice,
    credit_note,
    evasion_lines,
    evasion_surcharge,
    late_interest,
    late_interest_line,
    liability_cap,
    monthly_fees,
    outage_credit,
    tax_summary,
)

from .factories import amounts, d, full, invoice, usage

TEN = Decimal("0.10")
ISSUER = Issuer(name="Example Telecom K.K.", registration_number="T1234567890123")


def one_booth(**kw: object):
    """1 booth from 2026-04-10: every later month is 8,000 + 3,000 server management."""
    return usage("2026-04-10", ("2026-04-10", "booth", 1), **kw)  # type: ignore[arg-type]


def line(amount: int, rate: Decimal | None = TEN) -> InvoiceLine:
    return InvoiceLine("x", 1, amount, amount, "x", "x", rate)


# Rule 4: consumption tax once per invoice per rate, truncated -----------------------------------
def test_tax_is_computed_once_on_the_subtotal_not_per_line():
    # Per line: 1,005 x 10% = 100.5 -> 100, three times = 300.
    # Once on the subtotal: 3,015 x 10% = 301.5 -> 301.
    taxes, non_taxable = tax_summary([line(1005), line(1005), line(1005)])
    assert [(t.rate, t.taxable_subtotal, t.tax) for t in taxes] == [(TEN, 3015, 301)]
    assert non_taxable == 0


def test_each_rate_has_its_own_subtotal_and_truncation():
    # 10%: 10,005 x 0.10 = 1,000.5 -> 1,000.  8%: 1,001 x 0.08 = 80.08 -> 80.
    taxes, non_taxable = tax_summary([line(10005), line(1001, Decimal("0.08")), line(500, None)])
    assert [(t.rate, t.taxable_subtotal, t.tax) for t in taxes] == [
        (TEN, 10005, 1000),
        (Decimal("0.08"), 1001, 80),
    ]
    assert non_taxable == 500


def test_invoice_tax_truncates_to_the_yen():
    # July: 8,000 + 3,000 = 11,000; a 1-day outage credits 11,000 x 1 / 30 = 366.66 -> 366.
    # Taxable 11,000 - 366 = 10,634; tax 1,063.4 -> 1,063; total 11,697.
    july = invoice(
        one_booth(outages=(("2026-07-01T00:00:00+09:00", "2026-07-02T00:00:00+09:00"),)),
        "2026-07",
    )
    assert (july.subtotal, july.tax, july.total) == (10634, 1063, 11697)


def test_invoice_carries_the_qualified_invoice_fields():
    inv = invoice(full(), "2026-05", issuer=ISSUER, issue_date=d("2026-06-01"))
    assert inv.issuer == ISSUER
    assert inv.issue_date == d("2026-06-01")
    assert (inv.period_start, inv.period_end) == (d("2026-05-01"), d("2026-05-31"))
    assert [(t.rate, t.taxable_subtotal, t.tax) for t in inv.taxes] == [(TEN, 98200, 9820)]
    assert inv.number == "C-1-202605"


@pytest.mark.parametrize(
    "number", ["1234567890123", "T123456789012", "T12345678901234", "TX234567890123"]
)
def test_registration_number_must_be_t_and_13_digits(number):
    with pytest.raises(BillingError, match="must be 'T' followed by 13 digits"):
        Issuer(name="Example Telecom K.K.", registration_number=number)


# Rule 5: suspension or restriction is charged as normal --------------------------------------
def test_suspended_month_is_charged_as_normal():
    plain = full()
    suspended = msgspec.structs.replace(
        plain, suspensions=(Suspension(d("2026-08-01"), d("2026-08-31"), "unpaid (Art. 22)"),)
    )
    normal, charged = invoice(plain, "2026-08"), invoice(suspended, "2026-08")
    assert charged.lines == normal.lines and charged.total == normal.total == 108020
    assert any("charged as normal (Art. 14-2, 22-2)" in n for n in charged.notes)


# Rule 6: outage credit (Art. 29) ------------------------------------------------------------
def issue_usage(*outages: tuple[str, str]):
    """The issue's example: 5 booths from 2026-04-10, 3 predictive booths from 2026-06-03."""
    return usage(
        "2026-04-10",
        ("2026-04-10", "booth", 5),
        ("2026-06-03", "predictive_booth", 3),
        outages=outages,
    )


def test_issue_example_outage_credit():
    # July monthly fees: booth 5 x 8,000 + server 3,000 + predictive 3 x 3,500 + server 15,000
    #   = 40,000 + 3,000 + 10,500 + 15,000 = 68,500.
    # Outage 07-01 09:00 -> 07-03 10:00 = 49 h = 2 full days (the 1 h rest is dropped).
    # Credit 68,500 x 2 / 30 = 4,566.66 -> 4,566. Taxable 63,934; tax 6,393.4 -> 6,393.
    july = invoice(
        issue_usage(("2026-07-01T09:00:00+09:00", "2026-07-03T10:00:00+09:00")), "2026-07"
    )
    assert amounts(july)["outage_credit"] == -4566
    assert (july.subtotal, july.tax, july.total) == (63934, 6393, 70327)


def test_outage_under_24_hours_gives_no_credit():
    # 23 h 59 min: no full 24 hours (Art. 29-1 needs 24 hours in a row).
    july = invoice(
        issue_usage(("2026-07-01T09:00:00+09:00", "2026-07-02T08:59:00+09:00")), "2026-07"
    )
    assert "outage_credit" not in amounts(july)
    assert july.total == 75350  # 68,500 + 6,850
    assert any("0 day(s)" in n and "no credit" in n for n in july.notes)


def test_outage_is_credited_in_the_month_it_ended():
    # 07-30 12:00 -> 08-02 13:00 = 73 h = 3 days, credited in August: 68,500 x 3 / 30 = 6,850.
    u = issue_usage(("2026-07-30T12:00:00+09:00", "2026-08-02T13:00:00+09:00"))
    assert "outage_credit" not in amounts(invoice(u, "2026-07"))
    assert amounts(invoice(u, "2026-08"))["outage_credit"] == -6850


def test_outage_month_is_decided_in_japan_time():
    # Restored 2026-07-31T16:00Z = 2026-08-01 01:00 in Tokyo -> August's invoice.
    # Recognised 2026-07-29T15:00Z: 49 h before -> 2 days -> 68,500 x 2 / 30 -> 4,566.
    u = issue_usage(("2026-07-29T15:00:00Z", "2026-07-31T16:00:00Z"))
    assert "outage_credit" not in amounts(invoice(u, "2026-07"))
    assert amounts(invoice(u, "2026-08"))["outage_credit"] == -4566


def test_outage_credit_never_exceeds_the_months_monthly_fees():
    # 06-25 -> 08-04 = 40 days; 68,500 x 40 / 30 = 91,333 -> capped at 68,500.
    u = issue_usage(("2026-06-25T00:00:00+09:00", "2026-08-04T00:00:00+09:00"))
    aug = invoice(u, "2026-08")
    assert amounts(aug)["outage_credit"] == -68500
    assert (aug.subtotal, aug.tax, aug.total) == (0, 0, 0)


def test_outages_in_one_month_are_added_before_truncating():
    # One booth: fees 11,000. Two 1-day outages: 11,000 x 2 / 30 = 733.3 -> 733
    # (one per outage would give 366 + 366 = 732).
    u = one_booth(
        outages=(
            ("2026-07-01T00:00:00+09:00", "2026-07-02T00:00:00+09:00"),
            ("2026-07-10T00:00:00+09:00", "2026-07-11T12:00:00+09:00"),
        )
    )
    assert amounts(invoice(u, "2026-07"))["outage_credit"] == -733


def test_outage_in_the_start_month_credits_nothing():
    # April is the start month: monthly fees 0, so 0 x days / 30 = 0.
    u = one_booth(outages=(("2026-04-11T00:00:00+09:00", "2026-04-15T00:00:00+09:00"),))
    assert "outage_credit" not in amounts(invoice(u, "2026-04"))


def test_outage_credit_function():
    assert outage_credit(68500, 2) == 4566  # 137,000 / 30 = 4,566.66
    assert outage_credit(68500, 30) == 68500
    assert outage_credit(68500, 31) == 68500  # capped
    assert outage_credit(0, 5) == 0


# Rule 7: late payment interest (Art. 18) -----------------------------------------------------
def test_interest_for_a_month_late():
    # May's total 108,020 due 2026-06-30, paid 2026-07-31: days 07-01..07-30 = 30.
    # 108,020 x 0.145 x 30 / 365 = 469,887 / 365 = 1,287.36 -> 1,287.
    result = late_interest(108020, d("2026-06-30"), d("2026-07-31"))
    assert (result.days, result.interest) == (30, 1287)


def test_no_interest_when_paid_within_10_days_after_due():
    # Due 06-30; the 10 days after it are 07-01..07-10: paying on 07-10 owes nothing.
    assert late_interest(108020, d("2026-06-30"), d("2026-07-10")).interest == 0
    assert late_interest(108020, d("2026-06-30"), d("2026-06-15")).interest == 0


def test_interest_on_the_11th_day_counts_from_the_day_after_due():
    # Paid 07-11: interest days 07-01..07-10 = 10.
    # 108,020 x 0.145 x 10 / 365 = 156,629 / 365 = 429.12 -> 429.
    result = late_interest(108020, d("2026-06-30"), d("2026-07-11"))
    assert (result.days, result.interest) == (10, 429)


def test_interest_uses_365_days_even_in_a_leap_year():
    # Due 2028-02-15, paid 2028-03-20: 2028-02-16..2028-03-19 = 14 + 19 = 33 days.
    # 100,000 x 0.145 x 33 / 365 = 478,500 / 365 = 1,310.96 -> 1,310.
    result = late_interest(100000, d("2028-02-15"), d("2028-03-20"))
    assert (result.days, result.interest) == (33, 1310)


def test_interest_line_is_outside_consumption_tax():
    may = invoice(full(), "2026-05")
    extra = late_interest_line(may, due=d("2026-06-30"), paid=d("2026-07-31"))
    assert extra is not None
    assert (extra.code, extra.amount, extra.tax_rate) == ("late_interest", 1287, None)
    assert late_interest_line(may, due=d("2026-06-30"), paid=d("2026-07-05")) is None
    # On August's invoice: 108,020 monthly + 9,820 tax + 1,287 interest (no tax on it).
    aug = invoice(full(), "2026-08", adjustments=[extra])
    assert (aug.non_taxable_subtotal, aug.tax, aug.total) == (1287, 9820, 108020 + 1287)


def test_negative_overdue_amount_is_refused():
    with pytest.raises(BillingError, match="negative"):
        late_interest(-1, d("2026-06-30"), d("2026-07-31"))


# Rule 8: evaded charges (Art. 17) --------------------------------------------------------------
def test_evaded_charges_plus_twice_as_surcharge():
    # Evaded 12,345 (tax excluded): surcharge 2 x 12,345 = 24,690, no tax on it.
    assert evasion_surcharge(12345, on=d("2026-07-01")) == 24690
    evaded, surcharge = evasion_lines(12345, on=d("2026-07-01"), rate=TEN)
    assert (evaded.amount, evaded.tax_rate) == (12345, TEN)
    assert (surcharge.amount, surcharge.tax_rate) == (24690, None)
    # On July's one-booth invoice: taxable 11,000 + 12,345 = 23,345, tax 2,334.5 -> 2,334;
    # total 23,345 + 24,690 + 2,334 = 50,369.
    july = invoice(one_booth(), "2026-07", adjustments=[evaded, surcharge])
    assert (july.taxes[0].taxable_subtotal, july.tax) == (23345, 2334)
    assert july.total == 50369


# Rule 9 is in test_tariff.py (versions and the 30-day notice).


# Rule 10: liability cap (Art. 29-6) ----------------------------------------------------------
def test_liability_cap_is_what_was_paid_in_the_3_months_before():
    # Cause 2026-06-15: window 2026-03-15 .. 2026-06-14.
    payments = [
        Payment(d("2026-03-14"), 145200),  # one day too early
        Payment(d("2026-03-15"), 108020),  # first day of the window
        Payment(d("2026-04-30"), 108020),
        Payment(d("2026-05-29"), 108020),
        Payment(d("2026-06-15"), 108020),  # the cause day itself: not before the cause
    ]
    assert liability_cap(payments, d("2026-06-15")) == 3 * 108020  # 324,060


def test_liability_cap_window_clamps_at_month_end():
    # Cause 2026-05-31: 3 months earlier is 2026-02-31 -> 2026-02-28.
    payments = [Payment(d("2026-02-27"), 1000), Payment(d("2026-02-28"), 2000)]
    assert liability_cap(payments, d("2026-05-31")) == 2000


# Rule 11: credit notes; paid fees are never refunded ----------------------------------------
def test_correction_is_a_credit_note_and_a_replacement():
    # May was issued with 2 sub-admin IDs; there was only 1.
    original = invoice(full(), "2026-05", issuer=ISSUER)
    corrected_usage = full(("2026-04-10", "sub_admin_id", -1))
    replacement = invoice(corrected_usage, "2026-05", issuer=ISSUER, number="C-1-202605-R1")
    # Replacement: 98,200 - 5,000 = 93,200; tax 9,320; total 102,520.
    assert replacement.total == 102520
    fix = correct_invoice(
        original,
        replacement,
        credit_note_number="CN-1",
        issue_date=d("2026-06-20"),
        paid=108020,
        reason="1 sub-admin ID, not 2",
    )
    note = fix.credit_note
    assert (note.kind, note.refers_to, note.number) == ("credit_note", "C-1-202605", "CN-1")
    assert (note.subtotal, note.tax, note.total) == (-98200, -9820, -108020)
    assert sum(line.amount for line in note.lines) == -98200
    # Paid 108,020 against 102,520: nothing due, 5,500 not refunded (Art. 14-3).
    assert (fix.amount_due, fix.not_refunded) == (0, 5500)
    unpaid = correct_invoice(
        original,
        replacement,
        credit_note_number="CN-1",
        issue_date=d("2026-06-20"),
        paid=0,
        reason="1 sub-admin ID, not 2",
    )
    assert (unpaid.amount_due, unpaid.not_refunded) == (102520, 0)


def test_issued_invoice_cannot_be_edited():
    inv = invoice(full(), "2026-05")
    with pytest.raises(AttributeError):
        inv.total = 0  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        inv.lines.append(inv.lines[0])  # type: ignore[attr-defined]
    assert inv.total == 108020


def test_credit_note_rules():
    original = invoice(full(), "2026-05")
    note = credit_note(original, number="CN-1", issue_date=d("2026-06-20"), reason="typo")
    with pytest.raises(BillingError, match="only invoices can be cancelled"):
        credit_note(note, number="CN-2", issue_date=d("2026-06-21"), reason="again")
    with pytest.raises(BillingError, match="precedes invoice"):
        credit_note(original, number="CN-3", issue_date=d("2026-05-31"), reason="early")
    with pytest.raises(BillingError, match="reason"):
        credit_note(original, number="CN-4", issue_date=d("2026-06-20"), reason=" ")


def test_monthly_fees_excludes_initial_and_minimum_period_lines():
    # June with a booth removed: monthly 98,200; plus minimum period 32,000 (not monthly).
    june = invoice(full(("2026-06-03", "booth", -1)), "2026-06")
    assert monthly_fees(june) == 98200
