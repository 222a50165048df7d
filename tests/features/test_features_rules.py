"""The plan's rules, applied the same way by the frames (offline and at points) and rows backends.

Hand-worked cases: what a non-finite value becomes (``rules.nonfinite``), which rows
count in windows, when two rows are one event (``event_id``, ``rules.duplicates``), and
batch scoring over non-finite inputs.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from mlops.errors import FeatureSpecError
from mlops.features.backends import compare_backends, frame_rows
from mlops.features.backends.rows import row_features
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_at, compute_features
from mlops.features.rules import REJECTED_FEATURE, REJECTED_INPUT, STATUS

T0 = datetime(2024, 1, 1)
SCHEMA = {"user": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64, "eid": pl.Int64}
INF = float("inf")


def _events(rows) -> pl.DataFrame:
    return pl.DataFrame([{"user": u, "ts": T0 + timedelta(seconds=s), "x": x, "eid": e}
                         for u, s, x, e in rows], schema=SCHEMA)


def _spec(**extra) -> dict:
    return {"name": "rules", "entity": "user", "timestamp": "ts", "raw": ["x"],
            "windows": [{"column": "x", "aggs": ["count", "sum", "mean"], "periods": ["10s"]}],
            "derived": [{"name": "share", "expr": "x / (x_sum_10s + 1)"}], **extra}


def _offline(plan, events) -> list[dict]:
    return compute_features(plan, events, status=True).collect().to_dicts()


def _point(plan, events, second: float) -> dict:
    """Features at a point (the entity "a", x = 1) after ``events``, by both backends."""
    pts = _events([("a", second, 1.0, 99)])
    assert compare_backends(plan, events, pts) == []
    return compute_at(plan, events, pts, status=True).collect().row(0, named=True)


def test_nonfinite_missing_rule_nulls_the_value_and_the_record_still_counts():
    events = _events([("a", 0, 1.0, 1), ("a", 1, INF, 2), ("a", 2, 2.0, 3)])
    plan = compile_plan(_spec(), SCHEMA)
    assert plan.rules.nonfinite == "missing" and plan.rules.duplicates == "identical"
    rows = _offline(plan, events)
    assert rows[1]["x"] is None and rows[1]["share"] is None and rows[1][STATUS] is None
    # at t=2: both earlier records count; the null is skipped by the value aggregates
    assert (rows[2]["events_count_10s"], rows[2]["x_sum_10s"], rows[2]["x_mean_10s"]) == (2.0, 1.0, 1.0)
    at = _point(plan, events, 3)
    assert (at["events_count_10s"], at["x_sum_10s"], at["x_mean_10s"]) == (3.0, 3.0, 1.5)


def test_nonfinite_missing_rule_on_an_overflowing_window():
    events = _events([("a", 0, 1e308, 1), ("a", 1, 1e308, 2)])
    plan = compile_plan(_spec(), SCHEMA)
    at = _point(plan, events, 2)
    # the exact sum 2e308 is beyond the float range: null; the mean (1e308) is not
    assert at["x_sum_10s"] is None and at["x_mean_10s"] == 1e308 and at["share"] is None
    assert at[STATUS] is None


def test_nonfinite_reject_rule_drops_the_event_and_flags_the_record():
    events = _events([("a", 0, 1.0, 1), ("a", 1, INF, 2), ("a", 2, 2.0, 3)])
    plan = compile_plan(_spec(rules={"nonfinite": "reject"}), SCHEMA)
    rows = _offline(plan, events)
    assert rows[1][STATUS] == REJECTED_INPUT and rows[0][STATUS] is None
    assert (rows[2]["events_count_10s"], rows[2]["x_sum_10s"]) == (1.0, 1.0)  # inf: not an event
    assert _point(plan, events, 3)["events_count_10s"] == 2.0
    # a window that overflows makes the record unscorable; it still counts as an event
    big = _events([("a", 0, 1e308, 1), ("a", 1, 1e308, 2), ("a", 2, 5.0, 3)])
    rows = _offline(plan, big)
    assert rows[2][STATUS] == REJECTED_FEATURE and rows[2]["x_sum_10s"] == INF
    assert _point(plan, big, 3)["events_count_10s"] == 3.0


def test_duplicates_identical_once_all_twice_event_id_first_in_input_order():
    rows = [("a", 0, 1.0, 7), ("a", 0, 1.0, 7), ("a", 1, 5.0, 8), ("a", 2, 100.0, 7)]
    events = _events(rows)
    identical = compile_plan(_spec(), SCHEMA)
    assert _point(identical, events, 3)["x_sum_10s"] == 106.0  # the repeated row once
    every = compile_plan(_spec(rules={"duplicates": "all"}), SCHEMA)
    assert _point(every, events, 3)["x_sum_10s"] == 107.0
    by_id = compile_plan(_spec(event_id="eid"), SCHEMA)
    assert by_id.source_columns[-1] == "eid"
    assert _point(by_id, events, 3)["x_sum_10s"] == 6.0  # id 7 at t=2 repeats t=0's id
    # offline: a duplicate is still an evaluation point, never an event
    out = _offline(by_id, events)
    assert len(out) == 4 and out[3]["events_count_10s"] == 2.0


def test_null_entity_or_time_is_never_an_event():
    events = pl.concat([_events([("a", 0, 1.0, 1)]),
                        pl.DataFrame({"user": [None], "ts": [T0], "x": [4.0], "eid": [2]},
                                     schema=SCHEMA)])
    plan = compile_plan(_spec(), SCHEMA)
    at = _point(plan, events, 1)
    assert at["events_count_10s"] == 1.0
    rows = row_features(plan, frame_rows(plan, events), frame_rows(plan, events), status=True)
    assert rows[1][STATUS] == "no entity or timestamp"


def test_rules_are_checked_and_hashed():
    with pytest.raises(FeatureSpecError, match="features.rules.nonfinite"):
        compile_plan(_spec(rules={"nonfinite": None}), SCHEMA)  # YAML `null`: no value
    with pytest.raises(FeatureSpecError, match="features.event_id"):
        compile_plan(_spec(event_id="nope"), SCHEMA)
    hashes = {compile_plan(_spec(**x), SCHEMA).spec_hash
              for x in ({}, {"rules": {"nonfinite": "reject"}}, {"rules": {"duplicates": "all"}},
                        {"event_id": "eid"})}
    assert len(hashes) == 4


def test_batch_scoring_runs_over_non_finite_inputs(tmp_path):
    """inf, NaN and an overflowing window under the default rule: every row is scored
    (the features hold nulls, never inf; the model takes nulls as missing values)."""
    from mlops.serving.batch import score_events
    from mlops.serving.skew import ModelInfo
    rng = np.random.default_rng(0)
    rows = [("abc"[i % 3], i, float(rng.normal(10, 3)), i) for i in range(60)]
    rows += [("a", 61, INF, 61), ("b", 62, float("nan"), 62), ("c", 63, 1e308, 63),
             ("c", 64, 1e308, 64), ("c", 65, 0.0, 65)]
    events = _events(rows).with_columns(pl.Series("y", [i % 2 for i in range(len(rows))]))
    plan = compile_plan({**_spec(), "derived": [{"name": "share", "expr": "x_sum_10s / x"}]},
                        events.schema)
    feats = compute_features(plan, events).collect().select(plan.feature_names)
    assert not any(np.isinf(feats[c].drop_nulls().to_numpy()).any() for c in feats.columns)
    model = HistGradientBoostingClassifier(max_iter=5).fit(
        feats.to_numpy(), events.sort(["user", "ts"])["y"].to_numpy())
    rep = score_events(plan, model, ModelInfo("m", "1", plan.spec_hash), events,
                       tmp_path / "p.parquet")
    assert rep.rows == len(rows) and pl.read_parquet(tmp_path / "p.parquet")["probability"].null_count() == 0
