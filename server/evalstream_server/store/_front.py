"""The backend-neutral half of the SQL stores: each ``Store`` method's checks and shape.

`SQLiteStore` and `PostgresStore` differ in how a write reaches the database (one
group-committing writer; writer connections per run) and how a read gets a
connection (a pool of snapshots either way); what a method checks, which query
it runs and how rows become records is the same, and lives here once. The read
queries are written with ``?`` placeholders; a backend's ``_queries`` holds them
(the PostgreSQL backend runs SQLite's through a placeholder adapter, overriding
the few that differ in dialect).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any, TypeVar

from evalstream_server.store._checks import (
    _check_hypers,
    _check_metrics,
    _check_new_run,
    _check_page_size,
    _check_saved_checkpoints,
    _check_series_read,
    _check_specimen,
    _check_split,
    _check_status,
    _check_step,
    _decode_token,
    _encode_token,
)
from evalstream_server.store._codec import _validate_chunk, _ValidChunk
from evalstream_server.store._records import (
    _group_checkpoints,
    _group_evaluation_steps,
    _row_to_run,
    _specimen_from_json,
    _specimen_to_json,
)
from evalstream_server.store._types import (
    ChangeMark,
    CheckpointRow,
    EvaluationStepRow,
    HyperValue,
    InvalidInput,
    NewRun,
    PointChunk,
    ProjectSummary,
    RunRecord,
    SeriesChunks,
    SeriesData,
    SpecimenRecord,
    StoreError,
    WriteResult,
)

T = TypeVar("T")

_MAX_VERSIONS = 65536


class DataVersions:
    """Per-run data versions in memory: what `Store.data_version` answers.

    0 for every run at first (and for an unknown run). A bump sets the run's version
    to a store-wide counter's next value, so a run's version only ever grows, though
    not by one. Past ``_MAX_VERSIONS`` runs every remembered run is dropped and the
    floor (what an unremembered run answers) rises to the counter: a dropped run may
    then move up once, which only costs its caches a miss, and never repeats an older
    answer for newer data. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._counter = 0
        self._floor = 0

    def get(self, run_id: str) -> int:
        with self._lock:
            return self._versions.get(run_id, self._floor)

    def bump(self, run_ids: Iterable[str]) -> None:
        """The runs' data changed (a durable write, or news of another replica's)."""
        with self._lock:
            for run_id in run_ids:
                if len(self._versions) >= _MAX_VERSIONS and run_id not in self._versions:
                    self._floor = self._counter
                    self._versions.clear()
                self._counter += 1
                self._versions[run_id] = self._counter

    def bump_all(self) -> None:
        """Any run may have changed (news of other replicas' writes may have been lost)."""
        with self._lock:
            self._counter += 1
            self._floor = self._counter
            self._versions.clear()


