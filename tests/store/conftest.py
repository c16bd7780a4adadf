"""Fixtures of the store tests: a fresh SQLiteStore in a temporary directory.

``store`` comes with each writer: the thread, and the writer process the server
uses; every test taking it runs against both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from evalstream_server.store import NewRun, SQLiteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "evalstream.db"


@pytest.fixture(params=["thread", "process"])
def store(db_path: Path, request: pytest.FixtureRequest) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db_path, writer=request.param)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def run_id(store: SQLiteStore) -> str:
    return store.create_run(NewRun(project="p", name="run")).id
