"""The JSON API (/api/v1) over a real server: the same answers as the RPCs, JSON errors.

Each endpoint is checked against the RPC it mirrors for the same run (both converted
by the API's converter), and against hand-worked numbers where the converter could
hide a slip (NaN and infinities, steps, states).
"""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
from evalstream import Box, Client, ImageBoxes
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc
from evalstream_server.config import Config
from evalstream_server.web._json import message_to_json
from evalstream_server.web._routes import ROUTES
from evalstream_server.web.openapi import openapi_document

TRAIN, VALIDATION = common_pb2.SPLIT_TRAIN, common_pb2.SPLIT_VALIDATION
CAT_GT = Box(10, 10, 50, 50, label="cat")
CAT_HIT = Box(10, 10, 50, 50, label="cat", confidence=0.9)
DOG_GT = Box(100, 100, 140, 140, label="dog")


def _stream(stub, run_id: str, split: int, steps, values) -> None:
    chunk = runs_pb2.LossChunk(
        sequence=1, run_id=run_id, split=split, series="loss", steps=steps, values=values
    )
    assert all(a.accepted for a in stub.StreamLoss(iter([chunk]), timeout=60))


@pytest.fixture
def stub(web_server):
    with grpc.insecure_channel(web_server.target) as channel:
        yield runs_pb2_grpc.RunsStub(channel)


@pytest.fixture
def runs(web_server, stub) -> dict[str, str]:
    """Project "web": run "a" (train loss 1/(s+1) with NaN at step 5 and +inf at step 7,
    validation every 50 steps, boxes scored at steps 100 and 200), and run "b"."""
    ids = {}
    with Client(web_server.target) as client:
        for name in ("a", "b"):
            ids[name] = client.create_run("web", name, hyperparameters={"lr": 0.1}).id
        steps = list(range(300))
        values = [1.0 / (s + 1) for s in steps]
        values[5], values[7] = math.nan, math.inf
        _stream(stub, ids["a"], TRAIN, steps, values)
        _stream(stub, ids["a"], VALIDATION, [50, 100, 150], [0.5, 0.4, 0.45])
        _stream(stub, ids["b"], TRAIN, [0, 1, 2], [3.0, 2.0, 1.0])
        run = client.get_run(ids["a"])
        for step, found in ((100, False), (200, True)):
            images = [
                ImageBoxes("cat", predictions=(CAT_HIT,) if found else (), ground_truth=(CAT_GT,)),
                ImageBoxes("dog", predictions=(), ground_truth=(DOG_GT,)),
            ]
            client.score_boxes(images, checkpoint=run.checkpoint(step))
    return ids


# ------------------------------------------------------------------ same answers as the RPCs


def test_projects_and_runs_are_the_rpc_answers(web_server, stub, runs) -> None:
    got = web_server.get("/api/v1/projects")
    assert got.status == 200
    assert got.body == message_to_json(stub.ListProjects(runs_pb2.ListProjectsRequest()))
    assert [p["name"] for p in got.body["projects"]] == ["web"]
    listing = web_server.get("/api/v1/projects/web/runs?status=running")
    assert listing.status == 200
    expected = stub.ListRuns(
        runs_pb2.ListRunsRequest(project="web", statuses=[runs_pb2.RUN_STATUS_RUNNING])
    )
    assert listing.body == message_to_json(expected)
    assert sorted(r["name"] for r in listing.body["runs"]) == ["a", "b"]
    assert {r["status"] for r in listing.body["runs"]} == {"running"}
    assert web_server.get("/api/v1/projects/web/runs?status=finished").body["runs"] == []


def test_a_run_by_id_and_by_project_and_name(web_server, stub, runs) -> None:
    by_id = web_server.get(f"/api/v1/runs/{runs['a']}")
    by_name = web_server.get("/api/v1/runs/web%2Fa")
    assert by_id.status == by_name.status == 200
    assert by_id.body == by_name.body
    assert by_id.body == message_to_json(stub.GetRun(runs_pb2.GetRunRequest(run_id=runs["a"])))
    assert by_id.body["hyperparameters"]["lr"] == {"float_value": 0.1}
    assert by_id.body["created_at"].endswith("Z")


