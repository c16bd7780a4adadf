"""Validation of box options and batches: every bad field named, with its value."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np

from evalstream_server.errors import MAX_VIOLATIONS, FieldViolation, InvalidRequest, cap_violations
from evalstream_server.metrics.boxes._flat import FlatBatch
from evalstream_server.metrics.boxes._types import BoxOptions, ImageBoxes

__all__ = ["InvalidBoxes", "batch_violations", "validate_images", "validate_options"]


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


def batch_violations(
    flat: FlatBatch, *, max_images: int | None, max_boxes_per_image: int | None
) -> list[FieldViolation]:
    """What is wrong with a flattened batch (see validate_images)."""
    images = flat.images
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
            (0, flat.pred_off, "predictions"),
            (1, flat.gt_off, "ground_truth"),
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
        (0, flat.pred, flat.pred_off, "predictions"),
        (1, flat.gt, flat.gt_off, "ground_truth"),
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
        >>> from evalstream_server.metrics.boxes import Box, ImageBoxes
        >>> bad = ImageBoxes("a", predictions=[Box(5, 0, 3, 1)], ground_truth=[])
        >>> validate_images([bad], max_images=10, max_boxes_per_image=10)
        [FieldViolation(field='images[0].predictions[0].x2', description='x2 (3.0) < x1 (5.0)')]
    """
    return batch_violations(
        FlatBatch.build(images, labels=False),
        max_images=max_images,
        max_boxes_per_image=max_boxes_per_image,
    )
