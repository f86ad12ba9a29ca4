"""Message layer: parsing details, framing, serialisation and the request/response builders."""

from __future__ import annotations

import pytest

from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.headers import NameAddr, Via, parse_name_addr, parse_via, split_commas
from outbound_pro.sip.message import (
    Request,
    Response,
    StreamFramer,
    build_ack_for_non2xx,
    build_cancel,
    make_request,
    make_response,
    new_branch,
    new_tag,
    parse_message,
    stamp_received,
)
from outbound_pro.sip.uri import SipUri, TelUri, parse_uri
from outbound_pro.sip.validate import validate_request, validate_response

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com:5070;branch=z9hG4bKnashds8;received=192.0.2.1\r\n"
    b"Max-Forwards: 70\r\n"
    b"Record-Route: <sip:proxy.example.com;lr>\r\n"
    b'To: "Bob, the builder" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def invite() -> Request:
    m = parse_message(INVITE)
    assert isinstance(m, Request)
    return m


def test_canonical_message_round_trips_byte_identically():
    assert invite().to_bytes() == INVITE


def test_hot_path_fields():
    m = invite()
    assert m.method == "INVITE"
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.cseq == (314159, "INVITE")
    assert m.max_forwards == 70
    assert m.from_tag == "1928301774"
    assert m.to_tag is None
    assert m.to.display_name == "Bob, the builder"
    assert m.top_via.branch == "z9hG4bK776asdhds"
    assert m.top_via.has_rport and m.top_via.rport is None
    assert m.vias[1].received == "192.0.2.1" and m.vias[1].port == 5070
    assert m.content_length == 4 and m.body == b"v=0\n"
    assert m.record_routes[0].sip_uri is not None and m.record_routes[0].sip_uri.lr


def test_structured_headers_are_parsed_lazily_and_cached():
    m = invite()
    assert m.headers._cache == {}
    first = m.from_
    assert m.from_ is first
    # the hot-path headers are parsed together; list headers wait until asked for
    assert {"via:top", "from", "to", "call-id", "cseq", "max-forwards"} <= set(m.headers._cache)
    assert "contact" not in m.headers._cache and "via" not in m.headers._cache
    m.set("From", "<sip:carol@example.com>;tag=x")
    assert m.from_tag == "x"
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"


