"""The versioned PostgreSQL schema of the scale-out store and its migrations.

Applied versions are rows of ``evalstream_migrations`` (version, applied_at).
``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``; ``migrate``
applies the missing steps in ONE transaction that first takes a transaction-level
advisory lock (``pg_advisory_xact_lock``), so that replicas starting at once
migrate one after the other: the first applies the steps, the others then find
them applied. PostgreSQL DDL is transactional: a failed step leaves the old
version. A database newer than this code is refused rather than guessed at.

The tables mirror the SQLite schema (``store.sqlite.schema``), with these
differences:

- text keys and names sort by code point (``COLLATE "C"``), as SQLite's do, so
  that pages and project lists come in the same order on both backends;
- ``point_chunks``: the packed little-endian blobs as ``bytea``, never a row per
  point; an EMPTY ``steps`` with ``n`` > 0 means evenly spaced steps rebuilt from
  (min_step, max_step, n), as in SQLite version 4. The blobs are stored without
  TOAST compression (``STORAGE EXTERNAL``): float64 values barely compress and
  compressing costs the writer CPU;
- ``checkpoint_metrics.value``: a NaN is stored as NULL, as SQLite does (it reads
  back as NaN); infinities are stored as they are;
- ``specimens.flags``: the record's diagnosis flags as a ``text[]`` beside its
  JSON body, for the flag filter (a body holding a NaN score is not valid
  ``jsonb``, so it stays ``text``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalstream_server.store._types import StoreError

#: The advisory lock key migrations take ("evalstrm" read as a big-endian int64).
MIGRATION_LOCK = int.from_bytes(b"evalstrm", "big")

MIGRATIONS: tuple[Sequence[str], ...] = (
    # 0 -> 1: everything of SQLite's version 6.
    (
        """CREATE TABLE runs (
            id text COLLATE "C" PRIMARY KEY,
            project text COLLATE "C" NOT NULL,
            name text COLLATE "C" NOT NULL,
            model text COLLATE "C" NOT NULL,
            task text NOT NULL,
            status text NOT NULL,
            hyperparameters text NOT NULL,
            verdict_config text NOT NULL,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            summary text NOT NULL DEFAULT '{}',
            alert_webhooks text NOT NULL DEFAULT '[]',
            UNIQUE (project, name)
        )""",
        "CREATE INDEX runs_by_project_time ON runs (project, created_at, id)",
        "CREATE INDEX runs_by_time ON runs (created_at, id)",
        """CREATE TABLE run_hyperparameters (
            run_id text COLLATE "C" NOT NULL REFERENCES runs (id),
            key text COLLATE "C" NOT NULL,
            kind text NOT NULL,
            num double precision,
            text text COLLATE "C",
            PRIMARY KEY (run_id, key)
        )""",
        "CREATE INDEX run_hyperparameters_by_value ON run_hyperparameters (key, kind, num, text)",
        """CREATE TABLE series (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id text COLLATE "C" NOT NULL REFERENCES runs (id),
            split text COLLATE "C" NOT NULL,
            name text COLLATE "C" NOT NULL,
            UNIQUE (run_id, split, name)
        )""",
        """CREATE TABLE point_chunks (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            series_id bigint NOT NULL REFERENCES series (id),
            min_step bigint NOT NULL,
            max_step bigint NOT NULL,
            n integer NOT NULL,
            steps bytea NOT NULL,
            vals bytea NOT NULL,
            wall_times bytea
        )""",
        "ALTER TABLE point_chunks ALTER COLUMN steps SET STORAGE EXTERNAL, "
        "ALTER COLUMN vals SET STORAGE EXTERNAL, ALTER COLUMN wall_times SET STORAGE EXTERNAL",
        "CREATE INDEX point_chunks_by_series ON point_chunks (series_id, max_step)",
        "CREATE INDEX point_chunks_by_series_start ON point_chunks (series_id, min_step)",
        "CREATE INDEX point_chunks_by_series_order ON point_chunks (series_id, id)",
        """CREATE TABLE checkpoint_metrics (
            run_id text COLLATE "C" NOT NULL REFERENCES runs (id),
            split text COLLATE "C" NOT NULL,
            step bigint NOT NULL,
            metric text COLLATE "C" NOT NULL,
            value double precision,
            signature text NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, split, step, metric)
        )""",
        """CREATE TABLE specimens (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id text COLLATE "C" NOT NULL REFERENCES runs (id),
            split text COLLATE "C" NOT NULL,
            step bigint NOT NULL,
            specimen_id text COLLATE "C" NOT NULL,
            body text NOT NULL,
            flags text[] NOT NULL DEFAULT '{}',
            UNIQUE (run_id, split, step, specimen_id)
        )""",
        "CREATE INDEX specimens_by_specimen ON specimens (run_id, split, specimen_id, step)",
        """CREATE TABLE saved_checkpoints (
            run_id text COLLATE "C" NOT NULL REFERENCES runs (id),
            step bigint NOT NULL,
            path text NOT NULL,
            PRIMARY KEY (run_id, step)
        )""",
    ),
    # 1 -> 2: what replicas need to follow each other's writes. Each transaction that
    # changes a run bumps its ``data_version`` and names the replica (``written_by``);
    # ``rewritten_at`` is the data_version of the last write that changed points at or
    # before a series' last step (a replica holding an incremental analyzer of the run
    # must then rebuild it rather than read the tail).
    (
        "ALTER TABLE runs ADD COLUMN data_version bigint NOT NULL DEFAULT 0, "
        "ADD COLUMN rewritten_at bigint NOT NULL DEFAULT 0, "
        "ADD COLUMN written_by text NOT NULL DEFAULT ''",
    ),
)

#: The version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)

_HISTORY = """CREATE TABLE IF NOT EXISTS evalstream_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def schema_version(conn: Any) -> int:
    """The database's version: the highest applied migration (0 when none is)."""
    exists = conn.execute("SELECT to_regclass('evalstream_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM evalstream_migrations").fetchone()
    return int(row[0])


