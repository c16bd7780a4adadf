"""Replicas on one PostgreSQL database follow each other's writes.

Two `PostgresStore`s on one database stand for two server replicas: what one writes
reaches the other as news (LISTEN/NOTIFY, the run id only), its data versions move,
and a `VerdictHub` on the other answers and pushes from it; one of them at a time
exports the per-run gauges.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.store import ChangeMark, NewRun, PointChunk, PostgresStore
from evalstream_server.store.postgres._store import LISTENER_NAME

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg")


def chunk(run_id: str, steps: Any, values: Any, split: str = "train") -> PointChunk:
    return PointChunk(
        run_id,
        split,
        "loss",
        np.asarray(steps, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
    )


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


@pytest.fixture
def replicas(pg_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(pg_url, writers=2), PostgresStore(pg_url, writers=2)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def terminate_listeners(url: str) -> int:
    """Ends the listening connections of the stores on this database; how many there were."""
    with psycopg.connect(url, autocommit=True) as admin:
        return int(
            admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                (LISTENER_NAME,),
            ).fetchone()[0]
        )


class News:
    """What a store told its follower."""

    def __init__(self, store: PostgresStore) -> None:
        self.runs: list[str] = []
        self.missed = 0
        self.lock = threading.Lock()
        store.follow(self.changed, self.lost)

    def changed(self, runs: Any) -> None:
        with self.lock:
            self.runs.extend(runs)

    def lost(self) -> None:
        with self.lock:
            self.missed += 1


def test_a_write_through_one_replica_is_news_for_the_other_only(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    news_a, news_b = News(a), News(b)
    run = a.create_run(NewRun(project="p", name="r")).id
    before = b.data_version(run)
    a.write_points(chunk(run, [0, 1], [1.0, 0.9]))
    wait_until(lambda: run in news_b.runs)
    assert b.data_version(run) > before
    b_run = b.create_run(NewRun(project="p", name="s")).id
    b.write_points(chunk(b_run, [0], [1.0]))
    wait_until(lambda: b_run in news_a.runs)
    time.sleep(0.2)
    # Each store hears only of the other's writes, never of its own.
    assert run not in news_a.runs and b_run not in news_b.runs
    # A resent chunk changes nothing: no news, no version.
    seen, version = len(news_b.runs), b.data_version(run)
    a.write_points(chunk(run, [0, 1], [1.0, 0.9]))
    time.sleep(0.3)
    assert len(news_b.runs) == seen and b.data_version(run) == version


def test_change_marks_count_writes_name_the_writer_and_rewrites(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    run = a.create_run(NewRun(project="p", name="r")).id
    created = a.change_mark(run)
    assert created is not None and (created.version, created.rewritten_at) == (0, 0)
    a.write_points(chunk(run, [0, 1, 2], [1.0, 0.9, 0.8]))
    appended = b.change_mark(run)
    assert appended is not None and a.change_mark(run) == ChangeMark(1, 0, True)
    assert appended.version == 1 and not appended.by_this_replica
    assert appended.rewritten_at == 0  # past the series' end: no rewrite
    b.write_points(chunk(run, [1], [5.0]))  # at or before the end: a rewrite
    rewritten = b.change_mark(run)
    assert rewritten is not None and rewritten.by_this_replica
    assert rewritten.rewritten_at == rewritten.version == appended.version + 1
    b.write_points(chunk(run, [1], [5.0]))  # the same value again: nothing changed
    assert b.change_mark(run) == rewritten


def test_exactly_one_replica_exports_and_another_takes_over(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, writers=1) for _ in range(3)]
    try:
        wait_until(lambda: sum(s.is_exporter() for s in stores) == 1)
        time.sleep(1.5)  # the others keep trying the lock every second: still one
        assert sum(s.is_exporter() for s in stores) == 1
        exporter = next(s for s in stores if s.is_exporter())
        exporter.close()
        stores.remove(exporter)
        wait_until(lambda: sum(s.is_exporter() for s in stores) == 1)
    finally:
        for store in stores:
            store.close()


def test_a_lost_listener_reconnects_and_says_news_was_missed(
    replicas: tuple[PostgresStore, PostgresStore], pg_url: str
) -> None:
    a, b = replicas
    news_b = News(b)
    run = a.create_run(NewRun(project="p", name="r")).id
    version = b.data_version(run)
    # b's only: a listens once followed (or asked to export)
    assert terminate_listeners(pg_url) == 1
    wait_until(lambda: news_b.missed == 1)
    assert b.data_version(run) > version  # every run's caches are read again
    a.write_points(chunk(run, [0], [1.0]))  # and news flows again
    wait_until(lambda: run in news_b.runs)


# ------------------------------------------------------------------ the verdict hub


def drop_news(store: PostgresStore) -> None:
    """From now on the store's followers hear of no write (but still of a reconnect)."""
    store._followers[:] = [(lambda runs: None, missed) for _, missed in store._followers]


