"""The running server over real sockets: SIPp scenarios and hand-made clients on UDP/TCP/TLS."""

from __future__ import annotations

import itertools
import re
import socket
import ssl
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, start_server, stop_server
from tests.peers.sipp import run_sipp


def _options(transport: str, port: int, branch: str = "z9hG4bK-wire-1") -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=abc\r\n"
        f"To: <sip:127.0.0.1:{port}>\r\n"
        f"Call-ID: {branch}@probe\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _read_until(sock: socket.socket | ssl.SSLSocket, done: bytes, count: int = 1) -> bytes:
    """Read until *done* occurs *count* times, the peer closes, or 5 s pass."""
    data = b""
    deadline = time.monotonic() + 5
    sock.settimeout(0.5)
    while data.count(done) < count and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data


def _read_response(sock: socket.socket | ssl.SSLSocket) -> bytes:
    return _read_until(sock, b"\r\n\r\n")


def test_options_over_udp_tcp_and_tls(server: ServerProcess) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(5)
        udp.sendto(_options("UDP", server.sip_port), ("127.0.0.1", server.sip_port))
        data, _ = udp.recvfrom(65536)
    assert data.startswith(b"SIP/2.0 200 ")
    # rport asked for: the server must fill it and add received (RFC 3581).
    assert re.search(rb"rport=\d+", data) and b"received=127.0.0.1" in data

    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as tcp:
        tcp.sendall(_options("TCP", server.sip_port, "z9hG4bK-wire-tcp"))
        assert _read_response(tcp).startswith(b"SIP/2.0 200 ")

    ctx = ssl.create_default_context()
    ctx.load_verify_locations(server.data_dir / "tls" / "tls-cert.pem")
    ctx.check_hostname = False
    with (
        socket.create_connection(("127.0.0.1", server.tls_port), timeout=5) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        tls.sendall(_options("TLS", server.tls_port, "z9hG4bK-wire-tls"))
        reply = _read_response(tls)
    assert reply.startswith(b"SIP/2.0 200 ")
    assert b"Allow:" in reply and b"INVITE" in reply


def test_tcp_stream_with_several_and_partial_messages(server: ServerProcess) -> None:
    one = _options("TCP", server.sip_port, "z9hG4bK-s1")
    two = _options("TCP", server.sip_port, "z9hG4bK-s2")
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as tcp:
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tcp.sendall(one + two[:40])
        first = _read_until(tcp, b"SIP/2.0 200 ")
        assert first.count(b"SIP/2.0 200 ") == 1, "half a message must wait for the rest"
        tcp.sendall(two[40:])
        rest = _read_until(tcp, b"SIP/2.0 200 ")
    assert b"z9hG4bK-s1" in first and b"z9hG4bK-s2" in rest


def test_bad_content_length_on_tcp_gets_400_and_close(server: ServerProcess) -> None:
    bad = _options("TCP", server.sip_port, "z9hG4bK-ncl").replace(
        b"Content-Length: 0", b"Content-Length: -999"
    )
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as tcp:
        tcp.sendall(bad)
        data = _read_until(tcp, b"never-appears")
    assert data.startswith(b"SIP/2.0 400 "), data[:80]


def test_oversized_messages_dropped_on_udp_and_closed_on_tcp(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "max_message_size = 2000")
    big = _options("UDP", srv.sip_port, "z9hG4bK-big").replace(
        b"Content-Length: 0\r\n", b"X-Pad: " + b"a" * 3000 + b"\r\nContent-Length: 0\r\n"
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(0.5)
            udp.sendto(big, ("127.0.0.1", srv.sip_port))
            with pytest.raises(TimeoutError):
                udp.recvfrom(65536)
            udp.settimeout(5)
            udp.sendto(_options("UDP", srv.sip_port, "z9hG4bK-after"), ("127.0.0.1", srv.sip_port))
            assert udp.recvfrom(65536)[0].startswith(b"SIP/2.0 200 ")
        with socket.create_connection(("127.0.0.1", srv.sip_port), timeout=5) as tcp:
            tcp.sendall(big.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
            tcp.settimeout(5)
            rest = b""
            while chunk := tcp.recv(65536):
                rest += chunk
            assert b"SIP/2.0 200" not in rest  # closed, not answered
    finally:
        stop_server(srv)


def test_sipp_options(server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(tmp_path, "options.xml", f"127.0.0.1:{server.sip_port}", calls=20, rate=50)
    assert (result.successful, result.failed) == (20, 0), result.screen
    tcp = run_sipp(tmp_path / "tcp", "options.xml", f"127.0.0.1:{server.sip_port}", transport="t1")
    assert (tcp.successful, tcp.failed) == (1, 0), tcp.screen


def test_sipp_invite_answered_and_acked(server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(tmp_path, "invite_404.xml", f"127.0.0.1:{server.sip_port}", calls=10, rate=20)
    assert (result.successful, result.failed) == (10, 0), result.screen


def test_sipp_request_retransmissions_are_absorbed(server: ServerProcess, tmp_path: Path) -> None:
    result = run_sipp(
        tmp_path, "request_retrans.xml", f"127.0.0.1:{server.sip_port}", calls=5, extra=("-nr",)
    )
    assert (result.successful, result.failed) == (5, 0), result.screen


def test_sipp_timer_g_and_h_fire_on_time(tmp_path: Path) -> None:
    """With T1 = 50 ms the 404 must come back at T1 doublings and stop at 64*T1 (RFC 3261
    §17.2.1), as SIPp saw it: the scenario fails on a missing or an extra retransmission and
    the received timestamps in SIPp's trace are checked against the schedule."""
    srv = start_server(tmp_path / "srv", "t1 = 0.05")
    try:
        result = run_sipp(
            tmp_path, "invite_no_ack.xml", f"127.0.0.1:{srv.sip_port}", extra=("-nr",)
        )
    finally:
        stop_server(srv)
    assert (result.successful, result.failed) == (1, 0), result.screen
    stamps = [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        for m in re.finditer(
            r"([\d-]+ [\d:.]+)\s*\n[^\n]*(?:message received|received)[^\n]*\n+SIP/2.0 404",
            result.messages,
        )
    ]
    assert len(stamps) == 7, result.messages[:2000]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    expected = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
    for got, want in zip(gaps, expected, strict=True):
        assert want * 0.7 - 0.01 <= got <= want * 1.3 + 0.05, (gaps, expected)
