"""The arithmetic rules of the terms, one small pure function each.

Every amount is computed exactly with ``Fraction`` and truncated once at the end (Art. 20:
fractions under 1 yen are cut off), so no intermediate rounding can move a result by a yen.
Truncation is toward zero, which for a negative amount (a credit) means the smaller credit:
"cut off the fraction", never "round against the customer".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

from outbound_pro.billing.errors import BillingError
from outbound_pro.billing.model import InvoiceLine, LateInterest, Outage, Payment, TaxSummary
from outbound_pro.billing.months import add_months
from outbound_pro.billing.tariff import Tariff, packaged_tariff


def truncate(value: Fraction | Decimal | int) -> int:
    """Drop the fraction of a yen (Art. 20), toward zero."""
    return int(Fraction(value))


def tax_summary(lines: Iterable[InvoiceLine]) -> tuple[tuple[TaxSummary, ...], int]:
    """Tax once per rate on that rate's taxable subtotal, truncated (Art. 20, and the
    qualified-invoice rule of one rounding per rate per invoice). Returns the per-rate
    summaries, highest rate first, and the subtotal of lines outside consumption tax."""
    by_rate: dict[Decimal, int] = {}
    non_taxable = 0
    for line in lines:
        if line.tax_rate is None:
            non_taxable += line.amount
        else:
            by_rate[line.tax_rate] = by_rate.get(line.tax_rate, 0) + line.amount
    summaries = tuple(
        TaxSummary(rate, subtotal, truncate(Fraction(subtotal) * Fraction(rate)))
        for rate, subtotal in sorted(by_rate.items(), reverse=True)
    )
    return summaries, non_taxable


def late_interest(
    amount: int, due: dt.date, paid: dt.date, *, tariff: Tariff | None = None
) -> LateInterest:
    """Art. 18 late-payment interest on *amount* (tax included, earlier interest excluded).

    Interest runs from the day after *due* to the day before *paid* at 14.5% a year on a
    365-day year, truncated; nothing at all when payment comes within 10 days after the due
    date (the grace counts from the day after the due date, so paying on due + 10 is free and
    paying on due + 11 owes 10 days).
    """
    if amount < 0:
        raise BillingError(f"overdue amount {amount} is negative; give the unpaid amount in yen")
    rules = (tariff or packaged_tariff()).version_at(due).rules
    elapsed = (paid - due).days
    if elapsed <= rules.late_interest_grace_days:
        return LateInterest(days=0, interest=0)
    days = elapsed - 1
    exact = (
        Fraction(amount)
        * Fraction(rules.late_interest_rate_per_year)
        * days
        / rules.late_interest_days_per_year
    )
    return LateInterest(days=days, interest=truncate(exact))


def evasion_surcharge(evaded: int, *, on: dt.date, tariff: Tariff | None = None) -> int:
    """Art. 17 surcharge: twice the evaded amount, on the tax-excluded amount."""
    if evaded < 0:
        raise BillingError(f"evaded amount {evaded} is negative; give it in yen, tax excluded")
    rules = (tariff or packaged_tariff()).version_at(on).rules
    return evaded * rules.evasion_surcharge_multiple


def liability_cap(
    payments: Iterable[Payment], cause: dt.date, *, tariff: Tariff | None = None
) -> int:
    """Art. 29-6: the most the provider pays in damages is what the contract paid in the
    3 months before the cause arose. Window: from the same day 3 months earlier (clamped to
    month end) up to the day before *cause*; a payment on the cause date itself is left out
    because the terms count payments made before the cause and dates carry no time."""
    months = (tariff or packaged_tariff()).version_at(cause).rules.liability_cap_months_paid
    start = add_months(cause, -months)
    return sum(p.amount for p in payments if start <= p.date < cause)


def outage_days(outage: Outage, *, unit_hours: int = 24) -> int:
    """Art. 29-2: whole 24-hour periods from recognition to restoration (the rest is dropped;
    under 24 hours is no day at all, Art. 29-1)."""
    return int((outage.restored - outage.recognised) // dt.timedelta(hours=unit_hours))


def outage_credit(monthly_fees: int, days: int, *, days_per_month: int = 30) -> int:
    """Issue 5 rule 6: monthly fees x days / 30, truncated, never more than the monthly fees.

    Days of every outage that ended in the month are added before this single truncation,
    so splitting one bad week into several outages cannot lose the customer a yen.
    """
    if monthly_fees < 0 or days < 0:
        raise BillingError("monthly fees and outage days cannot be negative")
    return min(monthly_fees, truncate(Fraction(monthly_fees * days, days_per_month)))
