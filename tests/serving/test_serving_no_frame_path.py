"""The no-frame path (fast_path.py) answers, stores and logs exactly what the frame path does.

Independent truth here is the frame (polars) path itself, checked elsewhere against the
offline feature engine and the model: every test runs the same inputs through both.
"""
from __future__ import annotations

import math
import random
import sqlite3
from datetime import datetime

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from serving_world import build_world, record

from mlops.features.compile import compile_plan
from mlops.features.online import SQLiteStore, append_events, encode_rows, points_frame, realtime_features
from mlops.serving.breaker import CircuitBreaker
from mlops.serving.fast_exprs import compile_numeric
from mlops.serving.fast_features import compile_rows, encode_payloads, row_features, small_batch_features
from mlops.serving.predict_path import ParsedRequest, process_batch
from mlops.serving.prediction_log import scan_prediction_log
from mlops.serving.settings import BreakerSettings, ServingSettings, StoreSettings
from mlops.serving.state import ServingState
from mlops.serving.validation import RequestSchema, RequestValidationError, check_records

HOSTILE = [0.0, -0.0, 1.0, -1.0, 2.5, 1e-7, -3e-5, 1e308, -1e308, 5e-324, math.inf, -math.inf,
           math.nan, None, 123456.789, -0.5]
EXPRS = ["a / (b + 1)", "a / b", "-a * b - 2", "(a + b) * (a - b) / 3", "ln(a + 1)",
         "log10(b)", "sqrt(a) + abs(b)", "exp(a) / 2", "a * 1e300 * b", "+a - -b",
         '"a" / 2.5', "CASE WHEN a > 1 THEN a ELSE 0 END", "a % 2", "1 / 2 + a",
         "power(a, 2)", "a > b", "-(1) + a", "greatest(a, b, 0.5) - least(a, 1)",
         "coalesce(a, b, -1) * 2", "CAST(a BETWEEN b AND 3 AS DOUBLE)", "nullif(a, b)"]


@pytest.mark.parametrize("text", EXPRS)
def test_compiled_expressions_match_polars_on_hostile_values(text):
    fn = compile_numeric(text, {"a", "b"})
    assert fn is not None
    pairs = [(a, b) for a in HOSTILE for b in HOSTILE]
    frame = pl.DataFrame({"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]},
                         schema={"a": pl.Float64, "b": pl.Float64})
    want = frame.select(pl.sql_expr(text).cast(pl.Float64).alias("x"))["x"].to_list()
    got = [fn({"a": a, "b": b}) for a, b in pairs]
    for (a, b), g, w in zip(pairs, got, want):
        if w is None or g is None:
            assert g is None and w is None, (a, b, g, w)
        elif math.isnan(w):
            assert math.isnan(g), (a, b, g, w)
        else:
            assert g == w, (a, b, g, w)  # bit for bit


@pytest.mark.parametrize("text", ["upper(c)", "a || 'x'", "c", "cbrt(a)", "pow(a, b)",
                                  "EXTRACT(HOUR FROM ts)", "2", "a +", "CAST(a AS INT)"])
def test_expressions_outside_the_subset_are_refused(text):
    assert compile_numeric(text, {"a", "b"}) is None


def test_store_payloads_are_byte_identical_to_polars(tmp_path):
    rng = random.Random(5)
    floats = [rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-40, 40) for _ in range(3000)]
    floats += [0.0, -0.0, 1e-5, 1e-6, 1e-7, 9.999999e-5, 1e16, 1e21, 5e-324, 1.5e308]
    texts = [None, "", "é\"\\", "\n\t\x00\x1f", "\u2028", "😀", "plain"] * (len(floats) // 7 + 1)
    cols = {"e": ["x"] * len(floats), "t": [0] * len(floats), "amount": floats,
            "cat": texts[:len(floats)]}
    plan = compile_plan({"name": "p", "entity": "e", "timestamp": "t", "raw": ["amount"],
                         "categorical": ["cat"]},
                        {"e": pl.String, "t": pl.Datetime("us"), "amount": pl.Float64,
                         "cat": pl.String})
    frame = pl.DataFrame({"amount": floats, "cat": cols["cat"]},
                         schema={"amount": pl.Float64, "cat": pl.String})
    assert encode_payloads(plan, cols) == encode_rows(frame, ["amount", "cat"])


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


def test_row_features_equal_the_frame_features_on_random_histories(tmp_path):
    from mlops.data.synthetic import SyntheticParams, generate
    events = generate(SyntheticParams(n_users=40, days=10, seed=4, tx_per_user_day=3))
    plan = compile_plan(SPEC, events.schema)
    schema = RequestSchema.from_plan(plan, events.schema)
    rp = compile_rows(plan, schema.kinds)
    assert rp is not None
    store = SQLiteStore(tmp_path / "s.sqlite")
    ordered = events.sort(plan.timestamp)
    append_events(plan, store, ordered.head(ordered.height - 200))
    rest = ordered.tail(200).to_dicts()
    rng = random.Random(9)
    for k in range(150):
        rows = [dict(rest[rng.randrange(len(rest))]) for _ in range(rng.choice([1, 1, 2, 4]))]
        if k % 4 == 0:
            rows[0]["amount"] = rng.choice([0.0, -1.0, 1e308, -1e308, 5e-324, 1e-7])
        if k % 5 == 0:
            rows[0]["merchant_category"] = None
        if k % 7 == 0:
            rows[0][plan.entity] = f"new-{k}"
        if len(rows) > 1 and k % 3 == 0:  # same entity, same time: a tie
            rows[1][plan.entity], rows[1][plan.timestamp] = rows[0][plan.entity], \
                rows[0][plan.timestamp]
        cols = {c: [r[c] for r in rows] for c in schema.kinds}
        cols[plan.timestamp] = [_us(r[plan.timestamp]) for r in rows]
        pts = points_frame(cols, schema.polars_schema(), plan.timestamp)
        want = realtime_features(plan, store, pts).select(plan.feature_names)
        got = pl.DataFrame([{n: r[n] for n in plan.feature_names}
                            for r in row_features(rp, store, cols)], schema=want.schema)
        assert_frame_equal(got, want, check_exact=True)  # the frames path, bit for bit
        assert small_batch_features(plan, store, pts).select(plan.feature_names).equals(want)
        if k % 10 == 0:  # the batch's events join the history, as when served
            append_events(plan, store, pts)


def _us(dt: datetime) -> int:
    return int(pl.Series([dt]).cast(pl.Datetime("us")).dt.epoch("us")[0])


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
    if frames:
        state._row_plan = (None,)  # the frame path, always
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
def test_no_frame_path_matches_the_frame_path(world, tmp_path, policy):
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
    assert states["rows"]._row_plan[0] is not None  # it really took the no-frame path
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
    assert not np.isfinite(feats["amount_sum_7d"].to_numpy()).all() or policy == "reject"


def test_log_rows_survive_a_torn_tail(tmp_path, world):
    """A JSON rows record cut short by a crash is dropped, the complete ones are read."""
    import json
    import os

    from mlops.serving import journal
    from mlops.serving.prediction_log import BASE_SCHEMA, feature_schema
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
    from mlops.serving.fast_model import _estimator
    est = world.model.steps[-1][1]
    fast = _estimator(est)
    assert fast is not est
    X = np.random.default_rng(0).normal(0, 50, (200, est.coef_.shape[1]))
    assert np.array_equal(fast.predict_proba(X), est.predict_proba(X))
    for i in range(5):  # one row at a time, as the no-frame path calls it
        assert np.array_equal(fast.predict_proba(X[i:i + 1]), est.predict_proba(X[i:i + 1]))

