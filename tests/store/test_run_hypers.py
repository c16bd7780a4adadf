"""`Store.update_run(hyperparameters=...)`: hyperparameters added to a run after it is created."""

from __future__ import annotations

import math

import pytest
from evalstream_server.store import Conflict, InvalidInput, NewRun, SQLiteStore


@pytest.fixture
def run_id(store: SQLiteStore) -> str:
    new = NewRun(project="p", name="run", hyperparameters={"lr": 0.1, "bs": 8, "amp": True})
    return store.create_run(new).id


def test_update_run_adds_hyperparameters(store: SQLiteStore, run_id: str) -> None:
    run = store.update_run(run_id, hyperparameters={"dataset_size": 100, "optim": "adamw"})
    expected = {"lr": 0.1, "bs": 8, "amp": True, "dataset_size": 100, "optim": "adamw"}
    assert run.hyperparameters == expected
    got = store.get_run(run_id).hyperparameters
    assert got == expected
    assert type(got["dataset_size"]) is int and type(got["amp"]) is bool
    # A second update adds to the first; the summary is another map, untouched.
    store.update_run(run_id, hyperparameters={"warmup": 0.05})
    assert store.get_run(run_id).hyperparameters == {**expected, "warmup": 0.05}
    assert store.get_run(run_id).summary == {}


def test_update_run_same_hyperparameter_changes_nothing(store: SQLiteStore, run_id: str) -> None:
    # Numbers compare numerically, as ListRuns filters do: 8.0 is the run's 8.
    run = store.update_run(run_id, hyperparameters={"lr": 0.1, "bs": 8.0, "amp": True})
    assert run.hyperparameters == {"lr": 0.1, "bs": 8, "amp": True}
    assert type(run.hyperparameters["bs"]) is int
    # NaN given again is the same NaN, not a change.
    store.update_run(run_id, hyperparameters={"nan": math.nan})
    store.update_run(run_id, hyperparameters={"nan": math.nan})
    assert math.isnan(store.get_run(run_id).hyperparameters["nan"])


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("lr", 0.2, "0.1; refusing 0.2"),
        ("amp", 1, "True; refusing 1"),
        ("bs", "8", "8; refusing '8'"),
    ],
)
def test_update_run_changed_hyperparameter_refused_whole(
    store: SQLiteStore, run_id: str, key: str, value: object, shown: str
) -> None:
    with pytest.raises(Conflict) as info:
        store.update_run(
            run_id,
            summary={"note": "x"},
            saved_checkpoints={5: "out/ckpt-5"},
            hyperparameters={"new_key": 1, key: value},  # type: ignore[dict-item]
        )
    message = str(info.value)
    assert f"hyperparameter {key!r}" in message and shown in message
    assert "create a new run" in message.lower() and "summary" in message
    # Nothing of the refused update is applied, not even the keys before the bad one.
    run = store.get_run(run_id)
    assert run.hyperparameters == {"lr": 0.1, "bs": 8, "amp": True}
    assert run.summary == {} and store.saved_checkpoints(run_id) == {}
    assert store.list_runs(project="p", hyperparameters={"new_key": 1})[0] == []


def test_update_run_added_hyperparameter_found_by_list_runs(
    store: SQLiteStore, run_id: str
) -> None:
    other = store.create_run(NewRun(project="p", name="other", hyperparameters={"lr": 0.1})).id
    store.update_run(run_id, hyperparameters={"dataset_size": 100, "optim": "adamw"})
    store.update_run(other, hyperparameters={"dataset_size": 200})
    ids = lambda runs: [r.id for r in runs]  # noqa: E731
    assert ids(store.list_runs(project="p", hyperparameters={"dataset_size": 100})[0]) == [run_id]
    assert ids(store.list_runs(project="p", hyperparameters={"dataset_size": 200.0})[0]) == [other]
    assert ids(store.list_runs(project="p", hyperparameters={"optim": "adamw", "lr": 0.1})[0]) == [
        run_id
    ]
    # A key given again with its value adds no second row: the run is listed once.
    store.update_run(run_id, hyperparameters={"dataset_size": 100})
    assert ids(store.list_runs(project="p", hyperparameters={"dataset_size": 100})[0]) == [run_id]


@pytest.mark.parametrize(
    "hypers", [{"": 1}, {"k": [1, 2]}, {"k": 2**63}, {"k": None}, ["k"]], ids=repr
)
def test_update_run_bad_hyperparameter_refused_as_at_create(
    store: SQLiteStore, run_id: str, hypers: object
) -> None:
    with pytest.raises(InvalidInput) as at_create:
        store.create_run(NewRun(project="p", name="bad", hyperparameters=hypers))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as info:
        store.update_run(run_id, summary={"a": 1}, hyperparameters=hypers)  # type: ignore[arg-type]
    assert info.value.field == at_create.value.field == "hyperparameters"
    assert str(info.value) == str(at_create.value)
    assert store.get_run(run_id).summary == {}
