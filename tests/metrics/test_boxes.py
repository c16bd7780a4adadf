"""Box matching: hand-worked cases, agreement with pycocotools, properties, validation.

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
from typing import Any

import numpy as np
import pytest
from evalstream_server.errors import MAX_VIOLATIONS, FieldViolation
from evalstream_server.metrics.boxes import (
    Box,
    BoxAccumulator,
    BoxOptions,
    Counts,
    ImageBoxes,
    InvalidBoxes,
    iou_matrix,
    match_image,
    pr_curve,
    undefined_reason,
    validate_images,
    validate_options,
)
from hypothesis import given, settings
from hypothesis import strategies as st

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


# ---------------------------------------------------------------- PR curve


def test_pr_curve_hand_worked() -> None:
    c = pr_curve([0.3, 0.8, 0.9, 0.8], [False, True, True, False], 3, iou_threshold=0.5)
    # Sorted: 0.9 T, 0.8 T, 0.8 F, 0.3 F; the two 0.8s enter together.
    # c=0.9: tp 1 of 1 -> P 1, R 1/3, F1 2/(1+3) = 0.5
    # c=0.8: tp 2 of 3 -> P 2/3, R 2/3, F1 4/(3+3) = 2/3
    # c=0.3: tp 2 of 4 -> P 1/2, R 2/3, F1 4/(4+3) = 4/7
    assert c.confidence == (0.9, 0.8, 0.3)
    assert c.precision == (1.0, 2 / 3, 0.5)
    assert c.recall == (1 / 3, 2 / 3, 2 / 3)
    assert c.f1 == (0.5, 4 / 6, 4 / 7)
    assert (c.best_confidence, c.best_f1, c.best_precision, c.best_recall) == (
        0.8,
        4 / 6,
        2 / 3,
        2 / 3,
    )
    # Envelope 1, 2/3, 1/2 over recall steps 1/3, 1/3, 0: AP = 1/3 + 2/9 = 5/9.
    assert c.average_precision == pytest.approx(5 / 9, abs=1e-15)


def test_pr_curve_best_ties_take_highest_confidence() -> None:
    # c=0.9: tp 1 of 1, F1 2/(1+2) = 2/3; c=0.5: tp 2 of 4, F1 4/(4+2) = 2/3.
    c = pr_curve([0.9, 0.5, 0.5, 0.5], [True, True, False, False], 2, iou_threshold=0.5)
    assert c.f1[0] == c.f1[1]
    assert c.best_confidence == 0.9


def test_pr_curve_empty() -> None:
    c = pr_curve([], [], 4, iou_threshold=0.5)
    assert c.confidence == () and c.best_confidence is None and c.best_f1 is None
    assert c.average_precision == 0.0
    assert pr_curve([], [], 0, iou_threshold=0.5).average_precision is None


def test_pr_curve_no_ground_truth() -> None:
    c = pr_curve([0.9, 0.2], [False, False], 0, iou_threshold=0.5)
    assert c.recall == (0.0, 0.0) and c.f1 == (0.0, 0.0) and c.precision == (0.0, 0.0)
    assert c.average_precision is None and c.best_confidence == 0.9


def test_pr_curve_matches_voc_ap_without_ties() -> None:
    rng = np.random.default_rng(3)
    conf = rng.permutation(np.linspace(0.01, 0.99, 300))
    hit = rng.random(300) < 0.6
    n_gt = int(hit.sum()) + 20
    c = pr_curve(conf, hit, n_gt, iou_threshold=0.5, max_points=1000)
    # Reference: VOC2010 all-point AP on per-detection cumulative counts.
    o = np.argsort(-conf)
    tp = np.cumsum(hit[o])
    prec = tp / np.arange(1, 301)
    rec = tp / n_gt
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    ref = float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))
    assert c.average_precision == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("max_points", [2, 3, 5, 101])
def test_pr_curve_decimation_keeps_first_last_and_best(max_points: int) -> None:
    rng = np.random.default_rng(max_points)
    n = 1000
    conf = np.linspace(1.0, 0.001, n)
    hit = rng.random(n) < np.linspace(0.95, 0.05, n)  # best F1 lies inside
    full = pr_curve(conf, hit, int(hit.sum()), iou_threshold=0.5, max_points=n)
    c = pr_curve(conf, hit, int(hit.sum()), iou_threshold=0.5, max_points=max_points)
    assert len(c.confidence) <= max_points
    assert c.best_confidence in c.confidence
    assert c.best_f1 == max(full.f1) and c.average_precision == full.average_precision
    assert list(c.confidence) == sorted(c.confidence, reverse=True)
    if max_points >= 3:
        assert c.confidence[0] == full.confidence[0] and c.confidence[-1] == full.confidence[-1]
        assert len(c.confidence) == max_points


def test_pr_curve_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 confidences but 1 matched"):
        pr_curve([0.1, 0.2], [True], 1, iou_threshold=0.5)
    with pytest.raises(ValueError, match="max_points"):
        pr_curve([0.1], [True], 1, iou_threshold=0.5, max_points=1)
    with pytest.raises(ValueError, match="2 true positives but 1 ground truths"):
        pr_curve([0.1, 0.2], [True, True], 1, iou_threshold=0.5)


# ---------------------------------------------------------------- accumulator


def test_accumulator_running_and_totals() -> None:
    acc = BoxAccumulator(BoxOptions(iou_thresholds=(0.5, 0.75)))
    hit = image([Box(0, 0, 10, 9, confidence=0.8)], [Box(0, 0, 10, 10)])  # IoU 0.9
    miss = image([Box(50, 50, 60, 60, confidence=0.4)], [Box(0, 0, 10, 10)])
    s1 = acc.update([hit])
    s2 = acc.update([miss, hit])
    assert s1.batch[0] == Counts(tp=1, iou_sum=0.9)
    assert s2.batch[0] == Counts(tp=1, fp=1, fn=1, iou_sum=0.9)
    assert acc.running[0] == Counts(tp=2, fp=1, fn=1, iou_sum=1.8)
    assert (acc.images_total, acc.boxes_total) == (3, 6)
    assert [m.image_id for m in s2.images] == ["img", "img"]


def test_accumulator_pr_curves_need_the_option() -> None:
    acc = BoxAccumulator(ONE)
    acc.update([image([Box(0, 0, 1, 1)], [Box(0, 0, 1, 1)])])
    with pytest.raises(ValueError, match="pr_curve"):
        acc.pr_curves()


def test_accumulator_pr_curves_over_batches_equal_one_batch() -> None:
    images = random_images(seed=11, n_images=12)
    opts = BoxOptions(pr_curve=True, pr_curve_max_points=1000)
    one = BoxAccumulator(opts)
    one.update(images)
    many = BoxAccumulator(opts)
    for k in range(0, 12, 5):
        many.update(images[k : k + 5])
        many.pr_curves()  # compaction between batches must not change the result
    assert many.pr_curves() == one.pr_curves()
    assert len(one.pr_curves()) == 3


def test_accumulator_refuses_bad_options_and_boxes() -> None:
    with pytest.raises(InvalidBoxes) as info:
        BoxAccumulator(BoxOptions(iou_thresholds=(0.0,)))
    assert info.value.violations[0].field == "options.iou_thresholds[0]"
    acc = BoxAccumulator(ONE)
    with pytest.raises(InvalidBoxes) as info:
        acc.update([image([Box(0, 0, 1, 1)], []), image([], [Box(0, 0, math.nan, 1)])])
    assert [v.field for v in info.value.violations] == ["images[1].ground_truth[0].x2"]
    assert acc.images_total == 0 and acc.running == (Counts(),)


# ---------------------------------------------------------------- pycocotools

LABELS = ("c1", "c2", "c3", "c4", "c5")


def _grid(a: np.ndarray) -> np.ndarray:
    return np.round(a * 4.0) / 4.0


def xyxy_box(xyxy: np.ndarray, label: str, confidence: float = 1.0) -> Box:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return Box(x1, y1, x2, y2, label=label, confidence=confidence)


def random_images(seed: int, n_images: int) -> list[ImageBoxes]:
    """Random detections on a quarter-pixel grid with ties in score and IoU.

    Per image: 3-5 labels in use; ground truths with some exact duplicates;
    predictions jittered from ground truths (some twice), exact copies, and
    random boxes; scores on a 0.05 grid so many tie.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        labels = rng.choice(len(LABELS), size=int(rng.integers(3, 6)), replace=False)
        n_gt = int(rng.integers(0, 25))
        wh = rng.uniform(2, 60, size=(n_gt, 2))
        xy = rng.uniform(0, 100, size=(n_gt, 2))
        gt = _grid(np.concatenate([xy, xy + wh], axis=1))
        dup = rng.random(n_gt) < 0.1
        gt = np.concatenate([gt, gt[dup]])
        gt_lab = rng.choice(labels, size=len(gt))
        gt_lab[n_gt:] = gt_lab[:n_gt][dup]
        preds: list[tuple[np.ndarray, int]] = []
        for k in range(len(gt)):
            for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
                size = np.tile(gt[k, 2:] - gt[k, :2], 2)
                box = gt[k] + (rng.normal(0, 0.15, 4) * size if rng.random() < 0.85 else 0)
                box = _grid(box)
                box[2:] = np.maximum(box[2:], box[:2])
                lab = gt_lab[k] if rng.random() < 0.85 else rng.choice(labels)
                preds.append((box, int(lab)))
        for _ in range(int(rng.integers(0, 10))):
            xy1 = rng.uniform(0, 100, 2)
            box = _grid(np.concatenate([xy1, xy1 + rng.uniform(0, 60, 2)]))
            preds.append((box, int(rng.choice(labels))))
        order = rng.permutation(len(preds))
        scores = np.round(rng.uniform(0, 1, len(preds)) * 20) / 20
        out.append(
            ImageBoxes(
                image_id=f"img{i}",
                predictions=[
                    xyxy_box(preds[j][0], LABELS[preds[j][1]], float(s))
                    for j, s in zip(order, scores, strict=True)
                ],
                ground_truth=[xyxy_box(gt[k], LABELS[int(gt_lab[k])]) for k in range(len(gt))],
            )
        )
    return out


