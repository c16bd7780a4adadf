"""Per-token concurrency limits (--max-concurrent-rpcs-per-token)."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .conftest import TOKENS, live, write_tokens


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
def limited(tmp_path):
    path = tmp_path / "tokens.json"
    tokens = write_tokens(path, TOKENS)
    for server in live(
        tmp_path / "data",
        auth_tokens_file=path,
        max_concurrent_rpcs=8,
        max_concurrent_rpcs_per_token=2,
    ):
        yield server, tokens


def _open_stream(stub: runs_pb2_grpc.RunsStub, token: str, run_id: str):
    """A StreamLoss call that has sent one chunk and got its ack: it holds a slot."""
    chunk = runs_pb2.LossChunk(
        run_id=run_id, split=common_pb2.SPLIT_TRAIN, steps=[1], values=[0.5], sequence=1
    )
    q: queue.Queue[runs_pb2.LossChunk | None] = queue.Queue()
    q.put(chunk)

    def gen():
        while (item := q.get()) is not None:
            yield item

    call = stub.StreamLoss(gen(), metadata=bearer(token), timeout=30)
    ack = next(call)
    assert ack.accepted
    return call, q


@contextmanager
def _two_streams_of(stub: runs_pb2_grpc.RunsStub, token: str, run_id: str) -> Iterator[None]:
    """Holds two StreamLoss calls of `token` open (its limit), and ends them after."""
    held = [_open_stream(stub, token, run_id) for _ in range(2)]
    try:
        yield
    finally:
        for call, q in held:
            q.put(None)
            list(call)


def test_a_token_over_its_limit_is_refused_fast_while_others_are_served(limited) -> None:
    server, tokens = limited
    with grpc.insecure_channel(server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        run = stub.CreateRun(
            runs_pb2.CreateRunRequest(project="proj-a", name="r"), metadata=bearer(tokens["admin"])
        )
        with _two_streams_of(stub, tokens["writer-a"], run.id):
            # The first refusal warms the method's path (as in the stress overload
            # test); the timed one is the second.
            with pytest.raises(grpc.RpcError):
                stub.GetRun(
                    runs_pb2.GetRunRequest(run_id=run.id), metadata=bearer(tokens["writer-a"])
                )
            start = time.perf_counter()
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetRun(
                    runs_pb2.GetRunRequest(run_id=run.id), metadata=bearer(tokens["writer-a"])
                )
            elapsed = time.perf_counter() - start
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "this token has 2 calls in flight" in refused.value.details()
            assert elapsed < 0.1
            # Another token, and health, are served.
            got = stub.GetRun(
                runs_pb2.GetRunRequest(run_id=run.id), metadata=bearer(tokens["admin"])
            )
            assert got.id == run.id
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="evalstream.v1.Runs")
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        # The slots are free again once the streams end.
        got = stub.GetRun(
            runs_pb2.GetRunRequest(run_id=run.id), metadata=bearer(tokens["writer-a"])
        )
        assert got.id == run.id


def test_unknown_tokens_do_not_use_a_known_tokens_budget(limited) -> None:
    server, tokens = limited
    with grpc.insecure_channel(server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        run = stub.CreateRun(
            runs_pb2.CreateRunRequest(project="proj-a", name="r"), metadata=bearer(tokens["admin"])
        )
        with _two_streams_of(stub, tokens["writer-a"], run.id):
            with pytest.raises(grpc.RpcError) as unknown:
                stub.GetRun(runs_pb2.GetRunRequest(run_id=run.id), metadata=bearer("es_nope"))
            assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_per_token_limit_above_the_total_is_a_config_error() -> None:
    from evalstream_server.config import Config

    with pytest.raises(ValueError, match="max-concurrent-rpcs-per-token"):
        Config(max_concurrent_rpcs=4, max_concurrent_rpcs_per_token=5)
