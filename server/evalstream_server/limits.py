"""The server's concurrency limits, enforced so that health keeps answering.

Calls in flight (a stream for its whole life) are limited in total
(``--max-concurrent-rpcs``) and per bearer token (``--max-concurrent-rpcs-per-token``),
for the evalstream services only: unlike gRPC's own ``maximum_concurrent_rpcs`` (kept
just above, as a backstop), a busy server still answers ``grpc.health.v1`` and is not
restarted for being busy. A refused call answers RESOURCE_EXHAUSTED before its handler
runs (and before authentication). Tokens are kept only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from evalstream_server.auth import bearer_token
from evalstream_server.config import raise_hint
from evalstream_server.rpc import behavior, rebuild

HEADROOM = 16  # threads beyond the limit: health checks and fast refusals
_EXEMPT = ("/grpc.health.v1.Health/",)


class ConcurrencyLimit(aio.ServerInterceptor):
    """Refuses calls beyond `limit` in flight, or `per_token` for one token (health exempt).

    Args:
        limit: calls in flight in total.
        per_token: calls in flight per bearer token; 0 means no per-token limit.
    """

    def __init__(self, limit: int, *, per_token: int = 0) -> None:
        self._limit = limit
        self._per_token = per_token
        self._in_flight = 0
        self._by_token: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def _enter(self, key: bytes) -> str | None:
        """Takes a slot; returns why not when at a limit."""
        with self._lock:
            if self._in_flight >= self._limit:
                return (
                    f"the server is at its limit of {self._limit} concurrent calls; "
                    f"retry with back-off, or {raise_hint('max_concurrent_rpcs')}"
                )
            held = self._by_token.get(key, 0)
            if self._per_token and held >= self._per_token:
                return (
                    f"this token has {held} calls in flight, its limit; finish or cancel "
                    "some, retry with back-off, or "
                    f"{raise_hint('max_concurrent_rpcs_per_token')}"
                )
            self._in_flight += 1
            self._by_token[key] = held + 1
            return None

    def _leave(self, key: bytes) -> None:
        with self._lock:
            self._in_flight -= 1
            held = self._by_token[key] - 1
            if held:
                self._by_token[key] = held
            else:
                del self._by_token[key]

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_EXEMPT):
            return handler
        key = _key(bearer_token(handler_call_details.invocation_metadata))
        inner = behavior(handler)

        if handler.response_streaming:

            async def streaming(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                refusal = self._enter(key)
                if refusal is not None:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
                try:
                    async for response in inner(request, context):
                        yield response
                finally:
                    self._leave(key)

            return rebuild(handler, streaming)

        async def unary(request: Any, context: aio.ServicerContext) -> Any:
            refusal = self._enter(key)
            if refusal is not None:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
            try:
                return await inner(request, context)
            finally:
                self._leave(key)

        return rebuild(handler, unary)


def _key(token: str | None) -> bytes:
    return b"" if token is None else hashlib.sha256(token.encode("utf-8")).digest()
