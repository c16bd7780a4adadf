"""UpdateRun from the client: one-off values kept on a run (its summary), hyperparameters
it did not have yet, and where its checkpoints were saved, checked here before anything
is sent.

`Run.update` and `AsyncRun.update` drive `update_run`; the checks mirror the server's,
so that a bad key, value, step or path raises `InvalidArgument` (a ValueError) naming
the item at the call, not after a round trip.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

from evalstream._base import Plan, Unary
from evalstream._run_types import HyperValue, RunInfo, hyper_pb
from evalstream.errors import FieldViolation, InvalidArgument
from evalstream.v1 import runs_pb2

#: As the server: the longest summary key, the most saved checkpoints per update,
#: the longest checkpoint path.
MAX_KEY = 256
MAX_SAVED_CHECKPOINTS = 1000
MAX_PATH = 4096
_INT64_MAX = 2**63 - 1


def _refuse(field: str, message: str) -> InvalidArgument:
    return InvalidArgument(
        f"{field}: {message}",
        code="INVALID_ARGUMENT",
        violations=(FieldViolation(field, message),),
    )


def _value(path: str, key: object, value: object, *, finite: bool = False) -> HyperValue:
    """A summary value (``finite`` False: NaN and infinities kept) or a hyperparameter."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
        raise _refuse(path, f"key {key!r} must be a string of 1-{MAX_KEY} characters")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):  # int, numpy integers
        if not -(2**63) <= int(value) <= _INT64_MAX:
            raise _refuse(f"{path}[{key}]", f"{value} does not fit in a signed 64-bit int")
        return int(value)
    if isinstance(value, numbers.Real):  # float, numpy floats
        if finite and not math.isfinite(float(value)):
            raise _refuse(
                f"{path}[{key}]",
                f"{value} is not finite; a hyperparameter is a finite float (keep it in the "
                "summary instead)",
            )
        return float(value)
    what = "summary value" if path == "summary" else "hyperparameter"
    raise _refuse(
        f"{path}[{key}]",
        f"a {type(value).__name__} is not a {what}; give a bool, int, float or str",
    )


def _saved_pb(i: int, step: object, path: object) -> runs_pb2.SavedCheckpoint:
    field = f"saved_checkpoints[{i}]"
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise _refuse(f"{field}.step", f"step {step!r} is not an integer")
    if not 0 <= int(step) <= _INT64_MAX:
        raise _refuse(f"{field}.step", f"step {step} is negative or past 2**63 - 1")
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not 1 <= len(path) <= MAX_PATH:
        shown = path if not isinstance(path, str) else f"{len(path)} characters"
        raise _refuse(
            f"{field}.path",
            f"the path of step {step} ({shown!s:.40}) must be a string of 1-{MAX_PATH} "
            "characters: the checkpoint's directory or URI",
        )
    if "\0" in path:
        raise _refuse(f"{field}.path", f"the path of step {step} holds a NUL character")
    return runs_pb2.SavedCheckpoint(step=int(step), path=path)


