"""What the Trainer callback costs a training step, while the server is busy.

The Hugging Face Trainer calls ``on_log`` on every logging step, between two
optimizer steps: whatever the callback does there, the step waits for. Here a
real `evalstream-server` child process is kept busy by a load generator (another
process streaming 10,000-point chunks of loss points from 4 runs as fast as the
server acks them). The server and the load share one core and the trainer has
the other (``sched_setaffinity``; in practice the server runs on another machine
than training, and on a 2-core machine the three would otherwise take turns on
the same cores, which measures the scheduler rather than the callback). Two ways
of logging the same values are timed, each ``on_log`` from call to return, in
wall time:

- ``EvalstreamCallback.on_log``: the values go to the run's buffer and are
  streamed by a background thread (target: p99 <= 50 us);
- one synchronous call per log, as the MLflow callback does
  (``mlflow.log_metrics`` waits for the tracking server): here ``run.log`` then
  ``run.flush()``, which returns once the server has acked the points as durable.

Run: ``.venv/bin/python bench/run.py --only integrations``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _server import Server

#: One Trainer log: what ``on_log`` receives every ``logging_steps``.
_LOGS = {"loss": 0.8125, "grad_norm": 1.75, "learning_rate": 2.5e-4, "epoch": 0.5}


def _load(target: str, stop: Any, streams: int = 4, chunk: int = 10_000) -> None:
    """Keeps the server busy: `streams` runs logging `chunk`-point batches until `stop`."""
    import logging
    import threading

    from evalstream import Client

    logging.getLogger("evalstream").setLevel(logging.ERROR)  # its streams break at the end

    with Client(target) as client:
        runs = [
            client.create_run("bench-load", f"load-{i}-{time.time_ns()}") for i in range(streams)
        ]

        def feed(run: Any) -> None:
            values = [0.5] * chunk
            step = 0
            while not stop.is_set():
                run.log_many(range(step, step + chunk), values)
                run.flush(60)
                step += chunk

        threads = [threading.Thread(target=feed, args=(r,), daemon=True) for r in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _percentiles(us: np.ndarray) -> dict[str, float]:
    return {
        "p50_us": round(float(np.percentile(us, 50)), 1),
        "p99_us": round(float(np.percentile(us, 99)), 1),
        "max_us": round(float(us.max()), 1),
    }


def _trainer_objects(output_dir: str) -> tuple[Any, Any, Any]:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(output_dir, report_to=[], logging_steps=1, max_steps=1_000_000)
    state = TrainerState()
    state.is_world_process_zero = True
    state.is_local_process_zero = True
    return args, state, TrainerControl()


def run_all(*, logs: int = 20_000, sync_logs: int = 500, pin: bool = True) -> dict[str, Any]:
    """p50/p99/max of ``on_log`` for the callback and for one synchronous call per log."""
    from evalstream.integrations.transformers import EvalstreamCallback

    cores = sorted(os.sched_getaffinity(0))
    if pin and len(cores) >= 2:
        # The server and its load on the last core, the trainer on the others: the
        # server runs on another machine than training in practice. Affinity is per
        # thread and inherited by what a thread starts: the server and the load
        # generator get the server's core, the trainer's threads (the run's
        # streamer) the trainer's.
        os.sched_setaffinity(0, cores[-1:])
    with tempfile.TemporaryDirectory() as tmp, Server(Path(tmp) / "data") as server:
        stop = mp.get_context("spawn").Event()
        load = mp.get_context("spawn").Process(target=_load, args=(server.target, stop))
        load.start()
        if pin and len(cores) >= 2:
            os.sched_setaffinity(0, cores[:-1])
        try:
            time.sleep(2.0)  # the load reaches its steady state
            args, state, control = _trainer_objects(str(Path(tmp) / "out"))
            callback = EvalstreamCallback(
                server.target, project="bench-callback", name=f"callback-{time.time_ns()}"
            )
            callback.on_train_begin(args, state, control)
            times = np.empty(logs)
            for i in range(logs):
                state.global_step = i + 1
                started = time.perf_counter_ns()
                callback.on_log(args, state, control, logs=dict(_LOGS))
                times[i] = (time.perf_counter_ns() - started) / 1e3
            callback.on_train_end(args, state, control)

            from evalstream import Client

            with Client(server.target) as client:
                run = client.create_run("bench-callback", f"sync-{time.time_ns()}")
                sync = np.empty(sync_logs)
                for i in range(sync_logs):
                    started = time.perf_counter_ns()
                    run.log(i + 1, **{k: v for k, v in _LOGS.items() if k != "epoch"})
                    run.flush(60)
                    sync[i] = (time.perf_counter_ns() - started) / 1e3
                run.finish()
        finally:
            stop.set()
            load.join(60)
            if load.is_alive():
                load.kill()
    return {
        "callback": {"logs": logs, **_percentiles(times)},
        "sync": {"logs": sync_logs, **_percentiles(sync)},
    }


def format_report(result: dict[str, Any]) -> list[str]:
    cb, sync = result["callback"], result["sync"]
    return [
        f"EvalstreamCallback.on_log ({cb['logs']:,} logs): p50 {cb['p50_us']} us, "
        f"p99 {cb['p99_us']} us, max {cb['max_us']} us (target p99 <= 50 us: "
        f"{'met' if cb['p99_us'] <= 50 else 'NOT met'}, {cb['p99_us'] / 50:.2f}x of it)",
        f"one synchronous call per log ({sync['logs']:,} logs, run.log + flush): "
        f"p50 {sync['p50_us']} us, p99 {sync['p99_us']} us, max {sync['max_us']} us",
        f"callback p99 is {sync['p99_us'] / cb['p99_us']:.0f}x below the synchronous call's",
    ]


if __name__ == "__main__":
    for line in format_report(run_all()):
        print(line)
