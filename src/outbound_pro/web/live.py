"""The admin console's live status board: ``GET /api/v1/live`` (WebSocket).

Each booth (user ID) the caller may see is ``offline``, ``registered``, ``ringing`` or
``in_call`` (with the other party and the answer time). The browser never polls: the hub keeps
one board per subscriber and pushes the full board when it changes.

Why a server-side tick as well as :meth:`LiveHub.poke`: registrations also *expire* and calls
ring out without any event anybody emits, so the hub re-reads the state once per ``interval``
(one indexed query per subscribed contract, cheap) and sends only differences. ``poke()`` wakes
it at once; wire it to anything that knows of a change (registrar, B2BUA, account events) to
make the board immediate rather than within ``interval``.

Scope is the accounts policy's, not this module's: the booth list comes from
``AccountService.list_ids`` for the caller, which keeps a scoped sub-admin to its affiliations
and refuses roles without ``USER_VIEW`` (operators, users) — those get close code 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from aiohttp import WSMsgType, web

from outbound_pro.accounts.errors import Forbidden, NotFound
from outbound_pro.accounts.models import IdStatus, Role
from outbound_pro.registrar.model import RegistrationView
from outbound_pro.web.api import Api, Ctx, _AuthRequired

LIVE_PATH = "/api/v1/live"


class CallView(Protocol):
    """The part of a B2BUA call the board reads (``b2bua.call.Call`` has it)."""

    @property
    def state(self) -> str: ...

    @property
    def record(self) -> Any: ...


class CallSource(Protocol):
    """What the hub reads from the B2BUA: its live calls by reference."""

    @property
    def calls(self) -> Mapping[str, CallView]: ...


class BoothState(msgspec.Struct):
    id: int
    login: str
    display_name: str
    affiliation_id: int | None
    status: str  # offline | registered | ringing | in_call
    transport: str | None = None
    peer: str | None = None  # the other party of a call
    since: float | None = None  # answer time of the current call (Unix seconds)
    restricted: bool = False


class Board(msgspec.Struct):
    type: str
    at: float
    calls_available: bool
    booths: list[BoothState]


_encoder = msgspec.json.Encoder()


@dataclass(eq=False)
class _Subscriber:
    ctx: Ctx
    ws: web.WebSocketResponse
    last: list[BoothState] | None = None


@dataclass(eq=False)
class LiveHub:
    """Builds and pushes boards. *calls* is the B2BUA (or ``None`` before it runs)."""

    api: Api
    registrations: RegistrationView
    calls: CallSource | None = None
    interval: float = 1.0
    clock: Callable[[], float] = time.time
    _subs: set[_Subscriber] = field(default_factory=set)
    _wake: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Something changed: recompute the boards now instead of at the next tick."""
        if self._wake is not None:
            self._wake.set()

    def board_for(self, ctx: Ctx) -> list[BoothState]:
        """The booths *ctx* may see, with their state; raises Forbidden for other roles."""
        principal = ctx.principal
        if principal.role not in (Role.ADMIN, Role.SUBADMIN):
            raise Forbidden("the live board is for admins and sub-admins")
        contract_id = ctx.contract_id()
        ids = self.api.accounts.list_ids(ctx.actor, contract_id, Role.USER)
        now = self.clock()
        bindings: dict[int, str] = {}
        for b in self.registrations.registrations(contract_id, now):
            bindings.setdefault(b.id_id, b.transport)
        calls: dict[int, tuple[str, str, float | None]] = {}
        if self.calls is not None:
            for call in list(self.calls.calls.values()):
                rec = call.record
                if rec.contract_id != contract_id or rec.id_id is None or call.state == "ended":
                    continue
                other = rec.callee if rec.direction == "outbound" else rec.caller
                if call.state == "answered":
                    calls[rec.id_id] = ("in_call", other, rec.answer_at)
                else:
                    calls.setdefault(rec.id_id, ("ringing", other, None))
        booths = []
        for ident in ids:
            if ident.status is IdStatus.REVOKED:
                continue
            state = BoothState(
                ident.id,
                ident.login,
                ident.display_name,
                ident.affiliation_id,
                "offline",
                restricted=ident.status is IdStatus.RESTRICTED,
            )
            if ident.id in bindings:
                state.status = "registered"
                state.transport = bindings[ident.id]
            if ident.id in calls:
                state.status, state.peer, state.since = calls[ident.id]
            booths.append(state)
        return booths

    async def _send(self, sub: _Subscriber) -> None:
        try:
            board = self.board_for(sub.ctx)
        except (Forbidden, NotFound):
            await sub.ws.close(code=4403, message=b"forbidden")
            return
        if board == sub.last:
            return
        sub.last = board
        payload = Board("board", self.clock(), self.calls is not None, board)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await sub.ws.send_bytes(_encoder.encode(payload))

    async def _run(self) -> None:
        assert self._wake is not None
        while self._subs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            for sub in list(self._subs):
                if self.api.s.sessions.resolve(sub.ctx.token, self.clock()) is None:
                    # Logged out, expired, revoked or suspended: the board must stop at once.
                    await sub.ws.close(code=4401, message=b"session ended")
                    continue
                await self._send(sub)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            ctx = self.api.authenticate(request)
        except _AuthRequired:
            return web.json_response(
                {"error": "unauthenticated", "message": "log in first (POST /api/v1/login)"},
                status=401,
            )
        if ctx.principal.role not in (Role.ADMIN, Role.SUBADMIN):
            return web.json_response(
                {"error": "forbidden", "message": "the live board is for admins and sub-admins"},
                status=403,
            )
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        sub = _Subscriber(ctx, ws)
        self._subs.add(sub)
        if self._wake is None:
            self._wake = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            await self._send(sub)
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                # Any text from the page ("refresh") asks for the board again, e.g. after the
                # tab comes back from the background.
                sub.last = None
                self.poke()
        finally:
            self._subs.discard(sub)
        return ws

    def setup(self, app: web.Application) -> None:
        app.router.add_get(LIVE_PATH, self.handle)
