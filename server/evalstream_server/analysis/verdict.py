"""Run verdicts: reading loss curves the way the product teaches, as data.

The states and their advice follow the product's Metrics and Advanced
Evaluation pages (steady decrease, plateau, spikes, no decrease; normal
training vs underfitting vs overfitting; stop at the best checkpoint). The
configuration follows Keras ``tf.keras.callbacks.EarlyStopping`` and Lightning
``lightning.pytorch.callbacks.EarlyStopping`` (``monitor``, ``mode``,
``min_delta``, ``patience``, a warm-up like Keras ``start_from_epoch``), and
mirrors ``VerdictConfig`` of ``protos/evalstream/v1/runs.proto`` field by field.

Robustness: spikes are found with the median and MAD (median absolute
deviation, scaled by 1.4826 to a Gaussian sigma) of the preceding block of
points (Hampel's identifier, causal form); levels are medians of bucket means;
every threshold is relative to the curve's own scale, because loss scales
differ across models and tasks.

Rules, in order (the first that holds is the state; "the curve" is the training
loss, or the validation loss when there is no training loss; "smoothed" means
bucket means of finite, non-spike points; "post-warm-up" means steps >=
``warmup_steps``, default 5% of the last step seen):

1. ``diverged``: a NaN or infinite training or validation loss.
2. ``insufficient_data``: fewer than ``min_points`` smoothed points after
   warm-up (unless the checkpoints alone show overfitting, see 6).
3. ``diverged``: blown up: the median of the last 3 smoothed points is at
   least ``diverge_factor`` times the starting level (the median of the first
   5% of smoothed points, warm-up included).
4. ``unstable``: at least ``min_spikes`` post-warm-up spikes: points more than
   ``spike_sigma`` robust sigmas *and* ``spike_min_relative`` (relative) above
   the median of the preceding block.
5. ``not_learning``: relative decrease from the starting level to the end
   level (median of the last 10% of smoothed points) below
   ``not_learning_rel_decrease``: "not decreasing from its start".
6. ``overfitting``: (a) validation has risen after its best: the best of its
   3-point rolling median is at least ``patience`` evaluations old, the latest
   level (median of the last 3 evaluations) is above it by at least
   ``overfit_rise`` (relative) and by 3 noise sigmas, while training has not
   worsened since that step; or (b) the latest graded checkpoint is
   overfitting (see :mod:`.checkpoints`). Severity from the relative rise
   (< ``overfit_moderate_rise`` mild, < ``overfit_severe_rise`` moderate, else
   severe) and from the checkpoint grade (overfitting: mild below the midpoint
   of the two gaps, moderate above; severe_overfitting: severe); the worst wins.
7. ``underfitting``: "both high and flattening, small gap": the relative
   decrease is below ``underfit_rel_decrease``, the curve is flattening (its
   recent slope, a least-squares fit over the last ``recent_fraction`` of
   post-warm-up steps, is below ``plateau_ratio`` of its average slope since
   the start) and the validation level is within ``underfit_max_gap``
   (relative) of the training level.
8. ``healthy``: learning (still decreasing) or converged at a plateau.

Incremental state (the 20 ms budget at 1,000,000 points): each series feeds an
:class:`IncrementalCurveState` that keeps counts, first/last values, the first
non-finite step, the running minimum, at most ``buckets`` buckets of
consecutive points (count, mean of good points, min, max, mean step; pairs merge
when full, so the history stays bounded), the spike reference of the last
block, and a capped list of spike candidates; a :meth:`RunAnalyzer.verdict`
costs O(buckets + evaluations), not O(points). Points must arrive in
increasing step order: a point at or before the last step seen (a rewrite or a
late point) makes the state *stale* (:meth:`RunAnalyzer.add_points` returns
False) and the caller rebuilds from the store with :func:`build_analyzer`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from evalstream_server.analysis.checkpoints import CheckpointVerdict, grade_checkpoints
from evalstream_server.analysis.early_stopping import EarlyStopping, early_stopping
from evalstream_server.store._types import CheckpointRow, SeriesData

__all__ = [
    "ADVICE",
    "LOSS_CAVEAT",
    "STATES",
    "Advice",
    "Evidence",
    "IncrementalCurveState",
    "LossContext",
    "RunAnalyzer",
    "Verdict",
    "VerdictConfig",
    "build_analyzer",
    "loss_context",
    "verdict_from_series",
]

FloatArray = npt.NDArray[np.float64]

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

_SEVERITIES = ("", "mild", "moderate", "severe")

#: Loss context caveat (``LossContext.caveat``).
LOSS_CAVEAT = (
    "Loss scales differ across models and tasks: these bands are rough context, "
    "never a verdict on their own."
)

# Robust sigma from the MAD of a Gaussian sample.
_MAD_TO_SIGMA = 1.4826
_SMALL_SAMPLE = 1.1


# ---------------------------------------------------------------- config


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictConfig:
    """Thresholds of the diagnosis (proto ``VerdictConfig`` plus the extras below).

    The first nine fields map to the proto's fields by name; the rest are
    evalstream extras, settable through a run's stored ``verdict_config``
    mapping. Relative thresholds are fractions of the curve's own level.

    Attributes:
        monitor: ``"split/series"`` monitored for early stopping; a loss series
            or a checkpoint metric (e.g. ``"validation/bbox_f1@0.5"``).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
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
    """

    monitor: str = "validation/loss"
    mode: str = "min"
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
            >>> VerdictConfig(mode="up", patience=-1).validate()
            ["mode must be 'min' or 'max', got 'up'", 'patience must be >= 0, got -1']
        """
        problems: list[str] = []
        if self.mode not in ("min", "max"):
            problems.append(f"mode must be 'min' or 'max', got {self.mode!r}")
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


