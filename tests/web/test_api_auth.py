"""The JSON API's security is the gRPC port's: the same tokens, scopes, roles and TLS."""

from __future__ import annotations

import ssl
import urllib.request
from pathlib import Path

import pytest
from evalstream import Client
from evalstream_server.web.server import WebServer

from ..auth.conftest import TOKENS, Server, live, pki, write_tokens  # noqa: F401 - pki: fixture
from .conftest import http_get


@pytest.fixture
def secured(tmp_path: Path):
    """A server with tokens (proj-a and proj-b runs written) and its HTTP API's base URL."""
    path = tmp_path / "tokens.json"
    values = write_tokens(path, TOKENS)
    for server in live(tmp_path / "data", auth_tokens_file=path, http_port=0):
        with Client(server.target, token=values["admin"]) as client:
            ids = {p: client.create_run(p, "r").id for p in ("proj-a", "proj-b")}
        yield server, values, ids


def _base(server: Server) -> str:
    return f"http://127.0.0.1:{_web(server).port}"


def _web(server: Server) -> WebServer:
    assert server.running is not None and server.running.web is not None
    return server.running.web


def test_no_token_or_a_bad_one_is_401(secured) -> None:
    server, _tokens, ids = secured
    for token in ("", "es_not-a-token"):
        got = http_get(f"{_base(server)}/api/v1/runs/{ids['proj-a']}", token=token)
        assert got.status == 401, got.body
        assert got.body["error"]["code"] == "UNAUTHENTICATED"
        assert got.headers["WWW-Authenticate"].startswith("Bearer")
    assert http_get(f"{_base(server)}/api/v1/projects").status == 401
    # The document says what the API is; it holds no data.
    assert http_get(f"{_base(server)}/api/v1/openapi.json").status == 200


def test_a_reader_reads_its_project_and_not_another(secured) -> None:
    server, tokens, ids = secured
    base, reader = _base(server), tokens["reader-a"]
    own = http_get(f"{base}/api/v1/runs/{ids['proj-a']}", token=reader)
    assert own.status == 200 and own.body["project"] == "proj-a"
    assert http_get(f"{base}/api/v1/runs/{ids['proj-a']}/verdict", token=reader).status == 200
    listed = http_get(f"{base}/api/v1/projects", token=reader)
    assert [p["name"] for p in listed.body["projects"]] == ["proj-a"]
    # Another project's run answers exactly as a run that does not exist.
    foreign = http_get(f"{base}/api/v1/runs/{ids['proj-b']}", token=reader)
    missing = http_get(f"{base}/api/v1/runs/r_0000000000000000", token=reader)
    assert foreign.status == missing.status == 404
    assert foreign.body["error"]["message"] == missing.body["error"]["message"].replace(
        "r_0000000000000000", ids["proj-b"]
    )
    by_name = http_get(f"{base}/api/v1/runs/proj-b%2Fr/curves", token=reader)
    assert by_name.status == 404
    compare = http_get(
        f"{base}/api/v1/compare?run={ids['proj-a']}&run={ids['proj-b']}", token=reader
    )
    assert compare.status == 404
    # Naming a project outside the token is refused as the RPC refuses it.
    runs = http_get(f"{base}/api/v1/projects/proj-b/runs", token=reader)
    assert runs.status == 403 and runs.body["error"]["code"] == "PERMISSION_DENIED"


def test_https_with_the_servers_certificate(tmp_path: Path, pki) -> None:  # noqa: F811
    path = tmp_path / "tokens.json"
    tokens = write_tokens(path, TOKENS)
    overrides = {"tls_cert": pki.server_cert, "tls_key": pki.server_key, "http_port": 0}
    for server in live(tmp_path / "data", auth_tokens_file=path, **overrides):
        port = _web(server).port
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        got = http_get(
            f"https://localhost:{port}/api/v1/projects", token=tokens["admin"], context=trusted
        )
        assert got.status == 200
        request = urllib.request.Request(
            f"https://localhost:{port}/api/v1/session",
            data=b'{"token": "%s"}' % tokens["admin"].encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30, context=trusted) as reply:
            assert _cookies(reply.headers)["evalstream_session"]["secure"]  # only over TLS
        with pytest.raises(OSError):  # a plaintext request to the TLS port gets no answer
            http_get(f"http://127.0.0.1:{port}/api/v1/projects", token=tokens["admin"])


