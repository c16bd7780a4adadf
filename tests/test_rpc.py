"""The asyncio server's adapter for synchronous servicers (evalstream_server.rpc)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from evalstream_server.errors import FieldViolation
from evalstream_server.rpc import AdaptingServer, CallCancelled, sync_to_async
from evalstream_server.status import abort
from grpc import aio
from grpc_status import rpc_status

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")


class Seen:
    def __init__(self) -> None:
        self.inactive = threading.Event()
        self.closed = threading.Event()
        self.stopped_reading = threading.Event()
        self.callers: list[str] = []


class SetCaller(aio.ServerInterceptor):
    """Sets CALLER in the call's task, as the auth interceptor sets the principal."""

    async def intercept_service(self, continuation, details):
        CALLER.set(dict(details.invocation_metadata).get("caller", "nobody"))
        return await continuation(details)


def _handlers(seen: Seen) -> grpc.GenericRpcHandler:
    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            "boxes[3].x1: bad",
            [FieldViolation("boxes[3].x1", "bad")],
        )

    def ticks(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            for _ in range(400):
                if not context.is_active():
                    seen.inactive.set()
                    return
                yield b"tick"
                time.sleep(0.01)
        finally:
            seen.closed.set()

    def total(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        seen.callers.append(CALLER.get())
        return str(sum(len(r) for r in requests)).encode()

    def echo(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            yield from requests
        except CallCancelled:
            pass
        finally:
            seen.stopped_reading.set()

    return grpc.method_handlers_generic_handler(
        "t",
        {
            "refuse": grpc.unary_unary_rpc_method_handler(refuse),
            "ticks": grpc.unary_stream_rpc_method_handler(ticks),
            "total": grpc.stream_unary_rpc_method_handler(total),
            "echo": grpc.stream_stream_rpc_method_handler(echo),
        },
    )


@pytest.fixture
def served() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    pool = concurrent.futures.ThreadPoolExecutor(8)

    async def start() -> tuple[aio.Server, int]:
        server = aio.server(interceptors=[SetCaller()])
        AdaptingServer(server, pool).add_generic_rpc_handlers((_handlers(seen),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield f"127.0.0.1:{port}", seen
    asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    pool.shutdown()


def test_abort_with_field_violations_reaches_the_client(served) -> None:
    target, _ = served
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary("/t/refuse")(b"x", timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "boxes[3].x1: bad"
    status = rpc_status.from_call(refused.value)
    assert status is not None and len(status.details) == 1


def test_a_cancelled_stream_is_inactive_in_its_thread_within_a_second(served) -> None:
    target, seen = served
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_stream("/t/ticks")(b"", timeout=30)
        assert next(call) == b"tick"
        cancelled = time.monotonic()
        call.cancel()
        assert seen.closed.wait(5)
        assert time.monotonic() - cancelled < 1.0


def test_an_expired_deadline_stops_the_handler_thread(served) -> None:
    target, seen = served
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as expired:
            list(channel.unary_stream("/t/ticks")(b"", timeout=0.2))
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert seen.closed.wait(2)


def test_request_streams_and_the_callers_context_reach_the_thread(served) -> None:
    target, seen = served
    with grpc.insecure_channel(target) as channel:
        reply = channel.stream_unary("/t/total")(
            iter([b"ab", b"cde"]), metadata=(("caller", "alice"),), timeout=10
        )
        other = channel.stream_unary("/t/total")(iter([]), metadata=(("caller", "bob"),))
    assert (reply, other) == (b"5", b"0")
    assert seen.callers == ["alice", "bob"]


def test_a_handler_blocked_on_the_next_request_stops_at_the_cancel(served) -> None:
    # It sees CallCancelled, or (when the stream's end reaches it before the
    # cancellation does) the end of the requests: either way it stops at once.
    target, seen = served
    release = threading.Event()

    def requests() -> Iterator[bytes]:
        yield b"one"
        release.wait(10)

    with grpc.insecure_channel(target) as channel:
        call = channel.stream_stream("/t/echo")(requests(), timeout=30)
        assert next(call) == b"one"
        cancelled = time.monotonic()
        call.cancel()
        try:
            assert seen.stopped_reading.wait(5)
            assert time.monotonic() - cancelled < 1.0
        finally:
            release.set()


def test_coroutine_handlers_are_registered_unchanged() -> None:
    async def native(request: bytes, context: aio.ServicerContext) -> bytes:
        return request

    handler = grpc.unary_unary_rpc_method_handler(native)
    assert sync_to_async(handler, concurrent.futures.ThreadPoolExecutor(1)) is handler
