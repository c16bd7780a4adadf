"""Domain types of the run store, its error tree and the ``Store`` protocol.

Errors (one tree, mapped to gRPC codes in one place by the servicer)::

    StoreError                 any store failure (e.g. the disk refused a commit)
    ├── NotFound               a run (or other named thing) does not exist  -> NOT_FOUND
    ├── AlreadyExists          a run name is taken in its project           -> ALREADY_EXISTS
    ├── InvalidInput           bad input; ``.field`` names it               -> INVALID_ARGUMENT
    ├── StoreClosed            the store was closed                         -> UNAVAILABLE
    ├── StoreOverloaded        the bounded write queue is full              -> RESOURCE_EXHAUSTED
    ├── WriterLost             the writer process died mid-write; resend    -> UNAVAILABLE
    └── StoreUnavailable       the database cannot be reached; retry        -> UNAVAILABLE

No grpc or protobuf here: protobuf stops at the servicers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

#: A hyperparameter (or verdict configuration) value.
HyperValue = bool | int | float | str

SPLITS: tuple[str, ...] = ("train", "validation", "test")
TASKS: tuple[str, ...] = ("phrase_grounding", "vqa", "other", "")
STATUSES: tuple[str, ...] = ("running", "finished", "failed", "killed")

#: Longest accepted series name, in characters.
MAX_SERIES_NAME = 128

# (x1, y1, x2, y2, label or phrase, confidence)
Box = tuple[float, float, float, float, str, float]


class StoreError(Exception):
    """Base of every error the store raises."""


class NotFound(StoreError):
    """The named thing does not exist, e.g. ``run 'r_123' not found``."""


class AlreadyExists(StoreError):
    """A unique name is taken, e.g. ``run named 'x' already exists in project 'p'``."""


class InvalidInput(StoreError):
    """The input is malformed; ``field`` names the offending field (may be "").

    >>> err = InvalidInput("page token is malformed", field="page_token")
    >>> (err.field, str(err))
    ('page_token', 'page token is malformed')
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class Conflict(StoreError):
    """The request contradicts what is stored and cannot apply, e.g. a hyperparameter
    the run already has with another value."""


class StoreClosed(StoreError):
    """The store was closed; no further calls are accepted."""


class StoreOverloaded(StoreError):
    """The bounded write queue is full; the caller should back off and retry."""


class WriterLost(StoreError):
    """The writer process died with the write in flight: it may or may not be stored.

    Writes are idempotent, so the caller sends it again (the store starts another
    writer for the next write).
    """


class StoreUnavailable(StoreError):
    """The database server cannot be reached (PostgreSQL down or restarting); retry.

    A write failing so may or may not be stored (the message says which when it is
    known); writes are idempotent, so the caller sends it again.
    """


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where an alert is POSTed: an http(s) URL and the payload's shape."""

    url: str
    format: str = "json"  # "json" or "slack"


@dataclass(frozen=True, slots=True)
class NewRun:
    """What a trainer says about a run it starts."""

    project: str
    name: str
    model: str = ""
    task: str = ""
    hyperparameters: Mapping[str, HyperValue] = field(default_factory=dict)
    verdict_config: Mapping[str, HyperValue] = field(default_factory=dict)
    alert_webhooks: tuple[Webhook, ...] = ()


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A stored run. Times are seconds since the epoch."""

    id: str
    project: str
    name: str
    model: str
    task: str
    status: str
    hyperparameters: Mapping[str, HyperValue]
    verdict_config: Mapping[str, HyperValue]
    created_at: float
    updated_at: float
    summary: Mapping[str, HyperValue] = field(default_factory=dict)
    alert_webhooks: tuple[Webhook, ...] = ()


@dataclass(frozen=True, slots=True)
class PointChunk:
    """Points of one series: ``steps`` (int64, >= 0), ``values`` (float64), same length.

    ``wall_times`` (float64 seconds since the epoch) is optional; when given it has
    the same length. Steps need not be sorted nor unique (a later occurrence of a
    step in the chunk wins, as if the points were applied one by one).
    """

    run_id: str
    split: str
    series: str
    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of one chunk, as if its points were applied one by one in order.

    Attributes:
        stored: Points that were new or replaced a different value.
        duplicates: Points whose value (bit for bit; any NaN equals any NaN) was
            already stored; they changed nothing. ``stored + duplicates`` is the
            chunk's length.
        changed: The subset of ``stored`` that replaced a different value.
    """

    stored: int
    duplicates: int
    changed: int


