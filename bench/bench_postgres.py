"""The runs and verdict figures on PostgreSQL, each beside the same measurement on SQLite.

Issue 18's targets for the PostgreSQL store, with the server and the database
sharing the machine. One throwaway PostgreSQL (tests/pgcluster.py: initdb in a
temporary directory, a Unix socket there) with fsync and synchronous_commit on, so
that an ack is as durable as on SQLite (synchronous=FULL); each measurement on a
fresh database (and fresh servers), and the same measurement on SQLite in the
same run:

1. acked ingest, 8 streams x 10,000-point chunks (bench_runs_service.bench_ingest):
   >= 8,000,000 points/s;
2. one-point chunks from 100 streams, open loop at 1,000 chunks/s
   (bench_runs_service.bench_latency): ack p99 <= 20 ms;
3. two replicas (two servers on one database), the same ingest split across
   both: two/one >= 1.0 (SQLite has no replicas: one server per file);
4. GetVerdict on 1,000,000 + 1,000 points (bench_verdict_service.bench_get_verdict)
   p99 <= 20 ms, and GetCurves 1,000,000 -> 2,000 points
   (bench_runs_service.bench_curves) p99 <= 50 ms;
5. WatchVerdict across replicas (bench_verdict_service.bench_watch): watchers on
   replica B, the chunk that turns the run overfitting written through replica A,
   from A's ack to B's push: p99 <= 100 ms; on SQLite, one server does both.

    python bench/bench_postgres.py [--postgres-seconds 3] [--postgres-watchers 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # for tests.pgcluster: one cluster starter, not two

import bench_runs_service as runs  # noqa: E402
import bench_verdict_service as verdicts  # noqa: E402
from bench_runs_service import process_cpu_seconds, running_server  # noqa: E402

from tests.pgcluster import PG_INSTALL_HINT, PgCluster, pg_unavailable  # noqa: E402

# The PostgreSQL settings that decide what an ack costs, printed beside the figures.
SETTINGS = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "wal_level")

TARGET_POINTS_PER_S = 8_000_000
TARGET_P99_MS = 20.0
TARGET_REPLICAS = 1.0
TARGET_VERDICT_MS = 20.0
TARGET_CURVES_MS = 50.0
TARGET_PUSH_MS = 100.0

__all__ = ["Sizes", "format_report", "postgres_unavailable", "run_all"]


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does; the defaults keep the part near 3 minutes.

    Args:
        seconds: Seconds counted per ingest measurement (twice that per latency one).
        streams: Ingest streams.
        chunk: Points per ingest chunk.
        latency_streams: Streams of one-point chunks.
        rate: Chunks/s per latency stream (x ``latency_streams``: the offered load).
        verdict_calls: GetVerdict calls per figure.
        verdict_points: Training points of the GetVerdict run (and 1,000 validation).
        curve_points: Points of the GetCurves series.
        curve_calls: GetCurves calls.
        watchers: WatchVerdict watchers.
        rounds: WatchVerdict rounds (one verdict change each).
        push_timeout: Seconds a round waits for its pushes.
    """

    seconds: float = 3.0
    streams: int = 8
    chunk: int = 10_000
    latency_streams: int = 100
    rate: float = 10.0
    verdict_calls: int = 100
    verdict_points: int = 1_000_000
    curve_points: int = 1_000_000
    curve_calls: int = 20
    watchers: int = 20
    rounds: int = 3
    push_timeout: float = 5.0


def postgres_unavailable() -> str | None:
    """Why the part cannot run here (what to install), or None."""
    return pg_unavailable()


def _ratio(figure: float, target: float, *, higher_is_better: bool) -> str:
    """``figure/target`` and whether the target is met, e.g. ``"1.12x, met"``."""
    if figure != figure:  # NaN: nothing was measured
        return "not measured"
    met = figure >= target if higher_is_better else figure <= target
    return f"{figure / target:.2f}x, {'met' if met else 'not met'}"


