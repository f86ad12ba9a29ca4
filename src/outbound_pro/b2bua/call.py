"""One call: the caller's dialog (leg A, where we are the UAS), one or more attempts towards
the callee (branches, where we are the UAC; several when an inbound call rings every contact of
a booth), the relay session between them, the recording and the CDR.

The call is the single owner of all of that (architecture principle 2). The engine hands it SIP
events; it answers through the engine's small sending API (:class:`CallHost`), so this module
never touches sockets. Timers are the loop's ``call_later`` handles, kept in one dict so ending
the call cancels every one.

How the two legs are joined, and why:

* The callee's 2xx is ACKed as soon as it arrives and then a 2xx is sent to the caller, which
  we retransmit until its ACK (RFC 3261 §13.3.1.4). Waiting for the caller's ACK before ACKing
  the callee would tie the callee's retransmissions to the caller's network for no gain.
* CANCEL from the caller cancels every branch; a branch whose 2xx crosses our CANCEL is ACKed
  and immediately sent BYE (§9.1, the "CANCEL/200 race"). A CANCEL is only sent once the
  branch has answered anything, even 100 (§9.1); until then it is remembered.
* re-INVITE and UPDATE are relayed one at a time per call: a second offer while one is being
  relayed gets 491 (RFC 3261 §14.1), which is also how crossed offers (glare) resolve.
* A call whose far end vanished is found by in-dialog OPTIONS (RFC 3261 §11 used as a
  keep-alive, as most carriers accept): 408 or 481 to it ends the call.
* A browser leg (WebRTC) is terminated in the gateway (`outbound_pro.webrtc`): the call works
  with the leg's plain SDP (``plain_sdp()``) exactly as with a phone's, and only the browser
  sees the leg's ICE/DTLS SDP. An offer from or towards a browser in an answered call (hold,
  a carrier's re-INVITE) is answered here with the current media, direction mirrored: the
  plain side of the gateway never changes during a call. What the far end must know is the
  browser's *direction* (hold with sendonly/inactive, resume with sendrecv): when that
  changes it is sent on as a re-INVITE of our own, with the relay's SDP and that direction,
  so a carrier sees the hold as from any phone (and plays no audio into a held line).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from outbound_pro.b2bua.client_auth import authorization, pick_challenge
from outbound_pro.b2bua.dialog import Dialog
from outbound_pro.b2bua.record import CallRecord, LegMedia
from outbound_pro.media.recorder import CallRecorder
from outbound_pro.rtp.relay import LegStats, RelayError, Session
from outbound_pro.sip import sdp as sdplib
from outbound_pro.sip.message import Request, Response, build_cancel, make_response
from outbound_pro.sip.stack import Destination
from outbound_pro.sip.transaction import ClientTransaction, ResponseReceived, ServerTransaction
from outbound_pro.webrtc import PASSTHROUGH, OfferError, WebRtcGateway, WebRtcLeg

log = logging.getLogger("outbound_pro.b2bua")

Side = Literal["A", "B"]
ResponseCallback = Callable[[ResponseReceived], None]
SDP = "application/sdp"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"


def _g711_law(desc: sdplib.SessionDescription) -> str | None:
    """The first G.711 law in *desc*'s audio, the one its sender prefers."""
    return next((n for n in map(str.upper, sdplib.codec_names(desc)) if n in PASSTHROUGH), None)


class CallHost(Protocol):
    """What a call needs from the engine: sending, media, storage and settings."""

    media_host: str
    contact: str
    webrtc: WebRtcGateway | None

    def via(self, destination: Destination) -> str: ...

    def send(
        self, request: Request, destination: Destination, on_response: ResponseCallback | None
    ) -> ClientTransaction: ...

    def send_ack(self, request: Request, destination: Destination) -> None: ...

    def respond(self, txn: ServerTransaction, response: Response) -> None: ...

    def bind_dialog(self, call: Call, side: Side, dialog: Dialog) -> None: ...

    def call_answered(self, call: Call) -> None: ...

    def call_ended(self, call: Call) -> None: ...

    def new_recorder(self, call: Call) -> CallRecorder | None: ...

    def save(self, call: Call) -> None: ...

    def finish_recording(self, recording_id: int, info: object, ended_at: float) -> None: ...


