"""grade_checkpoints: the product's table, modes, missing sides, cutoffs."""

from __future__ import annotations

import pytest
from evalstream_server.analysis.checkpoints import grade_checkpoints, metric_mode
from evalstream_server.store._types import CheckpointRow

PRODUCT_TABLE = [
    (500, 0.75, 0.72, "healthy"),
    (1000, 0.85, 0.80, "healthy"),
    (1500, 0.92, 0.78, "overfitting"),
    (2000, 0.97, 0.74, "severe_overfitting"),
]


def _rows(table: list[tuple[int, float, float, str]], metric: str = "f1") -> list[CheckpointRow]:
    rows = [CheckpointRow("train", s, {metric: t}, {}) for s, t, _, _ in table]
    return rows + [CheckpointRow("validation", s, {metric: v}, {}) for s, _, v, _ in table]


def test_grade_checkpoints_reproduces_product_table() -> None:
    graded = grade_checkpoints(
        _rows(PRODUCT_TABLE), metric="f1", mode="max", overfit_gap=0.10, severe_overfit_gap=0.20
    )
    assert [(g.step, g.grade) for g in graded] == [(s, grade) for s, _, _, grade in PRODUCT_TABLE]
    assert [round(g.gap or 0, 2) for g in graded] == [0.03, 0.05, 0.14, 0.23]


def test_grade_checkpoints_default_mode_from_name() -> None:
    graded = grade_checkpoints(_rows(PRODUCT_TABLE, "bbox_f1@0.5"), metric=None)
    assert [g.grade for g in graded] == [grade for *_, grade in PRODUCT_TABLE]


def test_grade_checkpoints_min_mode_for_loss() -> None:
    rows = [
        CheckpointRow("train", 10, {"loss": 0.2}, {}),
        CheckpointRow("validation", 10, {"loss": 0.45}, {}),
    ]
    (g,) = grade_checkpoints(rows)
    assert g.gap == pytest.approx(0.25) and g.grade == "severe_overfitting"


def test_grade_checkpoints_cutoff_is_inclusive_for_decimal_inputs() -> None:
    rows = [
        CheckpointRow("train", 1, {"f1": 0.90}, {}),
        CheckpointRow("validation", 1, {"f1": 0.80}, {}),
    ]
    assert grade_checkpoints(rows)[0].grade == "overfitting"


def test_grade_checkpoints_missing_side_is_unspecified() -> None:
    rows = [CheckpointRow("validation", 5, {"f1": 0.8}, {})]
    (g,) = grade_checkpoints(rows)
    assert g.train_value is None and g.gap is None and g.grade == ""


def test_grade_checkpoints_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        grade_checkpoints([], mode="up")
    with pytest.raises(ValueError, match="overfit_gap"):
        grade_checkpoints([], overfit_gap=0.3, severe_overfit_gap=0.2)


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("loss", "min"),
        ("val_loss", "min"),
        ("wer", "min"),
        ("cer@x", "min"),
        ("f1", "max"),
        ("rouge1", "max"),
        ("error_rate", "min"),
    ],
)
def test_metric_mode_defaults(name: str, mode: str) -> None:
    assert metric_mode(name) == mode
