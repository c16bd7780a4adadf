"""The evalstream.v1.Scoring servicer: ScoreBoxes now, ScoreText with the text metrics."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import grpc
from evalstream.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc

from evalstream_server.analysis.diagnosis import (
    SpecimenDiagnosis,
    diagnose_boxes,
    diagnose_text,
)
from evalstream_server.api._status import store_abort, unknown_field_violations
from evalstream_server.api.runs import SPLIT_NAMES
from evalstream_server.api.text import (
    CpuWorkers,
    TextLimits,
    TextStream,
    check_unknown,
    pairs_from_pb,
    result_to_pb,
)
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.errors import FieldViolation
from evalstream_server.metrics import bands
from evalstream_server.metrics.boxes import (
    DEFAULT_IOU_THRESHOLDS,
    BatchScore,
    Box,
    BoxAccumulator,
    BoxOptions,
    Counts,
    ImageBoxes,
    PrCurve,
    undefined_reason,
    validate_images,
    validate_options,
)
from evalstream_server.metrics.text._types import TextBatchScores, TextPair
from evalstream_server.observability import ServiceMetrics
from evalstream_server.runtime.bertscore import BertScoreRuntime
from evalstream_server.status import abort, invalid
from evalstream_server.store import NotFound, SpecimenRecord, Store, StoreError

FIGURES = ("precision", "recall", "f1", "mean_iou")

DEFAULT_PR_CURVE_POINTS = 101


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The run, split and step a stream's scores are recorded under."""

    run_id: str
    split: str
    step: int

    def __str__(self) -> str:
        return f"run {self.run_id!r} {self.split} step {self.step}"


@dataclass(frozen=True, slots=True)
class ScoringLimits:
    """Per-message limits of the scoring streams (configured by flags)."""

    max_images_per_batch: int = 10_000
    max_boxes_per_image: int = 10_000


