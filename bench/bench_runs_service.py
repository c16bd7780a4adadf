"""Runs service benchmarks: loss ingestion and curves THROUGH a real `evalstream-server`.

Three measurements, matching the targets of the run-store issue, each against a
fresh server subprocess (own data directory, ``synchronous=FULL``):

- ``ingest``: sustained ingest, acked (hence durable), over ``Runs.StreamLoss``:
  ``streams`` concurrent streams, each its own series, in chunks of ``chunk``
  points with strictly increasing steps, ``window`` chunks in flight per stream.
  Target >= 10,000,000 points/s with 8 streams of 10,000-point chunks.
- ``latency``: ``streams`` streams sending one-point chunks for ``seconds``;
  p50/p99 of the time from send to ack. Target p99 <= 20 ms with 100 streams.
  Two loads. Open loop (``rate`` chunks/s per stream): each stream sends at
  random (Poisson) moments at that mean rate whatever the acks do, as a trainer
  logs its steps, and the acks are read as they come; this is the latency a
  trainer sees at that load, measured at several rates. Closed loop (no rate):
  each stream sends its next chunk only once the previous one is acked, so the
  server runs flat out; with 100 chunks always in flight the latency is then
  100 / throughput (Little's law): it measures capacity, not latency.
- ``curves``: GetCurves of a ``points``-point series downsampled to
  ``max_points`` (p50/p99 over ``calls`` calls, client-side wall time, wire
  included), and the unsampled read for comparison. Target <= 50 ms.

The load generators run in separate processes (``processes``) with grpc.aio, and
send pre-encoded LossChunk bytes (the packed fields are encoded with numpy, see
`encode_chunk`) so that the client does as little work per point as possible.
The machine's cores are shared by the server and the clients: each figure
comes with the CPU seconds that the server and the clients used, so that the
bottleneck shows.

Run: ``.venv/bin/python bench/bench_runs_service.py [--quick] [--only ingest|latency|curves]``;
it prints one JSON object per measurement. Importable: each ``bench_*`` function
returns its figures as a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import Server  # noqa: E402

STREAM_LOSS = "/evalstream.v1.Runs/StreamLoss"
# Steps start here so that every step of a bench series is a 4-byte varint
# (2**21 <= step < 2**28), which lets `encode_chunk` pack them with numpy.
STEP_BASE = 1 << 21
_STEP_LIMIT = 1 << 28
_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- server


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` and its live children have used."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if stat.parent.name == str(pid) or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


class RunsServer(Server):
    """`evalstream-server` on a free port, as a child process, on a fresh data directory.

    Args:
        extra_args: More server flags, e.g. ("--max-concurrent-rpcs", "256").
    """

    def __init__(self, *, extra_args: Sequence[str] = ()) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="evalstream-runs-bench-"))
        try:
            # The runs figures need no text model (and loading one would take CPU).
            super().__init__(
                self.data_dir, ("--bertscore-model", "none", "--text-workers", "0", *extra_args)
            )
        except RuntimeError:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise

    def cpu_seconds(self) -> float:
        """User + system CPU time the server and its children (the store's writer) have used."""
        return process_cpu_seconds(self.proc.pid)

    def wait_idle(
        self, *, cpu_fraction: float = 0.05, window: float = 0.5, limit: float = 120.0
    ) -> float:
        """Waits until the server uses under ``cpu_fraction`` of a core over ``window`` s.

        The server warms its text metrics (WordNet and friends) in a thread after it
        starts serving, which holds the GIL for seconds: measuring then would measure
        the warm-up. Returns the seconds waited.
        """
        start = time.monotonic()
        while time.monotonic() - start < limit:
            before = self.cpu_seconds()
            time.sleep(window)
            if self.cpu_seconds() - before < cpu_fraction * window:
                break
        return time.monotonic() - start

    def create_run(self, name: str) -> str:
        with grpc.insecure_channel(self.target) as channel:
            run = runs_pb2_grpc.RunsStub(channel).CreateRun(
                runs_pb2.CreateRunRequest(project="bench", name=name), timeout=30
            )
        return str(run.id)

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@contextmanager
def running_server(*, extra_args: Sequence[str] = ()) -> Iterator[RunsServer]:
    """A started server, once it has settled (see `RunsServer.wait_idle`)."""
    server = RunsServer(extra_args=extra_args)
    try:
        server.wait_idle()
        yield server
    finally:
        server.close()


# --------------------------------------------------------------------------- encoding


def _key(field: int, wire_type: int) -> bytes:
    return bytes([(field << 3) | wire_type])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _varint(len(payload)) + payload


def chunk_header(run_id: str, series: str, split: int = common_pb2.SPLIT_TRAIN) -> bytes:
    """The fields of a LossChunk that do not change between chunks of a series."""
    return (
        _length_delimited(2, run_id.encode())
        + _key(3, 0)
        + _varint(split)
        + _length_delimited(4, series.encode())
    )


# The packed fields' keys and lengths of a one-point chunk (4-byte step, 8-byte value).
_ONE_STEP_KEY = bytes([(5 << 3) | 2, 4])
_ONE_VALUE_KEY = bytes([(6 << 3) | 2, 8])


def encode_chunk(header: bytes, sequence: int, first_step: int, values: np.ndarray) -> bytes:
    """A serialized LossChunk of steps first_step, first_step + 1, ... and ``values``.

    The packed steps are 4-byte varints, so first_step and the last step must be in
    [2**21, 2**28).

    >>> values = np.array([0.5, 0.25])
    >>> raw = encode_chunk(chunk_header("r_1", "loss"), 7, STEP_BASE, values)
    >>> chunk = runs_pb2.LossChunk.FromString(raw)
    >>> chunk.sequence, list(chunk.steps) == [STEP_BASE, STEP_BASE + 1], list(chunk.values)
    (7, True, [0.5, 0.25])
    >>> one = runs_pb2.LossChunk.FromString(encode_chunk(b"", 9, STEP_BASE + 300, values[:1]))
    >>> one.sequence, list(one.steps) == [STEP_BASE + 300], list(one.values)
    (9, True, [0.5])
    """
    n = len(values)
    if not (STEP_BASE <= first_step and first_step + n <= _STEP_LIMIT):
        raise ValueError(f"steps {first_step}..{first_step + n - 1} are not 4-byte varints")
    if n == 1:  # the latency bench's chunk, with no array work
        s = first_step
        return b"".join(
            (
                _key(1, 0),
                _varint(sequence),
                header,
                _ONE_STEP_KEY,
                bytes((s & 0x7F | 0x80, s >> 7 & 0x7F | 0x80, s >> 14 & 0x7F | 0x80, s >> 21)),
                _ONE_VALUE_KEY,
                struct.pack("<d", values[0]),
            )
        )
    steps = np.arange(first_step, first_step + n, dtype=np.uint32)
    packed = np.empty((n, 4), dtype=np.uint8)
    packed[:, 0] = (steps & 0x7F) | 0x80
    packed[:, 1] = ((steps >> 7) & 0x7F) | 0x80
    packed[:, 2] = ((steps >> 14) & 0x7F) | 0x80
    packed[:, 3] = steps >> 21
    return b"".join(
        (
            _key(1, 0),
            _varint(sequence),
            header,
            _key(5, 2),
            _varint(4 * n),
            packed.tobytes(),
            _key(6, 2),
            _varint(8 * n),
            values.astype("<f8", copy=False).tobytes(),
        )
    )


async def _cpu_between(t_start: float, t_stop: float) -> float:
    """This process's CPU seconds between two time.monotonic() instants (awaited in the loop)."""
    await asyncio.sleep(max(0.0, t_start - time.monotonic()))
    a = os.times()
    await asyncio.sleep(max(0.0, t_stop - time.monotonic()))
    b = os.times()
    return (b.user - a.user) + (b.system - a.system)


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    if not len(ms):
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


# --------------------------------------------------------------------------- ingest


async def _ingest_streams(
    target: str,
    run_id: str,
    stream_ids: Sequence[int],
    chunk: int,
    window: int,
    t_start: float,
    t_stop: float,
) -> tuple[int, int, float]:
    """Streams until t_stop; returns (points acked in [t_start, t_stop], refused, CPU seconds)."""
    values = np.random.default_rng(0).random(chunk)
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    counted = refused = 0

    async def one(channel: grpc.aio.Channel, i: int) -> None:
        nonlocal counted, refused
        method = channel.stream_stream(
            STREAM_LOSS,
            request_serializer=None,
            response_deserializer=runs_pb2.LossAck.FromString,
        )
        header = chunk_header(run_id, f"loss{i}")
        call = method(timeout=max(60.0, t_stop - time.monotonic() + 60))
        credits = asyncio.Semaphore(window)
        stop = asyncio.Event()

        async def send() -> None:
            seq = 0
            while time.monotonic() < t_stop:
                await credits.acquire()
                seq += 1
                await call.write(encode_chunk(header, seq, STEP_BASE + (seq - 1) * chunk, values))
            await call.done_writing()
            stop.set()

        writer = asyncio.ensure_future(send())
        async for ack in call:
            now = time.monotonic()
            if ack.accepted:
                if t_start <= now <= t_stop:
                    counted += chunk
            else:
                refused += 1
            credits.release()
        await writer

    # One channel (one TCP connection) per stream: the streams do not share a socket.
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in stream_ids]
    cpu = asyncio.ensure_future(_cpu_between(t_start, t_stop))
    try:
        await asyncio.gather(*(one(ch, i) for ch, i in zip(channels, stream_ids, strict=True)))
    finally:
        for ch in channels:
            await ch.close()
    return counted, refused, await cpu


