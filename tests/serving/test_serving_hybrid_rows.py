"""The hybrid path by the rows backend: a one-entity read without a frame, equal to batch.

Independent truth is the offline engine (``compute_at``: the features a batch job computes
for a point at the materialization time over the whole history); the frames hybrid path
(``hybrid_features``) is compared too. Values are hostile: 0, -0.0, +-1e300, 1.7e308 (two
of them overflow a window sum), subnormals, NaN, +-inf, nulls, ties and exact duplicates,
an unseen category, an entity with no materialized row; both ``rules.nonfinite`` rules.
"""
from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from serving_world import record

sys.path.insert(0, str(Path(__file__).parents[1] / "features"))
from backend_cases import SCHEMA, frame, histories, points, specs  # noqa: E402

from mlops.errors import FeatureSpecError  # noqa: E402
from mlops.features.backends import frame_columns, same_value  # noqa: E402
from mlops.features.backends.frames import compute_at  # noqa: E402
from mlops.features.compile import compile_plan  # noqa: E402
from mlops.features.online import SQLiteStore, hybrid_features, hybrid_rows, materialize  # noqa: E402
from mlops.features.online import request as online_request  # noqa: E402
from mlops.features.online.hybrid_probe import probe_hybrid_rows  # noqa: E402
from mlops.features.rules import STATUS  # noqa: E402
from mlops.serving.http.validation import check_records  # noqa: E402
from mlops.serving.pipeline import Batch, ParsedRequest  # noqa: E402
from mlops.serving.pipeline.features import features  # noqa: E402
from mlops.serving.settings import ServingSettings  # noqa: E402
from mlops.serving.skew import ModelInfo  # noqa: E402
from mlops.serving.state import ServingState  # noqa: E402

T0 = datetime(2024, 3, 1)
HOSTILE = [0.0, -0.0, 1e300, -1e300, 5e-324, 1e-300, float("nan"), float("inf"), float("-inf"),
           None, 0.1, 0.2, 0.3, 123456789.125, 1e16, 1e16 + 2, -3.75]
SPEC = {"name": "hyb", "entity": "user", "timestamp": "ts", "raw": ["x"], "categorical": ["cat"],
        "windows": [
            {"column": "x", "aggs": ["count", "sum", "mean", "min", "max", "std", "last"],
             "periods": ["1m", "10m"], "default": -1.0},
            {"column": "cat", "aggs": ["distinct", "last"], "periods": ["10m"]},
            {"column": "shifted", "aggs": ["sum"], "periods": ["10m"]},
            {"aggs": ["since_last"], "periods": ["10m"], "default": 600.0}],
        "derived": [
            {"name": "shifted", "expr": "CASE WHEN cat = 'u' THEN -x ELSE x + 1 END"},
            {"name": "share", "expr": "x / (x_sum_10m + 1)"},
            {"name": "spread", "expr": "coalesce((x_max_10m - x_min_10m) / nullif(x_std_10m, 0), -1)"},
            {"name": "size", "expr": "CASE WHEN x > 100 THEN 'big' ELSE 'small' END",
             "kind": "categorical"}]}