def update_request(
    run_id: str,
    summary: Mapping[str, HyperValue] | None,
    saved_checkpoints: Mapping[int, str | os.PathLike[str]] | None,
    hyperparameters: Mapping[str, HyperValue] | None = None,
) -> runs_pb2.UpdateRunRequest:
    """The UpdateRun request, every item checked; InvalidArgument names the first bad one.

    Example:
        >>> r = update_request("r_1", {"train_runtime": 61.5}, {500: "out/checkpoint-500"})
        >>> r.summary["train_runtime"].float_value, r.saved_checkpoints[0].path
        (61.5, 'out/checkpoint-500')
        >>> update_request("r_1", None, {500: ""})
        Traceback (most recent call last):
        ...
        evalstream.errors.InvalidArgument: INVALID_ARGUMENT: saved_checkpoints[0].path: \
the path of step 500 (0 characters) must be a string of 1-4096 characters: the \
checkpoint's directory or URI
    """
    summary = summary or {}
    saved = saved_checkpoints or {}
    hypers = hyperparameters or {}
    for path, values in (("summary", summary), ("hyperparameters", hypers)):
        if not isinstance(values, Mapping):
            raise _refuse(path, f"must be a mapping of key to value, not {type(values).__name__}")
    if not isinstance(saved, Mapping):
        raise _refuse(
            "saved_checkpoints",
            f"must be a mapping of step to path, not {type(saved).__name__}",
        )
    if len(saved) > MAX_SAVED_CHECKPOINTS:
        raise _refuse(
            "saved_checkpoints",
            f"{len(saved)} saved checkpoints; send at most {MAX_SAVED_CHECKPOINTS} per update",
        )
    return runs_pb2.UpdateRunRequest(
        run_id=run_id,
        summary={k: hyper_pb(_value("summary", k, v)) for k, v in summary.items()},
        saved_checkpoints=[_saved_pb(i, s, p) for i, (s, p) in enumerate(saved.items())],
        hyperparameters={
            k: hyper_pb(_value("hyperparameters", k, v, finite=True)) for k, v in hypers.items()
        },
    )


def update_run(
    run_id: str,
    summary: Mapping[str, HyperValue] | None,
    saved_checkpoints: Mapping[int, str | os.PathLike[str]] | None,
    hyperparameters: Mapping[str, HyperValue] | None = None,
) -> Plan[RunInfo]:
    """UpdateRun: the run as it is after the update."""
    request = update_request(run_id, summary, saved_checkpoints, hyperparameters)
    return RunInfo.from_pb((yield Unary("UpdateRun", request)))


class RunUpdate:
    """`Run.update` (a mixin: it sends through the run's client and keeps ``info``)."""

    _client: Any
    id: Any
    info: RunInfo

    def update(
        self,
        *,
        summary: Mapping[str, HyperValue] | None = None,
        saved_checkpoints: Mapping[int, str | os.PathLike[str]] | None = None,
        hyperparameters: Mapping[str, HyperValue] | None = None,
    ) -> RunInfo:
        """Keeps one-off values on the run, records where its checkpoints were saved and
        adds hyperparameters it does not have yet.

        ``summary`` values (``train_runtime``, ``total_flos``, ...) merge into
        ``RunInfo.summary``: a key given again replaces its value; floats are kept
        exactly, NaN included. ``saved_checkpoints`` maps a step to the checkpoint's
        directory or URI (a step given again replaces its path); the verdict names the
        one saved at the best step. ``hyperparameters`` (known only once the run is
        open, e.g. a dataset size) join ``RunInfo.hyperparameters`` and so CompareRuns
        and ListRuns filters; a key the run has with the same value changes nothing.
        A finished run may still be updated.

        Returns:
            The run as it is after the update (also ``run.info``).

        Raises:
            InvalidArgument: (a ValueError) a bad key, value, step or path, or a
                hyperparameter that is not a finite number, bool or str, named before
                anything is sent; at most 1000 saved checkpoints per call.
            FailedPrecondition: a hyperparameter the run has with another value (a
                run's hyperparameters do not change; nothing of the update applies).
        """
        plan = update_run(self.id, summary, saved_checkpoints, hyperparameters)
        self.info = self._client._drive(plan)
        return self.info


class AsyncRunUpdate:
    """`AsyncRun.update` (a mixin, as `RunUpdate`)."""

    _client: Any
    _run: Any
    id: Any

    async def update(
        self,
        *,
        summary: Mapping[str, HyperValue] | None = None,
        saved_checkpoints: Mapping[int, str | os.PathLike[str]] | None = None,
        hyperparameters: Mapping[str, HyperValue] | None = None,
    ) -> RunInfo:
        """Async twin of `Run.update`."""
        plan = update_run(self.id, summary, saved_checkpoints, hyperparameters)
        info: RunInfo = await self._client._drive(plan)
        self._run.info = info
        return info