@dataclass(frozen=True, slots=True)
class SeriesData:
    """One merged series, sorted by step, one value per step (the latest write wins).

    ``wall_times`` is None when no chunk of the series carried wall times; otherwise
    points written without one have NaN there.
    """

    split: str
    name: str
    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray | None
    total_points: int


@dataclass(frozen=True, slots=True)
class SeriesChunks:
    """Where a series' points lie, without reading them: one row per stored chunk.

    ``chunks`` is an int64 array of shape (k, 3): ``min_step, max_step, n`` of each
    chunk that overlaps the step range asked for, sorted by ``min_step``. A step
    written twice counts in two chunks, so ``n`` sums to an upper bound of the
    series' points there. Exporters cut a series into step windows with it (see
    ``Store.read_series`` for a window's points).
    """

    split: str
    name: str
    chunks: np.ndarray


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """Metrics logged for one (split, step); ``signatures`` maps metric -> signature."""

    split: str
    step: int
    metrics: Mapping[str, float]
    signatures: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class SpecimenRecord:
    """Ground truth beside prediction for one specimen at one evaluation step."""

    specimen_id: str
    prediction_text: str = ""
    reference_texts: tuple[str, ...] = ()
    predicted_boxes: tuple[Box, ...] = ()
    ground_truth_boxes: tuple[Box, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    #: The image as sent (an http, https, file or s3 URI, or a path relative to the
    #: server's image root); "" when none was sent.
    image_uri: str = ""
    #: Image size in pixels; 0 when unknown.
    width: int = 0
    height: int = 0
    #: For VQA: the question (prompt) answered; "" when none was sent.
    question: str = ""


@dataclass(frozen=True, slots=True)
class EvaluationStepRow:
    """A step that has checkpoint metrics or specimens (or both)."""

    split: str
    step: int
    specimens: int
    metrics: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """A project and its runs, counted; ``updated_at`` is its latest run's, in epoch seconds."""

    name: str
    runs: int
    running: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class ChangeMark:
    """Where a run stands in a store shared by several replicas (see `Store.change_mark`).

    Attributes:
        version: Grows by one with every transaction that changed the run, through
            any replica.
        rewritten_at: The ``version`` of the last write that changed points at or
            before a series' last step (0 when none did): state built incrementally
            from the points before it is out of date.
        by_this_replica: Whether the transaction at ``version`` was this store's.
    """

    version: int
    rewritten_at: int
    by_this_replica: bool


class Store(Protocol):
    """The run store the servicers depend on (SQLiteStore is the embedded one)."""

    def create_run(self, new: NewRun) -> RunRecord:
        """Creates a run with status "running"; AlreadyExists when the name is taken."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """The run; NotFound when unknown."""
        ...

    def find_run(self, project: str, name: str) -> RunRecord:
        """The run named ``name`` in ``project``; NotFound when unknown."""
        ...

    def list_runs(
        self,
        *,
        project: str,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] = {},
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[RunRecord], str]:
        """One page of runs ordered by (created_at, id) and the next page token ("" at the end)."""
        ...

    def list_projects(
        self, *, page_size: int = 100, page_token: str = ""
    ) -> tuple[list[ProjectSummary], str]:
        """One page of the projects that have runs, ordered by name, and the next page token."""
        ...

    def set_status(self, run_id: str, status: str) -> RunRecord:
        """Sets the status; returns the updated run."""
        ...

    def update_run(
        self,
        run_id: str,
        *,
        summary: Mapping[str, HyperValue] = {},
        saved_checkpoints: Mapping[int, str] | Sequence[tuple[int, str]] = (),
        hyperparameters: Mapping[str, HyperValue] = {},
    ) -> RunRecord:
        """Merges summary values, records saved checkpoint paths and adds hyperparameters
        (Conflict on a changed one, nothing applied); returns the run."""
        ...

    def saved_checkpoints(self, run_id: str) -> dict[int, str]:
        """Where the run's checkpoints were saved, {step: path} in step order."""
        ...

    def write_points(self, chunk: PointChunk, *, timeout: float | None = None) -> WriteResult:
        """Writes a chunk and returns once it is durable."""
        ...

    def submit_points(self, chunk: PointChunk) -> Future[WriteResult]:
        """Queues a chunk; the future resolves once it is durable."""
        ...

    def read_series(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[SeriesData]:
        """The run's series (optionally filtered, and within [start_step, end_step]), by step.

        ``total_points`` counts the points within the range; a series with none
        there is still listed (empty).
        """
        ...

    def read_page(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        after: tuple[str, str, int] | None = None,
        limit: int,
    ) -> list[SeriesData]:
        """At most ``limit`` points summed over the series, from ``after`` (split, name, step) on.

        In `read_series` order, reading only what the page needs; ``total_points``
        counts the points returned.
        """
        ...

    def count_points(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> int:
        """How many points the (filtered) series hold within [start_step, end_step]."""
        ...

    def last_points(self, run_id: str, n: int = 1) -> list[SeriesData]:
        """The last ``n`` points (by step) of every series of the run."""
        ...

    def series_chunks(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[SeriesChunks]:
        """The extents of the chunks of the run's series (filtered) overlapping the range.

        Ordered as ``read_series`` orders series; a series with no chunk there is
        left out. Reads no points: for planning reads of a long series by window.
        """
        ...

    def log_checkpoint(
        self,
        run_id: str,
        split: str,
        step: int,
        metrics: Mapping[str, float],
        *,
        signatures: Mapping[str, str] = {},
    ) -> int:
        """Upserts metrics of one checkpoint; returns how many were stored."""
        ...

    def checkpoints(self, run_id: str) -> list[CheckpointRow]:
        """Every checkpoint of the run, sorted by split then step."""
        ...

    def record_specimens(
        self, run_id: str, split: str, step: int, specimens: Sequence[SpecimenRecord]
    ) -> int:
        """Upserts specimens by id within (run, split, step); returns how many were stored."""
        ...

    def evaluation_steps(self, run_id: str, *, split: str = "") -> list[EvaluationStepRow]:
        """Steps having checkpoint metrics or specimens, sorted by split then step."""
        ...

    def specimens(
        self,
        run_id: str,
        split: str,
        step: int,
        *,
        page_size: int = 100,
        page_token: str = "",
        flag: str = "",
    ) -> tuple[list[SpecimenRecord], str]:
        """A page of a step's specimens (only those with ``flag`` unless "") and the next token."""
        ...

    def specimen_history(
        self, run_id: str, split: str, specimen_id: str
    ) -> list[tuple[int, SpecimenRecord]]:
        """One specimen of a split at every step that recorded it, (step, record) by step."""
        ...

    def data_version(self, run_id: str) -> int:
        """A counter bumped on every durable write to the run that this process learnt of."""
        ...

    def change_mark(self, run_id: str) -> ChangeMark | None:
        """The run's `ChangeMark` as the database has it now; None from a store that only
        this process writes (its own writes are all there is to follow)."""
        ...

    def follow(self, changed: Callable[[Sequence[str]], None], missed: Callable[[], None]) -> None:
        """Calls ``changed(run_ids)`` after another replica's transaction changed those runs,
        and ``missed()`` when such news may have been lost (the store reconnected to its
        database): a follower then re-reads what it holds. Both run on the store's
        thread and must be quick. A no-op for a store only this process writes."""
        ...

    def is_exporter(self) -> bool:
        """Whether this replica is the one that exports per-run gauges (one at a time, among
        every replica of the database); always True for a store only this process writes."""
        ...

    def close(self) -> None:
        """Makes queued writes durable, then closes; later calls raise StoreClosed."""
        ...
