"""The client's request/reply layer, shared by Client and AsyncClient, with no I/O.

As httpx's `BaseClient` does for its `Client` and `AsyncClient`: everything
that does not wait on the network is written once here (option checks and
defaults, request messages, reply decoding, folding stream results into a
report). Each RPC is an operation the two clients execute: a *plan* (a
generator that yields the `Unary` calls it needs and receives their replies,
so that a plan can branch on an error, e.g. `create_run(resume=True)`) or a
`Stream` (the request or request messages, and how to decode each reply).
`Client` runs them with blocking calls, `AsyncClient` with awaits.

Example (driving a plan by hand, as a test would):
    >>> from evalstream.v1 import runs_pb2
    >>> plan = get_run("r1")
    >>> call = next(plan)
    >>> call.method, call.request.run_id
    ('GetRun', 'r1')
    >>> try:
    ...     plan.send(runs_pb2.Run(id="r1", name="baseline"))
    ... except StopIteration as done:
    ...     print(done.value.name)
    baseline
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from evalstream import _convert
from evalstream._records import EvaluationStep, ProjectInfo, Specimen
from evalstream._run_types import (
    STATUSES,
    TASKS,
    Checkpoint,
    HyperValue,
    RunInfo,
    hyper_pb,
    split_pb,
)
from evalstream._targets import parse_targets
from evalstream._transport import PemSource, Transport, make_transport
from evalstream._types import (
    BoxReport,
    BoxResult,
    ImageBoxes,
    ImageResult,
    PairResult,
    TextReport,
    TextResult,
)
from evalstream._verdicts import Comparison, Verdict, alert_webhooks_pb, verdict_config_pb
from evalstream.errors import (
    AlreadyExists,
    EvalstreamError,
    NotFound,
    ResourceExhausted,
    Unavailable,
    from_grpc,
)
from evalstream.v1 import runs_pb2, runs_pb2_grpc, scoring_pb2_grpc

T = TypeVar("T")

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 60.0
DEFAULT_STREAM_TIMEOUT = 3600.0
#: How to raise the server's message size limit (tests check the flag against the server's).
SERVER_MESSAGE_LIMIT_HINT = "raise it with --max-message-bytes / EVALSTREAM_MAX_MESSAGE_BYTES"
#: A stream's timeout meaning "no deadline" (a watch follows its run however long it lasts).
NO_DEADLINE = math.inf
DEFAULT_BATCH_SIZE = 256
DEFAULT_TEXT_BATCH_SIZE = 64
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_HEALTH_METHOD = "/grpc.health.v1.Health/Check"
_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
HEALTH = "Health/Check"

#: A text pair: (prediction, references, specimen id[, question[, image uri]]).
Pair = (
    tuple[str, Sequence[str], str]
    | tuple[str, Sequence[str], str, str]
    | tuple[str, Sequence[str], str, str, str]
)


@dataclass(frozen=True, slots=True)
class Unary:
    """One unary call: the method's name, its request, and its deadline (None: the client's)."""

    method: str
    request: Any
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Stream(Generic[T]):
    """One streaming call: a request, or inputs that `encode` turns into request messages."""

    method: str
    request: Any
    decode: Callable[[Any], T]
    timeout: float | None = None
    encode: Callable[[Any], Any] | None = None


Plan = Generator[Unary, Any, T]
"""A sans-I/O operation: yields the calls it needs, is sent their replies, returns its result."""


def methods(channel: Any) -> dict[str, Any]:
    """The channel's callables by method name (sync and asyncio channels alike)."""
    runs = runs_pb2_grpc.RunsStub(channel)
    scoring = scoring_pb2_grpc.ScoringStub(channel)
    found: dict[str, Any] = {
        name: getattr(stub, name)
        for stub in (runs, scoring)
        for name in dir(stub)
        if name[0].isupper()
    }
    # grpc.health.v1 with hand-encoded bytes: the thin client needs no grpcio-health-checking.
    found[HEALTH] = channel.unary_unary(
        _HEALTH_METHOD, request_serializer=None, response_deserializer=None
    )
    return found


