"""The write path of the PostgreSQL store: each write operation, run inside a transaction.

Every function takes a psycopg connection in a transaction and returns (result,
bumps), ``bumps`` saying whether and how the run's data changed (`UNCHANGED`,
`CHANGED`, `REWROTE`); the store records that with `mark_runs` in the same
transaction, commits, and only then acks. Nothing is cached between
transactions: several replicas write the same database, so what a write depends
on is read, under a lock, in its own transaction.

Point chunks: a write locks its series row (``SELECT ... FOR UPDATE``, creating
the row if needed), so writes to one series, from any replica, apply one after
the other, and chunk ids (the write order a series is merged in) grow in commit
order within a series. A chunk past the series' last step is appended as it is;
any other is applied over the stored points of its range (`_codec._overlay`) and
only what changed is appended. Trailing small chunks are merged by the tiered
policy of `_compaction`, as SQLite's writer does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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
    WriteResult,
)

_RUN_VALUES = ", ".join(["%s"] * 12)

#: What a write did to its run, as the ``bumps`` of its result: nothing; new data
#: (points past each series' end, checkpoint rows, the status, ...); or points
#: changed at or before a series' end, after which a replica's incremental state
#: of the run must be rebuilt rather than extended (``runs.rewritten_at``).
UNCHANGED, CHANGED, REWROTE = 0, 1, 2

#: The channel a committing write notifies with the ids of the runs it changed.
CHANNEL = "evalstream_runs"

# Rows a write replaces by key: checkpoint metrics by (run, split, step, metric),
# specimens by (run, split, step, specimen id); a specimen keeps its seq (paging order).
_UPSERTS = {
    "checkpoint_metrics": (
        "INSERT INTO checkpoint_metrics (run_id, split, step, metric, value, signature) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, split, step, metric) "
        "DO UPDATE SET value = excluded.value, signature = excluded.signature"
    ),
    "specimens": (
        "INSERT INTO specimens (run_id, split, step, specimen_id, body, flags) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, split, step, specimen_id) "
        "DO UPDATE SET body = excluded.body, flags = excluded.flags"
    ),
}


def _require_run(conn: Any, run_id: str) -> None:
    """NotFound unless the run exists; holds it (KEY SHARE) until the commit."""
    if conn.execute("SELECT 1 FROM runs WHERE id = %s FOR KEY SHARE", (run_id,)).fetchone() is None:
        raise NotFound(f"run {run_id!r} not found")


def _run_row(conn: Any, run_id: str) -> RunRecord:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,)).fetchone()
    return _row_to_run(row)


def _executemany(conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        with conn.cursor() as cur:
            cur.executemany(sql, rows)


def create_run(
    conn: Any, new: NewRun, hypers: dict[str, HyperValue], verdict: dict[str, HyperValue]
) -> tuple[RunRecord, int]:
    run = _new_run(new, hypers, verdict)
    # ON CONFLICT waits for a concurrent insert of the same name (another replica's)
    # and then inserts nothing: the name is taken.
    inserted = conn.execute(
        f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({_RUN_VALUES}) "
        "ON CONFLICT (project, name) DO NOTHING RETURNING id",
        _run_to_row(run),
    ).fetchone()
    if inserted is None:
        raise AlreadyExists(f"run named {new.name!r} already exists in project {new.project!r}")
    _executemany(
        conn,
        "INSERT INTO run_hyperparameters (run_id, key, kind, num, text) "
        "VALUES (%s, %s, %s, %s, %s)",
        [(run.id, k, *_hyper_key(v)) for k, v in hypers.items()],
    )
    return run, CHANGED


def set_status(conn: Any, run_id: str, status: str) -> tuple[RunRecord, int]:
    row = conn.execute(
        f"UPDATE runs SET status = %s, updated_at = %s WHERE id = %s RETURNING {_RUN_COLUMNS}",
        (status, time.time(), run_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"run {run_id!r} not found")
    return _row_to_run(row), CHANGED


def update_run(
    conn: Any,
    run_id: str,
    summary: dict[str, HyperValue],
    saved: dict[int, str],
    hypers: dict[str, HyperValue],
) -> tuple[RunRecord, int]:
    """Merges ``summary``, upserts saved checkpoints by step and adds hyperparameters;
    a changed hyperparameter refuses the whole update before any write."""
    row = conn.execute(
        "SELECT summary, hyperparameters FROM runs WHERE id = %s FOR UPDATE", (run_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"run {run_id!r} not found")
    have: dict[str, HyperValue] = json.loads(row[1])
    added = _check_added_hypers(run_id, have, hypers)
    merged = {**json.loads(row[0]), **summary}
    conn.execute(
        "UPDATE runs SET summary = %s, hyperparameters = %s, updated_at = %s WHERE id = %s",
        (json.dumps(merged), json.dumps({**have, **added}), time.time(), run_id),
    )
    _executemany(
        conn,
        "INSERT INTO run_hyperparameters (run_id, key, kind, num, text) "
        "VALUES (%s, %s, %s, %s, %s)",
        [(run_id, k, *_hyper_key(v)) for k, v in added.items()],
    )
    _executemany(
        conn,
        "INSERT INTO saved_checkpoints (run_id, step, path) VALUES (%s, %s, %s) "
        "ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path",
        [(run_id, step, path) for step, path in saved.items()],
    )
    return _run_row(conn, run_id), CHANGED


def upsert(conn: Any, table: str, run_id: str, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
    """Upserts a run's ``rows`` into ``table`` (a key of `_UPSERTS`); returns how many.

    Specimen rows come as SQLite's (run, split, step, id, JSON body); their flags
    column is filled from the body.
    """
    _require_run(conn, run_id)
    if table == "specimens":
        rows = [(*row, list(json.loads(row[4])["flags"])) for row in rows]
    _executemany(conn, _UPSERTS[table], rows)
    return len(rows), CHANGED if rows else UNCHANGED


def _lock_series(conn: Any, run_id: str, split: str, name: str) -> tuple[int, int]:
    """Locks the series row (creating it) until the commit: (series id, its largest step or -1).

    NotFound when the run does not exist.
    """
    select = (
        "SELECT s.id, (SELECT max(c.max_step) FROM point_chunks c WHERE c.series_id = s.id) "
        "FROM series s WHERE s.run_id = %s AND s.split = %s AND s.name = %s FOR UPDATE OF s"
    )
    key = (run_id, split, name)
    row = conn.execute(select, key).fetchone()
    if row is None:
        # Another transaction creating it too makes ON CONFLICT wait, then do nothing.
        created = conn.execute(
            "INSERT INTO series (run_id, split, name) SELECT %s, %s, %s "
            "WHERE EXISTS (SELECT 1 FROM runs WHERE id = %s) "
            "ON CONFLICT (run_id, split, name) DO NOTHING RETURNING id",
            (*key, run_id),
        ).fetchone()
        if created is not None:
            return int(created[0]), -1
        row = conn.execute(select, key).fetchone()
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
    return int(row[0]), -1 if row[1] is None else int(row[1])


def _insert_chunk(conn: Any, sid: int, packed: tuple[Any, ...]) -> None:
    conn.execute(
        "INSERT INTO point_chunks (series_id, min_step, max_step, n, steps, vals, wall_times) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (sid, *packed),
    )


def _compact(conn: Any, sid: int) -> None:
    """Merges the series' trailing small chunks, a level at a time (see `_compaction`)."""
    recent = conn.execute(
        "SELECT id, n FROM point_chunks WHERE series_id = %s ORDER BY id DESC LIMIT %s",
        (sid, _MAX_TAIL),
    ).fetchall()
    tail: list[tuple[int, int]] = []
    for cid, n in recent:
        if n >= _SMALL_CHUNK:
            break
        tail.append((int(cid), int(n)))
    tail.reverse()
    while (start := _compaction_start(tail)) is not None:
        ids = [cid for cid, _ in tail[start:]]
        rows = conn.execute(
            f"DELETE FROM point_chunks WHERE id = ANY(%s) RETURNING {_CHUNK_COLUMNS}",
            (ids,),
            binary=True,
        ).fetchall()
        rows.sort(key=lambda r: r[0])  # write order
        merged = _concat_points(rows) or _packed(*_merge([_decode_chunk(r) for r in rows]))
        new_id = conn.execute(
            "INSERT INTO point_chunks (series_id, min_step, max_step, n, steps, vals, wall_times) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (sid, *merged),
        ).fetchone()[0]
        n = merged[2]
        tail = [*tail[:start], (int(new_id), n)] if n < _SMALL_CHUNK else []


