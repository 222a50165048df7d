"""The served version's decision policy through the real HTTP app: each model decides at
its own threshold (both request paths, fallback, reload), a regressor answers its value
as ``predictions`` (never under ``probabilities``), and a tripped breaker abstains with no
value, for a regressor too; the trip belongs to the version."""
from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import record
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.offline import compute_at
from mlops.features.online import SQLiteStore
from mlops.serving.breaker import CircuitBreaker
from mlops.serving.breaker.shared import trip_breaker
from mlops.serving.http.app import create_app
from mlops.serving.settings import BreakerSettings, ServingSettings
from mlops.serving.skew import ModelInfo
from mlops.serving.state import ServingState

BREAKER = dict(window=100, min_requests=50, min_values=30, max_drift_share=0.1)


def _truth(world, model, events: pl.DataFrame) -> np.ndarray:
    """The model on the batch path's features of ``events`` (alone in the store)."""
    X = compute_at(world.plan, events, events).collect().select(world.plan.feature_names)
    return model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.predict(X)


@pytest.mark.parametrize("n", [3, 40])  # 3: the no-frame path; 40: the frame path
def test_predictions_are_decided_at_the_versions_own_threshold(world, make_state, n):
    events = world.events.slice(200, n)
    p = _truth(world, world.model, events)
    threshold = float(np.quantile(p, 0.6))  # a threshold nothing else uses
    info = dataclasses.replace(world.info, threshold=threshold)
    state = make_state()
    state.swap_model(world.model, info)
    with TestClient(create_app(state)) as client:
        body = client.post("/predict", json={"records": [record(r, world.plan)
                                                         for r in events.to_dicts()]}).json()
        meta = client.get("/metadata").json()
    assert np.allclose(body["probabilities"], p, rtol=0, atol=1e-12)
    assert body["predictions"] == [int(x >= threshold) for x in p]
    assert 0 < sum(body["predictions"]) < n  # the threshold mattered
    assert meta["model"]["threshold"] == threshold


def test_a_fallback_decides_at_its_own_threshold(world, world_v2, make_state):
    shifted = generate(SyntheticParams(n_users=150, days=20, seed=11, scenario="covariate_shift",
                                       drift_start=0, magnitude=3.0))
    recs = [record(r, world.plan) for r in shifted.head(80).to_dicts()]
    fb_info = dataclasses.replace(world_v2.info, threshold=0.0)  # everything positive
    br = CircuitBreaker(world.reference, BreakerSettings(**BREAKER, on_trip="fallback"))
    state = make_state(breaker=br, fallback=(world_v2.model, fb_info))
    with TestClient(create_app(state)) as client:
        for i in range(0, 60, 20):
            client.post("/predict", json={"records": recs[i:i + 20]})
        assert br.tripped
        body = client.post("/predict", json={"records": recs[60:70]}).json()
    assert body["served_by"] == "fallback" and body["predictions"] == [1] * 10


@pytest.fixture(scope="module")
def regressor(world):
    """A regressor on the same plan: the amount of the next purchase, roughly."""
    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), world.plan.categorical),
        ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]),
         world.plan.numeric)])
    X = world.features.select(world.plan.feature_names)
    y = world.features["amount"].to_numpy() * 1.5 + 20.0
    return Pipeline([("pre", pre), ("reg", Ridge())]).fit(X, y)


def _regressor_state(world, regressor, tmp_path, breaker=None, **settings):
    from mlops.serving.prediction_log import PredictionLog
    s = ServingSettings(**settings)
    if breaker is not None:
        s.breaker = breaker.settings
    # a regressor's version has no decision threshold
    return ServingState(plan=world.plan, model=regressor, info=ModelInfo("price", "1",
                                                                          world.plan.spec_hash),
                        store=SQLiteStore(tmp_path / "r.sqlite"), settings=s, breaker=breaker,
                        prediction_log=PredictionLog(tmp_path / "rlog", world.plan),
                        source_schema=world.events.schema)


