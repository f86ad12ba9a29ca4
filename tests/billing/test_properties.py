"""Properties over generated contracts: whatever the usage, these must hold."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from outbound_pro.billing import (
    BillingMonth,
    Change,
    Invoice,
    InvoiceLine,
    Outage,
    Usage,
    compute_invoice,
    late_interest,
    monthly_fees,
    outage_credit,
    tax_summary,
)
from outbound_pro.billing.months import TOKYO

START = dt.date(2025, 1, 1)
UNITS = (
    "booth",
    "sub_admin_id",
    "affiliation",
    "extended_booth",
    "predictive_booth",
    "sip_device",
    "sip_number",
)
WEIGHTED = (*UNITS, "booth", "booth", "booth")  # booths carry the most rules
FREE_UNITS = ("booth", "sub_admin_id", "affiliation", "sip_device")  # no parent to respect
PROFILE = settings(max_examples=300, deadline=None)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    """A valid contract: changes are clipped as they are generated so that no count goes
    negative and options never outnumber their parent unit."""
    start = START + dt.timedelta(days=draw(st.integers(0, 400)))
    ops = draw(
        st.lists(
            st.tuples(st.integers(0, 500), st.sampled_from(WEIGHTED), st.integers(-3, 3)),
            max_size=12,
        )
    )
    ops.sort(key=lambda op: op[0])
    counts = dict.fromkeys(UNITS, 0)
    changes = []
    for offset, unit, delta in ops:
        if delta > 0:
            room = {
                "extended_booth": counts["booth"] - counts["extended_booth"],
                "predictive_booth": counts["booth"] - counts["predictive_booth"],
                "sip_number": delta if counts["sip_device"] else 0,
            }.get(unit, delta)
            delta = min(delta, room)
        elif delta < 0:
            floor = {
                "booth": max(counts["extended_booth"], counts["predictive_booth"]),
                "sip_device": 1 if counts["sip_number"] else 0,
            }.get(unit, 0)
            delta = -min(-delta, counts[unit] - floor)
        if delta == 0:
            continue
        counts[unit] += delta
        changes.append(Change(start + dt.timedelta(days=offset), unit, delta))
    last = max((c.date for c in changes), default=start)
    end = draw(st.one_of(st.none(), st.integers(0, 200).map(lambda n: last + dt.timedelta(n))))
    horizon = end or (last + dt.timedelta(days=200))
    outages = []
    for begin, hours in draw(
        st.lists(st.tuples(st.integers(0, 700), st.integers(0, 24 * 45)), max_size=4)
    ):
        recognised = dt.datetime.combine(start, dt.time(), TOKYO) + dt.timedelta(hours=begin)
        restored = recognised + dt.timedelta(hours=hours, minutes=1)
        if restored.date() <= horizon:
            outages.append(Outage(recognised, restored))
    return Usage("C-P", start, end, tuple(changes), tuple(outages))


def months_of(usage: Usage) -> list[BillingMonth]:
    """Every month from the start to 7 months after the last event (after that, an open
    contract's invoices repeat: the longest rule, the minimum period, spans 6 months)."""
    events = [usage.service_start, *(c.date for c in usage.changes)]
    events += [o.restored.astimezone(TOKYO).date() for o in usage.outages]
    first = BillingMonth.of(usage.service_start)
    last = BillingMonth.of(max(events)).shift(7)
    if usage.service_end is not None:
        last = BillingMonth.of(usage.service_end)
    return [first.shift(n) for n in range(last.index - first.index + 1)]


def invoices(usage: Usage, months: list[BillingMonth] | None = None) -> list[Invoice]:
    return [compute_invoice(usage, month) for month in months or months_of(usage)]


@PROFILE
@given(usages())
def test_totals_equal_the_sum_of_lines(usage):
    for inv in invoices(usage):
        assert inv.subtotal == sum(line.amount for line in inv.lines)
        assert inv.tax == sum(t.tax for t in inv.taxes)
        assert inv.total == inv.subtotal + inv.tax
        assert inv.subtotal == sum(t.taxable_subtotal for t in inv.taxes) + (
            inv.non_taxable_subtotal
        )
        assert all(line.amount == line.quantity * line.unit_price for line in inv.lines)


@PROFILE
@given(usages())
def test_a_credit_never_exceeds_the_months_monthly_fees(usage):
    for inv in invoices(usage):
        credit = -sum(line.amount for line in inv.lines if line.code == "outage_credit")
        assert 0 <= credit <= monthly_fees(inv)
        assert inv.total >= 0


@PROFILE
@given(usages(), st.sampled_from(FREE_UNITS), st.integers(1, 3), st.integers(0, 900))
def test_adding_a_unit_never_lowers_a_bill(usage, unit, count, offset):
    day = usage.service_start + dt.timedelta(days=offset)
    if usage.service_end is not None and day > usage.service_end:
        day = usage.service_end
    more = msgspec.structs.replace(usage, changes=(*usage.changes, Change(day, unit, count)))
    months = months_of(more)
    for before, after in zip(invoices(usage, months), invoices(more, months), strict=True):
        assert after.total >= before.total, (before.month, before.lines, after.lines)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=6),
    st.sampled_from([Decimal("0.10"), Decimal("0.08"), Decimal("0.05"), Decimal("0.123")]),
)
def test_tax_truncation_never_rounds_up(amounts, rate):
    lines = [InvoiceLine("x", 1, a, a, "x", "x", rate) for a in amounts]
    (summary,), _ = tax_summary(lines)
    exact = Fraction(sum(amounts)) * Fraction(rate)
    assert abs(summary.tax) <= abs(exact)  # toward zero: never more than the exact tax
    assert abs(exact - summary.tax) < 1  # and only the fraction of a yen is dropped


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.integers(0, 60))
def test_outage_credit_truncation_never_rounds_up(fees, days):
    credit = outage_credit(fees, days)
    exact = Fraction(fees * days, 30)
    assert credit <= exact and credit <= fees
    assert credit == fees or exact - credit < 1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.dates(dt.date(2020, 1, 1), dt.date(2035, 12, 31)), st.data())
def test_interest_is_zero_within_grace_and_never_rounds_up(amount, due, data):
    within = data.draw(st.integers(-60, 10))
    assert late_interest(amount, due, due + dt.timedelta(days=within)).interest == 0
    late = data.draw(st.integers(11, 800))
    result = late_interest(amount, due, due + dt.timedelta(days=late))
    exact = Fraction(amount) * Fraction("0.145") * (late - 1) / 365
    assert result.days == late - 1
    assert result.interest <= exact and exact - result.interest < 1
    later = late_interest(amount, due, due + dt.timedelta(days=late + 1))
    assert later.interest >= result.interest
