"""The online store against hostile traffic: retention by server time, a per-entity
cap, events stored and counted once (retries, replays, materialize reruns), and
Idempotency-Key answers."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import record

import mlops.serving.pipeline.stages as predict_stages
from mlops.features.online import SQLiteStore, append_events, materialize
from mlops.serving.http.app import create_app

NOW = datetime(2024, 2, 1, 12, 0, 0)  # the server clock: after every world event


@pytest.fixture(params=["sqlite", "redis"])
def capped_store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "online.sqlite", max_events_per_entity=100)
    else:
        from mlops.features.online.redis import RedisStore
        s = RedisStore(request.getfixturevalue("redis_url"), max_events_per_entity=100,
                       namespace=f"cap{abs(hash(request.node.name))}")
    yield s
    s.close()


def test_each_entity_keeps_only_its_newest_events(capped_store):
    ts = list(range(1000, 0, -1))  # arrive newest first: the cap keeps by time, not arrival
    capped_store.append_events(["hot"] * 1000, ts, [f"p{t}" for t in ts])
    capped_store.append_events(["calm", "calm"], [5, 6], ["a", "b"])
    kept = capped_store.read_events(["hot"], 0)
    assert len(kept) == 100 and sorted(t for _, t, _ in kept) == list(range(901, 1001))
    assert capped_store.count_events("calm") == 2
    # an old event arriving for a full entity is dropped at once; a new one evicts the oldest
    capped_store.append_events(["hot"], [1], ["ancient"])
    capped_store.append_events(["hot"], [2000], ["new"])
    times = sorted(t for _, t, _ in capped_store.read_events(["hot"], 0))
    assert len(times) == 100 and times[0] == 902 and times[-1] == 2000


def test_events_are_stored_once_by_id_or_by_payload(capped_store):
    assert capped_store.append_events(["a", "a"], [1, 2], ["x", "y"], ["e1", "e2"]) == 2
    # a retry: the same ids (even with another payload) change nothing
    assert capped_store.append_events(["a", "a"], [1, 2], ["x", "changed"], ["e1", "e2"]) == 0
    assert capped_store.append_events(["b"], [1], ["x"]) == 1
    assert capped_store.append_events(["b"], [1], ["x"]) == 0
    assert capped_store.append_events(["b"], [2], ["x"]) == 1   # another time: another event
    assert capped_store.count_events("a") == 2 and capped_store.count_events("b") == 2
    # pruning forgets the ids with the events
    capped_store.prune_events(before_us=10)
    assert capped_store.append_events(["a"], [1], ["x"], ["e1"]) == 1


def test_a_record_dated_9999_prunes_nobody(world, make_state, monkeypatch):
    """Retention runs on the server clock: a client time in 9999 cannot erase history."""
    monkeypatch.setattr(predict_stages, "PRUNE_EVERY", 50)
    state = make_state(clock=lambda: NOW, max_future_seconds=1e12)  # 9999 passes validation
    plan = state.plan
    hist = world.events.filter(pl.col("event_ts") >= NOW - timedelta(days=10))
    append_events(plan, state.store, hist.select(list(plan.source_columns)))
    stored = state.store.count_events()
    late = world.events.sort("event_ts").tail(60)
    rogue = {**record(late.row(0, named=True), plan), "event_ts": "9999-01-01T00:00:00",
             "user_id": "rogue"}
    with TestClient(create_app(state)) as client:
        assert client.post("/predict", json={"records": [rogue]}).status_code == 200
        # 60 ordinary events: crosses the (patched) prune threshold
        ok = client.post("/predict", json={"records": [record(r, plan)
                                                       for r in late.to_dicts()]})
        assert ok.status_code == 200
        after = state.store.count_events()
    # truth: only events older than the longest window before NOW may go
    cutoff = NOW - timedelta(seconds=plan.max_period_seconds)
    keep = hist.filter(pl.col("event_ts") >= cutoff).height
    new = late.height + 1 - late.join(hist, on=list(plan.source_columns), how="semi").height
    assert after == keep + new
    assert stored > keep  # something old was pruned, by server time


def test_a_retry_is_stored_and_counted_once(world, make_state):
    state = make_state(clock=lambda: NOW, event_id="transaction_id")
    rows = world.events.slice(600, 30)
    recs = [{**record(r, state.plan), "transaction_id": r["transaction_id"]}
            for r in rows.to_dicts()]
    with TestClient(create_app(state)) as client:
        first = client.post("/predict", json={"records": recs}).json()
        n = state.store.count_events()
        again = client.post("/predict", json={"records": recs}).json()   # a client retry
        later = client.post("/predict", json={"records": recs[-1:]}).json()
        assert state.store.count_events() == n == 30
    assert again["probabilities"] == first["probabilities"]
    assert later["probabilities"] == first["probabilities"][-1:]


def test_a_retry_without_event_ids_is_counted_once(world, make_state):
    state = make_state(clock=lambda: NOW)
    recs = [record(r, state.plan) for r in world.events.slice(650, 20).to_dicts()]
    with TestClient(create_app(state)) as client:
        first = client.post("/predict", json={"records": recs}).json()
        again = client.post("/predict", json={"records": recs + recs}).json()  # twice in one
        assert state.store.count_events() == 20
    assert again["probabilities"] == first["probabilities"] * 2


def test_idempotency_key_replays_the_answer_with_one_log_record(world, make_state):
    state = make_state(clock=lambda: NOW, log=True)
    recs = [record(r, state.plan) for r in world.events.slice(700, 3).to_dicts()]
    key = {"Idempotency-Key": "4f0c6d2e-retry-1"}
    with TestClient(create_app(state)) as client:
        a = client.post("/predict", json={"records": recs}, headers=key)
        b = client.post("/predict", json={"records": recs}, headers=key)
        other = client.post("/predict", json={"records": recs[:1]}, headers=key)
        bad_key = client.post("/predict", json={"records": recs}, headers={"Idempotency-Key": "\t"})
        fresh = client.post("/predict", json={"records": recs},
                            headers={"Idempotency-Key": "another"})
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    assert b.headers.get("idempotent-replay") == "true"
    assert other.status_code == 422 and other.json()["detail"][0]["loc"] == \
        ["header", "Idempotency-Key"]
    assert bad_key.status_code == 400
    assert fresh.json()["request_ids"] != a.json()["request_ids"]  # a new key: a new request
    state.prediction_log.close()
    log = pl.read_parquet(f"{state.prediction_log.directory}/**/*.parquet")
    ids = a.json()["request_ids"]
    assert log.filter(pl.col("request_id").is_in(ids)).height == 3


def test_materialize_twice_or_on_duplicated_input_changes_no_value(world, tmp_path):
    plan = world.plan
    once, twice = SQLiteStore(tmp_path / "a.sqlite"), SQLiteStore(tmp_path / "b.sqlite")
    materialize(plan, world.events, once, event_id="transaction_id")
    doubled = pl.concat([world.events, world.events])   # the same file loaded twice
    materialize(plan, doubled, twice, event_id="transaction_id")
    materialize(plan, doubled, twice, event_id="transaction_id")  # and a rerun
    ents = world.events["user_id"].unique().to_list()
    a, b = once.read_features(ents), twice.read_features(ents)
    assert a == b and len(a) > 0
    assert np.all([a[e][0] == b[e][0] for e in a])
