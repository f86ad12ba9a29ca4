"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25; RFC 3966), and any other absoluteURI.

Parsed URIs keep the exact text they came from, so serialising an unmodified message never
re-encodes a URI (re-encoding is where escaping bugs creep in).  Components are %-decoded once,
at parse time: ``sip:%75ser@host`` has ``user == "user"``, and ``;name=v%25%34%31`` has the
parameter value ``"v%41"`` (RFC 4475 ``esc01``).  Decoded bytes that are not UTF-8 are kept
with ``surrogateescape`` so NULs and binary user parts survive intact (RFC 4475 ``escnull``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from outbound_pro.sip.errors import SipParseError

_HEX = frozenset("0123456789abcdefABCDEF")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
# Character sets of RFC 3261 §25 ("%" admitted separately, as the start of an escape).
USER_SAFE = frozenset(_UNRESERVED + "&=+$,;?/")
PASSWORD_SAFE = frozenset(_UNRESERVED + "&=+$,")
PARAM_SAFE = frozenset(_UNRESERVED + "[]/:&+$")
HEADER_SAFE = frozenset(_UNRESERVED + "[]/?:+$")
_HOST_RE = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+)")
_TEL_SAFE = frozenset(_UNRESERVED + "&=+$,;?/:[]%#")
_ESC = r"%[0-9A-Fa-f]{2}"
_U = r"A-Za-z0-9\-_.!~*'()"
# The whole SIP-URI grammar after the scheme in one linear (possessive) pattern; the
# character-by-character parser below only runs to name what is wrong with a bad one.
_SIP_URI_RE = re.compile(
    rf"(?:((?:[{_U}&=+$,;?/]|{_ESC})++)(?::((?:[{_U}&=+$,]|{_ESC})*+))?+@)?+"
    r"(\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-._]++)(?::([0-9]{1,5}+))?+"
    rf"((?:;(?:[{_U}\[\]/:&+$]|{_ESC})++(?:=(?:[{_U}\[\]/:&+$]|{_ESC})++)?+)*+)"
    rf"(?:\?((?:[{_U}\[\]/?:+$]|{_ESC})++=(?:[{_U}\[\]/?:+$]|{_ESC})*+"
    rf"(?:&(?:[{_U}\[\]/?:+$]|{_ESC})++=(?:[{_U}\[\]/?:+$]|{_ESC})*+)*+))?+"
)
_OPAQUE_BAD = frozenset(' \t\r\n<>"')


def _check(text: str, safe: frozenset[str], what: str) -> None:
    """Reject characters the grammar does not allow; %-escapes must be two hex digits."""
    for i, ch in enumerate(text):
        if ch in safe:
            continue
        if ch == "%" and text[i + 1 : i + 2] in _HEX and text[i + 2 : i + 3] in _HEX:
            continue
        if ch == "%" and len(text) >= i + 3:
            raise SipParseError(400, f"Bad escape in URI {what}")
        raise SipParseError(400, f"Bad character in URI {what}")


def unescape(text: str) -> str:
    """Decode %HH escapes exactly once (the caller has already checked they are well formed)."""
    if "%" not in text:
        return text
    parts = text.split("%")
    out = bytearray(parts[0].encode("utf-8", "surrogateescape"))
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise SipParseError(400, "Bad escape in URI")
        out.append(int(part[:2], 16))
        out += part[2:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str]) -> str:
    """Percent-encode every octet of *text* outside *safe* (used when building URIs)."""
    if all(ch in safe for ch in text):
        return text
    out = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _parse_uri_params(text: str, checked: bool = True) -> dict[str, str | None]:
    """``;name[=value]`` list of a SIP URI (text after the first ``;``); names lower-cased
    after decoding.  *checked*: the characters were already validated by the URI regex."""
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not checked:
            _check(name, PARAM_SAFE, "parameter")
            if not name:
                raise SipParseError(400, "Empty URI parameter")
            if eq:
                _check(value, PARAM_SAFE, "parameter")
                if not value:
                    raise SipParseError(400, "Empty URI parameter value")
        if "%" in item:
            name, value = unescape(name), unescape(value)
        key = name.lower()
        if key not in params:
            params[key] = value if eq else None
    return params


