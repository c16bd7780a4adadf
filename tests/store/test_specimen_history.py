"""One specimen across evaluation steps: `Store.specimen_history` and schema version 5."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from evalstream_server.store import InvalidInput, NewRun, NotFound, SpecimenRecord, SQLiteStore
from evalstream_server.store.sqlite import schema

#: A specimen body as versions 3 and 4 store it.
_EMPTY_BODY = {
    "prediction_text": "",
    "reference_texts": [],
    "predicted_boxes": [],
    "ground_truth_boxes": [],
    "scores": {},
    "flags": [],
}


def test_specimen_history_by_step_other_specimens_and_splits_excluded(
    store: SQLiteStore, run_id: str
) -> None:
    other = store.create_run(NewRun(project="p", name="other")).id
    # Recorded out of step order: the history comes back by step.
    for step, iou in ((300, 0.9), (100, 0.5), (200, 0.7)):
        store.record_specimens(
            run_id,
            "validation",
            step,
            [
                SpecimenRecord(
                    "cat.jpg",
                    predicted_boxes=((0.0, 0.0, 10 * iou, 10.0, "cat", 0.8),),
                    ground_truth_boxes=((0.0, 0.0, 10.0, 10.0, "cat", 0.0),),
                    scores={"iou": iou},
                    flags=("missed_detection",) if iou < 0.6 else (),
                ),
                SpecimenRecord("dog.jpg", scores={"iou": 0.1}),
            ],
        )
    store.record_specimens(run_id, "test", 250, [SpecimenRecord("cat.jpg", scores={"iou": 0.0})])
    store.record_specimens(other, "validation", 150, [SpecimenRecord("cat.jpg")])
    history = store.specimen_history(run_id, "validation", "cat.jpg")
    assert [step for step, _ in history] == [100, 200, 300]
    assert [rec.scores["iou"] for _, rec in history] == [0.5, 0.7, 0.9]
    assert [rec.flags for _, rec in history] == [("missed_detection",), (), ()]
    assert history[0][1].predicted_boxes == ((0.0, 0.0, 5.0, 10.0, "cat", 0.8),)
    assert {rec.specimen_id for _, rec in history} == {"cat.jpg"}
    assert [s for s, _ in store.specimen_history(run_id, "test", "cat.jpg")] == [250]
    assert store.specimen_history(run_id, "validation", "bird.jpg") == []
    assert store.specimen_history(run_id, "train", "cat.jpg") == []


def test_specimen_history_rerecorded_step_reads_latest(store: SQLiteStore, run_id: str) -> None:
    store.record_specimens(run_id, "validation", 5, [SpecimenRecord("a", prediction_text="x")])
    store.record_specimens(run_id, "validation", 5, [SpecimenRecord("a", prediction_text="y")])
    ((step, rec),) = store.specimen_history(run_id, "validation", "a")
    assert (step, rec.prediction_text) == (5, "y")


def test_specimen_history_unknown_run_and_split(store: SQLiteStore, run_id: str) -> None:
    with pytest.raises(NotFound):
        store.specimen_history("r_nope", "validation", "a")
    with pytest.raises(InvalidInput):
        store.specimen_history(run_id, "dev", "a")


def test_specimen_history_uses_its_index(sqlite_store: SQLiteStore, db_path: Path) -> None:
    # SQLite's query plan (EXPLAIN QUERY PLAN); PostgreSQL has the same index
    # (specimens_by_specimen), its planner's choice depends on the table's statistics.
    plan = sqlite3.connect(db_path).execute(
        "EXPLAIN QUERY PLAN SELECT step, body FROM specimens "
        "WHERE run_id = ? AND split = ? AND specimen_id = ? ORDER BY step",
        ("r", "validation", "a"),
    )
    details = " ".join(str(row[-1]) for row in plan)
    assert "specimens_by_specimen" in details and "TEMP B-TREE" not in details


def test_migrates_v4_specimens_to_v5(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    schema.migrate(conn, target=4)
    conn.execute(
        "INSERT INTO runs VALUES ('r_old', 'p', 'old', '', '', 'finished', '{}', '{}', 1.0, 2.0)"
    )
    for seq, step in ((1, 20), (2, 10)):
        conn.execute(
            "INSERT INTO specimens VALUES (?, 'r_old', 'validation', ?, 'a', ?)",
            (seq, step, json.dumps({**_EMPTY_BODY, "prediction_text": f"at {step}"})),
        )
    conn.close()
    with SQLiteStore(db_path) as store:
        history = store.specimen_history("r_old", "validation", "a")
        assert [(s, r.prediction_text) for s, r in history] == [(10, "at 10"), (20, "at 20")]
    conn = sqlite3.connect(db_path)
    assert schema.schema_version(conn) == schema.SCHEMA_VERSION
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "specimens_by_specimen" in indexes
