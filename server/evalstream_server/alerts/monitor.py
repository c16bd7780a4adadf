"""Alert detection: a run's verdict re-evaluated after writes, alerts on transitions.

The ingest path only marks a run touched (a set insert, `touched`); a thread waits
``debounce`` seconds for more writes, then evaluates each touched run once through the
shared ``VerdictHub`` (an analyzer built once, then fed chunk by chunk). A transition
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from evalstream_server.alerts.delivery import Dispatcher
from evalstream_server.alerts.payload import alert_payload, slack_payload
from evalstream_server.analysis.verdict import Verdict
from evalstream_server.store import NotFound, Store, Webhook

__all__ = ["ALERT_STATES", "AlertMonitor", "VerdictSource"]

log = logging.getLogger("evalstream.alerts")

#: Verdict states that alert when a run turns into them.
ALERT_STATES = ("diverged", "overfitting", "not_learning")
#: Most runs remembered in the state file (the oldest entries go first).
MAX_REMEMBERED = 100_000


class VerdictSource(Protocol):
    """What the monitor needs of ``api.verdicts.VerdictHub``."""

    def verdict(self, run_id: str) -> Verdict:
        """The run's verdict now."""
        ...


class AlertMonitor:
    """Re-evaluates touched runs a moment after their writes and queues alerts on transitions."""

    def __init__(
        self,
        store: Store,
        verdicts: VerdictSource,
        dispatcher: Dispatcher,
        *,
        webhooks: Sequence[Webhook] = (),
        debounce: float = 1.0,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._verdicts = verdicts
        self._dispatcher = dispatcher
        self._webhooks = tuple(webhooks)
        self._debounce = debounce
        self._state_path = state_path
        self._clock = clock
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Last state seen per run (this process), and last alerted state (persisted).
        self._seen: dict[str, str] = {}
        self._alerted: dict[str, str] = self._load()
        # Runs found to have no webhook: never evaluated (a run's webhooks never change).
        self._silent: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name="alerts-monitor", daemon=True)
        self._thread.start()

    def touched(self, run_id: str) -> None:
        """A write to this run committed (called on the ingest path: cheap, never blocks)."""
        if run_id in self._silent:
            return
        with self._lock:
            self._dirty.add(run_id)
        self._wake.set()

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
            self._silent.add(run_id)
            return
        verdict = self._verdicts.verdict(run_id)
        state = verdict.state
        previous = self._seen.get(run_id) or self._alerted.get(run_id) or "unknown"
        self._seen[run_id] = state
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