Pairs = dict[tuple[int, int], set[tuple[int, int]]]
CountsByImage = dict[tuple[int, int], list[int]]


def coco_matches(
    images: list[ImageBoxes], thresholds: tuple[float, ...], *, use_cats: bool
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
                    "category_id": LABELS.index(b.label) + 1,
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
                    "category_id": LABELS.index(b.label) + 1,
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
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(LABELS)],
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


def grouped_by_label(im: ImageBoxes) -> ImageBoxes:
    """The image with boxes stably grouped by label in category order.

    pycocotools with useCats=0 concatenates boxes category by category before
    its stable score sort, so equal scores are ordered by category first.
    """
    key = lambda b: LABELS.index(b.label)  # noqa: E731
    return ImageBoxes(
        im.image_id, sorted(im.predictions, key=key), sorted(im.ground_truth, key=key)
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("class_agnostic", [False, True], ids=["per_label", "agnostic"])
def test_agreement_with_pycocotools(seed: int, class_agnostic: bool) -> None:
    images = random_images(seed, n_images=80)
    if class_agnostic:
        images = [grouped_by_label(im) for im in images]
    n_boxes = sum(len(im.predictions) + len(im.ground_truth) for im in images)
    assert n_boxes >= 2000
    thresholds = (0.5, 0.75, 0.95)
    ref_pairs, ref_counts = coco_matches(images, thresholds, use_cats=not class_agnostic)
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


# ---------------------------------------------------------------- properties

coord = st.integers(min_value=0, max_value=12).map(float)


@st.composite
def boxes(draw: st.DrawFn, *, prediction: bool) -> Box:
    x1, y1 = draw(coord), draw(coord)
    w, h = draw(st.integers(0, 8)), draw(st.integers(0, 8))
    conf = draw(st.sampled_from([0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0])) if prediction else 1.0
    return Box(x1, y1, x1 + w, y1 + h, label=draw(st.sampled_from(["a", "b"])), confidence=conf)


images_st = st.builds(
    image,
    st.lists(boxes(prediction=True), max_size=12),
    st.lists(boxes(prediction=False), max_size=10),
)
options_st = st.builds(
    BoxOptions,
    iou_thresholds=st.sampled_from([(0.5,), (0.5, 0.75, 0.95), (0.1, 1.0), (0.3, 0.6)]),
    class_agnostic=st.booleans(),
    confidence_threshold=st.sampled_from([0.0, 0.3, 0.5, 0.8]),
)
PROPS = settings(max_examples=200, deadline=None)


def _figures_ok(c: Counts) -> None:
    for name in ("precision", "recall", "f1", "mean_iou"):
        v = getattr(c, name)()
        assert v is None or (0.0 <= v <= 1.0 + 1e-12 and not math.isnan(v)), (name, v)


@PROPS
@given(im=images_st, opts=options_st)
def test_property_counts_conserve_boxes(im: ImageBoxes, opts: BoxOptions) -> None:
    m = match_image(im, opts)
    kept = sum(b.confidence >= opts.confidence_threshold for b in im.predictions)
    for c, hit in zip(m.counts, m.matched, strict=True):
        assert c.tp + c.fn == len(im.ground_truth)
        assert c.tp + c.fp == kept == len(hit)
        assert c.tp == int(hit.sum())
        _figures_ok(c)


@PROPS
@given(ims=st.lists(images_st, max_size=6), opts=options_st, split=st.integers(0, 6))
def test_property_counts_are_additive(ims: list[ImageBoxes], opts: BoxOptions, split: int) -> None:
    acc = BoxAccumulator(opts)
    acc.update(ims[:split])
    acc.update(ims[split:])
    for t, running in enumerate(acc.running):
        total = sum((match_image(im, opts).counts[t] for im in ims), Counts())
        assert (running.tp, running.fp, running.fn) == (total.tp, total.fp, total.fn)
        # Float sums in a different order: equal up to rounding.
        assert running.iou_sum == pytest.approx(total.iou_sum, rel=1e-12, abs=1e-12)
        _figures_ok(running)


@PROPS
@given(
    p=st.lists(boxes(prediction=True), max_size=8),
    g=st.lists(boxes(prediction=False), max_size=8),
)
def test_property_iou_matrix_symmetric_in_unit_interval(p: list[Box], g: list[Box]) -> None:
    a = np.array([[b.x1, b.y1, b.x2, b.y2] for b in p]).reshape(-1, 4)
    b = np.array([[b.x1, b.y1, b.x2, b.y2] for b in g]).reshape(-1, 4)
    ab = iou_matrix(a, b)
    assert ab.shape == (len(a), len(b))
    assert np.array_equal(ab, iou_matrix(b, a).T)
    assert np.all((ab >= 0) & (ab <= 1))
    self_iou = np.diag(iou_matrix(a, a))
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    assert np.array_equal(self_iou, np.where(area > 0, 1.0, 0.0))


@PROPS
@given(im=images_st, opts=options_st, c1=st.floats(0, 1), c2=st.floats(0, 1))
def test_property_raising_confidence_never_adds_true_positives(
    im: ImageBoxes, opts: BoxOptions, c1: float, c2: float
) -> None:
    lo, hi = sorted((c1, c2))
    a = match_image(im, BoxOptions(iou_thresholds=opts.iou_thresholds, confidence_threshold=lo))
    b = match_image(im, BoxOptions(iou_thresholds=opts.iou_thresholds, confidence_threshold=hi))
    for ca, cb in zip(a.counts, b.counts, strict=True):
        assert cb.tp <= ca.tp


@PROPS
@given(ims=st.lists(images_st, min_size=1, max_size=4), agnostic=st.booleans())
def test_property_pr_point_equals_rescoring_at_that_cut(
    ims: list[ImageBoxes], agnostic: bool
) -> None:
    thresholds = (0.5, 0.75)
    acc = BoxAccumulator(
        BoxOptions(
            iou_thresholds=thresholds,
            class_agnostic=agnostic,
            pr_curve=True,
            pr_curve_max_points=1000,
        )
    )
    acc.update(ims)
    for t, curve in enumerate(acc.pr_curves()):
        for k, cut in enumerate(curve.confidence):
            again = BoxAccumulator(
                BoxOptions(
                    iou_thresholds=thresholds, class_agnostic=agnostic, confidence_threshold=cut
                )
            )
            again.update(ims)
            c = again.running[t]
            assert curve.precision[k] == c.precision()
            assert curve.recall[k] == (c.recall() or 0.0)
            assert curve.f1[k] == c.f1()
        if curve.best_f1 is not None:
            assert curve.best_f1 == max(curve.f1)


# ---------------------------------------------------------------- validation


def fields(violations: list[FieldViolation]) -> list[str]:
    return [v.field for v in violations]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (BoxOptions(iou_thresholds=(0.5, 0.0)), ["options.iou_thresholds[1]"]),
        (BoxOptions(iou_thresholds=(1.5,)), ["options.iou_thresholds[0]"]),
        (BoxOptions(iou_thresholds=(math.nan,)), ["options.iou_thresholds[0]"]),
        (BoxOptions(iou_thresholds=(0.5, math.inf)), ["options.iou_thresholds[1]"]),
        (BoxOptions(iou_thresholds=(0.5, 0.75, 0.5)), ["options.iou_thresholds[2]"]),
        (BoxOptions(iou_thresholds=()), ["options.iou_thresholds"]),
        (BoxOptions(confidence_threshold=-0.1), ["options.confidence_threshold"]),
        (BoxOptions(confidence_threshold=1.5), ["options.confidence_threshold"]),
        (BoxOptions(confidence_threshold=math.nan), ["options.confidence_threshold"]),
        (BoxOptions(pr_curve_max_points=1), ["options.pr_curve_max_points"]),
        (BoxOptions(iou_thresholds=(1.0,), confidence_threshold=1.0, pr_curve_max_points=2), []),
    ],
)
def test_validate_options_fields(options: BoxOptions, expected: list[str]) -> None:
    assert fields(validate_options(options)) == expected


