"""Skewed entities, ties and point lookups against the brute force (the independent truth).

The engine computes ``distinct`` by interval counting and ``last``/``since_last`` by
as-of joins (not per-window scans), so these tests aim at what those formulations
could get wrong: one entity holding most events, many events per timestamp, values
recurring inside and across windows, nulls, window edges, time units.
"""
from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from bruteforce import close, features_at  # noqa: E402

from mlops.features.compile import compile_plan  # noqa: E402
from mlops.features.offline import compute_at, compute_features  # noqa: E402

T0 = datetime(2024, 1, 1)
SPEC = {"name": "skew", "entity": "user", "timestamp": "ts",
        "windows": [{"column": "v", "aggs": ["distinct", "last", "count", "sum"], "periods": ["3s", "10s"]},
                    {"column": "shop", "aggs": ["distinct", "last"], "periods": ["4s"]},
                    {"aggs": ["since_last"], "periods": ["2s", "6s"]},
                    {"column": "v", "aggs": ["last"], "periods": ["5s"], "name": "v_last_d",
                     "default": -7.0}]}

# one heavy entity ("big") and a few light ones, timestamps from a narrow range (ties)
skewed_events = st.lists(
    st.tuples(st.sampled_from(["big"] * 8 + ["a", "b"]), st.integers(0, 25),
              st.one_of(st.none(), st.integers(0, 4).map(float)),
              st.one_of(st.none(), st.sampled_from(["s1", "s2", "s3"]))),
    min_size=1, max_size=120)


def _frame(rows, unit: str = "us") -> pl.DataFrame:
    return pl.DataFrame({
        "user": [r[0] for r in rows],
        "ts": [T0 + timedelta(seconds=r[1]) for r in rows],
        "v": pl.Series([r[2] for r in rows], dtype=pl.Float64),
        "shop": pl.Series([r[3] for r in rows], dtype=pl.String),
    }).with_columns(pl.col("ts").cast(pl.Datetime(unit)))


def _events(df):
    return [{"user": r["user"], "ts": r["ts"], "v": r["v"], "shop": r["shop"]}
            for r in df.iter_rows(named=True)]


def _check(out: pl.DataFrame, events, plan) -> None:
    for r in out.iter_rows(named=True):
        exp = features_at(events, r["user"], r["ts"], plan.resolved["windows"])
        for name, value in exp.items():
            assert close(value, r[name]), (name, value, r[name], r["user"], r["ts"])


@settings(max_examples=80, deadline=None)
@given(skewed_events)
def test_skewed_ties_and_nulls_equal_brute_force(rows):
    df = _frame(rows)
    plan = compile_plan(SPEC, df.schema)
    out = compute_features(plan, df).collect()
    assert out.height == df.height
    _check(out, _events(df), plan)


@settings(max_examples=60, deadline=None)
@given(skewed_events, st.lists(st.tuples(st.sampled_from(["big", "a", "zz"]), st.integers(0, 40)),
                               min_size=1, max_size=25))
def test_spine_lookups_equal_brute_force(rows, points):
    """Points at event timestamps, between them and past the end; in any order."""
    df = _frame(rows)
    plan = compile_plan(SPEC, df.schema)
    pts = pl.DataFrame({"user": [p[0] for p in points],
                        "ts": [T0 + timedelta(seconds=p[1]) for p in points]}).with_columns(
        pl.col("ts").cast(pl.Datetime("us")))
    for raw_from in ("asof", "points"):
        out = compute_at(plan, df, pts, raw_from=raw_from).collect()
        assert out.select("user", "ts").equals(pts)  # point order kept
        _check(out, _events(df), plan)


def test_distinct_hand_worked_recurring_values_and_ties():
    """Values x, y, x at 0, 1, 2 s, then two y at 3 s; window 3 s."""
    rows = [("big", 0, 1.0, "x"), ("big", 1, 2.0, "y"), ("big", 2, 1.0, "x"),
            ("big", 3, 2.0, "y"), ("big", 3, 2.0, "y"), ("big", 5, None, None), ("big", 6, None, None)]
    out = compute_features(compile_plan(SPEC, _frame(rows).schema), _frame(rows)).collect()
    # t=0: {} | 1: {x} | 2: {x,y} | 3: [0,3) {x,y,x} -> 2 (both rows at 3) | 5: [2,5) {x,y,y} -> 2
    # | 6: [3,6) {y,y} -> 1 (the tie at 3 counted once; the null at 5 not at all)
    assert out["v_distinct_3s"].to_list() == [0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0]
    # 4 s: t=6 sees [2,6) {x,y,y} -> 2
    assert out["shop_distinct_4s"].to_list() == [0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    # last: the latest non-null strictly before t within 5 s, else the default -7
    assert out["v_last_d"].to_list() == [-7.0, 1.0, 2.0, 1.0, 1.0, 2.0, 2.0]
    assert out["events_since_last_2s"].to_list() == [None, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0]


def test_lookup_window_edge_is_inclusive_and_ties_take_input_order():
    """An event exactly ``period`` before t is found; among tied events the last row wins."""
    rows = [("a", 0, 1.0, "s1"), ("a", 0, 2.0, "s2"), ("a", 5, 4.0, "s3"), ("a", 11, 8.0, "s1")]
    out = compute_features(compile_plan(SPEC, _frame(rows).schema), _frame(rows)).collect()
    assert out["v_last_d"].to_list() == [-7.0, -7.0, 2.0, -7.0]  # 0 -> 5 is exactly 5 s
    assert out["shop_last_4s"].to_list() == [None, None, None, None]
    assert out["events_since_last_6s"].to_list() == [None, None, 5.0, 6.0]


@pytest.mark.parametrize("unit", ["ms", "ns"])
def test_other_time_units_equal_microseconds(unit):
    rows = [("big", s % 13, float(s % 3), f"s{s % 4}") for s in range(60)]
    plan_us = compile_plan(SPEC, _frame(rows).schema)
    ref = compute_features(plan_us, _frame(rows)).collect()
    other = _frame(rows, unit)
    got = compute_features(compile_plan(SPEC, other.schema), other).collect()
    names = [w.name for w in plan_us.windows]
    assert got.select(names).equals(ref.select(names))


def test_one_entity_with_thousands_of_events_matches_brute_force_sample():
    """A single entity with 3,000 events over 100 s: heavy overlap of every window."""
    import numpy as np
    rng = np.random.default_rng(11)
    n = 3000
    rows = list(zip(["big"] * n, rng.integers(0, 100, n).tolist(),
                    [None if x < 0.1 else float(int(x * 40)) for x in rng.random(n)],
                    [None if x < 0.05 else f"s{int(x * 30)}" for x in rng.random(n)]))
    df = _frame(rows)
    plan = compile_plan(SPEC, df.schema)
    out = compute_features(plan, df).collect()
    _check(out.sample(150, seed=4), _events(df), plan)
