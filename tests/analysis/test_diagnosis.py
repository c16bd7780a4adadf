"""Specimen diagnosis: one test per flag rule, counts per step, action items."""

from __future__ import annotations

import pytest
from evalstream_server.analysis.diagnosis import (
    ACTION_ITEMS,
    BOX_FLAGS,
    TEXT_FLAGS,
    action_items,
    diagnose_boxes,
    diagnose_text,
    flag_counts,
)
from evalstream_server.store._types import SpecimenRecord

GT = (0.0, 0.0, 10.0, 10.0, "cat", 1.0)


def _sp(sid: str, preds: tuple, gts: tuple = (GT,)) -> SpecimenRecord:  # type: ignore[type-arg]
    return SpecimenRecord(sid, predicted_boxes=preds, ground_truth_boxes=gts)


def test_diagnose_boxes_clean_match_has_no_flag() -> None:
    (d,) = diagnose_boxes([_sp("a", ((0, 0, 10, 10, "cat", 0.9),))])
    assert d.flags == () and d.mean_iou == 1.0


def test_diagnose_boxes_missed_detection() -> None:
    (d,) = diagnose_boxes([_sp("a", ())])
    assert d.flags == ("missed_detection",) and d.missed == 1


def test_diagnose_boxes_false_positive_and_duplicate() -> None:
    preds = ((0, 0, 10, 10, "cat", 0.9), (0, 0, 10, 11, "cat", 0.8), (50, 50, 60, 60, "cat", 0.7))
    (d,) = diagnose_boxes([_sp("a", preds)])
    assert d.flags == ("false_positive",) and d.false_positives == 2


def test_diagnose_boxes_loose_box_is_not_also_a_miss() -> None:
    (d,) = diagnose_boxes([_sp("a", ((0, 0, 10, 25, "cat", 0.9),))])  # IoU 0.4
    assert d.flags == ("loose_box",) and d.loose == 1 and d.missed == 0


def test_diagnose_boxes_wrong_label_is_fp_and_miss() -> None:
    (d,) = diagnose_boxes([_sp("a", ((0, 0, 10, 10, "dog", 0.9),))])
    assert d.flags == ("missed_detection", "false_positive")


def test_diagnose_boxes_inconsistent_localisation_flags_the_outlier() -> None:
    tight = [_sp(f"t{i}", ((0, 0, 10, 10, "cat", 0.9),)) for i in range(6)]
    sloppy = _sp("s", ((0, 0, 10, 40, "cat", 0.9),))  # IoU 0.25
    out = diagnose_boxes([*tight, sloppy])
    assert out[-1].flags == ("loose_box", "inconsistent_localisation")
    assert all(d.flags == () for d in out[:-1])


def test_diagnose_boxes_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="background_iou"):
        diagnose_boxes([], foreground_iou=0.3, background_iou=0.5)


def test_diagnose_text_rules() -> None:
    refs = ("the cat sits on the red mat",)
    out = diagnose_text(
        [
            SpecimenRecord(
                "ok", prediction_text="the cat sits on the red mat", reference_texts=refs
            ),
            SpecimenRecord("short", prediction_text="cat", reference_texts=refs),
            SpecimenRecord(
                "halluc",
                prediction_text="the cat sits on the red mat near a big dog and a "
                "bird flying over two trees",
                reference_texts=refs,
            ),
            SpecimenRecord("noref", prediction_text="x"),
        ]
    )
    flags = {d.specimen_id: d.flags for d in out}
    assert flags["ok"] == ()
    assert flags["short"] == ("incomplete_answer", "format_mismatch")
    assert flags["halluc"] == ("possible_hallucination", "format_mismatch")
    assert flags["noref"] == ()


def test_diagnose_text_uses_given_scores() -> None:
    sp = SpecimenRecord(
        "a",
        prediction_text="the cat",
        reference_texts=("the cat",),
        scores={"rouge1_recall": 0.2, "rouge1_precision": 0.9},
    )
    (d,) = diagnose_text([sp])
    assert d.flags == ("incomplete_answer",) and d.recall == 0.2


def test_flag_counts_and_action_items() -> None:
    step1 = diagnose_boxes([_sp("a", ()), _sp("b", ((50, 50, 60, 60, "cat", 0.5),))])
    counts = flag_counts({1000: step1, 500: [SpecimenRecord("x", flags=("loose_box",))]})
    assert counts == {500: {"loose_box": 1}, 1000: {"false_positive": 1, "missed_detection": 2}}
    items = action_items(counts[1000])
    assert [i[0] for i in items] == ["missed_detection", "false_positive"]
    assert items[0][2][0].action == "add_training_data"


def test_every_flag_has_action_items() -> None:
    assert set(ACTION_ITEMS) == set(BOX_FLAGS) | set(TEXT_FLAGS)
    assert all(ACTION_ITEMS[f] for f in ACTION_ITEMS)
