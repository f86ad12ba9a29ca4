"""Header names, the header container, and the structured header values (RFC 3261 §7.3, §20).

Laziness lives here.  A parsed message holds each header line as ``(key, name, raw value)``;
nothing is interpreted until asked for, and an interpreted value (a :class:`Via` list, a
:class:`NameAddr`, a CSeq pair) is cached in the container until that header is mutated.  So a
proxy-ish hot path that reads the top Via, the tags, Call-ID and CSeq never touches the SDP
content type, the Allow list or a 2 kB Identity header.

Comma splitting follows the grammar, not a guess: only headers whose ABNF is a ``#`` list
(Via, Contact, Route, Accept, Allow, ...) are split, and never inside a quoted string or
``<...>``.  Unknown extension headers, From/To, the authentication headers and Date are
single opaque values, because a comma inside them is data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.uri import SipUri, Uri, parse_uri

MAGIC_COOKIE = "z9hG4bK"
MAX_CSEQ = 2**32 - 1

# Canonical spelling of every header this stack knows, and the compact forms of RFC 3261 §7.3.3
# plus the extensions that registered one (RFC 3265/6665, 3515, 3892, 4028, 3841, 4474/8224).
_CANONICAL = [
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Resource-Priority",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-ID",
    "Content-Language",
    "Content-Length",
    "Content-Transfer-Encoding",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "Flow-Timer",
    "From",
    "Geolocation",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Join",
    "Max-Breadth",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Associated-URI",
    "P-Called-Party-ID",
    "P-Charging-Vector",
    "P-Early-Media",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-Sub",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Remote-Party-ID",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Resource-Priority",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Target-Dialog",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
]
_COMPACT = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
# lower-case name (long or compact) -> (lookup key, canonical spelling)
_BY_LOWER: dict[str, tuple[str, str]] = {n.lower(): (n.lower(), n) for n in _CANONICAL}
for _c, _n in _COMPACT.items():
    _BY_LOWER[_c] = (_n.lower(), _n)
# exact spellings seen on the wire -> same; lets the parser skip strip()/lower() for them
_FAST: dict[str, tuple[str, str]] = dict(_BY_LOWER)
for _n in _CANONICAL:
    _FAST[_n] = _BY_LOWER[_n.lower()]
for _c, _n in _COMPACT.items():
    _FAST[_c.upper()] = _BY_LOWER[_c]

# Headers whose grammar is a comma-separated list (RFC 3261 §20 and the extensions above).
LIST_HEADERS = frozenset(
    [
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "accept-resource-priority",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "diversion",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-associated-uri",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "reject-contact",
        "request-disposition",
        "require",
        "resource-priority",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    ]
)

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
# Python 3.11 possessive quantifiers (*+, ++) keep every pattern linear: a 64 kB hostile value
# cannot make the matcher backtrack.
_T = r"[A-Za-z0-9\-.!%*_+`'~]"
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*+"'
_PARAM = rf"[ \t]*+;[ \t]*+({_T}++)(?:[ \t]*+=[ \t]*+([A-Za-z0-9\-.!%*_+`'~:\[\]]++|{_QUOTED}))?+"
_TOKEN_RE = re.compile(rf"{_T}++")
_PARAM_RE = re.compile(_PARAM)
_PARAMS_RE = re.compile(rf"(?:{_PARAM})*+[ \t]*+")
# the common shape: no whitespace, no quoted strings
_SIMPLE_PARAMS_RE = re.compile(rf"(?:;{_T}++(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]++)?+)++")
_VIA_RE = re.compile(
    rf"({_T}++)[ \t]*+/[ \t]*+({_T}++)[ \t]*+/[ \t]*+({_T}++)[ \t]++"
    r"(\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-._]++)(?:[ \t]*+:[ \t]*+([0-9]++))?+(.*+)",
    re.DOTALL,
)
# the usual name-addr shapes; anything else takes the careful path in parse_name_addr
_NAME_ADDR_RE = re.compile(
    rf'(?:"((?:[^"\\\r\n]|\\[^\r\n])*+)"[ \t]*+|((?:{_T}++[ \t]*+)*+))<([^<>\s]++)>(.*+)',
    re.DOTALL,
)
_CSEQ_RE = re.compile(rf"([0-9]++)[ \t]++({_T}++)")
# Fast paths for the shapes nearly every message uses (no LWS around separators, no quoted
# parameter values).  One fullmatch validates the whole value; other shapes fall back.
_SIMPLE = rf"(?:;{_T}++(?:=[A-Za-z0-9\-.!%*_+`'~:\[\]]++)?+)*+"
_FAST_VIA_RE = re.compile(
    rf"SIP/2\.0/({_T}++) (\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-._]++)(?::([0-9]{{1,5}}+))?+({_SIMPLE})"
)
_FAST_NAME_ADDR_RE = re.compile(
    rf'(?:"((?:[^"\\\r\n]|\\[^\r\n])*+)" ?+|({_T}++(?: {_T}++)*+) ?+)?+<([^<>\s]++)>({_SIMPLE})'
)
_CALL_ID_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]++(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]++)?+"
)


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def header_key(name: str) -> str:
    """Lookup key for a header name: lower-case long form, so ``v``, ``VIA`` and ``Via`` agree."""
    known = _FAST.get(name)
    if known is not None:
        return known[0]
    lower = name.strip(" \t").lower()
    known = _BY_LOWER.get(lower)
    return known[0] if known is not None else lower


def canonical_name(name: str) -> tuple[str, str]:
    """``(key, spelling)`` for a header name from the wire; raises on a name that is no token."""
    known = _FAST.get(name)
    if known is not None:
        return known
    stripped = name.strip(" \t")
    known = _BY_LOWER.get(stripped.lower())
    if known is not None:
        return known
    if not _TOKEN_RE.fullmatch(stripped):
        raise SipParseError(400, "Malformed header name")
    return stripped.lower(), stripped


# ---------------------------------------------------------------------------------------------
# Lexical helpers: quoted strings, comma lists, parameter lists


def scan_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string opening at *start*; quoted-pairs are skipped."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return i + 1
        if ch == "\\":
            i += 2
            continue
        if ch == "\r" or ch == "\n":
            break
        i += 1
    raise SipParseError(400, "Unterminated quoted string")


def unquote(text: str) -> str:
    """Value of a quoted-string (quotes removed, quoted-pairs resolved); other text unchanged."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\" and i + 1 < len(inner):
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def quote(text: str) -> str:
    """A quoted-string carrying *text* (backslash and quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_commas(value: str) -> list[str]:
    """Split a list header's value at commas outside quoted strings and ``<...>``.

    Elements are stripped of LWS; empty elements are kept so callers can reject them where the
    grammar does (a Via of ``;;,;,,`` is RFC 4475 ``badinv01``).  An unterminated quote or
    ``<`` makes the rest one element: splitting never fails, the element's parser does.
    """
    if '"' not in value and "<" not in value:
        if "," not in value:
            return [value]
        return [part.strip(" \t") for part in value.split(",")]
    parts: list[str] = []
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == '"':
            try:
                i = scan_quoted(value, i)
            except SipParseError:
                break
            continue
        if ch == "<":
            close = value.find(">", i)
            if close < 0:
                break
            i = close + 1
            continue
        if ch == ",":
            parts.append(value[start:i].strip(" \t"))
            start = i + 1
        i += 1
    parts.append(value[start:].strip(" \t"))
    return parts


def _simple_params(text: str) -> dict[str, str | None]:
    """Parameters already validated by one of the fast regexes (no LWS, no quotes)."""
    if text.count(";") == 1:
        name, eq, value = text[1:].partition("=")
        return {name.lower(): value if eq else None}
    params: dict[str, str | None] = {}
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        name = name.lower()
        if name not in params:
            params[name] = value if eq else None
    return params


def parse_params(text: str, what: str) -> dict[str, str | None]:
    """``;name[=value]`` items (*text* starts at the first ``;``, LWS allowed around both).

    Names are lower-cased (parameter names are case-insensitive); values keep their case and,
    for quoted strings, their quotes, so they serialise back unchanged.  Empty names or values
    are errors: RFC 4475 ``badinv01`` (``;;;;``) must get a 400.  On a repeated name the first
    one counts.
    """
    if _SIMPLE_PARAMS_RE.fullmatch(text) is not None:
        return _simple_params(text)
    if _PARAMS_RE.fullmatch(text) is None:
        raise SipParseError(400, f"Malformed {what} parameters")
    items = _PARAM_RE.findall(text)
    if len(items) == 1:
        name, value = items[0]
        return {name.lower(): value or None}
    return {name.lower(): value or None for name, value in reversed(items)}


def format_params(params: Mapping[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


# ---------------------------------------------------------------------------------------------
# Via


class _TextValue:
    """Header values that are equal when their serialised text is equal.

    Comparing text rather than fields keeps equality exactly as strict as the wire form
    (parameter order and case included), which is what transaction matching needs.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class Via(_TextValue):
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;received=...;rport=...``."""

    __slots__ = ("_param_text", "_params", "_raw", "host", "port", "protocol", "transport")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: Mapping[str, str | None] | None = None,
        *,
        protocol: str = "SIP/2.0",
        raw: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.transport = transport.upper()
        self.host = host
        self.port = port
        self._params: dict[str, str | None] | None = dict(params) if params else {}
        self._param_text = ""
        self._raw = raw

    @property
    def params(self) -> dict[str, str | None]:
        """Parameters, names lower-cased; built on first use (the hot path reads only the
        branch, which :attr:`branch` finds without them)."""
        params = self._params
        if params is None:
            params = self._params = _simple_params(self._param_text)
        return params

    @params.setter
    def params(self, value: dict[str, str | None]) -> None:
        self._params = value

    @property
    def branch(self) -> str | None:
        if self._params is None:
            text = self._param_text
            if text.startswith(";branch="):
                end = text.find(";", 8)
                return text[8:] if end < 0 else text[8:end]
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by the server (RFC 3581), or None (also when it is not a
        port number: :func:`check_via` is where that is reported)."""
        value = self.params.get("rport")
        return int(value) if value and value.isdigit() and len(value) <= 5 else None

    @property
    def has_rport(self) -> bool:
        """Whether the client asked for symmetric response routing (RFC 3581 §3)."""
        return "rport" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def is_rfc3261_branch(self) -> bool:
        """A branch that starts with the magic cookie and has an id after it (§8.1.1.7).

        A bare ``z9hG4bK`` (RFC 4475 ``badbranch``) is treated as an RFC 2543 branch, so
        matching falls back to §17.2.3's older rules instead of colliding on one shared id.
        """
        branch = self.branch
        return branch is not None and len(branch) > 7 and branch.startswith(MAGIC_COOKIE)

    def with_params(self, **params: str | None) -> Via:
        merged = dict(self.params)
        merged.update(params)
        return Via(self.transport, self.host, self.port, merged, protocol=self.protocol)

    def stamped(self, host: str, port: int) -> str:
        """This value as a server transport records the packet's source in it (§18.2.1,
        RFC 3581 §4): ``received`` when sent-by differs from *host*, and always when the
        client asked for ``rport``, which is then filled with *port*.

        Parameters keep their order and spelling and ``received`` goes last.  The usual
        value (plain ``;name[=value]`` parameters, as the fast parser saw them) is edited as
        text; rebuilding a :class:`Via` for it was most of the cost of a response's Via.
        """
        params = self.params
        rport = "rport" in params
        bare = self.host[1:-1] if self.host.startswith("[") else self.host
        if not rport and bare == host:
            return str(self)
        text = self._param_text
        if text and "received" not in params and params.get("rport") is None:
            head = str(self)[: -len(text)]
            if rport:
                text = ";".join(
                    f"{item}={port}" if item.lower() == "rport" else item
                    for item in text.split(";")
                )
            return f"{head}{text};received={host}"
        updates = {"rport": str(port), "received": host} if rport else {"received": host}
        return str(self.with_params(**updates))

    def response_address(self, default_port: int = 5060) -> tuple[str, int]:
        """Where an unreliable transport sends the response (§18.2.2 and RFC 3581 §4).

        ``received`` wins over sent-by; ``rport`` with a value wins over the sent-by port.
        ``maddr`` (multicast) is ignored: this server never answers to multicast groups.
        """
        host = self.params.get("received") or self.host
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        port = self.rport or self.port or (5061 if self.transport == "TLS" else default_port)
        return host, port

    def __str__(self) -> str:
        if self._raw is None:
            port = "" if self.port is None else f":{self.port}"
            self._raw = f"{self.protocol}/{self.transport} {self.host}{port}" + format_params(
                self.params
            )
        return self._raw


