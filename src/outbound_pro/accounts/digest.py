"""HTTP Digest for SIP (RFC 7616, RFC 8760 for SIP, RFC 3261 §22), sans-I/O.

No sockets, no clock, no store: the caller passes the time, the request method and URI, and
the HA1 it looked up. That keeps the registrar testable byte for byte and lets the same code
serve REGISTER and (later) INVITE authentication.

Nonces are stateless: ``base64url(timestamp || random || HMAC-SHA256(secret, timestamp ||
random || realm)[:16])``. Verifying one needs only the server secret, so a restart, or many
thousands of phones, cost no memory. What does need memory is replay protection: the highest
nonce-count seen per nonce is kept in a bounded LRU. A nonce that fell out of that memory, or a
nonce-count that does not increase, is answered with ``stale=true`` so an honest client simply
retries with a fresh nonce while a replayed request gets nothing. Clients that ignore
``qop`` (RFC 2069 style, e.g. pyVoIP) are accepted with MD5 only and their nonce is single use.

An unknown user is verified against a dummy HA1 so the answer (and its timing) is the same as
for a wrong password: IDs cannot be enumerated (SIPVicious ``svwar`` sees one behaviour).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

ALGORITHMS = ("SHA-256", "MD5")  # offered in this order: the stronger one first (RFC 8760 §2.4)
_DUMMY_HA1 = {"MD5": "0" * 32, "SHA-256": "0" * 64}
_MAX_OPAQUES = 4096  # realms whose opaque value is kept (one per contract domain in practice)
_SALT_POOL = 4096  # random bytes fetched at once for nonces: one getrandom per 512 challenges


def _h(algorithm: str, data: str) -> str:
    if algorithm == "MD5":
        return hashlib.md5(data.encode(), usedforsecurity=False).hexdigest()
    return hashlib.sha256(data.encode()).hexdigest()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ParseError(ValueError):
    """Authorization header that is not a well-formed Digest credential."""


# One ``key=value`` item of an auth-param list and the separators after it, in groups (whole
# item, key, quoted value, plain value). A value is a quoted string (backslash escapes anything),
# a run up to the next comma or blank, or empty, but not when a quote follows: that is an
# unterminated quoted string. Possessive quantifiers keep matching linear on a hostile header.
_ITEM_RE = re.compile(
    r"(([^= \t,\r\n][^= \t,]*+)[ \t]*+=[ \t]*+"
    r'(?:"((?:[^"\\]++|\\[\s\S])*+)"|([^", \t][^, \t]*+)|(?!"))[ \t\r\n,]*+)'
)
_KEY_RE = re.compile(r"[^= \t,]++[ \t]*+=")
_ESCAPE = re.compile(r"\\([\s\S])")
_SEPARATORS = " \t\r\n,"


def parse_auth_params(text: str) -> dict[str, str]:
    """``a=b, c="d, e"`` → ``{"a": "b", "c": "d, e"}`` (keys lower-cased, quotes removed).

    Commas between items may be missing or doubled, as some phones send them; a duplicate key,
    a key without ``=`` or an unterminated quoted string is a `ParseError`. A well-formed list
    is one ``findall``: when the items it found cover the text after any leading separators,
    they are the items a left-to-right parse would find. The character loop this replaced was
    the largest single cost of an authenticated REGISTER. Anything else goes to
    `_parse_auth_params_stepwise`, which says what is wrong.
    """
    items = _ITEM_RE.findall(text)
    if sum(len(item[0]) for item in items) == len(text.lstrip(_SEPARATORS)):
        params = {
            key.lower(): (_ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted)
            if quoted
            else plain
            for _, key, quoted, plain in items
        }
        if len(params) == len(items):
            return params
    return _parse_auth_params_stepwise(text)


def _parse_auth_params_stepwise(text: str) -> dict[str, str]:
    """`parse_auth_params` one item at a time, raising `ParseError` where the list breaks."""
    params: dict[str, str] = {}
    n = len(text)
    i = _skip_separators(text, 0)
    while i < n:
        m = _ITEM_RE.match(text, i)
        if m is None:
            if _KEY_RE.match(text, i) is None:
                raise ParseError(f"expected key=value at {i}")
            raise ParseError("unterminated quoted string")
        _, key, quoted, plain = m.groups()
        if quoted is not None:
            value = _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        else:
            value = plain or ""
        key = key.lower()
        if key in params:
            raise ParseError(f"duplicate parameter {key}")
        params[key] = value
        i = m.end()
    return params


def _skip_separators(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _SEPARATORS:
        i += 1
    return i


class Credentials(NamedTuple):
    """The parsed ``Authorization: Digest ...`` header (a tuple: one is built per
    authenticated request, and a frozen dataclass's ``__init__`` cost several times more)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str | None
    nc: str | None
    cnonce: str | None
    opaque: str | None


def parse_authorization(value: str) -> Credentials | None:
    """None when the scheme is not Digest; `ParseError` when it is but is malformed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    p = parse_auth_params(rest)
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
    if missing:
        raise ParseError(f"missing {', '.join(missing)}")
    algorithm = p.get("algorithm", "MD5").upper()
    qop = p.get("qop")
    if qop is not None and ("nc" not in p or "cnonce" not in p):
        raise ParseError("qop without nc and cnonce")
    return Credentials(
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"].lower(),
        algorithm=algorithm,
        qop=qop.lower() if qop else None,
        nc=p.get("nc"),
        cnonce=p.get("cnonce"),
        opaque=p.get("opaque"),
    )


class Outcome(StrEnum):
    OK = "ok"
    STALE = "stale"  # right password, nonce expired or reused: challenge with stale=true
    FAILED = "failed"  # wrong password, unknown user, forged nonce: plain new challenge


class Verdict(NamedTuple):
    outcome: Outcome
    reason: str


class DigestAuthenticator:
    """Challenge and verify for many realms with one server secret."""

    def __init__(
        self,
        secret: bytes,
        *,
        nonce_ttl: float = 300.0,
        max_tracked_nonces: int = 100_000,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the digest secret must be at least 16 bytes")
        self._secret = secret
        self.nonce_ttl = nonce_ttl
        self.max_tracked_nonces = max_tracked_nonces
        self._random = random_bytes
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()
        # Issue time of the newest nonce ever evicted from `_seen`: an untracked nonce issued
        # at or before it may have been used already, so it is refused as stale.
        self._forgotten_until = -float("inf")
        self._opaques: dict[str, str] = {}
        self._pool = b""
        self._pool_at = 0

    # -- nonces ---------------------------------------------------------------------------

    def _mac(self, payload: bytes, realm: str) -> bytes:
        # hmac.digest is the one-shot C path; hmac.new builds a Python HMAC object per call.
        return hmac.digest(self._secret, payload + realm.encode(), "sha256")[:16]

    def _salt(self) -> bytes:
        """Eight fresh random bytes, cut from a pool refilled from *random_bytes*: a system
        call per challenge was a measurable share of answering a REGISTER."""
        at = self._pool_at
        if at + 8 > len(self._pool):
            self._pool, at = self._random(_SALT_POOL), 0
        self._pool_at = at + 8
        return self._pool[at : at + 8]

    def make_nonce(self, realm: str, now: float) -> str:
        payload = struct.pack(">d", now) + self._salt()
        return base64.urlsafe_b64encode(payload + self._mac(payload, realm)).decode().rstrip("=")

    def nonce_time(self, nonce: str, realm: str) -> float | None:
        """When the nonce was issued, or None when it was not issued by us for *realm*."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return None
        if len(raw) != 32:
            return None
        payload, mac = raw[:16], raw[16:]
        if not hmac.compare_digest(mac, self._mac(payload, realm)):
            return None
        return float(struct.unpack(">d", payload[:8])[0])

    def opaque(self, realm: str) -> str:
        """Fixed per realm (it only tells the client to echo it), so it is kept, not redone for
        each challenge; realms come from requests, so the memory is bounded."""
        value = self._opaques.get(realm)
        if value is None:
            if len(self._opaques) >= _MAX_OPAQUES:
                self._opaques.clear()
            value = hmac.digest(self._secret, b"opaque:" + realm.encode(), "sha256").hex()[:32]
            self._opaques[realm] = value
        return value

    def challenge(self, realm: str, now: float, *, stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values: SHA-256 first, then MD5, sharing one nonce."""
        nonce = self.make_nonce(realm, now)
        opaque = self.opaque(realm)
        tail = ", stale=true" if stale else ""
        return [
            f"Digest realm={_quote(realm)}, nonce={_quote(nonce)}, opaque={_quote(opaque)}, "
            f'algorithm={alg}, qop="auth"{tail}'
            for alg in ALGORITHMS
        ]

    # -- verification ---------------------------------------------------------------------

    def expected_response(self, creds: Credentials, method: str, ha1: str) -> str:
        ha2 = _h(creds.algorithm, f"{method}:{creds.uri}")
        if creds.qop is None:
            return _h(creds.algorithm, f"{ha1}:{creds.nonce}:{ha2}")
        return _h(
            creds.algorithm, f"{ha1}:{creds.nonce}:{creds.nc}:{creds.cnonce}:{creds.qop}:{ha2}"
        )

    def verify(
        self,
        creds: Credentials,
        *,
        method: str,
        realm: str,
        ha1: str | None,
        now: float,
        request_uri: str | None = None,
    ) -> Verdict:
        """Check *creds* against *ha1* (None for an unknown user: same work, same answer)."""
        if creds.algorithm not in ALGORITHMS:
            return Verdict(Outcome.FAILED, f"algorithm {creds.algorithm} not offered")
        if creds.qop not in (None, "auth"):
            return Verdict(Outcome.FAILED, f"qop {creds.qop} not offered")
        if creds.qop is None and creds.algorithm != "MD5":
            return Verdict(Outcome.FAILED, "qop is required with SHA-256")
        if creds.realm != realm:
            return Verdict(Outcome.FAILED, "wrong realm")
        if creds.opaque is not None and not hmac.compare_digest(creds.opaque, self.opaque(realm)):
            return Verdict(Outcome.FAILED, "wrong opaque")
        if request_uri is not None and not _same_uri(creds.uri, request_uri):
            return Verdict(Outcome.FAILED, "digest uri does not match the Request-URI")
        issued = self.nonce_time(creds.nonce, realm)
        if issued is None:
            return Verdict(Outcome.FAILED, "nonce not issued here")
        nc = 0
        if creds.qop is not None:
            try:
                nc = int(creds.nc or "", 16)
            except ValueError:
                return Verdict(Outcome.FAILED, "bad nc")
            if nc < 1:
                return Verdict(Outcome.FAILED, "bad nc")
        known = ha1 is not None
        expected = self.expected_response(creds, method, ha1 or _DUMMY_HA1[creds.algorithm])
        if not hmac.compare_digest(expected, creds.response) or not known:
            return Verdict(Outcome.FAILED, "wrong response")
        if issued > now + 5 or now - issued > self.nonce_ttl:
            return Verdict(Outcome.STALE, "nonce expired")
        entry = self._seen.get(creds.nonce)
        last = entry[0] if entry is not None else None
        if last is None and issued <= self._forgotten_until:
            return Verdict(Outcome.STALE, "nonce no longer tracked")
        if creds.qop is None:
            if last is not None:
                return Verdict(Outcome.STALE, "nonce reused without qop")
        elif (last is None and nc != 1) or (last is not None and nc <= last):
            return Verdict(Outcome.STALE, "nonce count replayed or unknown")
        self._seen[creds.nonce] = (nc, issued)
        self._seen.move_to_end(creds.nonce)
        while len(self._seen) > self.max_tracked_nonces:
            _, (_, evicted_issued) = self._seen.popitem(last=False)
            self._forgotten_until = max(self._forgotten_until, evicted_issued)
        return Verdict(Outcome.OK, "ok")

    @property
    def tracked_nonces(self) -> int:
        return len(self._seen)


def _same_uri(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()
