"""Runs from the client side: the Run handle and its background loss streamer.

`Run.log` never blocks the training step in the normal case: it appends to a
bounded in-memory buffer and returns. A background thread cuts the buffer into
chunks, streams them over `Runs.StreamLoss`, and forgets a chunk only when the
server acks it as durable. If the stream breaks (server restart, network), the
thread reconnects with exponential back-off and resends every unacked chunk;
the server's writes are idempotent per (run, split, series, step), so a resend
changes nothing.

Buffer policy: the buffer holds at most `max_buffer_points` points, counting
those sent but not yet acked. When it is full, `log` blocks up to
`buffer_timeout` seconds (default 30) for room, counting each wait in
`stats.buffer_full_waits`; `on_full="drop"` drops the new points instead,
counting them in `stats.points_dropped`. A chunk refused because the store's
write queue is full (an ack with no field) is resent after a back-off, counted
in `stats.chunks_overloaded`.

No silent loss: `log` and `log_many` check each point at the call (see
:mod:`._points`) and raise `InvalidPoint` there. A chunk the server refuses
anyway (a limit only it knows, a run that is gone) is not resent: it is kept
in `Run.refusals` and raised as `PointsRefused` at the run's next `log`,
`log_many`, `flush` or `finish`, naming the steps and the server's reason; and
`finish()` never marks a run with refused points "finished" (it marks it
"failed" and raises). A stream that stops for good with points unacknowledged
makes `flush` and `finish` raise too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from evalstream import _base
from evalstream._export import AsyncRunExport, RunExport
from evalstream._points import (
    MAX_SERIES,
    MAX_STEP,
    check_logger_options,
    check_series,
    check_split,
    check_step,
    check_value,
    floats_list,
    steps_list,
)
from evalstream._records import EvaluationStep, Specimen
from evalstream._run_types import (
    SPLIT_NAMES,
    STATUSES,
    Checkpoint,
    LoggerStats,
    RunInfo,
    Series,
    hyper_pb,
)
from evalstream._run_update import AsyncRunUpdate, RunUpdate
from evalstream._specimen_reads import SpecimenAtStep
from evalstream._transport import Transport
from evalstream._verdicts import Verdict
from evalstream.errors import (
    DeadlineExceeded,
    EvalstreamError,
    InvalidPoint,
    PointsRefused,
    Refusal,
    ResourceExhausted,
    from_grpc,
)
from evalstream.v1 import runs_pb2

if TYPE_CHECKING:
    from evalstream.v1 import runs_pb2_grpc

__all__ = ["STATUSES", "AsyncRun", "LoggerStats", "Refusal", "Run", "RunInfo", "Series", "hyper_pb"]

log = logging.getLogger("evalstream.client")


@dataclass
class _Key:
    split: Any
    series: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)


class LossStreamer:
    """Buffers points and streams them in the background until acked (see the module docs)."""

    def __init__(
        self,
        stub: runs_pb2_grpc.RunsStub,
        run_id: str,
        *,
        chunk_points: int = 10_000,
        max_buffer_points: int = 1_000_000,
        buffer_timeout: float = 30.0,
        on_full: str = "block",
        stream_timeout: float = 3600.0,
        max_backoff: float = 5.0,
        stats: LoggerStats | None = None,
        refusals: list[Refusal] | None = None,
    ) -> None:
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full must be 'block' or 'drop', not {on_full!r}")
        self._stub = stub
        self._run_id = run_id
        self._chunk_points = chunk_points
        self._max_points = max_buffer_points
        self._buffer_timeout = buffer_timeout
        self._on_full = on_full
        self._stream_timeout = stream_timeout
        self._max_backoff = max_backoff
        self._cond = threading.Condition()
        self._buffer: dict[tuple[int, str], _Key] = {}
        self._buffered = 0
        self._unacked: OrderedDict[int, runs_pb2.LossChunk] = OrderedDict()
        self._unacked_points = 0
        self._sequence = 0
        self._closing = False
        self._done = False
        self._stopped: BaseException | None = None  # why the stream thread ended early
        self.stats = LoggerStats() if stats is None else stats
        self.refusals: list[Refusal] = [] if refusals is None else refusals
        self.unraised: list[Refusal] = []  # refusals not yet raised to the caller
        self._thread = threading.Thread(
            target=self._run, name=f"evalstream-loss-{run_id}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------ producer side

    def add(
        self,
        split: Any,
        series: str,
        steps: Sequence[int],
        values: Sequence[float],
        walls: Sequence[float] | None,
    ) -> None:
        n = len(steps)
        with self._cond:
            if self._closing:
                raise RuntimeError("this run's logger is closed")
            if self._buffered + self._unacked_points + n > self._max_points:
                if self._on_full == "drop":
                    self.stats.points_dropped += n
                    return
                self.stats.buffer_full_waits += 1
                room = self._cond.wait_for(
                    lambda: (
                        self._buffered + self._unacked_points + n <= self._max_points or self._done
                    ),
                    timeout=self._buffer_timeout,
                )
                if not room:
                    raise ResourceExhausted(
                        f"loss buffer full: {self._buffered + self._unacked_points} points not yet "
                        f"acknowledged after {self._buffer_timeout} s (is the server reachable?)",
                        code="RESOURCE_EXHAUSTED",
                    )
            key = self._buffer.get((split, series))
            if key is None:
                key = self._buffer[(split, series)] = _Key(split, series)
            key.steps.extend(steps)
            key.values.extend(values)
            if walls is not None:
                key.walls.extend(walls)
            self._buffered += n
            self.stats.points_logged += n
            self._cond.notify_all()

    def take_refusals(self) -> tuple[Refusal, ...]:
        """The refusals not yet raised to the caller (each is handed out once)."""
        with self._cond:
            taken, self.unraised = tuple(self.unraised), []
        return taken

    def flush(self, timeout: float | None) -> None:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: (self._buffered == 0 and not self._unacked) or self._done, timeout
            )
            left = self._buffered + self._unacked_points
            if not ok:
                raise DeadlineExceeded(
                    f"flush: {left} points not acknowledged after {timeout} s",
                    code="DEADLINE_EXCEEDED",
                )
            if left:  # the stream thread ended with points it could not send
                why = f" ({self._stopped!r})" if self._stopped is not None else ""
                raise EvalstreamError(
                    f"{left} logged points were never acknowledged: the loss stream "
                    f"stopped{why}; they are not stored",
                    code="DATA_LOSS",
                )

    def close(self, timeout: float | None) -> None:
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._thread.join(timeout=5)

    # ------------------------------------------------------------ the stream

    def _cut(self) -> runs_pb2.LossChunk | None:
        """Takes up to chunk_points points of one series out of the buffer (lock held)."""
        for k, key in self._buffer.items():
            if not key.steps:
                continue
            n = min(len(key.steps), self._chunk_points)
            with_walls = len(key.walls) == len(key.steps)
            self._sequence += 1
            chunk = runs_pb2.LossChunk(
                sequence=self._sequence,
                run_id=self._run_id,
                split=key.split,
                series=key.series,
                steps=key.steps[:n],
                values=key.values[:n],
                wall_times=key.walls[:n] if with_walls else [],
            )
            del key.steps[:n], key.values[:n]
            if with_walls:
                del key.walls[:n]
            else:
                key.walls.clear()
            if not key.steps:
                del self._buffer[k]
            self._buffered -= n
            self._unacked[chunk.sequence] = chunk
            self._unacked_points += n
            return chunk
        return None

    def _requests(
        self, resend: list[runs_pb2.LossChunk], stop: threading.Event
    ) -> Iterator[runs_pb2.LossChunk]:
        for old in resend:
            self.stats.chunks_resent += 1
            yield old
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._buffered > 0 or self._closing or stop.is_set())
                if stop.is_set():
                    return
                chunk = self._cut()
                if chunk is None:
                    if self._closing:
                        return
                    continue
            self.stats.chunks_sent += 1
            yield chunk

    def _run(self) -> None:
        try:
            self._stream()
        except BaseException as exc:  # noqa: BLE001 - kept for flush to raise
            self._stopped = exc
            log.exception("the loss stream of run %s stopped", self._run_id)
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _stream(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                if self._closing and self._buffered == 0 and not self._unacked:
                    break
                resend = list(self._unacked.values())
            stop = threading.Event()
            try:
                call = self._stub.StreamLoss(
                    self._requests(resend, stop), timeout=self._stream_timeout
                )
            except ValueError as exc:  # the client's channel was closed: nothing more can be sent
                self._stopped = exc
                break
            overloaded = False
            try:
                for ack in call:
                    if not self._acked(ack):
                        overloaded = True  # resend it (and what followed it) on a new stream
                        break
                    backoff = 0.05
            except grpc.RpcError as exc:
                error = from_grpc(exc)
                with self._cond:
                    closing = self._closing and self._buffered == 0 and not self._unacked
                if closing:
                    break
                self.stats.reconnects += 1
                log.warning(
                    "loss stream to the server broke (%s); resending unacked chunks", error.code
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            finally:
                stop.set()
                with self._cond:
                    self._cond.notify_all()
                call.cancel()
            if overloaded:
                log.info("the server's store is overloaded; resending in %.2f s", backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    def _acked(self, ack: runs_pb2.LossAck) -> bool:
        """Settles an acked chunk; False when it was refused for load and must be resent."""
        with self._cond:
            if not ack.accepted and not ack.field and ack.sequence in self._unacked:
                # Refused with no field: the store's write queue was full ("retry
                # later"), not the points. Kept in _unacked, so resent.
                self.stats.chunks_overloaded += 1
                return False
            chunk = self._unacked.pop(ack.sequence, None)
            if chunk is None:
                return True
            n = len(chunk.steps)
            self._unacked_points -= n
            if ack.accepted:
                self.stats.points_acked += n
            else:
                self.stats.chunks_refused += 1
                refusal = Refusal(
                    ack.sequence,
                    ack.reason,
                    ack.field,
                    SPLIT_NAMES.get(chunk.split, str(chunk.split)),
                    chunk.series,
                    tuple(chunk.steps),
                )
                self.refusals.append(refusal)
                self.unraised.append(refusal)
                log.warning("the server refused logged points: %s", refusal.describe())
            self._cond.notify_all()
            return True


class Run(RunExport, RunUpdate):
    """A handle on one run: log loss points and checkpoints, flush, finish.

    Use it as a context manager: leaving the block flushes and marks the run
    finished (failed when an exception escapes).

    Example:
        >>> hypers = {"learning_rate": 3e-4}
        >>> with client.create_run("vqa", "run-1", hyperparameters=hypers) as run:  # doctest: +SKIP
        ...     for step in range(1000):
        ...         run.log(step, loss=train_step(), learning_rate=sched.get_last_lr()[0])
        ...     run.log_checkpoint(1000, {"bbox_f1@0.5": 0.82}, split="validation")
    """

    def __init__(self, client: Any, info: RunInfo, **streamer_options: Any) -> None:
        check_logger_options(streamer_options)
        self._client = client
        self.info = info
        self._streamer_options = streamer_options
        self._streamer: LossStreamer | None = None
        self._lock = threading.Lock()
        self._stats = LoggerStats()
        self._refusals: list[Refusal] = []

    @property
    def id(self) -> str:
        return self.info.id

    def _logger(self) -> LossStreamer:
        with self._lock:
            if self._streamer is None:
                self._streamer = LossStreamer(
                    self._client._runs,
                    self.info.id,
                    stats=self._stats,
                    refusals=self._refusals,
                    **self._streamer_options,
                )
                self._client._open_runs.add(self)
            return self._streamer

    def _close_logger(self, timeout: float | None) -> None:
        with self._lock:
            streamer, self._streamer = self._streamer, None
        self._client._open_runs.discard(self)
        if streamer is not None:
            streamer.close(timeout)

    @property
    def stats(self) -> LoggerStats:
        """Counters of the background streamer (all zero before the first `log`)."""
        return self._stats

    @property
    def refusals(self) -> list[Refusal]:
        """Chunks the server refused, with its reasons (raised too: see `PointsRefused`)."""
        return list(self._refusals)

    def _raise_refused(self) -> None:
        """Raises the refusals that came in since the last call (each once)."""
        streamer = self._streamer
        if streamer is not None and streamer.unraised:
            refused = streamer.take_refusals()
            if refused:
                raise PointsRefused(refused)

    def log(
        self, step: int, *, split: str = "train", wall_time: float | None = None, **series: float
    ) -> None:
        """Logs one step's values, e.g. ``run.log(10, loss=0.71, learning_rate=3e-4)``.

        Returns at once; points are streamed in the background. NaN and infinite
        values are sent as they are (they are evidence of divergence).

        Raises:
            InvalidPoint: (a ValueError) a step that is not an integer >= 0, a value
                that is not a number, an unknown split, a series name over 128
                characters; nothing of the call is logged.
            PointsRefused: the server refused points of earlier calls (this call's
                points are logged).
        """
        if not series:
            raise ValueError("log needs at least one value, e.g. loss=0.5")
        split_enum = check_split(split)
        if type(step) is not int or not 0 <= step <= MAX_STEP:
            step = check_step(step)
        wall = time.time() if wall_time is None else check_value(wall_time, field="wall_time")
        for name, value in series.items():
            if type(value) is not float or len(name) > MAX_SERIES:
                # Checked (and converted) only off the common path: all floats.
                series = {check_series(k): check_value(v, field=k) for k, v in series.items()}
                break
        logger = self._logger()
        for name, value in series.items():
            logger.add(split_enum, name, (step,), (value,), (wall,))
        if logger.unraised:
            self._raise_refused()

    def log_many(
        self,
        steps: Sequence[int],
        values: Sequence[float],
        *,
        split: str = "train",
        series: str = "loss",
        wall_times: Sequence[float] | None = None,
    ) -> None:
        """Logs many points of one series at once (e.g. backfilling history).

        `steps` are integers >= 0 (integral floats are taken); `values` numbers,
        NaN and infinities included; numpy arrays and tensors are fine.

        Raises:
            InvalidPoint: (a ValueError) lengths that differ, or a bad point: its
                index and value are in the message, `.index` and `.value`;
                nothing of the call is logged.
            PointsRefused: the server refused points of earlier calls (this call's
                points are logged).
        """
        if len(steps) != len(values):
            raise InvalidPoint(
                f"{len(steps)} steps but {len(values)} values: one value per step",
                field="values",
            )
        if wall_times is not None and len(wall_times) != len(steps):
            raise InvalidPoint(
                f"{len(wall_times)} wall times but {len(steps)} steps: one per step, or none",
                field="wall_times",
            )
        split_enum = check_split(split)
        check_series(series)
        step_ints = steps_list(steps)
        value_floats = floats_list(values)
        walls = floats_list(wall_times, field="wall_times") if wall_times is not None else None
        logger = self._logger()
        for start in range(0, len(step_ints), 100_000):
            end = start + 100_000
            logger.add(
                split_enum,
                series,
                step_ints[start:end],
                value_floats[start:end],
                walls[start:end] if walls else None,
            )
        if logger.unraised:
            self._raise_refused()

    def log_checkpoint(
        self, step: int, metrics: Mapping[str, float], *, split: str = "validation"
    ) -> int:
        """Records evaluation metrics at a step (synchronous); returns how many were stored."""
        return self._client._drive(  # type: ignore[no-any-return]
            _base.log_checkpoint(self.id, step, metrics, split)
        )

    def flush(self, timeout: float | None = None) -> None:
        """Blocks until every logged point is acknowledged as durable (or refused).

        Raises:
            DeadlineExceeded: when points are still unacknowledged after `timeout` seconds.
            PointsRefused: the server refused points logged since the last raise.
        """
        if self._streamer is not None:
            self._streamer.flush(timeout)
            self._raise_refused()

    def _final_status(self, status: str) -> tuple[str, PointsRefused | None]:
        """The status `finish` sets: "failed" instead of "finished" when points were refused."""
        if status == "finished" and self._refusals:
            return "failed", PointsRefused(tuple(self._refusals))
        return status, None

    def finish(self, status: str = "finished", *, timeout: float | None = 60.0) -> RunInfo:
        """Flushes, stops the streamer and sets the run's status.

        A run some of whose points the server refused is never marked "finished":
        ``finish()`` marks it "failed" and raises `PointsRefused` listing every
        refusal (``run.set_status("finished")`` says you accept the loss). With
        another status (e.g. "failed" when leaving a ``with`` block on an
        exception) the status is set and nothing more is raised.

        Raises:
            PointsRefused: points were refused; the run is now "failed".
            DeadlineExceeded: points still unacknowledged after `timeout` s; the
                status is not changed.
            EvalstreamError: (DATA_LOSS) the loss stream stopped with points never
                acknowledged; the status is not changed.
        """
        _base.check_status(status)
        self._close_logger(timeout)
        final, refused = self._final_status(status)
        info = self.set_status(final)
        if refused is not None:
            raise refused
        return info

    def set_status(self, status: str) -> RunInfo:
        """Sets the run's status ("running", "finished", "failed", "killed")."""
        self.info = self._client._drive(_base.set_status(self.id, status))
        return self.info

    def refresh(self) -> RunInfo:
        """Reads the run again (status, derived hyperparameters)."""
        self.info = self._client._drive(_base.get_run(self.id))
        return self.info

    def curves(
        self,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        max_points: int = 0,
    ) -> list[Series]:
        """The run's series within [start_step, end_step] (inclusive), see `Client.curves`."""
        return self._client.curves(
            self.id,
            splits=splits,
            series=series,
            start_step=start_step,
            end_step=end_step,
            max_points=max_points,
        )

    def verdict(self, **config: Any) -> Verdict:
        """The run's diagnosis now; keyword arguments override its thresholds (patience=5, ...)."""
        return self._client.verdict(self.id, **config)  # type: ignore[no-any-return]

    def watch(self, *, timeout: float | None = None, **config: Any) -> Iterator[Verdict]:
        """The current verdict, then each change, until the run finishes (see `Client.watch`)."""
        return self._client.watch(self.id, timeout=timeout, **config)  # type: ignore[no-any-return]

    def checkpoint(self, step: int, split: str = "validation") -> Checkpoint:
        """This run's checkpoint at `step`, for ``checkpoint=`` of the scoring calls.

        Scoring with it records the figures as the step's checkpoint metrics and
        every image or pair as a specimen (`specimens`).
        """
        return Checkpoint(self.id, step, split)

    def evaluation_steps(self, split: str | None = None) -> list[EvaluationStep]:
        """The steps at which the run was evaluated (of `split`, or all): metrics, flag counts."""
        return self._client.evaluation_steps(self.id, split=split)  # type: ignore[no-any-return]

    def specimens(
        self, step: int, split: str = "validation", flag: str | None = None
    ) -> Iterator[Specimen]:
        """The specimens of one evaluation step, ground truth beside prediction (paged).

        `flag` keeps only those carrying that diagnosis flag, e.g. "missed_detection".
        """
        return self._client.specimens(  # type: ignore[no-any-return]
            self.id, step, split=split, flag=flag
        )

    def specimen_history(self, specimen_id: str, split: str = "validation") -> list[SpecimenAtStep]:
        """One specimen at every evaluation step of the run, by step (`Client.specimen_history`)."""
        return self._client.specimen_history(  # type: ignore[no-any-return]
            self.id, specimen_id, split=split
        )

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.finish("finished" if exc_type is None else "failed")


