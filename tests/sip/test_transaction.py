"""RFC 3261 §17 / RFC 6026 transactions driven by a fake clock through the TransactionLayer."""

from __future__ import annotations

from pathlib import Path

import pytest

from outbound_pro.sip.headers import NameAddr, Via
from outbound_pro.sip.message import (
    Request,
    Response,
    build_ack_for_non2xx,
    build_cancel,
    make_request,
    make_response,
    parse_message,
)
from outbound_pro.sip.timers import Timer, TimerConfig
from outbound_pro.sip.transaction import (
    Action,
    ClientTransaction,
    Discarded,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StartTimer,
    State,
    Terminated,
    TimedOut,
    TransactionLayer,
    TransactionStateError,
    Transmit,
    TransportFailed,
    server_key,
)
from outbound_pro.sip.uri import SipUri

PEER = ("192.0.2.7", 5060)
RFC4475 = Path(__file__).parent / "rfc4475"


def request(method: str = "INVITE", branch: str = "z9hG4bKclient1", cseq: int = 1) -> Request:
    req = make_request(
        method,
        SipUri("example.com", user="bob"),
        from_=NameAddr(SipUri("example.org", user="alice")).with_tag("ft"),
        to=SipUri("example.com", user="bob"),
        call_id="call-1@example.org",
        cseq=cseq,
        via=Via("UDP", "192.0.2.7", 5060, {"branch": branch}),
    )
    wire = parse_message(req.to_bytes())  # as the network would deliver it
    assert isinstance(wire, Request)
    return wire


def response_to(req: Request, status: int, tag: str = "tt") -> Response:
    wire = parse_message(make_response(req, status, to_tag=tag).to_bytes())
    assert isinstance(wire, Response)
    return wire


def ack_for(req: Request, final: Response) -> Request:
    wire = parse_message(build_ack_for_non2xx(req, final).to_bytes())
    assert isinstance(wire, Request)
    return wire


def transmits(actions: list[Action]) -> list[Transmit]:
    return [a for a in actions if isinstance(a, Transmit)]


