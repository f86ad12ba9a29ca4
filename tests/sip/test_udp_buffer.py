"""The SIP UDP socket's receive queue is sized from `[sip] udp_receive_buffer`."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from outbound_pro.sip.transport import UdpListener, open_udp


class NullSink:
    def datagram_received(self, data: bytes, addr: tuple[str, int], listener: object) -> None:
        """Nothing arrives in these tests."""


def rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


def granted(listener: UdpListener) -> int:
    assert listener.transport is not None
    sock: socket.socket = listener.transport.get_extra_info("socket")
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports double


async def test_the_requested_buffer_is_set() -> None:
    default = granted(await open_udp(NullSink(), "127.0.0.1", 0))  # type: ignore[arg-type]
    size = min(rmem_max(), 1 << 20)
    assert size > default, "the kernel's cap leaves nothing to test"
    listener = await open_udp(NullSink(), "127.0.0.1", 0, size)  # type: ignore[arg-type]
    try:
        assert granted(listener) == size
    finally:
        assert listener.transport is not None
        listener.transport.close()


async def test_a_capped_buffer_is_reported_with_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    size = rmem_max() * 2
    with caplog.at_level(logging.WARNING, logger="outbound_pro.sip"):
        listener = await open_udp(NullSink(), "127.0.0.1", 0, size)  # type: ignore[arg-type]
    try:
        assert granted(listener) < size
        [record] = [r for r in caplog.records if "receive buffer" in r.getMessage()]
        assert f"net.core.rmem_max={size}" in record.__dict__["fix"]
    finally:
        assert listener.transport is not None
        listener.transport.close()
