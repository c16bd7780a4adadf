"""Client targets: parsing, refusals, the service config, and which calls gRPC retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import grpc
import pytest
from evalstream import Client, errors
from evalstream._targets import RETRIED_METHODS, parse_targets
from evalstream.v1 import runs_pb2
from google.protobuf import descriptor_pool


@pytest.mark.parametrize(
    ("given", "channel_target", "balanced"),
    [
        ("localhost:50051", "localhost:50051", False),
        ("  localhost:50051 ", "localhost:50051", False),
        (["10.0.0.1:1"], "10.0.0.1:1", False),
        ("10.0.0.1:1,10.0.0.2:2", "ipv4:10.0.0.1:1,10.0.0.2:2", True),
        (["10.0.0.1:1", " 10.0.0.2:2 "], "ipv4:10.0.0.1:1,10.0.0.2:2", True),
        ("[::1]:1,[fe80::2]:1", "ipv6:[::1]:1,[fe80::2]:1", True),
        ("dns:///evalstream.ml.svc.cluster.local:50051", None, True),
        ("dns:evalstream:50051", None, True),
        ("ipv4:10.0.0.1:1,10.0.0.2:1", None, True),
        ("ipv4:10.0.0.1:1", None, False),
        ("unix:/run/evalstream.sock", None, False),
        ("evalstream.internal", None, False),  # gRPC's default port 443
    ],
)
def test_parse_targets(given, channel_target: str | None, balanced: bool) -> None:
    targets = parse_targets(given)
    assert targets.channel_target == (channel_target or given)
    assert targets.balanced is balanced


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "target is empty"),
        ("   ", "target is empty"),
        ([], "empty list"),
        ("10.0.0.1:1,", r"targets\[1\] is empty"),
        (["10.0.0.1:1", ""], r"targets\[1\] is empty"),
        ("10.0.0.1:1,replica-b:1", r"targets\[1\] 'replica-b:1' is a host name.*dns:///"),
        ("localhost:1,localhost:2", r"targets\[0\] 'localhost:1' is a host name"),
        ("10.0.0.1:1,[::1]:1", r"targets\[1\] '\[::1\]:1' is IPv6 but targets\[0\]"),
        ("10.0.0.1:1,10.0.0.1:1", r"targets\[1\] '10.0.0.1:1' is given twice"),
        ("10.0.0.1:1,10.0.0.2", r"targets\[1\] '10.0.0.2' has no port"),
        ("10.0.0.1:1,10.0.0.2:0", r"targets\[1\] '10.0.0.2:0' is malformed.*1-65535"),
        ("10.0.0.1:1,10.0.0.2:x", r"targets\[1\] '10.0.0.2:x' is malformed"),
        (["10.0.0.1:1", "dns:///b:1"], r"targets\[1\] 'dns:///b:1' carries a scheme"),
        ("localhost:port", r"target 'localhost:port' is malformed"),
        ("http://localhost:50051", r"the scheme http:// is not a gRPC target"),
        ("ipv4:10.0.0.1:1,[::1]:1", r"address \[1\] '\[::1\]:1' is not IPv4"),
        ("ipv4:10.0.0.1:1,name:1", r"address \[1\] 'name:1' is a host name"),
    ],
)
def test_parse_targets_refuses(given, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_targets(given)


def test_client_refuses_bad_targets_before_connecting() -> None:
    with pytest.raises(ValueError, match=r"targets\[1\] 'b:1' is a host name"):
        Client(["10.0.0.1:1", "b:1"])
    with pytest.raises(ValueError, match="tls_server_name needs TLS"):
        Client("localhost:1", tls_server_name="evalstream.internal")


def test_client_target_reads_as_given() -> None:
    with Client(["127.0.0.1:1", "127.0.0.2:1"]) as client:
        assert client.target == "127.0.0.1:1,127.0.0.2:1"


def test_service_config_balances_only_several_addresses() -> None:
    single = json.loads(parse_targets("localhost:50051").service_config())
    several = json.loads(parse_targets("127.0.0.1:1,127.0.0.2:1").service_config())
    assert "loadBalancingConfig" not in single  # gRPC's pick_first, as before
    assert several["loadBalancingConfig"] == [{"round_robin": {}}]
    for config in (single, several):
        (method_config,) = config["methodConfig"]
        assert method_config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
        assert 2 <= method_config["retryPolicy"]["maxAttempts"] <= 5  # gRPC caps it at 5
        names = {(n["service"], n["method"]) for n in method_config["name"]}
        assert names == set(RETRIED_METHODS)


def test_retried_methods_are_the_reads_and_idempotent_writes() -> None:
    pool = descriptor_pool.Default()
    runs = pool.FindServiceByName("evalstream.v1.Runs")
    for service, method in RETRIED_METHODS:
        if service == "evalstream.v1.Runs":
            assert runs.FindMethodByName(method) is not None, method  # no typo'd name
    retried = {m for s, m in RETRIED_METHODS if s == "evalstream.v1.Runs"}
    never = {"CreateRun", "StreamLoss"}  # a new id per attempt; the logger resends itself
    assert not retried & never
    writes = {"SetRunStatus", "UpdateRun", "LogCheckpoint"}
    reads = {m.name for m in runs.methods} - never - writes
    assert retried == reads | writes  # a new read added to the proto must be listed too


class _FlakyRuns:
    """A Runs service answering UNAVAILABLE to the first call of each method, then a reply."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def handler(self, method: str, reply: object):  # type: ignore[no-untyped-def]
        def handle(request, context):  # type: ignore[no-untyped-def]
            with self.lock:
                self.calls[method] = self.calls.get(method, 0) + 1
                first = self.calls[method] == 1
            if first:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the database is unavailable")
            return reply

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=lambda b: b,
            response_serializer=lambda m: m.SerializeToString(),
        )


