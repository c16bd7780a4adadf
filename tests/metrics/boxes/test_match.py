"""Greedy matching and counts: hand-worked cases, and exact agreement with pycocotools.

Tolerance: agreement with pycocotools ``COCOeval.evaluateImg`` is exact (TP,
FP, FN and every matched (prediction, ground truth) pair). The random boxes sit
on a quarter-pixel grid so that our xyxy IoU and pycocotools' xywh IoU are the
same double; with arbitrary floats the two can differ in the last bit, which
only matters for an IoU within an ulp of a threshold.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from evalstream_server.metrics.boxes import (
    Box,
    BoxAccumulator,
    BoxOptions,
    Counts,
    ImageBoxes,
    iou_matrix,
    match_image,
    undefined_reason,
)

ONE = BoxOptions(iou_thresholds=(0.5,))
THREE = BoxOptions()  # 0.5, 0.75, 0.95


def image(preds: list[Box], gts: list[Box], image_id: str = "img") -> ImageBoxes:
    return ImageBoxes(image_id=image_id, predictions=preds, ground_truth=gts)


# ---------------------------------------------------------------- hand-worked


def test_match_perfect() -> None:
    gts = [Box(0, 0, 10, 10, "a"), Box(20, 20, 30, 40, "a")]
    preds = [Box(*b[:4], label="a", confidence=0.9) for b in ((0, 0, 10, 10), (20, 20, 30, 40))]
    m = match_image(image(preds, gts), THREE)
    # Both boxes identical at every threshold: IoU 1 + 1.
    for c in m.counts:
        assert c == Counts(tp=2, fp=0, fn=0, iou_sum=2.0)
        assert (c.precision(), c.recall(), c.f1(), c.mean_iou()) == (1.0, 1.0, 1.0, 1.0)


def test_match_one_fp_one_fn() -> None:
    m = match_image(image([Box(20, 20, 30, 30, confidence=0.9)], [Box(0, 0, 10, 10)]), THREE)
    c = m.counts[0]
    # Disjoint: IoU 0. precision 0/1, recall 0/1, f1 = 0/(0+1+1).
    assert c == Counts(tp=0, fp=1, fn=1)
    assert (c.precision(), c.recall(), c.f1(), c.mean_iou()) == (0.0, 0.0, 0.0, None)
    assert undefined_reason(c, "mean_iou") == "no matched pairs"


def test_match_higher_confidence_wins_with_lower_iou() -> None:
    gt = Box(0, 0, 10, 10)
    a = Box(0, 0, 10, 5, confidence=0.9)  # IoU 50/100 = 0.5
    b = Box(0, 0, 10, 9, confidence=0.8)  # IoU 90/100 = 0.9
    m = match_image(image([b, a], [gt]), THREE)
    # t=0.5: a (0.9) goes first and takes the gt; b is a FP.
    assert m.counts[0] == Counts(tp=1, fp=1, fn=0, iou_sum=0.5)
    assert m.pred_index.tolist() == [1, 0]
    assert m.matched[0].tolist() == [True, False]
    # t=0.75: a's 0.5 is too low, so b takes the gt with 0.9.
    assert m.counts[1] == Counts(tp=1, fp=1, fn=0, iou_sum=0.9)
    assert m.matched[1].tolist() == [False, True]
    # t=0.95: neither.
    assert m.counts[2] == Counts(tp=0, fp=2, fn=1)


def test_match_label_mismatch() -> None:
    img = image([Box(0, 0, 10, 10, "dog", 0.9)], [Box(0, 0, 10, 10, "cat")])
    assert match_image(img, ONE).counts[0] == Counts(tp=0, fp=1, fn=1)
    agnostic = BoxOptions(iou_thresholds=(0.5,), class_agnostic=True)
    assert match_image(img, agnostic).counts[0] == Counts(tp=1, fp=0, fn=0, iou_sum=1.0)


def test_match_labels_separate_within_an_image() -> None:
    gts = [Box(0, 0, 10, 10, "cat"), Box(0, 0, 10, 10, "dog")]
    # The dog prediction comes first; it may only take the dog gt (index 1),
    # even though the cat gt has the same IoU.
    preds = [Box(0, 0, 10, 10, "dog", 0.9), Box(0, 0, 10, 10, "cat", 0.8)]
    m = match_image(image(preds, gts), ONE)
    assert m.gt_index[0].tolist() == [1, 0]
    assert m.counts[0] == Counts(tp=2, fp=0, fn=0, iou_sum=2.0)


def test_match_iou_exactly_at_threshold() -> None:
    pred, gt = Box(0, 0, 2, 1, confidence=0.9), Box(0, 0, 1, 1)
    # inter 1, union 2 + 1 - 1 = 2: IoU 0.5 exactly in binary floating point.
    assert iou_matrix([[0, 0, 2, 1]], [[0, 0, 1, 1]])[0, 0] == 0.5
    assert match_image(image([pred], [gt]), ONE).counts[0] == Counts(tp=1, fp=0, fn=0, iou_sum=0.5)
    just_above = BoxOptions(iou_thresholds=(math.nextafter(0.5, 1.0),))
    assert match_image(image([pred], [gt]), just_above).counts[0].tp == 0


def test_match_threshold_one_matches_identical_boxes() -> None:
    box = (0.1, 0.2, 3.3, 4.7)
    m = match_image(
        image([Box(*box, confidence=0.5)], [Box(*box)]), BoxOptions(iou_thresholds=(1.0,))
    )
    assert m.counts[0] == Counts(tp=1, fp=0, fn=0, iou_sum=1.0)


def test_match_threshold_one_uses_pycocotools_floor() -> None:
    # pycocotools matches at IoU >= min(t, 1 - 1e-10). IoU 1/(1 + 1e-12) is
    # above that floor; 1/(1 + 1e-9) is below it.
    one = BoxOptions(iou_thresholds=(1.0,))
    gt = Box(0, 0, 1, 1)
    near = Box(0, 0, 1, 1 + 1e-12, confidence=0.5)
    far = Box(0, 0, 1, 1 + 1e-9, confidence=0.5)
    assert match_image(image([near], [gt]), one).counts[0].tp == 1
    assert match_image(image([far], [gt]), one).counts[0].tp == 0


def test_match_empty_image() -> None:
    m = match_image(image([], []), THREE)
    for c in m.counts:
        assert c == Counts()
        assert (c.precision(), c.recall(), c.f1(), c.mean_iou()) == (None, None, None, None)
        assert undefined_reason(c, "precision") == "no predictions"
        assert undefined_reason(c, "recall") == "no ground truth"
        assert undefined_reason(c, "f1") == "no predictions and no ground truth"
        assert undefined_reason(c, "mean_iou") == "no matched pairs"
    assert m.confidences.shape == (0,) and m.n_ground_truth == 0
    assert all(type(c.iou_sum) is float for c in m.counts)


def test_accumulator_empty_batch() -> None:
    acc = BoxAccumulator(BoxOptions(pr_curve=True))
    assert acc.update([]).batch == (Counts(), Counts(), Counts())
    assert acc.pr_curves()[0].average_precision is None
    assert acc.images_total == 0


def test_match_no_predictions_with_ground_truth() -> None:
    c = match_image(image([], [Box(0, 0, 1, 1), Box(2, 2, 3, 3)]), ONE).counts[0]
    # tp 0, fp 0, fn 2: precision 0/0 undefined, recall 0/2, f1 0/(0+0+2).
    assert c == Counts(fn=2)
    assert (c.precision(), c.recall(), c.f1()) == (None, 0.0, 0.0)
    assert undefined_reason(c, "precision") == "no predictions"


def test_match_predictions_without_ground_truth() -> None:
    c = match_image(image([Box(0, 0, 1, 1, confidence=0.3)], []), ONE).counts[0]
    # tp 0, fp 1, fn 0: precision 0/1, recall 0/0 undefined, f1 0/(0+1+0).
    assert c == Counts(fp=1)
    assert (c.precision(), c.recall(), c.f1()) == (0.0, None, 0.0)
    assert undefined_reason(c, "recall") == "no ground truth"


def test_match_confidence_threshold_drops_prediction() -> None:
    preds = [Box(0, 0, 10, 10, confidence=0.3), Box(20, 20, 30, 30, confidence=0.5)]
    gts = [Box(0, 0, 10, 10)]
    opts = BoxOptions(iou_thresholds=(0.5,), confidence_threshold=0.5)
    m = match_image(image(preds, gts), opts)
    # The perfect 0.3 box is dropped; 0.5 (== threshold) is kept and misses.
    assert m.counts[0] == Counts(tp=0, fp=1, fn=1)
    assert m.pred_index.tolist() == [1]
    assert m.confidences.tolist() == [0.5]


def test_match_confidence_ties_keep_input_order() -> None:
    gt = Box(0, 0, 10, 10)
    low = Box(0, 0, 10, 6, confidence=0.7)  # IoU 0.6
    high = Box(0, 0, 10, 9, confidence=0.7)  # IoU 0.9
    # Same confidence: the first in input order goes first and wins at 0.5.
    assert match_image(image([low, high], [gt]), ONE).counts[0].iou_sum == 0.6
    assert match_image(image([high, low], [gt]), ONE).counts[0].iou_sum == 0.9
    assert match_image(image([low, high], [gt]), ONE).pred_index.tolist() == [0, 1]


def test_match_equal_iou_picks_later_ground_truth() -> None:
    pred = Box(0, 0, 10, 10, confidence=0.9)
    top, bottom = Box(0, 0, 10, 5), Box(0, 5, 10, 10)  # IoU 50/100 = 0.5 each
    assert match_image(image([pred], [top, bottom]), ONE).gt_index[0].tolist() == [1]
    assert match_image(image([pred], [bottom, top]), ONE).gt_index[0].tolist() == [1]
    twins = [Box(0, 0, 10, 10), Box(0, 0, 10, 10), Box(0, 0, 10, 10)]
    assert match_image(image([pred], twins), ONE).gt_index[0].tolist() == [2]


def test_match_degenerate_boxes_have_zero_iou() -> None:
    # Zero-area boxes: union 0 gives IoU 0, never NaN.
    assert iou_matrix([[1, 1, 1, 1]], [[1, 1, 1, 1]]).tolist() == [[0.0]]
    c = match_image(image([Box(1, 1, 1, 1, confidence=1.0)], [Box(1, 1, 1, 1)]), ONE).counts[0]
    assert c == Counts(tp=0, fp=1, fn=1)


def test_counts_add() -> None:
    a = Counts(tp=1, fp=2, fn=3, iou_sum=0.5)
    b = Counts(tp=4, fp=5, fn=6, iou_sum=0.25)
    assert a + b == Counts(tp=5, fp=7, fn=9, iou_sum=0.75)


def test_undefined_reason_refuses_defined_figure() -> None:
    with pytest.raises(ValueError, match="defined"):
        undefined_reason(Counts(tp=1), "precision")
    with pytest.raises(ValueError, match="valid names: precision, recall, f1, mean_iou"):
        undefined_reason(Counts(), "accuracy")


# ---------------------------------------------------------------- pycocotools

Pairs = dict[tuple[int, int], set[tuple[int, int]]]
CountsByImage = dict[tuple[int, int], list[int]]


def coco_matches(
    images: list[ImageBoxes],
    thresholds: tuple[float, ...],
    *,
    use_cats: bool,
    labels: tuple[str, ...],
) -> tuple[Pairs, CountsByImage]:
    """COCOeval's matched (pred index, gt index) pairs and [tp, fp, fn], per (image, threshold)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_anns: list[dict[str, Any]] = []
    dt_anns: list[dict[str, Any]] = []
    gt_of: dict[int, tuple[int, int]] = {}
    dt_of: dict[int, tuple[int, int]] = {}
    for i, im in enumerate(images):
        for k, b in enumerate(im.ground_truth):
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": i + 1,
                    "category_id": labels.index(b.label) + 1,
                    "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
                    "area": (b.x2 - b.x1) * (b.y2 - b.y1),
                    "iscrowd": 0,
                }
            )
            gt_of[len(gt_anns)] = (i, k)
        for j, b in enumerate(im.predictions):
            dt_anns.append(
                {
                    "image_id": i + 1,
                    "category_id": labels.index(b.label) + 1,
                    "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1],
                    "score": b.confidence,
                }
            )
            dt_of[len(dt_anns)] = (i, j)  # loadRes numbers results from 1
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {
            "images": [{"id": i + 1} for i in range(len(images))],
            "annotations": gt_anns,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(labels)],
        }
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt_anns)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.iouThrs = np.array(thresholds)
        ev.params.maxDets = [1000]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.useCats = int(use_cats)
        ev.evaluate()
    out: Pairs = defaultdict(set)
    counts: CountsByImage = defaultdict(lambda: [0, 0, 0])
    for e in ev.evalImgs:
        if e is None:
            continue
        for t in range(len(thresholds)):
            dtm = e["dtMatches"][t]
            gtm = e["gtMatches"][t]
            for dt_id, gt_id in zip(e["dtIds"], dtm, strict=True):
                if gt_id > 0:
                    i, j = dt_of[dt_id]
                    i2, k = gt_of[int(gt_id)]
                    assert i == i2
                    out[i, t].add((j, k))
            i = e["image_id"] - 1
            tp = int((dtm > 0).sum())
            counts[i, t][0] += tp
            counts[i, t][1] += len(dtm) - tp
            counts[i, t][2] += int((gtm == 0).sum())
    return out, counts


