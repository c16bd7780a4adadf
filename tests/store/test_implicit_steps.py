"""Implicit steps: evenly spaced chunks are stored with an empty steps blob.

Every test reads the points back AND looks at the stored rows
(``SELECT length(steps)``), so that storing the steps explicitly again, or
storing irregular steps implicitly, fails here.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from evalstream_server.store import (
    SCHEMA_VERSION,
    NewRun,
    PointChunk,
    SQLiteStore,
    Store,
    WriteResult,
    schema,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Query

_INT64_MAX = 2**63 - 1


def chunk(
    run_id: str,
    steps: list[int] | np.ndarray,
    values: list[float] | np.ndarray,
    *,
    series: str = "loss",
    walls: list[float] | None = None,
) -> PointChunk:
    return PointChunk(
        run_id,
        "train",
        series,
        np.asarray(steps, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        None if walls is None else np.asarray(walls, dtype=np.float64),
    )


def read(store: SQLiteStore, run_id: str, series: str = "loss") -> dict[int, float]:
    (s,) = store.read_series(run_id, series=[series])
    assert s.steps.dtype == np.int64 and len(s.steps) == len(s.values) == s.total_points
    assert np.all(np.diff(s.steps) > 0)
    return dict(zip(s.steps.tolist(), s.values.tolist(), strict=True))


_ROWS = "SELECT min_step, max_step, n, length(steps), length(vals) FROM point_chunks ORDER BY id"


def rows(source: Path | Query) -> list[tuple[int, int, int, int, int]]:
    """(min_step, max_step, n, length(steps), length(vals)) of every chunk, in write order.

    ``source``: a SQLite file, or the ``query`` fixture (the store's database, either backend).
    """
    if callable(source):
        return [tuple(r) for r in source(_ROWS)]  # type: ignore[misc]
    conn = sqlite3.connect(source)
    try:
        return conn.execute(_ROWS).fetchall()
    finally:
        conn.close()


def test_implicit_consecutive_chunk_stores_no_steps(
    store: Store, run_id: str, query: Query
) -> None:
    steps = np.arange(1_000, 11_000)
    assert store.write_points(chunk(run_id, steps, steps * 0.5)) == WriteResult(10_000, 0, 0)
    assert read(store, run_id) == {int(s): s * 0.5 for s in steps}
    # The point of the encoding: 8 bytes a point on disk, not 16.
    assert rows(query) == [(1_000, 10_999, 10_000, 0, 80_000)]


def test_implicit_strided_chunk_stores_no_steps(store: Store, run_id: str, query: Query) -> None:
    steps = np.arange(0, 50_000, 500)  # a validation loss every 500 steps
    store.write_points(chunk(run_id, steps, np.linspace(3.0, 1.0, len(steps))))
    got = read(store, run_id)
    assert list(got) == steps.tolist()
    assert rows(query) == [(0, 49_500, 100, 0, 800)]


@pytest.mark.parametrize(
    "steps",
    [
        [0, 1, 3, 4],  # one gap
        [0, 1, 4],  # span a multiple of n - 1 (stride 2), yet not evenly spaced
        [0, 2, 3, 6],  # span a multiple of n - 1 (stride 2), yet not evenly spaced
        [10, 11, 12, 14, 15, 16, 17],
    ],
)
def test_explicit_irregular_chunk_keeps_its_steps(
    store: Store, run_id: str, query: Query, steps: list[int]
) -> None:
    store.write_points(chunk(run_id, steps, [float(s) for s in steps]))
    assert read(store, run_id) == {s: float(s) for s in steps}
    assert rows(query) == [(steps[0], steps[-1], len(steps), 8 * len(steps), 8 * len(steps))]


@pytest.mark.parametrize("steps", [[0], [7], [_INT64_MAX], [5, 100], [0, _INT64_MAX]])
def test_implicit_one_or_two_points(
    store: Store, run_id: str, query: Query, steps: list[int]
) -> None:
    store.write_points(chunk(run_id, steps, [1.5] * len(steps)))
    assert read(store, run_id) == dict.fromkeys(steps, 1.5)
    assert [r[3] for r in rows(query)] == [0]


@pytest.mark.parametrize(
    "steps",
    [
        [_INT64_MAX - 2, _INT64_MAX - 1, _INT64_MAX],  # consecutive at the very top
        [0, 2**62 - 1, 2**63 - 2],  # a stride near 2**62
        [1, 2**62, 2**63 - 1],
    ],
)
def test_implicit_steps_near_int64_max_do_not_overflow(
    store: Store, run_id: str, query: Query, steps: list[int]
) -> None:
    store.write_points(chunk(run_id, steps, [1.0, 2.0, 3.0]))
    assert read(store, run_id) == dict(zip(steps, [1.0, 2.0, 3.0], strict=True))
    assert store.last_points(run_id, 2)[0].steps.tolist() == steps[1:]
    assert [r[3] for r in rows(query)] == [0]


def test_implicit_unsorted_chunk_is_stored_sorted(store: Store, run_id: str, query: Query) -> None:
    """A chunk sent out of order (but evenly spaced once sorted) takes the merge path."""
    store.write_points(chunk(run_id, [3, 1, 2, 0], [3.0, 1.0, 2.0, 0.0]))
    assert read(store, run_id) == {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}
    assert rows(query) == [(0, 3, 4, 0, 32)]


def test_implicit_mixed_chunks_with_wall_times(store: Store, run_id: str, query: Query) -> None:
    model: dict[int, float] = {}
    parts = [
        (np.arange(0, 100), True),  # consecutive
        (np.arange(100, 1_100, 10), False),  # strided
        (np.array([1_100, 1_101, 1_105, 1_300]), True),  # irregular
        (np.array([2_000]), False),  # one point
        (np.arange(2_001, 2_201), True),  # consecutive again
    ]
    for steps, with_walls in parts:
        values = np.sin(steps.astype(np.float64))
        walls = (steps + 0.25).tolist() if with_walls else None
        store.write_points(chunk(run_id, steps, values, walls=walls))
        model.update(zip(steps.tolist(), values.tolist(), strict=True))
    assert read(store, run_id) == model
    (s,) = store.read_series(run_id)
    assert s.wall_times is not None
    with_walls = np.isin(s.steps, np.concatenate([p for p, w in parts if w]))
    assert s.wall_times[with_walls].tolist() == (s.steps[with_walls] + 0.25).tolist()
    assert np.isnan(s.wall_times[~with_walls]).all()
    assert [r[3] for r in rows(query)] == [0, 0, 32, 0, 0]
    tail = store.last_points(run_id, 205)[0]
    assert tail.steps.tolist() == [1_100, 1_101, 1_105, 1_300, 2_000, *range(2_001, 2_201)]


def test_implicit_overwrites_store_corrections_by_their_own_spacing(
    store: Store, run_id: str, query: Query
) -> None:
    model = {s: 1.0 for s in range(100)}
    store.write_points(chunk(run_id, list(range(100)), [1.0] * 100))
    # Changes steps 10..19: the correction chunk is consecutive.
    assert store.write_points(chunk(run_id, list(range(10, 20)), [2.0] * 10)) == WriteResult(
        10, 0, 10
    )
    model.update(dict.fromkeys(range(10, 20), 2.0))
    # Resends 30..59 with every third value changed: the correction is strided.
    values = [3.0 if s % 3 == 0 else 1.0 for s in range(30, 60)]
    assert store.write_points(chunk(run_id, list(range(30, 60)), values)) == WriteResult(10, 20, 10)
    model.update({s: 3.0 for s in range(30, 60, 3)})
    # Irregular changes: the correction keeps its steps.
    assert store.write_points(chunk(run_id, [70, 71, 75], [4.0, 4.0, 4.0])) == WriteResult(3, 0, 3)
    model.update(dict.fromkeys([70, 71, 75], 4.0))
    # A correction past the end: new points after stored ones, in one chunk.
    assert store.write_points(chunk(run_id, [99, 100, 101], [1.0, 5.0, 5.0])) == WriteResult(
        2, 1, 0
    )
    model.update({100: 5.0, 101: 5.0})
    assert read(store, run_id) == model
    assert rows(query) == [
        (0, 99, 100, 0, 800),
        (10, 19, 10, 0, 80),
        (30, 57, 10, 0, 80),
        (70, 75, 3, 24, 24),
        (100, 101, 2, 0, 16),
    ]


def test_implicit_out_of_order_and_duplicate_resends(
    store: Store, run_id: str, query: Query
) -> None:
    later, earlier = np.arange(1_000, 2_000), np.arange(0, 1_000)
    assert store.write_points(chunk(run_id, later, later * 1.0)).stored == 1_000
    # Below everything stored: the merge path, every point new, still consecutive.
    assert store.write_points(chunk(run_id, earlier, earlier * 1.0)) == WriteResult(1_000, 0, 0)
    # Whole resends, in order and reversed: duplicates only, nothing written.
    everything = np.arange(0, 2_000)
    assert store.write_points(chunk(run_id, everything, everything * 1.0)) == WriteResult(
        0, 2_000, 0
    )
    assert store.write_points(
        chunk(run_id, everything[::-1], everything[::-1] * 1.0)
    ) == WriteResult(0, 2_000, 0)
    # A resend overlapping the end: only the new tail is stored.
    overlap = np.arange(1_500, 2_500)
    assert store.write_points(chunk(run_id, overlap, overlap * 1.0)) == WriteResult(500, 500, 0)
    assert read(store, run_id) == {s: float(s) for s in range(2_500)}
    assert rows(query) == [
        (1_000, 1_999, 1_000, 0, 8_000),
        (0, 999, 1_000, 0, 8_000),
        (2_000, 2_499, 500, 0, 4_000),
    ]
    assert store.last_points(run_id, 3)[0].steps.tolist() == [2_497, 2_498, 2_499]


def test_implicit_compaction_of_many_small_consecutive_chunks(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    run_id = store.create_run(NewRun(project="p", name="r")).id
    futures = [store.submit_points(chunk(run_id, [i], [float(i)])) for i in range(1_000)]
    assert all(f.result() == WriteResult(1, 0, 0) for f in futures)
    assert read(store, run_id) == {i: float(i) for i in range(1_000)}
    store.close()
    stored = rows(db_path)
    assert len(stored) < 64  # compacted
    assert sum(r[2] for r in stored) == 1_000
    assert all(r[3] == 0 for r in stored)  # every compacted chunk is consecutive
    assert any(r[2] > 1 for r in stored)
    with SQLiteStore(db_path) as again:
        assert read(again, run_id) == {i: float(i) for i in range(1_000)}
        assert again.last_points(run_id, 5)[0].steps.tolist() == list(range(995, 1_000))


def test_implicit_compaction_with_a_gap_stores_steps(db_path: Path) -> None:
    with SQLiteStore(db_path) as store:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        steps = [i for i in range(40) if i != 17]
        for s in steps:
            store.write_points(chunk(run_id, [s], [float(s)]))
        assert read(store, run_id) == {s: float(s) for s in steps}
    compacted = [r for r in rows(db_path) if r[2] > 1]
    assert compacted and all(r[3] == 8 * r[2] for r in compacted if r[0] <= 17 <= r[1])


def _legacy_database(db_path: Path) -> tuple[str, list[int]]:
    """A version-3 database (before implicit steps) whose chunks all carry explicit steps.

    Written by hand, as a version-3 server wrote them: consecutive, strided and
    irregular chunks, one with wall times, and 32 one-point chunks (a tail that the
    next write compacts, with the 3-point chunk before it).
    """
    conn = sqlite3.connect(db_path, isolation_level=None)
    schema.migrate(conn, target=3)
    conn.execute(
        "INSERT INTO runs VALUES ('r_old', 'p', 'old', '', '', 'running', '{}', '{}', 1.0, 1.0)"
    )
    conn.execute(
        "INSERT INTO series (id, run_id, split, name) VALUES (1, 'r_old', 'train', 'loss')"
    )
    parts = [
        (np.arange(0, 5_000), True),
        (np.arange(5_000, 6_000, 10), False),
        (np.array([6_000, 6_001, 6_003]), False),
        *((np.array([6_100 + i]), False) for i in range(32)),
    ]
    steps: list[int] = []
    for s, with_walls in parts:
        conn.execute(
            "INSERT INTO point_chunks (series_id, min_step, max_step, n, steps, vals, wall_times) "
            "VALUES (1, ?, ?, ?, ?, ?, ?)",
            (
                int(s[0]),
                int(s[-1]),
                len(s),
                s.astype("<i8").tobytes(),
                (s * 0.25).astype("<f8").tobytes(),
                (s + 0.5).astype("<f8").tobytes() if with_walls else None,
            ),
        )
        steps.extend(s.tolist())
    conn.close()
    return "r_old", steps


def test_legacy_explicit_steps_read_and_merge(db_path: Path) -> None:
    run_id, steps = _legacy_database(db_path)
    assert all(r[3] == 8 * r[2] for r in rows(db_path))
    with SQLiteStore(db_path) as store:
        model = {s: s * 0.25 for s in steps}
        assert read(store, run_id) == model
        (s,) = store.read_series(run_id)
        assert s.wall_times is not None and s.wall_times[:5_000].tolist() == [
            i + 0.5 for i in range(5_000)
        ]
        assert store.last_points(run_id, 2)[0].steps.tolist() == [6_130, 6_131]
        # Resends of legacy rows are duplicates.
        assert store.write_points(
            chunk(run_id, np.arange(4_000, 5_000), np.arange(4_000, 5_000) * 0.25)
        ) == WriteResult(0, 1_000, 0)
        # An append: compacts the legacy tail of small rows with it, into one row.
        assert store.write_points(chunk(run_id, [6_132], [1.0])) == WriteResult(1, 0, 0)
        model[6_132] = 1.0
        # Changes of legacy points: a new (implicit, two-point) row.
        assert store.write_points(chunk(run_id, [5_010, 6_001], [-1.0, -1.0])) == WriteResult(
            2, 0, 2
        )
        model.update({5_010: -1.0, 6_001: -1.0})
        assert read(store, run_id) == model
    assert schema.schema_version(sqlite3.connect(db_path)) == SCHEMA_VERSION
    stored = rows(db_path)
    assert stored[:2] == [
        (0, 4_999, 5_000, 40_000, 40_000),  # legacy rows are not rewritten
        (5_000, 5_990, 100, 800, 800),  # (100 points: a level above the merged ones)
    ]
    # The 3-point row and the 32 one-point rows (all under 32 points), with the new
    # point: one row of 36 points, explicit steps (6_002 and 6_004..6_099 are gaps).
    assert stored[2:] == [(6_000, 6_132, 36, 288, 288), (5_010, 6_001, 2, 0, 16)]
    with SQLiteStore(db_path) as again:
        assert read(again, run_id) == model


def test_empty_steps_blob_is_never_read_as_no_steps(db_path: Path) -> None:
    """A row with an empty blob and n > 0 decodes to n steps (no length mismatch)."""
    with SQLiteStore(db_path) as store:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        store.write_points(chunk(run_id, [10, 20, 30], [1.0, 2.0, 3.0]))
    assert rows(db_path) == [(10, 30, 3, 0, 24)]
    with SQLiteStore(db_path) as store:
        (s,) = store.read_series(run_id)
        assert s.steps.tolist() == [10, 20, 30] and s.values.tolist() == [1.0, 2.0, 3.0]


# Chunks drawn to hit every encoding: evenly spaced runs (any start, stride, length,
# in order or reversed) and the same runs with the last step moved, or the first repeated.
_RUN_NAMES = itertools.count()
_RUNS = st.tuples(
    st.integers(0, 200),  # start
    st.integers(1, 7),  # stride
    st.integers(1, 30),  # length
    st.sampled_from(["as is", "reversed", "last moved", "repeated"]),
    st.sampled_from([0.0, 1.0, 2.5, math.nan]),  # value
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(runs=st.lists(_RUNS, min_size=1, max_size=12))
def test_implicit_property_matches_dict_model(store: Store, query: Query, runs: list) -> None:
    run_id = store.create_run(NewRun(project="p", name=f"r{next(_RUN_NAMES)}")).id
    model: dict[int, float] = {}
    for start, stride, length, shape, value in runs:
        steps = list(range(start, start + stride * length, stride))
        if shape == "reversed":
            steps.reverse()
        elif shape == "last moved" and length > 2:
            steps[-1] += 1  # no longer evenly spaced
        elif shape == "repeated":
            steps.append(steps[0])
        values = [value + (s % 3) for s in steps]
        store.write_points(chunk(run_id, steps, values, series="p"))
        model.update(zip(steps, values, strict=True))
    (s,) = store.read_series(run_id, series=["p"])
    assert s.steps.tolist() == sorted(model)
    np.testing.assert_array_equal(s.values, np.array([model[k] for k in sorted(model)]))
    # Every stored chunk is either implicit (evenly spaced) or carries all its steps.
    for lo, hi, n, blob in query(
        "SELECT c.min_step, c.max_step, c.n, c.steps FROM point_chunks c "
        "JOIN series ON series.id = c.series_id WHERE series.run_id = ?",
        (run_id,),
    ):
        if blob:
            explicit = np.frombuffer(blob, dtype="<i8")
            assert len(explicit) == n and explicit[0] == lo and explicit[-1] == hi
            assert n > 2 and len(set(np.diff(explicit).tolist())) > 1
        else:
            assert n == 1 and lo == hi or n > 1 and (hi - lo) % (n - 1) == 0
