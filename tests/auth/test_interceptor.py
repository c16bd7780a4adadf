"""Every method refuses a missing or foreign token; roles; health and reflection policy."""

from __future__ import annotations

import json
import logging

import grpc
import prometheus_client
import pytest
from evalstream import Client
from evalstream.v1 import runs_pb2, scoring_pb2
from evalstream_server.auth import METHOD_ROLES, mint_token
from evalstream_server.observability import JsonFormatter
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

SERVICES = (
    scoring_pb2.DESCRIPTOR.services_by_name["Scoring"],
    runs_pb2.DESCRIPTOR.services_by_name["Runs"],
)
# (full method name, request streaming, response streaming), from the contract itself.
METHODS = [
    (f"/{s.full_name}/{m.name}", m.client_streaming, m.server_streaming)
    for s in SERVICES
    for m in s.methods
]
REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def call(
    target: str, method: tuple[str, bool, bool], metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.StatusCode:
    """Calls `method` with an empty request message; returns the status code."""
    name, streaming_in, streaming_out = method
    with grpc.insecure_channel(target) as channel:
        kind = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }[(streaming_in, streaming_out)]
        stub = kind(name)  # bytes in, bytes out
        request = iter([b""]) if streaming_in else b""
        try:
            reply = stub(request, metadata=metadata, timeout=10)
            if streaming_out:
                for _ in reply:
                    break
                reply.cancel()
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def test_every_method_has_a_role() -> None:
    assert {m[0] for m in METHODS} == set(METHOD_ROLES)


@pytest.mark.parametrize("method", METHODS, ids=[m[0] for m in METHODS])
def test_every_method_refuses_missing_and_wrong_tokens(auth_server, method) -> None:
    target = auth_server.target
    assert call(target, method) == grpc.StatusCode.UNAUTHENTICATED
    assert call(target, method, bearer(mint_token())) == grpc.StatusCode.UNAUTHENTICATED
    assert call(target, method, (("authorization", "Basic dXNlcjpwdw=="),)) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


@pytest.mark.parametrize("method", METHODS, ids=[m[0] for m in METHODS])
def test_roles(auth_server, tokens, method) -> None:
    """read may call read methods only; write and admin may call everything."""
    reader = call(auth_server.target, method, bearer(tokens["reader-a"]))
    if METHOD_ROLES[method[0]] == "read":
        assert reader not in REFUSED
    else:
        assert reader == grpc.StatusCode.PERMISSION_DENIED
    for name in ("writer-a", "admin"):
        assert call(auth_server.target, method, bearer(tokens[name])) not in REFUSED


def test_health_is_open(auth_server) -> None:
    with Client(auth_server.target) as client:
        assert client.health() == "SERVING"


def _reflect(target: str, metadata: tuple[tuple[str, str], ...] = ()) -> set[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10))
    return {s.name for s in reply.list_services_response.service}


def test_reflection_needs_a_valid_token(auth_server, tokens) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _reflect(auth_server.target)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "evalstream.v1.Runs" in _reflect(auth_server.target, bearer(tokens["reader-a"]))


def test_tokens_never_reach_logs_or_metrics(auth_server, tokens, caplog) -> None:
    wrong = mint_token()
    with caplog.at_level(logging.DEBUG):
        for token in (tokens["writer-a"], tokens["reader-a"], wrong):
            for method in METHODS:
                call(auth_server.target, method, bearer(token))
        with Client(auth_server.target, token=tokens["writer-a"]) as client:
            with client.create_run("proj-a", "r1") as run:
                run.log(0, loss=1.0)
    secrets = [*tokens.values.values(), wrong]
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) + repr(r.__dict__) for r in caplog.records)
    assert "auth refused" in text  # refusals are logged ...
    assert all(s not in text for s in secrets)  # ... without the token
    metrics = prometheus_client.generate_latest(auth_server.deps.metrics.registry).decode()
    assert all(s not in metrics for s in secrets)
    # Refusals are counted by the observability interceptor (it runs outside auth).
    assert 'grpc_code="UNAUTHENTICATED"' in metrics
    assert 'grpc_code="PERMISSION_DENIED"' in metrics


def test_config_repr_hides_the_admin_token(tmp_path) -> None:
    from evalstream_server.config import Config

    token = mint_token()
    assert token not in repr(Config(admin_token=token))
    line = json.dumps({"config": repr(Config(admin_token=token))})
    assert token not in line
