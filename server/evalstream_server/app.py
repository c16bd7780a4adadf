"""Wiring: `build_server` assembles a server from config and dependencies; `serve` runs it.

`serve` is the one place that creates dependencies (TGI-style); tests call
`build_server` with port 0 and their own `Deps` to run the real server in-process.

Lifecycle: the health service answers NOT_SERVING until every servicer is
registered and the server has started, then SERVING. On SIGTERM or SIGINT it
flips to NOT_SERVING at once (load balancers stop routing), stops accepting new
RPCs, lets in-flight ones finish for ``--grace-seconds``, cancels the rest, and
exits 0.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import gc
import logging
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeVar

import grpc
from evalstream.v1 import runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from evalstream_server import __version__
from evalstream_server import config as config_module
from evalstream_server.alerts.wiring import start_alerts
from evalstream_server.api._scope import ScopedStore
from evalstream_server.api.runs import RunsLimits, RunsServicer
from evalstream_server.api.scoring import ScoringLimits, ScoringServicer
from evalstream_server.api.text import CpuWorkers, TextLimits, default_workers
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.auth import AuthInterceptor, TokenFileError, TokenTable
from evalstream_server.config import Config, flag_hint
from evalstream_server.limits import HEADROOM, ConcurrencyLimit
from evalstream_server.metrics.text import _memo as text_memo
from evalstream_server.metrics.text.registry import warm_up
from evalstream_server.observability import (
    ObservabilityInterceptor,
    ServiceMetrics,
    configure_logging,
)
from evalstream_server.quality import install_quality_gauges
from evalstream_server.rpc import AdaptingServer, RequestDecoding
from evalstream_server.runtime import fetch_model
from evalstream_server.runtime.bertscore import BertScoreRuntime, BertScoreSettings
from evalstream_server.runtime.device import resolve_device
from evalstream_server.runtime.models import missing_default
from evalstream_server.status import abort
from evalstream_server.store import PostgresStore, SQLiteStore, Store
from evalstream_server.store.postgres import schema as pg_schema
from evalstream_server.store.sqlite import schema as sqlite_schema
from evalstream_server.web._traffic import HttpLimits
from evalstream_server.web.server import WebServer, build_app

log = logging.getLogger("evalstream.server")
T = TypeVar("T")

SCORING_SERVICE = scoring_pb2.DESCRIPTOR.services_by_name["Scoring"].full_name
RUNS_SERVICE = runs_pb2.DESCRIPTOR.services_by_name["Runs"].full_name
SERVICE_NAMES = (SCORING_SERVICE, RUNS_SERVICE)


class Health(health.HealthServicer):
    """grpc.health.v1, whose NOT_FOUND for an unknown service lists the services it knows."""

    def Check(  # noqa: N802
        self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        with self._lock:
            known = sorted(self._server_status)
        if request.service not in known:
            names = ", ".join(name or "'' (the whole server)" for name in known)
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"unknown service {request.service!r}; services: {names}",
            )
        return super().Check(request, context)


@dataclass
class Deps:
    """What the servicers are handed. `Deps.open` builds the defaults; tests may swap parts."""

    store: Store
    bertscore: BertScoreRuntime
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    health: health.HealthServicer = field(
        default_factory=lambda: Health(experimental_non_blocking=True)
    )
    workers: CpuWorkers | None = None
    text_ready: threading.Event = field(default_factory=threading.Event)
    pool: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(
            16, thread_name_prefix="score"
        )
    )

    @classmethod
    def open(cls, config: Config, *, device: str = "cpu") -> Deps:
        """Opens the store (`Config.store_url`: SQLite in the data directory unless
        ``--store`` names another) and starts loading the BERTScore model."""
        config.data_dir.mkdir(parents=True, exist_ok=True)
        bertscore = BertScoreRuntime(
            BertScoreSettings(
                model=config.bertscore_model,
                layer=None if config.bertscore_layer < 0 else config.bertscore_layer,
                dtype=config.bertscore_dtype,
                max_tokens_per_batch=config.bertscore_max_tokens,
                max_delay_seconds=config.bertscore_max_delay_ms / 1000,
                max_queue=config.bertscore_max_queue,
            ),
            device=device,
            model_dir=config.model_dir,
        )
        workers = default_workers() if config.text_workers < 0 else config.text_workers
        metrics = ServiceMetrics()
        deps = cls(
            store=open_store(config, on_commit=metrics.store_commit_seconds.observe),
            metrics=metrics,
            bertscore=bertscore,
            workers=(
                CpuWorkers(workers, cache_bytes=config.text_cache_bytes) if workers >= 1 else None
            ),
        )
        bertscore.start()
        threading.Thread(
            target=_warm_text_metrics, args=(deps.text_ready,), name="warm-up", daemon=True
        ).start()
        return deps

    def close(self) -> None:
        """Stops the batcher and workers, and closes the store (queued writes become durable)."""
        self.bertscore.close()
        if self.workers is not None:
            self.workers.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def open_store(config: Config, *, on_commit: Callable[[float], None] | None = None) -> Store:
    """The store ``config`` names (migrating its schema to this server's version).

    Raises:
        StoreError: it cannot be opened (the message hides a URL's password).
    """
    where = config.store_url
    if where.backend == "postgresql":
        return PostgresStore(where.url, on_commit=on_commit)
    assert where.path is not None  # a sqlite URL always has one
    return SQLiteStore(where.path, on_commit=on_commit, writer=config.store_writer)


def _warm_text_metrics(done: threading.Event) -> None:
    # Imports NLTK, sacrebleu and rouge-score and loads WordNet once, before any
    # stream does: concurrent first imports of NLTK can deadlock on its module locks.
    try:
        for problem in warm_up():
            log.warning("text metric unavailable", extra={"fields": {"problem": problem}})
    finally:
        done.set()


def _freeze_heap(text_ready: threading.Event) -> None:
    """Once the models and WordNet are loaded, moves them out of the collector's sight.

    They are millions of long-lived objects: every full collection would walk them
    all and pause the event loop (and every stream's acks) for that long.
    """
    text_ready.wait()
    gc.collect()
    gc.freeze()
    log.info("heap frozen", extra={"fields": {"objects": gc.get_freeze_count()}})


def load_tokens(config: Config) -> TokenTable | None:
    """The accepted tokens, or None (authentication off, logged loudly).

    Raises:
        RuntimeError: the tokens file is unreadable or malformed.
    """
    try:
        tokens = TokenTable.from_config(config.auth_tokens_file, config.admin_token)
    except TokenFileError as exc:
        raise RuntimeError(str(exc)) from exc
    if tokens is None:
        reason = (
            "--no-auth: every caller may read and write every project"
            if config.no_auth
            else "no tokens configured: authentication is off; loopback only"
        )
        log.warning("AUTHENTICATION IS DISABLED", extra={"fields": {"reason": reason}})
    return tokens


def server_credentials(config: Config) -> grpc.ServerCredentials | None:
    """TLS credentials (client certificates required with a client CA), or None for plaintext.

    Raises:
        RuntimeError: a certificate, key or CA file cannot be read.
    """
    if config.tls_cert is None or config.tls_key is None:
        return None

    def read(path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise RuntimeError(f"cannot read the {what} {path}: {exc.strerror}") from exc

    pair = (read(config.tls_key, "TLS key"), read(config.tls_cert, "TLS certificate"))
    client_ca = (
        read(config.tls_client_ca, "client CA") if config.tls_client_ca is not None else None
    )
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new event loop: ``asyncio``'s, ``uvloop``'s, or ``auto`` (uvloop when installed).

    uvloop runs the loop's own work (scheduling, callbacks, the self-pipe) in C:
    the server's loop thread is GIL-bound under many small streams, and spends
    less of it per message (see the README's Performance section).

    Raises:
        RuntimeError: ``uvloop`` asked for but not installed.
    """
    if kind in ("auto", "uvloop"):
        try:
            import uvloop  # noqa: PLC0415 - optional
        except ImportError as exc:
            if kind == "uvloop":
                raise RuntimeError("--event-loop uvloop: uvloop is not installed") from exc
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


class RunningServer:
    """The asyncio gRPC server, running on an event loop of its own thread.

    `stop` matches ``grpc.Server.stop``: it returns an event set once the server
    has stopped (in-flight calls got ``grace`` seconds, then were cancelled).
    """

    def __init__(self, event_loop: str = "asyncio") -> None:
        self.loop = new_event_loop(event_loop)
        self.server: aio.Server | None = None
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.web: WebServer | None = None  # the HTTP API, when --http-port is not -1
        # Called when stopping begins, e.g. to end the streams that never end by themselves.
        self.on_stop: list[Callable[[], None]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grpc-aio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Runs ``fn()`` on the server's loop and returns its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(_call(fn), self.loop).result()

    def stop(self, grace: float | None) -> threading.Event:
        """Stops accepting calls; cancels those still running after `grace` s."""
        if self._stopped.is_set() or self.server is None:
            self._end()
            return self._stopped
        server = self.server
        for hook in self.on_stop:
            hook()

        async def stop() -> None:
            web = self.web
            if web is None:
                await server.stop(grace)
            else:  # both stop accepting at once, and drain side by side
                await asyncio.gather(server.stop(grace), web.stop())

        future = asyncio.run_coroutine_threadsafe(stop(), self.loop)
        future.add_done_callback(lambda _: self._end())
        return self._stopped

    def _end(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._stopped.set()


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


def build_server(config: Config, deps: Deps) -> tuple[RunningServer, int]:
    """Builds and starts the gRPC server; returns it with the bound port.

    Health is SERVING for the Runs service once this returns, and for "" and
    Scoring once the text metrics (and the BERTScore model, if any) are loaded.

    Security: the tokens configured turn authentication on (`evalstream_server.auth`);
    with none, or with ``--no-auth``, it is off and a WARNING "AUTHENTICATION IS
    DISABLED" is logged. TLS is served when a certificate is configured, and
    client certificates are required when a client CA is.

    Raises:
        RuntimeError: when the address cannot be bound, the tokens file or a TLS
            file cannot be read, the image root is not a directory, or the
            configuration would expose the server (plaintext or unauthenticated
            on a non-loopback host: `Config.exposure_problems`).
    """
    problems = config.exposure_problems() + image_root_problems(config)
    if problems:
        raise RuntimeError("; ".join(problems))
    # This process's text memo; `Deps.open` gave the text workers the same budget.
    text_memo.set_budget(config.text_cache_bytes)
    tokens = load_tokens(config)
    credentials = server_credentials(config)
    running = RunningServer(config.event_loop)
    try:
        port = running.call(lambda: _start(config, deps, tokens, credentials, running))
    except BaseException:
        running.stop(0)
        raise
    return running, port


async def _start(
    config: Config,
    deps: Deps,
    tokens: TokenTable | None,
    credentials: grpc.ServerCredentials | None,
    running: RunningServer,
) -> int:
    message_options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Keep idle training-loop connections alive through NATs and proxies.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.so_reuseport", 0),
    ]
    # Synchronous servicers run here (`rpc.sync_to_async`); StreamLoss runs on the loop.
    handler_pool = futures.ThreadPoolExecutor(
        max_workers=max(config.max_workers, config.max_concurrent_rpcs) + HEADROOM,
        thread_name_prefix="rpc",
    )
    server = aio.server(
        # Observability first (outermost): refused calls are counted and logged too.
        interceptors=[
            ObservabilityInterceptor(deps.metrics),
            RequestDecoding(),
            ConcurrencyLimit(
                config.max_concurrent_rpcs, per_token=config.max_concurrent_rpcs_per_token
            ),
            AuthInterceptor(tokens),
        ],
        options=message_options,
        maximum_concurrent_rpcs=config.max_concurrent_rpcs + HEADROOM,
    )
    running.server = server
    running.pool = handler_pool
    adapting = AdaptingServer(server, handler_pool)
    deps.metrics.watch_batcher(deps.bertscore.stats)
    gauges: dict[str, tuple[str, Callable[[], float]]] = {
        "evalstream_grpc_server_max_concurrent_rpcs": (
            "The concurrency limit (--max-concurrent-rpcs).",
            lambda: config.max_concurrent_rpcs,
        ),
        "evalstream_http_max_in_flight": (
            "The HTTP API's limit of calls in flight (--http-max-in-flight).",
            lambda: config.http_max_in_flight,
        ),
        "evalstream_http_max_streams": (
            "The HTTP API's limit of open Server-Sent Event streams (--http-max-streams).",
            lambda: config.http_max_streams,
        ),
        "evalstream_bertscore_batcher_queue_capacity": (
            "Sentences the BERTScore batcher may hold waiting (--bertscore-max-queue).",
            lambda: config.bertscore_max_queue,
        ),
    }
    if isinstance(deps.store, SQLiteStore):
        sqlite_store = deps.store
        # StreamLoss submits on this loop: with a writer process, the loop also
        # sends the writes and settles their acks (no thread hand-over).
        sqlite_store.attach_loop(asyncio.get_running_loop())
        gauges["evalstream_store_queue_depth"] = (
            "Writes waiting for the store's writer (queued or being committed).",
            lambda: sqlite_store.queue_depth(),
        )
        gauges["evalstream_store_queue_capacity"] = (
            "The most writes that may wait for the store's writer.",
            lambda: sqlite_store.queue_capacity,
        )
        if sqlite_store.writer_restarts() is not None:
            deps.metrics.watch_counters(
                {
                    "evalstream_store_writer_restarts": (
                        "Store writer processes started after the first: each one that "
                        "exited failed its writes in flight with UNAVAILABLE.",
                        lambda: sqlite_store.writer_restarts() or 0,
                    )
                }
            )
    elif isinstance(deps.store, PostgresStore):
        pg_store = deps.store
        gauges["evalstream_store_queue_depth"] = (
            "Writes waiting for the store's writers (queued, not yet being committed).",
            lambda: pg_store.queue_depth(),
        )
        gauges["evalstream_store_queue_capacity"] = (
            "The most writes that may wait for the store's writers.",
            lambda: pg_store.queue_capacity,
        )
    deps.metrics.watch_gauges(gauges)
    verdicts = VerdictHub(deps.store)
    running.on_stop.append(verdicts.close)  # watches end at once, not after the grace period
    stop_alerts = start_alerts(config, deps.store, verdicts, deps.metrics)
    if stop_alerts is not None:
        running.on_stop.append(stop_alerts)  # pending alerts get a short grace
    # Every project's running runs (not `scoped`): /metrics is the operator's view.
    install_quality_gauges(
        deps.metrics,
        deps.store,
        verdicts,
        enabled=config.quality_gauges,
        max_runs=config.quality_gauges_max_runs,
    )
    scoped = ScopedStore(deps.store)  # what servicers see: the caller's projects only
    scoring_pb2_grpc.add_ScoringServicer_to_server(
        ScoringServicer(
            limits=ScoringLimits(
                max_images_per_batch=config.max_images_per_batch,
                max_boxes_per_image=config.max_boxes_per_image,
                image_root_set=config.image_root is not None,
            ),
            metrics=deps.metrics,
            store=scoped,
            bertscore=deps.bertscore,
            text_limits=TextLimits(
                max_pairs_per_batch=config.max_pairs_per_batch,
                max_references=config.max_references_per_pair,
                max_chars=config.max_chars_per_text,
            ),
            pool=deps.pool,
            verdicts=verdicts,
            text_ready=deps.text_ready,
            workers=deps.workers,
        ),
        adapting,
    )
    runs_servicer = RunsServicer(
        store=scoped,
        limits=RunsLimits(
            max_points_per_chunk=config.max_points_per_chunk,
            max_message_bytes=config.max_message_bytes,
            alert_run_webhook_hosts=config.alert_run_webhook_hosts,
        ),
        verdicts=verdicts,
        observe_ack=deps.metrics.ingest_ack_seconds.observe,
        pool=handler_pool,
    )
    runs_pb2_grpc.add_RunsServicer_to_server(runs_servicer, adapting)
    health_pb2_grpc.add_HealthServicer_to_server(deps.health, adapting)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    for name in ("", *SERVICE_NAMES):
        deps.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    cause: RuntimeError | None = None
    try:
        if credentials is None:
            port = server.add_insecure_port(config.address)
        else:
            port = server.add_secure_port(config.address, credentials)
    except RuntimeError as exc:  # grpcio's text names GRPC_VERBOSITY, not the cause
        port, cause = 0, exc
    if port == 0:
        raise RuntimeError(
            f"cannot listen on {config.address}: the address is in use or not available "
            f"(pass {flag_hint('host')} or {flag_hint('port')})"
        ) from cause
    await server.start()
    if config.http_port >= 0:
        # The JSON API answers through the same servicer, threads, tokens and TLS.
        web = WebServer(
            build_app(
                runs_servicer,
                tokens,
                handler_pool,
                secure=config.tls,
                image_root=config.image_root,
                metrics=deps.metrics,
                limits=HttpLimits(
                    max_in_flight=config.http_max_in_flight, max_streams=config.http_max_streams
                ),
            ),
            grace_seconds=config.grace_seconds,
        )
        await web.start(config)
        running.web = web
    # Runs needs nothing more; Scoring (and the server as a whole) serves once
    # the BERTScore model has loaded, or at once when BERTScore is disabled.
    deps.health.set(RUNS_SERVICE, health_pb2.HealthCheckResponse.SERVING)

    def serving() -> None:
        deps.text_ready.wait()
        for name in ("", SCORING_SERVICE):
            deps.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("ready", extra={"fields": {"bertscore": deps.bertscore.state}})

    def settled(state: str) -> None:
        if state in ("ready", "disabled"):
            threading.Thread(target=serving, name="scoring-ready", daemon=True).start()

    deps.bertscore.on_settled(settled)
    return port


def _busy(host: str, port: int) -> bool:
    """True when `port` on `host` is taken: bound here and released at once."""
    if port <= 0:
        return False
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return False  # the real bind reports the bad host
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As a listening server would (TIME_WAIT sockets do not count).
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def port_problems(config: Config) -> list[str]:
    """Ports another process holds, said before anything loads (what `make serve` twice meets)."""
    problems = []
    if _busy(config.host, config.port):
        problems.append(
            f"cannot listen on {config.address}: the port is in use (is another "
            f"evalstream-server running? stop it, or pass {flag_hint('port')})"
        )
    if _busy(config.host, config.http_port):
        problems.append(
            f"cannot serve HTTP on {config.host}:{config.http_port}: the port is in use "
            f"(pass {flag_hint('http_port')}, or -1 to turn HTTP off)"
        )
    if _busy(config.metrics_host, config.metrics_port):
        problems.append(
            f"cannot serve metrics on {config.metrics_host}:{config.metrics_port}: the port is "
            f"in use (pass {flag_hint('metrics_port')}, or -1 to turn metrics off)"
        )
    return problems


def image_root_problems(config: Config) -> list[str]:
    """The image root, when set, must be an existing directory (the server never reads it)."""
    root = config.image_root
    if root is None or root.is_dir():
        return []
    what = "is not a directory" if root.exists() else "does not exist"
    return [f"the image root {str(root)!r} {what}: create it, or fix {flag_hint('image_root')}"]


def serve(config: Config, *, stop: threading.Event | None = None) -> int:
    """Runs the server until SIGTERM/SIGINT (or `stop`), then drains. Returns the exit code."""
    stop = stop or threading.Event()
    # Before loading anything.
    problems = config.exposure_problems() + image_root_problems(config) + port_problems(config)
    missing = missing_default(config.bertscore_model, config.model_dir)
    if missing is not None:
        problems.append(missing)
    if problems:
        log.error("start failed", extra={"fields": {"error": "; ".join(problems)}})
        return 1
    try:
        device = resolve_device(config.device)
    except ValueError as exc:
        log.error("start failed", extra={"fields": {"error": str(exc)}})
        return 1
    try:
        deps = Deps.open(config, device=device)
    except Exception as exc:  # noqa: BLE001 - reported, then exit 1
        log.error("start failed", extra={"fields": {"error": f"cannot open the store: {exc}"}})
        return 1
    metrics_server = None
    if config.metrics_port >= 0:
        try:
            metrics_server, metrics_port = deps.metrics.serve_http(
                config.metrics_host, config.metrics_port
            )
        except OSError as exc:  # taken since port_problems looked
            error = f"cannot serve metrics on {config.metrics_host}:{config.metrics_port}: {exc}"
            log.error("start failed", extra={"fields": {"error": error}})
            deps.close()
            return 1
        log.info(
            "metrics",
            extra={"fields": {"url": f"http://{config.metrics_host}:{metrics_port}/metrics"}},
        )
    try:
        server, port = build_server(config, deps)
    except RuntimeError as exc:
        log.error("start failed", extra={"fields": {"error": str(exc)}})
        deps.close()
        return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    if server.web is not None:
        scheme = "https" if config.tls else "http"
        host = f"[{config.host}]" if ":" in config.host.strip("[]") else config.host
        base = f"{scheme}://{host}:{server.web.port}"
        log.info("http", extra={"fields": {"url": f"{base}/api/v1/", "views": f"{base}/"}})
    log.info(
        "serving",
        extra={
            "fields": {
                "version": __version__,
                "address": f"{config.host}:{port}",
                "data_dir": str(config.data_dir),
                "store": str(config.store_url),
                "device": device,
                "tls": config.tls,
                "mtls": config.tls_client_ca is not None,
                "auth": "tokens" if config.tokens_configured else "off",
                "event_loop": type(server.loop).__module__.split(".")[0],
            }
        },
    )
    failed = threading.Event()

    def model_settled(state: str) -> None:
        if state == "failed":
            failed.set()
            stop.set()

    deps.bertscore.on_settled(model_settled)
    deps.bertscore.on_settled(
        lambda state: threading.Thread(
            target=_freeze_heap, args=(deps.text_ready,), name="gc-freeze", daemon=True
        ).start()
    )
    # Event.wait without a timeout is not interruptible on every platform: poll.
    while not stop.wait(0.5):
        pass
    deps.health.enter_graceful_shutdown()
    log.info("draining", extra={"fields": {"grace_seconds": config.grace_seconds}})
    # grpcio can fail to finish stop() after a request that did not deserialize:
    # wait for the grace period and a little more, then go on shutting down.
    server.stop(config.grace_seconds).wait(config.grace_seconds + 5)
    deps.close()
    if metrics_server is not None:
        metrics_server.shutdown()
    log.info("stopped")
    return 1 if failed.is_set() else 0


def migrate_main(argv: Sequence[str]) -> int:
    """``evalstream-server migrate``: brings the store's schema to this version, then exits.

    The same flags and variables as the server (``--store``, ``--data-dir``); the
    server migrates on start too, so this is for upgrading before replicas start
    (each step runs once, under a lock, however many run it at once).
    """
    config = config_module.load(argv, prog="evalstream-server migrate")
    configure_logging(config.log_level)
    where = config.store_url
    try:
        if where.backend == "postgresql":
            old, new = pg_schema.migrate_url(where.url)
        else:
            assert where.path is not None  # a sqlite URL always has one
            old, new = sqlite_schema.migrate_path(where.path)
    except Exception as exc:  # noqa: BLE001 - reported, then exit 1
        log.error("migrate failed", extra={"fields": {"store": str(where), "error": str(exc)}})
        return 1
    log.info(
        "migrated",
        extra={"fields": {"store": str(where), "from_version": old, "version": new}},
    )
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console script ``evalstream-server`` (and its ``fetch-model`` and ``migrate``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["fetch-model"]:
        sys.exit(fetch_model.main(argv[1:]))
    if argv[:1] == ["migrate"]:
        sys.exit(migrate_main(argv[1:]))
    config = config_module.load(argv)
    configure_logging(config.log_level)
    sys.exit(serve(config))


if __name__ == "__main__":
    main()