def _request(url: str, method: str, *, body: bytes | None = None, headers: dict[str, str]):
    import json
    import urllib.error

    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read()), reply.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), err.headers


def _cookies(headers) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    for line in headers.get_all("Set-Cookie") or []:
        jar.load(line)
    return {name: morsel for name, morsel in jar.items()}


def test_a_session_cookie_reads_as_its_token_and_needs_csrf_to_sign_out(secured) -> None:
    server, tokens, ids = secured
    base = _base(server)
    session = f"{base}/api/v1/session"
    body = b'{"token": "%s"}' % tokens["reader-a"].encode()
    # A form post (what another site could make a browser send) is refused.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, got, _ = _request(session, "POST", body=b"token=x", headers=form)
    assert status == 400
    status, got, _ = _request(
        session, "POST", body=b'{"token": "es_wrong"}', headers={"Content-Type": "application/json"}
    )
    assert status == 401
    status, got, headers = _request(
        session, "POST", body=body, headers={"Content-Type": "application/json"}
    )
    assert status == 200 and got == {"name": "reader-a", "role": "read", "projects": ["proj-a"]}
    cookies = _cookies(headers)
    kept = cookies["evalstream_session"]
    assert kept.value == tokens["reader-a"]
    assert kept["httponly"] and kept["samesite"] == "Strict" and not kept["secure"]
    csrf = cookies["evalstream_csrf"].value
    assert csrf and not cookies["evalstream_csrf"]["httponly"]
    jar = {"Cookie": f"evalstream_session={kept.value}; evalstream_csrf={csrf}"}
    # The cookie reads as the token does: its project, and no other.
    status, run, _ = _request(f"{base}/api/v1/runs/{ids['proj-a']}", "GET", headers=jar)
    assert status == 200 and run["project"] == "proj-a"
    status, _, _ = _request(f"{base}/api/v1/runs/{ids['proj-b']}", "GET", headers=jar)
    assert status == 404
    assert _request(session, "GET", headers=jar)[1]["name"] == "reader-a"
    # Signing out is not a GET: without the CSRF header, or with another value, refused.
    status, refused, _ = _request(session, "DELETE", headers=jar)
    assert status == 403 and "X-CSRF-Token" in refused["error"]["message"]
    status, _, _ = _request(session, "DELETE", headers={**jar, "X-CSRF-Token": csrf + "x"})
    assert status == 403
    status, _, headers = _request(session, "DELETE", headers={**jar, "X-CSRF-Token": csrf})
    assert status == 200
    assert _cookies(headers)["evalstream_session"].value == ""


def test_the_points_stream_and_runs_verdicts_are_scoped(secured) -> None:
    server, tokens, ids = secured
    base, reader = _base(server), tokens["reader-a"]
    foreign = http_get(f"{base}/api/v1/runs/{ids['proj-b']}/curves/stream", token=reader)
    missing = http_get(f"{base}/api/v1/runs/r_0000000000000000/curves/stream", token=reader)
    assert foreign.status == missing.status == 404
    assert http_get(f"{base}/api/v1/runs/{ids['proj-a']}/curves/stream").status == 401
    own = http_get(f"{base}/api/v1/projects/proj-a/runs?verdicts=true", token=reader)
    assert own.status == 200 and [v["run_id"] for v in own.body["verdicts"]] == [ids["proj-a"]]
    other = http_get(f"{base}/api/v1/projects/proj-b/runs?verdicts=true", token=reader)
    assert other.status == 403
