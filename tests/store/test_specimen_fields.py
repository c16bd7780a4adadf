"""A specimen's image and question in the store: kept, read back, and absent from older bodies."""

from __future__ import annotations

import json

import pytest
from evalstream_server.store import InvalidInput, SpecimenRecord, SQLiteStore
from evalstream_server.store._records import _specimen_from_json, _specimen_to_json

#: A specimen body as written before image_uri, width, height and question existed.
OLD_BODY = (
    '{"prediction_text":"two","reference_texts":["two"],"predicted_boxes":[],'
    '"ground_truth_boxes":[],"scores":{"bleu":1.0},"flags":[]}'
)


def test_image_and_question_are_kept_and_read_back(store: SQLiteStore, run_id: str) -> None:
    rec = SpecimenRecord(
        "q1",
        prediction_text="two",
        image_uri="https://images.example.org/1.jpg",
        width=640,
        height=480,
        question="How many cats?",
    )
    store.record_specimens(run_id, "validation", 5, [rec, SpecimenRecord("plain")])
    (got, plain), _ = store.specimens(run_id, "validation", 5)
    assert (got.image_uri, got.width, got.height, got.question) == (
        "https://images.example.org/1.jpg",
        640,
        480,
        "How many cats?",
    )
    assert (plain.image_uri, plain.width, plain.height, plain.question) == ("", 0, 0, "")


def test_an_older_body_reads_as_no_image_and_no_question() -> None:
    rec = _specimen_from_json("q", OLD_BODY)
    assert (rec.prediction_text, rec.image_uri, rec.width, rec.height, rec.question) == (
        "two",
        "",
        0,
        0,
        "",
    )


def test_unset_fields_are_left_out_of_the_body() -> None:
    body = json.loads(_specimen_to_json(SpecimenRecord("a", width=3, height=2)))
    assert (body["width"], body["height"]) == (3, 2)
    assert "image_uri" not in body and "question" not in body


@pytest.mark.parametrize("field", ["width", "height"])
def test_a_negative_size_is_refused_by_the_store(
    store: SQLiteStore, run_id: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        store.record_specimens(run_id, "validation", 5, [SpecimenRecord("a", **{field: -2})])
    assert info.value.field == f"specimens[0].{field}"
