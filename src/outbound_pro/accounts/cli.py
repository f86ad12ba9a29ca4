"""Operator commands: ``outbound-pro operator|contract|user|subadmin|affiliation|device|trunk|
audit|provision ...``.

Each command opens the database (``--data-dir``, or ``data_dir`` from ``--config``), acts as the
local console (policy role SYSTEM: whoever can run commands on the server already owns its
data), and prints either a short human summary or, with ``--json``, the record(s) as JSON.
Every change is in the audit log with actor ``system:console`` and source ``cli:<user>``.

Passwords: ``--password-stdin`` reads one line from standard input; ``--password`` works but is
visible in the process list; with neither, a password is generated and printed once.
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

from outbound_pro.accounts import provision
from outbound_pro.accounts.errors import AccountsError, Conflict, Forbidden, InvalidInput, NotFound
from outbound_pro.accounts.models import AffiliationPolicy, ContractStatus, Hours, IdStatus, Role
from outbound_pro.accounts.passwords import PreparedPassword, prepare_password
from outbound_pro.accounts.policy import SYSTEM
from outbound_pro.accounts.service import AccountService, Actor
from outbound_pro.config import ConfigError, load_config
from outbound_pro.store import open_database
from outbound_pro.store.db import SchemaError

_encoder = msgspec.json.Encoder()
Command = Callable[[AccountService, Actor, argparse.Namespace], Any]


class CliError(Exception):
    """A problem with the command line itself, with what to do next."""


def _database_path(args: argparse.Namespace) -> Path:
    if args.config:
        return load_config(args.config).database_path
    return Path(args.data_dir) / "outbound-pro.sqlite3"


def _out(args: argparse.Namespace, value: Any, human: str) -> None:
    if args.json:
        sys.stdout.write(_encoder.encode(value).decode() + "\n")
    else:
        print(human)


def _password(args: argparse.Namespace, field: str = "password") -> PreparedPassword:
    plain: str | None = getattr(args, field, None)
    if getattr(args, f"{field}_stdin", False):
        plain = sys.stdin.readline().rstrip("\r\n")
    return prepare_password(plain)


def _generated(prepared: PreparedPassword) -> str:
    return f"\npassword (shown once, store it now): {prepared.plain}" if prepared.generated else ""


def runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """Open the database, run *command*, turn errors into messages and exit codes."""

    def run(args: argparse.Namespace) -> int:
        try:
            path = _database_path(args)
            db = open_database(path)
        except (ConfigError, SchemaError, OSError) as exc:
            print(f"outbound-pro: {exc}", file=sys.stderr)
            return 2
        try:
            actor = Actor(SYSTEM, f"cli:{getpass.getuser()}")
            result = command(AccountService(db), actor, args)
            return int(result) if isinstance(result, int) else 0
        except InvalidInput as exc:
            print(f"outbound-pro: invalid {exc.field}: {exc.message}", file=sys.stderr)
            return 2
        except NotFound as exc:
            print(f"outbound-pro: {exc}", file=sys.stderr)
            return 3
        except (Conflict, Forbidden) as exc:
            print(f"outbound-pro: {exc}", file=sys.stderr)
            return 4
        except (CliError, AccountsError, provision.ProvisionError) as exc:
            print(f"outbound-pro: {exc}", file=sys.stderr)
            return 2
        finally:
            db.close()

    return run


# -- operators ---------------------------------------------------------------------------


def _operator_create(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    prepared = _password(args)
    op = s.create_operator(a, args.login, prepared)
    _out(
        args,
        {
            "id": op.id,
            "login": op.login,
            "password": prepared.plain if prepared.generated else None,
        },
        f"operator {op.login} ready{_generated(prepared)}",
    )


def _operator_list(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    ops = s.list_operators(a)
    _out(args, ops, "\n".join(o.login for o in ops) or "(no operators)")


# -- contracts ---------------------------------------------------------------------------


def _contract_line(c: Any) -> str:
    dates = f" start={c.start_date}" if c.start_date else ""
    dates += f" end={c.end_date}" if c.end_date else ""
    return f"{c.id}\t{c.status.value}\t{c.domain}\t{c.name}{dates}"


def _contract_apply(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.apply_contract(
        a, name=args.name, email=args.email, domain=args.domain, start_date=args.start_date
    )
    _out(
        args,
        c,
        f"application {c.id} recorded ({c.domain}); approve with "
        f"`outbound-pro contract approve {c.domain}`",
    )


def _contract_approve(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    prepared = _password(args)
    issued = s.approve_contract(
        a, c.id, admin_login=args.admin_id, admin_password=prepared, start_date=args.start_date
    )
    _out(
        args,
        issued,
        f"contract {c.domain} approved; admin ID {issued.login}@{c.domain} "
        f"admin URL {issued.admin_url}{_generated(prepared)}",
    )


def _contract_refuse(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.refuse_contract(a, s.find_contract(a, args.contract).id, reason=args.reason)
    _out(args, c, _contract_line(c))


def _transition(name: str) -> Command:
    def command(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
        cid = s.find_contract(a, args.contract).id
        if name == "suspend":
            c = s.suspend_contract(a, cid, reason=args.reason, emergency=args.emergency)
        elif name == "restrict":
            c = s.restrict_contract(a, cid, reason=args.reason, emergency=args.emergency)
        elif name == "reinstate":
            c = s.reinstate_contract(a, cid, reason=args.reason)
        else:
            c = s.terminate_contract(a, cid, end_date=args.end_date, reason=args.reason)
        _out(args, c, _contract_line(c))

    return command


def _contract_list(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    status = ContractStatus(args.status) if args.status else None
    cs = s.list_contracts(a, status)
    _out(args, cs, "\n".join(_contract_line(c) for c in cs) or "(no contracts)")


def _contract_show(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    units = s.usage_units(a, c.id)
    doc = {"contract": c, "usage_units": units, "notices": s.notices(a, c.id)}
    human = [_contract_line(c), f"email {c.email}"]
    if c.refusal_reason:
        human.append(f"refused: {c.refusal_reason}")
    if c.status_reason:
        human.append(f"reason: {c.status_reason}")
    human += [
        f"  {u.kind} {u.ref} from {u.added_at:%Y-%m-%d}"
        + (f" to {u.removed_at:%Y-%m-%d}" if u.removed_at else "")
        for u in units
    ]
    _out(args, doc, "\n".join(human))


def _contract_reissue(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    prepared = _password(args)
    issued = s.reissue_admin(a, c.id, prepared)
    _out(args, issued, f"new password for {issued.login}@{c.domain}{_generated(prepared)}")


# -- IDs ---------------------------------------------------------------------------------


def _id_line(i: Any) -> str:
    nums = ",".join(i.numbers)
    aff = f" affiliation={i.affiliation_id}" if i.affiliation_id is not None else ""
    return f"{i.id}\t{i.login}\t{i.status.value}{aff}\t{nums}"


def _aff_id(s: AccountService, a: Actor, cid: int, name: str | None) -> int | None:
    if name is None or name == "":
        return None
    return s.find_affiliation(a, cid, name).id


def _user_add(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    prepared = _password(args)
    i = s.create_user(
        a,
        c.id,
        login=args.login,
        password=prepared,
        display_name=args.display_name,
        affiliation_id=_aff_id(s, a, c.id, args.affiliation),
        numbers=args.number or [],
        sip_password=args.sip_password,
    )
    _out(
        args,
        {"identity": i, "password": prepared.plain if prepared.generated else None},
        f"user {i.login}@{c.domain} created{_generated(prepared)}",
    )


def _user_list(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    ids = s.list_ids(a, c.id, Role.USER)
    _out(args, ids, "\n".join(_id_line(i) for i in ids) or "(no users)")


def _user_show(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    i = s.find_id(a, c.id, args.login)
    _out(args, i, _id_line(i))


def _user_revoke(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    i = s.revoke_id(a, s.find_id(a, c.id, args.login).id)
    _out(args, i, f"{i.login}@{c.domain} revoked; its registrations and sessions ended")


def _user_passwd(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    i = s.find_id(a, c.id, args.login)
    prepared = _password(args)
    s.reset_password(a, i.id, prepared, sip_password=args.sip_password)
    _out(
        args,
        {"login": i.login, "password": prepared.plain if prepared.generated else None},
        f"password of {i.login}@{c.domain} changed{_generated(prepared)}",
    )


def _user_set(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    i = s.find_id(a, c.id, args.login)
    kwargs: dict[str, Any] = {}
    if args.display_name is not None:
        kwargs["display_name"] = args.display_name
    if args.affiliation is not None:
        kwargs["affiliation_id"] = _aff_id(s, a, c.id, args.affiliation)
    if args.status is not None:
        kwargs["status"] = IdStatus(args.status)
    i = s.update_user(a, i.id, **kwargs)
    _out(args, i, _id_line(i))


def _user_number(add: bool) -> Command:
    def command(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
        c = s.find_contract(a, args.contract)
        i = s.find_id(a, c.id, args.login)
        i = s.bind_number(a, i.id, args.number) if add else s.unbind_number(a, i.id, args.number)
        _out(args, i, _id_line(i))

    return command


def _subadmin_add(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    scope = (
        [s.find_affiliation(a, c.id, n).id for n in args.affiliation] if args.affiliation else None
    )
    prepared = _password(args)
    i = s.create_subadmin(
        a, c.id, login=args.login, password=prepared, display_name=args.display_name, scope=scope
    )
    _out(
        args,
        {"identity": i, "password": prepared.plain if prepared.generated else None},
        f"sub-admin {i.login}@{c.domain} created{_generated(prepared)}",
    )


def _subadmin_list(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    ids = s.list_ids(a, c.id, Role.SUBADMIN)
    _out(
        args,
        ids,
        "\n".join(f"{i.id}\t{i.login}\tscope={i.scope or 'all'}" for i in ids) or "(no sub-admins)",
    )


def _subadmin_revoke(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    i = s.revoke_id(a, s.find_id(a, c.id, args.login).id)
    _out(args, i, f"{i.login}@{c.domain} revoked")


# -- affiliations, devices, trunks, audit ------------------------------------------------


def _policy(args: argparse.Namespace, base: AffiliationPolicy) -> AffiliationPolicy:
    fields = msgspec.structs.asdict(base)
    if args.outbound is not None:
        fields["outbound_allowed"] = args.outbound == "yes"
    if args.prefix is not None:
        fields["allowed_prefixes"] = [p for p in args.prefix if p]
    if args.hours is not None:
        if args.hours == "any":
            fields["hours"] = None
        else:
            start, sep, end = args.hours.partition("-")
            if not sep:
                raise InvalidInput("hours", "HH:MM-HH:MM (Asia/Tokyo) or 'any'")
            fields["hours"] = Hours(start, end)
    if args.max_calls is not None:
        fields["max_concurrent_calls"] = None if args.max_calls < 0 else args.max_calls
    for flag in ("see_presence", "see_customers", "see_recordings", "monitor", "transfer_to"):
        value = getattr(args, f"others_{flag}")
        if value is not None:
            fields[f"others_may_{flag}"] = value == "yes"
    if args.recordings is not None:
        fields["recordings_allowed"] = args.recordings == "yes"
    return AffiliationPolicy(**fields)


def _aff_line(x: Any) -> str:
    return f"{x.id}\t{x.name}\t{_encoder.encode(x.policy).decode()}"


def _affiliation_add(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    x = s.create_affiliation(a, c.id, name=args.name, policy=_policy(args, AffiliationPolicy()))
    _out(args, x, _aff_line(x))


def _affiliation_set(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    x = s.find_affiliation(a, c.id, args.name)
    x = s.update_affiliation(a, x.id, name=args.rename, policy=_policy(args, x.policy))
    _out(args, x, _aff_line(x))


def _affiliation_list(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    xs = s.list_affiliations(a, c.id)
    _out(args, xs, "\n".join(_aff_line(x) for x in xs) or "(no affiliations)")


def _affiliation_remove(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    x = s.find_affiliation(a, c.id, args.name)
    s.delete_affiliation(a, x.id)
    _out(args, {"removed": x.name}, f"affiliation {x.name} removed")


def _device_line(d: Any) -> str:
    return f"{d.id}\t{d.name}\t" + ",".join(acc.e164 for acc in d.accounts)


def _device_add(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    d = s.create_device(
        a,
        c.id,
        name=args.name,
        affiliation_id=_aff_id(s, a, c.id, args.affiliation),
        note=args.note,
        numbers=args.number or [],
    )
    _out(args, d, _device_line(d))


def _device_list(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    ds = s.list_devices(a, c.id)
    _out(args, ds, "\n".join(_device_line(d) for d in ds) or "(no devices)")


def _device_remove(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    c = s.find_contract(a, args.contract)
    d = s.find_device(a, c.id, args.name)
    s.delete_device(a, d.id)
    _out(args, {"removed": d.name}, f"device {d.name} removed")


def _device_account(add: bool) -> Command:
    def command(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
        c = s.find_contract(a, args.contract)
        d = s.find_device(a, c.id, args.name)
        d = (
            s.add_device_account(a, d.id, args.number)
            if add
            else s.remove_device_account(a, d.id, args.number)
        )
        _out(args, d, _device_line(d))

    return command


def _trunk_list(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    trunks = [
        msgspec.structs.replace(t, password="***" if t.password else "") for t in s.list_trunks(a)
    ]
    _out(
        args,
        trunks,
        "\n".join(f"{t.name}\t{t.transport}:{t.host}:{t.port}" for t in trunks) or "(no trunks)",
    )


def _audit(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    cid = s.find_contract(a, args.contract).id if args.contract else None
    entries = s.list_audit(a, cid, limit=args.limit)
    _out(
        args,
        entries,
        "\n".join(
            f"{e.at:%Y-%m-%d %H:%M:%S} {e.actor} {e.source} {e.action} {e.target} {e.outcome}"
            for e in entries
        )
        or "(empty)",
    )


def _provision(s: AccountService, a: Actor, args: argparse.Namespace) -> None:
    spec = provision.load(args.file)
    changes = provision.apply(s, a, spec)
    lines = [
        f"{c.action:9} {c.kind} {c.ref}"
        + (f"  password (shown once): {c.password}" if c.password else "")
        for c in changes
    ]
    _out(args, changes, "\n".join(lines) or "(nothing to do)")


# -- parser ------------------------------------------------------------------------------


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--data-dir",
        default="data",
        help="data directory holding outbound-pro.sqlite3 (default: data)",
    )
    where.add_argument("--config", metavar="FILE", help="take data_dir from this configuration")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _passwords(p: argparse.ArgumentParser, what: str = "password") -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--password",
        help=f"the {what} (visible in the process list; prefer "
        "--password-stdin; default: generate one and print it once)",
    )
    g.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the {what} from the first line of standard input",
    )


def _group(sub: argparse._SubParsersAction, name: str, help_text: str) -> Any:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _cmd(
    sub: Any, name: str, help_text: str, command: Command, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=help_text, parents=[common]
    )
    p.set_defaults(func=runner(command))
    return p


def _policy_options(p: argparse.ArgumentParser) -> None:
    yn = ("yes", "no")
    p.add_argument("--outbound", choices=yn, help="may users of this affiliation call out")
    p.add_argument(
        "--prefix",
        action="append",
        metavar="PREFIX",
        help="allowed destination prefix such as 03 or 0120 (repeat; '' clears)",
    )
    p.add_argument("--hours", metavar="HH:MM-HH:MM", help="allowed calling hours, Asia/Tokyo")
    p.add_argument("--max-calls", type=int, help="max concurrent calls (-1: no limit)")
    p.add_argument("--recordings", choices=yn, help="may its users access recordings")
    for flag in ("see-presence", "see-customers", "see-recordings", "monitor", "transfer-to"):
        p.add_argument(
            f"--others-{flag}",
            choices=yn,
            help=f"may users of other affiliations {flag.replace('-', ' ')} them",
        )


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the accounts commands to the ``outbound-pro`` parser."""
    c = _common()
    sub = _group(subparsers, "operator", "provider operator accounts (API login)")
    p = _cmd(sub, "create", "create an operator, or set its password", _operator_create, c)
    p.add_argument("login")
    _passwords(p)
    _cmd(sub, "list", "list operators", _operator_list, c)

    sub = _group(subparsers, "contract", "contracts: application, approval, lifecycle")
    p = _cmd(sub, "apply", "record an application (decided in order received)", _contract_apply, c)
    p.add_argument("--name", required=True, help="the corporation's name")
    p.add_argument("--email", required=True, help="notice e-mail address (Art. 34)")
    p.add_argument("--domain", required=True, help="SIP domain and digest realm")
    p.add_argument("--start-date", type=_date, help="planned service start (YYYY-MM-DD)")
    p = _cmd(sub, "approve", "approve and issue the admin ID", _contract_approve, c)
    p.add_argument("contract", help="contract id or SIP domain")
    p.add_argument("--admin-id", default="admin", help="login of the admin ID (default admin)")
    p.add_argument("--start-date", type=_date, help="service start (default: today)")
    _passwords(p, "admin password")
    p = _cmd(sub, "refuse", "refuse an application", _contract_refuse, c)
    p.add_argument("contract")
    p.add_argument("--reason", required=True)
    for name, text in (
        ("suspend", "suspend the service (Art. 21, 22)"),
        ("restrict", "restrict the service (Art. 22)"),
        ("reinstate", "back to active"),
    ):
        p = _cmd(sub, name, text, _transition(name), c)
        p.add_argument("contract")
        p.add_argument("--reason", required=True)
        if name != "reinstate":
            p.add_argument(
                "--emergency",
                action="store_true",
                help="no prior notice (Art. 21-2); the notice says so",
            )
    p = _cmd(
        sub,
        "terminate",
        "terminate; the admin may read data until the end date",
        _transition("terminate"),
        c,
    )
    p.add_argument("contract")
    p.add_argument("--end-date", type=_date, required=True)
    p.add_argument("--reason", required=True)
    p = _cmd(sub, "list", "list contracts", _contract_list, c)
    p.add_argument("--status", choices=[s.value for s in ContractStatus])
    p = _cmd(sub, "show", "one contract with its billable units and notices", _contract_show, c)
    p.add_argument("contract")
    p = _cmd(sub, "reissue-admin", "new admin password (Art. 9-5)", _contract_reissue, c)
    p.add_argument("contract")
    _passwords(p, "admin password")

    sub = _group(subparsers, "user", "user IDs (one per booth)")
    p = _cmd(sub, "add", "create a user ID", _user_add, c)
    p.add_argument("--contract", required=True, help="contract id or SIP domain")
    p.add_argument("login")
    _passwords(p)
    p.add_argument("--sip-password", help="separate SIP secret (default: the password)")
    p.add_argument("--display-name", default="")
    p.add_argument("--affiliation", help="affiliation name")
    p.add_argument("--number", action="append", help="telephone number (repeat)")
    for name, text, fn in (
        ("list", "list user IDs", _user_list),
        ("show", "one user ID", _user_show),
        ("revoke", "revoke at once (Art. 9-5)", _user_revoke),
    ):
        p = _cmd(sub, name, text, fn, c)
        p.add_argument("--contract", required=True)
        if name != "list":
            p.add_argument("login")
    p = _cmd(sub, "passwd", "set a new password", _user_passwd, c)
    p.add_argument("--contract", required=True)
    p.add_argument("login")
    _passwords(p)
    p.add_argument("--sip-password")
    p = _cmd(sub, "set", "change display name, affiliation or status", _user_set, c)
    p.add_argument("--contract", required=True)
    p.add_argument("login")
    p.add_argument("--display-name")
    p.add_argument("--affiliation", help="affiliation name ('' for none)")
    p.add_argument("--status", choices=["active", "restricted"])
    for name, add in (("add-number", True), ("remove-number", False)):
        p = _cmd(
            sub, name, f"{'bind' if add else 'unbind'} a telephone number", _user_number(add), c
        )
        p.add_argument("--contract", required=True)
        p.add_argument("login")
        p.add_argument("number")

    sub = _group(subparsers, "subadmin", "sub-admin IDs")
    p = _cmd(sub, "add", "create a sub-admin ID", _subadmin_add, c)
    p.add_argument("--contract", required=True)
    p.add_argument("login")
    _passwords(p)
    p.add_argument("--display-name", default="")
    p.add_argument("--affiliation", action="append", help="scope to this affiliation (repeat)")
    p = _cmd(sub, "list", "list sub-admin IDs", _subadmin_list, c)
    p.add_argument("--contract", required=True)
    p = _cmd(sub, "revoke", "revoke a sub-admin ID", _subadmin_revoke, c)
    p.add_argument("--contract", required=True)
    p.add_argument("login")

    sub = _group(subparsers, "affiliation", "affiliations and their restrictions")
    p = _cmd(sub, "add", "create an affiliation", _affiliation_add, c)
    p.add_argument("--contract", required=True)
    p.add_argument("name")
    _policy_options(p)
    p = _cmd(sub, "set", "change an affiliation's restrictions", _affiliation_set, c)
    p.add_argument("--contract", required=True)
    p.add_argument("name")
    p.add_argument("--rename")
    _policy_options(p)
    p = _cmd(sub, "list", "list affiliations", _affiliation_list, c)
    p.add_argument("--contract", required=True)
    p = _cmd(sub, "remove", "remove an empty affiliation", _affiliation_remove, c)
    p.add_argument("--contract", required=True)
    p.add_argument("name")

    sub = _group(subparsers, "device", "SIP devices (channels) and their SIP accounts")
    p = _cmd(sub, "add", "add a device", _device_add, c)
    p.add_argument("--contract", required=True)
    p.add_argument("name")
    p.add_argument("--affiliation")
    p.add_argument("--note", default="")
    p.add_argument("--number", action="append", help="SIP account number (repeat)")
    p = _cmd(sub, "list", "list devices", _device_list, c)
    p.add_argument("--contract", required=True)
    p = _cmd(sub, "remove", "remove a device", _device_remove, c)
    p.add_argument("--contract", required=True)
    p.add_argument("name")
    for name, add in (("add-account", True), ("remove-account", False)):
        p = _cmd(
            sub,
            name,
            f"{'set' if add else 'remove'} a SIP account (number)",
            _device_account(add),
            c,
        )
        p.add_argument("--contract", required=True)
        p.add_argument("name")
        p.add_argument("number")

    sub = _group(subparsers, "trunk", "SIP trunks (set them with provision)")
    _cmd(sub, "list", "list trunks (passwords masked)", _trunk_list, c)

    p = subparsers.add_parser(
        "audit", help="show the audit log", parents=[c], description="Newest entries first."
    )
    p.add_argument("--contract", help="only this contract (id or domain)")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=runner(_audit))

    p = subparsers.add_parser(
        "provision",
        help="create or update everything from a TOML file (idempotent)",
        description="See docs/provisioning.md for the file format.",
        parents=[c],
    )
    p.add_argument("file", help="provisioning TOML file")
    p.set_defaults(func=runner(_provision))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outbound-pro", description="accounts commands")
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
