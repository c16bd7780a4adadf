"""The HTTP server of the JSON API: aiohttp on the gRPC server's event loop.

Security is the gRPC port's: the same host (so loopback only unless tokens, or
``--no-auth``, and TLS or ``--insecure`` allow more: `Config.exposure_problems`), the
same TLS certificate (client certificates required when a client CA is configured),
the same tokens. With tokens, every /api/v1 request but the OpenAPI document and
signing in needs ``Authorization: Bearer <token>`` or a session cookie (`_session`),
and reads only the token's projects. Refusals are
JSON: ``{"error": {"code", "message", "field"}}``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from aiohttp import web
from aiohttp.typedefs import Middleware

from evalstream_server.api.runs import RunsServicer
from evalstream_server.auth import ALL_ACCESS, Principal, TokenTable
from evalstream_server.config import Config
from evalstream_server.observability import ServiceMetrics
from evalstream_server.web._calls import ApiError
from evalstream_server.web._pages import add_pages, page_response, security_headers, wants_page
from evalstream_server.web._routes import CALLER, ROUTES, STREAM_ROUTES, Api, json_response
from evalstream_server.web._session import SESSION_PATH, Sessions, request_token
from evalstream_server.web._traffic import HttpLimits, bound, observe
from evalstream_server.web.openapi import OPENAPI_PATH, openapi_document

__all__ = ["WebServer", "build_app", "ssl_context"]

log = logging.getLogger("evalstream.web")

#: The role every /api/v1 endpoint needs (all of them only read).
READ = "read"

_HTTP_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "RESOURCE_EXHAUSTED"}  # fmt: skip


def _authenticate(tokens: TokenTable | None, request: web.Request) -> Principal:
    if tokens is None:
        return ALL_ACCESS
    token, _from_cookie = request_token(request)  # checks CSRF for a cookie's unsafe method
    principal = tokens.lookup(token) if token is not None else None
    if principal is None:
        log.info(
            "auth refused",
            extra={
                "fields": {
                    "path": request.path,
                    "reason": "missing bearer token" if token is None else "unknown token",
                }
            },
        )
        raise ApiError(
            grpc.StatusCode.UNAUTHENTICATED,
            "a valid bearer token is required (header 'Authorization: Bearer <token>', "
            f"or a session: POST {SESSION_PATH})"
            if token is None
            else "the bearer token is not valid",
        )
    if not principal.may_call(READ):
        raise ApiError(
            grpc.StatusCode.PERMISSION_DENIED,
            f"token {principal.name!r} has role {principal.role!r}; {request.path} needs {READ!r}",
        )
    return principal


def build_app(
    runs: RunsServicer,
    tokens: TokenTable | None,
    pool: concurrent.futures.Executor | None,
    *,
    secure: bool = False,
    image_root: Path | None = None,
    metrics: ServiceMetrics | None = None,
    limits: HttpLimits | None = None,
) -> web.Application:
    """The aiohttp application: /api/v1 (reads and sessions) and the browser views.

    ``secure``: served over TLS (session cookies are then ``Secure``). ``image_root``:
    the server's --image-root, under which specimens' relative image paths are served.
    ``metrics``: where requests are counted (`_traffic`); ``limits``: the API's bounds.
    """
    api = Api(runs, pool, image_root=image_root)
    sessions = Sessions(tokens, secure=secure)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            signing_in = request.path == SESSION_PATH and request.method == "POST"
            if request.path.startswith("/api/") and request.path != OPENAPI_PATH and not signing_in:
                CALLER.set(_authenticate(tokens, request))
            response = await handler(request)
        except ApiError as exc:
            response = json_response(exc.body(), status=exc.status)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="evalstream"'
            if exc.retry_after is not None:
                response.headers["Retry-After"] = str(exc.retry_after)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 404 and wants_page(request):
                response = page_response(404)  # the page's router says "Not found"
                security_headers(response)
                return response
            code = _HTTP_CODES.get(exc.status, "UNKNOWN")
            message = (
                f"no endpoint {request.path!r}; see {OPENAPI_PATH}"
                if exc.status == 404
                else f"{request.method} {request.path}: {exc.reason}"
            )
            response = json_response(
                {"error": {"code": code, "message": message}}, status=exc.status
            )
        except Exception:
            log.exception("http handler failed", extra={"fields": {"path": request.path}})
            response = json_response(
                {"error": {"code": "INTERNAL", "message": "internal error; see the server's log"}},
                status=500,
            )
        security_headers(response)
        return response

    limit = bound(
        limits or HttpLimits(),
        metrics,
        calls={path for path, _ in ROUTES},
        streams={path for path, _ in STREAM_ROUTES},
    )
    # Counted outermost (refusals too); bounded inside the guard (its refusal is JSON).
    middlewares: list[Middleware] = [guard, limit]
    if metrics is not None:
        middlewares.insert(0, observe(metrics))
    app = web.Application(middlewares=middlewares)
    for path, name in ROUTES + STREAM_ROUTES:
        app.router.add_get(path, getattr(api, name))
    document = openapi_document()

    async def openapi(_request: web.Request) -> web.Response:
        return json_response(document)

    app.router.add_get(OPENAPI_PATH, openapi)
    app.router.add_get(SESSION_PATH, sessions.who)
    app.router.add_post(SESSION_PATH, sessions.sign_in)
    app.router.add_delete(SESSION_PATH, sessions.sign_out)
    add_pages(app)
    return app


def ssl_context(config: Config) -> ssl.SSLContext | None:
    """The gRPC port's TLS for HTTP: its certificate, and its client CA (mTLS) when set."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    if config.tls_client_ca is not None:
        context.load_verify_locations(cafile=str(config.tls_client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class WebServer:
    """The HTTP server, started and stopped on the gRPC server's event loop."""

    def __init__(self, app: web.Application, *, grace_seconds: float) -> None:
        self.app = app
        # handler_cancellation: a client that leaves cancels its handler at once, so a
        # stream's watch (a handler thread waiting for writes) ends within its poll
        # interval instead of at the next heartbeat that fails to be written.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=grace_seconds,
            handler_cancellation=True,
        )
        self.port = 0

    async def start(self, config: Config) -> int:
        """Binds ``config.host:config.http_port``; returns the bound port.

        Raises:
            RuntimeError: the port cannot be bound (naming --http-port).
        """
        await self._runner.setup()
        try:
            context = ssl_context(config)
            site = web.TCPSite(
                self._runner,
                config.host.strip("[]"),
                config.http_port,
                ssl_context=context,
                reuse_address=True,
            )
            await site.start()
        except (OSError, ssl.SSLError) as exc:
            await self._runner.cleanup()
            raise RuntimeError(
                f"cannot serve HTTP on {config.host}:{config.http_port}: {exc} (pass "
                "--http-port / EVALSTREAM_HTTP_PORT, or -1 to turn HTTP off)"
            ) from exc
        self.port = int(self._runner.addresses[0][1])
        return self.port

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs bound."""
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    async def stop(self) -> None:
        """Stops accepting; lets requests in flight finish for the grace period."""
        await self._runner.cleanup()
