"""Connects the registrar's sans-I/O core to the SIP stack: REGISTER in, response out."""

from __future__ import annotations

import time
from collections.abc import Callable

from outbound_pro.metrics import Registry
from outbound_pro.registrar.core import Registrar
from outbound_pro.sip.router import Router
from outbound_pro.sip.stack import SipStack, Source
from outbound_pro.sip.transaction import RequestReceived


class RegistrarEndpoint:
    def __init__(
        self,
        registrar: Registrar,
        router: Router,
        stack: SipStack,
        metrics: Registry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registrar = registrar
        self.stack = stack
        self.router = router
        self.clock = clock
        self._outcomes = metrics.counter(
            "outbound_pro_register_total", "REGISTER requests by response status", ("status",)
        )
        router.handle("REGISTER", self.register)

    def register(self, event: RequestReceived, source: Source) -> None:
        txn = event.transaction
        if txn is None:
            return
        outcome = self.registrar.handle_register(
            event.request, source.address, source.kind, self.clock()
        )
        if outcome.response is None:
            self._outcomes.inc(1, "dropped")
            self.stack.layer.forget(txn)
            return
        self._outcomes.inc(1, str(outcome.response.status))
        self.router.reply(txn, outcome.response)