class BaseClient:
    """What `Client` and `AsyncClient` share: options, transport, the channel's methods.

    The options are documented on `Client`; each subclass opens its own kind of
    channel in `_connect` and executes the operations below with its own I/O.
    """

    def __init__(
        self,
        target: str | Sequence[str] = DEFAULT_TARGET,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        token: str | None = None,
        ca: PemSource | None = None,
        client_cert: PemSource | None = None,
        client_key: PemSource | None = None,
        tls: bool | None = None,
        insecure: bool = False,
        tls_server_name: str | None = None,
    ) -> None:
        self._targets = parse_targets(target)
        #: The target(s) as given, comma-separated.
        self.target = self._targets.display
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._max_message_bytes = max_message_bytes
        self._reached = (
            False  # set by the first reply: UNAVAILABLE before it asks if the server runs
        )
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # grpc's default grows to 120 s between attempts: a restarted server would go
            # unnoticed by watches and loggers for up to two minutes.
            ("grpc.max_reconnect_backoff_ms", 5_000),
            # round_robin over several replicas, and retries of the calls safe to repeat.
            ("grpc.service_config", self._targets.service_config()),
            ("grpc.enable_retries", 1),
        ]
        self._transport: Transport = make_transport(
            target,
            token=token,
            ca=ca,
            client_cert=client_cert,
            client_key=client_key,
            tls=tls,
            insecure=insecure,
        )
        name = tls_server_name or self._targets.tls_name()
        if tls_server_name is not None and self._transport.credentials is None:
            raise ValueError("tls_server_name needs TLS: give ca=... or tls=True with it")
        if name is not None and self._transport.credentials is not None:
            # Several addresses in one ipv4:/ipv6: target have no name of their own to check
            # certificates against; every replica's certificate must carry this one.
            self._options.append(("grpc.ssl_target_name_override", name))
        self._channel = self._connect()
        self._methods = methods(self._channel)
        self._runs = runs_pb2_grpc.RunsStub(self._channel)

    def _connect(self) -> Any:
        """The channel to `target` (blocking or asyncio: the subclass's)."""
        raise NotImplementedError

    def _deadline(self, timeout: float | None) -> float | None:
        """A stream's deadline in seconds: its own, else `stream_timeout`; None for none."""
        if timeout == NO_DEADLINE:
            return None
        return timeout or self.stream_timeout

    def _error(self, exc: Any) -> EvalstreamError:
        """`exc` (a grpc.RpcError) in the evalstream tree, asking whether the server runs
        when the server was never reached."""
        error = from_grpc(exc)
        if isinstance(error, Unavailable) and not self._reached:
            error = Unavailable(
                f"{error.message}; is evalstream-server running at {self.target}? "
                "(start it with `make serve` or `evalstream-server`)",
                code=error.code,
            )
        elif isinstance(error, ResourceExhausted) and "message larger than max" in error.message:
            # grpc's own message-size refusal, before any handler: say whose limit it is.
            whose = (
                f"the server's: {SERVER_MESSAGE_LIMIT_HINT}"
                if error.message.startswith("SERVER:")
                else "this client's: raise it with Client(max_message_bytes=...)"
            )
            error = ResourceExhausted(
                f"{error.message}; send smaller batches (batch_size=), or the limit is {whose}",
                code=error.code,
            )
        error.__cause__ = exc
        return error


# --------------------------------------------------------------------------- runs


