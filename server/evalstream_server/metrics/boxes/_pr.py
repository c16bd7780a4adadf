"""The exact precision-recall curve over confidence, from one greedy matching."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evalstream_server.metrics.boxes._types import IntArray

__all__ = ["PrCurve", "pr_curve"]


@dataclass(frozen=True, slots=True)
class PrCurve:
    """Precision-recall curve over the confidence cut, at one IoU threshold.

    Point ``k`` keeps the predictions with confidence >= ``confidence[k]``.

    Attributes:
        iou_threshold: The IoU threshold.
        confidence: Cut per point, descending.
        precision: Precision per point.
        recall: Recall per point (0 with no ground truth).
        f1: F1 per point (0 where precision + recall is 0).
        best_confidence: Cut of highest F1, the highest cut on ties; None with
            no predictions.
        best_f1: F1 at ``best_confidence``.
        best_precision: Precision at ``best_confidence``.
        best_recall: Recall at ``best_confidence``.
        average_precision: All-point interpolated AP (area under the monotone
            precision envelope, VOC2010+ style, no 101-point sampling) over the
            full curve; None with no ground truth.
    """

    iou_threshold: float
    confidence: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    best_confidence: float | None
    best_f1: float | None
    best_precision: float | None
    best_recall: float | None
    average_precision: float | None


def _decimate(n: int, max_points: int, keep: int) -> IntArray:
    """At most ``max_points`` indices of ``range(n)``, evenly spaced, with ``keep``.

    The first and last index are kept too when ``max_points`` >= 3; with 2, the
    endpoint nearer to ``keep`` gives way.
    """
    if n <= max_points:
        return np.arange(n, dtype=np.intp)
    idx = np.unique(np.floor(np.linspace(0, n - 1, max_points) + 0.5).astype(np.intp))
    if keep not in idx:
        inner = np.arange(1, len(idx) - 1) if len(idx) > 2 else np.arange(len(idx))
        nearest = inner[np.argmin(np.abs(idx[inner] - keep))]
        idx[nearest] = keep
        idx.sort()
    return idx


def pr_curve(
    confidences: npt.ArrayLike,
    matched: npt.ArrayLike,
    n_ground_truth: int,
    *,
    iou_threshold: float,
    max_points: int = 101,
) -> PrCurve:
    """Exact precision-recall curve from one greedy matching.

    Predictions are sorted by descending confidence (stable) and the curve is
    evaluated at each distinct confidence, so tied predictions enter together.
    Precision, recall and F1 at a point equal those of :func:`match_image` with
    ``confidence_threshold`` set to that point's confidence.

    Args:
        confidences: Confidence of each kept prediction.
        matched: Whether each prediction is a true positive.
        n_ground_truth: Ground-truth boxes in the same scope.
        iou_threshold: Echoed in the result.
        max_points: Most points returned, >= 2; the best-F1 point is always
            among them. AP and the best point use the full curve.

    Returns:
        The curve.

    Raises:
        ValueError: Mismatched lengths, ``max_points`` < 2, or more true
            positives than ground truths.

    Example:
        >>> c = pr_curve([0.9, 0.8, 0.8, 0.3], [True, False, True, False], 3, iou_threshold=0.5)
        >>> c.confidence, c.precision
        ((0.9, 0.8, 0.3), (1.0, 0.6666666666666666, 0.5))
        >>> c.best_confidence, round(c.average_precision, 4)
        (0.8, 0.5556)
    """
    conf = np.asarray(confidences, dtype=np.float64).reshape(-1)
    hit = np.asarray(matched, dtype=np.bool_).reshape(-1)
    if conf.shape != hit.shape:
        raise ValueError(f"{len(conf)} confidences but {len(hit)} matched flags")
    if max_points < 2:
        raise ValueError(f"max_points ({max_points}) < 2")
    n_tp = int(hit.sum())
    if n_tp > n_ground_truth:
        raise ValueError(f"{n_tp} true positives but {n_ground_truth} ground truths")
    if len(conf) == 0:
        return PrCurve(
            iou_threshold=iou_threshold,
            confidence=(),
            precision=(),
            recall=(),
            f1=(),
            best_confidence=None,
            best_f1=None,
            best_precision=None,
            best_recall=None,
            average_precision=0.0 if n_ground_truth else None,
        )
    order = np.argsort(-conf, kind="stable")
    conf = conf[order]
    cum_tp = np.cumsum(hit[order])
    # Last index of each run of equal confidences: ties enter together.
    ends = np.flatnonzero(np.append(conf[1:] != conf[:-1], True))
    tp = cum_tp[ends]
    kept = ends + 1  # tp + fp
    precision = tp / kept
    recall = tp / n_ground_truth if n_ground_truth else np.zeros(len(ends))
    # 2PR/(P+R) written on counts (= 2tp / (2tp + fp + fn)) so that it equals
    # Counts.f1 bit for bit; kept >= 1, so the denominator is > 0.
    f1 = 2 * tp / (kept + n_ground_truth)
    best = int(np.argmax(f1))  # first maximum = highest confidence
    ap: float | None = None
    if n_ground_truth:
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        ap = float(np.sum(np.diff(recall, prepend=0.0) * envelope))
    idx = _decimate(len(ends), max_points, best)
    return PrCurve(
        iou_threshold=iou_threshold,
        confidence=tuple(conf[ends][idx].tolist()),
        precision=tuple(precision[idx].tolist()),
        recall=tuple(recall[idx].tolist()),
        f1=tuple(f1[idx].tolist()),
        best_confidence=float(conf[ends[best]]),
        best_f1=float(f1[best]),
        best_precision=float(precision[best]),
        best_recall=float(recall[best]),
        average_precision=ap,
    )
