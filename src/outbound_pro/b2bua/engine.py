"""The B2BUA as a transaction user: new INVITEs become calls, everything else finds its call.

Deciding what a new INVITE is, in this order (and why):

1. The From domain is a contract's SIP domain: a booth is calling. Booths must prove it with
   digest, exactly like REGISTER (407 + Proxy-Authenticate, the registrar's authenticator and
   failure guard), because the From header is whatever the sender typed.
2. Otherwise it is a call from the network to a number: the number must belong to a contract
   (404 when it does not: nothing here answers for it) and the packet must come from a trunk's
   ``trusted_sources`` (403 when it does not: only the carrier may inject calls).

Then ``accounts.policy.call_setup`` decides (status, outbound permission, prefixes, hours,
concurrency), special numbers (1XY: 110, 118, 119 ...) are refused unless configured, and the
call is routed: to the trunk, to the contacts of a booth of the same contract (internal), or,
inbound, to every registered contact of the number's booth in parallel. Every refusal after
authentication leaves a CDR saying why.

Browsers (WebRTC booths, registered over SIP/WebSocket) are terminated in the WebRTC gateway
when one is given: a booth INVITE whose SDP asks for DTLS-SRTP is answered by the gateway
(488 when it cannot be), and a contact registered over ws/wss is offered a gateway leg; the
call, the relay, the recording and the CDR see the leg's plain RTP side only. Browser SIP
libraries (JsSIP, SIP.js) know only MD5 and read one of several challenges (JsSIP the last),
so a booth on a WebSocket gets the MD5 challenge alone.

Before any of that, admission control (``admission.py``) may refuse a new INVITE with 503
and Retry-After when the server is overloaded. What routing reads from the database is
memoised between calls (``facts.py``), and CDR and recording changes are group-committed, at
most a hundred transactions a second (``cdr_writer.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

import msgspec

from outbound_pro.accounts import numbers as jp
from outbound_pro.accounts.digest import Outcome, ParseError, parse_authorization
from outbound_pro.accounts.models import AffiliationPolicy, Contract, NumberOwner, Trunk
from outbound_pro.accounts.policy import call_setup
from outbound_pro.accounts.throttle import Level
from outbound_pro.b2bua.admission import Admission, ReceiveBacklog, Verdict
from outbound_pro.b2bua.call import (
    ALLOW,
    Call,
    Side,
    Target,
    reason_header,
    recording_path,
)
from outbound_pro.b2bua.cdr_writer import CdrWriter
from outbound_pro.b2bua.dialog import Dialog
from outbound_pro.b2bua.facts import BoothFacts, RoutingFacts
from outbound_pro.b2bua.record import CallRecord
from outbound_pro.b2bua.retention import purge_expired, recover_interrupted
from outbound_pro.b2bua.routing import (
    NumberFormat,
    dialled_digits,
    from_trunk,
    special_service,
    to_trunk_format,
    trusted_trunk,
)
from outbound_pro.config import B2buaConfig
from outbound_pro.media.recorder import CallRecorder, RecorderPool, RecordingInfo
from outbound_pro.metrics import Registry
from outbound_pro.registrar.core import Registrar
from outbound_pro.rtp.relay import RelayEngine
from outbound_pro.sip import sdp as sdplib
from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.message import Request, Response, make_response, new_branch
from outbound_pro.sip.router import Router
from outbound_pro.sip.stack import Destination, SipStack, Source
from outbound_pro.sip.transaction import (
    ClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    TransactionKey,
    TransactionStateError,
)
from outbound_pro.sip.uri import SipUri
from outbound_pro.store.calls import CallStore, RecordingEnd
from outbound_pro.webrtc import OfferError, WebRtcGateway, WebRtcLeg, is_webrtc_offer

log = logging.getLogger("outbound_pro.b2bua")
_ANY_VALID_NUMBER = "0312345678"  # stands in for a special code where policy wants a number
WEBSOCKET_KINDS = ("ws", "wss")


class _Reject(Exception):
    """Refuse the INVITE with *status*; *cdr* says whether the refusal is a call to record."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        record: CallRecord | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []
        self.record = record


