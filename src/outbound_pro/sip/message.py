"""SIP requests and responses: parsing, framing, serialising and building (RFC 3261 §7, §8, §18).

Sans-I/O: bytes in, message objects out, bytes back.  Parsing is lazy in three layers, because
a transaction layer needs six headers of a message and most messages are retransmissions or
provisional responses that need no more:

* :func:`parse_message` checks the size limits, finds the header/body boundary and parses the
  start line (errors here: 413, 400 or 505 for a request, a silent drop for a response).
* The header lines are split into ``(name, value)`` -- compact forms normalised, folding
  collapsed -- on the first header access, and the body is framed by Content-Length on first
  access.  A malformed header line or Content-Length is reported by
  :meth:`~outbound_pro.sip.headers.Headers.check` and :attr:`Message.body`.
* Structured values (Via, From/To, CSeq, Call-ID, Max-Forwards, the Request-URI, Contact) are
  parsed when read and cached.  A malformed one raises
  :class:`~outbound_pro.sip.errors.SipParseError` from the *accessor*, carrying the message as
  ``partial``.

:func:`outbound_pro.sip.validate.validate_request` touches everything a UAS relies on, so a
transport meets every one of those errors in one place, as a response to send.

Header values are decoded as UTF-8 with ``surrogateescape``: text stays text for the
application, and any octet sequence (Latin-1 display names, binary junk) still serialises back
to exactly the bytes that arrived.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.headers import (
    MAX_CSEQ,
    TOKEN_CHARS,
    Field,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    check_call_id,
    parse_cseq,
    parse_max_forwards,
    parse_name_addr,
    parse_name_addrs,
    parse_top_via,
    parse_vias,
    split_commas,
)
from outbound_pro.sip.uri import Uri, parse_uri

T = TypeVar("T")

DEFAULT_MAX_SIZE = 65535
"""Largest message accepted (a UDP datagram cannot be bigger; streams use the same cap)."""
DEFAULT_MAX_HEADERS = 256
"""Most header lines accepted; a real INVITE has 15-30."""

KNOWN_METHODS = frozenset(
    [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    ]
)
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_CL_RE = re.compile(rb"\r\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
}

_DIALOG_CREATING = frozenset(("INVITE", "SUBSCRIBE", "REFER", "NOTIFY"))
_VIA = canonical_name("Via")
_RECORD_ROUTE = canonical_name("Record-Route")
_FROM = canonical_name("From")
_TO = canonical_name("To")
_CALL_ID = canonical_name("Call-ID")
_CSEQ = canonical_name("CSeq")
_TIMESTAMP = canonical_name("Timestamp")


def reason_phrase(status: int) -> str:
    return REASON_PHRASES.get(status) or REASON_PHRASES.get(status // 100 * 100, "Unknown")


# ---------------------------------------------------------------------------------------------
# Parsers for the list headers (all lines).  Single-valued headers are parsed by
# Message._one from their first line; a duplicate is a validation error (validate.py), which
# keeps the accessors free of a full header index.


def _p_vias(values: Sequence[str]) -> list[Via]:
    return parse_vias(values)


def _p_contacts(values: Sequence[str]) -> list[NameAddr]:
    if len(values) == 1 and values[0] == "*":
        return []
    return parse_name_addrs(values, "Contact")


def _p_routes(values: Sequence[str]) -> list[NameAddr]:
    return parse_name_addrs(values, "Route")


def _p_record_routes(values: Sequence[str]) -> list[NameAddr]:
    return parse_name_addrs(values, "Record-Route")


_MISSING = object()


class _Failed:
    """A hot-path header that did not parse, cached so the error is raised on each read."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _hot_value(parse: Callable[[str, str], Any], raw: str | None, what: str, optional: bool) -> Any:
    if raw is not None:
        return parse(raw.strip(" \t"), what)
    if optional:
        return None
    raise SipParseError(400, f"Missing {what} header")


