"""Protobuf <-> domain types: the one module where the servicers' messages are read and built.

Servicers translate with these functions and call pure domain code (metrics/,
analysis/, the store), as text-generation-inference's ``from_pb``/``to_pb`` do:
protobuf types stop at api/. Reading a request also names what the contract
refuses in it (unknown fields, unknown enum values) as field violations; limits
and domain rules are checked by the servicers and the domain.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from evalstream.v1 import common_pb2, runs_pb2, scoring_pb2
from google.protobuf import timestamp_pb2, unknown_fields
from google.protobuf.message import Message

from evalstream_server.analysis.compare import Comparison
from evalstream_server.analysis.verdict import Advice, Verdict
from evalstream_server.api._images import SpecimenView
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
)
from evalstream_server.metrics.text._types import Score, TextBatchScores, TextPair
from evalstream_server.metrics.text.registry import (
    FAMILIES,
    BleuOptions,
    MeteorOptions,
    RougeOptions,
)
from evalstream_server.store import (
    CheckpointRow,
    EvaluationStepRow,
    PointChunk,
    ProjectSummary,
    RunRecord,
    SeriesData,
    SpecimenRecord,
)
from evalstream_server.store.downsample import downsample_minmax

# ------------------------------------------------------------------ enums and defaults

SPLIT_NAMES = {
    common_pb2.SPLIT_TRAIN: "train",
    common_pb2.SPLIT_VALIDATION: "validation",
    common_pb2.SPLIT_TEST: "test",
}
SPLIT_ENUMS = {name: value for value, name in SPLIT_NAMES.items()}
TASK_NAMES = {
    runs_pb2.TASK_UNSPECIFIED: "",
    runs_pb2.TASK_PHRASE_GROUNDING: "phrase_grounding",
    runs_pb2.TASK_VQA: "vqa",
    runs_pb2.TASK_OTHER: "other",
}
TASK_ENUMS = {name: value for value, name in TASK_NAMES.items()}
STATUS_NAMES = {
    runs_pb2.RUN_STATUS_RUNNING: "running",
    runs_pb2.RUN_STATUS_FINISHED: "finished",
    runs_pb2.RUN_STATUS_FAILED: "failed",
    runs_pb2.RUN_STATUS_KILLED: "killed",
}
STATUS_ENUMS = {name: value for value, name in STATUS_NAMES.items()}


def split_names(splits: Sequence[int], violations: list[FieldViolation]) -> list[str]:
    """The names of a request's ``splits`` (enum values); a violation per unknown one."""
    names = []
    for i, split in enumerate(splits):
        if split not in SPLIT_NAMES:
            violations.append(FieldViolation(f"splits[{i}]", f"unknown split {split}"))
        else:
            names.append(SPLIT_NAMES[split])
    return names


#: The series a loss chunk that names none is stored under.
DEFAULT_SERIES = "loss"


# ------------------------------------------------------------------ fields the contract lacks


def unknown_field_violations(message: Message, path: str) -> list[FieldViolation]:
    """Fields a client set that this server's contract does not know.

    Protobuf silently keeps unknown fields; an option this server does not
    understand must not be silently ignored, so scoring requests refuse them.
    """
    found = unknown_fields.UnknownFieldSet(message)
    return [
        FieldViolation(
            field=f"{path}#{field.field_number}" if path else f"#{field.field_number}",
            description=f"unknown field number {field.field_number}: this server "
            "does not support that option (is the client newer than the server?)",
        )
        for field in found
    ]


# ------------------------------------------------------------------ runs


def hyper_to_python(value: runs_pb2.HyperValue) -> bool | int | float | str | None:
    """The value a HyperValue holds; None when none is set."""
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def hyper_to_pb(value: bool | int | float | str) -> runs_pb2.HyperValue:
    """A HyperValue of the matching kind (bool before int: a bool is an int)."""
    if isinstance(value, bool):
        return runs_pb2.HyperValue(bool_value=value)
    if isinstance(value, int):
        return runs_pb2.HyperValue(int_value=value)
    if isinstance(value, float):
        return runs_pb2.HyperValue(float_value=value)
    return runs_pb2.HyperValue(string_value=str(value))


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def verdict_config_from_pb(pb: runs_pb2.VerdictConfig) -> dict[str, bool | int | float | str]:
    """The thresholds a request sets (unset fields keep their defaults)."""
    return {fd.name: value for fd, value in pb.ListFields()}


