"""Alerts: what they cost ingest, and how soon a diverging run's alert arrives.

Two measurements against a real ``evalstream-server`` subprocess and a local HTTP
receiver (http.server in a thread):

- ``ingest``: the runs bench's sustained ingest (8 streams of 10,000-point chunks,
  acked) with alerting off, then with ``--alert-webhook`` pointing at the receiver
  (every run then has its verdict followed: the monitor thread feeds each run's
  analyzer every point), alternated ``rounds`` times. Target: alerting off is the
  runs bench unchanged (the ack path only calls an empty hook list); alerting on
  keeps >= 0.8x of it.
- ``latency``: a run whose loss turns NaN, from the NaN chunk's ack to the alert's
  POST at the receiver, with the default ``--alert-debounce-seconds 1``. Target:
  <= 1.5 s (the debounce plus evaluation and delivery).

Run: ``.venv/bin/python bench/bench_alerts.py [--quick]``; it prints one JSON object
per measurement and a report. ``bench/run.py --only alerts`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runs_service import bench_ingest, load_average, running_server  # noqa: E402

TARGET_INGEST_RATIO = 0.8
TARGET_LATENCY_S = 1.5


@contextmanager
def receiver() -> Iterator[tuple[str, list[float]]]:
    """A local webhook receiver: (its URL, the arrival times of the POSTs)."""
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            arrivals.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alert", arrivals
    finally:
        server.shutdown()
        server.server_close()


def bench_ingest_cost(*, seconds: float, rounds: int) -> dict[str, Any]:
    """Ingest points/s with alerting off and on, alternated `rounds` times."""
    off: list[int] = []
    on: list[int] = []
    cpu_off: list[float] = []
    cpu_on: list[float] = []
    with receiver() as (url, _arrivals):
        for _ in range(rounds):
            r = bench_ingest(seconds=seconds)
            off.append(r["points_per_s"])
            cpu_off.append(r["server_cpu"])
            r = bench_ingest(seconds=seconds, extra_args=("--alert-webhook", url))
            on.append(r["points_per_s"])
            cpu_on.append(r["server_cpu"])
    return {
        "bench": "alerts_ingest",
        "seconds": seconds,
        "off_points_per_s": off,
        "on_points_per_s": on,
        "off_server_cpu": cpu_off,
        "on_server_cpu": cpu_on,
        "ratio": round(float(np.median(on)) / float(np.median(off)), 2),
    }


def _chunk(run_id: str, sequence: int, steps: np.ndarray, values: np.ndarray) -> Any:
    return runs_pb2.LossChunk(
        run_id=run_id,
        sequence=sequence,
        split=common_pb2.SPLIT_TRAIN,
        steps=steps.tolist(),
        values=values.tolist(),
    )


def bench_alert_latency(*, runs: int) -> dict[str, Any]:
    """Seconds from a NaN chunk's ack to the alert at the receiver, for `runs` runs."""
    latencies = []
    with receiver() as (url, arrivals), running_server(extra_args=("--alert-webhook", url)) as s:
        with grpc.insecure_channel(s.target) as channel:
            stub = runs_pb2_grpc.RunsStub(channel)
            for i in range(runs):
                run_id = s.create_run(f"latency-{i}")
                steps = np.arange(200)
                falling = 2.0 * 0.99**steps + 0.3
                chunks = [
                    _chunk(run_id, 1, steps, falling),
                    _chunk(run_id, 2, np.arange(200, 203), np.full(3, np.nan)),
                ]
                acked: list[float] = []
                for ack in stub.StreamLoss(iter(chunks), timeout=30):
                    if not ack.accepted:
                        raise RuntimeError(f"chunk refused: {ack.reason}")
                    acked.append(time.monotonic())
                deadline = time.monotonic() + 30
                while len(arrivals) <= i and time.monotonic() < deadline:
                    time.sleep(0.005)
                if len(arrivals) <= i:
                    raise RuntimeError("no alert within 30 s")
                latencies.append(arrivals[i] - acked[-1])
                time.sleep(0.2)
    return {
        "bench": "alerts_latency",
        "runs": runs,
        "p50_s": round(float(np.median(latencies)), 3),
        "max_s": round(max(latencies), 3),
        "alerts": len(arrivals),
    }


def run_all(*, seconds: float = 5.0, rounds: int = 2, runs: int = 5) -> list[dict[str, Any]]:
    """Both measurements, each with the load average before and after."""
    results = []
    for run in (
        lambda: bench_ingest_cost(seconds=seconds, rounds=rounds),
        lambda: bench_alert_latency(runs=runs),
    ):
        before = load_average()
        results.append({**run(), "load_before": before, "load_after": load_average()})
    return results


def format_report(results: list[dict[str, Any]]) -> list[str]:
    """One line per measurement: the figure, the target and the ratio."""
    lines = []
    for r in results:
        load = f"load {r['load_before']} -> {r['load_after']}"
        if r["bench"] == "alerts_ingest":
            off = ", ".join(f"{p:,}" for p in r["off_points_per_s"])
            on = ", ".join(f"{p:,}" for p in r["on_points_per_s"])
            lines.append(
                f"ingest with alerting on vs off, 8 streams x 10,000-point chunks: off {off} "
                f"points/s (server cpu {r['off_server_cpu']}), on {on} (server cpu "
                f"{r['on_server_cpu']}); on/off {r['ratio']:.2f}x, target >= "
                f"{TARGET_INGEST_RATIO}: {r['ratio'] / TARGET_INGEST_RATIO:.2f}x ({load})"
            )
        else:
            lines.append(
                f"NaN chunk acked to alert received (debounce 1 s), {r['runs']} runs: p50 "
                f"{r['p50_s']} s, max {r['max_s']} s; target <= {TARGET_LATENCY_S} s: "
                f"{r['max_s'] / TARGET_LATENCY_S:.2f}x; {r['alerts']} alerts ({load})"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    args = parser.parse_args(argv)
    results = run_all(seconds=2.0 if args.quick else 5.0, rounds=1 if args.quick else 2)
    for r in results:
        print(json.dumps(r), flush=True)
    print("\n".join(format_report(results)))


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    main()
