"""OPTIONS keep-alive against a real phone (a SIPp UAS): answered probes keep the binding, and
once the phone is gone the binding is removed after `max_misses` unanswered probes."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from outbound_pro.accounts.digest import DigestAuthenticator
from outbound_pro.metrics import Registry
from outbound_pro.registrar.core import Registrar
from outbound_pro.registrar.keepalive import start_keepalive
from outbound_pro.registrar.model import Binding
from outbound_pro.sip.router import Router
from outbound_pro.sip.stack import SipStack
from outbound_pro.sip.timers import TimerConfig
from outbound_pro.store import open_database
from tests.conftest import free_port
from tests.peers.sipp import SCENARIOS

pytestmark = pytest.mark.peer


async def _until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def _binding(port: int, now: float) -> Binding:
    return Binding(
        contract_id=1,
        id_id=1,
        aor="sip:booth01@ka.op.local",
        contact="sip:booth01@10.0.0.9:5060",  # a private address: the probe must not go there
        q=1.0,
        expires_at=now + 600,
        call_id="ka-test",
        cseq=1,
        transport="udp",
        source_host="127.0.0.1",
        source_port=port,
        updated_at=now,
    )


async def test_options_keepalive_keeps_live_phone_and_drops_dead_one(tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is not installed: `make peers` installs sip-tester"
    db = open_database(tmp_path / "ka.sqlite3")
    # Bindings reference ids/contracts; this test is about the keep-alive, not accounts.
    db.conn.execute("PRAGMA foreign_keys = OFF")
    registrar = Registrar(db, DigestAuthenticator(b"k" * 32))
    router = Router()
    # T1 = 50 ms: an unanswered OPTIONS times out (64*T1) in 3.2 s instead of 32 s.
    stack = SipStack(router, Registry(), timers=TimerConfig(t1=0.05, t2=0.2, t4=0.25))
    router.attach(stack)
    await stack.listen("127.0.0.1", udp_port=0)
    phone_port = free_port()
    work = tmp_path / "uas"
    work.mkdir()
    uas = subprocess.Popen(
        [
            sipp, "-sf", str(SCENARIOS / "register_keepalive_uas.xml"),
            "-i", "127.0.0.1", "-p", str(phone_port), "-nostdin", "-trace_stat",
            "-stf", str(work / "stats.csv"), "-fd", "1",
        ],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    keepalive, task = start_keepalive(registrar, stack, router, interval=0.3, max_misses=2)
    try:
        registrar.store.apply([_binding(phone_port, time.time())], [])
        # The phone answers: several rounds pass, no misses, the binding stays.
        await _until(lambda: len(keepalive._pending) == 0 and _answered(work) >= 3, 15, "answers")
        assert keepalive.misses == {}
        assert len(registrar.store.live_bindings(time.time())) == 1
        # The phone dies: two unanswered probes (each a local 408) remove the binding.
        uas.send_signal(signal.SIGKILL)
        uas.wait(5)
        await _until(lambda: not registrar.store.live_bindings(time.time()), 20, "removal")
        assert keepalive.removed == 1
    finally:
        task.cancel()
        if uas.poll() is None:
            uas.kill()
            uas.wait(5)
        await stack.close()
        db.close()


def _answered(work: Path) -> int:
    """OPTIONS the UAS answered, from its own statistics file ("SuccessfulCall(C)")."""
    path = work / "stats.csv"
    if not path.exists():
        return 0
    rows = [line.split(";") for line in path.read_text().splitlines()]
    if len(rows) < 2:
        return 0
    stats = dict(zip(rows[0], rows[-1], strict=False))
    return int(stats.get("SuccessfulCall(C)", "0") or 0)
