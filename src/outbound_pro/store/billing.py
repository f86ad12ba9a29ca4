"""SQL for billing: recorded outages, issued invoices and credit notes, payments, mail status.

Issued invoices are insert-only: this module has no statement that updates or deletes a row of
``billing_invoices`` (rule 11: corrections are credit notes, which are new rows). The invoice
is stored as the JSON the library renders, so what was issued can be printed again byte for
byte whatever later versions of the billing code compute. The columns beside it (contract,
month, kind, revision, total, due date) exist only to find and total invoices in SQL.

Mail status lives in its own table so that recording a sent notice never touches an invoice.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

import msgspec

from outbound_pro.billing.model import Invoice, Outage
from outbound_pro.billing.render import from_json, to_json
from outbound_pro.store.db import Database


class InvoiceExists(Exception):
    """The number, or the contract's month at that revision, is already issued."""


class StoredInvoice(msgspec.Struct, frozen=True):
    """An issued invoice or credit note as kept: the document plus the facts to find it."""

    invoice: Invoice
    contract_id: int
    revision: int
    due_date: dt.date
    issued_at: dt.datetime

    @property
    def number(self) -> str:
        return self.invoice.number


class StoredPayment(msgspec.Struct, frozen=True):
    id: int
    invoice_number: str
    contract_id: int
    paid_on: dt.date
    amount: int
    recorded_at: dt.datetime


class MailStatus(msgspec.Struct, frozen=True):
    invoice_number: str
    address: str
    sent_at: dt.datetime | None
    attempts: int
    last_error: str


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


