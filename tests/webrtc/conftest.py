"""Fixtures for the WebRTC gateway tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from tests.webrtc.helpers import Relay


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Relay, tuple[str, int]]]:
    """The relay's stand-in on a free loopback port, and that address."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        Relay, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    yield protocol, transport.get_extra_info("sockname")[:2]
    transport.close()
