"""Calls from and to the web phone through the B2BUA, in Chromium, with a carrier in Python.

The carrier is a small SIP UA on the trunk's trusted address (127.0.0.2) with its own RTP
socket: it answers (or places) a call with plain PCMU SDP, sends a 1000 Hz tone and keeps what
it hears. The browser's fake microphone is a 700 Hz WAV. So the far end must hear 700 Hz, the
page must hear 1000 Hz (WebAudio, in the page), and the recording must have the booth's tone
on the left channel and the far end's on the right.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
import sqlite3
import time
import wave
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page, expect

from outbound_pro.media.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw
from outbound_pro.sip.message import Request, Response, make_request, make_response, parse_message
from tests.b2bua.conftest import BOOTHS, DOMAIN, provision, provision_text
from tests.b2bua.peers import TRUNK_IP
from tests.conftest import ServerProcess, free_port, start_server, stop_server
from tests.media.tones import band_ratio_db, rtp, tone_codes
from tests.web_ui.conftest import BROWSER_TONE_HZ

FAR_HZ = 1000.0
# The carrier's one G.711 law: payload type, encoder, decoder. A PCMA carrier meets a browser
# that settled PCMU with the gateway, so the gateway must translate (webrtc/gateway.py).
LAWS = {"PCMU": (0, encode_ulaw, decode_ulaw), "PCMA": (8, encode_alaw, decode_alaw)}
EVENT_PT = 101  # telephone-event in the carrier's offer; in its answer, the offer's number

# The dominant frequency of the web phone's remote stream over ~1.5 s (WebAudio analyser).
MEASURE_JS = """
async () => {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  ctx.createMediaStreamSource(window.webphone.remoteStream).connect(analyser);
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


class CallServer:
    def __init__(self, server: ServerProcess, trunk_port: int) -> None:
        self.server = server
        self.trunk_port = trunk_port

    def rows(self, sql: str) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.server.data_dir / "outbound-pro.sqlite3", timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql)]
        finally:
            conn.close()


@pytest.fixture(scope="module")
def call_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CallServer]:
    """The server with a trunk on 127.0.0.2 and the B2BUA test contract (booth01..03)."""
    trunk_port = free_port()
    rtp_min = 30000 + (free_port() % 10000) // 2 * 2
    toml = (
        f'[rtp]\nhost = "127.0.0.1"\nport_min = {rtp_min}\nport_max = {rtp_min + 400}\n'
        "[b2bua]\nring_timeout = 30.0\nkeepalive_interval = 0\n"
    )
    srv = start_server(tmp_path_factory.mktemp("web-calls"), toml)
    try:
        provision(srv, provision_text(trunk_port))
        yield CallServer(srv, trunk_port)
    finally:
        stop_server(srv)


async def until(predicate: Callable[[], object], timeout: float, what: str) -> Any:
    """Poll *predicate* on the loop (the carrier keeps running meanwhile) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def direction(sdp: bytes) -> str:
    found = re.search(r"a=(sendrecv|sendonly|recvonly|inactive)", sdp.decode())
    return found.group(1) if found else "sendrecv"


def _media_address(sdp: bytes) -> tuple[str, int]:
    text = sdp.decode()
    host = re.search(r"c=IN IP4 (\S+)", text)
    port = re.search(r"m=audio (\d+)", text)
    assert host and port, text
    return host.group(1), int(port.group(1))


class Rtp(asyncio.DatagramProtocol):
    """The carrier's media: a paced 1000 Hz stream out in its *law*, the payloads heard in."""

    def __init__(self, law: str = "PCMU") -> None:
        self.law = law
        self.pt, encode, self.decode = LAWS[law]
        self.transport: asyncio.DatagramTransport | None = None
        self.heard = bytearray()
        self.event_pt = EVENT_PT
        self.events: list[int] = []  # RFC 4733 event codes heard, one per event (end packets)
        self._event_ts = b""
        self.codes = tone_codes(FAR_HZ, 10.0, encode)
        self.ssrc = secrets.randbelow(2**32)
        self._sender: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) <= 12:
            return
        payload = data[12 + 4 * (data[0] & 0x0F) :]
        if data[1] & 0x7F == self.pt:
            self.heard += payload
        elif data[1] & 0x7F == self.event_pt and len(payload) >= 4 and payload[1] & 0x80:
            if self._event_ts != data[4:8]:  # the first end packet of an event (sent 3 times)
                self.events.append(payload[0])
            self._event_ts = data[4:8]

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def start(self, remote: tuple[str, int]) -> None:
        self._sender = asyncio.get_running_loop().create_task(self._send(remote))

    async def _send(self, remote: tuple[str, int]) -> None:
        assert self.transport is not None
        start = time.monotonic()
        seq = 0
        while True:
            k = seq % 500
            payload = self.codes[160 * k : 160 * (k + 1)]
            self.transport.sendto(rtp(seq, 160 * seq, self.ssrc, self.pt, payload), remote)
            seq += 1
            await asyncio.sleep(max(0.0, start + seq * 0.02 - time.monotonic()))

    def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self.transport is not None:
            self.transport.close()


