"""Nothing acked is ever lost: SIGKILL in the middle of ingestion, SIGTERM drain.

The server runs as a subprocess; several streams send loss chunks and remember
what was acked; the server is killed at a random moment, restarted on the same
data directory (or PostgreSQL database), and every acked point must be there
with its value, and SQLite's `PRAGMA integrity_check` must say ok.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc

from ..conftest import child_pids, free_port, start_server

pytestmark = pytest.mark.slow

STREAMS = 6
CHUNK = 500


def _writer(
    target: str, run_id: str, series: str, acked: dict[int, float], stop: threading.Event
) -> None:
    """Streams consecutive steps of one series; records every acked point in `acked`."""
    sent: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    next_step = max(acked, default=-1) + 1

    def chunks():
        nonlocal next_step
        seq = 0
        while not stop.is_set():
            seq += 1
            steps = np.arange(next_step, next_step + CHUNK, dtype=np.int64)
            values = np.sin(steps * 0.001) + steps * 1e-6
            sent[seq] = (steps, values)
            next_step += CHUNK
            yield runs_pb2.LossChunk(
                sequence=seq,
                run_id=run_id,
                split=common_pb2.SPLIT_TRAIN,
                series=series,
                steps=steps.tolist(),
                values=values.tolist(),
            )
            time.sleep(0.002)

    try:
        with grpc.insecure_channel(target) as channel:
            for ack in runs_pb2_grpc.RunsStub(channel).StreamLoss(chunks(), timeout=120):
                if ack.accepted:
                    steps, values = sent.pop(ack.sequence)
                    acked.update(zip(steps.tolist(), values.tolist(), strict=True))
    except grpc.RpcError:
        pass  # the server was killed: what was acked is in `acked`


def _check(target: str, run_id: str, acked: dict[str, dict[int, float]]) -> None:
    # One series per call: after many cycles the whole run is larger than a message.
    big = [("grpc.max_receive_message_length", 512 * 1024 * 1024)]
    with grpc.insecure_channel(target, options=big) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        for series, points in acked.items():
            curves = stub.GetCurves(
                runs_pb2.GetCurvesRequest(run_id=run_id, series=[series]), timeout=60
            )
            have = {
                step: value
                for s in curves.series
                for step, value in zip(s.steps, s.values, strict=True)
            }
            missing = [step for step in points if step not in have]
            assert not missing, (
                f"{series}: {len(missing)} acked points lost, e.g. step {missing[0]}"
            )
            wrong = [step for step, value in points.items() if have[step] != value]
            assert not wrong, f"{series}: values changed at steps {wrong[:5]}"


def _integrity(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_mid_ingestion_loses_no_acked_point(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    data, port = tmp_path / "data", free_port()
    extra: tuple[str, ...] = ("--bertscore-model", "none", "--text-workers", "0")
    if backend == "postgres":  # the server's store is a PostgreSQL database
        extra += ("--store", request.getfixturevalue("pg_url"))
    server = start_server(data, port=port, extra=extra)
    with grpc.insecure_channel(server.target) as channel:
        run_id = (
            runs_pb2_grpc.RunsStub(channel)
            .CreateRun(runs_pb2.CreateRunRequest(project="p", name="kill"), timeout=10)
            .id
        )
    acked: dict[str, dict[int, float]] = {f"s{i}": {} for i in range(STREAMS)}
    rng = random.Random(1234)
    for cycle in range(4):
        stop = threading.Event()
        threads = [
            threading.Thread(target=_writer, args=(server.target, run_id, name, points, stop))
            for name, points in acked.items()
        ]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.2))
        server.signal(signal.SIGKILL)
        server.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
        assert sum(len(p) for p in acked.values()) > 0, f"cycle {cycle}: nothing was acked"
        if backend == "sqlite":
            _integrity(data / "evalstream.db")
        else:
            assert not (data / "evalstream.db").exists()  # it was PostgreSQL that held them
        server = start_server(data, port=port, extra=extra)
        _check(server.target, run_id, acked)
    server.signal(signal.SIGTERM)
    assert server.wait(30) == 0


def test_sigterm_drains_streams_and_loses_nothing_acked(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    server = start_server(data, port=port)
    with grpc.insecure_channel(server.target) as channel:
        run_id = (
            runs_pb2_grpc.RunsStub(channel)
            .CreateRun(runs_pb2.CreateRunRequest(project="p", name="term"), timeout=10)
            .id
        )
    acked: dict[str, dict[int, float]] = {f"s{i}": {} for i in range(4)}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(server.target, run_id, name, points, stop))
        for name, points in acked.items()
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    time.sleep(0.3)  # streams keep sending while the server drains
    stop.set()
    for t in threads:
        t.join(30)
    assert server.wait(30) == 0
    assert all(points for points in acked.values())
    _integrity(data / "evalstream.db")
    server = start_server(data, port=port)
    try:
        _check(server.target, run_id, acked)
    finally:
        server.signal(signal.SIGTERM)
        server.wait(30)


def test_a_killed_writer_process_loses_nothing_the_client_logged(tmp_path: Path) -> None:
    """SIGKILL of the store's writer mid-ingestion: the client resends, the server restarts it."""
    import os

    from evalstream import Client

    server = start_server(tmp_path / "data")
    (writer,) = child_pids(server.proc.pid)
    steps = 60_000
    try:
        with Client(server.target) as client:
            run = client.create_run("p", "writer-killed")
            done = threading.Event()

            def log() -> None:
                for step in range(steps):
                    run.log(step, loss=1.0 / (step + 1))
                    if step % 500 == 0:
                        time.sleep(0.005)
                done.set()

            thread = threading.Thread(target=log)
            thread.start()
            time.sleep(0.4)
            assert not done.is_set(), "the training loop ended before the kill"
            os.kill(writer, signal.SIGSTOP)  # held: chunks are in flight when it dies
            time.sleep(0.2)
            os.kill(writer, signal.SIGKILL)
            thread.join(60)
            run.flush(60)
            assert run.stats.reconnects >= 1  # the stream in flight ended UNAVAILABLE
            (series,) = run.curves()
            assert list(series.steps) == list(range(steps))
            assert list(series.values) == [1.0 / (s + 1) for s in range(steps)]
            run.finish("finished")
        (again,) = child_pids(server.proc.pid)
        assert again != writer
    finally:
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
    _integrity(tmp_path / "data" / "evalstream.db")
