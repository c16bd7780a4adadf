"""GET /api/v1/runs/{run}/export: ExportCurves' CSV and JSON Lines as a download.

The bytes are compared with what the gRPC client's `Client.export` writes for the same
run, format and filters; refusals are 400s naming the parameter.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
import urllib.parse

import grpc
import pytest
from evalstream import Client
from evalstream_server.api.runs import RunsServicer

POINTS = 3_000


@pytest.fixture
def exported(web_server) -> str:
    """A run 'web/lr=3e-4 "b"' with train loss (NaN, +inf, -inf among them),
    validation loss and an accuracy series; its id."""
    with Client(web_server.target) as client:
        run = client.create_run("web", 'lr=3e-4 "b"')
        values = [1.0 / (s + 1) for s in range(POINTS)]
        values[7], values[8], values[9] = float("nan"), float("inf"), float("-inf")
        run.log_many(range(POINTS), values, wall_times=[1.7e9 + s for s in range(POINTS)])
        for step in range(0, POINTS, 100):
            run.log(step, split="validation", loss=0.5 + step / 1e4, accuracy=0.25)
        run.flush(timeout=30)
    return run.id


def _client_export(target: str, run_id: str, fmt: str, **filters) -> bytes:
    out = io.BytesIO()
    with Client(target) as client:
        client.export(run_id, out, format=fmt, **filters)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_is_the_clients_export_byte_for_byte(web_server, exported, fmt) -> None:
    got = web_server.get(f"/api/v1/runs/{exported}/export?format={fmt}")
    assert got.status == 200
    assert got.body == _client_export(web_server.target, exported, fmt)
    content_type = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}[fmt]
    assert got.headers["Content-Type"] == content_type
    assert got.headers["Transfer-Encoding"] == "chunked"
    assert got.headers["Content-Disposition"] == f'attachment; filename="web-lr_3e-4_b_.{fmt}"'
    assert int(got.headers["X-Estimated-Points"]) == POINTS + 2 * (POINTS // 100)


def test_export_keeps_nan_and_infinities(web_server, exported) -> None:
    csv_rows = web_server.get(f"/api/v1/runs/{exported}/export").body.decode().splitlines()
    assert csv_rows[0] == "split,series,step,wall_time,value"
    train = [r.split(",") for r in csv_rows[1:] if r.startswith("train,loss,")]
    assert len(train) == POINTS
    assert [r[4] for r in train[6:11]] == [
        "0.14285714285714285",
        "nan",
        "inf",
        "-inf",
        "0.09090909090909091",
    ]
    lines = web_server.get(f"/api/v1/runs/{exported}/export?format=jsonl&split=train").body
    rows = [json.loads(line) for line in lines.decode().splitlines()]
    assert [r["value"] for r in rows[7:10]] == ["nan", "inf", "-inf"]
    assert rows[8] == {
        "split": "train",
        "series": "loss",
        "step": 8,
        "wall_time": 1.7e9 + 8,
        "value": "inf",
    }


def test_export_filters_as_the_client_does(web_server, exported) -> None:
    query = "split=validation&series=accuracy&start_step=200&end_step=1000&format=csv"
    got = web_server.get(f"/api/v1/runs/{exported}/export?{query}")
    expected = _client_export(
        web_server.target,
        exported,
        "csv",
        splits=["validation"],
        series=["accuracy"],
        start_step=200,
        end_step=1000,
    )
    assert got.status == 200 and got.body == expected
    assert len(expected.splitlines()) == 1 + 9  # the header, steps 200..1000 by 100


def test_export_by_project_and_name(web_server, exported) -> None:
    name = urllib.parse.quote('web/lr=3e-4 "b"', safe="")
    got = web_server.get(f"/api/v1/runs/{name}/export?format=jsonl")
    assert got.status == 200
    assert got.body == _client_export(web_server.target, exported, "jsonl")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=parquet", "format"),
        ("format=points", "format"),
        ("format=csv&format=jsonl", "format"),
        ("split=training", "split"),
        ("start_step=-1", "start_step"),
        ("end_step=ten", "end_step"),
        ("end_step=9223372036854775808", "end_step"),
        ("start_step=10&end_step=9", "start_step"),
        ("max_points=10", "max_points"),
    ],
)
def test_bad_export_queries_are_400_naming_the_field(web_server, exported, query, field) -> None:
    got = web_server.get(f"/api/v1/runs/{exported}/export?{query}")
    assert got.status == 400, got.body
    assert got.body["error"]["code"] == "INVALID_ARGUMENT"
    assert got.body["error"]["field"] == field


def test_export_of_an_unknown_run_is_404(web_server) -> None:
    got = web_server.get("/api/v1/runs/no-such-run/export")
    assert (got.status, got.body["error"]["code"]) == (404, "NOT_FOUND")


def test_a_reader_that_stops_reading_holds_the_export_back(web_server, monkeypatch) -> None:
    """The server makes a message only once the previous one is written: for a reader
    that reads nothing, it makes a few messages (the socket buffers' worth), not the
    export's, and the rest once the reader reads."""
    made: list[int] = []
    export = RunsServicer.ExportCurves

    def counting(self, request, context):
        for reply in export(self, request, context):
            made.append(reply.points)
            yield reply

    monkeypatch.setattr(RunsServicer, "ExportCurves", counting)
    with Client(web_server.target) as client:
        run = client.create_run("web", "long")
        n = 2_000_000
        run.log_many(range(n), [0.5] * n)
        run.flush(timeout=120)
    host, port = web_server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        request = (
            f"GET /api/v1/runs/{run.id}/export HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        time.sleep(2)  # the server writes until the buffers are full, then waits
        held = sum(made)
        assert 0 < held < n // 4, (held, n)
        sock.settimeout(30)
        received = 0
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    assert sum(made) == n
    assert received > len(b"train,loss,1999999,,0.5\n") * n // 2  # about 48 MB of CSV


def test_a_failure_after_the_first_byte_cuts_the_body(web_server, exported, monkeypatch) -> None:
    """The status is sent with the first byte: a later failure must not end the body
    cleanly (the last chunk), or the client would keep a cut file as a whole one."""
    export = RunsServicer.ExportCurves

    def failing(self, request, context):
        replies = export(self, request, context)
        yield next(replies)
        yield next(replies)
        context.abort(grpc.StatusCode.UNAVAILABLE, "the store went away")

    monkeypatch.setattr(RunsServicer, "ExportCurves", failing)
    url = urllib.parse.urlsplit(web_server.base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("GET", f"/api/v1/runs/{exported}/export")
        reply = connection.getresponse()
        assert reply.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:
            reply.read()
        assert cut.value.partial.startswith(b"split,series,step,wall_time,value\ntrain,loss,0,")
    finally:
        connection.close()
    assert web_server.get("/api/v1/projects").status == 200  # the server keeps serving