def test_curves_spell_nan_and_infinity_and_match_get_curves(web_server, stub, runs) -> None:
    got = web_server.get(f"/api/v1/runs/{runs['a']}/curves?split=train&end_step=9")
    assert got.status == 200
    (train,) = got.body["series"]
    assert train["split"] == "train" and train["name"] == "loss"
    assert train["steps"] == list(range(10))
    # Hand-worked: 1/(s+1), NaN at 5, +inf at 7; JSON has no NaN, so they are strings.
    assert train["values"][:2] == [1.0, 0.5]
    assert train["values"][5] == "NaN" and train["values"][7] == "Infinity"
    assert train["values"][9] == pytest.approx(0.1)
    request = runs_pb2.GetCurvesRequest(run_id=runs["a"], splits=[TRAIN], end_step=9)
    assert got.body == message_to_json(stub.GetCurves(request))


def test_curves_downsampled_and_paged_as_get_curves(web_server, stub, runs) -> None:
    got = web_server.get("/api/v1/runs/web%2Fa/curves?max_points=20&series=loss")
    request = runs_pb2.GetCurvesRequest(run_id=runs["a"], series=["loss"], max_points=20)
    assert got.body == message_to_json(stub.GetCurves(request))
    train = next(s for s in got.body["series"] if s["split"] == "train")
    assert len(train["steps"]) <= 20 and train["total_points"] == 300
    assert [s["steps"] for s in got.body["checkpoint_metrics"]][0] == [100, 200]
    # Pages of 120 points across both series, glued back: every point once.
    seen, token, pages = [], "", 0
    while True:
        page = web_server.get(
            f"/api/v1/runs/{runs['a']}/curves?page_size=120"
            + (f"&page_token={token}" if token else "")
        )
        assert page.status == 200, page.body
        pages += 1
        seen += [(s["split"], step) for s in page.body["series"] for step in s["steps"]]
        token = page.body["next_page_token"]
        if not token:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 303


def test_verdict_is_get_verdict(web_server, stub, runs) -> None:
    got = web_server.get(f"/api/v1/runs/{runs['a']}/verdict")
    assert got.status == 200
    expected = stub.GetVerdict(runs_pb2.GetVerdictRequest(run_id=runs["a"]))
    assert got.body == message_to_json(expected)
    assert (
        got.body["state"]
        == runs_pb2.RunState.Name(expected.state).removeprefix("RUN_STATE_").lower()
    )


def test_compare_is_compare_runs(web_server, stub, runs) -> None:
    got = web_server.get(f"/api/v1/compare?run={runs['a']}&run=web%2Fb&baseline={runs['a']}")
    assert got.status == 200, got.body
    expected = stub.CompareRuns(
        runs_pb2.CompareRunsRequest(run_ids=[runs["a"], runs["b"]], baseline_run_id=runs["a"])
    )
    assert got.body == message_to_json(expected)


def test_evaluations_specimens_and_history_are_the_rpc_answers(web_server, stub, runs) -> None:
    run = runs["a"]
    steps = web_server.get(f"/api/v1/runs/{run}/evaluations")
    expected = stub.ListEvaluationSteps(runs_pb2.ListEvaluationStepsRequest(run_id=run))
    assert steps.status == 200 and steps.body == message_to_json(expected)
    assert [s["step"] for s in steps.body["steps"]] == [100, 200]
    specimens = web_server.get(f"/api/v1/runs/{run}/specimens?step=200&split=validation")
    expected_specimens = stub.GetSpecimens(
        runs_pb2.GetSpecimensRequest(run_id=run, step=200, split=VALIDATION)
    )
    assert specimens.status == 200 and specimens.body == message_to_json(expected_specimens)
    assert sorted(s["specimen_id"] for s in specimens.body["specimens"]) == ["cat", "dog"]
    history = web_server.get(f"/api/v1/runs/{run}/specimens/cat/history?split=validation")
    expected_history = stub.GetSpecimenHistory(
        runs_pb2.GetSpecimenHistoryRequest(run_id=run, split=VALIDATION, specimen_id="cat")
    )
    assert history.status == 200 and history.body == message_to_json(expected_history)
    assert [h["step"] for h in history.body["steps"]] == [100, 200]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start_step=10&end_step=5", "start_step"),
        ("end_step=-1", "end_step"),
        ("end_step=ten", "end_step"),
        ("max_points=1", "max_points"),
        ("max_points=99999999999", "max_points"),
        ("page_size=10&page_token=garbled", "page_token"),
        ("split=training", "split"),
        ("colour=red", "colour"),
        ("end_step=1&end_step=2", "end_step"),
    ],
)
def test_bad_curves_queries_are_400_naming_the_field(web_server, runs, query, field) -> None:
    got = web_server.get(f"/api/v1/runs/{runs['a']}/curves?{query}")
    assert got.status == 400, got.body
    assert got.body["error"]["code"] == "INVALID_ARGUMENT"
    assert got.body["error"]["field"] == field
    assert got.body["error"]["message"]
    assert web_server.get("/api/v1/projects").status == 200  # still serving


