"""bench/bench_postgres.py runs end to end with tiny sizes (the figures are `make bench`'s)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import pg_skip_or_fail

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_postgres  # noqa: E402
import bench_runs_service  # noqa: E402
import bench_verdict_service  # noqa: E402

TINY = bench_postgres.Sizes(
    seconds=0.5,
    streams=2,
    chunk=1_000,
    latency_streams=4,
    rate=5.0,
    verdict_calls=3,
    verdict_points=20_000,
    curve_points=20_000,
    curve_calls=3,
    watchers=2,
    rounds=1,
    push_timeout=3.0,
)


@pytest.mark.slow
def test_postgres_bench_runs_with_tiny_sizes() -> None:
    pg_skip_or_fail()
    start = time.monotonic()
    r = bench_postgres.run_all(TINY, log=lambda name: None)
    elapsed = time.monotonic() - start
    # Durable acks: the bench's PostgreSQL syncs, unlike the tests' cluster.
    assert r["settings"]["fsync"] == "on"
    assert r["settings"]["synchronous_commit"] == "on"
    for store in ("sqlite", "postgres"):
        assert r["ingest"][store]["points_acked"] > 0
        assert r["ingest"][store]["refused_chunks"] == 0
        assert r["latency"][store]["acks"] > 0
        assert r["latency"][store]["offered_per_s"] == 20
        assert math.isfinite(r["verdict"][store]["p99_ms"])
        assert r["curves"][store]["points"] == 20_000
        assert 0 < r["curves"][store]["kept"] <= 2_000
    assert "database_cpu" in r["ingest"]["postgres"]
    assert r["replicas"]["replicas"] == 2
    assert r["replicas"]["points_acked"] > 0
    # One server pushes to its own watchers; across replicas the push arrives or the
    # round says so, within its timeout.
    assert r["watch"]["sqlite"]["pushes"] == 2
    across = r["watch"]["postgres"]
    assert across["pushes"] == 2 or (across["silent"] and across["pushes"] == 0)
    lines = bench_postgres.format_report(r)
    assert len(lines) == 7
    assert "fsync=on, synchronous_commit=on" in lines[0]
    assert all("SQLite" in line for line in lines)
    assert all("target" in line for line in lines[1:])
    if not across["pushes"]:
        assert (
            "PostgreSQL, watchers on replica B, written through replica A: no push within 3 s"
            in lines[-1]
        )
    assert elapsed < 600


@pytest.mark.slow
def test_watch_whose_watchers_cannot_start_fails_at_once() -> None:
    # Watchers on a server that does not know the run (written through another one,
    # on its own SQLite file): the bench says why instead of waiting for them.
    with (
        bench_runs_service.running_server() as watched,
        bench_runs_service.running_server() as other,
    ):
        start = time.monotonic()
        with pytest.raises(RuntimeError, match="did not start"):
            bench_verdict_service.bench_watch(
                watched.target, write_target=other.target, watchers=2, rounds=2, push_timeout=1
            )
        assert time.monotonic() - start < 60


def test_only_postgres_without_postgres_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_postgres, "postgres_unavailable", lambda: "install postgresql")
    parser = argparse.ArgumentParser()
    bench_postgres.add_arguments(parser)
    args = parser.parse_args([])
    with pytest.raises(SystemExit) as exited:
        bench_postgres.run_postgres_bench(args, required=True)
    assert exited.value.code == "bench --only postgres: install postgresql"
    assert bench_postgres.run_postgres_bench(args, required=False) is False
    assert "postgres: skipped: install postgresql" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flag", ["--postgres-seconds=0", "--postgres-watchers=-1", "--postgres-rounds=x"]
)
def test_postgres_flags_refuse_bad_values(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench_postgres.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([flag])
    assert flag.split("=")[0] in capsys.readouterr().err
