"""Hypothesis fuzzing of the JSON API: random paths and query strings never get a 5xx.

Derandomized (the same examples every run), over a run with points, checkpoints and
specimens so that inputs get past the first lookup. Every answer is JSON; a refusal
is a 4xx with ``{"error": {"code", "message"}}``, and the server keeps serving.
"""

from __future__ import annotations

import urllib.parse

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
