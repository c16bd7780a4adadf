"""In-process timing of verdict computation (the GetVerdict budget: 20 ms p99).

Importable helpers (no work at import time):

* :func:`make_run` builds a run of ``n_train`` training points and ``n_val``
  validation points (noisy exponential decay, validation U-shaped);
* :func:`bench_cold` times :func:`build_analyzer` + ``verdict()`` from scratch
  (the servicer's cold start);
* :func:`bench_incremental` feeds the points in chunks (as acks arrive) and
  times each ``add_points`` and each ``verdict()``.

Run as a script: ``PYTHONPATH=server python bench/bench_verdict.py [n_train] [n_val]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from evalstream_server.analysis.verdict import RunAnalyzer, VerdictConfig, build_analyzer
from evalstream_server.store._types import SeriesData


def make_run(n_train: int, n_val: int, seed: int = 0) -> tuple[SeriesData, SeriesData]:
    """A training and a validation loss series of the given sizes."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n_train + 1, dtype=np.int64)
    clean = 0.3 + 2.2 * np.exp(-steps / (0.1 * n_train))
    train = clean * (1 + 0.05 * rng.standard_normal(n_train))
    ev = np.linspace(n_train / n_val, n_train, n_val).round().astype(np.int64)
    val = 0.35 + 2.2 * np.exp(-ev / (0.1 * n_train)) + 0.2 * np.clip(ev / n_train - 0.5, 0, None)
    val = val * (1 + 0.01 * rng.standard_normal(n_val))
    return (
        SeriesData("train", "loss", steps, train, None, n_train),
        SeriesData("validation", "loss", ev, val, None, n_val),
    )


def _pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e3, q))


def bench_cold(train: SeriesData, val: SeriesData) -> dict[str, object]:
    """Milliseconds to build an analyzer from scratch and to answer once."""
    t0 = time.perf_counter()
    analyzer = build_analyzer([train, val], [], VerdictConfig())
    t1 = time.perf_counter()
    verdict = analyzer.verdict()
    t2 = time.perf_counter()
    return {"build_ms": (t1 - t0) * 1e3, "verdict_ms": (t2 - t1) * 1e3, "state": verdict.state}


def bench_incremental(
    train: SeriesData, val: SeriesData, *, chunk: int = 10_000, calls: int = 300
) -> dict[str, float]:
    """Feeds ``chunk``-point training chunks (validation in proportion) and times calls.

    Returns p50/p99 of ``add_points`` per chunk and of ``verdict()`` on the full run.
    """
    analyzer = RunAnalyzer(VerdictConfig())
    n = len(train.steps)
    adds: list[float] = []
    vi = 0
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        t0 = time.perf_counter()
        analyzer.add_points("train", "loss", train.steps[lo:hi], train.values[lo:hi])
        vj = int(np.searchsorted(val.steps, train.steps[hi - 1], side="right"))
        if vj > vi:
            analyzer.add_points("validation", "loss", val.steps[vi:vj], val.values[vi:vj])
            vi = vj
        adds.append(time.perf_counter() - t0)
    times: list[float] = []
    for _ in range(calls):
        t0 = time.perf_counter()
        analyzer.verdict()
        times.append(time.perf_counter() - t0)
    return {
        "add_p50_ms": _pct(adds, 50),
        "add_p99_ms": _pct(adds, 99),
        "verdict_p50_ms": _pct(times, 50),
        "verdict_p99_ms": _pct(times, 99),
        "verdict_max_ms": max(times) * 1e3,
    }


def main(argv: list[str]) -> None:
    n_train = int(argv[1]) if len(argv) > 1 else 1_000_000
    n_val = int(argv[2]) if len(argv) > 2 else 1_000
    train, val = make_run(n_train, n_val)
    cold = bench_cold(train, val)
    print(f"cold start ({n_train} train + {n_val} validation points): {cold}")
    inc = bench_incremental(train, val)
    print("incremental: " + ", ".join(f"{k}={v:.3f}" for k, v in inc.items()))


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    main(sys.argv)
