"""The precision-recall curve over confidence: hand-worked cases, VOC AP, decimation."""

from __future__ import annotations

import numpy as np
import pytest
from evalstream_server.metrics.boxes import (
    Box,
    BoxOptions,
    ImageBoxes,
    pr_curve,
)

ONE = BoxOptions(iou_thresholds=(0.5,))
THREE = BoxOptions()  # 0.5, 0.75, 0.95


def image(preds: list[Box], gts: list[Box], image_id: str = "img") -> ImageBoxes:
    return ImageBoxes(image_id=image_id, predictions=preds, ground_truth=gts)


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
