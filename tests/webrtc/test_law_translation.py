"""A-law ↔ µ-law in the gateway: the browser settled on one G.711 law, the far end (through
the B2BUA) answers the other, and ``set_plain_codec`` makes the leg translate both ways."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from outbound_pro.media.g711 import decode_alaw, decode_ulaw
from outbound_pro.webrtc import WebRtcGateway
from tests.rtp.util import wait_until
from tests.webrtc.helpers import (
    PEER_HZ,
    RELAY_HZ,
    Relay,
    payload_pcm,
    peer_offer,
    tap_rtp,
    tone_purity,
    tone_sender,
)

PT = {"PCMU": 0, "PCMA": 8}
DECODE = {"PCMU": decode_ulaw, "PCMA": decode_alaw}
# After tone_sender's 150 packets (SSRC 0x1234): SRTP refuses to protect a sequence twice.
EVENT = struct.pack("!BBHII", 0x80, 101, 151, 24000, 0x1234) + bytes((5, 0x8A, 0x03, 0x20))


def odd_packet(law: str) -> bytes:
    """Marker, one CSRC, a header extension and 4 bytes of padding around 160 samples."""
    payload = bytes(range(0, 256, 2)) + bytes(range(1, 64, 2))
    header = struct.pack("!BBHIII", 0xB1, 0x80 | PT[law], 150, 24000, 0x1234, 0xCAFE)
    extension = struct.pack("!HHI", 0xBEDE, 1, 0x10AA0000)
    return header + extension + payload + bytes((0, 0, 0, 4))


@pytest.mark.parametrize(("browser", "far"), [("PCMU", "PCMA"), ("PCMA", "PCMU")])
async def test_the_far_ends_law_is_translated_both_ways(
    browser: str, far: str, relay: tuple[Relay, tuple[str, int]]
) -> None:
    protocol, relay_addr = relay
    gateway = WebRtcGateway("127.0.0.1")
    pc = RTCPeerConnection()
    try:
        leg = await gateway.accept_offer(await peer_offer(pc, browser))
        assert (leg.codec.webrtc_name, leg.codec.plain_name) == (browser, browser)
        offer_to_far_end = leg.plain_sdp(both_laws=True)
        assert f"RTP/AVP {PT[browser]} {PT[far]}\r\n" in offer_to_far_end
        assert f"a=rtpmap:{PT[far]} {far}/8000" in offer_to_far_end
        leg.set_plain_codec(far)  # the far end answered *far*
        assert (leg.codec.webrtc_name, leg.codec.plain_name) == (browser, far)
        assert f"RTP/AVP {PT[far]}\r\n" in leg.plain_sdp(both_laws=True)  # settled: *far* only
        leg.set_plain_remote(relay_addr)
        await pc.setRemoteDescription(RTCSessionDescription(leg.answer_sdp, "answer"))
        received = tap_rtp(pc)
        assert await leg.connected(15), leg.state

        await tone_sender(protocol, leg.plain_address, 3.0, PT[far])
        odd = odd_packet(far)
        for packet in (odd, EVENT):
            assert protocol.transport is not None
            protocol.transport.sendto(packet, leg.plain_address)
        await wait_until(lambda: EVENT in received, 10, "the telephone-event at the browser")
        await wait_until(protocol.got.is_set, 10, "the browser's RTP at the relay")

        # The far end hears the browser's tone, in its own law.
        assert {p[1] & 0x7F for p in protocol.packets} == {PT[far]}
        pcm = payload_pcm(protocol.packets[-50:], DECODE[far])
        assert tone_purity(pcm, PEER_HZ) > 0.9
        # The browser gets its own law only, and hears the far end's tone in it;
        # the telephone-event passed untouched.
        audio = [p for p in received if p[0] == 0x80 and p[1] & 0x7F != 101]  # the tone's
        assert len(audio) >= 100
        assert {p[1] & 0x7F for p in audio} == {PT[browser]}
        assert tone_purity(payload_pcm(audio[-50:], DECODE[browser]), RELAY_HZ) > 0.9
        # Header (marker, CSRC, extension) and padding kept; the payload means the same.
        [translated] = [p for p in received if p[8:12] == odd[8:12] and p[12:16] == odd[12:16]]
        assert translated[:1] + translated[2:24] == odd[:1] + odd[2:24]
        assert translated[1] == 0x80 | PT[browser] and translated[-4:] == odd[-4:]
        before = np.frombuffer(DECODE[far](odd[24:-4]), "<i2").astype(int)
        after = np.frombuffer(DECODE[browser](translated[24:-4]), "<i2").astype(int)
        assert np.all(np.abs(after - before) <= np.maximum(16, np.abs(before) // 16))
    finally:
        await pc.close()
        await gateway.close()


async def test_only_g711_laws_are_accepted() -> None:
    gateway = WebRtcGateway("127.0.0.1")
    try:
        leg = await gateway.create_offer()
        with pytest.raises(ValueError, match=r"G\.711"):
            leg.set_plain_codec("G722")
        assert leg.codec.plain_name == "PCMU"
    finally:
        await gateway.close()
