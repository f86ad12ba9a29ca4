"""`outbound-pro serve` as an operator runs it: a real process, real ports."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from tests.conftest import ServerProcess, stop_server


def test_healthz_and_metrics(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/healthz") as r:
        assert json.loads(r.read())["status"] == "ok"
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics") as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        body = r.read().decode()
    assert "# TYPE" in body


def test_self_signed_certificate_is_generated_and_kept(server: ServerProcess) -> None:
    cert = server.data_dir / "tls" / "tls-cert.pem"
    key = server.data_dir / "tls" / "tls-key.pem"
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert key.stat().st_mode & 0o077 == 0, "private key must not be readable by others"


def test_sigterm_shuts_down_cleanly(server: ServerProcess) -> None:
    assert stop_server(server) == 0
    assert '"shutting down"' in server.log()


def serve_with(tmp_path, toml: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(toml)
    return subprocess.run(
        [sys.executable, "-m", "outbound_pro.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_config_names_the_field(tmp_path) -> None:
    out = serve_with(tmp_path, '[sip]\nudp_port = "five"\n')
    assert out.returncode == 2
    assert "udp_port" in out.stderr


def test_a_moved_setting_says_where_it_went(tmp_path) -> None:
    out = serve_with(tmp_path, '[b2bua]\npublic_host = "sip.example.jp"\n')
    assert out.returncode == 2
    assert "[sip] public_host" in out.stderr


def test_every_subcommand_has_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "outbound_pro.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0
    assert "--config" in out.stdout
