"""100,000 random, truncated and mutated messages at the running server (issue: bad input).

The corpus is seeded from the RFC 4475 torture messages. The server must stay up, answer an
OPTIONS afterwards, close nothing but the offending TCP connections, and let every transaction
the garbage created expire, so memory returns to a plateau instead of growing with the input.
"""

from __future__ import annotations

import random
import socket
import time
import urllib.request
from pathlib import Path

from tests.conftest import ServerProcess, start_server, stop_server, wait_for

CORPUS = sorted((Path(__file__).parents[1] / "sip" / "rfc4475").glob("*.dat"))
UDP_COUNT = 90_000
TCP_COUNT = 10_000


def _mutants(rng: random.Random, seeds: list[bytes], count: int) -> list[bytes]:
    out = []
    for i in range(count):
        base = seeds[i % len(seeds)]
        kind = i % 4
        if kind == 0:
            data = base[: rng.randrange(len(base) + 1)]
        elif kind == 1:
            buf = bytearray(base)
            for _ in range(rng.randrange(1, 8)):
                buf[rng.randrange(len(buf))] = rng.randrange(256)
            data = bytes(buf)
        elif kind == 2:
            data = rng.randbytes(rng.randrange(1, 1500))
        else:
            lines = base.split(b"\r\n")
            rng.shuffle(lines)
            data = b"\r\n".join(lines)
        out.append(data)
    return out


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"metric {name} missing")


def _options_ok(port: int, timeout: float = 5) -> bool:
    msg = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch="
        f"z9hG4bK-{time.monotonic_ns()};rport\r\nMax-Forwards: 70\r\n"
        "From: <sip:f@x>;tag=1\r\nTo: <sip:t@x>\r\nCall-ID: fuzz-check\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(msg, ("127.0.0.1", port))
        try:
            while True:
                data = s.recv(65536)
                if b"fuzz-check" in data:
                    return data.startswith(b"SIP/2.0 200 ")
        except TimeoutError:
            return False


def _blast_udp(server: ServerProcess, datagrams: list[bytes], batch: int = 50) -> None:
    """Send in batches, each closed by an OPTIONS probe: UDP is processed in order, so the
    probe's answer means the batch was handled. That paces the sender to the server without
    sleeping, and the test measures handling rather than the kernel dropping datagrams."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        target = ("127.0.0.1", server.sip_port)
        for start in range(0, len(datagrams), batch):
            for data in datagrams[start : start + batch]:
                s.sendto(data, target)
            # A probe can itself be dropped from a full socket buffer; ask again before failing.
            answered = any(_options_ok(server.sip_port, 1) for _ in range(5))
            assert answered, f"no answer after datagram {start + batch}"


def _blast_tcp(server: ServerProcess, messages: list[bytes]) -> None:
    conn: socket.socket | None = None
    for data in messages:
        try:
            if conn is None:
                conn = socket.create_connection(("127.0.0.1", server.sip_port), timeout=5)
            conn.sendall(data)
        except OSError:
            # The server closed a connection whose stream it could not frame: expected.
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


def test_fuzzed_traffic_leaves_server_up_and_bounded(tmp_path: Path) -> None:
    rng = random.Random(4475)
    seeds = [p.read_bytes() for p in CORPUS]
    srv = start_server(tmp_path, "t1 = 0.05")
    try:
        udp = _mutants(rng, seeds, UDP_COUNT)
        tcp = _mutants(rng, seeds, TCP_COUNT)
        _blast_udp(srv, udp[:10_000])
        wait_for(lambda: _metric(srv.http_port, "outbound_pro_sip_transactions") == 0, 30)
        baseline = _rss_kib(srv.proc.pid)
        _blast_udp(srv, udp[10_000:])
        _blast_tcp(srv, tcp)
        assert srv.proc.poll() is None, srv.log()
        wait_for(lambda: _options_ok(srv.sip_port), 10, "OPTIONS after fuzzing")
        wait_for(
            lambda: _metric(srv.http_port, "outbound_pro_sip_transactions") <= 1,
            30,
            "garbage-created transactions to expire",
        )
        wait_for(lambda: _metric(srv.http_port, "outbound_pro_sip_connections") == 0, 30)
        grown = _rss_kib(srv.proc.pid) - baseline
        assert grown < 40 * 1024, f"RSS grew {grown} KiB over 90,000 more messages"
        received = _metric(
            srv.http_port, 'outbound_pro_sip_messages_received_total{transport="udp"}'
        )
        assert received > UDP_COUNT * 0.99, "datagrams must reach the server, not the floor"
    finally:
        assert stop_server(srv) == 0, srv.log()[-3000:]
