"""The evalstream.v1.Runs servicer: runs, loss ingestion, checkpoints, curves, specimens.

Verdicts and comparisons (GetVerdict, WatchVerdict, CompareRuns) are part of the
contract but not of this server version: they answer UNIMPLEMENTED and say what
is missing.

StreamLoss acks a chunk only once the store reports it durable. A stream keeps
up to ``window`` chunks in flight (read ahead while earlier ones commit), so
that the store's group commit can take many chunks, of many streams, per
transaction; acks still come back in the order the chunks were sent.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import numpy as np
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc
from google.protobuf import timestamp_pb2

from evalstream_server.analysis.downsample import downsample_minmax
from evalstream_server.api._status import abort, invalid
from evalstream_server.metrics.boxes import FieldViolation
from evalstream_server.store import (
    AlreadyExists,
    InvalidInput,
    NewRun,
    NotFound,
    PointChunk,
    RunRecord,
    SeriesData,
    SpecimenRecord,
    Store,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    WriteResult,
)

SPLIT_NAMES = {
    common_pb2.SPLIT_TRAIN: "train",
    common_pb2.SPLIT_VALIDATION: "validation",
    common_pb2.SPLIT_TEST: "test",
}
SPLIT_ENUMS = {name: value for value, name in SPLIT_NAMES.items()}
TASK_NAMES = {
    runs_pb2.TASK_UNSPECIFIED: "",
    runs_pb2.TASK_PHRASE_GROUNDING: "phrase_grounding",
    runs_pb2.TASK_VQA: "vqa",
    runs_pb2.TASK_OTHER: "other",
}
TASK_ENUMS = {name: value for value, name in TASK_NAMES.items()}
STATUS_NAMES = {
    runs_pb2.RUN_STATUS_RUNNING: "running",
    runs_pb2.RUN_STATUS_FINISHED: "finished",
    runs_pb2.RUN_STATUS_FAILED: "failed",
    runs_pb2.RUN_STATUS_KILLED: "killed",
}
STATUS_ENUMS = {name: value for value, name in STATUS_NAMES.items()}
DEFAULT_SERIES = "loss"
MAX_NAME = 256
MAX_PROJECT = 128
MAX_SERIES = 128
MAX_PAGE = 1000
DEFAULT_PAGE = 100


@dataclass(frozen=True, slots=True)
class RunsLimits:
    """Per-message limits of the Runs service (configured by flags)."""

    max_points_per_chunk: int = 1_000_000
    stream_window: int = 64
    ack_timeout_seconds: float = 60.0


# ------------------------------------------------------------------ translation


def hyper_to_python(value: runs_pb2.HyperValue) -> bool | int | float | str | None:
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def hyper_to_pb(value: bool | int | float | str) -> runs_pb2.HyperValue:
    if isinstance(value, bool):
        return runs_pb2.HyperValue(bool_value=value)
    if isinstance(value, int):
        return runs_pb2.HyperValue(int_value=value)
    if isinstance(value, float):
        return runs_pb2.HyperValue(float_value=value)
    return runs_pb2.HyperValue(string_value=str(value))


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _hypers(
    values: Mapping[str, runs_pb2.HyperValue], path: str, violations: list[FieldViolation]
) -> dict[str, bool | int | float | str]:
    out: dict[str, bool | int | float | str] = {}
    for key, value in values.items():
        python = hyper_to_python(value)
        if not key or len(key) > MAX_NAME:
            violations.append(
                FieldViolation(f"{path}", f"key {key[:40]!r} must have 1-{MAX_NAME} characters")
            )
        elif python is None:
            violations.append(FieldViolation(f"{path}[{key}]", "no value set"))
        elif isinstance(python, float) and not math.isfinite(python):
            violations.append(FieldViolation(f"{path}[{key}]", f"{python} is not finite"))
        else:
            out[key] = python
    return out


def _verdict_config(pb: runs_pb2.VerdictConfig) -> dict[str, bool | int | float | str]:
    return {fd.name: value for fd, value in pb.ListFields()}


def _derived(run: RunRecord, store: Store) -> dict[str, bool | int | float | str]:
    """Values derived from the run: learning-rate ends and steps per epoch."""
    derived: dict[str, bool | int | float | str] = {}
    for series in store.read_series(run.id, series=("learning_rate",)):
        if series.split == "train" and len(series.values):
            derived["initial_learning_rate"] = float(series.values[0])
            derived["final_learning_rate"] = float(series.values[-1])
    size, batch = run.hyperparameters.get("dataset_size"), run.hyperparameters.get("batch_size")
    if (
        isinstance(size, int)
        and isinstance(batch, int)
        and not isinstance(size, bool)
        and not isinstance(batch, bool)
        and size > 0
        and batch > 0
    ):
        derived["steps_per_epoch"] = -(-size // batch)
    return derived


def run_to_pb(run: RunRecord, derived: Mapping[str, bool | int | float | str] = {}) -> runs_pb2.Run:
    return runs_pb2.Run(
        id=run.id,
        project=run.project,
        name=run.name,
        model=run.model,
        task=TASK_ENUMS.get(run.task, runs_pb2.TASK_UNSPECIFIED),
        status=STATUS_ENUMS.get(run.status, runs_pb2.RUN_STATUS_UNSPECIFIED),
        hyperparameters={k: hyper_to_pb(v) for k, v in run.hyperparameters.items()},
        derived={k: hyper_to_pb(v) for k, v in derived.items()},
        created_at=_timestamp(run.created_at),
        updated_at=_timestamp(run.updated_at),
    )


def _series_to_pb(s: SeriesData, max_points: int) -> runs_pb2.Series:
    steps, values, wall = s.steps, s.values, s.wall_times
    if max_points > 0 and len(steps) > max_points:
        keep = downsample_minmax(steps, values, max_points)
        steps, values = steps[keep], values[keep]
        wall = wall[keep] if wall is not None else None
    return runs_pb2.Series(
        split=SPLIT_ENUMS.get(s.split, common_pb2.SPLIT_UNSPECIFIED),
        name=s.name,
        steps=steps.tolist(),
        values=values.tolist(),
        wall_times=wall.tolist() if wall is not None else [],
        total_points=s.total_points,
    )


def store_abort(context: grpc.ServicerContext, exc: StoreError) -> NoReturn:
    if isinstance(exc, NotFound):
        abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, AlreadyExists):
        abort(context, grpc.StatusCode.ALREADY_EXISTS, str(exc))
    if isinstance(exc, InvalidInput):
        field = getattr(exc, "field", "") or ""
        abort(
            context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), [FieldViolation(field, str(exc))]
        )
    if isinstance(exc, StoreOverloaded):
        abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, StoreClosed):
        abort(context, grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
    raise exc


def _page_size(value: int, field: str, violations: list[FieldViolation]) -> int:
    if value == 0:
        return DEFAULT_PAGE
    if not 1 <= value <= MAX_PAGE:
        violations.append(FieldViolation(field, f"{value} is not in [1, {MAX_PAGE}]"))
    return value


# ------------------------------------------------------------------ loss chunks


def chunk_violations(chunk: runs_pb2.LossChunk, limits: RunsLimits) -> list[FieldViolation]:
    """What is wrong with a loss chunk, before the store sees it."""
    violations = []
    n = len(chunk.steps)
    if not chunk.run_id:
        violations.append(FieldViolation("run_id", "required"))
    if chunk.split not in SPLIT_NAMES:
        violations.append(
            FieldViolation("split", f"must be train, validation or test (got {chunk.split})")
        )
    if len(chunk.series) > MAX_SERIES:
        violations.append(
            FieldViolation("series", f"{len(chunk.series)} characters, at most {MAX_SERIES}")
        )
    if len(chunk.values) != n:
        violations.append(FieldViolation("values", f"{len(chunk.values)} values but {n} steps"))
    if len(chunk.wall_times) not in (0, n):
        violations.append(
            FieldViolation("wall_times", f"{len(chunk.wall_times)} wall times but {n} steps")
        )
    if n > limits.max_points_per_chunk:
        violations.append(
            FieldViolation("steps", f"{n} points, at most {limits.max_points_per_chunk} per chunk")
        )
    if n and not violations:
        steps = np.asarray(chunk.steps, dtype=np.int64)
        negative = np.flatnonzero(steps < 0)
        if len(negative):
            i = int(negative[0])
            violations.append(FieldViolation(f"steps[{i}]", f"step {int(steps[i])} is negative"))
    return violations


@dataclass(slots=True)
class _Pending:
    sequence: int
    future: Future[WriteResult] | None = None
    refusal: FieldViolation | None = None


class RunsServicer(runs_pb2_grpc.RunsServicer):
    """Runs, loss ingestion, checkpoints and specimens over a Store."""

    def __init__(self, *, store: Store, limits: RunsLimits) -> None:
        self._store = store
        self._limits = limits

    # -------------------------------------------------------------- runs

    def CreateRun(
        self, request: runs_pb2.CreateRunRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Run:  # noqa: N802
        violations: list[FieldViolation] = []
        if not 1 <= len(request.project) <= MAX_PROJECT:
            violations.append(FieldViolation("project", f"must have 1-{MAX_PROJECT} characters"))
        if not 1 <= len(request.name) <= MAX_NAME:
            violations.append(FieldViolation("name", f"must have 1-{MAX_NAME} characters"))
        if request.task not in TASK_NAMES:
            violations.append(FieldViolation("task", f"unknown task {request.task}"))
        hypers = _hypers(request.hyperparameters, "hyperparameters", violations)
        if violations:
            invalid(context, violations)
        try:
            run = self._store.create_run(
                NewRun(
                    project=request.project,
                    name=request.name,
                    model=request.model,
                    task=TASK_NAMES[request.task],
                    hyperparameters=hypers,
                    verdict_config=_verdict_config(request.verdict_config),
                )
            )
        except StoreError as exc:
            store_abort(context, exc)
        return run_to_pb(run, _derived(run, self._store))

    def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Run:  # noqa: N802
        try:
            run = self._store.get_run(request.run_id)
            return run_to_pb(run, _derived(run, self._store))
        except StoreError as exc:
            store_abort(context, exc)

    def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: grpc.ServicerContext
    ) -> runs_pb2.ListRunsResponse:  # noqa: N802
        violations: list[FieldViolation] = []
        if not request.project:
            violations.append(FieldViolation("project", "required"))
        statuses = []
        for i, status in enumerate(request.statuses):
            if status not in STATUS_NAMES:
                violations.append(FieldViolation(f"statuses[{i}]", f"unknown status {status}"))
            else:
                statuses.append(STATUS_NAMES[status])
        filters: dict[str, bool | int | float | str] = {}
        for i, f in enumerate(request.hyperparameters):
            value = hyper_to_python(f.value)
            if not f.key or value is None:
                violations.append(
                    FieldViolation(f"hyperparameters[{i}]", "needs a key and a value")
                )
            else:
                filters[f.key] = value
        page_size = _page_size(request.page_size, "page_size", violations)
        if violations:
            invalid(context, violations)
        if request.name:
            return self._find_by_name(request, statuses, filters, context)
        try:
            runs, token = self._store.list_runs(
                project=request.project,
                statuses=statuses,
                model=request.model,
                hyperparameters=filters,
                page_size=page_size,
                page_token=request.page_token,
            )
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.ListRunsResponse(runs=[run_to_pb(r) for r in runs], next_page_token=token)

    def _find_by_name(
        self,
        request: runs_pb2.ListRunsRequest,
        statuses: list[str],
        filters: Mapping[str, bool | int | float | str],
        context: grpc.ServicerContext,
    ) -> runs_pb2.ListRunsResponse:
        try:
            run = self._store.find_run(request.project, request.name)
        except NotFound:
            return runs_pb2.ListRunsResponse()
        except StoreError as exc:
            store_abort(context, exc)
        matches = (
            (not statuses or run.status in statuses)
            and (not request.model or run.model == request.model)
            and all(run.hyperparameters.get(k) == v for k, v in filters.items())
        )
        return runs_pb2.ListRunsResponse(runs=[run_to_pb(run)] if matches else [])

    def SetRunStatus(
        self, request: runs_pb2.SetRunStatusRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Run:  # noqa: N802
        if request.status not in STATUS_NAMES:
            invalid(
                context,
                [
                    FieldViolation(
                        "status",
                        f"must be running, finished, failed or killed (got {request.status})",
                    )
                ],
            )
        try:
            run = self._store.set_status(request.run_id, STATUS_NAMES[request.status])
            return run_to_pb(run, _derived(run, self._store))
        except StoreError as exc:
            store_abort(context, exc)

    # -------------------------------------------------------------- loss

    def StreamLoss(  # noqa: N802
        self, request_iterator: Iterator[runs_pb2.LossChunk], context: grpc.ServicerContext
    ) -> Iterator[runs_pb2.LossAck]:
        """Reads ahead up to `stream_window` chunks; yields their acks in order as they commit."""
        pending: queue.Queue[_Pending | BaseException | None] = queue.Queue(
            self._limits.stream_window
        )
        known_runs: set[str] = set()

        def submit(chunk: runs_pb2.LossChunk) -> _Pending:
            item = _Pending(chunk.sequence)
            violations = chunk_violations(chunk, self._limits)
            if violations:
                item.refusal = violations[0]
                return item
            if chunk.run_id not in known_runs:
                try:
                    self._store.get_run(chunk.run_id)
                except NotFound:
                    item.refusal = FieldViolation("run_id", f"run {chunk.run_id!r} not found")
                    return item
                known_runs.add(chunk.run_id)
            walls = (
                np.asarray(chunk.wall_times, dtype=np.float64) if len(chunk.wall_times) else None
            )
            item.future = self._store.submit_points(
                PointChunk(
                    run_id=chunk.run_id,
                    split=SPLIT_NAMES[chunk.split],
                    series=chunk.series or DEFAULT_SERIES,
                    steps=np.asarray(chunk.steps, dtype=np.int64),
                    values=np.asarray(chunk.values, dtype=np.float64),
                    wall_times=walls,
                )
            )
            return item

        def put(item: _Pending | BaseException | None) -> bool:
            while context.is_active():
                try:
                    pending.put(item, timeout=0.25)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for chunk in request_iterator:
                    if not put(submit(chunk)):
                        return
                put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the responding thread
                put(exc)

        threading.Thread(target=read, name="stream-loss-reader", daemon=True).start()
        while True:
            try:
                item = pending.get(timeout=0.25)
            except queue.Empty:
                if context.is_active():
                    continue
                return  # cancelled, expired or the server is stopping
            if item is None:
                return
            if isinstance(item, BaseException):
                if isinstance(item, StoreError):
                    store_abort(context, item)
                if isinstance(item, grpc.RpcError) or not context.is_active():
                    return
                raise item
            if item.refusal is not None:
                yield runs_pb2.LossAck(
                    sequence=item.sequence,
                    accepted=False,
                    reason=f"{item.refusal.field}: {item.refusal.description}",
                    field=item.refusal.field,
                )
                continue
            assert item.future is not None  # noqa: S101 - set whenever refusal is None
            try:
                result = item.future.result(timeout=self._limits.ack_timeout_seconds)
            except StoreOverloaded as exc:
                yield runs_pb2.LossAck(
                    sequence=item.sequence, accepted=False, reason=str(exc), field=""
                )
                continue
            except (NotFound, InvalidInput) as exc:
                field = getattr(exc, "field", "") or "run_id"
                yield runs_pb2.LossAck(
                    sequence=item.sequence, accepted=False, reason=str(exc), field=field
                )
                continue
            except StoreError as exc:
                store_abort(context, exc)
            yield runs_pb2.LossAck(
                sequence=item.sequence,
                accepted=True,
                stored=result.stored,
                duplicates=result.duplicates,
            )

    # -------------------------------------------------------------- checkpoints

    def LogCheckpoint(  # noqa: N802
        self, request: runs_pb2.LogCheckpointRequest, context: grpc.ServicerContext
    ) -> runs_pb2.LogCheckpointResponse:
        violations = []
        if request.split not in SPLIT_NAMES:
            violations.append(FieldViolation("split", "must be train, validation or test"))
        if request.step < 0:
            violations.append(FieldViolation("step", f"step {request.step} is negative"))
        if not request.metrics:
            violations.append(FieldViolation("metrics", "at least one metric is required"))
        for name, value in request.metrics.items():
            if not name or len(name) > MAX_NAME:
                violations.append(
                    FieldViolation(
                        "metrics", f"metric name {name[:40]!r} must have 1-{MAX_NAME} characters"
                    )
                )
            elif not math.isfinite(value):
                violations.append(FieldViolation(f"metrics[{name}]", f"{value} is not finite"))
        if violations:
            invalid(context, violations)
        try:
            stored = self._store.log_checkpoint(
                request.run_id, SPLIT_NAMES[request.split], request.step, dict(request.metrics)
            )
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.LogCheckpointResponse(stored=stored)

    # -------------------------------------------------------------- reading

    def GetCurves(
        self, request: runs_pb2.GetCurvesRequest, context: grpc.ServicerContext
    ) -> runs_pb2.GetCurvesResponse:  # noqa: N802
        violations = []
        splits = []
        for i, split in enumerate(request.splits):
            if split not in SPLIT_NAMES:
                violations.append(FieldViolation(f"splits[{i}]", f"unknown split {split}"))
            else:
                splits.append(SPLIT_NAMES[split])
        if request.max_points < 0 or request.max_points == 1:
            violations.append(
                FieldViolation("max_points", f"{request.max_points}: use 0 (all) or >= 2")
            )
        if violations:
            invalid(context, violations)
        try:
            series = self._store.read_series(
                request.run_id, splits=splits, series=list(request.series)
            )
            checkpoints = self._store.checkpoints(request.run_id)
        except StoreError as exc:
            store_abort(context, exc)
        metric_series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for row in checkpoints:
            if splits and row.split not in splits:
                continue
            for name, value in row.metrics.items():
                steps, values = metric_series.setdefault((row.split, name), ([], []))
                steps.append(row.step)
                values.append(value)
        return runs_pb2.GetCurvesResponse(
            series=[_series_to_pb(s, request.max_points) for s in series],
            checkpoint_metrics=[
                runs_pb2.Series(
                    split=SPLIT_ENUMS[split],
                    name=name,
                    steps=steps,
                    values=values,
                    total_points=len(steps),
                )
                for (split, name), (steps, values) in sorted(metric_series.items())
            ],
        )

    def ListEvaluationSteps(  # noqa: N802
        self, request: runs_pb2.ListEvaluationStepsRequest, context: grpc.ServicerContext
    ) -> runs_pb2.ListEvaluationStepsResponse:
        if request.split and request.split not in SPLIT_NAMES:
            invalid(context, [FieldViolation("split", f"unknown split {request.split}")])
        try:
            rows = self._store.evaluation_steps(
                request.run_id, split=SPLIT_NAMES.get(request.split, "")
            )
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.ListEvaluationStepsResponse(
            steps=[
                runs_pb2.EvaluationStep(
                    split=SPLIT_ENUMS[r.split],
                    step=r.step,
                    specimens=r.specimens,
                    metrics=dict(r.metrics),
                )
                for r in rows
            ]
        )

    def GetSpecimens(  # noqa: N802
        self, request: runs_pb2.GetSpecimensRequest, context: grpc.ServicerContext
    ) -> runs_pb2.GetSpecimensResponse:
        violations: list[FieldViolation] = []
        if request.split not in SPLIT_NAMES:
            violations.append(FieldViolation("split", "must be train, validation or test"))
        page_size = _page_size(request.page_size, "page_size", violations)
        if violations:
            invalid(context, violations)
        try:
            records, token = self._store.specimens(
                request.run_id,
                SPLIT_NAMES[request.split],
                request.step,
                page_size=page_size,
                page_token=request.page_token,
            )
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.GetSpecimensResponse(
            specimens=[specimen_to_pb(r) for r in records], next_page_token=token
        )

    # -------------------------------------------------------------- later issues

    def GetVerdict(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        _missing(context, "GetVerdict", "curve diagnosis (verdicts)")

    def WatchVerdict(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        _missing(context, "WatchVerdict", "live verdict updates")

    def CompareRuns(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        _missing(context, "CompareRuns", "run comparison")


def _missing(context: grpc.ServicerContext, method: str, what: str) -> NoReturn:
    abort(
        context,
        grpc.StatusCode.UNIMPLEMENTED,
        f"Runs.{method} is not available in this server version: {what} has not been built yet",
    )


def _box_pb(box: tuple[float, float, float, float, str, float]) -> runs_pb2.SpecimenBox:
    x1, y1, x2, y2, label, confidence = box
    return runs_pb2.SpecimenBox(x1=x1, y1=y1, x2=x2, y2=y2, label=label, confidence=confidence)


def specimen_to_pb(r: SpecimenRecord) -> runs_pb2.Specimen:
    return runs_pb2.Specimen(
        specimen_id=r.specimen_id,
        prediction_text=r.prediction_text,
        reference_texts=list(r.reference_texts),
        predicted_boxes=[_box_pb(b) for b in r.predicted_boxes],
        ground_truth_boxes=[_box_pb(b) for b in r.ground_truth_boxes],
        scores=dict(r.scores),
        flags=list(r.flags),
    )
