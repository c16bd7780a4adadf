"""Domain errors to gRPC statuses, for the servicers.

Store errors map to status codes in one place (`store_status`); the statuses
themselves are built by :mod:`evalstream_server.status`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NoReturn

import grpc

from evalstream_server.api._scope import ProjectDenied
from evalstream_server.config import raise_hint
from evalstream_server.errors import FieldViolation
from evalstream_server.status import abort
from evalstream_server.store import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    StoreUnavailable,
    WriterLost,
)

__all__ = ["name_limit_flags", "store_abort", "store_status"]


def name_limit_flags(
    violations: Sequence[FieldViolation], limits: Mapping[str, str]
) -> list[FieldViolation]:
    """The violations, those of a size limit saying which flag raises it.

    `limits` maps a field pattern (a regular expression the whole field matches)
    to the Config field of its limit; a limit's description says "at most".

    Example:
        >>> v = FieldViolation("images", "300 images but at most 256 per batch")
        >>> (named,) = name_limit_flags([v], {"images": "max_images_per_batch"})
        >>> named.description.split("; ")[1]
        'raise it with --max-images-per-batch / EVALSTREAM_MAX_IMAGES_PER_BATCH'
    """
    out = []
    for v in violations:
        for pattern, field in limits.items():
            if "at most" in v.description and re.fullmatch(pattern, v.field):
                v = FieldViolation(v.field, f"{v.description}; {raise_hint(field)}")
                break
        out.append(v)
    return out


def store_status(exc: StoreError) -> tuple[grpc.StatusCode, str, list[FieldViolation]]:
    """The status a store error answers with (re-raises what is not a domain error)."""
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc), []
    if isinstance(exc, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(exc), []
    if isinstance(exc, Conflict):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc), []
    if isinstance(exc, InvalidInput):
        field = getattr(exc, "field", "") or ""
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc), [FieldViolation(field, str(exc))]
    if isinstance(exc, StoreOverloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), []
    if isinstance(exc, StoreClosed):
        return grpc.StatusCode.UNAVAILABLE, "the server is shutting down", []
    if isinstance(exc, WriterLost | StoreUnavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc), []
    if isinstance(exc, ProjectDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc), []
    raise exc


def store_abort(context: grpc.ServicerContext, exc: StoreError) -> NoReturn:
    """Ends the RPC with the status of a store error."""
    abort(context, *store_status(exc))