def grouped_by_label(im: ImageBoxes, labels: tuple[str, ...]) -> ImageBoxes:
    """The image with boxes stably grouped by label in category order.

    pycocotools with useCats=0 concatenates boxes category by category before
    its stable score sort, so equal scores are ordered by category first.
    """
    key = lambda b: labels.index(b.label)  # noqa: E731
    return ImageBoxes(
        im.image_id, sorted(im.predictions, key=key), sorted(im.ground_truth, key=key)
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("class_agnostic", [False, True], ids=["per_label", "agnostic"])
def test_agreement_with_pycocotools(
    seed: int,
    class_agnostic: bool,
    random_images: Callable[..., list[ImageBoxes]],
    box_labels: tuple[str, ...],
) -> None:
    images = random_images(seed, n_images=80)
    if class_agnostic:
        images = [grouped_by_label(im, box_labels) for im in images]
    n_boxes = sum(len(im.predictions) + len(im.ground_truth) for im in images)
    assert n_boxes >= 2000
    thresholds = (0.5, 0.75, 0.95)
    ref_pairs, ref_counts = coco_matches(
        images, thresholds, use_cats=not class_agnostic, labels=box_labels
    )
    opts = BoxOptions(iou_thresholds=thresholds, class_agnostic=class_agnostic)
    score = BoxAccumulator(opts).update(images)
    n_pairs = 0
    for i, m in enumerate(score.images):
        for t in range(len(thresholds)):
            ours = {
                (int(j), int(k)) for j, k in zip(m.pred_index, m.gt_index[t], strict=True) if k >= 0
            }
            assert ours == ref_pairs.get((i, t), set()), (i, t)
            c = m.counts[t]
            assert [c.tp, c.fp, c.fn] == ref_counts.get((i, t), [0, 0, 0]), (i, t)
            n_pairs += len(ours)
    assert n_pairs > 500  # the comparison is not vacuous
