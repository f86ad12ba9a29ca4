"""SIP: the sans-I/O protocol core (message, validate, transaction) and its asyncio adapters.

The pure modules take bytes, messages and clock values and return messages and actions; they
import nothing from asyncio.  The names re-exported here are the stable surface the transports
and transaction users are written against.
"""

from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.headers import Headers, NameAddr, Via
from outbound_pro.sip.message import (
    Request,
    Response,
    StreamFramer,
    build_ack_for_non2xx,
    build_cancel,
    make_request,
    make_response,
    parse_message,
    stamp_received,
)
from outbound_pro.sip.timers import TimerConfig
from outbound_pro.sip.transaction import TransactionLayer
from outbound_pro.sip.uri import AbsoluteUri, SipUri, TelUri, parse_uri
from outbound_pro.sip.validate import Role, validate_request, validate_response

__all__ = [
    "AbsoluteUri",
    "Headers",
    "NameAddr",
    "Request",
    "Response",
    "Role",
    "SipParseError",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "TimerConfig",
    "TransactionLayer",
    "Via",
    "build_ack_for_non2xx",
    "build_cancel",
    "make_request",
    "make_response",
    "parse_message",
    "parse_uri",
    "stamp_received",
    "validate_request",
    "validate_response",
]
