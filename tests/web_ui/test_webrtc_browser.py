"""Chromium's own WebRTC stack against the gateway: ICE, DTLS-SRTP and G.711 both ways.

The page makes a plain RTCPeerConnection offer with its fake microphone (a 700 Hz WAV); the
gateway answers and bridges to a UDP socket standing in for the relay, which sends 1100 Hz.
The relay must hear 700 Hz, and the page must hear 1100 Hz, measured in the page with WebAudio.
"""

from __future__ import annotations

import asyncio
import socket

from playwright.async_api import Browser

from outbound_pro.media.g711 import decode_alaw, decode_ulaw
from outbound_pro.webrtc import WebRtcGateway
from tests.conftest import ServerProcess
from tests.media.tones import peak_hz
from tests.web_ui.conftest import BROWSER_TONE_HZ
from tests.webrtc.helpers import RELAY_HZ, Relay, payload_pcm, tone_sender

OFFER_JS = """
async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = new RTCPeerConnection({ iceServers: [] });
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.ontrack = (event) => {
    window.__remote = event.streams[0] || new MediaStream([event.track]);
    const audio = new Audio();
    audio.muted = true;  // Chrome feeds WebAudio from a remote stream only once it is played
    audio.srcObject = window.__remote;
    audio.play();
  };
  window.__pc = pc;
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  return pc.localDescription.sdp;
}
"""

# The dominant frequency of the remote stream over ~1.5 s, by WebAudio's analyser.
MEASURE_JS = """
async () => {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  ctx.createMediaStreamSource(window.__remote).connect(analyser);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 0;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  const result = { hz: (best * ctx.sampleRate) / analyser.fftSize, db: bins[best] };
  await ctx.close();
  return result;
}
"""


async def test_chromium_talks_to_the_gateway(browser: Browser, web_server: ServerProcess) -> None:
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(
        Relay, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    gateway = WebRtcGateway("127.0.0.1")
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{web_server.http_port}/")
        offer = await page.evaluate(OFFER_JS)
        leg = await gateway.accept_offer(offer)
        assert leg.codec.plain_name in ("PCMU", "PCMA")  # Chrome offers G.711: no transcoding
        leg.set_plain_remote(transport.get_extra_info("sockname")[:2])
        await page.evaluate(
            "async (sdp) => window.__pc.setRemoteDescription({ type: 'answer', sdp })",
            leg.answer_sdp,
        )
        assert await leg.connected(15), leg.state
        sender = asyncio.ensure_future(
            tone_sender(relay, leg.plain_address, 6.0, leg.codec.plain_pt)
        )
        await asyncio.wait_for(relay.got.wait(), 15)
        heard = await page.evaluate(MEASURE_JS)
        assert abs(heard["hz"] - RELAY_HZ) < 15, heard
        assert heard["db"] > -60, heard
        sender.cancel()
        decode = decode_ulaw if leg.codec.plain_name == "PCMU" else decode_alaw
        pcm = payload_pcm(relay.packets[-50:], decode)
        assert abs(peak_hz(pcm[:4000]) - BROWSER_TONE_HZ) < 20
        state = await page.evaluate("() => window.__pc.connectionState")
        assert state == "connected"
    finally:
        await context.close()
        await gateway.close()
        transport.close()