def migrate(conn: Any, *, target: int = SCHEMA_VERSION) -> int:
    """Brings the database to version ``target`` in one transaction; returns the old version.

    ``conn`` is a psycopg connection outside a transaction (autocommit off); the
    transaction takes ``pg_advisory_xact_lock(MIGRATION_LOCK)`` first, so that
    concurrent callers (replicas starting together) apply each step once.

    Raises:
        StoreError: the database is newer than ``target``, or a step failed (the
            database is then left at its old version).
    """
    import psycopg

    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target version {target} is not in [0, {SCHEMA_VERSION}]")
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(_HISTORY)
            current = schema_version(conn)
            if current > target:
                raise StoreError(
                    f"the database is at schema version {current}, newer than this "
                    f"server's {target}; upgrade the server"
                )
            for version in range(current, target):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO evalstream_migrations (version) VALUES (%s)", (version + 1,)
                )
    except psycopg.Error as exc:
        raise StoreError(f"schema migration failed: {exc}") from exc
    return current


def migrate_url(url: str) -> tuple[int, int]:
    """Brings the database at ``url`` to this code's version (see `migrate`).

    Returns (the version it had, the version it has now).

    Raises:
        StoreError: the database cannot be reached or migrated (the message shows
            the URL with its password hidden).
    """
    import psycopg

    from evalstream_server.store._url import redact

    shown = redact(url)
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            return migrate(conn), SCHEMA_VERSION
    except psycopg.Error as exc:
        raise StoreError(f"cannot open the store at {shown}: {_hide(url, str(exc))}") from None
    except StoreError as exc:
        raise StoreError(f"cannot open the store at {shown}: {exc}") from None


def _hide(url: str, text: str) -> str:
    """``text`` with the URL's password (should libpq echo it) replaced by ``***``."""
    from evalstream_server.store._url import password

    secret = password(url)
    return text.replace(secret, "***") if secret else text
