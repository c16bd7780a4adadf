"""The read path of the PostgreSQL store: SQLite's read queries, run through a
placeholder adapter, and the two that differ in dialect.

The queries of ``store.sqlite._reads`` are plain SQL with ``?`` placeholders;
`Qmark` hands them to psycopg with ``%s`` (none of them holds a ``%`` or a
literal ``?``), asking for binary results (``bytea`` arrives as bytes, ready for
``np.frombuffer``). Overridden here: the specimen flag filter (a ``text[]``
column instead of SQLite's ``json_each``) and the per-project counts (a
``FILTER`` clause instead of summing booleans).
"""

from __future__ import annotations

from typing import Any

from evalstream_server.store.sqlite._reads import (
    _check_run_exists,
    _checkpoint_rows,
    _count_points,
    _evaluation_rows,
    _find_run,
    _get_run,
    _list_runs_query,
    _read_page,
    _read_series,
    _saved_checkpoints,
    _series_chunks,
    _specimen_history_rows,
)

__all__ = [
    "Qmark",
    "_check_run_exists",
    "_checkpoint_rows",
    "_count_points",
    "_evaluation_rows",
    "_find_run",
    "_get_run",
    "_list_runs_query",
    "_project_rows",
    "_read_page",
    "_read_series",
    "_saved_checkpoints",
    "_series_chunks",
    "_specimen_history_rows",
    "_specimen_rows",
]


class Qmark:
    """A psycopg connection that takes SQLite's ``?`` placeholders (binary results)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), parameters, binary=True)


def _specimen_rows(
    conn: Any,
    run_id: str,
    split: str,
    step: int,
    *,
    after: int,
    limit: int,
    flag: str = "",
) -> list[Any]:
    """Rows (seq, specimen id, body) of an evaluation step after ``seq`` ``after``, in order.

    ``flag`` (unless "") keeps the specimens whose flags hold it.
    """
    _check_run_exists(conn, run_id)
    cond = ""
    args: tuple[Any, ...] = (run_id, split, step, after)
    if flag:
        cond = " AND ? = ANY (flags)"
        args += (flag,)
    rows: list[Any] = conn.execute(
        "SELECT seq, specimen_id, body FROM specimens "
        f"WHERE run_id = ? AND split = ? AND step = ? AND seq > ?{cond} ORDER BY seq LIMIT ?",
        (*args, limit),
    ).fetchall()
    return rows


def _project_rows(conn: Any, *, after: str, limit: int) -> list[Any]:
    """Rows (project, runs, running runs, latest updated_at) of projects named after ``after``."""
    rows: list[Any] = conn.execute(
        "SELECT project, count(*), count(*) FILTER (WHERE status = 'running'), max(updated_at) "
        "FROM runs WHERE project > ? GROUP BY project ORDER BY project LIMIT ?",
        (after, limit),
    ).fetchall()
    return rows
