"""The WebRTC gateway against a real WebRTC peer (aiortc's RTCPeerConnection), with audio
both ways between the peer and a plain UDP socket standing in for the relay."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from outbound_pro.media.g711 import decode_alaw, decode_ulaw
from outbound_pro.webrtc import OfferError, WebRtcGateway, is_webrtc_offer
from tests.media.tones import peak_hz
from tests.webrtc.helpers import (
    PEER_HZ,
    RELAY_HZ,
    Relay,
    ToneTrack,
    payload_pcm,
    peer_offer,
    tone_sender,
)

DECODE = {"PCMU": decode_ulaw, "PCMA": decode_alaw}


async def call(
    codec: str, relay: Relay, relay_addr: tuple[str, int], far: str | None = None
) -> None:
    """A call from the peer offering *codec* alone; *far*: the far end's law, if it is told."""
    gateway = WebRtcGateway("127.0.0.1")
    pc = RTCPeerConnection()
    heard: list[np.ndarray] = []  # first channel of each decoded frame
    rates: set[int] = set()
    done = asyncio.Event()
    consumers: list[asyncio.Future[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def consume() -> None:
            while not done.is_set():
                try:
                    frame = await track.recv()
                except Exception:
                    return
                channels = len(frame.layout.channels)
                heard.append(frame.to_ndarray().reshape(-1)[::channels])  # packed s16
                rates.add(frame.sample_rate)

        consumers.append(asyncio.ensure_future(consume()))

    try:
        offer = await peer_offer(pc, codec)
        assert is_webrtc_offer(offer)
        leg = await gateway.accept_offer(offer)
        assert "UDP/TLS/RTP/SAVPF" in leg.answer_sdp
        assert "a=setup:active" in leg.answer_sdp
        assert "a=rtcp-mux" in leg.answer_sdp
        assert leg.codec.transcoding is (codec == "opus")
        if far is not None:
            leg.set_plain_codec(far)
            assert leg.codec.plain_name == far
        plain = leg.plain_sdp()
        assert f"m=audio {leg.plain_address[1]} RTP/AVP {leg.codec.plain_pt}" in plain
        leg.set_plain_remote(relay_addr)
        await pc.setRemoteDescription(RTCSessionDescription(leg.answer_sdp, "answer"))
        assert await leg.connected(15)

        sender = asyncio.ensure_future(
            tone_sender(relay, leg.plain_address, 3.0, leg.codec.plain_pt)
        )
        await asyncio.wait_for(relay.got.wait(), 15)
        await sender
        done.set()

        # The relay heard the peer's tone, in the plain codec.
        pts = {p[1] & 0x7F for p in relay.packets}
        assert pts == {leg.codec.plain_pt}
        pcm = payload_pcm(relay.packets[-50:], DECODE[leg.codec.plain_name])
        assert abs(peak_hz(pcm[:4000]) - PEER_HZ) < 20
        # The peer heard the relay's tone (decoded by aiortc at 48 kHz).
        assert leg.packets_to_webrtc >= 100
        assert len(heard) >= 50
        samples = np.concatenate(heard[-50:]).astype(np.float64)
        assert len(rates) == 1
        rate = rates.pop()
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        peak = float(np.argmax(spectrum)) * rate / len(samples)
        assert abs(peak - RELAY_HZ) < 25
    finally:
        await pc.close()
        await gateway.close()
    assert leg.state == "closed"


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_g711_is_only_decrypted_and_reencrypted(
    codec: str, relay: tuple[Relay, tuple[str, int]]
) -> None:
    await call(codec, *relay)


@pytest.mark.parametrize("far", [None, "PCMA"])
async def test_opus_only_peer_is_transcoded(
    far: str | None, relay: tuple[Relay, tuple[str, int]]
) -> None:
    """To PCMU by default, to PCMA once the far end's answer says so."""
    await call("opus", *relay, far=far)


async def test_offers_the_gateway_cannot_answer() -> None:
    gateway = WebRtcGateway()
    plain = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    assert not is_webrtc_offer(plain + "m=audio 4000 RTP/AVP 0\r\n")
    with pytest.raises(OfferError, match="no audio"):
        await gateway.accept_offer(plain)
    with pytest.raises(OfferError, match="fingerprint"):
        await gateway.accept_offer(plain + "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    assert gateway.legs == set()


@pytest.mark.parametrize("far", [None, "PCMA"])
async def test_call_to_a_browser_gateway_offers_and_peer_answers(
    far: str | None, relay: tuple[Relay, tuple[str, int]]
) -> None:
    """Inbound to a web phone: the gateway makes the WebRTC offer (G.711 only, actpass). With
    *far*, the caller's offer named that law and the B2BUA said so before the browser answered
    (the peer answers PCMU first): the leg then translates."""
    protocol, relay_addr = relay
    gateway = WebRtcGateway("127.0.0.1")
    pc = RTCPeerConnection()
    heard: list[np.ndarray] = []
    consumers: list[asyncio.Future[None]] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        pc.addTrack(ToneTrack(PEER_HZ))

        async def consume() -> None:
            while len(heard) < 100:
                frame = await track.recv()
                heard.append(frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)])

        consumers.append(asyncio.ensure_future(consume()))

    try:
        leg = await gateway.create_offer()
        assert "a=setup:actpass" in leg.offer_sdp
        assert "m=audio" in leg.offer_sdp and "RTP/SAVPF 0 8 101" in leg.offer_sdp
        if far is not None:
            leg.set_plain_codec(far)
        await pc.setRemoteDescription(RTCSessionDescription(leg.offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await leg.accept_answer(pc.localDescription.sdp)
        law = far or "PCMU"
        assert (leg.codec.webrtc_name, leg.codec.plain_name) == ("PCMU", law)
        assert f"RTP/AVP {leg.codec.plain_pt}\r\n" in leg.plain_sdp()  # this peer: no DTMF
        leg.set_plain_remote(relay_addr)
        assert await leg.connected(15)
        sender = asyncio.ensure_future(
            tone_sender(protocol, leg.plain_address, 3.0, leg.codec.plain_pt)
        )
        await asyncio.wait_for(protocol.got.wait(), 15)
        await sender
        await asyncio.wait_for(consumers[0], 10)
        assert {p[1] & 0x7F for p in protocol.packets} == {leg.codec.plain_pt}
        pcm = payload_pcm(protocol.packets[-50:], DECODE[law])
        assert abs(peak_hz(pcm[:4000]) - PEER_HZ) < 20
        samples = np.concatenate(heard[-50:])
        assert abs(peak_hz(samples[:4000]) - RELAY_HZ) < 20  # aiortc decodes PCMU at 8 kHz
    finally:
        await pc.close()
        await gateway.close()
