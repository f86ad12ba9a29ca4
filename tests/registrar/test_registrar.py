"""REGISTER handling with hand-built messages through the real SIP parser."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from outbound_pro.accounts.digest import DigestAuthenticator, parse_auth_params
from outbound_pro.accounts.models import ContractStatus
from outbound_pro.accounts.throttle import AuthGuard, FailureThrottle
from outbound_pro.registrar.core import Registrar, RegistrarLimits
from outbound_pro.sip.message import Request, Response, parse_message
from outbound_pro.store import open_database
from tests.accounts.helpers import CONSOLE, World, active_contract, make_world, user

DOMAIN = "example.op.local"
SRC = ("203.0.113.7", 40000)
T0 = 1_750_000_000.0


class Phone:
    """Builds REGISTERs like a real phone: same Call-ID, increasing CSeq, digest answers."""

    def __init__(
        self,
        login: str = "booth01",
        password: str = "user-pass-1",
        aor_user: str | None = None,
        call_id: str = "reg-1@10.0.0.5",
        contact: str = "sip:booth01@10.0.0.5:5062",
    ) -> None:
        self.login, self.password = login, password
        self.aor_user = aor_user or login
        self.call_id, self.contact = call_id, contact
        self.cseq = 0
        self.nc = 0
        self.nonce = ""

    def build(
        self,
        *,
        contacts: list[str] | None = None,
        expires: str | None = None,
        auth: str | None = None,
        extra: str = "",
        cseq: int | None = None,
    ) -> Request:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-{cseq}-{self.call_id};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.aor_user}@{DOMAIN}>;tag=abc",
            f"To: <sip:{self.aor_user}@{DOMAIN}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} REGISTER",
            "User-Agent: TestPhone/1.0",
        ]
        for c in contacts if contacts is not None else [f"<{self.contact}>"]:
            lines.append(f"Contact: {c}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        if extra:
            lines.append(extra)
        raw = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
        msg = parse_message(raw)
        assert isinstance(msg, Request)
        return msg

    def answer(
        self,
        response: Response,
        *,
        alg: str = "SHA-256",
        password: str | None = None,
        nc: int | None = None,
    ) -> str:
        challenge = next(v for v in response.get_all("www-authenticate") if f"algorithm={alg}" in v)
        p = parse_auth_params(challenge.split(" ", 1)[1])
        if p["nonce"] != self.nonce:  # nonce-count restarts with each new nonce
            self.nonce, self.nc = p["nonce"], 0
        self.nc += 1
        n = nc if nc is not None else self.nc
        h = hashlib.md5 if alg == "MD5" else hashlib.sha256
        H = lambda s: h(s.encode()).hexdigest()  # noqa: E731
        ha1 = H(f"{self.login}:{p['realm']}:{password or self.password}")
        ha2 = H(f"REGISTER:sip:{DOMAIN}")
        resp = H(f"{ha1}:{p['nonce']}:{n:08x}:c0ffee:auth:{ha2}")
        return (
            f'Digest username="{self.login}", realm="{p["realm"]}", nonce="{p["nonce"]}", '
            f'uri="sip:{DOMAIN}", response="{resp}", algorithm={alg}, '
            f'opaque="{p["opaque"]}", qop=auth, nc={n:08x}, cnonce="c0ffee"'
        )


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    c, _ = active_contract(world.svc, DOMAIN)
    user(world.svc, c.id, "booth01", numbers=("03-1234-5678",))
    return world


@pytest.fixture
def reg(w: World) -> Registrar:
    return Registrar(
        w.db,
        DigestAuthenticator(b"k" * 32),
        limits=RegistrarLimits(min_expires=60, max_expires=3600),
    )


def register(reg: Registrar, phone: Phone, now: float = T0, src=SRC, **kw):
    """Challenge, then answer: returns the final outcome."""
    first = reg.handle_register(phone.build(**kw), src, "udp", now)
    assert first.response is not None and first.response.status == 401
    return reg.handle_register(
        phone.build(auth=phone.answer(first.response), **kw), src, "udp", now
    )


def contacts(resp: Response) -> list[str]:
    return resp.get_all("contact")


def test_challenge_then_register(reg: Registrar, w: World) -> None:
    phone = Phone()
    first = reg.handle_register(phone.build(), SRC, "udp", T0)
    assert first.response is not None and first.response.status == 401
    challenges = first.response.get_all("www-authenticate")
    assert len(challenges) == 2 and f'realm="{DOMAIN}"' in challenges[0]
    assert first.response.to_tag  # the registrar tags its responses
    out = reg.handle_register(phone.build(auth=phone.answer(first.response)), SRC, "udp", T0)
    assert out.response is not None and out.response.status == 200
    assert contacts(out.response) == ["<sip:booth01@10.0.0.5:5062>;expires=3600"]
    assert [c.kind for c in out.changes] == ["added"]
    b = out.changes[0].binding
    assert (b.source_host, b.source_port, b.transport) == ("203.0.113.7", 40000, "udp")
    assert b.user_agent == "TestPhone/1.0"
    assert out.response.get("date")
    # the B2BUA lookup: by contract and user, and by number
    owner = reg.user_for_number("03-1234-5678")
    assert owner is not None and owner.login == "booth01"
    found = reg.contacts_for(owner.contract_id, owner.id_id, T0 + 10)
    assert [x.contact for x in found] == ["sip:booth01@10.0.0.5:5062"]
    assert reg.contacts_for(owner.contract_id, owner.id_id, T0 + 3601) == []


@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_both_algorithms(reg: Registrar, alg: str) -> None:
    phone = Phone()
    first = reg.handle_register(phone.build(), SRC, "udp", T0)
    assert first.response is not None
    out = reg.handle_register(
        phone.build(auth=phone.answer(first.response, alg=alg)), SRC, "udp", T0
    )
    assert out.response is not None and out.response.status == 200


def test_bindings_survive_restart(tmp_path: Path, reg: Registrar, w: World) -> None:
    register(reg, Phone())
    w.db.close()
    db = open_database(tmp_path / "db.sqlite3")
    again = Registrar(db, DigestAuthenticator(b"k" * 32))
    bindings = again.registrations(1, T0 + 1)
    assert [b.contact for b in bindings] == ["sip:booth01@10.0.0.5:5062"]


def test_unknown_user_gets_the_same_challenge(reg: Registrar) -> None:
    a = reg.handle_register(Phone().build(), SRC, "udp", T0)
    b = reg.handle_register(Phone(login="nobody").build(), SRC, "udp", T0)
    c = reg.handle_register(Phone(login="x").build(), SRC, "udp", T0)
    assert a.response and b.response and c.response

    def shape(r: Response) -> list[str]:  # everything but the nonce
        return [v.split("nonce=")[0] + v.split("opaque=")[1] for v in r.get_all("www-authenticate")]

    assert shape(a.response) == shape(b.response) == shape(c.response)
    # and a wrong password looks exactly like an unknown user after answering
    p1, p2 = Phone(password="wrong-pass"), Phone(login="nobody")
    r1 = reg.handle_register(p1.build(auth=p1.answer(a.response)), SRC, "udp", T0)
    r2 = reg.handle_register(p2.build(auth=p2.answer(b.response)), SRC, "udp", T0)
    assert r1.response and r2.response
    assert (r1.response.status, r1.response.reason) == (r2.response.status, r2.response.reason)
    assert shape(r1.response) == shape(r2.response)


def test_stale_nonce_and_replay(reg: Registrar) -> None:
    phone = Phone()
    first = reg.handle_register(phone.build(), SRC, "udp", T0)
    assert first.response
    auth = phone.answer(first.response)
    late = reg.handle_register(phone.build(auth=auth), SRC, "udp", T0 + 1000)
    assert late.response and late.response.status == 401
    assert "stale=true" in late.response.get_all("www-authenticate")[0]
    auth = phone.answer(late.response)
    ok = reg.handle_register(phone.build(auth=auth), SRC, "udp", T0 + 1000)
    assert ok.response and ok.response.status == 200
    replay = reg.handle_register(phone.build(auth=auth), SRC, "udp", T0 + 1001)
    assert replay.response and replay.response.status == 401


def test_expires_negotiation(reg: Registrar) -> None:
    phone = Phone()
    out = register(reg, phone, expires="30")
    assert out.response and out.response.status == 423
    assert out.response.get("min-expires") == "60"
    out = register(reg, phone, expires="99999")
    assert out.response and contacts(out.response) == ["<sip:booth01@10.0.0.5:5062>;expires=3600"]
    out = register(reg, phone, contacts=["<sip:booth01@10.0.0.5:5062>;expires=120"], expires="600")
    assert out.response and contacts(out.response) == ["<sip:booth01@10.0.0.5:5062>;expires=120"]
    out = register(reg, phone, expires="abc")
    assert out.response and out.response.status == 400


def test_multiple_contacts_q_values_and_removal(reg: Registrar, w: World) -> None:
    phone = Phone()
    out = register(
        reg,
        phone,
        contacts=["<sip:booth01@10.0.0.5:5062>;q=0.5", "<sip:booth01@10.0.0.6:5062>;q=1.0"],
    )
    assert out.response and out.response.status == 200
    assert len(contacts(out.response)) == 2
    found = reg.contacts_for(1, out.result.id_id or 0, T0)
    assert [b.contact for b in found] == ["sip:booth01@10.0.0.6:5062", "sip:booth01@10.0.0.5:5062"]
    out = register(reg, phone, contacts=["<sip:booth01@10.0.0.6:5062>;expires=0"])
    assert out.response and contacts(out.response) == [
        "<sip:booth01@10.0.0.5:5062>;expires=3600;q=0.5"
    ]
    out = register(reg, phone, contacts=["<sip:booth01@10.0.0.5:5062>;q=1.5"])
    assert out.response and out.response.status == 400
    out = register(reg, phone, contacts=["*"], expires="0")
    assert out.response and out.response.status == 200 and contacts(out.response) == []
    assert [c.kind for c in out.changes] == ["removed"]
    assert reg.registrations(1, T0) == []


def test_wildcard_rules(reg: Registrar) -> None:
    phone = Phone()
    assert (out := register(reg, phone, contacts=["*"])).response
    assert out.response.status == 400
    out = register(reg, phone, contacts=["*", "<sip:a@10.0.0.1>"], expires="0")
    assert out.response and out.response.status == 400


def test_query_without_contact_lists_bindings(reg: Registrar) -> None:
    phone = Phone()
    register(reg, phone)
    out = register(reg, phone, contacts=[])
    assert out.response and out.response.status == 200
    assert len(contacts(out.response)) == 1 and out.changes == []


def test_call_id_and_cseq_ordering(reg: Registrar) -> None:
    phone = Phone()
    register(reg, phone)  # stored with CSeq 2
    first = reg.handle_register(phone.build(cseq=1), SRC, "udp", T0)
    assert first.response
    old = reg.handle_register(
        phone.build(cseq=2, auth=phone.answer(first.response)), SRC, "udp", T0
    )
    assert old.response and old.response.status == 400
    # a different Call-ID (the phone rebooted) replaces the binding whatever its CSeq
    rebooted = Phone(call_id="reg-2@10.0.0.5")
    out = register(reg, rebooted)
    assert out.response and out.response.status == 200
    assert [c.kind for c in out.changes] == ["refreshed"]


def test_aor_may_be_a_bound_number_but_not_someone_else(reg: Registrar, w: World) -> None:
    out = register(reg, Phone(aor_user="0312345678"))
    assert out.response and out.response.status == 200
    assert out.changes[0].binding.aor == f"sip:+81312345678@{DOMAIN}"
    user(w.svc, 1, "booth02", numbers=("0312349999",))
    out = register(reg, Phone(aor_user="booth02"))
    assert out.response and out.response.status == 403
    out = register(reg, Phone(aor_user="0312349999"))
    assert out.response and out.response.status == 403


def test_revoked_user_and_suspended_contract_get_403(reg: Registrar, w: World) -> None:
    register(reg, Phone())
    w.svc.suspend_contract(CONSOLE, 1, reason="attack")
    assert reg.registrations(1, T0) == []
    out = register(reg, Phone())
    assert out.response and out.response.status == 403
    w.svc.reinstate_contract(CONSOLE, 1, reason="ok")
    assert (out := register(reg, Phone())).response and out.response.status == 200
    ident = w.svc.store.identity_by_login(1, "booth01")
    assert ident is not None
    w.svc.revoke_id(CONSOLE, ident.id)
    assert reg.contacts_for(1, ident.id, T0) == []
    out = register(reg, Phone())
    assert out.response and out.response.status == 403
    assert w.db.scalar("SELECT COUNT(*) FROM sip_bindings") == 0


def test_restricted_contract_may_still_register(reg: Registrar, w: World) -> None:
    w.svc.restrict_contract(CONSOLE, 1, reason="breach")
    assert w.svc.get_contract(CONSOLE, 1).status is ContractStatus.RESTRICTED
    assert (out := register(reg, Phone())).response and out.response.status == 200


def test_brute_force_is_throttled_then_dropped_and_real_user_still_works(w: World) -> None:
    guard = AuthGuard(per_source=FailureThrottle(throttle_after=3, block_after=5, block_for=60))
    reg = Registrar(w.db, DigestAuthenticator(b"k" * 32), guard=guard)
    attacker = ("198.51.100.66", 5060)
    cracker = Phone(password="guess-0000")

    def attempt(t: float) -> int | None:
        first = reg.handle_register(cracker.build(), attacker, "udp", t)
        if first.response is None or first.response.status != 401:
            return None if first.response is None else first.response.status
        out = reg.handle_register(
            cracker.build(auth=cracker.answer(first.response)), attacker, "udp", t
        )
        return None if out.response is None else out.response.status

    statuses, probes = [], []
    for i in range(7):
        statuses.append(attempt(T0 + i * 5))
        probes.append(attempt(T0 + i * 5 + 0.001))  # right after: still throttled?
    assert statuses[:2] == [401, 401]
    assert 503 in probes  # throttled with Retry-After ...
    assert statuses[-1] is None  # ... then blocked: dropped without an answer
    assert (out := register(reg, Phone(), src=("192.0.2.20", 5060))).response
    assert out.response.status == 200


def test_register_flood_gets_503_retry_after(w: World) -> None:
    reg = Registrar(
        w.db, DigestAuthenticator(b"k" * 32), limits=RegistrarLimits(source_rate=5, source_burst=5)
    )
    phone = Phone()
    statuses = [
        reg.handle_register(phone.build(), SRC, "udp", T0).response.status  # type: ignore[union-attr]
        for _ in range(8)
    ]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [503] * 3
    last = reg.handle_register(phone.build(), SRC, "udp", T0)
    assert last.response and last.response.get("retry-after") == "1"
    other = reg.handle_register(phone.build(), ("192.0.2.1", 5060), "udp", T0)
    assert other.response and other.response.status == 401


def test_too_many_contacts(w: World) -> None:
    reg = Registrar(w.db, DigestAuthenticator(b"k" * 32), limits=RegistrarLimits(max_contacts=2))
    out = register(reg, Phone(), contacts=[f"<sip:b@10.0.0.{i}>" for i in range(3)])
    assert out.response and out.response.status == 403


@pytest.mark.parametrize(
    "contact", ["<tel:+81312345678>", "<mailto:a@b>", "<sip:a@10.0.0.1>;expires=x"]
)
def test_bad_contacts_are_400(reg: Registrar, contact: str) -> None:
    out = register(reg, Phone(), contacts=[contact])
    assert out.response and out.response.status == 400


def test_malformed_authorization_is_400(reg: Registrar) -> None:
    out = reg.handle_register(Phone().build(auth='Digest username="x'), SRC, "udp", T0)
    assert out.response and out.response.status == 400


def test_unknown_domain_is_challenged_like_any_other(reg: Registrar) -> None:
    p = Phone()
    req = p.build()
    raw = req.to_bytes().replace(DOMAIN.encode(), b"unknown.local")
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    out = reg.handle_register(msg, SRC, "udp", T0)
    assert out.response and out.response.status == 401
    assert 'realm="unknown.local"' in out.response.get_all("www-authenticate")[0]


def test_nonces_are_unique_and_share_few_random_draws() -> None:
    """Challenges cut their salt from a pool: one draw of random bytes serves 512 of them."""
    draws: list[int] = []

    def random_bytes(n: int) -> bytes:
        draws.append(n)
        return os.urandom(n)

    auth = DigestAuthenticator(b"k" * 32, random_bytes=random_bytes)
    nonces = {auth.make_nonce(DOMAIN, T0) for _ in range(600)}
    assert len(nonces) == 600 and len(draws) == 2
    assert all(auth.nonce_time(n, DOMAIN) == T0 for n in nonces)
