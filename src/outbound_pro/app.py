"""The one place that wires every service onto the event loop.

Start-up order matters for operators: storage first (so a bad data directory fails before any
port is taken), then SIP listeners, then HTTP, and shutdown runs in reverse so no request is
accepted by a service whose dependencies are already gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from aiohttp import web

from outbound_pro.accounts.digest import DigestAuthenticator
from outbound_pro.accounts.keys import load_or_create_key
from outbound_pro.accounts.service import AccountService
from outbound_pro.accounts.sessions import SessionManager
from outbound_pro.billing.ledger import BillingService
from outbound_pro.billing.model import Issuer
from outbound_pro.config import Config
from outbound_pro.logs import setup_logging
from outbound_pro.metrics import Registry
from outbound_pro.registrar.core import Registrar
from outbound_pro.registrar.endpoint import RegistrarEndpoint
from outbound_pro.registrar.keepalive import start_keepalive
from outbound_pro.sip.router import Router
from outbound_pro.sip.stack import SipStack
from outbound_pro.sip.timers import TimerConfig
from outbound_pro.store import Database, open_database
from outbound_pro.tlscert import ensure_self_signed, server_context
from outbound_pro.web.api import ApiServices, make_setup
from outbound_pro.web.api_billing import make_setup as make_billing_setup
from outbound_pro.web.app import create_app

log = logging.getLogger("outbound_pro.app")


class Server:
    """Everything `serve` runs, startable and stoppable from tests on their own loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Registry()
        self.metrics.gauge(
            "outbound_pro_start_time_seconds", "Unix time at which the server started"
        ).set(time.time())
        self._runner: web.AppRunner | None = None
        sip = config.sip
        self.router = Router()
        self.sip = SipStack(
            self.router,
            self.metrics,
            timers=TimerConfig(t1=sip.t1, t2=sip.t2, t4=sip.t4),
            max_size=sip.max_message_size,
            max_headers=sip.max_headers,
            tcp_idle_timeout=sip.tcp_idle_timeout,
        )
        self.router.attach(self.sip)
        self.db: Database | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self.http_port: int | None = None

    def _tls_paths(self) -> tuple[Path, Path]:
        tls = self.config.tls
        if tls.cert_file and tls.key_file:
            return Path(tls.cert_file), Path(tls.key_file)
        return ensure_self_signed(self.config.data_path / "tls")

    async def start(self) -> None:
        self.config.data_path.mkdir(parents=True, exist_ok=True)
        cert, key = self._tls_paths()
        self.tls_context = server_context(cert, key)
        self.db = open_database(self.config.database_path)
        self.accounts = AccountService(self.db, admin_url=self.config.admin_url)
        self.registrar = Registrar(
            self.db,
            DigestAuthenticator(load_or_create_key(self.config.data_path / "digest.key")),
            limits=self.config.registrar,
        )
        RegistrarEndpoint(self.registrar, self.router, self.sip, self.metrics)
        self.sessions = SessionManager(self.accounts.store)
        api = ApiServices(self.accounts, self.sessions, registrations=self.registrar)
        sip = self.config.sip
        await self.sip.listen(
            sip.host,
            udp_port=sip.udp_port,
            tcp_port=sip.tcp_port,
            tls_port=sip.tls_port,
            tls=self.tls_context,
        )
        log.info("sip listening", extra={"ports": self.sip.bound_ports()})
        reg = self.config.registrar
        if reg.keepalive_interval > 0:
            ports = self.sip.bound_ports()
            self._keepalive_task = start_keepalive(
                self.registrar,
                self.sip,
                self.router,
                interval=reg.keepalive_interval,
                max_misses=reg.keepalive_max_misses,
                sent_by=f"{self._sip_public_host()}:{ports.get('udp', sip.udp_port)}",
            )[1]
        issuer = self.config.billing
        self.billing = BillingService(
            self.db,
            issuer=Issuer(issuer.issuer_name, issuer.registration_number)
            if issuer.issuer_name
            else None,
        )
        app = create_app(self.metrics, [make_setup(api), make_billing_setup(api, self.billing)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("http listening", extra={"port": self.http_port})
        self._housekeeping = asyncio.create_task(self._housekeep())

    async def _housekeep(self) -> None:
        """Expire registrations and web sessions once a minute."""
        while True:
            now = time.time()
            self.registrar.purge_expired(now)
            self.sessions.purge(now)
            await asyncio.sleep(60)

    def _sip_public_host(self) -> str:
        """The host this server names in Via and Contact: the listen address, or loopback."""
        sip = self.config.sip
        return "127.0.0.1" if sip.host in ("0.0.0.0", "::") else sip.host

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.sip.close()
        if self.db is not None:
            self.db.close()
            self.db = None


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    setup_logging(config.log_level)
    server = Server(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("outbound-pro started")
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await server.stop()
