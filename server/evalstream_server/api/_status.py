"""Domain errors to gRPC statuses, for the servicers.

Store errors map to status codes in one place (`store_status`); the statuses
themselves are built by :mod:`evalstream_server.status`.
"""

from __future__ import annotations

from typing import NoReturn

import grpc

from evalstream_server.api._scope import ProjectDenied
from evalstream_server.errors import FieldViolation
from evalstream_server.status import abort
from evalstream_server.store import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    WriterLost,
)

__all__ = ["store_abort", "store_status"]


def store_status(exc: StoreError) -> tuple[grpc.StatusCode, str, list[FieldViolation]]:
    """The status a store error answers with (re-raises what is not a domain error)."""
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc), []
    if isinstance(exc, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(exc), []
    if isinstance(exc, InvalidInput):
        field = getattr(exc, "field", "") or ""
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc), [FieldViolation(field, str(exc))]
    if isinstance(exc, StoreOverloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), []
    if isinstance(exc, StoreClosed):
        return grpc.StatusCode.UNAVAILABLE, "the server is shutting down", []
    if isinstance(exc, WriterLost):
        return grpc.StatusCode.UNAVAILABLE, str(exc), []
    if isinstance(exc, ProjectDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc), []
    raise exc


def store_abort(context: grpc.ServicerContext, exc: StoreError) -> NoReturn:
    """Ends the RPC with the status of a store error."""
    abort(context, *store_status(exc))
