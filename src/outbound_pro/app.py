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
from outbound_pro.b2bua.engine import B2bua
from outbound_pro.billing.ledger import BillingService
from outbound_pro.billing.model import Issuer
from outbound_pro.config import Config
from outbound_pro.logs import setup_logging
from outbound_pro.media.recorder import RecorderPool
from outbound_pro.metrics import Registry
from outbound_pro.registrar.core import Registrar
from outbound_pro.registrar.endpoint import RegistrarEndpoint
from outbound_pro.registrar.keepalive import start_keepalive
from outbound_pro.rtp.relay import RelayConfig, RelayEngine
from outbound_pro.runtime import tune_gc
from outbound_pro.sip.router import Router
from outbound_pro.sip.stack import SipStack
from outbound_pro.sip.timers import TimerConfig
from outbound_pro.sip.websocket import make_sip_websocket_setup
from outbound_pro.store import Database, open_database
from outbound_pro.store.calls import CallStore
from outbound_pro.tlscert import ensure_self_signed, server_context
from outbound_pro.web.api import ApiServices, make_setup
from outbound_pro.web.api_billing import make_setup as make_billing_setup
from outbound_pro.web.api_calls import make_calls_setup
from outbound_pro.web.app import create_app
from outbound_pro.web.pages import WebPages
from outbound_pro.webrtc import WebRtcGateway

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
        self.b2bua: B2bua | None = None

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
            udp_receive_buffer=sip.udp_receive_buffer,
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
        self.calls = CallStore(self.db)
        issuer = self.config.billing
        self.billing = BillingService(
            self.db,
            issuer=Issuer(issuer.issuer_name, issuer.registration_number)
            if issuer.issuer_name
            else None,
        )
        if self.config.b2bua.enabled:
            self.b2bua = self._make_b2bua()
            await self.b2bua.start()
        self.pages = WebPages(api, calls=self.b2bua)
        self.accounts.subscribe(lambda event: self.pages.hub.poke())
        app = create_app(
            self.metrics,
            [
                make_setup(api),
                make_calls_setup(api, self.calls, self.accounts.store),
                make_billing_setup(api, self.billing),
                make_sip_websocket_setup(self.sip),
                self.pages.setup,
            ],
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        http = self.config.http
        if http.https_port:
            secure = web.TCPSite(
                self._runner, http.host, http.https_port, ssl_context=self.tls_context
            )
            await secure.start()
            log.info("https listening", extra={"port": http.https_port})
        log.info("http listening", extra={"port": self.http_port})
        self._housekeeping = asyncio.create_task(self._housekeep())

    def _make_b2bua(self) -> B2bua:
        """The B2BUA with its RTP relay and recorder pool (config ``[b2bua]``, ``[rtp]``)."""
        b2, rtp, sip = self.config.b2bua, self.config.rtp, self.config.sip
        public = self._sip_public_host()
        relay = RelayEngine(
            RelayConfig(host=rtp.host, port_min=rtp.port_min, port_max=rtp.port_max)
        )
        recordings = (
            Path(b2.recordings_dir) if b2.recordings_dir else self.config.data_path / "recordings"
        )
        media_host = rtp.public_host or public
        # The gateway's plain RTP ports face the relay, in this process: a local address, never
        # the public one (behind a 1:1 NAT that one is not on any interface). Browsers get the
        # public address in ICE candidates: the configured one only, not the local fallback.
        wildcard = rtp.host in ("", "0.0.0.0", "::")
        webrtc = WebRtcGateway(
            plain_host="127.0.0.1" if wildcard else rtp.host,
            public_address=rtp.public_host or sip.public_host,
        )
        return B2bua(
            self.sip,
            self.router,
            self.registrar,
            relay,
            RecorderPool(),
            self.calls,
            b2,
            public_host=public,
            media_host=media_host,
            recordings_dir=recordings,
            metrics=self.metrics,
            webrtc=webrtc,
        )

    async def _housekeep(self) -> None:
        """Expire registrations and web sessions once a minute."""
        while True:
            now = time.time()
            self.registrar.purge_expired(now)
            self.sessions.purge(now)
            await asyncio.sleep(60)

    def _sip_public_host(self) -> str:
        """The host this server names in Via and Contact: configured, or the listen address."""
        sip = self.config.sip
        wildcard = sip.host in ("0.0.0.0", "::")
        return sip.public_host or ("127.0.0.1" if wildcard else sip.host)

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.b2bua is not None:
            await self.b2bua.stop()
            if self.b2bua.webrtc is not None:
                await self.b2bua.webrtc.close()
        await self.sip.close()
        if self.db is not None:
            self.db.close()
            self.db = None


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    setup_logging(config.log_level)
    server = Server(config)
    await server.start()
    tune_gc()
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
