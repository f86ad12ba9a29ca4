"""REGISTER processing (RFC 3261 §10.3) as sans-I/O logic over the store.

`Registrar.process` takes a `RegisterRequest` (the parts of a REGISTER the registrar reads),
the source address and transport it came from, and the time; it returns a `RegisterResult`
saying which response to send (or to drop the request) and which bindings changed. No sockets,
no clock: the SIP transport adapter (`registrar.sip_adapter`) turns it into a SIP response.

Order of checks, and why:

1. Flood limits (per source, and global) first: they are the cheapest and protect the rest.
   Over the limit → 503 with Retry-After, never an unbounded queue.
2. A source blocked for failed authentications is dropped; a throttled one gets 503.
3. Digest authentication with realm = the contract's SIP domain. Unknown domains and unknown
   users get the same challenge as real ones (no enumeration).
4. Only after a correct password: contract and ID status (403), AOR ownership (403).
5. Contacts: wildcard, expiry negotiation (423 + Min-Expires), q-values, Call-ID/CSeq order;
   then all changes are written in one transaction and the current bindings returned.

Cost, because every phone re-registers every few minutes and a site restart makes them all
do it at once (benchmarks/README.md, "Registrar"): a challenge touches no database; an
authenticated REGISTER is one write transaction that finds the ID and its contract
(`SipLogins`), reads the AOR's bindings (`RegistrarStore.bindings_of`), upserts the contact
and commits before the 200 is built. Both reads come from memory while no other writer has
touched the database, which `ChangeWatch` checks inside that transaction; after the commit
the store is handed the AOR's rows as written (`RegisterResult.written`). Each header is
parsed once (the To and the Contacts of the stack's parse are reused), and the 200's Contact
list is computed from what was just written rather than read back.
"""

from __future__ import annotations

import email.utils
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from outbound_pro.accounts import numbers as jp
from outbound_pro.accounts.digest import Credentials, DigestAuthenticator, Outcome, ParseError
from outbound_pro.accounts.digest import parse_authorization as parse_digest
from outbound_pro.accounts.models import ContractStatus, IdStatus, NumberOwner
from outbound_pro.accounts.throttle import AuthGuard, Level, RateLimiter
from outbound_pro.config import RegistrarConfig as RegistrarLimits
from outbound_pro.registrar.model import Binding, BindingChange
from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.headers import Headers, NameAddr, parse_cseq, parse_name_addr
from outbound_pro.sip.message import Request, Response, make_response
from outbound_pro.sip.uri import SipUri, Uri, parse_uri
from outbound_pro.store.accounts import AccountsStore, SipLogins
from outbound_pro.store.db import Database
from outbound_pro.store.registrar import RegistrarStore

REGISTRABLE = (ContractStatus.ACTIVE, ContractStatus.RESTRICTED)
_REVOKED = IdStatus.REVOKED.value


@dataclass(frozen=True)
class RegisterRequest:
    """What the registrar reads from a REGISTER; built from the parsed SIP message.

    *message* is that message when there is one: its To was already parsed (and cached) by the
    stack's hot path, and is reused rather than parsed again.
    """

    request_uri: str
    headers: Headers
    message: Request | None = None

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    def call_id_and_cseq(self) -> tuple[str, int]:
        """Call-ID and CSeq number, from the message's hot-path parse when there is one."""
        if self.message is not None:
            return self.message.call_id, self.message.cseq[0]
        call_id = self.call_id
        cseq_value = self.headers.get("cseq")
        if not call_id or cseq_value is None:
            raise _Reject(400, "Missing Call-ID or CSeq")
        return call_id, parse_cseq(cseq_value)[0]

    def contacts(self, values: list[str]) -> list[NameAddr]:
        """The Contact values (*values*, the header's list) parsed: the message's own parse
        when there is one, which validation already did and cached."""
        if self.message is not None:
            return self.message.contacts
        return [parse_name_addr(value, "Contact") for value in values]

    def to_uri(self) -> Uri:
        if self.message is not None:
            return self.message.to.uri
        value = self.headers.get("to")
        if value is None:
            raise _Reject(400, "Missing To")
        return parse_name_addr(value, "To").uri


