"""The alert monitor: one alert per transition into an alerting state, kept over restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from evalstream_server.alerts.monitor import AlertMonitor
from evalstream_server.analysis.verdict import verdict_from_series
from evalstream_server.store import NewRun, SQLiteStore, Webhook
from evalstream_server.store._types import RunRecord


class Verdicts:
    """A verdict source whose state the test sets."""

    def __init__(self) -> None:
        self.state = "healthy"
        self.base = verdict_from_series(None, None)

    def verdict(self, run_id: str) -> Any:
        from dataclasses import replace

        return replace(self.base, state=self.state, summary=f"now {self.state}")


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
    return AlertMonitor(
        store,
        verdicts,
        dispatched,  # type: ignore[arg-type]
        debounce=3600,  # the test evaluates by hand
        state_path=tmp_path / "alerts-state.json",
        clock=lambda: 1234.5,
        **kw,
    )


def _states(monitor: AlertMonitor, verdicts: Verdicts, run: RunRecord, states: list[str]) -> None:
    for state in states:
        verdicts.state = state
        monitor.touched(run.id)
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
