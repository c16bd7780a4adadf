"""The alert monitor: one alert per transition into an alerting state, kept over restarts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evalstream_server.alerts.monitor import AlertMonitor
from evalstream_server.analysis.verdict import verdict_from_series
from evalstream_server.store import NewRun, PointChunk, SQLiteStore, Webhook
from evalstream_server.store._types import RunRecord


class Verdicts:
    """Verdict states the test sets."""

    def __init__(self) -> None:
        self.state = "healthy"


class Scripted(AlertMonitor):
    """A monitor whose verdict is the state the test sets (the rest is the real monitor)."""

    def __init__(self, *args: Any, verdicts: Verdicts, **kw: Any) -> None:
        self.scripted = verdicts
        super().__init__(*args, **kw)

    def verdict(self, run: RunRecord) -> Any:
        state = self.scripted.state
        return replace(verdict_from_series(None, None), state=state, summary=f"now {state}")


class Dispatched:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def submit(self, url: str, fmt: str, payload: dict[str, Any]) -> bool:
        self.sent.append((url, fmt, payload))
        return True


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore.open(tmp_path)
    yield s
    s.close()


def _monitor(store, verdicts, dispatched, tmp_path: Path, **kw: Any) -> AlertMonitor:
    return Scripted(
        store,
        dispatched,
        verdicts=verdicts,
        debounce=3600,  # the test evaluates by hand
        state_path=tmp_path / "alerts-state.json",
        clock=lambda: 1234.5,
        **kw,
    )


def _states(monitor: AlertMonitor, verdicts: Verdicts, run: RunRecord, states: list[str]) -> None:
    for state in states:
        verdicts.state = state
        monitor.checkpoints(run.id)  # any write marks the run
        monitor.evaluate_pending()


def test_monitor_alerts_once_per_transition(store, tmp_path: Path) -> None:
    run = store.create_run(NewRun(project="p", name="r"))
    verdicts, out = Verdicts(), Dispatched()
    m = _monitor(store, verdicts, out, tmp_path, webhooks=[Webhook("http://a.example/", "json")])
    _states(m, verdicts, run, ["healthy", "overfitting", "overfitting", "healthy", "overfitting"])
    _states(m, verdicts, run, ["diverged", "diverged"])
    m.close()
    got = [(p["previous_state"], p["state"]) for _url, _fmt, p in out.sent]
    assert got == [
        ("healthy", "overfitting"),
        ("healthy", "overfitting"),
        ("overfitting", "diverged"),
    ]
    first = out.sent[0][2]
    assert (first["run_id"], first["project"], first["name"]) == (run.id, "p", "r")
    assert (first["summary"], first["server_time"]) == ("now overfitting", 1234.5)


def test_monitor_sends_to_server_and_run_webhooks_in_their_formats(store, tmp_path) -> None:
    run = store.create_run(
        NewRun(project="p", name="r", alert_webhooks=(Webhook("http://run.example/", "slack"),))
    )
    verdicts, out = Verdicts(), Dispatched()
    m = _monitor(store, verdicts, out, tmp_path, webhooks=[Webhook("http://srv.example/", "json")])
    _states(m, verdicts, run, ["not_learning"])
    m.close()
    assert [(url, fmt) for url, fmt, _ in out.sent] == [
        ("http://srv.example/", "json"),
        ("http://run.example/", "slack"),
    ]
    slack = out.sent[1][2]
    assert set(slack) == {"text", "blocks"}
    assert "p/r" in slack["text"] and "not_learning" in slack["text"]


def test_monitor_skips_runs_without_webhooks(store, tmp_path) -> None:
    run = store.create_run(NewRun(project="p", name="r"))
    verdicts, out = Verdicts(), Dispatched()
    m = _monitor(store, verdicts, out, tmp_path)
    _states(m, verdicts, run, ["diverged"])
    m.close()
    assert out.sent == []


def test_monitor_does_not_realert_after_restart(store, tmp_path) -> None:
    run = store.create_run(NewRun(project="p", name="r"))
    hooks = [Webhook("http://a.example/", "json")]
    verdicts, out = Verdicts(), Dispatched()
    m = _monitor(store, verdicts, out, tmp_path, webhooks=hooks)
    _states(m, verdicts, run, ["healthy", "diverged"])
    m.close()
    assert len(out.sent) == 1
    # A new process: the first evaluation sees the state already alerted.
    again = Dispatched()
    m2 = _monitor(store, verdicts, again, tmp_path, webhooks=hooks)
    _states(m2, verdicts, run, ["diverged"])
    assert again.sent == []
    # Leaving the state and entering another alerting one alerts again.
    _states(m2, verdicts, run, ["overfitting"])
    m2.close()
    assert [(p["previous_state"], p["state"]) for _u, _f, p in again.sent] == [
        ("diverged", "overfitting")
    ]


class ReadCounting:
    """The store, counting full series reads (an analyzer built from scratch)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.series_reads = 0

    def read_series(self, *args: Any, **kw: Any) -> Any:
        self.series_reads += 1
        return self.store.read_series(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _write(store, monitor: AlertMonitor, run_id: str, steps, values) -> None:
    """Commits a chunk, then tells the monitor, as the servicer does through the hub."""
    steps, values = np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)
    store.write_points(PointChunk(run_id, "train", "loss", steps, values))
    monitor.points(run_id, "train", "loss", steps, values)


def test_monitor_feeds_its_analyzer_and_alerts_on_nan(store, tmp_path) -> None:
    """Real verdicts: built from the store at first, then fed chunk by chunk."""
    hooks = [Webhook("http://a.example/", "json")]
    run = store.create_run(NewRun(project="p", name="r"))
    out = Dispatched()
    reads = ReadCounting(store)
    m = AlertMonitor(reads, out, webhooks=hooks, debounce=3600, clock=lambda: 1.0)  # type: ignore[arg-type]
    falling = [2.0 * 0.99**i + 0.3 for i in range(200)]
    _write(store, m, run.id, range(100), falling[:100])
    m.evaluate_pending()  # built from the store
    # A chunk already in the store when the analyzer is built, and pending too: the
    # steps the store read returned are skipped, so the analyzer does not go stale.
    _write(store, m, run.id, range(100, 150), falling[100:150])
    m.points(run.id, "train", "loss", np.arange(140, 150), np.asarray(falling[140:150]))
    m.evaluate_pending()
    assert out.sent == []
    assert m.verdict(run).state == "healthy"
    assert reads.series_reads == 1  # fed since, never rebuilt
    _write(store, m, run.id, range(150, 153), [float("nan")] * 3)
    m.evaluate_pending()
    _write(store, m, run.id, range(153, 160), [float("inf")] * 7)
    m.evaluate_pending()
    m.close()
    assert [(p["previous_state"], p["state"], p["as_of_step"]) for _u, _f, p in out.sent] == [
        ("healthy", "diverged", 152)
    ]
    assert out.sent[0][2]["summary"] == "The loss became NaN or infinite at step 150."