def run_to_pb(run: RunRecord, derived: Mapping[str, bool | int | float | str] = {}) -> runs_pb2.Run:
    """A stored run, with the values derived from it."""
    return runs_pb2.Run(
        id=run.id,
        project=run.project,
        name=run.name,
        model=run.model,
        task=TASK_ENUMS.get(run.task, runs_pb2.TASK_UNSPECIFIED),
        status=STATUS_ENUMS.get(run.status, runs_pb2.RUN_STATUS_UNSPECIFIED),
        hyperparameters={k: hyper_to_pb(v) for k, v in run.hyperparameters.items()},
        derived={k: hyper_to_pb(v) for k, v in derived.items()},
        created_at=_timestamp(run.created_at),
        updated_at=_timestamp(run.updated_at),
        summary={k: hyper_to_pb(v) for k, v in run.summary.items()},
        alert_webhook_count=len(run.alert_webhooks),  # never the URLs: they hold secrets
    )


def project_to_pb(project: ProjectSummary) -> runs_pb2.Project:
    """A project and its run counts."""
    return runs_pb2.Project(
        name=project.name,
        runs=project.runs,
        running=project.running,
        updated_at=_timestamp(project.updated_at),
    )


def series_to_pb(s: SeriesData, max_points: int) -> runs_pb2.Series:
    """A stored series, min-max downsampled to ``max_points`` when longer (0: all)."""
    steps, values, wall = s.steps, s.values, s.wall_times
    if max_points > 0 and len(steps) > max_points:
        keep = downsample_minmax(steps, values, max_points)
        steps, values = steps[keep], values[keep]
        wall = wall[keep] if wall is not None else None
    return runs_pb2.Series(
        split=SPLIT_ENUMS.get(s.split, common_pb2.SPLIT_UNSPECIFIED),
        name=s.name,
        steps=steps.tolist(),
        values=values.tolist(),
        wall_times=wall.tolist() if wall is not None else [],
        total_points=s.total_points,
    )


def checkpoint_series_to_pb(
    checkpoints: Sequence[CheckpointRow], splits: Sequence[str]
) -> list[runs_pb2.Series]:
    """Checkpoint metrics as one series per (split, metric), sorted; every split when none."""
    metric_series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for row in checkpoints:
        if splits and row.split not in splits:
            continue
        for name, value in row.metrics.items():
            steps, values = metric_series.setdefault((row.split, name), ([], []))
            steps.append(row.step)
            values.append(value)
    return [
        runs_pb2.Series(
            split=SPLIT_ENUMS[split],
            name=name,
            steps=steps,
            values=values,
            total_points=len(steps),
        )
        for (split, name), (steps, values) in sorted(metric_series.items())
    ]


def _box_pb(box: tuple[float, float, float, float, str, float]) -> runs_pb2.SpecimenBox:
    x1, y1, x2, y2, label, confidence = box
    return runs_pb2.SpecimenBox(x1=x1, y1=y1, x2=x2, y2=y2, label=label, confidence=confidence)


def advice_to_pb(advice: Sequence[Advice]) -> list[runs_pb2.Advice]:
    """Advice items, in order."""
    return [runs_pb2.Advice(action=a.action, text=a.text) for a in advice]


def evaluation_step_to_pb(
    row: EvaluationStepRow,
    flag_counts: Mapping[str, int],
    actions: Sequence[tuple[str, int, Sequence[Advice]]],
) -> runs_pb2.EvaluationStep:
    """One evaluated step, with its specimens' flag counts and the action items they call for."""
    return runs_pb2.EvaluationStep(
        split=SPLIT_ENUMS[row.split],
        step=row.step,
        specimens=row.specimens,
        metrics=dict(row.metrics),
        flag_counts=flag_counts,
        actions=[
            runs_pb2.FlagActions(flag=flag, count=n, advice=advice_to_pb(advice))
            for flag, n, advice in actions
        ],
    )