def run_clock(layer: TransactionLayer, until: float) -> list[tuple[float, Action]]:
    """Fire every deadline up to *until*, as the asyncio adapter's single timer would."""
    seen: list[tuple[float, Action]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        seen += [(deadline, a) for a in layer.timeout(deadline)]
    return seen


# ------------------------------------------------------------------------------ client INVITE


def test_timer_a_doubles_until_timer_b_gives_the_tu_a_408():
    layer = TransactionLayer()
    txn, actions = layer.send_request(request(), PEER, 0.0)
    assert [t.target for t in transmits(actions)] == [PEER]
    assert txn.state is State.CALLING
    seen = run_clock(layer, 100)
    times = [t for t, a in seen if isinstance(a, Transmit)]
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A = T1, 2T1, 4T1 ... (no T2 cap)
    finals = [(t, a) for t, a in seen if isinstance(a, ResponseReceived)]
    assert len(finals) == 1
    at, event = finals[0]
    assert at == 32.0 and event.local and event.response.status == 408  # B = 64*T1
    assert event.response.call_id == "call-1@example.org"
    assert any(isinstance(a, Terminated) for _, a in seen)
    assert len(layer) == 0 and layer.next_deadline() is None


def test_provisional_stops_retransmissions_and_timer_b():
    layer = TransactionLayer()
    req = request()
    txn, _ = layer.send_request(req, PEER, 0.0)
    out = layer.receive(response_to(req, 180), PEER, 0.2)
    assert [type(a) for a in out] == [ResponseReceived]
    assert txn.state is State.PROCEEDING
    assert layer.next_deadline() is None  # INVITE waits in Proceeding for the TU / Timer C
    assert run_clock(layer, 1000) == []


def test_non_2xx_final_is_acked_by_the_transaction_and_timer_d_absorbs_retransmissions():
    layer = TransactionLayer()
    req = request()
    txn, _ = layer.send_request(req, PEER, 0.0)
    busy = response_to(req, 486)
    out = layer.receive(busy, PEER, 1.0)
    (ack,) = transmits(out)
    assert isinstance(ack.message, Request) and ack.message.method == "ACK"
    assert ack.message.top_via.branch == req.top_via.branch
    assert ack.message.to_tag == "tt" and ack.message.cseq == (1, "ACK")
    assert [a.response.status for a in out if isinstance(a, ResponseReceived)] == [486]
    assert txn.state is State.COMPLETED
    assert layer.next_deadline() == pytest.approx(33.0)  # Timer D = 32 s
    again = layer.receive(busy, PEER, 2.0)
    assert [a.data for a in transmits(again)] == [ack.data]  # ACK resent ...
    assert not any(isinstance(a, ResponseReceived) for a in again)  # ... TU not bothered
    assert layer.receive(response_to(req, 200), PEER, 3.0) == []  # a late 2xx is absorbed
    assert run_clock(layer, 32.9) == [] and len(layer) == 1
    assert [a.data for a in transmits(layer.receive(busy, PEER, 32.9))] == [ack.data]
    assert run_clock(layer, 40) == []  # Timer D ends the transaction without telling anyone
    assert len(layer) == 0 and layer.next_deadline() is None
    assert [type(a) for a in layer.receive(busy, PEER, 41.0)] == [Discarded]


def test_reliable_transport_has_no_retransmits_and_no_timer_d():
    layer = TransactionLayer()
    req = request()
    txn, actions = layer.send_request(req, PEER, 0.0, reliable=True)
    assert len(transmits(actions)) == 1
    assert layer.next_deadline() == 32.0  # only Timer B
    out = layer.receive(response_to(req, 503), PEER, 1.0)
    assert any(isinstance(a, Terminated) for a in out)  # Timer D is zero on TCP
    assert txn.state is State.TERMINATED and len(layer) == 0


def test_2xx_moves_client_to_accepted_and_every_2xx_reaches_the_tu_until_timer_m():
    layer = TransactionLayer()
    req = request()
    txn, _ = layer.send_request(req, PEER, 0.0)
    ok = response_to(req, 200)
    out = layer.receive(ok, PEER, 0.1)
    assert [a.response.status for a in out if isinstance(a, ResponseReceived)] == [200]
    assert not transmits(out)  # the TU ACKs a 2xx, not the transaction
    assert txn.state is State.ACCEPTED
    forked = response_to(req, 200, tag="other-branch")
    assert [type(a) for a in layer.receive(forked, PEER, 1.0)] == [ResponseReceived]
    assert layer.receive(response_to(req, 486), PEER, 1.5) == []  # ignored in Accepted
    seen = run_clock(layer, 100)
    assert [(t, type(a)) for t, a in seen] == [(pytest.approx(32.1), Terminated)]
    late = layer.receive(ok, PEER, 50.0)
    assert len(late) == 1 and isinstance(late[0], ResponseReceived)
    assert late[0].transaction is None  # stray 2xx: the TU must still ACK it


# ------------------------------------------------------------------------------ client non-INVITE


def test_timer_e_doubles_to_t2_then_timer_f():
    layer = TransactionLayer()
    layer.send_request(request("OPTIONS"), PEER, 0.0)
    seen = run_clock(layer, 100)
    times = [t for t, a in seen if isinstance(a, Transmit)]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    (final,) = [a for _, a in seen if isinstance(a, ResponseReceived)]
    assert final.local and final.response.status == 408
    assert len(layer) == 0


def test_timer_e_uses_t2_in_proceeding_and_timer_k_after_final():
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=2.0, t4=3.0))
    req = request("OPTIONS")
    txn, _ = layer.send_request(req, PEER, 0.0)
    layer.receive(response_to(req, 100), PEER, 0.05)
    assert txn.state is State.PROCEEDING
    seen = run_clock(layer, 4.2)
    assert [t for t, a in seen if isinstance(a, Transmit)] == pytest.approx([0.1, 2.1, 4.1])
    out = layer.receive(response_to(req, 200), PEER, 5.0)
    assert [type(a) for a in out] == [ResponseReceived]
    assert txn.state is State.COMPLETED
    assert layer.receive(response_to(req, 200), PEER, 6.0) == []  # absorbed
    assert layer.next_deadline() == pytest.approx(8.0)  # K = T4
    assert run_clock(layer, 10) == [] and len(layer) == 0
    assert [type(a) for a in layer.receive(response_to(req, 200), PEER, 10.0)] == [Discarded]


