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


def bench_get_verdict(
    target: str, *, calls: int = 200, train_points: int = 1_000_000
) -> dict[str, float]:
    """GetVerdict p50/p99 on ``train_points`` training + 1,000 validation points (after one
    warm call)."""
    steps, train, val_steps, val = _curves(train_points, 1_000)
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


def _watch_round(
    target: str, writer_target: str, *, watchers: int, push_timeout: float, name: str
) -> list[float]:
    """One round of `bench_watch`: the latencies (s) of the pushes that came in time."""
    steps, train, val_steps, val = _curves(20_000, 200)
    cut = int(0.6 * 20_000)
    with Client(writer_target) as client:
        run = client.create_run("bench", f"watch-{name}-{time.time_ns()}")
        run.log_many(steps[:cut], train[:cut])
        run.log_many(val_steps[val_steps < cut], val[val_steps < cut], split="validation")
        run.flush(timeout=60)
        arrived: dict[int, float] = {}
        errors: list[BaseException] = []
        ready = threading.Barrier(watchers + 1)
        lock = threading.Lock()
        stop = threading.Event()
        clients = [Client(target) for _ in range(watchers)]

        def watch(i: int, c: Client) -> None:
            try:
                first = True
                for v in c.watch(run.id, timeout=120):
                    if first:
                        first = False
                        ready.wait(30)
                        continue
                    if v.state == "overfitting":
                        with lock:
                            arrived[i] = time.perf_counter()
            except Exception as exc:  # noqa: BLE001 - reported below, or the end of the round
                if not stop.is_set():
                    errors.append(exc)
                    ready.abort()

        threads = [
            threading.Thread(target=watch, args=(i, c), daemon=True) for i, c in enumerate(clients)
        ]
        for t in threads:
            t.start()
        try:
            ready.wait(60)
        except threading.BrokenBarrierError:
            stop.set()
            for c in clients:
                c.close()
            raise RuntimeError(
                f"the watchers on {target} did not start: {errors[:1] or 'timed out'}"
            ) from None
        time.sleep(0.2)
        # One chunk of training points and the validation points that show the rise.
        import grpc
        from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc

        with grpc.insecure_channel(writer_target) as channel:
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
        deadline = time.perf_counter() + push_timeout
        while len(arrived) < watchers and time.perf_counter() < deadline:
            time.sleep(0.005)
        with lock:
            round_latencies = [t - acked for t in arrived.values()]
        run.finish()
        # Closing the watchers' clients ends their watches, whether or not the
        # finish reached their server: no watch outlives its round.
        stop.set()
        for c in clients:
            c.close()
        end = time.monotonic() + 10
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        return round_latencies


def bench_watch(
    target: str,
    *,
    watchers: int = 100,
    rounds: int = 5,
    write_target: str | None = None,
    push_timeout: float = 10.0,
) -> dict[str, float]:
    """Push latency from the ack of the chunk that turns a run OVERFITTING to each watcher.

    The watchers watch through ``target``; the run is created and written through
    ``write_target`` (default: ``target``). Another replica of the same database
    there measures the push across replicas: from the writing replica's ack to the
    watching replica's push, both read on this process's clock. Each round waits
    ``push_timeout`` s for its pushes; a round with none ends the measurement
    (``silent``: nothing would come in later rounds either), so that a server that
    never pushes costs one timeout, not one per round.
    """
    writer_target = write_target or target
    latencies: list[float] = []
    missed = 0
    done_rounds = 0
    silent = False
    for round_ in range(rounds):
        round_latencies = _watch_round(
            target, writer_target, watchers=watchers, push_timeout=push_timeout, name=str(round_)
        )
        latencies += round_latencies
        missed += watchers - len(round_latencies)
        done_rounds += 1
        if not round_latencies:
            silent = True
            break
    return {
        "pushes": len(latencies),
        "missed": missed,
        "rounds": done_rounds,
        "silent": silent,
        "push_timeout": push_timeout,
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
