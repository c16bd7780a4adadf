"""SQLiteStore: runs, idempotent point writes, concurrency, reopening, migrations, evaluations."""

from __future__ import annotations

import itertools
import math
import sqlite3
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from evalstream_server.store import (
    SCHEMA_VERSION,
    AlreadyExists,
    InvalidInput,
    NewRun,
    NotFound,
    PointChunk,
    SpecimenRecord,
    SQLiteStore,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    WriteResult,
    schema,
)
from evalstream_server.store import _front as front_module
from evalstream_server.store._compaction import _MAX_TAIL, _SMALL_CHUNK
from evalstream_server.store.sqlite import _writes as writes_module
from evalstream_server.store.sqlite._writes import Writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def chunk(
    run_id: str,
    steps: list[int],
    values: list[float],
    *,
    series: str = "loss",
    split: str = "train",
    walls: list[float] | None = None,
) -> PointChunk:
    return PointChunk(
        run_id,
        split,
        series,
        np.array(steps, dtype=np.int64),
        np.array(values, dtype=np.float64),
        None if walls is None else np.array(walls, dtype=np.float64),
    )


def bits(a: np.ndarray) -> list[int]:
    return np.asarray(a, dtype=np.float64).view(np.int64).tolist()


def series_dict(
    store: SQLiteStore, run_id: str, name: str = "loss", split: str = "train"
) -> dict[int, float]:
    found = [s for s in store.read_series(run_id) if s.name == name and s.split == split]
    if not found:
        return {}
    (s,) = found
    assert s.total_points == len(s.steps)
    assert np.all(np.diff(s.steps) > 0)
    return dict(zip(s.steps.tolist(), s.values.tolist(), strict=True))


# ------------------------------------------------------------------------------ runs


def test_create_get_find(store: SQLiteStore) -> None:
    new = NewRun(
        project="p",
        name="a",
        model="m",
        task="vqa",
        hyperparameters={"lr": 1e-4, "bs": 32, "opt": "adamw", "amp": True},
        verdict_config={"patience": 3},
    )
    run = store.create_run(new)
    assert run.id.startswith("r_") and len(run.id) == 18
    assert run.status == "running"
    assert run.created_at == run.updated_at > 0
    assert store.get_run(run.id) == run
    assert store.find_run("p", "a") == run
    got = store.get_run(run.id).hyperparameters
    assert got == {"lr": 1e-4, "bs": 32, "opt": "adamw", "amp": True}
    assert type(got["bs"]) is int and type(got["amp"]) is bool


def test_create_run_duplicate_name_already_exists(store: SQLiteStore) -> None:
    store.create_run(NewRun(project="p", name="a"))
    with pytest.raises(AlreadyExists, match="run named 'a' already exists in project 'p'"):
        store.create_run(NewRun(project="p", name="a"))
    assert store.create_run(NewRun(project="q", name="a")).project == "q"


def test_get_run_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound, match="run 'r_nope' not found"):
        store.get_run("r_nope")
    with pytest.raises(NotFound, match="'x'"):
        store.find_run("p", "x")


