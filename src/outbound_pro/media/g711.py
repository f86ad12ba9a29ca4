"""G.711 μ-law (PCMU) and A-law (PCMA) as precomputed tables.

Decoding must cost next to nothing because every recorded packet is decoded, so it never loops
over samples in Python: a 16-bit sample is split into its low and high byte, and each byte has
its own 256-entry ``bytes.translate`` table. Two translates and two strided slice assignments
(all C loops) turn a payload into little-endian 16-bit PCM. The recorder goes further and
keeps raw G.711 codes in its buffers, decoding a whole second of audio per translate.

The tables are computed once at import from the reference algorithm (ITU-T G.711, in the form
of the widely used Sun Microsystems ``g711.c``). Encoding is not on the relay's path — it feeds
tests, the benchmark's load generator and, later, prompts — so it maps each unsigned 16-bit
sample through a 65536-entry table with ``map`` (a C loop), with no numpy dependency.
"""

from __future__ import annotations

import array
import sys

ULAW_SILENCE = 0xFF  # decodes to exactly 0
ALAW_SILENCE = 0xD5  # decodes to +8, the smallest A-law magnitude

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def ulaw_to_linear(code: int) -> int:
    """Reference μ-law expansion of one code to a 16-bit sample."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def alaw_to_linear(code: int) -> int:
    """Reference A-law expansion of one code to a 16-bit sample."""
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for i, end in enumerate(ends):
        if value <= end:
            return i
    return len(ends)


def linear_to_ulaw(sample: int) -> int:
    """Reference μ-law compression of one 16-bit sample."""
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, 8159) + 0x21
    seg = _segment(value, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def linear_to_alaw(sample: int) -> int:
    """Reference A-law compression of one 16-bit sample."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    seg = _segment(value, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    quant = (value >> 1) & 0x0F if seg < 2 else (value >> seg) & 0x0F
    return ((seg << 4) | quant) ^ mask


def _byte_tables(decode: object) -> tuple[bytes, bytes]:
    samples = [decode(code) & 0xFFFF for code in range(256)]  # type: ignore[operator]
    return bytes(s & 0xFF for s in samples), bytes(s >> 8 for s in samples)


#: ``payload.translate(ULAW_LO)`` gives the low bytes of the decoded samples, ``..._HI`` the high.
ULAW_LO, ULAW_HI = _byte_tables(ulaw_to_linear)
ALAW_LO, ALAW_HI = _byte_tables(alaw_to_linear)


def _encode_table(compress: object) -> bytes:
    """65536-entry table indexed by the unsigned 16-bit sample: G.711 ignores the bottom two
    bits, so 16384 reference calls fill it, each code repeated four times."""
    top = bytes(compress(((i ^ 0x2000) - 0x2000) << 2) for i in range(1 << 14))  # type: ignore[operator]
    table = bytearray(1 << 16)
    for k in range(4):
        table[k::4] = top
    return bytes(table)


_ULAW_ENCODE = _encode_table(linear_to_ulaw)
_ALAW_ENCODE = _encode_table(linear_to_alaw)


def _decode(payload: bytes, lo: bytes, hi: bytes) -> bytes:
    out = bytearray(2 * len(payload))
    out[0::2] = payload.translate(lo)
    out[1::2] = payload.translate(hi)
    return bytes(out)


def decode_ulaw(payload: bytes) -> bytes:
    """PCMU payload to 16-bit little-endian PCM."""
    return _decode(payload, ULAW_LO, ULAW_HI)


def decode_alaw(payload: bytes) -> bytes:
    """PCMA payload to 16-bit little-endian PCM."""
    return _decode(payload, ALAW_LO, ALAW_HI)


def _encode(pcm: bytes, table: bytes) -> bytes:
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even number of bytes")
    samples = array.array("H")
    samples.frombytes(pcm)
    if sys.byteorder != "little":
        samples.byteswap()
    return bytes(map(table.__getitem__, samples))


def encode_ulaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM to a PCMU payload."""
    return _encode(pcm, _ULAW_ENCODE)


def encode_alaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM to a PCMA payload."""
    return _encode(pcm, _ALAW_ENCODE)