@dataclass
class Target:
    """Where one branch goes and how it presents itself there."""

    uri: str
    destination: Destination
    from_uri: str
    to_uri: str
    pai: str | None = None
    username: str = ""  # credentials for the far end's 401/407 (trunks)
    password: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    webrtc: bool = False  # a browser (binding over ws/wss): offered through the gateway


@dataclass
class Branch:
    target: Target
    dialog: Dialog
    invite: Request
    txn: ClientTransaction | None = None
    provisional: bool = False
    cancel_wanted: bool = False
    cancelled: bool = False
    auth_tried: bool = False
    acked: bool = False
    final: int | None = None
    reason: str = ""
    leg: WebRtcLeg | None = None  # the gateway leg of a browser target


@dataclass
class _Pending:
    """An offer (re-INVITE or UPDATE) from one leg being relayed to the other."""

    side: Side
    method: str
    txn: ServerTransaction
    request: Request


@dataclass
class _Retransmit:
    txn: ServerTransaction
    response: Response
    interval: float
    elapsed: float = 0.0
    handle: asyncio.TimerHandle | None = None


def reason_header(status: int, text: str) -> tuple[str, str]:
    """RFC 3326 Reason, so the phone (and its user) can see why a call was refused."""
    safe = text.replace("\\", "").replace('"', "'")
    return ("Reason", f'SIP;cause={status};text="{safe}"')


def _best_failure(branches: list[Branch]) -> tuple[int, str]:
    """The final response a forking caller gets when no branch answered (after RFC 3261
    §16.7.6): a 6xx wins, then busy, then the first other failure, else 480."""
    finals = [(b.final, b.reason) for b in branches if b.final is not None]
    for code, reason in finals:
        if code >= 600:
            return code, reason
    for code, reason in finals:
        if code == 486:
            return code, reason
    for code, reason in finals:
        if code not in (487, 408):
            return code, reason
    return 480, "Temporarily Unavailable"


