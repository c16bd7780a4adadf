"""The read path of the embedded store: the SQL of every read, run in a pooled snapshot.

Each function takes a read connection (`_pool.ReadPool.read` hands it one) and
returns rows or domain records; checks of the arguments happen before, in the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evalstream_server.store._codec import _CHUNK_COLUMNS, _Chunk, _decode_chunk, _merge
from evalstream_server.store._records import _RUN_COLUMNS, _hyper_key, _row_to_run
from evalstream_server.store._types import (
    SPLITS,
    HyperValue,
    NotFound,
    RunRecord,
    SeriesChunks,
    SeriesData,
)
from evalstream_server.store.sqlite._ops import _Conn

#: The largest step a point can have (steps are int64, >= 0).
_LAST_STEP = 2**63 - 1


def _check_run_exists(conn: _Conn, run_id: str) -> None:
    """NotFound unless the run exists (the readers' check, and the writer's on a cache miss)."""
    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise NotFound(f"run {run_id!r} not found")


def _saved_checkpoints(conn: sqlite3.Connection, run_id: str) -> dict[int, str]:
    _check_run_exists(conn, run_id)
    rows = conn.execute(
        "SELECT step, path FROM saved_checkpoints WHERE run_id = ? ORDER BY step", (run_id,)
    ).fetchall()
    return {int(step): path for step, path in rows}


def _run_by(conn: sqlite3.Connection, where: str, args: tuple[Any, ...], missing: str) -> RunRecord:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where}", args).fetchone()
    if row is None:
        raise NotFound(missing)
    return _row_to_run(row)


def _get_run(conn: sqlite3.Connection, run_id: str) -> RunRecord:
    """The run with this id, or NotFound."""
    return _run_by(conn, "id = ?", (run_id,), f"run {run_id!r} not found")


def _find_run(conn: sqlite3.Connection, project: str, name: str) -> RunRecord:
    """The run named ``name`` in ``project``, or NotFound."""
    return _run_by(
        conn,
        "project = ? AND name = ?",
        (project, name),
        f"run named {name!r} not found in project {project!r}",
    )


def _list_runs_query(
    *,
    project: str,
    statuses: Sequence[str],
    model: str,
    filters: dict[str, HyperValue],
    after: tuple[float, str] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SELECT (and its arguments) of a page of runs, ordered by (created_at, id).

    ``after`` is the last (created_at, id) of the previous page.
    """
    where: list[str] = []
    args: list[Any] = []
    if project:
        where.append("project = ?")
        args.append(project)
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        args.extend(statuses)
    if model:
        where.append("model = ?")
        args.append(model)
    for key, value in filters.items():
        kind, num, text = _hyper_key(value)
        column, operand = ("text", text) if kind == "str" else ("num", num)
        where.append(
            "EXISTS (SELECT 1 FROM run_hyperparameters h WHERE h.run_id = runs.id "
            f"AND h.key = ? AND h.kind = ? AND h.{column} = ?)"
        )
        args.extend((key, kind, operand))
    if after is not None:
        created, last_id = after
        where.append("(created_at > ? OR (created_at = ? AND id > ?))")
        args.extend((created, created, last_id))
    sql = f"SELECT {_RUN_COLUMNS} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, id LIMIT ?"
    args.append(limit)
    return sql, args


def _read_series(
    conn: sqlite3.Connection,
    run_id: str,
    splits: Sequence[str],
    names: Sequence[str],
    *,
    tail: int,
    lo: int = 0,
    hi: int = _LAST_STEP,
) -> list[SeriesData]:
    """The run's series (all of each, or their last ``tail`` points), in SPLITS order then name.

    ``lo``/``hi`` (inclusive) keep the points of that step range, reading only
    the chunks that overlap it (``tail`` is then 0).
    """
    _check_run_exists(conn, run_id)
    rows = conn.execute("SELECT id, split, name FROM series WHERE run_id = ?", (run_id,)).fetchall()
    wanted = [r for r in rows if (not splits or r[1] in splits) and (not names or r[2] in names)]
    wanted.sort(key=lambda r: (SPLITS.index(r[1]), r[2]))
    out: list[SeriesData] = []
    for sid, split, name in wanted:
        if tail:
            steps, values, walls = _tail(conn, sid, tail)
        elif lo == 0 and hi == _LAST_STEP:
            chunks = conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM point_chunks WHERE series_id = ? ORDER BY id",
                (sid,),
            ).fetchall()
            steps, values, walls = _merge([_decode_chunk(r) for r in chunks])
        else:
            steps, values, walls = _range(conn, sid, lo, hi)
        out.append(SeriesData(split, name, steps, values, walls, len(steps)))
    return out


