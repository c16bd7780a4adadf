"""The evalstream.v1.Runs servicer: runs, loss ingestion, checkpoints, curves, verdicts,
comparisons and specimens. Messages are read and built by :mod:`._convert`.

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
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import grpc
import numpy as np
from evalstream.v1 import runs_pb2, runs_pb2_grpc
from grpc import aio

from evalstream_server.analysis.compare import RunSummary, compare_runs
from evalstream_server.analysis.verdict import VerdictConfig, monitor_problem
from evalstream_server.api._convert import (
    DEFAULT_SERIES,
    SMALL_PACKED,
    SPLIT_NAMES,
    STATUS_NAMES,
    TASK_NAMES,
    comparison_to_pb,
    hyper_to_python,
    point_chunk_from_pb,
    project_to_pb,
    run_to_pb,
    verdict_config_from_pb,
    verdict_to_pb,
)
from evalstream_server.api._curve_pages import points_per_answer
from evalstream_server.api._derived import derived_values
from evalstream_server.api._paging import MAX_PAGE, checked_page_size
from evalstream_server.api._scope import ProjectDenied
from evalstream_server.api._status import store_abort, store_status
from evalstream_server.api._webhooks import webhooks_from_pb
from evalstream_server.api._window import Waker, Window, settled
from evalstream_server.api.curves import CurvesMixin
from evalstream_server.api.run_update import UpdateRunMixin
from evalstream_server.api.specimens import SpecimensMixin
from evalstream_server.api.verdicts import HubClosed, VerdictHub
from evalstream_server.config import raise_hint
from evalstream_server.errors import FieldViolation
from evalstream_server.status import abort, abort_async, invalid
from evalstream_server.store import (
    InvalidInput,
    NewRun,
    NotFound,
    PointChunk,
    Store,
    StoreError,
    StoreOverloaded,
    WriteResult,
)

MAX_NAME = 256
MAX_PROJECT = 128
MAX_SERIES = 128


@dataclass(frozen=True, slots=True)
class RunsLimits:
    """Per-message limits of the Runs service (configured by flags)."""

    max_points_per_chunk: int = 1_000_000
    stream_window: int = 64
    max_message_bytes: int = 64 * 1024 * 1024  # the largest message sent (GetCurves pages)
    alert_run_webhook_hosts: tuple[str, ...] = ()  # hosts per-run webhooks may name


# ------------------------------------------------------------------ request checks


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


def verdict_config_violations(values: Mapping[str, object], path: str) -> list[FieldViolation]:
    """Problems with verdict thresholds (unknown keys, wrong types, bad values)."""
    try:
        problems = VerdictConfig.from_mapping(values).validate()
    except ValueError as exc:
        return [FieldViolation(path, str(exc))]
    return [
        FieldViolation(f"{path}.monitor" if p.startswith("monitor") else path, p) for p in problems
    ]


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
            FieldViolation(
                "steps",
                f"{n} points, at most {limits.max_points_per_chunk} per chunk; "
                f"send smaller chunks, or {raise_hint('max_points_per_chunk')}",
            )
        )
    if n and not violations:
        # Small chunks (one point a step is common) in Python: numpy's reductions
        # cost more than they save below a few dozen elements.
        if n <= SMALL_PACKED:
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


@dataclass(frozen=True, slots=True)
class _Ended:
    """How a StreamLoss request stream ended: None when the client half-closed."""

    error: BaseException | None


class RunsServicer(CurvesMixin, SpecimensMixin, UpdateRunMixin, runs_pb2_grpc.RunsServicer):
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
        self._page_points = points_per_answer(limits.max_message_bytes)  # GetCurves
        self._verdicts = verdicts
        self._observe_ack = observe_ack  # seconds from a chunk's receipt to its durable ack
        self._waker: Waker | None = None  # StreamLoss's, for the server's event loop

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
        webhooks = webhooks_from_pb(
            request.alert_webhooks, self._limits.alert_run_webhook_hosts, violations
        )
        violations += verdict_config_violations(
            verdict_config_from_pb(request.verdict_config), "verdict_config"
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
                    verdict_config=verdict_config_from_pb(request.verdict_config),
                    alert_webhooks=webhooks,
                )
            )
        except StoreError as exc:
            store_abort(context, exc)
        return run_to_pb(run, derived_values(run, self._store))

    def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Run:  # noqa: N802
        if request.project or request.name or not request.run_id:
            return self._get_run_by_name(request, context)
        try:
            run = self._store.get_run(request.run_id)
            return run_to_pb(run, derived_values(run, self._store))
        except StoreError as exc:
            store_abort(context, exc)

    def _get_run_by_name(
        self, request: runs_pb2.GetRunRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Run:
        """GetRun by project and name; another project's run answers as a missing one does."""
        violations = []
        if request.run_id:
            violations.append(
                FieldViolation("run_id", "give run_id, or project and name, not both")
            )
        elif not request.project or not request.name:
            missing = "name" if request.project else "project"
            violations.append(
                FieldViolation(missing, "required: give run_id, or both project and name")
            )
        if violations:
            invalid(context, violations)
        try:
            run = self._store.find_run(request.project, request.name)
            return run_to_pb(run, derived_values(run, self._store))
        except (NotFound, ProjectDenied):
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"run named {request.name!r} not found in project {request.project!r}",
            )
        except StoreError as exc:
            store_abort(context, exc)

    def ListProjects(  # noqa: N802
        self, request: runs_pb2.ListProjectsRequest, context: grpc.ServicerContext
    ) -> runs_pb2.ListProjectsResponse:
        violations: list[FieldViolation] = []
        page_size = checked_page_size(request.page_size, "page_size", violations)
        if violations:
            invalid(context, violations)
        try:
            projects, token = self._store.list_projects(
                page_size=page_size, page_token=request.page_token
            )
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.ListProjectsResponse(
            projects=[project_to_pb(p) for p in projects], next_page_token=token
        )

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
        page_size = checked_page_size(request.page_size, "page_size", violations)
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
            return run_to_pb(run, derived_values(run, self._store))
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
            self._waker = Waker(loop)
        waker = self._waker
        window: Window[_Pending | _Ended] = Window(loop, self._limits.stream_window)
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
        item.chunk = point_chunk_from_pb(chunk)
        item.future = self._store.submit_points(item.chunk)
        return item

    async def _ack(
        self, item: _Pending, context: aio.ServicerContext, waker: Waker
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
                await settled(item.future, waker)
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

    # -------------------------------------------------------------- verdicts

    def _overrides(
        self, pb: runs_pb2.VerdictConfig, context: grpc.ServicerContext
    ) -> Mapping[str, object]:
        overrides: Mapping[str, object] = verdict_config_from_pb(pb)
        violations = verdict_config_violations(overrides, "config")
        if violations:
            invalid(context, violations)
        return overrides

    def _check_monitor(
        self, run_id: str, overrides: Mapping[str, object], context: grpc.ServicerContext
    ) -> None:
        """A requested monitor the run does not log is refused, never silently off.

        Raises:
            NotFound: unknown run (the caller maps it).
        """
        monitor = overrides.get("monitor")
        if not isinstance(monitor, str):
            return
        problem = monitor_problem(monitor, self._verdicts.logged(run_id))
        if problem:
            invalid(
                context,
                [FieldViolation("config.monitor", f"{problem}; give one of them")],
            )

    def GetVerdict(
        self, request: runs_pb2.GetVerdictRequest, context: grpc.ServicerContext
    ) -> runs_pb2.Verdict:  # noqa: N802
        overrides = self._overrides(request.config, context)
        try:
            self._store.get_run(request.run_id)  # the caller's scope: the hub's cache has none
            self._check_monitor(request.run_id, overrides, context)
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
            self._check_monitor(request.run_id, overrides, context)
            for verdict in self._verdicts.watch(
                request.run_id, overrides, active=context.is_active
            ):
                yield verdict_to_pb(request.run_id, verdict)
        except StoreError as exc:
            store_abort(context, exc)
        except ValueError as exc:  # the run's stored thresholds do not validate
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"verdict_config: {exc}")
        except HubClosed:
            abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; watch again once it is back "
                "(the evalstream client reconnects by itself)",
            )

    def run_changes(self, run_id: str, context: grpc.ServicerContext) -> Iterator[bool]:
        """Wakes on each write to the run, as WatchVerdict does (not an RPC: the HTTP API's
        stream of new points reads the points itself); True once the run has finished.

        The caller's scope applies as in GetVerdict: another project's run is NOT_FOUND.
        """
        try:
            self._store.get_run(run_id)
            yield from self._verdicts.changes(run_id, active=context.is_active)
        except StoreError as exc:
            store_abort(context, exc)
        except HubClosed:
            abort(
                context,
                grpc.StatusCode.UNAVAILABLE,
                "the server is shutting down; open the stream again once it is back",
            )

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
