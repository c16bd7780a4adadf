"""Checkpoint grading: overfitting read from the gap between training and validation metrics.

Follows the product's Advanced Evaluation page: ``gap = train - validation``
for a metric where higher is better (``validation - train`` where lower is,
per :func:`metric_mode`); a checkpoint is ``"healthy"`` below ``overfit_gap``
(0.10), ``"overfitting"`` from it and ``"severe_overfitting"`` from
``severe_overfit_gap`` (0.20), in the metric's own units. Gaps are rounded to 9
decimals so that decimal inputs on a cutoff grade as written. Mirrors
``CheckpointVerdict`` in ``protos/evalstream/v1/runs.proto``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evalstream_server.store._types import CheckpointRow

__all__ = [
    "GRADES",
    "LOWER_IS_BETTER",
    "CheckpointVerdict",
    "grade_checkpoints",
    "metric_mode",
]

#: Grades, best first (``CheckpointGrade`` without the UNSPECIFIED value, lower case).
GRADES: tuple[str, ...] = ("healthy", "overfitting", "severe_overfitting")

#: Metric names (compared lower case) for which lower is better, besides any
#: name containing "loss" or "error".
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"wer", "cer", "ter", "perplexity", "ppl", "mae", "mse", "rmse", "nll", "fpr", "fnr"}
)

_GAP_DECIMALS = 9


def metric_mode(name: str, overrides: Mapping[str, str] | None = None) -> str:
    """Whether lower (``"min"``) or higher (``"max"``) values of a metric are better.

    Args:
        name: Metric or column name, e.g. ``"bbox_f1@0.5"`` or ``"best_validation_loss"``.
        overrides: Explicit modes by exact name; they win over the defaults.

    Returns:
        ``"min"`` or ``"max"``.

    Example:
        >>> metric_mode("validation_loss"), metric_mode("bbox_f1@0.5"), metric_mode("WER")
        ('min', 'max', 'min')
        >>> metric_mode("wer", {"wer": "max"})
        'max'
    """
    if overrides and name in overrides:
        return overrides[name]
    lowered = name.lower()
    if "loss" in lowered or "error" in lowered:
        return "min"
    # Strip an "@0.5"-style suffix and a "split/" prefix before the table lookup.
    base = lowered.split("/")[-1].split("@")[0]
    return "min" if base in LOWER_IS_BETTER else "max"


@dataclass(frozen=True, slots=True)
class CheckpointVerdict:
    """The grade of one metric at one checkpoint step (mirrors ``CheckpointVerdict``).

    Attributes:
        step: Optimizer step of the checkpoint, >= 0.
        metric: Metric graded, e.g. ``"bbox_f1@0.5"``.
        train_value: Metric on the training split at this step; None when not logged.
        validation_value: Metric on the validation split; None when not logged.
        gap: ``train - validation`` for mode max, ``validation - train`` for mode
            min; None when either side is missing.
        grade: ``"healthy"``, ``"overfitting"``, ``"severe_overfitting"``, or
            ``""`` (UNSPECIFIED) when ``gap`` is None.
        path: Where the checkpoint of ``step`` was saved; "" when none was recorded.
    """

    step: int
    metric: str
    train_value: float | None
    validation_value: float | None
    gap: float | None
    grade: str
    path: str = ""


def _grade(gap: float, overfit_gap: float, severe_overfit_gap: float) -> str:
    g = round(gap, _GAP_DECIMALS)
    if g >= severe_overfit_gap:
        return "severe_overfitting"
    if g >= overfit_gap:
        return "overfitting"
    return "healthy"


def grade_checkpoints(
    rows: Sequence[CheckpointRow],
    *,
    metric: str | None = None,
    mode: str | None = None,
    overfit_gap: float = 0.10,
    severe_overfit_gap: float = 0.20,
    train_split: str = "train",
    validation_split: str = "validation",
) -> list[CheckpointVerdict]:
    """Grades checkpoints by the train-validation gap of a metric (see the module docstring).

    Args:
        rows: Checkpoint rows of one run, any order; only ``train_split`` and
            ``validation_split`` rows are used.
        metric: The metric to grade; None grades every metric logged on the
            validation split (and metrics logged on training only are skipped).
        mode: ``"min"`` or ``"max"`` for ``metric``; None takes :func:`metric_mode`
            per metric.
        overfit_gap: Gap from which a checkpoint is overfitting, in metric units.
        severe_overfit_gap: Gap from which it is severely overfitting.
        train_split: Split name of the training metrics.
        validation_split: Split name of the validation metrics.

    Returns:
        One verdict per (step, metric) that has a validation value (or a
        training value when ``metric`` is given), sorted by step then metric.
        Non-finite values count as missing.

    Raises:
        ValueError: ``mode`` is not min/max, or the gaps are not ordered.

    Example:
        >>> table = [(500, 0.75, 0.72), (1000, 0.85, 0.80), (1500, 0.92, 0.78), (2000, 0.97, 0.74)]
        >>> rows = [CheckpointRow("train", s, {"f1": t}, {}) for s, t, _ in table]
        >>> rows += [CheckpointRow("validation", s, {"f1": v}, {}) for s, _, v in table]
        >>> [v.grade for v in grade_checkpoints(rows, metric="f1", mode="max")]
        ['healthy', 'healthy', 'overfitting', 'severe_overfitting']
    """
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not overfit_gap <= severe_overfit_gap:
        raise ValueError(
            f"overfit_gap ({overfit_gap}) must not exceed severe_overfit_gap ({severe_overfit_gap})"
        )
    train: dict[tuple[int, str], float] = {}
    validation: dict[tuple[int, str], float] = {}
    for row in rows:
        if row.split == train_split:
            target = train
        elif row.split == validation_split:
            target = validation
        else:
            continue
        for name, value in row.metrics.items():
            if metric is not None and name != metric:
                continue
            v = float(value)
            if math.isfinite(v):
                target[(int(row.step), name)] = v
    keys = set(validation) | (set(train) if metric is not None else set())
    out: list[CheckpointVerdict] = []
    for step, name in sorted(keys):
        tv = train.get((step, name))
        vv = validation.get((step, name))
        gap: float | None = None
        grade = ""
        if tv is not None and vv is not None:
            m = mode if mode is not None else metric_mode(name)
            gap = (tv - vv) if m == "max" else (vv - tv)
            grade = _grade(gap, overfit_gap, severe_overfit_gap)
        out.append(CheckpointVerdict(step, name, tv, vv, gap, grade))
    return out
