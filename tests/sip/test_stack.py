"""Where the stack sends UDP responses (§18.2.2, RFC 3581): decided once per request."""

from __future__ import annotations

from outbound_pro.sip.message import Request, parse_message
from outbound_pro.sip.stack import reply_address

SOURCE = ("203.0.113.7", 40000)


def options(via: str) -> Request:
    message = parse_message(
        (
            f"OPTIONS sip:x@example.com SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            "From: <sip:a@example.com>;tag=1\r\nTo: <sip:x@example.com>\r\nCall-ID: c1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    assert isinstance(message, Request)
    return message


def test_rport_sends_back_to_the_source_address():
    assert reply_address(options("SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa;rport"), SOURCE) == (
        SOURCE
    )


def test_without_rport_the_source_host_and_the_sent_by_port():
    via = "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKa"
    assert reply_address(options(via), SOURCE) == ("203.0.113.7", 5062)
    named = "SIP/2.0/UDP phone.example.com;branch=z9hG4bKa"  # never resolved
    assert reply_address(options(named), SOURCE) == ("203.0.113.7", 5060)


def test_an_unreadable_via_answers_the_packets_source():
    assert reply_address(options("SIP/2.0/UDP ;;;"), SOURCE) == SOURCE
