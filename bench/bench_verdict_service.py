"""Verdict figures through the service: GetVerdict latency and WatchVerdict push latency.

Targets (the verdicts issue): GetVerdict on a run with 1,000,000 training points
and 1,000 validation points at most 20 ms p99 (the server keeps an incremental
analyzer per run, so a call does not rescan the points); WatchVerdict push
latency at most 100 ms p99 with 100 watchers, measured from the ack of the chunk
that changes the verdict to the arrival of the pushed verdict at each watcher.

    python bench/bench_verdict_service.py [--watchers 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Server  # noqa: E402
from evalstream import Client  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _curves(n_train: int, n_val: int, *, rise_from: float = 0.6) -> tuple[Any, ...]:
    rng = np.random.default_rng(0)
    steps = np.arange(n_train, dtype=np.int64)
    train = 2.5 * np.exp(-steps / (n_train / 6)) + 0.2 + rng.normal(0, 0.005, n_train)
    val_steps = np.linspace(0, n_train - 1, n_val).astype(np.int64)
    val = 2.5 * np.exp(-val_steps / (n_train / 6)) + 0.35
    val += np.maximum(0, val_steps - rise_from * n_train) * (3.0 / n_train)
    return steps, train, val_steps, val


def bench_get_verdict(target: str, *, calls: int = 200) -> dict[str, float]:
    """GetVerdict p50/p99 on 1,000,000 training + 1,000 validation points (after one warm call)."""
    steps, train, val_steps, val = _curves(1_000_000, 1_000)
    with Client(target) as client:
        run = client.create_run("bench", f"verdict-{time.time_ns()}", chunk_points=50_000)
        run.log_many(steps, train)
        run.log_many(val_steps, val, split="validation")
        run.flush(timeout=300)
        start = time.perf_counter()
        first = run.verdict()
        cold = time.perf_counter() - start
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            run.verdict()
            times.append(time.perf_counter() - start)
        # With a new point acked before every call, so that each call recomputes
        # the verdict (no cached answer) from the incremental state.
        fresh = []
        for i in range(calls):
            run.log(int(steps[-1]) + 1 + i, loss=float(train[-1]))
            run.flush(timeout=30)
            start = time.perf_counter()
            run.verdict()
            fresh.append(time.perf_counter() - start)
        run.finish()
    return {
        "cold_ms": cold * 1e3,
        "p50_ms": _pct(times, 50) * 1e3,
        "p99_ms": _pct(times, 99) * 1e3,
        "fresh_p50_ms": _pct(fresh, 50) * 1e3,
        "fresh_p99_ms": _pct(fresh, 99) * 1e3,
        "state": first.state,
    }  # type: ignore[dict-item]


def bench_watch(target: str, *, watchers: int = 100, rounds: int = 5) -> dict[str, float]:
    """Push latency from the ack of the chunk that turns a run OVERFITTING to each watcher."""
    latencies: list[float] = []
    missed = 0
    for round_ in range(rounds):
        steps, train, val_steps, val = _curves(20_000, 200)
        cut = int(0.6 * 20_000)
        with Client(target) as client:
            run = client.create_run("bench", f"watch-{round_}-{time.time_ns()}")
            run.log_many(steps[:cut], train[:cut])
            run.log_many(val_steps[val_steps < cut], val[val_steps < cut], split="validation")
            run.flush(timeout=60)
            arrived: dict[int, float] = {}
            ready = threading.Barrier(watchers + 1)
            lock = threading.Lock()

            def watch(
                i: int,
                run_id: str,
                ready: threading.Barrier,
                lock: threading.Lock,
                arrived: dict[int, float],
            ) -> None:
                with Client(target) as c:
                    first = True
                    for v in c.watch(run_id, timeout=120):
                        if first:
                            first = False
                            ready.wait(30)
                            continue
                        if v.state == "overfitting":
                            with lock:
                                arrived[i] = time.perf_counter()

            threads = [
                threading.Thread(target=watch, args=(i, run.id, ready, lock, arrived), daemon=True)
                for i in range(watchers)
            ]
            for t in threads:
                t.start()
            ready.wait(60)
            time.sleep(0.2)
            # One chunk of training points and the validation points that show the rise.
            import grpc
            from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc

            with grpc.insecure_channel(target) as channel:
                stub = runs_pb2_grpc.RunsStub(channel)
                chunks = [
                    runs_pb2.LossChunk(sequence=1, run_id=run.id, split=common_pb2.SPLIT_TRAIN,
                                       steps=steps[cut:].tolist(), values=train[cut:].tolist()),
                    runs_pb2.LossChunk(sequence=2, run_id=run.id, split=common_pb2.SPLIT_VALIDATION,
                                       steps=val_steps[val_steps >= cut].tolist(),
                                       values=val[val_steps >= cut].tolist()),
                ]  # fmt: skip
                acked = 0.0
                for _ack in stub.StreamLoss(iter(chunks), timeout=60):
                    acked = time.perf_counter()  # the second ack: the chunk that shows the rise
            deadline = time.perf_counter() + 10
            while len(arrived) < watchers and time.perf_counter() < deadline:
                time.sleep(0.005)
            latencies += [t - acked for t in arrived.values()]
            missed += watchers - len(arrived)
            run.finish()
            for t in threads:
                t.join(10)
    return {
        "pushes": len(latencies),
        "missed": missed,
        "p50_ms": _pct(latencies, 50) * 1e3 if latencies else float("nan"),
        "p99_ms": _pct(latencies, 99) * 1e3 if latencies else float("nan"),
        "max_ms": max(latencies) * 1e3 if latencies else float("nan"),
    }


def run_verdict_bench(args: argparse.Namespace) -> None:
    """Prints the verdict figures (used by bench/run.py)."""
    with tempfile.TemporaryDirectory(prefix="evalstream-bench-verdict-") as tmp:
        server = Server(Path(tmp), ("--bertscore-model", "none"))
        try:
            g = bench_get_verdict(server.target)
            w = bench_watch(
                server.target,
                watchers=getattr(args, "watchers", 100),
                rounds=getattr(args, "rounds", 5),
            )
        finally:
            server.close()
    print("\nverdicts (through the service)")
    print(
        "  GetVerdict, 1,000,000 train + 1,000 validation points: "
        f"first call {g['cold_ms']:.0f} ms "
        f"(builds the analyzer), then p50 {g['p50_ms']:.2f} ms, p99 {g['p99_ms']:.2f} ms unchanged "
        f"data; with a new point before each call p50 {g['fresh_p50_ms']:.2f} ms, "
        f"p99 {g['fresh_p99_ms']:.2f} ms (target p99 <= 20 ms: "
        f"{'met' if max(g['p99_ms'], g['fresh_p99_ms']) <= 20 else 'MISSED'}); state {g['state']}"
    )
    print(
        f"  WatchVerdict, {getattr(args, 'watchers', 100)} watchers: {int(w['pushes'])} pushes "
        f"({int(w['missed'])} missed), push latency after the client got the ack "
        f"(negative: the push came first) p50 {w['p50_ms']:.1f} ms, "
        f"p99 {w['p99_ms']:.1f} ms, max {w['max_ms']:.1f} ms "
        f"(target p99 <= 100 ms: {'met' if w['p99_ms'] <= 100 else 'MISSED'})"
    )


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    run_verdict_bench(parser.parse_args())
