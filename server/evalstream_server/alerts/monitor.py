"""Alert detection: a run's verdict re-evaluated after writes, alerts on transitions.

The ingest path only hands the committed chunk over (`points`: a list append under a
lock, the arrays by reference); a thread waits ``debounce`` seconds for more writes,
then feeds each touched run's own incremental analyzer (built from the store on first
use, bounded in number) and evaluates its verdict once. StreamLoss acks never wait
for an analyzer, so alerting leaves ingest throughput as it is. A transition
into an alerting state (:data:`ALERT_STATES`, from any other state, or from another
alerting state) queues one alert per webhook: the server's and the run's own. Runs
without any webhook are never evaluated.

The last alerted state of each run is kept in ``<data-dir>/alerts-state.json`` (runs
whose latest state is an alerting one), so that after a restart the first evaluation
of a run does not alert again a state already alerted before it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalstream_server.alerts.delivery import Dispatcher
from evalstream_server.alerts.payload import alert_payload, slack_payload
from evalstream_server.analysis.verdict import RunAnalyzer, Verdict, VerdictConfig, build_analyzer
from evalstream_server.store import NotFound, RunRecord, Store, Webhook

__all__ = ["ALERT_STATES", "AlertMonitor"]

log = logging.getLogger("evalstream.alerts")

#: Verdict states that alert when a run turns into them.
ALERT_STATES = ("diverged", "overfitting", "not_learning")
#: Most runs remembered in the state file (the oldest entries go first).
MAX_REMEMBERED = 100_000
#: Most runs with an analyzer kept (the least recently written are rebuilt when needed).
MAX_TRACKED = 4096
#: Most points waiting for a run's analyzer; beyond, it is rebuilt from the store.
MAX_PENDING_POINTS = 2_000_000

_Chunk = tuple[str, str, np.ndarray, np.ndarray]


@dataclass
class _Tracked:
    """A run's analyzer and the chunks committed since it was last fed."""

    analyzer: RunAnalyzer | None = None  # None: build from the store
    last: dict[tuple[str, str], int] = field(default_factory=dict)  # last step fed per series
    pending: list[_Chunk] = field(default_factory=list)
    pending_points: int = 0
    checkpoints: bool = False  # checkpoint metrics changed since last read