class Carrier(asyncio.DatagramProtocol):
    """The carrier's SIP side on the trunk's address: answers INVITEs, places one, answers BYE."""

    def __init__(self, media: Rtp) -> None:
        self.media = media
        self.transport: asyncio.DatagramTransport | None = None
        self.invites: asyncio.Queue[tuple[Request, tuple[str, int]]] = asyncio.Queue()
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.bye = asyncio.Event()
        self.tag = secrets.token_hex(4)
        self.reinvites: list[Request] = []  # in-dialog offers: the B2BUA relaying a hold

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def sdp(self, direction: str = "sendrecv") -> bytes:
        return (
            f"v=0\r\no=- 1 1 IN IP4 {TRUNK_IP}\r\ns=-\r\nc=IN IP4 {TRUNK_IP}\r\nt=0 0\r\n"
            f"m=audio {self.media.port} RTP/AVP {self.media.pt} {self.media.event_pt}\r\n"
            f"a=rtpmap:{self.media.pt} {self.media.law}/8000\r\n"
            f"a=rtpmap:{self.media.event_pt} telephone-event/8000\r\n"
            f"a=fmtp:{self.media.event_pt} 0-15\r\na={direction}\r\n"
        ).encode()

    def send(self, message: Request | Response, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(message.to_bytes(), addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Response):
            self.responses.put_nowait(message)
            return
        if message.method == "INVITE" and message.to_tag:
            self.reinvites.append(message)
            answer = {"sendonly": "recvonly", "inactive": "inactive"}.get(direction(message.body))
            headers = [
                ("Contact", f"<sip:carrier@{TRUNK_IP}>"),
                ("Content-Type", "application/sdp"),
            ]
            body = self.sdp(answer or "sendrecv")
            self.send(make_response(message, 200, headers=headers, body=body), addr)
        elif message.method == "INVITE":
            self.invites.put_nowait((message, addr))
        elif message.method == "BYE":
            self.send(make_response(message, 200), addr)
            self.bye.set()
        elif message.method != "ACK":
            self.send(make_response(message, 200), addr)

    def answer(self, invite: Request, addr: tuple[str, int]) -> None:
        """180, then 200 with our SDP; media starts towards the relay port the offer names."""
        offered = re.search(r"a=rtpmap:(\d+) telephone-event/8000", invite.body.decode())
        if offered:
            self.media.event_pt = int(offered.group(1))
        host, port = self.address
        contact = [("Contact", f"<sip:carrier@{host}:{port}>")]
        self.send(make_response(invite, 180, to_tag=self.tag, headers=contact), addr)
        headers = [*contact, ("Content-Type", "application/sdp")]
        ok = make_response(invite, 200, to_tag=self.tag, headers=headers, body=self.sdp())
        self.send(ok, addr)
        self.media.start(_media_address(invite.body))

    async def call(self, number: str, server: tuple[str, int]) -> tuple[Request, Response]:
        """INVITE *number* at the server; ACK its 200 and return the INVITE and the 200."""
        host, port = self.address
        invite = make_request(
            "INVITE",
            f"sip:{number}@{server[0]}:{server[1]}",
            from_=f"<sip:0355550000@{host}>;tag={self.tag}",
            to=f"<sip:{number}@{server[0]}>",
            call_id=f"{secrets.token_hex(8)}@{host}",
            cseq=1,
            via=f"SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            contact=f"<sip:carrier@{host}:{port}>",
            body=self.sdp(),
            content_type="application/sdp",
        )
        self.send(invite, server)
        while True:
            response = await asyncio.wait_for(self.responses.get(), 30)
            assert response.status < 300, response.to_bytes().decode()
            if response.status == 200 and response.cseq[1] == "INVITE":
                break
        self.send(self._in_dialog("ACK", invite, response, 1), server)
        self.media.start(_media_address(response.body))
        return invite, response

    def _in_dialog(self, method: str, invite: Request, ok: Response, cseq: int) -> Request:
        host, port = self.address
        return make_request(
            method,
            ok.contacts[0].uri,
            from_=invite.get("from") or "",
            to=ok.get("to") or "",
            call_id=invite.call_id,
            cseq=cseq,
            via=f"SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
        )

    async def hang_up(self, invite: Request, ok: Response, server: tuple[str, int]) -> None:
        self.send(self._in_dialog("BYE", invite, ok, 2), server)
        while True:
            response = await asyncio.wait_for(self.responses.get(), 10)
            if response.cseq[1] == "BYE":
                assert response.status == 200
                return


async def open_carrier(port: int, law: str = "PCMU") -> tuple[Carrier, Rtp]:
    loop = asyncio.get_running_loop()
    _, media = await loop.create_datagram_endpoint(
        lambda: Rtp(law), local_addr=(TRUNK_IP, 0), family=socket.AF_INET
    )
    _, carrier = await loop.create_datagram_endpoint(
        lambda: Carrier(media), local_addr=(TRUNK_IP, port), family=socket.AF_INET
    )
    return carrier, media


async def agent_page(browser: Browser, srv: CallServer) -> Page:
    context = await browser.new_context(locale="ja-JP")
    page = await context.new_page()
    await page.goto(f"http://127.0.0.1:{srv.server.http_port}/agent")
    await page.fill("#login-id", f"booth01@{DOMAIN}")
    await page.fill("#login-password", BOOTHS["booth01"][0])
    await page.press("#login-password", "Enter")
    await expect(page.locator("#reg-state")).to_have_attribute(
        "data-key", "reg_registered", timeout=15000
    )
    return page


def pcm(media: Rtp) -> np.ndarray:
    return np.frombuffer(media.decode(bytes(media.heard)), dtype="<i2").astype(np.float64)


async def check_media(page: Page, media: Rtp) -> None:
    """The far end hears the browser's tone; the page hears the far end's."""
    await until(lambda: len(media.heard) > 16000, 15, "two seconds of the browser's audio")
    heard = pcm(media)
    assert band_ratio_db(heard[-8000:], BROWSER_TONE_HZ, FAR_HZ) > 20
    in_page = await page.evaluate(MEASURE_JS)
    assert abs(in_page["hz"] - FAR_HZ) < 15, in_page
    assert in_page["db"] > -60, in_page


def check_recording(srv: CallServer, call_ref: str) -> None:
    """The call's stereo WAV: the booth (browser, 700 Hz) left, the far end (1000 Hz) right."""
    row = srv.rows(f"SELECT * FROM recordings WHERE call_ref = '{call_ref}'")[0]
    with wave.open(str(row["path"])) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    loud = np.nonzero((np.abs(stereo[:, 0]) > 1000) & (np.abs(stereo[:, 1]) > 1000))[0]
    assert len(loud) > 8000, "no second with audio on both channels"
    block = stereo[loud[-1] - 8000 : loud[-1]].astype(np.float64)
    assert band_ratio_db(block[:, 0], BROWSER_TONE_HZ, FAR_HZ) > 20
    assert band_ratio_db(block[:, 1], FAR_HZ, BROWSER_TONE_HZ) > 20


def finished_call(srv: CallServer, direction: str) -> dict[str, Any] | None:
    """The last CDR of *direction* once its recording is complete."""
    cdrs = srv.rows(
        f"SELECT c.*, r.state AS rec_state FROM call_records c JOIN recordings r "
        f"ON r.call_ref = c.call_ref WHERE c.direction = '{direction}' ORDER BY c.id"
    )
    if cdrs and cdrs[-1]["rec_state"] == "complete" and cdrs[-1]["end_at"] is not None:
        return cdrs[-1]
    return None


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
async def test_agent_calls_the_trunk_and_both_sides_hear_each_other(
    browser: Browser, call_server: CallServer, law: str
) -> None:
    carrier, media = await open_carrier(call_server.trunk_port, law)
    page = await agent_page(browser, call_server)
    try:
        await page.fill("#number", "03-6666-7777")
        await page.click("#call")
        invite, addr = await asyncio.wait_for(carrier.invites.get(), 30)
        assert invite.uri_text.startswith("sip:0366667777@")
        assert "RTP/AVP" in invite.body.decode() and "fingerprint" not in invite.body.decode()
        carrier.answer(invite, addr)
        await expect(page.locator("#call-state")).to_have_attribute(
            "data-status", "in_call", timeout=15000
        )
        await check_media(page, media)
        # hold and resume: the B2BUA answers the browser and tells the carrier the direction
        await page.click("#hold")
        await expect(page.locator("#call-state")).to_have_attribute("data-status", "on_hold")
        await until(lambda: carrier.reinvites, 10, "the hold relayed to the carrier")
        assert direction(carrier.reinvites[-1].body) in ("sendonly", "inactive")
        await page.click("#hold")
        await expect(page.locator("#call-state")).to_have_attribute("data-status", "in_call")
        await until(lambda: len(carrier.reinvites) == 2, 10, "the resume relayed to the carrier")
        assert direction(carrier.reinvites[-1].body) == "sendrecv"
        media.heard.clear()
        await check_media(page, media)
        # the dial pad during a call sends RFC 4733 events, which reach the carrier in the media
        for key in ("5", "#"):
            await page.click(f"#dialpad [data-key='{key}']")
        await until(lambda: len(media.events) >= 2, 10, "two DTMF events at the carrier")
        assert media.events[:2] == [5, 11]
        await page.click("#hangup")
        await asyncio.wait_for(carrier.bye.wait(), 10)
        await expect(page.locator("#call-state")).to_have_attribute("data-status", "ended")
        cdr = await until(lambda: finished_call(call_server, "outbound"), 15, "the CDR")
        assert (cdr["booth"], cdr["callee"], cdr["status"]) == ("booth01", "+81366667777", 200)
        assert cdr["hangup_by"] == "caller"
        check_recording(call_server, cdr["call_ref"])
    finally:
        await page.context.close()
        media.stop()
        assert carrier.transport is not None
        carrier.transport.close()


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
async def test_carrier_call_rings_the_web_phone_and_is_answered_in_the_page(
    browser: Browser, call_server: CallServer, law: str
) -> None:
    carrier, media = await open_carrier(call_server.trunk_port, law)
    page = await agent_page(browser, call_server)
    server = ("127.0.0.1", call_server.server.sip_port)
    try:
        calling = asyncio.ensure_future(carrier.call(BOOTHS["booth01"][1].replace("-", ""), server))
        await expect(page.locator("#incoming")).to_be_visible(timeout=15000)
        await expect(page.locator("#incoming-from")).to_contain_text("+81355550000")
        await page.click("#answer")
        invite, ok = await asyncio.wait_for(calling, 30)
        await expect(page.locator("#call-state")).to_have_attribute(
            "data-status", "in_call", timeout=15000
        )
        await check_media(page, media)
        await carrier.hang_up(invite, ok, server)
        await expect(page.locator("#call-state")).to_have_attribute("data-status", "ended")
        cdr = await until(lambda: finished_call(call_server, "inbound"), 15, "the CDR")
        assert (cdr["booth"], cdr["caller"], cdr["status"]) == ("booth01", "+81355550000", 200)
        assert cdr["hangup_by"] == "caller"
        check_recording(call_server, cdr["call_ref"])
    finally:
        await page.context.close()
        media.stop()
        assert carrier.transport is not None
        carrier.transport.close()


async def test_refused_microphone_explains_itself_and_places_no_call(
    browser_without_microphone: Browser, call_server: CallServer
) -> None:
    """A blocked microphone: the agent is told how to allow it, and no INVITE leaves."""
    carrier, media = await open_carrier(call_server.trunk_port)
    page = await agent_page(browser_without_microphone, call_server)
    try:
        await page.fill("#number", "03-6666-7777")
        await page.click("#call")
        notice = page.locator("#banner [data-key]")
        await expect(notice).to_have_attribute("data-key", "mic_denied", timeout=15000)
        await expect(notice).to_have_attribute("role", "alert")
        await expect(notice).to_contain_text("マイク")
        assert await page.locator("#call-state").get_attribute("data-status") != "calling"
        assert carrier.invites.empty()
    finally:
        await page.context.close()
        media.stop()
        assert carrier.transport is not None
        carrier.transport.close()
