"""Run verdicts: reading loss curves the way the product teaches, as data.

:class:`RunAnalyzer` keeps the state of one run, fed as chunks commit, and
answers in O(buckets + evaluations), not O(points). The states and their advice
follow the product's Metrics and Advanced Evaluation pages; the configuration
follows Keras ``tf.keras.callbacks.EarlyStopping`` and Lightning
``lightning.pytorch.callbacks.EarlyStopping`` and mirrors ``VerdictConfig`` of
``protos/evalstream/v1/runs.proto``. The parts live beside this module: the
per-series state in :mod:`.curve_state`, the rules in :mod:`.rules`, the
numbers and advice in :mod:`.evidence`, the thresholds in :mod:`.verdict_config`;
this module re-exports their public names.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from evalstream_server.analysis.checkpoints import grade_checkpoints, metric_mode
from evalstream_server.analysis.curve_state import CurveSnapshot, IncrementalCurveState
from evalstream_server.analysis.early_stopping import EarlyStopping, early_stopping
from evalstream_server.analysis.evidence import (
    ADVICE,
    LOSS_CAVEAT,
    STATES,
    Advice,
    Evidence,
    LossContext,
    Verdict,
    advice_for,
    loss_context,
)
from evalstream_server.analysis.rules import MonitorView, apply_rules, checkpoint_severity
from evalstream_server.analysis.verdict_config import VerdictConfig
from evalstream_server.store._types import CheckpointRow, SeriesData

__all__ = [
    "ADVICE",
    "LOSS_CAVEAT",
    "STATES",
    "Advice",
    "Evidence",
    "IncrementalCurveState",
    "Logged",
    "LossContext",
    "RunAnalyzer",
    "Verdict",
    "VerdictConfig",
    "build_analyzer",
    "loss_context",
    "monitor_problem",
    "verdict_from_series",
]


def _parse_monitor(monitor: str) -> tuple[str, str]:
    split, sep, name = monitor.partition("/")
    return (split, name) if sep else ("validation", monitor)


@dataclass(frozen=True, slots=True)
class Logged:
    """What a run has logged, as ``"split/name"``, sorted.

    Attributes:
        series: Point series (StreamLoss), e.g. ``"validation/loss"``.
        metrics: Checkpoint metrics (LogCheckpoint, checkpoint-named scoring),
            e.g. ``"validation/wer"``.
    """

    series: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()

    def has(self, monitor: str) -> bool:
        """Whether ``monitor`` (``"split/name"``, or a bare name on validation) is logged."""
        key = "/".join(_parse_monitor(monitor))
        return key in self.series or key in self.metrics

    def has_split(self, split: str) -> bool:
        """Whether anything is logged on ``split``."""
        return any(k.partition("/")[0] == split for k in (*self.series, *self.metrics))

    def describe(self) -> str:
        """``"series: train/loss, validation/loss; checkpoint metrics: validation/wer"``."""
        return (
            f"series: {', '.join(self.series) or 'none'}; "
            f"checkpoint metrics: {', '.join(self.metrics) or 'none'}"
        )


def monitor_problem(monitor: str, logged: Logged) -> str | None:
    """Why ``monitor`` cannot be followed, or None when it can (or may yet be).

    A monitor whose split has data but which is neither a series nor a
    checkpoint metric of it is a mistake (a typo turns early stopping off); one
    whose split has nothing yet may be logged later and is not refused here
    (the verdict's summary says it is not logged yet).

    Example:
        >>> logged = Logged(("train/loss", "validation/loss"), ("validation/wer",))
        >>> monitor_problem("validation/wer", logged) is None
        True
        >>> for part in monitor_problem("validation/foo", logged).split("; "):
        ...     print(part)
        monitor 'validation/foo' is not logged by this run
        series: train/loss, validation/loss
        checkpoint metrics: validation/wer
        >>> monitor_problem("test/wer", logged) is None
        True
    """
    split, _name = _parse_monitor(monitor)
    if logged.has(monitor) or not logged.has_split(split):
        return None
    return f"monitor {monitor!r} is not logged by this run; {logged.describe()}"


class RunAnalyzer:
    """Incremental verdicts for one run: feed points as they are acked, ask cheaply.

    Thread-safe: one lock guards the states. ``config`` sets the ingest-time
    spike filter (``spike_sigma``, ``spike_min_relative``) and is the default of
    :meth:`verdict`; a per-call config may change every other threshold exactly
    (spike thresholds exactly down to 3 sigmas).

    Example:
        >>> analyzer = RunAnalyzer(VerdictConfig())
        >>> steps = np.arange(0, 1000, 10)
        >>> analyzer.add_points("train", "loss", steps, 2.0 * np.exp(-steps / 300) + 0.3)
        True
        >>> analyzer.verdict().state
        'healthy'
    """

    def __init__(self, config: VerdictConfig, **state_options: Any) -> None:
        problems = config.validate()
        if problems:
            raise ValueError("invalid verdict config: " + "; ".join(problems))
        self._config = config
        self._options = {
            "spike_sigma": config.spike_sigma,
            "spike_min_relative": config.spike_min_relative,
            **state_options,
        }
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], IncrementalCurveState] = {}
        self._checkpoints: tuple[CheckpointRow, ...] = ()
        self._paths: Mapping[int, str] = {}
        self._stale = False

    @property
    def config(self) -> VerdictConfig:
        """The default config of :meth:`verdict`."""
        return self._config

    @property
    def stale(self) -> bool:
        """True once a point arrived out of order: rebuild with :func:`build_analyzer`."""
        return self._stale

    def add_points(self, split: str, series: str, steps: np.ndarray, values: np.ndarray) -> bool:
        """Feeds appended points of one series; False when the analyzer became stale.

        Feed each durable chunk once (e.g. only when ``WriteResult.stored > 0``
        and ``changed == 0``); a resent or rewritten step makes it stale.
        """
        with self._lock:
            state = self._states.get((split, series))
            if state is None:
                state = self._states[(split, series)] = IncrementalCurveState(**self._options)
            ok = state.update(steps, values)
            if not ok:
                self._stale = True
            return ok and not self._stale

    def last_steps(self) -> dict[tuple[str, str], int]:
        """The last step fed of each series that has points, {(split, series): step}."""
        with self._lock:
            return {key: st.last_step for key, st in self._states.items() if st.count}

    def logged(self) -> Logged:
        """The series and checkpoint metrics fed so far (for checking a monitor)."""
        with self._lock:
            series = sorted(f"{sp}/{n}" for (sp, n), st in self._states.items() if st.count)
            rows = self._checkpoints
        return _logged(series, rows)

    def set_checkpoints(self, rows: Sequence[CheckpointRow]) -> None:
        """Replaces the run's checkpoint rows (they are few; no incremental state)."""
        with self._lock:
            self._checkpoints = tuple(rows)

    def set_saved_checkpoints(self, paths: Mapping[int, str]) -> None:
        """Replaces where the run's checkpoints were saved, {step: path}: the verdict's
        checkpoint grades, best checkpoint and advice name the path saved at their step."""
        with self._lock:
            self._paths = dict(paths)

    def verdict(self, config: VerdictConfig | None = None) -> Verdict:
        """The diagnosis now, with ``config`` (default: the analyzer's).

        Raises:
            ValueError: ``config`` is invalid (the message lists the problems).
        """
        cfg = self._config if config is None else config
        problems = cfg.validate()
        if problems:
            raise ValueError("invalid verdict config: " + "; ".join(problems))
        with self._lock:
            snaps = {key: state.snapshot() for key, state in self._states.items()}
            rows = self._checkpoints
            paths = self._paths
        return _judge(snaps, rows, cfg, paths)


def build_analyzer(
    series: Sequence[SeriesData],
    checkpoints: Sequence[CheckpointRow],
    config: VerdictConfig,
    saved_checkpoints: Mapping[int, str] = {},
) -> RunAnalyzer:
    """A :class:`RunAnalyzer` fed from scratch with stored series (a cold start), and
    where its checkpoints were saved ({step: path}).

    Example:
        >>> s = SeriesData("train", "loss", np.arange(5), np.array([3.0, 2, 1, 1, 1]), None, 5)
        >>> build_analyzer([s], [], VerdictConfig()).verdict().state
        'insufficient_data'
    """
    analyzer = RunAnalyzer(config)
    for data in series:
        analyzer.add_points(data.split, data.name, data.steps, data.values)
    analyzer.set_checkpoints(checkpoints)
    analyzer.set_saved_checkpoints(saved_checkpoints)
    return analyzer


def verdict_from_series(
    train: SeriesData | None,
    validation: SeriesData | None,
    checkpoints: Sequence[CheckpointRow] = (),
    config: VerdictConfig | None = None,
) -> Verdict:
    """The verdict computed from scratch from the training and validation loss.

    Example:
        >>> steps = np.arange(0, 5000, 25)
        >>> train = SeriesData("train", "loss", steps, 2.5 * np.exp(-steps / 800) + 0.2, None, 200)
        >>> ev = np.arange(500, 5001, 500)
        >>> val = SeriesData("validation", "loss", ev, 0.4 + ((ev - 2000) / 3000.0) ** 2, None, 10)
        >>> v = verdict_from_series(train, val)
        >>> v.state, v.severity, v.evidence.best_validation_step, v.advice[0].action
        ('overfitting', 'severe', 2000, 'stop_earlier')
    """
    cfg = config or VerdictConfig()
    series = [s for s in (train, validation) if s is not None]
    return build_analyzer(series, checkpoints, cfg).verdict()


def _judge(
    snaps: Mapping[tuple[str, str], CurveSnapshot],
    rows: Sequence[CheckpointRow],
    cfg: VerdictConfig,
    paths: Mapping[int, str] = {},
) -> Verdict:
    train = snaps.get(("train", cfg.loss_series))
    val = snaps.get(("validation", cfg.loss_series))
    train = train if train is not None and train.count else None
    val = val if val is not None and val.count else None
    primary = train if train is not None else val

    as_of = max([s.last_step for s in (train, val) if s is not None] + [r.step for r in rows] + [0])
    last_step = primary.last_step if primary is not None else as_of
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(0.05 * last_step)

    # Checkpoint grades: every metric logged on both splits (the monitor's with its mode).
    m_split, m_name = _parse_monitor(cfg.monitor)
    if not cfg.mode:
        cfg = replace(cfg, mode=metric_mode(m_name))
    graded = grade_checkpoints(
        rows, overfit_gap=cfg.overfit_gap, severe_overfit_gap=cfg.severe_overfit_gap
    )
    if m_split == "validation" and any(c.metric == m_name for c in graded):
        graded = [c for c in graded if c.metric != m_name] + grade_checkpoints(
            rows,
            metric=m_name,
            mode=cfg.mode,
            overfit_gap=cfg.overfit_gap,
            severe_overfit_gap=cfg.severe_overfit_gap,
        )
        graded.sort(key=lambda c: (c.step, c.metric))
    ckpt_severity = checkpoint_severity(graded, cfg)
    if paths:
        graded = [replace(c, path=paths.get(c.step, "")) for c in graded]

    es = _early_stopping(snaps, rows, cfg, m_split, m_name, warmup)
    if es.best_step is not None and es.best_step in paths:
        es = replace(es, best_checkpoint_path=paths[es.best_step])
    is_loss = m_split == "validation" and m_name == cfg.loss_series
    monitor = MonitorView(
        name=cfg.monitor,
        is_loss=is_loss,
        best_step=es.best_step,
        best_value=es.best_value,
        should_stop=es.should_stop,
    )
    ctx = loss_context(train.first_value, train.last_value) if train is not None else LossContext()
    f = apply_rules(train, val, primary, warmup, ckpt_severity, cfg, monitor)
    ev = f.evidence
    best_step = ev.get("best_validation_step")
    if not is_loss and es.best_step is not None:
        # The best checkpoint and the advice follow the monitor, not the loss.
        advice = advice_for(
            f.state,
            es.best_step,
            monitor=cfg.monitor,
            loss_only=f.loss_only,
            path=es.best_checkpoint_path,
        )
    else:
        stop_at = best_step if best_step is not None else es.best_step
        path = paths.get(int(stop_at), "") if stop_at is not None else ""
        advice = advice_for(f.state, stop_at, path=path)
    summary = f.summary
    if is_loss and f.state == "overfitting" and best_step is not None:
        summary += _still_improving(snaps, rows, cfg, warmup, int(best_step))
    logged = _logged([f"{sp}/{n}" for (sp, n), s in snaps.items() if s.count], rows)
    if not is_loss and not logged.has(cfg.monitor):
        # Never silently off: a monitor not (yet) logged is said.
        summary += (
            f" Early stopping is off: monitor {cfg.monitor!r} is not logged yet "
            f"({logged.describe()})."
        )
    return Verdict(
        state=f.state,
        severity=f.severity,
        summary=summary,
        evidence=Evidence(**ev),
        advice=advice,
        checkpoints=tuple(graded),
        early_stopping=es,
        loss_context=ctx,
        as_of_step=int(as_of),
    )


def _still_improving(
    snaps: Mapping[tuple[str, str], CurveSnapshot],
    rows: Sequence[CheckpointRow],
    cfg: VerdictConfig,
    warmup: int,
    loss_best: int,
) -> str:
    """The validation metrics that kept improving after the loss's best, said in a sentence.

    With the loss as the monitor, a rising validation loss reads as overfitting;
    a metric still improving (WER falling, BLEU rising) tells that the loss alone
    may be overfitting. The verdict keeps the monitor the user chose, and says so.
    Each metric is read as it would be as the monitor (`_early_stopping`).
    """
    improving = []
    for name in sorted({n for r in rows if r.split == "validation" for n in r.metrics}):
        as_monitor = replace(cfg, monitor=f"validation/{name}", mode=metric_mode(name))
        es = _early_stopping(snaps, rows, as_monitor, "validation", name, warmup)
        if es.best_step is not None and es.best_step > loss_best and not es.should_stop:
            improving.append((name, es.best_value, es.best_step))
    if not improving:
        return ""
    shown = ", ".join(f"validation/{n} (best {v:.4g} at step {s})" for n, v, s in improving[:3]) + (
        f" and {len(improving) - 3} more" if len(improving) > 3 else ""
    )
    first = improving[0][0]
    return (
        f" Meanwhile {shown} kept improving: if that is what you deploy on, monitor it "
        f'(monitor="validation/{first}") and the verdict and the best checkpoint follow it.'
    )


def _logged(series: Sequence[str], rows: Sequence[CheckpointRow]) -> Logged:
    metrics = sorted({f"{r.split}/{name}" for r in rows for name in r.metrics})
    return Logged(tuple(sorted(series)), tuple(metrics))


def _early_stopping(
    snaps: Mapping[tuple[str, str], CurveSnapshot],
    rows: Sequence[CheckpointRow],
    cfg: VerdictConfig,
    split: str,
    name: str,
    warmup: int,
) -> EarlyStopping:
    snap = snaps.get((split, name))
    if snap is not None and snap.count:
        steps, values = snap.evaluations()
    else:
        pts = sorted(
            (r.step, float(r.metrics[name])) for r in rows if r.split == split and name in r.metrics
        )
        steps = np.array([p[0] for p in pts], dtype=np.int64)
        values = np.array([p[1] for p in pts], dtype=np.float64)
    return early_stopping(
        steps,
        values,
        monitor=cfg.monitor,
        mode=cfg.mode,
        min_delta=cfg.min_delta,
        patience=cfg.patience,
        start_step=warmup,
    )
