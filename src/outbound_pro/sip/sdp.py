"""SDP (RFC 4566) parsing, serialising and the B2BUA's offer/answer rewrite (RFC 3264), sans-I/O.

The B2BUA never lets one side's media addresses reach the other: every SDP that crosses it is
rewritten so the connection address and ports are the relay's, the origin line is the server's
own (with a version it increments per change, as RFC 3264 §8 wants), and only codecs the
product handles survive:

* PCMU (0), PCMA (8) and telephone-event (RFC 4733) are always allowed: the recorder decodes
  G.711 and DTMF must reach the far end;
* G.722 and Opus are *passed through*: kept in an offer when the offerer lists them, so they
  are used exactly when both sides offer them (the answerer picks from the offer). The relay
  never transcodes.

Unknown attributes of a media section are kept (``a=ptime``, ``a=fmtp`` of kept formats ...)
except the ones that name addresses (``a=rtcp``, ``a=candidate``, ``a=ice-*``), which would
point around the relay. The direction attribute (``sendrecv``/``sendonly``/``recvonly``/
``inactive``) is what hold and resume are made of and is copied as is.

Lines are kept as text: SDP is small and changes rarely, so a faithful round trip of what we do
not interpret matters more than a model of every attribute.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
STATIC_CODECS = {0: "PCMU/8000", 8: "PCMA/8000", 9: "G722/8000"}
ALLOWED_ENCODINGS = frozenset({"pcmu", "pcma", "telephone-event", "g722", "opus"})
AUDIO_ENCODINGS = frozenset({"pcmu", "pcma", "g722", "opus"})
_ADDRESS_ATTRIBUTES = ("rtcp", "candidate", "ice-ufrag", "ice-pwd", "ice-options", "rtcp-mux")


class SdpError(ValueError):
    """A body that is not SDP the B2BUA can relay; the message says why (for a 488/400)."""


@dataclass
class MediaSection:
    """One ``m=`` line and what follows it up to the next."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # i=, b=, k= lines, kept verbatim

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name:value`` (``""`` for a flag), None when absent."""
        for attr in self.attributes:
            key, _, value = attr.partition(":")
            if key == name:
                return value
        return None

    @property
    def rtpmap(self) -> dict[int, str]:
        """Payload type → ``encoding/clock[/channels]``, static types filled in."""
        out: dict[int, str] = {}
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) in STATIC_CODECS:
                out[int(fmt)] = STATIC_CODECS[int(fmt)]
        for attr in self.attributes:
            if attr.startswith("rtpmap:"):
                pt, _, enc = attr[7:].partition(" ")
                if pt.isdigit():
                    out[int(pt)] = enc.strip()
        return out

    @property
    def direction(self) -> str:
        for attr in self.attributes:
            if attr in DIRECTIONS:
                return attr
        return "sendrecv"

    def set_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        self.attributes = [a for a in self.attributes if a not in DIRECTIONS]
        self.attributes.append(direction)

    def encodings(self) -> list[str]:
        """Lower-case encoding names of the formats, in the order offered."""
        rtpmap = self.rtpmap
        names = []
        for fmt in self.formats:
            enc = rtpmap.get(int(fmt)) if fmt.isdigit() else None
            names.append(enc.split("/", 1)[0].lower() if enc else "")
        return names


@dataclass
class SessionDescription:
    version: str = "0"
    origin: str = "- 0 0 IN IP4 0.0.0.0"
    name: str = "-"
    connection: str | None = None
    session_lines: list[str] = field(default_factory=list)  # b=, t=, a= ... at session level
    media: list[MediaSection] = field(default_factory=list)

    def audio(self) -> MediaSection | None:
        """The first audio stream with a non-zero port (what a telephone call is)."""
        for m in self.media:
            if m.media == "audio" and m.port != 0:
                return m
        return None

    def media_address(self, section: MediaSection) -> str | None:
        """The IP address media for *section* goes to (media-level c= over session-level)."""
        conn = section.connection or self.connection
        if conn is None:
            return None
        parts = conn.split()
        if len(parts) != 3 or parts[0] != "IN":
            return None
        return parts[2].split("/", 1)[0]

    def session_direction(self) -> str | None:
        for line in self.session_lines:
            if line[2:] in DIRECTIONS and line.startswith("a="):
                return line[2:]
        return None

    def to_bytes(self) -> bytes:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.name}"]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += self.session_lines
        for m in self.media:
            lines.append(f"m={m.media} {m.port} {m.proto} {' '.join(m.formats)}")
            lines += m.other[:1] if m.other and m.other[0].startswith("i=") else []
            if m.connection is not None:
                lines.append(f"c={m.connection}")
            lines += [x for x in m.other if not x.startswith("i=")]
            lines += [f"a={a}" for a in m.attributes]
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body; raises :class:`SdpError` for anything not usable."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8") from exc
    sdp = SessionDescription()
    current: MediaSection | None = None
    seen_v = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip("\r")
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"malformed SDP line {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "v":
            seen_v = True
            sdp.version = value
        elif kind == "m":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"malformed m= line {value!r}")
            port_text = parts[1].split("/", 1)[0]
            if not port_text.isdigit() or int(port_text) > 65535:
                raise SdpError(f"bad media port {parts[1]!r}")
            current = MediaSection(parts[0], int(port_text), parts[2], parts[3:])
            sdp.media.append(current)
        elif current is None:
            if kind == "o":
                sdp.origin = value
            elif kind == "s":
                sdp.name = value
            elif kind == "c":
                sdp.connection = value
            else:
                sdp.session_lines.append(line)
        elif kind == "c":
            current.connection = value
        elif kind == "a":
            current.attributes.append(value)
        else:
            current.other.append(line)
    if not seen_v:
        raise SdpError("SDP without v= line")
    return sdp


def _connection_line(host: str) -> str:
    family = "IP6" if ipaddress.ip_address(host).version == 6 else "IP4"
    return f"IN {family} {host}"


def filter_codecs(section: MediaSection) -> list[str]:
    """The formats of *section* this product relays, in the offerer's order."""
    kept = []
    for fmt, enc in zip(section.formats, section.encodings(), strict=True):
        if enc in ALLOWED_ENCODINGS:
            kept.append(fmt)
    return kept


