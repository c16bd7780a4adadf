"""Runs end to end: create, ingest loss, checkpoints, curves, specimens (real server, port 0)."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
from evalstream import Client, errors
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from evalstream_server.store import PostgresStore


@pytest.fixture(params=["sqlite", "postgres"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both stores (the PostgreSQL one skips without PostgreSQL)."""
    return str(request.param)


TRAIN, VALIDATION = common_pb2.SPLIT_TRAIN, common_pb2.SPLIT_VALIDATION


@pytest.fixture
def stub(live_server):
    with grpc.insecure_channel(live_server.target) as channel:
        yield runs_pb2_grpc.RunsStub(channel)


def _create(stub, name="r1", project="p", **hypers) -> runs_pb2.Run:
    from evalstream._runs import hyper_pb

    return stub.CreateRun(
        runs_pb2.CreateRunRequest(
            project=project,
            name=name,
            model="paligemma-3b",
            task=runs_pb2.TASK_PHRASE_GROUNDING,
            hyperparameters={k: hyper_pb(v) for k, v in hypers.items()},
        ),
        timeout=10,
    )


def _stream(stub, chunks):
    return list(stub.StreamLoss(iter(chunks), timeout=30))


def test_create_get_and_duplicate_name(stub) -> None:
    run = _create(stub, learning_rate=3e-4, batch_size=32, optimizer="adamw", dataset_size=1000)
    assert run.id and run.status == runs_pb2.RUN_STATUS_RUNNING
    got = stub.GetRun(runs_pb2.GetRunRequest(run_id=run.id), timeout=10)
    assert got.name == "r1" and got.model == "paligemma-3b"
    assert got.hyperparameters["learning_rate"].float_value == 3e-4
    assert got.hyperparameters["batch_size"].int_value == 32
    assert got.derived["steps_per_epoch"].int_value == 32  # ceil(1000 / 32)
    with pytest.raises(grpc.RpcError) as info:
        _create(stub)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert _create(stub, project="other").id != run.id  # names are unique per project only
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRun(runs_pb2.GetRunRequest(run_id="nope"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_create_run_refuses_bad_fields(stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRun(runs_pb2.CreateRunRequest(project="", name="x"), timeout=10)
    err = errors.from_grpc(info.value)
    assert isinstance(err, errors.InvalidArgument)
    assert [v.field for v in err.violations] == ["project"]
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRun(
            runs_pb2.CreateRunRequest(
                project="p",
                name="x",
                hyperparameters={"lr": runs_pb2.HyperValue(float_value=math.nan)},
            ),
            timeout=10,
        )
    assert errors.from_grpc(info.value).violations[0].field == "hyperparameters[lr]"


def test_list_runs_filters_and_pages(stub) -> None:
    for i in range(7):
        _create(stub, name=f"run{i}", batch_size=16 if i % 2 else 32)
    stub.SetRunStatus(
        runs_pb2.SetRunStatusRequest(
            run_id=_create(stub, name="done").id, status=runs_pb2.RUN_STATUS_FINISHED
        ),
        timeout=10,
    )
    seen, token = [], ""
    while True:
        page = stub.ListRuns(
            runs_pb2.ListRunsRequest(project="p", page_size=3, page_token=token), timeout=10
        )
        seen += [r.name for r in page.runs]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted([f"run{i}" for i in range(7)] + ["done"])
    finished = stub.ListRuns(
        runs_pb2.ListRunsRequest(project="p", statuses=[runs_pb2.RUN_STATUS_FINISHED]), timeout=10
    )
    assert [r.name for r in finished.runs] == ["done"]
    from evalstream._runs import hyper_pb

    small = stub.ListRuns(
        runs_pb2.ListRunsRequest(
            project="p",
            hyperparameters=[runs_pb2.HyperFilter(key="batch_size", value=hyper_pb(16))],
        ),
        timeout=10,
    )
    assert sorted(r.name for r in small.runs) == ["run1", "run3", "run5"]
    by_name = stub.ListRuns(runs_pb2.ListRunsRequest(project="p", name="run4"), timeout=10)
    assert [r.name for r in by_name.runs] == ["run4"]


def test_stream_loss_acks_are_idempotent_and_refusals_name_the_field(stub) -> None:
    run = _create(stub)
    good = runs_pb2.LossChunk(
        sequence=1, run_id=run.id, split=TRAIN, steps=[0, 1, 2], values=[2.5, 2.0, 1.5]
    )
    acks = _stream(
        stub,
        [
            good,
            runs_pb2.LossChunk(
                sequence=2, run_id=run.id, split=TRAIN, steps=[3, -4], values=[1.0, 1.0]
            ),
            runs_pb2.LossChunk(sequence=3, run_id=run.id, split=TRAIN, steps=[5, 6], values=[1.0]),
            runs_pb2.LossChunk(sequence=4, run_id="missing", split=TRAIN, steps=[1], values=[1.0]),
            runs_pb2.LossChunk(sequence=5, run_id=run.id, steps=[1], values=[1.0]),
            runs_pb2.LossChunk(
                sequence=6,
                run_id=run.id,
                split=TRAIN,
                steps=[1],
                values=[1.0],
                wall_times=[1.0, 2.0],
            ),
            good,  # a resend
            runs_pb2.LossChunk(
                sequence=8, run_id=run.id, split=TRAIN, steps=[2, 3], values=[1.25, 1.0]
            ),
        ],
    )
    assert [a.sequence for a in acks] == [1, 2, 3, 4, 5, 6, 1, 8]
    assert [a.accepted for a in acks] == [True, False, False, False, False, False, True, True]
    assert (acks[0].stored, acks[0].duplicates) == (3, 0)
    assert [a.field for a in acks[1:6]] == ["steps[1]", "values", "run_id", "split", "wall_times"]
    assert all(a.reason for a in acks[1:6])
    assert (acks[6].stored, acks[6].duplicates) == (0, 3)  # resending changes nothing
    assert acks[7].stored == 2  # step 2 changed (last write wins) and step 3 is new
    curves = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run.id), timeout=10)
    (loss,) = curves.series
    assert (loss.name, loss.split) == ("loss", TRAIN)
    assert list(loss.steps) == [0, 1, 2, 3]
    assert list(loss.values) == [2.5, 2.0, 1.25, 1.0]


@pytest.mark.parametrize("live_server", [{"max_points_per_chunk": 10}], indirect=True)
def test_a_chunk_of_too_many_points_is_refused_and_the_stream_goes_on(stub) -> None:
    run = _create(stub)

    def chunk(sequence: int, lo: int, n: int) -> runs_pb2.LossChunk:
        steps = list(range(lo, lo + n))
        return runs_pb2.LossChunk(
            sequence=sequence, run_id=run.id, split=TRAIN, steps=steps, values=[0.5] * n
        )

    acks = _stream(stub, [chunk(1, 0, 10), chunk(2, 10, 11), chunk(3, 30, 1)])
    assert [a.accepted for a in acks] == [True, False, True]
    assert [a.stored for a in acks] == [10, 0, 1]
    assert acks[1].field == "steps"
    assert acks[1].reason == (
        "steps: 11 points, at most 10 per chunk; send smaller chunks, "
        "or raise it with --max-points-per-chunk / EVALSTREAM_MAX_POINTS_PER_CHUNK"
    )
    (loss,) = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run.id), timeout=10).series
    assert list(loss.steps) == [*range(10), 30]  # none of the refused chunk's points


