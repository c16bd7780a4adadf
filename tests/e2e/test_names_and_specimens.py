"""Runs by name, projects listed, specimens read back: the RPCs and the client (real server)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from evalstream import AsyncClient, Client, EvaluationStep, ProjectInfo, Specimen, errors
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc

VALIDATION = common_pb2.SPLIT_VALIDATION
N_IMAGES = 120  # more than one page of GetSpecimens (100 by default)


@pytest.fixture
def stub(live_server):
    with grpc.insecure_channel(live_server.target) as channel:
        yield runs_pb2_grpc.RunsStub(channel)


def _image(i: int) -> scoring_pb2.ImageBoxes:
    """Image i: found (i % 3 == 0), missed (1), or missed with a stray box elsewhere (2)."""
    gt = [scoring_pb2.Box(x1=0, y1=0, x2=10, y2=10, label="cup")]
    pred = {
        0: [scoring_pb2.Box(x1=0, y1=0, x2=10, y2=10, label="cup", confidence=0.9)],
        1: [],
        2: [scoring_pb2.Box(x1=50, y1=50, x2=60, y2=60, label="cup", confidence=0.4)],
    }[i % 3]
    return scoring_pb2.ImageBoxes(image_id=f"img{i:03d}", predictions=pred, ground_truth=gt)


def record_box_specimens(target: str, run_id: str, step: int, n: int = N_IMAGES) -> None:
    """Scores n images as the evaluation of checkpoint `step` (which records them as specimens)."""
    ref = common_pb2.CheckpointRef(run_id=run_id, split=VALIDATION, step=step)
    images = [_image(i) for i in range(n)]
    batches = [
        scoring_pb2.BoxBatch(
            images=images[k : k + 40],
            options=scoring_pb2.BoxOptions(iou_thresholds=[0.5]) if k == 0 else None,
            checkpoint=ref,
        )
        for k in range(0, n, 40)
    ]
    with grpc.insecure_channel(target) as channel:
        list(scoring_pb2_grpc.ScoringStub(channel).ScoreBoxes(iter(batches), timeout=30))


# Hand-counted from _image: i % 3 == 1 or 2 misses its ground truth; i % 3 == 2 adds a stray box.
MISSED = [f"img{i:03d}" for i in range(N_IMAGES) if i % 3 in (1, 2)]
STRAY = [f"img{i:03d}" for i in range(N_IMAGES) if i % 3 == 2]


# ------------------------------------------------------------------ GetRun by name


def test_get_run_by_project_and_name(stub) -> None:
    run = stub.CreateRun(runs_pb2.CreateRunRequest(project="p", name="base"), timeout=10)
    stub.CreateRun(runs_pb2.CreateRunRequest(project="q", name="base"), timeout=10)
    got = stub.GetRun(runs_pb2.GetRunRequest(project="p", name="base"), timeout=10)
    assert (got.id, got.project, got.name) == (run.id, "p", "base")
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRun(runs_pb2.GetRunRequest(project="p", name="nope"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "run named 'nope' not found in project 'p'"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({}, "project"),
        ({"project": "p"}, "name"),
        ({"name": "base"}, "project"),
        ({"run_id": "r_0", "project": "p", "name": "base"}, "run_id"),
    ],
)
def test_get_run_needs_an_id_or_a_project_and_name(stub, request_fields, field) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRun(runs_pb2.GetRunRequest(**request_fields), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in errors.from_grpc(info.value).violations] == [field]


# ------------------------------------------------------------------ ListProjects


def test_list_projects_rpc_pages_and_counts(stub) -> None:
    for project, name in (("b", "1"), ("a", "1"), ("c", "1"), ("b", "2")):
        stub.CreateRun(runs_pb2.CreateRunRequest(project=project, name=name), timeout=10)
    done = stub.GetRun(runs_pb2.GetRunRequest(project="b", name="2"), timeout=10)
    stub.SetRunStatus(
        runs_pb2.SetRunStatusRequest(run_id=done.id, status=runs_pb2.RUN_STATUS_FINISHED),
        timeout=10,
    )
    first = stub.ListProjects(runs_pb2.ListProjectsRequest(page_size=2), timeout=10)
    assert [(p.name, p.runs, p.running) for p in first.projects] == [("a", 1, 1), ("b", 2, 1)]
    second = stub.ListProjects(
        runs_pb2.ListProjectsRequest(page_size=2, page_token=first.next_page_token), timeout=10
    )
    assert [p.name for p in second.projects] == ["c"] and second.next_page_token == ""
    with pytest.raises(grpc.RpcError) as info:
        stub.ListProjects(runs_pb2.ListProjectsRequest(page_size=5000), timeout=10)
    assert errors.from_grpc(info.value).violations[0].field == "page_size"


# ------------------------------------------------------------------ GetSpecimens flag


def test_get_specimens_flag_filters_and_unknown_flag_lists_the_known(live_server, stub) -> None:
    run = stub.CreateRun(runs_pb2.CreateRunRequest(project="p", name="r"), timeout=10)
    record_box_specimens(live_server.target, run.id, 500)
    page = stub.GetSpecimens(
        runs_pb2.GetSpecimensRequest(
            run_id=run.id, split=VALIDATION, step=500, flag="false_positive", page_size=1000
        ),
        timeout=10,
    )
    assert [s.specimen_id for s in page.specimens] == STRAY
    with pytest.raises(grpc.RpcError) as info:
        stub.GetSpecimens(
            runs_pb2.GetSpecimensRequest(run_id=run.id, split=VALIDATION, step=500, flag="missed"),
            timeout=10,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (violation,) = errors.from_grpc(info.value).violations
    assert violation.field == "flag"
    # The message names the bad flag and lists every known one.
    assert info.value.details() == (
        "flag: unknown flag 'missed'; known flags: missed_detection, false_positive, loose_box, "
        "inconsistent_localisation, incomplete_answer, possible_hallucination, format_mismatch"
    )


# ------------------------------------------------------------------ the client


def test_client_get_run_by_name_and_run_id(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("vision", "baseline")
        assert client.get_run("vision/baseline").id == run.id
        assert client.run_id("vision/baseline") == run.id
        assert client.run_id(run.id) == run.id  # an id is taken as it is
        with pytest.raises(errors.NotFound, match="'nope' not found in project 'vision'"):
            client.get_run("vision/nope")
        with pytest.raises(ValueError, match="project/name"):
            client.get_run("vision/")


def test_client_verdict_watch_and_compare_take_names(live_server) -> None:
    with Client(live_server.target) as client:
        a = client.create_run("cmp", "a", hyperparameters={"lr": 1e-3})
        b = client.create_run("cmp", "b", hyperparameters={"lr": 1e-4})
        for run in (a, b):
            run.log_many(list(range(50)), [1.0 / (s + 1) for s in range(50)])
            run.finish()
        assert client.verdict("cmp/a").run_id == a.id
        comparison = client.compare(["cmp/a", "cmp/b"], baseline="cmp/b")
        assert [r.run_id for r in comparison.rows] == [a.id, b.id]
        assert comparison.baseline_run_id == b.id
        first = next(iter(client.watch("cmp/a", timeout=10)))
        assert first.run_id == a.id


def test_client_list_projects(live_server) -> None:
    with Client(live_server.target) as client:
        for i in range(5):
            client.create_run(f"proj-{i}", "r")
        client.create_run("proj-3", "s").finish()
        projects = list(client.list_projects(page_size=2))  # three pages
    assert all(isinstance(p, ProjectInfo) for p in projects)
    assert [(p.name, p.runs, p.running) for p in projects] == [
        ("proj-0", 1, 1),
        ("proj-1", 1, 1),
        ("proj-2", 1, 1),
        ("proj-3", 2, 1),
        ("proj-4", 1, 1),
    ]


def test_client_evaluation_steps_and_specimens_page_and_filter(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "r")
        record_box_specimens(live_server.target, run.id, 500)
        run.log_checkpoint(900, {"acc": 0.5})
        steps = run.evaluation_steps()
        assert all(isinstance(s, EvaluationStep) for s in steps)
        assert [(s.split, s.step, s.specimens) for s in steps] == [
            ("validation", 500, N_IMAGES),
            ("validation", 900, 0),
        ]
        assert steps[0].flag_counts == {"missed_detection": 80, "false_positive": 40}
        assert list(steps[0].actions) == ["missed_detection", "false_positive"]
        assert steps[1].metrics == {"acc": 0.5}
        assert run.evaluation_steps(split="train") == []
        everything = list(run.specimens(500))  # 120 specimens: two pages of 100
        assert [s.specimen_id for s in everything] == [f"img{i:03d}" for i in range(N_IMAGES)]
        assert all(isinstance(s, Specimen) for s in everything)
        found, missed = everything[0], everything[1]
        assert found.predicted_boxes[0].confidence == pytest.approx(0.9)
        assert found.ground_truth_boxes[0].label == "cup" and found.flags == ()
        assert missed.predicted_boxes == () and missed.flags == ("missed_detection",)
        flagged = [s.specimen_id for s in run.specimens(500, flag="missed_detection")]
        assert flagged == MISSED
        small_pages = client.specimens("p/r", 500, flag="false_positive", page_size=7)
        assert [s.specimen_id for s in small_pages] == STRAY
        with pytest.raises(errors.InvalidArgument, match="known flags"):
            list(run.specimens(500, flag="nonsense"))


def test_async_client_reads_projects_steps_and_specimens(live_server) -> None:
    async def main() -> tuple[list[str], list[int], list[str], bool]:
        async with AsyncClient(live_server.target) as client:
            run = await client.create_run("async-p", "r")
            await asyncio.to_thread(record_box_specimens, live_server.target, run.id, 100)
            projects = [p.name async for p in client.list_projects()]
            steps = [s.step for s in await run.evaluation_steps()]
            stray = [s.specimen_id async for s in run.specimens(100, flag="false_positive")]
            by_name = await client.get_run("async-p/r")
            return projects, steps, stray, by_name.id == run.id

    projects, steps, stray, same = asyncio.run(main())
    assert (projects, steps, stray) == (["async-p"], [100], STRAY)
    assert same