@pytest.mark.parametrize(
    ("new", "field"),
    [
        (NewRun(project="", name="a"), "project"),
        (NewRun(project="p", name=""), "name"),
        (NewRun(project="p", name="a", task="chess"), "task"),
        (NewRun(project="p", name="a", hyperparameters={"x": [1]}), "hyperparameters"),  # type: ignore[dict-item]
        (NewRun(project="p", name="a", hyperparameters={"x": 2**70}), "hyperparameters"),
    ],
)
def test_create_run_invalid(store: SQLiteStore, new: NewRun, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        store.create_run(new)
    assert info.value.field == field


def test_set_status(store: SQLiteStore, run_id: str) -> None:
    before = store.get_run(run_id)
    after = store.set_status(run_id, "finished")
    assert after.status == "finished" and after.updated_at >= before.updated_at
    assert store.get_run(run_id).status == "finished"
    with pytest.raises(InvalidInput):
        store.set_status(run_id, "paused")
    with pytest.raises(NotFound):
        store.set_status("r_nope", "failed")


def test_list_runs_filters(store: SQLiteStore) -> None:
    a = store.create_run(
        NewRun(project="p", name="a", model="m1", hyperparameters={"lr": 1, "amp": True})
    )
    b = store.create_run(
        NewRun(project="p", name="b", model="m2", hyperparameters={"lr": 1.0, "opt": "sgd"})
    )
    c = store.create_run(
        NewRun(project="p", name="c", model="m1", hyperparameters={"lr": 0.5, "amp": 1})
    )
    store.create_run(NewRun(project="other", name="a"))
    store.set_status(c.id, "failed")

    def ids(**kw: object) -> list[str]:
        runs, token = store.list_runs(project="p", **kw)  # type: ignore[arg-type]
        assert token == ""
        return [r.id for r in runs]

    assert ids() == [a.id, b.id, c.id]
    assert ids(statuses=["failed"]) == [c.id]
    assert ids(statuses=["running", "failed"]) == [a.id, b.id, c.id]
    assert ids(model="m1") == [a.id, c.id]
    assert ids(hyperparameters={"lr": 1}) == [a.id, b.id]  # numeric: 1 == 1.0
    assert ids(hyperparameters={"lr": 1.0, "opt": "sgd"}) == [b.id]
    assert ids(hyperparameters={"amp": True}) == [a.id]  # bools only equal bools
    assert ids(hyperparameters={"amp": 1}) == [c.id]
    assert ids(hyperparameters={"opt": "SGD"}) == []
    assert len(store.list_runs(project="")[0]) == 4
    with pytest.raises(InvalidInput):
        store.list_runs(project="p", statuses=["paused"])


def test_list_runs_paging_covers_everything_once(store: SQLiteStore) -> None:
    made = [store.create_run(NewRun(project="p", name=f"n{i}")).id for i in range(23)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        runs, token = store.list_runs(project="p", page_size=5, page_token=token)
        seen.extend(r.id for r in runs)
        pages += 1
        if not token:
            break
    assert seen == made and pages == 5


@pytest.mark.parametrize("token", ["garbage", "!!!", "WyJzcGVjaW1lbnMiLDFd", "e30="])
def test_list_runs_bad_page_token(store: SQLiteStore, token: str) -> None:
    with pytest.raises(InvalidInput) as info:
        store.list_runs(project="p", page_token=token)
    assert info.value.field == "page_token"


# ------------------------------------------------------------------------------ points


def test_write_read_exact_including_non_finite_bits(store: SQLiteStore, run_id: str) -> None:
    payload_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_BEEF))[0]
    values = np.array([1.5, np.nan, np.inf, -np.inf, -0.0, payload_nan, 5e-324])
    steps = np.arange(len(values), dtype=np.int64) * 10
    walls = 1.7e9 + np.arange(len(values), dtype=np.float64)
    assert store.write_points(
        PointChunk(run_id, "train", "loss", steps, values, walls)
    ) == WriteResult(7, 0, 0)
    (s,) = store.read_series(run_id)
    assert (s.split, s.name, s.total_points) == ("train", "loss", 7)
    assert s.steps.tolist() == steps.tolist()
    assert bits(s.values) == bits(values)
    assert s.wall_times is not None and s.wall_times.tolist() == walls.tolist()


def test_resend_is_idempotent(store: SQLiteStore, run_id: str) -> None:
    c = chunk(run_id, [0, 1, 2, 3], [4.0, math.nan, 2.0, -math.inf], walls=[1.0, 2.0, 3.0, 4.0])
    store.write_points(c)
    version = store.data_version(run_id)
    before = store.read_series(run_id)[0]
    assert store.write_points(c) == WriteResult(stored=0, duplicates=4, changed=0)
    after = store.read_series(run_id)[0]
    assert (
        bits(after.values) == bits(before.values) and after.steps.tolist() == before.steps.tolist()
    )
    assert store.data_version(run_id) == version  # nothing changed, nothing to tell watchers
    # A resend with other wall times is still a duplicate: the stored point is kept whole.
    again = chunk(run_id, [1, 2], [math.nan, 2.0], walls=[9.0, 9.0])
    assert store.write_points(again) == WriteResult(0, 2, 0)
    assert store.read_series(run_id)[0].wall_times.tolist() == [1.0, 2.0, 3.0, 4.0]  # type: ignore[union-attr]


def test_conflicting_value_last_write_wins(store: SQLiteStore, run_id: str) -> None:
    store.write_points(chunk(run_id, [0, 1, 2], [1.0, 2.0, 3.0]))
    assert store.write_points(chunk(run_id, [1, 2, 3], [2.0, 30.0, 4.0])) == WriteResult(2, 1, 1)
    assert series_dict(store, run_id) == {0: 1.0, 1: 2.0, 2: 30.0, 3: 4.0}
    # 0.0 and -0.0 differ bit for bit, so this is a change too.
    store.write_points(chunk(run_id, [5], [0.0]))
    assert store.write_points(chunk(run_id, [5], [-0.0])) == WriteResult(1, 0, 1)
    assert bits(store.read_series(run_id)[0].values)[-1] == bits(np.array([-0.0]))[0]


def test_duplicate_steps_within_a_chunk_apply_in_order(store: SQLiteStore, run_id: str) -> None:
    assert store.write_points(chunk(run_id, [5, 5, 5], [1.0, 2.0, 2.0])) == WriteResult(2, 1, 1)
    assert series_dict(store, run_id) == {5: 2.0}
    # 2 -> 1 -> 2: two changes, and the net result is unchanged.
    assert store.write_points(chunk(run_id, [5, 5], [1.0, 2.0])) == WriteResult(2, 0, 2)
    assert series_dict(store, run_id) == {5: 2.0}


