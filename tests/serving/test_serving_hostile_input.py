"""Hostile input, tested by class: every invalid request is a 4xx naming the field,
never a 5xx; bad records never enter the store; one bad record never fails the
other records of its micro-batch. A record whose window features overflow follows the
plan's rule (``rules.nonfinite``): a missing value (the default) or, under ``reject``,
the serving policy's answer."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import record

from mlops.features.offline import compute_at
from mlops.features.online import append_events, points_frame
from mlops.serving.http.app import create_app
from mlops.serving.http.validation import check_records
from mlops.serving.pipeline import ParsedRequest, process_batch


@pytest.fixture
def recs(world):
    return [record(r, world.plan) for r in world.events.slice(300, 40).to_dicts()]


def _body(rec: dict, field: str, literal: str) -> bytes:
    """A /predict body whose ``field`` is the raw JSON ``literal`` (not re-encoded)."""
    import json
    marker = "__LITERAL__"
    text = json.dumps({"records": [{**rec, field: marker}]})
    return text.replace(f'"{marker}"', literal).encode()


@pytest.mark.parametrize("field,literal,loc", [
    ("amount", "1" + "0" * 400, ["records", 0, "amount"]),          # float() overflows
    ("amount", "1e400", ["records", 0, "amount"]),                  # parses to inf
    ("amount", "-1" + "0" * 399 + ".5", ["records", 0, "amount"]),  # -inf
    ("event_ts", '"0001-01-01T00:00:00+01:00"', ["records", 0, "event_ts"]),
    ("event_ts", '"9999-12-31T23:59:59-14:00"', ["records", 0, "event_ts"]),
    ("country", '"\\ud800"', ["records", 0, "country"]),            # lone surrogate
    ("user_id", '"\\udfff"', ["records", 0, "user_id"]),
    ("request_id", '"\\ud800x"', ["records", 0, "request_id"]),
    ("amount", "[" * 500 + "]" * 500, ["records", 0, "amount"]),    # nested value
    ("amount", "1" * 5000, ["body"]),                               # > 4300 digits
])
def test_hostile_values_are_422_naming_the_field(make_state, recs, field, literal, loc):
    with TestClient(create_app(make_state()), raise_server_exceptions=False) as client:
        r = client.post("/predict", content=_body(recs[0], field, literal),
                        headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == loc
        # the server is unharmed: the next request is served
        assert client.post("/predict", json={"records": recs[:1]}).status_code == 200


def test_deeply_nested_json_is_422_not_a_recursion_error(make_state, recs):
    deep = b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # 200 KB
    with TestClient(create_app(make_state()), raise_server_exceptions=False) as client:
        r = client.post("/predict", content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]
        assert "nested" in r.json()["detail"][0]["msg"]
        assert client.get("/health").status_code == 200


def test_a_record_from_the_future_is_refused_and_never_stored(make_state, recs):
    now = datetime(2024, 1, 10, 12, 0, 0)
    state = make_state(clock=lambda: now, max_future_seconds=300)
    future = {**recs[0], "event_ts": (now + timedelta(days=1)).isoformat()}
    soon = {**recs[1], "event_ts": (now + timedelta(seconds=100)).isoformat()}
    with TestClient(create_app(state)) as client:
        r = client.post("/predict", json={"records": [future]})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["records", 0, "event_ts"]
        assert "max_future_seconds" in r.json()["detail"][0]["msg"]
        assert state.store.count_events() == 0
        # within the allowed clock skew: served and stored
        assert client.post("/predict", json={"records": [soon]}).status_code == 200
        assert state.store.count_events() == 1


@pytest.mark.parametrize("declared", [None, 0.0])
def test_policy_default_answers_without_the_model_and_scores_the_rest(make_state, recs, declared):
    """No declared value: the invalid record gets no value (abstain); a declared
    ``breaker.default_value``: that value and its label."""
    now = datetime(2024, 2, 1, 12, 0, 0)  # after every test event
    state = make_state(clock=lambda: now, invalid_record_policy="default")
    state.settings.breaker.default_value = declared
    future = {**recs[0], "event_ts": "9999-01-01T00:00:00"}
    with TestClient(create_app(state)) as client:
        r = client.post("/predict", json={"records": [future, recs[1]]})
        stored = state.store.count_events()
        alone = make_state(clock=lambda: now)
        with TestClient(create_app(alone)) as c2:
            truth = c2.post("/predict", json={"records": [recs[1]]}).json()
    assert r.status_code == 200
    body = r.json()
    assert body["probabilities"][0] == declared
    assert body["predictions"][0] == (None if declared is None else 0)
    assert body["decisions"] == ["abstain" if declared is None else "default", "model"]
    assert any("answered without the model" in w for w in body["warnings"][0])
    assert body["probabilities"][1] == truth["probabilities"][0]
    assert stored == 1  # only the valid record


def _parsed(state, records):
    checked = check_records(records, state.request_schema, now_us=state.now_us(),
                            max_abs=state.settings.max_abs_value,
                            policy=state.settings.invalid_record_policy)
    return ParsedRequest(checked.columns, checked.warnings, [f"r{i}" for i in range(len(records))],
                         checked.event_ids, checked.invalid)


def _poison(world, state, entity="poisoned"):
    """Two events with amount 1e308 already in the store: its window sums overflow."""
    base = world.events.slice(300, 1).to_dicts()[0]
    rows = [{**record(base, world.plan), "user_id": entity, "amount": 1e308,
             "event_ts": (base["event_ts"] - timedelta(minutes=m)).isoformat()} for m in (5, 6)]
    checked = check_records(rows, state.request_schema, now_us=state.now_us())
    pts = points_frame(checked.columns, state.request_schema.polars_schema(), world.plan.timestamp)
    append_events(world.plan, state.store, pts)
    return {**record(base, world.plan), "user_id": entity}


def _reject_plan(world):
    from serving_world import SPEC

    from mlops.features.compile import compile_plan
    return compile_plan({**SPEC, "rules": {"nonfinite": "reject"}}, world.events.schema)


def test_a_poisoned_entity_is_answered_with_missing_windows_as_offline(world, make_state):
    """Default rule: the overflowing window sum is null (a missing value) on every path:
    the record is scored by the model on the batch path's features, and stored (it is an
    event, as the batch path counts it)."""
    state = make_state(max_abs_value=None)
    bad = _poison(world, state)
    innocent = world.events.slice(400, 120)
    reqs = [_parsed(state, [bad])] + [_parsed(state, [record(r, world.plan)])
                                       for r in innocent.to_dicts()]
    out = process_batch(state, reqs)  # ONE micro-batch: 1 poisoned + 120 innocent requests
    assert [o.status for o in out] == [200] * 121
    want = world.model.predict_proba(
        compute_at(world.plan, innocent, innocent).collect().select(world.plan.feature_names))[:, 1]
    got = np.array([o.body["probabilities"][0] for o in out[1:]])
    assert np.allclose(got, want, rtol=0, atol=1e-12)
    history = world.events.slice(300, 1).with_columns(user_id=pl.lit("poisoned"), amount=pl.lit(1e308))
    history = pl.concat([history.with_columns(pl.col("event_ts") - timedelta(minutes=m)) for m in (5, 6)])
    point = world.events.slice(300, 1).with_columns(user_id=pl.lit("poisoned"))
    feats = compute_at(world.plan, history, point).collect().select(world.plan.feature_names)
    assert feats["amount_sum_1h"][0] is None  # 2e308: beyond the float range
    assert out[0].body["probabilities"][0] == world.model.predict_proba(feats)[0, 1]
    assert state.store.count_events("poisoned") == 3


@pytest.mark.parametrize("policy", ["reject", "default"])
def test_under_the_reject_rule_a_poisoned_entity_never_fails_its_batch_mates(world, make_state, policy):
    state = make_state(max_abs_value=None, invalid_record_policy=policy, plan=_reject_plan(world))
    bad = _poison(world, state)
    innocent = world.events.slice(400, 120)
    reqs = [_parsed(state, [bad])] + [_parsed(state, [record(r, world.plan)])
                                       for r in innocent.to_dicts()]
    out = process_batch(state, reqs)
    assert [o.status for o in out[1:]] == [200] * 120
    # truth: the innocent events scored by the batch path (the store held none of them)
    want = world.model.predict_proba(
        compute_at(state.plan, innocent, innocent).collect().select(world.plan.feature_names))[:, 1]
    got = np.array([o.body["probabilities"][0] for o in out[1:]])
    assert np.allclose(got, want, rtol=0, atol=1e-12)
    if policy == "reject":
        assert out[0].status == 422
        loc = out[0].detail[0]["loc"]
        assert loc[:2] == ["records", 0] and loc[2].startswith("amount_")
        assert "non-finite feature" in out[0].detail[0]["msg"]
        assert "still an event" in out[0].detail[0]["msg"]
    else:
        assert out[0].status == 200  # no value declared: no value answered
        assert out[0].body["probabilities"] == [None] and out[0].body["predictions"] == [None]
        assert out[0].body["decisions"] == ["abstain"]
        assert any("non-finite feature" in w for w in out[0].body["warnings"][0])
    # its input is finite, only its windows are not: an event, stored (as offline counts
    # it in the entity's later windows), whatever it was answered
    assert state.store.count_events("poisoned") == 3


def test_huge_amounts_are_refused_before_they_can_poison_an_entity(make_state, recs):
    state = make_state()  # max_abs_value 1e15 by default
    with TestClient(create_app(state)) as client:
        r = client.post("/predict", json={"records": [{**recs[0], "amount": 1e308}]})
        assert state.store.count_events() == 0
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["records", 0, "amount"]
    assert "max_abs_value" in r.json()["detail"][0]["msg"]


def test_a_request_mixing_good_and_poisoned_records_is_refused_whole(world, make_state, recs):
    """Under the reject rule (and policy): the whole request is refused (422 naming the
    record); its records are still events (the engine counted them in their batch-mates'
    windows, offline counts them): stored, and a retry stores nothing twice."""
    state = make_state(max_abs_value=None, plan=_reject_plan(world))
    bad = _poison(world, state)
    with TestClient(create_app(state)) as client:
        r = client.post("/predict", json={"records": [recs[0], bad]})
        assert state.store.count_events() == 4
        client.post("/predict", json={"records": [recs[0], bad]})  # the retry
        assert state.store.count_events() == 4
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["records", 1]
