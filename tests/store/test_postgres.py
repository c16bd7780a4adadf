"""What only the PostgreSQL store has to show: migrations under a lock, acks after
COMMIT, writes from several stores (replicas) at once, a database restart, and a
URL's password that never shows.

The store contract itself runs on PostgreSQL through the ``store`` fixture (every
test of tests/store).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from evalstream_server import app, config
from evalstream_server.store import (
    NewRun,
    PointChunk,
    PostgresStore,
    StoreError,
    StoreUnavailable,
    WriteResult,
)
from evalstream_server.store.postgres import schema

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg")

PASSWORD = "pw-Zq81x-never-shown"


def chunk(run_id: str, steps: list[int], values: list[float], series: str = "loss") -> PointChunk:
    return PointChunk(run_id, "train", series, np.array(steps), np.array(values, dtype=np.float64))


def test_migrations_apply_once_when_stores_open_at_once(pg_cluster: Any) -> None:
    url = pg_cluster.new_database(migrated=False)
    barrier = threading.Barrier(6)

    def open_one(_: int) -> None:
        barrier.wait()
        PostgresStore(url).close()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(open_one, range(6)))  # raises what any of them raised
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM evalstream_migrations").fetchall()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'runs'").fetchone()
    assert [v for (v,) in versions] == list(range(1, schema.SCHEMA_VERSION + 1))
    assert tables == (1,)


def test_a_database_newer_than_the_server_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO evalstream_migrations (version) VALUES (%s)", (schema.SCHEMA_VERSION + 1,)
        )
    with pytest.raises(StoreError, match="newer than this server"):
        PostgresStore(pg_url)


def test_the_ack_comes_after_the_commit(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """While COMMIT has not returned, the write is not acked and nobody else sees it."""
    release = threading.Event()
    committing = threading.Event()
    connect = PostgresStore._connect

    def held_connect(self: PostgresStore) -> Any:
        conn = connect(self)
        commit = conn.commit

        def held_commit() -> None:
            if release.is_set():
                return commit()
            committing.set()
            release.wait(30)
            return commit()

        conn.commit = held_commit
        return conn

    with PostgresStore(pg_url) as store:
        run = store.create_run(NewRun(project="p", name="r"))
        monkeypatch.setattr(PostgresStore, "_connect", held_connect)
        store.close()  # writers reconnect through held_connect in a new store
    with PostgresStore(pg_url) as store:
        future = store.submit_points(chunk(run.id, [0, 1, 2], [3.0, 2.0, 1.0]))
        assert committing.wait(30)
        assert not future.done()
        with psycopg.connect(pg_url) as other:
            seen = other.execute("SELECT count(*) FROM point_chunks").fetchone()
        assert seen == (0,)
        release.set()
        assert future.result(30) == WriteResult(3, 0, 0)
        with psycopg.connect(pg_url) as other:  # a fresh connection: acked means committed
            row = other.execute("SELECT n, length(vals) FROM point_chunks").fetchone()
        assert row == (3, 24)


def test_two_stores_writing_one_series_store_every_point_once(pg_url: str) -> None:
    """Two replicas streaming into the same run and series: all points, each once."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        run = a.create_run(NewRun(project="p", name="r"))

        def stream(store: PostgresStore, offset: int) -> None:
            for i in range(40):
                steps = [offset + 2 * (10 * i + k) for k in range(10)]  # a's even, b's odd
                store.write_points(chunk(run.id, steps, [float(s) for s in steps]))
                # and a resend of the same chunk: changes nothing
                assert store.write_points(
                    chunk(run.id, steps, [float(s) for s in steps])
                ) == WriteResult(0, 10, 0)

        threads = [threading.Thread(target=stream, args=(s, o)) for s, o in ((a, 0), (b, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for store in (a, b):
            (series,) = store.read_series(run.id)
            assert series.steps.tolist() == list(range(800))
            assert series.values.tolist() == [float(s) for s in range(800)]
            assert store.count_points(run.id) == 800
    finally:
        a.close()
        b.close()


def test_a_rewrite_through_another_store_wins(pg_url: str) -> None:
    with PostgresStore(pg_url) as a, PostgresStore(pg_url) as b:
        run = a.create_run(NewRun(project="p", name="r"))
        a.write_points(chunk(run.id, [0, 1, 2], [1.0, 1.0, 1.0]))
        assert b.write_points(chunk(run.id, [1], [float("nan")])) == WriteResult(1, 0, 1)
        (series,) = a.read_series(run.id)
        assert series.steps.tolist() == [0, 1, 2]
        assert np.isnan(series.values[1]) and series.values[[0, 2]].tolist() == [1.0, 1.0]


def test_a_database_restart_fails_writes_unavailable_then_they_go_through(
    pg_cluster: Any,
) -> None:
    url = pg_cluster.new_database()
    with PostgresStore(url) as store:
        run = store.create_run(NewRun(project="p", name="r"))
        store.write_points(chunk(run.id, [0], [1.0]))
        pg_cluster.restart()
        outcomes: list[str] = []
        for step in range(1, 6):
            try:
                store.write_points(chunk(run.id, [step], [1.0]), timeout=30)
                outcomes.append("ok")
            except StoreUnavailable:
                outcomes.append("unavailable")
                store.write_points(chunk(run.id, [step], [1.0]), timeout=30)  # the resend
        assert outcomes[-1] == "ok"
        (series,) = store.read_series(run.id)
        assert series.steps.tolist() == [0, 1, 2, 3, 4, 5]


def _with_password(pg_cluster: Any, database: str) -> str:
    return f"postgresql://{pg_cluster.user}:{PASSWORD}@/{database}?host={pg_cluster.root}"


def test_the_password_is_not_in_open_errors(pg_cluster: Any) -> None:
    url = _with_password(pg_cluster, "no_such_database")
    with pytest.raises(StoreError) as info:
        PostgresStore(url)
    assert "no_such_database" in str(info.value)
    assert PASSWORD not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is not None
    assert PASSWORD not in repr(info.value)


def test_the_password_is_not_in_the_store_repr(pg_cluster: Any) -> None:
    url = pg_cluster.new_database()
    name = url.split("@/")[1].split("?")[0]
    with PostgresStore(_with_password(pg_cluster, name)) as store:
        assert PASSWORD not in repr(store) and "***" in repr(store)


def test_the_password_is_not_logged_when_the_server_cannot_start(
    pg_cluster: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _with_password(pg_cluster, "no_such_database")
    argv = ["--store", url, "--data-dir", str(tmp_path), "--no-auth", "--metrics-port", "-1"]
    cfg = config.load([*argv, "--port", "0", "--http-port", "-1", "--bertscore-model", "none"], {})
    assert PASSWORD not in repr(cfg) and "***" in repr(cfg)
    # migrate configures the JSON log lines on stderr, which serve then writes too
    assert app.migrate_main(["--store", url, "--data-dir", str(tmp_path)]) == 1
    assert app.serve(cfg) == 1
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [line["msg"] for line in lines if line["level"] == "error"] == [
        "migrate failed",
        "start failed",
    ]
    assert "no_such_database" in err and "***" in err
    assert PASSWORD not in err


def test_migrate_subcommand_brings_a_new_database_up(
    pg_cluster: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_cluster.new_database(migrated=False)
    assert app.migrate_main(["--store", url, "--data-dir", str(tmp_path)]) == 0
    assert app.migrate_main(["--store", url, "--data-dir", str(tmp_path)]) == 0  # again: a no-op
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    fields = [line for line in lines if line["msg"] == "migrated"]
    assert [(f["from_version"], f["version"]) for f in fields] == [
        (0, schema.SCHEMA_VERSION),
        (schema.SCHEMA_VERSION, schema.SCHEMA_VERSION),
    ]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_writes_of_one_run_go_to_one_writer(pg_url: str) -> None:
    """A stream's chunks apply in the order sent: one run, one writer thread."""
    with PostgresStore(pg_url, writers=4) as store:
        run = store.create_run(NewRun(project="p", name="r"))
        futures = [
            store.submit_points(chunk(run.id, [0], [float(i)])) for i in range(200)
        ]  # the same step 200 times: the last one sent must win
        results = [f.result(30) for f in futures]
        assert results[0] == WriteResult(1, 0, 0)
        assert all(r == WriteResult(1, 0, 1) for r in results[1:])
        (series,) = store.read_series(run.id)
        assert series.values.tolist() == [199.0]


def test_the_store_url_must_be_postgresql(pg_url: str) -> None:
    with pytest.raises(StoreError) as info:
        PostgresStore("sqlite:///x.db")
    assert getattr(info.value, "field", "") == "store"
