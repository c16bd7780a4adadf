"""Min-max downsampling of a curve for charts, keeping spikes and non-finite points visible.

The classic min-max decimation (as in plotting libraries, e.g. the "MinMax"
downsampler of tsdownsample / plotly-resampler): split the points into buckets of
consecutive points and keep each bucket's minimum and maximum, so that a loss
spike survives any reduction (unlike striding or averaging, which hide it).

Non-finite values are evidence of divergence and must stay visible: ±inf are a
bucket's max or min and so are kept by construction; when the curve has NaNs, each
bucket gets a third slot that keeps its first NaN. The first and last points are
always kept.
"""

from __future__ import annotations

import numpy as np


def downsample_minmax(steps: np.ndarray, values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` points that keep the curve's shape.

    Buckets are runs of consecutive points (in the given, step, order) of equal
    size; per bucket the min and the max of the non-NaN values (±inf included)
    are kept, plus its first NaN when the curve has any. The result is sorted,
    unique, includes the first and last index, and contains every global min and
    max value (of the non-NaN values). ``max_points <= 0`` or ``>= len(values)``
    keeps everything.

    Args:
        steps: The steps, one per value (only their count is used: points are
            taken to be sorted by step already).
        values: The values.
        max_points: The largest number of indices to return.

    Returns:
        An int64 array of indices into ``steps``/``values``.

    Raises:
        ValueError: ``steps`` and ``values`` differ in length or are not 1-D.

    >>> values = np.array([0.0, 1.0, 9.0, 2.0, 3.0, -5.0, 4.0, np.nan, 5.0, 6.0])
    >>> downsample_minmax(np.arange(10), values, 8).tolist()
    [0, 1, 2, 5, 7, 8, 9]
    >>> downsample_minmax(np.arange(10), values, 0).tolist() == list(range(10))
    True
    >>> downsample_minmax(np.arange(10), values, 4).tolist()  # the NaN and the maximum
    [0, 2, 7, 9]
    """
    steps = np.asarray(steps)
    values = np.asarray(values, dtype=np.float64)
    if steps.ndim != 1 or values.ndim != 1:
        raise ValueError(
            f"steps and values must be 1-D, got shapes {steps.shape} and {values.shape}"
        )
    n = len(values)
    if len(steps) != n:
        raise ValueError(f"{len(steps)} steps but {n} values")
    if max_points <= 0 or max_points >= n:
        return np.arange(n, dtype=np.int64)
    if max_points == 1:
        return np.array([0], dtype=np.int64)

    nan = np.isnan(values)
    any_nan = bool(nan.any())
    slots = 3 if any_nan else 2
    interior = n - 2  # points 1 .. n-2; the first and last are kept apart
    buckets = (max_points - 2) // slots
    inner = values[1 : n - 1]
    inner_nan = nan[1 : n - 1]
    if any_nan:
        # NaN never wins a min or a max: it has its own slot.
        hi = np.where(inner_nan, -np.inf, inner)
        lo = np.where(inner_nan, np.inf, inner)
    else:
        hi = lo = inner
    if buckets < 1:
        # Too few points for one bucket: the first and last, then what the room
        # allows of the first NaN, the maximum and the minimum (a spike or an
        # infinity must not vanish from a small chart).
        extra = [1 + int(inner_nan.argmax())] if inner_nan.any() else []
        extra += [1 + int(hi.argmax()), 1 + int(lo.argmin())]
        kept = [0, n - 1, *list(dict.fromkeys(extra))[: max_points - 2]]
        return np.unique(np.array(kept, dtype=np.int64))
    width = -(-interior // buckets)  # ceil: at most `buckets` buckets, the last one shorter
    picks = [np.array([0, n - 1], dtype=np.int64)]
    # Full buckets as a (rows, width) view (no copy); argmax/argmin take the first of ties.
    rows = interior // width
    base = 1 + np.arange(rows, dtype=np.int64) * width
    cut = rows * width
    picks.append(base + hi[:cut].reshape(rows, width).argmax(axis=1))
    picks.append(base + lo[:cut].reshape(rows, width).argmin(axis=1))
    if any_nan:
        grid = inner_nan[:cut].reshape(rows, width)
        picks.append((base + grid.argmax(axis=1))[grid.any(axis=1)])
    if cut < interior:  # the last, shorter bucket
        rest = slice(cut, interior)
        extra = [int(hi[rest].argmax()), int(lo[rest].argmin())]
        if any_nan and inner_nan[rest].any():
            extra.append(int(inner_nan[rest].argmax()))
        picks.append(1 + cut + np.array(extra, dtype=np.int64))
    return np.unique(np.concatenate(picks))
