"""Tone streams and spectrum checks shared by the recorder tests and the SIGKILL child."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import numpy as np

RATE = 8000
FRAME = 160  # 20 ms

_RTP = struct.Struct("!BBHII")


def tone_codes(
    freq: float, seconds: float, encode: Callable[[bytes], bytes], amp: int = 8000
) -> bytes:
    n = int(seconds * RATE)
    pcm = struct.pack(
        f"<{n}h", *(int(amp * math.sin(2 * math.pi * freq * i / RATE)) for i in range(n))
    )
    return encode(pcm)


def rtp(seq: int, ts: int, ssrc: int, pt: int, payload: bytes) -> bytes:
    """A plain RTP packet, built with one struct call (the 1-hour test makes 360 000)."""
    return _RTP.pack(0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def stream(codes: bytes, pt: int, ssrc: int, ts0: int = 0) -> list[bytes]:
    """20 ms packets of ``codes``, sequence numbers and timestamps counting up."""
    return [
        rtp(k, ts0 + FRAME * k, ssrc, pt, codes[FRAME * k : FRAME * (k + 1)])
        for k in range(len(codes) // FRAME)
    ]


def peak_hz(samples: object) -> float:
    """Frequency of the strongest FFT bin of a windowed block."""
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * RATE / len(x)


def band_ratio_db(samples: object, want: float, other: float) -> float:
    """How much stronger (dB) the ``want`` tone is than the ``other`` tone in a block."""
    x = np.asarray(samples, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    bins = np.fft.rfftfreq(len(x), 1 / RATE)

    def energy(f: float) -> float:
        return float(np.sum(spectrum[np.abs(bins - f) < 20] ** 2)) + 1e-9

    return 10 * math.log10(energy(want) / energy(other))