def test_validate_options_messages_show_values() -> None:
    (v,) = validate_options(BoxOptions(iou_thresholds=(0.5, 0.75, 0.5)))
    assert v.description == "0.5 repeats options.iou_thresholds[0]"


def _check(images: list[ImageBoxes]) -> list[FieldViolation]:
    return validate_images(images, max_images=10, max_boxes_per_image=5)


@pytest.mark.parametrize(
    ("box", "field", "description"),
    [
        (Box(math.nan, 0, 1, 1), "x1", "nan is not finite"),
        (Box(0, math.inf, 1, 1), "y1", "inf is not finite"),
        (Box(0, 0, -math.inf, 1), "x2", "-inf is not finite"),
        (Box(0, 0, 1, math.nan), "y2", "nan is not finite"),
        (Box(5, 0, 3, 1), "x2", "x2 (3.0) < x1 (5.0)"),
        (Box(0, 2, 1, 1.5), "y2", "y2 (1.5) < y1 (2.0)"),
        (Box(0, 0, 1, 1, confidence=1.5), "confidence", "1.5 is outside [0, 1]"),
        (Box(0, 0, 1, 1, confidence=-0.5), "confidence", "-0.5 is outside [0, 1]"),
        (Box(0, 0, 1, 1, confidence=math.nan), "confidence", "nan is outside [0, 1]"),
    ],
)
def test_validate_images_prediction_fields(box: Box, field: str, description: str) -> None:
    good = Box(0, 0, 1, 1)
    images = [image([good], [good]), image([], []), image([good, box], [good])]
    assert _check(images) == [FieldViolation(f"images[2].predictions[1].{field}", description)]


