"""Shared fixtures: a real server in-process on port 0, and one as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from evalstream_server.app import Deps, build_server
from evalstream_server.config import Config

# Re-exported: tests import these from here.
from tests.pgcluster import (  # noqa: F401
    PG_INSTALL_HINT,
    PG_TEMPLATE,
    PgCluster,
    pg_bin_dir,
    pg_unavailable,
)

TINY_BERT_LAYER = 2


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster for the whole session (tests/pgcluster.py); skips without one."""
    pg_skip_or_fail()
    cluster = PgCluster()
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The URL of a fresh, migrated database of the session's cluster."""
    return pg_cluster.new_database()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer, 32-wide random BERT with a WordPiece tokenizer, max length 32 (no hub)."""
    from evalstream_server.runtime.models import write_tiny_bert

    return write_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@dataclass
class LiveServer:
    target: str
    deps: Deps
    server: grpc.Server
    config: Config


@pytest.fixture
def store_backend() -> str:
    """The store `live_server` runs on: "sqlite". A test module that overrides this
    fixture with ``params=["sqlite", "postgres"]`` runs its tests on both."""
    return "sqlite"


@pytest.fixture
def live_server(
    tmp_path: Path, request: pytest.FixtureRequest, store_backend: str
) -> Iterator[LiveServer]:
    """An in-process server on a free port, BERTScore off, on the `store_backend` store.

    Parametrize indirectly with Config overrides.
    """
    overrides = {"bertscore_model": "none", "text_workers": 0, **getattr(request, "param", {})}
    if store_backend == "postgres":
        overrides["store"] = request.getfixturevalue("pg_url")
    yield from _live(tmp_path, overrides)


@pytest.fixture
def text_server(tmp_path: Path, tiny_bert_dir: Path) -> Iterator[LiveServer]:
    """An in-process server whose BERTScore model is the tiny random BERT, ready to score."""
    yield from _live(
        tmp_path,
        {
            "bertscore_model": str(tiny_bert_dir),
            "bertscore_layer": TINY_BERT_LAYER,
            "text_workers": 0,
        },
    )


def _live(tmp_path: Path, overrides: dict[str, object]) -> Iterator[LiveServer]:
    # No HTTP unless a test asks (http_port=0): never the default 8080 another test may hold.
    overrides = {"http_port": -1, **overrides}
    config = Config(port=0, metrics_port=-1, data_dir=tmp_path, **overrides)  # type: ignore[arg-type]
    deps = Deps.open(config)
    if config.bertscore_model != "none" and not deps.bertscore.wait(120):
        deps.close()
        pytest.fail(f"BERTScore model did not load: {deps.bertscore.error}")
    server, port = build_server(config, deps)
    wait_serving(f"127.0.0.1:{port}", time.monotonic() + 120)
    try:
        yield LiveServer(f"127.0.0.1:{port}", deps, server, config)
    finally:
        server.stop(0).wait()
        deps.close()


@dataclass
class ServerProcess:
    """`evalstream-server` as a child process; its stderr JSON lines are collected."""

    proc: subprocess.Popen[str]
    target: str = ""
    metrics_url: str = ""
    http_url: str = ""  # the JSON API's base URL, when started with an HTTP port
    lines: list[dict[str, object]] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


def _reader(sp: ServerProcess, ready: threading.Event) -> None:
    assert sp.proc.stderr is not None
    for line in sp.proc.stderr:
        sp.raw.append(line)
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        sp.lines.append(entry)
        if entry.get("msg") == "metrics":
            sp.metrics_url = str(entry["url"])
        if entry.get("msg") == "http":
            sp.http_url = str(entry["url"])
        if entry.get("msg") == "serving":
            sp.target = str(entry["address"])
            ready.set()
    ready.set()


def start_server(
    data_dir: Path,
    *,
    port: int = 0,
    http_port: int = -1,
    extra: tuple[str, ...] = ("--bertscore-model", "none", "--text-workers", "0"),
) -> ServerProcess:
    """Starts `evalstream-server` and waits until it serves (fails the test otherwise).

    HTTP is off unless `http_port` is given (0: a free port, in ``sp.http_url``).
    """
    exe = Path(sys.executable).with_name("evalstream-server")
    env = {**os.environ, "EVALSTREAM_GRACE_SECONDS": "20"}
    proc = subprocess.Popen(
        [str(exe), "--port", str(port), "--metrics-port", "0", "--http-port", str(http_port)]
        + ["--data-dir", str(data_dir), *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    sp = ServerProcess(proc)
    ready = threading.Event()
    threading.Thread(target=_reader, args=(sp, ready), daemon=True).start()
    deadline = time.monotonic() + 120
    while not ready.wait(0.1):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("server did not start within 60 s")
    if not sp.target:
        proc.wait(5)
        pytest.fail("server exited before serving:\n" + "".join(sp.raw))
    wait_serving(sp.target, deadline)
    return sp


def wait_serving(target: str, deadline: float) -> None:
    """Waits until the whole server's health is SERVING (models and text metrics loaded)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    pytest.fail(f"server at {target} did not turn SERVING in time")


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a server's: the store's writer process)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """`evalstream-server` on free ports, killed at the end if still running."""
    sp = start_server(tmp_path / "data")
    try:
        yield sp
    finally:
        if sp.proc.poll() is None:
            sp.proc.send_signal(signal.SIGKILL)
            sp.proc.wait(10)


def scrape_metrics(live_server) -> str:  # type: ignore[no-untyped-def]
    """A live server's /metrics body after a few RPCs, so that the labelled series exist.

    Health, a run with a training and a validation point, and one ScoreBoxes batch.
    """
    from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(live_server.target) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        runs = runs_pb2_grpc.RunsStub(channel)
        run = runs.CreateRun(runs_pb2.CreateRunRequest(project="p", name="m"), timeout=10)
        chunks = [
            runs_pb2.LossChunk(
                sequence=i, run_id=run.id, split=split, series="loss", steps=[1], values=[0.5]
            )
            for i, split in enumerate((common_pb2.SPLIT_TRAIN, common_pb2.SPLIT_VALIDATION))
        ]
        list(runs.StreamLoss(iter(chunks), timeout=10))
        box = scoring_pb2.Box(x1=0, y1=0, x2=1, y2=1, label="a", confidence=0.5)
        batch = scoring_pb2.BoxBatch(
            images=[scoring_pb2.ImageBoxes(image_id="i", predictions=[box], ground_truth=[box])]
        )
        list(scoring_pb2_grpc.ScoringStub(channel).ScoreBoxes(iter([batch]), timeout=10))
    http, port = live_server.deps.metrics.serve_http("127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            return reply.read().decode()
    finally:
        http.shutdown()


# ---------------------------------------------------------------- PostgreSQL
#
# The cluster starter lives in tests/pgcluster.py (the benches start theirs from it
# too); its names are re-exported here for the tests that import them from conftest.


def pg_skip_or_fail() -> None:
    """Skips the calling test without PostgreSQL (fails it under EVALSTREAM_REQUIRE_POSTGRES=1)."""
    reason = pg_unavailable()
    if reason is None:
        return
    if os.environ.get("EVALSTREAM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"EVALSTREAM_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)
