"""One request pipeline, two feature backends: the rows backend (a few records, plain
Python) and the frames backend (polars) answer, store and log exactly alike.

Independent truth for the features is the frames backend itself, checked elsewhere
against the offline engine (tests/features) and, through this pipeline, against batch
scoring (test_serving_parity_pipeline.py): every test here runs the same inputs through both.
"""
from __future__ import annotations

import math
import random
import sqlite3
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from serving_world import build_world, record

from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.compile import compile_plan
from mlops.features.online import SQLiteStore, append_events, encode_rows
from mlops.features.online.codec import encode_columns
from mlops.serving.breaker import CircuitBreaker
from mlops.serving.http.validation import RequestValidationError, check_records
from mlops.serving.pipeline import Batch, ParsedRequest, process_batch
from mlops.serving.pipeline.features import features
from mlops.serving.prediction_log import scan_prediction_log
from mlops.serving.settings import BreakerSettings, ServingSettings, StoreSettings
from mlops.serving.skew import ModelInfo
from mlops.serving.state import ServingState


def test_store_payloads_are_byte_identical_to_polars(tmp_path):
    rng = random.Random(5)
    floats = [rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-40, 40) for _ in range(3000)]
    floats += [0.0, -0.0, 1e-5, 1e-6, 1e-7, 9.999999e-5, 1e16, 1e21, 5e-324, 1.5e308]
    texts = [None, "", "é\"\\", "\n\t\x00\x1f", "\u2028", "😀", "plain"] * (len(floats) // 7 + 1)
    cols = {"e": ["x"] * len(floats), "t": [0] * len(floats), "amount": floats,
            "cat": texts[:len(floats)]}
    frame = pl.DataFrame({"amount": floats, "cat": cols["cat"]},
                         schema={"amount": pl.Float64, "cat": pl.String})
    assert encode_columns(["amount", "cat"], cols) == encode_rows(frame, ["amount", "cat"])


SPEC = {"name": "every_agg", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
        "categorical": ["merchant_category", "country", "channel"],
        "windows": [
            {"column": "amount", "aggs": ["sum", "mean", "min", "max", "std", "count"],
             "periods": ["1h", "1d"]},
            {"column": "amount", "aggs": ["mean"], "periods": ["10m"], "default": -1.0},
            {"column": "merchant_category", "aggs": ["distinct", "last"], "periods": ["1d"]},
            {"aggs": ["since_last"], "periods": ["7d"], "default": 604800.0}],
        "derived": [{"name": "ratio", "expr": "amount / (amount_mean_1d + 1)"},
                    {"name": "log_amount", "expr": "ln(amount + 1)"},
                    {"name": "spread", "expr": "(amount_max_1d - amount_min_1d) / amount_std_1d"}]}




def _batch(state: ServingState, rows: list[dict]) -> Batch:
    """The records as the pipeline gathers them (validated like a request)."""
    recs = [record(r, state.plan) for r in rows]
    checked = check_records(recs, state.request_schema, now_us=state.now_us(), max_abs=None)
    req = ParsedRequest(checked.columns, checked.warnings, [str(i) for i in range(len(recs))],
                        checked.event_ids, checked.invalid)
    return Batch.gather([req], state.points_schema, state.plan.timestamp)


def _features_by(state: ServingState, rows: list[dict], backend: str) -> pl.DataFrame:
    state.backends.forced = backend
    batch = _batch(state, rows)
    features(state, batch)
    assert batch.backend == backend
    return batch.features.frame()


class _Constant:
    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        return np.full((len(X), 2), 0.5)


def _plain_state(plan, events, store) -> ServingState:
    return ServingState(plan=plan, model=_Constant(), info=ModelInfo("m", "1", plan.spec_hash),
                        store=store, settings=ServingSettings(max_abs_value=None),
                        source_schema=events.schema, clock=lambda: datetime(2030, 1, 1))


@pytest.fixture(scope="module")
def dense():
    # dense histories: ~3 events per entity and day, so 1h/1d windows hold several events
    events = generate(SyntheticParams(n_users=60, days=20, seed=11, tx_per_user_day=3))
    return events, compile_plan(SPEC, events.schema)


def test_every_aggregate_is_the_same_by_both_backends(dense, tmp_path):
    events, plan = dense
    assert plan.backends == ("frames", "rows")
    store = SQLiteStore(tmp_path / "s.sqlite")
    ordered = events.sort(plan.timestamp)
    history = ordered.head(ordered.height - 400)
    rest = ordered.tail(400).to_dicts()
    append_events(plan, store, history)
    state = _plain_state(plan, events, store)
    rng = random.Random(3)
    checked = nonempty = 0
    for k in range(120):
        n = rng.choice([1, 1, 1, 2, 3, 5])
        rows = [dict(rest[rng.randrange(len(rest))]) for _ in range(n)]
        if n > 1 and k % 3 == 0:  # the same entity twice, one at the same time (a tie)
            rows[1][plan.entity] = rows[0][plan.entity]
            rows[1][plan.timestamp] = rows[0][plan.timestamp] + \
                (timedelta(0) if k % 2 else timedelta(minutes=5))
        if k % 5 == 0:  # a null category
            rows[0]["merchant_category"] = None
        if k % 4 == 0:  # hostile but valid amounts
            rows[0]["amount"] = rng.choice([0.0, -1.0, 1e300, -1e300, 5e-324, 1e-7])
        if k % 7 == 0:  # an unknown entity: empty windows
            rows[0][plan.entity] = f"new-{k}"
        if k % 6 == 1:  # a retry: an event already stored, then a later one of its entity
            old = history.row(rng.randrange(history.height), named=True)
            later = dict(old, **{plan.timestamp: old[plan.timestamp] + timedelta(minutes=3)})
            rows = [dict(old), later, dict(old)] + rows
        want = _features_by(state, rows, "frames")
        got = _features_by(state, rows, "rows")
        nonempty += int((want["events_count_1d"] > 0).sum())
        assert_frame_equal(got, want, check_exact=True)  # bit for bit: one engine, two backends
        checked += len(rows)
        if k % 4 == 0:  # the store grows as served traffic does
            append_events(plan, store, _batch(state, rows).points)
    assert checked > 150 and nonempty > 100  # most points had stored events in their windows


def test_a_plan_without_a_rows_backend_is_served_by_frames(dense, tmp_path):
    events, _ = dense
    spec = {"name": "d", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
            "categorical": ["country"],
            "derived": [{"name": "c", "expr": "upper(country)", "kind": "categorical"}],
            "windows": [{"column": "amount", "aggs": ["sum"], "periods": ["1h"]}]}
    plan = compile_plan(spec, events.schema)
    assert plan.backends == ("frames",)
    state = _plain_state(plan, events, SQLiteStore(tmp_path / "s.sqlite"))
    batch = _batch(state, events.head(3).to_dicts())
    features(state, batch)  # a small batch would take rows, but the plan has none
    assert batch.backend == "frames" and batch.features.frame().height == 3


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def world():
    return build_world(n_users=50, days=20, seed=3)


def _state(world, tmp, policy: str, frames: bool) -> ServingState:
    settings = ServingSettings(log_dir=str(tmp / "log"), invalid_record_policy=policy,
                               max_abs_value=None, store=StoreSettings(path=str(tmp / "s.db")),
                               breaker=BreakerSettings(window=60, min_requests=40,
                                                       min_values=20,
                                                       max_entity_share=0.67))  # 40 of 60
    store = SQLiteStore(tmp / "s.db")
    append_events(world.plan, store, world.events.head(world.events.height - 300))
    from mlops.serving.prediction_log import PredictionLog
    state = ServingState(plan=world.plan, model=world.model, info=world.info, store=store,
                         settings=settings,
                         breaker=CircuitBreaker(world.reference, settings.breaker),
                         prediction_log=PredictionLog(tmp / "log", world.plan),
                         source_schema=world.events.schema,
                         clock=lambda: datetime(2030, 1, 1))
    state.backends.forced = "frames" if frames else "rows"  # every batch, whatever its size
    return state


def _requests(world, rng: random.Random) -> list[list[dict]]:
    rows = world.events.tail(300).to_dicts()
    out = []
    for k in range(160):
        recs = [record(rows[rng.randrange(len(rows))], world.plan)
                for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        if k % 9 == 0:
            recs[0]["amount"] = 1e308       # windows overflow: non-finite features
        if k % 11 == 0:
            recs[0]["event_ts"] = "9999-01-01T00:00:00"   # far in the future
        if k % 5 == 0:
            recs[0]["merchant_category"] = rng.choice([None, "never-seen"])
        if k % 13 == 0 and out:
            recs = [dict(r) for r in out[-1]]   # a retry of the previous request
        if k > 100:                          # drift: the breaker trips on the population
            for r in recs:
                r["amount"] = 50_000.0 + k
        for i, r in enumerate(recs):
            r["request_id"] = f"r{k}-{i}"
        out.append(recs)
    return out


def _store_rows(path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT entity, ts, payload, event_id FROM events "
                          "ORDER BY rowid").fetchall()


@pytest.mark.parametrize("policy", ["reject", "default"])
def test_rows_and_frames_pipelines_answer_store_and_log_alike(world, tmp_path, policy):
    states = {name: _state(world, tmp_path / name, policy, frames=name == "frames")
              for name in ("frames", "rows")}
    rng = random.Random(17)
    statuses, tripped = set(), False
    for recs in _requests(world, rng):
        answers = {}
        for name, st in states.items():
            s = st.settings
            try:
                checked = check_records(recs, st.request_schema, now_us=st.now_us(),
                                        known_categories=st.categories,
                                        max_future_us=int(s.max_future_seconds * 1e6),
                                        max_abs=s.max_abs_value, policy=policy)
            except RequestValidationError:
                answers[name] = "invalid"
                continue
            out = process_batch(st, [ParsedRequest(checked.columns, checked.warnings,
                                                   [r["request_id"] for r in recs],
                                                   checked.event_ids, checked.invalid)])
            if out[0].durable is not None:
                out[0].durable.result()
            answers[name] = [(o.status, o.body, o.detail) for o in out]
        assert answers["rows"] == answers["frames"], recs
        statuses.add(answers["rows"][0][0] if answers["rows"] != "invalid" else 422)
        tripped |= states["rows"].breaker.tripped
    assert 200 in statuses and (422 in statuses) == (policy == "reject")
    assert tripped  # the degrade stage ran in both paths
    assert states["rows"].backends.usable == ("frames", "rows")  # it really took the rows backend
    assert states["rows"].compiled[1] is not None  # ... and the compiled model, on its rows
    assert states["rows"].metrics.value("mlops_feature_batches_total", backend="rows") > 100
    assert not states["frames"].metrics.value("mlops_feature_batches_total", backend="rows")
    b = {n: st.breaker.status().as_dict() for n, st in states.items()}
    b["rows"].pop("tripped_at"), b["frames"].pop("tripped_at")
    assert b["rows"] == b["frames"]
    for st in states.values():
        st.prediction_log.close()
        st.store.close()
    assert _store_rows(tmp_path / "rows" / "s.db") == _store_rows(tmp_path / "frames" / "s.db")
    logs = {n: scan_prediction_log(tmp_path / n / "log").collect().drop("served_at")
            .sort("request_id", "served_by") for n in states}
    assert logs["rows"].height > 100
    assert_frame_equal(logs["rows"], logs["frames"])
    feats = logs["rows"]["features"].struct.unnest()
    # amount 1e308: the windows overflow, and the plan's rule (missing) makes them null
    assert feats["amount_sum_7d"].null_count() > 0
    assert np.isfinite(feats["amount_sum_7d"].drop_nulls().to_numpy()).all()


def test_log_rows_survive_a_torn_tail(tmp_path, world):
    """A JSON rows record cut short by a crash is dropped, the complete ones are read."""
    import json
    import os

    from mlops.serving.prediction_log import BASE_SCHEMA, feature_schema, journal
    schema = {**BASE_SCHEMA, "features": feature_schema(world.plan)}
    seg = journal.Segment.create(tmp_path / "j", "0001", schema)
    known = {"event_ts": 5, "served_at": 7, "prediction": 1, "probability": 0.5,
             "warnings": ["w"], "features": [1.0] * len(world.plan.features)}
    row = [known.get(c, "x") for c in schema]
    seg.append_rows(json.dumps([row]).encode(), 1)
    seg.append_rows(json.dumps([row, row]).encode(), 2)
    seg.sync()
    size = os.path.getsize(seg.path)
    os.truncate(seg.path, size - 5)  # the crash tore the last record
    frame = journal.read_segment(seg.path)
    assert frame.height == 1 and frame["event_ts"].dt.epoch("us").to_list() == [5]
    assert frame.schema == pl.Schema(schema)
    assert frame["features"].struct.unnest().row(0)[0] is not None


def test_breaker_bins_short_lists_exactly_as_numpy(world):
    """observe() on a few records given as lists (the no-frame path) fills the same bins
    as on polars/numpy columns, NaN, inf, null and unseen categories included."""
    rng = random.Random(2)
    ref = world.reference
    settings = BreakerSettings(window=40, min_requests=10, min_values=5,
                               max_entity_share=1.0)
    a, b = CircuitBreaker(ref, settings), CircuitBreaker(ref, settings)
    for _ in range(60):
        m = rng.choice([1, 2, 5])
        cols = {}
        for f in ref.features:
            if f.categories is not None:
                cols[f.name] = [rng.choice([*f.categories[:3], None, "unseen-x"]) for _ in range(m)]
            else:
                pool = [*f.edges, math.nan, math.inf, -math.inf, None, 1e300, -1e300]
                cols[f.name] = [rng.choice(pool) for _ in range(m)]
        scores = np.array([rng.random() for _ in range(m)])
        ents = [f"e{rng.randrange(5)}" for _ in range(m)]
        sa = a.observe(cols, scores, entities=ents, request_sizes=[m])
        sb = b.observe({n: pl.Series(n, v, dtype=pl.String if isinstance(
            next((x for x in v if x is not None), ""), str) else pl.Float64, strict=False)
            for n, v in cols.items()}, scores, entities=ents, request_sizes=[m])
        assert (a.window.counts == b.window.counts).all() and a.dropped == b.dropped
        da, db = sa.as_dict(), sb.as_dict()
        da.pop("tripped_at"), db.pop("tripped_at")
        assert da == db


def test_compiled_logistic_regression_is_sklearn_exactly(world):
    from mlops.serving.model.compiled import _estimator
    est = world.model.steps[-1][1]
    fast = _estimator(est)
    assert fast is not est
    X = np.random.default_rng(0).normal(0, 50, (200, est.coef_.shape[1]))
    assert np.array_equal(fast.predict_proba(X), est.predict_proba(X))
    for i in range(5):  # one row at a time, as the no-frame path calls it
        assert np.array_equal(fast.predict_proba(X[i:i + 1]), est.predict_proba(X[i:i + 1]))