def test_nan_and_infinity_are_stored_as_sent_and_order_does_not_matter(stub) -> None:
    run = _create(stub)
    _stream(
        stub,
        [
            runs_pb2.LossChunk(
                sequence=1, run_id=run.id, split=TRAIN, steps=[30, 10], values=[math.nan, 1.0]
            ),
            runs_pb2.LossChunk(
                sequence=2, run_id=run.id, split=TRAIN, steps=[20, 40], values=[math.inf, -math.inf]
            ),
            runs_pb2.LossChunk(
                sequence=3,
                run_id=run.id,
                split=VALIDATION,
                series="loss",
                steps=[20],
                values=[1.5],
                wall_times=[1700000000.5],
            ),
        ],
    )
    curves = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run.id, splits=[TRAIN]), timeout=10)
    (train,) = curves.series
    assert list(train.steps) == [10, 20, 30, 40]
    assert train.values[0] == 1.0 and train.values[1] == math.inf
    assert math.isnan(train.values[2]) and train.values[3] == -math.inf
    (val,) = stub.GetCurves(
        runs_pb2.GetCurvesRequest(run_id=run.id, splits=[VALIDATION]), timeout=10
    ).series
    assert list(val.wall_times) == [1700000000.5]


def test_get_curves_downsamples_keeping_spikes(stub) -> None:
    run = _create(stub)
    n = 100_000
    values = np.linspace(3.0, 0.5, n)
    values[54_321] = 40.0  # a spike
    _stream(
        stub,
        [
            runs_pb2.LossChunk(
                sequence=1, run_id=run.id, split=TRAIN, steps=range(n), values=values.tolist()
            )
        ],
    )
    (s,) = stub.GetCurves(
        runs_pb2.GetCurvesRequest(run_id=run.id, max_points=500), timeout=10
    ).series
    assert s.total_points == n and 2 <= len(s.steps) <= 500
    assert 54_321 in s.steps and max(s.values) == 40.0
    assert s.steps[0] == 0 and s.steps[-1] == n - 1