class _SyncBridge:
    """The blocking channel an AsyncClient's runs stream loss over, from their own thread.

    The loss streamer is a background thread either way; giving it a blocking
    channel keeps it off the event loop entirely.
    """

    def __init__(self, target: str, options: list[tuple[str, Any]], transport: Transport) -> None:
        self._channel = transport.channel(target, options)  # TLS and token as the client's
        from evalstream.v1 import runs_pb2_grpc as grpc_module

        self._runs = grpc_module.RunsStub(self._channel)
        self._open_runs: set[Run] = set()

    def close(self, flush_timeout: float) -> None:
        for run in list(self._open_runs):
            try:
                run._close_logger(flush_timeout)
            except Exception as exc:  # noqa: BLE001 - best effort at close
                log.warning("closing run %s: %s", run.id, exc)
        self._channel.close()


class AsyncRun(AsyncRunExport, AsyncRunUpdate):
    """The asyncio twin of `Run`.

    `log` and `log_many` only append to the buffer and return (they never
    await); when the buffer is full they raise `ResourceExhausted` at once
    rather than block the event loop (or drop, with ``on_full="drop"``).
    `flush`, `finish`, `log_checkpoint` and the readers are coroutines.
    """

    def __init__(
        self, client: Any, bridge: _SyncBridge, info: RunInfo, **streamer_options: Any
    ) -> None:
        self._client = client
        streamer_options.setdefault("buffer_timeout", 0.0)
        self._run = Run(bridge, info, **streamer_options)

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def info(self) -> RunInfo:
        return self._run.info

    @property
    def stats(self) -> LoggerStats:
        return self._run.stats

    @property
    def refusals(self) -> list[Refusal]:
        return self._run.refusals

    def log(
        self, step: int, *, split: str = "train", wall_time: float | None = None, **series: float
    ) -> None:
        """As `Run.log`; never awaits."""
        self._run.log(step, split=split, wall_time=wall_time, **series)

    def log_many(
        self,
        steps: Sequence[int],
        values: Sequence[float],
        *,
        split: str = "train",
        series: str = "loss",
        wall_times: Sequence[float] | None = None,
    ) -> None:
        """As `Run.log_many`; never awaits."""
        self._run.log_many(steps, values, split=split, series=series, wall_times=wall_times)

    async def flush(self, timeout: float | None = None) -> None:
        """Waits (without blocking the loop) until every logged point is acknowledged.

        Raises `PointsRefused` as `Run.flush` does.
        """
        await asyncio.to_thread(self._run.flush, timeout)

    async def log_checkpoint(
        self, step: int, metrics: Mapping[str, float], *, split: str = "validation"
    ) -> int:
        """Async twin of `Run.log_checkpoint`."""
        return await self._client._drive(  # type: ignore[no-any-return]
            _base.log_checkpoint(self.id, step, metrics, split)
        )

    async def set_status(self, status: str) -> RunInfo:
        """Async twin of `Run.set_status`."""
        self._run.info = await self._client._drive(_base.set_status(self.id, status))
        return self._run.info

    async def finish(self, status: str = "finished", *, timeout: float | None = 60.0) -> RunInfo:
        """As `Run.finish`: "failed" and `PointsRefused` when points were refused."""
        _base.check_status(status)
        await asyncio.to_thread(self._run._close_logger, timeout)
        final, refused = self._run._final_status(status)
        info = await self.set_status(final)
        if refused is not None:
            raise refused
        return info

    async def curves(
        self,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        max_points: int = 0,
    ) -> list[Series]:
        """Async twin of `Run.curves`."""
        return await self._client.curves(
            self.id,
            splits=splits,
            series=series,
            start_step=start_step,
            end_step=end_step,
            max_points=max_points,
        )

    async def verdict(self, **config: Any) -> Verdict:
        """Async twin of `Run.verdict`."""
        return await self._client.verdict(self.id, **config)  # type: ignore[no-any-return]

    def watch(self, *, timeout: float | None = None, **config: Any) -> Any:
        """Async twin of `Run.watch`: an async iterator of verdicts."""
        return self._client.watch(self.id, timeout=timeout, **config)

    def checkpoint(self, step: int, split: str = "validation") -> Checkpoint:
        """Twin of `Run.checkpoint` (no call: it only names the checkpoint)."""
        return Checkpoint(self.id, step, split)

    async def evaluation_steps(self, split: str | None = None) -> list[EvaluationStep]:
        """Async twin of `Run.evaluation_steps`."""
        return await self._client.evaluation_steps(  # type: ignore[no-any-return]
            self.id, split=split
        )

    def specimens(
        self, step: int, split: str = "validation", flag: str | None = None
    ) -> AsyncIterator[Specimen]:
        """Async twin of `Run.specimens`: an async iterator of specimens."""
        return self._client.specimens(  # type: ignore[no-any-return]
            self.id, step, split=split, flag=flag
        )

    async def specimen_history(
        self, specimen_id: str, split: str = "validation"
    ) -> list[SpecimenAtStep]:
        """Async twin of `Run.specimen_history`."""
        return await self._client.specimen_history(  # type: ignore[no-any-return]
            self.id, specimen_id, split=split
        )

    async def __aenter__(self) -> AsyncRun:
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        await self.finish("finished" if exc_type is None else "failed")
