"""`outbound-pro serve` with no configuration at all, as `make run` starts it.

The embedded defaults use the well-known ports (SIP 5060/5061, HTTP 8080, HTTPS 8443), which
other tests and tools on this machine may hold, so the server runs in a private network
namespace (`unshare -n`, as root like CI) where those ports are certainly free.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PROBE = r"""
import socket, ssl, sys, time, urllib.request

def options(transport, port, branch):
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:9;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
        f"Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()

deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=1).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("server never answered /healthz")
        time.sleep(0.1)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.settimeout(5)
udp.sendto(options("UDP", 5060, "z9hG4bK-u"), ("127.0.0.1", 5060))
print("udp", udp.recv(65535).split(b"\r\n")[0].decode())
tcp = socket.create_connection(("127.0.0.1", 5060), 5)
tcp.sendall(options("TCP", 5060, "z9hG4bK-t"))
print("tcp", tcp.recv(65535).split(b"\r\n")[0].decode())
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tls = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 5061), 5))
tls.sendall(options("TLS", 5061, "z9hG4bK-s"))
print("tls", tls.recv(65535).split(b"\r\n")[0].decode())
print("https", urllib.request.urlopen("https://127.0.0.1:8443/healthz", context=ctx).status)
"""

SCRIPT = """
ip link set lo up
"$PY" -m outbound_pro.cli serve > serve.log 2>&1 &
server=$!
"$PY" -c "$PROBE"
probe=$?
kill -TERM $server
wait $server
echo "serve exited $?"
exit $probe
"""


def test_serve_with_no_configuration_answers_on_default_ports(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    assert unshare is not None, "util-linux's unshare is needed (it is part of Debian's base)"
    out = subprocess.run(
        [unshare, "-n", "bash", "-c", SCRIPT],
        cwd=tmp_path,
        env={"PY": sys.executable, "PROBE": PROBE, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    log = (tmp_path / "serve.log").read_text() if (tmp_path / "serve.log").exists() else ""
    assert out.returncode == 0, out.stdout + out.stderr + log
    for transport in ("udp", "tcp", "tls"):
        assert f"{transport} SIP/2.0 200 OK" in out.stdout, out.stdout
    assert "https 200" in out.stdout
    assert "serve exited 0" in out.stdout
    assert (tmp_path / "data" / "outbound-pro.sqlite3").exists()
    assert (tmp_path / "data" / "tls" / "tls-cert.pem").exists()
