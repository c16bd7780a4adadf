"""Box matching for phrase grounding: COCO's greedy matching as summable counts.

Reference: pycocotools ``COCOeval.evaluateImg`` (cocodataset/cocoapi,
PythonAPI/pycocotools/cocoeval.py) for ``iouType='bbox'``, area range "all",
no crowd boxes and ``maxDets`` large enough to keep every prediction. Per image
and per label (all labels together when ``class_agnostic``):

* predictions below ``confidence_threshold`` are dropped;
* the rest are sorted by descending confidence with a stable sort (pycocotools:
  ``np.argsort(-score, kind='mergesort')``), so equal confidences keep input
  order;
* at each IoU threshold ``t`` independently, each prediction in that order
  takes, among the ground truths of its label still free at ``t``, the one of
  highest IoU provided IoU >= ``min(t, 1 - 1e-10)``; among equal IoUs the
  *last* ground truth in input order wins (pycocotools' ``if ious[d, g] < iou:
  continue`` lets a later equal value replace the best so far);
* a matched prediction is a true positive, an unmatched one a false positive,
  an unmatched ground truth a false negative.

IoU is pycocotools' continuous-coordinate bbox IoU (maskApi ``bbIou``, no +1):
``inter / (area_p + area_g - inter)``, 0 where the union is 0.

Following STYLE.md ("a metric is sufficient statistics plus a finish"), an
image yields :class:`Counts` per threshold; counts add over images, batches and
the stream, and the figures (precision, recall, F1, mean IoU) are finished from
summed counts. An undefined figure is ``None`` with a reason, never NaN.

Implementation: the IoUs of every same-image (prediction, ground truth) pair of
a batch are computed in one vectorised numpy pass, with pairs of different
labels masked out rather than matched per label (same result, fewer calls);
only the greedy assignment loops in Python, over candidate pairs.

Because matching is greedy in descending confidence, raising the confidence
cut only removes the latest-matched predictions; one matching therefore gives
the exact precision-recall curve over confidence (:func:`pr_curve`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from evalstream_server.errors import MAX_VIOLATIONS, FieldViolation, InvalidRequest, cap_violations

__all__ = [
    "DEFAULT_IOU_THRESHOLDS",
    "FIGURES",
    "UNDEFINED_REASONS",
    "BatchScore",
    "Box",
    "BoxAccumulator",
    "BoxOptions",
    "Counts",
    "ImageBoxes",
    "ImageMatch",
    "InvalidBoxes",
    "PrCurve",
    "iou_matrix",
    "match_image",
    "pr_curve",
    "undefined_reason",
    "validate_images",
    "validate_options",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]

DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = (0.5, 0.75, 0.95)


# pycocotools caps the IoU floor just below 1 so that t = 1.0 still matches
# identical boxes whose computed IoU is exactly 1.
_IOU_FLOOR_CAP = 1 - 1e-10


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


# ---------------------------------------------------------------- matching


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


def iou_matrix(preds: npt.ArrayLike, gts: npt.ArrayLike) -> FloatArray:
    """IoU of every prediction with every ground truth.

    Continuous coordinates as pycocotools' bbox IoU: no +1 on widths, and 0
    where the union is 0 (two degenerate boxes).

    Args:
        preds: (P, 4) boxes as x1, y1, x2, y2.
        gts: (G, 4) boxes as x1, y1, x2, y2.

    Returns:
        (P, G) float64 array in [0, 1].

    Example:
        >>> iou_matrix([[0, 0, 2, 1]], [[0, 0, 1, 1], [5, 5, 6, 6]]).tolist()
        [[0.5, 0.0]]
    """
    p = np.asarray(preds, dtype=np.float64).reshape(-1, 4)
    g = np.asarray(gts, dtype=np.float64).reshape(-1, 4)
    return _iou(p[:, None, :], g[None, :, :])


def _iou(p: FloatArray, g: FloatArray) -> FloatArray:
    """Elementwise IoU of broadcastable xyxy arrays (last axis of length 4).

    The one IoU formula: :func:`iou_matrix` and the batch matcher both use it,
    so their values are the same doubles.
    """
    iw = np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0])
    ih = np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1])
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    inter = iw * ih
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    # Same association as bbIou (da + ga - i) so values agree bit for bit.
    union = area_p + area_g - inter
    out: FloatArray = np.zeros(inter.shape, dtype=np.float64)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _floors(thresholds: Sequence[float]) -> tuple[float, ...]:
    return tuple(min(float(t), _IOU_FLOOR_CAP) for t in thresholds)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def match_image(image: ImageBoxes, options: BoxOptions) -> ImageMatch:
    """Matches the predictions of one image to its ground truth.

    Args:
        image: The boxes; validated with :func:`validate_images`.
        options: Scoring options; validated with :func:`validate_options`.

    Returns:
        Counts per IoU threshold plus the per-prediction arrays.

    Raises:
        InvalidBoxes: The options or boxes are invalid.

    Example:
        >>> image = ImageBoxes(
        ...     image_id="a",
        ...     predictions=[Box(0, 0, 2, 1, confidence=0.9), Box(5, 5, 6, 6, confidence=0.8)],
        ...     ground_truth=[Box(0, 0, 1, 1)],
        ... )
        >>> m = match_image(image, BoxOptions(iou_thresholds=(0.5, 0.75)))
        >>> m.counts[0]
        Counts(tp=1, fp=1, fn=0, iou_sum=0.5)
        >>> m.counts[1].tp, m.matched[0].tolist()
        (0, [True, False])
    """
    violations = validate_options(options)
    flat = _Flat.build([image], labels=not options.class_agnostic)
    violations += flat.violations(max_images=None, max_boxes_per_image=None)
    if violations:
        raise InvalidBoxes(violations)
    return flat.match_all(options, _floors(options.iou_thresholds))[0]


@dataclass(frozen=True, slots=True, eq=False)
class BatchScore:
    """Result of one :meth:`BoxAccumulator.update`.

    Attributes:
        images: Per-image matches, in batch order.
        batch: Counts per IoU threshold summed over the batch.
    """

    images: tuple[ImageMatch, ...]
    batch: tuple[Counts, ...]


# ---------------------------------------------------------------- PR curve


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


# ---------------------------------------------------------------- validation


class InvalidBoxes(InvalidRequest):
    """Options or boxes break the contract; ``violations`` says where."""


def validate_options(options: BoxOptions) -> list[FieldViolation]:
    """Checks options against the contract.

    Args:
        options: The options.

    Returns:
        Violations, empty when the options are valid.

    Example:
        >>> validate_options(BoxOptions(iou_thresholds=(0.5, 1.5)))
        [FieldViolation(field='options.iou_thresholds[1]', description='1.5 is outside (0, 1]')]
    """
    out: list[FieldViolation] = []
    thresholds = options.iou_thresholds
    if len(thresholds) == 0:
        out.append(
            FieldViolation("options.iou_thresholds", "at least one IoU threshold is required")
        )
    seen: dict[float, int] = {}
    for i, t in enumerate(thresholds):
        name = f"options.iou_thresholds[{i}]"
        if not math.isfinite(t):
            out.append(FieldViolation(name, f"{t} is not finite"))
        elif not 0.0 < t <= 1.0:
            out.append(FieldViolation(name, f"{t} is outside (0, 1]"))
        elif t in seen:
            out.append(FieldViolation(name, f"{t} repeats options.iou_thresholds[{seen[t]}]"))
        else:
            seen[t] = i
    c = options.confidence_threshold
    if not math.isfinite(c):
        out.append(FieldViolation("options.confidence_threshold", f"{c} is not finite"))
    elif not 0.0 <= c <= 1.0:
        out.append(FieldViolation("options.confidence_threshold", f"{c} is outside [0, 1]"))
    if options.pr_curve_max_points < 2:
        out.append(
            FieldViolation("options.pr_curve_max_points", f"{options.pr_curve_max_points} < 2")
        )
    return out


_COORDS = ("x1", "y1", "x2", "y2")


class _Flat:
    """A batch as flat arrays: built once, checked and matched per image slice."""

    __slots__ = ("images", "pred", "pred_label", "pred_off", "gt", "gt_label", "gt_off")

    def __init__(
        self,
        images: Sequence[ImageBoxes],
        pred: FloatArray,
        pred_label: IntArray | None,
        pred_off: list[int],
        gt: FloatArray,
        gt_label: IntArray | None,
        gt_off: list[int],
    ) -> None:
        self.images = images
        self.pred = pred  # (N, 5): x1, y1, x2, y2, confidence
        self.pred_label = pred_label
        self.pred_off = pred_off
        self.gt = gt  # (M, 4)
        self.gt_label = gt_label
        self.gt_off = gt_off

    @classmethod
    def build(cls, images: Sequence[ImageBoxes], *, labels: bool) -> _Flat:
        chain = itertools.chain.from_iterable
        n_pred = [len(im.predictions) for im in images]
        n_gt = [len(im.ground_truth) for im in images]
        pred_off = [0, *itertools.accumulate(n_pred)]
        gt_off = [0, *itertools.accumulate(n_gt)]
        preds = list(chain(im.predictions for im in images))
        gts = list(chain(im.ground_truth for im in images))
        pred = np.fromiter(
            chain((b.x1, b.y1, b.x2, b.y2, b.confidence) for b in preds),
            dtype=np.float64,
            count=5 * len(preds),
        ).reshape(-1, 5)
        gt = np.fromiter(
            chain((b.x1, b.y1, b.x2, b.y2) for b in gts), dtype=np.float64, count=4 * len(gts)
        ).reshape(-1, 4)
        pred_label: IntArray | None = None
        gt_label: IntArray | None = None
        if labels:
            ids: dict[str, int] = {}
            pl = [ids.setdefault(b.label, len(ids)) for b in preds]
            gl = [ids.setdefault(b.label, len(ids)) for b in gts]
            # One label in the whole batch: nothing to separate.
            if len(ids) > 1:
                pred_label = np.array(pl, dtype=np.intp)
                gt_label = np.array(gl, dtype=np.intp)
        return cls(images, pred, pred_label, pred_off, gt, gt_label, gt_off)

    def match_all(self, options: BoxOptions, floors: tuple[float, ...]) -> list[ImageMatch]:
        """Greedy matching of every image of the batch (the hot path).

        IoUs of all same-image (prediction, ground truth) pairs are computed in
        one vectorised pass; only the greedy assignment loops in Python, over
        candidate pairs (IoU >= the lowest floor, same label).
        """
        n_images = len(self.images)
        n_thr = len(floors)
        pred_off = np.asarray(self.pred_off, dtype=np.intp)
        gt_off = np.asarray(self.gt_off, dtype=np.intp)
        pred_count = pred_off[1:] - pred_off[:-1]
        gt_count = gt_off[1:] - gt_off[:-1]
        pred_image = np.repeat(np.arange(n_images, dtype=np.intp), pred_count)
        conf = self.pred[:, 4]
        if options.confidence_threshold > 0.0:
            kept = np.flatnonzero(conf >= options.confidence_threshold)
        else:
            kept = np.arange(len(conf), dtype=np.intp)
        # Per image, descending confidence, stable (pycocotools' mergesort on
        # -score): a stable sort on -conf, then a stable sort on the image.
        by_conf = kept[np.argsort(-conf[kept], kind="stable")]
        order = by_conf[np.argsort(pred_image[by_conf], kind="stable")]
        n_kept = len(order)
        order_image = pred_image[order]

        # All same-image pairs, prediction-major, ground truths ascending.
        per_pred: IntArray = gt_count[order_image]
        n_pairs = int(per_pred.sum())
        pair_pred = np.repeat(np.arange(n_kept, dtype=np.intp), per_pred)
        block_start: IntArray = np.cumsum(per_pred) - per_pred
        gt_start = gt_off[:-1][order_image]
        pair_gt = np.arange(n_pairs, dtype=np.intp) + np.repeat(gt_start - block_start, per_pred)
        ious = _iou(self.pred[order[pair_pred], :4], self.gt[pair_gt])
        # Every floor is > 0, so pairs under the lowest floor (and pairs of
        # different labels) can never match: keep only candidates.
        cand = ious >= min(floors)
        if self.pred_label is not None and self.gt_label is not None:
            cand &= self.pred_label[order[pair_pred]] == self.gt_label[pair_gt]
        c_pred = pair_pred[cand].tolist()
        c_gt = pair_gt[cand].tolist()
        c_iou = ious[cand].tolist()

        gt_index = [[-1] * n_kept for _ in range(n_thr)]
        # Ground-truth indices are flat over the batch, so one "taken" set per
        # threshold serves every image.
        taken: list[set[int]] = [set() for _ in range(n_thr)]
        thr = list(zip(floors, taken, gt_index, strict=True))
        k, n_cand = 0, len(c_pred)
        while k < n_cand:
            d = c_pred[k]
            e = k + 1
            while e < n_cand and c_pred[e] == d:
                e += 1
            for floor, used, gi in thr:
                best = floor
                m = -1
                for q in range(k, e):
                    v = c_iou[q]
                    # ">=" so that a later equal IoU wins, as in pycocotools.
                    if v >= best and c_gt[q] not in used:
                        best = v
                        m = c_gt[q]
                if m >= 0:
                    used.add(m)
                    gi[d] = m
            k = e

        kept_count = np.bincount(order_image, minlength=n_images).tolist()
        kept_off = [0, *itertools.accumulate(kept_count)]
        sorted_conf = _readonly(conf[order])
        local_pred = _readonly(order - pred_off[:-1][order_image])
        gt_local: list[IntArray] = []
        hit: list[BoolArray] = []
        tp: list[list[int]] = []
        iou_sum: list[list[float]] = []
        for gi in gt_index:
            g = np.array(gi, dtype=np.intp)
            ok = g >= 0
            hit.append(_readonly(ok))
            gt_local.append(_readonly(np.where(ok, g - gt_start, -1)))
            tp.append(np.bincount(order_image[ok], minlength=n_images).tolist())
            matched_iou = _iou(self.pred[order[ok], :4], self.gt[g[ok]])
            # astype: bincount of an empty array is int even with weights.
            sums = np.bincount(order_image[ok], weights=matched_iou, minlength=n_images)
            iou_sum.append(sums.astype(np.float64).tolist())
        n_gt = gt_count.tolist()
        out = []
        for i, im in enumerate(self.images):
            a, b = kept_off[i], kept_off[i + 1]
            n_p = b - a
            out.append(
                ImageMatch(
                    image_id=im.image_id,
                    counts=tuple(
                        Counts(tp=t[i], fp=n_p - t[i], fn=n_gt[i] - t[i], iou_sum=s[i])
                        for t, s in zip(tp, iou_sum, strict=True)
                    ),
                    confidences=sorted_conf[a:b],
                    matched=tuple(h[a:b] for h in hit),
                    n_ground_truth=n_gt[i],
                    pred_index=local_pred[a:b],
                    gt_index=tuple(g[a:b] for g in gt_local),
                )
            )
        return out

    def violations(
        self, *, max_images: int | None, max_boxes_per_image: int | None
    ) -> list[FieldViolation]:
        images = self.images
        if max_images is not None and len(images) > max_images:
            # Refused as a whole: checking every box of an oversized batch
            # would be the cost the limit exists to bound.
            return [
                FieldViolation("images", f"{len(images)} images but at most {max_images} per batch")
            ]
        found: list[tuple[int, int, int, FieldViolation]] = []
        total = 0
        if max_boxes_per_image is not None:
            for kind, off, what in (
                (0, self.pred_off, "predictions"),
                (1, self.gt_off, "ground_truth"),
            ):
                sizes = np.diff(np.asarray(off))
                for i in np.flatnonzero(sizes > max_boxes_per_image).tolist():
                    total += 1
                    found.append(
                        (
                            i,
                            kind,
                            -1,
                            FieldViolation(
                                f"images[{i}].{what}",
                                f"{sizes[i]} {what.replace('_', ' ')} boxes but at most "
                                f"{max_boxes_per_image} per image",
                            ),
                        )
                    )
        for kind, arr, off, what in (
            (0, self.pred, self.pred_off, "predictions"),
            (1, self.gt, self.gt_off, "ground_truth"),
        ):
            xyxy = arr[:, :4]
            nonfinite = ~np.isfinite(xyxy)
            finite_row = ~nonfinite.any(axis=1)
            bad_x = finite_row & (xyxy[:, 2] < xyxy[:, 0])
            bad_y = finite_row & (xyxy[:, 3] < xyxy[:, 1])
            bad = ~finite_row | bad_x | bad_y
            n_bad = int(nonfinite.sum()) + int(bad_x.sum()) + int(bad_y.sum())
            bad_conf = None
            if kind == 0:
                c = arr[:, 4]
                bad_conf = ~((c >= 0.0) & (c <= 1.0))  # NaN fails both
                bad |= bad_conf
                n_bad += int(bad_conf.sum())
            total += n_bad
            # Each bad row gives >= 1 violation, so the first MAX_VIOLATIONS
            # rows of each kind are all that can be listed.
            for k in np.flatnonzero(bad)[:MAX_VIOLATIONS].tolist():
                i = bisect.bisect_right(off, k) - 1  # off[i] <= k < off[i + 1]
                j = k - off[i]
                base = f"images[{i}].{what}[{j}]"
                row = arr[k].tolist()
                for f, name in enumerate(_COORDS):
                    if not math.isfinite(row[f]):
                        found.append(
                            (
                                i,
                                kind,
                                j,
                                FieldViolation(f"{base}.{name}", f"{row[f]} is not finite"),
                            )
                        )
                if bad_x[k]:
                    found.append(
                        (i, kind, j, FieldViolation(f"{base}.x2", f"x2 ({row[2]}) < x1 ({row[0]})"))
                    )
                if bad_y[k]:
                    found.append(
                        (i, kind, j, FieldViolation(f"{base}.y2", f"y2 ({row[3]}) < y1 ({row[1]})"))
                    )
                if bad_conf is not None and bad_conf[k]:
                    found.append(
                        (
                            i,
                            kind,
                            j,
                            FieldViolation(f"{base}.confidence", f"{row[4]} is outside [0, 1]"),
                        )
                    )
        found.sort(key=lambda x: x[:3])
        return cap_violations([v for *_, v in found], total)


def validate_images(
    images: Sequence[ImageBoxes], *, max_images: int, max_boxes_per_image: int
) -> list[FieldViolation]:
    """Checks a batch against the contract; cheap enough for every batch.

    Checks the number of images, the number of predictions and of ground
    truths per image (each against ``max_boxes_per_image``), that coordinates
    are finite with x1 <= x2 and y1 <= y2, and that prediction confidences are
    in [0, 1]. A batch over ``max_images`` is refused without checking boxes.

    Args:
        images: The batch.
        max_images: Most images per batch.
        max_boxes_per_image: Most predictions, and most ground truths, per image.

    Returns:
        Up to :data:`MAX_VIOLATIONS` violations, in batch order; empty when valid.

    Example:
        >>> bad = ImageBoxes("a", predictions=[Box(5, 0, 3, 1)], ground_truth=[])
        >>> validate_images([bad], max_images=10, max_boxes_per_image=10)
        [FieldViolation(field='images[0].predictions[0].x2', description='x2 (3.0) < x1 (5.0)')]
    """
    return _Flat.build(images, labels=False).violations(
        max_images=max_images, max_boxes_per_image=max_boxes_per_image
    )


# ---------------------------------------------------------------- stream


class BoxAccumulator:
    """Running state over a stream: summed counts, plus per-prediction arrays
    for PR curves when ``options.pr_curve``.

    Example:
        >>> acc = BoxAccumulator(BoxOptions(iou_thresholds=(0.5,)))
        >>> img = ImageBoxes("a", predictions=[Box(0, 0, 1, 1)], ground_truth=[Box(0, 0, 1, 1)])
        >>> acc.update([img, img]).batch
        (Counts(tp=2, fp=0, fn=0, iou_sum=2.0),)
        >>> acc.running[0].f1(), acc.images_total, acc.boxes_total
        (1.0, 2, 4)
    """

    def __init__(self, options: BoxOptions) -> None:
        """Starts an empty stream.

        Raises:
            InvalidBoxes: The options are invalid.
        """
        violations = validate_options(options)
        if violations:
            raise InvalidBoxes(violations)
        self._options = options
        self._floors = _floors(options.iou_thresholds)
        n_thr = len(options.iou_thresholds)
        self._running = tuple(Counts() for _ in range(n_thr))
        self._images_total = 0
        self._boxes_total = 0
        self._n_ground_truth = 0
        self._conf: list[FloatArray] = []
        self._matched: list[list[BoolArray]] = [[] for _ in range(n_thr)]

    @property
    def options(self) -> BoxOptions:
        """Options the stream is scored with."""
        return self._options

    @property
    def running(self) -> tuple[Counts, ...]:
        """Counts per IoU threshold over the stream so far."""
        return self._running

    @property
    def images_total(self) -> int:
        """Images seen so far."""
        return self._images_total

    @property
    def boxes_total(self) -> int:
        """Boxes seen so far: predictions (before the confidence cut) plus ground truths."""
        return self._boxes_total

    def update(self, images: Sequence[ImageBoxes], *, check: bool = True) -> BatchScore:
        """Scores a batch and adds it to the stream.

        Args:
            images: The batch.
            check: Validate the boxes first; pass False only when the caller
                has already run :func:`validate_images` on this batch.

        Returns:
            Per-image matches and the batch counts.

        Raises:
            InvalidBoxes: A box is invalid; the stream is left unchanged.
        """
        opts = self._options
        flat = _Flat.build(images, labels=not opts.class_agnostic)
        if check:
            violations = flat.violations(max_images=None, max_boxes_per_image=None)
            if violations:
                raise InvalidBoxes(violations)
        n_thr = len(self._floors)
        tp = [0] * n_thr
        fp = [0] * n_thr
        fn = [0] * n_thr
        iou_sum = [0.0] * n_thr
        matches = flat.match_all(opts, self._floors)
        for m in matches:
            for ti, c in enumerate(m.counts):
                tp[ti] += c.tp
                fp[ti] += c.fp
                fn[ti] += c.fn
                iou_sum[ti] += c.iou_sum
        batch = tuple(Counts(a, b, c, d) for a, b, c, d in zip(tp, fp, fn, iou_sum, strict=True))
        self._running = tuple(r + b for r, b in zip(self._running, batch, strict=True))
        self._images_total += len(images)
        self._boxes_total += len(flat.pred) + len(flat.gt)
        self._n_ground_truth += len(flat.gt)
        if opts.pr_curve and matches:
            self._conf.append(np.concatenate([m.confidences for m in matches]))
            for ti in range(n_thr):
                self._matched[ti].append(np.concatenate([m.matched[ti] for m in matches]))
        return BatchScore(images=tuple(matches), batch=batch)

    def pr_curves(self) -> tuple[PrCurve, ...]:
        """PR curves over the stream so far, one per IoU threshold.

        Raises:
            ValueError: The stream was opened without ``pr_curve``, so the
                per-prediction state was never kept.
        """
        opts = self._options
        if not opts.pr_curve:
            raise ValueError("PR curves were not requested (BoxOptions.pr_curve is False)")
        # Compact the per-batch chunks so repeated calls stay linear.
        if len(self._conf) > 1:
            self._conf = [np.concatenate(self._conf)]
            self._matched = [[np.concatenate(chunks)] for chunks in self._matched]
        conf = self._conf[0] if self._conf else np.empty(0)
        return tuple(
            pr_curve(
                conf,
                chunks[0] if chunks else np.empty(0, dtype=np.bool_),
                self._n_ground_truth,
                iou_threshold=t,
                max_points=opts.pr_curve_max_points,
            )
            for t, chunks in zip(opts.iou_thresholds, self._matched, strict=True)
        )
