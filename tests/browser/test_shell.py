"""The page around the views: assets served from the package, sign-in, theme, routing."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from evalstream import Client

from ..auth.conftest import TOKENS, live, write_tokens
from ..web.conftest import WebServer


def test_the_page_and_its_chart_library_come_from_the_server(web: WebServer, page: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(web.base + "/")
    page.wait_for_function("typeof uPlot === 'function'")
    # Nothing from another origin: the page works on a machine with no internet.
    assert requested and all(u.startswith(web.base) for u in requested), requested
    with urllib.request.urlopen(web.base + "/compare") as reply:
        csp = reply.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert reply.headers["Content-Type"].startswith("text/html")
    with urllib.request.urlopen(web.base + "/static/vendor/uplot-1.6.32/LICENSE") as reply:
        assert b"MIT License" in reply.read()


def test_an_unknown_static_file_or_a_path_outside_is_404(web: WebServer) -> None:
    for path in ("/static/nope.js", "/static/../server.py", "/static/%2e%2e/server.py"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(web.base + path)
        assert refused.value.code == 404, path


def test_a_browser_at_an_unknown_path_gets_the_page_saying_not_found(
    web: WebServer, page: Any
) -> None:
    answer = page.goto(web.base + "/runs/r_1/nothing/here")
    assert answer is not None and answer.status == 404
    page.get_by_role("heading", name="Not found").wait_for()
    assert "/runs/r_1/nothing/here" in page.locator("main").inner_text()
    # A program (no HTML accepted) still gets the JSON error.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(web.base + "/runs/r_1/nothing/here")
    assert refused.value.headers["Content-Type"].startswith("application/json")


def test_the_theme_toggle_switches_and_is_remembered(web: WebServer, page: Any) -> None:
    page.emulate_media(color_scheme="light")
    page.goto(web.base + "/")
    html = page.locator("html")
    assert html.get_attribute("data-theme") == "light"
    page.get_by_role("button", name=re.compile("theme")).click()
    assert html.get_attribute("data-theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 20, 25)"
    page.reload()
    assert html.get_attribute("data-theme") == "dark"


@pytest.fixture
def secured(tmp_path: Path):
    """A token-protected server with one run in proj-a and one in proj-b."""
    path = tmp_path / "tokens.json"
    values = write_tokens(path, TOKENS)
    for server in live(tmp_path / "data", auth_tokens_file=path, http_port=0):
        with Client(server.target, token=values["admin"]) as client:
            ids = {p: client.create_run(p, "r").id for p in ("proj-a", "proj-b")}
        assert server.running is not None and server.running.web is not None
        yield f"http://127.0.0.1:{server.running.web.port}", values, ids


def test_sign_in_keeps_an_http_only_session_and_returns_to_the_page(secured, page: Any) -> None:
    base, tokens, ids = secured
    page.goto(f"{base}/runs/{ids['proj-a']}")
    page.wait_for_url(re.compile(r"/sign-in\?next="))
    # Without a token the browser reads nothing: every API answer is 401.
    unsigned = page.evaluate(
        "id => Promise.all(['/api/v1/projects', '/api/v1/runs/' + id]"
        ".map(u => fetch(u).then(r => r.status)))",
        ids["proj-a"],
    )
    assert unsigned == [401, 401]
    page.get_by_label("Token").fill("es_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="not valid").wait_for()
    page.get_by_label("Token").fill(tokens["reader-a"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/runs/{ids['proj-a']}")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["evalstream_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert not cookies["evalstream_csrf"]["httpOnly"]
    # The script cannot read the token.
    assert "evalstream_session" not in page.evaluate("document.cookie")
    assert page.locator("#who").inner_text().startswith("reader-a")
    # Another project's run, through the session, is not found (as one that does not exist).
    status = page.evaluate("id => fetch('/api/v1/runs/' + id).then(r => r.status)", ids["proj-b"])
    assert status == 404
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/sign-in"))
    assert "evalstream_session" not in {c["name"] for c in page.context.cookies()}
