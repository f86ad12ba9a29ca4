"""Admin REST API under ``/api/v1`` (aiohttp), a thin adapter over `AccountService`.

* Input is JSON decoded by msgspec into declared structs; a wrong or missing field is a 400 whose
  body names it: ``{"error": "invalid_request", "field": "numbers[0]", "message": "..."}``.
* Login takes ``id@domain`` (contract IDs are unique per contract, so the SIP domain says
  which contract) or, for provider operators, a bare name. It returns a token, also set as an
  HttpOnly, SameSite=Strict cookie (Secure over TLS); ``Authorization: Bearer`` works too.
* Every handler asks the service, and the service asks `accounts.policy`: an object of another
  contract is a 404, identical to one that does not exist.
* One route table drives both the router and the OpenAPI document at ``/api/v1/openapi.json``.

Wiring (app.py): ``create_app(metrics, [make_setup(services)])`` with ``services`` from
`ApiServices` (see its docstring).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from outbound_pro.accounts.errors import Conflict, Forbidden, InvalidInput, NotFound
from outbound_pro.accounts.models import (
    Affiliation,
    AffiliationPolicy,
    AuditEntry,
    Contract,
    ContractStatus,
    Device,
    Identity,
    IdStatus,
    Role,
)
from outbound_pro.accounts.passwords import (
    DEFAULT_PARAMS,
    ScryptParams,
    burn_verify,
    prepare_password,
    verify_password,
)
from outbound_pro.accounts.policy import Principal, in_scope
from outbound_pro.accounts.service import AccountService, Actor, IssuedCredentials
from outbound_pro.accounts.sessions import SessionManager
from outbound_pro.accounts.throttle import AuthGuard
from outbound_pro.registrar.model import Binding, RegistrationView

T = TypeVar("T")
PREFIX = "/api/v1"
COOKIE = "op_session"
UNSET = msgspec.UNSET
UnsetType = msgspec.UnsetType


class NoRegistrations:
    """Used until the registrar is wired: nobody is registered."""

    def registrations(self, contract_id: int, now: float) -> list[Binding]:
        return []


@dataclass
class ApiServices:
    """Everything the API needs. Construct once in app.py::

    db = open_database(config.database_path)
    accounts = AccountService(db)
    services = ApiServices(accounts, SessionManager(accounts.store), registrations=registrar)
    """

    accounts: AccountService
    sessions: SessionManager
    registrations: RegistrationView = field(default_factory=NoRegistrations)
    guard: AuthGuard = field(default_factory=AuthGuard)
    password_params: ScryptParams = DEFAULT_PARAMS
    clock: Callable[[], float] = time.time


# -- payloads ----------------------------------------------------------------------------


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    login: str
    password: str
    domain: str | None = None


class LoginResponse(msgspec.Struct):
    token: str
    expires_at: float
    role: Role
    login: str
    contract_id: int | None
    domain: str | None


class Me(msgspec.Struct):
    role: Role
    login: str
    contract_id: int | None
    domain: str | None
    identity: Identity | None


class ContractApply(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    email: str
    domain: str
    start_date: dt.date | None = None


class ContractApprove(msgspec.Struct, forbid_unknown_fields=True):
    admin_login: str = "admin"
    admin_password: str | None = None
    start_date: dt.date | None = None


class Reason(msgspec.Struct, forbid_unknown_fields=True):
    reason: str
    emergency: bool = False


class Terminate(msgspec.Struct, forbid_unknown_fields=True):
    end_date: dt.date
    reason: str


class PasswordOptional(msgspec.Struct, forbid_unknown_fields=True):
    password: str | None = None
    sip_password: str | None = None


class OwnPassword(msgspec.Struct, forbid_unknown_fields=True):
    current_password: str
    new_password: str
    sip_password: str | None = None


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    login: str
    password: str | None = None
    display_name: str = ""
    affiliation_id: int | None = None
    numbers: list[str] = []
    sip_password: str | None = None


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    display_name: str | UnsetType = UNSET
    affiliation_id: int | UnsetType | None = UNSET
    status: IdStatus | UnsetType = UNSET


class Created(msgspec.Struct):
    """A new ID; ``password`` is set only when the server generated it, and shown only once."""

    identity: Identity
    password: str | None = None


class NumberBody(msgspec.Struct, forbid_unknown_fields=True):
    number: str


class SubadminCreate(msgspec.Struct, forbid_unknown_fields=True):
    login: str
    password: str | None = None
    display_name: str = ""
    scope: list[int] | None = None


class Scope(msgspec.Struct, forbid_unknown_fields=True):
    scope: list[int] | None


class AffiliationCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    policy: AffiliationPolicy = AffiliationPolicy()


class AffiliationPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    policy: AffiliationPolicy | UnsetType = UNSET


class DeviceCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    affiliation_id: int | None = None
    note: str = ""
    numbers: list[str] = []


class DevicePatch(msgspec.Struct, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    affiliation_id: int | UnsetType | None = UNSET
    note: str | UnsetType = UNSET


class RegistrationInfo(msgspec.Struct):
    id_id: int
    login: str
    aor: str
    contact: str
    q: float
    expires_in: int
    transport: str
    source: str
    user_agent: str


class Error(msgspec.Struct):
    error: str
    message: str
    field: str | None = None


class Ok(msgspec.Struct):
    ok: bool = True


# -- plumbing ----------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_AT_RE = re.compile(r"at `\$\.?([^`]*)`")
_NAMED_RE = re.compile(r"field `([^`]+)`")


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_encoder.encode(obj),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(status: int, error: str, message: str, field_name: str | None = None) -> web.Response:
    return _json(Error(error, message, field_name), status)


class _AuthRequired(Exception):
    pass


class _Throttled(Exception):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after


def _field_of(exc: msgspec.ValidationError) -> str | None:
    """``policy.hours.start`` from msgspec's "... field `start` - at `$.policy.hours`"."""
    text = str(exc)
    at = _AT_RE.search(text)
    named = _NAMED_RE.search(text)
    parts = [p for p in (at.group(1) if at else "", named.group(1) if named else "") if p]
    return ".".join(parts) or None