@dataclass
class RegisterResult:
    """The response to send (``status is None``: send nothing) and what changed."""

    status: int | None
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    changes: list[BindingChange] = field(default_factory=list)
    id_id: int | None = None
    written: tuple[int, str, tuple[Binding, ...]] | None = None
    """The ID, AOR and the AOR's rows after this REGISTER's write, once it is committed."""

    @property
    def dropped(self) -> bool:
        return self.status is None


@dataclass
class RegisterOutcome:
    """What the transport does with one REGISTER: send ``response`` (None: drop it)."""

    response: Response | None
    changes: list[BindingChange]
    result: RegisterResult


class _Reject(Exception):
    def __init__(
        self, status: int, reason: str, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers or []


def _retry_after(seconds: float) -> list[tuple[str, str]]:
    return [("Retry-After", str(max(1, math.ceil(seconds))))]


def _digest_uri_for(digest_uri: str, request_uri: str) -> str:
    """The Request-URI to check the digest-uri against, tolerating differing URI parameters.

    Some phones sign a URI with parameters the Request-URI lacks (pyVoIP signs
    ``sip:HOST;transport=UDP`` on a ``REGISTER sip:HOST``). Same scheme, user, host and port
    name the same registrar, and replay is stopped by the nonce (single use without qop,
    nonce-count with it), so such a digest-uri is accepted as if it were the Request-URI. Any
    other difference is checked as is and fails.
    """
    if digest_uri == request_uri:  # what nearly every phone sends: nothing to parse
        return request_uri
    try:
        signed, target = parse_uri(digest_uri), parse_uri(request_uri)
    except SipParseError:
        return request_uri
    if (
        isinstance(signed, SipUri)
        and isinstance(target, SipUri)
        and signed.scheme == target.scheme
        and signed.user == target.user
        and signed.host.lower() == target.host.lower()
        and signed.port == target.port
    ):
        return digest_uri
    return request_uri


class Registrar:
    """One per server, owned by the event loop. Implements `RegistrationView` for the API."""

    def __init__(
        self,
        db: Database,
        authenticator: DigestAuthenticator,
        *,
        limits: RegistrarLimits | None = None,
        guard: AuthGuard | None = None,
    ) -> None:
        self.db = db
        self.accounts = AccountsStore(db)
        self.logins = SipLogins(db)
        self.store = RegistrarStore(db)
        self.auth = authenticator
        self.limits = limits or RegistrarLimits()
        self.guard = guard or AuthGuard()
        self._source_rate = RateLimiter(self.limits.source_rate, self.limits.source_burst)
        self._global_rate = RateLimiter(self.limits.global_rate, self.limits.global_burst)
        self._date_second = -1
        self._date_value = ""

    # -- lookups for the B2BUA and the API -------------------------------------------------

    def contacts_for(self, contract_id: int, id_id: int, now: float) -> list[Binding]:
        """Live bindings of a user ID, best first; empty when the ID or contract may not be
        reached (revoked, suspended), even if rows linger."""
        return [b for b in self.store.live_for_id(id_id, now) if b.contract_id == contract_id]

    def user_for_number(self, e164: str) -> NumberOwner | None:
        """The user ID a telephone number rings (inbound routing)."""
        try:
            number = jp.normalize(e164)
        except jp.InvalidNumber:
            return None
        return self.accounts.number_owner(number)

    def registrations(self, contract_id: int, now: float) -> list[Binding]:
        return self.store.live_for_contract(contract_id, now)

    def purge_expired(self, now: float) -> int:
        return self.store.purge_expired(now)

    # -- REGISTER -------------------------------------------------------------------------

    def handle_register(
        self,
        request: Request,
        source_addr: tuple[str, int],
        transport: str,
        now: float,
    ) -> RegisterOutcome:
        """The SIP entry point: a parsed REGISTER in, the response to send out.

        *source_addr* is the address the request really came from (after NAT) and
        *transport* is "udp", "tcp", "tls" or "ws"/"wss"; *now* is wall-clock seconds (bindings
        are persisted, so their expiry must survive a restart). The To tag is derived from the
        Call-ID and CSeq, so a retransmitted REGISTER gets a byte-identical answer.
        """
        result = self.process(
            RegisterRequest(request.uri_text, request.headers, request), source_addr, transport, now
        )
        if result.status is None:
            return RegisterOutcome(None, [], result)
        seed = f"{request.get('call-id')}|{request.get('cseq')}".encode("utf-8", "replace")
        to_tag = hashlib.sha256(seed).hexdigest()[:16]
        response = make_response(
            request, result.status, result.reason, to_tag=to_tag, headers=result.headers
        )
        return RegisterOutcome(response, result.changes, result)

    def process(
        self,
        request: RegisterRequest,
        source: tuple[str, int],
        transport: str,
        now: float,
    ) -> RegisterResult:
        try:
            return self._process(request, source, transport.lower(), now)
        except _Reject as exc:
            return RegisterResult(exc.status, exc.reason, exc.headers)
        except SipParseError as exc:
            return RegisterResult(exc.status or 400, exc.reason)

    def _challenge(
        self, realm: str, now: float, user_agent: str, *, stale: bool = False
    ) -> RegisterResult:
        values = self.auth.challenge(realm, now, stale=stale)
        if user_agent.lower().startswith(self.limits.md5_only_agents):
            values = [v for v in values if "algorithm=MD5" in v]
        return RegisterResult(401, "Unauthorized", [("WWW-Authenticate", v) for v in values])

    def _process(
        self, request: RegisterRequest, source: tuple[str, int], transport: str, now: float
    ) -> RegisterResult:
        host = source[0]
        for limiter, key in ((self._global_rate, "*"), (self._source_rate, host)):
            verdict = limiter.take(key, now)
            if not verdict.allowed:
                raise _Reject(503, "Service Unavailable", _retry_after(verdict.retry_after))
        verdict = self.guard.check_source(f"ip:{host}", now)
        if verdict.level is Level.BLOCKED:
            return RegisterResult(None, "source blocked")
        if not verdict.allowed:
            raise _Reject(503, "Service Unavailable", _retry_after(verdict.retry_after))

        headers = request.headers
        aor_uri = request.to_uri()
        if not isinstance(aor_uri, SipUri) or not aor_uri.user:
            raise _Reject(400, "To must be a SIP URI with a user part")
        realm = aor_uri.host.lower()

        creds = None
        for value in headers.get_all("authorization"):
            try:
                parsed = parse_digest(value)
            except ParseError as exc:
                raise _Reject(400, "Malformed Authorization") from exc
            if parsed is not None and parsed.realm == realm:
                creds = parsed
                break
        user_agent = headers.get("user-agent") or ""
        if creds is None:
            return self._challenge(realm, now, user_agent)

        ident = f"{realm}/{creds.username}"
        verdict = self.guard.check(f"ip:{host}", ident, now)
        if verdict.level is Level.BLOCKED:
            return RegisterResult(None, "source blocked for this ID")
        if not verdict.allowed:
            raise _Reject(503, "Service Unavailable", _retry_after(verdict.retry_after))
        # One write transaction from the ID look-up to the binding write: a revocation or
        # suspension committed by the CLI is either seen by the look-up or deletes the binding
        # after us, never slips in between; and one transaction costs SQLite one snapshot
        # instead of one per statement. It commits before the 200 is built (durability).
        with self.db.transaction():
            result = self._authenticated(
                request, creds, aor_uri, realm, ident, source, transport, now, user_agent
            )
        # This connection's own binding writes cannot change an ID: keep `SipLogins`' cache,
        # and the store's copy of the AOR's rows is what was just committed.
        self.logins.watch.absorb()
        if result.written is not None:
            self.store.remember(*result.written)
        return result

    def _authenticated(
        self,
        request: RegisterRequest,
        creds: Credentials,
        aor_uri: SipUri,
        realm: str,
        ident: str,
        source: tuple[str, int],
        transport: str,
        now: float,
        user_agent: str,
    ) -> RegisterResult:
        host = source[0]
        login = self.logins.find(realm, creds.username)
        ha1 = None
        if login is not None:
            ha1 = login.ha1_sha256 if creds.algorithm == "SHA-256" else login.ha1_md5
        outcome = self.auth.verify(
            creds,
            method="REGISTER",
            realm=realm,
            ha1=ha1,
            now=now,
            request_uri=_digest_uri_for(creds.uri, request.request_uri),
        )
        if outcome.outcome is Outcome.FAILED:
            self.guard.failure(f"ip:{host}", ident, now)
            return self._challenge(realm, now, user_agent)
        if outcome.outcome is Outcome.STALE:
            return self._challenge(realm, now, user_agent, stale=True)
        self.guard.success(f"ip:{host}", ident)
        assert login is not None

        if login.contract_status not in REGISTRABLE:
            raise _Reject(403, f"Forbidden (contract {login.contract_status})")
        if login.removed or login.status == _REVOKED:
            raise _Reject(403, "Forbidden (ID revoked)")
        aor_user = self._aor_user(aor_uri.user, creds.username, login.id)
        if aor_user is None:
            raise _Reject(403, "Forbidden (AOR is not this ID's)")
        aor = f"sip:{aor_user}@{realm}"
        result = self._update_bindings(
            request, aor, login.contract_id, login.id, source, transport, now, user_agent
        )
        result.id_id = login.id
        return result

    def _aor_user(self, user: str, login: str, id_id: int) -> str | None:
        """The canonical AOR user: the login itself, or one of the ID's numbers in E.164."""
        if user == login:
            return login
        try:
            e164 = jp.normalize(user)
        except jp.InvalidNumber:
            return None
        return e164 if self.logins.owns_number(id_id, e164) else None

    def _expires(self, text: str | None, what: str) -> int | None:
        if text is None:
            return None
        text = text.strip()
        if not text.isdigit() or not text.isascii():
            raise _Reject(400, f"Malformed {what}")
        return min(int(text), 2**32 - 1)

    def _update_bindings(
        self,
        request: RegisterRequest,
        aor: str,
        contract_id: int,
        id_id: int,
        source: tuple[str, int],
        transport: str,
        now: float,
        user_agent: str,
    ) -> RegisterResult:
        """Apply the Contacts, inside the caller's write transaction.

        The AOR's bindings are read in that transaction, so the CSeq order and contact-limit
        checks see exactly the rows the write replaces, even with the CLI writing the file.
        """
        limits = self.limits
        headers = request.headers
        call_id, cseq = request.call_id_and_cseq()
        header_expires = self._expires(headers.get("expires"), "Expires")
        user_agent = user_agent[:200]
        existing = self.store.bindings_of(id_id, aor)
        values = headers.get_all("contact")

        def order_ok(b: Binding) -> bool:
            return b.call_id != call_id or cseq > b.cseq

        if any(v.strip() == "*" for v in values):
            if len(values) != 1 or header_expires != 0:
                raise _Reject(400, "Wildcard Contact needs Expires: 0 and no other Contact")
            if not all(order_ok(b) for b in existing):
                raise _Reject(400, "CSeq out of order")
            self.store.write((), existing)
            return RegisterResult(
                200,
                "OK",
                self._date(now),
                [BindingChange("removed", b) for b in existing],
                written=(id_id, aor, ()),
            )

        upserts: list[Binding] = []
        removals: list[Binding] = []
        changes: list[BindingChange] = []
        by_contact = {b.contact: b for b in existing}
        parsed_existing: list[tuple[Uri | None, Binding]] | None = None
        for contact in request.contacts(values):
            uri = contact.uri
            if not isinstance(uri, SipUri):
                raise _Reject(400, "Contact must be a sip: or sips: URI")
            params = contact.params
            expires = self._expires(params.get("expires"), "Contact expires")
            if expires is None:
                expires = header_expires if header_expires is not None else limits.default_expires
            if 0 < expires < limits.min_expires:
                raise _Reject(423, "Interval Too Brief", [("Min-Expires", str(limits.min_expires))])
            expires = min(expires, limits.max_expires)
            q = self._q(params.get("q"))
            match = by_contact.get(contact.uri_text)
            if match is None and existing:
                # Not the same text: the same URI by RFC 3261 §19.1.4 rules? Stored contacts
                # are parsed only now, and once, since a refresh nearly always matches above.
                if parsed_existing is None:
                    parsed_existing = [(_parse_or_none(b.contact), b) for b in existing]
                match = next((b for u, b in parsed_existing if u is not None and u == uri), None)
            if match is not None and not order_ok(match):
                raise _Reject(400, "CSeq out of order")
            instance = (params.get("+sip.instance") or "").strip('"')[:200]
            if expires == 0:
                if match is not None:
                    removals.append(match)
                    changes.append(BindingChange("removed", match))
                continue
            binding = Binding(
                contract_id=contract_id,
                id_id=id_id,
                aor=aor,
                contact=match.contact if match is not None else contact.uri_text,
                q=q,
                expires_at=now + expires,
                call_id=call_id,
                cseq=cseq,
                transport=transport,
                source_host=source[0],
                source_port=source[1],
                user_agent=user_agent,
                instance=instance,
                updated_at=now,
            )
            upserts.append(binding)
            changes.append(BindingChange("refreshed" if match else "added", binding))
        live_after = {b.contact for b in existing if b.expires_at > now}
        live_after -= {b.contact for b in removals}
        live_after |= {b.contact for b in upserts}
        if len(live_after) > limits.max_contacts:
            raise _Reject(403, f"Forbidden (more than {limits.max_contacts} contacts)")
        stale_rows = [b for b in existing if b.expires_at <= now and b.contact not in live_after]
        deleted = removals + stale_rows
        self.store.write(upserts, deleted)
        # The AOR's rows after the write, in row order (what ORDER BY id would return): an
        # updated row keeps its place, a deleted one goes, a new one comes last.
        after = dict(by_contact)
        for b in deleted:
            after.pop(b.contact, None)
        for b in upserts:
            after[b.contact] = b
        rows = tuple(after.values())
        return RegisterResult(
            200, "OK", self._contact_headers(rows, now), changes, written=(id_id, aor, rows)
        )

    @staticmethod
    def _q(text: str | None) -> float:
        if text is None:
            return 1.0
        try:
            q = float(text)
        except ValueError as exc:
            raise _Reject(400, "Malformed q-value") from exc
        if not 0.0 <= q <= 1.0 or len(text) > 5:
            raise _Reject(400, "Malformed q-value")
        return q

    def _date(self, now: float) -> list[tuple[str, str]]:
        """The Date header; formatted once per second, not once per 200."""
        second = int(now)
        if second != self._date_second:
            self._date_value = email.utils.formatdate(second, usegmt=True)
            self._date_second = second
        return [("Date", self._date_value)]

    def _contact_headers(self, bindings: Iterable[Binding], now: float) -> list[tuple[str, str]]:
        out = self._date(now)
        for b in bindings:
            if b.expires_at > now:
                q = f";q={b.q:g}" if b.q != 1.0 else ""
                out.append(("Contact", f"<{b.contact}>;expires={b.expires_in(now)}{q}"))
        return out


def _parse_or_none(text: str) -> Uri | None:
    try:
        return parse_uri(text)
    except SipParseError:
        return None
