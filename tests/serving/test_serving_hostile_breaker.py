"""A breaker one client cannot trip, shared between servers, audited; admin reload
only through the gates (or forced with a reason)."""
from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from serving_world import record

from mlops.features.online import SQLiteStore
from mlops.registry import Registry
from mlops.serving.breaker import CircuitBreaker
from mlops.serving.breaker.shared import SharedBreakerState, scope_key, trip_breaker
from mlops.serving.http.app import create_app
from mlops.serving.settings import BreakerSettings

NOW = datetime(2024, 2, 1, 12, 0, 0)
TOKEN = {"Authorization": "Bearer s3cret"}


def _settings(**kw) -> BreakerSettings:
    return BreakerSettings(window=500, min_requests=200, min_values=100, **kw)


def _unusual(world, n: int, entity=lambda i: f"new{i:05d}") -> list[dict]:
    base = record(world.events.row(0, named=True), world.plan)
    return [{**base, "user_id": entity(i), "amount": 50_000.0 + i, "country": "ZZ",
             "merchant_category": "rare", "event_ts": "2024-01-31T10:00:00"} for i in range(n)]


def test_one_request_of_600_unusual_records_does_not_trip(world, make_state):
    state = make_state(clock=lambda: NOW, breaker=CircuitBreaker(world.reference, _settings()))
    with TestClient(create_app(state)) as client:
        r = client.post("/predict", json={"records": _unusual(world, 600)})
        st = client.get("/ready").json()["checks"]["breaker"]
    assert r.status_code == 200 and r.json()["served_by"] == "model"
    assert st["state"] == "closed" and st["window_records"] == 20  # the per-request cap
    assert state.breaker.skipped == 580


def test_one_entity_cannot_fill_the_window(world, make_state):
    state = make_state(clock=lambda: NOW, breaker=CircuitBreaker(world.reference, _settings()))
    with TestClient(create_app(state)) as client:
        for chunk in range(15):  # 300 requests worth of one entity's unusual events
            recs = _unusual(world, 20, entity=lambda i: "mallory")
            for j, rec in enumerate(recs):
                rec["event_ts"] = f"2024-01-31T1{chunk % 10}:{j:02d}:{chunk:02d}"
            client.post("/predict", json={"records": recs})
        st = state.breaker.status()
    # the per-entity cap: its latest 10% of the window (each record replaced its own oldest)
    assert st.state == "closed" and st.window_records == 50
    assert state.breaker.window.replaced == 300 - 50


def test_the_population_still_trips_it(world, make_state):
    state = make_state(clock=lambda: NOW, breaker=CircuitBreaker(world.reference, _settings()))
    with TestClient(create_app(state)) as client:
        for k in range(15):  # 15 clients x 20 distinct unusual entities each
            client.post("/predict", json={"records": _unusual(
                world, 20, entity=lambda i, k=k: f"pop{k:02d}-{i:02d}")})
        body = client.post("/predict", json={"records": _unusual(world, 1)}).json()
    assert state.breaker.status().state == "tripped"
    assert body["served_by"] == "abstain" and body["predictions"] == [None]


def test_monitoring_trip_opens_running_and_later_servers_and_reset_closes_all(
        world, make_state, tmp_path):
    path = tmp_path / "shared.sqlite"
    events: list = []
    audit = lambda action, details: events.append((action, details))  # noqa: E731
    fast = _settings(poll_seconds=0.05)
    a = make_state(clock=lambda: NOW, store=SQLiteStore(path), audit=audit,
                   breaker=CircuitBreaker(world.reference, fast), admin_token="s3cret")
    b = make_state(clock=lambda: NOW, store=SQLiteStore(path),
                   breaker=CircuitBreaker(world.reference, fast))
    rec = record(world.events.row(10, named=True), world.plan)
    with TestClient(create_app(a)) as ca, TestClient(create_app(b)):
        assert ca.post("/predict", json={"records": [rec]}).json()["served_by"] == "model"
        # what action=monitor does with on_drift: trip_breaker (another process, same store)
        monitor_store = SQLiteStore(path)
        trip_breaker(monitor_store, "data drift in 3 features", model="fraud", version="1")
        assert a.breaker.poll().state == "tripped" and b.breaker.poll().state == "tripped"
        ready = ca.get("/ready").json()["checks"]["breaker"]
        assert ready["state"] == "tripped" and "data drift" in ready["reason"]
        assert "mlops_breaker_tripped 1.0" in ca.get("/metrics").text
        assert ca.post("/predict", json={"records": [rec]}).json()["served_by"] == "abstain"
        # a server started later reads the standing trip
        c = make_state(clock=lambda: NOW, store=SQLiteStore(path),
                       breaker=CircuitBreaker(world.reference, fast))
        assert c.breaker.status().state == "tripped"
        # an admin reset on server a closes b (and c) too
        assert ca.post("/admin/breaker/reset", headers=TOKEN).status_code == 200
        assert b.breaker.poll().state == "closed" and c.breaker.poll().state == "closed"
        # a trip about another model version does not concern these servers
        trip_breaker(monitor_store, "drift of v7", model="fraud", version="7")
        assert b.breaker.poll().state == "closed"
        monitor_store.close()
    assert [e for e, _ in events] == ["breaker_trip", "breaker_reset"]
    assert events[0][1]["source"] == "shared" and events[1][1]["source"] == "admin"