async def _body(request: web.Request, kind: type[T]) -> T:
    raw = await request.read()
    return msgspec.json.decode(raw or b"{}", type=kind)


def _given(patch: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body set, so that an absent field and an explicit null differ."""
    return {
        name: value
        for name in patch.__struct_fields__
        if (value := getattr(patch, name)) is not UNSET
    }


def _int(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    if not value.isdigit() or len(value) > 18:
        raise NotFound("not found")
    return int(value)


@dataclass(frozen=True)
class Ctx:
    actor: Actor
    token: str

    @property
    def principal(self) -> Principal:
        return self.actor.principal

    def contract_id(self) -> int:
        """The caller's contract; provider operators have none here (policy gives the 403)."""
        return self.principal.contract_id if self.principal.contract_id is not None else -1


Handler = Callable[[web.Request, "Ctx | None"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: str
    body: type | None = None
    response: Any = None
    auth: bool = True


class Api:
    def __init__(self, services: ApiServices) -> None:
        self.s = services
        self.accounts = services.accounts

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """CPU-bound password work off the event loop (principle 2)."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _prepare(self, plain: str | None) -> Any:
        return await self._run(prepare_password, plain, self.s.password_params)

    def source(self, request: web.Request) -> str:
        return request.remote or "unknown"

    def authenticate(self, request: web.Request) -> Ctx:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        token = token or request.cookies.get(COOKIE, "")
        if not token:
            raise _AuthRequired
        session = self.s.sessions.resolve(token, self.s.clock())
        if session is None:
            raise _AuthRequired
        if session.subject_kind == "operator":
            principal = self.accounts.principal_for_operator(session.subject_id)
        else:
            principal = self.accounts.principal_for_id(session.subject_id)
        if principal is None:
            self.s.sessions.end(token)
            raise _AuthRequired
        return Ctx(Actor(principal, self.source(request)), token)

    def wrap(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                ctx = self.authenticate(request) if route.auth else None
                return await route.handler(request, ctx)
            except _AuthRequired:
                return _error(401, "unauthenticated", "log in first (POST /api/v1/login)")
            except _Throttled as exc:
                resp = _error(429, "throttled", "too many failed logins; try again later")
                resp.headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
                return resp
            except msgspec.ValidationError as exc:
                return _error(400, "invalid_request", str(exc), _field_of(exc))
            except msgspec.DecodeError as exc:
                return _error(400, "invalid_json", f"body is not valid JSON: {exc}")
            except InvalidInput as exc:
                return _error(400, "invalid_request", exc.message, exc.field)
            except NotFound:
                return _error(404, "not_found", "not found")
            except Forbidden as exc:
                return _error(403, "forbidden", str(exc))
            except Conflict as exc:
                return _error(409, "conflict", str(exc))

        return handler

    # -- session --------------------------------------------------------------------------

    async def login(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        body = await _body(request, LoginRequest)
        source = self.source(request)
        now = self.s.clock()
        login, domain = body.login, body.domain
        if domain is None and "@" in login:
            login, _, domain = login.rpartition("@")
        ident = f"{(domain or '').lower()}/{login}" if domain is not None else f"op/{login}"
        verdict = self.s.guard.check(f"ip:{source}", ident, now)
        if not verdict.allowed:
            self.accounts.record_login(source, ident, ok=False, reason="throttled")
            raise _Throttled(verdict.retry_after)
        params = self.s.password_params
        subject: tuple[str, int] | None = None
        contract_id: int | None = None
        refusal: str | None = None
        if domain is None:
            secret = self.accounts.operator_secret(login)
            if secret is None:
                await self._run(burn_verify, body.password, params)
            elif await self._run(verify_password, body.password, secret[1]):
                subject = ("operator", secret[0])
        else:
            found = self.accounts.login_candidate(domain, login)
            if found is None:
                await self._run(burn_verify, body.password, params)
            else:
                contract, secrets = found
                contract_id = contract.id
                if await self._run(verify_password, body.password, secrets.password_hash):
                    subject = ("id", secrets.id)
                    refusal = self.accounts.login_allowed(contract, secrets)
        if subject is None:
            self.s.guard.failure(f"ip:{source}", ident, now)
            self.accounts.record_login(
                source, ident, ok=False, contract_id=contract_id, reason="bad credentials"
            )
            return _error(401, "invalid_credentials", "wrong login or password")
        self.s.guard.success(f"ip:{source}", ident)
        if refusal is not None:
            self.accounts.record_login(
                source, ident, ok=False, contract_id=contract_id, reason=refusal
            )
            return _error(403, "forbidden", refusal)
        token, expires = self.s.sessions.create(subject[0], subject[1], source, now)
        self.accounts.record_login(source, ident, ok=True, contract_id=contract_id)
        principal = (
            self.accounts.principal_for_operator(subject[1])
            if subject[0] == "operator"
            else self.accounts.principal_for_id(subject[1])
        )
        assert principal is not None
        resp = _json(
            LoginResponse(
                token,
                expires,
                principal.role,
                principal.login,
                principal.contract_id,
                principal.domain,
            )
        )
        resp.set_cookie(
            COOKIE,
            token,
            max_age=int(expires - now),
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
        return resp

    async def logout(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        self.s.sessions.end(ctx.token)
        resp = _json(Ok())
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def me(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        p = ctx.principal
        identity = None
        if p.role is not Role.OPERATOR:
            identity = self.accounts.get_id(ctx.actor, p.subject_id)
        return _json(Me(p.role, p.login, p.contract_id, p.domain, identity))

    async def own_password(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, OwnPassword)
        p = ctx.principal
        if p.role is Role.OPERATOR:
            secret = self.accounts.store.operator_secret(p.login)
            stored = secret[1] if secret else ""
        else:
            secrets = self.accounts.store.secrets_by_id(p.subject_id)
            stored = secrets.password_hash if secrets else ""
        if not await self._run(verify_password, body.current_password, stored):
            self.accounts.audit(
                ctx.actor,
                "password.change",
                p.describe(),
                outcome="failed",
                contract_id=p.contract_id,
            )
            raise InvalidInput("current_password", "does not match")
        prepared = await self._prepare(body.new_password)
        if p.role is Role.OPERATOR:
            self.accounts.create_operator(
                Actor(Principal(Role.SYSTEM, 0, p.login), ctx.actor.source), p.login, prepared
            )
        else:
            self.accounts.change_own_password(ctx.actor, prepared, sip_password=body.sip_password)
        return _json(Ok())

    # -- contracts (provider operators) ---------------------------------------------------

    async def list_contracts(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        status_text = request.query.get("status")
        try:
            status = ContractStatus(status_text) if status_text else None
        except ValueError as exc:
            raise InvalidInput("status", "one of " + ", ".join(ContractStatus)) from exc
        return _json(self.accounts.list_contracts(ctx.actor, status))

    async def apply_contract(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, ContractApply)
        contract = self.accounts.apply_contract(
            ctx.actor,
            name=body.name,
            email=body.email,
            domain=body.domain,
            start_date=body.start_date,
        )
        return _json(contract, 201)

    async def get_contract(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(self.accounts.get_contract(ctx.actor, _int(request, "id")))

    async def approve(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, ContractApprove)
        contract_id = _int(request, "id")
        self.accounts.get_contract(ctx.actor, contract_id)
        prepared = await self._prepare(body.admin_password)
        issued = self.accounts.approve_contract(
            ctx.actor,
            contract_id,
            admin_login=body.admin_login,
            admin_password=prepared,
            start_date=body.start_date,
        )
        return _json(issued)

    async def refuse(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, Reason)
        return _json(
            self.accounts.refuse_contract(ctx.actor, _int(request, "id"), reason=body.reason)
        )

    def _transition(self, name: str) -> Handler:
        async def handler(request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
            assert ctx is not None
            body = await _body(request, Reason)
            contract_id = _int(request, "id")
            if name == "suspend":
                result = self.accounts.suspend_contract(
                    ctx.actor, contract_id, reason=body.reason, emergency=body.emergency
                )
            elif name == "restrict":
                result = self.accounts.restrict_contract(
                    ctx.actor, contract_id, reason=body.reason, emergency=body.emergency
                )
            else:
                result = self.accounts.reinstate_contract(
                    ctx.actor, contract_id, reason=body.reason
                )
            return _json(result)

        return handler

    async def terminate(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, Terminate)
        return _json(
            self.accounts.terminate_contract(
                ctx.actor, _int(request, "id"), end_date=body.end_date, reason=body.reason
            )
        )

    async def reissue(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, PasswordOptional)
        contract_id = _int(request, "id")
        self.accounts.get_contract(ctx.actor, contract_id)
        prepared = await self._prepare(body.password)
        return _json(self.accounts.reissue_admin(ctx.actor, contract_id, prepared))

    # -- users ----------------------------------------------------------------------------

    async def list_users(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(self.accounts.list_ids(ctx.actor, ctx.contract_id(), Role.USER))

    async def create_user(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, UserCreate)
        self.accounts.list_ids(ctx.actor, ctx.contract_id(), Role.USER)  # 403 before hashing
        prepared = await self._prepare(body.password)
        identity = self.accounts.create_user(
            ctx.actor,
            ctx.contract_id(),
            login=body.login,
            password=prepared,
            display_name=body.display_name,
            affiliation_id=body.affiliation_id,
            numbers=body.numbers,
            sip_password=body.sip_password,
        )
        return _json(Created(identity, prepared.plain if prepared.generated else None), 201)

    async def get_user(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        identity = self.accounts.get_id(ctx.actor, _int(request, "id"))
        if identity.role is not Role.USER:
            raise NotFound("not found")
        return _json(identity)

    async def patch_user(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, UserPatch)
        return _json(self.accounts.update_user(ctx.actor, _int(request, "id"), **_given(body)))

    async def revoke_user(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        id_id = _int(request, "id")
        identity = self.accounts.get_id(ctx.actor, id_id)
        if identity.role is not Role.USER:
            raise NotFound("not found")
        return _json(self.accounts.revoke_id(ctx.actor, id_id))

    async def reset_password(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, PasswordOptional)
        id_id = _int(request, "id")
        identity = self.accounts.get_id(ctx.actor, id_id)
        if identity.role is not Role.USER:
            raise NotFound("not found")
        prepared = await self._prepare(body.password)
        identity = self.accounts.reset_password(
            ctx.actor, id_id, prepared, sip_password=body.sip_password
        )
        return _json(Created(identity, prepared.plain if prepared.generated else None))

    async def bind_number(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, NumberBody)
        return _json(self.accounts.bind_number(ctx.actor, _int(request, "id"), body.number))

    async def unbind_number(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(
            self.accounts.unbind_number(
                ctx.actor, _int(request, "id"), request.match_info["number"]
            )
        )

    # -- sub-admins -----------------------------------------------------------------------

    async def list_subadmins(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(self.accounts.list_ids(ctx.actor, ctx.contract_id(), Role.SUBADMIN))

    async def create_subadmin(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, SubadminCreate)
        prepared = await self._prepare(body.password)
        identity = self.accounts.create_subadmin(
            ctx.actor,
            ctx.contract_id(),
            login=body.login,
            password=prepared,
            display_name=body.display_name,
            scope=body.scope,
        )
        return _json(Created(identity, prepared.plain if prepared.generated else None), 201)

    async def subadmin_scope(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, Scope)
        return _json(self.accounts.set_subadmin_scope(ctx.actor, _int(request, "id"), body.scope))

    async def revoke_subadmin(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        id_id = _int(request, "id")
        identity = self.accounts.get_id(ctx.actor, id_id)
        if identity.role is not Role.SUBADMIN:
            raise NotFound("not found")
        return _json(self.accounts.revoke_id(ctx.actor, id_id))

    # -- affiliations ---------------------------------------------------------------------

    async def list_affiliations(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(self.accounts.list_affiliations(ctx.actor, ctx.contract_id()))

    async def create_affiliation(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, AffiliationCreate)
        return _json(
            self.accounts.create_affiliation(
                ctx.actor, ctx.contract_id(), name=body.name, policy=body.policy
            ),
            201,
        )

    async def get_affiliation(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(self.accounts.get_affiliation(ctx.actor, _int(request, "id")))

    async def patch_affiliation(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, AffiliationPatch)
        return _json(
            self.accounts.update_affiliation(ctx.actor, _int(request, "id"), **_given(body))
        )

    async def delete_affiliation(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        self.accounts.delete_affiliation(ctx.actor, _int(request, "id"))
        return _json(Ok())

    # -- devices --------------------------------------------------------------------------

    async def list_devices(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(self.accounts.list_devices(ctx.actor, ctx.contract_id()))

    async def create_device(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, DeviceCreate)
        return _json(
            self.accounts.create_device(
                ctx.actor,
                ctx.contract_id(),
                name=body.name,
                affiliation_id=body.affiliation_id,
                note=body.note,
                numbers=body.numbers,
            ),
            201,
        )

    async def get_device(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(self.accounts.get_device(ctx.actor, _int(request, "id")))

    async def patch_device(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, DevicePatch)
        return _json(self.accounts.update_device(ctx.actor, _int(request, "id"), **_given(body)))

    async def delete_device(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        self.accounts.delete_device(ctx.actor, _int(request, "id"))
        return _json(Ok())

    async def add_device_account(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        body = await _body(request, NumberBody)
        return _json(self.accounts.add_device_account(ctx.actor, _int(request, "id"), body.number))

    async def remove_device_account(
        self, request: web.Request, ctx: Ctx | None
    ) -> web.StreamResponse:
        assert ctx is not None
        return _json(
            self.accounts.remove_device_account(
                ctx.actor, _int(request, "id"), request.match_info["number"]
            )
        )

    # -- audit and live status ------------------------------------------------------------

    async def audit(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError as exc:
            raise InvalidInput("limit", "an integer") from exc
        before_text = request.query.get("before")
        if before_text is not None and not before_text.isdigit():
            raise InvalidInput("before", "an audit entry id")
        before = int(before_text) if before_text else None
        p = ctx.principal
        if p.role is Role.OPERATOR:
            contract_text = request.query.get("contract_id")
            contract = int(contract_text) if contract_text and contract_text.isdigit() else None
        else:
            contract = ctx.contract_id()
        return _json(self.accounts.list_audit(ctx.actor, contract, limit=limit, before_id=before))

    async def registrations(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        users = {i.id: i for i in self.accounts.list_ids(ctx.actor, ctx.contract_id())}
        now = self.s.clock()
        out = [
            RegistrationInfo(
                id_id=b.id_id,
                login=users[b.id_id].login,
                aor=b.aor,
                contact=b.contact,
                q=b.q,
                expires_in=b.expires_in(now),
                transport=b.transport,
                source=f"{b.source_host}:{b.source_port}",
                user_agent=b.user_agent,
            )
            for b in self.s.registrations.registrations(ctx.contract_id(), now)
            if b.id_id in users and in_scope(ctx.principal, users[b.id_id].affiliation_id)
        ]
        return _json(out)

    # -- OpenAPI --------------------------------------------------------------------------

    async def openapi(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        return _json(self._openapi)

    def routes(self) -> list[Route]:
        R = Route
        op, adm, any_ = "operator", "admin, sub-admin", "any logged-in ID"
        t = self._transition
        return [
            R(
                "POST",
                "/login",
                self.login,
                "Log in; returns a token and sets the cookie",
                "anyone",
                LoginRequest,
                LoginResponse,
                auth=False,
            ),
            R("POST", "/logout", self.logout, "End this session", any_, None, Ok),
            R("GET", "/me", self.me, "Who am I", any_, None, Me),
            R(
                "POST",
                "/me/password",
                self.own_password,
                "Change own password",
                any_,
                OwnPassword,
                Ok,
            ),
            R(
                "GET",
                "/contracts",
                self.list_contracts,
                "List contracts (?status=)",
                op,
                None,
                list[Contract],
            ),
            R(
                "POST",
                "/contracts",
                self.apply_contract,
                "Record an application",
                op,
                ContractApply,
                Contract,
            ),
            R(
                "GET",
                "/contracts/{id}",
                self.get_contract,
                "One contract",
                f"{op}, {adm}",
                None,
                Contract,
            ),
            R(
                "POST",
                "/contracts/{id}/approve",
                self.approve,
                "Approve (in order received) and issue the admin ID",
                op,
                ContractApprove,
                IssuedCredentials,
            ),
            R(
                "POST",
                "/contracts/{id}/refuse",
                self.refuse,
                "Refuse with a reason",
                op,
                Reason,
                Contract,
            ),
            R(
                "POST",
                "/contracts/{id}/suspend",
                t("suspend"),
                "Suspend (Art. 21, 22)",
                op,
                Reason,
                Contract,
            ),
            R(
                "POST",
                "/contracts/{id}/restrict",
                t("restrict"),
                "Restrict (Art. 22)",
                op,
                Reason,
                Contract,
            ),
            R(
                "POST",
                "/contracts/{id}/reinstate",
                t("reinstate"),
                "Back to active",
                op,
                Reason,
                Contract,
            ),
            R(
                "POST",
                "/contracts/{id}/terminate",
                self.terminate,
                "Terminate (Art. 23, 25)",
                op,
                Terminate,
                Contract,
            ),
            R(
                "POST",
                "/contracts/{id}/reissue-admin",
                self.reissue,
                "New admin password (Art. 9-5)",
                op,
                PasswordOptional,
                IssuedCredentials,
            ),
            R("GET", "/users", self.list_users, "User IDs (booths)", adm, None, list[Identity]),
            R("POST", "/users", self.create_user, "Create a user ID", adm, UserCreate, Created),
            R("GET", "/users/{id}", self.get_user, "One user ID", adm, None, Identity),
            R(
                "PATCH",
                "/users/{id}",
                self.patch_user,
                "Change name, affiliation, status",
                adm,
                UserPatch,
                Identity,
            ),
            R(
                "POST",
                "/users/{id}/revoke",
                self.revoke_user,
                "Revoke at once (Art. 9-5)",
                adm,
                None,
                Identity,
            ),
            R(
                "POST",
                "/users/{id}/password",
                self.reset_password,
                "Set a new password",
                adm,
                PasswordOptional,
                Created,
            ),
            R(
                "POST",
                "/users/{id}/numbers",
                self.bind_number,
                "Bind a telephone number",
                adm,
                NumberBody,
                Identity,
            ),
            R(
                "DELETE",
                "/users/{id}/numbers/{number}",
                self.unbind_number,
                "Unbind a telephone number",
                adm,
                None,
                Identity,
            ),
            R(
                "GET",
                "/subadmins",
                self.list_subadmins,
                "Sub-admin IDs",
                "admin",
                None,
                list[Identity],
            ),
            R(
                "POST",
                "/subadmins",
                self.create_subadmin,
                "Create a sub-admin ID",
                "admin",
                SubadminCreate,
                Created,
            ),
            R(
                "PUT",
                "/subadmins/{id}/scope",
                self.subadmin_scope,
                "Set the affiliations a sub-admin manages (null: all)",
                "admin",
                Scope,
                Identity,
            ),
            R(
                "POST",
                "/subadmins/{id}/revoke",
                self.revoke_subadmin,
                "Revoke a sub-admin ID",
                "admin",
                None,
                Identity,
            ),
            R(
                "GET",
                "/affiliations",
                self.list_affiliations,
                "Affiliations",
                f"{adm}, user",
                None,
                list[Affiliation],
            ),
            R(
                "POST",
                "/affiliations",
                self.create_affiliation,
                "Create an affiliation",
                adm,
                AffiliationCreate,
                Affiliation,
            ),
            R(
                "GET",
                "/affiliations/{id}",
                self.get_affiliation,
                "One affiliation",
                f"{adm}, user",
                None,
                Affiliation,
            ),
            R(
                "PATCH",
                "/affiliations/{id}",
                self.patch_affiliation,
                "Rename or change the restriction policy",
                adm,
                AffiliationPatch,
                Affiliation,
            ),
            R(
                "DELETE",
                "/affiliations/{id}",
                self.delete_affiliation,
                "Remove an empty affiliation",
                adm,
                None,
                Ok,
            ),
            R(
                "GET",
                "/devices",
                self.list_devices,
                "SIP devices (channels)",
                adm,
                None,
                list[Device],
            ),
            R(
                "POST",
                "/devices",
                self.create_device,
                "Add a SIP device",
                adm,
                DeviceCreate,
                Device,
            ),
            R("GET", "/devices/{id}", self.get_device, "One device", adm, None, Device),
            R(
                "PATCH",
                "/devices/{id}",
                self.patch_device,
                "Change a device",
                adm,
                DevicePatch,
                Device,
            ),
            R("DELETE", "/devices/{id}", self.delete_device, "Remove a device", adm, None, Ok),
            R(
                "POST",
                "/devices/{id}/accounts",
                self.add_device_account,
                "Set a SIP account (number) on a device",
                adm,
                NumberBody,
                Device,
            ),
            R(
                "DELETE",
                "/devices/{id}/accounts/{number}",
                self.remove_device_account,
                "Remove a SIP account from a device",
                adm,
                None,
                Device,
            ),
            R(
                "GET",
                "/audit",
                self.audit,
                "Audit log, newest first (?limit=&before=)",
                f"{adm}, operator",
                None,
                list[AuditEntry],
            ),
            R(
                "GET",
                "/registrations",
                self.registrations,
                "Live SIP registrations",
                adm,
                None,
                list[RegistrationInfo],
            ),
            R(
                "GET",
                "/openapi.json",
                self.openapi,
                "This document",
                "anyone",
                None,
                None,
                auth=False,
            ),
        ]

    def build_openapi(self, routes: list[Route]) -> dict[str, Any]:
        types: list[Any] = [Error]
        for r in routes:
            if r.body is not None:
                types.append(r.body)
            if r.response is not None:
                types.append(r.response)
        schemas, components = msgspec.json.schema_components(
            types, ref_template="#/components/schemas/{name}"
        )
        schema_of = dict(zip(map(id, types), schemas, strict=True))
        paths: dict[str, dict[str, Any]] = {}
        for r in routes:
            op: dict[str, Any] = {
                "summary": r.summary,
                "description": f"Allowed for: {r.roles}.",
                "responses": {
                    "200": {"description": "OK"},
                    "400": {
                        "description": "Bad input; `field` names it",
                        "content": {"application/json": {"schema": schema_of[id(Error)]}},
                    },
                    "404": {"description": "Not found (or not yours)"},
                },
            }
            if r.response is not None:
                op["responses"]["200"]["content"] = {
                    "application/json": {"schema": schema_of[id(r.response)]}
                }
            if r.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schema_of[id(r.body)]}},
                }
            if r.auth:
                op["security"] = [{"bearer": []}, {"cookie": []}]
                op["responses"]["401"] = {"description": "Not logged in"}
                op["responses"]["403"] = {"description": "Not allowed"}
            params = re.findall(r"{(\w+)}", r.path)
            if params:
                op["parameters"] = [
                    {
                        "name": p,
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer" if p == "id" else "string"},
                    }
                    for p in params
                ]
            paths.setdefault(PREFIX + r.path, {})[r.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": "Outbound Pro admin API", "version": "1"},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
                },
            },
        }

    def setup(self, app: web.Application) -> None:
        routes = self.routes()
        self._openapi = self.build_openapi(routes)
        for r in routes:
            app.router.add_route(r.method, PREFIX + r.path, self.wrap(r))


def make_setup(services: ApiServices) -> Callable[[web.Application], None]:
    """The hook for ``web.app.create_app(registry, setups)``."""
    return Api(services).setup
