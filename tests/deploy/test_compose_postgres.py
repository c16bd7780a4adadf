"""docker-compose.yml's `postgres` profile and deploy/envoy: they agree with the server.

There is no Docker daemon or Envoy binary in CI, so the files are parsed and
checked against the server's flag table, its health services and the proto:
the replicas' command and variables load into a valid Config on a PostgreSQL
store that is the compose `postgres` service; Envoy's clusters name the replicas
and the ports they serve; its gRPC cluster speaks HTTP/2 and checks
grpc.health.v1; it retries only read-only unary methods; streams are not cut
short. The default stack (no profile) keeps its services. `problems` returns what
is wrong; `test_each_check_catches` breaks a copy once per check.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from evalstream.v1 import runs_pb2, scoring_pb2
from evalstream_server import config as server_config
from evalstream_server.app import SERVICE_NAMES

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENVOY = ROOT / "deploy" / "envoy" / "envoy.yaml"
PROFILE = "postgres"
#: The stack `docker compose up` starts without a profile.
DEFAULT_SERVICES = {"evalstream", "prometheus", "grafana"}
#: Streams (StreamLoss, WatchVerdict) may be quiet this long between messages.
MIN_STREAM_IDLE_SECONDS = 600
HEALTH_SERVICES = {"", *SERVICE_NAMES}

Files = dict[str, Any]


def load() -> Files:
    return {
        "compose": yaml.safe_load(COMPOSE.read_text()),
        "envoy": yaml.safe_load(ENVOY.read_text()),
    }


def interpolate(value: str) -> str:
    """Compose's ``${NAME:-default}`` with its default (the environment is not read)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", duration)
    if not match:
        raise AssertionError(f"not a duration in seconds: {duration!r}")
    return float(match.group(1))


