from __future__ import annotations

import hashlib

import pytest

from outbound_pro.accounts.digest import (
    Credentials,
    DigestAuthenticator,
    Outcome,
    ParseError,
    parse_auth_params,
    parse_authorization,
)
from outbound_pro.accounts.passwords import ha1

REALM = "example.op.local"
URI = "sip:example.op.local"
SECRET = b"s" * 32


def H(alg: str, s: str) -> str:
    f = hashlib.md5 if alg == "MD5" else hashlib.sha256
    return f(s.encode()).hexdigest()


def answer(
    challenge: str,
    *,
    user: str = "booth01",
    password: str = "pw-123456",
    alg: str = "SHA-256",
    nc: int = 1,
    cnonce: str = "abc",
    qop: bool = True,
    uri: str = URI,
    realm: str = REALM,
) -> str:
    p = parse_auth_params(challenge.split(" ", 1)[1])
    h1 = H(alg, f"{user}:{realm}:{password}")
    h2 = H(alg, f"REGISTER:{uri}")
    if qop:
        resp = H(alg, f"{h1}:{p['nonce']}:{nc:08x}:{cnonce}:auth:{h2}")
        extra = f', qop=auth, nc={nc:08x}, cnonce="{cnonce}"'
    else:
        resp = H(alg, f"{h1}:{p['nonce']}:{h2}")
        extra = ""
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{p["nonce"]}", uri="{uri}", '
        f'response="{resp}", algorithm={alg}, opaque="{p["opaque"]}"{extra}'
    )


def verify(
    auth: DigestAuthenticator,
    header: str,
    *,
    now: float = 1000.0,
    password: str = "pw-123456",
    known: bool = True,
):
    creds = parse_authorization(header)
    assert creds is not None
    alg = creds.algorithm if creds.algorithm in ("MD5", "SHA-256") else "MD5"
    stored = ha1("booth01", REALM, password, alg) if known else None
    return auth.verify(creds, method="REGISTER", realm=REALM, ha1=stored, now=now, request_uri=URI)


@pytest.fixture
def auth() -> DigestAuthenticator:
    return DigestAuthenticator(SECRET, nonce_ttl=300)


def test_challenge_offers_sha256_then_md5_with_one_nonce(auth: DigestAuthenticator) -> None:
    values = auth.challenge(REALM, 1000.0)
    assert len(values) == 2
    first, second = (parse_auth_params(v.split(" ", 1)[1]) for v in values)
    assert first["algorithm"] == "SHA-256" and second["algorithm"] == "MD5"
    assert first["nonce"] == second["nonce"]
    assert first["qop"] == "auth" and first["realm"] == REALM and "stale" not in first
    assert "stale=true" in auth.challenge(REALM, 1000.0, stale=True)[0]


@pytest.mark.parametrize("alg", ["SHA-256", "MD5"])
def test_correct_response_is_accepted(auth: DigestAuthenticator, alg: str) -> None:
    header = answer(auth.challenge(REALM, 1000.0)[0], alg=alg)
    assert verify(auth, header).outcome is Outcome.OK


def test_rfc2069_style_md5_without_qop_is_single_use(auth: DigestAuthenticator) -> None:
    header = answer(auth.challenge(REALM, 1000.0)[0], alg="MD5", qop=False)
    assert verify(auth, header).outcome is Outcome.OK
    assert verify(auth, header).outcome is Outcome.STALE
    sha = answer(auth.challenge(REALM, 1000.0)[0], alg="SHA-256", qop=False)
    assert verify(auth, sha).outcome is Outcome.FAILED


def test_wrong_password_and_unknown_user_look_the_same(auth: DigestAuthenticator) -> None:
    ch = auth.challenge(REALM, 1000.0)[0]
    wrong = verify(auth, answer(ch, password="nope-nope"))
    unknown = verify(auth, answer(ch), known=False)
    assert wrong == unknown
    assert wrong.outcome is Outcome.FAILED


