"""aiohttp application factory.

Other modules contribute routes through ``setup`` hooks instead of importing this module,
so the web side stays a thin adapter over the in-process services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from aiohttp import web

from outbound_pro import __version__
from outbound_pro.metrics import Registry

METRICS_KEY: web.AppKey[Registry] = web.AppKey("metrics", Registry)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS_KEY]
    return web.Response(
        text=registry.render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def create_app(
    registry: Registry, setups: Iterable[Callable[[web.Application], None]] = ()
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[METRICS_KEY] = registry
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    for setup in setups:
        setup(app)
    return app
