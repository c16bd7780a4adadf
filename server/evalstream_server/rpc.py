"""The asyncio gRPC server, and the synchronous servicers it runs.

The server is ``grpc.aio`` so that StreamLoss, the ingestion path, is a coroutine and costs
no thread per stream. The other servicers stay synchronous: `AdaptingServer` runs them
through `sync_to_async` in the handler pool with a `ThreadContext`, which also tells the
thread whether the call is still active and how it was aborted. Every behavior an
interceptor sees is thus asynchronous, so interceptors are written once (`behavior` and
`rebuild` help). Requests that do not parse are refused here (`RequestDecoding`), with
statuses built by :mod:`evalstream_server.status`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, NoReturn

import grpc
from grpc import aio

from evalstream_server.errors import FieldViolation
from evalstream_server.status import abort_async

_DONE = object()
_CANCELLED = object()
# How often a handler thread blocked on the next request checks for cancellation.
_POLL_S = 0.25


def behavior(handler: grpc.RpcMethodHandler) -> Callable[..., Any]:
    """The handler's one behavior (unary_unary, unary_stream, stream_unary or stream_stream)."""
    if handler.request_streaming and handler.response_streaming:
        return handler.stream_stream
    if handler.request_streaming:
        return handler.stream_unary
    if handler.response_streaming:
        return handler.unary_stream
    return handler.unary_unary


def kind(handler: grpc.RpcMethodHandler) -> str:
    """ "unary", "client_stream", "server_stream" or "bidi_stream" (the metrics' grpc_type)."""
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


def rebuild(handler: grpc.RpcMethodHandler, new: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A handler of the same kind and serializers as `handler` whose behavior is `new`."""
    if handler.request_streaming and handler.response_streaming:
        factory = grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        factory = grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        factory = grpc.unary_stream_rpc_method_handler
    else:
        factory = grpc.unary_unary_rpc_method_handler
    return factory(
        new,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


class Aborted(Exception):  # noqa: N818 - it is the abort itself, carried out of the thread
    """Raised in a handler thread by `ThreadContext.abort`; the call ends with its status."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: Sequence[Any] = ()
    ) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.trailing_metadata = tuple(trailing_metadata)


class CallCancelled(grpc.RpcError):
    """What a handler thread's request iterator raises once the call was cancelled.

    When the end of a cancelled call's request stream reaches the thread before
    the cancellation does, the iterator simply ends instead; either way the
    handler stops reading at once, and what it answers goes nowhere.
    """