def write_chunk(conn: Any, *fields: Any) -> tuple[WriteResult, int]:
    chunk = _ValidChunk(*fields)
    sid, max_step = _lock_series(conn, chunk.run_id, chunk.split, chunk.series)
    n = chunk.n
    if n == 0:
        return WriteResult(0, 0, 0), UNCHANGED
    steps = np.frombuffer(chunk.steps, dtype=_I8)
    if chunk.increasing and int(steps[0]) > max_step:
        # Past everything stored: every point is new.
        packed = (
            int(steps[0]),
            int(steps[-1]),
            n,
            b"" if chunk.implicit else chunk.steps,
            chunk.values,
            chunk.wall_times,
        )
        _insert_chunk(conn, sid, packed)
        if n < _SMALL_CHUNK:
            _compact(conn, sid)
        return WriteResult(n, 0, 0), CHANGED
    values = np.frombuffer(chunk.values, dtype=_F8)
    walls = None if chunk.wall_times is None else np.frombuffer(chunk.wall_times, dtype=_F8)
    rows = conn.execute(
        f"SELECT {_CHUNK_COLUMNS} FROM point_chunks "
        "WHERE series_id = %s AND max_step >= %s AND min_step <= %s ORDER BY id",
        (sid, int(steps.min()), int(steps.max())),
        binary=True,
    ).fetchall()
    old_steps, old_values, _ = _merge([_decode_chunk(r) for r in rows])
    result, out = _overlay(steps, values, walls, old_steps, old_values)
    if out is None:
        return result, UNCHANGED
    out_steps, out_values, out_walls = out
    _insert_chunk(
        conn,
        sid,
        (
            int(out_steps[0]),
            int(out_steps[-1]),
            len(out_steps),
            _steps_blob(out_steps),
            out_values.tobytes(),
            None if out_walls is None else out_walls.tobytes(),
        ),
    )
    if len(out_steps) < _SMALL_CHUNK:
        _compact(conn, sid)
    return result, REWROTE if int(steps.min()) <= max_step else CHANGED


