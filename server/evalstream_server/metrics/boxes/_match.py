"""COCO's greedy matching of a batch: IoUs in one numpy pass, the assignment in Python."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from evalstream_server.metrics.boxes._flat import FlatBatch
from evalstream_server.metrics.boxes._types import (
    BoolArray,
    BoxOptions,
    Counts,
    FloatArray,
    ImageBoxes,
    ImageMatch,
    IntArray,
)
from evalstream_server.metrics.boxes._validate import (
    InvalidBoxes,
    batch_violations,
    validate_options,
)

__all__ = ["iou_floors", "iou_matrix", "match_batch", "match_image"]

# pycocotools caps the IoU floor just below 1 so that t = 1.0 still matches
# identical boxes whose computed IoU is exactly 1.
_IOU_FLOOR_CAP = 1 - 1e-10


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


def iou_floors(thresholds: Sequence[float]) -> tuple[float, ...]:
    """The IoU a match needs at each threshold (capped just below 1, as pycocotools does)."""
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
        >>> from evalstream_server.metrics.boxes import Box, BoxOptions, ImageBoxes
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
    flat = FlatBatch.build([image], labels=not options.class_agnostic)
    violations += batch_violations(flat, max_images=None, max_boxes_per_image=None)
    if violations:
        raise InvalidBoxes(violations)
    return match_batch(flat, options, iou_floors(options.iou_thresholds))[0]


def match_batch(
    flat: FlatBatch, options: BoxOptions, floors: tuple[float, ...]
) -> list[ImageMatch]:
    """Greedy matching of every image of the batch (the hot path).

    IoUs of all same-image (prediction, ground truth) pairs are computed in
    one vectorised pass; only the greedy assignment loops in Python, over
    candidate pairs (IoU >= the lowest floor, same label).
    """
    n_images = len(flat.images)
    n_thr = len(floors)
    pred_off = np.asarray(flat.pred_off, dtype=np.intp)
    gt_off = np.asarray(flat.gt_off, dtype=np.intp)
    pred_count = pred_off[1:] - pred_off[:-1]
    gt_count = gt_off[1:] - gt_off[:-1]
    pred_image = np.repeat(np.arange(n_images, dtype=np.intp), pred_count)
    conf = flat.pred[:, 4]
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
    ious = _iou(flat.pred[order[pair_pred], :4], flat.gt[pair_gt])
    # Every floor is > 0, so pairs under the lowest floor (and pairs of
    # different labels) can never match: keep only candidates.
    cand = ious >= min(floors)
    if flat.pred_label is not None and flat.gt_label is not None:
        cand &= flat.pred_label[order[pair_pred]] == flat.gt_label[pair_gt]
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
        matched_iou = _iou(flat.pred[order[ok], :4], flat.gt[g[ok]])
        # astype: bincount of an empty array is int even with weights.
        sums = np.bincount(order_image[ok], weights=matched_iou, minlength=n_images)
        iou_sum.append(sums.astype(np.float64).tolist())
    n_gt = gt_count.tolist()
    out = []
    for i, im in enumerate(flat.images):
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
