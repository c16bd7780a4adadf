"""BoxAccumulator: running counts and totals, PR curves over batches, refusals."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from evalstream_server.metrics.boxes import (
    Box,
    BoxAccumulator,
    BoxOptions,
    Counts,
    ImageBoxes,
    InvalidBoxes,
)

ONE = BoxOptions(iou_thresholds=(0.5,))
THREE = BoxOptions()  # 0.5, 0.75, 0.95


def image(preds: list[Box], gts: list[Box], image_id: str = "img") -> ImageBoxes:
    return ImageBoxes(image_id=image_id, predictions=preds, ground_truth=gts)


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


def test_accumulator_pr_curves_over_batches_equal_one_batch(
    random_images: Callable[..., list[ImageBoxes]],
) -> None:
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