def specimen_to_pb(r: SpecimenRecord) -> runs_pb2.Specimen:
    """A stored specimen: ground truth beside prediction, its scores and flags."""
    return runs_pb2.Specimen(
        specimen_id=r.specimen_id,
        prediction_text=r.prediction_text,
        reference_texts=list(r.reference_texts),
        predicted_boxes=[_box_pb(b) for b in r.predicted_boxes],
        ground_truth_boxes=[_box_pb(b) for b in r.ground_truth_boxes],
        scores=dict(r.scores),
        flags=list(r.flags),
        image_uri=r.image_uri,
        width=r.width,
        height=r.height,
        question=r.question,
    )


# ------------------------------------------------------------------ loss chunks


#: Packed fields up to this length are read (and checked) in Python: numpy costs
#: more than it saves below a few dozen elements.
SMALL_PACKED = 32


def packed_array(field: Any, dtype: type[np.generic]) -> np.ndarray:
    """A packed repeated field as an array: ``np.fromiter`` for a few elements, at a
    third of ``np.asarray``'s cost (which goes through the buffer protocol)."""
    n = len(field)
    return (
        np.fromiter(field, dtype, count=n) if n <= SMALL_PACKED else np.asarray(field, dtype=dtype)
    )


def point_chunk_from_pb(chunk: runs_pb2.LossChunk) -> PointChunk:
    """A loss chunk's points as arrays (after the servicer's checks)."""
    walls = packed_array(chunk.wall_times, np.float64) if len(chunk.wall_times) else None
    return PointChunk(
        run_id=chunk.run_id,
        split=SPLIT_NAMES[chunk.split],
        series=chunk.series or DEFAULT_SERIES,
        steps=packed_array(chunk.steps, np.int64),
        values=packed_array(chunk.values, np.float64),
        wall_times=walls,
    )


# ------------------------------------------------------------------ verdicts and comparisons


RUN_STATES = {
    "insufficient_data": runs_pb2.RUN_STATE_INSUFFICIENT_DATA,
    "healthy": runs_pb2.RUN_STATE_HEALTHY,
    "underfitting": runs_pb2.RUN_STATE_UNDERFITTING,
    "overfitting": runs_pb2.RUN_STATE_OVERFITTING,
    "not_learning": runs_pb2.RUN_STATE_NOT_LEARNING,
    "unstable": runs_pb2.RUN_STATE_UNSTABLE,
    "diverged": runs_pb2.RUN_STATE_DIVERGED,
}
GRADES = {
    "": runs_pb2.CHECKPOINT_GRADE_UNSPECIFIED,
    "healthy": runs_pb2.CHECKPOINT_GRADE_HEALTHY,
    "overfitting": runs_pb2.CHECKPOINT_GRADE_OVERFITTING,
    "severe_overfitting": runs_pb2.CHECKPOINT_GRADE_SEVERE_OVERFITTING,
}


def _set_optional(message: object, **values: object) -> None:
    for name, value in values.items():
        if value is not None:
            setattr(message, name, value)


def verdict_to_pb(run_id: str, v: Verdict) -> runs_pb2.Verdict:
    """A run's verdict; evidence that is unknown stays unset."""
    pb = runs_pb2.Verdict(
        run_id=run_id,
        state=RUN_STATES.get(v.state, runs_pb2.RUN_STATE_UNSPECIFIED),
        severity=v.severity,
        summary=v.summary,
        advice=advice_to_pb(v.advice),
        as_of_step=v.as_of_step,
    )
    e = v.evidence
    _set_optional(
        pb.evidence,
        train_relative_decrease=e.train_relative_decrease,
        train_recent_slope=e.train_recent_slope,
        validation_recent_slope=e.validation_recent_slope,
        gap=e.gap,
        gap_trend=e.gap_trend,
        best_validation_step=e.best_validation_step,
        first_nonfinite_step=e.first_nonfinite_step,
    )
    pb.evidence.spike_steps.extend(e.spike_steps)
    for c in v.checkpoints:
        cv = pb.checkpoints.add(
            step=c.step, metric=c.metric, grade=GRADES.get(c.grade, 0), path=c.path
        )
        _set_optional(cv, train_value=c.train_value, validation_value=c.validation_value, gap=c.gap)
    es = v.early_stopping
    pb.early_stopping.monitor = es.monitor
    pb.early_stopping.mode = es.mode
    pb.early_stopping.evaluations_since_best = es.evaluations_since_best
    pb.early_stopping.steps_since_best = es.steps_since_best
    pb.early_stopping.should_stop = es.should_stop
    pb.early_stopping.best_checkpoint_path = es.best_checkpoint_path
    _set_optional(pb.early_stopping, best_step=es.best_step, best_value=es.best_value)
    lc = v.loss_context
    pb.loss_context.initial_band = lc.initial_band
    pb.loss_context.final_band = lc.final_band
    pb.loss_context.caveat = lc.caveat
    _set_optional(pb.loss_context, initial_loss=lc.initial_loss, final_loss=lc.final_loss)
    return pb


