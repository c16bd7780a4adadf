"""The embedded run store: one SQLite file in the data directory, WAL, group commit.

Every write goes through a bounded queue to ONE writer (`_writes.Writer`), on a
thread of this process or in a process of its own (`_link`), which runs all that
is queued in one transaction and acks each write only once its COMMIT returned
(``synchronous=FULL``: an ack survives a power loss). Reads run in snapshots on
pooled connections (`_pool`) beside the writer. Reference: SQLite's write-ahead
log, https://www.sqlite.org/wal.html.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from evalstream_server.store._codec import _validate_chunk
from evalstream_server.store._records import (
    _group_checkpoints,
    _group_evaluation_steps,
    _row_to_run,
    _specimen_from_json,
    _specimen_to_json,
)
from evalstream_server.store._types import (
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
    StoreClosed,
    StoreError,
    StoreOverloaded,
    WriteResult,
)
from evalstream_server.store.sqlite import _reads
from evalstream_server.store.sqlite._link import _START_TIMEOUT_S, WriterLink
from evalstream_server.store.sqlite._ops import _MAX_BATCH, _Done, _Failed, _Op
from evalstream_server.store.sqlite._pool import _READERS, SYNCHRONOUS_LEVELS, ReadPool
from evalstream_server.store.sqlite._writes import Writer, open_writer_connection

if TYPE_CHECKING:
    import asyncio

# Runs past this many in the data-version dict start it over (see `data_version`).
_MAX_VERSIONS = 65536
_CONTROL_WAIT_S = 10.0
_WRITERS = ("thread", "process")


class SQLiteStore:
    """The embedded ``Store``: a SQLite file, WAL, one group-committing writer.

    Args:
        path: The database file (created with its parent directory if missing).
        max_queue: Capacity of the write queue; beyond it writes are refused with
            StoreOverloaded.
        synchronous: SQLite's synchronous level: "FULL" (default: an ack survives
            power loss), "EXTRA", or "NORMAL" (survives a process crash only).
        readers: The most read connections open at once; a read finding all of
            them busy waits for one (up to ``_BUSY_TIMEOUT_MS``, then
            StoreOverloaded).
        on_commit: Called with the seconds from BEGIN to COMMIT of each transaction.
        writer: Where the writer runs: "thread" (default), or "process", a
            process of its own (see `_link`: what the server uses, so that its
            event loop and the writer do not share a GIL).

    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     store = SQLiteStore(Path(d) / "evalstream.db")
    ...     run = store.create_run(NewRun(project="p", name="baseline"))
    ...     chunk = PointChunk(run.id, "train", "loss", np.arange(3), np.array([3.0, 2.0, 1.5]))
    ...     first, again = store.write_points(chunk), store.write_points(chunk)
    ...     series = store.read_series(run.id)
    ...     store.close()
    >>> first, again
    (WriteResult(stored=3, duplicates=0, changed=0), WriteResult(stored=0, duplicates=3, changed=0))
    >>> series[0].name, series[0].values.tolist()
    ('loss', [3.0, 2.0, 1.5])
    """

    def __init__(
        self,
        path: Path,
        *,
        max_queue: int = 1024,
        synchronous: str = "FULL",
        on_commit: Callable[[float], None] | None = None,
        readers: int = _READERS,
        writer: str = "thread",
    ) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise InvalidInput(f"max_queue must be >= 1, got {max_queue!r}", field="max_queue")
        if isinstance(readers, bool) or not isinstance(readers, int) or readers < 1:
            raise InvalidInput(f"readers must be >= 1, got {readers!r}", field="readers")
        level = synchronous.upper() if isinstance(synchronous, str) else ""
        if level not in SYNCHRONOUS_LEVELS:
            raise InvalidInput(
                f"synchronous {synchronous!r} is not one of {list(SYNCHRONOUS_LEVELS)}",
                field="synchronous",
            )
        if writer not in _WRITERS:
            raise InvalidInput(f"writer {writer!r} is not one of {list(_WRITERS)}", field="writer")
        self.path = Path(path)
        self.synchronous = level
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._on_commit = on_commit  # seconds from BEGIN to COMMIT of each transaction
        self._lock = threading.Lock()  # guards _closed, the write queue and the versions
        self._closed = False
        # The write queue: a deque under _lock, and the writer's wake-up, signalled only
        # when it waits for work (a queue.Queue takes two more locks per write).
        self._pending: deque[_Op[Any]] = deque()
        self._max_queue = max_queue
        self._writer_waits = False
        self._work = threading.Condition(self._lock)
        # Data versions: a run's is the value of one store-wide counter at its last
        # change; runs not in the dict (never changed, or dropped past the cap)
        # answer the floor, the counter's value when the dict was last emptied.
        self._versions: dict[str, int] = {}
        self._version_counter = 0
        self._version_floor = 0
        self._pool = ReadPool(self.path, readers)
        self.writer = writer
        self._link: WriterLink | None = None
        if writer == "process":
            # The writer process opens its own connection; this one only migrates.
            open_writer_connection(self.path, level).close()
            self._link = WriterLink(self.path, level, max_queue, self._settle)
            try:
                self._submit("_w_ping", (), "").result(timeout=_START_TIMEOUT_S)
            except BaseException:
                self._closed = True
                self._link.close()
                raise
            return
        self._writer = Writer(self.path, level)
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="evalstream-store-writer", daemon=True
        )
        self._writer_thread.start()

    @classmethod
    def open(
        cls, data_dir: Path, *, max_queue: int = 1024, synchronous: str = "FULL"
    ) -> SQLiteStore:
        """Opens (creating it) ``<data_dir>/evalstream.db``.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     store = SQLiteStore.open(Path(d))
        ...     store.path.name
        ...     store.close()
        'evalstream.db'
        """
        return cls(Path(data_dir) / "evalstream.db", max_queue=max_queue, synchronous=synchronous)

    # ------------------------------------------------------------------ the writer

    def _enqueue(self, op: _Op[Any], *, wait: float) -> None:
        """Queues ``op``; StoreOverloaded after ``wait`` s of a full queue."""
        put = self._put if self._link is None else self._link.try_submit
        deadline = time.monotonic() + wait
        while not put(op):
            if time.monotonic() >= deadline:
                raise StoreOverloaded(
                    f"the store's write queue is full ({self._max_queue} writes waiting); "
                    "retry later"
                )
            time.sleep(0.002)

    def _put(self, op: _Op[Any]) -> bool:
        """Queues ``op`` for the writer thread; False when the queue is full."""
        with self._lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            if len(self._pending) >= self._max_queue:
                return False
            self._pending.append(op)
            if self._writer_waits:
                self._writer_waits = False
                self._work.notify()
            return True

    def _submit(self, name: str, args: tuple[Any, ...], run_id: str) -> Future[Any]:
        future: Future[Any] = Future()
        self._enqueue(_Op(name, args, future, run_id), wait=_CONTROL_WAIT_S)
        return future

    def _write_loop(self) -> None:
        """The writer thread: takes what is queued, up to ``_MAX_BATCH``, as one batch."""
        writer = self._writer
        stop = False
        while not stop:
            with self._lock:
                while not self._pending and not self._closed:
                    self._writer_waits = True
                    self._work.wait()
                pending = self._pending
                batch = [pending.popleft() for _ in range(min(len(pending), _MAX_BATCH))]
                # close() refuses new writes before waking the writer, so every write
                # accepted before is taken before the writer stops.
                stop = self._closed and not pending
            ops = [op for op in batch if op.future.set_running_or_notify_cancel()]  # type: ignore[union-attr]
            if ops:
                self._settle(*writer.commit(ops))
                writer.between_batches()
        writer.close()

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Lets ``loop`` (the caller's running loop) talk to the writer process, if there is one.

        Writes submitted on the loop are then sent and settled on it, without a
        thread hand-over (see `_link`). Call on the loop's thread.
        """
        if self._link is not None:
            self._link.attach_loop(loop)

    def _settle(self, done: _Done, failed: _Failed, seconds: float | None) -> None:
        """After a batch is durable (or has failed): bumps versions, then wakes the callers."""
        if seconds is not None and self._on_commit is not None:
            self._on_commit(seconds)
        with self._lock:
            for op, _, bumps in done:
                if bumps:
                    if len(self._versions) >= _MAX_VERSIONS and op.run_id not in self._versions:
                        # Every dropped run's version is <= the counter: answering the
                        # counter for them from now on never repeats an older answer
                        # for newer data.
                        self._version_floor = self._version_counter
                        self._versions.clear()
                    self._version_counter += 1
                    self._versions[op.run_id] = self._version_counter
        for op, result, _ in done:
            op.future.set_result(result)  # type: ignore[union-attr]
        for op, err in failed:
            if not op.future.done():  # type: ignore[union-attr]
                op.future.set_exception(err)  # type: ignore[union-attr]

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
        return self._pool.read(partial(_reads._get_run, run_id=run_id))

    def find_run(self, project: str, name: str) -> RunRecord:
        """The run named ``name`` in ``project``.

        Raises:
            NotFound: no such run.
        """
        return self._pool.read(partial(_reads._find_run, project=project, name=name))

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
        sql, args = _reads._list_runs_query(
            project=project,
            statuses=statuses,
            model=model,
            filters=filters,
            after=after,
            limit=size + 1,
        )
        rows = self._pool.read(lambda conn: conn.execute(sql, args).fetchall())
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
        rows = self._pool.read(partial(_reads._project_rows, after=after, limit=size + 1))
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
        return self._pool.read(partial(_reads._saved_checkpoints, run_id=run_id))

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
            self._enqueue(
                _Op("_w_write_chunk", tuple(valid), future, valid.run_id, points=True),
                wait=0,
            )
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
        return self._pool.read(
            lambda conn: _reads._read_series(conn, run_id, splits, series, tail=0, lo=lo, hi=hi)
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
        return self._pool.read(
            lambda conn: _reads._read_page(
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
        return self._pool.read(
            lambda conn: _reads._count_points(conn, run_id, splits, series, lo=lo, hi=hi)
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
        return self._pool.read(
            lambda conn: _reads._series_chunks(conn, run_id, splits, series, lo, hi)
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
        return self._pool.read(lambda conn: _reads._read_series(conn, run_id, (), (), tail=n))

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
        return _group_checkpoints(self._pool.read(partial(_reads._checkpoint_rows, run_id=run_id)))

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
        metric_rows, count_rows = self._pool.read(
            partial(_reads._evaluation_rows, run_id=run_id, split=split)
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
        rows = self._pool.read(
            partial(
                _reads._specimen_rows,
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
        rows = self._pool.read(
            partial(
                _reads._specimen_history_rows,
                run_id=run_id,
                split=split,
                specimen_id=specimen_id,
            )
        )
        return [(int(step), _specimen_from_json(specimen_id, body)) for step, body in rows]

    # ------------------------------------------------------------------ lifecycle

    def data_version(self, run_id: str) -> int:
        """A number that grows after every durable write that changed the run.

        In memory: 0 for every run when the store opens (and for an unknown run).
        Writes that change nothing (a resent chunk) do not move it. It only ever
        grows for a run, but not by one: it is a store-wide counter's value at the
        run's last change (past ``_MAX_VERSIONS`` runs, an unchanged run may move
        up once, which only costs a cache miss).
        """
        with self._lock:
            return self._versions.get(run_id, self._version_floor)

    def close(self) -> None:
        """Makes every accepted write durable, then closes; later calls raise StoreClosed.

        Closing twice is harmless.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # nothing can be enqueued any more
            self._work.notify()
        self._pool.refuse()
        if self._link is not None:
            self._link.close()
        else:
            self._writer_thread.join()
        self._pool.close()  # one still in a read fails it with StoreClosed

    def queue_depth(self) -> int:
        """Writes waiting for the writer (for metrics)."""
        return len(self._pending) if self._link is None else self._link.depth()

    def writer_restarts(self) -> int | None:
        """Writer processes started after the first (None with the writer thread; for metrics)."""
        return None if self._link is None else self._link.restarts

    @property
    def queue_capacity(self) -> int:
        """The most writes that may wait (`max_queue`)."""
        return self._max_queue

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
