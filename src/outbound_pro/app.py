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

from outbound_pro.config import Config
from outbound_pro.logs import setup_logging
from outbound_pro.metrics import Registry
from outbound_pro.tlscert import ensure_self_signed, server_context
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
        app = create_app(self.metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.http.host, self.config.http.port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("http listening", extra={"port": self.http_port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


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
