"""Invoices from usage: the billing engine proper. Pure: no clock, no files, no database.

One month's invoice is, in this order: initial fees of units added that month, monthly fees
of units chargeable that month, minimum-period remainders of booths that ended that month,
the outage credit for outages that ended that month, then any adjustments the caller adds
(evaded charges, late interest). Tax is computed once per rate over the whole invoice.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal

import msgspec

from outbound_pro.billing.errors import BillingError
from outbound_pro.billing.model import (
    Correction,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    Issuer,
    Usage,
)
from outbound_pro.billing.months import BillingMonth, tokyo_date
from outbound_pro.billing.rules import (
    evasion_surcharge,
    late_interest,
    outage_credit,
    outage_days,
    tax_summary,
)
from outbound_pro.billing.tariff import CONTRACT_UNITS, FeeItem, Tariff, packaged_tariff
from outbound_pro.billing.usage import Span, Timeline, build_timeline

OUTAGE_CREDIT = ("outage_credit", "障害による料金の減額（第29条）", "Outage credit (Art. 29)")
EVADED = ("evaded_charges", "免れた料金（第17条）", "Evaded charges (Art. 17)")
SURCHARGE = ("evasion_surcharge", "割増金（第17条）", "Surcharge on evaded charges (Art. 17)")
INTEREST = ("late_interest", "延滞利息（第18条）", "Late payment interest (Art. 18)")
MINIMUM_SUFFIX = ("_minimum_period", "（最低利用期間の残余）", ", rest of minimum period")


def _chargeable(span: Span, month: BillingMonth) -> bool:
    """Monthly fee due for *span* in *month*: provided in the month, and the month is not
    the one it started in (start month free, end month charged in full; a span that starts
    and ends in one month is therefore free that month)."""
    if span.start > month.last_day or (span.end is not None and span.end < month.first_day):
        return False
    return BillingMonth.of(span.start) != month


def _line(
    code: str, quantity: int, unit_price: int, ja: str, en: str, rate: Decimal | None, note: str
) -> InvoiceLine:
    return InvoiceLine(code, quantity, unit_price, quantity * unit_price, ja, en, rate, note)


def _initial_lines(
    timeline: Timeline, month: BillingMonth, tariff: Tariff, rate: Decimal
) -> list[InvoiceLine]:
    """Initial fees for every unit that started in *month*, at the price in force on the day
    it was added (a price change mid-month gives two lines with different unit prices)."""
    counts: Counter[tuple[str, int]] = Counter()
    items: dict[str, FeeItem] = {}
    for unit, spans in timeline.spans.items():
        for span in spans:
            if BillingMonth.of(span.start) != month:
                continue
            for item in tariff.version_at(span.start).initial:
                if item.unit == unit:
                    counts[(item.code, item.yen)] += 1
                    items[item.code] = item
    order = {item.code: n for n, item in enumerate(tariff.version_at(month.first_day).initial)}
    keys = sorted(counts, key=lambda key: (order.get(key[0], len(order)), key[0], key[1]))
    return [
        _line(code, counts[(code, yen)], yen, items[code].ja, items[code].en, rate, "")
        for code, yen in keys
    ]


def _monthly_lines(
    timeline: Timeline, month: BillingMonth, tariff: Tariff, rate: Decimal
) -> list[InvoiceLine]:
    lines = []
    for item in tariff.version_at(month.first_day).monthly:
        spans = [s for s in timeline.of(item.unit) if _chargeable(s, month)]
        started = sum(1 for s in timeline.of(item.unit) if BillingMonth.of(s.start) == month)
        quantity = min(len(spans), 1) if item.unit in CONTRACT_UNITS else len(spans)
        if quantity == 0:
            continue
        note = ""
        if started and item.unit not in CONTRACT_UNITS:
            note = f"{started} more started in {month}: free this month"
        lines.append(_line(item.code, quantity, item.yen, item.ja, item.en, rate, note))
    return lines


def _minimum_period_lines(
    timeline: Timeline, month: BillingMonth, tariff: Tariff, rate: Decimal
) -> list[InvoiceLine]:
    """Issue 5 rule 3: a booth that ends before its minimum period (the N months after its
    start month) is over pays, on its end month's invoice, the monthly fee for each month of
    the period after the end month. Price and period length: the version in force that month."""
    lines = []
    for item in tariff.version_at(month.first_day).monthly:
        if item.minimum_months is None:
            continue
        months = 0
        notes = []
        for span in timeline.of(item.unit):
            if span.end is None or BillingMonth.of(span.end) != month:
                continue
            last = BillingMonth.of(span.start).shift(item.minimum_months)
            remaining = last.index - month.index
            if remaining > 0:
                months += remaining
                notes.append(
                    f"{item.unit} {span.start}–{span.end}: {remaining} month(s) "
                    f"{month.shift(1)}..{last}"
                )
        if months:
            code, ja, en = (
                item.code + MINIMUM_SUFFIX[0],
                item.ja + MINIMUM_SUFFIX[1],
                item.en + MINIMUM_SUFFIX[2],
            )
            lines.append(_line(code, months, item.yen, ja, en, rate, "; ".join(notes)))
    return lines


def _outage_line(
    usage: Usage, month: BillingMonth, monthly_fees: int, tariff: Tariff, rate: Decimal
) -> tuple[list[InvoiceLine], list[str]]:
    rules = tariff.version_at(month.first_day).rules
    details = []
    total_days = 0
    for outage in usage.outages:
        if BillingMonth.of(tokyo_date(outage.restored)) != month:
            continue
        days = outage_days(outage, unit_hours=rules.outage_credit_unit_hours)
        total_days += days
        details.append(
            f"{outage.recognised.isoformat()} to {outage.restored.isoformat()}: {days} day(s)"
        )
    if not details:
        return [], []
    credit = outage_credit(
        monthly_fees, total_days, days_per_month=rules.outage_credit_days_per_month
    )
    formula = (
        f"{monthly_fees:,} x {total_days} / {rules.outage_credit_days_per_month}"
        f" = {credit:,} (at most the month's monthly fees)"
    )
    note = "; ".join(details) + f"; {formula}"
    if credit == 0:
        return [], [f"Outage {note}: no credit"]
    return [_line(OUTAGE_CREDIT[0], 1, -credit, *OUTAGE_CREDIT[1:], rate, note)], []


def _suspension_notes(usage: Usage, month: BillingMonth) -> list[str]:
    notes = []
    for s in usage.suspensions:
        if s.start <= month.last_day and (s.end is None or s.end >= month.first_day):
            end = s.end.isoformat() if s.end else "open"
            why = f" ({s.reason})" if s.reason else ""
            notes.append(
                f"提供停止・利用制限 Suspended or restricted {s.start} to {end}{why}: "
                "charged as normal (Art. 14-2, 22-2)"
            )
    return notes


def assemble(
    *,
    number: str,
    kind: InvoiceKind,
    contract: str,
    customer_name: str,
    month: BillingMonth,
    issue_date: dt.date,
    issuer: Issuer | None,
    lines: Sequence[InvoiceLine],
    refers_to: str | None = None,
    notes: Sequence[str] = (),
) -> Invoice:
    """An Invoice from lines: subtotal, tax per rate and total are derived, never given."""
    taxes, non_taxable = tax_summary(lines)
    subtotal = sum(line.amount for line in lines)
    tax = sum(t.tax for t in taxes)
    return Invoice(
        number=number,
        kind=kind,
        contract=contract,
        customer_name=customer_name,
        month=str(month),
        period_start=month.first_day,
        period_end=month.last_day,
        issue_date=issue_date,
        issuer=issuer,
        lines=tuple(lines),
        taxes=taxes,
        non_taxable_subtotal=non_taxable,
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        refers_to=refers_to,
        notes=tuple(notes),
    )


def compute_invoice(
    usage: Usage,
    month: BillingMonth,
    *,
    tariff: Tariff | None = None,
    issuer: Issuer | None = None,
    number: str | None = None,
    issue_date: dt.date | None = None,
    adjustments: Iterable[InvoiceLine] = (),
) -> Invoice:
    """The invoice of *usage* for *month*.

    ``number`` defaults to ``<contract>-<YYYYMM>``; ``issue_date`` to the first day of the
    next month (the library reads no clock). ``adjustments`` are extra lines such as
    ``evasion_lines`` or ``late_interest_line`` that belong on this invoice. The tax rate is
    the one in force on the first day of the month.
    """
    tariff = tariff or packaged_tariff()
    timeline = build_timeline(usage, tariff)
    if month < BillingMonth.of(usage.service_start) or (
        usage.service_end is not None and month > BillingMonth.of(usage.service_end)
    ):
        end = usage.service_end.isoformat() if usage.service_end else "open"
        raise BillingError(
            f"{month} is outside contract {usage.contract}'s service "
            f"({usage.service_start} to {end}); choose a month within it"
        )
    rate = tariff.tax_rate_at(month.first_day)
    monthly = _monthly_lines(timeline, month, tariff, rate)
    monthly_fees = sum(line.amount for line in monthly)
    credit, credit_notes = _outage_line(usage, month, monthly_fees, tariff, rate)
    lines = [
        *_initial_lines(timeline, month, tariff, rate),
        *monthly,
        *_minimum_period_lines(timeline, month, tariff, rate),
        *credit,
        *adjustments,
    ]
    return assemble(
        number=number or f"{usage.contract}-{month.year:04d}{month.month:02d}",
        kind="invoice",
        contract=usage.contract,
        customer_name=usage.customer_name,
        month=month,
        issue_date=issue_date or month.shift(1).first_day,
        issuer=issuer,
        lines=lines,
        notes=[*credit_notes, *_suspension_notes(usage, month)],
    )


def monthly_fees(invoice: Invoice, tariff: Tariff | None = None) -> int:
    """The month's monthly fees on *invoice*: the base of the Art. 29 outage credit."""
    codes = {
        item.code for version in (tariff or packaged_tariff()).versions for item in version.monthly
    }
    return sum(line.amount for line in invoice.lines if line.code in codes)


