"""downsample_minmax: bounds, kept extremes and non-finite points, speed-relevant shapes."""

from __future__ import annotations

import numpy as np
import pytest
from evalstream_server.store.downsample import downsample_minmax
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

_VALUES = hnp.arrays(
    np.float64,
    st.integers(0, 400),
    elements=st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        st.sampled_from([np.nan, np.inf, -np.inf]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(values=_VALUES, max_points=st.integers(-2, 450))
def test_downsample_properties(values: np.ndarray, max_points: int) -> None:
    n = len(values)
    keep = downsample_minmax(np.arange(n), values, max_points)
    assert keep.dtype == np.int64
    if max_points <= 0 or max_points >= n:
        assert keep.tolist() == list(range(n))
        return
    assert len(keep) <= max_points
    assert np.all(np.diff(keep) > 0) and keep[0] >= 0 and keep[-1] < n
    if max_points >= 2:
        assert keep[0] == 0 and keep[-1] == n - 1
    kept = values[keep]
    finite_or_inf = values[~np.isnan(values)]
    if max_points >= 8 and len(finite_or_inf):
        # Every global max and min (NaN aside, inf included) survives.
        assert np.nanmax(values) in kept and np.nanmin(values) in kept
    if max_points >= 8:
        # Every non-finite point has a kept non-finite point within one bucket width.
        slots = 3 if np.isnan(values).any() else 2
        width = -(-(n - 2) // ((max_points - 2) // slots))
        bad = np.flatnonzero(~np.isfinite(values))
        kept_bad = keep[~np.isfinite(kept)]
        for i in bad:
            assert np.any(np.abs(kept_bad - i) < width), (i, kept_bad, width)
        if np.isnan(values).any():
            assert np.isnan(kept).any()
    # Downsampling the result again to the same budget keeps it.
    again = downsample_minmax(keep, kept, max_points)
    assert again.tolist() == list(range(len(keep)))


def test_downsample_keeps_spike() -> None:
    values = np.ones(100_000)
    values[31_337] = 1e9
    values[77_777] = -1e9
    keep = downsample_minmax(np.arange(len(values)), values, 100)
    assert 31_337 in keep and 77_777 in keep and len(keep) <= 100


def test_downsample_keeps_nan_divergence() -> None:
    values = np.linspace(1.0, 0.1, 10_000)
    values[9_000:] = np.nan
    values[5_000] = np.inf
    keep = downsample_minmax(np.arange(len(values)), values, 50)
    assert len(keep) <= 50
    assert 5_000 in keep and np.isnan(values[keep]).any() and np.isnan(values[keep]).sum() >= 3


@pytest.mark.parametrize("max_points", [1, 2, 3, 4])
def test_downsample_tiny_budgets(max_points: int) -> None:
    keep = downsample_minmax(np.arange(10), np.arange(10.0), max_points)
    assert len(keep) <= max_points and keep[0] == 0


def test_downsample_length_mismatch() -> None:
    with pytest.raises(ValueError, match="3 steps but 2 values"):
        downsample_minmax(np.arange(3), np.zeros(2), 1)


def test_downsample_too_small_for_a_bucket_keeps_nonfinite_and_extremes() -> None:
    # 10 points, a NaN at 2 and +inf at 4: 3 or 4 points leave no room for a bucket of
    # three slots, yet the divergence must show: the first NaN, then the maximum.
    values = np.array([1.0, 0.9, np.nan, 0.7, np.inf, 0.5, 0.4, 0.3, 0.2, 0.1])
    steps = np.arange(10)
    assert downsample_minmax(steps, values, 3).tolist() == [0, 2, 9]
    assert downsample_minmax(steps, values, 4).tolist() == [0, 2, 4, 9]
    assert downsample_minmax(steps, values, 5).tolist() == [0, 2, 4, 8, 9]
    # Without NaN, 4 points: the first, the last, the maximum and the minimum.
    finite = np.array([0.5, 3.0, 0.4, -2.0, 0.3, 0.2])
    assert downsample_minmax(np.arange(6), finite, 4).tolist() == [0, 1, 3, 5]
