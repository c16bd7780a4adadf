"""Box matching for phrase grounding: COCO's greedy matching as summable counts.

Reference: pycocotools ``COCOeval.evaluateImg`` (cocodataset/cocoapi,
PythonAPI/pycocotools/cocoeval.py) for ``iouType='bbox'``, area range "all", no
crowd boxes, every prediction kept; IoU is maskApi's ``bbIou`` (no +1). Each image
yields :class:`Counts` per IoU threshold; counts add over images, batches and the
stream, and precision, recall, F1 and mean IoU are finished from summed counts
(``None`` with a reason when undefined, never NaN). One matching also gives the
exact precision-recall curve over confidence (:func:`pr_curve`).

Modules: ``_types`` (boxes, options, counts), ``_validate`` (options and batches),
``_match`` (the greedy matching), ``_pr`` (the curve), ``_stream``
(:class:`BoxAccumulator`); this package re-exports their public names.
"""

from __future__ import annotations

from evalstream_server.metrics.boxes._match import iou_matrix, match_image
from evalstream_server.metrics.boxes._pr import PrCurve, pr_curve
from evalstream_server.metrics.boxes._stream import BoxAccumulator
from evalstream_server.metrics.boxes._types import (
    DEFAULT_IOU_THRESHOLDS,
    FIGURES,
    UNDEFINED_REASONS,
    BatchScore,
    Box,
    BoxOptions,
    Counts,
    ImageBoxes,
    ImageMatch,
    undefined_reason,
)
from evalstream_server.metrics.boxes._validate import (
    InvalidBoxes,
    validate_images,
    validate_options,
)

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