def evasion_lines(
    evaded: int, *, on: dt.date, rate: Decimal, tariff: Tariff | None = None, note: str = ""
) -> tuple[InvoiceLine, InvoiceLine]:
    """Art. 17: the evaded charges (taxable, at *rate*: the rate of the months they were
    for) and the surcharge of twice that amount, tax excluded. The terms add no consumption
    tax to the surcharge, so it is outside tax here."""
    surcharge = evasion_surcharge(evaded, on=on, tariff=tariff)
    return (
        _line(EVADED[0], 1, evaded, *EVADED[1:], rate, note),
        _line(SURCHARGE[0], 1, surcharge, *SURCHARGE[1:], None, f"{evaded:,} x 2"),
    )


def late_interest_line(
    invoice: Invoice, *, due: dt.date, paid: dt.date, tariff: Tariff | None = None
) -> InvoiceLine | None:
    """Art. 18 interest on a late *invoice* as a line for a later invoice (None if none).
    Interest is damages, not a supply, so it is outside consumption tax."""
    tariff = tariff or packaged_tariff()
    result = late_interest(invoice.total, due, paid, tariff=tariff)
    if result.interest == 0:
        return None
    rules = tariff.version_at(due).rules
    note = (
        f"invoice {invoice.number} {invoice.total:,} due {due} paid {paid}: {invoice.total:,} x "
        f"{rules.late_interest_rate_per_year} x {result.days} / {rules.late_interest_days_per_year}"
    )
    return _line(INTEREST[0], 1, result.interest, *INTEREST[1:], None, note)


