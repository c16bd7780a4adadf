"""Calling the servicers from HTTP handlers, and their refusals as JSON errors.

A handler calls the same servicer method an RPC would (the same validation, limits,
project scopes and numbers), in the same handler threads, as the caller's `Principal`,
with a `WebContext` in place of gRPC's: an ``abort`` there becomes an `ApiError` here,
whose JSON body names the field, as the gRPC status's BadRequest details do. Nothing
goes over the network and no gRPC channel is involved.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from evalstream_server.auth import Principal, acting_as

__all__ = ["HTTP_STATUS", "ApiError", "WebContext", "call"]

T = TypeVar("T")

#: gRPC status codes to HTTP statuses (Google's HTTP mapping of google.rpc.Code).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ApiError(Exception):
    """A refusal: the HTTP status and the body ``{"error": {code, message, field, ...}}``.

    ``retry_after``: seconds the client should wait before trying again (503 at a limit).

    Example:
        >>> e = ApiError(grpc.StatusCode.NOT_FOUND, "run 'x' not found")
        >>> e.status, e.body()["error"]["code"]
        (404, 'NOT_FOUND')
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field: str = "",
        violations: list[dict[str, str]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after  # seconds, sent as Retry-After
        self.message = message
        self.field = field or (violations[0]["field"] if violations else "")
        self.violations = violations or (
            [{"field": field, "description": message}] if field else []
        )
        self.status = HTTP_STATUS.get(code, 500)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.name, "message": self.message}
        if self.field:
            error["field"] = self.field
        if self.violations:
            error["violations"] = self.violations
        return {"error": error}


def _violations(status: grpc.Status) -> list[dict[str, str]]:
    """The BadRequest field violations a rich status carries, if any."""
    for key, value in status.trailing_metadata or ():
        if key != "grpc-status-details-bin":
            continue
        out = []
        for detail in status_pb2.Status.FromString(value).details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                out += [
                    {"field": v.field, "description": v.description} for v in bad.field_violations
                ]
        return out
    return []


class WebContext:
    """What the servicers use of ``grpc.ServicerContext``, for a call made over HTTP."""

    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active

    def abort_with_status(self, status: grpc.Status) -> NoReturn:
        raise ApiError(status.code, status.details, violations=_violations(status))

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise ApiError(code, details)


async def call(
    pool: concurrent.futures.Executor | None,
    principal: Principal,
    fn: Callable[[Any, WebContext], T],
    request: Any,
) -> T:
    """``fn(request, context)`` in a handler thread, as `principal`; aborts raise `ApiError`."""
    context = WebContext()
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(pool, acting_as(principal).run, fn, request, context)
    finally:
        context.active = False
