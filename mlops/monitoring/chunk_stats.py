"""KS and Wasserstein of a chunk of the reference against the whole reference, in O(n log N).

Calibrated limits (:mod:`mlops.monitoring.feature_limits`) compare up to 40 chunks of ``n``
reference values with the whole reference of ``N`` values. Merging each chunk with the
whole costs O(N) per chunk (40 passes over 10M values per feature); here the whole is
sorted once (:class:`SortedWhole`) and each chunk costs a sort of its own ``n`` values and
binary searches into the whole. A chunk is a sub-multiset of the whole, which is what makes
this exact:

* KS: ``sup |F_all - F_chunk|`` is reached at a chunk value or just before one, and both
  are values of the whole (pooled points, where scipy evaluates). The candidates are the
  same integer counts divided the same way as in ``scipy.stats.ks_2samp``, so the
  statistic is equal bit for bit.
* Wasserstein: ``integral |F_chunk - F_all| dx`` piece by piece between consecutive chunk
  values, where ``F_chunk`` is constant and ``F_all`` (non-decreasing) crosses it once. The
  integral of ``F_all`` over an interval is a count times a width minus a block sum of the
  sorted whole; block sums come from prefix sums carried as two floats (an error-free
  running sum: each addition's rounding error is kept and summed apart), of the values
  minus their median, so a block sum is accurate to its own size, not to the size of
  the prefix. Equal to ``scipy.stats.wasserstein_distance`` to about 1e-12 relative.

>>> whole = SortedWhole(np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))
>>> ks_to_whole(whole, np.array([4.0, 5.0])), round(wasserstein_to_whole(whole, np.array([4.0, 5.0])), 12)
(0.6666666666666667, 2.0)
"""
from __future__ import annotations

import numpy as np


class SortedWhole:
    """The sorted whole reference (finite values) and its prefix sums, for chunk statistics.

    ``values`` must be sorted and finite; it is not copied.
    """

    def __init__(self, values: np.ndarray):
        self.values = np.asarray(values, dtype=np.float64)
        self.size = int(self.values.size)
        self._prefix: tuple[float, np.ndarray, np.ndarray] | None = None

    def block_sums(self, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        """``sum(values[start_i:stop_i] - center)`` for each pair (``start_i <= stop_i``), and
        the ``center`` the values were shifted by (their median)."""
        center, hi, lo = self._prefix_sums()
        return (hi[stop] - hi[start]) + (lo[stop] - lo[start])

    @property
    def center(self) -> float:
        return self._prefix_sums()[0]

    def _prefix_sums(self) -> tuple[float, np.ndarray, np.ndarray]:
        if self._prefix is None:
            values = self.values
            center = float(values[values.size // 2]) if values.size else 0.0
            shifted = values - center
            hi = np.empty(values.size + 1, dtype=np.float64)
            hi[0] = 0.0
            np.cumsum(shifted, out=hi[1:])
            # TwoSum: prev + x = s + err exactly, with s = fl(prev + x); the running sum of the
            # errors is the part of the prefix the float prefix lost. (s - hi[1:]) is 0 when
            # cumsum adds left to right, as numpy's does; it keeps the identity if it did not.
            prev = hi[:-1]
            s = prev + shifted
            back = s - prev
            err = (prev - (s - back)) + (shifted - back) + (s - hi[1:])
            lo = np.empty_like(hi)
            lo[0] = 0.0
            np.cumsum(err, out=lo[1:])
            self._prefix = (center, hi, lo)
        return self._prefix


def _pieces(whole: SortedWhole, chunk_sorted: np.ndarray):
    """Distinct chunk values, the chunk's counts at and below each, and the whole's."""
    u = np.unique(chunk_sorted)  # sorted distinct values
    at_or_below = np.searchsorted(chunk_sorted, u, side="right")
    whole_le = np.searchsorted(whole.values, u, side="right")
    whole_lt = np.searchsorted(whole.values, u, side="left")
    return u, at_or_below, whole_le, whole_lt


def ks_to_whole(whole: SortedWhole, chunk_sorted: np.ndarray) -> float:
    """``scipy.stats.ks_2samp(whole, chunk).statistic`` (unrounded) for a chunk whose values
    are values of the whole; ``chunk_sorted`` sorted and finite, non-empty."""
    chunk_sorted = np.asarray(chunk_sorted, dtype=np.float64)
    n_all, n = whole.size, chunk_sorted.size
    _, g, le, lt = _pieces(whole, chunk_sorted)
    below = np.concatenate(([0], g[:-1]))
    at = le / n_all - g / n              # F_all - F_chunk at each chunk value
    before = lt / n_all - below / n      # ... at the whole's last value before it
    max_s = float(before.max())
    min_s = float(np.clip(-at.min(), 0.0, 1.0))
    return max(max_s, min_s)


def wasserstein_to_whole(whole: SortedWhole, chunk_sorted: np.ndarray) -> float:
    """``scipy.stats.wasserstein_distance(whole, chunk)`` (not normed) for a chunk whose
    values are values of the whole; ``chunk_sorted`` sorted and finite, non-empty."""
    chunk_sorted = np.asarray(chunk_sorted, dtype=np.float64)
    a, n_all, n = whole.values, whole.size, chunk_sorted.size
    center = whole.center
    u, g, le, lt = _pieces(whole, chunk_sorted)
    uc = u - center
    # below the first chunk value F_chunk = 0; above the last, F_chunk = 1
    first = lt[0] * uc[0] - whole.block_sums(np.array([0]), lt[:1])[0]
    last = whole.block_sums(le[-1:], np.array([n_all]))[0] - (n_all - le[-1]) * uc[-1]
    if u.size == 1:
        return float((first + last) / n_all)
    lo_x, hi_x, f = u[:-1], u[1:], g[:-1] / n
    # where F_all reaches f: at the whole's value of rank ceil(f * N) (integer arithmetic)
    need = -((-g[:-1] * n_all) // n)
    split = np.clip(a[np.maximum(need - 1, 0)], lo_x, hi_x)
    below = _integral_of_counts(whole, lo_x, split, le[:-1]) / n_all
    above = _integral_of_counts(whole, split, hi_x, None) / n_all
    inner = f * (split - lo_x) - below + above - f * (hi_x - split)
    return float((first + last) / n_all + inner.sum())


def _integral_of_counts(whole: SortedWhole, lo_x: np.ndarray, hi_x: np.ndarray,
                        le_lo: np.ndarray | None) -> np.ndarray:
    """``integral_lo^hi #(whole <= x) dx`` per interval (``lo <= hi``): the count at ``lo``
    times the width, plus ``hi - v`` for every value ``v`` of the whole inside ``(lo, hi)``."""
    a, center = whole.values, whole.center
    if le_lo is None:
        le_lo = np.searchsorted(a, lo_x, side="right")
    lt_hi = np.searchsorted(a, hi_x, side="left")
    inside = np.maximum(lt_hi - le_lo, 0)
    start = np.minimum(le_lo, lt_hi)
    sums = whole.block_sums(start, start + inside)
    out = le_lo * (hi_x - lo_x) + inside * (hi_x - center) - sums
    return np.where(hi_x > lo_x, out, 0.0)