class SipUri:
    """A ``sip:`` or ``sips:`` URI with decoded components.

    Instances are treated as values: build a new one rather than mutating a parsed one, since
    the original text is what gets serialised -- and since :func:`parse_uri` hands the same
    parsed instance to every message that carries the same URI text.
    """

    __slots__ = ("_raw", "headers", "host", "params", "password", "port", "scheme", "user")

    def __init__(
        self,
        host: str,
        *,
        scheme: str = "sip",
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        params: Mapping[str, str | None] | None = None,
        headers: Sequence[tuple[str, str]] = (),
        raw: str | None = None,
    ) -> None:
        self.scheme = scheme.lower()
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params: dict[str, str | None] = dict(params) if params else {}
        self.headers: list[tuple[str, str]] = list(headers)
        self._raw = raw

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> SipUri:
        """A copy with *params* set (``None`` value = flag parameter)."""
        merged = dict(self.params)
        merged.update(params)
        return SipUri(
            self.host,
            scheme=self.scheme,
            user=self.user,
            password=self.password,
            port=self.port,
            params=merged,
            headers=self.headers,
        )

    def without_headers(self) -> SipUri:
        """The URI minus its ``?headers`` part, as RFC 3261 §19.1.5 wants for Request-URIs."""
        if not self.headers:
            return self
        return SipUri(
            self.host,
            scheme=self.scheme,
            user=self.user,
            password=self.password,
            port=self.port,
            params=self.params,
        )

    def __str__(self) -> str:
        if self._raw is None:
            self._raw = self._build()
        return self._raw

    def _build(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(escape(self.user, USER_SAFE))
            if self.password is not None:
                out += [":", escape(self.password, PASSWORD_SAFE)]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for name, value in self.params.items():
            out += [";", escape(name, PARAM_SAFE)]
            if value is not None:
                out += ["=", escape(value, PARAM_SAFE)]
        for i, (name, value) in enumerate(self.headers):
            out += ["?" if i == 0 else "&", escape(name, HEADER_SAFE), "="]
            out.append(escape(value, HEADER_SAFE))
        return "".join(out)

    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        """URI comparison of RFC 3261 §19.1.4 (decoded, host case-insensitive, param rules)."""
        if not isinstance(other, SipUri):
            return NotImplemented
        if (
            self.scheme != other.scheme
            or self.user != other.user
            or self.password != other.password
            or self.host.lower() != other.host.lower()
            or self.port != other.port
        ):
            return False
        for name in ("user", "ttl", "method", "maddr", "transport"):
            mine, theirs = self.params.get(name), other.params.get(name)
            if (name in self.params) != (name in other.params):
                return False
            if mine is not None and theirs is not None and mine.lower() != theirs.lower():
                return False
        for name in self.params.keys() & other.params.keys():
            mine, theirs = self.params[name], other.params[name]
            if (mine or "").lower() != (theirs or "").lower():
                return False
        mine_h = {k.lower(): v for k, v in self.headers}
        theirs_h = {k.lower(): v for k, v in other.headers}
        return mine_h == theirs_h

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.host.lower(), self.port))


class TelUri:
    """A ``tel:`` URI (RFC 3966); the number is kept as written, visual separators and all."""

    __slots__ = ("_raw", "number", "params")

    def __init__(
        self, number: str, params: Mapping[str, str | None] | None = None, raw: str | None = None
    ) -> None:
        self.number = number
        self.params: dict[str, str | None] = dict(params) if params else {}
        self._raw = raw

    @property
    def scheme(self) -> str:
        return "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def __str__(self) -> str:
        if self._raw is None:
            params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
            self._raw = f"tel:{self.number}{params}"
        return self._raw

    def __repr__(self) -> str:
        return f"TelUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TelUri):
            return NotImplemented
        strip = str.maketrans("", "", "-.()")
        return self.number.translate(strip) == other.number.translate(strip) and {
            k: (v or "").lower() for k, v in self.params.items()
        } == {k: (v or "").lower() for k, v in other.params.items()}

    def __hash__(self) -> int:
        return hash(self.number.translate(str.maketrans("", "", "-.()")))


class AbsoluteUri:
    """Any other scheme (RFC 3261 absoluteURI): kept opaque, so it can be reported and refused
    (416) or carried in To/From without the parser having to understand it."""

    __slots__ = ("_raw", "opaque", "scheme")

    def __init__(self, scheme: str, opaque: str) -> None:
        self.scheme = scheme.lower()
        self.opaque = opaque
        self._raw = f"{scheme}:{opaque}"

    def __str__(self) -> str:
        return self._raw

    def __repr__(self) -> str:
        return f"AbsoluteUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AbsoluteUri):
            return NotImplemented
        return self.scheme == other.scheme and self.opaque == other.opaque

    def __hash__(self) -> int:
        return hash((self.scheme, self.opaque))


Uri = SipUri | TelUri | AbsoluteUri


