"""The evalstream.v1.Scoring servicer: ScoreText and ScoreBoxes, each recordable as a checkpoint.

Messages are read and built by :mod:`._convert`; the math is in metrics/.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
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
from evalstream_server.api._convert import (
    SPLIT_NAMES,
    box_options_from_pb,
    box_result_to_pb,
    image_views_from_pb,
    images_from_pb,
    pair_views_from_pb,
    pairs_from_pb,
    text_batch_unknown_fields,
    text_result_to_pb,
    unknown_field_violations,
)
from evalstream_server.api._images import SpecimenView, check_views
from evalstream_server.api._status import name_limit_flags, store_abort
from evalstream_server.api.text import CpuWorkers, TextLimits, TextStream
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.errors import FieldViolation
from evalstream_server.metrics.boxes import (
    FIGURES,
    BatchScore,
    BoxAccumulator,
    ImageBoxes,
    validate_images,
    validate_options,
)
from evalstream_server.metrics.text._types import TextBatchScores, TextPair
from evalstream_server.observability import ServiceMetrics
from evalstream_server.runtime.bertscore import BertScoreRuntime
from evalstream_server.status import abort, invalid
from evalstream_server.store import NotFound, SpecimenRecord, Store, StoreError


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The run, split and step a stream's scores are recorded under."""

    run_id: str
    split: str
    step: int

    def __str__(self) -> str:
        return f"run {self.run_id!r} {self.split} step {self.step}"


#: Fields whose size limits a flag raises (field pattern -> Config field), for the refusals.
_BOX_LIMITS = {
    "images": "max_images_per_batch",
    r"images\[\d+\]\.(predictions|ground_truth)": "max_boxes_per_image",
}


@dataclass(frozen=True, slots=True)
class ScoringLimits:
    """Per-message limits of the scoring streams (configured by flags)."""

    max_images_per_batch: int = 10_000
    max_boxes_per_image: int = 10_000
    #: Whether the server has an image root (--image-root): relative image paths need one.
    image_root_set: bool = False


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
            violations = text_batch_unknown_fields(batch)
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
            views = pair_views_from_pb(batch.pairs)
            violations = check_views("pairs", views, image_root_set=self._limits.image_root_set)
            if violations:
                invalid(context, violations)
            results = stream.score(pairs)
            self._pairs_scored.inc(len(pairs))
            if batch.HasField("checkpoint") and checkpoint is not None:
                self._record_text(checkpoint, batch_index, pairs, views, results, stream, context)
            yield text_result_to_pb(
                batch_index,
                pairs,
                results,
                running=stream.running(),
                pairs_total=stream.pairs_total,
                omit_pairs=omit_pairs,
            )

    def _record_text(
        self,
        checkpoint: Checkpoint,
        batch_index: int,
        pairs: Sequence[TextPair],
        views: Sequence[SpecimenView],
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
                image_uri=view.image_uri,
                width=view.width,
                height=view.height,
                question=view.question,
            )
            for i, (pair, view) in enumerate(zip(pairs, views, strict=True))
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
                options = box_options_from_pb(batch.options)
                violations = validate_options(options)
                if violations:
                    invalid(context, violations)
                accumulator = BoxAccumulator(options)
                first_options = batch.options
            elif batch.HasField("options") and batch.options != first_options:
                invalid(context, [_options_changed(batch_index)])
            if batch.HasField("checkpoint"):
                checkpoint = self._checkpoint(batch.checkpoint, checkpoint, batch_index, context)
            images = images_from_pb(batch.images)
            violations = validate_images(
                images,
                max_images=self._limits.max_images_per_batch,
                max_boxes_per_image=self._limits.max_boxes_per_image,
            )
            if violations:
                invalid(context, name_limit_flags(violations, _BOX_LIMITS))
            views = image_views_from_pb(batch.images)
            violations = check_views("images", views, image_root_set=self._limits.image_root_set)
            if violations:
                invalid(context, violations)
            score = accumulator.update(images, check=False)  # validated above
            self._images_scored.inc(len(images))
            self._boxes_scored.inc(sum(len(i.predictions) + len(i.ground_truth) for i in images))
            if batch.HasField("checkpoint") and checkpoint is not None:
                self._record(checkpoint, batch_index, images, views, score, accumulator, context)
            yield box_result_to_pb(batch_index, score, accumulator, first_options)

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
        views: Sequence[SpecimenView],
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
                image_uri=view.image_uri,
                width=view.width,
                height=view.height,
            )
            for index, (image, view, match) in enumerate(
                zip(images, views, score.images, strict=True)
            )
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


# ------------------------------------------------------------------ helpers


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
