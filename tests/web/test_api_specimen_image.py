"""GET /api/v1/runs/{run}/specimens/{specimen}/image: relative image paths under --image-root."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from evalstream import Box, Client, ImageBoxes

from ..auth.conftest import TOKENS, live, write_tokens
from ..browser._evaluation_data import png
from .conftest import WebServer, _web_server, http_get

CUP = Box(10, 10, 60, 60, label="cup")
BLUE = png(20, 10, (0, 0, 255))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[WebServer, str]]:
    """A server with an image root holding val/img1.png, and a run whose specimens name
    that file, a link out of the root, a text file, a missing file and an https URI."""
    root, outside = tmp_path / "images", tmp_path / "outside"
    (root / "val").mkdir(parents=True)
    outside.mkdir()
    (root / "val" / "img1.png").write_bytes(BLUE)
    (root / "val" / "notes.txt").write_text("not an image")
    (outside / "secret.png").write_bytes(png(2, 2, (255, 0, 0)))
    os.symlink(outside / "secret.png", root / "val" / "link.png")
    for web in _web_server(tmp_path, {"image_root": root}):
        with Client(web.target) as client:
            run = client.create_run("web", "images")
            uris = {
                "img1": "val/img1.png",
                "link": "val/link.png",
                "text": "val/notes.txt",
                "gone": "val/gone.png",
                "http": "https://images.example.org/a.png",
                "none": "",
            }
            images = [ImageBoxes(k, (), (CUP,), image_uri=u) for k, u in uris.items()]
            client.score_boxes(images, checkpoint=run.checkpoint(100))
        yield web, run.id


def _raw(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_the_image_a_specimen_names_is_served(served) -> None:
    web, run = served
    for query in ("?split=validation", "?split=validation&step=100"):
        status, kind, body = _raw(f"{web.base}/api/v1/runs/{run}/specimens/img1/image{query}")
        assert (status, kind, body) == (200, "image/png", BLUE)


@pytest.mark.parametrize(
    ("specimen", "says"),
    [
        ("link", "not a file under the image root"),
        ("text", "no image suffix"),
        ("gone", "not a file under the image root"),
        ("http", "the browser loads http and https itself"),
        ("none", "has no image_uri"),
    ],
)
def test_nothing_else_is_served(served, specimen: str, says: str) -> None:
    web, run = served
    got = web.get(f"/api/v1/runs/{run}/specimens/{specimen}/image?split=validation")
    assert got.status == 404 and says in got.body["error"]["message"], got.body


def test_bad_input_and_unknown_names(served) -> None:
    web, run = served
    path = f"/api/v1/runs/{run}/specimens/img1/image"
    for query, status, field in (
        ("?split=validation&step=x", 400, "step"),
        ("?split=validation&step=200", 404, "step"),
        ("?split=dev", 400, "split"),
        ("?split=validation&uri=val/img1.png", 400, "uri"),
    ):
        got = web.get(path + query)
        assert (got.status, got.body["error"].get("field")) == (status, field), got.body
    traversal = web.get(f"/api/v1/runs/{run}/specimens/..%2F..%2Fetc/image?split=validation")
    assert traversal.status == 404 and traversal.body["error"]["field"] == "specimen_id"
    unknown = web.get("/api/v1/runs/r_0000000000000000/specimens/img1/image?split=validation")
    assert unknown.status == 404 and "not found" in unknown.body["error"]["message"]


def test_a_server_without_an_image_root_serves_none(web_server) -> None:
    with Client(web_server.target) as client:
        run = client.create_run("web", "no-root")
        images = [ImageBoxes("a", (), (CUP,), image_uri="https://images.example.org/a.png")]
        client.score_boxes(images, checkpoint=run.checkpoint(1))
    got = web_server.get(f"/api/v1/runs/{run.id}/specimens/a/image?split=validation")
    assert got.status == 404 and "no image root" in got.body["error"]["message"]


def test_another_projects_image_is_404_like_a_missing_run(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    (root / "a.png").write_bytes(BLUE)
    path = tmp_path / "tokens.json"
    tokens = write_tokens(path, TOKENS)
    for server in live(tmp_path / "data", auth_tokens_file=path, http_port=0, image_root=root):
        ids = {}
        with Client(server.target, token=tokens["admin"]) as client:
            for project in ("proj-a", "proj-b"):
                run = client.create_run(project, "r")
                image = ImageBoxes("a", (), (CUP,), image_uri="a.png")
                client.score_boxes([image], checkpoint=run.checkpoint(1))
                ids[project] = run.id
        assert server.running is not None and server.running.web is not None
        base = f"http://127.0.0.1:{server.running.web.port}/api/v1/runs"
        reader = tokens["reader-a"]
        own = urllib.request.Request(f"{base}/{ids['proj-a']}/specimens/a/image?split=validation")
        own.add_header("Authorization", f"Bearer {reader}")
        with urllib.request.urlopen(own, timeout=30) as reply:
            assert reply.read() == BLUE
        foreign = http_get(
            f"{base}/{ids['proj-b']}/specimens/a/image?split=validation", token=reader
        )
        missing = http_get(
            f"{base}/r_0000000000000000/specimens/a/image?split=validation", token=reader
        )
        assert foreign.status == missing.status == 404
        assert foreign.body["error"]["message"] == missing.body["error"]["message"].replace(
            "r_0000000000000000", ids["proj-b"]
        )
        no_token = http_get(f"{base}/{ids['proj-a']}/specimens/a/image?split=validation")
        assert no_token.status == 401