def test_client_transport_error_is_a_503_for_the_tu():
    layer = TransactionLayer()
    txn, _ = layer.send_request(request("OPTIONS"), PEER, 0.0)
    out = layer.transport_error(txn, 0.1)
    (event,) = [a for a in out if isinstance(a, ResponseReceived)]
    assert event.local and event.response.status == 503
    assert len(layer) == 0 and layer.next_deadline() is None


# ------------------------------------------------------------------------------ server INVITE


def new_server(layer: TransactionLayer, req: Request, now: float = 0.0, reliable: bool = False):
    out = layer.receive(req, PEER, now, reliable=reliable)
    (event,) = [a for a in out if isinstance(a, RequestReceived)]
    assert isinstance(event.transaction, ServerTransaction)
    return event.transaction, out


def test_server_invite_sends_100_and_absorbs_retransmissions():
    layer = TransactionLayer()
    req = request()
    txn, out = new_server(layer, req)
    (trying,) = transmits(out)
    assert isinstance(trying.message, Response) and trying.message.status == 100
    assert trying.target == PEER
    again = layer.receive(req, PEER, 0.5)
    assert [a.data for a in transmits(again)] == [trying.data]
    assert not any(isinstance(a, RequestReceived) for a in again)
    ringing = make_response(req, 180, to_tag="s1")
    layer.send_response(txn, ringing, 1.0)
    again = layer.receive(req, PEER, 1.5)
    assert [a.message for a in transmits(again)] == [ringing]
    assert len(layer) == 1


def test_timer_g_retransmits_final_until_timer_h_tells_the_tu():
    layer = TransactionLayer()
    req = request()
    txn, _ = new_server(layer, req)
    busy = make_response(req, 486, to_tag="s1")
    out = layer.send_response(txn, busy, 0.0)
    assert [a.message for a in transmits(out)] == [busy]
    assert txn.state is State.COMPLETED
    seen = run_clock(layer, 100)
    times = [t for t, a in seen if isinstance(a, Transmit)]
    # G = T1, 2T1, 4T1, then capped at T2 = 4 s; H = 64*T1 = 32 s
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(t, a.timer) for t, a in seen if isinstance(a, TimedOut)] == [(32.0, Timer.H)]
    assert len(layer) == 0


def test_ack_confirms_and_timer_i_absorbs_ack_retransmissions():
    layer = TransactionLayer()
    req = request()
    txn, _ = new_server(layer, req)
    busy = make_response(req, 486, to_tag="s1")
    layer.send_response(txn, busy, 0.0)
    again = layer.receive(req, PEER, 0.2)
    assert [a.message for a in transmits(again)] == [busy]  # INVITE retransmit: resend final
    ack = ack_for(req, parse_message(busy.to_bytes()))  # type: ignore[arg-type]
    out = layer.receive(ack, PEER, 0.3)
    assert out == []  # the ACK for a non-2xx is the transaction's, not the TU's
    assert txn.state is State.CONFIRMED
    assert layer.receive(ack, PEER, 0.4) == []
    assert layer.receive(req, PEER, 0.5) == []
    assert layer.next_deadline() == pytest.approx(5.3)  # I = T4
    assert run_clock(layer, 100) == [] and len(layer) == 0
    assert [type(a) for a in layer.receive(ack, PEER, 6.0)] == [RequestReceived]  # to the TU