def test_shared_state_ignores_garbage_and_orders_records(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    shared = SharedBreakerState(store, key=scope_key("fraud", 1), clock=lambda: 100.0)
    store.put({scope_key("fraud", 1): "{not json"})
    assert shared.read() is None
    first = shared.publish("tripped", "x", "monitor")
    second = shared.publish("closed", None, "admin")  # same clock: still strictly later
    assert second > first and shared.read()["state"] == "closed"
    with pytest.raises(ValueError):
        shared.publish("open", None, "admin")


@pytest.fixture
def registry(world, world_v2, tmp_path):
    reg = Registry(tmp_path / "home", policies={"production": [{"metric": "roc_auc",
                                                                 "min": 0.7}]})
    meta = {"feature_plan_hash": world.plan.spec_hash, "who": "trainer"}
    reg.register("fraud", world.model, metadata={**meta, "metrics": {"roc_auc": 0.8}})
    reg.register("fraud", world_v2.model, metadata={**meta, "metrics": {"roc_auc": 0.6}})
    reg.promote("fraud", 1, "production")
    return reg


def test_reload_only_through_the_gates_or_forced_with_a_reason(world, world_v2, make_state,
                                                               registry):
    from mlops.registry import DEFAULT_TRUSTED_TYPES
    from mlops.serving.skew import ModelInfo

    def reload_fn(version):
        model, mv = registry.load_model("fraud", int(version), DEFAULT_TRUSTED_TYPES)
        return model, ModelInfo("fraud", str(mv.version), str(mv.feature_plan_hash))

    def gate_check(version):
        return [f"{r.name} ({r.detail})" for r in registry.check_gates("fraud", version,
                                                                        "production")
                if not r.passed]

    def audit(action, details):
        registry.record_event("fraud", action, version=int(details["model_version"]),
                              actor="serving", details=details)
    state = make_state(admin_token="s3cret", reload_fn=reload_fn, gate_check=gate_check,
                       audit=audit)
    with TestClient(create_app(state)) as client:
        refused = client.post("/admin/reload", json={"version": "2"}, headers=TOKEN)
        no_reason = client.post("/admin/reload", json={"version": "2", "force": True},
                                headers=TOKEN)
        bad_force = client.post("/admin/reload", json={"version": "2", "force": "yes"},
                                headers=TOKEN)
        assert state.info.version == "1"
        forced = client.post("/admin/reload", json={"version": "2", "force": True,
                                                    "reason": "incident 42: v1 misfires"},
                             headers=TOKEN)
        assert state.info.version == "2"
        back = client.post("/admin/reload", json={"version": "1"}, headers=TOKEN)
    assert refused.status_code == 409 and "roc_auc" in refused.json()["detail"]
    assert no_reason.status_code == 422 and no_reason.json()["detail"][0]["loc"] == ["reason"]
    assert bad_force.status_code == 422 and bad_force.json()["detail"][0]["loc"] == ["force"]
    assert forced.status_code == 200 and forced.json()["forced"] is True
    assert back.status_code == 200 and back.json()["forced"] is False
    audit_log = [e for e in registry.audit_log("fraud") if e["action"].startswith("serving_")]
    assert [e["action"] for e in audit_log] == ["serving_reload_refused", "serving_reload",
                                                "serving_reload"]
    forced_entry = audit_log[1]["details"]
    assert forced_entry["forced"] is True and forced_entry["reason"] == "incident 42: v1 misfires"
    assert forced_entry["failed_gates"] and forced_entry["to"] == "2"