def test_one_bad_hot_header_does_not_hide_the_others():
    m = parse_message(INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: lots INVITE"))
    with pytest.raises(SipParseError, match="CSeq"):
        m.cseq  # noqa: B018
    with pytest.raises(SipParseError, match="CSeq"):
        m.cseq  # noqa: B018 - and again: the failure is remembered, not swallowed
    assert m.top_via.branch == "z9hG4bK776asdhds"
    assert m.from_tag == "1928301774"


def test_compact_forms_and_case_are_normalised():
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\n"
        b"t: <sip:a@b>\r\ni: cid\r\nCSEQ: 1 OPTIONS\r\nk: path, timer\r\nl: 0\r\n\r\n"
    )
    m = parse_message(data)
    assert [name for name, _ in m.headers] == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Supported",
        "Content-Length",
    ]
    assert m.get("SUPPORTED") == "path, timer"
    assert m.get_all("k") == ["path", "timer"]
    assert m.to_bytes().startswith(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1")


def test_comma_splitting_respects_quotes_and_brackets_and_grammar():
    assert split_commas('"a, b" <sip:x@y;p=1,2>, <sip:z@w>') == [
        '"a, b" <sip:x@y;p=1,2>',
        "<sip:z@w>",
    ]
    m = invite()
    m.add("WWW-Authenticate", 'Digest realm="a", nonce="b"')
    m.add("Date", "Sat, 13 Nov 2010 23:29:00 GMT")
    assert m.get_all("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert m.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    m.add("Allow", "INVITE, ACK")
    m.add("Allow", "BYE")
    assert m.get_all("Allow") == ["INVITE", "ACK", "BYE"]
    assert m.get("Allow") == "INVITE, ACK, BYE"


def test_header_mutation_helpers():
    m = invite()
    m.prepend_via(Via("UDP", "10.0.0.1", 5060, {"branch": "z9hG4bKtop"}))
    assert m.top_via.branch == "z9hG4bKtop"
    assert len(m.vias) == 3
    assert m.pop_via() == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKtop"
    assert m.top_via.branch == "z9hG4bK776asdhds"
    assert m.remove("Record-Route") == 1
    assert m.record_routes == []
    m.set("Max-Forwards", 69)
    assert m.max_forwards == 69
    m.body = b"longer body"
    assert parse_message(m.to_bytes()).body == b"longer body"


def test_pop_via_from_a_combined_line():
    m = parse_message(INVITE.replace(b"rport\r\nVia:", b"rport,"))
    assert len(m.vias) == 2
    m.pop_via()
    assert [v.host for v in m.vias] == ["proxy.example.com"]


def test_folding_and_lws():
    data = INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq  :\r\n  314159\r\n\tINVITE")
    m = parse_message(data)
    assert m.cseq == (314159, "INVITE")
    assert m.get("CSeq") == "314159 INVITE"


def test_datagram_body_framing():
    m = parse_message(INVITE + b"trailing junk")
    assert m.body == b"v=0\n"
    m = parse_message(INVITE.replace(b"Content-Length: 4\r\n", b""))
    assert m.body == b"v=0\n"
    m = parse_message(INVITE.replace(b"Content-Length: 4", b"Content-Length: 5"))
    with pytest.raises(SipParseError) as info:
        m.body  # noqa: B018
    assert info.value.status == 400 and info.value.response() is not None
    response = validate_request(m)  # type: ignore[arg-type]
    assert response is not None and response.status == 400


@pytest.mark.parametrize(
    ("mutation", "status", "answerable"),
    [
        ((b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia"), 505, True),
        ((b"SIP/2.0\r\nVia", b"SIP/two\r\nVia"), 400, True),
        ((b"INVITE sip:bob", b"INV@TE sip:bob"), 400, True),
        ((b"INVITE sip:bob@biloxi.example.com", b"INVITE sip:bob@biloxi\n.example.com"), 400, True),
        ((b"INVITE sip:bob@biloxi.example.com SIP/2.0", b"ACK sip:bob SIP/3.0"), None, False),
    ],
)
def test_start_line_errors_are_parse_errors(mutation, status, answerable):
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(*mutation))
    assert info.value.status == status
    assert (info.value.response() is not None) is answerable


@pytest.mark.parametrize(
    ("mutation", "reason"),
    [
        ((b"Max-Forwards: 70", b"Max Forwards: 70"), "header name"),
        ((b"Max-Forwards: 70", b"Max-Forwards 70"), "no colon"),
        ((b"Content-Length: 4", b"Content-Length: 4x"), "Content-Length"),
        ((b"Content-Length: 4", b"Content-Length: 4\r\nl: 3"), "Conflicting"),
        ((b"Max-Forwards: 70", b"Max-Forwards: 70\r\n\tx: y"), "Continuation"),
        ((b"Max-Forwards: 70", b"Max-Forwards: 70\rX: y"), "Bare CR or LF"),
        ((b"Max-Forwards: 70", b"Max-Forwards: 70\nCall-ID: other"), "Bare CR or LF"),
    ],
)
def test_header_line_errors_surface_in_validation(mutation, reason):
    data = INVITE.replace(*mutation)
    if b"\tx: y" in data:  # a continuation needs a line to continue: put it first
        data = data.replace(b"Max-Forwards: 70\r\n\tx: y", b"Max-Forwards: 70").replace(
            b"SIP/2.0\r\nVia", b"SIP/2.0\r\n\tx: y\r\nVia", 1
        )
    m = parse_message(data)  # lazy: header lines are not split yet
    assert isinstance(m, Request)
    response = validate_request(m)
    assert response is not None and response.status == 400
    assert reason in response.reason
    assert response.get_all("Via") == parse_message(INVITE).get_all("Via")
    with pytest.raises(SipParseError):
        m.to_bytes()  # never re-emitted


def test_parse_does_not_split_headers_until_asked():
    m = parse_message(INVITE)
    assert m.headers._lines is not None and m.headers._fields == []
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.headers._lines is None and len(m.headers) == 11


def test_bad_responses_are_dropped_not_answered():
    ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"
    assert parse_message(ok).status == 200  # type: ignore[union-attr]
    for bad in (
        ok.replace(b"200", b"2000"),
        ok.replace(b"200", b"099"),
        ok.replace(b"SIP/2.0 200", b"SIP/3.0 200"),
    ):
        with pytest.raises(SipParseError) as info:
            parse_message(bad)
        assert info.value.status is None
        assert info.value.response() is None
    for bad in (
        ok.replace(b"Content-Length: 0", b"Content-Length: -1"),
        ok.replace(b"Via:", b"Via"),
    ):
        m = parse_message(bad)
        assert isinstance(m, Response)
        assert validate_response(m) is not None
        with pytest.raises(SipParseError) as info:
            m.headers.check()
            m.body  # noqa: B018
        assert info.value.status == 400 or info.value.status is None
    m = parse_message(ok.replace(b"Via: SIP/2.0/UDP h", b"Via: garbage"))
    with pytest.raises(SipParseError) as err:
        m.top_via  # noqa: B018
    assert err.value.status is None


def test_size_and_header_count_limits():
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE, max_size=100)
    assert info.value.status == 413 and info.value.response() is None
    many = INVITE.replace(b"\r\n\r\n", b"\r\n" + b"X-A: 1\r\n" * 40 + b"\r\n")
    assert len(parse_message(many).get_all("X-A")) == 40
    with pytest.raises(SipParseError) as info:
        parse_message(many, max_headers=30)
    assert info.value.status == 413


def test_keepalive_datagram_is_dropped():
    with pytest.raises(SipParseError) as info:
        parse_message(b"\r\n\r\n")
    assert info.value.status is None
    assert parse_message(b"\r\n" + INVITE).method == "INVITE"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ stream framing


def test_framer_splits_coalesced_and_partial_messages():
    framer = StreamFramer()
    stream = b"\r\n\r\n" + INVITE + b"\r\n" + INVITE + INVITE
    frames: list[bytes] = []
    for i in range(0, len(stream), 7):
        frames += framer.feed(stream[i : i + 7])
    assert frames == [INVITE, INVITE, INVITE]
    assert framer.buffered == 0
    assert framer.feed(INVITE + INVITE[:50]) == [INVITE]
    assert framer.buffered == 50


def test_framer_missing_content_length_means_empty_body():
    msg = INVITE.replace(b"Content-Length: 4\r\n", b"").replace(b"v=0\n", b"")
    assert StreamFramer().feed(msg + msg) == [msg, msg]


def test_framer_errors_close_the_stream():
    for bad, status in (
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: -4"), 400),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 4\r\nl: 5"), 400),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 99999999"), 413),
    ):
        framer = StreamFramer()
        with pytest.raises(SipParseError) as info:
            framer.feed(bad)
        assert info.value.status == status
        with pytest.raises(SipParseError):
            framer.feed(b"")
    framer = StreamFramer(max_size=1000)
    with pytest.raises(SipParseError) as info:
        framer.feed(b"OPTIONS sip:x SIP/2.0\r\n" + b"X: y\r\n" * 200)
    assert info.value.status == 413