class AlertMonitor:
    """Re-evaluates touched runs a moment after their writes and queues alerts on transitions."""

    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        *,
        webhooks: Sequence[Webhook] = (),
        debounce: float = 1.0,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runs: OrderedDict[str, _Tracked] = OrderedDict()
        self._dispatcher = dispatcher
        self._webhooks = tuple(webhooks)
        self._debounce = debounce
        self._state_path = state_path
        self._clock = clock
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Last state seen per run (this process; as many as MAX_TRACKED, the most
        # recently evaluated), and last alerted state (persisted).
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._alerted: dict[str, str] = self._load()
        # Runs found to have no webhook: never evaluated (a run's webhooks never change).
        self._silent: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="alerts-monitor", daemon=True)
        self._thread.start()

    def points(
        self, run_id: str, split: str, series: str, steps: np.ndarray, values: np.ndarray
    ) -> None:
        """A chunk of this run committed (called on the ingest path: cheap, never blocks)."""
        if run_id in self._silent:
            return
        with self._lock:
            t = self._track(run_id)
            if t.pending_points + len(steps) > MAX_PENDING_POINTS:
                t.analyzer, t.pending, t.pending_points = None, [], 0  # rebuild instead
            else:
                t.pending.append((split, series, steps, values))
                t.pending_points += len(steps)
            self._dirty.add(run_id)
        self._wake.set()

    def checkpoints(self, run_id: str) -> None:
        """Checkpoint metrics of this run changed."""
        if run_id in self._silent:
            return
        with self._lock:
            self._track(run_id).checkpoints = True
            self._dirty.add(run_id)
        self._wake.set()

    def _track(self, run_id: str) -> _Tracked:
        """The run's entry, most recent last (call with the lock held)."""
        t = self._runs.get(run_id)
        if t is None:
            t = self._runs[run_id] = _Tracked()
            while len(self._runs) > MAX_TRACKED:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(run_id)
        return t

    def close(self) -> None:
        """Stops evaluating; runs touched but not yet evaluated are evaluated first."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    # ------------------------------------------------------------ evaluation

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._stop.wait(self._debounce)  # let a burst of chunks land first
            self._wake.clear()
            self.evaluate_pending()
        self.evaluate_pending()

    def evaluate_pending(self) -> None:
        """Evaluates every touched run now (the loop calls it after the debounce)."""
        with self._lock:
            runs, self._dirty = self._dirty, set()
        for run_id in sorted(runs):
            try:
                self._evaluate(run_id)
            except NotFound:
                pass  # deleted meanwhile
            except Exception:  # noqa: BLE001 - one bad run must not stop alerts for the others
                log.exception("alert evaluation failed", extra={"fields": {"run_id": run_id}})

    def _evaluate(self, run_id: str) -> None:
        run = self._store.get_run(run_id)
        targets = self._webhooks + run.alert_webhooks
        if not targets:
            if len(self._silent) >= MAX_REMEMBERED:
                self._silent.clear()  # looked up again when written to: a store read each
            self._silent.add(run_id)
            with self._lock:
                self._runs.pop(run_id, None)
            return
        verdict = self.verdict(run)
        state = verdict.state
        previous = self._seen.get(run_id) or self._alerted.get(run_id) or "unknown"
        self._seen[run_id] = state
        self._seen.move_to_end(run_id)
        if len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)
        if state == self._alerted.get(run_id):
            return  # already alerted (possibly before a restart)
        if state not in ALERT_STATES:
            if run_id in self._alerted:
                del self._alerted[run_id]  # it left the state: a return alerts again
                self._save()
            return
        self._alerted[run_id] = state
        self._save()
        payload = alert_payload(run, verdict, previous, server_time=self._clock())
        log.info(
            "alert",
            extra={"fields": {"run_id": run_id, "state": state, "previous_state": previous}},
        )
        for hook in targets:
            body = slack_payload(payload) if hook.format == "slack" else payload
            self._dispatcher.submit(hook.url, hook.format, body)

    def verdict(self, run: RunRecord) -> Verdict:
        """The run's verdict for its stored thresholds: its analyzer fed the chunks
        committed since the last call, or built from the store."""
        with self._lock:
            t = self._track(run.id)
            analyzer, chunks, reload = t.analyzer, t.pending, t.checkpoints
            t.pending, t.pending_points, t.checkpoints = [], 0, False
        if analyzer is None or analyzer.stale:
            # Chunks committed from here on are pending again; those the read below also
            # returns are skipped by step (`last`) when fed.
            config = VerdictConfig.from_mapping(run.verdict_config)
            stored = self._store.read_series(run.id)
            analyzer = build_analyzer(stored, self._store.checkpoints(run.id), config)
            last = {(d.split, d.name): int(d.steps.max()) for d in stored if len(d.steps)}
            with self._lock:
                t = self._track(run.id)
                t.analyzer, t.last = analyzer, last
            return analyzer.verdict()
        with self._lock:
            last = t.last
        # One feed per series (a call costs more than its points when chunks are small).
        grouped: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        for split, series, steps, values in chunks:
            grouped.setdefault((split, series), []).append((steps, values))
        for key, parts in grouped.items():
            steps = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
            values = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
            if key in last:
                keep = steps > last[key]
                steps, values = steps[keep], values[keep]
            if len(steps):
                analyzer.add_points(key[0], key[1], steps, values)
                last[key] = int(steps.max())
        if reload:
            analyzer.set_checkpoints(self._store.checkpoints(run.id))
        return analyzer.verdict()

    # ------------------------------------------------------------ persistence

    def _load(self) -> dict[str, str]:
        if self._state_path is None:
            return {}
        try:
            data = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning(
                "alert state unreadable: runs may alert again",
                extra={"fields": {"path": str(self._state_path)}},
                exc_info=True,
            )
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if v in ALERT_STATES}

    def _save(self) -> None:
        if self._state_path is None:
            return
        while len(self._alerted) > MAX_REMEMBERED:
            del self._alerted[next(iter(self._alerted))]
        tmp = self._state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self._alerted, sort_keys=True))
            os.replace(tmp, self._state_path)
        except OSError:
            log.warning(
                "cannot write the alert state",
                extra={"fields": {"path": str(self._state_path)}},
                exc_info=True,
            )
