"""One call driven in-process: races and glare that are hard to time with real peers.

The call talks to a recording host instead of the SIP stack (it only ever needs
:class:`outbound_pro.b2bua.call.CallHost`) and to a real relay on loopback ports.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from outbound_pro.b2bua.call import Call, Side, Target
from outbound_pro.b2bua.dialog import Dialog
from outbound_pro.b2bua.record import CallRecord
from outbound_pro.rtp.relay import RelayConfig, RelayEngine
from outbound_pro.sip import sdp
from outbound_pro.sip.message import Request, Response, make_response, new_branch, parse_message
from outbound_pro.sip.stack import Destination
from outbound_pro.sip.timers import TimerConfig
from outbound_pro.sip.transaction import ResponseReceived, ServerTransaction
from tests.conftest import free_port

OFFER = (
    b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
ANSWER = OFFER.replace(b"4000 RTP/AVP 0 8 101", b"5000 RTP/AVP 0 101")


def invite(call_id: str = "a-call", to_tag: str | None = None, cseq: int = 1) -> Request:
    to = "<sip:0366667777@b2b.op.local>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"INVITE sip:0366667777@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={new_branch()}\r\n"
        f"From: <sip:booth01@b2b.op.local>;tag=atag\r\nTo: {to}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:booth01@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(OFFER)}\r\n\r\n"
    ).encode() + OFFER
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    return msg


@dataclass
class Host:
    """Records what the call sends; responses are fed back by the test."""

    media_host: str = "127.0.0.1"
    contact: str = "<sip:127.0.0.1:5060>"
    sent: list[tuple[Request, object]] = field(default_factory=list)
    acks: list[Request] = field(default_factory=list)
    answers: list[tuple[ServerTransaction, Response]] = field(default_factory=list)
    saved: int = 0

    def via(self, destination: Destination) -> str:
        return f"SIP/2.0/UDP 127.0.0.1:5060;branch={new_branch()}"

    def send(self, request: Request, destination: Destination, on_response: object) -> None:
        self.sent.append((request, on_response))

    def send_ack(self, request: Request, destination: Destination) -> None:
        self.acks.append(request)

    def respond(self, txn: ServerTransaction, response: Response) -> None:
        self.answers.append((txn, response))

    def bind_dialog(self, call: Call, side: Side, dialog: Dialog) -> None:
        pass

    def call_answered(self, call: Call) -> None:
        pass

    def call_ended(self, call: Call) -> None:
        pass

    def new_recorder(self, call: Call) -> None:
        return None

    def save(self, call: Call) -> None:
        self.saved += 1

    def finish_recording(self, recording_id: int, info: object, ended_at: float) -> None:
        pass

    def methods(self) -> list[str]:
        return [r.method for r, _ in self.sent]

    def statuses(self) -> list[int]:
        return [r.status for _, r in self.answers]

    def reply(self, index: int, status: int, *, tag: str = "btag", body: bytes = b"") -> None:
        """The far end answers the index-th request we sent."""
        request, callback = self.sent[index]
        headers = [("Contact", "<sip:far@127.0.0.2:5090>")]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=tag, headers=headers, body=body)
        assert callable(callback)
        callback(ResponseReceived(parse_message(response.to_bytes()), None))  # type: ignore[arg-type]


async def _call(host: Host, relay: RelayEngine, targets: int = 1) -> Call:
    request = invite()
    txn = ServerTransaction(request, ("127.0.0.1", 5070), reliable=False, config=TimerConfig())
    dialog = Dialog.uas(
        request,
        local_tag="ours",
        destination=Destination("udp", ("127.0.0.1", 5070)),
        contact=host.contact,
    )
    call = Call(
        host,
        "ref",
        CallRecord(call_ref="ref", direction="outbound"),
        txn,
        dialog,  # type: ignore[arg-type]
        sdp.parse_sdp(OFFER),
        booth_side="A",
        ring_timeout=30,
        max_duration=60,
        keepalive=0,
    )
    dest = Destination("udp", ("127.0.0.2", 5090))
    target = [
        Target(
            f"sip:0366667777@127.0.0.2:{5090 + i}", dest, "<sip:0311112222@x>", "<sip:0366667777@x>"
        )
        for i in range(targets)
    ]
    await call.start(relay.open_session, target)
    return call


def _relay() -> RelayEngine:
    base = 20000 + free_port() % 20000 // 2 * 2
    return RelayEngine(RelayConfig(host="127.0.0.1", port_min=base, port_max=base + 40))


def test_cancel_crossing_the_callees_200_ends_the_callee_with_bye() -> None:
    async def scenario() -> None:
        host, relay = Host(), _relay()
        call = await _call(host, relay)
        host.reply(0, 180)
        call.on_cancel()
        assert host.methods() == ["INVITE", "CANCEL"]
        host.reply(0, 200, body=ANSWER)  # the 200 crossed our CANCEL
        assert host.methods() == ["INVITE", "CANCEL", "BYE"]
        assert [a.method for a in host.acks] == ["ACK"]
        assert host.statuses() == [180, 487]  # the caller never sees the late 200
        await call.finished
        assert (call.record.status, call.record.hangup_by) == (487, "caller")
        assert relay.sessions == 0

    asyncio.run(scenario())


def test_parallel_fork_first_answer_wins_and_the_rest_are_cancelled() -> None:
    async def scenario() -> None:
        host, relay = Host(), _relay()
        call = await _call(host, relay, targets=3)
        assert host.methods() == ["INVITE"] * 3
        host.reply(0, 180, tag="one")
        host.reply(1, 180, tag="two")
        host.reply(1, 200, tag="two", body=ANSWER)
        assert host.statuses()[-1] == 200 and call.state == "answered"
        # branch 0 rang: CANCEL now; branch 2 said nothing yet: CANCEL after its first 1xx
        assert host.methods()[3:] == ["CANCEL"]
        host.reply(2, 100)
        assert host.methods()[3:] == ["CANCEL", "CANCEL"]
        host.reply(0, 200, tag="one", body=ANSWER)  # a second answer despite the CANCEL
        assert host.methods()[-1] == "BYE" and len(host.acks) == 2
        sdp_to_a = host.answers[-1][1].body.decode()
        assert f"m=audio {call.session.leg_a.local_port} RTP/AVP 0 101" in sdp_to_a  # type: ignore[union-attr]
        call.hangup("system", "test over")
        await call.finished

    asyncio.run(scenario())


def test_crossing_reinvites_get_491() -> None:
    async def scenario() -> None:
        host, relay = Host(), _relay()
        call = await _call(host, relay)
        host.reply(0, 200, body=ANSWER)
        call.on_ack("A", invite())
        held = invite(to_tag="ours", cseq=2)
        held.body = OFFER + b"a=sendonly\r\n"
        txn_a = ServerTransaction(held, None, reliable=False, config=TimerConfig())
        call.on_offer("A", txn_a, held)
        assert host.methods()[-1] == "INVITE" and b"a=sendonly" in host.sent[-1][0].body
        theirs = invite(call_id="b", to_tag="x", cseq=7)
        txn_b = ServerTransaction(theirs, None, reliable=False, config=TimerConfig())
        call.on_offer("B", txn_b, theirs)
        assert host.answers[-1] == (txn_b, host.answers[-1][1])
        assert host.statuses()[-1] == 491
        host.reply(len(host.sent) - 1, 200, body=ANSWER.replace(b"t=0 0", b"t=0 0\r\na=recvonly"))
        assert host.statuses()[-1] == 200 and b"a=recvonly" in host.answers[-1][1].body
        assert host.answers[-1][0] is txn_a and len(host.acks) == 2
        call.hangup("system", "test over")
        await call.finished
        assert host.methods()[-2:] == ["BYE", "BYE"]

    asyncio.run(scenario())


def test_info_is_relayed_with_its_body_and_answered_with_the_far_ends_status() -> None:
    """A desk phone's SIP INFO DTMF reaches the far end as it was sent (RFC 6086)."""

    async def scenario() -> None:
        host, relay = Host(), _relay()
        call = await _call(host, relay)
        early = invite(to_tag="ours", cseq=2)
        call.on_info(
            "A", ServerTransaction(early, None, reliable=False, config=TimerConfig()), early
        )
        assert host.statuses()[-1] == 491  # not answered yet: nothing to relay to
        host.reply(0, 200, body=ANSWER)
        call.on_ack("A", invite())
        raw = invite(to_tag="ours", cseq=3).to_bytes().replace(b"INVITE", b"INFO")
        digit = b"Signal=5\r\nDuration=160\r\n"
        raw = raw.split(b"Content-Type")[0] + (
            b"Content-Type: application/dtmf-relay\r\nX-Secret: booth-only\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(digit), digit)
        )
        info = parse_message(raw)
        assert isinstance(info, Request) and info.method == "INFO"
        txn = ServerTransaction(info, None, reliable=False, config=TimerConfig())
        call.on_info("A", txn, info)
        relayed = host.sent[-1][0]
        assert relayed.method == "INFO" and relayed.body == digit
        assert relayed.content_type == "application/dtmf-relay"
        assert relayed.call_id != info.call_id and relayed.get("x-secret") is None
        host.reply(len(host.sent) - 1, 200)
        assert host.answers[-1][0] is txn and host.statuses()[-1] == 200
        call.hangup("system", "test over")
        await call.finished

    asyncio.run(scenario())


