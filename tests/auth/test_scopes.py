"""Project scopes: a token for project A can neither read, write, list nor score into B's runs.

Policy: a run outside the caller's projects is NOT_FOUND, exactly like a run
that does not exist; a project outside them is PERMISSION_DENIED.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from evalstream import AsyncClient, Box, Client, ImageBoxes, errors
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from evalstream_server.api import _curve_pages

TRAIN, VALIDATION = common_pb2.SPLIT_TRAIN, common_pb2.SPLIT_VALIDATION


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def runs(auth_server, tokens):
    """Run ids: one in proj-a, one in proj-b (created by the admin)."""
    with Client(auth_server.target, token=tokens["admin"]) as admin:
        a = admin.create_run("proj-a", "run-a")
        b = admin.create_run("proj-b", "run-b")
        a.log(0, loss=1.0)
        b.log(0, loss=2.0)
        b.log_checkpoint(0, {"bleu": 0.5}, split="validation")
        a.finish()
        b.finish()
        return {"a": a.id, "b": b.id}


def _code(fn) -> grpc.StatusCode:
    try:
        result = fn()
        if hasattr(result, "__next__"):
            next(result)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _page_token(run_id: str, *, page_size: int) -> str:
    """A valid GetCurves token of (run, page size) pointing at train/loss step 0."""
    key = _curve_pages.fingerprint(run_id, [], [], None, None, page_size)
    return _curve_pages.encode(key, ("train", "loss", 0))


def _run_id_calls(stub: runs_pb2_grpc.RunsStub, run_id: str, md) -> dict[str, object]:
    return {
        "GetRun": lambda: stub.GetRun(runs_pb2.GetRunRequest(run_id=run_id), metadata=md),
        "GetCurves": lambda: stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run_id), metadata=md),
        "GetCurves paged": lambda: stub.GetCurves(
            runs_pb2.GetCurvesRequest(run_id=run_id, page_size=10), metadata=md
        ),
        # A later page reads no checkpoints: only the page read checks the project.
        "GetCurves page 2": lambda: stub.GetCurves(
            runs_pb2.GetCurvesRequest(
                run_id=run_id, page_size=10, page_token=_page_token(run_id, page_size=10)
            ),
            metadata=md,
        ),
        "GetCurves zoomed": lambda: stub.GetCurves(
            runs_pb2.GetCurvesRequest(run_id=run_id, start_step=0, end_step=5, max_points=100),
            metadata=md,
        ),
        "GetVerdict": lambda: stub.GetVerdict(
            runs_pb2.GetVerdictRequest(run_id=run_id), metadata=md
        ),
        "WatchVerdict": lambda: stub.WatchVerdict(
            runs_pb2.WatchVerdictRequest(run_id=run_id), metadata=md, timeout=5
        ),
        "ListEvaluationSteps": lambda: stub.ListEvaluationSteps(
            runs_pb2.ListEvaluationStepsRequest(run_id=run_id), metadata=md
        ),
        "GetSpecimens": lambda: stub.GetSpecimens(
            runs_pb2.GetSpecimensRequest(run_id=run_id, split=VALIDATION, step=0), metadata=md
        ),
        "CompareRuns": lambda: stub.CompareRuns(
            runs_pb2.CompareRunsRequest(run_ids=[run_id]), metadata=md
        ),
        "GetSpecimenHistory": lambda: stub.GetSpecimenHistory(
            runs_pb2.GetSpecimenHistoryRequest(run_id=run_id, split=VALIDATION, specimen_id="x"),
            metadata=md,
        ),
        "CompareSpecimens": lambda: stub.CompareSpecimens(
            runs_pb2.CompareSpecimensRequest(
                run_ids=[run_id, "r_missing"], split=VALIDATION, specimen_id="x", best=True
            ),
            metadata=md,
        ),
        "SetRunStatus": lambda: stub.SetRunStatus(
            runs_pb2.SetRunStatusRequest(run_id=run_id, status=runs_pb2.RUN_STATUS_KILLED),
            metadata=md,
        ),
        "LogCheckpoint": lambda: stub.LogCheckpoint(
            runs_pb2.LogCheckpointRequest(
                run_id=run_id, split=VALIDATION, step=1, metrics={"x": 1}
            ),
            metadata=md,
        ),
        "UpdateRun": lambda: stub.UpdateRun(
            runs_pb2.UpdateRunRequest(
                run_id=run_id,
                summary={"x": runs_pb2.HyperValue(int_value=1)},
                saved_checkpoints=[runs_pb2.SavedCheckpoint(step=0, path="stolen")],
            ),
            metadata=md,
        ),
    }


def test_foreign_run_is_not_found_like_a_missing_one(auth_server, tokens, runs) -> None:
    md = bearer(tokens["writer-a"])
    with grpc.insecure_channel(auth_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        foreign = _run_id_calls(stub, runs["b"], md)
        for name, fn in foreign.items():
            assert _code(fn) == grpc.StatusCode.NOT_FOUND, name
        # The message does not tell a foreign run from a missing one.
        try:
            stub.GetRun(runs_pb2.GetRunRequest(run_id=runs["b"]), metadata=md)
        except grpc.RpcError as exc:
            assert exc.details() == f"run {runs['b']!r} not found"
        # Own project: allowed.
        own = _run_id_calls(stub, runs["a"], md)
        for name in (
            "GetRun",
            "GetCurves",
            "GetCurves paged",
            "GetCurves zoomed",
            "GetCurves page 2",
            "GetVerdict",
            "ListEvaluationSteps",
            "CompareRuns",
            "UpdateRun",
        ):
            assert _code(own[name]) == grpc.StatusCode.OK, name
        # Nothing was changed in B: its status and checkpoints are intact.
        admin = bearer(tokens["admin"])
        run_b = stub.GetRun(runs_pb2.GetRunRequest(run_id=runs["b"]), metadata=admin)
        assert run_b.status == runs_pb2.RUN_STATUS_FINISHED
        assert dict(run_b.summary) == {}
        verdict_b = stub.GetVerdict(runs_pb2.GetVerdictRequest(run_id=runs["b"]), metadata=admin)
        assert [c.path for c in verdict_b.checkpoints] == [""] * len(verdict_b.checkpoints)
        curves = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=runs["b"]), metadata=admin)
        assert [s.steps for s in curves.checkpoint_metrics] == [[0]]


def test_foreign_project_is_permission_denied(auth_server, tokens, runs) -> None:
    md = bearer(tokens["writer-a"])
    with grpc.insecure_channel(auth_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        calls = {
            "ListRuns": lambda: stub.ListRuns(
                runs_pb2.ListRunsRequest(project="proj-b"), metadata=md
            ),
            "ListRuns by name": lambda: stub.ListRuns(
                runs_pb2.ListRunsRequest(project="proj-b", name="run-b"), metadata=md
            ),
            "CreateRun": lambda: stub.CreateRun(
                runs_pb2.CreateRunRequest(project="proj-b", name="x"), metadata=md
            ),
            "CompareRuns": lambda: stub.CompareRuns(
                runs_pb2.CompareRunsRequest(project="proj-b"), metadata=md
            ),
        }
        for name, fn in calls.items():
            assert _code(fn) == grpc.StatusCode.PERMISSION_DENIED, name
        # A project nobody has created yet is refused the same way: nothing is revealed.
        assert (
            _code(lambda: stub.ListRuns(runs_pb2.ListRunsRequest(project="proj-zzz"), metadata=md))
            == grpc.StatusCode.PERMISSION_DENIED
        )
        listing = stub.ListRuns(runs_pb2.ListRunsRequest(project="proj-a"), metadata=md)
        assert [r.id for r in listing.runs] == [runs["a"]]


def test_patterns_match_projects(auth_server, tokens) -> None:
    with Client(auth_server.target, token=tokens["writer-b"]) as client:
        client.create_run("proj-b-vision", "r").finish()  # "proj-b*"
        with pytest.raises(errors.PermissionDenied):
            client.create_run("proj-a", "r")


def test_stream_loss_refuses_chunks_of_foreign_runs(auth_server, tokens, runs) -> None:
    md = bearer(tokens["writer-a"])
    chunks = [
        runs_pb2.LossChunk(sequence=1, run_id=runs["b"], split=TRAIN, steps=[5], values=[9.0]),
        runs_pb2.LossChunk(sequence=2, run_id=runs["a"], split=TRAIN, steps=[5], values=[0.5]),
        runs_pb2.LossChunk(sequence=3, run_id="r_missing", split=TRAIN, steps=[5], values=[1.0]),
    ]
    with grpc.insecure_channel(auth_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        acks = list(stub.StreamLoss(iter(chunks), metadata=md, timeout=30))
        assert [(a.sequence, a.accepted) for a in acks] == [(1, False), (2, True), (3, False)]
        assert acks[0].reason == f"run_id: run {runs['b']!r} not found"
        assert acks[2].reason == "run_id: run 'r_missing' not found"
        curves = stub.GetCurves(
            runs_pb2.GetCurvesRequest(run_id=runs["b"]), metadata=bearer(tokens["admin"])
        )
        assert [list(s.steps) for s in curves.series] == [[0]]  # step 5 never landed


def test_scoring_cannot_record_into_a_foreign_run(auth_server, tokens, runs) -> None:
    md = bearer(tokens["writer-a"])
    box = scoring_pb2.Box(x1=0, y1=0, x2=10, y2=10, label="a", confidence=0.9)
    image = scoring_pb2.ImageBoxes(image_id="i", predictions=[box], ground_truth=[box])
    pair = scoring_pb2.TextPair(prediction="a cat", references=["a cat"])
    with grpc.insecure_channel(auth_server.target) as channel:
        stub = scoring_pb2_grpc.ScoringStub(channel)
        for run_id, expected in (
            (runs["b"], grpc.StatusCode.NOT_FOUND),
            (runs["a"], grpc.StatusCode.OK),
        ):
            checkpoint = common_pb2.CheckpointRef(run_id=run_id, split=VALIDATION, step=3)
            boxes = scoring_pb2.BoxBatch(images=[image], checkpoint=checkpoint)
            assert _code(lambda b=boxes: stub.ScoreBoxes(iter([b]), metadata=md)) == expected
            text = scoring_pb2.TextBatch(
                pairs=[pair],
                options=scoring_pb2.TextOptions(metrics=[scoring_pb2.TEXT_METRIC_BLEU]),
                checkpoint=checkpoint,
            )
            assert _code(lambda t=text: stub.ScoreText(iter([t]), metadata=md)) == expected
        # Scoring without a checkpoint needs no project.
        assert (
            _code(
                lambda: stub.ScoreBoxes(iter([scoring_pb2.BoxBatch(images=[image])]), metadata=md)
            )
            == grpc.StatusCode.OK
        )
    with Client(auth_server.target, token=tokens["admin"]) as admin:
        assert admin.get_run(runs["b"]).id == runs["b"]
        with grpc.insecure_channel(auth_server.target) as channel:
            steps = runs_pb2_grpc.RunsStub(channel).ListEvaluationSteps(
                runs_pb2.ListEvaluationStepsRequest(run_id=runs["b"]),
                metadata=bearer(tokens["admin"]),
            )
        assert [s.step for s in steps.steps] == [0]  # nothing recorded at step 3


def test_client_runs_with_a_token(auth_server, tokens) -> None:
    with Client(auth_server.target, token=tokens["writer-a"]) as client:
        with client.create_run("proj-a", "trainer") as run:
            for step in range(10):
                run.log(step, loss=1.0 / (step + 1))
        assert [r.name for r in client.list_runs("proj-a")] == ["trainer"]
        assert len(client.get_run(run.id).curves()[0].steps) == 10
    with Client(auth_server.target, token=tokens["reader-a"]) as reader:
        assert [r.name for r in reader.list_runs("proj-a")] == ["trainer"]
        with pytest.raises(errors.PermissionDenied):
            reader.create_run("proj-a", "nope")
    with Client(auth_server.target) as anonymous, pytest.raises(errors.Unauthenticated):
        list(anonymous.list_runs("proj-a"))


def test_async_client_with_a_token(auth_server, tokens) -> None:
    async def main() -> list[str]:
        async with AsyncClient(auth_server.target, token=tokens["writer-a"]) as client:
            run = await client.create_run("proj-a", "async")
            run.log(0, loss=1.0)
            await run.finish()
            report = await client.score_boxes(
                [
                    ImageBoxes(
                        "i",
                        (Box(0, 0, 1, 1, label="a", confidence=1.0),),
                        (Box(0, 0, 1, 1, label="a"),),
                    )
                ]
            )
            assert report.overall[0].tp == 1
            curves = await client.curves(run.id)
            assert len(curves[0].steps) == 1
            return [r.name async for r in client.list_runs("proj-a")]

    assert asyncio.run(main()) == ["async"]

    async def anonymous() -> None:
        async with AsyncClient(auth_server.target) as client:
            [r async for r in client.list_runs("proj-a")]

    with pytest.raises(errors.Unauthenticated):
        asyncio.run(anonymous())
