"""CDR and recording endpoints under ``/api/v1``: query, CSV export, search, download.

Authentication, error mapping and JSON encoding are the admin API's (:class:`web.api.Api`):
this module only adds routes. Who sees what is decided by ``accounts.policy``:

* admins see their contract's calls; sub-admins those of the affiliations they manage; users
  their own calls, and recordings of others when ``policy.interaction(..., RECORDINGS)``
  allows (the target affiliation's ``others_may_see_recordings`` and the user's own
  ``recordings_allowed``);
* anything of another contract is a 404, identical to a missing one.

Recordings are streamed with HTTP Range (aiohttp's ``FileResponse`` answers ``Range`` with 206,
``If-Range`` and 416), so a browser player can seek in an hour-long call.

Query parameters (all optional): ``from``/``to`` (ISO 8601 or Unix seconds), ``booth`` (login),
``number`` (E.164 or national), ``direction``, ``min_duration`` (seconds), ``limit``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from outbound_pro.accounts import numbers as jp
from outbound_pro.accounts.errors import Forbidden, InvalidInput, NotFound
from outbound_pro.accounts.models import Role
from outbound_pro.accounts.policy import Effect, Interaction, Principal, UserRef, interaction
from outbound_pro.b2bua.record import CallRecord
from outbound_pro.store.accounts import AccountsStore
from outbound_pro.store.calls import CallStore, CdrFilter, Recording
from outbound_pro.web.api import PREFIX, Api, ApiServices, Ctx, Route, _int, _json

CSV_COLUMNS = (
    "call_ref",
    "direction",
    "booth",
    "caller",
    "callee",
    "trunk",
    "setup_at",
    "ringing_at",
    "answer_at",
    "end_at",
    "ring_seconds",
    "talk_seconds",
    "hangup_by",
    "status",
    "reason",
    "codec_a",
    "codec_b",
    "packets_a",
    "packets_b",
    "lost_a",
    "lost_b",
    "jitter_ms_a",
    "jitter_ms_b",
    "recording_id",
)


def _iso(at: float | None) -> str | None:
    return None if at is None else dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


def _time(text: str | None, name: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(name, "ISO 8601 or Unix seconds expected") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def cdr_row(rec: CallRecord) -> dict[str, Any]:
    """A CDR as the API and the CSV show it (ISO times, both legs' media flattened)."""
    a, b = rec.media_a, rec.media_b
    return {
        "call_ref": rec.call_ref,
        "direction": rec.direction,
        "booth": rec.booth,
        "caller": rec.caller,
        "callee": rec.callee,
        "trunk": rec.trunk,
        "setup_at": _iso(rec.setup_at),
        "ringing_at": _iso(rec.ringing_at),
        "answer_at": _iso(rec.answer_at),
        "end_at": _iso(rec.end_at),
        "ring_seconds": rec.ring_seconds,
        "talk_seconds": rec.talk_seconds,
        "hangup_by": rec.hangup_by,
        "status": rec.status,
        "reason": rec.reason,
        "codec_a": rec.codec_a,
        "codec_b": rec.codec_b,
        "packets_a": a.packets if a else 0,
        "packets_b": b.packets if b else 0,
        "lost_a": a.lost if a else 0,
        "lost_b": b.lost if b else 0,
        "jitter_ms_a": a.jitter_ms if a else 0.0,
        "jitter_ms_b": b.jitter_ms if b else 0.0,
        "recording_id": rec.recording_id,
    }


def recording_row(rec: Recording) -> dict[str, Any]:
    return {
        "id": rec.id,
        "call_ref": rec.call_ref,
        "booth": rec.booth,
        "caller": rec.caller,
        "callee": rec.callee,
        "direction": rec.direction,
        "started_at": _iso(rec.started_at),
        "ended_at": _iso(rec.ended_at),
        "duration": rec.duration,
        "size": rec.size,
        "sha256": rec.sha256,
        "state": rec.state,
        "expires_at": _iso(rec.expires_at),
    }


class CallsApi:
    def __init__(self, api: Api, calls: CallStore, accounts: AccountsStore) -> None:
        self.api = api
        self.calls = calls
        self.accounts = accounts

    # -- scoping --------------------------------------------------------------------------

    def _filter(self, request: web.Request, principal: Principal) -> CdrFilter:
        if principal.role not in (Role.ADMIN, Role.SUBADMIN, Role.USER):
            raise Forbidden("call records belong to contracts; log in as a contract ID")
        assert principal.contract_id is not None
        q = request.query
        f = CdrFilter(contract_id=principal.contract_id)
        f.since = _time(q.get("from"), "from")
        f.until = _time(q.get("to"), "to")
        if q.get("direction"):
            if q["direction"] not in ("outbound", "inbound", "internal"):
                raise InvalidInput("direction", "direction is outbound, inbound or internal")
            f.direction = q["direction"]
        if q.get("number"):
            try:
                f.number = jp.normalize(q["number"])
            except jp.InvalidNumber as exc:
                raise InvalidInput("number", str(exc)) from exc
        if q.get("min_duration"):
            try:
                f.min_duration = float(q["min_duration"])
            except ValueError as exc:
                raise InvalidInput("min_duration", "min_duration is seconds") from exc
        if q.get("limit"):
            if not q["limit"].isdigit() or not 0 < int(q["limit"]) <= 10000:
                raise InvalidInput("limit", "limit is 1..10000")
            f.limit = int(q["limit"])
        if q.get("booth"):
            ident = self.accounts.identity_by_login(principal.contract_id, q["booth"])
            f.id_ids = [ident.id] if ident is not None else []
        if principal.role is Role.SUBADMIN and principal.scope is not None:
            f.affiliation_ids = sorted(principal.scope)
        return f

    def _may_see_recording(self, principal: Principal, rec: Recording) -> Effect:
        if rec.contract_id != principal.contract_id:
            return Effect.NOT_FOUND
        target = UserRef(rec.id_id or 0, rec.contract_id, rec.affiliation_id)
        target_aff = (
            self.accounts.get_affiliation(rec.affiliation_id) if rec.affiliation_id else None
        )
        actor_aff = (
            self.accounts.get_affiliation(principal.affiliation_id)
            if principal.affiliation_id
            else None
        )
        return interaction(
            principal,
            target,
            Interaction.RECORDINGS,
            target_aff.policy if target_aff else None,
            actor_aff.policy if actor_aff else None,
        ).effect

    # -- handlers -------------------------------------------------------------------------

    def _cdrs(self, request: web.Request, ctx: Ctx) -> list[CallRecord]:
        principal = ctx.principal
        f = self._filter(request, principal)
        if principal.role is Role.USER:
            f.id_ids = [principal.subject_id]
        return self.calls.query_cdrs(f)

    async def list_cdrs(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json([cdr_row(r) for r in self._cdrs(request, ctx)])

    async def cdrs_csv(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for rec in self._cdrs(request, ctx):
            writer.writerow(cdr_row(rec))
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="cdrs.csv"'},
        )

    async def search_recordings(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        principal = ctx.principal
        found = self.calls.search_recordings(self._filter(request, principal))
        visible = [r for r in found if self._may_see_recording(principal, r) is Effect.ALLOW]
        return _json([recording_row(r) for r in visible])

    def _recording(self, request: web.Request, ctx: Ctx) -> Recording:
        principal = ctx.principal
        if principal.role not in (Role.ADMIN, Role.SUBADMIN, Role.USER):
            raise NotFound("not found")
        rec = self.calls.get_recording(_int(request, "recording_id"))
        if rec is None:
            raise NotFound("not found")
        effect = self._may_see_recording(principal, rec)
        if effect is Effect.NOT_FOUND:
            raise NotFound("not found")
        if effect is Effect.FORBIDDEN:
            raise Forbidden("recordings of this booth are not visible to you")
        return rec

    async def get_recording(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        return _json(recording_row(self._recording(request, ctx)))

    async def recording_audio(self, request: web.Request, ctx: Ctx | None) -> web.StreamResponse:
        assert ctx is not None
        rec = self._recording(request, ctx)
        path = Path(rec.path)
        if not path.is_file():
            raise NotFound("not found")
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "audio/wav",
                "Content-Disposition": f'attachment; filename="{rec.call_ref}.wav"',
                "Cache-Control": "private, no-store",
            },
        )

    def routes(self) -> list[Route]:
        h = "admin, subadmin (scope), user (own; recordings by affiliation policy)"
        return [
            Route("GET", "/cdrs", self.list_cdrs, "Query call detail records", h),
            Route("GET", "/cdrs.csv", self.cdrs_csv, "Export call detail records as CSV", h),
            Route("GET", "/recordings", self.search_recordings, "Search recordings", h),
            Route("GET", "/recordings/{recording_id}", self.get_recording, "One recording", h),
            Route(
                "GET",
                "/recordings/{recording_id}/audio",
                self.recording_audio,
                "Download or stream a recording (HTTP Range)",
                h,
            ),
        ]

    def setup(self, app: web.Application) -> None:
        for r in self.routes():
            app.router.add_route(r.method, PREFIX + r.path, self.api.wrap(r))


def make_calls_setup(
    services: ApiServices, calls: CallStore, accounts: AccountsStore
) -> Callable[[web.Application], None]:
    """The hook for ``web.app.create_app``, beside ``web.api.make_setup``."""
    return CallsApi(Api(services), calls, accounts).setup
