"""Live verdicts: one incremental analyzer per watched run, fed as chunks commit.

An analyzer is built from the store when a run's verdict is first asked for, kept (least
recently used dropped beyond ``max_runs``) and fed each committed chunk, so a verdict costs
a look at a bounded summary, and runs nobody watches cost nothing. Watchers are pushed a
verdict when it changes (`verdict_key`).

Several replicas on one database: writes through this replica feed its analyzers as
above; writes through another arrive as news from the store (`Store.follow`: the run id
only), and a sync thread then reads what changed (`VerdictHub._sync`): each series' points
past the analyzer's last step, the checkpoint rows, saved paths and status, or the whole
run again when a write changed points at or before a series' end. A verdict asked for
after another replica acked a write (before its news arrived) reads the run's mark first
(`Store.change_mark`), so no replica answers from before a write it could read.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from evalstream_server.analysis.verdict import (
    Logged,
    RunAnalyzer,
    Verdict,
    VerdictConfig,
    build_analyzer,
)
from evalstream_server.store import ChangeMark, Store

log = logging.getLogger("evalstream.verdicts")

FINISHED = ("finished", "failed", "killed")


def verdict_key(v: Verdict) -> tuple[object, ...]:
    """What counts as a change for watchers."""
    es = v.early_stopping
    return (
        v.state,
        v.severity,
        es.best_step,
        es.should_stop,
        es.best_checkpoint_path,
        tuple((c.step, c.metric, c.grade, c.path) for c in v.checkpoints),
    )


@dataclass
class _Watched:
    analyzer: RunAnalyzer
    config: VerdictConfig
    version: int = 0
    ended: bool = False
    cond: threading.Condition = field(default_factory=threading.Condition)
    syncing: threading.Lock = field(default_factory=threading.Lock)
    watchers: int = 0
    # The run's `ChangeMark.version` that every other replica's write up to is in the
    # analyzer (0 on a store only this process writes).
    synced: int = 0
    # The last verdict per set of overrides, with the version it was computed at:
    # a hundred watchers woken by one chunk share one computation.
    cached: dict[tuple[tuple[str, str], ...], tuple[int, Verdict]] = field(default_factory=dict)


class HubClosed(Exception):
    """The server is stopping: a watch ends (UNAVAILABLE), and its client reconnects."""


class VerdictHub:
    """Keeps analyzers of runs being looked at, and wakes their watchers."""

    def __init__(self, store: Store, *, max_runs: int = 1024) -> None:
        self._store = store
        self._max_runs = max_runs
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, _Watched] = OrderedDict()
        self._closed = False
        # Told of each write, on the writer's thread (the event loop for StreamLoss):
        # must be cheap (the alert monitor queues the chunk for its own thread).
        self.on_points: list[Callable[[str, str, str, np.ndarray, np.ndarray], None]] = []
        self.on_checkpoints: list[Callable[[str], None]] = []
        # Runs other replicas changed, for the sync thread (started on the first news).
        self._due: set[str] = set()
        self._due_cond = threading.Condition(threading.Lock())
        self._syncer: threading.Thread | None = None
        store.follow(self._others_wrote, self._news_missed)

    def close(self) -> None:
        """Ends every watch with `HubClosed`: a stopping server does not wait out its grace
        period for streams that would never end by themselves."""
        with self._lock:
            self._closed = True
            entries = list(self._runs.values())
        for entry in entries:
            with entry.cond:
                entry.cond.notify_all()
        with self._due_cond:
            self._due_cond.notify_all()

    def _config(self, run_id: str) -> VerdictConfig:
        run = self._store.get_run(run_id)  # NotFound propagates
        return VerdictConfig.from_mapping(run.verdict_config)

    def _entry(self, run_id: str, *, rebuild: bool = False) -> _Watched:
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is not None and not entry.analyzer.stale and not rebuild:
                self._runs.move_to_end(run_id)
                return entry
        # The mark before the reads: a write after it is read again by the next sync.
        mark = self._store.change_mark(run_id)
        config = self._config(run_id)
        analyzer = build_analyzer(
            self._store.read_series(run_id),
            self._store.checkpoints(run_id),
            config,
            self._store.saved_checkpoints(run_id),
        )
        with self._lock:
            old = self._runs.get(run_id)
            if old is not None:
                old.analyzer, old.config = analyzer, config
                entry = old
            else:
                entry = self._runs[run_id] = _Watched(analyzer, config)
            if mark is not None:
                entry.synced = mark.version
                while len(self._runs) > self._max_runs:
                    victim, gone = next(iter(self._runs.items()))
                    if gone.watchers:  # never evict a watched run
                        self._runs.move_to_end(victim)
                        break
                    del self._runs[victim]
            self._runs.move_to_end(run_id)
        return entry

    def logged(self, run_id: str) -> Logged:
        """The run's series and checkpoint metrics (to check a monitor against).

        Raises:
            NotFound: unknown run.
        """
        return self._entry(run_id).analyzer.logged()

    def verdict(self, run_id: str, overrides: Mapping[str, object] = {}) -> Verdict:
        """The run's verdict now, with `overrides` over its stored thresholds.

        Raises:
            NotFound: unknown run. ValueError: bad overrides (the message names them).
        """
        entry = self._entry(run_id)
        mark = self._store.change_mark(run_id)
        if mark is not None and mark.version > entry.synced and not mark.by_this_replica:
            # Another replica wrote last, and its news has not been read yet.
            entry = self._sync(run_id, mark) or entry
        key = tuple(sorted((k, repr(v)) for k, v in overrides.items()))
        with entry.cond:
            version = entry.version
            hit = entry.cached.get(key)
            if hit is not None and hit[0] == version:
                return hit[1]
        config = entry.config.merged(overrides) if overrides else entry.config
        verdict = entry.analyzer.verdict(config)
        with entry.cond:
            if entry.version == version:
                if len(entry.cached) > 64:
                    entry.cached.clear()
                entry.cached[key] = (version, verdict)
        return verdict

    # ------------------------------------------------------------ feeding

    def _notify(self, run_id: str, mutate: Callable[[_Watched], object]) -> None:
        with self._lock:
            entry = self._runs.get(run_id)
        if entry is None:
            return
        with entry.cond:
            mutate(entry)
            entry.version += 1
            entry.cond.notify_all()

    def points(
        self, run_id: str, split: str, series: str, steps: np.ndarray, values: np.ndarray
    ) -> None:
        """A chunk of this run committed."""
        for hook in self.on_points:
            hook(run_id, split, series, steps, values)
        self._notify(run_id, lambda e: e.analyzer.add_points(split, series, steps, values))

    def checkpoints_changed(self, run_id: str) -> None:
        """Checkpoint metrics of this run changed (LogCheckpoint or a scored batch)."""
        for hook in self.on_checkpoints:
            hook(run_id)
        with self._lock:
            known = run_id in self._runs
        if known:
            rows = self._store.checkpoints(run_id)
            self._notify(run_id, lambda e: e.analyzer.set_checkpoints(rows))

    def saved_checkpoints_changed(self, run_id: str) -> None:
        """Paths of this run's saved checkpoints were recorded (UpdateRun): the verdict
        names them, so its watchers are woken (one small read, only for a run kept here)."""
        with self._lock:
            known = run_id in self._runs
        if known:
            paths = self._store.saved_checkpoints(run_id)
            self._notify(run_id, lambda e: e.analyzer.set_saved_checkpoints(paths))

    def status_changed(self, run_id: str, status: str) -> None:
        """The run's status changed: a finished run ends its watches."""
        if status in FINISHED:
            self._notify(run_id, lambda e: setattr(e, "ended", True))

    # ------------------------------------------------------------ other replicas

    def _others_wrote(self, run_ids: Sequence[str]) -> None:
        """News from the store: other replicas' writes changed these runs (its thread)."""
        with self._lock:
            held = [r for r in run_ids if r in self._runs]
        if held:
            self._queue(held)

    def _news_missed(self) -> None:
        """The store may have missed news: every run held is read again."""
        with self._lock:
            held = list(self._runs)
        self._queue(held)

    def _queue(self, run_ids: Sequence[str]) -> None:
        with self._due_cond:
            self._due.update(run_ids)
            self._due_cond.notify()
            if self._syncer is None:
                self._syncer = threading.Thread(
                    target=self._sync_loop, name="evalstream-verdict-sync", daemon=True
                )
                self._syncer.start()

    def _sync_loop(self) -> None:
        while True:
            with self._due_cond:
                while not self._due and not self._closed:
                    self._due_cond.wait()
                if self._closed:
                    return
                run_id = self._due.pop()
            try:
                self._sync(run_id)
            except Exception:  # noqa: BLE001 - the next news or verdict reads it again
                log.warning(
                    "verdicts: cannot read another replica's write",
                    extra={"fields": {"run_id": run_id}},
                    exc_info=True,
                )

    def _sync(self, run_id: str, mark: ChangeMark | None = None) -> _Watched | None:
        """Brings a held run's analyzer up to the database's mark; returns its entry (None
        when the run is not held). Serialized per run by the entry's sync lock.

        ``mark``: the run's mark as the caller just read it (read here when None). Read
        before the points, it is what the analyzer is then synced to.
        """
        with self._lock:
            entry = self._runs.get(run_id)
        if entry is None:
            return None
        with entry.syncing:
            if mark is None:
                mark = self._store.change_mark(run_id)
            if mark is None or mark.version <= entry.synced:
                return entry
            if mark.rewritten_at > entry.synced or entry.analyzer.stale:
                entry = self._entry(run_id, rebuild=True)  # reads the mark itself
                self._notify(run_id, lambda e: None)
                return entry
            last = entry.analyzer.last_steps()
            tails = []
            for tip in self._store.last_points(run_id, 1):
                known = last.get((tip.split, tip.name))
                if len(tip.steps) and (known is None or int(tip.steps[-1]) > known):
                    tails += self._store.read_series(
                        run_id,
                        splits=[tip.split],
                        series=[tip.name],
                        start_step=None if known is None else known + 1,
                    )
            rows = self._store.checkpoints(run_id)
            paths = self._store.saved_checkpoints(run_id)
            ended = self._store.get_run(run_id).status in FINISHED

            def catch_up(e: _Watched) -> None:
                for tail in tails:
                    if len(tail.steps):
                        e.analyzer.add_points(tail.split, tail.name, tail.steps, tail.values)
                e.analyzer.set_checkpoints(rows)
                e.analyzer.set_saved_checkpoints(paths)
                e.ended = e.ended or ended
                e.synced = max(e.synced, mark.version)

            self._notify(run_id, catch_up)
            return entry

    # ------------------------------------------------------------ watching

    def watch(
        self,
        run_id: str,
        overrides: Mapping[str, object],
        *,
        active: Callable[[], bool],
        poll: float = 0.25,
    ) -> Iterator[Verdict]:
        """The current verdict, then each change, until the run finishes or `active()` is False.

        Woken as `changes` is; the verdict is computed once per wake (cached per data
        version, so a hundred watchers share it) and yielded when it changed.

        Raises:
            HubClosed: the server is stopping (`close`).
        """
        last: Verdict | None = None
        for _ in self.changes(run_id, active=active, poll=poll):
            current = self.verdict(run_id, overrides)
            if last is None or verdict_key(current) != verdict_key(last):
                last = current
                yield current

    def changes(
        self, run_id: str, *, active: Callable[[], bool], poll: float = 0.25
    ) -> Iterator[bool]:
        """Wakes on each write to the run, as `watch` does, without computing a verdict.

        Yields once at once, then after each change (several writes between two yields
        count as one), until the run finishes or `active()` is False; the value is True
        on the last yield, the one after the run finished.

        Raises:
            HubClosed: the server is stopping (`close`).
        """
        if self._closed:
            raise HubClosed("the server is shutting down")
        entry = self._entry(run_id)
        finished = self._store.get_run(run_id).status in FINISHED
        with entry.cond:
            entry.watchers += 1
            seen = entry.version  # before the first yield: a write while it is sent counts
        try:
            yield finished
            if finished:
                return
            while active():
                with entry.cond:
                    entry.cond.wait_for(
                        lambda e=entry, s=seen: (  # type: ignore[misc]
                            e.version != s or e.ended or self._closed
                        ),
                        timeout=poll,
                    )
                    changed, seen, ended = entry.version != seen, entry.version, entry.ended
                if self._closed:
                    raise HubClosed("the server is shutting down")
                if changed or ended:
                    yield ended
                if ended:
                    return
                entry = self._entry(run_id)  # rebuilt if it went stale
        finally:
            with entry.cond:
                entry.watchers -= 1
