"""Drive a real baresip phone (Debian `baresip`) through its ctrl_tcp netstring JSON link.

PEERS.md notes: ctrl_tcp takes one client, so each phone keeps one controller; accounts are
created with `uanew` after the link is up so registration can be observed; SIP port P also
binds TLS on P+1.
"""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import free_port, wait_for

MODULES = "/usr/lib/baresip/modules"


def _netstring(payload: bytes) -> bytes:
    return str(len(payload)).encode() + b":" + payload + b","


@dataclass
class BaresipPhone:
    workdir: Path
    sip_port: int
    ctrl_port: int
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    responses: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(
        cls, workdir: Path, *, host: str = "127.0.0.1", extra_config: str = ""
    ) -> BaresipPhone:
        """Start baresip with an empty account list, its SIP socket on *host* (any loopback
        address works on Linux, which lets a test give each phone its own source address)."""
        if shutil.which("baresip") is None:
            raise AssertionError("baresip is not installed: run `make test`, which installs it")
        workdir.mkdir(parents=True, exist_ok=True)
        sip_port = _free_pair(host)
        ctrl_port = free_port(socket.SOCK_STREAM)
        (workdir / "accounts").write_text("")
        (workdir / "contacts").write_text("")
        (workdir / "config").write_text(
            f"""poll_method epoll
sip_listen {host}:{sip_port}
net_interface {host}
audio_player nothing
audio_source nothing
module_path {MODULES}
module g711.so
module account.so
module ctrl_tcp.so
module menu.so
ctrl_tcp_listen 127.0.0.1:{ctrl_port}
{extra_config}
"""
        )
        proc = subprocess.Popen(
            ["baresip", "-f", str(workdir)],
            stdin=subprocess.DEVNULL,
            stdout=(workdir / "baresip.log").open("wb"),
            stderr=subprocess.STDOUT,
        )

        def connect() -> socket.socket | None:
            if proc.poll() is not None:
                raise AssertionError(f"baresip exited: {(workdir / 'baresip.log').read_text()}")
            try:
                return socket.create_connection(("127.0.0.1", ctrl_port), timeout=1)
            except OSError:
                return None

        sock = wait_for(connect, 15, "baresip ctrl_tcp")
        assert isinstance(sock, socket.socket)
        sock.settimeout(None)
        phone = cls(workdir, sip_port, ctrl_port, proc, sock)
        threading.Thread(target=phone._reader, daemon=True).start()
        return phone

    def _reader(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                length = int(buf[:colon])
                if len(buf) < colon + 1 + length + 1:
                    break
                doc = json.loads(buf[colon + 1 : colon + 1 + length])
                buf = buf[colon + 2 + length :]
                if doc.get("response"):
                    self.responses.put(doc)
                elif doc.get("event"):
                    self.seen.append(doc)
                    self.events.put(doc)

    def command(self, command: str, params: str = "", timeout: float = 10) -> dict[str, Any]:
        token = f"t{time.monotonic_ns()}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(_netstring(body))
        deadline = time.monotonic() + timeout
        while True:
            doc = self.responses.get(timeout=max(0.01, deadline - time.monotonic()))
            if doc.get("token") == token:
                return doc

    def wait_event(self, *types: str, timeout: float = 15) -> dict[str, Any]:
        """The next event of one of *types*; earlier events of other types are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kinds = [e.get("type") for e in self.seen]
                raise AssertionError(f"no {types} event within {timeout}s; saw {kinds}")
            try:
                doc = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if doc.get("type") in types:
                return doc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.sock.close()


def _free_pair(host: str) -> int:
    """A SIP port P with P+1 also free on *host*: baresip binds TLS on P+1."""
    for _ in range(100):
        port = free_port(both=True)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, port + 1))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for baresip")
