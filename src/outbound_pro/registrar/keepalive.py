"""OPTIONS keep-alive of registered contacts (issue 3).

Why: a phone behind NAT stays reachable only while its NAT mapping lives, and a phone that
crashed or lost its network keeps a binding until it expires (up to an hour), so calls would
be routed into a void. Every ``interval`` seconds each live binding gets an OPTIONS sent to
where its REGISTER really came from (source address and transport, not the Contact URI,
which may hold a private address). The traffic itself refreshes the NAT mapping.

Policy: any response, even an error status such as 404 or 405, proves the phone is there. A
timeout (the transaction layer's local 408) or a transport error (local 503) counts as one
miss; after ``max_misses`` consecutive misses (default 3, so a phone gone for about three
intervals) the binding is removed, exactly as an ``Expires: 0`` would, and calls stop going
there. A binding refreshed by a REGISTER after the probe that missed is never removed by it.
Stream (TCP/TLS) bindings are probed over their open connection; when that connection is gone
the phone cannot be reached (the server cannot connect back through NAT), which is a miss.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from outbound_pro.registrar.core import Registrar
from outbound_pro.registrar.model import Binding
from outbound_pro.sip.message import make_request, new_branch, new_call_id, new_tag
from outbound_pro.sip.router import Router
from outbound_pro.sip.stack import Destination, SipStack
from outbound_pro.sip.transaction import ResponseReceived

log = logging.getLogger("outbound_pro.registrar.keepalive")

BindingKey = tuple[int, str, str]  # id_id, aor, contact


def _key(b: Binding) -> BindingKey:
    return (b.id_id, b.aor, b.contact)


@dataclass
class _Probe:
    key: BindingKey
    sent_at: float


class KeepAlive:
    """Sends the probes and keeps the miss counts; one per server, on the event loop."""

    def __init__(
        self,
        registrar: Registrar,
        stack: SipStack,
        router: Router,
        *,
        interval: float = 30.0,
        max_misses: int = 3,
        sent_by: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0 or max_misses < 1:
            raise ValueError("interval must be positive and max_misses at least 1")
        self.registrar = registrar
        self.stack = stack
        self.interval = interval
        self.max_misses = max_misses
        self.sent_by = sent_by
        self.clock = clock
        self.misses: dict[BindingKey, int] = {}
        self.removed = 0
        self._pending: dict[str, _Probe] = {}  # Call-ID -> probe
        self._cseq = 0
        router.on_response(self._on_response)

    # -- probing --------------------------------------------------------------------------

    def _via_host(self) -> str:
        if self.sent_by:
            return self.sent_by
        if self.stack.udp is not None:
            host, port = self.stack.udp.local[:2]
            return f"{host}:{port}"
        return "127.0.0.1"

    def probe_all(self) -> int:
        """Send one OPTIONS to every live binding; returns how many were sent."""
        now = self.clock()
        live = self.registrar.store.live_bindings(now)
        keys = {_key(b) for b in live}
        for key in list(self.misses):
            if key not in keys:
                del self.misses[key]
        sent = 0
        for binding in live:
            if self._probe(binding, now):
                sent += 1
        return sent

    def _probe(self, b: Binding, now: float) -> bool:
        transport = b.transport if b.transport in ("udp", "tcp", "tls") else "udp"
        destination = Destination(transport, (b.source_host, b.source_port))
        if (
            transport != "udp"
            and self.stack.connections.get(transport, destination.address) is None
        ):
            self._miss(_key(b), now)
            return False
        self._cseq = (self._cseq + 1) % 2**31
        call_id = new_call_id()
        realm = b.aor.rsplit("@", 1)[-1]
        request = make_request(
            "OPTIONS",
            b.contact,
            from_=f"<sip:keepalive@{realm}>;tag={new_tag()}",
            to=f"<{b.aor}>",
            call_id=call_id,
            cseq=self._cseq,
            via=f"SIP/2.0/{transport.upper()} {self._via_host()};branch={new_branch()};rport",
            headers=(("Content-Length", "0"),),
        )
        self._pending[call_id] = _Probe(_key(b), now)
        try:
            self.stack.send_request(request, destination)
        except (OSError, ValueError):
            self._pending.pop(call_id, None)
            self._miss(_key(b), now)
            return False
        return True

    # -- answers --------------------------------------------------------------------------

    def _on_response(self, event: ResponseReceived) -> None:
        response = event.response
        probe = self._pending.get(response.get("call-id") or "")
        if probe is None or response.status < 200:
            return
        del self._pending[response.get("call-id") or ""]
        if event.local and response.status in (408, 503):
            self._miss(probe.key, probe.sent_at)
        else:
            self.misses.pop(probe.key, None)

    def _miss(self, key: BindingKey, sent_at: float) -> None:
        count = self.misses.get(key, 0) + 1
        self.misses[key] = count
        if count < self.max_misses:
            return
        del self.misses[key]
        removed = self.registrar.store.remove_if_not_refreshed(key[0], key[1], key[2], sent_at)
        if removed:
            self.removed += 1
            log.info(
                "binding removed after unanswered OPTIONS",
                extra={"id_id": key[0], "aor": key[1], "contact": key[2]},
            )

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                self.probe_all()
            except Exception:  # a bad row must not end keep-alives for everyone
                log.exception("keep-alive round failed")
            await asyncio.sleep(self.interval)


def start_keepalive(
    registrar: Registrar,
    stack: SipStack,
    router: Router,
    *,
    interval: float = 30.0,
    max_misses: int = 3,
    sent_by: str | None = None,
) -> tuple[KeepAlive, asyncio.Task[None]]:
    """Start keep-alives on the running loop; cancel the task to stop them."""
    keepalive = KeepAlive(
        registrar, stack, router, interval=interval, max_misses=max_misses, sent_by=sent_by
    )
    return keepalive, asyncio.get_running_loop().create_task(keepalive.run())
