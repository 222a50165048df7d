"""No leakage: what happens at or after t never changes the features at t."""
from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_at, compute_features

SPEC = {"name": "leak", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"], "categorical": ["country"],
        "windows": [{"column": "amount", "aggs": ["sum", "mean", "max", "count", "std", "last"],
                     "periods": ["1h", "7d"]},
                    {"column": "device", "aggs": ["distinct"], "periods": ["1d"]},
                    {"aggs": ["since_last"], "periods": ["30d"]}],
        "derived": [{"name": "r", "expr": "amount / (amount_mean_7d + 1)"}]}


@pytest.fixture(scope="module")
def data():
    df = generate(SyntheticParams(n_users=40, days=20, seed=3))
    return df, compile_plan(SPEC, df.schema)


def _at(out: pl.DataFrame, ids) -> pl.DataFrame:
    return out.filter(pl.col("transaction_id").is_in(ids.implode())).sort("transaction_id")


@pytest.mark.parametrize("mode", ["delete", "shift", "mutate"])
def test_future_events_do_not_change_features(data, mode):
    df, plan = data
    cut = df["event_ts"].min() + timedelta(days=10)
    before_ids = df.filter(pl.col("event_ts") < cut)["transaction_id"]
    base = _at(compute_features(plan, df, keep=["transaction_id"]).collect(), before_ids)
    future = pl.col("event_ts") >= cut
    if mode == "delete":
        changed = df.filter(~future)
    elif mode == "shift":  # move every future event further out and change it
        changed = df.with_columns(pl.when(future).then(pl.col("event_ts") + timedelta(days=3))
                                  .otherwise(pl.col("event_ts")).alias("event_ts"))
    else:
        changed = df.with_columns(pl.when(future).then(pl.col("amount") * 1000)
                                  .otherwise(pl.col("amount")).alias("amount"))
    after = _at(compute_features(plan, changed, keep=["transaction_id"]).collect(), before_ids)
    assert base.height == before_ids.len() > 100
    assert base.equals(after)


def test_events_at_the_same_timestamp_do_not_leak(data):
    """Adding events at exactly t (other rows) does not change the features at t."""
    df, plan = data
    # one row per user, so an added tie can only touch its own timestamp
    sample = df.sample(fraction=1.0, seed=5).unique("user_id", keep="first", maintain_order=True)
    extra = sample.with_columns((pl.col("amount") * 50).alias("amount"),
                                pl.concat_str(pl.col("transaction_id"), pl.lit("x")).alias("transaction_id"))
    base = _at(compute_features(plan, df, keep=["transaction_id"]).collect(), sample["transaction_id"])
    with_ties = _at(compute_features(plan, pl.concat([df, extra]), keep=["transaction_id"]).collect(),
                    sample["transaction_id"])
    assert base.equals(with_ties)


def test_serving_points_match_batch_rows(data):
    """compute_at on request rows over prior history == the batch row (the serving path)."""
    df, plan = data
    batch = compute_features(plan, df, keep=["transaction_id"]).collect()
    sample = df.sample(50, seed=11)
    out = compute_at(plan, df, sample).collect()
    expected = batch.join(sample.select("transaction_id"), on="transaction_id", how="semi")
    expected = sample.select("transaction_id").join(expected, on="transaction_id", how="left")
    for name in plan.feature_names:
        a, b = out[name].to_list(), expected[name].to_list()
        for x, y in zip(a, b):
            assert (x is None and y is None) or x == y or abs(x - y) <= 1e-9 * max(1, abs(y)), name
