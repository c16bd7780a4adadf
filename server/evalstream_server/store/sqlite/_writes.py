"""The write path of the embedded store: the writer's connection, group commit, point
chunks (fast-path appends, merges of rewrites, tiered compaction) and the checkpointer.

One ``Writer`` runs every write, on the store's writer thread or in the writer
process (`_child`). A batch of operations (`_ops._Op`, run by method name) is one
transaction and one commit. It first runs without a SAVEPOINT per operation, its
appends gathered into one multi-row INSERT (each statement hands the GIL away and
must win it back); should an operation fail, the batch is rolled back and rerun
with a SAVEPOINT each, so that the failure stays the failing operation's own.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from evalstream_server.store._checks import _check_added_hypers
from evalstream_server.store._codec import (
    _CHUNK_COLUMNS,
    _F8,
    _I8,
    _concat_points,
    _decode_chunk,
    _merge,
    _overlay,
    _packed,
    _steps_blob,
    _ValidChunk,
)
from evalstream_server.store._compaction import _MAX_TAIL, _SMALL_CHUNK, _compaction_start
from evalstream_server.store._records import (
    _RUN_COLUMNS,
    _hyper_key,
    _new_run,
    _row_to_run,
    _run_to_row,
)
from evalstream_server.store._types import (
    AlreadyExists,
    HyperValue,
    NewRun,
    NotFound,
    RunRecord,
    StoreError,
    WriteResult,
)
from evalstream_server.store.sqlite import schema
from evalstream_server.store.sqlite._ops import _Conn, _Done, _Failed, _Op
from evalstream_server.store.sqlite._pool import connect
from evalstream_server.store.sqlite._reads import _check_run_exists

# The checkpointer thread's period, and the log size (frames of 64 KiB pages: 4096
# is 256 MB) past which the writer completes the checkpoint itself so that the log
# restarts.
_CHECKPOINT_INTERVAL_S = 0.25
_WAL_RESET_FRAMES = 4096
# What the writer remembers per series and per run is a cache of the database,
# bounded so that a server creating runs for months keeps a flat memory: the
# least recently written series' state is dropped (and read back when written
# again), and the known-runs set starts over past its cap.
_MAX_SERIES_STATES = 4096
_MAX_KNOWN_RUNS = 65536
# Rows per multi-row INSERT of deferred appends: 8 parameters a row, well below
# SQLite's 32766 parameters per statement.
_FLUSH_ROWS = 512
# Rows a write replaces by key (`Writer._w_upsert`): checkpoint metrics by
# (run, split, step, metric), specimens by (run, split, step, specimen id).
_UPSERTS = {
    "checkpoint_metrics": (
        "INSERT INTO checkpoint_metrics (run_id, split, step, metric, value, signature) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, split, step, metric) "
        "DO UPDATE SET value = excluded.value, signature = excluded.signature"
    ),
    "specimens": (
        "INSERT INTO specimens (run_id, split, step, specimen_id, body) "
        "VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, split, step, specimen_id) DO UPDATE SET body = excluded.body"
    ),
}


def _lastrowid(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:  # never after an INSERT; keeps the type an int
        raise StoreError("SQLite returned no row id after an INSERT")
    return int(cursor.lastrowid)


def open_writer_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    """The writer's connection to ``path``, its schema migrated to this code's version.

    Raises:
        StoreError: the file cannot be opened or migrated.
    """
    try:
        conn = connect(path, synchronous=synchronous, writer=True)
        schema.migrate(conn)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store at {str(path)!r}: {exc}") from exc
    return conn


class _SeriesState:
    """What the writer keeps in memory per series (writer thread only)."""

    __slots__ = ("id", "max_step", "tail")

    def __init__(self, sid: int, max_step: int, tail: list[tuple[int, int]]) -> None:
        self.id = sid
        self.max_step = max_step  # -1 while empty
        self.tail = tail  # (chunk id, points) of the trailing small chunks, in write order


class _Batch:
    """The writer's connection during one batch: BEGIN IMMEDIATE before its first statement.

    A batch of fast-path appends alone (the common case under load) runs no
    statement before its one multi-row INSERT, which the writer then runs by
    itself in autocommit mode: a statement outside a transaction is its own
    transaction, as durable on return as a COMMIT. One statement, so one GIL
    hand-over, instead of BEGIN, INSERT and COMMIT.
    """

    __slots__ = ("begun", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.begun = False

    def begin(self) -> None:
        if not self.begun:
            self.conn.execute("BEGIN IMMEDIATE")
            self.begun = True

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.begin()
        return self.conn.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        self.begin()
        return self.conn.executemany(sql, parameters)


class Writer:
    """The one writer of a store file: runs batches of operations, each batch one commit.

    Owns the write connection and the checkpointer thread. Everything here runs on
    one thread (the store's writer thread, or the writer process's loop), but the
    checkpointer, which reads ``_commits`` and sets ``_wal_frames``.
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self._wconn = open_writer_connection(path, synchronous)
        self._series: OrderedDict[tuple[str, str, str], _SeriesState] = OrderedDict()
        self._known_runs: set[str] = set()
        # Shared by the writer and the checkpointer; plain ints, each written by one thread.
        self._commits = 0  # committed batches (writer)
        # Fast-path appends not inserted yet (None: insert at once), and the id the next
        # one gets: above every id in point_chunks (max(id) + 1 but for gaps), kept
        # from batch to batch: every insert into the table sets it, a compaction's
        # DELETE is followed by its INSERT, and a rollback forgets it. None: read
        # max(id) first.
        self._deferred: list[tuple[Any, ...]] | None = None
        self._next_chunk_id: int | None = None
        self._wal_frames = 0  # frames in the log at the last checkpoint (both)
        self._stop_checkpoints = threading.Event()
        try:
            ckpt_conn = connect(path, synchronous=synchronous, writer=False, checkpointer=True)
        except sqlite3.Error as exc:
            self._wconn.close()
            raise StoreError(f"cannot open the store at {str(path)!r}: {exc}") from exc
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(ckpt_conn,),
            name="evalstream-store-checkpointer",
            daemon=True,
        )
        self._checkpointer.start()

    def close(self) -> None:
        """The writer's last step: stops the checkpointer and closes its connection."""
        self._stop_checkpoints.set()
        self._checkpointer.join()
        self._wconn.close()

    def between_batches(self) -> None:
        """Finishes the checkpoint once the log has grown past ``_WAL_RESET_FRAMES``."""
        if self._wal_frames > _WAL_RESET_FRAMES:
            self._finish_checkpoint()

    def _checkpoint_loop(self, conn: sqlite3.Connection) -> None:
        """The checkpointer thread: a PASSIVE checkpoint after new commits, at most every period."""
        seen = 0
        try:
            while not self._stop_checkpoints.wait(_CHECKPOINT_INTERVAL_S):
                commits = self._commits
                if commits == seen:
                    continue
                seen = commits
                try:
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    continue  # e.g. another process checkpointing: next period
                self._wal_frames = int(frames)
        finally:
            conn.close()

    def _finish_checkpoint(self) -> None:
        """In the writer, between batches: copies the rest of the log so that it can restart."""
        try:
            busy, _, _ = self._wconn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return
        if not busy:
            self._wal_frames = 0

    @staticmethod
    def _failure(exc: Exception) -> StoreError:
        """What an operation's future gets for an exception raised by its ``fn``."""
        if isinstance(exc, StoreError):
            return exc
        wrapped = StoreError(f"write failed: {exc}")
        wrapped.__cause__ = exc
        return wrapped

    def _rollback(self) -> None:
        """Rolls the open transaction back and drops what the writer cached from it."""
        try:
            if self._wconn.in_transaction:
                self._wconn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        # The in-memory state may be ahead of the rolled-back rows.
        self._series.clear()
        self._known_runs.clear()
        self._deferred = None
        self._next_chunk_id = None

    def _flush(self, conn: _Conn) -> None:
        """Inserts the deferred fast-path appends (in id order), in as few statements as fit."""
        rows = self._deferred
        if not rows:
            return
        self._deferred = []
        for lo in range(0, len(rows), _FLUSH_ROWS):
            part = rows[lo : lo + _FLUSH_ROWS]
            conn.execute(
                "INSERT INTO point_chunks "
                "(id, series_id, min_step, max_step, n, steps, vals, wall_times) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(part)),
                [value for row in part for value in row],
            )

    def commit(self, ops: list[_Op[Any]]) -> tuple[_Done, _Failed, float | None]:
        """Runs ``ops`` in one transaction: what was done, what failed, and the commit's seconds.

        The seconds are None when nothing was committed (the batch failed as a whole).
        """
        conn = self._wconn
        done: _Done = []
        failed: _Failed = []
        began = time.perf_counter()
        tx = _Batch(conn)
        try:
            # Optimistic: no savepoints, appends deferred (see the module docstring).
            first_failure: Exception | None = None
            self._deferred = []
            for op in ops:
                try:
                    if not op.points:
                        self._flush(tx)
                    result, bumps = getattr(self, op.name)(tx, *op.args)
                except Exception as exc:  # noqa: BLE001 - rerun below, isolated
                    first_failure = exc
                    break
                done.append((op, result, bumps))
            if first_failure is None:
                try:
                    # Nothing run yet and one statement to run: it commits by itself.
                    alone = not tx.begun and len(self._deferred) <= _FLUSH_ROWS
                    self._flush(conn if alone else tx)
                except Exception as exc:  # noqa: BLE001 - rerun below, isolated
                    first_failure = exc
            self._deferred = None
            if first_failure is not None:
                self._rollback()
                done = []
                if len(ops) == 1:
                    # Alone in its batch: the rollback was its savepoint; nothing to commit.
                    return [], [(ops[0], self._failure(first_failure))], None
                conn.execute("BEGIN IMMEDIATE")
                done, failed = self._run_isolated(conn, ops)
                conn.execute("COMMIT")
            elif tx.begun:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            error = StoreError(f"commit failed, nothing of this batch was stored: {exc}")
            return [], [(op, error) for op in ops], None
        self._commits += 1
        return done, failed, time.perf_counter() - began

    def _run_isolated(self, conn: _Conn, ops: list[_Op[Any]]) -> tuple[_Done, _Failed]:
        """Runs each operation in its own SAVEPOINT: a failing one is undone alone."""
        done: _Done = []
        failed: _Failed = []
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result, bumps = getattr(self, op.name)(conn, *op.args)
            except Exception as exc:  # noqa: BLE001 - handed to the op's future
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                if not isinstance(exc, StoreError):
                    # The in-memory series state may be ahead of the rolled-back rows.
                    self._series.clear()
                failed.append((op, self._failure(exc)))
            else:
                conn.execute("RELEASE op")
                done.append((op, result, bumps))
        return done, failed

    def _require_run(self, conn: _Conn, run_id: str) -> None:
        if run_id in self._known_runs:
            return
        _check_run_exists(conn, run_id)
        self._remember_run(run_id)

    def _remember_run(self, run_id: str) -> None:
        if len(self._known_runs) >= _MAX_KNOWN_RUNS:
            self._known_runs.clear()  # only costs a look-up per run written again
        self._known_runs.add(run_id)

    def _w_ping(self, conn: _Conn) -> tuple[None, bool]:
        """Nothing: a writer process answering it has opened the store."""
        return None, False

    def _w_create_run(
        self,
        conn: _Conn,
        new: NewRun,
        hypers: dict[str, HyperValue],
        verdict: dict[str, HyperValue],
    ) -> tuple[RunRecord, bool]:
        taken = conn.execute(
            "SELECT 1 FROM runs WHERE project = ? AND name = ?", (new.project, new.name)
        ).fetchone()
        if taken is not None:
            raise AlreadyExists(f"run named {new.name!r} already exists in project {new.project!r}")
        run = _new_run(new, hypers, verdict)
        conn.execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _run_to_row(run),
        )
        conn.executemany(
            "INSERT INTO run_hyperparameters (run_id, key, kind, num, text) VALUES (?, ?, ?, ?, ?)",
            [(run.id, k, *_hyper_key(v)) for k, v in hypers.items()],
        )
        self._remember_run(run.id)
        return run, True

    def _w_set_status(self, conn: _Conn, run_id: str, status: str) -> tuple[RunRecord, bool]:
        cur = conn.execute(
            "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?",
            (status, time.time(), run_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"run {run_id!r} not found")
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _row_to_run(row), True

    def _w_update_run(
        self,
        conn: _Conn,
        run_id: str,
        summary: dict[str, HyperValue],
        saved: dict[int, str],
        hypers: dict[str, HyperValue],
    ) -> tuple[RunRecord, bool]:
        """Merges ``summary`` into the run's (a key given again replaces its value),
        upserts its saved checkpoints by step and adds the hyperparameters it does not
        have; a changed hyperparameter refuses the whole update before any write."""
        row = conn.execute(
            "SELECT summary, hyperparameters FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        have: dict[str, HyperValue] = json.loads(row[1])
        added = _check_added_hypers(run_id, have, hypers)
        merged = {**json.loads(row[0]), **summary}
        conn.execute(
            "UPDATE runs SET summary = ?, hyperparameters = ?, updated_at = ? WHERE id = ?",
            (json.dumps(merged), json.dumps({**have, **added}), time.time(), run_id),
        )
        conn.executemany(
            "INSERT INTO run_hyperparameters (run_id, key, kind, num, text) VALUES (?, ?, ?, ?, ?)",
            [(run_id, k, *_hyper_key(v)) for k, v in added.items()],
        )
        conn.executemany(
            "INSERT INTO saved_checkpoints (run_id, step, path) VALUES (?, ?, ?) "
            "ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path",
            [(run_id, step, path) for step, path in saved.items()],
        )
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _row_to_run(row), True

    def _series_state(self, conn: _Conn, key: tuple[str, str, str]) -> _SeriesState:
        state = self._series.get(key)
        if state is not None:
            self._series.move_to_end(key)
            return state
        self._flush(conn)
        row = conn.execute(
            "SELECT id FROM series WHERE run_id = ? AND split = ? AND name = ?", key
        ).fetchone()
        if row is None:
            sid = _lastrowid(
                conn.execute("INSERT INTO series (run_id, split, name) VALUES (?, ?, ?)", key)
            )
            state = _SeriesState(sid, -1, [])
        else:
            sid = row[0]
            top = conn.execute(
                "SELECT max(max_step) FROM point_chunks WHERE series_id = ?", (sid,)
            ).fetchone()[0]
            recent = conn.execute(
                "SELECT id, n FROM point_chunks WHERE series_id = ? ORDER BY id DESC LIMIT ?",
                (sid, _MAX_TAIL),
            ).fetchall()
            tail: list[tuple[int, int]] = []
            for cid, n in recent:
                if n >= _SMALL_CHUNK:
                    break
                tail.append((cid, n))
            tail.reverse()
            state = _SeriesState(sid, -1 if top is None else int(top), tail)
        self._series[key] = state
        if len(self._series) > _MAX_SERIES_STATES:
            self._series.popitem(last=False)  # its rows are flushed (above): read back later
        return state

    def _append(
        self,
        conn: _Conn,
        state: _SeriesState,
        steps: bytes,
        values: bytes,
        walls: bytes | None,
        lo: int,
        hi: int,
        n: int,
    ) -> None:
        cid = self._insert_chunk(conn, (state.id, lo, hi, n, steps, values, walls))
        state.max_step = max(state.max_step, hi)
        if n >= _SMALL_CHUNK:
            state.tail = []
            return
        state.tail.append((cid, n))
        while (start := _compaction_start(state.tail)) is not None:
            self._compact_tail(conn, state, start)

    def _insert_chunk(self, conn: _Conn, row: tuple[Any, ...]) -> int:
        """Inserts a point_chunks row (series id, min and max step, n, blobs); its id.

        In a batch the row is deferred to `_flush` (its id given now); otherwise it
        is inserted at once.
        """
        if self._deferred is not None:
            cid = self._deferred_id(conn)
            self._deferred.append((cid, *row))
            return cid
        cid = _lastrowid(
            conn.execute(
                "INSERT INTO point_chunks "
                "(series_id, min_step, max_step, n, steps, vals, wall_times) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )
        self._next_chunk_id = cid + 1  # SQLite gave it max + 1
        return cid

    def _deferred_id(self, conn: _Conn) -> int:
        """The id of a row deferred to `_flush`: the one SQLite would give (max + 1, in order).

        The writer holds the write lock, every other insert into point_chunks
        flushes first and sets the next id from its own, and nothing else writes
        the table (see ``_next_chunk_id``).
        """
        if self._next_chunk_id is None:
            top = conn.execute("SELECT max(id) FROM point_chunks").fetchone()[0]
            self._next_chunk_id = 1 if top is None else int(top) + 1
        cid = self._next_chunk_id
        self._next_chunk_id = cid + 1
        return cid

    def _compact_tail(self, conn: _Conn, state: _SeriesState, start: int) -> None:
        """Merges ``state.tail[start:]`` (a suffix of the series' write order) into one chunk.

        Tail chunks of this batch not inserted yet are merged from memory, and in a
        batch the merged chunk is deferred like an append: a compaction then costs
        a SELECT and a DELETE of the stored ones only (each statement hands the GIL
        away; see the module docstring).
        """
        ids = [cid for cid, _ in state.tail[start:]]
        pending: list[tuple[Any, ...]] = []
        if self._deferred:
            wanted = set(ids)
            pending = [row for row in self._deferred if row[0] in wanted]
            if pending:
                self._deferred = [row for row in self._deferred if row[0] not in wanted]
        merged_from_memory = {row[0] for row in pending}
        stored = [cid for cid in ids if cid not in merged_from_memory]
        rows: list[tuple[Any, ...]] = []
        if stored:
            marks = ", ".join("?" * len(stored))
            rows = conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM point_chunks WHERE id IN ({marks}) ORDER BY id",
                stored,
            ).fetchall()
            conn.execute(f"DELETE FROM point_chunks WHERE id IN ({marks})", stored)
        rows.extend((cid, *rest) for cid, _sid, *rest in pending)
        merged = _concat_points(rows) or _packed(*_merge([_decode_chunk(r) for r in rows]))
        n = merged[2]
        cid = self._insert_chunk(conn, (state.id, *merged))
        # A merged chunk grown big ends the tail: the small chunks before it are no
        # longer trailing (they stay as they are).
        state.tail = [*state.tail[:start], (cid, n)] if n < _SMALL_CHUNK else []

    def _w_write_chunk(self, conn: _Conn, *fields: Any) -> tuple[WriteResult, bool]:
        chunk = _ValidChunk(*fields)
        self._require_run(conn, chunk.run_id)
        state = self._series_state(conn, (chunk.run_id, chunk.split, chunk.series))
        n = chunk.n
        if n == 0:
            return WriteResult(0, 0, 0), False
        steps = np.frombuffer(chunk.steps, dtype=_I8)
        if chunk.increasing and int(steps[0]) > state.max_step:
            # Fast path: past everything stored, so every point is new.
            self._append(
                conn,
                state,
                b"" if chunk.implicit else chunk.steps,
                chunk.values,
                chunk.wall_times,
                int(steps[0]),
                int(steps[-1]),
                n,
            )
            return WriteResult(n, 0, 0), True
        values = np.frombuffer(chunk.values, dtype=_F8)
        walls = None if chunk.wall_times is None else np.frombuffer(chunk.wall_times, dtype=_F8)

        lo, hi = int(steps.min()), int(steps.max())
        self._flush(conn)  # the stored points it compares with may still be deferred
        rows = conn.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM point_chunks "
            "WHERE series_id = ? AND max_step >= ? AND min_step <= ? ORDER BY id",
            (state.id, lo, hi),
        ).fetchall()
        old_steps, old_values, _ = _merge([_decode_chunk(r) for r in rows])
        result, out = _overlay(steps, values, walls, old_steps, old_values)
        if out is not None:
            out_steps, out_values, out_walls = out
            self._append(
                conn,
                state,
                _steps_blob(out_steps),
                out_values.tobytes(),
                None if out_walls is None else out_walls.tobytes(),
                int(out_steps[0]),
                int(out_steps[-1]),
                len(out_steps),
            )
        return result, out is not None

    def _w_upsert(
        self, conn: _Conn, table: str, run_id: str, rows: list[tuple[Any, ...]]
    ) -> tuple[int, bool]:
        """Upserts a run's ``rows`` into ``table`` (a key of `_UPSERTS`); returns how many."""
        self._require_run(conn, run_id)
        conn.executemany(_UPSERTS[table], rows)
        return len(rows), bool(rows)