def _history() -> pl.DataFrame:
    """Five entities, every hostile value, ties (same entity and time), exact duplicates,
    and one entity whose two 1.7e308 overflow its window sums."""
    rows = []
    for i in range(170):
        rows.append({"user": f"u{i % 5}", "ts": T0 + timedelta(seconds=3 * (i // 2)),
                     "x": HOSTILE[i % len(HOSTILE)], "cat": [None, "u", "v", "w"][i % 4]})
    rows += [dict(rows[7]), dict(rows[8])]                      # exact duplicates
    rows += [{"user": "big", "ts": T0 + timedelta(seconds=s), "x": 1.7e308, "cat": "u"} for s in (5, 9)]
    return pl.DataFrame(rows, schema={"user": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64,
                                      "cat": pl.String})


def _us(dt: datetime) -> int:
    return int((dt - datetime(1970, 1, 1)) / timedelta(microseconds=1))


@pytest.mark.parametrize("rule", ["missing", "reject"])
def test_one_entity_hybrid_read_equals_batch_on_hostile_values(rule):
    history = _history()
    plan = compile_plan({**SPEC, "rules": {"nonfinite": rule}}, history.schema)
    assert plan.backends == ("frames", "rows")
    as_of = history["ts"].max() + timedelta(seconds=1)
    store = SQLiteStore(":memory:")
    materialize(plan, history, store, as_of=as_of)
    entities = ["u0", "u1", "u2", "u3", "u4", "big", "nobody"]
    own = [2.5, -0.0, 1e300, float("nan"), None, 7.0, 150.0]  # the request's own values
    pts = pl.DataFrame({"user": entities, "ts": [as_of] * len(entities), "x": own,
                        "cat": ["u", None, "never-seen", "v", "w", "u", "v"]}, schema=history.schema)
    truth = compute_at(plan, history, pts, status=True).collect()
    names = [*plan.feature_names, STATUS]
    kw = dict(now_us=_us(as_of), ttl_seconds=3600, status=True)
    checked = 0
    for i in range(len(entities)):
        one = hybrid_rows(plan, store, frame_columns(plan, pts[i:i + 1]), **kw)  # the one-entity read
        framed = hybrid_features(plan, store, pts[i:i + 1], **kw).features.row(0, named=True)
        want = truth.row(i, named=True)
        for n in names:
            assert same_value(one.features[0][n], want[n]), (rule, entities[i], n, one.features[0][n], want[n])
            assert same_value(framed[n], want[n]), (rule, entities[i], n)
            checked += 1
        assert one.as_of_us == [None if entities[i] == "nobody" else _us(as_of)]
        assert bool(one.warnings[0]) == (entities[i] == "nobody")
    assert checked == len(entities) * len(names)
    big = entities.index("big")
    if rule == "reject":  # the overflowing window sums: unscorable, kept aside and restored
        assert truth[STATUS][big] is not None and math.isinf(truth["x_sum_10m"][big])
    else:
        assert truth["x_sum_10m"][big] is None


def _crowd() -> pl.DataFrame:
    """Sixty entities of ten hostile events each within the 10-minute window (ties, an
    exact duplicate), plus the entity whose 1.7e308 pair overflows its window sums."""
    rows = [{"user": f"c{i % 60}", "ts": T0 + timedelta(seconds=2 * (i // 60)),
             "x": HOSTILE[(7 * i) % len(HOSTILE)], "cat": [None, "u", "v", "w", "u"][(i + i // 60) % 5]}
            for i in range(600)]
    rows += [dict(rows[61]), {**rows[62], "ts": rows[2]["ts"]}]   # a duplicate, a tie
    rows += [{"user": "big", "ts": T0 + timedelta(seconds=s), "x": 1.7e308, "cat": "u"} for s in (5, 9)]
    return pl.DataFrame(rows, schema={"user": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64,
                                      "cat": pl.String})


class _CountingJson:
    """``json`` as the online read sees it, counting its ``loads`` calls."""

    def __init__(self):
        self.calls = 0

    def loads(self, text):
        self.calls += 1
        return json.loads(text)


# SPEC without its one window whose value is a category: every stored value a number
NUMBERS_SPEC = {**SPEC, "windows": [*SPEC["windows"][:1], {"column": "cat", "aggs": ["distinct"], "periods": ["10m"]},
                                    *SPEC["windows"][2:]]}


@pytest.mark.parametrize("rule", ["missing", "reject"])
@pytest.mark.parametrize("policy", ["warn", "default"])
@pytest.mark.parametrize("spec", [SPEC, NUMBERS_SPEC], ids=["mixed", "numbers"])
def test_hundred_entity_hybrid_read_equals_batch(spec, rule, policy, monkeypatch):
    """One call for 100 points (a hybrid micro-batch of 100: the store's rows decoded in
    one parse) gives, point by point, what the batch engine computes: fresh rows, stale
    ones (``warn``: served as stored; ``default``: empty windows, as for an entity with no
    events), entities with no row, one entity asked twice. With numbers only and no
    non-finite window kept aside (``missing``), the decoded rows are taken as they are."""
    history = _crowd()
    plan = compile_plan({**spec, "rules": {"nonfinite": rule}}, history.schema)
    as_of = history["ts"].max() + timedelta(seconds=1)
    store = SQLiteStore(":memory:")
    materialize(plan, history, store, as_of=as_of)
    old = [f"c{i}" for i in range(0, 60, 7)]  # their rows two hours old: stale at ttl 1 h
    kept = store.read_features(old)
    store.write_features(old, _us(as_of - timedelta(hours=2)), [kept[e][1] for e in old])
    entities = [f"c{i}" for i in range(60)] + ["big", "c3", "c7"] + [f"nobody{i}" for i in range(37)]
    pts = pl.DataFrame({"user": entities, "ts": [as_of] * 100,
                        "x": [HOSTILE[i % len(HOSTILE)] for i in range(100)],
                        "cat": [["u", None, "never-seen", "v"][i % 4] for i in range(100)]}, schema=history.schema)
    stored = [p for _, p in store.read_features(entities).values()]
    assert online_request._floats_or_nulls([json.loads(p) for p in stored]) == (spec is NUMBERS_SPEC
                                                                                and rule == "missing")
    batch_history = history.filter(~pl.col("user").is_in(old)) if policy == "default" else history
    truth = compute_at(plan, batch_history, pts, status=True).collect()
    kw = dict(now_us=_us(as_of), ttl_seconds=3600, stale_policy=policy, status=True)
    counting = _CountingJson()
    monkeypatch.setattr(online_request, "json", counting)
    got = hybrid_rows(plan, store, frame_columns(plan, pts), **kw)
    assert counting.calls == 1  # every row in one parse
    framed = hybrid_features(plan, store, pts, **kw).features
    names = [*plan.feature_names, STATUS]
    for i, (row, want, frame_row) in enumerate(zip(got.features, truth.iter_rows(named=True),
                                                   framed.iter_rows(named=True), strict=True)):
        for n in names:
            assert same_value(row[n], want[n]), (rule, policy, entities[i], n, row[n], want[n])
            assert same_value(frame_row[n], want[n]), (rule, policy, entities[i], n)
    assert got.stale == [e in old for e in entities]
    assert [bool(w) for w in got.warnings] == [e in old or e.startswith("nobody") for e in entities]
    assert got.as_of_us == [None if e.startswith("nobody") else _us(as_of - timedelta(hours=2)) if e in old
                            else _us(as_of) for e in entities]
    counts = [c for c, e in zip(truth["events_count_10m"], entities) if e in old]  # both cases reached
    assert all(c == 0 for c in counts) if policy == "default" else all(c > 0 for c in counts)


def test_hybrid_rows_refuse_a_payload_that_is_two_values():
    """The one-parse decode never shifts a row onto another entity: a corrupt payload
    holding two JSON objects is an error, as it is decoded alone."""
    plan = compile_plan(SPEC, _history().schema)
    store = SQLiteStore(":memory:")
    names = [w.name for w in plan.windows]
    good = json.dumps(dict.fromkeys(names, 1.0))
    store.write_features(["a", "b", "c"], 1, [good, good + "," + good, good])
    pts = {"user": ["a", "b", "c"], "ts": [1] * 3, "x": [1.0] * 3, "cat": ["u"] * 3}
    with pytest.raises(ValueError):
        hybrid_rows(plan, store, pts, now_us=1, ttl_seconds=3600)
    pts = {**{k: v[:2] for k, v in pts.items()}, "user": ["a", "c"]}
    assert hybrid_rows(plan, store, pts, now_us=1, ttl_seconds=3600).features[1]["x_sum_10m"] == 1.0


def _cases_differ(case) -> list | None:
    """The rows and frames hybrid paths' differences on a generated case (windows
    materialized as of just after the history; the points read them)."""
    spec, history, pts = case
    try:
        plan = compile_plan(spec, SCHEMA)
    except FeatureSpecError:
        return None
    hist = frame(history)
    if "rows" not in plan.backends or hist["ts"].max() is None:
        return None
    as_of = hist["ts"].max() + timedelta(seconds=1)
    store = SQLiteStore(":memory:")
    materialize(plan, hist, store, as_of=as_of)
    at = frame(pts).with_columns(pl.lit(as_of).cast(SCHEMA["ts"]).alias("ts"))
    kw = dict(now_us=_us(as_of), ttl_seconds=3600, status=True)
    framed = hybrid_features(plan, store, at, **kw).features
    rows = hybrid_rows(plan, store, frame_columns(plan, at), **kw).features
    names = [*plan.feature_names, STATUS]
    return [(i, n, w[n], g[n]) for i, (w, g) in enumerate(zip(framed.select(names).iter_rows(named=True), rows))
            for n in names if not same_value(w[n], g[n])]


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.tuples(specs(), histories(), points()))
def test_hybrid_rows_equal_hybrid_frames_on_generated_specs(case):
    diffs = _cases_differ(case)
    assume(diffs is not None)
    assert diffs == []


def test_hybrid_rows_restore_kept_nonfinite_windows_and_type_defaults():
    history = _history()
    plan = compile_plan({**SPEC, "rules": {"nonfinite": "reject"}}, history.schema)
    store = SQLiteStore(":memory:")
    as_of = history["ts"].max() + timedelta(seconds=1)
    materialize(plan, history, store, as_of=as_of)
    payload = json.loads(store.read_features(["big"])["big"][1])
    assert payload["x_sum_10m"] is None and "x_sum_10m:inf" in payload[online_request.WINDOW_NONFINITE]
    pts = {"user": ["big", "nobody"], "ts": [_us(as_of)] * 2, "x": [1.0] * 2, "cat": ["u"] * 2}
    res = hybrid_rows(plan, store, pts, now_us=_us(as_of), ttl_seconds=3600, status=True,
                      defaults={"x_mean_10m": 3, "cat_last_10m": "none"})
    big, nobody = res.features
    assert big["x_sum_10m"] == math.inf and big[STATUS] is not None
    assert nobody["events_count_10m"] == 0.0 and type(nobody["events_count_10m"]) is float
    assert nobody["x_mean_10m"] == 3.0 and type(nobody["x_mean_10m"]) is float
    assert nobody["cat_last_10m"] == "none" and nobody[STATUS] is None
    assert nobody["events_since_last_10m"] == 600.0


def _one_ulp_off(text):
    """A decoder that rounds every float one ulp the wrong way (of one payload or of many)."""
    return json.loads(text, parse_float=lambda s: math.nextafter(float(s), math.inf))


_ONE_ULP_OFF = type("J", (), {"loads": staticmethod(_one_ulp_off)})


def test_probe_hybrid_rows_is_clean_and_catches_a_wrong_decode(monkeypatch):
    history = _history()
    plan = compile_plan(SPEC, history.schema)
    assert probe_hybrid_rows(plan, history, sample=50) == []

    monkeypatch.setattr(online_request, "json", _ONE_ULP_OFF)
    diffs = probe_hybrid_rows(plan, history, sample=50)
    assert diffs and all(d["rows"] != d["frames"] for d in diffs)


def _state(plan, store, history, tmp_path, *, probe_history=None) -> ServingState:
    state = ServingState(plan=plan, model=None, info=ModelInfo("m", "1", plan.spec_hash), store=store,
                         settings=ServingSettings(mode="hybrid", ttl_seconds=3600, max_abs_value=None,
                                                  invalid_record_policy="default"),
                         source_schema=dict(history.schema))
    state.probe_backends(probe_history)
    return state


def _batch(state, rows: list[dict], now_us: int) -> Batch:
    recs = [record(r, state.plan) for r in rows]
    checked = check_records(recs, state.request_schema, now_us=now_us, max_abs=None)
    req = ParsedRequest(checked.columns, checked.warnings, [str(i) for i in range(len(recs))],
                        checked.event_ids, checked.invalid)
    return Batch.gather([req], state.points_schema, state.plan.timestamp)


def test_hybrid_serving_takes_rows_for_a_small_batch_and_answers_as_frames(tmp_path, monkeypatch):
    history = _history()
    plan = compile_plan(SPEC, history.schema)
    as_of = history["ts"].max() + timedelta(seconds=1)
    store = SQLiteStore(":memory:")
    materialize(plan, history, store, as_of=as_of)
    state = _state(plan, store, history, tmp_path, probe_history=history)
    assert state.backends.usable == ("frames", "rows") and state.backends.checks["rows"]["ok"]
    monkeypatch.setattr(state, "now_us", lambda: _us(as_of))
    reqs = [{"user": u, "ts": as_of, "x": x, "cat": c}
            for u, x, c in [("u1", 2.0, "u"), ("nobody", 1e300, None), ("big", -0.0, "v")]]
    got = {}
    for backend in (None, "frames"):
        state.backends.forced = backend
        batch = _batch(state, reqs, _us(as_of))
        features(state, batch)
        got[backend] = (batch.backend, batch.features.frame(), batch.features.status(), batch.warnings,
                        batch.as_of)
    assert got[None][0] == "rows" and got["frames"][0] == "frames"
    assert got[None][1].equals(got["frames"][1])
    assert got[None][2:] == got["frames"][2:]

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("mlops.serving.pipeline.features.hybrid_rows", broken)
    state.backends.forced = None
    batch = _batch(state, reqs, _us(as_of))
    features(state, batch)  # a bug in the rows backend: frames answer, rows refused
    assert batch.backend == "frames" and state.backends.usable == ("frames",)
    assert "ZeroDivisionError" in state.backends.checks["rows"]["reason"]


def test_hybrid_start_up_probe_refuses_a_wrong_rows_backend(tmp_path, monkeypatch):
    history = _history()
    plan = compile_plan(SPEC, history.schema)

    monkeypatch.setattr(online_request, "json", _ONE_ULP_OFF)
    state = _state(plan, SQLiteStore(":memory:"), history, tmp_path, probe_history=history)
    assert state.backends.usable == ("frames",)
    assert "differ" in state.backends.checks["rows"]["reason"]
