"""The store's writer in a process of its own: errors, a dying writer, closing, the loop."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evalstream_server.store import (
    AlreadyExists,
    InvalidInput,
    NewRun,
    NotFound,
    PointChunk,
    SQLiteStore,
    StoreClosed,
    WriteResult,
    WriterLost,
)


def points(run_id: str, lo: int, n: int, series: str = "loss") -> PointChunk:
    steps = np.arange(lo, lo + n)
    return PointChunk(run_id, "train", series, steps, steps * 0.5)


def child_pid(store: SQLiteStore) -> int:
    proc = store._link._proc  # type: ignore[union-attr]
    assert proc is not None
    return proc.pid


def test_writes_and_errors_cross_the_process(db_path: Path) -> None:
    with SQLiteStore(db_path, writer="process") as store:
        run = store.create_run(NewRun(project="p", name="a", hyperparameters={"lr": 0.1}))
        assert store.get_run(run.id) == run
        with pytest.raises(AlreadyExists):  # raised in the writer process
            store.create_run(NewRun(project="p", name="a"))
        with pytest.raises(NotFound):
            store.write_points(points("r_0000000000000000", 0, 3))
        with pytest.raises(InvalidInput) as bad:  # refused before it crosses
            store.write_points(PointChunk(run.id, "train", "loss", np.arange(3), np.ones(2)))
        assert bad.value.field == "values"
        assert store.write_points(points(run.id, 0, 3)) == WriteResult(3, 0, 0)
        assert store.write_points(points(run.id, 0, 3)) == WriteResult(0, 3, 0)
        assert store.log_checkpoint(run.id, "validation", 2, {"f1": 0.5}) == 1
        assert store.set_status(run.id, "finished").status == "finished"
        assert store.data_version(run.id) > 0
        (series,) = store.read_series(run.id)
        assert series.values.tolist() == [0.0, 0.5, 1.0]


def test_a_killed_writer_fails_what_was_in_flight_and_the_next_write_restarts_it(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SQLiteStore(db_path, writer="process") as store:
        run = store.create_run(NewRun(project="p", name="a"))
        assert store.write_points(points(run.id, 0, 10)).stored == 10
        first = child_pid(store)
        os.kill(first, signal.SIGSTOP)  # hold it, so that writes are in flight when it dies
        pending = [store.submit_points(points(run.id, 10 + i, 1)) for i in range(5)]
        os.kill(first, signal.SIGKILL)
        for future in pending:
            with pytest.raises(WriterLost, match="writer process exited"):
                future.result(timeout=30)
        # Under the server's loggers (JSON lines), with what an operator needs.
        (record,) = [r for r in caplog.records if r.name == "evalstream.store"]
        assert record.levelname == "ERROR" and record.getMessage() == "store writer process exited"
        assert record.fields == {"status": -signal.SIGKILL, "writes_failed": 5}  # type: ignore[attr-defined]
        # The next write starts another writer; what was committed before is there.
        assert store.write_points(points(run.id, 100, 3)).stored == 3
        assert child_pid(store) != first
        assert store.writer_restarts() == 1  # for the metrics
        steps = store.read_series(run.id)[0].steps.tolist()
        assert steps[:10] == list(range(10)) and steps[-3:] == [100, 101, 102]


def test_close_commits_everything_queued(db_path: Path) -> None:
    # Room for all 2,000 at once: with the default 1,024 the test would depend on
    # the writer keeping pace with the submitting loop (a loaded CI machine did not).
    store = SQLiteStore(db_path, writer="process", max_queue=4096)
    run = store.create_run(NewRun(project="p", name="a"))
    futures = [store.submit_points(points(run.id, i, 1, f"s{i % 7}")) for i in range(2000)]
    store.close()
    assert all(f.result(timeout=0).stored == 1 for f in futures)
    with pytest.raises(StoreClosed):
        store.write_points(points(run.id, 5000, 1))
    with SQLiteStore(db_path) as again:
        assert sum(len(s.steps) for s in again.read_series(run.id)) == 2000


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_on_an_attached_loop_large_and_small_writes_settle(db_path: Path, loop_kind: str) -> None:
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    store = SQLiteStore(db_path, writer="process")
    run = store.create_run(NewRun(project="p", name="a"))
    big = 1_500_000  # 24 MB of points: a frame larger than the socket's buffers

    async def main() -> list[WriteResult]:
        store.attach_loop(asyncio.get_running_loop())
        futures = [store.submit_points(points(run.id, i, 1, f"s{i % 5}")) for i in range(500)]
        futures.append(store.submit_points(points(run.id, 0, big, "big")))
        # A write from another thread while the loop owns the socket.
        other: list[WriteResult] = []
        thread = threading.Thread(
            target=lambda: other.append(store.write_points(points(run.id, 0, 7, "other")))
        )
        thread.start()
        results = [await asyncio.wrap_future(f) for f in futures]
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        return results + other

    try:
        results = loop.run_until_complete(main())
    finally:
        loop.close()
        store.close()
    assert [r.stored for r in results] == [1] * 500 + [big, 7]
    with SQLiteStore(db_path) as again:
        stored = {s.name: len(s.steps) for s in again.read_series(run.id)}
    assert stored == {"big": big, "other": 7, **{f"s{k}": 100 for k in range(5)}}


def test_a_lost_writer_is_unavailable_to_clients_and_bad_writer_options_are_refused(
    db_path: Path,
) -> None:
    import grpc
    from evalstream_server.api._status import store_status

    assert store_status(WriterLost("gone"))[0] == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(InvalidInput) as bad:
        SQLiteStore(db_path, writer="fork")
    assert bad.value.field == "writer"


def test_a_writer_that_cannot_be_restarted_is_a_store_error_until_it_can(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import time

    from evalstream_server.store import StoreError

    with SQLiteStore(db_path, writer="process") as store:
        run = store.create_run(NewRun(project="p", name="a"))
        os.kill(child_pid(store), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while store._link._sock is not None:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the exit was not noticed"
            time.sleep(0.01)

        def no_more_processes(*args: object, **kwargs: object) -> None:
            raise BlockingIOError(11, "Resource temporarily unavailable")

        with monkeypatch.context() as patched:
            patched.setattr(subprocess, "Popen", no_more_processes)
            with pytest.raises(StoreError, match="cannot start the store's writer process"):
                store.write_points(points(run.id, 0, 3))
        assert store.write_points(points(run.id, 0, 3)).stored == 3


def test_a_failing_writer_process_logs_a_json_line_and_exits_1(tmp_path: Path) -> None:
    import json
    import socket
    import subprocess
    import sys

    ours, theirs = socket.socketpair()
    with ours, theirs:
        # A directory where the database should be: the child cannot open it.
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from evalstream_server.store.sqlite._child import child_main; "
                "child_main(sys.argv[1], 'FULL', int(sys.argv[2]), 'INFO')",
                str(tmp_path),
                str(theirs.fileno()),
            ],
            pass_fds=(theirs.fileno(),),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert child.returncode == 1
    (line,) = child.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "evalstream.store"
    assert entry["msg"] == "store writer process failed"
    assert entry["path"] == str(tmp_path) and entry["pid"] > 0
    assert "Traceback" in entry["exc"]


def test_a_writer_that_dies_at_start_is_restarted_with_a_back_off(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys
    import time

    spawned: list[float] = []
    popen = subprocess.Popen

    def counting(*args: Any, **kwargs: Any) -> Any:
        spawned.append(time.monotonic())
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    with SQLiteStore(db_path, writer="process") as store:
        run = store.create_run(NewRun(project="p", name="a"))
        with monkeypatch.context() as broken:
            broken.setattr(sys, "executable", "/bin/false")  # every new writer exits 1 at once
            os.kill(child_pid(store), signal.SIGKILL)
            deadline = time.monotonic() + 30
            while store._link._sock is not None:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the exit was not noticed"
                time.sleep(0.01)
            # The killed writer had answered: the next write starts another at once.
            with pytest.raises(WriterLost, match=r"exited \(status 1\)"):
                store.write_points(points(run.id, 0, 3), timeout=30)
            # That one died without answering: for 1.5 s, writes are refused and only
            # a few writers start (0.1, 0.2, 0.4, 0.8 s apart), not one per write.
            attempts, refusals = 0, []
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                attempts += 1
                with pytest.raises(WriterLost) as lost:
                    store.write_points(points(run.id, 0, 3), timeout=30)
                if "starts again in" in str(lost.value):
                    refusals.append(str(lost.value))
                time.sleep(0.001)
            started = len(spawned) - 2  # the first writer and the one after the kill
            assert 2 <= started <= 5 < attempts
            assert len(refusals) >= attempts - started
            assert "in a row before answering a write" in refusals[-1]
            gaps = np.diff(spawned[1:])
            assert np.all(gaps >= 0.1) and gaps[-1] >= 2 * 0.1 * 2 ** (len(gaps) - 3)
        # Repaired: once its back-off ends, a writer starts and works; the count resets.
        time.sleep(max(0.0, store._link._restart_at - time.monotonic()) + 0.01)  # type: ignore[union-attr]
        assert store.write_points(points(run.id, 0, 3)).stored == 3
        assert store._link._unanswered == 0  # type: ignore[union-attr]
        assert store.writer_restarts() == len(spawned) - 1
    with SQLiteStore(db_path, writer="thread") as store:
        assert store.writer_restarts() is None


def test_a_full_queue_is_overloaded_and_drains(db_path: Path) -> None:
    from evalstream_server.store import StoreOverloaded

    with SQLiteStore(db_path, writer="process", max_queue=4) as store:
        run = store.create_run(NewRun(project="p", name="a"))
        writer = child_pid(store)
        os.kill(writer, signal.SIGSTOP)  # in flight until it goes on
        try:
            held = [store.submit_points(points(run.id, i, 1)) for i in range(4)]
            refused = store.submit_points(points(run.id, 4, 1))
            with pytest.raises(StoreOverloaded):
                refused.result(timeout=0)
            assert store.queue_depth() == 4
        finally:
            os.kill(writer, signal.SIGCONT)
        assert [f.result(timeout=30).stored for f in held] == [1, 1, 1, 1]
        assert store.queue_depth() == 0
        assert store.write_points(points(run.id, 4, 1)).stored == 1


def test_a_sent_write_cannot_be_cancelled_and_its_batch_settles(db_path: Path) -> None:
    with SQLiteStore(db_path, writer="process") as store:
        run = store.create_run(NewRun(project="p", name="a"))
        writer = child_pid(store)
        os.kill(writer, signal.SIGSTOP)
        try:
            futures = [store.submit_points(points(run.id, i, 1)) for i in range(3)]
            assert not futures[1].cancel()  # running, as the writer thread marks them
        finally:
            os.kill(writer, signal.SIGCONT)
        assert [f.result(timeout=30).stored for f in futures] == [1, 1, 1]
