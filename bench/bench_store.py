"""Store-level benchmarks of the embedded SQLite store (no gRPC in the loop).

Three measurements, matching the targets of the run-store issue:

- ``ingest``: sustained durable ingest, ``threads`` writers each streaming its own
  series in chunks of ``chunk`` points (int64 steps, float64 values, increasing
  steps: the common case). Target >= 10,000,000 points/s with 8 threads, 10,000-point
  chunks.
- ``latency``: p50/p99 of ``write_points`` for one-point chunks from ``threads``
  concurrent writers (group commit). Target p99 <= 20 ms with 100 threads.
- ``read``: ``read_series`` of a ``points``-point series, then ``downsample_minmax``
  to 2,000 points. Target <= 50 ms in total.

Run: ``.venv/bin/python bench/bench_store.py [--quick]``; it prints one JSON object
per measurement. Importable: each ``bench_*`` function returns its figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from evalstream_server.store import NewRun, PointChunk, SQLiteStore
from evalstream_server.store.downsample import downsample_minmax


def _with_store(
    fn: Callable[[SQLiteStore], dict[str, Any]], *, synchronous: str = "FULL"
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="evalstream-bench-") as d:
        store = SQLiteStore(Path(d) / "evalstream.db", synchronous=synchronous)
        try:
            return fn(store)
        finally:
            store.close()


def bench_ingest(
    *, threads: int = 8, chunk: int = 10_000, seconds: float = 3.0, synchronous: str = "FULL"
) -> dict[str, Any]:
    """Durable points/s with ``threads`` writers, each blocking on its own chunk's ack."""

    def run(store: SQLiteStore) -> dict[str, Any]:
        run_id = store.create_run(NewRun(project="bench", name="ingest")).id
        counts = [0] * threads
        stop = threading.Event()
        start = threading.Barrier(threads + 1)
        values = np.random.default_rng(0).random(chunk)

        def writer(i: int) -> None:
            step = 0
            start.wait()
            while not stop.is_set():
                steps = np.arange(step, step + chunk, dtype=np.int64)
                store.write_points(PointChunk(run_id, "train", f"loss{i}", steps, values))
                step += chunk
                counts[i] += chunk

        pool = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - t0
        total = sum(counts)
        return {
            "bench": "ingest",
            "threads": threads,
            "chunk": chunk,
            "synchronous": synchronous,
            "points": total,
            "seconds": round(elapsed, 3),
            "points_per_s": round(total / elapsed),
        }

    return _with_store(run, synchronous=synchronous)


def bench_latency(
    *, threads: int = 100, writes_per_thread: int = 100, synchronous: str = "FULL"
) -> dict[str, Any]:
    """Latency of one-point ``write_points`` calls from ``threads`` concurrent writers."""

    def run(store: SQLiteStore) -> dict[str, Any]:
        run_id = store.create_run(NewRun(project="bench", name="latency")).id
        latencies: list[list[float]] = [[] for _ in range(threads)]
        start = threading.Barrier(threads)

        def writer(i: int) -> None:
            start.wait()
            for step in range(writes_per_thread):
                chunk = PointChunk(
                    run_id,
                    "train",
                    f"s{i}",
                    np.array([step], dtype=np.int64),
                    np.array([1.0 / (step + 1)]),
                )
                t0 = time.perf_counter()
                store.write_points(chunk)
                latencies[i].append(time.perf_counter() - t0)

        pool = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
        t0 = time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - t0
        lat = np.array([x for xs in latencies for x in xs]) * 1000
        return {
            "bench": "latency",
            "threads": threads,
            "writes": len(lat),
            "synchronous": synchronous,
            "writes_per_s": round(len(lat) / elapsed),
            "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "max_ms": round(float(lat.max()), 2),
        }

    return _with_store(run, synchronous=synchronous)


def bench_read(
    *, points: int = 1_000_000, chunk: int = 10_000, max_points: int = 2_000, repeat: int = 5
) -> dict[str, Any]:
    """read_series of one ``points``-point series, then downsampling to ``max_points``."""

    def run(store: SQLiteStore) -> dict[str, Any]:
        run_id = store.create_run(NewRun(project="bench", name="read")).id
        rng = np.random.default_rng(0)
        futures = []
        for lo in range(0, points, chunk):
            steps = np.arange(lo, min(lo + chunk, points), dtype=np.int64)
            futures.append(
                store.submit_points(
                    PointChunk(run_id, "train", "loss", steps, rng.random(len(steps)), steps * 0.1)
                )
            )
        for f in futures:
            f.result()
        read_ms, total_ms = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            (series,) = store.read_series(run_id, series=("loss",))
            t1 = time.perf_counter()
            keep = downsample_minmax(series.steps, series.values, max_points)
            t2 = time.perf_counter()
            read_ms.append((t1 - t0) * 1000)
            total_ms.append((t2 - t0) * 1000)
        return {
            "bench": "read",
            "points": series.total_points,
            "kept": len(keep),
            "read_ms_best": round(min(read_ms), 2),
            "total_ms_best": round(min(total_ms), 2),
            "total_ms_median": round(float(np.median(total_ms)), 2),
        }

    return _with_store(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--synchronous", default="FULL", help="FULL (default) or NORMAL")
    parser.add_argument("--only", choices=("ingest", "latency", "read"), default=None)
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 5.0
    if args.only in (None, "ingest"):
        print(json.dumps(bench_ingest(seconds=seconds, synchronous=args.synchronous)), flush=True)
    if args.only in (None, "latency"):
        writes = 20 if args.quick else 100
        print(
            json.dumps(bench_latency(writes_per_thread=writes, synchronous=args.synchronous)),
            flush=True,
        )
    if args.only in (None, "read"):
        print(json.dumps(bench_read()), flush=True)


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    main()