class StoreFront:
    """The ``Store`` methods over three hooks a backend provides.

    ``_read(fn)`` runs ``fn(conn)`` on a read connection (a snapshot) and returns
    its result; ``_submit(name, args, run_id)`` queues the write ``name`` (a
    writer operation of the backend) and returns its future, resolved once the
    write is durable; ``_enqueue_chunk(valid, future)`` queues a point chunk
    without waiting for room. ``_queries`` is the module (or namespace) of read
    functions, as in ``store.sqlite._reads``.
    """

    _queries: Any
    _versions: DataVersions
    _on_commit: Callable[[float], None] | None

    def _read(self, fn: Callable[[Any], T]) -> T:
        raise NotImplementedError

    def _submit(self, name: str, args: tuple[Any, ...], run_id: str) -> Future[Any]:
        raise NotImplementedError

    def _enqueue_chunk(self, valid: _ValidChunk, future: Future[WriteResult]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ runs

    def create_run(self, new: NewRun) -> RunRecord:
        """Creates a run (status "running", id "r_" + 16 hex digits); durable on return.

        Raises:
            AlreadyExists: the project already has a run of that name.
            InvalidInput: an empty project or name, an unknown task, a bad hyperparameter.
        """
        hypers, verdict = _check_new_run(new)
        return self._submit("_w_create_run", (new, hypers, verdict), "").result()

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id.

        Raises:
            NotFound: no such run.
        """
        return self._read(partial(self._queries._get_run, run_id=run_id))

    def find_run(self, project: str, name: str) -> RunRecord:
        """The run named ``name`` in ``project``.

        Raises:
            NotFound: no such run.
        """
        return self._read(partial(self._queries._find_run, project=project, name=name))

    def list_runs(
        self,
        *,
        project: str,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] = {},
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[RunRecord], str]:
        """One page of runs, ordered by (created_at, id), and the next page's token.

        ``project`` "" lists every project. Hyperparameter filters are equalities:
        numbers compare numerically (``1 == 1.0``), booleans only equal booleans
        (``True != 1``), strings exactly; a NaN filter matches nothing. The token is
        "" on the last page; a page token stays valid while runs are added (runs
        created later land on later pages).

        Raises:
            InvalidInput: unknown status, bad filter, page size < 1 or a bad page token.
        """
        for status in statuses:
            _check_status(status, field="statuses")
        filters = _check_hypers(hyperparameters, field="hyperparameters")
        size = _check_page_size(page_size)
        after: tuple[float, str] | None = None
        if page_token:
            created, last_id = _decode_token(page_token, "runs", (float, str))
            after = (created, last_id)
        sql, args = self._queries._list_runs_query(
            project=project,
            statuses=statuses,
            model=model,
            filters=filters,
            after=after,
            limit=size + 1,
        )
        rows = self._read(lambda conn: conn.execute(sql, args).fetchall())
        runs = [_row_to_run(r) for r in rows[:size]]
        token = _encode_token("runs", runs[-1].created_at, runs[-1].id) if len(rows) > size else ""
        return runs, token

    def list_projects(
        self, *, page_size: int = 100, page_token: str = ""
    ) -> tuple[list[ProjectSummary], str]:
        """One page of the projects that have runs, ordered by name, and the next page's token.

        Raises:
            InvalidInput: page size < 1 or a bad page token.
        """
        size = _check_page_size(page_size)
        after = _decode_token(page_token, "projects", (str,))[0] if page_token else ""
        rows = self._read(partial(self._queries._project_rows, after=after, limit=size + 1))
        projects = [
            ProjectSummary(name=r[0], runs=int(r[1]), running=int(r[2]), updated_at=float(r[3]))
            for r in rows[:size]
        ]
        token = _encode_token("projects", projects[-1].name) if len(rows) > size else ""
        return projects, token

    def set_status(self, run_id: str, status: str) -> RunRecord:
        """Sets the run's status (any transition is allowed); durable on return.

        Raises:
            NotFound: no such run.
            InvalidInput: unknown status.
        """
        _check_status(status)
        return self._submit("_w_set_status", (run_id, status), run_id).result()

    def update_run(
        self,
        run_id: str,
        *,
        summary: Mapping[str, HyperValue] = {},
        saved_checkpoints: Mapping[int, str] | Sequence[tuple[int, str]] = (),
        hyperparameters: Mapping[str, HyperValue] = {},
    ) -> RunRecord:
        """Merges ``summary`` into the run's, records where checkpoints were saved and
        adds ``hyperparameters`` to the run's.

        A summary key given again replaces its value (floats are kept exactly, NaN
        and infinities included); a step saved again replaces its path. A
        hyperparameter the run already has with the same value (numbers compare
        numerically, as ListRuns filters do) changes nothing; an added one is found
        by ListRuns filters. Any status may be updated (a trainer records its
        runtime once it has finished). All or nothing; durable on return.

        Raises:
            NotFound: no such run.
            Conflict: a hyperparameter the run has with another value (the run's
                hyperparameters do not change; nothing of the update is applied).
            InvalidInput: a bad summary or hyperparameter key or value, a negative
                step, a path that is empty, longer than 4096 characters or holds a
                NUL, or more than 1000 saved checkpoints.
        """
        values = _check_hypers(summary, field="summary")
        saved = _check_saved_checkpoints(saved_checkpoints)
        hypers = _check_hypers(hyperparameters, field="hyperparameters")
        return self._submit("_w_update_run", (run_id, values, saved, hypers), run_id).result()

    def saved_checkpoints(self, run_id: str) -> dict[int, str]:
        """Where the run's checkpoints were saved, {step: path} in step order.

        Raises:
            NotFound: no such run.
        """
        return self._read(partial(self._queries._saved_checkpoints, run_id=run_id))

    # ------------------------------------------------------------------ points

    def submit_points(self, chunk: PointChunk) -> Future[WriteResult]:
        """Queues a chunk; the future resolves with its WriteResult once it is durable.

        Never raises: every failure arrives through the future (InvalidInput for a bad
        chunk, NotFound for an unknown run, StoreOverloaded when the queue is full,
        StoreClosed after close, StoreError when the commit failed), so that one bad
        chunk does not end a stream.
        """
        future: Future[WriteResult] = Future()
        try:
            valid = _validate_chunk(chunk)
            self._enqueue_chunk(valid, future)
        except StoreError as exc:
            future.set_exception(exc)
        return future

    def write_points(self, chunk: PointChunk, *, timeout: float | None = None) -> WriteResult:
        """Writes a chunk and returns once it is durable (``submit_points(chunk).result(timeout)``).

        Raises:
            InvalidInput: a malformed chunk (``.field`` says which part).
            NotFound: unknown run.
            StoreOverloaded: the write queue is full.
            TimeoutError: not durable within ``timeout`` s (it may still become durable).
        """
        return self.submit_points(chunk).result(timeout)

    def read_series(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[SeriesData]:
        """The run's series, each merged and sorted by step, one value per step.

        Ordered by split (train, validation, test), then name. Empty filters mean all.
        With ``start_step`` and/or ``end_step`` (inclusive), only the points in that
        range, read from the chunks that overlap it; ``total_points`` then counts
        those points.

        Raises:
            NotFound: no such run.
            InvalidInput: an unknown split, a negative bound, or start_step > end_step.
        """
        lo, hi = _check_series_read(splits, start_step, end_step)
        return self._read(
            lambda conn: self._queries._read_series(
                conn, run_id, splits, series, tail=0, lo=lo, hi=hi
            )
        )

    def read_page(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        after: tuple[str, str, int] | None = None,
        limit: int,
    ) -> list[SeriesData]:
        """At most ``limit`` points summed over the series `read_series` lists, in its order.

        From ``after`` = (split, name, step) on: that series from that step, then the
        series after it (None: from the first). Only the chunks that can hold the
        page are read, however long the series. ``total_points`` counts the points
        returned. A series with no points left is listed empty while the budget
        lasts; the list ends with the series that used the last of it.

        Raises:
            NotFound: no such run.
            InvalidInput: an unknown split, a bad range, ``after`` or ``limit`` < 1.
        """
        lo, hi = _check_series_read(splits, start_step, end_step)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInput(f"limit must be >= 1, got {limit!r}", field="limit")
        if after is not None:
            _check_split(after[0], field="after")
            _check_step(after[2], field="after")
        return self._read(
            lambda conn: self._queries._read_page(
                conn, run_id, splits, series, lo=lo, hi=hi, after=after, limit=limit
            )
        )

    def count_points(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> int:
        """How many points the series `read_series` lists hold in the range, not merging them.

        Raises:
            NotFound: no such run.
            InvalidInput: an unknown split or a bad range.
        """
        lo, hi = _check_series_read(splits, start_step, end_step)
        return self._read(
            lambda conn: self._queries._count_points(conn, run_id, splits, series, lo=lo, hi=hi)
        )

    def series_chunks(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[SeriesChunks]:
        """(min step, max step, n) of each chunk of the run's series overlapping the range.

        See `Store.series_chunks`; one indexed query per series, no blob read.

        Raises:
            NotFound: no such run.
            InvalidInput: an unknown split, a negative bound, or start_step > end_step.
        """
        lo, hi = _check_series_read(splits, start_step, end_step)
        return self._read(
            lambda conn: self._queries._series_chunks(conn, run_id, splits, series, lo, hi)
        )

    def last_points(self, run_id: str, n: int = 1) -> list[SeriesData]:
        """The last ``n`` points (largest steps) of every series of the run.

        ``total_points`` is then the number returned (at most ``n``), not the length
        of the whole series.

        Raises:
            NotFound: no such run.
            InvalidInput: n < 1.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidInput(f"n must be >= 1, got {n!r}", field="n")
        return self._read(lambda conn: self._queries._read_series(conn, run_id, (), (), tail=n))

    # ------------------------------------------------------------------ evaluations

    def log_checkpoint(
        self,
        run_id: str,
        split: str,
        step: int,
        metrics: Mapping[str, float],
        *,
        signatures: Mapping[str, str] = {},
    ) -> int:
        """Upserts metrics for (run, split, step); returns how many were stored. Durable on return.

        A metric logged again replaces its value and signature (last write wins).

        Raises:
            NotFound: no such run.
            InvalidInput: unknown split, negative step, a non-numeric metric, or a
                signature for a metric not in ``metrics``.
        """
        _check_split(split)
        step = _check_step(step)
        # SQLite stores NaN as NULL; NULL reads back as NaN.
        rows = [
            (run_id, split, step, name, None if math.isnan(value) else value, sig)
            for name, value, sig in _check_metrics(metrics, signatures)
        ]
        return self._submit("_w_upsert", ("checkpoint_metrics", run_id, rows), run_id).result()

    def checkpoints(self, run_id: str) -> list[CheckpointRow]:
        """The run's checkpoint metrics, one row per (split, step), sorted by split then step.

        Splits sort in SPLITS order (train, validation, test).

        Raises:
            NotFound: no such run.
        """
        return _group_checkpoints(
            self._read(partial(self._queries._checkpoint_rows, run_id=run_id))
        )

    def record_specimens(
        self, run_id: str, split: str, step: int, specimens: Sequence[SpecimenRecord]
    ) -> int:
        """Upserts specimens by id within (run, split, step); returns how many. Durable on return.

        A specimen recorded again replaces the stored record but keeps its place in
        the paging order (first insertion).

        Raises:
            NotFound: no such run.
            InvalidInput: unknown split, negative step, a record without an id or a bad box.
        """
        _check_split(split)
        step = _check_step(step)
        rows = [
            (run_id, split, step, rec.specimen_id, _specimen_to_json(_check_specimen(rec, i)))
            for i, rec in enumerate(specimens)
        ]

        return self._submit("_w_upsert", ("specimens", run_id, rows), run_id).result()

    def evaluation_steps(self, run_id: str, *, split: str = "") -> list[EvaluationStepRow]:
        """Steps with checkpoint metrics or specimens, sorted by split (SPLITS order) then step.

        Raises:
            NotFound: no such run.
            InvalidInput: an unknown split.
        """
        _check_split(split, allow_empty=True)
        metric_rows, count_rows = self._read(
            partial(self._queries._evaluation_rows, run_id=run_id, split=split)
        )
        return _group_evaluation_steps(metric_rows, count_rows)

    def specimens(
        self,
        run_id: str,
        split: str,
        step: int,
        *,
        page_size: int = 100,
        page_token: str = "",
        flag: str = "",
    ) -> tuple[list[SpecimenRecord], str]:
        """One page of an evaluation step's specimens (first-insertion order) and the next token.

        ``flag`` (unless "") keeps only the specimens carrying that diagnosis flag; a
        flag no specimen carries gives an empty page (the servicer checks the name).

        Raises:
            NotFound: no such run.
            InvalidInput: unknown split, page size < 1 or a bad page token.
        """
        _check_split(split)
        step = _check_step(step)
        size = _check_page_size(page_size)
        after = _decode_token(page_token, "specimens", (int,))[0] if page_token else 0
        rows = self._read(
            partial(
                self._queries._specimen_rows,
                run_id=run_id,
                split=split,
                step=step,
                after=after,
                limit=size + 1,
                flag=flag,
            )
        )
        records = [_specimen_from_json(sid, body) for _, sid, body in rows[:size]]
        token = _encode_token("specimens", rows[size - 1][0]) if len(rows) > size else ""
        return records, token

    def specimen_history(
        self, run_id: str, split: str, specimen_id: str
    ) -> list[tuple[int, SpecimenRecord]]:
        """One specimen of a split at every step that recorded it, as (step, record), by step.

        An id the split never recorded gives an empty list (the servicer says NOT_FOUND).

        Raises:
            NotFound: no such run.
            InvalidInput: unknown split.
        """
        _check_split(split)
        rows = self._read(
            partial(
                self._queries._specimen_history_rows,
                run_id=run_id,
                split=split,
                specimen_id=specimen_id,
            )
        )
        return [(int(step), _specimen_from_json(specimen_id, body)) for step, body in rows]

    def _settle(
        self,
        done: Sequence[tuple[Any, Any, int]],
        failed: Sequence[tuple[Any, BaseException]],
        seconds: float | None,
    ) -> None:
        """After a batch is durable (or has failed): bumps versions, then wakes the callers.

        ``done`` holds (op, result, bumps) and ``failed`` (op, error), each op a queued
        write of the backend with its ``run_id`` and ``future``; ``seconds`` is the
        batch's time from its first statement to COMMIT (None when it failed).
        """
        if seconds is not None and self._on_commit is not None:
            self._on_commit(seconds)
        self._versions.bump(op.run_id for op, _, bumps in done if bumps)
        for op, result, _ in done:
            op.future.set_result(result)
        for op, err in failed:
            if not op.future.done():
                op.future.set_exception(err)

    # ------------------------------------------------------------------ replicas

    def data_version(self, run_id: str) -> int:
        """A number that grows after every durable write that changed the run.

        In memory (`DataVersions`): this process's own writes, and, on a store several
        replicas share, the news of other replicas' writes (`follow`). Writes that
        change nothing (a resent chunk) do not move it.
        """
        return self._versions.get(run_id)

    def change_mark(self, run_id: str) -> ChangeMark | None:
        """None: only this process writes this store (see `Store.change_mark`)."""
        return None

    def follow(self, changed: Callable[[Sequence[str]], None], missed: Callable[[], None]) -> None:
        """Nothing to follow: only this process writes this store."""

    def is_exporter(self) -> bool:
        """True: the only replica exports (see `Store.is_exporter`)."""
        return True