class Call:
    """See the module docstring. ``booth_side`` says which leg is the booth: it is relay leg
    ``a`` (recorded on the left), the other leg is relay leg ``b``."""

    def __init__(
        self,
        host: CallHost,
        ref: str,
        record: CallRecord,
        a_txn: ServerTransaction,
        a_dialog: Dialog,
        offer: sdplib.SessionDescription,
        *,
        booth_side: Side,
        ring_timeout: float,
        max_duration: float,
        keepalive: float,
        t1: float = 0.5,
        t2: float = 4.0,
        clock: Callable[[], float] = time.time,
        a_leg: WebRtcLeg | None = None,
    ) -> None:
        self.host = host
        self.ref = ref
        self.record = record
        self.a_txn = a_txn
        self.a_request = a_txn.request
        self.a = a_dialog
        self.b: Dialog | None = None
        self.offer = offer
        self.relay_side: dict[Side, Literal["a", "b"]] = (
            {"A": "a", "B": "b"} if booth_side == "A" else {"A": "b", "B": "a"}
        )
        self.branches: list[Branch] = []
        self.state: Literal["setup", "early", "answered", "ended"] = "setup"
        self.session: Session | None = None
        self.recording_id: int | None = None  # set by the host when the recording starts
        self.ring_timeout = ring_timeout
        self.max_duration = max_duration
        self.keepalive = keepalive
        self.t1 = t1
        self.t2 = t2
        self.clock = clock
        self.pending: _Pending | None = None
        # the direction each browser side last offered, and whether its re-INVITE is on the way
        self.browser_direction: dict[Side, str] = {}
        self._direction_relay: tuple[Side, Request] | None = None
        self.last_sdp: dict[Side, bytes] = {}
        self._retx: dict[Side, _Retransmit] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.dialog_keys: list[tuple[str, str]] = []  # where the engine indexes this call
        self.busy_id: int | None = None  # the booth this call makes busy (inbound routing)
        self.webrtc: dict[Side, WebRtcLeg] = {"A": a_leg} if a_leg is not None else {}
        self._closing: set[asyncio.Task[None]] = set()
        sid = secrets.randbelow(2**31)
        self.origin: dict[Side, sdplib.Origin] = {
            "A": sdplib.Origin(sid, host=host.media_host),
            "B": sdplib.Origin(sid + 1, host=host.media_host),
        }
        self.finished = asyncio.get_running_loop().create_future()

    # -- helpers ---------------------------------------------------------------------------

    def _timer(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        if delay > 0:
            self._timers[name] = asyncio.get_running_loop().call_later(delay, fn)

    def _stop_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def dialog(self, side: Side) -> Dialog | None:
        return self.a if side == "A" else self.b

    def _leg_port(self, side: Side) -> int:
        assert self.session is not None
        return self.session.leg(self.relay_side[side]).local_port

    def _bind_plain(self, side: Side, leg: WebRtcLeg) -> None:
        """Send what the browser of *side* says to the relay port facing *side*."""
        assert self.session is not None
        relay_leg = self.session.leg(self.relay_side[side])
        host = relay_leg.host if relay_leg.host not in ("", "0.0.0.0", "::") else None
        # not media_host: behind NAT that is the public address, unreachable from the gateway
        leg.set_plain_remote((host or leg.gateway.plain_host, relay_leg.local_port))

    def _close_leg(self, leg: WebRtcLeg) -> None:
        task = asyncio.get_running_loop().create_task(leg.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _browser_answer(self, branch: Branch, response: Response) -> sdplib.SessionDescription:
        """The callee's SDP as the call sees it: a browser's answer goes to its gateway leg,
        and the leg's plain SDP stands for it (raises SdpError when the leg refuses it)."""
        leg = branch.leg
        if leg is None:
            return sdplib.parse_sdp(response.body)
        if leg.remote is None:
            try:
                leg.answer_received(response.body)
            except OfferError as exc:
                raise sdplib.SdpError(str(exc)) from exc
            self.webrtc["B"] = leg
            self.last_sdp["B"] = leg.session_sdp().encode()
            self._bind_plain("B", leg)
        return sdplib.parse_sdp(leg.plain_sdp().encode())

    def _speak_law(self, side: Side, desc: sdplib.SessionDescription) -> None:
        """Have the browser leg of *side*, if any, speak the G.711 law of the far end's *desc*.

        The gateway settled a law with the browser before the far end spoke; a PCMA-only
        carrier and a PCMU browser then need translating (see docs/webphone.md).
        """
        leg = self.webrtc.get(side)
        if leg is not None and (law := _g711_law(desc)):
            leg.set_plain_codec(law)

    def _learn_media(self, side: Side, desc: sdplib.SessionDescription) -> None:
        """Point the relay leg facing *side* at the address its SDP names."""
        target = sdplib.media_target(desc)
        if target is None or self.session is None:
            return
        ip, port, rtpmap, direction = target
        if direction == "inactive":
            port = 0
        try:
            self.session.set_remote(self.relay_side[side], ip, port, rtpmap=rtpmap)
        except (ValueError, RelayError) as exc:
            log.warning("cannot set media peer", extra={"call": self.ref, "error": str(exc)})

    def _sdp_for(
        self, side: Side, desc: sdplib.SessionDescription, allowed: list[str] | None = None
    ) -> bytes:
        """*desc* (from the other side) rewritten for *side*: the relay port facing *side*."""
        out = sdplib.rewrite(
            desc,
            host=self.host.media_host,
            port=self._leg_port(side),
            origin=self.origin[side],
            allowed=allowed,
        ).to_bytes()
        self.last_sdp[side] = out
        return out

    def _respond_a(
        self,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        extra = list(headers or [])
        if body:
            extra.append(("Content-Type", SDP))
        if 100 < status < 300:
            extra.append(("Contact", self.host.contact))
        response = make_response(
            self.a_request, status, reason, to_tag=self.a.local_tag, headers=extra, body=body
        )
        self.host.respond(self.a_txn, response)
        return response

    # -- set-up ------------------------------------------------------------------------------

    async def start(self, session_factory: Callable[[str], object], targets: list[Target]) -> None:
        """Open the relay session and send the INVITE to every target (in parallel)."""
        try:
            self.session = await session_factory(self.ref)  # type: ignore[misc]
        except RelayError as exc:
            log.error("no relay ports", extra={"call": self.ref, "error": str(exc)})
            self.fail(503, "no media ports available", by="system")
            return
        if self.state == "ended":  # cancelled while the ports were being opened
            await self._finish_media()
            return
        self._learn_media("A", self.offer)
        if "A" in self.webrtc:
            self._bind_plain("A", self.webrtc["A"])
        legs: list[WebRtcLeg | None] = []
        gateway = self.host.webrtc if any(t.webrtc for t in targets) else None
        for target in targets:
            legs.append(await gateway.create_offer() if target.webrtc and gateway else None)
        law = _g711_law(self.offer)
        for leg in legs:
            if leg is not None and law:
                leg.set_plain_codec(law)
        if self.state == "ended":  # cancelled while the browser offers were being made
            for leg in legs:
                if leg is not None:
                    await leg.close()
            return
        for target, leg in zip(targets, legs, strict=True):
            self._send_branch(target, leg)
        self._timer("ring", self.ring_timeout, self._ring_timeout)

    def _send_branch(self, target: Target, leg: WebRtcLeg | None = None) -> None:
        dialog = Dialog(
            call_id=f"{secrets.token_hex(12)}@{self.host.media_host}",
            local_tag=secrets.token_hex(6),
            local_uri=target.from_uri,
            remote_uri=target.to_uri,
            remote_target=target.uri,
            destination=target.destination,
            contact=self.host.contact,
            local_cseq=0,
        )
        try:
            body = self._sdp_for("B", self.offer)
        except sdplib.SdpError as exc:
            self.fail(488, str(exc), by="system")
            return
        if leg is not None:
            body = leg.offer_sdp.encode()
        headers = list(target.headers)
        if target.pai:
            headers.append(("P-Asserted-Identity", target.pai))
        headers.append(("Allow", ALLOW))
        invite = dialog.request(
            "INVITE",
            self.host.via(dialog.destination),
            body=body,
            content_type=SDP,
            headers=headers,
        )
        branch = Branch(target, dialog, invite, leg=leg)
        self.branches.append(branch)
        self.host.bind_dialog(self, "B", dialog)
        if not self.record.b_call_id:
            self.record.b_call_id = dialog.call_id
        branch.txn = self.host.send(
            invite, dialog.destination, lambda ev, b=branch: self._branch_response(b, ev)
        )

    def _send_cancel(self, branch: Branch) -> None:
        if branch.cancelled or branch.final is not None or branch.acked:
            return
        branch.cancelled = True
        self.host.send(build_cancel(branch.invite), branch.dialog.destination, None)

    def _cancel_branches(self, keep: Branch | None = None) -> None:
        for branch in self.branches:
            if branch is keep:
                continue
            if branch.provisional:
                self._send_cancel(branch)
            else:
                branch.cancel_wanted = True

    def _branch_response(self, branch: Branch, event: ResponseReceived) -> None:
        response = event.response
        code = response.status
        if code < 200:
            if not branch.provisional:
                branch.provisional = True
                if branch.cancel_wanted:
                    self._send_cancel(branch)
                    return
            if code > 100 and not branch.cancelled:
                self._provisional(branch, response)
            return
        if code < 300:
            self._branch_2xx(branch, response)
            return
        if (
            code in (401, 407)
            and not branch.auth_tried
            and branch.target.username
            and not branch.cancel_wanted
            and not branch.cancelled
            and self.state in ("setup", "early")
        ):
            header = "www-authenticate" if code == 401 else "proxy-authenticate"
            challenge = pick_challenge(response.headers.raw_values(header))
            if challenge is not None:
                self._authenticate(branch, code, challenge)
                return
        branch.final = code
        branch.reason = response.reason
        if self.state in ("setup", "early") and all(b.final is not None for b in self.branches):
            status, reason = _best_failure(self.branches)
            self.fail(status, reason, by="callee")

    def _authenticate(self, branch: Branch, code: int, challenge: dict[str, str]) -> None:
        """Resend the INVITE with credentials: same dialog, next CSeq, new branch (§22.2)."""
        branch.auth_tried = True
        value = authorization(
            challenge,
            method="INVITE",
            uri=branch.invite.uri_text,
            username=branch.target.username,
            password=branch.target.password,
        )
        name = "Authorization" if code == 401 else "Proxy-Authorization"
        old = branch.invite
        headers = [(n, v) for n, v in branch.target.headers]
        if branch.target.pai:
            headers.append(("P-Asserted-Identity", branch.target.pai))
        headers += [("Allow", ALLOW), (name, value)]
        branch.invite = branch.dialog.request(
            "INVITE",
            self.host.via(branch.dialog.destination),
            body=old.body,
            content_type=SDP,
            headers=headers,
        )
        branch.provisional = False
        branch.txn = self.host.send(
            branch.invite,
            branch.dialog.destination,
            lambda ev, b=branch: self._branch_response(b, ev),
        )

    def _provisional(self, branch: Branch, response: Response) -> None:
        if self.state not in ("setup", "early"):
            return
        if self.state == "setup":
            self.state = "early"
        if self.record.ringing_at is None:
            self.record.ringing_at = self.clock()
        body = b""
        if response.body and response.content_type == SDP:
            try:
                desc = self._browser_answer(branch, response)
                self._speak_law("A", desc)
                self._learn_media("B", desc)
                body = self._sdp_for("A", desc, self.offer.audio().formats)  # type: ignore[union-attr]
            except sdplib.SdpError:
                body = b""
        if body and "A" in self.webrtc:
            body = self.webrtc["A"].answer_sdp.encode()
        self._respond_a(response.status, response.reason, body=body)

    def _branch_2xx(self, branch: Branch, response: Response) -> None:
        if branch.acked:  # a retransmission: our ACK was lost
            self._ack(branch)
            return
        branch.dialog.confirm_uac(response)
        branch.acked = True
        self._ack(branch)
        if self.state in ("setup", "early") and self.b is None:
            self._answer(branch, response)
            return
        # The CANCEL lost the race, or another branch answered first: end this one.
        bye = branch.dialog.request("BYE", self.host.via(branch.dialog.destination))
        self.host.send(bye, branch.dialog.destination, None)

    def _ack(self, branch: Branch) -> None:
        ack = branch.dialog.request(
            "ACK", self.host.via(branch.dialog.destination), cseq=branch.invite.cseq[0]
        )
        self.host.send_ack(ack, branch.dialog.destination)

    def _answer(self, branch: Branch, response: Response) -> None:
        self.b = branch.dialog
        self.state = "answered"
        self.host.call_answered(self)
        self._stop_timer("ring")
        self._cancel_branches(keep=branch)
        for other in self.branches:
            if other is not branch and other.leg is not None:
                self._close_leg(other.leg)
        self.record.b_call_id = branch.dialog.call_id
        body = b""
        if response.body and response.content_type == SDP:
            try:
                desc = self._browser_answer(branch, response)
                self._speak_law("A", desc)
                self._learn_media("B", desc)
                audio = self.offer.audio()
                body = self._sdp_for("A", desc, audio.formats if audio else None)
                self.record.codec_b = ",".join(sdplib.codec_names(desc))
                self.record.codec_a = ",".join(sdplib.codec_names(sdplib.parse_sdp(body)))
            except sdplib.SdpError as exc:
                log.warning("bad SDP answer", extra={"call": self.ref, "error": str(exc)})
        now = self.clock()
        self.record.answer_at = now
        self.record.status = 200
        if self.record.ringing_at is None:
            self.record.ringing_at = now
        self._start_recording()
        if body and "A" in self.webrtc:
            body = self.webrtc["A"].answer_sdp.encode()
            self.last_sdp["A"] = body
        final = self._respond_a(200, body=body)
        self._retransmit("A", final)
        self._timer("max", self.max_duration, self._max_duration)
        self._timer("keepalive", self.keepalive, self._keepalive)
        self.host.save(self)

    def _start_recording(self) -> None:
        if self.session is None:
            return
        recorder = self.host.new_recorder(self)
        if recorder is not None:
            self.session.fork(recorder)

    # -- 2xx retransmission to a UAC (§13.3.1.4) ---------------------------------------------

    def _retransmit(self, side: Side, response: Response) -> None:
        txn = self.a_txn if side == "A" and self.pending is None else None
        if txn is None:
            return
        state = _Retransmit(txn, response, self.t1)
        self._retx[side] = state
        self._arm_retransmit(side, state)

    def _retransmit_for(self, side: Side, txn: ServerTransaction, response: Response) -> None:
        state = _Retransmit(txn, response, self.t1)
        old = self._retx.pop(side, None)
        if old is not None and old.handle is not None:
            old.handle.cancel()
        self._retx[side] = state
        self._arm_retransmit(side, state)

    def _arm_retransmit(self, side: Side, state: _Retransmit) -> None:
        def fire() -> None:
            state.elapsed += state.interval
            if state.elapsed >= 64 * self.t1:
                self._retx.pop(side, None)
                self.hangup("system", f"no ACK from the {self._who(side)}")
                return
            self.host.respond(state.txn, state.response)
            state.interval = min(2 * state.interval, self.t2)
            state.handle = asyncio.get_running_loop().call_later(state.interval, fire)

        state.handle = asyncio.get_running_loop().call_later(state.interval, fire)

    def _who(self, side: Side) -> str:
        return "caller" if side == "A" else "callee"

    # -- requests from either leg --------------------------------------------------------------

    def on_ack(self, side: Side, request: Request) -> None:
        state = self._retx.pop(side, None)
        if state is not None and state.handle is not None:
            state.handle.cancel()

    def on_cancel(self) -> None:
        """The caller gave up (the engine already answered the CANCEL with 200)."""
        if self.state not in ("setup", "early"):
            return
        self._respond_a(487)
        self._cancel_branches()
        self._end(487, "cancelled by the caller", by="caller")

    def on_bye(self, side: Side, txn: ServerTransaction, request: Request) -> None:
        self.host.respond(txn, make_response(request, 200))
        if self.state != "answered":
            return
        other: Side = "B" if side == "A" else "A"
        self._send_bye(other)
        self._end(200, f"BYE from the {self._who(side)}", by=self._who(side))

    def on_options(self, side: Side, txn: ServerTransaction, request: Request) -> None:
        self.host.respond(txn, make_response(request, 200, headers=[("Allow", ALLOW)]))

    def on_info(self, side: Side, txn: ServerTransaction, request: Request) -> None:
        """INFO (RFC 6086): relayed to the other side with its body, Content-Type and
        Info-Package only, and answered with that side's final status. Desk phones set to
        "SIP INFO" DTMF send their digits this way (``application/dtmf-relay``); the B2BUA
        does not convert them to RFC 4733, it lets the far end see what the phone sent."""
        other: Side = "B" if side == "A" else "A"
        dialog = self.dialog(other)
        if self.state != "answered" or dialog is None:
            self.host.respond(txn, make_response(request, 481 if self.state == "ended" else 491))
            return
        headers = [("Info-Package", v) for v in request.get_all("info-package")]
        relayed = dialog.request(
            "INFO",
            self.host.via(dialog.destination),
            body=request.body,
            content_type=request.content_type if request.body else None,
            headers=headers,
        )

        def answered(event: ResponseReceived) -> None:
            response = event.response
            if response.status >= 200:
                self.host.respond(txn, make_response(request, response.status, response.reason))

        self.host.send(relayed, dialog.destination, answered)

    def on_offer(self, side: Side, txn: ServerTransaction, request: Request) -> None:
        """A re-INVITE or UPDATE from *side*: relay it (one at a time, else 491)."""
        if self.state != "answered":
            self.host.respond(txn, make_response(request, 491 if self.state != "ended" else 481))
            return
        busy = self.pending is not None or self._direction_relay is not None
        if busy or (side in self._retx and request.method == "INVITE"):
            self.host.respond(txn, make_response(request, 491, headers=[("Retry-After", "1")]))
            return
        if not request.body:
            # A refresh without an offer: answer with what this side last got, relay nothing.
            body = self.last_sdp.get(side, b"")
            headers = [("Contact", self.host.contact)]
            if body:
                headers.append(("Content-Type", SDP))
            response = make_response(request, 200, headers=headers, body=body)
            self.host.respond(txn, response)
            if request.method == "INVITE":
                self._retransmit_for(side, txn, response)
            return
        other: Side = "B" if side == "A" else "A"
        if side in self.webrtc or other in self.webrtc:
            self._answer_locally(side, txn, request)
            return
        try:
            desc = sdplib.parse_sdp(request.body)
            body = self._sdp_for(other, desc)
        except sdplib.SdpError as exc:
            self.host.respond(
                txn, make_response(request, 488, headers=[reason_header(488, str(exc))])
            )
            return
        self._learn_media(side, desc)
        dialog = self.dialog(other)
        assert dialog is not None
        relayed = dialog.request(
            request.method, self.host.via(dialog.destination), body=body, content_type=SDP
        )
        self.pending = _Pending(side, request.method, txn, request)
        self.host.send(relayed, dialog.destination, lambda ev: self._offer_response(relayed, ev))

    def _answer_locally(self, side: Side, txn: ServerTransaction, request: Request) -> None:
        """An offer from or towards a browser leg: answered here (see the module docstring)."""
        if side not in self.webrtc:
            try:
                self._learn_media(side, sdplib.parse_sdp(request.body))
            except sdplib.SdpError as exc:
                self.host.respond(
                    txn, make_response(request, 488, headers=[reason_header(488, str(exc))])
                )
                return
        current = self.webrtc[side].session_sdp().encode() if side in self.webrtc else b""
        body = mirror_direction(current or self.last_sdp.get(side, b""), request.body)
        response = make_response(
            request, 200, headers=[("Contact", self.host.contact), ("Content-Type", SDP)], body=body
        )
        self.host.respond(txn, response)
        if request.method == "INVITE":
            self._retransmit_for(side, txn, response)
        if side in self.webrtc:
            self._relay_direction(side, request.body)

    def _relay_direction(self, side: Side, offer: bytes) -> None:
        """Tell the plain far end that the browser of *side* changed direction (hold, resume):
        the gateway's plain SDP with the direction of the browser's *offer*."""
        other: Side = "B" if side == "A" else "A"
        dialog = self.dialog(other)
        if dialog is None or other in self.webrtc:
            return
        try:
            offered = sdplib.parse_sdp(offer).audio()
            plain = sdplib.parse_sdp(self.webrtc[side].plain_sdp().encode())
        except sdplib.SdpError as exc:
            log.warning("cannot relay a hold", extra={"call": self.ref, "error": str(exc)})
            return
        direction = offered.direction if offered is not None else "sendrecv"
        audio = plain.audio()
        if audio is None or self.browser_direction.get(side, "sendrecv") == direction:
            return
        self.browser_direction[side] = direction
        audio.set_direction(direction)
        try:
            body = self._sdp_for(other, plain)
        except sdplib.SdpError as exc:
            log.warning("cannot relay a hold", extra={"call": self.ref, "error": str(exc)})
            return
        relayed = dialog.request(
            "INVITE", self.host.via(dialog.destination), body=body, content_type=SDP
        )
        self._direction_relay = (other, relayed)
        self.host.send(relayed, dialog.destination, self._direction_answered)

    def _direction_answered(self, event: ResponseReceived) -> None:
        if self._direction_relay is None or event.response.status < 200:
            return
        (other, relayed), response = self._direction_relay, event.response
        self._direction_relay = None
        dialog = self.dialog(other)
        if response.status >= 300:
            if response.status in (408, 481):
                self.hangup("system", f"{self._who(other)} did not answer a re-INVITE")
            return
        if dialog is not None:
            ack = dialog.request("ACK", self.host.via(dialog.destination), cseq=relayed.cseq[0])
            self.host.send_ack(ack, dialog.destination)
        try:
            self._learn_media(other, sdplib.parse_sdp(response.body))
        except sdplib.SdpError:
            return

    def _offer_response(self, relayed: Request, event: ResponseReceived) -> None:
        pending = self.pending
        response = event.response
        code = response.status
        if code < 200 or pending is None:
            return
        other: Side = "B" if pending.side == "A" else "A"
        dialog = self.dialog(other)
        if 200 <= code < 300:
            if relayed.method == "INVITE" and dialog is not None:
                ack = dialog.request("ACK", self.host.via(dialog.destination), cseq=relayed.cseq[0])
                self.host.send_ack(ack, dialog.destination)
            self.pending = None
            body = b""
            if response.body:
                try:
                    desc = sdplib.parse_sdp(response.body)
                    self._learn_media(other, desc)
                    body = self._sdp_for(pending.side, desc)
                except sdplib.SdpError:
                    body = b""
            headers = [("Contact", self.host.contact)]
            if body:
                headers.append(("Content-Type", SDP))
            final = make_response(pending.request, 200, headers=headers, body=body)
            self.host.respond(pending.txn, final)
            if pending.method == "INVITE":
                self._retransmit_for(pending.side, pending.txn, final)
            return
        self.pending = None
        self.host.respond(pending.txn, make_response(pending.request, code, response.reason))
        if code in (408, 481):
            self.hangup("system", f"{self._who(other)} did not answer a {relayed.method}")

    # -- endings -------------------------------------------------------------------------------

    def fail(self, status: int, reason: str, *, by: str) -> None:
        """Refuse the caller with *status* before an answer."""
        if self.state in ("answered", "ended"):
            return
        self._respond_a(status, None, headers=[reason_header(status, reason)])
        self._cancel_branches()
        self._end(status, reason, by=by)

    def _ring_timeout(self) -> None:
        if self.state in ("setup", "early"):
            self.fail(480, "no answer", by="system")

    def _max_duration(self) -> None:
        self.hangup("system", "maximum call duration reached")

    def _keepalive(self) -> None:
        if self.state != "answered":
            return
        for side in ("A", "B"):
            dialog = self.dialog(side)  # type: ignore[arg-type]
            if dialog is None:
                continue
            options = dialog.request("OPTIONS", self.host.via(dialog.destination))
            self.host.send(options, dialog.destination, lambda ev, s=side: self._alive(s, ev))
        self._timer("keepalive", self.keepalive, self._keepalive)

    def _alive(self, side: Side, event: ResponseReceived) -> None:
        if event.response.status in (408, 481):
            self.hangup("system", f"the {self._who(side)} vanished (no answer to OPTIONS)")

    def _send_bye(self, side: Side) -> None:
        dialog = self.dialog(side)
        if dialog is not None and dialog.confirmed:
            self.host.send(
                dialog.request("BYE", self.host.via(dialog.destination)), dialog.destination, None
            )

    def hangup(self, by: str, reason: str) -> None:
        """End an answered call from our side: BYE to both legs."""
        if self.state == "ended":
            return
        if self.state != "answered":
            self.fail(480, reason, by=by)
            return
        self._send_bye("A")
        self._send_bye("B")
        self._end(200, reason, by=by)

    def _end(self, status: int, reason: str, *, by: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for state in self._retx.values():
            if state.handle is not None:
                state.handle.cancel()
        self._retx.clear()
        rec = self.record
        rec.end_at = self.clock()
        if rec.answer_at is None or rec.status == 0:
            rec.status = status
        rec.reason = reason
        rec.hangup_by = by
        self.host.call_ended(self)
        asyncio.get_running_loop().create_task(self._finish_media())

    async def _finish_media(self) -> None:
        try:
            legs = {id(leg): leg for leg in self.webrtc.values()}
            legs.update((id(b.leg), b.leg) for b in self.branches if b.leg is not None)
            for leg in legs.values():
                await leg.close()
            if self.session is not None:
                stats = await self.session.close()
                self.record.media_a = _media(stats.leg_a)
                self.record.media_b = _media(stats.leg_b)
                if stats.recording is not None and self.recording_id is not None:
                    self.host.finish_recording(
                        self.recording_id, stats.recording, self.record.end_at or self.clock()
                    )
            self.host.save(self)
        except Exception:  # the CDR must be written whatever the media layer did
            log.exception("finishing call media failed", extra={"call": self.ref})
            self.host.save(self)
        finally:
            if not self.finished.done():
                self.finished.set_result(None)


_DIRECTIONS = (b"a=sendrecv", b"a=sendonly", b"a=recvonly", b"a=inactive")
_MIRROR = {b"a=sendonly": b"a=recvonly", b"a=recvonly": b"a=sendonly"}


def mirror_direction(answer: bytes, offer: bytes) -> bytes:
    """*answer* with the direction RFC 3264 §6.1 requires for *offer*'s (hold, resume)."""
    offered = next(
        (d for line in offer.splitlines() for d in _DIRECTIONS if line.strip() == d),
        b"a=sendrecv",
    )
    wanted = _MIRROR.get(offered, offered)
    lines = [wanted if line.strip() in _DIRECTIONS else line for line in answer.split(b"\r\n")]
    return b"\r\n".join(lines)


def _media(leg: LegStats) -> LegMedia:
    return LegMedia(
        packets=leg.rtp.packets,
        octets=leg.rtp.bytes,
        lost=leg.rtp.lost,
        jitter_ms=round(leg.rtp.max_jitter_ms, 3),
        dropped_unexpected_source=leg.dropped_unexpected_source,
    )


def recording_path(root: Path, ref: str, at: float) -> Path:
    """``root/YYYY/MM/DD/<call ref>.wav`` (UTC dates): a day's calls in one directory."""
    day = time.strftime("%Y/%m/%d", time.gmtime(at))
    return root / day / f"{ref}.wav"
