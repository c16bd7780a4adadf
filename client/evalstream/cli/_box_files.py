"""The two box files of ``score-boxes``, read in one format and joined by image.

``--format jsonl`` reads evalstream's JSON Lines (:mod:`evalstream.cli._inputs`),
``--format coco`` a COCO dataset and a COCO results list (:mod:`evalstream.cli._coco`),
``--format auto`` tells them apart by the files' contents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalstream._types import ImageBoxes
from evalstream.cli._coco import read_dataset, read_results, sniff
from evalstream.cli._inputs import (
    BoxFile,
    BoxRules,
    ImageView,
    InputError,
    pair_images,
    read_boxes,
)

FORMATS = ("auto", "jsonl", "coco")


@dataclass(frozen=True, slots=True)
class BoxInputs:
    """Images to score, the format they were read in and notes for the user."""

    images: list[ImageBoxes]
    format: str
    notes: list[str]


def read_box_files(
    predictions: Path,
    ground_truth: Path,
    *,
    fmt: str = "auto",
    rules: BoxRules | None = None,
    coco_image: str = "url",
) -> BoxInputs:
    """Reads predictions and ground truth; refuses a COCO file beside a JSON Lines one."""
    rules = rules or BoxRules()
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")
    gt_kind, gt_data = ("jsonl", None) if fmt == "jsonl" else sniff(ground_truth)
    pred_kind, pred_data = ("jsonl", None) if fmt == "jsonl" else sniff(predictions)
    if fmt == "auto":
        if (gt_kind == "jsonl") != (pred_kind == "jsonl"):
            coco, other = (
                (predictions, ground_truth) if gt_kind == "jsonl" else (ground_truth, predictions)
            )
            raise InputError(
                f"{coco} is COCO JSON but {other} is JSON Lines; give both files in one "
                "format (COCO: a dataset as --ground-truth and a results list as "
                "--predictions)"
            )
        fmt = "jsonl" if gt_kind == "jsonl" else "coco"
    if fmt == "jsonl":
        pred = read_boxes(predictions, prediction=True, rules=rules)
        gt = read_boxes(ground_truth, prediction=False, rules=rules)
    else:
        if gt_kind == "jsonl":
            raise InputError(
                f"{ground_truth}: not a COCO dataset (one JSON object with images, "
                "annotations and categories)"
            )
        if pred_kind == "jsonl":
            raise InputError(f"{predictions}: not a COCO results list (a JSON array)")
        dataset = read_dataset(ground_truth, gt_data, rules, coco_image=coco_image)
        gt = dataset.boxes
        pred = read_results(predictions, pred_data, rules, dataset)
    images = pair_images(pred.images, gt.images, _views(gt, pred, predictions))
    notes = pred.notes + gt.notes
    if not rules.class_agnostic:
        notes += _label_note(images)
    return BoxInputs(images, fmt, notes)


def _views(gt: BoxFile, pred: BoxFile, predictions: Path) -> dict[str, ImageView]:
    """Each image's view from both files; the ground truth's first, a conflict refused."""
    views = dict(gt.views)
    for key, view in pred.views.items():
        where = f"{predictions}: image {key!r}"
        views[key] = views[key].merge(view, where, "in the ground truth") if key in views else view
    return views


def _label_note(images: list[ImageBoxes]) -> list[str]:
    """A warning when no predicted label is a ground-truth label: F1 is 0 for certain."""
    predicted = {b.label for i in images for b in i.predictions}
    truth = {b.label for i in images for b in i.ground_truth}
    if not predicted or not truth or predicted & truth:
        return []

    def some(labels: set[str]) -> str:
        ordered = sorted(labels)
        return ", ".join(map(repr, ordered[:5])) + (" ..." if len(ordered) > 5 else "")

    return [
        f"warning: no predicted label is a ground-truth label (predictions: {some(predicted)}; "
        f"ground truth: {some(truth)}), so every prediction is a false positive; name the "
        "classes the same way in both files, or pass --class-agnostic"
    ]
