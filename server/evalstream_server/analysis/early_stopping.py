"""Early stopping: the best evaluation so far and whether patience is exhausted.

Follows Keras ``tf.keras.callbacks.EarlyStopping`` and Lightning
``lightning.pytorch.callbacks.EarlyStopping``: only an improvement by more than
``min_delta`` moves the best; stopping is advised once ``patience`` evaluations
passed without one; evaluations before ``start_step`` are ignored (Keras
``start_from_epoch``, in steps); a non-finite value never improves. The result
mirrors the ``EarlyStopping`` message of ``runs.proto``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["EarlyStopping", "early_stopping"]


@dataclass(frozen=True, slots=True)
class EarlyStopping:
    """Early-stopping state of one monitored quantity (mirrors ``EarlyStopping``).

    Attributes:
        monitor: Monitor used, e.g. ``"validation/loss"``.
        mode: ``"min"`` or ``"max"``.
        best_step: Step of the best value; None before the first counted evaluation.
        best_value: Best value, in the monitor's units; None with ``best_step``.
        evaluations_since_best: Evaluations since the best (Keras ``wait``).
        steps_since_best: Last evaluated step minus ``best_step`` (0 without a best).
        should_stop: Patience exhausted: stop and deploy ``best_step``.
        best_checkpoint_path: Where the checkpoint of ``best_step`` was saved; ""
            when none was recorded at exactly that step.
    """

    monitor: str
    mode: str
    best_step: int | None = None
    best_value: float | None = None
    evaluations_since_best: int = 0
    steps_since_best: int = 0
    should_stop: bool = False
    best_checkpoint_path: str = ""


def early_stopping(
    steps: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    *,
    monitor: str = "validation/loss",
    mode: str = "min",
    min_delta: float = 0.0,
    patience: int = 3,
    start_step: int = 0,
) -> EarlyStopping:
    """Replays the evaluations through Keras/Lightning early stopping.

    Args:
        steps: Steps of the evaluations, ascending.
        values: Monitored values, one per step.
        monitor: Name echoed in the result.
        mode: ``"min"`` or ``"max"``.
        min_delta: Smallest change that counts as an improvement, >= 0 (its
            sign is ignored, as in Lightning).
        patience: Evaluations without improvement after which to stop, >= 0.
        start_step: Evaluations at earlier steps are ignored.

    Returns:
        The state after the last evaluation.

    Raises:
        ValueError: ``mode`` is not min/max, ``patience`` is negative, or the
            lengths differ.

    Example:
        >>> es = early_stopping([100, 200, 300, 400, 500], [0.9, 0.7, 0.75, 0.74, 0.8], patience=3)
        >>> es.best_step, es.best_value, es.evaluations_since_best, es.steps_since_best
        (200, 0.7, 3, 300)
        >>> es.should_stop
        True
        >>> early_stopping([1, 2], [0.5, 0.6], mode="max").best_step
        2
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if patience < 0:
        raise ValueError(f"patience must be >= 0, got {patience}")
    s = np.asarray(steps, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if s.shape != v.shape:
        raise ValueError(f"{len(s)} steps but {len(v)} values")
    keep = s >= start_step
    s, v = s[keep], v[keep]
    delta = abs(float(min_delta))
    sign = 1.0 if mode == "min" else -1.0
    best = math.inf
    best_step: int | None = None
    wait = 0
    # Vectorised would need a scan with a moving threshold; evaluations are few
    # (1,000 in the performance budget) so a plain loop over floats is cheap.
    for step, value in zip(s.tolist(), (sign * v).tolist(), strict=True):
        if math.isfinite(value) and value < best - delta:
            best = value
            best_step = step
            wait = 0
        else:
            wait += 1
    if best_step is None:
        return EarlyStopping(monitor=monitor, mode=mode, evaluations_since_best=wait)
    return EarlyStopping(
        monitor=monitor,
        mode=mode,
        best_step=best_step,
        best_value=sign * best,
        evaluations_since_best=wait,
        steps_since_best=int(s[-1]) - best_step,
        should_stop=wait >= patience,
    )
