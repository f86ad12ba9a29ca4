"""``outbound-pro billing``: invoices from a usage file or the database, the monthly run,
payments, outages and credit notes; late interest.

This is an adapter: it reads files, arguments and the database, calls the library and prints.
Errors go to stderr and say what to change: exit code 2 for bad input, 3 for something that
does not exist, 4 for a conflict (e.g. cancelling twice). The database commands take
``--data-dir`` or ``--config`` like the accounts commands and act as the local console. The
top-level ``outbound_pro.cli`` calls ``add_commands``; ``python -m outbound_pro.billing.cli
billing ...`` runs it on its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from outbound_pro.accounts.errors import AccountsError, Conflict, InvalidInput, NotFound
from outbound_pro.accounts.policy import SYSTEM
from outbound_pro.accounts.service import Actor
from outbound_pro.billing.errors import BillingError
from outbound_pro.billing.invoice import compute_invoice
from outbound_pro.billing.ledger import BillingService, today_in_japan
from outbound_pro.billing.mail import MailError, SmtpMailer
from outbound_pro.billing.model import Invoice, Issuer, Outage, Usage
from outbound_pro.billing.months import BillingMonth
from outbound_pro.billing.render import percent, to_csv, to_html, to_json, to_text, yen
from outbound_pro.billing.rules import late_interest
from outbound_pro.billing.run import Progress, RunItem, monthly_run
from outbound_pro.billing.tariff import Tariff, decode_version, load_tariff
from outbound_pro.billing.usage import decode_usage
from outbound_pro.config import Config, ConfigError, SmtpConfig, load_config
from outbound_pro.store import open_database
from outbound_pro.store.db import SchemaError

PROG = "outbound-pro billing"


class UsageFile:
    """A ``UsageSource`` backed by one usage file (the file names its contract)."""

    def __init__(self, path: Path, tariff: Tariff) -> None:
        self.path = path
        self.tariff = tariff

    def usage(self, contract: str | None = None) -> Usage:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise BillingError(f"cannot read usage file {self.path}: {exc.strerror}") from exc
        usage = decode_usage(data, self.tariff, source=str(self.path))
        if contract is not None and usage.contract != contract:
            raise BillingError(f"{self.path} is for contract {usage.contract}, not {contract}")
        return usage


def _month(text: str) -> BillingMonth:
    try:
        return BillingMonth.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-07-31"
        ) from None


def _amount(text: str) -> int:
    cleaned = text.replace(",", "").replace("_", "")
    if not cleaned.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an amount; give whole yen without a sign, e.g. 106920"
        )
    return int(cleaned)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _load_tariff(paths: Sequence[str]) -> Tariff:
    versions = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise BillingError(f"cannot read fee table {path}: {exc.strerror}") from exc
        versions.append(decode_version(data, source=path))
    return load_tariff(*versions)


def load_settings(path: str | None) -> tuple[Config, SmtpConfig]:
    """The configuration and its ``[smtp]`` table, with errors as billing errors."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise BillingError(str(exc)) from exc
    return config, config.smtp


def _issuer(args: argparse.Namespace) -> Issuer | None:
    config = load_settings(args.config)[0].billing
    name = args.issuer_name if args.issuer_name is not None else config.issuer_name
    number = (
        args.registration_number
        if args.registration_number is not None
        else config.registration_number
    )
    if not name and not number:
        return None
    if not name or not number:
        raise BillingError(
            "give both the issuer name and the registration number (--issuer-name and "
            "--registration-number, or issuer_name and registration_number under [billing])"
        )
    return Issuer(name=name, registration_number=number)


def _write(path: str, text: str, *, encoding: str = "utf-8") -> None:
    try:
        Path(path).write_text(text, encoding=encoding, newline="")
    except OSError as exc:
        raise BillingError(f"cannot write {path}: {exc.strerror}") from exc


def _print_invoice(args: argparse.Namespace, invoice: Invoice) -> None:
    if args.html:
        _write(args.html, to_html(invoice))
    if args.csv:
        # With a BOM so that Excel (common at Japanese customers) reads it as UTF-8.
        _write(args.csv, to_csv(invoice), encoding="utf-8-sig")
    if args.json:
        sys.stdout.buffer.write(to_json(invoice))
        sys.stdout.flush()
    else:
        sys.stdout.write(to_text(invoice))