def mark_runs(conn: Any, marks: dict[str, int], replica: str) -> None:
    """Records, in the writing transaction, that it changed the runs of ``marks``
    ({run id: CHANGED or REWROTE}): bumps each run's ``data_version``, names
    ``replica`` as its writer, and notifies `CHANNEL` with each run id, which
    PostgreSQL delivers to the listening replicas only once the transaction commits,
    in commit order. One statement for the whole batch (a round trip per run cost
    the one-point-chunk ack latency); the primary-key scan of ``= ANY`` takes the
    rows in id order, so two replicas' batches lock them in one order."""
    ids = sorted(marks)
    rewritten = [run_id for run_id in ids if marks[run_id] == REWROTE]
    conn.execute(
        "WITH bumped AS (UPDATE runs SET data_version = data_version + 1, written_by = %s, "
        "rewritten_at = CASE WHEN id = ANY(%s) THEN data_version + 1 ELSE rewritten_at END "
        "WHERE id = ANY(%s) RETURNING id) SELECT pg_notify(%s, id) FROM bumped",
        (replica, rewritten, ids, CHANNEL),
    )


#: The operations the store queues, by name.
OPERATIONS: dict[str, Callable[..., tuple[Any, int]]] = {
    "_w_create_run": create_run,
    "_w_set_status": set_status,
    "_w_update_run": update_run,
    "_w_upsert": upsert,
    "_w_write_chunk": write_chunk,
}
