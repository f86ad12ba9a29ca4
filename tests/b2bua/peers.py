"""SIPp processes for the B2BUA tests: a booth (UAC/UAS with digest) and a trunk (UAS/UAC),
each on its own loopback address so the server can tell the carrier from a booth by source.

Both sides of one scenario run at once: :func:`start_sipp` returns a running process and
:meth:`SippProc.result` waits for it and reads SIPp's own statistics file.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port
from tests.peers.sipp import SCENARIOS, SippResult, trace_args

TRUNK_IP = "127.0.0.2"
BOOTH_IP = "127.0.0.1"
STRANGER_IP = "127.0.0.3"


@dataclass
class SippProc:
    proc: subprocess.Popen[bytes]
    work: Path
    timeout: float

    def result(self) -> SippResult:
        try:
            self.proc.wait(self.timeout + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        rows = list(csv.reader((self.work / "stats.csv").read_text().splitlines(), delimiter=";"))
        assert len(rows) >= 2, (self.work / "stderr.log").read_text(errors="replace")
        stats = dict(zip(rows[0], rows[-1], strict=False))

        def read(name: str) -> str:
            path = self.work / name
            return path.read_text(errors="replace") if path.exists() else ""

        return SippResult(self.proc.returncode, stats, read("screen.log"), read("messages.log"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def start_sipp(
    tmp: Path,
    name: str,
    scenario: str,
    *,
    local_ip: str,
    local_port: int = 0,
    target: str | None = None,
    calls: int = 1,
    rate: float = 10,
    timeout: float = 30,
    extra: tuple[str, ...] = (),
    users: dict[str, str] | None = None,
    inf_rows: list[str] | None = None,
    keys: dict[str, str] | None = None,
) -> SippProc:
    """Start SIPp running *scenario* (a file in tests/peers/scenarios) in the background."""
    sipp = shutil.which("sipp")
    assert sipp is not None, "sipp is not installed (Debian sip-tester)"
    work = tmp / f"sipp-{name}"
    work.mkdir(parents=True, exist_ok=True)
    args = [
        sipp,
        *([target] if target else []),
        "-sf",
        str(SCENARIOS / scenario),
        "-t",
        "u1",
        "-i",
        local_ip,
        "-p",
        str(local_port),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-timeout",
        f"{timeout}s",
        *trace_args(work),
        *extra,
    ]
    keys = {"rtp_port": str(free_port()), **(keys or {})}
    for key, value in keys.items():
        args += ["-key", key, value]
    if inf_rows:
        inf = work / "rows.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(row + "\n" for row in inf_rows))
        args += ["-inf", str(inf)]
    if users:
        inf = work / "users.csv"
        inf.write_text(
            "SEQUENTIAL\n"
            + "".join(f"{u};[authentication username={u} password={p}]\n" for u, p in users.items())
        )
        args += ["-inf", str(inf)]
    stderr = (work / "stderr.log").open("wb")
    proc = subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL, stderr=stderr)
    return SippProc(proc, work, timeout)
