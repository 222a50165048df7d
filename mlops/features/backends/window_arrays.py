"""Window aggregates over ``[t - period, t)`` as array operations on rows sorted by
(entity, time), every entity at once (numpy, no per-entity loop).

Each row's window is a range of rows ``[start, end)``. One integer *time key* orders
(entity, time) (:class:`SortedWindows`): ``end`` is the first row of the row's own
(entity, time) group (the row and its ties excluded), ``start`` the first row of the
entity at or after ``t - period``, one ``np.searchsorted`` per period. Rows that are not
events (evaluation points, duplicates, invalid records) are in the ranges but add
nothing. Then, for n rows whatever the entities' sizes:

- ``count``: a prefix sum of the event flag, O(n);
- ``sum``, ``mean``, ``std``: prefix sums of each value's exact integer digits
  (:mod:`mlops.features.exact`): an integer difference is the window's exact digit sum,
  rounded once, so the result is the exact sum's, bit for bit the rows backend's, O(n)
  per digit level;
- ``min``, ``max``: a disjoint sparse table, O(n log n): ``[start, end)`` splits at one
  multiple of a power of two into a block suffix and a block prefix
  (:func:`window_extreme`); equal extremes (0.0 and -0.0) resolve to the earliest in
  time order, as Python's ``max``;
- ``distinct``: interval counting (:func:`window_distinct`), O(n log n).

Example:
    >>> import numpy as np
    >>> w = SortedWindows(np.array([0, 0, 0, 1]), np.array([0, 5, 5, 6]), max_ticks=10)
    >>> w.start(5).tolist(), w.end.tolist()
    ([0, 0, 0, 3], [0, 1, 1, 3])
"""
from __future__ import annotations

import numpy as np

from mlops.features import exact

CHUNK = 1 << 18  # rows rounded at a time: bounds the memory of the digit matrices


class SortedWindows:
    """Window bounds of rows sorted by (``run``, ``t``): ``run`` numbers the entities in
    order (0, 1, ...), ``t`` the integer times (ticks; no nulls), ``max_ticks`` the
    longest period in ticks."""

    def __init__(self, run: np.ndarray, t: np.ndarray, max_ticks: int):
        self.run, self.t, self.n = run.astype(np.int64), t.astype(np.int64), len(t)
        self._unique, self._origin, self._stride = None, 0, 1
        if self.n:
            lo, hi = int(self.t.min()), int(self.t.max())
            self._origin = lo - max_ticks
            self._stride = hi - lo + 2 * max_ticks + 1  # times in [t - p, t + p] stay in band
            if (int(self.run[-1]) + 1) * self._stride >= 1 << 62:
                self._unique = np.unique(self.t)  # ranks of times instead of times
        self.key = self.keys(self.run, self.t)
        if self.n and (np.diff(self.key) < 0).any():
            raise ValueError("window rows must be sorted by (entity, time)")
        group = np.ones(self.n, dtype=bool)
        group[1:] = self.key[1:] != self.key[:-1]
        self.end = np.maximum.accumulate(np.where(group, np.arange(self.n), 0))

    def keys(self, run: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Keys of ``times`` in the entities ``run``: for one entity, ``key(x) < key(y)``
        exactly when ``x < y``; every key of an entity is above every row key of the
        entities before it and below those after it."""
        if self._unique is None:
            return run * self._stride + (times - self._origin)
        # rank r(x) = #{times <= x} - 1: x < t_i  <=>  r(x) < r(t_i) for a row time t_i
        return run * (len(self._unique) + 1) + np.searchsorted(self._unique, times, "right") - 1

    def start(self, ticks: int) -> np.ndarray:
        """First row of each row's window ``[t - ticks, t)``."""
        return np.searchsorted(self.key, self.keys(self.run, self.t - ticks), "left")


def prefix(flags: np.ndarray) -> np.ndarray:
    """``out[i]`` = the sum of ``flags[:i]`` (length n + 1, int64)."""
    out = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=out[1:])
    return out


