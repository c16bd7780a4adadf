"""gRPC statuses with google.rpc details: how every refusal of this server is built.

The transport (rpc.py) and the servicers (api/) both end calls through here, so a
refusal carries BadRequest field violations (which field of which item, and
why) whichever layer made it, and never a stack trace. Imports nothing of the
server but errors.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from grpc_status import rpc_status

from evalstream_server.errors import MAX_VIOLATIONS, FieldViolation

__all__ = ["MAX_FIELD", "MAX_MESSAGE", "abort", "abort_async", "invalid", "rich_status"]

# Error messages echo the bad values; a huge value must not make the status
# itself exceed gRPC's metadata limit (16 KiB), which would turn the answer into
# RESOURCE_EXHAUSTED: messages and violations are capped.
MAX_MESSAGE = 1000
MAX_FIELD = 120
# Descriptions share this budget (never less than MAX_FIELD each), so that a lone
# violation can list what would be valid (e.g. the series a monitor may name).
MAX_DESCRIPTIONS = 4000


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 8] + "...(cut)"


def rich_status(
    code: grpc.StatusCode, message: str, violations: Iterable[FieldViolation] = ()
) -> grpc.Status:
    """`code` and `message` with, when given, BadRequest field violations as details."""
    status = status_pb2.Status(code=code.value[0], message=_cap(message, MAX_MESSAGE))
    violations = list(violations)[:MAX_VIOLATIONS]
    if violations:
        each = max(MAX_FIELD, MAX_DESCRIPTIONS // len(violations))
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=_cap(v.field, MAX_FIELD), description=_cap(v.description, each)
                )
                for v in violations
            ]
        )
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def abort(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    violations: Iterable[FieldViolation] = (),
) -> NoReturn:
    """Ends the RPC with `code`, `message` and, when given, BadRequest field violations."""
    context.abort_with_status(rich_status(code, message, violations))
    raise AssertionError("unreachable: abort_with_status raises")  # pragma: no cover


async def abort_async(
    context: aio.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    violations: Iterable[FieldViolation] = (),
) -> NoReturn:
    """`abort` for coroutine handlers."""
    status = rich_status(code, message, violations)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


def invalid(context: grpc.ServicerContext, violations: list[FieldViolation]) -> NoReturn:
    """INVALID_ARGUMENT whose message names the first violation and counts the rest."""
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    abort(
        context,
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{first.field}: {first.description}{more}",
        violations,
    )
