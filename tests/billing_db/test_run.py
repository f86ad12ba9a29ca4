"""The monthly run end to end: a local SMTP sink receives the notices; re-running issues
nothing twice and sends nothing twice; an invoice reported issued survives SIGKILL."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from outbound_pro.billing.cli import main
from outbound_pro.store import open_database
from outbound_pro.store.billing import BillingStore
from tests.billing_db.helpers import as_data_dir, build, write_config


class Sink:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    with socket.socket() as probe:  # a free port (aiosmtpd's readiness check needs a real one)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def _config(tmp_path: Path, port: int) -> tuple[Path, Path]:
    s = build(tmp_path)
    ids = (s.contract_id, s.other_id)
    data_dir = as_data_dir(s, tmp_path)
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nfrom_address = "billing@provider.example"\n'
    return write_config(tmp_path, data_dir, smtp), data_dir, ids


def test_monthly_run_issues_renders_mails_and_is_idempotent(tmp_path, smtp, capsys):
    sink, port = smtp
    config, data_dir, (cid, other) = _config(tmp_path, port)
    argv = ["billing", "run", "--month", "2026-07", "--issue-date", "2026-08-01"]
    assert main([*argv, "--config", str(config), "--json"]) == 0
    out = capsys.readouterr()
    items = [json.loads(line) for line in out.out.splitlines()]
    assert {i["number"] for i in items} == {f"C-{cid}-202607", f"C-{other}-202607"}
    assert all(i["created"] for i in items)
    assert "2/2" in out.err and "[" in out.err  # the progress bar
    # files
    html = data_dir / "invoices" / "2026-07" / f"C-{cid}-202607.html"
    csv = data_dir / "invoices" / "2026-07" / f"C-{cid}-202607.csv"
    assert "93,133" in html.read_text(encoding="utf-8")
    assert csv.read_bytes().startswith(b"\xef\xbb\xbf")
    # mail: one notice per contract, to its notice address, with both attachments
    assert sorted(rcpt[0] for rcpt, _ in sink.messages) == [
        "billing@a.example.jp",
        "ops@b.example.jp",
    ]
    message = next(m for rcpt, m in sink.messages if rcpt == ["billing@a.example.jp"])
    assert f"C-{cid}-202607" in message["Subject"]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "93,133" in body and "2026-08-31" in body
    names = sorted(part.get_filename() for part in message.iter_attachments())
    assert names == [f"C-{cid}-202607.csv", f"C-{cid}-202607.html"]
    # re-run: nothing issued, nothing sent again
    assert main([*argv, "--config", str(config), "--json"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [i["created"] for i in again] == [False, False]
    assert len(sink.messages) == 2
    db = open_database(data_dir / "outbound-pro.sqlite3")
    try:
        assert len(BillingStore(db).invoices(month="2026-07")) == 2
    finally:
        db.close()


def test_unsent_notice_is_sent_by_the_next_run(tmp_path, smtp, capsys):
    sink, port = smtp
    config, data_dir, _ = _config(tmp_path, port)
    dead = write_config(
        tmp_path,
        data_dir,
        '[smtp]\nhost = "127.0.0.1"\nport = 1\nfrom_address = "b@p.example"\n',
        name="dead-smtp.toml",
    )
    argv = ["billing", "run", "--month", "2026-07", "--issue-date", "2026-08-01"]
    assert main([*argv, "--config", str(dead)]) == 1  # issued, but the mail server is down
    assert "issued C-" in capsys.readouterr().out
    assert sink.messages == []
    assert main([*argv, "--config", str(config)]) == 0
    assert "already issued" in capsys.readouterr().out
    assert len(sink.messages) == 2


def test_bad_month_and_early_issue_date_are_errors(tmp_path, smtp, capsys):
    _, port = smtp
    config, _, _ = _config(tmp_path, port)
    with pytest.raises(SystemExit):
        main(["billing", "run", "--month", "2026-13", "--config", str(config)])
    assert "YYYY-MM" in capsys.readouterr().err
    code = main(
        [
            "billing",
            "run",
            "--month",
            "2026-07",
            "--issue-date",
            "2026-07-31",
            "--no-mail",
            "--config",
            str(config),
        ]
    )
    assert code == 1
    assert "not over" in capsys.readouterr().err


def test_sigkill_after_first_reported_invoice_keeps_it(tmp_path):
    s = build(tmp_path)
    data_dir = as_data_dir(s, tmp_path)
    config = write_config(tmp_path, data_dir)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "outbound_pro.billing.cli",
            "billing",
            "run",
            "--month",
            "2026-07",
            "--issue-date",
            "2026-08-01",
            "--no-mail",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline and not line.startswith(b"issued "):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL or proc.returncode == 0
    assert line.startswith(b"issued "), line
    number = line.split()[1].decode()
    db = open_database(data_dir / "outbound-pro.sqlite3")
    try:
        stored = BillingStore(db).get_invoice(number)
        assert stored is not None and stored.invoice.month == "2026-07"
        assert BillingStore(db).mail_status(number) is not None
    finally:
        db.close()
