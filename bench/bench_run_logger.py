"""The client's hot path: what `Run.log` and `Run.log_many` cost the training loop.

Both only check the points and append them to the logger's buffer; the stream
runs in a background thread. Here the stream goes to a stub that never answers,
so the figures are the caller's cost alone, in CPU time of this process (steady
on a shared machine), best of `--repeat`:

- ``log``: ``run.log(step, loss=..., learning_rate=...)``, microseconds a call;
- ``log_many``: one ``run.log_many`` of 1,000,000 points, milliseconds.

Run: ``.venv/bin/python bench/bench_run_logger.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from typing import Any

from evalstream._run_types import RunInfo
from evalstream._runs import Run


class _Silent:
    """A StreamLoss call that never acks (its daemon thread idles until the process exits)."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()

    def __iter__(self) -> Iterator[Any]:
        self._cancelled.wait()
        return iter(())

    def cancel(self) -> None:
        self._cancelled.set()


class _Client:
    def __init__(self) -> None:
        self._runs = self
        self._open_runs: set[Run] = set()

    def StreamLoss(self, requests: Any, timeout: float | None = None) -> _Silent:  # noqa: N802
        return _Silent()


def bench(repeat: int = 5, calls: int = 100_000, points: int = 1_000_000) -> dict[str, float]:
    """Best-of-`repeat` CPU cost of `log` (us a call) and of a `log_many` (ms)."""
    info = RunInfo("bench", "bench", "bench", "", "", "running", {}, {}, 0.0, 0.0)
    log_us, many_ms = float("inf"), float("inf")
    steps, values = list(range(points)), [0.25] * points
    for _ in range(repeat):
        run = Run(_Client(), info, max_buffer_points=calls * 2 + points + 1)
        started = time.process_time()
        for step in range(calls):
            run.log(step, loss=0.5, learning_rate=1e-4)
        log_us = min(log_us, (time.process_time() - started) / calls * 1e6)
        started = time.process_time()
        run.log_many(steps, values)
        many_ms = min(many_ms, (time.process_time() - started) * 1e3)
    return {"log_us": round(log_us, 2), "log_many_1m_ms": round(many_ms, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    result = bench(parser.parse_args().repeat)
    print(
        f"run.log(step, loss, learning_rate): {result['log_us']} us a call; "
        f"run.log_many of 1,000,000 points: {result['log_many_1m_ms']} ms (CPU time, best)"
    )


if __name__ == "__main__":
    main()