class ThreadContext:
    """The ``grpc.ServicerContext`` a synchronous handler gets, in its pool thread.

    Reads (peer, metadata, deadline) go to the call's aio context; `abort`
    raises `Aborted`, which the adapter turns into the call's status on the
    event loop. `is_active` turns False as soon as the call is cancelled, its
    deadline passes or the server stops; callbacks then run (and at the end of
    a call that finished normally).
    """

    def __init__(self, context: aio.ServicerContext, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._code: grpc.StatusCode | None = None

    # -- lifecycle (called by the adapter)

    def end(self) -> None:
        """Marks the call over and runs the callbacks, once."""
        with self._lock:
            if self._ended.is_set():
                return
            self._ended.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001, S110 - a callback must not break the call's end
                pass

    # -- grpc.ServicerContext

    def is_active(self) -> bool:
        return not self._ended.is_set()

    def cancelled_on_loop(self) -> bool:
        """Whether the call was cancelled (on the event loop's thread only)."""
        return self._ended.is_set() or self._context.cancelled()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        with self._lock:
            if not self._ended.is_set():
                self._callbacks.append(callback)
                return True
        return False

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def peer(self) -> str:
        return self._context.peer()

    def peer_identities(self) -> Any:
        return self._context.peer_identities()

    def peer_identity_key(self) -> Any:
        return self._context.peer_identity_key()

    def auth_context(self) -> Any:
        return self._context.auth_context()

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self._code = code
        raise Aborted(code, details)

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        self._code = status.code
        raise Aborted(status.code, status.details, status.trailing_metadata)

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code
        self._loop.call_soon_threadsafe(self._context.set_code, code)

    def set_details(self, details: str) -> None:
        self._loop.call_soon_threadsafe(self._context.set_details, details)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._loop.call_soon_threadsafe(self._context.set_trailing_metadata, metadata)

    def send_initial_metadata(self, metadata: Any) -> None:
        asyncio.run_coroutine_threadsafe(
            self._context.send_initial_metadata(metadata), self._loop
        ).result()


class _Requests:
    """A call's async request stream, read one message at a time from a handler thread."""

    def __init__(
        self, requests: AsyncIterator[Any], loop: asyncio.AbstractEventLoop, tc: ThreadContext
    ) -> None:
        self._requests = requests
        self._loop = loop
        self._tc = tc

    def __iter__(self) -> _Requests:
        return self

    async def _next(self) -> Any:
        try:
            return await self._requests.__anext__()
        except StopAsyncIteration:
            # A cancelled call's request stream ends too: that is not a half-close.
            # The cancellation reaches the call's task in the same turn of the
            # loop as this end: let it run before telling which it was.
            await asyncio.sleep(0)
            return _CANCELLED if self._tc.cancelled_on_loop() else _DONE

    def __next__(self) -> Any:
        future = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
        while True:
            try:
                item = future.result(_POLL_S)
                break
            except concurrent.futures.TimeoutError:
                if not self._tc.is_active():
                    future.cancel()
                    raise CallCancelled("the call was cancelled") from None
        if item is _DONE:
            raise StopIteration
        if item is _CANCELLED:
            raise CallCancelled("the call was cancelled")
        return item


def sync_to_async(
    handler: grpc.RpcMethodHandler, pool: concurrent.futures.Executor
) -> grpc.RpcMethodHandler:
    """The handler with a synchronous behavior run in `pool`; async handlers unchanged.

    The thread runs in a copy of the calling task's contextvars (so what an
    interceptor set, e.g. the caller's identity, is seen by the servicer).
    """
    fn = behavior(handler)
    if is_async(fn):
        return handler
    streaming_in = handler.request_streaming

    async def run(step: Callable[..., Any], *args: Any, tc: ThreadContext) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, step, *args)
        except asyncio.CancelledError:
            tc.end()  # the call is over: the thread stops at its next check
            raise

    def argument(request: Any, tc: ThreadContext) -> Any:
        if streaming_in:
            return _Requests(request, asyncio.get_running_loop(), tc)
        return request

    if not handler.response_streaming:

        async def unary(request: Any, context: aio.ServicerContext) -> Any:
            tc = ThreadContext(context, asyncio.get_running_loop())
            ctx = contextvars.copy_context()
            try:
                return await run(ctx.run, fn, argument(request, tc), tc, tc=tc)
            except Aborted as a:
                await context.abort(a.code, a.details, a.trailing_metadata)
            finally:
                tc.end()

        return rebuild(handler, unary)

    async def streaming(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
        tc = ThreadContext(context, asyncio.get_running_loop())
        ctx = contextvars.copy_context()
        responses: Iterator[Any] | None = None
        try:
            responses = await run(ctx.run, fn, argument(request, tc), tc, tc=tc)
            while True:
                item = await run(ctx.run, next, responses, _DONE, tc=tc)
                if item is _DONE:
                    return
                yield item
        except Aborted as a:
            await context.abort(a.code, a.details, a.trailing_metadata)
        finally:
            tc.end()
            close = getattr(responses, "close", None)
            if close is not None:
                # Runs the generator's finally blocks; in the pool, after any
                # `next` still running there (a generator cannot be closed mid-step).
                pool.submit(_close_quietly, ctx, close)

    return rebuild(handler, streaming)


def _close_quietly(ctx: contextvars.Context, close: Callable[[], None]) -> None:
    # ValueError ("generator already executing") or RuntimeError (the context is
    # entered): its last step still runs in another pool thread; try again shortly.
    for _ in range(200):
        try:
            ctx.run(close)
            return
        except (ValueError, RuntimeError):
            threading.Event().wait(0.05)
        except Exception:  # noqa: BLE001 - closing must not raise in the pool
            return


# ------------------------------------------------------------------ undecodable requests


class _Undecodable:
    """What the guarded deserializer returns for bytes that do not parse."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class UndecodableRequest(Exception):  # noqa: N818 - named for what the caller sent
    """Raised by a guarded request stream at a message that does not parse."""

    def __init__(self, field: str, error: Exception) -> None:
        super().__init__(f"{field} does not parse: {error}")
        self.field = field
        self.error = error


class RequestDecoding(aio.ServerInterceptor):
    """Answers a request message that does not parse with INVALID_ARGUMENT.

    grpc.aio would answer UNKNOWN with the decoder's exception text for a unary
    call (and fail a stream from deep inside its reader); the deserializer is
    wrapped so that the bytes become a marker, and the call is refused with a
    field violation naming the message (``request``, or ``requests[i]`` for the
    i-th message of a stream) and what the protobuf decoder said.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return guard_decoding(handler)


def guard_decoding(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The handler, refusing requests that do not parse (see `RequestDecoding`)."""
    deserialize = handler.request_deserializer
    message = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    name = message.full_name if message is not None else "the request message"

    def safe(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is the caller's bytes
            return _Undecodable(exc)

    async def refuse(context: aio.ServicerContext, field: str, error: Exception) -> NoReturn:
        description = f"does not parse as {name}: {error}"
        await abort_async(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field} {description}",
            [FieldViolation(field, description)],
        )

    inner = behavior(handler)

    async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        # Raises rather than aborts: the stream may be read by another task or a
        # handler thread, and only the call's own task may end the call.
        index = 0
        async for request in requests:
            if isinstance(request, _Undecodable):
                raise UndecodableRequest(f"requests[{index}]", request.error)
            yield request
            index += 1

    if handler.request_streaming:
        if handler.response_streaming:

            async def stream_stream(requests: Any, context: aio.ServicerContext) -> Any:
                try:
                    async for response in inner(checked(requests), context):
                        yield response
                except UndecodableRequest as exc:
                    await refuse(context, exc.field, exc.error)

            new: Callable[..., Any] = stream_stream
        else:

            async def stream_unary(requests: Any, context: aio.ServicerContext) -> Any:
                try:
                    return await inner(checked(requests), context)
                except UndecodableRequest as exc:
                    await refuse(context, exc.field, exc.error)

            new = stream_unary
    elif handler.response_streaming:

        async def unary_stream(request: Any, context: aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await refuse(context, "request", request.error)
            async for response in inner(request, context):
                yield response

        new = unary_stream
    else:

        async def unary_unary(request: Any, context: aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await refuse(context, "request", request.error)
            return await inner(request, context)

        new = unary_unary
    return _with_deserializer(rebuild(handler, new), safe)


def _with_deserializer(
    handler: grpc.RpcMethodHandler, deserialize: Callable[[bytes], Any]
) -> grpc.RpcMethodHandler:
    return handler._replace(request_deserializer=deserialize)  # type: ignore[attr-defined]


class _AdaptedHandlers(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, pool: concurrent.futures.Executor) -> None:
        self._inner = inner
        self._pool = pool
        self._cache: dict[str, grpc.RpcMethodHandler | None] = {}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if method not in self._cache:
            handler = self._inner.service(handler_call_details)
            self._cache[method] = None if handler is None else sync_to_async(handler, self._pool)
        return self._cache[method]


class AdaptingServer:
    """What the generated ``add_*Servicer_to_server`` functions register on: every
    handler goes to the aio `server` through `sync_to_async`."""

    def __init__(self, server: aio.Server, pool: concurrent.futures.Executor) -> None:
        self._server = server
        self._pool = pool

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_AdaptedHandlers(h, self._pool) for h in handlers)
        )

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service, {name: sync_to_async(h, self._pool) for name, h in handlers.items()}
        )


__all__ = [
    "AdaptingServer",
    "RequestDecoding",
    "Aborted",
    "CallCancelled",
    "ThreadContext",
    "behavior",
    "is_async",
    "kind",
    "rebuild",
    "sync_to_async",
]
