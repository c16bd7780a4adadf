"""The JSON API's security is the gRPC port's: the same tokens, scopes, roles and TLS."""

from __future__ import annotations

import ssl
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
        with pytest.raises(OSError):  # a plaintext request to the TLS port gets no answer
            http_get(f"http://127.0.0.1:{port}/api/v1/projects", token=tokens["admin"])
