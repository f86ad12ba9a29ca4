"""What a UAS must check before acting on a request, and the response each failure earns.

Parsing is lazy (see :mod:`outbound_pro.sip.message`), so this is also where every header a
transaction user relies on gets parsed once, up front: after :func:`validate_request` returns
``None``, reading ``top_via``, ``from_``, ``to``, ``call_id``, ``cseq``, ``max_forwards``,
``uri``, ``contacts`` and ``record_routes`` cannot raise.

The order follows RFC 3261 §8.2 (UAS behaviour) and §16.3 (proxy request validation):
syntax and mandatory headers (400, 505), method (501), Request-URI scheme (416), loop
protection (483), extensions (420), then content (415, 406).
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from outbound_pro.sip.errors import SipParseError
from outbound_pro.sip.headers import MAX_CSEQ, check_via, parse_uint
from outbound_pro.sip.message import Request, Response, make_response, stateless_tag
from outbound_pro.sip.uri import SipUri


class Role(StrEnum):
    """How this element handles the request, which decides Max-Forwards and Require handling.

    ``UAS``: the request ends here; Max-Forwards 0 is processed normally (RFC 4475 ``zeromf``).
    ``PROXY``: the request is forwarded as-is; Max-Forwards 0 gets 483 and Proxy-Require,
    not Require, is checked (§16.3).
    ``B2BUA``: what Outbound Pro is.  Requests it answers itself (OPTIONS, REGISTER, and any
    in-dialog request, which it terminates and re-issues with a fresh Max-Forwards on the other
    leg) are treated as a UAS would.  A dialog-creating request that it would *re-originate* on
    another leg (an INVITE to be bridged) gets 483 at Max-Forwards 0: RFC 7332 requires a B2BUA
    to carry the decremented count into the request it generates, and a count that cannot be
    decremented means the request has looped or travelled too far.
    """

    UAS = "uas"
    PROXY = "proxy"
    B2BUA = "b2bua"


ALLOWED_METHODS = frozenset(
    ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE", "MESSAGE")
)
"""Methods answered by default; anything else gets 501 with this list in Allow."""
LOCAL_METHODS = frozenset(("OPTIONS", "REGISTER"))
"""Methods a B2BUA answers itself rather than re-originating."""
ACCEPTED_TYPES = ("application/sdp",)
_SCHEMES = frozenset(("sip", "sips", "tel"))
_AOR = frozenset(("sip", "sips"))


def validate_request(
    request: Request,
    *,
    role: Role = Role.B2BUA,
    allowed_methods: Collection[str] = ALLOWED_METHODS,
    supported: Collection[str] = (),
    accepted_types: Collection[str] = ACCEPTED_TYPES,
    local_methods: Collection[str] = LOCAL_METHODS,
    to_tag: str | None = None,
    warn_agent: str = "outbound-pro",
) -> Response | None:
    """The error response RFC 3261 wants for *request*, or ``None`` if it may be processed.

    *supported* lists the option tags understood in Require (Proxy-Require for a proxy).
    Responses carry a To tag (*to_tag*, or one derived from the request so retransmissions
    get the same one).  An ACK is never answered (§17.1.1.3): a malformed ACK raises
    :class:`SipParseError` with status None instead, so the caller drops it like any other
    unanswerable input.
    """
    tag = to_tag

    def reply(
        status: int, reason: str | None = None, headers: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        return make_response(
            request,
            status,
            reason,
            to_tag=tag if tag is not None else stateless_tag(request),
            headers=headers,
        )

    if request.version != "SIP/2.0":
        if request.method == "ACK":
            raise SipParseError(None, "Version Not Supported", request)
        return reply(505)
    try:
        _check_syntax(request)
    except SipParseError as err:
        if request.method == "ACK":
            raise SipParseError(None, err.reason, request) from None
        return reply(400, err.reason)
    if request.method == "ACK":
        return None

    method = request.method
    if role is not Role.PROXY and method not in allowed_methods:
        return reply(501, None, (("Allow", ", ".join(sorted(allowed_methods))),))
    if request.cseq[1] != method:
        return reply(400, "CSeq method does not match Request-Line")
    uri = request.uri
    if uri.scheme not in _SCHEMES:
        return reply(416, None)
    if isinstance(uri, SipUri) and uri.headers:
        return reply(400, "Request-URI must not carry headers")
    problem = _check_scalars(request)
    if problem is not None:
        return reply(400, problem)
    if method == "REGISTER" and role is not Role.PROXY and request.to.uri.scheme not in _AOR:
        return reply(400, "Address-of-record must be a SIP or SIPS URI")
    if request.max_forwards == 0 and _forwards(request, role, local_methods):
        return reply(483)
    if method != "CANCEL":
        name = "proxy-require" if role is Role.PROXY else "require"
        unknown = [t for t in request.get_all(name) if t.lower() not in _lower(supported)]
        if unknown:
            return reply(420, None, (("Unsupported", ", ".join(unknown)),))
    if role is Role.PROXY or method != "INVITE":
        return None
    types = _lower(accepted_types)
    if request.body:
        ctype = request.content_type
        if ctype is None:
            return reply(400, "Missing Content-Type")
        if ctype not in types:
            return reply(415, None, (("Accept", ", ".join(accepted_types)),))
        encodings = [e.lower() for e in request.get_all("content-encoding")]
        if any(e != "identity" for e in encodings):
            return reply(415, None, (("Accept-Encoding", "identity"),))
    accept = request.get_all("accept")
    if accept and not _acceptable(accept, types):
        warning = f'399 {warn_agent} "Only {", ".join(accepted_types)} bodies are supported"'
        return reply(406, None, (("Accept", ", ".join(accepted_types)), ("Warning", warning)))
    return None


_SINGLE = (
    ("call-id", "Call-ID"),
    ("from", "From"),
    ("to", "To"),
    ("cseq", "CSeq"),
    ("max-forwards", "Max-Forwards"),
)


def _check_single(message: Request | Response) -> None:
    """Headers that may appear once (RFC 4475 ``multi01``).  The accessors read the first
    line only, which keeps them cheap; this is where a second line is caught."""
    headers = message.headers
    first = headers._first
    if first is not None and len(first) == len(headers._fields):
        return  # no header name repeats at all (lines already split by check())
    raw = headers._raw_key  # the keys above are lookup keys already: no header_key()
    for key, name in _SINGLE:
        if len(raw(key)) > 1:
            raise SipParseError(400, f"Duplicate {name} header")


def _check_syntax(request: Request) -> None:
    """Parse everything a UAS relies on; the first malformed value raises."""
    request.headers.check()  # malformed header lines (parsing splits lines lazily)
    request.body  # noqa: B018 - frames the body: bad or conflicting Content-Length
    _check_single(request)
    for via in request.vias:
        check_via(via)
    request.top_via  # noqa: B018
    request.call_id  # noqa: B018
    request.cseq  # noqa: B018
    request.max_forwards  # noqa: B018
    request.uri  # noqa: B018
    for what, addr in (("From", request.from_), ("To", request.to)):
        try:
            addr.uri  # noqa: B018
        except SipParseError:
            raise SipParseError(400, f"Malformed URI in {what} header") from None
    for contact in request.contacts:
        try:
            contact.uri  # noqa: B018
        except SipParseError:
            raise SipParseError(400, "Malformed URI in Contact header") from None
    for route in request.record_routes + request.routes:
        route.uri  # noqa: B018


def _check_scalars(request: Request) -> str | None:
    """Out-of-range numbers (RFC 4475 ``scalar02``) are errors, not silently clamped."""
    try:
        for value in request.get_all("expires"):
            parse_uint(value, "Expires", MAX_CSEQ)
        for contact in request.contacts:
            expires = contact.params.get("expires")
            if expires is not None:
                parse_uint(expires, "Contact expires", MAX_CSEQ)
    except SipParseError as err:
        return err.reason
    return None


def _forwards(request: Request, role: Role, local_methods: Collection[str]) -> bool:
    if role is Role.PROXY:
        return True
    if role is Role.UAS:
        return False
    return request.method not in local_methods and request.to.tag is None


def _lower(items: Collection[str]) -> set[str]:
    return {item.lower() for item in items}


def _acceptable(accept: list[str], types: set[str]) -> bool:
    for item in accept:
        media = item.split(";", 1)[0].strip(" \t").lower()
        if media == "*/*" or media in types:
            return True
        if media.endswith("/*") and any(t.startswith(media[:-1]) for t in types):
            return True
    return False


def validate_response(response: Response) -> str | None:
    """Why *response* must be dropped, or ``None`` if a transaction may use it.

    Responses are never answered, so there is no status here: a response with a missing or
    malformed Via, From, To, Call-ID or CSeq (or a CSeq beyond 2**32-1, RFC 4475
    ``scalarlg``) is simply discarded.
    """
    try:
        response.headers.check()
        response.body  # noqa: B018
        _check_single(response)
        check_via(response.top_via)
        response.call_id  # noqa: B018
        response.cseq  # noqa: B018
        response.from_  # noqa: B018
        response.to  # noqa: B018
    except SipParseError as err:
        return err.reason
    return None