def parse_via(text: str, what: str = "Via") -> Via:
    """One Via value.  The usual shape is handled in one regex and a short loop (this is the
    hottest parse in the stack); anything else goes through the general grammar."""
    match = _FAST_VIA_RE.fullmatch(text)
    if match is None:
        return _parse_via_generally(text)
    transport, host, port_text, param_text = match.groups()
    via = Via.__new__(Via)
    via._params = None if param_text else {}
    via._param_text = param_text
    if port_text is None:
        via.port = None
    else:
        port = int(port_text)
        if port > 65535:
            raise SipParseError(400, "Bad port in Via header")
        via.port = port
    via.protocol = "SIP/2.0"
    via.transport = transport.upper()
    via.host = host
    via._raw = text
    return via


def parse_top_via(value: str, what: str = "Via") -> Via:
    """The first value of a Via line that may hold several."""
    if "," not in value:
        return parse_via(value)
    value = split_commas(value)[0]
    if not value:
        raise SipParseError(400, "Empty Via value")
    return parse_via(value)


def _parse_via_generally(text: str) -> Via:
    match = _VIA_RE.fullmatch(text)
    if match is None:
        raise SipParseError(400, "Malformed Via header")
    name, version, transport, host, port_text, rest = match.groups()
    via = Via.__new__(Via)
    via._param_text = ""
    if rest:
        params = parse_params(rest, "Via")
        if params.get("branch", "") is None or "rport" in params or "ttl" in params:
            _check_via_params(params)
        via.params = params
    else:
        via.params = {}
    if port_text is None:
        via.port = None
    else:
        port = int(port_text)
        if port > 65535 or len(port_text) > 5:
            raise SipParseError(400, "Bad port in Via header")
        via.port = port
    via.protocol = "SIP/2.0" if name == "SIP" and version == "2.0" else f"{name.upper()}/{version}"
    via.transport = transport.upper()
    via.host = host
    via._raw = text
    return via


