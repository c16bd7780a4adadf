"""Thresholds of the verdict: ``VerdictConfig``, field by field the proto's plus extras.

The early-stopping fields follow Keras ``tf.keras.callbacks.EarlyStopping`` and
Lightning ``lightning.pytorch.callbacks.EarlyStopping`` (``monitor``, ``mode``,
``min_delta``, ``patience``, a warm-up like Keras ``start_from_epoch``); the
first nine fields mirror ``VerdictConfig`` of ``protos/evalstream/v1/runs.proto``.
A leaf: every other verdict module reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["MONITOR_SPLITS", "VerdictConfig"]

#: Splits a monitor may name (``"split/name"``; a bare name means validation).
MONITOR_SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictConfig:
    """Thresholds of the diagnosis (proto ``VerdictConfig`` plus the extras below).

    The first nine fields map to the proto's fields by name; the rest are
    evalstream extras, settable through a run's stored ``verdict_config``
    mapping. Relative thresholds are fractions of the curve's own level.

    Attributes:
        monitor: ``"split/series"`` monitored for early stopping; a loss series
            or a checkpoint metric (e.g. ``"validation/bbox_f1@0.5"``).
        mode: ``"min"`` or ``"max"`` for ``monitor``; ``""`` (the default): by
            the monitor's name (``checkpoints.metric_mode``: min for losses,
            errors, WER, CER, perplexity; max for F1, BLEU, ROUGE and the rest).
        min_delta: Smallest improvement of ``monitor`` that counts, its units.
        patience: Evaluations without improvement before stopping is advised;
            also how old the validation best must be for overfitting.
        warmup_steps: Steps before this are ignored by spikes, slopes and early
            stopping; None = 5% of the last step seen.
        not_learning_rel_decrease: Relative decrease below which the run is not
            learning.
        spike_sigma: Spike: this many robust sigmas above the local median.
        overfit_gap: Checkpoint metric gap from which a checkpoint is overfitting.
        severe_overfit_gap: Gap from which it is severely overfitting.
        loss_series: Series name of the loss on the train and validation splits.
        min_points: Smoothed post-warm-up points needed for a verdict.
        spike_min_relative: A spike must also exceed the local median by this
            fraction of it (tiny noise makes tiny blips many sigmas).
        min_spikes: Post-warm-up spikes that make a run unstable.
        diverge_factor: Recent level over starting level that means blown up.
        overfit_rise: Relative rise of validation above its best for overfitting.
        overfit_moderate_rise: Relative rise from which overfitting is moderate.
        overfit_severe_rise: Relative rise from which overfitting is severe.
        underfit_rel_decrease: Relative decrease below which a flattening
            curve is still "high" (underfitting).
        underfit_max_gap: Largest relative validation-training gap of underfitting.
        plateau_ratio: Recent slope over average slope below which the curve
            is flattening (converged, or underfitting when still high).
        recent_fraction: Fraction of the post-warm-up steps that is "recent".
        smooth_min_evaluations: Post-warm-up validation evaluations from which
            the overfitting rise is smoothed (median of the last 3); with fewer,
            it is the latest evaluation's.
    """

    monitor: str = "validation/loss"
    mode: str = ""
    min_delta: float = 0.0
    patience: int = 3
    warmup_steps: int | None = None
    not_learning_rel_decrease: float = 0.05
    spike_sigma: float = 6.0
    overfit_gap: float = 0.10
    severe_overfit_gap: float = 0.20
    loss_series: str = "loss"
    min_points: int = 10
    spike_min_relative: float = 0.25
    min_spikes: int = 1
    diverge_factor: float = 2.0
    overfit_rise: float = 0.05
    overfit_moderate_rise: float = 0.15
    overfit_severe_rise: float = 0.30
    underfit_rel_decrease: float = 0.40
    underfit_max_gap: float = 0.10
    plateau_ratio: float = 0.30
    recent_fraction: float = 0.20
    smooth_min_evaluations: int = 10

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> VerdictConfig:
        """A config from a mapping of field names (a run's stored ``verdict_config``).

        Missing keys take the defaults; ints are accepted for float fields.

        Raises:
            ValueError: A key is unknown (the message names it and lists the
                valid ones) or a value has the wrong type.

        Example:
            >>> VerdictConfig.from_mapping({"patience": 5, "overfit_gap": 0.2}).patience
            5
            >>> VerdictConfig.from_mapping({"patiense": 5})
            Traceback (most recent call last):
            ...
            ValueError: unknown verdict config key(s): patiense; valid keys: monitor, ...
        """
        return cls().merged(values)

    def merged(self, overrides: Mapping[str, object]) -> VerdictConfig:
        """This config with ``overrides`` applied (same checks as :meth:`from_mapping`).

        Example:
            >>> VerdictConfig().merged({"mode": "max", "warmup_steps": None}).mode
            'max'
        """
        names = [f.name for f in fields(self)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(
                f"unknown verdict config key(s): {', '.join(unknown)}; "
                f"valid keys: {', '.join(names)}"
            )
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            changes[key] = _coerce(
                key, value, type(getattr(self, key)) if key != "warmup_steps" else int
            )
        return replace(self, **changes)

    def validate(self) -> list[str]:
        """Problems with the values, one sentence each; empty when valid.

        Example:
            >>> VerdictConfig(patience=-1, min_points=2).validate()
            ['patience must be >= 0, got -1', 'min_points must be >= 3, got 2']
            >>> VerdictConfig(mode="up").validate()[0]
            "mode must be 'min', 'max' or empty (by the monitor's name), got 'up'"
        """
        problems: list[str] = []
        if self.mode not in ("", "min", "max"):
            problems.append(
                f"mode must be 'min', 'max' or empty (by the monitor's name), got {self.mode!r}"
            )
        if not self.monitor:
            problems.append("monitor must not be empty")
        if self.patience < 0:
            problems.append(f"patience must be >= 0, got {self.patience}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        for name in (
            "min_delta",
            "not_learning_rel_decrease",
            "spike_min_relative",
            "overfit_rise",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be finite and >= 0, got {value}")
        for name in ("spike_sigma", "diverge_factor", "plateau_ratio", "underfit_max_gap"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be finite and > 0, got {value}")
        if not 0 < self.recent_fraction <= 1:
            problems.append(f"recent_fraction must be in (0, 1], got {self.recent_fraction}")
        if not 0 <= self.underfit_rel_decrease <= 1:
            problems.append(
                f"underfit_rel_decrease must be in [0, 1], got {self.underfit_rel_decrease}"
            )
        if self.min_points < 3:
            problems.append(f"min_points must be >= 3, got {self.min_points}")
        if self.smooth_min_evaluations < 3:
            problems.append(
                f"smooth_min_evaluations must be >= 3, got {self.smooth_min_evaluations}"
            )
        split, sep, _name = self.monitor.partition("/")
        if sep and split not in MONITOR_SPLITS:
            problems.append(
                f"monitor {self.monitor!r} names split {split!r}; the splits are "
                f"{', '.join(MONITOR_SPLITS)} (e.g. 'validation/wer')"
            )
        if self.min_spikes < 1:
            problems.append(f"min_spikes must be >= 1, got {self.min_spikes}")
        if not 0 <= self.overfit_gap <= self.severe_overfit_gap:
            problems.append(
                f"need 0 <= overfit_gap <= severe_overfit_gap, got {self.overfit_gap} "
                f"and {self.severe_overfit_gap}"
            )
        if not self.overfit_rise <= self.overfit_moderate_rise <= self.overfit_severe_rise:
            problems.append(
                "need overfit_rise <= overfit_moderate_rise <= overfit_severe_rise, got "
                f"{self.overfit_rise}, {self.overfit_moderate_rise}, {self.overfit_severe_rise}"
            )
        return problems


def _coerce(key: str, value: object, kind: type) -> object:
    if key == "warmup_steps" and value is None:
        return None
    if kind is bool or isinstance(value, bool):
        raise ValueError(f"verdict config {key} must be {kind.__name__}, got {value!r}")
    if kind is float and isinstance(value, int | float):
        return float(value)
    if kind is int and isinstance(value, int):
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is str and isinstance(value, str):
        return value
    raise ValueError(f"verdict config {key} must be {kind.__name__}, got {value!r}")
