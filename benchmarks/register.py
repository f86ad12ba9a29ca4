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

``--in-process N`` measures the same exchange without SIPp, sockets or the kernel: N
registrations (REGISTER, 401, REGISTER with digest, 200) go through `SipStack` and the
registrar in this process as datagrams in and bytes out, on a simulated clock at ``--rate``
per second so Timer J holds as many completed transactions as a running server would, and it
prints the CPU time (``perf_counter`` around the stack's calls) per registration over the
second half of them. It is the steadiest figure on a shared machine.

Usage: python benchmarks/register.py [--users 500] [--held 10000] [--rates 250,500,...]
       python benchmarks/register.py --in-process 30000 [--rate 1000] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import hashlib
import http.client
import os
import re
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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of *pid* so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


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


class _Capture:
    """Stands in for the UDP listener: keeps what the stack sends."""

    kind = "udp"
    reliable = False

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        self.sent.append(data)


def _register(i: int, users: int, cseq: int, authorization: str = "") -> bytes:
    """What SCENARIO sends for call *i* (SIPp at 127.0.0.1:5070, the server at :5060)."""
    user = f"u{i % users:05d}"
    return (
        f"REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{i}-{cseq};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=1SIPpTag{i}\r\n"
        f"To: <sip:{user}@{DOMAIN}>\r\nCall-ID: {i}-1@127.0.0.1\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{user}@127.0.0.1:5070>\r\nExpires: 3600\r\nUser-Agent: SIPp\r\n"
        f"{authorization}Content-Length: 0\r\n\r\n"
    ).encode()


def _answer(challenge: bytes, i: int, users: int) -> str:
    """The MD5 qop=auth Authorization SIPp computes for *challenge* (not timed)."""
    from outbound_pro.accounts.digest import parse_auth_params

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    found = re.search(rb"WWW-Authenticate: Digest (.*algorithm=MD5.*)\r\n", challenge)
    assert found is not None, challenge
    params = parse_auth_params(found.group(1).decode())
    user, uri = f"u{i % users:05d}", "sip:127.0.0.1:5060"
    ha1 = md5(f"{user}:{DOMAIN}:pw-{user}-bench")
    response = md5(f"{ha1}:{params['nonce']}:00000001:0a4f113b:auth:{md5(f'REGISTER:{uri}')}")
    return (
        f'Authorization: Digest username="{user}", realm="{DOMAIN}", uri="{uri}", '
        f'nonce="{params["nonce"]}", response="{response}", algorithm=MD5, '
        f'opaque="{params["opaque"]}", qop=auth, cnonce="0a4f113b", nc=00000001\r\n'
    )


def in_process(users: int, held: int, count: int, rate: float, profile: str | None) -> None:
    """See the module docstring: CPU per registration of the stack and registrar alone."""
    from outbound_pro.accounts.digest import DigestAuthenticator
    from outbound_pro.config import RegistrarConfig
    from outbound_pro.metrics import Registry
    from outbound_pro.registrar.core import Registrar
    from outbound_pro.registrar.endpoint import RegistrarEndpoint
    from outbound_pro.runtime import tune_gc
    from outbound_pro.sip.router import Router
    from outbound_pro.sip.stack import SipStack
    from outbound_pro.store import open_database

    with tempfile.TemporaryDirectory(prefix="register-bench-") as tmp:
        work = Path(tmp)
        config = work / "config.toml"
        config.write_text(f'data_dir = "{work / "data"}"\n')
        provision(config, work, users)
        db_path = work / "data" / "outbound-pro.sqlite3"
        hold_bindings(db_path, held)
        db = open_database(db_path)
        clock = [0.0]  # simulated seconds since the start
        wall = time.time()
        limits = RegistrarConfig(source_rate=1e6, source_burst=1e6, keepalive_interval=0)
        registrar = Registrar(db, DigestAuthenticator(os.urandom(32)), limits=limits)
        router, metrics = Router(), Registry()
        stack = SipStack(router, metrics, clock=lambda: clock[0])
        router.attach(stack)
        RegistrarEndpoint(registrar, router, stack, metrics, clock=lambda: wall + clock[0])
        listener = _Capture()
        source = ("127.0.0.1", 5070)
        tune_gc()
        profiler = cProfile.Profile() if profile else None
        spent, statuses = 0.0, {}
        for i in range(count):
            if i == count // 2 and profiler is not None:
                profiler.enable()
            clock[0] += 1.0 / rate
            first = _register(i, users, 1)
            started = time.perf_counter()
            stack.datagram_received(first, source, listener)  # type: ignore[arg-type]
            took = time.perf_counter() - started
            second = _register(i, users, 2, _answer(listener.sent[-1], i, users))
            started = time.perf_counter()
            stack.datagram_received(second, source, listener)  # type: ignore[arg-type]
            deadline = stack.layer.next_deadline()
            if deadline is not None and deadline <= clock[0]:
                stack._on_timer()  # what the loop's one timer would do now
            took += time.perf_counter() - started
            status = listener.sent[-1][8:11].decode()
            statuses[status] = statuses.get(status, 0) + 1
            listener.sent.clear()
            if i >= count // 2:
                spent += took
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        db.close()
    measured = count - count // 2
    print(f"users {users}; held {held}; {count} registrations at a simulated {rate:.0f}/s")
    print(f"final statuses {statuses}; live transactions at the end {len(stack.layer)}")
    print(f"server CPU per registration: {spent / measured * 1e6:.1f} us (last {measured})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--rates", default="250,500,1000,1500,2000,2500,3000")
    parser.add_argument("--step", type=float, default=5.0, help="seconds per rate step")
    parser.add_argument(
        "--profile", metavar="FILE", help="run the server under cProfile, into FILE"
    )
    parser.add_argument(
        "--in-process", type=int, metavar="N", help="N registrations in this process, no SIPp"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="simulated rate, --in-process")
    args = parser.parse_args()
    if args.in_process:
        in_process(args.users, args.held, args.in_process, args.rate, args.profile)
        return
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (make peers)")
    with tempfile.TemporaryDirectory(prefix="register-bench-") as tmp:
        work = Path(tmp)
        proc, port, config = start_server(work, args.profile)
        try:
            provision(config, work, args.users)
            hold_bindings(work / "data" / "outbound-pro.sqlite3", args.held)
            print(f"machine: {os.cpu_count()} CPUs; users {args.users}; held {args.held}")
            print("rate/s  ok  failed  achieved/s  server-cpu-ms/registration (user sys)")
            best = 0.0
            for rate in (int(r) for r in args.rates.split(",")):
                user0, sys0 = cpu_seconds(proc.pid)
                ok, failed, elapsed = run_step(work, port, args.users, rate, args.step)
                user1, sys1 = cpu_seconds(proc.pid)
                achieved = ok / elapsed if elapsed else 0.0
                ms = [
                    (b - a) / ok * 1000 if ok else float("nan")
                    for a, b in ((user0, user1), (sys0, sys1))
                ]
                print(
                    f"{rate:6d} {ok:5d} {failed:6d} {achieved:10.0f} {sum(ms):10.3f}"
                    f"  ({ms[0]:.3f} {ms[1]:.3f})",
                    flush=True,
                )
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
