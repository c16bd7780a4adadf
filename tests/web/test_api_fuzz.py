"""Hypothesis fuzzing of the JSON API: random paths and query strings never get a 5xx.

Derandomized (the same examples every run), over a run with points, checkpoints and
specimens so that inputs get past the first lookup. Every answer is JSON; a refusal
is a 4xx with ``{"error": {"code", "message"}}``, and the server keeps serving.
"""

from __future__ import annotations

import io
import urllib.parse
from collections.abc import Iterator

import pytest
from evalstream import Box, Client, ImageBoxes
from evalstream_server.web._routes import ROUTES
from evalstream_server.web.openapi import openapi_document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import http_get

DOCUMENT = openapi_document()


def _params(route: str) -> list[str]:
    """The route's query parameters (from the OpenAPI document), and one it does not take."""
    operation = DOCUMENT["paths"].get(route, {}).get("get", {"parameters": []})
    return [p["name"] for p in operation["parameters"] if p["in"] == "query"] + ["x"]


VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "2",
            "10",
            "99999999999999999999",
            "2147483648",
            "-9223372036854775809",
            "1e3",
            "NaN",
            "train",
            "validation",
            "test",
            "loss",
            "running",
            "missed",
            "%",
            "web/a",
        ]
    ),  # fmt: skip
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=30),
)


@pytest.fixture
def seeded(web_server) -> tuple[str, str]:
    with Client(web_server.target) as client:
        run = client.create_run("web", "a")
        for step in range(50):
            run.log(step, loss=1.0 / (step + 1))
            run.log(step, split="validation", loss=float("nan") if step == 7 else 0.5)
        run.flush(timeout=30)
        gt = (Box(10, 10, 50, 50, label="cat"),)
        images = [ImageBoxes("cat", predictions=(), ground_truth=gt)]
        client.score_boxes(images, checkpoint=run.checkpoint(100))
    return web_server.base, run.id


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    route=st.sampled_from([path for path, _ in ROUTES] + ["/api/v1/openapi.json", "/api/v1/x"]),
    segment=st.one_of(st.sampled_from(["RUN", "web", "web/a", "cat", ""]), st.text(max_size=20)),
    data=st.data(),
)
def test_random_requests_never_get_a_5xx(seeded, route, segment, data) -> None:
    base, run_id = seeded
    query = data.draw(st.lists(st.tuples(st.sampled_from(_params(route)), VALUES), max_size=5))
    value = run_id if segment == "RUN" else segment
    path = route
    for name in ("{run}", "{project}", "{specimen}"):
        path = path.replace(name, urllib.parse.quote(value, safe="") or "_")
    got = http_get(f"{base}{path}?{urllib.parse.urlencode(query)}")
    assert got.status < 500, (path, query, got.body)
    if got.status >= 400:
        assert set(got.body["error"]) >= {"code", "message"}, got.body


#: Values the export takes, drawn twice as often as anything (so that many get a file).
EXPORT_GOOD = {
    "format": st.sampled_from(["csv", "jsonl"]),
    "split": st.sampled_from(["train", "validation", "test"]),
    "series": st.sampled_from(["loss", "accuracy"]),
    "start_step": st.integers(0, 60).map(str),
    "end_step": st.integers(0, 60).map(str),
}
EXPORT_PARAM = st.sampled_from(_params("/api/v1/runs/{run}/export")).flatmap(
    lambda name: st.tuples(
        st.just(name),
        st.one_of(EXPORT_GOOD.get(name, VALUES), EXPORT_GOOD.get(name, VALUES), VALUES),
    )
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=st.lists(EXPORT_PARAM, max_size=5))
def test_random_exports_are_the_clients_file_or_a_4xx(seeded, grpc_client, query) -> None:
    """A 200 is byte for byte what `Client.export` writes with the same filters."""
    base, run_id = seeded
    got = http_get(f"{base}/api/v1/runs/{run_id}/export?{urllib.parse.urlencode(query)}")
    assert got.status < 500, (query, got.body)
    if got.status >= 400:
        assert set(got.body["error"]) >= {"code", "message"}, got.body
        return
    fmt = dict(query).get("format") or "csv"
    start, end = (dict(query).get(name) for name in ("start_step", "end_step"))
    expected = io.BytesIO()
    grpc_client.export(
        run_id,
        expected,
        format=fmt,
        splits=[v for k, v in query if k == "split"],
        series=[v for k, v in query if k == "series"],
        start_step=int(start) if start else None,
        end_step=int(end) if end else None,
    )
    assert got.body == expected.getvalue(), query
    assert got.headers["Content-Type"].startswith("text/csv" if fmt == "csv" else "application/x")


@pytest.fixture
def grpc_client(web_server) -> Iterator[Client]:
    with Client(web_server.target) as client:
        yield client