@pytest.fixture
def flaky() -> Iterator[tuple[str, _FlakyRuns]]:
    from concurrent import futures

    runs = _FlakyRuns()
    run = runs_pb2.Run(id="r1", project="p", name="n")
    handlers = {name: runs.handler(name, run) for name in ("GetRun", "CreateRun", "SetRunStatus")}
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("evalstream.v1.Runs", handlers),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", runs
    finally:
        server.stop(0)


def test_unavailable_is_retried_for_reads_and_idempotent_writes_only(flaky) -> None:
    target, runs = flaky
    with Client(target, timeout=10) as client:
        assert client.get_run("r1").id == "r1"  # the first attempt failed, the retry did not
        assert client.get_run("r1").set_status("running").id == "r1"
        with pytest.raises(errors.Unavailable, match="the database is unavailable"):
            client.create_run("p", "n")  # not retried: a repeat could create a second run
    assert runs.calls == {"GetRun": 3, "SetRunStatus": 2, "CreateRun": 1}  # GetRun: 2 + 1


def test_cli_refuses_a_bad_target_naming_it(capsys) -> None:
    from evalstream.cli import main

    assert main(["--target", "10.0.0.1:50051,replica-b:50051", "health"]) == 2
    assert "targets[1] 'replica-b:50051' is a host name" in capsys.readouterr().err


def test_cli_tls_server_name_reaches_the_client(capsys, monkeypatch) -> None:
    from evalstream.cli import main

    monkeypatch.setenv("EVALSTREAM_TLS_SERVER_NAME", "evalstream.internal")
    assert main(["--target", "127.0.0.1:1,127.0.0.2:1", "health"]) == 2  # no TLS to check it
    assert "tls_server_name needs TLS" in capsys.readouterr().err


def test_async_client_retries_the_same_calls(flaky) -> None:
    import asyncio

    from evalstream import AsyncClient

    target, runs = flaky

    async def calls() -> None:
        async with AsyncClient([target], timeout=10) as client:
            assert (await client.get_run("r1")).id == "r1"
            with pytest.raises(errors.Unavailable):
                await client.create_run("p", "n")

    asyncio.run(calls())
    assert runs.calls == {"GetRun": 2, "CreateRun": 1}


def test_a_dns_target_balances_over_what_the_name_resolves_to(live_server) -> None:
    port = live_server.target.rsplit(":", 1)[1]
    # localhost may resolve to ::1 as well, where this server does not listen: round robin
    # uses the addresses that answer.
    with Client(f"dns:///localhost:{port}", timeout=10) as client:
        run = client.create_run("p", "over-dns")
        run.log_many(list(range(1000)), [float(i) for i in range(1000)])
        run.finish()
        (series,) = client.curves(run.id, series=["loss"])
        assert series.values == tuple(float(i) for i in range(1000))
