"""The array window aggregates (``backends/window_arrays.py``) against a brute force.

Each row's window is recomputed from scratch: the rows of its entity with
``t - period <= t_j < t``, events only, values present. Truth: ``fractions.Fraction``
for sums (correctly rounded by ``float``), ``math.fsum`` on the big case, Python's
``min``/``max``/``set`` over the window in time order, and the rows backend's
``exact_mean``/``exact_std`` for the documented mean and std rules. Cases: nulls and
non-events, ties (equal timestamps), extreme values (+-1e300, +-1.7e308, subnormals,
0.0 and -0.0), a time range that needs rank keys, and one entity holding 1M events.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from mlops.features.backends import window_arrays as wa
from mlops.features.exact import exact_mean, exact_std

EXTREME = [1e300, -1e300, 1.7e308, -1.7e308, 5e-324, -5e-324, 1e-300, 0.0, -0.0, 2.5, -3.75,
           0.1, 1e16, 1e16 + 2]


def _compute(run, t, events, x, present, ticks, codes=None):
    bounds = wa.SortedWindows(run, t, max(ticks))
    out = {}
    for p in ticks:
        span = (bounds.start(p), bounds.end)
        out[("count", p)] = wa.window_count(events, *span)
        done = wa.exact_windows(x, present, {p: ["sum", "mean", "std"]}, {p: span})
        for agg in ("sum", "mean", "std"):
            out[(agg, p)] = done[(p, agg)]
        out[("max", p)] = wa.window_extreme(x, present, *span, True)
        out[("min", p)] = wa.window_extreme(x, present, *span, False)
        # equal values, equal codes: -0.0 as 0.0 (as the frames backend codes floats)
        out[("distinct", p)] = wa.window_distinct((x + 0.0).view(np.int64) if codes is None else codes,
                                                  present, bounds, p)
    return out


def _window(run, t, i, p):
    return [j for j in range(len(t)) if run[j] == run[i] and t[i] - p <= t[j] < t[i]]


def _same(a: float, b) -> bool:
    """Bit for bit (None and NaN both mean: no value)."""
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return math.isnan(a)
    return np.float64(a).tobytes() == np.float64(b).tobytes()


def _rounded(total: Fraction) -> float:
    """``total`` correctly rounded (beyond the float range: an infinity)."""
    try:
        return float(total) + 0.0
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def _check_row(out, run, t, events, x, present, i, p):
    rows = _window(run, t, i, p)
    vals = [float(x[j]) for j in rows if present[j]]
    assert out[("count", p)][i] == sum(bool(events[j]) for j in rows)
    assert _same(out[("sum", p)][i], _rounded(sum(map(Fraction, vals), Fraction(0)))), (i, p)
    assert _same(out[("mean", p)][i], exact_mean(vals) if vals else None), (i, p)
    assert _same(out[("std", p)][i], exact_std(vals)), (i, p)
    assert _same(out[("max", p)][i], max(vals) if vals else None), (i, p)
    assert _same(out[("min", p)][i], min(vals) if vals else None), (i, p)
    assert out[("distinct", p)][i] == len(set(vals))


def _random_case(rng, n, entities, span, values):
    run = np.sort(rng.integers(0, entities, n))
    run = np.unique(run, return_inverse=True)[1]  # runs numbered 0, 1, ...
    t = rng.integers(0, span, n)
    order = np.lexsort((t, run))
    run, t = run[order], t[order]
    events = rng.random(n) < 0.85                  # the rest: points, duplicates
    present = events & (rng.random(n) < 0.8)       # null values
    x = np.where(present, rng.choice(values, n), np.nan)
    return run, t, events, x, present


@pytest.mark.parametrize("seed", range(6))
def test_every_aggregate_equals_brute_force_on_nulls_ties_and_extremes(seed):
    rng = np.random.default_rng(seed)
    values = np.array(EXTREME if seed % 2 else [round(v, 2) for v in rng.normal(0, 50, 40)])
    # a time span of 30 ticks over 200 rows: many equal timestamps
    run, t, events, x, present = _random_case(rng, 200, 4, 30, values)
    ticks = [1, 5, 30]
    out = _compute(run, t, events, x, present, ticks)
    for i in range(len(t)):
        for p in ticks:
            _check_row(out, run, t, events, x, present, i, p)


def test_ties_exclude_the_row_and_its_equals():
    run = np.zeros(4, dtype=np.int64)
    t = np.array([0, 5, 5, 6])
    x = np.array([1.0, 2.0, 4.0, 8.0])
    yes = np.ones(4, dtype=bool)
    out = _compute(run, t, yes, x, yes, [5])
    assert out[("sum", 5)].tolist() == [0.0, 1.0, 1.0, 6.0]  # [t - 5, t): 0 is in, 5 is not at 5
    assert out[("count", 5)].tolist() == [0.0, 1.0, 1.0, 2.0]


def test_extreme_keeps_the_earliest_of_equal_zeros():
    run = np.zeros(3, dtype=np.int64)
    yes = np.ones(3, dtype=bool)
    for first, second in ((-0.0, 0.0), (0.0, -0.0)):
        out = _compute(run, np.array([0, 1, 2]), yes, np.array([first, second, -1.0]), yes, [10])
        assert math.copysign(1, out[("max", 10)][2]) == math.copysign(1, first)
        assert math.copysign(1, out[("min", 10)][1]) == math.copysign(1, first)


def test_times_too_wide_for_one_key_use_ranks():
    """Entities x time range beyond 2**62: the rank keys give the same windows."""
    rng = np.random.default_rng(7)
    run, t, events, x, present = _random_case(rng, 150, 3, 40, np.array([1.5, -2.25, 0.0, 7.0]))
    wide = t * (1 << 56)  # the same order, times far apart
    bounds = wa.SortedWindows(run, wide, 5 << 56)
    assert bounds._unique is not None
    narrow = wa.SortedWindows(run, t, 5)
    assert narrow._unique is None
    assert np.array_equal(bounds.start(5 << 56), narrow.start(5))
    assert np.array_equal(bounds.end, narrow.end)
    a = wa.window_distinct(x.view(np.int64), present, bounds, 5 << 56)
    assert np.array_equal(a, wa.window_distinct(x.view(np.int64), present, narrow, 5))


def test_unsorted_rows_are_refused():
    with pytest.raises(ValueError, match="sorted"):
        wa.SortedWindows(np.array([0, 0]), np.array([5, 1]), 3)


def test_empty_frame():
    out = _compute(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, bool),
                   np.zeros(0), np.zeros(0, bool), [5])
    assert all(len(v) == 0 for v in out.values())


@pytest.mark.slow
def test_one_entity_with_a_million_events():
    """One entity holding every event: windows of up to 170k rows, sampled rows checked
    against a brute force over the sorted arrays (fsum for the sum)."""
    rng = np.random.default_rng(11)
    n, day = 1_000_000, 86_400
    t = np.sort(rng.integers(0, 180 * day, n))
    t[1000:1010] = t[1000]  # a run of ties
    run = np.zeros(n, dtype=np.int64)
    events = rng.random(n) < 0.95
    present = events & (rng.random(n) < 0.9)
    x = np.where(present, np.round(rng.lognormal(3.3, 0.8, n), 2), np.nan)
    x[rng.integers(0, n, 50)] = 1e300  # a few huge values in some windows
    codes = rng.integers(0, 500, n)
    ticks = [3600, 30 * day]
    out = _compute(run, t, events, x, present, ticks, codes)
    for i in np.concatenate([rng.integers(0, n, 150), np.arange(995, 1015), [n - 1]]):
        for p in ticks:
            lo, hi = np.searchsorted(t, t[i] - p, "left"), np.searchsorted(t, t[i], "left")
            m = present[lo:hi]
            vals = x[lo:hi][m]
            assert out[("count", p)][i] == events[lo:hi].sum()
            assert out[("sum", p)][i] == math.fsum(vals) + 0.0
            assert _same(out[("mean", p)][i], exact_mean(vals.tolist()) if len(vals) else None)
            assert _same(out[("max", p)][i], vals.max() if len(vals) else None)
            assert _same(out[("min", p)][i], vals.min() if len(vals) else None)
            assert out[("distinct", p)][i] == len(set(codes[lo:hi][m].tolist()))
    std = out[("std", 30 * day)][n - 1]
    lo, hi = np.searchsorted(t, t[-1] - 30 * day), np.searchsorted(t, t[-1])
    vals = x[lo:hi][present[lo:hi]]
    assert _same(std, exact_std(vals.tolist()))
