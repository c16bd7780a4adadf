"""GetCurves zoomed into a long series: the latency of reading 1% of it, downsampled.

Target (issue 15, "Read everything back"): GetCurves of a 10,000,000-point series
zoomed to 1% of its steps (a random window of 100,000 steps) and downsampled to
2,000 points, p99 <= 20 ms, through the thin client against a real
`evalstream-server` subprocess. The series is stored as the service stores it:
chunks of 10,000 points (the run logger's default chunk), written with
SQLiteStore into the server's data directory before the server starts. The
server reads only the chunks that overlap the window, merges them and min-max
downsamples them.

    python bench/bench_curves_read.py [--points 10000000] [--calls 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Server  # noqa: E402
from evalstream import Client  # noqa: E402
from evalstream_server.store import NewRun, PointChunk, SQLiteStore  # noqa: E402

TARGET_P99_MS = 20.0
CHUNK = 10_000


def write_series(data_dir: Path, points: int) -> str:
    """A run with one train/loss series of ``points`` points, in chunks of CHUNK; its id."""
    store = SQLiteStore(data_dir / "evalstream.db")
    try:
        run_id = store.create_run(NewRun(project="bench", name="curves-read")).id
        rng = np.random.default_rng(0)
        for start in range(0, points, CHUNK):
            steps = np.arange(start, min(start + CHUNK, points), dtype=np.int64)
            values = 2.5 * np.exp(-steps / (points / 6)) + 0.2 + rng.normal(0, 0.01, len(steps))
            store.write_points(PointChunk(run_id, "train", "loss", steps, values))
    finally:
        store.close()
    return run_id


def bench_zoom(
    target: str, run_id: str, *, points: int, calls: int, max_points: int = 2_000
) -> dict[str, Any]:
    """p50/p99 of GetCurves over random windows of 1% of the steps, downsampled."""
    width = points // 100
    rng = np.random.default_rng(1)
    starts = rng.integers(0, points - width, calls + 10)
    times = []
    with Client(target) as client:
        run = client.get_run(run_id)
        for i, start in enumerate(starts):
            t0 = time.perf_counter()
            (s,) = run.curves(
                start_step=int(start), end_step=int(start) + width - 1, max_points=max_points
            )
            elapsed = time.perf_counter() - t0
            if s.total_points != width or len(s.steps) > max_points:
                raise RuntimeError(f"window {start}: {s.total_points} points, {len(s.steps)} sent")
            if i >= 10:  # the first calls warm the connection and the page cache
                times.append(elapsed)
        # Full resolution (informational): one page of 500,000 points at a random step.
        page = min(500_000, points // 2)
        page_times = []
        for start in rng.integers(0, points - page, 10):
            t0 = time.perf_counter()
            (s,) = run.curves(start_step=int(start), end_step=int(start) + page - 1)
            page_times.append(time.perf_counter() - t0)
            if len(s.steps) != page:
                raise RuntimeError(f"page at {start}: {len(s.steps)} points, not {page}")
    ms = np.asarray(times) * 1e3
    return {
        "points": points,
        "window": width,
        "calls": len(times),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "page": page,
        "page_ms": float(np.median(page_times)) * 1e3,
    }


def run_all(*, points: int = 10_000_000, calls: int = 300) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="evalstream-bench-curves-") as d:
        t0 = time.perf_counter()
        run_id = write_series(Path(d), points)
        written = time.perf_counter() - t0
        with Server(Path(d), ("--bertscore-model", "none", "--text-workers", "0")) as server:
            result = bench_zoom(server.target, run_id, points=points, calls=calls)
    result["write_s"] = written
    return result


def format_report(r: dict[str, Any]) -> list[str]:
    ratio = r["p99_ms"] / TARGET_P99_MS
    return [
        f"GetCurves zoomed to 1% ({r['window']:,} of {r['points']:,} points, random windows) "
        f"downsampled to 2,000 points, {r['calls']} calls: p50 {r['p50_ms']:.2f} ms, "
        f"p99 {r['p99_ms']:.2f} ms; target p99 <= {TARGET_P99_MS:.0f} ms; "
        f"ratio {ratio:.2f} ({'met' if ratio <= 1 else 'not met'}); "
        f"series written in {r['write_s']:.1f} s",
        f"full resolution, {r['page']:,} points at a random step (one page, read whole by "
        f"run.curves()): median {r['page_ms']:.0f} ms over 10 calls (no target)",
    ]


def main(argv: list[str] | None = None) -> None:
    from _machine import header

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    print(header(), flush=True)
    for line in format_report(run_all(points=args.points, calls=args.calls)):
        print(line)


if __name__ == "__main__":
    main()