def _load_hot(cache: dict[str, Any], first: dict[str, str]) -> None:
    """Fill *cache* with the six hot-path values (or their failures).

    Written out rather than looped over ``_HOT``: this runs for every message, and the loop's
    per-entry unpacking was a measurable share of the hot path (benchmarks/README.md).
    """
    raw = first.get("via")
    try:
        cache["via:top"] = _hot_value(parse_top_via, raw, "Via", False)
    except SipParseError as err:
        cache["via:top"] = _Failed(err.reason)
    raw = first.get("from")
    try:
        cache["from"] = _hot_value(parse_name_addr, raw, "From", False)
    except SipParseError as err:
        cache["from"] = _Failed(err.reason)
    raw = first.get("to")
    try:
        cache["to"] = _hot_value(parse_name_addr, raw, "To", False)
    except SipParseError as err:
        cache["to"] = _Failed(err.reason)
    raw = first.get("call-id")
    try:
        cache["call-id"] = _hot_value(check_call_id, raw, "Call-ID", False)
    except SipParseError as err:
        cache["call-id"] = _Failed(err.reason)
    raw = first.get("cseq")
    try:
        cache["cseq"] = _hot_value(parse_cseq, raw, "CSeq", False)
    except SipParseError as err:
        cache["cseq"] = _Failed(err.reason)
    raw = first.get("max-forwards")
    try:
        cache["max-forwards"] = _hot_value(parse_max_forwards, raw, "Max-Forwards", True)
    except SipParseError as err:
        cache["max-forwards"] = _Failed(err.reason)


_HOT: tuple[tuple[str, str, Callable[[str, str], Any], str], ...] = (
    ("via:top", "via", parse_top_via, "Via"),
    ("from", "from", parse_name_addr, "From"),
    ("to", "to", parse_name_addr, "To"),
    ("call-id", "call-id", check_call_id, "Call-ID"),
    ("cseq", "cseq", parse_cseq, "CSeq"),
    ("max-forwards", "max-forwards", parse_max_forwards, "Max-Forwards"),
)


# ---------------------------------------------------------------------------------------------
# messages