# ---------------------------------------------------------------- incremental state


@dataclass(frozen=True, slots=True, eq=False)
class CurveSnapshot:
    """What the rules read from one series, in O(buckets).

    Attributes:
        x: Mean step of the good points of each bucket (float64).
        y: Mean of the good (finite, non-spike) values of each bucket.
        y_last: Means of the finite values (spikes included) of the last 3 buckets.
        raw_steps: Every step when the series is short enough to keep raw; else None.
        raw_values: The values with ``raw_steps``; else None.
        count: Points seen.
        first_step: First step (-1 when empty).
        last_step: Last step (-1 when empty).
        first_value: First value (NaN when empty).
        last_value: Last value (NaN when empty).
        first_nonfinite_step: First step with a NaN or infinite value.
        spike_steps: Steps of the spike candidates.
        spike_sigmas: Robust sigmas above the local median of each candidate.
        spike_relative: Relative excess over the local median of each candidate.
    """

    x: FloatArray
    y: FloatArray
    y_last: FloatArray
    raw_steps: np.ndarray | None
    raw_values: FloatArray | None
    count: int
    first_step: int
    last_step: int
    first_value: float
    last_value: float
    first_nonfinite_step: int | None
    spike_steps: np.ndarray
    spike_sigmas: FloatArray
    spike_relative: FloatArray

    def evaluations(self) -> tuple[np.ndarray, FloatArray]:
        """Raw (steps, values) when kept, else the bucket curve (x as int steps, y)."""
        if self.raw_steps is not None and self.raw_values is not None:
            return self.raw_steps, self.raw_values
        return np.rint(self.x).astype(np.int64), self.y


