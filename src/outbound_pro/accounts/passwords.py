"""Password hashing for web logins (scrypt) and HA1 values for SIP digest.

Web passwords use scrypt from ``cryptography`` because it is memory-hard: each guess needs
``128 * n * r`` bytes (32 MiB with the defaults n=2**15, r=8, p=1), which makes GPU and ASIC
cracking of a stolen database expensive while one login costs tens of milliseconds. The
encoded hash carries its parameters (``scrypt$n$r$p$salt$hash``), so the defaults can be
raised later and old hashes still verify. Hashing is CPU-bound: async callers must run
`hash_password` / `verify_password` in an executor (``loop.run_in_executor``), never on the
event loop.

SIP digest cannot use a slow hash (the server needs H(user:realm:password) itself), so for SIP
only the HA1 values are stored, per algorithm (MD5, SHA-256; RFC 7616/8760), never the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt


@dataclass(frozen=True)
class ScryptParams:
    n: int = 2**15
    r: int = 8
    p: int = 1
    length: int = 32
    salt_bytes: int = 16


DEFAULT_PARAMS = ScryptParams()
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def hash_password(password: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    salt = secrets.token_bytes(params.salt_bytes)
    kdf = Scrypt(salt=salt, length=params.length, n=params.n, r=params.r, p=params.p)
    key = kdf.derive(password.encode("utf-8"))
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of *password* against an encoded hash; False for malformed hashes."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        if len(expected) < 16 or len(_unb64(salt)) < 8:
            return False  # a truncated or corrupted hash must never match anything
        kdf = Scrypt(salt=_unb64(salt), length=len(expected), n=int(n), r=int(r), p=int(p))
        kdf.verify(password.encode("utf-8"), expected)
    except (ValueError, InvalidKey):
        return False
    return True


_dummy_hashes: dict[ScryptParams, str] = {}


def burn_verify(password: str, params: ScryptParams = DEFAULT_PARAMS) -> bool:
    """Spend the same time as a real verification and fail.

    Used for unknown login names so a timing difference does not reveal which IDs exist.
    """
    if params not in _dummy_hashes:
        _dummy_hashes[params] = hash_password(secrets.token_urlsafe(16), params)
    verify_password(password, _dummy_hashes[params])
    return False


def generate_password(length: int = 16) -> str:
    """A random password without look-alike characters (it is read from a screen once)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def check_password_strength(password: str) -> str | None:
    """Why *password* is unacceptable, or None. Length is what matters (NIST SP 800-63B)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


def ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """H(username ":" realm ":" password) in lower-case hex (RFC 7616 §3.4.2)."""
    data = f"{username}:{realm}:{password}".encode()
    if algorithm.upper() == "MD5":
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    if algorithm.upper() == "SHA-256":
        return hashlib.sha256(data).hexdigest()
    raise ValueError(f"unsupported digest algorithm {algorithm!r}")


@dataclass(frozen=True)
class PreparedPassword:
    """A password already run through scrypt (in an executor), ready for the service.

    ``plain`` is kept only so the service can derive the cheap SIP HA1 values and show a
    generated password once; it is never stored or logged.
    """

    plain: str
    password_hash: str
    generated: bool

    def __repr__(self) -> str:
        return f"PreparedPassword(generated={self.generated})"


def prepare_password(plain: str | None, params: ScryptParams = DEFAULT_PARAMS) -> PreparedPassword:
    """Hash *plain*, or a freshly generated password when None. CPU-bound: use an executor."""
    generated = plain is None
    value = generate_password() if plain is None else plain
    return PreparedPassword(value, hash_password(value, params), generated)


def token_hash(token: str) -> str:
    """Session tokens are stored as SHA-256: they are random, so no slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