def test_expired_nonce_with_right_password_is_stale(auth: DigestAuthenticator) -> None:
    header = answer(auth.challenge(REALM, 1000.0)[0])
    assert verify(auth, header, now=1000.0 + 301).outcome is Outcome.STALE
    # wrong password on an expired nonce: plain failure, not stale
    bad = answer(auth.challenge(REALM, 1000.0)[0], password="wrong-wrong")
    assert verify(auth, bad, now=1000.0 + 301).outcome is Outcome.FAILED


def test_nonce_from_the_future_is_stale(auth: DigestAuthenticator) -> None:
    header = answer(auth.challenge(REALM, 2000.0)[0])
    assert verify(auth, header, now=1000.0).outcome is Outcome.STALE


def test_nonce_count_replay_is_refused(auth: DigestAuthenticator) -> None:
    ch = auth.challenge(REALM, 1000.0)[0]
    assert verify(auth, answer(ch, nc=1)).outcome is Outcome.OK
    assert verify(auth, answer(ch, nc=1)).outcome is Outcome.STALE  # replay
    assert verify(auth, answer(ch, nc=2)).outcome is Outcome.OK
    assert verify(auth, answer(ch, nc=2, cnonce="x")).outcome is Outcome.STALE


def test_unknown_nonce_must_start_at_one(auth: DigestAuthenticator) -> None:
    ch = auth.challenge(REALM, 1000.0)[0]
    assert verify(auth, answer(ch, nc=5)).outcome is Outcome.STALE


def test_nonce_memory_is_bounded() -> None:
    auth = DigestAuthenticator(SECRET, max_tracked_nonces=3)
    headers = [answer(auth.challenge(REALM, 1000.0 + i)[0]) for i in range(5)]
    for h in headers:
        assert verify(auth, h, now=1010).outcome is Outcome.OK
    assert auth.tracked_nonces == 3
    # the first nonce was forgotten: its next use is refused as stale, never accepted twice
    assert verify(auth, headers[0], now=1010).outcome is Outcome.STALE
    # a nonce issued after the forgotten ones is still fine
    fresh = answer(auth.challenge(REALM, 1005.0)[0])
    assert verify(auth, fresh, now=1010).outcome is Outcome.OK


def test_nonce_is_bound_to_secret_and_realm(auth: DigestAuthenticator) -> None:
    other = DigestAuthenticator(b"t" * 32)
    forged = answer(other.challenge(REALM, 1000.0)[0])
    assert verify(auth, forged).outcome is Outcome.FAILED
    ch = auth.challenge("other.realm", 1000.0)[0]
    creds = parse_authorization(answer(ch, realm=REALM))
    assert creds is not None
    assert auth.nonce_time(creds.nonce, REALM) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.replace(f'realm="{REALM}"', 'realm="x.local"'), "realm"),
        (lambda h: h.replace("algorithm=SHA-256", "algorithm=SHA-512-256"), "algorithm"),
        (lambda h: h.replace(URI, "sip:elsewhere"), "uri"),
        (lambda h: h.replace('opaque="', 'opaque="x'), "opaque"),
        (lambda h: h.replace("qop=auth", "qop=auth-int"), "qop"),
    ],
)
def test_mismatches_fail(auth: DigestAuthenticator, mutate, reason: str) -> None:
    header = mutate(answer(auth.challenge(REALM, 1000.0)[0]))
    v = verify(auth, header)
    assert v.outcome is Outcome.FAILED
    assert reason in v.reason


def test_parsing() -> None:
    assert parse_authorization("Basic Zm9vOmJhcg==") is None
    creds = parse_authorization(
        'Digest username="a\\"b", realm="r", nonce="n", uri="sip:x", response="ABC",'
        ' qop=auth, nc=00000001, cnonce="c, d"'
    )
    assert isinstance(creds, Credentials)
    assert creds.username == 'a"b' and creds.cnonce == "c, d" and creds.response == "abc"
    assert creds.algorithm == "MD5"
    for bad in (
        'Digest username="a',
        'Digest username="a", realm="r"',
        'Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x"',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth',
        "Digest =x",
    ):
        with pytest.raises(ParseError):
            parse_authorization(bad)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        DigestAuthenticator(b"short")
