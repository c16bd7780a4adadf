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

import asyncio
import concurrent.futures
import contextvars
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import grpc
import numpy as np
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc
from google.protobuf import timestamp_pb2
from grpc import aio

from evalstream_server.analysis.compare import Comparison, RunSummary, compare_runs
from evalstream_server.analysis.diagnosis import action_items
from evalstream_server.analysis.downsample import downsample_minmax
from evalstream_server.analysis.verdict import Verdict, VerdictConfig
from evalstream_server.api._status import store_abort, store_status
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.errors import FieldViolation
from evalstream_server.status import abort, abort_async, invalid
from evalstream_server.store import (
    InvalidInput,
    NewRun,
    NotFound,
    PointChunk,
    RunRecord,
    SeriesData,
    SpecimenRecord,
    Store,
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


def verdict_config_violations(values: Mapping[str, object], path: str) -> list[FieldViolation]:
    """Problems with verdict thresholds (unknown keys, wrong types, bad values)."""
    try:
        problems = VerdictConfig.from_mapping(values).validate()
    except ValueError as exc:
        return [FieldViolation(path, str(exc))]
    return [FieldViolation(path, p) for p in problems]


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


def _page_size(value: int, field: str, violations: list[FieldViolation]) -> int:
    if value == 0:
        return DEFAULT_PAGE
    if not 1 <= value <= MAX_PAGE:
        violations.append(FieldViolation(field, f"{value} is not in [1, {MAX_PAGE}]"))
    return value


# ------------------------------------------------------------------ loss chunks


_SMALL = 32  # points; below, chunk checks run in Python


def _array(field: Any, dtype: type[np.generic]) -> np.ndarray:
    """A packed repeated field as an array: ``np.fromiter`` for a few elements, at a
    third of ``np.asarray``'s cost (which goes through the buffer protocol)."""
    n = len(field)
    return np.fromiter(field, dtype, count=n) if n <= _SMALL else np.asarray(field, dtype=dtype)


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
        # Small chunks (one point a step is common) in Python: numpy's reductions
        # cost more than they save below a few dozen elements.
        if n <= _SMALL:
            negative = min(chunk.steps) < 0
        else:
            negative = bool(np.asarray(chunk.steps, dtype=np.int64).min() < 0)
        if negative:
            i, step = next((k, s) for k, s in enumerate(chunk.steps) if s < 0)
            violations.append(FieldViolation(f"steps[{i}]", f"step {step} is negative"))
    return violations


@dataclass(slots=True)
class _Pending:
    sequence: int
    future: concurrent.futures.Future[WriteResult] | None = None
    refusal: FieldViolation | None = None
    chunk: PointChunk | None = None
    received: float = field(default_factory=time.perf_counter)


class _Waker:
    """Resolves asyncio waiters of one event loop from other threads, a burst at a time.

    The store's writer resolves a commit's futures one after another. Waking the loop
    for each (``call_soon_threadsafe``: a write to its self-pipe, a loop turn) costs
    the loop more than the waking does; here the first waiter of a burst schedules
    one drain, and the others join it while it is pending.
    """

    __slots__ = ("_lock", "_pending", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[asyncio.Future[None]] = []

    def wake(self, waiter: asyncio.Future[None]) -> None:
        """Any thread: resolve ``waiter`` on the loop soon."""
        with self._lock:
            self._pending.append(waiter)
            first = len(self._pending) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop closed: its streams are long gone
                pass

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for waiter in pending:
            if not waiter.done():  # a cancelled stream's waiter
                waiter.set_result(None)


async def _settled(future: concurrent.futures.Future[Any], waker: _Waker) -> None:
    """Waits, on the event loop, until the store's `future` (set by its writer thread) is done.

    Lighter than ``asyncio.wrap_future``: no second future to copy the result into,
    only for the chunks a stream actually has to wait for, and one loop wake-up per
    burst of commits (see `_Waker`; ``waker`` belongs to the running loop).
    """
    waiter = waker.loop.create_future()
    future.add_done_callback(lambda _: waker.wake(waiter))
    await waiter


T = TypeVar("T")


class _Window(Generic[T]):
    """A bounded FIFO from one task to one other on the same loop (a StreamLoss window).

    ``asyncio.Queue`` for one producer and one consumer, minus its costs per item:
    on Python 3.11 each ``put``/``get`` looks the running loop up, and that look-up
    is a ``getpid`` system call (several percent of a busy server's loop thread).
    """

    __slots__ = ("_getter", "_items", "_loop", "_putter", "_size")

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._size = size
        self._items: deque[T] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None

    async def put(self, item: T) -> None:
        while len(self._items) >= self._size:
            self._putter = self._loop.create_future()
            await self._putter
        self._items.append(item)
        _wake(self._getter)

    async def get(self) -> T:
        while not self._items:
            self._getter = self._loop.create_future()
            await self._getter
        item = self._items.popleft()
        _wake(self._putter)
        return item


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


@dataclass(frozen=True, slots=True)
class _Ended:
    """How a StreamLoss request stream ended: None when the client half-closed."""

    error: BaseException | None


class RunsServicer(runs_pb2_grpc.RunsServicer):
    """Runs, loss ingestion, checkpoints and specimens over a Store."""

    def __init__(
        self,
        *,
        store: Store,
        limits: RunsLimits,
        verdicts: VerdictHub,
        observe_ack: Callable[[float], None] = lambda seconds: None,
        pool: concurrent.futures.Executor | None = None,
    ) -> None:
        self._store = store
        self._pool = pool  # for StreamLoss's store reads (None: asyncio's default executor)
        self._limits = limits
        self._verdicts = verdicts
        self._observe_ack = observe_ack  # seconds from a chunk's receipt to its durable ack
        self._waker: _Waker | None = None  # StreamLoss's, for the server's event loop

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
        violations += verdict_config_violations(
            _verdict_config(request.verdict_config), "verdict_config"
        )
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
            self._verdicts.status_changed(run.id, run.status)
            return run_to_pb(run, _derived(run, self._store))
        except StoreError as exc:
            store_abort(context, exc)

    # -------------------------------------------------------------- loss

    async def StreamLoss(  # noqa: N802
        self, request_iterator: AsyncIterator[runs_pb2.LossChunk], context: aio.ServicerContext
    ) -> AsyncIterator[runs_pb2.LossAck]:
        """Acks each chunk once it is durable, in the order sent; reads up to `stream_window` ahead.

        A coroutine on the server's event loop, not a thread per stream: a reader
        task validates each chunk as it arrives and hands it to the store's writer,
        so that one group commit takes many chunks of many streams; this generator
        awaits the oldest chunk's commit and yields its ack.
        """
        loop = asyncio.get_running_loop()
        if self._waker is None or self._waker.loop is not loop:
            self._waker = _Waker(loop)
        waker = self._waker
        window: _Window[_Pending | _Ended] = _Window(loop, self._limits.stream_window)
        known_runs: set[str] = set()

        async def read() -> None:
            end: BaseException | None = None
            try:
                async for chunk in request_iterator:
                    await window.put(await self._submit(chunk, known_runs))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the responding side
                end = exc
            await window.put(_Ended(end))

        reader = asyncio.create_task(read(), name="stream-loss-reader")
        try:
            while True:
                item = await window.get()
                if isinstance(item, _Ended):
                    if item.error is None:
                        return
                    if isinstance(item.error, StoreError):
                        await abort_async(context, *store_status(item.error))
                    raise item.error
                yield await self._ack(item, context, waker)
        finally:
            reader.cancel()

    async def _submit(self, chunk: runs_pb2.LossChunk, known_runs: set[str]) -> _Pending:
        """Validates a chunk and queues it for the store (refusals are settled at once)."""
        item = _Pending(chunk.sequence)
        violations = chunk_violations(chunk, self._limits)
        if violations:
            item.refusal = violations[0]
            return item
        if chunk.run_id not in known_runs:
            # A read: off the loop, in the caller's context (the store checks its projects).
            ctx = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self._pool, ctx.run, self._store.get_run, chunk.run_id)
            except NotFound:
                item.refusal = FieldViolation("run_id", f"run {chunk.run_id!r} not found")
                return item
            known_runs.add(chunk.run_id)
        walls = _array(chunk.wall_times, np.float64) if len(chunk.wall_times) else None
        item.chunk = PointChunk(
            run_id=chunk.run_id,
            split=SPLIT_NAMES[chunk.split],
            series=chunk.series or DEFAULT_SERIES,
            steps=_array(chunk.steps, np.int64),
            values=_array(chunk.values, np.float64),
            wall_times=walls,
        )
        item.future = self._store.submit_points(item.chunk)
        return item

    async def _ack(
        self, item: _Pending, context: aio.ServicerContext, waker: _Waker
    ) -> runs_pb2.LossAck:
        """The chunk's ack, once it is durable (or refused)."""
        if item.refusal is not None:
            return runs_pb2.LossAck(
                sequence=item.sequence,
                accepted=False,
                reason=f"{item.refusal.field}: {item.refusal.description}",
                field=item.refusal.field,
            )
        assert item.future is not None  # noqa: S101 - set whenever refusal is None
        try:
            if not item.future.done():
                await _settled(item.future, waker)
            result = item.future.result()
        except StoreOverloaded as exc:
            return runs_pb2.LossAck(
                sequence=item.sequence, accepted=False, reason=str(exc), field=""
            )
        except (NotFound, InvalidInput) as exc:
            field = getattr(exc, "field", "") or "run_id"
            return runs_pb2.LossAck(
                sequence=item.sequence, accepted=False, reason=str(exc), field=field
            )
        except StoreError as exc:
            await abort_async(context, *store_status(exc))
        if result.stored and item.chunk is not None:
            c = item.chunk
            self._verdicts.points(c.run_id, c.split, c.series, c.steps, c.values)
        self._observe_ack(time.perf_counter() - item.received)
        return runs_pb2.LossAck(
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
        self._verdicts.checkpoints_changed(request.run_id)
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
        response = runs_pb2.ListEvaluationStepsResponse()
        for r in rows:
            step = response.steps.add(
                split=SPLIT_ENUMS[r.split],
                step=r.step,
                specimens=r.specimens,
                metrics=dict(r.metrics),
            )
            if r.specimens:
                try:
                    counts = self._flag_counts(request.run_id, r.split, r.step)
                except StoreError as exc:
                    store_abort(context, exc)
                step.flag_counts.update(counts)
                for flag, n, advice in action_items(counts):
                    step.actions.add(
                        flag=flag,
                        count=n,
                        advice=[runs_pb2.Advice(action=a.action, text=a.text) for a in advice],
                    )
        return response

    def _flag_counts(self, run_id: str, split: str, step: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        token = ""
        while True:
            page, token = self._store.specimens(
                run_id, split, step, page_size=MAX_PAGE, page_token=token
            )
            for specimen in page:
                for flag in specimen.flags:
                    counts[flag] = counts.get(flag, 0) + 1
            if not token:
                return counts

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

    # -------------------------------------------------------------- verdicts

    def _overrides(
        self, pb: runs_pb2.VerdictConfig, context: grpc.ServicerContext
    ) -> Mapping[str, object]:
        overrides: Mapping[str, object] = _verdict_config(pb)
        violations = verdict_config_violations(overrides, "config")
        if violations:
            invalid(context, violations)
        return overrides

    def GetVerdict(
        self, request: runs_pb2.GetVerdictRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Verdict:  # noqa: N802
        overrides = self._overrides(request.config, context)
        try:
            self._store.get_run(request.run_id)  # the caller's scope: the hub's cache has none
            verdict = self._verdicts.verdict(request.run_id, overrides)
        except StoreError as exc:
            store_abort(context, exc)
        except ValueError as exc:
            invalid(context, [FieldViolation("config", str(exc))])
        return verdict_to_pb(request.run_id, verdict)

    def WatchVerdict(  # noqa: N802
        self, request: runs_pb2.WatchVerdictRequest, context: grpc.ServicerContext
    ) -> Iterator[runs_pb2.Verdict]:
        overrides = self._overrides(request.config, context)
        try:
            self._store.get_run(request.run_id)  # the caller's scope: the hub's cache has none
            for verdict in self._verdicts.watch(
                request.run_id, overrides, active=context.is_active
            ):
                yield verdict_to_pb(request.run_id, verdict)
        except StoreError as exc:
            store_abort(context, exc)
        except ValueError as exc:  # the run's stored thresholds do not validate
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"verdict_config: {exc}")

    def _state(self, run_id: str) -> str | None:
        try:
            return self._verdicts.verdict(run_id).state
        except ValueError:  # stored thresholds that do not validate: no state, not an error
            return None

    def CompareRuns(  # noqa: N802
        self, request: runs_pb2.CompareRunsRequest, context: grpc.ServicerContext
    ) -> runs_pb2.CompareRunsResponse:
        run_ids = list(request.run_ids)
        try:
            if not run_ids:
                if not request.project:
                    invalid(context, [FieldViolation("run_ids", "give run ids, or a project")])
                listing = self.ListRuns(
                    runs_pb2.ListRunsRequest(
                        project=request.project,
                        statuses=request.statuses,
                        model=request.model,
                        hyperparameters=request.hyperparameters,
                        page_size=MAX_PAGE,
                    ),
                    context,
                )
                run_ids = [r.id for r in listing.runs]
            if not run_ids:
                abort(
                    context,
                    grpc.StatusCode.NOT_FOUND,
                    f"no runs match in project {request.project!r}",
                )
            if len(set(run_ids)) != len(run_ids):
                invalid(context, [FieldViolation("run_ids", "a run is listed twice")])
            summaries = []
            for run_id in run_ids:
                run = self._store.get_run(run_id)
                summaries.append(
                    RunSummary(
                        run_id=run.id,
                        name=run.name,
                        model=run.model,
                        hyperparameters=run.hyperparameters,
                        series=self._store.read_series(run.id, series=(DEFAULT_SERIES,)),
                        checkpoints=self._store.checkpoints(run.id),
                        verdict_config=run.verdict_config,
                        state=self._state(run.id),
                    )
                )
        except StoreError as exc:
            store_abort(context, exc)
        if request.baseline_run_id and request.baseline_run_id not in run_ids:
            invalid(
                context,
                [
                    FieldViolation(
                        "baseline_run_id",
                        f"{request.baseline_run_id!r} is not among the runs compared",
                    )
                ],
            )
        comparison = compare_runs(summaries, baseline_run_id=request.baseline_run_id or None)
        return comparison_to_pb(comparison)


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


# ------------------------------------------------------------------ verdicts to proto

RUN_STATES = {
    "insufficient_data": runs_pb2.RUN_STATE_INSUFFICIENT_DATA,
    "healthy": runs_pb2.RUN_STATE_HEALTHY,
    "underfitting": runs_pb2.RUN_STATE_UNDERFITTING,
    "overfitting": runs_pb2.RUN_STATE_OVERFITTING,
    "not_learning": runs_pb2.RUN_STATE_NOT_LEARNING,
    "unstable": runs_pb2.RUN_STATE_UNSTABLE,
    "diverged": runs_pb2.RUN_STATE_DIVERGED,
}
GRADES = {
    "": runs_pb2.CHECKPOINT_GRADE_UNSPECIFIED,
    "healthy": runs_pb2.CHECKPOINT_GRADE_HEALTHY,
    "overfitting": runs_pb2.CHECKPOINT_GRADE_OVERFITTING,
    "severe_overfitting": runs_pb2.CHECKPOINT_GRADE_SEVERE_OVERFITTING,
}


def _set_optional(message: object, **values: object) -> None:
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)


def verdict_to_pb(run_id: str, v: Verdict) -> runs_pb2.Verdict:
    pb = runs_pb2.Verdict(
        run_id=run_id,
        state=RUN_STATES.get(v.state, runs_pb2.RUN_STATE_UNSPECIFIED),
        severity=v.severity,
        summary=v.summary,
        advice=[runs_pb2.Advice(action=a.action, text=a.text) for a in v.advice],
        as_of_step=v.as_of_step,
    )
    e = v.evidence
    _set_optional(
        pb.evidence,
        train_relative_decrease=e.train_relative_decrease,
        train_recent_slope=e.train_recent_slope,
        validation_recent_slope=e.validation_recent_slope,
        gap=e.gap,
        gap_trend=e.gap_trend,
        best_validation_step=e.best_validation_step,
        first_nonfinite_step=e.first_nonfinite_step,
    )
    pb.evidence.spike_steps.extend(e.spike_steps)
    for c in v.checkpoints:
        cv = pb.checkpoints.add(step=c.step, metric=c.metric, grade=GRADES.get(c.grade, 0))
        _set_optional(cv, train_value=c.train_value, validation_value=c.validation_value, gap=c.gap)
    es = v.early_stopping
    pb.early_stopping.monitor = es.monitor
    pb.early_stopping.mode = es.mode
    pb.early_stopping.evaluations_since_best = es.evaluations_since_best
    pb.early_stopping.steps_since_best = es.steps_since_best
    pb.early_stopping.should_stop = es.should_stop
    _set_optional(pb.early_stopping, best_step=es.best_step, best_value=es.best_value)
    lc = v.loss_context
    pb.loss_context.initial_band = lc.initial_band
    pb.loss_context.final_band = lc.final_band
    pb.loss_context.caveat = lc.caveat
    _set_optional(pb.loss_context, initial_loss=lc.initial_loss, final_loss=lc.final_loss)
    return pb


def comparison_to_pb(c: Comparison) -> runs_pb2.CompareRunsResponse:
    pb = runs_pb2.CompareRunsResponse(
        differing=list(c.differing),
        pairs=[
            runs_pb2.PairChange(
                run_a=p.run_a, run_b=p.run_b, changed=list(p.changed), warning=p.warning
            )
            for p in c.pairs
        ],
        best=[runs_pb2.BestRun(metric=b.metric, run_id=b.run_id, value=b.value) for b in c.best],
        baseline_run_id=c.baseline_run_id,
        incomparable=list(c.incomparable),
    )
    for r in c.rows:
        row = pb.rows.add(
            run_id=r.run_id,
            run_name=r.run_name,
            model=r.model,
            hyperparameters={k: hyper_to_pb(v) for k, v in r.hyperparameters.items()},
            best_metrics=dict(r.best_metrics),
            deltas=dict(r.deltas),
            state=RUN_STATES.get(r.state, runs_pb2.RUN_STATE_UNSPECIFIED),
        )
        _set_optional(
            row,
            final_train_loss=r.final_train_loss,
            best_train_loss=r.best_train_loss,
            final_validation_loss=r.final_validation_loss,
            best_validation_loss=r.best_validation_loss,
        )
    return pb