def run_invoice(args: argparse.Namespace) -> int:
    """Compute one month's invoice from a usage file or the database and print or write it."""
    if args.contract is not None:
        return _with_service(args, _invoice_from_db)
    try:
        tariff = _load_tariff(args.tariff)
        issuer = _issuer(args)
        usage = UsageFile(Path(args.usage), tariff).usage()
        invoice = compute_invoice(
            usage,
            args.month,
            tariff=tariff,
            issuer=issuer,
            number=args.number,
            issue_date=args.issue_date,
        )
        _print_invoice(args, invoice)
    except BillingError as exc:
        return _fail(str(exc))
    return 0


def run_interest(args: argparse.Namespace) -> int:
    """Art. 18 late-payment interest for one overdue amount."""
    if args.paid < args.due:
        print(
            f"{PROG}: note: paid {args.paid} is before due {args.due}; no interest",
            file=sys.stderr,
        )
    try:
        tariff = load_tariff()
        result = late_interest(args.amount, args.due, args.paid, tariff=tariff)
    except BillingError as exc:
        return _fail(str(exc))
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        sys.stdout.flush()
        return 0
    rules = tariff.version_at(args.due).rules
    grace_end = args.due + dt.timedelta(days=rules.late_interest_grace_days)
    if result.days == 0:
        print(
            f"Overdue amount {yen(args.amount)} yen, due {args.due}, paid {args.paid}: paid by "
            f"{grace_end} (within {rules.late_interest_grace_days} days after the due date), "
            "so no interest (Art. 18).\ndays: 0\ninterest: 0"
        )
        return 0
    first = args.due + dt.timedelta(days=1)
    last = args.paid - dt.timedelta(days=1)
    print(
        f"Overdue amount {yen(args.amount)} yen, due {args.due}, paid {args.paid}.\n"
        f"Interest days {first} to {last}: {result.days}\n"
        f"{yen(args.amount)} x {percent(rules.late_interest_rate_per_year)} x {result.days} / "
        f"{rules.late_interest_days_per_year}, fraction of a yen truncated (Art. 18, 20)\n"
        f"days: {result.days}\ninterest: {result.interest}"
    )
    return 0


# -- database commands --------------------------------------------------------------------

_encoder = msgspec.json.Encoder(decimal_format="string")
DbCommand = Callable[[BillingService, Actor, argparse.Namespace], int]


def _data_dir(args: argparse.Namespace, config: Config) -> Path:
    return config.data_path if args.config else Path(args.data_dir)


def _with_service(args: argparse.Namespace, command: DbCommand) -> int:
    """Open the database named by --data-dir/--config, run *command* as the console, and
    turn errors into messages and exit codes (2 input, 3 not found, 4 conflict)."""
    try:
        config, _ = load_settings(args.config)
        tariff = _load_tariff(getattr(args, "tariff", []))
        issuer = _issuer(args) if hasattr(args, "issuer_name") else _config_issuer(config)
        db = open_database(_data_dir(args, config) / "outbound-pro.sqlite3")
    except (BillingError, SchemaError, OSError) as exc:
        return _fail(str(exc))
    try:
        service = BillingService(db, tariff=tariff, issuer=issuer)
        return command(service, Actor(SYSTEM, f"cli:{getpass.getuser()}"), args)
    except InvalidInput as exc:
        return _fail(f"invalid {exc.field}: {exc.message}")
    except NotFound as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 3
    except Conflict as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 4
    except (AccountsError, BillingError, MailError) as exc:
        return _fail(str(exc))
    finally:
        db.close()


def _config_issuer(config: Config) -> Issuer | None:
    name, number = config.billing.issuer_name, config.billing.registration_number
    return Issuer(name=name, registration_number=number) if name and number else None


def _emit(args: argparse.Namespace, value: Any, human: str) -> None:
    if args.json:
        sys.stdout.buffer.write(_encoder.encode(value) + b"\n")
    else:
        sys.stdout.write(human + "\n")
    sys.stdout.flush()


