"""A booth-to-trunk call through the B2BUA whose RTP this test process sends and receives.

SIPp does the signalling on both sides (``b2bua_booth_talk.xml`` / ``b2bua_trunk_talk.xml``);
each side's RTP comes from a `MediaPeer` socket at the address its SDP names (booth
127.0.0.1, carrier 127.0.0.2), so what each side heard can be analysed.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from outbound_pro.media.g711 import encode_ulaw
from tests.b2bua.conftest import BOOTHS
from tests.b2bua.peers import BOOTH_IP, TRUNK_IP, SippProc, start_sipp
from tests.conftest import wait_for
from tests.media.tones import rtp, tone_codes


def relay_port(proc: SippProc, own: int) -> int | None:
    """The relay port in the SDP this SIPp received (any m=audio port that is not its own)."""
    log = proc.work / "messages.log"
    if not log.exists():
        return None
    ports = [int(p) for p in re.findall(r"m=audio (\d+)", log.read_text(errors="replace"))]
    others = [p for p in ports if p != own]
    return others[0] if others else None


class MediaPeer:
    """One side's RTP: a socket at the SDP address, a tone to send, and what came back."""

    def __init__(self, ip: str, freq: float) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.codes = tone_codes(freq, 10.0, encode_ulaw)
        self.heard = bytearray()
        self.seq = 0
        self.ssrc = 0x1000 + self.port

    def send(self, relay_port: int) -> None:
        k = self.seq % 500
        payload = self.codes[160 * k : 160 * (k + 1)]
        self.sock.sendto(
            rtp(self.seq, 160 * self.seq, self.ssrc, 0, payload), ("127.0.0.1", relay_port)
        )
        self.seq += 1

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except BlockingIOError:
                return
            self.heard += data[12:]

    def close(self) -> None:
        self.sock.close()


def stream_both(a: MediaPeer, b: MediaPeer, ports: tuple[int, int], seconds: float) -> None:
    """Send 20 ms packets both ways, paced by the clock, for *seconds*."""
    start = time.monotonic()
    for n in range(int(seconds / 0.02)):
        a.send(ports[0])
        b.send(ports[1])
        a.drain()
        b.drain()
        delay = start + (n + 1) * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    a.drain()
    b.drain()


def start_talk_call(
    tmp: Path, name: str, target: str, trunk_port: int, talk_ms: int, a: MediaPeer, b: MediaPeer
) -> tuple[SippProc, SippProc, tuple[int, int]]:
    trunk = start_sipp(
        tmp / name,
        "trunk",
        "b2bua_trunk_talk.xml",
        local_ip=TRUNK_IP,
        local_port=trunk_port,
        keys={"rtp_port": str(b.port)},
        timeout=60,
    )
    booth = start_sipp(
        tmp / name,
        "booth",
        "b2bua_booth_talk.xml",
        local_ip=BOOTH_IP,
        target=target,
        users={"booth01": BOOTHS["booth01"][0]},
        extra=("-s", "0366667777", "-d", str(talk_ms)),
        keys={"rtp_port": str(a.port)},
        timeout=60,
    )
    port_a = wait_for(lambda: relay_port(booth, a.port), 10, "the relay port in the 200")
    port_b = wait_for(lambda: relay_port(trunk, b.port), 10, "the relay port in the INVITE")
    return booth, trunk, (int(port_a), int(port_b))  # type: ignore[call-overload]
