"""The evalstream exception tree.

Every gRPC error a call meets is converted at the client boundary into one of
these, carrying the status code name, the server's message and the field
violations (google.rpc.BadRequest) that say which field of which item was
wrong::

    EvalstreamError
    ├── InvalidArgument        INVALID_ARGUMENT, OUT_OF_RANGE   (.violations; a ValueError)
    │   └── InvalidPoint       a point Run.log refuses at the call
    ├── NotFound               NOT_FOUND
    ├── AlreadyExists          ALREADY_EXISTS
    ├── FailedPrecondition     FAILED_PRECONDITION
    ├── ResourceExhausted      RESOURCE_EXHAUSTED
    ├── Unauthenticated        UNAUTHENTICATED
    ├── PermissionDenied       PERMISSION_DENIED
    ├── Unimplemented          UNIMPLEMENTED
    ├── Unavailable            UNAVAILABLE (server down or unreachable)
    ├── DeadlineExceeded       DEADLINE_EXCEEDED
    ├── Cancelled              CANCELLED
    ├── ServerError            INTERNAL, UNKNOWN, DATA_LOSS, ABORTED
    └── PointsRefused          logged points the server refused (.refusals), raised
                               at the run's next log, flush or finish

Example:
    >>> issubclass(InvalidArgument, EvalstreamError)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: its path (e.g. ``images[3].predictions[0].x2``) and what is wrong."""

    field: str
    description: str


class EvalstreamError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self, message: str, *, code: str = "UNKNOWN", violations: tuple[FieldViolation, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.violations = violations

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if len(self.violations) > 1:
            text += "".join(f"\n  {v.field}: {v.description}" for v in self.violations)
        return text


class InvalidArgument(EvalstreamError, ValueError):
    """The request was refused as malformed; see `violations`.

    Also a ValueError: the client refuses some arguments itself (an unknown
    metric name) before sending, where Python code expects a ValueError.
    """


class NotFound(EvalstreamError):
    """A named run or resource does not exist (or is not visible to this token)."""


class AlreadyExists(EvalstreamError):
    """A resource with that name already exists."""


class FailedPrecondition(EvalstreamError):
    """The request is well-formed but cannot be done in the current state."""


class ResourceExhausted(EvalstreamError):
    """A limit was hit (message size, concurrent streams, queue); retry later or send less."""


class Unauthenticated(EvalstreamError):
    """No valid credentials were sent."""


class PermissionDenied(EvalstreamError):
    """The credentials do not allow this call."""


class Unimplemented(EvalstreamError):
    """The server does not offer this method (yet); the message says what is missing."""


class Unavailable(EvalstreamError):
    """The server could not be reached or is shutting down; safe to retry."""


class DeadlineExceeded(EvalstreamError):
    """The call's deadline passed before the server answered."""


class Cancelled(EvalstreamError):
    """The call was cancelled."""


class ServerError(EvalstreamError):
    """The server failed (INTERNAL, UNKNOWN, DATA_LOSS, ABORTED)."""


class InvalidPoint(InvalidArgument, ValueError):
    """A point that `Run.log` or `Run.log_many` refuses at the call, before sending it.

    The server would refuse it (a negative or non-integer step, a value that is
    not a number, ...). `.violations` names the field (``steps[3]``); `.index`
    is the point's index in the call (None for `log`), `.value` the bad value.
    Nothing of the call is logged.
    """

    def __init__(
        self, message: str, *, field: str, index: int | None = None, value: object = None
    ) -> None:
        super().__init__(
            message, code="INVALID_ARGUMENT", violations=(FieldViolation(field, message),)
        )
        self.index = index
        self.value = value


@dataclass(frozen=True, slots=True)
class Refusal:
    """A chunk of logged points the server refused (not resent).

    `reason` is the server's, `field` the part it refused (``steps[3]``: the
    chunk's fourth point; empty when the store was overloaded); `steps` are the
    chunk's steps, in the order logged.
    """

    sequence: int
    reason: str
    field: str
    split: str = ""
    series: str = ""
    steps: tuple[int, ...] = ()

    @property
    def refused_step(self) -> int | None:
        """The step the server named (``steps[i]``), or None when it refused the whole chunk."""
        if self.field.startswith("steps[") and self.field.endswith("]"):
            index = self.field[len("steps[") : -1]
            if index.isdigit() and int(index) < len(self.steps):
                return self.steps[int(index)]
        return None

    def describe(self) -> str:
        """One line: which points (split/series, steps) and the server's reason."""
        n = len(self.steps)
        step = self.refused_step
        if step is not None:
            which = f"step {step}"
        elif n == 1:
            which = f"step {self.steps[0]}"
        elif n:
            which = f"steps {self.steps[0]} to {self.steps[-1]}"
        else:
            which = "no points"
        return (
            f"{self.split}/{self.series}: {n} point{'s' if n != 1 else ''} refused "
            f"({which}): {self.reason}"
        )


class PointsRefused(EvalstreamError):
    """The server refused logged points after `log` returned; `.refusals` says which and why.

    Raised at the run's next `log`, `log_many`, `flush` or `finish` (once per
    refusal; `finish` raises for every refusal of the run). Refused points are not
    resent: fix them and log them again.
    """

    def __init__(self, refusals: tuple[Refusal, ...]) -> None:
        points = sum(len(r.steps) for r in refusals)
        lines = "".join(f"\n  {r.describe()}" for r in refusals[:10])
        more = f"\n  ... and {len(refusals) - 10} more chunks" if len(refusals) > 10 else ""
        super().__init__(
            f"the server refused {points} logged point{'s' if points != 1 else ''} "
            f"in {len(refusals)} chunk{'s' if len(refusals) != 1 else ''}; they are not stored:"
            f"{lines}{more}",
            code="POINTS_REFUSED",
        )
        self.refusals = refusals


_BY_CODE: dict[grpc.StatusCode, type[EvalstreamError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _violations(trailing: object) -> tuple[FieldViolation, ...]:
    for key, value in trailing or ():  # type: ignore[attr-defined]
        if key != _STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        found: list[FieldViolation] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                found.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        return tuple(found)
    return ()


def from_grpc(error: grpc.RpcError) -> EvalstreamError:
    """Converts a gRPC error (sync or asyncio) into the evalstream tree."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else ()
    cls = _BY_CODE.get(code, ServerError)
    return cls(details or code.name, code=code.name, violations=_violations(trailing))


__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "EvalstreamError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "InvalidPoint",
    "NotFound",
    "PermissionDenied",
    "PointsRefused",
    "Refusal",
    "ResourceExhausted",
    "ServerError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "from_grpc",
]
