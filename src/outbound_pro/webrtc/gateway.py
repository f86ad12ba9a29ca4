"""WebRTC media legs bridged to plain RTP, so the B2BUA treats a browser like any SIP phone.

A browser's SDP offer asks for ICE, DTLS-SRTP and RTCP multiplexing on one UDP port
(``UDP/TLS/RTP/SAVPF``). The relay speaks plain RTP. `WebRtcGateway.accept_offer` answers the
browser and opens, per call, one plain UDP port on the relay's host: what the browser sends is
decrypted and sent there from that port; what arrives there is encrypted and sent to the
browser. To the relay, the gateway port *is* the phone.

Pieces, all from aiortc's stack rather than our own crypto:

* ICE: aiortc's ``RTCIceGatherer``/``RTCIceTransport`` (aioice), controlled role with host
  candidates; the browser, as offerer, is controlling and nominates. (A full agent rather than
  ICE-lite: aioice has no lite mode, and a full controlled agent interoperates with every
  browser; it costs a few STUN checks per call.) Behind a 1:1 NAT (a cloud VM's elastic IP)
  the gateway is given its public address and announces, next to each host candidate, a
  server-reflexive one at that address and the same port — what the NAT makes of the host
  socket — and puts it in ``c=`` (`_nat_candidates`). Nothing changes in aioice: a
  server-reflexive candidate is never paired locally (RFC 8445 §6.1.2.4, its base is), so
  it only needs to be in the SDP. The host candidates stay, for browsers on the server's own
  network, whose router may not hairpin to the public address.
* DTLS: aiortc's ``RTCDtlsTransport`` with one self-signed certificate per gateway (its
  fingerprint goes in every answer). Role per RFC 5763: we answer ``a=setup:active`` to an
  ``actpass`` offer.
* SRTP: the DTLS transport's pylibsrtp sessions (``AES_CM_128_HMAC_SHA1_80`` or AEAD-GCM, as
  negotiated in the handshake).
* RTCP is multiplexed on the same port (``a=rtcp-mux``); browser RTCP is consumed here, not
  forwarded (the relay keeps its own statistics from RTP).

Codecs: PCMU, then PCMA, when the browser offers them (Chrome and Firefox always do), so media
is only decrypted and re-encrypted and each packet costs two AES passes. Only a client that
offers Opus alone gets transcoding (`transcode.OpusG711`, PyAV), towards PCMU on the plain side.
``telephone-event`` is passed through when offered. The browser's codec is settled before the
far end (a carrier, through the B2BUA) has answered; when the far end then speaks the other
G.711 law, `WebRtcLeg.set_plain_codec` makes the leg translate A-law ↔ µ-law both ways: one
256-byte table per direction and ``bytes.translate``, so it costs about a copy of the payload.

Hot path: after ICE and DTLS are up, a packet from the relay is protected and written with
``transport.sendto`` on the nominated pair's socket, with no task or coroutine per packet;
a packet from the browser is unprotected by aiortc's receive loop and handed to
``_PlainBridge.forward`` which does one ``sendto``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from aioice.candidate import candidate_foundation, candidate_priority
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsParameters, RTCDtlsTransport
from aiortc.rtcicetransport import (
    RTCIceCandidate,
    RTCIceGatherer,
    RTCIceParameters,
    RTCIceTransport,
)
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import is_rtcp
from aiortc.sdp import GroupDescription, MediaDescription, SessionDescription

from outbound_pro.media.g711 import alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear
from outbound_pro.webrtc.transcode import OpusG711

log = logging.getLogger("outbound_pro.webrtc")

Address = tuple[str, int]
PASSTHROUGH = ("PCMU", "PCMA")  # the G.711 laws: relayed as they are, translated by table


class OfferError(ValueError):
    """An offer the gateway cannot answer (no audio, no DTLS fingerprint, no usable codec).

    The B2BUA answers it with 488 Not Acceptable Here; the message says what was missing.
    """


def is_webrtc_offer(sdp: str | bytes) -> bool:
    """True when an SDP asks for DTLS-SRTP (a browser), False for a plain RTP phone."""
    text = sdp.decode("utf-8", "replace") if isinstance(sdp, bytes) else sdp
    return "UDP/TLS/RTP/SAVP" in text or "a=fingerprint:" in text


@dataclass(frozen=True)
class Codec:
    """The codec of each side: *webrtc* toward the browser, *plain* toward the relay."""

    webrtc_pt: int
    webrtc_name: str
    plain_pt: int
    plain_name: str
    dtmf_pt: int | None

    @property
    def transcoding(self) -> bool:
        """Opus toward the browser: decoded and re-encoded (a G.711 law change is not this:
        it is a byte-for-byte table, see `WebRtcLeg.set_plain_codec`)."""
        return self.webrtc_name == "opus"


_STATIC_PT = {"PCMU": 0, "PCMA": 8}

# One code of one law to the other through the reference 16-bit value (g711.py): within one
# quantisation step of the target law, and silence stays silence.
_LAW_TABLE = {
    ("PCMU", "PCMA"): bytes(linear_to_alaw(ulaw_to_linear(code)) for code in range(256)),
    ("PCMA", "PCMU"): bytes(linear_to_ulaw(alaw_to_linear(code)) for code in range(256)),
}


def _payload_start(packet: bytes) -> int:
    """Where an RTP packet's payload starts: after the CSRCs and any header extension."""
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10 and len(packet) >= start + 4:
        start += 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    return start