def test_a_regressor_answers_its_value_as_predictions_never_as_probabilities(
        world, regressor, tmp_path):
    events = world.events.slice(200, 5)
    state = _regressor_state(world, regressor, tmp_path)
    with TestClient(create_app(state)) as client:
        body = client.post("/predict", json={"records": [record(r, world.plan)
                                                         for r in events.to_dicts()]}).json()
        inv = client.post("/invocations", json={"dataframe_records": [
            record(r, world.plan) for r in world.events.slice(300, 2).to_dicts()]}).json()
        schema = client.get("/openapi.json").json()["components"]["schemas"]["PredictResponse"]
    assert "probabilities" not in body and body["decisions"] == ["model"] * 5
    assert np.allclose(body["predictions"], _truth(world, regressor, events), rtol=0, atol=1e-9)
    assert len(inv["predictions"]) == 2 and all(isinstance(v, float) for v in inv["predictions"])
    assert "probabilities" not in schema["required"] and "decisions" in schema["required"]
    state.prediction_log.close()
    logged = pl.read_parquet(f"{tmp_path}/rlog/*.parquet").filter(
        pl.col("request_id").is_in(body["request_ids"]))
    assert logged["probability"].null_count() == 5  # the value is the prediction
    assert np.allclose(np.sort(logged["prediction"].to_numpy()), np.sort(body["predictions"]))


@pytest.mark.parametrize("on_trip,declared", [("abstain", None), ("default", 250.0)])
def test_a_tripped_breaker_never_invents_a_regressors_value(world, regressor, tmp_path,
                                                            on_trip, declared):
    shifted = generate(SyntheticParams(n_users=150, days=20, seed=11, scenario="covariate_shift",
                                       drift_start=0, magnitude=3.0))
    recs = [record(r, world.plan) for r in shifted.head(80).to_dicts()]
    X = world.features.select(world.plan.feature_names)
    from serving_world import breaker_reference
    ref = breaker_reference(X, regressor.predict(X), categorical=world.plan.categorical)
    br = CircuitBreaker(ref, BreakerSettings(**BREAKER, on_trip=on_trip, default_value=declared))
    state = _regressor_state(world, regressor, tmp_path, breaker=br)
    with TestClient(create_app(state)) as client:
        for i in range(0, 60, 20):
            assert client.post("/predict", json={"records": recs[i:i + 20]}).status_code == 200
        assert br.tripped, br.status()
        r = client.post("/predict", json={"records": recs[60:65]})
    body = r.json()
    assert r.status_code == 200 and "probabilities" not in body
    if on_trip == "abstain":
        assert body["predictions"] == [None] * 5 and body["decisions"] == ["abstain"] * 5
    else:  # declared for this model: that value, said so
        assert body["predictions"] == [250.0] * 5 and body["decisions"] == ["default"] * 5
    assert all("circuit breaker tripped" in w[-1] for w in body["warnings"])
    state.prediction_log.close()
    logged = pl.read_parquet(f"{tmp_path}/rlog/*.parquet").filter(
        pl.col("request_id").is_in(body["request_ids"]))
    assert logged["served_by"].to_list() == [body["decisions"][0]] * 5
    # monitoring never reads an abstention or a declared value as the model's output
    from mlops.serving.prediction_log import model_score
    assert logged.select(model_score()).to_series().null_count() == 5


def test_a_trip_belongs_to_the_version(world, world_v2, make_state, tmp_path):
    """A trip of v1 in the shared store neither opens v2's breaker nor survives a reload to
    v2; a reload back to v1 reads v1's standing trip again."""
    path = tmp_path / "shared.sqlite"
    fast = dict(BREAKER, poll_seconds=0.01)
    trip_breaker(SQLiteStore(path), "drift of v1", model="fraud", version="1")
    v1 = make_state(store=SQLiteStore(path), breaker=CircuitBreaker(world.reference,
                                                                    BreakerSettings(**fast)))
    assert v1.breaker.poll().state == "tripped"
    v2 = make_state(store=SQLiteStore(path), breaker=CircuitBreaker(world.reference,
                                                                    BreakerSettings(**fast)))
    v2.swap_model(world_v2.model, world_v2.info)  # serving v2 from the start
    assert v2.breaker.poll().state == "closed"
    v1.swap_model(world_v2.model, world_v2.info)  # a reload of the tripped server to v2
    st = v1.breaker.poll()
    assert st.state == "closed" and st.window_records == 0 and st.scope.endswith("fraud.v2")
    v1.swap_model(world.model, world.info)
    assert v1.breaker.poll().state == "tripped"
