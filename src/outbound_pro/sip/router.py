"""The transaction user: routes each new request to the service that owns its method.

Services (registrar, B2BUA, ...) register a handler per method. What nobody handles gets the
answers the SIP core issue asks for until those services exist: OPTIONS is answered here with
Allow/Accept (RFC 3261 §11.2), anything else with 404, and a CANCEL is answered per §9.2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from outbound_pro.sip.message import Response, make_response, new_tag
from outbound_pro.sip.stack import SipStack, Source
from outbound_pro.sip.transaction import (
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
)
from outbound_pro.sip.validate import ACCEPTED_TYPES, ALLOWED_METHODS

log = logging.getLogger("outbound_pro.sip.router")

RequestHandler = Callable[[RequestReceived, Source], None]
ResponseHandler = Callable[[ResponseReceived], None]


class Router:
    """Implements the stack's ``TransactionUser`` by dispatching on method."""

    def __init__(self) -> None:
        self.stack: SipStack | None = None
        self._handlers: dict[str, RequestHandler] = {}
        self._response_handlers: list[ResponseHandler] = []
        self._timeout_handlers: list[Callable[[ServerTransaction], None]] = []

    def attach(self, stack: SipStack) -> None:
        self.stack = stack

    def handle(self, method: str, handler: RequestHandler) -> None:
        self._handlers[method] = handler

    def on_response(self, handler: ResponseHandler) -> None:
        self._response_handlers.append(handler)

    def on_server_timeout(self, handler: Callable[[ServerTransaction], None]) -> None:
        self._timeout_handlers.append(handler)

    # -- TransactionUser

    def request_received(self, event: RequestReceived, source: Source) -> None:
        request = event.request
        handler = self._handlers.get(request.method)
        if handler is not None:
            handler(event, source)
            return
        txn = event.transaction
        if txn is None:
            return  # an ACK for a 2xx with no dialog handler: nothing to answer
        if request.method == "OPTIONS":
            self.reply(txn, self.options_response(event))
        elif request.method == "CANCEL":
            self._cancel(event)
        else:
            self.reply(txn, make_response(request, 404, to_tag=new_tag()))

    def response_received(self, event: ResponseReceived) -> None:
        for handler in self._response_handlers:
            handler(event)

    def server_timed_out(self, transaction: ServerTransaction) -> None:
        for handler in self._timeout_handlers:
            handler(transaction)

    # -- helpers for services

    def reply(self, transaction: ServerTransaction, response: Response) -> None:
        assert self.stack is not None
        self.stack.respond(transaction, response)

    def options_response(self, event: RequestReceived) -> Response:
        return make_response(
            event.request,
            200,
            to_tag=new_tag(),
            headers=(
                ("Allow", ", ".join(sorted(ALLOWED_METHODS))),
                ("Accept", ", ".join(ACCEPTED_TYPES)),
            ),
        )

    def _cancel(self, event: RequestReceived) -> None:
        """§9.2: 481 when no INVITE matches, else 200 to the CANCEL and 487 to the INVITE."""
        assert event.transaction is not None
        target = event.cancels
        if target is None:
            status = 200 if event.cancels_finished else 481
            self.reply(event.transaction, make_response(event.request, status, to_tag=new_tag()))
            return
        self.reply(event.transaction, make_response(event.request, 200, to_tag=new_tag()))
        if target.state is State.PROCEEDING:
            self.reply(target, make_response(target.request, 487, to_tag=new_tag()))
