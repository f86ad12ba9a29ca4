"""G.711 tables against the reference algorithm, known code points and round trips."""

from __future__ import annotations

import array
import itertools
import struct

import pytest

from outbound_pro.media import g711


@pytest.mark.parametrize(
    ("code", "value"),
    [(0x00, -32124), (0x7F, 0), (0x80, 32124), (0xFF, 0), (0xFE, 8), (0xEF, 132), (0x70, -120)],
)
def test_ulaw_known_codes(code: int, value: int) -> None:
    assert g711.ulaw_to_linear(code) == value
    assert struct.unpack("<h", g711.decode_ulaw(bytes([code])))[0] == value


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24), (0xC5, 264)],
)
def test_alaw_known_codes(code: int, value: int) -> None:
    assert g711.alaw_to_linear(code) == value
    assert struct.unpack("<h", g711.decode_alaw(bytes([code])))[0] == value


def test_translate_tables_match_the_reference_for_every_code() -> None:
    codes = bytes(range(256))
    ulaw = struct.unpack("<256h", g711.decode_ulaw(codes))
    alaw = struct.unpack("<256h", g711.decode_alaw(codes))
    assert list(ulaw) == [g711.ulaw_to_linear(c) for c in range(256)]
    assert list(alaw) == [g711.alaw_to_linear(c) for c in range(256)]


def test_encoder_tables_match_the_reference_for_every_sample() -> None:
    samples = array.array("h", range(-32768, 32768))
    pcm = samples.tobytes()
    ulaw = g711.encode_ulaw(pcm)
    alaw = g711.encode_alaw(pcm)
    for s in range(-32768, 32768, 7):
        assert ulaw[s + 32768] == g711.linear_to_ulaw(s)
        assert alaw[s + 32768] == g711.linear_to_alaw(s)


def test_codes_survive_decode_then_encode() -> None:
    codes = bytes(range(256))
    # μ-law has two zeros (0x7F and 0xFF); encoding 0 gives 0xFF.
    assert g711.encode_ulaw(g711.decode_ulaw(codes)) == codes.replace(b"\x7f", b"\xff")
    assert g711.encode_alaw(g711.decode_alaw(codes)) == codes


def test_quantisation_error_is_bounded_and_monotonic() -> None:
    pcm = array.array("h", range(-32768, 32768)).tobytes()
    for encode, decode, limit in (
        (g711.encode_ulaw, g711.decode_ulaw, 1024),
        (g711.encode_alaw, g711.decode_alaw, 1024),
    ):
        back = array.array("h")
        back.frombytes(decode(encode(pcm)))
        errors = [abs(b - s) for s, b in zip(range(-32768, 32768), back, strict=True)]
        assert max(errors) <= limit
        assert max(errors[32768 - 100 : 32768 + 100]) <= 8  # fine steps near zero
        assert all(x <= y for x, y in itertools.pairwise(back))


def test_payload_decode_is_sample_per_byte() -> None:
    payload = bytes(range(160))
    assert len(g711.decode_ulaw(payload)) == 320
    assert g711.decode_ulaw(b"") == b""
    with pytest.raises(ValueError):
        g711.encode_ulaw(b"\x00")