def test_far_end_that_stops_answering_options_is_hung_up() -> None:
    async def scenario() -> None:
        host, relay = Host(), _relay()
        request = invite()
        txn = ServerTransaction(request, None, reliable=False, config=TimerConfig())
        dialog = Dialog.uas(
            request,
            local_tag="ours",
            destination=Destination("udp", ("127.0.0.1", 5070)),
            contact=host.contact,
        )
        call = Call(
            host,  # type: ignore[arg-type]
            "ref",
            CallRecord(call_ref="ref", direction="outbound"),
            txn,
            dialog,
            sdp.parse_sdp(OFFER),
            booth_side="A",
            ring_timeout=30,
            max_duration=60,
            keepalive=0.05,
        )
        target = Target(
            "sip:x@127.0.0.2", Destination("udp", ("127.0.0.2", 5090)), "<sip:a@x>", "<sip:b@x>"
        )
        await call.start(relay.open_session, [target])
        host.reply(0, 200, body=ANSWER)
        call.on_ack("A", request)
        while host.methods().count("OPTIONS") < 2:
            await asyncio.sleep(0.01)
        first = host.methods().index("OPTIONS")
        host.reply(first, 200)  # the booth is alive
        assert call.state == "answered"
        host.reply(first + 1, 408)  # the far end is gone
        await call.finished
        assert (call.record.hangup_by, call.record.reason) == (
            "system",
            "the callee vanished (no answer to OPTIONS)",
        )
        assert host.methods()[-2:] == ["BYE", "BYE"]

    asyncio.run(scenario())
