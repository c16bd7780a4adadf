"""read_page: pages of at most N points that, laid end to end, are read_series exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from evalstream_server.store import InvalidInput, NewRun, PointChunk, SQLiteStore
from evalstream_server.store.sqlite import _reads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _pages(
    store: SQLiteStore, run_id: str, size: int, lo: int | None, hi: int | None
) -> list[tuple[str, str, list[int], list[float]]]:
    """Every page of ``size`` points, glued back into (split, name, steps, values)."""
    out: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    after = None
    while True:
        page = store.read_page(run_id, start_step=lo, end_step=hi, after=after, limit=size + 1)
        points = sum(len(s.steps) for s in page)
        assert points <= size + 1
        if points > size:  # as the servicer does: the extra point starts the next page
            last = page[-1]
            after = (last.split, last.name, int(last.steps[-1]))
            page[-1] = type(last)(last.split, last.name, last.steps[:-1], last.values[:-1], None, 0)
        for s in page:
            steps, values = out.setdefault((s.split, s.name), ([], []))
            steps.extend(s.steps.tolist())
            values.extend(s.values.tolist())
        if points <= size:
            return [(k[0], k[1], v[0], v[1]) for k, v in out.items()]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunks=st.lists(
        st.tuples(
            st.sampled_from([("train", "loss"), ("train", "lr"), ("validation", "loss")]),
            st.lists(st.integers(0, 60), min_size=1, max_size=20),
        ),
        min_size=1,
        max_size=10,
    ),
    bounds=st.tuples(st.one_of(st.none(), st.integers(0, 70)), st.integers(0, 70)),
    size=st.integers(1, 25),
)
def test_pages_glued_are_the_series(
    tmp_path_factory: pytest.TempPathFactory,
    chunks: list[tuple[tuple[str, str], list[int]]],
    bounds: tuple[int | None, int],
    size: int,
) -> None:
    # Overlapping chunks and rewritten steps (the latest write wins) across three series.
    lo, hi = bounds
    if lo is not None and lo > hi:
        lo, hi = hi, lo
    store = SQLiteStore(tmp_path_factory.mktemp("p") / "db")
    try:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        for i, ((split, name), steps) in enumerate(chunks):
            values = np.array([i * 1000.0 + s for s in steps])
            store.write_points(
                PointChunk(run_id, split, name, np.array(steps, dtype=np.int64), values)
            )
        whole = store.read_series(run_id, start_step=lo, end_step=hi)
        glued = _pages(store, run_id, size, lo, hi)
        count = store.count_points(run_id, start_step=lo, end_step=hi)
    finally:
        store.close()
    assert glued == [(s.split, s.name, s.steps.tolist(), s.values.tolist()) for s in whole]
    assert count == sum(len(s.steps) for s in whole)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(st.integers(0, 200), min_size=1, max_size=80, unique=True),
    cuts=st.lists(st.integers(1, 79), max_size=8),
    order=st.randoms(use_true_random=False),
    overlap=st.booleans(),
    bounds=st.tuples(st.one_of(st.none(), st.integers(0, 210)), st.integers(0, 210)),
    size=st.integers(1, 30),
)
def test_pages_of_disjoint_chunks(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[int],
    cuts: list[int],
    order,  # type: ignore[no-untyped-def]
    overlap: bool,
    bounds: tuple[int | None, int],
    size: int,
) -> None:
    # Sorted steps cut into disjoint chunks written in any order (the fast path of
    # the page read), and, with ``overlap``, one more chunk rewriting a few of them.
    lo, hi = bounds
    if lo is not None and lo > hi:
        lo, hi = hi, lo
    steps = sorted(steps)
    edges = sorted({0, len(steps), *(c for c in cuts if c < len(steps))})
    pieces = [steps[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    order.shuffle(pieces)
    if overlap:
        pieces.append(steps[:: max(1, len(steps) // 3)])
    store = SQLiteStore(tmp_path_factory.mktemp("d") / "db")
    try:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        for i, piece in enumerate(pieces):
            values = np.array([i * 1000.0 + s for s in piece])
            store.write_points(
                PointChunk(run_id, "train", "loss", np.array(piece, dtype=np.int64), values)
            )
        whole = store.read_series(run_id, start_step=lo, end_step=hi)
        glued = _pages(store, run_id, size, lo, hi)
        count = store.count_points(run_id, start_step=lo, end_step=hi)
    finally:
        store.close()
    assert glued == [(s.split, s.name, s.steps.tolist(), s.values.tolist()) for s in whole]
    assert count == sum(len(s.steps) for s in whole)


def test_page_reads_only_the_chunks_it_needs(tmp_path: Path) -> None:
    # 100 chunks of 1,000 steps: a page of 1,500 points from step 50,000 decodes 2 or 3.
    store = SQLiteStore(tmp_path / "db")
    try:
        run_id = store.create_run(NewRun(project="p", name="r")).id
        for c in range(100):
            steps = np.arange(c * 1000, (c + 1) * 1000, dtype=np.int64)
            store.write_points(PointChunk(run_id, "train", "loss", steps, steps * 0.5))
    finally:
        store.close()
    conn = sqlite3.connect(tmp_path / "db")
    decoded: list[int] = []
    real = _reads._decode_chunk

    def counting(row):  # type: ignore[no-untyped-def]
        decoded.append(row[0])
        return real(row)

    sid = conn.execute("SELECT id FROM series").fetchone()[0]
    _reads._decode_chunk = counting  # type: ignore[assignment]
    try:
        steps, values, _ = _reads._head(conn, sid, 50_000, 2**63 - 1, 1500)
    finally:
        _reads._decode_chunk = real  # type: ignore[assignment]
        conn.close()
    assert steps.tolist() == list(range(50_000, 51_500))
    assert values.tolist() == [s * 0.5 for s in range(50_000, 51_500)]
    assert len(set(decoded)) <= 3


def test_read_page_refusals(store: SQLiteStore, run_id: str) -> None:
    with pytest.raises(InvalidInput) as err:
        store.read_page(run_id, limit=0)
    assert err.value.field == "limit"
    with pytest.raises(InvalidInput) as err:
        store.read_page(run_id, start_step=5, end_step=4, limit=3)
    assert err.value.field == "start_step"
    with pytest.raises(InvalidInput) as err:
        store.read_page(run_id, after=("train", "loss", -1), limit=3)
    assert err.value.field == "after"
