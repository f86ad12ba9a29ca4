"""Small builders for billing tests, so each worked example reads like the terms."""

from __future__ import annotations

import datetime as dt

from outbound_pro.billing import (
    BillingMonth,
    Change,
    Invoice,
    Outage,
    Suspension,
    Usage,
    compute_invoice,
)

#: The worked examples' contract: every unit the fee table prices, all added on day one.
FULL_SET = (
    ("booth", 5),
    ("sub_admin_id", 2),
    ("affiliation", 1),
    ("extended_booth", 2),
    ("predictive_booth", 3),
    ("sip_device", 2),
    ("sip_number", 3),
)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def m(text: str) -> BillingMonth:
    return BillingMonth.parse(text)


def usage(
    start: str = "2026-04-10",
    *changes: tuple[str, str, int] | tuple[str, str, int, str],
    end: str | None = None,
    outages: tuple[tuple[str, str], ...] = (),
    suspensions: tuple[Suspension, ...] = (),
) -> Usage:
    """Usage from (date, unit, delta[, id]) tuples and (recognised, restored) outages."""
    return Usage(
        contract="C-1",
        service_start=d(start),
        service_end=d(end) if end else None,
        changes=tuple(Change(d(c[0]), c[1], c[2], *(c[3:])) for c in changes),
        outages=tuple(Outage(ts(a), ts(b)) for a, b in outages),
        suspensions=suspensions,
    )


def full(*more: tuple[str, str, int], **kw: object) -> Usage:
    """The full-set contract starting 2026-04-10, plus *more* changes."""
    first = tuple(("2026-04-10", unit, n) for unit, n in FULL_SET)
    return usage("2026-04-10", *first, *more, **kw)  # type: ignore[arg-type]


def invoice(u: Usage, month: str, **kw: object) -> Invoice:
    return compute_invoice(u, m(month), **kw)  # type: ignore[arg-type]


def amounts(inv: Invoice) -> dict[str, int]:
    """code -> amount (codes are unique within one invoice's generated lines)."""
    return {line.code: line.amount for line in inv.lines}


def quantities(inv: Invoice) -> dict[str, int]:
    return {line.code: line.quantity for line in inv.lines}
