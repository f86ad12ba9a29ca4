"""Billing by the service terms: fee table -> invoices, as pure functions.

The core takes a ``Usage`` (what one contract had, as dated change events) and returns an
immutable ``Invoice``; it reads no clock, file or database, so the same usage always gives the
same invoice and an operator can re-check any bill from a usage file. Adapters (the CLI here,
the accounts database and HTTP API later) only build ``Usage`` and store or render invoices.
"""

from __future__ import annotations

from outbound_pro.billing.errors import BillingError, TariffError, UsageError
from outbound_pro.billing.invoice import (
    assemble,
    compute_invoice,
    correct_invoice,
    credit_note,
    evasion_lines,
    late_interest_line,
    monthly_fees,
)
from outbound_pro.billing.model import (
    Change,
    Correction,
    Invoice,
    InvoiceLine,
    Issuer,
    LateInterest,
    Outage,
    Payment,
    Suspension,
    TaxSummary,
    Usage,
)
from outbound_pro.billing.months import TOKYO, BillingMonth
from outbound_pro.billing.render import from_json, to_csv, to_html, to_json, to_text
from outbound_pro.billing.rules import (
    evasion_surcharge,
    late_interest,
    liability_cap,
    outage_credit,
    outage_days,
    tax_summary,
    truncate,
)
from outbound_pro.billing.tariff import (
    Tariff,
    TariffVersion,
    decode_version,
    load_tariff,
    packaged_tariff,
)
from outbound_pro.billing.usage import Span, Timeline, UsageSource, build_timeline, decode_usage

__all__ = [
    "TOKYO",
    "BillingError",
    "BillingMonth",
    "Change",
    "Correction",
    "Invoice",
    "InvoiceLine",
    "Issuer",
    "LateInterest",
    "Outage",
    "Payment",
    "Span",
    "Suspension",
    "Tariff",
    "TariffError",
    "TariffVersion",
    "TaxSummary",
    "Timeline",
    "Usage",
    "UsageError",
    "UsageSource",
    "assemble",
    "build_timeline",
    "compute_invoice",
    "correct_invoice",
    "credit_note",
    "decode_usage",
    "decode_version",
    "evasion_lines",
    "evasion_surcharge",
    "from_json",
    "late_interest",
    "late_interest_line",
    "liability_cap",
    "load_tariff",
    "monthly_fees",
    "outage_credit",
    "outage_days",
    "packaged_tariff",
    "tax_summary",
    "to_csv",
    "to_html",
    "to_json",
    "to_text",
    "truncate",
]
