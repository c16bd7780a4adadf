"""The verdict as Server-Sent Events: the GetVerdict answer at once, then changes, then end."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import grpc
from evalstream import Client
from evalstream.v1 import runs_pb2, runs_pb2_grpc
from evalstream_server.web._json import message_to_json


def _events(reply: http.client.HTTPResponse):
    """(event, data) pairs as they arrive; comment lines are skipped."""
    name, data = "", ""
    for raw in reply:
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            data = line[len("data: ") :]
        elif not line and name:
            yield name, json.loads(data)
            name, data = "", ""


def _open(base: str, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("GET", path)
    return connection, connection.getresponse()


def test_verdict_stream_sends_the_verdict_then_ends_with_the_run(web_server) -> None:
    with Client(web_server.target) as client:
        run = client.create_run("web", "watched")
        for step in range(30):
            run.log(step, loss=1.0 / (step + 1))
        run.flush(timeout=30)
        connection, reply = _open(web_server.base, f"/api/v1/runs/{run.id}/verdict/stream")
        try:
            assert reply.status == 200
            assert reply.headers["Content-Type"] == "text/event-stream"
            events = _events(reply)
            name, first = next(events)
            with grpc.insecure_channel(web_server.target) as channel:
                expected = runs_pb2_grpc.RunsStub(channel).GetVerdict(
                    runs_pb2.GetVerdictRequest(run_id=run.id)
                )
            assert name == "verdict" and first == message_to_json(expected)
            run.finish()
            rest = list(events)  # the stream ends once the run has finished
            assert rest[-1] == ("end", {"run_id": run.id})
            assert all(name == "verdict" for name, _ in rest[:-1])
        finally:
            connection.close()


def test_verdict_stream_of_an_unknown_run_is_a_json_404(web_server) -> None:
    connection, reply = _open(web_server.base, "/api/v1/runs/web%2Fnone/verdict/stream")
    try:
        assert reply.status == 404
        assert json.loads(reply.read())["error"]["code"] == "NOT_FOUND"
    finally:
        connection.close()
