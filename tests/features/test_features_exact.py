"""Exact window sums: correctly rounded, equal between the digit (frames) and the integer
(rows) forms, and independent of the history before the window.

Independent truth: ``fractions.Fraction`` (exact rational arithmetic), ``statistics.stdev``
on small windows.
"""
from __future__ import annotations

import math
import random
import statistics
from datetime import datetime, timedelta
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from mlops.features import exact
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_at, compute_features

SPECIAL = [0.0, -0.0, 1e300, -1e300, 1e-300, 5e-324, 1.7e308, -1.7e308, 2.2250738585072014e-308,
           0.1, 0.2, 0.3, 1e16, 1.0, -1.0]


def _value(rng: random.Random) -> float:
    k = rng.random()
    if k < 0.2:
        return rng.choice(SPECIAL)
    if k < 0.5:
        return round(rng.lognormvariate(3, 2), 2) * rng.choice([1, -1])
    if k < 0.7:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-20, 20)
    return math.ldexp(rng.random(), rng.randint(-1074, 1023)) * rng.choice([1, -1])


def _digit_sums(values: list[float]):
    """The window's digit sums as the frames backend computes them (one window)."""
    x = np.array(values)
    nz = np.abs(x[x != 0])
    first, last = exact.levels(nz.min(), nz.max()) if len(nz) else (0, 0)
    # levels x windows (one window)
    sums = np.array([[int(d.sum())] for d in exact.value_digits(x, first, last)], dtype=np.int64)
    sq_first, sq_last = exact.square_levels(first, last)
    squares = np.array([[int(d.sum())] for d in exact.square_digits(x, sq_first, sq_last)],
                       dtype=np.int64)
    return sums, first, squares, sq_first


def _rounded(fr: Fraction) -> float:
    try:
        return float(fr)
    except OverflowError:
        return math.inf if fr > 0 else -math.inf


def test_digit_and_integer_forms_agree_and_are_correctly_rounded():
    rng = random.Random(7)
    for _ in range(1500):
        values = [_value(rng) for _ in range(rng.randint(1, 12))]
        sums, first, squares, sq_first = _digit_sums(values)
        n = len(values)
        frame_sum = exact.sum_from_digits(sums, first)[0]
        assert exact.exact_sum(values) == frame_sum, values
        truth = _rounded(sum(Fraction(v) for v in values))
        if abs(truth) >= 2.2250738585072014e-308:  # normal range: correctly rounded
            assert frame_sum == truth, values
        assert exact.exact_mean(values) == exact.mean_from_digits(sums, first, np.array([n * 1.0]))[0]
        if n > 1:
            with np.errstate(over="ignore"):
                frame_std = exact.std_from_digits(sums, first, squares, sq_first,
                                                  np.array([n * 1.0]))[0]
            assert exact.exact_std(values) == frame_std, values
            fr = [Fraction(v) for v in values]
            mean = sum(fr) / n
            var = sum((f - mean) ** 2 for f in fr) / (n - 1)
            if Fraction(1, 10 ** 300) < var < Fraction(10 ** 300):
                truth = math.sqrt(float(var))  # exact variance, rounded once, then sqrt
                assert abs(frame_std - truth) <= 4e-16 * truth, (values, frame_std, truth)


def test_equal_values_have_a_std_of_exactly_zero_and_squares_are_exact():
    small = [0.1, 0.2, 0.3, 0.4]  # within two roundings of the correctly rounded value
    assert abs(exact.exact_std(small) - statistics.stdev(small)) <= 4e-16 * statistics.stdev(small)
    for v in (0.1, 1e300, -3.7, 5e-324):
        assert exact.exact_std([v] * 7) == 0.0
        sums, first, squares, sq_first = _digit_sums([v] * 7)
        assert exact.std_from_digits(sums, first, squares, sq_first, np.array([7.0]))[0] == 0.0
    sums, first, squares, sq_first = _digit_sums([3.0, -1e-300, 1e200])
    got = sum(int(d) << ((sq_first + i) * exact.W) for i, d in enumerate(squares[:, 0])
              if sq_first + i >= 0)
    assert got == sum(exact.units(v) ** 2 for v in (3.0, -1e-300, 1e200))


@pytest.mark.parametrize("agg", ["sum", "mean", "std"])
def test_a_window_does_not_depend_on_the_history_before_it(agg):
    """Training computes a window after months of an entity's events; serving after the
    store's last days. The bits must not depend on that (a rolling kernel's running sum
    does: adding and removing 0.1-like values leaves a different last bit)."""
    rng = np.random.default_rng(3)
    n = 4000
    t0 = datetime(2024, 1, 1)
    values = np.round(rng.lognormal(3, 1.5, n), 2) * rng.choice([1, -1, 1e6], n)
    events = pl.DataFrame({"user": ["a"] * n,
                           "ts": [t0 + timedelta(minutes=int(m)) for m in range(n)],
                           "x": values}).with_columns(pl.col("ts").cast(pl.Datetime("us")))
    plan = compile_plan({"name": "w", "entity": "user", "timestamp": "ts",
                         "windows": [{"column": "x", "aggs": [agg], "periods": ["1h"]}]},
                        events.schema)
    full = compute_features(plan, events).collect()[f"x_{agg}_1h"].to_list()
    # the last 200 events, each evaluated over only the hour before it
    for i in range(n - 200, n):
        recent = events.slice(i - 60, 60)
        point = events.slice(i, 1)
        alone = compute_at(plan, recent, point).collect()[f"x_{agg}_1h"][0]
        assert alone == full[i], (i, alone, full[i])
    window = [float(v) for v in values[n - 61:n - 1]]
    want = {"sum": exact.exact_sum, "mean": exact.exact_mean, "std": exact.exact_std}[agg](window)
    assert full[-1] == want
