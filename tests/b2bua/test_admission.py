"""Admission control: 503 + Retry-After for new INVITEs when the server is overloaded."""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path

from outbound_pro.b2bua.admission import SUSTAINED, Admission, ReceiveBacklog, Verdict
from outbound_pro.sip.message import new_branch
from tests.b2bua.conftest import DOMAIN, start_b2bua
from tests.b2bua.peers import BOOTH_IP, TRUNK_IP, start_sipp
from tests.conftest import stop_server, wait_for


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _queue(size: int) -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket with a small receive buffer that nobody reads, and a sender."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return sink, sender


def _flood(sink: socket.socket, sender: socket.socket) -> None:
    """Far more than the buffer holds: the kernel drops the rest."""
    for _ in range(200):
        sender.sendto(b"x" * 500, sink.getsockname())


def _drain(sink: socket.socket) -> None:
    sink.setblocking(False)
    while True:
        try:
            sink.recv(2048)
        except BlockingIOError:
            return


def test_receive_backlog_reads_the_kernel_queue() -> None:
    sink, sender = _queue(65536)
    try:
        backlog = ReceiveBacklog(sink)
        assert backlog.buffer > 0 and backlog.fraction() == 0.0
        _flood(sink, sender)
        assert backlog.fraction() > 0.9
        _drain(sink)
        assert backlog.fraction() == 0.0
    finally:
        sink.close()
        sender.close()


def test_a_sustained_backlog_refuses_a_burst_does_not() -> None:
    sink, sender = _queue(65536)
    clock = Clock()
    try:
        adm = Admission(
            in_setup=lambda: 0,
            max_calls_in_setup=0,
            backlog_limit=0.5,
            backlog=ReceiveBacklog(sink),
            clock=clock,
        )
        assert adm.check() is Verdict.ADMIT
        _flood(sink, sender)
        assert adm.check() is Verdict.ADMIT  # first seen full: a burst so far
        clock.t += SUSTAINED / 2
        assert adm.check() is Verdict.ADMIT
        clock.t += SUSTAINED / 2
        assert adm.check() is Verdict.BACKLOG  # full for SUSTAINED seconds: overloaded
        _drain(sink)
        assert adm.check() is Verdict.ADMIT  # drained: admitted again at once
        clock.t += SUSTAINED
        assert adm.check() is Verdict.ADMIT
    finally:
        sink.close()
        sender.close()


def test_calls_in_setup_bound_and_zero_is_off() -> None:
    in_setup = [3]
    adm = Admission(in_setup=lambda: in_setup[0], max_calls_in_setup=3, backlog_limit=0.0)
    assert adm.check() is Verdict.SETUP
    in_setup[0] = 2
    assert adm.check() is Verdict.ADMIT
    off = Admission(in_setup=lambda: 10**6, max_calls_in_setup=0, backlog_limit=0.0)
    assert off.check() is Verdict.ADMIT


def _invite(port: int) -> bytes:
    return (
        f"INVITE sip:0366667777@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {BOOTH_IP}:{{local}};branch={new_branch()};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:booth02@{DOMAIN}>;tag=t1\r\n"
        f"To: <sip:0366667777@{DOMAIN}>\r\nCall-ID: overload-1@test\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:booth02@{BOOTH_IP}:{{local}}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_beyond_max_calls_in_setup_a_new_invite_gets_503_with_retry_after(
    tmp_path: Path,
) -> None:
    srv = start_b2bua(tmp_path / "srv", "max_calls_in_setup = 1")
    http = srv.server.http_port
    try:
        # One call rings (the carrier never answers; the ring timeout ends it after 2 s).
        trunk = start_sipp(
            tmp_path,
            "trunk",
            "b2bua_trunk_ring_cancel.xml",
            local_ip=TRUNK_IP,
            local_port=srv.trunk_port,
        )
        booth = start_sipp(
            tmp_path,
            "booth",
            "b2bua_booth_noanswer.xml",
            local_ip=BOOTH_IP,
            target=srv.target,
            users={"booth01": "secret-booth01"},
            extra=("-s", "0366667777"),
        )
        wait_for(lambda: _metric(http, "outbound_pro_calls_in_setup") == 1, 10, "a ringing call")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((BOOTH_IP, 0))
            s.settimeout(5)
            local = s.getsockname()[1]
            s.sendto(
                _invite(srv.server.sip_port).replace(b"{local}", str(local).encode()),
                ("127.0.0.1", srv.server.sip_port),
            )
            while True:  # a 100 Trying may come first
                reply = s.recv(65536).decode()
                if not reply.startswith("SIP/2.0 100"):
                    break
        assert reply.startswith("SIP/2.0 503 ")
        assert "\r\nRetry-After: 5\r\n" in reply
        assert 'Reason: SIP;cause=503;text="overloaded (setup)"' in reply
        rejected = 'outbound_pro_calls_overload_rejected_total{cause="setup"}'
        assert _metric(http, rejected) == 1
        for r in (booth.result(), trunk.result()):  # the ringing call was not disturbed
            assert (r.successful, r.failed) == (1, 0), r.screen
        cdrs = srv.cdrs()
        assert [c["status"] for c in cdrs] == [480]  # an overload refusal leaves no CDR
    finally:
        stop_server(srv.server)