def _methods() -> dict[str, Any]:
    """Every RPC by its path, ``/package.Service/Method``."""
    methods = {}
    for module in (runs_pb2, scoring_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                methods[f"/{service.full_name}/{method.name}"] = method
    return methods


def _managers(envoy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each listener's HTTP connection manager, by listener name."""
    return {
        listener["name"]: listener["filter_chains"][0]["filters"][0]["typed_config"]
        for listener in envoy["static_resources"]["listeners"]
    }


def problems(files: Files) -> list[str]:  # noqa: C901, PLR0912
    """What is wrong, one message each; empty when compose, Envoy and the server agree."""
    found: list[str] = []
    services = files["compose"]["services"]
    envoy = files["envoy"]
    default = {name for name, svc in services.items() if not svc.get("profiles")}
    if default != DEFAULT_SERVICES:
        found.append(f"default stack: services {sorted(default)}, not {sorted(DEFAULT_SERVICES)}")
    profiled = {name for name, svc in services.items() if PROFILE in svc.get("profiles", [])}
    postgres = services.get("postgres", {})
    if "postgres" not in profiled:
        found.append("profile postgres: no postgres service")
    if not re.fullmatch(r"postgres:\d+\.\d+\S*", postgres.get("image", "")):
        found.append(f"postgres: image {postgres.get('image')!r} is not a pinned postgres tag")
    if "pg_isready" not in postgres.get("healthcheck", {}).get("test", []):
        found.append("postgres: no pg_isready healthcheck")
    if not any(v.endswith(":/var/lib/postgresql/data") for v in postgres.get("volumes", [])):
        found.append("postgres: its data directory is not on a volume")
    pg_env = {k: interpolate(str(v)) for k, v in postgres.get("environment", {}).items()}

    known_vars = {server_config.env_name(flag) for flag, *_ in server_config._FLAGS}
    replicas = {}
    for name in sorted(profiled):
        svc = services[name]
        if svc.get("command", [None])[0] != "evalstream-server":
            continue
        env = {k: interpolate(str(v)) for k, v in svc.get("environment", {}).items()}
        # The server ignores variables it does not know: a misspelt one would be lost.
        for variable in sorted(set(env) - known_vars):
            if variable.startswith("EVALSTREAM_"):
                found.append(f"{name}: env {variable} is not a server variable")
        try:
            config = server_config.load(svc["command"][1:], env)
        except SystemExit:
            found.append(f"{name}: the server refuses its command and variables")
            continue
        replicas[name] = config
        url = urlsplit(str(config.store))
        if config.store_url.backend != "postgresql":
            found.append(f"{name}: store is not PostgreSQL")
        elif (url.hostname, url.port or 5432) != ("postgres", 5432):
            found.append(
                f"{name}: store host {url.hostname}:{url.port} is not the postgres service"
            )
        elif (url.username, url.password, url.path.lstrip("/")) != (
            pg_env.get("POSTGRES_USER"),
            pg_env.get("POSTGRES_PASSWORD"),
            pg_env.get("POSTGRES_DB"),
        ):
            found.append(f"{name}: store user, password or database is not the postgres service's")
        depends = svc.get("depends_on", {})
        condition = (
            depends.get("postgres", {}).get("condition") if isinstance(depends, dict) else None
        )
        if condition != "service_healthy":
            found.append(f"{name}: does not wait for postgres to be healthy")
        if config.exposure_problems():
            found.append(f"{name}: the server would refuse to start: {config.exposure_problems()}")
    if len(replicas) < 2:
        found.append(f"profile postgres: {len(replicas)} evalstream replicas, not 2")

    proxy = services.get("envoy", {})
    if not re.fullmatch(r"envoyproxy/envoy:v\d+\.\d+\.\d+", proxy.get("image", "")):
        found.append(f"envoy: image {proxy.get('image')!r} is not a pinned release")
    mounts = dict(v.rsplit(":", 2)[:2] for v in proxy.get("volumes", []))
    command = proxy.get("command", [])
    config_path = command[command.index("--config-path") + 1] if "--config-path" in command else ""
    if mounts.get("./deploy/envoy") != str(Path(config_path).parent):
        found.append(f"envoy: {config_path!r} is not deploy/envoy/{ENVOY.name} mounted")

    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    managers = _managers(envoy)
    listeners = {
        listener["name"]: listener["address"]["socket_address"]["port_value"]
        for listener in envoy["static_resources"]["listeners"]
    }
    published = {int(p.rsplit(":", 1)[1]) for p in proxy.get("ports", [])}
    for name, port in listeners.items():
        if port not in published:
            found.append(f"envoy: listener {name} port {port} is not published")
    for cluster_name, port_of in (
        ("evalstream-grpc", lambda c: c.port),
        ("evalstream-http", lambda c: c.http_port),
    ):
        cluster = clusters.get(cluster_name)
        if cluster is None:
            found.append(f"envoy: no cluster {cluster_name}")
            continue
        endpoints = {
            (e["endpoint"]["address"]["socket_address"]["address"],
             e["endpoint"]["address"]["socket_address"]["port_value"])
            for group in cluster["load_assignment"]["endpoints"]
            for e in group["lb_endpoints"]
        }  # fmt: skip
        expected = {(name, port_of(config)) for name, config in replicas.items()}
        if endpoints != expected:
            found.append(f"envoy: cluster {cluster_name} endpoints {sorted(endpoints)}, "
                         f"not the replicas' {sorted(expected)}")  # fmt: skip
        if cluster.get("lb_policy") != "ROUND_ROBIN":
            found.append(f"envoy: cluster {cluster_name} is not round robin")
    grpc = clusters.get("evalstream-grpc", {})
    options = grpc.get("typed_extension_protocol_options", {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {}
    )
    if "http2_protocol_options" not in options.get("explicit_http_config", {}):
        found.append("envoy: cluster evalstream-grpc does not speak HTTP/2 upstream")
    checks = [c.get("grpc_health_check") for c in grpc.get("health_checks", [])]
    if not checks or checks[0] is None:
        found.append("envoy: cluster evalstream-grpc has no grpc.health.v1 check")
    elif checks[0].get("service_name", "") not in HEALTH_SERVICES:
        found.append(f"envoy: health check service {checks[0]['service_name']!r} is unknown")

    methods = _methods()
    for listener, manager in managers.items():
        if _seconds(manager.get("stream_idle_timeout", "300s")) < MIN_STREAM_IDLE_SECONDS:
            found.append(f"envoy: listener {listener} cuts streams idle for less than "
                         f"{MIN_STREAM_IDLE_SECONDS} s")  # fmt: skip
        for host in manager["route_config"]["virtual_hosts"]:
            for route in host["routes"]:
                action = route["route"]
                if _seconds(action.get("timeout", "15s")) != 0:
                    found.append(f"envoy: listener {listener} has a route timeout "
                                 f"{action.get('timeout', '15s (the default)')}")  # fmt: skip
                if "retry_policy" not in action:
                    continue
                pattern = route["match"].get("safe_regex", {}).get("regex")
                if pattern is None:
                    found.append(f"envoy: listener {listener} retries a route that is not "
                                 "a list of methods")  # fmt: skip
                    continue
                retried = [path for path in methods if re.fullmatch(pattern, path)]
                if not retried:
                    found.append(f"envoy: retry route {pattern!r} matches no method")
                for path in retried:
                    method = methods[path]
                    name = path.rsplit("/", 1)[1]
                    safe = name.startswith(("Get", "List", "Compare"))
                    if method.client_streaming or method.server_streaming or not safe:
                        found.append(f"envoy: retries {path}, which is not a read-only unary call")
                if "unavailable" not in action["retry_policy"]["retry_on"].split(","):
                    found.append("envoy: the retry policy does not retry UNAVAILABLE")
    return found


def test_compose_postgres_profile_and_envoy_agree_with_the_server() -> None:
    assert problems(load()) == []


def test_the_default_stack_is_unchanged() -> None:
    services = load()["compose"]["services"]
    # Each default service as it was before the profile: the profile only adds.
    assert services["evalstream"]["ports"] == [
        "127.0.0.1:50051:50051",
        "127.0.0.1:8080:8080",
        "127.0.0.1:9464:9464",
    ]
    assert services["prometheus"]["depends_on"] == ["evalstream"]
    assert services["grafana"]["depends_on"] == ["prometheus"]
    published = [p.rsplit(":", 2)[-2] for svc in services.values() for p in svc.get("ports", [])]
    assert len(published) == len(set(published)), f"a host port is published twice: {published}"


def _svc(files: Files, name: str) -> dict[str, Any]:
    return files["compose"]["services"][name]


def _cluster(files: Files, name: str) -> dict[str, Any]:
    return next(c for c in files["envoy"]["static_resources"]["clusters"] if c["name"] == name)


def _first_endpoint(files: Files, cluster: str) -> dict[str, Any]:
    group = _cluster(files, cluster)["load_assignment"]["endpoints"][0]
    return group["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]


def _grpc_routes(files: Files) -> list[dict[str, Any]]:
    return _managers(files["envoy"])["grpc"]["route_config"]["virtual_hosts"][0]["routes"]


def _set_regex(files: Files, regex: str) -> None:
    _grpc_routes(files)[0]["match"]["safe_regex"]["regex"] = regex


BREAKAGES: list[tuple[str, Callable[[Files], None], str]] = [
    (
        "default_gains_a_service",
        lambda f: _svc(f, "postgres").pop("profiles"),
        "default stack",
    ),
    ("unpinned_postgres", lambda f: _svc(f, "postgres").__setitem__("image", "postgres"), "pinned"),
    ("no_pg_healthcheck", lambda f: _svc(f, "postgres").pop("healthcheck"), "pg_isready"),
    (
        "unknown_flag",
        lambda f: _svc(f, "evalstream-b").__setitem__(
            "command", ["evalstream-server", "--storage"]
        ),
        "evalstream-b: the server refuses",
    ),
    (
        "unknown_variable",
        lambda f: _svc(f, "evalstream-a")["environment"].__setitem__("EVALSTREAM_NOAUTH", "1"),
        "env EVALSTREAM_NOAUTH is not a server variable",
    ),
    (
        "store_host",
        lambda f: _svc(f, "evalstream-a")["environment"].__setitem__(
            "EVALSTREAM_STORE", "postgresql://evalstream:evalstream@db:5432/evalstream"
        ),
        "not the postgres service",
    ),
    (
        "store_password",
        lambda f: _svc(f, "postgres")["environment"].__setitem__("POSTGRES_PASSWORD", "other"),
        "user, password or database",
    ),
    (
        "not_healthy",
        lambda f: _svc(f, "evalstream-a").__setitem__("depends_on", ["postgres"]),
        "healthy",
    ),
    (
        "one_replica",
        lambda f: f["compose"]["services"].pop("evalstream-b"),
        "1 evalstream replicas",
    ),
    (
        "endpoint_port",
        lambda f: _first_endpoint(f, "evalstream-grpc").__setitem__("port_value", 50052),
        "cluster evalstream-grpc endpoints",
    ),
    (
        "endpoint_host",
        lambda f: _first_endpoint(f, "evalstream-http").__setitem__("address", "evalstream"),
        "cluster evalstream-http endpoints",
    ),
    (
        "http1_upstream",
        lambda f: _cluster(f, "evalstream-grpc").pop("typed_extension_protocol_options"),
        "HTTP/2",
    ),
    (
        "no_health_check",
        lambda f: _cluster(f, "evalstream-grpc").pop("health_checks"),
        "grpc.health",
    ),
    (
        "random_lb",
        lambda f: _cluster(f, "evalstream-grpc").__setitem__("lb_policy", "RANDOM"),
        "round robin",
    ),
    (
        "short_idle",
        lambda f: _managers(f["envoy"])["grpc"].__setitem__("stream_idle_timeout", "300s"),
        "idle",
    ),
    ("route_timeout", lambda f: _grpc_routes(f)[1]["route"].pop("timeout"), "route timeout"),
    (
        "retries_a_write",
        lambda f: _set_regex(f, "^/evalstream\\.v1\\.Runs/(GetRun|CreateRun)$"),
        "CreateRun",
    ),  # fmt: skip
    (
        "retries_a_stream",
        lambda f: _set_regex(f, "^/evalstream\\.v1\\.Runs/WatchVerdict$"),
        "WatchVerdict",
    ),  # fmt: skip
    (
        "retries_everything",
        lambda f: _grpc_routes(f)[1]["route"].__setitem__(
            "retry_policy", {"retry_on": "unavailable"}
        ),
        "not a list of methods",
    ),
    (
        "unpublished",
        lambda f: _svc(f, "envoy")["ports"].pop(0),
        "listener grpc port 50051 is not published",
    ),
    (
        "config_not_mounted",
        lambda f: _svc(f, "envoy").__setitem__("volumes", ["./deploy/envoy:/etc/proxy:ro"]),
        "is not deploy/envoy",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(mutate, expected, id=name) for name, mutate, expected in BREAKAGES],
)
def test_each_check_catches(mutate: Callable[[Files], None], expected: str) -> None:
    broken = copy.deepcopy(load())
    mutate(broken)
    found = problems(broken)
    assert any(expected in message for message in found), found