def _series_chunks(
    conn: sqlite3.Connection,
    run_id: str,
    splits: Sequence[str],
    names: Sequence[str],
    lo: int,
    hi: int,
) -> list[SeriesChunks]:
    """(min step, max step, n) of each chunk overlapping [lo, hi], per series, by min step.

    Series in SPLITS order then name, as `_read_series`; those without such a chunk
    are left out.
    """
    _check_run_exists(conn, run_id)
    rows = conn.execute("SELECT id, split, name FROM series WHERE run_id = ?", (run_id,)).fetchall()
    wanted = [r for r in rows if (not splits or r[1] in splits) and (not names or r[2] in names)]
    wanted.sort(key=lambda r: (SPLITS.index(r[1]), r[2]))
    out: list[SeriesChunks] = []
    for sid, split, name in wanted:
        metas = conn.execute(
            "SELECT min_step, max_step, n FROM point_chunks "
            "WHERE series_id = ? AND max_step >= ? AND min_step <= ? ORDER BY min_step",
            (sid, lo, hi),
        ).fetchall()
        if metas:
            out.append(SeriesChunks(split, name, np.array(metas, dtype=np.int64).reshape(-1, 3)))
    return out


def _range(
    conn: sqlite3.Connection, sid: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The points of a series with lo <= step <= hi.

    Every such point lives in a chunk whose [min_step, max_step] overlaps the
    range, so merging those chunks (in write order, the latest winning) and
    cutting the result to the range is exact.
    """
    rows = conn.execute(
        f"SELECT {_CHUNK_COLUMNS} FROM point_chunks "
        "WHERE series_id = ? AND max_step >= ? AND min_step <= ? ORDER BY id",
        (sid, lo, hi),
    ).fetchall()
    steps, values, walls = _merge([_decode_chunk(r) for r in rows])
    cut = slice(int(np.searchsorted(steps, lo, "left")), int(np.searchsorted(steps, hi, "right")))
    return steps[cut], values[cut], None if walls is None else walls[cut]


def _read_page(
    conn: sqlite3.Connection,
    run_id: str,
    splits: Sequence[str],
    names: Sequence[str],
    *,
    lo: int,
    hi: int,
    after: tuple[str, str, int] | None,
    limit: int,
) -> list[SeriesData]:
    """At most ``limit`` points summed over the run's series, in `_read_series` order.

    ``after`` (split, name, step) starts at that series, from that step on, then
    the series after it; None starts at the first series. Each series is read
    with `_head`, never merged whole. A series with no points left in the range is
    listed empty while the budget lasts; the list stops at the series that uses
    the last of the budget.
    """
    _check_run_exists(conn, run_id)
    rows = conn.execute("SELECT id, split, name FROM series WHERE run_id = ?", (run_id,)).fetchall()
    wanted = [r for r in rows if (not splits or r[1] in splits) and (not names or r[2] in names)]
    wanted.sort(key=lambda r: (SPLITS.index(r[1]), r[2]))
    first: tuple[int, str] | None = None
    if after is not None:
        first = (SPLITS.index(after[0]), after[1])
        wanted = [r for r in wanted if (SPLITS.index(r[1]), r[2]) >= first]
    out: list[SeriesData] = []
    left = limit
    for sid, split, name in wanted:
        start = lo
        if after is not None and (SPLITS.index(split), name) == first:
            start = max(lo, after[2])
        steps, values, walls = _head(conn, sid, start, hi, left)
        out.append(SeriesData(split, name, steps, values, walls, len(steps)))
        left -= len(steps)
        if left <= 0:
            break
    return out


def _count_points(
    conn: sqlite3.Connection,
    run_id: str,
    splits: Sequence[str],
    names: Sequence[str],
    *,
    lo: int,
    hi: int,
) -> int:
    """How many points the run's series hold in [lo, hi], without merging them.

    Chunks are grouped into runs of overlapping step spans (by min step): a chunk
    alone holds distinct steps and counts by its size (decoded only when the range
    cuts it); a group of overlapping chunks counts its distinct steps in the range.
    """
    _check_run_exists(conn, run_id)
    rows = conn.execute("SELECT id, split, name FROM series WHERE run_id = ?", (run_id,)).fetchall()
    wanted = [r[0] for r in rows if (not splits or r[1] in splits) and (not names or r[2] in names)]
    total = 0
    for sid in wanted:
        metas = conn.execute(
            "SELECT id, min_step, max_step, n FROM point_chunks "
            "WHERE series_id = ? AND max_step >= ? AND min_step <= ? ORDER BY min_step",
            (sid, lo, hi),
        ).fetchall()
        group: list[tuple[int, int, int, int]] = []
        group_max = -1
        for meta in [*metas, None]:
            if meta is not None and group and meta[1] <= group_max:
                group.append(meta)
                group_max = max(group_max, meta[2])
                continue
            if group:
                total += _group_count(conn, group, lo, hi)
            if meta is not None:
                group, group_max = [meta], meta[2]
    return total


def _group_count(
    conn: sqlite3.Connection, group: Sequence[tuple[int, int, int, int]], lo: int, hi: int
) -> int:
    """Distinct steps in [lo, hi] of chunks (id, min, max, n) whose spans overlap in a chain."""
    if len(group) == 1 and lo <= group[0][1] and group[0][2] <= hi:
        return group[0][3]
    marks = ", ".join("?" * len(group))
    sql = f"SELECT {_CHUNK_COLUMNS} FROM point_chunks WHERE id IN ({marks})"
    chunks = [_decode_chunk(row) for row in conn.execute(sql, [g[0] for g in group])]
    steps = np.sort(np.concatenate([c.steps for c in chunks]))
    steps = steps[(steps >= lo) & (steps <= hi)]
    return int(np.count_nonzero(steps[1:] != steps[:-1])) + 1 if len(steps) else 0


def _load_chunks(conn: sqlite3.Connection, loaded: dict[int, _Chunk], ids: list[int]) -> None:
    """Decodes into `loaded` (by chunk id) those of the chunks `ids` it does not hold yet."""
    missing = [i for i in ids if i not in loaded]
    if missing:
        marks = ", ".join("?" * len(missing))
        for row in conn.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM point_chunks WHERE id IN ({marks})", missing
        ):
            loaded[row[0]] = _decode_chunk(row)


def _head(
    conn: sqlite3.Connection, sid: int, lo: int, hi: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The first n points of a series in [lo, hi], reading only the chunks that can hold them.

    `_tail` from the other end: taking the chunks that overlap the range by
    increasing min step until they hold n distinct steps in it gives a threshold
    T (the n-th smallest of those steps); every point of the range at or below T
    lives in a chunk whose min step is <= T, so merging just those chunks (in
    write order, for "latest wins") and cutting to [lo, T] is exact.
    """
    metas: list[tuple[int, int, int, int]] = conn.execute(
        "SELECT id, min_step, max_step, n FROM point_chunks "
        "WHERE series_id = ? AND max_step >= ? AND min_step <= ? ORDER BY min_step",
        (sid, lo, hi),
    ).fetchall()
    loaded: dict[int, _Chunk] = {}

    def load(ids: list[int]) -> None:
        _load_chunks(conn, loaded, ids)

    threshold = hi
    # When the chunks hold n points or fewer in all, every one of them is needed.
    if sum(m[3] for m in metas) > n:
        found = _disjoint_threshold(metas, load, loaded, lo, hi, n)
        if found is None:
            found = _overlap_threshold(metas, load, loaded, lo, hi, n)
        threshold = found
    ids = sorted(m[0] for m in metas if m[1] <= threshold)
    load(ids)
    steps, values, walls = _merge([loaded[i] for i in ids])
    start = int(np.searchsorted(steps, lo, "left"))
    cut = slice(start, min(start + n, int(np.searchsorted(steps, threshold, "right"))))
    return steps[cut], values[cut], None if walls is None else walls[cut]


def _disjoint_threshold(
    metas: Sequence[tuple[int, int, int, int]],
    load: Callable[[list[int]], None],
    loaded: dict[int, _Chunk],
    lo: int,
    hi: int,
    n: int,
) -> int | None:
    """`_head`'s threshold when the chunks it needs do not overlap (the usual case), else None.

    Chunks in min-step order whose step spans are disjoint hold distinct steps:
    counting needs only their sizes (decoding just the chunks cut by the range,
    and the one where the count reaches n), no sort of their steps. A later chunk
    overlapping the last one counted may hold smaller steps; the threshold is then
    above the n-th step, which `_head` allows (it merges every chunk starting at or
    below it and keeps the first n).
    """
    count, last_max = 0, -1
    for cid, low, high, size in metas:
        if low <= last_max:
            return None
        last_max = high
        inside = size
        if low < lo or high > hi:
            load([cid])
            steps = loaded[cid].steps
            inside = int(np.searchsorted(steps, hi, "right") - np.searchsorted(steps, lo, "left"))
        if count + inside >= n:  # later chunks may hold smaller steps: T is then an upper bound
            load([cid])
            steps = loaded[cid].steps
            return int(steps[int(np.searchsorted(steps, lo, "left")) + n - count - 1])
        count += inside
    return hi


def _overlap_threshold(
    metas: Sequence[tuple[int, int, int, int]],
    load: Callable[[list[int]], None],
    loaded: dict[int, _Chunk],
    lo: int,
    hi: int,
    n: int,
) -> int:
    """`_head`'s threshold over overlapping chunks: their distinct steps, a doubling prefix."""
    k = 1
    while k < 2 * len(metas):
        top = [m[0] for m in metas[:k]]
        load(top)
        steps = np.sort(np.concatenate([loaded[i].steps for i in top]))
        steps = steps[(steps >= lo) & (steps <= hi)]
        distinct = steps[np.concatenate(([True], steps[1:] != steps[:-1]))] if len(steps) else steps
        if len(distinct) >= n:
            return int(distinct[n - 1])
        k *= 2
    return hi


def _tail(
    conn: sqlite3.Connection, sid: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The last n points of a series, reading only the chunks that can hold them.

    Taking chunks by decreasing max step until they hold n distinct steps gives a
    threshold T (the n-th largest of those steps): every point at or above T lives
    in a chunk whose max step is >= T, so merging just those chunks (in write
    order, for "latest wins") is exact.
    """
    metas = conn.execute(
        "SELECT id, max_step FROM point_chunks WHERE series_id = ? ORDER BY max_step DESC",
        (sid,),
    ).fetchall()
    loaded: dict[int, _Chunk] = {}

    def load(ids: list[int]) -> None:
        _load_chunks(conn, loaded, ids)

    threshold = -1
    k = 1
    while k < 2 * len(metas):
        top = [m[0] for m in metas[:k]]
        load(top)
        distinct = np.unique(np.concatenate([loaded[i].steps for i in top]))
        if len(distinct) >= n:
            threshold = int(distinct[-n])
            break
        k *= 2
    ids = sorted(m[0] for m in metas if m[1] >= threshold)
    load(ids)
    steps, values, walls = _merge([loaded[i] for i in ids])
    keep = slice(max(0, len(steps) - n), None)
    return steps[keep], values[keep], None if walls is None else walls[keep]


def _checkpoint_rows(conn: sqlite3.Connection, run_id: str) -> list[tuple[Any, ...]]:
    """The run's checkpoint metrics as rows (split, step, metric, value, signature)."""
    _check_run_exists(conn, run_id)
    return conn.execute(
        "SELECT split, step, metric, value, signature FROM checkpoint_metrics WHERE run_id = ?",
        (run_id,),
    ).fetchall()


def _evaluation_rows(
    conn: sqlite3.Connection, run_id: str, split: str
) -> tuple[list[Any], list[Any]]:
    """The run's metric rows (split, step, metric, value) and specimen counts per step.

    ``split`` "" means every split.
    """
    cond = " AND split = ?" if split else ""
    args: tuple[Any, ...] = (run_id, split) if split else (run_id,)
    _check_run_exists(conn, run_id)
    metrics = conn.execute(
        f"SELECT split, step, metric, value FROM checkpoint_metrics WHERE run_id = ?{cond}",
        args,
    ).fetchall()
    counts = conn.execute(
        f"SELECT split, step, count(*) FROM specimens WHERE run_id = ?{cond} GROUP BY split, step",
        args,
    ).fetchall()
    return metrics, counts


def _specimen_rows(
    conn: sqlite3.Connection,
    run_id: str,
    split: str,
    step: int,
    *,
    after: int,
    limit: int,
    flag: str = "",
) -> list[Any]:
    """Rows (seq, specimen id, body) of an evaluation step after ``seq`` ``after``, in order.

    ``flag`` (unless "") keeps the specimens whose body lists it among its flags.
    """
    _check_run_exists(conn, run_id)
    cond = ""
    args: tuple[Any, ...] = (run_id, split, step, after)
    if flag:
        cond = " AND EXISTS (SELECT 1 FROM json_each(body, '$.flags') WHERE value = ?)"
        args += (flag,)
    return conn.execute(
        "SELECT seq, specimen_id, body FROM specimens "
        f"WHERE run_id = ? AND split = ? AND step = ? AND seq > ?{cond} ORDER BY seq LIMIT ?",
        (*args, limit),
    ).fetchall()


def _specimen_history_rows(
    conn: sqlite3.Connection, run_id: str, split: str, specimen_id: str
) -> list[Any]:
    """Rows (step, body) of one specimen of a split at every step, by step (the v5 index)."""
    _check_run_exists(conn, run_id)
    return conn.execute(
        "SELECT step, body FROM specimens "
        "WHERE run_id = ? AND split = ? AND specimen_id = ? ORDER BY step",
        (run_id, split, specimen_id),
    ).fetchall()


def _project_rows(conn: sqlite3.Connection, *, after: str, limit: int) -> list[Any]:
    """Rows (project, runs, running runs, latest updated_at) of projects named after ``after``."""
    return conn.execute(
        "SELECT project, count(*), sum(status = 'running'), max(updated_at) FROM runs "
        "WHERE project > ? GROUP BY project ORDER BY project LIMIT ?",
        (after, limit),
    ).fetchall()