class Message(ABC):
    """What requests and responses share: headers, body and the lazily parsed hot-path fields."""

    __slots__ = ("_body", "_rest", "headers", "version")

    headers: Headers
    version: str
    _body: bytes | None
    _rest: bytes

    @property
    def body(self) -> bytes:
        """The body.  For a parsed datagram it is framed by Content-Length on first access:
        octets beyond it are dropped (RFC 4475 ``dblreq``), no Content-Length means the rest of
        the datagram (``inv2543``), and a bad or conflicting Content-Length raises (400)."""
        body = self._body
        if body is None:
            try:
                body = self._body = _frame_body(
                    self.headers.raw_values("content-length"), self._rest
                )
            except SipParseError as err:
                raise self._adapt(err) from None
        return body

    @body.setter
    def body(self, value: bytes) -> None:
        self._body = value

    def _adapt(self, err: SipParseError) -> SipParseError:
        return err

    def _hot(self, key: str) -> Any:
        """Parse the hot-path headers (top Via, From, To, Call-ID, CSeq, Max-Forwards) together
        on the first access to any of them, and return the one cached under *key*.

        Everything that handles a message (stamping, validation, transaction matching) reads
        all six, and one pass over them costs less than six separate lookups.  A failure is
        cached per header and raised only when that header is read, so a bad From does not
        stop anyone reading the top Via to send the 400 back.
        """
        headers = self.headers
        if headers._lines is not None:
            headers._scan()
        first = headers._first
        if first is None:
            first = headers._first = {f[0][0]: f[1] for f in reversed(headers._fields)}
        cache = headers._cache
        if "(hot)" not in cache:
            cache["(hot)"] = True
            _load_hot(cache, first)
        elif key not in cache:  # loaded before; *key* was dropped by a mutation since
            for name, source, parse, what in _HOT:
                if name == key:
                    raw = first.get(source)
                    try:
                        cache[name] = _hot_value(parse, raw, what, name == "max-forwards")
                    except SipParseError as err:
                        cache[name] = _Failed(err.reason)
        value = cache[key]
        if type(value) is _Failed:
            raise self._adapt(SipParseError(400, value.reason))
        return value

    def _many(self, key: str, parse: Callable[[Sequence[str]], T]) -> T:
        """Parsed form of a list header (all lines), cached under *key*."""
        cache = self.headers._cache
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            try:
                value = parse(self.headers._raw_key(key))
            except SipParseError as err:
                raise self._adapt(err) from None
            cache[key] = value
        return value  # type: ignore[return-value]

    # -- hot path

    @property
    def call_id(self) -> str:
        value = self.headers._cache.get("call-id", _MISSING)
        if value is _MISSING or type(value) is _Failed:
            value = self._hot("call-id")
        return value  # type: ignore[no-any-return]

    @property
    def cseq(self) -> tuple[int, str]:
        """``(number, method)``; the number is checked against 2**32-1 (RFC 4475 scalar02)."""
        value = self.headers._cache.get("cseq", _MISSING)
        if value is _MISSING or type(value) is _Failed:
            value = self._hot("cseq")
        return value  # type: ignore[no-any-return]

    @property
    def vias(self) -> list[Via]:
        """Every Via value.  The top one is taken from the hot-path cache when its line holds
        a single value, so validation does not parse (and allocate) the top Via twice."""
        cache = self.headers._cache
        value = cache.get("via")
        if value is not None:
            return value  # type: ignore[no-any-return]
        top = cache.get("via:top")
        if type(top) is not Via:
            return self._many("via", _p_vias)
        raw = self.headers._raw_key("via")
        if not raw or "," in raw[0]:
            return self._many("via", _p_vias)
        try:
            vias = [top, *parse_vias(raw[1:])] if len(raw) > 1 else [top]
        except SipParseError as err:
            raise self._adapt(err) from None
        cache["via"] = vias
        return vias

    @property
    def top_via(self) -> Via:
        """The first Via value, parsed without parsing the rest of the Via list."""
        value = self.headers._cache.get("via:top", _MISSING)
        if value is _MISSING or type(value) is _Failed:
            value = self._hot("via:top")
        return value  # type: ignore[no-any-return]

    @property
    def from_(self) -> NameAddr:
        value = self.headers._cache.get("from", _MISSING)
        if value is _MISSING or type(value) is _Failed:
            value = self._hot("from")
        return value  # type: ignore[no-any-return]

    @property
    def to(self) -> NameAddr:
        value = self.headers._cache.get("to", _MISSING)
        if value is _MISSING or type(value) is _Failed:
            value = self._hot("to")
        return value  # type: ignore[no-any-return]

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        return self.to.tag

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, or None when absent (RFC 2543 senders, RFC 4475 ``inv2543``)."""
        value = self.headers._cache.get("max-forwards", _MISSING)
        if value is _MISSING or type(value) is _Failed:
            value = self._hot("max-forwards")
        return value  # type: ignore[no-any-return]

    @property
    def content_length(self) -> int:
        """The body length; serialisation always writes this, so it never disagrees."""
        return len(self.body)

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values; ``Contact: *`` (REGISTER removal) gives an empty list."""
        return self._many("contact", _p_contacts)

    @property
    def routes(self) -> list[NameAddr]:
        return self._many("route", _p_routes)

    @property
    def record_routes(self) -> list[NameAddr]:
        return self._many("record-route", _p_record_routes)

    @property
    def content_type(self) -> str | None:
        """Media type without parameters, lower-cased (``application/sdp``)."""
        value = self.headers.first("content-type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip(" \t").lower()

    # -- generic access and mutation

    def get(self, name: str) -> str | None:
        return self.headers.get(name)

    def get_all(self, name: str) -> list[str]:
        return self.headers.get_all(name)

    def set(self, name: str, value: object) -> None:
        self.headers.set(name, value)

    def add(self, name: str, value: object) -> None:
        self.headers.add(name, value)

    def remove(self, name: str) -> int:
        return self.headers.remove(name)

    def prepend_via(self, via: Via | str) -> None:
        self.headers.prepend("Via", via)

    def pop_via(self) -> str | None:
        """Remove the top Via value (a UAC core does this to a response it matched)."""
        return self.headers.pop_first("Via")

    @abstractmethod
    def _start_line(self) -> str:
        """Request-Line or Status-Line, without CRLF."""

    def to_bytes(self) -> bytes:
        """Canonical wire form: long header names, ``Name: value``, unfolded, and a
        Content-Length that always equals the body length (written where the header was, or
        appended)."""
        self.headers.check()  # never re-emit a header section we could not read
        lines = [self._start_line()]
        length = str(len(self.body))
        seen = False
        for (key, name), value in self.headers._all():
            if key == "content-length":
                if seen:
                    continue
                seen = True
                value = length
            lines.append(f"{name}: {value}")
        if not seen:
            lines.append(f"Content-Length: {length}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    """A SIP request.  ``uri`` is parsed on first access; ``uri_text`` is what arrived.

    ``received_from`` is the packet's source address once a server transport recorded it
    (:func:`stamp_received`); responses built from the request carry it in their top Via.
    """

    __slots__ = ("_uri", "method", "received_from", "uri_text")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None:
        self.method = method
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri: Uri | None = None
        else:
            self.uri_text = str(uri)
            self._uri = uri
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self._body = body
        self._rest = b""
        self.version = version
        self.received_from: tuple[str, int] | None = None

    def _adapt(self, err: SipParseError) -> SipParseError:
        if err.partial is None:
            err.partial = self
        if self.method == "ACK":
            err.status = None
        return err

    @property
    def uri(self) -> Uri:
        if self._uri is None:
            try:
                self._uri = parse_uri(self.uri_text)
            except SipParseError as err:
                raise self._adapt(SipParseError(400, "Malformed Request-URI")) from err
        return self._uri

    @uri.setter
    def uri(self, value: Uri) -> None:
        self._uri = value
        self.uri_text = str(value)

    def _start_line(self) -> str:
        return f"{self.method} {self.uri_text} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    """A SIP response.  Any error reading it has status None: responses are never answered."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        version: str = "SIP/2.0",
    ) -> None:
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self._body = body
        self._rest = b""
        self.version = version

    def _adapt(self, err: SipParseError) -> SipParseError:
        return SipParseError(None, err.reason)

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


# ---------------------------------------------------------------------------------------------
# parsing


def parse_message(
    data: bytes, *, max_size: int = DEFAULT_MAX_SIZE, max_headers: int = DEFAULT_MAX_HEADERS
) -> Request | Response:
    """Parse one datagram (or one frame from :class:`StreamFramer`).

    Raised here: size limits, keep-alives, a bad start line or version, bare CR/LF.  Header
    lines are split on demand and the body is framed on first access (see :attr:`Message.body`),
    so a malformed header line or Content-Length surfaces from :meth:`Headers.check` / ``body``
    -- :func:`outbound_pro.sip.validate.validate_request` calls both.  A datagram whose header
    section is not closed by an empty line ends its headers at the end of the datagram.
    """
    if len(data) > max_size:
        raise SipParseError(413, "Message Too Large")
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
        if not data:
            raise SipParseError(None, "Keep-alive")
    head_bytes, sep, rest = data.partition(b"\r\n\r\n")
    if not sep and head_bytes.endswith(b"\r\n"):
        head_bytes = head_bytes[:-2]
    lines = head_bytes.decode("utf-8", "surrogateescape").split("\r\n")
    if len(lines) > max_headers + 1:
        raise SipParseError(413, "Too Many Header Fields")
    start = lines[0]
    bad_eol = "\r" in start or "\n" in start  # the rest is checked by Headers.check()
    if start[3:4] == "/" and start[:3].upper() == "SIP":
        return _parse_response(start, lines, head_bytes, rest, bad_eol)
    return _parse_request(start, lines, head_bytes, rest, bad_eol)


def _frame_body(values: Sequence[str], rest: bytes) -> bytes:
    if not values:
        return rest
    length = _content_length(values)
    if length > len(rest):
        raise SipParseError(400, "Content-Length larger than message")
    return rest if length == len(rest) else rest[:length]


def _content_length(values: Sequence[str]) -> int:
    first = values[0]
    for other in values[1:]:
        if other != first:
            raise SipParseError(400, "Conflicting Content-Length headers")
    if not first.isdigit() or not first.isascii():
        raise SipParseError(400, "Malformed Content-Length")
    if len(first) > 10:
        raise SipParseError(413, "Content-Length too large")
    return int(first)


def _parse_request(
    start: str, lines: list[str], head: bytes, rest: bytes, bad_eol: bool
) -> Request:
    """Request-Line now; header lines on demand (see :class:`Headers`)."""
    parts = start.split()
    problem: SipParseError | None = None
    if len(parts) == 3:
        method, uri_text, version = parts
        if method not in KNOWN_METHODS and not all(ch in TOKEN_CHARS for ch in method):
            problem = SipParseError(400, "Malformed method")
        elif version != "SIP/2.0":
            if _VERSION_RE.fullmatch(version) is None:
                problem = SipParseError(400, "Malformed SIP-Version")
            elif version.upper() != "SIP/2.0":
                problem = SipParseError(505, "Version Not Supported")
            else:
                version = "SIP/2.0"
    else:
        method = parts[0] if parts else ""
        uri_text = " ".join(parts[1:-1]) if len(parts) > 2 else (parts[1] if parts[1:] else "")
        version = "SIP/2.0"
        problem = SipParseError(400, "Malformed Request-Line")
    if bad_eol and problem is None:
        problem = SipParseError(400, "Bare CR or LF in Request-Line")
    if problem is None:
        headers = Headers.__new__(Headers)  # Headers._from_lines, inlined: this is per message
        headers._fields = []
        headers._first = {}
        headers._index = None
        headers._cache = {}
        headers._lines = lines
        headers._error = None
        headers._clean = False
        headers._head = head
        req = Request.__new__(Request)
        req.method = method
        req.uri_text = uri_text
        req._uri = None
        req.received_from = None
        req.version = version
        req.headers = headers
        req._body = None
        req._rest = rest
        return req
    problem.partial = Request(method or "UNKNOWN", uri_text, Headers._from_lines(lines))
    if method == "ACK":
        problem.status = None
    raise problem


def _parse_response(
    start: str, lines: list[str], head: bytes, rest: bytes, bad_eol: bool
) -> Response:
    version, _, tail = start.partition(" ")
    code, _, reason = tail.partition(" ")
    if version.upper() != "SIP/2.0":
        raise SipParseError(None, "Unsupported SIP-Version in response")
    if len(code) != 3 or not code.isdigit() or not code.isascii() or not "100" <= code <= "699":
        raise SipParseError(None, "Bad Status-Code")
    if bad_eol:
        raise SipParseError(None, "Bare CR or LF in Status-Line")
    resp = Response.__new__(Response)
    resp.status = int(code)
    resp.reason = reason
    resp.version = "SIP/2.0"
    resp.headers = Headers._from_lines(lines, head)
    resp._body = None
    resp._rest = rest
    return resp


class StreamFramer:
    """Cuts a TCP/TLS byte stream into whole messages by Content-Length (RFC 3261 §18.3).

    Feed it whatever the socket delivered; it returns the complete messages (as bytes for
    :func:`parse_message`) and keeps the remainder.  CRLFs between messages are keep-alives
    (RFC 5626 §4.4.1) and are skipped.  A missing Content-Length means an empty body.

    A framing error (bad, negative, conflicting or oversized Content-Length; a header section
    longer than ``max_size``) leaves the stream unsynchronised, so the connection must be
    closed.  If messages were framed before the error in the same call they are returned and
    the error is kept in :attr:`error` and raised by the next :meth:`feed`; the caller should
    check :attr:`error` after handling the returned frames.  The error's ``partial`` is set when
    the offending header section was readable, so a 400 can be sent before closing.
    """

    __slots__ = ("_buf", "_scan", "_total", "error", "max_size")

    def __init__(self, *, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the header section
        self._total = 0  # size of the message at the front of the buffer, once known
        self.error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Octets held waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            raise self.error
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        while True:
            if self._total:
                if len(buf) < self._total:
                    break
                frames.append(bytes(buf[: self._total]))
                del buf[: self._total]
                self._total = 0
                continue
            if buf[:1] in (b"\r", b"\n"):
                skip = len(buf) - len(buf.lstrip(b"\r\n"))
                if skip == len(buf) and buf.endswith(b"\r"):
                    skip -= 1  # a lone CR may be the first half of a CRLF still in flight
                del buf[:skip]
                self._scan = 0
            if not buf:
                break
            end = buf.find(b"\r\n\r\n", max(self._scan - 3, 0))
            if end < 0:
                self._scan = len(buf)
                if len(buf) > self.max_size:
                    return self._fail(frames, SipParseError(413, "Header section too large"))
                break
            try:
                length = self._body_length(bytes(buf[:end]))
            except SipParseError as err:
                return self._fail(frames, err)
            total = end + 4 + length
            if total > self.max_size:
                return self._fail(frames, SipParseError(413, "Message Too Large"))
            self._total = total
            self._scan = 0
        return frames

    def _fail(self, frames: list[bytes], err: SipParseError) -> list[bytes]:
        self.error = err
        if frames:
            return frames
        raise err

    def _body_length(self, head: bytes) -> int:
        matches = _CL_RE.findall(head)
        if not matches:
            return 0
        values = [m.decode("latin-1").strip(" \t") for m in matches]
        try:
            return _content_length(values)
        except SipParseError as err:
            partial = err.partial = _read_partial(head)
            if partial is not None and partial.method == "ACK":
                err.status = None  # never answered, but the stream is still broken
            raise


def _read_partial(head_bytes: bytes) -> Request | None:
    """The request a broken header section belongs to, as far as it reads (never a response)."""
    lines = head_bytes.decode("utf-8", "surrogateescape").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or parts[0][:4].upper() == "SIP/":
        return None
    return Request(parts[0], parts[1], Headers._from_lines(lines))


# ---------------------------------------------------------------------------------------------
# building


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 80 random bits)."""
    return "z9hG4bK" + secrets.token_hex(10)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str | None = None) -> str:
    token = secrets.token_hex(12)
    return f"{token}@{host}" if host else token


def stateless_tag(request: Request) -> str:
    """A To tag derived from the request, for responses sent without a transaction.

    Retransmissions of the request then get the same tag, which a random tag would not give
    (RFC 3261 §8.2.6.2 wants the tag stable for the life of the transaction).
    """
    seed = "\x00".join(
        request.headers.raw_values("call-id")
        + request.headers.raw_values("from")
        + request.headers.raw_values("via")[:1]
        + request.headers.raw_values("cseq")
    )
    return hashlib.blake2s(seed.encode("utf-8", "surrogateescape"), digest_size=6).hexdigest()


def _first_element(values: list[str]) -> str | None:
    for value in values:
        for item in split_commas(value):
            if item:
                return item
    return None


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to *request* per RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied
    verbatim (To gains *to_tag* unless it already has one or this is a 100), Record-Route
    copied for dialog-creating 1xx/2xx (§12.1.1), Timestamp echoed on 100 (§8.2.6.1).

    Copies are of the raw values, so a response can be built even when one of those headers
    is malformed or missing: the error responses validation produces rely on that.
    """
    src = request.headers
    raw = src._raw_key
    cache = src._cache
    vias = raw("via")
    if request.received_from is not None and vias:
        vias = (_stamped_top_line(request, vias[0], *request.received_from), *vias[1:])
    out: list[Field] = [(_VIA, v) for v in vias]
    if 100 < status < 300 and request.method in _DIALOG_CREATING:
        out += [(_RECORD_ROUTE, v) for v in raw("record-route")]
    out += [(_FROM, v) for v in raw("from")]
    to_values = raw("to")
    if to_tag is not None and status != 100 and len(to_values) == 1:
        # The To the request already parsed (validation reads it) is the parse of this very
        # line: the cache entry is dropped whenever the To header changes.
        to = cache.get("to")
        if type(to) is NameAddr:
            has_tag = to.tag is not None
        elif type(to) is _Failed:
            has_tag = True
        else:
            try:
                has_tag = parse_name_addr(to_values[0], "To").tag is not None
            except SipParseError:
                has_tag = True  # never graft a tag onto something we cannot read
        if not has_tag:
            to_values = (f"{to_values[0]};tag={to_tag}",)
    out += [(_TO, v) for v in to_values]
    out += [(_CALL_ID, v) for v in raw("call-id")]
    out += [(_CSEQ, v) for v in raw("cseq")]
    if status == 100:
        out += [(_TIMESTAMP, v) for v in raw("timestamp")]
    out += [(canonical_name(name), str(value).strip(" \t")) for name, value in headers]
    fields = Headers._from_fields(out)
    fields._clean = True  # copied values were stripped when read, extra ones just now
    return Response(status, reason, fields, body)


def _as_text(value: NameAddr | Uri | str) -> str:
    if isinstance(value, NameAddr | str):
        return str(value)
    return f"<{value}>"


def make_request(
    method: str,
    uri: Uri | str,
    *,
    from_: NameAddr | Uri | str,
    to: NameAddr | Uri | str,
    call_id: str,
    cseq: int,
    via: Via | str | None = None,
    max_forwards: int = 70,
    contact: NameAddr | Uri | str | None = None,
    route: Iterable[NameAddr | str] = (),
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    """A new out-of-dialog or in-dialog request for a UAC core (§8.1.1).

    *via* may be omitted when the transport fills in the top Via (it knows its sent-by);
    *from_* must carry a tag for a new dialog (use :func:`new_tag`).
    """
    if not 0 <= cseq <= MAX_CSEQ:
        raise ValueError("CSeq out of range")
    fields: list[tuple[str, str]] = []
    if via is not None:
        fields.append(("Via", str(via)))
    fields.append(("Max-Forwards", str(max_forwards)))
    fields += [("Route", str(r)) for r in route]
    fields += [
        ("From", _as_text(from_)),
        ("To", _as_text(to)),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact is not None:
        fields.append(("Contact", _as_text(contact)))
    fields += list(headers)
    if content_type is not None:
        fields.append(("Content-Type", content_type))
    return Request(method, uri, fields, body)


def build_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """The ACK an INVITE client transaction sends for a 300-699 (§17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and top Via (hence the same branch) as the
    INVITE, To from the response (it carries the UAS's tag), the INVITE's Route set.
    """
    src = invite.headers
    number, _ = invite.cseq
    fields: list[tuple[str, str]] = []
    top = _first_element(src.raw_values("via"))
    if top is not None:
        fields.append(("Via", top))
    fields.append(("Max-Forwards", "70"))
    fields += [("Route", v) for v in src.raw_values("route")]
    fields += [("From", v) for v in src.raw_values("from")]
    fields += [("To", v) for v in response.headers.raw_values("to")]
    fields += [("Call-ID", v) for v in src.raw_values("call-id")]
    fields.append(("CSeq", f"{number} ACK"))
    return Request("ACK", invite.uri_text, fields)


def build_cancel(invite: Request) -> Request:
    """A CANCEL for *invite* (§9.1): same Request-URI, Call-ID, From, To, CSeq number and top
    Via as the INVITE, its Route set, and nothing that would need processing (no Require)."""
    src = invite.headers
    number, _ = invite.cseq
    fields: list[tuple[str, str]] = []
    top = _first_element(src.raw_values("via"))
    if top is not None:
        fields.append(("Via", top))
    fields.append(("Max-Forwards", "70"))
    fields += [("Route", v) for v in src.raw_values("route")]
    fields += [("From", v) for v in src.raw_values("from")]
    fields += [("To", v) for v in src.raw_values("to")]
    fields += [("Call-ID", v) for v in src.raw_values("call-id")]
    fields.append(("CSeq", f"{number} CANCEL"))
    return Request("CANCEL", invite.uri_text, fields)


def stamp_received(request: Request, host: str, port: int) -> None:
    """Record the packet's source, as a server transport must (§18.2.1, RFC 3581 §4).

    Recorded, not written: every response built from the request by :func:`make_response`
    carries ``received`` (when sent-by differs from the source address, and always when the
    client asked for ``rport``) and ``rport`` filled with the source port in its top Via.  The
    request's own Via line stays as it arrived, since this B2BUA never forwards a request;
    rewriting it on receipt cost a Via rebuild per request, retransmissions and requests that
    are never answered included.  Where a response is sent is the transport's business (it
    knows the source), so nothing reads the stamped Via back.
    """
    request.received_from = (host, port)


def _stamped_top_line(request: Request, line: str, host: str, port: int) -> str:
    """*line* (the request's first Via line) with the top value stamped; computed once per
    request and kept in the header cache, which drops it if the Via header changes."""
    cache = request.headers._cache
    stamped = cache.get("via:stamped")
    if stamped is not None:
        return stamped  # type: ignore[no-any-return]
    try:
        stamped = request.top_via.stamped(host, port)
    except SipParseError:
        return line  # an error response for an unreadable Via: copy it as it came
    if "," in line:
        # Several values on the top line: only the first is ours to stamp.
        stamped = ", ".join([stamped, *split_commas(line)[1:]])
    cache["via:stamped"] = stamped
    return stamped