def _invoice_from_db(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    contract = service.find_contract(actor, args.contract)
    live = service.live_invoice(actor, contract.id, args.month)
    if live is not None and args.number is None and args.issue_date is None:
        invoice = live.invoice
    else:
        invoice = service.preview(actor, contract.id, args.month, issue_date=args.issue_date)
        if args.number:
            invoice = msgspec.structs.replace(invoice, number=args.number)
        print(
            f"{PROG}: note: draft computed from the database, not issued "
            f"(issue it with `billing run --month {args.month}`)",
            file=sys.stderr,
        )
    _print_invoice(args, invoice)
    return 0


def _usage(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    contract = service.find_contract(actor, args.contract)
    usage = service.usage(actor, contract.id)
    sys.stdout.buffer.write(msgspec.json.format(_encoder.encode(usage), indent=2) + b"\n")
    return 0


def _run(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    issue_date = args.issue_date or today_in_japan(service.clock())
    _, smtp = load_settings(args.config)
    mailer = None if args.no_mail else SmtpMailer(smtp)
    contracts = None
    if args.contract:
        contracts = [service.find_contract(actor, ref).id for ref in args.contract]
    config, _ = load_settings(args.config)
    out_dir = _data_dir(args, config) / "invoices"

    def report(item: RunItem) -> None:
        # Called right after the invoice is committed, before files and mail: a number
        # printed here is in the database whatever happens to this process next.
        if item.number is None:
            human = f"C-{item.contract_id}: not issued: {item.error}"
        else:
            verb = "issued" if item.created else "already issued"
            human = f"{verb} {item.number} total {yen(item.total or 0)}"
        _emit(args, item, human)

    try:
        items = monthly_run(
            service,
            actor,
            args.month,
            issue_date=issue_date,
            out_dir=out_dir,
            mailer=mailer,
            sender=smtp.from_address,
            contract_ids=contracts,
            on_item=report,
            progress=Progress(0),
        )
    finally:
        if mailer is not None:
            mailer.close()
    failed = [i for i in items if i.error or (i.mail_error and not args.no_mail)]
    for item in failed:
        print(
            f"{PROG}: error: C-{item.contract_id} {item.number or ''}: "
            f"{item.error or item.mail_error}",
            file=sys.stderr,
        )
    issued = sum(1 for i in items if i.created)
    existing = sum(1 for i in items if i.number is not None and not i.created)
    print(
        f"{PROG}: {args.month}: {issued} issued, {existing} already issued, "
        f"{len(failed)} with errors; files in {out_dir}",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _payment(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    service.record_payment(actor, args.invoice, paid_on=args.date, amount=args.amount)
    status = service.status(actor, args.invoice, as_of=args.date)
    _emit(
        args,
        status,
        f"payment of {yen(args.amount)} on {args.date} recorded for {args.invoice}: paid "
        f"{yen(status.paid)} of {yen(status.total)}, balance {yen(status.balance)}, "
        f"due {status.due_date}, late interest {yen(status.late_interest.interest)}",
    )
    return 0


def _status(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    status = service.status(actor, args.invoice, as_of=args.as_of)
    _emit(
        args,
        status,
        f"{status.number}: total {yen(status.total)}, paid {yen(status.paid)}, balance "
        f"{yen(status.balance)}, due {status.due_date}, late interest as of {status.as_of}: "
        f"{yen(status.late_interest.interest)}"
        + (f", cancelled by {status.cancelled_by}" if status.cancelled_by else ""),
    )
    return 0


def _list(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    contract_id = None
    if args.contract:
        contract_id = service.find_contract(actor, args.contract).id
    stored = service.invoices(actor, contract_id, args.month)
    rows = [
        {
            "number": s.number,
            "kind": s.invoice.kind,
            "contract_id": s.contract_id,
            "month": s.invoice.month,
            "issue_date": s.invoice.issue_date,
            "due_date": s.due_date,
            "total": s.invoice.total,
            "refers_to": s.invoice.refers_to,
        }
        for s in stored
    ]
    human = "\n".join(
        f"{r['number']:<22} {r['kind']:<12} {r['month']} {yen(int(str(r['total']))):>12}"
        for r in rows
    )
    _emit(args, rows, human or "(no invoices)")
    return 0


def _credit_note(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    issue_date = args.date or today_in_japan(service.clock())
    stored = service.cancel(actor, args.invoice, reason=args.reason, issue_date=issue_date)
    _emit(
        args,
        stored.invoice,
        f"credit note {stored.number} cancels {args.invoice} ({yen(stored.invoice.total)}); "
        f"issue the month again with `billing run --month {stored.invoice.month} --contract "
        f"{stored.contract_id}`",
    )
    return 0


def _outage_add(service: BillingService, actor: Actor, args: argparse.Namespace) -> int:
    contract = service.find_contract(actor, args.contract)
    outage = Outage(recognised=args.recognised, restored=args.restored, note=args.note)
    result = service.record_outage(actor, contract.id, outage)
    _emit(
        args,
        result,
        f"outage {result.id} recorded for C-{contract.id}; its credit goes on the {result.month} "
        "invoice" + (f"\nwarning: {result.warning}" if result.warning else ""),
    )
    if result.warning:
        print(f"{PROG}: warning: {result.warning}", file=sys.stderr)
    return 0


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time with a zone; write it as 2026-07-01T09:00:00+09:00"
        )
    return moment


def _db_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    where = parent.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir", default="data", help="data directory holding outbound-pro.sqlite3"
    )
    where.add_argument(
        "--config", metavar="FILE", help="TOML configuration: data_dir, [billing], [smtp]"
    )
    parent.add_argument("--json", action="store_true", help="print the result as JSON")
    return parent


def _db_command(
    sub: Any, name: str, help_text: str, command: DbCommand, parent: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, parents=[parent]
    )
    parser.set_defaults(func=lambda args: _with_service(args, command))
    return parser


def _add_db_commands(sub: Any) -> None:
    parent = _db_parent()
    run = _db_command(
        sub,
        "run",
        "the monthly run: issue, store, render (HTML, CSV) and e-mail every billed "
        "contract's invoice; re-running never issues twice",
        _run,
        parent,
    )
    run.add_argument("--month", required=True, type=_month, metavar="YYYY-MM")
    run.add_argument(
        "--issue-date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="invoice date (default: today in Japan; must be after the month)",
    )
    run.add_argument(
        "--contract",
        action="append",
        metavar="ID",
        help="only this contract (C-7, 7 or its domain); repeatable",
    )
    run.add_argument("--no-mail", action="store_true", help="issue and render, send nothing")

    usage = _db_command(
        sub, "usage", "print a contract's usage from the database as a usage file", _usage, parent
    )
    usage.add_argument("--contract", required=True, metavar="ID")

    payment = _db_command(
        sub, "payment", "record a payment received for an invoice", _payment, parent
    )
    payment.add_argument("--invoice", required=True, metavar="NO", help="e.g. C-7-202607")
    payment.add_argument("--date", required=True, type=_date, metavar="YYYY-MM-DD")
    payment.add_argument("--amount", required=True, type=_amount, metavar="N", help="yen")

    status = _db_command(
        sub, "status", "paid, balance and Art. 18 late interest of an invoice", _status, parent
    )
    status.add_argument("--invoice", required=True, metavar="NO")
    status.add_argument("--as-of", type=_date, metavar="YYYY-MM-DD", help="default: today")

    listing = _db_command(sub, "list", "issued invoices and credit notes", _list, parent)
    listing.add_argument("--contract", metavar="ID")
    listing.add_argument("--month", type=_month, metavar="YYYY-MM")

    credit = _db_command(
        sub,
        "credit-note",
        "cancel an issued invoice with a credit note (issued invoices never change)",
        _credit_note,
        parent,
    )
    credit.add_argument("--invoice", required=True, metavar="NO")
    credit.add_argument("--reason", required=True, help="why it is corrected (on the note)")
    credit.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="default: today")

    outage = sub.add_parser("outage", help="outages for the Art. 29 credit")
    outage_sub = outage.add_subparsers(dest="outage_command", metavar="ACTION", required=True)
    add = _db_command(
        outage_sub,
        "add",
        "record an outage in which the service was wholly unusable (Art. 29)",
        _outage_add,
        parent,
    )
    add.add_argument("--contract", required=True, metavar="ID")
    add.add_argument(
        "--recognised",
        required=True,
        type=_moment,
        metavar="TIME",
        help="when the provider recognised it, with zone: 2026-07-01T09:00:00+09:00",
    )
    add.add_argument("--restored", required=True, type=_moment, metavar="TIME")
    add.add_argument("--note", default="", help="what happened")


INVOICE_EPILOG = """\
usage file (JSON; dates are Japan dates, a removal's date is the unit's last day):
  {"contract": "C-1", "service_start": "2026-04-10", "service_end": null,
   "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 5},
               {"date": "2026-06-03", "unit": "predictive_booth", "delta": 3}],
   "outages": [{"recognised": "2026-07-01T09:00:00+09:00",
                "restored": "2026-07-03T10:00:00+09:00"}]}
units: booth, sub_admin_id, affiliation, extended_booth, predictive_booth, sip_device,
sip_number. Optional: "customer_name", "suspensions": [{"start", "end", "reason"}],
and "id" on a change to remove one specific unit.

example:
  outbound-pro billing invoice --usage c-1.json --month 2026-07 --json
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``billing`` with its ``invoice`` and ``interest`` subcommands."""
    billing = subparsers.add_parser(
        "billing",
        help="invoices from the fee table; late-payment interest",
        description="Billing by the service terms (Art. 14-20, 29 and the fee table): check "
        "one month's invoice from a usage file, or compute Art. 18 late-payment interest.",
    )
    sub = billing.add_subparsers(dest="billing_command", metavar="SUBCOMMAND", required=True)

    invoice = sub.add_parser(
        "invoice",
        help="one month's invoice from a usage file or the database",
        description="Compute the invoice of one billing month (Japan time) from a usage "
        "file. Prints a table, or JSON with --json; --html and --csv also write files.",
        epilog=INVOICE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = invoice.add_mutually_exclusive_group(required=True)
    source.add_argument("--usage", metavar="FILE.json", help="usage file of one contract")
    source.add_argument(
        "--contract",
        metavar="ID",
        help="a contract in the database (C-7, 7 or its domain): its issued invoice, or a "
        "draft when the month is not issued yet",
    )
    invoice.add_argument(
        "--month", required=True, type=_month, metavar="YYYY-MM", help="billing month"
    )
    invoice.add_argument(
        "--json",
        action="store_true",
        help="print JSON: lines (code, quantity, unit_price, amount, ...), subtotal, tax, total",
    )
    invoice.add_argument("--html", metavar="OUT", help="also write a printable HTML page")
    invoice.add_argument("--csv", metavar="OUT", help="also write CSV (UTF-8 with BOM)")
    invoice.add_argument(
        "--tariff",
        action="append",
        default=[],
        metavar="FILE.json",
        help="a later fee-table version (tariff.json shape plus 'effective' and 'announced'); "
        "refused if announced less than 30 days ahead (Art. 16). Repeatable.",
    )
    where = invoice.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration: [billing] gives the issuer, data_dir the database",
    )
    where.add_argument(
        "--data-dir", default="data", help="with --contract: directory of outbound-pro.sqlite3"
    )
    invoice.add_argument("--issuer-name", help="issuer (provider) name on the qualified invoice")
    invoice.add_argument(
        "--registration-number", metavar="T0000000000000", help="qualified-invoice registration"
    )
    invoice.add_argument(
        "--issue-date",
        type=_date,
        metavar="YYYY-MM-DD",
        help="invoice date (default: the first day of the next month)",
    )
    invoice.add_argument("--number", help="invoice number (default: CONTRACT-YYYYMM)")
    invoice.set_defaults(func=run_invoice)

    interest = sub.add_parser(
        "interest",
        help="Art. 18 late-payment interest",
        description="Late-payment interest (Art. 18): amount x 14.5% x days / 365, truncated; "
        "days run from the day after the due date to the day before payment; none when paid "
        "within 10 days after the due date.",
    )
    interest.add_argument(
        "--amount",
        required=True,
        type=_amount,
        metavar="N",
        help="overdue amount in yen, tax included, earlier interest excluded",
    )
    interest.add_argument(
        "--due", required=True, type=_date, metavar="YYYY-MM-DD", help="payment due date (支払期日)"
    )
    interest.add_argument(
        "--paid", required=True, type=_date, metavar="YYYY-MM-DD", help="date the payment arrived"
    )
    interest.add_argument("--json", action="store_true", help='print {"days": D, "interest": N}')
    interest.set_defaults(func=run_interest)

    _add_db_commands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m outbound_pro.billing.cli billing ...``)."""
    parser = argparse.ArgumentParser(prog="outbound-pro", description="Outbound Pro billing")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
