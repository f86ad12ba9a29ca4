"""Authenticated REGISTER throughput of a real `outbound-pro serve`, driven by SIPp.

Set-up: a server process on free ports; USERS users provisioned with `outbound-pro provision`;
HELD bindings (default 10,000) present in `sip_bindings` before measuring, as registrations
would leave them. They are written straight into the database (spread over the provisioned
users under separate AORs) because provisioning 10,000 users costs 10,000 scrypt hashes
(~30 minutes here) and is not what is measured. Then SIPp runs `SCENARIO` (REGISTER, 401,
REGISTER with MD5 digest qop=auth, 200) at rising rates, each step for STEP seconds; a step
passes when SIPp counts no failed registration. For each step it prints registrations per
second achieved and the server's CPU time per registration (utime+stime from /proc/PID/stat
before and after).

Each SIPp "call" is one phone re-registering: a new Call-ID but the user's one Contact, so it
refreshes that user's binding. The test scenario `register_auth.xml` adds ``;line=N`` to make
every call a new contact, which is right for a functional test but here runs every AOR into
the 10-contact limit (403) after USERS x 10 calls, whatever the speed.

Usage: python benchmarks/register.py [--users 500] [--held 10000] [--rates 250,500,...]
"""

from __future__ import annotations

import argparse
import csv
import http.client
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="re-register with digest auth">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Expires: 3600
      User-Agent: SIPp
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[field0]@[field1]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      Expires: 3600
      User-Agent: SIPp
      [field2]
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="true"/>
</scenario>
"""
DOMAIN = "bench.op.local"


def free_port() -> int:
    """A port free for both TCP and UDP: SIP listens on both, and HTTP on TCP, so a port
    that is only free for UDP can collide with another program's TCP listener."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(work: Path, profile: str | None) -> tuple[subprocess.Popen[bytes], int, Path]:
    sip, http_port = free_port(), free_port()
    config = work / "config.toml"
    config.write_text(
        f'data_dir = "{work / "data"}"\nlog_level = "warning"\n'
        f'[sip]\nhost = "127.0.0.1"\nudp_port = {sip}\ntcp_port = {sip}\ntls_port = {free_port()}\n'
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
        # One SIPp is one source address: lift the per-source flood limit for the run, keep
        # the global one, and keep keep-alive probes to the 10,000 held bindings out of it.
        "[registrar]\nsource_rate = 100000.0\nsource_burst = 100000.0\nkeepalive_interval = 0\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            *(["-m", "cProfile", "-o", profile] if profile else []),
            "-m",
            "outbound_pro.cli",
            "serve",
            "--config",
            str(config),
        ],
        stdout=(work / "server.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60  # generous: other work may share this machine
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=0.5):
                return proc, sip, config
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    proc.kill()
    log = (work / "server.log").read_text(errors="replace")[-2000:]
    raise SystemExit(f"server did not start:\n{log}")


def provision(config: Path, work: Path, users: int) -> None:
    lines = [
        "[[contract]]",
        'name = "Bench Corp"',
        'email = "ops@bench.example.jp"',
        f'domain = "{DOMAIN}"',
        'admin = { id = "admin", password = "bench-admin-password" }',
    ]
    for i in range(users):
        lines += ["[[contract.user]]", f'id = "u{i:05d}"', f'password = "pw-u{i:05d}-bench"']
    path = work / "provision.toml"
    path.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [sys.executable, "-m", "outbound_pro.cli", "provision", str(path), "--config", str(config)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def hold_bindings(db_path: Path, held: int) -> None:
    conn = sqlite3.connect(db_path, timeout=10)
    ids = [r[0] for r in conn.execute("SELECT id FROM ids WHERE role = 'user' ORDER BY id")]
    contract = conn.execute("SELECT id FROM contracts WHERE domain = ?", (DOMAIN,)).fetchone()[0]
    now = time.time()
    rows = [
        (
            contract,
            ids[n % len(ids)],
            f"sip:held{n}@{DOMAIN}",
            f"sip:held{n}@10.1.{n // 250 % 250}.{n % 250}:5060",
            1.0,
            now + 3600,
            f"held-{n}",
            1,
            "udp",
            "10.9.9.9",
            5060 + n % 1000,
            "bench",
            "",
            now,
        )
        for n in range(held)
    ]
    with conn:
        conn.executemany(
            "INSERT INTO sip_bindings (contract_id, id_id, aor, contact, q, expires_at, call_id,"
            " cseq, transport, source_host, source_port, user_agent, instance, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    conn.close()


def run_step(
    work: Path, port: int, users: int, rate: int, seconds: float
) -> tuple[int, int, float]:
    step = work / f"rate-{rate}"
    step.mkdir()
    inf = step / "users.csv"
    inf.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"u{i:05d};{DOMAIN};[authentication username=u{i:05d} password=pw-u{i:05d}-bench]\n"
            for i in range(users)
        )
    )
    scenario = work / "register_refresh.xml"
    if not scenario.exists():
        scenario.write_text(SCENARIO)
    calls = int(rate * seconds)
    started = time.monotonic()
    subprocess.run(
        [
            "sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-inf", str(inf),
            "-i", "127.0.0.1", "-p", "0", "-m", str(calls), "-r", str(rate), "-l", "5000",
            "-buff_size", "4194304", "-nostdin", "-timeout", f"{seconds * 3 + 20}s",
            "-timeout_error", "-trace_stat", "-stf", str(step / "stats.csv"), "-fd", "1",
            "-recv_timeout", "5000",
        ],
        cwd=step, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    rows = list(csv.reader((step / "stats.csv").read_text().splitlines(), delimiter=";"))
    stats = dict(zip(rows[0], rows[-1], strict=False))
    return int(stats["SuccessfulCall(C)"]), int(stats["FailedCall(C)"]), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--rates", default="250,500,1000,1500,2000,2500,3000")
    parser.add_argument("--step", type=float, default=5.0, help="seconds per rate step")
    parser.add_argument(
        "--profile", metavar="FILE", help="run the server under cProfile, into FILE"
    )
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (make peers)")
    with tempfile.TemporaryDirectory(prefix="register-bench-") as tmp:
        work = Path(tmp)
        proc, port, config = start_server(work, args.profile)
        try:
            provision(config, work, args.users)
            hold_bindings(work / "data" / "outbound-pro.sqlite3", args.held)
            print(f"machine: {os.cpu_count()} CPUs; users {args.users}; held {args.held}")
            print("rate/s  ok  failed  achieved/s  server-cpu-ms/registration")
            best = 0.0
            for rate in (int(r) for r in args.rates.split(",")):
                before = cpu_seconds(proc.pid)
                ok, failed, elapsed = run_step(work, port, args.users, rate, args.step)
                cpu = cpu_seconds(proc.pid) - before
                achieved = ok / elapsed if elapsed else 0.0
                per = cpu / ok * 1000 if ok else float("nan")
                print(f"{rate:6d} {ok:5d} {failed:6d} {achieved:10.0f} {per:10.3f}", flush=True)
                if failed:
                    break
                best = max(best, achieved)
            print(f"registrations/s at zero failures: {best:.0f}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