def comparison_to_pb(c: Comparison) -> runs_pb2.CompareRunsResponse:
    """The comparison table and what changed between runs."""
    pb = runs_pb2.CompareRunsResponse(
        differing=list(c.differing),
        pairs=[
            runs_pb2.PairChange(
                run_a=p.run_a, run_b=p.run_b, changed=list(p.changed), warning=p.warning
            )
            for p in c.pairs
        ],
        best=[runs_pb2.BestRun(metric=b.metric, run_id=b.run_id, value=b.value) for b in c.best],
        baseline_run_id=c.baseline_run_id,
        incomparable=list(c.incomparable),
    )
    for r in c.rows:
        row = pb.rows.add(
            run_id=r.run_id,
            run_name=r.run_name,
            model=r.model,
            hyperparameters={k: hyper_to_pb(v) for k, v in r.hyperparameters.items()},
            best_metrics=dict(r.best_metrics),
            deltas=dict(r.deltas),
            state=RUN_STATES.get(r.state, runs_pb2.RUN_STATE_UNSPECIFIED),
        )
        _set_optional(
            row,
            final_train_loss=r.final_train_loss,
            best_train_loss=r.best_train_loss,
            final_validation_loss=r.final_validation_loss,
            best_validation_loss=r.best_validation_loss,
        )
    return pb


# ------------------------------------------------------------------ boxes


DEFAULT_PR_CURVE_POINTS = 101


def box_options_from_pb(pb: scoring_pb2.BoxOptions) -> BoxOptions:
    """The domain options; unset fields take the contract's defaults."""
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


def images_from_pb(images: Sequence[scoring_pb2.ImageBoxes]) -> list[ImageBoxes]:
    """The batch's images, in order (the domain validates them)."""
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


def box_result_to_pb(
    batch_index: int,
    score: BatchScore,
    accumulator: BoxAccumulator,
    options: scoring_pb2.BoxOptions,
) -> scoring_pb2.BoxResult:
    """A ScoreBoxes answer: batch and running counts, per image, and the PR curves."""
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


# ------------------------------------------------------------------ text


METRIC_FAMILIES = {
    scoring_pb2.TEXT_METRIC_BLEU: "bleu",
    scoring_pb2.TEXT_METRIC_ROUGE: "rouge",
    scoring_pb2.TEXT_METRIC_METEOR: "meteor",
    scoring_pb2.TEXT_METRIC_BERTSCORE: "bertscore",
}


def families_from_pb(pb: scoring_pb2.TextOptions) -> tuple[list[str], list[FieldViolation]]:
    """The metric families asked for (all when none), and what is wrong with the list."""
    if not pb.metrics:
        return list(FAMILIES), []
    families, violations = [], []
    for i, metric in enumerate(pb.metrics):
        family = METRIC_FAMILIES.get(metric)
        if family is None:
            violations.append(
                FieldViolation(
                    f"options.metrics[{i}]",
                    f"unknown metric {metric}; valid: {', '.join(METRIC_FAMILIES.values())}",
                )
            )
        elif family in families:
            violations.append(FieldViolation(f"options.metrics[{i}]", f"{family} is listed twice"))
        else:
            families.append(family)
    return families, violations