def test_out_of_order_and_overlapping_chunks(store: SQLiteStore, run_id: str) -> None:
    store.write_points(chunk(run_id, [10, 11, 12], [1.0, 1.0, 1.0]))
    assert store.write_points(chunk(run_id, [3, 1, 2], [3.0, 1.0, 2.0])) == WriteResult(3, 0, 0)
    assert store.write_points(chunk(run_id, [12, 2, 13], [5.0, 2.0, 6.0])) == WriteResult(2, 1, 1)
    assert series_dict(store, run_id) == {
        1: 1.0,
        2: 2.0,
        3: 3.0,
        10: 1.0,
        11: 1.0,
        12: 5.0,
        13: 6.0,
    }


def test_wall_times_none_when_never_sent_nan_when_missing(store: SQLiteStore, run_id: str) -> None:
    store.write_points(chunk(run_id, [0, 1], [1.0, 2.0], series="a"))
    store.write_points(chunk(run_id, [0], [1.0], series="b", walls=[100.0]))
    store.write_points(chunk(run_id, [1], [2.0], series="b"))
    a, b = store.read_series(run_id)
    assert a.wall_times is None
    assert b.wall_times is not None and b.wall_times[0] == 100.0 and math.isnan(b.wall_times[1])


def test_read_series_filters_and_order(store: SQLiteStore, run_id: str) -> None:
    for split, name in [("validation", "loss"), ("train", "z"), ("train", "loss"), ("test", "acc")]:
        store.write_points(chunk(run_id, [0], [1.0], split=split, series=name))
    assert [(s.split, s.name) for s in store.read_series(run_id)] == [
        ("train", "loss"),
        ("train", "z"),
        ("validation", "loss"),
        ("test", "acc"),
    ]
    assert [
        (s.split, s.name) for s in store.read_series(run_id, splits=["validation", "test"])
    ] == [("validation", "loss"), ("test", "acc")]
    assert [(s.split, s.name) for s in store.read_series(run_id, series=["loss"])] == [
        ("train", "loss"),
        ("validation", "loss"),
    ]
    with pytest.raises(NotFound):
        store.read_series("r_nope")
    with pytest.raises(InvalidInput):
        store.read_series(run_id, splits=["dev"])


def test_last_points(store: SQLiteStore, run_id: str) -> None:
    store.write_points(chunk(run_id, list(range(100, 200)), [float(i) for i in range(100, 200)]))
    store.write_points(chunk(run_id, list(range(0, 100)), [float(i) for i in range(100)]))
    store.write_points(chunk(run_id, [150, 199], [-1.0, -2.0]))  # corrections of the tail
    store.write_points(chunk(run_id, [5], [1.0], series="other"))
    loss, other = store.last_points(run_id, 3)
    assert loss.steps.tolist() == [197, 198, 199] and loss.values.tolist() == [197.0, 198.0, -2.0]
    assert other.steps.tolist() == [5] and other.total_points == 1
    (loss1, _) = store.last_points(run_id)
    assert loss1.steps.tolist() == [199]
    with pytest.raises(InvalidInput):
        store.last_points(run_id, 0)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda r: chunk(r, [0, 1], [1.0]), "values"),
        (lambda r: chunk(r, [0, -1], [1.0, 2.0]), "steps"),
        (lambda r: chunk(r, [0], [1.0], split="dev"), "split"),
        (lambda r: chunk(r, [0], [1.0], series=""), "series"),
        (lambda r: chunk(r, [0], [1.0], series="x" * 129), "series"),
        (lambda r: chunk(r, [0], [1.0], walls=[1.0, 2.0]), "wall_times"),
        (lambda r: PointChunk(r, "train", "s", np.array([0.5]), np.array([1.0])), "steps"),
        (
            lambda r: PointChunk(r, "train", "s", np.zeros((2, 2), dtype=np.int64), np.zeros(2)),
            "steps",
        ),
    ],
)
def test_invalid_chunk_refused(store: SQLiteStore, run_id: str, make: object, field: str) -> None:
    future = store.submit_points(make(run_id))  # type: ignore[operator]
    with pytest.raises(InvalidInput) as info:
        future.result()
    assert info.value.field == field
    assert store.read_series(run_id) == []


def test_series_name_of_128_chars_accepted(store: SQLiteStore, run_id: str) -> None:
    assert store.write_points(chunk(run_id, [0], [1.0], series="x" * 128)).stored == 1


def test_write_to_unknown_run_not_found(store: SQLiteStore) -> None:
    with pytest.raises(NotFound, match="r_nope"):
        store.write_points(chunk("r_nope", [0], [1.0]))


def test_empty_chunk(store: SQLiteStore, run_id: str) -> None:
    assert store.write_points(chunk(run_id, [], [])) == WriteResult(0, 0, 0)


