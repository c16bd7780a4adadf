"""UpdateRun of evalstream.v1.Runs: one-off values kept on a run (its summary),
hyperparameters it did not have yet, and where its checkpoints were saved.

A mixin of `RunsServicer` (it reads ``self._store`` and ``self._verdicts``). Summary
values are HyperValues as hyperparameters are, except that a float may be NaN or
infinite (a diverged run's final loss is still worth keeping) and is stored exactly.
Added hyperparameters are checked as CreateRun checks them (finite floats); one the
run has with another value refuses the request (FAILED_PRECONDITION, from the store).
A saved checkpoint names its directory in the verdict (the grade at its step, the
best checkpoint of early stopping and the advice), so recording one wakes the run's
WatchVerdict streams.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import grpc
from evalstream.v1 import runs_pb2

from evalstream_server.api._convert import hyper_to_python, run_to_pb
from evalstream_server.api._derived import derived_values
from evalstream_server.api._status import store_abort
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.errors import FieldViolation
from evalstream_server.status import invalid
from evalstream_server.store import Store, StoreError

#: Longest summary key (as hyperparameter keys), most saved checkpoints per request,
#: longest checkpoint path.
MAX_KEY = 256
MAX_SAVED_CHECKPOINTS = 1000
MAX_PATH = 4096


def summary_from_pb(
    values: Mapping[str, runs_pb2.HyperValue], violations: list[FieldViolation]
) -> dict[str, bool | int | float | str]:
    """The summary values of a request; what is wrong with them goes to `violations`."""
    return _values_from_pb(values, "summary", violations, finite=False)


def hypers_from_pb(
    values: Mapping[str, runs_pb2.HyperValue], violations: list[FieldViolation]
) -> dict[str, bool | int | float | str]:
    """The hyperparameters a request adds, checked as CreateRun checks them (a float
    must be finite); what is wrong with them goes to `violations`."""
    return _values_from_pb(values, "hyperparameters", violations, finite=True)


def _values_from_pb(
    values: Mapping[str, runs_pb2.HyperValue],
    path: str,
    violations: list[FieldViolation],
    *,
    finite: bool,
) -> dict[str, bool | int | float | str]:
    out: dict[str, bool | int | float | str] = {}
    for key, value in values.items():
        python = hyper_to_python(value)
        if not 1 <= len(key) <= MAX_KEY:
            violations.append(
                FieldViolation(path, f"key {key[:40]!r} must have 1-{MAX_KEY} characters")
            )
        elif python is None:
            violations.append(
                FieldViolation(f"{path}[{key}]", "no value set: give a bool, int, float or string")
            )
        elif finite and isinstance(python, float) and not math.isfinite(python):
            violations.append(
                FieldViolation(f"{path}[{key}]", f"{python} is not finite; give a finite float")
            )
        else:
            out[key] = python
    return out


def saved_from_pb(
    saved: list[runs_pb2.SavedCheckpoint], violations: list[FieldViolation]
) -> list[tuple[int, str]]:
    """The (step, path) pairs of a request, in order; problems go to `violations`."""
    if len(saved) > MAX_SAVED_CHECKPOINTS:
        violations.append(
            FieldViolation(
                "saved_checkpoints",
                f"{len(saved)} saved checkpoints; send at most {MAX_SAVED_CHECKPOINTS} per request",
            )
        )
        return []
    out = []
    for i, checkpoint in enumerate(saved):
        if checkpoint.step < 0:
            violations.append(
                FieldViolation(
                    f"saved_checkpoints[{i}].step", f"step {checkpoint.step} is negative"
                )
            )
        path = checkpoint.path
        if not 1 <= len(path) <= MAX_PATH:
            violations.append(
                FieldViolation(
                    f"saved_checkpoints[{i}].path",
                    f"path has {len(path)} characters; give 1-{MAX_PATH} (the checkpoint's "
                    "directory or URI)",
                )
            )
        elif "\0" in path:
            violations.append(
                FieldViolation(
                    f"saved_checkpoints[{i}].path", f"path {path[:40]!r} holds a NUL character"
                )
            )
        out.append((checkpoint.step, path))
    return out


class UpdateRunMixin:
    """UpdateRun of the Runs service."""

    _store: Store
    _verdicts: VerdictHub

    def UpdateRun(
        self, request: runs_pb2.UpdateRunRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Run:  # noqa: N802
        violations: list[FieldViolation] = []
        if not request.run_id:
            violations.append(FieldViolation("run_id", "required"))
        summary = summary_from_pb(request.summary, violations)
        saved = saved_from_pb(list(request.saved_checkpoints), violations)
        hypers = hypers_from_pb(request.hyperparameters, violations)
        if violations:
            invalid(context, violations)
        try:
            run = self._store.update_run(
                request.run_id, summary=summary, saved_checkpoints=saved, hyperparameters=hypers
            )
            if saved:
                self._verdicts.saved_checkpoints_changed(run.id)
            return run_to_pb(run, derived_values(run, self._store))
        except StoreError as exc:
            store_abort(context, exc)