def decreasing(steps: np.ndarray) -> np.ndarray:
    return 2.0 * np.exp(-steps / 300.0) + 0.3


STEPS = np.arange(0, 1000, 10)


@pytest.fixture
def hub(replicas: tuple[PostgresStore, PostgresStore]) -> Iterator[VerdictHub]:
    """A verdict hub on replica b (the runs are written through a)."""
    hub = VerdictHub(replicas[1])
    try:
        yield hub
    finally:
        hub.close()


def healthy_run(a: PostgresStore, hub: VerdictHub) -> str:
    """A run written through ``a`` with a falling loss, held by ``hub`` (healthy)."""
    run = a.create_run(NewRun(project="p", name="r")).id
    a.write_points(chunk(run, STEPS, decreasing(STEPS)))
    assert hub.verdict(run).state == "healthy"
    return run


def test_the_hub_on_one_replica_follows_points_written_through_another(
    replicas: tuple[PostgresStore, PostgresStore], hub: VerdictHub
) -> None:
    a, b = replicas
    run = healthy_run(a, hub)
    pushed: list[str] = []
    watching = threading.Event()

    def watch() -> None:
        for verdict in hub.watch(run, {}, active=lambda: len(pushed) < 2, poll=30.0):
            pushed.append(verdict.state)
            watching.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert watching.wait(10)
    # Through the other replica only: B's hub learns of it from the news (its
    # watch polls every 30 s, so the push within seconds is the news's doing).
    a.write_points(chunk(run, [1000], [math.nan]))
    watcher.join(10)
    assert pushed == ["healthy", "diverged"]
    assert hub.verdict(run).state == "diverged"


def test_a_verdict_right_after_another_replicas_ack_includes_it(
    replicas: tuple[PostgresStore, PostgresStore], hub: VerdictHub
) -> None:
    """No waiting for the news: the hub reads the run's mark before answering."""
    a, b = replicas
    run = healthy_run(a, hub)
    drop_news(b)
    a.write_points(chunk(run, [1000], [math.inf]))
    assert hub.verdict(run).state == "diverged"


def test_a_rewrite_through_another_replica_rebuilds_the_hubs_analyzer(
    replicas: tuple[PostgresStore, PostgresStore], hub: VerdictHub
) -> None:
    a, b = replicas
    run = healthy_run(a, hub)
    a.write_points(chunk(run, [500], [math.nan]))  # inside the series: a rewrite
    assert hub.verdict(run).state == "diverged"
    a.write_points(chunk(run, [500], [float(decreasing(np.array([500]))[0])]))  # undone
    assert hub.verdict(run).state == "healthy"


def test_checkpoints_and_status_through_another_replica_reach_the_hub(
    replicas: tuple[PostgresStore, PostgresStore], hub: VerdictHub
) -> None:
    a, b = replicas
    run = healthy_run(a, hub)
    a.write_points(chunk(run, STEPS[::10], decreasing(STEPS[::10]) + 0.05, "validation"))
    assert hub.verdict(run).checkpoints == ()
    a.log_checkpoint(run, "validation", 500, {"accuracy": 0.7})
    graded = hub.verdict(run).checkpoints
    assert [(c.step, c.metric) for c in graded] == [(500, "accuracy")]
    ended: list[str] = []

    def watch() -> None:
        for verdict in hub.watch(run, {}, active=lambda: True, poll=30.0):
            ended.append(verdict.state)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    wait_until(lambda: len(ended) == 1)
    a.set_status(run, "finished")  # ends the watch on the other replica
    watcher.join(10)
    assert not watcher.is_alive()


def test_after_its_listener_reconnects_the_hub_reads_the_runs_it_holds_again(
    replicas: tuple[PostgresStore, PostgresStore], hub: VerdictHub, pg_url: str
) -> None:
    a, b = replicas
    run = healthy_run(a, hub)  # held by the hub from here on
    woken: list[bool] = []
    changes = hub.changes(run, active=lambda: not woken, poll=30.0)
    next(changes)  # the first yield comes at once

    def follow() -> None:
        woken.extend(changes)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    drop_news(b)  # this write's news is lost, as if sent while b was disconnected
    a.write_points(chunk(run, [1000], [math.nan]))
    time.sleep(0.3)
    assert woken == []
    terminate_listeners(pg_url)
    follower.join(10)  # woken by the re-read after the reconnect
    assert woken == [False]
    assert hub._runs[run].analyzer.last_steps() == {("train", "loss"): 1000}
