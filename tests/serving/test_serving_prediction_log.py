"""Prediction log: every prediction, buffered parquet parts, flush rules, contents."""
from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import record

from mlops.serving.http.app import create_app
from mlops.serving.prediction_log import PredictionLog


def _rec(world, i):
    feats = {f: (None if f in world.plan.numeric else "x") for f in world.plan.feature_names}
    feats["amount"] = float(i)
    return {"request_id": f"r{i}", "entity": "u1", "event_ts": datetime(2024, 1, 1),
            "features": feats, "prediction": 0, "probability": i / 100,
            "model_name": "fraud", "model_version": "1", "plan_hash": "h",
            "variant": None, "served_by": "model", "warnings": [],
            "breaker_state": None, "served_at": datetime.now(timezone.utc)}


def test_flush_every_n_records_one_file_per_flush(world, tmp_path):
    log = PredictionLog(tmp_path, world.plan, flush_records=5, flush_seconds=3600)
    for i in range(5):
        log.append([_rec(world, i)])
    log.flush()
    assert len(list(tmp_path.glob("*.parquet"))) == 1
    log.append([_rec(world, 5), _rec(world, 6)])
    assert log.pending() == 2  # below the threshold: still buffered (a crash loses these)
    log.close()  # shutdown flushes
    files = sorted(tmp_path.glob("*.parquet"))
    assert len(files) == 2 and not list(tmp_path.glob(".*tmp"))
    df = pl.scan_parquet(tmp_path / "*.parquet").collect()
    assert sorted(df["request_id"].to_list()) == [f"r{i}" for i in range(7)]
    assert df.unnest("features")["amount"].sort().to_list() == [float(i) for i in range(7)]
    with pytest.raises(RuntimeError, match="closed"):
        log.append([_rec(world, 9)])


def test_flush_after_t_seconds(world, tmp_path):
    log = PredictionLog(tmp_path, world.plan, flush_records=10_000, flush_seconds=0.05)
    log.append([_rec(world, 1)])
    log.flush(timeout=5)
    assert log.pending() == 0 and log.written_records == 1
    log.close()


def test_all_null_feature_columns_keep_their_types_across_files(world, tmp_path):
    log = PredictionLog(tmp_path, world.plan, flush_records=1, flush_seconds=3600)
    log.append([_rec(world, 1)])
    log.flush()
    r = _rec(world, 2)
    r["features"]["amount_mean_7d"] = 3.5
    log.append([r])
    log.close()
    df = pl.scan_parquet(tmp_path / "*.parquet").collect().unnest("features")
    assert df.schema["amount_mean_7d"] == pl.Float64 and df.height == 2


def test_server_logs_every_prediction_with_its_features(world, make_state):
    state = make_state(log=True, variant="B")
    recs = [record(r, world.plan) for r in world.events.slice(100, 12).to_dicts()]
    with TestClient(create_app(state)) as client:
        bodies = [client.post("/predict", json={"records": recs[i:i + 4]}).json()
                  for i in range(0, 12, 4)]
        client.post("/predict", json={"records": [{"bad": 1}]})  # 422: not a prediction
    # leaving the client ran the shutdown, which flushed the log
    df = pl.scan_parquet(f"{state.prediction_log.directory}/*.parquet").collect()
    assert df.height == 12
    ids = [i for b in bodies for i in b["request_ids"]]
    probs = [p for b in bodies for p in b["probabilities"]]
    df = df.sort(pl.col("request_id").replace_strict({r: k for k, r in enumerate(ids)}))
    assert df["request_id"].to_list() == ids
    assert df["probability"].to_list() == probs
    assert df["entity"].to_list() == [r["user_id"] for r in recs]
    assert df["event_ts"].to_list() == [datetime.fromisoformat(r["event_ts"]) for r in recs]
    assert df.unnest("features")["amount"].to_list() == [r["amount"] for r in recs]
    assert set(df["variant"]) == {"B"} and set(df["model_version"]) == {"1"}
    assert set(df["served_by"]) == {"model"} and set(df["plan_hash"]) == {world.plan.spec_hash}
    assert df.schema["served_at"] == pl.Datetime("us", "UTC")