class ScoringServicer(scoring_pb2_grpc.ScoringServicer):
    """Streams scores back batch by batch; options are fixed by a stream's first batch."""

    def __init__(
        self,
        *,
        limits: ScoringLimits,
        metrics: ServiceMetrics,
        store: Store,
        bertscore: BertScoreRuntime,
        text_limits: TextLimits,
        pool: concurrent.futures.Executor,
        verdicts: VerdictHub,
        text_ready: threading.Event,
        workers: CpuWorkers | None = None,
    ) -> None:
        self._verdicts = verdicts
        self._text_ready = text_ready
        self._workers = workers
        self._limits = limits
        self._store = store
        self._bertscore = bertscore
        self._text_limits = text_limits
        self._pool = pool
        self._pairs_scored = metrics.items_scored.labels("text_pairs")
        self._boxes_scored = metrics.items_scored.labels("boxes")
        self._images_scored = metrics.items_scored.labels("box_images")

    def ScoreText(  # noqa: N802 (gRPC method name)
        self, request_iterator: Iterator[scoring_pb2.TextBatch], context: grpc.ServicerContext
    ) -> Iterator[scoring_pb2.TextResult]:
        stream: TextStream | None = None
        checkpoint: Checkpoint | None = None
        omit_pairs = False
        for batch_index, batch in enumerate(request_iterator):
            violations = check_unknown(batch)
            if violations:
                invalid(context, violations)
            if stream is None:
                stream = TextStream(
                    limits=self._text_limits,
                    bertscore=self._bertscore,
                    pool=self._pool,
                    context=context,
                    workers=self._workers,
                )
                if not self._text_ready.wait(self._text_limits.warm_up_timeout_seconds):
                    abort(
                        context,
                        grpc.StatusCode.UNAVAILABLE,
                        "the text metrics are still loading (NLTK, WordNet); retry shortly",
                    )
                stream.start(batch.options)
                omit_pairs = batch.options.omit_pairs
            elif batch.HasField("options") and not stream.same_options(batch.options):
                invalid(context, [_options_changed(batch_index)])
            if batch.HasField("checkpoint"):
                checkpoint = self._checkpoint(batch.checkpoint, checkpoint, batch_index, context)
            pairs = pairs_from_pb(batch)
            results = stream.score(pairs)
            self._pairs_scored.inc(len(pairs))
            if batch.HasField("checkpoint") and checkpoint is not None:
                self._record_text(checkpoint, batch_index, pairs, results, stream, context)
            yield result_to_pb(batch_index, pairs, results, stream, omit_pairs)

    def _record_text(
        self,
        checkpoint: Checkpoint,
        batch_index: int,
        pairs: Sequence[TextPair],
        results: dict[str, TextBatchScores],
        stream: TextStream,
        context: grpc.ServicerContext,
    ) -> None:
        """Records the stream's running text scores as the checkpoint's metrics, and each pair."""
        running = [s for s in stream.running() if s.value is not None]
        specimens = [
            SpecimenRecord(
                specimen_id=pair.specimen_id or f"batch{batch_index}-pair{i}",
                prediction_text=pair.prediction,
                reference_texts=pair.references,
                scores={
                    s.name: s.value
                    for r in results.values()
                    for s in r.pairs[i]
                    if s.value is not None
                },
            )
            for i, pair in enumerate(pairs)
        ]
        specimens = with_flags(specimens, diagnose_text(specimens))
        try:
            if running:
                self._store.log_checkpoint(
                    checkpoint.run_id,
                    checkpoint.split,
                    checkpoint.step,
                    {s.name: s.value for s in running if s.value is not None},
                    signatures={s.name: s.signature for s in running},
                )
            self._store.record_specimens(
                checkpoint.run_id, checkpoint.split, checkpoint.step, specimens
            )
        except StoreError as exc:
            store_abort(context, exc)
        self._verdicts.checkpoints_changed(checkpoint.run_id)

    def ScoreBoxes(  # noqa: N802 (gRPC method name)
        self, request_iterator: Iterator[scoring_pb2.BoxBatch], context: grpc.ServicerContext
    ) -> Iterator[scoring_pb2.BoxResult]:
        accumulator: BoxAccumulator | None = None
        first_options = scoring_pb2.BoxOptions()  # set by the first batch
        checkpoint: Checkpoint | None = None
        for batch_index, batch in enumerate(request_iterator):
            violations = unknown_field_violations(batch, "") + unknown_field_violations(
                batch.options, "options"
            )
            if violations:
                invalid(context, violations)
            if accumulator is None:
                options = _options_from_pb(batch.options)
                violations = validate_options(options)
                if violations:
                    invalid(context, violations)
                accumulator = BoxAccumulator(options)
                first_options = batch.options
            elif batch.HasField("options") and batch.options != first_options:
                invalid(context, [_options_changed(batch_index)])
            if batch.HasField("checkpoint"):
                checkpoint = self._checkpoint(batch.checkpoint, checkpoint, batch_index, context)
            images = _images_from_pb(batch.images)
            violations = validate_images(
                images,
                max_images=self._limits.max_images_per_batch,
                max_boxes_per_image=self._limits.max_boxes_per_image,
            )
            if violations:
                invalid(context, violations)
            score = accumulator.update(images, check=False)  # validated above
            self._images_scored.inc(len(images))
            self._boxes_scored.inc(sum(len(i.predictions) + len(i.ground_truth) for i in images))
            if batch.HasField("checkpoint") and checkpoint is not None:
                self._record(checkpoint, batch_index, images, score, accumulator, context)
            yield _result_to_pb(batch_index, score, accumulator, first_options)

    def _checkpoint(
        self,
        pb: common_pb2.CheckpointRef,
        current: Checkpoint | None,
        batch_index: int,
        context: grpc.ServicerContext,
    ) -> Checkpoint:
        """The checkpoint a batch names: a known run, a split, a step; one per stream."""
        violations = []
        if pb.split not in SPLIT_NAMES:
            violations.append(
                FieldViolation("checkpoint.split", "must be train, validation or test")
            )
        if pb.step < 0:
            violations.append(FieldViolation("checkpoint.step", f"step {pb.step} is negative"))
        if violations:
            invalid(context, violations)
        named = Checkpoint(pb.run_id, SPLIT_NAMES[pb.split], pb.step)
        if current is not None:
            if named != current:
                invalid(
                    context,
                    [
                        FieldViolation(
                            "checkpoint",
                            f"batch {batch_index} names {named}, but the stream evaluates "
                            f"{current}: one stream scores one checkpoint",
                        )
                    ],
                )
            return current
        try:
            self._store.get_run(pb.run_id)
        except NotFound:
            abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"checkpoint.run_id: run {pb.run_id!r} not found",
                [FieldViolation("checkpoint.run_id", f"run {pb.run_id!r} not found")],
            )
        return named

    def _record(
        self,
        checkpoint: Checkpoint,
        batch_index: int,
        images: Sequence[ImageBoxes],
        score: BatchScore,
        accumulator: BoxAccumulator,
        context: grpc.ServicerContext,
    ) -> None:
        """Records the stream's running figures as the checkpoint's metrics, and each image."""
        thresholds = accumulator.options.iou_thresholds
        metrics = {
            f"bbox_{name}@{t:g}": value
            for t, counts in zip(thresholds, accumulator.running, strict=True)
            for name in FIGURES
            if (value := getattr(counts, name)()) is not None
        }
        specimens = [
            SpecimenRecord(
                specimen_id=image.image_id or f"batch{batch_index}-image{index}",
                predicted_boxes=tuple(
                    (b.x1, b.y1, b.x2, b.y2, b.label, b.confidence) for b in image.predictions
                ),
                ground_truth_boxes=tuple(
                    (b.x1, b.y1, b.x2, b.y2, b.label, b.confidence) for b in image.ground_truth
                ),
                scores={
                    f"{name}@{t:g}": value
                    for t, counts in zip(thresholds, match.counts, strict=True)
                    for name in FIGURES
                    if (value := getattr(counts, name)()) is not None
                },
            )
            for index, (image, match) in enumerate(zip(images, score.images, strict=True))
        ]
        agnostic = accumulator.options.class_agnostic
        specimens = with_flags(specimens, diagnose_boxes(specimens, class_agnostic=agnostic))
        try:
            if metrics:
                self._store.log_checkpoint(
                    checkpoint.run_id, checkpoint.split, checkpoint.step, metrics
                )
            self._store.record_specimens(
                checkpoint.run_id, checkpoint.split, checkpoint.step, specimens
            )
        except StoreError as exc:
            store_abort(context, exc)
        self._verdicts.checkpoints_changed(checkpoint.run_id)


