"""Export of a 100-million-point run to CSV, through a real server, by the CLI.

The issue's target: >= 5,000,000 points/s, with the client's memory flat (its peak
stated). A run of 4 series of 25,000,000 points (stride-1 steps) is written straight
into a store file (`SQLiteStore.write_points` of 1,000,000-point chunks) before the
server starts, twice: each point with its wall time, as `run.log` records them, and
without (as a trainer streaming its own LossChunks may send them); the files are
kept in a cache directory and reused (``EVALSTREAM_BENCH_CACHE``, default
``~/.cache/evalstream/bench``; about 2.5 and 1 GB). An ``evalstream-server``
subprocess then serves one and ``evalstream runs export RUN --format csv -o FILE``
runs as a subprocess of its own, timed from its start to its exit.

Figures: points/s (and the ratio to the target), the CSV's size, the client's peak
RSS (its ``VmHWM``, read every 50 ms until it exits) and its RSS sampled through
the export (flat when memory is bounded), the server's peak RSS (``VmHWM``). A sample
of rows is checked against the values the points were written with (every value
is an exact IEEE expression of its step).

    python bench/bench_export.py [--points 100000000] [--no-wall-times] [--keep-csv]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET = 5_000_000
NAMES = (
    ("train", "loss"),
    ("train", "grad_norm"),
    ("train", "learning_rate"),
    ("validation", "loss"),
)


def series(wall_times: bool) -> tuple[tuple[str, str, bool], ...]:
    """(split, name, with wall times) of the run: run.log records a wall time with every
    point; a trainer streaming LossChunks itself may send none."""
    return tuple((split, name, wall_times) for split, name in NAMES)


CHUNK = 1_000_000
PROJECT, NAME = "bench", "export"


def value(step: np.ndarray | int, k: int) -> Any:
    """The value of series `k` at `step`: exact IEEE operations, so a check recomputes it."""
    s = np.asarray(step, dtype=np.int64)
    return (1.0 + k) / (1.0 + s.astype(np.float64) * 1e-6) + (s % 997).astype(np.float64) * 1e-5


def wall(step: np.ndarray | int) -> Any:
    return 1.7e9 + np.asarray(step, dtype=np.int64).astype(np.float64) * 0.05


def cache_dir(points: int, wall_times: bool) -> Path:
    root = Path(os.environ.get("EVALSTREAM_BENCH_CACHE", Path.home() / ".cache/evalstream/bench"))
    return root / f"export-{'walls' if wall_times else 'bare'}-{points}"


def build(data_dir: Path, points: int, wall_times: bool) -> str:
    """The run's id, writing the store file first unless a complete one is cached."""
    from evalstream_server.store import NewRun, PointChunk, SQLiteStore

    done = data_dir / "complete"
    if done.exists():
        return done.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob("evalstream.db*"):
        stale.unlink()
    per = points // len(NAMES)
    started = time.perf_counter()
    with SQLiteStore(data_dir / "evalstream.db", synchronous="NORMAL") as store:
        run = store.create_run(NewRun(project=PROJECT, name=NAME, task="other"))
        for k, (split, name, walls) in enumerate(series(wall_times)):
            for at in range(0, per, CHUNK):
                steps = np.arange(at, min(per, at + CHUNK), dtype=np.int64)
                store.write_points(
                    PointChunk(
                        run.id, split, name, steps, value(steps, k), wall(steps) if walls else None
                    ),
                    timeout=600,
                )
    print(f"  built {points:,} points in {time.perf_counter() - started:.0f} s: {data_dir}")
    done.write_text(run.id)
    return run.id


