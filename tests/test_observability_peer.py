"""The RPC log's peer is read while the call is live, never after it ended.

grpc core's peer string belongs to the transport, which a client's disconnect
frees before the call ends: reading it then is a use after free (grpc/grpc#29069)
that crashed the server when a client left an export mid-stream. The fake
context below refuses `peer()` once the handler has ended, as core cannot.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from evalstream_server.observability import ObservabilityInterceptor, ServiceMetrics


class _Context:
    def __init__(self) -> None:
        self.ended = False

    def peer(self) -> str:
        if self.ended:
            raise AssertionError("peer() read after the call ended")
        return "ipv4:127.0.0.1:5"

    def code(self) -> Any:
        return None


def _handler(context: _Context, *, streaming: bool) -> grpc.RpcMethodHandler:
    if streaming:

        async def stream(request: Any, ctx: Any) -> Any:
            yield b"one"
            yield b"two"
            context.ended = True  # the client left: the transport is gone

        return grpc.unary_stream_rpc_method_handler(stream)

    async def unary(request: Any, ctx: Any) -> Any:
        context.ended = True
        return b"one"

    return grpc.unary_unary_rpc_method_handler(unary)


def _details(method: str) -> Any:
    class Details(grpc.HandlerCallDetails):
        pass

    d = Details()
    d.method = method  # type: ignore[attr-defined]
    d.invocation_metadata = ()  # type: ignore[attr-defined]
    return d


def test_the_peer_is_read_before_the_call_ends() -> None:
    async def main() -> None:
        interceptor = ObservabilityInterceptor(ServiceMetrics())
        for streaming in (True, False):
            context = _Context()

            async def continuation(_: Any, ctx: _Context = context, s: bool = streaming) -> Any:
                return _handler(ctx, streaming=s)

            handler = await interceptor.intercept_service(
                continuation, _details("/evalstream.v1.Runs/ExportCurves")
            )
            if streaming:
                got = [m async for m in handler.unary_stream(b"", context)]
                assert got == [b"one", b"two"]
            else:
                assert await handler.unary_unary(b"", context) == b"one"

    asyncio.run(main())
