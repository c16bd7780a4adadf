"""The HTTP API's traffic: counted on /metrics by route template, and bounded.

Requests are counted by route template, method and status code on the server's
Prometheus endpoint; beyond --http-max-in-flight calls or --http-max-streams streams
a request is answered 503 UNAVAILABLE with Retry-After at once.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from evalstream import Client
from evalstream_server.api.runs import RunsServicer
from prometheus_client.parser import text_string_to_metric_families

from .conftest import WebServer, _web_server, http_get
from .test_api_stream import _events, _open


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the /metrics page: (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _requests(samples, route: str, code: str, method: str = "GET") -> float:
    labels = (("code", code), ("method", method), ("route", route))
    return samples.get(("evalstream_http_requests_total", labels), 0.0)


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def metrics_url(web_server) -> Iterator[str]:
    """The in-process server's /metrics, on a free port."""
    server, port = web_server.live.deps.metrics.serve_http("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()


def test_requests_are_counted_by_route_template_method_and_code(web_server, metrics_url) -> None:
    with Client(web_server.target) as client:
        run = client.create_run("web", "counted")
        for step in range(20):
            run.log(step, loss=1.0 / (step + 1))
        run.flush(timeout=30)
    curves = "/api/v1/runs/{run}/curves"
    assert web_server.get(f"/api/v1/runs/{run.id}/curves?max_points=10").status == 200
    assert web_server.get("/api/v1/runs/web%2Fcounted/curves").status == 200
    assert web_server.get("/api/v1/runs/no-such-run/curves").status == 404
    assert web_server.get(f"/api/v1/runs/{run.id}/curves?max_points=ten").status == 400
    assert web_server.get(f"/api/v1/runs/{run.id}/export?format=xml").status == 400
    assert web_server.get("/api/v1/projects").status == 200
    assert web_server.get("/api/v1/no/such/path").status == 404
    head = urllib.request.Request(web_server.base + "/api/v1/projects", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as reply:
        assert reply.status == 200

    samples = _scrape(metrics_url)
    assert _requests(samples, curves, "200") == 2
    assert _requests(samples, curves, "404") == 1
    assert _requests(samples, curves, "400") == 1
    assert _requests(samples, "/api/v1/runs/{run}/export", "400") == 1
    assert _requests(samples, "/api/v1/projects", "200") == 1
    assert _requests(samples, "/api/v1/projects", "200", "HEAD") == 1
    assert _requests(samples, "(unmatched)", "404") == 1
    count = ("evalstream_http_request_seconds_count", (("route", curves),))
    assert samples[count] == 4
    # Label values are templates: no run id, no raw path.
    labels = {
        v for (name, ls), _ in samples.items() if name.startswith("evalstream_http") for _, v in ls
    }
    assert not {v for v in labels if run.id in v or "counted" in v or "no/such" in v}
    assert samples[("evalstream_http_max_in_flight", ())] == 64
    assert samples[("evalstream_http_max_streams", ())] == 64


def test_open_streams_are_a_gauge(web_server, metrics_url) -> None:
    with Client(web_server.target) as client:
        run = client.create_run("web", "watched")
        run.log(0, loss=1.0)
        run.flush(timeout=30)
        connection, reply = _open(web_server.base, f"/api/v1/runs/{run.id}/verdict/stream")
        try:
            events = _events(reply)
            assert next(events)[0] == "verdict"
            open_now = ("evalstream_http_streams_open", ())
            assert _scrape(metrics_url)[open_now] == 1
            run.finish()
            assert list(events)[-1][0] == "end"
            _wait_for(lambda: _scrape(metrics_url)[open_now] == 0)
        finally:
            connection.close()
    route = (("route", "/api/v1/runs/{run}/verdict/stream"),)
    assert _scrape(metrics_url)[("evalstream_http_request_seconds_count", route)] == 1


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[WebServer]:
    """A server that takes one API call and one stream at a time."""
    yield from _web_server(tmp_path, {"http_max_in_flight": 1, "http_max_streams": 1})


def _held(web: WebServer, name: str) -> float:
    return web.live.deps.metrics.registry.get_sample_value(name) or 0.0


def test_a_call_beyond_the_limit_is_503_with_retry_after(tight, monkeypatch) -> None:
    release = threading.Event()
    verdict = RunsServicer.GetVerdict

    def held(self, request, context):
        release.wait(30)
        return verdict(self, request, context)

    monkeypatch.setattr(RunsServicer, "GetVerdict", held)
    with Client(tight.target) as client:
        run_id = client.create_run("web", "busy").id
    first: list[int] = []
    caller = threading.Thread(
        target=lambda: first.append(tight.get(f"/api/v1/runs/{run_id}/verdict").status)
    )
    caller.start()
    try:
        _wait_for(lambda: _held(tight, "evalstream_http_in_flight") == 1)
        refused = tight.get("/api/v1/projects")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.body["error"]["code"] == "UNAVAILABLE"
        assert "--http-max-in-flight" in refused.body["error"]["message"]
        assert tight.get(f"/api/v1/runs/{run_id}/export").status == 503  # downloads count
        assert tight.get("/api/v1/openapi.json").status == 200  # no servicer: not bounded
    finally:
        release.set()
        caller.join(30)
    assert first == [200]
    assert tight.get("/api/v1/projects").status == 200  # the slot was given back
    assert _held(tight, "evalstream_http_in_flight") == 0


def test_a_stream_beyond_the_limit_is_503_with_retry_after(tight) -> None:
    with Client(tight.target) as client:
        run = client.create_run("web", "watched")
        connection, reply = _open(tight.base, f"/api/v1/runs/{run.id}/verdict/stream")
        try:
            assert next(_events(reply))[0] == "verdict"
            refused = http_get(f"{tight.base}/api/v1/runs/{run.id}/verdict/stream")
            assert refused.status == 503 and refused.headers["Retry-After"] == "1"
            assert refused.body["error"]["code"] == "UNAVAILABLE"
            assert "--http-max-streams" in refused.body["error"]["message"]
            # Calls have their own limit: a stream open does not refuse them.
            assert tight.get(f"/api/v1/runs/{run.id}/verdict").status == 200
            run.finish()
            list(_events(reply))
        finally:
            connection.close()
    _wait_for(lambda: _held(tight, "evalstream_http_streams_open") == 0)
    again, reply = _open(tight.base, f"/api/v1/runs/{run.id}/verdict/stream")
    try:
        assert reply.status == 200
    finally:
        again.close()


@pytest.mark.parametrize("stream", ["verdict/stream", "curves/stream"])
def test_a_stream_whose_client_left_is_released_at_once(web_server, stream) -> None:
    """Its handler thread and its stream slot come back within a second or two, long
    before the next heartbeat (15 s) would find the connection closed."""
    with Client(web_server.target) as client:
        run = client.create_run("traffic", f"left-{stream.split('/')[0]}")
        run.log(0, loss=1.0)
        run.flush(timeout=30)
        connection, reply = _open(web_server.base, f"/api/v1/runs/{run.id}/{stream}")
        assert reply.status == 200
        next(_events(reply))
        assert _held(web_server, "evalstream_http_streams_open") == 1
        connection.sock.close()  # the browser tab closed, without a word
        connection.close()
        _wait_for(lambda: _held(web_server, "evalstream_http_streams_open") == 0, timeout=3.0)
        run.finish()
