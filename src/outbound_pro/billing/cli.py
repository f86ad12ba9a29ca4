"""``outbound-pro billing``: check a month's invoice from a usage file, compute late interest.

This is an adapter: it reads files and arguments, calls the pure library and prints. Errors go
to stderr with exit code 2 and say what to change. The top-level ``outbound_pro.cli`` calls
``add_commands``; ``python -m outbound_pro.billing.cli billing ...`` runs it on its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from outbound_pro.billing.errors import BillingError
from outbound_pro.billing.invoice import compute_invoice
from outbound_pro.billing.model import Issuer, Usage
from outbound_pro.billing.months import BillingMonth
from outbound_pro.billing.render import percent, to_csv, to_html, to_json, to_text, yen
from outbound_pro.billing.rules import late_interest
from outbound_pro.billing.tariff import Tariff, decode_version, load_tariff
from outbound_pro.billing.usage import decode_usage
from outbound_pro.config import BillingConfig, ConfigError, load_config

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


def _issuer(args: argparse.Namespace) -> Issuer | None:
    config = BillingConfig()
    if args.config:
        try:
            config = load_config(args.config).billing
        except ConfigError as exc:
            raise BillingError(str(exc)) from exc
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


def run_invoice(args: argparse.Namespace) -> int:
    """Compute one month's invoice from a usage file and print or write it."""
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
        if args.html:
            _write(args.html, to_html(invoice))
        if args.csv:
            # With a BOM so that Excel (common at Japanese customers) reads it as UTF-8.
            _write(args.csv, to_csv(invoice), encoding="utf-8-sig")
    except BillingError as exc:
        return _fail(str(exc))
    if args.json:
        sys.stdout.buffer.write(to_json(invoice))
        sys.stdout.flush()
    else:
        sys.stdout.write(to_text(invoice))
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
        help="one month's invoice from a usage file",
        description="Compute the invoice of one billing month (Japan time) from a usage "
        "file. Prints a table, or JSON with --json; --html and --csv also write files.",
        epilog=INVOICE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    invoice.add_argument(
        "--usage", required=True, metavar="FILE.json", help="usage file of one contract"
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
    invoice.add_argument(
        "--config", metavar="FILE", help="TOML configuration; its [billing] table gives the issuer"
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


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m outbound_pro.billing.cli billing ...``)."""
    parser = argparse.ArgumentParser(prog="outbound-pro", description="Outbound Pro billing")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
