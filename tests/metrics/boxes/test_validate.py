"""Validation of box options and batches: the fields named, their values, the cap."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from evalstream_server.errors import MAX_VIOLATIONS, FieldViolation
from evalstream_server.metrics.boxes import (
    Box,
    BoxOptions,
    ImageBoxes,
    InvalidBoxes,
    validate_images,
    validate_options,
)

ONE = BoxOptions(iou_thresholds=(0.5,))
THREE = BoxOptions()  # 0.5, 0.75, 0.95


def image(preds: list[Box], gts: list[Box], image_id: str = "img") -> ImageBoxes:
    return ImageBoxes(image_id=image_id, predictions=preds, ground_truth=gts)


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


def test_validate_images_valid_batch_is_empty(
    random_images: Callable[..., list[ImageBoxes]],
) -> None:
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
