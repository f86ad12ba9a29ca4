"""Answering a carrier's digest challenge (RFC 3261 §22.2, RFC 8760) with trunk credentials.

The server side of digest lives in :mod:`outbound_pro.accounts.digest`; this is the client
side, which the B2BUA needs because carriers authenticate the INVITEs we send them.
"""

from __future__ import annotations

import hashlib
import secrets

from outbound_pro.accounts.digest import parse_auth_params

SUPPORTED = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def _h(algorithm: str, text: str) -> str:
    return SUPPORTED[algorithm](text.encode()).hexdigest()


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pick_challenge(values: list[str]) -> dict[str, str] | None:
    """The strongest Digest challenge we can answer (SHA-256 before MD5), as parameters."""
    best: dict[str, str] | None = None
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        params = parse_auth_params(rest)
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in SUPPORTED or "nonce" not in params:
            continue
        params["algorithm"] = algorithm
        if best is None or (algorithm == "SHA-256" and best["algorithm"] != "SHA-256"):
            best = params
    return best


def authorization(
    challenge: dict[str, str], *, method: str, uri: str, username: str, password: str
) -> str:
    """The ``Authorization``/``Proxy-Authorization`` value answering *challenge*."""
    algorithm = challenge["algorithm"]
    realm = challenge.get("realm", "")
    nonce = challenge["nonce"]
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    parts = [
        f"username={_q(username)}",
        f"realm={_q(realm)}",
        f"nonce={_q(nonce)}",
        f"uri={_q(uri)}",
        f"algorithm={algorithm}",
    ]
    qops = [q.strip().lower() for q in challenge.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce = secrets.token_hex(8)
        nc = "00000001"
        response = _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f"nc={nc}", f"cnonce={_q(cnonce)}"]
    else:
        response = _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    parts.append(f"response={_q(response)}")
    if "opaque" in challenge:
        parts.append(f"opaque={_q(challenge['opaque'])}")
    return "Digest " + ", ".join(parts)
