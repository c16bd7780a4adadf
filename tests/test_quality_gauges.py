"""The model-quality gauges (evalstream_server.quality) over a real SQLiteStore and VerdictHub."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from evalstream_server.analysis.verdict import STATES, Verdict
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.observability import ServiceMetrics
from evalstream_server.quality import QualityCollector, VerdictSource, install_quality_gauges
from evalstream_server.store import NewRun, PointChunk, RunRecord, SeriesData, SQLiteStore
from prometheus_client import CollectorRegistry

RUN_GAUGES = (
    "evalstream_run_validation_loss",
    "evalstream_run_validation_step",
    "evalstream_run_train_loss",
    "evalstream_run_generalization_gap",
    "evalstream_run_verdict_state",
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "evalstream.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def hub(store: SQLiteStore) -> VerdictHub:
    return VerdictHub(store)


def scrape(store: SQLiteStore, verdicts: VerdictSource, max_runs: int = 50) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(QualityCollector(store, verdicts, max_runs=max_runs))
    return registry


def labels(run: RunRecord, **extra: str) -> dict[str, str]:
    return {"project": run.project, "run_id": run.id, "run_name": run.name, **extra}


def write(store: SQLiteStore, run: RunRecord, split: str, steps: object, values: object) -> None:
    store.write_points(
        PointChunk(
            run.id,
            split,
            "loss",
            np.asarray(steps, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
        )
    )


def converged_run(store: SQLiteStore, name: str = "converged") -> RunRecord:
    """Training loss 2.0 falling linearly to 1.0 at step 150, flat to 200; validation to 1.12.

    The training loss is flat around step 200, so its smoothed level there is
    1.0 whatever the window: the gap is 1.12 - 1.0. The verdict is healthy
    ("converged at a plateau", 48% below the start).
    """
    run = store.create_run(NewRun(project="vision", name=name))
    steps = np.arange(0, 201, 5)
    write(store, run, "train", steps, np.where(steps < 150, 2.0 - steps / 150, 1.0))
    write(
        store,
        run,
        "validation",
        np.arange(20, 201, 20),
        [1.9, 1.75, 1.6, 1.5, 1.4, 1.3, 1.25, 1.2, 1.15, 1.12],
    )
    return run


def present(registry: CollectorRegistry, prefix: str) -> set[str]:
    return {
        sample.name
        for family in registry.collect()
        for sample in family.samples
        if sample.name.startswith(prefix)
    }


def test_quality_latest_losses_gap_and_state(store: SQLiteStore, hub: VerdictHub) -> None:
    run = converged_run(store)
    registry = scrape(store, hub)
    get = registry.get_sample_value
    assert get("evalstream_run_validation_loss", labels(run)) == 1.12
    assert get("evalstream_run_validation_step", labels(run)) == 200
    assert get("evalstream_run_train_loss", labels(run)) == 1.0
    assert get("evalstream_run_generalization_gap", labels(run)) == pytest.approx(0.12, abs=1e-12)
    # The gap is the verdict's, not a second computation of it.
    assert get("evalstream_run_generalization_gap", labels(run)) == hub.verdict(run.id).evidence.gap
    states = {s: get("evalstream_run_verdict_state", labels(run, state=s)) for s in STATES}
    assert states == {s: 1.0 if s == "healthy" else 0.0 for s in STATES}
    assert get("evalstream_quality_runs_omitted") == 0
    assert get("evalstream_quality_runs_failed") == 0


def test_quality_latest_is_the_largest_step_not_the_last_written(
    store: SQLiteStore, hub: VerdictHub
) -> None:
    run = store.create_run(NewRun(project="p", name="late"))
    write(store, run, "validation", [10, 30], [0.9, 0.7])
    write(store, run, "validation", [20], [0.8])  # a late point, written last
    registry = scrape(store, hub)
    assert registry.get_sample_value("evalstream_run_validation_loss", labels(run)) == 0.7
    assert registry.get_sample_value("evalstream_run_validation_step", labels(run)) == 30


def test_quality_run_without_data(store: SQLiteStore, hub: VerdictHub) -> None:
    run = store.create_run(NewRun(project="p", name="empty"))
    registry = scrape(store, hub)
    for name in RUN_GAUGES[:4]:
        assert registry.get_sample_value(name, labels(run)) is None, name
    state = labels(run, state="insufficient_data")
    assert registry.get_sample_value("evalstream_run_verdict_state", state) == 1


def test_quality_nan_loss_is_exported(store: SQLiteStore, hub: VerdictHub) -> None:
    run = store.create_run(NewRun(project="p", name="blown"))
    write(store, run, "train", [0, 1, 2], [2.0, 1.9, math.inf])
    write(store, run, "validation", [0, 2], [2.1, math.nan])
    registry = scrape(store, hub)
    get = registry.get_sample_value
    val = get("evalstream_run_validation_loss", labels(run))
    assert val is not None and math.isnan(val)
    assert get("evalstream_run_train_loss", labels(run)) == math.inf
    assert get("evalstream_run_validation_step", labels(run)) == 2
    # A non-finite loss is "diverged"; the verdict has no gap then, and none is exported.
    assert get("evalstream_run_verdict_state", labels(run, state="diverged")) == 1
    assert get("evalstream_run_verdict_state", labels(run, state="healthy")) == 0
    assert get("evalstream_run_generalization_gap", labels(run)) is None


def test_quality_cap_exports_the_newest_runs(store: SQLiteStore, hub: VerdictHub) -> None:
    a, b, c = (store.create_run(NewRun(project="p", name=n)) for n in "abc")
    registry = scrape(store, hub, max_runs=2)
    state = "evalstream_run_verdict_state"
    exported = {
        run.name
        for run in (a, b, c)
        if registry.get_sample_value(state, labels(run, state="insufficient_data")) is not None
    }
    assert exported == {"b", "c"}
    assert registry.get_sample_value("evalstream_quality_runs_omitted") == 1
    # Updating a run (here: its status) makes it the newest.
    store.set_status(a.id, "finished")
    a = store.set_status(a.id, "running")
    registry = scrape(store, hub, max_runs=2)
    exported = {
        run.name
        for run in (a, b, c)
        if registry.get_sample_value(state, labels(run, state="insufficient_data")) is not None
    }
    assert exported == {"a", "c"}


def test_quality_cap_counts_across_pages(store: SQLiteStore, hub: VerdictHub) -> None:
    # More running runs than one page of list_runs (500).
    runs = [store.create_run(NewRun(project="p", name=f"r{i}")) for i in range(502)]
    registry = scrape(store, hub, max_runs=3)
    assert registry.get_sample_value("evalstream_quality_runs_omitted") == 499
    newest = [
        run.name
        for run in runs
        if registry.get_sample_value(
            "evalstream_run_verdict_state", labels(run, state="insufficient_data")
        )
        is not None
    ]
    assert newest == ["r499", "r500", "r501"]


def test_quality_finished_runs_are_excluded(store: SQLiteStore, hub: VerdictHub) -> None:
    live = converged_run(store, "live")
    for status, name in (("finished", "done"), ("failed", "crashed"), ("killed", "stopped")):
        ended = converged_run(store, name)
        store.set_status(ended.id, status)
    registry = scrape(store, hub)
    run_ids = {
        sample.labels["run_id"]
        for family in registry.collect()
        for sample in family.samples
        if sample.name.startswith("evalstream_run_")
    }
    assert run_ids == {live.id}
    assert registry.get_sample_value("evalstream_quality_runs_omitted") == 0


class CountingStore:
    """The real store, counting `last_points` calls."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store, self.tail_reads = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def last_points(self, run_id: str, n: int = 1) -> list[SeriesData]:
        self.tail_reads += 1
        return self.store.last_points(run_id, n)


