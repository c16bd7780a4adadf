"""protobuf <-> client types, at the client boundary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from evalstream._types import (
    Box,
    BoxResult,
    BoxScores,
    Figure,
    ImageBoxes,
    ImageResult,
    PairResult,
    PrCurve,
    TextResult,
    TextScore,
)
from evalstream.errors import FieldViolation, InvalidArgument
from evalstream.v1 import common_pb2, scoring_pb2


def box_options(
    *,
    iou_thresholds: Sequence[float] | None,
    confidence_threshold: float | None,
    pr_curve: bool,
    pr_curve_max_points: int,
    class_agnostic: bool,
    omit_images: bool,
) -> scoring_pb2.BoxOptions:
    options = scoring_pb2.BoxOptions(
        iou_thresholds=list(iou_thresholds or ()),
        pr_curve=pr_curve,
        pr_curve_max_points=pr_curve_max_points,
        class_agnostic=class_agnostic,
        omit_images=omit_images,
    )
    if confidence_threshold is not None:
        options.confidence_threshold = confidence_threshold
    return options


def _box(box: Box) -> scoring_pb2.Box:
    return scoring_pb2.Box(
        x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2, label=box.label, confidence=box.confidence
    )


def box_batch(
    images: Iterable[ImageBoxes], options: scoring_pb2.BoxOptions | None
) -> scoring_pb2.BoxBatch:
    batch = scoring_pb2.BoxBatch(
        images=[
            scoring_pb2.ImageBoxes(
                image_id=i.image_id,
                predictions=[_box(b) for b in i.predictions],
                ground_truth=[_box(b) for b in i.ground_truth],
                image_uri=i.image_uri,
                width=i.width,
                height=i.height,
            )
            for i in images
        ]
    )
    if options is not None:
        batch.options.CopyFrom(options)
    return batch


def figure(pb: common_pb2.Figure) -> Figure:
    return Figure(pb.value if pb.HasField("value") else None, pb.band, pb.undefined_reason)


def box_scores(pb: scoring_pb2.BoxScores) -> BoxScores:
    return BoxScores(
        iou_threshold=pb.iou_threshold,
        tp=pb.tp,
        fp=pb.fp,
        fn=pb.fn,
        precision=figure(pb.precision),
        recall=figure(pb.recall),
        f1=figure(pb.f1),
        mean_iou=figure(pb.mean_iou),
    )


def pr_curve(pb: scoring_pb2.PrCurve) -> PrCurve:
    return PrCurve(
        iou_threshold=pb.iou_threshold,
        confidence=tuple(pb.confidence),
        precision=tuple(pb.precision),
        recall=tuple(pb.recall),
        f1=tuple(pb.f1),
        best_confidence=pb.best_confidence if pb.HasField("best_confidence") else None,
        best_f1=figure(pb.best_f1),
        best_precision=figure(pb.best_precision),
        best_recall=figure(pb.best_recall),
        average_precision=figure(pb.average_precision),
    )


def box_result(pb: scoring_pb2.BoxResult) -> BoxResult:
    return BoxResult(
        batch_index=pb.batch_index,
        images=tuple(
            ImageResult(i.index, i.image_id, tuple(box_scores(s) for s in i.scores))
            for i in pb.images
        ),
        batch=tuple(box_scores(s) for s in pb.batch),
        running=tuple(box_scores(s) for s in pb.running),
        pr_curves=tuple(pr_curve(c) for c in pb.pr_curves),
        images_total=pb.images_total,
        boxes_total=pb.boxes_total,
    )


TEXT_METRICS = {
    "bleu": scoring_pb2.TEXT_METRIC_BLEU,
    "rouge": scoring_pb2.TEXT_METRIC_ROUGE,
    "meteor": scoring_pb2.TEXT_METRIC_METEOR,
    "bertscore": scoring_pb2.TEXT_METRIC_BERTSCORE,
}


def text_options(
    *,
    metrics: Sequence[str] | None,
    bleu_tokenize: str,
    lowercase: bool,
    smooth_method: str,
    smooth_value: float | None,
    use_stemmer: bool,
    rouge_lsum: bool,
    meteor_alpha: float | None,
    meteor_beta: float | None,
    meteor_gamma: float | None,
    idf: bool,
    rescale_with_baseline: bool,
    omit_pairs: bool,
) -> scoring_pb2.TextOptions:
    unknown = [(i, m) for i, m in enumerate(metrics or ()) if m not in TEXT_METRICS]
    if unknown:
        valid = ", ".join(TEXT_METRICS)
        raise InvalidArgument(
            f"unknown metric{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(m) for _, m in unknown)}; valid: {valid}",
            code="INVALID_ARGUMENT",
            violations=tuple(
                FieldViolation(f"metrics[{i}]", f"unknown metric {m!r}; valid: {valid}")
                for i, m in unknown
            ),
        )
    options = scoring_pb2.TextOptions(
        metrics=[TEXT_METRICS[m] for m in metrics or ()],
        bleu=scoring_pb2.BleuOptions(
            tokenize=bleu_tokenize, lowercase=lowercase, smooth_method=smooth_method
        ),
        rouge=scoring_pb2.RougeOptions(use_stemmer=use_stemmer, rouge_lsum=rouge_lsum),
        bertscore=scoring_pb2.BertScoreOptions(
            idf=idf, rescale_with_baseline=rescale_with_baseline
        ),
        omit_pairs=omit_pairs,
    )
    if smooth_value is not None:
        options.bleu.smooth_value = smooth_value
    for name, value in (("alpha", meteor_alpha), ("beta", meteor_beta), ("gamma", meteor_gamma)):
        if value is not None:
            setattr(options.meteor, name, value)
    return options


def text_batch(
    pairs: Sequence[tuple[Any, ...]], options: scoring_pb2.TextOptions | None
) -> scoring_pb2.TextBatch:
    """A ScoreText message of (prediction, references, specimen id[, question[, image uri]])."""
    batch = scoring_pb2.TextBatch(
        pairs=[
            scoring_pb2.TextPair(
                prediction=pair[0],
                references=list(pair[1]),
                specimen_id=pair[2],
                question=pair[3] if len(pair) > 3 else "",
                image_uri=pair[4] if len(pair) > 4 else "",
            )
            for pair in pairs
        ]
    )
    if options is not None:
        batch.options.CopyFrom(options)
    return batch


def text_score(pb: scoring_pb2.Score) -> TextScore:
    f = pb.figure
    return TextScore(
        name=pb.name,
        value=f.value if f.HasField("value") else None,
        band=f.band,
        signature=pb.signature,
        reason=f.undefined_reason,
        note=pb.note,
    )


def text_result(pb: scoring_pb2.TextResult) -> TextResult:
    return TextResult(
        batch_index=pb.batch_index,
        pairs=tuple(
            PairResult(p.index, p.specimen_id, {s.name: text_score(s) for s in p.scores})
            for p in pb.pairs
        ),
        batch={s.name: text_score(s) for s in pb.batch},
        running={s.name: text_score(s) for s in pb.running},
        pairs_total=pb.pairs_total,
    )