class IncrementalCurveState:
    """Bounded summary of one series, fed with appended points (see the module docstring).

    Not thread-safe on its own; :class:`RunAnalyzer` holds a lock.

    Args:
        buckets: Most buckets kept (even, >= 16); bucket width doubles when full.
        block: Points per spike-reference block (the median of one block is
            the reference of the next).
        pool: Blocks whose robust sigmas are pooled (by their median) into the scale.
        raw_limit: Raw points are kept while the series has at most this many.
        spike_sigma: Points this many sigmas (and ``spike_min_relative``)
            above the reference are left out of the bucket means.
        spike_min_relative: See ``spike_sigma``.
        candidate_sigma: Points this many sigmas above the reference are
            recorded as spike candidates, so that a per-call ``spike_sigma`` at or
            above it is exact.
        max_candidates: Most candidates kept (the weakest half is dropped when full).

    Example:
        >>> state = IncrementalCurveState()
        >>> state.update(np.arange(100), np.linspace(2.0, 1.0, 100))
        True
        >>> state.update(np.array([50]), np.array([1.0]))  # a step already seen
        False
        >>> state.stale, state.count
        (True, 100)
    """

    def __init__(
        self,
        *,
        buckets: int = 1024,
        block: int = 16,
        pool: int = 8,
        raw_limit: int = 8192,
        spike_sigma: float = 6.0,
        spike_min_relative: float = 0.25,
        candidate_sigma: float = 3.0,
        max_candidates: int = 4096,
    ) -> None:
        if buckets < 16 or buckets % 2:
            raise ValueError(f"buckets must be even and >= 16, got {buckets}")
        if block < 4:
            raise ValueError(f"block must be >= 4, got {block}")
        self._cap = buckets
        self._block = block
        self._raw_limit = raw_limit
        self._spike_sigma = spike_sigma
        self._spike_rel = spike_min_relative
        self._cand_sigma = candidate_sigma
        self._max_cand = max_candidates
        self._width = 1
        self._nb = 0
        # Committed buckets: all-point count, good count, good value sum, good step sum.
        self._b_n = np.zeros(buckets, dtype=np.int64)
        self._b_good = np.zeros(buckets, dtype=np.int64)
        self._b_sum = np.zeros(buckets, dtype=np.float64)
        self._b_ssum = np.zeros(buckets, dtype=np.float64)
        # Finite points including spikes (the blow-up rule must see them).
        self._b_fin = np.zeros(buckets, dtype=np.int64)
        self._b_fsum = np.zeros(buckets, dtype=np.float64)
        # The open bucket (fewer than `width` points).
        self._o_n = 0
        self._o_good = 0
        self._o_sum = 0.0
        self._o_ssum = 0.0
        self._o_fin = 0
        self._o_fsum = 0.0
        self.count = 0
        self.first_step = -1
        self.last_step = -1
        self.first_value = math.nan
        self.last_value = math.nan
        self.first_nonfinite_step: int | None = None
        self.stale = False
        self._raw_steps: list[np.ndarray] | None = []
        self._raw_values: list[np.ndarray] | None = []
        self._pending: FloatArray = np.empty(0, dtype=np.float64)
        self._pool = pool
        self._medians: FloatArray = np.empty(0)  # median of the last complete block
        self._sigmas: FloatArray = np.empty(0)  # robust sigmas of the last `pool` blocks
        self._nblocks = 0
        self._c_steps: list[np.ndarray] = []
        self._c_sigma: list[FloatArray] = []
        self._c_rel: list[FloatArray] = []
        self._n_cand = 0

    # -- ingest

    def update(self, steps: npt.ArrayLike, values: npt.ArrayLike) -> bool:
        """Appends points; False (and nothing changes) once stale.

        Points are sorted by step first (the last of equal steps wins, as in
        the store); a step at or before the last step seen makes the state
        stale, since it would rewrite history the summary no longer holds.

        Raises:
            ValueError: The arrays differ in length or are not 1-D.
        """
        s = np.asarray(steps, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        if s.ndim != 1 or v.ndim != 1 or len(s) != len(v):
            raise ValueError(
                f"steps and values must be 1-D of one length, got {s.shape} and {v.shape}"
            )
        if self.stale:
            return False
        if len(s) == 0:
            return True
        if np.any(np.diff(s) <= 0):
            # Stable sort, then keep the last occurrence of each step.
            order = np.argsort(s, kind="stable")
            s, v = s[order], v[order]
            last = np.append(s[1:] != s[:-1], True)
            s, v = s[last], v[last]
        if self.count and s[0] <= self.last_step:
            self.stale = True
            return False
        if self.count == 0:
            self.first_step = int(s[0])
            self.first_value = float(v[0])
        self.last_step = int(s[-1])
        self.last_value = float(v[-1])
        self.count += len(s)
        finite = np.isfinite(v)
        if self.first_nonfinite_step is None and not finite.all():
            self.first_nonfinite_step = int(s[np.argmin(finite)])
        if self._raw_steps is not None and self._raw_values is not None:
            if self.count <= self._raw_limit:
                self._raw_steps.append(s)
                self._raw_values.append(v)
            else:
                self._raw_steps = self._raw_values = None
        good = finite.copy()
        if finite.any():
            idx = np.flatnonzero(finite)
            sigma, rel = self._spike_scores(v[idx])
            strong = (sigma >= self._spike_sigma) & (rel >= self._spike_rel)
            good[idx[strong]] = False
            cand = sigma >= self._cand_sigma
            if cand.any():
                self._add_candidates(s[idx[cand]], sigma[cand], rel[cand])
        self._bucket_add(s, v, good, finite)
        return True

    def _spike_scores(self, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Sigmas and relative excess of each finite value over its block reference.

        A point is judged against the median of the previous complete block and
        the median of the robust sigmas of up to ``pool`` previous blocks (one
        block's MAD is too noisy a scale: its low draws would make false spikes);
        no point is judged before two blocks are complete.
        """
        n = len(v)
        w = self._block
        head = min(w - len(self._pending), n)
        completes = len(self._pending) + head == w
        m = (n - head) // w if completes else 0
        blocks: list[FloatArray] = []
        if completes:
            blocks.append(np.concatenate([self._pending, v[:head]])[None, :])
        if m:
            blocks.append(v[head : head + m * w].reshape(m, w))
        if blocks:
            bm, bs = _block_stats_arrays(np.concatenate(blocks))
        else:
            bm = bs = np.empty(0)
        nb = len(bm)
        # Reference of segment j = the state after j of the new blocks completed.
        all_m = np.concatenate([self._medians, bm])
        all_s = np.concatenate([self._sigmas, bs])
        pm, ps = len(self._medians), len(self._sigmas)
        j = np.arange(nb + 1)
        ref_m = np.full(nb + 1, np.nan)
        have = pm + j - 1 >= 0
        ref_m[have] = all_m[pm + j[have] - 1]
        ref_s = np.full(nb + 1, np.nan)
        total = self._nblocks + j
        end = ps + j  # sigmas available before segment j
        full = (total >= 2) & (end >= self._pool)
        if full.any():
            win = np.lib.stride_tricks.sliding_window_view(all_s, self._pool)
            ref_s[full] = np.median(win[end[full] - self._pool], axis=1)
        for i in np.flatnonzero((total >= 2) & ~full):
            ref_s[i] = np.median(all_s[: end[i]])
        med = np.empty(n)
        sd = np.empty(n)
        med[:head], sd[:head] = ref_m[0], ref_s[0]
        if m:
            med[head : head + m * w] = np.repeat(ref_m[1 : 1 + m], w)
            sd[head : head + m * w] = np.repeat(ref_s[1 : 1 + m], w)
        med[head + m * w :], sd[head + m * w :] = ref_m[nb], ref_s[nb]
        # Keep: the last block median, the last `pool` sigmas, the pending tail.
        if nb:
            self._medians = all_m[-1:]
            self._sigmas = all_s[-self._pool :]
            self._nblocks += nb
            self._pending = v[head + m * w :].copy()
        else:
            self._pending = np.concatenate([self._pending, v[:head]])
        excess = v - med
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = np.where(excess > 0, excess / sd, 0.0)
            rel = np.where(excess > 0, excess / np.abs(med), 0.0)
        sigma = np.nan_to_num(sigma, nan=0.0, posinf=np.inf)
        rel = np.nan_to_num(rel, nan=0.0, posinf=np.inf)
        return sigma, rel

    def _add_candidates(self, steps: np.ndarray, sigma: FloatArray, rel: FloatArray) -> None:
        self._c_steps.append(steps)
        self._c_sigma.append(sigma)
        self._c_rel.append(rel)
        self._n_cand += len(steps)
        if self._n_cand > self._max_cand:
            s, sg, r = self._candidates()
            keep = np.sort(np.argsort(-sg, kind="stable")[: self._max_cand // 2])
            self._c_steps, self._c_sigma, self._c_rel = [s[keep]], [sg[keep]], [r[keep]]
            self._n_cand = len(keep)

    def _candidates(self) -> tuple[np.ndarray, FloatArray, FloatArray]:
        if not self._c_steps:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        if len(self._c_steps) > 1:
            self._c_steps = [np.concatenate(self._c_steps)]
            self._c_sigma = [np.concatenate(self._c_sigma)]
            self._c_rel = [np.concatenate(self._c_rel)]
        return self._c_steps[0], self._c_sigma[0], self._c_rel[0]

    def _bucket_add(
        self, s: np.ndarray, v: FloatArray, good: np.ndarray, finite: np.ndarray
    ) -> None:
        n = len(s)
        i = 0
        sf = s.astype(np.float64)
        fz = np.where(finite, v, 0.0)
        vz = np.where(good, v, 0.0)
        sz = np.where(good, sf, 0.0)
        while i < n:
            w = self._width
            if self._o_n or n - i < w:
                take = min(w - self._o_n, n - i)
                sl = slice(i, i + take)
                self._o_n += take
                self._o_good += int(good[sl].sum())
                self._o_sum += float(vz[sl].sum())
                self._o_ssum += float(sz[sl].sum())
                self._o_fin += int(finite[sl].sum())
                self._o_fsum += float(fz[sl].sum())
                i += take
                if self._o_n == w:
                    self._commit()
                continue
            m = min((n - i) // w, self._cap - self._nb)
            sl = slice(i, i + m * w)
            j = slice(self._nb, self._nb + m)
            self._b_n[j] = w
            self._b_good[j] = good[sl].reshape(m, w).sum(axis=1)
            self._b_sum[j] = vz[sl].reshape(m, w).sum(axis=1)
            self._b_ssum[j] = sz[sl].reshape(m, w).sum(axis=1)
            self._b_fin[j] = finite[sl].reshape(m, w).sum(axis=1)
            self._b_fsum[j] = fz[sl].reshape(m, w).sum(axis=1)
            self._nb += m
            i += m * w
            if self._nb == self._cap:
                self._merge()

    def _commit(self) -> None:
        k = self._nb
        self._b_n[k], self._b_good[k] = self._o_n, self._o_good
        self._b_sum[k], self._b_ssum[k] = self._o_sum, self._o_ssum
        self._b_fin[k], self._b_fsum[k] = self._o_fin, self._o_fsum
        self._o_n = self._o_good = self._o_fin = 0
        self._o_sum = self._o_ssum = self._o_fsum = 0.0
        self._nb += 1
        if self._nb == self._cap:
            self._merge()

    def _merge(self) -> None:
        for a in (self._b_n, self._b_good, self._b_sum, self._b_ssum, self._b_fin, self._b_fsum):
            half = a[0::2] + a[1::2]
            a[: self._cap // 2] = half
            a[self._cap // 2 :] = 0
        self._nb = self._cap // 2
        self._width *= 2

    # -- read

    def snapshot(self) -> CurveSnapshot:
        """The bucket curve and scalars the rules need; O(buckets)."""
        nb = self._nb
        good = self._b_good[:nb]
        sums = self._b_sum[:nb]
        ssums = self._b_ssum[:nb]
        if self._o_good:
            good = np.append(good, self._o_good)
            sums = np.append(sums, self._o_sum)
            ssums = np.append(ssums, self._o_ssum)
        fin = self._b_fin[:nb]
        fsums = self._b_fsum[:nb]
        if self._o_fin:
            fin = np.append(fin, self._o_fin)
            fsums = np.append(fsums, self._o_fsum)
        ok = good > 0
        x = ssums[ok] / good[ok]
        y = sums[ok] / good[ok]
        y_last = fsums[fin > 0][-3:] / fin[fin > 0][-3:]
        raw_s = raw_v = None
        if self._raw_steps is not None and self._raw_values is not None and self._raw_steps:
            if len(self._raw_steps) > 1:
                self._raw_steps = [np.concatenate(self._raw_steps)]
                self._raw_values = [np.concatenate(self._raw_values)]
            raw_s, raw_v = self._raw_steps[0], self._raw_values[0]
        cs, csg, cr = self._candidates()
        return CurveSnapshot(
            x=x,
            y=y,
            y_last=y_last,
            raw_steps=raw_s,
            raw_values=raw_v,
            count=self.count,
            first_step=self.first_step,
            last_step=self.last_step,
            first_value=self.first_value,
            last_value=self.last_value,
            first_nonfinite_step=self.first_nonfinite_step,
            spike_steps=cs,
            spike_sigmas=csg,
            spike_relative=cr,
        )


def _block_stats_arrays(blocks: FloatArray) -> tuple[FloatArray, FloatArray]:
    med = np.median(blocks, axis=1)
    mad = np.median(np.abs(blocks - med[:, None]), axis=1)
    # The MAD of a small block is biased low (about 10% at 16 points).
    return med, _SMALL_SAMPLE * _MAD_TO_SIGMA * mad


# ---------------------------------------------------------------- the analyzer


def _parse_monitor(monitor: str) -> tuple[str, str]:
    split, sep, name = monitor.partition("/")
    return (split, name) if sep else ("validation", monitor)


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

    def set_checkpoints(self, rows: Sequence[CheckpointRow]) -> None:
        """Replaces the run's checkpoint rows (they are few; no incremental state)."""
        with self._lock:
            self._checkpoints = tuple(rows)

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
        return _judge(snaps, rows, cfg)


def build_analyzer(
    series: Sequence[SeriesData], checkpoints: Sequence[CheckpointRow], config: VerdictConfig
) -> RunAnalyzer:
    """A :class:`RunAnalyzer` fed from scratch with stored series (a cold start).

    Example:
        >>> s = SeriesData("train", "loss", np.arange(5), np.array([3.0, 2, 1, 1, 1]), None, 5)
        >>> build_analyzer([s], [], VerdictConfig()).verdict().state
        'insufficient_data'
    """
    analyzer = RunAnalyzer(config)
    for data in series:
        analyzer.add_points(data.split, data.name, data.steps, data.values)
    analyzer.set_checkpoints(checkpoints)
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


# ---------------------------------------------------------------- rules


def _median(a: FloatArray) -> float:
    return float(np.median(a))


def _slope(x: FloatArray, y: FloatArray) -> float | None:
    if len(x) < 2:
        return None
    xc = x - x.mean()
    d = float(np.dot(xc, xc))
    if d == 0:
        return None
    return float(np.dot(xc, y - y.mean()) / d)


def _noise(y: FloatArray) -> float:
    """Robust sigma of one point from second differences (a local linear trend cancels)."""
    if len(y) < 3:
        return 0.0
    return _MAD_TO_SIGMA * _median(np.abs(np.diff(y, n=2))) / math.sqrt(6.0)


def _level_at(x: FloatArray, y: FloatArray, at: FloatArray, half_width: float) -> FloatArray:
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


def _flattening(
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
    drop = _median(y[a]) - _median(y[b])
    distance = float(np.median(x[b]) - np.median(x[a]))
    overall_rate = (first_level - end_level) / max(x[-1] - x0, 1.0)
    expected = overall_rate * max(distance, 1.0)
    if expected <= 0:
        return True, 0.0
    noise = _noise(y)
    # Standard error of a median is about 1.25 sigma / sqrt(n).
    se = 1.2533 * noise * math.sqrt(1.0 / a.sum() + 1.0 / b.sum())
    ratio = drop / expected
    return (drop - 2.0 * se) < cfg.plateau_ratio * expected, ratio


def _rolling_median3(y: FloatArray) -> FloatArray:
    if len(y) < 3:
        return y.copy()
    mid = np.median(np.stack([y[:-2], y[1:-1], y[2:]]), axis=0)
    return np.concatenate([[y[0]], mid, [y[-1]]])


@dataclass(slots=True)
class _Findings:
    state: str = "healthy"
    severity: str = ""
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


def _judge(
    snaps: Mapping[tuple[str, str], CurveSnapshot],
    rows: Sequence[CheckpointRow],
    cfg: VerdictConfig,
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
    ckpt_severity = _checkpoint_severity(graded, cfg)

    es = _early_stopping(snaps, rows, cfg, m_split, m_name, warmup)
    ctx = loss_context(train.first_value, train.last_value) if train is not None else LossContext()
    f = _Findings()
    _rules(f, train, val, primary, warmup, ckpt_severity, cfg)
    ev = f.evidence
    best_step = ev.get("best_validation_step")
    advice = ADVICE[f.state]
    if f.state == "overfitting":
        stop_at = best_step if best_step is not None else es.best_step
        if stop_at is not None:
            advice = (
                Advice(
                    "stop_earlier",
                    f"Stop earlier: deploy the checkpoint at the best validation step ({stop_at}).",
                ),
                *advice[1:],
            )
    return Verdict(
        state=f.state,
        severity=f.severity,
        summary=f.summary,
        evidence=Evidence(**ev),
        advice=advice,
        checkpoints=tuple(graded),
        early_stopping=es,
        loss_context=ctx,
        as_of_step=int(as_of),
    )


def _checkpoint_severity(graded: Sequence[CheckpointVerdict], cfg: VerdictConfig) -> str:
    """Severity implied by the latest graded checkpoint step ("" when healthy or none)."""
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


def _rules(
    f: _Findings,
    train: CurveSnapshot | None,
    val: CurveSnapshot | None,
    primary: CurveSnapshot | None,
    warmup: int,
    ckpt_severity: str,
    cfg: VerdictConfig,
) -> None:
    ev = f.evidence
    nonfinite = [s.first_nonfinite_step for s in (train, val) if s is not None]
    nonfinite_steps = [s for s in nonfinite if s is not None]
    if nonfinite_steps:
        ev["first_nonfinite_step"] = min(nonfinite_steps)

    # Validation evaluations after warm-up (finite).
    vx = vy = np.empty(0)
    if val is not None:
        vs_, vv_ = val.evaluations()
        ok = np.isfinite(vv_)
        if ok.any():
            ev["best_validation_step"] = int(vs_[ok][np.argmin(vv_[ok])])
        keep = ok & (vs_ >= warmup)
        vx, vy = vs_[keep].astype(np.float64), vv_[keep]

    if nonfinite_steps:
        f.state = "diverged"
        f.summary = f"The loss became NaN or infinite at step {min(nonfinite_steps)}."
        return
    if primary is None or len(primary.y) == 0:
        _no_curve(f, ckpt_severity)
        return
    x_all, y_all = primary.x, primary.y
    post = x_all >= warmup
    x, y = x_all[post], y_all[post]
    n = len(y)
    if n < cfg.min_points:
        if ckpt_severity:
            _overfit(f, ckpt_severity, "the checkpoint metrics")
        else:
            f.state = "insufficient_data"
            f.summary = (
                f"{n} smoothed points after the warm-up (step {warmup}); "
                f"{cfg.min_points} are needed."
            )
        return

    k = max(3, n // 10)
    k0 = max(5, len(y_all) // 50)
    first_level = _median(y_all[:k0])
    start_pw = _median(y[:k])
    end_level = _median(y[-k:])
    # Spikes included: a blow-up is a "spike" that never comes back.
    short_end = _median(primary.y_last) if len(primary.y_last) else _median(y[-3:])
    scale = max(abs(first_level), 1e-12)
    rel_total = (first_level - end_level) / scale
    ev["train_relative_decrease"] = (start_pw - end_level) / max(abs(start_pw), 1e-12)

    span = max(x[-1] - warmup, 1.0)
    width = cfg.recent_fraction * span
    recent = x >= x[-1] - width
    if recent.sum() < 3:
        recent = np.zeros(n, dtype=bool)
        recent[-3:] = True
    slope = _slope(x[recent], y[recent])
    if slope is not None:
        ev["train_recent_slope"] = slope * 1000.0
    flattening, ratio = _flattening(x, y, width, first_level, end_level, x_all[0], cfg)
    # Validation evidence: recent slope, gap against the smoothed training loss.
    half = 0.5 * float(np.median(np.diff(vx))) if len(vx) >= 2 else 0.0
    if len(vy) >= 2:
        tail = slice(-min(5, len(vy)), None)
        vslope = _slope(vx[tail], vy[tail])
        if vslope is not None:
            ev["validation_recent_slope"] = vslope * 1000.0
    if len(vy) and train is not None and len(train.y):
        tail = slice(-min(5, len(vy)), None)
        gaps = vy[tail] - _level_at(train.x, train.y, vx[tail], half)
        ev["gap"] = float(gaps[-1])
        gtrend = _slope(vx[tail], gaps)
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

    if first_level > 0 and short_end >= cfg.diverge_factor * first_level:
        f.state = "diverged"
        f.summary = (
            f"The loss blew up: {short_end:.4g} now against {first_level:.4g} at the start "
            f"(x{short_end / first_level:.1f})."
        )
        return
    if len(spike_steps) >= cfg.min_spikes:
        f.state = "unstable"
        f.summary = (
            f"{len(spike_steps)} sudden loss spike(s) after warm-up, the first at step "
            f"{int(spike_steps[0])}."
        )
        return
    if rel_total < cfg.not_learning_rel_decrease:
        f.state = "not_learning"
        f.summary = (
            f"The loss has not decreased from its start ({rel_total:+.1%} relative decrease; "
            f"at least {cfg.not_learning_rel_decrease:.0%} expected)."
        )
        return

    # Overfitting from the validation loss.
    rise_sev = ""
    if train is not None and len(vy) >= 3:
        sm = _rolling_median3(vy)
        b = int(np.argmin(sm))
        # The raw best among the smoothed best and its neighbours.
        lo_i = max(b - 1, 0)
        b = lo_i + int(np.argmin(vy[lo_i : b + 2]))
        best = float(sm.min())
        after = len(sm) - 1 - b
        latest = _median(vy[-3:])
        rise = latest - best
        rel_rise = rise / max(abs(best), 1e-12)
        noise = _noise(vy)
        lo = vx[max(b - 1, 0)]
        hi = vx[min(b + 1, len(vx) - 1)]
        near = (train.x >= lo) & (train.x <= hi)
        if near.sum() < 3:
            near = (
                np.abs(train.x - vx[b])
                <= np.sort(np.abs(train.x - vx[b]))[min(2, len(train.x) - 1)]
            )
        t_best = _median(train.y[near])
        t_post = train.y[train.x >= warmup]
        t_tail = t_post[-k:] if len(t_post) else train.y[-k:]
        t_end = _median(t_tail)
        t_noise = _noise(train.y)
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
            ev["best_validation_step"] = int(vx[b])
    if rise_sev or ckpt_severity:
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
        return

    small_gap = True
    if train is not None and len(vy):
        t_last = float(_level_at(train.x, train.y, vx[-1:], max(half, 1.5 * half))[0])
        v_last = _median(vy[-3:])
        small_gap = abs(v_last - t_last) <= cfg.underfit_max_gap * max(abs(t_last), 1e-12)
    if rel_total < cfg.underfit_rel_decrease and flattening and small_gap:
        f.state = "underfitting"
        f.summary = (
            f"The loss is flattening while still high: only {rel_total:.0%} below its start, "
            "with a small train-validation gap."
        )
        return
    f.state = "healthy"
    if flattening:
        f.summary = f"Converged at a plateau, {rel_total:.0%} below the starting loss."
    else:
        f.summary = f"Learning: the loss is still decreasing ({rel_total:.0%} below its start)."


def _overfit(f: _Findings, severity: str, source: str) -> None:
    f.state = "overfitting"
    f.severity = severity
    f.summary = f"{severity.capitalize()} overfitting, from {source}."


def _no_curve(f: _Findings, ckpt_severity: str) -> None:
    if ckpt_severity:
        _overfit(f, ckpt_severity, "the checkpoint metrics")
    else:
        f.state = "insufficient_data"
        f.summary = "No loss recorded yet."
