"""One specimen across evaluation steps and runs: GetSpecimenHistory and CompareSpecimens.

A mixin of `SpecimensMixin` (it reads ``self._store`` and ``self._verdicts``). The
history is the evaluation-step slider for one image or question; the comparison puts
the same specimen of several runs side by side, at one step or at each run's best
checkpoint, which is the step the run's verdict names (`Verdict.early_stopping`, as
GetVerdict answers it): never a second reading of the curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from evalstream.v1 import runs_pb2

from evalstream_server.api._convert import SPLIT_NAMES, specimen_to_pb
from evalstream_server.api._status import store_abort, store_status
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.errors import FieldViolation
from evalstream_server.status import abort, invalid
from evalstream_server.store import RunRecord, SpecimenRecord, Store, StoreError

#: How many runs CompareSpecimens takes.
MIN_RUNS, MAX_RUNS = 2, 20
#: Steps a note lists before it elides the middle ones.
_SHOWN_STEPS = 8


def steps_text(steps: Sequence[int]) -> str:
    """The steps a specimen was recorded at, said briefly.

    Example:
        >>> steps_text([100, 200, 300])
        'step 100, 200, 300'
        >>> steps_text(list(range(0, 2000, 100)))
        'step 0, 100, 200, 300, ..., 1600, 1700, 1800, 1900 (20 steps)'
    """
    shown = [str(s) for s in steps]
    if len(shown) > _SHOWN_STEPS:
        half = _SHOWN_STEPS // 2
        shown = [*shown[:half], "...", *shown[-half:], f"({len(steps)} steps)"]
        return "step " + ", ".join(shown[:-1]) + " " + shown[-1]
    return "step " + ", ".join(shown)


@dataclass(frozen=True, slots=True)
class _Best:
    """A run's best checkpoint as its verdict names it (step None: it has none; note says why)."""

    step: int | None
    note: str


def _common_violations(split: int, specimen_id: str) -> list[FieldViolation]:
    violations = []
    if split not in SPLIT_NAMES:
        violations.append(FieldViolation("split", "required: train, validation or test"))
    if not specimen_id:
        violations.append(
            FieldViolation(
                "specimen_id",
                "required: the TextPair.specimen_id or ImageBoxes.image_id it was scored with",
            )
        )
    return violations


def _missing_specimen(run: RunRecord, split: str, specimen_id: str) -> str:
    return (
        f"run {run.name!r} ({run.id}) never recorded specimen {specimen_id[:200]!r} in the "
        f"{split} split; its specimens are listed by GetSpecimens (evalstream runs specimens)"
    )


