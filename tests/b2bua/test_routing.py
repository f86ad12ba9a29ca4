"""Routing rules and the client side of digest, checked against the server side."""

from __future__ import annotations

import hashlib

import pytest

from outbound_pro.accounts.digest import DigestAuthenticator, Outcome, parse_authorization
from outbound_pro.accounts.models import Trunk
from outbound_pro.b2bua import client_auth, routing
from outbound_pro.b2bua.routing import NumberFormat


@pytest.mark.parametrize(
    ("digits", "name"),
    [
        ("110", "police"),
        ("119", "fire and ambulance"),
        ("118", "coast guard"),
        ("177", "weather forecast"),
        ("188", "special service"),
    ],
)
def test_special_numbers_are_recognised(digits: str, name: str) -> None:
    assert routing.special_service(digits) == name


@pytest.mark.parametrize("digits", ["0312345678", "1100", "11", "0110"])
def test_ordinary_numbers_are_not_special(digits: str) -> None:
    assert routing.special_service(digits) is None


def test_trunk_number_formats() -> None:
    assert routing.to_trunk_format("+81312345678", NumberFormat.NATIONAL) == "0312345678"
    assert routing.to_trunk_format("+81312345678", NumberFormat.E164) == "+81312345678"
    assert routing.from_trunk("0312345678") == "+81312345678"
    assert routing.from_trunk("81312345678") == "+81312345678"
    assert routing.from_trunk("+81-3-1234-5678") == "+81312345678"
    assert routing.from_trunk("anonymous") is None


def test_trusted_sources_take_addresses_and_networks() -> None:
    trunks = [
        Trunk(name="a", host="192.0.2.10", trusted_sources=["192.0.2.10", "198.51.100.0/24"]),
        Trunk(name="b", host="2001:db8::1", trusted_sources=["2001:db8::/64", "not-an-ip"]),
    ]
    assert routing.trusted_trunk("192.0.2.10", trunks) is trunks[0]
    assert routing.trusted_trunk("198.51.100.77", trunks) is trunks[0]
    assert routing.trusted_trunk("2001:db8::5", trunks) is trunks[1]
    assert routing.trusted_trunk("192.0.2.11", trunks) is None
    assert routing.trusted_trunk("example.com", trunks) is None


@pytest.mark.parametrize("qop", [True, False])
@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_client_digest_is_accepted_by_the_server_side(algorithm: str, qop: bool) -> None:
    server = DigestAuthenticator(b"k" * 32)
    offered = server.challenge("carrier.example", 1000.0)
    if not qop:
        offered = [v.replace(', qop="auth"', "") for v in offered]
    offered = [v for v in offered if f"algorithm={algorithm}" in v]
    challenge = client_auth.pick_challenge(offered)
    assert challenge is not None and challenge["algorithm"] == algorithm
    value = client_auth.authorization(
        challenge, method="INVITE", uri="sip:0312345678@192.0.2.10", username="u", password="p"
    )
    creds = parse_authorization(value)
    assert creds is not None
    h = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5
    ha1 = h(b"u:carrier.example:p").hexdigest()
    verdict = server.verify(
        creds,
        method="INVITE",
        realm="carrier.example",
        ha1=ha1,
        now=1001.0,
        request_uri="sip:0312345678@192.0.2.10",
    )
    assert verdict.outcome is (Outcome.OK if qop or algorithm == "MD5" else Outcome.FAILED)


def test_strongest_challenge_is_chosen_and_unknown_ones_ignored() -> None:
    values = [
        'Basic realm="x"',
        'Digest realm="r", nonce="n1", algorithm=MD5',
        'Digest realm="r", nonce="n2", algorithm=SHA-256',
        'Digest realm="r", nonce="n3", algorithm=SHA-512-256',
    ]
    chosen = client_auth.pick_challenge(values)
    assert chosen is not None and chosen["nonce"] == "n2"
    assert client_auth.pick_challenge(['Basic realm="x"']) is None