def _translated(packet: bytes, pt: int, table: bytes) -> bytes:
    """*packet* as payload type *pt* with its payload mapped through *table*: G.711 is one
    byte per sample in either law, so the header (marker, CSRCs, extension) and any padding
    are kept as they are."""
    start = _payload_start(packet)
    end = max(start, len(packet) - packet[-1]) if packet[0] & 0x20 else len(packet)
    return b"".join(
        (
            bytes((packet[0], (packet[1] & 0x80) | pt)),
            packet[2:start],
            packet[start:end].translate(table),
            packet[end:],
        )
    )


def _public_ip(host: str) -> str | None:
    """*host* as the IP address for NAT candidates; None for none.

    Browsers take no host names in candidates, so a name is resolved once, here, at start-up.
    One that does not resolve leaves the gateway with host candidates only, as without the
    setting, and says so in the log: the same name may still serve SIP (Via, Contact).
    """
    if not host:
        return None
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    try:
        return str(socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0])
    except OSError as exc:
        log.warning(
            "webrtc public address does not resolve", extra={"host": host, "error": str(exc)}
        )
        return None


def _nat_candidates(
    candidates: list[RTCIceCandidate], public_ip: str | None
) -> list[RTCIceCandidate]:
    """What a 1:1 NAT makes of our host candidates: *public_ip*, same port, one per host
    candidate of its address family (we cannot tell which interface the NAT maps, and a
    candidate that maps nowhere only costs the browser a failed check)."""
    if public_ip is None:
        return []
    family = ipaddress.ip_address(public_ip).version
    hosts = [
        c for c in candidates if c.type == "host" and ipaddress.ip_address(c.ip).version == family
    ]
    return [
        RTCIceCandidate(
            component=c.component,
            foundation=candidate_foundation("srflx", c.protocol, c.ip),
            ip=public_ip,
            port=c.port,
            priority=candidate_priority(c.component, "srflx", 65535 - i),
            protocol=c.protocol,
            type="srflx",
            relatedAddress=c.ip,
            relatedPort=c.port,
        )
        for i, c in enumerate(hosts)
    ]


def choose_codec(media: MediaDescription) -> Codec:
    """PCMU, then PCMA, else Opus with transcoding to PCMU; dtmf if telephone-event/8000."""
    by_name: dict[str, RTCRtpCodecParameters] = {}
    dtmf: int | None = None
    for codec in media.rtp.codecs:
        name = codec.mimeType.split("/", 1)[1].upper()
        if name == "TELEPHONE-EVENT" and codec.clockRate == 8000 and dtmf is None:
            dtmf = codec.payloadType
        by_name.setdefault(name, codec)
    for name in PASSTHROUGH:
        if name in by_name:
            pt = by_name[name].payloadType
            assert pt is not None
            return Codec(pt, name, _STATIC_PT[name], name, dtmf)
    if "OPUS" in by_name:
        pt = by_name["OPUS"].payloadType
        assert pt is not None
        return Codec(pt, "opus", 0, "PCMU", None)
    raise OfferError("the offer has none of PCMU, PCMA or opus")


