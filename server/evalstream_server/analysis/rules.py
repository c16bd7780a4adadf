"""The rule of each verdict state, one function per rule, in the order they are checked.

The states and their reading follow the product's Metrics and Advanced
Evaluation pages (steady decrease, plateau, spikes, no decrease; normal
training vs underfitting vs overfitting). The first rule that holds is the
state; :func:`apply_rules` checks them in order: ``diverged`` (a non-finite
loss), ``insufficient_data``, ``diverged`` (blown up), ``unstable``,
``not_learning``, ``overfitting``, ``underfitting``, ``healthy``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalstream_server.analysis.checkpoints import CheckpointVerdict
from evalstream_server.analysis.curve_state import CurveSnapshot, FloatArray
from evalstream_server.analysis.evidence import (
    Measures,
    level_at,
    measure,
    median,
    noise_sigma,
    validation_points,
)
from evalstream_server.analysis.verdict_config import VerdictConfig

__all__ = [
    "Findings",
    "MonitorView",
    "Rise",
    "apply_rules",
    "checkpoint_severity",
    "diverged_blown_up",
    "diverged_nonfinite",
    "healthy",
    "insufficient_data",
    "not_learning",
    "overfitting",
    "underfitting",
    "unstable",
    "validation_rise",
]

_SEVERITIES = ("", "mild", "moderate", "severe")


@dataclass(slots=True)
class Findings:
    """The state a rule settled on, and the evidence gathered on the way.

    Attributes:
        state: One of ``STATES``.
        severity: ``"mild"``, ``"moderate"`` or ``"severe"`` for overfitting.
        summary: One sentence.
        evidence: Keyword arguments of ``Evidence``.
        loss_only: Overfitting in the validation loss only: the monitored
            metric kept improving.
    """

    state: str = "healthy"
    severity: str = ""
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    loss_only: bool = False


@dataclass(frozen=True, slots=True)
class MonitorView:
    """The early-stopping monitor as the rules read it.

    Attributes:
        name: ``"split/name"``, e.g. ``"validation/wer"``.
        is_loss: The monitor is the validation loss the rules read.
        best_step: Step of its best value; None when it has none.
        best_value: Its best value.
        should_stop: Its patience is exhausted.
    """

    name: str
    is_loss: bool
    best_step: int | None = None
    best_value: float | None = None
    should_stop: bool = False


def apply_rules(
    train: CurveSnapshot | None,
    val: CurveSnapshot | None,
    primary: CurveSnapshot | None,
    warmup: int,
    ckpt_severity: str,
    cfg: VerdictConfig,
    monitor: MonitorView | None = None,
) -> Findings:
    """The first rule that holds, with its evidence.

    Args:
        train: The training loss, or None.
        val: The validation loss, or None.
        primary: ``train``, or ``val`` when there is no training loss.
        warmup: First step after the warm-up.
        ckpt_severity: Overfitting severity of the latest graded checkpoint
            (:func:`checkpoint_severity`); ``""`` when healthy or none.
        cfg: The thresholds.
        monitor: The early-stopping monitor, weighed by ``overfitting``.
    """
    f = Findings()
    ev = f.evidence
    nonfinite = [s.first_nonfinite_step for s in (train, val) if s is not None]
    nonfinite_steps = [s for s in nonfinite if s is not None]
    if nonfinite_steps:
        ev["first_nonfinite_step"] = min(nonfinite_steps)
    vx, vy = validation_points(val, warmup, ev)

    if diverged_nonfinite(f, nonfinite_steps):
        return f
    # No curve is insufficient data; `primary is None` only narrows the type.
    if insufficient_data(f, primary, warmup, ckpt_severity, cfg) or primary is None:
        return f
    m = measure(train, primary, vx, vy, warmup, cfg, ev)
    if (
        diverged_blown_up(f, m, cfg)
        or unstable(f, m, cfg)
        or not_learning(f, m, cfg)
        or overfitting(f, m, ckpt_severity, cfg, monitor)
        or underfitting(f, m, cfg)
    ):
        return f
    healthy(f, m)
    return f


def diverged_nonfinite(f: Findings, nonfinite_steps: Sequence[int]) -> bool:
    """``diverged``: a NaN or infinite training or validation loss."""
    if not nonfinite_steps:
        return False
    f.state = "diverged"
    f.summary = f"The loss became NaN or infinite at step {min(nonfinite_steps)}."
    return True


def insufficient_data(
    f: Findings,
    primary: CurveSnapshot | None,
    warmup: int,
    ckpt_severity: str,
    cfg: VerdictConfig,
) -> bool:
    """``insufficient_data``: no loss, or fewer than ``min_points`` smoothed points after warm-up.

    When the checkpoints alone show overfitting, the state is that instead.
    """
    if primary is None or len(primary.y) == 0:
        _no_curve(f, ckpt_severity)
        return True
    n = int(np.count_nonzero(primary.x >= warmup))
    if n >= cfg.min_points:
        return False
    if ckpt_severity:
        _overfit(f, ckpt_severity, "the checkpoint metrics")
    else:
        f.state = "insufficient_data"
        f.summary = (
            f"{n} smoothed points after the warm-up (step {warmup}); {cfg.min_points} are needed."
        )
    return True


def diverged_blown_up(f: Findings, m: Measures, cfg: VerdictConfig) -> bool:
    """``diverged``: the recent level is ``diverge_factor`` times the starting level or more."""
    if not (m.first_level > 0 and m.short_end >= cfg.diverge_factor * m.first_level):
        return False
    f.state = "diverged"
    f.summary = (
        f"The loss blew up: {m.short_end:.4g} now against {m.first_level:.4g} at the start "
        f"(x{m.short_end / m.first_level:.1f})."
    )
    return True


def unstable(f: Findings, m: Measures, cfg: VerdictConfig) -> bool:
    """``unstable``: at least ``min_spikes`` spikes after warm-up."""
    if len(m.spike_steps) < cfg.min_spikes:
        return False
    f.state = "unstable"
    f.summary = (
        f"{len(m.spike_steps)} sudden loss spike(s) after warm-up, the first at step "
        f"{int(m.spike_steps[0])}."
    )
    return True


def not_learning(f: Findings, m: Measures, cfg: VerdictConfig) -> bool:
    """``not_learning``: the loss decreased less than ``not_learning_rel_decrease``."""
    if m.rel_total >= cfg.not_learning_rel_decrease:
        return False
    f.state = "not_learning"
    f.summary = (
        f"The loss has not decreased from its start ({m.rel_total:+.1%} relative decrease; "
        f"at least {cfg.not_learning_rel_decrease:.0%} expected)."
    )
    return True


def overfitting(
    f: Findings,
    m: Measures,
    ckpt_severity: str,
    cfg: VerdictConfig,
    monitor: MonitorView | None = None,
) -> bool:
    """``overfitting``: validation rose after its best while training did not worsen.

    The rise is one figure (:func:`validation_rise`): smoothed with at least
    ``smooth_min_evaluations`` evaluations after warm-up, else the latest
    evaluation's. The best must be at least ``patience`` evaluations old, and
    the rise at least ``overfit_rise`` (relative) and 3 noise sigmas; that same
    figure sets the severity and is the one the summary quotes first. Or the
    latest graded checkpoint is overfitting; the worse of the two severities wins.

    When ``monitor`` is another quantity than the validation loss and it
    improved after the loss's best without exhausting its patience, the loss
    alone overfits: severity mild (or the checkpoints'), ``f.loss_only`` set.
    """
    train, vx, vy = m.train, m.vx, m.vy
    rise_sev = ""
    r = validation_rise(vx, vy, cfg) if train is not None else None
    if train is not None and r is not None:
        b = r.best_index
        noise = noise_sigma(vy)
        lo = vx[max(b - 1, 0)]
        hi = vx[min(b + 1, len(vx) - 1)]
        near = (train.x >= lo) & (train.x <= hi)
        if near.sum() < 3:
            near = (
                np.abs(train.x - vx[b])
                <= np.sort(np.abs(train.x - vx[b]))[min(2, len(train.x) - 1)]
            )
        t_best = median(train.y[near])
        t_post = train.y[train.x >= m.warmup]
        t_tail = t_post[-m.k :] if len(t_post) else train.y[-m.k :]
        t_end = median(t_tail)
        t_noise = noise_sigma(train.y)
        t_se = 1.2533 * t_noise * math.sqrt(1.0 / near.sum() + 1.0 / len(t_tail))
        # "While training improves": it has not worsened (5% or two standard errors).
        train_ok = t_end <= t_best + 0.05 * abs(t_best) + 2.0 * t_se
        if (
            r.after >= cfg.patience
            and r.rel >= cfg.overfit_rise
            and r.rise > 3.0 * noise
            and train_ok
        ):
            if r.rel >= cfg.overfit_severe_rise:
                rise_sev = "severe"
            elif r.rel >= cfg.overfit_moderate_rise:
                rise_sev = "moderate"
            else:
                rise_sev = "mild"
            f.evidence["best_validation_step"] = r.best_step
    if not (rise_sev or ckpt_severity):
        return False
    improving = (
        rise_sev
        and r is not None
        and monitor is not None
        and not monitor.is_loss
        and monitor.best_step is not None
        and monitor.best_step > r.best_step
        and not monitor.should_stop
    )
    if improving:
        rise_sev = "mild"
    severity = max(rise_sev, ckpt_severity, key=_SEVERITIES.index)
    source = "the validation loss" if rise_sev else "the checkpoint metrics"
    if rise_sev and ckpt_severity:
        source = "the validation loss and the checkpoint metrics"
    _overfit(f, severity, source)
    if rise_sev and r is not None:
        quoted = f"validation loss is {r.phrase()}"
        if improving and monitor is not None:
            f.loss_only = True
            f.summary = (
                f"Overfitting in loss only: {quoted} while {monitor.name} kept improving "
                f"(best {monitor.best_value:.4g} at step {monitor.best_step}): {severity} "
                f"overfitting; select checkpoints by {monitor.name}."
            )
        else:
            also = ""
            if monitor is not None and not monitor.is_loss and monitor.best_step is not None:
                also = f", and {monitor.name} has not improved since step {monitor.best_step}"
            f.summary = (
                f"{quoted[0].upper()}{quoted[1:]} while training loss keeps improving{also}: "
                f"{severity} overfitting."
            )
    return True


@dataclass(frozen=True, slots=True)
class Rise:
    """How far the validation loss rose above its best, as the verdict reads it.

    Attributes:
        basis: ``"smoothed"`` or ``"latest"``: which figure is ``rel``.
        best_index: Index (into the post-warm-up evaluations) of the best quoted.
        best_step: Its step.
        rel: The relative rise that sets the state and the severity.
        rise: The same rise in the loss's units.
        after: Evaluations since the best.
        latest_rel: The latest evaluation over the lowest evaluation, relative.
        smoothed_rel: The median of the last 3 evaluations over the lowest
            3-point rolling median, relative.
    """

    basis: str
    best_index: int
    best_step: int
    rel: float
    rise: float
    after: int
    latest_rel: float
    smoothed_rel: float

    def phrase(self) -> str:
        """``"34% above its best (step 1000; latest evaluation; 13% smoothed over the last 3)"``."""
        if self.basis == "latest":
            return (
                f"{self.latest_rel:.0%} above its best (step {self.best_step}; latest "
                f"evaluation; {self.smoothed_rel:.0%} smoothed over the last 3)"
            )
        return (
            f"{self.smoothed_rel:.0%} above its best (step {self.best_step}; smoothed over "
            f"the last 3 evaluations; latest evaluation {self.latest_rel:.0%})"
        )


def validation_rise(vx: FloatArray, vy: FloatArray, cfg: VerdictConfig) -> Rise | None:
    """The validation loss's rise above its best; None with fewer than 3 evaluations.

    With at least ``cfg.smooth_min_evaluations`` evaluations the rise is
    smoothed (median of the last 3 against the lowest 3-point rolling median:
    one noisy evaluation moves neither); with fewer, 3 evaluations are a long
    stretch of the run and their median lags, so the rise is the latest
    evaluation's against the lowest one.

    Example:
        >>> vx = np.arange(500.0, 4001.0, 500.0)
        >>> vy = np.array([1.40, 1.00, 1.00, 1.04, 1.08, 1.10, 1.13, 1.34])
        >>> r = validation_rise(vx, vy, VerdictConfig())
        >>> r.basis, r.best_step, round(r.rel, 2), round(r.smoothed_rel, 2)
        ('latest', 1000, 0.34, 0.13)
    """
    n = len(vy)
    if n < 3:
        return None
    sm = _rolling_median3(vy)
    s = int(np.argmin(sm))
    # The raw best among the smoothed best and its neighbours.
    lo_i = max(s - 1, 0)
    s = lo_i + int(np.argmin(vy[lo_i : s + 2]))
    best_sm = float(sm.min())
    smoothed_rise = median(vy[-3:]) - best_sm
    smoothed_rel = smoothed_rise / max(abs(best_sm), 1e-12)
    raw = int(np.argmin(vy))
    latest_rise = float(vy[-1] - vy[raw])
    latest_rel = latest_rise / max(abs(float(vy[raw])), 1e-12)
    if n >= cfg.smooth_min_evaluations:
        basis, b, rel, rise = "smoothed", s, smoothed_rel, smoothed_rise
    else:
        basis, b, rel, rise = "latest", raw, latest_rel, latest_rise
    return Rise(
        basis=basis,
        best_index=b,
        best_step=int(vx[b]),
        rel=rel,
        rise=rise,
        after=n - 1 - b,
        latest_rel=latest_rel,
        smoothed_rel=smoothed_rel,
    )


def underfitting(f: Findings, m: Measures, cfg: VerdictConfig) -> bool:
    """``underfitting``: still high (``underfit_rel_decrease``), flattening, small gap."""
    small_gap = True
    if m.train is not None and len(m.vy):
        t_last = float(level_at(m.train.x, m.train.y, m.vx[-1:], max(m.half, 1.5 * m.half))[0])
        v_last = median(m.vy[-3:])
        small_gap = abs(v_last - t_last) <= cfg.underfit_max_gap * max(abs(t_last), 1e-12)
    if not (m.rel_total < cfg.underfit_rel_decrease and m.flattening and small_gap):
        return False
    f.state = "underfitting"
    f.summary = (
        f"The loss is flattening while still high: only {m.rel_total:.0%} below its start, "
        "with a small train-validation gap."
    )
    return True


def healthy(f: Findings, m: Measures) -> None:
    """``healthy``: learning (still decreasing) or converged at a plateau."""
    f.state = "healthy"
    if m.flattening:
        f.summary = f"Converged at a plateau, {m.rel_total:.0%} below the starting loss."
    else:
        f.summary = f"Learning: the loss is still decreasing ({m.rel_total:.0%} below its start)."


def checkpoint_severity(graded: Sequence[CheckpointVerdict], cfg: VerdictConfig) -> str:
    """Severity implied by the latest graded checkpoint step ("" when healthy or none).

    ``severe_overfitting`` is severe; ``overfitting`` is mild below the midpoint
    of ``overfit_gap`` and ``severe_overfit_gap``, moderate above it.
    """
    gaps = [c for c in graded if c.gap is not None]
    if not gaps:
        return ""
    latest = max(c.step for c in gaps)
    worst = ""
    for c in gaps:
        if c.step != latest or c.gap is None:
            continue
        if c.grade == "severe_overfitting":
            sev = "severe"
        elif c.grade == "overfitting":
            mid = 0.5 * (cfg.overfit_gap + cfg.severe_overfit_gap)
            sev = "mild" if round(c.gap, 9) < mid else "moderate"
        else:
            sev = ""
        worst = max(worst, sev, key=_SEVERITIES.index)
    return worst


def _rolling_median3(y: FloatArray) -> FloatArray:
    if len(y) < 3:
        return y.copy()
    mid = np.median(np.stack([y[:-2], y[1:-1], y[2:]]), axis=0)
    return np.concatenate([[y[0]], mid, [y[-1]]])


def _overfit(f: Findings, severity: str, source: str) -> None:
    f.state = "overfitting"
    f.severity = severity
    f.summary = f"{severity.capitalize()} overfitting, from {source}."


def _no_curve(f: Findings, ckpt_severity: str) -> None:
    if ckpt_severity:
        _overfit(f, ckpt_severity, "the checkpoint metrics")
    else:
        f.state = "insufficient_data"
        f.summary = "No loss recorded yet."