def test_server_invite_reliable_has_no_timer_g_and_no_timer_i():
    layer = TransactionLayer()
    req = request()
    txn, _ = new_server(layer, req, reliable=True)
    busy = make_response(req, 486, to_tag="s1")
    layer.send_response(txn, busy, 0.0)
    assert layer.next_deadline() == 32.0  # H only
    out = layer.receive(ack_for(req, parse_message(busy.to_bytes())), PEER, 0.1, reliable=True)  # type: ignore[arg-type]
    assert [type(a) for a in out] == [Terminated]


def test_2xx_puts_server_in_accepted_where_invites_are_absorbed_and_tu_resends_2xx():
    layer = TransactionLayer()
    req = request()
    txn, _ = new_server(layer, req)
    ok = make_response(req, 200, to_tag="s1")
    out = layer.send_response(txn, ok, 0.0)
    assert [a.message for a in transmits(out)] == [ok]
    assert txn.state is State.ACCEPTED
    assert layer.receive(req, PEER, 0.5) == []  # RFC 6026: absorbed, the TU retransmits 2xx
    assert [a.message for a in transmits(layer.send_response(txn, ok, 0.5))] == [ok]
    ack = request("ACK", branch="z9hG4bKack2xx")  # a 2xx ACK is its own transaction
    out = layer.receive(ack, PEER, 0.6)
    assert len(out) == 1 and isinstance(out[0], RequestReceived)
    assert out[0].transaction is None
    seen = run_clock(layer, 100)
    assert [(t, type(a)) for t, a in seen] == [(32.0, Terminated)]  # Timer L = 64*T1
    assert transmits(layer.send_response(txn, ok, 40.0))  # still allowed after termination
    with pytest.raises(TransactionStateError):
        layer.send_response(txn, make_response(req, 486), 41.0)


def test_no_second_final_response():
    layer = TransactionLayer()
    req = request()
    txn, _ = new_server(layer, req)
    layer.send_response(txn, make_response(req, 486, to_tag="s"), 0.0)
    with pytest.raises(TransactionStateError):
        layer.send_response(txn, make_response(req, 200, to_tag="s"), 0.1)


def test_server_transport_error_informs_the_tu():
    layer = TransactionLayer()
    txn, _ = new_server(layer, request())
    out = layer.transport_error(txn, 0.1)
    assert [type(a) for a in out] == [TransportFailed, Terminated]
    assert len(layer) == 0


# ------------------------------------------------------------------------------ server non-INVITE


def test_server_non_invite_trying_proceeding_completed_and_timer_j():
    layer = TransactionLayer()
    req = request("OPTIONS")
    txn, out = new_server(layer, req)
    assert not transmits(out)  # no automatic 100 for non-INVITE
    assert txn.state is State.TRYING
    assert layer.receive(req, PEER, 0.1) == []  # Trying absorbs
    provisional = make_response(req, 100)
    layer.send_response(txn, provisional, 0.2)
    assert txn.state is State.PROCEEDING
    assert [a.message for a in transmits(layer.receive(req, PEER, 0.3))] == [provisional]
    ok = make_response(req, 200, to_tag="s")
    (sent,) = transmits(layer.send_response(txn, ok, 1.0))
    assert txn.state is State.COMPLETED
    again = transmits(layer.receive(req, PEER, 2.0))
    assert [(a.data, a.target) for a in again] == [(ok.to_bytes(), PEER)]
    assert layer.next_deadline() == 33.0  # J = 64*T1
    assert run_clock(layer, 32.9) == []
    assert [a.data for a in transmits(layer.receive(req, PEER, 32.9))] == [sent.data]
    assert run_clock(layer, 100) == [] and len(layer) == 0
    assert [type(a) for a in layer.receive(req, PEER, 100.0)] == [RequestReceived]  # a new one


