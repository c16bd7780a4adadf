"""What a verdict shows: its result types, the numbers behind it and the advice per state.

The advice follows the product's Metrics and Advanced Evaluation pages
(overfitting: stop at the best checkpoint, reduce capacity, regularise, add
data; underfitting: train longer, add capacity; and so on). The numbers are
robust to noise and to the loss's scale: levels are medians of bucket means,
noise is a MAD of second differences, and every threshold is relative to the
curve's own level, because loss scales differ across models and tasks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from evalstream_server.analysis.checkpoints import CheckpointVerdict
from evalstream_server.analysis.curve_state import MAD_TO_SIGMA, CurveSnapshot, FloatArray
from evalstream_server.analysis.early_stopping import EarlyStopping
from evalstream_server.analysis.verdict_config import VerdictConfig

__all__ = [
    "ADVICE",
    "LOSS_CAVEAT",
    "STATES",
    "Advice",
    "Evidence",
    "LossContext",
    "Measures",
    "Verdict",
    "advice_for",
    "is_flattening",
    "level_at",
    "loss_context",
    "lsq_slope",
    "measure",
    "median",
    "noise_sigma",
    "validation_points",
]

#: Verdict states (``RunState`` without UNSPECIFIED, lower case).
STATES: tuple[str, ...] = (
    "insufficient_data",
    "healthy",
    "underfitting",
    "overfitting",
    "not_learning",
    "unstable",
    "diverged",
)

#: Loss context caveat (``LossContext.caveat``).
LOSS_CAVEAT = (
    "Loss scales differ across models and tasks: these bands are rough context, "
    "never a verdict on their own."
)


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Advice:
    """One recommended action (mirrors ``Advice``).

    Attributes:
        action: Machine-readable id, e.g. ``"stop_earlier"``.
        text: Human-readable sentence.
    """

    action: str
    text: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """Numbers behind a verdict (mirrors ``Evidence``; None = absent).

    Attributes:
        train_relative_decrease: (first - last) / |first| of the smoothed
            training loss after warm-up.
        train_recent_slope: Slope of the smoothed training loss over the recent
            window, per 1000 steps.
        validation_recent_slope: Slope of the validation loss over the recent
            evaluations (the last 5), per 1000 steps.
        gap: Latest validation minus (smoothed) training loss at that step.
        gap_trend: Change of the gap over the recent evaluations, per 1000 steps.
        spike_steps: Steps of post-warm-up spikes (the latest 100 at most).
        best_validation_step: Step where the validation loss was lowest.
        first_nonfinite_step: First step with a NaN or infinite loss.
    """

    train_relative_decrease: float | None = None
    train_recent_slope: float | None = None
    validation_recent_slope: float | None = None
    gap: float | None = None
    gap_trend: float | None = None
    spike_steps: tuple[int, ...] = ()
    best_validation_step: int | None = None
    first_nonfinite_step: int | None = None


@dataclass(frozen=True, slots=True)
class LossContext:
    """Starting and final training loss against rough bands (mirrors ``LossContext``).

    Attributes:
        initial_loss: Training loss at the first step; None when there is none.
        final_loss: Training loss at the last step; None when there is none.
        initial_band: ``"typical_untrained"`` (2-6), ``"below_typical"``,
            ``"above_typical"``, ``"non_finite"`` or ``""``.
        final_band: ``"excellent"`` (< 0.5), ``"good"`` (0.5-1.5), ``"high"``
            (> 1.5), ``"non_finite"`` or ``""``.
        caveat: Loss scales differ across models and tasks.
    """

    initial_loss: float | None = None
    final_loss: float | None = None
    initial_band: str = ""
    final_band: str = ""
    caveat: str = LOSS_CAVEAT


@dataclass(frozen=True, slots=True)
class Verdict:
    """The diagnosis of a run (mirrors ``Verdict``; the servicer adds ``run_id``).

    Attributes:
        state: One of :data:`STATES`.
        severity: For ``"overfitting"``: ``"mild"``, ``"moderate"`` or
            ``"severe"``; ``""`` otherwise.
        summary: One sentence.
        evidence: Numbers behind the state.
        advice: Recommended actions; empty when there is nothing to change.
        checkpoints: Grade per checkpoint step and metric.
        early_stopping: Early-stopping state of ``VerdictConfig.monitor``.
        loss_context: Starting and final loss against rough bands.
        as_of_step: Last step the verdict saw (0 with no data).
    """

    state: str
    severity: str
    summary: str
    evidence: Evidence
    advice: tuple[Advice, ...]
    checkpoints: tuple[CheckpointVerdict, ...]
    early_stopping: EarlyStopping
    loss_context: LossContext
    as_of_step: int


#: The product's recommended actions per state (healthy and insufficient_data: none).
ADVICE: Mapping[str, tuple[Advice, ...]] = MappingProxyType(
    {
        "insufficient_data": (),
        "healthy": (),
        "overfitting": (
            Advice(
                "stop_earlier",
                "Stop earlier: deploy the checkpoint at the best validation step.",
            ),
            Advice(
                "reduce_capacity",
                "Reduce model capacity (fewer layers or parameters, e.g. a smaller LoRA rank).",
            ),
            Advice("add_regularisation", "Add regularisation: dropout, weight decay."),
            Advice("add_data", "Add training data or data augmentation."),
        ),
        "underfitting": (
            Advice("train_longer", "Train longer: more epochs or steps."),
            Advice(
                "increase_capacity",
                "Increase model capacity (a larger model or more trainable parameters).",
            ),
            Advice("raise_learning_rate", "Raise the learning rate."),
            Advice("reduce_regularisation", "Reduce regularisation: less dropout or weight decay."),
        ),
        "not_learning": (
            Advice(
                "check_learning_rate",
                "Check the learning rate: it may be too low or too high.",
            ),
            Advice(
                "check_data_pipeline",
                "Check the data pipeline and the labels (shuffling, label alignment, "
                "preprocessing).",
            ),
            Advice(
                "check_loss_gradients",
                "Check the loss function and the gradients (frozen parameters, zero gradients).",
            ),
        ),
        "unstable": (
            Advice("lower_learning_rate", "Lower the learning rate."),
            Advice("gradient_clipping", "Clip gradients (e.g. max norm 1.0)."),
            Advice("add_warmup", "Add or lengthen the learning-rate warm-up."),
            Advice(
                "check_bad_batches",
                "Check the batches at the spike steps for bad or corrupt examples.",
            ),
        ),
        "diverged": (
            Advice("lower_learning_rate", "Lower the learning rate."),
            Advice("gradient_clipping", "Clip gradients (e.g. max norm 1.0)."),
            Advice("check_data_nans", "Check the data for NaN or infinite values."),
            Advice("loss_scaling", "With mixed precision, use dynamic loss scaling (or bf16)."),
        ),
    }
)  # fmt: skip


def _band_initial(x: float) -> str:
    if not math.isfinite(x):
        return "non_finite"
    if x < 2.0:
        return "below_typical"
    return "typical_untrained" if x <= 6.0 else "above_typical"


def _band_final(x: float) -> str:
    if not math.isfinite(x):
        return "non_finite"
    if x < 0.5:
        return "excellent"
    return "good" if x <= 1.5 else "high"


def loss_context(initial_loss: float | None, final_loss: float | None) -> LossContext:
    """The product's rough loss bands, as context only.

    Untrained models typically start at 2-6; a good final loss is 0.5-1.5 and an
    excellent one below 0.5. Loss scales differ across models and tasks, so the
    verdict never rests on these bands.

    Example:
        >>> ctx = loss_context(2.4, 0.42)
        >>> ctx.initial_band, ctx.final_band
        ('typical_untrained', 'excellent')
        >>> loss_context(None, 1.7).final_band
        'high'
    """
    return LossContext(
        initial_loss=initial_loss,
        final_loss=final_loss,
        initial_band="" if initial_loss is None else _band_initial(initial_loss),
        final_band="" if final_loss is None else _band_final(final_loss),
    )


def advice_for(
    state: str,
    stop_at: int | None,
    *,
    monitor: str = "",
    loss_only: bool = False,
    path: str = "",
) -> tuple[Advice, ...]:
    """The advice for ``state``; overfitting names the step to stop at when known.

    ``monitor`` names the quantity ``stop_at`` is the best of when it is not
    the validation loss. ``loss_only`` (the validation loss overfits while the
    monitor keeps improving) advises following the monitor instead of stopping.
    ``path`` is where the checkpoint of ``stop_at`` was saved, named when given.

    Example:
        >>> advice_for("overfitting", 2000)[0].text
        'Stop earlier: deploy the checkpoint at the best validation step (2000).'
        >>> advice_for("overfitting", 2000, path="out/checkpoint-2000")[0].text[-42:]
        'step (2000), saved in out/checkpoint-2000.'
        >>> advice_for("overfitting", 3000, monitor="validation/wer")[0].text
        'Stop earlier: deploy the checkpoint at the best validation/wer (step 3000).'
        >>> [a.action for a in advice_for("overfitting", 3000, monitor="validation/wer",
        ...                               loss_only=True)]
        ['follow_monitor', 'add_regularisation']
        >>> advice_for("healthy", 2000)
        ()
    """
    advice = ADVICE[state]
    if state != "overfitting":
        return advice
    saved = f", saved in {path}" if path and stop_at is not None else ""
    if loss_only and monitor:
        best = f" (best so far: step {stop_at}{saved})" if stop_at is not None else ""
        return (
            Advice(
                "follow_monitor",
                f"Keep selecting checkpoints by {monitor}{best}, and let early stopping "
                f"follow {monitor}: the validation loss rising while {monitor} improves "
                "usually means over-confident predictions, not a worse model.",
            ),
            Advice(
                "add_regularisation",
                "If calibration matters, temper the over-confidence: label smoothing, "
                "dropout, weight decay.",
            ),
        )
    if stop_at is not None:
        where = (
            f"the best {monitor} (step {stop_at})"
            if monitor
            else f"the best validation step ({stop_at})"
        )
        advice = (
            Advice("stop_earlier", f"Stop earlier: deploy the checkpoint at {where}{saved}."),
        )
        advice += ADVICE[state][1:]
    return advice


# ---------------------------------------------------------------- the numbers


def median(a: FloatArray) -> float:
    """The median as a float."""
    return float(np.median(a))


def lsq_slope(x: FloatArray, y: FloatArray) -> float | None:
    """Least-squares slope of ``y`` over ``x``; None with fewer than 2 distinct x."""
    if len(x) < 2:
        return None
    xc = x - x.mean()
    d = float(np.dot(xc, xc))
    if d == 0:
        return None
    return float(np.dot(xc, y - y.mean()) / d)


def noise_sigma(y: FloatArray) -> float:
    """Robust sigma of one point from second differences (a local linear trend cancels)."""
    if len(y) < 3:
        return 0.0
    return MAD_TO_SIGMA * median(np.abs(np.diff(y, n=2))) / math.sqrt(6.0)


def level_at(x: FloatArray, y: FloatArray, at: FloatArray, half_width: float) -> FloatArray:
    """Median of ``y`` within ``half_width`` steps of each ``at`` (at least the 3 nearest)."""
    out = np.empty(len(at))
    for i, a in enumerate(at.tolist()):
        lo = int(np.searchsorted(x, a - half_width, side="left"))
        hi = int(np.searchsorted(x, a + half_width, side="right"))
        if hi - lo < 3:
            c = int(np.searchsorted(x, a))
            lo, hi = max(0, c - 2), min(len(x), c + 2)
        out[i] = np.median(y[lo:hi]) if hi > lo else np.interp(a, x, y)
    return out


def is_flattening(
    x: FloatArray,
    y: FloatArray,
    width: float,
    first_level: float,
    end_level: float,
    x0: float,
    cfg: VerdictConfig,
) -> tuple[bool, float]:
    """Whether the recent decrease is below ``plateau_ratio`` of the average one.

    The recent decrease is the drop between the medians of the two last
    windows of ``width`` steps; it must beat the plateau threshold by two
    standard errors (noise) to count as "still learning".
    """
    b = x >= x[-1] - width
    a = (x >= x[-1] - 2 * width) & ~b
    if b.sum() < 2 or a.sum() < 2:
        b = np.zeros(len(x), dtype=bool)
        half = max(len(x) // 4, 2)
        b[-half:] = True
        a = np.zeros(len(x), dtype=bool)
        a[-2 * half : -half] = True
    drop = median(y[a]) - median(y[b])
    distance = float(np.median(x[b]) - np.median(x[a]))
    overall_rate = (first_level - end_level) / max(x[-1] - x0, 1.0)
    expected = overall_rate * max(distance, 1.0)
    if expected <= 0:
        return True, 0.0
    noise = noise_sigma(y)
    # Standard error of a median is about 1.25 sigma / sqrt(n).
    se = 1.2533 * noise * math.sqrt(1.0 / a.sum() + 1.0 / b.sum())
    ratio = drop / expected
    return (drop - 2.0 * se) < cfg.plateau_ratio * expected, ratio


def validation_points(
    val: CurveSnapshot | None, warmup: int, evidence: dict[str, Any]
) -> tuple[FloatArray, FloatArray]:
    """The finite validation evaluations after warm-up, as (steps, values).

    Records the step of the lowest finite validation loss (warm-up included)
    as ``best_validation_step`` in ``evidence``.
    """
    if val is None:
        return np.empty(0), np.empty(0)
    steps, values = val.evaluations()
    ok = np.isfinite(values)
    if ok.any():
        evidence["best_validation_step"] = int(steps[ok][np.argmin(values[ok])])
    keep = ok & (steps >= warmup)
    return steps[keep].astype(np.float64), values[keep]


@dataclass(frozen=True, slots=True, eq=False)
class Measures:
    """The numbers the rules after ``insufficient_data`` read, computed once per verdict.

    Attributes:
        train: The training loss, or None.
        warmup: First step after the warm-up.
        vx: Steps of the finite validation evaluations after warm-up.
        vy: Their values.
        half: Half the median spacing of those evaluations (0 with fewer than 2).
        k: Points in the end window (10% of the post-warm-up points, at least 3).
        first_level: Starting level (median of the first 2% of smoothed points,
            at least 5, warm-up included).
        short_end: Median of the last 3 bucket means, spikes included.
        rel_total: Relative decrease from ``first_level`` to the end level.
        flattening: The recent slope is below ``plateau_ratio`` of the average.
        spike_steps: Post-warm-up spikes at this call's thresholds.
    """

    train: CurveSnapshot | None
    warmup: int
    vx: FloatArray
    vy: FloatArray
    half: float
    k: int
    first_level: float
    short_end: float
    rel_total: float
    flattening: bool
    spike_steps: np.ndarray


def measure(
    train: CurveSnapshot | None,
    primary: CurveSnapshot,
    vx: FloatArray,
    vy: FloatArray,
    warmup: int,
    cfg: VerdictConfig,
    evidence: dict[str, Any],
) -> Measures:
    """Levels, slopes, the train-validation gap and the spikes of a run's curves.

    ``primary`` is the training loss, or the validation loss when there is
    none, with at least ``cfg.min_points`` smoothed points after warm-up. The
    numbers shown to users (relative decrease, recent slopes, gap, its trend,
    spike steps) go into ``evidence``.
    """
    ev = evidence
    x_all, y_all = primary.x, primary.y
    post = x_all >= warmup
    x, y = x_all[post], y_all[post]
    n = len(y)
    k = max(3, n // 10)
    k0 = max(5, len(y_all) // 50)
    first_level = median(y_all[:k0])
    start_pw = median(y[:k])
    end_level = median(y[-k:])
    # Spikes included: a blow-up is a "spike" that never comes back.
    short_end = median(primary.y_last) if len(primary.y_last) else median(y[-3:])
    scale = max(abs(first_level), 1e-12)
    rel_total = (first_level - end_level) / scale
    ev["train_relative_decrease"] = (start_pw - end_level) / max(abs(start_pw), 1e-12)

    span = max(x[-1] - warmup, 1.0)
    width = cfg.recent_fraction * span
    recent = x >= x[-1] - width
    if recent.sum() < 3:
        recent = np.zeros(n, dtype=bool)
        recent[-3:] = True
    slope = lsq_slope(x[recent], y[recent])
    if slope is not None:
        ev["train_recent_slope"] = slope * 1000.0
    flattening, _ratio = is_flattening(x, y, width, first_level, end_level, x_all[0], cfg)
    # Validation evidence: recent slope, gap against the smoothed training loss.
    half = 0.5 * float(np.median(np.diff(vx))) if len(vx) >= 2 else 0.0
    if len(vy) >= 2:
        tail = slice(-min(5, len(vy)), None)
        vslope = lsq_slope(vx[tail], vy[tail])
        if vslope is not None:
            ev["validation_recent_slope"] = vslope * 1000.0
    if len(vy) and train is not None and len(train.y):
        tail = slice(-min(5, len(vy)), None)
        gaps = vy[tail] - level_at(train.x, train.y, vx[tail], half)
        ev["gap"] = float(gaps[-1])
        gtrend = lsq_slope(vx[tail], gaps)
        if gtrend is not None:
            ev["gap_trend"] = gtrend * 1000.0

    # Spikes after warm-up, with this call's thresholds.
    spikes = (
        (primary.spike_steps >= warmup)
        & (primary.spike_sigmas >= cfg.spike_sigma)
        & (primary.spike_relative >= cfg.spike_min_relative)
    )
    spike_steps = primary.spike_steps[spikes]
    ev["spike_steps"] = tuple(int(s) for s in spike_steps[-100:])
    return Measures(
        train=train,
        warmup=warmup,
        vx=vx,
        vy=vy,
        half=half,
        k=k,
        first_level=first_level,
        short_end=short_end,
        rel_total=rel_total,
        flattening=flattening,
        spike_steps=spike_steps,
    )
