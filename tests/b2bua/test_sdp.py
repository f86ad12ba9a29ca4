"""SDP parse/serialise and the B2BUA's rewrite (sans-I/O)."""

from __future__ import annotations

import pytest

from outbound_pro.sip import sdp

OFFER = (
    b"v=0\r\n"
    b"o=phone 123 456 IN IP4 192.168.1.20\r\n"
    b"s=call\r\n"
    b"c=IN IP4 192.168.1.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 4000 RTP/AVP 9 0 8 18 111 101\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:111 opus/48000/2\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=rtcp:4001\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
    b"m=video 4002 RTP/AVP 96\r\n"
    b"a=rtpmap:96 H264/90000\r\n"
)


def test_parse_reads_streams_codecs_and_direction() -> None:
    desc = sdp.parse_sdp(OFFER)
    audio = desc.audio()
    assert audio is not None
    assert (audio.port, audio.formats) == (4000, ["9", "0", "8", "18", "111", "101"])
    assert audio.rtpmap[0] == "PCMU/8000" and audio.rtpmap[111] == "opus/48000/2"
    assert audio.direction == "sendrecv"
    assert sdp.media_target(desc) == ("192.168.1.20", 4000, audio.rtpmap, "sendrecv")


def test_round_trip_keeps_every_line() -> None:
    assert sdp.parse_sdp(OFFER).to_bytes() == OFFER


def test_rewrite_points_media_at_the_relay_and_filters_codecs() -> None:
    origin = sdp.Origin(77, host="203.0.113.5")
    out = sdp.rewrite(sdp.parse_sdp(OFFER), host="203.0.113.5", port=30000, origin=origin)
    text = out.to_bytes().decode()
    assert "c=IN IP4 203.0.113.5\r\n" in text
    assert "m=audio 30000 RTP/AVP 9 0 8 111 101\r\n" in text  # G.729 gone, G.722/Opus kept
    assert "G729" not in text and "annexb" not in text
    assert "192.168.1.20" not in text and "a=rtcp:" not in text
    assert "m=video 0 RTP/AVP 96" in text  # declined, the relay carries one audio stream
    assert text.startswith("v=0\r\no=outbound-pro 77 1 IN IP4 203.0.113.5\r\n")
    again = sdp.rewrite(sdp.parse_sdp(OFFER), host="203.0.113.5", port=30000, origin=origin)
    assert again.origin.split()[2] == "2"  # the version rises with every new SDP (RFC 3264 §8)


def test_answer_is_limited_to_what_was_offered() -> None:
    answer = sdp.parse_sdp(OFFER.replace(b"RTP/AVP 9 0 8 18 111 101", b"RTP/AVP 0 8 101"))
    out = sdp.rewrite(
        answer, host="127.0.0.1", port=30002, origin=sdp.Origin(1), allowed=["8", "101"]
    )
    assert out.audio().formats == ["8", "101"]  # type: ignore[union-attr]


@pytest.mark.parametrize("direction", ["sendonly", "recvonly", "inactive", "sendrecv"])
def test_hold_direction_passes_through(direction: str) -> None:
    held = OFFER.replace(b"a=sendrecv", b"a=" + direction.encode())
    out = sdp.rewrite(sdp.parse_sdp(held), host="127.0.0.1", port=30000, origin=sdp.Origin(1))
    assert out.audio().direction == direction  # type: ignore[union-attr]


def test_session_level_direction_applies_to_the_stream() -> None:
    desc = sdp.parse_sdp(
        OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n").replace(b"a=sendrecv\r\n", b"")
    )
    target = sdp.media_target(desc)
    assert target is not None and target[3] == "sendonly"
    out = sdp.rewrite(desc, host="127.0.0.1", port=30000, origin=sdp.Origin(1))
    assert "a=sendonly" in out.to_bytes().decode()


def test_set_direction_replaces_the_old_one() -> None:
    audio = sdp.parse_sdp(OFFER).audio()
    assert audio is not None
    audio.set_direction("inactive")
    assert audio.direction == "inactive" and "sendrecv" not in audio.attributes


def test_no_common_codec_is_an_error() -> None:
    only_g729 = OFFER.replace(b"RTP/AVP 9 0 8 18 111 101", b"RTP/AVP 18 101")
    with pytest.raises(sdp.SdpError, match="no common audio codec"):
        sdp.rewrite(sdp.parse_sdp(only_g729), host="127.0.0.1", port=1, origin=sdp.Origin(1))


@pytest.mark.parametrize(
    "body",
    [b"", b"o=x\r\n", b"v=0\r\nm=audio\r\n", b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n", b"\xff\xfe"],
)
def test_malformed_sdp_is_refused(body: bytes) -> None:
    with pytest.raises(sdp.SdpError):
        sdp.parse_sdp(body)


def test_no_audio_or_hostname_gives_no_media_target() -> None:
    video = sdp.parse_sdp(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/AVP 96\r\n")
    assert sdp.media_target(video) is None
    named = sdp.parse_sdp(OFFER.replace(b"c=IN IP4 192.168.1.20", b"c=IN IP4 phone.example"))
    assert sdp.media_target(named) is None
    assert sdp.codec_names(sdp.parse_sdp(OFFER))[:3] == ["G722", "PCMU", "PCMA"]
