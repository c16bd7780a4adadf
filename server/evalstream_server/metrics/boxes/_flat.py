"""A batch of images as flat arrays: built once, then checked and matched per image slice."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from evalstream_server.metrics.boxes._types import FloatArray, ImageBoxes, IntArray

__all__ = ["FlatBatch"]


class FlatBatch:
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
    def build(cls, images: Sequence[ImageBoxes], *, labels: bool) -> FlatBatch:
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