def _check_via_params(params: dict[str, str | None]) -> None:
    if "branch" in params and not params["branch"]:
        raise SipParseError(400, "Via branch has no value")
    rport = params.get("rport")
    if rport is not None and (not rport.isdigit() or len(rport) > 5 or int(rport) > 65535):
        raise SipParseError(400, "Bad rport in Via header")
    ttl = params.get("ttl")
    if ttl is not None and (not ttl.isdigit() or len(ttl) > 3 or int(ttl) > 255):
        raise SipParseError(400, "Bad ttl in Via header")


def check_via(via: Via) -> None:
    """The parameter values the grammar cannot check (rport and ttl ranges, an empty branch);
    the Via parser leaves them to validation so the hot path need not build the dict."""
    _check_via_params(via.params)


def parse_vias(values: Iterable[str]) -> list[Via]:
    vias: list[Via] = []
    for value in values:
        for item in split_commas(value):
            if not item:
                raise SipParseError(400, "Empty Via value")
            vias.append(parse_via(item))
    return vias


# ---------------------------------------------------------------------------------------------
# name-addr / addr-spec (From, To, Contact, Route, Record-Route, Reply-To, ...)


class NameAddr(_TextValue):
    """``[display-name] <uri>;params`` or ``uri;params``; the URI is parsed on first use.

    Deferring the URI keeps From/To tag reads cheap.  When the URI is finally read and is
    malformed, :class:`SipParseError` surfaces then; request validation reads it up front.
    """

    __slots__ = ("_param_text", "_params", "_raw", "_uri", "display_name", "uri_text")

    def __init__(
        self,
        uri: Uri | str,
        display_name: str | None = None,
        params: Mapping[str, str | None] | None = None,
        *,
        raw: str | None = None,
    ) -> None:
        if isinstance(uri, str):
            self.uri_text = uri
            self._uri: Uri | None = None
        else:
            self.uri_text = str(uri)
            self._uri = uri
        self.display_name = display_name
        self._params: dict[str, str | None] | None = dict(params) if params else {}
        self._param_text = ""
        self._raw = raw

    @property
    def params(self) -> dict[str, str | None]:
        """Header parameters (not URI parameters), names lower-cased; built on first use."""
        params = self._params
        if params is None:
            params = self._params = _simple_params(self._param_text)
        return params

    @params.setter
    def params(self, value: dict[str, str | None]) -> None:
        self._params = value

    @property
    def uri(self) -> Uri:
        if self._uri is None:
            self._uri = parse_uri(self.uri_text)
        return self._uri

    @property
    def sip_uri(self) -> SipUri | None:
        uri = self.uri
        return uri if isinstance(uri, SipUri) else None

    @property
    def tag(self) -> str | None:
        if self._params is None:
            text = self._param_text
            if text.startswith(";tag="):
                end = text.find(";", 5)
                return text[5:] if end < 0 else text[5:end]
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_params(tag=tag)

    def with_params(self, **params: str | None) -> NameAddr:
        merged = dict(self.params)
        merged.update(params)
        out = NameAddr(self.uri_text, self.display_name, merged)
        out._uri = self._uri
        return out

    def __str__(self) -> str:
        if self._raw is None:
            display = ""
            if self.display_name is not None:
                words = self.display_name.split(" ")
                plain = all(w and _TOKEN_RE.fullmatch(w) for w in words)
                display = (self.display_name if plain else quote(self.display_name)) + " "
            self._raw = f"{display}<{self.uri_text}>{format_params(self.params)}"
        return self._raw


