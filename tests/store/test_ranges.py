"""read_series by step range: exactly the points of the whole series within the range."""

from __future__ import annotations

import numpy as np
import pytest
from evalstream_server.store import InvalidInput, NewRun, PointChunk, SQLiteStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _write(store: SQLiteStore, run_id: str, chunks: list[list[int]], walls: bool) -> None:
    for i, steps in enumerate(chunks):
        values = np.array([i * 1000.0 + s for s in steps])
        wall = np.array([float(s) for s in steps]) if walls and i % 2 else None
        store.write_points(
            PointChunk(run_id, "train", "loss", np.array(steps, dtype=np.int64), values, wall)
        )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.lists(st.lists(st.integers(0, 60), min_size=1, max_size=20), min_size=1, max_size=8),
    bounds=st.tuples(st.integers(0, 70), st.integers(0, 70)),
    walls=st.booleans(),
)
def test_range_is_the_whole_series_cut(
    tmp_path_factory: pytest.TempPathFactory,
    chunks: list[list[int]],
    bounds: tuple[int, int],
    walls: bool,
) -> None:
    # Overlapping chunks, rewritten steps (the latest write wins), wall times on some.
    lo, hi = sorted(bounds)
    store = SQLiteStore(tmp_path_factory.mktemp("r") / "db")
    try:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        _write(store, run_id, chunks, walls)
        (whole,) = store.read_series(run_id)
        (part,) = store.read_series(run_id, start_step=lo, end_step=hi)
    finally:
        store.close()
    keep = (whole.steps >= lo) & (whole.steps <= hi)
    assert part.steps.tolist() == whole.steps[keep].tolist()
    assert part.values.tolist() == whole.values[keep].tolist()
    assert part.total_points == int(keep.sum())
    if whole.wall_times is None:
        assert part.wall_times is None or not keep.any()
    elif part.wall_times is None:  # no chunk read for the range carried wall times
        assert np.isnan(whole.wall_times[keep]).all()
    else:
        np.testing.assert_array_equal(part.wall_times, whole.wall_times[keep])


def test_open_ended_ranges_and_refusals(store: SQLiteStore, run_id: str) -> None:
    store.write_points(
        PointChunk(run_id, "train", "loss", np.arange(10, dtype=np.int64), np.arange(10.0))
    )
    assert store.read_series(run_id, start_step=7)[0].steps.tolist() == [7, 8, 9]
    assert store.read_series(run_id, end_step=1)[0].steps.tolist() == [0, 1]
    assert store.read_series(run_id, start_step=20)[0].total_points == 0
    with pytest.raises(InvalidInput, match="start_step 5 is after end_step 4") as err:
        store.read_series(run_id, start_step=5, end_step=4)
    assert err.value.field == "start_step"
    with pytest.raises(InvalidInput) as neg:
        store.read_series(run_id, end_step=-1)
    assert neg.value.field == "end_step"