# ------------------------------------------------------------------ translation


def with_flags(
    specimens: list[SpecimenRecord], diagnoses: Sequence[SpecimenDiagnosis]
) -> list[SpecimenRecord]:
    """The specimens with their diagnosis flags (advanced evaluation)."""
    return [
        dataclasses.replace(s, flags=d.flags) for s, d in zip(specimens, diagnoses, strict=True)
    ]


def _options_changed(batch_index: int) -> FieldViolation:
    return FieldViolation(
        "options",
        f"batch {batch_index} changes the options set by the stream's "
        "first batch; start a new stream to score with other options",
    )


def _options_from_pb(pb: scoring_pb2.BoxOptions) -> BoxOptions:
    return BoxOptions(
        iou_thresholds=tuple(pb.iou_thresholds) or DEFAULT_IOU_THRESHOLDS,
        confidence_threshold=pb.confidence_threshold
        if pb.HasField("confidence_threshold")
        else 0.0,
        class_agnostic=pb.class_agnostic,
        pr_curve=pb.pr_curve,
        pr_curve_max_points=pb.pr_curve_max_points or DEFAULT_PR_CURVE_POINTS,
    )


def _boxes_from_pb(boxes: Sequence[scoring_pb2.Box]) -> list[Box]:
    return [Box(b.x1, b.y1, b.x2, b.y2, b.label, b.confidence) for b in boxes]


def _images_from_pb(images: Sequence[scoring_pb2.ImageBoxes]) -> list[ImageBoxes]:
    return [
        ImageBoxes(i.image_id, _boxes_from_pb(i.predictions), _boxes_from_pb(i.ground_truth))
        for i in images
    ]


def _figure(value: float | None, band: str, reason: str) -> common_pb2.Figure:
    if value is None or not math.isfinite(value):
        return common_pb2.Figure(undefined_reason=reason or "undefined")
    return common_pb2.Figure(value=value, band=band)


def _count_figure(c: Counts, name: str) -> common_pb2.Figure:
    value: float | None = getattr(c, name)()
    if value is None:
        return common_pb2.Figure(undefined_reason=undefined_reason(c, name))
    return _figure(value, bands.band(name, value), "")


def _scores_to_pb(threshold: float, c: Counts) -> scoring_pb2.BoxScores:
    return scoring_pb2.BoxScores(
        iou_threshold=threshold,
        tp=c.tp,
        fp=c.fp,
        fn=c.fn,
        precision=_count_figure(c, "precision"),
        recall=_count_figure(c, "recall"),
        f1=_count_figure(c, "f1"),
        mean_iou=_count_figure(c, "mean_iou"),
    )


def _curve_to_pb(curve: PrCurve) -> scoring_pb2.PrCurve:
    def fig(value: float | None, band_of: str, reason: str) -> common_pb2.Figure:
        return _figure(value, bands.band(band_of, value) if value is not None else "", reason)

    pb = scoring_pb2.PrCurve(
        iou_threshold=curve.iou_threshold,
        confidence=curve.confidence,
        precision=curve.precision,
        recall=curve.recall,
        f1=curve.f1,
        best_f1=fig(curve.best_f1, "f1", "no predictions"),
        best_precision=fig(curve.best_precision, "precision", "no predictions"),
        best_recall=fig(curve.best_recall, "recall", "no predictions or no ground truth"),
        average_precision=fig(curve.average_precision, "precision", "no ground truth"),
    )
    if curve.best_confidence is not None:
        pb.best_confidence = curve.best_confidence
    return pb


def _result_to_pb(
    batch_index: int,
    score: BatchScore,
    accumulator: BoxAccumulator,
    options: scoring_pb2.BoxOptions,
) -> scoring_pb2.BoxResult:
    thresholds = accumulator.options.iou_thresholds
    result = scoring_pb2.BoxResult(
        batch_index=batch_index,
        batch=[_scores_to_pb(t, c) for t, c in zip(thresholds, score.batch, strict=True)],
        running=[_scores_to_pb(t, c) for t, c in zip(thresholds, accumulator.running, strict=True)],
        images_total=accumulator.images_total,
        boxes_total=accumulator.boxes_total,
    )
    if not options.omit_images:
        result.images.extend(
            scoring_pb2.ImageResult(
                index=index,
                image_id=image.image_id,
                scores=[_scores_to_pb(t, c) for t, c in zip(thresholds, image.counts, strict=True)],
            )
            for index, image in enumerate(score.images)
        )
    if options.pr_curve:
        result.pr_curves.extend(_curve_to_pb(c) for c in accumulator.pr_curves())
    return result