def test_caller_arrays_are_copied(store: SQLiteStore, run_id: str) -> None:
    steps, values = np.arange(3, dtype=np.int64), np.ones(3)
    future = store.submit_points(PointChunk(run_id, "train", "loss", steps, values))
    values[:] = 7.0
    future.result()
    assert series_dict(store, run_id) == {0: 1.0, 1: 1.0, 2: 1.0}


# One chunk: (series index, steps, values); values drawn so that collisions happen often.
_VALUES = st.sampled_from([0.0, -0.0, 1.0, 2.5, math.nan, math.inf, -math.inf])
_RUN_NAMES = itertools.count()
_CHUNKS = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.lists(st.tuples(st.integers(0, 40), _VALUES), min_size=0, max_size=25),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=_CHUNKS, sort=st.booleans())
def test_property_matches_dict_model(store: SQLiteStore, chunks: list, sort: bool) -> None:
    """After any sequence of chunks, every series reads back as the dict model's sorted items."""
    model: list[dict[int, float]] = [{}, {}]
    run_id = store.create_run(
        NewRun(project="p", name=f"r{next(_RUN_NAMES)}")
    ).id  # fresh per example
    for k, points, with_walls in chunks:
        if sort:
            points = sorted(points, key=lambda p: p[0])
        steps = [p[0] for p in points]
        values = [p[1] for p in points]
        walls = [float(s) + 0.5 for s in steps] if with_walls else None
        expect_stored = expect_changed = 0
        for s, v in points:  # the model: applied point by point, last write wins
            old = model[k].get(s)
            if old is None or not (
                bits(np.array([old])) == bits(np.array([v])) or (math.isnan(old) and math.isnan(v))
            ):
                expect_stored += 1
                expect_changed += old is not None
                model[k][s] = v
        result = store.write_points(chunk(run_id, steps, values, series=f"s{k}", walls=walls))
        assert result == WriteResult(expect_stored, len(points) - expect_stored, expect_changed)
    for k in (0, 1):
        got = {s.name: s for s in store.read_series(run_id)}.get(f"s{k}")
        want = sorted(model[k].items())
        if got is None:
            assert want == []
            continue
        assert got.steps.tolist() == [s for s, _ in want]
        assert bits(got.values) == bits(np.array([v for _, v in want]))


def test_concurrent_writers_match_model(store: SQLiteStore, run_id: str) -> None:
    """16 threads write interleaved, overlapping chunks to 4 series; the reads match a model."""
    series_count, threads, rounds = 4, 16, 30
    # Thread t owns steps congruent to t mod 16 in every series, so the final value of
    # each step is well defined; chunks overlap earlier ones (resends) and go backwards.
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        rng = np.random.default_rng(t)
        try:
            barrier.wait()
            for r in range(rounds):
                k = int(rng.integers(series_count))
                base = int(rng.integers(0, 50))
                steps = (np.arange(base, base + 20) * threads + t).astype(np.int64)
                store.write_points(PointChunk(run_id, "train", f"s{k}", steps, steps * 0.5 + k))
                if r % 5 == 0:  # a resend
                    res = store.write_points(
                        PointChunk(run_id, "train", f"s{k}", steps, steps * 0.5 + k)
                    )
                    assert res.stored == 0 and res.duplicates == 20
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    for s in store.read_series(run_id):
        k = int(s.name[1:])
        assert np.all(np.diff(s.steps) > 0)
        assert s.values.tolist() == (s.steps * 0.5 + k).tolist()


