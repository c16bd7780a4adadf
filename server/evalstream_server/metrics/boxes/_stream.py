"""A box stream's running state: summed counts, and what its PR curves need."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalstream_server.metrics.boxes._flat import FlatBatch
from evalstream_server.metrics.boxes._match import iou_floors, match_batch
from evalstream_server.metrics.boxes._pr import PrCurve, pr_curve
from evalstream_server.metrics.boxes._types import (
    BatchScore,
    BoolArray,
    BoxOptions,
    Counts,
    FloatArray,
    ImageBoxes,
)
from evalstream_server.metrics.boxes._validate import (
    InvalidBoxes,
    batch_violations,
    validate_options,
)

__all__ = ["BoxAccumulator"]


class BoxAccumulator:
    """Running state over a stream: summed counts, plus per-prediction arrays
    for PR curves when ``options.pr_curve``.

    Example:
        >>> from evalstream_server.metrics.boxes import Box, BoxAccumulator, BoxOptions, ImageBoxes
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
        self._floors = iou_floors(options.iou_thresholds)
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
        flat = FlatBatch.build(images, labels=not opts.class_agnostic)
        if check:
            violations = batch_violations(flat, max_images=None, max_boxes_per_image=None)
            if violations:
                raise InvalidBoxes(violations)
        n_thr = len(self._floors)
        tp = [0] * n_thr
        fp = [0] * n_thr
        fn = [0] * n_thr
        iou_sum = [0.0] * n_thr
        matches = match_batch(flat, opts, self._floors)
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