def credit_note(original: Invoice, *, number: str, issue_date: dt.date, reason: str) -> Invoice:
    """A credit note cancelling *original* in full (rule 11: issued invoices are never
    edited). Its tax per rate is exactly the original's, negated, so the pair nets to zero
    to the yen; it is also the qualified return invoice (返還インボイス) for the amount."""
    if original.kind != "invoice":
        raise BillingError(f"{original.number} is a credit note; only invoices can be cancelled")
    if number == original.number:
        raise BillingError("a credit note needs its own number")
    if issue_date < original.issue_date:
        raise BillingError(
            f"credit note dated {issue_date} precedes invoice {original.number} "
            f"({original.issue_date})"
        )
    if not reason.strip():
        raise BillingError("say why the invoice is corrected (reason)")
    lines = tuple(
        msgspec.structs.replace(line, quantity=-line.quantity, amount=-line.amount)
        for line in original.lines
    )
    taxes = tuple(
        msgspec.structs.replace(t, taxable_subtotal=-t.taxable_subtotal, tax=-t.tax)
        for t in original.taxes
    )
    return msgspec.structs.replace(
        original,
        number=number,
        kind="credit_note",
        issue_date=issue_date,
        lines=lines,
        taxes=taxes,
        non_taxable_subtotal=-original.non_taxable_subtotal,
        subtotal=-original.subtotal,
        tax=-original.tax,
        total=-original.total,
        refers_to=original.number,
        notes=(f"取消 Cancels invoice {original.number}: {reason}",),
    )


def correct_invoice(
    original: Invoice,
    replacement: Invoice,
    *,
    credit_note_number: str,
    issue_date: dt.date,
    paid: int,
    reason: str,
) -> Correction:
    """Correct an issued invoice: a credit note cancels it and *replacement* takes its place.

    What was already *paid* counts against the replacement. Paid fees are never refunded
    (Art. 14-3): if the replacement is smaller than what was paid, the difference is reported
    as ``not_refunded`` and nothing is owed.
    """
    if (replacement.contract, replacement.month) != (original.contract, original.month):
        raise BillingError("the replacement must be for the same contract and month")
    if replacement.number in (original.number, credit_note_number):
        raise BillingError("the replacement invoice needs a number of its own")
    if paid < 0:
        raise BillingError(f"paid {paid} is negative")
    note = credit_note(original, number=credit_note_number, issue_date=issue_date, reason=reason)
    return Correction(
        credit_note=note,
        replacement=replacement,
        amount_due=max(0, replacement.total - paid),
        not_refunded=max(0, paid - replacement.total),
    )
