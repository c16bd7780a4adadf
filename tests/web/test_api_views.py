"""What the browser views add to the API: verdicts in the runs list, the stream of new
points, and the band tables; each against the gRPC answers, and refused on bad input."""

from __future__ import annotations

import math

import grpc
import pytest
from evalstream import Client
from evalstream.v1 import runs_pb2, runs_pb2_grpc
from evalstream_server.metrics.bands import BANDS
from evalstream_server.web._json import message_to_json

from .test_api_stream import _events, _open


@pytest.fixture
def stub(web_server):
    with grpc.insecure_channel(web_server.target) as channel:
        yield runs_pb2_grpc.RunsStub(channel)


def _logged(client: Client, name: str, losses: list[float]):
    run = client.create_run("views", name, model="tiny-vlm")
    for step, loss in enumerate(losses):
        run.log(step, loss=loss)
    run.flush(timeout=30)
    return run


def test_runs_with_verdicts_are_get_verdict_per_run(web_server, stub) -> None:
    with Client(web_server.target) as client:
        good = _logged(client, "good", [2.0 / (s + 1) for s in range(60)])
        bad = _logged(client, "bad", [1.0] * 30 + [math.nan])
    got = web_server.get("/api/v1/projects/views/runs?verdicts=true")
    assert got.status == 200
    assert [r["id"] for r in got.body["runs"]] == [v["run_id"] for v in got.body["verdicts"]]
    for summary in got.body["verdicts"]:
        pb = runs_pb2.GetVerdictRequest(run_id=summary["run_id"])
        full = message_to_json(stub.GetVerdict(pb))
        assert summary == {
            key: full[key]
            for key in ("run_id", "state", "severity", "summary", "as_of_step", "early_stopping")
            if key in full
        } | {"early_stopping": full.get("early_stopping", {})}
    states = {v["run_id"]: v["state"] for v in got.body["verdicts"]}
    assert states[bad.id] == "diverged" and states[good.id] != "diverged"
    plain = web_server.get("/api/v1/projects/views/runs")
    assert "verdicts" not in plain.body  # opt-in


@pytest.mark.parametrize(
    ("query", "field"),
    [("verdicts=yes", "verdicts"), ("verdicts=true&verdicts=true", "verdicts")],
)
def test_runs_bad_verdicts_parameter_is_400_naming_it(web_server, query, field) -> None:
    got = web_server.get(f"/api/v1/projects/views/runs?{query}")
    assert (got.status, got.body["error"]["field"]) == (400, field)


def test_points_stream_sends_new_points_per_series_then_ends(web_server, stub) -> None:
    with Client(web_server.target) as client:
        run = _logged(client, "live", [1.0 / (s + 1) for s in range(10)])
        path = f"/api/v1/runs/{run.id}/curves/stream?after_step=4&max_points=100"
        connection, reply = _open(web_server.base, path)
        try:
            assert reply.status == 200
            assert reply.headers["Content-Type"] == "text/event-stream"
            events = _events(reply)
            name, first = next(events)
            expected = stub.GetCurves(runs_pb2.GetCurvesRequest(run_id=run.id, start_step=5))
            assert name == "points"
            assert first["series"] == [message_to_json(s) for s in expected.series]
            assert [int(s) for s in first["series"][0]["steps"]] == [5, 6, 7, 8, 9]
            for step in range(10, 13):
                run.log(step, loss=math.nan if step == 12 else 0.05)
            run.log(12, split="validation", loss=0.3)
            run.flush(timeout=30)
            sent: dict[tuple[str, str], list[tuple[int, str | float]]] = {}
            while sum(len(v) for v in sent.values()) < 4:
                name, data = next(events)
                assert name == "points"
                for s in data["series"]:
                    sent.setdefault((s["split"], s["name"]), []).extend(
                        zip((int(x) for x in s["steps"]), s["values"], strict=True)
                    )
            assert sent == {
                ("train", "loss"): [(10, 0.05), (11, 0.05), (12, "NaN")],
                ("validation", "loss"): [(12, 0.3)],
            }
            run.finish()
            rest = list(events)
            assert rest[-1] == ("end", {"run_id": run.id})
        finally:
            connection.close()


def test_points_stream_downsamples_many_points_keeping_a_spike(web_server) -> None:
    losses = [1.0] * 5000
    losses[3210] = 50.0
    with Client(web_server.target) as client:
        run = _logged(client, "many", losses)
        connection, reply = _open(
            web_server.base, f"/api/v1/runs/{run.id}/curves/stream?max_points=100"
        )
        try:
            _, first = next(_events(reply))
        finally:
            connection.close()
    (series,) = first["series"]
    assert len(series["steps"]) <= 100 and series["total_points"] in (5000, "5000")
    assert 50.0 in series["values"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("max_points=1", "max_points"),
        ("max_points=x", "max_points"),
        ("after_step=-2", "after_step"),
        ("split=nope", "split"),
        ("steps=3", "steps"),
    ],
)
def test_points_stream_bad_parameters_are_400_naming_them(web_server, query, field) -> None:
    with Client(web_server.target) as client:
        run = _logged(client, "refused", [1.0, 0.5])
    got = web_server.get(f"/api/v1/runs/{run.id}/curves/stream?{query}")
    assert (got.status, got.body["error"]["field"]) == (400, field)


def test_points_stream_of_an_unknown_run_is_404(web_server) -> None:
    got = web_server.get("/api/v1/runs/no-such-run/curves/stream")
    assert (got.status, got.body["error"]["code"]) == (404, "NOT_FOUND")


def test_bands_are_the_band_table(web_server) -> None:
    got = web_server.get("/api/v1/bands")
    assert got.status == 200
    tables = {b["name"]: b for b in got.body["bands"]}
    assert set(tables) == set(BANDS)
    f1 = tables["f1"]
    assert [c["label"] for c in f1["cutoffs"]] + [f1["floor"]] == list(BANDS["f1"].labels)
    assert f1["cutoffs"][0] == {"min": 0.9, "label": "excellent"}
    assert web_server.get("/api/v1/bands?x=1").body["error"]["field"] == "x"