@dataclass
class Origin:
    """The o= line the server uses on one dialog leg: fixed session id, rising version."""

    session_id: int
    version: int = 0
    host: str = "127.0.0.1"

    def next(self) -> str:
        self.version += 1
        family = "IP6" if ":" in self.host else "IP4"
        return f"outbound-pro {self.session_id} {self.version} IN {family} {self.host}"


def rewrite(
    sdp: SessionDescription,
    *,
    host: str,
    port: int,
    origin: Origin,
    allowed: list[str] | None = None,
) -> SessionDescription:
    """A copy of *sdp* for the other leg: media at ``host:port`` (the relay's leg facing that
    side), the server's origin, unsupported codecs removed.

    *allowed* limits the formats further (an answer may only use formats of the offer it
    answers, RFC 3264 §6). Streams other than the first audio stream are rejected with port 0
    (§6: a stream is declined by answering it with port 0; the relay carries one audio
    stream). Raises :class:`SdpError` when no audio codec survives (a 488).
    """
    out = SessionDescription(
        version="0",
        origin=origin.next(),
        name=sdp.name or "-",
        connection=_connection_line(host),
        session_lines=[
            line
            for line in sdp.session_lines
            if line.startswith(("t=", "b=")) or line[2:] in DIRECTIONS
        ]
        or ["t=0 0"],
    )
    audio = sdp.audio()
    if audio is None:
        raise SdpError("no audio stream in SDP")
    for section in sdp.media:
        if section is not audio:
            out.media.append(
                MediaSection(section.media, 0, section.proto, section.formats[:1] or ["0"])
            )
            continue
        formats = filter_codecs(section)
        if allowed is not None:
            formats = [f for f in formats if f in allowed]
        encs = dict(zip(section.formats, section.encodings(), strict=True))
        if not any(encs.get(f) in AUDIO_ENCODINGS for f in formats):
            raise SdpError("no common audio codec (PCMU, PCMA, G.722 or Opus)")
        attrs = []
        for attr in section.attributes:
            key, _, value = attr.partition(":")
            if key in _ADDRESS_ATTRIBUTES:
                continue
            if key in ("rtpmap", "fmtp") and value.split(" ", 1)[0] not in formats:
                continue
            attrs.append(attr)
        out.media.append(
            MediaSection(
                section.media,
                port,
                section.proto,
                formats,
                None,
                attrs,
                [x for x in section.other if x.startswith("b=")],
            )
        )
    return out


def media_target(sdp: SessionDescription) -> tuple[str, int, dict[int, str], str] | None:
    """Where the first audio stream wants media: ``(ip, port, rtpmap, direction)``.

    None when there is no usable audio stream or the address is not an IP literal (the relay
    does not resolve names on the call path).
    """
    audio = sdp.audio()
    if audio is None:
        return None
    host = sdp.media_address(audio)
    if host is None:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    direction = audio.direction
    session_dir = sdp.session_direction()
    if session_dir is not None and not any(a in DIRECTIONS for a in audio.attributes):
        direction = session_dir
    return host, audio.port, audio.rtpmap, direction


def codec_names(sdp: SessionDescription) -> list[str]:
    """Encoding names of the first audio stream, for the CDR (``["PCMU", "telephone-event"]``)."""
    audio = sdp.audio()
    if audio is None:
        return []
    rtpmap = audio.rtpmap
    return [
        rtpmap[int(f)].split("/", 1)[0] for f in audio.formats if f.isdigit() and int(f) in rtpmap
    ]
