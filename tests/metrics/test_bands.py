"""Quality bands: every cutoff tested exactly on and just under the boundary."""

from __future__ import annotations

import math

import pytest
from evalstream_server.metrics import bands
from evalstream_server.metrics.bands import (
    BANDS,
    band,
    bertscore_band,
    bleu_band,
    f1_band,
    iou_band,
    meteor_band,
    precision_recall_band,
    rouge_band,
)

# (function, value, expected): each documented cutoff, on it and 1e-4 below.
CASES = [
    (f1_band, 1.0, "excellent"),
    (f1_band, 0.90, "excellent"),
    (f1_band, 0.8999, "good"),
    (f1_band, 0.75, "good"),
    (f1_band, 0.7499, "acceptable"),
    (f1_band, 0.60, "acceptable"),
    (f1_band, 0.5999, "needs_improvement"),
    (f1_band, 0.0, "needs_improvement"),
    (iou_band, 0.80, "very_tight"),
    (iou_band, 0.7999, "good"),
    (iou_band, 0.60, "good"),
    (iou_band, 0.5999, "acceptable"),
    (iou_band, 0.50, "acceptable"),
    (iou_band, 0.4999, "poor"),
    (precision_recall_band, 0.90, "high"),
    (precision_recall_band, 0.8999, "medium"),
    (precision_recall_band, 0.70, "medium"),
    (precision_recall_band, 0.6999, "low"),
    (bleu_band, 0.50, "high"),
    (bleu_band, 0.4999, "moderate"),
    (bleu_band, 0.30, "moderate"),
    (bleu_band, 0.2999, "low"),
    (bleu_band, 0.10, "low"),
    (bleu_band, 0.0999, "poor"),
    (bertscore_band, 0.90, "excellent"),
    (bertscore_band, 0.8999, "good"),
    (bertscore_band, 0.80, "good"),
    (bertscore_band, 0.7999, "moderate"),
    (bertscore_band, 0.70, "moderate"),
    (bertscore_band, 0.6999, "poor"),
    (meteor_band, 0.60, "excellent"),
    (meteor_band, 0.5999, "good"),
    (meteor_band, 0.40, "good"),
    (meteor_band, 0.3999, "acceptable"),
    (meteor_band, 0.20, "acceptable"),
    (meteor_band, 0.1999, "poor"),
    (rouge_band, 0.50, "high"),
    (rouge_band, 0.4999, "moderate"),
    (rouge_band, 0.30, "moderate"),
    (rouge_band, 0.2999, "low"),
    (rouge_band, 0.15, "low"),
    (rouge_band, 0.1499, "very_poor"),
]


@pytest.mark.parametrize(
    ("fn", "value", "expected"), CASES, ids=lambda x: getattr(x, "__name__", str(x))
)
def test_band_boundaries(fn: object, value: float, expected: str) -> None:
    assert callable(fn)
    assert fn(value) == expected


def test_band_every_cutoff_is_inclusive() -> None:
    for name, table in BANDS.items():
        for cutoff, label in table.cutoffs:
            assert band(name, cutoff) == label, (name, cutoff)
            assert band(name, math.nextafter(cutoff, -1.0)) != label, (name, cutoff)


def test_band_labels_are_snake_case() -> None:
    for table in BANDS.values():
        for label in table.labels:
            assert label == label.lower() and " " not in label and "-" not in label


def test_band_cutoffs_descend() -> None:
    for name, table in BANDS.items():
        cutoffs = [c for c, _ in table.cutoffs]
        assert cutoffs == sorted(cutoffs, reverse=True), name


def test_band_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown band 'nope'") as info:
        band("nope", 0.5)
    for name in BANDS:
        assert name in str(info.value)


def test_band_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        f1_band(math.nan)


def test_band_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        bands.BANDS["x"] = bands.BANDS["f1"]  # type: ignore[index]


def test_band_precision_and_recall_share_a_table() -> None:
    assert BANDS["precision"] is BANDS["recall"]
