"""The bounded summary of one loss series that the verdict reads, fed as points commit.

Spikes are judged against the median and MAD (median absolute deviation, scaled
by 1.4826 to a Gaussian sigma) of the preceding block of points: Hampel's
identifier, in causal form. Levels are bucket means of finite, non-spike
points, so that a verdict costs O(buckets), not O(points). Points arrive in
increasing step order; one at or before the last step seen makes the state
stale, and the caller rebuilds it from the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["MAD_TO_SIGMA", "CurveSnapshot", "FloatArray", "IncrementalCurveState"]

FloatArray = npt.NDArray[np.float64]

#: Robust sigma from the MAD of a Gaussian sample.
MAD_TO_SIGMA = 1.4826
_SMALL_SAMPLE = 1.1


@dataclass(frozen=True, slots=True, eq=False)
class CurveSnapshot:
    """What the rules read from one series, in O(buckets).

    Attributes:
        x: Mean step of the good points of each bucket (float64).
        y: Mean of the good (finite, non-spike) values of each bucket.
        y_last: Means of the finite values (spikes included) of the last 3 buckets.
        raw_steps: Every step when the series is short enough to keep raw; else None.
        raw_values: The values with ``raw_steps``; else None.
        count: Points seen.
        first_step: First step (-1 when empty).
        last_step: Last step (-1 when empty).
        first_value: First value (NaN when empty).
        last_value: Last value (NaN when empty).
        first_nonfinite_step: First step with a NaN or infinite value.
        spike_steps: Steps of the spike candidates.
        spike_sigmas: Robust sigmas above the local median of each candidate.
        spike_relative: Relative excess over the local median of each candidate.
    """

    x: FloatArray
    y: FloatArray
    y_last: FloatArray
    raw_steps: np.ndarray | None
    raw_values: FloatArray | None
    count: int
    first_step: int
    last_step: int
    first_value: float
    last_value: float
    first_nonfinite_step: int | None
    spike_steps: np.ndarray
    spike_sigmas: FloatArray
    spike_relative: FloatArray

    def evaluations(self) -> tuple[np.ndarray, FloatArray]:
        """Raw (steps, values) when kept, else the bucket curve (x as int steps, y)."""
        if self.raw_steps is not None and self.raw_values is not None:
            return self.raw_steps, self.raw_values
        return np.rint(self.x).astype(np.int64), self.y


class IncrementalCurveState:
    """Bounded summary of one series, fed with appended points.

    Keeps counts, the first and last steps and values, the first non-finite
    step, at most ``buckets`` buckets of consecutive points (count, sum of the
    good values and of their steps, the same for finite values; adjacent pairs
    merge when full), the spike reference of the last blocks and a capped list
    of spike candidates.

    Not thread-safe on its own; :class:`RunAnalyzer` holds a lock.

    Args:
        buckets: Most buckets kept (even, >= 16); bucket width doubles when full.
        block: Points per spike-reference block (the median of one block is
            the reference of the next).
        pool: Blocks whose robust sigmas are pooled (by their median) into the scale.
        raw_limit: Raw points are kept while the series has at most this many.
        spike_sigma: Points this many sigmas (and ``spike_min_relative``)
            above the reference are left out of the bucket means.
        spike_min_relative: See ``spike_sigma``.
        candidate_sigma: Points this many sigmas above the reference are
            recorded as spike candidates, so that a per-call ``spike_sigma`` at or
            above it is exact.
        max_candidates: Most candidates kept (the weakest half is dropped when full).

    Example:
        >>> state = IncrementalCurveState()
        >>> state.update(np.arange(100), np.linspace(2.0, 1.0, 100))
        True
        >>> state.update(np.array([50]), np.array([1.0]))  # a step already seen
        False
        >>> state.stale, state.count
        (True, 100)
    """

    def __init__(
        self,
        *,
        buckets: int = 1024,
        block: int = 16,
        pool: int = 8,
        raw_limit: int = 8192,
        spike_sigma: float = 6.0,
        spike_min_relative: float = 0.25,
        candidate_sigma: float = 3.0,
        max_candidates: int = 4096,
    ) -> None:
        if buckets < 16 or buckets % 2:
            raise ValueError(f"buckets must be even and >= 16, got {buckets}")
        if block < 4:
            raise ValueError(f"block must be >= 4, got {block}")
        self._cap = buckets
        self._block = block
        self._raw_limit = raw_limit
        self._spike_sigma = spike_sigma
        self._spike_rel = spike_min_relative
        self._cand_sigma = candidate_sigma
        self._max_cand = max_candidates
        self._width = 1
        self._nb = 0
        # Committed buckets: all-point count, good count, good value sum, good step sum.
        self._b_n = np.zeros(buckets, dtype=np.int64)
        self._b_good = np.zeros(buckets, dtype=np.int64)
        self._b_sum = np.zeros(buckets, dtype=np.float64)
        self._b_ssum = np.zeros(buckets, dtype=np.float64)
        # Finite points including spikes (the blow-up rule must see them).
        self._b_fin = np.zeros(buckets, dtype=np.int64)
        self._b_fsum = np.zeros(buckets, dtype=np.float64)
        # The open bucket (fewer than `width` points).
        self._o_n = 0
        self._o_good = 0
        self._o_sum = 0.0
        self._o_ssum = 0.0
        self._o_fin = 0
        self._o_fsum = 0.0
        self.count = 0
        self.first_step = -1
        self.last_step = -1
        self.first_value = math.nan
        self.last_value = math.nan
        self.first_nonfinite_step: int | None = None
        self.stale = False
        self._raw_steps: list[np.ndarray] | None = []
        self._raw_values: list[np.ndarray] | None = []
        self._pending: FloatArray = np.empty(0, dtype=np.float64)
        self._pool = pool
        self._medians: FloatArray = np.empty(0)  # median of the last complete block
        self._sigmas: FloatArray = np.empty(0)  # robust sigmas of the last `pool` blocks
        self._nblocks = 0
        self._c_steps: list[np.ndarray] = []
        self._c_sigma: list[FloatArray] = []
        self._c_rel: list[FloatArray] = []
        self._n_cand = 0

    # -- ingest

    def update(self, steps: npt.ArrayLike, values: npt.ArrayLike) -> bool:
        """Appends points; False (and nothing changes) once stale.

        Points are sorted by step first (the last of equal steps wins, as in
        the store); a step at or before the last step seen makes the state
        stale, since it would rewrite history the summary no longer holds.

        Raises:
            ValueError: The arrays differ in length or are not 1-D.
        """
        s = np.asarray(steps, dtype=np.int64)
        v = np.asarray(values, dtype=np.float64)
        if s.ndim != 1 or v.ndim != 1 or len(s) != len(v):
            raise ValueError(
                f"steps and values must be 1-D of one length, got {s.shape} and {v.shape}"
            )
        if self.stale:
            return False
        if len(s) == 0:
            return True
        if np.any(np.diff(s) <= 0):
            # Stable sort, then keep the last occurrence of each step.
            order = np.argsort(s, kind="stable")
            s, v = s[order], v[order]
            last = np.append(s[1:] != s[:-1], True)
            s, v = s[last], v[last]
        if self.count and s[0] <= self.last_step:
            self.stale = True
            return False
        if self.count == 0:
            self.first_step = int(s[0])
            self.first_value = float(v[0])
        self.last_step = int(s[-1])
        self.last_value = float(v[-1])
        self.count += len(s)
        finite = np.isfinite(v)
        if self.first_nonfinite_step is None and not finite.all():
            self.first_nonfinite_step = int(s[np.argmin(finite)])
        if self._raw_steps is not None and self._raw_values is not None:
            if self.count <= self._raw_limit:
                self._raw_steps.append(s)
                self._raw_values.append(v)
            else:
                self._raw_steps = self._raw_values = None
        good = finite.copy()
        if finite.any():
            idx = np.flatnonzero(finite)
            sigma, rel = self._spike_scores(v[idx])
            strong = (sigma >= self._spike_sigma) & (rel >= self._spike_rel)
            good[idx[strong]] = False
            cand = sigma >= self._cand_sigma
            if cand.any():
                self._add_candidates(s[idx[cand]], sigma[cand], rel[cand])
        self._bucket_add(s, v, good, finite)
        return True

    def _spike_scores(self, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Sigmas and relative excess of each finite value over its block reference.

        A point is judged against the median of the previous complete block and
        the median of the robust sigmas of up to ``pool`` previous blocks (one
        block's MAD is too noisy a scale: its low draws would make false spikes);
        no point is judged before two blocks are complete.
        """
        n = len(v)
        w = self._block
        head = min(w - len(self._pending), n)
        completes = len(self._pending) + head == w
        m = (n - head) // w if completes else 0
        blocks: list[FloatArray] = []
        if completes:
            blocks.append(np.concatenate([self._pending, v[:head]])[None, :])
        if m:
            blocks.append(v[head : head + m * w].reshape(m, w))
        if blocks:
            bm, bs = _block_stats_arrays(np.concatenate(blocks))
        else:
            bm = bs = np.empty(0)
        nb = len(bm)
        # Reference of segment j = the state after j of the new blocks completed.
        all_m = np.concatenate([self._medians, bm])
        all_s = np.concatenate([self._sigmas, bs])
        pm, ps = len(self._medians), len(self._sigmas)
        j = np.arange(nb + 1)
        ref_m = np.full(nb + 1, np.nan)
        have = pm + j - 1 >= 0
        ref_m[have] = all_m[pm + j[have] - 1]
        ref_s = np.full(nb + 1, np.nan)
        total = self._nblocks + j
        end = ps + j  # sigmas available before segment j
        full = (total >= 2) & (end >= self._pool)
        if full.any():
            win = np.lib.stride_tricks.sliding_window_view(all_s, self._pool)
            ref_s[full] = np.median(win[end[full] - self._pool], axis=1)
        for i in np.flatnonzero((total >= 2) & ~full):
            ref_s[i] = np.median(all_s[: end[i]])
        med = np.empty(n)
        sd = np.empty(n)
        med[:head], sd[:head] = ref_m[0], ref_s[0]
        if m:
            med[head : head + m * w] = np.repeat(ref_m[1 : 1 + m], w)
            sd[head : head + m * w] = np.repeat(ref_s[1 : 1 + m], w)
        med[head + m * w :], sd[head + m * w :] = ref_m[nb], ref_s[nb]
        # Keep: the last block median, the last `pool` sigmas, the pending tail.
        if nb:
            self._medians = all_m[-1:]
            self._sigmas = all_s[-self._pool :]
            self._nblocks += nb
            self._pending = v[head + m * w :].copy()
        else:
            self._pending = np.concatenate([self._pending, v[:head]])
        excess = v - med
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = np.where(excess > 0, excess / sd, 0.0)
            rel = np.where(excess > 0, excess / np.abs(med), 0.0)
        sigma = np.nan_to_num(sigma, nan=0.0, posinf=np.inf)
        rel = np.nan_to_num(rel, nan=0.0, posinf=np.inf)
        return sigma, rel

    def _add_candidates(self, steps: np.ndarray, sigma: FloatArray, rel: FloatArray) -> None:
        self._c_steps.append(steps)
        self._c_sigma.append(sigma)
        self._c_rel.append(rel)
        self._n_cand += len(steps)
        if self._n_cand > self._max_cand:
            s, sg, r = self._candidates()
            keep = np.sort(np.argsort(-sg, kind="stable")[: self._max_cand // 2])
            self._c_steps, self._c_sigma, self._c_rel = [s[keep]], [sg[keep]], [r[keep]]
            self._n_cand = len(keep)

    def _candidates(self) -> tuple[np.ndarray, FloatArray, FloatArray]:
        if not self._c_steps:
            return np.empty(0, np.int64), np.empty(0), np.empty(0)
        if len(self._c_steps) > 1:
            self._c_steps = [np.concatenate(self._c_steps)]
            self._c_sigma = [np.concatenate(self._c_sigma)]
            self._c_rel = [np.concatenate(self._c_rel)]
        return self._c_steps[0], self._c_sigma[0], self._c_rel[0]

    def _bucket_add(
        self, s: np.ndarray, v: FloatArray, good: np.ndarray, finite: np.ndarray
    ) -> None:
        n = len(s)
        i = 0
        sf = s.astype(np.float64)
        fz = np.where(finite, v, 0.0)
        vz = np.where(good, v, 0.0)
        sz = np.where(good, sf, 0.0)
        while i < n:
            w = self._width
            if self._o_n or n - i < w:
                take = min(w - self._o_n, n - i)
                sl = slice(i, i + take)
                self._o_n += take
                self._o_good += int(good[sl].sum())
                self._o_sum += float(vz[sl].sum())
                self._o_ssum += float(sz[sl].sum())
                self._o_fin += int(finite[sl].sum())
                self._o_fsum += float(fz[sl].sum())
                i += take
                if self._o_n == w:
                    self._commit()
                continue
            m = min((n - i) // w, self._cap - self._nb)
            sl = slice(i, i + m * w)
            j = slice(self._nb, self._nb + m)
            self._b_n[j] = w
            self._b_good[j] = good[sl].reshape(m, w).sum(axis=1)
            self._b_sum[j] = vz[sl].reshape(m, w).sum(axis=1)
            self._b_ssum[j] = sz[sl].reshape(m, w).sum(axis=1)
            self._b_fin[j] = finite[sl].reshape(m, w).sum(axis=1)
            self._b_fsum[j] = fz[sl].reshape(m, w).sum(axis=1)
            self._nb += m
            i += m * w
            if self._nb == self._cap:
                self._merge()

    def _commit(self) -> None:
        k = self._nb
        self._b_n[k], self._b_good[k] = self._o_n, self._o_good
        self._b_sum[k], self._b_ssum[k] = self._o_sum, self._o_ssum
        self._b_fin[k], self._b_fsum[k] = self._o_fin, self._o_fsum
        self._o_n = self._o_good = self._o_fin = 0
        self._o_sum = self._o_ssum = self._o_fsum = 0.0
        self._nb += 1
        if self._nb == self._cap:
            self._merge()

    def _merge(self) -> None:
        for a in (self._b_n, self._b_good, self._b_sum, self._b_ssum, self._b_fin, self._b_fsum):
            half = a[0::2] + a[1::2]
            a[: self._cap // 2] = half
            a[self._cap // 2 :] = 0
        self._nb = self._cap // 2
        self._width *= 2

    # -- read

    def snapshot(self) -> CurveSnapshot:
        """The bucket curve and scalars the rules need; O(buckets)."""
        nb = self._nb
        good = self._b_good[:nb]
        sums = self._b_sum[:nb]
        ssums = self._b_ssum[:nb]
        if self._o_good:
            good = np.append(good, self._o_good)
            sums = np.append(sums, self._o_sum)
            ssums = np.append(ssums, self._o_ssum)
        fin = self._b_fin[:nb]
        fsums = self._b_fsum[:nb]
        if self._o_fin:
            fin = np.append(fin, self._o_fin)
            fsums = np.append(fsums, self._o_fsum)
        ok = good > 0
        x = ssums[ok] / good[ok]
        y = sums[ok] / good[ok]
        y_last = fsums[fin > 0][-3:] / fin[fin > 0][-3:]
        raw_s = raw_v = None
        if self._raw_steps is not None and self._raw_values is not None and self._raw_steps:
            if len(self._raw_steps) > 1:
                self._raw_steps = [np.concatenate(self._raw_steps)]
                self._raw_values = [np.concatenate(self._raw_values)]
            raw_s, raw_v = self._raw_steps[0], self._raw_values[0]
        cs, csg, cr = self._candidates()
        return CurveSnapshot(
            x=x,
            y=y,
            y_last=y_last,
            raw_steps=raw_s,
            raw_values=raw_v,
            count=self.count,
            first_step=self.first_step,
            last_step=self.last_step,
            first_value=self.first_value,
            last_value=self.last_value,
            first_nonfinite_step=self.first_nonfinite_step,
            spike_steps=cs,
            spike_sigmas=csg,
            spike_relative=cr,
        )


def _block_stats_arrays(blocks: FloatArray) -> tuple[FloatArray, FloatArray]:
    med = np.median(blocks, axis=1)
    mad = np.median(np.abs(blocks - med[:, None]), axis=1)
    # The MAD of a small block is biased low (about 10% at 16 points).
    return med, _SMALL_SAMPLE * MAD_TO_SIGMA * mad