def test_completed_transactions_keep_only_bytes_and_expire_in_order():
    """Thousands of transactions waiting out Timer J hold no request and no timer each."""
    layer = TransactionLayer()
    requests = [request("OPTIONS", branch=f"z9hG4bKmany{i}") for i in range(100)]
    for i, req in enumerate(requests):
        txn, _ = new_server(layer, req, now=i * 0.1)
        layer.send_response(txn, make_response(req, 200, to_tag="s"), i * 0.1)
    assert len(layer) == 100 and not layer._heap
    assert all(type(entry) is tuple for entry in layer._transactions.values())
    assert layer.next_deadline() == pytest.approx(32.0)
    layer.timeout(32.0 + 4.95)  # the first 50 (answered at 0.0 .. 4.9) expire together
    assert len(layer) == 50
    assert layer.next_deadline() == pytest.approx(37.0)
    assert transmits(layer.receive(requests[50], PEER, 36.96))
    assert [type(a) for a in layer.receive(requests[49], PEER, 36.96)] == [RequestReceived]


def test_server_non_invite_reliable_terminates_on_final():
    layer = TransactionLayer()
    req = request("OPTIONS")
    txn, _ = new_server(layer, req, reliable=True)
    out = layer.send_response(txn, make_response(req, 200, to_tag="s"), 0.0)
    assert [type(a) for a in out] == [Transmit, Terminated]
    assert len(layer) == 0


# ------------------------------------------------------------------------------ matching


def test_cancel_matches_the_invite_server_transaction():
    layer = TransactionLayer()
    invite = request()
    invite_txn, _ = new_server(layer, invite)
    cancel = parse_message(build_cancel(invite).to_bytes())
    assert isinstance(cancel, Request)
    out = layer.receive(cancel, PEER, 0.5)
    (event,) = [a for a in out if isinstance(a, RequestReceived)]
    assert event.request.method == "CANCEL"
    assert event.cancels is invite_txn
    assert event.transaction is not None and event.transaction is not invite_txn
    assert len(layer) == 2
    # a CANCEL for an INVITE we never saw: the TU answers 481
    stray = parse_message(build_cancel(request(branch="z9hG4bKnever")).to_bytes())
    out = layer.receive(stray, PEER, 0.6)  # type: ignore[arg-type]
    (event,) = [a for a in out if isinstance(a, RequestReceived)]
    assert event.cancels is None


def test_cancel_after_the_invite_is_confirmed_still_matches_it():
    """§9.2: a CANCEL that matches an existing transaction gets 200, even one whose final
    response was sent and ACKed; the Confirmed INVITE is only a record then (Timer I)."""
    layer = TransactionLayer()
    invite = request()
    invite_txn, _ = new_server(layer, invite)
    busy = make_response(invite, 486, to_tag="s")
    layer.send_response(invite_txn, busy, 0.1)
    layer.receive(ack_for(invite, busy), PEER, 0.2)
    assert type(layer._transactions[invite_txn.key]) is tuple  # Confirmed: a record
    cancel = parse_message(build_cancel(invite).to_bytes())
    assert isinstance(cancel, Request)
    (event,) = [a for a in layer.receive(cancel, PEER, 0.3) if isinstance(a, RequestReceived)]
    assert event.cancels is None and event.cancels_finished
    stray = parse_message(build_cancel(request(branch="z9hG4bKnever")).to_bytes())
    (event,) = [a for a in layer.receive(stray, PEER, 0.4) if isinstance(a, RequestReceived)]  # type: ignore[arg-type]
    assert event.cancels is None and not event.cancels_finished


def test_same_branch_different_sent_by_or_method_is_a_different_transaction():
    layer = TransactionLayer()
    a = request()
    new_server(layer, a)
    other_host = parse_message(a.to_bytes().replace(b"192.0.2.7:5060;", b"192.0.2.8:5060;"))
    assert any(isinstance(x, RequestReceived) for x in layer.receive(other_host, PEER, 0.1))  # type: ignore[arg-type]
    assert len(layer) == 2


