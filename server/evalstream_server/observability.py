"""Prometheus metrics, structured logs, and the interceptor that feeds both.

Metric names follow go-grpc-prometheus under the ``evalstream_`` prefix, so gRPC
dashboards carry over; each server owns its registry (no module-level state). An RPC logs
one JSON line when it ends (method, code, duration, peer), never payloads or metadata.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import prometheus_client
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from evalstream_server.logs import JsonFormatter, configure_logging
from evalstream_server.rpc import behavior, kind, rebuild

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    1800,
)


class ServiceMetrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ("grpc_service", "grpc_method", "grpc_type")
        self.started = Counter(
            "evalstream_grpc_server_started_total",
            "RPCs started on the server.",
            labels,
            registry=r,
        )
        self.handled = Counter(
            "evalstream_grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*labels, "grpc_code"),
            registry=r,
        )
        self.handling_seconds = Histogram(
            "evalstream_grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, in seconds.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.msg_received = Counter(
            "evalstream_grpc_server_msg_received_total",
            "Messages received from clients (every message of a stream).",
            labels,
            registry=r,
        )
        self.msg_sent = Counter(
            "evalstream_grpc_server_msg_sent_total",
            "Messages sent to clients (every message of a stream).",
            labels,
            registry=r,
        )
        self.in_flight = Gauge(
            "evalstream_grpc_server_in_flight",
            "RPCs in progress (streams count while open).",
            labels,
            registry=r,
        )
        self.items_scored = Counter(
            "evalstream_items_scored_total",
            "Items scored, by metric family (boxes: boxes; box_images: images; text: pairs).",
            ("family",),
            registry=r,
        )
        self.store_commit_seconds = Histogram(
            "evalstream_store_commit_seconds",
            "One store write transaction, BEGIN to COMMIT (the WAL fsync included), in seconds.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_ack_seconds = Histogram(
            "evalstream_ingest_ack_seconds",
            "A loss chunk received to its ack sent (durable), in seconds.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.alerts_sent = Counter(
            "evalstream_alerts_sent_total",
            "Alert webhook POSTs delivered (answered 2xx), by payload format (json, slack).",
            ("format",),
            registry=r,
        )
        self.alerts_failed = Counter(
            "evalstream_alerts_failed_total",
            "Alerts given up on, by reason (network, timeout, http_4xx, http_429, http_5xx, "
            "shutdown, error).",
            ("reason",),
            registry=r,
        )
        self.alerts_dropped = Counter(
            "evalstream_alerts_dropped_total",
            "Alerts dropped because the delivery queue was full (--alert-max-queue).",
            registry=r,
        )
        self.alerts_retried = Counter(
            "evalstream_alerts_retried_total",
            "Alert POSTs tried again after a network error, a timeout, 5xx or 429.",
            registry=r,
        )
        # The HTTP API (evalstream_server.web): by route template, never the raw path.
        self.http_requests = Counter(
            "evalstream_http_requests_total",
            "HTTP requests answered, by route template, method and status code.",
            ("route", "method", "code"),
            registry=r,
        )
        self.http_request_seconds = Histogram(
            "evalstream_http_request_seconds",
            "Time from an HTTP request to the end of its answer (a stream's whole life), "
            "in seconds.",
            ("route",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.http_in_flight = Gauge(
            "evalstream_http_in_flight",
            "JSON API calls in progress, downloads included (--http-max-in-flight).",
            registry=r,
        )
        self.http_streams_open = Gauge(
            "evalstream_http_streams_open",
            "Server-Sent Event streams open (--http-max-streams).",
            registry=r,
        )
        prometheus_client.ProcessCollector(registry=r)
        prometheus_client.PlatformCollector(registry=r)

    def watch_batcher(self, stats: Callable[[], Any]) -> None:
        """Exports the BERTScore batcher's counters, read at each scrape.

        `stats` returns a BatcherStats-like object (or None before the model loads).
        """
        self.registry.register(_BatcherCollector(stats))

    def watch_gauges(self, gauges: dict[str, tuple[str, Callable[[], float]]]) -> None:
        """Exports gauges read at each scrape: name -> (help, read)."""
        self.registry.register(_ReadCollector(gauges, counters=False))

    def watch_counters(self, counters: dict[str, tuple[str, Callable[[], float]]]) -> None:
        """Exports counters read at each scrape: name (without ``_total``) -> (help, read)."""
        self.registry.register(_ReadCollector(counters, counters=True))

    def serve_http(self, host: str, port: int) -> tuple[Any, int]:
        """Starts the /metrics endpoint; returns (http server, bound port)."""
        server, _thread = prometheus_client.start_http_server(
            port, addr=host, registry=self.registry
        )
        return server, server.server_port


_BATCHER_GAUGES = {
    "queue_depth": "Distinct sentences waiting for the BERTScore batcher.",
    "inflight": "Distinct sentences in the batcher's current forward pass.",
}
_BATCHER_COUNTERS = {
    "batches_run": "BERTScore forward passes that succeeded.",
    "sentences_embedded": "Sentences embedded by the BERTScore model.",
    "padded_tokens": "Padded tokens run through the model (batch size x longest sentence).",
    "truncated": "Sentences cut to the model's maximum length.",
    "oom_retries": "Batches halved and retried after an out-of-memory error.",
    "dedup_hits": "Sentences that joined an identical one already queued or running.",
    "cache_hits": "Sentences answered from the embedding cache.",
    "cancelled_dropped": "Sentences dropped because every caller had cancelled.",
    "rejected": "Sentences refused because the batcher queue was full.",
    "failed": "Sentences whose embedding failed.",
}


class _ReadCollector:
    """Gauges or counters whose values are read at scrape time."""

    def __init__(
        self, metrics: dict[str, tuple[str, Callable[[], float]]], *, counters: bool
    ) -> None:
        self._metrics = metrics
        self._family = CounterMetricFamily if counters else GaugeMetricFamily

    def collect(self) -> Iterator[Any]:
        for name, (doc, read) in self._metrics.items():
            yield self._family(name, doc, value=read())


class _BatcherCollector:
    """Reads the batcher's counters at scrape time (no polling thread)."""

    def __init__(self, stats: Callable[[], Any]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        current = self._stats()
        for name, doc in _BATCHER_GAUGES.items():
            yield GaugeMetricFamily(
                f"evalstream_bertscore_batcher_{name}",
                doc,
                value=getattr(current, name, 0) if current else 0,
            )
        for name, doc in _BATCHER_COUNTERS.items():
            yield CounterMetricFamily(
                f"evalstream_bertscore_batcher_{name}",
                doc,
                value=getattr(current, name, 0) if current else 0,
            )


# ------------------------------------------------------------------ interceptor

_log = logging.getLogger("evalstream.rpc")


def _split_method(full: str) -> tuple[str, str]:
    # "/evalstream.v1.Scoring/ScoreBoxes" -> ("evalstream.v1.Scoring", "ScoreBoxes")
    _, service, method = full.split("/", 2)
    return service, method


class ObservabilityInterceptor(aio.ServerInterceptor):
    """Counts, times and logs every RPC, streams included."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        full = handler_call_details.method
        try:
            service, method = _split_method(full)
        except ValueError:
            return handler
        inner = behavior(handler)
        labels = (service, method, kind(handler))
        m = self._metrics

        async def count_in(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            received = m.msg_received.labels(*labels)
            async for request in requests:
                received.inc()
                yield request

        def finish(
            context: aio.ServicerContext, started: float, error: BaseException | None, peer: str
        ) -> None:
            code = _status_of(context, error)
            elapsed = time.perf_counter() - started
            m.handled.labels(*labels, code).inc()
            m.handling_seconds.labels(*labels).observe(elapsed)
            m.in_flight.labels(*labels).dec()
            level = logging.ERROR if code in ("UNKNOWN", "INTERNAL", "DATA_LOSS") else logging.INFO
            _log.log(
                level,
                "rpc",
                extra={
                    "fields": {
                        "method": full,
                        "code": code,
                        "duration_ms": round(elapsed * 1000, 3),
                        "peer": peer,
                    }
                },
            )

        def begin(request: Any, context: aio.ServicerContext) -> tuple[float, Any, str]:
            # The peer is read now, while the call is live: grpc core's peer string
            # belongs to the transport, which a client's disconnect frees before the
            # call ends (reading it in `finish` then crashed the server: a use after
            # free, grpc/grpc#29069).
            peer = context.peer()
            m.started.labels(*labels).inc()
            m.in_flight.labels(*labels).inc()
            if handler.request_streaming:
                request = count_in(request)
            else:
                m.msg_received.labels(*labels).inc()
            return time.perf_counter(), request, peer

        if handler.response_streaming:

            async def streaming(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                started, request, peer = begin(request, context)
                sent = m.msg_sent.labels(*labels)
                error: BaseException | None = None
                try:
                    async for response in inner(request, context):
                        sent.inc()
                        yield response
                except BaseException as exc:
                    error = exc
                    await _hide_internal(context, exc, full)
                    raise
                finally:
                    finish(context, started, error, peer)

            return rebuild(handler, streaming)

        async def unary(request: Any, context: aio.ServicerContext) -> Any:
            started, request, peer = begin(request, context)
            error: BaseException | None = None
            try:
                response = await inner(request, context)
                m.msg_sent.labels(*labels).inc()
                return response
            except BaseException as exc:
                error = exc
                await _hide_internal(context, exc, full)
                raise
            finally:
                finish(context, started, error, peer)

        return rebuild(handler, unary)


async def _hide_internal(context: aio.ServicerContext, error: BaseException, method: str) -> None:
    """Turns an unexpected exception into INTERNAL with a reference, never a traceback.

    Refusals made with ``context.abort`` already carry their code and pass through;
    so do cancellations and interpreter exits.
    """
    if not isinstance(error, Exception) or _code(context) is not None:
        return
    if isinstance(error, aio.AbortError):
        return
    reference = uuid.uuid4().hex[:12]
    _log.error(
        "unhandled error",
        extra={"fields": {"method": method, "ref": reference}},
        exc_info=error,
    )
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (reference {reference} in the server log)"
    )


def _code(context: aio.ServicerContext) -> grpc.StatusCode | None:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):  # aio reports a set code as the core's integer
        return _CODES.get(code)
    return None


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _status_of(context: aio.ServicerContext, error: BaseException | None) -> str:
    """The status code name an RPC ended with."""
    code = _code(context)
    if code is not None:
        return code.name
    if error is None:
        return "OK"
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return "CANCELLED"
    return "UNKNOWN"


__all__ = [
    "JsonFormatter",
    "ObservabilityInterceptor",
    "ServiceMetrics",
    "configure_logging",
]