def test_framer_returns_good_frames_before_reporting_an_error():
    framer = StreamFramer()
    bad = INVITE.replace(b"Content-Length: 4", b"Content-Length: x")
    assert framer.feed(INVITE + bad) == [INVITE]
    assert framer.error is not None and framer.error.status == 400
    with pytest.raises(SipParseError):
        framer.feed(b"")


# ------------------------------------------------------------------------------ URIs


def test_sip_uri_components_and_escaping():
    uri = parse_uri("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=hi%20there")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "secret",
        "[2001:db8::1]",
        5061,
    )
    assert uri.transport == "tcp" and uri.lr
    assert uri.headers == [("subject", "hi there")]
    built = SipUri("example.com", user="a b@c", params={"user": "phone"})
    assert str(built) == "sip:a%20b%40c@example.com;user=phone"
    assert parse_uri(str(built)) == built


def test_uri_equality_rules():
    assert parse_uri("sip:%61lice@ATLANTA.com;transport=TCP") == parse_uri(
        "sip:alice@atlanta.com;transport=tcp"
    )
    assert parse_uri("sip:alice@atlanta.com") != parse_uri("sip:ALICE@atlanta.com")
    assert parse_uri("sip:bob@biloxi.com") != parse_uri("sip:bob@biloxi.com:5060")
    assert parse_uri("sip:carol@chicago.com") != parse_uri("sip:carol@chicago.com;transport=udp")