def test_unknown_runs_are_404_on_every_run_endpoint(web_server, runs) -> None:
    for path, _name in ROUTES:
        if "{run}" not in path:
            continue
        url = path.replace("{run}", "no-such-run").replace("{specimen}", "cat")
        query = {"/specimens": "?split=validation&step=100", "/history": "?split=validation"}
        query = next((q for end, q in query.items() if url.endswith(end)), "")
        got = web_server.get(url + query)
        assert got.status == 404, (url, got.body)
        assert got.body["error"]["code"] == "NOT_FOUND"
    missing = web_server.get("/api/v1/runs/web%2Fno-such-name/verdict")
    assert missing.status == 404 and "no-such-name" in missing.body["error"]["message"]


def test_other_refusals(web_server, runs) -> None:
    no_step = web_server.get(f"/api/v1/runs/{runs['a']}/specimens")
    assert (no_step.status, no_step.body["error"]["field"]) == (400, "step")
    bad_token = web_server.get("/api/v1/projects?page_token=%%%")
    assert bad_token.status == 400 and bad_token.body["error"]["field"] == "page_token"
    bad_size = web_server.get("/api/v1/projects/web/runs?page_size=5000")
    assert (bad_size.status, bad_size.body["error"]["field"]) == (400, "page_size")
    no_runs = web_server.get("/api/v1/compare")
    assert (no_runs.status, no_runs.body["error"]["field"]) == (400, "run")
    nowhere = web_server.get("/api/v1/nothing-here")
    assert nowhere.status == 404 and nowhere.body["error"]["code"] == "NOT_FOUND"


# ------------------------------------------------------------------ the document and the port


def test_openapi_lists_exactly_the_routes(web_server) -> None:
    got = web_server.get("/api/v1/openapi.json")
    assert got.status == 200
    assert got.body == openapi_document()
    assert got.body["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path) for path, item in got.body["paths"].items() for method in item
    }
    served = {
        (r.method, r.resource.canonical)
        for r in web_server.live.server.web.app.router.routes()
        if r.method != "HEAD" and r.resource.canonical.startswith("/api/")
    }
    assert served == documented | {("GET", "/api/v1/openapi.json")}
    assert {("GET", path) for path, _ in ROUTES} <= documented


def test_http_port_minus_one_serves_no_http(live_server) -> None:
    assert live_server.config.http_port == -1
    assert live_server.server.web is None


def test_http_is_on_the_grpc_host_loopback_without_tokens(web_server) -> None:
    assert web_server.live.config.host == "127.0.0.1"
    assert {address[0] for address in web_server.live.server.web.addresses} == {"127.0.0.1"}
    exposed = Config(host="0.0.0.0", http_port=0)
    assert any("without authentication" in p for p in exposed.exposure_problems())


def test_nonfinite_values_stay_strings_whatever_the_array() -> None:
    series = runs_pb2.Series(values=np.array([0.0, -np.inf, np.nan]).tolist())
    assert message_to_json(series)["values"] == [0.0, "-Infinity", "NaN"]