def test_rfc2543_matching_without_magic_cookie():
    layer = TransactionLayer()
    old = parse_message((RFC4475 / "inv2543.dat").read_bytes())
    assert isinstance(old, Request)
    assert server_key(old)[0] == "s2543"
    txn, _ = new_server(layer, old)
    assert len(transmits(layer.receive(old, PEER, 0.2))) == 1  # retransmission matched
    busy = make_response(old, 486, to_tag="s")
    layer.send_response(txn, busy, 0.3)
    ack = parse_message(build_ack_for_2543(old, busy))
    assert isinstance(ack, Request)
    layer.receive(ack, PEER, 0.4)
    assert txn.state is State.CONFIRMED
    bare = parse_message((RFC4475 / "badbranch.dat").read_bytes())
    assert isinstance(bare, Request) and server_key(bare)[0] == "s2543"


def build_ack_for_2543(invite: Request, final: Response) -> bytes:
    return build_ack_for_non2xx(invite, parse_message(final.to_bytes())).to_bytes()  # type: ignore[arg-type]


def test_unmatched_and_malformed_responses_are_discarded():
    layer = TransactionLayer()
    req = request("OPTIONS")
    layer.send_request(req, PEER, 0.0)
    other = response_to(request("OPTIONS", branch="z9hG4bKother"), 200)
    (event,) = layer.receive(other, PEER, 0.1)
    assert isinstance(event, Discarded)
    wrong_method = parse_message(response_to(req, 200).to_bytes().replace(b"1 OPTIONS", b"1 INFO"))
    assert isinstance(layer.receive(wrong_method, PEER, 0.1)[0], Discarded)  # type: ignore[arg-type]
    broken = parse_message(response_to(req, 200).to_bytes().replace(b"CSeq: 1", b"CSeq: x"))
    assert isinstance(layer.receive(broken, PEER, 0.1)[0], Discarded)  # type: ignore[arg-type]
    assert len(layer) == 1


def test_next_deadline_is_the_earliest_of_all_transactions():
    layer = TransactionLayer()
    layer.send_request(request("OPTIONS", branch="z9hG4bKa"), PEER, 0.0)
    layer.send_request(request("OPTIONS", branch="z9hG4bKb"), PEER, 0.2)
    assert layer.next_deadline() == 0.5
    layer.timeout(0.5)
    assert layer.next_deadline() == pytest.approx(0.7)


def test_duplicate_client_transaction_is_refused():
    layer = TransactionLayer()
    layer.send_request(request("OPTIONS"), PEER, 0.0)
    with pytest.raises(ValueError, match="exists"):
        layer.send_request(request("OPTIONS"), PEER, 0.0)
    with pytest.raises(ValueError, match="ACK"):
        ClientTransaction(request("ACK"), PEER, reliable=False, config=TimerConfig())


def test_transaction_emits_timer_actions_with_absolute_deadlines():
    txn = ClientTransaction(request(), PEER, reliable=False, config=TimerConfig())
    actions = txn.start(10.0)
    timers = {a.timer: a.deadline for a in actions if isinstance(a, StartTimer)}
    assert timers == {Timer.A: 10.5, Timer.B: 42.0}
    assert txn.deadline == 10.5


def test_forget_drops_an_unanswered_server_transaction():
    layer = TransactionLayer()
    txn, _ = new_server(layer, request("OPTIONS"))
    assert len(layer) == 1 and layer.next_deadline() is None  # Trying has no timer at all
    layer.forget(txn)
    assert len(layer) == 0 and txn.state is State.TERMINATED
    # a retransmission now starts afresh rather than hitting a ghost
    assert any(isinstance(a, RequestReceived) for a in layer.receive(request("OPTIONS"), PEER, 1))
