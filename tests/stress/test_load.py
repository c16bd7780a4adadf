"""Load and overload: 64 concurrent ingest streams; RESOURCE_EXHAUSTED past the limit.

- 64 StreamLoss streams at once (the default --max-concurrent-rpcs is 64, so
  exactly at the limit) against a server subprocess: every chunk acked
  `accepted`, no RPC error, every point read back.
- A server with max_concurrent_rpcs=4 and 4 streams held open: each further RPC
  is refused with RESOURCE_EXHAUSTED within 100 ms, and health still answers
  (the limit is the server's own interceptor, which exempts grpc.health.v1).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import grpc
import pytest
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..conftest import start_server
from .conftest import StressSettings, record

pytestmark = pytest.mark.stress

CHUNKS_PER_STREAM = 40
POINTS_PER_CHUNK = 250
OVERLOAD_LIMIT = 4
REFUSAL_BUDGET_S = 0.100


def _create_run(target: str, name: str) -> str:
    with grpc.insecure_channel(target) as channel:
        return (
            runs_pb2_grpc.RunsStub(channel)
            .CreateRun(runs_pb2.CreateRunRequest(project="load", name=name), timeout=10)
            .id
        )


def _chunks(run_id: str, series: str) -> list[runs_pb2.LossChunk]:
    return [
        runs_pb2.LossChunk(
            sequence=i + 1,
            run_id=run_id,
            split=common_pb2.SPLIT_TRAIN,
            series=series,
            steps=list(range(i * POINTS_PER_CHUNK, (i + 1) * POINTS_PER_CHUNK)),
            values=[float(i)] * POINTS_PER_CHUNK,
        )
        for i in range(CHUNKS_PER_STREAM)
    ]


def test_64_concurrent_ingest_streams_zero_errors(tmp_path: Path, stress: StressSettings) -> None:
    server = start_server(tmp_path / "data")
    try:
        run_id = _create_run(server.target, "concurrent")
        n = stress.concurrent_streams
        errors: list[str] = []
        acked = [0] * n
        ack_latency: list[float] = []
        barrier = threading.Barrier(n)

        def stream(i: int) -> None:
            chunks = _chunks(run_id, f"s{i}")
            sent_at: dict[int, float] = {}

            def requests():
                barrier.wait(30)  # every stream open at once
                for chunk in chunks:
                    sent_at[chunk.sequence] = time.perf_counter()
                    yield chunk

            try:
                with grpc.insecure_channel(server.target) as channel:
                    stub = runs_pb2_grpc.RunsStub(channel)
                    for ack in stub.StreamLoss(requests(), timeout=300):
                        if not ack.accepted:
                            errors.append(f"s{i}: chunk {ack.sequence} refused: {ack}")
                        else:
                            acked[i] += 1
                            ack_latency.append(time.perf_counter() - sent_at[ack.sequence])
            except grpc.RpcError as exc:
                errors.append(f"s{i}: {exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
            except threading.BrokenBarrierError:
                errors.append(f"s{i}: streams did not all start")

        started = time.monotonic()
        threads = [threading.Thread(target=stream, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        elapsed = time.monotonic() - started
        assert not errors, errors[:5]
        assert acked == [CHUNKS_PER_STREAM] * n
        big = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
        with grpc.insecure_channel(server.target, options=big) as channel:
            curves = runs_pb2_grpc.RunsStub(channel).GetCurves(
                runs_pb2.GetCurvesRequest(run_id=run_id), timeout=60
            )
        stored = {s.name: len(s.steps) for s in curves.series}
        assert stored == {f"s{i}": CHUNKS_PER_STREAM * POINTS_PER_CHUNK for i in range(n)}
        points = n * CHUNKS_PER_STREAM * POINTS_PER_CHUNK
        ack_latency.sort()
        record(
            "concurrent ingest",
            f"{n} streams x {CHUNKS_PER_STREAM} chunks x {POINTS_PER_CHUNK} points: "
            f"{points} points in {elapsed:.1f} s ({points / elapsed:,.0f} points/s), 0 errors; "
            f"ack latency p50 {statistics.median(ack_latency) * 1000:.0f} ms, "
            f"p99 {ack_latency[int(len(ack_latency) * 0.99)] * 1000:.0f} ms",
        )
    finally:
        server.proc.kill()
        server.proc.wait(10)


class _HeldStreams:
    """`count` StreamLoss streams kept open (each acked once) until `release`."""

    def __init__(self, target: str, run_id: str, count: int) -> None:
        self.channel = grpc.insecure_channel(target)
        self.release = threading.Event()
        self.open = threading.Semaphore(0)
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._hold, args=(run_id, f"held{i}")) for i in range(count)
        ]
        for t in self.threads:
            t.start()
        for _ in range(count):
            assert self.open.acquire(timeout=30), "a held stream did not open"

    def _hold(self, run_id: str, series: str) -> None:
        def requests():
            yield _chunks(run_id, series)[0]
            self.release.wait(60)

        try:
            stub = runs_pb2_grpc.RunsStub(self.channel)
            for _ack in stub.StreamLoss(requests(), timeout=90):
                self.open.release()
        except grpc.RpcError as exc:
            self.errors.append(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
            self.open.release()

    def close(self) -> None:
        self.release.set()
        for t in self.threads:
            t.join(30)
        self.channel.close()


def _metric(server, name: str, **labels: str) -> float:
    total = 0.0
    for family in server.deps.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _refusals_counted(server) -> float:
    return _metric(server, "evalstream_grpc_server_handled_total", grpc_code="RESOURCE_EXHAUSTED")


@pytest.mark.parametrize("stress_server", [{"max_concurrent_rpcs": OVERLOAD_LIMIT}], indirect=True)
def test_overload_is_refused_with_resource_exhausted_within_100ms(
    stress_server, stress: StressSettings
) -> None:
    run_id = _create_run(stress_server.target, "overload")
    held = _HeldStreams(stress_server.target, run_id, OVERLOAD_LIMIT)
    latencies: list[float] = []
    codes: dict[str, int] = {}
    try:
        assert not held.errors, held.errors
        with grpc.insecure_channel(stress_server.target) as channel:
            stub = runs_pb2_grpc.RunsStub(channel)
            stub.GetRun  # noqa: B018 - the channel connects on first use
            calls = [
                lambda: stub.GetRun(runs_pb2.GetRunRequest(run_id=run_id), timeout=5),
                lambda: list(stub.StreamLoss(iter(_chunks(run_id, "extra")[:1]), timeout=5)),
                lambda: stub.ListRuns(runs_pb2.ListRunsRequest(project="load"), timeout=5),
            ]
            for i in range(60):
                started = time.perf_counter()
                try:
                    calls[i % len(calls)]()
                    codes["OK"] = codes.get("OK", 0) + 1
                except grpc.RpcError as exc:
                    name = exc.code().name  # type: ignore[attr-defined]
                    codes[name] = codes.get(name, 0) + 1
                latencies.append(time.perf_counter() - started)
        # The interceptor counts a refusal as its call ends on the server, which can be
        # just after the client has its status: wait for the count to settle.
        deadline = time.monotonic() + 10
        while (handled := _refusals_counted(stress_server)) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        held.close()
    assert codes == {"RESOURCE_EXHAUSTED": 60}, codes
    assert handled == 60, f"{handled:.0f} refusals in the metrics for 60"
    worst = max(latencies[1:])  # the first call also sets up the connection
    latencies.sort()
    record(
        "overload",
        f"limit {OVERLOAD_LIMIT}, {OVERLOAD_LIMIT} streams held, 60 extra RPCs: {codes}; "
        f"refusal latency median {statistics.median(latencies) * 1000:.2f} ms, "
        f"max {max(latencies) * 1000:.2f} ms (first call included), "
        f"max after the first {worst * 1000:.2f} ms; RESOURCE_EXHAUSTED in "
        f"evalstream_grpc_server_handled_total: {handled:.0f}",
    )
    assert worst < REFUSAL_BUDGET_S, f"a refusal took {worst * 1000:.1f} ms"


@pytest.mark.parametrize("stress_server", [{"max_concurrent_rpcs": OVERLOAD_LIMIT}], indirect=True)
def test_health_answers_while_overloaded(stress_server, stress: StressSettings) -> None:
    run_id = _create_run(stress_server.target, "overload-health")
    held = _HeldStreams(stress_server.target, run_id, OVERLOAD_LIMIT)
    try:
        with grpc.insecure_channel(stress_server.target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        held.close()
