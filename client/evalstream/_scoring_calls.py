"""The scoring calls of Client and AsyncClient: ScoreBoxes and ScoreText, streamed or whole.

Mixins: each method hands a stream of `evalstream._base` to its client's
`_stream` driver (blocking for `Client`, awaited for `AsyncClient`), as the
other calls of `evalstream._client` do.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

from evalstream import _base
from evalstream._base import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TEXT_BATCH_SIZE,
    BoxFold,
    Pair,
    TextFold,
)
from evalstream._run_types import Checkpoint
from evalstream._types import BoxReport, BoxResult, ImageBoxes, TextReport, TextResult


class ScoringCalls:
    """Client's scoring calls (a mixin of `Client`)."""

    _stream: Callable[..., Any]

    def stream_boxes(
        self,
        batches: Iterable[Sequence[ImageBoxes]],
        *,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Iterator[BoxResult]:
        """Streams batches of images to ScoreBoxes and yields one result per batch.

        Args:
            batches: Each item is one batch (a sequence of ImageBoxes).
            iou_thresholds: Each in (0, 1]; default 0.5, 0.75, 0.95.
            confidence_threshold: Predictions below it are dropped; default 0.
            pr_curve: Add running precision-recall curves per threshold.
            pr_curve_max_points: Most points per curve (0: server default, 101).
            class_agnostic: Match regardless of label.
            omit_images: Aggregates only, no per-image results.
            timeout: Deadline of the whole stream in seconds.
            checkpoint: Record the stream as this checkpoint's evaluation: its
                running figures as checkpoint metrics, every image as a specimen
                (`Run.checkpoint(step)` builds one).
        """
        return self._stream(
            _base.box_stream,
            batches=batches,
            iou_thresholds=iou_thresholds,
            confidence_threshold=confidence_threshold,
            pr_curve=pr_curve,
            pr_curve_max_points=pr_curve_max_points,
            class_agnostic=class_agnostic,
            omit_images=omit_images,
            timeout=timeout,
            checkpoint=checkpoint,
        )

    def stream_text(
        self,
        batches: Iterable[Sequence[Pair]],
        *,
        metrics: Sequence[str] | None = None,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
        **options: Any,
    ) -> Iterator[TextResult]:
        """Streams batches of (prediction, references, specimen id) to ScoreText.

        A pair may carry two more items, (..., question, image uri), stored with
        the specimen when the stream names a checkpoint (see `score_text`).

        Yields one result per batch: per-pair scores, the batch's corpus scores
        and the running corpus scores of the stream. Options as `score_text`.
        """
        return self._stream(_base.text_stream, batches, metrics, timeout, options, checkpoint)

    def score_text(
        self,
        predictions: Sequence[str],
        references: Sequence[str] | Sequence[Sequence[str]],
        *,
        metrics: Sequence[str] | None = None,
        specimen_ids: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        image_uris: Sequence[str] | None = None,
        batch_size: int = DEFAULT_TEXT_BATCH_SIZE,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
        **options: Any,
    ) -> TextReport:
        """Scores answers against references with BLEU, ROUGE, METEOR and BERTScore.

        Args:
            predictions: The model's answers.
            references: One reference per answer, or a sequence of references each.
            metrics: Any of "bleu", "rouge", "meteor", "bertscore"; default all four.
            specimen_ids: Optional ids, echoed per pair.
            questions: Optional questions (prompts) answered, one per pair; stored
                with the specimens (VQA).
            image_uris: Optional images the questions are about, one per pair: an
                http, https, file or s3 URI, or a path relative to the server's
                ``--image-root``; stored with the specimens.
            batch_size: Pairs per message.
            timeout: Deadline of the whole stream in seconds.
            checkpoint: Record the stream as this checkpoint's evaluation: its
                corpus scores as checkpoint metrics, every pair as a specimen
                (`Run.checkpoint(step)` builds one).
            **options: bleu_tokenize ("13a", "intl", "zh", "char", "none"), lowercase,
                smooth_method ("exp", "floor", "add-k", "none"), smooth_value,
                use_stemmer (default True), rouge_lsum, meteor_alpha, meteor_beta,
                meteor_gamma, idf, rescale_with_baseline, omit_pairs.

        Returns:
            Every pair's scores and the corpus scores over all pairs (`overall`).
        """
        batches = _base.text_batches(
            predictions,
            references,
            specimen_ids,
            batch_size,
            questions=questions,
            image_uris=image_uris,
        )
        fold = TextFold()
        stream = self._stream(_base.text_stream, batches, metrics, timeout, options, checkpoint)
        for result in stream:
            fold.add(result)
        return fold.report()

    def score_boxes(
        self,
        images: Iterable[ImageBoxes],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> BoxReport:
        """Scores all `images` in one stream of `batch_size` batches; returns the report.

        Options are those of `stream_boxes`.
        """
        fold = BoxFold()
        for result in self._stream(
            _base.box_stream,
            batches=_base.box_batches(images, batch_size),
            iou_thresholds=iou_thresholds,
            confidence_threshold=confidence_threshold,
            pr_curve=pr_curve,
            pr_curve_max_points=pr_curve_max_points,
            class_agnostic=class_agnostic,
            omit_images=omit_images,
            timeout=timeout,
            checkpoint=checkpoint,
        ):
            fold.add(result)
        return fold.report()


class AsyncScoringCalls:
    """AsyncClient's scoring calls (a mixin of `AsyncClient`)."""

    _stream: Callable[..., Any]

    def stream_boxes(
        self,
        batches: Iterable[Sequence[ImageBoxes]] | AsyncIterable[Sequence[ImageBoxes]],
        *,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> AsyncIterator[BoxResult]:
        """Async twin of `Client.stream_boxes`; `batches` may be sync or async."""
        return self._stream(
            _base.box_stream,
            batches=batches,
            iou_thresholds=iou_thresholds,
            confidence_threshold=confidence_threshold,
            pr_curve=pr_curve,
            pr_curve_max_points=pr_curve_max_points,
            class_agnostic=class_agnostic,
            omit_images=omit_images,
            timeout=timeout,
            checkpoint=checkpoint,
        )

    def stream_text(
        self,
        batches: Iterable[Sequence[Pair]],
        *,
        metrics: Sequence[str] | None = None,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
        **options: Any,
    ) -> AsyncIterator[TextResult]:
        """Async twin of `Client.stream_text`."""
        return self._stream(_base.text_stream, batches, metrics, timeout, options, checkpoint)

    async def score_text(
        self,
        predictions: Sequence[str],
        references: Sequence[str] | Sequence[Sequence[str]],
        *,
        metrics: Sequence[str] | None = None,
        specimen_ids: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        image_uris: Sequence[str] | None = None,
        batch_size: int = DEFAULT_TEXT_BATCH_SIZE,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
        **options: Any,
    ) -> TextReport:
        """Async twin of `Client.score_text`."""
        batches = _base.text_batches(
            predictions,
            references,
            specimen_ids,
            batch_size,
            questions=questions,
            image_uris=image_uris,
        )
        fold = TextFold()
        stream = self._stream(_base.text_stream, batches, metrics, timeout, options, checkpoint)
        async for result in stream:
            fold.add(result)
        return fold.report()

    async def score_boxes(
        self,
        images: Iterable[ImageBoxes],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        iou_thresholds: Sequence[float] | None = None,
        confidence_threshold: float | None = None,
        pr_curve: bool = False,
        pr_curve_max_points: int = 0,
        class_agnostic: bool = False,
        omit_images: bool = False,
        timeout: float | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> BoxReport:
        """Async twin of `Client.score_boxes`."""
        fold = BoxFold()
        async for result in self._stream(
            _base.box_stream,
            batches=_base.box_batches(images, batch_size),
            iou_thresholds=iou_thresholds,
            confidence_threshold=confidence_threshold,
            pr_curve=pr_curve,
            pr_curve_max_points=pr_curve_max_points,
            class_agnostic=class_agnostic,
            omit_images=omit_images,
            timeout=timeout,
            checkpoint=checkpoint,
        ):
            fold.add(result)
        return fold.report()