def test_learning_rate_series_gives_derived_values(stub) -> None:
    run = _create(stub)
    _stream(
        stub,
        [
            runs_pb2.LossChunk(
                sequence=1,
                run_id=run.id,
                split=TRAIN,
                series="learning_rate",
                steps=[2, 0, 1],
                values=[1e-5, 1e-4, 5e-5],
            )
        ],
    )
    got = stub.GetRun(runs_pb2.GetRunRequest(run_id=run.id), timeout=10)
    assert got.derived["initial_learning_rate"].float_value == 1e-4
    assert got.derived["final_learning_rate"].float_value == 1e-5


def test_checkpoints_and_evaluation_steps(stub) -> None:
    run = _create(stub)
    for step, train_f1, val_f1 in ((500, 0.75, 0.72), (1000, 0.85, 0.80)):
        stub.LogCheckpoint(
            runs_pb2.LogCheckpointRequest(
                run_id=run.id, split=TRAIN, step=step, metrics={"f1": train_f1}
            ),
            timeout=10,
        )
        stub.LogCheckpoint(
            runs_pb2.LogCheckpointRequest(
                run_id=run.id, split=VALIDATION, step=step, metrics={"f1": val_f1}
            ),
            timeout=10,
        )
    steps = stub.ListEvaluationSteps(
        runs_pb2.ListEvaluationStepsRequest(run_id=run.id, split=VALIDATION), timeout=10
    )
    assert [(s.step, dict(s.metrics)) for s in steps.steps] == [
        (500, {"f1": 0.72}),
        (1000, {"f1": 0.80}),
    ]
    curves = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run.id), timeout=10)
    by = {(c.split, c.name): (list(c.steps), list(c.values)) for c in curves.checkpoint_metrics}
    assert by[(VALIDATION, "f1")] == ([500, 1000], [0.72, 0.80])
    with pytest.raises(grpc.RpcError) as info:
        stub.LogCheckpoint(
            runs_pb2.LogCheckpointRequest(
                run_id=run.id, split=TRAIN, step=1, metrics={"f1": math.nan}
            ),
            timeout=10,
        )
    assert errors.from_grpc(info.value).violations[0].field == "metrics[f1]"
    with pytest.raises(grpc.RpcError) as info:
        stub.LogCheckpoint(
            runs_pb2.LogCheckpointRequest(
                run_id="missing", split=TRAIN, step=1, metrics={"f1": 1.0}
            ),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_score_boxes_records_checkpoint_and_specimens(live_server, stub) -> None:
    run = _create(stub)
    ref = common_pb2.CheckpointRef(run_id=run.id, split=VALIDATION, step=1500)
    images = []
    for i in range(5):
        images.append(
            scoring_pb2.ImageBoxes(
                image_id=f"img{i}",
                predictions=[
                    scoring_pb2.Box(x1=0, y1=0, x2=10, y2=10, label="cup", confidence=0.9)
                ],
                ground_truth=[
                    scoring_pb2.Box(x1=0, y1=0, x2=10, y2=10 if i % 2 == 0 else 20, label="cup")
                ],
            )
        )
    batches = [
        scoring_pb2.BoxBatch(
            images=images[:3], options=scoring_pb2.BoxOptions(iou_thresholds=[0.5]), checkpoint=ref
        ),
        scoring_pb2.BoxBatch(images=images[3:], checkpoint=ref),
    ]
    with grpc.insecure_channel(live_server.target) as channel:
        results = list(scoring_pb2_grpc.ScoringStub(channel).ScoreBoxes(iter(batches), timeout=10))
    assert results[-1].running[0].tp == 5  # IoU 1.0 or 0.5
    steps = stub.ListEvaluationSteps(runs_pb2.ListEvaluationStepsRequest(run_id=run.id), timeout=10)
    (step,) = steps.steps
    assert (step.step, step.split, step.specimens) == (1500, VALIDATION, 5)
    assert step.metrics["bbox_f1@0.5"] == 1.0
    assert step.metrics["bbox_mean_iou@0.5"] == pytest.approx(0.8)  # (1 + .5 + 1 + .5 + 1) / 5
    first = stub.GetSpecimens(
        runs_pb2.GetSpecimensRequest(run_id=run.id, split=VALIDATION, step=1500, page_size=2),
        timeout=10,
    )
    ids = [s.specimen_id for s in first.specimens]
    token = first.next_page_token
    while token:
        page = stub.GetSpecimens(
            runs_pb2.GetSpecimensRequest(
                run_id=run.id, split=VALIDATION, step=1500, page_size=2, page_token=token
            ),
            timeout=10,
        )
        ids += [s.specimen_id for s in page.specimens]
        token = page.next_page_token
    assert sorted(ids) == [f"img{i}" for i in range(5)]
    spec = first.specimens[0]
    assert spec.predicted_boxes[0].label == "cup" and spec.ground_truth_boxes[0].x2 == 10
    assert "mean_iou@0.5" in spec.scores


def test_score_boxes_for_an_unknown_run_is_not_found(live_server) -> None:
    batch = scoring_pb2.BoxBatch(
        checkpoint=common_pb2.CheckpointRef(run_id="missing", split=VALIDATION, step=1)
    )
    with grpc.insecure_channel(live_server.target) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(scoring_pb2_grpc.ScoringStub(channel).ScoreBoxes(iter([batch]), timeout=10))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert errors.from_grpc(info.value).violations[0].field == "checkpoint.run_id"


# ------------------------------------------------------------------ the client


def test_client_run_logs_in_the_background_and_reads_back(live_server) -> None:
    with Client(live_server.target) as client:
        with client.create_run(
            "proj",
            "client-run",
            model="m",
            task="vqa",
            hyperparameters={"learning_rate": 1e-4, "batch_size": 8, "dataset_size": 100},
        ) as run:
            for step in range(1000):
                run.log(step, loss=3.0 / (step + 1), learning_rate=1e-4 * (1 - step / 1000))
                if step % 100 == 0:
                    run.log(step, split="validation", loss=3.5 / (step + 1))
            run.log_many(range(1000, 5000), [0.01] * 4000)
            run.log_checkpoint(1000, {"bleu": 0.31}, split="validation")
            run.flush(timeout=30)
            assert run.stats.points_acked == run.stats.points_logged == 1000 * 2 + 10 + 4000
            curves = {(s.split, s.name): s for s in run.curves()}
            assert len(curves[("train", "loss")].steps) == 5000
            assert curves[("validation", "loss")].steps[:3] == (0, 100, 200)
        assert run.info.status == "finished"
        info = run.refresh()
        assert info.derived["steps_per_epoch"] == 13
        assert info.derived["initial_learning_rate"] == pytest.approx(1e-4)
        again = client.create_run("proj", "client-run", resume=True)
        assert again.id == run.id
        with pytest.raises(errors.AlreadyExists):
            client.create_run("proj", "client-run")
        assert [r.name for r in client.list_runs("proj")] == ["client-run"]
        with pytest.raises(errors.NotFound):
            client.find_run("proj", "nope")


def test_client_run_failed_on_exception(live_server) -> None:
    with Client(live_server.target) as client:
        with pytest.raises(RuntimeError):
            with client.create_run("proj", "crashy") as run:
                run.log(0, loss=1.0)
                raise RuntimeError("training crashed")
        assert client.get_run(run.id).info.status == "failed"
        assert client.get_run(run.id).curves()[0].values == (1.0,)


def test_async_client_runs(live_server) -> None:
    import asyncio

    from evalstream import AsyncClient

    async def scenario() -> tuple[list[int], str, list[str]]:
        async with AsyncClient(live_server.target) as client:
            async with await client.create_run(
                "aproj", "async-run", hyperparameters={"lr": 0.1}
            ) as run:
                for step in range(300):
                    run.log(step, loss=1.0 / (step + 1))
                await run.log_checkpoint(300, {"f1": 0.5})
                await run.flush(timeout=30)
                series = await run.curves()
            names = [r.name async for r in client.list_runs("aproj")]
            again = await client.create_run("aproj", "async-run", resume=True)
            return list(series[0].steps), (await client.get_run(again.id)).info.status, names

    steps, status, names = asyncio.run(scenario())
    assert steps == list(range(300))
    assert status == "finished" and names == ["async-run"]


def test_stream_reader_connections_do_not_pile_up(live_server, stub) -> None:
    """StreamLoss reads the store from short-lived threads; their connections are closed."""
    run = _create(stub, name="many-streams")
    for i in range(40):
        _stream(
            stub,
            [runs_pb2.LossChunk(sequence=1, run_id=run.id, split=TRAIN, steps=[i], values=[1.0])],
        )
    store = live_server.deps.store
    inner = getattr(store, "_store", store)  # the scoped store wraps the real one
    if isinstance(inner, PostgresStore):  # psycopg_pool's connections, at most max_size
        assert inner._pool.get_stats()["pool_size"] <= inner._pool.max_size < 20
    else:
        assert len(inner._pool._readers) < 20


def test_huge_values_in_errors_are_cut(stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRun(runs_pb2.GetRunRequest(run_id="a" * 10_001), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(info.value.details()) <= 1000


def test_invalid_verdict_config_is_invalid_argument(stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateRun(
            runs_pb2.CreateRunRequest(
                project="p", name="bad-config", verdict_config=runs_pb2.VerdictConfig(mode="up")
            ),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.from_grpc(info.value).violations[0].field == "verdict_config"
    run = _create(stub, name="ok-config")
    with pytest.raises(grpc.RpcError) as info:
        list(
            stub.WatchVerdict(
                runs_pb2.WatchVerdictRequest(
                    run_id=run.id, config=runs_pb2.VerdictConfig(mode="up")
                ),
                timeout=10,
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.from_grpc(info.value).violations[0].field == "config"
