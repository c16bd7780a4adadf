"""Client and AsyncClient: the thin evalstream client (grpcio and protobuf only, no torch)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from evalstream import _convert
from evalstream._run_types import SPLITS, STATUSES, TASKS, HyperValue, RunInfo, Series, hyper_pb
from evalstream._runs import AsyncRun, Run, _SyncBridge
from evalstream._transport import PemSource, make_transport
from evalstream._types import (
    BoxReport,
    BoxResult,
    ImageBoxes,
    ImageResult,
    PairResult,
    TextReport,
    TextResult,
)
from evalstream._verdicts import Comparison, Verdict, verdict_config_pb
from evalstream.errors import AlreadyExists, EvalstreamError, NotFound, from_grpc
from evalstream.v1 import runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc

_log = logging.getLogger("evalstream.client")

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 60.0
DEFAULT_STREAM_TIMEOUT = 3600.0
DEFAULT_BATCH_SIZE = 256
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_HEALTH_METHOD = "/grpc.health.v1.Health/Check"
_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def _batched(images: Iterable[ImageBoxes], size: int) -> Iterator[list[ImageBoxes]]:
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    it = iter(images)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


_TEXT_DEFAULTS: dict[str, Any] = {
    "bleu_tokenize": "13a",
    "lowercase": False,
    "smooth_method": "exp",
    "smooth_value": None,
    "use_stemmer": True,
    "rouge_lsum": False,
    "meteor_alpha": None,
    "meteor_beta": None,
    "meteor_gamma": None,
    "idf": False,
    "rescale_with_baseline": False,
    "omit_pairs": False,
}


def _text_options(
    metrics: Sequence[str] | None, options: Mapping[str, Any]
) -> scoring_pb2.TextOptions:
    unknown = sorted(set(options) - set(_TEXT_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown text options {unknown}; valid: {', '.join(_TEXT_DEFAULTS)}")
    return _convert.text_options(metrics=metrics, **{**_TEXT_DEFAULTS, **options})


def _text_pairs(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    specimen_ids: Sequence[str] | None,
) -> list[tuple[str, Sequence[str], str]]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if specimen_ids is not None and len(specimen_ids) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(specimen_ids)} specimen ids")
    ids = specimen_ids or [""] * len(predictions)
    return [
        (p, (r,) if isinstance(r, str) else tuple(r), sid)
        for p, r, sid in zip(predictions, references, ids, strict=True)
    ]


class _TextReport:
    def __init__(self) -> None:
        self.pairs: list[PairResult] = []
        self.last: TextResult | None = None
        self.batches = 0

    def add(self, result: TextResult) -> None:
        offset = len(self.pairs)
        self.pairs.extend(
            PairResult(offset + p.index, p.specimen_id, p.scores) for p in result.pairs
        )
        self.last = result
        self.batches += 1

    def report(self) -> TextReport:
        last = self.last
        return TextReport(
            pairs=tuple(self.pairs),
            overall=last.running if last else {},
            pairs_total=last.pairs_total if last else 0,
            batches=self.batches,
        )


def _create_request(
    project: str,
    name: str,
    model: str,
    task: str,
    hyperparameters: Mapping[str, HyperValue] | None,
) -> runs_pb2.CreateRunRequest:
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(t for t in TASKS if t)}")
    return runs_pb2.CreateRunRequest(
        project=project,
        name=name,
        model=model,
        task=TASKS[task],
        hyperparameters={k: hyper_pb(v) for k, v in (hyperparameters or {}).items()},
    )


def _list_request(
    project: str,
    statuses: Sequence[str],
    model: str,
    hyperparameters: Mapping[str, HyperValue] | None,
    page_size: int,
    token: str,
) -> runs_pb2.ListRunsRequest:
    return runs_pb2.ListRunsRequest(
        project=project,
        statuses=[STATUSES[s] for s in statuses],
        model=model,
        hyperparameters=[
            runs_pb2.HyperFilter(key=k, value=hyper_pb(v))
            for k, v in (hyperparameters or {}).items()
        ],
        page_size=page_size,
        page_token=token,
    )


def _curves_request(
    run_id: str, splits: Sequence[str], series: Sequence[str], max_points: int
) -> runs_pb2.GetCurvesRequest:
    return runs_pb2.GetCurvesRequest(
        run_id=run_id,
        splits=[SPLITS[s] for s in splits],
        series=list(series),
        max_points=max_points,
    )


def _compare_request(
    run_ids: Sequence[str],
    project: str,
    statuses: Sequence[str],
    model: str,
    hyperparameters: Mapping[str, HyperValue] | None,
    baseline: str,
) -> runs_pb2.CompareRunsRequest:
    return runs_pb2.CompareRunsRequest(
        run_ids=list(run_ids),
        project=project,
        statuses=[STATUSES[s] for s in statuses],
        model=model,
        hyperparameters=[
            runs_pb2.HyperFilter(key=k, value=hyper_pb(v))
            for k, v in (hyperparameters or {}).items()
        ],
        baseline_run_id=baseline,
    )


def _health_request(service: str) -> bytes:
    # grpc.health.v1.HealthCheckRequest{service = 1}: encoded by hand so that the
    # thin client needs no grpcio-health-checking.
    data = service.encode()
    length, out = len(data), bytearray(b"\x0a")
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes(out) + data


def _health_status(data: bytes) -> str:
    # HealthCheckResponse{status = 1 (enum)}; absent means UNKNOWN (0).
    if len(data) >= 2 and data[0] == 0x08:
        return _HEALTH_STATUS.get(data[1], "UNKNOWN")
    return "UNKNOWN"


class _BoxStreamRequests:
    """Builds a stream's BoxBatch messages; options travel with the first one."""

    def __init__(self, options: scoring_pb2.BoxOptions) -> None:
        self._options: scoring_pb2.BoxOptions | None = options

    def batch(self, images: Sequence[ImageBoxes]) -> scoring_pb2.BoxBatch:
        message = _convert.box_batch(images, self._options)
        self._options = None
        return message


