"""Billing data: what a contract had (``Usage``) and what it is charged (``Invoice``).

Everything is an immutable msgspec Struct so that the same type is decoded from a usage file,
built by a database adapter, encoded as JSON, and compared in tests; an issued invoice cannot
be edited in place (rule 11: corrections are credit notes). Money is ``int`` yen; rates are
``Decimal`` (encoded as strings, never floats).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from outbound_pro.billing.errors import BillingError

AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]

InvoiceKind = Literal["invoice", "credit_note"]

_REGISTRATION_RE = re.compile(r"T\d{13}")


class Change(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``delta`` units of ``unit`` added (positive) or removed (negative) on ``date``.

    A removal's date is the last day the unit was provided, so its month is charged in full.
    ``id`` is optional: an adapter that knows which user ID or device was removed passes it
    (``delta`` is then +1 or -1); without it a removal takes the most recently added unit.
    """

    date: dt.date
    unit: str
    delta: int
    id: str | None = None


class Outage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A period in which the service was wholly unusable (Art. 29-1), from the moment the
    provider recognised it until it was restored. Timestamps must carry a zone."""

    recognised: AwareDatetime
    restored: AwareDatetime
    note: str = ""


class Suspension(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A suspension or restriction (Art. 21, 22). Recorded so the invoice can say it was
    charged as normal (Art. 14-2, 22-2); it never changes an amount."""

    start: dt.date
    end: dt.date | None = None
    reason: str = ""


class Usage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything billing needs to know about one contract: the input of every adapter.

    The usage file decodes into this; the accounts-database adapter builds the same struct
    from the dates user IDs, options, IDs, devices and numbers were added and removed.
    ``service_end`` is the last day of service (None while the contract runs).
    """

    contract: str
    service_start: dt.date
    service_end: dt.date | None = None
    changes: tuple[Change, ...] = ()
    outages: tuple[Outage, ...] = ()
    suspensions: tuple[Suspension, ...] = ()
    customer_name: str = ""


class Issuer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The provider as a qualified-invoice issuer (適格請求書発行事業者)."""

    name: str
    registration_number: str

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise BillingError("issuer name is empty; set the provider's registered name")
        if _REGISTRATION_RE.fullmatch(self.registration_number) is None:
            raise BillingError(
                f"registration number {self.registration_number!r} must be 'T' followed by "
                "13 digits, e.g. T1234567890123"
            )


class InvoiceLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line: ``amount == quantity * unit_price``. ``tax_rate`` None means outside
    consumption tax (late interest, the Art. 17 surcharge)."""

    code: str
    quantity: int
    unit_price: int
    amount: int
    label_ja: str
    label_en: str
    tax_rate: Decimal | None
    note: str = ""

    def __post_init__(self) -> None:
        if self.amount != self.quantity * self.unit_price:
            raise BillingError(
                f"line {self.code}: amount {self.amount} is not {self.quantity} x {self.unit_price}"
            )


class TaxSummary(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per tax rate: the taxable subtotal and its tax, truncated once (Art. 20)."""

    rate: Decimal
    taxable_subtotal: int
    tax: int


class Invoice(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An invoice or a credit note, with the qualified-invoice fields.

    ``subtotal`` is the sum of line amounts, ``tax`` the sum of ``taxes``, ``total`` their
    sum. A credit note (``kind == "credit_note"``) cancels the invoice ``refers_to``.
    """

    number: str
    kind: InvoiceKind
    contract: str
    customer_name: str
    month: str
    period_start: dt.date
    period_end: dt.date
    issue_date: dt.date
    issuer: Issuer | None
    lines: tuple[InvoiceLine, ...]
    taxes: tuple[TaxSummary, ...]
    non_taxable_subtotal: int
    subtotal: int
    tax: int
    total: int
    refers_to: str | None = None
    notes: tuple[str, ...] = ()


class Payment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Money the contract paid on ``date`` (tax included), for the Art. 29-6 cap."""

    date: dt.date
    amount: int
    invoice: str = ""


class LateInterest(msgspec.Struct, frozen=True):
    """Art. 18 interest: ``days`` that bear interest (0 within the grace period)."""

    days: int
    interest: int


class Correction(msgspec.Struct, frozen=True):
    """A corrected bill: the credit note cancelling the original, the replacement invoice,
    what is still due, and what was paid beyond the replacement (kept, Art. 14-3)."""

    credit_note: Invoice
    replacement: Invoice
    amount_due: int
    not_refunded: int
