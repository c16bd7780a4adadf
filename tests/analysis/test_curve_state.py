"""IncrementalCurveState: bounded buckets, sorted chunks, staleness."""

from __future__ import annotations

import numpy as np
from evalstream_server.analysis.curve_state import IncrementalCurveState


def test_incremental_bucket_merging_keeps_bounded_state() -> None:
    state = IncrementalCurveState(buckets=64)
    steps = np.arange(100_000)
    assert state.update(steps[:50_001], np.ones(50_001))
    assert state.update(steps[50_001:], np.ones(49_999))
    snap = state.snapshot()
    assert 32 <= len(snap.x) <= 65 and snap.raw_steps is None and state.count == 100_000
    assert snap.x[0] < snap.x[-1] and np.allclose(snap.y, 1.0)


def test_unsorted_chunk_is_sorted_last_write_wins() -> None:
    state = IncrementalCurveState()
    assert state.update(np.array([3, 1, 2, 3]), np.array([9.0, 1.0, 2.0, 3.0]))
    assert (state.first_step, state.last_step, state.last_value, state.count) == (1, 3, 3.0, 3)