class _Report:
    """Folds a stream's results into a BoxReport."""

    def __init__(self) -> None:
        self.images: list[ImageResult] = []
        self.last: BoxResult | None = None
        self.batches = 0
        self.offset = 0

    def add(self, result: BoxResult) -> None:
        self.images.extend(
            ImageResult(self.offset + i.index, i.image_id, i.scores) for i in result.images
        )
        self.offset += len(result.images)
        self.last = result
        self.batches += 1

    def report(self) -> BoxReport:
        last = self.last
        return BoxReport(
            images=tuple(self.images),
            overall=last.running if last else (),
            pr_curves=last.pr_curves if last else (),
            images_total=last.images_total if last else 0,
            boxes_total=last.boxes_total if last else 0,
            batches=self.batches,
        )


class Client:
    """A blocking evalstream client. Use it as a context manager, or call `close`.

    Every call has a deadline: `timeout` seconds for unary calls and
    `stream_timeout` for streams, unless a call passes its own. Errors are
    raised as `evalstream.errors.EvalstreamError` subclasses.

    Security: `token` is sent as ``authorization: Bearer <token>`` on every
    call. TLS is on when `ca` (the server's CA bundle, a path or PEM bytes) or
    `client_cert` and `client_key` (for mTLS) are given, or with ``tls=True``
    (the system's roots). A token is refused on a plaintext channel to a
    non-loopback host unless ``insecure=True``.

    Example:
        >>> with Client("localhost:50051") as client:  # doctest: +SKIP
        ...     report = client.score_boxes(images, iou_thresholds=[0.5])
        ...     report.overall[0].f1.value
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        max_message_bytes: int = _MAX_MESSAGE_BYTES,
        token: str | None = None,
        ca: PemSource | None = None,
        client_cert: PemSource | None = None,
        client_key: PemSource | None = None,
        tls: bool | None = None,
        insecure: bool = False,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._transport = make_transport(
            target,
            token=token,
            ca=ca,
            client_cert=client_cert,
            client_key=client_key,
            tls=tls,
            insecure=insecure,
        )
        self._channel = self._transport.channel(target, _channel_options(max_message_bytes))
        self._scoring = scoring_pb2_grpc.ScoringStub(self._channel)
        self._runs = runs_pb2_grpc.RunsStub(self._channel)
        self._open_runs: set[Run] = set()

    def _unary(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        project: str,
        name: str,
        *,
        model: str = "",
        task: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        resume: bool = False,
        **logger_options: Any,
    ) -> Run:
        """Creates a run (or, with `resume=True`, returns the existing one of that name).

        `logger_options` tune the background loss streamer: chunk_points,
        max_buffer_points, buffer_timeout, on_full ("block" or "drop").

        Raises:
            AlreadyExists: the name is taken in the project and `resume` is False.
        """
        request = _create_request(project, name, model, task, hyperparameters)
        try:
            reply = self._unary(self._runs.CreateRun, request)
        except AlreadyExists:
            if not resume:
                raise
            return self.find_run(project, name, **logger_options)
        return Run(self, RunInfo.from_pb(reply), **logger_options)

    def get_run(self, run_id: str, **logger_options: Any) -> Run:
        """A handle on an existing run by id (NotFound when unknown)."""
        reply = self._unary(self._runs.GetRun, runs_pb2.GetRunRequest(run_id=run_id))
        return Run(self, RunInfo.from_pb(reply), **logger_options)

    def find_run(self, project: str, name: str, **logger_options: Any) -> Run:
        """A handle on an existing run by project and name (NotFound when unknown)."""
        reply = self._unary(
            self._runs.ListRuns, runs_pb2.ListRunsRequest(project=project, name=name)
        )
        if not reply.runs:
            raise NotFound(f"run {name!r} not found in project {project!r}", code="NOT_FOUND")
        return self.get_run(reply.runs[0].id, **logger_options)

    def list_runs(
        self,
        project: str,
        *,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        page_size: int = 100,
    ) -> Iterator[RunInfo]:
        """Every run of a project that passes the filters, fetching pages as needed."""
        token = ""
        while True:
            reply = self._unary(
                self._runs.ListRuns,
                _list_request(project, statuses, model, hyperparameters, page_size, token),
            )
            yield from (RunInfo.from_pb(r) for r in reply.runs)
            token = reply.next_page_token
            if not token:
                return

    def curves(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        max_points: int = 0,
    ) -> list[Series]:
        """A run's series, each downsampled to `max_points` (min/max per bucket) when > 0."""
        reply = self._unary(
            self._runs.GetCurves, _curves_request(run_id, splits, series, max_points)
        )
        return [Series.from_pb(s) for s in reply.series]

    def verdict(self, run_id: str, **config: Any) -> Verdict:
        """A run's diagnosis now; keyword arguments override its stored thresholds."""
        reply = self._unary(
            self._runs.GetVerdict,
            runs_pb2.GetVerdictRequest(run_id=run_id, config=verdict_config_pb(config)),
        )
        return Verdict.from_pb(reply)

    def watch(
        self, run_id: str, *, timeout: float | None = None, **config: Any
    ) -> Iterator[Verdict]:
        """The current verdict, then each change of it, until the run finishes.

        `timeout` bounds the whole watch (default: the client's stream timeout).
        """
        call = self._runs.WatchVerdict(
            runs_pb2.WatchVerdictRequest(run_id=run_id, config=verdict_config_pb(config)),
            timeout=timeout or self.stream_timeout,
        )
        try:
            for reply in call:
                yield Verdict.from_pb(reply)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        finally:
            call.cancel()

    def compare(
        self,
        run_ids: Sequence[str] = (),
        *,
        project: str = "",
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        baseline: str = "",
    ) -> Comparison:
        """Compares runs (by id, or a project's runs passing the filters)."""
        return Comparison.from_pb(
            self._unary(
                self._runs.CompareRuns,
                _compare_request(run_ids, project, statuses, model, hyperparameters, baseline),
            )
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, *, flush_timeout: float = 10.0) -> None:
        """Flushes open runs (up to `flush_timeout` s each), then closes the channel.

        Points still unacknowledged after that are lost; call `Run.flush` or
        `Run.finish` first to be sure.
        """
        for run in list(self._open_runs):
            try:
                run._close_logger(flush_timeout)
            except EvalstreamError as exc:
                _log.warning("closing run %s: %s", run.id, exc)
        self._channel.close()

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health status for `service` ("" is the whole server): e.g. "SERVING"."""
        check = self._channel.unary_unary(
            _HEALTH_METHOD, request_serializer=None, response_deserializer=None
        )
        try:
            return _health_status(check(_health_request(service), timeout=timeout or self.timeout))
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc

    def stream_boxes(
        self,
        batches: Iterable[Sequence[ImageBoxes]],
        *,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
    ) -> Iterator[BoxResult]:
        """Streams batches of images to ScoreBoxes and yields one result per batch.

        Args:
            batches: Each item is one batch (a sequence of ImageBoxes).
            iou_thresholds: Each in (0, 1]; default 0.5, 0.75, 0.95.
            confidence_threshold: Predictions below it are dropped; default 0.
            pr_curve: Add running precision-recall curves per threshold.
            pr_curve_max_points: Most points per curve (0: server default, 101).
            class_agnostic: Match regardless of label.
            omit_images: Aggregates only, no per-image results.
            timeout: Deadline of the whole stream in seconds.
        """
        requests = _BoxStreamRequests(
            _convert.box_options(
                iou_thresholds=iou_thresholds,
                confidence_threshold=confidence_threshold,
                pr_curve=pr_curve,
                pr_curve_max_points=pr_curve_max_points,
                class_agnostic=class_agnostic,
                omit_images=omit_images,
            )
        )
        call = self._scoring.ScoreBoxes(
            (requests.batch(b) for b in batches), timeout=timeout or self.stream_timeout
        )
        try:
            for response in call:
                yield _convert.box_result(response)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        finally:
            call.cancel()

    def stream_text(
        self,
        batches: Iterable[Sequence[tuple[str, Sequence[str], str]]],
        *,
        metrics: Sequence[str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> Iterator[TextResult]:
        """Streams batches of (prediction, references, specimen id) to ScoreText.

        Yields one result per batch: per-pair scores, the batch's corpus scores
        and the running corpus scores of the stream. Options as `score_text`.
        """
        call = self._scoring.ScoreText(
            _text_requests(batches, _text_options(metrics, options)),
            timeout=timeout or self.stream_timeout,
        )
        try:
            for response in call:
                yield _convert.text_result(response)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        finally:
            call.cancel()

    def score_text(
        self,
        predictions: Sequence[str],
        references: Sequence[str] | Sequence[Sequence[str]],
        *,
        metrics: Sequence[str] | None = None,
        specimen_ids: Sequence[str] | None = None,
        batch_size: int = 64,
        timeout: float | None = None,
        **options: Any,
    ) -> TextReport:
        """Scores answers against references with BLEU, ROUGE, METEOR and BERTScore.

        Args:
            predictions: The model's answers.
            references: One reference per answer, or a sequence of references each.
            metrics: Any of "bleu", "rouge", "meteor", "bertscore"; default all four.
            specimen_ids: Optional ids, echoed per pair.
            batch_size: Pairs per message.
            timeout: Deadline of the whole stream in seconds.
            **options: bleu_tokenize ("13a", "intl", "zh", "char", "none"), lowercase,
                smooth_method ("exp", "floor", "add-k", "none"), smooth_value,
                use_stemmer (default True), rouge_lsum, meteor_alpha, meteor_beta,
                meteor_gamma, idf, rescale_with_baseline, omit_pairs.

        Returns:
            Every pair's scores and the corpus scores over all pairs (`overall`).
        """
        pairs = _text_pairs(predictions, references, specimen_ids)
        report = _TextReport()
        for result in self.stream_text(
            _text_batches(pairs, batch_size), metrics=metrics, timeout=timeout, **options
        ):
            report.add(result)
        return report.report()

    def score_boxes(
        self,
        images: Iterable[ImageBoxes],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
    ) -> BoxReport:
        """Scores all `images` in one stream of `batch_size` batches; returns the report.

        Options are those of `stream_boxes`.
        """
        report = _Report()
        for result in self.stream_boxes(
            _batched(images, batch_size),
            iou_thresholds=iou_thresholds,
            confidence_threshold=confidence_threshold,
            pr_curve=pr_curve,
            pr_curve_max_points=pr_curve_max_points,
            class_agnostic=class_agnostic,
            omit_images=omit_images,
            timeout=timeout,
        ):
            report.add(result)
        return report.report()


def _text_requests(
    batches: Iterable[Sequence[tuple[str, Sequence[str], str]]], options: scoring_pb2.TextOptions
) -> Iterator[scoring_pb2.TextBatch]:
    first: scoring_pb2.TextOptions | None = options
    for batch in batches:
        yield _convert.text_batch(batch, first)
        first = None


def _text_batches(
    pairs: list[tuple[str, Sequence[str], str]], size: int
) -> Iterator[list[tuple[str, Sequence[str], str]]]:
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    for start in range(0, len(pairs), size):
        yield pairs[start : start + size]


class AsyncClient:
    """The asyncio twin of `Client`, with the same surface (methods are coroutines).

    Example:
        >>> async with AsyncClient("localhost:50051") as client:  # doctest: +SKIP
        ...     report = await client.score_boxes(images)
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        max_message_bytes: int = _MAX_MESSAGE_BYTES,
        token: str | None = None,
        ca: PemSource | None = None,
        client_cert: PemSource | None = None,
        client_key: PemSource | None = None,
        tls: bool | None = None,
        insecure: bool = False,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._options = _channel_options(max_message_bytes)
        self._transport = make_transport(
            target,
            token=token,
            ca=ca,
            client_cert=client_cert,
            client_key=client_key,
            tls=tls,
            insecure=insecure,
        )
        self._channel = self._transport.aio_channel(target, self._options)
        self._scoring = scoring_pb2_grpc.ScoringStub(self._channel)
        self._runs = runs_pb2_grpc.RunsStub(self._channel)
        self._bridge: _SyncBridge | None = None

    async def verdict(self, run_id: str, **config: Any) -> Verdict:
        """Async twin of `Client.verdict`."""
        reply = await self._unary(
            self._runs.GetVerdict,
            runs_pb2.GetVerdictRequest(run_id=run_id, config=verdict_config_pb(config)),
        )
        return Verdict.from_pb(reply)

    async def watch(
        self, run_id: str, *, timeout: float | None = None, **config: Any
    ) -> AsyncIterator[Verdict]:
        """Async twin of `Client.watch`."""
        call = self._runs.WatchVerdict(
            runs_pb2.WatchVerdictRequest(run_id=run_id, config=verdict_config_pb(config)),
            timeout=timeout or self.stream_timeout,
        )
        try:
            async for reply in call:
                yield Verdict.from_pb(reply)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        finally:
            call.cancel()

    async def compare(
        self,
        run_ids: Sequence[str] = (),
        *,
        project: str = "",
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        baseline: str = "",
    ) -> Comparison:
        """Async twin of `Client.compare`."""
        return Comparison.from_pb(
            await self._unary(
                self._runs.CompareRuns,
                _compare_request(run_ids, project, statuses, model, hyperparameters, baseline),
            )
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, *, flush_timeout: float = 10.0) -> None:
        """Flushes open runs (up to `flush_timeout` s each), then closes the channels."""
        if self._bridge is not None:
            await asyncio.to_thread(self._bridge.close, flush_timeout)
        await self._channel.close()

    async def _unary(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc

    def _run_handle(self, pb: runs_pb2.Run, logger_options: Mapping[str, Any]) -> AsyncRun:
        if self._bridge is None:
            self._bridge = _SyncBridge(self.target, self._options, self._transport)
        return AsyncRun(self, self._bridge, RunInfo.from_pb(pb), **logger_options)

    async def create_run(
        self,
        project: str,
        name: str,
        *,
        model: str = "",
        task: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        resume: bool = False,
        **logger_options: Any,
    ) -> AsyncRun:
        """Async twin of `Client.create_run`."""
        try:
            reply = await self._unary(
                self._runs.CreateRun, _create_request(project, name, model, task, hyperparameters)
            )
        except AlreadyExists:
            if not resume:
                raise
            return await self.find_run(project, name, **logger_options)
        return self._run_handle(reply, logger_options)

    async def get_run(self, run_id: str, **logger_options: Any) -> AsyncRun:
        """Async twin of `Client.get_run`."""
        reply = await self._unary(self._runs.GetRun, runs_pb2.GetRunRequest(run_id=run_id))
        return self._run_handle(reply, logger_options)

    async def find_run(self, project: str, name: str, **logger_options: Any) -> AsyncRun:
        """Async twin of `Client.find_run`."""
        reply = await self._unary(
            self._runs.ListRuns, runs_pb2.ListRunsRequest(project=project, name=name)
        )
        if not reply.runs:
            raise NotFound(f"run {name!r} not found in project {project!r}", code="NOT_FOUND")
        return await self.get_run(reply.runs[0].id, **logger_options)

    async def list_runs(
        self,
        project: str,
        *,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[RunInfo]:
        """Async twin of `Client.list_runs`."""
        token = ""
        while True:
            reply = await self._unary(
                self._runs.ListRuns,
                _list_request(project, statuses, model, hyperparameters, page_size, token),
            )
            for r in reply.runs:
                yield RunInfo.from_pb(r)
            token = reply.next_page_token
            if not token:
                return

    async def curves(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        max_points: int = 0,
    ) -> list[Series]:
        """Async twin of `Client.curves`."""
        reply = await self._unary(
            self._runs.GetCurves, _curves_request(run_id, splits, series, max_points)
        )
        return [Series.from_pb(s) for s in reply.series]

    async def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """The server's health status for `service`: e.g. "SERVING"."""
        check = self._channel.unary_unary(
            _HEALTH_METHOD, request_serializer=None, response_deserializer=None
        )
        try:
            data = await check(_health_request(service), timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        return _health_status(data)

    async def stream_boxes(
        self,
        batches: Iterable[Sequence[ImageBoxes]] | AsyncIterable[Sequence[ImageBoxes]],
        *,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[BoxResult]:
        """Async twin of `Client.stream_boxes`; `batches` may be sync or async."""
        requests = _BoxStreamRequests(
            _convert.box_options(
                iou_thresholds=iou_thresholds,
                confidence_threshold=confidence_threshold,
                pr_curve=pr_curve,
                pr_curve_max_points=pr_curve_max_points,
                class_agnostic=class_agnostic,
                omit_images=omit_images,
            )
        )

        async def messages() -> AsyncIterator[scoring_pb2.BoxBatch]:
            if isinstance(batches, AsyncIterable):
                async for b in batches:
                    yield requests.batch(b)
            else:
                for b in batches:
                    yield requests.batch(b)

        call = self._scoring.ScoreBoxes(messages(), timeout=timeout or self.stream_timeout)
        try:
            async for response in call:
                yield _convert.box_result(response)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        finally:
            call.cancel()

    async def stream_text(
        self,
        batches: Iterable[Sequence[tuple[str, Sequence[str], str]]],
        *,
        metrics: Sequence[str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> AsyncIterator[TextResult]:
        """Async twin of `Client.stream_text`."""
        call = self._scoring.ScoreText(
            _text_requests(batches, _text_options(metrics, options)),
            timeout=timeout or self.stream_timeout,
        )
        try:
            async for response in call:
                yield _convert.text_result(response)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from exc
        finally:
            call.cancel()

    async def score_text(
        self,
        predictions: Sequence[str],
        references: Sequence[str] | Sequence[Sequence[str]],
        *,
        metrics: Sequence[str] | None = None,
        specimen_ids: Sequence[str] | None = None,
        batch_size: int = 64,
        timeout: float | None = None,
        **options: Any,
    ) -> TextReport:
        """Async twin of `Client.score_text`."""
        pairs = _text_pairs(predictions, references, specimen_ids)
        report = _TextReport()
        async for result in self.stream_text(
            _text_batches(pairs, batch_size), metrics=metrics, timeout=timeout, **options
        ):
            report.add(result)
        return report.report()

    async def score_boxes(
        self,
        images: Iterable[ImageBoxes],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
    ) -> BoxReport:
        """Async twin of `Client.score_boxes`."""
        report = _Report()
        async for result in self.stream_boxes(
            _batched(images, batch_size),
            iou_thresholds=iou_thresholds,
            confidence_threshold=confidence_threshold,
            pr_curve=pr_curve,
            pr_curve_max_points=pr_curve_max_points,
            class_agnostic=class_agnostic,
            omit_images=omit_images,
            timeout=timeout,
        ):
            report.add(result)
        return report.report()