def create_run(
    project: str,
    name: str,
    model: str,
    task: str,
    hyperparameters: Mapping[str, HyperValue] | None,
    resume: bool,
    verdict_config: Mapping[str, Any] | None = None,
    alert_webhooks: Sequence[str | Mapping[str, str]] | None = None,
) -> Plan[RunInfo]:
    """CreateRun; with `resume`, the existing run of that name instead of AlreadyExists."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(t for t in TASKS if t)}")
    request = runs_pb2.CreateRunRequest(
        project=project,
        name=name,
        model=model,
        task=TASKS[task],
        hyperparameters={k: hyper_pb(v) for k, v in (hyperparameters or {}).items()},
        verdict_config=verdict_config_pb(verdict_config),
        alert_webhooks=alert_webhooks_pb(alert_webhooks),
    )
    try:
        reply = yield Unary("CreateRun", request)
    except AlreadyExists as exc:
        if not resume:
            raise AlreadyExists(
                f"{exc.message}; pass resume=True to continue the existing run",
                code=exc.code,
                violations=exc.violations,
            ) from exc
        return (yield from find_run(project, name))
    return RunInfo.from_pb(reply)


def run_request(ref: str) -> runs_pb2.GetRunRequest:
    """The GetRunRequest of a run id, or of ``"project/name"`` (run ids never contain "/").

    The project is what comes before the first "/" (a project whose name holds a
    "/" is reached with `find_run`).

    Example:
        >>> r = run_request("vision/baseline")
        >>> r.run_id, r.project, r.name
        ('', 'vision', 'baseline')
        >>> run_request("r_0123456789abcdef").run_id
        'r_0123456789abcdef'
    """
    if not isinstance(ref, str):
        raise TypeError(f"a run is given by its id or 'project/name', not {type(ref).__name__}")
    project, slash, name = ref.partition("/")
    if not slash:
        return runs_pb2.GetRunRequest(run_id=ref)
    if not project or not name:
        raise ValueError(f"run {ref!r}: give 'project/name' (both non-empty) or a run id")
    return runs_pb2.GetRunRequest(project=project, name=name)


def get_run(ref: str) -> Plan[RunInfo]:
    """GetRun: the run of that id or ``"project/name"`` (NotFound when unknown)."""
    return RunInfo.from_pb((yield Unary("GetRun", run_request(ref))))


def resolve_run_id(ref: str) -> Plan[str]:
    """The id of a run given by id (returned as it is, no call) or by ``"project/name"``."""
    request = run_request(ref)
    if request.run_id:
        return request.run_id
    return str((yield Unary("GetRun", request)).id)


def find_run(project: str, name: str) -> Plan[RunInfo]:
    """The run of that name in the project (NotFound when there is none)."""
    reply = yield Unary("ListRuns", runs_pb2.ListRunsRequest(project=project, name=name))
    if not reply.runs:
        raise NotFound(f"run {name!r} not found in project {project!r}", code="NOT_FOUND")
    return (yield from get_run(reply.runs[0].id))


def _filters(
    hyperparameters: Mapping[str, HyperValue] | None,
) -> list[runs_pb2.HyperFilter]:
    return [
        runs_pb2.HyperFilter(key=k, value=hyper_pb(v)) for k, v in (hyperparameters or {}).items()
    ]


def runs_page(
    project: str,
    statuses: Sequence[str],
    model: str,
    hyperparameters: Mapping[str, HyperValue] | None,
    page_size: int,
    token: str,
) -> Plan[tuple[list[RunInfo], str]]:
    """One page of `list_runs`: its runs and the next page's token ("" after the last)."""
    reply = yield Unary(
        "ListRuns",
        runs_pb2.ListRunsRequest(
            project=project,
            statuses=[STATUSES[s] for s in statuses],
            model=model,
            hyperparameters=_filters(hyperparameters),
            page_size=page_size,
            page_token=token,
        ),
    )
    return [RunInfo.from_pb(r) for r in reply.runs], reply.next_page_token


def verdict(ref: str, config: Mapping[str, Any]) -> Plan[Verdict]:
    """GetVerdict (of a run id or "project/name"), `config` overriding the stored thresholds."""
    request = runs_pb2.GetVerdictRequest(
        run_id=(yield from resolve_run_id(ref)), config=verdict_config_pb(config)
    )
    return Verdict.from_pb((yield Unary("GetVerdict", request)))


