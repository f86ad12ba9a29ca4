"""``outbound-pro billing``: in-process through argparse, and once as a real process."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from outbound_pro.billing.cli import add_commands

ISSUE_USAGE = """{"contract": "C-1", "service_start": "2026-04-10", "service_end": null,
 "changes": [{"date": "2026-04-10", "unit": "booth", "delta": 5},
             {"date": "2026-06-03", "unit": "predictive_booth", "delta": 3}],
 "outages": [{"recognised": "2026-07-01T09:00:00+09:00",
              "restored": "2026-07-03T10:00:00+09:00"}]}
"""


def run(argv: list[str]) -> int:
    """Parse like the top-level ``outbound-pro`` command does and run the chosen function."""
    parser = argparse.ArgumentParser(prog="outbound-pro")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def usage_file(tmp_path: Path) -> Path:
    path = tmp_path / "c-1.json"
    path.write_text(ISSUE_USAGE)
    return path


def test_invoice_json(usage_file, capsys):
    rc = run(["billing", "invoice", "--usage", str(usage_file), "--month", "2026-07", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    # July: 68,500 monthly - 4,566 outage credit = 63,934; tax 6,393; total 70,327.
    assert [(x["code"], x["quantity"], x["unit_price"], x["amount"]) for x in data["lines"]] == [
        ("booth", 5, 8000, 40000),
        ("server_management", 1, 3000, 3000),
        ("predictive", 3, 3500, 10500),
        ("predictive_server", 1, 15000, 15000),
        ("outage_credit", 1, -4566, -4566),
    ]
    assert (data["subtotal"], data["tax"], data["total"]) == (63934, 6393, 70327)


def test_invoice_table_and_files(usage_file, tmp_path, capsys):
    html, csv = tmp_path / "out.html", tmp_path / "out.csv"
    argv = ["billing", "invoice", "--usage", str(usage_file), "--month", "2026-06"]
    argv += ["--html", str(html), "--csv", str(csv)]
    argv += ["--issuer-name", "Example Telecom K.K.", "--registration-number", "T1234567890123"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    # June: predictive setup 3 x 5,000 + booth 40,000 + server 3,000 = 58,000; tax 5,800.
    assert "predictive_setup" in out and out.splitlines()[-1].split()[-1] == "63,800"
    assert "T1234567890123" in html.read_text(encoding="utf-8")
    assert csv.read_bytes().startswith(b"\xef\xbb\xbfinvoice,contract,month,row")


def test_issuer_from_configuration_file(usage_file, tmp_path, capsys):
    config = tmp_path / "outbound-pro.toml"
    config.write_text(
        '[billing]\nissuer_name = "Example Telecom K.K."\nregistration_number = "T1234567890123"\n'
        "[http]\nport = 8080\n"
    )
    argv = ["billing", "invoice", "--usage", str(usage_file), "--month", "2026-05"]
    assert run([*argv, "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["issuer"]["registration_number"] == "T1234567890123"


def test_bad_usage_file_exits_2_naming_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(ISSUE_USAGE.replace('"predictive_booth"', '"predictiv_booth"'))
    assert run(["billing", "invoice", "--usage", str(bad), "--month", "2026-07"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{bad}, line 3, changes[1]: unknown unit 'predictiv_booth'" in captured.err


def test_missing_file_and_bad_registration_exit_2(tmp_path, usage_file, capsys):
    missing = tmp_path / "nope.json"
    assert run(["billing", "invoice", "--usage", str(missing), "--month", "2026-07"]) == 2
    assert "cannot read usage file" in capsys.readouterr().err
    argv = ["billing", "invoice", "--usage", str(usage_file), "--month", "2026-07"]
    assert run([*argv, "--issuer-name", "X", "--registration-number", "123"]) == 2
    assert "must be 'T' followed by 13 digits" in capsys.readouterr().err
    assert run([*argv, "--issuer-name", "X"]) == 2
    assert "give both the issuer name and the registration number" in capsys.readouterr().err


def test_month_outside_service_exits_2(usage_file, capsys):
    assert run(["billing", "invoice", "--usage", str(usage_file), "--month", "2026-03"]) == 2
    assert "2026-03 is outside contract C-1's service" in capsys.readouterr().err


def test_bad_month_is_an_argparse_error(usage_file, capsys):
    with pytest.raises(SystemExit) as info:
        run(["billing", "invoice", "--usage", str(usage_file), "--month", "July"])
    assert info.value.code == 2
    assert "write it as YYYY-MM" in capsys.readouterr().err


def test_interest_json_and_text(capsys):
    argv = ["billing", "interest", "--amount", "108020", "--due", "2026-06-30"]
    assert run([*argv, "--paid", "2026-07-31", "--json"]) == 0
    # 108,020 x 0.145 x 30 / 365 = 1,287.36 -> 1,287.
    assert json.loads(capsys.readouterr().out) == {"days": 30, "interest": 1287}
    assert run([*argv, "--paid", "2026-07-10"]) == 0
    out = capsys.readouterr().out
    assert "no interest" in out and out.rstrip().endswith("interest: 0")


def test_interest_bad_amount_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        run(
            ["billing", "interest", "--amount", "-5", "--due", "2026-06-30", "--paid", "2026-07-31"]
        )
    assert info.value.code == 2
    assert "give whole yen" in capsys.readouterr().err


def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        run(["billing", "invoice", "--help"])
    out = capsys.readouterr().out
    assert "--usage FILE.json" in out and "predictive_booth" in out and "--month YYYY-MM" in out
    with pytest.raises(SystemExit):
        run(["billing", "interest", "--help"])
    assert "14.5% x days / 365" in " ".join(capsys.readouterr().out.split())


MODULE = (sys.executable, "-m", "outbound_pro.billing.cli", "billing")


def test_runs_as_a_module(usage_file):
    proc = subprocess.run(
        [*MODULE, "invoice", "--usage", str(usage_file), "--month", "2026-07", "--json"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["total"] == 70327
    bad = subprocess.run(
        [*MODULE, "interest", "--amount", "1", "--due", "2026-06-31", "--paid", "2026-07-31"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and b"write it as YYYY-MM-DD" in bad.stderr


def test_price_change_file_is_checked_for_30_days_notice(usage_file, tmp_path, capsys):
    table = json.loads(resources.files("outbound_pro.billing").joinpath("tariff.json").read_text())
    table["monthly"][0]["yen"] = 9000  # booth 8,000 -> 9,000
    version = tmp_path / "2026-09.json"
    argv = ["billing", "invoice", "--usage", str(usage_file), "--month", "2026-09", "--json"]
    # Announced 2026-08-02 for 2026-09-01: 30 days' notice, accepted; September uses 9,000.
    version.write_text(json.dumps({**table, "effective": "2026-09-01", "announced": "2026-08-02"}))
    assert run([*argv, "--tariff", str(version)]) == 0
    lines = json.loads(capsys.readouterr().out)["lines"]
    assert lines[0] == {**lines[0], "code": "booth", "unit_price": 9000, "amount": 45000}
    # Announced a day later: 29 days, refused (Art. 16) with the earliest possible date.
    version.write_text(json.dumps({**table, "effective": "2026-09-01", "announced": "2026-08-03"}))
    assert run([*argv, "--tariff", str(version)]) == 2
    err = capsys.readouterr().err
    assert "29 days before; Art. 16 needs at least 30" in err and "2026-09-02" in err
