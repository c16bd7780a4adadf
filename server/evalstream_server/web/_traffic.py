"""The HTTP API's traffic: counted for Prometheus, and bounded.

Every answer is counted by route template (``/api/v1/runs/{run}/curves``, never the
raw path, so that run ids do not become label values), method and status code, and
timed by route; a path no route matches counts as ``(unmatched)``. The handlers run
the servicers in the gRPC handler pool, outside ``--max-concurrent-rpcs``, so the API
has bounds of its own: at most ``--http-max-in-flight`` calls (downloads included)
and ``--http-max-streams`` Server-Sent Event streams at once. One more is answered
503 UNAVAILABLE with ``Retry-After`` at once, never queued: a browser retries, a
server under load sheds what it cannot serve soon.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import grpc
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import Gauge

from evalstream_server.config import raise_hint
from evalstream_server.observability import ServiceMetrics
from evalstream_server.web._calls import ApiError

__all__ = ["UNMATCHED", "HttpLimits", "Slots", "bound", "observe", "route_of"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The route label of a request no route matched (a 404 or 405 of the router).
UNMATCHED = "(unmatched)"
#: Methods counted by name; any other counts as "other" (label values stay few).
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
#: Seconds a refused client is asked to wait (``Retry-After``).
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """How much the HTTP API may hold at once (``--http-max-in-flight``, ``--http-max-streams``)."""

    max_in_flight: int = 64
    max_streams: int = 64


class Slots:
    """At most `limit` holders at once, counted on one event loop (no lock needed).

    Example:
        >>> s = Slots(1)
        >>> s.take(), s.take(), s.held
        (True, False, 1)
        >>> s.give(); s.take()
        True
    """

    def __init__(self, limit: int, gauge: Gauge | None = None) -> None:
        self.limit = limit
        self.held = 0
        self._gauge = gauge

    def take(self) -> bool:
        if self.held >= self.limit:
            return False
        self.held += 1
        if self._gauge is not None:
            self._gauge.inc()
        return True

    def give(self) -> None:
        self.held -= 1
        if self._gauge is not None:
            self._gauge.dec()


def route_of(request: web.Request) -> str:
    """The template of the route that matched `request`, or `UNMATCHED`."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


def observe(metrics: ServiceMetrics) -> Middleware:
    """The outermost middleware: counts and times every answer (refusals included)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500  # what the client gets when the handler raises past the guard
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_of(request)
            method = request.method if request.method in _METHODS else "other"
            metrics.http_requests.labels(route, method, str(status)).inc()
            metrics.http_request_seconds.labels(route).observe(time.perf_counter() - started)

    return middleware


def bound(
    limits: HttpLimits,
    metrics: ServiceMetrics | None,
    *,
    calls: Collection[str],
    streams: Collection[str],
) -> Middleware:
    """A middleware holding a slot for each request to a route of `calls` or `streams`.

    Inside the guard (its refusal is the guard's JSON error): a request beyond a
    limit raises UNAVAILABLE (503) with ``Retry-After``.
    """
    in_flight = Slots(limits.max_in_flight, metrics.http_in_flight if metrics else None)
    open_streams = Slots(limits.max_streams, metrics.http_streams_open if metrics else None)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        if route in streams:
            slots, what, field = open_streams, "live streams open", "http_max_streams"
        elif route in calls:
            slots, what, field = in_flight, "API calls in flight", "http_max_in_flight"
        else:
            return await handler(request)
        if not slots.take():
            raise ApiError(
                grpc.StatusCode.UNAVAILABLE,
                f"the server has {slots.held} {what}, its limit; retry after "
                f"{RETRY_AFTER_SECONDS} s, or {raise_hint(field)}",
                retry_after=RETRY_AFTER_SECONDS,
            )
        try:
            return await handler(request)
        finally:
            slots.give()

    return middleware
