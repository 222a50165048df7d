"""Request-time features: realtime parity with the batch path, hybrid materialization."""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import SPEC, record

from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_features
from mlops.features.online import (
    SQLiteStore,
    check_materialized,
    hybrid_features,
    materialize,
    points_frame,
    window_defaults,
)
from mlops.serving.http.app import create_app
from mlops.serving.http.validation import RequestSchema, validate_records
from mlops.serving.parity import replay_parity


@pytest.fixture(scope="module")
def drift_events():
    return generate(SyntheticParams(n_users=60, days=40, seed=3, scenario="covariate_shift",
                                    drift_start=20))


@pytest.mark.parametrize("batch_size", [1, 8])
def test_parity_replay_of_drift_data_has_zero_mismatches(drift_events, batch_size):
    plan = compile_plan(SPEC, drift_events.schema)
    report = replay_parity(plan, drift_events, n_events=240, batch_size=batch_size, seed=1)
    assert report.events >= 200 and plan.backends == ("frames", "rows")
    assert set(report.backends) == {"frames", "rows"}  # every backend replayed
    for b in report.backends.values():
        assert b["ok"] and b["compared"] == report.events * len(plan.feature_names)
    assert report.mismatches == []
    assert report.max_abs_diff == 0.0  # bit for bit


def test_parity_detects_a_wrong_history(drift_events):
    """The comparison is not vacuous: a store missing history gives mismatches."""
    plan = compile_plan(SPEC, drift_events.schema)

    class ForgetfulStore(SQLiteStore):
        def read_events(self, entities, since_us):
            return super().read_events(entities, since_us)[1:]

    report = replay_parity(plan, drift_events, n_events=100, store=ForgetfulStore(":memory:"))
    assert report.mismatches and not report.ok
    assert not report.backends["frames"]["ok"] and not report.backends["rows"]["ok"]


def test_parity_catches_a_wrong_rows_backend_aggregate(drift_events, monkeypatch):
    """A rows-backend aggregate off in the last bits fails that backend only."""
    from dataclasses import replace

    from mlops.features.aggregates import AGGREGATES
    plan = compile_plan(SPEC, drift_events.schema)
    assert any(w.agg == "mean" for w in plan.windows)

    def mean(values, n, latest, t):
        return sum(values) / len(values) if values else None
    monkeypatch.setitem(AGGREGATES, "mean", replace(AGGREGATES["mean"], row=mean))
    report = replay_parity(plan, drift_events, n_events=240, seed=1)
    assert report.backends["frames"]["ok"] and not report.backends["rows"]["ok"]
    assert {m["backend"] for m in report.mismatches} == {"rows"}


def test_http_replay_logs_the_same_features_as_the_batch_path(world, make_state):
    """Events sent through POST /predict in time order: logged features == compute_features."""
    state = make_state(log=True)
    ev = world.events.head(150)
    with TestClient(create_app(state)) as client:
        for chunk in range(0, ev.height, 25):
            rows = ev.slice(chunk, 25).to_dicts()
            r = client.post("/predict", json={"records": [record(x, world.plan) for x in rows]})
            assert r.status_code == 200
    state.prediction_log.flush()
    logged = (pl.scan_parquet(f"{state.prediction_log.directory}/*.parquet").collect()
              .unnest("features"))
    truth = compute_features(world.plan, ev).collect()
    key = [world.plan.entity, world.plan.timestamp]
    joined = truth.join(logged.rename({"entity": world.plan.entity, "event_ts":
                                       world.plan.timestamp}), on=key, suffix="_srv")
    assert joined.height == ev.height
    for name in world.plan.numeric:
        a, b = joined[name].to_list(), joined[f"{name}_srv"].to_list()
        assert all((x is None and y is None) or abs(x - y) <= 1e-9 for x, y in zip(a, b)), name


def _brute_window(events: pl.DataFrame, entity: str, t: datetime, seconds: int):
    rows = events.filter((pl.col("user_id") == entity) & (pl.col("event_ts") >= t -
                         timedelta(seconds=seconds)) & (pl.col("event_ts") < t))
    vals = rows["amount"].to_list()
    return float(sum(vals)), (sum(vals) / len(vals) if vals else None), float(len(vals))


@pytest.fixture(scope="module")
def materialized(world, tmp_path_factory):
    store = SQLiteStore(tmp_path_factory.mktemp("hyb") / "online.sqlite")
    as_of = datetime(2024, 1, 20)
    report = materialize(world.plan, world.events, store, as_of=as_of)
    return store, as_of, report


def _request(world, entity: str, t: datetime, amount: float):
    schema = RequestSchema.from_plan(world.plan, world.events.schema)
    rec = {"user_id": entity, "event_ts": t.isoformat(), "amount": amount,
           "merchant_category": "grocery", "country": "US", "channel": "pos"}
    cols, _ = validate_records([rec], schema, now_us=0)
    return points_frame(cols, schema.polars_schema(), world.plan.timestamp)


def _us(dt: datetime) -> int:
    return int((dt - datetime(1970, 1, 1)).total_seconds() * 1_000_000)