class BillingStore:
    """Queries for the billing tables. No permission checks: the billing service does them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- outages --------------------------------------------------------------------------

    def add_outage(self, contract_id: int, outage: Outage, at: dt.datetime) -> int:
        cur = self.db.execute(
            "INSERT INTO billing_outages (contract_id, recognised, restored, note, recorded_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                contract_id,
                outage.recognised.isoformat(),
                outage.restored.isoformat(),
                outage.note,
                _iso(at),
            ),
        )
        return int(cur.lastrowid or 0)

    def outages(self, contract_id: int) -> list[Outage]:
        rows = self.db.query(
            "SELECT recognised, restored, note FROM billing_outages WHERE contract_id = ?"
            " ORDER BY recognised, id",
            (contract_id,),
        )
        return [
            Outage(
                recognised=dt.datetime.fromisoformat(r["recognised"]),
                restored=dt.datetime.fromisoformat(r["restored"]),
                note=r["note"],
            )
            for r in rows
        ]

    # -- invoices -------------------------------------------------------------------------

    def insert_invoice(
        self,
        contract_id: int,
        invoice: Invoice,
        *,
        revision: int,
        due_date: dt.date,
        at: dt.datetime,
    ) -> StoredInvoice:
        """Insert an issued document; `InvoiceExists` if its number or slot is taken."""
        try:
            self.db.execute(
                "INSERT INTO billing_invoices (number, contract_id, month, kind, revision,"
                " refers_to, issue_date, due_date, total, body, issued_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    invoice.number,
                    contract_id,
                    invoice.month,
                    invoice.kind,
                    revision,
                    invoice.refers_to,
                    invoice.issue_date.isoformat(),
                    due_date.isoformat(),
                    invoice.total,
                    to_json(invoice).decode("utf-8"),
                    _iso(at),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise InvoiceExists(str(exc)) from None
        return StoredInvoice(invoice, contract_id, revision, due_date, at.astimezone(dt.UTC))

    @staticmethod
    def _stored(row: dict[str, Any]) -> StoredInvoice:
        return StoredInvoice(
            invoice=from_json(row["body"].encode("utf-8")),
            contract_id=int(row["contract_id"]),
            revision=int(row["revision"]),
            due_date=dt.date.fromisoformat(row["due_date"]),
            issued_at=dt.datetime.fromisoformat(row["issued_at"]),
        )

    def get_invoice(self, number: str) -> StoredInvoice | None:
        row = self.db.one("SELECT * FROM billing_invoices WHERE number = ?", (number,))
        return None if row is None else self._stored(row)

    def invoices(
        self, contract_id: int | None = None, month: str | None = None
    ) -> list[StoredInvoice]:
        """Issued documents, oldest first, optionally of one contract and/or one month."""
        where, params = [], []
        if contract_id is not None:
            where.append("contract_id = ?")
            params.append(contract_id)
        if month is not None:
            where.append("month = ?")
            params.append(month)
        sql = "SELECT * FROM billing_invoices"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.db.query(sql + " ORDER BY contract_id, month, revision, kind DESC", params)
        return [self._stored(r) for r in rows]

    def month_invoices(self, contract_id: int, month: str) -> list[StoredInvoice]:
        """Every invoice (not credit note) of a contract's month, by revision."""
        rows = self.db.query(
            "SELECT * FROM billing_invoices WHERE contract_id = ? AND month = ?"
            " AND kind = 'invoice' ORDER BY revision",
            (contract_id, month),
        )
        return [self._stored(r) for r in rows]

    def credit_note_for(self, number: str) -> StoredInvoice | None:
        row = self.db.one("SELECT * FROM billing_invoices WHERE refers_to = ?", (number,))
        return None if row is None else self._stored(row)

    # -- payments -------------------------------------------------------------------------

    def add_payment(
        self, invoice_number: str, contract_id: int, paid_on: dt.date, amount: int, at: dt.datetime
    ) -> StoredPayment:
        cur = self.db.execute(
            "INSERT INTO billing_payments (invoice_number, contract_id, paid_on, amount,"
            " recorded_at) VALUES (?, ?, ?, ?, ?)",
            (invoice_number, contract_id, paid_on.isoformat(), amount, _iso(at)),
        )
        return StoredPayment(
            int(cur.lastrowid or 0), invoice_number, contract_id, paid_on, amount, at
        )

    @staticmethod
    def _payment(row: dict[str, Any]) -> StoredPayment:
        return StoredPayment(
            id=int(row["id"]),
            invoice_number=row["invoice_number"],
            contract_id=int(row["contract_id"]),
            paid_on=dt.date.fromisoformat(row["paid_on"]),
            amount=int(row["amount"]),
            recorded_at=dt.datetime.fromisoformat(row["recorded_at"]),
        )

    def payments_of_invoice(self, invoice_number: str) -> list[StoredPayment]:
        rows = self.db.query(
            "SELECT * FROM billing_payments WHERE invoice_number = ? ORDER BY paid_on, id",
            (invoice_number,),
        )
        return [self._payment(r) for r in rows]

    def payments_of_contract(self, contract_id: int) -> list[StoredPayment]:
        rows = self.db.query(
            "SELECT * FROM billing_payments WHERE contract_id = ? ORDER BY paid_on, id",
            (contract_id,),
        )
        return [self._payment(r) for r in rows]

    # -- mail -----------------------------------------------------------------------------

    def queue_mail(self, invoice_number: str, address: str) -> None:
        """Note that *invoice_number*'s notice is due to *address* (kept if already noted)."""
        self.db.execute(
            "INSERT INTO billing_mail (invoice_number, address) VALUES (?, ?)"
            " ON CONFLICT (invoice_number) DO NOTHING",
            (invoice_number, address),
        )

    def mail_status(self, invoice_number: str) -> MailStatus | None:
        row = self.db.one("SELECT * FROM billing_mail WHERE invoice_number = ?", (invoice_number,))
        if row is None:
            return None
        return MailStatus(
            invoice_number=row["invoice_number"],
            address=row["address"],
            sent_at=None if row["sent_at"] is None else dt.datetime.fromisoformat(row["sent_at"]),
            attempts=int(row["attempts"]),
            last_error=row["last_error"],
        )

    def mail_result(self, invoice_number: str, at: dt.datetime, error: str | None) -> None:
        """Record one delivery attempt: sent (``error`` None) or failed with *error*."""
        if error is None:
            self.db.execute(
                "UPDATE billing_mail SET sent_at = ?, attempts = attempts + 1, last_error = ''"
                " WHERE invoice_number = ?",
                (_iso(at), invoice_number),
            )
        else:
            self.db.execute(
                "UPDATE billing_mail SET attempts = attempts + 1, last_error = ?"
                " WHERE invoice_number = ?",
                (error[:500], invoice_number),
            )
