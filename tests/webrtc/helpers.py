"""A plain-RTP stand-in for the relay, an aiortc peer, a user-space 1:1 NAT and tone helpers,
for the WebRTC gateway tests."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import socket
import struct
from collections.abc import Awaitable, Callable

import av
import ifaddr
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription

from outbound_pro.media.g711 import encode_alaw, encode_ulaw

RELAY_HZ = 1100.0
PEER_HZ = 700.0
Address = tuple[str, int]


class Relay(asyncio.DatagramProtocol):
    """A plain RTP endpoint: collects what it gets, sends a PCMU tone when asked."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.got = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append(data)
        if len(self.packets) >= 100:
            self.got.set()


async def tone_sender(relay: Relay, to: tuple[str, int], seconds: float, pt: int) -> None:
    """20 ms G.711 packets (PCMU for pt 0, else PCMA) of RELAY_HZ at real-time pace."""
    n = int(seconds * 50)
    t = np.arange(n * 160) / 8000
    pcm = (9000 * np.sin(2 * math.pi * RELAY_HZ * t)).astype("<i2").tobytes()
    codes = encode_ulaw(pcm) if pt == 0 else encode_alaw(pcm)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for k in range(n):
        header = struct.pack("!BBHII", 0x80, pt, k, 160 * k, 0x1234)
        assert relay.transport is not None
        relay.transport.sendto(header + codes[160 * k : 160 * (k + 1)], to)
        delay = start + (k + 1) * 0.02 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)


def payload_pcm(packets: list[bytes], decode: object) -> np.ndarray:
    body = b"".join(p[12:] for p in packets)
    return np.frombuffer(decode(body), dtype="<i2")  # type: ignore[operator]


def tone_purity(pcm: np.ndarray, hz: float, rate: int = 8000) -> float:
    """Share of the energy within 20 Hz of *hz*: near 1 for a clean tone, and about 0.5 for
    a G.711 tone decoded with the wrong law (its peak bin can still be right)."""
    x = np.asarray(pcm, dtype=np.float64)
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    bins = np.fft.rfftfreq(len(x), 1 / rate)
    return float(power[np.abs(bins - hz) < 20].sum() / power.sum())


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


async def peer_offer(pc: RTCPeerConnection, codec: str) -> str:
    """*pc* sends PEER_HZ and offers *codec* alone (like a browser, all candidates inline)."""
    transceiver = pc.addTransceiver(ToneTrack(PEER_HZ), direction="sendrecv")
    capabilities = RTCRtpSender.getCapabilities("audio").codecs
    transceiver.setCodecPreferences([c for c in capabilities if c.mimeType == f"audio/{codec}"])
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


def tap_rtp(pc: RTCPeerConnection) -> list[bytes]:
    """Every RTP packet *pc* decrypts, as it arrived: what the browser was sent, before aiortc
    drops payload types it did not negotiate. Call after the remote description is set."""
    dtls = pc.getTransceivers()[0].receiver.transport
    packets: list[bytes] = []
    handle: Callable[[bytes, int], Awaitable[None]] = dtls._handle_rtp_data

    async def tapped(data: bytes, arrival_time_ms: int) -> None:
        packets.append(data)
        await handle(data, arrival_time_ms)

    dtls._handle_rtp_data = tapped  # type: ignore[method-assign]
    return packets


class OneToOneNat:
    """A 1:1 NAT in user space: a datagram to (*public_ip*, P) goes to the private address
    exposed on port P, from one inner socket per outside client, and the replies to that
    socket go back to the client from (*public_ip*, P). Like a NAT, and unlike a loopback
    alias, it gets a datagram for an address the private socket is not bound to through to
    it (a socket on 127.0.0.1 never sees what is sent to 127.0.0.2)."""

    def __init__(self, public_ip: str) -> None:
        self.public_ip = public_ip
        self.inbound = 0  # datagrams from outside clients delivered to a private address
        self._sockets: list[socket.socket] = []

    def _socket(self, address: Address) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(address)
        self._sockets.append(sock)
        return sock

    def expose(self, private: Address) -> None:
        """Forward (public_ip, private port) to *private*."""
        loop = asyncio.get_running_loop()
        outer = self._socket((self.public_ip, private[1]))
        inner: dict[Address, socket.socket] = {}

        def reply(sock: socket.socket, client: Address) -> None:
            with contextlib.suppress(OSError):  # a spurious wake-up or an ICMP error: no datagram
                outer.sendto(sock.recv(4096), client)

        def inbound() -> None:
            try:
                data, client = outer.recvfrom(4096)
            except OSError:
                return
            sock = inner.get(client)
            if sock is None:
                sock = inner[client] = self._socket(("0.0.0.0", 0))
                loop.add_reader(sock.fileno(), reply, sock, client)
            sock.sendto(data, private)
            self.inbound += 1

        loop.add_reader(outer.fileno(), inbound)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
            sock.close()


ELASTIC_IP = "192.0.2.10"  # TEST-NET-1: a public address on no interface, as on a cloud VM


def is_local(ip: str) -> bool:
    """Whether *ip* is on one of this host's interfaces (the tests' premise for ELASTIC_IP)."""
    return any(ip == a.ip for adapter in ifaddr.get_adapters() for a in adapter.ips)


def candidates_of(sdp: str) -> list[RTCIceCandidate]:
    return SessionDescription.parse(sdp).media[0].ice_candidates


def check_public(sdp: str, public: str) -> None:
    """One server-reflexive candidate at *public* per IPv4 host candidate, same port, in c=."""
    found = candidates_of(sdp)
    hosts = [c for c in found if c.type == "host"]
    assert hosts and all(c.ip != public for c in hosts)
    mapped = [(c.ip, c.port, c.relatedAddress, c.relatedPort) for c in found if c.type == "srflx"]
    assert mapped == [(public, c.port, c.ip, c.port) for c in hosts if ":" not in c.ip]
    media = SessionDescription.parse(sdp).media[0]
    assert (media.host, media.port) == (public, mapped[0][1])
    assert f"c=IN IP4 {public}\r\n" in sdp
