"""Model-quality gauges: each running run's latest losses, gap and verdict state.

Off by default (``--quality-gauges``). A custom collector computes them when Prometheus
scrapes, never a polling thread: the last training and validation loss, the verdict's
generalization gap and state (one series per state, 1 for the current one), and how many
runs were omitted or failed. At most ``max_runs`` running runs, the most recently updated,
are labelled with project, run id and run name (/metrics has no authentication: enabling
the gauges publishes those names). Verdicts come from the shared ``VerdictHub``, so after
a run's first scrape its verdict costs a bounded summary, not a pass over its points.
Replicas sharing a PostgreSQL store export the per-run gauges from one of them at a time
(`Store.is_exporter`), so that each run is one series across the fleet.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric

from evalstream_server.analysis.verdict import STATES, Verdict, VerdictConfig
from evalstream_server.observability import ServiceMetrics
from evalstream_server.store import RunRecord, Store

__all__ = ["QualityCollector", "VerdictSource", "install_quality_gauges"]

log = logging.getLogger("evalstream.quality")

#: Labels of every per-run gauge.
RUN_LABELS = ("project", "run_id", "run_name")
_PAGE = 500

_HELP = {
    "evalstream_run_validation_loss": "Latest validation loss of a running run (its largest step).",
    "evalstream_run_validation_step": "Step of the latest validation loss of a running run.",
    "evalstream_run_train_loss": "Latest training loss of a running run (its largest step).",
    "evalstream_run_generalization_gap": (
        "Latest validation loss minus the smoothed training loss at that step (the verdict's gap)."
    ),
    "evalstream_run_verdict_state": (
        "Verdict state of a running run: 1 for its current state, 0 for the others."
    ),
    "evalstream_quality_runs_omitted": (
        "Running runs left out of the run gauges by --quality-gauges-max-runs."
    ),
    "evalstream_quality_runs_failed": (
        "Running runs skipped in this scrape because reading them failed (see the log)."
    ),
    "evalstream_quality_exporter": (
        "1 on the replica that exports the per-run gauges, 0 on the others (replicas "
        "sharing a PostgreSQL store export them from one replica at a time)."
    ),
}


class VerdictSource(Protocol):
    """What the collector needs of ``api.verdicts.VerdictHub``."""

    def verdict(self, run_id: str) -> Verdict:
        """The run's verdict now (cached per data version)."""
        ...


@dataclass(frozen=True, slots=True)
class _Latest:
    version: int  # Store.data_version when read
    loss: str  # the loss series read
    validation: tuple[int, float] | None  # (step, loss)
    train: float | None


@dataclass(frozen=True, slots=True)
class _RunQuality:
    run: RunRecord
    latest: _Latest
    gap: float | None
    state: str


