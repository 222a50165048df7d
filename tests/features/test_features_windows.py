"""Window features against a brute-force re-computation (the independent truth)."""
from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from bruteforce import close, features_at  # noqa: E402

from mlops.features.compile import compile_plan  # noqa: E402
from mlops.features.offline import compute_at, compute_features  # noqa: E402

T0 = datetime(2024, 1, 1)
ALL_AGGS = ["count", "sum", "mean", "min", "max", "std", "distinct", "last", "since_last"]
SPEC = {
    "name": "prop", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"], "categorical": ["shop"],
    "windows": [
        {"column": "amount", "aggs": ALL_AGGS, "periods": ["5s", "30s"]},
        {"column": "amount", "aggs": ["mean"], "periods": ["10s"], "name": "m10", "default": -1.0},
        {"column": "shop", "aggs": ["distinct", "last"], "periods": ["20s"]},
    ],
    "derived": [{"name": "ratio", "expr": "amount / (amount_mean_30s + 1)"},
                {"name": "dbl", "expr": "ratio * 2"}],
}

events_strategy = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 60),
              st.one_of(st.none(), st.floats(0, 100, allow_nan=False).map(lambda x: round(x, 3))),
              st.sampled_from(["s1", "s2", "s3"])),
    min_size=1, max_size=40)


def _frame(rows) -> pl.DataFrame:
    return pl.DataFrame({
        "user": [r[0] for r in rows],
        "ts": [T0 + timedelta(seconds=r[1]) for r in rows],
        "amount": pl.Series([r[2] for r in rows], dtype=pl.Float64),
        "shop": [r[3] for r in rows],
    }).with_columns(pl.col("ts").cast(pl.Datetime("us")))


def _plan(df):
    return compile_plan({**SPEC, "entity": "user", "timestamp": "ts"}, df.schema)


def _events(df):
    return [{"user": r["user"], "ts": r["ts"], "amount": r["amount"], "shop": r["shop"]}
            for r in df.iter_rows(named=True)]


def _expected(events, user, t, plan, amount):
    exp = features_at(events, user, t, plan.resolved["windows"])
    if amount is not None:
        exp["ratio"] = None if exp["amount_mean_30s"] is None else amount / (exp["amount_mean_30s"] + 1)
        exp["dbl"] = None if exp["ratio"] is None else exp["ratio"] * 2
    return exp


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_batch_windows_equal_brute_force(rows):
    df = _frame(rows)
    plan = _plan(df)
    out = compute_features(plan, df).collect()
    assert out.height == df.height
    events = _events(df)
    for r in out.iter_rows(named=True):
        exp = _expected(events, r["user"], r["ts"], plan, r["amount"])
        for name, value in exp.items():
            assert close(value, r[name]), (name, value, r[name], r["user"], r["ts"])


@settings(max_examples=40, deadline=None)
@given(events_strategy, st.lists(st.tuples(st.sampled_from(["a", "b", "z"]), st.integers(0, 70)),
                                 min_size=1, max_size=10))
def test_spine_points_equal_brute_force(rows, points):
    """Evaluation points that are not events (a label spine) see only strictly earlier data."""
    df = _frame(rows)
    plan = _plan(df)
    pts = pl.DataFrame({"user": [p[0] for p in points],
                        "ts": [T0 + timedelta(seconds=p[1]) for p in points]}).with_columns(
        pl.col("ts").cast(pl.Datetime("us")))
    out = compute_at(plan, df, pts, raw_from="asof").collect()
    assert out.height == pts.height
    assert out["user"].to_list() == pts["user"].to_list()  # point order kept
    events = _events(df)
    for r in out.iter_rows(named=True):
        before = [e for e in events if e["user"] == r["user"] and e["ts"] < r["ts"]]
        last = max(before, key=lambda e: e["ts"], default=None)
        # as-of backward, strict: the latest earlier event (last in input order among ties)
        if last is not None:
            last = [e for e in before if e["ts"] == last["ts"]][-1]
        assert r["amount"] == (last["amount"] if last else None)
        exp = _expected(events, r["user"], r["ts"], plan, r["amount"])
        for name, value in exp.items():
            assert close(value, r[name]), (name, value, r[name])


def test_ties_are_excluded_hand_worked():
    """Three events at the same second: none sees the others; the next second sees all."""
    df = _frame([("a", 0, 1.0, "s1"), ("a", 0, 2.0, "s1"), ("a", 0, 4.0, "s2"), ("a", 1, 8.0, "s1")])
    out = compute_features(_plan(df), df).collect()
    assert out["events_count_5s"].to_list() == [0.0, 0.0, 0.0, 3.0]
    assert out["amount_sum_5s"].to_list() == [0.0, 0.0, 0.0, 7.0]
    assert out["amount_mean_5s"].to_list()[:3] == [None, None, None]
    assert out["m10"].to_list() == [-1.0, -1.0, -1.0, 7.0 / 3]  # configured empty-window default
    assert out["shop_distinct_20s"].to_list() == [0.0, 0.0, 0.0, 2.0]
    assert out["events_since_last_30s"].to_list() == [None, None, None, 1.0]


def test_window_boundary_is_half_open():
    """An event exactly `period` before t is inside [t - period, t)."""
    df = _frame([("a", 0, 1.0, "s1"), ("a", 5, 2.0, "s1"), ("a", 6, 4.0, "s1")])
    out = compute_features(_plan(df), df).collect()
    assert out["amount_sum_5s"].to_list() == [0.0, 1.0, 2.0]


def test_many_entities_align_with_brute_force():
    """Hundreds of entities whose string order differs from numeric order: polars emits
    rolling groups in its own order, so alignment must not rely on it."""
    import numpy as np
    rng = np.random.default_rng(7)
    n = 6000
    df = pl.DataFrame({
        "user": rng.integers(0, 400, n).astype(str),
        "ts": [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 3000, n)],
        "amount": rng.random(n).round(3) * 100,
        "shop": rng.choice(["s1", "s2", "s3"], n),
    }).with_columns(pl.col("ts").cast(pl.Datetime("us")))
    plan = _plan(df)
    out = compute_features(plan, df).collect()
    by_user: dict = {}
    for e in _events(df):
        by_user.setdefault(e["user"], []).append(e)
    for r in out.sample(300, seed=1).iter_rows(named=True):
        exp = _expected(by_user[r["user"]], r["user"], r["ts"], plan, r["amount"])
        for name, value in exp.items():
            assert close(value, r[name]), (name, value, r[name], r["user"], r["ts"])
    pts = df.sample(200, seed=2).select("user", "ts")
    at = compute_at(plan, df, pts, raw_from="asof").collect()
    for r in at.iter_rows(named=True):
        exp = features_at(by_user[r["user"]], r["user"], r["ts"], plan.resolved["windows"])
        for name, value in exp.items():
            assert close(value, r[name]), (name, value, r[name])