@contextmanager
def _replicas(store: tuple[str, ...], n: int) -> Iterator[list[runs.RunsServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(running_server(extra_args=store)) for _ in range(n)]


def run_all(sizes: Sizes = Sizes(), *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Starts a durable PostgreSQL, measures each figure on it and on SQLite; the figures.

    ``log`` is told which measurement starts (they take seconds each).
    """
    cluster = PgCluster(fsync=True, shared_buffers="256MB")
    try:
        cluster.start()
        return _measure(cluster, sizes, log)
    finally:
        cluster.stop()


def _measure(cluster: PgCluster, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    def postgres() -> tuple[str, ...]:
        # A fresh database, and the previous measurement's pages written out first:
        # its checkpoint would otherwise land inside this one (the ingest writes GBs).
        url = cluster.new_database()
        cluster.checkpoint()
        return ("--store", url)

    def database_cpu() -> float:
        return process_cpu_seconds(cluster.pid())

    out: dict[str, Any] = {"settings": cluster.settings(SETTINGS), "sizes": sizes}
    ingest = {"seconds": sizes.seconds, "streams": sizes.streams, "chunk": sizes.chunk}
    log("ingest")
    out["ingest"] = {
        "sqlite": runs.bench_ingest(**ingest),
        "postgres": runs.bench_ingest(**ingest, extra_args=postgres(), database_cpu=database_cpu),
    }
    log("ingest, two replicas")
    out["replicas"] = runs.bench_ingest(
        **ingest, extra_args=postgres(), replicas=2, database_cpu=database_cpu
    )
    latency = {"seconds": 2 * sizes.seconds, "streams": sizes.latency_streams, "rate": sizes.rate}
    log("ack latency")
    out["latency"] = {
        "sqlite": runs.bench_latency(**latency),
        "postgres": runs.bench_latency(
            **latency, server_args=(*runs.LATENCY_SERVER_ARGS, *postgres())
        ),
    }
    log("GetVerdict")
    out["verdict"] = {}
    for name, store in (("sqlite", ()), ("postgres", postgres())):
        with running_server(extra_args=store) as server:
            out["verdict"][name] = verdicts.bench_get_verdict(
                server.target, calls=sizes.verdict_calls, train_points=sizes.verdict_points
            )
    log("GetCurves")
    curves = {"points": sizes.curve_points, "calls": sizes.curve_calls}
    out["curves"] = {
        "sqlite": runs.bench_curves(**curves),
        "postgres": runs.bench_curves(**curves, extra_args=postgres()),
    }
    log("WatchVerdict")
    watch = {
        "watchers": sizes.watchers,
        "rounds": sizes.rounds,
        "push_timeout": sizes.push_timeout,
    }
    with running_server() as server:
        sqlite_watch = verdicts.bench_watch(server.target, **watch)
    with _replicas(postgres(), 2) as (a, b):
        postgres_watch = verdicts.bench_watch(b.target, write_target=a.target, **watch)
    out["watch"] = {"sqlite": sqlite_watch, "postgres": postgres_watch}
    return out


def format_report(r: dict[str, Any]) -> list[str]:
    """One line per figure: PostgreSQL, SQLite, their ratio, and PostgreSQL against its target."""
    s = r["settings"]
    lines = [
        f"PostgreSQL {s['server_version']} on this machine (a Unix socket): "
        f"fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}, "
        f"shared_buffers={s['shared_buffers']}, wal_level={s['wal_level']}; "
        "SQLite synchronous=FULL"
    ]

    def cpu(x: dict[str, Any]) -> str:
        db = f", database {x['database_cpu']}" if "database_cpu" in x else ""
        return f"server {x['server_cpu']}{db}, clients {x['clients_cpu']}"

    pg, lite = r["ingest"]["postgres"], r["ingest"]["sqlite"]
    lines.append(
        f"ingest, {pg['streams']} streams x {pg['chunk']:,}-point chunks, acked: "
        f"PostgreSQL {pg['points_per_s']:,} points/s, SQLite {lite['points_per_s']:,} "
        f"(PostgreSQL/SQLite {pg['points_per_s'] / max(lite['points_per_s'], 1):.2f}x); "
        f"target >= {TARGET_POINTS_PER_S:,}: "
        f"{_ratio(pg['points_per_s'], TARGET_POINTS_PER_S, higher_is_better=True)} "
        f"(cpu, cores: PostgreSQL run {cpu(pg)}; SQLite run {cpu(lite)})"
    )
    two = r["replicas"]
    two_over_one = two["points_per_s"] / max(pg["points_per_s"], 1)
    lines.append(
        f"two replicas on one PostgreSQL, the same ingest split across both: "
        f"{two['points_per_s']:,} points/s, one replica {pg['points_per_s']:,} (above); "
        f"two/one {two_over_one:.2f}, target >= {TARGET_REPLICAS:g}: "
        f"{_ratio(two_over_one, TARGET_REPLICAS, higher_is_better=True)} "
        f"(cpu, cores: {cpu(two)}); SQLite: one server per file, no replicas"
    )
    pg, lite = r["latency"]["postgres"], r["latency"]["sqlite"]
    lines.append(
        f"ack latency, {pg['streams']} streams x 1-point chunks, open loop, "
        f"{pg['offered_per_s']:,} chunks/s offered: PostgreSQL ({pg['acks_per_s']:,} acks/s) "
        f"p50 {pg['p50_ms']} ms, p99 {pg['p99_ms']} ms; SQLite ({lite['acks_per_s']:,} acks/s) "
        f"p50 {lite['p50_ms']} ms, p99 {lite['p99_ms']} ms "
        f"(p99 PostgreSQL/SQLite {pg['p99_ms'] / lite['p99_ms']:.2f}x); "
        f"target p99 <= {TARGET_P99_MS:g} ms: "
        f"{_ratio(pg['p99_ms'], TARGET_P99_MS, higher_is_better=False)} "
        f"(cpu, cores: PostgreSQL run {cpu(pg)}; SQLite run {cpu(lite)})"
    )
    sizes: Sizes = r["sizes"]
    pg, lite = r["verdict"]["postgres"], r["verdict"]["sqlite"]
    pg_p99 = max(pg["p99_ms"], pg["fresh_p99_ms"])
    lite_p99 = max(lite["p99_ms"], lite["fresh_p99_ms"])
    lines.append(
        f"GetVerdict, {sizes.verdict_points:,} train + 1,000 validation points, the slower of "
        "unchanged data "
        f"and a new point before each call: PostgreSQL p99 {pg_p99:.2f} ms (first call "
        f"{pg['cold_ms']:.0f} ms), SQLite p99 {lite_p99:.2f} ms (first call "
        f"{lite['cold_ms']:.0f} ms) (PostgreSQL/SQLite {pg_p99 / lite_p99:.2f}x); "
        f"target p99 <= {TARGET_VERDICT_MS:g} ms: "
        f"{_ratio(pg_p99, TARGET_VERDICT_MS, higher_is_better=False)}"
    )
    pg, lite = r["curves"]["postgres"], r["curves"]["sqlite"]
    lines.append(
        f"GetCurves, {pg['points']:,} points -> {pg['kept']:,}, {pg['calls']} calls: "
        f"PostgreSQL p50 {pg['p50_ms']} ms, p99 {pg['p99_ms']} ms; SQLite p50 {lite['p50_ms']} "
        f"ms, p99 {lite['p99_ms']} ms (p99 PostgreSQL/SQLite "
        f"{pg['p99_ms'] / lite['p99_ms']:.2f}x); target p99 <= {TARGET_CURVES_MS:g} ms: "
        f"{_ratio(pg['p99_ms'], TARGET_CURVES_MS, higher_is_better=False)}"
    )
    pg, lite = r["watch"]["postgres"], r["watch"]["sqlite"]

    def pushes(w: dict[str, Any]) -> str:
        if not w["pushes"]:
            return f"no push within {w['push_timeout']:g} s"
        silent = f", then no push within {w['push_timeout']:g} s" if w["silent"] else ""
        return (
            f"{int(w['pushes'])} pushes ({int(w['missed'])} missed{silent}) in "
            f"{int(w['rounds'])} rounds, p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms"
        )

    ratio = (
        f" (p99 PostgreSQL/SQLite {pg['p99_ms'] / lite['p99_ms']:.2f}x)"
        if pg["pushes"] and lite["pushes"]
        else ""
    )
    lines.append(
        f"WatchVerdict push, {sizes.watchers} watchers, from the ack of the chunk that "
        "changes the verdict to its push (negative: the push came first): PostgreSQL, "
        f"watchers on replica B, written through replica A: {pushes(pg)}; SQLite, one "
        f"server: {pushes(lite)}{ratio}; target p99 <= {TARGET_PUSH_MS:g} ms: "
        f"{_ratio(pg['p99_ms'], TARGET_PUSH_MS, higher_is_better=False)}"
    )
    return lines


def run_postgres_bench(args: argparse.Namespace, *, required: bool) -> bool:
    """Prints the PostgreSQL part (used by bench/run.py); False when it cannot run here.

    ``required`` (``--only postgres``): without PostgreSQL, says what to install and
    exits non-zero; otherwise says the part was skipped and why.
    """
    reason = postgres_unavailable()
    if reason is not None:
        if required:
            sys.exit(f"bench --only postgres: {reason}")
        print(f"\npostgres: skipped: {reason}")
        return False
    sizes = Sizes(
        seconds=args.postgres_seconds, watchers=args.postgres_watchers, rounds=args.postgres_rounds
    )
    print()
    print(
        "PostgreSQL beside SQLite, through the service (fresh evalstream-servers and "
        f"databases; server, database and load generators share {os.cpu_count()} cores):",
        flush=True,
    )
    start = time.monotonic()
    result = run_all(sizes, log=lambda name: None)
    for line in format_report(result):
        print(f"  {line}")
    print(f"  (the section took {time.monotonic() - start:.0f} s)")
    return True


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The part's flags (bench/run.py and this script)."""
    parser.add_argument(
        "--postgres-seconds",
        type=_positive(float),
        default=Sizes.seconds,
        help="postgres part: seconds per ingest measurement (twice that per latency one)",
    )
    parser.add_argument(
        "--postgres-watchers",
        type=_positive(int),
        default=Sizes.watchers,
        help="postgres part: watchers",
    )
    parser.add_argument(
        "--postgres-rounds",
        type=_positive(int),
        default=Sizes.rounds,
        help="postgres part: watch rounds",
    )


def main(argv: list[str] | None = None) -> None:
    from _machine import header

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if postgres_unavailable() is not None:
        sys.exit(f"bench_postgres: {PG_INSTALL_HINT}")
    print(header(), flush=True)
    run_postgres_bench(args, required=True)


if __name__ == "__main__":
    main()
