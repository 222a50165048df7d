"""The small-batch realtime path computes exactly what the polars path computes."""
from __future__ import annotations

import random
from datetime import timedelta

import polars as pl
import pytest

from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.compile import compile_plan
from mlops.features.online import SQLiteStore, append_events, points_frame, realtime_features
from mlops.serving.fast_features import small_batch_features, supported
from mlops.serving.validation import RequestSchema

SPEC = {"name": "every_agg", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
        "categorical": ["merchant_category", "country", "channel"],
        "windows": [
            {"column": "amount", "aggs": ["sum", "mean", "min", "max", "std", "count"],
             "periods": ["1h", "1d"]},
            {"column": "amount", "aggs": ["mean"], "periods": ["10m"], "default": -1.0},
            {"column": "merchant_category", "aggs": ["distinct", "last"], "periods": ["1d"]},
            {"aggs": ["since_last"], "periods": ["7d"], "default": 604800.0}],
        "derived": [{"name": "ratio", "expr": "amount / (amount_mean_1d + 1)"},
                    {"name": "log_amount", "expr": "ln(amount + 1)"}]}


@pytest.fixture(scope="module")
def setup():
    # dense histories: ~3 events per entity and day, so 1h/1d windows hold several events
    events = generate(SyntheticParams(n_users=60, days=20, seed=11, tx_per_user_day=3))
    plan = compile_plan(SPEC, events.schema)
    return events, plan


def _points(plan, events, rows):
    schema = RequestSchema.from_plan(plan, events.schema)
    cols = {c: [r[c] for r in rows] for c in schema.kinds}
    ts = plan.timestamp
    cols[ts] = [int(pl.Series([r[ts]]).cast(pl.Datetime("us")).dt.epoch("us")[0]) for r in rows]
    return points_frame(cols, schema.polars_schema(), ts)


def test_every_aggregate_matches_the_polars_path(setup, tmp_path):
    events, plan = setup
    assert supported(plan)
    store = SQLiteStore(tmp_path / "s.sqlite")
    ordered = events.sort(plan.timestamp)
    history = ordered.head(ordered.height - 400)
    rest = ordered.tail(400).to_dicts()
    assert history.height > 3000
    append_events(plan, store, history)
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
        if k % 7 == 0:  # an unknown entity: empty windows
            rows[0][plan.entity] = f"new-{k}"
        if k % 6 == 1:  # a retry: an event already stored, then a later one of its entity
            old = history.row(rng.randrange(history.height), named=True)
            later = dict(old, **{plan.timestamp: old[plan.timestamp] + timedelta(minutes=3)})
            rows = [dict(old), later, dict(old)] + rows
        pts = _points(plan, events, rows)
        want = realtime_features(plan, store, pts).select(plan.feature_names)
        got = small_batch_features(plan, store, pts).select(plan.feature_names)
        nonempty += int((want["events_count_1d"] > 0).sum())
        assert got.schema == want.schema
        for name in plan.feature_names:  # bit for bit: the same engine, two backends
            assert got[name].to_list() == want[name].to_list(), name
        checked += n
        if k % 4 == 0:  # the store grows as served traffic does
            append_events(plan, store, pts)
    assert checked > 150 and nonempty > 100  # most points had stored events in their windows


def test_windows_over_derived_columns_have_the_rows_backend_and_a_string_function_not(setup, tmp_path):
    events, _ = setup
    spec = {"name": "d", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
            "derived": [{"name": "log_amount", "expr": "ln(amount + 1)"}],
            "windows": [{"column": "log_amount", "aggs": ["sum"], "periods": ["1h"]}]}
    plan = compile_plan(spec, events.schema)
    assert supported(plan)
    store = SQLiteStore(tmp_path / "s.sqlite")
    ordered = events.sort(plan.timestamp)
    append_events(plan, store, ordered.head(ordered.height - 50))
    pts = _points(plan, events, ordered.tail(50).to_dicts())
    want = realtime_features(plan, store, pts).select(plan.feature_names)
    assert small_batch_features(plan, store, pts).select(plan.feature_names).equals(want)
    upper = {**spec, "categorical": ["country"],
             "derived": spec["derived"] + [{"name": "c", "expr": "upper(country)", "kind": "categorical"}]}
    assert not supported(compile_plan(upper, events.schema))
