"""Fixtures of the store tests: a fresh store of each backend.

``store`` comes as SQLite with each writer (the thread, and the writer process
the server uses) and as PostgreSQL (a fresh database of the session's cluster,
see tests/conftest.py): every test taking it runs against all three. A test
that holds only on SQLite takes ``sqlite_store`` instead and says why.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from evalstream_server.store import NewRun, PostgresStore, SQLiteStore, Store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "evalstream.db"


@pytest.fixture(params=["thread", "process", "postgres"])
def store(db_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    s: Store
    if request.param == "postgres":
        s = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        s = SQLiteStore(db_path, writer=request.param)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(params=["thread", "process"])
def sqlite_store(db_path: Path, request: pytest.FixtureRequest) -> Iterator[SQLiteStore]:
    """A SQLiteStore with each writer, for the tests of what only SQLite does."""
    s = SQLiteStore(db_path, writer=request.param)
    try:
        yield s
    finally:
        s.close()


#: Runs one SQL statement (``?`` placeholders) on the store's database: its rows.
Query = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture
def query(store: Store, db_path: Path) -> Query:
    """Runs raw SQL on the database under ``store`` (SQLite's file, or PostgreSQL's database).

    For tests that look at the stored rows (their SQL is valid on both, e.g.
    ``length(steps)``: a blob's bytes in SQLite, a bytea's in PostgreSQL).
    """

    def run(sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if isinstance(store, PostgresStore):
            import psycopg

            with psycopg.connect(store.url) as pg:
                return pg.execute(sql.replace("?", "%s"), tuple(args)).fetchall()
        conn = sqlite3.connect(db_path)
        try:
            return conn.execute(sql, tuple(args)).fetchall()
        finally:
            conn.close()

    return run


@pytest.fixture
def run_id(store: Store) -> str:
    return store.create_run(NewRun(project="p", name="run")).id
