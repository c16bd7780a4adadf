"""Specimen diagnosis: per-specimen flags and the product's action items per flag.

Boxes follow the error taxonomy of TIDE (Bolya et al. 2020, "TIDE: A General
Toolbox for Identifying Object Detection Errors"; after Hoiem et al. 2012), with
pycocotools-style greedy matching at a foreground IoU ``t_f`` (0.5) and a
background IoU ``t_b`` (0.1): ``loose_box`` (matched only at ``t_b``, to a
ground truth nothing matched at ``t_f``), ``missed_detection``,
``false_positive`` (matched by nothing at ``t_b``, or a duplicate) and
``inconsistent_localisation`` (mean IoU well below the batch's, when the batch
varies). Text answers are flagged from ROUGE-1 recall and precision against the
references: ``incomplete_answer`` (low recall), ``possible_hallucination`` (low
precision, well below recall) and ``format_mismatch`` (length far from the
closest reference's).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np

from evalstream_server.analysis.evidence import Advice
from evalstream_server.metrics.boxes import Box, BoxOptions, ImageBoxes, match_image
from evalstream_server.store._types import SpecimenRecord

__all__ = [
    "ACTION_ITEMS",
    "BOX_FLAGS",
    "TEXT_FLAGS",
    "SpecimenDiagnosis",
    "action_items",
    "diagnose_boxes",
    "diagnose_text",
    "flag_counts",
]

BOX_FLAGS: tuple[str, ...] = (
    "missed_detection",
    "false_positive",
    "loose_box",
    "inconsistent_localisation",
)
TEXT_FLAGS: tuple[str, ...] = ("incomplete_answer", "possible_hallucination", "format_mismatch")

#: The product's action items per flag.
ACTION_ITEMS: Mapping[str, tuple[Advice, ...]] = MappingProxyType(
    {
        "missed_detection": (
            Advice(
                "add_training_data",
                "Add training data for the under-represented classes or phrases that are missed.",
            ),
            Advice(
                "check_confidence_threshold",
                "Check the confidence threshold: missed boxes may be predicted below it.",
            ),
        ),
        "false_positive": (
            Advice(
                "add_negative_examples",
                "Add negative examples (images without the object or phrase).",
            ),
            Advice("raise_confidence_threshold", "Raise the confidence threshold."),
        ),
        "loose_box": (
            Advice(
                "improve_annotation",
                "Annotate boxes more precisely (tight, consistent ground truth).",
            ),
            Advice(
                "box_regression_weight",
                "Increase the weight of the box regression loss (e.g. L1 / GIoU terms).",
            ),
        ),
        "inconsistent_localisation": (
            Advice(
                "review_outliers",
                "Review the specimens whose boxes are much looser than the rest of the batch.",
            ),
            Advice(
                "check_annotation_consistency",
                "Check that annotation conventions are consistent across the data.",
            ),
        ),
        "incomplete_answer": (
            Advice(
                "longer_answers",
                "Train on complete reference answers; check truncation (max new tokens).",
            ),
            Advice(
                "add_training_data",
                "Add training examples for the question types answered incompletely.",
            ),
        ),
        "possible_hallucination": (
            Advice(
                "ground_answers",
                "Ground answers in the image: train on answers supported by the visual content.",
            ),
            Advice(
                "add_negative_examples",
                "Add negative examples (unanswerable questions, absent objects).",
            ),
        ),
        "format_mismatch": (
            Advice(
                "match_answer_format",
                "Match the reference answer format and length (prompt template, stop tokens).",
            ),
        ),
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SpecimenDiagnosis:
    """Flags of one specimen and the numbers behind them.

    Attributes:
        specimen_id: Echo of the specimen id.
        flags: Flags in :data:`BOX_FLAGS` or :data:`TEXT_FLAGS` order.
        mean_iou: Boxes: mean IoU of the boxes matched at the background IoU; None without.
        missed: Boxes: missed ground truths.
        false_positives: Boxes: false-positive predictions.
        loose: Boxes: loose predictions.
        recall: Text: recall used (None for boxes).
        precision: Text: precision used (None for boxes).
        length_ratio: Text: prediction length over the closest reference length.
    """

    specimen_id: str
    flags: tuple[str, ...]
    mean_iou: float | None = None
    missed: int = 0
    false_positives: int = 0
    loose: int = 0
    recall: float | None = None
    precision: float | None = None
    length_ratio: float | None = None


def _box(b: Sequence[object]) -> Box:
    x1, y1, x2, y2, label, conf = b
    return Box(float(x1), float(y1), float(x2), float(y2), str(label), float(conf))  # type: ignore[arg-type]


def diagnose_boxes(
    specimens: Sequence[SpecimenRecord],
    *,
    foreground_iou: float = 0.5,
    background_iou: float = 0.1,
    confidence_threshold: float = 0.0,
    class_agnostic: bool = False,
    inconsistency_std: float = 0.15,
    inconsistency_z: float = 1.0,
    min_batch: int = 5,
) -> list[SpecimenDiagnosis]:
    """Flags each grounding specimen (flags in the module docstring).

    Args:
        specimens: The batch (e.g. one evaluation step), with
            ``predicted_boxes``/``ground_truth_boxes`` as
            ``(x1, y1, x2, y2, label, confidence)``.
        foreground_iou: IoU of a correct detection.
        background_iou: Lowest IoU of a localisation error.
        confidence_threshold: Predictions below it are dropped.
        class_agnostic: Match across labels.
        inconsistency_std: Batch standard deviation of mean IoU above which
            localisation is inconsistent.
        inconsistency_z: How many standard deviations below the batch mean a
            specimen must be to be flagged.
        min_batch: Specimens with matches needed for the inconsistency rule.

    Returns:
        One diagnosis per specimen, in input order.

    Raises:
        ValueError: ``background_iou`` is not below ``foreground_iou``.
        evalstream_server.metrics.boxes.InvalidBoxes: A box is invalid.

    Example:
        >>> gt = ((0, 0, 10, 10, "cat", 1.0), (20, 20, 30, 30, "dog", 1.0))
        >>> pred = ((0, 0, 10, 12, "cat", 0.9), (18, 18, 32, 34, "dog", 0.8),
        ...         (50, 50, 60, 60, "cat", 0.7))
        >>> sp = SpecimenRecord("img1", predicted_boxes=pred, ground_truth_boxes=gt)
        >>> d = diagnose_boxes([sp])
        >>> d[0].flags, d[0].loose, d[0].false_positives
        (('false_positive', 'loose_box'), 1, 1)
    """
    if not 0 < background_iou < foreground_iou <= 1:
        raise ValueError(
            "need 0 < background_iou < foreground_iou <= 1, "
            f"got {background_iou} and {foreground_iou}"
        )
    options = BoxOptions(
        iou_thresholds=(foreground_iou, background_iou),
        confidence_threshold=confidence_threshold,
        class_agnostic=class_agnostic,
    )
    base: list[SpecimenDiagnosis] = []
    for sp in specimens:
        preds = [_box(b) for b in sp.predicted_boxes]
        gts = [_box(b) for b in sp.ground_truth_boxes]
        m = match_image(ImageBoxes(sp.specimen_id, preds, gts), options)
        fg, bg = m.gt_index[0], m.gt_index[1]
        detected = {int(g) for g in fg if g >= 0}
        loose_targets: set[int] = set()
        loose = fp = 0
        ious: list[float] = []
        for k in range(len(m.pred_index)):
            g_bg = int(bg[k])
            if g_bg >= 0:
                p = preds[int(m.pred_index[k])]
                g = gts[g_bg]
                ious.append(_iou(p, g))
            if fg[k] >= 0:
                continue
            if g_bg >= 0 and g_bg not in detected and g_bg not in loose_targets:
                loose += 1
                loose_targets.add(g_bg)
            else:
                fp += 1
        missed = len(gts) - len(detected) - len(loose_targets)
        flags = []
        if missed:
            flags.append("missed_detection")
        if fp:
            flags.append("false_positive")
        if loose:
            flags.append("loose_box")
        base.append(
            SpecimenDiagnosis(
                sp.specimen_id,
                tuple(flags),
                mean_iou=float(np.mean(ious)) if ious else None,
                missed=missed,
                false_positives=fp,
                loose=loose,
            )
        )
    means = np.array([d.mean_iou for d in base if d.mean_iou is not None])
    if len(means) < min_batch:
        return base
    mu, sd = float(means.mean()), float(means.std())
    if sd <= inconsistency_std:
        return base
    out = []
    for d in base:
        if d.mean_iou is not None and d.mean_iou < mu - inconsistency_z * sd:
            marked = tuple(f for f in BOX_FLAGS if f in d.flags or f == "inconsistent_localisation")
            d = replace(d, flags=marked)
        out.append(d)
    return out


def _iou(p: Box, g: Box) -> float:
    iw = max(0.0, min(p.x2, g.x2) - max(p.x1, g.x1))
    ih = max(0.0, min(p.y2, g.y2) - max(p.y1, g.y1))
    inter = iw * ih
    union = (p.x2 - p.x1) * (p.y2 - p.y1) + (g.x2 - g.x1) * (g.y2 - g.y1) - inter
    return inter / union if union > 0 else 0.0


_TOKEN = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _overlap(pred: list[str], ref: list[str]) -> tuple[float, float]:
    """(recall, precision) of unigram overlap (ROUGE-1 without stemming)."""
    common = sum((Counter(pred) & Counter(ref)).values())
    recall = common / len(ref) if ref else 0.0
    precision = common / len(pred) if pred else 0.0
    return recall, precision


def diagnose_text(
    specimens: Sequence[SpecimenRecord],
    *,
    recall_key: str = "rouge1_recall",
    precision_key: str = "rouge1_precision",
    incomplete_recall: float = 0.5,
    hallucination_precision: float = 0.5,
    hallucination_gap: float = 0.2,
    max_length_ratio: float = 2.0,
    min_length_ratio: float = 0.5,
) -> list[SpecimenDiagnosis]:
    """Flags each VQA specimen (flags in the module docstring).

    Args:
        specimens: Specimens with ``prediction_text`` and ``reference_texts``.
        recall_key: Score name read as recall when present.
        precision_key: Score name read as precision when present.
        incomplete_recall: Recall below which the answer is incomplete.
        hallucination_precision: Precision below which hallucination is possible.
        hallucination_gap: How far precision must be below recall.
        max_length_ratio: Length ratio above which the format mismatches.
        min_length_ratio: Length ratio below which the format mismatches.

    Returns:
        One diagnosis per specimen, in input order; a specimen without a
        reference gets no flag.

    Example:
        >>> text = "a red car parked next to a tall blue building"
        >>> sp = SpecimenRecord("q1", prediction_text=text,
        ...                     reference_texts=("a red car",))
        >>> diagnose_text([sp])[0].flags
        ('possible_hallucination', 'format_mismatch')
    """
    out: list[SpecimenDiagnosis] = []
    for sp in specimens:
        refs = [_tokens(r) for r in sp.reference_texts]
        refs = [r for r in refs if r]
        if not refs:
            out.append(SpecimenDiagnosis(sp.specimen_id, ()))
            continue
        pred = _tokens(sp.prediction_text)
        scored = [_overlap(pred, r) for r in refs]
        best = max(range(len(refs)), key=lambda i: (sum(scored[i]), -i))
        recall = float(sp.scores.get(recall_key, scored[best][0]))
        precision = float(sp.scores.get(precision_key, scored[best][1]))
        closest = min(refs, key=lambda r: abs(len(r) - len(pred)))
        ratio = len(pred) / len(closest)
        flags = []
        if recall < incomplete_recall:
            flags.append("incomplete_answer")
        if precision < hallucination_precision and recall - precision >= hallucination_gap:
            flags.append("possible_hallucination")
        if ratio > max_length_ratio or ratio < min_length_ratio:
            flags.append("format_mismatch")
        out.append(
            SpecimenDiagnosis(
                sp.specimen_id,
                tuple(flags),
                recall=recall,
                precision=precision,
                length_ratio=ratio,
            )
        )
    return out


def flag_counts(
    by_step: Mapping[int, Iterable[SpecimenDiagnosis | SpecimenRecord | Sequence[str]]],
) -> dict[int, dict[str, int]]:
    """Counts of each flag per step, steps ascending, flags sorted.

    Args:
        by_step: Per step, the specimens' diagnoses, records (their ``flags``)
            or plain flag lists.

    Example:
        >>> flag_counts({200: [("missed_detection",), ()],
        ...              100: [("missed_detection", "loose_box")]})
        {100: {'loose_box': 1, 'missed_detection': 1}, 200: {'missed_detection': 1}}
    """
    out: dict[int, dict[str, int]] = {}
    for step in sorted(by_step):
        counter: Counter[str] = Counter()
        for item in by_step[step]:
            flags = item.flags if isinstance(item, SpecimenDiagnosis | SpecimenRecord) else item
            counter.update(flags)
        out[step] = dict(sorted(counter.items()))
    return out


def action_items(counts: Mapping[str, int]) -> list[tuple[str, int, tuple[Advice, ...]]]:
    """The action items of the flags seen, most frequent flag first.

    Example:
        >>> items = action_items({"loose_box": 2, "false_positive": 5})
        >>> [(flag, n, advice[0].action) for flag, n, advice in items]
        [('false_positive', 5, 'add_negative_examples'), ('loose_box', 2, 'improve_annotation')]
    """
    seen = [(f, n) for f, n in counts.items() if n > 0 and f in ACTION_ITEMS]
    seen.sort(key=lambda fn: (-fn[1], fn[0]))
    return [(f, n, ACTION_ITEMS[f]) for f, n in seen]