def _ingest_worker(
    target: str,
    run_id: str,
    stream_ids: list[int],
    chunk: int,
    window: int,
    t_start: float,
    t_stop: float,
    out: Any,
) -> None:
    out.put(
        asyncio.run(_ingest_streams(target, run_id, stream_ids, chunk, window, t_start, t_stop))
    )


def _split(n: int, parts: int) -> list[list[int]]:
    return [list(range(n))[p::parts] for p in range(parts) if p < n]


def bench_ingest(
    *,
    streams: int = 8,
    chunk: int = 10_000,
    seconds: float = 5.0,
    warmup: float = 1.0,
    window: int = 16,
    processes: int = 2,
    extra_args: Sequence[str] = (),
    replicas: int = 1,
    database_cpu: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Acked points/s over ``streams`` StreamLoss streams, counted after ``warmup`` s
    (``extra_args``: more server flags).

    ``replicas`` servers (all started with ``extra_args``: several only on a shared
    ``--store``) take the streams in turn, one client process or more each, all
    writing one run. ``database_cpu``: the database server's CPU seconds so far,
    reported beside the server's when given.
    """
    ctx = mp.get_context("spawn")
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(extra_args=extra_args)) for _ in range(replicas)
        ]
        run_id = servers[0].create_run("ingest")
        # Spawned workers need a moment to import grpc and numpy; start them first.
        t0 = time.monotonic() + 3.0
        t_start, t_stop = t0 + warmup, t0 + warmup + seconds
        out: Any = ctx.Queue()
        workers = [
            ctx.Process(
                target=_ingest_worker,
                args=(
                    servers[k % replicas].target,
                    run_id,
                    ids,
                    chunk,
                    window,
                    t_start,
                    t_stop,
                    out,
                ),
            )
            for k, ids in enumerate(_split(streams, max(processes, replicas)))
        ]
        for w in workers:
            w.start()

        def cpu() -> tuple[float, float]:
            db = database_cpu() if database_cpu is not None else 0.0
            return sum(s.cpu_seconds() for s in servers), db

        time.sleep(max(0.0, t_start - time.monotonic()))
        server_start, db_start = cpu()
        time.sleep(max(0.0, t_stop - time.monotonic()))
        server_stop, db_stop = cpu()
        results = [out.get(timeout=300) for _ in workers]
        for w in workers:
            w.join()
    points = sum(r[0] for r in results)
    return {
        "bench": "ingest",
        "streams": streams,
        "chunk": chunk,
        "window": window,
        "replicas": replicas,
        "client_processes": len(workers),
        "seconds": seconds,
        "points_acked": points,
        "points_per_s": round(points / seconds),
        "refused_chunks": sum(r[1] for r in results),
        # CPU seconds per wall second (2.0 = both cores of this machine).
        "server_cpu": round((server_stop - server_start) / seconds, 2),
        "clients_cpu": round(sum(r[2] for r in results) / seconds, 2),
        **(
            {"database_cpu": round((db_stop - db_start) / seconds, 2)}
            if database_cpu is not None
            else {}
        ),
    }


# --------------------------------------------------------------------------- latency


async def _latency_streams(
    target: str,
    run_id: str,
    stream_ids: Sequence[int],
    t_start: float,
    t_stop: float,
    rate: float | None = None,
) -> tuple[list[float], int, float]:
    """One-point chunks per stream: latencies (s) of sends in [t_start, t_stop], refusals
    and CPU seconds in that window.

    ``rate`` None: closed loop, each stream sends its next chunk once the previous one
    is acked. Otherwise open loop: each stream sends at Poisson moments of mean
    ``rate``/s without waiting, and a reader task matches acks to sends by sequence.
    """
    latencies: list[float] = []
    refused = 0
    values = np.array([0.5])

    def record(ack: runs_pb2.LossAck, sent: float, done: float) -> None:
        nonlocal refused
        if not ack.accepted:
            refused += 1
        elif sent >= t_start:
            latencies.append(done - sent)

    async def closed(call: Any, header: bytes, i: int) -> None:
        seq = 0
        while time.monotonic() < t_stop:
            seq += 1
            raw = encode_chunk(header, seq, STEP_BASE + seq, values)
            sent = time.monotonic()
            await call.write(raw)
            ack = await call.read()
            done = time.monotonic()
            if ack is grpc.aio.EOF:
                raise RuntimeError(f"stream {i} ended early: {await call.code()}")
            record(ack, sent, done)
        await call.done_writing()

    async def open_loop(call: Any, header: bytes, i: int) -> None:
        assert rate is not None
        rng = np.random.default_rng(i)
        sent: dict[int, float] = {}

        async def read() -> None:
            while (ack := await call.read()) is not grpc.aio.EOF:
                record(ack, sent.pop(ack.sequence), time.monotonic())

        reader = asyncio.ensure_future(read())
        seq = 0
        next_at = time.monotonic() + rng.exponential(1 / rate)
        while next_at < t_stop:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            seq += 1
            sent[seq] = time.monotonic()
            await call.write(encode_chunk(header, seq, STEP_BASE + seq, values))
            next_at += rng.exponential(1 / rate)
        await call.done_writing()
        await reader
        if sent:
            raise RuntimeError(f"stream {i}: {len(sent)} chunks never acked")

    async def one(channel: grpc.aio.Channel, i: int) -> None:
        method = channel.stream_stream(
            STREAM_LOSS,
            request_serializer=None,
            response_deserializer=runs_pb2.LossAck.FromString,
        )
        call = method(timeout=max(60.0, t_stop - time.monotonic() + 60))
        await (closed if rate is None else open_loop)(call, chunk_header(run_id, f"s{i}"), i)
        await call.code()

    # Streams share a few channels (HTTP/2 multiplexes them), as many clients would.
    channels = [grpc.aio.insecure_channel(target) for _ in range(min(8, len(stream_ids)))]
    cpu = asyncio.ensure_future(_cpu_between(t_start, t_stop))
    try:
        await asyncio.gather(
            *(one(channels[k % len(channels)], i) for k, i in enumerate(stream_ids))
        )
    finally:
        for ch in channels:
            await ch.close()
    return latencies, refused, await cpu


def _latency_worker(
    target: str,
    run_id: str,
    stream_ids: list[int],
    t_start: float,
    t_stop: float,
    out: Any,
    rate: float | None = None,
) -> None:
    out.put(asyncio.run(_latency_streams(target, run_id, stream_ids, t_start, t_stop, rate)))


# A StreamLoss stream holds one server handler thread (and one RPC slot) for its whole
# life: the server's defaults (64 of each) would refuse 36 of 100 streams outright.
LATENCY_SERVER_ARGS = ("--max-concurrent-rpcs", "256", "--max-workers", "256")


# Open-loop loads: chunks/s per stream (x 100 streams: 1,000 to 4,000 chunks/s).
OPEN_LOOP_RATES = (10.0, 20.0, 30.0, 40.0)


def bench_latency(
    *,
    streams: int = 100,
    seconds: float = 10.0,
    warmup: float = 1.0,
    processes: int = 1,
    server_args: Sequence[str] = LATENCY_SERVER_ARGS,
    rate: float | None = None,
) -> dict[str, Any]:
    """p50/p99 send-to-ack latency of one-point chunks over ``streams`` streams.

    ``rate``: chunks/s per stream, sent whatever the acks do (open loop); None:
    each stream waits for its ack before the next send (closed loop).
    """
    ctx = mp.get_context("spawn")
    with running_server(extra_args=server_args) as server:
        run_id = server.create_run("latency")
        t0 = time.monotonic() + 3.0
        t_start, t_stop = t0 + warmup, t0 + warmup + seconds
        out: Any = ctx.Queue()
        workers = [
            ctx.Process(
                target=_latency_worker,
                args=(server.target, run_id, ids, t_start, t_stop, out, rate),
            )
            for ids in _split(streams, processes)
        ]
        for w in workers:
            w.start()
        time.sleep(max(0.0, t_start - time.monotonic()))
        cpu_start = server.cpu_seconds()
        time.sleep(max(0.0, t_stop - time.monotonic()))
        server_cpu = server.cpu_seconds() - cpu_start
        results = [out.get(timeout=300) for _ in workers]
        for w in workers:
            w.join()
    ms = np.array([x for r in results for x in r[0]]) * 1000
    return {
        "bench": "latency",
        "streams": streams,
        "offered_per_s": None if rate is None else round(rate * streams),
        "client_processes": len(workers),
        "seconds": seconds,
        "acks": len(ms),
        "acks_per_s": round(len(ms) / seconds),
        **_percentiles(ms),
        "refused_chunks": sum(r[1] for r in results),
        "server_cpu": round(server_cpu / seconds, 2),
        "clients_cpu": round(sum(r[2] for r in results) / seconds, 2),
    }


# --------------------------------------------------------------------------- curves


def bench_curves(
    *,
    points: int = 1_000_000,
    chunk: int = 10_000,
    max_points: int = 2_000,
    calls: int = 20,
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    """GetCurves of a ``points``-point series, downsampled to ``max_points`` and unsampled
    (``extra_args``: more server flags)."""
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    with running_server(extra_args=extra_args) as server:
        run_id = server.create_run("curves")
        rng = np.random.default_rng(0)
        with grpc.insecure_channel(server.target, options=options) as channel:
            stub = runs_pb2_grpc.RunsStub(channel)

            def chunks() -> Iterator[runs_pb2.LossChunk]:
                for k, lo in enumerate(range(0, points, chunk)):
                    steps = np.arange(lo, min(lo + chunk, points), dtype=np.int64)
                    yield runs_pb2.LossChunk(
                        sequence=k + 1,
                        run_id=run_id,
                        split=common_pb2.SPLIT_TRAIN,
                        series="loss",
                        steps=steps,
                        values=np.exp(-steps / points) + 0.01 * rng.random(len(steps)),
                    )

            acks = list(stub.StreamLoss(chunks(), timeout=300))
            if not all(a.accepted for a in acks):
                raise RuntimeError("curves bench: a chunk was refused")

            def timed(max_pts: int, n: int) -> tuple[np.ndarray, runs_pb2.GetCurvesResponse]:
                request = runs_pb2.GetCurvesRequest(
                    run_id=run_id, series=["loss"], max_points=max_pts
                )
                stub.GetCurves(request, timeout=60)  # warm the reader connection and caches
                ms = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    response = stub.GetCurves(request, timeout=60)
                    ms.append((time.perf_counter() - t0) * 1000)
                return np.array(ms), response

            sampled_ms, sampled = timed(max_points, calls)
            full_ms, full = timed(0, max(3, calls // 4))
    return {
        "bench": "curves",
        "points": int(sampled.series[0].total_points),
        "max_points": max_points,
        "kept": len(sampled.series[0].steps),
        "calls": calls,
        **_percentiles(sampled_ms),
        "unsampled_points": len(full.series[0].steps),
        "unsampled_p50_ms": round(float(np.percentile(full_ms, 50)), 2),
    }


# --------------------------------------------------------------------------- main


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# The targets.
TARGET_POINTS_PER_S = 10_000_000
TARGET_P99_MS = 20.0
TARGET_CURVES_MS = 50.0


def run_all(
    *, seconds: float = 5.0, only: Sequence[str] = ("ingest", "latency", "curves")
) -> list[dict[str, Any]]:
    """Runs the chosen measurements; each result carries the load average before and after."""
    results = []
    for name in only:
        before = load_average()
        if name == "ingest":
            result = bench_ingest(seconds=seconds)
        elif name == "latency":
            for rate in OPEN_LOOP_RATES:
                before = load_average()
                result = bench_latency(seconds=2 * seconds, rate=rate)
                results.append({**result, "load_before": before, "load_after": load_average()})
            before = load_average()
            result = bench_latency(seconds=2 * seconds)
        elif name == "curves":
            result = bench_curves(calls=20)
        else:
            raise ValueError(f"unknown measurement {name!r}; expected ingest, latency or curves")
        results.append({**result, "load_before": before, "load_after": load_average()})
    return results


def format_report(results: Sequence[dict[str, Any]]) -> list[str]:
    """One line per measurement: the figure, the target and figure/target."""
    lines = []
    for r in results:
        load = f"load {r['load_before']} -> {r['load_after']}"
        cpu = f"cpu: server with its writer {r.get('server_cpu')}, clients {r.get('clients_cpu')}"
        if r["bench"] == "ingest":
            rate = r["points_per_s"]
            lines.append(
                f"ingest, {r['streams']} streams x {r['chunk']:,}-point chunks, acked: "
                f"{rate:,} points/s; target >= {TARGET_POINTS_PER_S:,}: "
                f"{rate / TARGET_POINTS_PER_S:.2f}x ({cpu}; {load})"
            )
        elif r["bench"] == "latency":
            load_kind = (
                "closed loop, flat out"
                if r["offered_per_s"] is None
                else f"open loop, {r['offered_per_s']:,} chunks/s offered"
            )
            lines.append(
                f"ack latency, {r['streams']} streams x 1-point chunks, {load_kind} "
                f"({r['acks_per_s']:,} acks/s): "
                f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; target p99 <= {TARGET_P99_MS:g} ms: "
                f"{r['p99_ms'] / TARGET_P99_MS:.2f}x ({cpu}; {load})"
            )
        elif r["bench"] == "curves":
            lines.append(
                f"GetCurves, {r['points']:,} points -> {r['kept']:,}: p50 {r['p50_ms']} ms, "
                f"p99 {r['p99_ms']} ms over {r['calls']} calls; target <= {TARGET_CURVES_MS:g} ms: "
                f"{r['p99_ms'] / TARGET_CURVES_MS:.2f}x (unsampled: {r['unsampled_p50_ms']} ms; "
                f"{load})"
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    parser.add_argument("--only", choices=("ingest", "latency", "curves"), default=None)
    args = parser.parse_args(argv)
    only = (args.only,) if args.only else ("ingest", "latency", "curves")
    results = run_all(seconds=2.0 if args.quick else 5.0, only=only)
    for r in results:
        print(json.dumps(r), flush=True)
    print("\n".join(format_report(results)))


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    main()