def test_tel_uri():
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(uri, TelUri)
    assert uri.is_global and uri.params == {"phone-context": "example.com"}
    assert uri == parse_uri("tel:+12015550123;phone-context=example.com")


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:user@",
        "sip:a@b:99999",
        "sip:a@b:x",
        "sip:a%4@b",
        "sip:a b@c",
        "sip:a@b;=x",
        ":x",
    ],
)
def test_bad_uris(text):
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status == 400


def test_name_addr_forms():
    a = parse_name_addr('"A \\"B\\"" <sip:a@b;lr>;tag=1;x="y;z"', "From")
    assert a.display_name == 'A "B"' and a.tag == "1" and a.params["x"] == '"y;z"'
    assert a.sip_uri is not None and a.sip_uri.lr
    b = parse_name_addr("sip:a@b;tag=2", "From")
    assert b.tag == "2" and str(b.uri) == "sip:a@b"
    built = NameAddr(SipUri("b", user="a"), "Alice Smith").with_tag("t")
    assert str(built) == "Alice Smith <sip:a@b>;tag=t"
    assert str(NameAddr("sip:a@b", "Smith, Alice")) == '"Smith, Alice" <sip:a@b>'


# ------------------------------------------------------------------------------ builders


def test_make_response_copies_the_8_2_6_headers():
    m = invite()
    r = make_response(m, 180, to_tag="xyz")
    assert isinstance(r, Response)
    assert r.reason == "Ringing"
    assert r.get_all("Via") == m.get_all("Via")
    assert r.to_tag == "xyz" and r.to.display_name == "Bob, the builder"
    assert r.from_tag == m.from_tag and r.call_id == m.call_id and r.cseq == m.cseq
    assert r.get_all("Record-Route") == m.get_all("Record-Route")
    assert make_response(m, 100, to_tag="xyz").to_tag is None
    assert "Record-Route" not in make_response(m, 486, to_tag="x").headers
    r = make_response(m, 200, "Fine", headers=[("Contact", "<sip:b@c>")], body=b"v=0\r\n")
    wire = parse_message(r.to_bytes())
    assert isinstance(wire, Response) and wire.reason == "Fine" and wire.body == b"v=0\r\n"
    assert wire.get("Content-Length") == "5"


def test_make_response_keeps_an_existing_to_tag():
    m = invite()
    m.set("To", "<sip:bob@biloxi.example.com>;tag=already")
    assert make_response(m, 200, to_tag="new").to_tag == "already"


