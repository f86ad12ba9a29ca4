"""Helpers for relay and recorder tests: free port ranges, UDP peers, condition waits."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from typing import Any

from outbound_pro.rtp.relay import RelayConfig


def free_port_range(count: int = 64) -> tuple[int, int]:
    """An even-aligned range of ``count`` UDP ports on 127.0.0.1 that are all free right now.

    Picked below the ephemeral range so the OS does not hand them to the test peers; the
    relay skips any port taken later anyway.
    """
    for _ in range(200):
        base = random.randrange(20000, 32000 - count) & ~1
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base, base + count - 1
    raise RuntimeError("no free UDP port range")


def relay_config(count: int = 64, **kw: Any) -> RelayConfig:
    """A relay config on a free range of ``count`` ports on 127.0.0.1."""
    low, high = free_port_range(count)
    return RelayConfig(host="127.0.0.1", port_min=low, port_max=high, **kw)


async def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` on the loop until it is true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


class Peer(asyncio.DatagramProtocol):
    """A UDP endpoint standing in for a phone or a trunk: sends, and queues what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, addr))

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0) -> Peer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=(host, port))
        return peer

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    @property
    def port(self) -> int:
        return self.address[1]

    def send(self, data: bytes, port: int, host: str = "127.0.0.1") -> None:
        assert self.transport is not None
        self.transport.sendto(data, (host, port))

    def payloads(self) -> list[bytes]:
        return [d for d, _ in self.received]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