def test_quality_reads_a_run_again_only_after_a_write(store: SQLiteStore, hub: VerdictHub) -> None:
    run = converged_run(store)
    counting = CountingStore(store)
    registry = scrape(counting, hub)  # type: ignore[arg-type]
    assert registry.get_sample_value("evalstream_run_validation_loss", labels(run)) == 1.12
    assert registry.get_sample_value("evalstream_run_validation_loss", labels(run)) == 1.12
    assert counting.tail_reads == 1
    write(store, run, "validation", [220], [1.11])
    hub.points(run.id, "validation", "loss", np.array([220]), np.array([1.11]))  # as ingest does
    assert registry.get_sample_value("evalstream_run_validation_loss", labels(run)) == 1.11
    assert registry.get_sample_value("evalstream_run_validation_step", labels(run)) == 220
    assert counting.tail_reads == 2


class FailingHub:
    """The real hub, except for one run whose verdict raises."""

    def __init__(self, hub: VerdictHub, broken: str) -> None:
        self.hub, self.broken, self.calls = hub, broken, 0

    def verdict(self, run_id: str) -> Verdict:
        self.calls += 1
        if run_id == self.broken:
            raise RuntimeError("analyzer exploded")
        return self.hub.verdict(run_id)


def test_quality_failing_run_is_skipped(
    store: SQLiteStore, hub: VerdictHub, caplog: pytest.LogCaptureFixture
) -> None:
    good = converged_run(store, "good")
    bad = converged_run(store, "bad")
    verdicts = FailingHub(hub, bad.id)
    collector = QualityCollector(store, verdicts, max_runs=50)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    assert verdicts.calls == 0  # registering describes, it does not compute
    with caplog.at_level(logging.WARNING, logger="evalstream.quality"):
        assert registry.get_sample_value("evalstream_run_train_loss", labels(good)) == 1.0
        assert registry.get_sample_value("evalstream_run_train_loss", labels(bad)) is None
        assert registry.get_sample_value("evalstream_quality_runs_failed") == 1
        registry.get_sample_value("evalstream_quality_runs_failed")  # a second scrape
    # Every gauge of the failing run is left out, not just the verdict's.
    assert present(registry, "evalstream_run_") == set(RUN_GAUGES)
    skipped = [r for r in caplog.records if r.getMessage() == "quality gauges: run skipped"]
    assert len(skipped) == 1  # logged once, not once per scrape
    assert skipped[0].fields["run_id"] == bad.id  # type: ignore[attr-defined]


