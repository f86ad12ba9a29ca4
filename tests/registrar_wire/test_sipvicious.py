"""SIPVicious against the registrar: `svwar` learns nothing about which IDs exist, and `svcrack`
is throttled then blocked while the real user, from another address, still registers."""

from __future__ import annotations

import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, free_port
from tests.registrar_wire.conftest import bindings, provision
from tests.registrar_wire.rawclient import RawRegisterClient

pytestmark = pytest.mark.peer

# svwar puts the target's address in To, so the IDs it probes live in the realm "127.0.0.1".
LOCAL_CONTRACT = """
[[contract]]
name = "Scanned Corp"
email = "ops@scanned.example.jp"
domain = "127.0.0.1"
admin = { id = "admin", password = "admin-password-3" }

  [[contract.user]]
  id = "booth01"
  password = "secret-booth01-local"

  [[contract.user]]
  id = "booth02"
  password = "secret-booth02-local"
"""

# svcrack 0.3.3 ignores its -b option (the binding address is never passed on), so it always
# sends from 127.0.0.1 here: that is the attacker's address, and the real user is elsewhere.
ATTACKER = "127.0.0.1"
REAL_USER = "127.0.0.3"


@pytest.fixture(scope="module")
def scanned(registrar_server: ServerProcess) -> ServerProcess:
    provision(registrar_server, LOCAL_CONTRACT)
    return registrar_server


def _tool(name: str, args: list[str], cwd: Path) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed: `make peers` installs sipvicious"
    proc = subprocess.run(
        [path, *args], cwd=cwd, capture_output=True, text=True, timeout=90, check=False
    )
    return proc.stdout + proc.stderr


def _svwar(server: ServerProcess, tmp: Path, names: list[str], source: str) -> str:
    dictionary = tmp / f"ext-{names[0]}.txt"
    dictionary.write_text("\n".join(names) + "\n")
    return _tool(
        "svwar",
        [
            "-d", str(dictionary), "-m", "REGISTER", "--force",
            "-b", source, "-P", str(free_port()),
            "127.0.0.1", "-p", str(server.sip_port),
        ],
        tmp,
    )  # fmt: skip


def test_svwar_cannot_tell_existing_ids_from_missing(
    scanned: ServerProcess, tmp_path: Path
) -> None:
    existing = _svwar(scanned, tmp_path, ["booth01", "booth02"], "127.0.0.11")
    missing = _svwar(scanned, tmp_path, ["nosuch1", "nosuch2"], "127.0.0.12")
    mixed = _svwar(scanned, tmp_path, ["booth01", "nosuch1", "booth02", "nosuch2"], "127.0.0.13")
    for output in (existing, missing, mixed):
        assert "found nothing" in output, output
        for name in ("booth01", "booth02", "nosuch1", "nosuch2"):
            assert f"| {name}" not in output, output  # no row in a results table
    # What svwar saw for real IDs is what it saw for missing ones: the same 401, with no
    # difference in status, headers or realm (only the nonce, Call-ID and tags vary).
    assert existing.count("401") == missing.count("401") > 0


def _svcrack_round(server: ServerProcess, passwords: Path, cwd: Path) -> str:
    """One svcrack run against booth01, stopped once it is out of guesses or the registrar has
    stopped it: on a 503 it reports "unknown response", on silence "since we last received a
    response". (It would then idle on a hard-coded 10 s socket timeout the test does not need.)"""
    path = shutil.which("svcrack")
    assert path is not None, "svcrack is not installed: `make peers` installs sipvicious"
    proc = subprocess.Popen(
        [
            path, "-vv", "-u", "booth01", "-d", str(passwords), "-x", "127.0.0.1",
            "-P", str(free_port()), "--maximumtime", "1",
            "127.0.0.1", "-p", str(server.sip_port),
        ],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
            if any(
                m in line for m in ("unknown response", "since we last received", "no more pass")
            ):
                break
    finally:
        proc.kill()
        proc.wait(5)
    return "".join(seen)


def test_svcrack_is_throttled_then_blocked_and_real_user_still_registers(
    scanned: ServerProcess, tmp_path: Path
) -> None:
    passwords = tmp_path / "guesses.txt"
    passwords.write_text("".join(f"guess{i:03d}\n" for i in range(60)))
    server = ("127.0.0.1", scanned.sip_port)
    throttled: list[str] = []
    blocked = False
    rounds: list[str] = []
    # A persistent attacker: svcrack until the registrar stops it, then (as told by
    # Retry-After) again, until its address is dropped outright.
    for _ in range(8):
        rounds.append(_svcrack_round(scanned, passwords, tmp_path))
        with RawRegisterClient(ATTACKER, server, "127.0.0.1") as probe:
            reply = probe.register("booth01", "another-guess", timeout=0.5)
        if reply.status is None:
            blocked = True
            break
        if reply.status == 503:
            retry = re.search(r"Retry-After: (\d+)", reply.text)
            assert retry is not None, reply.text
            throttled.append(retry.group(1))
            time.sleep(int(retry.group(1)))  # the wait the registrar asked for
        else:
            assert reply.status == 401, reply.text
    assert any("trying guess" in r for r in rounds), rounds
    # svcrack logs the registrar's 503 as "unknown response" and gives up the round.
    assert any("unknown response" in r for r in rounds), rounds
    assert throttled, "the attacker was never throttled"
    assert blocked, f"the attacker was never blocked; Retry-After values: {throttled}"

    # Blocked: even the right password from the attacker's address gets nowhere.
    with RawRegisterClient(ATTACKER, server, "127.0.0.1") as attacker:
        final = attacker.register("booth01", "secret-booth01-local", timeout=0.5)
    assert final.status in (None, 503), final.text
    assert all(b["source_host"] != ATTACKER for b in bindings(scanned, "booth01"))

    # The real user, from its own address, registers at once.
    with RawRegisterClient(REAL_USER, server, "127.0.0.1") as phone:
        reply = phone.register("booth01", "secret-booth01-local")
    assert reply.status == 200, reply.text
    assert any(b["source_host"] == REAL_USER for b in bindings(scanned, "booth01"))
