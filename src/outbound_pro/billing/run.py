"""The monthly run: issue, store, render and mail every billed contract's invoice.

Order per contract, chosen so that a crash at any point loses nothing and duplicates nothing:

1. issue (one committed transaction: the invoice and its pending notice),
2. report the number (only now is it safe to say "issued"),
3. write the HTML and CSV into ``<data dir>/invoices/<YYYY-MM>/`` (atomically: temp + rename),
4. send the notice and record the result.

Re-running the month finds the live invoice instead of issuing a second one, rewrites the
files from the stored document and sends any notice not yet sent (including notices of credit
notes). A crash between a successful send and recording it sends that notice again on the
next run: a duplicate notice is better than a missing one.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import msgspec

from outbound_pro.accounts.errors import AccountsError
from outbound_pro.accounts.service import Actor
from outbound_pro.billing.errors import BillingError
from outbound_pro.billing.ledger import BillingService
from outbound_pro.billing.mail import MailError, SmtpMailer, compose
from outbound_pro.billing.months import BillingMonth
from outbound_pro.billing.render import to_csv, to_html
from outbound_pro.store.billing import StoredInvoice


class RunItem(msgspec.Struct, frozen=True):
    """One contract's outcome. ``error`` is set when it could not be issued at all;
    ``mail_error`` when it was issued but its notice could not be sent."""

    contract_id: int
    number: str | None = None
    created: bool = False
    total: int | None = None
    html: str | None = None
    csv: str | None = None
    mailed: bool = False
    mail_error: str = ""
    error: str = ""


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per step
    otherwise (logs and pipes keep every step instead of a smear of carriage returns)."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"[{bar}] {self.done}/{self.total} {label}"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def write_atomic(path: Path, data: bytes) -> None:
    """Write *data* to *path* so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def render_files(stored: StoredInvoice, out_dir: Path) -> tuple[Path, Path]:
    """The printable HTML and the CSV (UTF-8 with BOM, for Excel) of a stored invoice."""
    folder = out_dir / stored.invoice.month
    html = folder / f"{stored.number}.html"
    csv = folder / f"{stored.number}.csv"
    write_atomic(html, to_html(stored.invoice).encode("utf-8"))
    write_atomic(csv, to_csv(stored.invoice).encode("utf-8-sig"))
    return html, csv


def _send(
    service: BillingService, stored: StoredInvoice, mailer: SmtpMailer | None, sender: str
) -> tuple[bool, str]:
    status = service.store.mail_status(stored.number)
    if status is None or status.sent_at is not None:
        return status is not None, ""
    if mailer is None:
        return False, "not sent: no mail server configured"
    message = compose(
        stored.invoice,
        to=status.address,
        sender=sender,
        due_date=stored.due_date.isoformat(),
        html=to_html(stored.invoice),
        csv=to_csv(stored.invoice),
    )
    try:
        mailer.send(message)
    except MailError as exc:
        service.store.mail_result(stored.number, service.clock(), str(exc))
        return False, str(exc)
    service.store.mail_result(stored.number, service.clock(), None)
    return True, ""


def monthly_run(
    service: BillingService,
    actor: Actor,
    month: BillingMonth,
    *,
    issue_date: dt.date,
    out_dir: Path,
    mailer: SmtpMailer | None,
    sender: str = "",
    contract_ids: Sequence[int] | None = None,
    on_item: Callable[[RunItem], None] = lambda item: None,
    progress: Progress | None = None,
) -> list[RunItem]:
    """Run *month* for every contract in service (or only *contract_ids*)."""
    if contract_ids is None:
        contracts = [c.id for c in service.in_service(actor, month)]
    else:
        contracts = list(contract_ids)
    progress = progress or Progress(len(contracts))
    progress.total = len(contracts)
    items: list[RunItem] = []
    for contract_id in contracts:
        try:
            issued = service.issue(actor, contract_id, month, issue_date=issue_date)
        except (BillingError, AccountsError) as exc:
            item = RunItem(contract_id, error=str(exc))
            items.append(item)
            on_item(item)
            progress.step(f"C-{contract_id}: error")
            continue
        stored = issued.stored
        head = RunItem(contract_id, stored.number, issued.created, stored.invoice.total)
        on_item(head)
        html, csv = render_files(stored, out_dir)
        mailed, mail_error = False, ""
        # Every document of the month: credit notes of cancelled invoices have notices too.
        for document in service.store.invoices(contract_id, str(month)):
            if document.number != stored.number:
                render_files(document, out_dir)
            sent, error = _send(service, document, mailer, sender)
            if document.number == stored.number:
                mailed, mail_error = sent, error
        items.append(
            msgspec.structs.replace(
                head, html=str(html), csv=str(csv), mailed=mailed, mail_error=mail_error
            )
        )
        progress.step(stored.number)
    return items