class QualityCollector:
    """Per-run model-quality gauges of at most ``max_runs`` running runs, read at scrape time.

    ``collect`` never raises: a run that cannot be read is logged and skipped,
    and a store that cannot list its runs yields no families at all.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from prometheus_client import CollectorRegistry
        >>> from evalstream_server.api.verdicts import VerdictHub
        >>> from evalstream_server.store import NewRun, SQLiteStore
        >>> with tempfile.TemporaryDirectory() as d:
        ...     store = SQLiteStore.open(Path(d))
        ...     run = store.create_run(NewRun(project="p", name="lora-r8"))
        ...     registry = CollectorRegistry()
        ...     registry.register(QualityCollector(store, VerdictHub(store), max_runs=10))
        ...     labels = {"project": "p", "run_id": run.id, "run_name": "lora-r8"}
        ...     state = registry.get_sample_value(
        ...         "evalstream_run_verdict_state", {**labels, "state": "insufficient_data"}
        ...     )
        ...     omitted = registry.get_sample_value("evalstream_quality_runs_omitted")
        ...     store.close()
        >>> state, omitted
        (1.0, 0.0)
    """

    def __init__(self, store: Store, verdicts: VerdictSource, *, max_runs: int) -> None:
        if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
            raise ValueError(f"max_runs must be an integer >= 1, got {max_runs!r}")
        self._store = store
        self._verdicts = verdicts
        self._max_runs = max_runs
        # Runs whose failure was logged: logged again only after they recover,
        # so a broken run costs one log line, not one per scrape.
        self._failing: set[str] = set()
        # Latest losses per exported run, by the run's data version: a run that
        # received nothing since the last scrape is not read again.
        self._latest: dict[str, _Latest] = {}
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        """The families, without samples (registering then costs no store read)."""
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        """The gauges now: on the exporting replica only (`Store.is_exporter`), so that
        a sum over replicas counts each run once; the others export only
        ``evalstream_quality_exporter`` 0."""
        families = self._families()
        if not self._store.is_exporter():
            exporter = families["evalstream_quality_exporter"]
            exporter.add_metric([], 0.0)
            yield exporter
            return
        try:
            runs, omitted = self._newest_running()
        except Exception:  # noqa: BLE001 - a scrape must not fail
            log.warning("quality gauges: cannot list the running runs", exc_info=True)
            return
        failed = 0
        failing: set[str] = set()
        latest: dict[str, _Latest] = {}
        for run in runs:
            try:
                quality = self._read(run, latest)
            except Exception:  # noqa: BLE001 - log and skip the run
                failed += 1
                failing.add(run.id)
                with self._lock:
                    first = run.id not in self._failing
                if first:
                    log.warning(
                        "quality gauges: run skipped",
                        extra={"fields": {"run_id": run.id, "project": run.project}},
                        exc_info=True,
                    )
                continue
            self._add(families, quality)
        with self._lock:
            # Only runs exported now are remembered: both stay within the cap.
            self._failing = failing
            self._latest = latest
        families["evalstream_quality_runs_omitted"].add_metric([], float(omitted))
        families["evalstream_quality_runs_failed"].add_metric([], float(failed))
        families["evalstream_quality_exporter"].add_metric([], 1.0)
        yield from families.values()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily]:
        families = {}
        for name, doc in _HELP.items():
            if name.startswith("evalstream_quality_"):
                labels: Sequence[str] = ()
            elif name == "evalstream_run_verdict_state":
                labels = (*RUN_LABELS, "state")
            else:
                labels = RUN_LABELS
            families[name] = GaugeMetricFamily(name, doc, labels=labels)
        return families

    def _newest_running(self) -> tuple[list[RunRecord], int]:
        """The ``max_runs`` most recently updated running runs (newest first), and how many more."""
        heap: list[tuple[tuple[float, float, str], RunRecord]] = []
        total = 0
        token = ""
        while True:
            page, token = self._store.list_runs(
                project="", statuses=("running",), page_size=_PAGE, page_token=token
            )
            for run in page:
                total += 1
                item = ((run.updated_at, run.created_at, run.id), run)  # ids are unique
                if len(heap) < self._max_runs:
                    heapq.heappush(heap, item)
                elif item[0] > heap[0][0]:
                    heapq.heapreplace(heap, item)
            if not token:
                break
        newest = [run for _key, run in sorted(heap, key=lambda i: i[0], reverse=True)]
        return newest, total - len(newest)

    def _read(self, run: RunRecord, latest: dict[str, _Latest]) -> _RunQuality:
        loss = VerdictConfig.from_mapping(run.verdict_config).loss_series
        verdict = self._verdicts.verdict(run.id)
        # The version is read before the points: a write in between makes the
        # next scrape read again, never keeps a stale value.
        version = self._store.data_version(run.id)
        with self._lock:
            known = self._latest.get(run.id)
        if known is None or known.version != version or known.loss != loss:
            last = {s.split: s for s in self._store.last_points(run.id, 1) if s.name == loss}
            validation = train = None
            val_series = last.get("validation")
            if val_series is not None and len(val_series.steps):
                validation = (int(val_series.steps[-1]), float(val_series.values[-1]))
            train_series = last.get("train")
            if train_series is not None and len(train_series.steps):
                train = float(train_series.values[-1])
            known = _Latest(version, loss, validation, train)
        latest[run.id] = known
        return _RunQuality(run, known, verdict.evidence.gap, verdict.state)

    @staticmethod
    def _add(families: dict[str, GaugeMetricFamily], q: _RunQuality) -> None:
        labels = [q.run.project, q.run.id, q.run.name]
        if q.latest.validation is not None:
            step, value = q.latest.validation
            families["evalstream_run_validation_loss"].add_metric(labels, value)
            families["evalstream_run_validation_step"].add_metric(labels, float(step))
        if q.latest.train is not None:
            families["evalstream_run_train_loss"].add_metric(labels, q.latest.train)
        if q.gap is not None:
            families["evalstream_run_generalization_gap"].add_metric(labels, q.gap)
        state = families["evalstream_run_verdict_state"]
        for name in STATES:
            state.add_metric([*labels, name], 1.0 if name == q.state else 0.0)


def install_quality_gauges(
    metrics: ServiceMetrics,
    store: Store,
    verdicts: VerdictSource,
    *,
    enabled: bool,
    max_runs: int,
) -> None:
    """Registers the quality gauges on the server's registry when `enabled` (``--quality-gauges``).

    `store` is the unscoped store (the gauges cover every project) and
    `verdicts` the server's ``VerdictHub``, so scrapes share its analyzers and
    cache with GetVerdict and WatchVerdict.

    Raises:
        ValueError: `max_runs` < 1.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from evalstream_server.api.verdicts import VerdictHub
        >>> from evalstream_server.store import SQLiteStore
        >>> with tempfile.TemporaryDirectory() as d:
        ...     store = SQLiteStore.open(Path(d))
        ...     metrics = ServiceMetrics()
        ...     install_quality_gauges(
        ...         metrics, store, VerdictHub(store), enabled=True, max_runs=50
        ...     )
        ...     omitted = metrics.registry.get_sample_value("evalstream_quality_runs_omitted")
        ...     store.close()
        >>> omitted
        0.0
    """
    if not enabled:
        return
    metrics.registry.register(QualityCollector(store, verdicts, max_runs=max_runs))
