"""The gateway behind a 1:1 NAT: its public address in the ICE candidates and ``c=`` of what it
sends the browser, and a browser that reaches it through that address alone."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from outbound_pro.media.g711 import decode_ulaw
from outbound_pro.webrtc import WebRtcGateway
from tests.rtp.util import wait_until
from tests.webrtc.helpers import (
    ELASTIC_IP,
    PEER_HZ,
    RELAY_HZ,
    OneToOneNat,
    Relay,
    candidates_of,
    check_public,
    is_local,
    payload_pcm,
    peer_offer,
    tap_rtp,
    tone_purity,
    tone_sender,
)


def rewrite_candidates(
    sdp: str, change: Callable[[RTCIceCandidate], RTCIceCandidate | None]
) -> str:
    """*sdp* with each candidate passed through *change*; None drops it."""
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            candidate = change(candidate_from_sdp(line.removeprefix("a=candidate:")))
            if candidate is None:
                continue
            line = "a=candidate:" + candidate_to_sdp(candidate)
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


async def test_public_address_is_announced_next_to_the_host_candidates() -> None:
    assert not is_local(ELASTIC_IP)
    gateway = WebRtcGateway("127.0.0.1", public_address=ELASTIC_IP)
    plain = WebRtcGateway("127.0.0.1")
    pc = RTCPeerConnection()
    try:
        answered = await gateway.accept_offer(await peer_offer(pc, "PCMU"))
        check_public(answered.answer_sdp, ELASTIC_IP)
        offering = await gateway.create_offer()
        check_public(offering.offer_sdp, ELASTIC_IP)
        # Without the setting: host candidates only, as before.
        unset = await plain.create_offer()
        assert {c.type for c in candidates_of(unset.offer_sdp)} == {"host"}
    finally:
        await pc.close()
        await gateway.close()
        await plain.close()


def test_a_public_name_is_resolved_once_and_a_bad_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert WebRtcGateway(public_address="localhost").public_ip == "127.0.0.1"
    with caplog.at_level(logging.WARNING, logger="outbound_pro.webrtc"):
        assert WebRtcGateway(public_address="nowhere.invalid").public_ip is None
    assert "does not resolve" in caplog.text


async def test_browser_reaches_the_gateway_through_the_public_address_alone(
    relay: tuple[Relay, tuple[str, int]],
) -> None:
    """127.0.0.2 plays the elastic IP. A loopback alias alone would not do: the gateway's
    sockets are bound to their own addresses, and one bound to 127.0.0.1 (or 192.0.2.2) never
    gets a datagram sent to 127.0.0.2. So a 1:1 NAT in user space maps 127.0.0.2:P to the
    private P. The browser gets the public candidates only (it is on the internet: the
    private ones do not reach), and the gateway gets the browser's host candidates moved to
    127.0.0.3, where nobody listens (it is behind its own NAT): the only way through is the
    NAT, found from the browser's checks (a peer-reflexive candidate on the gateway's side)."""
    protocol, relay_addr = relay
    nat = OneToOneNat("127.0.0.2")
    gateway = WebRtcGateway("127.0.0.1", public_address=nat.public_ip)
    pc = RTCPeerConnection()
    try:

        def behind_a_nat(c: RTCIceCandidate) -> RTCIceCandidate | None:
            if ":" in c.ip:
                return None
            c.ip = "127.0.0.3"
            return c

        offer = rewrite_candidates(await peer_offer(pc, "PCMU"), behind_a_nat)
        leg = await gateway.accept_offer(offer)
        for c in candidates_of(leg.answer_sdp):
            if c.type == "srflx":
                assert c.relatedAddress is not None and c.relatedPort == c.port
                nat.expose((c.relatedAddress, c.port))
        public_only = rewrite_candidates(leg.answer_sdp, lambda c: c if c.type == "srflx" else None)
        assert candidates_of(public_only) and "typ host" not in public_only
        leg.set_plain_remote(relay_addr)
        await pc.setRemoteDescription(RTCSessionDescription(public_only, "answer"))
        received = tap_rtp(pc)
        assert await leg.connected(15), leg.state

        await tone_sender(protocol, leg.plain_address, 2.0, 0)
        await wait_until(lambda: len(received) >= 50, 10, "the relay's RTP at the browser")
        await wait_until(protocol.got.is_set, 10, "the browser's RTP at the relay")
        pcm = payload_pcm(protocol.packets[-50:], decode_ulaw)
        assert tone_purity(pcm, PEER_HZ) > 0.9
        assert tone_purity(payload_pcm(received[-50:], decode_ulaw), RELAY_HZ) > 0.9
        assert nat.inbound >= 100  # ICE checks, DTLS and the browser's RTP all came through it
    finally:
        await pc.close()
        await gateway.close()
        nat.close()
