"""The WebRTC gateway against a real WebRTC peer (aiortc's RTCPeerConnection), with audio
both ways between the peer and a plain UDP socket standing in for the relay."""

from __future__ import annotations

import asyncio
import fractions
import math
import socket
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from outbound_pro.media.g711 import decode_alaw, decode_ulaw
from outbound_pro.webrtc import OfferError, WebRtcGateway, is_webrtc_offer
from tests.media.tones import peak_hz
from tests.webrtc.helpers import RELAY_HZ, Relay, payload_pcm, tone_sender

PEER_HZ = 700.0


class ToneTrack(MediaStreamTrack):
    """A 48 kHz mono sine as 20 ms frames, paced like a microphone."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self.pts = 0
        self.start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.pts / 48000 - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(960) + self.pts) / 48000
        samples = (9000 * np.sin(2 * math.pi * self.freq * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, 48000)
        self.pts += 960
        return frame


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Relay, tuple[str, int]]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        Relay, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    yield protocol, transport.get_extra_info("sockname")[:2]
    transport.close()


async def call(codec: str, relay: Relay, relay_addr: tuple[str, int]) -> None:
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

    transceiver = pc.addTransceiver(ToneTrack(PEER_HZ), direction="sendrecv")
    codecs = [
        c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == f"audio/{codec}"
    ]
    transceiver.setCodecPreferences(codecs)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        assert is_webrtc_offer(offer)
        leg = await gateway.accept_offer(offer)
        assert "UDP/TLS/RTP/SAVPF" in leg.answer_sdp
        assert "a=setup:active" in leg.answer_sdp
        assert "a=rtcp-mux" in leg.answer_sdp
        assert leg.codec.transcoding is (codec == "opus")
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
        decode = decode_ulaw if leg.codec.plain_name == "PCMU" else decode_alaw
        pcm = payload_pcm(relay.packets[-50:], decode)
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


async def test_opus_only_peer_is_transcoded(relay: tuple[Relay, tuple[str, int]]) -> None:
    await call("opus", *relay)


async def test_offers_the_gateway_cannot_answer() -> None:
    gateway = WebRtcGateway()
    plain = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    assert not is_webrtc_offer(plain + "m=audio 4000 RTP/AVP 0\r\n")
    with pytest.raises(OfferError, match="no audio"):
        await gateway.accept_offer(plain)
    with pytest.raises(OfferError, match="fingerprint"):
        await gateway.accept_offer(plain + "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    assert gateway.legs == set()


async def test_call_to_a_browser_gateway_offers_and_peer_answers(
    relay: tuple[Relay, tuple[str, int]],
) -> None:
    """Inbound to a web phone: the gateway makes the WebRTC offer (G.711 only, actpass)."""
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
        await pc.setRemoteDescription(RTCSessionDescription(leg.offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await leg.accept_answer(pc.localDescription.sdp)
        assert leg.codec.plain_name == "PCMU"
        leg.set_plain_remote(relay_addr)
        assert await leg.connected(15)
        sender = asyncio.ensure_future(tone_sender(protocol, leg.plain_address, 3.0, 0))
        await asyncio.wait_for(protocol.got.wait(), 15)
        await sender
        await asyncio.wait_for(consumers[0], 10)
        pcm = payload_pcm(protocol.packets[-50:], decode_ulaw)
        assert abs(peak_hz(pcm[:4000]) - PEER_HZ) < 20
        samples = np.concatenate(heard[-50:])
        assert abs(peak_hz(samples[:4000]) - RELAY_HZ) < 20  # aiortc decodes PCMU at 8 kHz
    finally:
        await pc.close()
        await gateway.close()