class _PlainSide(asyncio.DatagramProtocol):
    """The plain RTP socket the relay talks to (one per leg)."""

    def __init__(self, leg: WebRtcLeg) -> None:
        self.leg = leg
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.leg._from_plain(data, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP unreachable while the relay port is not open yet: RTP just goes on."""


class _BridgeDtlsTransport(RTCDtlsTransport):
    """aiortc's DTLS transport, with decrypted RTP handed to the leg instead of parsed."""

    leg: WebRtcLeg

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        self.leg._from_webrtc(data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        self.leg.rtcp_received += 1


class WebRtcLeg:
    """One browser's media: ICE + DTLS-SRTP on one side, plain RTP on the other.

    Made by `WebRtcGateway.accept_offer` (the browser offered: ``answer_sdp`` goes back to it)
    or `WebRtcGateway.create_offer` (a call to the browser: ``offer_sdp`` goes to it and its
    answer comes back through `accept_answer`). Either way ``plain_sdp()`` describes this leg to
    the relay as if it were a plain phone at ``plain_address``; ``set_plain_remote`` tells it
    the relay's port for this leg (without it, the leg latches onto the first packet it gets);
    ``set_plain_codec`` tells it the far end's G.711 law; ``close`` ends it.
    """

    def __init__(self, gateway: WebRtcGateway, codec: Codec) -> None:
        self.gateway = gateway
        self.local_sdp = ""
        self.remote: SessionDescription | None = None
        self.media: MediaDescription | None = None
        self.plain_address: Address = ("", 0)
        self.plain_remote: Address | None = None
        self.state: Literal["new", "connecting", "connected", "failed", "closed"] = "new"
        self.packets_to_plain = 0
        self.packets_to_webrtc = 0
        self.rtcp_received = 0
        self.dropped = 0
        self._plain: _PlainSide | None = None
        self._gatherer: RTCIceGatherer | None = None
        self._ice: RTCIceTransport | None = None
        self._dtls: _BridgeDtlsTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.get_running_loop().create_future()
        self._send: Callable[[bytes], None] | None = None
        self._plain_law: str | None = None  # set_plain_codec's, outliving a later answer
        self._set_codec(codec)
        self._seq = secrets.randbelow(0x10000)
        self._ts = secrets.randbelow(0x100000000)
        self._ssrc = secrets.randbelow(0x100000000)
        self._out_seq = secrets.randbelow(0x10000)
        self._out_ts = secrets.randbelow(0x100000000)

    @property
    def answer_sdp(self) -> str:
        """The SDP answer for the browser (legs made by ``accept_offer``)."""
        return self.local_sdp

    @property
    def offer_sdp(self) -> str:
        """The SDP offer for the browser (legs made by ``create_offer``)."""
        return self.local_sdp

    # -- set-up ------------------------------------------------------------------------------

    async def _prepare(self, *, controlling: bool) -> None:
        loop = asyncio.get_running_loop()
        _, self._plain = await loop.create_datagram_endpoint(
            lambda: _PlainSide(self), local_addr=(self.gateway.plain_host, 0)
        )
        assert self._plain.transport is not None
        self.plain_address = self._plain.transport.get_extra_info("sockname")[:2]
        self._gatherer = RTCIceGatherer(iceServers=[])
        await self._gatherer.gather()
        self._ice = RTCIceTransport(self._gatherer)
        # The offerer is the controlling ICE agent (RFC 8445 §6.1.1); aiortc does the same.
        self._ice._connection.ice_controlling = controlling
        self._dtls = _BridgeDtlsTransport(self._ice, [self.gateway.certificate])
        self._dtls.leg = self

    def _set_codec(self, codec: Codec) -> None:
        if self._plain_law is not None:
            codec = replace(codec, plain_pt=_STATIC_PT[self._plain_law], plain_name=self._plain_law)
        self.codec = codec
        self._transcoder: OpusG711 | None = (
            OpusG711(codec.plain_name) if codec.transcoding else None
        )
        self._to_plain = _LAW_TABLE.get((codec.webrtc_name, codec.plain_name))
        self._to_webrtc = _LAW_TABLE.get((codec.plain_name, codec.webrtc_name))

    def _local_media(
        self, setup: str, codecs: list[RTCRtpCodecParameters], mid: str | None
    ) -> MediaDescription:
        assert self._gatherer is not None
        candidates = self._gatherer.getLocalCandidates()
        public = _nat_candidates(candidates, self.gateway.public_ip)
        default = (
            public[0] if public else next((c for c in candidates if ":" not in c.ip), candidates[0])
        )
        candidates += public
        out = MediaDescription(
            kind="audio",
            port=default.port,
            profile="UDP/TLS/RTP/SAVPF",
            fmt=[c.payloadType for c in codecs],
        )
        out.host = default.ip
        out.direction = "sendrecv"
        out.rtp.muxId = mid or ""
        out.rtcp_host = default.ip
        out.rtcp_port = default.port
        out.rtcp_mux = True
        out.rtp.codecs = codecs
        out.ice = self._gatherer.getLocalParameters()
        out.ice_candidates = candidates
        out.ice_candidates_complete = True
        out.dtls = RTCDtlsParameters(
            fingerprints=self.gateway.certificate.getFingerprints(),
            role={"actpass": "auto", "active": "client", "passive": "server"}[setup],
        )
        return out

    def _session(self, host: str) -> SessionDescription:
        session = SessionDescription()
        session.origin = f"- {secrets.randbelow(2**62)} 1 IN IP4 {host}"
        return session

    def _answer(self, offer: SessionDescription, media: MediaDescription) -> str:
        """The answer to *offer*: our audio, every other m-line refused (RFC 3264 §6)."""
        assert self._dtls is not None
        codec = self.codec
        wanted = [codec.webrtc_pt] + ([codec.dtmf_pt] if codec.dtmf_pt is not None else [])
        codecs = [c for c in media.rtp.codecs if c.payloadType in wanted]
        for c in codecs:
            c.rtcpFeedback = []
        remote_role = media.dtls.role if media.dtls else None
        # RFC 5763 §5: the answerer to "actpass" picks "active"; to "active" it must be passive.
        role = "server" if remote_role == "client" else "client"
        self._dtls._set_role(role)
        out = self._local_media(
            "passive" if role == "server" else "active", codecs, media.rtp.muxId
        )
        out.direction = {"sendonly": "recvonly", "recvonly": "sendonly"}.get(
            media.direction or "sendrecv", media.direction or "sendrecv"
        )
        answer = self._session(out.host or "0.0.0.0")
        if media.rtp.muxId and any(g.semantic == "BUNDLE" for g in offer.group):
            answer.group = [GroupDescription(semantic="BUNDLE", items=[media.rtp.muxId])]
        for offered in offer.media:
            if offered is media:
                answer.media.append(out)
                continue
            refused = MediaDescription(offered.kind, 0, offered.profile, offered.fmt)
            refused.rtp.muxId = offered.rtp.muxId
            answer.media.append(refused)
        return str(answer)

    def _offer(self) -> str:
        """An audio offer a browser accepts: PCMU, PCMA and telephone-event, actpass."""
        codecs = [
            RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0),
            RTCRtpCodecParameters(mimeType="audio/PCMA", clockRate=8000, channels=1, payloadType=8),
            RTCRtpCodecParameters(
                mimeType="audio/telephone-event",
                clockRate=8000,
                channels=1,
                payloadType=101,
                parameters={"0-15": None},
            ),
        ]
        out = self._local_media("actpass", codecs, "0")
        offer = self._session(out.host or "0.0.0.0")
        offer.group = [GroupDescription(semantic="BUNDLE", items=["0"])]
        offer.msid_semantic = [GroupDescription(semantic="WMS", items=["*"])]
        offer.media = [out]
        return str(offer)

    async def accept_answer(self, answer_sdp: str | bytes) -> None:
        """The browser's answer to ``offer_sdp``: pick up its codec, ICE and DTLS, and connect."""
        self.answer_received(answer_sdp)

    def answer_received(self, answer_sdp: str | bytes) -> None:
        """`accept_answer` for synchronous callers (a SIP response handler): it never waits,
        ICE and DTLS run in the background as for `accept_answer`."""
        assert self._dtls is not None
        remote, media = _audio_of(answer_sdp)
        self._set_codec(choose_codec(media))
        if self.codec.transcoding:
            raise OfferError("the answer chose a codec that was not offered")
        # The answerer chose: "active" makes us the DTLS server, "passive" the client.
        self._dtls._set_role("client" if media.dtls and media.dtls.role == "server" else "server")
        self._start(remote, media)

    def _start(self, remote: SessionDescription, media: MediaDescription) -> None:
        self.remote = remote
        self.media = media
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        assert self._ice is not None and self._dtls is not None
        media = self.media
        self.state = "connecting"
        try:
            assert media is not None and media.ice is not None and media.dtls is not None
            for candidate in media.ice_candidates:
                candidate.sdpMid = media.rtp.muxId
                await self._ice.addRemoteCandidate(candidate)
            await self._ice.addRemoteCandidate(None)
            await self._ice.start(
                RTCIceParameters(
                    usernameFragment=media.ice.usernameFragment,
                    password=media.ice.password,
                    iceLite=media.ice.iceLite,
                )
            )
            if self._ice.state != "completed":
                raise ConnectionError("ICE failed")
            await self._dtls.start(RTCDtlsParameters(fingerprints=media.dtls.fingerprints))
            if self._dtls.state != "connected":
                raise ConnectionError("DTLS failed")
        except (ConnectionError, AssertionError) as exc:
            self.state = "failed"
            log.info("webrtc leg failed: %s", exc)
            if not self._connected.done():
                self._connected.set_result(False)
            return
        self._send = self._fast_sender()
        self.state = "connected"
        if not self._connected.done():
            self._connected.set_result(True)

    def _fast_sender(self) -> Callable[[bytes], None]:
        """A synchronous protect-and-send for the nominated ICE pair.

        aiortc's own send path is a coroutine per packet; this reaches the nominated pair's
        socket once, here, so each packet is one ``protect`` and one ``sendto``.
        """
        assert self._dtls is not None and self._ice is not None
        dtls = self._dtls
        tx = dtls._tx_srtp
        pair = self._ice._connection._nominated.get(1)
        transport = pair.protocol.transport if pair is not None else None
        if transport is None:
            return self._slow_send
        remote = pair.remote_addr

        def send(data: bytes) -> None:
            transport.sendto(tx.protect_rtcp(data) if is_rtcp(data) else tx.protect(data), remote)

        return send

    def _slow_send(self, data: bytes) -> None:
        if self._dtls is not None:
            task = asyncio.ensure_future(self._dtls._send_rtp(data))
            task.add_done_callback(_ignore_result)

    async def connected(self, timeout: float = 10.0) -> bool:
        """Wait until ICE and DTLS are up; False if they failed or *timeout* passed."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except TimeoutError:
            return False

    def session_sdp(self) -> str:
        """Our SDP for an answer to the browser's re-offer in the same session (hold, resume):
        the same ICE and DTLS, with the DTLS role already settled (never ``actpass``)."""
        role = self._dtls._role if self._dtls is not None else "auto"
        if role == "auto":
            return self.local_sdp
        setup = "a=setup:active" if role == "client" else "a=setup:passive"
        return self.local_sdp.replace("a=setup:actpass", setup)

    # -- media -------------------------------------------------------------------------------

    def set_plain_remote(self, address: Address) -> None:
        """Where decrypted RTP goes: the relay's port for this leg."""
        self.plain_remote = address

    def set_plain_codec(self, name: str) -> None:
        """The far end's G.711 law, "PCMU" or "PCMA", once the B2BUA knows it: from its answer,
        or from its offer for a call to a browser.

        The browser's law was settled with the browser, before the far end said anything. From
        now on the plain side uses *name*: packets of the browser's law are translated to it and
        back (payload type rewritten), while other payload types — telephone-event, comfort
        noise, the browser's own law should the far end send it too — pass untouched, and
        ``plain_sdp()`` names *name*. Called before the browser's answer (``create_offer``
        legs), it holds for whichever law the browser then picks. An Opus leg just encodes to
        and decodes from *name*.
        """
        law = name.upper()
        if law not in _STATIC_PT:
            raise ValueError(f"not a G.711 law: {name!r}")
        if law != self._plain_law:  # a repeat keeps the Opus codec state
            self._plain_law = law
            self._set_codec(self.codec)

    def plain_sdp(self, session_id: int | None = None, *, both_laws: bool = False) -> str:
        """This leg as a plain phone's SDP (RTP/AVP), for the relay/B2BUA's offer-answer.

        *both_laws*: list PCMU and PCMA (this leg's first) rather than this leg's law alone, for
        an offer to a far end whose answer then goes to ``set_plain_codec`` — the leg can take
        either. Without that call a far end answering the other law would not be understood,
        hence not the default; once the law is set, it alone is listed.
        """
        host, port = self.plain_address
        codec = self.codec
        sid = session_id if session_id is not None else secrets.randbelow(2**62)
        laws = [codec.plain_name]
        if both_laws and self._plain_law is None:
            laws += [law for law in _STATIC_PT if law != codec.plain_name]
        fmt = [_STATIC_PT[law] for law in laws]
        fmt += [codec.dtmf_pt] if codec.dtmf_pt is not None else []
        lines = [
            "v=0",
            f"o=- {sid} 1 IN IP4 {host}",
            "s=-",
            f"c=IN IP4 {host}",
            "t=0 0",
            f"m=audio {port} RTP/AVP {' '.join(map(str, fmt))}",
        ]
        lines += [f"a=rtpmap:{_STATIC_PT[law]} {law}/8000" for law in laws]
        if codec.dtmf_pt is not None:
            lines += [
                f"a=rtpmap:{codec.dtmf_pt} telephone-event/8000",
                f"a=fmtp:{codec.dtmf_pt} 0-15",
            ]
        lines += ["a=ptime:20", "a=sendrecv"]
        return "\r\n".join(lines) + "\r\n"

    def _from_webrtc(self, data: bytes) -> None:
        plain = self._plain
        remote = self.plain_remote
        if plain is None or plain.transport is None or remote is None:
            self.dropped += 1
            return
        table = self._to_plain
        if table is not None and (data[1] & 0x7F) == self.codec.webrtc_pt:
            data = _translated(data, self.codec.plain_pt, table)
        elif self._transcoder is not None and (data[1] & 0x7F) == self.codec.webrtc_pt:
            for payload in self._transcoder.opus_to_g711(data[_payload_start(data) :]):
                self._out_seq = (self._out_seq + 1) & 0xFFFF
                self._out_ts = (self._out_ts + 160) & 0xFFFFFFFF
                header = struct.pack(
                    "!BBHII", 0x80, self.codec.plain_pt, self._out_seq, self._out_ts, self._ssrc
                )
                plain.transport.sendto(header + payload, remote)
                self.packets_to_plain += 1
            return
        plain.transport.sendto(data, remote)
        self.packets_to_plain += 1

    def _from_plain(self, data: bytes, addr: Address) -> None:
        if self.plain_remote is None:
            self.plain_remote = addr  # symmetric RTP: latch onto the relay's port
        send = self._send
        if send is None or len(data) < 12:
            self.dropped += 1
            return
        table = self._to_webrtc
        if table is not None and (data[1] & 0x7F) == self.codec.plain_pt:
            data = _translated(data, self.codec.webrtc_pt, table)
        elif self._transcoder is not None and (data[1] & 0x7F) == self.codec.plain_pt:
            for opus in self._transcoder.g711_to_opus(data[_payload_start(data) :]):
                self._seq = (self._seq + 1) & 0xFFFF
                self._ts = (self._ts + 960) & 0xFFFFFFFF
                header = struct.pack(
                    "!BBHII", 0x80, self.codec.webrtc_pt, self._seq, self._ts, self._ssrc
                )
                send(header + opus)
                self.packets_to_webrtc += 1
            return
        send(data)
        self.packets_to_webrtc += 1

    async def close(self) -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        self._send = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._dtls is not None:
            with contextlib.suppress(Exception):
                await self._dtls.stop()
        if self._ice is not None:
            with contextlib.suppress(Exception):
                await self._ice.stop()
        if self._plain is not None and self._plain.transport is not None:
            self._plain.transport.close()
        self.gateway.legs.discard(self)
        if not self._connected.done():
            self._connected.set_result(False)


def _audio_of(sdp: str | bytes) -> tuple[SessionDescription, MediaDescription]:
    """The session and its first audio m-line, checked for what a WebRTC leg needs."""
    text = sdp.decode("utf-8") if isinstance(sdp, bytes) else sdp
    try:
        session = SessionDescription.parse(text)
    except (ValueError, IndexError, KeyError, StopIteration) as exc:
        raise OfferError(f"unparseable SDP: {exc}") from exc
    audio = [m for m in session.media if m.kind == "audio" and m.port != 0]
    if not audio:
        raise OfferError("the offer has no audio stream")
    media = audio[0]
    if media.dtls is None or not media.dtls.fingerprints:
        raise OfferError("the offer has no DTLS fingerprint")
    if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
        raise OfferError("the offer has no ICE credentials")
    return session, media


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class WebRtcGateway:
    """Answers browser offers; one per server. *plain_host* is where the relay can reach us (a
    local address: the relay is in this process). *public_address* is this server's address as
    browsers see it behind a 1:1 NAT (an IP address, or a name resolved once at start-up);
    empty for none, when the host addresses are reachable as they are.

    For the B2BUA (see docs/webphone.md): a browser's INVITE (`is_webrtc_offer`) →
    ``leg = await gateway.accept_offer(sdp)``, ``leg.answer_sdp`` back to the browser. A call
    to a browser booth (binding transport ws/wss) → ``leg = await gateway.create_offer()``,
    ``leg.offer_sdp`` in the INVITE, ``await leg.accept_answer(its_answer)``. Either way the
    relay gets ``leg.plain_sdp()`` as that leg's SDP (so it sends to ``leg.plain_address``),
    ``leg.set_plain_remote(relay_port_for_that_leg)``, and ``await leg.close()`` at the end.
    """

    def __init__(self, plain_host: str = "127.0.0.1", public_address: str = "") -> None:
        self.plain_host = plain_host
        self.public_ip = _public_ip(public_address)
        self.certificate = RTCCertificate.generateCertificate()
        self.legs: set[WebRtcLeg] = set()

    async def accept_offer(self, offer_sdp: str | bytes) -> WebRtcLeg:
        """Answer a browser's audio offer; ICE and DTLS then run in the background."""
        offer, media = _audio_of(offer_sdp)
        leg = WebRtcLeg(self, choose_codec(media))
        await leg._prepare(controlling=False)
        leg.local_sdp = leg._answer(offer, media)
        leg._start(offer, media)
        self.legs.add(leg)
        return leg

    async def create_offer(self) -> WebRtcLeg:
        """A leg for a call *to* a browser: send ``leg.offer_sdp``, then ``accept_answer``."""
        leg = WebRtcLeg(self, Codec(0, "PCMU", 0, "PCMU", 101))
        await leg._prepare(controlling=True)
        leg.local_sdp = leg._offer()
        self.legs.add(leg)
        return leg

    async def close(self) -> None:
        for leg in list(self.legs):
            await leg.close()
