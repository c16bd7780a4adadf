"""Client and AsyncClient: the thin evalstream client's I/O (grpcio and protobuf only, no torch).

Each method checks nothing and builds nothing itself: it hands one operation
of `evalstream._base` (the shared request/reply layer) to its client's driver,
`_drive` for unary plans and `_stream` for streams, which send it with
blocking calls (`Client`) or awaits (`AsyncClient`) and map gRPC errors to
`evalstream.errors` at this boundary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, ParamSpec, TypeVar, cast

import grpc
import grpc.aio

from evalstream import _base, _curves, _specimen_reads
from evalstream._base import (
    BaseClient,
    Follow,
    Plan,
    RunRef,
    Stream,
)
from evalstream._export import AsyncClientExport, ClientExport
from evalstream._points import check_logger_options
from evalstream._records import EvaluationStep, ProjectInfo, Specimen
from evalstream._run_types import HyperValue, RunInfo, Series
from evalstream._runs import AsyncRun, Run, _SyncBridge
from evalstream._scoring_calls import AsyncScoringCalls, ScoringCalls
from evalstream._specimen_reads import RunSpecimen, SpecimenAtStep
from evalstream._verdicts import Comparison, Verdict
from evalstream.errors import EvalstreamError

_log = logging.getLogger("evalstream.client")

T = TypeVar("T")
P = ParamSpec("P")


class Client(ClientExport, ScoringCalls, BaseClient):
    """A blocking evalstream client. Use it as a context manager, or call `close`.

    Every call has a deadline: `timeout` seconds for unary calls and
    `stream_timeout` for scoring and logging streams, unless a call passes its
    own; `watch` has none (it follows its run until the run finishes). Errors are
    raised as `evalstream.errors.EvalstreamError` subclasses.

    Security: `token` is sent as ``authorization: Bearer <token>`` on every
    call. TLS is on when `ca` (the server's CA bundle, a path or PEM bytes) or
    `client_cert` and `client_key` (for mTLS) are given, or with ``tls=True``
    (the system's roots). A token is refused on a plaintext channel to a
    non-loopback host (any of the targets) unless ``insecure=True``.

    Several replicas: `target` may be a list of IP addresses (or the same
    comma-separated: ``"10.0.0.1:50051,10.0.0.2:50051"``) or one
    ``dns:///name:port``; calls go round-robin to the replicas that answer, and
    reads and idempotent writes (SetRunStatus, UpdateRun, LogCheckpoint; not
    CreateRun) are retried on UNAVAILABLE; a run's logger resends its unacked
    points through another replica (see `evalstream._targets`). With TLS over
    several addresses, certificates are checked against `tls_server_name`
    (default: the first address).

    Example:
        >>> with Client("localhost:50051") as client:  # doctest: +SKIP
        ...     report = client.score_boxes(images, iou_thresholds=[0.5])
        ...     report.overall[0].f1.value
    """

    def _connect(self) -> grpc.Channel:
        self._open_runs: set[Run] = set()
        return self._transport.channel(self._targets.channel_target, self._options)

    def _drive(self, plan: Plan[T]) -> T:
        """Runs a plan: sends each call it yields and hands it the reply (or the error)."""
        try:
            call = next(plan)
            while True:
                try:
                    reply = self._methods[call.method](
                        call.request, timeout=call.timeout or self.timeout
                    )
                except grpc.RpcError as exc:
                    call = plan.throw(self._error(exc))
                else:
                    self._reached = True
                    call = plan.send(reply)
        except StopIteration as stop:
            return cast(T, stop.value)

    def _stream(
        self, build: Callable[P, Stream[T]], *args: P.args, **kwargs: P.kwargs
    ) -> Iterator[T]:
        """Builds the stream's operation on first iteration, then yields each decoded reply."""
        op = build(*args, **kwargs)
        request = op.request if op.encode is None else map(op.encode, op.request)
        call = self._methods[op.method](request, timeout=self._deadline(op.timeout))
        try:
            for reply in call:
                self._reached = True
                yield op.decode(reply)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        finally:
            call.cancel()

    def _follow(self, follow: Follow) -> Iterator[Verdict]:
        """Runs a watch until its run finishes, reconnecting when the connection breaks."""
        while True:
            try:
                for verdict in self._stream(follow.stream):
                    if follow.fresh(verdict):
                        yield verdict
                return
            except EvalstreamError as error:
                delay = follow.retry(error)
                _log.warning(
                    "watch of run %s broke (%s); reconnecting in %.1f s",
                    follow.run_id,
                    error.code,
                    delay,
                )
                time.sleep(delay)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, flush_timeout: float = 10.0) -> None:
        """Flushes open runs (up to `flush_timeout` s each), then closes the channel.

        Points still unacknowledged after that are lost; call `Run.flush` or
        `Run.finish` first to be sure.
        """
        for run in list(self._open_runs):
            try:
                run._close_logger(flush_timeout)
            except EvalstreamError as exc:
                _log.warning("closing run %s: %s", run.id, exc)
        self._channel.close()

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        project: str,
        name: str,
        *,
        model: str = "",
        task: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        resume: bool = False,
        verdict_config: Mapping[str, Any] | None = None,
        alert_webhooks: Sequence[str | Mapping[str, str]] | None = None,
        **logger_options: Any,
    ) -> Run:
        """Creates a run (or, with `resume=True`, returns the existing one of that name).

        `verdict_config` is the run's stored verdict thresholds, e.g.
        ``{"monitor": "validation/bbox_f1@0.5", "patience": 5}`` (the fields of
        VerdictConfig; a resumed run keeps those it was created with).
        `alert_webhooks` are URLs the server POSTs an alert to when the run's verdict
        turns diverged, overfitting or not_learning: ``"https://..."`` (JSON) or
        ``{"url": "https://...", "format": "slack"}``; the server must allow their hosts.
        `logger_options` tune the background loss streamer: chunk_points,
        max_buffer_points, buffer_timeout, on_full ("block" or "drop").

        Raises:
            AlreadyExists: the name is taken in the project and `resume` is False.
        """
        plan = _base.create_run(
            project, name, model, task, hyperparameters, resume, verdict_config, alert_webhooks
        )
        check_logger_options(logger_options)
        return Run(self, self._drive(plan), **logger_options)

    def get_run(self, run: str, **logger_options: Any) -> Run:
        """A handle on an existing run, by id or ``"project/name"`` (NotFound when unknown).

        Run ids never contain "/"; the project is what comes before the first "/".
        """
        return Run(self, self._drive(_base.get_run(run)), **logger_options)

    def run_id(self, run: str) -> str:
        """The id of a run given by id (returned at once) or by ``"project/name"``."""
        return self._drive(_base.resolve_run_id(run))

    def find_run(self, project: str, name: str, **logger_options: Any) -> Run:
        """A handle on an existing run by project and name (NotFound when unknown)."""
        return Run(self, self._drive(_base.find_run(project, name)), **logger_options)

    def list_runs(
        self,
        project: str,
        *,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        page_size: int = 100,
    ) -> Iterator[RunInfo]:
        """Every run of a project that passes the filters, fetching pages as needed."""
        token = ""
        while True:
            page = _base.runs_page(project, statuses, model, hyperparameters, page_size, token)
            runs, token = self._drive(page)
            yield from runs
            if not token:
                return

    def curves(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        max_points: int = 0,
    ) -> list[Series]:
        """A run's series within [start_step, end_step] (inclusive; None: open).

        ``max_points`` > 0 downsamples each series (min/max per bucket, spikes
        kept); 0 reads every point, paged and glued whatever the series' length.
        """
        return self._drive(
            _curves.curves(
                run_id,
                splits,
                series,
                start_step=start_step,
                end_step=end_step,
                max_points=max_points,
                page_size=_curves.page_points(self._max_message_bytes),
            )
        )

    def verdict(self, run_id: str, **config: Any) -> Verdict:
        """A run's diagnosis now; keyword arguments override its stored thresholds."""
        return self._drive(_base.verdict(run_id, config))

    def watch(
        self, run_id: str, *, timeout: float | None = None, **config: Any
    ) -> Iterator[Verdict]:
        """The current verdict, then each change of it, until the run finishes.

        `run_id` may be ``"project/name"``. A watch has no deadline: it follows
        the run however long it lasts, and when the connection breaks (the server
        restarts, the network fails) it reconnects with back-off, without showing
        a verdict twice. `timeout` bounds the whole watch when given
        (DeadlineExceeded after it).
        """
        return self._follow(Follow(self.run_id(run_id), timeout, config, clock=time.monotonic))

    def compare(
        self,
        run_ids: Sequence[RunRef] = (),
        *,
        project: str = "",
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        baseline: RunRef = "",
    ) -> Comparison:
        """Compares runs: given by id or as Run handles, or a project's runs passing the filters.

        `baseline` (an id or a Run) is the run the deltas are against (default the
        first). ``print(comparison)`` shows the table `evalstream runs compare` prints.
        """
        plan = _base.compare(run_ids, project, statuses, model, hyperparameters, baseline)
        return self._drive(plan)

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health status for `service` ("" is the whole server): e.g. "SERVING"."""
        return self._drive(_base.health(service, timeout))

    # ------------------------------------------------ projects and evaluations

    def list_projects(self, *, page_size: int = 100) -> Iterator[ProjectInfo]:
        """Every project this token may see, by name, with its run counts (pages as needed)."""
        token = ""
        while True:
            projects, token = self._drive(_base.projects_page(page_size, token))
            yield from projects
            if not token:
                return

    def evaluation_steps(self, run: str, *, split: str | None = None) -> list[EvaluationStep]:
        """The steps at which a run (id or "project/name") was evaluated, of `split` or all."""
        return self._drive(_base.evaluation_steps(run, split))

    def specimens(
        self,
        run: str,
        step: int,
        *,
        split: str = "validation",
        flag: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Specimen]:
        """The specimens of one evaluation step, ground truth beside prediction (pages as needed).

        `flag` keeps those carrying that diagnosis flag, e.g. "missed_detection"
        (an unknown flag raises InvalidArgument listing the known ones).
        """
        run_id, token = self.run_id(run), ""
        while True:
            plan = _base.specimens_page(run_id, step, split, flag, page_size, token)
            page, token = self._drive(plan)
            yield from page
            if not token:
                return

    def specimen_history(
        self, run: str, specimen_id: str, *, split: str = "validation"
    ) -> list[SpecimenAtStep]:
        """One specimen of a run (id or "project/name") at every evaluation step, by step.

        Raises:
            NotFound: no such run, or the run never recorded `specimen_id` in `split`.
        """
        return self._drive(_specimen_reads.specimen_history(run, specimen_id, split))

    def compare_specimens(
        self,
        runs: Sequence[RunRef],
        specimen_id: str,
        *,
        split: str = "validation",
        step: int | None = None,
        best: bool = False,
    ) -> list[RunSpecimen]:
        """One specimen in 2-20 runs side by side, at `step` or (best=True) each run's best.

        A run's best checkpoint is the step its verdict names (its monitor's best);
        an entry that lacks the specimen there has ``present=False`` and a note.

        Raises:
            ValueError: not exactly one of `step` and `best`.
            NotFound: a run is unknown, or no run given recorded the specimen in `split`.
        """
        plan = _specimen_reads.compare_specimens(runs, specimen_id, split, step, best)
        return self._drive(plan)


def _encoded(items: Any, encode: Callable[[Any], Any]) -> Any:
    """Request messages from sync or async `items`, encoded as grpc.aio consumes them."""
    if not isinstance(items, AsyncIterable):
        return map(encode, items)

    async def messages() -> AsyncIterator[Any]:
        async for item in items:
            yield encode(item)

    return messages()


class AsyncClient(AsyncClientExport, AsyncScoringCalls, BaseClient):
    """The asyncio twin of `Client`, with the same surface (methods are coroutines).

    Example:
        >>> async with AsyncClient("localhost:50051") as client:  # doctest: +SKIP
        ...     report = await client.score_boxes(images)
    """

    def _connect(self) -> grpc.aio.Channel:
        self._bridge: _SyncBridge | None = None
        return self._transport.aio_channel(self._targets.channel_target, self._options)

    async def _drive(self, plan: Plan[T]) -> T:
        """Runs a plan: awaits each call it yields and hands it the reply (or the error)."""
        try:
            call = next(plan)
            while True:
                try:
                    reply = await self._methods[call.method](
                        call.request, timeout=call.timeout or self.timeout
                    )
                except grpc.RpcError as exc:
                    call = plan.throw(self._error(exc))
                else:
                    self._reached = True
                    call = plan.send(reply)
        except StopIteration as stop:
            return cast(T, stop.value)

    async def _stream(
        self, build: Callable[P, Stream[T]], *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[T]:
        """Builds the stream's operation on first iteration, then yields each decoded reply."""
        op = build(*args, **kwargs)
        request = op.request if op.encode is None else _encoded(op.request, op.encode)
        call = self._methods[op.method](request, timeout=self._deadline(op.timeout))
        try:
            async for reply in call:
                self._reached = True
                yield op.decode(reply)
        except grpc.RpcError as exc:
            raise self._error(exc) from exc
        finally:
            call.cancel()

    async def _follow(self, follow: Follow) -> AsyncIterator[Verdict]:
        """Async twin of `Client._follow`."""
        while True:
            try:
                async for verdict in self._stream(follow.stream):
                    if follow.fresh(verdict):
                        yield verdict
                return
            except EvalstreamError as error:
                delay = follow.retry(error)
                _log.warning(
                    "watch of run %s broke (%s); reconnecting in %.1f s",
                    follow.run_id,
                    error.code,
                    delay,
                )
                await asyncio.sleep(delay)

    def _handle(self, info: RunInfo, logger_options: Mapping[str, Any]) -> AsyncRun:
        if self._bridge is None:
            self._bridge = _SyncBridge(self._targets.channel_target, self._options, self._transport)
        return AsyncRun(self, self._bridge, info, **logger_options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, *, flush_timeout: float = 10.0) -> None:
        """Flushes open runs (up to `flush_timeout` s each), then closes the channels."""
        if self._bridge is not None:
            await asyncio.to_thread(self._bridge.close, flush_timeout)
        await self._channel.close()

    # ------------------------------------------------------------------ runs

    async def create_run(
        self,
        project: str,
        name: str,
        *,
        model: str = "",
        task: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        resume: bool = False,
        verdict_config: Mapping[str, Any] | None = None,
        alert_webhooks: Sequence[str | Mapping[str, str]] | None = None,
        **logger_options: Any,
    ) -> AsyncRun:
        """Async twin of `Client.create_run`."""
        plan = _base.create_run(
            project, name, model, task, hyperparameters, resume, verdict_config, alert_webhooks
        )
        check_logger_options(logger_options)
        return self._handle(await self._drive(plan), logger_options)

    async def get_run(self, run: str, **logger_options: Any) -> AsyncRun:
        """Async twin of `Client.get_run`."""
        return self._handle(await self._drive(_base.get_run(run)), logger_options)

    async def run_id(self, run: str) -> str:
        """Async twin of `Client.run_id`."""
        return await self._drive(_base.resolve_run_id(run))

    async def find_run(self, project: str, name: str, **logger_options: Any) -> AsyncRun:
        """Async twin of `Client.find_run`."""
        return self._handle(await self._drive(_base.find_run(project, name)), logger_options)

    async def list_runs(
        self,
        project: str,
        *,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[RunInfo]:
        """Async twin of `Client.list_runs`."""
        token = ""
        while True:
            page = _base.runs_page(project, statuses, model, hyperparameters, page_size, token)
            runs, token = await self._drive(page)
            for run in runs:
                yield run
            if not token:
                return

    async def curves(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        max_points: int = 0,
    ) -> list[Series]:
        """Async twin of `Client.curves`."""
        return await self._drive(
            _curves.curves(
                run_id,
                splits,
                series,
                start_step=start_step,
                end_step=end_step,
                max_points=max_points,
                page_size=_curves.page_points(self._max_message_bytes),
            )
        )

    async def verdict(self, run_id: str, **config: Any) -> Verdict:
        """Async twin of `Client.verdict`."""
        return await self._drive(_base.verdict(run_id, config))

    async def watch(
        self, run_id: str, *, timeout: float | None = None, **config: Any
    ) -> AsyncIterator[Verdict]:
        """Async twin of `Client.watch`."""
        resolved = await self.run_id(run_id)
        async for verdict in self._follow(Follow(resolved, timeout, config, clock=time.monotonic)):
            yield verdict

    async def compare(
        self,
        run_ids: Sequence[RunRef] = (),
        *,
        project: str = "",
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        baseline: RunRef = "",
    ) -> Comparison:
        """Async twin of `Client.compare`."""
        plan = _base.compare(run_ids, project, statuses, model, hyperparameters, baseline)
        return await self._drive(plan)

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health status for `service`: e.g. "SERVING"."""
        return await self._drive(_base.health(service, timeout))

    # ------------------------------------------------ projects and evaluations

    async def list_projects(self, *, page_size: int = 100) -> AsyncIterator[ProjectInfo]:
        """Async twin of `Client.list_projects`."""
        token = ""
        while True:
            projects, token = await self._drive(_base.projects_page(page_size, token))
            for project in projects:
                yield project
            if not token:
                return

    async def evaluation_steps(self, run: str, *, split: str | None = None) -> list[EvaluationStep]:
        """Async twin of `Client.evaluation_steps`."""
        return await self._drive(_base.evaluation_steps(run, split))

    async def specimens(
        self,
        run: str,
        step: int,
        *,
        split: str = "validation",
        flag: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Specimen]:
        """Async twin of `Client.specimens`."""
        run_id, token = await self.run_id(run), ""
        while True:
            plan = _base.specimens_page(run_id, step, split, flag, page_size, token)
            page, token = await self._drive(plan)
            for specimen in page:
                yield specimen
            if not token:
                return

    async def specimen_history(
        self, run: str, specimen_id: str, *, split: str = "validation"
    ) -> list[SpecimenAtStep]:
        """Async twin of `Client.specimen_history`."""
        return await self._drive(_specimen_reads.specimen_history(run, specimen_id, split))

    async def compare_specimens(
        self,
        runs: Sequence[RunRef],
        specimen_id: str,
        *,
        split: str = "validation",
        step: int | None = None,
        best: bool = False,
    ) -> list[RunSpecimen]:
        """Async twin of `Client.compare_specimens`."""
        plan = _specimen_reads.compare_specimens(runs, specimen_id, split, step, best)
        return await self._drive(plan)
