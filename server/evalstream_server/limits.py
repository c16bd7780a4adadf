"""The server's concurrency limit, enforced so that health keeps answering.

gRPC's own ``maximum_concurrent_rpcs`` counts every RPC, health checks
included: at the limit a load balancer's or Docker's health check would be
refused and a busy server restarted. Here the limit applies to the evalstream
services only; ``grpc.health.v1`` is exempt and has a few threads of its own
(the handler pool is the limit plus `HEADROOM`, and gRPC's limit is set just
above it as a backstop). A refused call answers RESOURCE_EXHAUSTED at once,
before its handler runs, and is counted like any other RPC.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

HEADROOM = 16  # threads beyond the limit: health checks and fast refusals
_EXEMPT = ("/grpc.health.v1.Health/",)


class ConcurrencyLimit(grpc.ServerInterceptor):
    """Refuses RPCs beyond `limit` in flight with RESOURCE_EXHAUSTED (health exempt)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()

    def _enter(self) -> bool:
        with self._lock:
            if self._in_flight >= self._limit:
                return False
            self._in_flight += 1
            return True

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(_EXEMPT):
            return handler
        limit = self._limit

        def refuse(context: grpc.ServicerContext) -> None:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {limit} concurrent calls; retry with back-off",
            )

        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                if not self._enter():
                    refuse(context)
                try:
                    yield from behavior(request, context)
                finally:
                    self._leave()

            wrapped: Callable[..., Any] = streaming
        else:
            behavior = handler.unary_unary or handler.stream_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                if not self._enter():
                    refuse(context)
                try:
                    return behavior(request, context)
                finally:
                    self._leave()

            wrapped = unary

        if handler.request_streaming and handler.response_streaming:
            factory = grpc.stream_stream_rpc_method_handler
        elif handler.request_streaming:
            factory = grpc.stream_unary_rpc_method_handler
        elif handler.response_streaming:
            factory = grpc.unary_stream_rpc_method_handler
        else:
            factory = grpc.unary_unary_rpc_method_handler
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
