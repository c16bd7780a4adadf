"""Alert test fixtures: a local HTTP receiver that records POSTs and answers scripted statuses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """POSTs received, in order; `statuses` answers the first ones (then 200)."""

    base: str
    statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    posts: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The POSTs once there are `count` (or what came within `timeout` s)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.posts) < count and time.monotonic() < deadline:
                self.cond.wait(deadline - time.monotonic())
            return list(self.posts)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver for the test."""
    with serve_receiver() as rec:
        yield rec


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """An http.server on 127.0.0.1, port 0, in a thread."""
    state: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            rec = state[0]
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with rec.cond:
                status = rec.statuses.pop(0) if rec.statuses else 200
                rec.posts.append(Received(self.path, dict(self.headers), body))
                rec.cond.notify_all()
            self.send_response(status)
            if status != 200 and rec.retry_after is not None:
                self.send_header("Retry-After", rec.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
