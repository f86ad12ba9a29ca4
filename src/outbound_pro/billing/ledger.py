"""The provider's books: issuing, storing and correcting invoices; payments; outages.

This is the adapter between the pure billing library and the database. Every method takes an
`Actor` and asks `accounts.policy` first (``billing.view`` / ``billing.manage``), so the CLI (as
the console) and the API enforce the same rules; another contract's invoice is `NotFound`,
exactly like one that does not exist.

Numbering: a contract's month is ``C-<contract id>-<YYYYMM>`` (``C-7-202607``). An issued
document is never changed (rule 11); a correction is a credit note ``<number>-CN`` that cancels
the invoice in full, after which issuing the month again gives the replacement
``C-7-202607-R1`` (then ``-R2`` ...). At most one invoice per contract and month is live (not
cancelled), which is what makes the monthly run idempotent.

Due date (Art. 15 leaves it to the provider): the last day of the month the invoice is issued
in, or of the next month when fewer than 14 days would remain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from fractions import Fraction

import msgspec

from outbound_pro.accounts.errors import Conflict, InvalidInput, NotFound
from outbound_pro.accounts.models import Contract
from outbound_pro.accounts.policy import Action, Target, require
from outbound_pro.accounts.service import Actor
from outbound_pro.billing.accounts_usage import (
    NEVER_SERVED,
    AccountsUsage,
    contract_ref,
    parse_contract_ref,
)
from outbound_pro.billing.errors import BillingError, UsageError
from outbound_pro.billing.invoice import compute_invoice, credit_note
from outbound_pro.billing.model import Invoice, Issuer, Outage, Payment, Usage
from outbound_pro.billing.months import TOKYO, BillingMonth, tokyo_date
from outbound_pro.billing.rules import late_interest, liability_cap, truncate
from outbound_pro.billing.tariff import Tariff, packaged_tariff
from outbound_pro.billing.usage import build_timeline
from outbound_pro.store.accounts import AccountsStore
from outbound_pro.store.billing import (
    BillingStore,
    InvoiceExists,
    StoredInvoice,
    StoredPayment,
)
from outbound_pro.store.db import Database

#: Fewer days than this between issue and the end of the issue month push the due date to
#: the end of the next month, so a customer always has at least two weeks to pay.
MIN_DAYS_TO_PAY = 14


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def today_in_japan(now: dt.datetime) -> dt.date:
    return now.astimezone(TOKYO).date()


def due_date_for(issue_date: dt.date) -> dt.date:
    """The payment due date of an invoice issued on *issue_date* (see the module docstring)."""
    end = BillingMonth.of(issue_date).last_day
    if (end - issue_date).days < MIN_DAYS_TO_PAY:
        end = BillingMonth.of(issue_date).shift(1).last_day
    return end


class Issued(msgspec.Struct, frozen=True):
    """The outcome of issuing one contract's month: ``created`` is False when the month was
    already issued and the existing invoice is returned unchanged."""

    stored: StoredInvoice
    created: bool


class InterestDue(msgspec.Struct, frozen=True):
    """Art. 18 interest of one invoice: interest-bearing yen-days and the truncated amount."""

    yen_days: int
    interest: int


class InvoiceStatus(msgspec.Struct, frozen=True):
    """Where an invoice stands: paid so far, balance, and the late interest it has earned
    (on payments made late, and on the unpaid balance up to ``as_of``)."""

    number: str
    contract_id: int
    kind: str
    total: int
    due_date: dt.date
    paid: int
    balance: int
    cancelled_by: str | None
    late_interest: InterestDue
    as_of: dt.date


class OutageRecorded(msgspec.Struct, frozen=True):
    """A recorded outage; ``warning`` is set when its month's invoice is already issued (the
    credit then needs a credit note and a reissue to reach the customer)."""

    id: int
    contract_id: int
    month: str
    warning: str = ""


class BillingService:
    """Billing over the database, with permission checks. One per database connection."""

    def __init__(
        self,
        db: Database,
        *,
        tariff: Tariff | None = None,
        issuer: Issuer | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.store = BillingStore(db)
        self.accounts = AccountsStore(db)
        self.source = AccountsUsage(self.accounts, self.store)
        self.tariff = tariff or packaged_tariff()
        self.issuer = issuer
        self.clock = clock

    # -- plumbing -------------------------------------------------------------------------

    def contract(self, actor: Actor, action: Action, contract_id: int) -> Contract:
        contract = self.accounts.get_contract(contract_id)
        if contract is None:
            raise NotFound(f"no contract {contract_id}")
        require(actor.principal, action, Target(contract_id=contract_id))
        return contract

    def find_contract(
        self, actor: Actor, ref: str, action: Action = Action.BILLING_VIEW
    ) -> Contract:
        """By ``C-7``, ``7`` or SIP domain (what an operator types)."""
        contract_id = parse_contract_ref(ref)
        found = (
            self.accounts.get_contract(contract_id)
            if contract_id is not None
            else self.accounts.contract_by_domain(ref.strip().lower())
        )
        if found is None:
            raise NotFound(f"no contract {ref!r}; list them with `outbound-pro contract list`")
        return self.contract(actor, action, found.id)

    def usage(self, actor: Actor, contract_id: int) -> Usage:
        return self.source.usage_of(self.contract(actor, Action.BILLING_VIEW, contract_id))

    def _invoice_for(self, actor: Actor, number: str, action: Action) -> StoredInvoice:
        stored = self.store.get_invoice(number)
        if stored is None:
            raise NotFound(f"no invoice {number!r}")
        self.contract(actor, action, stored.contract_id)
        return stored

    def _live(self, contract_id: int, month: BillingMonth) -> tuple[StoredInvoice | None, int]:
        """The month's invoice that is not cancelled (if any) and the next free revision."""
        issued = self.store.month_invoices(contract_id, str(month))
        for stored in reversed(issued):
            if self.store.credit_note_for(stored.number) is None:
                return stored, len(issued)
        return None, len(issued)

    # -- computing and issuing ------------------------------------------------------------

    def preview(
        self, actor: Actor, contract_id: int, month: BillingMonth, *, issue_date: dt.date | None
    ) -> Invoice:
        """The month's invoice as it would be issued now, without storing anything."""
        usage = self.usage(actor, contract_id)
        return compute_invoice(
            usage, month, tariff=self.tariff, issuer=self.issuer, issue_date=issue_date
        )

    def live_invoice(
        self, actor: Actor, contract_id: int, month: BillingMonth
    ) -> StoredInvoice | None:
        self.contract(actor, Action.BILLING_VIEW, contract_id)
        return self._live(contract_id, month)[0]

    def in_service(self, actor: Actor, month: BillingMonth) -> list[Contract]:
        """Contracts to bill for *month*: in service on at least one of its days (a contract
        that ended during the month gets its last invoice, minimum-period charges included;
        suspended and restricted ones are charged as normal, Art. 14-2, 22-2)."""
        require(actor.principal, Action.BILLING_MANAGE, Target())
        return [
            c
            for c in self.accounts.list_contracts()
            if c.status not in NEVER_SERVED
            and c.start_date is not None
            and c.start_date <= month.last_day
            and (c.end_date is None or c.end_date >= month.first_day)
        ]

    def issue(
        self, actor: Actor, contract_id: int, month: BillingMonth, *, issue_date: dt.date
    ) -> Issued:
        """Issue and store *month*'s invoice, unless a live one exists (then return it).

        One transaction: the invoice and its pending notice are committed together before
        this returns, so an invoice reported as issued survives the process being killed.
        """
        contract = self.contract(actor, Action.BILLING_MANAGE, contract_id)
        if issue_date <= month.last_day:
            raise InvalidInput(
                "issue_date",
                f"{month} is not over on {issue_date}; issue its invoice from "
                f"{month.shift(1).first_day} on",
            )
        if self.issuer is None:
            raise BillingError(
                "no issuer: set issuer_name and registration_number under [billing] in the "
                "configuration; a qualified invoice needs them"
            )
        with self.db.transaction():
            live, revision = self._live(contract_id, month)
            if live is not None:
                return Issued(live, created=False)
            usage = self.source.usage_of(contract)
            base = f"{contract_ref(contract_id)}-{month.year:04d}{month.month:02d}"
            invoice = compute_invoice(
                usage,
                month,
                tariff=self.tariff,
                issuer=self.issuer,
                number=base if revision == 0 else f"{base}-R{revision}",
                issue_date=issue_date,
            )
            try:
                stored = self.store.insert_invoice(
                    contract_id,
                    invoice,
                    revision=revision,
                    due_date=due_date_for(issue_date),
                    at=self.clock(),
                )
            except InvoiceExists as exc:
                raise Conflict(f"invoice {invoice.number} is already issued") from exc
            self.store.queue_mail(invoice.number, contract.email)
        return Issued(stored, created=True)

    def cancel(
        self, actor: Actor, number: str, *, reason: str, issue_date: dt.date
    ) -> StoredInvoice:
        """Cancel an issued invoice with a credit note ``<number>-CN`` (rule 11)."""
        original = self._invoice_for(actor, number, Action.BILLING_MANAGE)
        if original.invoice.kind != "invoice":
            raise Conflict(f"{number} is a credit note; only invoices can be cancelled")
        with self.db.transaction():
            existing = self.store.credit_note_for(number)
            if existing is not None:
                raise Conflict(f"{number} is already cancelled by {existing.number}")
            try:
                note = credit_note(
                    original.invoice, number=f"{number}-CN", issue_date=issue_date, reason=reason
                )
            except BillingError as exc:
                field = "reason" if "reason" in str(exc) else "issue_date"
                raise InvalidInput(field, str(exc)) from exc
            try:
                stored = self.store.insert_invoice(
                    original.contract_id,
                    note,
                    revision=original.revision,
                    due_date=issue_date,
                    at=self.clock(),
                )
            except InvoiceExists as exc:
                raise Conflict(f"{number} is already cancelled") from exc
            contract = self.accounts.get_contract(original.contract_id)
            if contract is not None:
                self.store.queue_mail(note.number, contract.email)
        return stored

    # -- reading --------------------------------------------------------------------------

    def invoices(
        self, actor: Actor, contract_id: int | None = None, month: BillingMonth | None = None
    ) -> list[StoredInvoice]:
        """Issued documents; without *contract_id* every contract's (the provider only)."""
        if contract_id is None:
            require(actor.principal, Action.BILLING_MANAGE, Target())
        else:
            self.contract(actor, Action.BILLING_VIEW, contract_id)
        return self.store.invoices(contract_id, None if month is None else str(month))

    def invoice(self, actor: Actor, number: str) -> StoredInvoice:
        return self._invoice_for(actor, number, Action.BILLING_VIEW)

    # -- payments -------------------------------------------------------------------------

    def record_payment(
        self, actor: Actor, number: str, *, paid_on: dt.date, amount: int
    ) -> StoredPayment:
        """Record money received for an invoice (tax included). Overpayment is accepted and
        shows as a negative balance: paid fees are not refunded (Art. 14-3)."""
        stored = self._invoice_for(actor, number, Action.BILLING_MANAGE)
        if stored.invoice.kind != "invoice":
            raise InvalidInput("invoice", f"{number} is a credit note; payments go to invoices")
        if amount <= 0:
            raise InvalidInput("amount", f"{amount} is not a payment; give whole yen above 0")
        if paid_on < stored.invoice.issue_date:
            raise InvalidInput(
                "date",
                f"{paid_on} is before invoice {number} was issued ({stored.invoice.issue_date})",
            )
        with self.db.transaction():
            return self.store.add_payment(number, stored.contract_id, paid_on, amount, self.clock())

    def status(self, actor: Actor, number: str, *, as_of: dt.date | None = None) -> InvoiceStatus:
        """Paid, balance and Art. 18 interest of one invoice.

        Each payment settles its share of the total; a share paid late bears interest from
        the day after the due date to the day before it was paid (none within the 10-day
        grace), and an unpaid balance bears it up to the day before *as_of*. The yen-days are
        added up and truncated once, so splitting a payment never loses the customer a yen.
        """
        stored = self.invoice(actor, number)
        as_of = as_of or today_in_japan(self.clock())
        payments = self.store.payments_of_invoice(number)
        cancelled = self.store.credit_note_for(number)
        total = stored.invoice.total
        remaining = total if stored.invoice.kind == "invoice" else 0
        yen_days = 0
        for payment in payments:
            share = min(payment.amount, remaining)
            if share > 0:
                days = late_interest(share, stored.due_date, payment.paid_on, tariff=self.tariff)
                yen_days += share * days.days
                remaining -= share
        if remaining > 0 and cancelled is None and as_of > stored.due_date:
            days = late_interest(remaining, stored.due_date, as_of, tariff=self.tariff)
            yen_days += remaining * days.days
        rules = self.tariff.version_at(stored.due_date).rules
        interest = truncate(
            Fraction(yen_days)
            * Fraction(rules.late_interest_rate_per_year)
            / rules.late_interest_days_per_year
        )
        paid = sum(p.amount for p in payments)
        return InvoiceStatus(
            number=number,
            contract_id=stored.contract_id,
            kind=stored.invoice.kind,
            total=total,
            due_date=stored.due_date,
            paid=paid,
            balance=(0 if cancelled is not None else total) - paid,
            cancelled_by=None if cancelled is None else cancelled.number,
            late_interest=InterestDue(yen_days, interest),
            as_of=as_of,
        )

    def liability_cap(self, actor: Actor, contract_id: int, cause: dt.date) -> int:
        """Art. 29-6: what the contract paid in the 3 months before *cause*."""
        self.contract(actor, Action.BILLING_VIEW, contract_id)
        payments = [
            Payment(date=p.paid_on, amount=p.amount, invoice=p.invoice_number)
            for p in self.store.payments_of_contract(contract_id)
        ]
        return liability_cap(payments, cause, tariff=self.tariff)

    # -- outages --------------------------------------------------------------------------

    def record_outage(self, actor: Actor, contract_id: int, outage: Outage) -> OutageRecorded:
        """Record an Art. 29 outage after the same checks a usage file gets (zones, order,
        within the service period)."""
        contract = self.contract(actor, Action.BILLING_MANAGE, contract_id)
        for name in ("recognised", "restored"):
            if getattr(outage, name).tzinfo is None:
                raise InvalidInput(name, "needs a time zone, e.g. 2026-07-01T09:00:00+09:00")
        usage = self.source.usage_of(contract)
        checked = msgspec.structs.replace(usage, outages=(outage,))
        try:
            build_timeline(checked, self.tariff)
        except UsageError as exc:
            field = "restored" if "restored" in exc.message.split(" ", 1)[0] else "recognised"
            raise InvalidInput(field, exc.message) from exc
        month = BillingMonth.of(tokyo_date(outage.restored))
        with self.db.transaction():
            outage_id = self.store.add_outage(contract_id, outage, self.clock())
            live = self._live(contract_id, month)[0]
        warning = ""
        if live is not None:
            warning = (
                f"invoice {live.number} for {month} is already issued without this credit; "
                f"cancel it (credit note) and issue {month} again to include it"
            )
        return OutageRecorded(outage_id, contract_id, str(month), warning)
