"""GET /api/v1/compare/specimens: one specimen in several runs (the CompareSpecimens RPC)."""

from __future__ import annotations

import pytest
from evalstream import Box, Client, ImageBoxes

from ..auth.conftest import TOKENS, live, write_tokens
from .conftest import http_get

CUP = Box(10, 10, 60, 60, label="cup")


@pytest.fixture
def runs(web_server) -> dict[str, str]:
    """Runs a and b of project web with img1 at step 100 (b: and 200); c without img1."""
    ids = {}
    with Client(web_server.target) as client:
        monitor = {"monitor": "validation/bbox_f1@0.5"}
        for name in ("a", "b", "c"):
            ids[name] = client.create_run("web", name, verdict_config=monitor).id
        client.score_boxes(
            [ImageBoxes("img1", (Box(10, 10, 60, 60, "cup", 0.9),), (CUP,))],
            checkpoint=client.get_run(ids["a"]).checkpoint(100),
        )
        b = client.get_run(ids["b"])
        client.score_boxes([ImageBoxes("img1", (), (CUP,))], checkpoint=b.checkpoint(100))
        client.score_boxes(
            [ImageBoxes("img1", (Box(11, 10, 60, 61, "cup", 0.8),), (CUP,))],
            checkpoint=b.checkpoint(200),
        )
        client.score_boxes(
            [ImageBoxes("img2", (), (CUP,))], checkpoint=client.get_run(ids["c"]).checkpoint(100)
        )
    return ids


def _path(*runs: str, rest: str = "&specimen=img1&split=validation") -> str:
    return "/api/v1/compare/specimens?" + "&".join(f"run={r}" for r in runs) + rest


def test_at_a_step_and_at_the_best_step_as_the_rpc_answers(web_server, runs) -> None:
    got = web_server.get(
        _path(runs["a"], "web%2Fb", rest="&specimen=img1&split=validation&best=true")
    )
    assert got.status == 200, got.body
    with Client(web_server.target) as client:
        want = client.compare_specimens([runs["a"], runs["b"]], "img1", best=True)
    assert (
        [(r["run_name"], r["step"], r["present"]) for r in got.body["runs"]]
        == [(w.run_name, w.step, w.present) for w in want]
        == [("a", 100, True), ("b", 200, True)]
    )
    boxes = got.body["runs"][1]["specimen"]["predicted_boxes"]
    assert [(b["x1"], b["y2"]) for b in boxes] == [(11.0, 61.0)]
    at_200 = web_server.get(
        _path(runs["a"], runs["b"], rest="&specimen=img1&split=validation&step=200")
    )
    assert [r["present"] for r in at_200.body["runs"]] == [False, True]
    assert "recorded at step 100" in at_200.body["runs"][0]["note"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("run=RA&specimen=img1&split=validation&step=1", "run"),
        ("specimen=img1&split=validation&step=1", "run"),
        ("run=RA&run=RB&split=validation&step=1", "specimen"),
        ("run=RA&run=RB&specimen=img1&split=validation", "step"),
        ("run=RA&run=RB&specimen=img1&split=validation&step=1&best=true", "step"),
        ("run=RA&run=RB&specimen=img1&split=validation&best=yes", "best"),
        ("run=RA&run=RB&specimen=img1&split=validation&step=x", "step"),
        ("run=RA&run=RB&specimen=img1&split=validation&step=-1", "step"),
        ("run=RA&run=RB&specimen=img1&step=1", "split"),
        ("run=RA&run=RB&specimen=img1&split=dev&step=1", "split"),
        ("run=RA&run=RA&specimen=img1&split=validation&step=1", "run[1]"),
        ("run=RA&run=RB&specimen=img1&specimen=img2&split=validation&step=1", "specimen"),
        ("run=RA&run=RB&specimen=img1&split=validation&step=1&page_size=3", "page_size"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(web_server, runs, query, field) -> None:
    query = query.replace("RA", runs["a"]).replace("RB", runs["b"])
    got = web_server.get(f"/api/v1/compare/specimens?{query}")
    assert got.status == 400, got.body
    assert got.body["error"]["code"] == "INVALID_ARGUMENT"
    assert got.body["error"]["field"] == field, got.body
    assert got.body["error"]["message"].startswith(f"{field}: ")


def test_an_unknown_run_or_specimen_is_404(web_server, runs) -> None:
    unknown = web_server.get(
        _path(runs["a"], "r_0000000000000000", rest="&specimen=img1&split=validation&step=100")
    )
    assert unknown.status == 404 and unknown.body["error"]["field"] == "run[1]"
    assert "r_0000000000000000" in unknown.body["error"]["message"]
    by_name = web_server.get(
        _path(runs["a"], "web%2Fnope", rest="&specimen=img1&split=validation&best=true")
    )
    assert by_name.status == 404 and "nope" in by_name.body["error"]["message"]
    # A run without the specimen is absent; no run with it is a 404 naming the specimen.
    never = web_server.get(
        _path(runs["a"], runs["c"], rest="&specimen=img1&split=validation&step=100")
    )
    assert never.status == 200, never.body
    assert [e["present"] for e in never.body["runs"]] == [True, False]
    assert "never recorded specimen 'img1'" in never.body["runs"][1]["note"]
    nobody = web_server.get(
        _path(runs["a"], runs["c"], rest="&specimen=img9&split=validation&step=100")
    )
    assert nobody.status == 404 and nobody.body["error"]["field"] == "specimen"


def test_another_projects_run_is_404_like_a_missing_one(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    tokens = write_tokens(path, TOKENS)
    for server in live(tmp_path / "data", auth_tokens_file=path, http_port=0):
        with Client(server.target, token=tokens["admin"]) as client:
            ids = {}
            for project in ("proj-a", "proj-b"):
                run = client.create_run(project, "r")
                client.score_boxes([ImageBoxes("img1", (), (CUP,))], checkpoint=run.checkpoint(1))
                ids[project] = run.id
            own = client.create_run("proj-a", "s")
            client.score_boxes([ImageBoxes("img1", (), (CUP,))], checkpoint=own.checkpoint(1))
        assert server.running is not None and server.running.web is not None
        base = f"http://127.0.0.1:{server.running.web.port}/api/v1/compare/specimens"
        rest = "&specimen=img1&split=validation&step=1"
        reader = tokens["reader-a"]
        ok = http_get(f"{base}?run={ids['proj-a']}&run={own.id}{rest}", token=reader)
        assert ok.status == 200, ok.body
        foreign = http_get(f"{base}?run={ids['proj-a']}&run={ids['proj-b']}{rest}", token=reader)
        missing = http_get(f"{base}?run={ids['proj-a']}&run=r_0000000000000000{rest}", token=reader)
        assert foreign.status == missing.status == 404
        assert foreign.body["error"]["message"] == missing.body["error"]["message"].replace(
            "r_0000000000000000", ids["proj-b"]
        )
        assert http_get(f"{base}?run={ids['proj-a']}&run={own.id}{rest}").status == 401