def watch(run_id: str, timeout: float | None, config: Mapping[str, Any]) -> Stream[Verdict]:
    """WatchVerdict: the verdict now, then each change (no deadline when `timeout` is None)."""
    request = runs_pb2.WatchVerdictRequest(run_id=run_id, config=verdict_config_pb(config))
    return Stream(
        "WatchVerdict", request, Verdict.from_pb, NO_DEADLINE if timeout is None else timeout
    )


def change_key(v: Verdict) -> tuple[object, ...]:
    """What counts as a change of verdict: as the server's `verdict_key` (api/verdicts.py)."""
    es = v.early_stopping
    return (
        v.state,
        v.severity,
        es.best_step,
        es.should_stop,
        es.best_checkpoint_path,
        tuple((c.step, c.metric, c.grade, c.path) for c in v.checkpoints),
    )


class Follow:
    """A watch that follows its run until it finishes, across broken connections.

    No I/O: the client opens `stream()`, shows a verdict when `fresh` says so,
    and on an error waits `retry(error)` seconds (which raises the error when it
    is not worth retrying) before opening the stream again. Each new stream
    starts with the current verdict: dropped when it is no change from the last
    one shown. A connection that breaks (UNAVAILABLE: the server restarted or the
    network failed) is retried with exponential back-off, without end; the first
    connection is not, so a wrong address fails at once. `timeout` (None: none)
    bounds the whole watch.

    Example:
        >>> follow = Follow("r1", None, {}, clock=lambda: 0.0)
        >>> follow.stream().timeout == NO_DEADLINE
        True
        >>> from evalstream.errors import Unavailable
        >>> follow.retry(Unavailable("down", code="UNAVAILABLE"))
        Traceback (most recent call last):
        ...
        evalstream.errors.Unavailable: UNAVAILABLE: down
    """

    def __init__(
        self,
        run_id: str,
        timeout: float | None,
        config: Mapping[str, Any],
        *,
        clock: Callable[[], float],
        first_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.run_id = run_id
        self._config = config
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._backoff = first_backoff
        self._last: tuple[object, ...] | None = None
        self.reconnects = 0

    def stream(self) -> Stream[Verdict]:
        """The WatchVerdict call to open now (its deadline: what is left of `timeout`)."""
        left = None if self._deadline is None else max(self._deadline - self._clock(), 0.001)
        return watch(self.run_id, left, self._config)

    def fresh(self, verdict: Verdict) -> bool:
        """Whether `verdict` is news (not the repeat a new stream starts with)."""
        self._backoff = self._first_backoff
        key = change_key(verdict)
        if key == self._last:
            return False
        self._last = key
        return True

    def retry(self, error: EvalstreamError) -> float:
        """Seconds to wait before reconnecting after `error`; raises it when it is final."""
        if not isinstance(error, Unavailable) or self._last is None:
            raise error
        delay = self._backoff
        if self._deadline is not None and self._clock() + delay >= self._deadline:
            raise error
        self._backoff = min(self._backoff * 2, self._max_backoff)
        self.reconnects += 1
        return delay


class HasId(Protocol):
    """A run as a handle or a record (`Run`, `AsyncRun`, `RunInfo`): anything with its id."""

    @property
    def id(self) -> str: ...


RunRef = str | HasId
"""A run given by its id or by an object that has one."""


def run_id(run: RunRef, where: str) -> str:
    """The id of `run` (an id, or a Run, AsyncRun or RunInfo); TypeError naming `where`.

    Example:
        >>> run_id("r1", "run_ids[0]"), run_id(RunInfo.from_pb(runs_pb2.Run(id="r2")), "baseline")
        ('r1', 'r2')
    """
    if isinstance(run, str):
        return run
    found = getattr(run, "id", None)
    if isinstance(found, str):
        return found
    raise TypeError(f"{where}: expected a run id or a Run, got {type(run).__name__} {run!r:.60}")


def compare(
    runs: Sequence[RunRef],
    project: str,
    statuses: Sequence[str],
    model: str,
    hyperparameters: Mapping[str, HyperValue] | None,
    baseline: RunRef,
) -> Plan[Comparison]:
    """CompareRuns: by ids, "project/name"s or Run handles, or a project's runs filtered."""
    if isinstance(runs, str):  # one id would be compared character by character
        raise TypeError(f"run_ids: expected a sequence of runs, got the string {runs!r}")
    ids = []
    for i, ref in enumerate(runs):
        ids.append((yield from resolve_run_id(run_id(ref, f"run_ids[{i}]"))))
    if baseline:
        baseline = yield from resolve_run_id(run_id(baseline, "baseline"))
    reply = yield Unary(
        "CompareRuns",
        runs_pb2.CompareRunsRequest(
            run_ids=ids,
            project=project,
            statuses=[STATUSES[s] for s in statuses],
            model=model,
            hyperparameters=_filters(hyperparameters),
            baseline_run_id=run_id(baseline, "baseline"),
        ),
    )
    return Comparison.from_pb(reply)


def log_checkpoint(run_id: str, step: int, metrics: Mapping[str, float], split: str) -> Plan[int]:
    """LogCheckpoint: finite metrics at a step; returns how many were stored."""
    for name, value in metrics.items():
        if not math.isfinite(value):
            raise ValueError(f"metric {name} is {value}; checkpoint metrics must be finite")
    reply = yield Unary(
        "LogCheckpoint",
        runs_pb2.LogCheckpointRequest(
            run_id=run_id, split=split_pb(split), step=step, metrics=dict(metrics)
        ),
    )
    return int(reply.stored)


def check_status(status: str) -> str:
    """`status` when it is a run status, else ValueError naming the valid ones."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    return status


def set_status(run_id: str, status: str) -> Plan[RunInfo]:
    """SetRunStatus: the run as it is after the change."""
    request = runs_pb2.SetRunStatusRequest(run_id=run_id, status=STATUSES[check_status(status)])
    return RunInfo.from_pb((yield Unary("SetRunStatus", request)))


# ------------------------------------------------------- projects and evaluations


def projects_page(page_size: int, token: str) -> Plan[tuple[list[ProjectInfo], str]]:
    """One page of `list_projects`: its projects and the next page's token ("" after the last)."""
    reply = yield Unary(
        "ListProjects", runs_pb2.ListProjectsRequest(page_size=page_size, page_token=token)
    )
    return [ProjectInfo.from_pb(p) for p in reply.projects], reply.next_page_token


def evaluation_steps(ref: str, split: str | None) -> Plan[list[EvaluationStep]]:
    """ListEvaluationSteps: a run's evaluations, of one split or (None) of all."""
    request = runs_pb2.ListEvaluationStepsRequest()
    if split:
        request.split = split_pb(split)
    request.run_id = yield from resolve_run_id(ref)
    reply = yield Unary("ListEvaluationSteps", request)
    return [EvaluationStep.from_pb(s) for s in reply.steps]


def specimens_page(
    run_id: str, step: int, split: str, flag: str | None, page_size: int, token: str
) -> Plan[tuple[list[Specimen], str]]:
    """One page of GetSpecimens (of a run id) and the next page's token ("" after the last)."""
    reply = yield Unary(
        "GetSpecimens",
        runs_pb2.GetSpecimensRequest(
            run_id=run_id,
            split=split_pb(split),
            step=step,
            page_size=page_size,
            page_token=token,
            flag=flag or "",
        ),
    )
    return [Specimen.from_pb(s) for s in reply.specimens], reply.next_page_token


# ------------------------------------------------------------------------ health


def _health_request(service: str) -> bytes:
    # grpc.health.v1.HealthCheckRequest{service = 1}, encoded by hand.
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


def health(service: str, timeout: float | None) -> Plan[str]:
    """grpc.health.v1 Check: the status of `service` ("" is the whole server)."""
    return _health_status((yield Unary(HEALTH, _health_request(service), timeout)))


# ----------------------------------------------------------------------- scoring


class _FirstCarries:
    """Encodes a stream's batches; the options travel with the first message only.

    A checkpoint, when given, travels with every message: the server records each
    batch that names one.
    """

    def __init__(
        self, encode: Callable[[Any, Any], Any], options: Any, checkpoint: Checkpoint | None
    ) -> None:
        self._encode = encode
        self._options = options
        self._checkpoint = None if checkpoint is None else checkpoint.pb()

    def __call__(self, batch: Any) -> Any:
        message = self._encode(batch, self._options)
        self._options = None
        if self._checkpoint is not None:
            message.checkpoint.CopyFrom(self._checkpoint)
        return message


def box_stream(
    *,
    iou_thresholds: Sequence[float] | None,
    confidence_threshold: float | None,
    pr_curve: bool,
    pr_curve_max_points: int,
    class_agnostic: bool,
    omit_images: bool,
    timeout: float | None,
    batches: Any,
    checkpoint: Checkpoint | None = None,
) -> Stream[BoxResult]:
    """ScoreBoxes over `batches` (each a sequence of ImageBoxes)."""
    options = _convert.box_options(
        iou_thresholds=iou_thresholds,
        confidence_threshold=confidence_threshold,
        pr_curve=pr_curve,
        pr_curve_max_points=pr_curve_max_points,
        class_agnostic=class_agnostic,
        omit_images=omit_images,
    )
    encode = _FirstCarries(_convert.box_batch, options, checkpoint)
    return Stream("ScoreBoxes", batches, _convert.box_result, timeout, encode)


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


def text_stream(
    batches: Iterable[Sequence[Pair]],
    metrics: Sequence[str] | None,
    timeout: float | None,
    options: Mapping[str, Any],
    checkpoint: Checkpoint | None = None,
) -> Stream[TextResult]:
    """ScoreText over `batches` of (prediction, references, specimen id[, question[, uri]])."""
    unknown = sorted(set(options) - set(_TEXT_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown text options {unknown}; valid: {', '.join(_TEXT_DEFAULTS)}")
    first = _convert.text_options(metrics=metrics, **{**_TEXT_DEFAULTS, **options})
    encode = _FirstCarries(_convert.text_batch, first, checkpoint)
    return Stream("ScoreText", batches, _convert.text_result, timeout, encode)


def box_batches(images: Iterable[ImageBoxes], size: int) -> Iterator[list[ImageBoxes]]:
    """`images` in lists of `size` (checked when first iterated)."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    it = iter(images)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def text_batches(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    specimen_ids: Sequence[str] | None,
    size: int,
    *,
    questions: Sequence[str] | None = None,
    image_uris: Sequence[str] | None = None,
) -> Iterator[list[Pair]]:
    """The pairs of `score_text` in batches of `size`; checks the lengths first."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    for name, values in (
        ("specimen ids", specimen_ids),
        ("questions", questions),
        ("image uris", image_uris),
    ):
        if values is not None and len(values) != len(predictions):
            raise ValueError(f"{len(predictions)} predictions but {len(values)} {name}")
    blank = [""] * len(predictions)
    pairs: list[Pair] = [
        (p, (r,) if isinstance(r, str) else tuple(r), sid, q, uri)
        for p, r, sid, q, uri in zip(
            predictions,
            references,
            specimen_ids or blank,
            questions or blank,
            image_uris or blank,
            strict=True,
        )
    ]
    return _slices(pairs, size)


def _slices(pairs: list[Pair], size: int) -> Iterator[list[Pair]]:
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    for start in range(0, len(pairs), size):
        yield pairs[start : start + size]


class TextFold:
    """Folds a text stream's results into a TextReport."""

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


class BoxFold:
    """Folds a box stream's results into a BoxReport."""

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
