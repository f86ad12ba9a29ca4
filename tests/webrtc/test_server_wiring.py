"""The server hands the gateway `[rtp] public_host` (docs/webphone.md: one public address for
SIP phones and browsers), else `[sip] public_host`, and a plain-side address it can bind
behind a NAT."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from outbound_pro.app import Server
from outbound_pro.config import Config, HttpConfig, RtpConfig, SipConfig
from tests.conftest import free_port
from tests.webrtc.helpers import ELASTIC_IP, check_public, is_local


@pytest.mark.parametrize("section", ["rtp", "sip"])
async def test_the_gateway_announces_the_public_host_and_binds_locally(
    tmp_path: Path, section: str
) -> None:
    sip_port = free_port(both=True)
    config = Config(
        data_dir=str(tmp_path),
        sip=SipConfig(
            host="127.0.0.1",
            udp_port=sip_port,
            tcp_port=sip_port,
            tls_port=free_port(socket.SOCK_STREAM),
            public_host=ELASTIC_IP if section == "sip" else "",
        ),
        http=HttpConfig(
            host="127.0.0.1",
            port=free_port(socket.SOCK_STREAM),
            https_port=free_port(socket.SOCK_STREAM),
        ),
        # relay on the wildcard, as by default
        rtp=RtpConfig(public_host=ELASTIC_IP if section == "rtp" else ""),
    )
    server = Server(config)
    await server.start()
    try:
        assert server.b2bua is not None and server.b2bua.webrtc is not None
        gateway = server.b2bua.webrtc
        assert gateway.public_ip == ELASTIC_IP
        # The elastic IP is on no interface, as on a cloud VM: binding it would fail.
        assert not is_local(ELASTIC_IP)
        leg = await gateway.create_offer()
        assert leg.plain_address[0] == "127.0.0.1"
        check_public(leg.offer_sdp, ELASTIC_IP)
        # SIP names the [sip] public host (Via, Contact), never the media-only one
        expected = ELASTIC_IP if section == "sip" else "127.0.0.1"
        assert server.b2bua.public_host == expected
        assert server.b2bua.contact.startswith(f"<sip:{expected}:")
    finally:
        await server.stop()