def test_quality_bad_verdict_config_is_skipped(store: SQLiteStore, hub: VerdictHub) -> None:
    # The store accepts any verdict_config mapping; the hub refuses unknown keys.
    good = converged_run(store, "good")
    bad = store.create_run(NewRun(project="p", name="bad", verdict_config={"patiense": 3}))
    registry = scrape(store, hub)
    assert registry.get_sample_value("evalstream_run_train_loss", labels(good)) == 1.0
    assert (
        registry.get_sample_value(
            "evalstream_run_verdict_state", labels(bad, state="insufficient_data")
        )
        is None
    )
    assert registry.get_sample_value("evalstream_quality_runs_failed") == 1


def test_quality_follows_the_runs_loss_series(store: SQLiteStore, hub: VerdictHub) -> None:
    run = store.create_run(NewRun(project="p", name="custom", verdict_config={"loss_series": "ce"}))
    store.write_points(PointChunk(run.id, "train", "ce", np.array([5]), np.array([0.4])))
    write(store, run, "train", [5], [9.0])  # "loss" is not this run's loss
    registry = scrape(store, hub)
    assert registry.get_sample_value("evalstream_run_train_loss", labels(run)) == 0.4


def test_quality_closed_store_does_not_break_the_scrape(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "closed.db")
    converged_run(store)
    registry = scrape(store, VerdictHub(store))
    store.close()
    assert present(registry, "evalstream_") == set()


def test_quality_max_runs_must_be_positive(store: SQLiteStore, hub: VerdictHub) -> None:
    with pytest.raises(ValueError, match="max_runs must be an integer >= 1, got 0"):
        QualityCollector(store, hub, max_runs=0)


@pytest.mark.parametrize("enabled", [False, True])
def test_quality_gauges_only_with_the_flag(
    store: SQLiteStore, hub: VerdictHub, enabled: bool
) -> None:
    converged_run(store)
    metrics = ServiceMetrics()
    install_quality_gauges(metrics, store, hub, enabled=enabled, max_runs=50)
    names = present(metrics.registry, "evalstream_run_") | present(
        metrics.registry, "evalstream_quality_"
    )
    if enabled:
        assert names == {
            *RUN_GAUGES,
            "evalstream_quality_runs_omitted",
            "evalstream_quality_runs_failed",
            "evalstream_quality_exporter",
        }
    else:
        assert names == set()
        # The rest of the registry is still there.
        assert "evalstream_store_commit_seconds_count" in present(metrics.registry, "evalstream_")