def parse_name_addr(text: str, what: str) -> NameAddr:
    """Parse one name-addr or addr-spec value (already separated from any list)."""
    match = _FAST_NAME_ADDR_RE.fullmatch(text)
    if match is not None:
        quoted, display, uri_text, tail = match.groups()
        addr = NameAddr.__new__(NameAddr)
        if quoted is not None:
            display = unquote(f'"{quoted}"') if "\\" in quoted else quoted
        addr.display_name = display
        addr.uri_text = uri_text
        addr._uri = None
        addr._params = None if tail else {}
        addr._param_text = tail
        addr._raw = text
        return addr
    match = _NAME_ADDR_RE.fullmatch(text)
    if match is not None:
        quoted, plain, uri_text, tail = match.groups()
        if quoted is not None:
            display = unquote(f'"{quoted}"') if "\\" in quoted else quoted
        else:
            display = plain.rstrip(" \t") or None
        return NameAddr(uri_text, display, parse_params(tail, what) if tail else {}, raw=text)
    return _parse_name_addr_slowly(text, what)


def _parse_name_addr_slowly(text: str, what: str) -> NameAddr:
    """Every other shape, mostly malformed ones: find the problem and name it."""
    display: str | None = None
    if not text:
        raise SipParseError(400, f"Empty {what} header")
    if text[0] == '"':
        try:
            end = scan_quoted(text, 0)
        except SipParseError:
            raise SipParseError(400, f"Unterminated quoted string in {what} header") from None
        display = unquote(text[:end])
        rest = text[end:].lstrip(" \t")
        if not rest.startswith("<"):
            raise SipParseError(400, f"Malformed {what} header")
    else:
        lt = text.find("<")
        if lt < 0:
            return _parse_addr_spec(text, what)
        display_text = text[:lt].strip(" \t")
        if display_text:
            # RFC 4475 lwsdisp: a token display name glued to '<' is accepted; baddn's
            # unquoted commas and dots are not tokens and are refused.
            if not all(_TOKEN_RE.fullmatch(w) for w in display_text.split()):
                raise SipParseError(400, f"Malformed display name in {what} header")
            display = display_text
        rest = text[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError(400, f"Malformed {what} header (missing '>')")
    uri_text = rest[1:gt]
    if not uri_text or uri_text[0] in " \t" or uri_text[-1] in " \t":
        raise SipParseError(400, f"Malformed URI in {what} header")
    tail = rest[gt + 1 :]
    params = parse_params(tail, what) if tail.strip(" \t") else {}
    return NameAddr(uri_text, display, params, raw=text)


def _parse_addr_spec(text: str, what: str) -> NameAddr:
    semi = text.find(";")
    uri_text = (text if semi < 0 else text[:semi]).rstrip(" \t")
    # §20: a URI with ',', '?' or ';' must be in <>; here ';' already starts the header
    # params (RFC 4475 cparam01), and '?' means the sender forgot the brackets (regbadct).
    if not uri_text or any(ch in uri_text for ch in ' \t?,<>"'):
        raise SipParseError(400, f"Malformed {what} header")
    params = parse_params(text[semi:], what) if semi >= 0 else {}
    return NameAddr(uri_text, None, params, raw=text)


def parse_name_addrs(values: Iterable[str], what: str) -> list[NameAddr]:
    out: list[NameAddr] = []
    for value in values:
        for item in split_commas(value):
            if not item:
                raise SipParseError(400, f"Empty {what} value")
            out.append(parse_name_addr(item, what))
    return out


# ---------------------------------------------------------------------------------------------
# scalars


_COMMON_METHODS = frozenset(
    {
        *("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE"),
        *("NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"),
    }
)


def parse_cseq(value: str, what: str = "CSeq") -> tuple[int, str]:
    number, _, method = value.partition(" ")
    if method in _COMMON_METHODS and number.isdigit() and number.isascii() and len(number) < 10:
        return int(number), method
    match = _CSEQ_RE.fullmatch(value)
    if match is None:
        raise SipParseError(400, "Malformed CSeq header")
    number, method = match.groups()
    if len(number) > 10 or (seq := int(number)) > MAX_CSEQ:
        raise SipParseError(400, "CSeq number out of range")
    return seq, method


def parse_max_forwards(value: str, what: str = "Max-Forwards") -> int:
    if len(value) <= 3 and value.isdigit() and value.isascii():
        hops = int(value)
        if hops <= 255:
            return hops
    return parse_uint(value, what, 255)


def parse_uint(value: str, what: str, limit: int) -> int:
    """A delta-seconds or similar 1*DIGIT value no larger than *limit*."""
    value = value.strip(" \t")
    if not value.isdigit() or not value.isascii():
        raise SipParseError(400, f"Malformed {what} header")
    if len(value) > 20 or int(value) > limit:
        raise SipParseError(400, f"{what} value out of range")
    return int(value)


def check_call_id(value: str, what: str = "Call-ID") -> str:
    if _CALL_ID_RE.fullmatch(value) is None:
        raise SipParseError(400, "Malformed Call-ID header")
    return value


# ---------------------------------------------------------------------------------------------
# the container


_WS = (" ", "\t")


def _odd_name(name: str, sep: str) -> tuple[tuple[str, str] | None, str]:
    """``(info, "")`` for a header name spelled off the fast path, or ``(None, reason)``."""
    if not sep:
        return None, "Malformed header line (no colon)"
    try:
        return canonical_name(name), ""
    except SipParseError as err:
        return None, err.reason


Field = tuple[tuple[str, str], str]
"""One header line: ``((lookup key, canonical name), value)``."""


class Headers:
    """Ordered, case-insensitive, compact-form aware multi-map of header lines.

    A parsed message's header lines are split on the first header access, not by the parser,
    so a message that is only framed, counted or dropped never pays for it; values are
    stripped of surrounding whitespace when read, so the split itself does the least possible
    per line.  The first value per header (all the hot path reads) and, when asked for, all
    values per header are kept in lookup tables, and parsed forms of structured headers are
    cached per header until that header is changed.

    A malformed header line is skipped and remembered; :meth:`check` (which validation calls)
    and serialisation raise it, while the readers used to build error responses stay usable.
    """

    __slots__ = ("_cache", "_clean", "_error", "_fields", "_first", "_head", "_index", "_lines")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[Field] = [(canonical_name(n), str(v)) for n, v in items]
        self._first: dict[str, str] | None = None
        self._index: dict[str, tuple[str, ...]] | None = None
        self._cache: dict[str, Any] = {}
        self._lines: list[str] | None = None
        self._error: SipParseError | None = None
        self._clean = False
        self._head: bytes | None = None

    @classmethod
    def _from_fields(cls, fields: list[Field]) -> Headers:
        self = cls.__new__(cls)
        self._fields = fields
        self._first = None
        self._index = None
        self._cache = {}
        self._lines = None
        self._error = None
        self._clean = False
        self._head = None
        return self

    @classmethod
    def _from_lines(cls, lines: list[str], head: bytes | None = None) -> Headers:
        """Headers over raw lines (``lines[0]`` is the start line and is skipped); *head* is
        the raw header section, checked for bare CR/LF by :meth:`check`."""
        self = cls.__new__(cls)
        self._fields = []
        self._first = {}
        self._index = None
        self._cache = {}
        self._lines = lines
        self._error = None
        self._clean = False
        self._head = head
        return self

    # -- splitting raw lines

    def _scan(self) -> None:
        """Split the raw lines into fields in one tight pass.

        The pass runs bottom-up: storing into the first-value map then needs no "already
        there?" test (the last store is the first line), and a continuation line (§7.3.1) is
        met before the line it continues, so it is simply carried down to it.
        """
        lines = self._lines
        first = self._first
        assert lines is not None and first is not None and not self._fields
        fields: list[Field] = []
        append = fields.append
        fast = _FAST
        folded: str | None = None
        error: str | None = None
        for line in lines[:0:-1]:
            name, sep, value = line.partition(":")
            info = fast.get(name)
            if info is None or not sep:
                if line[:1] in _WS:
                    more = line.strip(" \t")
                    folded = more if folded is None else f"{more} {folded}"
                    continue
                info, problem = _odd_name(name, sep)
                if info is None:
                    error = problem
                    folded = None  # continued a line we could not read
                    continue
            if folded is not None:
                value = value.strip(" \t") + " " + folded
                folded = None
            append((info, value))
            first[info[0]] = value
        if folded is not None:
            error = "Continuation line before first header"
        if error is not None:
            self._bad(error)
        fields.reverse()
        self._fields = fields
        self._lines = None

    def _bad(self, reason: str) -> None:
        if self._error is None:
            self._error = SipParseError(400, reason)

    def _all(self) -> list[Field]:
        """Every field with its value stripped, splitting whatever raw lines remain."""
        if self._lines is not None:
            self._scan()
        if not self._clean:
            self._fields = [(info, value.strip(" \t")) for info, value in self._fields]
            self._clean = True
        return self._fields

    def check(self) -> None:
        """Raise the first malformed header line, if any (after splitting every line).

        This is also where a bare CR or LF is caught: lines are split at CRLF only, so one
        would sit inside a value, where a peer that splits at LF would see a header we did not.
        Values are left as split (see :meth:`_all`): validation only needs the lines read.
        """
        if self._lines is not None:
            self._scan()
        head = self._head
        if head is not None:
            lines = head.count(b"\r\n")
            if head.count(b"\n") != lines or head.count(b"\r") != lines:
                self._bad("Bare CR or LF in header section")
            self._head = None
        if self._error is not None:
            raise SipParseError(self._error.status, self._error.reason)

    # -- reading

    def first(self, key: str) -> str | None:
        """The first line's value for lookup *key* (see :func:`header_key`)."""
        first = self._first
        if first is None:
            first = self._first = {f[0][0]: f[1] for f in reversed(self._fields)}
        value = first.get(key)
        if value is None and self._lines is not None:
            self._scan()
            value = first.get(key)
        return None if value is None else value.strip(" \t")

    def raw_values(self, name: str) -> list[str]:
        """Every header line's value for *name*, unsplit, in order."""
        return list(self._raw_key(header_key(name)))

    def count(self, name: str) -> int:
        """Number of header lines called *name*."""
        return len(self._raw_key(header_key(name)))

    def _raw_key(self, key: str) -> tuple[str, ...]:
        """Every line's value for lookup *key*, in order.

        Tuples, not lists: a message lives as long as its transaction, and tuples of strings
        are untracked by the cycle collector, while one list per header name per live message
        made the generation-2 collections a large share of the receive path's CPU.

        When no header name repeats (a REGISTER or an in-dialog request nearly always), the
        first-value map already holds every line, and the index is made from it in one
        comprehension instead of a loop over stripped copies of every field.
        """
        index = self._index
        if index is None:
            if self._lines is not None:
                self._scan()
            first = self._first
            if first is not None and len(first) == len(self._fields):
                index = {k: (v.strip(" \t"),) for k, v in first.items()}
            else:
                index = {}
                for info, value in self._all():
                    values = index.get(info[0])
                    index[info[0]] = (value,) if values is None else (*values, value)
            self._index = index
        return index.get(key, ())

    def get(self, name: str) -> str | None:
        """The header's value: the first line's, or for a list header every line joined with
        ", " (§7.3.1 makes the two spellings equivalent)."""
        key = header_key(name)
        values = self._raw_key(key)
        if not values:
            return None
        if len(values) == 1 or key not in LIST_HEADERS:
            return values[0]
        return ", ".join(values)

    def get_all(self, name: str) -> list[str]:
        """All values of *name*, comma-split where the header's grammar is a list."""
        key = header_key(name)
        values = self._raw_key(key)
        if key not in LIST_HEADERS:
            return list(values)
        out: list[str] = []
        for value in values:
            out.extend(item for item in split_commas(value) if item)
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.first(header_key(name)) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for info, value in self._all():
            yield info[1], value

    def __len__(self) -> int:
        return len(self._all())

    def items(self) -> list[tuple[str, str]]:
        return [(info[1], value) for info, value in self._all()]

    # -- changing

    def _changed(self, key: str) -> None:
        self._index = None
        self._first = None
        self._cache.pop(key, None)
        if key == "via":
            self._cache.pop("via:top", None)
            self._cache.pop("via:stamped", None)

    def add(self, name: str, value: object) -> None:
        info = canonical_name(name)
        self._all().append((info, str(value)))
        self._changed(info[0])

    def prepend(self, name: str, value: object) -> None:
        """Insert *value* above any existing *name* lines (the top Via position)."""
        info = canonical_name(name)
        fields = self._all()
        for i, (other, _) in enumerate(fields):
            if other[0] == info[0]:
                fields.insert(i, (info, str(value)))
                break
        else:
            fields.insert(0, (info, str(value)))
        self._changed(info[0])

    def set(self, name: str, value: object) -> None:
        """Replace every *name* line with one line, where the first one was (else at the end)."""
        info = canonical_name(name)
        key = info[0]
        new: list[Field] = []
        placed = False
        for field in self._all():
            if field[0][0] == key:
                if not placed:
                    new.append((info, str(value)))
                    placed = True
            else:
                new.append(field)
        if not placed:
            new.append((info, str(value)))
        self._fields = new
        self._changed(key)

    def remove(self, name: str) -> int:
        key = header_key(name)
        fields = self._all()
        self._fields = [f for f in fields if f[0][0] != key]
        self._changed(key)
        return len(fields) - len(self._fields)

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first list element of *name* (e.g. our own Via on a response)."""
        key = header_key(name)
        fields = self._all()
        for i, (info, value) in enumerate(fields):
            if info[0] != key:
                continue
            items = split_commas(value) if key in LIST_HEADERS else [value]
            first, rest = items[0], [item for item in items[1:] if item]
            if rest:
                fields[i] = (info, ", ".join(rest))
            else:
                del fields[i]
            self._changed(key)
            return first
        return None

    def copy(self) -> Headers:
        return Headers._from_fields(list(self._all()))

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"
