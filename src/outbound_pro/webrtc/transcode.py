"""Opus ↔ G.711 for a browser that offers no G.711 (the rare case; see gateway.py).

Chrome and Firefox always offer PCMU and PCMA, so the gateway only decrypts and re-encrypts;
this runs only when a client offers Opus alone. One `OpusG711` per call holds the codec state
(Opus is stateful both ways) and the resamplers between 48 kHz and 8 kHz. Each method takes
one RTP payload and returns zero or more payloads for the other side, so the caller keeps
sequence numbers and timestamps.
"""

from __future__ import annotations

import av
import numpy as np

from outbound_pro.media.g711 import decode_alaw, decode_ulaw, encode_alaw, encode_ulaw

OPUS_RATE = 48000
G711_RATE = 8000
G711_FRAME = 160  # 20 ms at 8 kHz


class OpusG711:
    """Transcoder state for one call; *g711* is "PCMU" or "PCMA" (the plain side's codec)."""

    def __init__(self, g711: str = "PCMU") -> None:
        self._decode_g711 = decode_ulaw if g711 == "PCMU" else decode_alaw
        self._encode_g711 = encode_ulaw if g711 == "PCMU" else encode_alaw
        self._opus_dec = av.CodecContext.create("opus", "r")
        self._opus_dec.sample_rate = OPUS_RATE
        self._opus_dec.layout = "mono"
        self._opus_enc = av.CodecContext.create("libopus", "w")
        self._opus_enc.sample_rate = OPUS_RATE
        self._opus_enc.layout = "mono"
        self._opus_enc.format = "s16"
        self._opus_enc.bit_rate = 32000
        self._opus_enc.open()
        self._down = av.AudioResampler(format="s16", layout="mono", rate=G711_RATE)
        self._up = av.AudioResampler(format="s16", layout="mono", rate=OPUS_RATE)
        self._pcm8 = bytearray()
        self._pts = 0

    def opus_to_g711(self, payload: bytes) -> list[bytes]:
        """One Opus payload in, whole 20 ms G.711 payloads out (none while buffering)."""
        try:
            frames = self._opus_dec.decode(av.Packet(payload))
        except av.error.FFmpegError:
            return []  # a corrupt packet costs 20 ms of audio, never the call
        for frame in frames:
            for out in self._down.resample(frame):
                self._pcm8 += out.to_ndarray().tobytes()
        chunks = []
        step = G711_FRAME * 2
        while len(self._pcm8) >= step:
            chunks.append(self._encode_g711(bytes(self._pcm8[:step])))
            del self._pcm8[:step]
        return chunks

    def g711_to_opus(self, payload: bytes) -> list[bytes]:
        """One 20 ms G.711 payload in, Opus payloads out."""
        pcm = np.frombuffer(self._decode_g711(payload), dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = G711_RATE
        out: list[bytes] = []
        for up in self._up.resample(frame):
            up.pts = self._pts
            self._pts += up.samples
            out += [bytes(p) for p in self._opus_enc.encode(up)]
        return out
