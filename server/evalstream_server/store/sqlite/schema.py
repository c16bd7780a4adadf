"""The versioned SQLite schema of the embedded store and its migrations.

The schema version lives in ``PRAGMA user_version``. ``MIGRATIONS[i]`` takes a
database from version ``i`` to ``i + 1``; ``migrate`` applies the missing steps,
and the new version, in one transaction, so that a crash mid-migration leaves
the database at its old version (SQLite DDL is transactional). A database newer
than this code is refused rather than guessed at.

Tables:

- ``runs``: one row per run; hyperparameters, verdict config and (version 6)
  summary as JSON objects; alert webhooks (version 6) as a JSON list of
  ``{"url": ..., "format": "json" | "slack"}``.
- ``run_hyperparameters``: the same hyperparameters one row per key, typed
  (``kind`` is "bool", "num" or "str"), so that ``list_runs`` filters in SQL.
- ``series``: one row per (run, split, series name).
- ``point_chunks``: the loss points, packed: per chunk the little-endian int64
  steps, float64 values and (optional) float64 wall times as blobs, sorted by
  step and unique within the chunk. A series is the merge of its chunks in
  ``id`` (= write) order, the latest chunk winning for a step.

  Implicit steps (version 4): when a chunk's ``n`` steps are evenly spaced
  (``n`` <= 2, or ``min_step + k * stride`` for k in 0..n-1 with
  ``stride = (max_step - min_step) / (n - 1)``, an exact integer; stride 1 is
  the usual run of consecutive training steps) the ``steps`` blob is EMPTY
  (zero bytes) and the steps are rebuilt from ``min_step``, ``max_step`` and
  ``n``. An empty blob with ``n`` > 0 means exactly that and nothing else; any
  other chunk carries its ``8 * n``-byte blob as before, so the rows of older
  databases (always explicit) read unchanged. Writers store a chunk
  implicitly whenever it qualifies, halving what a loss point costs on disk.
- ``checkpoint_metrics``: one row per (run, split, step, metric); a NULL value is
  a NaN (SQLite stores NaN as NULL).
- ``specimens``: one row per (run, split, step, specimen id); the record as JSON;
  ``seq`` keeps first-insertion order for paging. Indexed (version 5) by
  (run, split, specimen id, step) too, so that one specimen's history across
  steps reads its own rows, by step, without scanning the run's specimens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from evalstream_server.store._types import StoreError

# Each step is a list of statements (not executescript, which would COMMIT the
# migration transaction half-way).
MIGRATIONS: tuple[Sequence[str], ...] = (
    # 0 -> 1: runs and their hyperparameters.
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            project TEXT NOT NULL,
            name TEXT NOT NULL,
            model TEXT NOT NULL,
            task TEXT NOT NULL,
            status TEXT NOT NULL,
            hyperparameters TEXT NOT NULL,
            verdict_config TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (project, name)
        )""",
        "CREATE INDEX runs_by_project_time ON runs (project, created_at, id)",
        """CREATE TABLE run_hyperparameters (
            run_id TEXT NOT NULL REFERENCES runs (id),
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            num REAL,
            text TEXT,
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX run_hyperparameters_by_value ON run_hyperparameters (key, kind, num, text)",
    ),
    # 1 -> 2: loss points, in packed chunks.
    (
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id),
            split TEXT NOT NULL,
            name TEXT NOT NULL,
            UNIQUE (run_id, split, name)
        )""",
        """CREATE TABLE point_chunks (
            id INTEGER PRIMARY KEY,
            series_id INTEGER NOT NULL REFERENCES series (id),
            min_step INTEGER NOT NULL,
            max_step INTEGER NOT NULL,
            n INTEGER NOT NULL,
            steps BLOB NOT NULL,
            vals BLOB NOT NULL,
            wall_times BLOB
        )""",
        "CREATE INDEX point_chunks_by_series ON point_chunks (series_id, max_step)",
    ),
    # 2 -> 3: evaluations (checkpoint metrics and specimens).
    (
        """CREATE TABLE checkpoint_metrics (
            run_id TEXT NOT NULL REFERENCES runs (id),
            split TEXT NOT NULL,
            step INTEGER NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            signature TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, split, step, metric)
        ) WITHOUT ROWID""",
        """CREATE TABLE specimens (
            seq INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (id),
            split TEXT NOT NULL,
            step INTEGER NOT NULL,
            specimen_id TEXT NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (run_id, split, step, specimen_id)
        )""",
    ),
    # 3 -> 4: implicit steps in point_chunks (see above). No DDL: the rows of
    # version 3 are valid rows of version 4. The bump is there for the other
    # direction: a version-3 server would read an empty steps blob as no steps
    # and pair the values with the wrong steps, so it must refuse the database.
    (),
    # 4 -> 5: one specimen across evaluation steps (GetSpecimenHistory) reads
    # this index in step order instead of every specimen of the run.
    ("CREATE INDEX specimens_by_specimen ON specimens (run_id, split, specimen_id, step)",),
    # 5 -> 6: what a trainer records beside its curves: one-off values (summary),
    # per-run alert webhooks, and where each checkpoint was saved.
    (
        "ALTER TABLE runs ADD COLUMN summary TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE runs ADD COLUMN alert_webhooks TEXT NOT NULL DEFAULT '[]'",
        """CREATE TABLE saved_checkpoints (
            run_id TEXT NOT NULL REFERENCES runs (id),
            step INTEGER NOT NULL,
            path TEXT NOT NULL,
            PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID""",
    ),
)

#: The version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version``.

    >>> schema_version(sqlite3.connect(":memory:"))
    0
    """
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Brings the database to version ``target`` in one transaction; returns the old version.

    ``conn`` must be in autocommit mode (``isolation_level=None``).

    Raises:
        StoreError: the database is newer than ``target``, or a step failed (the
            database is then left at its old version).

    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> migrate(conn), schema_version(conn) == SCHEMA_VERSION
    (0, True)
    >>> migrate(conn) == SCHEMA_VERSION
    True
    """
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target version {target} is not in [0, {SCHEMA_VERSION}]")
    # BEGIN IMMEDIATE takes the write lock before reading the version, so that two
    # processes opening the same new database do not both migrate it.
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > target:
            raise StoreError(
                f"the database is at schema version {current}, newer than this "
                f"server's {target}; upgrade the server"
            )
        for version in range(current, target):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        if current != target:
            conn.execute(f"PRAGMA user_version = {int(target)}")
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"schema migration failed: {exc}") from exc
        raise
    return current


def migrate_path(path: Path) -> tuple[int, int]:
    """Brings the database file at ``path`` (created if missing) to this code's version.

    Returns (the version it had, the version it has now).

    Raises:
        StoreError: the file cannot be opened, is newer than this code, or a step failed.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the store at {str(path)!r}: {exc}") from exc
    try:
        return migrate(conn), SCHEMA_VERSION
    finally:
        conn.close()
