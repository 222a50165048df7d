"""The HTTP app in-process: contract, bad requests, admin auth, reload, skew, batching."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import httpx
import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import record

from mlops.errors import NotFoundError, SkewError
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_at
from mlops.features.online import SQLiteStore
from mlops.serving.batch import score_events
from mlops.serving.http.app import create_app
from mlops.serving.skew import ModelInfo, check_plan


@pytest.fixture
def recs(world):
    return [record(r, world.plan) for r in world.events.slice(200, 40).to_dicts()]


def test_predict_contract_and_scores_equal_the_model_on_batch_features(world, make_state, recs):
    state = make_state()
    with TestClient(create_app(state)) as client:
        r = client.post("/predict", json={"records": recs[:5]})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"predictions", "probabilities", "decisions", "model", "plan_hash",
                         "warnings", "request_ids", "served_by"}
    assert body["decisions"] == ["model"] * 5
    assert body["model"] == {"name": "fraud", "version": "1"}
    assert body["plan_hash"] == world.plan.spec_hash
    assert body["warnings"] == [[]] * 5 and len(set(body["request_ids"])) == 5
    # truth: the empty store => the five events are the only history (point-in-time)
    pts = world.events.slice(200, 5)
    want = world.model.predict_proba(
        compute_at(world.plan, pts, pts).collect().select(world.plan.feature_names))[:, 1]
    assert np.allclose(body["probabilities"], want, rtol=0, atol=1e-12)
    assert body["predictions"] == [int(p >= 0.5) for p in want]


def test_client_request_ids_are_kept(make_state, recs):
    with TestClient(create_app(make_state())) as client:
        r = client.post("/predict", json={"records": [{**recs[0], "request_id": "abc"}]})
    assert r.json()["request_ids"] == ["abc"]


def test_invocations_accepts_both_mlflow_formats(make_state, recs):
    cols = list(recs[0])
    with TestClient(create_app(make_state())) as client:
        a = client.post("/invocations", json={"dataframe_records": recs[:3]})
        b = client.post("/invocations", json={"dataframe_split": {
            "columns": cols, "data": [[r[c] for c in cols] for r in recs[:3]]}})
        bad = client.post("/invocations", json={"instances": recs[:3]})
    assert a.status_code == b.status_code == 200
    assert set(a.json()) == {"predictions"} and len(a.json()["predictions"]) == 3
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize("mutate,loc,needle", [
    (lambda r: r.pop("amount"), ["records", 0, "amount"], "field required"),
    (lambda r: r.update(amount="12.5"), ["records", 0, "amount"], "finite number"),
    (lambda r: r.update(amount=True), ["records", 0, "amount"], "finite number"),
    (lambda r: r.update(amount=None), ["records", 0, "amount"], "got null"),
    (lambda r: r.update(country=7), ["records", 0, "country"], "must be a string"),
    (lambda r: r.update(user_id=""), ["records", 0, "user_id"], "non-empty string"),
    (lambda r: r.update(event_ts="yesterday"), ["records", 0, "event_ts"], "ISO-8601"),
])
def test_bad_fields_are_422_naming_the_field(make_state, recs, mutate, loc, needle):
    rec = dict(recs[0])
    mutate(rec)
    with TestClient(create_app(make_state())) as client:
        r = client.post("/predict", json={"records": [rec]})
        ok = client.post("/predict", json={"records": recs[:1]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == loc and needle in r.json()["detail"][0]["msg"]
    assert ok.status_code == 200  # the server stays up


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_inf_are_422(make_state, recs, literal):
    body = json.dumps({"records": [recs[0]]}).replace(f'"amount": {recs[0]["amount"]}',
                                                      f'"amount": {literal}')
    assert literal in body
    with TestClient(create_app(make_state())) as client:
        r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["records", 0, "amount"]


def test_size_limits_bad_json_and_shapes_are_422(make_state, recs):
    state = make_state(max_records=10, max_body_bytes=4096)
    with TestClient(create_app(state)) as client:
        many = client.post("/predict", json={"records": [recs[0]] * 11})
        big = client.post("/predict", json={"records": recs[:1], "pad": "x" * 5000})
        broken = client.post("/predict", content=b"{not json", headers={"content-type":
                                                                        "application/json"})
        nolist = client.post("/predict", json={"records": {"a": 1}})
        missing = client.post("/predict", json={"rows": []})
        notobj = client.post("/predict", json={"records": [1]})
    # a body over the limit is 413 (cut off while reading), everything else 422
    assert [x.status_code for x in (many, big, broken, nolist, missing, notobj)] == \
        [422, 413, 422, 422, 422, 422]
    assert "at most 10 records" in many.json()["detail"][0]["msg"]
    assert big.json()["detail"][0]["loc"] == ["body"] and "limit" in big.json()["detail"][0]["msg"]
    assert notobj.json()["detail"][0]["loc"] == ["records", 0]


def test_all_bad_fields_are_reported(make_state, recs):
    a, b = dict(recs[0]), dict(recs[1])
    a.pop("channel")
    b["amount"] = "x"
    with TestClient(create_app(make_state())) as client:
        r = client.post("/predict", json={"records": [a, b]})
    assert [d["loc"] for d in r.json()["detail"]] == [["records", 0, "channel"],
                                                      ["records", 1, "amount"]]


def test_unknown_category_is_served_with_a_warning(make_state, recs):
    with TestClient(create_app(make_state())) as client:
        r = client.post("/predict", json={"records": [{**recs[0], "country": "XX"}, recs[1]]})
    assert r.status_code == 200
    assert "unknown category 'XX'" in r.json()["warnings"][0][0] and r.json()["warnings"][1] == []


def test_health_ready_metadata_metrics(world, make_state, recs):
    with TestClient(create_app(make_state())) as client:
        client.post("/predict", json={"records": recs[:3]})
        client.post("/predict", json={"records": [{}]})
        health, ready = client.get("/health"), client.get("/ready")
        meta, metrics = client.get("/metadata").json(), client.get("/metrics")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["checks"]["plan_hash"]["ok"] and ready.json()["checks"]["store"]["ok"]
    assert meta["model"]["version"] == "1" and meta["plan"]["hash"] == world.plan.spec_hash
    assert meta["plan"]["features"] == world.plan.feature_names
    assert meta["plan"]["request_fields"]["amount"] == "number"
    text = metrics.text
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'mlops_http_requests_total{path="/predict",status="200"} 1.0' in text
    assert 'mlops_http_requests_total{path="/predict",status="422"} 1.0' in text
    assert 'mlops_http_request_duration_seconds_bucket{le="+Inf",path="/predict"} 2' in text
    assert 'mlops_predictions_total{served_by="model"} 3.0' in text


def test_ready_is_503_when_the_store_is_down(make_state):
    state = make_state()
    state.store.ping = lambda: False
    with TestClient(create_app(state)) as client:
        r = client.get("/ready")
    assert r.status_code == 503 and "does not answer" in r.json()["problems"][0]


def test_admin_auth_403_without_token_401_when_wrong(make_state, monkeypatch):
    monkeypatch.delenv("MLOPS_ADMIN_TOKEN", raising=False)
    with TestClient(create_app(make_state())) as client:
        assert client.post("/admin/breaker/reset").status_code == 403
        assert client.post("/admin/reload", json={"version": "2"},
                           headers={"Authorization": "Bearer x"}).status_code == 403
    monkeypatch.setenv("MLOPS_ADMIN_TOKEN", "from-env")
    with TestClient(create_app(make_state())) as client:
        none = client.post("/admin/reload", json={"version": "2"})
        wrong = client.post("/admin/reload", json={"version": "2"},
                            headers={"Authorization": "Bearer nope"})
        basic = client.post("/admin/reload", json={"version": "2"},
                            headers={"Authorization": "Basic from-env"})
        right = client.post("/admin/reload", json={"version": "2"},
                            headers={"Authorization": "Bearer from-env"})
    assert none.status_code == wrong.status_code == basic.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 501  # authorized, but no reload function configured


def test_reload_swaps_the_model_and_refuses_skewed_ones(world, world_v2, make_state, recs):
    other_plan = compile_plan({"name": "t2", "entity": "user_id", "timestamp": "event_ts",
                               "raw": ["amount"]}, world.events.schema)

    def reload_fn(version):
        if version == "2":
            return world_v2.model, world_v2.info
        if version == "9":
            return world.model, ModelInfo("fraud", "9", other_plan.spec_hash)
        raise NotFoundError(f"model fraud has no version {version!r}", key="version")

    state = make_state(reload_fn=reload_fn, admin_token="tok")
    auth = {"Authorization": "Bearer tok"}
    with TestClient(create_app(state)) as client:
        before = client.post("/predict", json={"records": recs[:3]}).json()
        ok = client.post("/admin/reload", json={"version": "2"}, headers=auth)
        after = client.post("/predict", json={"records": recs[3:6]}).json()
        skewed = client.post("/admin/reload", json={"version": 9}, headers=auth)
        missing = client.post("/admin/reload", json={"version": "77"}, headers=auth)
        novers = client.post("/admin/reload", json={}, headers=auth)
        still = client.get("/metadata").json()["model"]["version"]
    assert before["model"]["version"] == "1"
    assert ok.status_code == 200 and ok.json()["previous"]["version"] == "1"
    assert after["model"] == {"name": "fraud", "version": "2"}
    assert skewed.status_code == 409
    assert other_plan.short_hash in skewed.json()["detail"]
    assert world.plan.short_hash in skewed.json()["detail"]
    assert missing.status_code == 404 and novers.status_code == 422
    assert still == "2"


def test_skew_guard_names_both_hashes(world, make_state):
    other = compile_plan({"name": "t2", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"]},
                         world.events.schema)
    info = ModelInfo("fraud", "3", other.spec_hash)
    with pytest.raises(SkewError) as exc:
        check_plan(info.plan_hash, world.plan, model=info)
    msg = str(exc.value)
    assert f"model fraud v3 was trained on feature plan {other.spec_hash[:12]}" in msg
    assert f"server loaded plan {world.plan.spec_hash[:12]}" in msg and "retrain" in msg
    check_plan(world.plan.spec_hash, world.plan)  # same plan: no error
    from mlops.serving.state import ServingState
    with pytest.raises(SkewError):
        ServingState(plan=world.plan, model=world.model, info=info,
                     store=SQLiteStore(":memory:"))


def test_concurrent_requests_are_micro_batched_into_one_model_call(world, make_state, recs):
    state = make_state(batch_wait_ms=500, max_batch=64, log=True)
    app = create_app(state)
    calls = []
    original = world.model.predict_proba

    from sklearn.base import BaseEstimator, ClassifierMixin

    class Spy(ClassifierMixin, BaseEstimator):  # a classifier to sklearn's task inference
        classes_ = world.model.classes_

        def predict_proba(self, X):
            calls.append(X.height)
            return original(X)

    state.swap_model(Spy(), state.info)

    async def fire():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await asyncio.gather(*[c.post("/predict", json={"records": [r]})
                                          for r in recs[:16]])
    responses = asyncio.run(fire())
    assert all(r.status_code == 200 for r in responses)
    assert calls == [16]  # one predict_proba for sixteen requests
    # each client still gets its own answer: same as scoring the batch as one request
    state2 = make_state()
    with TestClient(create_app(state2)) as client:
        together = client.post("/predict", json={"records": recs[:16]}).json()["probabilities"]
    assert np.allclose([r.json()["probabilities"][0] for r in responses], together,
                       rtol=0, atol=1e-12)


def test_batch_mode_answers_from_the_prediction_cache(world, make_state, tmp_path):
    store_path = tmp_path / "cache.sqlite"
    store = SQLiteStore(store_path)
    scored_at = datetime(2024, 3, 1, 12, 0, 0)
    score_events(world.plan, world.model, world.info, world.events, tmp_path / "p.parquet",
                 store=store, scored_at=scored_at)
    preds = pl.read_parquet(tmp_path / "p.parquet")
    last = preds.sort("event_ts").group_by("user_id").agg(pl.all().last())
    entity = last["user_id"][0]
    want = last.filter(pl.col("user_id") == entity).row(0, named=True)
    for policy, clock, status in [("warn", scored_at + timedelta(minutes=10), 200),
                                  ("refuse", scored_at + timedelta(days=3), 503)]:
        state = make_state(store=SQLiteStore(store_path), mode="batch", ttl_seconds=3600,
                           stale_policy=policy, clock=lambda c=clock: c)
        with TestClient(create_app(state)) as client:
            r = client.post("/predict", json={"records": [{"user_id": entity},
                                                          {"user_id": "nobody"}]})
        assert r.status_code == status
    body = TestClient(create_app(make_state(
        store=SQLiteStore(store_path), mode="batch", ttl_seconds=3600,
        clock=lambda: scored_at + timedelta(minutes=10)))).post(
        "/predict", json={"records": [{"user_id": entity}, {"user_id": "nobody"}]}).json()
    assert body["probabilities"][0] == pytest.approx(want["probability"], abs=1e-15)
    assert body["predictions"][0] == want["prediction"]
    assert body["age_seconds"][0] == pytest.approx(600.0)
    assert body["served_by"] == "cache" and body["probabilities"][1] is None
    assert "no precomputed prediction" in body["warnings"][1][0]
