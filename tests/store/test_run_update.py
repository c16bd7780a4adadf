"""`Store.update_run` (a run's summary, where its checkpoints were saved) and schema version 6."""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path

import pytest
from evalstream_server.store import InvalidInput, NewRun, NotFound, SQLiteStore
from evalstream_server.store.sqlite import schema


def test_update_run_merges_summary_and_replaces_given_keys(store: SQLiteStore, run_id: str) -> None:
    before = store.get_run(run_id)
    time.sleep(0.01)
    first = store.update_run(run_id, summary={"train_runtime": 12.5, "total_flos": 7, "ok": True})
    assert first.summary == {"train_runtime": 12.5, "total_flos": 7, "ok": True}
    assert first.updated_at > before.updated_at
    second = store.update_run(run_id, summary={"train_runtime": 30.0, "note": "resumed"})
    expected = {"train_runtime": 30.0, "total_flos": 7, "ok": True, "note": "resumed"}
    assert second.summary == expected
    assert store.get_run(run_id).summary == expected
    # Types survive the round trip: a bool stays a bool, an int an int.
    got = store.get_run(run_id).summary
    assert type(got["ok"]) is bool and type(got["total_flos"]) is int
    # Hyperparameters are another map, untouched.
    assert store.get_run(run_id).hyperparameters == before.hyperparameters


def test_update_run_keeps_nan_and_infinities_exactly(store: SQLiteStore, run_id: str) -> None:
    store.update_run(run_id, summary={"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
    got = store.get_run(run_id).summary
    assert math.isnan(got["nan"]) and got["inf"] == math.inf and got["ninf"] == -math.inf
    assert store.list_runs(project="p")[0][0].summary["inf"] == math.inf


def test_update_run_saved_checkpoints_upsert_by_step(store: SQLiteStore, run_id: str) -> None:
    other = store.create_run(NewRun(project="p", name="other")).id
    store.update_run(run_id, saved_checkpoints={500: "out/checkpoint-500", 0: "out/checkpoint-0"})
    store.update_run(run_id, saved_checkpoints=[(500, "s3://b/ckpt-500"), (1000, "out/c-1000")])
    store.update_run(other, saved_checkpoints={500: "elsewhere"})
    assert store.saved_checkpoints(run_id) == {
        0: "out/checkpoint-0",
        500: "s3://b/ckpt-500",
        1000: "out/c-1000",
    }
    assert list(store.saved_checkpoints(run_id)) == [0, 500, 1000]
    assert store.saved_checkpoints(other) == {500: "elsewhere"}
    assert store.get_run(run_id).summary == {}


def test_update_run_finished_run_may_be_updated(store: SQLiteStore, run_id: str) -> None:
    store.set_status(run_id, "finished")
    run = store.update_run(run_id, summary={"train_runtime": 3.0})
    assert (run.status, run.summary) == ("finished", {"train_runtime": 3.0})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"summary": {"": 1}}, "summary"),
        ({"summary": {"k": [1, 2]}}, "summary"),
        ({"summary": {"k": 2**63}}, "summary"),
        ({"saved_checkpoints": [(1, "a"), (-1, "b")]}, "saved_checkpoints[1].step"),
        ({"saved_checkpoints": [(1, "a"), (2, "b"), (3, "")]}, "saved_checkpoints[2].path"),
        ({"saved_checkpoints": [(1, "x" * 4097)]}, "saved_checkpoints[0].path"),
        ({"saved_checkpoints": [(1, "out/\0ckpt")]}, "saved_checkpoints[0].path"),
        ({"saved_checkpoints": [(True, "a")]}, "saved_checkpoints[0].step"),
        ({"saved_checkpoints": [(i, "p") for i in range(1001)]}, "saved_checkpoints"),
    ],
)
def test_update_run_bad_input_names_the_item(
    store: SQLiteStore, run_id: str, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        store.update_run(run_id, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    # Nothing of a refused update is kept.
    assert store.get_run(run_id).summary == {} and store.saved_checkpoints(run_id) == {}


def test_update_run_limits_are_inclusive(store: SQLiteStore, run_id: str) -> None:
    store.update_run(run_id, saved_checkpoints=[(i, "x" * 4096) for i in range(1000)])
    assert len(store.saved_checkpoints(run_id)) == 1000


def test_update_run_unknown_run(store: SQLiteStore) -> None:
    with pytest.raises(NotFound):
        store.update_run("r_nope", summary={"a": 1})
    with pytest.raises(NotFound):
        store.saved_checkpoints("r_nope")


def test_migrates_v5_runs_to_v6(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    schema.migrate(conn, target=5)
    conn.execute(
        "INSERT INTO runs VALUES ('r_old', 'p', 'old', '', '', 'finished', "
        "'{\"lr\": 0.1}', '{}', 1.0, 2.0)"
    )
    conn.close()
    with SQLiteStore(db_path) as store:
        run = store.get_run("r_old")
        assert (run.name, run.hyperparameters, run.summary) == ("old", {"lr": 0.1}, {})
        assert run.alert_webhooks == ()
        assert store.saved_checkpoints("r_old") == {}
        updated = store.update_run("r_old", summary={"a": 1}, saved_checkpoints={3: "c"})
        assert updated.summary == {"a": 1} and store.saved_checkpoints("r_old") == {3: "c"}
    conn = sqlite3.connect(db_path)
    assert schema.schema_version(conn) == 6
