"""Fixtures for the HTTP API tests: a server with an HTTP port, and a tiny HTTP client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import LiveServer, _live


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


def http_get(url: str, *, token: str = "", context: Any = None) -> Answer:
    """GET ``url``; the status, the body (decoded when JSON, else bytes) and the headers
    (errors included)."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return Answer(reply.status, _body(reply.read(), reply.headers), dict(reply.headers))
    except urllib.error.HTTPError as err:
        return Answer(err.code, _body(err.read(), err.headers), dict(err.headers))


def _body(raw: bytes, headers: Any) -> Any:
    """JSON decoded; a download (CSV, JSON Lines) as its bytes."""
    if headers.get("Content-Type", "").startswith("application/json"):
        return json.loads(raw)
    return raw


@dataclass(frozen=True)
class WebServer:
    live: LiveServer
    base: str  # e.g. http://127.0.0.1:PORT

    @property
    def target(self) -> str:
        return self.live.target

    def get(self, path: str, **kwargs: Any) -> Answer:
        return http_get(self.base + path, **kwargs)


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[WebServer]:
    """An in-process server (BERTScore off) whose JSON API listens on a free port."""
    yield from _web_server(tmp_path, {})


def _web_server(tmp_path: Path, overrides: dict[str, object]) -> Iterator[WebServer]:
    """A server with the HTTP port open (BERTScore off); ``overrides`` change its Config."""
    config = {"bertscore_model": "none", "text_workers": 0, "http_port": 0, **overrides}
    for live in _live(tmp_path, config):
        yield WebServer(live, f"http://127.0.0.1:{live.server.web.port}")