def test_materialized_windows_match_brute_force(world, materialized):
    store, as_of, report = materialized
    active = world.events.filter((pl.col("event_ts") >= as_of - timedelta(days=7))
                                 & (pl.col("event_ts") < as_of))["user_id"].unique()
    assert report.entities == active.len()
    assert check_materialized(world.plan, store) is None
    for entity in active.sort().head(15).to_list():
        pts = _request(world, entity, as_of + timedelta(minutes=5), 80.0)
        res = hybrid_features(world.plan, store, pts, now_us=_us(as_of), ttl_seconds=3600)
        row = res.features.row(0, named=True)
        s7, m7, c7 = _brute_window(world.events, entity, as_of, 7 * 86400)
        s1, m1, c1 = _brute_window(world.events, entity, as_of, 3600)
        assert row["amount_sum_7d"] == pytest.approx(s7, abs=1e-9)
        assert row["events_count_7d"] == c7 and row["events_count_1h"] == c1
        assert row["amount_sum_1h"] == pytest.approx(s1, abs=1e-9)
        assert (row["amount_mean_1h"] is None) == (m1 is None)
        assert row["amount_mean_7d"] == pytest.approx(m7, abs=1e-9)
        # row-level from the request, post-window derived from both
        assert row["amount"] == 80.0 and row["channel"] == "pos"
        assert row["amount_ratio"] == pytest.approx(80.0 / (m7 + 1), abs=1e-12)
        assert res.stale == [False] and res.warnings == [[]]


def test_unknown_entity_gets_empty_window_defaults_with_a_warning(world, materialized):
    store, as_of, _ = materialized
    pts = _request(world, "nobody", as_of, 10.0)
    res = hybrid_features(world.plan, store, pts, now_us=_us(as_of), ttl_seconds=3600)
    row = res.features.row(0, named=True)
    assert row["events_count_7d"] == 0.0 and row["amount_sum_7d"] == 0.0
    assert row["amount_mean_7d"] is None and row["amount_ratio"] is None
    assert "no materialized features" in res.warnings[0][0]


def test_stale_rows_warn_or_fall_back_to_defaults(world, materialized):
    store, as_of, _ = materialized
    entity = store.read_features([f"u{i:06d}" for i in range(80)]).popitem()[0]
    pts = _request(world, entity, as_of, 10.0)
    later = _us(as_of + timedelta(hours=3))
    warn = hybrid_features(world.plan, store, pts, now_us=later, ttl_seconds=3600)
    assert warn.stale == [True] and "stale features" in warn.warnings[0][0]
    assert warn.features["events_count_7d"][0] > 0  # still the stored values
    dflt = hybrid_features(world.plan, store, pts, now_us=later, ttl_seconds=3600,
                           stale_policy="default", defaults={"amount_mean_7d": 50.0})
    row = dflt.features.row(0, named=True)
    assert row["events_count_7d"] == 0.0 and row["amount_mean_7d"] == 50.0
    assert row["amount_ratio"] == pytest.approx(10.0 / 51.0)
    assert "using defaults" in dflt.warnings[0][0]


def test_hybrid_app_ttl_policies(world, materialized, make_state):
    store, as_of, _ = materialized
    entity = store.read_features([f"u{i:06d}" for i in range(80)]).popitem()[0]
    rec = {"user_id": entity, "event_ts": as_of.isoformat(), "amount": 12.5,
           "merchant_category": "grocery", "country": "US", "channel": "pos"}
    fresh, stale = (lambda: as_of + timedelta(minutes=1)), (lambda: as_of + timedelta(days=2))
    for clock, policy, status, flagged in [(fresh, "refuse", 200, False),
                                           (stale, "warn", 200, True),
                                           (stale, "default", 200, True),
                                           (stale, "refuse", 503, None)]:
        # the app closes its store on shutdown: each app gets its own connection
        state = make_state(store=SQLiteStore(store.path), mode="hybrid", ttl_seconds=3600,
                           stale_policy=policy, clock=clock)
        with TestClient(create_app(state)) as client:
            assert client.get("/ready").status_code == 200
            r = client.post("/predict", json={"records": [rec]})
        assert r.status_code == status, (policy, r.text)
        if status == 200:
            assert bool(r.json()["warnings"][0]) is flagged
            assert r.json()["features_as_of"] == [as_of.isoformat() + "+00:00"]
        else:
            assert "stale" in r.json()["detail"]


def test_ready_is_503_when_the_store_was_never_materialized(make_state, tmp_path):
    state = make_state(store=SQLiteStore(tmp_path / "empty.sqlite"), mode="hybrid")
    with TestClient(create_app(state)) as client:
        r = client.get("/ready")
    assert r.status_code == 503 and "materialize" in r.json()["problems"][0]


def test_window_defaults_follow_the_plan(world):
    d = window_defaults(world.plan, {"amount_mean_1h": 1.0, "unrelated": 3})
    assert d["amount_sum_7d"] == 0.0 and d["events_count_1h"] == 0.0
    assert d["amount_mean_7d"] is None and d["amount_mean_1h"] == 1.0
    assert "unrelated" not in d and not any(isinstance(v, float) and math.isnan(v)
                                            for v in d.values() if v is not None)


def test_parity_replay_through_a_real_redis_server(drift_events, redis_url):
    from mlops.features.online.redis import RedisStore
    plan = compile_plan(SPEC, drift_events.schema)
    store = RedisStore(redis_url, namespace="parity")
    report = replay_parity(plan, drift_events, n_events=200, batch_size=4, store=store, seed=2)
    assert report.events == 200 and report.mismatches == []
