"""Client failover over replicas of one PostgreSQL store, and a database restarted mid-stream.

Two `evalstream-server` processes serve one database; a client given both
targets logs a run while the replica its stream goes through is SIGKILLed: the
run logger resends what was not acked through the other replica and the
training loop never sees an error, while a WatchVerdict on the other replica,
started before the kill, follows the run to its end. Then PostgreSQL itself is restarted under a
streaming logger: the server answers UNAVAILABLE, the logger resends, and every
point is stored once.
"""

from __future__ import annotations

import math
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from evalstream import Client

from ..conftest import PgCluster, ServerProcess, free_port, pg_skip_or_fail, start_server

pytestmark = pytest.mark.slow

STEPS = 30_000
CHUNK_POINTS = 250  # many small chunks: the kill lands mid-stream, with chunks unacked


def _value(step: int) -> float:
    """A falling loss with values no rounding could produce by accident, and a NaN, stored
    exactly, at the last step: logged after the kill, so the run diverges through the
    survivor."""
    return math.nan if step == STEPS - 1 else 2.0 * math.exp(-step / 5000) + 0.3 + step * 1e-9


def _streamed(server: ServerProcess) -> float:
    """How many StreamLoss messages `server` has received (its Prometheus counter)."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    pattern = (
        r'evalstream_grpc_server_msg_received_total\{[^}]*grpc_method="StreamLoss"[^}]*\} (\S+)'
    )
    return sum(float(v) for v in re.findall(pattern, text))


def _train(run, errors: list[BaseException], started: threading.Event) -> None:
    """A training loop: logs every step, a little slower than the logger can send."""
    try:
        for step in range(STEPS):
            run.log(step, loss=_value(step))
            if step == 2_000:
                started.set()
            if step % 200 == 0:
                time.sleep(0.01)
    except BaseException as exc:  # noqa: BLE001 - the test asserts there is none
        errors.append(exc)
    finally:
        started.set()


def _start_training(run) -> tuple[threading.Thread, list[BaseException]]:
    """`_train` on its own thread, once it has logged its first 2,000 steps; the thread
    and the list of what the loop raised."""
    errors: list[BaseException] = []
    started = threading.Event()
    loop = threading.Thread(target=_train, args=(run, errors, started))
    loop.start()
    assert started.wait(60)
    return loop, errors


def _assert_stored_once(client: Client, run_id: str) -> None:
    (series,) = client.curves(run_id, series=["loss"], splits=["train"])
    assert list(series.steps) == list(range(STEPS)), "a point lost or stored twice"
    wrong = [
        s
        for s, v in zip(series.steps, series.values, strict=True)
        if not (math.isnan(v) and math.isnan(_value(s))) and v != _value(s)
    ]
    assert not wrong, f"values changed at steps {wrong[:5]}"


def _replica(tmp_path: Path, name: str, store: str) -> ServerProcess:
    extra = ("--bertscore-model", "none", "--text-workers", "0", "--store", store)
    return start_server(tmp_path / name, port=free_port(), extra=extra)


def test_killing_the_replica_a_logger_streams_through_loses_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    a, b = _replica(tmp_path, "a", pg_url), _replica(tmp_path, "b", pg_url)
    replicas = [a, b]
    try:
        targets = [f"127.0.0.1:{sp.target.rsplit(':', 1)[1]}" for sp in replicas]
        with Client(targets, timeout=30) as client:
            run = client.create_run("vqa", "failover", chunk_points=CHUNK_POINTS)
            loop, errors = _start_training(run)
            deadline = time.monotonic() + 30
            while run.stats.points_acked == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert run.stats.points_acked > 0, "nothing acked before the kill"
            # The logger's one stream goes through one replica: the one whose counter grows.
            counts = [_streamed(sp) for sp in replicas]
            assert sorted(c > 0 for c in counts) == [False, True], counts
            victim = replicas[counts.index(max(counts))]
            survivor = replicas[1 - replicas.index(victim)]
            # A watch on the survivor, from before the kill: its first verdict is read from
            # what was written through the victim, and it goes on after the kill.
            survivor_target = f"127.0.0.1:{survivor.target.rsplit(':', 1)[1]}"
            pushed: list[str] = []
            watching = threading.Event()

            def watch() -> None:
                with Client(survivor_target, timeout=30) as watcher:
                    for verdict in watcher.watch(run.id, timeout=180):
                        pushed.append(verdict.state)
                        watching.set()

            watch_thread = threading.Thread(target=watch)
            watch_thread.start()
            assert watching.wait(30)
            before = _streamed(survivor)
            victim.signal(signal.SIGKILL)
            victim.wait(10)
            assert loop.is_alive(), "the training loop ended before the kill"
            loop.join(120)
            assert not loop.is_alive()
            assert errors == []  # the training loop never saw the replica die
            run.flush(120)
            run.finish()  # SetRunStatus: through the survivor, retried if it hit the victim
            assert run.stats.points_acked == STEPS
            # At least the broken stream; not a series of new streams sent to the dead replica
            # (round robin picks only replicas whose connection is up).
            assert 1 <= run.stats.reconnects <= 3, run.stats
            assert _streamed(survivor) > before  # the rest went through the survivor
            watch_thread.join(60)
            assert not watch_thread.is_alive()  # the run finished: the watch ended
            # Not diverged before the kill; the NaN logged after it reached the watch.
            assert pushed[0] != "diverged" and pushed[-1] == "diverged", pushed
        with Client(survivor_target, timeout=30) as only:
            assert only.get_run(run.id).info.status == "finished"
            _assert_stored_once(only, run.id)
    finally:
        for sp in replicas:
            if sp.proc.poll() is None:
                sp.signal(signal.SIGKILL)
                sp.wait(10)


def test_postgres_restarted_mid_ingestion_loses_nothing_acked(tmp_path: Path) -> None:
    pg_skip_or_fail()
    cluster = PgCluster()  # its own cluster: restarting the session's would break other tests
    try:
        cluster.start()
        server = _replica(tmp_path, "data", cluster.new_database())
        try:
            with Client(server.target, timeout=30) as client:
                run = client.create_run("vqa", "pg-restart", chunk_points=CHUNK_POINTS)
                loop, errors = _start_training(run)
                cluster.restart()  # an immediate stop, as a crash: connections drop mid-write
                assert loop.is_alive(), "the training loop ended before the restart"
                loop.join(120)
                assert errors == []
                run.flush(120)
                run.finish()
                assert run.stats.points_acked == STEPS
                # The server answered UNAVAILABLE while its database was away; the logger
                # reconnected and resent what was not acked.
                assert run.stats.reconnects >= 1
                assert run.stats.chunks_resent >= 1
                _assert_stored_once(client, run.id)
        finally:
            server.signal(signal.SIGKILL)
            server.wait(10)
    finally:
        cluster.stop()