def test_make_request_and_ack_and_cancel():
    req = make_request(
        "INVITE",
        SipUri("carrier.example.net", user="+81312345678"),
        from_=NameAddr(SipUri("pbx.example.com", user="100"), "Agent 1").with_tag(new_tag()),
        to=SipUri("carrier.example.net", user="+81312345678"),
        call_id="c1@pbx",
        cseq=1,
        via=Via("UDP", "192.0.2.10", 5060, {"branch": new_branch(), "rport": None}),
        route=["<sip:edge.example.net;lr>"],
        contact="<sip:100@192.0.2.10>",
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    wire = parse_message(req.to_bytes())
    assert isinstance(wire, Request)
    assert wire.cseq == (1, "INVITE") and wire.max_forwards == 70
    assert wire.from_.display_name == "Agent 1" and wire.top_via.is_rfc3261_branch
    assert wire.routes[0].sip_uri is not None and wire.routes[0].sip_uri.lr

    final = make_response(wire, 486, to_tag="callee")
    ack = build_ack_for_non2xx(wire, final)
    assert ack.method == "ACK" and ack.uri_text == wire.uri_text
    assert ack.cseq == (1, "ACK")
    assert ack.top_via.branch == wire.top_via.branch and len(ack.vias) == 1
    assert ack.to_tag == "callee" and ack.from_tag == wire.from_tag
    assert ack.get_all("Route") == wire.get_all("Route")

    cancel = build_cancel(wire)
    assert cancel.method == "CANCEL" and cancel.cseq == (1, "CANCEL")
    assert cancel.top_via.branch == wire.top_via.branch and cancel.to_tag is None
    assert cancel.call_id == wire.call_id and cancel.uri_text == wire.uri_text
    assert "Require" not in cancel.headers and cancel.body == b""


def _response_top_via(request: Request) -> Via:
    wire = parse_message(make_response(request, 200, to_tag="t").to_bytes())
    assert isinstance(wire, Response)
    return wire.top_via


def test_stamp_received_reaches_the_responses_top_via_only():
    m = invite()
    stamp_received(m, "203.0.113.7", 40000)
    assert m.top_via.received is None  # the request itself is left as it arrived
    top = _response_top_via(m)
    assert top.received == "203.0.113.7" and top.rport == 40000
    assert top.response_address() == ("203.0.113.7", 40000)
    assert top.branch == "z9hG4bK776asdhds"
    assert len(parse_message(make_response(m, 180).to_bytes()).vias) == 2
    plain = parse_message(INVITE.replace(b";rport", b""))
    assert isinstance(plain, Request)
    stamp_received(plain, "203.0.113.7", 40000)
    top = _response_top_via(plain)
    assert top.received == "203.0.113.7" and top.rport is None
    assert top.response_address() == ("203.0.113.7", 5060)
    same = parse_message(INVITE.replace(b"pc33.atlanta.example.com;", b"203.0.113.7;", 1))
    assert isinstance(same, Request)
    stamp_received(same, "203.0.113.7", 5060)
    assert _response_top_via(same).received == "203.0.113.7"  # rport was requested
    nat = parse_message(INVITE.replace(b"pc33.atlanta.example.com;", b"203.0.113.7;", 1))
    assert isinstance(nat, Request)
    nat.headers.set("Via", "SIP/2.0/UDP 203.0.113.7:5062;branch=z9hG4bKnat")
    stamp_received(nat, "203.0.113.7", 5062)  # sent-by is the source, no rport: untouched
    assert str(_response_top_via(nat)) == "SIP/2.0/UDP 203.0.113.7:5062;branch=z9hG4bKnat"


def test_stamping_a_combined_via_line_touches_only_the_first_value():
    m = invite()
    m.headers.set("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1;rport, SIP/2.0/UDP b;branch=x")
    stamp_received(m, "198.51.100.1", 7000)
    response = make_response(m, 200, to_tag="t")
    assert response.get_all("Via") == [
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1;rport=7000;received=198.51.100.1",
        "SIP/2.0/UDP b;branch=x",
    ]
    m.headers.set("Via", "SIP/2.0/UDP c.example.com;branch=z9hG4bK2")  # changed: stamped anew
    assert make_response(m, 200).get("Via") == (
        "SIP/2.0/UDP c.example.com;branch=z9hG4bK2;received=198.51.100.1"
    )


def test_acks_are_never_answered():
    ack = parse_message(
        INVITE.replace(b"INVITE sip:bob", b"ACK sip:bob").replace(b"314159 INVITE", b"314159 ACK")
    )
    assert isinstance(ack, Request)
    assert validate_request(ack) is None
    ack.version = "SIP/3.0"
    with pytest.raises(SipParseError) as info:
        validate_request(ack)
    assert info.value.status is None and info.value.response() is None
    broken = parse_message(
        INVITE.replace(b"INVITE sip:bob", b"ACK sip:bob").replace(
            b"CSeq: 314159 INVITE", b"CSeq: x"
        )
    )
    with pytest.raises(SipParseError) as info:
        validate_request(broken)  # type: ignore[arg-type]
    assert info.value.status is None and info.value.response() is None


def test_stamp_received_keeps_the_request_and_its_parsed_headers():
    """Stamping only records the source: nothing parsed is dropped or parsed again."""
    m = invite()
    from_, top = m.from_, m.top_via
    wire = m.to_bytes()
    stamp_received(m, "203.0.113.7", 40000)
    assert m.from_ is from_ and m.top_via is top and m.received_from == ("203.0.113.7", 40000)
    assert m.to_bytes() == wire


def test_make_response_reuses_parsed_request_headers():
    m = invite()
    stamp_received(m, "203.0.113.7", 40000)
    r = make_response(m, 200, to_tag="abc", headers=[("Allow", "  INVITE ")])
    assert r.top_via.response_address() == ("203.0.113.7", 40000)
    assert make_response(m, 180).get_all("Via")[0] == r.get_all("Via")[0]  # stamped once
    assert r.to.tag == "abc" and r.get("Allow") == "INVITE"
    to_line = b'To: "Bob, the builder" <sip:bob@biloxi.example.com>'
    in_dialog = parse_message(INVITE.replace(to_line, to_line + b";tag=abc", 1))
    assert isinstance(in_dialog, Request) and in_dialog.to.tag == "abc"
    assert make_response(in_dialog, 200, to_tag="zzz").to.tag == "abc"


def test_parse_uri_shares_equal_parses_but_never_errors():
    assert parse_uri("sip:alice@atlanta.example.com") is parse_uri("sip:alice@atlanta.example.com")
    for _ in range(2):
        with pytest.raises(SipParseError):
            parse_uri("sip:alice@")


def test_error_response_to_a_bad_request_carries_a_stable_to_tag() -> None:
    """§8.2.6.2: the 400 for a malformed request needs a To tag, the same on a retransmission."""
    bad = (
        b"OPTIONS sip:x@127.0.0.1 SIP/2.0 trailing\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-bad\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: bad-1\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    responses = []
    for _ in range(2):
        with pytest.raises(SipParseError) as info:
            parse_message(bad)
        response = info.value.response()
        assert response is not None and response.status == 400
        responses.append(response)
    assert responses[0].to_tag
    assert responses[0].to_tag == responses[1].to_tag


def test_stamped_via_keeps_parameter_spelling_and_order():
    plain = parse_via("SIP/2.0/UDP a.example.com;RPORT;branch=z9hG4bKx")
    assert plain.stamped("192.0.2.1", 9) == (
        "SIP/2.0/UDP a.example.com;RPORT=9;branch=z9hG4bKx;received=192.0.2.1"
    )
    spaced = parse_via("SIP/2.0/UDP a.example.com ; branch=z9hG4bKx ; rport")  # general grammar
    again = parse_via(spaced.stamped("192.0.2.1", 9))
    assert (again.branch, again.rport, again.received) == ("z9hG4bKx", 9, "192.0.2.1")
    assert parse_via("SIP/2.0/UDP 192.0.2.1:9;branch=z9hG4bKx").stamped("192.0.2.1", 9) == (
        "SIP/2.0/UDP 192.0.2.1:9;branch=z9hG4bKx"
    )