class SpecimenHistoryMixin:
    """GetSpecimenHistory and CompareSpecimens of the Runs service."""

    _store: Store
    _verdicts: VerdictHub

    def GetSpecimenHistory(  # noqa: N802
        self, request: runs_pb2.GetSpecimenHistoryRequest, context: grpc.ServicerContext
    ) -> runs_pb2.GetSpecimenHistoryResponse:
        violations = _common_violations(request.split, request.specimen_id)
        if violations:
            invalid(context, violations)
        split = SPLIT_NAMES[request.split]
        try:
            history = self._store.specimen_history(request.run_id, split, request.specimen_id)
            if not history:
                run = self._store.get_run(request.run_id)
        except StoreError as exc:
            store_abort(context, exc)
        if not history:
            message = _missing_specimen(run, split, request.specimen_id)
            violation = FieldViolation("specimen_id", message)
            abort(context, grpc.StatusCode.NOT_FOUND, message, [violation])
        return runs_pb2.GetSpecimenHistoryResponse(
            steps=[
                runs_pb2.SpecimenAtStep(step=step, specimen=specimen_to_pb(rec))
                for step, rec in history
            ]
        )

    def CompareSpecimens(  # noqa: N802
        self, request: runs_pb2.CompareSpecimensRequest, context: grpc.ServicerContext
    ) -> runs_pb2.CompareSpecimensResponse:
        run_ids = list(request.run_ids)
        violations = []
        if not MIN_RUNS <= len(run_ids) <= MAX_RUNS:
            violations.append(
                FieldViolation(
                    "run_ids", f"{len(run_ids)} runs but {MIN_RUNS}-{MAX_RUNS} are compared"
                )
            )
        first: dict[str, int] = {}
        for i, run_id in enumerate(run_ids):
            if run_id in first:
                violations.append(
                    FieldViolation(
                        f"run_ids[{i}]",
                        f"run {run_id!r} is listed twice (also run_ids[{first[run_id]}]); "
                        "list each run once",
                    )
                )
            first.setdefault(run_id, i)
        violations += _common_violations(request.split, request.specimen_id)
        at = request.WhichOneof("at")
        if at is None or (at == "best" and not request.best):
            violations.append(FieldViolation("at", "required: give step (>= 0) or best"))
        elif at == "step" and request.step < 0:
            violations.append(FieldViolation("step", f"must be >= 0, got {request.step}"))
        if violations:
            invalid(context, violations)
        split = SPLIT_NAMES[request.split]
        out = []
        recorded = False
        for i, run_id in enumerate(run_ids):
            field = f"run_ids[{i}]"
            try:
                run = self._store.get_run(run_id)
                history = self._store.specimen_history(run_id, split, request.specimen_id)
                best = self._best(run_id) if history and at == "best" else None
            except StoreError as exc:
                code, message, _ = store_status(exc)
                abort(context, code, f"{field}: {message}", [FieldViolation(field, message)])
            if history:
                recorded = True
                out.append(_run_specimen(run, history, request.step, best))
            else:  # present=False: the other runs still answer (a typo is caught below)
                note = _missing_specimen(run, split, request.specimen_id)
                step = request.step if at == "step" else 0
                out.append(
                    runs_pb2.RunSpecimen(run_id=run.id, run_name=run.name, step=step, note=note)
                )
        if not recorded:
            message = (
                f"no run of the {len(run_ids)} listed recorded specimen "
                f"{request.specimen_id[:200]!r} in the {split} split; their specimens are "
                "listed by GetSpecimens (evalstream runs specimens)"
            )
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                message,
                [FieldViolation("specimen_id", message)],
            )
        return runs_pb2.CompareSpecimensResponse(runs=out)

    def _best(self, run_id: str) -> _Best:
        """The run's best checkpoint: the step its verdict's early stopping names.

        Raises:
            NotFound: unknown run.
        """
        if not self._verdicts.logged(run_id).metrics:
            return _Best(None, "no best checkpoint: the run has no checkpoint metrics")
        try:
            es = self._verdicts.verdict(run_id).early_stopping
        except ValueError as exc:  # stored thresholds that do not validate
            return _Best(None, f"no best checkpoint: the run's verdict_config is invalid ({exc})")
        if es.best_step is None or es.best_value is None:
            return _Best(
                None,
                f"no best checkpoint: the verdict's monitor {es.monitor} has no evaluation yet "
                "(set the run's verdict_config monitor to a checkpoint metric it logs)",
            )
        better = "lowest" if es.mode == "min" else "highest"
        return _Best(
            es.best_step,
            f"best checkpoint: {es.monitor} = {es.best_value:.6g} ({better} is best) "
            f"at step {es.best_step}, as the run's verdict picks it",
        )


def _run_specimen(
    run: RunRecord,
    history: Sequence[tuple[int, SpecimenRecord]],
    step: int,
    best: _Best | None,
) -> runs_pb2.RunSpecimen:
    """One run's entry: the specimen at `step` (or at `best`'s), or why it is missing."""
    note = ""
    if best is not None:
        if best.step is None:
            return runs_pb2.RunSpecimen(
                run_id=run.id, run_name=run.name, present=False, note=best.note
            )
        step, note = best.step, best.note
    at = dict(history)
    entry = runs_pb2.RunSpecimen(run_id=run.id, run_name=run.name, step=step)
    if step in at:
        entry.present = True
        entry.specimen.CopyFrom(specimen_to_pb(at[step]))
        entry.note = note
    else:
        missing = f"not recorded at step {step}; recorded at {steps_text([s for s, _ in history])}"
        entry.note = f"{note}; {missing}" if note else missing
    return entry
