"""A plain-RTP stand-in for the relay, and tone helpers, for the WebRTC gateway tests."""

from __future__ import annotations

import asyncio
import math
import struct

import numpy as np

from outbound_pro.media.g711 import encode_alaw, encode_ulaw

RELAY_HZ = 1100.0


class Relay(asyncio.DatagramProtocol):
    """A plain RTP endpoint: collects what it gets, sends a PCMU tone when asked."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.got = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(data)
        if len(self.packets) >= 100:
            self.got.set()


async def tone_sender(relay: Relay, to: tuple[str, int], seconds: float, pt: int) -> None:
    """20 ms G.711 packets (PCMU for pt 0, else PCMA) of RELAY_HZ at real-time pace."""
    n = int(seconds * 50)
    t = np.arange(n * 160) / 8000
    pcm = (9000 * np.sin(2 * math.pi * RELAY_HZ * t)).astype("<i2").tobytes()
    codes = encode_ulaw(pcm) if pt == 0 else encode_alaw(pcm)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(n):
        header = struct.pack("!BBHII", 0x80, pt, k, 160 * k, 0x1234)
        assert relay.transport is not None
        relay.transport.sendto(header + codes[160 * k : 160 * (k + 1)], to)
        delay = start + (k + 1) * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


def payload_pcm(packets: list[bytes], decode: object) -> np.ndarray:
    body = b"".join(p[12:] for p in packets)
    return np.frombuffer(decode(body), dtype="<i2")  # type: ignore[operator]
