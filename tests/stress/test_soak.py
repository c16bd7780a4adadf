"""Soak: mixed load against a server subprocess, its RSS sampled; growth must stay bounded.

30 s in the short form, 5 minutes in the long one. Load: loss streams, box
scoring with a checkpoint (specimens written), text scoring (BLEU, ROUGE),
curve reads, run listing and creation, refused inputs, in an order and with
payloads drawn from the run's seed; loss streams move on to a fresh run every
20,000 points so that what one request loads stays bounded. RSS is read from
/proc/<pid>/status (VmRSS) every 2 s, the server's and its children's (the
store's writer process) summed. The baseline is the sample after a
fifth of the time (imports, caches and SQLite's page cache warm by then); the
last sample may exceed it by at most max(64 MiB, 25%).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import grpc
import pytest
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc

from ..conftest import child_pids, start_server
from .conftest import StressSettings, record

pytestmark = pytest.mark.stress

SAMPLE_EVERY_S = 2.0
MIB = 1024 * 1024
# Steady state: each loss stream moves to a fresh run every RUN_POINTS points and
# checkpoints cycle over 50 steps, so what one request loads stays the same size;
# growth then means a leak, not a bigger working set. (Rewriting a fixed window
# of steps instead is far slower: see the report on StreamLoss rewrites.)
RUN_POINTS = 20_000


def _own_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _rss(pid: int) -> int:
    """The server's RSS plus its children's (the store's writer process)."""
    total = _own_rss(pid)
    for child in child_pids(pid):
        try:
            total += _own_rss(child)
        except (OSError, AssertionError):
            continue  # exited meanwhile
    return total


def _loss(target: str, series: str, stop: threading.Event, errors: list[str]) -> None:
    """Streams new steps; every RUN_POINTS points it moves on to a fresh run."""
    with grpc.insecure_channel(target) as channel:
        runs = runs_pb2_grpc.RunsStub(channel)
        generation = 0
        while not stop.is_set():
            generation += 1
            run_id = runs.CreateRun(
                runs_pb2.CreateRunRequest(project="soak-loss", name=f"{series}-{generation}"),
                timeout=60,
            ).id

            def chunks(run_id: str = run_id):
                for seq, step in enumerate(range(0, RUN_POINTS, 100), start=1):
                    if stop.is_set():
                        return
                    yield runs_pb2.LossChunk(
                        sequence=seq,
                        run_id=run_id,
                        split=common_pb2.SPLIT_TRAIN,
                        series=series,
                        steps=list(range(step, step + 100)),
                        values=[1.0 / (1 + s) for s in range(step, step + 100)],
                    )
                    time.sleep(0.01)

            try:
                for ack in runs.StreamLoss(chunks(), timeout=600):
                    if not ack.accepted:
                        errors.append(f"refused: {ack}")
            except grpc.RpcError as exc:
                errors.append(f"StreamLoss {exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]


def _mixed(
    target: str, run_id: str, stop: threading.Event, errors: list[str], worker: int, seed: int
) -> None:
    rng = random.Random(f"{seed}-{worker}")  # its own sequence per worker, fixed by the seed
    step = 0
    with grpc.insecure_channel(target) as channel:
        runs = runs_pb2_grpc.RunsStub(channel)
        scoring = scoring_pb2_grpc.ScoringStub(channel)
        n = 0
        while not stop.is_set():
            n += 1
            kind = rng.randrange(6)
            try:
                if kind == 0:
                    step = step % 50 + 1  # 50 checkpoints, rewritten
                    ref = common_pb2.CheckpointRef(
                        run_id=run_id, split=common_pb2.SPLIT_VALIDATION, step=step
                    )
                    images = [
                        scoring_pb2.ImageBoxes(
                            image_id=f"img-{i}",
                            predictions=[
                                scoring_pb2.Box(
                                    x1=i, y1=i, x2=i + 10, y2=i + 12, label="cup",
                                    confidence=rng.random(),
                                )
                            ],
                            ground_truth=[
                                scoring_pb2.Box(x1=i, y1=i, x2=i + 11, y2=i + 12, label="cup")
                            ],
                        )
                        for i in range(20)
                    ]  # fmt: skip
                    batch = scoring_pb2.BoxBatch(images=images, checkpoint=ref)
                    list(scoring.ScoreBoxes(iter([batch]), timeout=60))
                elif kind == 1:
                    pairs = [
                        scoring_pb2.TextPair(
                            prediction=f"a red cup on table {rng.random()}",
                            references=["a red mug on a table", "the red cup"],
                        )
                        for _ in range(10)
                    ]
                    options = scoring_pb2.TextOptions(
                        metrics=[scoring_pb2.TEXT_METRIC_BLEU, scoring_pb2.TEXT_METRIC_ROUGE]
                    )
                    list(
                        scoring.ScoreText(
                            iter([scoring_pb2.TextBatch(pairs=pairs, options=options)]), timeout=60
                        )
                    )
                elif kind == 2:
                    runs.GetCurves(
                        runs_pb2.GetCurvesRequest(run_id=run_id, max_points=500), timeout=60
                    )
                elif kind == 3:
                    runs.ListRuns(runs_pb2.ListRunsRequest(project="soak"), timeout=60)
                elif kind == 4:
                    runs.CreateRun(
                        runs_pb2.CreateRunRequest(project="soak", name=f"r{worker}-{n}"), timeout=60
                    )
                else:
                    try:  # a refusal: errors must not leak either
                        runs.GetRun(runs_pb2.GetRunRequest(run_id="no-such-run"), timeout=60)
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                            raise
            except grpc.RpcError as exc:
                errors.append(f"kind {kind}: {exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]


def test_soak_rss_growth_is_bounded(tmp_path: Path, stress: StressSettings) -> None:
    server = start_server(tmp_path / "data")
    pid = server.proc.pid
    try:
        with grpc.insecure_channel(server.target) as channel:
            run_id = (
                runs_pb2_grpc.RunsStub(channel)
                .CreateRun(runs_pb2.CreateRunRequest(project="soak", name="main"), timeout=10)
                .id
            )
            chunks = [
                runs_pb2.LossChunk(
                    sequence=seq, run_id=run_id, split=common_pb2.SPLIT_TRAIN, series="loss",
                    steps=list(range(step, step + 1000)), values=[1.0] * 1000,
                )
                for seq, step in enumerate(range(0, RUN_POINTS, 1000), start=1)
            ]  # fmt: skip
            list(runs_pb2_grpc.RunsStub(channel).StreamLoss(iter(chunks), timeout=60))
        stop = threading.Event()
        errors: list[str] = []
        threads = [
            threading.Thread(target=_loss, args=(server.target, f"s{i}", stop, errors))
            for i in range(4)
        ] + [
            threading.Thread(
                target=_mixed, args=(server.target, run_id, stop, errors, i, stress.seed)
            )
            for i in range(4)
        ]
        for t in threads:
            t.start()
        samples: list[tuple[float, int]] = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < stress.soak_seconds:
            samples.append((elapsed, _rss(pid)))
            time.sleep(SAMPLE_EVERY_S)
        samples.append((time.monotonic() - started, _rss(pid)))
        stop.set()
        for t in threads:
            t.join(60)
        assert server.proc.poll() is None, "the server died during the soak"
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)
    warm = next(rss for t, rss in samples if t >= stress.soak_seconds / 5)
    first, last, peak = samples[0][1], samples[-1][1], max(r for _, r in samples)
    allowed = max(64 * MIB, warm // 4)
    record(
        "soak",
        f"{stress.soak_seconds:.0f} s, {len(samples)} samples: RSS first {first / MIB:.1f} MiB, "
        f"after warm-up ({stress.soak_seconds / 5:.0f} s) {warm / MIB:.1f} MiB, "
        f"last {last / MIB:.1f} MiB, max {peak / MIB:.1f} MiB; growth since warm-up "
        f"{(last - warm) / MIB:+.1f} MiB (allowed {allowed / MIB:.0f}); {len(errors)} errors; "
        f"seed {stress.seed}",
    )
    step = max(1, len(samples) // 15)
    record(
        "soak",
        "RSS trace (s: MiB): "
        + ", ".join(f"{t:.0f}: {r / MIB:.0f}" for t, r in samples[::step] + samples[-1:]),
    )
    assert not errors, errors[:5]
    assert last - warm <= allowed