def _status(pid: int, key: str) -> int:
    """A /proc/PID/status figure in kB (VmRSS, VmHWM), 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a live process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_sample(path: Path, per: int, rng: random.Random, wall_times: bool, n: int = 200) -> int:
    """Reads `n` rows at random offsets and checks each against `value`/`wall`; their count."""
    size = path.stat().st_size
    names = {(split, name): (k, w) for k, (split, name, w) in enumerate(series(wall_times))}
    checked = 0
    with path.open("rb") as f:
        assert f.readline() == b"split,series,step,wall_time,value\n", "bad header"
        for _ in range(n):
            f.seek(rng.randrange(0, size - 200))
            f.readline()  # the rest of a row
            row = f.readline().decode().rstrip("\n").split(",")
            if len(row) != 5:
                continue
            split, name, step_text, wall_text, value_text = row
            k, walls = names[(split, name)]
            step = int(step_text)
            assert 0 <= step < per, row
            assert float(value_text) == float(value(step, k)), row
            assert (float(wall_text) == float(wall(step))) if walls else wall_text == "", row
            checked += 1
    return checked


def run_export_bench(
    points: int = 100_000_000, *, wall_times: bool = True, keep_csv: bool = False
) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _server import Server

    data_dir = cache_dir(points, wall_times)
    run_id = build(data_dir, points, wall_times)
    out_dir = Path(tempfile.mkdtemp(prefix="evalstream-export-"))
    csv_path = out_dir / "run.csv"
    exe = Path(sys.executable).with_name("evalstream")
    server = Server(data_dir, ("--bertscore-model", "none", "--text-workers", "0"))
    try:
        server_pid = server.proc.pid
        server_rss_before = _status(server_pid, "VmRSS")
        server_cpu_before = _cpu_seconds(server_pid)
        argv = [str(exe), "--target", server.target, "runs", "export", run_id]
        argv += ["--format", "csv", "-o", str(csv_path)]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        samples: list[tuple[float, int]] = []
        server_peak_rss = [0]
        client_peak = [0]
        stop = threading.Event()

        def sample() -> None:
            # VmHWM, the child's own peak since its exec (wait4's ru_maxrss would count
            # the pages of this process it was forked from), read until it exits.
            while not stop.wait(0.05):
                rss = _status(proc.pid, "VmRSS")
                if rss:
                    samples.append((time.perf_counter() - started, rss))
                client_peak[0] = max(client_peak[0], _status(proc.pid, "VmHWM"))
                server_peak_rss[0] = max(server_peak_rss[0], _status(server_pid, "VmRSS"))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        server_hwm = _status(server_pid, "VmHWM")
        server_cpu = _cpu_seconds(server_pid) - server_cpu_before
    finally:
        server.close()
    if proc.returncode != 0:
        raise RuntimeError(f"evalstream runs export exited {proc.returncode}")
    size = csv_path.stat().st_size
    checked = check_sample(csv_path, points // len(NAMES), random.Random(0), wall_times)
    rows = _count_rows(csv_path)
    if not keep_csv:
        csv_path.unlink()
        out_dir.rmdir()
    return {
        "points": points,
        "wall_times": wall_times,
        "rows": rows,
        "seconds": seconds,
        "points_per_s": points / seconds,
        "csv_bytes": size,
        "client_peak_rss_kb": client_peak[0],
        "client_rss_samples_kb": samples,
        "server_rss_before_kb": server_rss_before,
        "server_peak_rss_kb": max(server_hwm, server_peak_rss[0]),
        "rows_checked": checked,
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
        "client_system_s": usage.ru_stime,
        "server_cpu_s": server_cpu,
    }


def _count_rows(path: Path) -> int:
    rows = 0
    with path.open("rb") as f:
        while block := f.read(1 << 24):
            rows += block.count(b"\n")
    return rows - 1  # the header


def format_report(r: dict[str, Any]) -> list[str]:
    rate = r["points_per_s"]
    samples = r["client_rss_samples_kb"]
    quarters = (
        [samples[int(len(samples) * q)][1] // 1024 for q in (0.1, 0.5, 0.9)] if samples else []
    )
    return [
        f"export of {r['points']:,} points "
        f"({'each with its wall time' if r['wall_times'] else 'without wall times'}) "
        f"to CSV by the CLI: {r['seconds']:.1f} s, "
        f"{rate:,.0f} points/s (target >= {TARGET:,}: {rate / TARGET:.2f}x)",
        f"CSV {r['csv_bytes'] / 1e9:.2f} GB, {r['rows']:,} rows, "
        f"{r['rows_checked']} sampled rows checked against the written values",
        f"client peak RSS {r['client_peak_rss_kb'] / 1024:.0f} MiB "
        f"(RSS at 10/50/90% of the export: {', '.join(f'{m} MiB' for m in quarters)})",
        f"server peak RSS {r['server_peak_rss_kb'] / 1024:.0f} MiB "
        f"(idle before the export: {r['server_rss_before_kb'] / 1024:.0f} MiB)",
        f"CPU: server {r['server_cpu_s']:.1f} s, client {r['client_cpu_s']:.1f} s "
        f"({r['client_system_s']:.1f} s of it in the kernel, writing the file)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000_000)
    parser.add_argument("--keep-csv", action="store_true")
    parser.add_argument(
        "--no-wall-times", action="store_true", help="points without wall times (default with)"
    )
    args = parser.parse_args()
    result = run_export_bench(
        args.points, wall_times=not args.no_wall_times, keep_csv=args.keep_csv
    )
    for line in format_report(result):
        print(line)


if __name__ == "__main__":
    main()
