"""Fixtures shared by every test area: free ports and a real server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port(kind: int = socket.SOCK_DGRAM, *, both: bool = False) -> int:
    """A port free now; with *both*, free for UDP and TCP alike (SIP listens on both)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not both:
            return port
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair found")


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    """Poll *predicate* until it returns a truthy value or *timeout* passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    sip_port: int
    tls_port: int
    http_port: int
    data_dir: Path
    config_path: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=0.5) as r:
            return r.status == 200
    except OSError:
        return False


def start_server(tmp: Path, extra_toml: str = "", extra_config: str = "") -> ServerProcess:
    """Start `outbound-pro serve` on free ports; *extra_toml* goes into [sip], *extra_config*
    (whole tables) at the end of the file."""
    sip_port = free_port(both=True)
    tls_port = free_port(socket.SOCK_STREAM)
    http_port = free_port(socket.SOCK_STREAM)
    https_port = free_port(socket.SOCK_STREAM)
    tmp.mkdir(parents=True, exist_ok=True)
    data_dir = tmp / "data"
    config_path = tmp / "config.toml"
    config_path.write_text(
        f'data_dir = "{data_dir}"\n'
        f'[sip]\nhost = "127.0.0.1"\nudp_port = {sip_port}\ntcp_port = {sip_port}\n'
        f"tls_port = {tls_port}\n{extra_toml}\n"
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\nhttps_port = {https_port}\n'
        f"{extra_config}\n"
    )
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "outbound_pro.cli", "serve", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    server = ServerProcess(proc, sip_port, tls_port, http_port, data_dir, config_path, log_path)
    try:
        wait_for(lambda: proc.poll() is not None or _healthy(http_port), 30, "server /healthz")
    except AssertionError:
        stop_server(server)
        raise
    if proc.poll() is not None:
        raise AssertionError(f"server exited with {proc.returncode}:\n{server.log()}")
    return server


def stop_server(server: ServerProcess) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(5)
    return server.proc.returncode


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = start_server(tmp_path)
    yield srv
    stop_server(srv)
