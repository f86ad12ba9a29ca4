"""The one exception type the SIP message layer raises for bad input.

Principle 7 says malformed SIP becomes the RFC's error response or is dropped.  To make that
mechanical for the transports, every parsing failure anywhere in ``sip/`` (start line, header
section, framing, URIs, structured header values) is a :class:`SipParseError` that carries the
status the RFC asks for and, when enough of a request was readable, the partially parsed
request so a response can be addressed back to its sender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from outbound_pro.sip.message import Request, Response


class SipParseError(Exception):
    """Input that is not acceptable SIP.

    ``status`` is the response the RFC wants a UAS to send (400, 413, 505 ...) or ``None`` when
    nothing may be sent back (a bad response, a bad ACK, a keep-alive, bytes with no start line).
    ``reason`` is a human reason phrase naming the problem, fit to put in the status line.
    ``partial`` is the request as far as it could be read (start line and header lines), or
    ``None``; it is what :meth:`response` addresses the error response with.
    """

    __slots__ = ("partial", "reason", "status")

    def __init__(self, status: int | None, reason: str, partial: Request | None = None) -> None:
        super().__init__(f"{status} {reason}" if status is not None else reason)
        self.status = status
        self.reason = reason
        self.partial = partial

    def response(self) -> Response | None:
        """The error response to send, or ``None`` when the error must be dropped silently.

        A response needs a status, a partially parsed request that is not an ACK (ACKs are never
        answered, RFC 3261 §17.1.1.3) and at least one Via value to route it by.  The other
        §8.2.6 headers are copied when present, so a request missing From or To (RFC 4475
        ``insuf``) still gets its 400.
        """
        partial = self.partial
        if self.status is None or partial is None or partial.method == "ACK":
            return None
        if not partial.headers.get_all("via"):
            return None
        from outbound_pro.sip.message import make_response, stateless_tag

        # §8.2.6.2: a response needs a To tag; derived from the request, so a retransmission of
        # the same bad request is answered identically.
        return make_response(partial, self.status, self.reason, to_tag=stateless_tag(partial))