@dataclass
class _Plan:
    record: CallRecord
    booth_side: Side
    targets: list[Target]
    busy_id: int | None  # the booth that becomes busy with this call


class B2bua:
    """Owns every call on the loop; see the module docstring for the routing rules."""

    def __init__(
        self,
        stack: SipStack,
        router: Router,
        registrar: Registrar,
        relay: RelayEngine,
        recorders: RecorderPool,
        calls: CallStore,
        config: B2buaConfig,
        *,
        public_host: str,
        media_host: str,
        recordings_dir: Path,
        metrics: Registry,
        clock: Callable[[], float] = time.time,
        webrtc: WebRtcGateway | None = None,
    ) -> None:
        self.stack = stack
        self.webrtc = webrtc
        self.router = router
        self.registrar = registrar
        self.accounts = registrar.accounts
        self.relay = relay
        self.recorders = recorders
        self.calls_store = calls
        self.config = config
        self.public_host = public_host
        self.media_host = media_host
        self.recordings_dir = recordings_dir
        self.clock = clock
        self.calls: dict[str, Call] = {}
        self._dialogs: dict[tuple[str, str], tuple[Call, Side]] = {}
        self._invites: dict[TransactionKey, Call] = {}
        # browser INVITEs whose gateway leg is being made; True once CANCELled
        self._preparing: dict[TransactionKey, bool] = {}
        self._client: dict[TransactionKey, Callable[[ResponseReceived], None]] = {}
        self._active_aff: dict[int, int] = {}
        self._busy: dict[int, int] = {}
        self._metrics = metrics
        self._purger: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.facts = RoutingFacts(self.accounts, calls)
        self.writer = CdrWriter(calls, self.facts)
        self._setting_up: set[str] = set()  # refs of calls whose caller has no final answer
        self.admission = Admission(
            in_setup=self.calls_in_setup,
            max_calls_in_setup=config.max_calls_in_setup,
            backlog_limit=0.0,  # until `start` finds the SIP socket
        )
        self._outcomes = metrics.counter(
            "outbound_pro_calls_total", "Calls by final SIP status", ("status",)
        )
        self._overload = metrics.counter(
            "outbound_pro_calls_overload_rejected_total",
            "New INVITEs refused with 503 by admission control, by cause",
            ("cause",),
        )
        metrics.gauge("outbound_pro_calls_active", "Calls in progress")
        metrics.gauge("outbound_pro_calls_in_setup", "Calls whose caller has no final response")
        metrics.on_collect(self._collect)
        for method in ("INVITE", "UPDATE"):
            router.handle(method, self._on_offer_request)
        router.handle("ACK", self._on_ack)
        router.handle("BYE", self._on_dialog_request)
        router.handle("CANCEL", self._on_cancel)
        router.handle("OPTIONS", self._on_options)
        router.handle("INFO", self._on_dialog_request)
        router.on_response(self._on_response)

    def _collect(self) -> None:
        self._metrics.gauge("outbound_pro_calls_active", "").set(len(self.calls))
        self._metrics.gauge("outbound_pro_calls_in_setup", "").set(self.calls_in_setup())

    def calls_in_setup(self) -> int:
        return len(self._setting_up) + len(self._preparing)

    # -- CallHost ---------------------------------------------------------------------------

    @property
    def contact(self) -> str:
        port = self.stack.bound_ports().get("udp", 5060)
        return f"<sip:{self.public_host}:{port}>"

    def via(self, destination: Destination) -> str:
        kind = destination.kind
        port = self.stack.bound_ports().get(kind, 5060)
        return f"SIP/2.0/{kind.upper()} {self.public_host}:{port};branch={new_branch()};rport"

    def send(
        self,
        request: Request,
        destination: Destination,
        on_response: Callable[[ResponseReceived], None] | None,
    ) -> ClientTransaction:
        txn = self.stack.send_request(request, destination)
        if on_response is not None:
            self._client[txn.key] = on_response
        else:
            self._client[txn.key] = _ignore
        return txn

    def send_ack(self, request: Request, destination: Destination) -> None:
        self.stack.send_stateless(request, destination)

    def respond(self, txn: ServerTransaction, response: Response) -> None:
        try:
            self.stack.respond(txn, response)
        except TransactionStateError:
            # A final response raced another one (a CANCEL and the callee's answer): the
            # first one stands, as RFC 3261 §9.2 wants.
            log.debug("response after a final one dropped", extra={"status": response.status})

    def bind_dialog(self, call: Call, side: Side, dialog: Dialog) -> None:
        key = (dialog.call_id, dialog.local_tag)
        self._dialogs[key] = (call, side)
        call.dialog_keys.append(key)

    def call_answered(self, call: Call) -> None:
        self._setting_up.discard(call.ref)

    def call_ended(self, call: Call) -> None:
        self.calls.pop(call.ref, None)
        self._setting_up.discard(call.ref)
        self._invites.pop(call.a_txn.key, None)
        rec = call.record
        if rec.affiliation_id is not None:
            self._active_aff[rec.affiliation_id] = self._active_aff.get(rec.affiliation_id, 1) - 1
        busy = call.busy_id
        if busy is not None:
            self._busy[busy] = self._busy.get(busy, 1) - 1
        self._outcomes.inc(1, str(rec.status))
        # Late retransmissions and the callee's answer to our BYE still find the call for
        # 64*T1; then its dialogs are forgotten.
        asyncio.get_running_loop().call_later(32.0, self._forget, call.dialog_keys)

    def _forget(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            self._dialogs.pop(key, None)

    def new_recorder(self, call: Call) -> CallRecorder | None:
        """The call's recorder; its index row is made when its first audio is (see
        `_recording_started`): a call that carries no RTP has no WAV and no row."""
        rec = call.record
        if not self.config.record or rec.contract_id is None:
            return None
        started = self.clock()
        path = recording_path(self.recordings_dir, call.ref, started)
        audio = call.offer.audio()
        return self.recorders.recorder(
            path,
            rtpmap=audio.rtpmap if audio else None,
            on_start=lambda: self._recording_started(call, started, path),
        )

    def _recording_started(self, call: Call, started: float, path: Path) -> None:
        """Index the recording (state ``recording``) before any of its audio can reach the
        disk, so a crash leaves a row for every file; committed at once, not batched."""
        rec = call.record
        assert rec.contract_id is not None
        with self.facts.own_writes():
            extended = self.facts.retention_extended(rec.id_id)
            days = self.config.retention_days_extended if extended else self.config.retention_days
            call.recording_id = rec.recording_id = self.calls_store.start_recording(
                call_ref=call.ref,
                contract_id=rec.contract_id,
                id_id=rec.id_id,
                affiliation_id=rec.affiliation_id,
                booth=rec.booth,
                caller=rec.caller,
                callee=rec.callee,
                direction=rec.direction,
                started_at=started,
                path=str(path),
                retention_days=days,
            )
        self.writer.save(rec)

    def finish_recording(self, recording_id: int, info: object, ended_at: float) -> None:
        assert isinstance(info, RecordingInfo)
        self.writer.recording_ended(
            RecordingEnd(
                recording_id,
                ended_at,
                info.duration,
                info.size,
                info.sha256,
                "failed" if info.error else "complete",
            )
        )

    def save(self, call: Call) -> None:
        self.writer.save(call.record)

    # -- start-up, shutdown, retention ------------------------------------------------------

    async def start(self) -> None:
        """Close what a killed server left open, then purge expired recordings hourly."""
        await self.recover()
        self._watch_backlog()
        self._purger = asyncio.get_running_loop().create_task(self._purge_loop())

    def _watch_backlog(self) -> None:
        """Give admission control the SIP UDP socket's receive queue to watch."""
        udp = getattr(self.stack, "udp", None)
        transport = getattr(udp, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None or self.config.overload_backlog <= 0:
            return
        backlog = ReceiveBacklog(sock)
        if backlog.buffer:
            self.admission.backlog = backlog
            self.admission.backlog_limit = self.config.overload_backlog

    async def stop(self) -> None:
        if self._purger is not None:
            self._purger.cancel()
        for call in list(self.calls.values()):
            call.hangup("system", "server shutting down")
        pending = [c.finished for c in list(self.calls.values())]
        if pending:
            await asyncio.wait(pending, timeout=5)
        self.writer.flush()

    async def recover(self) -> None:
        await recover_interrupted(self.calls_store, self.clock())

    async def _purge_loop(self) -> None:
        while True:
            await purge_expired(self.calls_store, self.clock())
            await asyncio.sleep(3600)

    # -- SIP events ------------------------------------------------------------------------

    def _in_dialog(self, request: Request) -> tuple[Call, Side] | None:
        tag = request.to_tag
        if tag is None:
            return None
        return self._dialogs.get((request.call_id, tag))

    def _on_offer_request(self, event: RequestReceived, source: Source) -> None:
        txn = event.transaction
        request = event.request
        if txn is None:
            return
        if request.to_tag is not None or request.method == "UPDATE":
            found = self._in_dialog(request)
            if found is None:
                self.respond(txn, make_response(request, 481, to_tag=secrets.token_hex(6)))
            else:
                found[0].on_offer(found[1], txn, request)
            return
        verdict = self.admission.check()
        if verdict is not Verdict.ADMIT:
            self._overload.inc(1, verdict.value)
            headers = [("Retry-After", str(self.config.overload_retry_after))]
            self._refuse(
                txn, request, _Reject(503, f"overloaded ({verdict.value})", headers=headers)
            )
            return
        try:
            self._new_call(txn, request, source)
        except _Reject as rej:
            self._refuse(txn, request, rej)
        except SipParseError as err:
            self.respond(txn, make_response(request, err.status or 400, err.reason))

    def _refuse(self, txn: ServerTransaction, request: Request, rej: _Reject) -> None:
        headers = list(rej.headers)
        if rej.status >= 400 and rej.status not in (401, 407):
            headers.append(reason_header(rej.status, rej.reason))
        self.respond(
            txn,
            make_response(request, rej.status, None, to_tag=secrets.token_hex(6), headers=headers),
        )
        if rej.record is not None:
            rec = rej.record
            rec.status, rec.reason, rec.end_at = rej.status, rej.reason, self.clock()
            rec.hangup_by = "caller" if rej.status == 487 else "system"
            self.writer.save(rec)
            self._outcomes.inc(1, str(rej.status))

    def _on_ack(self, event: RequestReceived, source: Source) -> None:
        found = self._in_dialog(event.request)
        if found is not None:
            found[0].on_ack(found[1], event.request)

    def _on_dialog_request(self, event: RequestReceived, source: Source) -> None:
        """BYE and INFO: to the call whose dialog they belong to (481 when none)."""
        txn = event.transaction
        if txn is None:
            return
        found = self._in_dialog(event.request)
        if found is None:
            self.respond(txn, make_response(event.request, 481, to_tag=secrets.token_hex(6)))
        elif event.request.method == "BYE":
            found[0].on_bye(found[1], txn, event.request)
        else:
            found[0].on_info(found[1], txn, event.request)

    def _on_options(self, event: RequestReceived, source: Source) -> None:
        txn = event.transaction
        if txn is None:
            return
        found = self._in_dialog(event.request)
        if found is None:
            self.router.reply(txn, self.router.options_response(event))
        else:
            found[0].on_options(found[1], txn, event.request)

    def _on_cancel(self, event: RequestReceived, source: Source) -> None:
        txn = event.transaction
        if txn is None:
            return
        target = event.cancels
        if target is None:
            status = 200 if event.cancels_finished else 481
            self.respond(txn, make_response(event.request, status, to_tag=secrets.token_hex(6)))
            return
        self.respond(txn, make_response(event.request, 200))
        if target.key in self._preparing:
            self._preparing[target.key] = True
            return
        call = self._invites.get(target.key)
        if call is not None:
            call.on_cancel()

    def _on_response(self, event: ResponseReceived) -> None:
        txn = event.transaction
        if txn is not None:
            callback = self._client.get(txn.key)
            if callback is None:
                return
            if event.response.status >= 200:
                if event.response.status >= 300 or txn.request.method != "INVITE":
                    self._client.pop(txn.key, None)
                else:
                    asyncio.get_running_loop().call_later(32.0, self._client.pop, txn.key, None)
            callback(event)
            return
        # A 2xx to an INVITE whose transaction is gone: retransmitted, or forked late.
        response = event.response
        tag = response.from_tag
        found = self._dialogs.get((response.call_id, tag)) if tag else None
        if found is None:
            return
        call = found[0]
        for branch in call.branches:
            if branch.dialog.call_id == response.call_id and branch.dialog.local_tag == tag:
                call._branch_2xx(branch, response)

    # -- routing -----------------------------------------------------------------------------

    def _new_call(self, txn: ServerTransaction, request: Request, source: Source) -> None:
        self.facts.refresh()
        from_uri = request.from_.uri
        contract = None
        if isinstance(from_uri, SipUri) and from_uri.host:
            contract = self.facts.contract_by_domain(from_uri.host.lower())
        if contract is not None:
            plan = self._from_booth(request, source, contract)
        else:
            plan = self._from_network(request, source)
        if not request.body or request.content_type != "application/sdp":
            raise _Reject(488, "an SDP offer in the INVITE is required", record=plan.record)
        if self.webrtc is not None and is_webrtc_offer(request.body):
            self._preparing[txn.key] = False
            self._spawn(self._new_browser_call(self.webrtc, txn, request, source, plan))
            return
        self._open_call(txn, request, source, plan, request.body, None)

    async def _new_browser_call(
        self,
        gateway: WebRtcGateway,
        txn: ServerTransaction,
        request: Request,
        source: Source,
        plan: _Plan,
    ) -> None:
        """A browser's INVITE: the gateway answers its offer, the call gets the plain side."""
        try:
            leg = await gateway.accept_offer(request.body)
        except OfferError as exc:
            self._preparing.pop(txn.key, None)
            self._refuse(txn, request, _Reject(488, str(exc), record=plan.record))
            return
        except OSError as exc:  # no UDP port for the leg
            log.error("no webrtc media ports", extra={"error": str(exc)})
            self._preparing.pop(txn.key, None)
            self._refuse(txn, request, _Reject(503, "no media ports available", record=plan.record))
            return
        if self._preparing.pop(txn.key, False):
            await leg.close()
            self._refuse(txn, request, _Reject(487, "cancelled by the caller", record=plan.record))
            return
        try:
            self._open_call(txn, request, source, plan, leg.plain_sdp(both_laws=True).encode(), leg)
        except _Reject as rej:
            await leg.close()
            self._refuse(txn, request, rej)

    def _open_call(
        self,
        txn: ServerTransaction,
        request: Request,
        source: Source,
        plan: _Plan,
        body: bytes,
        leg: WebRtcLeg | None,
    ) -> None:
        """Start the call for an accepted INVITE whose (plain) offer is *body*."""
        try:
            offer = sdplib.parse_sdp(body)
            sdplib.rewrite(offer, host=self.media_host, port=2, origin=sdplib.Origin(0))
        except sdplib.SdpError as exc:
            raise _Reject(488, str(exc), record=plan.record) from exc
        if not plan.targets:
            raise _Reject(480, "nobody is registered for this number", record=plan.record)
        ref = secrets.token_hex(16)
        plan.record.call_ref = ref
        plan.record.a_call_id = request.call_id
        plan.record.codec_a = ",".join(sdplib.codec_names(offer))
        a_dialog = Dialog.uas(
            request,
            local_tag=secrets.token_hex(6),
            destination=Destination(source.kind, source.address),
            contact=self.contact,
        )
        timers = self.stack.layer.config
        call = Call(
            self,
            ref,
            plan.record,
            txn,
            a_dialog,
            offer,
            booth_side=plan.booth_side,
            ring_timeout=self.config.ring_timeout,
            max_duration=self.config.max_call_duration,
            keepalive=self.config.keepalive_interval,
            t1=timers.t1,
            t2=timers.t2,
            clock=self.clock,
            a_leg=leg,
        )
        call.busy_id = plan.busy_id
        self.calls[ref] = call
        self._setting_up.add(ref)
        self._invites[txn.key] = call
        self.bind_dialog(call, "A", a_dialog)
        if plan.record.affiliation_id is not None:
            aff = plan.record.affiliation_id
            self._active_aff[aff] = self._active_aff.get(aff, 0) + 1
        if plan.busy_id is not None:
            self._busy[plan.busy_id] = self._busy.get(plan.busy_id, 0) + 1
        self.writer.save(plan.record)
        passthrough = [
            (name, value)
            for name in self.config.passthrough_headers
            for value in request.get_all(name)
        ]
        for target in plan.targets:
            target.headers += passthrough
        self._spawn(call.start(self.relay.open_session, plan.targets))

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call set-up failed", exc_info=task.exception())

    def _challenge(
        self, realm: str, now: float, *, stale: bool = False, md5_only: bool = False
    ) -> list[tuple[str, str]]:
        """Proxy-Authenticate values: SHA-256 first (RFC 8760), unless configured otherwise
        for phones (and SIPp) that answer only the first challenge and know only MD5; MD5
        alone when *md5_only* (browsers on a WebSocket, see the module docstring)."""
        values = self.registrar.auth.challenge(realm, now, stale=stale)
        if md5_only:
            values = [v for v in values if "algorithm=MD5" in v] or values
        elif self.config.md5_challenge_first:
            values = sorted(values, key=lambda v: "algorithm=MD5" not in v)
        return [("Proxy-Authenticate", v) for v in values]

    def _authenticate(self, request: Request, source: Source, contract: Contract) -> int:
        """The booth's ID after a valid Proxy-Authorization, else raises the 407 to send.

        The challenge (a fresh nonce, an HMAC) is only made when it is sent."""
        realm = contract.domain
        auth = self.registrar.auth
        guard = self.registrar.guard
        now = self.clock()
        host = source.address[0]
        if guard.check_source(f"ip:{host}", now).level is Level.BLOCKED:
            raise _Reject(403, "source blocked after failed authentications")
        creds = None
        for value in request.get_all("proxy-authorization"):
            try:
                parsed = parse_authorization(value)
            except ParseError as exc:
                raise _Reject(400, "malformed Proxy-Authorization") from exc
            if parsed is not None and parsed.realm == realm:
                creds = parsed
                break
        md5_only = source.kind in WEBSOCKET_KINDS
        if creds is None:
            challenge = self._challenge(realm, now, md5_only=md5_only)
            raise _Reject(407, "Proxy Authentication Required", headers=challenge)
        secrets_ = self.facts.sip_secrets(contract.id, creds.username)
        ha1 = None
        if secrets_ is not None:
            ha1 = secrets_.ha1_sha256 if creds.algorithm == "SHA-256" else secrets_.ha1_md5
        verdict = auth.verify(
            creds,
            method="INVITE",
            realm=realm,
            ha1=ha1,
            now=now,
            request_uri=_digest_uri(request, creds.uri),
        )
        ident = f"{realm}/{creds.username}"
        if verdict.outcome is Outcome.FAILED:
            guard.failure(f"ip:{host}", ident, now)
            challenge = self._challenge(realm, now, md5_only=md5_only)
            raise _Reject(407, "Proxy Authentication Required", headers=challenge)
        if verdict.outcome is Outcome.STALE:
            stale = self._challenge(realm, now, stale=True, md5_only=md5_only)
            raise _Reject(407, "Proxy Authentication Required", headers=stale)
        guard.success(f"ip:{host}", ident)
        assert secrets_ is not None
        return secrets_.id

    def _booth(self, id_id: int) -> BoothFacts:
        booth = self.facts.booth(id_id)
        if booth is None:
            raise _Reject(403, "ID revoked")
        return booth

    def _from_booth(self, request: Request, source: Source, contract: Contract) -> _Plan:
        realm = contract.domain
        id_id = self._authenticate(request, source, contract)
        booth = self._booth(id_id)
        policy, aff_id, contract_id = booth.policy, booth.affiliation_id, booth.contract_id
        caller = booth.numbers[0] if booth.numbers else ""
        uri = request.uri
        dialled = dialled_digits(uri.user if isinstance(uri, SipUri) and uri.user else "")
        record = CallRecord(
            call_ref="",
            direction="outbound",
            contract_id=contract_id,
            id_id=id_id,
            affiliation_id=aff_id,
            booth=booth.login,
            caller=caller,
            callee=dialled,
            a_call_id=request.call_id,
            setup_at=self.clock(),
        )
        record.call_ref = secrets.token_hex(16)
        service = special_service(dialled)
        if service is not None and dialled not in self.config.allowed_special_numbers:
            raise _Reject(
                403,
                f"{dialled} ({service}) cannot be called from this service; use a fixed line",
                record=record,
            )
        owner = None
        if service is None:
            with contextlib.suppress(jp.InvalidNumber):
                owner = self.facts.number_owner(jp.normalize(dialled))
        internal = (
            owner is not None and owner.contract_id == contract_id and self.config.internal_calls
        )
        if service is not None and isinstance(policy, AffiliationPolicy):
            # An allowed special code is not a subscriber number: status, hours and
            # concurrency still apply, prefix rules cannot (they are about subscriber numbers).
            policy = msgspec.structs.replace(policy, allowed_prefixes=[])
        decision = call_setup(
            contract_status=booth.contract_status,
            id_status=booth.status,
            policy=policy,
            destination=dialled if service is None else _ANY_VALID_NUMBER,
            now=dt.datetime.fromtimestamp(self.clock(), dt.UTC),
            active_calls=self._active_aff.get(aff_id, 0) if aff_id is not None else 0,
            outbound=True,
        )
        if not decision.allowed:
            raise _Reject(decision.sip_status, decision.reason, record=record)
        if service is None and decision.destination:
            record.callee = decision.destination
        if internal:
            assert owner is not None
            record.direction = "internal"
            return self._to_booth(owner, record, caller=caller, domain=realm, booth_side="A")
        trunk = self._default_trunk()
        if trunk is None:
            raise _Reject(503, "no trunk is configured", record=record)
        record.trunk = trunk.name
        fmt = NumberFormat(self.config.trunk_number_format)
        callee = dialled if service is not None else to_trunk_format(record.callee, fmt)
        shown = to_trunk_format(caller, fmt) if caller else "anonymous"
        dest = Destination(trunk.transport, (trunk.host, trunk.port))
        target = Target(
            uri=f"sip:{callee}@{trunk.host}:{trunk.port}",
            destination=dest,
            from_uri=f"<sip:{shown}@{self.public_host}>",
            to_uri=f"<sip:{callee}@{trunk.host}>",
            pai=f"<sip:{shown}@{self.public_host}>",
            username=trunk.username,
            password=trunk.password,
        )
        return _Plan(record, "A", [target], id_id)

    def _default_trunk(self) -> Trunk | None:
        trunks = self.facts.trunks()
        return trunks[0] if trunks else None

    def _to_booth(
        self, owner: NumberOwner, record: CallRecord, *, caller: str, domain: str, booth_side: Side
    ) -> _Plan:
        """Ring every live contact of *owner*'s ID (inbound and internal calls)."""
        if self._busy.get(owner.id_id, 0) > 0:
            raise _Reject(486, "the booth is on another call", record=record)
        contacts = self.registrar.contacts_for(owner.contract_id, owner.id_id, self.clock())
        if not contacts:
            raise _Reject(480, "nobody is registered for this number", record=record)
        targets = [
            Target(
                uri=b.contact,
                destination=Destination(b.transport, (b.source_host, b.source_port)),
                from_uri=f"<sip:{caller or 'anonymous'}@{domain}>",
                to_uri=f"<sip:{owner.e164}@{domain}>",
                webrtc=b.transport in WEBSOCKET_KINDS,
            )
            for b in contacts
            if self.webrtc is not None or b.transport not in WEBSOCKET_KINDS
        ]
        if not targets:
            raise _Reject(480, "no registered contact of this number can take media", record=record)
        busy = owner.id_id if booth_side == "B" else None
        return _Plan(record, booth_side, targets, busy)

    def _from_network(self, request: Request, source: Source) -> _Plan:
        uri = request.uri
        user = uri.user if isinstance(uri, SipUri) and uri.user else ""
        e164 = from_trunk(user)
        owner = self.facts.number_owner(e164) if e164 else None
        if owner is None:
            raise _Reject(404, "no such number here")
        trunk = trusted_trunk(source.address[0], self.facts.trunks())
        if trunk is None:
            raise _Reject(403, "calls are accepted only from the carrier's trusted addresses")
        from_user = request.from_.uri
        caller_raw = from_user.user if isinstance(from_user, SipUri) and from_user.user else ""
        caller = from_trunk(caller_raw) or dialled_digits(caller_raw) or "anonymous"
        booth = self._booth(owner.id_id)
        record = CallRecord(
            call_ref=secrets.token_hex(16),
            direction="inbound",
            contract_id=booth.contract_id,
            id_id=owner.id_id,
            affiliation_id=booth.affiliation_id,
            booth=booth.login,
            caller=caller,
            callee=owner.e164,
            trunk=trunk.name,
            a_call_id=request.call_id,
            setup_at=self.clock(),
        )
        aff_id = booth.affiliation_id
        decision = call_setup(
            contract_status=booth.contract_status,
            id_status=booth.status,
            policy=booth.policy,
            destination=owner.e164,
            now=dt.datetime.fromtimestamp(self.clock(), dt.UTC),
            active_calls=self._active_aff.get(aff_id, 0) if aff_id is not None else 0,
            outbound=False,
        )
        if not decision.allowed:
            raise _Reject(decision.sip_status, decision.reason, record=record)
        return self._to_booth(owner, record, caller=caller, domain=owner.domain, booth_side="B")


def _digest_uri(request: Request, claimed: str) -> str:
    """The Request-URI the credentials must name. Some UAs (SIPp among them) put the URI
    without its user part (``sip:host:port``) in ``uri=``; that still binds the response to
    this server, and nonce counting stops replays, so it is accepted as well."""
    uri = request.uri
    if isinstance(uri, SipUri) and claimed.strip().lower() == f"sip:{uri.host_port}".lower():
        return claimed
    return request.uri_text


def _ignore(event: ResponseReceived) -> None:
    """Responses nobody waits for (to a CANCEL, a BYE we sent while ending a call)."""


__all__ = ["ALLOW", "B2bua"]
