"""The browser views: one HTML page for every view's URL, and its static files.

The page itself holds no data (the views read /api/v1 from the browser, under the same
tokens), so it is served without authentication; a signed-out browser is sent to
``/sign-in`` by the page when the API refuses it. Every file, vendored chart library
included, comes from this package: the views work on a machine with no internet.
"""

from __future__ import annotations

import functools
from pathlib import Path

from aiohttp import web

__all__ = [
    "PAGE_PATHS",
    "STATIC_DIR",
    "add_pages",
    "page_response",
    "security_headers",
    "wants_page",
]

STATIC_DIR = Path(__file__).parent / "static"
#: The views' URLs (as js/app.js routes them); each answers the same page.
PAGE_PATHS: tuple[str, ...] = (
    "/",
    "/projects/{project}",
    "/runs/{run}",
    "/runs/{run}/metrics",
    "/runs/{run}/evaluation",
    "/compare",
    "/sign-in",
)

# Scripts and styles only from this server; images from anywhere an evaluation's
# image_uri points (http, https), or drawn in the page (data:, blob:).
_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob: http: https:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def security_headers(response: web.StreamResponse) -> None:
    """Headers every answer carries: no sniffing, no framing, no referrer, the CSP."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


@functools.cache
def _page() -> bytes:
    return (STATIC_DIR / "index.html").read_bytes()


def page_response(status: int = 200) -> web.Response:
    """The views' page; with 404 for a browser's unknown path (the page says "Not found")."""
    # Revalidated on every load, so that an upgraded server's page is seen at once.
    return web.Response(
        body=_page(),
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


def wants_page(request: web.Request) -> bool:
    """A browser navigating (HTML accepted) to a path outside /api/ and /static/."""
    path = request.path
    return (
        request.method in ("GET", "HEAD")
        and not path.startswith(("/api/", "/static/"))
        and "text/html" in request.headers.get("Accept", "")
    )


def add_pages(app: web.Application) -> None:
    """Adds the views' page and ``/static/`` to ``app``."""

    async def index(_request: web.Request) -> web.Response:
        return page_response()

    for path in PAGE_PATHS:
        app.router.add_get(path, index)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
