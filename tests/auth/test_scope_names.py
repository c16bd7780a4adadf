"""Scopes of the lookups by name: another project's run by name is NOT_FOUND like a missing
one, and ListProjects lists only the projects the token covers (page by page)."""

from __future__ import annotations

import grpc
import pytest
from evalstream import Client, errors
from evalstream.v1 import runs_pb2, runs_pb2_grpc


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def projects(auth_server, tokens) -> dict[str, str]:
    """Run ids by project: one run in each of proj-a, proj-b, proj-b2, proj-c, other."""
    ids = {}
    with Client(auth_server.target, token=tokens["admin"]) as admin:
        for project in ("proj-c", "proj-b2", "proj-a", "other", "proj-b"):
            ids[project] = admin.create_run(project, "run").id
    return ids


def test_foreign_run_by_name_is_not_found_like_a_missing_one(auth_server, tokens, projects):
    md = bearer(tokens["reader-a"])
    with grpc.insecure_channel(auth_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        own = stub.GetRun(runs_pb2.GetRunRequest(project="proj-a", name="run"), metadata=md)
        assert own.id == projects["proj-a"]
        details = {}
        for name in ("run", "no-such-run"):
            with pytest.raises(grpc.RpcError) as info:
                stub.GetRun(runs_pb2.GetRunRequest(project="proj-b", name=name), metadata=md)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            details[name] = info.value.details()
        # The existing foreign run reads exactly as a missing one would.
        assert details["run"] == "run named 'run' not found in project 'proj-b'"
        assert details["no-such-run"] == "run named 'no-such-run' not found in project 'proj-b'"
    with Client(auth_server.target, token=tokens["reader-a"]) as client:
        with pytest.raises(errors.NotFound):
            client.get_run("proj-b/run")
        with pytest.raises(errors.NotFound):
            client.verdict("proj-b/run")


def test_list_projects_shows_only_the_tokens_projects(auth_server, tokens, projects):
    seen = {}
    for token in ("admin", "writer-a", "writer-b"):
        with Client(auth_server.target, token=tokens[token]) as client:
            seen[token] = [p.name for p in client.list_projects(page_size=1)]
    assert seen["admin"] == ["other", "proj-a", "proj-b", "proj-b2", "proj-c"]
    assert seen["writer-a"] == ["proj-a"]
    assert seen["writer-b"] == ["proj-b", "proj-b2"]  # the pattern proj-b*, one per page


def test_list_projects_scoped_pages_are_full(auth_server, tokens, projects):
    md = bearer(tokens["writer-b"])
    with grpc.insecure_channel(auth_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        first = stub.ListProjects(runs_pb2.ListProjectsRequest(page_size=1), metadata=md)
        assert [p.name for p in first.projects] == ["proj-b"]
        second = stub.ListProjects(
            runs_pb2.ListProjectsRequest(page_size=1, page_token=first.next_page_token),
            metadata=md,
        )
        assert [p.name for p in second.projects] == ["proj-b2"]