def test_small_chunks_are_compacted_and_stay_correct(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    run_id = store.create_run(NewRun(project="p", name="r")).id
    model: dict[int, float] = {}
    rng = np.random.default_rng(1)
    futures = []
    for i in range(600):
        step = i if i % 7 else int(rng.integers(0, i + 1))  # mostly appends, some rewrites
        model[step] = float(i)
        futures.append(store.submit_points(chunk(run_id, [step], [float(i)])))
    for f in futures:
        f.result()
    assert series_dict(store, run_id) == dict(sorted(model.items()))
    store.close()
    rows = sqlite3.connect(db_path).execute("SELECT count(*) FROM point_chunks").fetchone()[0]
    assert rows < 64
    with SQLiteStore(db_path) as again:
        again.write_points(chunk(run_id, [3], [-1.0]))
        model[3] = -1.0
        assert series_dict(again, run_id) == dict(sorted(model.items()))


def test_compaction_is_tiered_each_point_rewritten_about_once_per_level(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 one-point appends: few rows at any time, and each point rewritten <= 3 times.

    Merging a series' whole tail each time (the growing chunk with 32 new points)
    would rewrite each point about _SMALL_CHUNK / 64 = 64 times on average.
    """
    rewritten = 0
    compact = Writer._compact_tail

    def counting(self: Writer, conn: sqlite3.Connection, state: object, start: int) -> None:
        nonlocal rewritten
        rewritten += sum(n for _, n in state.tail[start:])  # type: ignore[attr-defined]
        compact(self, conn, state, start)

    monkeypatch.setattr(Writer, "_compact_tail", counting)
    n = 10_000
    with SQLiteStore(db_path) as store:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        most_rows = 0
        for lo in range(0, n, 500):
            futures = [
                store.submit_points(chunk(run_id, [i], [i / 2])) for i in range(lo, lo + 500)
            ]
            assert all(f.result() == WriteResult(1, 0, 0) for f in futures)
            with sqlite3.connect(db_path) as conn:
                most_rows = max(
                    most_rows, conn.execute("SELECT count(*) FROM point_chunks").fetchone()[0]
                )
        assert series_dict(store, run_id) == {i: i / 2 for i in range(n)}
    assert most_rows <= n // _SMALL_CHUNK + _MAX_TAIL
    assert n <= rewritten <= 3 * n
    # Reopened, the writer reads the tail back and goes on compacting it.
    with SQLiteStore(db_path) as store:
        futures = [store.submit_points(chunk(run_id, [i], [i / 2])) for i in range(n, n + 64)]
        assert all(f.result() == WriteResult(1, 0, 0) for f in futures)
        assert series_dict(store, run_id) == {i: i / 2 for i in range(n + 64)}
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT n FROM point_chunks ORDER BY id").fetchall()
    assert len(rows) <= (n + 64) // _SMALL_CHUNK + _MAX_TAIL
    assert sum(r[0] for r in rows) == n + 64


def test_a_batch_of_appends_commits_as_one_statement(db_path: Path) -> None:
    """Appends to known series: one INSERT a batch (no BEGIN, COMMIT or max(id) read),
    and the chunk ids the writer keeps across batches and compactions never collide."""
    with SQLiteStore(db_path) as store:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        for k in range(5):
            store.write_points(chunk(run_id, [0], [0.0], series=f"s{k}"))
        statements: list[str] = []
        store._writer._wconn.set_trace_callback(statements.append)
        futures = [
            store.submit_points(chunk(run_id, [step], [float(step)], series=f"s{k}"))
            for step in range(1, 11)
            for k in range(5)
        ]
        assert all(f.result() == WriteResult(1, 0, 0) for f in futures)
        assert statements and all(
            s.startswith("INSERT INTO point_chunks (id, series_id") for s in statements
        )
        # 200 more a series, in batches of 50: compactions (DELETE and INSERT in a
        # transaction) between lone INSERTs; a wrong next id would collide (a ROLLBACK).
        for lo in range(11, 211, 10):
            futures = [
                store.submit_points(chunk(run_id, [step], [float(step)], series=f"s{k}"))
                for step in range(lo, lo + 10)
                for k in range(5)
            ]
            assert all(f.result() == WriteResult(1, 0, 0) for f in futures)
        assert any(s.startswith("DELETE FROM point_chunks") for s in statements)
        assert not [s for s in statements if "ROLLBACK" in s or "max(id)" in s]
        # A new series reads and inserts before its append: one transaction.
        statements.clear()
        store.write_points(chunk(run_id, [0], [0.0], series="new"))
        assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
        store._writer._wconn.set_trace_callback(None)
        for k in range(5):
            (s,) = store.read_series(run_id, series=(f"s{k}",))
            assert s.steps.tolist() == list(range(211))


def test_batches_with_failures_rewrites_and_compaction_match_model(db_path: Path) -> None:
    """Batches mixing appends, rewrites, compactions and unknown runs (which roll the batch
    back and run it again op by op): every good write lands, the chunk ids the writer
    keeps from batch to batch stay right, also after reopening."""
    store = SQLiteStore(db_path)
    run_id = store.create_run(NewRun(project="p", name="r")).id
    model: dict[str, dict[int, float]] = {}
    rng = np.random.default_rng(7)
    top = 0
    for rnd in range(40):
        futures = []
        for k in range(int(rng.integers(1, 60))):
            name = f"s{int(rng.integers(4))}"
            if rng.random() < 0.05:
                futures.append((store.submit_points(chunk("r_missing", [1], [1.0])), None))
                continue
            top += 1
            step = top if rng.random() < 0.8 else int(rng.integers(0, top))  # some rewrites
            value = float(rnd * 1000 + k)
            futures.append((store.submit_points(chunk(run_id, [step], [value], series=name)), 0))
            model.setdefault(name, {})[step] = value
        for future, expect in futures:
            if expect is None:
                with pytest.raises(NotFound):
                    future.result()
            else:
                assert future.result().stored + future.result().duplicates == 1
        assert {n: series_dict(store, run_id, n) for n in model} == {
            n: dict(sorted(points.items())) for n, points in model.items()
        }
    store.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with SQLiteStore(db_path) as again:
        again.write_points(chunk(run_id, [top + 1], [-1.0], series="s0"))
        model["s0"][top + 1] = -1.0
        assert {n: series_dict(again, run_id, n) for n in model} == {
            n: dict(sorted(points.items())) for n, points in model.items()
        }


# ------------------------------------------------------------------------------ lifecycle


def test_reopen_after_close_keeps_everything(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    run = store.create_run(NewRun(project="p", name="r", hyperparameters={"lr": 0.1}))
    futures = [store.submit_points(chunk(run.id, [i], [float(i)])) for i in range(50)]
    store.log_checkpoint(run.id, "validation", 10, {"bleu": 0.3})
    store.record_specimens(run.id, "validation", 10, [SpecimenRecord("a", prediction_text="x")])
    store.close()  # drains: every accepted write is durable
    assert all(f.result().stored == 1 for f in futures)
    with SQLiteStore(db_path) as again:
        assert again.get_run(run.id) == run
        assert series_dict(again, run.id) == {i: float(i) for i in range(50)}
        # The in-memory "max stored step" is rebuilt: a resend is still a duplicate.
        assert again.write_points(chunk(run.id, [49, 50], [49.0, 50.0])) == WriteResult(1, 1, 0)
        assert again.checkpoints(run.id)[0].metrics == {"bleu": 0.3}
        assert again.specimens(run.id, "validation", 10)[0][0].prediction_text == "x"


def test_closed_store_raises_store_closed(store: SQLiteStore, run_id: str) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreClosed):
        store.write_points(chunk(run_id, [0], [1.0]))
    with pytest.raises(StoreClosed):
        store.submit_points(chunk(run_id, [0], [1.0])).result()
    with pytest.raises(StoreClosed):
        store.create_run(NewRun(project="p", name="x"))
    with pytest.raises(StoreClosed):
        store.get_run(run_id)
    with pytest.raises(StoreClosed):
        store.read_series(run_id)


def test_queue_full_store_overloaded(db_path: Path) -> None:
    store = SQLiteStore(db_path, max_queue=2)
    run_id = store.create_run(NewRun(project="p", name="r")).id
    # Another connection holds the write lock, so the writer waits in BEGIN (busy
    # handling, not an error) and the queue fills up behind it.
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    futures = [store.submit_points(chunk(run_id, [i], [1.0])) for i in range(20)]
    overloaded = [f for f in futures if f.done() and isinstance(f.exception(), StoreOverloaded)]
    assert 15 <= len(overloaded) <= 19
    blocker.execute("ROLLBACK")
    blocker.close()
    accepted = [f for f in futures if f not in overloaded]
    assert all(f.result(timeout=10).stored == 1 for f in accepted)
    store.close()


def test_store_error_tree() -> None:
    for cls in (NotFound, AlreadyExists, InvalidInput, StoreClosed, StoreOverloaded):
        assert issubclass(cls, StoreError)


def test_invalid_options() -> None:
    with pytest.raises(InvalidInput):
        SQLiteStore(Path("/nonexistent/x.db"), synchronous="SOMETIMES")
    with pytest.raises(InvalidInput):
        SQLiteStore(Path("/nonexistent/x.db"), max_queue=0)


# ------------------------------------------------------------------------------ migrations


def test_migrates_from_previous_version(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    schema.migrate(conn, target=SCHEMA_VERSION - 1)
    assert schema.schema_version(conn) == SCHEMA_VERSION - 1
    conn.execute(
        "INSERT INTO runs VALUES "
        "('r_old', 'p', 'old', '', '', 'finished', '{\"lr\": 1}', '{}', 1.0, 2.0)"
    )
    conn.close()
    with SQLiteStore(db_path) as store:
        assert store.get_run("r_old").hyperparameters == {"lr": 1}
        store.log_checkpoint("r_old", "test", 1, {"f1": 0.5})  # needs the newest tables
        assert store.checkpoints("r_old")[0].metrics == {"f1": 0.5}
    assert schema.schema_version(sqlite3.connect(db_path)) == SCHEMA_VERSION


def test_migrates_every_prefix(tmp_path: Path) -> None:
    for version in range(SCHEMA_VERSION + 1):
        path = tmp_path / f"v{version}.db"
        schema.migrate(sqlite3.connect(path, isolation_level=None), target=version)
        with SQLiteStore(path) as store:
            run = store.create_run(NewRun(project="p", name="r"))
            assert store.write_points(chunk(run.id, [0], [1.0])).stored == 1
        assert schema.schema_version(sqlite3.connect(path)) == SCHEMA_VERSION


def test_newer_schema_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(db_path)


def test_database_is_wal_with_full_sync(sqlite_store: SQLiteStore, db_path: Path) -> None:
    # SQLite only: PostgreSQL has its own log, and synchronous_commit (test_postgres.py).
    assert sqlite3.connect(db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sqlite_store.synchronous == "FULL"


# ------------------------------------------------------------------------------ evaluations


def test_checkpoints_upsert(store: SQLiteStore, run_id: str) -> None:
    assert (
        store.log_checkpoint(
            run_id,
            "validation",
            100,
            {"bleu": 0.2, "rouge1": 0.4},
            signatures={"bleu": "nrefs:1|tok:13a"},
        )
        == 2
    )
    assert store.log_checkpoint(run_id, "validation", 100, {"bleu": 0.25, "nan": math.nan}) == 2
    store.log_checkpoint(run_id, "train", 200, {"loss": 1.0})
    store.log_checkpoint(run_id, "validation", 50, {"bleu": 0.1})
    rows = store.checkpoints(run_id)
    assert [(r.split, r.step) for r in rows] == [
        ("train", 200),
        ("validation", 50),
        ("validation", 100),
    ]
    last = rows[-1]
    assert (
        last.metrics["bleu"] == 0.25
        and last.metrics["rouge1"] == 0.4
        and math.isnan(last.metrics["nan"])
    )
    assert last.signatures == {}  # the upsert replaced bleu's signature
    assert rows[1].signatures == {}
    with pytest.raises(InvalidInput):
        store.log_checkpoint(run_id, "validation", 1, {"a": 1.0}, signatures={"b": "x"})
    with pytest.raises(InvalidInput):
        store.log_checkpoint(run_id, "validation", -1, {"a": 1.0})
    with pytest.raises(NotFound):
        store.log_checkpoint("r_nope", "validation", 1, {"a": 1.0})
    with pytest.raises(NotFound):
        store.checkpoints("r_nope")


def test_specimens_upsert_and_paging(store: SQLiteStore, run_id: str) -> None:
    box = (0.0, 0.0, 10.0, 10.0, "a dog", 0.9)
    recs = [
        SpecimenRecord(
            f"s{i:02}",
            prediction_text=f"p{i}",
            reference_texts=("r1", "r2"),
            predicted_boxes=(box,),
            ground_truth_boxes=(box, box),
            scores={"iou": 0.5, "bad": math.nan},
            flags=("low",),
        )
        for i in range(25)
    ]
    assert store.record_specimens(run_id, "validation", 10, recs) == 25
    assert (
        store.record_specimens(
            run_id, "validation", 10, [SpecimenRecord("s03", prediction_text="new")]
        )
        == 1
    )
    got: list[SpecimenRecord] = []
    token = ""
    while True:
        page, token = store.specimens(run_id, "validation", 10, page_size=7, page_token=token)
        got.extend(page)
        if not token:
            break
    assert [r.specimen_id for r in got] == [r.specimen_id for r in recs]  # first-insertion order
    assert got[3] == SpecimenRecord("s03", prediction_text="new")
    assert got[0].predicted_boxes == (box,) and got[0].ground_truth_boxes == (box, box)
    assert got[0].reference_texts == ("r1", "r2") and got[0].flags == ("low",)
    assert got[0].scores["iou"] == 0.5 and math.isnan(got[0].scores["bad"])
    assert store.specimens(run_id, "validation", 11) == ([], "")
    with pytest.raises(InvalidInput) as info:
        store.specimens(run_id, "validation", 10, page_token="bm9wZQ==")
    assert info.value.field == "page_token"
    with pytest.raises(InvalidInput):
        store.record_specimens(run_id, "validation", 10, [SpecimenRecord("")])
    with pytest.raises(InvalidInput):
        short_box: object = ((1.0, 2.0),)
        store.record_specimens(
            run_id,
            "validation",
            10,
            [SpecimenRecord("x", predicted_boxes=short_box)],  # type: ignore[arg-type]
        )


def test_evaluation_steps(store: SQLiteStore, run_id: str) -> None:
    store.log_checkpoint(run_id, "validation", 100, {"bleu": 0.2})
    store.record_specimens(run_id, "validation", 100, [SpecimenRecord("a"), SpecimenRecord("b")])
    store.record_specimens(run_id, "validation", 50, [SpecimenRecord("a")])
    store.log_checkpoint(run_id, "test", 100, {"bleu": 0.3})
    rows = store.evaluation_steps(run_id)
    assert [(r.split, r.step, r.specimens, dict(r.metrics)) for r in rows] == [
        ("validation", 50, 1, {}),
        ("validation", 100, 2, {"bleu": 0.2}),
        ("test", 100, 0, {"bleu": 0.3}),
    ]
    assert [r.step for r in store.evaluation_steps(run_id, split="test")] == [100]
    with pytest.raises(NotFound):
        store.evaluation_steps("r_nope")


def test_data_version_increments(store: SQLiteStore, run_id: str) -> None:
    other = store.create_run(NewRun(project="p", name="other")).id
    v0 = store.data_version(run_id)
    store.write_points(chunk(run_id, [0], [1.0]))
    v1 = store.data_version(run_id)
    store.log_checkpoint(run_id, "validation", 0, {"a": 1.0})
    v2 = store.data_version(run_id)
    store.set_status(run_id, "finished")
    v3 = store.data_version(run_id)
    store.record_specimens(run_id, "validation", 0, [SpecimenRecord("x")])
    v4 = store.data_version(run_id)
    assert v0 < v1 < v2 < v3 < v4
    assert store.data_version(other) == 0
    assert store.data_version("r_nope") == 0


def test_read_connections_are_pooled_not_one_per_thread(db_path: Path) -> None:
    """100 short-lived threads reading, 8 at a time: at most `readers` connections exist."""
    store = SQLiteStore(db_path, readers=3)
    try:
        run_id = store.create_run(NewRun(project="p", name="run")).id
        store.write_points(PointChunk(run_id, "train", "loss", np.arange(5), np.ones(5)))
        seen: list[int] = []
        lock = threading.Lock()

        def read() -> None:
            n = len(store.read_series(run_id)[0].values)
            with lock:
                seen.append(n)

        for _ in range(100 // 8):
            threads = [threading.Thread(target=read) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert seen == [5] * 96
        assert 1 <= len(store._pool._readers) <= 3
    finally:
        store.close()


def test_a_read_waits_for_a_free_connection(db_path: Path) -> None:
    """With the pool's one connection held, another read waits for it, then succeeds."""
    store = SQLiteStore(db_path, readers=1)
    try:
        run_id = store.create_run(NewRun(project="p", name="run")).id
        holding, release = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> int:
            holding.set()
            release.wait(30)
            return 0

        holder = threading.Thread(target=store._pool.read, args=(hold,))
        holder.start()
        assert holding.wait(30)
        got: list[str] = []
        waiter = threading.Thread(target=lambda: got.append(store.get_run(run_id).name))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and got == []  # waiting, not failing
        release.set()
        waiter.join(30)
        holder.join(30)
        assert got == ["run"] and len(store._pool._readers) == 1
    finally:
        store.close()


def test_a_failed_read_does_not_poison_the_pool(store: SQLiteStore, run_id: str) -> None:
    def fail(conn: sqlite3.Connection) -> None:
        conn.execute("SELECT * FROM no_such_table")

    for _ in range(20):  # more than the pool holds: each failure gives its slot back
        with pytest.raises(StoreError, match="no_such_table"):
            store._read(fail)
    assert store.get_run(run_id).name == "run"


def test_readers_must_be_positive(db_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        SQLiteStore(db_path, readers=0)
    assert info.value.field == "readers"


def test_series_states_past_the_cap_are_read_back(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for 2 series states, writing 5 series in turn keeps every point right."""
    monkeypatch.setattr(writes_module, "_MAX_SERIES_STATES", 2)
    monkeypatch.setattr(writes_module, "_MAX_KNOWN_RUNS", 2)
    runs = [store.create_run(NewRun(project="p", name=f"r{i}")).id for i in range(3)]
    model: dict[tuple[str, str], dict[int, float]] = {}
    for rnd in range(6):
        for i in range(5):
            run_id, name = runs[i % 3], f"s{i}"
            # in order, then a rewrite of an earlier step, then small chunks (compaction)
            steps = [rnd * 10 + k for k in range(3)] + ([rnd * 10 - 5] if rnd else [])
            values = [float(rnd * 100 + i + k) for k in range(len(steps))]
            store.write_points(chunk(run_id, steps, values, series=name))
            model.setdefault((run_id, name), {}).update(zip(steps, values, strict=True))
    writer = getattr(store, "_writer", None)  # the writer thread's (a process keeps its own)
    assert writer is None or (len(writer._series) <= 2 and len(writer._known_runs) <= 2)
    for (run_id, name), points in model.items():
        (series,) = store.read_series(run_id, series=(name,))
        assert series.steps.tolist() == sorted(points)
        assert series.values.tolist() == [points[k] for k in sorted(points)]
    with pytest.raises(NotFound):
        store.write_points(chunk("r_nope", [0], [1.0]))


def test_data_versions_never_repeat_past_the_cap(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap, an unchanged run's version may move up, never down or back."""
    monkeypatch.setattr(front_module, "_MAX_VERSIONS", 2)  # both backends' `DataVersions`
    runs = [store.create_run(NewRun(project="p", name=f"r{i}")).id for i in range(5)]
    seen: dict[str, list[int]] = {r: [store.data_version(r)] for r in runs}
    for step in range(4):
        for r in runs:
            before = {o: store.data_version(o) for o in runs}
            store.write_points(chunk(r, [step], [1.0]))
            after = {o: store.data_version(o) for o in runs}
            assert after[r] > before[r]  # the written run moved
            assert all(after[o] >= before[o] for o in runs)  # nothing went back
            seen[r].append(after[r])
    assert len(store._versions._versions) <= 2
    for r in runs:  # every write of a run gave it a version it never had before
        assert len(set(seen[r])) == len(seen[r])