@pytest.mark.parametrize(
    ("box", "field"),
    [
        (Box(math.nan, 0, 1, 1), "x1"),
        (Box(0, 0, 1, math.inf), "y2"),
        (Box(5, 0, 3, 1), "x2"),
        (Box(0, 2, 1, 1), "y2"),
    ],
)
def test_validate_images_ground_truth_fields(box: Box, field: str) -> None:
    good = Box(0, 0, 1, 1)
    assert fields(_check([image([], []), image([good], [good, good, box])])) == [
        f"images[1].ground_truth[2].{field}"
    ]


def test_validate_images_ignores_ground_truth_confidence() -> None:
    assert _check([image([], [Box(0, 0, 1, 1, confidence=7.0)])]) == []


def test_validate_images_too_many_images() -> None:
    assert validate_images([image([], [])] * 11, max_images=10, max_boxes_per_image=5) == [
        FieldViolation("images", "11 images but at most 10 per batch")
    ]


def test_validate_images_too_many_boxes() -> None:
    box = Box(0, 0, 1, 1)
    v = _check([image([], []), image([box] * 6, [box] * 7)])
    assert v == [
        FieldViolation("images[1].predictions", "6 predictions boxes but at most 5 per image"),
        FieldViolation("images[1].ground_truth", "7 ground truth boxes but at most 5 per image"),
    ]