def text_options_from_pb(pb: scoring_pb2.TextOptions) -> dict[str, object]:
    """The registry's option dataclasses from the proto options."""
    b, r, m = pb.bleu, pb.rouge, pb.meteor
    return {
        "bleu": BleuOptions(
            tokenize=b.tokenize or "13a",
            lowercase=b.lowercase,
            smooth_method=b.smooth_method or "exp",
            smooth_value=b.smooth_value if b.HasField("smooth_value") else None,
        ),
        "rouge": RougeOptions(
            use_stemmer=r.use_stemmer if r.HasField("use_stemmer") else True,
            rouge_lsum=r.rouge_lsum,
        ),
        "meteor": MeteorOptions(
            alpha=m.alpha if m.HasField("alpha") else 0.9,
            beta=m.beta if m.HasField("beta") else 3.0,
            gamma=m.gamma if m.HasField("gamma") else 0.5,
        ),
    }


def score_to_pb(score: Score) -> scoring_pb2.Score:
    """The proto of a score (memoised: per-pair scores repeat; callers copy, never mutate)."""
    # The sign is part of the key: 0.0 == -0.0 would otherwise share an entry.
    negative = score.value is not None and math.copysign(1.0, score.value) < 0
    return _score_pb(score, negative)


@functools.lru_cache(maxsize=1 << 14)
def _score_pb(score: Score, negative: bool) -> scoring_pb2.Score:
    if score.value is None:
        figure = common_pb2.Figure(undefined_reason=score.reason or "undefined")
        note = ""
    else:
        figure = common_pb2.Figure(value=score.value, band=score.band)
        note = score.reason
    return scoring_pb2.Score(name=score.name, figure=figure, signature=score.signature, note=note)


def image_views_from_pb(images: Sequence[scoring_pb2.ImageBoxes]) -> list[SpecimenView]:
    """Each image's URI and size, in order (`check_views` checks them)."""
    blank = SpecimenView()  # shared by the images that send none (most, and cheaply)
    return [
        SpecimenView(i.image_uri, i.width, i.height)
        if i.image_uri or i.width or i.height
        else blank
        for i in images
    ]


def pair_views_from_pb(pairs: Sequence[scoring_pb2.TextPair]) -> list[SpecimenView]:
    """Each pair's image and question, in order (`check_views` checks them)."""
    return [SpecimenView(p.image_uri, p.width, p.height, p.question) for p in pairs]


def pairs_from_pb(batch: scoring_pb2.TextBatch) -> list[TextPair]:
    """The batch's pairs, in order."""
    return [TextPair(p.prediction, tuple(p.references), p.specimen_id) for p in batch.pairs]


def text_result_to_pb(
    batch_index: int,
    pairs: Sequence[TextPair],
    results: Mapping[str, TextBatchScores],
    *,
    running: Sequence[Score],
    pairs_total: int,
    omit_pairs: bool,
) -> scoring_pb2.TextResult:
    """A ScoreText answer: the batch's scores, the stream's running ones, and per pair."""
    result = scoring_pb2.TextResult(
        batch_index=batch_index,
        batch=[score_to_pb(s) for r in results.values() for s in r.batch],
        running=[score_to_pb(s) for s in running],
        pairs_total=pairs_total,
    )
    if not omit_pairs:
        result.pairs.extend(
            scoring_pb2.PairResult(
                index=i,
                specimen_id=pair.specimen_id,
                scores=[score_to_pb(s) for r in results.values() for s in r.pairs[i]],
            )
            for i, pair in enumerate(pairs)
        )
    return result


def text_batch_unknown_fields(batch: scoring_pb2.TextBatch) -> list[FieldViolation]:
    """Unknown fields anywhere in a TextBatch and its options."""
    o = batch.options
    return (
        unknown_field_violations(batch, "")
        + unknown_field_violations(o, "options")
        + unknown_field_violations(o.bleu, "options.bleu")
        + unknown_field_violations(o.rouge, "options.rouge")
        + unknown_field_violations(o.meteor, "options.meteor")
        + unknown_field_violations(o.bertscore, "options.bertscore")
    )
