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
    """

    state: str = "healthy"
    severity: str = ""
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


def apply_rules(
    train: CurveSnapshot | None,
    val: CurveSnapshot | None,
    primary: CurveSnapshot | None,
    warmup: int,
    ckpt_severity: str,
    cfg: VerdictConfig,
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
        or overfitting(f, m, ckpt_severity, cfg)
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


def overfitting(f: Findings, m: Measures, ckpt_severity: str, cfg: VerdictConfig) -> bool:
    """``overfitting``: validation rose after its best while training did not worsen.

    The best of the validation's 3-point rolling median must be at least
    ``patience`` evaluations old, and the latest level above it by
    ``overfit_rise`` (relative) and by 3 noise sigmas; or the latest graded
    checkpoint is overfitting. The worse of the two severities wins.
    """
    train, vx, vy = m.train, m.vx, m.vy
    rise_sev = ""
    if train is not None and len(vy) >= 3:
        sm = _rolling_median3(vy)
        b = int(np.argmin(sm))
        # The raw best among the smoothed best and its neighbours.
        lo_i = max(b - 1, 0)
        b = lo_i + int(np.argmin(vy[lo_i : b + 2]))
        best = float(sm.min())
        after = len(sm) - 1 - b
        latest = median(vy[-3:])
        rise = latest - best
        rel_rise = rise / max(abs(best), 1e-12)
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
            after >= cfg.patience
            and rel_rise >= cfg.overfit_rise
            and rise > 3.0 * noise
            and train_ok
        ):
            if rel_rise >= cfg.overfit_severe_rise:
                rise_sev = "severe"
            elif rel_rise >= cfg.overfit_moderate_rise:
                rise_sev = "moderate"
            else:
                rise_sev = "mild"
            f.evidence["best_validation_step"] = int(vx[b])
    if not (rise_sev or ckpt_severity):
        return False
    severity = max(rise_sev, ckpt_severity, key=_SEVERITIES.index)
    source = "the validation loss" if rise_sev else "the checkpoint metrics"
    if rise_sev and ckpt_severity:
        source = "the validation loss and the checkpoint metrics"
    _overfit(f, severity, source)
    if rise_sev:
        f.summary = (
            f"Validation loss has risen {rel_rise:.0%} above its best (step "
            f"{int(vx[b])}) while training loss keeps improving ({severity} overfitting)."
        )
    return True


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
