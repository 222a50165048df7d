"""Batch scoring: equals the model on batch features; shards split by entity; cache publish."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from mlops.errors import ConfigError, DataError, SkewError
from mlops.features.offline import compute_features
from mlops.features.online import SQLiteStore, published_predictions
from mlops.fnv import fnv1a32_utf8
from mlops.serving.batch import score_events
from mlops.serving.skew import ModelInfo


def test_scores_equal_the_model_on_batch_features(world, tmp_path):
    out = tmp_path / "preds.parquet"
    rep = score_events(world.plan, world.model, world.info, world.events.lazy(), out,
                       keep=["transaction_id"])
    got = pl.read_parquet(out).sort("transaction_id")
    truth = (compute_features(world.plan, world.events, keep=["transaction_id"]).collect()
             .sort("transaction_id"))
    assert rep.rows == got.height == world.events.height
    assert got.columns == ["user_id", "event_ts", "transaction_id", "prediction", "probability",
                           "model_name", "model_version", "plan_hash"]
    assert got["transaction_id"].to_list() == truth["transaction_id"].to_list()
    want = world.model.predict_proba(truth.select(world.plan.feature_names))[:, 1]
    assert np.allclose(got["probability"].to_numpy(), want, rtol=0, atol=1e-12)
    assert got["prediction"].to_list() == (want >= 0.5).astype(int).tolist()
    assert set(got["model_name"]) == {"fraud"} and set(got["model_version"]) == {"1"}
    assert set(got["plan_hash"]) == {world.plan.spec_hash}


def test_sharded_scoring_equals_unsharded_row_for_row(world, tmp_path):
    src = tmp_path / "events.parquet"
    world.events.write_parquet(src)
    score_events(world.plan, world.model, world.info, str(src), tmp_path / "all.parquet",
                 keep=["transaction_id"], include_features=True, parts=1)
    full = pl.read_parquet(tmp_path / "all.parquet")
    parts = []
    for k in range(3):
        score_events(world.plan, world.model, world.info, str(src), tmp_path / f"s{k}.parquet",
                     keep=["transaction_id"], include_features=True, shard=k, num_shards=3,
                     parts=3)  # internal pipelining partitions must not change results
        part = pl.read_parquet(tmp_path / f"s{k}.parquet")
        # every entity of shard k hashes to k (scalar reference hash)
        assert all(fnv1a32_utf8(u) % 3 == k for u in part["user_id"].unique().to_list())
        parts.append(part)
    assert all(p.height > 0 for p in parts)
    merged, full = pl.concat(parts).sort("transaction_id"), full.sort("transaction_id")
    # features, ids, labels, metadata: identical; probabilities: BLAS sums over batches of
    # another size may differ in the last bit (seen: 1e-18), so within 1e-12
    assert merged.drop("probability").equals(full.drop("probability"))
    assert np.allclose(merged["probability"].to_numpy(), full["probability"].to_numpy(),
                       rtol=0, atol=1e-12)


def test_publish_latest_prediction_per_entity(world, tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    rep = score_events(world.plan, world.model, world.info, world.events,
                       tmp_path / "p.parquet", store=store)
    preds = pl.read_parquet(tmp_path / "p.parquet")
    users = preds["user_id"].unique().to_list()
    assert rep.entities_published == len(users)
    cached = published_predictions(store, users)
    assert set(cached) == set(users)
    for u in users[:10]:
        mine = preds.filter(pl.col("user_id") == u)
        latest = mine.row(mine["event_ts"].arg_max(), named=True)
        body = json.loads(cached[u][1])
        assert body["probability"] == latest["probability"]
        assert body["model_version"] == "1" and body["plan_hash"] == world.plan.spec_hash


def test_batch_scoring_refuses_skew_bad_shards_and_missing_columns(world, tmp_path):
    out = tmp_path / "x.parquet"
    with pytest.raises(SkewError):
        score_events(world.plan, world.model, ModelInfo("fraud", "1", "0" * 64),
                     world.events, out)
    with pytest.raises(ConfigError, match="shard"):
        score_events(world.plan, world.model, world.info, world.events, out, shard=3,
                     num_shards=3)
    with pytest.raises(ConfigError, match="both shard and num_shards"):
        score_events(world.plan, world.model, world.info, world.events, out, shard=0)
    with pytest.raises(DataError, match="amount"):
        score_events(world.plan, world.model, world.info, world.events.drop("amount"), out)


def test_under_the_reject_rule_unscorable_rows_get_no_prediction_and_the_reason(tmp_path):
    """rules.nonfinite: reject: an inf input and an overflowing window are unscorable: null
    prediction and probability, the engine's reason; every other row is the model's answer
    on the batch features (hand-picked rows: 40 finite ones, then the hostile four)."""
    from datetime import datetime, timedelta

    from sklearn.linear_model import LogisticRegression

    from mlops.features.compile import compile_plan
    from mlops.features.rules import REJECTED_FEATURE, REJECTED_INPUT
    schema = {"user": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64}
    t0 = datetime(2024, 1, 1)
    rows = [("ab"[i % 2], i, float(i % 7) - 3.0) for i in range(40)]
    rows += [("a", 50, float("inf")), ("c", 60, 1e308), ("c", 61, 1e308), ("c", 62, 1.0)]
    events = pl.DataFrame([{"user": u, "ts": t0 + timedelta(seconds=s), "x": x} for u, s, x in rows],
                          schema=schema)
    spec = {"name": "r", "entity": "user", "timestamp": "ts", "raw": ["x"],
            "windows": [{"column": "x", "aggs": ["sum", "count"], "periods": ["1h"]}],
            "rules": {"nonfinite": "reject"}}
    plan = compile_plan(spec, schema)
    finite = events.head(40)
    X = compute_features(plan, finite).collect().select(plan.feature_names)
    model = LogisticRegression().fit(X.to_numpy(), np.arange(40) % 2)
    out = tmp_path / "p.parquet"
    rep = score_events(plan, model, ModelInfo("m", "1", plan.spec_hash), events, out)
    got = pl.read_parquet(out)
    assert rep.rows == 44 and got.height == 44
    by = {(r["user"], r["ts"]): r for r in got.to_dicts()}
    inf_row = by[("a", t0 + timedelta(seconds=50))]
    assert inf_row["prediction"] is None and inf_row["probability"] is None
    assert inf_row["unscored_reason"] == REJECTED_INPUT
    # c@62: 1e308 + 1e308 in its window overflows: unscorable (both 1e308 are events)
    r = by[("c", t0 + timedelta(seconds=62))]
    assert r["prediction"] is None and r["probability"] is None
    assert r["unscored_reason"] == REJECTED_FEATURE
    for s in (60, 61):  # an empty window, then one 1e308: scorable
        r = by[("c", t0 + timedelta(seconds=s))]
        assert r["unscored_reason"] is None and r["probability"] is not None
    scored = got.filter(pl.col("unscored_reason").is_null()).sort("user", "ts")
    assert scored.height == 42
    want = (compute_features(plan, events, status=True).collect()
            .filter(pl.col("__status").is_null()).sort("user", "ts"))
    assert np.allclose(scored["probability"].to_numpy(),
                       model.predict_proba(want.select(plan.feature_names).to_numpy())[:, 1],
                       rtol=0, atol=1e-12)
