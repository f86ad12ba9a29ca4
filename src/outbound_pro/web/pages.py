"""The browser side: agent (web phone), admin and operator pages, served by the API's app.

Plain HTML, CSS and JavaScript modules from ``web/static`` — nothing is built at run time, so
what is in the package is what the browser runs. The pages only talk to ``/api/v1`` (policy
enforced there), ``/api/v1/live`` (the pushed status board, :mod:`outbound_pro.web.live`) and,
for the web phone, ``/sip`` (SIP over WebSocket, :mod:`outbound_pro.sip.websocket`).

The Content-Security-Policy allows only this origin's scripts, so an injected name or label
cannot run code even if some text were ever written into the page as HTML.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from outbound_pro.web.api import Api, ApiServices
from outbound_pro.web.live import CallSource, LiveHub

STATIC = Path(__file__).parent / "static"
PAGES = {
    "/": "index.html",
    "/agent": "agent.html",
    "/admin": "admin.html",
    "/operator": "operator.html",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = STATIC / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    return handler


class WebPages:
    """The pages, the static files and the live board; ``hub.poke()`` pushes a change now."""

    def __init__(
        self, services: ApiServices, *, calls: CallSource | None = None, interval: float = 1.0
    ) -> None:
        self.hub = LiveHub(Api(services), services.registrations, calls, interval=interval)

    def setup(self, app: web.Application) -> None:
        for route, name in PAGES.items():
            app.router.add_get(route, _page(name))
        app.router.add_static("/static/", STATIC, append_version=False)
        self.hub.setup(app)


def make_pages_setup(
    services: ApiServices, *, calls: CallSource | None = None
) -> Callable[[web.Application], None]:
    """The hook for ``web.app.create_app``; *calls* is the B2BUA when it runs."""
    return WebPages(services, calls=calls).setup