def window_count(present: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Number of ``present`` rows in each window (float64)."""
    p = prefix(present)
    return (p[end] - p[start]).astype(np.float64)


def _digit_prefixes(digits: list[np.ndarray]) -> np.ndarray:
    """levels x (n + 1): prefix sums of each digit level (int64, wrapping: a difference
    is exact whenever the window's own sum fits, which the digit width guarantees)."""
    out = np.zeros((len(digits), len(digits[0]) + 1 if digits else 1), dtype=np.int64)
    for k, d in enumerate(digits):
        np.cumsum(d, out=out[k, 1:])
    return out


def value_levels(x: np.ndarray, present: np.ndarray) -> tuple[int, int]:
    """Digit levels holding the present values (any superset gives the same sums)."""
    mags = np.abs(x[present])
    mags = mags[(mags > 0) & np.isfinite(mags)]
    return exact.levels(*((mags.min(), mags.max()) if len(mags) else (1.0, 1.0)))


def exact_windows(x: np.ndarray, present: np.ndarray, aggs: dict[str, list[str]],
                  bounds: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Exact ``sum``/``mean``/``std`` of ``x`` over windows: ``aggs`` maps a window key to
    its aggregates, ``bounds`` the key to (start, end). Returns ``{(key, agg): values}``
    with NaN where undefined (a mean without values, a std below two). Windows holding
    one value or none (most short windows) need no digits: their sum and mean are that
    value (or 0 and NaN); only the others go through the digit sums."""
    counts = prefix(present)
    last = np.maximum.accumulate(np.where(present, np.arange(len(present)), -1)) if len(present) else None
    digits = None
    out = {}
    for key, names in aggs.items():
        start, end = bounds[key]
        n = counts[end] - counts[start]
        done = _few_values(names, x, last, n, end)
        many = np.flatnonzero(n >= 2)
        if len(many):
            digits = digits or _digit_sums(x, present, any("std" in a for a in aggs.values()))
            s, e = start[many], end[many]
            parts = [_finish_exact(names, *digits, counts, s[a:a + CHUNK], e[a:a + CHUNK])
                     for a in range(0, len(many), CHUNK)]
            for name in names:
                done[name][many] = np.concatenate([p[name] for p in parts])
        out.update({(key, name): done[name] for name in names})
    return out


def _few_values(names: list[str], x: np.ndarray, last: np.ndarray | None, n: np.ndarray,
                end: np.ndarray) -> dict[str, np.ndarray]:
    """Sum, mean and std of windows of one value or none (others: to be filled): the
    value itself is its exact sum and mean (-0.0 as 0.0, as the digit sums give)."""
    one = np.flatnonzero(n == 1)
    value = np.zeros(len(n))
    value[one] = x[last[end[one] - 1]] + 0.0 if len(one) else 0.0
    out = {}
    if "sum" in names:
        out["sum"] = value.copy()
    if "mean" in names:
        out["mean"] = np.where(n == 1, value, np.nan)
    if "std" in names:
        out["std"] = np.full(len(n), np.nan)
    return out


def _digit_sums(x: np.ndarray, present: np.ndarray, need_sq: bool) -> tuple:
    """(value digit prefix sums, square digit prefix sums or None, first value level,
    square levels or None) of the present values."""
    first, last = value_levels(x, present)
    xs = np.where(present, x, 0.0)
    values = _digit_prefixes(exact.value_digits(xs, first, last))
    if not need_sq:
        return values, None, first, None
    sq_levels = exact.square_levels(first, last)
    return values, _digit_prefixes(exact.square_digits(xs, *sq_levels)), first, sq_levels


def _finish_exact(names, values, squares, first, sq_levels, counts, start, end) -> dict:
    """One chunk of rows: window digit sums by differences (levels x rows), then one
    rounding."""
    n = (counts[end] - counts[start]).astype(np.float64)
    sums = np.stack([p[end] - p[start] for p in values])
    out = {}
    if "sum" in names or "mean" in names:
        total, mean = exact.sums_and_means(sums, first, np.maximum(n, 1.0))
        out["sum"], out["mean"] = total, np.where(n == 0, np.nan, mean)
    if "std" in names:
        sq = np.stack([p[end] - p[start] for p in squares])
        std = exact.std_from_digits(sums, first, sq, sq_levels[0], np.maximum(n, 2.0))
        out["std"] = np.where(n < 2, np.nan, std)
    return out


def window_extreme(x: np.ndarray, present: np.ndarray, start: np.ndarray, end: np.ndarray,
                   largest: bool) -> np.ndarray:
    """Largest (or smallest) present value of each window ``[start, end)``; NaN when the
    window holds none. Of equal values (0.0 and -0.0) the earliest row's is returned."""
    sign = 1.0 if largest else -1.0
    y = np.where(present, sign * x + 0.0, -np.inf)  # max of sign * x; -0.0 compares as 0.0
    best = _range_max(y, start, end)
    out = sign * best
    counts = prefix(present)
    out[counts[end] == counts[start]] = np.nan
    zero = np.flatnonzero(best == 0.0)
    if len(zero):  # the sign of a zero extreme: the earliest zero in the window
        rows = np.where(present & (x == 0.0), np.arange(len(x)), len(x))
        first_zero = np.minimum.accumulate(rows[::-1])[::-1]
        out[zero] = x[first_zero[start[zero]]]
    return out


def _range_max(y: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``max(y[start:end])`` per query (-inf when empty), by a disjoint sparse table.

    For ``s < l = end - 1`` let ``h`` be the highest bit where ``s`` and ``l`` differ and
    ``m = l`` with its bits below ``h`` cleared: ``s`` lies in the block of size 2^h
    ending at ``m`` and ``l`` in the one starting there, so the maximum is that of the
    suffix of ``s``'s block and the prefix of ``l``'s. Level h's block prefixes and
    suffixes come from level h - 1's in place (two arrays alive at any time)."""
    out = np.full(len(start), -np.inf)
    last = end - 1
    single = np.flatnonzero(end - start == 1)
    out[single] = y[start[single]]
    multi = np.flatnonzero(end - start > 1)
    if not len(multi):
        return out
    s, e = start[multi], last[multi]
    level = np.frexp((s ^ e).astype(np.float64))[1] - 1  # highest differing bit
    order = np.argsort(level, kind="stable")
    cuts = np.searchsorted(level[order], np.arange(int(level.max()) + 2))
    top = int(level.max())
    size = -(-len(y) // (1 << top)) * (1 << top)
    pre = np.full(size, -np.inf)
    pre[:len(y)] = y
    suf = pre.copy()
    for h in range(top + 1):
        if h:
            half = 1 << (h - 1)
            p3, s3 = pre.reshape(-1, 2, half), suf.reshape(-1, 2, half)
            np.maximum(p3[:, 1, :], p3[:, 0, -1:], out=p3[:, 1, :])
            np.maximum(s3[:, 0, :], s3[:, 1, :1], out=s3[:, 0, :])
        q = order[cuts[h]:cuts[h + 1]]
        out[multi[q]] = np.maximum(suf[s[q]], pre[e[q]])
    return out


def window_distinct(codes: np.ndarray, present: np.ndarray, windows: SortedWindows,
                    ticks: int) -> np.ndarray:
    """Distinct present ``codes`` (equal values, equal codes) in each window (float64).

    Order the events of one (entity, code) pair by time and let ``prev_j`` be the time
    of the pair's event before ``j``. Event ``j`` is the first of its value in the
    window of ``t`` exactly when ``t`` lies in ``(a_j, b_j]`` with
    ``a_j = max(t_j, prev_j + p)`` (at most ``b_j``) and ``b_j = t_j + p``; each value in
    a window has one first event, so the count is ``#{a_j < t} - #{b_j < t}`` within the
    entity: two searchsorted calls on the interval ends' keys (the entities before
    contribute as many ``a`` as ``b``)."""
    rows = np.flatnonzero(present)
    run, t, code = windows.run[rows], windows.t[rows], codes[rows]
    order = _pair_order(run, code)  # stable: a pair's events stay in time order
    r, c = run[order], code[order]
    same = np.zeros(len(rows), dtype=bool)
    same[1:] = (r[1:] == r[:-1]) & (c[1:] == c[:-1])
    after = np.zeros(len(rows), dtype=np.int64)  # a_j - t_j, in [0, p]
    ts = t[order]
    after[1:] = np.where(same[1:], np.clip(ts[:-1] + ticks - ts[1:], 0, ticks), 0)
    opens = np.sort(windows.keys(r, ts + after))
    closes = windows.keys(run, t + ticks)  # already sorted: rows are
    key = windows.key
    return (np.searchsorted(opens, key, "left") - np.searchsorted(closes, key, "left")).astype(np.float64)


def _pair_order(run: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Stable order of rows by (run, code)."""
    if len(code) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(code.min()), int(code.max())
    if (int(run.max()) + 1) * (hi - lo + 1) < 1 << 62:
        return np.argsort(run * (hi - lo + 1) + (code - lo), kind="stable")
    return np.lexsort((code, run))


def entity_blocks(run: np.ndarray, size: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` blocks of rows sorted by ``run`` (entity numbers), each about ``size``
    rows and cut only where the entity changes (an entity bigger than ``size`` is one
    block): windows never cross an entity, so each block is computed on its own."""
    n = len(run)
    if n <= size:
        return [(0, n)] if n else []
    starts = np.flatnonzero(run[1:] != run[:-1]) + 1
    cuts = np.unique(starts[np.minimum(np.searchsorted(starts, np.arange(size, n, size)), len(starts) - 1)]) \
        if len(starts) else np.zeros(0, dtype=np.int64)
    edges = [0, *cuts.tolist(), n]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
