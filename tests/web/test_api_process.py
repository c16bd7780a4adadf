"""`evalstream-server --http-port 0` as a process: it logs the API's URL, answers, and
drains HTTP with gRPC on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from evalstream import Client

from ..conftest import start_server
from .conftest import http_get
from .test_api_stream import _events, _open

pytestmark = pytest.mark.slow


def test_the_server_process_serves_the_api_and_stops_cleanly(tmp_path: Path) -> None:
    sp = start_server(tmp_path / "data", http_port=0)
    try:
        assert sp.http_url.startswith("http://127.0.0.1:") and sp.http_url.endswith("/api/v1/")
        got = http_get(sp.http_url + "projects")
        assert got.status == 200 and got.body == {"projects": [], "next_page_token": ""}
        sp.signal(signal.SIGTERM)
        assert sp.wait(60) == 0
    finally:
        if sp.proc.poll() is None:
            sp.proc.kill()


def test_http_port_minus_one_logs_no_url(tmp_path: Path) -> None:
    sp = start_server(tmp_path / "data")  # the helper passes --http-port -1
    try:
        assert sp.http_url == ""
        assert not [e for e in sp.lines if e.get("msg") == "http"]
    finally:
        sp.signal(signal.SIGTERM)
        sp.wait(60)


def test_sigterm_ends_an_open_verdict_stream_and_exits(tmp_path: Path) -> None:
    sp = start_server(tmp_path / "data", http_port=0)
    try:
        with Client(sp.target) as client:
            run_id = client.create_run("web", "watched").id
        base = sp.http_url.removesuffix("/api/v1/")
        connection, reply = _open(base, f"/api/v1/runs/{run_id}/verdict/stream")
        events = _events(reply)
        assert next(events)[0] == "verdict"
        sp.signal(signal.SIGTERM)
        name, body = next(events)  # at once, not after the grace period
        assert (name, body["error"]["code"]) == ("error", "UNAVAILABLE")
        connection.close()
        assert sp.wait(60) == 0
    finally:
        if sp.proc.poll() is None:
            sp.proc.kill()
