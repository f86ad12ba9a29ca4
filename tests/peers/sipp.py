"""Run SIPp (Debian `sip-tester`) scenarios and read its statistics file.

Pass/fail is read from SIPp's own cumulative counters, not from our logs, so a test proves what
a third party saw on the wire.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).parent / "scenarios"


@dataclass
class SippResult:
    returncode: int
    stats: dict[str, str]
    screen: str
    messages: str

    def count(self, name: str) -> int:
        return int(self.stats[name])

    @property
    def successful(self) -> int:
        return self.count("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.count("FailedCall(C)")


def trace_args(work: Path) -> list[str]:
    """SIPp options every test run shares: fail on timeout, no stdin, and the statistics,
    screen and message traces in *work* (stats.csv, screen.log, messages.log) the assertions
    read; a 4 MiB socket buffer so SIPp, not the server, is never the one dropping replies."""
    return [
        "-timeout_error",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(work / "stats.csv"),
        "-fd",
        "1",
        "-trace_screen",
        "-screen_file",
        str(work / "screen.log"),
        "-trace_msg",
        "-message_file",
        str(work / "messages.log"),
        "-buff_size",
        "4194304",
    ]


def run_sipp(
    tmp: Path,
    scenario: str,
    target: str,
    *,
    transport: str = "u1",
    calls: int = 1,
    rate: float = 10,
    timeout: float = 60,
    extra: tuple[str, ...] = (),
) -> SippResult:
    """Run *scenario* (a file in scenarios/ or a built-in `-sn` name) against *target*."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise AssertionError("sipp is not installed: run `make test`, which installs sip-tester")
    work = tmp / f"sipp-{scenario.replace('.xml', '')}"
    work.mkdir(parents=True, exist_ok=True)
    path = SCENARIOS / scenario
    scen = ["-sf", str(path)] if path.exists() else ["-sn", scenario]
    stat_file = work / "stats.csv"
    args = [
        sipp,
        target,
        *scen,
        "-t",
        transport,
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-timeout",
        f"{timeout}s",
        *trace_args(work),
        *extra,
    ]
    proc = subprocess.run(args, cwd=work, capture_output=True, timeout=timeout + 30)
    rows = list(csv.reader(stat_file.read_text().splitlines(), delimiter=";"))
    if len(rows) < 2:
        raise AssertionError(f"sipp wrote no statistics: {proc.stderr.decode(errors='replace')}")
    stats = dict(zip(rows[0], rows[-1], strict=False))
    screen = (
        (work / "screen.log").read_text(errors="replace") if (work / "screen.log").exists() else ""
    )
    messages = (
        (work / "messages.log").read_text(errors="replace")
        if (work / "messages.log").exists()
        else ""
    )
    return SippResult(proc.returncode, stats, screen, messages)
