"""Calls per second through the B2BUA: SIPp UAC → B2BUA → SIPp UAS, no media, ramping the rate.

For each rate the UAC places ``rate * seconds`` calls (INVITE, 180, 200, ACK, BYE, 200; for
Outbound Pro the booth's INVITE is also digest-challenged, as in production, so each call costs
two INVITE transactions on the booth side); the step passes with zero failed calls. Printed per
step: SIPp's successful and failed calls, and the server's CPU per call (user + system time
of the server process from /proc, over the step). The result is the highest rate with zero
failures (and, for comparison with sippy's published behaviour, the highest with at most 1%).

Where ``sippy`` is installed (the ``b2bua`` script of PyPI ``sippy``, run as in
/work/shared/PEERS.md), it is measured the same way, with SIPp's built-in ``uac``/``uas``
scenarios and no authentication, and the ratio is printed.

    .venv/bin/python benchmarks/cps.py [--seconds 5] [--rates 50,100,200,...] [--no-sippy]
        [--cprofile FILE] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "peers" / "scenarios"
TRUNK_IP = "127.0.0.2"
DOMAIN = "b2b.op.local"  # the domain the b2bua_booth_* scenarios use
TICKS = os.sysconf("SC_CLK_TCK")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Step:
    rate: int
    calls: int
    ok: int
    failed: int
    cpu_ms_per_call: float

    @property
    def failure_ratio(self) -> float:
        return self.failed / max(1, self.calls)


def sipp_stats(path: Path) -> tuple[int, int]:
    rows = list(csv.reader(path.read_text().splitlines(), delimiter=";"))
    stats = dict(zip(rows[0], rows[-1], strict=False))
    return int(stats["SuccessfulCall(C)"]), int(stats["FailedCall(C)"])


def sipp(args: list[str], work: Path, *, background: bool = False) -> subprocess.Popen[bytes]:
    binary = shutil.which("sipp")
    if binary is None:
        raise SystemExit("sipp is not installed (Debian sip-tester)")
    base = [binary, *args, "-nostdin", "-buff_size", "4194304", "-trace_stat", "-fd", "1"]
    base += ["-trace_err", "-error_file", str(work / "errors.log")]
    base += ["-stf", str(work / "stats.csv")]
    return subprocess.Popen(base, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ramp(
    name: str,
    server_pid: int,
    uac_args: list[str],
    uas_args: list[str],
    rates: list[int],
    seconds: float,
    work: Path,
    tolerance: float,
) -> list[Step]:
    steps: list[Step] = []
    for rate in rates:
        calls = int(rate * seconds)
        step_dir = work / f"{name}-{rate}"
        step_dir.mkdir(parents=True)
        uas_dir = step_dir / "uas"
        uas_dir.mkdir()
        uas = sipp(uas_args, uas_dir)
        time.sleep(0.3)  # SIPp binds its socket after start-up; nothing to poll for it
        before = cpu_seconds(server_pid)
        uac = sipp(
            [
                *uac_args,
                "-m",
                str(calls),
                "-r",
                str(rate),
                "-l",
                str(max(100, rate * 2)),
                "-timeout",
                f"{seconds + 30}s",
            ],
            step_dir,
        )
        try:
            uac.wait(seconds + 60)
        except subprocess.TimeoutExpired:  # calls stuck in an overloaded server: a failed step
            uac.send_signal(signal.SIGINT)
            try:
                uac.wait(5)
            except subprocess.TimeoutExpired:
                uac.kill()
                uac.wait()
        cpu = cpu_seconds(server_pid) - before
        uas.send_signal(signal.SIGINT)
        try:
            uas.wait(5)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()
        ok, failed = sipp_stats(step_dir / "stats.csv")
        step = Step(rate, calls, ok, failed + (calls - ok - failed), 1000 * cpu / max(1, ok))
        steps.append(step)
        print(
            f"  {name:14s} {rate:5d}/s  calls {calls:6d}  ok {step.ok:6d}  failed "
            f"{step.failed:5d}  server CPU {step.cpu_ms_per_call:6.3f} ms/call",
            flush=True,
        )
        if step.failure_ratio > tolerance:
            break
    return steps


def best(steps: list[Step], tolerance: float) -> Step | None:
    good = [s for s in steps if s.failure_ratio <= tolerance]
    return max(good, key=lambda s: s.rate) if good else None


def start_outbound_pro(
    work: Path, trunk_port: int, cprofile: str | None = None, b2bua: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    sip_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    data = work / "data"
    config = work / "config.toml"
    rtp_min = 40000
    config.write_text(
        f'data_dir = "{data}"\nlog_level = "warning"\n'
        f'[sip]\nhost = "127.0.0.1"\nudp_port = {sip_port}\ntcp_port = {sip_port}\n'
        f"tls_port = {free_port(socket.SOCK_STREAM)}\n"
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
        f"https_port = {free_port(socket.SOCK_STREAM)}\n"
        f'[rtp]\nhost = "127.0.0.1"\nport_min = {rtp_min}\nport_max = {rtp_min + 19999}\n'
        "[b2bua]\nmd5_challenge_first = true\nkeepalive_interval = 0\n"
        + "".join(f"{option}\n" for option in b2bua or [])
    )
    log = (work / "server.log").open("wb")
    profiler = ["-m", "cProfile", "-o", str(Path(cprofile).resolve())] if cprofile else []
    proc = subprocess.Popen(
        [sys.executable, *profiler, "-m", "outbound_pro.cli", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=work,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the server did not start; see {work / 'server.log'}") from None
            time.sleep(0.1)
    provision = work / "provision.toml"
    provision.write_text(
        f'[[trunk]]\nname = "carrier"\nhost = "{TRUNK_IP}"\nport = {trunk_port}\n'
        f'trusted_sources = ["{TRUNK_IP}/32"]\n'
        f'[[contract]]\nname = "Bench"\nemail = "b@bench.example.jp"\ndomain = "{DOMAIN}"\n'
        '  [[contract.user]]\n  id = "booth01"\n  password = "bench-secret-1"\n'
        '  numbers = ["03-1111-2222"]\n'
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "outbound_pro.cli",
            "provision",
            str(provision),
            "--config",
            str(config),
        ],
        check=True,
        capture_output=True,
    )
    return proc, sip_port, data


def py_spy(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the server for the whole ramp (``--py-spy``): where the time goes."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [binary, "record", "-p", str(pid), "-o", out, "-f", "raw", "-r", "200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_sippy(work: Path, uas_port: int) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("b2bua") or str(Path(sys.executable).parent / "b2bua")
    if not Path(binary).exists():
        return None
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--foreground=on",
            "--sip_address=127.0.0.1",
            f"--sip_port={port}",
            f"--static_route={TRUNK_IP}:{uas_port}",
            "--accept_ips=127.0.0.1",
            "--auth_enable=off",
            "--acct_enable=off",
            "--logfile=/dev/null",
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # sippy has no readiness probe; it answers within a second here
    if proc.poll() is not None:
        return None
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="50,100,200,300,400,500,600,800,1000,1200")
    parser.add_argument("--no-sippy", action="store_true")
    parser.add_argument("--work", help="keep SIPp and server logs in this directory")
    parser.add_argument("--cprofile", metavar="FILE", help="run the server under cProfile")
    parser.add_argument("--py-spy", metavar="FILE", help="py-spy record the server (raw format)")
    parser.add_argument(
        "--b2bua",
        action="append",
        metavar="KEY=VALUE",
        help="an extra [b2bua] setting (TOML), e.g. overload_backlog=0; repeatable",
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="cps-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        trunk_port = free_port()
        server, sip_port, _ = start_outbound_pro(work, trunk_port, args.cprofile, args.b2bua)
        spy = py_spy(server.pid, args.py_spy) if args.py_spy else None
        users = work / "users.csv"
        users.write_text(
            "SEQUENTIAL\nbooth01;[authentication username=booth01 password=bench-secret-1]\n"
        )
        uas = [
            "-sf",
            str(SCENARIOS / "b2bua_trunk_talk.xml"),
            "-i",
            TRUNK_IP,
            "-p",
            str(trunk_port),
            "-key",
            "rtp_port",
            "9",
        ]
        uac = [
            f"127.0.0.1:{sip_port}",
            "-sf",
            str(SCENARIOS / "b2bua_booth_talk.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-inf",
            str(users),
            "-s",
            "0366667777",
            "-d",
            "0",
            "-key",
            "rtp_port",
            "9",
        ]
        print(f"Outbound Pro B2BUA (pid {server.pid}), {args.seconds:g} s per step:")
        try:
            ours = ramp("outbound-pro", server.pid, uac, uas, rates, args.seconds, work, 0.0)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
                spy.wait(30)
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        mine = best(ours, 0.0)
        print(
            f"Outbound Pro: highest rate with zero failures: {mine.rate if mine else 0}/s"
            + (f", {mine.cpu_ms_per_call:.3f} ms server CPU per call" if mine else "")
        )
        if args.no_sippy:
            return
        uas_port = free_port()
        started = start_sippy(work, uas_port)
        if started is None:
            print("sippy is not installed: no comparison")
            return
        sippy_proc, sippy_port = started
        uas = ["-sn", "uas", "-i", TRUNK_IP, "-p", str(uas_port)]
        uac = [f"127.0.0.1:{sippy_port}", "-sn", "uac", "-i", "127.0.0.1", "-p", "0", "-d", "0"]
        print(f"sippy b2bua (pid {sippy_proc.pid}), same steps:")
        try:
            theirs = ramp("sippy", sippy_proc.pid, uac, uas, rates, args.seconds, work, 0.01)
        finally:
            sippy_proc.kill()  # sippy ignores SIGTERM (PEERS.md)
            sippy_proc.wait()
        zero, one = best(theirs, 0.0), best(theirs, 0.01)
        print(
            f"sippy: highest rate with zero failures: {zero.rate if zero else 0}/s; "
            f"with at most 1% failed: {one.rate if one else 0}/s"
            + (f", {one.cpu_ms_per_call:.3f} ms CPU per call" if one else "")
        )
        if mine and one:
            print(
                f"ratio (Outbound Pro zero-failure rate / sippy <=1% rate): "
                f"{mine.rate / one.rate:.1f}x"
            )


if __name__ == "__main__":
    main()