def test_validate_images_orders_and_combines() -> None:
    good, bad = Box(0, 0, 1, 1), Box(2, 2, 1, 1, confidence=2.0)
    v = _check([image([good], [bad]), image([bad], [])])
    assert fields(v) == [
        "images[0].ground_truth[0].x2",
        "images[0].ground_truth[0].y2",
        "images[1].predictions[0].x2",
        "images[1].predictions[0].y2",
        "images[1].predictions[0].confidence",
    ]


def test_validate_images_caps_violations() -> None:
    bad = Box(math.nan, 0, 1, 1)
    v = validate_images([image([bad] * 80, [bad] * 80)], max_images=10, max_boxes_per_image=1000)
    assert len(v) == MAX_VIOLATIONS
    assert v[0].field == "images[0].predictions[0].x1"
    assert v[-1].field == "images[0].ground_truth[19].x1"
    assert v[-1].description.endswith("(and 60 more violations not listed)")


def test_validate_images_valid_batch_is_empty() -> None:
    assert (
        validate_images(random_images(seed=1, n_images=3), max_images=3, max_boxes_per_image=1000)
        == []
    )
    box = Box(0, 0, 0, 0, confidence=0.0)  # zero-size boxes and confidence 0 are fine
    assert _check([image([box], [box])]) == []


def test_invalid_boxes_carries_violations() -> None:
    vs = [FieldViolation(f"f{i}", "bad") for i in range(5)]
    e = InvalidBoxes(vs)
    assert isinstance(e, ValueError) and e.violations == tuple(vs)
    assert str(e) == "f0: bad; f1: bad; f2: bad; and 2 more"
