"""The box scoring types: boxes and options in, summable counts and matches out.

A leaf of :mod:`evalstream_server.metrics.boxes`: matching, validation, the
precision-recall curve and the stream accumulator all import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "FIGURES",
    "UNDEFINED_REASONS",
    "BatchScore",
    "BoolArray",
    "Box",
    "BoxOptions",
    "Counts",
    "FloatArray",
    "ImageBoxes",
    "ImageMatch",
    "IntArray",
    "undefined_reason",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = (0.5, 0.75, 0.95)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels, x to the right and y downwards.

    Attributes:
        x1: Left edge.
        y1: Top edge.
        x2: Right edge, >= x1.
        y2: Bottom edge, >= y1.
        label: Class or phrase the box grounds; matching is per label unless
            ``BoxOptions.class_agnostic``.
        confidence: Score in [0, 1]; ignored on ground truth.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class ImageBoxes:
    """Predictions and ground truth of one image."""

    image_id: str
    predictions: Sequence[Box]
    ground_truth: Sequence[Box]


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxOptions:
    """How a box stream is scored.

    Attributes:
        iou_thresholds: IoU thresholds, each in (0, 1], no duplicates; a match
            needs IoU >= threshold.
        confidence_threshold: Predictions below it are dropped, in [0, 1].
        class_agnostic: Match across labels.
        pr_curve: Keep per-prediction state for precision-recall curves.
        pr_curve_max_points: Most points per returned curve, >= 2.
    """

    iou_thresholds: tuple[float, ...] = DEFAULT_IOU_THRESHOLDS
    confidence_threshold: float = 0.0
    class_agnostic: bool = False
    pr_curve: bool = False
    pr_curve_max_points: int = 101


# ---------------------------------------------------------------- counts

#: Figure names finished from :class:`Counts`, in display order.
FIGURES: tuple[str, ...] = ("precision", "recall", "f1", "mean_iou")

#: Why each figure can be undefined (each has exactly one cause).
UNDEFINED_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "precision": "no predictions",
        "recall": "no ground truth",
        "f1": "no predictions and no ground truth",
        "mean_iou": "no matched pairs",
    }
)


@dataclass(frozen=True, slots=True)
class Counts:
    """Summable sufficient statistics at one IoU threshold.

    Attributes:
        tp: Matched predictions.
        fp: Unmatched predictions.
        fn: Unmatched ground truths.
        iou_sum: Sum of IoU over matched pairs.

    Example:
        >>> c = Counts(tp=3, fp=1, fn=0, iou_sum=2.4) + Counts(tp=1, fp=0, fn=2, iou_sum=0.6)
        >>> c.tp, c.precision(), c.recall(), round(c.f1() or 0, 4), round(c.mean_iou() or 0, 4)
        (4, 0.8, 0.6666666666666666, 0.7273, 0.75)
        >>> Counts().precision() is None
        True
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            iou_sum=self.iou_sum + other.iou_sum,
        )

    def precision(self) -> float | None:
        """tp / (tp + fp); None with no predictions."""
        d = self.tp + self.fp
        return self.tp / d if d else None

    def recall(self) -> float | None:
        """tp / (tp + fn); None with no ground truth."""
        d = self.tp + self.fn
        return self.tp / d if d else None

    def f1(self) -> float | None:
        """2 tp / (2 tp + fp + fn); None with neither predictions nor ground truth."""
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else None

    def mean_iou(self) -> float | None:
        """iou_sum / tp; None with no matched pair."""
        return self.iou_sum / self.tp if self.tp else None


def undefined_reason(counts: Counts, figure_name: str) -> str:
    """Says why a figure of ``counts`` is undefined.

    Args:
        counts: The counts the figure was finished from.
        figure_name: One of :data:`FIGURES`.

    Returns:
        A short reason such as ``"no predictions"``.

    Raises:
        ValueError: The name is unknown, or the figure is defined.

    Example:
        >>> undefined_reason(Counts(fn=2), "precision")
        'no predictions'
        >>> undefined_reason(Counts(), "f1")
        'no predictions and no ground truth'
    """
    if figure_name not in UNDEFINED_REASONS:
        raise ValueError(f"unknown figure {figure_name!r}; valid names: {', '.join(FIGURES)}")
    value = getattr(counts, figure_name)()
    if value is not None:
        raise ValueError(f"{figure_name} is defined ({value}) for {counts}")
    return UNDEFINED_REASONS[figure_name]


# ---------------------------------------------------------------- matches


@dataclass(frozen=True, slots=True, eq=False)
class ImageMatch:
    """Matching of one image.

    Arrays are read-only and indexed by kept prediction in matching order
    (descending confidence, stable). ``eq=False`` because dataclass equality
    over numpy arrays is ambiguous; compare fields instead.

    Attributes:
        image_id: Echo of ``ImageBoxes.image_id``.
        counts: One :class:`Counts` per IoU threshold, in options order.
        confidences: Confidences of the kept predictions (float64).
        matched: Per threshold, which kept predictions are true positives.
        n_ground_truth: Ground-truth boxes of the image.
        pred_index: Input index (into ``predictions``) of each kept prediction.
        gt_index: Per threshold, input index (into ``ground_truth``) of the
            ground truth each kept prediction matched, or -1.
    """

    image_id: str
    counts: tuple[Counts, ...]
    confidences: FloatArray
    matched: tuple[BoolArray, ...]
    n_ground_truth: int
    pred_index: IntArray = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    gt_index: tuple[IntArray, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class BatchScore:
    """Result of one :meth:`BoxAccumulator.update`.

    Attributes:
        images: Per-image matches, in batch order.
        batch: Counts per IoU threshold summed over the batch.
    """

    images: tuple[ImageMatch, ...]
    batch: tuple[Counts, ...]
