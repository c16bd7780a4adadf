"""Disk per loss point on each store backend: fill a store through a real server, measure.

    python scripts/store_footprint.py [--points 1000000] [--postgres-url URL]

For each backend (SQLite in a temporary data directory; PostgreSQL at
``--postgres-url``, else a throwaway cluster from the machine's binaries, as the
test suite starts one) a server is started, one run gets ``--points`` points in
each of three shapes, the server stops, and the store's size is read:

- ``log``: what ``run.log(step, loss=...)`` sends: steps 0, 1, 2, ... with wall times;
- ``implicit``: steps 0, 1, 2, ... without wall times (``run.log_many``);
- ``irregular``: steps 1 to 3 apart at random, with wall times (steps stored explicitly;
  evenly spaced steps, every 10th say, are implicit like ``log``'s).

Printed per shape: the bytes the points' table and its indexes grew by, per point.
Used by docs/operations/scaling.md; needs the dev extra (the server, psycopg).
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalstream import Client  # noqa: E402

from tests.conftest import PgCluster, start_server  # noqa: E402

SHAPES = ("log", "implicit", "irregular")


def fill(target: str, points: int, shape: str) -> None:
    rng = np.random.default_rng(0)
    if shape == "irregular":
        steps = np.cumsum(rng.integers(1, 4, size=points, dtype=np.int64))
    else:
        steps = np.arange(points, dtype=np.int64)
    values = rng.random(points)
    walls = None if shape == "implicit" else time.time() + np.arange(points) * 0.05
    with Client(target) as client:
        with client.create_run("footprint", shape, model="m", task="other") as run:
            for start in range(0, points, 100_000):
                end = start + 100_000
                run.log_many(
                    steps[start:end],
                    values[start:end],
                    wall_times=None if walls is None else walls[start:end],
                )
            run.flush(timeout=600)


def sqlite_size(database: Path) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name = 'point_chunks' "
            "OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'point_chunks')"
        ).fetchone()
    return int(row[0] or 0)


def postgres_size(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_total_relation_size('point_chunks')").fetchone()
    return int(row[0]) if row else 0


def measure(
    store: tuple[str, ...], data_dir: Path, points: int, size: Callable[[], int]
) -> dict[str, float]:
    found = {}
    for shape in SHAPES:
        before = size()
        sp = start_server(
            data_dir, extra=("--bertscore-model", "none", "--text-workers", "0", *store)
        )
        try:
            fill(sp.target, points, shape)
        finally:
            sp.signal(signal.SIGTERM)
            sp.wait(60)
        found[shape] = (size() - before) / points
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalstream-footprint-") as tmp:
        data = Path(tmp) / "sqlite"
        database = data / "evalstream.db"
        results = {"sqlite": measure((), data, args.points, lambda: sqlite_size(database))}
        cluster = None
        url = args.postgres_url
        if not url:
            cluster = PgCluster()
            cluster.start()
            url = cluster.new_database()
        try:
            results["postgresql"] = measure(
                ("--store", url), Path(tmp) / "pg", args.points, lambda: postgres_size(url)
            )
        finally:
            if cluster is not None:
                cluster.stop()
    print(f"bytes per point ({args.points:,} points per shape)")
    print(f"{'backend':<12}" + "".join(f"{shape:>10}" for shape in SHAPES))
    for backend, row in results.items():
        print(f"{backend:<12}" + "".join(f"{row[shape]:>10.2f}" for shape in SHAPES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