_PARSED: dict[str, Uri] = {}
_PARSED_MAX = 4096
"""Parsed URIs by exact text.  The same few URIs arrive over and over (a trunk's Request-URI,
each peer's From/To/Contact), and validation parses four of them per request; parsed URIs are
values (see :class:`SipUri`), so one instance can serve every message that spells it the same
way.  The table is emptied when full, so hostile traffic with endless distinct URIs costs one
dict store each and cannot grow memory."""


def parse_uri(text: str) -> Uri:
    """Parse any URI allowed in a Request-URI or name-addr; raises :class:`SipParseError` (400).

    Successful parses are shared by text (see ``_PARSED``); errors are never cached.
    """
    uri = _PARSED.get(text)
    if uri is None:
        uri = _parse_uri(text)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[text] = uri
    return uri


def _parse_uri(text: str) -> Uri:
    colon = text.find(":")
    if colon <= 0:
        raise SipParseError(400, "Malformed URI (no scheme)")
    scheme = text[:colon]
    rest = text[colon + 1 :]
    lower = scheme.lower()
    if lower == "sip" or lower == "sips":
        return _parse_sip(lower, rest, text)
    if not _SCHEME_RE.fullmatch(scheme):
        raise SipParseError(400, "Malformed URI scheme")
    if not rest or any(ch in _OPAQUE_BAD for ch in rest):
        raise SipParseError(400, "Malformed URI")
    if lower == "tel":
        return _parse_tel(rest, text)
    return AbsoluteUri(scheme, rest)


def _parse_sip(scheme: str, rest: str, raw: str) -> SipUri:
    match = _SIP_URI_RE.fullmatch(rest)
    if match is None:
        return _parse_sip_slowly(scheme, rest, raw)
    user, password, host, port_text, param_text, header_text = match.groups()
    uri = SipUri.__new__(SipUri)
    uri.scheme = scheme
    uri.user = None if user is None else unescape(user) if "%" in user else user
    uri.password = None if password is None else unescape(password)
    uri.host = host
    if port_text is None:
        uri.port = None
    else:
        uri.port = int(port_text)
        if uri.port > 65535:
            raise SipParseError(400, "Bad port in SIP URI")
    uri.params = _parse_uri_params(param_text[1:]) if param_text else {}
    uri.headers = []
    if header_text:
        for item in header_text.split("&"):
            name, _, value = item.partition("=")
            uri.headers.append((unescape(name), unescape(value)))
    uri._raw = raw
    return uri


def _parse_sip_slowly(scheme: str, rest: str, raw: str) -> SipUri:
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user_text, has_pw, pw_text = userinfo.partition(":")
        if not user_text:
            raise SipParseError(400, "Empty user in SIP URI")
        _check(user_text, USER_SAFE, "user")
        user = unescape(user_text)
        if has_pw:
            _check(pw_text, PASSWORD_SAFE, "password")
            password = unescape(pw_text)
    match = _HOST_RE.match(rest)
    if match is None:
        raise SipParseError(400, "Bad host in SIP URI")
    host = match.group()
    pos = match.end()
    port: int | None = None
    if rest[pos : pos + 1] == ":":
        end = pos + 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[pos + 1 : end]
        if not digits or len(digits) > 5 or int(digits) > 65535 or not digits.isascii():
            raise SipParseError(400, "Bad port in SIP URI")
        port = int(digits)
        pos = end
    params: dict[str, str | None] = {}
    headers: list[tuple[str, str]] = []
    tail = rest[pos:]
    if tail:
        qmark = tail.find("?")
        param_text, header_text = (tail, "") if qmark < 0 else (tail[:qmark], tail[qmark + 1 :])
        if param_text:
            if param_text[0] != ";":
                raise SipParseError(400, "Bad host in SIP URI")
            params = _parse_uri_params(param_text[1:], checked=False)
        if qmark >= 0:
            for item in header_text.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq:
                    raise SipParseError(400, "Bad header in SIP URI")
                _check(name, HEADER_SAFE, "header")
                _check(value, HEADER_SAFE, "header")
                headers.append((unescape(name), unescape(value)))
    return SipUri(
        host,
        scheme=scheme,
        user=user,
        password=password,
        port=port,
        params=params,
        headers=headers,
        raw=raw,
    )


def _parse_tel(rest: str, raw: str) -> TelUri:
    number, _, param_text = rest.partition(";")
    if not number or any(ch not in _TEL_SAFE for ch in rest):
        raise SipParseError(400, "Malformed tel URI")
    params: dict[str, str | None] = {}
    if param_text:
        for item in param_text.split(";"):
            name, eq, value = item.partition("=")
            if not name:
                raise SipParseError(400, "Malformed tel URI parameter")
            params.setdefault(name.lower(), value if eq else None)
    return TelUri(number, params, raw)
